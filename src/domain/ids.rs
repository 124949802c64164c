use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("{0} is longer than {1} characters")]
    TooLong(&'static str, usize),
    #[error("{0} contains `{1}`; allowed are letters, digits and - _ . :")]
    BadCharacter(&'static str, char),
}

fn check_id(kind: &'static str, raw: &str, max: usize) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty(kind));
    }
    if raw.chars().count() > max {
        return Err(IdError::TooLong(kind, max));
    }
    if let Some(c) = raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(IdError::BadCharacter(kind, c));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                let raw = raw.trim();
                check_id($kind, raw, $max)?;
                Ok(Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A tenant (one business) as warmline knows it: a short slug such as
    /// `acme-dental`, chosen by the operator.
    TenantId,
    "tenant id",
    64
);

id_type!(
    /// A voice platform's call id (`call_…` from Retell, a UUID from Vapi, a
    /// conversation id from ElevenLabs), unique within its provider.
    CallId,
    "call id",
    128
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_slugs_and_provider_ids() {
        assert_eq!(
            TenantId::parse(" acme-dental ").unwrap().as_str(),
            "acme-dental"
        );
        assert!(CallId::parse("call_8f2a9c").is_ok());
        assert!(CallId::parse("5d2b8c4e-1f0a-4c7e-9d1e-0b8a7c6d5e4f").is_ok());
    }

    #[test]
    fn bad_ids_say_what_is_wrong() {
        assert_eq!(TenantId::parse(""), Err(IdError::Empty("tenant id")));
        assert_eq!(
            CallId::parse("call 1"),
            Err(IdError::BadCharacter("call id", ' '))
        );
        assert_eq!(
            TenantId::parse(&"x".repeat(65)),
            Err(IdError::TooLong("tenant id", 64))
        );
    }
}
