//! The HTTP client every adapter calls through: pooled connections, a
//! per-call timeout, at most one retry of an idempotent read (within a retry
//! budget), a circuit breaker, respect for rate-limit headers, and a span and
//! metrics for every call.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use tracing::Instrument;

pub use super::call::Call;
use super::{UpstreamError, UpstreamResult};
use crate::domain::mask_phones_in;
use crate::support::{Breaker, BreakerState, LatencyStats, RecentLatency, now_ms};

/// How an upstream is called; one per upstream kind, overridable by
/// `WARMLINE_UPSTREAM_<KIND>_TIMEOUT_MS` and the breaker variables.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSettings {
    pub timeout: Duration,
    pub breaker_failures: u32,
    pub breaker_open_for: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            timeout: Duration::from_millis(2_500),
            breaker_failures: 5,
            breaker_open_for: Duration::from_secs(10),
        }
    }
}

/// Retries may add at most this fraction of extra load, so a struggling
/// upstream is not hit twice as hard.
const RETRY_RATIO: f64 = 0.2;
const RETRY_BUDGET_MAX: f64 = 10.0;
const RETRY_BACKOFF: Duration = Duration::from_millis(50);
/// When a 429 names no delay.
const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause an upstream's headers can impose: one asking for more
/// (or for "forever") is tried again after an hour.
const MAX_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(3_600);
/// A rate-limit reset above this is a Unix time, not a number of seconds
/// (10^9 s is 31 years, and as a time 2001); above the second, in ms.
const EPOCH_SECONDS_FROM: f64 = 1e9;
const EPOCH_MILLIS_FROM: f64 = 1e12;

/// A token bucket of retries: each request deposits [`RETRY_RATIO`], each
/// retry withdraws one.
#[derive(Debug)]
struct RetryBudget(Mutex<f64>);

impl RetryBudget {
    fn deposit(&self) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t = (*t + RETRY_RATIO).min(RETRY_BUDGET_MAX);
    }

    fn withdraw(&self) -> bool {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if *t >= 1.0 {
            *t -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `base` + `prefix` + `path`, keeping any path the base URL already has
/// (a proxy or the simulator mounted under a prefix).
pub fn join_path(base: &Url, prefix: &str, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!(
        "{}{prefix}{path}",
        base.path().trim_end_matches('/')
    ));
    url
}

/// A successful answer.
pub struct Answer {
    pub status: StatusCode,
    pub body: bytes::Bytes,
}

/// The last failure, for the admin's upstream table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastFailure {
    pub at_ms: i64,
    pub error: String,
}

pub struct UpstreamClient {
    name: &'static str,
    http: reqwest::Client,
    settings: ClientSettings,
    breaker: Breaker,
    budget: RetryBudget,
    /// Epoch ms until which the upstream asked us to pause (rate limit).
    paused_until_ms: AtomicI64,
    last_failure: Mutex<Option<LastFailure>>,
    /// Recent latency and errors by operation, for the admin's upstreams page.
    latency: RecentLatency,
}

