// Package tui is `octostore tui`: a Bubble Tea terminal view of a running
// server. It talks HTTP only, through the Go client (tools/client): the live
// lock table follows GET /events and resynchronises from GET /locks on every
// (re)connect; the semaphore table follows semaphore events and reads each
// known semaphore (GET /semaphores/{name}: the API lists none) at every
// (re)connect; the sessions, limits, flags and config views list their
// resources and list again when an event of their kind arrives; what changes
// without an event (a lock's waiters, semaphores' waiters, sessions'
// keepalives) is polled while it is on screen; the header scrapes
// GET /metrics (admin key only) for ops/s and p99.
//
// Ownership: all view state lives in Model and is touched only by Update, on
// Bubble Tea's goroutine. Every network call runs in a tea.Cmd (Bubble Tea
// runs those on their own goroutines) and comes back as a typed message, so
// the view never blocks on the network. Messages from an event stream carry
// the connection generation they belong to; after a reconnect, messages of
// an older generation are dropped.
//
// Components are small: lockTable (locks.go), semTable (semaphores.go),
// listTable (lists.go), the header with its sparkline (header.go) and the
// key map (keys.go); each has SetSize and View.
package tui
