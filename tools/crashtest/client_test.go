package crashtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/tools/keepreading"
)

// cluster is what the clients of one test share: the URL of the current
// server run (it changes at every restart), the history, and a record of
// responses that must never happen (500s, malformed bodies).
type cluster struct {
	url atomic.Pointer[string]
	// urls, when set, are several servers (cluster mode): each request
	// goes to one of them at random.
	urls atomic.Pointer[[]string]
	hist *History
	http *http.Client

	// mu guards bugs.
	mu   sync.Mutex
	bugs []string
}

func newCluster() *cluster {
	cl := &cluster{hist: NewHistory()}
	cl.http = &http.Client{
		Timeout: 5 * time.Second,
		// Every complete exchange is checked against docs/openapi.yaml; a
		// mismatch is one of the cluster's bugs.
		Transport: apitest.Transport(cl, &http.Transport{
			MaxIdleConnsPerHost: 4,
			DialContext:         keepreading.DialContext((&net.Dialer{Timeout: time.Second}).DialContext), // an early answer is read, not lost to EPIPE
			DisableCompression:  true,
		}),
	}
	return cl
}

// Helper, Errorf and Fatalf make the cluster an apitest.T: contract
// mismatches are recorded as bugs (reported by checkBugs).
func (cl *cluster) Helper()                           {}
func (cl *cluster) Errorf(format string, args ...any) { cl.bug(format, args...) }
func (cl *cluster) Fatalf(format string, args ...any) { cl.bug(format, args...) }

func (cl *cluster) setURL(u string) { cl.url.Store(&u) }

func (cl *cluster) setURLs(us []string) { cl.urls.Store(&us) }

// target is the server of the next request.
func (cl *cluster) target() string {
	if us := cl.urls.Load(); us != nil && len(*us) > 0 {
		return (*us)[rand.IntN(len(*us))]
	}
	return *cl.url.Load()
}

func (cl *cluster) bug(format string, args ...any) {
	cl.mu.Lock()
	if len(cl.bugs) < 50 {
		cl.bugs = append(cl.bugs, fmt.Sprintf(format, args...))
	}
	cl.mu.Unlock()
}

func (cl *cluster) checkBugs(t *testing.T) {
	t.Helper()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for _, b := range cl.bugs {
		t.Error(b)
	}
}

// call does one request. NotSent: refused before reaching a server;
// Unknown: no definite answer (lost connection, timeout, 5xx).
func (cl *cluster) call(method, path, token string, body any, hdr map[string]string) (int, []byte, Outcome) {
	return cl.callAt(cl.target(), method, path, token, body, hdr)
}

// callAt is call to the server at base.
func (cl *cluster) callAt(base, method, path, token string, body any, hdr map[string]string) (int, []byte, Outcome) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return 0, nil, NotSent
		}
		return 0, nil, Unknown
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return resp.StatusCode, nil, Unknown
	}
	if resp.StatusCode >= 500 {
		if resp.StatusCode != http.StatusServiceUnavailable {
			cl.bug("%s %s: %d %s", method, path, resp.StatusCode, b)
		} else if resp.Header.Get("Retry-After") == "" {
			cl.bug("%s %s: 503 without Retry-After: %s", method, path, b)
		}
		return resp.StatusCode, b, Unknown
	}
	return resp.StatusCode, b, Acked
}

// --- locks ---

type lockResp struct {
	Status       string    `json:"status"`
	Valid        bool      `json:"valid"`
	Current      uint64    `json:"current_fencing_token"`
	Name         string    `json:"name"`
	LeaseID      string    `json:"lease_id"`
	FencingToken uint64    `json:"fencing_token"`
	ExpiresAt    time.Time `json:"expires_at"`
	Holder       string    `json:"holder"`
	Error        string    `json:"error"`
	Lock         struct {
		Holder string `json:"holder"`
	} `json:"lock"`
}

// lockRecord is a lock operation with what the invariant checks need
// besides the model's view.
type lockRecord struct {
	Op
	ExpiresAt time.Time // acquire/renew/status 200
	TTL       int       // seconds, of an acquire or renew
}

