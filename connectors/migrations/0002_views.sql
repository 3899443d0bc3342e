-- 0002: views for operators (DuckDB CLI, psql, notebooks, report queries). Read-only conveniences;
-- the application itself reads through connectors/state.py. Written in SQL that DuckDB and
-- PostgreSQL both accept (DISTINCT ON, not DuckDB's QUALIFY), as every migration is.

-- The newest run of each entity: "is vendors green?"
CREATE VIEW v_last_run_per_entity AS
SELECT DISTINCT ON (entity) *
FROM runs
ORDER BY entity, started_at DESC, seq DESC;

-- Records that currently need attention, worst first (most consecutive failures).
CREATE VIEW v_failed_records AS
SELECT entity, erp_key, status, last_action, last_message, attempts, procore_id,
       last_run_id, source_updated_at, updated_at
FROM record_state
WHERE status IN ('failed', 'blocked')
ORDER BY attempts DESC, entity, erp_key;

-- Every action with the flow run it belongs to, newest first.
CREATE VIEW v_record_history AS
SELECT a.action_id, a."at", a.entity, a.erp_key, a.action, a.status, a.attempt, a.procore_id,
       a.message, a.payload_hash, a.run_id, r.flow_run_id, r.status AS run_status
FROM record_actions AS a
LEFT JOIN runs AS r USING (run_id)
ORDER BY a."at" DESC, a.action_id DESC;
