//! The body scanner of ccc_watch/index/body.py (with the helpers of fields.py it uses),
//! compiled: what Obsidian's metadata cache finds in a note's body. The Python code is
//! the reference and its module docstrings hold the rules; this port gives the same
//! results for every input (tests/test_scan_differential.py compares the two).
//!
//! How the port stays exact:
//! - Character classes are Python's (`tables.rs`, generated from the Python the tests
//!   run on): `\s`, `strip()`, `split()` and `isspace()` take U+001C..U+001F and U+0085
//!   too, `\w` is `isalnum()` or '_', `\d` is `isdecimal()`, `lower()` is Python's.
//! - Python's regular expressions are written out as loops that take the path the
//!   backtracking engine's first match takes (each says why no other path can match),
//!   so no input makes them slower than linear.
//! - Lengths that Python counts in code points (MAX_LINE, MAX_KEY, the field search's
//!   budget, the 64 characters of a priority) are counted in code points here too.

use std::borrow::Cow;
use std::collections::HashMap;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::tables;

/// fields.py MAX_LINE: a longer line holds no inline field.
const MAX_LINE: usize = 32768;
/// fields.py MAX_FIELDS: a note gives at most this many fields.
const MAX_FIELDS: usize = 10_000;
/// fields.py MAX_KEY: a longer full-line key is no field.
const MAX_KEY: usize = 1024;
/// body.py _CODE_MASK: stands in for code and links (neither space nor a tag character).
const MASK: char = '\0';

// ---------------------------------------------------------------------------------
// Python's character classes

fn in_table(table: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// str.isspace(), and re's `\s`.
pub fn is_space(c: char) -> bool {
    if c.is_ascii() {
        matches!(c, '\t'..='\r' | '\x1c'..='\x1f' | ' ')
    } else {
        in_table(tables::SPACE, c)
    }
}

/// re's `\w`: str.isalnum() or '_'.
fn is_word(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '_'
    } else {
        in_table(tables::ALNUM, c)
    }
}

/// str.isalpha().
fn is_alpha(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else {
        in_table(tables::ALPHA, c)
    }
}

/// re's `\d`: str.isdecimal().
fn is_decimal(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_digit()
    } else {
        in_table(tables::DECIMAL, c)
    }
}

/// str.isdigit().
fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_digit()
    } else {
        in_table(tables::DIGIT, c)
    }
}

/// fields.py EMOJI: the emoji Obsidian and Dataview take in names.
fn is_emoji(c: char) -> bool {
    matches!(c, '\u{200d}' | '\u{2600}'..='\u{27bf}' | '\u{1f000}'..='\u{1faff}')
}

/// body.py _TAG_CHARS: letters, digits, '_', '-', '/', combining marks, emoji.
fn is_tag_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/')
    } else {
        in_table(tables::ALNUM, c) || in_table(tables::MARK_BMP, c) || is_emoji(c)
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// str.strip().
fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python's str.lower() of one character (ch.lower(): a capital sigma gives 'σ').
fn push_lower(out: &mut String, c: char) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    match tables::LOWER.binary_search_by_key(&(c as u32), |&(cp, _)| cp) {
        Ok(i) => out.push_str(tables::LOWER[i].1),
        Err(_) => out.push(c),
    }
}

fn case_ignorable(c: char) -> bool {
    in_table(tables::CASE_IGNORABLE, c)
}

/// Python's str.lower(), with its final sigma rule: a capital sigma after a cased
/// letter (case-ignorable characters between) and not before one is 'ς'.
fn py_lower(chars: &[char]) -> String {
    fn cased_past_ignorable<'a>(mut it: impl Iterator<Item = &'a char>) -> bool {
        it.find(|&&c| !case_ignorable(c))
            .is_some_and(|&c| in_table(tables::CASED, c))
    }
    let mut out = String::with_capacity(chars.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == '\u{3a3}' {
            let final_sigma = cased_past_ignorable(chars[..i].iter().rev())
                && !cased_past_ignorable(chars[i + 1..].iter());
            out.push(if final_sigma { '\u{3c2}' } else { '\u{3c3}' });
        } else {
            push_lower(&mut out, c);
        }
    }
    out
}

/// Where the run of characters from byte `i` that satisfy `keep` ends.
fn skip(s: &str, i: usize, keep: impl Fn(char) -> bool) -> usize {
    s[i..]
        .char_indices()
        .find(|&(_, c)| !keep(c))
        .map_or(s.len(), |(k, _)| i + k)
}

/// Where the first byte of `set` at or after `i` is (or the end): for ASCII bytes,
/// which never occur inside a multi-byte character.
fn find_any(b: &[u8], i: usize, set: &[u8]) -> usize {
    b[i..]
        .iter()
        .position(|x| set.contains(x))
        .map_or(b.len(), |k| i + k)
}

// ---------------------------------------------------------------------------------
// What a scan finds

pub struct Link {
    pub target: String,
    pub kind: &'static str,
    pub alias: Option<String>,
    pub heading: Option<String>,
    pub block: Option<String>,
    pub line: i64,
}

pub struct Task {
    pub line: i64,
    pub done: bool,
    pub text: String,
    pub status: char,
    pub section: Option<String>,
    /// due, scheduled, start, created, completion, priority (fields.py TASK_FIELDS order)
    pub meta: [Option<String>; 6],
}

pub struct Heading {
    pub level: usize,
    pub text: String,
    pub line: i64,
}

pub struct Block {
    pub id: String,
    pub line: i64,
}

pub struct Field {
    pub key: String,
    pub value: String,
    pub line: i64,
    pub task: bool,
}

