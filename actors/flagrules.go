package actors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/coreos/go-semver/semver"
	"github.com/octostore/octostore/actors/names"
)

// Targeting rules and variants of a feature flag (issue 17): the pure part,
// a function of the definition and the evaluation context. flag.go owns the
// actor; this file the rule language, its validation, its storage encoding
// and evaluation.

// Bounds of a flag definition (422 beyond, naming the field).
const (
	MaxFlagRules         = 50   // rules per flag
	MaxRuleValues        = 100  // values per rule
	MaxRuleValueBytes    = 1024 // bytes per string value, as an attribute value
	MaxFlagVariants      = 50   // variants per flag
	MaxVariantValueBytes = 8192 // bytes of a variant's JSON value (compact)
)

// Rule operators. in, not_in, eq, neq, starts_with, ends_with and contains
// compare text; semver_gte and semver_lt semantic versions (2.0.0 ordering,
// github.com/coreos/go-semver; a leading "v" is ignored); gt and lt numbers.
const (
	OpIn         = "in"
	OpNotIn      = "not_in"
	OpEq         = "eq"
	OpNeq        = "neq"
	OpStartsWith = "starts_with"
	OpEndsWith   = "ends_with"
	OpContains   = "contains"
	OpSemverGte  = "semver_gte"
	OpSemverLt   = "semver_lt"
	OpGt         = "gt"
	OpLt         = "lt"
)

// ruleOps are the operators, in the order messages list them, with how many
// values each takes (one: exactly one; otherwise 1..MaxRuleValues) and what
// they are.
var ruleOps = []struct {
	op     string
	one    bool
	values ValueKind
}{
	{OpIn, false, TextValues}, {OpNotIn, false, TextValues}, {OpEq, true, TextValues}, {OpNeq, true, TextValues},
	{OpStartsWith, false, TextValues}, {OpEndsWith, false, TextValues}, {OpContains, false, TextValues},
	{OpSemverGte, true, SemverValues}, {OpSemverLt, true, SemverValues}, {OpGt, true, NumberValues}, {OpLt, true, NumberValues},
}

// ValueKind is what a rule's values are: JSON strings (text or semantic
// versions) or JSON numbers.
type ValueKind uint8

// The kinds of rule values.
const (
	TextValues ValueKind = iota
	SemverValues
	NumberValues
)

// RuleValueKind is the kind of values operator op takes; ok is false for an
// unknown operator.
func RuleValueKind(op string) (k ValueKind, ok bool) {
	for _, o := range ruleOps {
		if o.op == op {
			return o.values, true
		}
	}
	return 0, false
}

// RuleOperators lists the operators for messages: "in, not_in, …, lt".
func RuleOperators() string { return operatorList }

var operatorList = func() string {
	s := make([]string, len(ruleOps))
	for i, o := range ruleOps {
		s[i] = o.op
	}
	return strings.Join(s, ", ")
}()

// The implicit variants of a flag without variants (a boolean flag).
const (
	VariantOn  = "on"
	VariantOff = "off"
)

// FlagRule is one targeting rule: when the evaluation context's Attribute
// satisfies Operator with Values, the subject gets Variant (for a flag
// without variants, VariantOn or VariantOff: the API's "enabled": true or
// false). Rules are evaluated in order; the first match wins.
type FlagRule struct {
	Attribute string
	Operator  string
	// Values are the rule's operands as text: strings as they are, numbers
	// (gt, lt) as their JSON text.
	Values  []string
	Variant string

	num float64         // gt, lt: Values[0]
	ver *semver.Version // semver_gte, semver_lt: Values[0]
}

// FlagVariant is one value a flag can serve. Weight (0..100, all of a
// flag's summing to 100) is the share of subjects the split gives it.
type FlagVariant struct {
	Name   string
	Value  []byte // JSON, compact (whitespace outside strings removed)
	Weight int
}

// AttrKind is the JSON type of an attribute value.
type AttrKind uint8

// The attribute kinds. A query parameter (attr.NAME=…) is always a string.
const (
	AttrString AttrKind = iota
	AttrNumber
	AttrBool
)

// AttrValue is the value of one attribute of an evaluation context.
type AttrValue struct {
	Kind AttrKind
	Str  string  // AttrString
	Num  float64 // AttrNumber
	Bool bool    // AttrBool
}

// text is the attribute as the text operators compare it: a string as it
// is, a number in its shortest decimal form (1e3 is "1000"), a boolean as
// "true" or "false".
func (v AttrValue) text() string {
	switch v.Kind {
	case AttrNumber:
		return strconv.FormatFloat(v.Num, 'f', -1, 64)
	case AttrBool:
		return strconv.FormatBool(v.Bool)
	}
	return v.Str
}

