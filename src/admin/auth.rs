//! Bearer-token authentication of the admin JSON API.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use secrecy::ExposeSecret;

use super::AdminSettings;
use crate::error::ApiError;
use crate::support::constant_time_eq;

/// Proof that the request carried `Authorization: Bearer $WARMLINE_ADMIN_TOKEN`.
/// Taking it as a handler argument is what protects the handler.
pub struct AdminToken;

impl FromRequest for AdminToken {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(check(req))
    }
}

fn check(req: &HttpRequest) -> Result<AdminToken, ApiError> {
    let settings = req
        .app_data::<web::Data<AdminSettings>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("admin settings not registered")))?;
    let Some(expected) = &settings.token else {
        return Err(ApiError::Unauthorized(
            "the admin API is disabled: set WARMLINE_ADMIN_TOKEN to enable it".into(),
        ));
    };
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::Unauthorized("missing `Authorization: Bearer <token>`".into()))?;
    if constant_time_eq(given.trim().as_bytes(), expected.expose_secret().as_bytes()) {
        Ok(AdminToken)
    } else {
        Err(ApiError::Unauthorized("invalid admin token".into()))
    }
}
