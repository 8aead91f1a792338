package main

// `octostore serve` in cluster mode (issue 14; docs/architecture.md
// "Cluster mode"): the node's etcd (an embedded member, or a client of an
// external cluster), its registration, the front that serves the API
// (forwarding to the leader), the election, and — for each term this node
// leads — a stack on an etcd store fenced by the term.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/actors/names"
	"github.com/octostore/octostore/httpd"
	"github.com/octostore/octostore/persistence"
	"github.com/octostore/octostore/persistence/etcdstore"
)

// ClusterConfig is the cluster part of ServeConfig: one field per flag.
// Cluster mode is on when Node is set.
type ClusterConfig struct {
	Node string // --node: this node's name (its etcd member's name)
	// Peers is --cluster: "n1=http://10.0.0.1:2380,n2=…": every embedded
	// member's peer URL. Empty with Endpoints.
	Peers string
	// State is --cluster-state: "new" bootstraps the cluster of Peers;
	// "existing" joins a running one (after `octostore cluster member add`).
	State string
	// EtcdDir is --etcd-dir, the embedded member's data (default
	// ./<node>.etcd).
	EtcdDir string
	// EtcdClientURL is --etcd-client-url: where etcd clients (etcdctl,
	// backup, cluster member, token) reach the embedded member.
	EtcdClientURL string
	// Endpoints is --etcd-endpoints: an external etcd cluster instead of an
	// embedded member.
	Endpoints []string
	// AdvertiseURL is --advertise-url: where the other nodes forward
	// requests to this one (default http:// + the listener's address).
	AdvertiseURL string
	// LeaderTTL is --leader-ttl: the leader's session lease.
	LeaderTTL time.Duration
	// MaxTxnOps is --max-txn-ops: writes per etcd transaction with an
	// external etcd (its --max-txn-ops); an embedded member uses its own.
	MaxTxnOps int
	// TxnsInFlight is --txns-in-flight: the leader's etcd transactions in
	// flight at once (etcdstore.Options.TxnsInFlight).
	TxnsInFlight int
	// MoveRaftLeader is --move-raft-leader (default on): after winning, the
	// leader hands etcd's Raft leadership to another member (embedded
	// members only), so that its own death costs no etcd election and no
	// renewal of every lease (a new Raft leader extends them all by their
	// TTL, the dead leader's session included).
	MoveRaftLeader bool
	// HeartbeatMs and ElectionMs are the embedded member's Raft heartbeat
	// interval and election timeout (--etcd-heartbeat-ms,
	// --etcd-election-ms; etcd's defaults 100 and 1000).
	HeartbeatMs, ElectionMs uint
}

// Enabled reports whether the configuration asks for cluster mode.
func (c *ClusterConfig) Enabled() bool {
	return c.Node != "" || c.Peers != "" || len(c.Endpoints) > 0
}

// ClusterStates are --cluster-state's values.
var clusterStates = []string{"new", "existing"}

// validate checks the cluster flags together (usage errors).
func (c *ClusterConfig) validate() error {
	if !c.Enabled() {
		return nil
	}
	switch {
	case c.Node == "":
		return errors.New("cluster mode needs --node NAME (this node's name in --cluster)")
	case !names.Login.Valid(c.Node):
		// It is shown by GET /cluster, the CLI and the terminal view.
		return fmt.Errorf("--node %q: %s", c.Node, names.Login.Requirement())
	case c.Peers == "" && len(c.Endpoints) == 0:
		return errors.New("cluster mode needs --cluster n1=URL,… (embedded etcd) or --etcd-endpoints URL,… (external etcd)")
	case c.Peers != "" && len(c.Endpoints) > 0:
		return errors.New("give --cluster (embedded etcd) or --etcd-endpoints (external etcd), not both")
	case c.LeaderTTL < time.Second:
		return fmt.Errorf("--leader-ttl %s: at least 1s (etcd leases count whole seconds)", c.LeaderTTL)
	}
	if c.State != "" && !slices.Contains(clusterStates, c.State) {
		return fmt.Errorf("--cluster-state %q: new or existing", c.State)
	}
	if c.Peers != "" {
		if _, err := peerURL(c.Peers, c.Node); err != nil {
			return err
		}
	}
	if c.AdvertiseURL != "" {
		if u, err := url.Parse(c.AdvertiseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--advertise-url %q: want http://HOST:PORT", c.AdvertiseURL)
		}
	}
	return nil
}

