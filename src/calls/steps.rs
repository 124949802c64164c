//! A call's steps for its detail page: the context the agent was answered
//! with, and every tool call with its arguments, answer and latency.
//!
//! A step is handed to the write-behind *beside* the answer, in a task of
//! its own: the platform never waits for the record (the write-behind makes
//! it durable, in the database or the spill journal). A step needs its
//! call's id, and is recorded only on a call the request may act for: a
//! request signed for one tenant never writes onto another tenant's call.

use std::time::Duration;

use tracing::Instrument;

use super::{CallSession, Calls, Durability, Outcome};
use crate::cache::keys;
use crate::domain::{CallId, Provider, TenantId, ToolCall};
use crate::store::{CallStep, ContextAnswered, StepKind};
use crate::writebehind::Job;

const STEPS_TOTAL: &str = "warmline_call_steps_total";
const KINDS: [&str; 2] = ["context", "tool"];
const OUTCOMES: [&str; 5] = ["recorded", "spilled", "parked", "lost", "shed"];
/// Steps that may wait for the write-behind at once. A step is the admin's
/// record of a call, not an acknowledged event: past this many, new steps
/// are shed (and counted) rather than kept in memory without bound.
pub(super) const MAX_WAITING: usize = 10_000;

/// Makes the step counter's label values exist at 0.
pub(super) fn register_metrics() {
    for kind in KINDS {
        for outcome in OUTCOMES {
            metrics::counter!(STEPS_TOTAL, "kind" => kind, "outcome" => outcome).increment(0);
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn new_key() -> String {
    format!("call_step:{}", uuid::Uuid::new_v4().simple())
}

/// What the agent was told, from the session's context.
fn answered(session: &CallSession) -> ContextAnswered {
    let ctx = &session.context;
    ContextAnswered {
        caller_withheld: session.caller.is_none(),
        customer_name: ctx.customer_name.clone(),
        returning_caller: ctx.returning_caller,
        total_calls: ctx.total_calls,
        memory_summary: ctx
            .memory_summary
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty()),
        slots_offered: ctx.slots_spoken(),
        missing: ctx.missing.clone(),
        stale: ctx.stale.clone(),
    }
}

impl Calls {
    /// Records the context `session` answered (at `at_ms`, in `latency`),
    /// when its call's id is known. `source`: `inbound`, `call_started` or
    /// `fallback`.
    pub(super) fn record_context(
        &self,
        session: &CallSession,
        source: &str,
        at_ms: i64,
        latency: Duration,
    ) {
        let Some(call_id) = session.call_id.clone() else {
            return;
        };
        let step = CallStep {
            key: new_key(),
            provider: session.provider,
            call_id,
            at_ms,
            latency_ms: millis(latency),
            what: StepKind::Context {
                source: source.to_owned(),
                answered: answered(session),
            },
        };
        self.record(step, None);
    }

    /// Records a tool call and its answer. `ran_in`: the session it ran in
    /// (its call is the request's, checked by the cascade); without one the
    /// call the request named is used, once it is known to be in scope.
    pub(super) fn record_tool(
        &self,
        tc: &ToolCall,
        ran_in: Option<&CallSession>,
        at_ms: i64,
        latency: Duration,
        result: &Result<String, String>,
    ) {
        let (provider, call_id, unchecked) = match ran_in {
            Some(s) => (s.provider, s.call_id.clone(), None),
            None => (tc.provider, tc.call_id.clone(), tc.tenant_scope.clone()),
        };
        let Some(call_id) = call_id else {
            return;
        };
        let (ok, answer) = match result {
            Ok(a) => (true, a.clone()),
            Err(e) => (false, e.clone()),
        };
        let arguments = (!tc.arguments.is_null()).then(|| tc.arguments.to_string());
        let step = CallStep {
            key: new_key(),
            provider,
            call_id,
            at_ms,
            latency_ms: millis(latency),
            what: StepKind::Tool {
                tool: tc.name().to_owned(),
                arguments,
                answer,
                ok,
            },
        };
        self.record(step, unchecked);
    }

    /// Whether `call_id` belongs to `scope`'s tenant, as far as warmline
    /// knows (its cached session, else the call log).
    async fn call_in_scope(&self, provider: Provider, call_id: &CallId, scope: &TenantId) -> bool {
        if let Some(hit) = self
            .sessions
            .get_cached(&keys::session(provider, call_id))
            .await
            && let Some(session) = hit.value
        {
            return &session.tenant.id == scope;
        }
        matches!(
            self.store.call(provider, call_id).await,
            Ok(Some(record)) if record.tenant_id.as_ref() == Some(scope)
        )
    }

    /// Hands `step` to the write-behind in a task of its own. `scope`: the
    /// tenant the request was signed for, when its call is still to be
    /// checked against it.
    fn record(&self, mut step: CallStep, scope: Option<TenantId>) {
        let kind = step.what.kind();
        let Ok(permit) = self.step_backlog.clone().try_acquire_owned() else {
            metrics::counter!(STEPS_TOTAL, "kind" => kind, "outcome" => "shed").increment(1);
            return;
        };
        step.bound();
        let calls = self.clone();
        let span = tracing::info_span!("calls.record_step", kind);
        tokio::spawn(
            async move {
                if let Some(scope) = scope
                    && !calls
                        .call_in_scope(step.provider, &step.call_id, &scope)
                        .await
                {
                    tracing::debug!("tool call names a call outside its tenant; not recorded");
                    return;
                }
                let job = Job::CallStep {
                    step: Box::new(step),
                };
                let outcome = match calls.writebehind.submit(job).await {
                    Ok((_, Outcome::Rejected)) => "parked",
                    Ok((Durability::SpillJournal, _)) => "spilled",
                    Ok((Durability::Database, _)) => "recorded",
                    Err(e) => {
                        tracing::warn!(error = %e, kind, "could not record a call step");
                        "lost"
                    }
                };
                metrics::counter!(STEPS_TOTAL, "kind" => kind, "outcome" => outcome).increment(1);
                drop(permit);
            }
            .instrument(span),
        );
    }
}
