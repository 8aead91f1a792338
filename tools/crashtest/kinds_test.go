package crashtest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"
	"time"
)

// The crash loop's workloads for sessions, semaphores and lock-delay, and
// what is checked of each after the last kill -9.

// --- sessions ---

// sessionTTL is long enough that no session expires during a run (its
// worker keeps it alive every keepaliveEvery): the lock model has no expiry.
const (
	sessionTTL     = 30
	keepaliveEvery = 300 * time.Millisecond
)

// sessionClient is one user's worker on the session locks ("shot-*",
// contended by every session worker): it creates a session, acquires one
// lock under it (some acquires waiting), checks fences, releases, and
// closes the session, which frees the lock. Each session only ever touches
// one lock, so that the close is an operation of that lock's porcupine
// partition. Keepalives run between operations; one that finds the session
// gone is a bug (nothing may end a live session but its close).
type sessionClient struct {
	id          int
	user, token string
	locks       []string
	rng         *rand.Rand

	sess       string    // the current session ("" none)
	lock       string    // its lock
	lease      string    // the lease held under it ("" none)
	seen       uint64    // highest token seen on lock
	keptAt     time.Time // the last acknowledged create or keepalive
	retry      *LockInput
	records    []lockRecord
	sessions   int // created
	keepalives int // acknowledged
}

func newSessionClient(id int, locks []string, seed uint64) *sessionClient {
	return &sessionClient{id: id, user: fmt.Sprintf("s%d", id), token: fmt.Sprintf("tok-s%d", id), locks: locks,
		rng: rand.New(rand.NewPCG(seed, uint64(id)+3000))}
}

func (c *sessionClient) step(cl *cluster) bool {
	if c.sess == "" {
		status, b, outcome := cl.call("POST", "/sessions", c.token, map[string]any{"ttl_seconds": sessionTTL}, nil)
		switch {
		case outcome == NotSent:
			return false
		case outcome == Unknown:
			return true // created or not: an orphan expires unused
		case status != 200:
			cl.bug("POST /sessions as %s: %d %s", c.user, status, b)
			return true
		}
		var r struct {
			ID string `json:"session_id"`
		}
		if json.Unmarshal(b, &r) != nil || r.ID == "" {
			cl.bug("POST /sessions: no session_id in %s", b)
			return true
		}
		c.sess, c.lock, c.lease, c.seen, c.keptAt = r.ID, c.locks[c.rng.IntN(len(c.locks))], "", 0, time.Now()
		c.sessions++
		return true
	}
	if c.retry == nil && time.Since(c.keptAt) > keepaliveEvery {
		status, b, outcome := cl.call("POST", "/sessions/"+c.sess+"/keepalive", c.token, nil, nil)
		switch {
		case outcome == NotSent:
			return false
		case outcome == Acked && status == 200:
			c.keptAt = time.Now()
			c.keepalives++
		case outcome == Acked:
			cl.bug("keepalive of live session %s of %s: %d %s", c.sess, c.user, status, b)
			c.sess = "" // lost: carry on with a new one
		}
		return true
	}
	var in LockInput
	switch r := c.rng.IntN(20); {
	case c.retry != nil:
		in = *c.retry
	case r < 2:
		in = LockInput{Op: "status", User: c.user}
	case r < 4:
		in = LockInput{Op: "fence", User: c.user, Token: max(c.seen+uint64(c.rng.IntN(3)), 1) - 1}
	case r < 5 && c.rng.IntN(8) == 0:
		in = LockInput{Op: "close", User: c.user, Session: c.sess}
	case c.lease == "":
		in = LockInput{Op: "acquire", User: c.user, Session: c.sess}
		if c.rng.IntN(3) == 0 {
			in.Wait = 1
		}
	case r < 14:
		in = LockInput{Op: "release", User: c.user, Lease: c.lease}
	default:
		in = LockInput{Op: "acquire", User: c.user, Session: c.sess} // held: the same lease
	}
	out, rec := cl.lockOp(c.id, c.user, c.token, c.lock, in, 0)
	if rec.Outcome == NotSent {
		return false
	}
	c.records = append(c.records, rec)
	c.seen = max(c.seen, out.Token, out.Current)
	if out.Unknown {
		if in.Op != "status" && in.Op != "fence" {
			c.retry = &in
		}
		return true
	}
	c.retry = nil
	switch {
	case in.Op == "close":
		c.sess, c.lease = "", ""
	case in.Op == "acquire" && out.Status != "":
		c.lease = out.Lease
	case in.Op == "acquire" && out.Conflict:
		c.lease = ""
	case in.Op == "release":
		c.lease = ""
	}
	return true
}