// peerURL finds node's URL in "n1=URL,n2=URL", checking every entry.
func peerURL(peers, node string) (string, error) {
	mine := ""
	for _, part := range strings.Split(peers, ",") {
		name, u, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" || u == "" {
			return "", fmt.Errorf("--cluster %q: want n1=http://HOST:PORT,n2=…", peers)
		}
		if !names.Login.Valid(name) {
			return "", fmt.Errorf("--cluster: member name %q: %s", name, names.Login.Requirement())
		}
		if pu, err := url.Parse(u); err != nil || pu.Host == "" {
			return "", fmt.Errorf("--cluster: %s's peer URL %q: want http://HOST:PORT", name, u)
		}
		if name == node {
			mine = u
		}
	}
	if mine == "" {
		return "", fmt.Errorf("--node %q is not in --cluster %q", node, peers)
	}
	return mine, nil
}

// clusterNode is what Main holds in cluster mode.
type clusterNode struct {
	Member   *etcdstore.Member // nil with an external etcd
	Client   *clientv3.Client
	Elector  *etcdstore.Elector
	Front    *httpd.Front
	Register *etcdstore.Registration
	// Auth is the node's own authenticator (leader or not): it admits the
	// requests the front forwards, and GET /cluster.
	Auth *httpd.Authenticator

	prefix       string
	maxTxnOps    int
	txnsInFlight int
	serializable bool // the node's own member: local reads are current
	lead         *leadership

	// mu guards terms.
	mu    sync.Mutex
	terms map[*etcdstore.Term]*leaderTerm
	// teardown counts the terms whose stacks are closing in the background.
	teardown sync.WaitGroup
}

// leaderTerm is the stack of one term this node leads.
type leaderTerm struct {
	stack
	store   *etcdstore.Store
	local   *httpd.Local
	closers []closer
}

// close unwinds the term's stack in reverse.
func (lt *leaderTerm) close(log func(msg string, args ...any)) {
	for i := len(lt.closers) - 1; i >= 0; i-- {
		c := lt.closers[i]
		if err := c.close(); err != nil {
			log("close term", "step", c.what, "err", err)
		}
	}
	lt.closers = nil
}

