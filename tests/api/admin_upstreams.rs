//! The upstreams page: each upstream warmline called, its breaker, and per
//! operation the recent p50 / p95 and error ratio; the webhooks' latency by
//! platform, which the summary bar's "webhook p95" comes from. And the cache
//! key lookup: what an inbound call left cached for its caller.

use serde_json::json;

use crate::helpers::TestDb;
use crate::helpers::admin::{PASSWORD, get, session};
use crate::helpers::voice::{retell, secrets};

/// The four cells (calls, p50, p95, errors) of the table row named `name`
/// in `html`, and the row from there on.
fn row_cells<'a>(html: &'a str, name: &str) -> (Vec<&'a str>, &'a str) {
    let head = format!("<th scope=\"row\">{name}</th>");
    let row = &html[html
        .find(&head)
        .unwrap_or_else(|| panic!("{name} row: {html}"))..];
    let cells = row
        .split("<td>")
        .skip(1)
        .take(4)
        .map(|c| c.split('<').next().unwrap_or(""))
        .collect();
    (cells, row)
}

#[tokio::test]
async fn an_inbound_call_shows_its_upstream_calls_and_the_webhooks_latency() {
    let admin = warmline::admin::password::PasswordHash::make(PASSWORD).unwrap();
    let mut vars = secrets();
    vars.push(("WARMLINE_ADMIN_PASSWORD_HASH", admin.as_phc()));
    let (app, _sim) = crate::helpers::spawn_with_simulator(TestDb::sqlite(), &vars).await;
    let cookie = session(&app, PASSWORD).await;

    let before = get(&app, "/admin/upstreams", Some(&cookie)).await;
    assert_eq!(before.status(), 200);
    let before = before.text().await.unwrap();
    assert!(
        before.contains("No webhook in the last five minutes"),
        "{before}"
    );
    assert!(before.contains("<b>–</b> webhook p95"), "{before}");
    assert!(
        before.contains("GoHighLevel quota: 100 requests per 10 s per location, counted by this replica alone (no Redis)."),
        "{before}"
    );

    let inbound = json!({ "event": "call_inbound", "call_inbound": {
        "from_number": "+15550109999", "to_number": "+15550100000", "agent_id": "agent_1" } });
    let (status, answer) = retell(&app, "/retell/inbound", &inbound).await;
    assert_eq!(status, 200, "{answer}");
    // A refused request counts as an error of its platform.
    let (status, _) = crate::helpers::voice::post(&app, "/retell/inbound", "{}", &[]).await;
    assert_eq!(status, 401);

    let html = get(&app, "/admin/upstreams", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    // The demo tenant's CRM and calendar, and its memory, were asked.
    for upstream in ["gohighlevel", "zep"] {
        assert!(
            html.contains(&format!(r#"id="upstream-{upstream}""#)),
            "{upstream}: {html}"
        );
    }
    assert!(
        html.contains("Breaker <b class=\"breaker\">closed</b>"),
        "{html}"
    );
    assert!(
        html.contains("<th scope=\"row\">find_contact</th><td>1</td>"),
        "one CRM lookup: {html}"
    );
    // A first-time caller has no Zep thread: its 404 means "no memory yet",
    // not a failure of the memory service.
    let zep = &html[html.find(r#"id="upstream-zep""#).expect("zep section")..];
    let zep = &zep[..zep.find("</section>").unwrap_or(zep.len())];
    assert!(zep.contains("No failure since start."), "{zep}");
    let (cells, row) = row_cells(zep, "get_context");
    assert_eq!((cells[0], cells[3]), ("1", "0.0 %"), "{row}");
    let webhooks = &html[html.find(r#"id="webhook-latency""#).expect("webhook table")..];
    let (cells, retell_row) = row_cells(webhooks, "retell");
    assert_eq!(cells[0], "1", "one request answered: {retell_row}");
    assert_eq!(cells[3], "0.0 %", "{retell_row}");
    assert!(cells[2].ends_with(" ms"), "{retell_row}");
    let refused = &webhooks[webhooks
        .find("<th scope=\"row\">refused</th>")
        .expect("refused row")..];
    assert!(
        refused.starts_with("<th scope=\"row\">refused</th><td>1</td>"),
        "the refused request is counted apart: {refused}"
    );
    assert!(
        !html.contains("<b>–</b> webhook p95"),
        "the summary bar has a p95 now: {html}"
    );
}

#[tokio::test]
async fn the_key_lookup_shows_what_an_inbound_call_cached_for_its_caller() {
    let admin = warmline::admin::password::PasswordHash::make(PASSWORD).unwrap();
    let mut vars = secrets();
    vars.push(("WARMLINE_ADMIN_PASSWORD_HASH", admin.as_phc()));
    let (app, _sim) = crate::helpers::spawn_with_simulator(TestDb::sqlite(), &vars).await;
    let cookie = session(&app, PASSWORD).await;
    let lookup = "/admin/cache/key?tenant=demo-dental&caller=%2B15550108888";

    let before = get(&app, lookup, Some(&cookie)).await.text().await.unwrap();
    assert!(
        before.contains(
            r#"<tr data-tier="l1"><th scope="row">l1</th><td class="window">absent</td>"#
        ),
        "nothing cached yet: {before}"
    );
    let inbound = json!({ "event": "call_inbound", "call_inbound": {
        "from_number": "+15550108888", "to_number": "+15550100000", "agent_id": "agent_1" } });
    let (status, answer) = retell(&app, "/retell/inbound", &inbound).await;
    assert_eq!(status, 200, "{answer}");

    let html = get(&app, lookup, Some(&cookie)).await.text().await.unwrap();
    for ns in ["contact", "memory", "context"] {
        let card = &html[html
            .find(&format!(r#"data-lookup-namespace="{ns}""#))
            .unwrap_or_else(|| panic!("{ns}: {html}"))..];
        let l1 = &card[card.find(r#"data-tier="l1""#).unwrap()..];
        let l1 = &l1[..l1.find("</tr>").unwrap()];
        assert!(
            l1.contains(r#"<td class="window">fresh</td>"#),
            "{ns}: {l1}"
        );
        assert!(
            l1.contains(" s</td>"),
            "an age and windows in seconds: {l1}"
        );
    }
    let results = &html[html.find("data-lookup-namespace").unwrap()..];
    assert!(
        !results.contains("5550108888"),
        "the caller is masked in the keys shown: {results}"
    );
    assert!(html.contains("fresh "), "the namespace's windows: {html}");

    let bad = get(
        &app,
        "/admin/cache/key?tenant=demo-dental&caller=nobody",
        Some(&cookie),
    )
    .await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("`caller`"));
    let half = get(&app, "/admin/cache/key?tenant=demo-dental", Some(&cookie)).await;
    assert_eq!(half.status(), 400);
    assert_eq!(
        get(&app, lookup, None).await.status(),
        303,
        "the lookup wants a login"
    );
}
