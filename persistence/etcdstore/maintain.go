package etcdstore

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// MaintainConfig configures Maintain: what the leader does to keep etcd
// within its space quota.
type MaintainConfig struct {
	// Client is the leader's client.
	Client *clientv3.Client
	// CompactRetention is how much MVCC history to keep: every tick the
	// keyspace is compacted to the revision it had that long ago. 0 leaves
	// compaction to etcd (an embedded member compacts itself:
	// MemberConfig.AutoCompactionRetention).
	CompactRetention time.Duration
	// DefragThreshold: a member is defragmented when the space its backend
	// file wastes (size minus size in use) exceeds this many bytes and a
	// quarter of the file (default 64 MiB). Members are defragmented one at
	// a time (a member blocks its reads and writes while it defragments).
	DefragThreshold int64
	// Interval between checks (default 1 min).
	Interval time.Duration
	// Dial opens a client to one member's client URL (default: a gRPC
	// client of that endpoint alone).
	Dial   func(endpoint string) (*clientv3.Client, error)
	Logger *slog.Logger
}

// Maintain checks etcd every Interval until ctx ends: compaction (with an
// external etcd), defragmentation of the members that waste space, and the
// NOSPACE alarm, disarmed once space was reclaimed (etcd refuses every
// write while it is raised). The leader runs it while its term lasts.
func Maintain(ctx context.Context, cfg MaintainConfig) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.DefragThreshold <= 0 {
		cfg.DefragThreshold = 64 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dial == nil {
		cfg.Dial = defaultDial
	}
	m := &maintainer{cfg: cfg}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		if err := m.tick(ctx); err != nil && ctx.Err() == nil {
			cfg.Logger.Warn("etcd maintenance", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type maintainer struct {
	cfg     MaintainConfig
	samples []revSample // revisions seen, oldest first
}

type revSample struct {
	at  time.Time
	rev int64
}

// MaintainResult is what one tick did (tests, logs).
type MaintainResult struct {
	CompactedTo int64
	Defragged   []string
	Disarmed    int
}

func (m *maintainer) tick(ctx context.Context) error {
	_, err := m.once(ctx, time.Now())
	return err
}

func (m *maintainer) once(ctx context.Context, now time.Time) (MaintainResult, error) {
	var res MaintainResult
	c := m.cfg.Client
	alarms, err := c.AlarmList(ctx)
	if err != nil {
		return res, fmt.Errorf("alarm list: %w", err)
	}
	nospace := false
	for _, a := range alarms.Alarms {
		nospace = nospace || a.Alarm == pb.AlarmType_NOSPACE
	}
	if m.cfg.CompactRetention > 0 || nospace {
		resp, err := c.Get(ctx, "\x00", clientv3.WithCountOnly())
		if err != nil {
			return res, fmt.Errorf("read revision: %w", err)
		}
		m.samples = append(m.samples, revSample{at: now, rev: resp.Header.Revision})
		target := int64(0)
		if nospace {
			target = resp.Header.Revision // out of space: keep no history
		}
		for len(m.samples) > 0 && now.Sub(m.samples[0].at) >= m.cfg.CompactRetention && !nospace {
			target = m.samples[0].rev
			m.samples = m.samples[1:]
		}
		if target > 0 {
			if _, err := c.Compact(ctx, target); err != nil && !isCompacted(err) {
				return res, fmt.Errorf("compact to %d: %w", target, err)
			}
			res.CompactedTo = target
		}
	}
	members, err := c.MemberList(ctx)
	if err != nil {
		return res, fmt.Errorf("member list: %w", err)
	}
	for _, mem := range members.Members {
		if len(mem.ClientURLs) == 0 {
			continue
		}
		ep := mem.ClientURLs[0]
		done, err := m.defrag(ctx, ep, nospace)
		if err != nil {
			m.cfg.Logger.Warn("etcd maintenance: member", "member", mem.Name, "endpoint", ep, "err", err)
			continue
		}
		if done {
			res.Defragged = append(res.Defragged, mem.Name)
		}
	}
	if nospace {
		for _, a := range alarms.Alarms {
			if a.Alarm != pb.AlarmType_NOSPACE {
				continue
			}
			if _, err := c.AlarmDisarm(ctx, (*clientv3.AlarmMember)(a)); err != nil {
				return res, fmt.Errorf("disarm NOSPACE: %w", err)
			}
			res.Disarmed++
		}
		m.cfg.Logger.Warn("etcd maintenance: NOSPACE alarm disarmed after compaction and defragmentation",
			"compacted_to", res.CompactedTo, "defragmented", res.Defragged)
	}
	return res, nil
}

// defrag defragments the member at ep if it wastes enough space (always
// when force), and reports whether it did.
func (m *maintainer) defrag(ctx context.Context, ep string, force bool) (bool, error) {
	mc, err := m.cfg.Dial(ep)
	if err != nil {
		return false, err
	}
	defer mc.Close()
	st, err := mc.Status(ctx, ep)
	if err != nil {
		return false, err
	}
	waste := st.DbSize - st.DbSizeInUse
	if !force && (waste < m.cfg.DefragThreshold || waste < st.DbSize/4) {
		return false, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if _, err := mc.Defragment(dctx, ep); err != nil {
		return false, fmt.Errorf("defragment: %w", err)
	}
	m.cfg.Logger.Info("etcd maintenance: defragmented", "endpoint", ep, "size", st.DbSize, "in_use", st.DbSizeInUse)
	return true, nil
}

func isCompacted(err error) bool {
	return err != nil && (err.Error() == "etcdserver: mvcc: required revision has been compacted")
}

func defaultDial(ep string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: warnLogger()})
}
