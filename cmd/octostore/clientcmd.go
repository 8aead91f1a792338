package main

// Shared plumbing of the client commands (lock, limit, flag, config, token
// rotate, health): the connection flags, the client, flags after positional
// arguments, output (tables or --json) and the error -> exit code map.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/octostore/octostore/tools/client"
	"github.com/urfave/cli/v2"
)

const defaultURL = "http://127.0.0.1:3000"

// clientFlags are the flags of every leaf client command, plus extra.
func clientFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "url", Value: defaultURL, Usage: "server URL", EnvVars: []string{"OCTOSTORE_URL"}},
		&cli.StringFlag{Name: "token", Usage: "bearer token", EnvVars: []string{"OCTOSTORE_TOKEN"}},
		&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"},
		&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "per-request timeout"},
	}, extra...)
}

// clientCommand is a leaf client command: the connection flags plus extra,
// and an action that takes its positional arguments (flags may follow
// them, clientAction).
func clientCommand(name, usage, argsUsage string, action func(c *cli.Context, args []string) error, extra ...cli.Flag) *cli.Command {
	return &cli.Command{Name: name, Usage: usage, ArgsUsage: argsUsage, Flags: clientFlags(extra...), Action: clientAction(-1, action)}
}

// groupCommand is a command made of subcommands; run without one that
// matches, it shows its help (groupAction).
func groupCommand(name, usage string, subs ...*cli.Command) *cli.Command {
	return &cli.Command{Name: name, Usage: usage, Action: groupAction, Subcommands: subs}
}

// newClientFromCtx builds the client from --url and --token.
func newClientFromCtx(c *cli.Context) (*client.Client, error) {
	cl, err := client.New(c.String("url"), c.String("token"),
		client.WithTimeout(c.Duration("timeout")),
		client.WithUserAgent("octostore-cli/"+Version))
	if err != nil {
		return nil, exitCode(exitUsage, fmt.Errorf("--url: %w", err))
	}
	return cl, nil
}

// clientAction adapts an action that takes its positional arguments.
//
// urfave/cli v2 stops parsing flags at the first positional argument, so
// `lock acquire NAME --ttl 30s` would leave --ttl unparsed. clientAction
// parses the command's flags found among the arguments (up to "--", and up
// to maxPos positional arguments; -1 for no limit) and passes the remaining
// positional arguments plus everything after the limit or "--" to fn.
func clientAction(maxPos int, fn func(c *cli.Context, args []string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		args, err := reorderFlags(c, c.Args().Slice(), maxPos)
		if err != nil {
			return exitCode(exitUsage, err)
		}
		return fn(c, args)
	}
}

func reorderFlags(c *cli.Context, in []string, maxPos int) ([]string, error) {
	takesValue := map[string]bool{}
	for _, f := range c.Command.Flags {
		tv := true
		if v, ok := f.(interface{ TakesValue() bool }); ok {
			tv = v.TakesValue()
		}
		for _, n := range f.Names() {
			takesValue[n] = tv
		}
	}
	var out []string
	for i := 0; i < len(in); i++ {
		a := in[i]
		if a == "--" {
			return append(out, in[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' || a == "-" {
			if maxPos >= 0 && len(out) >= maxPos {
				return append(out, in[i:]...), nil
			}
			out = append(out, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		tv, known := takesValue[name]
		if !known {
			return nil, fmt.Errorf("flag provided but not defined: %s", a)
		}
		if !hasValue {
			if !tv {
				value = "true"
			} else if i+1 < len(in) {
				i++
				value = in[i]
			} else {
				return nil, fmt.Errorf("flag needs an argument: %s", a)
			}
		}
		if err := c.Set(name, value); err != nil {
			return nil, fmt.Errorf("invalid value %q for flag %s: %w", value, a, err)
		}
	}
	return out, nil
}

// needArgs checks the number of positional arguments.
func needArgs(args []string, min, max int, usage string) error {
	if len(args) < min || max >= 0 && len(args) > max {
		return exitCode(exitUsage, fmt.Errorf("usage: octostore %s", usage))
	}
	return nil
}

// clientErr maps a client error to the CLI's exit codes.
func clientErr(err error) error {
	if err == nil {
		return nil
	}
	code := exitFailure
	switch {
	case errors.Is(err, client.ErrLockHeld), errors.Is(err, client.ErrConflict):
		code = exitHeld
	case errors.Is(err, client.ErrNotFound):
		code = exitNotFound
	case errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrForbidden):
		code = exitAuth
	case errors.Is(err, client.ErrValidation):
		code = exitUsage
	case errors.Is(err, client.ErrUnavailable), errors.Is(err, client.ErrRateLimited),
		errors.Is(err, context.DeadlineExceeded):
		code = exitUnavailable
	}
	return exitCode(code, cliError{err})
}

// cliError drops the client's "octostore: " prefix (main adds its own).
type cliError struct{ err error }

func (e cliError) Error() string { return strings.TrimPrefix(e.err.Error(), "octostore: ") }
func (e cliError) Unwrap() error { return e.err }

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints rows under a header with aligned columns.
func printTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// fields prints key/value pairs, one per line, aligned.
func printFields(w io.Writer, kv ...string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			fmt.Fprintf(tw, "%s\t%s\n", kv[i], kv[i+1])
		}
	}
	return tw.Flush()
}

// output prints v as JSON with --json, else calls human.
func printOutput(c *cli.Context, v any, human func(w io.Writer) error) error {
	if c.Bool("json") {
		return printJSON(c.App.Writer, v)
	}
	return human(c.App.Writer)
}

// ts formats a time for tables ("" for zero).
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// until formats the time left before t, for tables.
func fmtUntil(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Until(t).Round(time.Second)
	if d < 0 {
		return "expired"
	}
	return d.String()
}

// ctxTimeout bounds a whole command (including retries).
func ctxTimeout(c *cli.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Context, 3*c.Duration("timeout"))
}

