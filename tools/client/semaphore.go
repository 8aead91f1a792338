package client

import (
	"context"
	"encoding/json"
	"time"
)

// SemaphoreSlot is one held slot as GET /semaphores/{name} shows it: the
// lease, holder and session ids only of the caller's own slots.
type SemaphoreSlot struct {
	Holder       string    `json:"holder"`
	HolderID     string    `json:"holder_id,omitempty"`
	LeaseID      string    `json:"lease_id,omitempty"`
	SessionID    string    `json:"session_id,omitempty"`
	Metadata     string    `json:"metadata,omitempty"`
	FencingToken uint64    `json:"fencing_token"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// SemaphoreState is the answer of SemaphoreStatus.
type SemaphoreState struct {
	Name      string          `json:"name"`
	Limit     int             `json:"limit"` // the holders' (0: never taken)
	Holders   []SemaphoreSlot `json:"holders"`
	Available int             `json:"available"`
	Waiters   int             `json:"waiters"`
}

// AcquireSemaphore takes a slot of the semaphore name whose limit is limit
// (1..10000: the one its holders use, ErrValidation otherwise) for ttl
// (or, with o.SessionID, while the session lives). The Lease has the slot's
// lease and fencing token, and the semaphore's Limit and Holders. Every
// acquire takes a new slot unless it repeats an o.HolderID the caller holds
// (Status "held": the same slot). A full semaphore gives a
// *SemaphoreFullError (errors.Is ErrSemaphoreFull), after o.Wait if set
// (over net/http, as AcquireWith). Never retried once sent.
func (c *Client) AcquireSemaphore(ctx context.Context, name string, limit int, ttl time.Duration, o AcquireOptions) (*Lease, error) {
	if err := checkName("semaphore name", name); err != nil {
		return nil, err
	}
	o.LockDelay = 0 // semaphores have none
	body := appendSemaphoreBody(nil, limit, ttl, o)
	l := new(Lease)
	path := "/semaphores/" + seg(name) + "/acquire"
	if o.Wait > 0 {
		if err := c.longCall(ctx, "POST", path, body, l); err != nil {
			return nil, err
		}
		return l, nil
	}
	if err := c.call(ctx, "POST", path, json.RawMessage(body), false, l); err != nil {
		return nil, err
	}
	return l, nil
}

// RenewSemaphore sets the expiry of the slot leaseID to now+ttl.
// ErrNotFound when it is not the caller's held slot.
func (c *Client) RenewSemaphore(ctx context.Context, name, leaseID string, ttl time.Duration) (*Lease, error) {
	if err := checkName("semaphore name", name); err != nil {
		return nil, err
	}
	l := new(Lease)
	if err := c.call(ctx, "POST", "/semaphores/"+seg(name)+"/renew", json.RawMessage(appendRenewBody(nil, leaseID, ttl)), false, l); err != nil {
		return nil, err
	}
	return l, nil
}

// ReleaseSemaphore frees the slot leaseID. ErrNotFound when it is not the
// caller's held slot (the admin key: anybody's).
func (c *Client) ReleaseSemaphore(ctx context.Context, name, leaseID string) error {
	if err := checkName("semaphore name", name); err != nil {
		return err
	}
	return c.call(ctx, "POST", "/semaphores/"+seg(name)+"/release", json.RawMessage(appendReleaseBody(nil, leaseID)), false, nil)
}

// SemaphoreStatus reads the semaphore's held slots.
func (c *Client) SemaphoreStatus(ctx context.Context, name string) (*SemaphoreState, error) {
	if err := checkName("semaphore name", name); err != nil {
		return nil, err
	}
	return getJSON[SemaphoreState](ctx, c, "/semaphores/"+seg(name))
}

// HeldSemaphore is one entry of ListSemaphores: a slot the caller holds
// (for the admin key, anybody's: Holder says whose).
type HeldSemaphore struct {
	Name string `json:"name"` // the semaphore's
	// Limit is the semaphore's limit as of the slot's grant or last
	// renewal (the same for every slot held at once).
	Limit        int       `json:"limit"`
	Holder       string    `json:"holder"`
	HolderID     string    `json:"holder_id,omitempty"`
	LeaseID      string    `json:"lease_id"`
	SessionID    string    `json:"session_id,omitempty"`
	Metadata     string    `json:"metadata,omitempty"`
	FencingToken uint64    `json:"fencing_token"`
	ExpiresAt    time.Time `json:"expires_at"` // a session slot's: its session's
}

// ListSemaphores lists the semaphore slots the caller holds (every user's
// for the admin key), by semaphore name, then lease id, following the pages
// (paging.go). The slots come from the server's slot index: for a
// semaphore's waiters and free slots, read SemaphoreStatus.
func (c *Client) ListSemaphores(ctx context.Context) ([]HeldSemaphore, error) {
	return listAll[HeldSemaphore](ctx, c, "/semaphores", "semaphores")
}

// ListSemaphoresPage reads one page of ListSemaphores. A bad o.Limit is
// ErrValidation (from the server).
func (c *Client) ListSemaphoresPage(ctx context.Context, o ListOptions) (*Page[HeldSemaphore], error) {
	return listPage[HeldSemaphore](ctx, c, "/semaphores", "semaphores", o)
}

// Semaphore holds one slot of a named semaphore for a process, as a Locker
// holds a lock (a Locker underneath): TryAcquire or Acquire(ctx) to take a
// slot (Acquire waits in the semaphore's FIFO queue), renewal every TTL/3,
// Done when the slot is lost, Release. Each Semaphore is a holder of its
// own (a random holder id, or WithHolderID), so a retried acquire gets its
// own slot back instead of a second one. Like `consul lock -n N`.
type Semaphore struct{ l *Locker }

// NewSemaphore returns a Semaphore for one slot of name (limit 1..10000, the
// one every user of the semaphore gives), held for ttl and renewed. The
// LockerOptions apply (WithHolderID, WithPollInterval).
func NewSemaphore(c *Client, name string, limit int, ttl time.Duration, opts ...LockerOption) *Semaphore {
	l := NewLocker(c, name, ttl, opts...)
	l.sem = limit
	return &Semaphore{l: l}
}

// NewSemaphore returns a Semaphore whose slot is held under the session
// (no renewal of its own; lost when the session ends).
func (s *Session) NewSemaphore(name string, limit int, opts ...LockerOption) *Semaphore {
	l := s.NewLocker(name, opts...)
	l.sem = limit
	return &Semaphore{l: l}
}

// TryAcquire makes one attempt: a *SemaphoreFullError when every slot is
// held. Holding a slot already is not an error.
func (s *Semaphore) TryAcquire(ctx context.Context) error { return s.l.TryLock(ctx) }

// Acquire waits in the semaphore's queue until a slot is granted or ctx
// ends (as Locker.Lock).
func (s *Semaphore) Acquire(ctx context.Context) error { return s.l.Lock(ctx) }

// Release stops the renewal and frees the slot (as Locker.Unlock).
func (s *Semaphore) Release(ctx context.Context) error { return s.l.Unlock(ctx) }

// Done is closed when the slot is lost or released (as Locker.Done).
func (s *Semaphore) Done() <-chan struct{} { return s.l.Done() }

// Err is why the slot was lost (as Locker.Err).
func (s *Semaphore) Err() error { return s.l.Err() }

// Lease is the held slot (zero when none): its lease, fencing token,
// expiry, and the semaphore's Limit and Holders when granted.
func (s *Semaphore) Lease() Lease { return s.l.Lease() }

// TTL is the slot's time-to-live (as Locker.TTL).
func (s *Semaphore) TTL() time.Duration { return s.l.TTL() }

// Health is the state of the held slot's lease (as Locker.Health).
func (s *Semaphore) Health() LeaseHealth { return s.l.Health() }

// Updates receives after every renewal attempt and when the slot is lost
// or released (as Locker.Updates).
func (s *Semaphore) Updates() <-chan struct{} { return s.l.Updates() }

// Held reports whether the slot is held.
func (s *Semaphore) Held() bool { return s.l.Held() }

// Name is the semaphore's name.
func (s *Semaphore) Name() string { return s.l.Name() }
