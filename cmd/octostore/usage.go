package main

// The command line's usage rules, the same for every command:
//   - a usage error (an unknown flag or command, a bad flag value, a
//     missing or extra argument) exits 2 with one line on stderr and
//     nothing on stdout; help is printed only on request (--help, -h, help);
//   - a command with subcommands run without one is a usage error that
//     names them (groupAction), the root command too;
//   - flags may come before or after the positional arguments (leafAction),
//     whose number is what the command's ArgsUsage says (argSpec).

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// usageRules gives every command of app the rules above: its usage errors
// exit 2 (OnUsageError), a command with subcommands and no action of its own
// says which subcommands it has, and a leaf takes "help" as an argument like
// any other word.
func usageRules(app *cli.App) {
	app.OnUsageError = onUsageError
	app.Action = groupAction
	var walk func(cmds []*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			c.OnUsageError = onUsageError
			if len(c.Subcommands) == 0 {
				// urfave/cli would add a "help" (and "h") subcommand to a
				// leaf too, so that `lock status help` printed the help
				// instead of asking about the lock named help. --help stays.
				c.HideHelpCommand = true
			} else if c.Action == nil {
				c.Action = groupAction
			}
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
}

// onUsageError turns a flag parsing error into a one-line usage error.
func onUsageError(c *cli.Context, err error, _ bool) error {
	return usageErr(c, "%v", err)
}

// usageErr is a usage error (exit 2) of the command of c: "CMD: MESSAGE
// (octostore CMD --help)".
func usageErr(c *cli.Context, format string, a ...any) error {
	name := commandPath(c)
	msg := fmt.Sprintf(format, a...)
	if name == "" {
		return exitCode(exitUsage, fmt.Errorf("%s (octostore --help)", msg))
	}
	return exitCode(exitUsage, fmt.Errorf("%s: %s (octostore %s --help)", name, msg, name))
}

// commandPath is the command's words after "octostore" ("lock acquire"),
// "" for the root.
func commandPath(c *cli.Context) string {
	var words []string
	for _, x := range c.Lineage() {
		if x.Command != nil && x.Command.Name != "" && x.Command.Name != c.App.Name {
			words = append([]string{x.Command.Name}, words...)
		}
	}
	return strings.Join(words, " ")
}

// groupAction is the Action of a command made of subcommands (and of the
// root): it runs when no subcommand matched, which is a usage error that
// lists the subcommands. The help is printed only on request.
func groupAction(c *cli.Context) error {
	subs := c.App.Commands
	if c.Command != nil && len(c.Command.Subcommands) > 0 {
		subs = c.Command.Subcommands
	}
	var names []string
	for _, s := range subs {
		if !s.Hidden && s.Name != "help" {
			names = append(names, s.Name)
		}
	}
	if c.NArg() == 0 {
		return usageErr(c, "missing command: one of %s", strings.Join(names, ", "))
	}
	return usageErr(c, "unknown command %q: one of %s", c.Args().First(), strings.Join(names, ", "))
}

// argSpec is how many positional arguments a command takes, read from its
// ArgsUsage: a WORD is required, [WORD] optional, WORD... or [WORD...] any
// number, "--" separates the command's own arguments from a command line it
// runs (lock run).
type argSpec struct {
	min, max int // max -1: no limit
	words    []string
}

func parseArgSpec(argsUsage string) argSpec {
	var s argSpec
	for _, w := range strings.Fields(argsUsage) {
		if w == "--" {
			continue
		}
		optional := strings.HasPrefix(w, "[")
		w = strings.Trim(w, "[]")
		s.words = append(s.words, w)
		switch {
		case strings.HasSuffix(w, "..."):
			s.max = -1
			if !optional {
				s.min++
			}
		case optional:
			if s.max >= 0 {
				s.max++
			}
		default:
			s.min++
			if s.max >= 0 {
				s.max++
			}
		}
	}
	return s
}

// check returns the usage error of args for the command of c, or nil.
func (s argSpec) check(c *cli.Context, args []string) error {
	switch {
	case len(args) < s.min:
		return usageErr(c, "missing %s", strings.Join(s.words[len(args):s.min], " "))
	case s.max >= 0 && len(args) > s.max:
		if s.max == 0 {
			return usageErr(c, "takes no arguments, got %q", args[0])
		}
		return usageErr(c, "unexpected argument %q after %s", args[s.max], strings.Join(s.words, " "))
	}
	return nil
}

// leaf is a command that runs: its flags, its positional arguments as
// argsUsage describes them (argSpec), and its action, which gets them.
func leaf(name, usage, argsUsage string, flags []cli.Flag, action func(c *cli.Context, args []string) error) *cli.Command {
	return &cli.Command{Name: name, Usage: usage, ArgsUsage: argsUsage, Flags: flags, Action: leafAction(action)}
}

// leafAction adapts an action that takes its positional arguments: the
// command's flags given among them are parsed (reorderFlags), and their
// number is checked against the command's ArgsUsage before fn runs. After
// "--" or once a command takes an unlimited tail after "--" (lock run),
// arguments are passed on as they are.
func leafAction(fn func(c *cli.Context, args []string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		spec := parseArgSpec(c.Command.ArgsUsage)
		maxPos := spec.max
		if strings.Contains(c.Command.ArgsUsage, " -- ") {
			maxPos = strings.Count(strings.Split(c.Command.ArgsUsage, " -- ")[0], " ") + 1 // words before "--"
		}
		args, err := reorderFlags(c, c.Args().Slice(), maxPos)
		if err != nil {
			return usageErr(c, "%v", err)
		}
		if err := spec.check(c, args); err != nil {
			return err
		}
		return fn(c, args)
	}
}

// reorderFlags parses the command's flags found among the arguments.
//
// urfave/cli v2 stops parsing flags at the first positional argument, so
// `lock acquire NAME --ttl 30s` would leave --ttl unparsed. reorderFlags
// sets the flags it finds (up to "--", and up to maxPos positional
// arguments; -1 for no limit) and returns the positional arguments plus
// everything after the limit or "--".
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

// errUsage is a usage error with its own message (for checks between
// flags: exclusive or dependent flags).
func errUsage(c *cli.Context, msg string) error { return usageErr(c, "%s", errors.New(msg)) }
