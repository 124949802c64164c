//! The root span of every request, following the OpenTelemetry HTTP
//! semantic conventions, and the `x-trace-id` response header.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use opentelemetry::propagation::Extractor;
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::domain::mask_phones_in;

/// The response header carrying the request's trace id.
pub const TRACE_ID_HEADER: &str = "x-trace-id";

struct Headers<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

pub struct RootSpan;

impl RootSpanBuilder for RootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let method = request.method().as_str().to_owned();
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        let conn = request.connection_info().clone();
        let version = match request.version() {
            actix_web::http::Version::HTTP_10 => "1.0",
            actix_web::http::Version::HTTP_2 => "2",
            actix_web::http::Version::HTTP_3 => "3",
            _ => "1.1",
        };
        let span = tracing::info_span!(
            "HTTP request",
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = %method,
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
            // Paths may carry numbers (`/_sim/…`, unmatched routes): masked.
            url.path = %mask_phones_in(request.path()),
            url.scheme = %conn.scheme(),
            server.address = %conn.host(),
            network.protocol.version = version,
            client.address = %conn.realip_remote_addr().unwrap_or(""),
            user_agent.original = %request.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or(""),
            error.type = tracing::field::Empty,
            // The tenant a webhook answered for, when its hot path opened no
            // span of its own to say so.
            warmline.tenant = tracing::field::Empty,
        );
        // Honour an incoming `traceparent`: this request joins that trace.
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&Headers(request.headers()))
        });
        let _ = span.set_parent(parent);
        span
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let status = match outcome {
            Ok(resp) => resp
                .response()
                .error()
                .map_or(resp.status(), |e| e.as_response_error().status_code()),
            Err(e) => e.as_response_error().status_code(),
        };
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", status.as_str());
        }
    }
}

/// Adds `x-trace-id` to every response (inside the root span).
pub async fn trace_id_header<B: MessageBody>(
    req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let mut res = next.call(req).await?;
    if let Some(id) = super::current_trace_id()
        && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&id)
    {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static(TRACE_ID_HEADER),
            value,
        );
    }
    Ok(res)
}
