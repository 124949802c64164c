//! The services a tenant offers, from its configuration, cached in the
//! `services` namespace and warmed at start.

use std::sync::Arc;

use crate::cache::{Cache, CacheError, LoadError, Namespace, Tiered};
use crate::tenants::{Tenant, TenantDirectory};
use crate::upstreams::{Service, Upstreams};

#[derive(Clone)]
pub struct ServiceCatalog {
    cache: Tiered<Vec<Service>>,
    upstreams: Arc<Upstreams>,
}

fn key(tenant: &Tenant) -> String {
    format!("{}:all", tenant.id)
}

impl ServiceCatalog {
    pub fn new(cache: &Cache, tenants: TenantDirectory, upstreams: Arc<Upstreams>) -> Self {
        let catalog = ServiceCatalog {
            cache: cache.namespace(Namespace::Services),
            upstreams,
        };
        let warm = catalog.clone();
        cache.register_warmer(Namespace::Services, move || {
            let (warm, tenants) = (warm.clone(), tenants.clone());
            async move {
                let mut n = 0;
                for t in &tenants.list().await? {
                    if let Ok(built) = warm.upstreams.for_tenant(t) {
                        warm.cache.set(&key(t), built.services.clone()).await;
                        n += 1;
                    }
                }
                Ok(n)
            }
        });
        catalog
    }

    pub async fn services(&self, tenant: &Tenant) -> Result<Arc<Vec<Service>>, CacheError> {
        let upstreams = self.upstreams.clone();
        let t = tenant.clone();
        let lookup = self
            .cache
            .get_or_load(&key(tenant), move || async move {
                upstreams
                    .for_tenant(&t)
                    .map(|u| Some(u.services.clone()))
                    .map_err(LoadError::new)
            })
            .await?;
        Ok(lookup.value.unwrap_or_default())
    }
}
