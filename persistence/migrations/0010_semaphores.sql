-- 0010: semaphores (issue 16). One row per semaphore ever granted: its limit
-- (the one its holders use) and the last fencing token handed out, kept when
-- its slots are gone so that tokens never go backwards. One row per held slot.
-- Times are unix ms.
CREATE TABLE semaphores (
    name          TEXT PRIMARY KEY,
    max_holders   INTEGER NOT NULL,     -- the limit
    fencing_token INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE semaphore_slots (
    name          TEXT NOT NULL,
    lease_id      TEXT NOT NULL,
    holder        TEXT NOT NULL,
    holder_id     TEXT NOT NULL DEFAULT '',
    fencing_token INTEGER NOT NULL,
    session_id    TEXT NOT NULL DEFAULT '',
    expires_at    INTEGER NOT NULL,
    acquired_at   INTEGER NOT NULL,
    PRIMARY KEY (name, lease_id)
) WITHOUT ROWID;
