// Package servertest runs the real octostore binary for end-to-end tests:
// Build compiles cmd/octostore, Start runs it and waits for the line it
// prints once it accepts connections ("listening on URL"). The CLI tests
// (cmd/octostore), the crash tests (tools/crashtest) and the client's
// contract suite (tools/client/realtest) share it.
package servertest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles github.com/octostore/octostore/cmd/octostore into
// dir/octostore (with the race detector when race) and returns its path.
// Build output goes into the error.
func Build(dir string, race bool) (string, error) {
	bin := dir + "/octostore"
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "github.com/octostore/octostore/cmd/octostore")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out.String())
	}
	return bin, nil
}

// Proc is one running octostore process.
type Proc struct {
	Cmd  *exec.Cmd
	URL  string        // what followed "listening on "
	Done chan struct{} // closed when the process has exited
	Err  error         // Wait's result, valid after Done
}

// Start runs bin with args, its stderr to stderr (nil: discarded), and
// waits at most timeout for its "listening on URL" line. If the process
// exits first or the time runs out (then it is killed), the error says so;
// the caller adds what it logged.
func Start(bin string, args []string, stderr io.Writer, timeout time.Duration) (*Proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{Cmd: cmd, Done: make(chan struct{})}
	urlc := make(chan string, 1)
	read := make(chan struct{})
	go func() { // reads stdout to its end, so the process never blocks on it
		defer close(read)
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok && !sent {
				urlc <- strings.TrimSpace(u)
				sent = true
			}
		}
		if !sent {
			close(urlc)
		}
		_, _ = io.Copy(io.Discard, out) // after a line too long for the scanner
	}()
	go func() {
		<-read // Wait closes the pipe: only after the reader is done with it
		p.Err = cmd.Wait()
		close(p.Done)
	}()
	select {
	case u, ok := <-urlc:
		if !ok {
			<-p.Done
			return nil, fmt.Errorf("%s exited before listening (%v)", strings.Join(args, " "), p.Err)
		}
		p.URL = u
		return p, nil
	case <-time.After(timeout):
		p.Kill()
		return nil, fmt.Errorf("%s did not print its address within %s", strings.Join(args, " "), timeout)
	}
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.Done
}

// Stop sends SIGTERM and waits at most timeout for the process to exit
// (then kills it); the error is its exit status or the timeout.
func (p *Proc) Stop(timeout time.Duration) error {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.Done:
		return p.Err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("did not stop within %s of SIGTERM", timeout)
	}
}

// BuildAndRun is a TestMain body for packages whose tests run the binary:
// it builds it into a temporary directory (see Build), stores its path in
// *bin, runs the tests and removes the directory. It returns m.Run's exit
// code (1 if the build fails, with the build output on stderr).
func BuildAndRun(m *testing.M, race bool, bin *string) int {
	dir, err := os.MkdirTemp("", "octostore-test-")
	if err == nil {
		*bin, err = Build(dir, race)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "build octostore:", err)
		os.RemoveAll(dir)
		return 1
	}
	defer os.RemoveAll(dir)
	return m.Run()
}

// Serve runs `bin serve --addr 127.0.0.1:0 --log-level warn` with args
// added (a temporary --db unless args name one), fails t if it does not
// start within a minute (with what it logged), and stops it with SIGTERM
// when the test ends.
func Serve(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	all := []string{"serve", "--addr", "127.0.0.1:0", "--log-level", "warn"}
	if !slices.Contains(args, "--db") {
		all = append(all, "--db", filepath.Join(t.TempDir(), "octostore.db"))
	}
	var stderr Buffer
	p, err := Start(bin, append(all, args...), &stderr, time.Minute)
	if err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	t.Cleanup(func() {
		if err := p.Stop(30 * time.Second); err != nil {
			t.Errorf("serve after SIGTERM: %v: %s", err, stderr.String())
		}
	})
	return p
}

// Buffer is a bytes.Buffer that one goroutine may write (a process's
// stderr, a server's log) while another reads it. The zero value is ready.
type Buffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

// Write appends p.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
