//! Webhook signature schemes, verified on the raw body bytes in constant
//! time, with each provider's timestamp tolerance. Every window is bounded on
//! both sides (a timestamp from the future is refused like a stale one, past
//! a small clock skew), and the arithmetic on a timestamp from a header is
//! checked: no value a sender picks can overflow it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Retell rejects signatures older or newer than this.
pub const RETELL_TOLERANCE_MS: i64 = 5 * 60 * 1000;
/// How far ahead of our clock a signature's timestamp may be (clock skew).
pub const FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("malformed {0} header")]
    Malformed(&'static str),
    #[error("signature timestamp is outside the allowed window")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// `x-retell-signature: v=<timestamp_ms>,d=<hex>` where
/// `hex = HMAC-SHA256(api_key, raw_body ++ timestamp_ms)`.
pub fn verify_retell(
    header: Option<&str>,
    body: &[u8],
    api_key: &[u8],
    now_ms: i64,
) -> Result<(), SignatureError> {
    const NAME: &str = "x-retell-signature";
    let header = header.ok_or(SignatureError::Missing(NAME))?;
    let (ts, digest) = header
        .trim()
        .strip_prefix("v=")
        .and_then(|rest| rest.split_once(",d="))
        .ok_or(SignatureError::Malformed(NAME))?;
    let ts_ms: i64 = ts.parse().map_err(|_| SignatureError::Malformed(NAME))?;
    if digest.len() != 64
        || !digest
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(SignatureError::Malformed(NAME));
    }
    within_window(ts_ms, now_ms, RETELL_TOLERANCE_MS, FUTURE_SKEW_MS)?;
    let expected = hex::decode(digest).map_err(|_| SignatureError::Malformed(NAME))?;
    let mut mac = HmacSha256::new_from_slice(api_key).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    mac.update(ts.as_bytes());
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// Builds a Retell signature header (for tests and the load generator).
pub fn sign_retell(body: &[u8], api_key: &[u8], ts_ms: i64) -> String {
    let mut mac = HmacSha256::new_from_slice(api_key).expect("HMAC accepts any key length");
    mac.update(body);
    mac.update(ts_ms.to_string().as_bytes());
    format!("v={ts_ms},d={}", hex::encode(mac.finalize().into_bytes()))
}

/// ElevenLabs rejects signatures older than this.
pub const ELEVENLABS_TOLERANCE_S: i64 = 30 * 60;
/// Vapi leaves the tolerance to us.
pub const VAPI_TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// `Ok` when `ts` is at most `past` before `now` and at most `future` after
/// it (inclusive), `Stale` otherwise. Checked: a difference that does not fit
/// an `i64` is out of any window.
fn within_window(ts: i64, now: i64, past: i64, future: i64) -> Result<(), SignatureError> {
    match now.checked_sub(ts) {
        Some(age) if (future.saturating_neg()..=past).contains(&age) => Ok(()),
        _ => Err(SignatureError::Stale),
    }
}

fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn verify_hex(
    expected_hex: &str,
    key: &[u8],
    parts: &[&[u8]],
    name: &'static str,
) -> Result<(), SignatureError> {
    let expected = hex::decode(expected_hex).map_err(|_| SignatureError::Malformed(name))?;
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| SignatureError::Mismatch)?;
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// `ElevenLabs-Signature: t=<unix_seconds>,v0=<hex>` where
/// `hex = HMAC-SHA256(secret, "<t>.<raw_body>")`; older than 30 minutes or
/// more than 5 minutes ahead is stale.
pub fn verify_elevenlabs(
    header: Option<&str>,
    body: &[u8],
    secret: &[u8],
    now_s: i64,
) -> Result<(), SignatureError> {
    const NAME: &str = "ElevenLabs-Signature";
    let header = header.ok_or(SignatureError::Missing(NAME))?;
    let mut ts = None;
    let mut v0 = None;
    for part in header.split(',') {
        let part = part.trim();
        if let Some(t) = part.strip_prefix("t=") {
            ts = Some(t);
        } else if let Some(v) = part.strip_prefix("v0=") {
            v0 = Some(v);
        }
    }
    let (Some(ts), Some(v0)) = (ts, v0) else {
        return Err(SignatureError::Malformed(NAME));
    };
    let t: i64 = ts.parse().map_err(|_| SignatureError::Malformed(NAME))?;
    within_window(t, now_s, ELEVENLABS_TOLERANCE_S, FUTURE_SKEW_MS / 1000)?;
    verify_hex(v0, secret, &[ts.as_bytes(), b".", body], NAME)
}

pub fn sign_elevenlabs(body: &[u8], secret: &[u8], ts_s: i64) -> String {
    let t = ts_s.to_string();
    format!(
        "t={t},v0={}",
        hex::encode(hmac_hex(secret, &[t.as_bytes(), b".", body]))
    )
}

/// Vapi's HMAC credential with its defaults (see [`super::vapi_auth`] for
/// every other option): `x-signature` = hex HMAC-SHA256 of
/// `"{timestamp}.{body}"` (an optional `sha256=` prefix is accepted),
/// `x-timestamp` in milliseconds or seconds, ±5 minutes.
pub fn verify_vapi_hmac(
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    secret: &[u8],
    now_ms: i64,
) -> Result<(), SignatureError> {
    super::vapi_auth::HmacPlan::default().verify(signature, timestamp, body, secret, now_ms)
}

pub fn sign_vapi(body: &[u8], secret: &[u8], ts_ms: i64) -> String {
    super::vapi_auth::HmacPlan::default().sign(body, secret, Some(&ts_ms.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"key_retell_webhook";
    const ELEVENLABS_VECTOR: &str =
        "8580fe46ca40876a1f93f7a34277501134e83d7dd8472e950b34c3b9c4d1e248";
    const BODY: &[u8] = br#"{"event":"call_inbound"}"#;

    #[test]
    fn a_signature_made_by_the_scheme_verifies() {
        let header = sign_retell(BODY, KEY, 1_700_000_000_000);
        assert_eq!(
            verify_retell(Some(&header), BODY, KEY, 1_700_000_060_000),
            Ok(())
        );
    }

    #[test]
    fn a_known_vector_verifies() {
        // HMAC-SHA256("key_retell_webhook", body ++ "1700000000000"), computed independently:
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"key_retell_webhook",b"{\"event\":\"call_inbound\"}1700000000000",hashlib.sha256).hexdigest())'
        let header =
            "v=1700000000000,d=0f32aab604482a3939ceebf6c69dd34f84b49100cf866e5fe4dff70123157365";
        assert_eq!(
            verify_retell(Some(header), BODY, KEY, 1_700_000_000_000),
            Ok(())
        );
        assert_eq!(sign_retell(BODY, KEY, 1_700_000_000_000), header);
    }

    #[test]
    fn elevenlabs_signatures_verify_within_30_minutes_and_match_a_known_vector() {
        // python3: hmac.new(b"wsec_test", b"1700000000.{\"type\":\"post_call_transcription\"}", hashlib.sha256).hexdigest()
        let body = br#"{"type":"post_call_transcription"}"#;
        let header = sign_elevenlabs(body, b"wsec_test", 1_700_000_000);
        assert_eq!(header, format!("t=1700000000,v0={ELEVENLABS_VECTOR}"));
        assert_eq!(
            verify_elevenlabs(Some(&header), body, b"wsec_test", 1_700_000_000 + 29 * 60),
            Ok(())
        );
        assert_eq!(
            verify_elevenlabs(Some(&header), body, b"wsec_test", 1_700_000_000 + 31 * 60),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_elevenlabs(Some(&header), b"{}", b"wsec_test", 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_elevenlabs(Some("t=1"), body, b"wsec_test", 1),
            Err(SignatureError::Malformed("ElevenLabs-Signature"))
        );
    }

    #[test]
    fn vapi_hmac_accepts_seconds_or_milliseconds_and_a_prefix() {
        let body = br#"{"message":{}}"#;
        let sig = sign_vapi(body, b"vsec", 1_700_000_000_000);
        assert_eq!(
            verify_vapi_hmac(
                Some(&sig),
                Some("1700000000000"),
                body,
                b"vsec",
                1_700_000_000_000
            ),
            Ok(())
        );
        let prefixed = format!("sha256={sig}");
        assert_eq!(
            verify_vapi_hmac(
                Some(&prefixed),
                Some("1700000000000"),
                body,
                b"vsec",
                1_700_000_100_000
            ),
            Ok(())
        );
        assert_eq!(
            verify_vapi_hmac(
                Some(&sig),
                Some("1700000000000"),
                body,
                b"vsec",
                1_700_001_000_000
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_vapi_hmac(
                Some(&sig),
                Some("1700000000000"),
                body,
                b"other",
                1_700_000_000_000
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_vapi_hmac(None, Some("1"), body, b"vsec", 1),
            Err(SignatureError::Missing("x-signature"))
        );
    }

    #[test]
    fn tampering_staleness_and_garbage_are_refused() {
        let header = sign_retell(BODY, KEY, 1_700_000_000_000);
        assert_eq!(
            verify_retell(Some(&header), b"{}", KEY, 1_700_000_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_retell(Some(&header), BODY, b"other", 1_700_000_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_retell(Some(&header), BODY, KEY, 1_700_000_000_000 + 301_000),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_retell(None, BODY, KEY, 0),
            Err(SignatureError::Missing("x-retell-signature"))
        );
        assert_eq!(
            verify_retell(Some("v=1,d=zz"), BODY, KEY, 1),
            Err(SignatureError::Malformed("x-retell-signature"))
        );
        let upper = header
            .to_uppercase()
            .replace("V=", "v=")
            .replace(",D=", ",d=");
        assert!(verify_retell(Some(&upper), BODY, KEY, 1_700_000_000_000).is_err());
    }

    /// Timestamps that overflow naive arithmetic, as seconds or milliseconds.
    const EXTREMES: [i64; 13] = [
        i64::MIN,
        i64::MIN + 1,
        i64::MIN / 1000 - 1,
        i64::MIN / 1000,
        -100_000_000_000,
        -1,
        0,
        1,
        99_999_999_999,
        100_000_000_000,
        i64::MAX / 1000 + 1,
        i64::MAX - 1,
        i64::MAX,
    ];
    const NOW_S: i64 = 1_700_000_000;
    const NOW_MS: i64 = 1_700_000_000_000;

    /// What a window says, computed in `i128`, where nothing overflows.
    fn oracle(ts: i128, now: i128, past: i64, future: i64) -> Result<(), SignatureError> {
        if now - ts <= i128::from(past) && ts - now <= i128::from(future) {
            Ok(())
        } else {
            Err(SignatureError::Stale)
        }
    }

    /// Every scheme, correctly signed at `ts` and checked at `now`: accepted
    /// exactly when the oracle says the timestamp is in its window.
    fn every_scheme_agrees_with_the_oracle(ts: i64, now: i64) {
        let header = sign_retell(BODY, KEY, ts);
        assert_eq!(
            verify_retell(Some(&header), BODY, KEY, now),
            oracle(ts.into(), now.into(), RETELL_TOLERANCE_MS, FUTURE_SKEW_MS),
            "retell ts={ts} now={now}"
        );
        let header = sign_elevenlabs(BODY, b"wsec", ts);
        assert_eq!(
            verify_elevenlabs(Some(&header), BODY, b"wsec", now),
            oracle(
                ts.into(),
                now.into(),
                ELEVENLABS_TOLERANCE_S,
                FUTURE_SKEW_MS / 1000
            ),
            "elevenlabs ts={ts} now={now}"
        );
        let sig = sign_vapi(BODY, b"vsec", ts);
        let ts_ms = if ts < 100_000_000_000 {
            i128::from(ts) * 1000
        } else {
            ts.into()
        };
        // A time in milliseconds that does not fit an `i64` is no time at all.
        let expected = if i64::try_from(ts_ms).is_ok() {
            oracle(ts_ms, now.into(), VAPI_TOLERANCE_MS, FUTURE_SKEW_MS)
        } else {
            Err(SignatureError::Stale)
        };
        assert_eq!(
            verify_vapi_hmac(Some(&sig), Some(&ts.to_string()), BODY, b"vsec", now),
            expected,
            "vapi ts={ts} now={now}"
        );
    }

    #[test]
    fn extreme_timestamps_are_refused_without_overflowing() {
        for ts in EXTREMES {
            for now in EXTREMES.into_iter().chain([NOW_S, NOW_MS]) {
                every_scheme_agrees_with_the_oracle(ts, now);
            }
        }
        for ts in [i64::MAX, i64::MIN, i64::MIN + 1] {
            let header = sign_elevenlabs(BODY, b"wsec", ts);
            assert_eq!(
                verify_elevenlabs(Some(&header), BODY, b"wsec", NOW_S),
                Err(SignatureError::Stale)
            );
            let header = sign_retell(BODY, KEY, ts);
            assert_eq!(
                verify_retell(Some(&header), BODY, KEY, NOW_MS),
                Err(SignatureError::Stale)
            );
            let sig = sign_vapi(BODY, b"vsec", ts);
            assert_eq!(
                verify_vapi_hmac(Some(&sig), Some(&ts.to_string()), BODY, b"vsec", NOW_MS),
                Err(SignatureError::Stale)
            );
        }
    }

    #[test]
    fn timestamps_that_are_not_an_i64_are_malformed_not_a_panic() {
        let digest = "0".repeat(64);
        for ts in [
            "99999999999999999999",
            "-99999999999999999999",
            "9223372036854775808",
            "-9223372036854775809",
            "1e10",
            "1.5",
            "0x10",
            "",
            " ",
            "--1",
        ] {
            assert_eq!(
                verify_retell(Some(&format!("v={ts},d={digest}")), BODY, KEY, NOW_MS),
                Err(SignatureError::Malformed("x-retell-signature")),
                "{ts:?}"
            );
            assert_eq!(
                verify_elevenlabs(Some(&format!("t={ts},v0={digest}")), BODY, b"wsec", NOW_S),
                Err(SignatureError::Malformed("ElevenLabs-Signature")),
                "{ts:?}"
            );
            assert_eq!(
                verify_vapi_hmac(Some(&digest), Some(ts), BODY, b"vsec", NOW_MS),
                Err(SignatureError::Malformed("x-timestamp")),
                "{ts:?}"
            );
        }
    }

    #[test]
    fn future_timestamps_are_refused_past_a_five_minute_skew() {
        let ten_years_s = 10 * 365 * 86_400;
        let at = |ts: i64, now: i64| {
            let header = sign_elevenlabs(BODY, b"wsec", ts);
            verify_elevenlabs(Some(&header), BODY, b"wsec", now)
        };
        assert_eq!(at(NOW_S + ten_years_s, NOW_S), Err(SignatureError::Stale));
        assert_eq!(at(NOW_S + 300, NOW_S), Ok(()));
        assert_eq!(at(NOW_S + 301, NOW_S), Err(SignatureError::Stale));
        assert_eq!(
            at(NOW_S - 30 * 60, NOW_S),
            Ok(()),
            "the past window is kept"
        );
        assert_eq!(at(NOW_S - 30 * 60 - 1, NOW_S), Err(SignatureError::Stale));

        let retell = |ts: i64| verify_retell(Some(&sign_retell(BODY, KEY, ts)), BODY, KEY, NOW_MS);
        assert_eq!(retell(NOW_MS + 300_000), Ok(()));
        assert_eq!(retell(NOW_MS + 300_001), Err(SignatureError::Stale));
        assert_eq!(
            retell(NOW_MS + ten_years_s * 1000),
            Err(SignatureError::Stale)
        );

        let vapi = |ts: i64| {
            let sig = sign_vapi(BODY, b"vsec", ts);
            verify_vapi_hmac(Some(&sig), Some(&ts.to_string()), BODY, b"vsec", NOW_MS)
        };
        assert_eq!(vapi(NOW_S + 300), Ok(()), "seconds");
        assert_eq!(vapi(NOW_S + 301), Err(SignatureError::Stale));
        assert_eq!(vapi(NOW_MS + 300_001), Err(SignatureError::Stale));
        assert_eq!(vapi(NOW_S + ten_years_s), Err(SignatureError::Stale));
    }

    #[test]
    fn a_seeded_sweep_of_timestamps_agrees_with_the_windows() {
        let mut rng = fastrand::Rng::with_seed(0x5EED_2024);
        let window = 2 * ELEVENLABS_TOLERANCE_S * 1000;
        for _ in 0..5_000 {
            let now = match rng.u8(0..3) {
                0 => rng.i64(..),
                1 => NOW_MS + rng.i64(-window..=window),
                _ => NOW_S + rng.i64(-window..=window),
            };
            let ts = match rng.u8(0..4) {
                0 => rng.i64(..),
                1 => EXTREMES[rng.usize(..EXTREMES.len())],
                2 => now.saturating_add(rng.i64(-window..=window)),
                // The same instant in the other unit (Vapi's seconds).
                _ => (now / 1000).saturating_add(rng.i64(-600..=600)),
            };
            every_scheme_agrees_with_the_oracle(ts, now);
        }
    }
}
