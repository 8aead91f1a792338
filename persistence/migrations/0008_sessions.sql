-- 0008: sessions (issue 16). A session lives ttl_ms after its last keepalive;
-- locks held under it have its id in session_id and are held while it lives.
-- A session's row is removed once it has ended (closed or expired) and every
-- lock of it has recorded its end. Times are unix ms.
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,        -- a UUID
    owner         TEXT NOT NULL,           -- the user's login
    ttl_ms        INTEGER NOT NULL,
    lock_delay_ms INTEGER NOT NULL DEFAULT 0,
    expires_at    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
) WITHOUT ROWID;

ALTER TABLE locks ADD COLUMN session_id TEXT NOT NULL DEFAULT '';
ALTER TABLE lock_log ADD COLUMN session_id TEXT NOT NULL DEFAULT '';
