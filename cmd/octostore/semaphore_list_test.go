package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/octostore/octostore/httpd/apitest"
	"github.com/octostore/octostore/tools/client"
)

// `semaphore list`: the caller's held slots as a table (the admin key:
// everyone's), --json the body of every page; in process with pages of 2,
// it follows the cursors to the last slot.
func TestSemaphoreListCommand(t *testing.T) {
	url := startServer(t)
	ctx := context.Background()
	take := func(token, name string, limit int, o client.AcquireOptions) *client.Lease {
		t.Helper()
		c, err := client.New(url, token, // every exchange checked against docs/openapi.yaml
			client.WithTransport(apitest.FastTransport(t, nil)), client.WithHTTPClient(apitest.Client(t, nil)))
		if err != nil {
			t.Fatal(err)
		}
		l, err := c.AcquireSemaphore(ctx, name, limit, time.Minute, o)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	var mine []string
	for _, n := range []string{"gpu", "ci", "gpu", "db", "ci"} {
		meta := "job " + n
		mine = append(mine, take(tokA, n, 4, client.AcquireOptions{Metadata: &meta}).LeaseID)
	}
	bobs := take(tokB, "gpu", 4, client.AcquireOptions{}).LeaseID

	r := octo(t, url, tokA, "semaphore", "list").mustCode(t, exitOK, "list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[0], "LEASE ID") {
		t.Fatalf("alice's table:\n%s", r.stdout)
	}
	for i, want := range []string{"ci", "ci", "db", "gpu", "gpu"} {
		if f := strings.Fields(lines[i+1]); f[0] != want || f[1] != "alice" || f[5]+" "+f[6] != "job "+want {
			t.Fatalf("row %d: %q, want %s of alice with its metadata", i, lines[i+1], want)
		}
	}
	for _, l := range mine {
		if !strings.Contains(r.stdout, l) {
			t.Fatalf("lease %s not listed:\n%s", l, r.stdout)
		}
	}
	if strings.Contains(r.stdout, bobs) || strings.Contains(r.stdout, "bob") {
		t.Fatalf("bob's slot in alice's listing:\n%s", r.stdout)
	}
	if r := octo(t, url, adminKey, "semaphore", "list").mustCode(t, exitOK, "admin list"); strings.Count(r.stdout, "\n") != 7 || !strings.Contains(r.stdout, bobs) {
		t.Fatalf("the admin's table:\n%s", r.stdout)
	}
	j := octo(t, url, tokA, "semaphore", "list", "--json").mustCode(t, exitOK, "list --json")
	var body struct {
		Semaphores []client.HeldSemaphore `json:"semaphores"`
		Total      int                    `json:"total"`
	}
	if err := json.Unmarshal([]byte(j.stdout), &body); err != nil || body.Total != 5 || len(body.Semaphores) != 5 ||
		body.Semaphores[0].Limit != 4 || body.Semaphores[0].Metadata != "job ci" {
		t.Fatalf("--json: %v %q", err, j.stdout)
	}
	octo(t, url, tokA, "semaphore", "list", "extra").mustCode(t, exitUsage, "an argument")

	// In process, two slots a page: every page is read.
	defer func(n int) { listPageSize = n }(listPageSize)
	listPageSize = 2
	run := func(args ...string) string {
		t.Helper()
		app := newApp()
		var out, errOut bytes.Buffer
		app.Writer, app.ErrWriter = &out, &errOut
		if err := app.Run(append([]string{"octostore", "semaphore", "list", "--url", url, "--token", tokA}, args...)); err != nil {
			t.Fatalf("semaphore list %v: %v: %s", args, err, errOut.String())
		}
		return out.String()
	}
	if got := run(); strings.Count(got, "\n") != 6 || strings.Count(got, "alice") != 5 {
		t.Fatalf("pages of 2, table:\n%s", got)
	}
	pages := strings.Split(strings.TrimSpace(run("--json")), "\n")
	if len(pages) != 3 || !strings.Contains(pages[0], `"next_cursor"`) || strings.Contains(pages[2], `"next_cursor"`) {
		t.Fatalf("pages of 2, --json: %d lines:\n%s", len(pages), strings.Join(pages, "\n"))
	}
}
