package main

import (
	"errors"
	"github.com/octostore/octostore/actors"

	"github.com/octostore/octostore/httpd"
	"github.com/urfave/cli/v2"
)

// serve flags for rate limits, feature flags and config keys: per-user
// quotas, config history, and how often rate-limit counters are written.
func init() {
	serveCommand.Flags = append(serveCommand.Flags,
		&cli.IntFlag{Name: "max-limits-per-user", Value: httpd.DefaultMaxLimitsPerUser, Usage: "rate limits per user (403 beyond; -1: no limit)", EnvVars: []string{"OCTOSTORE_MAX_LIMITS_PER_USER"}},
		&cli.IntFlag{Name: "max-flags-per-user", Value: httpd.DefaultMaxFlagsPerUser, Usage: "feature flags per user (403 beyond; -1: no limit)", EnvVars: []string{"OCTOSTORE_MAX_FLAGS_PER_USER"}},
		&cli.IntFlag{Name: "max-config-keys-per-user", Value: httpd.DefaultMaxConfigKeysPerUser, Usage: "config keys per user (403 beyond; -1: no limit)", EnvVars: []string{"OCTOSTORE_MAX_CONFIG_KEYS_PER_USER"}},
		&cli.IntFlag{Name: "config-history", Value: httpd.DefaultConfigHistory, Usage: "versions kept per config key (older ones are pruned)", EnvVars: []string{"OCTOSTORE_CONFIG_HISTORY"}},
		&cli.DurationFlag{Name: "limit-flush-interval", Value: actors.DefaultLimitFlushInterval, Usage: "rate-limit counters are written behind, each changed limit at most once per interval; a kill -9 loses at most this much of them (0: with the next write batch)", EnvVars: []string{"OCTOSTORE_LIMIT_FLUSH_INTERVAL"}},
	)
	serveOptionHooks = append(serveOptionHooks, resourceOptions)
}

func resourceOptions(c *cli.Context, o *httpd.Options) error {
	quota := func(name string) (int, error) {
		switch v := c.Int(name); {
		case v == -1:
			return -1, nil
		case v < 1:
			return 0, exitCode(exitUsage, errors.New("--"+name+" must be at least 1 (or -1 for no limit)"))
		default:
			return v, nil
		}
	}
	var err error
	if o.MaxLimitsPerUser, err = quota("max-limits-per-user"); err != nil {
		return err
	}
	if o.MaxFlagsPerUser, err = quota("max-flags-per-user"); err != nil {
		return err
	}
	if o.MaxConfigKeysPerUser, err = quota("max-config-keys-per-user"); err != nil {
		return err
	}
	if o.ConfigHistory = c.Int("config-history"); o.ConfigHistory < 1 {
		return exitCode(exitUsage, errors.New("--config-history must be at least 1"))
	}
	switch d := c.Duration("limit-flush-interval"); {
	case d < 0:
		return exitCode(exitUsage, errors.New("--limit-flush-interval must not be negative"))
	case d == 0:
		o.LimitFlushInterval = -1 // with the next write batch
	default:
		o.LimitFlushInterval = d
	}
	return nil
}
