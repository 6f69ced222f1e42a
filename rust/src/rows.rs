//! The mirror's rows as Arrow buffers, straight from the records' dicts: what
//! `[f(item.get(name)) for item in items]` and then `pa.array(values, type)` give
//! (ccc_watch/mirror/rows.py), in one pass and without a Python object per value.
//!
//! Only what is exact is built here. A column with a value this code does not take
//! exactly as Python would (another type, a str with lone surrogates, a number out of
//! range) comes back as None, and rows.py builds that column itself: pyarrow's own
//! conversion (or its error) then decides, never this.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::scan::{dashed, number, valid_date};

/// How a column's values are taken from the field (each with None as null):
/// 's' a str; 'q' an int (int64) and 'i' (int32), never a bool; 'b' a bool; 'L' a list
/// of str (`value or []`); 'm' an int of nanoseconds as microseconds (`ns // 1000`);
/// 'u' seconds (float or int) as microseconds (`round(seconds * 1_000_000)`); 'f' a
/// path's folder (`path.rpartition("/")[0]`); 'd' a date (date32) from a str
/// `yyyy-mm-dd` (`date.fromisoformat(v) if v else None`, an invalid date None; any
/// other str is left to Python, any value not a str is None).
const KINDS: &[u8] = b"sqibLmufd";

/// One column being built: validity bits, offsets (strings and lists), values.
struct Column {
    kind: u8,
    rows: usize,
    valid: Vec<u8>,
    nulls: usize,
    offsets: Vec<i32>,
    data: Vec<u8>,
    // list<str>: the strings' own offsets (their bytes are in data).
    items: Vec<i32>,
    ok: bool,
}

impl Column {
    fn new(kind: u8) -> Self {
        let offsets = if matches!(kind, b's' | b'L' | b'f') {
            vec![0]
        } else {
            Vec::new()
        };
        let items = if kind == b'L' { vec![0] } else { Vec::new() };
        Column {
            kind,
            rows: 0,
            valid: Vec::new(),
            nulls: 0,
            offsets,
            data: Vec::new(),
            items,
            ok: KINDS.contains(&kind),
        }
    }

    fn set_valid(&mut self, valid: bool) {
        if self.rows.is_multiple_of(8) {
            self.valid.push(0);
        }
        if valid {
            self.valid[self.rows / 8] |= 1 << (self.rows % 8);
        } else {
            self.nulls += 1;
        }
        self.rows += 1;
    }

    fn push_bytes(&mut self, bytes: &[u8]) -> bool {
        self.data.extend_from_slice(bytes);
        match i32::try_from(self.data.len()) {
            Ok(end) => {
                self.offsets.push(end);
                true
            }
            Err(_) => false, // over 2 GiB: pyarrow chunks it, not this
        }
    }

    fn push_int(&mut self, n: i64) -> bool {
        if matches!(self.kind, b'i' | b'd') {
            match i32::try_from(n) {
                Ok(n) => self.data.extend_from_slice(&n.to_le_bytes()),
                Err(_) => return false,
            }
        } else {
            self.data.extend_from_slice(&n.to_le_bytes());
        }
        true
    }

    /// A null, as a missing field or None gives.
    fn push_none(&mut self) {
        match self.kind {
            b'L' => {
                // `None or []`: an empty list, not a null.
                self.offsets.push(*self.offsets.last().unwrap_or(&0));
                self.set_valid(true);
                return;
            }
            b's' | b'f' => self.offsets.push(*self.offsets.last().unwrap_or(&0)),
            b'q' | b'i' | b'm' | b'u' | b'd' => {
                self.data.extend_from_slice(&[0; 8][..self.width()])
            }
            _ => {}
        }
        self.set_valid(false);
    }

    fn width(&self) -> usize {
        if matches!(self.kind, b'i' | b'd') {
            4
        } else {
            8
        }
    }

