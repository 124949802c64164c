//! A tenant as an operator edits it in the admin: the plain fields (id,
//! name, called number, time zone) and everything else as the document a
//! tenant file holds for it — TOML, or JSON when it starts with `{` —
//! checked by the same [`check`] as `warmline tenants import`.
//!
//! Secrets stay out of the browser. The document is shown with every secret
//! as `***`, and `***` sent back stands for the secret stored there — as
//! long as it would go where it went before. A new secret typed in is
//! refused: credentials are given as the name of an environment variable
//! (`token_env`), and a tenant file imported on the server is the way to
//! store anything else secret. When the operator's text is shown back (to
//! correct a mistake), secret values in it are hidden too. Which values
//! are secret is `hidden`'s business.
//!
//! A browser session is trusted less than the operator's shell: an
//! adapter's `base_url` set here must pass `guard`'s host rule, which
//! `warmline tenants import` does not apply.
//!
//! This file decides nothing about what a valid tenant is; that is
//! [`check`]'s and [`TenantConfig`]'s business.

use serde_json::Value;

use super::file::{Problem, check};
use super::guard::{UpstreamHosts, check_base_urls};
use super::hidden::{
    hide_in_text, hide_values, is_secret_key, refuse_new_secrets, restore_secrets,
};
use super::{Tenant, TenantConfig};
use crate::domain::TenantId;
use crate::store::NewTenant;

/// The document a new tenant's form starts with.
const EXAMPLE: &str = r#"# Everything but the fields above, as a `warmline tenants import` file
# holds it for one tenant (TOML; or JSON starting with `{`). Credentials
# are given by the NAME of the environment variable holding them.
#
# line_ids = ["vapi-phone-number-id"]
# whatsapp_instances = ["acme-main"]
# api_keys_env = ["ACME_API_KEY"]
# vapi_assistant_id = "asst_..."
# crm = { kind = "gohighlevel", location_id = "loc_...", token_env = "ACME_GHL_TOKEN" }
# memory = { kind = "zep", token_env = "ZEP_API_KEY" }
# calendar = { kind = "calcom", token_env = "ACME_CALCOM_KEY" }
# webhook_secrets = { vapi = { token_env = "ACME_VAPI_SECRET" } }
#
# [[services]]
# id = "cleaning"
# name = "Teeth cleaning"
# duration_minutes = 30
# event_type_id = 42
"#;

/// The form's fields as typed. Not `Debug`: the document may hold a
/// secret someone pasted by mistake.
#[derive(Clone, Default)]
pub struct Draft {
    pub id: String,
    pub name: String,
    pub phone_number: String,
    pub time_zone: String,
    pub document: String,
}

impl Draft {
    /// The form for a new tenant.
    pub fn blank() -> Draft {
        Draft {
            document: EXAMPLE.into(),
            ..Draft::default()
        }
    }

    /// The form as it shows a stored tenant, every secret as `***`.
    pub fn of(tenant: &Tenant) -> Draft {
        Draft {
            id: tenant.id.to_string(),
            name: tenant.name.clone(),
            phone_number: tenant.phone_number.as_str().to_owned(),
            time_zone: tenant.time_zone.name().to_owned(),
            document: document_of(&tenant.config),
        }
    }

    /// The operator's input as it may be shown back: secret-named values
    /// in the document hidden.
    pub fn shown(&self) -> Draft {
        Draft {
            document: hide_in_text(&self.document),
            ..self.clone()
        }
    }

