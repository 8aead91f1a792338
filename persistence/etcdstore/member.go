package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// MemberConfig starts an embedded etcd member: `octostore serve --node n1
// --cluster n1=http://…:2380,… --etcd-dir ./n1.etcd`. Zero values take the
// defaults below, chosen for octostore's load (many small writes in
// batches) rather than etcd's.
type MemberConfig struct {
	// Name is this member's name in InitialCluster (--node).
	Name string
	// Dir is the data directory (--etcd-dir). A directory that already
	// holds a member's data restarts that member: InitialCluster and
	// Existing are then ignored (etcd's own rule).
	Dir string
	// PeerURL is where the other members reach this one (its entry in
	// InitialCluster); the member listens on it.
	PeerURL string
	// ClientURL is where etcd clients (etcdctl, backups, other tools) reach
	// this member; octostore itself talks to it in process. "" listens on a
	// free loopback port.
	ClientURL string
	// InitialCluster lists every member: "n1=http://10.0.0.1:2380,…".
	// "" means a cluster of this member alone.
	InitialCluster string
	// Existing joins a running cluster (the member was added with
	// AddMember first) instead of bootstrapping a new one.
	Existing bool
	// ClusterToken distinguishes clusters bootstrapped with the same URLs
	// (default "octostore").
	ClusterToken string

	// MaxTxnOps is etcd's --max-txn-ops (default 1024, etcd's is 128): the
	// writer's batches are capped by it.
	MaxTxnOps uint
	// MaxRequestBytes is etcd's --max-request-bytes (default 4 MiB, etcd's
	// 1.5 MiB): a batch of 1024 writes with config values needs room.
	MaxRequestBytes uint
	// QuotaBackendBytes is the space quota (default 2 GiB, etcd's). When
	// bbolt's file reaches it etcd raises the NOSPACE alarm and refuses
	// writes until compaction, defragmentation and disarming.
	QuotaBackendBytes int64
	// SnapshotCount is the applied entries between two Raft snapshots
	// (default 10000, etcd's).
	SnapshotCount uint64
	// SnapshotCatchUpEntries is the Raft entries kept in memory after a
	// snapshot for slow followers (default 500; etcd's 5000 held over 1 GB
	// with batches of ~530 ops).
	SnapshotCatchUpEntries uint64
	// AutoCompactionRetention is how much MVCC history etcd keeps
	// (periodic mode, default "5m"). octostore reads only the newest
	// revision, and its own leader watch restarts on a compacted revision;
	// without compaction bbolt grows by hundreds of MB a minute under load.
	AutoCompactionRetention string
	// TickMs and ElectionMs are etcd's heartbeat interval and election
	// timeout (defaults 100 and 1000 ms, etcd's).
	TickMs, ElectionMs uint
	// LogLevel is the zap level of etcd's own log (default "warn": "info"
	// prints ~90 lines per member at start).
	LogLevel string
	// StartTimeout bounds the wait for the member to join its cluster and
	// be ready (default 60 s). With a new cluster, that needs a quorum of
	// members started.
	StartTimeout time.Duration
}

// Embedded defaults (see MemberConfig).
const (
	DefaultEmbeddedMaxTxnOps       = 1024
	DefaultEmbeddedMaxRequestBytes = 4 << 20
	DefaultSnapshotCatchUpEntries  = 500
	DefaultCompactionRetention     = "5m"
)

// Member is a running embedded etcd member.
type Member struct {
	cfg    MemberConfig
	etcd   *embed.Etcd
	client *clientv3.Client
	closed sync.Once // embed.Etcd.Close panics when called twice
}

// StartMember starts the member and waits until it is ready (it has joined
// its cluster and the cluster has a Raft leader) or ctx ends.
func StartMember(ctx context.Context, mc MemberConfig) (*Member, error) {
	cfg, err := mc.embedConfig()
	if err != nil {
		return nil, err
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd member %s: %w", mc.Name, err)
	}
	timeout := mc.StartTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("start etcd member %s: %w", mc.Name, err)
	case <-t.C:
		e.Close()
		return nil, fmt.Errorf("start etcd member %s: not ready after %v (is a quorum of the cluster started?)", mc.Name, timeout)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("start etcd member %s: %w", mc.Name, ctx.Err())
	}
	return &Member{cfg: mc, etcd: e, client: v3client.New(e.Server)}, nil
}

