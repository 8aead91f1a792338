package actors

import (
	"errors"
	"testing"
	"time"
)

// A fence check is an operation of the lock's actor: a check of the token
// of a grant that is not committed yet waits for that commit, and once a
// newer grant exists no check of the older token answers valid.
func TestFenceIsLinearizableWithGrants(t *testing.T) {
	st := newMemStore(true)
	locks, _, _ := newTestLocks(t, st, time.Minute, 0)
	ctx := t.Context()
	grant := make(chan LockGrant, 1)
	go func() {
		g, _ := locks.Acquire(ctx, "f", "alice", time.Minute)
		grant <- g
	}()
	waitFor(t, func() bool { return st.pending() == 1 })
	checked := make(chan error, 1)
	go func() {
		res, err := locks.Fence(ctx, "f", 1)
		if err == nil && (!res.Valid || res.Holder != "alice") {
			err = errors.New("valid without the holder")
		}
		checked <- err
	}()
	select {
	case err := <-checked:
		t.Fatalf("the check of an uncommitted grant's token answered: %v", err)
	case <-time.After(30 * time.Millisecond): // the absence of an answer has no signal
	}
	st.commit()
	g := <-grant
	if err := <-checked; err != nil {
		t.Fatal(err)
	}
	// A release and bob's grant, committed: token 1 is stale, 2 valid.
	go locks.Release(ctx, "f", "alice", g.Lock.LeaseID)
	waitFor(t, func() bool { return st.pending() == 1 })
	st.commit()
	go locks.Acquire(ctx, "f", "bob", time.Minute)
	waitFor(t, func() bool { return st.pending() == 1 })
	st.commit()
	var stale *StaleTokenError
	if _, err := locks.Fence(ctx, "f", 1); !errors.As(err, &stale) || stale.Current != 2 || AsError(err).Code != CodeConflict {
		t.Fatalf("the old token: %v", err)
	}
	if res, err := locks.Fence(ctx, "f", 2); err != nil || !res.Valid || res.Holder != "bob" {
		t.Fatalf("the new token: %+v %v", res, err)
	}
	if _, err := locks.Fence(ctx, "never", 0); !errors.As(err, &stale) || stale.Current != 0 {
		t.Fatalf("a lock never granted: %v", err)
	}
}
