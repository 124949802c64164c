//! Caller context for an inbound call: who is calling, what they talked
//! about last time, which slots are free — assembled from the cache, and on
//! a miss from the CRM, memory and calendar **concurrently**, each through
//! its own cached, coalesced loader, within a deadline budget. A part that is
//! not back in time is left out (its load finishes in the background and
//! serves the next caller); a part whose upstream fails is served stale by
//! the cache's fail-safe when it can be.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::cache::{Cache, LoadError, Lookup, Namespace, Outcome, Tiered, keys};
use crate::domain::PhoneNumber;
use crate::store::{CallerCounts, Store};
use crate::tenants::Tenant;
pub use crate::upstreams::ContactInfo;
use crate::upstreams::{Contact, MemoryContext, MemorySubject, Slot, TenantUpstreams, Upstreams};

/// How many upcoming free slots the agent is told about.
const NEXT_SLOTS: usize = 5;
/// How far ahead "next free slots" looks.
const SLOT_HORIZON_DAYS: i64 = 7;

/// Everything the agent is told when the call starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallerContext {
    pub tenant_id: String,
    pub business_name: String,
    pub time_zone: Tz,
    pub customer_name: Option<String>,
    pub crm_contact_id: Option<String>,
    pub returning_caller: bool,
    pub total_calls: i64,
    pub last_call_at_ms: Option<i64>,
    pub memory_summary: Option<String>,
    /// The tenant's cached slots: one allocation shared by every caller's
    /// context.
    pub next_slots: Arc<Vec<Slot>>,
    /// Parts left out because they were not back within the deadline or
    /// failed with nothing to fall back on (`contact`, `memory`, `slots`).
    pub missing: Vec<String>,
    /// Parts served stale because their upstream failed or was slow.
    pub stale: Vec<String>,
    /// The answers rendered from this context, kept with it: a cached
    /// context is rendered once per version, not once per call.
    #[serde(skip)]
    pub rendered: Rendered,
}

/// Which answer a [`Rendered`] slot keeps; the webhooks name theirs.
#[derive(Debug, Clone, Copy)]
pub struct Rendering(pub usize);

/// Answers rendered from one context version, as bytes, by [`Rendering`].
/// Not part of the context's value: a copy starts empty, and two contexts
/// are equal whatever they have rendered.
#[derive(Default)]
pub struct Rendered([std::sync::OnceLock<bytes::Bytes>; Rendered::SLOTS]);

impl Rendered {
    /// Retell's inbound answer, ElevenLabs' initiation data, the bots'
    /// context: one slot each (40 bytes of every cached context).
    pub const SLOTS: usize = 3;
}

impl Clone for Rendered {
    fn clone(&self) -> Self {
        Rendered::default()
    }
}

impl PartialEq for Rendered {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rendered")
    }
}

impl CallerContext {
    /// The answer `which` rendered from this context: `render` runs once
    /// per context version (per replica), later calls share its bytes. The
    /// kept copy is exactly its length (a serialiser's buffer grows by
    /// doubling: up to twice that, for every cached caller).
    pub fn rendered(
        &self,
        which: Rendering,
        render: impl FnOnce(&CallerContext) -> bytes::Bytes,
    ) -> bytes::Bytes {
        match self.rendered.0.get(which.0) {
            Some(slot) => slot
                .get_or_init(|| bytes::Bytes::copy_from_slice(&render(self)))
                .clone(),
            None => render(self),
        }
    }

    /// The next free slots as the agent should say them, in the tenant's zone.
    pub fn slots_spoken(&self) -> Vec<String> {
        self.next_slots
            .iter()
            .map(|s| {
                s.start
                    .with_timezone(&self.time_zone)
                    .format("%A %B %-d at %-I:%M %p")
                    .to_string()
            })
            .collect()
    }

    /// The context of a caller whose number is withheld: the business only.
    pub fn anonymous(tenant: &Tenant) -> CallerContext {
        CallerContext {
            tenant_id: tenant.id.to_string(),
            business_name: tenant.name.clone(),
            time_zone: tenant.time_zone,
            ..CallerContext::nobody()
        }
    }

    /// A context that knows nothing, not even the business (a number no
    /// tenant has): every field empty.
    pub fn nobody() -> CallerContext {
        CallerContext {
            tenant_id: String::new(),
            business_name: String::new(),
            time_zone: Tz::UTC,
            customer_name: None,
            crm_contact_id: None,
            returning_caller: false,
            total_calls: 0,
            last_call_at_ms: None,
            memory_summary: None,
            next_slots: Arc::default(),
            missing: Vec::new(),
            stale: Vec::new(),
            rendered: Rendered::default(),
        }
    }
}

#[derive(Clone)]
pub struct ContextAssembler {
    contacts: Tiered<ContactInfo>,
    memory: Tiered<MemoryContext>,
    slots: Tiered<Vec<Slot>>,
    contexts: Tiered<CallerContext>,
    upstreams: Arc<Upstreams>,
    store: Store,
    deadline: Duration,
}

