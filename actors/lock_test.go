package actors

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func seqLeases() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("lease-%d", n) }
}

func TestLockStateMachine(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	sec := time.Second
	type step struct {
		at      time.Duration // offset from t0
		op      string        // acquire, renew, release, adminrelease, expire
		caller  string
		id      string // the caller's holder id
		lease   string
		ttl     time.Duration
		want    LockOutcome // for acquire
		wantErr error
		token   uint64 // expected token after the step
		holder  string // expected holder after the step ("" free)
		expires time.Duration
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"grant then conflict then re-acquire keeps token", []step{
			{at: 0, op: "acquire", caller: "alice", ttl: 10 * sec, want: LockAcquired, token: 1, holder: "alice", expires: 10 * sec},
			{at: 1 * sec, op: "acquire", caller: "bob", ttl: 10 * sec, wantErr: &LockHeldError{}, token: 1, holder: "alice", expires: 10 * sec},
			{at: 2 * sec, op: "acquire", caller: "alice", ttl: 30 * sec, want: LockHeld, token: 1, holder: "alice", expires: 32 * sec},
			// re-acquire with a shorter ttl never shortens the hold
			{at: 3 * sec, op: "acquire", caller: "alice", ttl: 1 * sec, want: LockHeld, token: 1, holder: "alice", expires: 32 * sec},
		}},
		{"expiry frees and the next grant increments the token", []step{
			{at: 0, op: "acquire", caller: "alice", ttl: 5 * sec, want: LockAcquired, token: 1, holder: "alice", expires: 5 * sec},
			{at: 5*sec - time.Millisecond, op: "acquire", caller: "bob", ttl: 5 * sec, wantErr: &LockHeldError{}, token: 1, holder: "alice", expires: 5 * sec},
			// exactly at expires_at the lock is free
			{at: 5 * sec, op: "acquire", caller: "bob", ttl: 5 * sec, want: LockAcquired, token: 2, holder: "bob", expires: 10 * sec},
		}},
		{"renew sets now+ttl, can shorten; wrong lease or caller is refused", []step{
			{at: 0, op: "acquire", caller: "alice", ttl: 60 * sec, want: LockAcquired, token: 1, holder: "alice", expires: 60 * sec},
			{at: 1 * sec, op: "renew", caller: "alice", lease: "lease-1", ttl: 10 * sec, token: 1, holder: "alice", expires: 11 * sec},
			{at: 2 * sec, op: "renew", caller: "alice", lease: "lease-x", ttl: 10 * sec, wantErr: ErrLockNotOwned, token: 1, holder: "alice", expires: 11 * sec},
			{at: 2 * sec, op: "renew", caller: "bob", lease: "lease-1", ttl: 10 * sec, wantErr: ErrLockNotOwned, token: 1, holder: "alice", expires: 11 * sec},
			{at: 11 * sec, op: "renew", caller: "alice", lease: "lease-1", ttl: 10 * sec, wantErr: ErrLockNotOwned, token: 1, holder: "alice", expires: 11 * sec},
		}},
		{"release frees, keeps the token; stale release refused", []step{
			{at: 0, op: "acquire", caller: "alice", ttl: 60 * sec, want: LockAcquired, token: 1, holder: "alice", expires: 60 * sec},
			{at: 1 * sec, op: "release", caller: "bob", lease: "lease-1", wantErr: ErrLockNotOwned, token: 1, holder: "alice", expires: 60 * sec},
			{at: 1 * sec, op: "release", caller: "alice", lease: "lease-1", token: 1, holder: ""},
			{at: 2 * sec, op: "release", caller: "alice", lease: "lease-1", wantErr: ErrLockNotOwned, token: 1, holder: ""},
			{at: 2 * sec, op: "acquire", caller: "bob", ttl: 60 * sec, want: LockAcquired, token: 2, holder: "bob", expires: 62 * sec},
			// the old lease cannot touch the new hold
			{at: 3 * sec, op: "renew", caller: "alice", lease: "lease-1", ttl: 60 * sec, wantErr: ErrLockNotOwned, token: 2, holder: "bob", expires: 62 * sec},
			{at: 3 * sec, op: "adminrelease", token: 2, holder: ""},
			{at: 3 * sec, op: "adminrelease", wantErr: ErrLockNotOwned, token: 2, holder: ""},
		}},
		{"the holder is the user and the holder id: only the same pair re-acquires", []step{
			{at: 0, op: "acquire", caller: "alice", id: "host-a", ttl: 10 * sec, want: LockAcquired, token: 1, holder: "alice", expires: 10 * sec},
			{at: 1 * sec, op: "acquire", caller: "alice", id: "host-b", ttl: 10 * sec, wantErr: &LockHeldError{}, token: 1, holder: "alice", expires: 10 * sec},
			// no holder id is not a wildcard: it is someone else
			{at: 1 * sec, op: "acquire", caller: "alice", ttl: 10 * sec, wantErr: &LockHeldError{}, token: 1, holder: "alice", expires: 10 * sec},
			{at: 1 * sec, op: "acquire", caller: "bob", id: "host-a", ttl: 10 * sec, wantErr: &LockHeldError{}, token: 1, holder: "alice", expires: 10 * sec},
			{at: 2 * sec, op: "acquire", caller: "alice", id: "host-a", ttl: 30 * sec, want: LockHeld, token: 1, holder: "alice", expires: 32 * sec},
			// renew and release go by lease: the holder id is not asked
			{at: 3 * sec, op: "renew", caller: "alice", lease: "lease-1", ttl: 10 * sec, token: 1, holder: "alice", expires: 13 * sec},
			{at: 4 * sec, op: "release", caller: "alice", lease: "lease-1", token: 1, holder: ""},
			{at: 5 * sec, op: "acquire", caller: "alice", id: "host-b", ttl: 10 * sec, want: LockAcquired, token: 2, holder: "alice", expires: 15 * sec},
		}},
		{"a hold without holder id is someone else's to a request with one", []step{
			{at: 0, op: "acquire", caller: "alice", ttl: 10 * sec, want: LockAcquired, token: 1, holder: "alice", expires: 10 * sec},
			{at: 1 * sec, op: "acquire", caller: "alice", id: "host-a", ttl: 10 * sec, wantErr: &LockHeldError{}, token: 1, holder: "alice", expires: 10 * sec},
			{at: 2 * sec, op: "acquire", caller: "alice", ttl: 10 * sec, want: LockHeld, token: 1, holder: "alice", expires: 12 * sec},
			// after expiry, another holder id gets the next token
			{at: 12 * sec, op: "acquire", caller: "alice", id: "host-a", ttl: 10 * sec, want: LockAcquired, token: 2, holder: "alice", expires: 22 * sec},
		}},
		{"release after expiry is refused", []step{
			{at: 0, op: "acquire", caller: "alice", ttl: 1 * sec, want: LockAcquired, token: 1, holder: "alice", expires: 1 * sec},
			{at: 1 * sec, op: "release", caller: "alice", lease: "lease-1", wantErr: ErrLockNotOwned, token: 1, holder: "alice", expires: 1 * sec},
			{at: 1 * sec, op: "expire", token: 1, holder: ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := LockRecord{Name: "x"}
			leases := seqLeases()
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				var err error
				var out LockOutcome
				switch s.op {
				case "acquire":
					l, out, err = Acquire(l, s.caller, s.id, s.ttl, now, leases)
					if err == nil && out != s.want {
						t.Fatalf("step %d: outcome %v, want %v", i, out, s.want)
					}
				case "renew":
					l, err = Renew(l, s.caller, s.lease, s.ttl, now)
				case "release":
					l, err = Release(l, s.caller, s.lease, false, now)
				case "adminrelease":
					l, err = Release(l, "", "", true, now)
				case "expire":
					var ok bool
					l, ok = Expire(l, now)
					if !ok {
						t.Fatalf("step %d: not expired", i)
					}
				}
				switch {
				case s.wantErr == nil && err != nil:
					t.Fatalf("step %d: unexpected error %v", i, err)
				case s.wantErr != nil && err == nil:
					t.Fatalf("step %d: want error %v, got none", i, s.wantErr)
				case s.wantErr != nil:
					var held *LockHeldError
					if _, isHeld := s.wantErr.(*LockHeldError); isHeld {
						if !errors.As(err, &held) || held.Holder != l.Holder {
							t.Fatalf("step %d: error %v, want LockHeldError by %s", i, err, l.Holder)
						}
					} else if !errors.Is(err, s.wantErr) {
						t.Fatalf("step %d: error %v, want %v", i, err, s.wantErr)
					}
				}
				if l.Token != s.token || l.Holder != s.holder {
					t.Fatalf("step %d: token=%d holder=%q, want %d %q", i, l.Token, l.Holder, s.token, s.holder)
				}
				if s.op == "acquire" && err == nil && l.HolderID != s.id || s.holder == "" && l.Holder == "" && l.HolderID != "" {
					t.Fatalf("step %d: holder id %q after %s with %q", i, l.HolderID, s.op, s.id)
				}
				if s.holder != "" && !l.ExpiresAt.Equal(t0.Add(s.expires)) {
					t.Fatalf("step %d: expires %v, want %v", i, l.ExpiresAt, t0.Add(s.expires))
				}
				if s.holder == "" && (l.LeaseID != "" || !l.ExpiresAt.IsZero()) && s.op != "expire" && l.Holder == "" {
					t.Fatalf("step %d: freed lock keeps lease %q / expiry %v", i, l.LeaseID, l.ExpiresAt)
				}
			}
		})
	}
}

// A fencing token strictly increases across any sequence of grants.
func TestFencingTokenMonotonic(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := LockRecord{Name: "x"}
	leases := seqLeases()
	var last uint64
	callers := []string{"a", "b", "c"}
	for i := 0; i < 300; i++ {
		now := t0.Add(time.Duration(i) * 700 * time.Millisecond)
		caller := callers[i%3]
		var out LockOutcome
		var err error
		switch i % 4 {
		case 0, 1:
			l, out, err = Acquire(l, caller, "", time.Second, now, leases)
			if err == nil && out == LockAcquired {
				if l.Token <= last {
					t.Fatalf("token went from %d to %d", last, l.Token)
				}
				last = l.Token
			}
		case 2:
			l, _ = Release(l, l.Holder, l.LeaseID, false, now)
		case 3:
			l, _ = Expire(l, now)
		}
		if l.Token < last {
			t.Fatalf("token went backwards: %d < %d", l.Token, last)
		}
	}
	if last < 50 {
		t.Fatalf("only %d grants happened; the test did not exercise the machine", last)
	}
}
