package crashtest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// crashConfig shapes one crash run.
type crashConfig struct {
	cycles        int // kill -9 / restart cycles under load
	lockWorkers   int // one user each
	hotLocks      int // contended by every lock worker
	ownLocks      int // per worker, uncontended
	configWorkers int // share one user and its config keys
	configKeys    int //
	flagWorkers   int // one user each, five flags each
	bucketWorkers int // one user each, three token buckets each
	// Sessions, semaphores and lock-delay (kinds_test.go).
	sessionWorkers, sessionLocks int           // one user each; locks contended
	semWorkers, semaphores       int           // one user each; semaphores of limit semLimit
	delayWorkers, delayLocks     int           // one user each; locks with lock-delay
	minUp, maxUp                 time.Duration // uptime before each kill, uniformly random
	serveFlags                   []string
}

// TestCrashLoop kills the server with SIGKILL at random moments while
// clients acquire (some waiting in the queue), renew, release and
// fence-check contended and uncontended locks, hold locks under sessions
// and close them, take and give back semaphore slots, hold locks with a
// lock-delay until they expire, and write config keys and flags; it
// restarts the server on the same database each time, and then checks
// every promise of docs/guarantees.md "Durability" and "Linearizability"
// against what the clients were told.
//
//	go test ./tools/crashtest -run CrashLoop -count=1 -crash.cycles=50
func TestCrashLoop(t *testing.T) {
	runCrash(t, crashConfig{
		cycles: *flagCycles, lockWorkers: 6, hotLocks: 3, ownLocks: 30, configWorkers: 3, configKeys: 2, flagWorkers: 2, bucketWorkers: 2,
		sessionWorkers: 3, sessionLocks: 2, semWorkers: 4, semaphores: 2, delayWorkers: 2, delayLocks: 2,
		minUp: 300 * time.Millisecond, maxUp: 1200 * time.Millisecond,
		// Short passivation: actors are stopped and re-activated all the
		// time, so recovery of passivated state is exercised too.
		serveFlags: []string{"--idle-timeout", "200ms"},
	})
}

