package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/octostore/octostore/tools/client"
	"github.com/octostore/octostore/tools/termtext"
	"github.com/urfave/cli/v2"
)

func configCommand() *cli.Command {
	return groupCommand("config", "versioned JSON configuration: set, get, history, rollback, watch, delete, list",
		clientCommand("set", "write a new version of KEY; VALUE is inline JSON, @file.json, or @- for stdin", "KEY VALUE|@FILE", configSet, ownerFlag(),
			&cli.StringFlag{Name: "description", Usage: "description stored with this version (one line of text)"},
			&cli.Int64Flag{Name: "if-version", DefaultText: "none: write whatever the version", Usage: "write only if KEY is at this version now (0: only create); exit 3 otherwise"}),
		clientCommand("get", "print the value of KEY (the whole entry with --json)", "KEY", configGet, ownerFlag(),
			&cli.Int64Flag{Name: "version", DefaultText: "the current one", Usage: "a past version of KEY"}),
		clientCommand("history", "list the versions of KEY (values cut to fit: config get --version N has them whole)", "KEY", configHistory, ownerFlag()),
		clientCommand("rollback", "write a new version of KEY with VERSION's value and description", "KEY VERSION", configRollback, ownerFlag(),
			&cli.Int64Flag{Name: "if-version", DefaultText: "none: write whatever the version", Usage: "write only if KEY is at this version now (0: only create); exit 3 otherwise"}),
		clientCommand("watch", "print KEY's value, then every new value as it is written (one line of JSON each; --json: every event), until interrupted", "KEY", configWatch, ownerFlag(),
			&cli.IntFlag{Name: "changes", DefaultText: "0: until interrupted", Usage: "exit after this many changes (writes and deletes) after the current value"}),
		clientCommand("delete", "delete KEY and its history", "KEY", configDelete, ownerFlag()),
		clientCommand("list", "list your keys (every user's for the admin key, with an OWNER column)", "", configList, ownerFlag()),
	)
}

// readValue turns the VALUE argument (what: "VALUE", "--rules", ...) into
// JSON: inline, @file.json, or @- for stdin.
func readValue(c *cli.Context, what, arg string, stdin io.Reader) (json.RawMessage, error) {
	var b []byte
	switch {
	case arg == "@-":
		var err error
		if b, err = io.ReadAll(stdin); err != nil {
			return nil, exitCode(exitFailure, fmt.Errorf("read stdin: %w", err))
		}
	case strings.HasPrefix(arg, "@"):
		var err error
		if b, err = os.ReadFile(arg[1:]); err != nil {
			return nil, usageErr(c, "%v", err)
		}
	default:
		b = []byte(arg)
	}
	b = bytes.TrimSpace(b)
	if !json.Valid(b) {
		return nil, errUsage(c, what+` is not valid JSON (quote strings: '"text"'; or use @file.json)`)
	}
	return b, nil
}

func configSet(c *cli.Context, args []string) error {
	v, err := readValue(c, "VALUE", args[1], os.Stdin)
	if err != nil {
		return err
	}
	w := client.ConfigWrite{Value: v, Description: c.String("description")}
	if c.IsSet("if-version") {
		n := c.Int64("if-version")
		if n < 0 {
			return errUsage(c, "--if-version must be 0 or more")
		}
		w.ExpectedVersion = &n
	}
	return clientRun(c, func(cl *client.Client, ctx context.Context) (*client.ConfigEntry, error) {
		return cl.SetConfig(ctx, args[0], w)
	}, func(w io.Writer, e *client.ConfigEntry) error {
		return printFields(w, "key", e.Key, "version", strconv.FormatInt(e.Version, 10), "description", e.Description, "updated_at", fmtTime(e.UpdatedAt))
	})
}

// configGet prints the value as indented JSON; any character inside its
// strings that a terminal would act on is written as a \uXXXX escape
// (termtext.EscapeJSON), so it shows and decodes as the same value.
func configGet(c *cli.Context, args []string) error {
	n := c.Int64("version")
	if c.IsSet("version") && n < 1 {
		return errUsage(c, "--version must be 1 or more")
	}
	return clientRun(c, func(cl *client.Client, ctx context.Context) (*client.ConfigEntry, error) {
		return cl.GetConfigVersion(ctx, args[0], n)
	}, func(w io.Writer, e *client.ConfigEntry) error {
		var buf bytes.Buffer
		if json.Indent(&buf, e.Value, "", "  ") != nil {
			buf.Reset()
			buf.Write(e.Value)
		}
		buf.WriteByte('\n')
		_, err := w.Write(termtext.EscapeJSON(buf.Bytes()))
		return err
	})
}

