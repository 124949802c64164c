//! Logging in to the admin pages: an argon2-checked password makes a
//! session (a random token in an HttpOnly, SameSite=Strict cookie; only its
//! hash is stored, shared by every replica), with idle and absolute expiry,
//! a CSRF token for every form, a per-address login rate limit, and every
//! login audited. Handlers take an [`Operator`]: without a live session the
//! browser is sent to the login page.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::AdminSettings;
use super::password::random_token;
use crate::error::ApiError;
use crate::store::{AdminSession, Store};
use crate::support::{constant_time_eq, now_ms};

pub const COOKIE: &str = "warmline_session";
/// Sessions are written back at most this often as they are used.
const TOUCH_EVERY_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    /// Sees everything, changes nothing.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

/// A logged-in operator: taking one as a handler argument is what protects
/// a page.
#[derive(Debug, Clone)]
pub struct Operator {
    pub role: Role,
    pub csrf: String,
    token_hash: String,
}

impl Operator {
    /// The audit log's name for who did something.
    pub fn actor(&self) -> &'static str {
        self.role.as_str()
    }

    /// A state-changing form must carry this session's CSRF token, and only
    /// an admin may change anything.
    pub fn may_change(&self, csrf: &str) -> Result<(), PageError> {
        if !constant_time_eq(csrf.as_bytes(), self.csrf.as_bytes()) {
            return Err(PageError::Forbidden(
                "the form's CSRF token is missing or stale: reload the page and try again",
            ));
        }
        if self.role != Role::Admin {
            return Err(PageError::Forbidden(
                "the viewer login can look, not change anything",
            ));
        }
        Ok(())
    }
}

/// Why a page could not be served.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No live session: to the login page, then back to `next`.
    #[error("login required")]
    Login { next: String },
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> Self {
        PageError::Api(e.into())
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::Login { .. } => StatusCode::SEE_OTHER,
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            PageError::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            PageError::Login { next } => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, login_url(next)))
                .finish(),
            PageError::Forbidden(why) => HttpResponse::Forbidden()
                .content_type("text/plain; charset=utf-8")
                .body(*why),
            PageError::Api(e) => e.error_response(),
        }
    }
}

/// `/admin/login?next=…` for a page under `/admin` (anything else: the
/// overview), so a login cannot be made to redirect off the site.
fn login_url(next: &str) -> String {
    let next = safe_next(next);
    format!(
        "/admin/login?next={}",
        url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
    )
}

pub fn safe_next(next: &str) -> &str {
    let local = next.starts_with("/admin") && !next.starts_with("//") && !next.contains('\\');
    if local { next } else { "/admin" }
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl FromRequest for Operator {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { operator(&req).await })
    }
}

async fn operator(req: &HttpRequest) -> Result<Operator, PageError> {
    let login = || PageError::Login {
        next: req
            .uri()
            .path_and_query()
            .map_or("/admin", |p| p.as_str())
            .to_owned(),
    };
    let (Some(store), Some(settings)) = (
        req.app_data::<web::Data<Store>>(),
        req.app_data::<web::Data<AdminSettings>>(),
    ) else {
        return Err(ApiError::Internal(anyhow::anyhow!("admin state not registered")).into());
    };
    let token = req.cookie(COOKIE).ok_or_else(login)?;
    let token_hash = hash_token(token.value());
    let session = store.admin_session(&token_hash).await?.ok_or_else(login)?;
    let now = now_ms();
    let idle = now - session.last_seen_ms > settings.session_idle.as_millis() as i64;
    let old = now - session.created_at_ms > settings.session_max.as_millis() as i64;
    if idle || old {
        store.delete_admin_session(&token_hash).await?;
        return Err(login());
    }
    if now - session.last_seen_ms > TOUCH_EVERY_MS {
        store.touch_admin_session(&token_hash, now).await?;
    }
    let role = match session.role.as_str() {
        "admin" => Role::Admin,
        _ => Role::Viewer,
    };
    Ok(Operator {
        role,
        csrf: session.csrf,
        token_hash,
    })
}

/// Failed logins per address, in a sliding window (per replica).
pub struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, Vec<Instant>>>,
    max: usize,
    window: Duration,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter {
            failures: Mutex::new(HashMap::new()),
            max: 5,
            window: Duration::from_secs(300),
        }
    }
}

