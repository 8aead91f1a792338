package main

import (
	"time"

	"github.com/octostore/octostore/httpd"
	"github.com/urfave/cli/v2"
)

// Limits that keep slow, idle or too many clients from exhausting the
// server (docs/guarantees.md, "Overload"). --max-conns, --max-body-bytes and
// --max-locks-per-user live in serve.go.
func init() {
	serveCommand.Flags = append(serveCommand.Flags,
		&cli.DurationFlag{Name: "read-timeout", Value: 30 * time.Second, Usage: "a request (line, headers and body) must arrive within this; slower clients are cut off", EnvVars: []string{"OCTOSTORE_READ_TIMEOUT"}},
		&cli.DurationFlag{Name: "write-timeout", Value: 30 * time.Second, Usage: "a response must be written within this", EnvVars: []string{"OCTOSTORE_WRITE_TIMEOUT"}},
		&cli.DurationFlag{Name: "conn-idle-timeout", Value: 120 * time.Second, Usage: "close keep-alive connections idle this long", EnvVars: []string{"OCTOSTORE_CONN_IDLE_TIMEOUT"}},
		&cli.IntFlag{Name: "max-inflight", Value: httpd.DefaultMaxInFlight, Usage: "requests handled at once; beyond it the server answers 503 + Retry-After", EnvVars: []string{"OCTOSTORE_MAX_INFLIGHT"}},
		&cli.IntFlag{Name: "max-header-bytes", Value: 8192, Usage: "request line and headers limit (431 beyond)", EnvVars: []string{"OCTOSTORE_MAX_HEADER_BYTES"}},
		&cli.DurationFlag{Name: "request-timeout", Value: 10 * time.Second, Usage: "longest wait for a resource to answer (503 beyond)", EnvVars: []string{"OCTOSTORE_REQUEST_TIMEOUT"}},
	)
	serveOptionHooks = append(serveOptionHooks, func(c *cli.Context, o *httpd.Options) error {
		o.Server.ReadTimeout = c.Duration("read-timeout")
		o.Server.WriteTimeout = c.Duration("write-timeout")
		o.Server.IdleTimeout = c.Duration("conn-idle-timeout")
		o.Server.MaxInFlight = c.Int("max-inflight")
		o.Server.MaxHeaderBytes = c.Int("max-header-bytes")
		o.RequestTimeout = c.Duration("request-timeout")
		return nil
	})
}
