//! `/admin/metrics`: daily history — calls, bookings, conversion,
//! fallbacks, average duration, answer p95 and cache hit ratio — over 7,
//! 30 or 90 days, per tenant or for all, inbound and outbound calls apart
//! or one direction alone, as server-rendered SVG charts and a table, and
//! the same rows as CSV (`/admin/metrics.csv`).

use actix_web::{HttpResponse, get, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::{Duration, Utc};
use serde::Deserialize;

use super::Chrome;
use crate::admin::console::Console;
use crate::admin::session::{Operator, PageError};
use crate::domain::{Direction, TenantId};
use crate::error::ApiError;
use crate::store::{DailyMetrics, DailyTimings};

#[derive(Debug, Deserialize)]
pub struct Query {
    #[serde(default = "default_days")]
    pub days: u32,
    #[serde(default)]
    pub tenant: String,
    /// `inbound`, `outbound` or empty for both.
    #[serde(default)]
    pub direction: String,
}

fn default_days() -> u32 {
    30
}

/// One day: its business counts, and how fast its webhooks were answered.
#[derive(Clone)]
pub struct Day {
    pub metrics: DailyMetrics,
    pub timings: DailyTimings,
}

/// Every day of the range (days without calls as zeros), oldest first.
async fn history(console: &Console, q: &Query) -> Result<Vec<Day>, ApiError> {
    if ![7, 30, 90].contains(&q.days) {
        return Err(ApiError::BadRequest("`days`: expected 7, 30 or 90".into()));
    }
    let tenant = (!q.tenant.trim().is_empty())
        .then(|| TenantId::parse(q.tenant.trim()))
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("`tenant`: {e}")))?;
    let direction = (!q.direction.trim().is_empty())
        .then(|| q.direction.trim().parse::<Direction>())
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("`direction`: {e}")))?;
    let today = Utc::now().date_naive();
    let from = today - Duration::days(i64::from(q.days) - 1);
    let rows = console
        .store
        .daily_metrics_in(
            tenant.as_ref(),
            direction,
            &from.to_string(),
            &today.to_string(),
        )
        .await?;
    let timings = console
        .store
        .daily_timings(tenant.as_ref(), &from.to_string(), &today.to_string())
        .await?;
    Ok(from
        .iter_days()
        .take(q.days as usize)
        .map(|d| {
            let day = d.to_string();
            let metrics = rows
                .iter()
                .find(|r| r.day == day)
                .cloned()
                .unwrap_or_else(|| DailyMetrics::empty(day.clone()));
            let timings = timings
                .iter()
                .find(|(d, _)| *d == day)
                .map(|(_, t)| *t)
                .unwrap_or_default();
            Day { metrics, timings }
        })
        .collect())
}

/// One bar of the chart, in SVG units.
pub struct Bar {
    pub x: f64,
    pub width: f64,
    pub calls_y: f64,
    pub calls_h: f64,
    pub bookings_y: f64,
    pub bookings_h: f64,
    pub label: String,
    /// The answer p95 bar (its own scale) and the hit ratio point.
    pub p95_y: f64,
    pub p95_h: f64,
    pub hit_y: Option<f64>,
}

const CHART_W: f64 = 720.0;
const CHART_H: f64 = 160.0;

/// The chart's bars, the busiest day's calls and the slowest day's p95.
fn bars(days: &[Day]) -> (Vec<Bar>, i64, f64) {
    let max = days
        .iter()
        .map(|d| d.metrics.calls)
        .max()
        .unwrap_or(0)
        .max(1);
    let slowest = days
        .iter()
        .filter_map(|d| d.timings.quantile_ms(0.95))
        .fold(1.0, f64::max);
    let slot = CHART_W / days.len().max(1) as f64;
    let scale = |n: i64| n as f64 / max as f64 * CHART_H;
    let bars = days
        .iter()
        .enumerate()
        .map(
            |(
                i,
                Day {
                    metrics: d,
                    timings,
                },
            )| {
                let p95_h = timings.quantile_ms(0.95).unwrap_or(0.0) / slowest * CHART_H;
                Bar {
                    x: i as f64 * slot + slot * 0.1,
                    width: slot * 0.8,
                    calls_y: CHART_H - scale(d.calls),
                    calls_h: scale(d.calls),
                    bookings_y: CHART_H - scale(d.bookings),
                    bookings_h: scale(d.bookings),
                    label: format!("{}: {} calls, {} bookings", d.day, d.calls, d.bookings),
                    p95_y: CHART_H - p95_h,
                    p95_h,
                    hit_y: timings.hit_ratio().map(|r| CHART_H - r * CHART_H),
                }
            },
        )
        .collect();
    (bars, max, slowest)
}

