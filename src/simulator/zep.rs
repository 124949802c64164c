//! Simulated Zep (v3 SDK generation: users and threads under `/api/v2`), so
//! memory writes and context reads can be exercised without Zep Cloud.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde_json::json;

use super::SimState;
use super::common::{Reply, error, header, json_body, route};
use super::data::{ZEP_KEY, ZepThread};
use super::endpoints::{ZEP_ADD_MESSAGES, ZEP_CONTEXT, ZEP_CREATE_THREAD, ZEP_CREATE_USER};

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

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v2/users", web::post().to(route!(zep_create_user)))
        .route("/api/v2/threads", web::post().to(route!(zep_create_thread)))
        .route(
            "/api/v2/threads/{thread_id}/messages",
            web::post().to(route!(zep_add_messages, path)),
        )
        .route(
            "/api/v2/threads/{thread_id}/context",
            web::get().to(route!(zep_context, path)),
        );
}