/// body.py `Body`.
#[derive(Default)]
pub struct Body {
    pub title: Option<String>,
    pub links: Vec<Link>,
    /// each spelling and how often it is used, in the order first seen
    pub tags: Vec<(String, u64)>,
    pub tasks: Vec<Task>,
    pub words: u64,
    pub headings: Vec<Heading>,
    pub blocks: Vec<Block>,
    pub fields: Vec<Field>,
}

/// fields.py TASK_FIELDS.
pub const TASK_FIELDS: [&str; 6] = [
    "due",
    "scheduled",
    "start",
    "created",
    "completion",
    "priority",
];

// ---------------------------------------------------------------------------------
// body.py

/// body.py `scan_body`: scan a note's body (its first line is `first_line` of the file).
pub fn scan_body(body: &str, first_line: i64) -> Body {
    let mut out = Body::default();
    let mut tag_index: HashMap<String, usize> = HashMap::new();
    let mut section: Option<String> = None;

    let mut fence: (u8, usize) = (0, 0); // the opening fence's character and length
    let mut fence_quoted = false;
    let mut comment: Option<&'static str> = None;
    let mut indented_code = false;
    let mut prev_blank = true;
    let mut in_list = false;

    for (i, raw) in body.split('\n').enumerate() {
        let lineno = first_line.wrapping_add(i as i64);
        let mut line: Cow<str> = Cow::Borrowed(raw.strip_suffix('\r').unwrap_or(raw));
        if fence.1 > 0 {
            let mut s = line.trim_start_matches(is_blank);
            if fence_quoted {
                if !s.starts_with('>') {
                    fence = (0, 0); // the blockquote ended, and the fence with it
                } else {
                    s = strip_quote_prefix(s).trim_start_matches(is_blank);
                }
            }
            if fence.1 > 0 {
                let s = s.trim_end_matches(is_blank);
                if s.len() >= fence.1 && s.bytes().all(|b| b == fence.0) {
                    fence = (0, 0);
                    prev_blank = false;
                }
                continue;
            }
        }
        let resumed = comment.is_some();
        if let Some(closer) = comment {
            let Some(found) = line.find(closer) else {
                continue;
            };
            line = Cow::Owned(format!(" {}", &line[found + closer.len()..]));
            comment = None;
        } else {
            let stripped = line.trim_start_matches(is_blank);
            if stripped.is_empty() {
                prev_blank = true;
                continue;
            }
            let indent = indent_width(&line);
            let first = stripped.as_bytes()[0];
            let is_item = matches!(first, b'-' | b'*' | b'+' | b'0'..=b'9') && list_item(stripped);
            if indented_code && indent >= 4 {
                continue;
            }
            indented_code = false;
            if indent >= 4 && prev_blank && !in_list && !is_item {
                indented_code = true;
                continue;
            }
            if is_item {
                in_list = true;
            } else if prev_blank && indent == 0 {
                in_list = false;
            }
            prev_blank = false;
            let quoted = first == b'>';
            let opener = if quoted {
                strip_quote_prefix(stripped).trim_start_matches(is_blank)
            } else {
                stripped
            };
            if opener.starts_with("```") || opener.starts_with("~~~") {
                // _FENCE_OPEN: the fence run, then anything; a backtick fence's info
                // string holds no backtick.
                let c = opener.as_bytes()[0];
                let run = opener.bytes().take_while(|&b| b == c).count();
                if !(c == b'`' && opener[run..].contains('`')) {
                    fence = (c, run);
                    fence_quoted = quoted;
                    continue;
                }
            }
        }

        let seen = Seen::of(&line);
        let inline_special = seen.backtick
            || (seen.percent && line.contains("%%"))
            || (seen.lt && line.contains("<!--"));
        let (text, scan): (Cow<str>, Cow<str>) = if inline_special {
            let (words, scan, open) = mask_inline(&line);
            comment = open;
            (Cow::Owned(words), Cow::Owned(scan))
        } else {
            (Cow::Borrowed(&*line), Cow::Borrowed(&*line))
        };
        out.words += count_words(&text);
        let unlinked: &str = &scan; // code and comments masked, links still there: for fields
                                    // What `line` lacks, the texts made from it lack too.
        let scan: Cow<str> = if seen.bracket && unlinked.contains('[') {
            links(unlinked, lineno, &mut out.links)
        } else {
            Cow::Borrowed(unlinked)
        };
        if seen.hash && scan.contains('#') {
            tags(&scan, &mut out.tags, &mut tag_index);
        }
        if seen.caret && scan.contains('^') {
            if let Some(id) = block_id(&scan) {
                out.blocks.push(Block {
                    id: id.to_string(),
                    line: lineno,
                });
            }
        }
        let has_fields = seen.colon
            && unlinked.contains("::")
            && (unlinked.len() <= MAX_LINE || unlinked.chars().count() <= MAX_LINE)
            && out.fields.len() < MAX_FIELDS;
        if resumed {
            if has_fields {
                add_fields(&mut out.fields, bracketed(unlinked), lineno, false);
            }
            continue;
        }
        if let Some((level, raw)) = heading(&text) {
            section = heading_text(raw).map(str::to_string);
            if let Some(found) = &section {
                out.headings.push(Heading {
                    level,
                    text: found.clone(),
                    line: lineno,
                });
                if out.title.is_none() && level == 1 {
                    out.title = Some(found.clone());
                }
            }
        }
        let task = if seen.bracket && text.contains('[') {
            task(&text)
        } else {
            None
        };
        let pairs = if has_fields {
            bracketed(unlinked)
        } else {
            Vec::new()
        };
        if let Some((mark, rest)) = task {
            out.tasks.push(Task {
                line: lineno,
                done: !is_space(mark),
                text: strip(rest).to_string(),
                status: mark,
                section: section.clone(),
                meta: task_meta(unlinked, &pairs),
            });
            add_fields(&mut out.fields, pairs, lineno, true);
        } else if !pairs.is_empty() {
            add_fields(&mut out.fields, pairs, lineno, false);
        } else if has_fields {
            if let Some((key, value)) = full_line(unlinked) {
                add_fields(&mut out.fields, vec![(0, key, value)], lineno, false);
            }
        }
    }
    out
}

