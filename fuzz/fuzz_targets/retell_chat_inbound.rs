//! `POST /retell/inbound` with an SMS's `chat_inbound`: the whole input is
//! the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::webhooks::parsers;
use warmline_fuzz::check_phones;

fuzz_target!(|body: &[u8]| {
    if let Ok(Some((caller, called, _chat_id))) = parsers::retell_chat_inbound(body) {
        check_phones([Some(&called), caller.as_ref()]);
    }
});
