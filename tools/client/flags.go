package client

import (
	"context"
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Flag is a feature flag definition. Owner is set for admin listings.
type Flag struct {
	Name       string        `json:"name"`
	Enabled    bool          `json:"enabled"`
	Percentage *int          `json:"percentage,omitempty"`
	Rules      []FlagRule    `json:"rules,omitempty"`
	Variants   []FlagVariant `json:"variants,omitempty"`
	OffVariant string        `json:"off_variant,omitempty"`
	CreatedAt  time.Time     `json:"created_at,omitzero"`
	UpdatedAt  time.Time     `json:"updated_at,omitzero"`
	Owner      string        `json:"owner,omitempty"`
}

// FlagSpec is the body of SetFlag (a PUT: it replaces the whole flag).
// Percentage nil means no rollout percentage (the flag is simply on or
// off); set it with new(30). Rules are evaluated in order, the first match
// deciding; Variants (weights summing to 100) make the flag serve values
// instead of true/false, and then a rule names a Variant instead of
// Enabled. OffVariant is what a disabled flag with variants serves.
type FlagSpec struct {
	Enabled    bool          `json:"enabled"`
	Percentage *int          `json:"percentage,omitempty"`
	Rules      []FlagRule    `json:"rules,omitempty"`
	Variants   []FlagVariant `json:"variants,omitempty"`
	OffVariant string        `json:"off_variant,omitempty"`
}

// FlagRule is a targeting rule: when the evaluation's Attribute satisfies
// Operator (in, not_in, eq, neq, starts_with, ends_with, contains,
// semver_gte, semver_lt, gt, lt) with Values (strings; one number for gt
// and lt), the subject gets Variant, or for a flag without variants the
// value Enabled (exactly one of the two).
type FlagRule struct {
	Attribute string `json:"attribute"`
	Operator  string `json:"operator"`
	Values    []any  `json:"values"`
	Enabled   *bool  `json:"enabled,omitempty"`
	Variant   string `json:"variant,omitempty"`
}

// FlagVariant is one value a flag serves, to Weight percent (0..100) of
// the subjects no rule matches. Value is any JSON (json.RawMessage(`"blue"`)).
type FlagVariant struct {
	Name   string          `json:"name"`
	Value  json.RawMessage `json:"value"`
	Weight int             `json:"weight"`
}

// FlagEvaluation is the answer of GetFlag and EvaluateFlag.
type FlagEvaluation struct {
	Name string `json:"name"`
	// Enabled is the value of a flag without variants; for a flag with
	// variants, whether it is on.
	Enabled bool `json:"enabled"`
	// Reason is DISABLED, STATIC, SPLIT, TARGETING_MATCH, DEFAULT or
	// FLAG_NOT_FOUND.
	Reason string `json:"reason,omitempty"`
	// Variant and Value are what the subject gets ("on"/true, "off"/false
	// for a flag without variants); empty when nothing is served.
	Variant string          `json:"variant,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
}

// SetFlag creates or updates a flag. Idempotent (PUT), so retried.
func (c *Client) SetFlag(ctx context.Context, name string, spec FlagSpec) (*Flag, error) {
	if err := checkName("flag name", name); err != nil {
		return nil, err
	}
	f := new(Flag)
	if err := c.call(ctx, "PUT", c.owned("/flags/"+seg(name)), spec, true, f); err != nil {
		return nil, err
	}
	return f, nil
}

// GetFlag evaluates the flag for subject (the rollout bucket key; may be
// empty). An unknown flag evaluates to Enabled false, Reason FLAG_NOT_FOUND.
func (c *Client) GetFlag(ctx context.Context, name, subject string) (*FlagEvaluation, error) {
	return c.EvaluateFlag(ctx, name, subject, nil)
}

// EvaluateFlag evaluates the flag for subject and the attributes its
// targeting rules read (sent as attr.NAME=VALUE: at most 50, names of
// letters, digits and ._-).
func (c *Client) EvaluateFlag(ctx context.Context, name, subject string, attrs map[string]string) (*FlagEvaluation, error) {
	if err := checkName("flag name", name); err != nil {
		return nil, err
	}
	var q strings.Builder
	if subject != "" {
		q.WriteString("?subject=")
		q.WriteString(url.QueryEscape(subject))
	}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if q.Len() == 0 {
			q.WriteByte('?')
		} else {
			q.WriteByte('&')
		}
		q.WriteString("attr.")
		q.WriteString(url.QueryEscape(k))
		q.WriteByte('=')
		q.WriteString(url.QueryEscape(attrs[k]))
	}
	x := c.start("GET", "/flags/", seg(name), q.String(), c.ownerSuffix(q.Len() > 0))
	defer c.finish(x)
	if err := c.send(ctx, x, true); err != nil {
		return nil, err
	}
	e := new(FlagEvaluation)
	if err := decode(x, e); err != nil {
		return nil, err
	}
	return e, nil
}

// DeleteFlag deletes the flag (ErrNotFound if there is none).
func (c *Client) DeleteFlag(ctx context.Context, name string) error {
	return c.deleteNamed(ctx, "flag name", "/flags/", name)
}

// ListFlags lists the caller's flags (every user's for an admin).
func (c *Client) ListFlags(ctx context.Context) ([]Flag, error) {
	return listAll[Flag](ctx, c, c.owned("/flags"), "flags")
}

// ListFlagsPage reads one page of the caller's flags (every user's for an
// admin: by owner, then name), by name.
func (c *Client) ListFlagsPage(ctx context.Context, o ListOptions) (*Page[Flag], error) {
	return listPage[Flag](ctx, c, c.owned("/flags"), "flags", o)
}