    /// Add one value (the field's, present); false when it is not taken exactly.
    fn push(&mut self, value: &Bound<'_, PyAny>) -> bool {
        if value.is_none() {
            self.push_none();
            return true;
        }
        let taken = match self.kind {
            b's' => str_of(value).is_some_and(|text| self.push_bytes(text.as_bytes())),
            b'f' => str_of(value).is_some_and(|text| {
                let folder = text.rfind('/').map_or("", |at| &text[..at]);
                self.push_bytes(folder.as_bytes())
            }),
            b'q' | b'i' => int_of(value).is_some_and(|n| self.push_int(n)),
            b'm' => int_of(value).is_some_and(|ns| self.push_int(ns.div_euclid(1000))),
            b'u' => micros(value).is_some_and(|us| self.push_int(us)),
            b'd' => {
                // `date.fromisoformat(v) if v else None`: a falsy value, or no str, is
                // None, and so is an invalid yyyy-mm-dd; its other forms are Python's.
                let day = match str_of(value) {
                    Some(text) if !text.is_empty() => match dashed(text.as_bytes(), 0, b"-") {
                        Some((y, m, d)) if text.len() == 10 => Some(ymd(y, m, d)),
                        _ => None,
                    },
                    _ => Some(None),
                };
                return day.is_some_and(|day| self.push_opt_int(day.map(i64::from)));
            }
            b'b' => match value.cast::<PyBool>() {
                Ok(flag) => {
                    self.data.push(u8::from(flag.is_true()));
                    true
                }
                Err(_) => false,
            },
            _ => self.push_list(value),
        };
        if taken {
            self.set_valid(true);
        }
        taken
    }

    /// list<str>: a list of str (`value or []`: any other falsy value is an empty one).
    fn push_list(&mut self, value: &Bound<'_, PyAny>) -> bool {
        let Ok(list) = value.cast::<PyList>() else {
            return !value.is_truthy().unwrap_or(true) && {
                self.offsets.push(*self.offsets.last().unwrap_or(&0));
                true
            };
        };
        for item in list.iter() {
            if !str_of(&item).is_some_and(|text| self.push_item(&text)) {
                return false;
            }
        }
        self.end_list()
    }

    /// One str of the list<str> being pushed.
    fn push_item(&mut self, text: &str) -> bool {
        self.data.extend_from_slice(text.as_bytes());
        i32::try_from(self.data.len()).is_ok_and(|end| {
            self.items.push(end);
            true
        })
    }

    /// The end of the list<str> whose items were pushed.
    fn end_list(&mut self) -> bool {
        i32::try_from(self.items.len() - 1).is_ok_and(|end| {
            self.offsets.push(end);
            true
        })
    }

    /// (kind, length, nulls, validity, offsets, data, item offsets) for rows.py.
    fn into_py(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let bytes = |raw: &[i32]| -> Vec<u8> { raw.iter().flat_map(|o| o.to_le_bytes()).collect() };
        let data = if self.kind == b'b' {
            // Arrow's booleans are bits.
            let mut bits = vec![0u8; self.rows.div_ceil(8)];
            for (row, &flag) in self.data.iter().enumerate() {
                bits[row / 8] |= flag << (row % 8);
            }
            bits
        } else {
            self.data
        };
        let optional = |raw: &[i32]| -> Py<PyAny> {
            if raw.is_empty() {
                py.None()
            } else {
                PyBytes::new(py, &bytes(raw)).into_any().unbind()
            }
        };
        let items = [
            PyBytes::new(py, &[self.kind]).into_any().unbind(),
            self.rows.into_pyobject(py)?.into_any().unbind(),
            self.nulls.into_pyobject(py)?.into_any().unbind(),
            PyBytes::new(py, &self.valid).into_any().unbind(),
            optional(&self.offsets),
            PyBytes::new(py, &data).into_any().unbind(),
            optional(&self.items),
        ];
        Ok(PyTuple::new(py, items)?.into_any().unbind())
    }
}

/// A str's UTF-8 (None for another type, or a str with lone surrogates).
fn str_of<'a>(value: &'a Bound<'_, PyAny>) -> Option<std::borrow::Cow<'a, str>> {
    value
        .cast::<PyString>()
        .ok()?
        .to_str()
        .ok()
        .map(std::borrow::Cow::Borrowed)
}

