package httpd

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/actors/names"
	"github.com/octostore/octostore/persistence"
	"github.com/valyala/fasthttp"
)

// Token administration through the API, for the admin key only:
//
//	GET  /admin/tokens[?user=LOGIN]   the stored tokens, never a secret
//	POST /admin/tokens                {"user"}: a new token (source cli), shown once
//	POST /admin/tokens/revoke         {"fingerprint"} | {"user"[, "all_for_user"]}
//
// What `octostore token list|create|revoke --url` do. On a single node the
// same commands can also work on the database file (--db); in cluster mode
// there is no file, and the leader's writer must stay the only writer of
// the tokens in etcd, so the API is the way: any node forwards these to the
// leader like every request. Every change is one transaction of the
// store's writer; a revoked token leaves this server's token cache before
// the answer (its event streams end with the revoked event), and in a
// cluster every node's cache through its watch.

var errTokenAdminOnly = actors.NewError(actors.CodeForbidden, "token administration needs the admin key")

// tokenJSON is a stored token in the answers of /admin/tokens: the shape
// of `octostore token create|list --json` on a database too. Token only in
// a create's answer.
type tokenJSON struct {
	User        string `json:"user"`
	Source      string `json:"source"`
	CreatedAt   string `json:"created_at"` // as every time of the API: UTC, milliseconds
	Fingerprint string `json:"fingerprint"`
	Token       string `json:"token,omitempty"`
}

func tokenJSONOf(t persistence.TokenInfo) tokenJSON {
	return tokenJSON{User: t.Login, Source: t.Source, CreatedAt: t.CreatedAt.UTC().Format(timeLayout),
		Fingerprint: t.Fingerprint()}
}

func tokensJSON(ts []persistence.TokenInfo) []tokenJSON {
	out := make([]tokenJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, tokenJSONOf(t))
	}
	return out
}

// loginParam validates a login given by the admin (names.Login): 422
// naming where it came from.
func loginParam(where, login string) error {
	if !names.Login.Valid(login) {
		return invalid(where + " " + names.Login.Requirement())
	}
	return nil
}

// tokenAdminList is GET /admin/tokens: one page (paging.go) of the stored
// tokens, or ?user='s, oldest first then by fingerprint, with
// {"tokens","total","next_cursor"}.
func (s *Server) tokenAdminList(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	if !p.Admin {
		return errTokenAdminOnly
	}
	user := string(ctx.QueryArgs().Peek("user"))
	if ctx.QueryArgs().Has("user") {
		if err := loginParam("user", user); err != nil {
			return err
		}
	}
	q, err := listQuery(ctx)
	if err != nil {
		return err
	}
	tq := persistence.TokenPageQuery{Login: user, Limit: q.Limit}
	if q.AfterOwner != "" || q.AfterName != "" {
		pos, ok := tokenPosition(q.AfterOwner, q.AfterName)
		if !ok {
			return errListCursor
		}
		tq.After = &pos
	}
	reserved, err := s.pageBudget(q, tokenItemSize)
	if err != nil {
		return err
	}
	defer s.answers.release(reserved)
	pg, err := s.store.ListTokensPage(rq.ctx(), tq)
	if err != nil {
		return err
	}
	return writePage(ctx, "tokens", pg, tokenItemSize, true, tokenCursorOf, appendToken)
}

// tokenItemSize estimates a listed token's bytes (the answer budget).
const tokenItemSize = 160

// A token listing's cursor (paging.go's, opaque to clients) carries the
// last token's position: its creation time in Unix milliseconds as the
// "owner" and its hash in hex as the "name".
func tokenCursorOf(t *persistence.TokenInfo) (owner, name string) {
	return strconv.FormatInt(t.CreatedAt.UnixMilli(), 10), hex.EncodeToString(t.Hash[:])
}

// tokenPosition reads a position written by tokenCursorOf; ok is false for
// anything else (another listing's cursor included).
func tokenPosition(ms, hash string) (persistence.TokenPosition, bool) {
	var pos persistence.TokenPosition
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != ms || len(hash) != 2*len(pos.Hash) {
		return pos, false
	}
	if _, err := hex.Decode(pos.Hash[:], []byte(hash)); err != nil {
		return pos, false
	}
	pos.CreatedAt = time.UnixMilli(n).UTC()
	return pos, true
}

