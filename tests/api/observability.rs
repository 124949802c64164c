//! `/metrics` passes promtool after a workload; the alert rules check and
//! pass their unit tests; every metric the dashboards and rules use is
//! exported; the dashboards are valid Grafana JSON; docker-compose.yml
//! parses and points at files that exist.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use warmline::simulator::{Knob, endpoints};
use warmline::webhooks::signature::sign_retell;

use crate::helpers::{TestApp, TestDb, shared_redis, skip, spawn_with_simulator};

const KEY: &str = "key_observability_test";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn promtool() -> Option<&'static str> {
    match Command::new("promtool").arg("--version").output() {
        Ok(o) if o.status.success() => Some("promtool"),
        _ => {
            skip("promtool", "not installed (Debian package `prometheus`)");
            None
        }
    }
}

async fn retell(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let body = body.to_string();
    let sig = sign_retell(
        body.as_bytes(),
        KEY.as_bytes(),
        chrono::Utc::now().timestamp_millis(),
    );
    let resp = app
        .client
        .post(format!("{}{}", app.address, path))
        .header("content-type", "application/json")
        .header("x-retell-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Exercises every path: inbound calls (miss, hit), a tool, call events
/// with write-back, an unknown number, an ignored event, an upstream error
/// with a retry; then returns the exposition text.
async fn workload_metrics() -> Option<String> {
    let redis = shared_redis().await?;
    let prefix = format!("wltest:{}:", uuid::Uuid::new_v4().simple());
    let (app, sim) = spawn_with_simulator(
        TestDb::sqlite(),
        &[
            ("RETELL_API_KEY", KEY),
            ("REDIS_URL", &redis),
            ("WARMLINE_REDIS_PREFIX", &prefix),
        ],
    )
    .await;
    let inbound = |from: &str, to: &str| json!({ "event": "call_inbound", "call_inbound": { "from_number": from, "to_number": to } });
    for _ in 0..2 {
        assert_eq!(
            retell(
                &app,
                "/retell/inbound",
                inbound("+15550100001", "+15550100000")
            )
            .await
            .0,
            200
        );
    }
    retell(
        &app,
        "/retell/inbound",
        inbound("+15550100002", "+15557770000"),
    )
    .await;
    let call = json!({ "call_id": "call_obs", "from_number": "+15550100001", "to_number": "+15550100000",
                       "start_timestamp": 1_700_000_000_000_i64, "end_timestamp": 1_700_000_060_000_i64,
                       "transcript_object": [{ "role": "user", "content": "hello" }] });
    retell(
        &app,
        "/retell/events",
        json!({ "event": "call_started", "call": call }),
    )
    .await;
    retell(
        &app,
        "/retell/functions/list_services",
        json!({ "name": "list_services", "call": call, "args": {} }),
    )
    .await;
    retell(
        &app,
        "/retell/events",
        json!({ "event": "call_ended", "call": call }),
    )
    .await;
    retell(
        &app,
        "/retell/events",
        json!({ "event": "transcript_updated", "call": call }),
    )
    .await;
    // An upstream 5xx: retried once, then an error the cache counts.
    sim.state
        .set_knob(
            endpoints::ZEP_CONTEXT,
            Knob {
                error_rate: 1.0,
                ..Knob::default()
            },
        )
        .unwrap();
    retell(
        &app,
        "/retell/inbound",
        inbound("+15550100003", "+15550100000"),
    )
    .await;
    // Let the write-back run once.
    for _ in 0..100 {
        if sim.state.calls(endpoints::ZEP_ADD_MESSAGES) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Some(app.get("/metrics").await.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_no_problem_in_metrics_and_every_referenced_metric_is_exported() {
    let Some(promtool) = promtool() else { return };
    let Some(text) = workload_metrics().await else {
        return;
    };

    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics (exit {:?}):\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let mut referenced = BTreeSet::new();
    let mut sources =
        vec![std::fs::read_to_string(repo("dashboards/prometheus/alerts.yml")).unwrap()];
    for d in dashboards() {
        sources.push(d.1.to_string());
    }
    for src in &sources {
        let mut rest = src.as_str();
        while let Some(i) = rest.find("warmline_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            referenced.insert(name.clone());
            rest = &rest[i + name.len()..];
        }
    }
    assert!(referenced.len() > 30, "{referenced:?}");
    let missing: Vec<&String> = referenced
        .iter()
        .filter(|m| !exported.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "referenced but not exported: {missing:?}"
    );
}

#[test]
fn the_alert_rules_and_the_prometheus_config_check_and_pass_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let dir = repo("dashboards/prometheus");
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["check", "config", "prometheus.yml"],
        vec![
            "test",
            "rules",
            "alerts.test.yml",
            "alerts-latency.test.yml",
        ],
    ] {
        let out = Command::new(promtool)
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every alert has a unit test.
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("alerts.test.yml")).unwrap()
        + &std::fs::read_to_string(dir.join("alerts-latency.test.yml")).unwrap();
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "{alert} has no unit test"
        );
    }
}

fn dashboards() -> Vec<(String, Value)> {
    let dir = repo("dashboards/grafana/dashboards");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn the_dashboards_are_valid_grafana_json_with_a_datasource_variable() {
    let all = dashboards();
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "warmline-cache.json",
            "warmline-calls.json",
            "warmline-overview.json",
            "warmline-upstreams.json",
            "warmline-writebehind.json"
        ]
    );
    let mut uids = BTreeSet::new();
    for (name, d) in &all {
        assert!(
            uids.insert(d["uid"].as_str().unwrap().to_owned()),
            "{name}: duplicate uid"
        );
        assert!(
            d["title"].as_str().unwrap().starts_with("warmline / "),
            "{name}"
        );
        assert!(d["schemaVersion"].as_u64().unwrap() >= 30, "{name}");
        let vars = d["templating"]["list"].as_array().unwrap();
        assert!(
            vars.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{name}"
        );
        let panels = d["panels"].as_array().unwrap();
        assert!(!panels.is_empty(), "{name}");
        let mut ids = BTreeSet::new();
        for p in panels {
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{name}: duplicate panel id"
            );
            assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "{name}");
            assert!(
                ["timeseries", "stat"].contains(&p["type"].as_str().unwrap()),
                "{name}"
            );
            for k in ["h", "w", "x", "y"] {
                assert!(p["gridPos"][k].is_u64(), "{name}: gridPos.{k}");
            }
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{name}");
            for t in p["targets"].as_array().unwrap() {
                assert!(
                    t["refId"].is_string() && t["expr"].as_str().unwrap().contains("warmline_"),
                    "{name}: {t}"
                );
                assert_eq!(
                    t["expr"].as_str().unwrap().matches('(').count(),
                    t["expr"].as_str().unwrap().matches(')').count(),
                    "{name}: {t}"
                );
            }
        }
    }
}

