//! Adapter contract tests: each adapter's requests carry exactly the path,
//! query, headers and body of the real API (asserted on what the simulator
//! recorded), and the responses' quirks are handled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Datelike, TimeZone, Utc, Weekday};
use serde_json::{Value, json};
use warmline::domain::{PhoneNumber, TenantId};
use warmline::simulator::{Knob, SimConfig, Simulator, endpoints};
use warmline::store::TenantRecord;
use warmline::upstreams::http::ClientSettings;
use warmline::upstreams::registry::UpstreamSettings;
use warmline::upstreams::{
    BookingRequest, ContactUpsert, ConversationMessage, MemorySubject, TenantUpstreams,
    UpstreamError, Upstreams,
};

fn phone(raw: &str) -> PhoneNumber {
    PhoneNumber::parse(raw).unwrap()
}

fn sim() -> Simulator {
    Simulator::start(SimConfig::default()).expect("simulator starts")
}

fn tenant(config: Value) -> TenantRecord {
    TenantRecord {
        id: TenantId::parse("demo-dental").unwrap(),
        phone_number: phone("+15550100000"),
        name: "Demo Dental".into(),
        time_zone: "America/New_York".into(),
        config,
        is_demo: false,
        created_at_ms: 0,
        updated_at_ms: 0,
    }
}

fn ghl_zep(url: &str) -> Value {
    warmline::simulator::demo_tenant_config(url)
}

fn mem0_calcom(url: &str) -> Value {
    json!({
        "memory": { "kind": "mem0", "base_url": url, "token": "sim-mem0-key" },
        "calendar": { "kind": "calcom", "base_url": url, "token": "cal_sim_key" },
        "services": [{ "id": "cleaning", "name": "Teeth cleaning", "event_type_id": 1001 }]
    })
}

fn settings(timeout_ms: u64, breaker_failures: u32, open_ms: u64) -> UpstreamSettings {
    let s = ClientSettings {
        timeout: Duration::from_millis(timeout_ms),
        breaker_failures,
        breaker_open_for: Duration::from_millis(open_ms),
    };
    UpstreamSettings {
        gohighlevel: s.clone(),
        zep: s.clone(),
        mem0: s.clone(),
        calcom: s,
    }
}

fn adapters(config: Value) -> Arc<TenantUpstreams> {
    Upstreams::new(settings(2_000, 5, 10_000))
        .for_tenant(&tenant(config))
        .expect("adapters build")
}

