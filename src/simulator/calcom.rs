//! Simulated Cal.com (v2 slots and bookings), which unlike the real API refuses
//! a missing `cal-api-version` so a forgotten header fails in tests.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, TimeZone, Utc};
use serde_json::{Value, json};

use super::SimState;
use super::common::{Reply, error, header, json_body, parse_tz, query, route};
use super::data::CALCOM_KEY;
use super::endpoints::{CALCOM_BOOK, CALCOM_SLOTS};
use crate::upstreams::calcom::{BOOKINGS_VERSION, SLOTS_VERSION};

fn calcom_guard(req: &HttpRequest, versions: &[&str]) -> Result<(), HttpResponse> {
    let err = |status: StatusCode, message: String| {
        error(
            status,
            json!({ "status": "error", "error": { "code": status.as_u16(), "message": message } }),
        )
    };
    if header(req, "authorization") != Some(&format!("Bearer {CALCOM_KEY}")) {
        return Err(err(StatusCode::UNAUTHORIZED, "invalid API key".into()));
    }
    match header(req, "cal-api-version") {
        Some(v) if versions.contains(&v) => Ok(()),
        Some(v) => Err(err(
            StatusCode::BAD_REQUEST,
            format!(
                "cal-api-version `{v}` is not served here; use {}",
                versions.join(" or ")
            ),
        )),
        // The real API silently falls back to an older version; the
        // simulator refuses, so the mistake is caught in tests.
        None => Err(err(
            StatusCode::BAD_REQUEST,
            format!(
                "missing cal-api-version header (expected {})",
                versions.join(" or ")
            ),
        )),
    }
}

fn calcom_time(raw: &str, end_of_day: bool) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()?;
    let t = if end_of_day {
        day.and_hms_opt(23, 59, 59)?
    } else {
        day.and_hms_opt(0, 0, 0)?
    };
    Some(Utc.from_utc_datetime(&t))
}

async fn calcom_slots(state: web::Data<SimState>, req: HttpRequest, body: web::Bytes) -> Reply {
    state.enter(CALCOM_SLOTS, &req, &body).await?;
    calcom_guard(&req, &[SLOTS_VERSION])?;
    let bad = |m: &str| {
        error(
            StatusCode::BAD_REQUEST,
            json!({ "status": "error", "error": { "code": 400, "message": m } }),
        )
    };
    let event = query(&req, "eventTypeId")
        .filter(|e| e.parse::<i64>().is_ok())
        .ok_or_else(|| bad("eventTypeId is required"))?;
    let from = query(&req, "start")
        .and_then(|s| calcom_time(&s, false))
        .ok_or_else(|| bad("start must be an ISO 8601 date or time"))?;
    let to = query(&req, "end")
        .and_then(|s| calcom_time(&s, true))
        .ok_or_else(|| bad("end must be an ISO 8601 date or time"))?;
    let tz = parse_tz(query(&req, "timeZone").as_deref())?;
    let data = state.data.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = serde_json::Map::new();
    for (day, slots) in data.free_slots(&format!("evt:{event}"), from, to, tz) {
        if !slots.is_empty() {
            let list: Vec<Value> = slots
                .iter()
                .map(|s| json!({ "start": s.to_rfc3339_opts(SecondsFormat::Millis, false) }))
                .collect();
            out.insert(day.to_string(), Value::Array(list));
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "status": "success", "data": out })))
}

async fn calcom_book(state: web::Data<SimState>, req: HttpRequest, body: web::Bytes) -> Reply {
    state.enter(CALCOM_BOOK, &req, &body).await?;
    calcom_guard(&req, &[BOOKINGS_VERSION, "2024-08-13"])?;
    let b = json_body(&body)?;
    let bad = |m: String| {
        error(
            StatusCode::BAD_REQUEST,
            json!({ "status": "error", "error": { "code": 400, "message": m } }),
        )
    };
    let start = b["start"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .ok_or_else(|| bad("start must be an ISO 8601 UTC time".into()))?;
    let event = b["eventTypeId"]
        .as_i64()
        .ok_or_else(|| bad("eventTypeId is required".into()))?;
    for field in ["name", "email", "timeZone"] {
        if b["attendee"][field].as_str().is_none_or(str::is_empty) {
            return Err(bad(format!("attendee.{field} is required")));
        }
    }
    let mut data = state.data.lock().unwrap_or_else(|p| p.into_inner());
    if !data.book(&format!("evt:{event}"), start.with_timezone(&Utc)) {
        return Err(bad("the requested time is not available".into()));
    }
    let id = data.id("bk");
    let end = start + Duration::minutes(30);
    Ok(
        HttpResponse::Created().json(json!({ "status": "success", "data": {
            "id": id.trim_start_matches("bk_").parse::<i64>().unwrap_or(1), "uid": id,
            "title": format!("Booking with {}", b["attendee"]["name"].as_str().unwrap_or("")),
            "status": "accepted",
            "start": start.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Secs, true),
            "end": end.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Secs, true),
            "duration": 30, "eventTypeId": event,
            "attendees": [b["attendee"]], "metadata": b["metadata"],
            "createdAt": Utc::now().to_rfc3339(),
        }})),
    )
}

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v2/slots", web::get().to(route!(calcom_slots)))
        .route("/v2/bookings", web::post().to(route!(calcom_book)));
}