// runCluster opens the cluster part of Run, after the listener and the
// metrics registry: etcd → registration → GitHub sign-in → front (serving,
// "listening on") → election. The election starts a stack on each term won.
func (m *Main) runCluster(ctx context.Context, ln net.Listener) error {
	cfg := &m.Config
	cc := &cfg.Cluster
	// Short secrets are refused off loopback as on a single node; in
	// cluster mode the static tokens are synchronised (and their changes
	// logged) by each term (openTerm).
	if err := m.checkSecretStrength(ln.Addr()); err != nil {
		return err
	}
	if len(cfg.StaticTokens) == 0 && cfg.AdminKey == "" && !cfg.GitHub.Configured() {
		m.Logger.Warn("cluster mode without an identity source: only tokens already stored in etcd authenticate " +
			"(configure --static-tokens, --admin-key or GitHub sign-in on every node)")
	}
	n := &clusterNode{prefix: etcdstore.DefaultPrefix, txnsInFlight: cc.TxnsInFlight, terms: map[*etcdstore.Term]*leaderTerm{}}
	m.Cluster = n
	advertise := cc.AdvertiseURL
	if advertise == "" {
		advertise = "http://" + ln.Addr().String()
	}

	var peer string
	if cc.Peers != "" {
		peer, _ = peerURL(cc.Peers, cc.Node)
		dir := cc.EtcdDir
		if dir == "" {
			dir = "./" + cc.Node + ".etcd"
		}
		mem, err := etcdstore.StartMember(ctx, etcdstore.MemberConfig{
			Name: cc.Node, Dir: dir, PeerURL: peer, ClientURL: cc.EtcdClientURL,
			InitialCluster: cc.Peers, Existing: cc.State == "existing",
			TickMs: cc.HeartbeatMs, ElectionMs: cc.ElectionMs,
		})
		if err != nil {
			return err
		}
		n.Member, n.Client, n.maxTxnOps, n.serializable = mem, mem.Client(), mem.MaxTxnOps(), true
		if err := m.opened(ctx, "etcd member", mem.Close); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "etcd member %s: peers at %s, clients at %s\n", cc.Node, peer, strings.Join(mem.ClientURLs(), ","))
	} else {
		c, err := etcdstore.Connect(ctx, etcdstore.ConnectConfig{Endpoints: cc.Endpoints})
		if err != nil {
			return err
		}
		n.Client, n.maxTxnOps = c, cc.MaxTxnOps
		if err := m.opened(ctx, "etcd client", c.Close); err != nil {
			return err
		}
	}

	n.Register = etcdstore.Register(n.Client, n.prefix,
		etcdstore.NodeInfo{Name: cc.Node, APIURL: advertise, PeerURL: peer, Since: m.Now()}, cc.LeaderTTL, m.Logger)
	if err := m.opened(ctx, "registration", n.Register.Close); err != nil {
		return err
	}

	var err error
	if m.GitHub, err = httpd.NewGitHubSignIn(cfg.GitHub, m.Now, m.Logger); err != nil {
		return err
	}
	var closeGitHub func() error
	if m.GitHub != nil {
		closeGitHub = noErr(m.GitHub.Close)
	}
	if err := m.opened(ctx, "github sign-in", closeGitHub); err != nil {
		return err
	}

	// The node's own authenticator admits what this node forwards (and GET
	// /cluster) before the leader admits it again; its token cache follows
	// etcd through a watch, as the terms' authenticators do.
	reader := etcdstore.NewReader(n.Client, etcdstore.Options{Prefix: n.prefix, SerializableReads: n.serializable})
	if n.Auth, err = httpd.NewAuthenticator(configuredFirst(cfg.StaticTokens, reader), cfg.AdminKey); err != nil {
		return err
	}
	if err := m.opened(ctx, "node authenticator", noErr(n.Auth.Close)); err != nil {
		return err
	}
	wctx, wcancel := context.WithCancel(context.Background())
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		etcdstore.WatchTokens(wctx, n.Client, n.prefix, n.tokensChanged, m.Logger)
	}()
	if err := m.opened(ctx, "token watch", func() error { wcancel(); <-wdone; return nil }); err != nil {
		return err
	}
	kctx, kcancel := context.WithTimeout(ctx, 10*time.Second)
	fwdKey, err := etcdstore.ForwardKey(kctx, n.Client, n.prefix)
	kcancel()
	if err != nil {
		return err
	}

	n.lead = newLeadership()
	n.Front = httpd.NewFront(httpd.FrontConfig{Server: cfg.Server, Node: cc.Node, Auth: n.Auth, ForwardKey: fwdKey,
		Status: n.status, Now: m.Now}, n.lead, m.Metrics, m.Logger)
	n.Front.Serve(ln)
	if err := m.opened(ctx, "http server", n.Front.Shutdown); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "listening on http://%s\n", ln.Addr())

	n.Elector, err = etcdstore.NewElector(etcdstore.ElectionConfig{
		Client: n.Client, Prefix: n.prefix, Name: cc.Node, APIURL: advertise, TTL: cc.LeaderTTL,
		OnElected: func(t *etcdstore.Term) { m.lead(n, t) },
		OnDeposed: func(t *etcdstore.Term) { m.depose(n, t) },
		Logger:    m.Logger,
	})
	if err != nil {
		return err
	}
	n.lead.set(n.Elector)
	// Closing the elector ends this node's term (resigning, so that the
	// next leader need not wait for the lease); its stack closes after.
	return m.opened(ctx, "election", func() error {
		n.lead.once.Do(func() { close(n.lead.closed) })
		err := n.Elector.Close()
		n.teardown.Wait()
		return err
	})
}

