-- 0004: Procore ids become text. Core Procore ids are integers, but Resource Planning
-- (workforce-planning v2) names people and projects by UUID. The store keeps both as text and
-- hands integer-looking ids back as integers, so the rest of the code sees the ids it always did.
--
-- PostgreSQL refuses to change the type of a column a view reads, so the two views that read
-- procore_id are dropped and made again around the change, as they were (DuckDB needs no such
-- care, and takes the same statements).

DROP VIEW v_failed_records;
DROP VIEW v_record_history;

ALTER TABLE record_state ALTER procore_id TYPE VARCHAR;
ALTER TABLE record_actions ALTER procore_id TYPE VARCHAR;

CREATE VIEW v_failed_records AS
SELECT entity, erp_key, status, last_action, last_message, attempts, procore_id,
       last_run_id, source_updated_at, updated_at
FROM record_state
WHERE status IN ('failed', 'blocked')
ORDER BY attempts DESC, entity, erp_key;

CREATE VIEW v_record_history AS
SELECT a.action_id, a."at", a.entity, a.erp_key, a.action, a.status, a.attempt, a.procore_id,
       a.message, a.payload_hash, a.run_id, r.flow_run_id, r.status AS run_status
FROM record_actions AS a
LEFT JOIN runs AS r USING (run_id)
ORDER BY a."at" DESC, a.action_id DESC;
