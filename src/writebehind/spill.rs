//! The spill journal: newline-delimited JSON jobs in a local directory,
//! fsynced before a job is acknowledged, replayed oldest file first.
//!
//! New jobs are appended to `journal.ndjson`. A replay first renames it to
//! `replay-<time>-<n>.ndjson`, so jobs spilled during the replay land in a
//! fresh journal and are replayed after it. Jobs the database refuses go to
//! `rejected.ndjson` for an operator to inspect.

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
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut pending = 0;
        for path in Self::journals_in(&dir)? {
            pending += std::fs::read_to_string(&path)?
                .lines()
                .filter(|l| !l.trim().is_empty())
                .count();
        }
        Ok(Spill {
            dir,
            lock: Mutex::new(()),
            pending: AtomicUsize::new(pending),
            rotations: AtomicUsize::new(0),
        })
    }

    /// Replay files (oldest first) then the live journal.
    fn journals_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
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

    async fn append_to(&self, name: &str, jobs: &[Job]) -> std::io::Result<()> {
        let mut text = String::new();
        for job in jobs {
            text.push_str(&serde_json::to_string(job).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(name))
            .await?;
        file.write_all(text.as_bytes()).await?;
        // Acknowledged means it survives a crash: flush to the disk.
        file.sync_data().await
    }

    pub async fn append(&self, jobs: &[Job]) -> std::io::Result<()> {
        let _guard = self.lock.lock().await;
        self.append_to(JOURNAL, jobs).await?;
        self.pending.fetch_add(jobs.len(), Ordering::AcqRel);
        Ok(())
    }

    pub async fn reject(&self, job: &Job) -> std::io::Result<()> {
        let _guard = self.lock.lock().await;
        self.append_to(REJECTED, std::slice::from_ref(job)).await
    }

    /// The next file to replay: a leftover replay file, or the live journal
    /// renamed out of the way.
    pub async fn next_for_replay(&self) -> std::io::Result<Option<PathBuf>> {
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
    pub async fn done(&self, path: &Path) -> std::io::Result<()> {
        let _guard = self.lock.lock().await;
        let n = tokio::fs::read_to_string(path)
            .await?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        tokio::fs::remove_file(path).await?;
        self.pending
            .fetch_sub(n.min(self.pending()), Ordering::AcqRel);
        Ok(())
    }
}
