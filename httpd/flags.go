package httpd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/actors/names"
	"github.com/valyala/fasthttp"
)

// Bounds of an evaluation's query: ?subject= and the attr.NAME=VALUE
// attributes targeting rules read.
const (
	MaxFlagSubject   = 1024
	MaxFlagAttrs     = 50
	MaxFlagAttrValue = actors.MaxRuleValueBytes
)

type flagBody struct {
	Enabled    field `json:"enabled"`
	Percentage field `json:"percentage"`
	Rules      field `json:"rules"`
	Variants   field `json:"variants"`
	OffVariant field `json:"off_variant"`
}

// ruleBody is one element of "rules": exactly one of enabled (a flag
// without variants) and variant (a flag with variants).
type ruleBody struct {
	Attribute field `json:"attribute"`
	Operator  field `json:"operator"`
	Values    field `json:"values"`
	Enabled   field `json:"enabled"`
	Variant   field `json:"variant"`
}

// variantBody is one element of "variants"; value is any JSON, null
// included.
type variantBody struct {
	Name   field   `json:"name"`
	Value  rawJSON `json:"value"`
	Weight field   `json:"weight"`
}

var (
	errSubjectTooLong = invalid("subject must be at most 1024 bytes")
	errPercentageNull = invalid("percentage must be an integer between 0 and 100; leave it out for no percentage")
	errTooManyAttrs   = invalid(fmt.Sprintf("at most %d attr.NAME parameters", MaxFlagAttrs))
)

// flagWrite validates the body of PUT /flags/{name}. Structure and types
// are checked here, the definition's meaning (operators, weights, names,
// references) by actors.CheckFlagWrite; every error names the field.
func flagWrite(ctx *fasthttp.RequestCtx) (actors.FlagWrite, error) {
	var body flagBody
	if err := decodeBody(ctx, &body); err != nil {
		return actors.FlagWrite{}, err
	}
	enabled, err := body.Enabled.Bool("enabled")
	if err != nil {
		return actors.FlagWrite{}, err
	}
	w := actors.FlagWrite{Enabled: enabled, Percentage: actors.NoPercentage}
	// Without percentage the flag has none; null is refused rather than
	// taken as "none" (the contract's percentage is an integer or absent).
	if body.Percentage.seen {
		pct, err := body.Percentage.Int("percentage", 0, 100)
		if err != nil {
			if !body.Percentage.set() && !body.Percentage.dup {
				err = errPercentageNull
			}
			return w, err
		}
		w.Percentage = int(pct)
	}
	if body.OffVariant.seen {
		if w.OffVariant, err = body.OffVariant.String("off_variant"); err != nil {
			return w, err
		}
	}
	var raws []json.RawMessage
	if raws, err = array(&body.Variants, "variants", actors.MaxFlagVariants); err != nil {
		return w, err
	}
	for i, raw := range raws {
		v, err := variant(raw, i)
		if err != nil {
			return w, err
		}
		w.Variants = append(w.Variants, v)
	}
	if raws, err = array(&body.Rules, "rules", actors.MaxFlagRules); err != nil {
		return w, err
	}
	for i, raw := range raws {
		r, err := rule(raw, i, len(w.Variants) > 0)
		if err != nil {
			return w, err
		}
		w.Rules = append(w.Rules, r)
	}
	return w, nil
}

// array reads an optional array field of at most max elements (absent: none;
// null is refused like percentage's).
func array(f *field, name string, max int) ([]json.RawMessage, error) {
	if !f.seen {
		return nil, nil
	}
	if err := f.present(name); err != nil {
		return nil, invalid(name + " must be an array; leave it out for none")
	}
	var raws []json.RawMessage
	if f.raw[0] != '[' || json.Unmarshal(f.raw, &raws) != nil {
		return nil, invalid(name + " must be an array")
	}
	if len(raws) > max {
		return nil, invalid(fmt.Sprintf("%s: at most %d", name, max))
	}
	return raws, nil
}

