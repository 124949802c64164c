-- How fast warmline answered the platforms, per tenant and day, as a
-- histogram (non-cumulative counts: le_N holds answers over the previous
-- bound up to N ms; over_5000 the rest), and how many of the cache lookups
-- made while answering were hits. tenant_id '' holds answers for no known
-- tenant (refused, unknown number), counted by UTC day. Only ever changed
-- by atomic `col = col + excluded.col` upserts.
CREATE TABLE daily_timings (
    tenant_id       TEXT NOT NULL,
    day             TEXT NOT NULL,
    cache_lookups   BIGINT NOT NULL DEFAULT 0,
    cache_hits      BIGINT NOT NULL DEFAULT 0,
    le_10           BIGINT NOT NULL DEFAULT 0,
    le_25           BIGINT NOT NULL DEFAULT 0,
    le_50           BIGINT NOT NULL DEFAULT 0,
    le_75           BIGINT NOT NULL DEFAULT 0,
    le_100          BIGINT NOT NULL DEFAULT 0,
    le_150          BIGINT NOT NULL DEFAULT 0,
    le_200          BIGINT NOT NULL DEFAULT 0,
    le_300          BIGINT NOT NULL DEFAULT 0,
    le_500          BIGINT NOT NULL DEFAULT 0,
    le_750          BIGINT NOT NULL DEFAULT 0,
    le_1000         BIGINT NOT NULL DEFAULT 0,
    le_1500         BIGINT NOT NULL DEFAULT 0,
    le_2000         BIGINT NOT NULL DEFAULT 0,
    le_3000         BIGINT NOT NULL DEFAULT 0,
    le_5000         BIGINT NOT NULL DEFAULT 0,
    over_5000       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);