    /// Checks the draft and makes the row to store. `stored` is the tenant
    /// being edited: its id is kept, its secrets are what `***` stands for
    /// (where they would go as before), and its adapters' URLs stay
    /// allowed. `None` creates a tenant with the draft's id. An adapter's
    /// new `base_url` must be its official API's or on one of
    /// `upstream_hosts` (`WARMLINE_ADMIN_UPSTREAM_HOSTS`).
    pub fn check(
        &self,
        stored: Option<&Tenant>,
        upstream_hosts: &UpstreamHosts,
    ) -> Result<NewTenant, Problem> {
        let problem = |field, message: String| Problem { field, message };
        let id = match stored {
            Some(t) => t.id.clone(),
            None => {
                let id =
                    TenantId::parse(self.id.trim()).map_err(|e| problem("id", e.to_string()))?;
                if id.as_str() == "new" {
                    return Err(problem("id", "`new` is reserved; choose another id".into()));
                }
                id
            }
        };
        let mut doc = parse_document(&self.document)?;
        refuse_new_secrets(&doc, "", false).map_err(|m| problem("config", m))?;
        let kept = match stored {
            Some(t) => serde_json::to_value(&t.config).unwrap_or(Value::Null),
            None => Value::Null,
        };
        restore_secrets(&mut doc, &kept, "", false, None).map_err(|m| problem("config", m))?;
        let config: TenantConfig = crate::support::json::from_value(doc, "tenant configuration")
            .map_err(|e| problem("config", e.to_string()))?;
        let row = check(
            id,
            &self.phone_number,
            &self.name,
            &self.time_zone,
            &config,
            stored.is_some_and(|t| t.is_demo),
        )?;
        check_base_urls(&config, stored.map(|t| &t.config), upstream_hosts)
            .map_err(|m| problem("config", m))?;
        Ok(row)
    }
}

/// What an edit changes, by field name — never by value, which may be a
/// secret: `name`, `phone_number`, `time_zone` and the document's
/// top-level keys (`crm`, `services`, …).
pub fn changed_fields(before: &Tenant, after: &NewTenant) -> Vec<String> {
    let mut out = Vec::new();
    if before.name != after.name {
        out.push("name".to_owned());
    }
    if before.phone_number != after.phone_number {
        out.push("phone_number".to_owned());
    }
    if before.time_zone.name() != after.time_zone {
        out.push("time_zone".to_owned());
    }
    let old = serde_json::to_value(&before.config).unwrap_or(Value::Null);
    let new: Value = serde_json::from_str(&after.config).unwrap_or(Value::Null);
    let (empty_old, empty_new) = (serde_json::Map::new(), serde_json::Map::new());
    let old = old.as_object().unwrap_or(&empty_old);
    let new = new.as_object().unwrap_or(&empty_new);
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    out.extend(
        keys.into_iter()
            .filter(|k| old.get(*k) != new.get(*k))
            .cloned(),
    );
    out
}

/// The stored configuration as the form shows it: TOML (JSON when TOML
/// cannot hold it, e.g. a `null` in an inline assistant), every secret as
/// `***`.
fn document_of(config: &TenantConfig) -> String {
    let mut shown = config.redacted();
    if let Some(assistant) = &mut shown.vapi_assistant {
        for (key, value) in assistant.iter_mut() {
            hide_values(value, is_secret_key(key));
        }
    }
    if *config == TenantConfig::default() {
        return EXAMPLE.into();
    }
    toml::to_string_pretty(&shown)
        .or_else(|_| serde_json::to_string_pretty(&shown).map_err(|_| ()))
        .unwrap_or_default()
}

