package tui

import (
	"context"

	"github.com/octostore/octostore/tools/client"
)

// API is the part of the Go client the view uses (*client.Client
// implements it; tests use a fake).
type API interface {
	Events(ctx context.Context, f client.EventFilter) (*client.EventStream, error)
	ListLocks(ctx context.Context) ([]client.LockInfo, error)
	LockStatus(ctx context.Context, name string) (*client.LockState, error)
	SemaphoreStatus(ctx context.Context, name string) (*client.SemaphoreState, error)
	ListSemaphores(ctx context.Context) ([]client.HeldSemaphore, error)
	ListSessions(ctx context.Context) ([]client.SessionInfo, error)
	ListLimits(ctx context.Context) ([]client.LimitInfo, error)
	ListFlags(ctx context.Context) ([]client.Flag, error)
	ListConfig(ctx context.Context) ([]client.ConfigEntry, error)
	Metrics(ctx context.Context) (string, error)
	Cluster(ctx context.Context) (client.ClusterStatus, error)
}

var _ API = (*client.Client)(nil)
