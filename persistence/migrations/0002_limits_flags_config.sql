-- 0002: rate limits, feature flags and versioned config. Every row belongs to
-- an owner (the user's login): alice's flag "beta" and bob's are different
-- rows. Times are unix ms.

-- One row per rate limit that has been checked and not reset. log is the
-- sliding window's bucket log (actors.SlidingWindow.AppendBinary, < 1 KiB).
-- Written behind: a crash can lose the counts of the last batch.
CREATE TABLE limits (
    owner          TEXT NOT NULL,
    name           TEXT NOT NULL,
    max_requests   INTEGER NOT NULL,
    window_seconds INTEGER NOT NULL,
    log            BLOB NOT NULL,
    updated_at     INTEGER NOT NULL,        -- newest counted check
    PRIMARY KEY (owner, name)
) WITHOUT ROWID;

CREATE TABLE flags (
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL,
    enabled     INTEGER NOT NULL,           -- 0 | 1
    percentage  INTEGER,                    -- 0..100; NULL: no rollout percentage
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (owner, name)
) WITHOUT ROWID;

-- One row per config key ever written. A deleted key keeps its row with
-- deleted = 1 and its last version, so that a re-created key continues the
-- numbering and a (key, version) pair never names two values.
CREATE TABLE config_keys (
    owner       TEXT NOT NULL,
    key         TEXT NOT NULL,
    version     INTEGER NOT NULL,           -- current (or, when deleted, last) version
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    deleted     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, key)
) WITHOUT ROWID;

-- The retained versions of each key (the newest --config-history). value is
-- the JSON exactly as the client sent it (up to 100 KiB, so a rowid table:
-- large rows do not belong in a WITHOUT ROWID b-tree).
CREATE TABLE config_versions (
    owner       TEXT NOT NULL,
    key         TEXT NOT NULL,
    version     INTEGER NOT NULL,
    value       BLOB NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    UNIQUE (owner, key, version)
);
