package httpd

import (
	"context"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/persistence"
)

// Storage is what the server needs of the storage under the actors, besides
// the kinds' entry points: the health of writes, tokens, sign-in and the
// resource counts of /metrics. persistence.Store (SQLite, single-node mode)
// and etcdstore.Store (cluster mode, one per leader term) implement it.
type Storage interface {
	TokenStore
	// Healthy reports whether the last write batch committed (/health).
	Healthy() bool
	// Queued is the number of writes waiting for the writer.
	Queued() int
	// Rotate replaces a token by a new one of the same user and source
	// (persistence.ErrTokenGone when it no longer exists).
	Rotate(old [32]byte) (raw string, hash [32]byte, err error)
	// Revoke deletes a token.
	Revoke(hash [32]byte) error
	// SignIn creates or updates a GitHub user and issues a sign-in token,
	// in one transaction (persistence.Store.SignIn has the policy).
	SignIn(ctx context.Context, u persistence.GitHubUser, maxTokens int) (persistence.SignInResult, error)
	// CountOwned counts the resources of kind k per owner.
	CountOwned(k actors.Kind, fn func(owner string, n int)) error

	// Token administration (tokens_admin.go), each change one transaction
	// of the writer. ListTokens lists the stored tokens (of login, or
	// all), oldest first, never a secret.
	ListTokens(ctx context.Context, login string) ([]persistence.TokenInfo, error)
	// ListTokensPage reads one page of that listing and the count of the
	// whole listing (issue 18: every listing pages).
	ListTokensPage(ctx context.Context, q persistence.TokenPageQuery) (actors.Page[persistence.TokenInfo], error)
	// CreateToken creates a token of source for the account that has login
	// (a local user made for it when none has) and returns it once.
	CreateToken(login, source string) (raw string, info persistence.TokenInfo, err error)
	// RevokeTokens deletes the tokens sel selects and returns them:
	// persistence.ErrBadSelector, ErrTokenNotFound or ErrTokenAmbiguous
	// (nothing deleted) otherwise.
	RevokeTokens(ctx context.Context, sel persistence.RevokeSelector) ([]persistence.TokenInfo, error)
}

// TokenStore is what an Authenticator reads: tokens and accounts.
// persistence.Store and, in cluster mode, etcdstore.Reader (every node's,
// leader or not) implement it.
type TokenStore interface {
	// LookupToken finds the user of a token hash.
	LookupToken(hash [32]byte) (persistence.Principal, bool, error)
	// UserByUID finds the account of a stable user id
	// (persistence/identity.go); found is false when no account has it.
	UserByUID(ctx context.Context, uid string) (persistence.UserInfo, bool, error)
	// UserByLogin finds the account that has login now.
	UserByLogin(ctx context.Context, login string) (persistence.UserInfo, bool, error)
	// AuthEpoch changes whenever tokens change outside the server's own
	// writes; the token cache is dropped when it does.
	AuthEpoch() (int64, error)
}

var _ Storage = (*persistence.Store)(nil)
