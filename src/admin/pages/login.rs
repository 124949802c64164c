//! `/admin/login` and `/admin/logout`.

use actix_web::{HttpRequest, HttpResponse, Responder, get, post, web};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use crate::admin::AdminSettings;
use crate::admin::console::Console;
use crate::admin::session::{LoginOutcome, Operator, PageError, log_in, log_out, safe_next};

#[derive(Template, WebTemplate)]
#[template(path = "admin/login.html")]
struct LoginPage {
    next: String,
    configured: bool,
    error: Option<String>,
    version: &'static str,
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

fn page(settings: &AdminSettings, next: &str, error: Option<String>) -> LoginPage {
    LoginPage {
        next: safe_next(next).to_owned(),
        configured: settings.login_configured(),
        error,
        version: env!("CARGO_PKG_VERSION"),
    }
}

#[get("/admin/login")]
async fn login_form(settings: web::Data<AdminSettings>, q: web::Query<Next>) -> LoginPage {
    page(&settings, q.next.as_deref().unwrap_or("/admin"), None)
}

#[derive(Deserialize)]
struct LoginForm {
    password: String,
    next: Option<String>,
}

#[post("/admin/login")]
async fn login_submit(
    req: HttpRequest,
    console: web::Data<Console>,
    settings: web::Data<AdminSettings>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    let next = form.next.as_deref().unwrap_or("/admin");
    let outcome = log_in(
        &req,
        &console.store,
        &settings,
        &console.limiter,
        &form.password,
        next,
    )
    .await?;
    let (status, error) = match outcome {
        LoginOutcome::LoggedIn(resp) => return Ok(resp),
        LoginOutcome::WrongPassword => (
            actix_web::http::StatusCode::UNAUTHORIZED,
            "That password is not right.".to_owned(),
        ),
        LoginOutcome::Limited(wait) => (
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            format!("Too many failed logins from your address: try again in {wait} s."),
        ),
        LoginOutcome::NotConfigured => (
            actix_web::http::StatusCode::FORBIDDEN,
            "The admin login is not set up yet.".to_owned(),
        ),
    };
    Ok(page(&settings, next, Some(error))
        .customize()
        .with_status(status)
        .respond_to(&req)
        .map_into_boxed_body())
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

#[post("/admin/logout")]
async fn logout(
    console: web::Data<Console>,
    op: Operator,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    // Logging out changes nothing but the operator's own session: a viewer
    // may, but the token must still match.
    if !crate::support::constant_time_eq(form.csrf.as_bytes(), op.csrf.as_bytes()) {
        return Err(PageError::Forbidden(
            "stale form: reload the page and log out again",
        ));
    }
    log_out(&console.store, &op).await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(login_form)
        .service(login_submit)
        .service(logout);
}
