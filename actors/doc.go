// Package actors is octostore's runtime: every lock, rate limit, flag and
// config key is a protoactor-go actor that owns its state and serialises its
// operations.
//
// Ownership, and why there is (almost) no mutex:
//
//   - A request is routed by hash(kind, owner, name) to one of a fixed set of
//     shard actors (shard.go). The shard owns the map name → child actor: it
//     spawns a child on first use and stops it when the child asks to be
//     passivated and no message is in flight to it. Only the shard touches
//     that map, so it needs no lock.
//   - A resource actor (host.go + one Behavior per kind: lock.go, …) owns the
//     resource's state. Nothing else reads or writes it; other goroutines
//     learn about it only through messages and replies.
//   - Durable writes go through the Store (implemented by package
//     persistence: one batched group-commit writer). A reply that depends on a
//     write is delivered only after that write commits, and replies of one
//     actor are delivered in the order the actor produced them, so a client
//     never observes state that a crash could lose. The actor does not wait:
//     later operations proceed in memory while earlier ones commit.
//   - Derived, cross-resource views that the API must serve without a scan
//     (the per-holder lock index, Holdings) are guarded by their own mutexes,
//     documented next to them, and are only updated from commit callbacks.
//
// The pure state machines (lock acquire/renew/release/expire, …) are plain
// functions of `now`, tested without actors or sleeps.
package actors
