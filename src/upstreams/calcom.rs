//! Cal.com API v2: `Authorization: Bearer cal_…` and a `cal-api-version`
//! header on every call (a missing one silently selects an older version of
//! the endpoint, so both are pinned here).

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use chrono_tz::Tz;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::http::{Call, UpstreamClient, join_path};
use super::{Booking, BookingRequest, Calendar, Service, Slot, UpstreamError, UpstreamResult};

pub const SLOTS_VERSION: &str = "2024-09-04";
pub const BOOKINGS_VERSION: &str = "2026-02-25";

pub struct CalcomCalendar {
    client: Arc<UpstreamClient>,
    base: Url,
    token: SecretString,
}

impl CalcomCalendar {
    pub fn new(client: Arc<UpstreamClient>, base: Url, token: SecretString) -> Self {
        CalcomCalendar {
            client,
            base,
            token,
        }
    }

    fn url(&self, path: &str) -> Url {
        join_path(&self.base, "/v2", path)
    }

    fn auth(&self, call: Call, version: &str) -> Call {
        call.header(
            "authorization",
            format!("Bearer {}", self.token.expose_secret()),
        )
        .header("cal-api-version", version)
        .header("accept", "application/json")
    }

    fn event_type_id(service: &Service) -> UpstreamResult<i64> {
        service.calendar_ref.parse().map_err(|_| {
            UpstreamError::Invalid(format!(
                "service `{}` has no Cal.com event type id (got `{}`)",
                service.id, service.calendar_ref
            ))
        })
    }
}

/// Reads `{"status": "success", "data": {"YYYY-MM-DD": [{"start": …}]}}`.
pub fn parse_slots(body: &serde_json::Value) -> Result<Vec<Slot>, String> {
    let data = body
        .get("data")
        .and_then(|d| d.as_object())
        .ok_or("missing `data` object")?;
    let mut slots = Vec::new();
    for day in data.values() {
        for s in day.as_array().ok_or("a day is not a list")? {
            let raw = s
                .get("start")
                .and_then(|v| v.as_str())
                .ok_or("a slot has no `start`")?;
            let start =
                DateTime::parse_from_rfc3339(raw).map_err(|e| format!("slot `{raw}`: {e}"))?;
            slots.push(Slot { start });
        }
    }
    slots.sort();
    Ok(slots)
}

#[derive(Deserialize)]
struct BookingEnvelope {
    data: serde_json::Value,
}

#[async_trait::async_trait]
impl Calendar for CalcomCalendar {
    async fn free_slots(
        &self,
        service: &Service,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        time_zone: Tz,
    ) -> UpstreamResult<Vec<Slot>> {
        let mut url = self.url("/slots");
        url.query_pairs_mut()
            .append_pair("eventTypeId", &Self::event_type_id(service)?.to_string())
            .append_pair("start", &from.to_rfc3339_opts(SecondsFormat::Secs, true))
            .append_pair("end", &to.to_rfc3339_opts(SecondsFormat::Secs, true))
            .append_pair("timeZone", time_zone.name());
        let body: serde_json::Value = self
            .client
            .json("free_slots", self.auth(Call::get(url), SLOTS_VERSION))
            .await?;
        parse_slots(&body).map_err(|detail| UpstreamError::Decode {
            upstream: "calcom",
            operation: "free_slots",
            detail,
        })
    }

    async fn book(&self, r: &BookingRequest) -> UpstreamResult<Booking> {
        // Cal.com requires an attendee email; callers on the phone rarely
        // give one, so a non-deliverable placeholder stands in.
        let email = r.email.clone().unwrap_or_else(|| {
            format!(
                "{}@phone.warmline.invalid",
                r.phone.as_str().trim_start_matches('+')
            )
        });
        let mut body = json!({
            "start": r.start.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Secs, true),
            "eventTypeId": Self::event_type_id(&r.service)?,
            "attendee": {
                "name": r.name,
                "email": email,
                "timeZone": r.time_zone.name(),
                "phoneNumber": r.phone.as_str(),
            },
            "metadata": { "source": "warmline" },
        });
        if let Some(notes) = &r.notes {
            body["bookingFieldsResponses"] = json!({ "notes": notes });
        }
        let call = self.auth(Call::post(self.url("/bookings"), body), BOOKINGS_VERSION);
        let env: BookingEnvelope = self
            .client
            .json("book", call)
            .await
            .map_err(super::booking_refused)?;
        // Recurring event types answer a list; the first is this booking.
        let data = match env.data {
            serde_json::Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
            other => other,
        };
        let parse = |k: &str| {
            data.get(k)
                .and_then(|v| v.as_str())
                .and_then(|s| DateTime::<FixedOffset>::parse_from_rfc3339(s).ok())
        };
        let id = data
            .get("uid")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .or_else(|| data.get("id").map(|v| v.to_string()))
            .ok_or_else(|| UpstreamError::Decode {
                upstream: "calcom",
                operation: "book",
                detail: "booking has no uid or id".into(),
            })?;
        Ok(Booking {
            id,
            start: parse("start").unwrap_or(r.start),
            end: parse("end"),
            status: data
                .get("status")
                .and_then(|v| v.as_str())
                .unwrap_or("accepted")
                .to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_parse_from_every_day_and_an_empty_data_is_no_slots() {
        let body = json!({ "status": "success", "data": {
            "2026-09-02": [{ "start": "2026-09-02T09:00:00.000-04:00" }],
            "2026-09-01": [{ "start": "2026-09-01T10:00:00.000-04:00", "end": "2026-09-01T10:30:00.000-04:00" }]
        }});
        let slots = parse_slots(&body).unwrap();
        assert_eq!(slots.len(), 2);
        assert!(slots[0].start < slots[1].start);
        assert!(
            parse_slots(&json!({ "status": "success", "data": {} }))
                .unwrap()
                .is_empty()
        );
        assert!(parse_slots(&json!({ "status": "error" })).is_err());
    }
}
