//! The tenants page: tenants listed, created and edited through the form —
//! checked as `warmline tenants import` checks a file — every change
//! audited, what the tenant had cached dropped on every replica so its next
//! call hears the new name, secrets never in the page, and only an admin
//! with the form's CSRF token may change anything.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warmline::admin::password::PasswordHash;
use warmline::cache::Namespace;
use warmline::simulator::Simulator;
use warmline::tenants::Tenant;

use crate::helpers::admin::{PASSWORD, VIEWER, client, csrf_of, form, get, session};
use crate::helpers::voice::{retell, secrets};
use crate::helpers::{
    SPANS, TestApp, TestDb, settings_with, shared_redis, spawn_with_settings, spawn_with_simulator,
};

/// The admin's and the viewer's password hashes, and the webhook secrets.
pub(crate) fn vars(admin: &PasswordHash, viewer: &PasswordHash) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("WARMLINE_ADMIN_PASSWORD_HASH", admin.as_phc().to_owned()),
        (
            "WARMLINE_ADMIN_VIEWER_PASSWORD_HASH",
            viewer.as_phc().to_owned(),
        ),
    ];
    vars.extend(secrets().into_iter().map(|(k, v)| (k, v.to_owned())));
    vars
}

/// An app with the admin and viewer logins and "Demo Dental" on
/// +15550100000 (inline tokens, wired to the simulator).
pub(crate) async fn app() -> (TestApp, Simulator) {
    app_with(&[]).await
}

/// [`app`] with more variables set.
pub(crate) async fn app_with(extra: &[(&str, &str)]) -> (TestApp, Simulator) {
    let (admin, viewer) = hashes();
    let vars = vars(&admin, &viewer);
    let mut vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend_from_slice(extra);
    spawn_with_simulator(TestDb::sqlite(), &vars).await
}

pub(crate) fn hashes() -> (PasswordHash, PasswordHash) {
    (
        PasswordHash::make(PASSWORD).unwrap(),
        PasswordHash::make(VIEWER).unwrap(),
    )
}

pub(crate) async fn page(app: &TestApp, path: &str, cookie: &str) -> String {
    let resp = get(app, path, Some(cookie)).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.unwrap()
}

pub(crate) async fn submit(
    app: &TestApp,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let resp = client()
        .post(format!("{}{path}", app.address))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(fields))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    let body = resp.text().await.unwrap();
    (status, location.unwrap_or(body))
}

