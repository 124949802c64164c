//! The admin pages' doors: every page wants a login, a password checked by
//! argon2 opens an HttpOnly, SameSite=Strict session, every form that
//! changes something needs the session's CSRF token, the viewer login can
//! only look, failed logins are rate limited, and a parked event is applied
//! again from its page.

use std::time::Duration;

use warmline::admin::password::PasswordHash;
use warmline::domain::{CallEvent, CallId, CallPhase, Provider};
use warmline::writebehind::Job;

use crate::helpers::admin::{
    PASSWORD, VIEWER, admin_app, client, csrf_of, form, get, login, post, session,
};
use crate::helpers::{TestApp, TestDb, spawn_app_with};

#[tokio::test]
async fn every_page_redirects_to_the_login_and_comes_back_after_it() {
    let app = admin_app(&[]).await;
    for path in ["/admin", "/admin/events", "/admin/summary"] {
        let resp = get(&app, path, None).await;
        assert_eq!(resp.status(), 303, "{path}");
        let to = resp.headers()["location"].to_str().unwrap();
        assert!(to.starts_with("/admin/login?next="), "{path} → {to}");
    }
    let resp = get(&app, "/admin", Some("warmline_session=forged")).await;
    assert_eq!(resp.status(), 303, "a made-up session is no session");

    let wrong = login(&app, "not it", "/admin/events").await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.unwrap().contains("not right"));

    let ok = login(&app, PASSWORD, "/admin/events").await;
    assert_eq!(ok.status(), 303);
    assert_eq!(ok.headers()["location"], "/admin/events");
    let cookie = ok.headers()["set-cookie"].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    // A login cannot be made to send the browser elsewhere.
    let away = login(&app, PASSWORD, "https://evil.example/").await;
    assert_eq!(away.headers()["location"], "/admin");

    let cookie = cookie.split(';').next().unwrap();
    let page = get(&app, "/admin", Some(cookie)).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("calls today") && html.contains("parked"),
        "{html}"
    );
    assert!(
        html.contains(r#"<span class="dot ok"></span>database"#),
        "{html}"
    );
    let bar = get(&app, "/admin/summary", Some(cookie)).await;
    assert_eq!(bar.status(), 200);
    assert!(bar.text().await.unwrap().contains(r#"id="summary""#));

    // Logging out ends the session for good.
    let csrf = csrf_of(&html);
    let out = post(&app, "/admin/logout", cookie, &csrf).await;
    assert_eq!(out.status(), 303);
    assert_eq!(get(&app, "/admin", Some(cookie)).await.status(), 303);
}

fn parked_job() -> Job {
    Job::CallEvent {
        event: Box::new(CallEvent::new(
            Provider::Retell,
            CallId::parse("call_parked_page").unwrap(),
            CallPhase::Started,
            "call_started",
        )),
        tenant_id: None,
        time_zone: None,
    }
}

#[tokio::test]
async fn forms_need_the_csrf_token_and_an_admin_and_a_parked_event_is_applied_again() {
    let app = admin_app(&[]).await;
    app.writebehind
        .spill()
        .reject(&parked_job(), "database refused: no such table")
        .await
        .unwrap();
    let admin = session(&app, PASSWORD).await;
    let html = get(&app, "/admin/events", Some(&admin))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("no such table"), "{html}");
    assert!(html.contains("call_parked_page"), "{html}");

    assert_eq!(
        post(&app, "/admin/events/replay", &admin, "not-the-token")
            .await
            .status(),
        403
    );
    let viewer = session(&app, VIEWER).await;
    let viewer_html = get(&app, "/admin/events", Some(&viewer))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !viewer_html.contains("Apply all again"),
        "the viewer gets no button"
    );
    let refused = post(
        &app,
        "/admin/events/replay",
        &viewer,
        &csrf_of(&viewer_html),
    )
    .await;
    assert_eq!(refused.status(), 403, "the viewer cannot change anything");
    assert_eq!(app.writebehind.spill().parked().unwrap().len(), 1);

    let done = post(&app, "/admin/events/replay", &admin, &csrf_of(&html)).await;
    assert_eq!(done.status(), 303);
    let to = done.headers()["location"].to_str().unwrap().to_owned();
    let after = get(&app, &to, Some(&admin)).await.text().await.unwrap();
    assert!(
        after.contains("1 parked event(s) applied; 0 still parked"),
        "{after}"
    );
    assert!(after.contains("Nothing is parked"), "{after}");
    let stored = app
        .store
        .call(
            Provider::Retell,
            &CallId::parse("call_parked_page").unwrap(),
        )
        .await
        .unwrap();
    assert!(stored.is_some());
    let audit = app.store.recent_audit(10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "replay_parked" && a.actor == "admin")
    );
    assert!(
        audit
            .iter()
            .any(|a| a.action == "login" && a.actor == "viewer")
    );
}

