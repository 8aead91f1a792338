package client

import (
	"context"
	"net/url"
	"time"
)

// Flag is a feature flag definition. Owner is set for admin listings.
type Flag struct {
	Name       string    `json:"name"`
	Enabled    bool      `json:"enabled"`
	Percentage *int      `json:"percentage,omitempty"`
	CreatedAt  time.Time `json:"created_at,omitzero"`
	UpdatedAt  time.Time `json:"updated_at,omitzero"`
	Owner      string    `json:"owner,omitempty"`
}

// FlagSpec is the body of SetFlag. Percentage nil means no rollout
// percentage (the flag is simply on or off); set it with new(30).
type FlagSpec struct {
	Enabled    bool `json:"enabled"`
	Percentage *int `json:"percentage,omitempty"`
}

// FlagEvaluation is the answer of GetFlag.
type FlagEvaluation struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	// Reason is DISABLED, STATIC, SPLIT or FLAG_NOT_FOUND.
	Reason string `json:"reason,omitempty"`
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
	if err := checkName("flag name", name); err != nil {
		return nil, err
	}
	var x *exchange
	if subject == "" {
		x = c.start("GET", "/flags/", seg(name), c.ownerSuffix(false))
	} else {
		x = c.start("GET", "/flags/", seg(name), "?subject=", url.QueryEscape(subject), c.ownerSuffix(true))
	}
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
	return listOf[Flag](ctx, c, c.owned("/flags"), "flags")
}
