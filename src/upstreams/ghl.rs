//! GoHighLevel / LeadConnector API v2: contacts (CRM) and calendars.
//!
//! `Authorization: Bearer <location token>` and a `Version` header that
//! differs per API family: contacts `2021-07-28`, calendars `2021-04-15`.

use std::sync::Arc;

use chrono::{DateTime, Duration as ChronoDuration, FixedOffset, Utc};
use chrono_tz::Tz;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::http::{Call, UpstreamClient, join_path};
use super::{
    Booking, BookingRequest, Calendar, Contact, ContactUpsert, Crm, Service, Slot, UpstreamError,
    UpstreamResult,
};
use crate::domain::PhoneNumber;
use crate::support::{Admission, RateLimiter};

pub const CONTACTS_VERSION: &str = "2021-07-28";
pub const CALENDARS_VERSION: &str = "2021-04-15";
/// GoHighLevel refuses free-slot ranges longer than this.
const MAX_RANGE_DAYS: i64 = 31;

/// The shared part of both GoHighLevel adapters.
#[derive(Clone)]
pub struct Ghl {
    client: Arc<UpstreamClient>,
    base: Url,
    token: SecretString,
    location_id: String,
    /// GoHighLevel's quota per location, shared with the other replicas.
    limiter: Arc<RateLimiter>,
}

impl Ghl {
    pub fn new(
        client: Arc<UpstreamClient>,
        base: Url,
        token: SecretString,
        location_id: String,
        limiter: Arc<RateLimiter>,
    ) -> Self {
        Ghl {
            client,
            base,
            token,
            location_id,
            limiter,
        }
    }

