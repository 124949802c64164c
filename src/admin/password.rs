//! Admin passwords: argon2id hashes in PHC strings, made by
//! `warmline hash-password`, and the random tokens of sessions.

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};

/// A validated argon2 PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
#[derive(Clone)]
pub struct PasswordHash(String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

impl PasswordHash {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let parsed = argon2::PasswordHash::new(raw).map_err(|e| e.to_string())?;
        if !parsed.algorithm.as_str().starts_with("argon2") {
            return Err("not an argon2 hash".into());
        }
        Ok(PasswordHash(raw.to_owned()))
    }

    /// Hashes `password` with argon2id and a random salt.
    pub fn make(password: &str) -> Result<Self, String> {
        let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| e.to_string())?;
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| e.to_string())?;
        Ok(PasswordHash(hash.to_string()))
    }

    /// Whether `password` matches (argon2 compares in constant time).
    pub fn verify(&self, password: &str) -> bool {
        argon2::PasswordHash::new(&self.0).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    }

    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system's random source answers");
    buf
}

/// A random token for a cookie or a form: 32 bytes, URL-safe base64.
pub fn random_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A password a person can type: 20 characters from an unambiguous alphabet.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    random_bytes::<20>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_hash_verifies_its_password_only() {
        let h = PasswordHash::make("correct horse").unwrap();
        assert!(h.as_phc().starts_with("$argon2id$"));
        assert!(h.verify("correct horse"));
        assert!(!h.verify("correct horsf"));
        let again = PasswordHash::parse(h.as_phc()).unwrap();
        assert!(again.verify("correct horse"));
        assert!(PasswordHash::parse("plaintext").is_err());
        assert_eq!(format!("{h:?}"), "PasswordHash(***)");
    }
}
