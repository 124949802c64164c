//! Every way Vapi can authenticate its requests, as configured on its side:
//! a bearer credential (header name configurable, `Bearer ` prefix on or
//! off), the legacy `X-Vapi-Secret`, or an HMAC credential (SHA-256, -512 or
//! -1; hex or base64; signature and timestamp headers configurable; with or
//! without the timestamp; an optional signature prefix). Set warmline to
//! match the credential with the `VAPI_*` variables; the defaults are Vapi's.

use base64::Engine as _;
use hmac::{Hmac, Mac};

use super::signature::{FUTURE_SKEW_MS, SignatureError, VAPI_TOLERANCE_MS};
use crate::support::{Env, SettingsError, constant_time_eq};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HmacAlgorithm {
    Sha256,
    Sha512,
    Sha1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

/// Vapi's `HMACAuthenticationPlan`, as far as warmline needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HmacPlan {
    pub algorithm: HmacAlgorithm,
    pub encoding: SignatureEncoding,
    /// Lower-case header names.
    pub signature_header: String,
    pub timestamp_header: String,
    /// Signed payload `{timestamp}.{body}` (true) or the body alone.
    pub include_timestamp: bool,
    /// A prefix before the signature, e.g. `sha256=`; without one, the
    /// algorithm's `name=` prefix is accepted and optional.
    pub prefix: Option<String>,
}

impl Default for HmacPlan {
    fn default() -> Self {
        HmacPlan {
            algorithm: HmacAlgorithm::Sha256,
            encoding: SignatureEncoding::Hex,
            signature_header: "x-signature".into(),
            timestamp_header: "x-timestamp".into(),
            include_timestamp: true,
            prefix: None,
        }
    }
}

fn mac(algorithm: HmacAlgorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut m =
            <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    }
    match algorithm {
        HmacAlgorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts),
        HmacAlgorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, parts),
        HmacAlgorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, parts),
    }
}

impl HmacPlan {
    fn algorithm_prefix(&self) -> &'static str {
        match self.algorithm {
            HmacAlgorithm::Sha256 => "sha256=",
            HmacAlgorithm::Sha512 => "sha512=",
            HmacAlgorithm::Sha1 => "sha1=",
        }
    }

    /// Error names: the default headers by name, others generically.
    fn names(&self) -> (&'static str, &'static str) {
        let sig = if self.signature_header == "x-signature" {
            "x-signature"
        } else {
            "signature"
        };
        let ts = if self.timestamp_header == "x-timestamp" {
            "x-timestamp"
        } else {
            "timestamp"
        };
        (sig, ts)
    }

    fn payload<'a>(&self, timestamp: Option<&'a str>, body: &'a [u8]) -> Vec<&'a [u8]> {
        match timestamp {
            Some(ts) if self.include_timestamp => vec![ts.as_bytes(), b".", body],
            _ => vec![body],
        }
    }

    /// Checks a request's signature and (when signed) timestamp, ±5 min.
    pub fn verify(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        secret: &[u8],
        now_ms: i64,
    ) -> Result<(), SignatureError> {
        let (sig_name, ts_name) = self.names();
        let sig = signature.ok_or(SignatureError::Missing(sig_name))?.trim();
        let ts = if self.include_timestamp {
            let ts = timestamp.ok_or(SignatureError::Missing(ts_name))?.trim();
            let n: i64 = ts.parse().map_err(|_| SignatureError::Malformed(ts_name))?;
            // Seconds or milliseconds, whichever Vapi sends: anything below
            // 10^11 (negative values too) is seconds.
            let ts_ms = if n < 100_000_000_000 {
                n.checked_mul(1000).ok_or(SignatureError::Stale)?
            } else {
                n
            };
            match now_ms.checked_sub(ts_ms) {
                Some(age) if (-FUTURE_SKEW_MS..=VAPI_TOLERANCE_MS).contains(&age) => {}
                _ => return Err(SignatureError::Stale),
            }
            Some(ts)
        } else {
            None
        };
        let sig = match &self.prefix {
            Some(p) => sig
                .strip_prefix(p.as_str())
                .ok_or(SignatureError::Malformed(sig_name))?,
            None => sig.strip_prefix(self.algorithm_prefix()).unwrap_or(sig),
        };
        let given = match self.encoding {
            SignatureEncoding::Hex => hex::decode(sig),
            SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(sig)
                .map_err(|_| hex::FromHexError::OddLength),
        }
        .map_err(|_| SignatureError::Malformed(sig_name))?;
        let expected = mac(self.algorithm, secret, &self.payload(ts, body));
        if constant_time_eq(&given, &expected) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }

    /// The signature Vapi would send (for tests and the load generator).
    pub fn sign(&self, body: &[u8], secret: &[u8], timestamp: Option<&str>) -> String {
        let raw = mac(self.algorithm, secret, &self.payload(timestamp, body));
        let encoded = match self.encoding {
            SignatureEncoding::Hex => hex::encode(raw),
            SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(raw),
        };
        format!("{}{encoded}", self.prefix.as_deref().unwrap_or(""))
    }
}

