package crashtest

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// --- histories ---

// Outcome classifies how a request ended.
type Outcome uint8

// Outcomes.
const (
	// Acked: the server answered with a definite result (2xx, or a 4xx that
	// describes the state: 404 not owned, 409 held / version conflict).
	Acked Outcome = iota + 1
	// Unknown: the request may or may not have taken effect (connection
	// lost, timeout, 5xx). Its effect, if any, happened after Call and
	// before the server process died.
	Unknown
	// NotSent: the request never reached a server (connection refused).
	NotSent
)

// Never is the return time of an operation whose effect may still happen
// (porcupine's "infinity").
const Never = int64(math.MaxInt64)

// Op is one client operation of a recorded history.
type Op struct {
	Client  int
	Key     string // lock name or config key: the porcupine partition
	Input   any    // LockInput or ConfigInput
	Output  any    // LockOutput or ConfigOutput
	Call    int64  // ns since the history's start
	Return  int64  // ns since the history's start; Never while unknown
	Outcome Outcome
}

// History records operations from many goroutines.
type History struct {
	start time.Time
	// mu guards ops and kills.
	mu    sync.Mutex
	ops   []Op
	kills []int64 // times at which the server process was known dead
}

// NewHistory starts an empty history; times are measured from now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the history clock (monotonic ns since the start).
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Add records a finished operation.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Killed records that the server process died at or before now: no
// operation still in flight then can take effect later.
func (h *History) Killed() {
	t := h.Now()
	h.mu.Lock()
	h.kills = append(h.kills, t)
	h.mu.Unlock()
}

// Ops returns the recorded operations (a copy). Unknown operations get as
// return time the first kill after their call (Never if none), so that the
// checker may place their effect anywhere in between, or nowhere (the
// models treat an unknown outcome as "maybe applied").
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Op, 0, len(h.ops))
	for _, op := range h.ops {
		if op.Outcome == NotSent {
			continue
		}
		if op.Outcome == Unknown {
			op.Return = Never
			i := sort.Search(len(h.kills), func(i int) bool { return h.kills[i] >= op.Call })
			if i < len(h.kills) {
				op.Return = h.kills[i]
			}
		}
		out = append(out, op)
	}
	return out
}

// Porcupine converts ops to porcupine operations.
func Porcupine(ops []Op) []porcupine.Operation {
	out := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		out = append(out, porcupine.Operation{ClientId: op.Client, Input: op.Input, Output: op.Output,
			Call: op.Call, Return: op.Return, Metadata: op.Key})
	}
	return out
}

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	by := map[string][]porcupine.Operation{}
	var keys []string
	for _, op := range history {
		k, _ := op.Metadata.(string)
		if _, ok := by[k]; !ok {
			keys = append(keys, k)
		}
		by[k] = append(by[k], op)
	}
	sort.Strings(keys)
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, by[k])
	}
	return out
}

// --- the lock model ---

// LockInput is a lock operation: Op is acquire, renew, release or status.
type LockInput struct {
	Op    string
	User  string
	Lease string // renew, release
}

// LockOutput is what the server answered. Unknown: no definite answer.
type LockOutput struct {
	Unknown  bool
	Status   string // 200: acquired, held, released, available
	Lease    string // shown to the holder only
	Token    uint64
	Holder   string // 200 held, or 409's current holder
	NotOwned bool   // 404
	Conflict bool   // 409
}

// lockState is the model's state of one lock. Lease "?" is a lease that a
// grant with an unknown outcome created: nobody has seen it yet.
type lockState struct {
	Holder string
	Lease  string
	Token  uint64
}

const unseenLease = "?"

func (s lockState) owns(user, lease string) bool {
	return s.Holder != "" && s.Holder == user && s.Lease != unseenLease && s.Lease == lease
}

func (s lockState) free() lockState { return lockState{Token: s.Token} }