// groupAction is the Action of a command with subcommands: it runs when no
// subcommand matched, shows the help and exits with the usage code.
func groupAction(c *cli.Context) error {
	cli.ShowSubcommandHelp(c)
	if c.NArg() > 0 {
		return exitCode(exitUsage, fmt.Errorf("unknown command %q for %q", c.Args().First(), c.Command.FullName()))
	}
	return exitCode(exitUsage, nil)
}

// clientCall builds the client from the flags and a context bounded by
// --timeout (for commands that check their arguments themselves).
func clientCall(c *cli.Context) (*client.Client, context.Context, context.CancelFunc, error) {
	cl, err := newClientFromCtx(c)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := ctxTimeout(c)
	return cl, ctx, cancel, nil
}

// clientRun is what every client command does once it has checked its
// arguments: build the client from the flags, make the call within
// --timeout, map a failure to an exit code (clientErr), and print the
// result: as JSON with --json, else with human.
func clientRun[T any](c *cli.Context, call func(cl *client.Client, ctx context.Context) (T, error), human func(w io.Writer, v T) error) error {
	cl, ctx, cancel, err := clientCall(c)
	if err != nil {
		return err
	}
	defer cancel()
	v, err := call(cl, ctx)
	if err != nil {
		return clientErr(err)
	}
	return printOutput(c, v, func(w io.Writer) error { return human(w, v) })
}

// checkedRun is clientRun for a command that takes exactly n positional
// arguments (usage is the error's "usage: octostore …" text).
func checkedRun[T any](c *cli.Context, args []string, n int, usage string, call func(cl *client.Client, ctx context.Context) (T, error), human func(w io.Writer, v T) error) error {
	if err := needArgs(args, n, n, usage); err != nil {
		return err
	}
	return clientRun(c, call, human)
}

// listRun is checkedRun for a listing: an empty one is printed as [] with
// --json, else as a table of header and one row per item.
func listRun[T any](c *cli.Context, args []string, n int, usage string, list func(cl *client.Client, ctx context.Context) ([]T, error), header []string, row func(T) []string) error {
	return checkedRun(c, args, n, usage, func(cl *client.Client, ctx context.Context) ([]T, error) {
		items, err := list(cl, ctx)
		if items == nil {
			items = []T{}
		}
		return items, err
	}, func(w io.Writer, items []T) error {
		rows := make([][]string, 0, len(items))
		for _, it := range items {
			rows = append(rows, row(it))
		}
		return printTable(w, header, rows)
	})
}

// doneRun is clientRun for a call that answers nothing: it prints v with
// --json, else line.
func doneRun(c *cli.Context, v map[string]any, line string, call func(cl *client.Client, ctx context.Context) error) error {
	return clientRun(c, func(cl *client.Client, ctx context.Context) (map[string]any, error) {
		return v, call(cl, ctx)
	}, func(w io.Writer, _ map[string]any) error {
		_, err := fmt.Fprintln(w, line)
		return err
	})
}
