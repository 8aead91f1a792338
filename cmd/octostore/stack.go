package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/httpd"
)

// stack is the part of a server that runs on one store: the events broker,
// the actor system with the four kinds and their recovery, the
// authenticator and the HTTP server's handlers. A single node opens one,
// on SQLite, for its lifetime (Main.Run); a cluster node opens one on etcd
// for each term it leads and closes it when the term ends (cluster.go).
type stack struct {
	Events     *actors.Broker
	Sys        *actors.System
	Locks      *actors.Locks // the typed entry points of the kinds
	Sessions   *actors.Sessions
	Semaphores *actors.Semaphores
	Limits     *actors.Limits
	Flags      *actors.Flags
	ConfigKeys *actors.ConfigKeys
	Auth       *httpd.Authenticator
	Server     *httpd.Server
}

// stackStore is what a stack runs on: persistence.Store, or the
// etcdstore.Store of one leader term.
type stackStore interface {
	httpd.Storage
	actors.Store
	actors.LockLoader
	actors.SessionStore
	actors.SemaphoreStore
	actors.LimitStore
	actors.FlagStore
	actors.ConfigStore
}

// opener records the undo of a step that has just opened something (nil:
// nothing to undo) and says whether opening may go on.
type opener func(step string, undo func() error) error

// open opens the stack's parts on store, in dependency order: events
// broker → actor system → resource kinds → recovery → authenticator. Each
// step reports to opened as soon as it has opened something.
func (s *stack) open(cfg *ServeConfig, store stackStore, log *slog.Logger, now func() time.Time, opened opener) error {
	s.Events = actors.NewBroker(cfg.Events)
	if err := opened("events broker", noErr(s.Events.Close)); err != nil {
		return err
	}

	ac := cfg.Actors
	ac.Store, ac.Events, ac.Logger = store, s.Events, log
	if ac.Now == nil {
		ac.Now = now
	}
	s.Sys = actors.NewSystem(ac)
	// One undo for the runtime and the rate-limit flusher that NewLimits
	// starts: the actors stop first (no more checks), then the flusher
	// writes what they counted, before the writer closes.
	if err := opened("actor system", func() error {
		s.Sys.Close()
		if s.Limits == nil {
			return nil
		}
		if err := s.Limits.Close(); err != nil {
			return fmt.Errorf("write rate limit counters: %w", err)
		}
		return nil
	}); err != nil {
		return err
	}
	// Every kind plugs into the runtime the same way (actors.KindSpec).
	lc, sc, limc, fc, cc := cfg.Locks, cfg.Sessions, cfg.Limits, cfg.Flags, cfg.ConfigKeys
	lc.Loader, sc.Store, limc.Store, fc.Store, cc.Store = store, store, store, store, store
	// Sessions first: they recover before the locks held under them.
	s.Sessions = actors.NewSessions(s.Sys, sc)
	lc.Sessions = s.Sessions
	s.Locks = actors.NewLocks(s.Sys, lc)
	// Semaphore slots count against the per-user lock quota's number (each
	// kind on its own), and queue under the same per-lock waiter bound.
	s.Semaphores = actors.NewSemaphores(s.Sys, actors.SemaphoreConfig{Store: store, Sessions: s.Sessions,
		MaxPerUser: lc.MaxPerUser, MaxWaiters: lc.MaxWaiters})
	s.Limits = actors.NewLimits(s.Sys, limc)
	s.Flags = actors.NewFlags(s.Sys, fc)
	s.ConfigKeys = actors.NewConfigKeys(s.Sys, cc)
	if err := opened("resource kinds", nil); err != nil {
		return err
	}
	// Each kind's recovery (held locks' timers and holder index; quota
	// counters), logged per kind, without the collector's pacing: what it
	// allocates, it keeps (gcpause.go).
	resume := pauseGC()
	err := s.Sys.Recover()
	resume()
	if err != nil {
		return err
	}
	if err := opened("recovery", nil); err != nil {
		return err
	}

	if s.Auth, err = httpd.NewAuthenticator(store, cfg.AdminKey); err != nil {
		return err
	}
	return opened("authenticator", noErr(s.Auth.Close))
}

// newServer builds the HTTP server's handlers over the stack.
func (s *stack) newServer(cfg *ServeConfig, store stackStore, github *httpd.GitHubSignIn, m *httpd.Metrics, log *slog.Logger, now func() time.Time) *httpd.Server {
	s.Server = httpd.NewServer(cfg.Server, httpd.Deps{
		Locks: s.Locks, Sessions: s.Sessions, Semaphores: s.Semaphores, Limits: s.Limits, Flags: s.Flags, Config: s.ConfigKeys,
		Sys: s.Sys, Store: store, Auth: s.Auth, GitHub: github,
		Events: s.Events, Metrics: m, Logger: log, Now: now,
	})
	return s.Server
}
