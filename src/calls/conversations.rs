//! What the bots' API asks of the call service: the tenant a WhatsApp
//! instance writes for, whether a key is the tenant's, the customer's
//! context (from cache where possible, as a call's), and appending a
//! message to the customer's conversation.

use std::sync::Arc;

use super::{CallerContext, Calls, NewMessage};
use crate::cache::CacheError;
use crate::domain::PhoneNumber;
use crate::tenants::Tenant;
use crate::writebehind::{Durability, Job, Outcome, WriteError};

impl Calls {
    /// The tenant a WhatsApp instance writes for, from memory.
    pub async fn tenant_by_instance(
        &self,
        instance: &str,
    ) -> Result<Option<Arc<Tenant>>, CacheError> {
        self.tenants.resolve_instance(instance).await
    }

    /// Whether `key` is one of `tenant`'s API keys.
    pub fn accepts_api_key(&self, tenant: &Tenant, key: &str) -> bool {
        self.tenants.accepts_api_key(tenant, key)
    }

    /// The customer's context at the tenant: what a call would be told
    /// (shared with the cache, with its rendered answers).
    pub async fn customer_context(
        &self,
        tenant: &Tenant,
        customer: &PhoneNumber,
    ) -> Arc<CallerContext> {
        self.context.assemble(tenant, customer).await
    }

    /// Makes the message durable (the database or the spill journal), then
    /// drops what every replica cached of the customer's memory and
    /// context: the conversation moved on. The memory service learns the
    /// message through the write-back, which drops them again once it has.
    #[tracing::instrument(name = "calls.append_message", skip_all, fields(tenant = %message.tenant_id, caller = %message.caller.masked()))]
    pub async fn append_message(
        &self,
        message: NewMessage,
    ) -> Result<(Durability, Outcome), WriteError> {
        let (tenant, caller) = (message.tenant_id.clone(), message.caller.clone());
        let job = Job::Message {
            message: Box::new(message),
        };
        let result = self.writebehind.submit(job).await?;
        if result.1 != Outcome::Duplicate {
            self.cache.invalidate_caller(&tenant, &caller).await;
        }
        Ok(result)
    }
}