/// A weekday two weeks ahead, 00:00 in New York, as UTC.
fn next_weekday_start() -> chrono::DateTime<Utc> {
    let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let mut day = Utc::now().date_naive() + chrono::Duration::days(14);
    while matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
        day = day.succ_opt().unwrap();
    }
    tz.from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn gohighlevel_contact_lookup_and_upsert_speak_the_contacts_api() {
    let sim = sim();
    let crm = adapters(ghl_zep(&sim.url)).crm.clone().unwrap();

    let ana = crm
        .find_contact_by_phone(&phone("+15550100001"))
        .await
        .unwrap()
        .expect("seeded");
    assert_eq!(
        (ana.first_name.as_deref(), ana.last_name.as_deref()),
        (Some("Ana"), Some("Souza"))
    );
    assert_eq!(ana.display_name().as_deref(), Some("Ana Souza"));
    assert!(
        crm.find_contact_by_phone(&phone("+15559990000"))
            .await
            .unwrap()
            .is_none(),
        "`contact: null` is no contact"
    );

    let req = &sim.state.requests(Some(endpoints::GHL_FIND_CONTACT))[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("GET", "/contacts/search/duplicate")
    );
    assert_eq!(
        req.query,
        [
            ("locationId".to_owned(), "loc_demo".to_owned()),
            ("number".to_owned(), "+15550100001".to_owned())
        ]
    );
    assert_eq!(req.header("authorization"), Some("Bearer sim-ghl-token"));
    assert_eq!(req.header("version"), Some("2021-07-28"));

    let created = crm
        .upsert_contact(&ContactUpsert {
            phone: Some(phone("+15559990000")),
            first_name: Some("Dana".into()),
            tags: Some(vec!["caller".into()]),
            source: Some("warmline".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let req = &sim.state.requests(Some(endpoints::GHL_UPSERT_CONTACT))[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/contacts/upsert")
    );
    assert_eq!(req.header("version"), Some("2021-07-28"));
    assert_eq!(
        req.body,
        Some(
            json!({ "locationId": "loc_demo", "phone": "+15559990000", "firstName": "Dana", "source": "warmline", "tags": ["caller"] })
        )
    );
    let found = crm
        .find_contact_by_phone(&phone("+15559990000"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, created.id);
}

#[tokio::test]
async fn gohighlevel_free_slots_use_ms_epoch_ranges_skip_the_trace_id_and_a_booking_removes_the_slot()
 {
    let sim = sim();
    let up = adapters(ghl_zep(&sim.url));
    let calendar = up.calendar.clone().unwrap();
    let service = up
        .services
        .iter()
        .find(|s| s.id == "cleaning")
        .unwrap()
        .clone();
    let from = next_weekday_start();
    let to = from + chrono::Duration::days(1);

    let slots = calendar
        .free_slots(&service, from, to, "America/New_York")
        .await
        .unwrap();
    assert!(!slots.is_empty(), "a weekday has free slots");
    let req = &sim.state.requests(Some(endpoints::GHL_FREE_SLOTS))[0];
    assert_eq!(req.path, "/calendars/cal_demo_cleaning/free-slots");
    assert_eq!(
        req.query_param("startDate"),
        Some(from.timestamp_millis().to_string().as_str())
    );
    assert_eq!(
        req.query_param("endDate"),
        Some(to.timestamp_millis().to_string().as_str())
    );
    assert_eq!(req.query_param("timezone"), Some("America/New_York"));
    assert_eq!(req.header("version"), Some("2021-04-15"));

    let booking = calendar
        .book(&BookingRequest {
            service: service.clone(),
            start: slots[0].start,
            contact_id: None,
            name: "Ana Souza".into(),
            email: None,
            phone: phone("+15550100001"),
            time_zone: "America/New_York".into(),
            notes: Some("booked by phone".into()),
        })
        .await
        .unwrap();
    assert_eq!(booking.start, slots[0].start);
    let req = &sim.state.requests(Some(endpoints::GHL_BOOK))[0];
    assert_eq!(req.path, "/calendars/events/appointments");
    let body = req.body.clone().unwrap();
    assert_eq!(body["calendarId"], "cal_demo_cleaning");
    assert_eq!(body["locationId"], "loc_demo");
    assert_eq!(body["startTime"], slots[0].start.to_rfc3339());
    assert!(
        body["contactId"].as_str().unwrap().starts_with("ct_"),
        "the caller's contact was found by upsert"
    );

    let after = calendar
        .free_slots(&service, from, to, "America/New_York")
        .await
        .unwrap();
    assert_eq!(after.len(), slots.len() - 1);
    assert!(!after.contains(&slots[0]));

    // Longer than GoHighLevel's 31-day limit: split into two requests.
    sim.state.reset();
    calendar
        .free_slots(
            &service,
            from,
            from + chrono::Duration::days(40),
            "America/New_York",
        )
        .await
        .unwrap();
    assert_eq!(sim.state.calls(endpoints::GHL_FREE_SLOTS), 2);
}

#[tokio::test]
async fn zep_reads_the_thread_context_and_creates_user_and_thread_on_first_write() {
    let sim = sim();
    let memory = adapters(ghl_zep(&sim.url)).memory.clone().unwrap();
    let tenant_id = TenantId::parse("demo-dental").unwrap();
    let ana = MemorySubject::for_caller(&tenant_id, &phone("+15550100001"), Some("Ana".into()));
    let ctx = memory
        .get_context(&ana)
        .await
        .unwrap()
        .expect("Ana is known");
    assert!(
        ctx.summary.contains("Prefers morning appointments"),
        "{}",
        ctx.summary
    );
    let req = &sim.state.requests(Some(endpoints::ZEP_CONTEXT))[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("GET", "/api/v2/threads/wl-demo-dental-15550100001/context")
    );
    assert_eq!(req.header("authorization"), Some("Api-Key sim-zep-key"));

    let dana = MemorySubject::for_caller(&tenant_id, &phone("+15559990000"), Some("Dana".into()));
    assert!(
        memory.get_context(&dana).await.unwrap().is_none(),
        "a 404 is a first-time caller"
    );
    memory
        .add_messages(
            &dana,
            &[
                ConversationMessage {
                    role: "user".into(),
                    content: "I'd like a cleaning next week".into(),
                },
                ConversationMessage {
                    role: "assistant".into(),
                    content: "Booked Tuesday 10:00".into(),
                },
            ],
        )
        .await
        .unwrap();
    let calls = sim.state.all_calls();
    assert_eq!(
        calls[endpoints::ZEP_ADD_MESSAGES],
        2,
        "404, then the retry after creating the thread"
    );
    assert_eq!(calls[endpoints::ZEP_CREATE_USER], 1);
    assert_eq!(calls[endpoints::ZEP_CREATE_THREAD], 1);
    let thread = &sim.state.requests(Some(endpoints::ZEP_CREATE_THREAD))[0];
    assert_eq!(
        thread.body,
        Some(
            json!({ "thread_id": "wl-demo-dental-15559990000", "user_id": "demo-dental-15559990000" })
        )
    );
    let add = &sim.state.requests(Some(endpoints::ZEP_ADD_MESSAGES))[1];
    assert_eq!(
        add.body.as_ref().unwrap()["messages"][0],
        json!({ "role": "user", "content": "I'd like a cleaning next week", "name": "Dana" })
    );
    let ctx = memory.get_context(&dana).await.unwrap().unwrap();
    assert!(
        ctx.summary.contains("cleaning next week"),
        "{}",
        ctx.summary
    );
}

#[tokio::test]
async fn mem0_searches_with_ids_inside_filters_and_adds_asynchronously() {
    let sim = sim();
    let memory = adapters(mem0_calcom(&sim.url)).memory.clone().unwrap();
    let tenant_id = TenantId::parse("demo-dental").unwrap();
    let ana = MemorySubject::for_caller(&tenant_id, &phone("+15550100001"), None);
    let ctx = memory
        .get_context(&ana)
        .await
        .unwrap()
        .expect("Ana is known");
    assert_eq!(ctx.facts.len(), 3);
    assert_eq!(
        ctx.facts[0], "Prefers morning appointments",
        "highest score first"
    );
    let req = &sim.state.requests(Some(endpoints::MEM0_SEARCH))[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/v3/memories/search/")
    );
    assert_eq!(req.header("authorization"), Some("Token sim-mem0-key"));
    let body = req.body.clone().unwrap();
    assert_eq!(
        body["filters"],
        json!({ "user_id": "demo-dental-15550100001" })
    );
    assert!(
        body.get("user_id").is_none(),
        "v3 refuses a top-level user_id"
    );
    assert_eq!(body["top_k"], 10);

    let dana = MemorySubject::for_caller(&tenant_id, &phone("+15559990000"), None);
    assert!(
        memory.get_context(&dana).await.unwrap().is_none(),
        "empty results are no memory"
    );
    memory
        .add_messages(
            &dana,
            &[ConversationMessage {
                role: "user".into(),
                content: "Allergic to latex".into(),
            }],
        )
        .await
        .unwrap();
    let add = &sim.state.requests(Some(endpoints::MEM0_ADD))[0];
    assert_eq!(add.path, "/v3/memories/add/");
    assert_eq!(
        add.body.clone().unwrap()["user_id"],
        "demo-dental-15559990000"
    );
    assert_eq!(
        memory.get_context(&dana).await.unwrap().unwrap().facts,
        ["Allergic to latex"]
    );
}

#[tokio::test]
async fn calcom_slots_and_bookings_pin_their_api_versions_and_a_booking_removes_the_slot() {
    let sim = sim();
    let up = adapters(mem0_calcom(&sim.url));
    let calendar = up.calendar.clone().unwrap();
    let service = up.services[0].clone();
    let from = next_weekday_start();
    let to = from + chrono::Duration::days(1);
    let slots = calendar
        .free_slots(&service, from, to, "America/New_York")
        .await
        .unwrap();
    assert!(!slots.is_empty());
    let req = &sim.state.requests(Some(endpoints::CALCOM_SLOTS))[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("GET", "/v2/slots")
    );
    assert_eq!(req.header("cal-api-version"), Some("2024-09-04"));
    assert_eq!(req.header("authorization"), Some("Bearer cal_sim_key"));
    assert_eq!(req.query_param("eventTypeId"), Some("1001"));
    assert_eq!(req.query_param("timeZone"), Some("America/New_York"));
    assert!(req.query_param("start").unwrap().ends_with('Z'));

    let booking = calendar
        .book(&BookingRequest {
            service: service.clone(),
            start: slots[0].start,
            contact_id: None,
            name: "Ana Souza".into(),
            email: None,
            phone: phone("+15550100001"),
            time_zone: "America/New_York".into(),
            notes: None,
        })
        .await
        .unwrap();
    assert!(booking.id.starts_with("bk_"), "{}", booking.id);
    assert_eq!(booking.status, "accepted");
    let req = &sim.state.requests(Some(endpoints::CALCOM_BOOK))[0];
    assert_eq!(req.header("cal-api-version"), Some("2026-02-25"));
    let body = req.body.clone().unwrap();
    assert!(
        body["start"].as_str().unwrap().ends_with('Z'),
        "UTC start: {body}"
    );
    assert_eq!(body["eventTypeId"], 1001);
    assert_eq!(body["attendee"]["phoneNumber"], "+15550100001");
    assert_eq!(
        body["attendee"]["email"],
        "15550100001@phone.warmline.invalid"
    );
    let after = calendar
        .free_slots(&service, from, to, "America/New_York")
        .await
        .unwrap();
    assert_eq!(after.len(), slots.len() - 1);
}

#[tokio::test]
async fn the_simulator_refuses_missing_auth_and_version_headers_as_upstream_does() {
    let sim = sim();
    let client = reqwest::Client::new();
    let url = format!(
        "{}/contacts/search/duplicate?locationId=loc_demo&number=%2B15550100001",
        sim.url
    );
    let no_auth = client
        .get(&url)
        .header("version", "2021-07-28")
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), 401);
    let no_version = client
        .get(&url)
        .bearer_auth("sim-ghl-token")
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 400);
    let wrong_family = client
        .get(&url)
        .bearer_auth("sim-ghl-token")
        .header("version", "2021-04-15")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_family.status(), 400);
    let zep = client
        .get(format!("{}/api/v2/threads/x/context", sim.url))
        .bearer_auth("sim-zep-key")
        .send()
        .await
        .unwrap();
    assert_eq!(zep.status(), 401, "Zep wants `Api-Key`, not `Bearer`");
    let cal = client
        .get(format!(
            "{}/v2/slots?eventTypeId=1&start=2026-12-01&end=2026-12-02",
            sim.url
        ))
        .bearer_auth("cal_sim_key")
        .send()
        .await
        .unwrap();
    assert_eq!(cal.status(), 400, "a missing cal-api-version is refused");
    let mem0 = client
        .post(format!("{}/v3/memories/search/", sim.url))
        .header("authorization", "Token sim-mem0-key")
        .json(&json!({ "query": "x", "user_id": "u" }))
        .send()
        .await
        .unwrap();
    assert_eq!(mem0.status(), 400, "entity ids must be inside filters");
}

