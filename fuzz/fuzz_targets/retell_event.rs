//! `POST /retell/events`: the whole input is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::webhooks::parsers;
use warmline_fuzz::json_at;

fuzz_target!(|body: &[u8]| {
    // The event is named by the payload's own `event`, verbatim.
    if let Ok(name) = parsers::retell_event(body)
        && let Some(event) = json_at(body, &["event"])
    {
        assert_eq!(event.as_str(), Some(name.as_str()));
    }
});