// lead runs on the elector's goroutine when this node wins a term: it opens
// a stack on an etcd store fenced by the term (state loaded from etcd after
// the Campaign returned: every write of an earlier term has committed or can
// no longer pass its fence) and publishes it on the front. If that fails the
// term ends, and the node campaigns again after a pause.
func (m *Main) lead(n *clusterNode, t *etcdstore.Term) {
	start := time.Now()
	if m.Config.Cluster.MoveRaftLeader && n.Member != nil {
		// Before the term's first write: etcd drops proposals while its
		// leadership moves.
		ctx, cancel := context.WithTimeout(ctxOf(t), 5*time.Second)
		if moved, err := n.Member.MoveRaftLeaderAway(ctx); err != nil {
			m.Logger.Warn("leader: cannot move etcd's Raft leadership away", "err", err)
		} else if moved {
			m.Logger.Info("leader: moved etcd's Raft leadership to another member", "took", time.Since(start).Round(time.Millisecond))
		}
		cancel()
	}
	lt := &leaderTerm{}
	err := m.openTerm(n, t, lt)
	if err == nil {
		n.mu.Lock()
		select {
		case <-t.Done():
			err = t.Err()
		default:
			n.terms[t] = lt
		}
		n.mu.Unlock()
	}
	if err != nil {
		m.Logger.Error("leader: cannot serve this term", "err", err)
		lt.close(m.Logger.Warn)
		t.End(err)
		select { // do not win and fail in a tight loop
		case <-time.After(min(m.Config.Cluster.LeaderTTL, 2*time.Second)):
		case <-n.closing():
		}
		return
	}
	n.Front.Publish(lt.local)
	m.Logger.Info("leader: serving", "node", m.Config.Cluster.Node, "recovered_in", time.Since(start).Round(time.Millisecond))

}

