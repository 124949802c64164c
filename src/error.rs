//! The one application error, mapped to HTTP once.
//!
//! Clients get a JSON body `{"error": {"code": …, "message": …}}`. A client
//! mistake names what was wrong with the request; a failure inside warmline
//! gets a fixed sentence per kind, and its whole cause chain is logged here,
//! once, with phone numbers masked — never sent to the caller. Store, cache
//! and write-behind errors convert with `?`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::cache::CacheError;
use crate::domain::mask_phones_in;
use crate::store::StoreError;
use crate::support::json::{self, JsonProblem};
use crate::writebehind::WriteError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// Something warmline depends on (the database, the cache's loaders, the
    /// write-behind) could not answer: retrying later may work.
    #[error("a service warmline depends on is unavailable; retry shortly")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            ApiError::Unavailable(e.into())
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl From<CacheError> for ApiError {
    fn from(e: CacheError) -> Self {
        ApiError::Unavailable(e.into())
    }
}

impl From<WriteError> for ApiError {
    /// Not made durable: the platform must retry, so a 503.
    fn from(e: WriteError) -> Self {
        ApiError::Unavailable(e.into())
    }
}

impl From<JsonProblem> for ApiError {
    fn from(e: JsonProblem) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Unavailable(cause) | ApiError::Internal(cause) = self {
            // `{:#}` prints the anyhow chain on one line: "a: b: c".
            tracing::error!(
                code = self.code(),
                error = mask_phones_in(&format!("{cause:#}")),
                "request failed"
            );
        }
        let mut resp = HttpResponse::build(self.status_code());
        if let ApiError::Unauthorized(_) = self {
            resp.insert_header(("www-authenticate", "Bearer"));
        }
        resp.json(serde_json::json!({
            "error": { "code": self.code(), "message": self.to_string() }
        }))
    }
}

/// Turns actix's own extractor errors (bad JSON, oversized bodies, bad query
/// strings) into [`ApiError`]s so every client mistake gets the same shape.
pub fn json_error_handler(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    match err {
        J::OverflowKnownLength { limit, .. } | J::Overflow { limit } => {
            ApiError::PayloadTooLarge { limit }.into()
        }
        J::ContentType => {
            ApiError::BadRequest("expected Content-Type: application/json".into()).into()
        }
        J::Deserialize(e) => {
            ApiError::BadRequest(format!("invalid JSON body: {}", json::describe(&e))).into()
        }
        other => ApiError::BadRequest(other.to_string()).into(),
    }
}

pub fn query_error_handler(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid query string: {err}")).into()
}

/// Unknown routes answer in the same JSON shape as every other error.
pub async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        mask_phones_in(req.path())
    )))
}