func configHistory(c *cli.Context, args []string) error {
	return listRun(c, client.MaxHistoryPage, func(cl *client.Client, ctx context.Context, o client.ListOptions) (*client.Page[client.ConfigVersion], error) {
		h, err := cl.ConfigHistoryPage(ctx, args[0], o.Cursor, o.Limit)
		if err != nil {
			return nil, err
		}
		return &client.Page[client.ConfigVersion]{Items: h.Versions, Total: -1 /* a history page has no total */, NextCursor: h.NextCursor}, nil
	}, []col{{"VERSION", false}, {"CREATED", false}, {"DESCRIPTION", true}, {"VALUE", true}},
		func(v client.ConfigVersion) []string {
			return []string{strconv.FormatInt(v.Version, 10), fmtTime(v.CreatedAt), v.Description, compactJSON(v.Value)}
		}, nil)
}

// compactJSON is v on one line, for tables.
func compactJSON(v json.RawMessage) string {
	var buf bytes.Buffer
	if json.Compact(&buf, v) != nil {
		return string(v)
	}
	return buf.String()
}

func configRollback(c *cli.Context, args []string) error {
	n, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil || n < 1 {
		return errUsage(c, "VERSION must be a version number (1 or more)")
	}
	var expected *int64
	if c.IsSet("if-version") {
		v := c.Int64("if-version")
		if v < 0 {
			return errUsage(c, "--if-version must be 0 or more")
		}
		expected = &v
	}
	return clientRun(c, func(cl *client.Client, ctx context.Context) (*client.ConfigEntry, error) {
		return cl.RollbackConfig(ctx, args[0], n, expected)
	}, func(w io.Writer, e *client.ConfigEntry) error {
		return printFields(w, "key", e.Key, "version", strconv.FormatInt(e.Version, 10), "value of", strconv.FormatInt(n, 10),
			"description", e.Description, "updated_at", fmtTime(e.UpdatedAt))
	})
}

// configWatch streams KEY: its value, then each new one, one line of
// compact JSON each (strings escaped as config get escapes them); a delete
// is a line on stderr. --json prints every event's data as the server sent
// it. --timeout bounds the connection, not the watch. Interrupted (SIGINT,
// SIGTERM) it exits 0; a stream the server ends (lagged, shutdown) exits 6.
func configWatch(c *cli.Context, args []string) error {
	changes := c.Int("changes")
	if changes < 0 {
		return errUsage(c, "--changes must be 0 or more")
	}
	cn, err := dial(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	timer := time.AfterFunc(c.Duration("timeout"), cancel)
	s, err := cn.WatchConfig(ctx, args[0])
	if !timer.Stop() && c.Context.Err() == nil { // the timer cancelled ctx: the stream (if any) is gone
		if err == nil {
			s.Close()
		}
		err = fmt.Errorf("%w: no answer within --timeout %s", client.ErrUnavailable, c.Duration("timeout"))
	}
	if err != nil {
		if c.Context.Err() != nil {
			return nil // interrupted while connecting
		}
		return clientErr(err)
	}
	defer s.Close()
	out, errw := c.App.Writer, c.App.ErrWriter
	seen := 0
	for e := range s.C {
		if c.Bool("json") {
			if _, err := fmt.Fprintf(out, "%s\n", e.Data); err != nil {
				return exitCode(exitFailure, err)
			}
		} else {
			switch {
			case e.Value != nil:
				if _, err := out.Write(termtext.EscapeJSON(append(append([]byte(nil), e.Value...), '\n'))); err != nil {
					return exitCode(exitFailure, err)
				}
			case e.Type == client.EventConfigDeleted:
				fmt.Fprintf(errw, "octostore: config key %s deleted (version %d)\n", termtext.Clean(args[0]), e.Version)
			}
		}
		if e.Type == client.EventConfigWritten || e.Type == client.EventConfigDeleted {
			if seen++; changes > 0 && seen >= changes {
				return nil
			}
		}
	}
	switch err := s.Err(); {
	case c.Context.Err() != nil:
		return nil // interrupted
	case errors.Is(err, client.ErrLagged):
		return exitCode(exitUnavailable, fmt.Errorf("config watch %s fell behind and was cut off: watch again", args[0]))
	default:
		return exitCode(exitUnavailable, fmt.Errorf("config watch %s: the server ended the stream: %v", args[0], err))
	}
}

func configDelete(c *cli.Context, args []string) error {
	return doneRun(c, "deleted "+args[0], func(cl *client.Client, ctx context.Context) error {
		return cl.DeleteConfig(ctx, args[0])
	})
}

func configList(c *cli.Context, args []string) error {
	return listRun(c, listPageSize, (*client.Client).ListConfigPage,
		[]col{{"KEY", true}, {"VERSION", false}, {"UPDATED", false}, {"DESCRIPTION", true}},
		func(e client.ConfigEntry) []string {
			return []string{e.Key, strconv.FormatInt(e.Version, 10), fmtTime(e.UpdatedAt), e.Description}
		}, func(e client.ConfigEntry) string { return e.Owner })
}
