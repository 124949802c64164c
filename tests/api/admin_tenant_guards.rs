//! What the tenants page must not let a browser session do: send
//! warmline's own secrets, or a stored token, to a host of its choosing;
//! take another tenant's line; make the list page say anything it likes.

use serde_json::{Value, json};

use crate::admin_tenants::{
    GHL_TOKEN, ZEP_KEY, acme, app, app_with, edited, page, submit, tenant_audit, unescape,
};
use crate::helpers::TestApp;
use crate::helpers::admin::{PASSWORD, csrf_of, session};

/// Demo Dental's document as the form shows it (every token `***`), with
/// `memory` replaced.
fn with_memory(sim: &str, memory: Value) -> String {
    let mut doc = warmline::simulator::demo_tenant_config(sim);
    for adapter in ["crm", "memory", "calendar"] {
        doc[adapter]["token"] = json!("***");
    }
    doc["memory"] = memory;
    doc.to_string()
}

/// The problem the refused form names.
fn problem_of(body: &str) -> String {
    let at = body.find(r#"id="problem">"#).expect("a problem shown") + 13;
    unescape(&body[at..at + body[at..].find("</p>").unwrap()])
}

async fn stored_config(app: &TestApp, id: &str) -> String {
    let id = warmline::domain::TenantId::parse(id).unwrap();
    app.store.tenant(&id).await.unwrap().unwrap().config
}

#[tokio::test]
async fn an_edit_cannot_send_warmlines_own_secrets_or_a_stored_token_to_a_host_of_its_choosing() {
    let (app, sim) = app().await;
    let cookie = session(&app, PASSWORD).await;
    let before = stored_config(&app, "demo-dental").await;
    let attacker = "https://attacker.example";
    let cases = [
        // The review's attack: DATABASE_URL's value as the API key.
        (
            json!({ "kind": "zep", "base_url": attacker, "token_env": "DATABASE_URL" }),
            "`memory.token_env`: DATABASE_URL is one of warmline's own settings",
        ),
        (
            json!({ "kind": "zep", "base_url": sim.url, "token_env": "WARMLINE_ADMIN_TOKEN" }),
            "WARMLINE_ADMIN_TOKEN is one of warmline's own settings",
        ),
        (
            json!({ "kind": "zep", "base_url": sim.url, "token_env": "VAPI_SECRET" }),
            "VAPI_SECRET is one of warmline's own settings",
        ),
        (
            json!({ "kind": "zep", "base_url": attacker, "token_env": "ACME_ZEP_KEY" }),
            "`memory.base_url`: the adapter's credential is sent there",
        ),
        // The stored inline token kept as *** while only the URL moves.
        (
            json!({ "kind": "zep", "base_url": attacker, "token": "***" }),
            "`memory.base_url` changed",
        ),
        (
            json!({ "kind": "zep", "base_url": "https://api.getzep.com", "token": "***" }),
            "give the credential again",
        ),
        (
            json!({ "kind": "zep", "token": "***" }),
            "`memory.base_url` changed",
        ),
        (
            json!({ "kind": "mem0", "base_url": sim.url, "token": "***" }),
            "`memory.kind` changed",
        ),
    ];
    for (memory, expected) in cases {
        let document = with_memory(&sim.url, memory.clone());
        let (status, body) = edited(&app, &cookie, "demo-dental", &[("document", &document)]).await;
        assert_eq!(status, 400, "{memory}: {body}");
        let problem = problem_of(&body);
        assert!(
            problem.contains(expected),
            "{memory}: wants {expected} in {problem}"
        );
        assert!(
            !problem.contains(attacker),
            "the URL is not quoted: {problem}"
        );
        assert!(!body.contains(ZEP_KEY) && !body.contains(GHL_TOKEN));
    }
    assert_eq!(
        stored_config(&app, "demo-dental").await,
        before,
        "nothing stored"
    );
    assert!(tenant_audit(&app).await.is_empty());

    // A new adapter on the simulator's host is refused too: 127.0.0.1 is
    // not listed in WARMLINE_ADMIN_UPSTREAM_HOSTS here.
    let csrf = csrf_of(&page(&app, "/admin/tenants/new", &cookie).await);
    let on_sim = format!(
        "memory = {{ kind = \"zep\", base_url = \"{}\", token_env = \"ACME_ZEP_KEY\" }}",
        sim.url
    );
    let (status, body) = submit(&app, "/admin/tenants", &cookie, &acme(&csrf, &on_sim)).await;
    assert_eq!(status, 400, "{body}");
    assert!(unescape(&body).contains("`memory.base_url`"), "{body}");

    // Unchanged, the stored URL and token stay usable; the official API
    // may be named or left implicit.
    let kept = with_memory(
        &sim.url,
        json!({ "kind": "zep", "base_url": sim.url, "token": "***" }),
    );
    let renamed = [("name", "Demo Dental Two"), ("document", kept.as_str())];
    let (status, to) = edited(&app, &cookie, "demo-dental", &renamed).await;
    assert_eq!(status, 303, "{to}");
    assert!(stored_config(&app, "demo-dental").await.contains(ZEP_KEY));
    for memory in [
        json!({ "kind": "zep", "base_url": "https://API.getzep.com/", "token_env": "ACME_ZEP_KEY" }),
        json!({ "kind": "mem0", "token_env": "ACME_MEM0_KEY" }),
    ] {
        let document = with_memory(&sim.url, memory.clone());
        let (status, to) = edited(&app, &cookie, "demo-dental", &[("document", &document)]).await;
        assert_eq!(status, 303, "{memory}: {to}");
    }
}

#[tokio::test]
async fn hosts_listed_in_warmline_admin_upstream_hosts_may_be_named_from_the_pages() {
    let (app, sim) = app_with(&[("WARMLINE_ADMIN_UPSTREAM_HOSTS", " sim.test, 127.0.0.1 ")]).await;
    let cookie = session(&app, PASSWORD).await;
    let csrf = csrf_of(&page(&app, "/admin/tenants/new", &cookie).await);
    let memory = |url: &str| {
        format!("memory = {{ kind = \"zep\", base_url = \"{url}\", token_env = \"ACME_ZEP_KEY\" }}")
    };
    let localhost = sim.url.replace("127.0.0.1", "localhost");
    let (status, body) = submit(
        &app,
        "/admin/tenants",
        &cookie,
        &acme(&csrf, &memory(&localhost)),
    )
    .await;
    assert_eq!(status, 400, "localhost is not listed: {body}");
    let (status, to) = submit(
        &app,
        "/admin/tenants",
        &cookie,
        &acme(&csrf, &memory(&sim.url)),
    )
    .await;
    assert_eq!(status, 303, "{to}");
    assert!(stored_config(&app, "acme").await.contains(&sim.url));
}

#[tokio::test]
async fn a_line_served_by_another_tenant_cannot_be_taken_in_the_pages_or_by_import() {
    let (app, _sim) = app().await;
    let cookie = session(&app, PASSWORD).await;
    let csrf = csrf_of(&page(&app, "/admin/tenants/new", &cookie).await);
    let lines = |line: &str| format!("line_ids = [\"{line}\"]");
    let (status, to) = submit(
        &app,
        "/admin/tenants",
        &cookie,
        &acme(&csrf, &lines("PN-Shared-1")),
    )
    .await;
    assert_eq!(status, 303, "{to}");

    let mut zen = acme(&csrf, "");
    let zen_lines = lines(" pn-shared-1 ");
    for (field, value) in [
        ("id", "zen"),
        ("phone_number", "+15550100043"),
        ("document", zen_lines.as_str()),
    ] {
        zen.iter_mut().find(|(f, _)| *f == field).unwrap().1 = value;
    }
    let (status, body) = submit(&app, "/admin/tenants", &cookie, &zen).await;
    let body = unescape(&body);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("line `pn-shared-1` already answers tenant `acme`"),
        "{body}"
    );

    let taken = format!(
        "{}\nline_ids = [\"PN-SHARED-1\"]",
        "vapi_assistant_id = \"asst_1\""
    );
    let (status, body) = edited(&app, &cookie, "demo-dental", &[("document", &taken)]).await;
    assert_eq!(status, 400, "{body}");
    assert!(unescape(&body).contains("`acme`"), "{body}");
    assert_eq!(app.store.list_tenants().await.unwrap().len(), 2);

    // `warmline tenants import` refuses it as well; acme itself may keep it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tenants.toml");
    let tenant = |id: &str, number: &str| {
        format!(
            "[[tenants]]\nid = \"{id}\"\nphone_number = \"{number}\"\nname = \"N\"\n\
             time_zone = \"UTC\"\nline_ids = [\"pn-SHARED-1\"]\n"
        )
    };
    std::fs::write(&file, tenant("zen", "+15550100043")).unwrap();
    let e = warmline::tenants::import(&app.store, &file)
        .await
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("line `pn-shared-1` already belongs to tenant `acme`"),
        "{e:#}"
    );
    std::fs::write(&file, tenant("acme", "+15550100042")).unwrap();
    assert_eq!(
        warmline::tenants::import(&app.store, &file).await.unwrap(),
        1
    );
}

#[tokio::test]
async fn the_list_shows_only_its_own_notices_whatever_the_link_says() {
    let (app, _sim) = app().await;
    let cookie = session(&app, PASSWORD).await;
    let html = page(&app, "/admin/tenants?done=created", &cookie).await;
    assert!(html.contains(r#"role="status">Tenant created."#), "{html}");
    let forged = "Your session expired: log in again at evil.example";
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("done", forged)
        .finish();
    let html = page(&app, &format!("/admin/tenants?{query}"), &cookie).await;
    assert!(!html.contains("evil.example"), "{html}");
    assert!(!html.contains(r#"role="status""#), "{html}");
}
