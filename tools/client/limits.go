package client

import (
	"context"
	"strconv"
	"time"
)

// LimitResult is the answer of CheckLimit and LimitStatus.
type LimitResult struct {
	Allowed           bool      `json:"allowed"`
	Remaining         int       `json:"remaining"`
	ResetAt           time.Time `json:"reset_at"`
	RetryAfterSeconds int       `json:"retry_after_seconds,omitempty"`
	Limit             int       `json:"limit,omitempty"` // from the RateLimit-Limit header, when sent
}

// RetryAfter is RetryAfterSeconds as a duration.
func (r *LimitResult) RetryAfter() time.Duration {
	return time.Duration(r.RetryAfterSeconds) * time.Second
}

// LimitInfo is one entry of ListLimits. Owner is set for admin listings.
type LimitInfo struct {
	Name          string    `json:"name"`
	MaxRequests   int       `json:"max_requests"`
	WindowSeconds int       `json:"window_seconds"`
	CurrentCount  int       `json:"current_count"`
	Remaining     int       `json:"remaining"`
	Allowed       bool      `json:"allowed"`
	ResetAt       time.Time `json:"reset_at"`
	Owner         string    `json:"owner,omitempty"`
}

// CheckLimit consumes one request from the named limit (max requests per
// window; window in whole seconds, rounded up) and reports whether it was
// allowed. A denial is not an error: Allowed is false. Never retried once the
// request may have reached the server.
func (c *Client) CheckLimit(ctx context.Context, name string, max int, window time.Duration) (*LimitResult, error) {
	if err := checkName("limit name", name); err != nil {
		return nil, err
	}
	x := c.start("POST", "/limits/", seg(name), "/check", c.ownerSuffix(false))
	defer c.finish(x)
	var buf [64]byte
	x.setJSON(appendCheckBody(buf[:0], max, window))
	if err := c.send(ctx, x, false); err != nil {
		return nil, err
	}
	r := new(LimitResult)
	if err := decode(x, r); err != nil {
		return nil, err
	}
	if h := x.resp.Header.Peek("RateLimit-Limit"); len(h) > 0 {
		r.Limit, _ = strconv.Atoi(string(h))
	}
	return r, nil
}

// LimitStatus reports the limit's state without consuming a request.
func (c *Client) LimitStatus(ctx context.Context, name string) (*LimitResult, error) {
	if err := checkName("limit name", name); err != nil {
		return nil, err
	}
	return getJSON[LimitResult](ctx, c, c.owned("/limits/"+seg(name)))
}

// ResetLimit clears the limit's counter.
func (c *Client) ResetLimit(ctx context.Context, name string) error {
	return c.deleteNamed(ctx, "limit name", "/limits/", name)
}

// ListLimits lists the caller's limits (every user's for an admin).
func (c *Client) ListLimits(ctx context.Context) ([]LimitInfo, error) {
	return listOf[LimitInfo](ctx, c, c.owned("/limits"), "limits")
}
