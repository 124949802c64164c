//! `/admin/alerts`: warmline's own evaluation of its alert rules raises an
//! alert from forced fallbacks, an admin acknowledges it (who and when
//! shown, audited) and the viewer cannot; a database outage raises the
//! database and spill-journal alerts, which resolve when it is back and
//! stay in the history.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;
use warmline::admin::password::PasswordHash;
use warmline::domain::Provider;
use warmline::store::{NewAlert, Store};
use warmline::writebehind::Job;

use crate::helpers::admin::{PASSWORD, VIEWER, csrf_of, get, post, session};
use crate::helpers::voice::{retell, retell_call, secrets};
use crate::helpers::{PrivatePostgres, TestApp, TestDb, spawn_with_simulator};

/// Evaluated every 50 ms, firing as soon as a condition holds.
const FAST: [(&str, &str); 2] = [
    ("WARMLINE_ALERT_EVAL_MS", "50"),
    ("WARMLINE_ALERT_FOR_MS", "0"),
];

/// The demo tenant behind the simulator, an admin and a viewer login, and
/// fast alerts.
async fn alerting_app(
    db: TestDb,
    extra: &[(&str, &str)],
) -> (TestApp, warmline::simulator::Simulator) {
    let admin = PasswordHash::make(PASSWORD).unwrap();
    let viewer = PasswordHash::make(VIEWER).unwrap();
    let mut vars = vec![
        ("WARMLINE_ADMIN_PASSWORD_HASH", admin.as_phc()),
        ("WARMLINE_ADMIN_VIEWER_PASSWORD_HASH", viewer.as_phc()),
    ];
    vars.extend(secrets());
    vars.extend_from_slice(&FAST);
    vars.extend_from_slice(extra);
    spawn_with_simulator(db, &vars).await
}

