//! The spill journal: newline-delimited JSON jobs in a local directory,
//! fsynced before a job is acknowledged, replayed oldest file first.
//!
//! New jobs are appended to `journal.ndjson`. A replay first renames it to
//! `replay-<time>-<n>.ndjson`, so jobs spilled during the replay land in a
//! fresh journal and are replayed after it. Jobs the database refuses go to
//! `rejected.ndjson` for an operator to inspect.
//!
//! The files hold transcripts and callers' numbers: they are created 0600 in
//! a directory created 0700 (files an older version left readable are made
//! 0600 on open). A file's data is fsynced before its job is acknowledged,
//! and the directory is fsynced after every create, rename and removal, so
//! the file's name survives a crash as well as its contents.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::Job;

pub struct Spill {
    dir: PathBuf,
    lock: Mutex<()>,
    pending: AtomicUsize,
    rotations: AtomicUsize,
}

const JOURNAL: &str = "journal.ndjson";
const REJECTED: &str = "rejected.ndjson";

impl Spill {
    /// Opens (creating) the directory and counts what is waiting in it.
    pub fn open(dir: PathBuf) -> io::Result<Self> {
        create_private_dir(&dir)?;
        let mut pending = 0;
        for path in Self::journals_in(&dir)? {
            make_private(&path);
            pending += std::fs::read_to_string(&path)?
                .lines()
                .filter(|l| !l.trim().is_empty())
                .count();
        }
        let rejected = dir.join(REJECTED);
        if rejected.exists() {
            make_private(&rejected);
        }
        Ok(Spill {
            dir,
            lock: Mutex::new(()),
            pending: AtomicUsize::new(pending),
            rotations: AtomicUsize::new(0),
        })
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

    /// Appends `jobs` to the file `name`, creating it (0600) if need be;
    /// returns once the lines, and a new file's name, are on the disk.
    async fn append_to(&self, name: &str, jobs: &[Job]) -> io::Result<()> {
        let mut text = String::new();
        for job in jobs {
            text.push_str(&serde_json::to_string(job).map_err(io::Error::other)?);
            text.push('\n');
        }
        let (mut file, created) = open_for_append(&self.dir.join(name)).await?;
        file.write_all(text.as_bytes()).await?;
        // Acknowledged means it survives a crash: flush to the disk.
        file.sync_data().await?;
        if created {
            // A new file is reachable only through its directory entry.
            sync_dir(&self.dir).await?;
        }
        Ok(())
    }

    pub async fn append(&self, jobs: &[Job]) -> io::Result<()> {
        let _guard = self.lock.lock().await;
        self.append_to(JOURNAL, jobs).await?;
        self.pending.fetch_add(jobs.len(), Ordering::AcqRel);
        Ok(())
    }

    pub async fn reject(&self, job: &Job) -> io::Result<()> {
        let _guard = self.lock.lock().await;
        self.append_to(REJECTED, std::slice::from_ref(job)).await
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

    pub async fn read(&self, path: &Path) -> anyhow::Result<Vec<Job>> {
        let text = tokio::fs::read_to_string(path).await?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), i + 1))
            })
            .collect()
    }

    /// Removes a fully replayed file.
    pub async fn done(&self, path: &Path) -> io::Result<()> {
        let _guard = self.lock.lock().await;
        let n = tokio::fs::read_to_string(path)
            .await?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        tokio::fs::remove_file(path).await?;
        self.pending
            .fetch_sub(n.min(self.pending()), Ordering::AcqRel);
        // Else a crash could bring the file back: replaying it again is
        // harmless (idempotent) but needless.
        sync_dir(&self.dir).await
    }
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
