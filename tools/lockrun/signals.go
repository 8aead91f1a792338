package lockrun

import (
	"os"
	"os/signal"
	"syscall"
)

// What `lock run` does with each signal that would otherwise end it or be
// lost (docs/client.md, "lock run and signals"). A Go program dies of
// SIGHUP, SIGINT and SIGTERM, dumps its stacks and dies of SIGQUIT, SIGABRT,
// SIGTRAP, SIGSTKFLT and SIGSYS, dies of SIGPIPE on a write to a closed
// stdout or stderr, and dies of SIGILL, SIGBUS, SIGFPE and SIGSEGV when they
// are sent with kill(2). Every one of those is caught, so that the wrapper
// never dies while its command runs; only SIGKILL (and SIGSTOP) cannot be,
// and for SIGKILL the command dies with the wrapper instead (guard.go).
type signalAction int

const (
	ignore      signalAction = iota // not passed on
	forward                         // passed on to the command as is
	forwardTerm                     // passed on as SIGTERM: the wrapper is asked to stop, the command stops
)

// Policy lists the signals the wrapper catches and what it does with each.
var policy = map[syscall.Signal]signalAction{
	syscall.SIGINT:  forward,
	syscall.SIGTERM: forward,
	syscall.SIGHUP:  forward,
	syscall.SIGQUIT: forward, // the command decides (a JVM prints its threads and goes on)
	syscall.SIGUSR1: forward, // by design: they mean something to the command (reopen logs, ...), nothing to the wrapper
	syscall.SIGUSR2: forward,
	syscall.SIGPIPE: ignore, // the wrapper's own write fails instead; the command has its own pipes

	// Fatal to the wrapper when sent by someone: the command is told to stop,
	// without the core dump the signal itself would cause.
	syscall.SIGABRT:   forwardTerm,
	syscall.SIGTRAP:   forwardTerm,
	syscall.SIGSTKFLT: forwardTerm,
	syscall.SIGSYS:    forwardTerm,
	syscall.SIGILL:    forwardTerm,
	syscall.SIGBUS:    forwardTerm,
	syscall.SIGFPE:    forwardTerm,
	syscall.SIGSEGV:   forwardTerm,
}

// terminalSignals are delivered by a terminal to its whole foreground
// process group: with an interactive command (stdin a terminal) the command
// already got them, and forwarding would deliver them twice.
var terminalSignals = map[syscall.Signal]bool{syscall.SIGINT: true, syscall.SIGQUIT: true, syscall.SIGHUP: true}

// CatchSignals starts catching every signal of the policy on a new channel.
// Call it before taking the lock, so that nothing arriving later can end
// the process; stop undoes it.
func CatchSignals() (sigs <-chan os.Signal, stop func()) {
	ch := make(chan os.Signal, 16)
	list := make([]os.Signal, 0, len(policy))
	for s := range policy {
		list = append(list, s)
	}
	signal.Notify(ch, list...)
	return ch, func() { signal.Stop(ch) }
}

// Stops reports whether s asks the wrapper to stop (so that, before the
// command has started, it must not start it).
func Stops(s os.Signal) bool {
	sig, ok := s.(syscall.Signal)
	if !ok {
		return false
	}
	switch policy[sig] {
	case forwardTerm:
		return true
	case forward:
		return sig != syscall.SIGUSR1 && sig != syscall.SIGUSR2
	}
	return false
}

// passOn is the signal to send to the command for s, or 0 for none.
// interactive: the command is in the terminal's foreground group.
func passOn(s os.Signal, interactive bool) syscall.Signal {
	sig, ok := s.(syscall.Signal)
	if !ok {
		return 0
	}
	switch policy[sig] {
	case forward:
		if interactive && terminalSignals[sig] {
			return 0
		}
		return sig
	case forwardTerm:
		return syscall.SIGTERM
	}
	return 0
}
