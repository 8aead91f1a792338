package apitest

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/octostore/octostore/tools/keepreading"
	"github.com/valyala/fasthttp"
)

// Client returns a copy of hc (nil: a new client without a timeout) whose
// transport checks every exchange against the contract (Default), reporting
// mismatches to t. It fails t at once if the document does not load.
func Client(t T, hc *http.Client) *http.Client {
	t.Helper()
	var cp http.Client
	if hc != nil {
		cp = *hc
	}
	cp.Transport = Transport(t, cp.Transport)
	return &cp
}

// Transport wraps base (nil: BaseTransport) so that every exchange is
// checked against the contract (Default), reporting mismatches to t. It
// fails t at once if the document does not load.
func Transport(t T, base http.RoundTripper) http.RoundTripper {
	t.Helper()
	return mustDefault(t).Transport(t, base)
}

// mustDefault is Default, failing t if the document does not load.
func mustDefault(t T) *Contract {
	t.Helper()
	c, err := Default()
	if err != nil {
		t.Fatalf("apitest: %v", err)
	}
	return c
}

// Transport wraps base (nil: BaseTransport) so that every exchange is
// checked against c, reporting mismatches to t.
func (c *Contract) Transport(t T, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = BaseTransport
	}
	return &transport{c: c, t: t, base: base}
}

// BaseTransport is http.DefaultTransport with connections that read the
// server's answer even when writing the request body failed
// (tools/keepreading): a server may refuse a body (413) before reading it and
// close, and a test must see the 413, not "write: broken pipe". Test clients
// that build their own http.Transport set its DialContext with
// keepreading.DialContext.
var BaseTransport http.RoundTripper = func() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = keepreading.DialContext((&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
	return tr
}()

type transport struct {
	c    *Contract
	t    T
	base http.RoundTripper
}

// RoundTrip implements http.RoundTripper: it sends req through the base
// transport, reads the answer (all of it, except an event stream) and checks
// both. The caller gets the answer as it came.
func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			req.Body.Close()
			return nil, err
		}
		req.Body.Close()
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	resp, err := tr.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	x := &Exchange{Request: req, RequestBody: body, Status: resp.StatusCode, Header: resp.Header}
	if isStream(resp.Header.Get("Content-Type")) {
		x.Stream = true
		tr.c.report(tr.t, x)
		return resp, nil
	}
	x.Body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = &replay{r: bytes.NewReader(x.Body), err: err}
	if err == nil {
		tr.c.report(tr.t, x)
	}
	return resp, nil
}

// replay gives back a body read ahead, then the error that ended the read.
type replay struct {
	r   *bytes.Reader
	err error
}

func (r *replay) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err == io.EOF && r.err != nil {
		err = r.err
	}
	return n, err
}

func (r *replay) Close() error { return nil }

// FastTransport wraps base (nil: fasthttp.DefaultTransport) so that every
// exchange of a fasthttp.HostClient is checked against the contract
// (Default), reporting mismatches to t. Set it as HostClient.Transport (the
// Go client: client.WithTransport). It fails t at once if the document does
// not load. The HostClient's dialer decides what a failed body write does:
// the Go client's reads the answer anyway (tools/keepreading); a bare
// HostClient in a test should set DialTimeout with keepreading.DialTimeout.
func FastTransport(t T, base fasthttp.RoundTripper) fasthttp.RoundTripper {
	t.Helper()
	return mustDefault(t).FastTransport(t, base)
}

// FastTransport wraps base (nil: fasthttp.DefaultTransport) so that every
// exchange of a fasthttp.HostClient is checked against c.
func (c *Contract) FastTransport(t T, base fasthttp.RoundTripper) fasthttp.RoundTripper {
	if base == nil {
		base = fasthttp.DefaultTransport
	}
	return &fastTransport{c: c, t: t, base: base}
}

type fastTransport struct {
	c    *Contract
	t    T
	base fasthttp.RoundTripper
}

// RoundTrip implements fasthttp.RoundTripper.
func (ft *fastTransport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	retry, err := ft.base.RoundTrip(hc, req, resp)
	if err != nil {
		return retry, err
	}
	ft.c.CheckFast(ft.t, hc.IsTLS, req, resp)
	return retry, nil
}

// CheckFast checks one fasthttp exchange (tls: it went over https),
// reporting a mismatch to t. For code that calls fasthttp without a
// HostClient transport.
func (c *Contract) CheckFast(t T, tls bool, req *fasthttp.Request, resp *fasthttp.Response) {
	t.Helper()
	scheme := "http"
	if tls {
		scheme = "https"
	}
	// The path exactly as sent: PathOriginal, not the normalised Path.
	u := &url.URL{Scheme: scheme, Host: string(req.Host()), RawQuery: string(req.URI().QueryString())}
	raw := string(req.URI().PathOriginal())
	if p, err := url.PathUnescape(raw); err == nil {
		u.Path, u.RawPath = p, raw
	} else {
		u.Path = raw // not a valid escaping: EscapedPath re-escapes it
	}
	hreq := &http.Request{Method: string(req.Header.Method()), URL: u, Host: u.Host, Header: http.Header{}}
	for k, v := range req.Header.All() {
		hreq.Header.Add(string(k), string(v))
	}
	h := http.Header{}
	for k, v := range resp.Header.All() {
		h.Add(string(k), string(v))
	}
	x := &Exchange{Request: hreq, RequestBody: req.Body(), Status: resp.StatusCode(), Header: h}
	if resp.IsBodyStream() || isStream(h.Get("Content-Type")) {
		x.Stream = true
	} else {
		x.Body = resp.Body()
	}
	c.report(t, x)
}
