-- 0006: runs that died say so, and the state knows which Procore and which ERP it belongs to.
--
-- runs.process   who ran the run (host, boot, pid, process start; JSON, tasks/liveness.py), so the
--                next start of the entity can tell a run whose process is gone from one still
--                running elsewhere.
-- 'crashed'      a run that stopped without recording its end (killed, or an unexpected error),
--                found so by the next start of its entity; finished_at is when it was found.
-- pairings       the Procore environment, company and ERP the state was first used with, and
--                every pairing an operator made since (`procore-sync state pair`); the newest
--                row is the pairing in force. Writes to any other pairing are refused.
--
-- DuckDB cannot change a CHECK constraint in place, so runs is rebuilt as in 0003, and the views
-- that read it with it.

DROP VIEW v_last_run_per_entity;
DROP VIEW v_record_history;
ALTER TABLE runs RENAME TO runs_0005;

CREATE TABLE runs (
    run_id        VARCHAR PRIMARY KEY,
    seq           BIGINT NOT NULL DEFAULT nextval('runs_seq'),
    entity        VARCHAR NOT NULL,
    flow_run_id   VARCHAR,
    parameters    JSON,
    status        VARCHAR NOT NULL
                  CHECK (status IN ('running', 'completed', 'failed', 'dry_run', 'deferred', 'crashed')),
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    created       INTEGER NOT NULL DEFAULT 0,
    updated       INTEGER NOT NULL DEFAULT 0,
    unchanged     INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    blocked       INTEGER NOT NULL DEFAULT 0,
    warnings      INTEGER NOT NULL DEFAULT 0,
    api_calls     INTEGER NOT NULL DEFAULT 0,
    write_calls   INTEGER NOT NULL DEFAULT 0,
    message       VARCHAR,
    cursor_before TIMESTAMPTZ,
    cursor_after  TIMESTAMPTZ,
    process       VARCHAR
);
INSERT INTO runs (run_id, seq, entity, flow_run_id, parameters, status, started_at, finished_at, created, updated,
    unchanged, failed, blocked, warnings, api_calls, write_calls, message, cursor_before, cursor_after)
SELECT run_id, seq, entity, flow_run_id, parameters, status, started_at, finished_at, created, updated,
    unchanged, failed, blocked, warnings, api_calls, write_calls, message, cursor_before, cursor_after
FROM runs_0005;
DROP TABLE runs_0005;

CREATE VIEW v_last_run_per_entity AS
SELECT DISTINCT ON (entity) *
FROM runs
ORDER BY entity, started_at DESC, seq DESC;

CREATE VIEW v_record_history AS
SELECT a.action_id, a."at", a.entity, a.erp_key, a.action, a.status, a.attempt, a.procore_id,
       a.message, a.payload_hash, a.run_id, r.flow_run_id, r.status AS run_status
FROM record_actions AS a
LEFT JOIN runs AS r USING (run_id)
ORDER BY a."at" DESC, a.action_id DESC;

CREATE SEQUENCE pairings_seq START 1;

CREATE TABLE pairings (
    seq          BIGINT NOT NULL DEFAULT nextval('pairings_seq') PRIMARY KEY,
    "at"         TIMESTAMPTZ NOT NULL,
    -- Procore's API base URL (a local sandbox's without its port, see tasks/pairing.py).
    environment  VARCHAR NOT NULL,
    company_id   BIGINT NOT NULL,
    -- The ERP's sources, as SourceSet.describe() names them.
    erp          VARCHAR NOT NULL,
    -- 'first run' or 'paired by the operator'.
    how          VARCHAR NOT NULL
);
