//! The bots' API end to end: `POST /api/v1/context` and
//! `POST /api/v1/messages`, authenticated with per-tenant keys, the
//! business found by its number or its WhatsApp instance.

use std::sync::Once;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warmline::cache::{Namespace, keys};
use warmline::calls::CallerContext;
use warmline::domain::{PhoneNumber, TenantId};
use warmline::simulator::{Simulator, endpoints};
use warmline::upstreams::MemoryContext;

use crate::helpers::{
    TestApp, TestDb, settings_with, shared_redis, spawn_with_settings, spawn_with_simulator,
};

pub const DEMO_KEY: &str = "wl-test-demo-key-3f9a";
pub const OTHER_KEY: &str = "wl-test-other-key-81c2";

/// The tenants' keys, in the variables their tenant files name. Set once,
/// before any app reads them.
fn set_keys() {
    static KEYS: Once = Once::new();
    KEYS.call_once(|| {
        // Rust's own environment lock orders this with every read.
        unsafe {
            std::env::set_var("TESTBOT_DEMO_KEY", DEMO_KEY);
            std::env::set_var("TESTBOT_OTHER_KEY", OTHER_KEY);
        }
    });
}

/// The demo tenant with an API key and a WhatsApp instance, and another
/// business with a key of its own.
pub async fn with_bot_tenants(app: &TestApp, sim: &Simulator) {
    set_keys();
    let mut config = warmline::simulator::demo_tenant_config(&sim.url);
    config["api_keys_env"] = json!(["TESTBOT_DEMO_KEY"]);
    config["whatsapp_instances"] = json!(["clinic-main"]);
    for (id, number, name, config) in [
        ("demo-dental", "+15550100000", "Demo Dental", config),
        (
            "other-clinic",
            "+15550100900",
            "Other Clinic",
            json!({ "api_keys_env": ["TESTBOT_OTHER_KEY"], "whatsapp_instances": ["other-main"] }),
        ),
    ] {
        app.store
            .upsert_tenant(&warmline::store::NewTenant {
                id: TenantId::parse(id).unwrap(),
                phone_number: PhoneNumber::parse(number).unwrap(),
                name: name.into(),
                time_zone: "America/New_York".into(),
                config: config.to_string(),
                is_demo: false,
            })
            .await
            .unwrap();
    }
    app.cache.warm_up().await;
}

pub async fn api(app: &TestApp, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = app
        .client
        .post(format!("{}{path}", app.address))
        .header("content-type", "application/json");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let resp = req.body(body.to_string()).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn upstream_calls(sim: &Simulator) -> u64 {
    sim.state.all_calls().values().sum()
}

#[tokio::test]
async fn the_context_api_answers_a_cached_caller_from_memory_and_only_to_its_tenants_key() {
    let (app, sim) = spawn_with_simulator(TestDb::sqlite(), &[]).await;
    with_bot_tenants(&app, &sim).await;
    let by_number = json!({ "caller": "+15550100001", "called": "+15550100000" });
    let queries = app.store.request_queries();
    let (status, first) = api(&app, "/api/v1/context", Some(DEMO_KEY), &by_number).await;
    assert_eq!(status, 200, "{first}");
    assert!(
        app.store.request_queries() > queries,
        "a first answer reads the caller's statistics: the count sees queries"
    );
    assert_eq!(first["customer_name"], "Ana Souza", "{first}");
    assert_eq!(first["business_name"], "Demo Dental");
    assert_eq!(first["tenant_id"], "demo-dental");
    assert!(first["is_returning_caller"].is_boolean(), "typed: {first}");
    assert!(first["total_calls"].is_i64(), "typed: {first}");
    assert!(first["next_available_slots"].is_array(), "a list: {first}");
    assert!(
        first["memory_summary"]
            .as_str()
            .is_some_and(|m| m.contains("morning")),
        "{first}"
    );

    // Cached now: by number or by WhatsApp instance (any case), answered
    // with no upstream call and no database query.
    let by_instance = json!({ "caller": "+15550100001", "instance": "Clinic-Main" });
    for body in [&by_number, &by_instance] {
        let (upstream, queries) = (upstream_calls(&sim), app.store.request_queries());
        let (status, again) = api(&app, "/api/v1/context", Some(DEMO_KEY), body).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again, first, "the same context");
        assert_eq!(upstream_calls(&sim), upstream, "no upstream call");
        assert_eq!(app.store.request_queries(), queries, "no database query");
    }

    // Refused with 401 and a JSON body: no key, a wrong key, another
    // business's valid key, a business nobody has.
    for (key, body) in [
        (None, &by_number),
        (Some("wrong-key"), &by_number),
        (Some(OTHER_KEY), &by_number),
        (Some(OTHER_KEY), &by_instance),
        (
            Some(DEMO_KEY),
            &json!({ "caller": "+15550100001", "instance": "nobodys-instance" }),
        ),
    ] {
        let (status, answer) = api(&app, "/api/v1/context", key, body).await;
        assert_eq!(status, 401, "{key:?} {body}: {answer}");
        assert_eq!(answer["error"]["code"], "unauthorized", "{answer}");
        assert!(answer.get("customer_name").is_none());
    }
    // The other business's key opens its own business.
    let (status, other) = api(
        &app,
        "/api/v1/context",
        Some(OTHER_KEY),
        &json!({ "caller": "+15550100001", "instance": "other-main" }),
    )
    .await;
    assert_eq!(status, 200, "{other}");
    assert_eq!(other["business_name"], "Other Clinic");

    // Bad requests name the problem.
    for (body, problem) in [
        (json!({ "called": "+15550100000" }), "`caller`"),
        (
            json!({ "caller": "12", "called": "+15550100000" }),
            "`caller`",
        ),
        (json!({ "caller": "+15550100001" }), "`called`"),
        (
            json!({ "caller": "+15550100001", "called": "+15550100000", "instance": "clinic-main" }),
            "one of them",
        ),
        (json!([1, 2]), "context request"),
    ] {
        let (status, answer) = api(&app, "/api/v1/context", Some(DEMO_KEY), &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(problem), "{body}: {answer}");
    }

    let metrics = app.get("/metrics").await.text().await.unwrap();
    for outcome in ["ok", "unauthorized", "unknown_tenant", "bad_request"] {
        let series =
            format!(r#"warmline_api_requests_total{{route="context",outcome="{outcome}"}}"#);
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&series) && !l.ends_with(" 0")),
            "{series}: {metrics}"
        );
    }
}