// number is the attribute as gt and lt compare it: a number, or a string
// that parses as a finite decimal number.
func (v AttrValue) number() (float64, bool) {
	switch v.Kind {
	case AttrNumber:
		return v.Num, true
	case AttrString:
		f, err := strconv.ParseFloat(strings.TrimSpace(v.Str), 64)
		return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
	}
	return 0, false
}

// parseSemver parses a semantic version, ignoring a leading "v".
func parseSemver(s string) (*semver.Version, error) {
	return semver.NewVersion(strings.TrimPrefix(s, "v"))
}

// FlagContext is what a flag is evaluated for: the subject (the targeting
// key; the percentage and the variant split hash it) and the attributes
// rules read. The attribute "targetingKey" is the subject unless Attr
// gives it.
type FlagContext struct {
	Subject []byte
	// Attr returns the named attribute; ok is false when the context does
	// not have it (nil: no attributes).
	Attr func(name string) (v AttrValue, ok bool)
}

func (c *FlagContext) attr(name string) (AttrValue, bool) {
	if c.Attr != nil {
		if v, ok := c.Attr(name); ok {
			return v, true
		}
	}
	if name == "targetingKey" {
		return AttrValue{Str: string(c.Subject)}, true
	}
	return AttrValue{}, false
}

// matches reports whether the rule matches ctx. A missing attribute
// matches no rule, not_in and neq included; so does a value of the wrong
// kind (an object, an array, a string that is not a number for gt).
func (r *FlagRule) matches(ctx *FlagContext) bool {
	v, ok := ctx.attr(r.Attribute)
	if !ok {
		return false
	}
	switch r.Operator {
	case OpIn, OpEq:
		return slices.Contains(r.Values, v.text())
	case OpNotIn, OpNeq:
		return !slices.Contains(r.Values, v.text())
	case OpStartsWith, OpEndsWith, OpContains:
		s := v.text()
		for _, x := range r.Values {
			if r.Operator == OpStartsWith && strings.HasPrefix(s, x) ||
				r.Operator == OpEndsWith && strings.HasSuffix(s, x) ||
				r.Operator == OpContains && strings.Contains(s, x) {
				return true
			}
		}
		return false
	case OpSemverGte, OpSemverLt:
		if v.Kind != AttrString {
			return false
		}
		ver, err := parseSemver(v.Str)
		if err != nil {
			return false
		}
		return ver.LessThan(*r.ver) == (r.Operator == OpSemverLt)
	case OpGt, OpLt:
		n, ok := v.number()
		if !ok {
			return false
		}
		if r.Operator == OpGt {
			return n > r.num
		}
		return n < r.num
	}
	return false
}

// FlagResult is the outcome of evaluating a flag for one context.
type FlagResult struct {
	// Enabled is the boolean answer: for a flag without variants its value;
	// for a flag with variants whether the flag is on (not disabled).
	Enabled bool
	Reason  string
	// Variant and Value are what the subject gets; both empty when nothing
	// is served (the flag does not exist, or is disabled and has variants
	// but no off variant: the caller's default applies).
	Variant string
	Value   []byte // JSON
}

var (
	jsonTrue  = []byte("true")
	jsonFalse = []byte("false")
)

// variant returns the result of serving the named variant.
func (f *FlagRecord) serve(name, reason string) FlagResult {
	if len(f.Variants) == 0 {
		if name == VariantOn {
			return FlagResult{Enabled: true, Reason: reason, Variant: VariantOn, Value: jsonTrue}
		}
		return FlagResult{Reason: reason, Variant: VariantOff, Value: jsonFalse}
	}
	for i := range f.Variants {
		if v := &f.Variants[i]; v.Name == name {
			return FlagResult{Enabled: reason != ReasonDisabled, Reason: reason, Variant: v.Name, Value: v.Value}
		}
	}
	return FlagResult{Reason: reason} // unreachable: validation ties every name to a variant
}