// verifySessions: after the last kill -9 every session its worker believes
// live (created or kept alive, never closed) still is, and holds the lock
// its worker was last told it holds, with that lease and token.
func verifySessions(t *testing.T, cl *cluster, workers []*sessionClient) {
	t.Helper()
	live, held, created, kept := 0, 0, 0, 0
	for _, c := range workers {
		created, kept = created+c.sessions, kept+c.keepalives
		if c.sess == "" || c.retry != nil {
			continue
		}
		status, b, outcome := cl.call("POST", "/sessions/"+c.sess+"/keepalive", c.token, nil, nil)
		if outcome != Acked {
			t.Fatalf("keepalive after the last kill -9: no answer")
		}
		if status != 200 {
			t.Errorf("session %s of %s: acknowledged live (last keepalive %s ago); after kill -9: %d %s",
				c.sess, c.user, time.Since(c.keptAt).Round(time.Millisecond), status, b)
			continue
		}
		live++
		if c.lease == "" {
			continue
		}
		out, _ := cl.lockOp(verifierID, c.user, c.token, c.lock, LockInput{Op: "status", User: c.user}, 0)
		if out.Status != "held" || out.Holder != c.user || out.Lease != c.lease {
			t.Errorf("lock %s: %s was told it holds lease %s under session %s; after kill -9 the server says %+v",
				c.lock, c.user, c.lease, c.sess, out)
		}
		held++
	}
	t.Logf("sessions: %d created, %d keepalives; %d live ones and %d of their locks checked after the last kill -9", created, kept, live, held)
}

// --- semaphores ---

// semLimit is the limit of the crash loop's semaphores (fewer than the
// semaphore workers: they contend).
const semLimit = 2

type semResp struct {
	Status       string `json:"status"`
	LeaseID      string `json:"lease_id"`
	FencingToken uint64 `json:"fencing_token"`
	Holders      any    `json:"holders"` // a count (acquire, renew), or the slots (status)
	Limit        int    `json:"limit"`
	Valid        bool   `json:"valid"`
	Current      uint64 `json:"current_fencing_token"`
	Semaphore    struct {
		Holders int `json:"holders"`
	} `json:"semaphore"`
}

type semSlotResp struct {
	Holder       string `json:"holder"`
	LeaseID      string `json:"lease_id"`
	FencingToken uint64 `json:"fencing_token"`
}

// semOp runs one semaphore operation as user and records it. asAdmin
// operations (the checks' own) are not recorded.
func (cl *cluster) semOp(client int, user, token, name string, in SemInput) (SemOutput, Outcome, []semSlotResp) {
	var (
		method = "POST"
		path   = "/semaphores/" + name + "/" + in.Op
		body   any
	)
	switch in.Op {
	case "acquire":
		req := map[string]any{"limit": semLimit, "ttl_seconds": 3600, "holder_id": in.HolderID}
		if in.Wait > 0 {
			req["wait_seconds"] = in.Wait
		}
		body = req
	case "renew":
		body = map[string]any{"ttl_seconds": 3600, "lease_id": in.Lease}
	case "release":
		body = map[string]any{"lease_id": in.Lease}
	case "status":
		method, path = "GET", "/semaphores/"+name
	case "fence":
		method, path = "GET", "/semaphores/"+name+"/fence?token="+strconv.FormatUint(in.Token, 10)
	}
	call := cl.hist.Now()
	status, b, outcome := cl.call(method, path, token, body, nil)
	ret := cl.hist.Now()
	out := SemOutput{Unknown: outcome != Acked}
	var slots []semSlotResp
	if outcome == Acked {
		var r semResp
		if err := json.Unmarshal(b, &r); err != nil {
			cl.bug("%s %s: %d, body is not JSON: %q", method, path, status, b)
		}
		switch {
		case status == 200 && in.Op == "status":
			var st struct {
				Holders []semSlotResp `json:"holders"`
			}
			_ = json.Unmarshal(b, &st)
			slots = st.Holders
			if len(slots) > MaxSemLimit || len(slots) > semLimit {
				cl.bug("%s %s: more than the limit %d held: %s", method, path, semLimit, b)
				slots = slots[:min(len(slots), MaxSemLimit)]
			}
			var toks []uint64
			for _, sl := range slots {
				toks = append(toks, sl.FencingToken)
			}
			sort.Slice(toks, func(i, j int) bool { return toks[i] < toks[j] })
			out.N = copy(out.Tokens[:], toks)
		case status == 200 && in.Op == "fence":
			out.Valid = r.Valid && r.FencingToken == in.Token
			if !out.Valid {
				cl.bug("%s %s: 200 that is not a valid check of token %d: %s", method, path, in.Token, b)
			}
		case status == 200:
			n, _ := r.Holders.(float64)
			out.Status, out.Lease, out.Token, out.Holders = r.Status, r.LeaseID, r.FencingToken, int(n)
		case status == 404 && (in.Op == "renew" || in.Op == "release"):
			out.NotOwned = true
		case status == 409 && in.Op == "acquire" && r.Semaphore.Holders > 0:
			out.Full, out.Holders = true, r.Semaphore.Holders
		case status == 409 && in.Op == "fence" && !r.Valid:
			out.Stale, out.Current = true, r.Current
		default:
			cl.bug("%s %s as %s: unexpected %d %s", method, path, user, status, b)
			out, outcome = SemOutput{Unknown: true}, Unknown
		}
	}
	read := in.Op == "status" || in.Op == "fence"
	if client != verifierID && outcome != NotSent && !(read && outcome == Unknown) {
		cl.hist.Add(Op{Client: client, Key: name, Input: in, Output: out, Call: call, Return: ret, Outcome: outcome})
	}
	return out, outcome, slots
}

