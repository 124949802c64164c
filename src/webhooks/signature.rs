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

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"key_retell_webhook";
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
