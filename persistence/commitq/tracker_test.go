package commitq

import (
	"errors"
	"reflect"
	"testing"
)

// Waiters run in registration order with their own write's outcome; a
// waiter registered after its write resolved runs at once with the
// remembered error; Failures merges runs of one error.
func TestTrackerResolvesInOrder(t *testing.T) {
	tr := New()
	var got []string
	note := func(name string) func(error) {
		return func(err error) {
			if err != nil {
				name += ":" + err.Error()
			}
			got = append(got, name)
		}
	}
	boom := errors.New("boom")
	tr.AfterCommit(2, note("w2"))
	tr.AfterCommit(3, note("w3"))
	tr.AfterCommit(5, note("w5"))
	var f Failures
	f.Add(2, boom)
	f.Add(3, boom)
	if !reflect.DeepEqual(f, Failures{{Lo: 2, Hi: 3, Err: boom}}) {
		t.Fatalf("failures %+v", f)
	}
	tr.Resolve(4, f)
	if want := []string{"w2:boom", "w3:boom"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after Resolve(4): %v, want %v", got, want)
	}
	tr.AfterCommit(3, note("late3"))
	tr.AfterCommit(4, note("late4"))
	tr.Resolve(5, nil)
	if want := []string{"w2:boom", "w3:boom", "late3:boom", "late4", "w5"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if tr.Resolved() != 5 {
		t.Fatalf("Resolved %d", tr.Resolved())
	}
	tr.WaitResolved(5) // at once
	done := make(chan struct{})
	go func() {
		tr.WaitResolved(9)
		close(done)
	}()
	tr.Close()
	<-done // Close wakes it
}
