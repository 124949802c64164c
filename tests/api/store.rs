//! The store API, each test body run on SQLite and on Postgres.

use std::collections::HashSet;

use warmline::domain::{CallId, PhoneNumber, Provider, TenantId};
use warmline::store::*;

use crate::helpers::TestDb;

/// Runs each body twice: `<name>::sqlite` and `<name>::postgres`.
macro_rules! on_both_backends {
    ($(async fn $name:ident($store:ident: Store) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($store: Store) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = TestDb::sqlite();
                body(db.store().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = TestDb::postgres().await else { return };
                body(db.store().await).await;
            }
        }
    )*};
}

fn phone(raw: &str) -> PhoneNumber {
    PhoneNumber::parse(raw).unwrap()
}

fn tenant_id(raw: &str) -> TenantId {
    TenantId::parse(raw).unwrap()
}

fn call_id(raw: &str) -> CallId {
    CallId::parse(raw).unwrap()
}

async fn seed_tenant(store: &Store, id: &str, number: &str) -> TenantId {
    store
        .upsert_tenant(&NewTenant {
            id: tenant_id(id),
            phone_number: phone(number),
            name: format!("{id} business"),
            time_zone: "America/New_York".into(),
            config: serde_json::json!({ "crm": { "kind": "gohighlevel" } }).to_string(),
            is_demo: false,
        })
        .await
        .unwrap();
    tenant_id(id)
}

#[test]
fn the_two_migration_folders_differ_only_in_auto_increment_ids_and_storage_parameters() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let names = |backend: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.join(backend))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names("sqlite"),
        names("postgres"),
        "same migrations, same versions"
    );
    for name in names("sqlite") {
        let read = |b: &str| std::fs::read_to_string(dir.join(b).join(&name)).unwrap();
        let strip = |s: String| -> Vec<String> {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                // Storage parameters (fillfactor) exist only on Postgres.
                .filter(|l| !(l.starts_with("ALTER TABLE ") && l.contains(" SET (fillfactor")))
                .map(|l| {
                    l.replace("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "<ID>")
                        .replace("INTEGER PRIMARY KEY", "<ID>")
                })
                .collect()
        };
        assert_eq!(strip(read("sqlite")), strip(read("postgres")), "{name}");
    }
}

