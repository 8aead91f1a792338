package httpd_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/persistence"
	"github.com/octostore/octostore/tools/client"
)

// The event streams' security promises (issue 12 §4, §9, §14;
// docs/guarantees.md, "Security", "Event streams").

// collect reads s until it ends (failing after d) and returns its events.
func collect(t *testing.T, s *client.EventStream, d time.Duration) []client.Event {
	t.Helper()
	var evs []client.Event
	deadline := time.After(d)
	for {
		select {
		case e, ok := <-s.C:
			if !ok {
				return evs
			}
			evs = append(evs, e)
		case <-deadline:
			t.Fatalf("stream still open after %s (events so far %+v)", d, evs)
		}
	}
}

// createToken makes a token for login the way `octostore token create`
// does (a transaction that bumps the auth epoch).
func createToken(t *testing.T, a *httpd.TestServer, login string) string {
	t.Helper()
	raw, _, err := a.DB.CreateToken(context.Background(), login, "cli", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestEventStreamsEndOnRevocation: once a token is revoked or rotated, its
// open /events and /watch streams (a lock's, a config key's) end with a
// final revoked event; the same
// user's streams of another token, and the admin's, go on. In process
// (DELETE /auth/token, POST /auth/token/rotate) the streams end before the
// answer; `octostore token revoke` writes the database from another process,
// which the server notices through the auth epoch within
// httpd.PollInterval.
func TestEventStreamsEndOnRevocation(t *testing.T) {
	cases := []struct {
		name      string
		inProcess bool
		revoke    func(t *testing.T, a *httpd.TestServer, c *client.Client, tok string)
	}{
		{"DELETE /auth/token", true, func(t *testing.T, _ *httpd.TestServer, c *client.Client, _ string) {
			if err := c.RevokeToken(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
		{"POST /auth/token/rotate", true, func(t *testing.T, _ *httpd.TestServer, c *client.Client, _ string) {
			if _, err := c.RotateToken(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
		{"token revoke (auth epoch)", false, func(t *testing.T, a *httpd.TestServer, _ *client.Client, tok string) {
			fp := persistence.Fingerprint(persistence.HashToken(tok))
			if _, err := a.DB.RevokeTokens(context.Background(), persistence.RevokeSelector{Fingerprint: fp}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := evOptions(t, "")
			o.Server.EventHeartbeat = time.Hour // nothing but the revocation ends the streams
			a := evStart(t, o)
			ctx := context.Background()
			tok1, tok2 := createToken(t, a, "carol"), createToken(t, a, "carol")
			carol1, carol2, bob := evClient(t, a, tok1), evClient(t, a, tok2), evClient(t, a, "tokB")
			all := subscribe(t, carol1, client.EventFilter{})
			watch, err := carol1.WatchLock(ctx, "job")
			if err != nil {
				t.Fatal(err)
			}
			defer watch.Close()
			if e := next(t, watch, 5*time.Second); e.Type != "lock.state" {
				t.Fatalf("watch began with %+v", e)
			}
			cfgWatch, err := carol1.WatchConfig(ctx, "cfg")
			if err != nil {
				t.Fatal(err)
			}
			defer cfgWatch.Close()
			if e := next(t, cfgWatch, 5*time.Second); e.Type != client.EventConfigState {
				t.Fatalf("config watch began with %+v", e)
			}
			other := subscribe(t, carol2, client.EventFilter{})
			admin := subscribe(t, evClient(t, a, "adminkey"), client.EventFilter{})

			start := time.Now()
			tc.revoke(t, a, carol1, tok1)
			if tc.inProcess {
				// Published after the revocation answered: never delivered.
				if _, err := bob.Acquire(ctx, "job", 30*time.Second); err != nil {
					t.Fatal(err)
				}
				if _, err := carol2.SetConfig(ctx, "cfg", client.ConfigWrite{Value: 1}); err != nil {
					t.Fatal(err)
				}
			}
			bound := 10 * time.Second
			if !tc.inProcess {
				bound = 10 * httpd.PollInterval
			}
			for name, s := range map[string]*client.EventStream{"/events": all, "/watch": watch, "/config/cfg/watch": cfgWatch} {
				evs := collect(t, s, bound)
				if len(evs) == 0 || evs[len(evs)-1].Type != client.EventRevoked || !errors.Is(s.Err(), client.ErrRevoked) {
					t.Fatalf("%s: events %+v, err %v; want a final revoked event and ErrRevoked", name, evs, s.Err())
				}
				if tc.inProcess && len(evs) != 1 {
					t.Fatalf("%s delivered %+v after the revocation answered", name, evs[:len(evs)-1])
				}
			}
			t.Logf("streams ended %v after the revocation began", time.Since(start).Round(time.Millisecond))
			if !errors.Is(client.ErrRevoked, client.ErrUnauthorized) {
				t.Fatal("ErrRevoked is not a case of ErrUnauthorized")
			}

			// The user's other token and the admin go on.
			if _, err := bob.Acquire(ctx, "marker", 30*time.Second); err != nil {
				t.Fatal(err)
			}
			for name, s := range map[string]*client.EventStream{"carol's other token": other, "admin": admin} {
				for {
					e := next(t, s, 5*time.Second)
					if e.Name == "marker" {
						break
					}
					if e.Type == client.EventRevoked {
						t.Fatalf("%s's stream was revoked", name)
					}
				}
			}
			// The revoked token opens no new stream.
			if _, err := evClient(t, a, tok1).Events(ctx, client.EventFilter{}); !errors.Is(err, client.ErrUnauthorized) {
				t.Fatalf("a new stream with the revoked token: %v, want 401", err)
			}
			if st := a.Events.Stats(); st.Revoked != 3 {
				t.Fatalf("broker stats %+v, want 3 revoked", st)
			}
		})
	}
}

// TestEventStreamRevokedWhileOpening: a stream that is being opened while
// its token is revoked does not outlive the revocation (it is refused, or
// opened and then ended with revoked), however the two interleave.
func TestEventStreamRevokedWhileOpening(t *testing.T) {
	a := evStart(t, evOptions(t, ""))
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		tok := createToken(t, a, "carol")
		c := evClient(t, a, tok)
		if _, err := c.ListLocks(ctx); err != nil { // cached: the stream's request authenticates from the cache
			t.Fatal(err)
		}
		opened := make(chan *client.EventStream, 1)
		go func() {
			s, err := c.Events(ctx, client.EventFilter{})
			if err != nil {
				s = nil
			}
			opened <- s
		}()
		if err := evClient(t, a, tok).RevokeToken(ctx); err != nil {
			t.Fatal(err)
		}
		s := <-opened
		if s == nil {
			continue // refused: fine
		}
		evs := collect(t, s, 10*time.Second)
		if len(evs) != 1 || evs[0].Type != client.EventRevoked {
			t.Fatalf("round %d: a stream opened around the revocation got %+v (err %v)", i, evs, s.Err())
		}
	}
}

// TestEventStreamCap: a user (and the admin key) has at most
// MaxStreamsPerUser streams open (default 16); the next is refused with 429
// and Retry-After, other users are not affected, and a slot frees when one
// of the user's streams ends.
func TestEventStreamCap(t *testing.T) {
	a := evStart(t, evOptions(t, ""))
	ctx := context.Background()
	for _, tok := range []string{"tokA", "adminkey"} {
		c := evClient(t, a, tok)
		if tok == "adminkey" {
			client.WithOwner("alice")(c) // config watches name the owner
		}
		var streams []*client.EventStream
		for i := 0; i < httpd.DefaultMaxStreamsPerUser; i++ {
			var s *client.EventStream
			var err error
			switch i % 3 {
			case 0:
				s, err = c.Events(ctx, client.EventFilter{})
			case 1:
				s, err = c.WatchLock(ctx, fmt.Sprint("w", i))
			default:
				s, err = c.WatchConfig(ctx, fmt.Sprint("c", i))
			}
			if err != nil {
				t.Fatalf("%s: stream %d: %v", tok, i+1, err)
			}
			t.Cleanup(func() { s.Close() })
			streams = append(streams, s)
		}
		for _, open := range []func() (*client.EventStream, error){
			func() (*client.EventStream, error) { return c.Events(ctx, client.EventFilter{}) },
			func() (*client.EventStream, error) { return c.WatchLock(ctx, "one-more") },
			func() (*client.EventStream, error) { return c.WatchConfig(ctx, "one-more") },
		} {
			_, err := open()
			var ae *client.APIError
			if !errors.Is(err, client.ErrRateLimited) || !errors.As(err, &ae) || ae.RetryAfter != 5*time.Second ||
				!strings.Contains(ae.Message, "16") {
				t.Fatalf("%s: stream %d: %v, want 429 with Retry-After: 5 naming the cap", tok, httpd.DefaultMaxStreamsPerUser+1, err)
			}
		}
		// A slot frees once a stream ends.
		before := a.Events.Stats().Subscribers
		streams[0].Close()
		waitFor(t, 10*time.Second, "the closed stream to end on the server", func() bool { return a.Events.Stats().Subscribers < before })
		s, err := c.Events(ctx, client.EventFilter{})
		if err != nil {
			t.Fatalf("%s: a stream after one ended: %v", tok, err)
		}
		t.Cleanup(func() { s.Close() })
	}
	// bob is not affected by alice's or the admin's streams.
	subscribe(t, evClient(t, a, "tokB"), client.EventFilter{})
}

// TestEventStreamCapKeepsServerReachable: one user trying to hold every
// connection in streams (issue 12 §9: 200 streams with --max-conns 200)
// gets MaxStreamsPerUser of them; other users and /health still get in.
func TestEventStreamCapKeepsServerReachable(t *testing.T) {
	o := evOptions(t, "")
	o.Server.MaxConns = 24
	a := evStart(t, o)
	if open := openStreams(t, a.Addr(), "/events", "tokA", o.Server.MaxConns); open != httpd.DefaultMaxStreamsPerUser {
		t.Fatalf("alice opened %d streams, want %d", open, httpd.DefaultMaxStreamsPerUser)
	}
	bob := evClient(t, a, "tokB")
	if _, err := bob.Acquire(context.Background(), "reachable", 30*time.Second); err != nil {
		t.Fatalf("bob's request with alice's streams open: %v", err)
	}
	if err := bob.Health(context.Background()); err != nil {
		t.Fatalf("/health with alice's streams open: %v", err)
	}
	resp, _ := httpd.HTTPCall(t, http.DefaultClient, "GET", a.URL()+"/health", "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/health: %d", resp.StatusCode)
	}
}

// TestEventIDsPerScope: a stream numbers the events its caller may see, so
// other users' private writes leave no gaps in its ids; the ids resume the
// stream (Last-Event-ID) with exactly the events missed, numbered as they
// would have been, and an id that cannot be resumed gets a reset first.
func TestEventIDsPerScope(t *testing.T) {
	a := evStart(t, evOptions(t, ""))
	ctx := context.Background()
	alice, bob := evClient(t, a, "tokA"), evClient(t, a, "tokB")
	s := subscribe(t, alice, client.EventFilter{})
	// bobPrivate writes what alice may not see: his config, flags, limits.
	bobPrivate := func(i int) {
		t.Helper()
		if _, err := bob.SetConfig(ctx, "secret", client.ConfigWrite{Value: i}); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.SetFlag(ctx, "hidden", client.FlagSpec{Enabled: i%2 == 0}); err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second is denied: limit.denied
			if _, err := bob.CheckLimit(ctx, "api", 1, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		if err := bob.ResetLimit(ctx, "api"); err != nil {
			t.Fatal(err)
		}
	}
	// visible makes two events alice sees: bob's lock cycle (public) and
	// alice's own flag.
	visible := func(i int) {
		t.Helper()
		if _, err := bob.Acquire(ctx, fmt.Sprint("pub-", i), 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SetFlag(ctx, "mine", client.FlagSpec{Enabled: i%2 == 0}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		bobPrivate(i)
		visible(i)
	}
	var last client.Event
	for want := uint64(1); want <= 10; want++ {
		e := next(t, s, 5*time.Second)
		if e.Seq != want || e.ID != a.Events.ID(want) || e.Owner == "bob" {
			t.Fatalf("event %+v (id %s), want number %d: other users' writes must leave no gap", e, e.ID, want)
		}
		if e.LeaseID != "" {
			t.Fatalf("bob's lease id reached alice: %+v", e)
		}
		last = e
	}
	s.Close()

	// Missed while away: resumed with exactly those, numbered 11…14.
	for i := 5; i < 7; i++ {
		bobPrivate(i)
		visible(i)
	}
	r := subscribe(t, alice, client.EventFilter{LastEventID: last.ID})
	for want := uint64(11); want <= 14; want++ {
		e := next(t, r, 5*time.Second)
		if e.Seq != want || e.ID != a.Events.ID(want) || e.Owner == "bob" || e.Type == client.EventReset {
			t.Fatalf("resumed event %+v, want number %d", e, want)
		}
	}
	visible(7) // live after the replay: 15, 16
	for want := uint64(15); want <= 16; want++ {
		if e := next(t, r, 5*time.Second); e.Seq != want {
			t.Fatalf("live event after the replay %+v, want number %d", e, want)
		}
	}
	// A filtered resume replays only what the filter selects.
	f := subscribe(t, alice, client.EventFilter{Kind: "flag", LastEventID: last.ID})
	for _, want := range []uint64{12, 14, 16} {
		if e := next(t, f, 5*time.Second); e.Seq != want || e.Kind != "flag" {
			t.Fatalf("resumed kind=flag event %+v, want number %d", e, want)
		}
	}
	// An id of another server (or a restarted one): reset, then live.
	x := subscribe(t, alice, client.EventFilter{LastEventID: "0badbeef-3"})
	if e := next(t, x, 5*time.Second); e.Type != client.EventReset || e.Seq != 16 || e.ID != a.Events.ID(16) {
		t.Fatalf("resume from a foreign id began with %+v, want reset at 16", e)
	}
	visible(8)
	if e := next(t, x, 5*time.Second); e.Seq != 17 {
		t.Fatalf("after the reset: %+v, want number 17", e)
	}
	// A config watch numbers in its caller's scope too: its state has the
	// caller's position, its events follow without gaps for other users'
	// writes, and it sees its key only.
	w := watchConfig(t, a, "tokA", "mine")
	if e := next(t, w, 5*time.Second); e.Type != client.EventConfigState || e.Seq != 18 || e.ID != a.Events.ID(18) {
		t.Fatalf("config watch began with %+v (id %s), want config.state numbered 18", e, e.ID)
	}
	bobPrivate(9)
	if _, err := alice.SetConfig(ctx, "other", client.ConfigWrite{Value: 1}); err != nil { // 19, not this key
		t.Fatal(err)
	}
	if _, err := alice.SetConfig(ctx, "mine", client.ConfigWrite{Value: 2}); err != nil { // 20
		t.Fatal(err)
	}
	if e := next(t, w, 5*time.Second); e.Type != client.EventConfigWritten || e.Seq != 20 || e.ID != a.Events.ID(20) || e.Name != "mine" {
		t.Fatalf("config watch event %+v (id %s), want config.written of mine numbered 20", e, e.ID)
	}
	// The admin's stream numbers every event.
	ad := subscribe(t, evClient(t, a, "adminkey"), client.EventFilter{LastEventID: a.Events.ID(a.Events.Seq() - 1)})
	if e := next(t, ad, 5*time.Second); e.Seq != a.Events.Seq() {
		t.Fatalf("admin resumed with %+v, want the last event (%d)", e, a.Events.Seq())
	}
}
