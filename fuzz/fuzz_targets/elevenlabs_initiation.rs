//! `POST /elevenlabs/initiation`: the whole input is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::domain::Provider;
use warmline::webhooks::parsers;
use warmline_fuzz::check_phones;

fuzz_target!(|body: &[u8]| {
    if let Ok(call) = parsers::elevenlabs_initiation(body) {
        assert_eq!(call.provider, Provider::ElevenLabs);
        check_phones([Some(&call.called), call.caller.as_ref()]);
    }
});
