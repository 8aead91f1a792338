package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/octostore/octostore/tools/client"
	"github.com/urfave/cli/v2"
)

func configCommand() *cli.Command {
	return &cli.Command{
		Name:   "config",
		Usage:  "versioned JSON configuration: set, get, history, delete, list",
		Action: groupAction,
		Subcommands: []*cli.Command{
			{
				Name:      "set",
				Usage:     "write a new version of KEY; VALUE is inline JSON, @file.json, or @- for stdin",
				ArgsUsage: "KEY VALUE|@FILE",
				Flags: clientFlags(
					&cli.StringFlag{Name: "description", Usage: "description stored with this version"},
					&cli.Int64Flag{Name: "if-version", Value: -1, Usage: "write only if KEY is at this version now (0: only create); exit 3 otherwise"},
				),
				Action: clientAction(-1, configSet),
			},
			{
				Name:      "get",
				Usage:     "print the value of KEY (the whole entry with --json)",
				ArgsUsage: "KEY",
				Flags:     clientFlags(&cli.Int64Flag{Name: "version", Usage: "a past version instead of the current one"}),
				Action:    clientAction(-1, configGet),
			},
			{
				Name:      "history",
				Usage:     "list the versions of KEY",
				ArgsUsage: "KEY",
				Flags:     clientFlags(),
				Action:    clientAction(-1, configHistory),
			},
			{
				Name:      "delete",
				Usage:     "delete KEY and its history",
				ArgsUsage: "KEY",
				Flags:     clientFlags(),
				Action:    clientAction(-1, configDelete),
			},
			{
				Name:   "list",
				Usage:  "list your keys",
				Flags:  clientFlags(),
				Action: clientAction(-1, configList),
			},
		},
	}
}

// readValue turns the VALUE argument into JSON.
func readValue(arg string, stdin io.Reader) (json.RawMessage, error) {
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
			return nil, exitCode(exitUsage, err)
		}
	default:
		b = []byte(arg)
	}
	b = bytes.TrimSpace(b)
	if !json.Valid(b) {
		return nil, exitCode(exitUsage, fmt.Errorf("VALUE is not valid JSON (quote strings: '\"text\"'; or use @file.json)"))
	}
	return b, nil
}

func configSet(c *cli.Context, args []string) error {
	if err := needArgs(args, 2, 2, "config set KEY VALUE|@FILE [--description D] [--if-version N]"); err != nil {
		return err
	}
	v, err := readValue(args[1], os.Stdin)
	if err != nil {
		return err
	}
	w := client.ConfigWrite{Value: v, Description: c.String("description")}
	if c.IsSet("if-version") {
		n := c.Int64("if-version")
		if n < 0 {
			return exitCode(exitUsage, fmt.Errorf("--if-version must be 0 or more"))
		}
		w.ExpectedVersion = &n
	}
	cl, ctx, cancel, err := clientCall(c)
	if err != nil {
		return err
	}
	defer cancel()
	e, err := cl.SetConfig(ctx, args[0], w)
	if err != nil {
		return clientErr(err)
	}
	return printOutput(c, e, func(w io.Writer) error {
		return printFields(w, "key", e.Key, "version", strconv.FormatInt(e.Version, 10), "description", e.Description, "updated_at", fmtTime(e.UpdatedAt))
	})
}

func configGet(c *cli.Context, args []string) error {
	cl, ctx, cancel, err := clientFor(c, args, 1, 1, "config get KEY [--version N]")
	if err != nil {
		return err
	}
	defer cancel()
	e, err := cl.GetConfigVersion(ctx, args[0], c.Int64("version"))
	if err != nil {
		return clientErr(err)
	}
	return printOutput(c, e, func(w io.Writer) error {
		var buf bytes.Buffer
		if json.Indent(&buf, e.Value, "", "  ") != nil {
			buf.Reset()
			buf.Write(e.Value)
		}
		buf.WriteByte('\n')
		_, err := w.Write(buf.Bytes())
		return err
	})
}

func configHistory(c *cli.Context, args []string) error {
	cl, ctx, cancel, err := clientFor(c, args, 1, 1, "config history KEY")
	if err != nil {
		return err
	}
	defer cancel()
	vs, err := cl.ConfigHistory(ctx, args[0])
	if err != nil {
		return clientErr(err)
	}
	if vs == nil {
		vs = []client.ConfigVersion{}
	}
	return printOutput(c, vs, func(w io.Writer) error {
		rows := make([][]string, 0, len(vs))
		for _, v := range vs {
			val := string(v.Value)
			if len(val) > 60 {
				val = val[:57] + "..."
			}
			rows = append(rows, []string{strconv.FormatInt(v.Version, 10), fmtTime(v.CreatedAt), v.Description, val})
		}
		return printTable(w, []string{"VERSION", "CREATED", "DESCRIPTION", "VALUE"}, rows)
	})
}

func configDelete(c *cli.Context, args []string) error {
	cl, ctx, cancel, err := clientFor(c, args, 1, 1, "config delete KEY")
	if err != nil {
		return err
	}
	defer cancel()
	if err := cl.DeleteConfig(ctx, args[0]); err != nil {
		return clientErr(err)
	}
	return printOutput(c, map[string]any{"deleted": true, "key": args[0]}, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "deleted %s\n", args[0])
		return err
	})
}

func configList(c *cli.Context, args []string) error {
	cl, ctx, cancel, err := clientFor(c, args, 0, 0, "config list")
	if err != nil {
		return err
	}
	defer cancel()
	es, err := cl.ListConfig(ctx)
	if err != nil {
		return clientErr(err)
	}
	if es == nil {
		es = []client.ConfigEntry{}
	}
	return printOutput(c, es, func(w io.Writer) error {
		rows := make([][]string, 0, len(es))
		for _, e := range es {
			rows = append(rows, []string{e.Key, strconv.FormatInt(e.Version, 10), fmtTime(e.UpdatedAt), e.Description})
		}
		return printTable(w, []string{"KEY", "VERSION", "UPDATED", "DESCRIPTION"}, rows)
	})
}