// LockModel is the sequential specification of one lock without expiry
// (histories use TTLs far longer than the test): a grant of a free lock gets
// a new lease and the next fencing token; the holder re-acquiring keeps
// lease and token; anyone else gets 409 naming the holder; renew and release
// need the holder's lease (404 otherwise); release frees the lock and keeps
// the token. An operation with an unknown outcome either took effect or did
// not. Partitioned by lock name.
var LockModel = (&porcupine.NondeterministicModel{
	Partition: partitionByKey,
	Init:      func() []interface{} { return []interface{}{lockState{}} },
	Step: func(st, in, out interface{}) []interface{} {
		s, i, o := st.(lockState), in.(LockInput), out.(LockOutput)
		return stepLock(s, i, o)
	},
	DescribeOperation: func(in, out interface{}) string {
		i, o := in.(LockInput), out.(LockOutput)
		res := "?"
		switch {
		case o.Unknown:
		case o.Conflict:
			res = "409 held by " + o.Holder
		case o.NotOwned:
			res = "404"
		default:
			res = fmt.Sprintf("%s %s tok=%d %s", o.Status, o.Holder, o.Token, short(o.Lease))
		}
		return fmt.Sprintf("%s(%s %s) -> %s", i.Op, i.User, short(i.Lease), res)
	},
	DescribeState: func(st interface{}) string {
		s := st.(lockState)
		if s.Holder == "" {
			return fmt.Sprintf("free tok=%d", s.Token)
		}
		return fmt.Sprintf("%s %s tok=%d", s.Holder, short(s.Lease), s.Token)
	},
}).ToModel()

func short(lease string) string {
	if len(lease) > 8 {
		return lease[:8]
	}
	return lease
}

func stepLock(s lockState, i LockInput, o LockOutput) []interface{} {
	none := []interface{}{}
	switch i.Op {
	case "acquire":
		if o.Unknown {
			if s.Holder == "" {
				return []interface{}{s, lockState{Holder: i.User, Lease: unseenLease, Token: s.Token + 1}}
			}
			return []interface{}{s}
		}
		switch {
		case s.Holder == "":
			if o.Status == "acquired" && o.Token == s.Token+1 && o.Holder == i.User && o.Lease != "" {
				return []interface{}{lockState{Holder: i.User, Lease: o.Lease, Token: o.Token}}
			}
		case s.Holder == i.User:
			if o.Status == "held" && o.Token == s.Token && (s.Lease == unseenLease || s.Lease == o.Lease) {
				return []interface{}{lockState{Holder: i.User, Lease: o.Lease, Token: o.Token}}
			}
		default:
			if o.Conflict && o.Holder == s.Holder {
				return []interface{}{s}
			}
		}
		return none
	case "renew":
		owns := s.owns(i.User, i.Lease)
		switch {
		case o.Unknown:
			return []interface{}{s}
		case o.NotOwned:
			if !owns {
				return []interface{}{s}
			}
		case o.Status == "held":
			if owns && o.Token == s.Token && o.Lease == s.Lease {
				return []interface{}{s}
			}
		}
		return none
	case "release":
		owns := s.owns(i.User, i.Lease)
		switch {
		case o.Unknown:
			if owns {
				return []interface{}{s, s.free()}
			}
			return []interface{}{s}
		case o.NotOwned:
			if !owns {
				return []interface{}{s}
			}
		case o.Status == "released":
			if owns {
				return []interface{}{s.free()}
			}
		}
		return none
	case "status":
		switch {
		case o.Unknown:
			return []interface{}{s}
		case o.Status == "available":
			if s.Holder == "" {
				return []interface{}{s}
			}
		case o.Status == "held":
			if s.Holder != o.Holder || s.Token != o.Token {
				return none
			}
			if i.User != s.Holder {
				return []interface{}{s}
			}
			if s.Lease == unseenLease && o.Lease != "" {
				return []interface{}{lockState{Holder: s.Holder, Lease: o.Lease, Token: s.Token}}
			}
			if s.Lease == o.Lease {
				return []interface{}{s}
			}
		}
		return none
	}
	return none
}

// --- the config key model ---

// ConfigInput is a config operation: Op is put, get, delete or rollback
// (to version To). Expected is the If-Match condition of a put or rollback
// (nil: unconditional; 0: create only).
type ConfigInput struct {
	Op       string
	Value    string
	To       int64
	Expected *int64
}

// ConfigOutput is what the server answered.
type ConfigOutput struct {
	Unknown  bool
	Version  int64  // put/get/rollback: the version written or read
	Value    string // get, rollback: the value read or written
	NotFound bool   // get/delete: 404
	Conflict bool   // put: 409
	Current  int64  // 409's current_version
}

type configState struct {
	Version int64 // last version ever written (kept after a delete)
	Value   string
	Live    bool
	// Since is the first version of the key's current life (a delete drops
	// every version before); Hist holds the values of the last len(Hist)
	// versions, version v at Hist[v%len(Hist)] (an array: states compare
	// with ==).
	Since int64
	Hist  [32]string
}

// written is s after a write of value at version s.Version+1.
func (s configState) written(value string) configState {
	next := configState{Version: s.Version + 1, Value: value, Live: true, Since: s.Since, Hist: s.Hist}
	if !s.Live {
		next.Since, next.Hist = next.Version, [32]string{}
	}
	next.Hist[next.Version%int64(len(next.Hist))] = value
	return next
}

