//! The mid-call tools, one file each: `list_services`, `check_availability`,
//! `get_alternatives`, `book_appointment`, `get_customer_context`.
//!
//! A tool answers in sentences the agent can speak. `Err` is a sentence too:
//! what went wrong, phrased for the caller (a bad date, a taken slot). The
//! request arrives typed ([`ToolRequest`]); this module only decides what to
//! do with it.

mod book_appointment;
mod check_availability;
mod customer_context;
mod get_alternatives;
mod list_services;
mod spoken;

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration as ChronoDuration, NaiveDate, Utc};

use super::{CallSession, Calls};
use crate::cache::LoadError;
use crate::domain::{DaySpec, Tool, ToolCall, ToolRequest};
use crate::support::now_ms;
use crate::upstreams::{Service, Slot};
use spoken::{day_bounds, join_spoken};

/// A sentence for the agent: the answer, or what went wrong.
pub type ToolResult = Result<String, String>;

impl Calls {
    /// Runs a tool for its call; counted and timed per tool, and recorded
    /// on the call (arguments, answer, latency) beside the answer.
    #[tracing::instrument(name = "calls.tool", skip_all, fields(tool = tc.name(), provider = %tc.provider))]
    pub async fn tool(&self, tc: ToolCall) -> ToolResult {
        let (started, at_ms) = (Instant::now(), now_ms());
        let (label, ran_in, result) = match &tc.request {
            ToolRequest::Unknown(name) => {
                ("unknown", None, Err(format!("I can't do \"{name}\" here.")))
            }
            ToolRequest::BadArguments { tool, problem } => {
                (tool.as_str(), None, Err(problem.clone()))
            }
            ToolRequest::Run(tool) => {
                let (ran_in, result) = match self.resolve_session(&tc).await {
                    Ok(session) => {
                        let t = &session.tenant;
                        crate::support::attribution::tenant(t.id.as_str(), t.time_zone);
                        let result = self.run_tool(&tc, tool, &session).await;
                        (Some(session), result)
                    }
                    Err(e) => (None, Err(e)),
                };
                (tool.name().as_str(), ran_in, result)
            }
        };
        let elapsed = started.elapsed();
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("warmline_tool_calls_total", "tool" => label, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("warmline_tool_duration_seconds", "tool" => label)
            .record(elapsed.as_secs_f64());
        self.record_tool(&tc, ran_in.as_ref(), at_ms, elapsed, &result);
        result
    }

    async fn run_tool(&self, tc: &ToolCall, tool: &Tool, s: &CallSession) -> ToolResult {
        match tool {
            Tool::ListServices => self.list_services(s).await,
            Tool::CheckAvailability { day, service } => {
                self.check_availability(s, *day, service.as_deref()).await
            }
            Tool::GetAlternatives { day, time, service } => {
                self.get_alternatives(s, *day, *time, service.as_deref())
                    .await
            }
            Tool::BookAppointment(args) => {
                // The booking may outlive this request (it runs as the replay
                // record's load), so it owns what it uses.
                let (calls, call, session, args) =
                    (self.clone(), tc.clone(), s.clone(), args.clone());
                let book = async move { calls.book_appointment(&call, &session, &args).await };
                self.at_most_once(tc, s, book).await
            }
            Tool::GetCustomerContext => Ok(customer_context::describe(s)),
        }
    }

    /// Runs a tool that changes something at most once per request: a
    /// platform re-delivering the same request (a retry after a lost answer,
    /// a replayed signed request) gets the first answer and nothing is done
    /// again. Only a success is remembered, so a retry after a failure acts.
    async fn at_most_once(
        &self,
        tc: &ToolCall,
        s: &CallSession,
        run: impl std::future::Future<Output = ToolResult> + Send + 'static,
    ) -> ToolResult {
        let Some(replay) = &tc.replay_key else {
            return run.await;
        };
        let key = format!("{}:{replay}", s.tenant.id);
        let failure: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let slot = failure.clone();
        let lookup = self
            .replays
            .get_or_load(&key, move || async move {
                match run.await {
                    Ok(answer) => Ok(Some(answer)),
                    Err(sentence) => {
                        let reason = LoadError::new("the tool answered with an error");
                        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(sentence);
                        Err(reason)
                    }
                }
            })
            .await;
        if let Ok(l) = &lookup
            && l.outcome != crate::cache::Outcome::Miss
        {
            metrics::counter!("warmline_tool_replays_total", "tool" => tc.name().to_owned())
                .increment(1);
            tracing::info!("a re-delivered tool call got its first answer");
        }
        match lookup {
            Ok(l) => l.value.map(|v| (*v).clone()).ok_or_else(|| {
                "I couldn't complete that just now. Could you try again?".to_owned()
            }),
            Err(e) => Err(failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or_else(|| {
                    tracing::warn!(error = %e, "tool call not completed");
                    "I couldn't complete that just now. Could you try again?".to_owned()
                })),
        }
    }

    async fn services_of(&self, s: &CallSession) -> Result<Arc<Vec<Service>>, String> {
        self.services.services(&s.tenant).await.map_err(|e| {
            tracing::warn!(error = %e, "services unavailable");
            "I can't reach the booking system right now.".to_owned()
        })
    }

    /// The service the caller asked for (by id, name or part of a name), or
    /// the tenant's first when they named none.
    async fn service(&self, s: &CallSession, wanted: Option<&str>) -> Result<Service, String> {
        let services = self.services_of(s).await?;
        let Some(wanted) = wanted else {
            return services
                .first()
                .cloned()
                .ok_or_else(|| "There are no bookable services set up.".to_owned());
        };
        let lower = wanted.to_lowercase();
        services
            .iter()
            .find(|sv| sv.id.eq_ignore_ascii_case(wanted) || sv.name.to_lowercase() == lower)
            .or_else(|| {
                services
                    .iter()
                    .find(|sv| sv.name.to_lowercase().contains(&lower))
            })
            .cloned()
            .ok_or_else(|| {
                let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
                format!(
                    "I couldn't find the service \"{wanted}\". We offer {}.",
                    join_spoken(&names)
                )
            })
    }

    /// Free slots of `service` from `from` for `days` days, through the
    /// `slots` cache (key `{tenant}:{service}:{from}:{days}`).
    async fn slots(
        &self,
        s: &CallSession,
        service: &Service,
        from: NaiveDate,
        days: i64,
    ) -> Result<Arc<Vec<Slot>>, String> {
        let tz = s.tenant.time_zone;
        let start = day_bounds(tz, from).start;
        let end = day_bounds(tz, from + ChronoDuration::days(days - 1)).end;
        let up = self.upstreams.for_tenant(&s.tenant).map_err(|e| {
            tracing::error!(error = %e, "tenant upstreams are misconfigured");
            "I can't reach the booking system right now.".to_owned()
        })?;
        let Some(calendar) = up.calendar.clone() else {
            return Err("Booking isn't set up for this business.".into());
        };
        let key = format!("{}:{}:{from}:{days}", s.tenant.id, service.id);
        let service = service.clone();
        let lookup = self
            .slots
            .get_or_load(&key, move || async move {
                let now = Utc::now();
                let from = start.max(now);
                if from >= end {
                    return Ok(Some(Vec::new()));
                }
                calendar
                    .free_slots(&service, from, end, tz)
                    .await
                    .map(Some)
                    .map_err(LoadError::new)
            })
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "free slots unavailable");
                "I can't reach the calendar right now.".to_owned()
            })?;
        Ok(lookup.value.unwrap_or_default())
    }
}

/// Today in the tenant's time zone.
fn today(s: &CallSession) -> NaiveDate {
    Utc::now().with_timezone(&s.tenant.time_zone).date_naive()
}

/// The day asked for, or today when none was.
fn day_or_today(s: &CallSession, day: Option<DaySpec>) -> NaiveDate {
    let today = today(s);
    day.map_or(today, |d| d.resolve(today))
}
