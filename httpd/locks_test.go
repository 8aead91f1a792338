package httpd_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/httpd/apitest"
)

// lkStart starts a real server on 127.0.0.1:0 with a temp database.
func lkStart(t *testing.T, dbPath string) *httpd.TestServer {
	t.Helper()
	if dbPath == "" {
		dbPath = filepath.Join(t.TempDir(), "locks.db")
	}
	return httpd.MustStartTestServer(t, httpd.TestOptions{
		DBPath:       dbPath,
		StaticTokens: map[string]string{"tokA": "alice", "tokB": "bob"},
		AdminKey:     "admin-secret", Server: httpd.ServerConfig{MaxBodyBytes: 4096},
	})
}

type lkResp struct {
	status int
	body   map[string]any
	raw    string
	header http.Header
}

func lkDo(t *testing.T, a *httpd.TestServer, method, path, token, body string, hdr ...string) lkResp {
	t.Helper()
	res, b := httpd.HTTPCall(t, apitest.Client(t, http.DefaultClient), method, a.URL()+path, token, body, hdr...)
	r := lkResp{status: res.StatusCode, raw: string(b), header: res.Header}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &r.body); err != nil {
			t.Fatalf("%s %s: invalid JSON %q: %v", method, path, b, err)
		}
	}
	return r
}

func (r lkResp) expect(t *testing.T, status int) lkResp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

func TestLockLifecycleHTTP(t *testing.T) {
	a := lkStart(t, "")
	defer a.Close()

	r := lkDo(t, a, "POST", "/locks/job-1/acquire", "tokA", `{"ttl_seconds":60}`).expect(t, 200)
	if r.body["status"] != "acquired" || r.body["holder"] != "alice" || r.body["fencing_token"].(float64) != 1 || r.body["name"] != "job-1" {
		t.Fatalf("acquire: %v", r.body)
	}
	lease := r.body["lease_id"].(string)
	exp1, err := time.Parse(time.RFC3339, r.body["expires_at"].(string))
	if err != nil || time.Until(exp1) < 55*time.Second || time.Until(exp1) > 61*time.Second {
		t.Fatalf("expires_at %v (%v)", r.body["expires_at"], err)
	}

	// held by the caller: same lease and token
	r = lkDo(t, a, "POST", "/locks/job-1/acquire", "tokA", `{"ttl_seconds":120}`).expect(t, 200)
	if r.body["status"] != "held" || r.body["lease_id"] != lease || r.body["fencing_token"].(float64) != 1 {
		t.Fatalf("re-acquire: %v", r.body)
	}
	// held by another user: 409 with the holder
	r = lkDo(t, a, "POST", "/locks/job-1/acquire", "tokB", `{"ttl_seconds":60}`).expect(t, 409)
	lk, _ := r.body["lock"].(map[string]any)
	if r.body["error"] == nil || lk["holder"] != "alice" || lk["name"] != "job-1" || lk["expires_at"] == nil {
		t.Fatalf("conflict: %v", r.body)
	}
	// status: the lease id only to the holder (and admin)
	r = lkDo(t, a, "GET", "/locks/job-1", "tokB", "").expect(t, 200)
	if _, has := r.body["lease_id"]; has || r.body["holder"] != "alice" || r.body["status"] != "held" {
		t.Fatalf("status for bob shows %v", r.body)
	}
	r = lkDo(t, a, "GET", "/locks/job-1", "tokA", "").expect(t, 200)
	if r.body["lease_id"] != lease {
		t.Fatalf("status for alice: %v", r.body)
	}
	// renew
	r = lkDo(t, a, "POST", "/locks/job-1/renew", "tokA", `{"lease_id":"`+lease+`","ttl_seconds":5}`).expect(t, 200)
	if r.body["status"] != "held" || r.body["fencing_token"].(float64) != 1 {
		t.Fatalf("renew: %v", r.body)
	}
	// bob cannot renew or release alice's lock even with the lease id
	lkDo(t, a, "POST", "/locks/job-1/renew", "tokB", `{"lease_id":"`+lease+`","ttl_seconds":5}`).expect(t, 404)
	r = lkDo(t, a, "POST", "/locks/job-1/release", "tokB", `{"lease_id":"`+lease+`"}`).expect(t, 404)
	if r.body["error"] != "Lock not found or not owned by caller" {
		t.Fatalf("404 body: %v", r.body)
	}
	// list: alice sees it, bob does not
	r = lkDo(t, a, "GET", "/locks", "tokA", "").expect(t, 200)
	if r.body["total"].(float64) != 1 || r.body["locks"].([]any)[0].(map[string]any)["lease_id"] != lease {
		t.Fatalf("alice's list: %v", r.body)
	}
	r = lkDo(t, a, "GET", "/locks", "tokB", "").expect(t, 200)
	if r.body["total"].(float64) != 0 {
		t.Fatalf("bob's list: %v", r.body)
	}
	// release, then a stale release is 404, and the next grant has token 2
	r = lkDo(t, a, "POST", "/locks/job-1/release", "tokA", `{"lease_id":"`+lease+`"}`).expect(t, 200)
	if r.body["status"] != "released" {
		t.Fatalf("release: %v", r.body)
	}
	lkDo(t, a, "POST", "/locks/job-1/release", "tokA", `{"lease_id":"`+lease+`"}`).expect(t, 404)
	r = lkDo(t, a, "GET", "/locks/job-1", "tokA", "").expect(t, 200)
	if r.body["status"] != "available" || r.body["name"] != "job-1" {
		t.Fatalf("status after release: %v", r.body)
	}
	r = lkDo(t, a, "POST", "/locks/job-1/acquire", "tokB", `{"ttl_seconds":60}`).expect(t, 200)
	if r.body["fencing_token"].(float64) != 2 || r.body["lease_id"] == lease {
		t.Fatalf("second grant: %v", r.body)
	}
	// the admin key sees every lock and may release any
	r = lkDo(t, a, "GET", "/locks", "admin-secret", "").expect(t, 200)
	if r.body["total"].(float64) != 1 || r.body["locks"].([]any)[0].(map[string]any)["holder"] != "bob" {
		t.Fatalf("admin list: %v", r.body)
	}
	lkDo(t, a, "POST", "/locks/job-1/acquire", "admin-secret", `{"ttl_seconds":60}`).expect(t, 403)
	lkDo(t, a, "POST", "/locks/job-1/release", "", `{}`, "X-Admin-Key", "admin-secret").expect(t, 200)
	if r := lkDo(t, a, "GET", "/locks/job-1", "tokB", "").expect(t, 200); r.body["status"] != "available" {
		t.Fatalf("after the admin's release: %v", r.body)
	}
	// ... also with no body at all (octostore lock release NAME with the admin key)
	lkDo(t, a, "POST", "/locks/job-1/acquire", "tokB", `{"ttl_seconds":60}`).expect(t, 200)
	lkDo(t, a, "POST", "/locks/job-1/release", "admin-secret", "").expect(t, 200)
	if r := lkDo(t, a, "GET", "/locks/job-1", "tokB", "").expect(t, 200); r.body["status"] != "available" {
		t.Fatalf("after the admin's release without a body: %v", r.body)
	}
	lkDo(t, a, "GET", "/locks", "", "", "X-Admin-Key", "wrong").expect(t, 401)
}

