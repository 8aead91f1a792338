package loadtest

import (
	"testing"
	"time"
)

// The hand-off latency is measured from a release to the grant of the next
// token, only for a waiter sent before that release; a grant after a
// request sent clearly later counts as overtaken.
func TestQueueReport(t *testing.T) {
	ms := time.Millisecond
	recs := []queueRec{
		{lock: 0, token: 1, invoke: 0, ack: 1 * ms},
		{lock: 0, token: 2, invoke: 2 * ms, ack: 12 * ms},                   // waited: released at 10ms
		{lock: 0, release: true, token: 1, invoke: 10 * ms},                 //
		{lock: 0, release: true, token: 2, invoke: 20 * ms},                 //
		{lock: 0, token: 3, invoke: 21 * ms, ack: 22 * ms},                  // sent after the release: no hand-off
		{lock: 0, release: true, token: 3, invoke: 30 * ms},                 //
		{lock: 0, token: 4, invoke: 25 * ms, ack: 33 * ms},                  // waited: 3 ms hand-off
		{lock: 0, token: 5, invoke: 23 * ms, ack: 40 * ms},                  // sent 2 ms before token 4's: overtaken
		{lock: 1, token: 1, invoke: 100 * ms, ack: 101 * ms},                // another lock: its own order
		{lock: 1, token: 2, invoke: 5 * ms, ack: 102 * ms},                  // sent long before: overtaken
		{lock: 1, token: 7, invoke: 9 * time.Second, ack: 10 * time.Second}, // outside the measured part
	}
	q := queueReport(recs, 0, 5*time.Second)
	if q.Grants != 7 || q.HandOffs != 2 || q.Overtaken != 2 {
		t.Fatalf("%+v, want 7 grants, 2 hand-offs, 2 overtaken", q)
	}
	if q.HandOff.P50 < 2 || q.HandOff.P50 > 2.01 || q.HandOff.Max < 3 || q.HandOff.Max > 3.01 {
		t.Fatalf("hand-off latency %+v, want 2 ms and 3 ms", q.HandOff)
	}
}
