package main

import (
	"flag"
	"reflect"
	"testing"
	"time"

	"github.com/octostore/octostore/actors"
	"github.com/octostore/octostore/httpd"
	"github.com/urfave/cli/v2"
)

// resourceCtx parses args with the serve flags of serve_resources.go.
func resourceCtx(t *testing.T, args ...string) *cli.Context {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	for _, f := range serveCommand.Flags {
		switch f.Names()[0] {
		case "max-limits-per-user", "max-flags-per-user", "max-config-keys-per-user", "config-history", "limit-flush-interval":
			// A copy: urfave/cli's Apply stores a value from the
			// environment in the flag itself, and the flags are package
			// state, so the environment case below leaked into the
			// defaults of the next run (failed 4 of 5 with -count=5).
			cp := reflect.New(reflect.TypeOf(f).Elem())
			cp.Elem().Set(reflect.ValueOf(f).Elem())
			if err := cp.Interface().(cli.Flag).Apply(fs); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cli.NewContext(cli.NewApp(), fs, nil)
}

func TestServeResourceFlags(t *testing.T) {
	var o httpd.Options
	if err := resourceOptions(resourceCtx(t), &o); err != nil {
		t.Fatal(err)
	}
	if o.MaxLimitsPerUser != 10000 || o.MaxFlagsPerUser != 1000 || o.MaxConfigKeysPerUser != 1000 || o.ConfigHistory != 100 || o.LimitFlushInterval != actors.DefaultLimitFlushInterval {
		t.Fatalf("defaults: %+v", o)
	}
	o = httpd.Options{}
	err := resourceOptions(resourceCtx(t, "--max-limits-per-user=5", "--max-flags-per-user=-1", "--max-config-keys-per-user=7",
		"--config-history=3", "--limit-flush-interval=0"), &o)
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxLimitsPerUser != 5 || o.MaxFlagsPerUser != -1 || o.MaxConfigKeysPerUser != 7 || o.ConfigHistory != 3 || o.LimitFlushInterval != -1 {
		t.Fatalf("set: %+v", o)
	}
	for _, bad := range [][]string{
		{"--max-flags-per-user=0"}, {"--max-limits-per-user=-2"}, {"--config-history=0"}, {"--limit-flush-interval=-1s"},
	} {
		if err := resourceOptions(resourceCtx(t, bad...), &httpd.Options{}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	t.Setenv("OCTOSTORE_MAX_FLAGS_PER_USER", "12")
	t.Setenv("OCTOSTORE_LIMIT_FLUSH_INTERVAL", "250ms")
	o = httpd.Options{}
	if err := resourceOptions(resourceCtx(t), &o); err != nil {
		t.Fatal(err)
	}
	if o.MaxFlagsPerUser != 12 || o.LimitFlushInterval != 250*time.Millisecond {
		t.Fatalf("from the environment: %+v", o)
	}
}
