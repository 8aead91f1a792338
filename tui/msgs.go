package tui

import (
	"time"

	"github.com/octostore/octostore/tools/client"
)

// Messages. Those of the event stream and of the listings carry gen, the
// connection generation they belong to; Update drops stale ones.
type (
	// connectedMsg: the event subscription of generation gen is open.
	connectedMsg struct {
		gen    int
		stream *client.EventStream
	}
	// connectFailedMsg: opening the subscription of generation gen failed.
	connectFailedMsg struct {
		gen int
		err error
	}
	// eventsMsg: events read from the stream of generation gen, in order.
	eventsMsg struct {
		gen    int
		events []client.Event
	}
	// streamEndedMsg: the stream of generation gen ended (err says why;
	// client.ErrLagged when the server cut us off for falling behind).
	streamEndedMsg struct {
		gen int
		err error
	}
	// reconnectMsg: the backoff before connection attempt gen is over.
	reconnectMsg struct{ gen int }

	// locksListedMsg: GET /locks answered (the resync of generation gen).
	locksListedMsg struct {
		gen   int
		locks []client.LockInfo
		err   error
	}
	// lockStatusMsg: GET /locks/{name} answered, for the detail pane
	// (waiters, lock-delay, metadata).
	lockStatusMsg struct {
		name  string
		state *client.LockState
		err   error
	}
	// semaphoresReadMsg: GET /semaphores/{name} answered for names (the
	// semaphore view's resync or poll). since is the semaphore event count
	// when the reads were sent: events after it are replayed on top.
	semaphoresReadMsg struct {
		since  uint64
		states []client.SemaphoreState
		gone   []string // names the server does not know (404)
		err    error
	}
	// semaphoresListedMsg: GET /semaphores answered for connection gen:
	// the names of the semaphores the token holds slots of, in order.
	semaphoresListedMsg struct {
		gen   int
		names []string
		err   error
	}
	// sessionsListedMsg: GET /sessions answered.
	sessionsListedMsg struct {
		sessions []client.SessionInfo
		err      error
	}
	// pollTickMsg: time to read again what the screen shows that changes
	// without an event (a lock's waiters, semaphores' waiters, sessions'
	// expiries after keepalives). poll is the screen it was set for: a
	// tick of a screen left since is dropped.
	pollTickMsg struct{ poll int }
	// limitsListedMsg: GET /limits answered.
	limitsListedMsg struct {
		limits []client.LimitInfo
		err    error
	}
	// flagsListedMsg: GET /flags answered.
	flagsListedMsg struct {
		flags []client.Flag
		err   error
	}
	// configListedMsg: GET /config answered.
	configListedMsg struct {
		configs []client.ConfigEntry
		err     error
	}

	// metricsMsg: GET /metrics answered (text is the exposition).
	metricsMsg struct {
		at   time.Time
		text string
		err  error
	}
	// metricsTickMsg: time to scrape /metrics again.
	metricsTickMsg struct{}
	// clusterMsg: GET /cluster answered (cluster mode: node and leader for
	// the header; a single node answers 404 and is not asked again).
	clusterMsg struct {
		st  client.ClusterStatus
		err error
	}
	// clusterTickMsg: time to ask GET /cluster again.
	clusterTickMsg struct{}
	// tickMsg: redraw time-dependent cells (time left, highlights).
	tickMsg time.Time
)
