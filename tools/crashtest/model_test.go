package crashtest

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The checker must be able to fail: planted histories that no lock (or
// config key) could produce are rejected, and close variants that a correct
// server could produce are accepted.

type opb struct {
	client     int
	key        string
	in         any
	out        any
	call, ret  int64
	unknownOut bool
}

func build(ops ...opb) []porcupine.Operation {
	var h []porcupine.Operation
	for _, o := range ops {
		if o.key == "" {
			o.key = "L"
		}
		h = append(h, porcupine.Operation{ClientId: o.client, Input: o.in, Output: o.out, Call: o.call, Return: o.ret, Metadata: o.key})
	}
	return h
}

func acq(user string) LockInput { return LockInput{Op: "acquire", User: user} }
func rel(user, lease string) LockInput {
	return LockInput{Op: "release", User: user, Lease: lease}
}
func ren(user, lease string) LockInput { return LockInput{Op: "renew", User: user, Lease: lease} }
func stat(user string) LockInput       { return LockInput{Op: "status", User: user} }

func granted(user, lease string, tok uint64) LockOutput {
	return LockOutput{Status: "acquired", Holder: user, Lease: lease, Token: tok}
}

var unknownLock = LockOutput{Unknown: true}

func checkLock(t *testing.T, h []porcupine.Operation) porcupine.CheckResult {
	t.Helper()
	res, _ := porcupine.CheckOperationsVerbose(LockModel, h, 10*time.Second)
	return res
}

func TestLockModelRejectsPlantedHistories(t *testing.T) {
	cases := []struct {
		name string
		h    []porcupine.Operation
	}{
		{"two holders at once", build(
			opb{client: 0, in: acq("a"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 1, in: acq("b"), out: granted("b", "L2", 2), call: 20, ret: 30},
		)},
		{"fencing token repeats after a release", build(
			opb{client: 0, in: acq("a"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 0, in: rel("a", "L1"), out: LockOutput{Status: "released"}, call: 20, ret: 30},
			opb{client: 1, in: acq("b"), out: granted("b", "L2", 1), call: 40, ret: 50},
		)},
		{"fencing token goes backwards", build(
			opb{client: 0, in: acq("a"), out: granted("a", "L1", 5), call: 0, ret: 10},
		)},
		{"acknowledged release is undone", build(
			opb{client: 0, in: acq("a"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 0, in: rel("a", "L1"), out: LockOutput{Status: "released"}, call: 20, ret: 30},
			opb{client: 1, in: stat("b"), out: LockOutput{Status: "held", Holder: "a", Token: 1}, call: 40, ret: 50},
		)},
		{"acknowledged grant is lost", build(
			opb{client: 0, in: acq("a"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 1, in: stat("b"), out: LockOutput{Status: "available"}, call: 20, ret: 30},
		)},
		{"renew of a released lease", build(
			opb{client: 0, in: acq("a"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 0, in: rel("a", "L1"), out: LockOutput{Status: "released"}, call: 20, ret: 30},
			opb{client: 0, in: ren("a", "L1"), out: LockOutput{Status: "held", Holder: "a", Lease: "L1", Token: 1}, call: 40, ret: 50},
		)},
		{"re-acquire by the holder changes the lease", build(
			opb{client: 0, in: acq("a"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 0, in: acq("a"), out: LockOutput{Status: "held", Holder: "a", Lease: "L9", Token: 1}, call: 20, ret: 30},
		)},
		{"unknown release cannot free another lease", build(
			opb{client: 0, in: acq("a"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 1, in: rel("b", "L1"), out: unknownLock, call: 20, ret: Never},
			opb{client: 1, in: acq("b"), out: granted("b", "L2", 2), call: 40, ret: 50},
		)},
		{"a lost unknown grant consumed a token that later shows", build(
			opb{client: 0, in: acq("a"), out: unknownLock, call: 0, ret: 100},
			opb{client: 1, in: acq("b"), out: granted("b", "L2", 2), call: 200, ret: 210},
			opb{client: 1, in: stat("c"), out: LockOutput{Status: "held", Holder: "b", Token: 2}, call: 220, ret: 230},
			opb{client: 2, in: stat("c"), out: LockOutput{Status: "available"}, call: 150, ret: 160},
		)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if res := checkLock(t, c.h); res != porcupine.Illegal {
				t.Fatalf("planted non-linearizable history: result %v, want Illegal", res)
			}
		})
	}
}

func TestLockModelAcceptsCorrectHistories(t *testing.T) {
	cases := []struct {
		name string
		h    []porcupine.Operation
	}{
		{"grant, conflict, release, grant", build(
			opb{client: 0, in: acq("a"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 1, in: acq("b"), out: LockOutput{Conflict: true, Holder: "a"}, call: 5, ret: 15},
			opb{client: 0, in: rel("a", "L1"), out: LockOutput{Status: "released"}, call: 20, ret: 30},
			opb{client: 1, in: acq("b"), out: granted("b", "L2", 2), call: 40, ret: 50},
			opb{client: 0, in: ren("a", "L1"), out: LockOutput{NotOwned: true}, call: 60, ret: 70},
		)},
		{"concurrent acquires: either may win", build(
			opb{client: 0, in: acq("a"), out: LockOutput{Conflict: true, Holder: "b"}, call: 0, ret: 10},
			opb{client: 1, in: acq("b"), out: granted("b", "L2", 1), call: 0, ret: 10},
		)},
		{"unknown grant that took effect, revealed by re-acquire", build(
			opb{client: 0, in: acq("a"), out: unknownLock, call: 0, ret: 100},
			opb{client: 1, in: acq("b"), out: LockOutput{Conflict: true, Holder: "a"}, call: 200, ret: 210},
			opb{client: 0, in: acq("a"), out: LockOutput{Status: "held", Holder: "a", Lease: "L1", Token: 1}, call: 220, ret: 230},
			opb{client: 0, in: rel("a", "L1"), out: LockOutput{Status: "released"}, call: 240, ret: 250},
		)},
		{"unknown grant that never happened", build(
			opb{client: 0, in: acq("a"), out: unknownLock, call: 0, ret: 100},
			opb{client: 1, in: acq("b"), out: granted("b", "L2", 1), call: 200, ret: 210},
		)},
		{"unknown release, either way", build(
			opb{client: 0, in: acq("a"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 0, in: rel("a", "L1"), out: unknownLock, call: 20, ret: Never},
			opb{client: 1, in: acq("b"), out: LockOutput{Conflict: true, Holder: "a"}, call: 30, ret: 40},
			opb{client: 1, in: acq("b"), out: granted("b", "L2", 2), call: 50, ret: 60},
		)},
		{"partitions are independent", build(
			opb{client: 0, key: "x", in: acq("a"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 1, key: "y", in: acq("b"), out: granted("b", "L2", 1), call: 0, ret: 10},
		)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if res := checkLock(t, c.h); res != porcupine.Ok {
				t.Fatalf("linearizable history: result %v, want Ok", res)
			}
		})
	}
}

func ver(v int64) *int64 { return &v }

func TestConfigModel(t *testing.T) {
	put := func(v string, exp *int64) ConfigInput { return ConfigInput{Op: "put", Value: v, Expected: exp} }
	rb := func(to int64, exp *int64) ConfigInput { return ConfigInput{Op: "rollback", To: to, Expected: exp} }
	get := ConfigInput{Op: "get"}
	bad := []struct {
		name string
		h    []porcupine.Operation
	}{
		{"version repeats", build(
			opb{client: 0, in: put("a", nil), out: ConfigOutput{Version: 1}, call: 0, ret: 10},
			opb{client: 1, in: put("b", nil), out: ConfigOutput{Version: 1}, call: 20, ret: 30},
		)},
		{"stale read", build(
			opb{client: 0, in: put("a", nil), out: ConfigOutput{Version: 1}, call: 0, ret: 10},
			opb{client: 0, in: put("b", nil), out: ConfigOutput{Version: 2}, call: 20, ret: 30},
			opb{client: 1, in: get, out: ConfigOutput{Version: 1, Value: "a"}, call: 40, ret: 50},
		)},
		{"acknowledged write lost", build(
			opb{client: 0, in: put("a", nil), out: ConfigOutput{Version: 1}, call: 0, ret: 10},
			opb{client: 1, in: get, out: ConfigOutput{NotFound: true}, call: 40, ret: 50},
		)},
		{"If-Match ignored", build(
			opb{client: 0, in: put("a", nil), out: ConfigOutput{Version: 1}, call: 0, ret: 10},
			opb{client: 1, in: put("b", ver(0)), out: ConfigOutput{Version: 2}, call: 20, ret: 30},
		)},
		{"rollback reuses a version", build(
			opb{client: 0, in: put("a", nil), out: ConfigOutput{Version: 1}, call: 0, ret: 10},
			opb{client: 0, in: put("b", nil), out: ConfigOutput{Version: 2}, call: 20, ret: 30},
			opb{client: 1, in: rb(1, nil), out: ConfigOutput{Version: 2, Value: "a"}, call: 40, ret: 50},
		)},
		{"rollback writes the wrong value", build(
			opb{client: 0, in: put("a", nil), out: ConfigOutput{Version: 1}, call: 0, ret: 10},
			opb{client: 0, in: put("b", nil), out: ConfigOutput{Version: 2}, call: 20, ret: 30},
			opb{client: 1, in: rb(1, nil), out: ConfigOutput{Version: 3, Value: "b"}, call: 40, ret: 50},
		)},
		{"rollback to a version of an earlier life", build(
			opb{client: 0, in: put("a", nil), out: ConfigOutput{Version: 1}, call: 0, ret: 10},
			opb{client: 0, in: ConfigInput{Op: "delete"}, out: ConfigOutput{}, call: 20, ret: 30},
			opb{client: 0, in: put("b", nil), out: ConfigOutput{Version: 2}, call: 40, ret: 50},
			opb{client: 1, in: rb(1, nil), out: ConfigOutput{Version: 3, Value: "a"}, call: 60, ret: 70},
		)},
		{"acknowledged rollback lost", build(
			opb{client: 0, in: put("a", nil), out: ConfigOutput{Version: 1}, call: 0, ret: 10},
			opb{client: 0, in: put("b", nil), out: ConfigOutput{Version: 2}, call: 20, ret: 30},
			opb{client: 0, in: rb(1, ver(2)), out: ConfigOutput{Version: 3, Value: "a"}, call: 40, ret: 50},
			opb{client: 1, in: get, out: ConfigOutput{Version: 2, Value: "b"}, call: 60, ret: 70},
		)},
	}
	for _, c := range bad {
		t.Run("rejects "+c.name, func(t *testing.T) {
			if res, _ := porcupine.CheckOperationsVerbose(ConfigModel, c.h, 10*time.Second); res != porcupine.Illegal {
				t.Fatalf("result %v, want Illegal", res)
			}
		})
	}
	good := build(
		opb{client: 0, in: put("a", ver(0)), out: ConfigOutput{Version: 1}, call: 0, ret: 10},
		opb{client: 1, in: put("b", ver(0)), out: ConfigOutput{Conflict: true, Current: 1}, call: 5, ret: 15},
		opb{client: 1, in: put("c", nil), out: ConfigOutput{Unknown: true}, call: 20, ret: Never},
		opb{client: 0, in: put("d", ver(1)), out: ConfigOutput{Conflict: true, Current: 2}, call: 30, ret: 40},
		opb{client: 0, in: get, out: ConfigOutput{Version: 2, Value: "c"}, call: 50, ret: 60},
		opb{client: 0, in: ConfigInput{Op: "delete"}, out: ConfigOutput{}, call: 70, ret: 80},
		opb{client: 0, in: put("e", ver(0)), out: ConfigOutput{Version: 3}, call: 90, ret: 100},
		opb{client: 1, in: rb(1, nil), out: ConfigOutput{NotFound: true}, call: 110, ret: 120}, // of the life before the delete
		opb{client: 0, in: put("f", nil), out: ConfigOutput{Version: 4}, call: 130, ret: 140},
		opb{client: 1, in: rb(3, ver(4)), out: ConfigOutput{Version: 5, Value: "e"}, call: 150, ret: 160},
		opb{client: 0, in: rb(4, ver(4)), out: ConfigOutput{Conflict: true, Current: 5}, call: 170, ret: 180},
		opb{client: 0, in: rb(4, nil), out: ConfigOutput{Unknown: true}, call: 190, ret: Never},
		opb{client: 1, in: get, out: ConfigOutput{Version: 6, Value: "f"}, call: 200, ret: 210},
	)
	if res, _ := porcupine.CheckOperationsVerbose(ConfigModel, good, 10*time.Second); res != porcupine.Ok {
		t.Fatalf("linearizable config history: result %v, want Ok", res)
	}
}
