//! The mid-call tools: `list_services`, `check_availability`,
//! `get_alternatives`, `book_appointment`, `get_customer_context`.
//!
//! A tool answers in sentences the agent can speak. `Err` is a sentence too:
//! what went wrong, phrased for the caller (a bad date, a taken slot).

use std::sync::Arc;
use std::time::Instant;

use chrono::{
    DateTime, Datelike, Duration as ChronoDuration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::Value;

use super::{CallSession, Calls};
use crate::cache::{FlushScope, LoadError, Namespace};
use crate::domain::ToolCall;
use crate::upstreams::{BookingRequest, Service, Slot, UpstreamError};
use crate::writebehind::{AppointmentJob, Job};

pub const TOOLS: [&str; 5] = [
    "list_services",
    "check_availability",
    "get_alternatives",
    "book_appointment",
    "get_customer_context",
];
/// `get_alternatives` stops once it has this many.
const ENOUGH_ALTERNATIVES: usize = 3;
const SEARCH_DAYS: i64 = 14;

type ToolResult = Result<String, String>;

fn arg<'a>(args: &'a Value, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| args.get(*n).and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `2026-11-24`, `today`, `tomorrow` or a weekday name (the next one).
pub fn parse_day(raw: &str, today: NaiveDate) -> Result<NaiveDate, String> {
    let lower = raw.to_lowercase();
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(d);
    }
    match lower.as_str() {
        "today" => return Ok(today),
        "tomorrow" => return Ok(today + ChronoDuration::days(1)),
        _ => {}
    }
    if let Ok(w) = lower.parse::<Weekday>() {
        let mut d = today + ChronoDuration::days(1);
        while d.weekday() != w {
            d += ChronoDuration::days(1);
        }
        return Ok(d);
    }
    Err(format!(
        "I didn't understand the date \"{raw}\". Could you give it like 2026-11-24, or say tomorrow or a weekday?"
    ))
}

/// `14:30`, `2:30 pm`, `2pm`, `9 am`.
pub fn parse_time(raw: &str) -> Result<NaiveTime, String> {
    let s = raw.trim().to_lowercase().replace('.', "");
    let (body, pm) = if let Some(b) = s.strip_suffix("pm") {
        (b.trim(), Some(true))
    } else if let Some(b) = s.strip_suffix("am") {
        (b.trim(), Some(false))
    } else {
        (s.as_str(), None)
    };
    let (h, m) = match body.split_once(':') {
        Some((h, m)) => (h.parse::<u32>(), m.parse::<u32>()),
        None => (body.parse::<u32>(), Ok(0)),
    };
    let bad = || format!("I didn't understand the time \"{raw}\". Could you say it like 2:30 PM?");
    let (mut h, m) = (h.map_err(|_| bad())?, m.map_err(|_| bad())?);
    match pm {
        Some(true) if h < 12 => h += 12,
        Some(false) if h == 12 => h = 0,
        _ => {}
    }
    NaiveTime::from_hms_opt(h, m, 0).ok_or_else(bad)
}

fn spoken_day(d: NaiveDate) -> String {
    d.format("%A, %B %-d").to_string()
}

fn spoken_time(t: &DateTime<Tz>) -> String {
    t.format("%-I:%M %p").to_string()
}