// object decodes element i of an array field into v (a struct of fields),
// its field names exact as in a body (foldedKey).
func object(raw json.RawMessage, name string, i int, v any) error {
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, v) != nil {
		return invalid(fmt.Sprintf("%s[%d] must be an object", name, i))
	}
	if msg := foldedKey(raw, v); msg != "" {
		return invalid(fmt.Sprintf("%s[%d]: %s", name, i, msg))
	}
	return nil
}

func variant(raw json.RawMessage, i int) (actors.FlagVariant, error) {
	var b variantBody
	if err := object(raw, "variants", i, &b); err != nil {
		return actors.FlagVariant{}, err
	}
	at := fmt.Sprintf("variants[%d].", i)
	name, err := b.Name.String(at + "name")
	if err != nil {
		return actors.FlagVariant{}, err
	}
	weight, err := b.Weight.Int(at+"weight", 0, 100)
	if err != nil {
		return actors.FlagVariant{}, err
	}
	switch {
	case b.Value.raw == nil:
		return actors.FlagVariant{}, invalid(at + "value is required (any JSON value)")
	case b.Value.dup:
		return actors.FlagVariant{}, invalid(at + "value is given more than once")
	}
	var value bytes.Buffer
	if err := json.Compact(&value, b.Value.raw); err != nil {
		return actors.FlagVariant{}, invalid(at + "value must be a JSON value")
	}
	return actors.FlagVariant{Name: name, Value: value.Bytes(), Weight: int(weight)}, nil
}

func rule(raw json.RawMessage, i int, withVariants bool) (actors.FlagRule, error) {
	var b ruleBody
	if err := object(raw, "rules", i, &b); err != nil {
		return actors.FlagRule{}, err
	}
	at := fmt.Sprintf("rules[%d].", i)
	var r actors.FlagRule
	var err error
	if r.Attribute, err = b.Attribute.String(at + "attribute"); err != nil {
		return r, err
	}
	if r.Operator, err = b.Operator.String(at + "operator"); err != nil {
		return r, err
	}
	kind, ok := actors.RuleValueKind(r.Operator)
	if !ok {
		return r, invalid(at + "operator must be one of " + actors.RuleOperators())
	}
	if err := b.Values.present(at + "values"); err != nil {
		return r, err
	}
	var values []json.RawMessage
	if b.Values.raw[0] != '[' || json.Unmarshal(b.Values.raw, &values) != nil {
		return r, invalid(at + "values must be an array")
	}
	if len(values) > actors.MaxRuleValues {
		return r, invalid(fmt.Sprintf("%svalues must have 1 to %d values", at, actors.MaxRuleValues))
	}
	for j, v := range values {
		if kind == actors.NumberValues {
			if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
				return r, invalid(fmt.Sprintf("%svalues[%d] must be a number for %s", at, j, r.Operator))
			}
			r.Values = append(r.Values, string(v))
			continue
		}
		var s string
		if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
			return r, invalid(fmt.Sprintf("%svalues[%d] must be a string for %s", at, j, r.Operator))
		}
		r.Values = append(r.Values, s)
	}
	switch {
	case b.Enabled.seen && b.Variant.seen:
		return r, invalid(at[:len(at)-1] + ": give enabled or variant, not both")
	case withVariants && b.Enabled.seen:
		return r, invalid(at + "enabled: the flag has variants: give the variant this rule serves")
	case !withVariants && b.Variant.seen:
		return r, invalid(at + "variant: the flag has no variants: give enabled true or false")
	case withVariants:
		r.Variant, err = b.Variant.String(at + "variant")
	default:
		var on bool
		on, err = b.Enabled.Bool(at + "enabled")
		r.Variant = actors.VariantOff
		if on {
			r.Variant = actors.VariantOn
		}
	}
	return r, err
}

