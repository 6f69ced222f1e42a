//! zstd frames for large stored values (ccc_watch/store/codec.py decides which).
//!
//! A compressed value is one zstd frame that carries its content size and a checksum of
//! its content, so a damaged one is refused here (an error, never a panic) rather than
//! read back as other bytes. A value is compressed iff it begins with the frame magic:
//! a stored JSON object begins with `{`, so values written before compression existed
//! read as they are.
//!
//! Every frame is made and read with DICTIONARY, the shapes of a record and of a
//! changelog entry: a note record of a few hundred bytes is mostly its member names, and
//! a value compressed alone cannot refer to another. A dictionary trained on records
//! would also learn their text: one trained (`zstd --train`, 16 KB) on 6,000 records and
//! entries of a synthetic vault took that vault's records to 0.19 of their size but the
//! hub corpus's only to 0.41, where this one, names and enumerated values only, gives
//! 0.31 and 0.36 (0.45 and 0.41 without a dictionary).

use std::cell::RefCell;

use zstd::bulk::{Compressor, Decompressor};
use zstd::zstd_safe;

/// The first four bytes of every zstd frame (RFC 8878, 3.1.1).
pub const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// The level codec.py uses, zstd's default. On the records of a 20,000-note synthetic
/// vault (without a dictionary) levels 1, 3, 9 and 19 left 0.461, 0.454, 0.448 and 0.444
/// of their JSON, level 19 taking 15 times as long as 3.
pub const DEFAULT_LEVEL: i32 = 3;

/// The largest content a frame may declare: far above any record (notes over
/// max_note_bytes are not parsed), and a bound on what a damaged header can make us
/// allocate.
pub const MAX_CONTENT: u64 = 1 << 30;

/// The raw-content dictionary of every frame (zstd's "raw content" kind: plain bytes a
/// frame may refer back into; it carries no id, so frames do not say it was used).
/// Part of the stored format: NEVER CHANGE A BYTE, or values compressed with it read
/// back as other bytes (their checksum then fails). A frame compressed without any
/// dictionary decodes the same with it, since nothing in such a frame refers to it.
/// The most common strings come last, where the back-references to them are shortest.
pub const DICTIONARY: &[u8] = concat!(
    r#"{"blake3_after":null,"blake3_before":"","cause":"scan","hash":"","id":"","op":"delete","path":"","prev_path":null,"seq":1,"ts":1}"#,
    "\n",
    r#"{"blake3_after":"","blake3_before":"","cause":"event","hash":"","id":"","op":"move","path":"","prev_path":"","seq":1,"ts":1}"#,
    "\n",
    r#"{"blake3_after":"","blake3_before":null,"cause":"rebuild","hash":"","id":"","op":"upsert","path":"","prev_path":null,"seq":1,"ts":1}"#,
    "\n",
    r#"{"aliases":[],"blake3":"","blocks":[],"body":null,"classification":"INTERNAL","ctime_ns":1,"error":null,"extension":".png","fields":[],"frontmatter":{},"frontmatter_error":null,"frontmatter_status":"absent","headings":[],"id":"","indexed_at":1,"inode":1,"kind":"attachment","links":[],"mime":"image/png","mtime_ns":1,"name":"","path":"","record_type":"Metadata","size":1,"tags":[],"tasks":[],"title":null,"word_count":0}"#,
    "\n",
    r#"{"aliases":[],"blake3":"","blocks":[],"body":null,"classification":"SECRET","ctime_ns":1,"error":null,"extension":".md","fields":[],"frontmatter":{},"frontmatter_error":null,"frontmatter_status":"valid","headings":[],"id":"","indexed_at":1,"inode":1,"kind":"note","links":[],"mime":"text/markdown","mtime_ns":1,"name":"","path":"","record_type":"Log","sealed":{"cipher":"","data":"","digest":"","key_id":"","nonce":"","v":1},"size":1,"tags":[],"tasks":[{"done":false,"line":1,"text":null},{"done":true,"line":1,"text":null}],"title":null,"word_count":null}"#,
    "\n",
    r#"{"aliases":[],"blake3":"","blocks":[{"id":"","line":1}],"body":"\n# ","classification":"PUBLIC","ctime_ns":1,"error":null,"extension":".md","fields":[{"key":"","line":1,"value":""}],"frontmatter":{"aliases":[],"classification":"PUBLIC","created":"","tags":[],"title":""},"frontmatter_error":null,"frontmatter_status":"valid","headings":[{"level":1,"line":1,"text":""},{"level":2,"line":1,"text":""}],"id":"","indexed_at":1,"inode":1,"kind":"note","links":[{"alias":null,"block":null,"heading":null,"kind":"markdown","line":1,"target":""},{"alias":null,"block":null,"heading":null,"kind":"embed","line":1,"target":""},{"alias":null,"block":null,"heading":null,"kind":"wikilink","line":1,"target":""}],"mime":"text/markdown","mtime_ns":1,"name":"","path":"","record_type":"Metadata","size":1,"tags":[],"tasks":[{"completion":null,"created":null,"done":false,"due":null,"line":1,"priority":null,"scheduled":null,"section":"","start":null,"status":" ","text":""},{"completion":null,"created":null,"done":true,"due":null,"line":1,"priority":null,"scheduled":null,"section":null,"start":null,"status":"x","text":""}],"title":"","word_count":1}"#
)
.as_bytes();