/// The page, once `accept` holds for it (at most 20 s).
async fn page_when(
    app: &TestApp,
    path: &str,
    cookie: &str,
    accept: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = get(app, path, Some(cookie)).await;
        assert_eq!(resp.status(), 200);
        let html = resp.text().await.unwrap();
        if accept(&html) {
            return html;
        }
        assert!(
            Instant::now() < deadline,
            "the page never got there:\n{html}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The active alerts table, without the history and thresholds below it.
fn active_part(html: &str) -> &str {
    let from = html.find("<h1>Alerts</h1>").expect("the alerts card");
    let to = html
        .find("Thresholds in force")
        .expect("the thresholds card");
    &html[from..to]
}

/// The ids of the alert rows in `part` of a page.
fn ids(part: &str) -> BTreeSet<i64> {
    part.split(r#"data-alert-id=""#)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().parse().unwrap())
        .collect()
}

/// The alerts a page lists both as firing and as resolved.
fn firing_and_resolved(html: &str) -> BTreeSet<i64> {
    let history = &html[html.find("<h2>Resolved</h2>").expect("the history")..];
    &ids(active_part(html)) & &ids(history)
}

fn alert_id(html: &str, name: &str) -> i64 {
    let marker = format!(r#"data-alert="{name}" data-alert-id=""#);
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name}:\n{html}"))
        + marker.len();
    html[at..].split('"').next().unwrap().parse().unwrap()
}

async fn acknowledge(app: &TestApp, id: i64, cookie: &str, csrf: &str) -> reqwest::Response {
    post(
        app,
        &format!("/admin/alerts/{id}/acknowledge"),
        cookie,
        csrf,
    )
    .await
}

#[tokio::test]
async fn forced_fallbacks_raise_an_alert_that_an_admin_acknowledges_and_the_viewer_cannot() {
    let (app, _sim) = alerting_app(TestDb::sqlite(), &[]).await;
    let resp = get(&app, "/admin/alerts", None).await;
    assert_eq!(resp.status(), 303, "the page wants a login");
    let admin = session(&app, PASSWORD).await;
    let html = page_when(&app, "/admin/alerts", &admin, |h| {
        h.contains("Thresholds in force")
    })
    .await;
    assert!(
        html.contains("fallbacks above 10.0 % of the calls today"),
        "{html}"
    );
    assert!(
        !active_part(&html).contains("WarmlineFallbacksHigh"),
        "{html}"
    );

    // Tool calls before their call started: each takes the fallback cascade.
    for n in 0..3 {
        let call = retell_call(&format!("call_alert_{n}"), "+15550100001");
        let (status, _) = retell(
            &app,
            "/retell/functions/list_services",
            &json!({ "name": "list_services", "call": call, "args": {} }),
        )
        .await;
        assert_eq!(status, 200);
    }
    let html = page_when(&app, "/admin/alerts", &admin, |h| {
        active_part(h).contains(r#"data-alert="WarmlineFallbacksHigh""#)
    })
    .await;
    let active = active_part(&html);
    assert!(active.contains("Fallback activations high"), "{active}");
    assert!(
        active.contains("callers get generic answers"),
        "its meaning: {active}"
    );
    // No call has ended yet today: infinitely many fallbacks per call.
    assert!(
        active.contains("<b>∞</b>") && active.contains("10.0 %"),
        "{active}"
    );
    assert!(active.contains("fallbacks, 0 calls today"), "{active}");
    let id = alert_id(&html, "WarmlineFallbacksHigh");
    let button = format!(r#"action="/admin/alerts/{id}/acknowledge""#);
    assert!(active.contains(&button), "{active}");

    // The viewer sees it but may not acknowledge it.
    let viewer = session(&app, VIEWER).await;
    let seen = page_when(&app, "/admin/alerts", &viewer, |h| {
        h.contains("WarmlineFallbacksHigh")
    })
    .await;
    assert!(!seen.contains(&button), "no button for the viewer");
    let refused = acknowledge(&app, id, &viewer, &csrf_of(&seen)).await;
    assert_eq!(refused.status(), 403);
    // Nor may a form without this session's CSRF token.
    for csrf in ["", "forged-token"] {
        let refused = acknowledge(&app, id, &admin, csrf).await;
        assert_eq!(refused.status(), 403, "csrf {csrf:?}");
    }
    assert_eq!(
        app.store.alert(id).await.unwrap().unwrap().acknowledged_by,
        None
    );

    let before = chrono::Utc::now().timestamp_millis();
    let done = acknowledge(&app, id, &admin, &csrf_of(&html)).await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()["location"], "/admin/alerts?acknowledged=ok");
    let stored = app.store.alert(id).await.unwrap().unwrap();
    assert_eq!(stored.acknowledged_by.as_deref(), Some("admin"));
    assert!(stored.acknowledged_at_ms.unwrap() >= before);
    assert_eq!(stored.resolved_at_ms, None, "acknowledged, still firing");

    let html = page_when(&app, "/admin/alerts?acknowledged=ok", &admin, |h| {
        h.contains("Alert acknowledged.")
    })
    .await;
    let active = active_part(&html);
    let row = &active[active.find(&format!(r#"data-alert-id="{id}""#)).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("by admin at "), "who and when: {row}");
    assert!(!row.contains("<button"), "acknowledged once: {row}");

    // A second acknowledgement changes nothing; both are audited.
    let again = acknowledge(&app, id, &admin, &csrf_of(&html)).await;
    assert_eq!(again.headers()["location"], "/admin/alerts?acknowledged=no");
    let audit = app.store.recent_audit(20).await.unwrap();
    let acks: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "acknowledge_alert")
        .map(|a| {
            (
                a.actor.as_str(),
                a.outcome.as_str(),
                a.target["alert"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        acks,
        [
            (
                "admin",
                "not_active_or_already_acknowledged",
                Some("WarmlineFallbacksHigh")
            ),
            ("admin", "ok", Some("WarmlineFallbacksHigh")),
        ]
    );

    let metrics = app.get("/metrics").await.text().await.unwrap();
    for name in ["WarmlineFallbacksHigh", "WarmlineDatabaseDown"] {
        let series = format!(r#"warmline_alerts_active{{alert="{name}"}}"#);
        assert!(metrics.contains(&series), "{series}");
    }
}

#[tokio::test]
async fn a_database_outage_raises_the_database_and_spill_alerts_which_resolve_when_it_is_back() {
    let Some(mut pg) = PrivatePostgres::start().await else {
        return;
    };
    let url = pg.url();
    let (app, _sim) = alerting_app(
        TestDb::External(url),
        // A refused connection fails in a third of a second, not two.
        &[("WARMLINE_DB_ACQUIRE_TIMEOUT_MS", "300")],
    )
    .await;
    let admin = session(&app, PASSWORD).await;
    page_when(&app, "/admin/alerts", &admin, |h| {
        h.contains("<h1>Alerts</h1>")
    })
    .await;

    let down_at = chrono::Utc::now().timestamp_millis();
    pg.stop_server();
    // Acknowledged while the database is away: only on local disk.
    let job = Job::Fallback {
        key: "fallback:alert-outage".into(),
        provider: Provider::Retell,
        call_id: None,
        kind: "tenant_default".into(),
        detail: None,
        tenant_id: None,
        time_zone: None,
    };
    app.writebehind.spill().append(&[job]).await.unwrap();
    // The evaluation sees both (the page cannot: its sessions are in the
    // database), and counts them in the gauge.
    for name in ["WarmlineDatabaseDown", "WarmlineSpillingToJournal"] {
        let series = format!("warmline_alerts_active{{alert=\"{name}\"}} 1");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !app
            .get("/metrics")
            .await
            .text()
            .await
            .unwrap()
            .contains(&series)
        {
            assert!(Instant::now() < deadline, "{series} never seen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    pg.start_server().await;

    // Back: the spill journal is replayed, both alerts resolve and are
    // stored with when they started and ended.
    let html = page_when(&app, "/admin/alerts", &admin, |h| {
        let history = &h[h.find("<h2>Resolved</h2>").unwrap()..];
        history.contains(r#"data-alert="WarmlineDatabaseDown""#)
            && history.contains(r#"data-alert="WarmlineSpillingToJournal""#)
    })
    .await;
    assert_eq!(firing_and_resolved(&html), BTreeSet::new(), "{html}");
    let active = active_part(&html);
    assert!(!active.contains("WarmlineDatabaseDown"), "{active}");
    assert!(!active.contains("WarmlineSpillingToJournal"), "{active}");
    assert!(
        html.contains("Database unreachable") && html.contains("1 events only on local disk"),
        "{html}"
    );
    let resolved = app.store.resolved_alerts(100).await.unwrap();
    for name in ["WarmlineDatabaseDown", "WarmlineSpillingToJournal"] {
        let a = resolved.iter().find(|a| a.name == name).unwrap();
        assert!(a.started_at_ms >= down_at, "{a:?}");
        assert!(a.resolved_at_ms.unwrap() >= a.started_at_ms, "{a:?}");
    }
    let spill = resolved
        .iter()
        .find(|a| a.name == "WarmlineSpillingToJournal")
        .unwrap();
    assert_eq!(
        (spill.severity.as_str(), spill.value, spill.threshold),
        ("critical", 1.0, 0.0)
    );
    assert_eq!(app.writebehind.spill().pending(), 0);
}

/// The page reads the firing and the resolved alerts at one instant: an
/// alert that resolves while the page is read is in one table, never in
/// both (as if it still fired after its resolution).
#[tokio::test]
async fn the_page_never_shows_an_alert_both_firing_and_resolved_while_alerts_resolve() {
    let (app, _sim) = alerting_app(TestDb::sqlite(), &[]).await;
    let admin = session(&app, PASSWORD).await;
    // A flapping alert of no rule here (the evaluation leaves it alone):
    // raised and resolved over and over while the page is read.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flapping = tokio::spawn({
        let (store, stop) = (app.store.clone(), stop.clone());
        async move {
            let mut at = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                at += 1;
                let a = alert("WarmlineFlapping", &[], 1.0, at);
                store.raise_alert(&a).await.unwrap();
                store.resolve_alert(&a.name, &a.labels, at).await.unwrap();
            }
            at
        }
    });
    let mut seen_firing = 0;
    for _ in 0..150 {
        let resp = get(&app, "/admin/alerts", Some(&admin)).await;
        assert_eq!(resp.status(), 200);
        let html = resp.text().await.unwrap();
        if active_part(&html).contains(r#"data-alert="WarmlineFlapping""#) {
            seen_firing += 1;
            assert_eq!(firing_and_resolved(&html), BTreeSet::new(), "{html}");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flaps = flapping.await.unwrap();
    assert!(flaps > 150, "it flapped while the page was read: {flaps}");
    assert!(seen_firing > 0, "the page caught it firing");
}

fn alert(name: &str, labels: &[(&str, &str)], value: f64, at: i64) -> NewAlert {
    NewAlert {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        severity: "warning".into(),
        value,
        threshold: 0.1,
        detail: "3 fallbacks, 0 calls today".into(),
        started_at_ms: at,
    }
}

async fn one_active_row_per_alert_and_labels(store: &Store) {
    let zep = [("upstream", "zep")];
    // Two replicas raise the same alert: one row.
    assert!(
        store
            .raise_alert(&alert("WarmlineUpstreamBreakerOpen", &zep, 2.0, 10))
            .await
            .unwrap()
    );
    assert!(
        !store
            .raise_alert(&alert("WarmlineUpstreamBreakerOpen", &zep, 2.0, 11))
            .await
            .unwrap()
    );
    assert!(
        store
            .raise_alert(&alert(
                "WarmlineUpstreamBreakerOpen",
                &[("upstream", "calcom")],
                2.0,
                12
            ))
            .await
            .unwrap()
    );
    // Infinitely many fallbacks per call (none ended yet) is stored as such.
    assert!(
        store
            .raise_alert(&alert("WarmlineFallbacksHigh", &[], f64::INFINITY, 13))
            .await
            .unwrap()
    );
    let active = store.active_alerts().await.unwrap();
    assert_eq!(active.len(), 3);
    assert_eq!(active[0].started_at_ms, 10, "the first raise stands");
    assert_eq!(
        active[0].labels,
        BTreeMap::from([("upstream".to_owned(), "zep".to_owned())])
    );
    assert!(active[2].value.is_infinite());

    let id = active[0].id;
    assert!(store.acknowledge_alert(id, "admin", 20).await.unwrap());
    assert!(
        !store.acknowledge_alert(id, "viewer", 21).await.unwrap(),
        "the first one stands"
    );
    let zep_labels = active[0].labels.clone();
    assert!(
        store
            .resolve_alert("WarmlineUpstreamBreakerOpen", &zep_labels, 30)
            .await
            .unwrap()
    );
    assert!(
        !store
            .resolve_alert("WarmlineUpstreamBreakerOpen", &zep_labels, 31)
            .await
            .unwrap()
    );
    assert!(
        !store.acknowledge_alert(id, "admin", 32).await.unwrap(),
        "resolved"
    );
    // It fires again: a new row; the old one stays in the history.
    assert!(
        store
            .raise_alert(&alert("WarmlineUpstreamBreakerOpen", &zep, 2.0, 40))
            .await
            .unwrap()
    );
    let history = store.resolved_alerts(100).await.unwrap();
    assert_eq!(history.len(), 1);
    let old = &history[0];
    assert_eq!(
        (old.id, old.resolved_at_ms, old.acknowledged_by.as_deref()),
        (id, Some(30), Some("admin"))
    );
    assert_eq!(old.acknowledged_at_ms, Some(20));
    assert_eq!(store.active_alerts().await.unwrap().len(), 3);
    assert_eq!(store.alert(id).await.unwrap().as_ref(), Some(old));
}

#[tokio::test]
async fn alert_rows_keep_one_active_per_alert_and_labels_on_sqlite() {
    let db = TestDb::sqlite();
    one_active_row_per_alert_and_labels(&db.store().await).await;
}

#[tokio::test]
async fn alert_rows_keep_one_active_per_alert_and_labels_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    one_active_row_per_alert_and_labels(&db.store().await).await;
}

#[tokio::test]
async fn a_bad_alert_threshold_stops_the_start_naming_the_variable() {
    let vars = std::collections::HashMap::from([(
        "WARMLINE_ALERT_FALLBACK_RATIO_MAX".to_owned(),
        "10 %".to_owned(),
    )]);
    let err = warmline::settings::Settings::from_vars(&vars)
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("WARMLINE_ALERT_FALLBACK_RATIO_MAX"),
        "{err}"
    );
}

/// The latency rule compares the webhooks' p95 over the last minutes with
/// the p95 of the last seven days' answers: a week of 10 ms answers, then
/// a CRM that takes 200 ms, raises it.
#[tokio::test]
async fn webhooks_slower_than_one_and_a_half_times_their_weekly_p95_raise_the_latency_alert() {
    let (app, sim) = alerting_app(TestDb::sqlite(), &[]).await;
    let mut week = warmline::store::DailyTimings::default();
    week.buckets[0] = 10_000; // every answer within 10 ms: p95 9.5 ms
    let today = chrono::Utc::now().date_naive();
    for days_ago in 1..=6 {
        let day = (today - chrono::Days::new(days_ago)).to_string();
        app.store.add_daily_timings("", &day, &week).await.unwrap();
    }
    sim.state
        .set_knob(
            warmline::simulator::endpoints::GHL_FIND_CONTACT,
            warmline::simulator::Knob::latency(200),
        )
        .unwrap();
    let inbound = json!({ "event": "call_inbound", "call_inbound": {
        "from_number": "+15550106666", "to_number": "+15550100000", "agent_id": "agent_1" } });
    let (status, answer) = retell(&app, "/retell/inbound", &inbound).await;
    assert_eq!(status, 200, "{answer}");

    let cookie = session(&app, PASSWORD).await;
    let html = page_when(&app, "/admin/alerts", &cookie, |h| {
        h.contains(r#"data-alert="WarmlineWebhookLatencyHigh""#)
    })
    .await;
    assert!(
        html.contains("7-day p95 10 ms"),
        "the baseline shown: {html}"
    );
}
