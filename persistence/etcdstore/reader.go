package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/octostore/octostore/actors"
)

// Reader reads the keyspace: the actors' loaders and listings
// (actors.LockLoader, LimitStore, FlagStore, ConfigStore). It needs no
// term: a follower or a tool may read. Reads see every committed
// transaction (linearizable, unless Options.SerializableReads).
type Reader struct {
	kv      clientv3.KV
	ks      keyspace
	opts    []clientv3.OpOption
	timeout time.Duration
}

// NewReader reads the keyspace opt.Prefix through kv.
func NewReader(kv clientv3.KV, opt Options) *Reader {
	opt.defaults()
	r := &Reader{kv: kv, ks: newKeyspace(opt.Prefix), timeout: opt.TxnTimeout}
	if opt.SerializableReads {
		r.opts = []clientv3.OpOption{clientv3.WithSerializable()}
	}
	return r
}

// Prefix is the keyspace's prefix.
func (r *Reader) Prefix() string { return r.ks.prefix }

func (r *Reader) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), r.timeout)
}

// bounded is the caller's ctx, also bounded by the read timeout.
func (r *Reader) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.timeout)
}

// get reads one key: nil when absent.
func (r *Reader) get(ctx context.Context, key string) ([]byte, error) {
	resp, err := r.kv.Get(ctx, key, r.opts...)
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0].Value, nil
}

// getLinearizable reads one key as of the last commit of the cluster,
// whatever Options.SerializableReads says.
func (r *Reader) getLinearizable(ctx context.Context, key string) ([]byte, error) {
	resp, err := r.kv.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0].Value, nil
}

// scanPage is the keys read per range request of a scan.
const scanPage = 512

// scan calls fn for every key under prefix, in key order, from one snapshot
// (every page reads the revision of the first), a page at a time so that
// no response grows with the keyspace. A compaction of that revision
// between two pages restarts the scan (at most three times).
func scan(ctx context.Context, kv clientv3.KV, prefix string, keysOnly bool, fn func(key string, val []byte) error, opts ...clientv3.OpOption) error {
	return scanAt(ctx, kv, prefix, 0, keysOnly, fn, opts...)
}

// scanAt is scan at revision rev (0: the current one).
func scanAt(ctx context.Context, kv clientv3.KV, prefix string, rev int64, keysOnly bool, fn func(key string, val []byte) error, opts ...clientv3.OpOption) error {
	end := prefixEnd(prefix)
	for attempt := 0; ; attempt++ {
		err := scanOnce(ctx, kv, prefix, end, rev, keysOnly, fn, opts)
		if err == nil || rev > 0 || !errors.Is(err, rpctypes.ErrCompacted) || attempt == 2 {
			return err
		}
	}
}