// What the state says of a past version: its value is known, it does not
// exist (the key does not, or the version is of an earlier life or not yet
// written: a rollback to it is 404), or it exists but is older than Hist
// (the server keeps it: a rollback to it writes a value the model takes
// from the answer).
const (
	versionKnown = iota
	versionAbsent
	versionForgotten
)

// valueOf is the value of version v, and which of the three cases it is.
func (s configState) valueOf(v int64) (string, int) {
	switch {
	case !s.Live || v < s.Since || v > s.Version:
		return "", versionAbsent
	case v <= s.Version-int64(len(s.Hist)):
		return "", versionForgotten
	}
	return s.Hist[v%int64(len(s.Hist))], versionKnown
}

func (s configState) current() int64 {
	if s.Live {
		return s.Version
	}
	return 0
}

// ConfigModel is the sequential specification of one config key: every
// write creates version last+1 (after a delete too, so a version never
// names two values); a conditional write whose condition fails is a 409 with
// the current version (0 when the key does not exist); reads see the last
// write; delete removes a live key (404 otherwise); a rollback to version N
// writes version last+1 with N's value (404 for a key that does not exist
// or a version of an earlier life or not yet written; the crash test's
// keys never prune). Partitioned by key.
var ConfigModel = (&porcupine.NondeterministicModel{
	Partition: partitionByKey,
	Init:      func() []interface{} { return []interface{}{configState{}} },
	Step: func(st, in, out interface{}) []interface{} {
		return stepConfig(st.(configState), in.(ConfigInput), out.(ConfigOutput))
	},
	DescribeOperation: func(in, out interface{}) string {
		i, o := in.(ConfigInput), out.(ConfigOutput)
		exp := ""
		if i.Op == "rollback" {
			exp = fmt.Sprintf(" to %d", i.To)
		}
		if i.Expected != nil {
			exp += fmt.Sprintf(" if-match %d", *i.Expected)
		}
		res := "?"
		switch {
		case o.Unknown:
		case o.Conflict:
			res = fmt.Sprintf("409 current=%d", o.Current)
		case o.NotFound:
			res = "404"
		default:
			res = fmt.Sprintf("v%d %s", o.Version, o.Value)
		}
		return fmt.Sprintf("%s(%s%s) -> %s", i.Op, i.Value, exp, res)
	},
	DescribeState: func(st interface{}) string {
		s := st.(configState)
		return fmt.Sprintf("v%d %s live=%v", s.Version, s.Value, s.Live)
	},
}).ToModel()

func stepConfig(s configState, i ConfigInput, o ConfigOutput) []interface{} {
	none := []interface{}{}
	switch i.Op {
	case "rollback":
		ok := i.Expected == nil || *i.Expected == s.current()
		v, has := s.valueOf(i.To)
		switch {
		case o.Unknown:
			if ok && has == versionKnown {
				return []interface{}{s, s.written(v)}
			}
			return []interface{}{s} // (a forgotten version's value is unknown: assumed not applied)
		case o.Conflict:
			if !ok && o.Current == s.current() {
				return []interface{}{s}
			}
		case o.NotFound:
			if ok && has == versionAbsent {
				return []interface{}{s}
			}
		default:
			if ok && o.Version == s.Version+1 && (has == versionKnown && o.Value == v || has == versionForgotten) {
				return []interface{}{s.written(o.Value)}
			}
		}
		return none
	case "put":
		ok := i.Expected == nil || *i.Expected == s.current()
		next := s.written(i.Value)
		switch {
		case o.Unknown:
			if ok {
				return []interface{}{s, next}
			}
			return []interface{}{s}
		case o.Conflict:
			if !ok && o.Current == s.current() {
				return []interface{}{s}
			}
		default:
			if ok && o.Version == next.Version {
				return []interface{}{next}
			}
		}
		return none
	case "get":
		switch {
		case o.Unknown:
			return []interface{}{s}
		case o.NotFound:
			if !s.Live {
				return []interface{}{s}
			}
		default:
			if s.Live && o.Version == s.Version && o.Value == s.Value {
				return []interface{}{s}
			}
		}
		return none
	case "delete":
		switch {
		case o.Unknown:
			if s.Live {
				return []interface{}{s, configState{Version: s.Version, Since: s.Since}}
			}
			return []interface{}{s}
		case o.NotFound:
			if !s.Live {
				return []interface{}{s}
			}
		default:
			if s.Live {
				return []interface{}{configState{Version: s.Version, Since: s.Since}}
			}
		}
		return none
	}
	return none
}
