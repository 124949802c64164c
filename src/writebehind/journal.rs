//! The journal's record format: one framed record per line,
//!
//! ```text
//! wl1 <length> <crc32> <json>\n
//! ```
//!
//! where `<length>` is the JSON's length in bytes (decimal) and `<crc32>` its
//! CRC-32 (eight hex digits). A record is whole only when its line ends in
//! a newline and both agree, so a crash mid-append (a torn tail) and a
//! damaged record are told apart from good ones, and a record appended after
//! a torn one (glued to it on the same line) is still found. Lines that start
//! with `{` are unframed records of an earlier version, read as they are.

use serde::Serialize;
use serde::de::DeserializeOwned;

const MAGIC: &str = "wl1 ";

/// `value` as one framed line.
pub fn frame<T: Serialize>(value: &T) -> serde_json::Result<String> {
    let json = serde_json::to_string(value)?;
    Ok(format!(
        "{MAGIC}{} {:08x} {json}\n",
        json.len(),
        crc32fast::hash(json.as_bytes())
    ))
}

/// What a journal file holds.
#[derive(Debug)]
pub struct Scan<T> {
    /// Whole records, in order.
    pub records: Vec<T>,
    /// Damaged lines (or parts of lines) and why each was not read.
    pub damaged: Vec<Damaged>,
    /// Where an unterminated last line (a crash mid-append) begins, if any.
    pub torn_tail_at: Option<usize>,
}

/// Bytes that are not a whole record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    pub raw: String,
    pub reason: String,
}

/// Reads every record of `bytes`; never fails, whatever the bytes.
pub fn scan<T: DeserializeOwned>(bytes: &[u8]) -> Scan<T> {
    let mut out = Scan {
        records: Vec::new(),
        damaged: Vec::new(),
        torn_tail_at: None,
    };
    let mut at = 0;
    while at < bytes.len() {
        let Some(nl) = bytes[at..].iter().position(|b| *b == b'\n') else {
            out.torn_tail_at = Some(at);
            break;
        };
        let line = &bytes[at..at + nl];
        at += nl + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        read_line(line, &mut out);
    }
    out
}

/// One line: a record, an older unframed record, or damage — possibly a
/// torn record with a whole one glued after it.
fn read_line<T: DeserializeOwned>(line: &[u8], out: &mut Scan<T>) {
    let text = String::from_utf8_lossy(line);
    if text.starts_with('{') {
        match serde_json::from_str(&text) {
            Ok(r) => out.records.push(r),
            Err(e) => out.damaged.push(Damaged {
                raw: text.into_owned(),
                reason: format!("unframed record is not a job: {e}"),
            }),
        }
        return;
    }
    match record(&text) {
        Ok(r) => out.records.push(r),
        Err(reason) => {
            // A whole record may follow a torn one on the same line: the
            // last magic that starts a whole record to the end of the line.
            let glued = text
                .match_indices(MAGIC)
                .map(|(i, _)| i)
                .filter(|i| *i > 0)
                .find_map(|i| record(&text[i..]).ok().map(|r| (i, r)));
            match glued {
                Some((i, r)) => {
                    out.damaged.push(Damaged {
                        raw: text[..i].to_owned(),
                        reason: format!("torn record ({reason}) with a whole one after it"),
                    });
                    out.records.push(r);
                }
                None => out.damaged.push(Damaged {
                    raw: text.into_owned(),
                    reason,
                }),
            }
        }
    }
}

fn record<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let rest = text
        .strip_prefix(MAGIC)
        .ok_or("not a journal record (no `wl1` frame)")?;
    let mut parts = rest.splitn(3, ' ');
    let (Some(len), Some(crc), Some(json)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("incomplete frame".into());
    };
    let len: usize = len.parse().map_err(|_| "unreadable length")?;
    let crc = u32::from_str_radix(crc, 16).map_err(|_| "unreadable checksum")?;
    if json.len() != len {
        return Err(format!(
            "length {} does not match the frame's {len}",
            json.len()
        ));
    }
    if crc32fast::hash(json.as_bytes()) != crc {
        return Err("checksum mismatch".into());
    }
    serde_json::from_str(json).map_err(|e| format!("checksummed but not a job: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn framed(v: Value) -> String {
        frame(&v).unwrap()
    }

    #[test]
    fn whole_records_are_read_in_order() {
        let text = framed(json!({"a": 1})) + &framed(json!({"a": "x\ny"}));
        let s = scan::<Value>(text.as_bytes());
        assert_eq!(s.records, vec![json!({"a": 1}), json!({"a": "x\ny"})]);
        assert!(s.damaged.is_empty() && s.torn_tail_at.is_none());
    }

    #[test]
    fn a_torn_tail_is_found_where_it_starts() {
        let whole = framed(json!({"a": 1}));
        let torn = &framed(json!({"a": 2}))[..10];
        let s = scan::<Value>(format!("{whole}{torn}").as_bytes());
        assert_eq!(s.records, vec![json!({"a": 1})]);
        assert_eq!(s.torn_tail_at, Some(whole.len()));
    }

    #[test]
    fn a_damaged_record_is_reported_and_the_others_still_read() {
        let bad = framed(json!({"a": 2})).replace("\"a\":2", "\"a\":3");
        let text = framed(json!({"a": 1})) + &bad + &framed(json!({"a": 4}));
        let s = scan::<Value>(text.as_bytes());
        assert_eq!(s.records, vec![json!({"a": 1}), json!({"a": 4})]);
        assert_eq!(s.damaged.len(), 1);
        assert_eq!(s.damaged[0].reason, "checksum mismatch");
    }

    #[test]
    fn a_record_glued_to_a_torn_one_is_recovered() {
        let torn = &framed(json!({"a": 1}))[..12];
        let text = format!("{torn}{}", framed(json!({"a": 2})));
        let s = scan::<Value>(text.as_bytes());
        assert_eq!(s.records, vec![json!({"a": 2})]);
        assert_eq!(s.damaged.len(), 1);
        assert_eq!(s.damaged[0].raw, torn);
    }

    #[test]
    fn unframed_lines_of_an_older_version_are_read() {
        let s = scan::<Value>(b"{\"a\":1}\n{broken\n");
        assert_eq!(s.records, vec![json!({"a": 1})]);
        assert_eq!(s.damaged.len(), 1);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for bytes in [
            &b"wl1 "[..],
            b"wl1 99999999999999999999 zz {}\n",
            b"wl1 2 00000000 {}\n",
            b"\xff\xfe wl1 \n",
            b"wl1 wl1 wl1 \n",
        ] {
            let _ = scan::<Value>(bytes);
        }
    }
}
