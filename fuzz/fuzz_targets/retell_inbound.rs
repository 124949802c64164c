//! `POST /retell/inbound`: the whole input is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::domain::Provider;
use warmline::webhooks::parsers;
use warmline_fuzz::check_phones;

fuzz_target!(|body: &[u8]| {
    if let Ok(call) = parsers::retell_inbound(body) {
        assert_eq!(call.provider, Provider::Retell);
        assert!(
            call.call_id.is_none(),
            "Retell's inbound webhook has no call id"
        );
        check_phones([Some(&call.called), call.caller.as_ref()]);
    }
});
