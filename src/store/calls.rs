//! The call log: one row per provider call, merged from the events that
//! describe it (started, ended, analyzed), plus the fallback steps taken.

use std::str::FromStr;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Conn, Result, Store, StoreError, now_ms};
use crate::domain::{CallDetails, CallId, Channel, Direction, PhoneNumber, Provider, TenantId};

/// Where a call is in its life. Events can arrive out of order (Retell sends
/// them "in order but not blocking"), so the stored status only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallStatus {
    Registered,
    Ongoing,
    Ended,
    Error,
    Analyzed,
}

impl CallStatus {
    pub const ALL: [CallStatus; 5] = [
        CallStatus::Registered,
        CallStatus::Ongoing,
        CallStatus::Ended,
        CallStatus::Error,
        CallStatus::Analyzed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Registered => "registered",
            CallStatus::Ongoing => "ongoing",
            CallStatus::Ended => "ended",
            CallStatus::Error => "error",
            CallStatus::Analyzed => "analyzed",
        }
    }

    pub(super) fn rank(self) -> u8 {
        match self {
            CallStatus::Registered => 0,
            CallStatus::Ongoing => 1,
            CallStatus::Ended | CallStatus::Error => 2,
            CallStatus::Analyzed => 3,
        }
    }

    pub fn is_active(self) -> bool {
        self.rank() < 2
    }
}

impl FromStr for CallStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        CallStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown call status `{s}`"))
    }
}

/// What one event says about a call; `None` in its details keeps what is
/// stored.
#[derive(Debug, Clone)]
pub struct CallUpdate {
    pub provider: Provider,
    pub call_id: CallId,
    pub status: CallStatus,
    pub tenant_id: Option<TenantId>,
    pub details: CallDetails,
}

impl CallUpdate {
    /// An update that says nothing but the status.
    pub fn new(provider: Provider, call_id: CallId, status: CallStatus) -> Self {
        CallUpdate {
            provider,
            call_id,
            status,
            tenant_id: None,
            details: CallDetails::default(),
        }
    }
}

/// What an upsert changed, so callers count each call exactly once even when
/// the provider retries an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallUpsert {
    /// The call had no end time before this update and has one now.
    pub newly_ended: bool,
}

/// A call as the log keeps it: every event's details merged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CallRecord {
    pub provider: Provider,
    pub call_id: CallId,
    pub tenant_id: Option<TenantId>,
    pub status: CallStatus,
    #[serde(flatten)]
    pub details: CallDetails,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CallFallback {
    pub kind: String,
    pub detail: Option<String>,
    pub at_ms: i64,
}

/// Filters of the admin's call log; every filter is served by an index.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub tenant_id: Option<TenantId>,
    pub from_number: Option<PhoneNumber>,
    pub provider: Option<Provider>,
    pub direction: Option<Direction>,
    pub channel: Option<Channel>,
    pub status: Option<CallStatus>,
    pub outcome: Option<CallOutcome>,
    /// Calls with (or without) an appointment booked.
    pub booked: Option<bool>,
    /// Calls where (or where no) fallback was taken.
    pub fallback_used: Option<bool>,
    /// Words in the call id, summary or transcript (any case).
    pub search: Option<String>,
    pub since_ms: Option<i64>,
    /// Exclusive upper bound on creation time: pass the last row's
    /// `created_at_ms` to page backwards.
    pub before_ms: Option<i64>,
    pub limit: u32,
}

/// A call's outcome as the platform's analysis judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Successful,
    Unsuccessful,
    /// Not (yet) analysed.
    Unknown,
}

impl std::str::FromStr for CallOutcome {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "successful" => Ok(CallOutcome::Successful),
            "unsuccessful" => Ok(CallOutcome::Unsuccessful),
            "unknown" => Ok(CallOutcome::Unknown),
            _ => Err("expected successful, unsuccessful or unknown".into()),
        }
    }
}

/// `LIKE` pattern matching `text` anywhere, its wildcards taken literally
/// (with `ESCAPE '\'`).
fn contains_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

const COLUMNS: &str = "provider, call_id, tenant_id, from_number, to_number, direction, status,
    started_at_ms, ended_at_ms, duration_ms, disconnection_reason, transcript, summary,
    successful, sentiment, analysis, trace_id, created_at_ms, updated_at_ms, channel";