#[test]
fn docker_compose_parses_and_references_files_that_exist() {
    let text = std::fs::read_to_string(repo("docker-compose.yml")).unwrap();
    let compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).expect("docker-compose.yml is YAML");
    let services = compose["services"].as_mapping().expect("services");
    let names: BTreeSet<String> = services
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    for s in [
        "warmline",
        "postgres",
        "redis",
        "jaeger",
        "prometheus",
        "grafana",
        "lb",
    ] {
        assert!(names.contains(s), "service {s} missing");
    }
    // Replicas: `--scale warmline=N` needs no fixed host port on warmline
    // (the load balancer has it), no container name, and a spill journal
    // per replica (an anonymous volume, never a named one they would share).
    let warmline = &compose["services"]["warmline"];
    assert!(warmline["ports"].is_null(), "a host port blocks --scale");
    assert!(
        warmline["container_name"].is_null(),
        "a name blocks --scale"
    );
    let spill = warmline["environment"]["WARMLINE_SPILL_DIR"]
        .as_str()
        .unwrap();
    let volumes: Vec<&str> = warmline["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        volumes,
        vec![spill],
        "the journal on a volume of its own per replica"
    );
    // The load balancer: an official image, the only public port of the
    // app, and a config that finds every replica by the service's name.
    let lb = &compose["services"]["lb"];
    let image = lb["image"].as_str().unwrap();
    assert!(
        image.starts_with("caddy:") || image.starts_with("nginx:"),
        "{image}"
    );
    assert_eq!(
        lb["ports"].as_sequence().unwrap()[0].as_str(),
        Some("8080:8080")
    );
    let caddyfile = std::fs::read_to_string(repo("deploy/Caddyfile")).unwrap();
    assert!(caddyfile.contains("dynamic a"), "every replica, from DNS");
    assert!(caddyfile.contains("name warmline") && caddyfile.contains("port 8080"));
    assert!(
        caddyfile.contains("lb_retries"),
        "retried on the next replica"
    );
    // Prometheus scrapes every replica, not one.
    let prometheus = std::fs::read_to_string(repo("dashboards/prometheus/prometheus.yml")).unwrap();
    assert!(prometheus.contains("dns_sd_configs"), "{prometheus}");
    assert_eq!(compose["services"]["warmline"]["build"].as_str(), Some("."));
    assert!(repo("Dockerfile").exists());
    let env = &compose["services"]["warmline"]["environment"];
    assert_eq!(
        env["OTEL_EXPORTER_OTLP_ENDPOINT"].as_str(),
        Some("http://jaeger:4318")
    );
    assert!(
        env["DATABASE_URL"]
            .as_str()
            .unwrap()
            .starts_with("postgres://")
    );
    assert!(env["REDIS_URL"].as_str().unwrap().starts_with("redis://"));
    let mut mounted = 0;
    for (_, service) in services {
        for v in service["volumes"].as_sequence().into_iter().flatten() {
            let v = v.as_str().unwrap();
            if let Some(host) = v.strip_prefix("./") {
                let host = host.split(':').next().unwrap();
                assert!(repo(host).exists(), "{v}: {host} does not exist");
                mounted += 1;
            }
        }
        for dep in service["depends_on"]
            .as_mapping()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            assert!(
                names.contains(dep.as_str().unwrap()),
                "depends on unknown {dep:?}"
            );
        }
    }
    assert_eq!(
        mounted, 5,
        "prometheus config and rules, grafana provisioning and dashboards, the Caddyfile"
    );
    // The provisioning points Grafana at the mounted dashboards.
    let provider = std::fs::read_to_string(repo(
        "dashboards/grafana/provisioning/dashboards/dashboards.yml",
    ))
    .unwrap();
    assert!(provider.contains("/var/lib/grafana/dashboards"));
    assert!(text.contains("./dashboards/grafana/dashboards:/var/lib/grafana/dashboards"));
}

#[tokio::test]
async fn every_fallback_kind_is_exported_from_the_start() {
    let app = crate::helpers::spawn_app().await;
    let text = app.get("/metrics").await.text().await.unwrap();
    for kind in warmline::domain::Fallback::ALL {
        let series = format!(
            r#"warmline_fallback_activations_total{{kind="{}"}}"#,
            kind.as_str()
        );
        assert!(
            text.lines().any(|l| l.starts_with(&series)),
            "{series} missing: a dashboard would show No data\n{text}"
        );
    }
}
