package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// SessionInfo is a session as the server describes it (POST /sessions,
// GET /sessions). Locks and Owner come with listings only.
type SessionInfo struct {
	SessionID        string    `json:"session_id"`
	TTLSeconds       int       `json:"ttl_seconds"`
	LockDelaySeconds int       `json:"lock_delay_seconds"`
	ExpiresAt        time.Time `json:"expires_at"`
	Locks            []string  `json:"locks,omitempty"`
	Semaphores       []string  `json:"semaphores,omitempty"`
	Owner            string    `json:"owner,omitempty"` // admin listings
}

// CreateSession opens a session that lives ttl (whole seconds, 5s..1h)
// after its creation and each keepalive; lockDelay (0..60s) is the
// lock-delay of its locks when it expires. Not retried once sent. Most
// callers want NewSession, which keeps it alive.
func (c *Client) CreateSession(ctx context.Context, ttl, lockDelay time.Duration) (*SessionInfo, error) {
	s := new(SessionInfo)
	body := map[string]int64{"ttl_seconds": seconds(ttl)}
	if lockDelay > 0 {
		body["lock_delay_seconds"] = seconds(lockDelay)
	}
	if err := c.call(ctx, "POST", "/sessions", body, false, s); err != nil {
		return nil, err
	}
	return s, nil
}

// KeepAliveSession sets the session's expiry to now + its TTL (and its
// locks'). ErrNotFound when it has expired or been closed (or is not the
// caller's). Retried like idempotent calls: a keepalive applied twice is
// one keepalive.
func (c *Client) KeepAliveSession(ctx context.Context, id string) (*SessionInfo, error) {
	if err := checkName("session id", id); err != nil {
		return nil, err
	}
	s := new(SessionInfo)
	if err := c.call(ctx, "POST", "/sessions/"+seg(id)+"/keepalive", nil, true, s); err != nil {
		return nil, err
	}
	return s, nil
}

// CloseSession ends the session: every lock of it is released at once. It
// returns how many it released; ErrNotFound when the session has expired
// or been closed. Not retried once sent (a second close is a 404).
func (c *Client) CloseSession(ctx context.Context, id string) (int, error) {
	if err := checkName("session id", id); err != nil {
		return 0, err
	}
	var out struct {
		Released int `json:"released"`
	}
	if err := c.call(ctx, "DELETE", "/sessions/"+seg(id), nil, false, &out); err != nil {
		return 0, err
	}
	return out.Released, nil
}

// ListSessions lists the caller's live sessions with the locks each holds
// (every user's for an admin), by id, following the pages.
func (c *Client) ListSessions(ctx context.Context) ([]SessionInfo, error) {
	return listAll[SessionInfo](ctx, c, "/sessions", "sessions")
}

// ListSessionsPage reads one page of the caller's live sessions (every
// user's for an admin), by id.
func (c *Client) ListSessionsPage(ctx context.Context, o ListOptions) (*Page[SessionInfo], error) {
	return listPage[SessionInfo](ctx, c, "/sessions", "sessions", o)
}

// ErrSessionLost: a Session expired on the server or could not be kept
// alive until its TTL ran out (Session.Err wraps it, with the cause).
var ErrSessionLost = errors.New("octostore: session lost")

// Session is a server session kept alive in the background, in the style
// of etcd's concurrency.Session: NewSession creates it and sends a
// keepalive every TTL/3; Lockers made with NewLocker hold their locks under
// it, without renewing each. Done is closed when the session ends: lost
// (expired on the server, or unreachable until its TTL ran out: Err wraps
// ErrSessionLost), closed (Close), or orphaned (Orphan). A Session is safe
// for concurrent use.
type Session struct {
	c       *Client
	id      string
	ttl     time.Duration
	clk     clock
	pollMin time.Duration

	cancel  context.CancelFunc
	stopped chan struct{} // the keepalive goroutine returned
	done    chan struct{}

	mu       sync.Mutex // guards err, closed and expires
	err      error
	closed   bool
	expires  time.Time // the server's expiry after the last keepalive
	closeErr error
}

// SessionOption configures NewSession.
type SessionOption func(*sessionOptions)

type sessionOptions struct {
	ttl, lockDelay time.Duration
	clk            clock
}

// WithSessionTTL sets the session's TTL (default 60s; 5s..1h, whole
// seconds): how long it lives without a keepalive.
func WithSessionTTL(d time.Duration) SessionOption { return func(o *sessionOptions) { o.ttl = d } }

