//! A tenant as an operator edits it in the admin: the plain fields (id,
//! name, called number, time zone) and everything else as the document a
//! tenant file holds for it — TOML, or JSON when it starts with `{` —
//! checked by the same [`check`] as `warmline tenants import`.
//!
//! Secrets stay out of the browser. The document is shown with every secret
//! as `***`, and `***` sent back stands for the secret stored there. A new
//! secret typed in is refused: credentials are given as the name of an
//! environment variable (`token_env`), and a tenant file imported on the
//! server is the way to store anything else secret. When the operator's
//! text is shown back (to correct a mistake), secret-named values in it
//! are hidden too.
//!
//! This file decides nothing about what a valid tenant is; that is
//! [`check`]'s and [`TenantConfig`]'s business.

use serde_json::Value;

use super::file::{Problem, check};
use super::{Tenant, TenantConfig, is_variable_name};
use crate::domain::TenantId;
use crate::store::NewTenant;

/// What stands for a stored secret, shown and sent back.
pub const HIDDEN: &str = "***";

/// The document a new tenant's form starts with.
const EXAMPLE: &str = r#"# Everything but the fields above, as a `warmline tenants import` file
# holds it for one tenant (TOML; or JSON starting with `{`). Credentials
# are given by the NAME of the environment variable holding them.
#
# line_ids = ["vapi-phone-number-id"]
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
    /// being edited: its id is kept and its secrets are what `***` stands
    /// for. `None` creates a tenant with the draft's id.
    pub fn check(&self, stored: Option<&Tenant>) -> Result<NewTenant, Problem> {
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
        refuse_new_secrets(&doc, "").map_err(|m| problem("config", m))?;
        let kept = match stored {
            Some(t) => serde_json::to_value(&t.config).unwrap_or(Value::Null),
            None => Value::Null,
        };
        restore_secrets(&mut doc, &kept, "").map_err(|m| problem("config", m))?;
        let config: TenantConfig = crate::support::json::from_value(doc, "tenant configuration")
            .map_err(|e| problem("config", e.to_string()))?;
        check(
            id,
            &self.phone_number,
            &self.name,
            &self.time_zone,
            &config,
            stored.is_some_and(|t| t.is_demo),
        )
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
            hide_values(key, value);
        }
    }
    if *config == TenantConfig::default() {
        return EXAMPLE.into();
    }
    toml::to_string_pretty(&shown)
        .or_else(|_| serde_json::to_string_pretty(&shown).map_err(|_| ()))
        .unwrap_or_default()
}

/// Whether a key names a secret (`token`, `secret`, `serverUrlSecret`,
/// `api_key`, `password`…) — but not `token_env`, which names a variable.
fn is_secret_key(key: &str) -> bool {
    let k: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    ["token", "secret", "password", "apikey"]
        .iter()
        .any(|end| k.ends_with(end))
}