/// Which of the characters the rules start from a line holds, found in one pass (a
/// search per character and per string costs more on the short lines of a note).
#[derive(Default)]
struct Seen {
    backtick: bool,
    percent: bool,
    lt: bool,
    bracket: bool,
    hash: bool,
    caret: bool,
    colon: bool,
}

impl Seen {
    fn of(line: &str) -> Seen {
        let mut seen = Seen::default();
        for b in line.bytes() {
            match b {
                b'`' => seen.backtick = true,
                b'%' => seen.percent = true,
                b'<' => seen.lt = true,
                b'[' => seen.bracket = true,
                b'#' => seen.hash = true,
                b'^' => seen.caret = true,
                b':' => seen.colon = true,
                _ => {}
            }
        }
        seen
    }
}

/// body.py _QUOTE_PREFIX removed from `s`, which starts with '>': `(?:>[ \t]?)+`.
fn strip_quote_prefix(s: &str) -> &str {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i] == b'>' {
        i += 1;
        if i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
    }
    &s[i..]
}

/// body.py _indent: the width of the leading spaces and tabs (tab stops of 4).
fn indent_width(line: &str) -> usize {
    let mut width = 0;
    for b in line.bytes() {
        match b {
            b' ' => width += 1,
            b'\t' => width += 4 - width % 4,
            _ => break,
        }
    }
    width
}

/// `\d{1,9}[.)]` at the start of `s`: the byte after it. A run of more than 9 digits
/// fails whatever the engine tries, as the character after 9 of them is a digit.
fn ordered_marker(s: &str) -> Option<usize> {
    let mut digits = 0;
    for (k, c) in s.char_indices() {
        if is_decimal(c) {
            digits += 1;
            if digits > 9 {
                return None;
            }
        } else if digits > 0 && (c == '.' || c == ')') {
            return Some(k + 1);
        } else {
            return None;
        }
    }
    None
}

/// body.py _LIST_ITEM matches at the start of `s`: `(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)`.
fn list_item(s: &str) -> bool {
    let after = match s.as_bytes()[0] {
        b'-' | b'*' | b'+' => 1,
        _ => match ordered_marker(s) {
            Some(k) => k,
            None => return false,
        },
    };
    matches!(s.as_bytes().get(after), None | Some(b' ' | b'\t'))
}

/// body.py _mask_inline: (text without comments, text without comments and code
/// spans, the closer of a comment left open).
fn mask_inline(text: &str) -> (String, String, Option<&'static str>) {
    let b = text.as_bytes();
    let mut words = String::with_capacity(text.len());
    let mut scan = String::with_capacity(text.len());
    // backtick run length -> run starts, indexed once so that many runs stay linear
    let mut runs: Option<HashMap<usize, Vec<usize>>> = None;
    let mut pos = 0;
    loop {
        let Some(start) = inline_special(b, pos) else {
            words.push_str(&text[pos..]);
            scan.push_str(&text[pos..]);
            return (words, scan, None);
        };
        words.push_str(&text[pos..start]);
        scan.push_str(&text[pos..start]);
        if b[start] == b'`' {
            // A run found from `pos` is a whole run: `pos` never falls inside one.
            let end = start + b[start..].iter().take_while(|&&x| x == b'`').count();
            let runs = runs.get_or_insert_with(|| backtick_runs(b));
            let same = runs.get(&(end - start)).map_or(&[][..], Vec::as_slice);
            let i = same.partition_point(|&s| s < end);
            if i < same.len() {
                // the next run of the same length closes the span
                let close = same[i] + (end - start);
                words.push_str(&text[start..close]);
                scan.push(MASK);
                pos = close;
            } else {
                // no closing run: literal backticks
                words.push_str(&text[start..end]);
                scan.push_str(&text[start..end]);
                pos = end;
            }
            continue;
        }
        let (closer, end) = if b[start] == b'%' {
            ("%%", start + 2)
        } else {
            ("-->", start + 4)
        };
        words.push(' ');
        scan.push(' ');
        match text[end..].find(closer) {
            None => return (words, scan, Some(closer)),
            Some(found) => pos = end + found + closer.len(),
        }
    }
}

