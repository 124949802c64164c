//! The raw request body of a webhook: signatures are checked on these exact
//! bytes, and an oversized body is a 413 with a JSON error before it is
//! buffered. Two limits ([`super::WebhookSettings`]): [`RawBody`] for inbound
//! calls and tools, small because a caller waits on them; [`EventBody`] for
//! call events, large because refusing one loses it.

use std::future::Future;
use std::pin::Pin;

use actix_web::{HttpRequest, web};
use futures_util::StreamExt;

use super::Gate;
use crate::error::ApiError;

/// Largest JSON body of any other route (the admin API).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An inbound call's or a tool call's body.
pub struct RawBody(pub bytes::Bytes);

/// A call event's body (and Vapi's, whose one route carries both).
pub struct EventBody(pub bytes::Bytes);

type BodyFuture<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

impl actix_web::FromRequest for RawBody {
    type Error = ApiError;
    type Future = BodyFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let limit = limits(req).0;
        let read = read(req, payload, limit);
        Box::pin(async move { read.await.map(RawBody) })
    }
}

impl actix_web::FromRequest for EventBody {
    type Error = ApiError;
    type Future = BodyFuture<Self>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let limit = limits(req).1;
        let read = read(req, payload, limit);
        Box::pin(async move { read.await.map(EventBody) })
    }
}

fn limits(req: &HttpRequest) -> (usize, usize) {
    req.app_data::<web::Data<Gate>>()
        .map_or((MAX_BODY_BYTES, MAX_BODY_BYTES), |g| g.body_limits())
}

/// Reads the body up to `limit` bytes.
fn read(
    req: &HttpRequest,
    payload: &mut actix_web::dev::Payload,
    limit: usize,
) -> BodyFuture<bytes::Bytes> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut stream = payload.take();
    Box::pin(async move {
        if declared.is_some_and(|n| n > limit) {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    })
}