// lockOp runs one lock operation as user and records it.
func (cl *cluster) lockOp(client int, user, token, name string, in LockInput, ttl int) (LockOutput, lockRecord) {
	var (
		method = "POST"
		path   = "/locks/" + name + "/" + in.Op
		body   any
	)
	switch in.Op {
	case "acquire":
		req := map[string]any{"ttl_seconds": ttl}
		if in.Session != "" {
			req = map[string]any{"session_id": in.Session}
		}
		if in.Wait > 0 {
			req["wait_seconds"] = in.Wait
		}
		body = req
	case "fence":
		method, path = "GET", "/locks/"+name+"/fence?token="+strconv.FormatUint(in.Token, 10)
	case "close":
		method, path = "DELETE", "/sessions/"+in.Session
	case "renew":
		body = map[string]any{"ttl_seconds": ttl, "lease_id": in.Lease}
	case "release":
		body = map[string]any{"lease_id": in.Lease}
	case "status":
		method, path = "GET", "/locks/"+name
	}
	call := cl.hist.Now()
	status, b, outcome := cl.call(method, path, token, body, nil)
	ret := cl.hist.Now()
	out := LockOutput{Unknown: outcome != Acked}
	var r lockResp
	if outcome == Acked {
		if err := json.Unmarshal(b, &r); err != nil {
			cl.bug("%s %s: %d, body is not JSON: %q", method, path, status, b)
		}
		switch {
		case status == 200 && in.Op == "fence":
			out.Valid, out.Token, out.Holder = r.Valid, r.FencingToken, r.Holder
			if !r.Valid || r.FencingToken != in.Token {
				cl.bug("%s %s: 200 that is not a valid check of token %d: %s", method, path, in.Token, b)
			}
		case status == 200:
			out.Status, out.Lease, out.Token, out.Holder = r.Status, r.LeaseID, r.FencingToken, r.Holder
		case status == 404 && in.Op != "acquire" && in.Op != "status" && in.Op != "fence":
			out.NotOwned = true
		case status == 409 && in.Op == "acquire" && r.Lock.Holder != "":
			out.Conflict, out.Holder = true, r.Lock.Holder
		case status == 409 && in.Op == "fence":
			out.Conflict, out.Current = true, r.Current
			if r.Valid {
				cl.bug("%s %s: 409 with valid true: %s", method, path, b)
			}
		default:
			cl.bug("%s %s as %s: unexpected %d %s", method, path, user, status, b)
			out = LockOutput{Unknown: true}
			outcome = Unknown
		}
	}
	rec := lockRecord{Op: Op{Client: client, Key: name, Input: in, Output: out, Call: call, Return: ret, Outcome: outcome}, ExpiresAt: r.ExpiresAt, TTL: ttl}
	if outcome != NotSent && !((in.Op == "status" || in.Op == "fence") && outcome == Unknown) {
		cl.hist.Add(rec.Op)
	}
	return out, rec
}

// lockClient is one user's worker: it acquires, renews and releases a mix
// of contended locks (shared by every worker, long TTL: the porcupine
// check's model has no expiry) and its own locks (short and long TTLs, so
// expiries happen too). After an unknown outcome it retries the same
// operation until it gets a definite answer, as a real client would.
type lockClient struct {
	id          int
	user, token string
	hot         []string
	own         []string
	rng         *rand.Rand
	held        map[string]string // lock → lease the worker believes it holds
	seen        map[string]uint64 // lock → highest token seen (for fence checks)
	retry       map[string]LockInput
	records     []lockRecord // every sent operation, in order
}

func newLockClient(id int, hot []string, own int, seed uint64) *lockClient {
	c := &lockClient{id: id, user: fmt.Sprintf("u%d", id), token: fmt.Sprintf("tok-u%d", id), hot: hot,
		rng: rand.New(rand.NewPCG(seed, uint64(id))), held: map[string]string{}, seen: map[string]uint64{},
		retry: map[string]LockInput{}}
	for k := 0; k < own; k++ {
		c.own = append(c.own, fmt.Sprintf("own-%d-%d", id, k))
	}
	return c
}