/// The document's text as a JSON object: TOML, or JSON when it starts
/// with `{`. Syntax errors say where, without quoting the text (the
/// line might hold a secret).
fn parse_document(text: &str) -> Result<Value, Problem> {
    let bad = |message| Problem {
        field: "config",
        message,
    };
    let value = if text.trim_start().starts_with('{') {
        serde_json::from_str::<Value>(text).map_err(|e| {
            bad(format!(
                "invalid JSON document: {}",
                crate::support::json::describe(&e)
            ))
        })?
    } else {
        let table = toml::from_str::<toml::Table>(text).map_err(|e| {
            let at = e
                .span()
                .and_then(|s| text.get(..s.start))
                .map(|before| {
                    let line = before.matches('\n').count() + 1;
                    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    format!(" (line {line}, column {column})")
                })
                .unwrap_or_default();
            bad(format!("invalid TOML document{at}: {}", e.message().trim()))
        })?;
        serde_json::to_value(table)
            .map_err(|_| bad("the TOML document holds values JSON cannot".into()))?
    };
    if value.is_object() {
        Ok(value)
    } else {
        Err(bad("the document must be a table of settings".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up official host for Zep: tests here know no SaaS.
    fn test_hosts(allowed: &[&str]) -> UpstreamHosts {
        UpstreamHosts {
            official: vec![("zep", "zep.official.test".into())],
            allowed: allowed.iter().map(|h| (*h).to_owned()).collect(),
        }
    }

    fn draft(document: &str) -> Draft {
        Draft {
            id: "acme".into(),
            name: "Acme Dental".into(),
            phone_number: "+15550100042".into(),
            time_zone: "America/New_York".into(),
            document: document.into(),
        }
    }

    fn stored(config: serde_json::Value) -> Tenant {
        let row = draft("").check(None, &UpstreamHosts::default()).unwrap();
        Tenant::from_row(crate::store::TenantRow {
            id: row.id,
            phone_number: row.phone_number,
            name: row.name,
            time_zone: row.time_zone,
            config: config.to_string(),
            is_demo: false,
            created_at_ms: 1,
            updated_at_ms: 1,
        })
        .unwrap()
    }

    #[test]
    fn a_shown_document_hides_every_secret_and_sending_it_back_keeps_them() {
        let t = stored(serde_json::json!({
            "crm": { "kind": "gohighlevel", "location_id": "loc_1", "token": "pit-secret" },
            "memory": { "kind": "zep", "token_env": "ZEP_API_KEY" },
            "vapi_assistant": { "name": "R", "server": { "url": "https://x", "secret": "srv-secret" } },
        }));
        let shown = Draft::of(&t);
        assert!(!shown.document.contains("pit-secret"), "{}", shown.document);
        assert!(!shown.document.contains("srv-secret"), "{}", shown.document);
        assert!(shown.document.contains("ZEP_API_KEY"), "{}", shown.document);
        let back = shown.check(Some(&t), &test_hosts(&[])).unwrap();
        let config: TenantConfig = serde_json::from_str(&back.config).unwrap();
        assert_eq!(config, t.config, "the secrets behind *** are kept");
    }

    #[test]
    fn an_inline_assistants_headers_and_credential_keys_are_hidden_and_kept() {
        let t = stored(serde_json::json!({
            "vapi_assistant": {
                "name": "R",
                "server": { "url": "https://x", "headers": { "X-Api": "hdr-secret" } },
                "credentials": [{ "provider": "p", "privateKey": "pk-secret" }],
                "model": { "Authorization": "auth-secret", "cookie": "ck-secret",
                           "secretAccessKey": "sak-secret", "bearer": "br-secret" },
            },
        }));
        let shown = Draft::of(&t);
        for secret in ["hdr-", "pk-", "auth-", "ck-", "sak-", "br-"] {
            assert!(!shown.document.contains(secret), "{}", shown.document);
        }
        let back = shown.check(Some(&t), &test_hosts(&[])).unwrap();
        let config: TenantConfig = serde_json::from_str(&back.config).unwrap();
        assert_eq!(config, t.config, "the secrets behind *** are kept");
    }

    #[test]
    fn a_secret_typed_in_is_refused_by_path_and_hidden_when_shown_back() {
        let typed = r#"crm = { kind = "gohighlevel", location_id = "loc_1", token = "pit-typed" }"#;
        let e = draft(typed)
            .check(None, &UpstreamHosts::default())
            .unwrap_err();
        assert_eq!(e.field, "config");
        assert!(e.message.contains("`crm.token`"), "{e}");
        assert!(!e.message.contains("pit-typed"), "{e}");
        assert!(!draft(typed).shown().document.contains("pit-typed"));

        let placeholder = r#"memory = { kind = "zep", token = "***" }"#;
        let e = draft(placeholder)
            .check(None, &UpstreamHosts::default())
            .unwrap_err();
        assert!(e.message.contains("`memory.token`"), "{e}");
    }

    #[test]
    fn mistakes_name_their_field_or_path() {
        let e = draft("memory = { kind = \"zep\", token_env = \"ZEP\" }\nbogus = 1")
            .check(None, &UpstreamHosts::default())
            .unwrap_err();
        assert!(e.message.contains("unknown field `bogus`"), "{e}");
        let e = draft("crm = {")
            .check(None, &UpstreamHosts::default())
            .unwrap_err();
        assert!(e.message.contains("line 1"), "{e}");
        let e = draft(r#"{"services": [{"id": "s"}]}"#)
            .check(None, &UpstreamHosts::default())
            .unwrap_err();
        assert!(
            e.message.contains("services[0]") || e.message.contains("`name`"),
            "{e}"
        );
        let mut d = draft("");
        d.time_zone = "Mars/Olympus".into();
        assert_eq!(
            d.check(None, &UpstreamHosts::default()).unwrap_err().field,
            "time_zone"
        );
        d = draft("");
        d.id = "new".into();
        assert_eq!(
            d.check(None, &UpstreamHosts::default()).unwrap_err().field,
            "id"
        );
    }

    #[test]
    fn an_edit_cannot_send_a_credential_to_a_host_of_its_choosing() {
        let t = stored(serde_json::json!({
            "memory": { "kind": "zep", "base_url": "http://sim.internal:4010", "token": "zep-secret" },
        }));
        let with = |memory: &str| {
            let mut d = Draft::of(&t);
            d.document = format!("memory = {memory}");
            d
        };
        // The attack of the review: warmline's own secret to the attacker.
        let e = with(r#"{ kind = "zep", base_url = "https://attacker.example", token_env = "DATABASE_URL" }"#)
            .check(Some(&t), &test_hosts(&[]))
            .unwrap_err();
        assert!(e.message.contains("`memory.token_env`"), "{e}");
        let e = with(
            r#"{ kind = "zep", base_url = "https://attacker.example", token_env = "ACME_ZEP" }"#,
        )
        .check(Some(&t), &test_hosts(&[]))
        .unwrap_err();
        assert!(e.message.contains("`memory.base_url`"), "{e}");
        assert!(!e.message.contains("attacker"), "{e}");
        // The stored secret follows only the stored URL.
        let e = with(r#"{ kind = "zep", base_url = "https://zep.official.test", token = "***" }"#)
            .check(Some(&t), &test_hosts(&[]))
            .unwrap_err();
        assert!(e.message.contains("give the credential again"), "{e}");
        let kept =
            with(r#"{ kind = "zep", base_url = "http://sim.internal:4010", token = "***" }"#);
        assert!(kept.check(Some(&t), &test_hosts(&[])).is_ok());
        let official = with(
            r#"{ kind = "zep", base_url = "https://zep.official.test", token_env = "ACME_ZEP" }"#,
        );
        assert!(official.check(Some(&t), &test_hosts(&[])).is_ok());
        let listed =
            with(r#"{ kind = "zep", base_url = "http://127.0.0.1:9", token_env = "ACME_ZEP" }"#);
        assert!(listed.check(Some(&t), &test_hosts(&[])).is_err());
        assert!(listed.check(Some(&t), &test_hosts(&["127.0.0.1"])).is_ok());
    }

    #[test]
    fn changes_are_named_by_field() {
        let t = stored(serde_json::json!({ "memory": { "kind": "zep", "token": "a" } }));
        let mut d = Draft::of(&t);
        d.name = "Acme Smiles".into();
        d.document = "memory = { kind = \"zep\", token_env = \"ZEP_API_KEY\" }".into();
        let after = d.check(Some(&t), &test_hosts(&[])).unwrap();
        assert_eq!(changed_fields(&t, &after), ["name", "memory"]);
    }
}