/// An int (not a bool) that fits in i64.
fn int_of(value: &Bound<'_, PyAny>) -> Option<i64> {
    if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
        return None;
    }
    value.extract::<i64>().ok()
}

/// `round(seconds * 1_000_000)` for a float or an int (not a bool), when it fits.
fn micros(value: &Bound<'_, PyAny>) -> Option<i64> {
    if let Some(n) = int_of(value) {
        return n.checked_mul(1_000_000);
    }
    let seconds = value.cast::<PyFloat>().ok()?.value();
    let us = (seconds * 1_000_000.0).round_ties_even();
    // i64::MAX as f64 rounds up to 2^63, itself out of range: the bound is exclusive.
    (us.is_finite() && us >= i64::MIN as f64 && us < i64::MAX as f64).then_some(us as i64)
}

fn parse_spec<'py>(spec: &[(Bound<'py, PyString>, String)]) -> PyResult<Vec<Column>> {
    spec.iter()
        .map(|(_, kind)| match kind.as_bytes() {
            [k] if KINDS.contains(k) => Ok(Column::new(*k)),
            _ => Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown column kind {kind:?}"
            ))),
        })
        .collect()
}

fn add_row(
    cols: &mut [Column],
    spec: &[(Bound<'_, PyString>, String)],
    item: &Bound<'_, PyDict>,
) -> PyResult<()> {
    for (col, (field, _)) in cols.iter_mut().zip(spec) {
        if !col.ok {
            continue;
        }
        match item.get_item(field)? {
            Some(value) => {
                if !col.push(&value) {
                    col.ok = false;
                }
            }
            None => col.push_none(),
        }
    }
    Ok(())
}

fn finish(py: Python<'_>, cols: Vec<Column>) -> PyResult<Vec<Py<PyAny>>> {
    cols.into_iter()
        .map(|c| if c.ok { c.into_py(py) } else { Ok(py.None()) })
        .collect()
}

/// columns(items, spec) -> [column | None]
///
/// For each (field, kind) of spec, the column of that field over the dicts `items`
/// (see KINDS), as (kind, length, nulls, validity, offsets, data, item offsets); None
/// for a column with a value not taken exactly, and for all when an item is no dict.
#[pyfunction]
#[pyo3(name = "columns")]
pub fn py_columns<'py>(
    py: Python<'py>,
    items: &Bound<'py, PyList>,
    spec: Vec<(Bound<'py, PyString>, String)>,
) -> PyResult<Vec<Py<PyAny>>> {
    let mut cols = parse_spec(&spec)?;
    for item in items.iter() {
        let Ok(item) = item.cast::<PyDict>() else {
            return Ok(spec.iter().map(|_| py.None()).collect());
        };
        add_row(&mut cols, &spec, item)?;
    }
    finish(py, cols)
}

/// children(items, key, field, spec) -> [column | None]
///
/// The rows of each item's `field` list (`item.get(field) or []`), in order: first the
/// column of each row's item's `key` (a str), then its place in its item's list
/// (int32), then the columns of spec over the rows (dicts), as columns() gives them.
/// All None when an item is no dict, or its list is no list of dicts.
#[pyfunction]
#[pyo3(name = "children")]
pub fn py_children<'py>(
    py: Python<'py>,
    items: &Bound<'py, PyList>,
    key: &Bound<'py, PyString>,
    field: &Bound<'py, PyString>,
    spec: Vec<(Bound<'py, PyString>, String)>,
) -> PyResult<Vec<Py<PyAny>>> {
    let none = || Ok((0..spec.len() + 2).map(|_| py.None()).collect());
    let mut parent = Column::new(b's');
    let mut place = Column::new(b'i');
    let mut cols = parse_spec(&spec)?;
    for item in items.iter() {
        let Ok(item) = item.cast::<PyDict>() else {
            return none();
        };
        let Some(group) = item.get_item(field)? else {
            continue;
        };
        let group = match group.cast::<PyList>() {
            Ok(list) => list.clone(),
            Err(_) if !group.is_truthy()? => continue, // `or []`
            Err(_) => return none(),
        };
        if group.is_empty() {
            continue;
        }
        let Some(owner) = item.get_item(key)? else {
            return none();
        };
        for (no, child) in group.iter().enumerate() {
            let Ok(child) = child.cast::<PyDict>() else {
                return none();
            };
            if !parent.push(&owner) || !place.push_opt_int(Some(no as i64)) {
                return none();
            }
            add_row(&mut cols, &spec, child)?;
        }
    }
    let mut out = vec![parent.into_py(py)?, place.into_py(py)?];
    out.extend(finish(py, cols)?);
    Ok(out)
}

/// One note's tag rows as rows.py's _tag_rows gives them, for tags all ASCII (so that
/// sorting and lower-casing are exactly Python's); None otherwise.
fn tag_rows(tags: &Bound<'_, PyAny>) -> Option<Vec<(String, bool)>> {
    let mut explicit: Vec<String> = Vec::new();
    if let Ok(list) = tags.cast::<PyList>() {
        for tag in list.iter() {
            let text = str_of(&tag)?;
            if !text.is_ascii() {
                return None;
            }
            explicit.push(text.into_owned());
        }
    } else if tags.is_truthy().unwrap_or(true) {
        return None;
    }
    explicit.sort_unstable();
    explicit.dedup();
    let mut rows: Vec<(String, bool)> = explicit.iter().map(|t| (t.clone(), true)).collect();
    if !explicit.iter().any(|t| t.contains('/')) {
        return Some(rows);
    }
    let mut seen: std::collections::HashSet<String> =
        explicit.iter().map(|t| t.to_ascii_lowercase()).collect();
    let mut parents: Vec<String> = Vec::new();
    for tag in &explicit {
        let mut at = 0;
        while let Some(slash) = tag[at..].find('/') {
            parents.push(tag[..at + slash].to_string());
            at += slash + 1;
        }
    }
    parents.sort_unstable();
    parents.dedup();
    for parent in parents {
        if seen.insert(parent.to_ascii_lowercase()) {
            rows.push((parent, false));
        }
    }
    Some(rows)
}

/// tag_rows(items) -> [path, tag, explicit] | None
///
/// The tags table of the dicts `items` (each with its "path" and "tags"), as rows.py
/// builds it: each note's own tags sorted, then the parents they imply. None when a
/// note has a tag not ASCII (or not a str): rows.py builds the table then.
#[pyfunction]
#[pyo3(name = "tag_rows")]
pub fn py_tag_rows<'py>(
    py: Python<'py>,
    items: &Bound<'py, PyList>,
) -> PyResult<Option<Vec<Py<PyAny>>>> {
    let (mut paths, mut names, mut flags) =
        (Column::new(b's'), Column::new(b's'), Column::new(b'b'));
    for item in items.iter() {
        let Ok(item) = item.cast::<PyDict>() else {
            return Ok(None);
        };
        let Some(tags) = item.get_item("tags")? else {
            continue;
        };
        let Some(rows) = tag_rows(&tags) else {
            return Ok(None);
        };
        if rows.is_empty() {
            continue;
        }
        let Some(path) = item.get_item("path")? else {
            return Ok(None);
        };
        for (tag, explicit) in rows {
            if !paths.push(&path) || !names.push_text(&tag) {
                return Ok(None);
            }
            flags.data.push(u8::from(explicit));
            flags.set_valid(true);
        }
    }
    Ok(Some(vec![
        paths.into_py(py)?,
        names.into_py(py)?,
        flags.into_py(py)?,
    ]))
}

impl Column {
    /// A present str.
    fn push_text(&mut self, text: impl AsRef<[u8]>) -> bool {
        self.push_bytes(text.as_ref()) && {
            self.set_valid(true);
            true
        }
    }

    /// A str or a null.
    fn push_opt_text(&mut self, text: Option<&str>) -> bool {
        match text {
            Some(text) => self.push_text(text),
            None => {
                self.push_none();
                true
            }
        }
    }

    /// An int (int32 or int64) or a null.
    fn push_opt_int(&mut self, n: Option<i64>) -> bool {
        match n {
            Some(n) => {
                self.push_int(n) && {
                    self.set_valid(true);
                    true
                }
            }
            None => {
                self.push_none();
                true
            }
        }
    }

    /// A list of str (never a null).
    fn push_texts(&mut self, texts: &[&str]) -> bool {
        texts.iter().all(|text| self.push_item(text)) && self.end_list() && {
            self.set_valid(true);
            true
        }
    }
}

/// An int field (not a bool) or None: Some(None) for None or missing, None when it is
/// something else.
fn opt_int(item: &Bound<'_, PyDict>, field: &str) -> PyResult<Option<Option<i64>>> {
    Ok(match item.get_item(field)? {
        None => Some(None),
        Some(value) if value.is_none() => Some(None),
        Some(value) => int_of(&value).map(Some),
    })
}

/// A str field (valid UTF-8) or None, as opt_int.
fn opt_text(item: &Bound<'_, PyDict>, field: &str) -> PyResult<Option<Option<String>>> {
    Ok(match item.get_item(field)? {
        None => Some(None),
        Some(value) if value.is_none() => Some(None),
        Some(value) => str_of(&value).map(|t| Some(t.into_owned())),
    })
}

/// The dicts of a note's list field (`note.get(field) or []`); None when it is not a
/// list of dicts.
fn dicts<'py>(note: &Bound<'py, PyDict>, field: &str) -> PyResult<Option<Vec<Bound<'py, PyDict>>>> {
    let Some(value) = note.get_item(field)? else {
        return Ok(Some(Vec::new()));
    };
    let Ok(list) = value.cast::<PyList>() else {
        return Ok((!value.is_truthy()?).then(Vec::new));
    };
    let mut out = Vec::with_capacity(list.len());
    for item in list.iter() {
        let Ok(item) = item.cast_into::<PyDict>() else {
            return Ok(None);
        };
        out.push(item);
    }
    Ok(Some(out))
}

