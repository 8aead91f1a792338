package main

// Who may call the server: the static tokens of `serve`'s flags, and the
// dev token `serve` creates when nothing else is configured (a Run step,
// docs/operations.md "Identity sources").

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/actors/names"
	"github.com/octostore/octostore/persistence"
)

// setupIdentity stores the static tokens (they replace the ones of the
// previous start, users included: a token moved to another user in the
// configuration authenticates as that user from now on) and logs what
// changed, by fingerprint. It refuses a non-loopback address while the
// dev user's token is valid. With no identity source at all, it creates a
// dev user and token and prints it to m.Stdout: only on a loopback
// address, anywhere else it refuses to start.
func (m *Main) setupIdentity(addr net.Addr) error {
	cfg, now := &m.Config, m.Now()
	if err := syncStaticTokens(m.Store, cfg.staticTokens(now), m.Logger); err != nil {
		return err
	}
	if err := m.checkSecretStrength(addr); err != nil {
		return err
	}
	if !isLoopback(addr) {
		if err := refuseDevToken(addr, m.DB.ListTokens, "--db "+m.Config.DBPath); err != nil {
			return err
		}
	}
	if len(cfg.StaticTokens) > 0 || cfg.AdminKey != "" || cfg.GitHub.Configured() {
		return nil
	}
	n, err := m.Store.CountTokens()
	if err != nil {
		return err
	}
	if n > 0 {
		return nil // tokens created earlier (octostore token create, sign-in; a dev token only on loopback)
	}
	if !isLoopback(addr) {
		return errors.New("no identity source configured and the address is not loopback: " +
			"set --static-tokens (OCTOSTORE_STATIC_TOKENS), --static-tokens-file, GitHub OAuth (--github-client-id/--github-client-secret), " +
			"or create a token with `octostore token create --db PATH --user NAME`")
	}
	tok := persistence.NewToken()
	if err := m.Store.Apply(persistence.IssueToken{Login: "dev", Hash: persistence.HashToken(tok), Source: persistence.SourceDev, Now: now}); err != nil {
		return fmt.Errorf("create dev token: %w", err)
	}
	fmt.Fprintf(m.Stdout, "no identity source configured: created user \"dev\" with token (shown once, stored hashed):\n  %s\n", tok)
	fmt.Fprintf(m.Stdout, "try:\n  curl -s -X POST -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"ttl_seconds\":30}' http://%s/locks/demo/acquire\n", tok, addr)
	return nil
}

// staticTokens is the write that makes the stored static tokens exactly
// the configured ones (by hash), at every start and, in cluster mode, at
// every term a node wins.
func (cfg *ServeConfig) staticTokens(now time.Time) persistence.SyncStaticTokens {
	static := map[[32]byte]string{}
	for tok, login := range cfg.StaticTokens {
		static[persistence.HashToken(tok)] = login
	}
	return persistence.SyncStaticTokens{Tokens: static, Now: now}
}

// syncStaticTokens applies sync (ServeConfig.staticTokens) to store and
// logs what changed, by fingerprint and user, never the token: at a single
// node's start, and in cluster mode at each term a node wins (the node that
// wins applies its own configuration: every node is given the same).
func syncStaticTokens(store interface{ Apply(actors.Mutation) error }, sync persistence.SyncStaticTokens, log *slog.Logger) error {
	var changes []persistence.StaticTokenChange
	sync.Changes = &changes
	if err := store.Apply(sync); err != nil {
		return fmt.Errorf("store static tokens: %w", err)
	}
	for _, c := range changes {
		switch {
		case c.Previous == "":
			log.Info("static token added", "user", c.Login, "fingerprint", c.Fingerprint)
		case c.Login == "":
			log.Info("static token removed: no longer configured", "user", c.Previous, "fingerprint", c.Fingerprint)
		default:
			log.Warn("static token moved to another user: it now authenticates as the configured one",
				"fingerprint", c.Fingerprint, "from", c.Previous, "to", c.Login)
		}
	}
	return nil
}

// refuseDevToken refuses to serve on addr (not loopback) while the tokens
// that list reads hold a dev token: it was printed to a terminal for trying
// octostore on one machine, and must not open the database to the network
// (issue 12, item 3). where names the store in the commands the message
// suggests ("--db PATH", or "--etcd-endpoints URL" in cluster mode).
func refuseDevToken(addr net.Addr, list func(ctx context.Context, login string) ([]persistence.TokenInfo, error), where string) error {
	toks, err := list(context.Background(), "")
	if err != nil {
		return err
	}
	var fps []string
	for _, t := range toks {
		if t.Source == persistence.SourceDev {
			fps = append(fps, t.Fingerprint())
		}
	}
	if len(fps) == 0 {
		return nil
	}
	return fmt.Errorf("refusing to serve on %s: the tokens of %s hold the dev token (fingerprint %s) that serve created for trying octostore on loopback, "+
		"and that token would be valid on this public address. Revoke it first: "+
		"`octostore token revoke %s --fingerprint %s` (its user's resources stay), "+
		"and configure an identity source: --static-tokens / --static-tokens-file, GitHub OAuth (--github-client-id, --github-client-secret, --github-redirect-url), "+
		"or `octostore token create %s --user NAME`",
		addr, where, strings.Join(fps, ", "), where, fps[0], where)
}

