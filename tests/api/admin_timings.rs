//! Daily answer times and cache hits: every webhook is timed and its cache
//! lookups counted, by the tenant it turned out to be for, in memory, then
//! added to `daily_timings` by the rollup's flush; the daily metrics page
//! and its CSV show the day's answers, p95 and hit ratio.

use std::time::Duration;

use serde_json::json;
use warmline::domain::TenantId;
use warmline::store::Rollup;
use warmline::support::attribution::{AnswerSink, Answered};

use crate::helpers::TestDb;
use crate::helpers::admin::{PASSWORD, get, session};
use crate::helpers::voice::{retell, secrets};

/// The CSV line of the day with at least `answers` answers, once the
/// rollup has written them (it flushes every 100 ms here, so they may
/// arrive over several flushes).
async fn csv_day_with_answers(
    app: &crate::helpers::TestApp,
    cookie: &str,
    tenant: &str,
    at_least: i64,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let csv = get(
            app,
            &format!("/admin/metrics.csv?days=7&tenant={tenant}"),
            Some(cookie),
        )
        .await
        .text()
        .await
        .unwrap();
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let answers = header.iter().position(|h| *h == "answers").unwrap();
        if let Some(line) = csv.lines().skip(1).find(|l| {
            l.split(',')
                .nth(answers)
                .and_then(|a| a.parse::<i64>().ok())
                .is_some_and(|a| a >= at_least)
        }) {
            return line.split(',').map(str::to_owned).collect();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no answers written: {csv}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_answered_webhook_is_counted_on_its_tenants_day_with_its_cache_lookups() {
    let admin = warmline::admin::password::PasswordHash::make(PASSWORD).unwrap();
    let mut vars = secrets();
    vars.push(("WARMLINE_ADMIN_PASSWORD_HASH", admin.as_phc()));
    vars.push(("WARMLINE_ROLLUP_FLUSH_MS", "100"));
    let (app, _sim) = crate::helpers::spawn_with_simulator(TestDb::sqlite(), &vars).await;
    let cookie = session(&app, PASSWORD).await;
    let inbound = json!({ "event": "call_inbound", "call_inbound": {
        "from_number": "+15550107777", "to_number": "+15550100000", "agent_id": "agent_1" } });
    // Refused, though it names the tenant's number: counted for no one (a
    // stranger cannot pad a tenant's answers or pull its p95 down).
    let (status, _) =
        crate::helpers::voice::post(&app, "/retell/inbound", &inbound.to_string(), &[]).await;
    assert_eq!(status, 401);
    for _ in 0..2 {
        let (status, answer) = retell(&app, "/retell/inbound", &inbound).await;
        assert_eq!(status, 200, "{answer}");
    }

    // day,calls,bookings,conversion,fallbacks,total_duration_ms,answers,p95_ms,cache_hit_ratio
    // Written after the refused request, in the same flush or a later one.
    let day = csv_day_with_answers(&app, &cookie, "demo-dental", 2).await;
    assert_eq!(day[6], "2", "two inbound calls answered, no more: {day:?}");
    assert!(day[7].parse::<f64>().unwrap() > 0.0, "a p95: {day:?}");
    let ratio: f64 = day[8].parse().unwrap();
    assert!(
        ratio > 0.0 && ratio < 1.0,
        "the first call missed, the second hit: {day:?}"
    );
    let csv = get(&app, "/admin/metrics.csv?days=7", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    let total: i64 = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(6).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, 2, "the refused request is nobody's answer: {csv}");

    let html = get(
        &app,
        "/admin/metrics?days=7&tenant=demo-dental",
        Some(&cookie),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(html.contains("Answer p95"), "{html}");
    assert!(html.contains("<polyline"), "the hit ratio line: {html}");
}

#[tokio::test]
async fn the_rollup_adds_to_the_days_row_on_postgres_and_keeps_what_it_could_not_write() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = db.store().await;
    let rollup = Rollup::new(store.clone());
    let tz: chrono_tz::Tz = "Pacific/Auckland".parse().unwrap();
    let answer = |ms| Answered {
        tenant: Some(("kiwi-dental".into(), tz)),
        elapsed: Duration::from_millis(ms),
        lookups: 4,
        hits: 3,
    };
    for ms in [5, 40, 120] {
        rollup.answered(&answer(ms));
    }
    assert_eq!(rollup.flush().await.unwrap(), 1);
    rollup.answered(&answer(2_500));
    assert_eq!(rollup.flush().await.unwrap(), 1);
    assert_eq!(rollup.flush().await.unwrap(), 0, "nothing twice");

    let day = chrono::Utc::now()
        .with_timezone(&tz)
        .date_naive()
        .to_string();
    let tenant = TenantId::parse("kiwi-dental").unwrap();
    let rows = store
        .daily_timings(Some(&tenant), &day, &day)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one row, on the tenant's own day: {rows:?}");
    let t = rows[0].1;
    assert_eq!(t.answers(), 4);
    assert_eq!((t.cache_lookups, t.cache_hits), (16, 12));
    assert_eq!(t.hit_ratio(), Some(0.75));
    let p95 = t.quantile_ms(0.95).unwrap();
    assert!((2000.0..=3000.0).contains(&p95), "{p95}");

    // With the database gone, what was counted waits for the next flush.
    rollup.answered(&answer(7));
    store.close().await;
    assert!(rollup.flush().await.is_err());
    let reopened = db.store().await;
    let again = Rollup::new(reopened.clone());
    assert_eq!(again.flush().await.unwrap(), 0);
    // The first rollup still holds its answer: it is written once its store
    // answers again (here: never — the point is it was not dropped).
    assert!(rollup.flush().await.is_err(), "still pending, not lost");
}
