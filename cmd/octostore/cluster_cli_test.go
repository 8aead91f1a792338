package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/tools/client"
)

// clusterMain runs one node of a cluster of embedded etcd members in
// process (tokA: alice, the admin key), on its own peer and client URLs,
// with peers as --cluster (and existing: --cluster-state existing), and
// closes it at cleanup. dir is its --etcd-dir.
type testNode struct {
	*Main
	peer, client, dir string
}

func startNode(t *testing.T, name, peers, peer, client, dir string, existing bool) *testNode {
	t.Helper()
	state := ""
	if existing {
		state = "existing"
	}
	m := mustRunMain(t, func(m *Main) {
		m.Config.StaticTokens = map[string]string{"tokA": "alice"}
		m.Config.AdminKey = adminKey
		m.Config.Cluster = ClusterConfig{Node: name, Peers: peers, State: state, EtcdDir: dir, EtcdClientURL: client,
			LeaderTTL: 2 * time.Second, HeartbeatMs: 50, ElectionMs: 500}
	})
	return &testNode{Main: m, peer: peer, client: client, dir: dir}
}

// clusterView is `cluster status --json`: GET /cluster as it came.
type clusterView struct {
	Node    string  `json:"node"`
	Leader  *string `json:"leader"`
	Members []struct {
		Name    string `json:"name"`
		PeerURL string `json:"peer_url"`
		APIURL  string `json:"api_url"`
		Healthy bool   `json:"healthy"`
	} `json:"members"`
}

// waitView runs `cluster status --json` against url until ok accepts its
// answer (a leader is being elected, a member joining), within 30 s.
func waitView(t *testing.T, url, what string, ok func(v clusterView) bool) clusterView {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last result
	for time.Now().Before(deadline) {
		last = octo(t, url, tokA, "cluster", "status", "--json")
		var v clusterView
		if last.code == exitOK && json.Unmarshal([]byte(last.stdout), &v) == nil && ok(v) {
			return v
		}
		time.Sleep(100 * time.Millisecond) // an election or a join in progress: nothing to wait on from outside
	}
	t.Fatalf("%s: not within 30 s; last: exit %d %s %s", what, last.code, last.stdout, last.stderr)
	return clusterView{}
}

func leads(name string) func(v clusterView) bool {
	return func(v clusterView) bool { return v.Leader != nil && *v.Leader == name }
}

