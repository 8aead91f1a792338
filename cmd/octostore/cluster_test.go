package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/persistence"
	"github.com/octostore/octostore/persistence/etcdstore"
)

// The cluster flags: each has its environment variable, and the
// combinations no single flag can check are usage errors (exit 2).
func TestServeClusterFlags(t *testing.T) {
	cfg, err := parseServe(t, "--node", "n1", "--cluster", "n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380", "--leader-ttl", "3s",
		"--advertise-url", "http://10.0.0.1:3000", "--etcd-dir", "/data/n1", "--cluster-state", "existing")
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Cluster
	if !c.Enabled() || c.Node != "n1" || c.LeaderTTL != 3*time.Second || c.AdvertiseURL != "http://10.0.0.1:3000" ||
		c.EtcdDir != "/data/n1" || c.State != "existing" || !c.MoveRaftLeader || c.MaxTxnOps != etcdstore.DefaultMaxTxnOps ||
		c.EtcdClientURL != defaultEtcdClientURL {
		t.Fatalf("parsed %+v", c)
	}
	if cfg, err = parseServe(t, "--node", "n1", "--cluster", "n1=http://a:1", "--move-raft-leader=false"); err != nil || cfg.Cluster.MoveRaftLeader {
		t.Fatalf("--move-raft-leader=false: %+v %v", cfg.Cluster, err)
	}
	t.Setenv("OCTOSTORE_NODE", "x")
	t.Setenv("OCTOSTORE_ETCD_ENDPOINTS", "http://e1:2379, http://e2:2379")
	t.Setenv("OCTOSTORE_MAX_TXN_OPS", "64")
	cfg, err = parseServe(t)
	if err != nil || cfg.Cluster.Node != "x" || len(cfg.Cluster.Endpoints) != 2 || cfg.Cluster.Endpoints[1] != "http://e2:2379" || cfg.Cluster.MaxTxnOps != 64 {
		t.Fatalf("from the environment: %+v %v", cfg.Cluster, err)
	}
	os.Unsetenv("OCTOSTORE_NODE")
	os.Unsetenv("OCTOSTORE_ETCD_ENDPOINTS")
	os.Unsetenv("OCTOSTORE_MAX_TXN_OPS")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster", "n1=http://a:1"}, "--node"},
		{[]string{"--node", "n1"}, "--cluster"},
		{[]string{"--node", "n3", "--cluster", "n1=http://a:1,n2=http://b:1"}, "not in --cluster"},
		{[]string{"--node", "n1", "--cluster", "n1"}, "want n1=http"},
		{[]string{"--node", "n\x1b[2J", "--cluster", "n1=http://a:1"}, "--node"},
		{[]string{"--node", "n1", "--cluster", "n1=http://a:1,bad name=http://b:1"}, "member name"},
		{[]string{"--node", "n1", "--cluster", "n1=http://a:1", "--etcd-endpoints", "http://e:2379"}, "not both"},
		{[]string{"--node", "n1", "--cluster", "n1=http://a:1", "--leader-ttl", "500ms"}, "at least 1s"},
		{[]string{"--node", "n1", "--cluster", "n1=http://a:1", "--cluster-state", "old"}, "new or existing"},
		{[]string{"--node", "n1", "--cluster", "n1=http://a:1", "--advertise-url", "10.0.0.1:3000"}, "http://HOST:PORT"},
		{[]string{"--node", "n1", "--etcd-endpoints", "http://e:2379", "--max-txn-ops", "4"}, "at least 8"},
		{[]string{"--node", "n1", "--cluster", "n1=http://a:1", "--txns-in-flight", "0"}, "1 to 4"},
	} {
		_, err := parseServe(t, c.args...)
		if exitCodeOf(err) != exitUsage || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v (exit %d), want a usage error about %q", c.args, err, exitCodeOf(err), c.want)
		}
	}
}

