//! The spill journal: framed JSON records (see [`super::journal`]) in a
//! local directory, fsynced before a job is acknowledged, replayed oldest
//! file first.
//!
//! New jobs are appended to `journal.ndjson`. A replay first renames it to
//! `replay-<time>-<n>.ndjson`, so jobs spilled during the replay land in a
//! fresh journal and are replayed after it. On open, a torn tail (a crash
//! mid-append) is cut from every journal; on reading, a damaged record is
//! moved to `quarantine.ndjson` with its reason and never blocks the others.
//! Jobs the database refuses for good are parked in `rejected.ndjson` with
//! theirs, listed by `warmline events rejected` and applied again by
//! `warmline events replay-rejected`; both hold `spill.lock` (an advisory
//! lock shared with a running server) while they touch that file.
//!
//! The files hold transcripts and callers' numbers: they are created 0600 in
//! a directory created 0700 (files an older version left readable are made
//! 0600 on open). A file's data is fsynced before its job is acknowledged,
//! and the directory is fsynced after every create, rename and removal, so
//! the file's name survives a crash as well as its contents.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::Job;
use super::journal::{self, Damaged};
use crate::support::now_ms;

pub struct Spill {
    dir: PathBuf,
    lock: Mutex<()>,
    pending: AtomicUsize,
    rotations: AtomicUsize,
    quarantined: AtomicUsize,
}

const JOURNAL: &str = "journal.ndjson";
const REJECTED: &str = "rejected.ndjson";
const QUARANTINE: &str = "quarantine.ndjson";
const LOCK: &str = "spill.lock";

/// A job the database refused for good, kept with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parked {
    pub at_ms: i64,
    pub reason: String,
    pub job: Job,
}

/// A `rejected.ndjson` line: a parked job, or a bare job an earlier version
/// wrote there without a reason.
#[derive(Deserialize)]
#[serde(untagged)]
enum ParkedLine {
    Parked(Parked),
    Bare(Job),
}

impl From<ParkedLine> for Parked {
    fn from(line: ParkedLine) -> Self {
        match line {
            ParkedLine::Parked(p) => p,
            ParkedLine::Bare(job) => Parked {
                at_ms: 0,
                reason: "refused by the database (reason not recorded by an older version)".into(),
                job,
            },
        }
    }
}

/// Bytes of a journal that were not a whole record, kept for an operator.
#[derive(Debug, Serialize)]
struct Quarantined<'a> {
    at_ms: i64,
    file: &'a str,
    reason: &'a str,
    raw: &'a str,
}

impl Spill {
    /// Opens (creating) the directory, cuts torn tails and counts what is
    /// waiting in it.
    pub fn open(dir: PathBuf) -> io::Result<Self> {
        create_private_dir(&dir)?;
        let spill = Spill {
            dir,
            lock: Mutex::new(()),
            pending: AtomicUsize::new(0),
            rotations: AtomicUsize::new(0),
            quarantined: AtomicUsize::new(0),
        };
        let mut pending = 0;
        for path in Self::journals_in(&spill.dir)? {
            make_private(&path);
            pending += spill.cut_torn_tail(&path)?;
        }
        for name in [REJECTED, QUARANTINE] {
            let path = spill.dir.join(name);
            if path.exists() {
                make_private(&path);
            }
        }
        let quarantined =
            journal::scan::<serde_json::Value>(&read_or_empty(&spill.dir.join(QUARANTINE))?)
                .records
                .len();
        spill.pending.store(pending, Ordering::Release);
        spill.quarantined.store(quarantined, Ordering::Release);
        Ok(spill)
    }

    /// Truncates an unterminated last record (a crash mid-append) off
    /// `path`, quarantining its bytes; returns how many whole records the
    /// file holds.
    fn cut_torn_tail(&self, path: &Path) -> io::Result<usize> {
        let bytes = std::fs::read(path)?;
        let scan = journal::scan::<Job>(&bytes);
        if let Some(at) = scan.torn_tail_at {
            tracing::warn!(
                file = %path.display(),
                bytes = bytes.len() - at,
                "spill journal ends in a torn record (a crash mid-append): cut and quarantined"
            );
            let torn = Damaged {
                raw: String::from_utf8_lossy(&bytes[at..]).into_owned(),
                reason: "torn tail: the process stopped while appending".into(),
            };
            self.quarantine_blocking(path, &[torn])?;
            let file = std::fs::OpenOptions::new().write(true).open(path)?;
            file.set_len(at as u64)?;
            file.sync_all()?;
        }
        Ok(scan.records.len())
    }

