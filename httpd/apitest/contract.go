// Package apitest holds tests to the published API contract: it checks every
// request a test sends to an octostore server and every answer it gets
// against docs/openapi.yaml, with kin-openapi's openapi3filter, and fails the
// test that produced a mismatch (t.Errorf naming the method, path, status and
// the validator's reason).
//
// A test opts in by sending through a checking client:
//
//	hc := apitest.Client(t, nil)                              // net/http
//	c, _ := client.New(url, token,                            // tools/client
//		client.WithTransport(apitest.FastTransport(t, nil)),  //   unary calls (fasthttp)
//		client.WithHTTPClient(apitest.Client(t, nil)))        //   event streams (net/http)
//	url = apitest.Proxy(t, url).URL                           // a subprocess (the CLI)
//
// The rules an exchange is held to:
//
//   - A request the document accepts gets a status the operation declares,
//     with the declared headers and a body of a declared content type that
//     matches the declared schema.
//   - A request the document refuses (tests send bad input on purpose) gets
//     a declared error status (4xx or 5xx), never a success: a server that
//     accepts what the contract forbids fails the check.
//   - A path the document does not have is answered 404; a method its path
//     does not have, 405 with Allow listing exactly the methods the document
//     declares there; either may also be one of the statuses every operation
//     declares (400, 408, 413, 431). Their bodies are JSON {"error": …}.
//   - Event streams (text/event-stream) are checked for status, headers and
//     content type; the stream itself is not read.
//   - Response objects are closed for the check: a field the server sends
//     that the schema does not list fails, although the published document
//     leaves objects open so that clients accept fields added later.
//   - Request bodies sent without a Content-Type, as application/*+json or as
//     application/x-www-form-urlencoded are checked as application/json: the
//     server reads them as JSON (curl -d), as the document's conventions say.
//
// The package is for tests only; it is not a _test.go file so that the tests
// of every package can use it.
package apitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/octostore/octostore/docs"
)

// T is what the checks report to; *testing.T and *testing.B satisfy it.
type T interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Contract is a loaded, validated OpenAPI document prepared for checking
// exchanges. It is safe for concurrent use.
type Contract struct {
	doc    *openapi3.T
	routes []route
	// common are the statuses every operation declares (the transport-level
	// answers: malformed request, read timeout, body or headers too large);
	// an unknown route may answer them too.
	common map[int]bool
}

// route is one path template of the document, split into segments.
type route struct {
	path string
	segs []string // "{name}" segments match any one segment
	item *openapi3.PathItem
	lits int // literal segments: the more specific template wins
}

var (
	defaultOnce     sync.Once
	defaultContract *Contract
	defaultErr      error
)

// Default is the contract of docs/openapi.yaml as embedded in the binary,
// loaded and validated once.
func Default() (*Contract, error) {
	defaultOnce.Do(func() { defaultContract, defaultErr = Load(docs.OpenAPI) })
	return defaultContract, defaultErr
}

// Load parses and validates an OpenAPI 3 document (YAML or JSON) and
// prepares it for checking. An invalid document is an error.
func Load(spec []byte) (*Contract, error) {
	doc, err := Parse(spec)
	if err != nil {
		return nil, err
	}
	// Servers name public hosts; tests talk to 127.0.0.1:port. Paths are
	// matched without them.
	doc.Servers = nil
	c := &Contract{doc: doc}
	for path, item := range doc.Paths.Map() {
		r := route{path: path, segs: strings.Split(path, "/"), item: item}
		for _, s := range r.segs {
			if !isParam(s) {
				r.lits++
			}
		}
		c.routes = append(c.routes, r)
	}
	sort.Slice(c.routes, func(i, j int) bool { return c.routes[i].lits > c.routes[j].lits })
	c.common = nil
	for _, r := range c.routes {
		for _, op := range r.item.Operations() {
			declared := map[int]bool{}
			for code := range op.Responses.Map() {
				var n int
				if _, err := fmt.Sscanf(code, "%d", &n); err == nil {
					declared[n] = true
				}
			}
			if c.common == nil {
				c.common = declared
				continue
			}
			for n := range c.common {
				if !declared[n] {
					delete(c.common, n)
				}
			}
		}
	}
	closeResponseObjects(doc)
	return c, nil
}

// Parse loads an OpenAPI 3 document and validates it (kin-openapi's
// loader and doc.Validate), without the changes Load makes for checking.
func Parse(spec []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("load OpenAPI document: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("invalid OpenAPI document: %w", err)
	}
	return doc, nil
}

func isParam(seg string) bool {
	return len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}'
}