impl UpstreamClient {
    pub fn new(name: &'static str, settings: ClientSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(2)))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(32)
            .user_agent(concat!("warmline/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS backend is compiled in");
        UpstreamClient {
            name,
            http,
            breaker: Breaker::new(settings.breaker_failures, settings.breaker_open_for),
            settings,
            budget: RetryBudget(Mutex::new(RETRY_BUDGET_MAX)),
            paused_until_ms: AtomicI64::new(0),
            last_failure: Mutex::new(None),
            latency: RecentLatency::default(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    pub fn last_failure(&self) -> Option<LastFailure> {
        self.last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// p50 / p95 and errors of each operation over the last minutes.
    pub fn operations(&self) -> Vec<LatencyStats> {
        self.latency.stats()
    }

    /// Sends `call` and decodes a JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        call: Call,
    ) -> UpstreamResult<T> {
        let answer = self.send(operation, call).await?;
        serde_json::from_slice(&answer.body).map_err(|e| UpstreamError::Decode {
            upstream: self.name,
            operation,
            detail: e.to_string(),
        })
    }

    /// Sends `call`: one attempt, plus one retry of an idempotent call after
    /// a connection error or 5xx when the retry budget allows. A timeout is
    /// not retried: the caller has already waited the whole timeout, and
    /// the cache's fail-safe is a better answer than waiting twice.
    pub async fn send(&self, operation: &'static str, call: Call) -> UpstreamResult<Answer> {
        let span = tracing::info_span!(
            "upstream.call",
            otel.kind = "client",
            upstream = self.name,
            operation,
            http.request.method = %call.method,
            url.path = %mask_phones_in(call.url.path()),
            server.address = call.url.host_str().unwrap_or(""),
            breaker.state = self.breaker.state().as_str(),
            http.response.status_code = tracing::field::Empty,
            retry = false,
            outcome = tracing::field::Empty,
        );
        self.send_inner(operation, call).instrument(span).await
    }

    async fn send_inner(&self, operation: &'static str, call: Call) -> UpstreamResult<Answer> {
        let started = Instant::now();
        self.budget.deposit();
        let result = self.attempt_with_retry(operation, &call).await;
        let elapsed = started.elapsed();
        let span = tracing::Span::current();
        let absent = matches!(
            (&result, call.absent_status),
            (Err(UpstreamError::Status { status, .. }), Some(a)) if *status == a
        );
        let outcome = match &result {
            Ok(_) => "ok",
            Err(_) if absent => "absent",
            Err(e) => e.kind(),
        };
        span.record("outcome", outcome);
        self.latency
            .record(operation, elapsed, result.is_ok() || absent);
        metrics::counter!(
            "warmline_upstream_requests_total",
            "upstream" => self.name, "operation" => operation, "outcome" => outcome
        )
        .increment(1);
        metrics::histogram!(
            "warmline_upstream_request_duration_seconds",
            "upstream" => self.name, "operation" => operation
        )
        .record(elapsed.as_secs_f64());
        metrics::gauge!("warmline_upstream_breaker_state", "upstream" => self.name)
            .set(self.breaker.state().gauge_value());
        if let (Err(e), false) = (&result, absent) {
            metrics::counter!(
                "warmline_upstream_errors_total",
                "upstream" => self.name, "operation" => operation, "kind" => e.kind()
            )
            .increment(1);
            tracing::warn!(error = %e, elapsed_ms = elapsed.as_millis() as u64, "upstream call failed");
            *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(LastFailure {
                at_ms: now_ms(),
                error: mask_phones_in(&e.to_string()),
            });
        }
        result
    }

    async fn attempt_with_retry(
        &self,
        operation: &'static str,
        call: &Call,
    ) -> UpstreamResult<Answer> {
        let first = self.attempt(operation, call).await;
        let retryable = matches!(
            &first,
            Err(UpstreamError::Unreachable { .. })
                | Err(UpstreamError::Status {
                    status: 500..=599,
                    ..
                })
        );
        if retryable && call.idempotent && self.budget.withdraw() {
            tracing::Span::current().record("retry", true);
            metrics::counter!(
                "warmline_upstream_retries_total",
                "upstream" => self.name, "operation" => operation
            )
            .increment(1);
            let jitter = Duration::from_millis(fastrand::u64(0..=RETRY_BACKOFF.as_millis() as u64));
            tokio::time::sleep(RETRY_BACKOFF + jitter).await;
            return self.attempt(operation, call).await;
        }
        first
    }

    async fn attempt(&self, operation: &'static str, call: &Call) -> UpstreamResult<Answer> {
        let paused = self.paused_for();
        if !paused.is_zero() {
            return Err(UpstreamError::RateLimited {
                upstream: self.name,
                operation,
                retry_after: paused,
            });
        }
        if !self.breaker.allow() {
            return Err(UpstreamError::BreakerOpen {
                upstream: self.name,
                operation,
            });
        }
        let mut req = self.http.request(call.method.clone(), call.url.clone());
        for (name, value) in &call.headers {
            req = req.header(*name, value);
        }
        if let Some(body) = &call.body {
            req = req.json(body);
        }
        let outcome = match req.send().await {
            Err(e) if e.is_timeout() => Err(UpstreamError::Timeout {
                upstream: self.name,
                operation,
                after: self.settings.timeout,
            }),
            Err(e) => Err(UpstreamError::Unreachable {
                upstream: self.name,
                operation,
                detail: mask_phones_in(&without_url(&e)),
            }),
            Ok(resp) => self.read(operation, resp).await,
        };
        match &outcome {
            Ok(_) => self.breaker.on_success(),
            // The upstream is healthy but says no: not a breaker failure.
            Err(UpstreamError::RateLimited { .. })
            | Err(UpstreamError::Status {
                status: 400..=499, ..
            }) => self.breaker.on_success(),
            Err(_) => {
                if self.breaker.on_failure() {
                    tracing::warn!(upstream = self.name, "circuit breaker opened");
                }
            }
        }
        outcome
    }

    async fn read(
        &self,
        operation: &'static str,
        resp: reqwest::Response,
    ) -> UpstreamResult<Answer> {
        let status = resp.status();
        tracing::Span::current().record("http.response.status_code", status.as_u16());
        self.note_rate_limit(resp.headers(), status);
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => {
                return Err(UpstreamError::Timeout {
                    upstream: self.name,
                    operation,
                    after: self.settings.timeout,
                });
            }
            Err(e) => {
                return Err(UpstreamError::Unreachable {
                    upstream: self.name,
                    operation,
                    detail: without_url(&e),
                });
            }
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(UpstreamError::RateLimited {
                upstream: self.name,
                operation,
                retry_after: self.paused_for(),
            });
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let detail: String = text.chars().take(200).collect();
            return Err(UpstreamError::Status {
                upstream: self.name,
                operation,
                status: status.as_u16(),
                detail: mask_phones_in(&detail),
            });
        }
        Ok(Answer { status, body })
    }

    /// How long calls stay paused because the upstream asked (zero when
    /// they are not).
    pub fn paused_for(&self) -> Duration {
        let left = self.paused_until_ms.load(Ordering::Acquire) - now_ms();
        Duration::from_millis(left.max(0) as u64)
    }

    /// Pauses calls when the upstream says so: `Retry-After` on a 429, or a
    /// remaining quota of zero (`X-RateLimit-Remaining*`) until the window
    /// resets (GoHighLevel's `X-RateLimit-Interval-Milliseconds`, or
    /// `X-RateLimit-Reset*`: seconds, or a Unix time). Never longer than
    /// [`MAX_RATE_LIMIT_PAUSE`], whatever the headers say.
    fn note_rate_limit(&self, headers: &reqwest::header::HeaderMap, status: StatusCode) {
        let now = now_ms();
        let header = |name: &str| first_header(headers, name);
        let interval = || header("x-ratelimit-interval-milliseconds").and_then(millis_pause);
        let reset = || header("x-ratelimit-reset").and_then(|v| reset_pause(v, now));
        let exhausted = |name: &str| {
            header(name)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|r| r <= 0.0)
        };
        let pause = if status == StatusCode::TOO_MANY_REQUESTS {
            header("retry-after")
                .and_then(|v| retry_after_pause(v, now))
                .or_else(interval)
                .or_else(reset)
        } else if exhausted("x-ratelimit-remaining") || exhausted("x-ratelimit-daily-remaining") {
            interval().or_else(reset)
        } else {
            return;
        };
        let p = pause.unwrap_or(DEFAULT_RATE_LIMIT_PAUSE);
        self.paused_until_ms
            .fetch_max(now + p.as_millis() as i64, Ordering::AcqRel);
        tracing::warn!(
            upstream = self.name,
            pause_ms = p.as_millis() as u64,
            "upstream rate limit reached; pausing calls"
        );
    }
}

/// The first header whose name starts with `prefix` (`x-ratelimit-reset`
/// also finds `x-ratelimit-reset-requests`).
fn first_header<'h>(headers: &'h reqwest::header::HeaderMap, prefix: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.as_str().starts_with(prefix))
        .and_then(|(_, v)| v.to_str().ok())
}

