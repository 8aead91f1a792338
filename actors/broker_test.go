package actors

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func lockEv(typ, name, holder, lease string, token uint64) Event {
	return Event{Type: typ, Kind: "lock", Name: name, Holder: holder, LeaseID: lease, FencingToken: token}
}

// drain takes everything queued for s without blocking.
func drain(s *Subscription) []Event {
	out, _ := s.Take(nil)
	return out
}

// ended reports whether s has ended (after what is queued).
func ended(s *Subscription) bool {
	_, done := s.Take(nil)
	return done
}

func TestBrokerNumbersAndOrders(t *testing.T) {
	b := NewBroker(BrokerOptions{})
	s, err := b.Subscribe(Filter{Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		b.Publish(lockEv(EventLockAcquired, fmt.Sprint("l", i), "alice", "", uint64(i+1)))
	}
	got := drain(s)
	if len(got) != 5 {
		t.Fatalf("got %d events, want 5", len(got))
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) || e.Name != fmt.Sprint("l", i) {
			t.Fatalf("event %d = seq %d name %s", i, e.Seq, e.Name)
		}
	}
	if b.Seq() != 5 {
		t.Fatalf("Seq = %d", b.Seq())
	}
}

func TestBrokerFilters(t *testing.T) {
	events := []Event{
		lockEv(EventLockAcquired, "build-1", "alice", "lease-a", 1),
		lockEv(EventLockAcquired, "deploy", "bob", "lease-b", 1),
		{Type: EventFlagSet, Kind: "flag", Owner: "alice", Name: "beta"},
		{Type: EventFlagSet, Kind: "flag", Owner: "bob", Name: "beta"},
		{Type: EventConfigWritten, Kind: "config", Owner: "bob", Name: "build-cfg", Version: 2},
		{Type: EventLimitDenied, Kind: "limit", Owner: "alice", Name: "api"},
	}
	type seen struct{ name, owner, lease string }
	cases := []struct {
		name string
		f    Filter
		want []seen
	}{
		{"alice sees all locks and her own resources", Filter{Login: "alice"},
			[]seen{{"build-1", "", "lease-a"}, {"deploy", "", ""}, {"beta", "alice", ""}, {"api", "alice", ""}}},
		{"bob", Filter{Login: "bob"},
			[]seen{{"build-1", "", ""}, {"deploy", "", "lease-b"}, {"beta", "bob", ""}, {"build-cfg", "bob", ""}}},
		{"admin sees everything with leases", Filter{Login: "*admin*", Admin: true},
			[]seen{{"build-1", "", "lease-a"}, {"deploy", "", "lease-b"}, {"beta", "alice", ""}, {"beta", "bob", ""}, {"build-cfg", "bob", ""}, {"api", "alice", ""}}},
		{"kind", Filter{Login: "bob", Kind: "flag"}, []seen{{"beta", "bob", ""}}},
		{"prefix", Filter{Login: "bob", Prefix: "build"}, []seen{{"build-1", "", ""}, {"build-cfg", "bob", ""}}},
		{"exact name", Filter{Login: "carol", Kind: "lock", Name: "deploy"}, []seen{{"deploy", "", ""}}},
		{"exact name is not a prefix", Filter{Login: "carol", Name: "build"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBroker(BrokerOptions{})
			s, _ := b.Subscribe(tc.f)
			for _, e := range events {
				b.Publish(e)
			}
			var got []seen
			for _, e := range drain(s) {
				got = append(got, seen{e.Name, e.Owner, e.LeaseID})
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestBrokerLaggedSubscriberIsCutOff(t *testing.T) {
	b := NewBroker(BrokerOptions{Buffer: 3})
	slow, _ := b.Subscribe(Filter{Admin: true})
	fast, _ := b.Subscribe(Filter{Admin: true})
	var fastGot []Event
	for i := 0; i < 10; i++ {
		b.Publish(lockEv(EventLockRenewed, "x", "alice", "", 1)) // never blocks
		fastGot = append(fastGot, drain(fast)...)
	}
	got := drain(slow)
	if len(got) != 4 {
		t.Fatalf("slow got %d events, want 3 and lagged: %+v", len(got), got)
	}
	if last := got[3]; last.Type != EventLagged || last.Seq != 4 {
		t.Fatalf("last event = %+v, want lagged at seq 4", last)
	}
	if !ended(slow) {
		t.Fatal("slow subscription still open after lagged")
	}
	if !slow.Lagged() || fast.Lagged() {
		t.Fatalf("Lagged: slow %v fast %v", slow.Lagged(), fast.Lagged())
	}
	if len(fastGot) != 10 {
		t.Fatalf("fast subscriber got %d events, want 10", len(fastGot))
	}
	st := b.Stats()
	if st.Subscribers != 1 || st.Dropped != 1 || st.Published != 10 {
		t.Fatalf("stats = %+v", st)
	}
	slow.Close() // closing a cut-off subscription is harmless
	if b.Stats().Subscribers != 1 {
		t.Fatal("double removal")
	}
}

func TestBrokerCloseAndUnsubscribe(t *testing.T) {
	b := NewBroker(BrokerOptions{})
	s1, _ := b.Subscribe(Filter{})
	s2, _ := b.Subscribe(Filter{})
	s1.Close()
	s1.Close()
	if n := b.Stats().Subscribers; n != 1 {
		t.Fatalf("subscribers = %d, want 1", n)
	}
	b.Publish(lockEv(EventLockAcquired, "x", "a", "", 1))
	if got := drain(s1); len(got) != 0 {
		t.Fatalf("closed subscription got %v", got)
	}
	b.Close()
	if got := drain(s2); len(got) != 1 {
		t.Fatalf("s2 got %v before close", got)
	}
	if !ended(s2) {
		t.Fatal("s2 open after broker Close")
	}
	if _, err := b.Subscribe(Filter{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	b.Publish(lockEv(EventLockAcquired, "x", "a", "", 2)) // no panic, discarded
	if n := b.Stats().Subscribers; n != 0 {
		t.Fatalf("subscribers = %d after Close", n)
	}
}

// TestBrokerConcurrent runs publishers, subscribers and closers together
// (for -race) and checks that every subscriber sees strictly increasing
// sequence numbers.
func TestBrokerConcurrent(t *testing.T) {
	b := NewBroker(BrokerOptions{Buffer: 64})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				b.Publish(lockEv(EventLockRenewed, "x", "a", "", 1))
			}
		}()
	}
	errs := make(chan error, 16)
	var subs sync.WaitGroup
	for r := 0; r < 8; r++ {
		subs.Add(1)
		go func() {
			defer subs.Done()
			for {
				s, err := b.Subscribe(Filter{Admin: true})
				if err != nil {
					return // closed
				}
				var last uint64
				var buf []Event
			read:
				for n := 0; n < 20; n++ {
					select {
					case <-s.Ready():
					case <-stop:
						s.Close()
						return
					}
					var done bool
					buf, done = s.Take(buf[:0])
					for _, e := range buf {
						if e.Seq <= last {
							errs <- fmt.Errorf("seq %d after %d", e.Seq, last)
						}
						last = e.Seq
					}
					if done {
						break read
					}
				}
				s.Close()
			}
		}()
	}
	wg.Wait()
	close(stop)
	b.Close()
	subs.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if b.Stats().Subscribers != 0 {
		t.Fatalf("subscribers = %d", b.Stats().Subscribers)
	}
}

// TestBrokerQueueMemory: a subscription holds memory only for what it has
// not read, and gives a burst's memory back once it is read.
func TestBrokerQueueMemory(t *testing.T) {
	b := NewBroker(BrokerOptions{Buffer: 4096})
	s, _ := b.Subscribe(Filter{Admin: true})
	if cap(s.queue) != 0 {
		t.Fatalf("idle subscription holds %d slots", cap(s.queue))
	}
	for i := 0; i < 1000; i++ {
		b.Publish(lockEv(EventLockRenewed, "x", "a", "", 1))
	}
	if got := drain(s); len(got) != 1000 {
		t.Fatalf("took %d", len(got))
	}
	if cap(s.queue) != 0 {
		t.Fatalf("queue keeps %d slots after the burst", cap(s.queue))
	}
}

// Config values reach only subscribers that ask for them (a config watch),
// and one of those that falls ValueBytes behind is cut off like one
// Buffer behind; Filter.Owner narrows owner-scoped events to one owner (and
// never widens what a user may see); the replay buffer keeps no values.
func TestBrokerValues(t *testing.T) {
	b := NewBroker(BrokerOptions{Buffer: 100, ValueBytes: 10})
	watch, err := b.Subscribe(Filter{Kind: "config", Name: "k", Owner: "alice", Admin: true, Values: true})
	if err != nil {
		t.Fatal(err)
	}
	all, _ := b.Subscribe(Filter{Admin: true})
	spy, _ := b.Subscribe(Filter{Kind: "config", Name: "k", Owner: "alice", Login: "bob", Values: true})
	b.Publish(Event{Type: EventConfigWritten, Kind: "config", Name: "k", Owner: "bob", Version: 1, Value: []byte(`"bob"`)})
	b.Publish(Event{Type: EventConfigWritten, Kind: "config", Name: "k", Owner: "alice", Version: 1, Value: []byte(`12345`), Description: "d"})
	got, done := watch.Take(nil)
	if done || len(got) != 1 || got[0].Owner != "alice" || string(got[0].Value) != "12345" || got[0].Description != "d" {
		t.Fatalf("watch got %+v (done %v)", got, done)
	}
	if got, _ := all.Take(nil); len(got) != 2 || got[0].Value != nil || got[1].Value != nil || got[1].Description != "" {
		t.Fatalf("/events got %+v", got)
	}
	if got, _ := spy.Take(nil); len(got) != 0 {
		t.Fatalf("bob's watch of alice's key got %+v", got)
	}
	resumed, _ := b.Resume(Filter{Admin: true, Values: true}, b.ID(0))
	if got, _ := resumed.Take(nil); len(got) != 2 || got[1].Owner != "alice" || got[1].Value != nil || got[1].Description != "" {
		t.Fatalf("replayed with values: %+v", got)
	}
	// 10 bytes of values may wait; the 11th byte cuts the watch off.
	b.Publish(Event{Type: EventConfigWritten, Kind: "config", Name: "k", Owner: "alice", Version: 2, Value: []byte(`123456`)})
	b.Publish(Event{Type: EventConfigWritten, Kind: "config", Name: "k", Owner: "alice", Version: 3, Value: []byte(`1234`)})
	b.Publish(Event{Type: EventConfigWritten, Kind: "config", Name: "k", Owner: "alice", Version: 4, Value: []byte(`1`)})
	got, done = watch.Take(nil)
	if !done || len(got) != 3 || got[2].Type != EventLagged || !watch.Lagged() {
		t.Fatalf("after 11 bytes of values: %+v (done %v)", got, done)
	}
	if got, done := all.Take(nil); done || len(got) != 3 {
		t.Fatalf("/events after the values: %+v %v", got, done)
	}
}

// BenchmarkBrokerPublish: the cost of one publish with 4,000 open
// subscriptions that may not or do not want the event (other users' config
// streams, watches of other locks), next to 4,000 that do.
//
//	go test -run XXX -bench BrokerPublish ./actors/
func BenchmarkBrokerPublish(b *testing.B) {
	const n = 4000
	cases := []struct {
		name string
		sub  func(i int) Filter
	}{
		{"uninterested-config", func(i int) Filter { return Filter{Login: fmt.Sprint("u", i%250), Kind: "config"} }},
		{"uninterested-watch", func(i int) Filter {
			return Filter{Login: fmt.Sprint("u", i%250), Kind: "lock", Name: fmt.Sprint("other-", i)}
		}},
		{"interested", func(i int) Filter { return Filter{Login: fmt.Sprint("u", i%250)} }},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			br := NewBroker(BrokerOptions{Buffer: 1 << 30})
			subs := make([]*Subscription, n)
			for i := range subs {
				s, err := br.Subscribe(tc.sub(i))
				if err != nil {
					b.Fatal(err)
				}
				subs[i] = s
			}
			e := lockEv(EventLockAcquired, "bench", "bob", "lease", 1)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				br.Publish(e)
				if i++; i%256 == 0 {
					b.StopTimer()
					for _, s := range subs {
						drain(s)
					}
					b.StartTimer()
				}
			}
		})
	}
}

func ownedEv(typ, kind, owner, name string) Event {
	return Event{Type: typ, Kind: kind, Owner: owner, Name: name}
}

// seqs returns the Seq of each event.
func seqs(evs []Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

// TestBrokerNumbersPerScope: a stream's numbers count only the events its
// subscriber may see, so other users' private writes leave no gaps (issue
// 12 §14; on the one global sequence alice's numbers jumped by bob's
// writes).
func TestBrokerNumbersPerScope(t *testing.T) {
	b := NewBroker(BrokerOptions{})
	alice, _ := b.Subscribe(Filter{Login: "alice"})
	aliceFlags, _ := b.Subscribe(Filter{Login: "alice", Kind: "flag"})
	bob, _ := b.Subscribe(Filter{Login: "bob"})
	admin, _ := b.Subscribe(Filter{Login: "*admin*", Admin: true})
	seqOf := []Event{
		ownedEv(EventConfigWritten, "config", "bob", "secret-1"),
		lockEv(EventLockAcquired, "build", "alice", "lease", 1),
		ownedEv(EventConfigWritten, "config", "bob", "secret-2"),
		ownedEv(EventConfigWritten, "config", "bob", "secret-3"),
		ownedEv(EventFlagSet, "flag", "alice", "beta"),
		ownedEv(EventLimitDenied, "limit", "bob", "api"),
		lockEv(EventLockReleased, "build", "alice", "lease", 1),
		ownedEv(EventConfigWritten, "config", "alice", "mine"),
		ownedEv(EventFlagSet, "flag", "alice", "gamma"),
	}
	for _, e := range seqOf {
		b.Publish(e)
	}
	cases := []struct {
		name string
		s    *Subscription
		want []uint64
	}{
		{"alice: locks and her own, consecutive", alice, []uint64{1, 2, 3, 4, 5}},
		{"alice's flags: gaps only for her other events", aliceFlags, []uint64{2, 5}},
		{"bob: locks and his own, consecutive", bob, []uint64{1, 2, 3, 4, 5, 6}},
		{"admin: every event", admin, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := seqs(drain(tc.s)); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("seqs %v, want %v", got, tc.want)
			}
		})
	}
	if p := alice.Position(); p != 5 {
		t.Fatalf("alice's position %d, want 5", p)
	}
	// A new subscription of alice continues her numbering.
	late, _ := b.Subscribe(Filter{Login: "alice"})
	b.Publish(lockEv(EventLockAcquired, "x", "carol", "", 1))
	if got := seqs(drain(late)); fmt.Sprint(got) != "[6]" {
		t.Fatalf("late subscription got %v, want [6]", got)
	}
}

