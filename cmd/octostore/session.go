package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/octostore/octostore/tools/client"
	"github.com/urfave/cli/v2"
)

// sessionCommand is `octostore session`: sessions that locks are held under
// (lock acquire --session), kept alive by keepalives instead of renewing
// each lock.
func sessionCommand() *cli.Command {
	return groupCommand("session", "create, keep alive, close and list sessions (locks held under one live as long as it)",
		clientCommand("create", "create a session and print its id (keep it alive with session keepalive)", "", sessionCreate,
			&cli.DurationFlag{Name: "ttl", Value: client.DefaultSessionTTL, Usage: "the session's time-to-live after each keepalive (5s..1h)"},
			lockDelayFlag()),
		clientCommand("keepalive", "keep a session alive for its ttl from now", "ID", sessionKeepAlive),
		clientCommand("close", "close a session: every lock held under it is released at once", "ID", sessionClose),
		clientCommand("list", "list your live sessions and their locks (every user's for the admin key)", "", sessionList),
	)
}

func sessionFields(w io.Writer, s *client.SessionInfo) error {
	return printFields(w,
		"session_id", s.SessionID,
		"ttl", (time.Duration(s.TTLSeconds) * time.Second).String(),
		"lock_delay", (time.Duration(s.LockDelaySeconds) * time.Second).String(),
		"expires_at", fmtTime(s.ExpiresAt)+" (in "+fmtUntil(s.ExpiresAt)+")")
}

func sessionCreate(c *cli.Context, _ []string) error {
	return clientRun(c, func(cl *client.Client, ctx context.Context) (*client.SessionInfo, error) {
		return cl.CreateSession(ctx, c.Duration("ttl"), c.Duration("lock-delay"))
	}, sessionFields)
}

func sessionKeepAlive(c *cli.Context, args []string) error {
	return clientRun(c, func(cl *client.Client, ctx context.Context) (*client.SessionInfo, error) {
		return cl.KeepAliveSession(ctx, args[0])
	}, func(w io.Writer, s *client.SessionInfo) error {
		return printFields(w, "session_id", s.SessionID, "expires_at", fmtTime(s.ExpiresAt)+" (in "+fmtUntil(s.ExpiresAt)+")")
	})
}

func sessionClose(c *cli.Context, args []string) error {
	return clientRun(c, func(cl *client.Client, ctx context.Context) (int, error) {
		return cl.CloseSession(ctx, args[0])
	}, func(w io.Writer, n int) error {
		_, err := fmt.Fprintf(w, "closed session %s (released %d %s)\n", args[0], n, plural(n, "lock", "locks"))
		return err
	})
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func sessionList(c *cli.Context, _ []string) error {
	return listRun(c, listPageSize, (*client.Client).ListSessionsPage,
		[]col{{"SESSION ID", false}, {"EXPIRES IN", false}, {"TTL", false}, {"LOCKS", true}},
		func(s client.SessionInfo) []string {
			return []string{s.SessionID, fmtUntil(s.ExpiresAt), (time.Duration(s.TTLSeconds) * time.Second).String(),
				strconv.Itoa(len(s.Locks)) + ": " + strings.Join(s.Locks, " ")}
		}, func(s client.SessionInfo) string { return s.Owner })
}
