//! The call detail page shows what the agent was told and asked on a call:
//! the context answered when it started (and how: fresh, stale, parts
//! missing) and every tool call with its arguments, answer and latency.
//! The steps are recorded through the write-behind, beside the answers:
//! idempotently, and durably through the spill journal.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warmline::admin::password::PasswordHash;
use warmline::domain::{CallId, Provider};
use warmline::store::{CallStep, ContextAnswered, StepKind, Store};
use warmline::writebehind::{Job, Outcome, Spill, WriteBehind, WriteBehindSettings};

use crate::helpers::admin::{PASSWORD, get, session};
use crate::helpers::voice::{future_weekday, retell, retell_call, secrets};
use crate::helpers::{TestApp, TestDb, settings_with, spawn_with_settings, spawn_with_simulator};

const CALLER: &str = "+15550100001";

/// An app with an admin password and the demo tenant on the simulator; a
/// generous context deadline, so the context is whole even on a busy machine.
async fn app_on(db: TestDb) -> (TestApp, warmline::simulator::Simulator) {
    let hash = PasswordHash::make(PASSWORD).unwrap();
    let mut vars = vec![
        ("WARMLINE_ADMIN_PASSWORD_HASH", hash.as_phc()),
        ("WARMLINE_INBOUND_DEADLINE_MS", "10000"),
    ];
    vars.extend(secrets());
    spawn_with_simulator(db, &vars).await
}

