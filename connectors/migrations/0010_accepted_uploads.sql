-- 0010: each table's accepted upload, where every host of a shared state reads it.
--
-- An upload (a CSV template from a folder or SFTP drop) is the whole truth of its table once a
-- run has synced it; later runs and child entities read that accepted copy until the next one.
-- With the state on PostgreSQL, workers on several hosts take turns at a table's uploads, so the
-- accepted copy lives here, not in one host's folder (connectors/sources.py, SharedStaging).
-- A DuckDB state (one host) keeps its accepted copies as files: the table stays empty there.
--
-- table_name   the template's table (suppliers, resource_people...)
-- content      the file's bytes as uploaded (its encoding is the reader's to detect)
-- accepted_at  when the run that synced it accepted it
-- source       where it came from, for the operator: the drop and the file

CREATE TABLE accepted_uploads (
    table_name  VARCHAR PRIMARY KEY,
    content     BYTEA NOT NULL,
    accepted_at TIMESTAMPTZ NOT NULL,
    source      VARCHAR NOT NULL
);