// openTerm opens the term's stack: etcd store (fenced) → static tokens →
// events broker → actors → recovery → authenticator → HTTP handlers.
func (m *Main) openTerm(n *clusterNode, t *etcdstore.Term, lt *leaderTerm) error {
	cfg := &m.Config
	opened := func(step string, undo func() error) error {
		if undo != nil {
			lt.closers = append(lt.closers, closer{what: step, close: undo})
		}
		select {
		case <-t.Done():
			return fmt.Errorf("term ended while opening %s: %w", step, t.Err())
		default:
			return nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := context.AfterFunc(ctxOf(t), cancel)
	defer stop()
	store, err := etcdstore.Open(ctx, n.Client, t.Fence(), etcdstore.Options{
		Prefix: n.prefix, MaxTxnOps: n.maxTxnOps, TxnsInFlight: n.txnsInFlight, SerializableReads: n.serializable,
		OnLost: t.End, OnBatch: n.Front.ObserveTxn, Now: m.Now,
	})
	if err != nil {
		return err
	}
	lt.store = store
	if err := opened("etcd store", store.Close); err != nil {
		return err
	}
	// The leader keeps etcd within its quota while its term lasts:
	// compaction with an external etcd (embedded members compact
	// themselves), defragmentation, the NOSPACE alarm.
	mctx, mcancel := context.WithCancel(context.Background())
	mdone := make(chan struct{})
	retention := time.Duration(0)
	if n.Member == nil {
		retention = externalCompactRetention
	}
	go func() {
		defer close(mdone)
		etcdstore.Maintain(mctx, etcdstore.MaintainConfig{Client: n.Client, CompactRetention: retention, Logger: m.Logger})
	}()
	if err := opened("etcd maintenance", func() error { mcancel(); <-mdone; return nil }); err != nil {
		return err
	}
	if err := syncStaticTokens(store, cfg.staticTokens(m.Now()), m.Logger); err != nil {
		return err
	}
	if err := revokeDevTokens(store, m.Logger); err != nil {
		return err
	}
	if err := lt.stack.open(cfg, store, m.Logger, m.Now, opened); err != nil {
		return err
	}
	srv := lt.stack.newServer(cfg, store, m.GitHub, m.Metrics, m.Logger, m.Now)
	lt.local = &httpd.Local{Server: srv, Fresh: t.Fresh, Done: t.Done()}
	return opened("http handlers", nil)
}

// revokeDevTokens revokes every dev token in the cluster's store, and says
// so. A dev token is made by a single node on loopback for a trial, printed
// to its terminal; a cluster serves several machines, so one that reached
// etcd (a copied state) must not authenticate there (issue 12, item 3;
// a single node refuses to start instead: refuseDevToken).
func revokeDevTokens(store tokenLister, log *slog.Logger) error {
	toks, err := store.ListTokens(context.Background(), "")
	if err != nil {
		return fmt.Errorf("list tokens: %w", err)
	}
	for _, t := range toks {
		if t.Source != persistence.SourceDev {
			continue
		}
		if err := store.Apply(persistence.RevokeToken{Hash: t.Hash}); err != nil {
			return fmt.Errorf("revoke dev token: %w", err)
		}
		log.Warn("cluster mode: revoked a dev token (made by a single node for a trial on loopback); configure an identity source",
			"user", t.Login, "fingerprint", t.Fingerprint())
	}
	return nil
}

// tokenLister is what revokeDevTokens needs of a store: its tokens, and
// the writer that revokes them (etcdstore.Store; persistence.Store too).
type tokenLister interface {
	ListTokens(ctx context.Context, login string) ([]persistence.TokenInfo, error)
	Apply(m actors.Mutation) error
}

// externalCompactRetention is the MVCC history the leader keeps in an
// external etcd (the embedded members' AutoCompactionRetention).
const externalCompactRetention = 5 * time.Minute

// ctxOf is a context done when the term ends.
func ctxOf(t *etcdstore.Term) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-t.Done()
		cancel()
	}()
	return ctx
}

// depose runs on the elector's goroutine when this node's term has ended:
// the front stops serving from the term's stack at once (requests go to the
// next leader or wait for one), then the stack drains and closes in the
// background (its writes fail fast on the ended fence).
func (m *Main) depose(n *clusterNode, t *etcdstore.Term) {
	n.mu.Lock()
	lt := n.terms[t]
	delete(n.terms, t)
	n.mu.Unlock()
	if lt == nil {
		return
	}
	n.Front.Unpublish(lt.local)
	m.Logger.Warn("leader: term ended, stepping down", "node", m.Config.Cluster.Node, "err", t.Err())
	n.teardown.Add(1)
	go func() {
		defer n.teardown.Done()
		n.Front.Withdraw(lt.local, m.Config.Server.RequestTimeout)
		lt.close(m.Logger.Warn)
	}()
}

// staticFirst is the token store of a node's own authenticator: the static
// tokens this node is configured with, then the tokens in etcd. The first
// term of a new cluster stores the static tokens only once it has won, and
// a node's authenticator only decides whether the node reads a request's
// body and forwards it (the leader authenticates it again, against what
// its term stored): a token configured here is let through to the leader
// at once.
type staticFirst struct {
	static map[[32]byte]string // token hash → login
	httpd.TokenStore
}

func configuredFirst(static map[string]string, next httpd.TokenStore) httpd.TokenStore {
	s := staticFirst{static: map[[32]byte]string{}, TokenStore: next}
	for tok, login := range static {
		s.static[persistence.HashToken(tok)] = login
	}
	return s
}

