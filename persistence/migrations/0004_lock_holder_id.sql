-- 0004: the holder id of a lock (issue 13: two processes of one user are two
-- holders). A lock is held by the pair (holder, holder_id); '' when the
-- acquire gave no holder id (the seed API's per-user re-entrance), and for
-- every row written before this migration.
ALTER TABLE locks ADD COLUMN holder_id TEXT NOT NULL DEFAULT '';
ALTER TABLE lock_log ADD COLUMN holder_id TEXT NOT NULL DEFAULT '';
