package main

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// node is one command of the tree newApp builds, with the words that run it.
type node struct {
	path []string
	cmd  *cli.Command
}

// commandTree walks every command of newApp, hidden ones too, parents
// before their subcommands.
func commandTree() []node {
	var out []node
	var walk func(prefix []string, cmds []*cli.Command)
	walk = func(prefix []string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := append(append([]string{}, prefix...), c.Name)
			out = append(out, node{p, c})
			walk(p, c.Subcommands)
		}
	}
	walk(nil, newApp().Commands)
	return out
}

// mustUsageError fails unless r is a usage error: exit 2, nothing on
// stdout, one line on stderr that starts with "octostore: " and holds each
// of want.
func (r result) mustUsageError(t *testing.T, what string, want ...string) {
	t.Helper()
	r.mustCode(t, exitUsage, what)
	if r.stdout != "" || !strings.HasPrefix(r.stderr, "octostore: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("%s: stdout %q, stderr %q: want nothing on stdout and one line on stderr", what, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("%s: stderr %q does not say %q", what, r.stderr, w)
		}
	}
}

// Every command of the binary, walked from newApp: a bogus flag (before
// and after the arguments), too few and too many arguments are usage
// errors (exit 2, one line on stderr, nothing on stdout, no help); a
// command with subcommands run without one, or with an unknown one, is a
// usage error naming them; --help is the only way to the help (exit 0,
// stdout). No server is running: each must fail before it reaches one.
func TestUsageErrorsEveryCommand(t *testing.T) {
	const url = "http://127.0.0.1:1" // nothing listens: a command that got this far would exit 6
	t.Run("octostore", func(t *testing.T) {
		octo(t, url, "").mustUsageError(t, "no command", "missing command", "lock", "serve")
		octo(t, url, "", "frob").mustUsageError(t, "unknown command", `unknown command "frob"`, "lock")
		octo(t, url, "", "--bogus").mustUsageError(t, "bogus flag", "bogus")
		octo(t, url, "", "help", "frob").mustUsageError(t, "help on an unknown topic", "frob")
		if r := octo(t, url, "", "--help").mustCode(t, exitOK, "--help"); !strings.Contains(r.stdout, "COMMANDS") || r.stderr != "" {
			t.Fatalf("--help: stdout %q stderr %q", r.stdout, r.stderr)
		}
	})
	leaves := 0
	for _, n := range commandTree() {
		n := n
		name := strings.Join(n.path, " ")
		t.Run(name, func(t *testing.T) {
			if r := octo(t, url, "", append(n.path, "--help")...).mustCode(t, exitOK, "--help"); !strings.Contains(r.stdout, "USAGE") || r.stderr != "" {
				t.Fatalf("--help: stdout %q stderr %q", r.stdout, r.stderr)
			}
			octo(t, url, "", append(n.path, "--bogus")...).mustUsageError(t, "bogus flag first", name+":", "bogus")
			if len(n.cmd.Subcommands) > 0 {
				octo(t, url, "", n.path...).mustUsageError(t, "no subcommand", name+": missing command", n.cmd.Subcommands[0].Name)
				octo(t, url, "", append(n.path, "frob")...).mustUsageError(t, "unknown subcommand", `unknown command "frob"`)
				return
			}
			leaves++
			spec := parseArgSpec(n.cmd.ArgsUsage)
			args := func(k int) []string {
				a := append([]string{}, n.path...)
				for i := 0; i < k; i++ {
					a = append(a, fmt.Sprintf("arg%d", i))
				}
				return a
			}
			after := append(args(spec.min), "--bogus")
			if before, _, ok := strings.Cut(n.cmd.ArgsUsage, " -- "); ok { // lock run: flags after "--" are the command's
				k := len(strings.Fields(before))
				after = append(append(args(k), "--bogus", "--"), args(spec.min)[len(n.path)+k:]...)
			}
			octo(t, url, "", after...).mustUsageError(t, "bogus flag after the arguments", "bogus")
			if spec.min > 0 {
				octo(t, url, "", args(spec.min-1)...).mustUsageError(t, "an argument too few", "missing "+spec.words[spec.min-1])
			}
			if spec.max >= 0 {
				octo(t, url, "", args(spec.max+1)...).mustUsageError(t, "an argument too many", fmt.Sprintf("arg%d", spec.max))
			}
		})
	}
	if leaves < 30 {
		t.Fatalf("walked %d commands that run: the walk misses some", leaves)
	}
}

func TestParseArgSpec(t *testing.T) {
	for in, want := range map[string][2]int{
		"":                      {0, 0},
		" ":                     {0, 0},
		"NAME":                  {1, 1},
		"NAME [LEASE_ID]":       {1, 2},
		"KEY VALUE|@FILE":       {2, 2},
		"NAME -- CMD [ARGS...]": {2, -1},
		"REPORT.json...":        {1, -1},
	} {
		if s := parseArgSpec(in); s.min != want[0] || s.max != want[1] {
			t.Errorf("parseArgSpec(%q) = %d..%d, want %d..%d", in, s.min, s.max, want[0], want[1])
		}
	}
}

