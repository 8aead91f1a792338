package realtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/tools/client"
	"github.com/open-feature/go-sdk-contrib/providers/ofrep"
	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"
)

// newFeatureClient is an OpenFeature client whose flags are the token's
// octostore flags, served over OFREP (shown in README.md and
// docs/client.md, word for word: docs/docs_test.go checks it).
func newFeatureClient(ctx context.Context, url, token string, opts ...ofrep.Option) (*openfeature.Client, error) {
	api := isolated.NewAPI() // or the global openfeature.SetProviderAndWait
	provider := ofrep.NewProvider(url, append([]ofrep.Option{ofrep.WithBearerToken(token)}, opts...)...)
	if err := api.SetProviderAndWait(ctx, provider); err != nil {
		return nil, err
	}
	return api.NewClient(), nil
}

// The OpenFeature Go SDK with its OFREP provider against the real server:
// boolean, string, number and object evaluations, every reason, and the
// errors an SDK maps (TYPE_MISMATCH on the SDK side, FLAG_NOT_FOUND,
// TARGETING_KEY_MISSING). Every exchange is checked against
// docs/openapi.yaml. The fake server does not speak OFREP: real only.
func TestOpenFeatureSDK(t *testing.T) {
	url := implementations[0].start(t)
	ctx := context.Background()
	alice := newClient(t, url, tokA)
	on, off := true, false
	for name, spec := range map[string]client.FlagSpec{
		"new-checkout": {Enabled: true, Percentage: new(30)},
		"killswitch":   {Enabled: false},
		"theme": {Enabled: true, Variants: []client.FlagVariant{
			{Name: "blue", Value: json.RawMessage(`"blue"`), Weight: 50}, {Name: "green", Value: json.RawMessage(`"green"`), Weight: 50}},
			Rules: []client.FlagRule{{Attribute: "plan", Operator: "in", Values: []any{"pro", "team"}, Variant: "green"}}},
		"page-size": {Enabled: true, Variants: []client.FlagVariant{
			{Name: "small", Value: json.RawMessage(`20`), Weight: 100}, {Name: "huge", Value: json.RawMessage(`2.5e2`), Weight: 0}},
			Rules: []client.FlagRule{{Attribute: "app", Operator: "semver_gte", Values: []any{"2.0.0"}, Variant: "huge"}}},
		"limits": {Enabled: true, Variants: []client.FlagVariant{
			{Name: "default", Value: json.RawMessage(`{"burst":10,"regions":["eu","us"]}`), Weight: 100}}},
		"adults": {Enabled: true, Percentage: new(0), Rules: []client.FlagRule{
			{Attribute: "age", Operator: "gt", Values: []any{17}, Enabled: &on},
			{Attribute: "banned", Operator: "eq", Values: []any{"true"}, Enabled: &off}}},
	} {
		if _, err := alice.SetFlag(ctx, name, spec); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	of, err := newFeatureClient(ctx, url, tokA, ofrep.WithClient(apitest.Client(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	who := func(key string, attrs map[string]any) openfeature.EvaluationContext {
		return openfeature.NewEvaluationContext(key, attrs)
	}

	// boolean: SPLIT by the documented bucket (bob 21, alice 54 for beta-like 30%).
	for i := 0; i < 50; i++ {
		subject := fmt.Sprintf("user-%d", i)
		d, err := of.BooleanValueDetails(ctx, "new-checkout", false, who(subject, nil))
		if err != nil || d.Reason != openfeature.SplitReason {
			t.Fatalf("%s: %+v %v", subject, d, err)
		}
		ev, err := alice.GetFlag(ctx, "new-checkout", subject) // one subject, one answer
		if err != nil || ev.Enabled != d.Value || (d.Variant == "on") != d.Value {
			t.Fatalf("%s: SDK %v (%s), GET %+v %v", subject, d.Value, d.Variant, ev, err)
		}
	}
	if d, err := of.BooleanValueDetails(ctx, "adults", false, who("u", map[string]any{"age": 18})); err != nil || !d.Value || d.Reason != openfeature.TargetingMatchReason {
		t.Fatalf("adults age 18: %+v %v", d, err)
	}
	if d, err := of.BooleanValueDetails(ctx, "adults", true, who("u", map[string]any{"banned": true, "age": 12})); err != nil || d.Value || d.Reason != openfeature.TargetingMatchReason {
		t.Fatalf("adults banned: %+v %v", d, err)
	}
	// DISABLED: the SDK provider answers the code's default.
	if d, err := of.BooleanValueDetails(ctx, "killswitch", true, who("u", nil)); err != nil || !d.Value || d.Reason != openfeature.DisabledReason {
		t.Fatalf("killswitch: %+v %v", d, err)
	}
	// string: a rule, then the split.
	if d, err := of.StringValueDetails(ctx, "theme", "none", who("u", map[string]any{"plan": "team"})); err != nil || d.Value != "green" ||
		d.Variant != "green" || d.Reason != openfeature.TargetingMatchReason {
		t.Fatalf("theme for team: %+v %v", d, err)
	}
	if d, err := of.StringValueDetails(ctx, "theme", "none", who("u", map[string]any{"plan": "free"})); err != nil || d.Reason != openfeature.SplitReason ||
		(d.Value != "blue" && d.Value != "green") {
		t.Fatalf("theme for free: %+v %v", d, err)
	}
	// numbers: float and integer evaluations of one flag.
	if d, err := of.FloatValueDetails(ctx, "page-size", 1, who("u", map[string]any{"app": "2.1.0"})); err != nil || d.Value != 250 || d.Variant != "huge" {
		t.Fatalf("page-size float: %+v %v", d, err)
	}
	if d, err := of.IntValueDetails(ctx, "page-size", 1, who("u", map[string]any{"app": "1.9.9"})); err != nil || d.Value != 20 || d.Reason != openfeature.SplitReason {
		t.Fatalf("page-size int: %+v %v", d, err)
	}
	// object
	d, err := of.ObjectValueDetails(ctx, "limits", nil, who("u", nil))
	if m, ok := d.Value.(map[string]any); err != nil || !ok || m["burst"] != 10.0 || fmt.Sprint(m["regions"]) != "[eu us]" {
		t.Fatalf("limits: %+v %v", d, err)
	}
	// A number asked of a boolean flag: TYPE_MISMATCH, the default value.
	if d, err := of.FloatValueDetails(ctx, "new-checkout", 7, who("bob", nil)); err == nil || d.ErrorCode != openfeature.TypeMismatchCode || d.Value != 7 {
		t.Fatalf("float of a boolean flag: %+v %v", d, err)
	}
	if d, err := of.BooleanValueDetails(ctx, "nope", true, who("u", nil)); err == nil || d.ErrorCode != openfeature.FlagNotFoundCode || !d.Value {
		t.Fatalf("unknown flag: %+v %v", d, err)
	}
	if d, err := of.BooleanValueDetails(ctx, "new-checkout", true, openfeature.NewTargetlessEvaluationContext(nil)); err == nil ||
		d.ErrorCode != openfeature.TargetingKeyMissingCode {
		t.Fatalf("split without targeting key: %+v %v", d, err)
	}
	// Another user's flags are not there; a bad token is a general error.
	bob, err := newFeatureClient(ctx, url, tokB, ofrep.WithClient(apitest.Client(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := bob.BooleanValueDetails(ctx, "new-checkout", false, who("bob", nil)); err == nil || d.ErrorCode != openfeature.FlagNotFoundCode {
		t.Fatalf("bob sees alice's flag: %+v %v", d, err)
	}
	stranger, err := newFeatureClient(ctx, url, "wrong", ofrep.WithClient(apitest.Client(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := stranger.BooleanValueDetails(ctx, "new-checkout", false, who("bob", nil)); err == nil || d.ErrorCode != openfeature.GeneralCode {
		t.Fatalf("bad token: %+v %v", d, err)
	}
}

// CheckLimitWith and CheckLimits against the real server (the fake has no
// token buckets or batches), every exchange checked against the contract.
func TestClientTokenBucketAndBatch(t *testing.T) {
	url := implementations[0].start(t)
	ctx := context.Background()
	alice := newClient(t, url, tokA)
	r, err := alice.CheckLimitWith(ctx, "tb", client.LimitCheck{MaxRequests: 5, Window: time.Minute, Cost: 4, Algorithm: client.TokenBucket})
	if err != nil || !r.Allowed || r.Remaining != 1 || r.Algorithm != client.TokenBucket || r.Limit != 5 {
		t.Fatalf("token bucket check: %+v %v", r, err)
	}
	res, err := alice.CheckLimits(ctx, []client.LimitCheck{
		{Name: "tb", MaxRequests: 5, Window: time.Minute, Cost: 2, Algorithm: client.TokenBucket},
		{Name: "sw", MaxRequests: 1, Window: time.Minute},
		{Name: "sw", MaxRequests: 1, Window: time.Minute},
	})
	if err != nil || len(res) != 3 || res[0].Allowed || res[0].RetryAfterSeconds < 1 || !res[1].Allowed || res[2].Allowed ||
		res[1].Name != "sw" || res[1].Algorithm != client.SlidingWindow || res[2].Error != "" {
		t.Fatalf("batch: %+v %v", res, err)
	}
	if _, err := alice.CheckLimits(ctx, []client.LimitCheck{{Name: "x", MaxRequests: 1, Window: time.Minute, Cost: 2}}); !errors.Is(err, client.ErrValidation) {
		t.Fatalf("cost over max: %v", err)
	}
}

// followConfig applies a config key's value now and every new one until
// ctx ends (shown in docs/client.md, word for word: docs/docs_test.go
// checks it).
func followConfig(ctx context.Context, c *client.Client, key string, apply func(json.RawMessage)) error {
	s, err := c.WatchConfig(ctx, key)
	if err != nil {
		return err
	}
	defer s.Close()
	for ev := range s.C {
		if ev.Value != nil { // the current value, then every new one
			apply(ev.Value)
		}
	}
	return s.Err() // nil once ctx ends; client.ErrLagged: watch again
}

// WatchConfig and RollbackConfig against the real server (the fake has no
// config watch), through the contract checker.
func TestClientWatchAndRollbackConfig(t *testing.T) {
	url := implementations[0].start(t)
	alice := newClient(t, url, tokA)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := alice.SetConfig(ctx, "app", client.ConfigWrite{Value: map[string]int{"pool": 1}, Description: "one"}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 8)
	done := make(chan error, 1)
	go func() { done <- followConfig(ctx, alice, "app", func(v json.RawMessage) { got <- string(v) }) }()
	next := func() string {
		select {
		case v := <-got:
			return v
		case <-time.After(10 * time.Second):
			t.Fatal("no value within 10s")
		}
		return ""
	}
	if v := next(); v != `{"pool":1}` {
		t.Fatalf("first value %s", v)
	}
	if _, err := alice.SetConfig(ctx, "app", client.ConfigWrite{Value: 2}); err != nil {
		t.Fatal(err)
	}
	if v := next(); v != `2` {
		t.Fatalf("second value %s", v)
	}
	e, err := alice.RollbackConfig(ctx, "app", 1, new(int64(2)))
	if err != nil || e.Version != 3 || string(e.Value) != `{"pool":1}` || e.Description != "one" {
		t.Fatalf("rollback: %+v %v", e, err)
	}
	if v := next(); v != `{"pool":1}` {
		t.Fatalf("rolled back value %s", v)
	}
	if _, err := alice.RollbackConfig(ctx, "app", 1, new(int64(2))); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("stale rollback: %v", err)
	}
	if _, err := alice.RollbackConfig(ctx, "app", 99, nil); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown version: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("followConfig after cancel: %v", err)
	}
}
