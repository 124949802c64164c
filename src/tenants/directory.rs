//! The tenant directory: called number → tenant, answered from memory.
//!
//! Every tenant is loaded into the `tenant` cache namespace at start (and on
//! the warm-up endpoint), so resolving the called number on an inbound call
//! is an L1 hit, not a database query. A number not yet in L1 is loaded from
//! the database once (single-flight) and "no such tenant" is remembered
//! under the namespace's negative TTL. WhatsApp instance names resolve the
//! same way, and the tenants' API keys are hashed at warm-up (see
//! [`ApiKeyring`]). Rows are typed into [`Tenant`]s here, once, as they are
//! read.

use crate::cache::{Cache, CacheError, FlushReport, FlushScope, LoadError, Namespace, Tiered};
use crate::domain::{PhoneNumber, TenantId};
use crate::store::{Store, StoreError, TenantRow};
use std::sync::Arc;

use super::Tenant;
use super::keys::ApiKeyring;

#[derive(Clone)]
pub struct TenantDirectory {
    cache: Tiered<Tenant>,
    keys: ApiKeyring,
    /// The whole cache, to drop what other namespaces hold of a tenant.
    all: Cache,
    store: Store,
}

/// What other namespaces cache of a tenant under keys starting with its
/// id, built from its configuration: dropped when it changes. Not `replay`
/// (a re-delivered booking must still get its first answer) nor `call`
/// (live calls keep the tenant they started with).
const DERIVED: [Namespace; 5] = [
    Namespace::Contact,
    Namespace::Memory,
    Namespace::Slots,
    Namespace::Services,
    Namespace::Context,
];

/// Types the rows that can be typed; a broken one is logged, not fatal, so
/// one bad tenant cannot take the others down.
fn typed(rows: Vec<TenantRow>) -> Vec<Tenant> {
    rows.into_iter()
        .filter_map(|row| {
            Tenant::from_row(row)
                .inspect_err(|e| tracing::error!(error = %e, "tenant skipped"))
                .ok()
        })
        .collect()
}

/// A line's key in the tenant namespace, apart from the numbers.
fn line_key(line: &str) -> String {
    format!("line:{line}")
}

/// A WhatsApp instance's key in the tenant namespace.
fn instance_key(instance: &str) -> String {
    format!("instance:{}", instance.trim().to_lowercase())
}

fn serves_instance(tenant: &Tenant, instance: &str) -> bool {
    tenant
        .config
        .whatsapp_instances
        .iter()
        .any(|i| i.trim().eq_ignore_ascii_case(instance.trim()))
}

fn serves_line(tenant: &Tenant, line: &str) -> bool {
    tenant
        .config
        .line_ids
        .iter()
        .any(|l| l.trim().eq_ignore_ascii_case(line))
}

impl TenantDirectory {
    /// Builds the directory and registers its warm-up with the cache.
    pub fn new(cache: &Cache, store: Store) -> Self {
        let dir = TenantDirectory {
            cache: cache.namespace(Namespace::Tenant),
            keys: ApiKeyring::default(),
            all: cache.clone(),
            store,
        };
        let warm = dir.clone();
        cache.register_warmer(Namespace::Tenant, move || {
            let warm = warm.clone();
            async move { warm.warm().await }
        });
        dir
    }

    /// The tenant answering `called`, or `None` when no tenant has it:
    /// shared, not copied (a hot path resolves it on every request). An L1
    /// hit opens no span of its own; a load is traced as a `cache.lookup`
    /// of the `tenant` namespace.
    pub async fn resolve(&self, called: &PhoneNumber) -> Result<Option<Arc<Tenant>>, CacheError> {
        let store = self.store.clone();
        let number = called.clone();
        let lookup = self
            .cache
            .get_or_load(called.as_str(), move || async move {
                let row = store
                    .tenant_by_number(&number)
                    .await
                    .map_err(LoadError::new)?;
                row.map(Tenant::from_row)
                    .transpose()
                    .map_err(LoadError::new)
            })
            .await?;
        if let Some(t) = &lookup.value {
            crate::support::attribution::tenant(t.id.as_str(), t.time_zone);
        }
        Ok(lookup.value)
    }

    /// The tenant whose `line_ids` name `line` (a Vapi phone-number id or a
    /// SIP URI, compared without regard to case), for calls that carry no
    /// number. Answered from memory like [`resolve`](Self::resolve); a line
    /// not yet in L1 is looked for among all tenants once.
    #[tracing::instrument(name = "tenant.resolve_line", skip_all, fields(tenant = tracing::field::Empty))]
    pub async fn resolve_line(&self, line: &str) -> Result<Option<Arc<Tenant>>, CacheError> {
        let line = line.trim().to_lowercase();
        let dir = self.clone();
        let wanted = line.clone();
        let lookup = self
            .cache
            .get_or_load(&line_key(&line), move || async move {
                let tenants = dir.list().await.map_err(LoadError::new)?;
                Ok(tenants.into_iter().find(|t| serves_line(t, &wanted)))
            })
            .await?;
        if let Some(t) = &lookup.value {
            tracing::Span::current().record("tenant", t.id.as_str());
        }
        Ok(lookup.value)
    }

