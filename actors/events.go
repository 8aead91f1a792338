package actors

import "time"

// Event is one committed state change.
type Event struct {
	// Seq numbers the event: as delivered to a subscription, its number in
	// the subscriber's scope (Broker); as published, ignored (the broker
	// numbers it).
	Seq          uint64    `json:"seq"`
	Type         string    `json:"type"` // lock.acquired, lock.renewed, lock.released, lock.expired, flag.set, …
	Kind         string    `json:"kind"` // lock | semaphore | session | flag | config | limit
	Name         string    `json:"name"`
	Owner        string    `json:"owner,omitempty"`
	Holder       string    `json:"holder,omitempty"`
	HolderID     string    `json:"holder_id,omitempty"` // lock events: LockRecord.HolderID
	LeaseID      string    `json:"lease_id,omitempty"`
	SessionID    string    `json:"session_id,omitempty"` // lock events of a session hold (like the lease: holder and admin only)
	FencingToken uint64    `json:"fencing_token,omitempty"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
	AvailableAt  time.Time `json:"available_at,omitzero"` // lock.expired of a hold with a lock-delay: not granted before
	Version      int64     `json:"version,omitempty"`
	Limit        int       `json:"limit,omitempty"`    // semaphore events: the semaphore's limit
	Metadata     string    `json:"metadata,omitempty"` // lock and semaphore events: the hold's metadata (everybody sees it)
	// Value and Description are a config version's (config.written, and
	// the config.state of a watch); only subscribers whose Filter asks for
	// Values get them.
	Value       []byte `json:"value,omitempty"`
	Description string `json:"description,omitempty"`
	// Exists is set in config.state only: whether the key exists.
	Exists *bool     `json:"exists,omitempty"`
	Time   time.Time `json:"time"`
}

// Event types.
const (
	EventLockAcquired  = "lock.acquired"
	EventLockRenewed   = "lock.renewed"
	EventLockReleased  = "lock.released"
	EventLockExpired   = "lock.expired"
	EventFlagSet       = "flag.set"
	EventFlagDeleted   = "flag.deleted"
	EventConfigWritten = "config.written"
	EventConfigDeleted = "config.deleted"
	// EventConfigState is the first event of a config watch (never
	// published: the watch handler makes it).
	EventConfigState = "config.state"
	EventLimitDenied = "limit.denied"
	EventLimitReset  = "limit.reset"
)

// Publisher receives events. Publish must never block: it is called from
// the writer's commit callbacks and from actors.
type Publisher interface{ Publish(Event) }

type nopPublisher struct{}

func (nopPublisher) Publish(Event) {}
