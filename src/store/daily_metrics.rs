//! Daily business metrics per tenant and direction: calls, bookings,
//! fallbacks, talk time. Only ever changed by atomic increments.

use sqlx::Row;

use super::{Conn, Result, Store};
use crate::domain::{Direction, TenantId};

/// Amounts to add to one tenant's day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DailyDelta {
    pub calls: i64,
    pub bookings: i64,
    pub fallbacks: i64,
    pub duration_ms: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DailyMetrics {
    pub day: String,
    pub calls: i64,
    pub bookings: i64,
    pub fallbacks: i64,
    pub total_duration_ms: i64,
    /// Of `calls`, those the business placed (the rest were inbound).
    pub outbound_calls: i64,
}

impl DailyMetrics {
    /// A day without anything counted.
    pub fn empty(day: String) -> Self {
        DailyMetrics {
            day,
            calls: 0,
            bookings: 0,
            fallbacks: 0,
            total_duration_ms: 0,
            outbound_calls: 0,
        }
    }

    /// The calls the customers placed.
    pub fn inbound_calls(&self) -> i64 {
        self.calls - self.outbound_calls
    }

    /// Bookings per call, 0 on a day without calls.
    pub fn conversion(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.bookings as f64 / self.calls as f64
        }
    }
}

/// `day` is `YYYY-MM-DD` in the tenant's time zone; `direction` that of the
/// call counted (a booking or a fallback counts under its call's). One
/// upsert whose update adds to the stored row: concurrent writers on either
/// backend serialise on the row and no increment is lost.
pub async fn add_daily_in(
    conn: &mut Conn,
    tenant: &TenantId,
    day: &str,
    direction: Direction,
    d: DailyDelta,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO daily_metrics (tenant_id, day, direction, calls, bookings, fallbacks, total_duration_ms)
         VALUES ($1, $2, $7, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, day, direction) DO UPDATE SET
            calls = daily_metrics.calls + excluded.calls,
            bookings = daily_metrics.bookings + excluded.bookings,
            fallbacks = daily_metrics.fallbacks + excluded.fallbacks,
            total_duration_ms = daily_metrics.total_duration_ms + excluded.total_duration_ms",
    )
    .bind(tenant.as_str())
    .bind(day)
    .bind(d.calls)
    .bind(d.bookings)
    .bind(d.fallbacks)
    .bind(d.duration_ms)
    .bind(direction.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Adds to a tenant's day of inbound calls.
    pub async fn add_daily(&self, tenant: &TenantId, day: &str, d: DailyDelta) -> Result<()> {
        self.add_daily_for(tenant, day, Direction::Inbound, d).await
    }

    /// Adds to a tenant's day of calls in `direction`.
    pub async fn add_daily_for(
        &self,
        tenant: &TenantId,
        day: &str,
        direction: Direction,
        d: DailyDelta,
    ) -> Result<()> {
        add_daily_in(&mut *self.conn().await?, tenant, day, direction, d).await
    }

    /// Days in `[from_day, to_day]` (inclusive, `YYYY-MM-DD`), oldest first;
    /// one tenant's, or summed over every tenant when `tenant` is `None`;
    /// both directions summed.
    pub async fn daily_metrics(
        &self,
        tenant: Option<&TenantId>,
        from_day: &str,
        to_day: &str,
    ) -> Result<Vec<DailyMetrics>> {
        self.daily_metrics_in(tenant, None, from_day, to_day).await
    }

    /// [`Store::daily_metrics`], of one direction when `direction` is given.
    pub async fn daily_metrics_in(
        &self,
        tenant: Option<&TenantId>,
        direction: Option<Direction>,
        from_day: &str,
        to_day: &str,
    ) -> Result<Vec<DailyMetrics>> {
        // CAST(SUM(..) AS BIGINT): Postgres sums BIGINT into NUMERIC, which the
        // Any driver cannot decode.
        let rows = sqlx::query(
            "SELECT day,
                CAST(SUM(calls) AS BIGINT) AS calls,
                CAST(SUM(bookings) AS BIGINT) AS bookings,
                CAST(SUM(fallbacks) AS BIGINT) AS fallbacks,
                CAST(SUM(total_duration_ms) AS BIGINT) AS total_duration_ms,
                CAST(SUM(CASE WHEN direction = 'outbound' THEN calls ELSE 0 END) AS BIGINT)
                    AS outbound_calls
             FROM daily_metrics
             WHERE ($1 IS NULL OR tenant_id = $1) AND day >= $2 AND day <= $3
                AND ($4 IS NULL OR direction = $4)
             GROUP BY day ORDER BY day",
        )
        .bind(tenant.map(TenantId::as_str))
        .bind(from_day)
        .bind(to_day)
        .bind(direction.map(Direction::as_str))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DailyMetrics {
                    day: r.try_get("day")?,
                    calls: r.try_get("calls")?,
                    bookings: r.try_get("bookings")?,
                    fallbacks: r.try_get("fallbacks")?,
                    total_duration_ms: r.try_get("total_duration_ms")?,
                    outbound_calls: r.try_get("outbound_calls")?,
                })
            })
            .collect()
    }
}
