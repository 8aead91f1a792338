package httpd_test

import (
	"bytes"
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
