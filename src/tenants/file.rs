//! Tenant files: the operator's way to manage tenants without SQL.
//!
//! `warmline tenants import FILE` reads TOML or YAML (by extension), checks
//! every tenant — number, time zone, adapters, services — and upserts them
//! all, or none when any is wrong. `warmline tenants list` prints them with
//! secrets redacted.
//!
//! ```toml
//! [[tenants]]
//! id = "acme-dental"
//! phone_number = "+15550100000"
//! name = "Acme Dental"
//! time_zone = "America/New_York"
//! crm = { kind = "gohighlevel", location_id = "loc_1", token_env = "ACME_GHL_TOKEN" }
//! memory = { kind = "zep", token_env = "ZEP_API_KEY" }
//! calendar = { kind = "gohighlevel", location_id = "loc_1", token_env = "ACME_GHL_TOKEN" }
//! [[tenants.services]]
//! id = "cleaning"
//! name = "Teeth cleaning"
//! duration_minutes = 30
//! calendar_id = "cal_1"
//! ```

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::{
    CalendarConfig, CrmConfig, MemoryConfig, Tenant, TenantConfig, new_row, parse_time_zone,
};
use crate::domain::{PhoneNumber, TenantId};
use crate::store::{NewTenant, Store, StoreError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantFile {
    tenants: Vec<TenantEntry>,
}

/// Unknown keys are refused by the flattened [`TenantConfig`], which sees
/// every key not claimed here.
#[derive(Debug, Deserialize)]
struct TenantEntry {
    id: TenantId,
    phone_number: String,
    name: String,
    time_zone: String,
    #[serde(flatten)]
    config: TenantConfig,
}

/// What is wrong with a tenant as written, and in which field: `id`,
/// `name`, `phone_number`, `time_zone`, or `config` (the rest, whose
/// message names its own path). Values are not quoted back unless they
/// are harmless (a time zone): a mistyped field may hold a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: &'static str,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.field {
            "config" => f.write_str(&self.message),
            field => write!(f, "{field}: {}", self.message),
        }
    }
}

impl std::error::Error for Problem {}

/// Checks one tenant as written — in a tenant file or in the admin's form —
/// and makes the row to store: the one place that decides what a valid
/// tenant is.
pub fn check(
    id: TenantId,
    phone_number: &str,
    name: &str,
    time_zone: &str,
    config: &TenantConfig,
    is_demo: bool,
) -> Result<NewTenant, Problem> {
    let problem = |field, message: String| Problem { field, message };
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 120 || name.chars().any(char::is_control) {
        return Err(problem(
            "name",
            "give the business name callers hear (1 to 120 characters, one line)".into(),
        ));
    }
    let phone =
        PhoneNumber::parse(phone_number).map_err(|e| problem("phone_number", e.to_string()))?;
    let time_zone = parse_time_zone(time_zone.trim()).map_err(|e| problem("time_zone", e))?;
    config.validate().map_err(|e| problem("config", e))?;
    Ok(new_row(
        id,
        phone,
        name.to_owned(),
        time_zone,
        config,
        is_demo,
    ))
}

/// The other tenant that already answers `tenant`'s number, if any:
/// numbers stay unique across the database, not only within one file.
pub async fn number_owner(
    store: &Store,
    tenant: &NewTenant,
) -> Result<Option<TenantId>, StoreError> {
    Ok(store
        .tenant_by_number(&tenant.phone_number)
        .await?
        .map(|other| other.id)
        .filter(|other| *other != tenant.id))
}

/// A line id as tenants are told apart by it: trimmed, lower case (as
/// [`TenantDirectory::resolve_line`](super::TenantDirectory::resolve_line)
/// compares them).
fn line_of(line: &str) -> String {
    line.trim().to_lowercase()
}

/// Every line a configuration claims, as compared: its line ids, and its
/// WhatsApp instances as `whatsapp:<name>` (an instance, like a number,
/// writes for one tenant only).
fn claimed(config: &TenantConfig) -> Vec<String> {
    config
        .line_ids
        .iter()
        .map(|l| line_of(l))
        .chain(
            config
                .whatsapp_instances
                .iter()
                .map(|i| format!("whatsapp:{}", line_of(i))),
        )
        .collect()
}

/// The lines of a row about to be stored, as compared.
fn lines_of(tenant: &NewTenant) -> Vec<String> {
    serde_json::from_str::<TenantConfig>(&tenant.config)
        .map(|c| claimed(&c))
        .unwrap_or_default()
}

/// The first of `tenant`'s lines another of `others` already serves, with
/// that tenant: a line, like a number, answers one tenant only.
fn taken_line<'a>(
    tenant: &NewTenant,
    others: impl IntoIterator<Item = &'a Tenant>,
) -> Option<(String, TenantId)> {
    let lines = lines_of(tenant);
    others
        .into_iter()
        .filter(|other| other.id != tenant.id)
        .find_map(|other| {
            let line = claimed(&other.config)
                .into_iter()
                .find(|l| lines.contains(l))?;
            Some((line, other.id.clone()))
        })
}

