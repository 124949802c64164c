-- What happened on a call, step by step, for its detail page in the admin:
-- the context the agent was answered with when the call started (and how:
-- fresh, served stale, parts missing) and every mid-call tool call with the
-- arguments the platform sent, the answer and the latency. Written by the
-- write-behind; `step_key` is unique per step, so a replayed step (a spill
-- journal applied again after the idempotency ledger forgot it) is a no-op.

CREATE TABLE call_steps (
    step_key    TEXT PRIMARY KEY,
    provider    TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,     -- context | tool
    name        TEXT NOT NULL,     -- the tool; for context, when it was answered (inbound | call_started | fallback)
    arguments   TEXT,              -- tool: the arguments as the platform sent them (JSON, bounded)
    answer      TEXT NOT NULL,     -- tool: the sentence the agent got; context: what it was told (JSON)
    outcome     TEXT NOT NULL,     -- tool: ok | error; context: fresh | stale | partial
    latency_ms  BIGINT NOT NULL,
    at_ms       BIGINT NOT NULL
);
CREATE INDEX call_steps_by_call ON call_steps (provider, call_id, at_ms);
