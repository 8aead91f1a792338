package httpd

import (
	"sync"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/prometheus/client_golang/prometheus"
)

// observe makes deps the runtime that the scrape-time gauges of
// deps.Metrics read (NewServer calls it; request instrumentation wraps the
// handler there). The gauges are registered once per Metrics; in cluster
// mode every leader term builds a new Server on the same Metrics, and the
// gauges follow the newest one (unobserve: none while this node follows).
// limit is the Server's bound of requests in flight and waiting acquires.
func observe(deps Deps, limit *inflight) {
	m := deps.Metrics
	m.observed.Store(&observedRuntime{Deps: deps, limit: limit})
	m.observeOnce.Do(func() { registerRuntimeGauges(m) })
}

// observedRuntime is what the scrape-time gauges read: a Server's
// dependencies and its in-flight bound.
type observedRuntime struct {
	Deps
	limit *inflight
}

// unobserve stops the gauges reading s's runtime (a term's Server
// withdrawn), unless a newer Server took its place already.
func unobserve(s *Server, m *Metrics) {
	if cur := m.observed.Load(); cur != nil && cur.Locks == s.locks {
		m.observed.CompareAndSwap(cur, nil)
	}
}

// registerRuntimeGauges registers the gauges of the runtime under
// observation (0 while there is none).
func registerRuntimeGauges(m *Metrics) {
	with := func(f func(d *observedRuntime) float64) func() float64 {
		return func() float64 {
			if d := m.observed.Load(); d != nil {
				return f(d)
			}
			return 0
		}
	}
	m.GaugeFunc("octostore_waiting_requests", "Waiting acquires (wait_seconds) waiting for their turn.",
		with(func(d *observedRuntime) float64 { return float64(d.limit.Waiting()) }))
	m.GaugeFunc("octostore_live_actors", "Resident resource actors.",
		with(func(d *observedRuntime) float64 { return float64(d.Sys.LiveActors()) }))
	m.GaugeFunc("octostore_event_subscribers", "Open event subscriptions (/events and /locks/{name}/watch streams).",
		with(func(d *observedRuntime) float64 { return float64(d.Events.Stats().Subscribers) }))
	m.CounterFunc("octostore_events_published_total", "Events published (committed state changes).",
		with(func(d *observedRuntime) float64 { return float64(d.Events.Stats().Published) }))
	m.CounterFunc("octostore_events_delivered_total", "Events handed to subscribers.",
		with(func(d *observedRuntime) float64 { return float64(d.Events.Stats().Delivered) }))
	m.CounterFunc("octostore_event_subscribers_dropped_total", "Subscribers cut off with a lagged event because they fell behind.",
		with(func(d *observedRuntime) float64 { return float64(d.Events.Stats().Dropped) }))
	m.GaugeFunc("octostore_sessions", "Sessions known to the server (live, and ended ones whose holds are still being ended).",
		with(func(d *observedRuntime) float64 { return float64(d.Sessions.Live()) }))
	m.CounterFunc("octostore_event_subscribers_revoked_total", "Event streams ended with a revoked event because their token was revoked or rotated.",
		with(func(d *observedRuntime) float64 { return float64(d.Events.Stats().Revoked) }))
	m.GaugeFunc("octostore_writer_queue", "Writes queued for the group-commit writer.",
		with(func(d *observedRuntime) float64 { return float64(d.Store.Queued()) }))
	m.GaugeFunc("octostore_storage_healthy", "1 while the last write batch committed, 0 while writes fail (or, in cluster mode, while this node does not lead).",
		with(func(d *observedRuntime) float64 {
			if d.Store.Healthy() {
				return 1
			}
			return 0
		}))
	m.Registry.MustRegister(&resourceCollector{m: m, ttl: 5 * time.Second, now: time.Now})
}

// resourceCollector reports octostore_resources{kind}: held locks from the
// in-memory holder index, and limits, flags and live config keys counted by
// the storage (cached for ttl: a count over a large table or key range is
// not free, and the terminal view scrapes every second).
type resourceCollector struct {
	m   *Metrics
	ttl time.Duration
	now func() time.Time

	// mu guards at, store and counts.
	mu     sync.Mutex
	at     time.Time
	store  Storage // the store the counts were read from
	counts map[string]float64
}

var resourcesDesc = prometheus.NewDesc("octostore_resources",
	"Resources by kind: held locks and semaphore slots, rate limits, feature flags and config keys.", []string{"kind"}, nil)

// ownedKinds are the owner-scoped kinds counted by the storage.
var ownedKinds = []struct {
	label string
	kind  actors.Kind
}{
	{"limit", actors.KindLimit},
	{"flag", actors.KindFlag},
	{"config", actors.KindConfig},
}

func (c *resourceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- resourcesDesc }

func (c *resourceCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.m.observed.Load()
	if d == nil {
		return // not leading: nothing to count here
	}
	ch <- prometheus.MustNewConstMetric(resourcesDesc, prometheus.GaugeValue, float64(d.Locks.Indexed()), "lock")
	ch <- prometheus.MustNewConstMetric(resourcesDesc, prometheus.GaugeValue, float64(d.Semaphores.Held()), "semaphore_slot")
	c.mu.Lock()
	if now := c.now(); c.counts == nil || c.store != d.Store || now.Sub(c.at) >= c.ttl {
		counts := map[string]float64{}
		for _, k := range ownedKinds {
			total, ok := 0, true
			if err := d.Store.CountOwned(k.kind, func(_ string, n int) { total += n }); err != nil {
				ok = false
			}
			if ok {
				counts[k.label] = float64(total)
			}
		}
		c.counts, c.at, c.store = counts, now, d.Store
	}
	counts := c.counts
	c.mu.Unlock()
	for _, k := range ownedKinds {
		if n, ok := counts[k.label]; ok {
			ch <- prometheus.MustNewConstMetric(resourcesDesc, prometheus.GaugeValue, n, k.label)
		}
	}
}