/// The first of `tenant`'s `line_ids` another stored tenant already serves
/// (compared trimmed and without regard to case), with that tenant.
pub async fn line_owner(
    store: &Store,
    tenant: &NewTenant,
) -> Result<Option<(String, TenantId)>, StoreError> {
    Ok(taken_line(tenant, &readable(store).await?))
}

/// Every stored tenant that can be typed (an unreadable one is logged
/// where it is served).
async fn readable(store: &Store) -> Result<Vec<Tenant>, StoreError> {
    Ok(store
        .list_tenants()
        .await?
        .into_iter()
        .filter_map(|row| Tenant::from_row(row).ok())
        .collect())
}

/// Parses and checks a tenant file's text; `format` is `toml` or `yaml`.
pub fn parse(text: &str, format: &str) -> anyhow::Result<Vec<NewTenant>> {
    let file: TenantFile = match format {
        "toml" => toml::from_str(text).context("invalid TOML tenant file")?,
        "yaml" | "yml" => serde_yaml_ng::from_str(text).context("invalid YAML tenant file")?,
        other => bail!("unsupported tenant file type `{other}`; use .toml, .yaml or .yml"),
    };
    if file.tenants.is_empty() {
        bail!("the file lists no tenants");
    }
    let mut seen_ids = std::collections::HashSet::new();
    let mut seen_numbers = std::collections::HashSet::new();
    let mut seen_lines = std::collections::HashMap::new();
    let mut out = Vec::new();
    for t in file.tenants {
        let at = format!("tenant `{}`", t.id);
        let row = check(
            t.id,
            &t.phone_number,
            &t.name,
            &t.time_zone,
            &t.config,
            false,
        )
        .map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        if !seen_ids.insert(row.id.clone()) {
            bail!("{at} is listed twice");
        }
        if !seen_numbers.insert(row.phone_number.clone()) {
            bail!(
                "{at}: phone number {} is used by another tenant in the file",
                row.phone_number.as_str()
            );
        }
        for line in lines_of(&row) {
            match seen_lines.insert(line.clone(), row.id.clone()) {
                Some(other) if other != row.id => {
                    bail!("{at}: line `{line}` is also a line of tenant `{other}` in the file")
                }
                _ => {}
            }
        }
        out.push(row);
    }
    Ok(out)
}

/// Imports every tenant of the file at `path`; returns how many.
pub async fn import(store: &Store, path: &Path) -> anyhow::Result<usize> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let format = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let tenants = parse(&text, format).with_context(|| path.display().to_string())?;
    // Tenants of the file give up their stored lines: checked among
    // themselves by `parse`.
    let others: Vec<Tenant> = readable(store)
        .await?
        .into_iter()
        .filter(|stored| tenants.iter().all(|t| t.id != stored.id))
        .collect();
    for t in &tenants {
        if let Some(other) = number_owner(store, t).await? {
            bail!(
                "tenant `{}`: phone number {} already belongs to tenant `{}`",
                t.id,
                t.phone_number.as_str(),
                other
            );
        }
        if let Some((line, other)) = taken_line(t, &others) {
            bail!(
                "tenant `{}`: line `{line}` already belongs to tenant `{other}`",
                t.id
            );
        }
    }
    for t in &tenants {
        store.upsert_tenant(t).await?;
    }
    Ok(tenants.len())
}

