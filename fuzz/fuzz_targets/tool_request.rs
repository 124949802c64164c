//! `ToolRequest::parse(name, args)`. Input: the name, then the arguments as
//! JSON (inputs whose rest is not JSON are skipped).
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::domain::ToolRequest;
use warmline_fuzz::{Reader, check_tool_request};

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let Some(name) = r.line() else {
        return;
    };
    let Ok(args) = serde_json::from_slice::<serde_json::Value>(r.rest()) else {
        return;
    };
    let request = ToolRequest::parse(name, &args);
    check_tool_request(name, &request);
    // Parsing is a pure function of its input.
    assert_eq!(ToolRequest::parse(name, &args), request);
});
