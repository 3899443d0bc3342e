-- 0005: record_state remembers the payload Procore refused. A record whose last attempt Procore
-- refused (a per-item sync error, 400/422, a 409 on a taken number) with the same payload as now
-- is not sent again by ordinary runs: Procore would refuse it again. payload_hash keeps meaning
-- "the last payload that landed"; rejected_hash is the refused one, cleared by the next outcome
-- that is not a refusal. ADD COLUMN works on a table with a primary key (checked on DuckDB 1.1.3
-- and 2.0.1), so no rebuild as in 0003; the views name their columns and need no change.

ALTER TABLE record_state ADD COLUMN rejected_hash VARCHAR;
