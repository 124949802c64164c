//! `/admin/calls` (the call log, filtered and paged) and
//! `/admin/calls/{call_id}` (one call: transcript, analysis, durations,
//! the context answered and how, every tool call with its arguments, answer
//! and latency, fallback steps, the trace).

use actix_web::{get, web};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::Chrome;
use crate::admin::AdminSettings;
use crate::admin::console::Console;
use crate::admin::session::{Operator, PageError};
use crate::domain::{CallId, Channel, Direction, PhoneNumber, Provider, TenantId, mask_phones_in};
use crate::error::ApiError;
use crate::store::{
    CallFilter, CallOutcome, CallRecord, CallStatus, CallStep, ContextAnswered, StepKind,
};
use crate::support::now_ms;

const PAGE: u32 = 50;

/// The filters, as the form sends them (empty means "any").
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub caller: String,
    #[serde(default)]
    pub provider: String,
    /// `inbound`, `outbound` or empty.
    #[serde(default)]
    pub direction: String,
    /// `voice`, `chat` or empty.
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub status: String,
    /// `successful`, `unsuccessful`, `unknown` or empty.
    #[serde(default)]
    pub outcome: String,
    /// `yes`, `no` or empty.
    #[serde(default)]
    pub booked: String,
    /// `yes`, `no` or empty.
    #[serde(default)]
    pub fallback: String,
    /// Words in the call id, summary or transcript.
    #[serde(default)]
    pub q: String,
    /// `1h`, `24h`, `7d`, `30d` or empty for all time.
    #[serde(default)]
    pub range: String,
    pub before: Option<i64>,
}

impl Filters {
    fn to_filter(&self) -> Result<CallFilter, ApiError> {
        let bad = |field: &str, e: String| ApiError::BadRequest(format!("`{field}`: {e}"));
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        let range_ms = match self.range.as_str() {
            "" => None,
            "1h" => Some(3_600_000),
            "24h" => Some(86_400_000),
            "7d" => Some(7 * 86_400_000),
            "30d" => Some(30 * 86_400_000),
            _ => return Err(bad("range", "expected 1h, 24h, 7d or 30d".into())),
        };
        let yes_no = |field: &str, v: &str| match v.trim() {
            "" => Ok(None),
            "yes" => Ok(Some(true)),
            "no" => Ok(Some(false)),
            _ => Err(bad(field, "expected yes or no".into())),
        };
        let q = self.q.trim();
        if q.chars().count() > 200 {
            return Err(bad("q", "at most 200 characters".into()));
        }
        Ok(CallFilter {
            tenant_id: some(&self.tenant)
                .map(|t| TenantId::parse(&t).map_err(|e| bad("tenant", e.to_string())))
                .transpose()?,
            from_number: some(&self.caller)
                .map(|c| PhoneNumber::parse(&c).map_err(|e| bad("caller", e.to_string())))
                .transpose()?,
            provider: some(&self.provider)
                .map(|p| p.parse::<Provider>().map_err(|e| bad("provider", e)))
                .transpose()?,
            direction: some(&self.direction)
                .map(|d| d.parse::<Direction>().map_err(|e| bad("direction", e)))
                .transpose()?,
            channel: some(&self.channel)
                .map(|c| c.parse::<Channel>().map_err(|e| bad("channel", e)))
                .transpose()?,
            status: some(&self.status)
                .map(|s| s.parse::<CallStatus>().map_err(|e| bad("status", e)))
                .transpose()?,
            outcome: some(&self.outcome)
                .map(|o| o.parse::<CallOutcome>().map_err(|e| bad("outcome", e)))
                .transpose()?,
            booked: yes_no("booked", &self.booked)?,
            fallback_used: yes_no("fallback", &self.fallback)?,
            search: (!q.is_empty()).then(|| q.to_owned()),
            since_ms: range_ms.map(|r: i64| now_ms() - r),
            before_ms: self.before,
            limit: PAGE,
        })
    }

