package actors

import (
	"fmt"
	"sync"
)

// OwnerCounter counts the live resources of a kind per owner: the quota
// counters start from it at recovery, so they are right across restarts.
// Package persistence implements it.
type OwnerCounter interface {
	// CountOwned calls fn with the number of live resources of kind k per
	// owner (KindLimit, KindFlag or KindConfig).
	CountOwned(k Kind, fn func(owner string, n int)) error
}

// quota counts live resources of one kind per owner. A creation reserves a
// slot (on the actor's goroutine) before its write is queued, and the write's
// commit callback gives it back if the write fails; a deletion frees the slot
// when its write is queued, and the callback takes it again if the write
// fails. So the count never waits for an actor to reload, and it is right
// whatever the outcome of each write.
type quota struct {
	max int
	err error
	// mu guards n: the kind's actors (reserve, release) and the writer's
	// commit callbacks (created, deleted) of every owner touch it.
	mu sync.Mutex
	n  map[string]int
}

func newQuota(max int, what string) *quota {
	return &quota{max: max, n: map[string]int{},
		err: ErrQuota.Withf("at most %d %s per user", max, what)}
}

// recover starts the counters from the database (KindSpec.Recover).
func (q *quota) recover(k Kind, c OwnerCounter) (int, error) {
	total := 0
	err := c.CountOwned(k, func(owner string, n int) {
		q.mu.Lock()
		q.n[owner] += n
		q.mu.Unlock()
		total += n
	})
	if err != nil {
		return 0, fmt.Errorf("count %ss: %w", k, err)
	}
	return total, nil
}

// owned is how many live resources owner has.
func (q *quota) owned(owner string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n[owner]
}

// reserve counts one more resource for owner unless the cap is reached.
func (q *quota) reserve(owner string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.max > 0 && q.n[owner] >= q.max {
		return false
	}
	q.n[owner]++
	return true
}

func (q *quota) add(owner string) {
	q.mu.Lock()
	q.n[owner]++
	q.mu.Unlock()
}

func (q *quota) release(owner string) {
	q.mu.Lock()
	if q.n[owner] <= 1 {
		delete(q.n, owner)
	} else {
		q.n[owner]--
	}
	q.mu.Unlock()
}

// created is the commit callback part of a creation: a failed write gives
// the reserved slot back.
func (q *quota) created(owner string, err error) {
	if err != nil {
		q.release(owner)
	}
}

// deleted is the commit callback part of a deletion: a failed write takes
// the freed slot again.
func (q *quota) deleted(owner string, err error) {
	if err != nil {
		q.add(owner)
	}
}