/// body.py _INLINE_SPECIAL: the first "`", "<!--" or "%%" at or after `pos`.
fn inline_special(b: &[u8], pos: usize) -> Option<usize> {
    let mut i = pos;
    while i < b.len() {
        match b[i] {
            b'`' => return Some(i),
            b'%' if b.get(i + 1) == Some(&b'%') => return Some(i),
            b'<' if b[i..].starts_with(b"<!--") => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn backtick_runs(b: &[u8]) -> HashMap<usize, Vec<usize>> {
    let mut runs: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'`' {
            let start = i;
            while i < b.len() && b[i] == b'`' {
                i += 1;
            }
            runs.entry(i - start).or_default().push(start);
        } else {
            i += 1;
        }
    }
    runs
}

/// len(text.split()).
fn count_words(text: &str) -> u64 {
    if text.is_ascii() {
        let mut count = 0;
        let mut in_word = false;
        for &b in text.as_bytes() {
            let space = matches!(b, b'\t'..=b'\r' | 0x1c..=0x1f | b' ');
            count += u64::from(!space && !in_word);
            in_word = !space;
        }
        return count;
    }
    let mut count = 0;
    let mut in_word = false;
    for c in text.chars() {
        let space = is_space(c);
        if !space && !in_word {
            count += 1;
        }
        in_word = !space;
    }
    count
}

/// One match of body.py _LINK at a '['.
enum LinkMatch<'a> {
    Wiki(&'a str),
    Markdown { label: &'a str, dest: &'a str },
}

/// body.py _LINK matched at byte `at` of `text`, a '[' (the optional '!' before it is
/// the caller's): what matched and the byte after the match.
fn match_link(text: &str, at: usize) -> Option<(LinkMatch<'_>, usize)> {
    let b = text.as_bytes();
    // \[\[([^\[\]\n]+)\]\] : the run cannot give back a ']', so only its whole length can do.
    if b.get(at + 1) == Some(&b'[') {
        let e = find_any(b, at + 2, b"[]\n");
        if e > at + 2 && b[e..].starts_with(b"]]") {
            return Some((LinkMatch::Wiki(&text[at + 2..e]), e + 2));
        }
    }
    // \[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\( : each step starts with another character,
    // and giving one back leaves no ']' where one is needed.
    let mut i = at + 1;
    loop {
        match b.get(i) {
            Some(b'[') => {
                let j = find_any(b, i + 1, b"[]\n");
                if b.get(j) != Some(&b']') {
                    break;
                }
                i = j + 1;
            }
            Some(b']' | b'\n') | None => break,
            Some(_) => i += 1,
        }
    }
    if !b[i..].starts_with(b"](") {
        return None;
    }
    let label = &text[at + 1..i];
    let q = i + 2;
    // \s*(?:<([^<>\n]*)>|([^\s()<>]*(?:\([^\s()]*\)[^\s()<>]*)*)) then the tail
    let p = skip(text, q, is_space);
    if b.get(p) == Some(&b'<') {
        let e = find_any(b, p + 1, b"<>\n");
        if b.get(e) == Some(&b'>') {
            if let Some(end) = link_tail(text, e + 1) {
                let dest = &text[p + 1..e];
                return Some((LinkMatch::Markdown { label, dest }, end));
            }
        }
        // Every other path puts an empty destination, a title or ')' at the '<': none fits.
        return None;
    }
    let r = dest_end(text, p);
    if let Some(end) = link_tail(text, r) {
        return Some((
            LinkMatch::Markdown {
                label,
                dest: &text[p..r],
            },
            end,
        ));
    }
    // A shorter destination leaves a character that is neither space nor ')' after it.
    // What is left: `\s*` gives back its spaces, the destination is empty, and the
    // title's `\s+` takes them, for a title at `p`.
    if p > q {
        if let Some(t) = link_title(b, p) {
            let u = skip(text, t, is_space);
            if b.get(u) == Some(&b')') {
                return Some((LinkMatch::Markdown { label, dest: "" }, u + 1));
            }
        }
    }
    None
}

fn dest_char(c: char) -> bool {
    !is_space(c) && !matches!(c, '(' | ')' | '<' | '>')
}

/// `[^\s()<>]*(?:\([^\s()]*\)[^\s()<>]*)*` from byte `p`: where it ends.
fn dest_end(text: &str, p: usize) -> usize {
    let b = text.as_bytes();
    let mut i = skip(text, p, dest_char);
    while b.get(i) == Some(&b'(') {
        let j = skip(text, i + 1, |c| !is_space(c) && c != '(' && c != ')');
        if b.get(j) != Some(&b')') {
            break;
        }
        i = skip(text, j + 1, dest_char);
    }
    i
}

/// `(?:\s+(?:"[^"\n]*"|'[^'\n]*'|\([^()\n]*\)))?\s*\)` from byte `r`: the end.
fn link_tail(text: &str, r: usize) -> Option<usize> {
    let b = text.as_bytes();
    let s = skip(text, r, is_space);
    if s > r {
        if let Some(t) = link_title(b, s) {
            let u = skip(text, t, is_space);
            if b.get(u) == Some(&b')') {
                return Some(u + 1);
            }
        }
    }
    (b.get(s) == Some(&b')')).then_some(s + 1)
}

/// `"[^"\n]*"|'[^'\n]*'|\([^()\n]*\)` at byte `s`: the byte after it.
fn link_title(b: &[u8], s: usize) -> Option<usize> {
    let (stops, close): (&[u8], u8) = match b.get(s)? {
        b'"' => (b"\"\n", b'"'),
        b'\'' => (b"'\n", b'\''),
        b'(' => (b"()\n", b')'),
        _ => return None,
    };
    let e = find_any(b, s + 1, stops);
    (b.get(e) == Some(&close)).then_some(e + 1)
}

/// body.py _links: push the links of `text`, give back `text` with each link masked.
fn links<'t>(text: &'t str, line: i64, out: &mut Vec<Link>) -> Cow<'t, str> {
    let b = text.as_bytes();
    let mut masked = String::new();
    let mut pos = 0;
    let mut at = text.find('[');
    while let Some(a) = at {
        let start = if a > pos && b[a - 1] == b'!' {
            a - 1
        } else {
            a
        };
        let Some((found, end)) = match_link(text, a) else {
            at = text[a + 1..].find('[').map(|k| a + 1 + k);
            continue;
        };
        match found {
            LinkMatch::Wiki(inner) => out.extend(wikilink(inner, start < a, line)),
            LinkMatch::Markdown { label, dest } => {
                out.extend(mdlink(label, dest, line));
                if label.contains("](") {
                    // [![image](a.png)](b.md); a label's own labels hold no bracket,
                    // so this goes one level deep at most.
                    links(label, line, out);
                }
            }
        }
        masked.push_str(&text[pos..start]);
        masked.push(MASK);
        pos = end;
        at = text[pos..].find('[').map(|k| pos + k);
    }
    if pos == 0 {
        return Cow::Borrowed(text);
    }
    masked.push_str(&text[pos..]);
    Cow::Owned(masked)
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// A link's `#heading` or `#^block` part: (heading, block).
fn subpath(sub: &str) -> (Option<String>, Option<String>) {
    match sub.strip_prefix('^') {
        Some(block) => (None, nonempty(strip(block))),
        None => (nonempty(strip(sub)), None),
    }
}

/// body.py _wikilink.
fn wikilink(inner: &str, embed: bool, line: i64) -> Option<Link> {
    let (mut target, alias) = match inner.split_once('|') {
        Some((t, a)) => (t, Some(a)),
        None => (inner, None),
    };
    if alias.is_some() {
        target = target.strip_suffix('\\').unwrap_or(target); // '\|' inside a table cell
    }
    let (target, (heading, block)) = match target.split_once('#') {
        Some((t, sub)) => (t, subpath(sub)),
        None => (target, (None, None)),
    };
    let target = strip(target);
    if target.is_empty() && heading.is_none() && block.is_none() {
        return None;
    }
    Some(Link {
        target: target.to_string(),
        kind: if embed { "embed" } else { "wikilink" },
        alias: alias.and_then(|a| nonempty(strip(a))),
        heading,
        block,
        line,
    })
}

/// body.py _SCHEME matches at the start: `[A-Za-z][A-Za-z0-9+.\-]*:`.
fn has_scheme(dest: &str) -> bool {
    let b = dest.as_bytes();
    if !b.first().is_some_and(u8::is_ascii_alphabetic) {
        return false;
    }
    let k = b
        .iter()
        .position(|&x| !(x.is_ascii_alphanumeric() || matches!(x, b'+' | b'.' | b'-')))
        .unwrap_or(b.len());
    b.get(k) == Some(&b':')
}

/// body.py _mdlink.
fn mdlink(label: &str, dest: &str, line: i64) -> Option<Link> {
    let dest = strip(dest);
    if dest.is_empty() || dest.starts_with('#') || dest.starts_with("//") || has_scheme(dest) {
        return None;
    }
    let (path, sub) = match dest.split_once('#') {
        Some((p, s)) => (p, Some(s)),
        None => (dest, None),
    };
    let target = unquote(path);
    let target = strip(&target);
    if target.is_empty() {
        return None;
    }
    let (heading, block) = match sub {
        Some(sub) => subpath(&unquote(sub)),
        None => (None, None),
    };
    Some(Link {
        target: target.to_string(),
        kind: "markdown",
        alias: nonempty(strip(label)),
        heading,
        block,
        line,
    })
}

/// urllib.parse.unquote(s) (UTF-8, errors='replace'): each run of ASCII characters
/// has its %XX escapes decoded and is read as UTF-8 on its own; other characters stay.
fn unquote(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        let ascii_end = b[i..]
            .iter()
            .position(|x| !x.is_ascii())
            .map_or(b.len(), |k| i + k);
        if ascii_end > i {
            let mut bytes = Vec::with_capacity(ascii_end - i);
            let mut k = i;
            while k < ascii_end {
                let hex = |x: u8| (x as char).to_digit(16);
                if b[k] == b'%' && k + 2 < ascii_end {
                    if let (Some(h), Some(l)) = (hex(b[k + 1]), hex(b[k + 2])) {
                        bytes.push((h * 16 + l) as u8);
                        k += 3;
                        continue;
                    }
                }
                bytes.push(b[k]);
                k += 1;
            }
            out.push_str(&String::from_utf8_lossy(&bytes));
            i = ascii_end;
        } else {
            let other_end = b[i..]
                .iter()
                .position(u8::is_ascii)
                .map_or(b.len(), |k| i + k);
            out.push_str(&s[i..other_end]);
            i = other_end;
        }
    }
    Cow::Owned(out)
}

