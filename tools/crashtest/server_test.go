package crashtest

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	flagCycles = flag.Int("crash.cycles", 3, "kill -9 / restart cycles of TestCrashLoop")
	flagRace   = flag.Bool("crash.race", false, "build the server with -race")
	flagKeep   = flag.Bool("crash.keep", false, "keep the database and logs of a failed run (prints the path)")
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds cmd/octostore once per test process.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "octostore-crashtest-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "octostore")
		args := []string{"build", "-o", binPath}
		if *flagRace {
			args = append(args, "-race")
		}
		args = append(args, "github.com/octostore/octostore/cmd/octostore")
		cmd := exec.Command("go", args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is one run of `octostore serve`.
type proc struct {
	cmd  *exec.Cmd
	url  string
	logs *os.File
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done
}

// serverConfig is how every run of one test is started.
type serverConfig struct {
	db     string
	tokens map[string]string // user → token
	extra  []string          // more serve flags
	logDir string
}

func (c serverConfig) args() []string {
	var parts []string
	for u, tok := range c.tokens {
		parts = append(parts, u+":"+tok)
	}
	args := []string{"serve", "--addr", "127.0.0.1:0", "--db", c.db, "--static-tokens", strings.Join(parts, ","),
		"--admin-key", "crash-admin", "--log-level", "warn"}
	return append(args, c.extra...)
}

// start runs the server and waits for its "listening on" line.
func start(t testing.TB, c serverConfig, run int) *proc {
	t.Helper()
	logs, err := os.Create(filepath.Join(c.logDir, fmt.Sprintf("server-%03d.log", run)))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t), c.args()...)
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: logs, done: make(chan struct{})}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if u, ok := strings.CutPrefix(line, "listening on "); ok && !sent {
				urlc <- u
				sent = true
			}
		}
		if !sent {
			close(urlc)
		}
	}()
	go func() {
		p.err = cmd.Wait()
		logs.Close()
		close(p.done)
	}()
	select {
	case u, ok := <-urlc:
		if !ok {
			<-p.done
			t.Fatalf("server run %d exited before listening (%v):\n%s", run, p.err, tail(logs.Name()))
		}
		p.url = u
	case <-time.After(60 * time.Second):
		p.kill()
		t.Fatalf("server run %d did not start listening within 60s:\n%s", run, tail(logs.Name()))
	}
	return p
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
		t.Fatalf("server did not stop within 30s of SIGTERM:\n%s", tail(p.logs.Name()))
	}
	if p.err != nil {
		t.Fatalf("server exited with %v after SIGTERM:\n%s", p.err, tail(p.logs.Name()))
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
