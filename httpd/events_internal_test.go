package httpd

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

func TestStaleForState(t *testing.T) {
	exp := time.Date(2030, 1, 1, 0, 0, 30, 0, time.UTC)
	held := actors.LockRecord{Name: "x", Holder: "alice", Token: 5, ExpiresAt: exp}
	free := actors.LockRecord{Name: "x", Token: 5}
	ev := func(seq uint64, typ string, token uint64, exp time.Time) *actors.Event {
		return &actors.Event{Seq: seq, Type: typ, Kind: "lock", Name: "x", FencingToken: token, ExpiresAt: exp}
	}
	cases := []struct {
		name  string
		e     *actors.Event
		held  bool
		state actors.LockRecord
		stale bool
	}{
		{"published before the read", ev(10, actors.EventLockAcquired, 9, exp), true, held, true},
		{"older grant", ev(11, actors.EventLockReleased, 4, exp), true, held, true},
		{"the grant the state shows", ev(11, actors.EventLockAcquired, 5, exp), true, held, true},
		{"renewal the state shows", ev(11, actors.EventLockRenewed, 5, exp), true, held, true},
		{"later renewal", ev(11, actors.EventLockRenewed, 5, exp.Add(time.Second)), true, held, false},
		{"release of the held grant", ev(11, actors.EventLockReleased, 5, exp), true, held, false},
		{"expiry of the held grant", ev(11, actors.EventLockExpired, 5, exp), true, held, false},
		{"newer grant", ev(11, actors.EventLockAcquired, 6, exp), true, held, false},
		{"release the free state shows", ev(11, actors.EventLockReleased, 5, exp), false, free, true},
		{"grant after the free state", ev(11, actors.EventLockAcquired, 6, exp), false, free, false},
		{"lagged always passes", &actors.Event{Seq: 3, Type: actors.EventLagged}, true, held, false},
		{"revoked always passes", &actors.Event{Seq: 3, Type: actors.EventRevoked}, true, held, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := staleForState(tc.e, 10, tc.held, tc.state); got != tc.stale {
				t.Fatalf("stale = %v, want %v", got, tc.stale)
			}
		})
	}
}

func TestAppendEventJSON(t *testing.T) {
	e := actors.Event{Seq: 7, Type: "lock.acquired", Kind: "lock", Name: `a"b`, Holder: "alice",
		LeaseID: "L", FencingToken: 3, ExpiresAt: time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC),
		Time: time.Date(2030, 1, 2, 3, 4, 0, 123456789, time.UTC)}
	got := string(appendEventJSON(nil, &e))
	want := `{"seq":7,"type":"lock.acquired","kind":"lock","name":"a\"b","holder":"alice","fencing_token":3,"lease_id":"L","expires_at":"2030-01-02T03:04:05.006Z","time":"2030-01-02T03:04:00.123456789Z"}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// It decodes into the same event.
	var back actors.Event
	if err := json.Unmarshal([]byte(got), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, e) {
		t.Fatalf("round trip: %+v", back)
	}
	// A config watch's events: value (compact) and description, exists.
	yes := true
	ce := actors.Event{Seq: 8, Type: actors.EventConfigState, Kind: "config", Name: "app", Owner: "alice", Version: 3,
		Exists: &yes, Value: []byte(`{"a":[1,"<b>"]}`), Description: "d\"q", Time: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	if got := string(appendEventJSON(nil, &ce)); got != `{"seq":8,"type":"config.state","kind":"config","name":"app","owner":"alice","version":3,"exists":true,"value":{"a":[1,"<b>"]},"description":"d\"q","time":"2030-01-01T00:00:00Z"}` {
		t.Fatalf("config state = %s", got)
	}
	// Fields that do not apply are left out.
	lag := actors.Event{Seq: 9, Type: actors.EventLagged}
	if got := string(appendEventJSON(nil, &lag)); got != `{"seq":9,"type":"lagged"}` {
		t.Fatalf("lagged = %s", got)
	}
	// A frame's id is the broker's id of the number; lagged and revoked
	// have none (a client reconnecting resumes after what it received).
	br := actors.NewBroker(actors.BrokerOptions{})
	if frame, want := string(appendSSE(nil, br, &e)), "id: "+br.ID(7)+"\nevent: lock.acquired\ndata: "+got+"\n\n"; frame != want {
		t.Fatalf("frame = %q, want %q", frame, want)
	}
	if frame := string(appendSSE(nil, br, &lag)); frame != "event: lagged\ndata: {\"seq\":9,\"type\":\"lagged\"}\n\n" {
		t.Fatalf("frame = %q", frame)
	}
	rev := actors.Event{Seq: 9, Type: actors.EventRevoked}
	if frame := string(appendSSE(nil, br, &rev)); frame != "event: revoked\ndata: {\"seq\":9,\"type\":\"revoked\"}\n\n" {
		t.Fatalf("frame = %q", frame)
	}
}

// TestInstrumentAllocs: once a route, method and status have been seen, the
// request instrumentation allocates nothing.
func TestInstrumentAllocs(t *testing.T) {
	m := NewMetrics()
	h := m.Instrument(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(200) })
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.SetUserValue(matchedRouteKey, newRouteInfo("/locks/{name}/acquire"))
	h(&ctx)
	if n := testing.AllocsPerRun(1000, func() { h(&ctx) }); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}

func BenchmarkInstrument(b *testing.B) {
	m := NewMetrics()
	h := m.Instrument(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(200) })
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.SetUserValue(matchedRouteKey, newRouteInfo("/locks/{name}/acquire"))
	b.ReportAllocs()
	for b.Loop() {
		h(&ctx)
	}
}

// TestStreamOpenedAfterTheSweepIsRefused: the interleaving the check in
// eventStreams.open exists for. A stream request authenticated (from the
// cache) before its token was revoked, whose stream is registered only after
// the revocation swept the open streams, must not be served.
func TestStreamOpenedAfterTheSweepIsRefused(t *testing.T) {
	ts := MustStartTestServer(t, TestOptions{})
	raw, _, err := ts.DB.CreateToken(context.Background(), "carol", "cli", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.Set("Authorization", "Bearer "+raw)
	p, err := ts.Auth.Authenticate(&ctx) // cached from here on
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Store.Revoke(p.Hash); err != nil {
		t.Fatal(err)
	}
	ts.Auth.Invalidate(p.Hash) // sweeps: no stream registered yet
	sub, err := ts.Events.Subscribe(actors.Filter{Login: p.Login})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := ts.server.events.open(&ctx, &p, sub); !errors.Is(err, errBadToken) {
		if st != nil {
			ts.server.events.remove(st) // no connection to end at shutdown
		}
		t.Fatalf("open after the sweep: %v, want errBadToken", err)
	}
	if n := len(ts.server.events.streams); n != 0 {
		t.Fatalf("%d streams registered", n)
	}
	if _, done := sub.Take(nil); !done {
		t.Fatal("the refused stream's subscription is still open")
	}
	// A token that is still valid opens.
	p2 := Principal{Login: "*admin*", Admin: true}
	sub2, _ := ts.Events.Subscribe(actors.Filter{Login: p2.Login, Admin: true})
	st, err := ts.server.events.open(&ctx, &p2, sub2)
	if err != nil {
		t.Fatal(err)
	}
	ts.server.events.remove(st) // never served: no connection to end at shutdown
	sub2.Close()
}
