package etcdstore

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/octostore/octostore/actors"
)

// This file is the key layout and the encoding of every record (doc.go
// describes them for operators). Keys are built by a keyspace, which holds
// the prefix every key of one octostore cluster starts with. Each
// user-chosen segment (owner, name, config key, login) is path-escaped, so a
// segment never contains '/' and a prefix never matches a longer segment.

// LayoutVersion is written to meta/layout; a store refuses a keyspace with
// a newer layout (as persistence refuses a newer schema), and one of layout
// 1, where owners and holders were logins (layout 2 names them by user id,
// persistence/identity.go; layout 1 was never served by a release, so it is
// not migrated).
const LayoutVersion = 2

// keyspace builds the keys under one prefix.
type keyspace struct{ prefix string }

func newKeyspace(prefix string) keyspace {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return keyspace{prefix: prefix}
}

// DefaultPrefix is where octostore keeps its keys in etcd.
const DefaultPrefix = "/octostore/"

func esc(s string) string { return url.PathEscape(s) }

func unesc(s string) (string, error) { return url.PathUnescape(s) }

// prefixEnd is the end of the range of keys starting with p
// (clientv3.GetPrefixRangeEnd, without the import in key code).
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00"
}

func (k keyspace) lock(name string) string      { return k.prefix + "lock/" + esc(name) }
func (k keyspace) session(id string) string     { return k.prefix + "session/" + esc(id) }
func (k keyspace) semaphore(name string) string { return k.prefix + "sem/" + esc(name) }
func (k keyspace) semSlots(name string) string  { return k.prefix + "semslot/" + esc(name) + "/" }
func (k keyspace) allSemSlots() string          { return k.prefix + "semslot/" }
func (k keyspace) semSlot(name, lease string) string {
	return k.semSlots(name) + esc(lease)
}
func (k keyspace) sessions() string { return k.prefix + "session/" }
func (k keyspace) locks() string    { return k.prefix + "lock/" }
func (k keyspace) limit(owner, name string) string {
	return k.prefix + "limit/" + esc(owner) + "/" + esc(name)
}
func (k keyspace) limits(owner string) string { return ownerPrefix(k.prefix+"limit/", owner) }
func (k keyspace) flag(owner, name string) string {
	return k.prefix + "flag/" + esc(owner) + "/" + esc(name)
}
func (k keyspace) flags(owner string) string { return ownerPrefix(k.prefix+"flag/", owner) }
func (k keyspace) config(owner, key string) string {
	return k.prefix + "config/" + esc(owner) + "/" + esc(key)
}
func (k keyspace) configs(owner string) string { return ownerPrefix(k.prefix+"config/", owner) }

// configVersions is the prefix of one key's retained versions.
func (k keyspace) configVersions(owner, key string) string {
	return k.prefix + "configv/" + esc(owner) + "/" + esc(key) + "/"
}

// configVersion keys sort by version: fixed-width decimal.
func (k keyspace) configVersion(owner, key string, v int64) string {
	return fmt.Sprintf("%s%020d", k.configVersions(owner, key), v)
}

func (k keyspace) user(id int64) string      { return fmt.Sprintf("%suser/%020d", k.prefix, id) }
func (k keyspace) users() string             { return k.prefix + "user/" }
func (k keyspace) userLogin(l string) string { return k.prefix + "userlogin/" + esc(l) }
func (k keyspace) userGitHub(id int64) string {
	return k.prefix + "usergithub/" + strconv.FormatInt(id, 10)
}
func (k keyspace) userSeq() string         { return k.prefix + "meta/user_seq" }
func (k keyspace) token(h [32]byte) string { return k.prefix + "token/" + hex.EncodeToString(h[:]) }
func (k keyspace) tokens() string          { return k.prefix + "token/" }
func (k keyspace) authEpoch() string       { return k.prefix + "meta/auth_epoch" }
func (k keyspace) forwardKey() string      { return k.prefix + "meta/forward_key" }
func (k keyspace) layout() string          { return k.prefix + "meta/layout" }
func (k keyspace) txnChain() string        { return k.prefix + "meta/txn_chain" }

// election is the prefix concurrency.NewElection takes (it appends "/").
func (k keyspace) election() string { return k.prefix + "election" }

