//! The providers' global webhook secrets. A tenant may add its own beside
//! them (see `tenants::WebhookSecrets`).

use secrecy::SecretString;

use crate::domain::Provider;
use crate::support::{Env, SettingsError};

#[derive(Clone, Default)]
pub struct WebhookSettings {
    /// `RETELL_API_KEY`: Retell signs webhooks with the account's API key.
    pub retell_api_key: Option<SecretString>,
    /// `VAPI_SECRET`: the bearer token, `X-Vapi-Secret` or HMAC secret.
    pub vapi_secret: Option<SecretString>,
    /// `ELEVENLABS_WEBHOOK_SECRET`: post-call HMAC and the initiation header.
    pub elevenlabs_secret: Option<SecretString>,
}

impl WebhookSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        Ok(WebhookSettings {
            retell_api_key: env.secret("RETELL_API_KEY"),
            vapi_secret: env.secret("VAPI_SECRET"),
            elevenlabs_secret: env.secret("ELEVENLABS_WEBHOOK_SECRET"),
        })
    }

    /// The provider's global secret and the variable that sets it.
    pub fn global(&self, provider: Provider) -> (Option<&SecretString>, &'static str) {
        match provider {
            Provider::Retell => (self.retell_api_key.as_ref(), "RETELL_API_KEY"),
            Provider::Vapi => (self.vapi_secret.as_ref(), "VAPI_SECRET"),
            Provider::ElevenLabs => (self.elevenlabs_secret.as_ref(), "ELEVENLABS_WEBHOOK_SECRET"),
        }
    }
}
