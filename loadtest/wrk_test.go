package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/tools/client"
)

// The wrk scripts of bench-compare (loadtest/wrk/*.lua) against the real
// server: what they count is what the server did. The tests fail (do not
// skip) when wrk is not installed.

// runWrk runs wrk for a second with script and its arguments against url,
// with token, and returns the "KIND KEY N" counters it prints at the end.
func runWrk(t *testing.T, url, token, script string, args ...string) map[string]int64 {
	t.Helper()
	bin, err := exec.LookPath("wrk")
	if err != nil {
		t.Fatalf("wrk is needed for this test (apt-get install -y wrk): %v", err)
	}
	abs, err := filepath.Abs(filepath.Join("wrk", script))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-t2", "-c4", "-d1s", "--latency", "-s", abs, url, "--"}, args...)...)
	cmd.Env = append(os.Environ(), "OCTOSTORE_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	got := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && (f[0] == "lockcycle" || f[0] == "resource") {
			n, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				t.Fatalf("wrk line %q: %v", sc.Text(), err)
			}
			got[f[1]] = n
		}
	}
	if _, ok := got["requests"]; !ok {
		t.Fatalf("wrk printed no counters:\n%s", out)
	}
	return got
}

func TestWrkLockCycle(t *testing.T) {
	url := startServer(t)
	got := runWrk(t, url, srvTokA, "lock-cycle.lua", "wrkt", "64", "30")
	if got["acquired"] == 0 || got["refused"] != 0 || got["held"] != 0 {
		t.Fatalf("counters %v: want grants, no refusal, no lock found still held", got)
	}
	// Every request is an acquire or a release, and every answered acquire
	// but those whose release was still to be sent (at most one per
	// connection) was released.
	if got["acquired"]+got["released"] != got["requests"] || got["released"] > got["acquired"] || got["acquired"]-got["released"] > 4 {
		t.Fatalf("counters %v: want requests = acquired + released, at most 4 leases left", got)
	}
	c, err := client.New(url, srvTokA)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	locks, err := c.ListLocks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// wrk stops with up to one request per connection on the wire, which
	// the server still answers (an acquire more held, a release one less):
	// what is held is within 4 of what the counters leave.
	if n := int64(len(locks)); n > 4 || n < got["acquired"]-got["released"]-4 {
		t.Fatalf("%d locks held after the run, counters %v", n, got)
	}
	for _, l := range locks {
		if !strings.HasPrefix(l.Name, "wrkt-") {
			t.Fatalf("lock %q is not the script's", l.Name)
		}
	}

	// A wrong token: every answer is counted as refused, nothing as a cycle.
	got = runWrk(t, url, "not-a-token", "lock-cycle.lua", "wrkt", "64", "30")
	if got["acquired"] != 0 || got["released"] != 0 || got["refused"] != got["requests"] || got["requests"] == 0 {
		t.Fatalf("counters with a wrong token %v: want every request refused", got)
	}
}

func TestWrkResource(t *testing.T) {
	url := startServer(t)
	got := runWrk(t, url, srvTokA, "resource.lua", "ratelimit-check", "wrkt-rl", "50")
	if got["requests"] == 0 || got["refused"] != 0 {
		t.Fatalf("ratelimit-check counters %v: want checks, none refused", got)
	}
	c, err := client.New(url, srvTokA)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	limits, err := c.ListLimits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(limits) != 50 {
		t.Fatalf("%d limits after the run, want the script's 50", len(limits))
	}
	// A wrong token: every answer is counted as refused. (An unknown flag
	// is not: it evaluates to FLAG_NOT_FOUND with 200, which is why
	// bench-compare creates the flags first, with curl -f.)
	got = runWrk(t, url, "not-a-token", "resource.lua", "flag-eval", "wrkt-flag", "10")
	if got["requests"] == 0 || got["refused"] != got["requests"] {
		t.Fatalf("flag-eval counters with a wrong token %v: want every request refused", got)
	}
	pct := 50
	for i := 0; i < 10; i++ {
		if _, err := c.SetFlag(context.Background(), "wrkt-flag-"+strconv.Itoa(i), client.FlagSpec{Enabled: true, Percentage: &pct}); err != nil {
			t.Fatal(err)
		}
	}
	got = runWrk(t, url, srvTokA, "resource.lua", "flag-eval", "wrkt-flag", "10")
	if got["requests"] == 0 || got["refused"] != 0 {
		t.Fatalf("flag-eval counters %v: want evaluations, none refused", got)
	}
}
