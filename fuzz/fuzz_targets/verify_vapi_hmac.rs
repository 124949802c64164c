//! `verify_vapi_hmac` (Vapi's default HMAC credential). Input: flags (bit 0:
//! the signature header is present, bit 1: the timestamp header is), the
//! clock (`now_ms`, 8 bytes LE, any `i64`), the signature line, the timestamp
//! line, the secret line, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::webhooks::signature::{
    FUTURE_SKEW_MS, SignatureError, VAPI_TOLERANCE_MS, sign_vapi, verify_vapi_hmac,
};
use warmline_fuzz::{Reader, in_window, vapi_ts_at, vapi_ts_ms};

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let flags = r.byte();
    let now = r.i64();
    let (Some(signature), Some(timestamp)) = (r.line(), r.line()) else {
        return;
    };
    let secret = r.line_bytes();
    let body = r.rest();

    let signature = (flags & 1 != 0).then_some(signature);
    let timestamp = (flags & 2 != 0).then_some(timestamp);
    if verify_vapi_hmac(signature, timestamp, body, secret, now).is_ok() {
        let ts = timestamp
            .and_then(vapi_ts_ms)
            .expect("an accepted request has a timestamp");
        assert!(in_window(ts, now, VAPI_TOLERANCE_MS, FUTURE_SKEW_MS));
    }

    let ts = vapi_ts_at(now);
    let ts_text = ts.to_string();
    let signed = sign_vapi(body, secret, ts);
    assert_eq!(
        verify_vapi_hmac(Some(&signed), Some(&ts_text), body, secret, now),
        Ok(())
    );
    let other = [secret, b"x"].concat();
    assert_eq!(
        verify_vapi_hmac(Some(&signed), Some(&ts_text), body, &other, now),
        Err(SignatureError::Mismatch)
    );
    let mut tampered = body.to_vec();
    match tampered.first_mut() {
        Some(b) => *b ^= 1,
        None => tampered.push(b'{'),
    }
    assert_eq!(
        verify_vapi_hmac(Some(&signed), Some(&ts_text), &tampered, secret, now),
        Err(SignatureError::Mismatch)
    );
    // The signed timestamp is part of what is signed.
    if let Some(other_ts) = ts.checked_add(1) {
        let verdict = verify_vapi_hmac(
            Some(&signed),
            Some(&other_ts.to_string()),
            body,
            secret,
            now,
        );
        assert!(verdict.is_err(), "another timestamp verified: {verdict:?}");
    }
});
