-- Every conversation, not only inbound calls (issue 15): a call's channel
-- (`voice`, or `chat` for an SMS/chat session), the contacts' outbound
-- calls, and daily metrics per direction. Kept identical to migrations/postgres
-- but for auto-increment ids.

ALTER TABLE calls ADD COLUMN channel TEXT NOT NULL DEFAULT 'voice';
CREATE INDEX calls_by_direction_time ON calls (direction, created_at_ms DESC);
CREATE INDEX calls_by_channel_time ON calls (channel, created_at_ms DESC);

-- Of a contact's total_calls, those the business placed.
ALTER TABLE contacts ADD COLUMN outbound_calls BIGINT NOT NULL DEFAULT 0;

-- One row per tenant, local day and direction. SQLite cannot change a
-- primary key in place, so on both backends the table is rebuilt, every
-- existing row inbound (before this migration every call was read as
-- inbound).
CREATE TABLE daily_metrics_by_direction (
    tenant_id           TEXT NOT NULL,
    day                 TEXT NOT NULL,
    direction           TEXT NOT NULL DEFAULT 'inbound',   -- inbound | outbound
    calls               BIGINT NOT NULL DEFAULT 0,
    bookings            BIGINT NOT NULL DEFAULT 0,
    fallbacks           BIGINT NOT NULL DEFAULT 0,
    total_duration_ms   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, direction)
);
INSERT INTO daily_metrics_by_direction
    (tenant_id, day, direction, calls, bookings, fallbacks, total_duration_ms)
    SELECT tenant_id, day, 'inbound', calls, bookings, fallbacks, total_duration_ms
    FROM daily_metrics;
DROP TABLE daily_metrics;
ALTER TABLE daily_metrics_by_direction RENAME TO daily_metrics;

-- The conversation log of messaging bots (`POST /api/v1/messages`): one row
-- per message a bot appended, written behind like call events. message_key
-- is unique per message, so a replayed journal stores it once.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    message_key     TEXT NOT NULL UNIQUE,
    tenant_id       TEXT NOT NULL,
    caller          TEXT NOT NULL,       -- the customer, E.164
    instance        TEXT,                -- the WhatsApp instance, when named
    role            TEXT NOT NULL,       -- user | assistant
    text            TEXT NOT NULL,
    at_ms           BIGINT NOT NULL,
    created_at_ms   BIGINT NOT NULL
);
CREATE INDEX messages_by_caller_time ON messages (tenant_id, caller, at_ms);