// The cluster commands against a cluster of real nodes: `cluster status`
// (text and JSON) on any node; token administration through the API
// (`token create|list|revoke --url` with the admin key), a revoked token
// refused by the leader at once and by every node's own authenticator as
// soon as its token watch reports it; `cluster member list|add|remove`
// replacing members as docs/operations.md says (add prints the command
// that starts the new member, which joins and serves; remove takes it out
// again); usage errors and unknown members with their exit codes.
func TestClusterCommands(t *testing.T) {
	dir := t.TempDir()
	peer1, client1 := "http://"+freeAddr(t), "http://"+freeAddr(t)
	n1 := startNode(t, "n1", "n1="+peer1, peer1, client1, filepath.Join(dir, "n1.etcd"), false)
	url1 := n1.URL()
	waitView(t, url1, "n1 leads", leads("n1"))

	// cluster status: text and JSON.
	r := octo(t, url1, tokA, "cluster", "status").mustCode(t, exitOK, "cluster status")
	if !strings.Contains(r.stdout, "node n1, leader n1 since ") || !regexp.MustCompile(`(?m)^n1 +leader +yes +`+regexp.QuoteMeta(url1)).MatchString(r.stdout) {
		t.Fatalf("cluster status:\n%s", r.stdout)
	}
	octo(t, url1, "wrong", "cluster", "status").mustCode(t, exitAuth, "cluster status with a wrong token")

	// Token administration through the API: the only way in cluster mode.
	r = octo(t, url1, adminKey, "token", "create", "--user", "carol").mustCode(t, exitOK, "token create --url")
	carol := strings.TrimSpace(r.stdout)
	fp := regexp.MustCompile(`fingerprint ([0-9a-f]{8})`).FindStringSubmatch(r.stderr)
	if carol == "" || fp == nil {
		t.Fatalf("token create: stdout %q stderr %q", r.stdout, r.stderr)
	}
	octo(t, url1, carol, "lock", "acquire", "carol-lock").mustCode(t, exitOK, "carol's new token")
	if st, _ := get(t, url1+"/cluster", carol); st != 200 { // the node's own authenticator caches it
		t.Fatalf("GET /cluster with carol's token: %d", st)
	}
	r = octo(t, url1, adminKey, "token", "list", "--json").mustCode(t, exitOK, "token list --url")
	var listed struct {
		Tokens []struct {
			User, Source, Fingerprint string
		} `json:"tokens"`
		Total int `json:"total"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || listed.Total != 2 || strings.Contains(r.stdout, carol) {
		t.Fatalf("token list: %v %s (want alice's static token and carol's, never a token)", err, r.stdout)
	}
	octo(t, url1, tokA, "token", "list").mustCode(t, exitAuth, "token list with a user's token")
	octo(t, url1, adminKey, "token", "revoke", "--user", "nobody").mustCode(t, exitNotFound, "revoke an unknown user's token")
	r = octo(t, url1, adminKey, "token", "revoke", "--fingerprint", fp[1]).mustCode(t, exitOK, "token revoke --url")
	if want := "revoked " + fp[1] + " (user carol, source cli)"; !strings.Contains(r.stdout, want) {
		t.Fatalf("token revoke: %q, want %q", r.stdout, want)
	}
	octo(t, url1, carol, "lock", "status", "carol-lock").mustCode(t, exitAuth, "the revoked token at the leader")
	deadline := time.Now().Add(10 * time.Second)
	for st, _ := get(t, url1+"/cluster", carol); st != 401; st, _ = get(t, url1+"/cluster", carol) {
		if time.Now().After(deadline) {
			t.Fatalf("the node's own authenticator still accepts the revoked token after 10 s: %d", st)
		}
		time.Sleep(20 * time.Millisecond) // the watch reports the delete asynchronously
	}

	// Members: list, add (its printed command starts the new member), remove.
	r = octo(t, "", "", "cluster", "member", "list", "--etcd-endpoints", client1, "--json").mustCode(t, exitOK, "member list --json")
	var members []struct {
		ID         string   `json:"id"`
		Name       string   `json:"name"`
		PeerURLs   []string `json:"peer_urls"`
		ClientURLs []string `json:"client_urls"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &members); err != nil || len(members) != 1 || members[0].Name != "n1" ||
		members[0].ID == "" || members[0].PeerURLs[0] != peer1 || members[0].ClientURLs[0] != client1 {
		t.Fatalf("member list: %v %s", err, r.stdout)
	}
	octo(t, "", "", "cluster", "member", "add", "bad name", "http://127.0.0.1:1", "--etcd-endpoints", client1).mustCode(t, exitUsage, "member add with a bad name")
	octo(t, "", "", "cluster", "member", "add", "n2", "127.0.0.1:1", "--etcd-endpoints", client1).mustCode(t, exitUsage, "member add with a bad URL")
	octo(t, "", "", "cluster", "member", "remove", "nobody", "--etcd-endpoints", client1).mustCode(t, exitNotFound, "member remove nobody")
	peer2, client2 := "http://"+freeAddr(t), "http://"+freeAddr(t)
	r = octo(t, "", "", "cluster", "member", "add", "n2", peer2, "--etcd-endpoints", client1).mustCode(t, exitOK, "member add")
	m := regexp.MustCompile(`octostore serve --node n2 --cluster (\S+) --cluster-state existing --etcd-dir \./n2\.etcd`).FindStringSubmatch(r.stdout)
	if m == nil || m[1] != "n1="+peer1+",n2="+peer2 {
		t.Fatalf("member add printed:\n%s", r.stdout)
	}
	n2 := startNode(t, "n2", m[1], peer2, client2, filepath.Join(dir, "n2.etcd"), true)
	url2 := n2.URL()
	v := waitView(t, url2, "n2 joined, a leader elected, both healthy", func(v clusterView) bool {
		return v.Leader != nil && len(v.Members) == 2 && v.Members[0].Healthy && v.Members[1].Healthy
	})
	if v.Node != "n2" || v.Members[0].Name != "n1" || v.Members[1].Name != "n2" || v.Members[1].PeerURL != peer2 || v.Members[1].APIURL != url2 {
		t.Fatalf("cluster status on n2: %+v", v)
	}
	// n2 serves (forwarding, or leading): alice's lock is there, through it.
	r = octo(t, url2, tokA, "lock", "status", "carol-lock", "--json").mustCode(t, exitOK, "lock status through n2")
	if !strings.Contains(r.stdout, `"holder":"carol"`) {
		t.Fatalf("carol's lock through n2: %s", r.stdout)
	}
	r = octo(t, "", "", "cluster", "member", "list", "--etcd-endpoints", client2).mustCode(t, exitOK, "member list through n2's member")
	if !regexp.MustCompile(`(?m) n1 +`+regexp.QuoteMeta(peer1)).MatchString(r.stdout) || !regexp.MustCompile(`(?m) n2 +`+regexp.QuoteMeta(peer2)).MatchString(r.stdout) {
		t.Fatalf("member list:\n%s", r.stdout)
	}
	// Remove n2 (while it runs: two members need both for a quorum), then
	// stop it; n1 alone leads again.
	// etcd refuses (exit 6, retry) until n2 has been up for its health
	// interval: removing it earlier could cost the quorum.
	deadline = time.Now().Add(30 * time.Second)
	for r = octo(t, "", "", "cluster", "member", "remove", "n2", "--etcd-endpoints", client1); r.code == exitUnavailable; r = octo(t, "", "", "cluster", "member", "remove", "n2", "--etcd-endpoints", client1) {
		if !strings.Contains(r.stderr, "retry") || time.Now().After(deadline) {
			t.Fatalf("member remove n2: %s", r.stderr)
		}
		time.Sleep(500 * time.Millisecond) // etcd's health interval runs out
	}
	r.mustCode(t, exitOK, "member remove n2")
	if !strings.Contains(r.stdout, "member n2 removed") {
		t.Fatalf("member remove: %q", r.stdout)
	}
	if err := n2.Close(); err != nil {
		t.Logf("closing the removed node: %v", err) // its member was stopped by the removal
	}
	r = octo(t, "", "", "cluster", "member", "list", "--etcd-endpoints", client1, "--json").mustCode(t, exitOK, "member list after remove")
	if err := json.Unmarshal([]byte(r.stdout), &members); err != nil || len(members) != 1 || members[0].Name != "n1" {
		t.Fatalf("member list after remove: %v %s", err, r.stdout)
	}
	waitView(t, url1, "n1 leads alone again", func(v clusterView) bool { return leads("n1")(v) && len(v.Members) == 1 })
}

