package client

import (
	"context"
	"errors"
	"net/url"
	"time"
)

// Token administration, for the admin key (a user token gets ErrForbidden):
// GET /admin/tokens, POST /admin/tokens and POST /admin/tokens/revoke. On a
// cluster, any node serves them (the leader writes).

// StoredToken is a stored token as the server lists it: never the token
// itself, except in CreateToken's answer (Token, shown that once).
type StoredToken struct {
	User        string    `json:"user"`   // the login of its account
	Source      string    `json:"source"` // static, dev, cli or oauth
	CreatedAt   time.Time `json:"created_at"`
	Fingerprint string    `json:"fingerprint"` // the first 8 hex digits of its SHA-256
	Token       string    `json:"token,omitempty"`
}

// TokenSelector names the tokens RevokeTokens deletes: a Fingerprint (8 to
// 64 hex digits of the token's SHA-256), or a User whose only token it is,
// or all of whose tokens with AllForUser. Exactly one of Fingerprint and
// User.
type TokenSelector struct {
	Fingerprint string `json:"fingerprint,omitempty"`
	User        string `json:"user,omitempty"`
	AllForUser  bool   `json:"all_for_user,omitempty"`
}

// ListTokens lists the stored tokens, or user's when user is not empty,
// oldest first, following the pages (paging.go; retried: a read).
func (c *Client) ListTokens(ctx context.Context, user string) ([]StoredToken, error) {
	return listAll[StoredToken](ctx, c, tokensPath(user), "tokens")
}

// ListTokensPage reads one page of the stored tokens (user's when user is
// not empty), oldest first.
func (c *Client) ListTokensPage(ctx context.Context, user string, o ListOptions) (*Page[StoredToken], error) {
	return listPage[StoredToken](ctx, c, tokensPath(user), "tokens", o)
}

func tokensPath(user string) string {
	if user == "" {
		return "/admin/tokens"
	}
	return "/admin/tokens?user=" + url.QueryEscape(user)
}

// CreateToken creates a bearer token for the account that has the login
// user (a local user is made for it when none has) and returns it, with
// the token in Token. Not retried once sent: a replay would create a
// second token.
func (c *Client) CreateToken(ctx context.Context, user string) (StoredToken, error) {
	var out StoredToken
	if err := c.call(ctx, "POST", "/admin/tokens", map[string]string{"user": user}, false, &out); err != nil {
		return StoredToken{}, err
	}
	if out.Token == "" {
		return StoredToken{}, errors.New("octostore: create token: empty token in response")
	}
	return out, nil
}

// RevokeTokens deletes the tokens sel names and returns them. ErrNotFound
// when none matches; ErrConflict (nothing revoked, the message lists them)
// when a fingerprint, or a user without AllForUser, matches several;
// ErrValidation for a malformed selector. Not retried once sent: a replay
// of a revocation that worked would answer ErrNotFound.
func (c *Client) RevokeTokens(ctx context.Context, sel TokenSelector) ([]StoredToken, error) {
	var out struct {
		Revoked []StoredToken `json:"revoked"`
	}
	if err := c.call(ctx, "POST", "/admin/tokens/revoke", sel, false, &out); err != nil {
		return nil, err
	}
	return out.Revoked, nil
}
