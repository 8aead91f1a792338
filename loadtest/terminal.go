package loadtest

import (
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mattn/go-isatty"
)

// Terminal returns f for Config.Progress when f is a terminal, and nil
// otherwise: a pipe or a file gets no progress line.
func Terminal(f *os.File) io.Writer {
	if f != nil && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		return f
	}
	return nil
}

// InterruptAgain returns a channel, for Config.Abort, that closes on the
// second SIGINT or SIGTERM received from now on: the first one ends the run
// (through the caller's context, see signal.NotifyContext) and the second
// cuts the cleanup short. stop releases the signals.
func InterruptAgain() (again <-chan struct{}, stop func()) {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	ch := make(chan struct{})
	done := make(chan struct{})
	go func() {
		for n := 0; ; {
			select {
			case <-sig:
				if n++; n == 2 {
					close(ch)
					return
				}
			case <-done:
				return
			}
		}
	}()
	return ch, func() { signal.Stop(sig); close(done) }
}