#[tokio::test]
async fn failed_logins_are_rate_limited_and_audited() {
    let app = admin_app(&[]).await;
    for _ in 0..5 {
        assert_eq!(login(&app, "guess", "/admin").await.status(), 401);
    }
    let limited = login(&app, PASSWORD, "/admin").await;
    assert_eq!(limited.status(), 429, "even the right password waits");
    assert!(
        limited
            .text()
            .await
            .unwrap()
            .contains("Too many failed logins")
    );
    let audit = app.store.recent_audit(20).await.unwrap();
    let failed = audit
        .iter()
        .filter(|a| a.action == "login" && a.outcome == "wrong_password")
        .count();
    assert_eq!(failed, 5);
    assert!(audit.iter().any(|a| a.outcome == "rate_limited"));
}

#[tokio::test]
async fn a_session_idle_past_its_limit_or_too_old_is_over() {
    use sha2::Digest;
    let app = admin_app(&[]).await;
    let now = warmline::support::now_ms();
    for (idle_for, age) in [(31 * 60_000, 31 * 60_000), (0, 13 * 3_600_000)] {
        let cookie = session(&app, PASSWORD).await;
        assert_eq!(get(&app, "/admin", Some(&cookie)).await.status(), 200);
        // Only the token's hash is stored: find the row by it and age it.
        let token = cookie.trim_start_matches("warmline_session=");
        let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
        let mut row = app.store.admin_session(&hash).await.unwrap().unwrap();
        app.store.delete_admin_session(&hash).await.unwrap();
        row.last_seen_ms = now - idle_for;
        row.created_at_ms = now - age;
        app.store.create_admin_session(&row).await.unwrap();
        assert_eq!(get(&app, "/admin", Some(&cookie)).await.status(), 303);
        assert!(app.store.admin_session(&hash).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn without_a_password_the_admin_says_how_to_set_one_instead_of_opening() {
    let app = spawn_app_with(TestDb::sqlite(), &[("WARMLINE_DEMO", "off")]).await;
    let page = get(&app, "/admin/login", None).await.text().await.unwrap();
    assert!(page.contains("warmline hash-password"), "{page}");
    assert!(page.contains("WARMLINE_ADMIN_PASSWORD_HASH"), "{page}");
    let tried = login(&app, "", "/admin").await;
    assert_eq!(tried.status(), 403);
    assert_eq!(get(&app, "/admin", None).await.status(), 303);
}

#[tokio::test]
async fn a_call_made_through_a_signed_webhook_is_in_the_log_and_its_detail() {
    use crate::helpers::voice::{retell, retell_call};
    let app = admin_app(&[]).await;
    let mut call = retell_call("call_admin_log", "+15550100001");
    call["transcript"] = serde_json::json!("Agent: Hello!\nUser: I need a cleaning.");
    call["disconnection_reason"] = serde_json::json!("user_hangup");
    for event in ["call_started", "call_ended"] {
        let (status, answer) = retell(
            &app,
            "/retell/events",
            &serde_json::json!({ "event": event, "call": call }),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
    let cookie = session(&app, PASSWORD).await;
    let list = get(&app, "/admin/calls?range=24h", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        list.contains(r#"href="/admin/calls/call_admin_log""#),
        "{list}"
    );
    assert!(!list.contains("5550100001"), "the caller is masked: {list}");
    let by_caller = get(&app, "/admin/calls?caller=%2B15559999999", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(by_caller.contains("No calls match"), "{by_caller}");
    let bad = get(&app, "/admin/calls?caller=nobody", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(bad.contains("`caller`"), "{bad}");

    let detail = get(&app, "/admin/calls/call_admin_log", Some(&cookie)).await;
    assert_eq!(detail.status(), 200);
    let detail = detail.text().await.unwrap();
    assert!(detail.contains("I need a cleaning."), "{detail}");
    assert!(detail.contains("user_hangup"), "{detail}");
    let missing = get(&app, "/admin/calls/call_nobody", Some(&cookie)).await;
    assert_eq!(missing.status(), 404);
}

/// The L1 entries the cache page shows for `ns`.
fn entries_shown(html: &str, ns: &str) -> u64 {
    let marker = format!(r#"data-namespace-entries="{ns}">"#);
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("{ns} not shown"))
        + marker.len();
    html[at..].split('<').next().unwrap().parse().unwrap()
}

/// The cache page at `path`, once the tenant namespace's entries meet `want`.
async fn cache_page_until(
    app: &TestApp,
    cookie: &str,
    path: &str,
    want: fn(u64) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let html = get(app, path, Some(cookie)).await.text().await.unwrap();
        if want(entries_shown(&html, "tenant")) {
            return html;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "entries never settled:\n{html}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_namespace_flushed_through_the_confirmation_drops_to_zero_entries() {
    let app = admin_app(&[]).await;
    app.store
        .upsert_tenant(&warmline::store::NewTenant {
            id: warmline::domain::TenantId::parse("flush-clinic").unwrap(),
            phone_number: warmline::domain::PhoneNumber::parse("+15557770001").unwrap(),
            name: "Flush Clinic".into(),
            time_zone: "UTC".into(),
            config: "{}".into(),
            is_demo: false,
        })
        .await
        .unwrap();
    app.cache.warm_up().await;
    let cookie = session(&app, PASSWORD).await;
    // The L1's count settles a moment after its writes: wait for it.
    let html = cache_page_until(&app, &cookie, "/admin/cache", |n| n > 0).await;
    let csrf = csrf_of(&html);
    let flush = |confirm: &'static str| {
        let (cookie, csrf) = (cookie.clone(), csrf.clone());
        let url = format!("{}/admin/cache/flush", app.address);
        async move {
            client()
                .post(url)
                .header("cookie", cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&[
                    ("csrf", &csrf),
                    ("scope", "namespace"),
                    ("namespace", "tenant"),
                    ("value", ""),
                    ("confirm", confirm),
                ]))
                .send()
                .await
                .unwrap()
        }
    };
    // First the confirmation: nothing is flushed yet.
    let asked = flush("").await;
    assert_eq!(asked.status(), 200);
    let asked = asked.text().await.unwrap();
    assert!(asked.contains("Yes, flush namespace tenant"), "{asked}");
    let html = get(&app, "/admin/cache", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(entries_shown(&html, "tenant") > 0);

    let done = flush("yes").await;
    assert_eq!(done.status(), 303);
    let to = done.headers()["location"].to_str().unwrap().to_owned();
    let html = cache_page_until(&app, &cookie, &to, |n| n == 0).await;
    assert!(html.contains("Flushed"), "{html}");
    assert!(
        html.contains("cache.flush"),
        "the flush is in the audit table"
    );

    let viewer = session(&app, VIEWER).await;
    let viewer_html = get(&app, "/admin/cache", Some(&viewer))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !viewer_html.contains("Flush…"),
        "the viewer gets no flush form"
    );
    let refused = client()
        .post(format!("{}/admin/cache/flush", app.address))
        .header("cookie", &viewer)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("csrf", &csrf_of(&viewer_html)),
            ("scope", "all"),
            ("confirm", "yes"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn daily_metrics_show_the_days_calls_as_a_chart_a_table_and_csv() {
    use crate::helpers::voice::{retell, retell_call};
    let admin = PasswordHash::make(PASSWORD).unwrap();
    let mut vars = crate::helpers::voice::secrets();
    vars.push(("WARMLINE_ADMIN_PASSWORD_HASH", admin.as_phc()));
    let (app, _sim) = crate::helpers::spawn_with_simulator(TestDb::sqlite(), &vars).await;
    let mut call = retell_call("call_metrics_page", "+15550100001");
    call["call_status"] = serde_json::json!("ended");
    call["duration_ms"] = serde_json::json!(90_000);
    call["end_timestamp"] = serde_json::json!(warmline::support::now_ms());
    let (status, answer) = retell(
        &app,
        "/retell/events",
        &serde_json::json!({ "event": "call_ended", "call": call }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let cookie = session(&app, PASSWORD).await;
    let page = get(&app, "/admin/metrics?days=7", Some(&cookie)).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<svg"), "{html}");
    assert!(
        html.contains("1 calls, 0 bookings"),
        "a bar for today: {html}"
    );
    assert!(
        html.contains(r#"<th scope="row">total</th><td>1</td>"#),
        "{html}"
    );
    let csv = get(
        &app,
        "/admin/metrics.csv?days=7&tenant=demo-dental",
        Some(&cookie),
    )
    .await;
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 8, "a header and seven days: {csv}");
    // Counted on the tenant's calendar day, which may be UTC's yesterday.
    assert_eq!(
        lines.iter().filter(|l| l.contains(",1,0,0.0000,")).count(),
        1,
        "{csv}"
    );
    let other = get(
        &app,
        "/admin/metrics.csv?days=7&tenant=nobody-here",
        Some(&cookie),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        other.lines().skip(1).all(|l| l.contains(",0,0,")),
        "{other}"
    );
    let bad = get(&app, "/admin/metrics?days=5", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(bad.contains("expected 7, 30 or 90"), "{bad}");
}

#[tokio::test]
async fn calls_today_counts_each_tenants_own_day_whatever_the_utc_hour() {
    use chrono::TimeZone;
    use warmline::domain::{PhoneNumber, TenantId};
    use warmline::store::{DailyDelta, NewTenant};
    let app = admin_app(&[]).await;
    // UTC+14 and UTC−12: at any hour of the UTC day at least one of them
    // is on another date than UTC, so a UTC-day count misses its call.
    for (id, number, zone) in [
        ("kiritimati", "+15550142001", "Pacific/Kiritimati"),
        ("baker", "+15550142002", "Etc/GMT+12"),
    ] {
        app.store
            .upsert_tenant(&NewTenant {
                id: TenantId::parse(id).unwrap(),
                phone_number: PhoneNumber::parse(number).unwrap(),
                name: id.into(),
                time_zone: zone.into(),
                config: "{}".into(),
                is_demo: false,
            })
            .await
            .unwrap();
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let today = tz
            .from_utc_datetime(&chrono::Utc::now().naive_utc())
            .date_naive()
            .to_string();
        let one_call = DailyDelta {
            calls: 1,
            ..DailyDelta::default()
        };
        app.store
            .add_daily(&TenantId::parse(id).unwrap(), &today, one_call)
            .await
            .unwrap();
    }
    let cookie = session(&app, PASSWORD).await;
    let html = get(&app, "/admin/summary", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("<b>2</b> calls today"), "{html}");
}
