package main

import "testing"

func TestDBPath(t *testing.T) {
	for in, want := range map[string]string{
		"./octostore.db":                "./octostore.db",
		"/var/lib/o.db":                 "/var/lib/o.db",
		"sqlite:///var/lib/o.db":        "/var/lib/o.db",
		"sqlite://data/o.db":            "data/o.db",
		"sqlite:o.db":                   "o.db",
		"file:/tmp/o.db?mode=rwc":       "/tmp/o.db",
		"sqlite:///var/o.db?cache=true": "/var/o.db",
	} {
		if got := dbPath(in); got != want {
			t.Errorf("dbPath(%q) = %q, want %q", in, got, want)
		}
	}
}