/// Two replicas on one database and one Redis: a message appended through
/// one drops the customer's cached memory on both, durably logged, and the
/// memory service hears of it.
#[tokio::test]
async fn a_message_appended_through_the_api_invalidates_the_callers_memory_on_every_replica() {
    let Some(redis) = shared_redis().await else {
        return;
    };
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let url = db.url().to_owned();
    let prefix = format!("wltest:{}:", uuid::Uuid::new_v4().simple());
    let vars = [
        ("REDIS_URL", redis.as_str()),
        ("WARMLINE_REDIS_PREFIX", prefix.as_str()),
    ];
    let (a, sim) = spawn_with_simulator(db, &vars).await;
    with_bot_tenants(&a, &sim).await;
    let mut b_vars = vars.to_vec();
    b_vars.push(("DATABASE_URL", &url));
    let b = spawn_with_settings(settings_with(&b_vars)).await;
    b.cache.warm_up().await;

    let ana = json!({ "caller": "+15550100001", "instance": "clinic-main" });
    let key = keys::caller(
        &TenantId::parse("demo-dental").unwrap(),
        &PhoneNumber::parse("+15550100001").unwrap(),
    );
    // What each replica holds of Ana in L1: A loaded her memory, B read
    // the whole context A cached in Redis.
    let cached = |app: &TestApp| {
        let memory = app.cache.namespace::<MemoryContext>(Namespace::Memory);
        let context = app.cache.namespace::<CallerContext>(Namespace::Context);
        memory.peek_l1(&key).is_some() || context.peek_l1(&key).is_some()
    };
    for app in [&a, &b] {
        let (status, answer) = api(app, "/api/v1/context", Some(DEMO_KEY), &ana).await;
        assert_eq!(status, 200, "{answer}");
        assert!(cached(app), "Ana is cached");
    }
    let (written, read) = (
        sim.state.calls(endpoints::ZEP_ADD_MESSAGES),
        sim.state.calls(endpoints::ZEP_CONTEXT),
    );

    let mut message = ana.clone();
    message["role"] = json!("user");
    message["text"] = json!("Can I move my cleaning to Friday?");
    message["id"] = json!("wamid.HBgL-1");
    let (status, answer) = api(&a, "/api/v1/messages", Some(DEMO_KEY), &message).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["durable_in"], "database", "{answer}");
    assert_eq!(answer["duplicate"], false);
    assert!(
        !cached(&a),
        "dropped on the replica that took it before it answers"
    );

    let deadline = Instant::now() + Duration::from_secs(5);
    for app in [&a, &b] {
        while cached(app) {
            assert!(Instant::now() < deadline, "a replica still has Ana cached");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // B's next answer reads her memory again.
    let (status, answer) = api(&b, "/api/v1/context", Some(DEMO_KEY), &ana).await;
    assert_eq!(status, 200, "{answer}");
    assert!(sim.state.calls(endpoints::ZEP_CONTEXT) > read);
    let logged = b
        .store
        .messages(
            &TenantId::parse("demo-dental").unwrap(),
            &PhoneNumber::parse("+15550100001").unwrap(),
            10,
        )
        .await
        .unwrap();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(
        (logged[0].role.as_str(), logged[0].instance.as_deref()),
        ("user", Some("clinic-main"))
    );

    // The same message again: acknowledged, not stored twice.
    let (status, again) = api(&b, "/api/v1/messages", Some(DEMO_KEY), &message).await;
    assert_eq!(
        (status, &again["duplicate"]),
        (202, &json!(true)),
        "{again}"
    );

    // The memory service learns it (the write-back runs behind).
    let deadline = Instant::now() + Duration::from_secs(15);
    while sim.state.calls(endpoints::ZEP_ADD_MESSAGES) <= written {
        assert!(
            Instant::now() < deadline,
            "the message reaches the memory service"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Refused like the context: another business's key, a bad role.
    let (status, _) = api(&a, "/api/v1/messages", Some(OTHER_KEY), &message).await;
    assert_eq!(status, 401);
    let mut bad = message.clone();
    bad["role"] = json!("system");
    let (status, answer) = api(&a, "/api/v1/messages", Some(DEMO_KEY), &bad).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`role`")
    );
}

/// The first-run demo covers every conversation: an outbound call and a
/// tool call during it, an SMS, and a WhatsApp bot through the bots' API
/// with the key made for the run — the requests the banner prints.
#[tokio::test]
async fn the_demo_answers_an_outbound_call_an_sms_and_a_whatsapp_bot() {
    use warmline::demo::{
        DEMO_OUTBOUND, DEMO_OUTBOUND_TOOL, DEMO_SMS, DEMO_WHATSAPP_CONTEXT, DEMO_WHATSAPP_MESSAGE,
    };
    let app = crate::helpers::spawn_app_with(TestDb::sqlite(), &[("WARMLINE_DEMO", "on")]).await;
    assert!(app.demo_running);
    let key = app.demo_api_key.clone().expect("a key for the run");
    let post = |path: &'static str, body: &'static str, key: Option<String>| {
        let app = &app;
        async move {
            let mut req = app
                .client
                .post(format!("{}{path}", app.address))
                .header("content-type", "application/json");
            if let Some(k) = key {
                req = req.header("authorization", format!("Bearer {k}"));
            }
            let resp = req.body(body).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, answer) = post("/retell/events", DEMO_OUTBOUND, None).await;
    assert_eq!(status, 200, "{answer}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, answer) = post(
            "/retell/functions/get_customer_context",
            DEMO_OUTBOUND_TOOL,
            None,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        if answer["result"]
            .as_str()
            .unwrap_or_default()
            .contains("Ana Souza")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the callee's context: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, answer) = post("/retell/inbound", DEMO_SMS, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["chat_inbound"]["dynamic_variables"]["customer_name"],
        "Ana Souza"
    );
    let (status, answer) = post("/api/v1/context", DEMO_WHATSAPP_CONTEXT, Some(key.clone())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["customer_name"], "Ana Souza");
    let (status, answer) = post("/api/v1/messages", DEMO_WHATSAPP_MESSAGE, Some(key)).await;
    assert_eq!(status, 202, "{answer}");
    // The key is the demo tenant's for this run, and a key is needed.
    let (status, _) = post("/api/v1/context", DEMO_WHATSAPP_CONTEXT, None).await;
    assert_eq!(status, 401);
}

/// A message is acknowledged like a call event: with the database down it
/// is in the spill journal before the 202, and stored once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_a_message_is_acknowledged_from_the_spill_journal_and_stored_later()
{
    let Some(mut pg) = crate::helpers::PrivatePostgres::start().await else {
        return;
    };
    let (app, sim) = spawn_with_simulator(TestDb::External(pg.url()), &[]).await;
    with_bot_tenants(&app, &sim).await;
    let ana = json!({ "caller": "+15550100001", "instance": "clinic-main" });
    let (status, _) = api(&app, "/api/v1/context", Some(DEMO_KEY), &ana).await;
    assert_eq!(status, 200);

    pg.stop_server();
    let mut message = ana.clone();
    message["role"] = json!("assistant");
    message["text"] = json!("Friday at 9:00 is free. Shall I book it?");
    message["at"] = json!("2026-12-05T10:00:00Z");
    let (status, answer) = api(&app, "/api/v1/messages", Some(DEMO_KEY), &message).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["durable_in"], "spill_journal", "{answer}");
    // The context is still answered, from memory.
    let (status, context) = api(&app, "/api/v1/context", Some(DEMO_KEY), &ana).await;
    assert_eq!(
        (status, &context["business_name"]),
        (200, &json!("Demo Dental"))
    );

    pg.start_server().await;
    let (tenant, caller) = (
        TenantId::parse("demo-dental").unwrap(),
        PhoneNumber::parse("+15550100001").unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let logged = loop {
        match app.store.messages(&tenant, &caller, 10).await {
            Ok(m) if !m.is_empty() => break m,
            _ => {}
        }
        assert!(Instant::now() < deadline, "the spilled message is replayed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(logged.len(), 1);
    assert_eq!(
        (logged[0].role.as_str(), logged[0].at_ms),
        ("assistant", 1_796_464_800_000)
    );
}