func runCrash(t *testing.T, cfg crashConfig) {
	dir := t.TempDir()
	if *flagKeep {
		var err error
		if dir, err = os.MkdirTemp("", "crashtest-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if !t.Failed() {
				os.RemoveAll(dir)
			} else {
				t.Logf("database and logs kept in %s", dir)
			}
		})
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d cycles", seed, cfg.cycles)
	rng := rand.New(rand.NewPCG(seed, 0))

	sc := serverConfig{db: filepath.Join(dir, "octostore.db"), tokens: map[string]string{"verifier": "tok-verifier", "cfg": "tok-cfg"},
		extra: cfg.serveFlags, logDir: dir}
	var hot []string
	for i := 0; i < cfg.hotLocks; i++ {
		hot = append(hot, fmt.Sprintf("hot-%d", i))
	}
	var lockers []*lockClient
	for i := 0; i < cfg.lockWorkers; i++ {
		c := newLockClient(i, hot, cfg.ownLocks, seed)
		sc.tokens[c.user] = c.token
		lockers = append(lockers, c)
	}

	var flaggers []*flagClient
	for i := 0; i < cfg.flagWorkers; i++ {
		c := newFlagClient(cfg.lockWorkers+cfg.configWorkers+i, seed)
		sc.tokens[c.user] = c.token
		flaggers = append(flaggers, c)
	}

	var sessLocks, sems, delayLocks []string
	for i := 0; i < cfg.sessionLocks; i++ {
		sessLocks = append(sessLocks, fmt.Sprintf("shot-%d", i))
	}
	for i := 0; i < cfg.semaphores; i++ {
		sems = append(sems, fmt.Sprintf("sem-%d", i))
	}
	for i := 0; i < cfg.delayLocks; i++ {
		delayLocks = append(delayLocks, fmt.Sprintf("delay-%d", i))
	}
	var sessioners []*sessionClient
	for i := 0; i < cfg.sessionWorkers; i++ {
		c := newSessionClient(20+i, sessLocks, seed)
		sc.tokens[c.user] = c.token
		sessioners = append(sessioners, c)
	}
	var semers []*semClient
	for i := 0; i < cfg.semWorkers; i++ {
		c := newSemClient(40+i, sems, seed)
		sc.tokens[c.user] = c.token
		semers = append(semers, c)
	}
	var delayers []*delayClient
	for i := 0; i < cfg.delayWorkers; i++ {
		c := newDelayClient(60+i, delayLocks, seed)
		sc.tokens[c.user] = c.token
		delayers = append(delayers, c)
	}
	var buckets []*bucketClient
	for i := 0; i < cfg.bucketWorkers; i++ {
		c := newBucketClient(cfg.lockWorkers+cfg.configWorkers+cfg.flagWorkers+i, seed)
		sc.tokens[c.user] = c.token
		buckets = append(buckets, c)
	}

	cl := newCluster()
	run := 0
	p := start(t, sc, run)
	defer func() {
		if p != nil {
			p.kill()
		}
	}()
	cl.setURL(p.URL)

	var keys []string
	var configers []*configClient
	if cfg.configWorkers > 0 {
		if configAvailable(cl, "tok-cfg") {
			for k := 0; k < cfg.configKeys; k++ {
				keys = append(keys, fmt.Sprintf("cfg-%d", k))
			}
			for i := 0; i < cfg.configWorkers; i++ {
				configers = append(configers, newConfigClient(cfg.lockWorkers+i, "tok-cfg", keys, seed))
			}
		} else {
			t.Log("config endpoints not served by this build: config workload skipped")
		}
	}

	if len(flaggers) > 0 && !flagsAvailable(cl, flaggers[0].token) {
		t.Log("flag endpoints not served by this build: flag workload skipped")
		flaggers = nil
	}

	// Load: every worker loops until stop; while the server is down its
	// requests are refused (NotSent) and it backs off briefly.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent sync.Map
	loop := func(id int, step func(*cluster) bool) {
		defer wg.Done()
		n := 0
		for {
			select {
			case <-stop:
				sent.Store(id, n)
				return
			default:
			}
			if step(cl) {
				n++
			} else {
				time.Sleep(5 * time.Millisecond) // server restarting: retry soon
			}
		}
	}
	for _, c := range lockers {
		wg.Add(1)
		go loop(c.id, c.step)
	}
	for _, c := range configers {
		wg.Add(1)
		go loop(c.id, c.step)
	}
	for _, c := range flaggers {
		wg.Add(1)
		go loop(c.id, c.step)
	}
	for _, c := range sessioners {
		wg.Add(1)
		go loop(c.id, c.step)
	}
	for _, c := range semers {
		wg.Add(1)
		go loop(c.id, c.step)
	}
	for _, c := range delayers {
		wg.Add(1)
		go loop(c.id, c.step)
	}
	for _, c := range buckets {
		wg.Add(1)
		go loop(c.id, c.step)
	}

	begin := time.Now()
	for cycle := 1; cycle <= cfg.cycles; cycle++ {
		up := cfg.minUp + time.Duration(rng.Int64N(int64(cfg.maxUp-cfg.minUp)+1))
		time.Sleep(up) // the random moment of the kill
		p.kill()
		cl.hist.Killed()
		run++
		p = start(t, sc, run)
		cl.setURL(p.URL)
	}
	// A moment on the last run before the workers stop, so that what was
	// in flight at the last kill is retried to a definite answer.
	time.Sleep(cfg.minUp)
	close(stop)
	wg.Wait()
	// The token buckets as the server sees them, with every counter held
	// behind written (GET /limits writes them first).
	bucketsBefore := make([]map[string]int, len(buckets))
	readBefore := time.Now()
	for i, c := range buckets {
		bucketsBefore[i] = c.bucketsUsed(t, cl)
	}
	// One last kill with nothing in flight: what follows is read back from
	// the database alone.
	p.kill()
	cl.hist.Killed()
	run++
	p = start(t, sc, run)
	cl.setURL(p.URL)
	total := 0
	sent.Range(func(_, v any) bool { total += v.(int); return true })
	t.Logf("%d kill -9 cycles in %s, %d operations sent", cfg.cycles+1, time.Since(begin).Round(time.Millisecond), total)

	cl.checkBugs(t)
	verifyLocks(t, cl, lockers, hot)
	verifyConfig(t, cl, keys)
	verifyFlags(t, cl, flaggers)
	verifySessions(t, cl, sessioners)
	verifySemaphores(t, cl, semers, sems)
	verifyDelay(t, cl, delayers, delayLocks)
	verifyBuckets(t, cl, buckets, bucketsBefore, readBefore)
	checkLinearizable(t, cl.hist.Ops(), dir)

	p.stop(t)
	p = nil
}

