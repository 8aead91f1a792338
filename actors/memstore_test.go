package actors

import (
	"sync"
	"time"
)

// memStore is an in-memory Store whose commits the test controls: writes
// queue until commit() (or forever when manual is set and nobody commits).
type memStore struct {
	mu       sync.Mutex
	cond     *sync.Cond
	manual   bool
	next     uint64
	resolved uint64
	queue    []memEntry
	waiters  []memWaiter
	locks    map[string]LockRecord
	sessions map[string]SessionRecord
	failNext bool
	failed   map[uint64]bool
	loads    int
}

type memEntry struct {
	seq  uint64
	m    Mutation
	done func(error)
}

type memWaiter struct {
	seq uint64
	fn  func(error)
}

func newMemStore(manual bool) *memStore {
	s := &memStore{manual: manual, locks: map[string]LockRecord{}, sessions: map[string]SessionRecord{}, failed: map[uint64]bool{}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *memStore) Enqueue(m Mutation, done func(error)) (uint64, error) {
	s.mu.Lock()
	s.next++
	seq := s.next
	s.queue = append(s.queue, memEntry{seq, m, done})
	manual := s.manual
	s.mu.Unlock()
	if !manual {
		s.commit()
	}
	return seq, nil
}

// commit resolves everything queued (failing it all if failNext is set).
func (s *memStore) commit() int {
	s.mu.Lock()
	batch := s.queue
	s.queue = nil
	var err error
	if s.failNext && len(batch) > 0 {
		err = ErrUnavailable
		s.failNext = false
	}
	if err != nil {
		for _, e := range batch {
			s.failed[e.seq] = true
		}
	} else {
		for _, e := range batch {
			switch m := e.m.(type) {
			case PutLock:
				s.locks[m.Lock.Name] = m.Lock
			case *PutLock: // the lock kind's own writes (lockCommit)
				s.locks[m.Lock.Name] = m.Lock
			case PutSession:
				s.sessions[m.Session.ID] = m.Session
			case RemoveSession:
				delete(s.sessions, m.ID)
			}
		}
	}
	s.mu.Unlock()
	for _, e := range batch {
		if e.done != nil {
			e.done(err)
		}
	}
	s.mu.Lock()
	// Actors commit from their own goroutines: a batch taken earlier may
	// finish after a later one, and resolved must not go back (a waiter of
	// the later batch would then wait for a commit that never comes).
	if len(batch) > 0 && batch[len(batch)-1].seq > s.resolved {
		s.resolved = batch[len(batch)-1].seq
	}
	var ready []memWaiter
	keep := s.waiters[:0]
	for _, w := range s.waiters {
		if w.seq <= s.resolved {
			ready = append(ready, w)
		} else {
			keep = append(keep, w)
		}
	}
	s.waiters = keep
	s.cond.Broadcast()
	s.mu.Unlock()
	for _, w := range ready {
		var werr error
		if s.failed[w.seq] {
			werr = ErrUnavailable
		}
		w.fn(werr)
	}
	return len(batch)
}

func (s *memStore) AfterCommit(seq uint64, fn func(error)) {
	s.mu.Lock()
	if seq <= s.resolved {
		var err error
		if s.failed[seq] {
			err = ErrUnavailable
		}
		s.mu.Unlock()
		fn(err)
		return
	}
	s.waiters = append(s.waiters, memWaiter{seq, fn})
	s.mu.Unlock()
}

func (s *memStore) Resolved() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resolved
}

func (s *memStore) WaitResolved(seq uint64) {
	s.mu.Lock()
	for s.resolved < seq {
		s.cond.Wait()
	}
	s.mu.Unlock()
}

func (s *memStore) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

func (s *memStore) LoadLock(name string) (LockRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads++
	r, ok := s.locks[name]
	if !ok {
		r.Name = name
	}
	return r, ok, nil
}

func (s *memStore) ActiveLocks(now time.Time, fn func(LockRecord)) error {
	s.mu.Lock()
	var rs []LockRecord
	for _, r := range s.locks {
		if r.HeldAt(now) {
			rs = append(rs, r)
		}
	}
	s.mu.Unlock()
	for _, r := range rs {
		fn(r)
	}
	return nil
}

func (s *memStore) ExpiredLocks(now time.Time, fn func(LockRecord)) error {
	s.mu.Lock()
	var rs []LockRecord
	for _, r := range s.locks {
		if r.Holder != "" && !r.HeldAt(now) {
			rs = append(rs, r)
		}
	}
	s.mu.Unlock()
	for _, r := range rs {
		fn(r)
	}
	return nil
}

func (s *memStore) LoadSession(id string) (SessionRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.sessions[id]
	return r, ok, nil
}

func (s *memStore) Sessions(fn func(SessionRecord)) error {
	s.mu.Lock()
	var rs []SessionRecord
	for _, r := range s.sessions {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	for _, r := range rs {
		fn(r)
	}
	return nil
}
