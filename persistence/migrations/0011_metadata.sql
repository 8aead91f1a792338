-- 0011: metadata of a hold (issue 16): a string of at most 1,024 bytes the
-- holder gives on acquire (host, pid, job id), shown to every user. Cleared
-- when the hold ends.
ALTER TABLE locks ADD COLUMN metadata TEXT NOT NULL DEFAULT '';
ALTER TABLE lock_log ADD COLUMN metadata TEXT NOT NULL DEFAULT '';
ALTER TABLE semaphore_slots ADD COLUMN metadata TEXT NOT NULL DEFAULT '';
