use std::time::Duration;

use crate::helpers::{PrivateRedis, TestDb, shared_redis, spawn_app, spawn_app_with};

#[tokio::test]
async fn health_is_ok_and_ready_reports_sqlite_ok_and_redis_disabled_by_default() {
    let app = spawn_app().await;

    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");

    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["database_backend"], "sqlite");
    assert_eq!(body["redis"], "disabled");
    assert_eq!(body["degraded"], false);
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn unknown_routes_answer_404_with_a_json_error() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/no/such/thing").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["message"], "no route for GET /no/such/thing");
}

#[tokio::test]
async fn ready_reports_postgres_and_redis_ok_when_both_are_configured() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let Some(redis) = shared_redis().await else {
        return;
    };
    let app = spawn_app_with(db, &[("REDIS_URL", &redis)]).await;

    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["database_backend"], "postgres");
    assert_eq!(body["redis"], "ok");
    assert_eq!(body["degraded"], false);
}

#[tokio::test]
async fn losing_redis_turns_ready_degraded_but_still_200_and_it_recovers() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let app = spawn_app_with(TestDb::sqlite(), &[("REDIS_URL", &redis.url())]).await;

    let (status, body) = app.get_json("/ready").await;
    assert_eq!((status, &body["redis"]), (200, &"ok".into()), "{body}");

    redis.kill();
    let (status, body) = app
        .wait_for_json("/ready", Duration::from_secs(5), |_, b| {
            b["redis"] == "error"
        })
        .await;
    assert_eq!(status, 200, "degraded is still ready: {body}");
    assert_eq!(body["redis"], "error");
    assert_eq!(body["degraded"], true);
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["database"], "ok");

    redis.restart().await;
    let (_, body) = app
        .wait_for_json("/ready", Duration::from_secs(10), |_, b| b["redis"] == "ok")
        .await;
    assert_eq!(body["redis"], "ok", "reconnects in the background: {body}");
    assert_eq!(body["degraded"], false);
}

#[tokio::test]
async fn a_database_unreachable_at_start_leaves_warmline_serving_degraded() {
    // Nothing listens on port 1: the connection is refused at once.
    let settings = crate::helpers::settings_with(&[(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:1/warmline",
    )]);
    let app = crate::helpers::spawn_with_settings(settings).await;

    let (status, _) = app.get_json("/health").await;
    assert_eq!(status, 200);
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"], "error");
    assert_eq!(body["degraded"], true);
}

#[tokio::test]
async fn the_status_page_shows_readiness_and_loads_htmx_from_our_own_static_files() {
    let app = spawn_app().await;
    let resp = app.get("/").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = resp.text().await.unwrap();
    assert!(
        page.contains(r#"<script src="/static/htmx.min.js""#),
        "{page}"
    );
    assert!(page.contains("Database (sqlite)"), "{page}");
    assert!(
        page.contains(r#"<span class="dot disabled"></span>disabled"#),
        "{page}"
    );

    let htmx = app.get("/static/htmx.min.js").await;
    assert_eq!(htmx.status(), 200);
    assert!(
        htmx.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_eq!(htmx.bytes().await.unwrap().len(), 52_182);
    assert_eq!(app.get("/static/nope.js").await.status(), 404);
}

#[tokio::test]
async fn the_demo_tenant_is_seeded_on_first_run_and_retired_once_a_real_tenant_exists() {
    let db = TestDb::sqlite();
    let url = db.url().to_owned();
    let app = spawn_app_with(db, &[("WARMLINE_DEMO", "on")]).await;
    let tenants = app.store.list_tenants().await.unwrap();
    assert_eq!(tenants.len(), 1);
    assert!(tenants[0].is_demo);
    assert_eq!(tenants[0].phone_number.as_str(), "+15550100000");
    assert!(app.demo_running, "its simulator runs");

    app.store
        .upsert_tenant(&warmline::store::NewTenant {
            id: warmline::domain::TenantId::parse("acme").unwrap(),
            phone_number: warmline::domain::PhoneNumber::parse("+15550100042").unwrap(),
            name: "Acme".into(),
            time_zone: "UTC".into(),
            config: serde_json::json!({}).to_string(),
            is_demo: false,
        })
        .await
        .unwrap();
    let restarted = crate::helpers::spawn_with_settings(crate::helpers::settings_with(&[
        ("DATABASE_URL", &url),
        ("WARMLINE_DEMO", "on"),
    ]))
    .await;
    let ids: Vec<String> = restarted
        .store
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id.to_string())
        .collect();
    assert_eq!(ids, ["acme"], "the demo tenant is gone");
    assert!(!restarted.demo_running);
}

#[tokio::test]
async fn with_warmline_demo_off_no_demo_tenant_is_seeded() {
    let app = spawn_app_with(TestDb::sqlite(), &[("WARMLINE_DEMO", "off")]).await;
    assert!(app.store.list_tenants().await.unwrap().is_empty());
    assert!(!app.demo_running);
}
