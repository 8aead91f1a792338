package persistence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// User ids. Every account has a stable user id, and everything a user owns
// (rate limits, flags, config keys and their history) or holds (locks) and
// every token names the account by it, never by its login: a login is only
// the account's current display name. A GitHub account can change its
// login and another account can then take the old one; the id stays with
// the account, so a rename carries the user's data along and an account
// that takes a freed login inherits nothing (issue 12, item 1).
//
// The forms (both backends, SQLite and etcd, use them):
//
//	gh:<GitHub id>   a GitHub account: GitHub never reuses an id
//	u:<n>            a local account (static token, dev, token create): n is
//	                 the store's user number, never reused (users are never
//	                 deleted)
//	orphan:<login>   made only by migration 0005 for rows whose login no
//	                 account had any more; nobody authenticates as one
//
// Logins (names.Login) contain no ':', so a user id is never mistaken for
// a login.
const (
	GitHubUIDPrefix = "gh:"
	LocalUIDPrefix  = "u:"
	OrphanUIDPrefix = "orphan:"
)

// GitHubUID is the user id of the GitHub account with id gh.
func GitHubUID(gh int64) string { return GitHubUIDPrefix + strconv.FormatInt(gh, 10) }

// LocalUID is the user id of the local account with user number n.
func LocalUID(n int64) string { return LocalUIDPrefix + strconv.FormatInt(n, 10) }

// UserUID is the user id of a stored user: by GitHub id when it has one,
// else by its user number.
func UserUID(n, gh int64) string {
	if gh != 0 {
		return GitHubUID(gh)
	}
	return LocalUID(n)
}

// ParseUID splits a user id into its GitHub id (gh:) or local user number
// (u:); ok is false for anything else (an orphan, a login, garbage).
func ParseUID(uid string) (gh, local int64, ok bool) {
	parse := func(s string) (int64, bool) {
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil && n > 0 && strconv.FormatInt(n, 10) == s
	}
	if s, found := strings.CutPrefix(uid, GitHubUIDPrefix); found {
		n, ok := parse(s)
		return n, 0, ok
	}
	if s, found := strings.CutPrefix(uid, LocalUIDPrefix); found {
		n, ok := parse(s)
		return 0, n, ok
	}
	return 0, 0, false
}

// nameLocalUsers gives the local users inserted in this transaction (uid
// still NULL) their user id. Every insert of a local user is followed by
// it, in the same transaction.
func nameLocalUsers(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `UPDATE users SET uid = '`+LocalUIDPrefix+`' || id WHERE uid IS NULL`)
	return err
}

// UserByLogin finds the account that has login now.
func (s *Store) UserByLogin(ctx context.Context, login string) (UserInfo, bool, error) {
	return s.db.userWhere(ctx, `login = ?`, login)
}

// UserByUID finds the account with user id uid (an orphan or malformed id
// finds none).
func (s *Store) UserByUID(ctx context.Context, uid string) (UserInfo, bool, error) {
	if _, _, ok := ParseUID(uid); !ok {
		return UserInfo{}, false, nil
	}
	return s.db.userWhere(ctx, `uid = ?`, uid)
}

func (db *DB) userWhere(ctx context.Context, cond string, arg any) (UserInfo, bool, error) {
	var u UserInfo
	var gh sql.NullInt64
	err := db.read.QueryRowContext(ctx, `SELECT id, uid, login, github_id, avatar_url FROM users WHERE `+cond, arg).
		Scan(&u.ID, &u.UID, &u.Login, &gh, &u.AvatarURL)
	if errors.Is(err, sql.ErrNoRows) {
		return u, false, nil
	}
	if err != nil {
		return u, false, fmt.Errorf("find user: %w", err)
	}
	u.GitHubID = gh.Int64
	return u, true, nil
}
