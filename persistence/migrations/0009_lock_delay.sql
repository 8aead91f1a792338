-- 0009: lock-delay (issue 16). lock_delay_ms is the delay of the current hold
-- (the acquire's lock_delay_seconds, or its session's). When a hold is lost by
-- expiry, the freed row keeps who held it (delay_holder) and when it expired
-- (expires_at), and nobody is granted the lock before available_at (unix ms;
-- 0: no delay). A release or the next grant clears them.
ALTER TABLE locks ADD COLUMN lock_delay_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE locks ADD COLUMN available_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE locks ADD COLUMN delay_holder TEXT NOT NULL DEFAULT '';
ALTER TABLE lock_log ADD COLUMN lock_delay_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE lock_log ADD COLUMN available_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE lock_log ADD COLUMN delay_holder TEXT NOT NULL DEFAULT '';
