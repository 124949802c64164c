//! `verify_elevenlabs`. Input: flags (bit 0: the header is present), the
//! clock (`now_s`, 8 bytes LE, any `i64`), the header line, the secret line,
//! then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::webhooks::signature::{
    ELEVENLABS_TOLERANCE_S, FUTURE_SKEW_MS, SignatureError, sign_elevenlabs, verify_elevenlabs,
};
use warmline_fuzz::{Reader, in_window};

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let flags = r.byte();
    let now = r.i64();
    let Some(header) = r.line() else {
        return;
    };
    let secret = r.line_bytes();
    let body = r.rest();

    let header = (flags & 1 != 0).then_some(header);
    if verify_elevenlabs(header, body, secret, now).is_ok() {
        // Accepted only inside the window: the last `t=` part is the one read.
        let ts = header
            .into_iter()
            .flat_map(|h| h.split(','))
            .filter_map(|p| p.trim().strip_prefix("t="))
            .next_back()
            .and_then(|t| t.parse::<i64>().ok())
            .expect("an accepted header has a timestamp");
        assert!(in_window(
            ts,
            now,
            ELEVENLABS_TOLERANCE_S,
            FUTURE_SKEW_MS / 1000
        ));
    }

    let signed = sign_elevenlabs(body, secret, now);
    assert_eq!(verify_elevenlabs(Some(&signed), body, secret, now), Ok(()));
    let other = [secret, b"x"].concat();
    assert_eq!(
        verify_elevenlabs(Some(&signed), body, &other, now),
        Err(SignatureError::Mismatch)
    );
    let mut tampered = body.to_vec();
    match tampered.first_mut() {
        Some(b) => *b ^= 1,
        None => tampered.push(b'{'),
    }
    assert_eq!(
        verify_elevenlabs(Some(&signed), &tampered, secret, now),
        Err(SignatureError::Mismatch)
    );
    if let Some(late) = now.checked_add(ELEVENLABS_TOLERANCE_S + 1) {
        assert_eq!(
            verify_elevenlabs(Some(&signed), body, secret, late),
            Err(SignatureError::Stale)
        );
    }
});
