//! The fallback cascade for a tool call whose call is not in the session
//! cache (Retell can send the first function call before `call_started`):
//! the database by call id → the most recent active call from the caller's
//! number → the tenant of the called number. Every step taken is counted in
//! `warmline_fallback_activations_total{kind}` and recorded on the call
//! through the write-behind before the tool answers.

use chrono::Utc;

use super::{CallSession, Calls};
use crate::cache::keys;
use crate::domain::{CallId, Fallback, PhoneNumber, Provider, TenantId, ToolCall};
use crate::tenants::Tenant;
use crate::writebehind::Job;

/// How far back "the most recent active call from this number" may be.
const RECENT_CALL_WINDOW_MS: i64 = 2 * 60 * 60 * 1000;

impl Calls {
    /// The session of the call a tool belongs to; `Err` is what the agent
    /// should say when no step finds it. A request verified for one tenant
    /// (`tc.tenant_scope`) never follows a step to another tenant's call:
    /// such a step is skipped (counted as `call_of_another_tenant`), and the
    /// session found instead is not cached under that other call's id.
    pub(super) async fn resolve_session(&self, tc: &ToolCall) -> Result<CallSession, String> {
        let in_scope = |t: &TenantId| tc.tenant_scope.as_ref().is_none_or(|s| s == t);
        let mut foreign = false;

        if let Some(call_id) = &tc.call_id
            && let Some(hit) = self
                .sessions
                .get_cached(&keys::session(tc.provider, call_id))
                .await
            && let Some(session) = hit.value
        {
            if in_scope(&session.tenant.id) {
                return Ok((*session).clone());
            }
            foreign = true;
        }

        // 1. The database knows the call (it started on another replica, or
        //    its session expired).
        if !foreign
            && let Some(call_id) = &tc.call_id
            && let Ok(Some(record)) = self.store.call(tc.provider, call_id).await
            && let Some(tenant_id) = &record.tenant_id
        {
            if !in_scope(tenant_id) {
                foreign = true;
            } else if let Ok(Some(tenant)) = self.tenants.by_id(tenant_id).await {
                let caller = record.details.caller.clone().or_else(|| tc.caller.clone());
                return Ok(self
                    .fallback_session(
                        tc,
                        tenant.into(),
                        caller,
                        Fallback::CallFromDatabase,
                        "session not cached",
                    )
                    .await);
            }
        }

        // 2. The caller's most recent call that has not ended.
        if let Some(caller) = &tc.caller {
            let since = Utc::now().timestamp_millis() - RECENT_CALL_WINDOW_MS;
            if let Ok(Some(record)) = self.store.latest_active_call_from(caller, since).await
                && let Some(tenant_id) = &record.tenant_id
            {
                if !in_scope(tenant_id) {
                    foreign = true;
                } else if !foreign && let Ok(Some(tenant)) = self.tenants.by_id(tenant_id).await {
                    let detail = format!("matched active call {}", record.call_id);
                    return Ok(self
                        .fallback_session(
                            tc,
                            tenant.into(),
                            Some(caller.clone()),
                            Fallback::CallFromRecentCaller,
                            &detail,
                        )
                        .await);
                }
            }
        }

        // Another tenant's call was named: what follows is resolved without
        // its id, so nothing is cached or recorded under it.
        let own;
        let tc = if foreign {
            Fallback::CallOfAnotherTenant.count();
            tracing::warn!(
                tenant = tc.tenant_scope.as_ref().map(TenantId::as_str),
                "a tool call signed for one tenant named another tenant's call; not followed"
            );
            own = ToolCall {
                call_id: None,
                ..tc.clone()
            };
            &own
        } else {
            tc
        };

        // 3. The tenant answering the called number.
        if let Some(called) = &tc.called
            && let Ok(Some(tenant)) = self.tenants.resolve(called).await
            && in_scope(&tenant.id)
        {
            return Ok(self
                .fallback_session(
                    tc,
                    tenant,
                    tc.caller.clone(),
                    Fallback::TenantDefault,
                    "no call found",
                )
                .await);
        }

        self.count_fallback(
            tc.provider,
            tc.call_id.clone(),
            Fallback::CallUnresolved,
            None,
            None,
        )
        .await;
        Err("I'm sorry, I can't look that up right now.".into())
    }

    async fn fallback_session(
        &self,
        tc: &ToolCall,
        tenant: std::sync::Arc<Tenant>,
        caller: Option<PhoneNumber>,
        kind: Fallback,
        detail: &str,
    ) -> CallSession {
        // The record is made durable while the caller's context is assembled.
        let record = self.count_fallback(
            tc.provider,
            tc.call_id.clone(),
            kind,
            Some(&tenant),
            Some(detail.to_owned()),
        );
        let session = self.new_session(tc.provider, tc.call_id.clone(), tenant.clone(), caller);
        let ((), session) = tokio::join!(record, session);
        if let Some(call_id) = &tc.call_id {
            // The next tool of this call is a cache hit again.
            self.sessions
                .set(&keys::session(tc.provider, call_id), session.clone())
                .await;
        }
        session
    }

    /// Counts a fallback and records it on the call (and in the tenant's
    /// daily metrics); returns once the record is durable — in the database
    /// or the spill journal — so no answer outruns it and a shutdown cannot
    /// lose it. A record that cannot be written is logged; the tool still
    /// answers, as its answer does not depend on the record.
    pub(crate) async fn count_fallback(
        &self,
        provider: Provider,
        call_id: Option<CallId>,
        kind: Fallback,
        tenant: Option<&Tenant>,
        detail: Option<String>,
    ) {
        kind.count();
        tracing::warn!(kind = kind.as_str(), call_id = ?call_id.as_ref().map(CallId::as_str), "fallback taken");
        let job = Job::Fallback {
            key: format!("fallback:{}", uuid::Uuid::new_v4().simple()),
            provider,
            call_id,
            kind: kind.as_str().to_owned(),
            detail,
            tenant_id: tenant.map(|t| t.id.clone()),
            time_zone: tenant.map(|t| t.time_zone),
        };
        if let Err(e) = self.writebehind.submit(job).await {
            tracing::error!(error = %e, kind = kind.as_str(), "could not record a fallback");
        }
    }
}