// A one-member cluster in process: Main runs the cluster path (etcd member,
// registration, front, election, a term's stack on etcd), serves the API
// and GET /cluster, keeps a grant across a restart on the same etcd data,
// and Close frees every address.
func TestMainClusterModeOneNode(t *testing.T) {
	dir := t.TempDir()
	peer := "http://" + freeAddr(t)
	client := "http://" + freeAddr(t)
	run := func() *Main {
		return mustRunMain(t, func(m *Main) {
			m.Config.StaticTokens = map[string]string{"tokA": "alice"}
			m.Config.Cluster = ClusterConfig{Node: "n1", Peers: "n1=" + peer, EtcdDir: filepath.Join(dir, "n1.etcd"),
				EtcdClientURL: client, LeaderTTL: 2 * time.Second, HeartbeatMs: 50, ElectionMs: 500}
		})
	}
	m := run()
	hc := apitest.Client(t, &http.Client{Timeout: 10 * time.Second})
	var token uint64
	waitStatus(t, hc, "POST", m.URL()+"/locks/one/acquire", 200, func(b string) { token = tokenOf(b) })
	if st, b := getWith(t, hc, m.URL()+"/cluster", "tokA"); st != 200 || !strings.Contains(b, `"node":"n1","leader":"n1"`) || !strings.Contains(b, `"healthy":true`) {
		t.Fatalf("GET /cluster: %d %s", st, b)
	}
	if m.DB != nil || m.Cluster == nil || m.Cluster.Member == nil {
		t.Fatal("cluster mode opened SQLite, or no member")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{strings.TrimPrefix(peer, "http://"), strings.TrimPrefix(client, "http://"), m.Listener.Addr().String()} {
		if l, err := net.Listen("tcp", a); err != nil {
			t.Errorf("%s still taken after Close: %v", a, err)
		} else {
			l.Close()
		}
	}
	m = run()
	waitStatus(t, hc, "GET", m.URL()+"/locks/one", 200, func(b string) {
		if tokenOf(b) != token || !strings.Contains(b, `"holder":"alice"`) {
			t.Fatalf("after a restart on the same etcd data: %s, want alice's lock with token %d", b, token)
		}
	})
}

// waitStatus sends the request until it answers want (the first term may
// still be recovering: 503), then calls check with the body.
func waitStatus(t *testing.T, hc *http.Client, method, url string, want int, check func(body string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var body *strings.Reader
		if method == "POST" {
			body = strings.NewReader(`{"ttl_seconds":300}`)
		} else {
			body = strings.NewReader("")
		}
		req, _ := http.NewRequestWithContext(context.Background(), method, url, body)
		req.Header.Set("Authorization", "Bearer tokA")
		if method == "POST" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err == nil {
			var sb strings.Builder
			buf := make([]byte, 4096)
			for {
				n, rerr := resp.Body.Read(buf)
				sb.Write(buf[:n])
				if rerr != nil {
					break
				}
			}
			resp.Body.Close()
			if resp.StatusCode == want {
				check(sb.String())
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: no %d within 30 s (last %v)", method, url, want, err)
		}
		time.Sleep(50 * time.Millisecond) // a leader is being elected
	}
}

func tokenOf(body string) uint64 {
	i := strings.Index(body, `"fencing_token":`)
	if i < 0 {
		return 0
	}
	var n uint64
	for _, c := range body[i+len(`"fencing_token":`):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// A term revokes every dev token it finds in the store (a cluster serves
// more than loopback), logs each by fingerprint and user, never the token,
// and leaves the other tokens alone.
func TestTermRevokesDevTokens(t *testing.T) {
	db, err := persistence.Open(filepath.Join(t.TempDir(), "o.db"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := persistence.NewWriter(db, persistence.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store := persistence.NewStore(db, w)
	t.Cleanup(func() {
		store.Close()
		db.Close()
	})
	ctx := context.Background()
	dev, devInfo, err := db.CreateToken(ctx, "dev", persistence.SourceDev, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.CreateToken(ctx, "carol", persistence.SourceCLI, time.Now()); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	if err := revokeDevTokens(store, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	toks, err := store.ListTokens(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 1 || toks[0].Login != "carol" {
		t.Fatalf("after the term's check: %+v, want carol's token only", toks)
	}
	if l := logs.String(); !strings.Contains(l, devInfo.Fingerprint()) || strings.Contains(l, dev) {
		t.Fatalf("log %q: want the dev token's fingerprint, never the token", l)
	}
}
