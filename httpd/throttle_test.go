package httpd_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/persistence"
)

// fromAddr is a client whose connections come from the local address ip
// (any 127.x.y.z reaches the server on Linux), checked against
// docs/openapi.yaml.
func fromAddr(t *testing.T, ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return apitest.Client(t, &http.Client{Timeout: 20 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}})
}

// TestAuthFailuresAreThrottled (issue 12, item 10): an address gets burst
// failed authentications (unknown tokens or wrong admin keys), then 429 +
// Retry-After for every request that carries a credential, without the
// credential being looked up, and one more attempt per interval. Other
// addresses, and requests without a credential, are not affected. Before,
// guesses were answered 401 as fast as they came (~47k/s).
func TestAuthFailuresAreThrottled(t *testing.T) {
	clock := httpd.NewTestClock(time.Now())
	e := startAuthApp(t, nil, func(o *httpd.TestOptions) {
		o.Now = clock.Now
		o.Server.AuthFailureBurst = 5
		o.Server.AuthFailureInterval = 2 * time.Second
	})
	good := e.staticToken("alice")
	u := e.app.URL() + "/locks"
	call := func(hc *http.Client, token string, hdr ...string) authReply {
		t.Helper()
		return browserCall(t, hc, "GET", u, token, "", hdr...)
	}
	guesser, other := fromAddr(t, "127.0.0.2"), fromAddr(t, "127.0.0.3")
	for i := 0; i < 5; i++ {
		if r := call(guesser, persistence.NewToken()); r.status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d %s, want 401", i, r.status, r.body)
		}
	}
	r := call(guesser, persistence.NewToken())
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "2" {
		t.Fatalf("guess beyond the burst: %d (Retry-After %q) %s, want 429 with Retry-After 2", r.status, r.header.Get("Retry-After"), r.body)
	}
	// Even a valid credential: the address is not checking any.
	if r := call(guesser, good); r.status != http.StatusTooManyRequests {
		t.Fatalf("valid token from a throttled address: %d, want 429", r.status)
	}
	if r := call(guesser, "", "X-Admin-Key", e.adminKey); r.status != http.StatusTooManyRequests {
		t.Fatalf("admin key from a throttled address: %d, want 429", r.status)
	}
	// Without a credential nothing is guessed: 401 as ever.
	if r := call(guesser, ""); r.status != http.StatusUnauthorized {
		t.Fatalf("no credential from a throttled address: %d, want 401", r.status)
	}
	// Another address is not affected, and wrong admin keys count there.
	if r := call(other, good); r.status != 200 {
		t.Fatalf("another address with a valid token: %d %s", r.status, r.body)
	}
	for i := 0; i < 5; i++ {
		if r := call(other, "", "X-Admin-Key", "guess-"+persistence.NewToken()); r.status != http.StatusUnauthorized {
			t.Fatalf("admin key guess %d: %d", i, r.status)
		}
	}
	if r := call(other, "", "X-Admin-Key", "guess"); r.status != http.StatusTooManyRequests {
		t.Fatalf("admin key guess beyond the burst: %d, want 429", r.status)
	}
	// One more attempt per interval.
	clock.Add(2 * time.Second)
	if r := call(guesser, persistence.NewToken()); r.status != http.StatusUnauthorized {
		t.Fatalf("a guess after one interval: %d, want 401", r.status)
	}
	if r := call(guesser, persistence.NewToken()); r.status != http.StatusTooManyRequests {
		t.Fatalf("a second guess in the same interval: %d, want 429", r.status)
	}
	// Once the bucket is full again the address is served (and forgotten).
	clock.Add(time.Minute)
	if r := call(guesser, good); r.status != 200 {
		t.Fatalf("the guesser's address after a quiet minute: %d %s", r.status, r.body)
	}
}
