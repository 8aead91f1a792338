package client

import (
	"context"
	"errors"
	"strconv"
)

// Fence is the answer of a fence check.
type Fence struct {
	// Valid: the token is the current, unexpired grant's (Holder holds
	// it). Otherwise CurrentFencingToken is the last token granted (0 if
	// never): a write carrying an older token comes from a holder that
	// lost the lock.
	Valid               bool   `json:"valid"`
	FencingToken        uint64 `json:"fencing_token,omitempty"`
	Holder              string `json:"holder,omitempty"`
	CurrentFencingToken uint64 `json:"current_fencing_token,omitempty"`
}

// CheckFence asks whether token is the fencing token of the lock's current
// grant: the check a storage service makes before it applies a write that
// carries the token (any authenticated caller may make it). Linearizable
// with grants: once a newer grant is acknowledged, no check of an older
// token answers valid. A stale token answers a *StaleTokenError
// (errors.Is ErrStaleToken) together with a Fence whose Valid is false and
// CurrentFencingToken is the last token granted.
func (c *Client) CheckFence(ctx context.Context, name string, token uint64) (*Fence, error) {
	if err := checkName("lock name", name); err != nil {
		return nil, err
	}
	return c.fence(ctx, "/locks/"+seg(name)+"/fence?token="+strconv.FormatUint(token, 10))
}

// CheckSemaphoreFence is CheckFence for a semaphore: valid while a slot
// with this token is held.
func (c *Client) CheckSemaphoreFence(ctx context.Context, name string, token uint64) (*Fence, error) {
	if err := checkName("semaphore name", name); err != nil {
		return nil, err
	}
	return c.fence(ctx, "/semaphores/"+seg(name)+"/fence?token="+strconv.FormatUint(token, 10))
}

func (c *Client) fence(ctx context.Context, path string) (*Fence, error) {
	f := new(Fence)
	err := c.getJSON(ctx, path, f)
	var stale *StaleTokenError
	if errors.As(err, &stale) {
		return &Fence{CurrentFencingToken: stale.Current}, err
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}
