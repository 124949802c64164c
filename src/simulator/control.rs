//! The `/_sim/` control surface: how tests and operators read call counts and
//! recorded requests and turn knobs at runtime, apart from any SaaS's routes.

use actix_web::{HttpResponse, get, post, put, web};
use serde::Deserialize;

use super::{Knob, SimState, endpoints};

#[get("/_sim/calls")]
async fn control_calls(state: web::Data<SimState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "calls": state.all_calls() }))
}

#[derive(Deserialize)]
struct RequestsQuery {
    endpoint: Option<String>,
}

#[get("/_sim/requests")]
async fn control_requests(
    state: web::Data<SimState>,
    q: web::Query<RequestsQuery>,
) -> HttpResponse {
    HttpResponse::Ok()
        .json(serde_json::json!({ "requests": state.requests(q.endpoint.as_deref()) }))
}

#[get("/_sim/knobs")]
async fn control_knobs(state: web::Data<SimState>) -> HttpResponse {
    let knobs = state
        .knobs
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    HttpResponse::Ok().json(serde_json::json!({ "knobs": knobs, "endpoints": endpoints::ALL }))
}

#[put("/_sim/knobs/{endpoint}")]
async fn control_set_knob(
    state: web::Data<SimState>,
    endpoint: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let knob: Knob = match serde_json::from_slice(&body) {
        Ok(k) => k,
        Err(e) => {
            return HttpResponse::BadRequest()
                .json(serde_json::json!({ "error": format!("invalid knob: {e}") }));
        }
    };
    match state.set_knob(&endpoint, knob.clone()) {
        Ok(()) => {
            HttpResponse::Ok().json(serde_json::json!({ "endpoint": *endpoint, "knob": knob }))
        }
        Err(e) => HttpResponse::BadRequest().json(serde_json::json!({ "error": e })),
    }
}

#[post("/_sim/reset")]
async fn control_reset(state: web::Data<SimState>) -> HttpResponse {
    state.reset();
    HttpResponse::Ok().json(serde_json::json!({ "reset": true }))
}

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(control_calls)
        .service(control_requests)
        .service(control_knobs)
        .service(control_set_knob)
        .service(control_reset);
}
