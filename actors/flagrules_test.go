package actors

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// flagOf compiles a definition into a record named name (test helper).
func flagOf(t testing.TB, name string, w FlagWrite) FlagRecord {
	t.Helper()
	if err := CheckFlagWrite(&w); err != nil {
		t.Fatalf("CheckFlagWrite: %v", err)
	}
	return FlagRecord{Owner: "alice", Name: name, Enabled: w.Enabled, Percentage: w.Percentage,
		Rules: w.Rules, Variants: w.Variants, OffVariant: w.OffVariant}
}

// attrs is a FlagContext.Attr over a map.
func attrs(m map[string]AttrValue) func(string) (AttrValue, bool) {
	return func(name string) (AttrValue, bool) { v, ok := m[name]; return v, ok }
}

func str(s string) AttrValue     { return AttrValue{Str: s} }
func number(f float64) AttrValue { return AttrValue{Kind: AttrNumber, Num: f} }
func boolean(b bool) AttrValue   { return AttrValue{Kind: AttrBool, Bool: b} }
func rule(attr, op string, values ...string) FlagRule {
	return FlagRule{Attribute: attr, Operator: op, Values: values, Variant: VariantOn}
}

// Every operator, against attributes of every kind, missing ones and
// values of the wrong kind: a rule matches exactly when the table says.
func TestRuleOperators(t *testing.T) {
	for _, tc := range []struct {
		rule  FlagRule
		value AttrValue
		given bool
		match bool
	}{
		{rule("plan", OpIn, "pro", "team"), str("pro"), true, true},
		{rule("plan", OpIn, "pro", "team"), str("free"), true, false},
		{rule("plan", OpIn, "pro"), str("Pro"), true, false}, // case matters
		{rule("plan", OpIn, "pro"), AttrValue{}, false, false},
		{rule("plan", OpNotIn, "pro", "team"), str("free"), true, true},
		{rule("plan", OpNotIn, "pro", "team"), str("team"), true, false},
		{rule("plan", OpNotIn, "pro"), AttrValue{}, false, false}, // missing matches no rule
		{rule("plan", OpEq, "pro"), str("pro"), true, true},
		{rule("plan", OpEq, "pro"), str("pro "), true, false},
		{rule("plan", OpNeq, "pro"), str("free"), true, true},
		{rule("plan", OpNeq, "pro"), str("pro"), true, false},
		{rule("plan", OpNeq, "pro"), AttrValue{}, false, false},
		{rule("count", OpEq, "42"), number(42), true, true}, // numbers compare by their shortest decimal text
		{rule("count", OpEq, "1000"), number(1e3), true, true},
		{rule("count", OpEq, "0.5"), number(0.5), true, true},
		{rule("beta", OpEq, "true"), boolean(true), true, true},
		{rule("beta", OpIn, "false"), boolean(true), true, false},
		{rule("email", OpStartsWith, "admin@", "root@"), str("root@example.com"), true, true},
		{rule("email", OpStartsWith, "admin@"), str("user@example.com"), true, false},
		{rule("email", OpEndsWith, "@example.com"), str("user@example.com"), true, true},
		{rule("email", OpEndsWith, "@example.com"), str("user@example.org"), true, false},
		{rule("ua", OpContains, "Firefox", "Chrome"), str("Mozilla/5.0 Chrome/120"), true, true},
		{rule("ua", OpContains, "Safari"), str("Mozilla/5.0 Chrome/120"), true, false},
		{rule("ua", OpContains, ""), str("anything"), true, true},
		{rule("app", OpSemverGte, "2.0.0"), str("2.0.0"), true, true},
		{rule("app", OpSemverGte, "2.0.0"), str("v2.1.3"), true, true},
		{rule("app", OpSemverGte, "2.0.0"), str("2.0.0-rc.1"), true, false}, // a pre-release is before its release
		{rule("app", OpSemverGte, "2.0.0"), str("1.99.99"), true, false},
		{rule("app", OpSemverGte, "2.0.0"), str("2.0"), true, false}, // not a semantic version
		{rule("app", OpSemverGte, "2.0.0"), number(3), true, false},
		{rule("app", OpSemverLt, "2.0.0"), str("1.10.0"), true, true},
		{rule("app", OpSemverLt, "1.10.0"), str("1.9.0"), true, true}, // numeric, not text, order
		{rule("app", OpSemverLt, "2.0.0"), str("2.0.0"), true, false},
		{rule("app", OpSemverLt, "2.0.0"), str("garbage"), true, false},
		{rule("age", OpGt, "18"), number(19), true, true},
		{rule("age", OpGt, "18"), number(18), true, false},
		{rule("age", OpGt, "18"), str("30"), true, true}, // a query parameter: text that is a number
		{rule("age", OpGt, "18"), str("thirty"), true, false},
		{rule("age", OpGt, "18"), boolean(true), true, false},
		{rule("age", OpLt, "1e2"), number(99.5), true, true},
		{rule("age", OpLt, "-1"), number(-1), true, false},
		{rule("age", OpLt, "18"), AttrValue{}, false, false},
	} {
		name := fmt.Sprintf("%s %s %v / %+v given=%v", tc.rule.Attribute, tc.rule.Operator, tc.rule.Values, tc.value, tc.given)
		t.Run(name, func(t *testing.T) {
			f := flagOf(t, "f", FlagWrite{Enabled: true, Percentage: NoPercentage, Rules: []FlagRule{tc.rule}})
			m := map[string]AttrValue{}
			if tc.given {
				m[tc.rule.Attribute] = tc.value
			}
			r := EvaluateFlag(&f, true, FlagContext{Subject: []byte("s"), Attr: attrs(m)})
			wantReason := ReasonDefault
			if tc.match {
				wantReason = ReasonTargetingMatch
			}
			if r.Reason != wantReason || !r.Enabled {
				t.Fatalf("got %+v, want reason %s", r, wantReason)
			}
		})
	}
}