    /// Replay files (oldest first) then the live journal.
    fn journals_in(dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut replays: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("replay-") && n.ends_with(".ndjson"))
            })
            .collect();
        replays.sort();
        let journal = dir.join(JOURNAL);
        if journal.exists() {
            replays.push(journal);
        }
        Ok(replays)
    }

    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Records moved to the quarantine file since it was created.
    pub fn quarantined(&self) -> usize {
        self.quarantined.load(Ordering::Acquire)
    }

    /// Appends framed `lines` to the file `name`, creating it (0600) if need
    /// be; returns once they, and a new file's name, are on the disk. A
    /// failed write is cut off again, so it cannot leave a torn record for
    /// the next append to glue onto.
    async fn append_to(&self, name: &str, lines: &str) -> io::Result<()> {
        let (mut file, created) = open_for_append(&self.dir.join(name)).await?;
        let before = file.metadata().await?.len();
        let written = async {
            file.write_all(lines.as_bytes()).await?;
            // Acknowledged means it survives a crash: flush to the disk.
            file.sync_data().await
        }
        .await;
        if let Err(e) = written {
            let _ = file.set_len(before).await;
            return Err(e);
        }
        if created {
            // A new file is reachable only through its directory entry.
            sync_dir(&self.dir).await?;
        }
        Ok(())
    }

    pub async fn append(&self, jobs: &[Job]) -> io::Result<()> {
        let lines = frame_all(jobs)?;
        let _guard = self.lock.lock().await;
        self.append_to(JOURNAL, &lines).await?;
        self.pending.fetch_add(jobs.len(), Ordering::AcqRel);
        Ok(())
    }

    /// Parks `job`, refused by the database for `reason`.
    pub async fn reject(&self, job: &Job, reason: &str) -> io::Result<()> {
        let line = journal::frame(&Parked {
            at_ms: now_ms(),
            reason: reason.to_owned(),
            job: job.clone(),
        })
        .map_err(io::Error::other)?;
        let _guard = self.lock.lock().await;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let _shared = lock_dir(&dir)?;
            append_blocking(&dir, REJECTED, &line)
        })
        .await
        .map_err(io::Error::other)?
    }

    /// The parked jobs, oldest first.
    pub fn parked(&self) -> io::Result<Vec<Parked>> {
        let _shared = lock_dir(&self.dir)?;
        read_parked(&self.dir)
    }

    /// Runs `apply` over the parked jobs while holding the lock a running
    /// server shares, and keeps parked only those it returns.
    pub async fn rework_parked<F, Fut>(&self, apply: F) -> anyhow::Result<(usize, Vec<Parked>)>
    where
        F: FnOnce(Vec<Parked>) -> Fut,
        Fut: std::future::Future<Output = Vec<Parked>>,
    {
        let _held = lock_dir(&self.dir)?;
        let parked = read_parked(&self.dir)?;
        let before = parked.len();
        let keep = apply(parked).await;
        let mut text = String::new();
        for p in &keep {
            text.push_str(&journal::frame(p)?);
        }
        let tmp = self.dir.join("rejected.ndjson.tmp");
        std::fs::remove_file(&tmp).ok();
        append_blocking(&self.dir, "rejected.ndjson.tmp", &text)?;
        std::fs::rename(&tmp, self.dir.join(REJECTED))?;
        sync_dir_blocking(&self.dir)?;
        Ok((before - keep.len(), keep))
    }

    /// The next file to replay: a leftover replay file, or the live journal
    /// renamed out of the way.
    pub async fn next_for_replay(&self) -> io::Result<Option<PathBuf>> {
        let _guard = self.lock.lock().await;
        let files = Self::journals_in(&self.dir)?;
        let Some(first) = files.into_iter().next() else {
            return Ok(None);
        };
        if first.file_name().and_then(|n| n.to_str()) != Some(JOURNAL) {
            return Ok(Some(first));
        }
        let n = self.rotations.fetch_add(1, Ordering::AcqRel);
        let rotated = self.dir.join(format!(
            "replay-{:020}-{n:06}.ndjson",
            chrono::Utc::now().timestamp_millis()
        ));
        tokio::fs::rename(&first, &rotated).await?;
        // Else a crash could bring the old name back beside a new journal.
        sync_dir(&self.dir).await?;
        Ok(Some(rotated))
    }

    /// The whole records of a journal file, in order. Damaged ones (and a
    /// torn tail) are moved to the quarantine file with their reasons; they
    /// never stop the others being read.
    pub async fn read(&self, path: &Path) -> io::Result<Vec<Job>> {
        let bytes = tokio::fs::read(path).await?;
        let mut scan = journal::scan::<Job>(&bytes);
        if let Some(at) = scan.torn_tail_at {
            scan.damaged.push(Damaged {
                raw: String::from_utf8_lossy(&bytes[at..]).into_owned(),
                reason: "torn tail: an append did not finish".into(),
            });
        }
        if !scan.damaged.is_empty() {
            tracing::error!(
                file = %path.display(),
                records = scan.damaged.len(),
                "damaged spill journal records moved to quarantine.ndjson; the others are replayed"
            );
            let _guard = self.lock.lock().await;
            let (file, damaged) = (path.to_path_buf(), scan.damaged);
            let n = damaged.len();
            let dir = self.dir.clone();
            tokio::task::spawn_blocking(move || quarantine_in(&dir, &file, &damaged))
                .await
                .map_err(io::Error::other)??;
            self.quarantined.fetch_add(n, Ordering::AcqRel);
            metrics::counter!("warmline_writebehind_quarantined_total").increment(n as u64);
        }
        Ok(scan.records)
    }

    fn quarantine_blocking(&self, file: &Path, damaged: &[Damaged]) -> io::Result<()> {
        quarantine_in(&self.dir, file, damaged)?;
        self.quarantined.fetch_add(damaged.len(), Ordering::AcqRel);
        metrics::counter!("warmline_writebehind_quarantined_total").increment(damaged.len() as u64);
        Ok(())
    }

    /// Removes a replayed file that held `records` jobs.
    pub async fn done(&self, path: &Path, records: usize) -> io::Result<()> {
        let _guard = self.lock.lock().await;
        tokio::fs::remove_file(path).await?;
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_sub(records))
            });
        // Else a crash could bring the file back: replaying it again is
        // harmless (idempotent) but needless.
        sync_dir(&self.dir).await
    }
}

