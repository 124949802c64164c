-- Alerts warmline raised from its own numbers (the conditions of
-- dashboards/prometheus/alerts.yml): one row per firing, kept after it
-- resolves as history. `active` is 1 while the alert fires and NULL once
-- resolved: the unique index then allows one active row per alert and
-- label set (NULLs are distinct), so replicas that see the same condition
-- share one row instead of raising it twice.
CREATE TABLE alerts (
    id                  INTEGER PRIMARY KEY,
    name                TEXT NOT NULL,
    labels              TEXT NOT NULL,    -- JSON object, keys sorted; {} when none
    active              BIGINT,
    severity            TEXT NOT NULL,
    value               DOUBLE PRECISION NOT NULL,    -- at firing
    threshold           DOUBLE PRECISION NOT NULL,
    detail              TEXT NOT NULL,    -- the numbers behind the value, for people
    started_at_ms       BIGINT NOT NULL,
    resolved_at_ms      BIGINT,
    acknowledged_by     TEXT,
    acknowledged_at_ms  BIGINT
);
CREATE UNIQUE INDEX alerts_one_active ON alerts (name, labels, active);
CREATE INDEX alerts_by_resolution ON alerts (resolved_at_ms DESC);
