package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Event is one server-sent event from /events, /locks/{name}/watch or
// /config/{key}/watch. Fields that do not apply to the event type are zero.
type Event struct {
	// ID is the stream's last event id at this event (the SSE id line; as
	// SSE says, a frame without one, lagged or revoked, keeps the previous
	// one): give it back as EventFilter.LastEventID to resume after it.
	ID string `json:"-"`
	// Seq numbers the events the caller may see (every lock and semaphore
	// event and the caller's own session, flag, config and limit events; the
	// admin key: every event), consecutive on an unfiltered stream: other
	// users' activity leaves no gaps.
	Seq          uint64    `json:"seq"`
	Type         string    `json:"type"` // lock.acquired, lock.renewed, lock.released, lock.expired, lock.state, semaphore.acquired, semaphore.renewed, semaphore.released, semaphore.expired, session.created, session.closed, session.expired, flag.set, flag.deleted, config.state, config.written, config.deleted, limit.denied, limit.reset, lagged, revoked, reset
	Kind         string    `json:"kind"` // lock, semaphore, session, flag, config, limit (a session event's Name is the session id)
	Name         string    `json:"name"`
	Owner        string    `json:"owner,omitempty"`
	Holder       string    `json:"holder,omitempty"`
	HolderID     string    `json:"holder_id,omitempty"` // the grant's holder id; only to the holder or an admin
	FencingToken uint64    `json:"fencing_token,omitempty"`
	LeaseID      string    `json:"lease_id,omitempty"` // only to the holder or an admin
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
	AvailableAt  time.Time `json:"available_at,omitzero"` // lock.expired with a lock-delay: not granted before
	SessionID    string    `json:"session_id,omitempty"`  // a lock held under a session; only to the holder or an admin
	Metadata     string    `json:"metadata,omitempty"`    // lock and semaphore events: the hold's metadata
	Limit        int       `json:"limit,omitempty"`       // semaphore events: the semaphore's limit
	Version      int64     `json:"version,omitempty"`
	// Value and Description are a config version's, in a config watch's
	// config.state (of a key that exists) and config.written: compact JSON.
	Value       json.RawMessage `json:"value,omitempty"`
	Description string          `json:"description,omitempty"`
	// Exists is set in config.state only.
	Exists *bool     `json:"exists,omitempty"`
	Time   time.Time `json:"time,omitzero"`
	// Data is the raw JSON payload.
	Data json.RawMessage `json:"-"`
}

// Event types the Locker and callers commonly test for.
const (
	EventLockAcquired  = "lock.acquired"
	EventLockRenewed   = "lock.renewed"
	EventLockReleased  = "lock.released"
	EventLockExpired   = "lock.expired"
	EventLockState     = "lock.state"
	EventConfigState   = "config.state"
	EventConfigWritten = "config.written"
	EventConfigDeleted = "config.deleted"
	EventLagged        = "lagged"
	// EventRevoked is the last event of a stream whose token was revoked
	// or rotated; the stream then ends with ErrRevoked.
	EventRevoked = "revoked"
	// EventReset is the first event of a stream that could not resume after
	// EventFilter.LastEventID: events may have been missed, so resynchronise
	// from a listing. The stream goes on from the present.
	EventReset = "reset"
)

// EventFilter selects events on /events. Zero fields select everything.
type EventFilter struct {
	Kind   string // lock, flag, config, limit
	Prefix string // name prefix
	// LastEventID resumes a stream: the ID of the last event received
	// (sent as Last-Event-ID). The new stream starts with the events after
	// it that the filter selects, numbered as before, or with a reset event
	// when the server no longer has them all.
	LastEventID string
}

// EventStream is an open event subscription. Read events from C until it is
// closed, then Err tells why. Close ends the stream early.
type EventStream struct {
	C <-chan Event

	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex // guards err
	err    error
}

