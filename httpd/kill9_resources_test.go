package httpd_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/httpd/apitest"
)

// TestKill9ResourcesChild is the server process TestKill9Resources kills.
func TestKill9ResourcesChild(t *testing.T) {
	db := os.Getenv("OCTOSTORE_KILL9_DB")
	if db == "" {
		t.Skip("helper process of TestKill9Resources")
	}
	_, err := httpd.StartTestServer(t, httpd.TestOptions{
		DBPath: db, StaticTokens: map[string]string{rsAlice: "alice"}, Stdout: os.Stdout,
	})
	if err != nil {
		fmt.Println("start failed:", err)
		os.Exit(1)
	}
	select {} // until SIGKILL
}

// Writers hammer flags, config keys and limits of a server process, which
// is killed with SIGKILL mid-stream. After a restart on the same database:
// every acknowledged flag and config write is there (or the one write that
// was in flight, never anything older), every acknowledged config version
// holds the value it was acknowledged with, versions never repeat, and
// rate-limit counters never exceed what was admitted.
func TestKill9Resources(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a server process")
	}
	dbPath := filepath.Join(t.TempDir(), "db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9ResourcesChild$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), "OCTOSTORE_KILL9_DB="+dbPath)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	sc := bufio.NewScanner(out)
	url := ""
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
			url = u
			break
		}
	}
	if url == "" {
		t.Fatal("the child server did not start")
	}
	go io.Copy(io.Discard, out)

	e := &rsEnv{url: url}
	const writers = 4
	type flagAck struct{ last, inflight int } // percentages
	type cfgAck struct {
		versions map[int64]string // acknowledged version → value sent
		inflight string
	}
	var (
		mu      sync.Mutex
		flags   = map[string]*flagAck{}
		configs = map[string]*cfgAck{}
		admits  = map[string]int{}
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		acked   int
	)
	send := func(method, path, body string) (rsReply, bool) {
		req := strings.NewReader(body)
		r, err := apitest.Client(t, rsHTTP).Do(mustReq(t, method, e.url+path, req))
		if err != nil {
			return rsReply{}, false
		}
		defer r.Body.Close()
		b, err := io.ReadAll(r.Body)
		if err != nil || r.StatusCode != 200 {
			return rsReply{}, false
		}
		return rsReply{status: r.StatusCode, body: b}, true
	}
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			flag, key, limit := fmt.Sprintf("f%d", g), fmt.Sprintf("k%d", g), fmt.Sprintf("l%d", g)
			mu.Lock()
			flags[flag] = &flagAck{last: -1, inflight: -1}
			configs[key] = &cfgAck{versions: map[int64]string{}}
			mu.Unlock()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				pct := i % 101
				mu.Lock()
				flags[flag].inflight = pct
				mu.Unlock()
				if _, ok := send("PUT", "/flags/"+flag, fmt.Sprintf(`{"enabled":true,"percentage":%d}`, pct)); !ok {
					return
				}
				value := fmt.Sprintf(`{"g":%d,"i":%d,"pad":"%s"}`, g, i, strings.Repeat("x", i%50))
				mu.Lock()
				flags[flag].last, flags[flag].inflight = pct, -1
				configs[key].inflight = value
				acked++
				mu.Unlock()
				r, ok := send("PUT", "/config/"+key, `{"value":`+value+`}`)
				if !ok {
					return
				}
				var m struct{ Version int64 }
				json.Unmarshal(r.body, &m)
				mu.Lock()
				configs[key].versions[m.Version] = value
				configs[key].inflight = ""
				acked++
				mu.Unlock()
				r, ok = send("POST", "/limits/"+limit+"/check", `{"max_requests":10000,"window_seconds":3600}`)
				if !ok {
					return
				}
				if strings.Contains(string(r.body), `"allowed":true`) {
					mu.Lock()
					admits[limit]++
					mu.Unlock()
				}
				// a token bucket (refilled by one token a day per 10,000: about
				// nothing during the test), two tokens a check
				r, ok = send("POST", "/limits/b"+limit+"/check", `{"max_requests":10000,"window_seconds":86400,"algorithm":"token_bucket","cost":2}`)
				if !ok {
					return
				}
				if strings.Contains(string(r.body), `"allowed":true`) {
					mu.Lock()
					admits["b"+limit] += 2
					mu.Unlock()
				}
			}
		}()
	}
	// let a few hundred writes be acknowledged, then kill -9
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := acked
		mu.Unlock()
		if n >= 400 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling the writers' progress
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	cmd.Wait()
	close(stop)
	wg.Wait()
	if acked < 100 {
		t.Fatalf("only %d writes acknowledged before the kill", acked)
	}

	// restart in process on the same database
	opts := rsOptions(t)
	opts.DBPath = dbPath
	opts.StaticTokens = map[string]string{rsAlice: "alice"}
	e2 := &rsEnv{opts: opts}
	e2.start(t)
	for flag, a := range flags {
		m := e2.do(t, "GET", "/flags?owner=alice", rsAlice, "").list(t, "flags")
		var got int64 = -2
		for _, f := range m {
			if f["name"] == flag {
				got = num(t, f["percentage"])
			}
		}
		if a.last >= 0 && got != int64(a.last) && got != int64(a.inflight) {
			t.Errorf("flag %s: percentage %d after restart, acknowledged %d (in flight %d)", flag, got, a.last, a.inflight)
		}
	}
	for key, a := range configs {
		hist := e2.do(t, "GET", "/config/"+key+"/history?limit=100", rsAlice, "") // every kept version: one page
		if len(a.versions) == 0 {
			continue
		}
		var h struct {
			Versions []struct {
				Version int64
				Value   json.RawMessage
			}
		}
		if err := json.Unmarshal(hist.body, &h); err != nil {
			t.Fatalf("history of %s: %s", key, hist)
		}
		stored := map[int64]string{}
		for _, v := range h.Versions {
			stored[v.Version] = string(v.Value)
		}
		var newest int64
		for v, value := range a.versions {
			newest = max(newest, v)
			if got, ok := stored[v]; (ok || v > h.Versions[0].Version-100) && got != value {
				t.Errorf("config %s version %d: %q after restart, acknowledged %q", key, v, got, value)
			}
		}
		cur := h.Versions[0]
		if cur.Version != newest && !(cur.Version == newest+1 && string(cur.Value) == a.inflight) {
			t.Errorf("config %s: current version %d, newest acknowledged %d", key, cur.Version, newest)
		}
		// versions never repeat: the next write gets a fresh one
		m := e2.do(t, "PUT", "/config/"+key, rsAlice, `{"value":"after"}`).want(t, 200).obj(t)
		if v := num(t, m["version"]); v != cur.Version+1 || a.versions[v] != "" {
			t.Errorf("config %s: version %d after restart reuses an acknowledged one (newest %d)", key, v, newest)
		}
	}
	// Counters are written behind (at most once per flush interval per
	// limit): a kill -9 may lose the last of them, never invent any; for
	// the token buckets (b…) the count is the tokens in use.
	listed := e2.do(t, "GET", "/limits", rsAlice, "").list(t, "limits")
	for limit, n := range admits {
		var got int64
		for _, l := range listed {
			if l["name"] == limit {
				got = num(t, l["current_count"])
			}
		}
		if got > int64(n)+2 {
			t.Errorf("limit %s: %d counted after restart, only %d admitted (+1 check in flight)", limit, got, n)
		}
		t.Logf("limit %s: %d admitted, %d counted after kill -9 (lost %d)", limit, n, got, int64(n)-got)
	}
	t.Logf("%d acknowledged flag/config writes checked", acked)
}

func mustReq(t *testing.T, method, url string, body io.Reader) *http.Request {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+rsAlice)
	req.Header.Set("Content-Type", "application/json")
	return req
}
