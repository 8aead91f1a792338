package etcdstore

import (
	"sort"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// This file builds one etcd transaction out of many writes. etcd refuses a
// Txn that writes one key twice, or puts a key inside a range it deletes
// (rpctypes.ErrDuplicateKey), so the builder merges: a later put or delete
// of a key replaces the earlier one (last wins, as if applied in order), and
// a range delete drops the earlier writes it covers. A put into a range the
// transaction already deletes cannot be merged; the write that needs it
// waits for the next transaction.

// opKind is what an op does.
type opKind uint8

const (
	opPut opKind = iota
	opDelete
	opDeleteRange // [key, end)
)

// op is one write of a part.
type op struct {
	kind opKind
	key  string
	end  string // opDeleteRange only
	val  []byte // opPut only
}

func put(key string, val []byte) op { return op{kind: opPut, key: key, val: val} }
func del(key string) op             { return op{kind: opDelete, key: key} }
func delRange(key, end string) op   { return op{kind: opDeleteRange, key: key, end: end} }
func (o op) size() int              { return len(o.key) + len(o.end) + len(o.val) + 8 }
func (o op) covers(key string) bool { return o.kind == opDeleteRange && key >= o.key && key < o.end }
func inRanges(rs []op, key string) bool {
	for _, r := range rs {
		if r.covers(key) {
			return true
		}
	}
	return false
}

// part is a group of ops that must commit together (one mutation, or one
// row of a mutation that can be split, such as a PutLimits).
type part []op

// txnBuilder accumulates the parts of one transaction.
type txnBuilder struct {
	maxOps   int // ops per Txn (etcd --max-txn-ops, less nothing: the guard is a compare)
	maxBytes int // request bytes per Txn (below etcd --max-request-bytes)

	points map[string]int // key → index in ops of its put or delete
	ops    []op           // puts and deletes; a replaced op is kept with kind opDelete and key "" (skipped)
	ranges []op
	n      int // live ops
	bytes  int
}

func newTxnBuilder(maxOps, maxBytes int) *txnBuilder {
	return &txnBuilder{maxOps: maxOps, maxBytes: maxBytes, points: map[string]int{}}
}

func (b *txnBuilder) reset() {
	clear(b.points)
	b.ops = b.ops[:0]
	b.ranges = b.ranges[:0]
	b.n, b.bytes = 0, 0
}

func (b *txnBuilder) empty() bool { return b.n == 0 }

// fit is the outcome of trying to add a part.
type fit uint8

const (
	fits     fit = iota
	full         // the part would exceed the op or byte cap: next transaction
	conflict     // the part puts into a range this transaction deletes: next transaction
)

// check reports whether p can be added. It may over-count (a range delete
// is not credited with the writes it would drop), never under-count.
func (b *txnBuilder) check(p part) fit {
	n, size := b.n, b.bytes
	var mine map[string]bool
	for _, o := range p {
		size += o.size()
		switch o.kind {
		case opPut:
			if inRanges(b.ranges, o.key) {
				return conflict
			}
			fallthrough
		case opDelete:
			if inRanges(b.ranges, o.key) {
				continue // already deleted by the range
			}
			if _, ok := b.points[o.key]; ok || mine[o.key] {
				continue
			}
			if mine == nil {
				mine = map[string]bool{}
			}
			mine[o.key] = true
			n++
		case opDeleteRange:
			n++
		}
	}
	if n > b.maxOps || size > b.maxBytes {
		return full
	}
	return fits
}

// add merges p into the transaction; check(p) must have answered fits.
func (b *txnBuilder) add(p part) {
	for _, o := range p {
		b.bytes += o.size()
		switch o.kind {
		case opPut, opDelete:
			if o.kind == opDelete && inRanges(b.ranges, o.key) {
				continue
			}
			if i, ok := b.points[o.key]; ok {
				b.ops[i] = o // last wins
				continue
			}
			b.points[o.key] = len(b.ops)
			b.ops = append(b.ops, o)
			b.n++
		case opDeleteRange:
			for k, i := range b.points {
				if o.covers(k) {
					b.ops[i] = op{kind: opDelete} // dropped
					delete(b.points, k)
					b.n--
				}
			}
			b.ranges = append(b.ranges, o)
			b.n++
		}
	}
}

// lookup answers a read of key from the writes of this transaction: found
// is false when the transaction does not touch key (read etcd); otherwise
// val is the value it puts, or nil when it deletes key.
func (b *txnBuilder) lookup(key string) (val []byte, found bool) {
	if i, ok := b.points[key]; ok {
		o := b.ops[i]
		if o.kind == opPut {
			return o.val, true
		}
		return nil, true
	}
	if inRanges(b.ranges, key) {
		return nil, true
	}
	return nil, false
}

// overlay applies the transaction's writes to a range read of [from, end):
// kvs (sorted by key) with the puts added and the deletes removed.
func (b *txnBuilder) overlay(from, end string, kvs map[string][]byte) {
	for k := range kvs {
		if _, found := b.lookup(k); found {
			delete(kvs, k)
		}
	}
	for k, i := range b.points {
		if o := b.ops[i]; o.kind == opPut && k >= from && k < end {
			kvs[k] = o.val
		}
	}
}

// clientOps is the transaction's Then branch, in a deterministic order.
func (b *txnBuilder) clientOps() []clientv3.Op {
	out := make([]clientv3.Op, 0, b.n)
	for _, o := range b.ops {
		switch {
		case o.key == "":
			// replaced by a range delete
		case o.kind == opPut:
			out = append(out, clientv3.OpPut(o.key, string(o.val)))
		case o.kind == opDelete:
			out = append(out, clientv3.OpDelete(o.key))
		}
	}
	sort.SliceStable(b.ranges, func(i, j int) bool { return b.ranges[i].key < b.ranges[j].key })
	for _, r := range b.ranges {
		out = append(out, clientv3.OpDelete(r.key, clientv3.WithRange(r.end)))
	}
	return out
}