// closeResponseObjects sets additionalProperties: false on every object
// schema with properties reachable from a response that does not say
// otherwise, so that an undeclared field in an answer fails the check.
// Branches of allOf are left open (closing them would refuse the fields of
// the other branches).
func closeResponseObjects(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(ref *openapi3.SchemaRef, closable bool)
	walk = func(ref *openapi3.SchemaRef, closable bool) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if closable && len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
			s.AdditionalProperties.Has = new(bool)
		}
		for _, p := range s.Properties {
			walk(p, true)
		}
		walk(s.Items, true)
		for _, b := range s.OneOf {
			walk(b, true)
		}
		for _, b := range s.AnyOf {
			walk(b, true)
		}
		for _, b := range s.AllOf {
			walk(b, false)
		}
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, resp := range op.Responses.Map() {
				if resp.Value == nil {
					continue
				}
				for _, mt := range resp.Value.Content {
					walk(mt.Schema, true)
				}
			}
		}
	}
}

// Exchange is one request and its answer, as a test sent and received it.
type Exchange struct {
	// Request is the request as sent: its URL's escaped path is the path on
	// the wire. Its Body is ignored: RequestBody holds the bytes.
	Request     *http.Request
	RequestBody []byte

	Status int
	Header http.Header // response headers
	Body   []byte      // response body; not read for event streams
	// Stream marks an answer whose body was not read (an event stream):
	// status, headers and content type are checked, the body is not.
	Stream bool
}

// Check holds one exchange to the contract. The error says what is wrong.
func (c *Contract) Check(x *Exchange) error {
	path := x.Request.URL.EscapedPath()
	r, params, methods := c.match(x.Request.Method, path)
	if r == nil {
		return c.checkUnrouted(x, http.StatusNotFound, "the document has no path "+path, nil)
	}
	for _, v := range params {
		if v == "" && x.Status == http.StatusNotFound {
			// The server's router matches an empty segment inside a path
			// (/locks//acquire: 422) but not at its end (/locks/: no route).
			return c.checkUnrouted(x, http.StatusNotFound, "empty segment in "+path, nil)
		}
	}
	op := r.item.GetOperation(x.Request.Method)
	if op == nil {
		return c.checkUnrouted(x, http.StatusMethodNotAllowed, "the document has no "+x.Request.Method+" on "+r.path, methods)
	}
	ctx := context.Background()
	req := x.Request.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(x.RequestBody))
	req.ContentLength = int64(len(x.RequestBody))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(x.RequestBody)), nil }
	if len(x.RequestBody) > 0 && readAsJSON(req.Header.Get("Content-Type")) {
		req.Header.Set("Content-Type", "application/json")
	}
	in := &openapi3filter.RequestValidationInput{
		Request:    req,
		PathParams: params,
		Route:      &routers.Route{Spec: c.doc, Path: r.path, PathItem: r.item, Method: x.Request.Method, Operation: op},
		Options: &openapi3filter.Options{
			AuthenticationFunc:  credentialsPresent,
			SkipSettingDefaults: true,
		},
	}
	reqErr := openapi3filter.ValidateRequest(ctx, in)

	respErr := openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 x.Status,
		Header:                 x.Header,
		Body:                   io.NopCloser(bytes.NewReader(x.Body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: x.Stream},
	})
	if respErr == nil && x.Stream {
		respErr = checkStreamType(op, x)
	}
	switch {
	case respErr != nil:
		if reqErr != nil {
			return fmt.Errorf("answer does not match the contract: %v (the request does not either: %v)", respErr, reqErr)
		}
		return fmt.Errorf("answer does not match the contract: %v", respErr)
	case reqErr != nil && x.Status < 400:
		return fmt.Errorf("the server accepted a request the contract refuses: %v", reqErr)
	}
	return nil
}

// match finds the path template of a raw path and its parameters (as
// received, not unescaped: the server matches names that way too).
func (c *Contract) match(method, path string) (*route, map[string]string, []string) {
	segs := strings.Split(path, "/")
	var first *route
	var firstParams map[string]string
	var methods []string // of every path that matches, as the server's router unites them
	for i := range c.routes {
		r := &c.routes[i]
		if len(r.segs) != len(segs) {
			continue
		}
		params := map[string]string{}
		ok := true
		for j, s := range r.segs {
			switch {
			case isParam(s):
				// Even an empty segment: the server's router matches
				// /locks//acquire too (and refuses the empty name, 422).
				params[s[1:len(s)-1]] = segs[j]
			case s != segs[j]:
				ok = false
			}
			if !ok {
				break
			}
		}
		if !ok {
			continue
		}
		// A literal path and a template that both match (/limits/check and
		// /limits/{name}) are told apart by the method, as the server's
		// router does: the most literal path that has it.
		if r.item.GetOperation(method) != nil {
			return r, params, nil
		}
		if first == nil {
			first, firstParams = r, params
		}
		for m := range r.item.Operations() {
			if !slices.Contains(methods, m) {
				methods = append(methods, m)
			}
		}
	}
	return first, firstParams, methods
}