func (c *lockClient) step(cl *cluster) (sent bool) {
	var name string
	ttl := 3600
	if len(c.own) == 0 || c.rng.IntN(2) == 0 {
		name = c.hot[c.rng.IntN(len(c.hot))]
	} else {
		name = c.own[c.rng.IntN(len(c.own))]
		ttl = []int{1, 2, 3600}[c.rng.IntN(3)]
	}
	in, retrying := c.retry[name]
	if !retrying {
		switch lease, holding := c.held[name]; {
		case c.rng.IntN(10) == 0:
			in = LockInput{Op: "status", User: c.user}
		case c.rng.IntN(10) == 0:
			// A fence check of the last token seen here, or its neighbours.
			tok := c.seen[name] + uint64(c.rng.IntN(3))
			in = LockInput{Op: "fence", User: c.user, Token: max(tok, 1) - 1}
		case !holding && ttl == 3600 && c.rng.IntN(4) == 0:
			in = LockInput{Op: "acquire", User: c.user, Wait: 1} // waits in the lock's queue
		case !holding:
			in = LockInput{Op: "acquire", User: c.user}
		case c.rng.IntN(5) < 2:
			in = LockInput{Op: "renew", User: c.user, Lease: lease}
		default:
			in = LockInput{Op: "release", User: c.user, Lease: lease}
		}
	}
	out, rec := cl.lockOp(c.id, c.user, c.token, name, in, ttl)
	if rec.Outcome == NotSent {
		return false
	}
	c.records = append(c.records, rec)
	if out.Token > c.seen[name] {
		c.seen[name] = out.Token
	}
	if out.Current > c.seen[name] {
		c.seen[name] = out.Current
	}
	if out.Unknown {
		if in.Op != "status" && in.Op != "fence" {
			c.retry[name] = in
		}
		return true
	}
	delete(c.retry, name)
	switch {
	case in.Op == "acquire" && out.Status != "":
		c.held[name] = out.Lease
	case in.Op == "acquire" && out.Conflict:
		delete(c.held, name)
	case in.Op == "release", out.NotOwned:
		delete(c.held, name)
	}
	return true
}

// --- config keys ---

type configResp struct {
	Key            string          `json:"key"`
	Value          json.RawMessage `json:"value"`
	Version        int64           `json:"version"`
	CurrentVersion int64           `json:"current_version"`
	Error          string          `json:"error"`
}

// configOp runs one config operation and records it.
func (cl *cluster) configOp(client int, token, key string, in ConfigInput) (ConfigOutput, Outcome) {
	var (
		method = "GET"
		body   any
		hdr    map[string]string
	)
	switch in.Op {
	case "put":
		method, body = "PUT", map[string]any{"value": in.Value}
		if in.Expected != nil {
			hdr = map[string]string{"If-Match": strconv.FormatInt(*in.Expected, 10)}
		}
	case "delete":
		method = "DELETE"
	case "rollback":
		method, body = "POST", map[string]any{"version": in.To}
		if in.Expected != nil {
			hdr = map[string]string{"If-Match": strconv.FormatInt(*in.Expected, 10)}
		}
	}
	path := "/config/" + key
	if in.Op == "rollback" {
		path += "/rollback"
	}
	call := cl.hist.Now()
	status, b, outcome := cl.call(method, path, token, body, hdr)
	ret := cl.hist.Now()
	out := ConfigOutput{Unknown: outcome != Acked}
	if outcome == Acked {
		var r configResp
		if err := json.Unmarshal(b, &r); err != nil {
			cl.bug("%s %s: %d, body is not JSON: %q", method, path, status, b)
		}
		switch {
		case status == 200 && in.Op == "delete":
		case status == 200:
			out.Version = r.Version
			if in.Op == "get" || in.Op == "rollback" {
				var s string
				if err := json.Unmarshal(r.Value, &s); err != nil {
					cl.bug("GET %s: value %s is not the string written", path, r.Value)
				}
				out.Value = s
			}
		case status == 404 && in.Op != "put":
			out.NotFound = true
		case status == 409 && (in.Op == "put" || in.Op == "rollback") && in.Expected != nil:
			out.Conflict, out.Current = true, r.CurrentVersion
		default:
			cl.bug("%s %s: unexpected %d %s", method, path, status, b)
			out, outcome = ConfigOutput{Unknown: true}, Unknown
		}
	}
	if outcome != NotSent && !(in.Op == "get" && outcome == Unknown) {
		cl.hist.Add(Op{Client: client, Key: key, Input: in, Output: out, Call: call, Return: ret, Outcome: outcome})
	}
	return out, outcome
}

