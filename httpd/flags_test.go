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
	want := actors.EvaluateFlag(&actors.FlagRecord{Name: "beta", Enabled: true, Percentage: 30}, true, actors.FlagContext{Subject: []byte(subj)}).Enabled
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

// Rules and variants over HTTP: the definition round-trips (also across a
// restart), GET evaluates with attr. parameters and answers variant and
// value, and the split follows the documented hash.
func TestFlagTargetingAndVariants(t *testing.T) {
	e := rsStart(t, nil)
	def := `{"enabled":true,
		"rules":[{"attribute":"plan","operator":"in","values":["pro","team"],"variant":"green"},
		         {"attribute":"app","operator":"semver_lt","values":["2.0.0"],"variant":"legacy"},
		         {"attribute":"age","operator":"gt","values":[1e2],"variant":"blue"}],
		"variants":[{"name":"blue","value":"blue","weight":50},
		            {"name":"green","value":{ "hex" : "#0f0", "n": 1.50 },"weight":50},
		            {"name":"legacy","value":null,"weight":0}],
		"off_variant":"blue"}`
	put := e.do(t, "PUT", "/flags/exp", rsAlice, def).want(t, 200)
	const wantDef = `"rules":[{"attribute":"plan","operator":"in","values":["pro","team"],"variant":"green"},` +
		`{"attribute":"app","operator":"semver_lt","values":["2.0.0"],"variant":"legacy"},` +
		`{"attribute":"age","operator":"gt","values":[1e2],"variant":"blue"}],` +
		`"variants":[{"name":"blue","value":"blue","weight":50},{"name":"green","value":{"hex":"#0f0","n":1.50},"weight":50},` +
		`{"name":"legacy","value":null,"weight":0}],"off_variant":"blue"`
	if !strings.Contains(put.String(), wantDef) {
		t.Fatalf("PUT answer %s\nwant it to hold %s", put, wantDef)
	}
	eval := func(query string) map[string]any {
		t.Helper()
		return e.do(t, "GET", "/flags/exp?"+query, rsAlice, "").want(t, 200).obj(t)
	}
	for _, tc := range []struct {
		query, reason, variant, value string
	}{
		{"subject=alice&attr.plan=team", "TARGETING_MATCH", "green", `{"hex":"#0f0","n":1.50}`},
		{"subject=alice&attr.plan=free&attr.app=1.9.3", "TARGETING_MATCH", "legacy", `null`},
		{"subject=alice&attr.app=v2.1.0&attr.age=101", "TARGETING_MATCH", "blue", `"blue"`},
		{"subject=alice&attr.age=100", "SPLIT", "blue", `"blue"`}, // 100 is not > 1e2; "exp:alice" is in bucket 27
	} {
		m := eval(tc.query)
		raw := string(e.do(t, "GET", "/flags/exp?"+tc.query, rsAlice, "").body)
		if m["reason"] != tc.reason || m["variant"] != tc.variant || m["enabled"] != true || !strings.Contains(raw, `"value":`+tc.value+`}`) {
			t.Fatalf("%s: %s, want %s %s %s", tc.query, raw, tc.reason, tc.variant, tc.value)
		}
	}
	// The split is the documented one: bucket < 50 → blue.
	for i := 0; i < 200; i++ {
		subj := fmt.Sprintf("s-%d", i)
		want := "green"
		if actors.FlagBucket("exp", []byte(subj)) < 50 {
			want = "blue"
		}
		if m := eval("subject=" + subj); m["variant"] != want || m["reason"] != "SPLIT" {
			t.Fatalf("%s: %v, want %s", subj, m, want)
		}
	}
	// targetingKey is the subject
	e.do(t, "PUT", "/flags/gate", rsAlice, `{"enabled":true,"percentage":0,"rules":[{"attribute":"targetingKey","operator":"in","values":["vip"],"enabled":true}]}`).want(t, 200)
	if m := e.do(t, "GET", "/flags/gate?subject=vip", rsAlice, "").obj(t); m["enabled"] != true || m["reason"] != "TARGETING_MATCH" || m["variant"] != "on" || m["value"] != true {
		t.Fatalf("vip: %v", m)
	}
	if m := e.do(t, "GET", "/flags/gate?subject=other", rsAlice, "").obj(t); m["enabled"] != false || m["reason"] != "SPLIT" || m["variant"] != "off" || m["value"] != false {
		t.Fatalf("other: %v", m)
	}
	// a rule on a flag without variants is shown with enabled, as given
	if l := e.do(t, "GET", "/flags", rsAlice, "").list(t, "flags"); len(l) != 2 || !strings.Contains(fmt.Sprint(l[1]["rules"]), "enabled:true") {
		t.Fatalf("list: %v", l)
	}
	// disabled: the off variant
	e.do(t, "PUT", "/flags/exp2", rsAlice, `{"enabled":false,"variants":[{"name":"a","value":1,"weight":100}]}`).want(t, 200)
	if m := e.do(t, "GET", "/flags/exp2", rsAlice, "").obj(t); m["reason"] != "DISABLED" || m["enabled"] != false {
		t.Fatalf("disabled without off variant: %v", m)
	} else if _, has := m["variant"]; has {
		t.Fatalf("disabled without off variant serves %v", m)
	}
	if m := e.do(t, "GET", "/flags/exp?attr.plan=pro", rsAlice, "").obj(t); m["variant"] != "green" {
		t.Fatalf("before restart: %v", m)
	}
	e.restart(t)
	after := e.do(t, "GET", "/flags", rsAlice, "").want(t, 200)
	if !strings.Contains(after.String(), wantDef) {
		t.Fatalf("after restart: %s", after)
	}
	if m := e.do(t, "GET", "/flags/exp?attr.plan=pro", rsAlice, "").obj(t); m["variant"] != "green" || m["reason"] != "TARGETING_MATCH" {
		t.Fatalf("after restart: %v", m)
	}
}