/// A part's value, and whether it was served stale.
enum Part<T> {
    Value(Option<Arc<T>>, bool),
    Missing,
}

fn part<T>(
    name: &str,
    result: Result<Result<Lookup<T>, crate::cache::CacheError>, tokio::time::error::Elapsed>,
) -> Part<T> {
    match result {
        Ok(Ok(l)) => Part::Value(
            l.value,
            matches!(l.outcome, Outcome::HitStale | Outcome::HitFailSafe),
        ),
        Ok(Err(e)) => {
            tracing::warn!(part = name, error = %e, "context part unavailable");
            Part::Missing
        }
        Err(_) => {
            tracing::warn!(
                part = name,
                "context part not back within the deadline; left out"
            );
            Part::Missing
        }
    }
}

impl ContextAssembler {
    pub fn new(cache: &Cache, upstreams: Arc<Upstreams>, store: Store, deadline: Duration) -> Self {
        ContextAssembler {
            contacts: cache.namespace(Namespace::Contact),
            memory: cache.namespace(Namespace::Memory),
            slots: cache.namespace(Namespace::Slots),
            contexts: cache.namespace(Namespace::Context),
            upstreams,
            store,
            deadline,
        }
    }

    /// The caller's context, from the `context` namespace when a complete
    /// one is cached (shared, with its rendered answers, and without a span
    /// of its own), else assembled from its parts (traced).
    pub async fn assemble(&self, tenant: &Tenant, caller: &PhoneNumber) -> Arc<CallerContext> {
        if let Some(ctx) = self.cached(tenant, caller).await {
            return ctx;
        }
        let key = keys::caller(&tenant.id, caller);
        self.assemble_and_keep(tenant, caller, &key)
            .instrument(tracing::info_span!("calls.assemble_context", tenant = %tenant.id, caller = %caller.masked()))
            .await
    }

    /// A call of the caller's ended and was counted: this replica's cached
    /// contact takes the caller's `counts` as the count's transaction left
    /// them (a revision never moves them back, so two ends revised out of
    /// order leave the later counts). The CRM's part stays: a call's end
    /// does not change it, and reloading it would put a CRM round trip in
    /// the caller's next call. Returns whether a contact is kept here; with
    /// none cached or loading, or no counts, the caller drops it everywhere
    /// instead.
    pub fn count_call(
        &self,
        tenant: &Tenant,
        caller: &PhoneNumber,
        counts: Option<CallerCounts>,
    ) -> bool {
        let Some(counts) = counts else {
            return false;
        };
        let now = (counts.total_calls, counts.last_call_at_ms);
        self.contacts
            .revise_here(&keys::caller(&tenant.id, caller), move |held| {
                (now > (held.total_calls, held.last_call_at_ms)).then(|| ContactInfo {
                    crm: held.crm.clone(),
                    total_calls: now.0,
                    last_call_at_ms: now.1,
                })
            })
    }

    /// The caller's complete context when a fresh one is cached.
    pub async fn cached(
        &self,
        tenant: &Tenant,
        caller: &PhoneNumber,
    ) -> Option<Arc<CallerContext>> {
        let l = self
            .contexts
            .get_cached(&keys::caller(&tenant.id, caller))
            .await?;
        l.value.filter(|_| l.outcome == Outcome::HitFresh)
    }

    /// Assembles the context from its parts and caches it when complete.
    async fn assemble_and_keep(
        &self,
        tenant: &Tenant,
        caller: &PhoneNumber,
        key: &str,
    ) -> Arc<CallerContext> {
        let ctx = Arc::new(self.assemble_parts(tenant, caller).await);
        if ctx.missing.is_empty() && ctx.stale.is_empty() {
            // The cache keeps this very context: the call's session shares
            // it, and an answer rendered from it is rendered once. The first
            // caller does not wait for Redis: L2 and the other replicas
            // hear of it in the background (their next read of this caller
            // is a call away; the parts are in L2 already).
            self.contexts.set_in_background(key, ctx.clone());
        }
        ctx
    }

