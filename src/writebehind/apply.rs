//! What each job does to the database, inside the batch's transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::TimeZone;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::{
    CallEvent, CallId, CallPhase, Channel, Direction, PhoneNumber, Provider, TenantId,
    TranscriptLine, WriteBack,
};
use crate::store::tx::{
    add_call_fallback_in, add_daily_in, call_direction_in, call_parties_in, end_calls_in,
    enqueue_writebacks_in, insert_appointment_in, insert_call_steps_in, insert_message_in,
    record_applied_many_in, record_many_contact_calls_in, tenant_for_number_in, upsert_calls_in,
};
use crate::store::{
    CallStatus, CallStep, CallUpdate, CallerCounts, Conn, ContactCalls, CountsAfter, DailyDelta,
    NewAppointment, NewMessage, StoreError,
};
use crate::support::now_ms;

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
        time_zone: Option<Tz>,
    },
    Appointment {
        appointment: NewAppointment,
        time_zone: Tz,
    },
    Fallback {
        /// Unique per activation (each one counts).
        key: String,
        provider: Provider,
        call_id: Option<CallId>,
        kind: String,
        detail: Option<String>,
        tenant_id: Option<TenantId>,
        time_zone: Option<Tz>,
    },
    /// A step of a call for its detail page (the context answered, a tool
    /// call), recorded beside the answer, never before it.
    CallStep { step: Box<CallStep> },
    /// A message a bot appended to a customer's conversation; the memory
    /// service learns it through the write-back.
    Message { message: Box<NewMessage> },
}

/// What applying a job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Applied,
    /// Seen before: a retry, nothing changed.
    Duplicate,
    /// The call ended with this event (it was counted): the caller's
    /// counts as this batch left them, when it had a tenant and a caller.
    CallEnded(Option<CallerCounts>),
    Spilled,
    Rejected,
}

impl Job {
    pub fn key(&self) -> String {
        match self {
            Job::CallEvent { event, .. } => event.idempotency_key(),
            Job::Appointment { appointment, .. } => format!("appointment:{}", appointment.id),
            Job::Fallback { key, .. } => key.clone(),
            Job::CallStep { step } => step.key.clone(),
            Job::Message { message } => message.key.clone(),
        }
    }

    /// Removes what a backend refuses to store although a provider may
    /// legitimately send it: NUL characters (Postgres text and jsonb cannot
    /// hold `\u0000`) become U+FFFD.
    pub fn sanitize(&mut self) {
        match self {
            Job::CallEvent { event, .. } => {
                let d = &mut event.details;
                for s in [
                    &mut d.direction,
                    &mut d.disconnection_reason,
                    &mut d.transcript,
                    &mut d.summary,
                    &mut d.sentiment,
                    &mut d.trace_id,
                ]
                .into_iter()
                .flatten()
                {
                    strip_nul(s);
                }
                if let Some(a) = &mut d.analysis {
                    strip_nul_in(a);
                }
                strip_nul(&mut event.event);
                for line in &mut event.messages {
                    strip_nul(&mut line.role);
                    strip_nul(&mut line.content);
                }
            }
            Job::Appointment { appointment, .. } => {
                if let Some(s) = &mut appointment.service {
                    strip_nul(s);
                }
            }
            Job::Fallback { kind, detail, .. } => {
                strip_nul(kind);
                if let Some(d) = detail {
                    strip_nul(d);
                }
            }
            Job::CallStep { step } => {
                step.texts_mut().into_iter().for_each(strip_nul);
                // A journal written by hand or by another version is held
                // to the same bounds as a live step.
                step.bound();
            }
            Job::Message { message } => {
                strip_nul(&mut message.role);
                strip_nul(&mut message.text);
                if let Some(i) = &mut message.instance {
                    strip_nul(i);
                }
            }
        }
    }

    /// The trace of the request that acknowledged it, when it says.
    fn trace_id(&self) -> Option<&str> {
        match self {
            Job::CallEvent { event, .. } => event.details.trace_id.as_deref(),
            _ => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Job::CallEvent { .. } => "call_event",
            Job::Appointment { .. } => "appointment",
            Job::Fallback { .. } => "fallback",
            Job::CallStep { .. } => "call_step",
            Job::Message { .. } => "message",
        }
    }
}

fn strip_nul(s: &mut String) {
    if s.contains('\0') {
        *s = s.replace('\0', "\u{FFFD}");
    }
}

fn strip_nul_in(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => strip_nul(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nul_in),
        serde_json::Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), v))
                    .collect();
            }
            map.values_mut().for_each(strip_nul_in);
        }
        _ => {}
    }
}

