package httpd_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/octostore/octostore/docs"
	"github.com/octostore/octostore/httpd/apitest"
)

// TestOpenAPIServed: GET /openapi.yaml answers without credentials with the
// document embedded in the binary, byte for byte, and the document is a
// valid OpenAPI 3 document (kin-openapi's loader and Validate).
func TestOpenAPIServed(t *testing.T) {
	e := rsStart(t, nil)
	r := e.do(t, "GET", "/openapi.yaml", "", "")
	if r.status != 200 {
		t.Fatalf("GET /openapi.yaml: %d %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/yaml" {
		t.Fatalf("content type %q, want application/yaml", ct)
	}
	if !bytes.Equal(r.body, docs.OpenAPI) {
		t.Fatalf("served %d bytes that differ from the embedded document (%d bytes)", len(r.body), len(docs.OpenAPI))
	}
	doc, err := apitest.Parse(r.body)
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.0.3" || doc.Paths.Value("/openapi.yaml") == nil {
		t.Fatalf("served document: openapi %q, /openapi.yaml declared: %v", doc.OpenAPI, doc.Paths.Value("/openapi.yaml") != nil)
	}
}

// TestMethodNotAllowedAllow: a 405 lists in Allow exactly the methods the
// path serves. OPTIONS is not served (it is a 405 itself), so it is never
// listed; fasthttp/router lists it by default.
func TestMethodNotAllowedAllow(t *testing.T) {
	e := rsStart(t, nil)
	for _, c := range []struct{ method, path, allow string }{
		{"DELETE", "/locks/x", "GET"},
		{"OPTIONS", "/locks/x", "GET"},
		{"GET", "/locks/x/acquire", "POST"},
		{"OPTIONS", "/flags/f", "DELETE, GET, PUT"},
		{"POST", "/config/k", "DELETE, GET, PUT"},
		{"PUT", "/health", "GET"},
		{"POST", "/openapi.yaml", "GET"},
	} {
		r := e.do(t, c.method, c.path, rsAlice, "")
		if r.status != 405 || r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d, Allow %q, want 405 with Allow %q", c.method, c.path, r.status, r.header.Get("Allow"), c.allow)
		}
	}
}

