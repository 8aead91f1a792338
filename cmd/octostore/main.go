// Command octostore is the single binary: the server (serve), the operator
// tools and the client CLI. main only wires signals and exit codes; newApp
// lists the commands, each built by a function in its own file.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/octostore/octostore/tools/lockrun"
	"github.com/octostore/octostore/tools/termtext"
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

// newApp builds the command tree, in the order help lists it, and gives
// every command the CLI's usage rules (usageRules).
func newApp() *cli.App {
	app := &cli.App{
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
			semaphoreCommand(),
			serveCommand(),
			sessionCommand(),
			tokenCommand(),
			tuiCommand(),
			versionCommand(),
		},
		UseShortOptionHandling: true,
		ExitErrHandler:         func(*cli.Context, error) {}, // main decides exit codes
	}
	usageRules(app)
	return app
}

func main() {
	if lockrun.IsGuard(os.Args) { // `lock run` started this binary again as its guard
		os.Exit(lockrun.Guard(os.Args))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args, os.Stderr))
}

// run executes the CLI and maps errors to exit codes. A failure is one line
// on stderr: "octostore: " and the message, cleaned of anything a terminal
// would act on (it may quote the server). urfave/cli's own errors (help for
// an unknown topic) are usage errors.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	err := newApp().RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	code, msg := exitFailure, err.Error()
	var ee *exitError
	var ec cli.ExitCoder
	switch {
	case errors.As(err, &ee):
		code, msg = ee.code, ""
		if ee.err != nil {
			msg = ee.err.Error()
		}
	case errors.As(err, &ec):
		code = exitUsage
	}
	if msg != "" {
		fmt.Fprintln(stderr, "octostore: "+termtext.Clean(strings.TrimPrefix(msg, "octostore: ")))
	}
	return code
}