/// body.py _TAG findall, counted per spelling: '#' at the start or after whitespace
/// or '(', then tag characters, not all digits.
fn tags(scan: &str, out: &mut Vec<(String, u64)>, index: &mut HashMap<String, usize>) {
    let mut prev: Option<char> = None;
    let mut it = scan.char_indices().peekable();
    while let Some((k, c)) = it.next() {
        if c == '#' && prev.is_none_or(|p| is_space(p) || p == '(') {
            let start = k + 1;
            let mut end = start;
            let mut all_digits = true;
            let mut last = c;
            while let Some(&(j, d)) = it.peek() {
                if !is_tag_char(d) {
                    break;
                }
                all_digits &= is_digit(d);
                end = j + d.len_utf8();
                last = d;
                it.next();
            }
            if end > start && !all_digits {
                let tag = &scan[start..end];
                match index.get(tag) {
                    Some(&i) => out[i].1 += 1,
                    None => {
                        index.insert(tag.to_string(), out.len());
                        out.push((tag.to_string(), 1));
                    }
                }
            }
            prev = Some(last);
        } else {
            prev = Some(c);
        }
    }
}

/// body.py _block_id: the `^id` that ends a line, if any.
fn block_id(scan: &str) -> Option<&str> {
    let at = scan.rfind('^')?;
    if at > 0 && !matches!(scan.as_bytes()[at - 1], b' ' | b'\t') {
        return None;
    }
    let found = scan[at + 1..].trim_end_matches(is_blank);
    let ok = !found.is_empty()
        && found
            .bytes()
            .all(|x| x.is_ascii_alphanumeric() || x == b'-');
    ok.then_some(found)
}

