//! `/admin/metrics`: daily history — calls, bookings, conversion,
//! fallbacks, average duration — over 7, 30 or 90 days, per tenant or for
//! all, as a server-rendered SVG chart and a table, and the same rows as
//! CSV (`/admin/metrics.csv`).

use actix_web::{HttpResponse, get, web};
use askama::Template;
use askama_web::WebTemplate;
use chrono::{Duration, Utc};
use serde::Deserialize;

use super::{Chrome, NAV};
use crate::admin::console::Console;
use crate::admin::session::{Operator, PageError};
use crate::domain::TenantId;
use crate::error::ApiError;
use crate::store::DailyMetrics;

#[derive(Debug, Deserialize)]
pub struct Query {
    #[serde(default = "default_days")]
    pub days: u32,
    #[serde(default)]
    pub tenant: String,
}

fn default_days() -> u32 {
    30
}

/// Every day of the range (days without calls as zeros), oldest first.
async fn history(console: &Console, q: &Query) -> Result<Vec<DailyMetrics>, ApiError> {
    if ![7, 30, 90].contains(&q.days) {
        return Err(ApiError::BadRequest("`days`: expected 7, 30 or 90".into()));
    }
    let tenant = (!q.tenant.trim().is_empty())
        .then(|| TenantId::parse(q.tenant.trim()))
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("`tenant`: {e}")))?;
    let today = Utc::now().date_naive();
    let from = today - Duration::days(i64::from(q.days) - 1);
    let rows = console
        .store
        .daily_metrics(tenant.as_ref(), &from.to_string(), &today.to_string())
        .await?;
    Ok(from
        .iter_days()
        .take(q.days as usize)
        .map(|d| {
            let day = d.to_string();
            rows.iter()
                .find(|r| r.day == day)
                .cloned()
                .unwrap_or(DailyMetrics {
                    day,
                    calls: 0,
                    bookings: 0,
                    fallbacks: 0,
                    total_duration_ms: 0,
                })
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
}

const CHART_W: f64 = 720.0;
const CHART_H: f64 = 160.0;

fn bars(days: &[DailyMetrics]) -> (Vec<Bar>, i64) {
    let max = days.iter().map(|d| d.calls).max().unwrap_or(0).max(1);
    let slot = CHART_W / days.len().max(1) as f64;
    let scale = |n: i64| n as f64 / max as f64 * CHART_H;
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, d)| Bar {
            x: i as f64 * slot + slot * 0.1,
            width: slot * 0.8,
            calls_y: CHART_H - scale(d.calls),
            calls_h: scale(d.calls),
            bookings_y: CHART_H - scale(d.bookings),
            bookings_h: scale(d.bookings),
            label: format!("{}: {} calls, {} bookings", d.day, d.calls, d.bookings),
        })
        .collect();
    (bars, max)
}

pub struct Row {
    pub day: String,
    pub calls: i64,
    pub bookings: i64,
    pub conversion: String,
    pub fallbacks: i64,
    pub avg_duration: String,
}

fn row(d: &DailyMetrics) -> Row {
    Row {
        day: d.day.clone(),
        calls: d.calls,
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
    nav: &'static [(&'static str, &'static str)],
    days: u32,
    tenant: String,
    bars: Vec<Bar>,
    max: i64,
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
    let (bars, max) = bars(&days);
    let total = days.iter().fold(
        DailyMetrics {
            day: "total".into(),
            calls: 0,
            bookings: 0,
            fallbacks: 0,
            total_duration_ms: 0,
        },
        |mut t, d| {
            t.calls += d.calls;
            t.bookings += d.bookings;
            t.fallbacks += d.fallbacks;
            t.total_duration_ms += d.total_duration_ms;
            t
        },
    );
    Ok(MetricsPage {
        chrome: Chrome::new(&console, &op, "/admin/metrics").await,
        nav: NAV,
        days: q.days,
        tenant: q.tenant.clone(),
        bars,
        max,
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
    let mut csv = String::from("day,calls,bookings,conversion,fallbacks,total_duration_ms\n");
    for d in &days {
        csv.push_str(&format!(
            "{},{},{},{:.4},{},{}\n",
            d.day,
            d.calls,
            d.bookings,
            d.conversion(),
            d.fallbacks,
            d.total_duration_ms
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