    /// Sends `call` if the location's quota allows it: over the quota the
    /// call is not sent, and the caller gets [`UpstreamError::RateLimited`]
    /// (the cache then serves what it has) instead of GoHighLevel's 429.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        call: Call,
    ) -> UpstreamResult<T> {
        let key = format!("gohighlevel:{}", self.location_id);
        if let Admission::Throttled { retry_after, by } = self.limiter.admit(&key).await {
            metrics::counter!("warmline_upstream_throttled_total", "upstream" => "gohighlevel", "counter" => by.as_str())
                .increment(1);
            tracing::info!(
                operation,
                counter = by.as_str(),
                retry_after_ms = retry_after.as_millis() as u64,
                "gohighlevel quota of this location used up: not sent"
            );
            return Err(UpstreamError::RateLimited {
                upstream: "gohighlevel",
                operation,
                retry_after,
            });
        }
        self.client.json(operation, call).await
    }

    fn url(&self, path: &str) -> Url {
        join_path(&self.base, "", path)
    }

    fn auth(&self, call: Call, version: &str) -> Call {
        call.header(
            "authorization",
            format!("Bearer {}", self.token.expose_secret()),
        )
        .header("version", version)
        .header("accept", "application/json")
    }

    async fn upsert(&self, c: &ContactUpsert) -> UpstreamResult<Contact> {
        let mut body = json!({ "locationId": self.location_id });
        let fields = [
            ("phone", c.phone.as_ref().map(|p| p.as_str().to_owned())),
            ("firstName", c.first_name.clone()),
            ("lastName", c.last_name.clone()),
            ("email", c.email.clone()),
            ("source", c.source.clone()),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                body[k] = v.into();
            }
        }
        if let Some(tags) = &c.tags {
            body["tags"] = json!(tags);
        }
        let call = self.auth(
            Call::post(self.url("/contacts/upsert"), body),
            CONTACTS_VERSION,
        );
        let resp: UpsertResponse = self.json("upsert_contact", call).await?;
        Ok(resp.contact.into())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GhlContact {
    id: String,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

impl From<GhlContact> for Contact {
    fn from(c: GhlContact) -> Self {
        Contact {
            id: c.id,
            first_name: c.first_name,
            last_name: c.last_name,
            email: c.email,
            phone: c.phone.and_then(|p| PhoneNumber::parse(&p).ok()),
            tags: c.tags,
        }
    }
}

#[derive(Deserialize)]
struct DuplicateResponse {
    contact: Option<GhlContact>,
}

#[derive(Deserialize)]
struct UpsertResponse {
    contact: GhlContact,
}

pub struct GhlCrm(pub Ghl);

#[async_trait::async_trait]
impl Crm for GhlCrm {
    async fn find_contact_by_phone(&self, phone: &PhoneNumber) -> UpstreamResult<Option<Contact>> {
        let g = &self.0;
        let mut url = g.url("/contacts/search/duplicate");
        url.query_pairs_mut()
            .append_pair("locationId", &g.location_id)
            .append_pair("number", phone.as_str());
        let resp: DuplicateResponse = g
            .json("find_contact", g.auth(Call::get(url), CONTACTS_VERSION))
            .await?;
        Ok(resp.contact.map(Contact::from))
    }

    async fn upsert_contact(&self, contact: &ContactUpsert) -> UpstreamResult<Contact> {
        self.0.upsert(contact).await
    }
}

pub struct GhlCalendar(pub Ghl);

/// Reads the free-slots answer: dates → `{"slots": [...]}`, skipping keys that
/// are not dates (real answers carry a top-level `traceId`).
pub fn parse_free_slots(body: &serde_json::Value) -> Result<Vec<Slot>, String> {
    let map = body.as_object().ok_or("expected a JSON object")?;
    let mut slots = Vec::new();
    for (key, day) in map {
        if chrono::NaiveDate::parse_from_str(key, "%Y-%m-%d").is_err() {
            continue;
        }
        let Some(list) = day.get("slots").and_then(|s| s.as_array()) else {
            continue;
        };
        for s in list {
            let raw = s.as_str().ok_or("a slot is not a string")?;
            let start =
                DateTime::parse_from_rfc3339(raw).map_err(|e| format!("slot `{raw}`: {e}"))?;
            slots.push(Slot { start });
        }
    }
    slots.sort();
    Ok(slots)
}

#[async_trait::async_trait]
impl Calendar for GhlCalendar {
    async fn free_slots(
        &self,
        service: &Service,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        time_zone: Tz,
    ) -> UpstreamResult<Vec<Slot>> {
        let g = &self.0;
        let mut all = Vec::new();
        let mut start = from;
        while start < to {
            let end = (start + ChronoDuration::days(MAX_RANGE_DAYS)).min(to);
            let mut url = g.url(&format!("/calendars/{}/free-slots", service.calendar_ref));
            url.query_pairs_mut()
                .append_pair("startDate", &start.timestamp_millis().to_string())
                .append_pair("endDate", &end.timestamp_millis().to_string())
                .append_pair("timezone", time_zone.name());
            let body: serde_json::Value = g
                .json("free_slots", g.auth(Call::get(url), CALENDARS_VERSION))
                .await?;
            all.extend(
                parse_free_slots(&body).map_err(|detail| UpstreamError::Decode {
                    upstream: "gohighlevel",
                    operation: "free_slots",
                    detail,
                })?,
            );
            start = end;
        }
        Ok(all)
    }

    async fn book(&self, r: &BookingRequest) -> UpstreamResult<Booking> {
        let g = &self.0;
        // An appointment needs a contact id: make sure the caller exists.
        let contact_id = match &r.contact_id {
            Some(id) => id.clone(),
            None => {
                let (first, last) = split_name(&r.name);
                g.upsert(&ContactUpsert {
                    phone: Some(r.phone.clone()),
                    first_name: first,
                    last_name: last,
                    email: r.email.clone(),
                    ..Default::default()
                })
                .await?
                .id
            }
        };
        let end = r.start + ChronoDuration::minutes(i64::from(r.service.duration_minutes));
        let mut body = json!({
            "calendarId": r.service.calendar_ref,
            "locationId": g.location_id,
            "contactId": contact_id,
            "startTime": r.start.to_rfc3339(),
            "endTime": end.to_rfc3339(),
            "title": format!("{} – {}", r.service.name, r.name),
            "appointmentStatus": "confirmed",
        });
        if let Some(notes) = &r.notes {
            body["description"] = notes.clone().into();
        }
        let call = g.auth(
            Call::post(g.url("/calendars/events/appointments"), body),
            CALENDARS_VERSION,
        );
        let resp: AppointmentResponse =
            g.json("book", call).await.map_err(super::booking_refused)?;
        let parse = |s: &str| DateTime::<FixedOffset>::parse_from_rfc3339(s).ok();
        Ok(Booking {
            id: resp.id,
            start: resp
                .start_time
                .as_deref()
                .and_then(parse)
                .unwrap_or(r.start),
            end: resp.end_time.as_deref().and_then(parse).or(Some(end)),
            status: resp
                .appointment_status
                .unwrap_or_else(|| "confirmed".into()),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppointmentResponse {
    id: String,
    start_time: Option<String>,
    end_time: Option<String>,
    appointment_status: Option<String>,
}

/// "Ana Souza Lima" → ("Ana", "Souza Lima").
pub fn split_name(name: &str) -> (Option<String>, Option<String>) {
    let name = name.trim();
    match name.split_once(' ') {
        Some((first, last)) => (Some(first.to_owned()), Some(last.trim().to_owned())),
        None if !name.is_empty() => (Some(name.to_owned()), None),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_slots_skip_the_trace_id_and_empty_days() {
        let body = json!({
            "2026-09-01": { "slots": ["2026-09-01T10:30:00-05:00", "2026-09-01T10:00:00-05:00"] },
            "2026-09-02": { "slots": [] },
            "traceId": "7d0f3a0c-1111-2222-3333-444455556666"
        });
        let slots = parse_free_slots(&body).unwrap();
        let starts: Vec<String> = slots.iter().map(|s| s.start.to_rfc3339()).collect();
        assert_eq!(
            starts,
            ["2026-09-01T10:00:00-05:00", "2026-09-01T10:30:00-05:00"]
        );
        assert!(parse_free_slots(&json!({})).unwrap().is_empty());
        assert!(parse_free_slots(&json!({"2026-09-01": {"slots": ["soon"]}})).is_err());
    }

    #[test]
    fn names_split_into_first_and_last() {
        assert_eq!(
            split_name("Ana Souza Lima"),
            (Some("Ana".into()), Some("Souza Lima".into()))
        );
        assert_eq!(split_name("Ana"), (Some("Ana".into()), None));
        assert_eq!(split_name("  "), (None, None));
    }
}