/// One anchor row: (is a block, level, text, line).
type Anchor = (bool, Option<i64>, String, Option<i64>);

/// A note's headings and block ids as rows.py's _anchor_rows has them, when every
/// level and line is an int or None and every text a str; None otherwise.
fn anchors(note: &Bound<'_, PyDict>) -> PyResult<Option<Vec<Anchor>>> {
    let mut items: Vec<Anchor> = Vec::new();
    for (field, text_field, block) in [("headings", "text", false), ("blocks", "id", true)] {
        let Some(found) = dicts(note, field)? else {
            return Ok(None);
        };
        for item in found {
            let level = if block {
                Some(None)
            } else {
                opt_int(&item, "level")?
            };
            let (Some(level), Some(Some(text)), Some(line)) =
                (level, opt_text(&item, text_field)?, opt_int(&item, "line")?)
            else {
                return Ok(None);
            };
            items.push((block, level, text, line));
        }
    }
    // Python's sort is stable, as this one: by line (None as 0), headings first.
    items.sort_by_key(|(block, _, _, line)| (line.unwrap_or(0), *block));
    Ok(Some(items))
}

/// anchor_rows(items) -> [path, kind, level, text, line, parents] | None
///
/// The headings table of the dicts `items` as rows.py's _anchor_rows builds it: each
/// note's headings and block ids in line order, each with the headings it lies under.
/// None when a note's anchors are not all plain (see anchors()): rows.py builds it.
#[pyfunction]
#[pyo3(name = "anchor_rows")]
pub fn py_anchor_rows<'py>(
    py: Python<'py>,
    items: &Bound<'py, PyList>,
) -> PyResult<Option<Vec<Py<PyAny>>>> {
    let mut cols: Vec<Column> = b"ssisiL".iter().map(|&k| Column::new(k)).collect();
    for item in items.iter() {
        let Ok(note) = item.cast::<PyDict>() else {
            return Ok(None);
        };
        let Some(rows) = anchors(note)? else {
            return Ok(None);
        };
        if rows.is_empty() {
            continue;
        }
        let Some(path) = note.get_item("path")? else {
            return Ok(None);
        };
        let Some(path) = str_of(&path).map(|p| p.into_owned()) else {
            return Ok(None);
        };
        let mut stack: Vec<(i64, &str)> = Vec::new();
        for (block, level, text, line) in &rows {
            if !block {
                while stack
                    .last()
                    .is_some_and(|(top, _)| *top >= level.unwrap_or(0))
                {
                    stack.pop();
                }
            }
            let parents: Vec<&str> = stack.iter().map(|(_, t)| *t).collect();
            let kind = if *block { "block" } else { "heading" };
            let ok = cols[0].push_text(&path)
                && cols[1].push_text(kind)
                && cols[2].push_opt_int(*level)
                && cols[3].push_text(text)
                && cols[4].push_opt_int(*line)
                && cols[5].push_texts(&parents);
            if !ok {
                return Ok(None);
            }
            if !block {
                stack.push((level.unwrap_or(0), text));
            }
        }
    }
    Ok(Some(
        cols.into_iter()
            .map(|c| c.into_py(py))
            .collect::<PyResult<_>>()?,
    ))
}