// node is a running node's registration (Register).
func (k keyspace) node(name string) string { return k.prefix + "node/" + esc(name) }
func (k keyspace) nodes() string           { return k.prefix + "node/" }

// ownerPrefix is base + owner + "/" (one owner's keys), or base (everyone's).
func ownerPrefix(base, owner string) string {
	if owner == "" {
		return base
	}
	return base + esc(owner) + "/"
}

// splitOwned parses "<base><owner>/<name>" into owner and name.
func splitOwned(key, base string) (owner, name string, err error) {
	rest, ok := strings.CutPrefix(key, base)
	if !ok {
		return "", "", fmt.Errorf("key %q is not under %q", key, base)
	}
	o, n, ok := strings.Cut(rest, "/")
	if !ok {
		return "", "", fmt.Errorf("key %q: no owner", key)
	}
	if owner, err = unesc(o); err != nil {
		return "", "", fmt.Errorf("key %q: %w", key, err)
	}
	if name, err = unesc(n); err != nil {
		return "", "", fmt.Errorf("key %q: %w", key, err)
	}
	return owner, name, nil
}

// --- times: unix ms, 0 for the zero time (as persistence stores them) ---

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// --- records: JSON with short field names, readable with etcdctl ---

type lockValue struct {
	Holder     string `json:"holder,omitempty"`
	HolderID   string `json:"holder_id,omitempty"`
	LeaseID    string `json:"lease,omitempty"`
	Token      uint64 `json:"token"`
	ExpiresAt  int64  `json:"expires_ms,omitempty"`
	AcquiredAt int64  `json:"acquired_ms,omitempty"`
	SessionID  string `json:"session,omitempty"`
	LockDelay  int64  `json:"lock_delay_ms,omitempty"`
	Available  int64  `json:"available_ms,omitempty"`
	DelayOf    string `json:"delay_holder,omitempty"`
	Metadata   string `json:"metadata,omitempty"`
}

func encodeLock(r actors.LockRecord) []byte {
	return mustJSON(lockValue{Holder: r.Holder, HolderID: r.HolderID, LeaseID: r.LeaseID, Token: r.Token,
		ExpiresAt: ms(r.ExpiresAt), AcquiredAt: ms(r.AcquiredAt), SessionID: r.SessionID,
		LockDelay: r.LockDelay.Milliseconds(), Available: ms(r.AvailableAt), DelayOf: r.DelayHolder, Metadata: r.Metadata})
}

func decodeLock(name string, b []byte) (actors.LockRecord, error) {
	var v lockValue
	if err := json.Unmarshal(b, &v); err != nil {
		return actors.LockRecord{}, fmt.Errorf("lock %q: %w", name, err)
	}
	return actors.LockRecord{Name: name, Holder: v.Holder, HolderID: v.HolderID, LeaseID: v.LeaseID, Token: v.Token,
		ExpiresAt: fromMS(v.ExpiresAt), AcquiredAt: fromMS(v.AcquiredAt), SessionID: v.SessionID,
		LockDelay: time.Duration(v.LockDelay) * time.Millisecond, AvailableAt: fromMS(v.Available), DelayHolder: v.DelayOf,
		Metadata: v.Metadata}, nil
}

// semaphoreValue is a semaphore's head (semaphores in SQLite).
type semaphoreValue struct {
	Limit int    `json:"limit"`
	Token uint64 `json:"token"`
}

// slotValue is one held slot of a semaphore (semaphore_slots in SQLite);
// the lease id is the key's suffix.
type slotValue struct {
	Holder     string `json:"holder"`
	HolderID   string `json:"holder_id,omitempty"`
	Token      uint64 `json:"token"`
	SessionID  string `json:"session,omitempty"`
	ExpiresAt  int64  `json:"expires_ms"`
	AcquiredAt int64  `json:"acquired_ms"`
	Metadata   string `json:"metadata,omitempty"`
}

func encodeSlot(sl actors.SemaphoreSlot) []byte {
	return mustJSON(slotValue{Holder: sl.Holder, HolderID: sl.HolderID, Token: sl.Token, SessionID: sl.SessionID,
		ExpiresAt: ms(sl.ExpiresAt), AcquiredAt: ms(sl.AcquiredAt), Metadata: sl.Metadata})
}