#[tokio::test]
async fn a_429_pauses_calls_until_the_upstream_says_and_a_5xx_read_is_retried_once() {
    let sim = sim();
    let crm = adapters(ghl_zep(&sim.url)).crm.clone().unwrap();
    sim.state
        .set_knob(
            endpoints::GHL_FIND_CONTACT,
            Knob {
                error_rate: 1.0,
                error_status: Some(429),
                ..Knob::default()
            },
        )
        .unwrap();
    let err = crm
        .find_contact_by_phone(&phone("+15550100001"))
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::RateLimited { .. }), "{err}");
    assert_eq!(
        sim.state.calls(endpoints::GHL_FIND_CONTACT),
        1,
        "a 429 is not retried"
    );
    sim.state
        .set_knob(endpoints::GHL_FIND_CONTACT, Knob::default())
        .unwrap();
    let err = crm
        .find_contact_by_phone(&phone("+15550100001"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstreamError::RateLimited { .. }),
        "still paused: {err}"
    );
    assert_eq!(
        sim.state.calls(endpoints::GHL_FIND_CONTACT),
        1,
        "the paused call never left"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await; // Retry-After: 1
    assert!(
        crm.find_contact_by_phone(&phone("+15550100001"))
            .await
            .unwrap()
            .is_some()
    );

    sim.state.reset();
    sim.state
        .set_knob(
            endpoints::GHL_FIND_CONTACT,
            Knob {
                error_rate: 1.0,
                ..Knob::default()
            },
        )
        .unwrap();
    let err = crm
        .find_contact_by_phone(&phone("+15550100001"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstreamError::Status { status: 500, .. }),
        "{err}"
    );
    assert_eq!(
        sim.state.calls(endpoints::GHL_FIND_CONTACT),
        2,
        "one retry of an idempotent read"
    );
    sim.state
        .set_knob(
            endpoints::GHL_UPSERT_CONTACT,
            Knob {
                error_rate: 1.0,
                ..Knob::default()
            },
        )
        .unwrap();
    let upsert = ContactUpsert {
        phone: Some(phone("+15550100001")),
        ..Default::default()
    };
    assert!(crm.upsert_contact(&upsert).await.is_err());
    assert_eq!(
        sim.state.calls(endpoints::GHL_UPSERT_CONTACT),
        1,
        "a write is never retried"
    );
}