/// A str as orjson writes it: quoted, with `"`, `\` and the control characters
/// escaped (\b \t \n \f \r, else \u00xx), everything else as it is.
fn json_str(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &byte in text.as_bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0..=0x1f => out.extend_from_slice(format!("\\u{byte:04x}").as_bytes()),
            _ => out.push(byte),
        }
    }
    out.push(b'"');
}

/// rows.py's _property_type of an ASCII str: its regexes, whose `\d` is [0-9] in ASCII
/// and whose `$` also matches before one final newline.
fn ascii_type(text: &str) -> &'static str {
    let b = text.as_bytes();
    let ymd = dashed(b, 0, b"-").is_some();
    if ymd && (b.len() == 10 || b[10..] == *b"\n") {
        "date"
    } else if ymd
        && matches!(b.get(10), Some(b'T' | b' '))
        && number(b, 11, 2).is_some()
        && b.get(13) == Some(&b':')
        && number(b, 14, 2).is_some()
    {
        "datetime"
    } else {
        "text"
    }
}

/// A property value's JSON, text and type (None: the type by rows.py's function).
struct Plain {
    json: Vec<u8>,
    text: Option<String>,
    kind: Option<&'static str>,
}

/// A scalar as _json, str() and _property_type give it: a str, None, a bool or an int
/// in i64 (each exactly of its type: orjson and str() treat subclasses their own way);
/// None for any other value.
fn scalar(value: &Bound<'_, PyAny>) -> Option<Plain> {
    let (json, text, kind) = if value.is_exact_instance_of::<PyString>() {
        let text = value.cast::<PyString>().ok()?.to_str().ok()?;
        let mut json = Vec::with_capacity(text.len() + 2);
        json_str(text, &mut json);
        // The date regexes' meaning is plain in ASCII only.
        let kind = text.is_ascii().then(|| ascii_type(text));
        (json, Some(text.to_string()), kind)
    } else if value.is_none() {
        (b"null".to_vec(), None, Some("null"))
    } else if value.is_exact_instance_of::<PyBool>() {
        let (json, text) = if value.is_truthy().ok()? {
            ("true", "True")
        } else {
            ("false", "False")
        };
        (json.into(), Some(text.to_string()), Some("checkbox"))
    } else if value.is_exact_instance_of::<PyInt>() {
        let n = value.extract::<i64>().ok()?.to_string();
        (n.clone().into_bytes(), Some(n), Some("number"))
    } else {
        return None;
    };
    Some(Plain { json, text, kind })
}

