// Package actors is octostore's runtime: every lock, rate limit, flag and
// config key is a protoactor-go actor that owns its state and serialises its
// operations.
//
// Entry points. Each resource kind has a typed, context-taking entry point:
// Locks (Acquire, Renew, Release, ForceRelease, Status, List), Limits (Check,
// Status, Reset, List), Flags (Put, Get, Evaluate, Delete, List) and
// ConfigKeys (Put, Get, Version, History, Delete, List). A call builds the
// kind's operation (a pointer that carries the answer back) and hands it to
// System.call; nothing returns `any` and nobody type-asserts a reply. Every
// kind plugs into the runtime the same way, with a KindSpec (its Behavior
// and its start-up recovery); System, the shards and Host know nothing
// kind-specific.
//
// Cancellation (System.call): a done context stops the wait, not an
// operation already applied. An operation whose caller's context is done
// before the actor picks it up is dropped unapplied; one the actor has
// applied is queued and commits (or fails) whatever happens to the context.
// A call that returns the context's error may therefore or may not have been
// applied.
//
// Errors are *Error values with a Code (errors.go), shared by validation,
// the actors, persistence and sign-in; the HTTP layer maps codes to statuses
// in one place.
//
// Ownership, and why there is (almost) no mutex:
//
//   - A request is routed by hash(kind, owner, name) to one of a fixed set of
//     shard actors (shard.go). The shard owns the map name → child actor: it
//     spawns a child on first use and stops it when the child asks to be
//     passivated and no message is in flight to it. Only the shard writes
//     that map; callers read it (under the shard's RWMutex) to send to a
//     resident child directly, and each child counts the requests in flight
//     to it, which is what the shard's stop decision (a compare-and-swap of
//     that count from 0) rests on.
//   - A resource actor (host.go + one Behavior per kind: lock.go, …) owns the
//     resource's state. Nothing else reads or writes it; other goroutines
//     learn about it only through messages, replies and copies: a limit
//     actor hands the counter flusher immutable snapshots (LimitRow) of its
//     window, never the window (limitflush.go).
//   - Durable writes go through the Store (implemented by package
//     persistence: one batched group-commit writer). A reply that depends on a
//     write is delivered only after that write commits, and replies of one
//     actor are delivered in the order the actor produced them, so a client
//     never observes state that a crash could lose. The actor does not wait:
//     later operations proceed in memory while earlier ones commit.
//     Rate-limit counters are the exception: written behind by the flusher,
//     whose only lock guards its own queue of snapshots.
//   - Derived, cross-resource views that the API must serve without a scan
//     (the per-holder lock index, Holdings; the flag read view; the per-owner
//     quota counters) are guarded by their own mutexes, documented next to
//     them, and are only updated from commit callbacks or by the owning
//     actors.
//
// The pure state machines (lock acquire/renew/release/expire, the sliding
// window, flag bucketing, config versioning) are plain functions of `now`,
// tested without actors or sleeps.
package actors