func decodeSlot(lease string, b []byte) (actors.SemaphoreSlot, error) {
	var v slotValue
	if err := json.Unmarshal(b, &v); err != nil {
		return actors.SemaphoreSlot{}, fmt.Errorf("semaphore slot %q: %w", lease, err)
	}
	return actors.SemaphoreSlot{Holder: v.Holder, HolderID: v.HolderID, LeaseID: lease, Token: v.Token,
		SessionID: v.SessionID, ExpiresAt: fromMS(v.ExpiresAt), AcquiredAt: fromMS(v.AcquiredAt), Metadata: v.Metadata}, nil
}

// sessionValue is a session (sessions in SQLite); its id is the key's
// suffix.
type sessionValue struct {
	Owner     string `json:"owner"`
	TTL       int64  `json:"ttl_ms"`
	LockDelay int64  `json:"lock_delay_ms,omitempty"`
	ExpiresAt int64  `json:"expires_ms"`
	CreatedAt int64  `json:"created_ms"`
}

func encodeSession(r actors.SessionRecord) []byte {
	return mustJSON(sessionValue{Owner: r.Owner, TTL: r.TTL.Milliseconds(), LockDelay: r.LockDelay.Milliseconds(),
		ExpiresAt: ms(r.ExpiresAt), CreatedAt: ms(r.CreatedAt)})
}

func decodeSession(id string, b []byte) (actors.SessionRecord, error) {
	var v sessionValue
	if err := json.Unmarshal(b, &v); err != nil {
		return actors.SessionRecord{}, fmt.Errorf("session %q: %w", id, err)
	}
	return actors.SessionRecord{ID: id, Owner: v.Owner, TTL: time.Duration(v.TTL) * time.Millisecond,
		LockDelay: time.Duration(v.LockDelay) * time.Millisecond, ExpiresAt: fromMS(v.ExpiresAt), CreatedAt: fromMS(v.CreatedAt)}, nil
}

type limitValue struct {
	Algorithm string `json:"algorithm,omitempty"` // absent: sliding_window
	Max       int    `json:"max"`
	Window    int    `json:"window_s"`
	Log       []byte `json:"log"` // actors.LimitState.Row's log, base64 in JSON
	UpdatedAt int64  `json:"updated_ms,omitempty"`
}

func encodeLimit(r actors.LimitRow) []byte {
	alg := r.Algorithm
	if alg == actors.SlidingWindowName {
		alg = "" // as written before token buckets
	}
	return mustJSON(limitValue{Algorithm: alg, Max: r.MaxRequests, Window: r.WindowSeconds, Log: r.Log, UpdatedAt: ms(r.UpdatedAt)})
}

func decodeLimit(owner, name string, b []byte) (actors.LimitRecord, error) {
	var v limitValue
	if err := json.Unmarshal(b, &v); err != nil {
		return actors.LimitRecord{}, fmt.Errorf("limit %s/%s: %w", owner, name, err)
	}
	st, err := actors.DecodeLimitState(v.Algorithm, v.Max, time.Duration(v.Window)*time.Second, v.Log)
	if err != nil {
		return actors.LimitRecord{}, fmt.Errorf("limit %s/%s: %w", owner, name, err)
	}
	return actors.LimitRecord{Owner: owner, Name: name, State: st, UpdatedAt: fromMS(v.UpdatedAt)}, nil
}

type flagValue struct {
	Enabled    bool            `json:"enabled"`
	Percentage *int            `json:"percentage,omitempty"` // absent: no rollout percentage
	Rules      json.RawMessage `json:"rules,omitempty"`      // actors.EncodeFlagTargeting; absent: none
	Variants   json.RawMessage `json:"variants,omitempty"`
	OffVariant string          `json:"off_variant,omitempty"`
	CreatedAt  int64           `json:"created_ms"`
	UpdatedAt  int64           `json:"updated_ms"`
}

func encodeFlag(f actors.FlagRecord) []byte {
	rules, variants := actors.EncodeFlagTargeting(&f)
	v := flagValue{Enabled: f.Enabled, Rules: rules, Variants: variants, OffVariant: f.OffVariant,
		CreatedAt: ms(f.CreatedAt), UpdatedAt: ms(f.UpdatedAt)}
	if f.Percentage != actors.NoPercentage {
		p := f.Percentage
		v.Percentage = &p
	}
	return mustJSON(v)
}

