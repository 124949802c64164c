//! The token-protected admin JSON API, through real HTTP.

use serde_json::{Value, json};
use warmline::domain::{PhoneNumber, TenantId};
use warmline::store::NewTenant;

use crate::helpers::{TestApp, TestDb, shared_redis, spawn_app, spawn_app_with};

const TOKEN: &str = "test-admin-token-0123456789";

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = app
        .client
        .post(format!("{}{}", app.address, path))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn seed_tenants(app: &TestApp) {
    for (id, number) in [
        ("acme", "+15550100001"),
        ("zen", "+15550100002"),
        ("bolt", "+15550100003"),
    ] {
        app.store
            .upsert_tenant(&NewTenant {
                id: TenantId::parse(id).unwrap(),
                phone_number: PhoneNumber::parse(number).unwrap(),
                name: id.into(),
                time_zone: "UTC".into(),
                config: json!({}).to_string(),
                is_demo: false,
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_admin_api_refuses_requests_without_the_right_token() {
    let app = spawn_app_with(TestDb::sqlite(), &[("WARMLINE_ADMIN_TOKEN", TOKEN)]).await;
    for token in [None, Some("wrong-token-wrong-token")] {
        let (status, body) =
            post(&app, "/admin/api/cache/flush", token, json!({"all": true})).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized");
        let (status, _) = post(&app, "/admin/api/cache/warmup", token, json!({})).await;
        assert_eq!(status, 401);
    }
    let resp = app.get("/admin/api/cache/stats").await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    assert!(
        app.store.recent_audit(10).await.unwrap().is_empty(),
        "refused requests do nothing"
    );
}

#[tokio::test]
async fn without_a_configured_token_the_admin_api_is_disabled() {
    let app = spawn_app().await;
    let (status, body) = post(
        &app,
        "/admin/api/cache/flush",
        Some(TOKEN),
        json!({"all": true}),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("WARMLINE_ADMIN_TOKEN"),
        "{body}"
    );
}

async fn flush_counts_exactly(app: &TestApp) {
    seed_tenants(app).await;
    let (status, body) = post(app, "/admin/api/cache/warmup", Some(TOKEN), json!({})).await;
    assert_eq!(
        (status, &body["warmed"]["tenant"]),
        (200, &json!(3)),
        "{body}"
    );
    assert_eq!(body["warmed"]["services"], 3, "{body}");

    let stats: Value = app
        .client
        .get(format!("{}/admin/api/cache/stats", app.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["namespaces"]["tenant"]["entries"], 3, "{stats}");
    for ns in [
        "tenant", "contact", "memory", "slots", "services", "context", "call",
    ] {
        let tiers = &stats["namespaces"][ns]["tiers"];
        for tier in ["l1", "l2", "db", "loader"] {
            for outcome in [
                "hit_fresh",
                "hit_stale",
                "hit_fail_safe",
                "miss",
                "coalesced",
            ] {
                assert!(
                    tiers[tier][outcome].is_u64(),
                    "{ns}.{tier}.{outcome} in {stats}"
                );
            }
        }
        assert!(stats["namespaces"][ns]["evictions"].is_u64());
        assert!(stats["namespaces"][ns]["load_errors"].is_u64());
    }

    let flush = |body: Value| post(app, "/admin/api/cache/flush", Some(TOKEN), body);
    assert_eq!(
        flush(json!({"namespace": "tenant", "key": "+15550100001"})).await,
        (200, json!({"flushed": 1}))
    );
    assert_eq!(
        flush(json!({"namespace": "tenant", "key": "+15550100001"})).await,
        (200, json!({"flushed": 0}))
    );
    // The tenant's directory entry and its services.
    assert_eq!(
        flush(json!({"tenant": "+1 555 010 0002"})).await,
        (200, json!({"flushed": 2}))
    );
    assert_eq!(
        flush(json!({"namespace": "tenant", "prefix": "+1555"})).await,
        (200, json!({"flushed": 1}))
    );
    assert_eq!(
        flush(json!({"namespace": "tenant"})).await,
        (200, json!({"flushed": 0}))
    );
    post(app, "/admin/api/cache/warmup", Some(TOKEN), json!({})).await;
    assert_eq!(
        flush(json!({"all": true})).await,
        (200, json!({"flushed": 6})),
        "3 tenants and their 3 service lists"
    );

    let audit = app.store.recent_audit(20).await.unwrap();
    assert_eq!(
        audit.iter().filter(|e| e.action == "cache.flush").count(),
        6
    );
    assert_eq!(
        audit.iter().filter(|e| e.action == "cache.warmup").count(),
        2
    );
    assert_eq!(audit[0].target, json!({"all": true}));
    assert_eq!(audit[0].outcome, "flushed 6");
}

#[tokio::test]
async fn flush_removes_exactly_what_it_says_in_process() {
    let app = spawn_app_with(TestDb::sqlite(), &[("WARMLINE_ADMIN_TOKEN", TOKEN)]).await;
    flush_counts_exactly(&app).await;
}

#[tokio::test]
async fn flush_removes_exactly_what_it_says_with_redis() {
    let Some(redis) = shared_redis().await else {
        return;
    };
    let prefix = format!("wltest:{}:", uuid::Uuid::new_v4().simple());
    let app = spawn_app_with(
        TestDb::sqlite(),
        &[
            ("WARMLINE_ADMIN_TOKEN", TOKEN),
            ("REDIS_URL", &redis),
            ("WARMLINE_REDIS_PREFIX", &prefix),
        ],
    )
    .await;
    flush_counts_exactly(&app).await;
}

#[tokio::test]
async fn bad_flush_requests_get_a_400_naming_the_problem() {
    let app = spawn_app_with(TestDb::sqlite(), &[("WARMLINE_ADMIN_TOKEN", TOKEN)]).await;
    let cases = [
        (
            json!({"namespace": "sessions"}),
            "unknown namespace `sessions`",
        ),
        (
            json!({"namespace": "memory", "key": "a", "prefix": "b"}),
            "not both",
        ),
        (
            json!({"namespace": "memory", "prefix": ""}),
            "`prefix` is empty",
        ),
        (json!({"all": false}), "`all` must be true"),
        (
            json!({"all": true, "namespace": "memory"}),
            "unsupported combination",
        ),
        (json!({"tenant": "not a number"}), "`tenant`"),
        (json!({"everything": true}), "unknown field `everything`"),
        (json!({}), "unsupported combination"),
    ];
    for (body, expected) in cases {
        let (status, resp) = post(&app, "/admin/api/cache/flush", Some(TOKEN), body.clone()).await;
        assert_eq!(status, 400, "{body} → {resp}");
        let msg = resp["error"]["message"].as_str().unwrap();
        assert!(msg.contains(expected), "{body} → {msg}");
    }
    let (status, resp) = post(
        &app,
        "/admin/api/cache/flush",
        Some(TOKEN),
        json!({"tenant": "+15559999999"}),
    )
    .await;
    assert_eq!(status, 404, "{resp}");
    let resp = app
        .client
        .post(format!("{}/admin/api/cache/flush", app.address))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn cache_counters_are_exported_as_warmline_cache_metrics() {
    let app = spawn_app().await;
    seed_tenants(&app).await;
    app.cache.warm_up().await;
    let number = PhoneNumber::parse("+15550100001").unwrap();
    // The same directory the webhooks use, on the app's own cache.
    let tenants = warmline::tenants::TenantDirectory::new(&app.cache, app.store.clone());
    let tenant = tenants
        .resolve(&number)
        .await
        .unwrap()
        .expect("known tenant");
    assert_eq!(tenant.id.as_str(), "acme");

    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(r#"warmline_cache_requests_total{namespace="tenant",tier="l1",outcome="hit_fresh"}"#))
        .unwrap_or_else(|| panic!("no tenant L1 hit counter in:\n{text}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1.0, "{line}");
    assert!(
        text.contains("# HELP warmline_cache_requests_total"),
        "{text}"
    );
    assert!(
        text.contains(r#"warmline_cache_entries{namespace="tenant"} 3"#),
        "{text}"
    );
    assert!(text.contains(r#"warmline_build_info{version=""#), "{text}");
}

/// A flush scans Redis on a connection of its own, with its own timeout:
/// a Redis that answers slower than a lookup may wait (paused here for
/// 300 ms, with lookups allowed 50 ms) is still flushed.
#[tokio::test]
async fn a_flush_waits_for_a_slow_redis_longer_than_a_lookup_would() {
    let Some(redis) = crate::helpers::PrivateRedis::start().await else {
        return;
    };
    let app = spawn_app_with(
        TestDb::sqlite(),
        &[
            ("WARMLINE_ADMIN_TOKEN", TOKEN),
            ("REDIS_URL", &redis.url()),
            ("WARMLINE_REDIS_TIMEOUT_MS", "50"),
        ],
    )
    .await;
    seed_tenants(&app).await;
    let (status, body) = post(&app, "/admin/api/cache/warmup", Some(TOKEN), json!({})).await;
    assert_eq!(
        (status, &body["warmed"]["tenant"]),
        (200, &json!(3)),
        "{body}"
    );

    redis.pause(300).await;
    let (status, body) = post(
        &app,
        "/admin/api/cache/flush",
        Some(TOKEN),
        json!({"namespace": "tenant"}),
    )
    .await;
    assert_eq!((status, body), (200, json!({"flushed": 3})));
}
