//! Alerts raised by warmline's own evaluation: the active ones, the
//! resolved history, and who acknowledged what. A row is active (`active =
//! 1`) from firing until resolved (`active` NULL); the unique index on
//! (name, labels, active) keeps one active row per alert and label set, so
//! replicas that see the same condition share it. Also the one read the
//! fallback alert needs of the daily metrics: each tenant's own "today".

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, StoreError};

/// An alert that starts firing.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub name: String,
    /// E.g. `upstream = zep`; empty for most alerts.
    pub labels: BTreeMap<String, String>,
    pub severity: String,
    /// The value and the threshold it crossed, when it fired.
    pub value: f64,
    pub threshold: f64,
    /// The numbers behind the value, for people ("12 of 40 lookups").
    pub detail: String,
    pub started_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub id: i64,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub severity: String,
    pub value: f64,
    pub threshold: f64,
    pub detail: String,
    pub started_at_ms: i64,
    /// `None` while the alert fires.
    pub resolved_at_ms: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at_ms: Option<i64>,
}

/// One tenant's counts on one day of its own time zone, for the fallback
/// alert's "today".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantDay {
    pub tenant_id: String,
    pub time_zone: String,
    /// `YYYY-MM-DD` in `time_zone`.
    pub day: String,
    pub calls: i64,
    pub fallbacks: i64,
}

/// The stored form of a label set: JSON with sorted keys (a `BTreeMap`),
/// so equal sets are equal strings and the unique index can compare them.
fn labels_text(labels: &BTreeMap<String, String>) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".into())
}

const COLUMNS: &str = "id, name, labels, severity, value, threshold, detail, started_at_ms,
    resolved_at_ms, acknowledged_by, acknowledged_at_ms";

fn record(r: &AnyRow) -> Result<AlertRecord> {
    let labels: String = r.try_get("labels")?;
    Ok(AlertRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        labels: serde_json::from_str(&labels)
            .map_err(|e| StoreError::corrupt("alert labels", e))?,
        severity: r.try_get("severity")?,
        value: r.try_get("value")?,
        threshold: r.try_get("threshold")?,
        detail: r.try_get("detail")?,
        started_at_ms: r.try_get("started_at_ms")?,
        resolved_at_ms: r.try_get("resolved_at_ms")?,
        acknowledged_by: r.try_get("acknowledged_by")?,
        acknowledged_at_ms: r.try_get("acknowledged_at_ms")?,
    })
}

impl Store {
    /// Records that `a` fires. `false` when it was already active (raised
    /// by another replica, or before a restart): that row is kept as it is.
    pub async fn raise_alert(&self, a: &NewAlert) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO alerts (name, labels, active, severity, value, threshold, detail, started_at_ms)
             VALUES ($1, $2, 1, $3, $4, $5, $6, $7)
             ON CONFLICT (name, labels, active) DO NOTHING",
        )
        .bind(&a.name)
        .bind(labels_text(&a.labels))
        .bind(&a.severity)
        .bind(a.value)
        .bind(a.threshold)
        .bind(&a.detail)
        .bind(a.started_at_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks the active alert `name` with `labels` resolved at `at_ms`;
    /// `false` when none was active.
    pub async fn resolve_alert(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        at_ms: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE alerts SET active = NULL, resolved_at_ms = $1
             WHERE name = $2 AND labels = $3 AND active = 1",
        )
        .bind(at_ms)
        .bind(name)
        .bind(labels_text(labels))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every active alert, oldest first.
    pub async fn active_alerts(&self) -> Result<Vec<AlertRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM alerts WHERE active = 1 ORDER BY started_at_ms, id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(record).collect()
    }

    /// `(active, resolved)`: the active alerts (oldest first) and the
    /// `limit` most recently resolved (newest first), as the alerts page
    /// shows them. One statement,
    /// so one snapshot: an alert that resolves while the page is read is in
    /// one list or the other. Two reads let it show in both, firing and
    /// resolved at once.
    pub async fn alert_board(&self, limit: u32) -> Result<(Vec<AlertRecord>, Vec<AlertRecord>)> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, active FROM alerts WHERE active = 1
             OR id IN (SELECT id FROM alerts WHERE active IS NULL
                       ORDER BY resolved_at_ms DESC, id DESC LIMIT $1)"
        ))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let (mut active, mut resolved) = (Vec::new(), Vec::new());
        for r in &rows {
            let list = match r.try_get::<Option<i64>, _>("active")? {
                Some(_) => &mut active,
                None => &mut resolved,
            };
            list.push(record(r)?);
        }
        active.sort_by_key(|a: &AlertRecord| (a.started_at_ms, a.id));
        resolved.sort_by_key(|a: &AlertRecord| std::cmp::Reverse((a.resolved_at_ms, a.id)));
        Ok((active, resolved))
    }

    /// The `limit` most recently resolved alerts, newest first.
    pub async fn resolved_alerts(&self, limit: u32) -> Result<Vec<AlertRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM alerts WHERE active IS NULL
             ORDER BY resolved_at_ms DESC, id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(record).collect()
    }

    pub async fn alert(&self, id: i64) -> Result<Option<AlertRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM alerts WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// Each tenant's calls and fallbacks on the days in `[from_day,
    /// to_day]`, with its time zone: every tenant's "today" lies in the UTC
    /// days around now, and only its own zone tells which.
    pub async fn tenant_days(&self, from_day: &str, to_day: &str) -> Result<Vec<TenantDay>> {
        let rows = sqlx::query(
            "SELECT d.tenant_id, t.time_zone, d.day, d.calls, d.fallbacks
             FROM daily_metrics d JOIN tenants t ON t.id = d.tenant_id
             WHERE d.day >= $1 AND d.day <= $2",
        )
        .bind(from_day)
        .bind(to_day)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TenantDay {
                    tenant_id: r.try_get("tenant_id")?,
                    time_zone: r.try_get("time_zone")?,
                    day: r.try_get("day")?,
                    calls: r.try_get("calls")?,
                    fallbacks: r.try_get("fallbacks")?,
                })
            })
            .collect()
    }

    /// Records that `by` acknowledged the active alert `id` at `at_ms`.
    /// `false` when it is not active or was acknowledged already: the first
    /// acknowledgement stands.
    pub async fn acknowledge_alert(&self, id: i64, by: &str, at_ms: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE alerts SET acknowledged_by = $1, acknowledged_at_ms = $2
             WHERE id = $3 AND active = 1 AND acknowledged_at_ms IS NULL",
        )
        .bind(by)
        .bind(at_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