pub(super) fn opt_phone(row: &AnyRow, col: &str) -> Result<Option<PhoneNumber>> {
    let raw: Option<String> = row.try_get(col)?;
    raw.map(|r| PhoneNumber::parse(&r).map_err(|e| StoreError::corrupt("call phone number", e)))
        .transpose()
}

fn from_row(row: &AnyRow) -> Result<CallRecord> {
    let provider: String = row.try_get("provider")?;
    let call_id: String = row.try_get("call_id")?;
    let tenant: Option<String> = row.try_get("tenant_id")?;
    let status: String = row.try_get("status")?;
    let analysis: Option<String> = row.try_get("analysis")?;
    Ok(CallRecord {
        provider: provider
            .parse()
            .map_err(|e: String| StoreError::corrupt("call provider", e))?,
        call_id: CallId::parse(&call_id).map_err(|e| StoreError::corrupt("call id", e))?,
        tenant_id: tenant
            .map(|t| TenantId::parse(&t).map_err(|e| StoreError::corrupt("tenant id", e)))
            .transpose()?,
        status: status
            .parse()
            .map_err(|e: String| StoreError::corrupt("call status", e))?,
        details: CallDetails {
            caller: opt_phone(row, "from_number")?,
            called: opt_phone(row, "to_number")?,
            direction: row.try_get("direction")?,
            channel: Some(
                row.try_get::<String, _>("channel")?
                    .parse()
                    .map_err(|e: String| StoreError::corrupt("call channel", e))?,
            ),
            started_at_ms: row.try_get("started_at_ms")?,
            ended_at_ms: row.try_get("ended_at_ms")?,
            duration_ms: row.try_get("duration_ms")?,
            disconnection_reason: row.try_get("disconnection_reason")?,
            transcript: row.try_get("transcript")?,
            summary: row.try_get("summary")?,
            successful: row.try_get::<Option<i64>, _>("successful")?.map(|v| v != 0),
            sentiment: row.try_get("sentiment")?,
            analysis: analysis
                .map(|a| {
                    serde_json::from_str(&a).map_err(|e| StoreError::corrupt("call analysis", e))
                })
                .transpose()?,
            trace_id: row.try_get("trace_id")?,
        },
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

pub async fn add_call_fallback_in(
    conn: &mut Conn,
    provider: Provider,
    call_id: &CallId,
    kind: &str,
    detail: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO call_fallbacks (provider, call_id, kind, detail, at_ms) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(provider.as_str())
    .bind(call_id.as_str())
    .bind(kind)
    .bind(detail)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

enum Bind {
    Text(String),
    Int(i64),
}

impl Store {
    pub async fn upsert_call(&self, u: &CallUpdate) -> Result<CallUpsert> {
        super::call_merge::upsert_call_in(&mut *self.conn().await?, u).await
    }

    pub async fn add_call_fallback(
        &self,
        provider: Provider,
        call_id: &CallId,
        kind: &str,
        detail: Option<&str>,
    ) -> Result<()> {
        add_call_fallback_in(&mut *self.conn().await?, provider, call_id, kind, detail).await
    }

    pub async fn call(&self, provider: Provider, call_id: &CallId) -> Result<Option<CallRecord>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM calls WHERE provider = $1 AND call_id = $2"
        ))
        .bind(provider.as_str())
        .bind(call_id.as_str())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// The calls with this id, whichever provider made them (ids are the
    /// providers' own, so normally one).
    pub async fn calls_by_id(&self, call_id: &CallId) -> Result<Vec<CallRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM calls WHERE call_id = $1 ORDER BY provider"
        ))
        .bind(call_id.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn call_fallbacks(
        &self,
        provider: Provider,
        call_id: &CallId,
    ) -> Result<Vec<CallFallback>> {
        let rows = sqlx::query(
            "SELECT kind, detail, at_ms FROM call_fallbacks
             WHERE provider = $1 AND call_id = $2 ORDER BY at_ms, kind",
        )
        .bind(provider.as_str())
        .bind(call_id.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CallFallback {
                    kind: r.try_get("kind")?,
                    detail: r.try_get("detail")?,
                    at_ms: r.try_get("at_ms")?,
                })
            })
            .collect()
    }

    /// Newest first, filtered as the admin's call log asks.
    pub async fn list_calls(&self, f: &CallFilter) -> Result<Vec<CallRecord>> {
        let mut clauses: Vec<String> = Vec::new();
        let mut binds = Vec::new();
        // `?` in a clause becomes the next placeholder, bound to `bind`.
        let mut push = |clauses: &mut Vec<String>, clause: &str, bind: Bind| {
            binds.push(bind);
            clauses.push(clause.replace('?', &format!("${}", binds.len())));
        };
        if let Some(t) = &f.tenant_id {
            push(
                &mut clauses,
                "tenant_id = ?",
                Bind::Text(t.as_str().to_owned()),
            );
        }
        if let Some(n) = &f.from_number {
            push(
                &mut clauses,
                "from_number = ?",
                Bind::Text(n.as_str().to_owned()),
            );
        }
        if let Some(p) = f.provider {
            push(
                &mut clauses,
                "provider = ?",
                Bind::Text(p.as_str().to_owned()),
            );
        }
        // As `Direction::of` reads it: only `outbound` is outbound.
        match f.direction {
            Some(Direction::Outbound) => clauses.push("direction = 'outbound'".into()),
            Some(Direction::Inbound) => {
                clauses.push("(direction IS NULL OR direction <> 'outbound')".into())
            }
            None => {}
        }
        if let Some(c) = f.channel {
            push(
                &mut clauses,
                "channel = ?",
                Bind::Text(c.as_str().to_owned()),
            );
        }
        if let Some(s) = f.status {
            push(
                &mut clauses,
                "status = ?",
                Bind::Text(s.as_str().to_owned()),
            );
        }
        match f.outcome {
            Some(CallOutcome::Successful) => push(&mut clauses, "successful = ?", Bind::Int(1)),
            Some(CallOutcome::Unsuccessful) => push(&mut clauses, "successful = ?", Bind::Int(0)),
            Some(CallOutcome::Unknown) => clauses.push("successful IS NULL".into()),
            None => {}
        }
        let exists = |yes: bool, table: &str, extra: &str| {
            format!(
                "{}EXISTS (SELECT 1 FROM {table} x WHERE x.provider = calls.provider AND x.call_id = calls.call_id{extra})",
                if yes { "" } else { "NOT " }
            )
        };
        if let Some(yes) = f.booked {
            clauses.push(exists(yes, "appointments", " AND x.status = 'booked'"));
        }
        if let Some(yes) = f.fallback_used {
            clauses.push(exists(yes, "call_fallbacks", ""));
        }
        if let Some(words) = f.search.as_deref().filter(|w| !w.is_empty()) {
            let pattern = contains_pattern(words);
            for column in [
                "call_id",
                "COALESCE(summary, '')",
                "COALESCE(transcript, '')",
            ] {
                push(
                    &mut clauses,
                    &format!("LOWER({column}) LIKE ? ESCAPE '\\'"),
                    Bind::Text(pattern.clone()),
                );
            }
            // The three alternatives are one condition.
            let alternatives = clauses.split_off(clauses.len() - 3).join(" OR ");
            clauses.push(format!("({alternatives})"));
        }
        if let Some(since) = f.since_ms {
            push(&mut clauses, "created_at_ms >= ?", Bind::Int(since));
        }
        if let Some(before) = f.before_ms {
            push(&mut clauses, "created_at_ms < ?", Bind::Int(before));
        }
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM calls {where_sql} ORDER BY created_at_ms DESC, call_id LIMIT {}",
            f.limit.clamp(1, 1000)
        );
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = match b {
                Bind::Text(s) => q.bind(s),
                Bind::Int(i) => q.bind(i),
            };
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter().map(from_row).collect()
    }

    /// The newest call from `from` that has not ended, created at or after
    /// `since_ms`: a step of the fallback cascade for tool calls whose call id
    /// is unknown.
    pub async fn latest_active_call_from(
        &self,
        from: &PhoneNumber,
        since_ms: i64,
    ) -> Result<Option<CallRecord>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM calls
             WHERE from_number = $1 AND created_at_ms >= $2 AND status IN ('registered', 'ongoing')
             ORDER BY created_at_ms DESC LIMIT 1"
        ))
        .bind(from.as_str())
        .bind(since_ms)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }
}