// Every bad request gets a JSON error with the right status and changes
// nothing.
func TestLockBadInput(t *testing.T) {
	a := lkStart(t, "")
	defer a.Close()
	held := lkDo(t, a, "POST", "/locks/busy/acquire", "tokA", `{"ttl_seconds":60}`).expect(t, 200)
	lease := held.body["lease_id"].(string)
	long := strings.Repeat("a", 129)
	cases := []struct {
		name, method, path, token, body string
		hdr                             []string
		status                          int
		msg                             string // substring of error
	}{
		{"no token", "POST", "/locks/x/acquire", "", `{"ttl_seconds":5}`, nil, 401, "authorization"},
		{"unknown token", "POST", "/locks/x/acquire", "nope", `{"ttl_seconds":5}`, nil, 401, "authorization"},
		{"name too long", "POST", "/locks/" + long + "/acquire", "tokA", `{"ttl_seconds":5}`, nil, 422, "name"},
		{"name with dot", "POST", "/locks/a.b/acquire", "tokA", `{"ttl_seconds":5}`, nil, 422, "name"},
		{"name unicode", "POST", "/locks/%C3%A9/acquire", "tokA", `{"ttl_seconds":5}`, nil, 422, "name"},
		{"ttl zero", "POST", "/locks/x/acquire", "tokA", `{"ttl_seconds":0}`, nil, 422, "TTL"},
		{"ttl too big", "POST", "/locks/x/acquire", "tokA", `{"ttl_seconds":3601}`, nil, 422, "TTL"},
		{"ttl float", "POST", "/locks/x/acquire", "tokA", `{"ttl_seconds":1.5}`, nil, 422, "ttl_seconds"},
		{"ttl string", "POST", "/locks/x/acquire", "tokA", `{"ttl_seconds":"60"}`, nil, 422, "ttl_seconds"},
		{"ttl huge", "POST", "/locks/x/acquire", "tokA", `{"ttl_seconds":1e400}`, nil, 422, "ttl_seconds"},
		{"ttl missing", "POST", "/locks/x/acquire", "tokA", `{}`, nil, 422, "ttl_seconds is required"},
		{"ttl null", "POST", "/locks/x/acquire", "tokA", `{"ttl_seconds":null}`, nil, 422, "ttl_seconds"},
		{"not json", "POST", "/locks/x/acquire", "tokA", `{"ttl_seconds":`, nil, 400, "JSON"},
		{"array body", "POST", "/locks/x/acquire", "tokA", `[1]`, nil, 400, "object"},
		{"trailing data", "POST", "/locks/x/acquire", "tokA", `{"ttl_seconds":5} {}`, nil, 400, "JSON"},
		{"empty body", "POST", "/locks/x/acquire", "tokA", ``, nil, 400, "JSON"},
		{"wrong content type", "POST", "/locks/x/acquire", "tokA", `{"ttl_seconds":5}`, []string{"Content-Type", "text/plain"}, 415, "Content-Type"},
		{"body too large", "POST", "/locks/x/acquire", "tokA", `{"ttl_seconds":5,"pad":"` + strings.Repeat("x", 5000) + `"}`, nil, 413, "too large"},
		{"lease not uuid", "POST", "/locks/busy/renew", "tokA", `{"lease_id":"abc","ttl_seconds":5}`, nil, 422, "lease_id"},
		{"lease number", "POST", "/locks/busy/release", "tokA", `{"lease_id":5}`, nil, 422, "lease_id"},
		{"lease missing", "POST", "/locks/busy/release", "tokA", `{}`, nil, 422, "lease_id is required"},
		{"release without a body", "POST", "/locks/busy/release", "tokA", ``, nil, 422, "lease_id is required"},
		{"ttl given twice", "POST", "/locks/x/acquire", "tokA", `{"ttl_seconds":5,"ttl_seconds":6}`, nil, 422, "ttl_seconds is given more than once"},
		{"renew ttl missing", "POST", "/locks/busy/renew", "tokA", `{"lease_id":"` + lease + `"}`, nil, 422, "ttl_seconds"},
		{"unknown route", "GET", "/nope", "tokA", ``, nil, 404, "route"},
		{"wrong method", "DELETE", "/locks/busy", "tokA", ``, nil, 405, "not allowed"},
		{"wrong method acquire", "GET", "/locks/busy/acquire", "tokA", ``, nil, 405, "not allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := lkDo(t, a, c.method, c.path, c.token, c.body, c.hdr...).expect(t, c.status)
			msg, _ := r.body["error"].(string)
			if !strings.Contains(strings.ToLower(msg), strings.ToLower(c.msg)) {
				t.Fatalf("error %q does not mention %q", msg, c.msg)
			}
			if strings.Contains(c.msg, "more than once") && strings.Contains(msg, "between") {
				t.Fatalf("error %q gives a range for a repeated field: one cause per message", msg)
			}
		})
	}
	// nothing changed: x was never acquired, busy still held by the same lease
	if r := lkDo(t, a, "GET", "/locks/x", "tokA", "").expect(t, 200); r.body["status"] != "available" {
		t.Fatalf("x changed: %v", r.body)
	}
	r := lkDo(t, a, "GET", "/locks/busy", "tokA", "").expect(t, 200)
	if r.body["lease_id"] != lease || r.body["fencing_token"].(float64) != 1 || r.body["expires_at"] != held.body["expires_at"] {
		t.Fatalf("busy changed: %v", r.body)
	}
	// health needs no auth
	if r := lkDo(t, a, "GET", "/health", "", ""); r.status != 200 || r.raw != "OK" {
		t.Fatalf("health: %d %q", r.status, r.raw)
	}
}

