//! Tenants: one business per called number, and the one home of everything
//! about them — the typed [`Tenant`] (time zone parsed, configuration typed,
//! credentials wrapped), the in-memory [`TenantDirectory`] that answers
//! "which tenant has this number" without a database query, and tenant
//! files (`warmline tenants import` / `list`) and the admin's form, both
//! checked by one [`check`]. What a credential may name and where the admin
//! may send it is `guard`'s; which values of the form are secret,
//! `hidden`'s.
//!
//! The store keeps tenants as rows of text; a [`Tenant`] is built from a row
//! once, when it is read, and every other module works with the typed value.

mod config;
mod directory;
mod edit;
mod file;
mod guard;
mod hidden;
mod keys;

pub use config::{
    CalendarConfig, Credential, CrmConfig, InlineSecret, MemoryConfig, ServiceConfig, TenantConfig,
    WebhookSecrets, is_variable_name,
};
pub use directory::TenantDirectory;
pub use edit::{Draft, changed_fields};
pub use file::{Problem, check, import, line_owner, number_owner, parse, render_list};
pub use guard::{
    RESERVED_PREFIXES, RESERVED_VARIABLES, UpstreamHosts, is_reserved_variable, normal_host,
};
pub use hidden::HIDDEN;
pub use keys::ApiKeyring;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::{PhoneNumber, Provider, TenantId};
use crate::store::{NewTenant, TenantRow};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    /// The number callers dial; resolves calls to this tenant.
    pub phone_number: PhoneNumber,
    pub name: String,
    pub time_zone: Tz,
    pub config: TenantConfig,
    pub is_demo: bool,
    pub created_at_ms: i64,
    /// Changes with every edit: adapters built for a tenant are rebuilt when
    /// it moves.
    pub updated_at_ms: i64,
}

/// A stored tenant that cannot be used as it is.
#[derive(Debug, thiserror::Error)]
#[error("tenant `{tenant}`: {problem}")]
pub struct TenantError {
    pub tenant: String,
    pub problem: String,
}

impl Tenant {
    /// Types a stored row: parses the time zone and the configuration.
    pub fn from_row(row: TenantRow) -> Result<Self, TenantError> {
        let bad = |problem: String| TenantError {
            tenant: row.id.to_string(),
            problem,
        };
        let time_zone = parse_time_zone(&row.time_zone).map_err(bad)?;
        // serde's own message quotes the value it could not read, which
        // may be a secret: the field is named, the value is not.
        let config: TenantConfig =
            crate::support::json::parse(row.config.as_bytes(), "configuration")
                .map_err(|e| bad(e.to_string()))?;
        Ok(Tenant {
            id: row.id,
            phone_number: row.phone_number,
            name: row.name,
            time_zone,
            config,
            is_demo: row.is_demo,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        })
    }

    /// The tenant's own webhook secret for `provider`, when it has one.
    pub fn webhook_secret(&self, provider: Provider) -> Option<&Credential> {
        let secrets = self.config.webhook_secrets.as_ref()?;
        match provider {
            Provider::Retell => secrets.retell.as_ref(),
            Provider::Vapi => secrets.vapi.as_ref(),
            Provider::ElevenLabs => secrets.elevenlabs.as_ref(),
        }
    }
}

/// What the store is given to create or replace a tenant.
pub fn new_row(
    id: TenantId,
    phone_number: PhoneNumber,
    name: String,
    time_zone: Tz,
    config: &TenantConfig,
    is_demo: bool,
) -> NewTenant {
    NewTenant {
        id,
        phone_number,
        name,
        time_zone: time_zone.name().to_owned(),
        // A typed config always serialises.
        config: serde_json::to_string(config).unwrap_or_else(|_| "{}".into()),
        is_demo,
    }
}

/// An IANA time zone name, with the mistake named when it is not one.
pub fn parse_time_zone(raw: &str) -> Result<Tz, String> {
    raw.parse::<Tz>().map_err(|_| {
        format!("unknown time_zone `{raw}` (use an IANA name such as America/New_York)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_stored_configuration_is_named_by_field_without_its_value() {
        for config in [
            r#"{"crm": {"kind": "gohighlevel", "location_id": "l", "token": ["pit-leak-1"]}}"#,
            r#"{"memory": {"kind": "pit-leak-2", "token": "x"}}"#,
            r#"{"line_ids": "pit-leak-3"}"#,
        ] {
            let e = Tenant::from_row(TenantRow {
                id: TenantId::parse("acme").unwrap(),
                phone_number: PhoneNumber::parse("+15550100042").unwrap(),
                name: "Acme".into(),
                time_zone: "America/New_York".into(),
                config: config.into(),
                is_demo: false,
                created_at_ms: 1,
                updated_at_ms: 1,
            })
            .unwrap_err()
            .to_string();
            assert!(e.contains("tenant `acme`: invalid configuration"), "{e}");
            assert!(!e.contains("pit-leak"), "{e}");
        }
    }
}