/// body.py _HEADING matched at the start: ` {0,3}(#{1,6})[ \t]+(.*)`: (level, rest).
fn heading(text: &str) -> Option<(usize, &str)> {
    let b = text.as_bytes();
    let spaces = b.iter().take_while(|&&x| x == b' ').count();
    if spaces > 3 {
        return None;
    }
    let level = b[spaces..].iter().take_while(|&&x| x == b'#').count();
    if level == 0 || level > 6 || !matches!(b.get(spaces + level), Some(b' ' | b'\t')) {
        return None;
    }
    Some((level, text[spaces + level..].trim_start_matches(is_blank)))
}

/// body.py _heading_text: the heading's content without its optional closing '#' run.
fn heading_text(raw: &str) -> Option<&str> {
    let mut text = raw.trim_end_matches(is_blank);
    let unclosed = text.trim_end_matches('#');
    if unclosed.is_empty() {
        return None;
    }
    if unclosed.len() < text.len() && unclosed.ends_with(is_blank) {
        text = unclosed.trim_end_matches(is_blank);
    }
    (!text.is_empty()).then_some(text)
}

/// body.py _TASK matched at the start:
/// `[ \t]*(?:>[ \t]*)*(?:[-*+]|\d{1,9}[.)])[ \t]+\[([^\]\n])\](?:[ \t]+(.*))?$`:
/// (status character, the rest). Every run is followed by a character it cannot hold,
/// so giving any back cannot help.
fn task(text: &str) -> Option<(char, &str)> {
    let b = text.as_bytes();
    let mut i = b.iter().take_while(|&&x| x == b' ' || x == b'\t').count();
    while b.get(i) == Some(&b'>') {
        i += 1;
        i += b[i..]
            .iter()
            .take_while(|&&x| x == b' ' || x == b'\t')
            .count();
    }
    i += match b.get(i)? {
        b'-' | b'*' | b'+' => 1,
        _ => ordered_marker(&text[i..])?,
    };
    let blanks = b[i..]
        .iter()
        .take_while(|&&x| x == b' ' || x == b'\t')
        .count();
    if blanks == 0 || b.get(i + blanks) != Some(&b'[') {
        return None;
    }
    i += blanks + 1;
    let mark = text[i..].chars().next()?;
    if mark == ']' || mark == '\n' {
        return None;
    }
    i += mark.len_utf8();
    if b.get(i) != Some(&b']') {
        return None;
    }
    i += 1;
    match b.get(i) {
        None => Some((mark, "")),
        Some(b' ' | b'\t') => Some((mark, text[i..].trim_start_matches(is_blank))),
        Some(_) => None,
    }
}

fn add_fields(out: &mut Vec<Field>, found: Vec<(usize, String, String)>, line: i64, task: bool) {
    let room = MAX_FIELDS - out.len();
    for (_, key, value) in found.into_iter().take(room) {
        let key = key.replace(MASK, "");
        let key = strip(&key);
        if !key.is_empty() {
            let value = value.replace(MASK, "");
            out.push(Field {
                key: key.to_string(),
                value: strip(&value).to_string(),
                line,
                task,
            });
        }
    }
}

// ---------------------------------------------------------------------------------
// fields.py

fn strip_chars(s: &[char]) -> String {
    let start = s.iter().position(|&c| !is_space(c)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&c| !is_space(c))
        .map_or(start, |k| k + 1);
    s[start..end.max(start)].iter().collect()
}

fn find_char(s: &[char], c: char, from: usize) -> Option<usize> {
    s.get(from..)?
        .iter()
        .position(|&x| x == c)
        .map(|k| from + k)
}

