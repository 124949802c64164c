//! A tenant's configuration: which CRM, memory and calendar it uses, their
//! ids and credentials, its services, its own webhook secrets and its Vapi
//! assistant. Stored as the tenant's `config` JSON, typed once when read;
//! written by `warmline tenants import`. Which URL or header an adapter
//! sends is `upstreams/`' business, not this file's.
//!
//! A credential is given either inline (`token`) or, better, as the name of
//! an environment variable holding it (`token_env`), so the secret need not
//! sit in the database or the import file. Either way it is wrapped: `Debug`
//! prints `***`, so a tenant can be logged without leaking it.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::guard::is_reserved_variable;
use crate::support::constant_time_eq;

/// An inline secret. It is serialised (the database must keep it) but never
/// shown: `Debug` prints `***`.
#[derive(Clone)]
pub struct InlineSecret(SecretString);

impl InlineSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        InlineSecret(SecretString::from(secret.into()))
    }
}

impl fmt::Debug for InlineSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl PartialEq for InlineSecret {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(
            self.0.expose_secret().as_bytes(),
            other.0.expose_secret().as_bytes(),
        )
    }
}

impl Serialize for InlineSecret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.expose_secret())
    }
}

impl<'de> Deserialize<'de> for InlineSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(InlineSecret::new(String::deserialize(d)?))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<InlineSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
}