// Backup and restore in cluster mode, as docs/operations.md says: `backup
// --etcd-endpoints` writes a checked etcd snapshot (private), `cluster
// restore` makes a new member directory from it, and a node started on
// that directory has every lock (holder, fencing token) and token written
// before the snapshot, and none written after it.
func TestClusterBackupRestore(t *testing.T) {
	dir := t.TempDir()
	peer, client := "http://"+freeAddr(t), "http://"+freeAddr(t)
	n1 := startNode(t, "n1", "n1="+peer, peer, client, filepath.Join(dir, "n1.etcd"), false)
	waitView(t, n1.URL(), "n1 leads", leads("n1"))
	r := octo(t, n1.URL(), tokA, "lock", "acquire", "kept", "--ttl", "1h", "--json").mustCode(t, exitOK, "acquire")
	var lock struct {
		Token uint64 `json:"fencing_token"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &lock); err != nil || lock.Token == 0 {
		t.Fatalf("acquire: %v %s", err, r.stdout)
	}
	carol := strings.TrimSpace(octo(t, n1.URL(), adminKey, "token", "create", "--user", "carol").mustCode(t, exitOK, "token create").stdout)

	snap := filepath.Join(dir, "backup.snap")
	octo(t, "", "", "backup", "--etcd-endpoints", "").mustCode(t, exitUsage, "backup without OUT")
	r = octo(t, "", "", "backup", "--etcd-endpoints", client, snap, "--json").mustCode(t, exitOK, "backup --etcd-endpoints")
	var info struct {
		Path      string `json:"path"`
		Bytes     int64  `json:"bytes"`
		Revision  int64  `json:"revision"`
		TotalKeys int    `json:"total_keys"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || info.Path != snap || info.Bytes == 0 || info.Revision == 0 || info.TotalKeys == 0 {
		t.Fatalf("backup --json: %v %s", err, r.stdout)
	}
	if st, err := os.Stat(snap); err != nil || st.Size() != info.Bytes || st.Mode().Perm()&0o077 != 0 {
		t.Fatalf("the snapshot: %v %v", st, err)
	}
	r = octo(t, "", "", "backup", "--etcd-endpoints", client, filepath.Join(dir, "text.snap")).mustCode(t, exitOK, "backup, text")
	if !strings.Contains(r.stdout, "etcd snapshot written to ") || !strings.Contains(r.stdout, " keys, hash ") {
		t.Fatalf("backup: %q", r.stdout)
	}
	octo(t, "", "", "backup", "--etcd-endpoints", "http://"+freeAddr(t), filepath.Join(dir, "x.snap")).mustCode(t, exitUnavailable, "backup of no etcd")
	// After the snapshot: a lock and a token that the restore must not have.
	octo(t, n1.URL(), tokA, "lock", "acquire", "later").mustCode(t, exitOK, "acquire after the snapshot")
	later := strings.TrimSpace(octo(t, n1.URL(), adminKey, "token", "create", "--user", "dave").mustCode(t, exitOK, "token create after").stdout)
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}

	rpeer, rclient := "http://"+freeAddr(t), "http://"+freeAddr(t)
	rdir := filepath.Join(dir, "r1.etcd")
	octo(t, "", "", "cluster", "restore", "--node", "r1", snap).mustCode(t, exitUsage, "restore without --cluster")
	octo(t, "", "", "cluster", "restore", "--node", "r9", "--cluster", "r1="+rpeer, snap).mustCode(t, exitUsage, "restore of a node not in --cluster")
	r = octo(t, "", "", "cluster", "restore", "--node", "r1", "--cluster", "r1="+rpeer, "--etcd-dir", rdir, snap).mustCode(t, exitOK, "cluster restore")
	if !strings.Contains(r.stdout, "octostore serve --node r1 --cluster r1="+rpeer+" --etcd-dir "+rdir) {
		t.Fatalf("cluster restore printed:\n%s", r.stdout)
	}
	octo(t, "", "", "cluster", "restore", "--node", "r1", "--cluster", "r1="+rpeer, "--etcd-dir", rdir, snap).mustCode(t, exitFailure, "restore over a directory")
	if st, err := os.Stat(rdir); err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Fatalf("the restored directory: %v %v", st, err)
	}
	r1 := startNode(t, "r1", "r1="+rpeer, rpeer, rclient, rdir, false)
	waitView(t, r1.URL(), "r1 leads", leads("r1"))
	r = octo(t, r1.URL(), tokA, "lock", "status", "kept", "--json").mustCode(t, exitOK, "the restored lock")
	var got struct {
		Holder string `json:"holder"`
		Token  uint64 `json:"fencing_token"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Holder != "alice" || got.Token != lock.Token {
		t.Fatalf("restored lock: %v %s, want alice's with token %d", err, r.stdout, lock.Token)
	}
	if r = octo(t, r1.URL(), tokA, "lock", "status", "later", "--json").mustCode(t, exitOK, "a lock after the snapshot"); strings.Contains(r.stdout, `"holder"`) {
		t.Fatalf("a lock granted after the snapshot came back: %s", r.stdout)
	}
	octo(t, r1.URL(), carol, "lock", "list").mustCode(t, exitOK, "a token created before the snapshot")
	octo(t, r1.URL(), later, "lock", "list").mustCode(t, exitAuth, "a token created after the snapshot")
}

// cluster status names every member's role, and a member that is down
// shows "(down)" where its API URL would be (it has no registration), not
// an empty cell that shifts the columns.
func TestClusterRows(t *testing.T) {
	st := client.ClusterStatus{Node: "n2", Leader: "n1", Members: []client.ClusterMember{
		{Name: "n1", PeerURL: "http://p1", APIURL: "http://a1", Healthy: true},
		{Name: "n2", PeerURL: "http://p2", APIURL: "http://a2", Healthy: true},
		{Name: "n3", PeerURL: "http://p3"},
	}}
	got := fmt.Sprint(clusterRows(st))
	want := "[[n1 leader yes http://a1 http://p1] [n2 follower yes http://a2 http://p2] [n3 - no (down) http://p3]]"
	if got != want {
		t.Fatalf("rows %s, want %s", got, want)
	}
	st.Leader = ""
	if got := clusterRows(st)[0][1]; got != "follower" {
		t.Fatalf("without a leader, n1's role is %q", got)
	}
}