/// How warmline checks Vapi's requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VapiAuth {
    /// The bearer credential's header, lower case (`VAPI_AUTH_HEADER`).
    pub bearer_header: String,
    /// Whether the token follows `Bearer ` (`VAPI_BEARER_PREFIX`).
    pub bearer_prefix: bool,
    pub hmac: HmacPlan,
}

impl Default for VapiAuth {
    fn default() -> Self {
        VapiAuth {
            bearer_header: "authorization".into(),
            bearer_prefix: true,
            hmac: HmacPlan::default(),
        }
    }
}

impl VapiAuth {
    /// `VAPI_AUTH_HEADER`, `VAPI_BEARER_PREFIX` (on|off),
    /// `VAPI_HMAC_ALGORITHM` (sha256|sha512|sha1), `VAPI_HMAC_ENCODING`
    /// (hex|base64), `VAPI_HMAC_SIGNATURE_HEADER`, `VAPI_HMAC_TIMESTAMP_HEADER`,
    /// `VAPI_HMAC_INCLUDE_TIMESTAMP` (on|off), `VAPI_HMAC_SIGNATURE_PREFIX`.
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let d = VapiAuth::default();
        let header = |var: &str, default: &str| -> Result<String, SettingsError> {
            Ok(env
                .parse_with(var, |v| {
                    actix_web::http::header::HeaderName::from_bytes(v.as_bytes())
                        .map(|h| h.as_str().to_owned())
                        .map_err(|_| "expected an HTTP header name".into())
                })?
                .unwrap_or_else(|| default.to_owned()))
        };
        let algorithm = env
            .parse_with("VAPI_HMAC_ALGORITHM", |v| {
                match v.to_ascii_lowercase().as_str() {
                    "sha256" => Ok(HmacAlgorithm::Sha256),
                    "sha512" => Ok(HmacAlgorithm::Sha512),
                    "sha1" => Ok(HmacAlgorithm::Sha1),
                    _ => Err("expected sha256, sha512 or sha1".into()),
                }
            })?
            .unwrap_or(d.hmac.algorithm);
        let encoding = env
            .parse_with("VAPI_HMAC_ENCODING", |v| {
                match v.to_ascii_lowercase().as_str() {
                    "hex" => Ok(SignatureEncoding::Hex),
                    "base64" => Ok(SignatureEncoding::Base64),
                    _ => Err("expected hex or base64".into()),
                }
            })?
            .unwrap_or(d.hmac.encoding);
        Ok(VapiAuth {
            bearer_header: header("VAPI_AUTH_HEADER", &d.bearer_header)?,
            bearer_prefix: env.switch_or("VAPI_BEARER_PREFIX", d.bearer_prefix)?,
            hmac: HmacPlan {
                algorithm,
                encoding,
                signature_header: header("VAPI_HMAC_SIGNATURE_HEADER", &d.hmac.signature_header)?,
                timestamp_header: header("VAPI_HMAC_TIMESTAMP_HEADER", &d.hmac.timestamp_header)?,
                include_timestamp: env
                    .switch_or("VAPI_HMAC_INCLUDE_TIMESTAMP", d.hmac.include_timestamp)?,
                prefix: env.get("VAPI_HMAC_SIGNATURE_PREFIX"),
            },
        })
    }

    /// Checks a request against `secret` by whichever credential it carries;
    /// `header` reads a request header by its lower-case name.
    pub fn verify<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a str>,
        body: &[u8],
        secret: &[u8],
        now_ms: i64,
    ) -> Result<(), String> {
        let bearer = header(&self.bearer_header).and_then(|v| {
            if self.bearer_prefix {
                v.strip_prefix("Bearer ")
            } else {
                Some(v)
            }
        });
        if let Some(token) = bearer {
            return constant_time_eq(token.trim().as_bytes(), secret)
                .then_some(())
                .ok_or_else(|| "invalid bearer token".into());
        }
        if let Some(token) = header("x-vapi-secret") {
            return constant_time_eq(token.trim().as_bytes(), secret)
                .then_some(())
                .ok_or_else(|| "invalid X-Vapi-Secret".into());
        }
        self.hmac
            .verify(
                header(&self.hmac.signature_header),
                header(&self.hmac.timestamp_header),
                body,
                secret,
                now_ms,
            )
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"vapi-secret";
    const BODY: &[u8] = br#"{"message":{"type":"tool-calls"}}"#;

    #[test]
    fn every_hmac_variant_verifies_what_it_signs_and_nothing_else() {
        let now = 1_790_000_000_000_i64;
        let ts = now.to_string();
        for algorithm in [
            HmacAlgorithm::Sha256,
            HmacAlgorithm::Sha512,
            HmacAlgorithm::Sha1,
        ] {
            for encoding in [SignatureEncoding::Hex, SignatureEncoding::Base64] {
                for include_timestamp in [true, false] {
                    for prefix in [None, Some("v1=".to_owned())] {
                        let plan = HmacPlan {
                            algorithm,
                            encoding,
                            include_timestamp,
                            prefix,
                            ..HmacPlan::default()
                        };
                        let ts = include_timestamp.then_some(ts.as_str());
                        let sig = plan.sign(BODY, SECRET, ts);
                        assert_eq!(
                            plan.verify(Some(&sig), ts, BODY, SECRET, now),
                            Ok(()),
                            "{plan:?}"
                        );
                        assert_eq!(
                            plan.verify(Some(&sig), ts, b"{}", SECRET, now),
                            Err(SignatureError::Mismatch),
                            "{plan:?}"
                        );
                        assert!(plan.verify(Some(&sig), ts, BODY, b"other", now).is_err());
                    }
                }
            }
        }
    }

    #[test]
    fn a_timestamped_signature_outside_the_window_is_refused() {
        let plan = HmacPlan::default();
        let now = 1_790_000_000_000_i64;
        for ts in [
            now - VAPI_TOLERANCE_MS - 1,
            now + FUTURE_SKEW_MS + 1,
            i64::MAX,
            i64::MIN,
        ] {
            let ts = ts.to_string();
            let sig = plan.sign(BODY, SECRET, Some(&ts));
            assert_eq!(
                plan.verify(Some(&sig), Some(&ts), BODY, SECRET, now),
                Err(SignatureError::Stale),
                "{ts}"
            );
        }
    }

    #[test]
    fn a_bearer_token_under_a_custom_header_without_the_prefix_is_accepted() {
        let auth = VapiAuth {
            bearer_header: "x-my-token".into(),
            bearer_prefix: false,
            ..VapiAuth::default()
        };
        let header = |n: &str| (n == "x-my-token").then_some("vapi-secret");
        assert_eq!(auth.verify(header, BODY, SECRET, 0), Ok(()));
        let wrong = |n: &str| (n == "x-my-token").then_some("nope");
        assert!(auth.verify(wrong, BODY, SECRET, 0).is_err());
    }
}