/// rows.py's _json, _property_text and _property_type of a scalar (see scalar()) or of
/// a list of them; None for any other value.
fn plain(value: &Bound<'_, PyAny>) -> Option<Plain> {
    if !value.is_exact_instance_of::<PyList>() {
        let mut made = scalar(value)?;
        if made.kind == Some("checkbox") {
            // _property_text writes a bool in lower case; str(), in a list, does not.
            made.text = made.text.map(|t| t.to_lowercase());
        }
        return Some(made);
    }
    let (mut json, mut text) = (vec![b'['], String::new());
    for (i, item) in value.cast::<PyList>().ok()?.iter().enumerate() {
        let made = scalar(&item)?;
        if i > 0 {
            json.push(b',');
            text.push_str(", ");
        }
        json.extend_from_slice(&made.json);
        text.push_str(made.text.as_deref().unwrap_or(""));
    }
    json.push(b']');
    Some(Plain {
        json,
        text: Some(text),
        kind: Some("list"),
    })
}

/// property_values(values, json, text, kind) -> [value, text, type]
///
/// The properties' value (JSON), text and type columns of `values`: a plain value
/// (see plain()) here, as rows.py's _json, _property_text and _property_type give them
/// (the type of a str not ASCII by `kind`); any other value by the three functions.
#[pyfunction]
#[pyo3(name = "property_values")]
pub fn py_property_values<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyList>,
    json: &Bound<'py, PyAny>,
    text: &Bound<'py, PyAny>,
    kind: &Bound<'py, PyAny>,
) -> PyResult<Vec<Py<PyAny>>> {
    let (mut values_col, mut texts, mut types) =
        (Column::new(b's'), Column::new(b's'), Column::new(b's'));
    let overflow = || pyo3::exceptions::PyOverflowError::new_err("a column over 2 GiB");
    for value in values.iter() {
        let (made, shown, typed) = match plain(&value) {
            Some(found) => {
                let typed = match found.kind {
                    Some(known) => known.to_string(),
                    None => kind.call1((&value,))?.extract::<String>()?,
                };
                (found.json, found.text, typed)
            }
            None => (
                json.call1((&value,))?.extract::<String>()?.into_bytes(),
                text.call1((&value,))?.extract::<Option<String>>()?,
                kind.call1((&value,))?.extract::<String>()?,
            ),
        };
        let ok = values_col.push_text(&made)
            && texts.push_opt_text(shown.as_deref())
            && types.push_text(&typed);
        if !ok {
            return Err(overflow());
        }
    }
    [values_col, texts, types]
        .into_iter()
        .map(|c| c.into_py(py))
        .collect()
}