fn find_sep(s: &[char], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < s.len() {
        if s[i] == ':' && s[i + 1] == ':' {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// fields.py bracketed: (start, key, value) of each `[key:: value]` and
/// `(key:: value)` in the line, in line order. Positions and the budget count code
/// points, as Python's do.
fn bracketed(line: &str) -> Vec<(usize, String, String)> {
    let s: Vec<char> = line.chars().collect();
    let n = s.len() as i64;
    let mut found = Vec::new();
    let mut budget: i64 = 2 * n + 256;
    for (opener, closer) in [('[', ']'), ('(', ')')] {
        let mut at = find_char(&s, opener, 0);
        while let Some(a) = at {
            if budget <= 0 {
                break;
            }
            let Some(sep) = find_sep(&s, a + 1) else {
                break;
            };
            budget -= (sep - a) as i64;
            if s[a + 1..sep]
                .iter()
                .any(|c| matches!(c, '[' | ']' | '(' | ')'))
            {
                at = find_char(&s, opener, a + 1);
                continue;
            }
            let stop = n.min(sep as i64 + 2 + budget.max(0)) as usize;
            let end = closing(&s, sep + 2, stop, opener, closer);
            budget -= (end.unwrap_or(stop) - sep) as i64;
            let key = strip_chars(&s[a + 1..sep]);
            match end {
                Some(end) if !key.is_empty() => {
                    found.push((a, key, strip_chars(&s[sep + 2..end])));
                    at = find_char(&s, opener, end + 1);
                }
                _ => at = find_char(&s, opener, a + 1),
            }
        }
    }
    found.sort_by_key(|f| f.0);
    found
}

/// fields.py _closing: where the bracket closing a field whose value starts at
/// `start` is. Tokens as `\\+[^\\]?|[\[\]]` finds them in s[..stop].
fn closing(s: &[char], start: usize, stop: usize, opener: char, closer: char) -> Option<usize> {
    let mut nesting = 0i64;
    let mut i = start;
    while i < stop {
        let (token, at) = if s[i] == '\\' {
            let mut j = i;
            while j < stop && s[j] == '\\' {
                j += 1;
            }
            if j == stop || (j - i) % 2 == 1 {
                i = j + 1; // an escaped character, or nothing after the run
                continue;
            }
            (s[j], j)
        } else {
            (s[i], i)
        };
        i = at + 1;
        if token == opener {
            nesting += 1;
        } else if token == closer {
            nesting -= 1;
            if nesting < 0 {
                return Some(at);
            }
        }
    }
    None
}

/// fields.py full_line: (key, value) of a `Key:: value` line, or None.
fn full_line(text: &str) -> Option<(String, String)> {
    let sep = text.find("::")?;
    if sep > MAX_KEY && text[..sep].chars().count() > MAX_KEY {
        return None;
    }
    let mut raw = strip(&text[..sep]);
    if let Some(k) = ordered_marker(raw) {
        // _ORDERED: `\d{1,9}[.)][ \t]+`
        let blanks = raw[k..]
            .bytes()
            .take_while(|&x| x == b' ' || x == b'\t')
            .count();
        if blanks > 0 {
            raw = &raw[k + blanks..];
        }
    }
    // _FULL_KEY, possessive: `[^\w]*+([\w\s/\-EMOJI]++)[_*~`]*+` filling `raw`.
    let i = skip(raw, 0, |c| !is_word(c));
    let j = skip(raw, i, |c| {
        is_word(c) || is_space(c) || c == '/' || c == '-' || is_emoji(c)
    });
    let k = skip(raw, j, |c| matches!(c, '_' | '*' | '~' | '`'));
    if j == i || k != raw.len() {
        return None;
    }
    let key = strip(&raw[i..j]);
    (!key.is_empty()).then(|| (key.to_string(), strip(&text[sep + 2..]).to_string()))
}

/// fields.py canonical: Dataview's sanitized name of a key.
fn canonical(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if is_alpha(c) || c.is_ascii_digit() || c == '_' || c == '-' {
            push_lower(&mut out, c);
        } else if is_space(c) {
            out.push('-');
        } else if is_emoji(c) {
            out.push(c);
        }
    }
    out
}

/// fields.py _date: the ISO date a value starts with, if it is a real date
/// (`\d{4}-\d{2}-\d{2}`, then what datetime.date.fromisoformat takes: ASCII digits;
/// a first ten characters not all ASCII are no date either way).
fn date(text: &str) -> Option<String> {
    let head: String = text.chars().take(10).collect();
    let (year, month, day) = dashed(head.as_bytes(), 0, b"-")?;
    valid_date(year, month, day).then_some(head)
}

/// The number of the ASCII digits at b[at..at + n], if they are all digits.
pub(crate) fn number(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let digits = b.get(at..at + n)?;
    digits
        .iter()
        .all(u8::is_ascii_digit)
        .then(|| digits.iter().fold(0, |v, d| v * 10 + i64::from(d - b'0')))
}

/// yyyy, a separator of `seps`, mm, a separator, dd at b[at..]: (y, m, d).
pub(crate) fn dashed(b: &[u8], at: usize, seps: &[u8]) -> Option<(i64, i64, i64)> {
    let sep = |i: usize| b.get(i).is_some_and(|c| seps.contains(c));
    let (y, m, d) = (
        number(b, at, 4)?,
        number(b, at + 5, 2)?,
        number(b, at + 8, 2)?,
    );
    (sep(at + 4) && sep(at + 7)).then_some((y, m, d))
}

/// Whether year-month-day is a date datetime.date takes (years 1 to 9999, the
/// proleptic Gregorian calendar's month lengths).
pub(crate) fn valid_date(year: i64, month: i64, day: i64) -> bool {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=9999).contains(&year) && (1..=days).contains(&day)
}

/// fields.py _TASK_DATES, in their order: (index in TASK_FIELDS, the emoji).
const TASK_DATES: [(usize, &[char]); 5] = [
    (3, &['\u{2795}']),
    (2, &['\u{1f6eb}']),
    (1, &['\u{23f3}', '\u{231b}']),
    (0, &['\u{1f4c5}', '\u{1f4c6}', '\u{1f5d3}']),
    (4, &['\u{2705}']),
];

/// fields.py _PRIORITIES.
const PRIORITIES: [(char, &str); 5] = [
    ('\u{1f53a}', "highest"),
    ('\u{23eb}', "high"),
    ('\u{1f53c}', "medium"),
    ('\u{1f53d}', "low"),
    ('\u{23ec}', "lowest"),
];

/// The first `EMOJI\ufe0f?\s*(\d{4}-\d{2}-\d{2})` of the line: the date's text.
fn emoji_date<'a>(line: &'a str, emoji: &[char]) -> Option<&'a str> {
    for (k, c) in line.char_indices() {
        if !emoji.contains(&c) {
            continue;
        }
        let mut i = k + c.len_utf8();
        if line[i..].starts_with('\u{fe0f}') {
            i += '\u{fe0f}'.len_utf8();
        }
        i = skip(line, i, is_space);
        let mut end = i;
        let mut ok = true;
        for (n, d) in line[i..].chars().take(10).enumerate() {
            ok &= if n == 4 || n == 7 {
                d == '-'
            } else {
                is_decimal(d)
            };
            end += d.len_utf8();
        }
        if ok && line[i..end].chars().count() == 10 {
            return Some(&line[i..end]);
        }
    }
    None
}

