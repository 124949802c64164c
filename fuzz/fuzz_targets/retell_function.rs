//! `POST /retell/functions[/{name}]`. Input: the path's name (an empty line
//! is no name), the query string, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::domain::Provider;
use warmline::webhooks::parsers;
use warmline_fuzz::{Reader, check_phones, check_tool_request};

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let (Some(path_name), Some(query)) = (r.line(), r.line()) else {
        return;
    };
    let path_name = (!path_name.is_empty()).then_some(path_name);
    let body = r.rest();
    if let Ok(tc) = parsers::retell_function(path_name, query, body) {
        assert_eq!(tc.provider, Provider::Retell);
        if let Some(p) = path_name {
            // The path names the function, whatever the body says.
            assert_eq!(tc.name(), p);
        }
        check_tool_request(tc.name(), &tc.request);
        check_phones([tc.caller.as_ref(), tc.called.as_ref()]);
    }
});