// WithLockDelay sets the lock-delay of the session's locks (0..60s): when
// the session expires, nobody is granted them before its expiry plus d.
func WithLockDelay(d time.Duration) SessionOption {
	return func(o *sessionOptions) { o.lockDelay = d }
}

// DefaultSessionTTL is NewSession's TTL without WithSessionTTL.
const DefaultSessionTTL = 60 * time.Second

// NewSession creates a session and starts keeping it alive (every TTL/3,
// retrying a failed keepalive until the TTL, measured on the local clock
// from the last success, has run out).
func NewSession(ctx context.Context, c *Client, opts ...SessionOption) (*Session, error) {
	o := sessionOptions{ttl: DefaultSessionTTL, clk: realClock{}}
	for _, f := range opts {
		f(&o)
	}
	sent := o.clk.Now()
	info, err := c.CreateSession(ctx, o.ttl, o.lockDelay)
	if err != nil {
		return nil, err
	}
	s := &Session{c: c, id: info.SessionID, ttl: time.Duration(info.TTLSeconds) * time.Second, clk: o.clk,
		pollMin: 100 * time.Millisecond, stopped: make(chan struct{}), done: make(chan struct{}), expires: info.ExpiresAt}
	var kctx context.Context
	kctx, s.cancel = context.WithCancel(context.Background())
	go s.keepAlive(kctx, sent.Add(s.ttl))
	return s, nil
}

// ID is the session id.
func (s *Session) ID() string { return s.id }

// TTL is the session's TTL.
func (s *Session) TTL() time.Duration { return s.ttl }

// ExpiresAt is the server's expiry of the session after its last
// keepalive.
func (s *Session) ExpiresAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expires
}

// Done is closed when the session ends (lost, closed or orphaned).
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended: nil while it lives and after Close or
// Orphan, an error wrapping ErrSessionLost when it was lost.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// keepAlive sends keepalives until ctx ends or the session is lost.
// expiry is the local deadline: the send time of the last successful
// keepalive plus the TTL.
func (s *Session) keepAlive(ctx context.Context, expiry time.Time) {
	defer close(s.stopped)
	interval := max(s.ttl/3, time.Millisecond)
	wait := interval
	for attempt := 0; ; {
		select {
		case <-ctx.Done():
			return
		case <-s.clk.After(wait):
		}
		now := s.clk.Now()
		if !now.Before(expiry) {
			s.end(fmt.Errorf("%w: no keepalive succeeded before %s", ErrSessionLost, expiry.Format(time.RFC3339Nano)))
			return
		}
		kctx, cancel := context.WithTimeout(ctx, expiry.Sub(now))
		info, err := s.c.KeepAliveSession(kctx, s.id)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			expiry, attempt, wait = now.Add(s.ttl), 0, interval
			s.mu.Lock()
			s.expires = info.ExpiresAt
			s.mu.Unlock()
			continue
		}
		if !transient(err) && !errors.Is(err, context.DeadlineExceeded) {
			s.end(fmt.Errorf("%w: %w", ErrSessionLost, err)) // expired or closed on the server
			return
		}
		wait = min(jitter(s.pollMin, interval, attempt), max(expiry.Sub(s.clk.Now()), 0))
		attempt++
	}
}

// end marks the session ended with err (nil: closed or orphaned) and closes
// Done, once.
func (s *Session) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed, s.err = true, err
	close(s.done)
}

// Close stops the keepalives and closes the session on the server: every
// lock held under it is released at once. It returns the server's error
// (ErrNotFound when the session had already expired); Done is closed when
// it returns.
func (s *Session) Close(ctx context.Context) error {
	s.cancel()
	<-s.stopped
	_, err := s.c.CloseSession(ctx, s.id)
	s.end(nil)
	return err
}

// Orphan stops the keepalives without closing the session: it expires on
// the server after its TTL (its locks with it). Done is closed.
func (s *Session) Orphan() {
	s.cancel()
	<-s.stopped
	s.end(nil)
}

// NewLocker returns a Locker for the named lock held under the session: it
// is held while the session lives (no renewal of its own), and its Done is
// closed when the session ends or Unlock releases it.
func (s *Session) NewLocker(name string, opts ...LockerOption) *Locker {
	l := NewLocker(s.c, name, s.ttl, opts...)
	l.session = s
	return l
}