// semClient is one user's worker on the shared semaphores: it acquires a
// slot (its holder id fixed per semaphore, so that a retry after an unknown
// outcome answers the slot it may have got), sometimes waiting in the
// queue, renews, releases, lists the slots and checks fences. After an
// unknown outcome it retries the same operation until it is definite.
type semClient struct {
	id          int
	user, token string
	sems        []string
	rng         *rand.Rand
	held        map[string]SemOutput // semaphore → the slot believed held
	seen        map[string]uint64
	retry       map[string]SemInput
	ops         int
}

func newSemClient(id int, sems []string, seed uint64) *semClient {
	return &semClient{id: id, user: fmt.Sprintf("m%d", id), token: fmt.Sprintf("tok-m%d", id), sems: sems,
		rng: rand.New(rand.NewPCG(seed, uint64(id)+4000)), held: map[string]SemOutput{}, seen: map[string]uint64{},
		retry: map[string]SemInput{}}
}

func (c *semClient) holderID(name string) string { return "w" + strconv.Itoa(c.id) + "-" + name }

func (c *semClient) step(cl *cluster) bool {
	name := c.sems[c.rng.IntN(len(c.sems))]
	in, retrying := c.retry[name]
	if !retrying {
		slot, holding := c.held[name]
		switch r := c.rng.IntN(20); {
		case r < 2:
			in = SemInput{Op: "status", User: c.user}
		case r < 5:
			in = SemInput{Op: "fence", User: c.user, Token: max(c.seen[name]+uint64(c.rng.IntN(3)), 1) - 1}
		case !holding:
			in = SemInput{Op: "acquire", User: c.user, HolderID: c.holderID(name)}
			if c.rng.IntN(3) == 0 {
				in.Wait = 1
			}
		case r < 12:
			in = SemInput{Op: "release", User: c.user, Lease: slot.Lease}
		case r < 16:
			in = SemInput{Op: "renew", User: c.user, Lease: slot.Lease}
		default:
			in = SemInput{Op: "acquire", User: c.user, HolderID: c.holderID(name)} // held: the same slot
		}
	}
	out, outcome, _ := cl.semOp(c.id, c.user, c.token, name, in)
	if outcome == NotSent {
		return false
	}
	c.ops++
	c.seen[name] = max(c.seen[name], out.Token, out.Current)
	if out.Unknown {
		if in.Op != "status" && in.Op != "fence" {
			c.retry[name] = in
		}
		return true
	}
	delete(c.retry, name)
	switch {
	case in.Op == "acquire" && out.Status != "":
		c.held[name] = out
	case in.Op == "acquire" && out.Full:
		delete(c.held, name)
	case in.Op == "release", out.NotOwned:
		delete(c.held, name)
	}
	return true
}