    /// This query string with `before` set, for the next page.
    fn next_page(&self, before: i64) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("tenant", &self.tenant)
            .append_pair("caller", &self.caller)
            .append_pair("provider", &self.provider)
            .append_pair("direction", &self.direction)
            .append_pair("channel", &self.channel)
            .append_pair("status", &self.status)
            .append_pair("outcome", &self.outcome)
            .append_pair("booked", &self.booked)
            .append_pair("fallback", &self.fallback)
            .append_pair("q", &self.q)
            .append_pair("range", &self.range)
            .append_pair("before", &before.to_string())
            .finish()
    }
}

fn when(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// To the millisecond: a call's steps are seconds apart or less.
fn when_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(String::new, |t| {
        t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
    })
}

fn seconds(ms: Option<i64>) -> String {
    ms.map_or_else(String::new, |ms| format!("{:.1} s", ms as f64 / 1000.0))
}

/// One row of the log, ready to show (numbers masked).
pub struct Row {
    pub call_id: String,
    pub provider: &'static str,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// `voice` or `chat`.
    pub channel: &'static str,
    pub tenant: String,
    pub caller: String,
    pub status: &'static str,
    /// `successful` / `unsuccessful`, or empty before the analysis.
    pub outcome: &'static str,
    pub started: String,
    pub duration: String,
}

