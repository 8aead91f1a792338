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

// LockInput is a lock operation: Op is acquire, renew, release, status,
// fence (is Token the current grant's?) or close (of Session, whose one
// lock this partition is: a session worker holds one lock per session).
// Session is the session an acquire holds the lock under; Wait is an
// acquire's wait_seconds (a waiting acquire takes effect at one instant
// between call and return like any other: the model is the same).
type LockInput struct {
	Op      string
	User    string
	Lease   string // renew, release
	Session string // acquire, close
	Token   uint64 // fence
	Wait    int    // acquire
}

// LockOutput is what the server answered. Unknown: no definite answer.
type LockOutput struct {
	Unknown  bool
	Status   string // 200: acquired, held, released, available, closed
	Lease    string // shown to the holder only
	Token    uint64
	Holder   string // 200 held, or 409's current holder
	NotOwned bool   // 404 (close: the session is gone)
	Conflict bool   // 409
	Valid    bool   // fence 200
	Current  uint64 // fence 409: the last token granted
}

// lockState is the model's state of one lock. Lease "?" is a lease that a
// grant with an unknown outcome created: nobody has seen it yet.
type lockState struct {
	Holder  string
	Session string
	Lease   string
	Token   uint64
}

const unseenLease = "?"

func (s lockState) owns(user, lease string) bool {
	return s.Holder != "" && s.Holder == user && s.Lease != unseenLease && s.Lease == lease
}

func (s lockState) free() lockState { return lockState{Token: s.Token} }

// heldBy: the lock is held by user under session (a re-acquire is "held").
func (s lockState) heldBy(user, session string) bool {
	return s.Holder != "" && s.Holder == user && s.Session == session
}