fn frame_all<T: Serialize>(items: &[T]) -> io::Result<String> {
    let mut text = String::new();
    for item in items {
        text.push_str(&journal::frame(item).map_err(io::Error::other)?);
    }
    Ok(text)
}

fn read_or_empty(path: &Path) -> io::Result<Vec<u8>> {
    match std::fs::read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        other => other,
    }
}

fn read_parked(dir: &Path) -> io::Result<Vec<Parked>> {
    let scan = journal::scan::<ParkedLine>(&read_or_empty(&dir.join(REJECTED))?);
    Ok(scan.records.into_iter().map(Parked::from).collect())
}

/// Appends each damaged piece of `file` to the quarantine file.
fn quarantine_in(dir: &Path, file: &Path, damaged: &[Damaged]) -> io::Result<()> {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    let at_ms = now_ms();
    let records: Vec<Quarantined> = damaged
        .iter()
        .map(|d| Quarantined {
            at_ms,
            file: name,
            reason: &d.reason,
            raw: &d.raw,
        })
        .collect();
    append_blocking(dir, QUARANTINE, &frame_all(&records)?)
}

/// [`Spill::append_to`] for blocking callers (start-up, the CLI).
fn append_blocking(dir: &Path, name: &str, lines: &str) -> io::Result<()> {
    let path = dir.join(name);
    let created = !path.exists();
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path)?;
    let before = file.metadata()?.len();
    if let Err(e) = file
        .write_all(lines.as_bytes())
        .and_then(|()| file.sync_data())
    {
        let _ = file.set_len(before);
        return Err(e);
    }
    if created {
        sync_dir_blocking(dir)?;
    }
    Ok(())
}

/// Takes the directory's advisory lock (shared by the server and the CLI);
/// released when the returned file is dropped.
fn lock_dir(dir: &Path) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(dir.join(LOCK))?;
    file.lock()?;
    Ok(file)
}

/// How a journal file is opened for appending: created 0600 when `create`.
fn append_options(create: bool) -> tokio::fs::OpenOptions {
    let mut options = tokio::fs::OpenOptions::new();
    options.append(true).create_new(create);
    #[cfg(unix)]
    options.mode(0o600);
    options
}

/// Opens `path` for appending, creating it if missing; `true` when created.
async fn open_for_append(path: &Path) -> io::Result<(tokio::fs::File, bool)> {
    match append_options(false).open(path).await {
        Ok(file) => return Ok((file, false)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match append_options(true).open(path).await {
        Ok(file) => Ok((file, true)),
        // Created meanwhile by someone else: its entry may not be synced yet.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Ok((append_options(false).open(path).await?, true))
        }
        Err(e) => Err(e),
    }
}

/// Creates `dir` (and missing parents) 0700 and makes each new entry
/// durable; a directory that exists is left as it is (its owner chose its
/// mode).
fn create_private_dir(dir: &Path) -> io::Result<()> {
    // The directories to create, innermost first.
    let missing: Vec<&Path> = dir.ancestors().take_while(|p| !p.is_dir()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    // Each new directory is reachable only through its parent's entry.
    for created in missing.into_iter().rev() {
        match created.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => sync_dir_blocking(parent)?,
            _ => sync_dir_blocking(Path::new("."))?,
        }
    }
    Ok(())
}

/// Makes a journal an older version left readable by others 0600; a failure
/// is logged, not fatal (the journal is still replayed).
fn make_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let tighten = std::fs::metadata(path).and_then(|m| {
            if m.permissions().mode() & 0o077 == 0 {
                return Ok(());
            }
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        });
        if let Err(e) = tighten {
            tracing::warn!(error = %e, file = %path.display(), "could not make a spill journal private");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Makes `dir`'s entries (files created, renamed or removed in it) durable.
fn sync_dir_blocking(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    return std::fs::File::open(dir)?.sync_all();
    // Elsewhere a directory cannot be opened as a file; its metadata is
    // journaled by the file system.
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

async fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || sync_dir_blocking(&dir))
        .await
        .map_err(io::Error::other)?
}
