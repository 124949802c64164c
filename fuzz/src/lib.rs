//! Shared input decoding and invariants for warmline's fuzz targets.
//!
//! Every target reads its raw bytes with [`Reader`]: an optional flags byte,
//! an optional little-endian `i64` clock, then `\n`-terminated text fields
//! and finally the rest as the body. Any byte string is a valid input (short
//! inputs read as zeros and empty fields), so libFuzzer never wastes work on
//! a decoding failure, and the seeds in `seeds/` stay readable past their
//! first few bytes. `seeds/make_seeds.py` writes them in this layout.

use serde_json::Value;
use warmline::domain::{PhoneNumber, ToolName, ToolRequest};

/// A cursor over a fuzz input.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { rest: data }
    }

    /// One byte, 0 when the input is exhausted.
    pub fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((b, rest)) => {
                self.rest = rest;
                *b
            }
            None => 0,
        }
    }

    /// Eight bytes as a little-endian `i64` (zero-padded when short): the
    /// clock a verifier or parser is called with, any value at all.
    pub fn i64(&mut self) -> i64 {
        let mut buf = [0u8; 8];
        let n = self.rest.len().min(8);
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        i64::from_le_bytes(buf)
    }

    /// Bytes up to the next `\n` (consumed, not returned), or all that is left.
    pub fn line_bytes(&mut self) -> &'a [u8] {
        match self.rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let line = &self.rest[..i];
                self.rest = &self.rest[i + 1..];
                line
            }
            None => std::mem::take(&mut self.rest),
        }
    }

    /// A line as text; `None` when it is not UTF-8 (the callers take `&str`).
    pub fn line(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.line_bytes()).ok()
    }

    /// Whatever is left: the body.
    pub fn rest(self) -> &'a [u8] {
        self.rest
    }
}

/// What a `PhoneNumber` promises: `+` and 8 to 15 ASCII digits, no leading
/// zero; it re-parses to itself, survives a serde round trip, and its masked
/// form keeps only the first two and last four characters.
pub fn check_phone(n: &PhoneNumber) {
    let s = n.as_str();
    let digits = s
        .strip_prefix('+')
        .unwrap_or_else(|| panic!("no `+`: {s:?}"));
    assert!(
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()),
        "not E.164: {s:?}"
    );
    assert!(!digits.starts_with('0'), "leading zero: {s:?}");
    assert_eq!(PhoneNumber::parse(s).as_ref(), Ok(n), "re-parse of {s:?}");
    let json = serde_json::to_string(n).expect("a phone number serialises");
    let back: PhoneNumber = serde_json::from_str(&json).expect("and deserialises");
    assert_eq!(&back, n);

    let masked = n.masked();
    assert_eq!(masked.len(), s.len(), "{masked:?}");
    assert!(!masked.contains(digits), "{masked:?} shows {s:?}");
    assert_eq!(&masked[..2], &s[..2]);
    assert_eq!(&masked[masked.len() - 4..], &s[s.len() - 4..]);
    assert!(masked[2..masked.len() - 4].bytes().all(|b| b == b'*'));
    assert_eq!(format!("{n:?}"), format!("PhoneNumber({masked})"));
}

pub fn check_phones<'a>(phones: impl IntoIterator<Item = Option<&'a PhoneNumber>>) {
    phones.into_iter().flatten().for_each(check_phone);
}

/// A parsed tool request names the tool it was asked for: a known name runs
/// (or says what was wrong with its arguments) as that tool, never another;
/// an unknown one is kept verbatim.
pub fn check_tool_request(name: &str, request: &ToolRequest) {
    match (ToolName::parse(name), request) {
        (None, ToolRequest::Unknown(n)) => assert_eq!(n, name),
        (Some(t), ToolRequest::Run(tool)) => assert_eq!(tool.name(), t),
        (Some(t), ToolRequest::BadArguments { tool, problem }) => {
            assert_eq!(*tool, t);
            assert!(!problem.trim().is_empty(), "an empty problem for {name:?}");
        }
        (known, other) => panic!("{name:?} (known: {known:?}) parsed as {other:?}"),
    }
}

/// `ts` lies in the window `[now - past, now + future]`, computed where
/// nothing overflows.
pub fn in_window(ts: i64, now: i64, past: i64, future: i64) -> bool {
    let (ts, now) = (i128::from(ts), i128::from(now));
    now - ts <= i128::from(past) && ts - now <= i128::from(future)
}

/// A field of a JSON body by path, when the body is JSON at all.
pub fn json_at(body: &[u8], path: &[&str]) -> Option<Value> {
    let v: Value = serde_json::from_slice(body).ok()?;
    path.iter().try_fold(v, |v, k| v.get(*k).cloned())
}

/// Vapi reads a timestamp below 10^11 as seconds, any other as milliseconds.
pub const VAPI_SECONDS_BELOW: i64 = 100_000_000_000;

/// A Vapi timestamp, in milliseconds, as the verifier reads `raw`; `None`
/// when it is no `i64` or its milliseconds overflow.
pub fn vapi_ts_ms(raw: &str) -> Option<i64> {
    let n: i64 = raw.trim().parse().ok()?;
    if n < VAPI_SECONDS_BELOW {
        n.checked_mul(1000)
    } else {
        Some(n)
    }
}

/// A timestamp Vapi could send at `now_ms` (whatever the clock says): the
/// milliseconds themselves, or — where those would read as seconds — the
/// seconds, which are at most 999 ms off.
pub fn vapi_ts_at(now_ms: i64) -> i64 {
    if now_ms >= VAPI_SECONDS_BELOW {
        now_ms
    } else {
        now_ms / 1000
    }
}

/// A Vapi HMAC credential from a flags byte: bits 0-1 the algorithm (1
/// SHA-512, 2 SHA-1, else SHA-256), bit 2 base64 (else hex), bit 3 the
/// timestamp is signed, bit 4 `prefix` is the signature prefix (else none).
pub fn hmac_plan(flags: u8, prefix: &str) -> warmline::webhooks::vapi_auth::HmacPlan {
    use warmline::webhooks::vapi_auth::{HmacAlgorithm, HmacPlan, SignatureEncoding};
    HmacPlan {
        algorithm: match flags & 3 {
            1 => HmacAlgorithm::Sha512,
            2 => HmacAlgorithm::Sha1,
            _ => HmacAlgorithm::Sha256,
        },
        encoding: if flags & 4 != 0 {
            SignatureEncoding::Base64
        } else {
            SignatureEncoding::Hex
        },
        include_timestamp: flags & 8 != 0,
        prefix: (flags & 16 != 0).then(|| prefix.to_owned()),
        ..HmacPlan::default()
    }
}

/// Whether a signature made with `plan` can reach the verifier intact: an
/// HTTP header value loses its leading whitespace, so a prefix that starts
/// with whitespace can never match (the verifier trims the value too).
pub fn prefix_survives_http(plan: &warmline::webhooks::vapi_auth::HmacPlan) -> bool {
    plan.prefix.as_deref().is_none_or(|p| p.trim_start() == p)
}
