// Package etcdstore keeps octostore's state in etcd: the storage of cluster
// mode (issue 14). The actors, the shards and the HTTP API stay as they are
// in single-node mode; only the Store under the actors changes, from SQLite
// (package persistence) to an etcd cluster that octostore either embeds
// (Member: one member per node, in the same binary) or joins (Connect).
// Both backends pass one contract suite (package persistence/storetest).
//
// # Who owns what
//
//   - Leadership is etcd's election recipe (client/v3/concurrency): every
//     node campaigns with a Session whose lease is --leader-ttl (Elector).
//     The winner's Term lasts until its lease cannot be renewed in time,
//     the lease or the election key is gone, or it stands down. Only the
//     leader runs the actors; followers observe who leads (Status).
//   - The leader's Writer is the only writer of the keyspace. Every batch of
//     writes is one etcd Txn whose If requires the leader's election key to
//     still have the create revision it had when the term began (Fence). A
//     deposed or paused leader therefore commits nothing, whatever it
//     believes: its belief only decides whether it answers or says 503.
//   - One Txn is in flight at a time (or up to Options.TxnsInFlight: one
//     sent while another is unresolved also requires that other's value at
//     meta/txn_chain), so batches commit in the order of their writes and
//     a failed one fails the ones behind it (Writer); callbacks run in
//     enqueue order on the writer goroutine, each after its own Txn and
//     every earlier one committed. The writer's queue is guarded by its mutex (see Writer); the
//     transaction being built (txnBuilder) belongs to the writer goroutine.
//   - A Txn refused by its guard, or whose outcome is unknown (a timeout: it
//     may still commit), ends the term: the store fails every later write,
//     and the next term (on this node or another) starts from what etcd
//     holds, read after its Campaign returned, when every Txn of earlier
//     terms has either committed or can no longer pass its guard.
//   - Readers (loaders, listings, tokens) need no term. They read with
//     linearizable gets by default; Options.SerializableReads is correct
//     only on the node's own embedded member.
//
// # Key layout
//
// Every key starts with the keyspace prefix (Options.Prefix, default
// "/octostore/"). <owner> (and a lock's "holder") is the account's user id
// (gh:<GitHub id> or u:<user id>, persistence/identity.go), never its login.
// <owner>, <name>, <key> and <login> are path-escaped
// (url.PathEscape: "/" becomes "%2F"), so a segment never contains "/" and
// one owner's prefix never matches another's. Times are unix milliseconds,
// 0 (or absent) for none. Values are JSON, readable with etcdctl, except
// where noted.
//
//	meta/layout               "2": the layout version (LayoutVersion); a newer one is refused,
//	                          and so is 1 (owners named by login; never released)
//	election/<lease hex>      the election keys (concurrency.Election), value
//	                          {"name","api_url","since"}: the leader's identity (LeaderInfo)
//	node/<name>               {"name","api_url","peer_url","since"}: a running node
//	                          (Register), under a lease of its own; not fenced, never
//	                          read by the writer
//
//	lock/<name>               {"holder","holder_id","lease","token","expires_ms","acquired_ms",
//	                          "session","lock_delay_ms","available_ms","delay_holder","metadata"}: one
//	                          per lock ever granted; holder absent = free. Never deleted,
//	                          so the fencing token never goes backwards. session: the
//	                          session the lock is held under (its expiry decides;
//	                          expires_ms is the session's as last written). A lock freed
//	                          by an expiry with a lock-delay keeps expires_ms and
//	                          delay_holder, and is not granted before available_ms.
//	sem/<name>                {"limit","token"}: a semaphore's limit (its holders') and last
//	                          fencing token; never deleted, so tokens never go backwards.
//	semslot/<name>/<lease>    {"holder","holder_id","token","session","expires_ms","acquired_ms","metadata"}:
//	                          one held slot; written with its semaphore's head in one Txn.
//	session/<id>              {"owner","ttl_ms","lock_delay_ms","expires_ms","created_ms"}:
//	                          a session; deleted once it has ended and every lock of it
//	                          has recorded its end.
//	limit/<owner>/<name>      {"algorithm","max","window_s","log","updated_ms"}: algorithm
//	                          "token_bucket", or absent for the sliding window; log is
//	                          the window's bucket log (actors.SlidingWindow.AppendBinary)
//	                          or the bucket's level and time (actors.LimitState.Row),
//	                          base64. Written behind: a failover loses at most the
//	                          last flush interval of counts.
//	flag/<owner>/<name>       {"enabled","percentage","rules","variants","off_variant",
//	                          "created_ms","updated_ms"}; percentage absent = no rollout
//	                          percentage; rules, variants (JSON arrays as
//	                          actors.EncodeFlagTargeting writes them, the same text as
//	                          SQLite's columns) and off_variant absent = none.
//	config/<owner>/<key>      {"version","description","created_ms","updated_ms","deleted"}:
//	                          the key's head. A deleted key keeps its head (deleted,
//	                          its last version) so that a re-created key continues
//	                          the numbering and a (key, version) never names two values.
//	configv/<owner>/<key>/<version, 20 digits>
//	                          one retained version: a one-line JSON header
//	                          {"description","written_ms"}, "\n", then the value exactly
//	                          as the client sent it (not re-encoded). Versions older
//	                          than the newest --config-history are deleted by a range
//	                          delete in the same Txn as the write that passes them.
//
//	user/<id, 20 digits>      {"login","github_id","avatar_url","created_ms"}; its user id
//	                          is gh:<github_id> when it has one, else u:<id>
//	userlogin/<login>         the user id (decimal) of a login
//	usergithub/<github id>    the user id of a GitHub account (a rename moves the login
//	                          index, not the user: tokens keep working)
//	meta/user_seq             the last user id handed out
//	token/<sha256 hex>        {"user","source","created_ms"}: a bearer token, named by
//	                          its SHA-256. The raw token is never stored or logged.
//	meta/auth_epoch           the auth epoch servers poll to drop their token caches;
//	                          absent = 0. Reserved for token changes made outside the
//	                          leader's writer (none exist in cluster mode yet).
//	meta/txn_chain            "<election key revision, hex>/<n>": written by every Txn of the
//	                          leader's writer (the n-th of its term); a Txn sent while another
//	                          is in flight requires the other's value here (Writer)
//	meta/forward_key          the cluster's forwarding key (ForwardKey): a node that
//	                          forwards a request vouches for its client's address with
//	                          it. Written once by the first node; not the writer's.
//
// SQLite's lock journal (persistence/locklog.go) has no counterpart: it
// exists to dirty fewer SQLite pages, and etcd writes a log already.
//
// # Sizing
//
// What fills etcd: one lock key per lock name ever granted, a limit key per
// live limit (rewritten at most once per flush interval), config history
// (up to --config-history versions of ≤ 100 KiB each per key), and MVCC
// history until compaction. An embedded member compacts every
// AutoCompactionRetention (default 5 m); bbolt reuses freed pages but its
// file shrinks only by defragmentation. The leader runs Maintain: it
// compacts an external etcd, defragments members that waste space one at a
// time, and disarms the NOSPACE alarm that the space quota
// (QuotaBackendBytes) raises when reached, after reclaiming space.
package etcdstore
