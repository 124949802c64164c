//! `POST /elevenlabs/post-call`. Input: the clock (`now_s`, 8 bytes LE, any
//! `i64`), then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::webhooks::parsers;
use warmline_fuzz::{Reader, json_at};

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let now_s = r.i64();
    let body = r.rest();
    if let Ok(kind) = parsers::elevenlabs_post_call(body, now_s)
        && let Some(t) = json_at(body, &["type"])
    {
        assert_eq!(t.as_str(), Some(kind.as_str()));
    }
});