// configClient writes and reads shared config keys of one user: plain
// writes, conditional writes (If-Match the last version it saw, or 0 =
// create), reads and the odd delete.
type configClient struct {
	id    int
	token string
	keys  []string
	rng   *rand.Rand
	seen  map[string]int64
	n     int
}

func newConfigClient(id int, token string, keys []string, seed uint64) *configClient {
	return &configClient{id: id, token: token, keys: keys, rng: rand.New(rand.NewPCG(seed, uint64(id)+1000)), seen: map[string]int64{}}
}

func (c *configClient) step(cl *cluster) bool {
	key := c.keys[c.rng.IntN(len(c.keys))]
	c.n++
	var in ConfigInput
	switch r := c.rng.IntN(24); {
	case r < 8:
		in = ConfigInput{Op: "put", Value: fmt.Sprintf("c%d-%d", c.id, c.n)}
	case r < 13:
		v := c.seen[key]
		in = ConfigInput{Op: "put", Value: fmt.Sprintf("c%d-%d", c.id, c.n), Expected: &v}
	case r < 19:
		in = ConfigInput{Op: "get"}
	case r < 23:
		// a rollback to one of the last versions seen, now and then on the
		// condition that the key is still at the version seen
		in = ConfigInput{Op: "rollback", To: max(1, c.seen[key]-c.rng.Int64N(3))}
		if r == 22 {
			v := c.seen[key]
			in.Expected = &v
		}
	default:
		in = ConfigInput{Op: "delete"}
	}
	out, outcome := cl.configOp(c.id, c.token, key, in)
	switch {
	case outcome == NotSent:
		return false
	case out.Unknown:
	case out.Conflict:
		c.seen[key] = out.Current
	case out.NotFound:
		c.seen[key] = 0
	case in.Op == "delete":
		c.seen[key] = 0
	default:
		c.seen[key] = out.Version
	}
	return true
}

// configAvailable reports whether the server has the config endpoints
// (issue 3); the config workload runs only where it does.
func configAvailable(cl *cluster, token string) bool {
	status, b, outcome := cl.call("GET", "/config/probe-key", token, nil, nil)
	return outcome == Acked && !(status == 404 && bytes.Contains(b, []byte("no such route")))
}

// --- feature flags ---

// flagClient sets its own user's flags; the last acknowledged setting of
// each must survive every crash.
type flagClient struct {
	id          int
	user, token string
	names       []string
	rng         *rand.Rand
	last        map[string]flagState // last acknowledged setting
	unknown     map[string]bool      // a later write has an unknown outcome
}

type flagState struct {
	Enabled    bool `json:"enabled"`
	Percentage int  `json:"percentage"`
}

func newFlagClient(id int, seed uint64) *flagClient {
	c := &flagClient{id: id, user: fmt.Sprintf("f%d", id), token: fmt.Sprintf("tok-f%d", id),
		rng: rand.New(rand.NewPCG(seed, uint64(id)+2000)), last: map[string]flagState{}, unknown: map[string]bool{}}
	for k := 0; k < 5; k++ {
		c.names = append(c.names, fmt.Sprintf("flag-%d", k))
	}
	return c
}

func (c *flagClient) step(cl *cluster) bool {
	name := c.names[c.rng.IntN(len(c.names))]
	want := flagState{Enabled: c.rng.IntN(2) == 0, Percentage: c.rng.IntN(101)}
	status, b, outcome := cl.call("PUT", "/flags/"+name, c.token, want, nil)
	switch outcome {
	case NotSent:
		return false
	case Unknown:
		c.unknown[name] = true
	case Acked:
		var got flagState
		if status != 200 || json.Unmarshal(b, &got) != nil || got != want {
			cl.bug("PUT /flags/%s %+v: %d %s", name, want, status, b)
			c.unknown[name] = true
			return true
		}
		c.last[name] = want
		delete(c.unknown, name)
	}
	return true
}

// flagsAvailable reports whether the server serves /flags.
func flagsAvailable(cl *cluster, token string) bool {
	status, b, outcome := cl.call("GET", "/flags", token, nil, nil)
	return outcome == Acked && status == 200 && !bytes.Contains(b, []byte("no such route"))
}