impl LoginLimiter {
    /// `Err(seconds to wait)` when `ip` failed too often lately.
    fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let recent = failures.entry(ip).or_default();
        recent.retain(|t| t.elapsed() < self.window);
        match recent.first() {
            Some(first) if recent.len() >= self.max => {
                Err((self.window - first.elapsed()).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    fn failed(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() > 10_000 {
            // Bounded: under a spray of addresses, forget the quiet ones.
            failures.retain(|_, v| v.iter().any(|t| t.elapsed() < self.window));
        }
        failures.entry(ip).or_default().push(Instant::now());
    }

    fn succeeded(&self, ip: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }
}

/// What a login attempt came to.
pub enum LoginOutcome {
    /// The response sets the session cookie and goes to `next`.
    LoggedIn(HttpResponse),
    WrongPassword,
    /// Too many failures from this address: wait this many seconds.
    Limited(u64),
    NotConfigured,
}

/// Checks `password` and, when it is right, opens a session.
pub async fn log_in(
    req: &HttpRequest,
    store: &Store,
    settings: &AdminSettings,
    limiter: &LoginLimiter,
    password: &str,
    next: &str,
) -> Result<LoginOutcome, PageError> {
    if !settings.login_configured() {
        return Ok(LoginOutcome::NotConfigured);
    }
    let ip = req
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    if let Err(wait) = limiter.check(ip) {
        audit(store, "-", "login", "rate_limited").await;
        return Ok(LoginOutcome::Limited(wait));
    }
    let role = if settings
        .password
        .as_ref()
        .is_some_and(|h| h.verify(password))
        || settings
            .one_time_password
            .as_ref()
            .is_some_and(|p| constant_time_eq(p.expose_secret().as_bytes(), password.as_bytes()))
    {
        Some(Role::Admin)
    } else if settings
        .viewer_password
        .as_ref()
        .is_some_and(|h| h.verify(password))
    {
        Some(Role::Viewer)
    } else {
        None
    };
    let Some(role) = role else {
        limiter.failed(ip);
        audit(store, "-", "login", "wrong_password").await;
        return Ok(LoginOutcome::WrongPassword);
    };
    limiter.succeeded(ip);
    let token = random_token();
    let now = now_ms();
    store
        .create_admin_session(&AdminSession {
            token_hash: hash_token(&token),
            role: role.as_str().into(),
            csrf: random_token(),
            created_at_ms: now,
            last_seen_ms: now,
        })
        .await?;
    // Now and then, forget expired sessions.
    if fastrand::u8(..) == 0 {
        let idle = now - settings.session_idle.as_millis() as i64;
        let max = now - settings.session_max.as_millis() as i64;
        let _ = store.prune_admin_sessions(idle, max).await;
    }
    audit(store, role.as_str(), "login", "ok").await;
    let secure = settings.cookie_secure || req.connection_info().scheme() == "https";
    let cookie = Cookie::build(COOKIE, token)
        .path("/admin")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::seconds(
            settings.session_max.as_secs() as i64,
        ))
        .finish();
    Ok(LoginOutcome::LoggedIn(
        HttpResponse::SeeOther()
            .cookie(cookie)
            .insert_header((header::LOCATION, safe_next(next).to_owned()))
            .finish(),
    ))
}

/// Ends the operator's session and clears the cookie.
pub async fn log_out(store: &Store, op: &Operator) -> Result<HttpResponse, PageError> {
    store.delete_admin_session(&op.token_hash).await?;
    audit(store, op.actor(), "logout", "ok").await;
    let mut gone = Cookie::build(COOKIE, "").path("/admin").finish();
    gone.make_removal();
    Ok(HttpResponse::SeeOther()
        .cookie(gone)
        .insert_header((header::LOCATION, "/admin/login"))
        .finish())
}

async fn audit(store: &Store, actor: &str, action: &str, outcome: &str) {
    super::audit::record(store, actor, action, serde_json::Value::Null, outcome).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_admin() {
        assert_eq!(safe_next("/admin/calls?page=2"), "/admin/calls?page=2");
        for outside in [
            "https://evil.example",
            "//evil.example",
            "/metrics",
            "/admin\\..\\x",
        ] {
            assert_eq!(safe_next(outside), "/admin", "{outside}");
        }
    }

    #[test]
    fn the_limiter_holds_after_five_failures_and_forgets_on_success() {
        let l = LoginLimiter::default();
        let ip = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..5 {
            assert!(l.check(ip).is_ok());
            l.failed(ip);
        }
        assert!(l.check(ip).is_err());
        assert!(l.check(IpAddr::from([10, 0, 0, 2])).is_ok());
        l.succeeded(ip);
        assert!(l.check(ip).is_ok());
    }
}
