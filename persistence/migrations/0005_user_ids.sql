-- 0005: every account gets a stable user id, and everything a user owns or
-- holds names that id instead of the login (issue 12, item 1). A login is a
-- display name: a GitHub account can change it, and another account can
-- then take the old one; an id never moves to another account.
--
--   gh:<GitHub id>   a GitHub account (GitHub never reuses an id)
--   u:<users.id>     a local account (static token, dev, token create);
--                    users are never deleted, so an id is never reused
--   orphan:<login>   only made here: rows owned by a login that no account
--                    has any more (a GitHub account renamed before this
--                    migration left its resources under its old login).
--                    Nobody can authenticate as an orphan, so no account
--                    that takes that login later inherits them; the admin
--                    key still lists them.
--
-- users.uid is set by the code for new users (persistence/identity.go);
-- it is NULL only between a local user's insert and the update that names
-- it, inside one transaction.
ALTER TABLE users ADD COLUMN uid TEXT;
UPDATE users SET uid = CASE WHEN github_id IS NOT NULL THEN 'gh:' || github_id ELSE 'u:' || id END;
CREATE UNIQUE INDEX users_uid ON users(uid);

-- login → uid for every login found in an owner or holder column.
CREATE TEMP TABLE owner_ids (login TEXT PRIMARY KEY, uid TEXT NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO owner_ids(login, uid)
    SELECT owner, COALESCE((SELECT uid FROM users WHERE users.login = o.owner), 'orphan:' || owner)
    FROM (SELECT owner FROM limits UNION SELECT owner FROM flags
          UNION SELECT owner FROM config_keys UNION SELECT owner FROM config_versions
          UNION SELECT holder FROM locks WHERE holder <> ''
          UNION SELECT holder FROM lock_log WHERE holder <> '') AS o;

UPDATE limits          SET owner  = (SELECT uid FROM owner_ids WHERE login = limits.owner);
UPDATE flags           SET owner  = (SELECT uid FROM owner_ids WHERE login = flags.owner);
UPDATE config_keys     SET owner  = (SELECT uid FROM owner_ids WHERE login = config_keys.owner);
UPDATE config_versions SET owner  = (SELECT uid FROM owner_ids WHERE login = config_versions.owner);
UPDATE locks           SET holder = (SELECT uid FROM owner_ids WHERE login = locks.holder) WHERE holder <> '';
UPDATE lock_log        SET holder = (SELECT uid FROM owner_ids WHERE login = lock_log.holder) WHERE holder <> '';
DROP TABLE owner_ids;
