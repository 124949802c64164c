//! Write-back to the CRM and the memory service after a call ended: claims
//! the outbox items the write-behind created, runs them against the tenant's
//! upstreams with retries and backoff, and invalidates what they changed.

use std::time::Duration;

use serde::Deserialize;

use super::Calls;
use crate::domain::{PhoneNumber, TenantId, TranscriptLine};
use crate::store::{OutboxItem, now_ms};
use crate::upstreams::{ContactUpsert, ConversationMessage, MemorySubject};
use crate::writebehind::{CRM_WRITEBACK, MEMORY_WRITEBACK};

const POLL: Duration = Duration::from_millis(500);
const BATCH: u32 = 20;
const LEASE_MS: i64 = 60_000;
/// After this many attempts an item is given up (and kept, with its error).
const MAX_ATTEMPTS: i64 = 8;

#[derive(Deserialize)]
struct Payload {
    tenant_id: TenantId,
    caller: PhoneNumber,
    #[serde(default)]
    messages: Vec<TranscriptLine>,
}

impl Calls {
    /// Runs the write-back loop until the process ends.
    pub fn start_writeback(&self) {
        let calls = self.clone();
        tokio::spawn(async move {
            loop {
                match calls.store.claim_outbox(BATCH, LEASE_MS).await {
                    Ok(items) if !items.is_empty() => {
                        for item in items {
                            calls.write_back(item).await;
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "write-back cannot claim work yet"),
                }
                tokio::time::sleep(POLL).await;
            }
        });
    }

    #[tracing::instrument(name = "calls.write_back", skip_all, fields(kind = %item.kind, attempt = item.attempts))]
    async fn write_back(&self, item: OutboxItem) {
        let result = self.run_write_back(&item).await;
        let outcome = match &result {
            Ok(()) => {
                let _ = self.store.mark_outbox_done(item.id).await;
                "ok"
            }
            Err(e) if item.attempts >= MAX_ATTEMPTS => {
                tracing::error!(error = %e, "write-back given up after {MAX_ATTEMPTS} attempts");
                let _ = self.store.mark_outbox_dead(item.id, e).await;
                "given_up"
            }
            Err(e) => {
                // 5 s, 20 s, 45 s, … capped at 10 minutes.
                let backoff = (5_000 * item.attempts * item.attempts).min(600_000);
                tracing::warn!(error = %e, retry_in_ms = backoff, "write-back failed; will retry");
                let _ = self
                    .store
                    .mark_outbox_failed(item.id, e, now_ms() + backoff)
                    .await;
                "retry"
            }
        };
        metrics::counter!("warmline_writeback_total", "kind" => item.kind.clone(), "outcome" => outcome).increment(1);
    }

    async fn run_write_back(&self, item: &OutboxItem) -> Result<(), String> {
        let payload: Payload =
            serde_json::from_str(&item.payload).map_err(|e| format!("bad payload: {e}"))?;
        let tenant = self
            .store
            .tenant(&payload.tenant_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("tenant {} no longer exists", payload.tenant_id))?;
        let up = self.upstreams.for_tenant(&tenant)?;
        match item.kind.as_str() {
            CRM_WRITEBACK => {
                if let Some(crm) = &up.crm {
                    // A touch: the CRM records the call against the contact.
                    crm.upsert_contact(&ContactUpsert {
                        phone: Some(payload.caller.clone()),
                        source: Some("warmline call".into()),
                        ..ContactUpsert::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                }
            }
            MEMORY_WRITEBACK => {
                if let Some(memory) = &up.memory {
                    let subject = MemorySubject::for_caller(&tenant.id, &payload.caller, None);
                    let messages: Vec<ConversationMessage> = payload
                        .messages
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
                }
            }
            other => return Err(format!("unknown outbox kind `{other}`")),
        }
        // What the upstream now knows differs from what we cached.
        self.invalidate_caller(&tenant, &payload.caller).await;
        Ok(())
    }
}
