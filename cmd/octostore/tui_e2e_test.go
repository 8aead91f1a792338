package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/tools/client"
)

// tmuxSession runs a command in a detached tmux session of its own server
// (socket), so that tests never touch a user's tmux.
type tmuxSession struct {
	t      *testing.T
	socket string
}

func newTmux(t *testing.T, width, height int, argv ...string) *tmuxSession {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is required for the terminal end-to-end test (apt-get install -y tmux)")
	}
	s := &tmuxSession{t: t, socket: fmt.Sprintf("octostore-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	s.run("new-session", "-d", "-s", "tui", "-x", fmt.Sprint(width), "-y", fmt.Sprint(height),
		"env TERM=xterm-256color "+strings.Join(quoted, " "))
	t.Cleanup(func() { exec.Command("tmux", "-L", s.socket, "kill-server").Run() })
	return s
}

func (s *tmuxSession) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-u", "-L", s.socket}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

func (s *tmuxSession) screen() string { return s.run("capture-pane", "-p", "-t", "tui") }

func (s *tmuxSession) keys(keys ...string) {
	s.run(append([]string{"send-keys", "-t", "tui"}, keys...)...)
}

// waitScreen polls the pane until cond holds for its text (the screen is
// the signal; each poll is cheap), failing after d.
func (s *tmuxSession) waitScreen(d time.Duration, what string, cond func(string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		scr := s.screen()
		if cond(scr) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after %s waiting for %s; screen:\n%s", d, what, scr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTUIEndToEnd runs `octostore tui` against `octostore serve` in a real
// pseudo-terminal (tmux): locks acquired by another client appear, and
// disappear when released or when they expire, with no key pressed.
func TestTUIEndToEnd(t *testing.T) {
	url := startServer(t)
	s := newTmux(t, 80, 24, octostoreBin, "tui", "--url", url, "--token", adminKey)
	s.waitScreen(15*time.Second, "the view to go live", func(scr string) bool {
		return strings.Contains(scr, "live") && strings.Contains(scr, "NAME")
	})

	alice, err := client.New(url, tokA, // every exchange checked against docs/openapi.yaml
		client.WithTransport(apitest.FastTransport(t, nil)), client.WithHTTPClient(apitest.Client(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := alice.Acquire(ctx, "e2e-deploy", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	scr := s.waitScreen(10*time.Second, "the acquired lock", func(scr string) bool {
		return lineWith(scr, "e2e-deploy", "alice") != ""
	})
	if line := lineWith(scr, "e2e-deploy", "alice"); !strings.Contains(line, fmt.Sprint(l.FencingToken)) {
		t.Fatalf("row without its fencing token: %q", line)
	}

	// The detail pane shows the lock's events.
	s.keys("Enter")
	s.waitScreen(5*time.Second, "the detail pane", func(scr string) bool {
		return strings.Contains(scr, "held by alice") && strings.Contains(scr, "lock.acquired")
	})
	s.keys("Escape")

	if err := alice.Release(ctx, "e2e-deploy", l.LeaseID); err != nil {
		t.Fatal(err)
	}
	s.waitScreen(10*time.Second, "the released lock to disappear", func(scr string) bool {
		return !strings.Contains(scr, "e2e-deploy")
	})

	// An expiry shows up without any request or key.
	if _, err := alice.Acquire(ctx, "e2e-short", time.Second); err != nil {
		t.Fatal(err)
	}
	s.waitScreen(10*time.Second, "the short lock", func(scr string) bool { return strings.Contains(scr, "e2e-short") })
	s.waitScreen(10*time.Second, "the short lock to expire", func(scr string) bool { return !strings.Contains(scr, "e2e-short") })

	// Filter, then quit.
	s.keys("/", "x", "y", "z", "Enter")
	s.waitScreen(5*time.Second, "the filter", func(scr string) bool { return strings.Contains(scr, "filter /xyz") })
	s.keys("q")
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The session ends with the program (tmux destroys it, and its
		// server exits with the last session).
		out, err := exec.Command("tmux", "-L", s.socket, "list-panes", "-t", "tui", "-F", "#{pane_dead}").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("octostore tui still running 10s after q; screen:\n%s", s.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTUISemaphoresSessionsDelayWaiters runs `octostore tui` against
// `octostore serve` in tmux for the views of issue 16: a semaphore's slots
// with their metadata, a session and the lock it holds, a lock in
// lock-delay, and the waiters queued on a lock.
func TestTUISemaphoresSessionsDelayWaiters(t *testing.T) {
	url := startServer(t)
	checked := []client.Option{client.WithTransport(apitest.FastTransport(t, nil)), client.WithHTTPClient(apitest.Client(t, nil))}
	alice, err := client.New(url, tokA, checked...)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := client.New(url, tokB, checked...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// A slot taken before the view opens (one call: no renewal event will
	// come for it within the test) shows from GET /semaphores.
	if _, err := bob.AcquireSemaphore(ctx, "e2e-early", 3, time.Hour, client.AcquireOptions{}); err != nil {
		t.Fatal(err)
	}
	s := newTmux(t, 80, 24, octostoreBin, "tui", "--url", url, "--token", adminKey)
	s.waitScreen(15*time.Second, "the view to go live", func(scr string) bool {
		return strings.Contains(scr, "live") && strings.Contains(scr, "NAME")
	})

	// A semaphore slot, with its metadata in the detail pane.
	if _, err := alice.AcquireSemaphore(ctx, "e2e-pool", 2, time.Minute, client.AcquireOptions{Metadata: ptrTo("host-e2e pid 1")}); err != nil {
		t.Fatal(err)
	}
	s.keys("Tab")
	s.waitScreen(10*time.Second, "the semaphore", func(scr string) bool { return lineWith(scr, "e2e-pool", "1/2", "alice") != "" })
	s.waitScreen(5*time.Second, "the slot held before the view opened", func(scr string) bool { return lineWith(scr, "e2e-early", "1/3", "bob") != "" })
	s.keys("j") // e2e-pool, the last row, below e2e-early
	s.keys("Enter")
	s.waitScreen(5*time.Second, "the semaphore's slots", func(scr string) bool {
		return strings.Contains(scr, "e2e-pool  limit 2 · 1 held · 0 waiting") && lineWith(scr, "token 1", "alice", "host-e2e pid 1") != ""
	})
	s.keys("Escape")
	// Wait for the pane to close before the next key: an Escape and a Tab
	// read together are alt+tab to the terminal reader.
	s.waitScreen(5*time.Second, "the detail pane closed", func(scr string) bool { return !strings.Contains(scr, "e2e-pool  limit 2") })

	// A session and the lock it holds (listed while the view shows).
	s.keys("Tab")
	sess, err := alice.CreateSession(ctx, time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AcquireWith(ctx, "e2e-held-by-session", 0, client.AcquireOptions{SessionID: sess.SessionID}); err != nil {
		t.Fatal(err)
	}
	s.waitScreen(10*time.Second, "the session", func(scr string) bool {
		return lineWith(scr, sess.SessionID[:8], "alice", "e2e-held-by-session") != ""
	})
	s.keys("BTab", "BTab") // back to the locks

	// The waiters queued on a lock, in its detail pane.
	if _, err := bob.Acquire(ctx, "e2e-queue", time.Minute); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	waited := make(chan error, 1)
	go func() {
		_, err := alice.AcquireWith(wctx, "e2e-queue", time.Minute, client.AcquireOptions{Wait: time.Minute})
		waited <- err
	}()
	s.keys("/", "e", "2", "e", "-", "q", "Enter", "Enter")
	s.waitScreen(10*time.Second, "the waiter", func(scr string) bool {
		return strings.Contains(scr, "e2e-queue  held by bob") && strings.Contains(scr, "waiters 1")
	})
	cancel()
	<-waited
	// One key at a time: two escapes in one write read as alt+escape.
	s.keys("Escape")
	s.waitScreen(5*time.Second, "the pane closed", func(scr string) bool { return !strings.Contains(scr, "waiters") })
	s.keys("Escape")
	s.waitScreen(5*time.Second, "the filter cleared", func(scr string) bool { return !strings.Contains(scr, "filter /") })

	// A lock lost by expiry with a lock-delay shows until the delay is over.
	if _, err := bob.AcquireWith(ctx, "e2e-delay", time.Second, client.AcquireOptions{LockDelay: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	s.waitScreen(10*time.Second, "the lock in lock-delay", func(scr string) bool { return lineWith(scr, "e2e-delay", "bob", "delayed") != "" })
	s.waitScreen(10*time.Second, "the end of the lock-delay", func(scr string) bool { return !strings.Contains(scr, "e2e-delay") })
}

func ptrTo(s string) *string { return &s }

// TestTUIWrongToken: a refused token is said in full on an 80-column
// terminal, and the view stops retrying.
func TestTUIWrongToken(t *testing.T) {
	url := startServer(t)
	s := newTmux(t, 80, 24, octostoreBin, "tui", "--url", url, "--token", "wrong-token")
	scr := s.waitScreen(15*time.Second, "the refusal", func(scr string) bool {
		return strings.Contains(scr, "unauthorized: check --token")
	})
	if strings.Contains(scr, "retry in") {
		t.Fatalf("still retrying:\n%s", scr)
	}
}

// lineWith returns the first line containing every sub.
func lineWith(screen string, subs ...string) string {
	for _, l := range strings.Split(screen, "\n") {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			return l
		}
	}
	return ""
}
