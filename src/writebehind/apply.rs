//! What each job does to the database, inside the batch's transaction.

use chrono::TimeZone;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::{CallEvent, CallId, CallPhase, PhoneNumber, Provider, TenantId};
use crate::store::tx::{
    add_call_fallback_in, add_daily_in, enqueue_in, insert_appointment_in, record_applied_in,
    record_contact_call_in, upsert_call_in,
};
use crate::store::{
    CallStatus, CallUpdate, Conn, DailyDelta, NewAppointment, NewOutboxItem, StoreError, now_ms,
};

/// Outbox kinds of the write-back to upstreams, run after the event.
pub const CRM_WRITEBACK: &str = "crm_writeback";
pub const MEMORY_WRITEBACK: &str = "memory_writeback";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppointmentJob {
    pub id: String,
    pub tenant_id: TenantId,
    pub provider: Option<Provider>,
    pub call_id: Option<CallId>,
    pub contact_phone: PhoneNumber,
    pub service: Option<String>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
}

/// Acknowledged work. Every job has an idempotency key; applying it twice
/// changes nothing the second time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    CallEvent {
        event: Box<CallEvent>,
        /// The tenant answering the called number, when known.
        tenant_id: Option<TenantId>,
        /// Its time zone: daily metrics count by the tenant's calendar day.
        time_zone: Option<String>,
    },
    Appointment {
        appointment: AppointmentJob,
        time_zone: String,
    },
    Fallback {
        /// Unique per activation (each one counts).
        key: String,
        provider: Provider,
        call_id: Option<CallId>,
        kind: String,
        detail: Option<String>,
        tenant_id: Option<TenantId>,
        time_zone: Option<String>,
    },
}

/// What applying a job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Applied,
    /// Seen before: a retry, nothing changed.
    Duplicate,
    /// The call ended with this event (it was counted).
    CallEnded,
    Spilled,
    Rejected,
}

