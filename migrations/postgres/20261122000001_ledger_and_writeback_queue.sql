-- The outbox was two things in one table: the idempotency ledger (every
-- applied job's key, born done) and the queue of write-backs to the CRM and
-- the memory service. They are separate tables now, each named for its job.

CREATE TABLE idempotency_ledger (
    idempotency_key  TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    trace_id         TEXT,
    applied_at_ms    BIGINT NOT NULL
);
CREATE INDEX idempotency_ledger_applied ON idempotency_ledger (applied_at_ms);

INSERT INTO idempotency_ledger (idempotency_key, kind, trace_id, applied_at_ms)
    SELECT idempotency_key, kind, trace_id, created_at_ms FROM outbox
    WHERE kind NOT IN ('crm_writeback', 'memory_writeback');
DELETE FROM outbox WHERE kind NOT IN ('crm_writeback', 'memory_writeback');

ALTER TABLE outbox RENAME TO writeback_queue;
DROP INDEX outbox_due;
DROP INDEX outbox_done;
CREATE INDEX writeback_queue_due ON writeback_queue (next_attempt_at_ms, id) WHERE done_at_ms IS NULL;
CREATE INDEX writeback_queue_done ON writeback_queue (done_at_ms) WHERE done_at_ms IS NOT NULL;
