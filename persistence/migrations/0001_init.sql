-- 0001: users, tokens, locks, meta.
CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    login       TEXT NOT NULL UNIQUE,
    github_id   INTEGER UNIQUE,
    avatar_url  TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL            -- unix ms
);

-- Bearer tokens, stored only as SHA-256 of the raw token.
CREATE TABLE tokens (
    hash        BLOB PRIMARY KEY,           -- sha256(raw token)
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    source      TEXT NOT NULL,              -- static | dev | cli | oauth
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX tokens_user ON tokens(user_id);

-- One row per lock name ever granted. The row is never deleted: it keeps the
-- fencing token so that tokens never go backwards, even after a release.
-- holder = '' means free.
CREATE TABLE locks (
    name          TEXT PRIMARY KEY,
    holder        TEXT NOT NULL DEFAULT '',
    lease_id      TEXT NOT NULL DEFAULT '',
    fencing_token INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL DEFAULT 0,   -- unix ms; 0 when free
    acquired_at   INTEGER NOT NULL DEFAULT 0    -- unix ms of the grant
) WITHOUT ROWID;
CREATE INDEX locks_active ON locks(expires_at) WHERE holder <> '';

-- Small key/value facts: auth_epoch (bumped by out-of-process token changes).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO meta(key, value) VALUES ('auth_epoch', '0');
