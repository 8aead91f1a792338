-- 0007: the algorithm of a rate limit (issue 17): 'sliding_window' (log is
-- the window's bucket log, as before: every row written before this
-- migration) or 'token_bucket' (log is the bucket's level and time,
-- actors.LimitState.Row). Written behind like the window.
ALTER TABLE limits ADD COLUMN algorithm TEXT NOT NULL DEFAULT 'sliding_window';