impl Job {
    pub fn key(&self) -> String {
        match self {
            Job::CallEvent { event, .. } => event.idempotency_key(),
            Job::Appointment { appointment, .. } => format!("appointment:{}", appointment.id),
            Job::Fallback { key, .. } => key.clone(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Job::CallEvent { .. } => "call_event",
            Job::Appointment { .. } => "appointment",
            Job::Fallback { .. } => "fallback",
        }
    }
}

/// `YYYY-MM-DD` of `at_ms` in `tz` (UTC when unknown).
fn day(at_ms: i64, tz: Option<&str>) -> String {
    let tz: Tz = tz.and_then(|t| t.parse().ok()).unwrap_or(Tz::UTC);
    tz.timestamp_millis_opt(at_ms)
        .single()
        .map(|t| t.date_naive().to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

pub async fn apply(conn: &mut Conn, job: &Job) -> Result<Outcome, StoreError> {
    let trace = match job {
        Job::CallEvent { event, .. } => event.trace_id.as_deref(),
        _ => None,
    };
    if !record_applied_in(conn, job.kind(), &job.key(), trace).await? {
        return Ok(Outcome::Duplicate);
    }
    match job {
        Job::CallEvent {
            event,
            tenant_id,
            time_zone,
        } => apply_call_event(conn, event, tenant_id.as_ref(), time_zone.as_deref()).await,
        Job::Appointment {
            appointment: a,
            time_zone,
        } => {
            let new = insert_appointment_in(
                conn,
                &NewAppointment {
                    id: a.id.clone(),
                    tenant_id: a.tenant_id.clone(),
                    provider: a.provider,
                    call_id: a.call_id.clone(),
                    contact_phone: a.contact_phone.clone(),
                    service: a.service.clone(),
                    starts_at_ms: a.starts_at_ms,
                    ends_at_ms: a.ends_at_ms,
                },
            )
            .await?;
            if new {
                // A booking counts on the day it was made.
                let delta = DailyDelta {
                    bookings: 1,
                    ..DailyDelta::default()
                };
                add_daily_in(conn, &a.tenant_id, &day(now_ms(), Some(time_zone)), delta).await?;
            }
            Ok(Outcome::Applied)
        }
        Job::Fallback {
            provider,
            call_id,
            kind,
            detail,
            tenant_id,
            time_zone,
            ..
        } => {
            if let Some(call_id) = call_id {
                add_call_fallback_in(conn, *provider, call_id, kind, detail.as_deref()).await?;
            }
            if let Some(t) = tenant_id {
                let delta = DailyDelta {
                    fallbacks: 1,
                    ..DailyDelta::default()
                };
                add_daily_in(conn, t, &day(now_ms(), time_zone.as_deref()), delta).await?;
            }
            Ok(Outcome::Applied)
        }
    }
}

async fn apply_call_event(
    conn: &mut Conn,
    e: &CallEvent,
    tenant: Option<&TenantId>,
    tz: Option<&str>,
) -> Result<Outcome, StoreError> {
    let status = match e.phase {
        CallPhase::Started => CallStatus::Ongoing,
        CallPhase::Ended => CallStatus::Ended,
        CallPhase::Analyzed => CallStatus::Analyzed,
    };
    let mut u = CallUpdate::new(e.provider, e.call_id.clone(), status);
    u.tenant_id = tenant.cloned();
    u.from_number = e.caller.clone();
    u.to_number = e.called.clone();
    u.direction = e.direction.clone();
    u.started_at_ms = e.started_at_ms;
    u.ended_at_ms = e
        .ended_at_ms
        .or_else(|| (e.phase != CallPhase::Started).then(now_ms));
    u.duration_ms = e
        .duration_ms
        .or_else(|| match (e.started_at_ms, e.ended_at_ms) {
            (Some(s), Some(end)) if end >= s => Some(end - s),
            _ => None,
        });
    u.disconnection_reason = e.disconnection_reason.clone();
    u.transcript = e.transcript.clone();
    u.summary = e.summary.clone();
    u.successful = e.successful;
    u.sentiment = e.sentiment.clone();
    u.analysis = e.analysis.clone();
    u.trace_id = e.trace_id.clone();
    let upsert = upsert_call_in(conn, &u).await?;
    if !upsert.newly_ended {
        return Ok(Outcome::Applied);
    }

    // The call ended with this event: count it exactly once.
    let (Some(tenant), Some(caller)) = (tenant, &e.caller) else {
        return Ok(Outcome::CallEnded);
    };
    let at = e.started_at_ms.or(u.ended_at_ms).unwrap_or_else(now_ms);
    record_contact_call_in(conn, tenant, caller, at).await?;
    let delta = DailyDelta {
        calls: 1,
        duration_ms: u.duration_ms.unwrap_or(0),
        ..DailyDelta::default()
    };
    add_daily_in(conn, tenant, &day(at, tz), delta).await?;

    // Write-back to the CRM and memory runs after, with retries.
    let base = serde_json::json!({
        "tenant_id": tenant, "caller": caller, "provider": e.provider, "call_id": e.call_id,
    });
    enqueue_in(
        conn,
        &NewOutboxItem {
            kind: CRM_WRITEBACK.into(),
            idempotency_key: format!("{CRM_WRITEBACK}:{}", e.idempotency_key()),
            payload: base.clone(),
            trace_id: e.trace_id.clone(),
        },
    )
    .await?;
    if !e.messages.is_empty() {
        let mut payload = base;
        payload["messages"] = serde_json::to_value(&e.messages).unwrap_or_default();
        enqueue_in(
            conn,
            &NewOutboxItem {
                kind: MEMORY_WRITEBACK.into(),
                idempotency_key: format!("{MEMORY_WRITEBACK}:{}", e.idempotency_key()),
                payload,
                trace_id: e.trace_id.clone(),
            },
        )
        .await?;
    }
    Ok(Outcome::CallEnded)
}