// --- durability and fencing invariants ---

// expectation is what a worker was last told about one of its locks.
type expectation struct {
	state   string // "held", "released", or "" (unknown: last outcome not definite)
	lease   string
	token   uint64
	expires time.Time
}

func expectations(c *lockClient) map[string]expectation {
	ex := map[string]expectation{}
	for _, r := range c.records {
		in, out := r.Input.(LockInput), r.Output.(LockOutput)
		name := r.Key
		switch {
		case in.Op == "status", in.Op == "fence":
			continue
		case out.Unknown:
			ex[name] = expectation{}
		case in.Op == "acquire" && out.Status != "", in.Op == "renew" && out.Status == "held":
			ex[name] = expectation{state: "held", lease: out.Lease, token: out.Token, expires: r.ExpiresAt}
		case in.Op == "release" && out.Status == "released", out.NotOwned:
			ex[name] = expectation{state: "released", lease: in.Lease}
		case out.Conflict:
			if e := ex[name]; e.state == "" {
				ex[name] = expectation{state: "released"} // holds nothing there
			}
		}
	}
	return ex
}

func verifyLocks(t *testing.T, cl *cluster, lockers []*lockClient, hot []string) {
	t.Helper()
	now := time.Now()
	// 1. Every acknowledged grant/renew not released or expired is still
	//    held by the same lease with the same token and expiry; every
	//    acknowledged release is not held by that lease.
	checked := 0
	maxToken := map[string]uint64{}
	for _, c := range lockers {
		for name, e := range expectations(c) {
			if e.state == "" || (e.state == "held" && e.expires.Before(now.Add(500*time.Millisecond))) {
				continue
			}
			out, rec := cl.lockOp(verifierID, c.user, c.token, name, LockInput{Op: "status", User: c.user}, 0)
			if out.Unknown {
				t.Fatalf("status %s after restart: no answer", name)
			}
			checked++
			switch e.state {
			case "held":
				if out.Status != "held" || out.Holder != c.user || out.Lease != e.lease || out.Token != e.token || !rec.ExpiresAt.Equal(e.expires) {
					t.Errorf("lock %s: %s was told it holds lease %s token %d until %s; after kill -9 the server says %+v until %s",
						name, c.user, e.lease, e.token, e.expires.Format(time.RFC3339Nano), out, rec.ExpiresAt.Format(time.RFC3339Nano))
				}
			case "released":
				if out.Status == "held" && out.Holder == c.user && out.Lease == e.lease {
					t.Errorf("lock %s: %s was told lease %s is released/gone; after kill -9 it is held again: %+v", name, c.user, e.lease, out)
				}
			}
		}
	}
	t.Logf("durability: %d acknowledged lock states checked after the last kill -9", checked)

	// 2. Fencing tokens: never repeat across leases, never go backwards in
	//    real time, across every restart.
	byLock := map[string][]lockRecord{}
	for _, c := range lockers {
		for _, r := range c.records {
			if out := r.Output.(LockOutput); !out.Unknown && out.Token > 0 {
				byLock[r.Key] = append(byLock[r.Key], r)
			}
		}
	}
	for name, rs := range byLock {
		leaseOf := map[uint64]string{}
		for _, r := range rs {
			out := r.Output.(LockOutput)
			if out.Lease == "" {
				continue
			}
			if l, ok := leaseOf[out.Token]; ok && l != out.Lease {
				t.Errorf("lock %s: fencing token %d was given to two leases, %s and %s", name, out.Token, l, out.Lease)
			}
			leaseOf[out.Token] = out.Lease
		}
		// Real-time order: an operation that returned before another was
		// called saw a token no greater than it.
		byRet := append([]lockRecord(nil), rs...)
		sort.Slice(byRet, func(i, j int) bool { return byRet[i].Return < byRet[j].Return })
		byCall := append([]lockRecord(nil), rs...)
		sort.Slice(byCall, func(i, j int) bool { return byCall[i].Call < byCall[j].Call })
		var maxSoFar uint64
		var maxOp lockRecord
		k := 0
		for _, r := range byCall {
			for k < len(byRet) && byRet[k].Return < r.Call {
				if tok := byRet[k].Output.(LockOutput).Token; tok > maxSoFar {
					maxSoFar, maxOp = tok, byRet[k]
				}
				k++
			}
			if tok := r.Output.(LockOutput).Token; tok < maxSoFar {
				t.Errorf("lock %s: fencing token went backwards: %v saw %d after %v had seen %d", name, r.Input, tok, maxOp.Input, maxSoFar)
			}
		}
		for _, r := range rs {
			if tok := r.Output.(LockOutput).Token; tok > maxToken[name] {
				maxToken[name] = tok
			}
		}
	}

	// 3. After the last restart, the next grant of every lock gets a token
	//    above every token ever acknowledged.
	names := map[string]bool{}
	for _, h := range hot {
		names[h] = true
	}
	for _, c := range lockers {
		for _, n := range c.own {
			names[n] = true
		}
	}
	fresh := 0
	for name := range names {
		out, _ := cl.lockOp(verifierID, "verifier", "tok-verifier", name, LockInput{Op: "acquire", User: "verifier"}, 60)
		switch {
		case out.Unknown:
			t.Fatalf("acquire %s after restart: no answer", name)
		case out.Conflict:
			continue // still held by a worker (checked above)
		case out.Token <= maxToken[name]:
			t.Errorf("lock %s: fresh grant after the last kill -9 got fencing token %d, but %d was acknowledged before", name, out.Token, maxToken[name])
		default:
			fresh++
		}
	}
	t.Logf("fencing: %d locks with tokens checked in real-time order; %d fresh grants above every acknowledged token", len(byLock), fresh)
}

