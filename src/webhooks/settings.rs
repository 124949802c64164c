//! The providers' global webhook secrets. A tenant may add its own beside
//! them (see `tenants::WebhookSecrets`).

use secrecy::SecretString;

use super::vapi_auth::VapiAuth;
use crate::domain::Provider;
use crate::support::{Env, SettingsError};

#[derive(Clone)]
pub struct WebhookSettings {
    /// `RETELL_API_KEY`: Retell signs webhooks with the account's API key.
    pub retell_api_key: Option<SecretString>,
    /// `VAPI_SECRET`: the bearer token, `X-Vapi-Secret` or HMAC secret.
    pub vapi_secret: Option<SecretString>,
    /// `ELEVENLABS_WEBHOOK_SECRET`: post-call HMAC and the initiation header.
    pub elevenlabs_secret: Option<SecretString>,
    /// `WARMLINE_WEBHOOK_BODY_LIMIT_BYTES`: the largest inbound-call or tool
    /// request (default 1 MiB): these are small, and a caller waits on them.
    pub body_limit: usize,
    /// `WARMLINE_EVENT_BODY_LIMIT_BYTES`: the largest call event (default
    /// 64 MiB): `call_analyzed` with word-level transcripts, end-of-call
    /// reports and ElevenLabs post-call audio are large, and refusing one
    /// loses it.
    pub event_body_limit: usize,
    /// How Vapi's credential is configured (`VAPI_AUTH_HEADER`, `VAPI_HMAC_*`…).
    pub vapi_auth: VapiAuth,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            retell_api_key: None,
            vapi_secret: None,
            elevenlabs_secret: None,
            body_limit: 1024 * 1024,
            event_body_limit: 64 * 1024 * 1024,
            vapi_auth: VapiAuth::default(),
        }
    }
}

impl WebhookSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let defaults = WebhookSettings::default();
        let bytes = |var: &str, default: usize| {
            env.parse_with(var, |v| match v.parse::<usize>() {
                Ok(n) if n >= 1024 => Ok(n),
                _ => Err("expected a whole number of bytes, at least 1024".into()),
            })
            .map(|n| n.unwrap_or(default))
        };
        Ok(WebhookSettings {
            retell_api_key: env.secret("RETELL_API_KEY"),
            vapi_secret: env.secret("VAPI_SECRET"),
            elevenlabs_secret: env.secret("ELEVENLABS_WEBHOOK_SECRET"),
            body_limit: bytes("WARMLINE_WEBHOOK_BODY_LIMIT_BYTES", defaults.body_limit)?,
            event_body_limit: bytes("WARMLINE_EVENT_BODY_LIMIT_BYTES", defaults.event_body_limit)?,
            vapi_auth: VapiAuth::from_env(env)?,
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