// MinSecretBytes is the shortest admin key or static token served on a
// non-loopback address without --allow-weak-tokens: 16 bytes (128 bits if
// random; `openssl rand -base64 32` gives 44 characters).
const MinSecretBytes = 16

// checkSecretStrength refuses an admin key or static token shorter than
// MinSecretBytes on a non-loopback address unless --allow-weak-tokens, and
// warns about each on loopback (where tests and trials use short ones): a
// short secret falls to guessing, throttle or not (issue 12, item 10). The
// messages name the credential by user or role, never quote it.
func (m *Main) checkSecretStrength(addr net.Addr) error {
	cfg := &m.Config
	var weak []string
	if k := len(cfg.AdminKey); k > 0 && k < MinSecretBytes {
		weak = append(weak, fmt.Sprintf("the admin key (%d bytes)", k))
	}
	var users []string
	for tok, login := range cfg.StaticTokens {
		if len(tok) < MinSecretBytes {
			users = append(users, fmt.Sprintf("the static token of %s (%d bytes)", login, len(tok)))
		}
	}
	sort.Strings(users)
	weak = append(weak, users...)
	if len(weak) == 0 {
		return nil
	}
	what := strings.Join(weak, ", ")
	if isLoopback(addr) || cfg.AllowWeakTokens {
		m.Logger.Warn(fmt.Sprintf("WEAK CREDENTIALS: %s shorter than %d bytes can be guessed; use long random values (openssl rand -base64 32)",
			what, MinSecretBytes), "addr", addr.String(), "allowed_by", allowedBy(isLoopback(addr)))
		return nil
	}
	return fmt.Errorf("refusing to serve on %s with %s: admin keys and static tokens must be at least %d bytes on a non-loopback address, "+
		"or they can be guessed; use long random values (openssl rand -base64 32), or pass --allow-weak-tokens (OCTOSTORE_ALLOW_WEAK_TOKENS) to serve them anyway",
		addr, what, MinSecretBytes)
}

func allowedBy(loopback bool) string {
	if loopback {
		return "loopback address"
	}
	return "--allow-weak-tokens"
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// parseStaticTokens parses "alice:tokA,bob:tokB" (--static-tokens) into
// token → login.
func parseStaticTokens(s string, into map[string]string) error {
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if err := addStatic(part, into); err != nil {
			return err
		}
	}
	return nil
}

// parseStaticTokensFile reads one "user:token" per line
// (--static-tokens-file). A # at the start of a line, or after a space or
// tab, starts a comment that runs to the end of the line ("ci:tok  # CI"
// is the token "tok"); a # inside a token ("tok#1") is part of it.
func parseStaticTokensFile(r io.Reader, into map[string]string) error {
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		t := sc.Text()
		for i := strings.IndexByte(t, '#'); i >= 0; i = nextHash(t, i) {
			if i == 0 || t[i-1] == ' ' || t[i-1] == '\t' {
				t = t[:i]
				break
			}
		}
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if err := addStatic(t, into); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	return sc.Err()
}

// nextHash is the index of the next '#' of t after i, or -1.
func nextHash(t string, i int) int {
	if j := strings.IndexByte(t[i+1:], '#'); j >= 0 {
		return i + 1 + j
	}
	return -1
}

func addStatic(entry string, into map[string]string) error {
	user, tok, ok := strings.Cut(entry, ":")
	user, tok = strings.TrimSpace(user), strings.TrimSpace(tok)
	if !ok || user == "" || tok == "" {
		return errors.New(`static token entries must look like "user:token"`)
	}
	if strings.ContainsFunc(tok, unicode.IsSpace) {
		return fmt.Errorf("the static token of %q holds white space: a token is one word (a comment starts with \" #\")", user)
	}
	if !names.Login.Valid(user) {
		return fmt.Errorf("static token user %q: %s", user, names.Login.Requirement())
	}
	if prev, dup := into[tok]; dup && prev != user {
		return fmt.Errorf("the same static token is given for %q and %q", prev, user)
	}
	into[tok] = user
	return nil
}