/// Text as askama writes it into the page.
fn escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// The part of `html` in the card with this id.
fn card<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!(r#"id="{id}""#))
        .unwrap_or_else(|| panic!("no {id} card: {html}"));
    let rest = &html[start..];
    &rest[..rest.find(r#"<div class="card""#).unwrap_or(rest.len())]
}

/// The call's detail page once `ready` holds for it (polled, 30 s at most).
async fn detail_once(
    app: &TestApp,
    cookie: &str,
    call_id: &str,
    ready: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = get(app, &format!("/admin/calls/{call_id}"), Some(cookie)).await;
        let html = page.text().await.unwrap();
        if ready(&html) {
            return html;
        }
        assert!(Instant::now() < deadline, "never shown: {html}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn function(app: &TestApp, call_id: &str, name: &str, args: Value) -> String {
    let body = json!({ "name": name, "call": retell_call(call_id, CALLER), "args": args });
    let (status, answer) = retell(app, &format!("/retell/functions/{name}"), &body).await;
    assert_eq!(status, 200, "{answer}");
    answer["result"].as_str().unwrap().to_owned()
}

async fn a_call_shows_its_context_and_tool_calls_in_order(db: TestDb) {
    let (app, _sim) = app_on(db).await;
    let id = "call_detail_steps";
    let started = json!({ "event": "call_started", "call": retell_call(id, CALLER) });
    let (status, answer) = retell(&app, "/retell/events", &started).await;
    assert_eq!(status, 200, "{answer}");

    let day = future_weekday();
    let free = function(&app, id, "check_availability", json!({ "date": day })).await;
    let refused = function(&app, id, "check_availability", json!({ "date": "soonish" })).await;
    // "… free for Teeth cleaning: 9:00 AM, 9:30 AM and …": book the first.
    let time = free.split(": ").nth(1).unwrap().split([',', ' ']).take(2);
    let time = time.collect::<Vec<_>>().join(" ");
    let booking = json!({ "date": day, "time": time, "service": "Teeth cleaning",
                          "phone": "+15550100777", "notes": "<b>front tooth</b>" });
    let booked = function(&app, id, "book_appointment", booking).await;
    assert!(booked.starts_with("Booked:"), "{booked}");

    let cookie = session(&app, PASSWORD).await;
    let html = detail_once(&app, &cookie, id, |html| {
        html.contains("data-how=") && html.matches("data-outcome=").count() == 3
    })
    .await;

    let context = card(&html, "context-answered");
    assert!(context.contains("call_started"), "{context}");
    assert!(context.contains(r#"data-how="fresh""#), "{context}");
    assert!(context.contains(" ms</td>"), "latency shown: {context}");
    assert!(context.contains(" AM"), "the slots offered: {context}");

    let tools = card(&html, "tool-calls");
    let at = |needle: &str| {
        tools
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} not in {tools}"))
    };
    // In order, each with its arguments as sent and its answer.
    let (first, second, third) = (
        at(&escaped(&json!({ "date": day }).to_string())),
        at(&escaped(r#"{"date":"soonish"}"#)),
        at("book_appointment"),
    );
    assert!(first < second && second < third, "{tools}");
    for answer in [&free, &refused, &booked] {
        at(&escaped(answer));
    }
    assert!(
        tools.contains(&escaped("<b>front tooth</b>")) && !tools.contains("<b>"),
        "escaped: {tools}"
    );
    assert_eq!(tools.matches(r#"data-outcome="ok""#).count(), 2, "{tools}");
    assert_eq!(
        tools.matches(r#"data-outcome="error""#).count(),
        1,
        "{tools}"
    );
    assert_eq!(
        tools.matches(" ms</td>").count(),
        3,
        "latency of each: {tools}"
    );
    assert!(
        !tools.contains("5550100777") && tools.contains("0777"),
        "phone numbers in arguments are masked: {tools}"
    );

    // Counted (the recorder is the process's: other tests add to it).
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for (kind, at_least) in [("context", 1.0), ("tool", 3.0)] {
        let series = format!(r#"warmline_call_steps_total{{kind="{kind}",outcome="recorded"}} "#);
        let value: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("{series} not exported"))
            .parse()
            .unwrap();
        assert!(value >= at_least, "{series}{value}");
    }
}

#[tokio::test]
async fn a_call_made_through_signed_webhooks_shows_its_context_and_tool_calls() {
    a_call_shows_its_context_and_tool_calls_in_order(TestDb::sqlite()).await;
}

#[tokio::test]
async fn a_call_on_postgres_shows_its_context_and_tool_calls() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    a_call_shows_its_context_and_tool_calls_in_order(db).await;
}

fn tool_step(key: &str, call_id: &str) -> CallStep {
    CallStep {
        key: key.into(),
        provider: Provider::Retell,
        call_id: CallId::parse(call_id).unwrap(),
        at_ms: 1_800_000_000_000,
        latency_ms: 42,
        what: StepKind::Tool {
            tool: "check_availability".into(),
            arguments: Some(r#"{"date":"tomorrow"}"#.into()),
            answer: "Tomorrow is free at 9:00 AM.".into(),
            ok: true,
        },
    }
}

async fn stored_steps(store: &Store, call_id: &str) -> Vec<CallStep> {
    store
        .call_steps(Provider::Retell, &CallId::parse(call_id).unwrap())
        .await
        .unwrap()
}

async fn a_step_applied_twice_is_stored_once(db: TestDb) {
    let store = db.store().await;
    let spill = tempfile::tempdir().unwrap();
    let settings = WriteBehindSettings {
        spill_dir: spill.path().to_path_buf(),
        idempotency_retention: Duration::from_secs(3600),
        flushers: None,
    };
    let wb = WriteBehind::start(store.clone(), &settings).unwrap();
    let step = tool_step("call_step:twice", "call_twice");
    let job = Job::CallStep {
        step: Box::new(step.clone()),
    };
    assert_eq!(wb.submit(job.clone()).await.unwrap().1, Outcome::Applied);
    assert_eq!(wb.submit(job).await.unwrap().1, Outcome::Duplicate);
    // Past the idempotency ledger (pruned), the step's own key holds.
    store.prune_ledger(i64::MAX).await.unwrap();
    assert!(!store.insert_call_step(&step).await.unwrap());
    assert_eq!(stored_steps(&store, "call_twice").await, vec![step]);

    // A context step round-trips with what was answered and how.
    let context = CallStep {
        key: "call_step:context".into(),
        at_ms: 1_799_999_999_000,
        what: StepKind::Context {
            source: "call_started".into(),
            answered: ContextAnswered {
                customer_name: Some("Dana".into()),
                returning_caller: true,
                total_calls: 3,
                slots_offered: vec!["Monday November 30 at 9:00 AM".into()],
                stale: vec!["memory".into()],
                ..ContextAnswered::default()
            },
        },
        ..tool_step("unused", "call_twice")
    };
    assert!(store.insert_call_step(&context).await.unwrap());
    let steps = stored_steps(&store, "call_twice").await;
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0], context, "ordered by time");
    assert_eq!(steps[0].what.outcome(), "stale");
}

#[tokio::test]
async fn a_step_applied_twice_is_stored_once_on_sqlite() {
    a_step_applied_twice_is_stored_once(TestDb::sqlite()).await;
}

#[tokio::test]
async fn a_step_applied_twice_is_stored_once_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    a_step_applied_twice_is_stored_once(db).await;
}

#[tokio::test]
async fn a_step_spilled_while_the_database_was_down_is_applied_on_replay() {
    // What the write-behind wrote to its journal while the database was
    // down: the same step twice (a replay that was interrupted and re-run),
    // with a NUL and an answer far past the bound.
    let spill = tempfile::tempdir().unwrap();
    let mut step = tool_step("call_step:spilled", "call_spilled");
    if let StepKind::Tool { answer, .. } = &mut step.what {
        *answer = format!("free\0{}", "x".repeat(100_000));
    }
    let job = Job::CallStep {
        step: Box::new(step),
    };
    Spill::open(spill.path().to_path_buf())
        .unwrap()
        .append(&[job.clone(), job])
        .await
        .unwrap();

    let db = TestDb::sqlite();
    let dir = spill.path().display().to_string();
    let mut vars = vec![("DATABASE_URL", db.url()), ("WARMLINE_SPILL_DIR", &dir)];
    vars.extend(secrets());
    let app = spawn_with_settings(settings_with(&vars)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let steps = loop {
        let steps = stored_steps(&app.store, "call_spilled").await;
        if !steps.is_empty() && app.writebehind.spilled() == 0 {
            break steps;
        }
        assert!(
            Instant::now() < deadline,
            "the spilled step is never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(steps.len(), 1, "applied once");
    let StepKind::Tool { answer, .. } = &steps[0].what else {
        panic!("a tool step: {:?}", steps[0]);
    };
    assert!(answer.starts_with("free\u{FFFD}x"), "NUL replaced");
    assert!(answer.len() <= warmline::store::MAX_STEP_TEXT, "bounded");
}

#[tokio::test]
async fn a_tool_call_signed_for_one_tenant_is_never_recorded_on_another_tenants_call() {
    use warmline::webhooks::signature::sign_retell;
    let (app, sim) = spawn_with_simulator(TestDb::sqlite(), &[]).await;
    let (clinic_a, clinic_b) = ("+15550100000", "+15557770000");
    for (id, number, key) in [
        ("demo-dental", clinic_a, "tenant-a-key"),
        ("other-clinic", clinic_b, "tenant-b-key"),
    ] {
        let mut config = warmline::simulator::demo_tenant_config(&sim.url);
        config["webhook_secrets"] = json!({ "retell": { "token": key } });
        app.store
            .upsert_tenant(&warmline::store::NewTenant {
                id: warmline::domain::TenantId::parse(id).unwrap(),
                phone_number: warmline::domain::PhoneNumber::parse(number).unwrap(),
                name: id.into(),
                time_zone: "America/New_York".into(),
                config: config.to_string(),
                is_demo: false,
            })
            .await
            .unwrap();
    }
    app.cache.warm_up().await;
    let signed = |path: &'static str, body: Value, key: &'static str| {
        let app = &app;
        async move {
            let body = body.to_string();
            let sig = sign_retell(
                body.as_bytes(),
                key.as_bytes(),
                crate::helpers::voice::now_ms(),
            );
            let (status, answer) =
                crate::helpers::voice::post(app, path, &body, &[("x-retell-signature", sig)]).await;
            assert_eq!(status, 200, "{answer}");
        }
    };
    let mut call = retell_call("call_of_b", CALLER);
    call["to_number"] = clinic_b.into();
    signed(
        "/retell/events",
        json!({ "event": "call_started", "call": call }),
        "tenant-b-key",
    )
    .await;
    // A's key and number naming B's call: a tool that runs (in A's own
    // session) and one warmline does not offer (no session at all).
    let named = json!({ "call_id": "call_of_b", "from_number": CALLER, "to_number": clinic_a });
    for name in ["list_services", "transfer_call"] {
        let body = json!({ "name": name, "args": { "from": "a" }, "call": named });
        signed("/retell/functions", body, "tenant-a-key").await;
    }
    // B's own tool call is recorded; A's never are.
    let mut own = json!({ "name": "list_services", "args": { "from": "b" }, "call": named });
    own["call"]["to_number"] = clinic_b.into();
    signed("/retell/functions", own, "tenant-b-key").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let tools = loop {
        let tools: Vec<CallStep> = stored_steps(&app.store, "call_of_b")
            .await
            .into_iter()
            .filter(|s| s.what.kind() == "tool")
            .collect();
        if !tools.is_empty() {
            break tools;
        }
        assert!(Instant::now() < deadline, "B's tool call is never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(tools.len(), 1, "{tools:?}");
    assert!(
        matches!(&tools[0].what, StepKind::Tool { arguments: Some(a), .. } if a.contains("\"b\"")),
        "{tools:?}"
    );
}
