package main

import (
	"errors"
	"net"
	"net/http"
	"net/http/pprof"

	"github.com/octostore/octostore/httpd"
	"github.com/urfave/cli/v2"
)

func init() {
	serveCommand.Flags = append(serveCommand.Flags, &cli.StringFlag{
		Name:    "pprof-addr",
		Usage:   "serve Go's net/http/pprof profiles on this address (loopback only; for profiling)",
		EnvVars: []string{"OCTOSTORE_PPROF_ADDR"},
	})
	serveOptionHooks = append(serveOptionHooks, func(c *cli.Context, o *httpd.Options) error {
		addr := c.String("pprof-addr")
		if addr == "" {
			return nil
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return exitCode(exitUsage, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return exitCode(exitUsage, errors.New("--pprof-addr must be a loopback address"))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return exitCode(exitFailure, err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		go http.Serve(ln, mux) // lives as long as the process
		return nil
	})
}
