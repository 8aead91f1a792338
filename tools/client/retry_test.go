package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// flaky answers 503 to the first fails requests, then 200 with body.
func flaky(t *testing.T, fails int32, body string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if n.Add(1) <= fails {
			w.WriteHeader(503)
			w.Write([]byte(`{"error":"degraded"}`))
			return
		}
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestIdempotentCallsAreRetried(t *testing.T) {
	tests := []struct {
		name string
		body string
		call func(c *Client) error
	}{
		{"GET lock status", `{"status":"available","name":"x"}`, func(c *Client) error {
			_, err := c.LockStatus(context.Background(), "x")
			return err
		}},
		{"GET flag", `{"name":"f","enabled":true,"reason":"STATIC"}`, func(c *Client) error {
			_, err := c.GetFlag(context.Background(), "f", "user-1")
			return err
		}},
		{"PUT flag", `{"name":"f","enabled":true}`, func(c *Client) error {
			_, err := c.SetFlag(context.Background(), "f", FlagSpec{Enabled: true})
			return err
		}},
		{"DELETE config", `{"deleted":true}`, func(c *Client) error { return c.DeleteConfig(context.Background(), "k") }},
		{"DELETE limit", `{"reset":true}`, func(c *Client) error { return c.ResetLimit(context.Background(), "l") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := flaky(t, 2, tt.body)
			c := newTestClient(t, srv.URL, WithRetries(3))
			if err := tt.call(c); err != nil {
				t.Fatalf("err = %v", err)
			}
			if n.Load() != 3 {
				t.Fatalf("requests = %d, want 3 (2 failures + success)", n.Load())
			}
		})
	}
}

func TestRetriesAreBounded(t *testing.T) {
	srv, n := flaky(t, 100, `{}`)
	c := newTestClient(t, srv.URL, WithRetries(2))
	_, err := c.LockStatus(context.Background(), "x")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if n.Load() != 3 {
		t.Fatalf("requests = %d, want 3", n.Load())
	}
}

func TestPostsAreNotRetriedOnceSent(t *testing.T) {
	calls := map[string]func(c *Client) error{
		"acquire": func(c *Client) error { _, err := c.Acquire(context.Background(), "x", time.Second); return err },
		"check":   func(c *Client) error { _, err := c.CheckLimit(context.Background(), "x", 1, time.Second); return err },
		"renew": func(c *Client) error {
			_, err := c.Renew(context.Background(), "x", "550e8400-e29b-41d4-a716-446655440000", time.Second)
			return err
		},
		"release": func(c *Client) error {
			return c.Release(context.Background(), "x", "550e8400-e29b-41d4-a716-446655440000")
		},
	}
	for name, call := range calls {
		t.Run(name+" 503", func(t *testing.T) {
			srv, n := flaky(t, 1, `{}`)
			c := newTestClient(t, srv.URL, WithRetries(3))
			if err := call(c); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("err = %v", err)
			}
			if n.Load() != 1 {
				t.Fatalf("requests = %d, want 1", n.Load())
			}
		})
		t.Run(name+" connection dropped", func(t *testing.T) {
			// The server reads the request, then drops the connection: the
			// request may have taken effect, so it must not be replayed.
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
			}))
			t.Cleanup(srv.Close)
			c := newTestClient(t, srv.URL, WithRetries(3))
			err := call(c)
			var te *TransportError
			if !errors.As(err, &te) || te.NotSent || !errors.Is(err, ErrUnavailable) {
				t.Fatalf("err = %#v", err)
			}
			if n.Load() != 1 {
				t.Fatalf("requests = %d, want 1", n.Load())
			}
		})
	}
}

func TestRetryHonoursRetryAfterWithinBudget(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "60") // more than the backoff cap
			w.WriteHeader(429)
			w.Write([]byte(`{"error":"throttled"}`))
			return
		}
		w.Write([]byte(`{"status":"available","name":"x"}`))
	}))
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv.URL, WithRetries(3))
	_, err := c.LockStatus(context.Background(), "x")
	if !errors.Is(err, ErrRateLimited) || RetryAfter(err) != time.Minute {
		t.Fatalf("err = %v, want rate limited with Retry-After 60s returned without waiting", err)
	}
	if n.Load() != 1 {
		t.Fatalf("requests = %d", n.Load())
	}
}

func TestContextCancelAndDeadline(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	c := newTestClient(t, srv.URL, WithRetries(3))

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := c.Acquire(ctx, "x", time.Second); errc <- err }()
	<-arrived
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: err = %v", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.LockStatus(ctx, "x") // idempotent, but the deadline stops retries
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: err = %v", err)
	}
}

func TestWithTimeoutBoundsAnAttempt(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(block); srv.Close() })
	c := newTestClient(t, srv.URL, WithRetries(0), WithTimeout(30*time.Millisecond))
	_, err := c.Acquire(context.Background(), "x", time.Second)
	var te *TransportError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &te) {
		t.Fatalf("err = %v", err)
	}
}

func TestJitterBounds(t *testing.T) {
	for attempt := 0; attempt < 10; attempt++ {
		d := jitter(10*time.Millisecond, 80*time.Millisecond, attempt)
		full := min(10*time.Millisecond<<attempt, 80*time.Millisecond)
		if d < full/2 || d >= full {
			t.Fatalf("attempt %d: %v not in [%v,%v)", attempt, d, full/2, full)
		}
	}
}
