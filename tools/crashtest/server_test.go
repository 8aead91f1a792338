package crashtest

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/tools/servertest"
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
		if buildErr == nil {
			binPath, buildErr = servertest.Build(binDir, *flagRace)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is one run of `octostore serve`.
type proc struct {
	*servertest.Proc
	logs *os.File
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
	sp, err := servertest.Start(binary(t), c.args(), logs, 60*time.Second)
	if err != nil {
		logs.Close()
		t.Fatalf("server run %d: %v:\n%s", run, err, tail(logs.Name()))
	}
	p := &proc{Proc: sp, logs: logs}
	go func() {
		<-sp.Done
		logs.Close()
	}()
	return p
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() { p.Kill() }

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatalf("server after SIGTERM: %v:\n%s", err, tail(p.logs.Name()))
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