thread_local! {
    // A compression context costs ~1 MB and tens of µs to make: one per thread and
    // level, reused (one call runs on one thread from start to end).
    static COMPRESSOR: RefCell<Option<(i32, Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Whether `value` is (meant to be) a zstd frame.
pub fn is_compressed(value: &[u8]) -> bool {
    value.starts_with(&MAGIC)
}

/// `data` as one zstd frame at `level`, with its content size and checksum.
pub fn compress(data: &[u8], level: i32) -> Result<Vec<u8>, String> {
    let range = zstd::compression_level_range();
    if !range.contains(&level) {
        return Err(format!(
            "compression level {level} is outside {}..={}",
            range.start(),
            range.end()
        ));
    }
    COMPRESSOR.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            let mut c =
                Compressor::with_dictionary(level, DICTIONARY).map_err(|e| e.to_string())?;
            c.include_checksum(true).map_err(|e| e.to_string())?;
            c.include_contentsize(true).map_err(|e| e.to_string())?;
            *slot = Some((level, c));
        }
        let (_, c) = slot.as_mut().expect("set above");
        c.compress(data).map_err(|e| e.to_string())
    })
}

/// The content of the one zstd frame `value`, or why it is not one: no frame magic, a
/// header that names no content size or one over MAX_CONTENT, bytes after the frame,
/// or a frame that does not decode to its declared size and checksum.
pub fn decompress(value: &[u8]) -> Result<Vec<u8>, String> {
    if !is_compressed(value) {
        return Err("not a zstd frame".into());
    }
    let size = match zstd_safe::get_frame_content_size(value) {
        Ok(Some(size)) if size <= MAX_CONTENT => size,
        Ok(Some(size)) => return Err(format!("zstd frame declares {size} bytes")),
        Ok(None) => return Err("zstd frame without its content size".into()),
        Err(_) => return Err("damaged zstd frame header".into()),
    };
    match zstd_safe::find_frame_compressed_size(value) {
        Ok(n) if n == value.len() => {}
        Ok(_) => return Err("bytes after the zstd frame".into()),
        Err(code) => {
            return Err(format!(
                "damaged zstd frame: {}",
                zstd_safe::get_error_name(code)
            ))
        }
    }
    DECOMPRESSOR.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(Decompressor::with_dictionary(DICTIONARY).map_err(|e| e.to_string())?);
        }
        let d = slot.as_mut().expect("set above");
        let out = d
            .decompress(value, size as usize)
            .map_err(|e| format!("damaged zstd frame: {e}"))?;
        if out.len() as u64 != size {
            return Err("zstd frame shorter than it declares".into());
        }
        Ok(out)
    })
}

/// What every zstd frame found anywhere in `data` (a database file, say) decodes to, as
/// far as it decodes: a frame cut short or damaged gives its whole blocks before that.
/// A search of a file for text must read these too, or compression would hide it.
pub fn frames_in(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = data[at..].windows(4).position(|w| w == MAGIC) {
        let start = at + found;
        let mut decoded = Vec::new();
        if let Ok(decoder) =
            zstd::stream::read::Decoder::with_dictionary(&data[start..], DICTIONARY)
        {
            let mut decoder = decoder.single_frame();
            let mut buf = [0u8; 16 * 1024];
            while decoded.len() as u64 <= MAX_CONTENT {
                match std::io::Read::read(&mut decoder, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => decoded.extend_from_slice(&buf[..n]),
                }
            }
        }
        if !decoded.is_empty() {
            out.push(decoded);
        }
        at = start + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data = br#"{"body":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","id":"x"}"#;
        for level in [1, 3, 19] {
            let c = compress(data, level).unwrap();
            assert!(is_compressed(&c));
            assert_eq!(decompress(&c).unwrap(), data);
        }
        assert_eq!(decompress(&compress(b"", 3).unwrap()).unwrap(), b"");
    }

    #[test]
    fn a_frame_made_without_the_dictionary_reads_the_same() {
        let data = br#"{"aliases":[],"blake3":"ab","body":"text text text text text"}"#;
        let plain = zstd::bulk::compress(data, 3).unwrap();
        assert_eq!(decompress(&plain).unwrap(), data);
    }

    #[test]
    fn the_dictionary_never_changes() {
        // FNV-1a of its bytes: stored values depend on every one of them.
        let fnv = DICTIONARY.iter().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
        });
        assert_eq!((DICTIONARY.len(), fnv), (2503, 5692985636053813148));
    }

    #[test]
    fn frames_are_found_inside_other_bytes_even_when_cut() {
        let a = compress(b"first frame first frame first frame", 3).unwrap();
        let b = compress(b"second", 3).unwrap();
        let mut file = b"page header".to_vec();
        file.extend_from_slice(&a);
        file.extend_from_slice(b"\x00\x00");
        file.extend_from_slice(&b[..b.len() - 4]); // its checksum lost
        let found = frames_in(&file);
        assert_eq!(found[0], b"first frame first frame first frame");
        assert_eq!(found[1], b"second");
    }

    #[test]
    fn damage_is_an_error() {
        let data: Vec<u8> = (0..5000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let c = compress(&data, 3).unwrap();
        for i in 0..c.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = c.clone();
                bad[i] ^= bit;
                // Refused, or (a bit the format ignores) the very same content.
                assert!(decompress(&bad).map_or(true, |d| d == data), "flip at {i}");
            }
        }
        for n in 0..c.len() {
            assert!(decompress(&c[..n]).is_err(), "cut at {n}");
        }
        let mut longer = c.clone();
        longer.push(0);
        assert!(decompress(&longer).is_err());
        assert!(decompress(b"{\"a\":1}").is_err());
        assert!(compress(b"x", 99).is_err());
    }
}
