-- 0004: Procore ids become text. Core Procore ids are integers, but Resource Planning
-- (workforce-planning v2) names people and projects by UUID. The store keeps both as text and
-- hands integer-looking ids back as integers, so the rest of the code sees the ids it always did.

ALTER TABLE record_state ALTER procore_id TYPE VARCHAR;
ALTER TABLE record_actions ALTER procore_id TYPE VARCHAR;
