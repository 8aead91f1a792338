package httpd_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
)

// Bob can never read, change or delete alice's flag, config key or limit:
// the same names are separate resources.
func TestCrossUserIsolation(t *testing.T) {
	e := rsStart(t, nil)
	e.do(t, "PUT", "/flags/shared", rsAlice, `{"enabled":true}`).want(t, 200)
	e.do(t, "PUT", "/config/shared", rsAlice, `{"value":"alice's","description":"secret"}`).want(t, 200)
	e.do(t, "POST", "/limits/shared/check", rsAlice, `{"max_requests":1,"window_seconds":3600}`).want(t, 200)

	// reads: bob sees nothing of alice's
	if m := e.do(t, "GET", "/flags/shared?subject=alice", rsBob, "").want(t, 200).obj(t); m["enabled"] != false || m["reason"] != "FLAG_NOT_FOUND" {
		t.Fatalf("bob evaluates alice's flag: %v", m)
	}
	e.do(t, "GET", "/config/shared", rsBob, "").want(t, 404)
	e.do(t, "GET", "/config/shared?version=1", rsBob, "").want(t, 404)
	e.do(t, "GET", "/config/shared/history", rsBob, "").want(t, 404)
	e.do(t, "GET", "/limits/shared", rsBob, "").want(t, 404)
	for _, p := range []string{"/flags", "/config", "/limits"} {
		r := e.do(t, "GET", p, rsBob, "").want(t, 200)
		if want := map[string]string{"/flags": `{"flags":[],"total":0}`, "/config": `{"configs":[],"total":0}`, "/limits": `{"limits":[],"total":0}`}[p]; r.String() != want {
			t.Fatalf("bob's %s: %s", p, r)
		}
	}
	// ?owner= naming someone else is refused for users
	for _, p := range []string{"/flags/shared?owner=alice", "/config/shared?owner=alice", "/limits/shared?owner=alice", "/flags?owner=alice", "/config/shared/history?owner=alice"} {
		e.do(t, "GET", p, rsBob, "").want(t, 403, "admin")
	}
	e.do(t, "PUT", "/flags/shared?owner=alice", rsBob, `{"enabled":false}`).want(t, 403)
	e.do(t, "DELETE", "/config/shared?owner=alice", rsBob, "").want(t, 403)
	// naming yourself is fine
	e.do(t, "GET", "/flags/shared?owner=bob", rsBob, "").want(t, 200)

	// deletes: 404, alice's stay
	e.do(t, "DELETE", "/flags/shared", rsBob, "").want(t, 404)
	e.do(t, "DELETE", "/config/shared", rsBob, "").want(t, 404)
	e.do(t, "DELETE", "/limits/shared", rsBob, "").want(t, 404)

	// writes: bob's own resources of the same name, alice's unchanged
	e.do(t, "PUT", "/flags/shared", rsBob, `{"enabled":false}`).want(t, 200)
	if m := e.do(t, "PUT", "/config/shared", rsBob, `{"value":"bob's"}`).want(t, 200).obj(t); num(t, m["version"]) != 1 || m["description"] != "" {
		t.Fatalf("bob's config: %v", m)
	}
	e.do(t, "PUT", "/config/shared", rsBob, `{"value":"x"}`, "If-Match", "1").want(t, 200)
	if m := e.do(t, "POST", "/limits/shared/check", rsBob, `{"max_requests":1,"window_seconds":3600}`).obj(t); m["allowed"] != true {
		t.Fatalf("bob's limit shares alice's counter: %v", m)
	}
	if m := e.do(t, "GET", "/flags/shared", rsAlice, "").obj(t); m["enabled"] != true || m["reason"] != "STATIC" {
		t.Fatalf("alice's flag changed: %v", m)
	}
	r := e.do(t, "GET", "/config/shared", rsAlice, "").want(t, 200)
	if m := r.obj(t); rawValue(t, r.body) != `"alice's"` || num(t, m["version"]) != 1 || m["description"] != "secret" {
		t.Fatalf("alice's config changed: %s", r)
	}
	if m := e.do(t, "GET", "/limits/shared", rsAlice, "").obj(t); m["allowed"] != false {
		t.Fatalf("alice's limit changed: %v", m)
	}
	if l := e.do(t, "GET", "/flags", rsAlice, "").list(t, "flags"); len(l) != 1 || l[0]["enabled"] != true {
		t.Fatalf("alice's flags: %v", l)
	}
}

