package apitest

import (
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
)

// Proxy starts a reverse proxy on 127.0.0.1 in front of the server at
// target (e.g. "http://127.0.0.1:3000") whose every exchange is checked
// against the contract (Default), reporting mismatches to t. It is for
// clients a test cannot hand a transport to, such as the octostore binary
// run as a subprocess: point them at the proxy's URL. Event streams are
// passed through as they arrive. Close the proxy when the test ends (before
// t completes: a report after that would be lost).
func Proxy(t T, target string) *httptest.Server {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("apitest: proxy target %q: %v", target, err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host
		},
		Transport:     mustDefault(t).Transport(t, nil),
		FlushInterval: -1, // event streams: flush every write
	}
	return httptest.NewServer(rp)
}
