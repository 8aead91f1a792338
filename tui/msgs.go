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
