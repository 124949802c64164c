//! The tenants' keys for the bots' API, kept only as SHA-256 digests in
//! memory. A tenant file names the environment variables that hold them
//! (`api_keys_env`); they are read once per version of the tenant (at
//! warm-up, or the first request after an edit), hashed, and the values
//! dropped. A presented key is hashed and compared with each digest of the
//! tenant it claims, in constant time: another tenant's key is no key. A key
//! may also be granted for this run only (the demo's), kept the same way.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use super::Tenant;
use super::guard::is_reserved_variable;
use crate::domain::TenantId;
use crate::support::constant_time_eq;

type Digests = Arc<Vec<[u8; 32]>>;

#[derive(Clone, Default)]
pub struct ApiKeyring {
    /// Tenant → (the version the digests were made from, the digests).
    digests: Arc<RwLock<HashMap<TenantId, (i64, Digests)>>>,
    /// Keys granted for this process's life, whatever the tenant file says.
    granted: Arc<RwLock<HashMap<TenantId, Vec<[u8; 32]>>>>,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.trim().as_bytes()).into()
}

impl ApiKeyring {
    /// Whether `presented` is one of `tenant`'s keys.
    pub fn accepts(&self, tenant: &Tenant, presented: &str) -> bool {
        let given = digest(presented);
        let granted = self
            .granted
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tenant.id)
            .cloned()
            .unwrap_or_default();
        // Every digest is compared: how many keys match does not show.
        self.digests_of(tenant)
            .iter()
            .chain(&granted)
            .fold(false, |ok, d| constant_time_eq(d, &given) | ok)
    }

    /// Accepts `key` for `tenant` until the process ends (kept hashed).
    pub fn grant(&self, tenant: &TenantId, key: &str) {
        self.granted
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant.clone())
            .or_default()
            .push(digest(key));
    }

    /// Hashes the keys of this version of `tenant`, ahead of its requests.
    pub fn prime(&self, tenant: &Tenant) {
        self.digests_of(tenant);
    }

    fn digests_of(&self, tenant: &Tenant) -> Digests {
        let known = self
            .digests
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tenant.id)
            .filter(|(version, _)| *version == tenant.updated_at_ms)
            .map(|(_, d)| d.clone());
        if let Some(d) = known {
            return d;
        }
        let digests: Digests = Arc::new(
            tenant
                .config
                .api_keys_env
                .iter()
                .filter_map(|var| {
                    if is_reserved_variable(var) {
                        tracing::warn!(tenant = %tenant.id, variable = %var, "an API key may not be one of warmline's own settings; ignored");
                        return None;
                    }
                    match std::env::var(var) {
                        Ok(key) if !key.trim().is_empty() => Some(digest(&key)),
                        _ => {
                            tracing::warn!(tenant = %tenant.id, variable = %var, "API key variable is not set; that key is refused");
                            None
                        }
                    }
                })
                .collect(),
        );
        self.digests
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.id.clone(), (tenant.updated_at_ms, digests.clone()));
        digests
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PhoneNumber;
    use crate::tenants::TenantConfig;

    fn tenant(id: &str, vars: &[&str], version: i64) -> Tenant {
        Tenant {
            id: TenantId::parse(id).unwrap(),
            phone_number: PhoneNumber::parse("+15550100042").unwrap(),
            name: id.into(),
            time_zone: chrono_tz::UTC,
            config: TenantConfig {
                api_keys_env: vars.iter().map(|v| v.to_string()).collect(),
                ..TenantConfig::default()
            },
            is_demo: false,
            created_at_ms: 0,
            updated_at_ms: version,
        }
    }

    #[test]
    fn a_key_opens_only_its_own_tenant_and_follows_the_tenants_edits() {
        // SAFETY of the test: names no other test uses.
        unsafe {
            std::env::set_var("WLKEYTEST_A1", "key-a-one");
            std::env::set_var("WLKEYTEST_B1", "key-b-one");
        }
        let ring = ApiKeyring::default();
        let a = tenant("a", &["WLKEYTEST_A1", "WLKEYTEST_UNSET"], 1);
        let b = tenant("b", &["WLKEYTEST_B1"], 1);
        assert!(ring.accepts(&a, "key-a-one"));
        assert!(!ring.accepts(&a, "key-b-one"), "another tenant's key");
        assert!(!ring.accepts(&a, ""), "no key");
        assert!(ring.accepts(&b, "key-b-one"));
        // An edit naming other variables is read again.
        let a2 = tenant("a", &["WLKEYTEST_B1"], 2);
        assert!(!ring.accepts(&a2, "key-a-one"));
        assert!(ring.accepts(&a2, "key-b-one"));
        // warmline's own settings are never a key.
        let c = tenant("c", &["PATH"], 1);
        assert!(!ring.accepts(&c, &std::env::var("PATH").unwrap_or_default()));
        // A key granted for the run opens its tenant only.
        ring.grant(&c.id, "run-key");
        assert!(ring.accepts(&c, "run-key"));
        assert!(!ring.accepts(&b, "run-key"));
    }
}
