//! The real binary, as a newcomer or an orchestrator runs it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{DEMO_INBOUND, free_port, stop_with_sigterm};

fn warmline(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warmline"));
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("WARMLINE_ADDR")
        .env_remove("RUST_LOG")
        .env_remove("WARMLINE_LOG_FORMAT");
    cmd
}

#[tokio::test]
async fn the_binary_serves_with_embedded_defaults_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = warmline(dir.path())
        .env("WARMLINE_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        match client.get(format!("{base}/health")).send().await {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => {
                let _ = child.kill();
                panic!("never answered /health: {e}");
            }
        }
    };
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = client
        .get(format!("{base}/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["database"], "ok", "{ready}");
    assert_eq!(ready["redis"], "disabled", "{ready}");
    assert!(
        dir.path().join("warmline.db").exists(),
        "the SQLite file is created"
    );

    let status = stop_with_sigterm(&mut child).await;
    assert!(status.success(), "exit status {status:?}");

    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(out.contains(&format!("serving on {base}")), "{out}");
    assert!(
        out.contains("DATABASE_URL           sqlite://warmline.db"),
        "{out}"
    );
}

#[test]
fn a_bad_variable_stops_the_start_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = warmline(dir.path())
        .env("WARMLINE_ADDR", "not-an-address")
        .output()
        .expect("binary runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("warmline: invalid WARMLINE_ADDR: `not-an-address`"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("warmline.db").exists(),
        "nothing is created"
    );
}

#[test]
fn warmline_migrate_applies_the_migrations_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = warmline(dir.path())
            .arg("migrate")
            .output()
            .expect("binary runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "migrations applied (sqlite)"
        );
    }
    assert!(dir.path().join("warmline.db").exists());
}

