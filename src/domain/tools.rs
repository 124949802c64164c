//! Mid-call tools as typed requests: the name and arguments an agent sent,
//! parsed once at the webhook edge. What the tools do is `calls/`' business;
//! what a provider's payload looks like is `webhooks/`'. An argument that
//! cannot be understood is an error the agent can act on (a sentence naming
//! what was not understood), never a silent default.

use std::fmt;

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Weekday};
use serde_json::{Map, Value};

use super::{CallId, PhoneNumber, Provider, TenantId};

/// The tools warmline offers, by the names agents call them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolName {
    ListServices,
    CheckAvailability,
    GetAlternatives,
    BookAppointment,
    GetCustomerContext,
}

impl ToolName {
    pub const ALL: [ToolName; 5] = [
        ToolName::ListServices,
        ToolName::CheckAvailability,
        ToolName::GetAlternatives,
        ToolName::BookAppointment,
        ToolName::GetCustomerContext,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ToolName::ListServices => "list_services",
            ToolName::CheckAvailability => "check_availability",
            ToolName::GetAlternatives => "get_alternatives",
            ToolName::BookAppointment => "book_appointment",
            ToolName::GetCustomerContext => "get_customer_context",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for ToolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A day as a caller says it: a date, `today`, `tomorrow` or a weekday (the
/// next one). Resolved against the tenant's today by [`DaySpec::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaySpec {
    Date(NaiveDate),
    Today,
    Tomorrow,
    Next(Weekday),
}

impl DaySpec {
    /// `2026-11-24`, `today`, `tomorrow` or a weekday name; `Err` is the
    /// sentence the agent should say.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            return Ok(DaySpec::Date(d));
        }
        let lower = raw.to_lowercase();
        match lower.as_str() {
            "today" => Ok(DaySpec::Today),
            "tomorrow" => Ok(DaySpec::Tomorrow),
            _ => lower.parse::<Weekday>().map(DaySpec::Next).map_err(|_| {
                format!(
                    "I didn't understand the date \"{raw}\". Could you give it like 2026-11-24, or say tomorrow or a weekday?"
                )
            }),
        }
    }

    pub fn resolve(self, today: NaiveDate) -> NaiveDate {
        match self {
            DaySpec::Date(d) => d,
            DaySpec::Today => today,
            DaySpec::Tomorrow => today + Duration::days(1),
            DaySpec::Next(w) => {
                let mut d = today + Duration::days(1);
                while d.weekday() != w {
                    d += Duration::days(1);
                }
                d
            }
        }
    }
}

/// `14:30`, `2:30 pm`, `2pm`, `9 am`; `Err` is the sentence the agent should say.
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

/// What `book_appointment` was asked to book.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingArgs {
    pub day: DaySpec,
    pub time: NaiveTime,
    pub service: Option<String>,
    pub name: Option<String>,
    /// Only needed when the caller's number is withheld.
    pub phone: Option<PhoneNumber>,
    pub email: Option<String>,
    pub notes: Option<String>,
}

/// A tool with its typed arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Tool {
    ListServices,
    CheckAvailability {
        day: Option<DaySpec>,
        service: Option<String>,
    },
    GetAlternatives {
        day: Option<DaySpec>,
        time: Option<NaiveTime>,
        service: Option<String>,
    },
    BookAppointment(BookingArgs),
    GetCustomerContext,
}

impl Tool {
    pub fn name(&self) -> ToolName {
        match self {
            Tool::ListServices => ToolName::ListServices,
            Tool::CheckAvailability { .. } => ToolName::CheckAvailability,
            Tool::GetAlternatives { .. } => ToolName::GetAlternatives,
            Tool::BookAppointment(_) => ToolName::BookAppointment,
            Tool::GetCustomerContext => ToolName::GetCustomerContext,
        }
    }
}

/// What a tool call asks for, as parsed at the edge.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolRequest {
    Run(Tool),
    /// A name warmline does not offer.
    Unknown(String),
    /// A known tool whose arguments could not be understood; `problem` is a
    /// sentence for the agent naming what was not understood.
    BadArguments {
        tool: ToolName,
        problem: String,
    },
}

impl ToolRequest {
    /// Parses a tool's name and its arguments (a JSON object, or null for
    /// none).
    pub fn parse(name: &str, args: &Value) -> Self {
        let Some(tool) = ToolName::parse(name) else {
            return ToolRequest::Unknown(name.to_owned());
        };
        let empty = Map::new();
        let args = match args {
            Value::Object(map) => map,
            Value::Null => &empty,
            _ => {
                return ToolRequest::BadArguments {
                    tool,
                    problem: "I didn't understand the request's details.".into(),
                };
            }
        };
        match parse_args(tool, &Args(args)) {
            Ok(t) => ToolRequest::Run(t),
            Err(problem) => ToolRequest::BadArguments { tool, problem },
        }
    }
}

/// The arguments object, read by the names agents use for each field.
struct Args<'a>(&'a Map<String, Value>);

