package loadtest

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Every resource a run creates (locks, rate limits, flags, config keys, and
// on Redis its keys) is named Prefix(runID) + a scenario's own part, e.g.
// "lt-1a2b3c4d-flag-17", so that two runs never share a name and the run's
// leftovers can be found and deleted afterwards whatever happened to the run.

// Prefix is the name prefix of everything the run runID creates.
func Prefix(runID string) string { return "lt-" + runID + "-" }

// newRunID returns 8 random hex digits.
func newRunID() string {
	var b [4]byte
	if _, err := crand.Read(b[:]); err != nil {
		// crypto/rand does not fail on Linux; a fixed id only risks sharing
		// names with another run that hit the same failure.
		return "00000000"
	}
	return hex.EncodeToString(b[:])
}

// Cleaner is implemented by targets that can find and delete what a run
// created: everything named with prefix, in the namespace of every user the
// target acts as.
type Cleaner interface {
	// Cleanup deletes every resource named with prefix and reports what it
	// removed and what is still there afterwards. It stops when ctx ends.
	Cleanup(ctx context.Context, prefix string) CleanupReport
}

// CleanupReport says what the end of a run deleted.
type CleanupReport struct {
	Prefix string `json:"prefix"`
	// Kept: the run was told to leave everything (--keep).
	Kept bool `json:"kept,omitempty"`
	// Removed counts what was deleted by kind: "locks" (held leases
	// released), "limits", "flags", "config keys"; on Redis "keys".
	Removed map[string]int `json:"removed,omitempty"`
	// Left counts resources named with Prefix still there after the
	// cleanup; -1 when that could not be listed.
	Left int `json:"left"`
	// Error is the first failure (a refused delete, a listing that failed,
	// the cleanup deadline).
	Error   string  `json:"error,omitempty"`
	Seconds float64 `json:"seconds"`
}

// Complete reports whether nothing of the run is left (or it was kept on purpose).
func (c *CleanupReport) Complete() bool { return c.Kept || (c.Left == 0 && c.Error == "") }

// String is one line for the summary.
func (c *CleanupReport) String() string {
	if c.Kept {
		return fmt.Sprintf("kept: everything this run created is named %s* (--keep)", c.Prefix)
	}
	var parts []string
	kinds := make([]string, 0, len(c.Removed))
	for k := range c.Removed {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		if c.Removed[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.Removed[k], k))
		}
	}
	removed := "nothing to remove"
	if len(parts) > 0 {
		removed = "removed " + strings.Join(parts, ", ")
	}
	if c.Complete() {
		return fmt.Sprintf("cleanup: %s named %s* in %.1fs", removed, c.Prefix, c.Seconds)
	}
	left := fmt.Sprintf("%d left", c.Left)
	if c.Left < 0 {
		left = "what is left is unknown"
	}
	s := fmt.Sprintf("cleanup INCOMPLETE: %s named %s*, %s", removed, c.Prefix, left)
	if c.Error != "" {
		s += ": " + c.Error
	}
	return s
}

// cleanupSet collects the outcome of concurrent deletes.
type cleanupSet struct {
	mu      sync.Mutex // guards removed and err
	removed map[string]int
	err     error
}

func (s *cleanupSet) count(kind string, n int) {
	s.mu.Lock()
	s.removed[kind] += n
	s.mu.Unlock()
}

func (s *cleanupSet) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

// deleteAll calls del for every name on a few goroutines and counts under
// kind those it removed (del reports false for a name already gone); it
// stops early when ctx ends.
func (s *cleanupSet) deleteAll(ctx context.Context, kind string, names []string, del func(string) (bool, error)) {
	const workers = 8
	next := make(chan string)
	var wg sync.WaitGroup
	for i := 0; i < workers && i < len(names); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range next {
				removed, err := del(n)
				if err != nil {
					s.fail(fmt.Errorf("delete %s %s: %w", kind, n, err))
					continue
				}
				if removed {
					s.count(kind, 1)
				}
			}
		}()
	}
feed:
	for _, n := range names {
		select {
		case next <- n:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
}

// report turns the set into a CleanupReport with left resources left over.
func (s *cleanupSet) report(left int) CleanupReport {
	rep := CleanupReport{Removed: s.removed, Left: left}
	if s.err != nil {
		rep.Error = s.err.Error()
	}
	return rep
}

// cleanup runs the target's cleanup for the run (unless cfg.Keep) within
// cfg.CleanupTimeout, also after ctx was cancelled (an interrupted run), and
// stops early when cfg.Abort closes. nil when the target cannot clean up.
func (r *run) cleanup(ctx context.Context) *CleanupReport {
	if r.cfg.Keep {
		return &CleanupReport{Prefix: r.prefix, Kept: true}
	}
	c, ok := r.target.(Cleaner)
	if !ok {
		return nil
	}
	tctx, cancelT := context.WithTimeoutCause(context.WithoutCancel(ctx), r.cfg.CleanupTimeout,
		fmt.Errorf("timed out after %s", r.cfg.CleanupTimeout))
	defer cancelT()
	cctx, cancel := context.WithCancelCause(tctx)
	defer cancel(nil)
	if r.cfg.Abort != nil {
		go func() {
			select {
			case <-r.cfg.Abort:
				cancel(errors.New("cut short by a second interrupt"))
			case <-cctx.Done():
			}
		}()
	}
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "\r\033[Kcleaning up %s* …", r.prefix)
		defer fmt.Fprint(r.cfg.Progress, "\r\033[K")
	}
	start := time.Now()
	rep := c.Cleanup(cctx, r.prefix)
	rep.Prefix = r.prefix
	rep.Seconds = time.Since(start).Seconds()
	if cctx.Err() != nil && !rep.Complete() {
		rep.Error = "cleanup " + context.Cause(cctx).Error()
	}
	return &rep
}
