package main

// Who may call the server: the static tokens of `serve`'s flags, and the
// dev token `serve` creates when nothing else is configured (a Run step,
// docs/operations.md "Identity sources").

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/octostore/octostore/actors/names"
	"github.com/octostore/octostore/persistence"
)

// setupIdentity stores the static tokens (they replace the ones of the
// previous start) and, with no identity source at all, creates a dev user
// and token and prints it to m.Stdout: only on a loopback address, anywhere
// else it refuses to start.
func (m *Main) setupIdentity(addr net.Addr) error {
	cfg, now := &m.Config, m.Now()
	if err := m.Store.Apply(cfg.staticTokens(now)); err != nil {
		return fmt.Errorf("store static tokens: %w", err)
	}
	if len(cfg.StaticTokens) > 0 || cfg.AdminKey != "" || cfg.GitHub.Configured() {
		return nil
	}
	n, err := m.Store.CountTokens()
	if err != nil {
		return err
	}
	if n > 0 {
		return nil // tokens created earlier (dev, octostore token create, sign-in)
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

// parseStaticTokensFile reads one "user:token" per line, # comments
// (--static-tokens-file).
func parseStaticTokensFile(r io.Reader, into map[string]string) error {
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if err := addStatic(t, into); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	return sc.Err()
}

func addStatic(entry string, into map[string]string) error {
	user, tok, ok := strings.Cut(entry, ":")
	user, tok = strings.TrimSpace(user), strings.TrimSpace(tok)
	if !ok || user == "" || tok == "" {
		return errors.New(`static token entries must look like "user:token"`)
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
