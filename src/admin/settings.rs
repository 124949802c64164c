//! Who may use the admin: `WARMLINE_ADMIN_TOKEN` for the JSON API.

use secrecy::SecretString;

use crate::support::{Env, SettingsError};

#[derive(Clone, Default)]
pub struct AdminSettings {
    /// Bearer token of the admin JSON API; unset: the API is disabled.
    pub token: Option<SecretString>,
}

impl AdminSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let token = env.parse_with("WARMLINE_ADMIN_TOKEN", |t| {
            if t.len() < 16 {
                Err("must be at least 16 characters".into())
            } else {
                Ok(SecretString::from(t))
            }
        });
        // The value is a secret: name the variable, never echo it.
        let token = token.map_err(|_| {
            SettingsError::new("WARMLINE_ADMIN_TOKEN", "must be at least 16 characters")
        })?;
        Ok(AdminSettings { token })
    }
}