impl Args<'_> {
    /// The first of `names` that is present: a non-empty string, `None` when
    /// absent, null or blank; anything else (a number, a list) is an error
    /// naming the field, so it is never mistaken for "not given".
    fn text(&self, names: &[&str], what: &str) -> Result<Option<String>, String> {
        for n in names {
            match self.0.get(*n) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) if s.trim().is_empty() => continue,
                Some(Value::String(s)) => return Ok(Some(s.trim().to_owned())),
                Some(other) => {
                    return Err(format!(
                        "I didn't understand the {what} \"{}\". {}",
                        spoken_value(other),
                        match what {
                            "date" =>
                                "Could you give it like 2026-11-24, or say tomorrow or a weekday?",
                            "time" => "Could you say it like 2:30 PM?",
                            _ => "Could you say it again?",
                        }
                    ));
                }
            }
        }
        Ok(None)
    }

    fn day(&self) -> Result<Option<DaySpec>, String> {
        self.text(&["date", "day"], "date")?
            .map(|d| DaySpec::parse(&d))
            .transpose()
    }

    fn time(&self) -> Result<Option<NaiveTime>, String> {
        self.text(&["time", "start_time"], "time")?
            .map(|t| parse_time(&t))
            .transpose()
    }

    fn service(&self) -> Result<Option<String>, String> {
        self.text(&["service", "service_id", "service_name"], "service")
    }
}

/// A JSON value as it may be read back to the caller.
fn spoken_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_args(tool: ToolName, a: &Args) -> Result<Tool, String> {
    Ok(match tool {
        ToolName::ListServices => Tool::ListServices,
        ToolName::GetCustomerContext => Tool::GetCustomerContext,
        ToolName::CheckAvailability => Tool::CheckAvailability {
            day: a.day()?,
            service: a.service()?,
        },
        ToolName::GetAlternatives => Tool::GetAlternatives {
            day: a.day()?,
            time: a.time()?,
            service: a.service()?,
        },
        ToolName::BookAppointment => {
            let day = a
                .day()?
                .ok_or("Which day would you like? For example 2026-11-24.")?;
            let time = a.time()?.ok_or("What time would you like?")?;
            let phone = a
                .text(&["phone", "phone_number"], "phone number")?
                .map(|raw| {
                    PhoneNumber::parse(&raw).map_err(|_| {
                        "I need a phone number to book with, like +1 415 555 0123.".to_owned()
                    })
                })
                .transpose()?;
            Tool::BookAppointment(BookingArgs {
                day,
                time,
                service: a.service()?,
                name: a.text(&["name", "customer_name"], "name")?,
                phone,
                email: a.text(&["email"], "email")?,
                notes: a.text(&["notes"], "notes")?,
            })
        }
    })
}

/// A mid-call tool invocation.
#[derive(Debug, Clone)]
pub struct ToolCall {
    pub provider: Provider,
    /// The platform's id for this invocation (Vapi's `toolCallId`).
    pub invocation_id: Option<String>,
    pub request: ToolRequest,
    /// The arguments as the platform sent them (null when none), kept for
    /// the call's detail page; `request` is what warmline understood.
    pub arguments: Value,
    /// What the payload says about the call; any part may be missing (Retell
    /// can call a tool before `call_started`, `args_at_root` carries none).
    pub call_id: Option<CallId>,
    pub caller: Option<PhoneNumber>,
    pub called: Option<PhoneNumber>,
    /// What identifies this request if the platform delivers it again (its
    /// tool-call id, or a digest of the signed request): a tool that changes
    /// something answers a replay with its first answer instead of acting
    /// twice.
    pub replay_key: Option<String>,
    /// The one tenant this request may act for, when it was signed with that
    /// tenant's own secret: sessions and fallbacks of other tenants are out
    /// of its reach. `None`: any tenant (the provider's global secret).
    pub tenant_scope: Option<TenantId>,
}

impl ToolCall {
    /// The name as the agent sent it, for answers and labels.
    pub fn name(&self) -> &str {
        match &self.request {
            ToolRequest::Run(t) => t.name().as_str(),
            ToolRequest::BadArguments { tool, .. } => tool.as_str(),
            ToolRequest::Unknown(name) => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn days_parse_from_dates_words_and_weekdays() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(); // a Saturday
        let day = |raw: &str| DaySpec::parse(raw).map(|d| d.resolve(today));
        assert_eq!(
            day("2026-11-24").unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
        );
        assert_eq!(
            day("Tomorrow").unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
        );
        assert_eq!(
            day("tuesday").unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
        );
        assert_eq!(
            day("saturday").unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
        );
        assert!(day("soonish").unwrap_err().contains("2026-11-24"));
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
    fn tools_parse_with_the_argument_names_agents_use() {
        let req = ToolRequest::parse(
            "check_availability",
            &json!({"day": "tomorrow", "service_name": "Cleaning", "extra": 1}),
        );
        assert_eq!(
            req,
            ToolRequest::Run(Tool::CheckAvailability {
                day: Some(DaySpec::Tomorrow),
                service: Some("Cleaning".into()),
            })
        );
        assert_eq!(
            ToolRequest::parse("list_services", &Value::Null),
            ToolRequest::Run(Tool::ListServices)
        );
    }

    #[test]
    fn an_unknown_tool_is_named_not_run_as_another() {
        assert_eq!(
            ToolRequest::parse("transfer_call", &json!({})),
            ToolRequest::Unknown("transfer_call".into())
        );
    }

    #[test]
    fn a_malformed_argument_is_an_error_naming_it_never_a_default() {
        let ToolRequest::BadArguments { tool, problem } =
            ToolRequest::parse("check_availability", &json!({"date": 20260901}))
        else {
            panic!("a number is not a date");
        };
        assert_eq!(tool, ToolName::CheckAvailability);
        assert!(
            problem.contains("date") && problem.contains("20260901"),
            "{problem}"
        );
        let ToolRequest::BadArguments { problem, .. } =
            ToolRequest::parse("get_alternatives", &json!({"time": 900}))
        else {
            panic!("a number is not a time");
        };
        assert!(problem.contains("time"), "{problem}");
        assert!(matches!(
            ToolRequest::parse("book_appointment", &json!({"time": "2pm"})),
            ToolRequest::BadArguments { problem, .. } if problem.contains("Which day")
        ));
    }
}
