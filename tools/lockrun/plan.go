package lockrun

import (
	"syscall"
	"time"

	"github.com/octostore/octostore/tools/client"
)

// stopPlan decides when the command gets SIGTERM and SIGKILL because of the
// lease (docs/client.md, "When the server cannot be reached"). It is a
// function of the time and of what the Locker knows, so that it is tested
// without waiting.
//
// The lease's deadline D is the Locker's (client.LeaseHealth): the send time
// of the last successful grant or renewal plus the TTL, on this process's
// clock, which is no later than the server's expires_at. The command must be
// gone before D, so:
//   - SIGKILL at D - Margin, always: the margin covers a timer firing late
//     and a difference in clock rate, and the command dies before the server
//     can grant the lock to anyone else;
//   - SIGTERM at D - Margin - Grace, once a renewal has failed (or stayed
//     unanswered for TTL/6), so that the command has Grace to stop cleanly;
//   - after a SIGTERM, SIGKILL no later than Grace after it, even if renewals
//     came back meanwhile;
//   - when the lock is known lost (renewal refused: someone else may hold it
//     now), SIGTERM at once and SIGKILL Grace later; when it is lost because
//     the deadline passed, SIGKILL at once.
type stopPlan struct {
	Grace  time.Duration
	Margin time.Duration

	TermSent time.Time // when SIGTERM was sent for the lease; zero: not yet
	KillSent bool

	LostAt      time.Time // when the Locker reported the loss; zero: not lost
	LostExpired bool      // the loss was the deadline passing, not a refusal
}

// Margin is the margin before the lease's deadline that SIGKILL keeps for a
// lease of the given TTL: 100 ms for a timer firing late on a busy machine
// and the kill itself, plus 2% of the TTL for the two clocks running at
// different rates (NTP keeps them within 0.05%). 160 ms for a 3 s TTL,
// 700 ms for 30 s.
func Margin(ttl time.Duration) time.Duration { return 100*time.Millisecond + ttl/50 }

// due returns the signal to send now (0: none) and when to look again
// (zero: only on a change).
func (p *stopPlan) due(now time.Time, h client.LeaseHealth) (syscall.Signal, time.Time) {
	if p.KillSent {
		return 0, time.Time{}
	}
	var termAt, killAt time.Time
	switch {
	case !p.LostAt.IsZero() && p.LostExpired:
		killAt = p.LostAt
	case !p.LostAt.IsZero():
		termAt = p.LostAt
	case !h.Deadline.IsZero():
		killAt = h.Deadline.Add(-p.Margin)
		if h.RenewErr != nil {
			termAt = killAt.Add(-p.Grace)
		}
	}
	if !p.TermSent.IsZero() {
		termAt = time.Time{}
		if k := p.TermSent.Add(p.Grace); killAt.IsZero() || k.Before(killAt) {
			killAt = k
		}
	}
	switch {
	case !killAt.IsZero() && !now.Before(killAt):
		return syscall.SIGKILL, time.Time{}
	case !termAt.IsZero() && !now.Before(termAt):
		return syscall.SIGTERM, time.Time{}
	case !termAt.IsZero():
		return 0, termAt
	}
	return 0, killAt
}
