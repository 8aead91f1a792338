package etcdstore

import (
	"reflect"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The builder's merge rules, step by step: what each part does to the
// transaction and what the transaction then sends.
func TestTxnBuilderMerges(t *testing.T) {
	type step struct {
		p    part
		want fit
	}
	for _, c := range []struct {
		name   string
		maxOps int
		steps  []step
		ops    []string // the Then branch: "put k=v", "del k", "del [a,b)"
	}{
		{"last put wins", 8, []step{
			{part{put("a", []byte("1"))}, fits},
			{part{put("a", []byte("2"))}, fits},
		}, []string{"put a=2"}},
		{"delete after put", 8, []step{
			{part{put("a", []byte("1"))}, fits},
			{part{del("a")}, fits},
		}, []string{"del a"}},
		{"put after delete", 8, []step{
			{part{del("a")}, fits},
			{part{put("a", []byte("1"))}, fits},
		}, []string{"put a=1"}},
		{"range drops earlier writes", 8, []step{
			{part{put("v/1", []byte("x")), put("head", []byte("h1"))}, fits},
			{part{put("v/2", []byte("y"))}, fits},
			{part{delRange("v/", "v0"), put("head", []byte("h2"))}, fits},
		}, []string{"put head=h2", "del [v/,v0)"}},
		{"put into a deleted range waits", 8, []step{
			{part{delRange("v/", "v0")}, fits},
			{part{put("v/3", []byte("z"))}, conflict},
			{part{del("v/4")}, fits}, // already deleted: no op
		}, []string{"del [v/,v0)"}},
		{"cap counts distinct keys", 2, []step{
			{part{put("a", []byte("1"))}, fits},
			{part{put("a", []byte("2")), put("b", []byte("1"))}, fits},
			{part{put("b", []byte("2"))}, fits},
			{part{put("c", []byte("1"))}, full},
		}, []string{"put a=2", "put b=2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newTxnBuilder(c.maxOps, 1<<20)
			for i, s := range c.steps {
				if got := b.check(s.p); got != s.want {
					t.Fatalf("step %d: check = %v, want %v", i, got, s.want)
				}
				if s.want == fits {
					b.add(s.p)
				}
			}
			if got := describeOps(b.clientOps()); !reflect.DeepEqual(got, c.ops) {
				t.Fatalf("ops %q, want %q", got, c.ops)
			}
		})
	}
}

// The byte cap keeps a transaction under etcd's request size.
func TestTxnBuilderByteCap(t *testing.T) {
	b := newTxnBuilder(100, 100)
	big := make([]byte, 60)
	if b.check(part{put("a", big)}) != fits {
		t.Fatal("a 60-byte write does not fit 100 bytes")
	}
	b.add(part{put("a", big)})
	if b.check(part{put("b", big)}) != full {
		t.Fatal("120 bytes fit a 100-byte cap")
	}
}

func describeOps(ops []clientv3.Op) []string {
	var out []string
	for _, o := range ops {
		switch {
		case o.IsPut():
			out = append(out, "put "+string(o.KeyBytes())+"="+string(o.ValueBytes()))
		case o.IsDelete() && len(o.RangeBytes()) > 0:
			out = append(out, "del ["+string(o.KeyBytes())+","+string(o.RangeBytes())+")")
		case o.IsDelete():
			out = append(out, "del "+string(o.KeyBytes()))
		}
	}
	return out
}
