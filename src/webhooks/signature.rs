//! Webhook signature schemes, verified on the raw body bytes in constant
//! time, with each provider's timestamp tolerance.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Retell rejects signatures older or newer than this.
pub const RETELL_TOLERANCE_MS: i64 = 5 * 60 * 1000;

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
    if (now_ms - ts_ms).abs() > RETELL_TOLERANCE_MS {
        return Err(SignatureError::Stale);
    }
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
/// `hex = HMAC-SHA256(secret, "<t>.<raw_body>")`; older than 30 minutes is stale.
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
    if t < now_s - ELEVENLABS_TOLERANCE_S {
        return Err(SignatureError::Stale);
    }
    verify_hex(v0, secret, &[ts.as_bytes(), b".", body], NAME)
}

pub fn sign_elevenlabs(body: &[u8], secret: &[u8], ts_s: i64) -> String {
    let t = ts_s.to_string();
    format!(
        "t={t},v0={}",
        hex::encode(hmac_hex(secret, &[t.as_bytes(), b".", body]))
    )
}

/// Vapi's HMAC credential with its defaults: `x-signature` = hex
/// HMAC-SHA256 of `"{timestamp}.{body}"` (an optional `sha256=` prefix is
/// accepted), `x-timestamp` in milliseconds or seconds, ±5 minutes.
pub fn verify_vapi_hmac(
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    secret: &[u8],
    now_ms: i64,
) -> Result<(), SignatureError> {
    let sig = signature.ok_or(SignatureError::Missing("x-signature"))?;
    let ts = timestamp
        .ok_or(SignatureError::Missing("x-timestamp"))?
        .trim();
    let n: i64 = ts
        .parse()
        .map_err(|_| SignatureError::Malformed("x-timestamp"))?;
    let ts_ms = if n < 100_000_000_000 { n * 1000 } else { n };
    if (now_ms - ts_ms).abs() > VAPI_TOLERANCE_MS {
        return Err(SignatureError::Stale);
    }
    let hex_sig = sig.trim().strip_prefix("sha256=").unwrap_or(sig.trim());
    verify_hex(hex_sig, secret, &[ts.as_bytes(), b".", body], "x-signature")
}

pub fn sign_vapi(body: &[u8], secret: &[u8], ts_ms: i64) -> String {
    let t = ts_ms.to_string();
    hex::encode(hmac_hex(secret, &[t.as_bytes(), b".", body]))
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
}