/// fields.py task_meta: the dates and priority of a task line (TASK_FIELDS order).
fn task_meta(line: &str, fields: &[(usize, String, String)]) -> [Option<String>; 6] {
    let mut meta: [Option<String>; 6] = Default::default();
    for (_, key, value) in fields {
        let name = canonical(key);
        if name == "priority" {
            let head: Vec<char> = value.chars().take(64).collect();
            meta[5] = nonempty(&py_lower(&head));
        } else if let Some(k) = TASK_FIELDS[..5].iter().position(|f| *f == name) {
            meta[k] = date(value);
        }
    }
    for (k, emoji) in TASK_DATES {
        if let Some(found) = emoji_date(line, emoji) {
            if let Some(d) = date(found) {
                meta[k] = Some(d);
            }
        }
    }
    if let Some((_, name)) = line
        .chars()
        .find_map(|c| PRIORITIES.iter().find(|(p, _)| *p == c))
    {
        meta[5] = Some(name.to_string());
    }
    meta
}

// ---------------------------------------------------------------------------------
// Python

/// What `ccc_watch._redb.scan_body` gives back: body.py `Body`'s fields, in order.
type PyBody = (
    Option<String>,
    Py<PyList>,
    Py<PyDict>,
    Py<PyList>,
    u64,
    Py<PyList>,
    Py<PyList>,
    Py<PyList>,
);

/// Scan a note's body as ccc_watch/index/body.py does: (title, links, tags, tasks,
/// words, headings, blocks, fields). The scan runs without the GIL; a str that has no
/// UTF-8 form (lone surrogates) raises UnicodeEncodeError.
#[pyfunction]
#[pyo3(name = "scan_body")]
pub fn py_scan_body(body: &Bound<'_, PyString>, first_line: i64) -> PyResult<PyBody> {
    let py = body.py();
    let text = body.to_str()?;
    let found = py
        .detach(|| crate::guarded(|| scan_body(text, first_line)))
        .map_err(|what| {
            crate::InternalError::new_err(format!(
                "internal error, a bug in ccc_watch._redb's body scanner: {what}"
            ))
        })?;
    to_python(py, found)
}

fn to_python(py: Python<'_>, found: Body) -> PyResult<PyBody> {
    let links = PyList::empty(py);
    for l in found.links {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "target"), l.target)?;
        d.set_item(intern!(py, "kind"), l.kind)?;
        d.set_item(intern!(py, "alias"), l.alias)?;
        d.set_item(intern!(py, "heading"), l.heading)?;
        d.set_item(intern!(py, "block"), l.block)?;
        d.set_item(intern!(py, "line"), l.line)?;
        links.append(d)?;
    }
    let tags = PyDict::new(py);
    for (tag, count) in found.tags {
        tags.set_item(tag, count)?;
    }
    let field_names = [
        intern!(py, "due"),
        intern!(py, "scheduled"),
        intern!(py, "start"),
        intern!(py, "created"),
        intern!(py, "completion"),
        intern!(py, "priority"),
    ];
    let tasks = PyList::empty(py);
    for t in found.tasks {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "line"), t.line)?;
        d.set_item(intern!(py, "done"), t.done)?;
        d.set_item(intern!(py, "text"), t.text)?;
        d.set_item(intern!(py, "status"), t.status)?;
        d.set_item(intern!(py, "section"), t.section)?;
        for (name, value) in field_names.iter().zip(t.meta) {
            d.set_item(name, value)?;
        }
        tasks.append(d)?;
    }
    let headings = PyList::empty(py);
    for h in found.headings {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "level"), h.level)?;
        d.set_item(intern!(py, "text"), h.text)?;
        d.set_item(intern!(py, "line"), h.line)?;
        headings.append(d)?;
    }
    let blocks = PyList::empty(py);
    for b in found.blocks {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "id"), b.id)?;
        d.set_item(intern!(py, "line"), b.line)?;
        blocks.append(d)?;
    }
    let fields = PyList::empty(py);
    for f in found.fields {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "key"), f.key)?;
        d.set_item(intern!(py, "value"), f.value)?;
        d.set_item(intern!(py, "line"), f.line)?;
        d.set_item(intern!(py, "task"), f.task)?;
        fields.append(d)?;
    }
    Ok((
        found.title,
        links.unbind(),
        tags.unbind(),
        tasks.unbind(),
        found.words,
        headings.unbind(),
        blocks.unbind(),
        fields.unbind(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace_and_lower() {
        assert!(is_space('\x1c') && is_space('\u{85}') && is_space('\u{3000}'));
        assert!(!is_space('\u{200b}'));
        let s: Vec<char> = "ΑΣ.Σ x".chars().collect();
        assert_eq!(py_lower(&s), "ασ.ς x"); // as Python 3.11 gives it
        assert_eq!(canonical("Due Date"), "due-date");
    }

    #[test]
    fn unquote_reads_ascii_runs_alone() {
        assert_eq!(unquote("a%20b"), "a b");
        assert_eq!(unquote("%C3%A9"), "é");
        assert_eq!(unquote("%C3é"), "\u{fffd}é");
        assert_eq!(unquote("%%41%4"), "%A%4");
    }
}