/// Days from 1970-01-01 to a valid date of the proleptic Gregorian calendar, as
/// Python's date gives it; None when it is no date (datetime.date would refuse it).
fn ymd(year: i64, month: i64, day: i64) -> Option<i32> {
    if !valid_date(year, month, day) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    i32::try_from(era * 146_097 + doe - 719_468).ok()
}

/// rows.py's _day over ASCII text: Some(day or None), or None when something is not
/// ASCII or not of the types it reads plainly (rows.py's _day decides then).
fn day_of(note: &Bound<'_, PyDict>) -> PyResult<Option<Option<i32>>> {
    // A day's key: `date` or `day` in any case (ASCII: lower() is plain).
    let day_key = |key: &Bound<'_, PyAny>| -> Option<bool> {
        match key.cast::<PyString>() {
            Ok(key) => {
                let key = key.to_str().ok()?;
                key.is_ascii()
                    .then(|| key.eq_ignore_ascii_case("date") || key.eq_ignore_ascii_case("day"))
            }
            Err(_) => Some(false),
        }
    };
    let mut values: Vec<Bound<'_, PyAny>> = Vec::new();
    if let Some(fm) = note.get_item("frontmatter")? {
        if let Ok(fm) = fm.cast::<PyDict>() {
            let mut keys: Vec<(String, Bound<'_, PyAny>)> = Vec::new();
            for (key, value) in fm.iter() {
                let Some(is_day) = day_key(&key) else {
                    return Ok(None);
                };
                if is_day {
                    keys.push((key.cast::<PyString>()?.to_str()?.to_string(), value));
                }
            }
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            values.extend(keys.into_iter().map(|(_, v)| v));
        } else if fm.is_truthy()? {
            return Ok(None);
        }
    }
    let Some(fields) = dicts(note, "fields")? else {
        return Ok(None);
    };
    for field in fields {
        let task = match field.get_item("task")? {
            Some(t) => t.is_truthy()?,
            None => false,
        };
        let Some(key) = field.get_item("key")? else {
            continue;
        };
        let Some(is_day) = day_key(&key) else {
            return Ok(None);
        };
        if !task && is_day {
            values.push(
                field
                    .get_item("value")?
                    .unwrap_or_else(|| note.py().None().into_bound(note.py())),
            );
        }
    }
    for mut value in values {
        if let Ok(list) = value.cast::<PyList>() {
            if !list.is_empty() {
                value = list.get_item(0)?;
            }
        }
        let Ok(text) = value.cast::<PyString>() else {
            continue;
        };
        let Ok(text) = text.to_str() else {
            return Ok(None);
        };
        if !text.is_ascii() {
            return Ok(None);
        }
        // str.strip(): ASCII whitespace, and the separators \x1c-\x1f, which Python
        // counts as whitespace.
        let b = text
            .trim_matches(|c: char| {
                c.is_ascii_whitespace()
                    || ('\x0b'..='\x0d').contains(&c)
                    || ('\x1c'..='\x1f').contains(&c)
            })
            .as_bytes();
        let at = if b.starts_with(b"[[") && dashed(b, 2, b"-").is_some() {
            2
        } else {
            0
        };
        if let Some((y, m, d)) = dashed(b, at, b"-") {
            if let Some(day) = ymd(y, m, d) {
                return Ok(Some(Some(day)));
            }
        }
    }
    let Some(path) = note.get_item("path")? else {
        return Ok(None);
    };
    let Some(path) = str_of(&path).filter(|p| p.is_ascii()) else {
        return Ok(None);
    };
    let path: &str = &path;
    let name = path.rsplit('/').next().unwrap_or(path);
    let name = name.strip_suffix(".md").unwrap_or(name).as_bytes();
    if let Some(at) = (0..name.len()).find(|&i| dashed(name, i, b"-").is_some()) {
        return Ok(Some(
            dashed(name, at, b"-").and_then(|(y, m, d)| ymd(y, m, d)),
        ));
    }
    if let Some(at) = (0..name.len()).find(|&i| number(name, i, 8).is_some()) {
        let (y, m, d) = (
            number(name, at, 4),
            number(name, at + 4, 2),
            number(name, at + 6, 2),
        );
        return Ok(Some(y.zip(m).zip(d).and_then(|((y, m), d)| ymd(y, m, d))));
    }
    // (?:^|/)yyyy[/-]mm[/-]dd(?:\.md$|/), searched: at the start, or after any '/'.
    let b = path.as_bytes();
    let at_day = |s: usize| -> Option<(i64, i64, i64)> {
        let found = dashed(b, s, b"/-")?;
        let rest = &b[s + 10..];
        (rest == b".md" || rest == b".md\n" || rest.first() == Some(&b'/')).then_some(found)
    };
    let found = (0..b.len()).find_map(|p| {
        (if p == 0 { at_day(0) } else { None }).or_else(|| {
            if b[p] == b'/' {
                at_day(p + 1)
            } else {
                None
            }
        })
    });
    Ok(Some(found.and_then(|(y, m, d)| ymd(y, m, d))))
}

