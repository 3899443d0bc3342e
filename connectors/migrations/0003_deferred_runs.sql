-- 0003: a run can end "deferred": Procore's quota window was spent for longer than worth holding
-- a process, so the flow run went back to Prefect as AwaitingQuota and resumes, same run id, at
-- the reset (a new row here when it does). DuckDB cannot change a CHECK constraint in place,
-- so the table is rebuilt, and the views that read it with it.

DROP VIEW v_last_run_per_entity;
DROP VIEW v_record_history;
ALTER TABLE runs RENAME TO runs_0002;

CREATE TABLE runs (
    run_id        VARCHAR PRIMARY KEY,
    seq           BIGINT NOT NULL DEFAULT nextval('runs_seq'),
    entity        VARCHAR NOT NULL,
    flow_run_id   VARCHAR,
    parameters    JSON,
    status        VARCHAR NOT NULL
                  CHECK (status IN ('running', 'completed', 'failed', 'dry_run', 'deferred')),
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
    cursor_after  TIMESTAMPTZ
);
INSERT INTO runs SELECT * FROM runs_0002;
DROP TABLE runs_0002;

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