// --- token-bucket rate limits ---

// bucketClient checks token buckets of its own user: capacity
// bucketCapacity, refilled over a day (about a token every 9 s), 1..3
// tokens a check, on three buckets at a time; a bucket is left for a new
// one before it can run dry. So the client knows, for every check, a lower
// bound of the tokens left (capacity minus every acknowledged and every
// unknown consumption, refill ignored) that covers the check: a denial means
// the server remembers more consumption than happened, which a crash must
// never cause ("allow slightly more across a crash, never less").
type bucketClient struct {
	id          int
	user, token string
	names       []string // every bucket used, the open ones last
	open        []string // at most three, each with at least 3 tokens provably left
	rng         *rand.Rand
	acked       map[string]int // tokens taken by acknowledged allowed checks
	unknown     map[string]int // tokens of checks whose outcome is unknown
	checked     int
}

const (
	bucketCapacity = 10000
	bucketWindow   = 86400 * time.Second
)

func newBucketClient(id int, seed uint64) *bucketClient {
	return &bucketClient{id: id, user: fmt.Sprintf("b%d", id), token: fmt.Sprintf("tok-b%d", id),
		rng: rand.New(rand.NewPCG(seed, uint64(id)+3000)), acked: map[string]int{}, unknown: map[string]int{}}
}

// pick returns a bucket with at least 3 tokens provably left, opening a
// new one when fewer than three are.
func (c *bucketClient) pick() string {
	open := c.open[:0]
	for _, n := range c.open {
		if bucketCapacity-c.acked[n]-c.unknown[n] >= 3 {
			open = append(open, n)
		}
	}
	for len(open) < 3 {
		n := fmt.Sprintf("tb-%d", len(c.names))
		c.names = append(c.names, n)
		open = append(open, n)
	}
	c.open = open
	return open[c.rng.IntN(len(open))]
}

func bucketBody(cost int) map[string]any {
	return map[string]any{"max_requests": bucketCapacity, "window_seconds": int(bucketWindow / time.Second), "algorithm": "token_bucket", "cost": cost}
}

func (c *bucketClient) step(cl *cluster) bool {
	name := c.pick()
	cost := 1 + c.rng.IntN(3)
	status, b, outcome := cl.call("POST", "/limits/"+name+"/check", c.token, bucketBody(cost), nil)
	switch outcome {
	case NotSent:
		return false
	case Unknown:
		c.unknown[name] += cost
		return true
	}
	var r struct {
		Allowed   bool   `json:"allowed"`
		Remaining int    `json:"remaining"`
		Algorithm string `json:"algorithm"`
	}
	if status != 200 || json.Unmarshal(b, &r) != nil || r.Algorithm != "token_bucket" {
		cl.bug("POST /limits/%s/check: %d %s", name, status, b)
		c.unknown[name] += cost
		return true
	}
	c.checked++
	if r.Allowed {
		c.acked[name] += cost
		return true
	}
	if left := bucketCapacity - c.acked[name] - c.unknown[name]; left >= cost {
		cl.bug("token bucket %s of %s denied %d tokens with at least %d left (%d acknowledged, %d unknown): the server remembers consumption that never happened",
			name, c.user, cost, left, c.acked[name], c.unknown[name])
	}
	return true
}

// bucketsUsed reads the tokens in use of c's buckets (GET /limits, which
// writes the counters held behind first).
func (c *bucketClient) bucketsUsed(t *testing.T, cl *cluster) map[string]int {
	t.Helper()
	status, b, outcome := cl.call("GET", "/limits", c.token, nil, nil)
	var l struct {
		Limits []struct {
			Name         string `json:"name"`
			Algorithm    string `json:"algorithm"`
			CurrentCount int    `json:"current_count"`
		} `json:"limits"`
	}
	if outcome != Acked || status != 200 || json.Unmarshal(b, &l) != nil {
		t.Fatalf("GET /limits as %s: %d %s", c.user, status, b)
	}
	used := map[string]int{}
	for _, x := range l.Limits {
		if x.Algorithm != "token_bucket" {
			t.Errorf("limit %s of %s: algorithm %q", x.Name, c.user, x.Algorithm)
		}
		used[x.Name] = x.CurrentCount
	}
	return used
}
