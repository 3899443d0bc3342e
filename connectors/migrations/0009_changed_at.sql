-- 0009: record_state remembers when what a child sees of a record last changed.
--
-- changed_at   when the record's Procore id, status, message or parent_failed last changed
--              (updated_at moves whenever a run records the record, also when nothing changed).
--              A blocked record waits only on its parents' state: a run reads it again only
--              when a parent's changed_at is no earlier than the start of the run that last
--              tried it (StateStore.blocked_since_parents_changed).
--
-- Rows from before take their updated_at: a blocked record is read again once, as before.

ALTER TABLE record_state ADD COLUMN changed_at TIMESTAMPTZ;
UPDATE record_state SET changed_at = updated_at;
