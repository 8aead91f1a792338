package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var sentinels = []error{ErrLockHeld, ErrNotFound, ErrUnauthorized, ErrForbidden, ErrConflict, ErrRateLimited, ErrUnavailable, ErrValidation}

// respond returns a server that answers every request with status, body and
// headers.
func respond(t *testing.T, status int, body string, hdr map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newTestClient(t *testing.T, url string, opts ...Option) *Client {
	t.Helper()
	c, err := New(url, "tokA", append([]Option{WithBackoff(time.Millisecond, 4*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTypedErrors(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		status int
		body   string
		hdr    map[string]string
		want   error // sentinel, nil for none
		check  func(t *testing.T, err error)
	}{
		{"lock held", 409, `{"error":"Lock already held","lock":{"name":"db","holder":"bob","expires_at":"2030-01-02T03:04:05Z"}}`, nil, ErrLockHeld,
			func(t *testing.T, err error) {
				var he *LockHeldError
				if !errors.As(err, &he) || he.Holder != "bob" || !he.ExpiresAt.Equal(exp) || he.Name != "db" {
					t.Fatalf("LockHeldError = %+v", he)
				}
				var ae *APIError
				if !errors.As(err, &ae) || ae.Status != 409 {
					t.Fatalf("APIError = %+v", ae)
				}
			}},
		{"not found", 404, `{"error":"Lock not found or not owned by caller"}`, nil, ErrNotFound,
			func(t *testing.T, err error) {
				var ae *APIError
				if !errors.As(err, &ae) || ae.Message != "Lock not found or not owned by caller" {
					t.Fatalf("APIError = %+v", ae)
				}
			}},
		{"unauthorized", 401, `{"error":"Invalid or missing authorization header"}`, nil, ErrUnauthorized, nil},
		{"forbidden", 403, `{"error":"quota exceeded"}`, nil, ErrForbidden, nil},
		{"config conflict", 409, `{"error":"version mismatch","current_version":7}`, nil, ErrConflict,
			func(t *testing.T, err error) {
				var ce *ConflictError
				if !errors.As(err, &ce) || ce.CurrentVersion != 7 || !ce.HasVersion {
					t.Fatalf("ConflictError = %+v", ce)
				}
			}},
		{"other conflict", 409, `{"error":"a static token cannot be rotated"}`, nil, ErrConflict,
			func(t *testing.T, err error) {
				var ce *ConflictError
				if !errors.As(err, &ce) || ce.HasVersion || strings.Contains(err.Error(), "version") {
					t.Fatalf("ConflictError = %+v (%v)", ce, err)
				}
			}},
		{"validation", 422, `{"error":"ttl_seconds must be between 1 and 3600"}`, nil, ErrValidation,
			func(t *testing.T, err error) {
				var ve *ValidationError
				if !errors.As(err, &ve) || ve.Message != "ttl_seconds must be between 1 and 3600" {
					t.Fatalf("ValidationError = %+v", ve)
				}
			}},
		{"bad json", 400, `{"error":"unparseable JSON"}`, nil, ErrValidation, nil},
		{"rate limited", 429, `{"error":"slow down"}`, map[string]string{"Retry-After": "7"}, ErrRateLimited,
			func(t *testing.T, err error) {
				if RetryAfter(err) != 7*time.Second {
					t.Fatalf("RetryAfter = %v", RetryAfter(err))
				}
			}},
		{"unavailable", 503, `{"error":"degraded"}`, map[string]string{"Retry-After": "3"}, ErrUnavailable,
			func(t *testing.T, err error) {
				if RetryAfter(err) != 3*time.Second {
					t.Fatalf("RetryAfter = %v", RetryAfter(err))
				}
			}},
		{"server bug", 500, `{"error":"boom"}`, nil, nil,
			func(t *testing.T, err error) {
				var ae *APIError
				if !errors.As(err, &ae) || ae.Status != 500 || ae.Message != "boom" {
					t.Fatalf("APIError = %+v", ae)
				}
			}},
		{"non-json body", 502, `<html>bad gateway</html>`, nil, nil,
			func(t *testing.T, err error) {
				var ae *APIError
				if !errors.As(err, &ae) || ae.Status != 502 || ae.Message != "<html>bad gateway</html>" {
					t.Fatalf("APIError = %+v", ae)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := respond(t, tt.status, tt.body, tt.hdr)
			c := newTestClient(t, srv.URL, WithRetries(0))
			_, err := c.Acquire(context.Background(), "db", 30*time.Second)
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == tt.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, got)
				}
			}
			if tt.check != nil {
				tt.check(t, err)
			}
		})
	}
}

func TestConnectionRefusedIsUnavailableAndNotSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newTestClient(t, "http://"+addr, WithRetries(2))
	_, err = c.Acquire(context.Background(), "db", time.Second)
	var te *TransportError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &te) || !te.NotSent {
		t.Fatalf("err = %#v, want unavailable TransportError with NotSent", err)
	}
	// A request that never left may be retried even when it is a POST.
	if !c.retryable(err, 0, false) {
		t.Fatal("not-sent POST should be retryable")
	}
}

func TestEmptyNameIsValidationError(t *testing.T) {
	c := newTestClient(t, "http://127.0.0.1:1")
	_, err := c.LockStatus(context.Background(), "")
	var ve *ValidationError
	if !errors.Is(err, ErrValidation) || !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	d := parseRetryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
	if d < 58*time.Minute || d > time.Hour {
		t.Fatalf("parseRetryAfter(date) = %v", d)
	}
	if parseRetryAfter("soon") != 0 {
		t.Fatal("garbage Retry-After should be 0")
	}
}

// Each message names its cause once, behind one "octostore: ".
func TestErrorMessagesSayEachThingOnce(t *testing.T) {
	msg := "version conflict on config key \"k\": expected version 0, current version is 1" // the server's
	err := decodeError(409, []byte(`{"error":`+quote(msg)+`,"current_version":1}`), "")
	if got := err.Error(); got != "octostore: 409 Conflict: "+msg {
		t.Errorf("conflict: %q", got)
	}
	lost := &LockLostError{Name: "lr4", Cause: decodeError(404, []byte(`{"error":"Lock not found or not owned by caller"}`), "")}
	if got := lost.Error(); got != `octostore: lock "lr4" lost: 404 Not Found: Lock not found or not owned by caller` {
		t.Errorf("lock lost: %q", got)
	}
	if !errors.Is(lost, ErrLockLost) || !errors.Is(lost, ErrNotFound) {
		t.Errorf("lock lost matches ErrLockLost %v, its cause ErrNotFound %v", errors.Is(lost, ErrLockLost), errors.Is(lost, ErrNotFound))
	}
	if got := (&LockLostError{Name: "x", Cause: context.DeadlineExceeded}).Error(); got != `octostore: lock "x" lost: context deadline exceeded` {
		t.Errorf("lock lost by expiry: %q", got)
	}
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
