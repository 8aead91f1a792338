-- 0003: the lock journal. Lock writes are appended here (they share the
-- rightmost pages, so a commit of N lock writes dirties a few pages instead
-- of N random leaf pages of `locks`); the writer folds the journal into
-- `locks` in bulk, and at every start. See persistence/locklog.go.
CREATE TABLE lock_log (
    seq           INTEGER PRIMARY KEY,       -- rowid: appends go to the end
    name          TEXT NOT NULL,
    holder        TEXT NOT NULL,
    lease_id      TEXT NOT NULL,
    fencing_token INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    acquired_at   INTEGER NOT NULL
);