// Err returns why the stream ended: nil after Close or context cancellation,
// ErrLagged when the server dropped a slow subscriber, ErrRevoked when the
// token was revoked or rotated, io.ErrUnexpectedEOF when the connection
// ended, or a read error. Valid once C is closed.
func (s *EventStream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the stream and waits for its reader to stop. It returns nil.
func (s *EventStream) Close() error {
	s.cancel()
	<-s.done
	return nil
}

// Events subscribes to /events. It returns once the server has accepted the
// subscription (so no event after that point is missed), or with the typed
// error of the refusal.
func (c *Client) Events(ctx context.Context, f EventFilter) (*EventStream, error) {
	q := url.Values{}
	if f.Kind != "" {
		q.Set("kind", f.Kind)
	}
	if f.Prefix != "" {
		q.Set("prefix", f.Prefix)
	}
	path := "/events"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return c.openStream(ctx, path, f.LastEventID)
}

// WatchLock subscribes to one lock's events. The first event is lock.state
// with the current holder (empty Holder: available).
func (c *Client) WatchLock(ctx context.Context, name string) (*EventStream, error) {
	if err := checkName("lock name", name); err != nil {
		return nil, err
	}
	return c.openStream(ctx, "/locks/"+seg(name)+"/watch", "")
}

// WatchConfig subscribes to one config key of the caller's (WithOwner:
// that user's). The first event is config.state: Exists, and for a key
// that exists its Version, Value and Description; then every
// config.written (with Value) and config.deleted, in version order, with
// nothing the state already showed. It returns once the server has
// accepted the subscription.
func (c *Client) WatchConfig(ctx context.Context, key string) (*EventStream, error) {
	if err := checkName("config key", key); err != nil {
		return nil, err
	}
	return c.openStream(ctx, "/config/"+seg(key)+"/watch"+c.ownerSuffix(false), "")
}

func (c *Client) openStream(parent context.Context, path, lastEventID string) (*EventStream, error) {
	ctx, cancel := context.WithCancel(parent)
	req, err := http.NewRequestWithContext(ctx, "GET", c.baseURL+path, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
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
		cancel()
		if parent.Err() != nil { // the caller's context, not the one cancelled just above
			return nil, parent.Err()
		}
		return nil, &TransportError{Op: "GET " + path, Err: err}
	}
	if resp.StatusCode >= 400 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		cancel()
		return nil, decodeError(resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	ch := make(chan Event, 64)
	s := &EventStream{C: ch, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(ch)
		defer resp.Body.Close()
		err := readEvents(resp.Body, func(ev Event) bool {
			select {
			case ch <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		})
		if ctx.Err() != nil {
			err = nil // closed by the caller
		}
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
	}()
	return s, nil
}

// maxEventSize bounds one SSE line (events are one-line JSON).
const maxEventSize = 1 << 20

// readEvents parses a text/event-stream body and calls emit for each event
// until emit returns false, the body ends, or an event of type "lagged" or
// "revoked" (after which it returns ErrLagged or ErrRevoked). Comments (heartbeats ": ping") are
// skipped; several data lines are joined with "\n" as the SSE spec says.
func readEvents(r io.Reader, emit func(Event) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxEventSize)
	sc.Split(scanLines)
	var (
		id, typ string
		data    []byte
		hasData bool
	)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 { // dispatch
			if !hasData {
				typ = ""
				continue
			}
			ev, err := parseEvent(id, typ, data)
			data, hasData, typ = data[:0], false, ""
			if err != nil {
				return err
			}
			if !emit(ev) {
				return nil
			}
			switch ev.Type {
			case EventLagged:
				return ErrLagged
			case EventRevoked:
				return ErrRevoked
			}
			continue
		}
		if line[0] == ':' {
			continue // comment / heartbeat
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		case "event":
			typ = string(value)
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				id = string(value)
			}
		}
		// "retry" and unknown fields are ignored.
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("octostore: read event stream: %w", err)
	}
	return io.ErrUnexpectedEOF
}

func parseEvent(id, typ string, data []byte) (Event, error) {
	ev := Event{ID: id, Data: json.RawMessage(bytes.Clone(data))}
	if len(bytes.TrimSpace(data)) > 0 && data[0] == '{' {
		if err := json.Unmarshal(data, &ev); err != nil {
			return Event{}, fmt.Errorf("octostore: bad event data %q: %w", truncate(data, 120), err)
		}
	}
	if ev.Type == "" {
		ev.Type = typ
	}
	if ev.Type == "" {
		ev.Type = "message"
	}
	return ev, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// scanLines splits on \n, \r\n or a lone \r (all three end a line in SSE).
func scanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	for i, c := range data {
		switch c {
		case '\n':
			return i + 1, data[:i], nil
		case '\r':
			if i+1 < len(data) {
				if data[i+1] == '\n' {
					return i + 2, data[:i], nil
				}
				return i + 1, data[:i], nil
			}
			if atEOF {
				return i + 1, data[:i], nil
			}
			return 0, nil, nil // need one more byte to know if \n follows
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
