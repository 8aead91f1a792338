package httpd_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
)

func TestFlagLifecycle(t *testing.T) {
	e := rsStart(t, nil)
	// unknown flag: 200, false, FLAG_NOT_FOUND
	if m := e.do(t, "GET", "/flags/beta", rsAlice, "").want(t, 200).obj(t); m["name"] != "beta" || m["enabled"] != false || m["reason"] != "FLAG_NOT_FOUND" {
		t.Fatalf("unknown: %v", m)
	}
	m := e.do(t, "PUT", "/flags/beta", rsAlice, `{"enabled":true,"percentage":30}`).want(t, 200).obj(t)
	if m["name"] != "beta" || m["enabled"] != true || num(t, m["percentage"]) != 30 ||
		!rsTime(t, m["created_at"]).Equal(rsT0) || !rsTime(t, m["updated_at"]).Equal(rsT0) {
		t.Fatalf("created: %v", m)
	}
	// SHA-256("beta:alice") → bucket 54 (docs/api.md): out at 30%
	if m := e.do(t, "GET", "/flags/beta?subject=alice", rsAlice, "").obj(t); m["enabled"] != false || m["reason"] != "SPLIT" {
		t.Fatalf("alice at 30%%: %v", m)
	}
	// the subject defaults to the caller's login
	if m := e.do(t, "GET", "/flags/beta", rsAlice, "").obj(t); m["enabled"] != false || m["reason"] != "SPLIT" {
		t.Fatalf("default subject: %v", m)
	}
	// "beta:bob" → bucket 21: in at 30%, for any caller asking about bob
	if m := e.do(t, "GET", "/flags/beta?subject=bob", rsAlice, "").obj(t); m["enabled"] != true || m["reason"] != "SPLIT" {
		t.Fatalf("subject bob at 30%%: %v", m)
	}
	// subjects are taken as given, query-decoded
	subj := "user@example.com/ü"
	want, _ := actors.EvaluateFlag(actors.FlagRecord{Name: "beta", Enabled: true, Percentage: 30}, true, []byte(subj))
	if m := e.do(t, "GET", "/flags/beta?subject="+url.QueryEscape(subj), rsAlice, "").obj(t); m["enabled"] != want {
		t.Fatalf("escaped subject: %v, want %v", m, want)
	}

	e.clock.Add(time.Minute)
	m = e.do(t, "PUT", "/flags/beta", rsAlice, `{"enabled":true,"percentage":55}`).want(t, 200).obj(t)
	if !rsTime(t, m["created_at"]).Equal(rsT0) || !rsTime(t, m["updated_at"]).Equal(rsT0.Add(time.Minute)) {
		t.Fatalf("created_at stays, updated_at moves: %v", m)
	}
	if m := e.do(t, "GET", "/flags/beta?subject=alice", rsAlice, "").obj(t); m["enabled"] != true {
		t.Fatalf("alice at 55%%: %v", m)
	}
	// no percentage: on for everyone; the answer has no percentage
	m = e.do(t, "PUT", "/flags/beta", rsAlice, `{"enabled":true}`).want(t, 200).obj(t)
	if v, has := m["percentage"]; has {
		t.Fatalf("percentage without rollout: %v (%v), want it left out", m, v)
	}
	if m := e.do(t, "GET", "/flags/beta?subject=anyone", rsAlice, "").obj(t); m["enabled"] != true || m["reason"] != "STATIC" {
		t.Fatalf("static: %v", m)
	}
	e.do(t, "PUT", "/flags/beta", rsAlice, `{"enabled":false,"percentage":100}`).want(t, 200)
	if m := e.do(t, "GET", "/flags/beta?subject=bob", rsAlice, "").obj(t); m["enabled"] != false || m["reason"] != "DISABLED" {
		t.Fatalf("disabled: %v", m)
	}
	e.do(t, "PUT", "/flags/alpha", rsAlice, `{"enabled":true}`).want(t, 200)

	l := e.do(t, "GET", "/flags", rsAlice, "").want(t, 200).list(t, "flags")
	_, alphaHasPct := l[0]["percentage"]
	if len(l) != 2 || l[0]["name"] != "alpha" || l[1]["name"] != "beta" || l[1]["enabled"] != false ||
		num(t, l[1]["percentage"]) != 100 || !rsTime(t, l[1]["created_at"]).Equal(rsT0) || alphaHasPct {
		t.Fatalf("list: %v", l)
	}
	if m := e.do(t, "DELETE", "/flags/beta", rsAlice, "").want(t, 200).obj(t); m["deleted"] != true {
		t.Fatalf("delete: %v", m)
	}
	e.do(t, "DELETE", "/flags/beta", rsAlice, "").want(t, 404, "not found")
	if m := e.do(t, "GET", "/flags/beta", rsAlice, "").obj(t); m["reason"] != "FLAG_NOT_FOUND" {
		t.Fatalf("after delete: %v", m)
	}
	if l := e.do(t, "GET", "/flags", rsAlice, "").list(t, "flags"); len(l) != 1 {
		t.Fatalf("list after delete: %v", l)
	}
	// re-created: a new created_at
	e.clock.Add(time.Minute)
	if m := e.do(t, "PUT", "/flags/beta", rsAlice, `{"enabled":true}`).obj(t); !rsTime(t, m["created_at"]).Equal(rsT0.Add(2 * time.Minute)) {
		t.Fatalf("re-created: %v", m)
	}
}