// appendToken renders a listed token as tokenJSON.
func appendToken(b []byte, t *persistence.TokenInfo) []byte {
	b = append(b, `{"user":`...)
	b = appendString(b, t.Login)
	b = append(b, `,"source":`...)
	b = appendString(b, t.Source)
	b = append(b, `,"created_at":"`...)
	b = t.CreatedAt.UTC().AppendFormat(b, timeLayout)
	b = append(b, `","fingerprint":"`...)
	b = append(b, t.Fingerprint()...)
	return append(b, `"}`...)
}

// tokenAdminCreate is POST /admin/tokens {"user"}: a new token of source
// cli for the account that has the login (a local user made for it when
// none has), answered 201 once, with Cache-Control: no-store. The log
// names it by fingerprint.
func (s *Server) tokenAdminCreate(ctx *fasthttp.RequestCtx, _ *request, p *Principal) error {
	if !p.Admin {
		return errTokenAdminOnly
	}
	var body struct {
		User field `json:"user"`
	}
	if err := decodeBody(ctx, &body); err != nil {
		return err
	}
	user, err := body.User.String("user")
	if err != nil {
		return err
	}
	if err := loginParam("user", user); err != nil {
		return err
	}
	raw, info, err := s.store.CreateToken(user, persistence.SourceCLI)
	if err != nil {
		return err
	}
	s.log.Info("token created by the admin", "user", user, "fingerprint", info.Fingerprint())
	out := tokenJSONOf(info)
	out.Token = raw
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeRaw(ctx, fasthttp.StatusCreated, b)
	return nil
}

// tokenAdminRevoke is POST /admin/tokens/revoke: the tokens a selector
// names (persistence.RevokeSelector), deleted in one transaction, answered
// {"revoked":[…]}. 404 when none matches, 409 (nothing revoked) when a
// fingerprint or a user without all_for_user matches several, 422 for a
// malformed selector.
func (s *Server) tokenAdminRevoke(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	if !p.Admin {
		return errTokenAdminOnly
	}
	var body struct {
		Fingerprint field `json:"fingerprint"`
		User        field `json:"user"`
		AllForUser  field `json:"all_for_user"`
	}
	if err := decodeBody(ctx, &body); err != nil {
		return err
	}
	var sel persistence.RevokeSelector
	var err error
	if body.Fingerprint.set() || body.Fingerprint.dup {
		if sel.Fingerprint, err = body.Fingerprint.String("fingerprint"); err != nil {
			return err
		}
	}
	if body.User.set() || body.User.dup {
		if sel.Login, err = body.User.String("user"); err != nil {
			return err
		}
		if err := loginParam("user", sel.Login); err != nil {
			return err
		}
	}
	if body.AllForUser.set() || body.AllForUser.dup {
		if sel.All, err = body.AllForUser.Bool("all_for_user"); err != nil {
			return err
		}
	}
	gone, err := s.store.RevokeTokens(rq.ctx(), sel)
	if err != nil {
		return selectorError(err)
	}
	for _, t := range gone {
		s.auth.Invalidate(t.Hash) // its streams end now; the cache forgets it
		s.log.Info("token revoked by the admin", "user", t.Login, "source", t.Source, "fingerprint", t.Fingerprint())
	}
	return writeJSON(ctx, struct {
		Revoked []tokenJSON `json:"revoked"`
	}{tokensJSON(gone)})
}

// selectorError keeps the detail of a refused selector in the answer (which
// tokens matched, by fingerprint: nothing secret), with its sentinel's code.
func selectorError(err error) error {
	for _, sentinel := range []error{persistence.ErrTokenNotFound, persistence.ErrTokenAmbiguous, persistence.ErrBadSelector} {
		if errors.Is(err, sentinel) {
			return actors.NewError(actors.AsError(sentinel).Code, err.Error())
		}
	}
	return err
}
