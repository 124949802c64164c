//! Keeping secrets out of sight: URL passwords redacted for printing, and
//! secret comparison without a timing side channel.

/// Query parameters that carry secrets in connection URLs
/// (`postgres://db/app?password=…`, `…?sslpassword=…`, `…?token=…`).
const SECRET_PARAMS: &[&str] = &[
    "password",
    "pass",
    "pwd",
    "sslpassword",
    "secret",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "key",
];

/// Replaces the password of `scheme://user:password@host` and the value of
/// every secret-bearing query parameter with `***`.
pub fn redact_url(url: &str) -> String {
    let url = redact_userinfo(url);
    let Some((head, rest)) = url.split_once('?') else {
        return url;
    };
    let (query, fragment) = match rest.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (rest, None),
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => {
                format!("{k}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    match fragment {
        Some(f) => format!("{head}?{}#{f}", query.join("&")),
        None => format!("{head}?{}", query.join("&")),
    }
}

fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{}://{}@{}", &url[..scheme_end], masked, &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

/// Compares without an early exit, so response time does not reveal how
/// much of a guess was right — nor how long the secret is: both sides are
/// first reduced to SHA-256 digests of one fixed length, and the digests are
/// compared in full.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |diff, (p, q)| diff | (p ^ q))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_query_parameters_are_redacted_too() {
        assert_eq!(
            redact_url("postgres://db:5432/app?sslmode=require&password=hunter2"),
            "postgres://db:5432/app?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("postgres://u:pw@db/app?PassWord=x&sslpassword=y#frag"),
            "postgres://u:***@db/app?PassWord=***&sslpassword=***#frag"
        );
        assert_eq!(
            redact_url("redis://cache:6379/0?protocol=resp3"),
            "redis://cache:6379/0?protocol=resp3"
        );
    }

    #[test]
    fn equal_only_when_identical() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokeN"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn redact_url_leaves_urls_without_credentials_alone() {
        assert_eq!(
            redact_url("sqlite://warmline.db?mode=rwc"),
            "sqlite://warmline.db?mode=rwc"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
    }
}
