-- Admin sessions: one row per logged-in browser. The cookie carries a random
-- token; only its SHA-256 is stored, so a copy of the database holds no
-- usable session. Shared by every replica.
CREATE TABLE admin_sessions (
    token_hash TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);
CREATE INDEX admin_sessions_last_seen ON admin_sessions (last_seen_ms);