    /// The tenant whose `whatsapp_instances` name `instance` (compared
    /// without regard to case), answered from memory like
    /// [`resolve`](Self::resolve): instances are loaded at warm-up, and one
    /// not yet in L1 is looked for among all tenants once.
    #[tracing::instrument(name = "tenant.resolve_instance", skip_all, fields(tenant = tracing::field::Empty))]
    pub async fn resolve_instance(
        &self,
        instance: &str,
    ) -> Result<Option<Arc<Tenant>>, CacheError> {
        let dir = self.clone();
        let wanted = instance.to_owned();
        let lookup = self
            .cache
            .get_or_load(&instance_key(instance), move || async move {
                let tenants = dir.list().await.map_err(LoadError::new)?;
                Ok(tenants.into_iter().find(|t| serves_instance(t, &wanted)))
            })
            .await?;
        if let Some(t) = &lookup.value {
            tracing::Span::current().record("tenant", t.id.as_str());
            crate::support::attribution::tenant(t.id.as_str(), t.time_zone);
        }
        Ok(lookup.value)
    }

    /// Whether `presented` is one of `tenant`'s API keys (never another
    /// tenant's): compared with their digests, from memory.
    pub fn accepts_api_key(&self, tenant: &Tenant, presented: &str) -> bool {
        self.keys.accepts(tenant, presented)
    }

    /// Accepts `key` for the tenant `id` until the process ends (the demo's
    /// key for this run), besides the keys its tenant file names.
    pub fn grant_api_key(&self, id: &TenantId, key: &str) {
        self.keys.grant(id, key);
    }

    /// The tenant with this id, from the database (the fallback cascade and
    /// the write-back worker know only the id).
    pub async fn by_id(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        match self.store.tenant(id).await? {
            None => Ok(None),
            Some(row) => Ok(Tenant::from_row(row)
                .inspect_err(|e| tracing::error!(error = %e, "tenant unusable"))
                .ok()),
        }
    }

    /// Every tenant that can be typed, by id.
    pub async fn list(&self) -> Result<Vec<Tenant>, StoreError> {
        Ok(typed(self.store.list_tenants().await?))
    }

    /// Drops everything cached of a tenant just created or changed, from
    /// every tier and — through the backplane — from every replica's L1, so
    /// the next call uses what was just stored: the `tenant` entries of its
    /// numbers and lines before and after (a number it gave up must stop
    /// finding it; one it took over may be remembered as "nobody's"), and
    /// what [`DERIVED`] namespaces built from it. The report counts the
    /// entries removed and says when Redis could not be reached.
    #[tracing::instrument(name = "tenant.forget", skip_all, fields(tenant = %after.id))]
    pub async fn forget(&self, before: Option<&Tenant>, after: &Tenant) -> FlushReport {
        let mut keys = std::collections::BTreeSet::new();
        for t in before.into_iter().chain([after]) {
            keys.insert(t.phone_number.as_str().to_owned());
            for line in &t.config.line_ids {
                keys.insert(line_key(&line.trim().to_lowercase()));
            }
            for instance in &t.config.whatsapp_instances {
                keys.insert(instance_key(instance));
            }
        }
        let prefix = format!("{}:", after.id);
        let scopes = keys
            .into_iter()
            .map(|key| FlushScope::Key {
                ns: Namespace::Tenant,
                key,
            })
            .chain(DERIVED.into_iter().map(|ns| FlushScope::Prefix {
                ns,
                prefix: prefix.clone(),
            }));
        let mut total = FlushReport {
            flushed: 0,
            l2_error: None,
        };
        for scope in scopes {
            let report = self.all.flush(&scope).await;
            total.flushed += report.flushed;
            total.l2_error = total.l2_error.or(report.l2_error);
        }
        if let Some(e) = &total.l2_error {
            tracing::warn!(error = %e, "tenant changed but Redis could not be flushed");
        }
        total
    }

    /// Loads every tenant into the cache; returns how many.
    pub async fn warm(&self) -> anyhow::Result<usize> {
        let tenants = self.list().await?;
        let n = tenants.len();
        for t in tenants {
            for line in &t.config.line_ids {
                self.cache
                    .set(&line_key(&line.trim().to_lowercase()), t.clone())
                    .await;
            }
            for instance in &t.config.whatsapp_instances {
                self.cache.set(&instance_key(instance), t.clone()).await;
            }
            self.keys.prime(&t);
            let key = t.phone_number.as_str().to_owned();
            self.cache.set(&key, t).await;
        }
        Ok(n)
    }
}
