package main

import (
	"fmt"

	"github.com/octostore/octostore/httpd"
	"github.com/urfave/cli/v2"
)

// Events and metrics flags of `octostore serve` (docs/operations.md, "Events
// and metrics").
func init() {
	serveCommand.Flags = append(serveCommand.Flags,
		&cli.StringFlag{Name: "metrics-addr", Usage: "also serve GET /metrics without authentication on this address (host:port; keep it on a private interface)", EnvVars: []string{"OCTOSTORE_METRICS_ADDR"}},
		&cli.DurationFlag{Name: "event-heartbeat", Value: httpd.DefaultEventHeartbeat, Usage: `interval of ": ping" comments on idle event streams`, EnvVars: []string{"OCTOSTORE_EVENT_HEARTBEAT"}},
		&cli.IntFlag{Name: "event-buffer", Value: 1024, Usage: "events an event-stream subscriber may fall behind before it is cut off with a lagged event", EnvVars: []string{"OCTOSTORE_EVENT_BUFFER"}},
	)
	serveOptionHooks = append(serveOptionHooks, func(c *cli.Context, o *httpd.Options) error {
		if c.Duration("event-heartbeat") <= 0 {
			return exitCode(exitUsage, fmt.Errorf("--event-heartbeat must be positive"))
		}
		if c.Int("event-buffer") <= 0 {
			return exitCode(exitUsage, fmt.Errorf("--event-buffer must be positive"))
		}
		o.MetricsAddr = c.String("metrics-addr")
		o.EventHeartbeat = c.Duration("event-heartbeat")
		o.EventBuffer = c.Int("event-buffer")
		return nil
	})
}
