// Command octostore is the single binary: the server (serve), the operator
// tools and the client CLI. main only wires signals and exit codes; newApp
// lists the commands, each built by a function in its own file.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// exitError carries a process exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// exitCode wraps err so that main exits with code.
func exitCode(code int, err error) error { return &exitError{code: code, err: err} }

// Exit codes shared by every subcommand (documented in README.md).
const (
	exitOK          = 0
	exitFailure     = 1 // server error or anything unclassified
	exitUsage       = 2 // bad flags or arguments
	exitHeld        = 3 // lock held by someone else
	exitNotFound    = 4 // resource not found / not owned
	exitAuth        = 5 // missing or rejected credentials
	exitUnavailable = 6 // server unreachable or unavailable
	exitLockLost    = 7 // lock run: the lock was lost while the command ran
)

// newApp builds the command tree, in the order help lists it.
func newApp() *cli.App {
	return &cli.App{
		Name:  "octostore",
		Usage: "coordination primitives as a service: locks, rate limits, flags, config",
		Commands: []*cli.Command{
			backupCommand(),
			clusterCommand(),
			configCommand(),
			flagCommand(),
			healthCommand(),
			limitCommand(),
			loadtestCommand(),
			lockCommand(),
			serveCommand(),
			tokenCommand(),
			tuiCommand(),
			versionCommand(),
		},
		UseShortOptionHandling: true,
		Suggest:                true,
		ExitErrHandler:         func(*cli.Context, error) {}, // main decides exit codes
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return exitCode(exitUsage, err)
		},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args, os.Stderr))
}

// run executes the CLI and maps errors to exit codes.
func run(ctx context.Context, args []string, stderr *os.File) int {
	err := newApp().RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "octostore:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "octostore:", err)
	return exitFailure
}
