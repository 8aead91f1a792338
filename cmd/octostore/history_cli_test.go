package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestConfigHistoryFollowsPages: `config history` shows every kept version
// although the server answers 10 a page (issue 12, item 8): the CLI follows
// next_cursor.
func TestConfigHistoryFollowsPages(t *testing.T) {
	url := serverFor(t, "/config")
	for i := 1; i <= 23; i++ {
		octo(t, url, tokA, "config", "set", "paged", fmt.Sprint(i)).mustCode(t, 0, "set")
	}
	r := octo(t, url, tokA, "config", "history", "paged").mustCode(t, 0, "history")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 24 || !strings.HasPrefix(strings.TrimSpace(lines[1]), "23 ") || !strings.HasPrefix(strings.TrimSpace(lines[23]), "1 ") {
		t.Fatalf("history shows %d lines, want a header and versions 23 down to 1:\n%s", len(lines), r.stdout)
	}
}
