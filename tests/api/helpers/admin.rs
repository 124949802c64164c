//! Driving the admin pages as a browser without JavaScript would: an app
//! with an admin and a viewer password, logins, session cookies, forms
//! with the page's CSRF token.

use std::time::Duration;

use warmline::admin::password::PasswordHash;

use super::{TestApp, TestDb, spawn_app_with};

pub const PASSWORD: &str = "correct horse battery staple";
pub const VIEWER: &str = "viewer horse battery staple";

pub async fn admin_app(extra: &[(&str, &str)]) -> TestApp {
    let admin = PasswordHash::make(PASSWORD).unwrap();
    let viewer = PasswordHash::make(VIEWER).unwrap();
    let mut vars = vec![
        ("WARMLINE_ADMIN_PASSWORD_HASH", admin.as_phc()),
        ("WARMLINE_ADMIN_VIEWER_PASSWORD_HASH", viewer.as_phc()),
        ("WARMLINE_TRACE_URL", "http://jaeger.local/trace/{trace_id}"),
    ];
    vars.extend(crate::helpers::voice::secrets());
    vars.extend_from_slice(extra);
    spawn_app_with(TestDb::sqlite(), &vars).await
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// An urlencoded form body.
pub fn form(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// Logs in; returns the response (status, `Set-Cookie`, `Location`).
pub async fn login(app: &TestApp, password: &str, next: &str) -> reqwest::Response {
    client()
        .post(format!("{}/admin/login", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("password", password), ("next", next)]))
        .send()
        .await
        .unwrap()
}

/// A logged-in session's cookie header value.
pub async fn session(app: &TestApp, password: &str) -> String {
    let resp = login(app, password, "/admin").await;
    assert_eq!(resp.status(), 303);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    set.split(';').next().unwrap().to_owned()
}

pub async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = client().get(format!("{}{path}", app.address));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

/// The CSRF token the page's forms carry.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find(r#"name="csrf" value=""#)
        .expect("a form with a CSRF token")
        + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

pub async fn post(app: &TestApp, path: &str, cookie: &str, csrf: &str) -> reqwest::Response {
    client()
        .post(format!("{}{path}", app.address))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", csrf)]))
        .send()
        .await
        .unwrap()
}
