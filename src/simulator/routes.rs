//! The simulated upstream endpoints, one block per SaaS, with the same auth
//! and version-header checks as the real APIs.

// A rejection here is the response itself, carried in `Err` so checks can
// use `?`; its size does not matter off warmline's hot path.
#![allow(clippy::result_large_err)]

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::SimState;
use super::data::{CALCOM_KEY, GHL_TOKEN, GhlContact, MEM0_KEY, ZEP_KEY, ZepThread};
use super::endpoints::*;
use crate::domain::PhoneNumber;
use crate::upstreams::calcom::{BOOKINGS_VERSION, SLOTS_VERSION};
use crate::upstreams::ghl::{CALENDARS_VERSION, CONTACTS_VERSION};

type Reply = Result<HttpResponse, HttpResponse>;

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn error(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

fn json_body(body: &[u8]) -> Result<Value, HttpResponse> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            json!({ "message": format!("invalid JSON body: {e}") }),
        )
    })
}

fn query(req: &HttpRequest, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn same_phone(a: &str, b: &str) -> bool {
    matches!((PhoneNumber::parse(a), PhoneNumber::parse(b)), (Ok(x), Ok(y)) if x == y)
}

fn trace_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------- GoHighLevel

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

fn parse_tz(raw: Option<&str>) -> Result<Tz, HttpResponse> {
    raw.unwrap_or("UTC").parse::<Tz>().map_err(|_| {
        error(StatusCode::BAD_REQUEST, json!({ "statusCode": 400, "message": format!("invalid timezone `{}`", raw.unwrap_or("")) }))
    })
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

// ----------------------------------------------------------------------- Zep

fn zep_guard(req: &HttpRequest) -> Result<(), HttpResponse> {
    if header(req, "authorization") == Some(&format!("Api-Key {ZEP_KEY}")) {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            json!({ "message": "unauthorized: expected `Authorization: Api-Key <key>`" }),
        ))
    }
}

async fn zep_create_user(state: web::Data<SimState>, req: HttpRequest, body: web::Bytes) -> Reply {
    state.enter(ZEP_CREATE_USER, &req, &body).await?;
    zep_guard(&req)?;
    let b = json_body(&body)?;
    let user = b["user_id"]
        .as_str()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                json!({ "message": "user_id is required" }),
            )
        })?;
    let mut data = state.data.lock().unwrap_or_else(|p| p.into_inner());
    if !data.zep_users.insert(user.to_owned()) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            json!({ "message": "user already exists" }),
        ));
    }
    Ok(HttpResponse::Created().json(json!({ "uuid": uuid::Uuid::new_v4().to_string(), "user_id": user, "first_name": b["first_name"], "created_at": Utc::now().to_rfc3339() })))
}

async fn zep_create_thread(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Reply {
    state.enter(ZEP_CREATE_THREAD, &req, &body).await?;
    zep_guard(&req)?;
    let b = json_body(&body)?;
    let (Some(thread), Some(user)) = (b["thread_id"].as_str(), b["user_id"].as_str()) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            json!({ "message": "thread_id and user_id are required" }),
        ));
    };
    let mut data = state.data.lock().unwrap_or_else(|p| p.into_inner());
    if !data.zep_users.contains(user) {
        return Err(error(
            StatusCode::NOT_FOUND,
            json!({ "message": "user not found" }),
        ));
    }
    if data.zep_threads.contains_key(thread) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            json!({ "message": "thread already exists" }),
        ));
    }
    data.zep_threads.insert(
        thread.to_owned(),
        ZepThread {
            user_id: user.to_owned(),
            messages: Vec::new(),
        },
    );
    Ok(HttpResponse::Created().json(
        json!({ "uuid": uuid::Uuid::new_v4().to_string(), "thread_id": thread, "user_id": user }),
    ))
}

async fn zep_add_messages(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
    path: web::Path<String>,
) -> Reply {
    state.enter(ZEP_ADD_MESSAGES, &req, &body).await?;
    zep_guard(&req)?;
    let b = json_body(&body)?;
    let messages = b["messages"]
        .as_array()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                json!({ "message": "messages is required" }),
            )
        })?;
    const ROLES: [&str; 6] = ["norole", "system", "assistant", "user", "function", "tool"];
    let mut parsed = Vec::new();
    for m in messages {
        let role = m["role"].as_str().unwrap_or_default();
        if !ROLES.contains(&role) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                json!({ "message": format!("invalid role `{role}`") }),
            ));
        }
        parsed.push((
            role.to_owned(),
            m["content"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let mut data = state.data.lock().unwrap_or_else(|p| p.into_inner());
    let thread = data.zep_threads.get_mut(path.as_str()).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            json!({ "message": "thread not found" }),
        )
    })?;
    let ids: Vec<String> = parsed
        .iter()
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    thread.messages.extend(parsed);
    Ok(HttpResponse::Ok().json(json!({ "message_uuids": ids })))
}