func decodeFlag(owner, name string, b []byte) (actors.FlagRecord, error) {
	var v flagValue
	if err := json.Unmarshal(b, &v); err != nil {
		return actors.FlagRecord{}, fmt.Errorf("flag %s/%s: %w", owner, name, err)
	}
	f := actors.FlagRecord{Owner: owner, Name: name, Enabled: v.Enabled, Percentage: actors.NoPercentage,
		OffVariant: v.OffVariant, CreatedAt: fromMS(v.CreatedAt), UpdatedAt: fromMS(v.UpdatedAt)}
	if v.Percentage != nil {
		f.Percentage = *v.Percentage
	}
	if err := actors.DecodeFlagTargeting(&f, v.Rules, v.Variants); err != nil {
		return actors.FlagRecord{}, err
	}
	return f, nil
}

// configValue is a key's head record (config_keys in SQLite).
type configValue struct {
	Version     int64  `json:"version"`
	Description string `json:"description,omitempty"`
	CreatedAt   int64  `json:"created_ms,omitempty"`
	UpdatedAt   int64  `json:"updated_ms,omitempty"`
	Deleted     bool   `json:"deleted,omitempty"`
}

func encodeConfigHead(c actors.ConfigRecord) []byte {
	return mustJSON(configValue{Version: c.Version, Description: c.Description,
		CreatedAt: ms(c.CreatedAt), UpdatedAt: ms(c.UpdatedAt), Deleted: c.Deleted})
}

func decodeConfigHead(owner, key string, b []byte) (actors.ConfigRecord, error) {
	var v configValue
	if err := json.Unmarshal(b, &v); err != nil {
		return actors.ConfigRecord{}, fmt.Errorf("config %s/%s: %w", owner, key, err)
	}
	return actors.ConfigRecord{Owner: owner, Key: key, Version: v.Version, Description: v.Description,
		CreatedAt: fromMS(v.CreatedAt), UpdatedAt: fromMS(v.UpdatedAt), Deleted: v.Deleted}, nil
}

// A config version is a one-line JSON header, a newline, then the value
// exactly as the client sent it (re-encoding it as JSON would reformat it).
type configVersionHeader struct {
	Description string `json:"description,omitempty"`
	WrittenAt   int64  `json:"written_ms"`
}

func encodeConfigVersion(c actors.ConfigRecord) []byte {
	h := mustJSON(configVersionHeader{Description: c.Description, WrittenAt: ms(c.UpdatedAt)})
	out := make([]byte, 0, len(h)+1+len(c.Value))
	out = append(out, h...)
	out = append(out, '\n')
	return append(out, c.Value...)
}

func decodeConfigVersion(b []byte) (configVersionHeader, []byte, error) {
	var h configVersionHeader
	head, value, ok := bytes.Cut(b, []byte{'\n'})
	if !ok {
		return h, nil, fmt.Errorf("config version: no header")
	}
	if err := json.Unmarshal(head, &h); err != nil {
		return h, nil, fmt.Errorf("config version header: %w", err)
	}
	return h, value, nil
}

// versionOf parses the version from a config version key.
func versionOf(key string) (int64, error) {
	i := strings.LastIndexByte(key, '/')
	v, err := strconv.ParseInt(key[i+1:], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("config version key %q: %w", key, err)
	}
	return v, nil
}

// userValue is a user (users in SQLite); its id is the key's suffix.
type userValue struct {
	Login     string `json:"login"`
	GitHubID  int64  `json:"github_id,omitempty"`
	AvatarURL string `json:"avatar_url,omitempty"`
	CreatedAt int64  `json:"created_ms"`
}

// tokenValue is a bearer token's record; the key holds the SHA-256 of the
// token, never the token.
type tokenValue struct {
	UserID    int64  `json:"user"`
	Source    string `json:"source"`
	CreatedAt int64  `json:"created_ms"`
}

func decodeJSON(what string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func decodeID(what string, b []byte) (int64, error) {
	id, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return id, nil
}

func tokenHash(key, base string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(strings.TrimPrefix(key, base))
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("token key %q: not a SHA-256", key)
	}
	copy(h[:], b)
	return h, nil
}

// mustJSON encodes the record types above, which cannot fail to encode. It
// does not escape <, > and & (encoding/json's default): embedded raw JSON
// (a flag's variant values) keeps its text.
func mustJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("etcdstore: encode %T: %v", v, err))
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
