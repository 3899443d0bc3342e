-- 0001: the sync state and its history.
--
-- runs           one row per flow run of one entity (its parameters, outcome counts, cursors).
-- record_state   one row per (entity, ERP key): what Procore holds for it, as far as we know.
-- record_actions append-only history, one row per action taken on one record in one run.
-- cursors        the differential cursor per entity (the ERP updated_at we have synced up to).
--
-- No foreign keys: DuckDB refuses to update a referenced row (finish_run updates runs), and the
-- store module is the only writer, so it keeps the references consistent itself.

CREATE SEQUENCE runs_seq START 1;

CREATE TABLE runs (
    run_id        VARCHAR PRIMARY KEY,
    -- Insertion order: breaks ties between runs started in the same microsecond.
    seq           BIGINT NOT NULL DEFAULT nextval('runs_seq'),
    entity        VARCHAR NOT NULL,
    flow_run_id   VARCHAR,
    parameters    JSON,
    status        VARCHAR NOT NULL
                  CHECK (status IN ('running', 'completed', 'failed', 'dry_run')),
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

CREATE TABLE record_state (
    entity            VARCHAR NOT NULL,
    erp_key           VARCHAR NOT NULL,
    procore_id        BIGINT,
    -- Hash of the last payload successfully pushed: equal hash means nothing to send.
    payload_hash      VARCHAR,
    status            VARCHAR NOT NULL CHECK (status IN ('ok', 'warning', 'failed', 'blocked')),
    last_action       VARCHAR,
    last_message      VARCHAR,
    -- Consecutive failed attempts; back to 0 on the next success.
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_run_id       VARCHAR,
    source_updated_at TIMESTAMPTZ,
    updated_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (entity, erp_key)
);

CREATE SEQUENCE record_actions_seq START 1;

CREATE TABLE record_actions (
    action_id    BIGINT NOT NULL DEFAULT nextval('record_actions_seq'),
    run_id       VARCHAR NOT NULL,
    entity       VARCHAR NOT NULL,
    erp_key      VARCHAR NOT NULL,
    action       VARCHAR NOT NULL
                 CHECK (action IN ('create', 'update', 'skip', 'fail', 'blocked')),
    status       VARCHAR NOT NULL CHECK (status IN ('ok', 'warning', 'failed', 'blocked')),
    procore_id   BIGINT,
    message      VARCHAR,
    -- Which consecutive attempt this was (1 = first try since the last success).
    attempt      INTEGER NOT NULL,
    -- Hash of the payload this action tried to push (record_state keeps the last one pushed).
    payload_hash VARCHAR,
    -- Quoted: AT is a keyword in DuckDB (AT TIME ZONE).
    "at"         TIMESTAMPTZ NOT NULL
);

CREATE TABLE cursors (
    entity     VARCHAR PRIMARY KEY,
    value      TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