func TestAdminScope(t *testing.T) {
	e := rsStart(t, nil)
	e.do(t, "PUT", "/flags/f", rsAlice, `{"enabled":true}`).want(t, 200)
	e.do(t, "PUT", "/flags/g", rsBob, `{"enabled":false}`).want(t, 200)
	e.do(t, "PUT", "/config/c", rsBob, `{"value":1}`).want(t, 200)
	e.do(t, "POST", "/limits/l", rsBob, `{"max_requests":1,"window_seconds":1}`).want(t, 405)

	// listings: every user's, each item with its owner, ordered by owner
	// (user id: logins can change between two pages), then name
	l := e.do(t, "GET", "/flags", rsAdmin, "").want(t, 200).list(t, "flags")
	first, second := "alice", "bob"
	if e.app.UID(t, "bob") < e.app.UID(t, "alice") {
		first, second = "bob", "alice"
	}
	if len(l) != 2 || l[0]["owner"] != first || l[1]["owner"] != second || l[0]["name"] != map[string]string{"alice": "f", "bob": "g"}[first] {
		t.Fatalf("admin flags: %v (want %s's first: user ids %q, %q)", l, first, e.app.UID(t, "alice"), e.app.UID(t, "bob"))
	}
	if l := e.do(t, "GET", "/config", "", "", "X-Admin-Key", rsAdmin).want(t, 200).list(t, "configs"); len(l) != 1 || l[0]["owner"] != "bob" {
		t.Fatalf("admin config (X-Admin-Key): %v", l)
	}
	if l := e.do(t, "GET", "/flags?owner=alice", rsAdmin, "").list(t, "flags"); len(l) != 1 || l[0]["owner"] != "alice" {
		t.Fatalf("admin flags of alice: %v", l)
	}
	// single resources need ?owner=
	e.do(t, "GET", "/flags/f", rsAdmin, "").want(t, 422, "owner")
	e.do(t, "GET", "/config/c", rsAdmin, "").want(t, 422, "owner")
	e.do(t, "GET", "/flags/f?owner=bad.name", rsAdmin, "").want(t, 422, "owner")
	// the default subject of an admin evaluation is the owner
	if m := e.do(t, "GET", "/flags/f?owner=alice", rsAdmin, "").want(t, 200).obj(t); m["enabled"] != true {
		t.Fatalf("admin evaluates alice's flag: %v", m)
	}
	if m := e.do(t, "GET", "/config/c?owner=bob", rsAdmin, "").want(t, 200).obj(t); num(t, m["version"]) != 1 {
		t.Fatalf("admin reads bob's config: %v", m)
	}
	// writes without ?owner= are refused: the admin key owns nothing
	e.do(t, "PUT", "/flags/f", rsAdmin, `{"enabled":false}`).want(t, 403, "admin")
	e.do(t, "PUT", "/config/c", rsAdmin, `{"value":2}`).want(t, 403)
	e.do(t, "DELETE", "/flags/f", rsAdmin, "").want(t, 403)
	e.do(t, "POST", "/limits/l/check", rsAdmin, check3).want(t, 403)
	// with ?owner= they act on that user's resource
	e.do(t, "PUT", "/flags/f?owner=alice", rsAdmin, `{"enabled":false}`).want(t, 200)
	if m := e.do(t, "GET", "/flags/f", rsAlice, "").obj(t); m["enabled"] != false {
		t.Fatalf("admin write not applied to alice's flag: %v", m)
	}
	e.do(t, "PUT", "/config/c?owner=bob", rsAdmin, `{"value":2}`, "If-Match", "1").want(t, 200)
	e.do(t, "POST", "/limits/l/check?owner=bob", rsAdmin, check3).want(t, 200)
	e.do(t, "DELETE", "/limits/l?owner=bob", rsAdmin, "").want(t, 200)
	e.do(t, "DELETE", "/config/c?owner=bob", rsAdmin, "").want(t, 200)
	e.do(t, "GET", "/config/c", rsBob, "").want(t, 404)
}

func TestQuotas(t *testing.T) {
	e := rsStart(t, func(o *httpd.TestOptions) {
		o.Flags.MaxPerUser, o.ConfigKeys.MaxPerUser, o.Limits.MaxPerUser = 2, 2, 2
	})
	for i := 0; i < 2; i++ {
		e.do(t, "PUT", fmt.Sprintf("/flags/f%d", i), rsAlice, `{"enabled":true}`).want(t, 200)
		e.do(t, "PUT", fmt.Sprintf("/config/c%d", i), rsAlice, `{"value":1}`).want(t, 200)
		e.do(t, "POST", fmt.Sprintf("/limits/l%d/check", i), rsAlice, check3).want(t, 200)
	}
	over := func() {
		t.Helper()
		e.do(t, "PUT", "/flags/f9", rsAlice, `{"enabled":true}`).want(t, 403, "at most 2 flags per user")
		e.do(t, "PUT", "/config/c9", rsAlice, `{"value":1}`).want(t, 403, "at most 2 config keys per user")
		e.do(t, "POST", "/limits/l9/check", rsAlice, check3).want(t, 403, "at most 2 rate limits per user")
	}
	over()
	// existing resources can still be updated; other users are not affected
	e.do(t, "PUT", "/flags/f0", rsAlice, `{"enabled":false}`).want(t, 200)
	e.do(t, "PUT", "/config/c0", rsAlice, `{"value":2}`).want(t, 200)
	e.do(t, "POST", "/limits/l0/check", rsAlice, check3).want(t, 200)
	e.do(t, "PUT", "/flags/f9", rsBob, `{"enabled":true}`).want(t, 200)
	// a refused creation left nothing behind
	if m := e.do(t, "GET", "/flags/f9", rsAlice, "").obj(t); m["reason"] != "FLAG_NOT_FOUND" {
		t.Fatalf("refused flag exists: %v", m)
	}
	e.do(t, "GET", "/limits/l9", rsAlice, "").want(t, 404)
	// counts come from the database after a restart
	e.restart(t)
	over()
	// deleting frees a slot
	e.do(t, "DELETE", "/flags/f1", rsAlice, "").want(t, 200)
	e.do(t, "DELETE", "/config/c1", rsAlice, "").want(t, 200)
	e.do(t, "DELETE", "/limits/l1", rsAlice, "").want(t, 200)
	e.do(t, "PUT", "/flags/f9", rsAlice, `{"enabled":true}`).want(t, 200)
	e.do(t, "PUT", "/config/c9", rsAlice, `{"value":1}`).want(t, 200)
	e.do(t, "POST", "/limits/l9/check", rsAlice, check3).want(t, 200)
	over2 := e.do(t, "PUT", "/flags/f8", rsAlice, `{"enabled":true}`)
	over2.want(t, 403)
	// after an idle passivation and a restart the counts are still right
	e.restart(t)
	e.do(t, "PUT", "/flags/f8", rsAlice, `{"enabled":true}`).want(t, 403)
	e.do(t, "PUT", "/flags/f9", rsAlice, `{"enabled":false}`).want(t, 200)
}

