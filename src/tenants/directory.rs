//! The tenant directory: called number → tenant, answered from memory.
//!
//! Every tenant is loaded into the `tenant` cache namespace at start (and on
//! the warm-up endpoint), so resolving the called number on an inbound call
//! is an L1 hit, not a database query. A number not yet in L1 is loaded from
//! the database once (single-flight) and "no such tenant" is remembered
//! under the namespace's negative TTL. Rows are typed into [`Tenant`]s here,
//! once, as they are read.

use crate::cache::{Cache, CacheError, LoadError, Namespace, Tiered};
use crate::domain::{PhoneNumber, TenantId};
use crate::store::{Store, StoreError, TenantRow};

use super::Tenant;

#[derive(Clone)]
pub struct TenantDirectory {
    cache: Tiered<Tenant>,
    store: Store,
}

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
            store,
        };
        let warm = dir.clone();
        cache.register_warmer(Namespace::Tenant, move || {
            let warm = warm.clone();
            async move { warm.warm().await }
        });
        dir
    }

    /// The tenant answering `called`, or `None` when no tenant has it.
    #[tracing::instrument(name = "tenant.resolve", skip_all, fields(called = %called.masked(), tenant = tracing::field::Empty))]
    pub async fn resolve(&self, called: &PhoneNumber) -> Result<Option<Tenant>, CacheError> {
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
            tracing::Span::current().record("tenant", t.id.as_str());
        }
        Ok(lookup.value.map(|t| (*t).clone()))
    }

    /// The tenant whose `line_ids` name `line` (a Vapi phone-number id or a
    /// SIP URI, compared without regard to case), for calls that carry no
    /// number. Answered from memory like [`resolve`](Self::resolve); a line
    /// not yet in L1 is looked for among all tenants once.
    #[tracing::instrument(name = "tenant.resolve_line", skip_all, fields(tenant = tracing::field::Empty))]
    pub async fn resolve_line(&self, line: &str) -> Result<Option<Tenant>, CacheError> {
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
        Ok(lookup.value.map(|t| (*t).clone()))
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
            let key = t.phone_number.as_str().to_owned();
            self.cache.set(&key, t).await;
        }
        Ok(n)
    }
}