/// `YYYY-MM-DD` of `at_ms` in `tz` (UTC when unknown).
fn day(at_ms: i64, tz: Option<Tz>) -> String {
    tz.unwrap_or(Tz::UTC)
        .timestamp_millis_opt(at_ms)
        .single()
        .map(|t| t.date_naive().to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

/// The counters a batch adds to rows that every batch touches (a tenant's
/// day, a caller's call counts): summed while the batch's jobs are applied,
/// written once each at the end, in key order. Concurrent batches then hold
/// those rows only for their last statements, always taken in the same order.
///
/// It also gathers the batch's write-backs (job, key, trace id), queued
/// together in one statement.
#[derive(Debug, Default)]
struct Tally {
    days: BTreeMap<(TenantId, String, Direction), DailyDelta>,
    contacts: BTreeMap<(TenantId, PhoneNumber), ContactCalls>,
    writebacks: Vec<(WriteBack, String, Option<String>)>,
    /// The jobs that ended a call, by position, and whose counts they changed.
    ended: Vec<(usize, TenantId, PhoneNumber)>,
}

impl Tally {
    fn day(&mut self, tenant: &TenantId, day: String, direction: Direction, d: DailyDelta) {
        let sum = self
            .days
            .entry((tenant.clone(), day, direction))
            .or_default();
        sum.calls += d.calls;
        sum.bookings += d.bookings;
        sum.fallbacks += d.fallbacks;
        sum.duration_ms += d.duration_ms;
    }

    fn contact_call(&mut self, tenant: &TenantId, caller: &PhoneNumber, c: ContactCalls) {
        self.contacts
            .entry((tenant.clone(), caller.clone()))
            .and_modify(|sum| sum.add(&c))
            .or_insert(c);
    }

    fn write_back(&mut self, job: WriteBack, key: String, trace: Option<&str>) {
        self.writebacks.push((job, key, trace.map(str::to_owned)));
    }

    /// Queues the write-backs, then writes the sums: callers first, then
    /// days, each in key order. Each job that ended a call gets its
    /// caller's counts as they now are.
    async fn write(self, conn: &mut Conn, outcomes: &mut [Outcome]) -> Result<(), StoreError> {
        let writebacks: Vec<(&WriteBack, &str, Option<&str>)> = self
            .writebacks
            .iter()
            .map(|(job, key, trace)| (job, key.as_str(), trace.as_deref()))
            .collect();
        enqueue_writebacks_in(conn, &writebacks).await?;
        let contacts: Vec<(&TenantId, &PhoneNumber, &ContactCalls)> = self
            .contacts
            .iter()
            .map(|((tenant, caller), c)| (tenant, caller, c))
            .collect();
        let after: CountsAfter = record_many_contact_calls_in(conn, &contacts).await?;
        for (at, tenant, caller) in self.ended {
            let key = (tenant.as_str().to_owned(), caller.as_str().to_owned());
            outcomes[at] = Outcome::CallEnded(after.get(&key).copied());
        }
        for ((tenant, day, direction), d) in self.days {
            add_daily_in(conn, &tenant, &day, direction, d).await?;
        }
        Ok(())
    }
}

/// Applies `jobs` in the caller's transaction: their keys recorded in the
/// ledger together, then each new one's effects (call events and call steps
/// many per statement, the rarer kinds one by one), then the batch's tally.
pub async fn apply_all(conn: &mut Conn, jobs: &[&Job]) -> Result<Vec<Outcome>, StoreError> {
    let keys: Vec<String> = jobs.iter().map(|j| j.key()).collect();
    let mut distinct = HashSet::with_capacity(jobs.len());
    let rows: Vec<(&str, &str, Option<&str>)> = jobs
        .iter()
        .zip(&keys)
        .filter(|(_, key)| distinct.insert(key.as_str()))
        .map(|(job, key)| (job.kind(), key.as_str(), job.trace_id()))
        .collect();
    let mut fresh = record_applied_many_in(conn, &rows).await?;
    // A key twice in one batch is applied once, the first time.
    let mut outcomes = vec![Outcome::Duplicate; jobs.len()];
    let (mut events, mut steps, mut others) = (Vec::new(), Vec::new(), Vec::new());
    for (at, (job, key)) in jobs.iter().zip(&keys).enumerate() {
        if !fresh.remove(key) {
            continue;
        }
        match job {
            Job::CallEvent {
                event,
                tenant_id,
                time_zone,
            } => events.push(EventJob {
                at,
                event,
                tenant_id: tenant_id.as_ref(),
                time_zone: *time_zone,
            }),
            Job::CallStep { step } => steps.push((at, &**step)),
            _ => others.push((at, *job)),
        }
    }
    let mut tally = Tally::default();
    apply_call_events(conn, &events, &mut tally, &mut outcomes).await?;
    let step_rows: Vec<&CallStep> = steps.iter().map(|(_, step)| *step).collect();
    let stored = insert_call_steps_in(conn, &step_rows).await?;
    for (at, step) in steps {
        // Keyed in its own table too: the ledger forgets after its
        // retention, a step replayed later must still be stored once.
        outcomes[at] = if stored.contains(&step.key) {
            Outcome::Applied
        } else {
            Outcome::Duplicate
        };
    }
    for (at, job) in others {
        if let Some(outcome) = apply(conn, job, &mut tally).await? {
            outcomes[at] = outcome;
        }
    }
    tally.write(conn, &mut outcomes).await?;
    Ok(outcomes)
}

/// The effects of a job of the rarer kinds, its key already recorded as new;
/// `None` for a call event or a call step, which a batch applies many at a
/// time instead (see [`apply_all`]).
async fn apply(
    conn: &mut Conn,
    job: &Job,
    tally: &mut Tally,
) -> Result<Option<Outcome>, StoreError> {
    match job {
        Job::CallEvent { .. } | Job::CallStep { .. } => Ok(None),
        Job::Appointment {
            appointment: a,
            time_zone,
        } => {
            let new = insert_appointment_in(conn, a).await?;
            if new {
                // A booking counts on the day it was made.
                let delta = DailyDelta {
                    bookings: 1,
                    ..DailyDelta::default()
                };
                let direction = match (a.provider, &a.call_id) {
                    (Some(p), Some(id)) => call_direction_in(conn, p, id).await?,
                    _ => Direction::Inbound,
                };
                tally.day(
                    &a.tenant_id,
                    day(now_ms(), Some(*time_zone)),
                    direction,
                    delta,
                );
            }
            Ok(Some(Outcome::Applied))
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
                let direction = match call_id {
                    Some(id) => call_direction_in(conn, *provider, id).await?,
                    None => Direction::Inbound,
                };
                tally.day(t, day(now_ms(), *time_zone), direction, delta);
            }
            Ok(Some(Outcome::Applied))
        }
        Job::Message { message: m } => {
            // Keyed in its own table too, like a call step.
            if !insert_message_in(conn, m).await? {
                return Ok(Some(Outcome::Duplicate));
            }
            // The worker skips it when the tenant has no memory service.
            let job = WriteBack::Memory {
                tenant_id: m.tenant_id.clone(),
                caller: m.caller.clone(),
                messages: vec![TranscriptLine {
                    role: m.role.clone(),
                    content: m.text.clone(),
                }],
            };
            let key = format!("{}:{}", job.kind(), m.key);
            tally.write_back(job, key, None);
            Ok(Some(Outcome::Applied))
        }
    }
}

/// A call event to apply: where its outcome goes, and its tenant as the
/// acknowledgement knew it.
struct EventJob<'a> {
    at: usize,
    event: &'a CallEvent,
    tenant_id: Option<&'a TenantId>,
    time_zone: Option<Tz>,
}

