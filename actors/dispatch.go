package actors

import (
	"runtime"

	"github.com/asynkron/protoactor-go/actor"
)

// workerDispatcher runs actor mailboxes on a pool of long-lived goroutines
// instead of a new goroutine per turn, as protoactor's default dispatcher
// does. A new goroutine starts with a small stack that a lock operation's
// call path outgrows, and growing it (runtime.newstack: a copy) took about
// 4% of the server's CPU under the lock cycle, once per mailbox turn; a
// worker keeps its grown stack.
//
// Schedule never blocks: it hands the turn to an idle worker if one is
// waiting, and otherwise starts a goroutine for it, as the default
// dispatcher would. So a turn that blocks (an activation reads the
// database; an actor whose write failed waits for the writer) holds one
// worker at most, never the runtime.
type workerDispatcher struct {
	work       chan func() // unbuffered: a send succeeds only into a waiting worker
	quit       chan struct{}
	throughput int
}

// dispatchWorkers is the number of pooled workers: enough for every
// processor to have a few turns ready to run.
func dispatchWorkers() int { return max(16, 8*runtime.GOMAXPROCS(0)) }

// dispatchThroughput is how many messages a mailbox turn processes before
// it yields (protoactor's default).
const dispatchThroughput = 300

var _ actor.Dispatcher = (*workerDispatcher)(nil)

func newWorkerDispatcher(workers, throughput int) *workerDispatcher {
	d := &workerDispatcher{work: make(chan func()), quit: make(chan struct{}), throughput: throughput}
	for range workers {
		go d.run()
	}
	return d
}

func (d *workerDispatcher) run() {
	for {
		select {
		case fn := <-d.work:
			fn()
		case <-d.quit:
			return
		}
	}
}

// Schedule implements actor.Dispatcher.
func (d *workerDispatcher) Schedule(fn func()) {
	select {
	case d.work <- fn:
	default:
		go fn()
	}
}

// Throughput implements actor.Dispatcher.
func (d *workerDispatcher) Throughput() int { return d.throughput }

// stop ends the workers; turns scheduled later get goroutines of their own.
func (d *workerDispatcher) stop() { close(d.quit) }