/// Seconds as a pause: `None` for NaN; never negative, at most
/// [`MAX_RATE_LIMIT_PAUSE`] (infinity included).
fn capped_pause(secs: f64) -> Option<Duration> {
    (!secs.is_nan())
        .then(|| Duration::from_secs_f64(secs.clamp(0.0, MAX_RATE_LIMIT_PAUSE.as_secs_f64())))
}

/// `Retry-After`: delta-seconds (leniently, a decimal number) or an HTTP
/// date; `None` when it is neither.
fn retry_after_pause(value: &str, now_ms: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return capped_pause(secs);
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    capped_pause((at.timestamp_millis() - now_ms) as f64 / 1_000.0)
}

/// `X-RateLimit-Reset`: seconds until the window resets, or the moment it
/// resets as a Unix time in seconds or milliseconds.
fn reset_pause(value: &str, now_ms: i64) -> Option<Duration> {
    let n = value.trim().parse::<f64>().ok()?;
    let secs = if n >= EPOCH_MILLIS_FROM {
        (n - now_ms as f64) / 1_000.0
    } else if n >= EPOCH_SECONDS_FROM {
        n - now_ms as f64 / 1_000.0
    } else {
        n
    };
    capped_pause(secs)
}

/// `X-RateLimit-Interval-Milliseconds`.
fn millis_pause(value: &str) -> Option<Duration> {
    capped_pause(value.trim().parse::<f64>().ok()? / 1_000.0)
}

