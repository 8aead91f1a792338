package etcdstore

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// A member whose history fills its space quota raises NOSPACE and refuses
// writes; one maintenance pass compacts, defragments and disarms, and
// writes work again. Without an alarm and below the thresholds it leaves
// the member alone.
func TestMaintainReclaimsSpace(t *testing.T) {
	m := startCluster(t, 1, func(mc *MemberConfig) { mc.QuotaBackendBytes = 8 << 20 })[0]
	c := m.Client()
	ctx := context.Background()
	mt := &maintainer{cfg: MaintainConfig{Client: c, DefragThreshold: 1 << 40, Logger: discardLogger()}}
	if mt.cfg.Dial == nil {
		mt.cfg.Dial = defaultDial
	}
	res, err := mt.once(ctx, time.Now())
	if err != nil || res.CompactedTo != 0 || len(res.Defragged) != 0 || res.Disarmed != 0 {
		t.Fatalf("healthy member: %+v %v, want nothing done", res, err)
	}
	val := strings.Repeat("x", 512<<10)
	var full error
	for i := 0; i < 200 && full == nil; i++ {
		_, full = c.Put(ctx, "/fill", val)
	}
	if !errors.Is(full, rpctypes.ErrNoSpace) {
		t.Fatalf("writes never hit the quota: %v", full)
	}
	res, err = mt.once(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.CompactedTo == 0 || len(res.Defragged) != 1 || res.Disarmed != 1 {
		t.Fatalf("maintenance under NOSPACE: %+v", res)
	}
	if _, err := c.Put(ctx, "/after", "ok"); err != nil {
		t.Fatalf("write after maintenance: %v", err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
