package tui

import (
	"context"
	"errors"
	"io"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/octostore/octostore/tools/client"
)

// Options configure Run.
type Options struct {
	URL, Token string
	// Input and Output default to the terminal (stdin/stdout).
	Input  io.Reader
	Output io.Writer
}

// Run shows the view until the user quits or ctx is cancelled.
func Run(ctx context.Context, o Options) error {
	c, err := client.New(o.URL, o.Token,
		client.WithTimeout(5*time.Second), client.WithRetries(1), client.WithUserAgent("octostore-tui"))
	if err != nil {
		return err
	}
	defer c.CloseIdleConnections()
	m := New(Config{API: c, Server: o.URL})
	defer m.Close()
	opts := []tea.ProgramOption{tea.WithAltScreen(), tea.WithContext(ctx)}
	if o.Input != nil {
		opts = append(opts, tea.WithInput(o.Input))
	}
	if o.Output != nil {
		opts = append(opts, tea.WithOutput(o.Output))
	}
	_, err = tea.NewProgram(m, opts...).Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil // interrupted: a normal way to leave
	}
	return err
}