async fn zep_context(
    state: web::Data<SimState>,
    req: HttpRequest,
    body: web::Bytes,
    path: web::Path<String>,
) -> Reply {
    state.enter(ZEP_CONTEXT, &req, &body).await?;
    zep_guard(&req)?;
    let data = state.data.lock().unwrap_or_else(|p| p.into_inner());
    let context = data.zep_context(path.as_str()).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            json!({ "message": "thread not found" }),
        )
    })?;
    Ok(HttpResponse::Ok().json(json!({ "context": context })))
}

// ---------------------------------------------------------------------- mem0

fn mem0_guard(req: &HttpRequest) -> Result<(), HttpResponse> {
    if header(req, "authorization") == Some(&format!("Token {MEM0_KEY}")) {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            json!({ "detail": "Invalid API key: expected `Authorization: Token <key>`" }),
        ))
    }
}

const ENTITY_IDS: [&str; 4] = ["user_id", "agent_id", "app_id", "run_id"];

async fn mem0_search(state: web::Data<SimState>, req: HttpRequest, body: web::Bytes) -> Reply {
    state.enter(MEM0_SEARCH, &req, &body).await?;
    mem0_guard(&req)?;
    let b = json_body(&body)?;
    if b["query"].as_str().is_none_or(str::is_empty) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            json!({ "detail": "query is required" }),
        ));
    }
    if let Some(id) = ENTITY_IDS.iter().find(|k| !b[**k].is_null()) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            json!({ "detail": format!("`{id}` must be inside `filters` in v3 search") }),
        ));
    }
    let user = b["filters"]["user_id"].as_str().ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            json!({ "detail": "filters must name at least one entity id" }),
        )
    })?;
    let top_k = b["top_k"].as_u64().unwrap_or(10).clamp(1, 1000) as usize;
    let data = state.data.lock().unwrap_or_else(|p| p.into_inner());
    let facts = data.facts.get(user).cloned().unwrap_or_default();
    let results: Vec<Value> = facts
        .iter()
        .enumerate()
        .take(top_k)
        .map(|(i, f)| {
            json!({
                "id": format!("mem_{i}"), "memory": f, "user_id": user, "metadata": null,
                "score": 0.9 - 0.05 * i as f64, "categories": [],
                "created_at": "2026-03-02T10:00:00Z", "updated_at": "2026-03-02T10:00:00Z",
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "results": results })))
}

async fn mem0_add(state: web::Data<SimState>, req: HttpRequest, body: web::Bytes) -> Reply {
    state.enter(MEM0_ADD, &req, &body).await?;
    mem0_guard(&req)?;
    let b = json_body(&body)?;
    let messages = b["messages"]
        .as_array()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                json!({ "detail": "messages is required" }),
            )
        })?;
    let Some(user) = b["user_id"].as_str() else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            json!({ "detail": "one of user_id, agent_id, app_id, run_id is required" }),
        ));
    };
    let mut data = state.data.lock().unwrap_or_else(|p| p.into_inner());
    let facts = data.facts.entry(user.to_owned()).or_default();
    for m in messages.iter().filter(|m| m["role"] == "user") {
        if let Some(c) = m["content"].as_str() {
            facts.push(c.to_owned());
        }
    }
    Ok(HttpResponse::Ok()
        .json(json!({ "event_id": uuid::Uuid::new_v4().to_string(), "status": "PENDING" })))
}

// ------------------------------------------------------------------- Cal.com

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

/// Adapts a handler returning `Result<HttpResponse, HttpResponse>` (so it can
/// use `?` on its checks) to actix.
macro_rules! route {
    ($f:ident) => {
        |s: web::Data<SimState>, r: HttpRequest, b: web::Bytes| async move {
            $f(s, r, b).await.unwrap_or_else(|e| e)
        }
    };
    ($f:ident, path) => {
        |s: web::Data<SimState>, r: HttpRequest, b: web::Bytes, p: web::Path<String>| async move {
            $f(s, r, b, p).await.unwrap_or_else(|e| e)
        }
    };
}

pub fn configure(cfg: &mut web::ServiceConfig) {
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
    )
    .route("/api/v2/users", web::post().to(route!(zep_create_user)))
    .route("/api/v2/threads", web::post().to(route!(zep_create_thread)))
    .route(
        "/api/v2/threads/{thread_id}/messages",
        web::post().to(route!(zep_add_messages, path)),
    )
    .route(
        "/api/v2/threads/{thread_id}/context",
        web::get().to(route!(zep_context, path)),
    )
    .route("/v3/memories/search/", web::post().to(route!(mem0_search)))
    .route("/v3/memories/add/", web::post().to(route!(mem0_add)))
    .route("/v2/slots", web::get().to(route!(calcom_slots)))
    .route("/v2/bookings", web::post().to(route!(calcom_book)));
}
