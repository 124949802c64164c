-- warmline schema, SQLite flavour. Kept column-for-column identical to
-- migrations/postgres: the store speaks one SQL dialect through sqlx's Any
-- driver, so only auto-increment ids differ (INTEGER PRIMARY KEY here,
-- BIGINT GENERATED ALWAYS AS IDENTITY there).
--
-- Portable types only: TEXT, BIGINT, DOUBLE PRECISION. Timestamps are BIGINT
-- milliseconds since the Unix epoch (UTC by definition, sortable, and decoded
-- identically on both backends); booleans are BIGINT 0/1; JSON documents are
-- TEXT.

CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    phone_number  TEXT NOT NULL UNIQUE,          -- the called number, E.164
    name          TEXT NOT NULL,
    time_zone     TEXT NOT NULL,                 -- IANA, e.g. America/New_York
    config        TEXT NOT NULL DEFAULT '{}',    -- adapters, ids, credentials, services (JSON)
    is_demo       BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE contacts (
    tenant_id          TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    phone_number       TEXT NOT NULL,
    crm_contact_id     TEXT,
    name               TEXT,
    email              TEXT,
    total_calls        BIGINT NOT NULL DEFAULT 0,
    first_seen_at_ms   BIGINT NOT NULL,
    last_call_at_ms    BIGINT,
    updated_at_ms      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, phone_number)
);

CREATE TABLE calls (
    provider               TEXT NOT NULL,        -- retell | vapi | elevenlabs
    call_id                TEXT NOT NULL,
    tenant_id              TEXT REFERENCES tenants(id) ON DELETE SET NULL,
    from_number            TEXT,
    to_number              TEXT,
    direction              TEXT,
    status                 TEXT NOT NULL,        -- registered | ongoing | ended | analyzed | error
    started_at_ms          BIGINT,
    ended_at_ms            BIGINT,
    duration_ms            BIGINT,
    disconnection_reason   TEXT,
    transcript             TEXT,
    summary                TEXT,
    successful             BIGINT,               -- 0/1, NULL while unknown
    sentiment              TEXT,
    analysis               TEXT,                 -- the provider's analysis object (JSON)
    trace_id               TEXT,
    created_at_ms          BIGINT NOT NULL,
    updated_at_ms          BIGINT NOT NULL,
    PRIMARY KEY (provider, call_id)
);
CREATE INDEX calls_by_time ON calls (created_at_ms DESC);
CREATE INDEX calls_by_tenant_time ON calls (tenant_id, created_at_ms DESC);
CREATE INDEX calls_by_caller_time ON calls (from_number, created_at_ms DESC);
CREATE INDEX calls_by_status_time ON calls (status, created_at_ms DESC);

-- Each fallback step the cascade took for a call (cache miss → database →
-- recent call from the number → tenant default), for the call's detail page.
CREATE TABLE call_fallbacks (
    provider      TEXT NOT NULL,
    call_id       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    detail        TEXT,
    at_ms         BIGINT NOT NULL
);
CREATE INDEX call_fallbacks_by_call ON call_fallbacks (provider, call_id, at_ms);
CREATE INDEX call_fallbacks_by_time ON call_fallbacks (at_ms DESC);

CREATE TABLE appointments (
    id                TEXT PRIMARY KEY,           -- the calendar's appointment/booking id
    tenant_id         TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    provider          TEXT,
    call_id           TEXT,
    contact_phone     TEXT NOT NULL,
    service           TEXT,
    starts_at_ms      BIGINT NOT NULL,
    ends_at_ms        BIGINT NOT NULL,
    status            TEXT NOT NULL,              -- booked | cancelled
    created_at_ms     BIGINT NOT NULL
);
CREATE INDEX appointments_by_tenant_start ON appointments (tenant_id, starts_at_ms);
CREATE INDEX appointments_by_call ON appointments (provider, call_id);

-- One row per tenant and local calendar day; only ever changed by atomic
-- `col = col + excluded.col` upserts, so concurrent writers never lose counts.
CREATE TABLE daily_metrics (
    tenant_id           TEXT NOT NULL,
    day                 TEXT NOT NULL,            -- YYYY-MM-DD in the tenant's time zone
    calls               BIGINT NOT NULL DEFAULT 0,
    bookings            BIGINT NOT NULL DEFAULT 0,
    fallbacks           BIGINT NOT NULL DEFAULT 0,
    total_duration_ms   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);

-- Write-behind outbox: acknowledged work (call events, CRM and memory
-- write-back) waiting to be applied. The idempotency key makes a provider's
-- retry of the same event a no-op.
CREATE TABLE outbox (
    id                  INTEGER PRIMARY KEY,
    kind                TEXT NOT NULL,
    idempotency_key     TEXT NOT NULL UNIQUE,
    payload             TEXT NOT NULL,
    attempts            BIGINT NOT NULL DEFAULT 0,
    next_attempt_at_ms  BIGINT NOT NULL,
    last_error          TEXT,
    trace_id            TEXT,
    locked_until_ms     BIGINT,                   -- a worker's lease on the row
    done_at_ms          BIGINT,                   -- kept for a while so retries stay no-ops
    created_at_ms       BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_at_ms, id) WHERE done_at_ms IS NULL;
CREATE INDEX outbox_done ON outbox (done_at_ms) WHERE done_at_ms IS NOT NULL;

-- Last-known-good cache values for the fail-safe namespaces, so a restart with
-- a dead upstream and no Redis still has something to serve.
CREATE TABLE cache_last_good (
    namespace      TEXT NOT NULL,
    cache_key      TEXT NOT NULL,
    value          TEXT NOT NULL,
    version        BIGINT NOT NULL,
    stored_at_ms   BIGINT NOT NULL,
    PRIMARY KEY (namespace, cache_key)
);

-- Who did what from the admin, and when.
CREATE TABLE admin_audit (
    id          INTEGER PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,    -- JSON
    outcome     TEXT NOT NULL
);
CREATE INDEX admin_audit_by_time ON admin_audit (at_ms DESC);
