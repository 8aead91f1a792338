package httpd

import (
	"database/sql"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// observe registers the scrape-time gauges of the runtime on deps.Metrics
// (NewServer calls it; request instrumentation wraps the handler there).
func observe(deps Deps) {
	m, sys, events, store := deps.Metrics, deps.Sys, deps.Events, deps.Store
	m.GaugeFunc("octostore_live_actors", "Resident resource actors.",
		func() float64 { return float64(sys.LiveActors()) })
	m.GaugeFunc("octostore_event_subscribers", "Open event subscriptions (/events and /locks/{name}/watch streams).",
		func() float64 { return float64(events.Stats().Subscribers) })
	m.CounterFunc("octostore_events_published_total", "Events published (committed state changes).",
		func() float64 { return float64(events.Stats().Published) })
	m.CounterFunc("octostore_events_delivered_total", "Events handed to subscribers.",
		func() float64 { return float64(events.Stats().Delivered) })
	m.CounterFunc("octostore_event_subscribers_dropped_total", "Subscribers cut off with a lagged event because they fell behind.",
		func() float64 { return float64(events.Stats().Dropped) })
	m.GaugeFunc("octostore_sessions", "Sessions known to the server (live, and ended ones whose holds are still being ended).",
		func() float64 { return float64(deps.Sessions.Live()) })
	m.CounterFunc("octostore_event_subscribers_revoked_total", "Event streams ended with a revoked event because their token was revoked or rotated.",
		func() float64 { return float64(events.Stats().Revoked) })
	m.GaugeFunc("octostore_writer_queue", "Writes queued for the group-commit writer.",
		func() float64 { return float64(store.Stats().Queued) })
	m.GaugeFunc("octostore_storage_healthy", "1 while the last write batch committed, 0 while writes fail.",
		func() float64 {
			if store.Healthy() {
				return 1
			}
			return 0
		})
	m.Registry.MustRegister(&resourceCollector{
		locks: deps.Locks.Indexed,
		slots: deps.Semaphores.Held,
		db:    store.DB().ReadDB(),
		ttl:   5 * time.Second,
		now:   time.Now,
	})
}

// resourceCollector reports octostore_resources{kind}: held locks from the
// in-memory holder index, and limits, flags and live config keys counted in
// the database (cached for ttl: a COUNT over a large table is not free, and
// the terminal view scrapes every second).
type resourceCollector struct {
	locks func() int
	slots func() int // held semaphore slots
	db    *sql.DB
	ttl   time.Duration
	now   func() time.Time

	// mu guards at and counts.
	mu     sync.Mutex
	at     time.Time
	counts map[string]float64
}

var resourcesDesc = prometheus.NewDesc("octostore_resources",
	"Resources by kind: held locks and semaphore slots, rate limits, feature flags and config keys.", []string{"kind"}, nil)

// resourceQueries count the owner-scoped kinds; a kind whose table does not
// exist (an older schema) is left out.
var resourceQueries = []struct{ kind, query string }{
	{"limit", `SELECT COUNT(*) FROM limits`},
	{"flag", `SELECT COUNT(*) FROM flags`},
	{"config", `SELECT COUNT(*) FROM config_keys WHERE deleted = 0`},
}

func (c *resourceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- resourcesDesc }

func (c *resourceCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(resourcesDesc, prometheus.GaugeValue, float64(c.locks()), "lock")
	ch <- prometheus.MustNewConstMetric(resourcesDesc, prometheus.GaugeValue, float64(c.slots()), "semaphore_slot")
	c.mu.Lock()
	if now := c.now(); c.counts == nil || now.Sub(c.at) >= c.ttl {
		counts := map[string]float64{}
		for _, q := range resourceQueries {
			var n int64
			if err := c.db.QueryRow(q.query).Scan(&n); err == nil {
				counts[q.kind] = float64(n)
			}
		}
		c.counts, c.at = counts, now
	}
	counts := c.counts
	c.mu.Unlock()
	for _, q := range resourceQueries {
		if n, ok := counts[q.kind]; ok {
			ch <- prometheus.MustNewConstMetric(resourcesDesc, prometheus.GaugeValue, n, q.kind)
		}
	}
}
