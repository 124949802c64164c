//! Write-back to the CRM and the memory service after a call ended: claims
//! the [`WriteBack`] jobs the write-behind queued in the store, runs them
//! against the tenant's upstreams with retries and backoff, and invalidates
//! what they changed in the cache. A worker of its own: no webhook waits for
//! it, and nothing in `calls/` knows it exists.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;

use crate::cache::{Cache, Namespace, keys};
use crate::domain::WriteBack;
use crate::store::{QueuedWriteBack, Store};
use crate::support::{now_ms, supervise};
use crate::tenants::TenantDirectory;
use crate::upstreams::{ContactInfo, ContactUpsert, ConversationMessage, MemorySubject, Upstreams};

const POLL: Duration = Duration::from_millis(500);
const BATCH: u32 = 20;
const LEASE_MS: i64 = 60_000;
/// After this many attempts an item is given up (and kept, with its error).
const MAX_ATTEMPTS: i64 = 8;

/// The write-back worker: what it needs, and nothing else.
#[derive(Clone)]
pub struct WriteBackWorker {
    store: Store,
    tenants: TenantDirectory,
    upstreams: Arc<Upstreams>,
    cache: Cache,
}

impl WriteBackWorker {
    pub fn new(
        store: Store,
        tenants: TenantDirectory,
        upstreams: Arc<Upstreams>,
        cache: Cache,
    ) -> Self {
        WriteBackWorker {
            store,
            tenants,
            upstreams,
            cache,
        }
    }

    /// Runs the loop until the process ends; a panic restarts it (the items
    /// it had claimed come back when their lease runs out).
    pub fn start(self) {
        for kind in ["crm_writeback", "memory_writeback"] {
            for outcome in ["ok", "retry", "given_up"] {
                metrics::counter!("warmline_writeback_total", "kind" => kind, "outcome" => outcome)
                    .increment(0);
            }
        }
        supervise("writeback", move || self.clone().run_loop());
    }

    async fn run_loop(self) {
        loop {
            match self.store.claim_writebacks(BATCH, LEASE_MS).await {
                Ok(items) if !items.is_empty() => {
                    self.write_back_all(items).await;
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "write-back cannot claim work yet"),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A claim's items: one caller's in the order they were queued (a
    /// transcript's messages follow the thread the first one created),
    /// different callers' at once. One at a time, the worker managed one
    /// item per upstream round trip (5 a second at a CRM's 200 ms), and a
    /// busier line's backlog grew without bound.
    async fn write_back_all(&self, items: Vec<QueuedWriteBack>) {
        let mut by_caller: Vec<(String, Vec<QueuedWriteBack>)> = Vec::new();
        for item in items {
            // An unreadable job has no caller: it goes alone.
            let key = match &item.job {
                Ok(job) => keys::caller(job.tenant_id(), job.caller()),
                Err(_) => format!("#{}", item.id),
            };
            match by_caller.iter_mut().find(|(k, _)| *k == key) {
                Some((_, queue)) => queue.push(item),
                None => by_caller.push((key, vec![item])),
            }
        }
        join_all(by_caller.into_iter().map(|(_, queue)| async move {
            for item in queue {
                self.write_back(item).await;
            }
        }))
        .await;
    }

    #[tracing::instrument(name = "writeback.run", skip_all, fields(kind = %item.kind, attempt = item.attempts))]
    async fn write_back(&self, item: QueuedWriteBack) {
        let result = match &item.job {
            Ok(job) => self.run(job).await,
            Err(e) => Err(e.clone()),
        };
        let outcome = match &result {
            Ok(()) => {
                let _ = self.store.mark_writeback_done(item.id).await;
                "ok"
            }
            Err(e) if item.attempts >= MAX_ATTEMPTS || item.job.is_err() => {
                tracing::error!(error = %e, "write-back given up after {} attempts", item.attempts);
                let _ = self.store.mark_writeback_dead(item.id, e).await;
                "given_up"
            }
            Err(e) => {
                // 5 s, 20 s, 45 s, … capped at 10 minutes.
                let backoff = (5_000 * item.attempts * item.attempts).min(600_000);
                tracing::warn!(error = %e, retry_in_ms = backoff, "write-back failed; will retry");
                let _ = self
                    .store
                    .mark_writeback_failed(item.id, e, now_ms() + backoff)
                    .await;
                "retry"
            }
        };
        metrics::counter!("warmline_writeback_total", "kind" => item.kind.clone(), "outcome" => outcome).increment(1);
    }

    async fn run(&self, job: &WriteBack) -> Result<(), String> {
        let tenant = self
            .tenants
            .by_id(job.tenant_id())
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("tenant {} no longer exists", job.tenant_id()))?;
        let up = self.upstreams.for_tenant(&tenant)?;
        let key = keys::caller(&tenant.id, job.caller());
        let changed: &[Namespace] = match job {
            WriteBack::Crm { caller, .. } => {
                let Some(crm) = &up.crm else { return Ok(()) };
                // A touch: the CRM records the call against the contact.
                let now = crm
                    .upsert_contact(&ContactUpsert {
                        phone: Some(caller.clone()),
                        source: Some("warmline call".into()),
                        ..ContactUpsert::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                // The CRM answers with its record as it now is: when that is
                // the record cached here, nothing cached changed (the usual
                // case, a returning caller); else (a contact the touch made,
                // or one edited in the CRM since) it is dropped.
                let contacts = self.cache.namespace::<ContactInfo>(Namespace::Contact);
                if contacts
                    .peek_l1(&key)
                    .is_some_and(|held| held.crm.as_ref() == Some(&now))
                {
                    return Ok(());
                }
                &[Namespace::Contact, Namespace::Context]
            }
            WriteBack::Memory {
                caller, messages, ..
            } => {
                let Some(memory) = &up.memory else {
                    return Ok(());
                };
                let subject = MemorySubject::for_caller(&tenant.id, caller, None);
                let messages: Vec<ConversationMessage> = messages
                    .iter()
                    .map(|m| ConversationMessage {
                        role: m.role.clone(),
                        content: m.content.clone(),
                    })
                    .collect();
                memory
                    .add_messages(&subject, &messages)
                    .await
                    .map_err(|e| e.to_string())?;
                &[Namespace::Memory, Namespace::Context]
            }
        };
        // What the upstream now knows differs from what was cached.
        self.cache
            .caller_changed(&tenant.id, job.caller(), changed, &[])
            .await;
        Ok(())
    }
}