// verifySemaphores: after the last kill -9 every slot a worker was last
// told it holds is still held, with its lease and token; then (the admin
// key releasing every slot) a fresh grant gets a token above every token
// ever acknowledged.
func verifySemaphores(t *testing.T, cl *cluster, workers []*semClient, sems []string) {
	t.Helper()
	if len(workers) == 0 {
		return
	}
	checked := 0
	for _, c := range workers {
		for name, want := range c.held {
			if _, unsure := c.retry[name]; unsure {
				continue
			}
			_, outcome, slots := cl.semOp(verifierID, c.user, c.token, name, SemInput{Op: "status", User: c.user})
			if outcome != Acked {
				t.Fatalf("semaphore status %s after restart: no answer", name)
			}
			checked++
			found := false
			for _, sl := range slots {
				if sl.LeaseID == want.Lease && sl.FencingToken == want.Token && sl.Holder == c.user {
					found = true
				}
			}
			if !found {
				t.Errorf("semaphore %s: %s was told it holds slot %s token %d; after kill -9 the slots are %+v",
					name, c.user, want.Lease, want.Token, slots)
			}
		}
	}
	maxToken := map[string]uint64{}
	for _, op := range cl.hist.Ops() {
		if _, ok := op.Input.(SemInput); ok {
			maxToken[op.Key] = max(maxToken[op.Key], op.Output.(SemOutput).Token)
		}
	}
	for _, name := range sems {
		_, _, slots := cl.semOp(verifierID, "admin", "crash-admin", name, SemInput{Op: "status"})
		for _, sl := range slots {
			out, _, _ := cl.semOp(verifierID, "admin", "crash-admin", name, SemInput{Op: "release", Lease: sl.LeaseID})
			if out.Status != "released" {
				t.Fatalf("admin release of %s slot %s: %+v", name, sl.LeaseID, out)
			}
		}
		out, _, _ := cl.semOp(verifierID, "verifier", "tok-verifier", name, SemInput{Op: "acquire", User: "verifier", HolderID: "v"})
		if out.Status != "acquired" || out.Token <= maxToken[name] {
			t.Errorf("semaphore %s: fresh grant after the last kill -9: %+v, but token %d was acknowledged before", name, out, maxToken[name])
		}
	}
	t.Logf("semaphores: %d acknowledged slots checked after the last kill -9; fresh grants above every acknowledged token", checked)
}

// --- lock-delay ---

// The lock-delay workload: short holds (ttl 1 s) with a lock-delay of 1 s
// on the "delay-*" locks, never released, so every hold ends by expiry
// (many of them while the server is down) and puts the lock in lock-delay.
const (
	delayTTL   = time.Second
	delayDelay = time.Second
)

// delayRecord is an acknowledged answer on a delay lock.
type delayRecord struct {
	lock        string
	op          string
	status      int
	token       uint64
	lease       string
	acquired    bool      // a new grant
	expiresAt   time.Time // 200: the hold's; 409 lock-delay: the expired hold's
	availableAt time.Time // 409 lock-delay
	callWall    time.Time
}

// delayClient is one user's worker on the delay locks: it acquires a free
// lock, renews it a few times (or not at all), then leaves it to expire,
// and tries again once its client-side clock says it expired (meanwhile
// others' attempts meet its hold, then the lock-delay).
type delayClient struct {
	id          int
	user, token string
	locks       []string
	rng         *rand.Rand
	holds       map[string]*delayHold
	records     []delayRecord
}

type delayHold struct {
	lease  string
	exp    time.Time
	renews int // left before it is left to expire
}

func newDelayClient(id int, locks []string, seed uint64) *delayClient {
	return &delayClient{id: id, user: fmt.Sprintf("d%d", id), token: fmt.Sprintf("tok-d%d", id), locks: locks,
		rng: rand.New(rand.NewPCG(seed, uint64(id)+5000)), holds: map[string]*delayHold{}}
}