pub struct Row {
    pub day: String,
    pub calls: i64,
    pub inbound: i64,
    pub outbound: i64,
    pub bookings: i64,
    pub conversion: String,
    pub fallbacks: i64,
    pub avg_duration: String,
    pub answers: i64,
    pub p95: String,
    pub hit_ratio: String,
}

fn row(
    Day {
        metrics: d,
        timings: t,
    }: &Day,
) -> Row {
    Row {
        answers: t.answers(),
        p95: t
            .quantile_ms(0.95)
            .map_or_else(String::new, |ms| format!("{ms:.0} ms")),
        hit_ratio: t
            .hit_ratio()
            .map_or_else(String::new, |r| format!("{:.1} %", r * 100.0)),
        day: d.day.clone(),
        calls: d.calls,
        inbound: d.inbound_calls(),
        outbound: d.outbound_calls,
        bookings: d.bookings,
        conversion: format!("{:.1} %", d.conversion() * 100.0),
        fallbacks: d.fallbacks,
        avg_duration: if d.calls == 0 {
            String::new()
        } else {
            format!(
                "{:.0} s",
                d.total_duration_ms as f64 / d.calls as f64 / 1000.0
            )
        },
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/metrics.html")]
struct MetricsPage {
    chrome: Chrome,
    days: u32,
    tenant: String,
    direction: String,
    bars: Vec<Bar>,
    max: i64,
    slowest: String,
    hit_points: String,
    rows: Vec<Row>,
    totals: Row,
    error: Option<String>,
}

#[get("/admin/metrics")]
async fn metrics_page(
    console: web::Data<Console>,
    op: Operator,
    q: web::Query<Query>,
) -> Result<MetricsPage, PageError> {
    let (days, error) = match history(&console, &q).await {
        Ok(days) => (days, None),
        Err(ApiError::BadRequest(e)) => (Vec::new(), Some(e)),
        Err(e) => return Err(e.into()),
    };
    let (bars, max, slowest) = bars(&days);
    let hit_points = bars
        .iter()
        .filter_map(|b| {
            b.hit_y
                .map(|y| format!("{:.1},{y:.1}", b.x + b.width / 2.0))
        })
        .collect::<Vec<_>>()
        .join(" ");
    let total = days.iter().fold(
        Day {
            metrics: DailyMetrics::empty("total".into()),
            timings: DailyTimings::default(),
        },
        |mut t, d| {
            t.metrics.calls += d.metrics.calls;
            t.metrics.outbound_calls += d.metrics.outbound_calls;
            t.metrics.bookings += d.metrics.bookings;
            t.metrics.fallbacks += d.metrics.fallbacks;
            t.metrics.total_duration_ms += d.metrics.total_duration_ms;
            t.timings.add(&d.timings);
            t
        },
    );
    Ok(MetricsPage {
        chrome: Chrome::new(&console, &op, "/admin/metrics").await,
        days: q.days,
        tenant: q.tenant.clone(),
        direction: q.direction.clone(),
        bars,
        max,
        slowest: format!("{slowest:.0} ms"),
        hit_points,
        rows: days.iter().rev().map(row).collect(),
        totals: row(&total),
        error,
    })
}

#[get("/admin/metrics.csv")]
async fn metrics_csv(
    console: web::Data<Console>,
    _op: Operator,
    q: web::Query<Query>,
) -> Result<HttpResponse, PageError> {
    let days = history(&console, &q).await?;
    let mut csv = String::from(
        // The direction columns last: the older ones keep their places.
        "day,calls,bookings,conversion,fallbacks,total_duration_ms,answers,p95_ms,cache_hit_ratio,inbound_calls,outbound_calls\n",
    );
    let or_empty =
        |v: Option<f64>, digits: usize| v.map_or_else(String::new, |v| format!("{v:.digits$}"));
    for Day {
        metrics: d,
        timings: t,
    } in &days
    {
        csv.push_str(&format!(
            "{},{},{},{:.4},{},{},{},{},{},{},{}\n",
            d.day,
            d.calls,
            d.bookings,
            d.conversion(),
            d.fallbacks,
            d.total_duration_ms,
            t.answers(),
            or_empty(t.quantile_ms(0.95), 1),
            or_empty(t.hit_ratio(), 4),
            d.inbound_calls(),
            d.outbound_calls,
        ));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"warmline-daily-{}d.csv\"", q.days),
        ))
        .body(csv))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(metrics_page).service(metrics_csv);
}
