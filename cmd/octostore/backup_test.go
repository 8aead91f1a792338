package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd/apitest"
)

// bkOp is one acknowledged lock operation of the backup test's load.
type bkOp struct {
	invoked, acked time.Time
	held           bool   // state after the operation
	lease          string // lease held after it ("" when released)
}

// TestBackupUnderLoadRestores runs `octostore backup` (the real binary, a
// separate process) while a server commits grants and releases, restores
// the copy into a fresh server, and checks it: every lock's state in the
// copy is the state after an operation that was acknowledged before the
// backup began or one that started before it ended (never older, never
// newer), and locks first touched after the backup are absent.
func TestBackupUnderLoadRestores(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.db")
	tokens := map[string]string{}
	for w := 0; w < 4; w++ {
		tokens[fmt.Sprintf("bk-tok-%d", w)] = fmt.Sprintf("bk%d", w)
	}
	srv := mustRunMain(t, func(m *Main) { m.Config.DBPath, m.Config.StaticTokens = live, tokens })
	hc := &http.Client{Timeout: 10 * time.Second}
	post := func(base, tok, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := apitest.Client(t, hc).Do(req) // checked against docs/openapi.yaml
		if err != nil {
			t.Error(err)
			return 0, nil
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}

	var mu sync.Mutex
	hist := map[string][]bkOp{} // lock → its operations, in order
	owner := map[string]string{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			tok := fmt.Sprintf("bk-tok-%d", w)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("bk-%d-%d", w, i)
				start := time.Now()
				code, m := post(srv.URL(), tok, "/locks/"+name+"/acquire", `{"ttl_seconds":3600}`)
				if code != 200 {
					t.Errorf("acquire %s: %d %v", name, code, m)
					return
				}
				lease, _ := m["lease_id"].(string)
				mu.Lock()
				owner[name] = tok
				hist[name] = append(hist[name], bkOp{invoked: start, acked: time.Now(), held: true, lease: lease})
				mu.Unlock()
				if i%3 == 0 {
					start := time.Now()
					if code, m := post(srv.URL(), tok, "/locks/"+name+"/release", `{"lease_id":"`+lease+`"}`); code != 200 {
						t.Errorf("release %s: %d %v", name, code, m)
						return
					}
					mu.Lock()
					hist[name] = append(hist[name], bkOp{invoked: start, acked: time.Now()})
					mu.Unlock()
				}
			}
		}(w)
	}
	for {
		mu.Lock()
		n := len(hist)
		mu.Unlock()
		if n >= 300 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}

	out := filepath.Join(dir, "copy.db")
	began := time.Now()
	cmd := exec.Command(octostoreBin, "backup", "--db", live, "--json", out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("octostore backup: %v\n%s", err, stderr.String())
	}
	ended := time.Now()
	var info struct {
		Bytes, Locks  int64
		SchemaVersion int `json:"schema_version"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil || info.Locks == 0 {
		t.Fatalf("backup output %q: %v", stdout.String(), err)
	}
	time.Sleep(100 * time.Millisecond) // more load after the backup
	close(stop)
	wg.Wait()
	t.Logf("backup took %s: %s", ended.Sub(began).Round(time.Millisecond), strings.TrimSpace(stdout.String()))

	// Backing up onto an existing file is refused (exit 1, file untouched).
	again := exec.Command(octostoreBin, "backup", "--db", live, out)
	if err := again.Run(); err == nil {
		t.Fatal("backup over an existing file succeeded")
	}

	// Restore: the copy is the database of a new server.
	restoredPath := filepath.Join(dir, "restored.db")
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(restoredPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	restored := mustRunMain(t, func(m *Main) { m.Config.DBPath, m.Config.StaticTokens = restoredPath, tokens })

	checked, inFlight, after := 0, 0, 0
	for name, ops := range hist {
		req, _ := http.NewRequest("GET", restored.URL()+"/locks/"+name, nil)
		req.Header.Set("Authorization", "Bearer "+owner[name])
		resp, err := apitest.Client(t, hc).Do(req) // checked against docs/openapi.yaml
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		gotHeld := m["status"] == "held"
		gotLease, _ := m["lease_id"].(string)
		// Possible states: after the last op acknowledged before the backup
		// began (or "never touched"), up to after the last op invoked
		// before it ended.
		var possible []bkOp
		lo := -1
		for i, op := range ops {
			if op.acked.Before(began) {
				lo = i
			}
		}
		if lo == -1 {
			possible = append(possible, bkOp{}) // not acknowledged before: may be absent
		}
		for i := max(lo, 0); i < len(ops) && ops[i].invoked.Before(ended); i++ {
			possible = append(possible, ops[i])
		}
		switch {
		case lo >= 0 && len(possible) == 1:
			checked++
		case lo >= 0:
			inFlight++
		default:
			after++
		}
		ok := false
		for _, p := range possible {
			ok = ok || (p.held == gotHeld && (!gotHeld || p.lease == gotLease))
		}
		if !ok {
			t.Errorf("lock %s in the backup: held=%v lease=%s; possible states %+v (backup %s .. %s)", name, gotHeld, gotLease, possible,
				began.Format(time.StampMicro), ended.Format(time.StampMicro))
		}
	}
	if checked == 0 || after == 0 {
		t.Fatalf("the load did not straddle the backup: %d settled before, %d after", checked, after)
	}
	t.Logf("restored copy: %d locks settled before the backup match exactly, %d in flight during it match one side, %d touched after it are absent or in flight", checked, inFlight, after)
}