// Locks survive a restart: held locks are recovered with their lease and
// token, released ones stay free, and tokens continue upwards.
func TestLockRecoveryAfterRestart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "r.db")
	a := lkStart(t, db)
	h := lkDo(t, a, "POST", "/locks/kept/acquire", "tokA", `{"ttl_seconds":600}`).expect(t, 200)
	r := lkDo(t, a, "POST", "/locks/freed/acquire", "tokA", `{"ttl_seconds":600}`).expect(t, 200)
	lkDo(t, a, "POST", "/locks/freed/release", "tokA", `{"lease_id":"`+r.body["lease_id"].(string)+`"}`).expect(t, 200)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a = lkStart(t, db)
	defer a.Close()
	s := lkDo(t, a, "GET", "/locks/kept", "tokA", "").expect(t, 200)
	if s.body["lease_id"] != h.body["lease_id"] || s.body["fencing_token"].(float64) != 1 || s.body["expires_at"] != h.body["expires_at"] {
		t.Fatalf("kept after restart: %v, want %v", s.body, h.body)
	}
	l := lkDo(t, a, "GET", "/locks", "tokA", "").expect(t, 200)
	if l.body["total"].(float64) != 1 {
		t.Fatalf("list after restart: %v", l.body)
	}
	lkDo(t, a, "POST", "/locks/kept/acquire", "tokB", `{"ttl_seconds":5}`).expect(t, 409)
	g := lkDo(t, a, "POST", "/locks/freed/acquire", "tokB", `{"ttl_seconds":5}`).expect(t, 200)
	if g.body["fencing_token"].(float64) != 2 {
		t.Fatalf("token after restart: %v", g.body)
	}
}