/// One line per tenant, secrets never shown.
pub fn render_list(tenants: &[Tenant]) -> String {
    let mut out = format!(
        "{:<20} {:<16} {:<24} {:<20} {:<12} {:<8} {:<12} {}\n",
        "ID", "NUMBER", "NAME", "TIME ZONE", "CRM", "MEMORY", "CALENDAR", "SERVICES"
    );
    for t in tenants {
        let cfg = &t.config;
        let kind = |k: Option<&'static str>| k.unwrap_or("-");
        let name = if t.is_demo {
            format!("{} (demo)", t.name)
        } else {
            t.name.clone()
        };
        out.push_str(&format!(
            "{:<20} {:<16} {:<24} {:<20} {:<12} {:<8} {:<12} {}\n",
            t.id.as_str(),
            t.phone_number.as_str(),
            name,
            t.time_zone.name(),
            kind(cfg.crm.as_ref().map(CrmConfig::kind)),
            kind(cfg.memory.as_ref().map(MemoryConfig::kind)),
            kind(cfg.calendar.as_ref().map(CalendarConfig::kind)),
            cfg.services.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
        [[tenants]]
        id = "acme-dental"
        phone_number = "+1 (555) 010-0000"
        name = "Acme Dental"
        time_zone = "America/New_York"
        crm = { kind = "gohighlevel", location_id = "loc_1", token_env = "ACME_GHL_TOKEN" }
        memory = { kind = "mem0", token = "m0-secret" }
        calendar = { kind = "calcom", token = "cal_secret" }
        [[tenants.services]]
        id = "cleaning"
        name = "Teeth cleaning"
        event_type_id = 42
    "#;

    #[test]
    fn a_toml_file_parses_into_tenants_with_normalised_numbers() {
        let tenants = parse(TOML, "toml").unwrap();
        assert_eq!(tenants.len(), 1);
        assert_eq!(tenants[0].phone_number.as_str(), "+15550100000");
        let config: serde_json::Value = serde_json::from_str(&tenants[0].config).unwrap();
        assert_eq!(config["calendar"]["kind"], "calcom");
        assert_eq!(config["services"][0]["event_type_id"], 42);
    }

    #[test]
    fn the_same_tenant_parses_from_yaml() {
        let yaml = r#"
tenants:
  - id: zen-spa
    phone_number: "+15550100009"
    name: Zen Spa
    time_zone: Europe/London
    memory: { kind: zep, token_env: ZEP_API_KEY }
"#;
        let tenants = parse(yaml, "yaml").unwrap();
        assert_eq!(tenants[0].id.as_str(), "zen-spa");
        let config: serde_json::Value = serde_json::from_str(&tenants[0].config).unwrap();
        assert_eq!(config["memory"]["kind"], "zep");
    }

    #[test]
    fn a_line_is_one_tenants_in_a_file() {
        let two = format!(
            "{}\n{}",
            TOML.replace(
                "name = \"Acme Dental\"",
                "name = \"Acme Dental\"\nline_ids = [\"pn-1\"]"
            ),
            TOML.replace("acme-dental", "zen-spa")
                .replace("010-0000", "010-0009")
                .replace(
                    "name = \"Acme Dental\"",
                    "name = \"Zen\"\nline_ids = [\" PN-1 \"]"
                ),
        );
        let e = format!("{:#}", parse(&two, "toml").unwrap_err());
        assert!(
            e.contains("line `pn-1`") && e.contains("`acme-dental`"),
            "{e}"
        );
        let acme = parse(&two.replace(" PN-1 ", "pn-2"), "toml").unwrap();
        let stored = Tenant::from_row(crate::store::TenantRow {
            id: TenantId::parse("other").unwrap(),
            phone_number: PhoneNumber::parse("+15550100077").unwrap(),
            name: "Other".into(),
            time_zone: "UTC".into(),
            config: r#"{"line_ids": ["x", "PN-2 "]}"#.into(),
            is_demo: false,
            created_at_ms: 1,
            updated_at_ms: 1,
        })
        .unwrap();
        assert_eq!(taken_line(&acme[0], [&stored]), None);
        assert_eq!(
            taken_line(&acme[1], [&stored]),
            Some(("pn-2".into(), stored.id.clone()))
        );
    }

    #[test]
    fn a_whatsapp_instance_is_one_tenants_like_a_line() {
        let two = format!(
            "{}\n{}",
            TOML.replace(
                "name = \"Acme Dental\"",
                "name = \"Acme Dental\"\nwhatsapp_instances = [\"clinic-main\"]"
            ),
            TOML.replace("acme-dental", "zen-spa")
                .replace("010-0000", "010-0009")
                .replace(
                    "name = \"Acme Dental\"",
                    "name = \"Zen\"\nwhatsapp_instances = [\"Clinic-Main\"]"
                ),
        );
        let e = format!("{:#}", parse(&two, "toml").unwrap_err());
        assert!(
            e.contains("line `whatsapp:clinic-main`") && e.contains("`acme-dental`"),
            "{e}"
        );
        // A line id and an instance of the same name are different lines.
        let apart = two.replace(
            "whatsapp_instances = [\"Clinic-Main\"]",
            "line_ids = [\"clinic-main\"]",
        );
        assert_eq!(parse(&apart, "toml").unwrap().len(), 2);
    }

    #[test]
    fn mistakes_are_named() {
        let bad_tz = TOML.replace("America/New_York", "Mars/Olympus");
        assert!(
            format!("{:#}", parse(&bad_tz, "toml").unwrap_err())
                .contains("unknown time_zone `Mars/Olympus`")
        );
        let bad_phone = TOML.replace("+1 (555) 010-0000", "call me");
        assert!(format!("{:#}", parse(&bad_phone, "toml").unwrap_err()).contains("phone_number"));
        let no_event = TOML.replace("event_type_id = 42", "");
        assert!(format!("{:#}", parse(&no_event, "toml").unwrap_err()).contains("event_type_id"));
        let typo = TOML.replace("time_zone =", "timezone =");
        assert!(parse(&typo, "toml").is_err());
        assert!(
            parse(TOML, "ini")
                .unwrap_err()
                .to_string()
                .contains("unsupported")
        );
    }
}