// verifyConfig: after the last restart every key reads back a version no
// lower than any acknowledged one, and a new write gets a version above
// every version ever acknowledged (versions never repeat).
func verifyConfig(t *testing.T, cl *cluster, keys []string) {
	t.Helper()
	if len(keys) == 0 {
		return
	}
	maxVer := map[string]int64{}
	byVersion := map[string]map[int64]string{}
	rollbacks := 0
	for _, op := range cl.hist.Ops() {
		in, ok := op.Input.(ConfigInput)
		if !ok {
			continue
		}
		out := op.Output.(ConfigOutput)
		if out.Unknown || out.Version == 0 {
			continue
		}
		if out.Version > maxVer[op.Key] {
			maxVer[op.Key] = out.Version
		}
		if in.Op == "put" || in.Op == "rollback" {
			value := in.Value
			if in.Op == "rollback" {
				value = out.Value // version in.To's, written again
				rollbacks++
			}
			if byVersion[op.Key] == nil {
				byVersion[op.Key] = map[int64]string{}
			}
			if v, dup := byVersion[op.Key][out.Version]; dup && v != value {
				t.Errorf("config %s: version %d acknowledged for two values, %q and %q", op.Key, out.Version, v, value)
			}
			byVersion[op.Key][out.Version] = value
		}
	}
	for _, k := range keys {
		out, _ := cl.configOp(verifierID, "tok-cfg", k, ConfigInput{Op: "put", Value: "verify"})
		if out.Unknown {
			t.Fatalf("config put %s after restart: no answer", k)
		}
		if out.Version <= maxVer[k] {
			t.Errorf("config %s: write after the last kill -9 got version %d, but %d was acknowledged before", k, out.Version, maxVer[k])
		}
	}
	t.Logf("config: %d keys, versions unique and increasing across restarts (%d acknowledged rollbacks among the writes)", len(keys), rollbacks)
}