/// What askama escaped, back as typed.
pub(crate) fn unescape(html: &str) -> String {
    html.replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of the form field `name` in a page.
pub(crate) fn field(html: &str, name: &str) -> String {
    if name == "document" {
        let at = html.find(r#"name="document""#).expect("a document field");
        let start = at + html[at..].find('>').unwrap() + 1;
        let end = start + html[start..].find("</textarea>").unwrap();
        return unescape(&html[start..end]);
    }
    let marker = format!(r#"name="{name}" value=""#);
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name}"))
        + marker.len();
    unescape(html[at..].split('"').next().unwrap())
}

/// The edit form of `id` as the browser would send it back, with
/// `changes` applied.
pub(crate) async fn edited(
    app: &TestApp,
    cookie: &str,
    id: &str,
    changes: &[(&str, &str)],
) -> (u16, String) {
    let html = page(app, &format!("/admin/tenants/{id}"), cookie).await;
    let mut fields: Vec<(&str, String)> = [
        "csrf",
        "version",
        "name",
        "phone_number",
        "time_zone",
        "document",
    ]
    .into_iter()
    .map(|f| (f, field(&html, f)))
    .collect();
    for (name, value) in changes {
        fields.iter_mut().find(|(f, _)| f == name).unwrap().1 = (*value).to_owned();
    }
    let fields: Vec<(&str, &str)> = fields.iter().map(|(f, v)| (*f, v.as_str())).collect();
    submit(app, &format!("/admin/tenants/{id}"), cookie, &fields).await
}

/// The business name a Retell inbound call to `to` is answered with.
async fn business_name(app: &TestApp, to: &str) -> Value {
    let (status, answer) = retell(
        app,
        "/retell/inbound",
        &json!({ "event": "call_inbound", "call_inbound": {
            "from_number": "+15550100001", "to_number": to, "agent_id": "agent_1" } }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer["call_inbound"]["dynamic_variables"]["business_name"].clone()
}

pub(crate) async fn tenant_audit(app: &TestApp) -> Vec<(String, String, Value)> {
    app.store
        .recent_audit(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.action.starts_with("tenant."))
        .map(|a| (a.actor, a.action, a.target))
        .collect()
}

/// The simulator's own tokens, stored inline in Demo Dental's configuration.
pub(crate) const GHL_TOKEN: &str = "sim-ghl-token";
pub(crate) const ZEP_KEY: &str = "sim-zep-key";

/// The attributes of the traced change of `tenant` by `action`, once
/// exported.
async fn change_span(action: &str, tenant: &str) -> HashMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = SPANS
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .filter(|s| s.name == "admin.tenant.change")
            .map(|s| {
                s.attributes
                    .iter()
                    .map(|kv| (kv.key.as_str().to_owned(), kv.value.as_str().into_owned()))
                    .collect::<HashMap<_, _>>()
            })
            .find(|a| {
                a.get("action").map(String::as_str) == Some(action)
                    && a.get("tenant").map(String::as_str) == Some(tenant)
            });
        if let Some(attributes) = found {
            return attributes;
        }
        assert!(Instant::now() < deadline, "no {action} span for {tenant}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const ACME_DOCUMENT: &str = r#"
line_ids = ["pn-acme-1"]

[[services]]
id = "cleaning"
name = "Teeth cleaning"
"#;

pub(crate) fn acme<'a>(csrf: &'a str, document: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("id", "acme"),
        ("name", "Acme Dental"),
        ("phone_number", "+1 555 010 0042"),
        ("time_zone", "America/Chicago"),
        ("document", document),
    ]
}

#[tokio::test]
async fn the_list_shows_every_tenant_with_its_lines_adapters_and_services_but_no_secret() {
    let (app, _sim) = app().await;
    let anonymous = get(&app, "/admin/tenants", None).await;
    assert_eq!(anonymous.status(), 303, "a login first");
    let cookie = session(&app, PASSWORD).await;
    let html = page(&app, "/admin/tenants", &cookie).await;
    for shown in [
        "Demo Dental",
        "<code>demo-dental</code>",
        "+15550100000",
        "America/New_York",
        "crm: gohighlevel",
        "memory: zep",
        "calendar: gohighlevel",
        "inline assistant",
        "3: Teeth cleaning, Check-up, Whitening consultation",
        r#"href="/admin/tenants/demo-dental""#,
        r#"href="/admin/tenants/new""#,
    ] {
        assert!(html.contains(shown), "{shown} missing from {html}");
    }
    let form = page(&app, "/admin/tenants/demo-dental", &cookie).await;
    let document = field(&form, "document");
    assert!(document.contains("cal_demo_cleaning"), "{document}");
    assert!(document.contains(r#"token = "***""#), "{document}");
    for secret in [GHL_TOKEN, ZEP_KEY] {
        assert!(
            !html.contains(secret) && !form.contains(secret),
            "{secret} shown"
        );
    }
}

#[tokio::test]
async fn a_tenant_created_then_renamed_in_the_pages_answers_the_next_call_with_its_new_name() {
    let (app, _sim) = app().await;
    let cookie = session(&app, PASSWORD).await;
    let new = page(&app, "/admin/tenants/new", &cookie).await;
    let csrf = csrf_of(&new);
    let (status, to) = submit(&app, "/admin/tenants", &cookie, &acme(&csrf, ACME_DOCUMENT)).await;
    assert_eq!(status, 303, "{to}");
    assert_eq!(to, "/admin/tenants?done=created");
    let list = page(&app, "/admin/tenants", &cookie).await;
    assert!(
        list.contains("Acme Dental") && list.contains("pn-acme-1"),
        "{list}"
    );
    assert_eq!(business_name(&app, "+15550100042").await, "Acme Dental");

    // Cached now, for an hour: the call above and a warm-up put the number
    // and the line in L1.
    app.cache.warm_up().await;
    let tenants = app.cache.namespace::<Tenant>(Namespace::Tenant);
    assert!(tenants.peek_l1("line:pn-acme-1").is_some());
    assert!(tenants.peek_l1("+15550100042").is_some());

    let (status, to) = edited(&app, &cookie, "acme", &[("name", "Acme Smiles")]).await;
    assert_eq!(status, 303, "{to}");
    assert_eq!(to, "/admin/tenants?done=updated");
    assert!(tenants.peek_l1("line:pn-acme-1").is_none(), "line dropped");
    assert_eq!(business_name(&app, "+15550100042").await, "Acme Smiles");
    let span = change_span("update", "acme").await;
    assert_eq!(span["outcome"], "saved");
    assert_eq!(span["actor"], "admin");

    let audit = tenant_audit(&app).await;
    assert_eq!(audit.len(), 2, "{audit:?}");
    let (actor, action, target) = &audit[0];
    assert_eq!(
        (actor.as_str(), action.as_str()),
        ("admin", "tenant.update")
    );
    assert_eq!(target["tenant"], "acme");
    assert_eq!(target["changed"], json!(["name"]));
    assert_eq!(
        target["name"],
        json!({ "from": "Acme Dental", "to": "Acme Smiles" })
    );
    assert_eq!(audit[1].1, "tenant.create");
    let list = page(&app, "/admin/tenants", &cookie).await;
    assert!(list.contains("tenant.update"), "recent changes listed");

    // Sent again unchanged, nothing is written or audited.
    let (status, to) = edited(&app, &cookie, "acme", &[]).await;
    assert_eq!(status, 303);
    assert_eq!(to, "/admin/tenants?done=unchanged");
    assert_eq!(tenant_audit(&app).await.len(), 2);

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"warmline_admin_tenant_changes_total{action="update"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn secrets_stay_out_of_the_page_and_are_kept_when_the_form_is_sent_back() {
    let (app, _sim) = app().await;
    let cookie = session(&app, PASSWORD).await;
    let (status, to) = edited(
        &app,
        &cookie,
        "demo-dental",
        &[("name", "Demo Dental & Sons")],
    )
    .await;
    assert_eq!(status, 303, "{to}");
    let stored = app.store.list_tenants().await.unwrap().remove(0);
    assert_eq!(stored.name, "Demo Dental & Sons");
    assert!(stored.config.contains(GHL_TOKEN) && stored.config.contains(ZEP_KEY));

    // The stored tokens still open the CRM: the caller is known by name.
    let (status, answer) = retell(
        &app,
        "/retell/inbound",
        &json!({ "event": "call_inbound", "call_inbound": {
            "from_number": "+15550100001", "to_number": "+15550100000", "agent_id": "agent_1" } }),
    )
    .await;
    assert_eq!(status, 200);
    let vars = &answer["call_inbound"]["dynamic_variables"];
    assert_eq!(vars["business_name"], "Demo Dental & Sons");
    assert_eq!(vars["customer_name"], "Ana Souza", "{answer}");

    // A secret typed in is refused, named, and not shown back.
    let html = page(&app, "/admin/tenants/demo-dental", &cookie).await;
    let typed =
        field(&html, "document").replacen(r#"token = "***""#, r#"token = "pit-typed-in""#, 1);
    let (status, body) = edited(&app, &cookie, "demo-dental", &[("document", &typed)]).await;
    assert_eq!(status, 400);
    assert!(body.contains("holds a secret"), "{body}");
    assert!(!body.contains("pit-typed-in"), "{body}");
    let now = app.store.list_tenants().await.unwrap().remove(0);
    assert_eq!(now.config, stored.config, "nothing stored");
}

#[tokio::test]
async fn invalid_input_is_refused_with_a_400_naming_the_problem_and_nothing_is_stored() {
    let (app, _sim) = app().await;
    let cookie = session(&app, PASSWORD).await;
    let csrf = csrf_of(&page(&app, "/admin/tenants/new", &cookie).await);
    let calcom = "calendar = { kind = \"calcom\", token_env = \"CAL_KEY\" }\n[[services]]\nid = \"s\"\nname = \"S\"";
    let cases: &[(&str, &str, &str)] = &[
        (
            "time_zone",
            "Mars/Olympus",
            "unknown time_zone `Mars/Olympus`",
        ),
        ("phone_number", "call me", "phone_number"),
        ("name", "  ", "business name"),
        ("id", "acme dental", "tenant id contains"),
        ("id", "demo-dental", "already exists"),
        (
            "phone_number",
            "+15550100000",
            "already answers tenant `demo-dental`",
        ),
        ("document", calcom, "needs `event_type_id`"),
        ("document", "bogus = 1", "unknown field `bogus`"),
        ("document", "crm = {", "invalid TOML document (line 1"),
        (
            "document",
            r#"{"services": [{"id": "s"}]}"#,
            "`services[0]`: missing field `name`",
        ),
        (
            "document",
            "memory = { kind = \"zep\", token_env = \"pit-abc-123\" }",
            "`memory.token_env` must be the name",
        ),
    ];
    for (name, value, expected) in cases {
        let mut fields = acme(&csrf, "");
        fields.iter_mut().find(|(f, _)| f == name).unwrap().1 = *value;
        let (status, body) = submit(&app, "/admin/tenants", &cookie, &fields).await;
        assert_eq!(status, 400, "{name}={value}: {body}");
        let body = unescape(&body);
        assert!(
            body.contains(expected),
            "{name}={value}: wants {expected} in {body}"
        );
        assert!(
            body.contains(r#"aria-invalid="true""#),
            "the field is marked"
        );
        if *name != "name" {
            assert!(body.contains(r#"value="Acme Dental""#), "input kept");
        }
        assert!(
            !body.contains("pit-abc-123"),
            "a secret-looking value is not shown back"
        );
    }
    assert_eq!(
        app.store.list_tenants().await.unwrap().len(),
        1,
        "nothing stored"
    );

    let (status, body) = edited(
        &app,
        &cookie,
        "demo-dental",
        &[("time_zone", "Mars/Olympus")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = edited(&app, &cookie, "demo-dental", &[("version", "1")]).await;
    assert_eq!(status, 409, "an edit of an older version: {body}");
    let stored = app.store.list_tenants().await.unwrap().remove(0);
    assert_eq!(stored.time_zone, "America/New_York");
    assert!(tenant_audit(&app).await.is_empty());
}

#[tokio::test]
async fn the_viewer_may_look_but_not_change_and_every_change_needs_the_csrf_token() {
    let (app, _sim) = app().await;
    let viewer = session(&app, VIEWER).await;
    let list = page(&app, "/admin/tenants", &viewer).await;
    assert!(list.contains("Demo Dental"));
    let html = page(&app, "/admin/tenants/demo-dental", &viewer).await;
    assert!(
        html.contains("<fieldset disabled>"),
        "read only for the viewer"
    );
    let csrf = csrf_of(&html);
    let (status, _) = submit(&app, "/admin/tenants", &viewer, &acme(&csrf, "")).await;
    assert_eq!(status, 403, "the viewer cannot create");
    let (status, _) = edited(&app, &viewer, "demo-dental", &[("name", "Viewer Was Here")]).await;
    assert_eq!(status, 403, "the viewer cannot edit");

    let admin = session(&app, PASSWORD).await;
    let mut no_token = acme("", "");
    no_token.remove(0);
    let (status, _) = submit(&app, "/admin/tenants", &admin, &no_token).await;
    assert_eq!(status, 403, "no CSRF token");
    let (status, _) = submit(&app, "/admin/tenants", &admin, &acme("forged", "")).await;
    assert_eq!(status, 403, "a wrong CSRF token");
    let (status, _) = edited(&app, &admin, "demo-dental", &[("csrf", csrf.as_str())]).await;
    assert_eq!(status, 403, "another session's token");

    let tenants = app.store.list_tenants().await.unwrap();
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0].name, "Demo Dental");
    assert!(tenant_audit(&app).await.is_empty());
}

/// Two replicas on one database and one Redis: the edit made on one
/// reaches the other's next call, though it had the tenant cached.
#[tokio::test]
async fn an_edit_on_one_replica_is_heard_on_the_next_call_to_another() {
    let Some(redis) = shared_redis().await else {
        return;
    };
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let url = db.url().to_owned();
    let prefix = format!("wltest:{}:", uuid::Uuid::new_v4().simple());
    let (admin, viewer) = hashes();
    let mut vars = vars(&admin, &viewer);
    vars.push(("REDIS_URL", redis));
    vars.push(("WARMLINE_REDIS_PREFIX", prefix));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (a, _sim) = spawn_with_simulator(db, &vars).await;
    let mut b_vars = vars.clone();
    b_vars.push(("DATABASE_URL", &url));
    let b = spawn_with_settings(settings_with(&b_vars)).await;

    assert_eq!(business_name(&b, "+15550100000").await, "Demo Dental");
    let on_b = b.cache.namespace::<Tenant>(Namespace::Tenant);
    assert!(on_b.peek_l1("+15550100000").is_some(), "B has it in L1");

    let cookie = session(&a, PASSWORD).await;
    let (status, to) = edited(&a, &cookie, "demo-dental", &[("name", "Demo Dental North")]).await;
    assert_eq!(status, 303, "{to}");

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let name = business_name(&b, "+15550100000").await;
        if name == "Demo Dental North" {
            break;
        }
        assert!(Instant::now() < deadline, "B still answers {name}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
