package httpd_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
)

// waitHealth polls /health (the signal under test) until it answers want.
func (e *relEnv) waitHealth(want int, within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := e.do("GET", "/health", "", "")
		if r.status == want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("/health still %d %s after %s, want %d", r.status, r.body, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type heldLock struct {
	lease string
	token int64
	exp   string
}

func (e *relEnv) mustAcquire(token, name string, ttl int) heldLock {
	e.t.Helper()
	r := e.acquire(token, name, ttl)
	if r.status != 200 {
		e.t.Fatalf("acquire %s: %d %s", name, r.status, r.body)
	}
	return heldLock{lease: r.str("lease_id"), token: r.num("fencing_token"), exp: r.str("expires_at")}
}

// mustHold checks that name is held by lease (status as its holder).
func (e *relEnv) mustHold(token, name string, h heldLock, what string) {
	e.t.Helper()
	r := e.status(token, name)
	if r.status != 200 || r.str("status") != "held" || r.str("lease_id") != h.lease || r.num("fencing_token") != h.token || r.str("expires_at") != h.exp {
		e.t.Fatalf("%s: lock %s is %d %s, want held by lease %s token %d until %s", what, name, r.status, r.body, h.lease, h.token, h.exp)
	}
}

func (e *relEnv) mustBeAvailable(token, name, what string) {
	e.t.Helper()
	r := e.status(token, name)
	if r.status != 200 || r.str("status") != "available" {
		e.t.Fatalf("%s: lock %s is %d %s, want available", what, name, r.status, r.body)
	}
}

// TestDiskFaultInjected: while every write transaction fails (as with EIO
// or a full disk), writes answer 503 + Retry-After with a JSON error, the
// state in memory stays what is durable (a failed grant is not visible and
// uses no fencing token, a failed release leaves the lock held, a failed
// renew keeps the old expiry), /health is 503 until a write succeeds
// again, and everything acknowledged before survives a restart.
func TestDiskFaultInjected(t *testing.T) {
	e := relStart(t, nil)
	kept := e.mustAcquire("tokA", "kept", 3600)
	gone := e.mustAcquire("tokA", "gone", 3600)
	renewed := e.mustAcquire("tokA", "renewed", 3600)
	e.waitHealth(200, time.Second)

	var failing atomic.Bool
	failing.Store(true)
	var faults atomic.Int64
	e.app.SetFaultHook(func() error {
		if failing.Load() {
			faults.Add(1)
			return errors.New("injected: disk I/O error")
		}
		return nil
	})

	// A grant that cannot be made durable is not acknowledged, and not
	// visible afterwards.
	mustJSONError(t, "acquire while writes fail", e.acquire("tokB", "new", 60), http.StatusServiceUnavailable)
	if faults.Load() == 0 {
		t.Fatal("the fault hook was never called")
	}
	e.waitHealth(http.StatusServiceUnavailable, time.Second)
	e.mustBeAvailable("tokB", "new", "after a failed grant")
	if r := e.do("GET", "/locks", "tokB", ""); r.num("total") != 0 {
		t.Fatalf("bob's locks after a failed grant: %s", r.body)
	}
	// A release that cannot be made durable leaves the lock held.
	mustJSONError(t, "release while writes fail", e.release("tokA", "gone", gone.lease), http.StatusServiceUnavailable)
	e.mustHold("tokA", "gone", gone, "after a failed release")
	// A renew that cannot be made durable keeps the old expiry.
	mustJSONError(t, "renew while writes fail",
		e.do("POST", "/locks/renewed/renew", "tokA", `{"lease_id":"`+renewed.lease+`","ttl_seconds":10}`), http.StatusServiceUnavailable)
	e.mustHold("tokA", "renewed", renewed, "after a failed renew")
	// The holder's index does not show the failed grant either.
	if r := e.do("GET", "/locks", "tokA", ""); r.num("total") != 3 {
		t.Fatalf("alice's locks while writes fail: %s", r.body)
	}

	// Concurrent load during the fault: every write is refused, none panics
	// or answers anything but 503, and reads keep working.
	var wg sync.WaitGroup
	var bad atomic.Value
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				name := fmt.Sprintf("load-%d-%d", w, i)
				if r := e.acquire("tokC", name, 60); r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
					bad.Store(fmt.Sprintf("acquire %s while writes fail: %d %s", name, r.status, r.body))
				}
				if r := e.status("tokC", name); r.status != 200 || r.str("status") != "available" {
					bad.Store(fmt.Sprintf("status %s while writes fail: %d %s", name, r.status, r.body))
				}
			}
		}(w)
	}
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	e.waitHealth(http.StatusServiceUnavailable, time.Second)

	// Repair: health recovers by itself (the writer probes), and the next
	// grant continues from the durable token.
	failing.Store(false)
	e.waitHealth(200, 5*time.Second)
	if h := e.mustAcquire("tokB", "new", 60); h.token != 1 {
		t.Fatalf("first grant after the failed one got token %d, want 1 (nothing was acknowledged)", h.token)
	}
	if r := e.release("tokA", "gone", gone.lease); r.status != 200 {
		t.Fatalf("release after repair: %d %s", r.status, r.body)
	}

	// Nothing acknowledged is lost.
	e.restart()
	e.mustHold("tokA", "kept", kept, "after restart")
	e.mustHold("tokA", "renewed", renewed, "after restart")
	e.mustBeAvailable("tokA", "gone", "after restart")
	if r := e.status("tokB", "new"); r.str("holder") != "bob" {
		t.Fatalf("grant acknowledged after repair lost on restart: %s", r.body)
	}
	for w := 0; w < 8; w++ {
		e.mustBeAvailable("tokC", fmt.Sprintf("load-%d-0", w), "refused grant after restart")
	}
}