/// day(item) (a date or None) as days from 1970-01-01.
fn python_day(day: &Bound<'_, PyAny>, item: &Bound<'_, PyAny>) -> PyResult<Option<i32>> {
    let date = day.call1((item,))?;
    if date.is_none() {
        return Ok(None);
    }
    let ordinal: i64 = date.call_method0("toordinal")?.extract()?;
    i32::try_from(ordinal - 719_163)
        .map(Some)
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("a day out of range"))
}

/// days(items, day) -> column
///
/// The notes' `day` column (date32) of the dicts `items`, as rows.py's _day gives it:
/// made here over ASCII text, and by `day(item)` (a date or None) for any other note.
#[pyfunction]
#[pyo3(name = "days")]
pub fn py_days<'py>(
    py: Python<'py>,
    items: &Bound<'py, PyList>,
    day: &Bound<'py, PyAny>,
) -> PyResult<Py<PyAny>> {
    let mut col = Column::new(b'd');
    for item in items.iter() {
        let found = match item.cast::<PyDict>() {
            Ok(note) => day_of(note)?,
            Err(_) => None,
        };
        let found = match found {
            Some(found) => found,
            None => python_day(day, &item)?,
        };
        col.push_opt_int(found.map(i64::from));
    }
    col.into_py(py)
}
