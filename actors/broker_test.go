package actors

import (
	"errors"
	"fmt"
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
// Buffer behind; Filter.Owner narrows owner-scoped events to one owner.
func TestBrokerValues(t *testing.T) {
	b := NewBroker(BrokerOptions{Buffer: 100, ValueBytes: 10})
	watch, err := b.Subscribe(Filter{Kind: "config", Name: "k", Owner: "alice", Admin: true, Values: true})
	if err != nil {
		t.Fatal(err)
	}
	all, _ := b.Subscribe(Filter{Admin: true})
	b.Publish(Event{Type: EventConfigWritten, Kind: "config", Name: "k", Owner: "bob", Version: 1, Value: []byte(`"bob"`)})
	b.Publish(Event{Type: EventConfigWritten, Kind: "config", Name: "k", Owner: "alice", Version: 1, Value: []byte(`12345`), Description: "d"})
	got, done := watch.Take(nil)
	if done || len(got) != 1 || got[0].Owner != "alice" || string(got[0].Value) != "12345" || got[0].Description != "d" {
		t.Fatalf("watch got %+v (done %v)", got, done)
	}
	if got, _ := all.Take(nil); len(got) != 2 || got[0].Value != nil || got[1].Value != nil || got[1].Description != "" {
		t.Fatalf("/events got %+v", got)
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