    async fn assemble_parts(&self, tenant: &Tenant, caller: &PhoneNumber) -> CallerContext {
        let up = match self.upstreams.for_tenant(tenant) {
            Ok(up) => up,
            Err(e) => {
                tracing::error!(error = %e, "tenant upstreams are misconfigured");
                Arc::new(TenantUpstreams {
                    crm: None,
                    memory: None,
                    calendar: None,
                    services: Vec::new(),
                })
            }
        };
        let key = keys::caller(&tenant.id, caller);
        let deadline = self.deadline;

        let contact = {
            let (up, store, tenant, caller) = (
                up.clone(),
                self.store.clone(),
                tenant.clone(),
                caller.clone(),
            );
            tokio::time::timeout(
                deadline,
                self.contacts.get_or_load(&key, move || async move {
                    let crm = async {
                        match &up.crm {
                            Some(crm) => crm
                                .find_contact_by_phone(&caller)
                                .await
                                .map_err(LoadError::new),
                            None => Ok(None),
                        }
                    };
                    let stats = async {
                        store
                            .contact(&tenant.id, &caller)
                            .await
                            .map_err(LoadError::new)
                    };
                    let (crm, stats) = tokio::try_join!(crm, stats)?;
                    Ok(Some(ContactInfo {
                        crm,
                        total_calls: stats.as_ref().map_or(0, |s| s.total_calls),
                        last_call_at_ms: stats.and_then(|s| s.last_call_at_ms),
                    }))
                }),
            )
        };

        let first_name_hint = None;
        let memory = async {
            let Some(mem) = up.memory.clone() else {
                return Ok(Ok(Lookup {
                    value: None,
                    tier: crate::cache::Tier::Loader,
                    outcome: Outcome::Miss,
                    age_ms: 0,
                }));
            };
            let subject = MemorySubject::for_caller(&tenant.id, caller, first_name_hint);
            tokio::time::timeout(
                deadline,
                self.memory.get_or_load(&key, move || async move {
                    mem.get_context(&subject).await.map_err(LoadError::new)
                }),
            )
            .await
        };

        let slots = async {
            let (Some(cal), Some(service)) = (up.calendar.clone(), up.services.first().cloned())
            else {
                return Ok(Ok(Lookup {
                    value: None,
                    tier: crate::cache::Tier::Loader,
                    outcome: Outcome::Miss,
                    age_ms: 0,
                }));
            };
            let tz = tenant.time_zone;
            let today = Utc::now().with_timezone(&tz).date_naive();
            let slot_key = format!("{}:{}:next:{}", tenant.id, service.id, today);
            tokio::time::timeout(
                deadline,
                self.slots.get_or_load(&slot_key, move || async move {
                    let from = Utc::now();
                    let to = from + ChronoDuration::days(SLOT_HORIZON_DAYS);
                    let mut slots = cal
                        .free_slots(&service, from, to, tz)
                        .await
                        .map_err(LoadError::new)?;
                    slots.truncate(NEXT_SLOTS);
                    Ok(Some(slots))
                }),
            )
            .await
        };

        let (contact, memory, slots) = tokio::join!(contact, memory, slots);
        let mut missing = Vec::new();
        let mut stale = Vec::new();
        let mut note = |name: &str, missing_part: bool, was_stale: bool| {
            if missing_part {
                missing.push(name.to_owned());
            }
            if was_stale {
                stale.push(name.to_owned());
            }
        };
        let contact = match part("contact", contact) {
            Part::Value(v, s) => {
                note("contact", false, s);
                v
            }
            Part::Missing => {
                note("contact", true, false);
                None
            }
        };
        let memory = match part("memory", memory) {
            Part::Value(v, s) => {
                note("memory", false, s);
                v
            }
            Part::Missing => {
                note("memory", true, false);
                None
            }
        };
        let slots = match part("slots", slots) {
            Part::Value(v, s) => {
                note("slots", false, s);
                v
            }
            Part::Missing => {
                note("slots", true, false);
                None
            }
        };

        let crm = contact.as_ref().and_then(|c| c.crm.clone());
        let total_calls = contact.as_ref().map_or(0, |c| c.total_calls);
        CallerContext {
            tenant_id: tenant.id.to_string(),
            business_name: tenant.name.clone(),
            time_zone: tenant.time_zone,
            customer_name: crm.as_ref().and_then(Contact::display_name),
            crm_contact_id: crm.as_ref().map(|c| c.id.clone()),
            returning_caller: total_calls > 0 || crm.is_some(),
            total_calls,
            last_call_at_ms: contact.as_ref().and_then(|c| c.last_call_at_ms),
            memory_summary: memory.map(|m| m.summary.clone()),
            next_slots: slots.unwrap_or_default(),
            missing,
            stale,
            rendered: Rendered::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_rendered_once_per_context_version_and_a_copy_starts_over() {
        let ctx = CallerContext::nobody();
        let renders = std::cell::Cell::new(0);
        let render = |_: &CallerContext| {
            renders.set(renders.get() + 1);
            bytes::Bytes::from_static(b"{}")
        };
        for _ in 0..3 {
            assert_eq!(ctx.rendered(Rendering(0), render), "{}");
        }
        assert_eq!(renders.get(), 1, "kept after the first render");
        ctx.rendered(Rendering(1), render);
        assert_eq!(renders.get(), 2, "each answer has its own slot");
        let copy = ctx.clone();
        assert_eq!(copy, ctx, "what was rendered is no part of the value");
        copy.rendered(Rendering(0), render);
        assert_eq!(renders.get(), 3, "a copy (a new version) renders again");
        ctx.rendered(Rendering(Rendered::SLOTS), render);
        assert_eq!(renders.get(), 4, "an unknown slot renders every time");
    }
}
