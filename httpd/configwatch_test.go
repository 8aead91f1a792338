package httpd_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/tools/client"
)

// Rollback over HTTP: a new version with the old value (byte for byte) and
// description, conditions as for PUT, 404 for unknown and pruned versions,
// bad input 422 changing nothing.
func TestConfigRollback(t *testing.T) {
	e := rsStart(t, func(o *httpd.TestOptions) { o.ConfigKeys.History = 3 })
	e.do(t, "PUT", "/config/app", rsAlice, `{"value": {"pool": 1.50 }, "description":"one"}`).want(t, 200)
	e.do(t, "PUT", "/config/app", rsAlice, `{"value":2,"description":"two"}`).want(t, 200)
	e.do(t, "PUT", "/config/app", rsAlice, `{"value":3}`).want(t, 200)
	r := e.do(t, "POST", "/config/app/rollback", rsAlice, `{"version":1}`).want(t, 200)
	if m := r.obj(t); num(t, m["version"]) != 4 || m["description"] != "one" || r.header.Get("ETag") != `"4"` ||
		rawValue(t, r.body) != `{"pool": 1.50 }` {
		t.Fatalf("rollback to 1: %s %v", r, r.header)
	}
	if got := rawValue(t, e.do(t, "GET", "/config/app", rsAlice, "").body); got != `{"pool": 1.50 }` {
		t.Fatalf("current value %s", got)
	}
	// conditions: If-Match and expected_version, as for PUT
	if m := e.do(t, "POST", "/config/app/rollback", rsAlice, `{"version":2}`, "If-Match", `"3"`).want(t, 409).obj(t); num(t, m["current_version"]) != 4 {
		t.Fatalf("stale If-Match: %v", m)
	}
	e.do(t, "POST", "/config/app/rollback", rsAlice, `{"version":2,"expected_version":3}`).want(t, 409)
	e.do(t, "POST", "/config/app/rollback", rsAlice, `{"version":2,"expected_version":3}`, "If-Match", "4").want(t, 422, "disagree")
	if m := e.do(t, "POST", "/config/app/rollback", rsAlice, `{"version":2,"expected_version":4}`).want(t, 200).obj(t); num(t, m["version"]) != 5 || m["description"] != "two" {
		t.Fatalf("conditional rollback: %v", m)
	}
	// history keeps 3: versions 1 and 2 are pruned now
	e.do(t, "POST", "/config/app/rollback", rsAlice, `{"version":1}`).want(t, 404, "version not found")
	e.do(t, "POST", "/config/app/rollback", rsAlice, `{"version":99}`).want(t, 404)
	e.do(t, "POST", "/config/none/rollback", rsAlice, `{"version":1}`).want(t, 404)
	before := e.do(t, "GET", "/config/app/history", rsAlice, "").body
	for _, tc := range []struct{ body, fragment string }{
		{`{}`, "version is required"},
		{`{"version":0}`, "version must be between 1"},
		{`{"version":"3"}`, "version"},
		{`{"version":3.5}`, "version"},
		{`{"version":3,"version":4}`, "more than once"},
		{`{"version":3,"expected_version":-1}`, "expected_version"},
	} {
		e.do(t, "POST", "/config/app/rollback", rsAlice, tc.body).want(t, 422, tc.fragment)
	}
	e.do(t, "POST", "/config/app/rollback", rsAlice, `{"version":3}`, "If-Match", "01").want(t, 422, "If-Match")
	e.do(t, "POST", "/config/app/rollback", rsAlice, `{"version":`).want(t, 400)
	e.do(t, "POST", "/config/app/rollback", rsAdmin, `{"version":3}`).want(t, 403)
	e.do(t, "POST", "/config/app/rollback?owner=alice", rsBob, `{"version":3}`).want(t, 403)
	e.do(t, "POST", "/config/app/rollback", rsBob, `{"version":3}`).want(t, 404) // bob has no such key
	if after := e.do(t, "GET", "/config/app/history", rsAlice, "").body; string(after) != string(before) {
		t.Fatalf("refused rollbacks changed the history:\n%s\n%s", before, after)
	}
	if m := e.do(t, "POST", "/config/app/rollback?owner=alice", rsAdmin, `{"version":3}`).want(t, 200).obj(t); num(t, m["version"]) != 6 {
		t.Fatalf("admin rollback: %v", m)
	}
}