// The HTTP answers follow the documented hash for many subjects, and 30%
// of them get the flag.
func TestFlagEvaluationOverHTTP(t *testing.T) {
	e := rsStart(t, nil)
	e.do(t, "PUT", "/flags/new-checkout", rsAlice, `{"enabled":true,"percentage":30}`).want(t, 200)
	on := 0
	const n = 300
	for i := 0; i < n; i++ {
		subj := fmt.Sprintf("user-%d", i)
		m := e.do(t, "GET", "/flags/new-checkout?subject="+subj, rsAlice, "").obj(t)
		want := actors.FlagBucket("new-checkout", []byte(subj)) < 30
		if m["enabled"] != want {
			t.Fatalf("%s: %v, bucket says %v", subj, m, want)
		}
		if want {
			on++
		}
	}
	if on < n*20/100 || on > n*40/100 {
		t.Fatalf("%d of %d on at 30%%", on, n)
	}
}

func TestFlagValidation(t *testing.T) {
	e := rsStart(t, nil)
	long := strings.Repeat("f", 101)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		fragment                 string
	}{
		{"no enabled", "PUT", "/flags/f", `{"percentage":5}`, 422, "enabled is required"},
		{"enabled string", "PUT", "/flags/f", `{"enabled":"yes"}`, 422, "enabled"},
		{"enabled null", "PUT", "/flags/f", `{"enabled":null}`, 422, "enabled"},
		{"percentage 101", "PUT", "/flags/f", `{"enabled":true,"percentage":101}`, 422, "percentage"},
		{"percentage -1", "PUT", "/flags/f", `{"enabled":true,"percentage":-1}`, 422, "percentage"},
		{"percentage fraction", "PUT", "/flags/f", `{"enabled":true,"percentage":30.5}`, 422, "percentage"},
		{"percentage string", "PUT", "/flags/f", `{"enabled":true,"percentage":"30"}`, 422, "percentage"},
		{"percentage null", "PUT", "/flags/f", `{"enabled":true,"percentage":null}`, 422, "leave it out"},
		{"percentage null twice", "PUT", "/flags/f", `{"enabled":true,"percentage":null,"percentage":null}`, 422, "more than once"},
		{"name too long", "PUT", "/flags/" + long, `{"enabled":true}`, 422, "flag name"},
		{"name with a dot", "PUT", "/flags/a.b", `{"enabled":true}`, 422, "flag name"},
		{"get bad name", "GET", "/flags/a.b", "", 422, "flag name"},
		{"delete bad name", "DELETE", "/flags/" + long, "", 422, "flag name"},
		{"subject too long", "GET", "/flags/f?subject=" + strings.Repeat("s", 1025), "", 422, "subject"},
		{"not JSON", "PUT", "/flags/f", `{"enabled":tru`, 400, "JSON"},
		{"empty body", "PUT", "/flags/f", ` `, 400, ""},
		{"no token", "PUT", "/flags/f", `{"enabled":true}`, 401, ""},
		{"wrong method", "POST", "/flags/f", `{"enabled":true}`, 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := rsAlice
			if tc.status == 401 {
				tok = ""
			}
			r := e.do(t, tc.method, tc.path, tok, tc.body)
			if tc.fragment == "" {
				r.want(t, tc.status)
			} else {
				r.want(t, tc.status, tc.fragment)
			}
		})
	}
	if l := e.do(t, "GET", "/flags", rsAlice, "").list(t, "flags"); len(l) != 0 {
		t.Fatalf("rejected requests created flags: %v", l)
	}
}