// Every bad definition and attribute is 422 naming the field, and changes
// nothing: the flag keeps its definition.
func TestFlagTargetingValidation(t *testing.T) {
	e := rsStart(t, nil)
	good := `{"enabled":true,"variants":[{"name":"a","value":1,"weight":60},{"name":"b","value":2,"weight":40}]}`
	e.do(t, "PUT", "/flags/f", rsAlice, good).want(t, 200)
	before := e.do(t, "GET", "/flags", rsAlice, "").body
	rule := func(r string) string { return `{"enabled":true,"rules":[` + r + `]}` }
	vrule := func(r string) string {
		return `{"enabled":true,"variants":[{"name":"a","value":1,"weight":100}],"rules":[` + r + `]}`
	}
	many := func(n int, item string) string {
		s := make([]string, n)
		for i := range s {
			s[i] = item
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct{ name, body, fragment string }{
		{"rules not an array", `{"enabled":true,"rules":{}}`, "rules must be an array"},
		{"rules null", `{"enabled":true,"rules":null}`, "rules must be an array"},
		{"rule not an object", rule(`5`), "rules[0] must be an object"},
		{"unknown operator", rule(`{"attribute":"a","operator":"like","values":["x"],"enabled":true}`), "rules[0].operator must be one of"},
		{"operator missing", rule(`{"attribute":"a","values":["x"],"enabled":true}`), "rules[0].operator is required"},
		{"attribute missing", rule(`{"operator":"eq","values":["x"],"enabled":true}`), "rules[0].attribute is required"},
		{"attribute bad", rule(`{"attribute":"a b","operator":"eq","values":["x"],"enabled":true}`), "rules[0].attribute must match"},
		{"values missing", rule(`{"attribute":"a","operator":"in","enabled":true}`), "rules[0].values is required"},
		{"values not an array", rule(`{"attribute":"a","operator":"in","values":"x","enabled":true}`), "rules[0].values must be an array"},
		{"values empty", rule(`{"attribute":"a","operator":"in","values":[],"enabled":true}`), "rules[0].values must have 1 to 100"},
		{"number for in", rule(`{"attribute":"a","operator":"in","values":["x",5],"enabled":true}`), "rules[0].values[1] must be a string"},
		{"string for gt", rule(`{"attribute":"a","operator":"gt","values":["5"],"enabled":true}`), "rules[0].values[0] must be a number"},
		{"two for lt", rule(`{"attribute":"a","operator":"lt","values":[1,2],"enabled":true}`), "lt takes exactly one value"},
		{"bad semver", rule(`{"attribute":"a","operator":"semver_gte","values":["one"],"enabled":true}`), "semantic version"},
		{"neither enabled nor variant", rule(`{"attribute":"a","operator":"eq","values":["x"]}`), "rules[0].enabled is required"},
		{"both", rule(`{"attribute":"a","operator":"eq","values":["x"],"enabled":true,"variant":"a"}`), "not both"},
		{"variant on a boolean flag", rule(`{"attribute":"a","operator":"eq","values":["x"],"variant":"a"}`), "rules[0].variant: the flag has no variants"},
		{"enabled on a variant flag", vrule(`{"attribute":"a","operator":"eq","values":["x"],"enabled":true}`), "rules[0].enabled: the flag has variants"},
		{"unknown variant", vrule(`{"attribute":"a","operator":"eq","values":["x"],"variant":"z"}`), "rules[0].variant: no variant"},
		{"51 rules", rule(many(51, `{"attribute":"a","operator":"eq","values":["x"],"enabled":true}`)), "rules: at most 50"},
		{"101 values", rule(`{"attribute":"a","operator":"in","values":[` + many(101, `"v"`) + `],"enabled":true}`), "rules[0].values must have 1 to 100"},
		{"weights 90", `{"enabled":true,"variants":[{"name":"a","value":1,"weight":90}]}`, "sum to 100"},
		{"weight 101", `{"enabled":true,"variants":[{"name":"a","value":1,"weight":101}]}`, "variants[0].weight"},
		{"weight fraction", `{"enabled":true,"variants":[{"name":"a","value":1,"weight":50.5}]}`, "variants[0].weight"},
		{"value missing", `{"enabled":true,"variants":[{"name":"a","weight":100}]}`, "variants[0].value is required"},
		{"name missing", `{"enabled":true,"variants":[{"value":1,"weight":100}]}`, "variants[0].name is required"},
		{"duplicate names", `{"enabled":true,"variants":[{"name":"a","value":1,"weight":50},{"name":"a","value":2,"weight":50}]}`, "variants[1].name"},
		{"percentage with variants", `{"enabled":true,"percentage":10,"variants":[{"name":"a","value":1,"weight":100}]}`, "percentage"},
		{"off variant unknown", `{"enabled":true,"off_variant":"z","variants":[{"name":"a","value":1,"weight":100}]}`, "off_variant"},
		{"off variant without variants", `{"enabled":true,"off_variant":"a"}`, "off_variant"},
		{"off variant not a string", `{"enabled":true,"off_variant":1,"variants":[{"name":"a","value":1,"weight":100}]}`, "off_variant must be a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.do(t, "PUT", "/flags/f", rsAlice, tc.body).want(t, 422, tc.fragment)
		})
	}
	for _, tc := range []struct{ name, query, fragment string }{
		{"bad attribute name", "attr.a%20b=1", "attr.a b"},
		{"empty attribute name", "attr.=1", "attr."},
		{"attribute twice", "attr.a=1&attr.a=2", "attr.a is given more than once"},
		{"attribute too long", "attr.a=" + strings.Repeat("x", 1025), "attr.a must be at most 1024 bytes"},
		{"51 attributes", func() string {
			q := make([]string, 51)
			for i := range q {
				q[i] = fmt.Sprintf("attr.a%d=1", i)
			}
			return strings.Join(q, "&")
		}(), "at most 50"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.do(t, "GET", "/flags/f?"+tc.query, rsAlice, "").want(t, 422, tc.fragment)
		})
	}
	if after := e.do(t, "GET", "/flags", rsAlice, "").body; string(after) != string(before) {
		t.Fatalf("rejected requests changed the flag:\n%s\n%s", before, after)
	}
}