fn join_spoken(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

struct Day {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

fn day_bounds(tz: Tz, day: NaiveDate) -> Day {
    let at = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight")))
    };
    Day {
        start: at(day),
        end: at(day + ChronoDuration::days(1)),
    }
}

impl Calls {
    /// Runs a tool for its call; counted and timed per tool.
    #[tracing::instrument(name = "calls.tool", skip_all, fields(tool = %tc.name, provider = %tc.provider))]
    pub async fn tool(&self, tc: ToolCall) -> ToolResult {
        let started = Instant::now();
        let known = TOOLS.contains(&tc.name.as_str());
        let result = if known {
            match self.resolve_session(&tc).await {
                Ok(session) => self.run_tool(&tc, &session).await,
                Err(e) => Err(e),
            }
        } else {
            Err(format!("I can't do \"{}\" here.", tc.name))
        };
        let tool = if known {
            tc.name.clone()
        } else {
            "unknown".into()
        };
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("warmline_tool_calls_total", "tool" => tool.clone(), "outcome" => outcome).increment(1);
        metrics::histogram!("warmline_tool_duration_seconds", "tool" => tool)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn run_tool(&self, tc: &ToolCall, s: &CallSession) -> ToolResult {
        match tc.name.as_str() {
            "list_services" => self.list_services(s).await,
            "check_availability" => self.check_availability(s, &tc.args).await,
            "get_alternatives" => self.get_alternatives(s, &tc.args).await,
            "book_appointment" => self.book_appointment(tc, s).await,
            _ => Ok(customer_context(s)),
        }
    }

    fn tz(s: &CallSession) -> Tz {
        s.tenant.time_zone.parse().unwrap_or(Tz::UTC)
    }

    async fn services_of(&self, s: &CallSession) -> Result<Arc<Vec<Service>>, String> {
        self.services.services(&s.tenant).await.map_err(|e| {
            tracing::warn!(error = %e, "services unavailable");
            "I can't reach the booking system right now.".to_owned()
        })
    }

    async fn service(&self, s: &CallSession, args: &Value) -> Result<Service, String> {
        let services = self.services_of(s).await?;
        let Some(wanted) = arg(args, &["service", "service_id", "service_name"]) else {
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

    async fn list_services(&self, s: &CallSession) -> ToolResult {
        let services = self.services_of(s).await?;
        if services.is_empty() {
            return Ok("There are no bookable services set up.".into());
        }
        let items: Vec<String> = services
            .iter()
            .map(|sv| format!("{} ({} minutes)", sv.name, sv.duration_minutes))
            .collect();
        Ok(format!("{} offers {}.", s.tenant.name, join_spoken(&items)))
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
        let tz = Self::tz(s);
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
        let (service, tz_name) = (service.clone(), s.tenant.time_zone.clone());
        let lookup = self
            .slots
            .get_or_load(&key, move || async move {
                let now = Utc::now();
                let from = start.max(now);
                if from >= end {
                    return Ok(Some(Vec::new()));
                }
                calendar
                    .free_slots(&service, from, end, &tz_name)
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

    fn today(s: &CallSession) -> NaiveDate {
        Utc::now().with_timezone(&Self::tz(s)).date_naive()
    }

    async fn check_availability(&self, s: &CallSession, args: &Value) -> ToolResult {
        let day = match arg(args, &["date", "day"]) {
            Some(raw) => parse_day(raw, Self::today(s))?,
            None => Self::today(s),
        };
        let service = self.service(s, args).await?;
        let slots = self.slots(s, &service, day, 1).await?;
        let tz = Self::tz(s);
        if slots.is_empty() {
            return Ok(format!(
                "Nothing is free on {} for {}. Would another day work?",
                spoken_day(day),
                service.name
            ));
        }
        let times: Vec<String> = slots
            .iter()
            .map(|sl| spoken_time(&sl.start.with_timezone(&tz)))
            .collect();
        Ok(format!(
            "On {} these times are free for {}: {}.",
            spoken_day(day),
            service.name,
            join_spoken(&times)
        ))
    }

    /// Several searches run concurrently, each isolated (one failing does
    /// not sink the others); stops waiting once enough alternatives are
    /// found; ranked by closeness to the time asked for.
    async fn get_alternatives(&self, s: &CallSession, args: &Value) -> ToolResult {
        let tz = Self::tz(s);
        let day = match arg(args, &["date", "day"]) {
            Some(raw) => parse_day(raw, Self::today(s))?,
            None => Self::today(s),
        };
        let time = match arg(args, &["time", "start_time"]) {
            Some(raw) => parse_time(raw)?,
            None => NaiveTime::from_hms_opt(9, 0, 0).expect("valid"),
        };
        let service = self.service(s, args).await?;
        let wanted = tz
            .from_local_datetime(&day.and_time(time))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(Utc::now);
        let next_workday = {
            let mut d = day + ChronoDuration::days(1);
            while matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
                d += ChronoDuration::days(1);
            }
            d
        };

        let strategies = [
            ("same_day_other_time", day, 1, None),
            (
                "next_workday_same_time",
                next_workday,
                1,
                Some(ChronoDuration::minutes(90)),
            ),
            ("next_available", day, SEARCH_DAYS, None),
        ];
        let mut searches: FuturesUnordered<_> = strategies
            .into_iter()
            .map(|(name, from, days, window)| {
                let service = service.clone();
                async move {
                    let result = self.slots(s, &service, from, days).await;
                    (name, result, window, from)
                }
            })
            .collect();

        let mut found: Vec<Slot> = Vec::new();
        while let Some((name, result, window, from)) = searches.next().await {
            match result {
                Ok(slots) => {
                    let candidates = slots.iter().filter(|sl| {
                        let t = sl.start.with_timezone(&Utc);
                        t != wanted
                            && match window {
                                Some(w) => {
                                    let same_time = tz
                                        .from_local_datetime(&from.and_time(time))
                                        .earliest()
                                        .map(|x| x.with_timezone(&Utc));
                                    same_time.is_some_and(|st| (t - st).abs() <= w)
                                }
                                None => true,
                            }
                    });
                    for sl in candidates.take(ENOUGH_ALTERNATIVES * 2) {
                        if !found.contains(sl) {
                            found.push(sl.clone());
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(strategy = name, error = %e, "alternative search failed; others go on")
                }
            }
            if found.len() >= ENOUGH_ALTERNATIVES * 2 {
                break; // enough: the other searches finish in the background
            }
        }
        if found.is_empty() {
            return Ok(format!(
                "I couldn't find another time for {} in the next two weeks.",
                service.name
            ));
        }
        found.sort_by_key(|sl| (sl.start.with_timezone(&Utc) - wanted).num_seconds().abs());
        found.truncate(ENOUGH_ALTERNATIVES);
        let items: Vec<String> = found
            .iter()
            .map(|sl| {
                let t = sl.start.with_timezone(&tz);
                format!("{} at {}", spoken_day(t.date_naive()), spoken_time(&t))
            })
            .collect();
        Ok(format!(
            "The closest times for {} are {}.",
            service.name,
            join_spoken(&items)
        ))
    }

    async fn book_appointment(&self, tc: &ToolCall, s: &CallSession) -> ToolResult {
        let args = &tc.args;
        let tz = Self::tz(s);
        let day = parse_day(
            arg(args, &["date", "day"])
                .ok_or("Which day would you like? For example 2026-11-24.")?,
            Self::today(s),
        )?;
        let time =
            parse_time(arg(args, &["time", "start_time"]).ok_or("What time would you like?")?)?;
        let service = self.service(s, args).await?;
        let phone = match (&s.caller, arg(args, &["phone", "phone_number"])) {
            (Some(p), _) => p.clone(),
            (None, Some(raw)) => crate::domain::PhoneNumber::parse(raw).map_err(|_| {
                "I need a phone number to book with, like +1 415 555 0123.".to_owned()
            })?,
            (None, None) => return Err("I need a phone number to book with.".into()),
        };
        let name = arg(args, &["name", "customer_name"])
            .map(str::to_owned)
            .or_else(|| s.context.customer_name.clone())
            .unwrap_or_else(|| "Caller".into());
        let start = tz
            .from_local_datetime(&day.and_time(time))
            .earliest()
            .ok_or("That time doesn't exist on that day. Could you pick another?")?;
        if start.with_timezone(&Utc) <= Utc::now() {
            return Err("That time has already passed. Could you pick a later one?".into());
        }
        let up = self
            .upstreams
            .for_tenant(&s.tenant)
            .map_err(|_| "I can't reach the booking system right now.".to_owned())?;
        let calendar = up
            .calendar
            .clone()
            .ok_or("Booking isn't set up for this business.")?;
        let request = BookingRequest {
            service: service.clone(),
            start: start.fixed_offset(),
            contact_id: s.context.crm_contact_id.clone(),
            name,
            email: arg(args, &["email"]).map(str::to_owned),
            phone: phone.clone(),
            time_zone: s.tenant.time_zone.clone(),
            notes: arg(args, &["notes"]).map(str::to_owned),
        };
        let booking = match calendar.book(&request).await {
            Ok(b) => b,
            Err(UpstreamError::Status {
                status: 400..=499, ..
            }) => {
                return Err(format!(
                    "{} on {} at {} isn't available anymore. Shall I look for another time?",
                    service.name,
                    spoken_day(day),
                    spoken_time(&start)
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "booking failed");
                return Err(
                    "I couldn't reach the calendar to book that. Please try again in a moment."
                        .into(),
                );
            }
        };

        // The slot is gone: every replica must stop offering it.
        self.cache
            .flush(&FlushScope::Prefix {
                ns: Namespace::Slots,
                prefix: format!("{}:{}:", s.tenant.id, service.id),
            })
            .await;
        self.cache
            .flush(&FlushScope::Key {
                ns: Namespace::Context,
                key: format!("{}:{}", s.tenant.id, phone.as_str()),
            })
            .await;
        let end = booking.end.unwrap_or(
            booking.start + ChronoDuration::minutes(i64::from(service.duration_minutes)),
        );
        let job = Job::Appointment {
            appointment: AppointmentJob {
                id: booking.id.clone(),
                tenant_id: s.tenant.id.clone(),
                provider: Some(tc.provider),
                call_id: tc.call_id.clone().or_else(|| s.call_id.clone()),
                contact_phone: phone,
                service: Some(service.name.clone()),
                starts_at_ms: booking.start.timestamp_millis(),
                ends_at_ms: end.timestamp_millis(),
            },
            time_zone: s.tenant.time_zone.clone(),
        };
        if let Err(e) = self.writebehind.submit(job).await {
            // The booking exists in the calendar; only our log of it failed.
            tracing::error!(error = %e, booking = %booking.id, "could not log the appointment");
        }
        let local = booking.start.with_timezone(&tz);
        Ok(format!(
            "Booked: {} on {} at {}.",
            service.name,
            spoken_day(local.date_naive()),
            spoken_time(&local)
        ))
    }
}

fn customer_context(s: &CallSession) -> String {
    let c = &s.context;
    let mut parts = Vec::new();
    match &c.customer_name {
        Some(n) => parts.push(format!("The caller is {n}.")),
        None => parts.push("The caller's name is not known.".into()),
    }
    if c.returning_caller {
        parts.push(format!(
            "They have called {} time(s) before.",
            c.total_calls
        ));
    } else {
        parts.push("This is their first call.".into());
    }
    if let Some(m) = &c.memory_summary {
        parts.push(format!("Notes: {m}"));
    }
    let slots = c.slots_spoken();
    if !slots.is_empty() {
        parts.push(format!("Next free times: {}.", slots.join("; ")));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_from_dates_words_and_weekdays() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(); // a Saturday
        assert_eq!(
            parse_day("2026-11-24", today).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
        );
        assert_eq!(
            parse_day("Tomorrow", today).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
        );
        assert_eq!(
            parse_day("tuesday", today).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
        );
        assert_eq!(
            parse_day("saturday", today).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
        );
        assert!(
            parse_day("soonish", today)
                .unwrap_err()
                .contains("2026-11-24")
        );
    }

    #[test]
    fn times_parse_in_12_and_24_hour_forms() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert_eq!(parse_time("14:30").unwrap(), t(14, 30));
        assert_eq!(parse_time("2:30 PM").unwrap(), t(14, 30));
        assert_eq!(parse_time("2pm").unwrap(), t(14, 0));
        assert_eq!(parse_time("12 am").unwrap(), t(0, 0));
        assert_eq!(parse_time("9 a.m.").unwrap(), t(9, 0));
        assert!(parse_time("25:00").is_err());
        assert!(parse_time("noonish").is_err());
    }

    #[test]
    fn lists_are_spoken_naturally() {
        assert_eq!(join_spoken(&["a".into()]), "a");
        assert_eq!(
            join_spoken(&["a".into(), "b".into(), "c".into()]),
            "a, b and c"
        );
    }
}
