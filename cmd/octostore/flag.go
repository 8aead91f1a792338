package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/octostore/octostore/tools/client"
	"github.com/octostore/octostore/tools/termtext"
	"github.com/urfave/cli/v2"
)

func flagCommand() *cli.Command {
	return groupCommand("flag", "set, evaluate, delete and list feature flags",
		clientCommand("set", "create or replace a flag: on or off, optionally rolled out to a percentage of subjects, with targeting rules and variants", "NAME on|off", flagSet,
			ownerFlag(), &cli.IntFlag{Name: "percentage", DefaultText: "none: on or off for every subject", Usage: "roll out to this percentage of subjects (0..100)"},
			&cli.StringFlag{Name: "rules", DefaultText: "none", Usage: "targeting rules: a JSON array, @file.json or @- (docs/api.md)"},
			&cli.StringFlag{Name: "variants", DefaultText: "none: the flag is true or false", Usage: "variants and their weights: a JSON array, @file.json or @-"},
			&cli.StringFlag{Name: "off-variant", DefaultText: "none", Usage: "the variant served while the flag is off"}),
		clientCommand("get", "evaluate a flag (prints true or false, or the variant's value as JSON)", "NAME", flagGet,
			ownerFlag(), &cli.StringFlag{Name: "subject", Usage: "subject the rollout is bucketed on (user id, host...)"},
			&cli.StringSliceFlag{Name: "attr", Usage: "an attribute the targeting rules read, as `NAME=VALUE` (repeatable)"}),
		clientCommand("delete", "delete a flag", "NAME", flagDelete, ownerFlag()),
		clientCommand("list", "list your flags (every user's for the admin key, with an OWNER column)", "", flagList, ownerFlag()),
	)
}

func parseOnOff(c *cli.Context, s string) (bool, error) {
	switch s {
	case "on", "true", "enabled", "1", "yes":
		return true, nil
	case "off", "false", "disabled", "0", "no":
		return false, nil
	}
	return false, usageErr(c, "flag state %q: want on or off", s)
}

func pct(p *int) string {
	if p == nil {
		return ""
	}
	return strconv.Itoa(*p) + "%"
}

func flagSet(c *cli.Context, args []string) error {
	on, err := parseOnOff(c, args[1])
	if err != nil {
		return err
	}
	spec := client.FlagSpec{Enabled: on, OffVariant: c.String("off-variant")}
	if p := c.Int("percentage"); c.IsSet("percentage") {
		if p < 0 || p > 100 {
			return errUsage(c, "--percentage must be between 0 and 100")
		}
		spec.Percentage = &p
	}
	for _, a := range []struct {
		flag string
		into any
	}{{"rules", &spec.Rules}, {"variants", &spec.Variants}} {
		if !c.IsSet(a.flag) {
			continue
		}
		v, err := readValue(c, "--"+a.flag, c.String(a.flag), os.Stdin)
		if err != nil {
			return err
		}
		if len(v) == 0 || v[0] != '[' || json.Unmarshal(v, a.into) != nil {
			return errUsage(c, "--"+a.flag+" must be a JSON array (docs/api.md shows its items)")
		}
	}
	return clientRun(c, func(cl *client.Client, ctx context.Context) (*client.Flag, error) {
		return cl.SetFlag(ctx, args[0], spec)
	}, func(w io.Writer, f *client.Flag) error {
		return printFields(w, "name", f.Name, "enabled", strconv.FormatBool(f.Enabled), "percentage", pct(f.Percentage),
			"rules", count(len(f.Rules)), "variants", variantsText(f.Variants), "updated_at", fmtTime(f.UpdatedAt))
	})
}

// count is n, or "" for none.
func count(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// variantsText is "blue 50% green 50%", or "" for none.
func variantsText(vs []client.FlagVariant) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf("%s %d%%", v.Name, v.Weight)
	}
	return strings.Join(parts, " ")
}

func flagGet(c *cli.Context, args []string) error {
	attrs := map[string]string{}
	for _, a := range c.StringSlice("attr") {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return errUsage(c, "--attr "+a+": want NAME=VALUE")
		}
		if _, dup := attrs[k]; dup {
			return errUsage(c, "--attr "+k+" is given twice")
		}
		attrs[k] = v
	}
	return clientRun(c, func(cl *client.Client, ctx context.Context) (*client.FlagEvaluation, error) {
		return cl.EvaluateFlag(ctx, args[0], c.String("subject"), attrs)
	}, func(w io.Writer, e *client.FlagEvaluation) error {
		if len(e.Value) == 0 {
			_, err := fmt.Fprintln(w, e.Enabled) // nothing served: the flag is off (or does not exist)
			return err
		}
		_, err := w.Write(termtext.EscapeJSON([]byte(compactJSON(e.Value) + "\n")))
		return err
	})
}

func flagDelete(c *cli.Context, args []string) error {
	return doneRun(c, "deleted "+args[0], func(cl *client.Client, ctx context.Context) error {
		return cl.DeleteFlag(ctx, args[0])
	})
}

func flagList(c *cli.Context, args []string) error {
	return listRun(c, listPageSize, (*client.Client).ListFlagsPage,
		[]col{{"NAME", true}, {"ENABLED", false}, {"ROLLOUT", true}, {"RULES", false}, {"UPDATED", false}},
		func(f client.Flag) []string {
			rollout := pct(f.Percentage)
			if len(f.Variants) > 0 {
				rollout = variantsText(f.Variants)
			}
			return []string{f.Name, strconv.FormatBool(f.Enabled), rollout, count(len(f.Rules)), fmtTime(f.UpdatedAt)}
		}, func(f client.Flag) string { return f.Owner })
}
