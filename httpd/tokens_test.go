package httpd_test

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/httpd/apitest"
)

// TestTokenRotateRefusedForConfiguredCredentials: static tokens and the admin
// key come from the configuration; rotating or revoking them through the API
// is a 409 and changes nothing.
func TestTokenRotateRefusedForConfiguredCredentials(t *testing.T) {
	e := startAuthApp(t, nil, nil)
	static := e.staticToken("alice")
	for _, tc := range []struct {
		name string
		tok  string
		hdr  []string
		want string
	}{
		{"static token", static, nil, "static-tokens"},
		{"admin key as bearer", e.adminKey, nil, "admin-key"},
		{"admin key as X-Admin-Key", "", []string{"X-Admin-Key", e.adminKey}, "admin-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, m := range []struct{ method, path string }{{"POST", "/auth/token/rotate"}, {"DELETE", "/auth/token"}} {
				r := authCall(t, m.method, e.app.URL()+m.path, tc.tok, "", tc.hdr...)
				if r.status != http.StatusConflict || !strings.Contains(r.errMsg(t), tc.want) {
					t.Fatalf("%s %s: %d %s, want 409 naming %s", m.method, m.path, r.status, r.body, tc.want)
				}
			}
		})
	}
	if st := e.locksStatus(t, static); st != http.StatusOK {
		t.Fatalf("the static token after refused rotate/revoke: %d", st)
	}
	if r := authCall(t, "POST", e.app.URL()+"/auth/token/rotate", "", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("rotate without a token: %d, want 401", r.status)
	}
}

// TestTokenRotateUnderLoad: while other requests keep using a token, once
// the rotation has answered, the old token is refused on every request
// (no lookup that raced the rotation may put it back into the cache).
func TestTokenRotateUnderLoad(t *testing.T) {
	gh := newFakeGitHub(t)
	// The old tokens are tried thousands of times: no failure throttle
	// (TestAuthFailuresAreThrottled), so that each answer says whether the
	// token itself is accepted.
	e := startAuthApp(t, gh, func(o *httpd.TestOptions) { o.Server.AuthFailureBurst = -1 })
	tok := e.signIn(t)
	for round := 0; round < 5; round++ {
		old := tok
		var stop atomic.Bool
		var wg sync.WaitGroup
		hc := apitest.Client(t, authBrowser) // checked against docs/openapi.yaml
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					req, _ := http.NewRequest("GET", e.app.URL()+"/locks", nil)
					req.Header.Set("Authorization", "Bearer "+old)
					if resp, err := hc.Do(req); err == nil {
						resp.Body.Close()
					}
				}
			}()
		}
		r := authCall(t, "POST", e.app.URL()+"/auth/token/rotate", old, "")
		if r.status != http.StatusOK {
			t.Fatalf("rotate: %d %s", r.status, r.body)
		}
		tok, _ = r.json(t)["token"].(string)
		for i := 0; i < 20; i++ {
			if st := e.locksStatus(t, old); st != http.StatusUnauthorized {
				t.Fatalf("round %d: old token accepted (%d) after the rotation answered", round, st)
			}
		}
		stop.Store(true)
		wg.Wait()
		if st := e.locksStatus(t, old); st != http.StatusUnauthorized {
			t.Fatalf("round %d: old token accepted after the load stopped", round)
		}
		if st := e.locksStatus(t, tok); st != http.StatusOK {
			t.Fatalf("round %d: new token refused: %d", round, st)
		}
	}
}

// TestAdminKey: the admin principal sees everyone's locks and may release
// any, but never acquires in its own namespace; a wrong key is a 401 that is
// logged without the key.
func TestAdminKey(t *testing.T) {
	e := startAuthApp(t, nil, nil)
	alice := e.staticToken("alice")
	if r := authCall(t, "POST", e.app.URL()+"/locks/a1/acquire", alice, `{"ttl_seconds":60}`); r.status != 200 {
		t.Fatalf("acquire: %d %s", r.status, r.body)
	}
	for _, hdr := range [][]string{{"Authorization", "Bearer " + e.adminKey}, {"X-Admin-Key", e.adminKey}} {
		r := authCall(t, "GET", e.app.URL()+"/locks", "", "", hdr...)
		if r.status != 200 || !bytes.Contains(r.body, []byte(`"holder":"alice"`)) {
			t.Fatalf("admin (%s) lists all locks: %d %s", hdr[0], r.status, r.body)
		}
		r = authCall(t, "POST", e.app.URL()+"/locks/admin-owned/acquire", "", `{"ttl_seconds":60}`, hdr...)
		if r.status != http.StatusForbidden {
			t.Fatalf("admin (%s) acquires a lock: %d %s, want 403", hdr[0], r.status, r.body)
		}
	}
	if r := authCall(t, "POST", e.app.URL()+"/locks/a1/release", "", `{}`, "X-Admin-Key", e.adminKey); r.status != 200 {
		t.Fatalf("admin releases alice's lock: %d %s", r.status, r.body)
	}
	if r := authCall(t, "GET", e.app.URL()+"/locks/a1", alice, ""); !bytes.Contains(r.body, []byte(`"available"`)) {
		t.Fatalf("after the admin release: %s", r.body)
	}

	wrong := "wrong-admin-key-" + authRandHex(8)
	for _, hdr := range [][]string{{"X-Admin-Key", wrong}, {"X-Admin-Key", wrong, "Authorization", "Bearer " + alice}} {
		r := authCall(t, "GET", e.app.URL()+"/locks", "", "", hdr...)
		if r.status != http.StatusUnauthorized {
			t.Fatalf("wrong X-Admin-Key: %d %s, want 401 (even with a valid bearer)", r.status, r.body)
		}
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "rejected X-Admin-Key") {
		t.Fatalf("a wrong X-Admin-Key is not logged:\n%s", logs)
	}
	if strings.Contains(logs, wrong) || strings.Contains(logs, e.adminKey) || strings.Contains(logs, alice) {
		t.Fatalf("the log holds a key or token:\n%s", logs)
	}
}
