package loadtest

import (
	"strings"
	"testing"
	"time"
)

func semGrant(w int32, lease byte, token int64, invoke, ack time.Duration) SemEvent {
	return SemEvent{Sem: "s", Limit: 2, Lease: LeaseID{lease}, Token: token, TTL: time.Minute, Invoke: invoke, Ack: ack, Worker: w, Outcome: OutcomeOK}
}

func semRelease(lease byte, token int64, invoke, ack time.Duration) SemEvent {
	return SemEvent{Sem: "s", Limit: 2, Lease: LeaseID{lease}, Token: token, Invoke: invoke, Ack: ack, Release: true, Outcome: OutcomeOK}
}

// The semaphore checker accepts a correct history and finds planted ones:
// three slots certainly held at once with a limit of 2, a repeated token,
// tokens against the order of grants.
func TestCheckSemaphores(t *testing.T) {
	ms := time.Millisecond
	ok := []SemEvent{
		semGrant(1, 1, 1, 0, 1*ms),
		semGrant(2, 2, 2, 0, 2*ms),
		semGrant(3, 3, 3, 1*ms, 9*ms), // granted once slot 1 was released
		semRelease(1, 1, 5*ms, 6*ms),
		semRelease(2, 2, 10*ms, 11*ms),
		semRelease(3, 3, 12*ms, 13*ms),
	}
	if r := CheckSemaphores(ok, CheckOptions{}); r.Violations != 0 || r.Slots != 3 || r.MaxHeld != 2 {
		t.Fatalf("a correct history: %+v", r)
	}
	for name, c := range map[string]struct {
		events []SemEvent
		kind   string
	}{
		"over the limit": {[]SemEvent{semGrant(1, 1, 1, 0, 1*ms), semGrant(2, 2, 2, 0, 2*ms), semGrant(3, 3, 3, 0, 3*ms),
			semRelease(1, 1, 5*ms, 6*ms)}, ViolationOverLimit},
		"a token twice":    {[]SemEvent{semGrant(1, 1, 1, 0, 1*ms), semRelease(1, 1, 2*ms, 3*ms), semGrant(2, 2, 1, 4*ms, 5*ms)}, ViolationTokenDuplicate},
		"tokens backwards": {[]SemEvent{semGrant(1, 1, 5, 0, 1*ms), semRelease(1, 5, 2*ms, 3*ms), semGrant(2, 2, 4, 4*ms, 5*ms)}, ViolationTokenOrder},
	} {
		r := CheckSemaphores(c.events, CheckOptions{})
		if r.Violations == 0 || !strings.Contains(strings.Join(r.Evidence, "\n"), c.kind) {
			t.Errorf("%s: %+v, want a %s violation", name, r, c.kind)
		}
	}
	// An expiry bound: a slot never released counts until its TTL (less
	// the slack) from its acquire's sending, then no longer.
	exp := []SemEvent{semGrant(1, 1, 1, 0, 1*ms), semGrant(2, 2, 2, 0, 2*ms),
		semGrant(3, 3, 3, time.Minute-50*ms, time.Minute)}
	if r := CheckSemaphores(exp, CheckOptions{Slack: 100 * ms}); r.Violations != 0 {
		t.Fatalf("a grant after the others' expiry: %+v", r)
	}
}