// LockModel is the sequential specification of one lock without expiry
// (histories use TTLs and session TTLs far longer than the test): a grant
// of a free lock gets a new lease and the next fencing token; the holder
// re-acquiring (the same user under the same session, or none) keeps lease
// and token; anyone else gets 409 naming the holder; renew and release need
// the holder's lease (404 otherwise); release frees the lock and keeps the
// token; closing the session that holds it frees it too; a fence check is
// valid exactly for the token of the current hold, and otherwise names the
// last token granted. An operation with an unknown outcome either took
// effect or did not. Partitioned by lock name.
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
		case i.Op == "fence" && o.Valid:
			res = fmt.Sprintf("valid %s", o.Holder)
		case i.Op == "fence":
			res = fmt.Sprintf("stale current=%d", o.Current)
		default:
			res = fmt.Sprintf("%s %s tok=%d %s", o.Status, o.Holder, o.Token, short(o.Lease))
		}
		arg := short(i.Lease)
		switch {
		case i.Op == "fence":
			arg = fmt.Sprintf("tok=%d", i.Token)
		case i.Session != "":
			arg += " s=" + short(i.Session)
		}
		return fmt.Sprintf("%s(%s %s) -> %s", i.Op, i.User, arg, res)
	},
	DescribeState: func(st interface{}) string {
		s := st.(lockState)
		if s.Holder == "" {
			return fmt.Sprintf("free tok=%d", s.Token)
		}
		if s.Session != "" {
			return fmt.Sprintf("%s s=%s %s tok=%d", s.Holder, short(s.Session), short(s.Lease), s.Token)
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
				return []interface{}{s, lockState{Holder: i.User, Session: i.Session, Lease: unseenLease, Token: s.Token + 1}}
			}
			return []interface{}{s}
		}
		switch {
		case s.Holder == "":
			if o.Status == "acquired" && o.Token == s.Token+1 && o.Holder == i.User && o.Lease != "" {
				return []interface{}{lockState{Holder: i.User, Session: i.Session, Lease: o.Lease, Token: o.Token}}
			}
		case s.heldBy(i.User, i.Session):
			if o.Status == "held" && o.Token == s.Token && (s.Lease == unseenLease || s.Lease == o.Lease) {
				return []interface{}{lockState{Holder: i.User, Session: i.Session, Lease: o.Lease, Token: o.Token}}
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
				s.Lease = o.Lease
				return []interface{}{s}
			}
			if s.Lease == o.Lease {
				return []interface{}{s}
			}
		}
		return none
	case "fence":
		valid := s.Holder != "" && s.Token == i.Token
		switch {
		case o.Unknown:
			return []interface{}{s}
		case o.Valid:
			if valid && o.Holder == s.Holder {
				return []interface{}{s}
			}
		case o.Conflict:
			if !valid && o.Current == s.Token {
				return []interface{}{s}
			}
		}
		return none
	case "close":
		mine := s.Holder != "" && s.Session == i.Session
		switch {
		case o.Unknown:
			if mine {
				return []interface{}{s, s.free()}
			}
			return []interface{}{s}
		case o.Status == "closed":
			if mine {
				return []interface{}{s.free()}
			}
			return []interface{}{s}
		case o.NotOwned: // a retried close whose first try ended it
			if !mine {
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

// --- the semaphore model ---

// MaxSemLimit bounds the limit SemaphoreModel checks (the state is a fixed
// array, so that porcupine can compare states).
const MaxSemLimit = 4

// SemInput is a semaphore operation: Op is acquire (by User with HolderID:
// a retry of the same holder answers "held" with its slot), renew, release
// (Lease), status, or fence (Token).
type SemInput struct {
	Op       string
	User     string
	HolderID string
	Lease    string
	Token    uint64
	Wait     int // acquire's wait_seconds
}

// SemOutput is what the server answered. Unknown: no definite answer.
type SemOutput struct {
	Unknown  bool
	Status   string // 200: acquired, held, released
	Lease    string
	Token    uint64
	Full     bool   // 409 Semaphore full
	Holders  int    // 200 acquire/renew, 409: slots held
	NotOwned bool   // 404
	Valid    bool   // fence 200
	Stale    bool   // fence 409
	Current  uint64 // fence 409: the last token granted
	// Status: the tokens of the held slots, ascending.
	Tokens [MaxSemLimit]uint64
	N      int
}

type semSlot struct {
	User, HolderID, Lease string
	Token                 uint64
}

// semState is a semaphore's slots in grant order (ascending tokens) and the
// last token granted.
type semState struct {
	Slots [MaxSemLimit]semSlot
	N     int
	Last  uint64
}

func (s semState) find(match func(semSlot) bool) int {
	for k := 0; k < s.N; k++ {
		if match(s.Slots[k]) {
			return k
		}
	}
	return -1
}

func (s semState) remove(k int) semState {
	copy(s.Slots[k:s.N], s.Slots[k+1:s.N])
	s.N--
	s.Slots[s.N] = semSlot{}
	return s
}

func (s semState) add(sl semSlot) semState {
	s.Slots[s.N] = sl
	s.N++
	s.Last = sl.Token
	return s
}

// SemaphoreModel is the sequential specification of one semaphore of the
// given limit without expiry: an acquire of a new holder (user, holder_id)
// takes a slot with a new lease and the next fencing token while fewer
// than limit are held, and is 409 full (naming how many) otherwise; the
// same holder again is "held" with its slot; renew and release need a
// slot's lease (404 otherwise); release frees it; status lists exactly the
// held slots' tokens; a fence check is valid exactly for a held slot's
// token and otherwise names the last token granted. Never more than limit
// slots: no state has more. Partitioned by semaphore name.
func SemaphoreModel(limit int) porcupine.Model {
	if limit < 1 || limit > MaxSemLimit {
		panic("crashtest: semaphore limit out of the model's range")
	}
	return (&porcupine.NondeterministicModel{
		Partition: partitionByKey,
		Init:      func() []interface{} { return []interface{}{semState{}} },
		Step: func(st, in, out interface{}) []interface{} {
			return stepSem(limit, st.(semState), in.(SemInput), out.(SemOutput))
		},
		DescribeOperation: func(in, out interface{}) string {
			i, o := in.(SemInput), out.(SemOutput)
			res := "?"
			switch {
			case o.Unknown:
			case o.Full:
				res = fmt.Sprintf("409 full holders=%d", o.Holders)
			case o.NotOwned:
				res = "404"
			case o.Valid:
				res = "valid"
			case o.Stale:
				res = fmt.Sprintf("stale current=%d", o.Current)
			case i.Op == "status":
				res = fmt.Sprintf("tokens %v", o.Tokens[:o.N])
			default:
				res = fmt.Sprintf("%s tok=%d %s", o.Status, o.Token, short(o.Lease))
			}
			arg := short(i.Lease)
			switch i.Op {
			case "acquire":
				arg = i.HolderID
			case "fence":
				arg = fmt.Sprintf("tok=%d", i.Token)
			}
			return fmt.Sprintf("%s(%s %s) -> %s", i.Op, i.User, arg, res)
		},
		DescribeState: func(st interface{}) string {
			s := st.(semState)
			d := fmt.Sprintf("last=%d", s.Last)
			for _, sl := range s.Slots[:s.N] {
				d += fmt.Sprintf(" [%s/%s %s tok=%d]", sl.User, sl.HolderID, short(sl.Lease), sl.Token)
			}
			return d
		},
	}).ToModel()
}

func stepSem(limit int, s semState, i SemInput, o SemOutput) []interface{} {
	none := []interface{}{}
	owned := func(sl semSlot) bool { return sl.User == i.User && sl.Lease != unseenLease && sl.Lease == i.Lease }
	switch i.Op {
	case "acquire":
		k := s.find(func(sl semSlot) bool { return sl.User == i.User && sl.HolderID == i.HolderID })
		next := semSlot{User: i.User, HolderID: i.HolderID, Lease: unseenLease, Token: s.Last + 1}
		switch {
		case o.Unknown:
			if k < 0 && s.N < limit {
				return []interface{}{s, s.add(next)}
			}
			return []interface{}{s}
		case o.Full:
			if k < 0 && s.N >= limit && o.Holders == s.N {
				return []interface{}{s}
			}
		case o.Status == "acquired":
			if k < 0 && s.N < limit && o.Token == next.Token && o.Lease != "" && o.Holders == s.N+1 {
				next.Lease = o.Lease
				return []interface{}{s.add(next)}
			}
		case o.Status == "held":
			if k >= 0 && o.Token == s.Slots[k].Token && o.Holders == s.N &&
				(s.Slots[k].Lease == unseenLease || s.Slots[k].Lease == o.Lease) && o.Lease != "" {
				s.Slots[k].Lease = o.Lease
				return []interface{}{s}
			}
		}
		return none
	case "renew":
		k := s.find(owned)
		switch {
		case o.Unknown:
			return []interface{}{s}
		case o.NotOwned:
			if k < 0 {
				return []interface{}{s}
			}
		case o.Status == "held":
			if k >= 0 && o.Token == s.Slots[k].Token && o.Lease == i.Lease && o.Holders == s.N {
				return []interface{}{s}
			}
		}
		return none
	case "release":
		k := s.find(owned)
		switch {
		case o.Unknown:
			if k >= 0 {
				return []interface{}{s, s.remove(k)}
			}
			return []interface{}{s}
		case o.NotOwned:
			if k < 0 {
				return []interface{}{s}
			}
		case o.Status == "released":
			if k >= 0 {
				return []interface{}{s.remove(k)}
			}
		}
		return none
	case "status":
		if o.Unknown {
			return []interface{}{s}
		}
		if o.N != s.N {
			return none
		}
		for k := 0; k < s.N; k++ {
			if o.Tokens[k] != s.Slots[k].Token {
				return none
			}
		}
		return []interface{}{s}
	case "fence":
		valid := s.find(func(sl semSlot) bool { return sl.Token == i.Token }) >= 0
		switch {
		case o.Unknown:
			return []interface{}{s}
		case o.Valid:
			if valid {
				return []interface{}{s}
			}
		case o.Stale:
			if !valid && o.Current == s.Last {
				return []interface{}{s}
			}
		}
		return none
	}
	return none
}
