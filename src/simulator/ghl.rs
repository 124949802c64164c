//! Simulated GoHighLevel (contacts and calendars), including the per-location
//! burst limit and rate-limit headers warmline's GHL client must honour.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use serde_json::{Value, json};

use super::SimState;
use super::common::{
    Reply, error, header, json_body, parse_tz, query, route, same_phone, trace_id,
};
use super::data::{GHL_TOKEN, GhlContact};
use super::endpoints::{GHL_BOOK, GHL_FIND_CONTACT, GHL_FREE_SLOTS, GHL_UPSERT_CONTACT};
use crate::upstreams::ghl::{CALENDARS_VERSION, CONTACTS_VERSION};

/// Bearer token, the family's `Version`, then the location's burst limit.
/// Returns the remaining burst quota for the rate-limit headers.
fn ghl_guard(
    state: &SimState,
    req: &HttpRequest,
    version: &str,
    location: &str,
) -> Result<u32, HttpResponse> {
    if header(req, "authorization") != Some(&format!("Bearer {GHL_TOKEN}")) {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            json!({ "statusCode": 401, "message": "Invalid JWT" }),
        ));
    }
    match header(req, "version") {
        Some(v) if v == version => {}
        Some(v) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                json!({ "statusCode": 400, "message": format!("Version header `{v}` is not supported here; use {version}") }),
            ));
        }
        None => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                json!({ "statusCode": 400, "message": "Version header was not found" }),
            ));
        }
    }
    state.ghl_burst(location).ok_or_else(|| {
        HttpResponse::TooManyRequests()
            .insert_header(("x-ratelimit-max", state.ghl_burst_limit.to_string()))
            .insert_header(("x-ratelimit-remaining", "0"))
            .insert_header(("x-ratelimit-interval-milliseconds", "10000"))
            .json(json!({ "statusCode": 429, "message": "Too many requests" }))
    })
}

fn ghl_ok(state: &SimState, status: StatusCode, remaining: u32, body: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("x-ratelimit-limit-daily", "200000"))
        .insert_header(("x-ratelimit-daily-remaining", "199000"))
        .insert_header(("x-ratelimit-interval-milliseconds", "10000"))
        .insert_header(("x-ratelimit-max", state.ghl_burst_limit.to_string()))
        .insert_header(("x-ratelimit-remaining", remaining.to_string()))
        .json(body)
}

async fn ghl_find_contact(state: web::Data<SimState>, req: HttpRequest, body: web::Bytes) -> Reply {
    state.enter(GHL_FIND_CONTACT, &req, &body).await?;
    let location = query(&req, "locationId")
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "statusCode": 422, "message": ["locationId should not be empty"] }),
            )
        })?;
    let remaining = ghl_guard(&state, &req, CONTACTS_VERSION, &location)?;
    let number = query(&req, "number");
    let email = query(&req, "email");
    let data = state.data.lock().unwrap_or_else(|p| p.into_inner());
    let found = data.contacts.iter().find(|c| {
        c.location_id == location
            && (email
                .as_deref()
                .is_some_and(|e| c.email.as_deref() == Some(e))
                || number
                    .as_deref()
                    .is_some_and(|n| c.phone.as_deref().is_some_and(|p| same_phone(p, n))))
    });
    Ok(ghl_ok(
        &state,
        StatusCode::OK,
        remaining,
        json!({ "contact": found.map(GhlContact::to_json) }),
    ))
}

async fn ghl_upsert_contact(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Reply {
    state.enter(GHL_UPSERT_CONTACT, &req, &body).await?;
    let b = json_body(&body)?;
    let location = b["locationId"]
        .as_str()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "statusCode": 422, "message": ["locationId should not be empty"] }),
            )
        })?
        .to_owned();
    let remaining = ghl_guard(&state, &req, CONTACTS_VERSION, &location)?;
    let text = |k: &str| b[k].as_str().map(str::to_owned);
    let mut data = state.data.lock().unwrap_or_else(|p| p.into_inner());
    let existing = data.contacts.iter().position(|c| {
        c.location_id == location
            && (text("phone")
                .is_some_and(|n| c.phone.as_deref().is_some_and(|p| same_phone(p, &n)))
                || text("email").is_some_and(|e| c.email.as_deref() == Some(e.as_str())))
    });
    let is_new = existing.is_none();
    let index = match existing {
        Some(i) => i,
        None => {
            let id = data.id("ct");
            data.contacts.push(GhlContact {
                id,
                location_id: location.clone(),
                first_name: None,
                last_name: None,
                email: None,
                phone: None,
                tags: Vec::new(),
            });
            data.contacts.len() - 1
        }
    };
    let c = &mut data.contacts[index];
    if let Some(v) = text("firstName") {
        c.first_name = Some(v);
    }
    if let Some(v) = text("lastName") {
        c.last_name = Some(v);
    }
    if let Some(v) = text("email") {
        c.email = Some(v);
    }
    if let Some(v) = text("phone") {
        c.phone = Some(v);
    }
    if let Some(tags) = b["tags"].as_array() {
        // GoHighLevel overwrites all tags.
        c.tags = tags
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
    }
    let contact = c.to_json();
    Ok(ghl_ok(
        &state,
        StatusCode::OK,
        remaining,
        json!({ "new": is_new, "contact": contact, "traceId": trace_id() }),
    ))
}