impl From<&CallRecord> for Row {
    fn from(c: &CallRecord) -> Self {
        Row {
            call_id: c.call_id.to_string(),
            provider: c.provider.as_str(),
            direction: Direction::of(c.details.direction.as_deref()).as_str(),
            channel: c.details.channel.unwrap_or_default().as_str(),
            tenant: c
                .tenant_id
                .as_ref()
                .map_or_else(String::new, |t| t.to_string()),
            caller: c
                .details
                .caller
                .as_ref()
                .map_or_else(|| "withheld".into(), |p| p.masked()),
            status: c.status.as_str(),
            outcome: match c.details.successful {
                Some(true) => "successful",
                Some(false) => "unsuccessful",
                None => "",
            },
            started: when(c.details.started_at_ms.or(Some(c.created_at_ms))),
            duration: seconds(c.details.duration_ms),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/calls.html")]
struct CallsPage {
    chrome: Chrome,
    f: Filters,
    rows: Vec<Row>,
    next: Option<String>,
    providers: Vec<&'static str>,
    statuses: Vec<&'static str>,
    error: Option<String>,
}

#[get("/admin/calls")]
async fn calls(
    console: web::Data<Console>,
    op: Operator,
    f: web::Query<Filters>,
) -> Result<CallsPage, PageError> {
    let f = f.into_inner();
    let (rows, next, error) = match f.to_filter() {
        Ok(filter) => {
            let found = console.store.list_calls(&filter).await?;
            let next = (found.len() == PAGE as usize)
                .then(|| found.last().map(|c| f.next_page(c.created_at_ms)))
                .flatten();
            (found.iter().map(Row::from).collect(), next, None)
        }
        Err(e) => (Vec::new(), None, Some(e.to_string())),
    };
    Ok(CallsPage {
        chrome: Chrome::new(&console, &op, "/admin/calls").await,
        f,
        rows,
        next,
        providers: Provider::ALL.iter().map(|p| p.as_str()).collect(),
        statuses: CallStatus::ALL.iter().map(|s| s.as_str()).collect(),
        error,
    })
}

pub struct Fallback {
    pub kind: String,
    pub detail: String,
    pub at: String,
}

/// The context the agent was answered with, ready to show.
pub struct ContextRow {
    pub at: String,
    /// `inbound` or `call_started`.
    pub source: String,
    pub caller: String,
    pub memory: &'static str,
    pub slots: String,
    /// `fresh`, `stale` or `partial`, and its dot.
    pub how: &'static str,
    pub dot: &'static str,
    pub stale: String,
    pub missing: String,
    pub latency: String,
}

impl ContextRow {
    fn new(at_ms: i64, latency_ms: i64, source: String, a: &ContextAnswered) -> Self {
        let caller = if a.caller_withheld {
            "number withheld: the business only".to_owned()
        } else {
            let name = a.customer_name.as_deref().unwrap_or("name unknown");
            match (a.returning_caller, a.total_calls) {
                (true, n) if n > 0 => format!("{name}, returning caller ({n} earlier calls)"),
                (true, _) => format!("{name}, returning caller"),
                (false, _) => format!("{name}, first call"),
            }
        };
        let how = a.how();
        ContextRow {
            at: when_ms(at_ms),
            source,
            caller,
            memory: if a.memory_summary { "yes" } else { "none" },
            slots: if a.slots_offered.is_empty() {
                "none".into()
            } else {
                a.slots_offered.join("; ")
            },
            how,
            dot: match how {
                "fresh" => "ok",
                "stale" => "warn",
                _ => "error",
            },
            stale: a.stale.join(", "),
            missing: a.missing.join(", "),
            latency: format!("{latency_ms} ms"),
        }
    }
}

/// A tool call, ready to show (phone numbers in its arguments masked).
pub struct ToolRow {
    pub at: String,
    pub tool: String,
    pub arguments: String,
    pub answer: String,
    pub ok: bool,
    pub latency: String,
}

/// The call's steps, split into the context answered and the tool calls,
/// each in the order they happened.
fn steps(steps: Vec<CallStep>) -> (Vec<ContextRow>, Vec<ToolRow>) {
    let (mut contexts, mut tools) = (Vec::new(), Vec::new());
    for s in steps {
        match s.what {
            StepKind::Context { source, answered } => {
                contexts.push(ContextRow::new(s.at_ms, s.latency_ms, source, &answered));
            }
            StepKind::Tool {
                tool,
                arguments,
                answer,
                ok,
            } => tools.push(ToolRow {
                at: when_ms(s.at_ms),
                tool,
                arguments: arguments
                    .as_deref()
                    .map_or_else(String::new, mask_phones_in),
                answer,
                ok,
                latency: format!("{} ms", s.latency_ms),
            }),
        }
    }
    (contexts, tools)
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/call.html")]
struct CallPage {
    chrome: Chrome,
    row: Row,
    called: String,
    direction: String,
    ended: String,
    disconnection: String,
    call_summary: String,
    successful: String,
    transcript: String,
    analysis: Option<String>,
    contexts: Vec<ContextRow>,
    tools: Vec<ToolRow>,
    fallbacks: Vec<Fallback>,
    trace: Option<(String, Option<String>)>,
}

#[get("/admin/calls/{call_id}")]
async fn call(
    console: web::Data<Console>,
    settings: web::Data<AdminSettings>,
    op: Operator,
    path: web::Path<String>,
) -> Result<CallPage, PageError> {
    let id = CallId::parse(&path).map_err(|e| ApiError::BadRequest(format!("call id: {e}")))?;
    let c = console
        .store
        .calls_by_id(&id)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NotFound(format!("no call `{id}`")))?;
    let fallbacks = console
        .store
        .call_fallbacks(c.provider, &c.call_id)
        .await?
        .into_iter()
        .map(|f| Fallback {
            kind: f.kind,
            detail: f.detail.unwrap_or_default(),
            at: when(Some(f.at_ms)),
        })
        .collect();
    let (contexts, tools) = steps(console.store.call_steps(c.provider, &c.call_id).await?);
    let d = &c.details;
    let trace = d.trace_id.clone().map(|t| {
        let link = settings
            .trace_url
            .as_ref()
            .map(|u| u.replace("{trace_id}", &t));
        (t, link)
    });
    Ok(CallPage {
        chrome: Chrome::new(&console, &op, "/admin/calls").await,
        row: Row::from(&c),
        called: d.called.as_ref().map_or_else(String::new, |p| p.masked()),
        direction: d.direction.clone().unwrap_or_default(),
        ended: when(d.ended_at_ms),
        disconnection: d.disconnection_reason.clone().unwrap_or_default(),
        call_summary: d.summary.clone().unwrap_or_default(),
        successful: d.successful.map_or_else(String::new, |b| b.to_string()),
        transcript: d.transcript.clone().unwrap_or_default(),
        analysis: d
            .analysis
            .as_ref()
            .and_then(|a| serde_json::to_string_pretty(a).ok()),
        contexts,
        tools,
        fallbacks,
        trace,
    })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(calls).service(call);
}