// A graceful restart loses nothing: flags, config versions and history,
// and the write-behind rate limit counters.
func TestRestartKeepsEverything(t *testing.T) {
	e := rsStart(t, nil)
	e.do(t, "PUT", "/flags/beta", rsAlice, `{"enabled":true,"percentage":40}`).want(t, 200)
	for i := 1; i <= 3; i++ {
		e.do(t, "PUT", "/config/k", rsAlice, fmt.Sprintf(`{"value":{"n":%d.0},"description":"d%d"}`, i, i)).want(t, 200)
	}
	for i := 0; i < 7; i++ {
		e.do(t, "POST", "/limits/api/check", rsAlice, `{"max_requests":10,"window_seconds":60}`).want(t, 200)
		e.clock.Add(time.Second)
	}
	flagsBefore := e.do(t, "GET", "/flags", rsAlice, "").String()
	histBefore := e.do(t, "GET", "/config/k/history", rsAlice, "").String()
	e.restart(t)
	if got := e.do(t, "GET", "/flags", rsAlice, "").String(); got != flagsBefore {
		t.Fatalf("flags after restart:\n%s\nbefore:\n%s", got, flagsBefore)
	}
	if got := e.do(t, "GET", "/config/k/history", rsAlice, "").String(); got != histBefore {
		t.Fatalf("history after restart:\n%s\nbefore:\n%s", got, histBefore)
	}
	m := e.do(t, "GET", "/limits/api", rsAlice, "").want(t, 200).obj(t)
	if num(t, m["remaining"]) != 3 || !rsTime(t, m["reset_at"]).Equal(rsT0.Add(time.Minute)) {
		t.Fatalf("limit after restart: %v", m)
	}
	// the next config version continues
	if m := e.do(t, "PUT", "/config/k", rsAlice, `{"value":4}`, "If-Match", "3").want(t, 200).obj(t); num(t, m["version"]) != 4 || m["description"] != "d3" {
		t.Fatalf("after restart: %v", m)
	}
	// the window keeps sliding across the restart
	e.clock.Add(53 * time.Second) // t0+60s: exactly the first check has left
	if m := e.do(t, "POST", "/limits/api/check", rsAlice, `{"max_requests":10,"window_seconds":60}`).obj(t); num(t, m["remaining"]) != 3 {
		t.Fatalf("after the window slid: %v", m)
	}
}

// Actors passivated while idle reload their state from the database.
func TestPassivationReloads(t *testing.T) {
	e := rsStart(t, func(o *httpd.TestOptions) { o.Actors.IdleTimeout = 20 * time.Millisecond })
	e.do(t, "PUT", "/flags/f", rsAlice, `{"enabled":true,"percentage":10}`).want(t, 200)
	e.do(t, "PUT", "/config/k", rsAlice, `{"value":[1]}`).want(t, 200)
	for i := 0; i < 5; i++ {
		e.do(t, "POST", "/limits/l/check", rsAlice, check3)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.app.Sys.LiveActors() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d actors still live", e.app.Sys.LiveActors())
		}
		time.Sleep(10 * time.Millisecond) // nothing signals a passivation
	}
	if m := e.do(t, "GET", "/limits/l", rsAlice, "").obj(t); m["allowed"] != false || num(t, m["remaining"]) != 0 {
		t.Fatalf("limit reloaded: %v", m)
	}
	if m := e.do(t, "PUT", "/config/k", rsAlice, `{"value":[2]}`, "If-Match", "1").want(t, 200).obj(t); num(t, m["version"]) != 2 {
		t.Fatalf("config reloaded: %v", m)
	}
	if l := e.do(t, "GET", "/flags", rsAlice, "").list(t, "flags"); num(t, l[0]["percentage"]) != 10 {
		t.Fatalf("flag reloaded: %v", l)
	}
}
