-- 0007: record_state remembers why a record is not in Procore as the ERP has it, where the
-- status alone does not say what happens next.
--
-- failed_outside  a failed record whose cause is outside it (a parent missing from the ERP, a
--                 project the account may not write to, a batch refused in one answer or left
--                 unconfirmed, a 5xx after all retries): ordinary runs read it again, spaced
--                 by attempts (tasks/healing.py). False: its own content failed; it is read
--                 again only once it changes, or by a full or targeted resync.
-- parent_failed   a blocked record whose parent failed, or waits under a parent that did: it
--                 waits for an operator, and the run that leaves it says so.
--
-- Plain ADD COLUMN, as 0005; rows from before read as false (the store coalesces NULL).

ALTER TABLE record_state ADD COLUMN failed_outside BOOLEAN DEFAULT false;
ALTER TABLE record_state ADD COLUMN parent_failed BOOLEAN DEFAULT false;
