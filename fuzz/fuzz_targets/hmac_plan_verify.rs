//! `HmacPlan::verify`, every credential variant. Input: flags (bits 0-4 the
//! plan, see `hmac_plan`; bit 5: the signature header is present, bit 6: the
//! timestamp header is), the clock (`now_ms`, 8 bytes LE, any `i64`), the
//! prefix line, the signature line, the timestamp line, the secret line,
//! then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::webhooks::signature::{FUTURE_SKEW_MS, SignatureError, VAPI_TOLERANCE_MS};
use warmline_fuzz::{Reader, hmac_plan, in_window, prefix_survives_http, vapi_ts_at, vapi_ts_ms};

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let flags = r.byte();
    let now = r.i64();
    let (Some(prefix), Some(signature), Some(timestamp)) = (r.line(), r.line(), r.line()) else {
        return;
    };
    let secret = r.line_bytes();
    let body = r.rest();
    let plan = hmac_plan(flags, prefix);

    let signature = (flags & 32 != 0).then_some(signature);
    let timestamp = (flags & 64 != 0).then_some(timestamp);
    if plan.verify(signature, timestamp, body, secret, now).is_ok() && plan.include_timestamp {
        let ts = timestamp
            .and_then(vapi_ts_ms)
            .expect("an accepted request has a timestamp");
        assert!(in_window(ts, now, VAPI_TOLERANCE_MS, FUTURE_SKEW_MS));
    }

    if !prefix_survives_http(&plan) {
        return;
    }
    let ts_text = vapi_ts_at(now).to_string();
    let ts = plan.include_timestamp.then_some(ts_text.as_str());
    let signed = plan.sign(body, secret, ts);
    assert_eq!(
        plan.verify(Some(&signed), ts, body, secret, now),
        Ok(()),
        "{plan:?}"
    );
    if !plan.include_timestamp {
        // An unsigned timestamp is not read at all: any value, any clock.
        assert_eq!(
            plan.verify(Some(&signed), timestamp, body, secret, now),
            Ok(()),
            "{plan:?}"
        );
    }
    let other = [secret, b"x"].concat();
    assert_eq!(
        plan.verify(Some(&signed), ts, body, &other, now),
        Err(SignatureError::Mismatch),
        "{plan:?}"
    );
    let mut tampered = body.to_vec();
    match tampered.first_mut() {
        Some(b) => *b ^= 1,
        None => tampered.push(b'{'),
    }
    assert_eq!(
        plan.verify(Some(&signed), ts, &tampered, secret, now),
        Err(SignatureError::Mismatch),
        "{plan:?}"
    );
});