/// Replaces every string under a secret-named key, at any depth, by `***`.
fn hide_values(key: &str, value: &mut Value) {
    match value {
        Value::String(s) if is_secret_key(key) && !s.is_empty() => *s = HIDDEN.into(),
        Value::Object(map) => map.iter_mut().for_each(|(k, v)| hide_values(k, v)),
        Value::Array(items) => items.iter_mut().for_each(|v| hide_values(key, v)),
        _ => {}
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A secret typed into the document (anything but `***` under a
/// secret-named key) is refused, named by its path, never quoted.
fn refuse_new_secrets(value: &Value, path: &str) -> Result<(), String> {
    match value {
        Value::Object(map) => map.iter().try_for_each(|(k, v)| match v {
            Value::String(s) if is_secret_key(k) && !s.is_empty() && s != HIDDEN => Err(format!(
                "`{}` holds a secret: secrets are not entered here. Put it in an environment \
                 variable and give the variable's name in `token_env` (or import the tenant \
                 from a file with `warmline tenants import`)",
                child(path, k)
            )),
            _ => refuse_new_secrets(v, &child(path, k)),
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| refuse_new_secrets(v, &format!("{path}[{i}]"))),
        _ => Ok(()),
    }
}

/// Puts the stored secret back wherever `***` stands under a secret-named
/// key; `***` where nothing is stored is a mistake.
fn restore_secrets(value: &mut Value, stored: &Value, path: &str) -> Result<(), String> {
    match value {
        Value::Object(map) => map.iter_mut().try_for_each(|(k, v)| {
            let here = child(path, k);
            let old = stored.get(k.as_str()).unwrap_or(&Value::Null);
            match v {
                Value::String(s) if is_secret_key(k) && s == HIDDEN => match old {
                    Value::String(secret) => {
                        *s = secret.clone();
                        Ok(())
                    }
                    _ => Err(format!(
                        "`{here}`: `{HIDDEN}` stands for the secret stored here, and none is; \
                         name an environment variable in `token_env` instead"
                    )),
                },
                _ => restore_secrets(v, old, &here),
            }
        }),
        Value::Array(items) => items.iter_mut().enumerate().try_for_each(|(i, v)| {
            let old = stored.get(i).unwrap_or(&Value::Null);
            restore_secrets(v, old, &format!("{path}[{i}]"))
        }),
        _ => Ok(()),
    }
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

/// The operator's text with every value of a secret-named key replaced by
/// `***`, keeping everything else as typed — also when the text does not
/// parse. Values are TOML or JSON strings (`"…"`, `'…'`, triple-quoted)
/// or, mistyped, bare words.
fn hide_in_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['=', ':']) {
        let (head, tail) = rest.split_at(at + 1);
        out.push_str(head);
        let key = key_before(&head[..at]);
        // A variable's name is shown, unless it is a secret in its place.
        let hide: fn(&str) -> bool = if is_secret_key(key) {
            |_| true
        } else if key.to_ascii_lowercase().ends_with("token_env") {
            |content| !is_variable_name(content)
        } else {
            rest = tail;
            continue;
        };
        let value = tail.trim_start_matches([' ', '\t']);
        out.push_str(&tail[..tail.len() - value.len()]);
        let (shown, after) = hide_value(value, hide);
        out.push_str(&shown);
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The key just before a `=` or `:`: a bare word or a quoted name.
fn key_before(head: &str) -> &str {
    let h = head.trim_end_matches([' ', '\t']);
    let h = h
        .strip_suffix('"')
        .or_else(|| h.strip_suffix('\''))
        .unwrap_or(h);
    let start = h
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    &h[start..]
}

/// The value at the start of `value` as it may be shown — `***` when
/// `hide` says so of its content — and the text after it.
fn hide_value(value: &str, hide: fn(&str) -> bool) -> (String, &str) {
    for quote in ["\"\"\"", "'''", "\"", "'"] {
        let Some(inner) = value.strip_prefix(quote) else {
            continue;
        };
        let end = if quote == "\"" {
            closing_double_quote(inner)
        } else {
            inner.find(quote)
        };
        return match end {
            Some(end) if end == 0 || !hide(&inner[..end]) => (
                format!("{quote}{}{quote}", &inner[..end]),
                &inner[end + quote.len()..],
            ),
            Some(end) => (
                format!("{quote}{HIDDEN}{quote}"),
                &inner[end + quote.len()..],
            ),
            // Unterminated: hide the rest of the line.
            None => (
                format!("{quote}{HIDDEN}"),
                inner.find('\n').map_or("", |n| &inner[n..]),
            ),
        };
    }
    let end = value
        .find([',', '}', ']', '\n', ' ', '\t', '#'])
        .unwrap_or(value.len());
    if end == 0 || !hide(&value[..end]) {
        (value[..end].to_owned(), &value[end..])
    } else {
        (HIDDEN.to_owned(), &value[end..])
    }
}

/// Where a `"`-string's closing quote is, backslash escapes skipped.
fn closing_double_quote(inner: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            '\n' => return None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let row = draft("").check(None).unwrap();
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
        let back = shown.check(Some(&t)).unwrap();
        let config: TenantConfig = serde_json::from_str(&back.config).unwrap();
        assert_eq!(config, t.config, "the secrets behind *** are kept");
    }

    #[test]
    fn a_secret_typed_in_is_refused_by_path_and_hidden_when_shown_back() {
        let typed = r#"crm = { kind = "gohighlevel", location_id = "loc_1", token = "pit-typed" }"#;
        let e = draft(typed).check(None).unwrap_err();
        assert_eq!(e.field, "config");
        assert!(e.message.contains("`crm.token`"), "{e}");
        assert!(!e.message.contains("pit-typed"), "{e}");
        assert!(!draft(typed).shown().document.contains("pit-typed"));

        let placeholder = r#"memory = { kind = "zep", token = "***" }"#;
        let e = draft(placeholder).check(None).unwrap_err();
        assert!(e.message.contains("`memory.token`"), "{e}");
    }

    #[test]
    fn mistakes_name_their_field_or_path() {
        let e = draft("memory = { kind = \"zep\", token_env = \"ZEP\" }\nbogus = 1")
            .check(None)
            .unwrap_err();
        assert!(e.message.contains("unknown field `bogus`"), "{e}");
        let e = draft("crm = {").check(None).unwrap_err();
        assert!(e.message.contains("line 1"), "{e}");
        let e = draft(r#"{"services": [{"id": "s"}]}"#)
            .check(None)
            .unwrap_err();
        assert!(
            e.message.contains("services[0]") || e.message.contains("`name`"),
            "{e}"
        );
        let mut d = draft("");
        d.time_zone = "Mars/Olympus".into();
        assert_eq!(d.check(None).unwrap_err().field, "time_zone");
        d = draft("");
        d.id = "new".into();
        assert_eq!(d.check(None).unwrap_err().field, "id");
    }

    #[test]
    fn secrets_are_hidden_in_text_that_does_not_parse() {
        for (typed, secret) in [
            (r#"token = "abc-1" x"#, "abc-1"),
            (r#"{"apiKey": "k\"ey-2", "b": 1"#, "ey-2"),
            ("token = bare-3\nname = 'x'", "bare-3"),
            ("secret = '''multi-4'''", "multi-4"),
            ("token = \"unterminated-5\nrest", "unterminated-5"),
            (r#"memory = { kind = "zep", token_env = "pit-6" }"#, "pit-6"),
        ] {
            let shown = hide_in_text(typed);
            assert!(!shown.contains(secret), "{typed} → {shown}");
        }
        let kept = "base_url = \"http://sim:1\"\ntoken_env = \"ZEP_API_KEY\"";
        assert_eq!(hide_in_text(kept), kept);
    }

    #[test]
    fn changes_are_named_by_field() {
        let t = stored(serde_json::json!({ "memory": { "kind": "zep", "token": "a" } }));
        let mut d = Draft::of(&t);
        d.name = "Acme Smiles".into();
        d.document = "memory = { kind = \"zep\", token_env = \"ZEP_API_KEY\" }".into();
        let after = d.check(Some(&t)).unwrap();
        assert_eq!(changed_fields(&t, &after), ["name", "memory"]);
    }
}
