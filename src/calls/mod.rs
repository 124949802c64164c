//! Calls: assembling the caller's context, the mid-call tools and the
//! fallback cascade, and handing call events to the write-behind. Knows
//! nothing of which voice platform asked: webhooks call [`Calls`] with
//! domain types and render its answers in their platform's shape.

mod cascade;
mod context;
mod conversations;
mod services;
mod session;
mod steps;
mod tools;

/// A message for [`Calls::append_message`].
pub use crate::store::NewMessage;
/// What acknowledging a call event says: where it was made durable, and
/// whether it had been seen before.
pub use crate::writebehind::{Durability, Outcome};
pub use context::{CallerContext, ContactInfo, Rendering};
pub use session::CallSession;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::cache::{Cache, CacheError, Namespace, Tiered, keys};
use crate::domain::{
    CallEvent, CallId, CallPhase, Direction, Fallback, InboundCall, PhoneNumber, Provider,
};
use crate::store::Store;
use crate::support::{Env, SettingsError, now_ms};
use crate::tenants::{Tenant, TenantDirectory};
use crate::upstreams::{Slot, Upstreams};
use crate::writebehind::{Job, WriteBehind, WriteError};
use context::ContextAssembler;
use services::ServiceCatalog;

/// How the call service behaves.
#[derive(Clone, Debug)]
pub struct CallSettings {
    /// `WARMLINE_INBOUND_DEADLINE_MS`: how long an inbound call's context may
    /// take before missing parts are left out (they finish in the background
    /// for the next caller).
    pub inbound_deadline: Duration,
}

impl CallSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        Ok(CallSettings {
            inbound_deadline: env.millis_or("WARMLINE_INBOUND_DEADLINE_MS", 1_500)?,
        })
    }
}

/// The answer to an inbound call.
pub enum Inbound {
    /// No tenant has the called number: the platform's default agent should
    /// take the call.
    UnknownTenant,
    Context {
        /// Shared with the cache: render it with [`CallerContext::rendered`].
        context: Arc<CallerContext>,
        /// The tenant answering (its Vapi assistant, its name).
        tenant: Arc<Tenant>,
    },
}

/// The call service: what the webhooks may ask of warmline.
#[derive(Clone)]
pub struct Calls {
    tenants: TenantDirectory,
    services: ServiceCatalog,
    context: ContextAssembler,
    sessions: Tiered<CallSession>,
    slots: Tiered<Vec<Slot>>,
    replays: Tiered<String>,
    upstreams: Arc<Upstreams>,
    writebehind: WriteBehind,
    store: Store,
    cache: Cache,
    /// Call steps waiting for the write-behind: bounded, so a database
    /// slower than the calls cannot pile up steps in memory.
    step_backlog: Arc<tokio::sync::Semaphore>,
}

impl Calls {
    pub fn new(
        cache: &Cache,
        store: Store,
        tenants: TenantDirectory,
        upstreams: Arc<Upstreams>,
        writebehind: WriteBehind,
        settings: &CallSettings,
    ) -> Self {
        for tool in crate::domain::ToolName::ALL
            .map(|t| t.as_str())
            .into_iter()
            .chain(["unknown"])
        {
            for outcome in ["ok", "error"] {
                metrics::counter!("warmline_tool_calls_total", "tool" => tool, "outcome" => outcome)
                    .increment(0);
            }
        }
        steps::register_metrics();
        for provider in crate::domain::Provider::ALL {
            for phase in ["started", "ended", "analyzed"] {
                for direction in crate::domain::Direction::ALL {
                    for channel in crate::domain::Channel::ALL {
                        metrics::counter!(
                            "warmline_call_events_total",
                            "provider" => provider.as_str(),
                            "phase" => phase,
                            "direction" => direction.as_str(),
                            "channel" => channel.as_str(),
                        )
                        .increment(0);
                    }
                }
            }
        }
        Calls {
            services: ServiceCatalog::new(cache, tenants.clone(), upstreams.clone()),
            context: ContextAssembler::new(
                cache,
                upstreams.clone(),
                store.clone(),
                settings.inbound_deadline,
            ),
            tenants,
            sessions: cache.namespace(Namespace::Call),
            slots: cache.namespace(Namespace::Slots),
            replays: cache.namespace(Namespace::Replay),
            upstreams,
            writebehind,
            store,
            cache: cache.clone(),
            step_backlog: Arc::new(tokio::sync::Semaphore::new(steps::MAX_WAITING)),
        }
    }

    /// The tenant answering `called`, from memory.
    pub async fn tenant(&self, called: &PhoneNumber) -> Result<Option<Arc<Tenant>>, CacheError> {
        self.tenants.resolve(called).await
    }

    /// The number of the tenant whose line is `line` (a Vapi phone-number id
    /// or SIP URI named in its `line_ids`): a SIP call is then handled as a
    /// call to that number.
    pub async fn line_number(&self, line: &str) -> Result<Option<PhoneNumber>, CacheError> {
        Ok(self
            .tenants
            .resolve_line(line)
            .await?
            .map(|t| t.phone_number.clone()))
    }