/// reqwest's error text without the URL (which may carry a phone number).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

    /// 2025-06-15T15:06:40Z, in whole seconds.
    const NOW: i64 = 1_750_000_000_000;
    const HOUR: Duration = MAX_RATE_LIMIT_PAUSE;
    const ZERO: Option<Duration> = Some(Duration::ZERO);

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    #[test]
    fn retry_after_seconds_are_never_negative_nan_or_infinite_and_at_most_an_hour() {
        let p = |v| retry_after_pause(v, NOW);
        assert_eq!(p("1e20"), Some(HOUR));
        assert_eq!(p("inf"), Some(HOUR));
        assert_eq!(p("18446744073709551616"), Some(HOUR));
        assert_eq!(p("NaN"), None, "garbage: the caller's default applies");
        assert_eq!(p("-5"), ZERO);
        assert_eq!(p("-inf"), ZERO);
        assert_eq!(p("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(p(" 120 "), secs(120));
        assert_eq!(p("soon"), None);
        assert_eq!(p(""), None);
    }

    #[test]
    fn retry_after_may_be_an_http_date() {
        let at = chrono::DateTime::from_timestamp_millis(NOW + 90_000).unwrap();
        let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        assert_eq!(retry_after_pause(&date, NOW), secs(90), "{date}");
        let p = |v| retry_after_pause(v, NOW);
        assert_eq!(p("Sun, 06 Nov 1994 08:49:37 GMT"), ZERO, "in the past");
        assert_eq!(p("Fri, 31 Dec 9999 23:59:59 GMT"), Some(HOUR));
        assert_eq!(p("Sun, 32 Nov 1994 08:49:37 GMT"), None);
    }

    #[test]
    fn a_rate_limit_reset_is_seconds_or_a_unix_time_in_seconds_or_milliseconds() {
        let p = |v: &str| reset_pause(v, NOW);
        assert_eq!(p("30"), secs(30));
        assert_eq!(p("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(p(&(NOW / 1_000 + 30).to_string()), secs(30), "epoch s");
        assert_eq!(p(&(NOW + 30_000).to_string()), secs(30), "epoch ms");
        assert_eq!(p(&(NOW / 1_000 - 30).to_string()), ZERO, "a past reset");
        let ten_years = NOW / 1_000 + 10 * 365 * 86_400;
        assert_eq!(p(&ten_years.to_string()), Some(HOUR));
        assert_eq!(p("1e20"), Some(HOUR));
        assert_eq!(p("inf"), Some(HOUR));
        assert_eq!(p("NaN"), None);
        assert_eq!(p("-5"), ZERO);
        assert_eq!(p("6m0s"), None);
        assert_eq!(millis_pause("10000"), secs(10));
        assert_eq!(millis_pause("1e30"), Some(HOUR));
        assert_eq!(millis_pause("-1"), ZERO);
    }

    /// The pause a fresh client takes from one answer.
    fn paused_by(status: StatusCode, pairs: &[(&'static str, &str)]) -> Duration {
        let client = UpstreamClient::new("test", ClientSettings::default());
        let headers: HeaderMap = pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_static(k),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect();
        client.note_rate_limit(&headers, status);
        client.paused_for()
    }

    #[test]
    fn hostile_headers_pause_the_client_at_most_an_hour() {
        let p = paused_by(StatusCode::TOO_MANY_REQUESTS, &[("retry-after", "inf")]);
        assert!(p <= HOUR && p > HOUR - Duration::from_secs(60), "{p:?}");
        let reset = (now_ms() / 1_000 + 30).to_string();
        let exhausted = [
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset),
        ];
        let p = paused_by(StatusCode::OK, &exhausted);
        assert!(
            p > Duration::from_secs(20) && p <= Duration::from_secs(30),
            "{p:?}"
        );
        // Garbage: a 429 still pauses, for the default second.
        let p = paused_by(StatusCode::TOO_MANY_REQUESTS, &[("retry-after", "NaN")]);
        assert!(p <= DEFAULT_RATE_LIMIT_PAUSE && !p.is_zero(), "{p:?}");
    }
}