func (mc MemberConfig) embedConfig() (*embed.Config, error) {
	if mc.Name == "" || mc.Dir == "" || mc.PeerURL == "" {
		return nil, errors.New("etcd member: name, data dir and peer URL are required")
	}
	cfg := embed.NewConfig()
	cfg.Name = mc.Name
	cfg.Dir = mc.Dir
	peer, err := url.Parse(mc.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("etcd member: peer URL: %w", err)
	}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	client := mc.ClientURL
	if client == "" {
		client = "http://127.0.0.1:0"
	}
	cu, err := url.Parse(client)
	if err != nil {
		return nil, fmt.Errorf("etcd member: client URL: %w", err)
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.InitialCluster = mc.InitialCluster
	if cfg.InitialCluster == "" {
		cfg.InitialCluster = cfg.InitialClusterFromName(mc.Name)
	} else if !strings.Contains(","+cfg.InitialCluster, ","+mc.Name+"=") {
		return nil, fmt.Errorf("etcd member: %s is not in the initial cluster %q", mc.Name, cfg.InitialCluster)
	}
	cfg.InitialClusterToken = or(mc.ClusterToken, "octostore")
	if mc.Existing {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	} else {
		cfg.ClusterState = embed.ClusterStateFlagNew
	}
	cfg.MaxTxnOps = orUint(mc.MaxTxnOps, DefaultEmbeddedMaxTxnOps)
	cfg.MaxRequestBytes = orUint(mc.MaxRequestBytes, DefaultEmbeddedMaxRequestBytes)
	if mc.QuotaBackendBytes > 0 {
		cfg.QuotaBackendBytes = mc.QuotaBackendBytes
	}
	if mc.SnapshotCount > 0 {
		cfg.SnapshotCount = mc.SnapshotCount
	}
	cfg.SnapshotCatchUpEntries = DefaultSnapshotCatchUpEntries
	if mc.SnapshotCatchUpEntries > 0 {
		cfg.SnapshotCatchUpEntries = mc.SnapshotCatchUpEntries
	}
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = or(mc.AutoCompactionRetention, DefaultCompactionRetention)
	if mc.TickMs > 0 {
		cfg.TickMs = mc.TickMs
	}
	if mc.ElectionMs > 0 {
		cfg.ElectionMs = mc.ElectionMs
	}
	cfg.LogLevel = or(mc.LogLevel, "warn")
	lvl, err := zap.ParseAtomicLevel(cfg.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("etcd member: log level %q: %w", cfg.LogLevel, err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = lvl
	zc.Sampling = nil
	lg, err := zc.Build(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return quietCore{c} }))
	if err != nil {
		return nil, fmt.Errorf("etcd member: logger: %w", err)
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	return cfg, nil
}

// quietCore drops the lines an embedded member logs on every start and
// stop that say nothing to an operator: its listeners closing at shutdown
// (at error level, with stack traces) and two warnings about settings
// octostore chose (one port for gRPC and HTTP, simple auth tokens: etcd's
// auth is off, its client URL is loopback by default).
type quietCore struct{ zapcore.Core }

var benignEtcdLines = []string{
	"use of closed network connection", "server closed", "Server closed",
	"Running http and grpc server on single port", "simple token is not cryptographically signed",
}

func (q quietCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	for _, s := range benignEtcdLines {
		if strings.Contains(e.Message, s) {
			return ce
		}
	}
	if q.Enabled(e.Level) {
		return ce.AddCore(e, q) // Write filters by the error field
	}
	return ce
}

func (q quietCore) With(fields []zapcore.Field) zapcore.Core { return quietCore{q.Core.With(fields)} }

func (q quietCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	for _, f := range fields {
		if f.Key == "error" {
			if err, ok := f.Interface.(error); ok {
				for _, s := range benignEtcdLines {
					if strings.Contains(err.Error(), s) {
						return nil
					}
				}
			}
		}
	}
	return q.Core.Write(e, fields)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orUint(v, def uint) uint {
	if v == 0 {
		return def
	}
	return v
}

// Client is the node's own client: it calls the member in process (no
// gRPC, no socket), about 20% faster than over loopback. Closed by Close.
func (m *Member) Client() *clientv3.Client { return m.client }

// Name is the member's name.
func (m *Member) Name() string { return m.cfg.Name }

// ClientURLs are where external etcd clients reach this member (the
// actual port when ClientURL was left empty).
func (m *Member) ClientURLs() []string {
	var out []string
	for _, l := range m.etcd.Clients {
		out = append(out, "http://"+l.Addr().String())
	}
	return out
}

// MaxTxnOps is the member's --max-txn-ops (Options.MaxTxnOps for the
// node's writer).
func (m *Member) MaxTxnOps() int { return int(m.etcd.Config().MaxTxnOps) }

// IsRaftLeader reports whether this member is etcd's Raft leader now (not
// octostore's leader: that is the election's).
func (m *Member) IsRaftLeader() bool { return m.etcd.Server.Leader() == m.etcd.Server.MemberID() }

// Err reports a fatal error of the running member.
func (m *Member) Err() <-chan error { return m.etcd.Err() }

// Close stops the member; later calls do nothing. It may take several
// seconds: a Raft leader first hands its leadership to another member.
func (m *Member) Close() error {
	m.closed.Do(func() {
		m.client.Close()
		m.etcd.Close()
	})
	return nil
}

// AddMember adds a member with peerURL to the running cluster of c (etcd's
// `member add`) and returns the InitialCluster the new member must start
// with (MemberConfig.Existing set).
func AddMember(ctx context.Context, c *clientv3.Client, name, peerURL string) (string, error) {
	resp, err := c.MemberAdd(ctx, []string{peerURL})
	if err != nil {
		return "", fmt.Errorf("add etcd member %s: %w", name, reconfigErr(err))
	}
	var parts []string
	for _, m := range resp.Members {
		n := m.Name
		if m.ID == resp.Member.ID {
			n = name // not started yet: no name
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	slices.Sort(parts) // by name: the same text whichever member answered
	return strings.Join(parts, ","), nil
}

// RemoveMember removes the member called name (a dead node being replaced)
// from the cluster of c.
func RemoveMember(ctx context.Context, c *clientv3.Client, name string) error {
	list, err := c.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("remove etcd member %s: %w", name, err)
	}
	for _, m := range list.Members {
		if m.Name == name {
			if _, err := c.MemberRemove(ctx, m.ID); err != nil {
				return fmt.Errorf("remove etcd member %s: %w", name, reconfigErr(err))
			}
			return nil
		}
	}
	return fmt.Errorf("remove etcd member %s: %w", name, ErrNoSuchMember)
}

// ErrNoSuchMember is RemoveMember's error for a name no member has.
var ErrNoSuchMember = errors.New("no such member")

// ErrUnsafeReconfig is AddMember's and RemoveMember's error when etcd
// refuses to change its membership now (its strict reconfiguration check):
// the change could cost the quorum, because a member is down or joined
// less than etcd's health interval (5 s) ago. Retry once every member has
// been up that long; a member that is down can always be removed.
var ErrUnsafeReconfig = errors.New("etcd refuses the membership change now: it could cost the quorum (a member is down, or joined less than 5 s ago); retry once every member is up")

// reconfigErr names etcd's refusals of a membership change that a retry
// may cure (ErrUnsafeReconfig), keeping etcd's error.
func reconfigErr(err error) error {
	if errors.Is(err, rpctypes.ErrUnhealthy) || errors.Is(err, rpctypes.ErrMemberNotEnoughStarted) {
		return fmt.Errorf("%w (%w)", ErrUnsafeReconfig, err)
	}
	return err
}

// ConnectConfig connects to an external etcd cluster (--etcd-endpoints).
type ConnectConfig struct {
	Endpoints   []string
	DialTimeout time.Duration // default 5 s
	Username    string        // etcd auth, when enabled
	Password    string
}

// Connect returns a client of an existing etcd cluster, after checking
// that it answers. Its writers must use Options.MaxTxnOps no larger than
// the cluster's --max-txn-ops (128 unless raised), and linearizable reads.
func Connect(ctx context.Context, cc ConnectConfig) (*clientv3.Client, error) {
	if len(cc.Endpoints) == 0 {
		return nil, errors.New("connect etcd: no endpoints")
	}
	dt := cc.DialTimeout
	if dt <= 0 {
		dt = 5 * time.Second
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints: cc.Endpoints, DialTimeout: dt, Username: cc.Username, Password: cc.Password,
		Logger: warnLogger(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect etcd %v: %w", cc.Endpoints, err)
	}
	sctx, cancel := context.WithTimeout(ctx, dt)
	defer cancel()
	if _, err := c.MemberList(sctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect etcd %v: %w", cc.Endpoints, err)
	}
	return c, nil
}

// warnLogger is the etcd client's zap logger: warnings and errors only, as
// JSON on stderr (the client logs every retry at info).
func warnLogger() *zap.Logger {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	lg, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return lg
}

// MoveRaftLeaderAway hands etcd's Raft leadership to another voting
// member when this member holds it, and reports whether it did. The
// transferee must answer a status request on its client URL within
// probeTimeout: a dead or frozen member is never chosen (a transfer to one
// waits for etcd's request timeout, seconds, and etcd drops proposals
// meanwhile). The octostore leader calls it after winning, before its
// first write (serve --move-raft-leader), so that its own death does not
// also cost an etcd election.
func (m *Member) MoveRaftLeaderAway(ctx context.Context) (bool, error) {
	if ctx.Err() != nil || !m.IsRaftLeader() {
		return false, ctx.Err()
	}
	list, err := m.client.MemberList(ctx)
	if err != nil {
		return false, fmt.Errorf("move raft leader: %w", err)
	}
	self := uint64(m.etcd.Server.MemberID())
	for _, mm := range list.Members {
		if mm.ID == self || mm.IsLearner || mm.Name == "" || len(mm.ClientURLs) == 0 || !answers(ctx, mm.ClientURLs[0]) {
			continue
		}
		if _, err := m.client.MoveLeader(ctx, mm.ID); err != nil {
			return false, fmt.Errorf("move raft leader to %s: %w", mm.Name, err)
		}
		return true, nil
	}
	return false, nil
}

// probeTimeout bounds the status request that tells a live member.
const probeTimeout = 300 * time.Millisecond

// answers reports whether the etcd member at endpoint answers a status
// request within probeTimeout.
func answers(ctx context.Context, endpoint string) bool {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: probeTimeout, Logger: zap.NewNop()})
	if err != nil {
		return false
	}
	defer c.Close()
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	_, err = c.Status(pctx, endpoint)
	return err == nil
}
