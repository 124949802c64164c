//! The spill journal on disk: it holds transcripts and callers' numbers, so
//! its directory and files are the service user's alone (0700 and 0600),
//! through every step of a journal's life — created, appended to, rotated
//! for replay, removed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use warmline::domain::{CallId, Provider};
use warmline::writebehind::{Job, Spill};

fn job(n: usize) -> Job {
    Job::Fallback {
        key: format!("fallback:spill-test-{n}"),
        provider: Provider::Retell,
        call_id: Some(CallId::parse("call_spill").unwrap()),
        kind: "tenant_default".into(),
        detail: Some("no call found".into()),
        tenant_id: None,
        time_zone: None,
    }
}

/// The permission bits, in octal as `ls` and `chmod` say them.
fn mode(path: &Path) -> String {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!("{:o}", meta.permissions().mode() & 0o777)
}

#[tokio::test]
async fn the_spill_directory_and_every_journal_file_are_private_to_the_service_user() {
    let root = tempfile::tempdir().unwrap();
    // Warmline creates the directory (and a missing parent) itself.
    let dir = root.path().join("var").join("spill");
    let spill = Spill::open(dir.clone()).unwrap();
    assert_eq!(mode(&dir), "700", "spill directory");

    spill.append(&[job(1), job(2)]).await.unwrap();
    let journal = dir.join("journal.ndjson");
    assert_eq!(mode(&journal), "600", "live journal");
    // Appending to an existing journal keeps it private.
    spill.append(&[job(3)]).await.unwrap();
    assert_eq!(mode(&journal), "600", "live journal after an append");

    // A replay renames the journal out of the way: still private.
    let replay = spill.next_for_replay().await.unwrap().expect("a journal");
    assert!(
        replay
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("replay-"),
        "{}",
        replay.display()
    );
    assert_eq!(mode(&replay), "600", "rotated replay file");
    assert_eq!(
        spill.read(&replay).await.unwrap(),
        vec![job(1), job(2), job(3)]
    );
    // Jobs spilled during the replay start a fresh journal, private too.
    spill.append(&[job(4)]).await.unwrap();
    assert_eq!(mode(&journal), "600", "journal created during a replay");

    spill.done(&replay, 3).await.unwrap();
    assert!(!replay.exists(), "a replayed file is removed");
    assert_eq!(spill.pending(), 1);

    // Jobs the database refused are kept for an operator, privately.
    spill.reject(&job(5), "refused").await.unwrap();
    assert_eq!(
        mode(&dir.join("rejected.ndjson")),
        "600",
        "rejected journal"
    );
}

#[tokio::test]
async fn journals_left_readable_by_an_older_version_are_made_private_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let line = format!("{}\n", serde_json::to_string(&job(1)).unwrap());
    let names = [
        "journal.ndjson",
        "replay-00000000000000000001-000000.ndjson",
        "rejected.ndjson",
    ];
    for name in names {
        let path = dir.path().join(name);
        std::fs::write(&path, &line).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let spill = Spill::open(dir.path().to_path_buf()).unwrap();
    assert_eq!(spill.pending(), 2, "the journal and the replay file wait");
    for name in names {
        assert_eq!(mode(&dir.path().join(name)), "600", "{name}");
    }
}
