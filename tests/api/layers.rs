//! The layout's rules, checked on the source: which top-level module may
//! import which (data flows webhooks → calls → cache / upstreams and
//! calls → write-behind → store), no cycle between top-level modules, SQL
//! only in the store, SaaS wire formats only in `upstreams/` and the
//! simulator. A new import in the wrong direction fails here, naming the
//! file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and the modules it may import. `startup` wires
/// everything together and `cli` runs it; nothing else imports them.
const ALLOWED: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("support", &[]),
    ("telemetry", &["domain", "support"]),
    ("store", &["domain", "support"]),
    ("cache", &["domain", "store", "support"]),
    ("tenants", &["cache", "domain", "store", "support"]),
    ("upstreams", &["domain", "support", "telemetry", "tenants"]),
    ("writebehind", &["domain", "store", "support"]),
    (
        "calls",
        &[
            "cache",
            "domain",
            "store",
            "support",
            "telemetry",
            "tenants",
            "upstreams",
            "writebehind",
        ],
    ),
    (
        "writeback",
        &[
            "cache",
            "domain",
            "store",
            "support",
            "tenants",
            "upstreams",
        ],
    ),
    (
        "error",
        &["cache", "domain", "store", "support", "writebehind"],
    ),
    (
        "webhooks",
        &[
            "calls",
            "domain",
            "error",
            "support",
            "telemetry",
            "tenants",
        ],
    ),
    (
        "bots",
        &[
            "calls",
            "domain",
            "error",
            "support",
            "telemetry",
            "tenants",
        ],
    ),
    (
        "admin",
        &[
            "cache",
            "domain",
            "error",
            "store",
            "support",
            "tenants",
            "upstreams",
            "writebehind",
        ],
    ),
    (
        "http",
        &[
            "admin",
            "bots",
            "cache",
            "calls",
            "error",
            "store",
            "support",
            "telemetry",
            "upstreams",
            "webhooks",
            "writebehind",
        ],
    ),
    ("simulator", &["domain", "upstreams"]),
    ("loadgen", &["demo", "webhooks"]),
    ("demo", &["domain", "simulator", "store", "tenants"]),
    (
        "settings",
        &[
            "admin",
            "cache",
            "calls",
            "http",
            "store",
            "support",
            "telemetry",
            "upstreams",
            "webhooks",
            "writebehind",
        ],
    ),
    (
        "startup",
        &[
            "admin",
            "cache",
            "calls",
            "demo",
            "http",
            "settings",
            "simulator",
            "store",
            "support",
            "telemetry",
            "tenants",
            "upstreams",
            "webhooks",
            "writeback",
            "writebehind",
        ],
    ),
    (
        "cli",
        &[
            "admin",
            "demo",
            "loadgen",
            "settings",
            "simulator",
            "startup",
            "store",
            "telemetry",
            "tenants",
            "writebehind",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`None` for the
/// crate roots).
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.trim_end_matches(".rs").to_owned();
    (name != "lib" && name != "main").then_some(name)
}

/// Every top-level module named after `crate::` in `text`, including
/// grouped imports (`use crate::{a, b::c}`).
fn imports_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                let name = part.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() {
                    out.insert(name.to_owned());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Module → (imported module → the files that import it).
fn graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let entry = graph.entry(module.clone()).or_default();
        for imported in imports_in(&text) {
            if imported != module {
                let shown = file.strip_prefix(src()).unwrap().display().to_string();
                entry.entry(imported).or_default().insert(shown);
            }
        }
    }
    graph
}

/// Imports not in [`ALLOWED`], as readable lines.
fn forbidden(graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut out = Vec::new();
    for (module, imports) in graph {
        let Some(may) = allowed.get(module.as_str()) else {
            out.push(format!(
                "src/{module}: a new top-level module; add it to ALLOWED"
            ));
            continue;
        };
        for (imported, files) in imports {
            if !may.contains(&imported.as_str()) {
                out.push(format!("{module} → {imported} (in {files:?})"));
            }
        }
    }
    out
}

/// A cycle among the modules, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut c = path[at..].to_vec();
            c.push(node.to_owned());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|m| m.keys()) {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn every_import_between_top_level_modules_goes_in_an_allowed_direction() {
    let bad = forbidden(&graph());
    assert!(bad.is_empty(), "forbidden imports:\n{}", bad.join("\n"));
}

#[test]
fn no_cycle_runs_between_top_level_modules() {
    assert_eq!(cycle(&graph()), None);
}

#[test]
fn the_allowed_table_itself_has_no_cycle() {
    let table: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = ALLOWED
        .iter()
        .map(|(m, deps)| {
            let deps = deps
                .iter()
                .map(|d| (d.to_string(), BTreeSet::new()))
                .collect();
            (m.to_string(), deps)
        })
        .collect();
    assert_eq!(cycle(&table), None);
}

#[test]
fn the_checks_catch_a_wrong_direction_and_a_cycle() {
    assert_eq!(
        imports_in("use crate::{store::Store, cache};\nlet x = crate::domain::f();"),
        ["cache", "domain", "store"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    let mut g: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    g.entry("store".into())
        .or_default()
        .insert("calls".into(), BTreeSet::from(["store/x.rs".to_owned()]));
    g.entry("calls".into())
        .or_default()
        .insert("store".into(), BTreeSet::new());
    let bad = forbidden(&g);
    assert!(
        bad.iter().any(|l| l.starts_with("store → calls")),
        "{bad:?}"
    );
    assert!(cycle(&g).is_some());
}

/// Files under `src/` outside `under`, with their text.
fn sources_outside(under: &[&str]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files
        .into_iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(src()).unwrap().display().to_string();
            (!under.iter().any(|u| rel.starts_with(u)))
                .then(|| (rel, std::fs::read_to_string(&f).unwrap()))
        })
        .collect()
}

#[test]
fn nothing_outside_the_store_writes_sql() {
    let sql = [
        "sqlx::query",
        "SELECT ",
        "INSERT INTO",
        "DELETE FROM",
        "CREATE TABLE",
        " SET ",
    ];
    let mut found = Vec::new();
    for (file, text) in sources_outside(&["store/"]) {
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if sql.iter().any(|s| code.contains(s)) {
                found.push(format!("{file}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "SQL outside src/store:\n{}",
        found.join("\n")
    );
}

#[test]
fn nothing_outside_upstreams_and_the_simulator_knows_a_saas_wire_format() {
    // Hosts, paths, headers and field names only the SaaS APIs use.
    let wire = [
        "leadconnectorhq",
        "getzep.com",
        "mem0.ai",
        "api.cal.com",
        "locationId",
        "/contacts/",
        "/calendars/",
        "/api/v2/",
        "/v3/memories",
        "/v2/slots",
        "/v2/bookings",
        "cal-api-version",
        "Api-Key ",
        "eventTypeId",
        "startTime",
    ];
    let mut found = Vec::new();
    for (file, text) in sources_outside(&["upstreams/", "simulator/"]) {
        for (n, line) in text.lines().enumerate() {
            if wire.iter().any(|w| line.contains(w)) {
                found.push(format!("{file}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "wire formats outside upstreams/ and simulator/:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_is_longer_than_600_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 600).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these:\n{}", long.join("\n"));
}