async fn ghl_free_slots(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
    path: web::Path<String>,
) -> Reply {
    state.enter(GHL_FREE_SLOTS, &req, &body).await?;
    let calendar = path.into_inner();
    let remaining = ghl_guard(
        &state,
        &req,
        CALENDARS_VERSION,
        &format!("calendar:{calendar}"),
    )?;
    let ms = |name: &str| {
        query(&req, name)
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|v| Utc.timestamp_millis_opt(v).single())
            .ok_or_else(|| error(StatusCode::UNPROCESSABLE_ENTITY, json!({ "statusCode": 422, "message": [format!("{name} must be a number (milliseconds since the epoch)")] })))
    };
    let (from, to) = (ms("startDate")?, ms("endDate")?);
    if to <= from || to - from > Duration::days(31) {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "statusCode": 422, "message": ["endDate must be after startDate and within 31 days"] }),
        ));
    }
    let tz = parse_tz(query(&req, "timezone").as_deref())?;
    let data = state.data.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = serde_json::Map::new();
    for (day, slots) in data.free_slots(&calendar, from, to, tz) {
        let list: Vec<String> = slots
            .iter()
            .map(|s| s.to_rfc3339_opts(SecondsFormat::Secs, false))
            .collect();
        out.insert(day.to_string(), json!({ "slots": list }));
    }
    // The real API's quirk: a trace id among the dates.
    out.insert("traceId".into(), trace_id().into());
    Ok(ghl_ok(
        &state,
        StatusCode::OK,
        remaining,
        Value::Object(out),
    ))
}

async fn ghl_book(state: web::Data<SimState>, req: HttpRequest, body: web::Bytes) -> Reply {
    state.enter(GHL_BOOK, &req, &body).await?;
    let b = json_body(&body)?;
    let missing: Vec<String> = ["calendarId", "locationId", "contactId", "startTime"]
        .iter()
        .filter(|k| b[**k].as_str().is_none_or(str::is_empty))
        .map(|k| format!("{k} should not be empty"))
        .collect();
    if !missing.is_empty() {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "statusCode": 422, "message": missing }),
        ));
    }
    let location = b["locationId"].as_str().unwrap_or_default().to_owned();
    let remaining = ghl_guard(&state, &req, CALENDARS_VERSION, &location)?;
    let start =
        DateTime::parse_from_rfc3339(b["startTime"].as_str().unwrap_or_default()).map_err(|e| {
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "statusCode": 422, "message": [format!("startTime: {e}")] }),
            )
        })?;
    let calendar = b["calendarId"].as_str().unwrap_or_default().to_owned();
    let mut data = state.data.lock().unwrap_or_else(|p| p.into_inner());
    if !data
        .contacts
        .iter()
        .any(|c| Some(c.id.as_str()) == b["contactId"].as_str())
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            json!({ "statusCode": 400, "message": "Contact not found" }),
        ));
    }
    if !data.book(&calendar, start.with_timezone(&Utc)) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            json!({ "statusCode": 400, "message": "The slot you have selected is no longer available." }),
        ));
    }
    let id = data.id("appt");
    let end = b["endTime"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| (start + Duration::minutes(30)).to_rfc3339());
    Ok(ghl_ok(
        &state,
        StatusCode::CREATED,
        remaining,
        json!({
            "id": id, "calendarId": calendar, "locationId": location, "contactId": b["contactId"],
            "startTime": start.to_rfc3339(), "endTime": end, "title": b["title"],
            "appointmentStatus": b["appointmentStatus"].as_str().unwrap_or("confirmed"),
            "isRecurring": false,
        }),
    ))
}

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/contacts/search/duplicate",
        web::get().to(route!(ghl_find_contact)),
    )
    .route(
        "/contacts/upsert",
        web::post().to(route!(ghl_upsert_contact)),
    )
    .route(
        "/calendars/{calendar_id}/free-slots",
        web::get().to(route!(ghl_free_slots, path)),
    )
    .route(
        "/calendars/events/appointments",
        web::post().to(route!(ghl_book)),
    );
}
