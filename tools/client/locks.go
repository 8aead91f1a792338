package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Lease is a held lock as returned by Acquire and Renew.
type Lease struct {
	Status       string    `json:"status"` // "acquired" (new grant) or "held" (already held by the caller)
	Name         string    `json:"name"`
	LeaseID      string    `json:"lease_id"`
	FencingToken uint64    `json:"fencing_token"`
	ExpiresAt    time.Time `json:"expires_at"`
	Holder       string    `json:"holder"`
	// HolderID is the holder id the grant was made to ("" when it was made
	// without one, or by a server that predates holder ids).
	HolderID string `json:"holder_id,omitempty"`
	// SessionID is the session the lock is held under ("" for a TTL).
	SessionID string `json:"session_id,omitempty"`
	// Metadata is the hold's metadata ("" none).
	Metadata string `json:"metadata,omitempty"`
	// Limit and Holders are a semaphore's (AcquireSemaphore, RenewSemaphore):
	// its limit and the slots held after this one; 0 for a lock.
	Limit   int `json:"limit,omitempty"`
	Holders int `json:"holders,omitempty"`
}

// LockState is the answer of LockStatus: a held lock (Status "held" or
// "acquired"), Status "available", or Status "delayed" (free, in lock-delay
// until AvailableAt: Holder's hold expired at ExpiresAt). LeaseID is only
// shown to the holder.
type LockState struct {
	Status       string    `json:"status"`
	Name         string    `json:"name"`
	LeaseID      string    `json:"lease_id,omitempty"`
	FencingToken uint64    `json:"fencing_token,omitempty"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
	Holder       string    `json:"holder,omitempty"`
	HolderID     string    `json:"holder_id,omitempty"`  // like LeaseID, only shown to the holder
	SessionID    string    `json:"session_id,omitempty"` // like LeaseID, only shown to the holder
	Metadata     string    `json:"metadata,omitempty"`   // the hold's, shown to everybody
	// Waiters is the number of waiting acquires queued behind the holder.
	Waiters     int       `json:"waiters,omitempty"`
	AvailableAt time.Time `json:"available_at,omitzero"`
	Message     string    `json:"message,omitempty"`
}

// Available reports whether nobody holds the lock.
func (s *LockState) Available() bool { return s.Status == "available" }

// LockInfo is one entry of ListLocks. Owner is set for admin listings.
type LockInfo struct {
	Name         string    `json:"name"`
	LeaseID      string    `json:"lease_id,omitempty"`
	FencingToken uint64    `json:"fencing_token"`
	ExpiresAt    time.Time `json:"expires_at"`
	Holder       string    `json:"holder,omitempty"`
	HolderID     string    `json:"holder_id,omitempty"`
	SessionID    string    `json:"session_id,omitempty"`
	Metadata     string    `json:"metadata,omitempty"`
	Owner        string    `json:"owner,omitempty"`
}

// Acquire takes the lock for ttl (whole seconds, rounded up, 1s..1h) without
// a holder id: every request of the same token is then the same holder. If
// another holder has it, the error is a *LockHeldError (errors.Is
// ErrLockHeld). If the caller already holds it, the existing lease comes
// back with Status "held". Never retried once the request may have reached
// the server. Several processes sharing one token should use AcquireAs (or
// a Locker, which does).
func (c *Client) Acquire(ctx context.Context, name string, ttl time.Duration) (*Lease, error) {
	return c.AcquireAs(ctx, name, "", ttl)
}

// AcquireAs is Acquire as the holder holderID of the caller's user ("" for
// none): the server answers "held" only to the same holder id of the same
// user, and a *LockHeldError to every other, the same user's other holder
// ids included. holderID must match ^[A-Za-z0-9._:@/+=-]{1,128}$
// (ErrValidation otherwise, from the server). See NewHolderID.
func (c *Client) AcquireAs(ctx context.Context, name, holderID string, ttl time.Duration) (*Lease, error) {
	return c.AcquireWith(ctx, name, ttl, AcquireOptions{HolderID: holderID})
}

// AcquireOptions are the optional parts of an acquire (AcquireWith).
type AcquireOptions struct {
	// HolderID names the holder within the caller's user ("" none): see
	// AcquireAs.
	HolderID string
	// Wait, when positive, waits up to Wait (whole seconds, rounded up, at
	// most MaxWait) in the lock's FIFO queue while someone else holds it:
	// the answer comes the moment the lock is granted, or a *LockHeldError
	// when Wait runs out. The request then goes over net/http (the event
	// streams' client), so that ctx ending closes its connection: the
	// server takes the waiter out of the queue, and gives back a grant that
	// raced the close.
	Wait time.Duration
	// SessionID holds the lock under a session (CreateSession, Session)
	// instead of for the ttl, which is then not sent: it is held while the
	// session lives, and renewing it is refused (ErrValidation).
	SessionID string
	// LockDelay (0..60 s, whole seconds) is the grant's lock-delay: when
	// the hold is lost by expiry, nobody is granted the lock before its
	// expiry plus LockDelay (an acquire meanwhile gets a *LockHeldError with
	// AvailableAt). Not with SessionID (the session's applies).
	LockDelay time.Duration
	// Metadata, when set, is the hold's metadata: at most 1,024 bytes of
	// one line (no control or bidirectional formatting characters), shown
	// to every user (never a secret). On a "held" re-acquire it replaces
	// the hold's; nil keeps it.
	Metadata *string
}

// MaxWait is the longest wait the server accepts for one waiting acquire
// (wait_seconds 300); Locker.Lock queues again after it.
const MaxWait = 300 * time.Second

// AcquireWith is AcquireAs with every option of an acquire. Never retried
// once the request may have reached the server.
func (c *Client) AcquireWith(ctx context.Context, name string, ttl time.Duration, o AcquireOptions) (*Lease, error) {
	if err := checkName("lock name", name); err != nil {
		return nil, err
	}
	if o.Wait > 0 {
		l := new(Lease)
		if err := c.longCall(ctx, "POST", "/locks/"+seg(name)+"/acquire", appendAcquireBody(nil, ttl, o), l); err != nil {
			return nil, err
		}
		return l, nil
	}
	x := c.start("POST", "/locks/", seg(name), "/acquire")
	defer c.finish(x)
	var buf [192]byte
	x.setJSON(appendAcquireBody(buf[:0], ttl, o))
	return c.leaseCall(ctx, x)
}

// longCall sends one request that may wait long for its answer (a waiting
// acquire) over net/http, which closes the connection when ctx ends: the
// server notices and stops waiting. Not retried; the answer is decoded into
// out, an error status into its typed error.
func (c *Client) longCall(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("octostore: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if p := c.auth.Load(); p != nil {
		req.Header.Set("Authorization", *p)
	}
	if c.adminKey != "" {
		req.Header.Set("X-Admin-Key", c.adminKey)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	resp, err := c.sse.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &TransportError{Op: method + " " + path, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &TransportError{Op: method + " " + path, Err: err}
	}
	if resp.StatusCode >= 400 {
		return decodeError(resp.StatusCode, b, resp.Header.Get("Retry-After"))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("octostore: decode %s %s response (status %d): %w", method, path, resp.StatusCode, err)
	}
	return nil
}

// NewHolderID returns a random holder id (32 hex digits from crypto/rand),
// the default of a Locker and of the CLI.
func NewHolderID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// Renew extends the lease to now+ttl. A lease that is gone (expired, released,
// taken over) gives ErrNotFound.
func (c *Client) Renew(ctx context.Context, name, leaseID string, ttl time.Duration) (*Lease, error) {
	if err := checkName("lock name", name); err != nil {
		return nil, err
	}
	x := c.start("POST", "/locks/", seg(name), "/renew")
	defer c.finish(x)
	var buf [128]byte
	x.setJSON(appendRenewBody(buf[:0], leaseID, ttl))
	return c.leaseCall(ctx, x)
}

func (c *Client) leaseCall(ctx context.Context, x *exchange) (*Lease, error) {
	if err := c.send(ctx, x, false); err != nil {
		return nil, err
	}
	l := new(Lease)
	if err := decode(x, l); err != nil {
		return nil, err
	}
	return l, nil
}

// Release frees the lock. A lease that is no longer valid gives ErrNotFound.
// An empty leaseID sends no body: the admin key releases whatever lease is
// current that way; a user token gets a *ValidationError (lease_id is
// required).
func (c *Client) Release(ctx context.Context, name, leaseID string) error {
	if err := checkName("lock name", name); err != nil {
		return err
	}
	x := c.start("POST", "/locks/", seg(name), "/release")
	defer c.finish(x)
	if leaseID != "" {
		var buf [96]byte
		x.setJSON(appendReleaseBody(buf[:0], leaseID))
	}
	return c.send(ctx, x, false)
}

// LockStatus reports who holds the lock, if anyone.
func (c *Client) LockStatus(ctx context.Context, name string) (*LockState, error) {
	if err := checkName("lock name", name); err != nil {
		return nil, err
	}
	return getJSON[LockState](ctx, c, "/locks/"+seg(name))
}

// ListLocks lists the caller's active locks by name (every user's for an
// admin), following the pages (paging.go).
func (c *Client) ListLocks(ctx context.Context) ([]LockInfo, error) {
	return listAll[LockInfo](ctx, c, "/locks", "locks")
}

// ListLocksPage reads one page of the caller's active locks (every user's
// for an admin), by name.
func (c *Client) ListLocksPage(ctx context.Context, o ListOptions) (*Page[LockInfo], error) {
	return listPage[LockInfo](ctx, c, "/locks", "locks", o)
}

// getJSON GETs path (retried) and decodes the JSON answer into out.
func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	return c.call(ctx, "GET", path, nil, true, out)
}

// getJSON GETs path (retried) and decodes the answer into a new T.
func getJSON[T any](ctx context.Context, c *Client, path string) (*T, error) {
	v := new(T)
	if err := c.getJSON(ctx, path, v); err != nil {
		return nil, err
	}
	return v, nil
}

// deleteNamed checks name (what names it in the error) and sends DELETE
// prefix+name (idempotent: retried).
func (c *Client) deleteNamed(ctx context.Context, what, prefix, name string) error {
	if err := checkName(what, name); err != nil {
		return err
	}
	return c.call(ctx, "DELETE", c.owned(prefix+seg(name)), nil, true, nil)
}

// call is the general, reflection-based path for the less hot endpoints.
func (c *Client) call(ctx context.Context, method, path string, body any, idempotent bool, out any) error {
	x := c.start(method, path)
	defer c.finish(x)
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("octostore: encode request: %w", err)
		}
		x.setJSON(b)
	}
	if err := c.send(ctx, x, idempotent); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return decode(x, out)
}

func decode(x *exchange, out any) error {
	if err := json.Unmarshal(x.resp.Body(), out); err != nil {
		return fmt.Errorf("octostore: decode %s %s response (status %d): %w",
			x.req.Header.Method(), x.req.URI().Path(), x.resp.StatusCode(), err)
	}
	return nil
}
