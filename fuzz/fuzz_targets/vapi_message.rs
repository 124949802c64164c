//! `POST /vapi`: the whole input is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::webhooks::parsers;
use warmline_fuzz::json_at;

fuzz_target!(|body: &[u8]| {
    // The kind is the message's own `type`, verbatim.
    if let Ok(kind) = parsers::vapi_message(body)
        && let Some(t) = json_at(body, &["message", "type"])
    {
        assert_eq!(t.as_str(), Some(kind.as_str()));
    }
});
