//! `verify_retell`. Input: flags (bit 0: the header is present), the clock
//! (`now_ms`, 8 bytes LE, any `i64`), the header line, the API key line, then
//! the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::webhooks::signature::{
    FUTURE_SKEW_MS, RETELL_TOLERANCE_MS, SignatureError, sign_retell, verify_retell,
};
use warmline_fuzz::{Reader, in_window};

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let flags = r.byte();
    let now = r.i64();
    let Some(header) = r.line() else {
        return;
    };
    let key = r.line_bytes();
    let body = r.rest();

    let header = (flags & 1 != 0).then_some(header);
    if verify_retell(header, body, key, now).is_ok() {
        // Accepted only inside the window, whatever the header says.
        let ts = header
            .and_then(|h| h.trim().strip_prefix("v="))
            .and_then(|h| h.split_once(",d="))
            .and_then(|(ts, _)| ts.parse::<i64>().ok())
            .expect("an accepted header has a timestamp");
        assert!(in_window(ts, now, RETELL_TOLERANCE_MS, FUTURE_SKEW_MS));
    }

    // The crate's own signature, made now, verifies now (any clock value) ...
    let signed = sign_retell(body, key, now);
    assert_eq!(verify_retell(Some(&signed), body, key, now), Ok(()));
    // ... and not with another key, another body, or past the window.
    let other_key = [key, b"x"].concat();
    assert_eq!(
        verify_retell(Some(&signed), body, &other_key, now),
        Err(SignatureError::Mismatch)
    );
    let mut tampered = body.to_vec();
    match tampered.first_mut() {
        Some(b) => *b ^= 1,
        None => tampered.push(b'{'),
    }
    assert_eq!(
        verify_retell(Some(&signed), &tampered, key, now),
        Err(SignatureError::Mismatch)
    );
    if let Some(late) = now.checked_add(RETELL_TOLERANCE_MS + 1) {
        assert_eq!(
            verify_retell(Some(&signed), body, key, late),
            Err(SignatureError::Stale)
        );
    }
});