// EvaluateFlag decides the flag for ctx:
//
//  1. no such flag: FLAG_NOT_FOUND, nothing served;
//  2. disabled: DISABLED, the off variant (false for a flag without
//     variants; the off_variant, if any, for one with variants);
//  3. the first rule that matches: TARGETING_MATCH, its variant;
//  4. variants: SPLIT, the variant whose cumulative weight range holds the
//     subject's bucket (FlagBucket), variants taken in their order;
//  5. a percentage below 100: SPLIT, on iff the bucket is below it;
//  6. otherwise on: STATIC without rules, DEFAULT when the flag has rules
//     and none matched.
//
// The same subject always gets the same answer while the flag is the same;
// raising a percentage only ever adds subjects, and changing variant
// weights moves only the subjects whose bucket a cumulative boundary
// crossed (docs/api.md).
func EvaluateFlag(f *FlagRecord, found bool, ctx FlagContext) FlagResult {
	switch {
	case !found:
		return FlagResult{Reason: ReasonFlagNotFound}
	case !f.Enabled:
		if len(f.Variants) > 0 && f.OffVariant == "" {
			return FlagResult{Reason: ReasonDisabled}
		}
		if len(f.Variants) == 0 {
			return f.serve(VariantOff, ReasonDisabled)
		}
		return f.serve(f.OffVariant, ReasonDisabled)
	}
	for i := range f.Rules {
		if r := &f.Rules[i]; r.matches(&ctx) {
			return f.serve(r.Variant, ReasonTargetingMatch)
		}
	}
	if len(f.Variants) > 0 {
		return f.serve(f.splitVariant(FlagBucket(f.Name, ctx.Subject)), ReasonSplit)
	}
	if f.Percentage != NoPercentage && f.Percentage < 100 {
		if FlagBucket(f.Name, ctx.Subject) < f.Percentage {
			return f.serve(VariantOn, ReasonSplit)
		}
		return f.serve(VariantOff, ReasonSplit)
	}
	if len(f.Rules) > 0 {
		return f.serve(VariantOn, ReasonDefault)
	}
	return f.serve(VariantOn, ReasonStatic)
}

// splitVariant is the variant of bucket (0..99): variants own consecutive
// ranges of buckets in their order, each as wide as its weight.
func (f *FlagRecord) splitVariant(bucket int) string {
	upTo := 0
	for i := range f.Variants {
		upTo += f.Variants[i].Weight
		if bucket < upTo {
			return f.Variants[i].Name
		}
	}
	return f.Variants[len(f.Variants)-1].Name // unreachable: weights sum to 100
}

// --- validation ---

// CheckFlagWrite validates a flag definition and compiles its rules (the
// parsed numbers and versions evaluation uses). Errors are CodeInvalid and
// name the field: "rules[2].values[0] …", "variants[1].weight …".
func CheckFlagWrite(w *FlagWrite) error {
	if len(w.Variants) > 0 && w.Percentage != NoPercentage {
		return invalidf("percentage: a flag with variants is split by their weights; leave percentage out (give the subjects outside the rollout a variant of their own)")
	}
	if len(w.Variants) > MaxFlagVariants {
		return invalidf("variants: at most %d variants", MaxFlagVariants)
	}
	sum := 0
	for i := range w.Variants {
		v := &w.Variants[i]
		if !names.Variant.Valid(v.Name) {
			return invalidf("variants[%d].name %s", i, names.Variant.Requirement())
		}
		for j := 0; j < i; j++ {
			if w.Variants[j].Name == v.Name {
				return invalidf("variants[%d].name: %q is given twice (variant names are unique)", i, v.Name)
			}
		}
		if v.Weight < 0 || v.Weight > 100 {
			return invalidf("variants[%d].weight must be between 0 and 100", i)
		}
		if len(v.Value) == 0 || !json.Valid(v.Value) {
			return invalidf("variants[%d].value must be a JSON value", i)
		}
		if len(v.Value) > MaxVariantValueBytes {
			return invalidf("variants[%d].value must be at most %d bytes of JSON", i, MaxVariantValueBytes)
		}
		sum += v.Weight
	}
	if len(w.Variants) > 0 && sum != 100 {
		return invalidf("variants: the weights must sum to 100 (they sum to %d)", sum)
	}
	if w.OffVariant != "" && !hasVariant(w.Variants, w.OffVariant) {
		if len(w.Variants) == 0 {
			return invalidf("off_variant: the flag has no variants (a flag without variants serves false when off)")
		}
		return invalidf("off_variant: no variant is named %q", w.OffVariant)
	}
	if len(w.Rules) > MaxFlagRules {
		return invalidf("rules: at most %d rules", MaxFlagRules)
	}
	for i := range w.Rules {
		if err := compileRule(&w.Rules[i], i, w.Variants); err != nil {
			return err
		}
	}
	return nil
}

func hasVariant(vs []FlagVariant, name string) bool {
	for i := range vs {
		if vs[i].Name == name {
			return true
		}
	}
	return false
}