/// A call event ready to merge: its tenant settled, its update built.
struct Merge<'a> {
    at: usize,
    event: &'a CallEvent,
    tenant: Option<TenantId>,
    tz: Option<Tz>,
    update: CallUpdate,
}

/// Merges `events` into the call log in rounds (one event of each call per
/// round, in the order they came), each round's calls in key order and in
/// two statements; then counts each call that one of them ended.
async fn apply_call_events(
    conn: &mut Conn,
    events: &[EventJob<'_>],
    tally: &mut Tally,
    outcomes: &mut [Outcome],
) -> Result<(), StoreError> {
    let mut rounds: Vec<Vec<Merge>> = Vec::new();
    let mut seen: HashMap<(Provider, &CallId), usize> = HashMap::with_capacity(events.len());
    for e in events {
        // Acknowledged while the tenant could not be looked up (the
        // database was down, nothing cached): look again now, so the
        // call still counts for its tenant and gets its write-back.
        let found = match (e.tenant_id, &e.event.details.called) {
            (None, Some(called)) => tenant_for_number_in(conn, called).await?,
            _ => None,
        };
        let (tenant, tz) = match found {
            Some((id, tz)) => (Some(id), tz.parse::<Tz>().ok()),
            None => (e.tenant_id.cloned(), e.time_zone),
        };
        let round = seen
            .entry((e.event.provider, &e.event.call_id))
            .and_modify(|n| *n += 1)
            .or_insert(0);
        if rounds.len() <= *round {
            rounds.push(Vec::new());
        }
        rounds[*round].push(Merge {
            at: e.at,
            event: e.event,
            update: call_update(e.event, tenant.clone()),
            tenant,
            tz,
        });
    }
    for mut round in rounds {
        // Rows locked in one order: concurrent batches do not deadlock.
        round.sort_by(|a, b| {
            (a.update.provider.as_str(), a.update.call_id.as_str())
                .cmp(&(b.update.provider.as_str(), b.update.call_id.as_str()))
        });
        let updates: Vec<&CallUpdate> = round.iter().map(|m| &m.update).collect();
        upsert_calls_in(conn, &updates).await?;
        let ends: Vec<(Provider, &CallId, i64)> = round
            .iter()
            .filter_map(|m| {
                let u = &m.update;
                u.details.ended_at_ms.map(|at| (u.provider, &u.call_id, at))
            })
            .collect();
        let ended = if ends.is_empty() {
            HashSet::new()
        } else {
            end_calls_in(conn, &ends).await?
        };
        for m in &round {
            let u = &m.update;
            let key = (
                u.provider.as_str().to_owned(),
                u.call_id.as_str().to_owned(),
            );
            outcomes[m.at] = if u.details.ended_at_ms.is_some() && ended.contains(&key) {
                call_ended(conn, m, tally).await?
            } else {
                Outcome::Applied
            };
        }
    }
    Ok(())
}

/// What `e` says about its call; an end without a time ends now.
fn call_update(e: &CallEvent, tenant: Option<TenantId>) -> CallUpdate {
    let status = match e.phase {
        CallPhase::Started => CallStatus::Ongoing,
        CallPhase::Ended => CallStatus::Ended,
        CallPhase::Analyzed => CallStatus::Analyzed,
    };
    let mut details = e.details.clone();
    if details.ended_at_ms.is_none() && e.phase != CallPhase::Started {
        details.ended_at_ms = Some(now_ms());
    }
    if details.duration_ms.is_none()
        && let (Some(s), Some(end)) = (e.details.started_at_ms, e.details.ended_at_ms)
        && end >= s
    {
        details.duration_ms = Some(end - s);
    }
    CallUpdate {
        provider: e.provider,
        call_id: e.call_id.clone(),
        status,
        tenant_id: tenant,
        details,
    }
}

/// The call ended with this event: count it exactly once, and queue its
/// write-backs to the CRM and memory (run after, with retries).
async fn call_ended(
    conn: &mut Conn,
    m: &Merge<'_>,
    tally: &mut Tally,
) -> Result<Outcome, StoreError> {
    let (e, u) = (m.event, &m.update);
    if e.details.channel == Some(Channel::Chat) {
        return chat_ended(conn, e, tally).await;
    }
    let (Some(tenant), Some(caller)) = (&m.tenant, &e.details.caller) else {
        return Ok(Outcome::CallEnded(None));
    };
    let at = e
        .details
        .started_at_ms
        .or(u.details.ended_at_ms)
        .unwrap_or_else(now_ms);
    // The direction as stored: an event that did not say keeps the one an
    // earlier event of the call gave.
    let direction = match &e.details.direction {
        Some(d) => Direction::of(Some(d)),
        None => call_direction_in(conn, e.provider, &e.call_id).await?,
    };
    tally.contact_call(tenant, caller, ContactCalls::one(at, direction));
    tally.ended.push((m.at, tenant.clone(), caller.clone()));
    let delta = DailyDelta {
        calls: 1,
        duration_ms: u.details.duration_ms.unwrap_or(0),
        ..DailyDelta::default()
    };
    tally.day(tenant, day(at, m.tz), direction, delta);

    let trace = e.details.trace_id.as_deref();
    let mut jobs = vec![WriteBack::Crm {
        tenant_id: tenant.clone(),
        caller: caller.clone(),
    }];
    if !e.messages.is_empty() {
        jobs.push(WriteBack::Memory {
            tenant_id: tenant.clone(),
            caller: caller.clone(),
            messages: e.messages.clone(),
        });
    }
    for job in jobs {
        let key = format!("{}:{}", job.kind(), e.idempotency_key());
        tally.write_back(job, key, trace);
    }
    // The caller's counts follow once the tally is written.
    Ok(Outcome::CallEnded(None))
}

/// A chat ended: not a call in the contact's or the day's counts, but its
/// messages go to the memory service like a call's transcript, for the
/// tenant and customer its `chat_inbound` logged (the chat's own events
/// carry no numbers).
async fn chat_ended(
    conn: &mut Conn,
    e: &CallEvent,
    tally: &mut Tally,
) -> Result<Outcome, StoreError> {
    let (Some(tenant), Some(caller)) = call_parties_in(conn, e.provider, &e.call_id).await? else {
        return Ok(Outcome::Applied);
    };
    if !e.messages.is_empty() {
        let job = WriteBack::Memory {
            tenant_id: tenant,
            caller,
            messages: e.messages.clone(),
        };
        let key = format!("{}:{}", job.kind(), e.idempotency_key());
        tally.write_back(job, key, e.details.trace_id.as_deref());
    }
    Ok(Outcome::Applied)
}
