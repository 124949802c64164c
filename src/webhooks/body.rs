//! The raw request body of a webhook: signatures are checked on these exact
//! bytes, and an oversized body is a 413 with a JSON error before it is
//! buffered.

use actix_web::HttpRequest;
use futures_util::StreamExt;

use crate::error::ApiError;

/// Largest request body accepted (webhooks carry transcripts).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub struct RawBody(pub bytes::Bytes);

impl actix_web::FromRequest for RawBody {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let limit = MAX_BODY_BYTES;
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
                let chunk = chunk
                    .map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(RawBody(body.freeze()))
        })
    }
}
