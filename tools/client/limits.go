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
	Algorithm         string    `json:"algorithm,omitempty"` // sliding_window or token_bucket
	Limit             int       `json:"limit,omitempty"`     // from the RateLimit-Limit header, when sent
}

// The rate-limit algorithms (LimitCheck.Algorithm).
const (
	SlidingWindow = "sliding_window"
	TokenBucket   = "token_bucket"
)

// LimitCheck is one check of CheckLimitWith and CheckLimits: at most
// MaxRequests units per Window (whole seconds, rounded up), Cost units
// (0: 1) taken by this check, by Algorithm ("": sliding_window; or
// token_bucket: a bucket of MaxRequests tokens refilled at MaxRequests per
// Window). Name is the limit's (CheckLimits only).
type LimitCheck struct {
	Name        string
	MaxRequests int
	Window      time.Duration
	Cost        int
	Algorithm   string
}

// LimitBatchResult is one result of CheckLimits: the check's LimitResult,
// or, when the check was refused on its own (the quota for a new limit),
// Error and the Status it would have had alone.
type LimitBatchResult struct {
	Name string `json:"name"`
	LimitResult
	Error  string `json:"error,omitempty"`
	Status int    `json:"status,omitempty"`
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
	Algorithm     string    `json:"algorithm,omitempty"`
	Owner         string    `json:"owner,omitempty"`
}

// CheckLimit consumes one request from the named limit (max requests per
// window; window in whole seconds, rounded up) and reports whether it was
// allowed. A denial is not an error: Allowed is false. Never retried once the
// request may have reached the server.
func (c *Client) CheckLimit(ctx context.Context, name string, max int, window time.Duration) (*LimitResult, error) {
	return c.CheckLimitWith(ctx, name, LimitCheck{MaxRequests: max, Window: window})
}

// CheckLimitWith is CheckLimit with a cost and an algorithm (chk.Name is
// not used: name is the limit). Never retried once the request may have
// reached the server.
func (c *Client) CheckLimitWith(ctx context.Context, name string, chk LimitCheck) (*LimitResult, error) {
	if err := checkName("limit name", name); err != nil {
		return nil, err
	}
	x := c.start("POST", "/limits/", seg(name), "/check", c.ownerSuffix(false))
	defer c.finish(x)
	var buf [128]byte
	chk.Name = ""
	x.setJSON(appendCheck(buf[:0], chk))
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

// CheckLimits applies up to 100 checks in one request, each exactly as
// CheckLimitWith would at that point (a name repeated in the batch sees
// its earlier checks), and returns their results in order. Never retried
// once the request may have reached the server.
func (c *Client) CheckLimits(ctx context.Context, checks []LimitCheck) ([]LimitBatchResult, error) {
	for _, chk := range checks {
		if err := checkName("limit name", chk.Name); err != nil {
			return nil, err
		}
	}
	x := c.start("POST", "/limits/check", c.ownerSuffix(false))
	defer c.finish(x)
	b := make([]byte, 0, 16+len(checks)*96)
	b = append(b, `{"checks":[`...)
	for i, chk := range checks {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCheck(b, chk)
	}
	x.setJSON(append(b, `]}`...))
	if err := c.send(ctx, x, false); err != nil {
		return nil, err
	}
	var out struct {
		Results []LimitBatchResult `json:"results"`
	}
	if err := decode(x, &out); err != nil {
		return nil, err
	}
	return out.Results, nil
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
	return listAll[LimitInfo](ctx, c, c.owned("/limits"), "limits")
}

// ListLimitsPage reads one page of the caller's limits (every user's for an
// admin: by owner, then name), by name.
func (c *Client) ListLimitsPage(ctx context.Context, o ListOptions) (*Page[LimitInfo], error) {
	return listPage[LimitInfo](ctx, c, c.owned("/limits"), "limits", o)
}