// checkUnrouted holds an exchange the document has no operation for to the
// conventions: want (404 or 405), or a status every operation declares;
// a JSON {"error"} body; on 405, Allow listing exactly the methods the
// document declares on the paths that match (nil: no path matches).
func (c *Contract) checkUnrouted(x *Exchange, want int, why string, methods []string) error {
	if x.Status != want && !c.common[x.Status] {
		return fmt.Errorf("%s: want %d, got an undeclared status", why, want)
	}
	if x.Status == http.StatusMethodNotAllowed && methods != nil {
		declared := slices.Clone(methods)
		slices.Sort(declared)
		var allow []string
		for _, m := range strings.Split(x.Header.Get("Allow"), ",") {
			if m = strings.TrimSpace(m); m != "" {
				allow = append(allow, m)
			}
		}
		slices.Sort(allow)
		if !slices.Equal(allow, declared) {
			return fmt.Errorf("%s: Allow is %q, the document declares %q", why, x.Header.Get("Allow"), strings.Join(declared, ", "))
		}
	}
	if x.Request.Method == http.MethodHead {
		return nil
	}
	if mt, _, _ := mime.ParseMediaType(x.Header.Get("Content-Type")); mt != "application/json" {
		return fmt.Errorf("%s: content type %q, want an application/json error", why, x.Header.Get("Content-Type"))
	}
	if !bytes.HasPrefix(bytes.TrimSpace(x.Body), []byte(`{"error":"`)) {
		return fmt.Errorf("%s: body %.200q is not {\"error\": …}", why, x.Body)
	}
	return nil
}

// checkStreamType checks the content type of an answer whose body was not
// read against the operation's declared content.
func checkStreamType(op *openapi3.Operation, x *Exchange) error {
	resp := op.Responses.Status(x.Status)
	if resp == nil || resp.Value == nil || len(resp.Value.Content) == 0 {
		return nil
	}
	if resp.Value.Content.Get(x.Header.Get("Content-Type")) == nil {
		return fmt.Errorf("response header Content-Type has unexpected value: %q", x.Header.Get("Content-Type"))
	}
	return nil
}

// readAsJSON reports whether the server reads a body of this content type as
// JSON although it is not application/json (httpd's jsonContentType).
func readAsJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" {
		return true
	}
	if err != nil {
		return false
	}
	return mt == "application/x-www-form-urlencoded" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// credentialsPresent is the checker's authentication: a request satisfies a
// security scheme when it carries the credential the scheme names (whether
// the server knows it is the server's business: 401 is declared).
func credentialsPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header
	s := in.SecurityScheme
	switch {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		v := strings.TrimSpace(h.Get("Authorization"))
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") && strings.TrimSpace(v[7:]) != "" {
			return nil
		}
		return in.NewError(errors.New("no bearer token"))
	case s.Type == "apiKey" && s.In == "header":
		if h.Get(s.Name) != "" {
			return nil
		}
		return in.NewError(fmt.Errorf("no %s header", s.Name))
	}
	return in.NewError(fmt.Errorf("security scheme %q is not supported by the checker", in.SecuritySchemeName))
}

// report checks x and reports a mismatch to t.
func (c *Contract) report(t T, x *Exchange) {
	if err := c.Check(x); err != nil {
		t.Helper()
		target := x.Request.URL.EscapedPath()
		if x.Request.URL.RawQuery != "" {
			target += "?" + x.Request.URL.RawQuery
		}
		t.Errorf("contract (docs/openapi.yaml): %s %s → %d: %v", x.Request.Method, target, x.Status, err)
	}
}

// isStream reports whether an answer is an event stream (its body is not
// read by the checking clients).
func isStream(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "text/event-stream"
}

// Operations lists the document's operations as "METHOD /path/{template}",
// sorted.
func (c *Contract) Operations() []string {
	var ops []string
	for _, r := range c.routes {
		for m := range r.item.Operations() {
			ops = append(ops, m+" "+r.path)
		}
	}
	slices.Sort(ops)
	return ops
}

// OperationOf names the operation a request would reach ("METHOD
// /path/{template}", as Operations lists it), or "" when the document has
// none. path is the escaped path as sent.
func (c *Contract) OperationOf(method, path string) string {
	r, _, _ := c.match(method, path)
	if r == nil || r.item.GetOperation(method) == nil {
		return ""
	}
	return method + " " + r.path
}