// LookupToken implements httpd.TokenStore.
func (s staticFirst) LookupToken(hash [32]byte) (persistence.Principal, bool, error) {
	if login, ok := s.static[hash]; ok {
		return persistence.Principal{Login: login, Source: persistence.SourceStatic}, true, nil
	}
	return s.TokenStore.LookupToken(hash)
}

// tokensChanged is the token watch's callback (etcdstore.WatchTokens):
// the node's and the current term's token caches drop the token (nil: every
// token), and the term's event streams of a token that no longer
// authenticates end, whatever wrote the change.
func (n *clusterNode) tokensChanged(hash *[32]byte) {
	auths := []*httpd.Authenticator{n.Auth}
	n.mu.Lock()
	for _, lt := range n.terms {
		auths = append(auths, lt.Auth)
	}
	n.mu.Unlock()
	for _, a := range auths {
		if hash == nil {
			a.Flush()
		} else {
			a.Invalidate(*hash)
		}
	}
}

// closing is done once the node shuts down (its elector is closing).
func (n *clusterNode) closing() <-chan struct{} { return n.lead.closed }

// status reads the members for GET /cluster: etcd's member list (embedded
// members) merged with the nodes' registrations.
func (n *clusterNode) status(ctx context.Context) (httpd.ClusterStatus, error) {
	var st httpd.ClusterStatus
	var opts []clientv3.OpOption
	if n.serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	nodes, err := etcdstore.Nodes(ctx, n.Client, n.prefix, opts...)
	if err != nil {
		return st, err
	}
	reg := map[string]etcdstore.NodeInfo{}
	for _, x := range nodes {
		reg[x.Name] = x
	}
	if n.Member != nil {
		ms, err := etcdstore.Members(ctx, n.Client, n.serializable)
		if err != nil {
			return st, err
		}
		for _, em := range ms {
			cm := httpd.ClusterMember{Name: em.Name}
			if len(em.PeerURLs) > 0 {
				cm.PeerURL = em.PeerURLs[0]
			}
			if r, ok := reg[em.Name]; ok && em.Name != "" {
				cm.APIURL, cm.Healthy = r.APIURL, true
				delete(reg, em.Name)
			}
			st.Members = append(st.Members, cm)
		}
	}
	for _, r := range reg { // external etcd: the registered nodes are the members
		st.Members = append(st.Members, httpd.ClusterMember{Name: r.Name, PeerURL: r.PeerURL, APIURL: r.APIURL, Healthy: true})
	}
	slices.SortFunc(st.Members, func(a, b httpd.ClusterMember) int { return strings.Compare(a.Name, b.Name) })
	return st, nil
}

// leadership adapts the elector to httpd.Leadership (set once the elector
// exists: the front is built before it, so that it serves from the start).
type leadership struct {
	mu     sync.Mutex // guards e
	e      *etcdstore.Elector
	ready  chan struct{} // closed by set
	closed chan struct{} // closed when the node shuts down
	once   sync.Once
}

func newLeadership() *leadership {
	return &leadership{ready: make(chan struct{}), closed: make(chan struct{})}
}

func (l *leadership) set(e *etcdstore.Elector) {
	l.mu.Lock()
	l.e = e
	l.mu.Unlock()
	close(l.ready)
}

func (l *leadership) elector() *etcdstore.Elector {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.e
}

// Leader implements httpd.Leadership.
func (l *leadership) Leader() (httpd.LeaderInfo, bool) {
	e := l.elector()
	if e == nil {
		return httpd.LeaderInfo{}, false
	}
	st := e.Status()
	return httpd.LeaderInfo{Name: st.Leader.Name, APIURL: st.Leader.APIURL, Since: st.Leader.Since}, st.Known
}

// Changed implements httpd.Leadership.
func (l *leadership) Changed() <-chan struct{} {
	if e := l.elector(); e != nil {
		return e.Changed()
	}
	return l.ready
}

var _ httpd.Storage = (*etcdstore.Store)(nil)
