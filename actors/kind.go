package actors

import "fmt"

// The resource kinds are named here; each one's entry point, operations and
// Behavior live in its own file (lock.go, ratelimit.go, flag.go, config.go)
// and plug into the runtime with a KindSpec. Sessions (session.go) are a kind
// too: one actor per session, which locks and semaphores consult through the
// session index.

// Kind is a resource kind. Each kind has its own Behavior.
type Kind uint8

// The resource kinds.
const (
	KindLock Kind = iota
	KindLimit
	KindFlag
	KindConfig
	KindSession
	KindSemaphore
	numKinds
)

func (k Kind) String() string {
	switch k {
	case KindLock:
		return "lock"
	case KindLimit:
		return "limit"
	case KindFlag:
		return "flag"
	case KindConfig:
		return "config"
	case KindSession:
		return "session"
	case KindSemaphore:
		return "semaphore"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}