on_both_backends! {
    async fn migrations_are_idempotent(store: Store) {
        store.migrate().await.expect("second run is a no-op");
        store.migrate().await.expect("third run too");
    }

    async fn tenants_round_trip_and_are_found_by_called_number(store: Store) {
        let id = seed_tenant(&store, "acme-dental", "+15550100001").await;
        seed_tenant(&store, "zen-spa", "+15550100002").await;

        let t = store.tenant_by_number(&phone("+1 555 010 0001")).await.unwrap().expect("found");
        assert_eq!(t.id, id);
        assert_eq!(t.name, "acme-dental business");
        assert!(t.config.contains(r#""kind":"gohighlevel""#), "{}", t.config);
        assert!(!t.is_demo);
        assert!(store.tenant_by_number(&phone("+15559999999")).await.unwrap().is_none());

        let ids: Vec<String> = store.list_tenants().await.unwrap().into_iter().map(|t| t.id.to_string()).collect();
        assert_eq!(ids, ["acme-dental", "zen-spa"]);

        // Re-importing updates in place, keeping the creation time.
        let before = store.tenant(&id).await.unwrap().unwrap();
        store.upsert_tenant(&NewTenant {
            id: id.clone(), phone_number: phone("+15550100003"), name: "Acme Dental".into(),
            time_zone: "Europe/London".into(), config: serde_json::json!({}).to_string(), is_demo: true,
        }).await.unwrap();
        let after = store.tenant(&id).await.unwrap().unwrap();
        assert_eq!((after.name.as_str(), after.time_zone.as_str(), after.is_demo), ("Acme Dental", "Europe/London", true));
        assert_eq!(after.phone_number, phone("+15550100003"));
        assert_eq!(after.created_at_ms, before.created_at_ms);

        assert!(store.delete_tenant(&id).await.unwrap());
        assert!(!store.delete_tenant(&id).await.unwrap());
        assert_eq!(store.list_tenants().await.unwrap().len(), 1);
    }

    async fn a_contact_update_keeps_what_it_does_not_mention(store: Store) {
        let t = seed_tenant(&store, "acme", "+15550100001").await;
        let caller = phone("+14155550123");
        store.upsert_contact(&ContactUpdate {
            tenant_id: t.clone(), phone_number: caller.clone(),
            crm_contact_id: Some("ghl_1".into()), name: Some("Ana".into()), email: None,
        }).await.unwrap();
        store.upsert_contact(&ContactUpdate {
            tenant_id: t.clone(), phone_number: caller.clone(),
            crm_contact_id: None, name: None, email: Some("ana@example.com".into()),
        }).await.unwrap();
        let c = store.contact(&t, &caller).await.unwrap().expect("stored");
        assert_eq!(c.crm_contact_id.as_deref(), Some("ghl_1"));
        assert_eq!(c.name.as_deref(), Some("Ana"));
        assert_eq!(c.email.as_deref(), Some("ana@example.com"));
        assert_eq!(c.total_calls, 0);
    }

    async fn concurrent_calls_from_one_caller_are_all_counted(store: Store) {
        let t = seed_tenant(&store, "acme", "+15550100001").await;
        let caller = phone("+14155550123");
        let mut tasks = Vec::new();
        for i in 0..100_i64 {
            let (store, t, caller) = (store.clone(), t.clone(), caller.clone());
            // Out of order on purpose: the last call time must end at the max.
            let at = 1_000_000 + (i * 37) % 100;
            tasks.push(tokio::spawn(async move { store.record_contact_call(&t, &caller, at).await }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let c = store.contact(&t, &caller).await.unwrap().unwrap();
        assert_eq!(c.total_calls, 100);
        assert_eq!(c.last_call_at_ms, Some(1_000_099));
    }

    async fn call_events_merge_and_the_status_never_moves_backwards(store: Store) {
        let t = seed_tenant(&store, "acme", "+15550100001").await;
        let id = call_id("call_abc");
        let mut started = CallUpdate::new(Provider::Retell, id.clone(), CallStatus::Ongoing);
        started.tenant_id = Some(t.clone());
        started.details.caller = Some(phone("+14155550123"));
        started.details.called = Some(phone("+15550100001"));
        started.details.started_at_ms = Some(1_000);
        started.details.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        assert_eq!(store.upsert_call(&started).await.unwrap(), CallUpsert { newly_ended: false });

        let mut ended = CallUpdate::new(Provider::Retell, id.clone(), CallStatus::Ended);
        ended.details.ended_at_ms = Some(61_000);
        ended.details.duration_ms = Some(60_000);
        ended.details.transcript = Some("Agent: Hi\nUser: I need a cleaning".into());
        ended.details.disconnection_reason = Some("user_hangup".into());
        ended.details.trace_id = Some("ffffffffffffffffffffffffffffffff".into());
        assert_eq!(store.upsert_call(&ended).await.unwrap(), CallUpsert { newly_ended: true });
        // The provider retries the same event: nothing new ends.
        assert_eq!(store.upsert_call(&ended).await.unwrap(), CallUpsert { newly_ended: false });

        let mut analyzed = CallUpdate::new(Provider::Retell, id.clone(), CallStatus::Analyzed);
        analyzed.details.summary = Some("Booked a cleaning".into());
        analyzed.details.successful = Some(true);
        analyzed.details.sentiment = Some("Positive".into());
        analyzed.details.analysis = Some(serde_json::json!({ "call_successful": true, "custom": [1, 2] }));
        store.upsert_call(&analyzed).await.unwrap();
        // A late `ongoing` must not undo `analyzed`.
        store.upsert_call(&CallUpdate::new(Provider::Retell, id.clone(), CallStatus::Ongoing)).await.unwrap();

        let c = store.call(Provider::Retell, &id).await.unwrap().expect("stored");
        assert_eq!(c.status, CallStatus::Analyzed);
        assert_eq!(c.tenant_id, Some(t));
        assert_eq!(c.details.caller, Some(phone("+14155550123")));
        assert_eq!((c.details.started_at_ms, c.details.ended_at_ms, c.details.duration_ms), (Some(1_000), Some(61_000), Some(60_000)));
        assert_eq!(c.details.transcript.as_deref(), Some("Agent: Hi\nUser: I need a cleaning"));
        assert_eq!(c.details.disconnection_reason.as_deref(), Some("user_hangup"));
        assert_eq!(c.details.summary.as_deref(), Some("Booked a cleaning"));
        assert_eq!((c.details.successful, c.details.sentiment.as_deref()), (Some(true), Some("Positive")));
        assert_eq!(c.details.analysis.unwrap()["custom"][1], 2);
        assert_eq!(c.details.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"), "the first trace is kept");
        assert!(store.call(Provider::Vapi, &id).await.unwrap().is_none(), "ids are per provider");
    }

    async fn a_call_is_ended_exactly_once_under_concurrent_retries(store: Store) {
        let id = call_id("call_race");
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let store = store.clone();
            let mut u = CallUpdate::new(Provider::Vapi, id.clone(), CallStatus::Ended);
            u.details.ended_at_ms = Some(5_000);
            tasks.push(tokio::spawn(async move { store.upsert_call(&u).await }));
        }
        let mut ended = 0;
        for task in tasks {
            if task.await.unwrap().unwrap().newly_ended {
                ended += 1;
            }
        }
        assert_eq!(ended, 1);
    }

    async fn the_call_log_filters_by_tenant_caller_status_and_pages_backwards(store: Store) {
        let a = seed_tenant(&store, "a", "+15550100001").await;
        let b = seed_tenant(&store, "b", "+15550100002").await;
        for i in 0..6 {
            let mut u = CallUpdate::new(Provider::Retell, call_id(&format!("call_{i}")),
                if i % 2 == 0 { CallStatus::Ended } else { CallStatus::Ongoing });
            u.tenant_id = Some(if i < 4 { a.clone() } else { b.clone() });
            u.details.caller = Some(phone(if i % 3 == 0 { "+14155550100" } else { "+14155550111" }));
            store.upsert_call(&u).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        let ids = |calls: Vec<CallRecord>| calls.into_iter().map(|c| c.call_id.to_string()).collect::<Vec<_>>();

        let all = store.list_calls(&CallFilter { limit: 50, ..Default::default() }).await.unwrap();
        assert_eq!(ids(all.clone()), ["call_5", "call_4", "call_3", "call_2", "call_1", "call_0"]);
        let of_a = store.list_calls(&CallFilter { tenant_id: Some(a.clone()), limit: 50, ..Default::default() }).await.unwrap();
        assert_eq!(ids(of_a), ["call_3", "call_2", "call_1", "call_0"]);
        let from = store.list_calls(&CallFilter { from_number: Some(phone("+14155550100")), limit: 50, ..Default::default() }).await.unwrap();
        assert_eq!(ids(from), ["call_3", "call_0"]);
        let ongoing_a = store.list_calls(&CallFilter { tenant_id: Some(a), status: Some(CallStatus::Ongoing), limit: 50, ..Default::default() }).await.unwrap();
        assert_eq!(ids(ongoing_a), ["call_3", "call_1"]);

        let first_page = store.list_calls(&CallFilter { limit: 2, ..Default::default() }).await.unwrap();
        assert_eq!(ids(first_page.clone()), ["call_5", "call_4"]);
        let next = store.list_calls(&CallFilter { limit: 2, before_ms: Some(first_page[1].created_at_ms), ..Default::default() }).await.unwrap();
        assert_eq!(ids(next), ["call_3", "call_2"]);
        let since = store.list_calls(&CallFilter { limit: 50, since_ms: Some(all[1].created_at_ms), ..Default::default() }).await.unwrap();
        assert_eq!(ids(since), ["call_5", "call_4"]);
    }

    async fn the_call_log_filters_by_outcome_booking_fallback_and_words(store: Store) {
        let t = seed_tenant(&store, "acme", "+15550100001").await;
        for (id, successful, transcript) in [
            ("call_won", Some(true), "User: a CLEANING please, 50%_off?"),
            ("call_lost", Some(false), "User: just asking about prices"),
            ("call_open", None, "User: cleaning"),
        ] {
            let mut u = CallUpdate::new(Provider::Retell, call_id(id), CallStatus::Ended);
            u.tenant_id = Some(t.clone());
            u.details.successful = successful;
            u.details.transcript = Some(transcript.into());
            store.upsert_call(&u).await.unwrap();
        }
        store.insert_appointment(&NewAppointment {
            id: "appt_won".into(), tenant_id: t.clone(), provider: Some(Provider::Retell),
            call_id: Some(call_id("call_won")), contact_phone: phone("+14155550123"),
            service: None, starts_at_ms: 10_000, ends_at_ms: 13_600,
        }).await.unwrap();
        store.add_call_fallback(Provider::Retell, &call_id("call_lost"), "call_from_database", None).await.unwrap();
        let ids = |f: CallFilter| {
            let store = store.clone();
            async move {
                let mut ids: Vec<String> = store.list_calls(&CallFilter { limit: 50, ..f }).await.unwrap()
                    .into_iter().map(|c| c.call_id.to_string()).collect();
                ids.sort();
                ids
            }
        };
        assert_eq!(ids(CallFilter { outcome: Some(CallOutcome::Successful), ..Default::default() }).await, ["call_won"]);
        assert_eq!(ids(CallFilter { outcome: Some(CallOutcome::Unsuccessful), ..Default::default() }).await, ["call_lost"]);
        assert_eq!(ids(CallFilter { outcome: Some(CallOutcome::Unknown), ..Default::default() }).await, ["call_open"]);
        assert_eq!(ids(CallFilter { booked: Some(true), ..Default::default() }).await, ["call_won"]);
        assert_eq!(ids(CallFilter { booked: Some(false), ..Default::default() }).await, ["call_lost", "call_open"]);
        assert_eq!(ids(CallFilter { fallback_used: Some(true), ..Default::default() }).await, ["call_lost"]);
        assert_eq!(ids(CallFilter { fallback_used: Some(false), ..Default::default() }).await, ["call_open", "call_won"]);
        let search = |words: &str| CallFilter { search: Some(words.into()), ..Default::default() };
        assert_eq!(ids(search("Cleaning")).await, ["call_open", "call_won"], "any case");
        assert_eq!(ids(search("50%_off")).await, ["call_won"]);
        assert!(ids(search("5%_o")).await.is_empty(), "wildcards are literal");
        assert_eq!(ids(search("call_lo")).await, ["call_lost"], "the call id too");
        assert_eq!(ids(CallFilter { booked: Some(false), search: Some("cleaning".into()), ..Default::default() }).await, ["call_open"]);
    }

    async fn the_latest_active_call_from_a_number_is_found_for_the_fallback_cascade(store: Store) {
        let caller = phone("+14155550123");
        for (id, status) in [("call_old", CallStatus::Ongoing), ("call_new", CallStatus::Ongoing), ("call_done", CallStatus::Ended)] {
            let mut u = CallUpdate::new(Provider::Retell, call_id(id), status);
            u.details.caller = Some(caller.clone());
            store.upsert_call(&u).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        let found = store.latest_active_call_from(&caller, 0).await.unwrap().expect("found");
        assert_eq!(found.call_id.as_str(), "call_new", "newest call that has not ended");
        assert!(store.latest_active_call_from(&caller, found.created_at_ms + 1).await.unwrap().is_none());
        assert!(store.latest_active_call_from(&phone("+14155550999"), 0).await.unwrap().is_none());

        store.add_call_fallback(Provider::Retell, &found.call_id, "recent_call_by_number", Some("call id unknown")).await.unwrap();
        store.add_call_fallback(Provider::Retell, &found.call_id, "tenant_default", None).await.unwrap();
        let steps = store.call_fallbacks(Provider::Retell, &found.call_id).await.unwrap();
        let kinds: HashSet<_> = steps.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, HashSet::from(["recent_call_by_number", "tenant_default"]));
    }

    async fn booking_the_same_appointment_twice_records_it_once(store: Store) {
        let t = seed_tenant(&store, "acme", "+15550100001").await;
        let appt = NewAppointment {
            id: "ghl_appt_1".into(), tenant_id: t.clone(), provider: Some(Provider::Retell),
            call_id: Some(call_id("call_1")), contact_phone: phone("+14155550123"),
            service: Some("Cleaning".into()), starts_at_ms: 10_000, ends_at_ms: 13_600,
        };
        assert!(store.insert_appointment(&appt).await.unwrap());
        assert!(!store.insert_appointment(&appt).await.unwrap());
        let later = NewAppointment { id: "ghl_appt_2".into(), starts_at_ms: 50_000, ends_at_ms: 53_600, ..appt };
        store.insert_appointment(&later).await.unwrap();

        let found = store.appointments(&t, 0, 20_000).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].id.as_str(), found[0].status.as_str()), ("ghl_appt_1", "booked"));
        assert_eq!(found[0].call_id.as_deref(), Some("call_1"));
        assert_eq!(store.appointments(&t, 0, 100_000).await.unwrap().len(), 2);
    }

    async fn daily_metrics_stay_exact_under_concurrent_increments(store: Store) {
        let a = seed_tenant(&store, "a", "+15550100001").await;
        let b = seed_tenant(&store, "b", "+15550100002").await;
        let mut tasks = Vec::new();
        for i in 0..200_i64 {
            let store = store.clone();
            let t = if i % 4 == 0 { b.clone() } else { a.clone() };
            tasks.push(tokio::spawn(async move {
                store.add_daily(&t, "2026-11-21", DailyDelta {
                    calls: 1, bookings: i64::from(i % 5 == 0), fallbacks: 0, duration_ms: 1_000,
                }).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        store.add_daily(&a, "2026-11-22", DailyDelta { calls: 2, bookings: 1, fallbacks: 1, duration_ms: 0 }).await.unwrap();

        let a_days = store.daily_metrics(Some(&a), "2026-11-01", "2026-11-30").await.unwrap();
        assert_eq!(a_days.len(), 2);
        assert_eq!((a_days[0].day.as_str(), a_days[0].calls, a_days[0].total_duration_ms), ("2026-11-21", 150, 150_000));
        // i % 5 == 0 and i % 4 != 0: 40 multiples of 5, 10 of which are multiples of 20.
        assert_eq!(a_days[0].bookings, 30);
        assert_eq!((a_days[1].calls, a_days[1].bookings, a_days[1].fallbacks), (2, 1, 1));
        assert_eq!(a_days[1].conversion(), 0.5);

        let all = store.daily_metrics(None, "2026-11-21", "2026-11-21").await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].calls, all[0].bookings), (200, 40));
        assert!(store.daily_metrics(None, "2026-12-01", "2026-12-31").await.unwrap().is_empty());
    }

    async fn daily_metrics_are_kept_per_direction_and_summed_over_both(store: Store) {
        use warmline::domain::Direction;
        let a = seed_tenant(&store, "a", "+15550100001").await;
        let delta = |calls| DailyDelta { calls, bookings: 1, fallbacks: 0, duration_ms: 0 };
        store.add_daily_for(&a, "2026-11-21", Direction::Inbound, delta(3)).await.unwrap();
        store.add_daily_for(&a, "2026-11-21", Direction::Outbound, delta(2)).await.unwrap();
        store.add_daily_for(&a, "2026-11-21", Direction::Outbound, delta(1)).await.unwrap();
        let both = store.daily_metrics(Some(&a), "2026-11-01", "2026-11-30").await.unwrap();
        assert_eq!((both[0].calls, both[0].outbound_calls, both[0].inbound_calls(), both[0].bookings), (6, 3, 3, 3));
        let out = store.daily_metrics_in(Some(&a), Some(Direction::Outbound), "2026-11-01", "2026-11-30").await.unwrap();
        assert_eq!((out[0].calls, out[0].outbound_calls, out[0].bookings), (3, 3, 2));
        let inbound = store.daily_metrics_in(None, Some(Direction::Inbound), "2026-11-01", "2026-11-30").await.unwrap();
        assert_eq!((inbound[0].calls, inbound[0].outbound_calls, inbound[0].bookings), (3, 0, 1));
    }

    async fn the_writeback_queue_ignores_repeated_keys_and_leases_each_item_to_one_claimer(store: Store) {
        let job = |i: usize| warmline::domain::WriteBack::Crm {
            tenant_id: tenant_id("acme"),
            caller: phone(&format!("+1415555{i:04}")),
        };
        for i in 0..30 {
            let key = format!("crm_writeback:retell:call_{i}:call_ended");
            assert!(store.enqueue_writeback(&job(i), &key, None).await.unwrap());
            assert!(!store.enqueue_writeback(&job(i), &key, None).await.unwrap(), "a retry is recognised");
        }
        assert_eq!(store.writeback_backlog().await.unwrap().0, 30);

        let claims = futures_util::future::join_all(
            (0..3).map(|_| { let s = store.clone(); async move { s.claim_writebacks(15, 60_000).await.unwrap() } }),
        ).await;
        let mut seen = HashSet::new();
        for claim in &claims {
            for item in claim {
                assert!(seen.insert(item.id), "item {} claimed twice", item.id);
                assert_eq!(item.attempts, 1);
            }
        }
        assert_eq!(seen.len(), 30, "every item claimed once");
        assert!(store.claim_writebacks(10, 60_000).await.unwrap().is_empty(), "all leased");

        let first = claims.iter().flatten().min_by_key(|i| i.id).unwrap();
        assert_eq!(first.job, Ok(job(0)), "the typed job comes back");
        assert_eq!(first.kind, "crm_writeback");
        for item in claims.iter().flatten().filter(|i| i.id != first.id) {
            store.mark_writeback_done(item.id).await.unwrap();
        }
        store.mark_writeback_failed(first.id, "crm timed out", 0).await.unwrap();
        let (depth, oldest) = store.writeback_backlog().await.unwrap();
        assert_eq!((depth, oldest), (1, Some(first.created_at_ms)));
        let again = store.claim_writebacks(10, 60_000).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].id, again[0].attempts), (first.id, 2));

        store.mark_writeback_done(first.id).await.unwrap();
        assert_eq!(store.writeback_backlog().await.unwrap(), (0, None));
        let done_key = "crm_writeback:retell:call_0:call_ended";
        assert!(!store.enqueue_writeback(&job(0), done_key, None).await.unwrap(), "done items still deduplicate");
        assert_eq!(store.prune_writebacks(warmline::support::now_ms() + 1).await.unwrap(), 30);
        assert!(store.enqueue_writeback(&job(0), done_key, None).await.unwrap(), "pruned keys are forgotten");
    }

    async fn a_claim_reads_about_its_own_rows_however_long_the_backlog(store: Store) {
        use sqlx::Row;
        // A CRM down or rate-limited for a while: the oldest 20,000 items
        // wait for their retry, the newest 50 are due. A claim must read
        // the due ones, not walk past every waiting one in id order.
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20050)
             INSERT INTO writeback_queue (kind, idempotency_key, payload, next_attempt_at_ms, created_at_ms)
             SELECT 'crm_writeback', 'backlog:' || i, '{}',
                    CASE WHEN i <= 20000 THEN 9000000000000 ELSE i END, i FROM n",
        )
        .execute(store.pool()).await.unwrap();
        sqlx::query("ANALYZE writeback_queue").execute(store.pool()).await.unwrap();

        let now = warmline::support::now_ms();
        let claim = claim_writebacks_sql(store.backend());
        let (explain, detail) = match store.backend() {
            Backend::Postgres => ("EXPLAIN (ANALYZE, COSTS OFF)", 0),
            Backend::Sqlite => ("EXPLAIN QUERY PLAN", 3),
        };
        let mut tx = store.pool().begin().await.unwrap();
        let plan: Vec<String> = sqlx::query(&format!("{explain} {claim}"))
            .bind(now).bind(now + 60_000).bind(20_i64)
            .fetch_all(&mut *tx).await.unwrap()
            .iter().map(|row| row.get::<String, _>(detail)).collect();
        tx.rollback().await.unwrap();
        let plan = plan.join("\n");
        match store.backend() {
            Backend::Postgres => {
                let passed_over: u64 = plan.lines()
                    .filter_map(|l| l.split("Rows Removed by Filter: ").nth(1))
                    .map(|n| n.trim().parse::<u64>().unwrap())
                    .sum();
                assert!(passed_over <= 100 && !plan.contains("Sort"), "the claim reads the backlog:\n{plan}");
            }
            Backend::Sqlite => assert!(
                plan.contains("USING INDEX writeback_queue_due") && !plan.contains("TEMP B-TREE"),
                "the claim reads the backlog:\n{plan}"
            ),
        }

        let claimed = store.claim_writebacks(20, 60_000).await.unwrap();
        let due: Vec<i64> = claimed.iter().map(|i| i.created_at_ms).collect();
        assert_eq!(due, (20_001..=20_020).collect::<Vec<i64>>(), "the longest due come first");
        assert!(claimed.iter().all(|i| i.job.is_err()), "a payload that cannot be read comes back as such");
    }

    async fn the_idempotency_ledger_records_each_key_once_until_pruned(store: Store) {
        let mut tx = store.begin().await.unwrap();
        assert!(tx::record_applied_in(&mut tx, "call_event", "retell:call_1:call_ended", None).await.unwrap());
        assert!(!tx::record_applied_in(&mut tx, "call_event", "retell:call_1:call_ended", None).await.unwrap(), "a retry is recognised");
        tx.commit().await.unwrap();
        assert!(store.was_applied("retell:call_1:call_ended").await.unwrap());
        assert!(!store.was_applied("retell:call_2:call_ended").await.unwrap());
        assert_eq!(store.writeback_backlog().await.unwrap().0, 0, "the ledger is not a queue");
        assert_eq!(store.prune_ledger(warmline::support::now_ms() + 1).await.unwrap(), 1);
        assert!(!store.was_applied("retell:call_1:call_ended").await.unwrap(), "pruned keys are forgotten");
    }

    async fn last_good_values_keep_the_newest_version_and_delete_by_prefix(store: Store) {
        store.put_last_good("memory", "acme:+14155550123", r#"{"v":2}"#, 2).await.unwrap();
        store.put_last_good("memory", "acme:+14155550123", r#"{"v":1}"#, 1).await.unwrap();
        let got = store.last_good("memory", "acme:+14155550123").await.unwrap().unwrap();
        assert_eq!((got.value.as_str(), got.version), (r#"{"v":2}"#, 2), "an older write loses");
        store.put_last_good("memory", "acme:+14155550199", "{}", 1).await.unwrap();
        store.put_last_good("memory", "zen:+14155550123", "{}", 1).await.unwrap();
        store.put_last_good("contact", "acme:+14155550123", "{}", 1).await.unwrap();

        let mut gone = store.delete_last_good("memory", "acme:").await.unwrap();
        gone.sort();
        assert_eq!(gone, ["acme:+14155550123", "acme:+14155550199"]);
        assert!(store.last_good("memory", "acme:+14155550123").await.unwrap().is_none());
        assert!(store.last_good("memory", "zen:+14155550123").await.unwrap().is_some());
        assert!(store.delete_last_good("memory", "a_c%").await.unwrap().is_empty(), "no LIKE wildcards");
        assert_eq!(store.delete_last_good("contact", "").await.unwrap().len(), 1);
    }

    async fn the_audit_log_lists_newest_first(store: Store) {
        for action in ["cache.flush", "cache.warmup", "tenant.edit"] {
            store.record_audit(&NewAuditEntry {
                actor: "token".into(), action: action.into(),
                target: serde_json::json!({ "namespace": "slots" }), outcome: "ok".into(),
            }).await.unwrap();
        }
        let recent = store.recent_audit(2).await.unwrap();
        let actions: Vec<_> = recent.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["tenant.edit", "cache.warmup"]);
        assert_eq!(recent[0].target["namespace"], "slots");
    }
}

/// A pooled connection is not pinged each time it is handed out (a round
/// trip per transaction), but one the server dropped while it sat idle is
/// found out and replaced before a query needs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_server_dropped_while_idle_is_replaced_unseen() {
    use sqlx::{Connection, Executor};
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = db.store().await;
    store.list_tenants().await.unwrap();
    let mut admin = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let killed = admin
        .fetch_all(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
    assert!(!killed.is_empty(), "the pool held a connection");
    // Idle past the threshold after which a connection is pinged first.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    for _ in 0..3 {
        store
            .list_tenants()
            .await
            .expect("a dropped connection is never handed out");
    }
}