func (s *Server) flagSet(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	name, err := flagNames.name(ctx)
	if err != nil {
		return err
	}
	w, err := flagWrite(ctx)
	if err != nil {
		return err
	}
	if err := actors.CheckFlagWrite(&w); err != nil {
		return err // before the owner: a bad definition is 422 whoever sends it
	}
	owner, err := s.scope(ctx, p, true)
	if err != nil {
		return err
	}
	f, err := s.flags.Put(rq.ctx(), owner, name, w)
	if err != nil {
		return err
	}
	return writeOK(ctx, s.appendFlag(make([]byte, 0, flagSize(&f)), f, false))
}

// queryAttrs are the attr.NAME=VALUE parameters of an evaluation, as
// slices of the request's query (valid while the request is).
type queryAttrs struct {
	n  int
	kv [MaxFlagAttrs][2][]byte
}

const attrPrefix = "attr."

// parse collects and checks the attr. parameters: names by
// names.Attribute, values at most MaxFlagAttrValue bytes, each name once,
// at most MaxFlagAttrs of them (422 naming the parameter otherwise).
func (qa *queryAttrs) parse(args *fasthttp.Args) error {
	for k, v := range args.All() {
		if !bytes.HasPrefix(k, []byte(attrPrefix)) {
			continue
		}
		name := k[len(attrPrefix):]
		switch {
		case !names.Attribute.Valid(string(name)):
			return invalid(fmt.Sprintf("attr.%s: the attribute name %s", name, names.Attribute.Requirement()))
		case len(v) > MaxFlagAttrValue:
			return invalid(fmt.Sprintf("attr.%s must be at most %d bytes", name, MaxFlagAttrValue))
		case qa.n == MaxFlagAttrs:
			return errTooManyAttrs
		}
		for i := 0; i < qa.n; i++ {
			if bytes.Equal(qa.kv[i][0], name) {
				return invalid(fmt.Sprintf("attr.%s is given more than once", name))
			}
		}
		qa.kv[qa.n] = [2][]byte{name, v}
		qa.n++
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// get is an actors.FlagContext.Attr: every attr. parameter is a string.
func (qa *queryAttrs) get(name string) (actors.AttrValue, bool) {
	for i := 0; i < qa.n; i++ {
		if string(qa.kv[i][0]) == name {
			return actors.AttrValue{Str: string(qa.kv[i][1])}, true
		}
	}
	return actors.AttrValue{}, false
}

// flagGet evaluates the flag for ?subject= (default: the caller's login;
// for the admin key, the owner's) and the attr.NAME=VALUE parameters. The
// hot path: the definition comes from the committed read view when the
// flag's actor is resident (no actor round trip, and then no request
// context either), no encoding/json, no copies of the subject; a query
// without attributes allocates nothing for them.
func (s *Server) flagGet(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	owner, name, err := s.target(flagNames, ctx, p, false)
	if err != nil {
		return err
	}
	args := ctx.QueryArgs()
	subject := args.Peek("subject")
	if len(subject) > MaxFlagSubject {
		return errSubjectTooLong
	}
	fc := actors.FlagContext{Subject: subject}
	if others := args.Len() - btoi(args.Has("subject")) - btoi(args.Has("owner")); others > 0 {
		qa := new(queryAttrs)
		if err := qa.parse(args); err != nil {
			return err
		}
		if qa.n > 0 {
			fc.Attr = qa.get
		}
	}
	st, ok := s.flags.Lookup(owner, name)
	if !ok {
		if st, err = s.flags.Get(rq.ctx(), owner, name); err != nil {
			return err
		}
	}
	if len(fc.Subject) == 0 {
		// The owner's login, not its id: bucketing is by login, as it was
		// before ids (docs/api.md), so rollouts do not move.
		fc.Subject = ownerLogin(ctx, p)
	}
	r := st.Evaluate(owner, fc)
	var buf [192]byte
	b := append(buf[:0], `{"name":`...)
	b = appendString(b, name)
	b = append(b, `,"enabled":`...)
	b = strconv.AppendBool(b, r.Enabled)
	b = append(b, `,"reason":"`...)
	b = append(b, r.Reason...)
	b = append(b, '"')
	if r.Variant != "" {
		b = append(b, `,"variant":`...)
		b = appendString(b, r.Variant)
		b = append(b, `,"value":`...)
		b = append(b, r.Value...)
	}
	b = append(b, '}')
	return writeOK(ctx, b)
}

func (s *Server) flagDelete(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	return s.deleteTarget(ctx, rq, p, flagNames, s.flags.Delete, deletedBody)
}

// flagList is served from the database: every acknowledged write is
// committed, so it is there.
func (s *Server) flagList(ctx *fasthttp.RequestCtx, rq *request, p *Principal) error {
	return writeListing(s, ctx, rq, p, "flags", s.flags.List, func(it *actors.FlagRecord) (string, string) { return it.Owner, it.Name }, 160, func(b []byte, f *actors.FlagRecord, all bool) []byte {
		return s.appendFlag(b, *f, all)
	})
}

// flagSize estimates the rendered size of a flag.
func flagSize(f *actors.FlagRecord) int {
	n := 160 + len(f.OffVariant)
	for i := range f.Rules {
		n += 64 + len(f.Rules[i].Attribute) + len(f.Rules[i].Variant)
		for _, v := range f.Rules[i].Values {
			n += 4 + len(v)
		}
	}
	for i := range f.Variants {
		n += 48 + len(f.Variants[i].Name) + len(f.Variants[i].Value)
	}
	return n
}

// appendFlag renders a flag definition; percentage, rules, variants and
// off_variant are left out when the flag has none (every flag answer: PUT,
// the listing). A rule of a flag without variants shows "enabled", one of a
// flag with variants "variant", as they were given.
func (s *Server) appendFlag(b []byte, f actors.FlagRecord, withOwner bool) []byte {
	b = append(b, '{')
	b = s.appendOwner(b, withOwner, f.Owner)
	b = append(b, `"name":`...)
	b = appendString(b, f.Name)
	b = append(b, `,"enabled":`...)
	b = strconv.AppendBool(b, f.Enabled)
	if f.Percentage != actors.NoPercentage {
		b = append(b, `,"percentage":`...)
		b = strconv.AppendInt(b, int64(f.Percentage), 10)
	}
	if len(f.Rules) > 0 {
		b = append(b, `,"rules":[`...)
		for i := range f.Rules {
			r := &f.Rules[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"attribute":`...)
			b = appendString(b, r.Attribute)
			b = append(b, `,"operator":`...)
			b = appendString(b, r.Operator)
			b = append(b, `,"values":[`...)
			kind, _ := actors.RuleValueKind(r.Operator)
			for j, v := range r.Values {
				if j > 0 {
					b = append(b, ',')
				}
				if kind == actors.NumberValues {
					b = append(b, v...) // a JSON number as it was sent
				} else {
					b = appendString(b, v)
				}
			}
			b = append(b, ']')
			if len(f.Variants) == 0 {
				b = append(b, `,"enabled":`...)
				b = strconv.AppendBool(b, r.Variant == actors.VariantOn)
			} else {
				b = append(b, `,"variant":`...)
				b = appendString(b, r.Variant)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(f.Variants) > 0 {
		b = append(b, `,"variants":[`...)
		for i := range f.Variants {
			v := &f.Variants[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendString(b, v.Name)
			b = append(b, `,"value":`...)
			b = append(b, v.Value...)
			b = append(b, `,"weight":`...)
			b = strconv.AppendInt(b, int64(v.Weight), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if f.OffVariant != "" {
		b = append(b, `,"off_variant":`...)
		b = appendString(b, f.OffVariant)
	}
	b = append(b, `,"created_at":`...)
	b = appendTime(b, f.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, f.UpdatedAt)
	return append(b, '}')
}