// watchConfig opens a config watch as token (through the contract
// checker), closed at cleanup.
func watchConfig(t *testing.T, a *httpd.TestServer, token, key string, opts ...client.Option) *client.EventStream {
	t.Helper()
	c := evClient(t, a, token)
	for _, o := range opts {
		o(c)
	}
	s, err := c.WatchConfig(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A config watch: the state first (a key that does not exist, then one
// that does), then every write with its value and every delete, in
// version order; only this key of this owner.
func TestConfigWatch(t *testing.T) {
	a := evStart(t, evOptions(t, ""))
	alice, bob := evClient(t, a, "tokA"), evClient(t, a, "tokB")
	ctx := context.Background()
	s := watchConfig(t, a, "tokA", "app.db")
	if e := next(t, s, 5*time.Second); e.Type != "config.state" || e.Name != "app.db" || e.Owner != "alice" || e.Exists == nil || *e.Exists || e.Version != 0 || e.Value != nil {
		t.Fatalf("state of a missing key: %+v", e)
	}
	if _, err := alice.SetConfig(ctx, "app.db", client.ConfigWrite{Value: map[string]any{"pool": 5}, Description: "db"}); err != nil {
		t.Fatal(err)
	}
	// noise the watch must not see: another key, another user's key of the same name
	alice.SetConfig(ctx, "other", client.ConfigWrite{Value: 1})
	bob.SetConfig(ctx, "app.db", client.ConfigWrite{Value: 2})
	// a value with whitespace (stored as sent): the event has it compact, on one line
	if resp, b := httpd.HTTPCall(t, apitest.Client(t, nil), "PUT", a.URL()+"/config/app.db", "tokA", "{\"value\":  [1,\n 2]  }"); resp.StatusCode != 200 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, b)
	}
	if _, err := alice.RollbackConfig(ctx, "app.db", 1, nil); err != nil {
		t.Fatal(err)
	}
	if err := alice.DeleteConfig(ctx, "app.db"); err != nil {
		t.Fatal(err)
	}
	for i, w := range []struct {
		typ, value, desc string
		version          int64
	}{
		{"config.written", `{"pool":5}`, "db", 1},
		{"config.written", `[1,2]`, "db", 2}, // compact: one line
		{"config.written", `{"pool":5}`, "db", 3},
		{"config.deleted", "", "", 3},
	} {
		e := next(t, s, 5*time.Second)
		if e.Type != w.typ || e.Version != w.version || string(e.Value) != w.value || e.Description != w.desc || e.Owner != "alice" || e.Name != "app.db" {
			t.Fatalf("event %d: %+v (value %s), want %s v%d %s", i, e, e.Value, w.typ, w.version, w.value)
		}
	}
	// a watch of a key that exists starts with its value
	alice.SetConfig(ctx, "app.db", client.ConfigWrite{Value: "back", Description: "again"})
	s2 := watchConfig(t, a, "tokA", "app.db")
	if e := next(t, s2, 5*time.Second); e.Type != "config.state" || e.Exists == nil || !*e.Exists || e.Version != 4 || string(e.Value) != `"back"` || e.Description != "again" {
		t.Fatalf("state of a live key: %+v (%s)", e, e.Value)
	}
	// the admin key watches alice's key with ?owner=
	s3 := watchConfig(t, a, "adminkey", "app.db", client.WithOwner("alice"))
	if e := next(t, s3, 5*time.Second); e.Type != "config.state" || e.Version != 4 {
		t.Fatalf("admin state: %+v", e)
	}
	alice.SetConfig(ctx, "app.db", client.ConfigWrite{Value: 5})
	bob.SetConfig(ctx, "app.db", client.ConfigWrite{Value: 6})
	for _, st := range []*client.EventStream{s2, s3} {
		if e := next(t, st, 5*time.Second); e.Type != "config.written" || e.Version != 5 || e.Owner != "alice" || string(e.Value) != "5" {
			t.Fatalf("after the state: %+v", e)
		}
	}
	// /events does not carry values
	ev := subscribe(t, alice, client.EventFilter{Kind: "config"})
	alice.SetConfig(ctx, "app.db", client.ConfigWrite{Value: 7})
	if e := next(t, ev, 5*time.Second); e.Type != "config.written" || e.Value != nil {
		t.Fatalf("/events: %+v", e)
	}
}

// The state and the events after it are one history, while writers race
// the subscription: every watch sees versions in order, without gaps or
// repeats, starting right after its state.
func TestConfigWatchConsistency(t *testing.T) {
	a := evStart(t, evOptions(t, ""))
	alice := evClient(t, a, "tokA")
	ctx := context.Background()
	alice.SetConfig(ctx, "k", client.ConfigWrite{Value: 0})
	const writes = 200
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= writes; i++ {
			if i%50 == 0 {
				alice.DeleteConfig(ctx, "k") // a delete now and then: the version goes on
			}
			alice.SetConfig(ctx, "k", client.ConfigWrite{Value: i})
		}
	}()
	var streams []*client.EventStream
	for i := 0; i < 8; i++ {
		streams = append(streams, watchConfig(t, a, "tokA", "k"))
	}
	wg.Wait()
	final, err := alice.GetConfig(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range streams {
		st := next(t, s, 5*time.Second)
		if st.Type != "config.state" {
			t.Fatalf("watch %d: first %+v", i, st)
		}
		v, live := st.Version, st.Exists != nil && *st.Exists
		for v < final.Version || !live {
			e := next(t, s, 5*time.Second)
			switch e.Type {
			case "config.written":
				if e.Version != v+1 || e.Value == nil {
					t.Fatalf("watch %d: after v%d (live %v) came %+v", i, v, live, e)
				}
				v, live = e.Version, true
			case "config.deleted":
				if !live || e.Version != v {
					t.Fatalf("watch %d: delete %+v after v%d live %v", i, e, v, live)
				}
				live = false
			default:
				t.Fatalf("watch %d: %+v", i, e)
			}
		}
	}
}
