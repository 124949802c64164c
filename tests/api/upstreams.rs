//! Adapter contract tests: each adapter's requests carry exactly the path,
//! query, headers and body of the real API (asserted on what the simulator
//! recorded), and the responses' quirks are handled. Retries, rate limits,
//! breakers and timeouts are in `resilience.rs`.

use chrono::{Datelike, TimeZone, Utc, Weekday};
use serde_json::{Value, json};
use warmline::domain::TenantId;
use warmline::simulator::endpoints;
use warmline::upstreams::{BookingRequest, ContactUpsert, ConversationMessage, MemorySubject};

use crate::helpers::upstreams::{NEW_YORK, adapters, ghl_zep, phone, sim};

fn mem0_calcom(url: &str) -> Value {
    json!({
        "memory": { "kind": "mem0", "base_url": url, "token": "sim-mem0-key" },
        "calendar": { "kind": "calcom", "base_url": url, "token": "cal_sim_key" },
        "services": [{ "id": "cleaning", "name": "Teeth cleaning", "event_type_id": 1001 }]
    })
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
        .free_slots(&service, from, to, NEW_YORK)
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
            time_zone: NEW_YORK,
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
        .free_slots(&service, from, to, NEW_YORK)
        .await
        .unwrap();
    assert_eq!(after.len(), slots.len() - 1);
    assert!(!after.contains(&slots[0]));

    // Longer than GoHighLevel's 31-day limit: split into two requests.
    sim.state.reset();
    calendar
        .free_slots(&service, from, from + chrono::Duration::days(40), NEW_YORK)
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
        .free_slots(&service, from, to, NEW_YORK)
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
            time_zone: NEW_YORK,
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
        .free_slots(&service, from, to, NEW_YORK)
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
