package client

import (
	"context"
	"errors"
)

// RotateToken asks for a new bearer token, which invalidates the current one,
// and switches this client to it. Not retried once sent (a replay would
// rotate again with a token that no longer exists).
func (c *Client) RotateToken(ctx context.Context) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	if err := c.call(ctx, "POST", "/auth/token/rotate", nil, false, &out); err != nil {
		return "", err
	}
	if out.Token == "" {
		return "", errors.New("octostore: rotate: empty token in response")
	}
	c.SetToken(out.Token)
	return out.Token, nil
}

// RevokeToken revokes the client's current token. Later calls get
// ErrUnauthorized.
func (c *Client) RevokeToken(ctx context.Context) error {
	// Not retried once sent: a replay would get 401 for a revoke that worked.
	return c.call(ctx, "DELETE", "/auth/token", nil, false, nil)
}

// Health returns nil when the server answers 200 on /health; a degraded
// server gives ErrUnavailable. Not retried: it reports the state right now.
func (c *Client) Health(ctx context.Context) error {
	x := c.start("GET", "/health")
	defer c.finish(x)
	return c.sendOnce(ctx, x)
}

// Metrics returns the Prometheus text exposition (admin only).
func (c *Client) Metrics(ctx context.Context) (string, error) {
	x := c.start("GET", "/metrics")
	defer c.finish(x)
	x.req.Header.Set("Accept", "text/plain")
	if err := c.send(ctx, x, true); err != nil {
		return "", err
	}
	return string(x.resp.Body()), nil
}

// sendOnce is send without retries.
func (c *Client) sendOnce(ctx context.Context, x *exchange) error {
	err := c.roundTrip(ctx, x)
	if err != nil {
		return err
	}
	if s := x.resp.StatusCode(); s >= 400 {
		return decodeError(s, x.resp.Body(), string(x.resp.Header.Peek("Retry-After")))
	}
	return nil
}
