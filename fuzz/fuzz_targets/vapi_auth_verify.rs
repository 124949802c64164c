//! `VapiAuth::verify`: bearer, `X-Vapi-Secret` or HMAC, as configured.
//! Input: flags (bits 0-4 the HMAC plan, see `hmac_plan`; bit 7: `Bearer `
//! prefix on), the clock (`now_ms`, 8 bytes LE, any `i64`), lines for the
//! bearer header's name, the signature header's name, the timestamp header's
//! name, the signature prefix and the secret, then request headers as
//! `name:value` lines up to an empty line, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::webhooks::vapi_auth::VapiAuth;
use warmline_fuzz::{Reader, hmac_plan, prefix_survives_http, vapi_ts_at};

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let flags = r.byte();
    let now = r.i64();
    let (Some(bearer_header), Some(sig_header), Some(ts_header), Some(prefix), Some(secret)) =
        (r.line(), r.line(), r.line(), r.line(), r.line())
    else {
        return;
    };
    let mut headers = Vec::new();
    loop {
        let Some(line) = r.line() else {
            return;
        };
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        headers.push((name, value.strip_prefix(' ').unwrap_or(value)));
    }
    let body = r.rest();

    let mut hmac = hmac_plan(flags, prefix);
    hmac.signature_header = sig_header.to_owned();
    hmac.timestamp_header = ts_header.to_owned();
    let auth = VapiAuth {
        bearer_header: bearer_header.to_owned(),
        bearer_prefix: flags & 128 != 0,
        hmac,
    };
    let verify = |hs: &[(&str, &str)]| {
        auth.verify(
            |n: &str| hs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v),
            body,
            secret.as_bytes(),
            now,
        )
    };

    let _ = verify(&headers);

    // Each credential, sent alone as configured, is accepted.
    if secret.trim() == secret {
        let token = if auth.bearer_prefix {
            format!("Bearer {secret}")
        } else {
            secret.to_owned()
        };
        assert_eq!(verify(&[(bearer_header, &token)]), Ok(()), "{auth:?}");
        if bearer_header != "x-vapi-secret" {
            assert_eq!(verify(&[("x-vapi-secret", secret)]), Ok(()), "{auth:?}");
        }
    }
    let names = [bearer_header, "x-vapi-secret", sig_header, ts_header];
    let distinct = names
        .iter()
        .enumerate()
        .all(|(i, a)| names[i + 1..].iter().all(|b| a != b));
    if distinct && prefix_survives_http(&auth.hmac) {
        let ts = vapi_ts_at(now).to_string();
        let signed = auth.hmac.sign(
            body,
            secret.as_bytes(),
            auth.hmac.include_timestamp.then_some(ts.as_str()),
        );
        assert_eq!(
            verify(&[(sig_header, &signed), (ts_header, &ts)]),
            Ok(()),
            "{auth:?}"
        );
    }
});
