package httpd

// routes registers the API's endpoints (the event streams and /metrics are
// registered with their services: events.go, metrics.go). Every endpoint
// but sign-in is authenticated and gets the request's context (authed);
// every one counts against --max-inflight (s.limit, overload.go).
func (s *Server) routes() {
	for _, r := range []struct {
		method, path string
		h            handler
	}{
		{"POST", "/locks/{name}/acquire", s.lockAcquire},
		{"POST", "/locks/{name}/renew", s.lockRenew},
		{"POST", "/locks/{name}/release", s.lockRelease},
		{"GET", "/locks/{name}", s.lockStatus},
		{"GET", "/locks/{name}/fence", s.lockFence},
		{"GET", "/locks", s.lockList},

		{"POST", "/semaphores/{name}/acquire", s.semaphoreAcquire},
		{"POST", "/semaphores/{name}/renew", s.semaphoreRenew},
		{"POST", "/semaphores/{name}/release", s.semaphoreRelease},
		{"GET", "/semaphores/{name}", s.semaphoreStatus},
		{"GET", "/semaphores/{name}/fence", s.semaphoreFence},

		{"POST", "/sessions", s.sessionCreate},
		{"GET", "/sessions", s.sessionList},
		{"POST", "/sessions/{id}/keepalive", s.sessionKeepAlive},
		{"DELETE", "/sessions/{id}", s.sessionClose},

		{"POST", "/limits/{name}/check", s.limitCheck},
		{"POST", "/limits/check", s.limitBatch},
		{"GET", "/limits/{name}", s.limitStatus},
		{"DELETE", "/limits/{name}", s.limitReset},
		{"GET", "/limits", s.limitList},

		{"PUT", "/flags/{name}", s.flagSet},
		{"GET", "/flags/{name}", s.flagGet},
		{"DELETE", "/flags/{name}", s.flagDelete},
		{"GET", "/flags", s.flagList},

		{"PUT", "/config/{key}", s.configSet},
		{"GET", "/config/{key}", s.configGet},
		{"DELETE", "/config/{key}", s.configDelete},
		{"GET", "/config/{key}/history", s.configHistory},
		{"POST", "/config/{key}/rollback", s.configRollback},
		{"GET", "/config", s.configList},

		{"POST", "/ofrep/v1/evaluate/flags/{key}", s.ofrepFlag},
		{"POST", "/ofrep/v1/evaluate/flags", s.ofrepBulk},

		{"POST", "/auth/token/rotate", s.tokenRotate},
		{"DELETE", "/auth/token", s.tokenRevoke},

		{"GET", "/admin/tokens", s.tokenAdminList},
		{"POST", "/admin/tokens", s.tokenAdminCreate},
		{"POST", "/admin/tokens/revoke", s.tokenAdminRevoke},
	} {
		s.r.Handle(r.method, r.path, s.limit.wrap(s.authed(r.h)))
	}
	s.r.GET("/auth/github", s.limit.wrap(s.public(s.githubStart)))
	s.r.GET("/auth/github/callback", s.limit.wrap(s.public(s.githubCallback)))
}