// delayOp acquires (or renews) a delay lock and returns the acknowledged
// answer, if any.
func (cl *cluster) delayOp(token, name, op, lease string) (delayRecord, Outcome) {
	body := map[string]any{"ttl_seconds": int(delayTTL / time.Second), "lock_delay_seconds": int(delayDelay / time.Second)}
	if op == "renew" {
		body = map[string]any{"ttl_seconds": int(delayTTL / time.Second), "lease_id": lease}
	}
	wall := time.Now()
	status, b, outcome := cl.call("POST", "/locks/"+name+"/"+op, token, body, nil)
	rec := delayRecord{lock: name, op: op, status: status, callWall: wall}
	if outcome != Acked {
		return rec, outcome
	}
	var r struct {
		Status       string    `json:"status"`
		LeaseID      string    `json:"lease_id"`
		FencingToken uint64    `json:"fencing_token"`
		ExpiresAt    time.Time `json:"expires_at"`
		Error        string    `json:"error"`
		Lock         struct {
			ExpiresAt   time.Time `json:"expires_at"`
			AvailableAt time.Time `json:"available_at"`
		} `json:"lock"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		cl.bug("POST /locks/%s/%s: %d, body is not JSON: %q", name, op, status, b)
		return rec, Unknown
	}
	switch {
	case status == 200:
		rec.token, rec.lease, rec.expiresAt, rec.acquired = r.FencingToken, r.LeaseID, r.ExpiresAt, r.Status == "acquired"
	case status == 409 && r.Error == "Lock in lock-delay":
		rec.expiresAt, rec.availableAt = r.Lock.ExpiresAt, r.Lock.AvailableAt
	case status == 409, status == 404 && op == "renew":
	default:
		cl.bug("POST /locks/%s/%s: unexpected %d %s", name, op, status, b)
		return rec, Unknown
	}
	return rec, Acked
}

func (c *delayClient) step(cl *cluster) bool {
	time.Sleep(time.Duration(10+c.rng.IntN(30)) * time.Millisecond) // the expiry is the point, not the rate
	name := c.locks[c.rng.IntN(len(c.locks))]
	op, lease := "acquire", ""
	if h := c.holds[name]; h != nil {
		switch {
		case time.Now().After(h.exp):
			delete(c.holds, name) // expired: lock-delay now
		case h.renews > 0 && time.Until(h.exp) < delayTTL/2:
			op, lease = "renew", h.lease
		default:
			return true // holding, or leaving it to expire
		}
	}
	rec, outcome := cl.delayOp(c.token, name, op, lease)
	switch outcome {
	case NotSent:
		return false
	case Unknown:
		return true
	}
	c.records = append(c.records, rec)
	switch {
	case rec.status != 200:
		delete(c.holds, name)
	case op == "acquire":
		c.holds[name] = &delayHold{lease: rec.lease, exp: rec.expiresAt, renews: c.rng.IntN(3)}
	default:
		c.holds[name].exp = rec.expiresAt
		c.holds[name].renews--
	}
	return true
}

// verifyDelay checks lock-delay over every acknowledged answer on the
// delay locks, across every kill -9: the grant of token t+1 (its expiry
// minus the TTL: the grant's instant on the server's clock) is no earlier
// than the last acknowledged expiry of token t plus the delay (holds are
// never released, so each ended by expiry); every 409 "Lock in lock-delay"
// names an available_at that is its expiry plus the delay, and still in the
// future when the request was sent. After the last restart the verifier's
// own acquires are checked the same way.
func verifyDelay(t *testing.T, cl *cluster, workers []*delayClient, locks []string) {
	t.Helper()
	if len(workers) == 0 {
		return
	}
	var all []delayRecord
	for _, c := range workers {
		all = append(all, c.records...)
	}
	for _, name := range locks {
		rec, outcome := cl.delayOp("tok-verifier", name, "acquire", "")
		if outcome != Acked {
			t.Fatalf("acquire %s after restart: no answer", name)
		}
		all = append(all, rec)
	}
	grantAt := map[string]map[uint64]time.Time{}
	lastExp := map[string]map[uint64]time.Time{}
	delays := 0
	for _, r := range all {
		if grantAt[r.lock] == nil {
			grantAt[r.lock], lastExp[r.lock] = map[uint64]time.Time{}, map[uint64]time.Time{}
		}
		switch {
		case r.status == 200:
			if r.acquired {
				grantAt[r.lock][r.token] = r.expiresAt.Add(-delayTTL)
			}
			if r.expiresAt.After(lastExp[r.lock][r.token]) {
				lastExp[r.lock][r.token] = r.expiresAt
			}
		case !r.availableAt.IsZero():
			delays++
			if !r.availableAt.Equal(r.expiresAt.Add(delayDelay)) {
				t.Errorf("lock %s: 409 lock-delay with available_at %s, but the hold expired at %s and the delay is %s",
					r.lock, r.availableAt.Format(time.RFC3339Nano), r.expiresAt.Format(time.RFC3339Nano), delayDelay)
			}
			if !r.availableAt.After(r.callWall.Add(-time.Millisecond)) {
				t.Errorf("lock %s: 409 lock-delay to a request sent at %s, available since %s",
					r.lock, r.callWall.Format(time.RFC3339Nano), r.availableAt.Format(time.RFC3339Nano))
			}
		}
	}
	pairs := 0
	for _, name := range locks {
		for tok, at := range grantAt[name] {
			exp, ok := lastExp[name][tok-1]
			if tok < 2 || !ok {
				continue
			}
			pairs++
			if at.Before(exp.Add(delayDelay)) {
				t.Errorf("lock %s: token %d granted at %s, but token %d's hold was acknowledged until %s and the lock-delay is %s",
					name, tok, at.Format(time.RFC3339Nano), tok-1, exp.Format(time.RFC3339Nano), delayDelay)
			}
		}
	}
	t.Logf("lock-delay: %d acknowledged successive grants spaced by expiry + delay, %d lock-delay answers checked", pairs, delays)
}
