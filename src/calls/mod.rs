//! Calls: resolving the tenant, assembling the caller's context, the
//! mid-call tools and the fallback cascade, and handing call events to the
//! write-behind. Knows nothing of which voice platform asked: webhooks call
//! [`Calls`] with domain types.

pub mod cascade;
pub mod context;
pub mod services;
pub mod session;
pub mod tenants;
pub mod tools;
pub mod writeback;

pub use context::{CallerContext, ContextAssembler};
pub use services::ServiceCatalog;
pub use session::{CallSession, session_key};
pub use tenants::TenantDirectory;

use std::sync::Arc;

use tracing::Instrument;

use crate::cache::{Cache, FlushScope, Namespace, Tiered};
use crate::domain::{CallEvent, CallId, CallPhase, InboundCall, PhoneNumber, Provider};
use crate::store::{Store, TenantRecord};
use crate::upstreams::{Slot, Upstreams};
use crate::writebehind::{Durability, Job, Outcome, WriteBehind, WriteError};

/// The answer to an inbound call.
pub enum Inbound {
    /// No tenant has the called number: the platform's default agent should
    /// take the call.
    UnknownTenant,
    Context(Box<CallerContext>),
}

#[derive(Clone)]
pub struct Calls {
    pub tenants: TenantDirectory,
    pub services: ServiceCatalog,
    pub context: ContextAssembler,
    sessions: Tiered<CallSession>,
    slots: Tiered<Vec<Slot>>,
    upstreams: Arc<Upstreams>,
    writebehind: WriteBehind,
    store: Store,
    cache: Cache,
}

impl Calls {
    pub fn new(
        cache: &Cache,
        store: Store,
        upstreams: Arc<Upstreams>,
        writebehind: WriteBehind,
        inbound_deadline: std::time::Duration,
    ) -> Self {
        Calls {
            tenants: TenantDirectory::new(cache, store.clone()),
            services: ServiceCatalog::new(cache, store.clone(), upstreams.clone()),
            context: ContextAssembler::new(
                cache,
                upstreams.clone(),
                store.clone(),
                inbound_deadline,
            ),
            sessions: cache.namespace(Namespace::Call),
            slots: cache.namespace(Namespace::Slots),
            upstreams,
            writebehind,
            store,
            cache: cache.clone(),
        }
    }

    /// Context for an inbound call. With the call's id (Vapi, ElevenLabs
    /// know it already) the session is cached for the call's tools.
    #[tracing::instrument(name = "calls.inbound", skip_all, fields(provider = %call.provider, called = %call.called.masked()))]
    pub async fn inbound(&self, call: InboundCall) -> Result<Inbound, crate::cache::CacheError> {
        let InboundCall {
            provider,
            called,
            caller,
            call_id,
        } = call;
        let Some(tenant) = self.tenants.resolve(&called).await? else {
            metrics::counter!("warmline_fallback_activations_total", "kind" => "unknown_called_number").increment(1);
            tracing::warn!(
                "inbound call to a number no tenant has; answering with an empty override"
            );
            return Ok(Inbound::UnknownTenant);
        };
        let session = self
            .new_session(provider, call_id.clone(), tenant, caller)
            .await;
        if let Some(id) = &call_id {
            self.sessions
                .set(&session_key(provider, id), session.clone())
                .await;
        }
        Ok(Inbound::Context(Box::new(session.context)))
    }

    /// A session with the caller's context (from cache where possible).
    pub(crate) async fn new_session(
        &self,
        provider: Provider,
        call_id: Option<CallId>,
        tenant: TenantRecord,
        caller: Option<PhoneNumber>,
    ) -> CallSession {
        let context = match &caller {
            Some(c) => self.context.assemble(&tenant, c).await,
            None => self.context.anonymous(&tenant),
        };
        CallSession {
            provider,
            call_id,
            tenant,
            caller,
            context,
        }
    }

    /// Acknowledges a call event: durable once this returns. A start also
    /// caches the call's session; an end invalidates what the call changed.
    #[tracing::instrument(name = "calls.event", skip_all, fields(provider = %event.provider, event = %event.event))]
    pub async fn call_event(&self, event: CallEvent) -> Result<(Durability, Outcome), WriteError> {
        let tenant = match &event.called {
            Some(called) => self.tenants.resolve(called).await.ok().flatten(),
            None => None,
        };
        if event.phase == CallPhase::Started
            && let Some(t) = &tenant
        {
            // The session is built beside the acknowledgement, not before it:
            // the platform waits for neither the context nor the upstreams.
            let (calls, tenant, provider) = (self.clone(), t.clone(), event.provider);
            let (call_id, caller) = (event.call_id.clone(), event.caller.clone());
            tokio::spawn(
                async move {
                    let key = session_key(provider, &call_id);
                    if calls.sessions.get_cached(&key).await.is_none() {
                        let session = calls
                            .new_session(provider, Some(call_id), tenant, caller)
                            .await;
                        calls.sessions.set(&key, session).await;
                    }
                }
                .instrument(tracing::info_span!("calls.start_session")),
            );
        }
        let ended = event.phase != CallPhase::Started;
        let caller = event.caller.clone();
        let job = Job::CallEvent {
            event: Box::new(event),
            tenant_id: tenant.as_ref().map(|t| t.id.clone()),
            time_zone: tenant.as_ref().map(|t| t.time_zone.clone()),
        };
        let result = self.writebehind.submit(job).await?;
        if ended
            && result.1 == Outcome::CallEnded
            && let (Some(t), Some(c)) = (&tenant, &caller)
        {
            // The caller's statistics changed: drop them everywhere.
            self.invalidate_caller(t, c).await;
        }
        Ok(result)
    }

    /// Drops the caller's contact, memory and assembled context from every
    /// tier and replica.
    pub async fn invalidate_caller(&self, tenant: &TenantRecord, caller: &PhoneNumber) {
        let key = format!("{}:{}", tenant.id, caller.as_str());
        for ns in [Namespace::Contact, Namespace::Memory, Namespace::Context] {
            self.cache
                .flush(&FlushScope::Key {
                    ns,
                    key: key.clone(),
                })
                .await;
        }
    }
}