    /// Context for an inbound call. With the call's id (Vapi, ElevenLabs
    /// know it already) the session is cached for the call's tools and the
    /// context answered is recorded on the call.
    ///
    /// A returning caller's call without an id — the tenant and the context
    /// in L1, nothing to record — is the hot path: it opens no span of its
    /// own (the request's root span gets `warmline.tenant`), and its answer
    /// is the cached context, shared. Everything else is traced as
    /// `calls.inbound`.
    pub async fn inbound(&self, call: InboundCall) -> Result<Inbound, CacheError> {
        if call.call_id.is_none()
            && let Some(caller) = &call.caller
            && let Some(tenant) = self.tenants.resolve(&call.called).await?
            && let Some(context) = self.context.cached(&tenant, caller).await
        {
            tracing::Span::current().record("warmline.tenant", tenant.id.as_str());
            return Ok(Inbound::Context { context, tenant });
        }
        self.inbound_traced(call).await
    }

    #[tracing::instrument(name = "calls.inbound", skip_all, fields(provider = %call.provider, called = %call.called.masked(), tenant = tracing::field::Empty))]
    async fn inbound_traced(&self, call: InboundCall) -> Result<Inbound, CacheError> {
        let InboundCall {
            provider,
            called,
            caller,
            call_id,
        } = call;
        let Some(tenant) = self.tenants.resolve(&called).await? else {
            Fallback::UnknownCalledNumber.count();
            tracing::warn!(
                "inbound call to a number no tenant has; answering as the platform expects"
            );
            return Ok(Inbound::UnknownTenant);
        };
        tracing::Span::current().record("tenant", tenant.id.as_str());
        let session = self
            .session_for("inbound", provider, call_id.clone(), tenant, caller)
            .await;
        if let Some(id) = &call_id {
            // The call's tools come seconds later: the caller does not wait
            // for the session to reach Redis and the other replicas.
            self.sessions
                .set_in_background(&keys::session(provider, id), session.clone());
        }
        Ok(Inbound::Context {
            context: session.context,
            tenant: session.tenant,
        })
    }

    /// A session for a tool call whose session was not cached (the
    /// fallback cascade): [`Calls::session_for`] as `fallback`.
    async fn new_session(
        &self,
        provider: Provider,
        call_id: Option<CallId>,
        tenant: Arc<Tenant>,
        caller: Option<PhoneNumber>,
    ) -> CallSession {
        self.session_for("fallback", provider, call_id, tenant, caller)
            .await
    }

    /// A session with the caller's context (from cache where possible); the
    /// context is recorded on the call, when its id is known, as answered
    /// by `source` (`inbound`, `call_started`, `fallback`).
    async fn session_for(
        &self,
        source: &str,
        provider: Provider,
        call_id: Option<CallId>,
        tenant: Arc<Tenant>,
        caller: Option<PhoneNumber>,
    ) -> CallSession {
        let (started, at_ms) = (Instant::now(), now_ms());
        let context = match &caller {
            Some(c) => self.context.assemble(&tenant, c).await,
            None => Arc::new(CallerContext::anonymous(&tenant)),
        };
        let session = CallSession {
            provider,
            call_id,
            tenant,
            caller,
            context,
        };
        self.record_context(&session, source, at_ms, started.elapsed());
        session
    }

    /// Acknowledges a call event: durable once this returns. A start also
    /// caches the call's session (recording the context it answers, unless
    /// the inbound request already did); an end invalidates what the call
    /// changed.
    #[tracing::instrument(name = "calls.event", skip_all, fields(provider = %event.provider, event = %event.event))]
    pub async fn call_event(&self, event: CallEvent) -> Result<(Durability, Outcome), WriteError> {
        let tenant = match &event.details.called {
            Some(called) => self.tenants.resolve(called).await.ok().flatten(),
            None => None,
        };
        if event.phase == CallPhase::Started
            && let Some(t) = &tenant
        {
            // The session is built beside the acknowledgement, not before it:
            // the platform waits for neither the context nor the upstreams.
            let (calls, tenant, provider) = (self.clone(), t.clone(), event.provider);
            let (call_id, caller) = (event.call_id.clone(), event.details.caller.clone());
            tokio::spawn(
                async move {
                    let key = keys::session(provider, &call_id);
                    if calls.sessions.get_cached(&key).await.is_none() {
                        let session = calls
                            .session_for("call_started", provider, Some(call_id), tenant, caller)
                            .await;
                        calls.sessions.set(&key, session).await;
                    }
                }
                .instrument(tracing::info_span!("calls.start_session")),
            );
        }
        metrics::counter!(
            "warmline_call_events_total",
            "provider" => event.provider.as_str(),
            "phase" => match event.phase {
                CallPhase::Started => "started",
                CallPhase::Ended => "ended",
                CallPhase::Analyzed => "analyzed",
            },
            "direction" => Direction::of(event.details.direction.as_deref()).as_str(),
            "channel" => event.details.channel.unwrap_or_default().as_str(),
        )
        .increment(1);
        let ended = event.phase != CallPhase::Started;
        let caller = event.details.caller.clone();
        let job = Job::CallEvent {
            event: Box::new(event),
            tenant_id: tenant.as_ref().map(|t| t.id.clone()),
            time_zone: tenant.as_ref().map(|t| t.time_zone),
        };
        let result = self.writebehind.submit(job).await?;
        if ended
            && let Outcome::CallEnded(counts) = result.1
            && let (Some(t), Some(c)) = (&tenant, &caller)
        {
            // The caller's counts changed: their context everywhere, their
            // contact here revised in place and dropped elsewhere.
            let revised: &[Namespace] = if self.context.count_call(t, c, counts) {
                &[Namespace::Contact]
            } else {
                &[]
            };
            self.cache
                .caller_changed(&t.id, c, &[Namespace::Contact, Namespace::Context], revised)
                .await;
        }
        Ok(result)
    }
}