// TestDiskFullRealFilesystem puts the database on a 3 MiB tmpfs and fills
// it: SQLite's writes fail with "database or disk is full". Requires root
// (mount); skipped where mounting is not permitted (the FaultHook test
// above covers the same promises).
func TestDiskFullRealFilesystem(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=3m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): covered by TestDiskFaultInjected only", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	e := relStart(t, func(o *httpd.TestOptions) { o.DBPath = filepath.Join(mnt, "octostore.db") })

	before := e.mustAcquire("tokA", "before", 3600)
	// Fill the filesystem.
	filler, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 16<<10)
	for {
		if _, err := filler.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	filler.Close()

	// Write until SQLite runs out of room (the WAL may have free frames
	// left); every write is either acknowledged or a 503.
	acked := map[string]heldLock{}
	var refused string
	for i := 0; i < 20000 && refused == ""; i++ {
		name := fmt.Sprintf("full-%d", i)
		r := e.acquire("tokB", name, 3600)
		switch r.status {
		case 200:
			acked[name] = heldLock{lease: r.str("lease_id"), token: r.num("fencing_token"), exp: r.str("expires_at")}
		case http.StatusServiceUnavailable:
			mustJSONError(t, "acquire on a full disk", r, http.StatusServiceUnavailable)
			refused = name
		default:
			t.Fatalf("acquire %s on a full disk: %d %s", name, r.status, r.body)
		}
	}
	if refused == "" {
		t.Fatal("20000 grants fitted on a full 3 MiB filesystem")
	}
	t.Logf("disk full after %d more grants; %s refused: %s", len(acked), refused, e.app.Store.LastError())
	e.waitHealth(http.StatusServiceUnavailable, time.Second)
	e.mustBeAvailable("tokB", refused, "a grant refused for a full disk")

	// Free the space: health recovers, writes succeed.
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	e.waitHealth(200, 5*time.Second)
	e.mustAcquire("tokB", refused, 3600)

	e.restart()
	e.mustHold("tokA", "before", before, "after restart")
	for name, h := range acked {
		e.mustHold("tokB", name, h, "grant acknowledged on an almost full disk, after restart")
	}
}

// TestNothingBuiltOnAFailedWrite: a write fails while a later operation on
// the same lock has already been computed from it in memory and queued
// behind it in the next batch. That later operation must not commit or be
// acknowledged: here alice's release fails (503: she still holds the lock),
// so bob's grant, computed from the released state, must fail too, and the
// lock must stay alice's, before and after a restart.
func TestNothingBuiltOnAFailedWrite(t *testing.T) {
	e := relStart(t, nil)
	alice := e.mustAcquire("tokA", "x", 3600)

	entered, gate := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	armed.Store(true)
	e.app.SetFaultHook(func() error {
		if armed.CompareAndSwap(true, false) {
			close(entered)
			<-gate // hold this batch until bob's grant is queued behind it
			return errors.New("injected: disk I/O error")
		}
		return nil
	})
	relc, acqc := make(chan relResp, 1), make(chan relResp, 1)
	go func() { relc <- e.release("tokA", "x", alice.lease) }()
	<-entered
	go func() { acqc <- e.acquire("tokB", "x", 60) }()
	for e.app.Store.Stats().Queued == 0 { // bob's grant is queued: no signal for it
		time.Sleep(time.Millisecond)
	}
	close(gate)
	mustJSONError(t, "alice's release in the failed batch", <-relc, http.StatusServiceUnavailable)
	if r := <-acqc; r.status != http.StatusServiceUnavailable {
		t.Fatalf("bob's grant, computed from alice's failed release, answered %d %s; want 503", r.status, r.body)
	}
	e.mustHold("tokA", "x", alice, "after the failed release")
	e.restart()
	e.mustHold("tokA", "x", alice, "after restart")
}
