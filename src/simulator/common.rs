//! What every simulated SaaS shares: request reading, error replies and the
//! `route!` adapter, kept once so the per-SaaS files differ only in wire format.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::domain::PhoneNumber;

pub(super) type Reply = Result<HttpResponse, HttpResponse>;

pub(super) fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn error(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

pub(super) fn json_body(body: &[u8]) -> Result<Value, HttpResponse> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            json!({ "message": format!("invalid JSON body: {e}") }),
        )
    })
}

pub(super) fn query(req: &HttpRequest, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub(super) fn same_phone(a: &str, b: &str) -> bool {
    matches!((PhoneNumber::parse(a), PhoneNumber::parse(b)), (Ok(x), Ok(y)) if x == y)
}

pub(super) fn trace_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(super) fn parse_tz(raw: Option<&str>) -> Result<Tz, HttpResponse> {
    raw.unwrap_or("UTC").parse::<Tz>().map_err(|_| {
        error(StatusCode::BAD_REQUEST, json!({ "statusCode": 400, "message": format!("invalid timezone `{}`", raw.unwrap_or("")) }))
    })
}

/// Adapts a handler returning `Result<HttpResponse, HttpResponse>` (so it can
/// use `?` on its checks) to actix. Paths are absolute so it expands the same
/// in every SaaS file whatever that file imports.
macro_rules! route {
    ($f:ident) => {
        |s: ::actix_web::web::Data<$crate::simulator::SimState>,
         r: ::actix_web::HttpRequest,
         b: ::actix_web::web::Bytes| async move { $f(s, r, b).await.unwrap_or_else(|e| e) }
    };
    ($f:ident, path) => {
        |s: ::actix_web::web::Data<$crate::simulator::SimState>,
         r: ::actix_web::HttpRequest,
         b: ::actix_web::web::Bytes,
         p: ::actix_web::web::Path<String>| async move {
            $f(s, r, b, p).await.unwrap_or_else(|e| e)
        }
    };
}
pub(super) use route;
