package main

import (
	"bytes"
	"context"
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
	return groupCommand("config", "versioned JSON configuration: set, get, history, delete, list",
		clientCommand("set", "write a new version of KEY; VALUE is inline JSON, @file.json, or @- for stdin", "KEY VALUE|@FILE", configSet,
			&cli.StringFlag{Name: "description", Usage: "description stored with this version"},
			&cli.Int64Flag{Name: "if-version", Value: -1, Usage: "write only if KEY is at this version now (0: only create); exit 3 otherwise"}),
		clientCommand("get", "print the value of KEY (the whole entry with --json)", "KEY", configGet,
			&cli.Int64Flag{Name: "version", Usage: "a past version instead of the current one"}),
		clientCommand("history", "list the versions of KEY", "KEY", configHistory),
		clientCommand("delete", "delete KEY and its history", "KEY", configDelete),
		clientCommand("list", "list your keys", "", configList),
	)
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
	return clientRun(c, func(cl *client.Client, ctx context.Context) (*client.ConfigEntry, error) {
		return cl.SetConfig(ctx, args[0], w)
	}, func(w io.Writer, e *client.ConfigEntry) error {
		return printFields(w, "key", e.Key, "version", strconv.FormatInt(e.Version, 10), "description", e.Description, "updated_at", fmtTime(e.UpdatedAt))
	})
}

func configGet(c *cli.Context, args []string) error {
	return checkedRun(c, args, 1, "config get KEY [--version N]", func(cl *client.Client, ctx context.Context) (*client.ConfigEntry, error) {
		return cl.GetConfigVersion(ctx, args[0], c.Int64("version"))
	}, func(w io.Writer, e *client.ConfigEntry) error {
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
	return listRun(c, args, 1, "config history KEY", func(cl *client.Client, ctx context.Context) ([]client.ConfigVersion, error) {
		return cl.ConfigHistory(ctx, args[0])
	}, []string{"VERSION", "CREATED", "DESCRIPTION", "VALUE"}, func(v client.ConfigVersion) []string {
		val := string(v.Value)
		if len(val) > 60 {
			val = val[:57] + "..."
		}
		return []string{strconv.FormatInt(v.Version, 10), fmtTime(v.CreatedAt), v.Description, val}
	})
}

func configDelete(c *cli.Context, args []string) error {
	if err := needArgs(args, 1, 1, "config delete KEY"); err != nil {
		return err
	}
	return doneRun(c, map[string]any{"deleted": true, "key": args[0]}, "deleted "+args[0], func(cl *client.Client, ctx context.Context) error {
		return cl.DeleteConfig(ctx, args[0])
	})
}

func configList(c *cli.Context, args []string) error {
	return listRun(c, args, 0, "config list", (*client.Client).ListConfig, []string{"KEY", "VERSION", "UPDATED", "DESCRIPTION"}, func(e client.ConfigEntry) []string {
		return []string{e.Key, strconv.FormatInt(e.Version, 10), fmtTime(e.UpdatedAt), e.Description}
	})
}
