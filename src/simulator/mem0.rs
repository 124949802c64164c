//! Simulated mem0 (v3 memories), strict about v3's `filters` shape so a
//! client still sending v1-style entity ids is caught in tests.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::SimState;
use super::common::{Reply, error, header, json_body, route};
use super::data::MEM0_KEY;
use super::endpoints::{MEM0_ADD, MEM0_SEARCH};

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

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v3/memories/search/", web::post().to(route!(mem0_search)))
        .route("/v3/memories/add/", web::post().to(route!(mem0_add)));
}