// The evaluation order: disabled, then rules (first match), then the
// variant split or the percentage, then STATIC / DEFAULT.
func TestEvaluateFlagOrder(t *testing.T) {
	pro := FlagContext{Subject: []byte("alice"), Attr: attrs(map[string]AttrValue{"plan": str("pro"), "country": str("NL")})}
	free := FlagContext{Subject: []byte("alice"), Attr: attrs(map[string]AttrValue{"plan": str("free")})}
	variants := []FlagVariant{{Name: "blue", Value: []byte(`"blue"`), Weight: 50}, {Name: "green", Value: []byte(`{"c":"green"}`), Weight: 50}}
	rules := []FlagRule{
		{Attribute: "plan", Operator: OpIn, Values: []string{"pro", "team"}, Variant: "green"},
		{Attribute: "country", Operator: OpEq, Values: []string{"NL"}, Variant: "blue"}, // never reached for pro: the first match wins
	}
	for _, tc := range []struct {
		name    string
		w       FlagWrite
		ctx     FlagContext
		want    FlagResult
		wantRaw string
	}{
		{"boolean off", FlagWrite{Percentage: NoPercentage}, pro, FlagResult{Reason: ReasonDisabled, Variant: VariantOff}, "false"},
		{"boolean off, rules ignored", FlagWrite{Percentage: NoPercentage, Rules: []FlagRule{rule("plan", OpEq, "pro")}}, pro,
			FlagResult{Reason: ReasonDisabled, Variant: VariantOff}, "false"},
		{"boolean rule on", FlagWrite{Enabled: true, Percentage: 0, Rules: []FlagRule{rule("plan", OpEq, "pro")}}, pro,
			FlagResult{Enabled: true, Reason: ReasonTargetingMatch, Variant: VariantOn}, "true"},
		{"boolean rule off beats 100%", FlagWrite{Enabled: true, Percentage: 100, Rules: []FlagRule{{Attribute: "plan", Operator: OpEq, Values: []string{"pro"}, Variant: VariantOff}}}, pro,
			FlagResult{Reason: ReasonTargetingMatch, Variant: VariantOff}, "false"},
		{"boolean no match, percentage decides", FlagWrite{Enabled: true, Percentage: 55, Rules: []FlagRule{rule("plan", OpEq, "pro")}}, free,
			FlagResult{Enabled: true, Reason: ReasonSplit, Variant: VariantOn}, "true"}, // alice: bucket 54 for beta
		{"boolean no match, no percentage", FlagWrite{Enabled: true, Percentage: NoPercentage, Rules: []FlagRule{rule("plan", OpEq, "pro")}}, free,
			FlagResult{Enabled: true, Reason: ReasonDefault, Variant: VariantOn}, "true"},
		{"boolean no match at 100%", FlagWrite{Enabled: true, Percentage: 100, Rules: []FlagRule{rule("plan", OpEq, "pro")}}, free,
			FlagResult{Enabled: true, Reason: ReasonDefault, Variant: VariantOn}, "true"},
		{"boolean static", FlagWrite{Enabled: true, Percentage: NoPercentage}, free,
			FlagResult{Enabled: true, Reason: ReasonStatic, Variant: VariantOn}, "true"},
		{"variants first match", FlagWrite{Enabled: true, Percentage: NoPercentage, Variants: variants, Rules: rules}, pro,
			FlagResult{Enabled: true, Reason: ReasonTargetingMatch, Variant: "green"}, `{"c":"green"}`},
		{"variants split", FlagWrite{Enabled: true, Percentage: NoPercentage, Variants: variants, Rules: rules}, free,
			FlagResult{Enabled: true, Reason: ReasonSplit, Variant: "green"}, `{"c":"green"}`}, // bucket 54 ≥ 50
		{"variants off, no off variant", FlagWrite{Percentage: NoPercentage, Variants: variants}, pro,
			FlagResult{Reason: ReasonDisabled}, ""},
		{"variants off variant", FlagWrite{Percentage: NoPercentage, Variants: variants, OffVariant: "blue"}, pro,
			FlagResult{Reason: ReasonDisabled, Variant: "blue"}, `"blue"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := flagOf(t, "beta", tc.w)
			got := EvaluateFlag(&f, true, tc.ctx)
			if got.Enabled != tc.want.Enabled || got.Reason != tc.want.Reason || got.Variant != tc.want.Variant || string(got.Value) != tc.wantRaw {
				t.Fatalf("got %+v (%s), want %+v (%s)", got, got.Value, tc.want, tc.wantRaw)
			}
		})
	}
}

// The attribute targetingKey is the subject unless the context gives it.
func TestTargetingKeyAttribute(t *testing.T) {
	f := flagOf(t, "f", FlagWrite{Enabled: true, Percentage: 0, Rules: []FlagRule{rule("targetingKey", OpIn, "alice", "bob")}})
	for subject, want := range map[string]string{"alice": ReasonTargetingMatch, "bob": ReasonTargetingMatch, "carol": ReasonSplit} {
		if r := EvaluateFlag(&f, true, FlagContext{Subject: []byte(subject)}); r.Reason != want {
			t.Errorf("%s: %+v, want %s", subject, r, want)
		}
	}
}

// 10,000 subjects split 50/30/20/0 land within 2% of the weights; a
// subject's variant is the one whose cumulative range holds its bucket.
func TestVariantSplit(t *testing.T) {
	f := flagOf(t, "exp", FlagWrite{Enabled: true, Percentage: NoPercentage, Variants: []FlagVariant{
		{Name: "a", Value: []byte(`1`), Weight: 50}, {Name: "b", Value: []byte(`2`), Weight: 30},
		{Name: "never", Value: []byte(`3`), Weight: 0}, {Name: "c", Value: []byte(`4`), Weight: 20}}})
	got := map[string]int{}
	for i := 0; i < 10000; i++ {
		subject := []byte(fmt.Sprintf("user-%d", i))
		r := EvaluateFlag(&f, true, FlagContext{Subject: subject})
		b := FlagBucket("exp", subject)
		want := map[bool]string{true: "a", false: map[bool]string{true: "b", false: "c"}[b < 80]}[b < 50]
		if r.Variant != want || r.Reason != ReasonSplit || !r.Enabled {
			t.Fatalf("%s (bucket %d): %+v, want %s", subject, b, r, want)
		}
		got[r.Variant]++
	}
	for name, w := range map[string]int{"a": 5000, "b": 3000, "c": 2000, "never": 0} {
		if d := got[name] - w; d < -200 || d > 200 {
			t.Errorf("variant %s: %d of 10000, want %d ± 200", name, got[name], w)
		}
	}
}

// Changing weights moves only the subjects whose bucket a cumulative
// boundary crossed: shifting weight between two adjacent variants moves
// exactly that share and nobody else (the fewest possible), and a variant
// appended at the end takes its subjects only from the one before it.
func TestVariantWeightChangeMovesFewest(t *testing.T) {
	v := func(ws ...int) []FlagVariant {
		out := make([]FlagVariant, len(ws))
		for i, w := range ws {
			out[i] = FlagVariant{Name: string(rune('a' + i)), Value: []byte(fmt.Sprint(i)), Weight: w}
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		from, to []int
		moved    func(bucket int) bool // which buckets change variant
		share    int                   // percent of subjects that move
	}{
		{"A/B 50/50 to 60/40", []int{50, 50}, []int{60, 40}, func(b int) bool { return b >= 50 && b < 60 }, 10},
		{"3 variants, B takes 10 from A", []int{40, 30, 30}, []int{30, 40, 30}, func(b int) bool { return b >= 30 && b < 40 }, 10},
		{"append D from C", []int{40, 30, 30, 0}, []int{40, 30, 20, 10}, func(b int) bool { return b >= 90 }, 10},
		{"unchanged", []int{40, 30, 30}, []int{40, 30, 30}, func(int) bool { return false }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := flagOf(t, "exp", FlagWrite{Enabled: true, Percentage: NoPercentage, Variants: v(tc.from...)})
			after := flagOf(t, "exp", FlagWrite{Enabled: true, Percentage: NoPercentage, Variants: v(tc.to...)})
			moved := 0
			const n = 10000
			for i := 0; i < n; i++ {
				subject := []byte(fmt.Sprintf("subject-%d", i))
				a := EvaluateFlag(&before, true, FlagContext{Subject: subject}).Variant
				b := EvaluateFlag(&after, true, FlagContext{Subject: subject}).Variant
				if (a != b) != tc.moved(FlagBucket("exp", subject)) {
					t.Fatalf("%s: %s → %s", subject, a, b)
				}
				if a != b {
					moved++
				}
			}
			if d := moved - tc.share*n/100; d < -200 || d > 200 {
				t.Fatalf("%d of %d moved, want %d%% ± 2%%", moved, n, tc.share)
			}
		})
	}
}

// Raising a percentage never turns a subject off, also on a flag with
// rules (for the subjects no rule matches), over many subjects and every
// step.
func TestRaisingPercentageNeverTurnsOff(t *testing.T) {
	for i := 0; i < 1000; i++ {
		subject := []byte(fmt.Sprintf("u%d", i))
		ctx := FlagContext{Subject: subject, Attr: attrs(map[string]AttrValue{"plan": str("free")})}
		was := false
		for p := 0; p <= 100; p++ {
			f := flagOf(t, "gate", FlagWrite{Enabled: true, Percentage: p, Rules: []FlagRule{rule("plan", OpEq, "pro")}})
			on := EvaluateFlag(&f, true, ctx).Enabled
			if was && !on {
				t.Fatalf("%s: on at %d%%, off at %d%%", subject, p-1, p)
			}
			was = on
		}
	}
}

// Every bad definition is refused with a message naming the field.
func TestCheckFlagWrite(t *testing.T) {
	ok := []FlagVariant{{Name: "a", Value: []byte(`1`), Weight: 60}, {Name: "b", Value: []byte(`2`), Weight: 40}}
	many := make([]FlagRule, MaxFlagRules+1)
	for i := range many {
		many[i] = rule("a", OpEq, "x")
	}
	values := make([]string, MaxRuleValues+1)
	manyVariants := make([]FlagVariant, MaxFlagVariants+1)
	for i := range manyVariants {
		manyVariants[i] = FlagVariant{Name: fmt.Sprint("v", i), Value: []byte(`1`)}
	}
	manyVariants[0].Weight = 100
	for _, tc := range []struct {
		name string
		w    FlagWrite
		msg  string
	}{
		{"percentage with variants", FlagWrite{Percentage: 10, Variants: ok}, "percentage"},
		{"weights sum to 90", FlagWrite{Percentage: NoPercentage, Variants: []FlagVariant{{Name: "a", Value: []byte(`1`), Weight: 90}}}, "sum to 100 (they sum to 90)"},
		{"weight 101", FlagWrite{Percentage: NoPercentage, Variants: []FlagVariant{{Name: "a", Value: []byte(`1`), Weight: 101}}}, "variants[0].weight"},
		{"weight -1", FlagWrite{Percentage: NoPercentage, Variants: []FlagVariant{{Name: "a", Value: []byte(`1`), Weight: 101}, {Name: "b", Value: []byte(`1`), Weight: -1}}}, "variants[0].weight"},
		{"duplicate name", FlagWrite{Percentage: NoPercentage, Variants: []FlagVariant{{Name: "a", Value: []byte(`1`), Weight: 50}, {Name: "a", Value: []byte(`2`), Weight: 50}}}, "variants[1].name"},
		{"bad name", FlagWrite{Percentage: NoPercentage, Variants: []FlagVariant{{Name: "a b", Value: []byte(`1`), Weight: 100}}}, "variants[0].name"},
		{"empty name", FlagWrite{Percentage: NoPercentage, Variants: []FlagVariant{{Name: "", Value: []byte(`1`), Weight: 100}}}, "variants[0].name"},
		{"value not JSON", FlagWrite{Percentage: NoPercentage, Variants: []FlagVariant{{Name: "a", Value: []byte(`{`), Weight: 100}}}, "variants[0].value"},
		{"value too big", FlagWrite{Percentage: NoPercentage, Variants: []FlagVariant{{Name: "a", Value: []byte(`"` + strings.Repeat("x", MaxVariantValueBytes) + `"`), Weight: 100}}}, "variants[0].value"},
		{"too many variants", FlagWrite{Percentage: NoPercentage, Variants: manyVariants}, "at most 50 variants"},
		{"off variant unknown", FlagWrite{Percentage: NoPercentage, Variants: ok, OffVariant: "c"}, "off_variant"},
		{"off variant without variants", FlagWrite{Percentage: NoPercentage, OffVariant: "off"}, "off_variant"},
		{"too many rules", FlagWrite{Percentage: NoPercentage, Rules: many}, "at most 50 rules"},
		{"unknown operator", FlagWrite{Percentage: NoPercentage, Rules: []FlagRule{rule("a", "like", "x")}}, "rules[0].operator must be one of in, not_in"},
		{"bad attribute", FlagWrite{Percentage: NoPercentage, Rules: []FlagRule{rule("a b", OpEq, "x")}}, "rules[0].attribute"},
		{"missing attribute", FlagWrite{Percentage: NoPercentage, Rules: []FlagRule{rule("", OpEq, "x")}}, "rules[0].attribute"},
		{"no values", FlagWrite{Percentage: NoPercentage, Rules: []FlagRule{rule("a", OpIn)}}, "rules[0].values"},
		{"101 values", FlagWrite{Percentage: NoPercentage, Rules: []FlagRule{rule("a", OpIn, values...)}}, "rules[0].values must have 1 to 100"},
		{"eq of two", FlagWrite{Percentage: NoPercentage, Rules: []FlagRule{rule("a", OpEq, "x"), rule("a", OpEq, "x", "y")}}, "rules[1].values: eq takes exactly one value"},
		{"value too long", FlagWrite{Percentage: NoPercentage, Rules: []FlagRule{rule("a", OpIn, "x", strings.Repeat("y", 1025))}}, "rules[0].values[1]"},
		{"gt of text", FlagWrite{Percentage: NoPercentage, Rules: []FlagRule{rule("a", OpGt, "ten")}}, "rules[0].values[0] must be a number"},
		{"semver of garbage", FlagWrite{Percentage: NoPercentage, Rules: []FlagRule{rule("a", OpSemverLt, "1.2")}}, "rules[0].values[0] must be a semantic version"},
		{"boolean flag, rule names a variant", FlagWrite{Percentage: NoPercentage, Rules: []FlagRule{{Attribute: "a", Operator: OpEq, Values: []string{"x"}, Variant: "blue"}}}, "rules[0]: the flag has no variants"},
		{"variant flag, rule names no variant", FlagWrite{Percentage: NoPercentage, Variants: ok, Rules: []FlagRule{{Attribute: "a", Operator: OpEq, Values: []string{"x"}, Variant: "c"}}}, "rules[0].variant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.w
			err := CheckFlagWrite(&w)
			if err == nil || ErrorCode(err) != CodeInvalid || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an invalid error mentioning %q", err, tc.msg)
			}
		})
	}
}

// The stored form round-trips: what DecodeFlagTargeting rebuilds from
// EncodeFlagTargeting is the record, compiled; values keep their text.
func TestFlagTargetingEncoding(t *testing.T) {
	f := flagOf(t, "exp", FlagWrite{Enabled: true, Percentage: NoPercentage, OffVariant: "b",
		Variants: []FlagVariant{{Name: "a", Value: []byte(`{"x":"<&>","n":1.50}`), Weight: 70}, {Name: "b", Value: []byte(`"ü"`), Weight: 30}},
		Rules: []FlagRule{
			{Attribute: "app", Operator: OpSemverGte, Values: []string{"1.2.3"}, Variant: "a"},
			{Attribute: "age", Operator: OpGt, Values: []string{"1e2"}, Variant: "b"},
			{Attribute: "plan", Operator: OpNotIn, Values: []string{"x", "<y>"}, Variant: "a"},
		}})
	rules, variants := EncodeFlagTargeting(&f)
	if !strings.Contains(string(variants), `{"x":"<&>","n":1.50}`) || !strings.Contains(string(rules), `"<y>"`) {
		t.Fatalf("stored form rewrote values: %s %s", rules, variants)
	}
	g := FlagRecord{Owner: f.Owner, Name: f.Name, Enabled: f.Enabled, Percentage: f.Percentage, OffVariant: f.OffVariant}
	if err := DecodeFlagTargeting(&g, rules, variants); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, g) {
		t.Fatalf("round trip:\n%+v\n%+v", f, g)
	}
	none := FlagRecord{Percentage: NoPercentage}
	if r, v := EncodeFlagTargeting(&none); r != nil || v != nil {
		t.Fatalf("no targeting stored as %q %q", r, v)
	}
	if err := DecodeFlagTargeting(&g, []byte(`[{"attribute":"a","operator":"like","values":["x"],"variant":"a"}]`), variants); err == nil {
		t.Fatal("a stored rule that does not validate was accepted")
	}
}

func BenchmarkEvaluateFlagRules(b *testing.B) {
	f := flagOf(b, "exp", FlagWrite{Enabled: true, Percentage: NoPercentage,
		Variants: []FlagVariant{{Name: "a", Value: []byte(`1`), Weight: 50}, {Name: "b", Value: []byte(`2`), Weight: 50}},
		Rules: []FlagRule{
			{Attribute: "plan", Operator: OpIn, Values: []string{"pro", "team"}, Variant: "a"},
			{Attribute: "app", Operator: OpSemverGte, Values: []string{"2.0.0"}, Variant: "b"},
		}})
	ctx := FlagContext{Subject: []byte("user-123456"), Attr: attrs(map[string]AttrValue{"plan": str("free"), "app": str("1.9.0")})}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		EvaluateFlag(&f, true, ctx)
	}
}