// verifyBuckets: every token bucket comes back from the last kill -9
// exactly as the server had it written before it, and never holds more
// tokens in use than the checks that could have taken them (acknowledged
// and unknown): a crash may forget consumption, never invent it. The
// online half (no denial while tokens are provably left) is checked by
// each bucketClient as it runs.
func verifyBuckets(t *testing.T, cl *cluster, buckets []*bucketClient, before []map[string]int, readBefore time.Time) {
	t.Helper()
	nBuckets, checked := 0, 0
	for i, c := range buckets {
		after := c.bucketsUsed(t, cl)
		// tokens refilled between the two reads, and one for the rounding
		refill := int(time.Since(readBefore)*bucketCapacity/bucketWindow) + 1
		for _, name := range c.names {
			if after[name] > before[i][name] || after[name] < before[i][name]-refill {
				t.Errorf("token bucket %s of %s: %d tokens in use after the last kill -9, %d written before it", name, c.user, after[name], before[i][name])
			}
			if most := c.acked[name] + c.unknown[name]; after[name] > most {
				t.Errorf("token bucket %s of %s: %d tokens in use, but checks took at most %d", name, c.user, after[name], most)
			}
			nBuckets++
		}
		checked += c.checked
	}
	if len(buckets) > 0 {
		t.Logf("token buckets: %d checks answered, none denied while tokens were provably left; %d buckets checked after the last kill -9",
			checked, nBuckets)
	}
}

// verifyFlags: after the last restart every flag whose last write was
// acknowledged has exactly that setting.
func verifyFlags(t *testing.T, cl *cluster, flaggers []*flagClient) {
	t.Helper()
	checked := 0
	for _, c := range flaggers {
		status, b, outcome := cl.call("GET", "/flags", c.token, nil, nil)
		if outcome != Acked || status != 200 {
			t.Fatalf("GET /flags as %s after restart: %d %s", c.user, status, b)
		}
		var list struct {
			Flags []struct {
				Name string `json:"name"`
				flagState
			} `json:"flags"`
		}
		if err := json.Unmarshal(b, &list); err != nil {
			t.Fatalf("GET /flags: %v: %s", err, b)
		}
		got := map[string]flagState{}
		for _, f := range list.Flags {
			got[f.Name] = f.flagState
		}
		for name, want := range c.last {
			if c.unknown[name] {
				continue
			}
			checked++
			if g, ok := got[name]; !ok || g != want {
				t.Errorf("flag %s of %s: last acknowledged %+v; after kill -9 the server has %+v (present %v)", name, c.user, want, g, ok)
			}
		}
	}
	if len(flaggers) > 0 {
		t.Logf("flags: %d acknowledged settings checked after the last kill -9", checked)
	}
}

// --- linearizability ---

// checkLinearizable checks the histories of the contended locks (with and
// without sessions), the semaphores and the config keys with porcupine.
// Uncontended locks use short TTLs (expiry is outside the model) and are
// covered by verifyLocks; the lock-delay locks by verifyDelay.
func checkLinearizable(t *testing.T, ops []Op, dir string) {
	t.Helper()
	var locks, cfgs, sems []Op
	for _, op := range ops {
		switch op.Input.(type) {
		case LockInput:
			if strings.HasPrefix(op.Key, "hot-") || strings.HasPrefix(op.Key, "shot-") {
				locks = append(locks, op)
			}
		case ConfigInput:
			cfgs = append(cfgs, op)
		case SemInput:
			sems = append(sems, op)
		}
	}
	check := func(what string, model porcupine.Model, ops []Op) {
		if len(ops) == 0 {
			return
		}
		start := time.Now()
		res, info := porcupine.CheckOperationsVerbose(model, Porcupine(ops), 5*time.Minute)
		t.Logf("linearizability (%s): %d operations, %v in %s", what, len(ops), res, time.Since(start).Round(time.Millisecond))
		switch res {
		case porcupine.Illegal:
			path := filepath.Join(dir, what+"-history.html")
			if err := porcupine.VisualizePath(model, info, path); err == nil {
				t.Logf("visualization: %s (run with -crash.keep to keep it)", path)
			}
			if b, err := json.Marshal(ops); err == nil {
				_ = os.WriteFile(filepath.Join(dir, what+"-history.json"), b, 0o644)
			}
			t.Errorf("%s history is not linearizable", what)
		case porcupine.Unknown:
			t.Errorf("%s history: porcupine timed out (history too long for the check; lower -crash.cycles)", what)
		}
	}
	check("locks", LockModel, locks)
	check("semaphores", SemaphoreModel(semLimit), sems)
	check("config", ConfigModel, cfgs)
}

// verifierID is the client id of the checks' own requests in the history.
const verifierID = 99
