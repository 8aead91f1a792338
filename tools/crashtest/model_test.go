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

func fence(user string, tok uint64) LockInput { return LockInput{Op: "fence", User: user, Token: tok} }
func sacq(user, sess string) LockInput        { return LockInput{Op: "acquire", User: user, Session: sess} }
func closeS(user, sess string) LockInput      { return LockInput{Op: "close", User: user, Session: sess} }

var closed = LockOutput{Status: "closed"}

// Fence checks and session closes in the lock model: planted histories
// rejected, correct ones accepted.
func TestLockModelFenceAndSessions(t *testing.T) {
	bad := []struct {
		name string
		h    []porcupine.Operation
	}{
		{"fence valid for a released grant", build(
			opb{client: 0, in: acq("a"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 0, in: rel("a", "L1"), out: LockOutput{Status: "released"}, call: 20, ret: 30},
			opb{client: 1, in: fence("b", 1), out: LockOutput{Valid: true, Token: 1, Holder: "a"}, call: 40, ret: 50},
		)},
		{"fence valid for an older grant", build(
			opb{client: 0, in: acq("a"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 0, in: rel("a", "L1"), out: LockOutput{Status: "released"}, call: 20, ret: 30},
			opb{client: 1, in: acq("b"), out: granted("b", "L2", 2), call: 40, ret: 50},
			opb{client: 2, in: fence("c", 1), out: LockOutput{Valid: true, Token: 1, Holder: "a"}, call: 60, ret: 70},
		)},
		{"fence stale for the current grant", build(
			opb{client: 0, in: acq("a"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 1, in: fence("b", 1), out: LockOutput{Conflict: true, Current: 1}, call: 20, ret: 30},
		)},
		{"fence names a wrong current token", build(
			opb{client: 0, in: acq("a"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 1, in: fence("b", 7), out: LockOutput{Conflict: true, Current: 0}, call: 20, ret: 30},
		)},
		{"closed session still holds its lock", build(
			opb{client: 0, in: sacq("a", "S1"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 0, in: closeS("a", "S1"), out: closed, call: 20, ret: 30},
			opb{client: 1, in: acq("b"), out: LockOutput{Conflict: true, Holder: "a"}, call: 40, ret: 50},
		)},
		{"a close frees another session's lock", build(
			opb{client: 0, in: sacq("a", "S1"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 1, in: closeS("b", "S2"), out: closed, call: 20, ret: 30},
			opb{client: 1, in: acq("b"), out: granted("b", "L2", 2), call: 40, ret: 50},
		)},
		{"another session of the same user re-acquires", build(
			opb{client: 0, in: sacq("a", "S1"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 0, in: sacq("a", "S2"), out: LockOutput{Status: "held", Holder: "a", Lease: "L1", Token: 1}, call: 20, ret: 30},
		)},
	}
	for _, c := range bad {
		t.Run("rejects "+c.name, func(t *testing.T) {
			if res := checkLock(t, c.h); res != porcupine.Illegal {
				t.Fatalf("result %v, want Illegal", res)
			}
		})
	}
	good := []struct {
		name string
		h    []porcupine.Operation
	}{
		{"fence valid, then stale after the next grant", build(
			opb{client: 0, in: acq("a"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 1, in: fence("b", 1), out: LockOutput{Valid: true, Token: 1, Holder: "a"}, call: 20, ret: 30},
			opb{client: 1, in: fence("b", 2), out: LockOutput{Conflict: true, Current: 1}, call: 32, ret: 34},
			opb{client: 0, in: rel("a", "L1"), out: LockOutput{Status: "released"}, call: 40, ret: 50},
			opb{client: 1, in: fence("b", 1), out: LockOutput{Conflict: true, Current: 1}, call: 60, ret: 70},
			opb{client: 2, in: acq("c"), out: granted("c", "L3", 2), call: 80, ret: 90},
			opb{client: 1, in: fence("b", 1), out: LockOutput{Conflict: true, Current: 2}, call: 100, ret: 110},
		)},
		{"a fence concurrent with a grant sees either", build(
			opb{client: 0, in: acq("a"), out: granted("a", "L1", 1), call: 0, ret: 100},
			opb{client: 1, in: fence("b", 1), out: LockOutput{Conflict: true, Current: 0}, call: 10, ret: 20},
			opb{client: 2, in: fence("c", 1), out: LockOutput{Valid: true, Token: 1, Holder: "a"}, call: 30, ret: 40},
		)},
		{"session lock: held again, closed, taken by another", build(
			opb{client: 0, in: sacq("a", "S1"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 0, in: sacq("a", "S1"), out: LockOutput{Status: "held", Holder: "a", Lease: "L1", Token: 1}, call: 20, ret: 30},
			opb{client: 1, in: sacq("b", "S2"), out: LockOutput{Conflict: true, Holder: "a"}, call: 25, ret: 35},
			opb{client: 0, in: closeS("a", "S1"), out: closed, call: 40, ret: 50},
			opb{client: 1, in: sacq("b", "S2"), out: granted("b", "L2", 2), call: 60, ret: 70},
		)},
		{"unknown close, retried: 404", build(
			opb{client: 0, in: sacq("a", "S1"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 0, in: closeS("a", "S1"), out: unknownLock, call: 20, ret: 30},
			opb{client: 0, in: closeS("a", "S1"), out: LockOutput{NotOwned: true}, call: 40, ret: 50},
			opb{client: 1, in: acq("b"), out: granted("b", "L2", 2), call: 60, ret: 70},
		)},
		{"unknown close that did not happen", build(
			opb{client: 0, in: sacq("a", "S1"), out: granted("a", "L1", 1), call: 0, ret: 10},
			opb{client: 0, in: closeS("a", "S1"), out: unknownLock, call: 20, ret: 30},
			opb{client: 1, in: acq("b"), out: LockOutput{Conflict: true, Holder: "a"}, call: 60, ret: 70},
		)},
	}
	for _, c := range good {
		t.Run("accepts "+c.name, func(t *testing.T) {
			if res := checkLock(t, c.h); res != porcupine.Ok {
				t.Fatalf("result %v, want Ok", res)
			}
		})
	}
}

func sAcq(user, holder string) SemInput { return SemInput{Op: "acquire", User: user, HolderID: holder} }
func sRel(user, lease string) SemInput  { return SemInput{Op: "release", User: user, Lease: lease} }
func sGot(lease string, tok uint64, holders int) SemOutput {
	return SemOutput{Status: "acquired", Lease: lease, Token: tok, Holders: holders}
}
func sStatus(toks ...uint64) SemOutput {
	o := SemOutput{N: len(toks)}
	copy(o.Tokens[:], toks)
	return o
}

var sReleased = SemOutput{Status: "released"}

func checkSem(t *testing.T, limit int, h []porcupine.Operation) porcupine.CheckResult {
	t.Helper()
	res, _ := porcupine.CheckOperationsVerbose(SemaphoreModel(limit), h, 10*time.Second)
	return res
}

// The semaphore model: never more than limit, tokens strictly increasing,
// holder-id retries, fence checks.
func TestSemaphoreModel(t *testing.T) {
	bad := []struct {
		name string
		h    []porcupine.Operation
	}{
		{"more than limit held", build(
			opb{client: 0, in: sAcq("a", "x"), out: sGot("L1", 1, 1), call: 0, ret: 10},
			opb{client: 1, in: sAcq("b", "y"), out: sGot("L2", 2, 2), call: 20, ret: 30},
			opb{client: 2, in: sAcq("c", "z"), out: sGot("L3", 3, 3), call: 40, ret: 50},
		)},
		{"token repeats after a release", build(
			opb{client: 0, in: sAcq("a", "x"), out: sGot("L1", 1, 1), call: 0, ret: 10},
			opb{client: 0, in: sRel("a", "L1"), out: sReleased, call: 20, ret: 30},
			opb{client: 1, in: sAcq("b", "y"), out: sGot("L2", 1, 1), call: 40, ret: 50},
		)},
		{"full while a slot is free", build(
			opb{client: 0, in: sAcq("a", "x"), out: sGot("L1", 1, 1), call: 0, ret: 10},
			opb{client: 1, in: sAcq("b", "y"), out: SemOutput{Full: true, Holders: 1}, call: 20, ret: 30},
		)},
		{"a retry of the same holder gets a second slot", build(
			opb{client: 0, in: sAcq("a", "x"), out: sGot("L1", 1, 1), call: 0, ret: 10},
			opb{client: 0, in: sAcq("a", "x"), out: sGot("L2", 2, 2), call: 20, ret: 30},
		)},
		{"acknowledged slot lost", build(
			opb{client: 0, in: sAcq("a", "x"), out: sGot("L1", 1, 1), call: 0, ret: 10},
			opb{client: 1, in: SemInput{Op: "status", User: "b"}, out: sStatus(), call: 20, ret: 30},
		)},
		{"fence valid for a released slot", build(
			opb{client: 0, in: sAcq("a", "x"), out: sGot("L1", 1, 1), call: 0, ret: 10},
			opb{client: 0, in: sRel("a", "L1"), out: sReleased, call: 20, ret: 30},
			opb{client: 1, in: SemInput{Op: "fence", Token: 1}, out: SemOutput{Valid: true}, call: 40, ret: 50},
		)},
		{"release of another user's slot", build(
			opb{client: 0, in: sAcq("a", "x"), out: sGot("L1", 1, 1), call: 0, ret: 10},
			opb{client: 1, in: sRel("b", "L1"), out: sReleased, call: 20, ret: 30},
		)},
	}
	for _, c := range bad {
		t.Run("rejects "+c.name, func(t *testing.T) {
			if res := checkSem(t, 2, c.h); res != porcupine.Illegal {
				t.Fatalf("result %v, want Illegal", res)
			}
		})
	}
	good := build(
		opb{client: 0, in: sAcq("a", "x"), out: sGot("L1", 1, 1), call: 0, ret: 10},
		opb{client: 1, in: sAcq("b", "y"), out: SemOutput{Unknown: true}, call: 20, ret: 100},
		opb{client: 2, in: sAcq("c", "z"), out: SemOutput{Full: true, Holders: 2}, call: 110, ret: 120},
		opb{client: 1, in: sAcq("b", "y"), out: SemOutput{Status: "held", Lease: "L2", Token: 2, Holders: 2}, call: 130, ret: 140},
		opb{client: 3, in: SemInput{Op: "status", User: "d"}, out: sStatus(1, 2), call: 150, ret: 160},
		opb{client: 3, in: SemInput{Op: "fence", Token: 2}, out: SemOutput{Valid: true}, call: 150, ret: 160},
		opb{client: 0, in: sRel("a", "L1"), out: sReleased, call: 170, ret: 180},
		opb{client: 3, in: SemInput{Op: "fence", Token: 1}, out: SemOutput{Stale: true, Current: 2}, call: 190, ret: 200},
		opb{client: 2, in: sAcq("c", "z"), out: sGot("L3", 3, 2), call: 210, ret: 220},
		opb{client: 1, in: SemInput{Op: "renew", User: "b", Lease: "L2"}, out: SemOutput{Status: "held", Lease: "L2", Token: 2, Holders: 2}, call: 230, ret: 240},
		opb{client: 0, in: sRel("a", "L1"), out: SemOutput{NotOwned: true}, call: 250, ret: 260},
		opb{client: 3, in: SemInput{Op: "status", User: "d"}, out: sStatus(2, 3), call: 270, ret: 280},
	)
	if res := checkSem(t, 2, good); res != porcupine.Ok {
		t.Fatalf("linearizable semaphore history: result %v, want Ok", res)
	}
}