// TestBrokerIndexesSubscribers: publishing looks only at the subscriptions
// indexed under the event (issue 12 §9): watches of other locks, config
// watches of other keys (the same owner's too) and other users'
// subscriptions to their own resources are never examined.
func TestBrokerIndexesSubscribers(t *testing.T) {
	b := NewBroker(BrokerOptions{})
	for i := 0; i < 500; i++ {
		if _, err := b.Subscribe(Filter{Login: fmt.Sprint("u", i), Kind: "lock", Name: fmt.Sprint("other-", i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Subscribe(Filter{Login: fmt.Sprint("u", i), Kind: "config"}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Subscribe(Filter{Login: "bob", Kind: "config", Owner: "bob", Name: fmt.Sprint("other-", i), Values: true}); err != nil {
			t.Fatal(err)
		}
	}
	var keyWatchers []*Subscription
	for i := 0; i < 2; i++ {
		w, _ := b.Subscribe(Filter{Login: "bob", Kind: "config", Owner: "bob", Name: "k", Values: true})
		keyWatchers = append(keyWatchers, w)
	}
	var watchers []*Subscription
	for i := 0; i < 3; i++ {
		w, _ := b.Subscribe(Filter{Login: "carol", Kind: "lock", Name: "x"})
		watchers = append(watchers, w)
	}
	bobAll, _ := b.Subscribe(Filter{Login: "bob"})
	admin, _ := b.Subscribe(Filter{Login: "*admin*", Admin: true, Kind: "config"})

	examined := func(e Event) uint64 {
		before := b.examined.Load()
		b.Publish(e)
		return b.examined.Load() - before
	}
	// A lock event: the 3 watchers of x and bob's unfiltered stream.
	if n := examined(lockEv(EventLockAcquired, "x", "bob", "lease", 1)); n != 4 {
		t.Fatalf("a lock event examined %d subscriptions, want 4", n)
	}
	// Bob's config event: bob's stream, the admin's and the 2 watchers of
	// bob's key k.
	if n := examined(ownedEv(EventConfigWritten, "config", "bob", "k")); n != 4 {
		t.Fatalf("bob's config event examined %d subscriptions, want 4", n)
	}
	// A user nobody watches: the admin's stream only.
	if n := examined(ownedEv(EventFlagSet, "flag", "dave", "f")); n != 1 {
		t.Fatalf("dave's flag event examined %d subscriptions, want 1", n)
	}
	for _, w := range watchers {
		if got := drain(w); len(got) != 1 || got[0].Name != "x" {
			t.Fatalf("watcher got %+v", got)
		}
	}
	if got := drain(bobAll); len(got) != 2 {
		t.Fatalf("bob got %+v", got)
	}
	for _, w := range keyWatchers {
		if got := drain(w); len(got) != 1 || got[0].Name != "k" || got[0].Seq != 2 {
			t.Fatalf("bob's watcher of k got %+v", got)
		}
		w.Close()
	}
	if _, ok := b.owned[watchedName{"config", "bob", "k"}]; ok {
		t.Fatal("the owned index keeps a key without watchers")
	}
	if got := drain(admin); len(got) != 1 || got[0].Owner != "bob" {
		t.Fatalf("admin (kind=config) got %+v", got)
	}
	// Closing removes a subscription from every index (and an empty watch
	// name from the map).
	for _, w := range watchers {
		w.Close()
	}
	if _, ok := b.watch["x"]; ok {
		t.Fatal("watch index keeps a name without watchers")
	}
	if n := examined(lockEv(EventLockReleased, "x", "bob", "lease", 1)); n != 1 {
		t.Fatalf("after the watchers closed, a lock event examined %d, want 1", n)
	}
}

// TestBrokerResume: a resumed subscription starts with exactly the events
// after its id that it may see, numbered as before; what cannot be replayed
// is announced by a reset (issue 12 §14).
func TestBrokerResume(t *testing.T) {
	type step struct {
		name   string
		filter Filter
		last   func(b *Broker, aliceAt uint64) string
		want   string // types and seqs of the first events queued
	}
	publish := func(b *Broker) {
		b.Publish(lockEv(EventLockAcquired, "build", "alice", "la", 1)) // alice 1
		b.Publish(ownedEv(EventConfigWritten, "config", "bob", "secret"))
		b.Publish(ownedEv(EventFlagSet, "flag", "alice", "beta")) // alice 2
		b.Publish(ownedEv(EventConfigWritten, "config", "bob", "secret"))
		b.Publish(lockEv(EventLockReleased, "build", "alice", "la", 1)) // alice 3
		b.Publish(ownedEv(EventFlagSet, "flag", "alice", "gamma"))      // alice 4
	}
	cases := []step{
		{"after 1: 2, 3, 4", Filter{Login: "alice"}, func(b *Broker, _ uint64) string { return b.ID(1) },
			"flag.set/2 lock.released/3 flag.set/4"},
		{"after 0: all four", Filter{Login: "alice"}, func(b *Broker, _ uint64) string { return b.ID(0) },
			"lock.acquired/1 flag.set/2 lock.released/3 flag.set/4"},
		{"up to date: nothing", Filter{Login: "alice"}, func(b *Broker, n uint64) string { return b.ID(n) }, ""},
		{"filtered: only the flags after 1", Filter{Login: "alice", Kind: "flag"}, func(b *Broker, _ uint64) string { return b.ID(1) },
			"flag.set/2 flag.set/4"},
		{"admin: global numbers", Filter{Login: "*admin*", Admin: true}, func(b *Broker, _ uint64) string { return b.ID(4) },
			"lock.released/5 flag.set/6"},
		{"another broker's id: reset", Filter{Login: "alice"}, func(b *Broker, _ uint64) string { return "0badbeef-1" }, "reset/4"},
		{"malformed: reset", Filter{Login: "alice"}, func(b *Broker, _ uint64) string { return "x" }, "reset/4"},
		{"from the future: reset", Filter{Login: "alice"}, func(b *Broker, _ uint64) string { return b.ID(9) }, "reset/4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBroker(BrokerOptions{})
			publish(b)
			s, err := b.Resume(tc.filter, tc.last(b, 4))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range drain(s) {
				got = append(got, fmt.Sprintf("%s/%d", e.Type, e.Seq))
				if e.Owner == "bob" {
					t.Fatalf("replayed bob's event to %+v: %+v", tc.filter, e)
				}
				if e.LeaseID != "" && !tc.filter.Admin && e.Holder != tc.filter.Login {
					t.Fatalf("replayed a lease id: %+v", e)
				}
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("queued %q, want %q", strings.Join(got, " "), tc.want)
			}
			// Live events continue the numbering.
			b.Publish(ownedEv(EventFlagSet, "flag", "alice", "live"))
			if e := drain(s); len(e) != 1 || e[0].Name != "live" {
				t.Fatalf("live event: %+v", e)
			}
		})
	}

	t.Run("evicted: reset", func(t *testing.T) {
		b := NewBroker(BrokerOptions{Replay: 4})
		publish(b) // the ring keeps the last 4 of 6: alice's 2, 3, 4
		s, _ := b.Resume(Filter{Login: "alice"}, b.ID(0))
		if got := drain(s); len(got) != 1 || got[0].Type != EventReset || got[0].Seq != 4 {
			t.Fatalf("resume past the ring: %+v", got)
		}
		s2, _ := b.Resume(Filter{Login: "alice"}, b.ID(1))
		if got := seqs(drain(s2)); fmt.Sprint(got) != "[2 3 4]" {
			t.Fatalf("resume within the ring: %v", got)
		}
	})
	t.Run("more than the buffer: reset", func(t *testing.T) {
		b := NewBroker(BrokerOptions{Buffer: 2})
		publish(b)
		s, _ := b.Resume(Filter{Login: "alice"}, b.ID(1))
		if got := drain(s); len(got) != 1 || got[0].Type != EventReset {
			t.Fatalf("3 events to replay with a buffer of 2: %+v", got)
		}
		s2, _ := b.Resume(Filter{Login: "alice"}, b.ID(2))
		if got := seqs(drain(s2)); fmt.Sprint(got) != "[3 4]" {
			t.Fatalf("2 events with a buffer of 2: %v", got)
		}
	})
}

// TestBrokerRevoke: a revoked subscription gets a revoked event in place of
// what it had not taken, and nothing after.
func TestBrokerRevoke(t *testing.T) {
	b := NewBroker(BrokerOptions{})
	s, _ := b.Subscribe(Filter{Login: "alice"})
	other, _ := b.Subscribe(Filter{Login: "alice"})
	b.Publish(ownedEv(EventFlagSet, "flag", "alice", "queued"))
	s.Revoke()
	b.Publish(ownedEv(EventFlagSet, "flag", "alice", "after"))
	got, done := s.Take(nil)
	if !done || len(got) != 1 || got[0].Type != EventRevoked || got[0].Seq != 1 {
		t.Fatalf("revoked subscription: %+v done=%v", got, done)
	}
	if got := drain(other); len(got) != 2 {
		t.Fatalf("the other subscription got %+v", got)
	}
	s.Revoke() // ended: nothing more
	if got := drain(s); len(got) != 0 {
		t.Fatalf("second Revoke queued %+v", got)
	}
	if st := b.Stats(); st.Revoked != 1 || st.Subscribers != 1 {
		t.Fatalf("stats %+v", st)
	}
}