// compileRule validates rule i and parses its number or version.
func compileRule(r *FlagRule, i int, variants []FlagVariant) error {
	if !names.Attribute.Valid(r.Attribute) {
		return invalidf("rules[%d].attribute %s", i, names.Attribute.Requirement())
	}
	var one bool
	var kind ValueKind
	known := false
	for _, o := range ruleOps {
		if o.op == r.Operator {
			one, kind, known = o.one, o.values, true
		}
	}
	if !known {
		return invalidf("rules[%d].operator must be one of %s", i, operatorList)
	}
	switch {
	case one && len(r.Values) != 1:
		return invalidf("rules[%d].values: %s takes exactly one value", i, r.Operator)
	case len(r.Values) == 0 || len(r.Values) > MaxRuleValues:
		return invalidf("rules[%d].values must have 1 to %d values", i, MaxRuleValues)
	}
	for j, s := range r.Values {
		if len(s) > MaxRuleValueBytes {
			return invalidf("rules[%d].values[%d] must be at most %d bytes", i, j, MaxRuleValueBytes)
		}
	}
	switch kind {
	case NumberValues:
		f, err := strconv.ParseFloat(r.Values[0], 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return invalidf("rules[%d].values[0] must be a number for %s", i, r.Operator)
		}
		r.num = f
	case SemverValues:
		v, err := parseSemver(r.Values[0])
		if err != nil {
			return invalidf("rules[%d].values[0] must be a semantic version (like 1.4.0 or 2.0.0-rc.1) for %s", i, r.Operator)
		}
		r.ver = v
	}
	if len(variants) == 0 {
		if r.Variant != VariantOn && r.Variant != VariantOff {
			return invalidf("rules[%d]: the flag has no variants: give enabled true or false", i)
		}
		return nil
	}
	if !hasVariant(variants, r.Variant) {
		return invalidf("rules[%d].variant: no variant is named %q", i, r.Variant)
	}
	return nil
}

func invalidf(format string, args ...any) *Error { return Errorf(CodeInvalid, format, args...) }

// --- storage encoding (both stores: SQLite columns, etcd record fields) ---

// ruleJSON and variantJSON are the stored forms: a rule's variant is
// always by name ("on"/"off" for a flag without variants), values are
// always text.
type ruleJSON struct {
	Attribute string   `json:"attribute"`
	Operator  string   `json:"operator"`
	Values    []string `json:"values"`
	Variant   string   `json:"variant"`
}

type variantJSON struct {
	Name   string          `json:"name"`
	Value  json.RawMessage `json:"value"`
	Weight int             `json:"weight"`
}

// EncodeFlagTargeting is the stored form of a flag's rules and variants:
// JSON arrays, nil for none.
func EncodeFlagTargeting(f *FlagRecord) (rules, variants []byte) {
	if len(f.Rules) > 0 {
		rs := make([]ruleJSON, len(f.Rules))
		for i, r := range f.Rules {
			rs[i] = ruleJSON{r.Attribute, r.Operator, r.Values, r.Variant}
		}
		rules = mustMarshal(rs)
	}
	if len(f.Variants) > 0 {
		vs := make([]variantJSON, len(f.Variants))
		for i, v := range f.Variants {
			vs[i] = variantJSON{v.Name, v.Value, v.Weight}
		}
		variants = mustMarshal(vs)
	}
	return rules, variants
}

// DecodeFlagTargeting sets f's rules and variants from their stored form
// (EncodeFlagTargeting; empty for none) and compiles them; f's
// Percentage and OffVariant must already be set. A stored definition that
// does not validate is an error (corruption, or a newer server's
// definition).
func DecodeFlagTargeting(f *FlagRecord, rules, variants []byte) error {
	f.Rules, f.Variants = nil, nil
	if len(bytes.TrimSpace(variants)) > 0 {
		var vs []variantJSON
		if err := json.Unmarshal(variants, &vs); err != nil {
			return fmt.Errorf("flag %s/%s variants: %w", f.Owner, f.Name, err)
		}
		f.Variants = make([]FlagVariant, len(vs))
		for i, v := range vs {
			f.Variants[i] = FlagVariant{Name: v.Name, Value: []byte(v.Value), Weight: v.Weight}
		}
	}
	if len(bytes.TrimSpace(rules)) > 0 {
		var rs []ruleJSON
		if err := json.Unmarshal(rules, &rs); err != nil {
			return fmt.Errorf("flag %s/%s rules: %w", f.Owner, f.Name, err)
		}
		f.Rules = make([]FlagRule, len(rs))
		for i, r := range rs {
			f.Rules[i] = FlagRule{Attribute: r.Attribute, Operator: r.Operator, Values: r.Values, Variant: r.Variant}
		}
	}
	w := FlagWrite{Enabled: f.Enabled, Percentage: f.Percentage, Rules: f.Rules, Variants: f.Variants, OffVariant: f.OffVariant}
	if err := CheckFlagWrite(&w); err != nil {
		return fmt.Errorf("flag %s/%s: stored definition: %w", f.Owner, f.Name, err)
	}
	return nil
}

// mustMarshal encodes the stored forms above, which cannot fail to encode,
// without escaping <, > and & (values keep their text).
func mustMarshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("actors: encode %T: %v", v, err))
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