impl Credential {
    /// The secret, from the environment variable if one is named — never
    /// from one of warmline's own settings, whatever is stored.
    pub fn resolve(&self, what: &str) -> Result<SecretString, String> {
        match (&self.token, &self.token_env) {
            (_, Some(var)) if is_reserved_variable(var) => Err(format!(
                "{what}: environment variable {var} is one of warmline's own settings, \
                 not a tenant credential"
            )),
            (_, Some(var)) => std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .map(SecretString::from)
                .ok_or_else(|| format!("{what}: environment variable {var} is not set")),
            (Some(t), None) if !t.0.expose_secret().is_empty() => Ok(t.0.clone()),
            _ => Err(format!("{what}: give `token` or `token_env`")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum CrmConfig {
    Gohighlevel {
        location_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_url: Option<String>,
        #[serde(flatten)]
        credential: Credential,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum MemoryConfig {
    /// Zep Cloud, v3 SDK generation (threads under `/api/v2`).
    Zep {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_url: Option<String>,
        #[serde(flatten)]
        credential: Credential,
    },
    /// mem0 platform API v3.
    Mem0 {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_url: Option<String>,
        #[serde(flatten)]
        credential: Credential,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum CalendarConfig {
    Gohighlevel {
        location_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_url: Option<String>,
        #[serde(flatten)]
        credential: Credential,
    },
    Calcom {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_url: Option<String>,
        #[serde(flatten)]
        credential: Credential,
    },
}

impl CrmConfig {
    /// The `kind` named in the tenant file.
    pub fn kind(&self) -> &'static str {
        match self {
            CrmConfig::Gohighlevel { .. } => "gohighlevel",
        }
    }
}

impl MemoryConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            MemoryConfig::Zep { .. } => "zep",
            MemoryConfig::Mem0 { .. } => "mem0",
        }
    }
}

impl CalendarConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            CalendarConfig::Gohighlevel { .. } => "gohighlevel",
            CalendarConfig::Calcom { .. } => "calcom",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub id: String,
    pub name: String,
    #[serde(default = "default_duration")]
    pub duration_minutes: u32,
    /// GoHighLevel calendar of this service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar_id: Option<String>,
    /// Cal.com event type of this service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_id: Option<i64>,
}

fn default_duration() -> u32 {
    30
}

impl ServiceConfig {
    /// Where the service is booked: the GoHighLevel calendar id or the
    /// Cal.com event type id, as text.
    pub fn calendar_ref(&self) -> String {
        self.calendar_id
            .clone()
            .or_else(|| self.event_type_id.map(|id| id.to_string()))
            .unwrap_or_default()
    }
}

/// A tenant's own webhook secrets, used besides the global ones
/// (`RETELL_API_KEY`, `VAPI_SECRET`, `ELEVENLABS_WEBHOOK_SECRET`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSecrets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retell: Option<Credential>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vapi: Option<Credential>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevenlabs: Option<Credential>,
}

/// Everything a tenant's `config` column holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secrets: Option<WebhookSecrets>,
    /// The Vapi assistant to answer `assistant-request` with: the id of one
    /// saved in Vapi…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vapi_assistant_id: Option<String>,
    /// …or a transient assistant, inline (Vapi's `assistant` object). With
    /// neither, Vapi is answered with an `error` and the call is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vapi_assistant: Option<serde_json::Map<String, serde_json::Value>>,
    /// Other names of this tenant's line, for calls that carry no phone
    /// number: Vapi phone-number ids and SIP URIs (a call over SIP names
    /// `phoneNumber.id` or `phoneNumber.sipUri`, not `phoneNumber.number`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub line_ids: Vec<String>,
    /// The names of the WhatsApp instances (an Evolution API instance, a
    /// Twilio sender) writing for this tenant: the bots' API resolves the
    /// tenant from one (`"instance": …`) as calls resolve it from a number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub whatsapp_instances: Vec<String>,
    /// Environment variables each holding one of the tenant's keys for the
    /// bots' API (`Authorization: Bearer …`). Named, never stored: warmline
    /// keeps only their SHA-256 in memory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys_env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm: Option<CrmConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<CalendarConfig>,
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
}

impl TenantConfig {
    /// Checks what can be checked without calling anyone: each service names
    /// the calendar reference its calendar kind needs.
    pub fn validate(&self) -> Result<(), String> {
        for (at, c) in self.credentials() {
            if let Some(var) = &c.token_env
                && !is_variable_name(var)
            {
                // The value is not named back: it may be the secret itself.
                return Err(format!(
                    "`{at}.token_env` must be the name of an environment variable \
                     (capitals, digits and `_`, such as ACME_GHL_TOKEN), not the secret itself"
                ));
            }
            if let Some(var) = &c.token_env
                && is_reserved_variable(var)
            {
                return Err(format!(
                    "`{at}.token_env`: {var} is one of warmline's own settings, never a \
                     tenant's credential; give a variable of the tenant's own"
                ));
            }
        }
        for (i, var) in self.api_keys_env.iter().enumerate() {
            if !is_variable_name(var) {
                return Err(format!(
                    "`api_keys_env[{i}]` must be the name of an environment variable \
                     (capitals, digits and `_`, such as ACME_API_KEY), not the key itself"
                ));
            }
            if is_reserved_variable(var) {
                return Err(format!(
                    "`api_keys_env[{i}]`: {var} is one of warmline's own settings, never a \
                     tenant's key; give a variable of the tenant's own"
                ));
            }
        }
        for (i, instance) in self.whatsapp_instances.iter().enumerate() {
            if instance.trim().is_empty() || instance.len() > 128 {
                return Err(format!(
                    "`whatsapp_instances[{i}]` must be an instance name (1 to 128 characters)"
                ));
            }
        }
        if self.vapi_assistant_id.is_some() && self.vapi_assistant.is_some() {
            return Err("give `vapi_assistant_id` or `vapi_assistant`, not both".into());
        }
        for (i, line) in self.line_ids.iter().enumerate() {
            if line.trim().is_empty() || line.len() > 256 {
                return Err(format!(
                    "`line_ids[{i}]` must be a phone-number id or a SIP URI (1 to 256 characters)"
                ));
            }
        }
        for s in &self.services {
            match (&self.calendar, &s.calendar_id, s.event_type_id) {
                (Some(CalendarConfig::Gohighlevel { .. }), None, _) => {
                    return Err(format!(
                        "service `{}`: a GoHighLevel calendar needs `calendar_id`",
                        s.id
                    ));
                }
                (Some(CalendarConfig::Calcom { .. }), _, None) => {
                    return Err(format!(
                        "service `{}`: a Cal.com calendar needs `event_type_id`",
                        s.id
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Every credential, with where it sits (`crm`, `webhook_secrets.vapi`).
    pub fn credentials(&self) -> Vec<(&'static str, &Credential)> {
        let mut out = Vec::new();
        if let Some(w) = &self.webhook_secrets {
            out.extend(
                [
                    ("webhook_secrets.retell", &w.retell),
                    ("webhook_secrets.vapi", &w.vapi),
                    ("webhook_secrets.elevenlabs", &w.elevenlabs),
                ]
                .into_iter()
                .filter_map(|(at, c)| Some((at, c.as_ref()?))),
            );
        }
        match &self.crm {
            Some(CrmConfig::Gohighlevel { credential, .. }) => out.push(("crm", credential)),
            None => {}
        }
        match &self.memory {
            Some(MemoryConfig::Zep { credential, .. })
            | Some(MemoryConfig::Mem0 { credential, .. }) => out.push(("memory", credential)),
            None => {}
        }
        match &self.calendar {
            Some(CalendarConfig::Gohighlevel { credential, .. })
            | Some(CalendarConfig::Calcom { credential, .. }) => out.push(("calendar", credential)),
            None => {}
        }
        out
    }

    /// The same config with every inline secret replaced by `***`, for
    /// listings and pages.
    pub fn redacted(&self) -> TenantConfig {
        fn hide(c: &Credential) -> Credential {
            Credential {
                token: c.token.as_ref().map(|_| InlineSecret::new("***")),
                token_env: c.token_env.clone(),
            }
        }
        let mut out = self.clone();
        if let Some(w) = &mut out.webhook_secrets {
            for c in [&mut w.retell, &mut w.vapi, &mut w.elevenlabs]
                .into_iter()
                .flatten()
            {
                *c = hide(c);
            }
        }
        match &mut out.crm {
            Some(CrmConfig::Gohighlevel { credential, .. }) => *credential = hide(credential),
            None => {}
        }
        match &mut out.memory {
            Some(MemoryConfig::Zep { credential, .. })
            | Some(MemoryConfig::Mem0 { credential, .. }) => *credential = hide(credential),
            None => {}
        }
        match &mut out.calendar {
            Some(CalendarConfig::Gohighlevel { credential, .. })
            | Some(CalendarConfig::Calcom { credential, .. }) => *credential = hide(credential),
            None => {}
        }
        out
    }
}

/// Whether `name` reads as an environment variable's name (capitals,
/// digits and `_`, not starting with a digit) rather than a secret pasted
/// in its place: API keys and tokens carry lower-case letters or `-`.
pub fn is_variable_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_parses_from_toml_and_redacts_inline_tokens() {
        let cfg: TenantConfig = toml::from_str(
            r#"
            crm = { kind = "gohighlevel", location_id = "loc_1", token = "pit-secret" }
            memory = { kind = "zep", token_env = "ZEP_API_KEY" }
            webhook_secrets = { retell = { token = "key_tenant_secret" } }
            calendar = { kind = "gohighlevel", location_id = "loc_1", token = "pit-secret" }
            [[services]]
            id = "cleaning"
            name = "Cleaning"
            calendar_id = "cal_1"
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.services[0].calendar_ref(), "cal_1");
        assert_eq!(cfg.services[0].duration_minutes, 30);
        assert!(
            !format!("{cfg:?}").contains("pit-secret"),
            "Debug hides inline tokens"
        );
        let shown = serde_json::to_string(&cfg.redacted()).unwrap();
        assert!(!shown.contains("pit-secret"), "{shown}");
        assert!(shown.contains("ZEP_API_KEY"), "{shown}");
    }

    #[test]
    fn unknown_kinds_fields_and_missing_calendar_refs_are_rejected() {
        assert!(
            toml::from_str::<TenantConfig>(r#"crm = { kind = "salesforce", token = "x" }"#)
                .is_err()
        );
        assert!(
            toml::from_str::<TenantConfig>(r#"memory = { kind = "zep", tokn = "x" }"#).is_err()
        );
        let cfg: TenantConfig = toml::from_str(
            r#"
            calendar = { kind = "calcom", token = "cal_x" }
            [[services]]
            id = "s"
            name = "S"
            "#,
        )
        .unwrap();
        assert!(cfg.validate().unwrap_err().contains("event_type_id"));
    }

    #[test]
    fn a_credential_prefers_its_environment_variable_and_says_which_is_missing() {
        let c = Credential {
            token: None,
            token_env: Some("WARMLINE_TEST_SURELY_UNSET_VAR".into()),
        };
        assert!(
            c.resolve("zep")
                .unwrap_err()
                .contains("WARMLINE_TEST_SURELY_UNSET_VAR")
        );
        assert!(Credential::default().resolve("zep").is_err());
    }

    #[test]
    fn a_token_env_that_looks_like_the_secret_itself_is_refused_without_echoing_it() {
        for bad in ["pit-3f9a2c", "sk_live_abc", "", "1ABC", "ZEP KEY"] {
            let cfg = TenantConfig {
                memory: Some(MemoryConfig::Zep {
                    base_url: None,
                    credential: Credential {
                        token: None,
                        token_env: Some(bad.into()),
                    },
                }),
                ..TenantConfig::default()
            };
            let e = cfg.validate().unwrap_err();
            assert!(e.contains("`memory.token_env`"), "{e}");
            assert!(bad.is_empty() || !e.contains(bad), "{e}");
        }
        assert!(is_variable_name("ZEP_API_KEY") && is_variable_name("_X1"));
    }

    #[test]
    fn warmlines_own_settings_are_refused_as_a_tenant_credential_and_never_resolved() {
        for var in [
            "DATABASE_URL",
            "REDIS_URL",
            "VAPI_SECRET",
            "WARMLINE_ADMIN_TOKEN",
            "PATH",
        ] {
            let credential = Credential {
                token: None,
                token_env: Some(var.into()),
            };
            let cfg = TenantConfig {
                webhook_secrets: Some(WebhookSecrets {
                    vapi: Some(credential.clone()),
                    ..WebhookSecrets::default()
                }),
                ..TenantConfig::default()
            };
            let e = cfg.validate().unwrap_err();
            assert!(e.contains("`webhook_secrets.vapi.token_env`"), "{e}");
            assert!(e.contains("warmline's own settings"), "{e}");
            // Stored before the rule existed, it still resolves to nothing.
            let e = credential.resolve("memory").unwrap_err();
            assert!(e.contains("warmline's own settings"), "{e}");
        }
    }
}