#[tokio::test]
async fn a_newcomer_gets_a_real_context_answer_from_the_demo_tenant_with_the_printed_request() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = warmline(dir.path())
        .env("WARMLINE_ADDR", format!("127.0.0.1:{port}"))
        .env_remove("WARMLINE_DEMO")
        .env_remove("RETELL_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    crate::helpers::wait_until_serving(&base).await;
    // The request exactly as the start-up banner prints it.
    let body = DEMO_INBOUND;
    let resp = client
        .post(format!("{base}/retell/inbound"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    let vars = &answer["call_inbound"]["dynamic_variables"];
    assert_eq!(vars["customer_name"], "Ana Souza", "{answer}");
    assert_eq!(vars["business_name"], "Demo Dental");
    assert!(
        vars["memory_summary"]
            .as_str()
            .unwrap()
            .contains("Prefers morning appointments"),
        "{answer}"
    );
    assert!(
        !vars["next_available_slots"].as_str().unwrap().is_empty(),
        "{answer}"
    );
    assert_eq!(
        answer["call_inbound"]["metadata"]["context_missing"],
        serde_json::json!([])
    );

    assert!(stop_with_sigterm(&mut child).await.success());
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        out.contains(&format!("curl -s -X POST {base}/retell/inbound")),
        "{out}"
    );
    assert!(
        out.contains(body),
        "the banner prints this very request:\n{out}"
    );
    for request in [
        warmline::demo::DEMO_OUTBOUND,
        warmline::demo::DEMO_SMS,
        warmline::demo::DEMO_WHATSAPP_MESSAGE,
    ] {
        assert!(out.contains(request), "and the other conversations:\n{out}");
    }
    assert!(out.contains("Authorization: Bearer "), "{out}");
}

#[test]
fn tenants_are_imported_from_a_file_and_listed_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tenants.toml"),
        r#"
[[tenants]]
id = "acme-dental"
phone_number = "+1 (555) 010-0042"
name = "Acme Dental"
time_zone = "America/Chicago"
crm = { kind = "gohighlevel", location_id = "loc_1", token = "pit-very-secret" }
memory = { kind = "mem0", token_env = "ACME_MEM0_KEY" }
calendar = { kind = "calcom", token = "cal_also_secret" }

[[tenants.services]]
id = "cleaning"
name = "Teeth cleaning"
event_type_id = 42
"#,
    )
    .unwrap();
    let out = warmline(dir.path())
        .args(["tenants", "import", "tenants.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "imported 1 tenant(s) from tenants.toml"
    );

    let out = warmline(dir.path())
        .args(["tenants", "list"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let row = listing
        .lines()
        .find(|l| l.starts_with("acme-dental"))
        .unwrap_or_else(|| panic!("{listing}"));
    for expected in [
        "+15550100042",
        "Acme Dental",
        "America/Chicago",
        "gohighlevel",
        "mem0",
        "calcom",
    ] {
        assert!(row.contains(expected), "{expected} missing in {row}");
    }
    assert!(!listing.contains("secret"), "{listing}");

    std::fs::write(
        dir.path().join("bad.yaml"),
        "tenants:\n  - id: zen\n    phone_number: \"+15550100043\"\n    name: Zen\n    time_zone: Mars/Base\n",
    )
    .unwrap();
    let out = warmline(dir.path())
        .args(["tenants", "import", "bad.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown time_zone `Mars/Base`"), "{stderr}");
}

#[test]
fn warmline_simulate_serves_the_wire_formats_and_its_control_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = warmline(dir.path())
        .args(["simulate", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--knob", "zep.threads.context=latency_ms:10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let knobs: serde_json::Value = loop {
            if let Ok(r) = http.get(format!("{base}/_sim/knobs")).send().await {
                break r.json().await.unwrap();
            }
            assert!(Instant::now() < deadline, "simulator never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(knobs["knobs"]["zep.threads.context"]["latency_ms"], 10);
        let ctx = http
            .get(format!(
                "{base}/api/v2/threads/wl-demo-dental-15550100001/context"
            ))
            .header("authorization", "Api-Key sim-zep-key")
            .send()
            .await
            .unwrap();
        assert_eq!(ctx.status(), 200);
        let calls: serde_json::Value = http
            .get(format!("{base}/_sim/calls"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(calls["calls"]["zep.threads.context"], 1);
        let bad = http
            .put(format!("{base}/_sim/knobs/nope"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
    });
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn with_warmline_log_format_json_every_log_line_is_json_and_numbers_are_masked() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = warmline(dir.path())
        .env("WARMLINE_ADDR", format!("127.0.0.1:{port}"))
        .env("WARMLINE_LOG_FORMAT", "json")
        .env_remove("RETELL_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    crate::helpers::wait_until_serving(&base).await;
    // An unknown called number and a demo call: both log warnings naming numbers.
    for to in ["+15557770000", "+15550100000"] {
        let body = format!(
            r#"{{"event":"call_inbound","call_inbound":{{"from_number":"+15550100001","to_number":"{to}"}}}}"#
        );
        client
            .post(format!("{base}/retell/inbound"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
    }
    stop_with_sigterm(&mut child).await;
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let logs: Vec<&str> = out.lines().filter(|l| l.starts_with('{')).collect();
    assert!(logs.len() >= 3, "{out}");
    for line in &logs {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        assert!(
            !line.contains("5557770000") && !line.contains("5550100001"),
            "unmasked number: {line}"
        );
    }
    assert!(
        logs.iter().any(|l| l.contains("+1******0000")),
        "the masked called number is logged:\n{out}"
    );
}

#[tokio::test]
async fn a_fresh_process_exports_every_known_series_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = warmline(dir.path())
        .env("WARMLINE_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    crate::helpers::wait_until_serving(&base).await;
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    stop_with_sigterm(&mut child).await;
    let mut expected: Vec<String> = [
        r#"warmline_tool_calls_total{tool="book_appointment",outcome="error"} 0"#,
        r#"warmline_tool_calls_total{tool="unknown",outcome="error"} 0"#,
        r#"warmline_writeback_total{kind="memory_writeback",outcome="given_up"} 0"#,
        r#"warmline_background_restarts_total{loop="writebehind_replay"} 0"#,
        r#"warmline_webhook_requests_total{provider="retell",event="call_inbound",outcome="ok"} 0"#,
        r#"warmline_webhook_requests_total{provider="vapi",event="message",outcome="unauthorized"} 0"#,
        r#"warmline_writebehind_rejected_total 0"#,
        r#"warmline_writebehind_retries_total 0"#,
        r#"warmline_writebehind_quarantined_total 0"#,
        r#"warmline_writebehind_parked 0"#,
    ]
    .map(str::to_owned)
    .to_vec();
    for kind in warmline::domain::Fallback::ALL {
        expected.push(format!(
            r#"warmline_fallback_activations_total{{kind="{}"}} 0"#,
            kind.as_str()
        ));
    }
    for series in expected {
        assert!(
            text.lines().any(|l| l == series),
            "`{series}` is not exported at 0 on a fresh start:\n{text}"
        );
    }
}

#[test]
fn warmline_hash_password_prints_an_argon2_hash_of_what_it_reads() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let run = |input: &str| {
        let mut child = warmline(dir.path())
            .arg("hash-password")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run("a long admin password\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let phc = String::from_utf8(out.stdout).unwrap();
    let hash = warmline::admin::password::PasswordHash::parse(phc.trim()).unwrap();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert!(hash.verify("a long admin password"));
    assert!(!hash.verify("a long admin password\n"));
    let short = run("short\n");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));
}

#[tokio::test]
async fn with_the_demo_on_loopback_a_one_time_admin_password_is_printed_and_works() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    // Port 0, read back from what warmline prints: a port chosen for it
    // beforehand could be taken by another test before warmline binds it.
    let mut child = warmline(dir.path())
        .env("WARMLINE_ADDR", "127.0.0.1:0")
        .env_remove("WARMLINE_ADMIN_PASSWORD_HASH")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Reads on to the end, so warmline never writes to a closed pipe.
    let (found, printed) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let (mut found, mut base) = (Some(found), None);
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(b) = line.strip_prefix("warmline is serving on ") {
                base = Some(b.trim().to_owned());
            }
            let prefix = "Admin password for this run (demo, loopback only): ";
            if let Some(p) = line.strip_prefix(prefix)
                && let Some(tx) = found.take()
            {
                let _ = tx.send((base.clone(), p.to_owned()));
            }
        }
    });
    let (base, password) = printed.await.expect("the password is printed at start");
    let base = base.expect("the address is printed before the password");
    assert_eq!(password.len(), 20);
    crate::helpers::wait_until_serving(&base).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let body = format!("password={password}&next=%2Fadmin");
    let resp = client
        .post(format!("{base}/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(resp.headers().contains_key("set-cookie"));
    stop_with_sigterm(&mut child).await;
}
