package tui

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// scrape is what the header needs from one /metrics exposition: the total
// of octostore_http_requests_total and the cumulative latency histogram,
// both summed over routes (GET /metrics itself left out, so that watching
// does not count as load).
type scrape struct {
	at       time.Time
	requests float64
	buckets  map[float64]float64 // upper bound (seconds) → cumulative count
}

const (
	requestsMetric = "octostore_http_requests_total{"
	bucketMetric   = "octostore_http_request_duration_seconds_bucket{"
	metricsRoute   = `route="/metrics"`
)

// parseScrape reads the series it needs from a text exposition.
func parseScrape(text string, at time.Time) (scrape, bool) {
	s := scrape{at: at, buckets: map[float64]float64{}}
	found := false
	for len(text) > 0 {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		isReq := strings.HasPrefix(line, requestsMetric)
		isBucket := !isReq && strings.HasPrefix(line, bucketMetric)
		if !isReq && !isBucket || strings.Contains(line, metricsRoute) {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		found = true
		if isReq {
			s.requests += v
			continue
		}
		i := strings.Index(line, `le="`)
		if i < 0 {
			continue
		}
		rest := line[i+4:]
		j := strings.IndexByte(rest, '"')
		if j < 0 {
			continue
		}
		le, err := strconv.ParseFloat(rest[:j], 64) // "+Inf" parses as +Inf
		if err != nil {
			continue
		}
		s.buckets[le] += v
	}
	return s, found
}

// rates turns successive scrapes into ops/s (per scrape interval, for the
// sparkline) and p99 (over the last p99Window scrapes, so that it does not
// flicker to nothing in a quiet second).
type rates struct {
	window  []scrape  // recent scrapes, oldest first
	ops     []float64 // recent ops/s, oldest first
	p99     float64   // seconds; NaN when the window saw no request
	samples int
}

const (
	sparkLen  = 16
	p99Window = 10
)

// add folds in a scrape. A counter that went backwards (a server restart)
// starts the series again.
func (r *rates) add(s scrape) {
	if n := len(r.window); n > 0 {
		last := r.window[n-1]
		if s.requests < last.requests || !s.at.After(last.at) {
			r.window = r.window[:0]
		} else {
			r.ops = append(r.ops, (s.requests-last.requests)/s.at.Sub(last.at).Seconds())
			if len(r.ops) > sparkLen {
				r.ops = r.ops[len(r.ops)-sparkLen:]
			}
			r.samples++
		}
	}
	r.window = append(r.window, s)
	if len(r.window) > p99Window+1 {
		r.window = append(r.window[:0], r.window[len(r.window)-p99Window-1:]...)
	}
	if len(r.window) > 1 {
		r.p99 = quantile(0.99, r.window[0].buckets, s.buckets)
	}
}

// quantile estimates the q-quantile of the observations made between two
// cumulative histograms, interpolating linearly inside the bucket (as
// Prometheus' histogram_quantile does).
func quantile(q float64, before, after map[float64]float64) float64 {
	les := make([]float64, 0, len(after))
	for le := range after {
		les = append(les, le)
	}
	sort.Float64s(les)
	if len(les) == 0 {
		return math.NaN()
	}
	total := after[les[len(les)-1]] - before[les[len(les)-1]]
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	prevLE, prevCount := 0.0, 0.0
	for _, le := range les {
		c := after[le] - before[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				return prevLE // beyond the last finite bucket: its bound is the best estimate
			}
			if c == prevCount {
				return le
			}
			return prevLE + (le-prevLE)*(rank-prevCount)/(c-prevCount)
		}
		prevLE, prevCount = le, c
	}
	return prevLE
}

var sparkBlocks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws vals scaled to their maximum.
func sparkline(vals []float64) string {
	max := 0.0
	for _, v := range vals {
		max = math.Max(max, v)
	}
	var b strings.Builder
	for _, v := range vals {
		i := 0
		if max > 0 {
			i = int(v / max * float64(len(sparkBlocks)-1))
		}
		b.WriteRune(sparkBlocks[i])
	}
	return b.String()
}

// fmtRate formats ops/s.
func fmtRate(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.0fk", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.1fk", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// fmtLatency formats seconds as µs/ms/s.
func fmtLatency(s float64) string {
	switch {
	case math.IsNaN(s):
		return "–"
	case s < 0.001:
		return fmt.Sprintf("%.0fµs", s*1e6)
	case s < 1:
		return fmt.Sprintf("%.1fms", s*1e3)
	}
	return fmt.Sprintf("%.2fs", s)
}