// sharedMeaning lists the flag names whose usage text differs between the
// commands that have them, with the one meaning they share. A name used by
// several commands with different texts must be here (a new one is a
// deliberate choice, reviewed); every other name has one text everywhere.
var sharedMeaning = map[string]string{
	"ttl":     "a time-to-live: the lease's (renew: from now; lock run: renewed every ttl/3) or, for session create, the session's",
	"db":      "the server's SQLite database file (serve's default ./octostore.db; token commands need it given)",
	"user":    "a user's login, whose tokens a token command works on",
	"token":   "the bearer token (or admin key) to call the server with; the load tester's is repeatable",
	"addr":    "the address to listen on",
	"node":    "a cluster node's name, its name in --cluster (serve: this node's; cluster restore: the member restored)",
	"cluster": "every embedded etcd member's peer URL, n1=URL,n2=URL,…",
}

// ownEnv lists the flag names whose environment variables differ between
// commands, and why.
var ownEnv = map[string]string{
	"addr": "loadtest noop-server must not listen where OCTOSTORE_ADDR puts the server",
}

// flagInfo is what TestFlagMeanings compares between commands.
type flagInfo struct {
	where      string
	takesValue bool
	kind       string // the flag's type without Slice: a repeatable string flag is still a string flag
	aliases    []string
	env        []string
	usage      string
	help       string // the line help shows
}

// Every flag name has one meaning across the binary: one kind of value (a
// switch is a switch everywhere: no --json FILE here and --json there),
// one set of aliases (-q is --quiet's alone), one environment variable
// set, and one usage text unless sharedMeaning says why not. No help line
// shows a negative sentinel default (a flag unset means something: help
// says what).
func TestFlagMeanings(t *testing.T) {
	byName := map[string][]flagInfo{}
	aliasOf := map[string]string{} // alias -> primary name
	for _, n := range commandTree() {
		for _, f := range n.cmd.Flags {
			names := f.Names()
			info := flagInfo{where: strings.Join(n.path, " "), help: f.String(), aliases: append([]string{}, names[1:]...)}
			if tv, ok := f.(interface{ TakesValue() bool }); ok {
				info.takesValue = tv.TakesValue()
			}
			info.kind = strings.Replace(reflect.TypeOf(f).Elem().Name(), "Slice", "", 1)
			if u, ok := f.(interface{ GetUsage() string }); ok {
				info.usage = u.GetUsage()
			}
			if e, ok := f.(interface{ GetEnvVars() []string }); ok {
				info.env = e.GetEnvVars()
			}
			byName[names[0]] = append(byName[names[0]], info)
			for _, a := range names[1:] {
				if p, ok := aliasOf[a]; ok && p != names[0] {
					t.Errorf("-%s is an alias of --%s in one command and of --%s in another", a, p, names[0])
				}
				aliasOf[a] = names[0]
			}
			if regexp.MustCompile(`\(default: -\d`).MatchString(info.help) {
				t.Errorf("%s: help shows a negative sentinel default: %s", info.where, info.help)
			}
		}
	}
	for a, p := range aliasOf {
		if _, ok := byName[a]; ok {
			t.Errorf("-%s is an alias of --%s and a flag of its own elsewhere", a, p)
		}
	}
	var names []string
	for name := range byName {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		infos := byName[name]
		first := infos[0]
		usages := map[string]bool{}
		for _, in := range infos {
			usages[in.usage] = true
			switch {
			case in.takesValue != first.takesValue || in.kind != first.kind:
				t.Errorf("--%s is a %s (value: %v) in %s but a %s (value: %v) in %s", name, first.kind, first.takesValue, first.where, in.kind, in.takesValue, in.where)
			case !reflect.DeepEqual(in.aliases, first.aliases):
				t.Errorf("--%s has aliases %v in %s but %v in %s", name, first.aliases, first.where, in.aliases, in.where)
			case !reflect.DeepEqual(in.env, first.env) && ownEnv[name] == "":
				t.Errorf("--%s reads %v in %s but %v in %s", name, first.env, first.where, in.env, in.where)
			}
		}
		if _, ok := sharedMeaning[name]; len(usages) > 1 && !ok {
			var list []string
			for _, in := range infos {
				list = append(list, fmt.Sprintf("%s: %q", in.where, in.usage))
			}
			t.Errorf("--%s says different things in different commands (one text, or a line in sharedMeaning):\n  %s", name, strings.Join(list, "\n  "))
		}
	}
	// The two cases issue 15 found, by name.
	if infos := byName["quiet"]; len(infos) != 1 || infos[0].where != "lock acquire" {
		t.Errorf("--quiet/-q is on %v: it means \"print only the lease id\", of lock acquire", infos)
	}
	for _, in := range byName["json"] {
		if in.where == "lock run" {
			t.Error("lock run has --json: its output is the command's")
		}
	}
}