// TestContractTour sends every operation of the document to a real server,
// with its common answers (success, conflict, not found, refused input),
// every exchange checked against docs/openapi.yaml, and fails if the
// document has an operation the tour did not reach: a new operation needs a
// stop here.
func TestContractTour(t *testing.T) {
	contract, err := apitest.Default()
	if err != nil {
		t.Fatal(err)
	}
	e := rsStart(t, nil)
	seen := map[string]bool{}
	do := func(method, path, token, body string, want int, hdr ...string) rsReply {
		t.Helper()
		u, _ := url.Parse(path)
		seen[contract.OperationOf(method, u.EscapedPath())] = true
		r := e.do(t, method, path, token, body, hdr...)
		if r.status != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, r.status, r.body, want)
		}
		return r
	}
	stream := func(path, token string) {
		t.Helper()
		seen[contract.OperationOf("GET", path)] = true
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", e.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := apitest.Client(t, nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}

	do("GET", "/health", "", "", 200)
	do("GET", "/openapi.yaml", "", "", 200)
	do("GET", "/metrics", rsAdmin, "", 200)
	do("GET", "/metrics", rsAlice, "", 403)
	do("GET", "/metrics", "", "", 401)
	stream("/events?kind=lock&prefix=t", rsAlice)
	stream("/locks/tour/watch", rsBob)
	do("GET", "/events?kind=nope", rsAlice, "", 422)

	// Locks.
	l := do("POST", "/locks/tour/acquire", rsAlice, `{"ttl_seconds":60}`, 200).obj(t)
	lease, _ := l["lease_id"].(string)
	do("POST", "/locks/tour/acquire", rsAlice, `{"ttl_seconds":60}`, 200)
	do("POST", "/locks/tour/acquire", rsBob, `{"ttl_seconds":60}`, 409)
	do("POST", "/locks/tour/acquire", rsAdmin, `{"ttl_seconds":60}`, 403)
	do("POST", "/locks/tour/acquire", rsAlice, `{"ttl_seconds":0}`, 422)
	do("POST", "/locks/tour/acquire", rsAlice, `{"ttl_seconds":60`, 400)
	do("POST", "/locks/tour/acquire", rsAlice, `{"ttl_seconds":60}`, 415, "Content-Type", "text/plain")
	do("GET", "/locks/tour", rsAlice, "", 200)
	do("GET", "/locks/tour", rsBob, "", 200) // no lease id
	do("GET", "/locks/free", rsBob, "", 200)
	do("GET", "/locks/a.b", rsBob, "", 422)
	do("GET", "/locks", rsAlice, "", 200)
	do("GET", "/locks", rsAdmin, "", 200)
	do("POST", "/locks/tour/renew", rsAlice, `{"lease_id":"`+lease+`","ttl_seconds":30}`, 200)
	do("POST", "/locks/tour/renew", rsBob, `{"lease_id":"`+lease+`","ttl_seconds":30}`, 404)
	do("POST", "/locks/tour/release", rsBob, `{"lease_id":"`+lease+`"}`, 404)
	do("POST", "/locks/tour/release", rsAlice, `{"lease_id":"`+lease+`"}`, 200)
	do("POST", "/locks/tour/release", rsAlice, `{"lease_id":"nope"}`, 422)
	do("POST", "/locks/tour/acquire", rsBob, `{"ttl_seconds":60}`, 200)
	do("POST", "/locks/tour/release", "", `{}`, 200, "X-Admin-Key", rsAdmin)
	do("POST", "/locks/tour/acquire", rsBob, `{"ttl_seconds":60,"wait_seconds":301}`, 422)
	ft := do("POST", "/locks/tour/acquire", rsBob, `{"ttl_seconds":60}`, 200).obj(t)["fencing_token"]
	do("GET", fmt.Sprintf("/locks/tour/fence?token=%v", ft), rsAlice, "", 200)
	do("GET", "/locks/tour/fence?token=1", rsAlice, "", 409)
	do("GET", "/locks/tour/fence?token=x", rsAlice, "", 422)

	// Semaphores.
	sg := do("POST", "/semaphores/tour/acquire", rsAlice, `{"limit":1,"ttl_seconds":60}`, 200).obj(t)
	slease, _ := sg["lease_id"].(string)
	do("POST", "/semaphores/tour/acquire", rsBob, `{"limit":1,"ttl_seconds":60}`, 409)
	do("POST", "/semaphores/tour/acquire", rsBob, `{"limit":2,"ttl_seconds":60}`, 422)
	do("GET", "/semaphores/tour", rsBob, "", 200)
	do("GET", "/semaphores?limit=1", rsAlice, "", 200)
	do("GET", "/semaphores", rsAdmin, "", 200)
	do("GET", "/semaphores?limit=0", rsAlice, "", 422)
	do("POST", "/semaphores/tour/renew", rsAlice, `{"lease_id":"`+slease+`","ttl_seconds":30}`, 200)
	do("POST", "/semaphores/tour/renew", rsBob, `{"lease_id":"`+slease+`","ttl_seconds":30}`, 404)
	do("GET", "/semaphores/tour/fence?token=1", rsBob, "", 200)
	do("GET", "/semaphores/tour/fence?token=2", rsBob, "", 409)
	do("POST", "/semaphores/tour/release", rsAlice, `{"lease_id":"`+slease+`"}`, 200)
	do("POST", "/semaphores/tour/release", rsAlice, `{"lease_id":"`+slease+`"}`, 404)

	// Sessions, and a lock held under one.
	sess := do("POST", "/sessions", rsAlice, `{"ttl_seconds":60,"lock_delay_seconds":2}`, 200).obj(t)
	sid, _ := sess["session_id"].(string)
	do("POST", "/sessions", rsAlice, `{"ttl_seconds":2}`, 422)
	do("POST", "/sessions", rsAdmin, `{"ttl_seconds":60}`, 403)
	do("POST", "/locks/tour-s/acquire", rsAlice, `{"session_id":"`+sid+`"}`, 200)
	do("POST", "/locks/tour-s/acquire", rsBob, `{"session_id":"`+sid+`"}`, 404)
	do("GET", "/locks/tour-s", rsAlice, "", 200)
	do("GET", "/sessions", rsAlice, "", 200)
	do("GET", "/sessions", rsAdmin, "", 200)
	do("POST", "/sessions/"+sid+"/keepalive", rsAlice, "", 200)
	do("POST", "/sessions/"+sid+"/keepalive", rsBob, "", 404)
	do("POST", "/sessions/nope/keepalive", rsAlice, "", 422)
	do("DELETE", "/sessions/"+sid, rsAlice, "", 200)
	do("DELETE", "/sessions/"+sid, rsAlice, "", 404)

	// Rate limits.
	do("POST", "/limits/api/check", rsAlice, `{"max_requests":1,"window_seconds":60}`, 200)
	if r := do("POST", "/limits/api/check", rsAlice, `{"max_requests":1,"window_seconds":60}`, 200); r.header.Get("Retry-After") == "" {
		t.Fatalf("denied check without Retry-After: %v", r.header)
	}
	do("POST", "/limits/api/check?owner=bob", rsAlice, `{"max_requests":1,"window_seconds":60}`, 403)
	do("GET", "/limits/api", rsAlice, "", 200)
	do("GET", "/limits/api", rsAdmin, "", 422)
	do("GET", "/limits/api?owner=alice", rsAdmin, "", 200)
	do("GET", "/limits/none", rsAlice, "", 404)
	do("GET", "/limits", rsAlice, "", 200)
	do("GET", "/limits", rsAdmin, "", 200) // with owners
	do("DELETE", "/limits/api", rsAlice, "", 200)
	do("DELETE", "/limits/api", rsAlice, "", 404)
	do("POST", "/limits/tb/check", rsAlice, `{"max_requests":5,"window_seconds":60,"algorithm":"token_bucket","cost":5}`, 200)
	do("POST", "/limits/tb/check", rsAlice, `{"max_requests":5,"window_seconds":60,"algorithm":"leaky"}`, 422)
	do("POST", "/limits/check", rsAlice, `{"checks":[{"name":"tb","max_requests":5,"window_seconds":60,"algorithm":"token_bucket"},{"name":"sw","max_requests":1,"window_seconds":60}]}`, 200)
	do("POST", "/limits/check", rsAlice, `{"checks":[]}`, 422)
	do("GET", "/limits/check", rsAlice, "", 404) // a limit named check

	// Feature flags.
	do("PUT", "/flags/beta", rsAlice, `{"enabled":true,"percentage":30}`, 200)
	do("PUT", "/flags/plain", rsAlice, `{"enabled":true}`, 200)
	do("PUT", "/flags/beta", rsAlice, `{"enabled":true,"percentage":null}`, 422)
	do("GET", "/flags/beta?subject=bob", rsAlice, "", 200)
	do("GET", "/flags/beta?subject=bob&attr.plan=pro", rsAlice, "", 200)
	do("GET", "/flags/none", rsAlice, "", 200)
	do("PUT", "/flags/exp", rsAlice, `{"enabled":false,"variants":[{"name":"a","value":{"x":1},"weight":100}],"rules":[{"attribute":"plan","operator":"in","values":["pro"],"variant":"a"}],"off_variant":"a"}`, 200)
	do("PUT", "/flags/exp", rsAlice, `{"enabled":true,"variants":[{"name":"a","value":1,"weight":99}]}`, 422)

	// OpenFeature (OFREP).
	do("POST", "/ofrep/v1/evaluate/flags/beta", rsAlice, `{"context":{"targetingKey":"bob","plan":"pro"}}`, 200)
	do("POST", "/ofrep/v1/evaluate/flags/exp", rsAlice, `{"context":{}}`, 200)
	do("POST", "/ofrep/v1/evaluate/flags/none", rsAlice, `{"context":{}}`, 404)
	do("POST", "/ofrep/v1/evaluate/flags/beta", rsAlice, `{"context":{}}`, 400)
	do("POST", "/ofrep/v1/evaluate/flags/beta", rsAlice, `{"context":`, 400)
	do("POST", "/ofrep/v1/evaluate/flags/beta", rsAdmin, `{"context":{}}`, 422)
	do("POST", "/ofrep/v1/evaluate/flags/beta?owner=bob", rsAlice, `{"context":{}}`, 403)
	etag := do("POST", "/ofrep/v1/evaluate/flags", rsAlice, `{"context":{"targetingKey":"bob"}}`, 200).header.Get("ETag")
	do("POST", "/ofrep/v1/evaluate/flags", rsAlice, `{"context":{"targetingKey":"bob"}}`, 304, "If-None-Match", etag)
	do("POST", "/ofrep/v1/evaluate/flags", rsAlice, `{"context":5}`, 400)
	do("GET", "/flags", rsAlice, "", 200)
	do("GET", "/flags?owner=alice", rsAdmin, "", 200)
	do("GET", "/flags", rsAdmin, "", 200)
	do("DELETE", "/flags/beta", rsAlice, "", 200)
	do("DELETE", "/flags/beta", rsAlice, "", 404)

	// Config.
	do("PUT", "/config/app.timeout", rsAlice, `{"value":{"ms":250},"description":"d","expected_version":0}`, 200)
	do("PUT", "/config/app.timeout", rsAlice, `{"value":null}`, 200, "If-Match", `"1"`)
	do("PUT", "/config/app.timeout", rsAlice, `{"value":3}`, 409, "If-Match", "1")
	do("PUT", "/config/app.timeout", rsAlice, `{"value":3}`, 422, "If-Match", "one")
	do("GET", "/config/app.timeout", rsAlice, "", 200)
	do("GET", "/config/app.timeout?version=1", rsAlice, "", 200)
	do("GET", "/config/app.timeout?version=9", rsAlice, "", 404)
	do("GET", "/config/app.timeout/history", rsAlice, "", 200)
	do("GET", "/config/none/history", rsAlice, "", 404)
	do("POST", "/config/app.timeout/rollback", rsAlice, `{"version":1}`, 200, "If-Match", "2")
	do("POST", "/config/app.timeout/rollback", rsAlice, `{"version":1}`, 409, "If-Match", "2")
	do("POST", "/config/app.timeout/rollback", rsAlice, `{"version":9}`, 404)
	do("POST", "/config/app.timeout/rollback", rsAlice, `{"version":0}`, 422)
	stream("/config/app.timeout/watch", rsAlice)
	do("GET", "/config", rsAlice, "", 200)
	do("GET", "/config", rsAdmin, "", 200)
	do("DELETE", "/config/app.timeout", rsAlice, "", 200)
	do("GET", "/config/app.timeout", rsAlice, "", 404)

	// Tokens and sign-in (without GitHub configured; the sign-in flow itself
	// is in oauth_test.go, through the same checks).
	do("GET", "/auth/github", "", "", 501)
	do("GET", "/auth/github/callback?code=c&state=s", "", "", 501)
	do("POST", "/auth/token/rotate", rsAlice, "", 409) // a static token
	do("DELETE", "/auth/token", rsAdmin, "", 409)
	do("POST", "/auth/token/rotate", "", "", 401)

	// Token administration (the admin key).
	do("POST", "/admin/tokens", rsAdmin, `{"user":"carol"}`, 201)
	do("POST", "/admin/tokens", rsAdmin, `{"user":"carol"}`, 201)
	do("POST", "/admin/tokens", rsAdmin, `{"user":"no way"}`, 422)
	do("POST", "/admin/tokens", rsAlice, `{"user":"carol"}`, 403)
	do("GET", "/admin/tokens", rsAdmin, "", 200)
	do("GET", "/admin/tokens?user=carol", rsAdmin, "", 200)
	do("GET", "/admin/tokens?user=", rsAdmin, "", 422)
	do("GET", "/admin/tokens", rsAlice, "", 403)
	do("POST", "/admin/tokens/revoke", rsAdmin, `{"user":"carol"}`, 409)
	do("POST", "/admin/tokens/revoke", rsAdmin, `{"user":"carol","all_for_user":true}`, 200)
	do("POST", "/admin/tokens/revoke", rsAdmin, `{"user":"carol"}`, 404)
	do("POST", "/admin/tokens/revoke", rsAdmin, `{"fingerprint":"xyz"}`, 422)
	do("POST", "/admin/tokens/revoke", rsAlice, `{"user":"carol"}`, 403)

	// Cluster mode only: a single node has no /cluster (front_test.go and
	// tools/crashtest's cluster test check its 200s).
	do("GET", "/cluster", rsAlice, "", 404)

	for _, op := range contract.Operations() {
		if !seen[op] {
			t.Errorf("the tour does not reach %s", op)
		}
	}
}

// TestUnknownRoutes: paths the document does not have answer 404 with a
// JSON error (the contract check holds them to that), an empty last segment
// included.
func TestUnknownRoutes(t *testing.T) {
	e := rsStart(t, nil)
	for _, p := range []string{"/nope", "/locks/", "/locks/x/steal", "/flags/f/g", "/openapi.json"} {
		if r := e.do(t, "GET", p, rsAlice, ""); r.status != 404 {
			t.Errorf("GET %s: %d %s, want 404", p, r.status, r.body)
		}
	}
}
