//! Merging events into the call log, many calls per statement.
//!
//! Two statements rather than a read-modify-write, so concurrent events for
//! one call need no lock on either backend: an upsert that never moves the
//! status backwards and keeps what an event does not say, then a conditional
//! update of the end time that exactly one writer can win (a second writer
//! waits on the row and then finds it ended). Each takes many calls at once
//! (see [`super::many`]); a batch's events for one call are merged in rounds,
//! one event of each call per round, because one statement cannot change a
//! row twice.

use std::collections::HashSet;

use sqlx::Row;

use super::calls::{CallStatus, CallUpdate, CallUpsert};
use super::{Conn, Result, many, now_ms};
use crate::domain::{CallId, PhoneNumber, Provider, TenantId};

/// `CASE` expression giving a status column its rank, generated from
/// [`CallStatus::rank`] so SQL and Rust cannot disagree.
fn rank_sql(column: &str) -> String {
    let arms: String = CallStatus::ALL
        .iter()
        .map(|s| format!(" WHEN '{}' THEN {}", s.as_str(), s.rank()))
        .collect();
    format!("(CASE {column}{arms} ELSE 0 END)")
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds one row of the upsert, in its column order.
fn bind_update<'q>(
    q: AnyQuery<'q>,
    u: &'q CallUpdate,
    analysis: Option<String>,
    now: i64,
) -> AnyQuery<'q> {
    let d = &u.details;
    q.bind(u.provider.as_str())
        .bind(u.call_id.as_str())
        .bind(u.tenant_id.as_ref().map(TenantId::as_str))
        .bind(d.caller.as_ref().map(PhoneNumber::as_str))
        .bind(d.called.as_ref().map(PhoneNumber::as_str))
        .bind(d.direction.as_deref())
        .bind(u.status.as_str())
        .bind(d.started_at_ms)
        .bind(d.duration_ms)
        .bind(d.disconnection_reason.as_deref())
        .bind(d.transcript.as_deref())
        .bind(d.summary.as_deref())
        .bind(d.successful.map(i64::from))
        .bind(d.sentiment.as_deref())
        .bind(analysis)
        .bind(d.trace_id.as_deref())
        .bind(d.channel.unwrap_or_default().as_str())
        .bind(now)
        .bind(now)
}

/// Merges each update into its call, inserting the calls that are new.
/// At most one update per call.
pub async fn upsert_calls_in(conn: &mut Conn, updates: &[&CallUpdate]) -> Result<()> {
    // A new call that does not say its channel is a voice call; an update
    // that does not say keeps the stored one. The two go in statements of
    // their own.
    let (said, unsaid): (Vec<&CallUpdate>, Vec<&CallUpdate>) =
        updates.iter().partition(|u| u.details.channel.is_some());
    upsert_some_in(conn, &said, "excluded.channel").await?;
    upsert_some_in(conn, &unsaid, "calls.channel").await
}

/// [`upsert_calls_in`] for updates that all say their channel or all do not:
/// `channel` is what an existing call's channel becomes.
async fn upsert_some_in(conn: &mut Conn, updates: &[&CallUpdate], channel: &str) -> Result<()> {
    let now = now_ms();
    for chunk in many::chunks(updates) {
        let sql = format!(
            "INSERT INTO calls (provider, call_id, tenant_id, from_number, to_number, direction, status,
                started_at_ms, duration_ms, disconnection_reason, transcript, summary,
                successful, sentiment, analysis, trace_id, channel, created_at_ms, updated_at_ms)
             VALUES {values}
             ON CONFLICT (provider, call_id) DO UPDATE SET
                tenant_id = COALESCE(excluded.tenant_id, calls.tenant_id),
                from_number = COALESCE(excluded.from_number, calls.from_number),
                to_number = COALESCE(excluded.to_number, calls.to_number),
                direction = COALESCE(excluded.direction, calls.direction),
                status = CASE WHEN {new_rank} >= {old_rank} THEN excluded.status ELSE calls.status END,
                started_at_ms = COALESCE(excluded.started_at_ms, calls.started_at_ms),
                duration_ms = COALESCE(excluded.duration_ms, calls.duration_ms),
                disconnection_reason = COALESCE(excluded.disconnection_reason, calls.disconnection_reason),
                transcript = COALESCE(excluded.transcript, calls.transcript),
                summary = COALESCE(excluded.summary, calls.summary),
                successful = COALESCE(excluded.successful, calls.successful),
                sentiment = COALESCE(excluded.sentiment, calls.sentiment),
                analysis = COALESCE(excluded.analysis, calls.analysis),
                trace_id = COALESCE(calls.trace_id, excluded.trace_id),
                channel = {channel},
                updated_at_ms = excluded.updated_at_ms",
            values = many::values(
                chunk.len(),
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            new_rank = rank_sql("excluded.status"),
            old_rank = rank_sql("calls.status"),
        );
        let mut q = sqlx::query(&sql);
        for u in chunk {
            let analysis = u.details.analysis.as_ref().map(|a| a.to_string());
            q = bind_update(q, u, analysis, now);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Sets the end time of each call that has none; returns the calls ended
/// now, as (provider, call id). At most one entry per call.
pub async fn end_calls_in(
    conn: &mut Conn,
    ends: &[(Provider, &CallId, i64)],
) -> Result<HashSet<(String, String)>> {
    let mut ended = HashSet::new();
    for chunk in many::chunks(ends) {
        let sql = format!(
            "UPDATE calls SET ended_at_ms = v.column3
             FROM (VALUES {}) AS v
             WHERE calls.provider = v.column1 AND calls.call_id = v.column2
               AND calls.ended_at_ms IS NULL
             RETURNING provider, call_id",
            many::values(chunk.len(), "(?, ?, ?)")
        );
        let mut q = sqlx::query(&sql);
        for (provider, call_id, at) in chunk {
            q = q.bind(provider.as_str()).bind(call_id.as_str()).bind(*at);
        }
        for row in q.fetch_all(&mut *conn).await? {
            ended.insert((row.try_get("provider")?, row.try_get("call_id")?));
        }
    }
    Ok(ended)
}

/// Merges one event into the call log.
pub async fn upsert_call_in(conn: &mut Conn, u: &CallUpdate) -> Result<CallUpsert> {
    upsert_calls_in(conn, &[u]).await?;
    let newly_ended = match u.details.ended_at_ms {
        Some(at) => !end_calls_in(conn, &[(u.provider, &u.call_id, at)])
            .await?
            .is_empty(),
        None => false,
    };
    Ok(CallUpsert { newly_ended })
}