#[tokio::test]
async fn gohighlevel_burst_limit_headers_pause_the_client_before_a_429() {
    let sim = Simulator::start(SimConfig {
        ghl_burst_limit: 3,
        ..SimConfig::default()
    })
    .unwrap();
    let crm = adapters(ghl_zep(&sim.url)).crm.clone().unwrap();
    for _ in 0..3 {
        crm.find_contact_by_phone(&phone("+15550100001"))
            .await
            .unwrap();
    }
    // The third answer said `X-RateLimit-Remaining: 0`: the fourth call waits.
    let err = crm
        .find_contact_by_phone(&phone("+15550100001"))
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::RateLimited { .. }), "{err}");
    assert_eq!(sim.state.calls(endpoints::GHL_FIND_CONTACT), 3);
}

#[tokio::test]
async fn a_breaker_opens_after_the_configured_failures_fails_fast_and_closes_after_a_good_probe() {
    let sim = sim();
    let up = Upstreams::new(settings(2_000, 3, 300))
        .for_tenant(&tenant(ghl_zep(&sim.url)))
        .unwrap();
    let memory = up.memory.clone().unwrap();
    let tenant_id = TenantId::parse("demo-dental").unwrap();
    let ana = MemorySubject::for_caller(&tenant_id, &phone("+15550100001"), None);
    sim.state
        .set_knob(
            endpoints::ZEP_CONTEXT,
            Knob {
                down: true,
                ..Knob::default()
            },
        )
        .unwrap();
    // Each read is tried twice (one retry of a 503): two reads make 3+ failures.
    for _ in 0..2 {
        let err = memory.get_context(&ana).await.unwrap_err();
        assert!(
            matches!(
                err,
                UpstreamError::Status { status: 503, .. } | UpstreamError::BreakerOpen { .. }
            ),
            "{err}"
        );
    }
    let before = sim.state.calls(endpoints::ZEP_CONTEXT);
    assert_eq!(before, 3, "the third failure opened the breaker");
    let started = Instant::now();
    let err = memory.get_context(&ana).await.unwrap_err();
    assert!(matches!(err, UpstreamError::BreakerOpen { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "fails fast while open"
    );
    assert_eq!(
        sim.state.calls(endpoints::ZEP_CONTEXT),
        before,
        "nothing reaches the upstream"
    );

    sim.state
        .set_knob(endpoints::ZEP_CONTEXT, Knob::default())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        memory.get_context(&ana).await.unwrap().is_some(),
        "the probe succeeds"
    );
    assert!(
        memory.get_context(&ana).await.unwrap().is_some(),
        "and the breaker is closed"
    );
    assert_eq!(sim.state.calls(endpoints::ZEP_CONTEXT), before + 2);
}

#[tokio::test]
async fn a_2_s_memory_read_with_a_300_ms_timeout_fails_in_about_300_ms() {
    let sim = sim();
    let up = Upstreams::new(settings(300, 5, 10_000))
        .for_tenant(&tenant(ghl_zep(&sim.url)))
        .unwrap();
    let memory = up.memory.clone().unwrap();
    sim.state
        .set_knob(endpoints::ZEP_CONTEXT, Knob::latency(2_000))
        .unwrap();
    let ana = MemorySubject::for_caller(
        &TenantId::parse("demo-dental").unwrap(),
        &phone("+15550100001"),
        None,
    );
    let started = Instant::now();
    let err = memory.get_context(&ana).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, UpstreamError::Timeout { .. }), "{err}");
    assert!(
        took < Duration::from_secs(1),
        "failed after {took:?}, not after the upstream's 2 s"
    );
}