func scanOnce(ctx context.Context, kv clientv3.KV, from, end string, rev int64, keysOnly bool, fn func(string, []byte) error, extra []clientv3.OpOption) error {
	for {
		opts := append([]clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(scanPage),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}, extra...)
		if keysOnly {
			opts = append(opts, clientv3.WithKeysOnly())
		}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := kv.Get(ctx, from, opts...)
		if err != nil {
			return fmt.Errorf("scan %s: %w", from, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if err := fn(string(kv.Key), kv.Value); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

func (r *Reader) scan(ctx context.Context, prefix string, keysOnly bool, fn func(string, []byte) error) error {
	return scan(ctx, r.kv, prefix, keysOnly, fn, r.opts...)
}

// --- locks (actors.Loader) ---

// LoadLock implements actors.LockLoader.
func (r *Reader) LoadLock(name string) (actors.LockRecord, bool, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	b, err := r.get(ctx, r.ks.lock(name))
	if err != nil {
		return actors.LockRecord{Name: name}, false, fmt.Errorf("load lock %q: %w", name, err)
	}
	if b == nil {
		return actors.LockRecord{Name: name}, false, nil
	}
	rec, err := decodeLock(name, b)
	if err != nil {
		return rec, false, fmt.Errorf("load lock: %w", err)
	}
	return rec, true, nil
}

// ActiveLocks implements actors.LockLoader: the holds that have not run
// out, and every hold under a session (its session decides). It scans every
// lock record (a record outlives its release to keep the fencing token),
// one page at a time: recovery reads all locks ever granted, not only held
// ones.
func (r *Reader) ActiveLocks(now time.Time, fn func(actors.LockRecord)) error {
	return r.scanLocks("active", func(rec actors.LockRecord) bool {
		return rec.Holder != "" && (rec.SessionID != "" || rec.HeldAt(now))
	}, fn)
}

// ExpiredLocks implements actors.LockLoader (holds for a TTL that ran out),
// with the same scan as ActiveLocks.
func (r *Reader) ExpiredLocks(now time.Time, fn func(actors.LockRecord)) error {
	return r.scanLocks("expired", func(rec actors.LockRecord) bool {
		return rec.Holder != "" && rec.SessionID == "" && !rec.HeldAt(now)
	}, fn)
}

// LoadSemaphore implements actors.SemaphoreStore: the head and the slots,
// read at one revision.
func (r *Reader) LoadSemaphore(name string) (actors.SemaphoreRecord, bool, error) {
	rec := actors.SemaphoreRecord{Name: name}
	ctx, cancel := r.ctx()
	defer cancel()
	resp, err := r.kv.Get(ctx, r.ks.semaphore(name), r.opts...)
	if err != nil {
		return rec, false, fmt.Errorf("load semaphore %q: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return rec, false, nil
	}
	var h semaphoreValue
	if err := decodeJSON("semaphore "+name, resp.Kvs[0].Value, &h); err != nil {
		return rec, false, err
	}
	rec.Limit, rec.Token = h.Limit, h.Token
	base := r.ks.semSlots(name)
	err = scanAt(ctx, r.kv, base, resp.Header.Revision, false, func(k string, v []byte) error {
		lease, err := unesc(strings.TrimPrefix(k, base))
		if err != nil {
			return fmt.Errorf("semaphore slot key %q: %w", k, err)
		}
		sl, err := decodeSlot(lease, v)
		if err != nil {
			return err
		}
		rec.Slots = append(rec.Slots, sl)
		return nil
	}, r.opts...)
	if err != nil {
		return rec, false, fmt.Errorf("load semaphore %q: %w", name, err)
	}
	sort.Slice(rec.Slots, func(i, j int) bool { return rec.Slots[i].Token < rec.Slots[j].Token })
	return rec, true, nil
}

// HeldSemaphores implements actors.SemaphoreStore: one scan of every slot,
// then each semaphore's head.
func (r *Reader) HeldSemaphores(fn func(actors.SemaphoreRecord)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*r.timeout)
	defer cancel()
	base := r.ks.allSemSlots()
	held := map[string][]actors.SemaphoreSlot{}
	err := r.scan(ctx, base, false, func(k string, v []byte) error {
		n, l, ok := strings.Cut(strings.TrimPrefix(k, base), "/")
		if !ok {
			return fmt.Errorf("semaphore slot key %q: no lease", k)
		}
		name, err := unesc(n)
		if err != nil {
			return fmt.Errorf("semaphore slot key %q: %w", k, err)
		}
		lease, err := unesc(l)
		if err != nil {
			return fmt.Errorf("semaphore slot key %q: %w", k, err)
		}
		sl, err := decodeSlot(lease, v)
		if err != nil {
			return err
		}
		held[name] = append(held[name], sl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load held semaphores: %w", err)
	}
	names := make([]string, 0, len(held))
	for n := range held {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		rec, ok, err := r.LoadSemaphore(n)
		if err != nil {
			return err
		}
		if ok {
			fn(rec)
		}
	}
	return nil
}

// LoadSession implements actors.SessionStore.
func (r *Reader) LoadSession(id string) (actors.SessionRecord, bool, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	b, err := r.get(ctx, r.ks.session(id))
	if err != nil {
		return actors.SessionRecord{ID: id}, false, fmt.Errorf("load session %q: %w", id, err)
	}
	if b == nil {
		return actors.SessionRecord{ID: id}, false, nil
	}
	s, err := decodeSession(id, b)
	if err != nil {
		return s, false, fmt.Errorf("load %w", err)
	}
	return s, true, nil
}

// Sessions implements actors.SessionStore.
func (r *Reader) Sessions(fn func(actors.SessionRecord)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*r.timeout)
	defer cancel()
	base := r.ks.sessions()
	return r.scan(ctx, base, false, func(k string, v []byte) error {
		id, err := unesc(strings.TrimPrefix(k, base))
		if err != nil {
			return fmt.Errorf("session key %q: %w", k, err)
		}
		s, err := decodeSession(id, v)
		if err != nil {
			return err
		}
		fn(s)
		return nil
	})
}

// scanLocks calls fn for every lock record that match accepts.
func (r *Reader) scanLocks(what string, match func(actors.LockRecord) bool, fn func(actors.LockRecord)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*r.timeout)
	defer cancel()
	base := r.ks.locks()
	err := r.scan(ctx, base, false, func(k string, v []byte) error {
		name, err := unesc(strings.TrimPrefix(k, base))
		if err != nil {
			return fmt.Errorf("lock key %q: %w", k, err)
		}
		rec, err := decodeLock(name, v)
		if err != nil {
			return err
		}
		if match(rec) {
			fn(rec)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load %s locks: %w", what, err)
	}
	return nil
}

// --- limits, flags, config (actors.LimitStore, FlagStore, ConfigStore) ---

// LoadLimit implements actors.LimitStore.
func (r *Reader) LoadLimit(owner, name string) (actors.LimitState, bool, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	b, err := r.get(ctx, r.ks.limit(owner, name))
	if err != nil {
		return actors.LimitState{}, false, fmt.Errorf("load limit %s/%s: %w", owner, name, err)
	}
	if b == nil {
		return actors.LimitState{}, false, nil
	}
	rec, err := decodeLimit(owner, name, b)
	if err != nil {
		return actors.LimitState{}, false, fmt.Errorf("load %w", err)
	}
	return rec.State, true, nil
}

// LoadFlag implements actors.FlagStore.
func (r *Reader) LoadFlag(owner, name string) (actors.FlagRecord, bool, error) {
	absent := actors.FlagRecord{Owner: owner, Name: name, Percentage: actors.NoPercentage}
	ctx, cancel := r.ctx()
	defer cancel()
	b, err := r.get(ctx, r.ks.flag(owner, name))
	if err != nil {
		return absent, false, fmt.Errorf("load flag %s/%s: %w", owner, name, err)
	}
	if b == nil {
		return absent, false, nil
	}
	f, err := decodeFlag(owner, name, b)
	if err != nil {
		return absent, false, fmt.Errorf("load %w", err)
	}
	return f, true, nil
}

// LoadConfig implements actors.ConfigStore: the head record and the
// current version's value, read in one transaction (one revision).
func (r *Reader) LoadConfig(owner, key string) (actors.ConfigRecord, bool, error) {
	c := actors.ConfigRecord{Owner: owner, Key: key}
	ctx, cancel := r.ctx()
	defer cancel()
	head := r.ks.config(owner, key)
	resp, err := r.kv.Get(ctx, head, r.opts...)
	if err != nil {
		return c, false, fmt.Errorf("load config %s/%s: %w", owner, key, err)
	}
	if len(resp.Kvs) == 0 {
		return c, false, nil
	}
	got, err := decodeConfigHead(owner, key, resp.Kvs[0].Value)
	if err != nil {
		return c, false, fmt.Errorf("load %w", err)
	}
	if got.Deleted {
		return got, true, nil
	}
	// The value of the head's version, at the head's revision: a newer
	// write cannot slip in between the two reads.
	opts := append([]clientv3.OpOption{clientv3.WithRev(resp.Header.Revision)}, r.opts...)
	vresp, err := r.kv.Get(ctx, r.ks.configVersion(owner, key, got.Version), opts...)
	if err != nil {
		return c, false, fmt.Errorf("load config %s/%s: %w", owner, key, err)
	}
	if len(vresp.Kvs) == 0 {
		return c, false, fmt.Errorf("load config %s/%s: version %d has no value", owner, key, got.Version)
	}
	_, value, err := decodeConfigVersion(vresp.Kvs[0].Value)
	if err != nil {
		return c, false, fmt.Errorf("load config %s/%s: %w", owner, key, err)
	}
	got.Value = value
	return got, true, nil
}

// CountOwned implements actors.OwnerCounter (a scan of the kind's keys).
func (r *Reader) CountOwned(k actors.Kind, fn func(owner string, n int)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*r.timeout)
	defer cancel()
	var base string
	switch k {
	case actors.KindLimit:
		base = r.ks.limits("")
	case actors.KindFlag:
		base = r.ks.flags("")
	case actors.KindConfig:
		base = r.ks.configs("")
	default:
		return fmt.Errorf("count %s: not an owner-scoped kind", k)
	}
	counts := map[string]int{}
	var order []string
	keysOnly := k != actors.KindConfig // a config head may be a deleted key's
	err := r.scan(ctx, base, keysOnly, func(key string, v []byte) error {
		owner, name, err := splitOwned(key, base)
		if err != nil {
			return err
		}
		if k == actors.KindConfig {
			c, err := decodeConfigHead(owner, name, v)
			if err != nil {
				return err
			}
			if c.Deleted {
				return nil
			}
		}
		if counts[owner] == 0 {
			order = append(order, owner)
		}
		counts[owner]++
		return nil
	})
	if err != nil {
		return fmt.Errorf("count %s: %w", k, err)
	}
	for _, owner := range order {
		fn(owner, counts[owner])
	}
	return nil
}

// --- listings ---

// ListLimits lists one page of owner's rate limits ("" for every owner's),
// ordered by owner then name as persistence.Store.ListLimits.
func (r *Reader) ListLimits(ctx context.Context, owner string, q actors.PageQuery) (actors.Page[actors.LimitRecord], error) {
	pg, err := listPage(ctx, r, r.ks.limits(""), owner, q, false, func(o, n string, v []byte) (actors.LimitRecord, bool, error) {
		rec, err := decodeLimit(o, n, v)
		return rec, true, err
	})
	if err != nil {
		return pg, fmt.Errorf("list limits: %w", err)
	}
	return pg, nil
}

// ListFlags lists one page of owner's flags ("" for every owner's).
func (r *Reader) ListFlags(ctx context.Context, owner string, q actors.PageQuery) (actors.Page[actors.FlagRecord], error) {
	pg, err := listPage(ctx, r, r.ks.flags(""), owner, q, false, func(o, n string, v []byte) (actors.FlagRecord, bool, error) {
		f, err := decodeFlag(o, n, v)
		return f, true, err
	})
	if err != nil {
		return pg, fmt.Errorf("list flags: %w", err)
	}
	return pg, nil
}

// ListConfig lists one page of owner's live config keys without values
// ("" for every owner's).
func (r *Reader) ListConfig(ctx context.Context, owner string, q actors.PageQuery) (actors.Page[actors.ConfigRecord], error) {
	pg, err := listPage(ctx, r, r.ks.configs(""), owner, q, true, func(o, n string, v []byte) (actors.ConfigRecord, bool, error) {
		c, err := decodeConfigHead(o, n, v)
		return c, err == nil && !c.Deleted, err
	})
	if err != nil {
		return pg, fmt.Errorf("list config: %w", err)
	}
	return pg, nil
}

// listPage reads one page of an owner-scoped listing under base (a kind's
// prefix, whose keys are base + esc(owner) + "/" + esc(name)), ordered by
// owner, then name, and the count of the listing, all at one revision.
// decode gives an item and whether it is listed (a deleted config key's
// head is not); byValue says that only the value tells (otherwise the
// count reads keys only).
//
// Names have no characters esc changes (actors/names), so one owner's keys
// are in name order and a page of one owner is one range from the
// position on. Owners are escaped, and "/" ends them, so the key order of
// owners is not theirs: a listing of every owner first scans the keys once
// for the owners and the count (memory: the owners, not the items), then
// reads each owner's range in owner order until the page is full.
func listPage[T any](ctx context.Context, r *Reader, base, owner string, q actors.PageQuery, byValue bool,
	decode func(owner, name string, v []byte) (T, bool, error)) (actors.Page[T], error) {
	var pg actors.Page[T]
	if q.Limit < 1 {
		return pg, fmt.Errorf("page limit %d", q.Limit)
	}
	ctx, cancel := r.bounded(ctx)
	defer cancel()
	first, err := r.kv.Get(ctx, base, append([]clientv3.OpOption{clientv3.WithRange(prefixEnd(base)), clientv3.WithCountOnly()}, r.opts...)...)
	if err != nil {
		return pg, err
	}
	rev := first.Header.Revision
	owners := []string{owner}
	if owner == "" {
		owners = nil
	}
	prefix := ownerPrefix(base, owner)
	if owner == "" || byValue {
		seen := map[string]bool{}
		err := scanAt(ctx, r.kv, prefix, rev, !byValue, func(k string, v []byte) error {
			o, n, err := splitOwned(k, base)
			if err != nil {
				return err
			}
			if byValue {
				if _, live, err := decode(o, n, v); err != nil || !live {
					return err
				}
			}
			pg.Total++
			if owner == "" && !seen[o] {
				seen[o] = true
				owners = append(owners, o)
			}
			return nil
		}, r.opts...)
		if err != nil {
			return pg, err
		}
		sort.Strings(owners)
	} else {
		resp, err := r.kv.Get(ctx, prefix, append([]clientv3.OpOption{clientv3.WithRange(prefixEnd(prefix)),
			clientv3.WithCountOnly(), clientv3.WithRev(rev)}, r.opts...)...)
		if err != nil {
			return pg, err
		}
		pg.Total = int(resp.Count)
	}
	for _, o := range owners {
		from := ownerPrefix(base, o)
		end := prefixEnd(from)
		switch {
		case owner == "" && o < q.AfterOwner:
			continue
		case owner != "" || o == q.AfterOwner:
			if q.AfterName != "" {
				from += esc(q.AfterName) + "\x00"
			}
		}
		err := scanOnce(ctx, r.kv, from, end, rev, false, func(k string, v []byte) error {
			if pg.More {
				return errPageFull
			}
			o, n, err := splitOwned(k, base)
			if err != nil {
				return err
			}
			it, live, err := decode(o, n, v)
			if err != nil || !live {
				return err
			}
			if len(pg.Items) == q.Limit {
				pg.More = true
				return errPageFull
			}
			pg.Items = append(pg.Items, it)
			return nil
		}, r.opts)
		if errors.Is(err, errPageFull) {
			break
		}
		if err != nil {
			return pg, err
		}
	}
	return pg, nil
}

// errPageFull ends a page's range reads early.
var errPageFull = errors.New("page full")

// ConfigVersion reads one retained version of a live key (UpdatedAt: when
// that version was written; CreatedAt: when the key was created). ok is
// false for an unknown or deleted key, or a version not retained.
func (r *Reader) ConfigVersion(ctx context.Context, owner, key string, version int64) (actors.ConfigRecord, bool, error) {
	c := actors.ConfigRecord{Owner: owner, Key: key, Version: version}
	ctx, cancel := r.bounded(ctx)
	defer cancel()
	resp, err := r.kv.Txn(ctx).Then(
		clientv3.OpGet(r.ks.config(owner, key), r.opts...),
		clientv3.OpGet(r.ks.configVersion(owner, key, version), r.opts...),
	).Commit()
	if err != nil {
		return c, false, fmt.Errorf("read config %s/%s version %d: %w", owner, key, version, err)
	}
	hk, vk := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
	if len(hk) == 0 || len(vk) == 0 {
		return c, false, nil
	}
	head, err := decodeConfigHead(owner, key, hk[0].Value)
	if err != nil {
		return c, false, err
	}
	if head.Deleted {
		return c, false, nil
	}
	h, value, err := decodeConfigVersion(vk[0].Value)
	if err != nil {
		return c, false, fmt.Errorf("read config %s/%s version %d: %w", owner, key, version, err)
	}
	c.Value, c.Description = value, h.Description
	c.CreatedAt, c.UpdatedAt = head.CreatedAt, fromMS(h.WrittenAt)
	return c, true, nil
}

// ConfigHistory lists one page of the retained versions of a live key,
// newest first, older than before (<= 0: from the newest); more reports
// whether older ones remain (UpdatedAt is when each was written). ok is
// false for an unknown key. The page is read at the head's revision: one
// snapshot.
func (r *Reader) ConfigHistory(ctx context.Context, owner, key string, before int64, limit int) ([]actors.ConfigRecord, bool, bool, error) {
	ctx, cancel := r.bounded(ctx)
	defer cancel()
	resp, err := r.kv.Get(ctx, r.ks.config(owner, key), r.opts...)
	if err != nil {
		return nil, false, false, fmt.Errorf("config history %s/%s: %w", owner, key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, false, false, nil
	}
	hc, err := decodeConfigHead(owner, key, resp.Kvs[0].Value)
	if err != nil {
		return nil, false, false, err
	}
	if hc.Deleted {
		return nil, false, false, nil
	}
	if before <= 0 || before > hc.Version+1 {
		before = hc.Version + 1
	}
	if limit < 1 {
		limit = 1
	}
	page, err := r.kv.Get(ctx, r.ks.configVersion(owner, key, 0), append([]clientv3.OpOption{
		clientv3.WithRange(r.ks.configVersion(owner, key, before)), clientv3.WithLimit(int64(limit)),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithRev(resp.Header.Revision)}, r.opts...)...)
	if err != nil {
		return nil, false, false, fmt.Errorf("config history %s/%s: %w", owner, key, err)
	}
	out := make([]actors.ConfigRecord, 0, len(page.Kvs))
	for _, kv := range page.Kvs {
		ver, err := versionOf(string(kv.Key))
		if err != nil {
			return nil, false, false, err
		}
		h, value, err := decodeConfigVersion(kv.Value)
		if err != nil {
			return nil, false, false, err
		}
		out = append(out, actors.ConfigRecord{Owner: owner, Key: key, Version: ver, Value: value,
			Description: h.Description, UpdatedAt: fromMS(h.WrittenAt)})
	}
	return out, page.More, true, nil
}
