package httpd

import (
	"bytes"
	"strings"

	"github.com/valyala/fasthttp"
)

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
		{"GET", "/semaphores", s.semaphoreList},

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
		s.handle(r.method, r.path, s.limit.wrap(s.authed(r.h)))
	}
	s.handle("GET", "/auth/github", s.limit.wrap(s.public(s.githubStart)))
	s.handle("GET", "/auth/github/callback", s.limit.wrap(s.public(s.githubCallback)))
}

// handle registers h for method and path: with the router, and with the
// server's own matcher (Server.dispatch), which every request tries first.
// Either way the handler finds its route (routeOf: the template for the
// metrics and the log, the {param} for pathParam) in one user value that
// was boxed here, once.
//
// The matcher exists because the router costs allocations on every
// request with a path parameter: it copies the parameter and boxes it and
// its key into user values (two to three allocations, a quarter of a
// rate-limit check's). It matches what the router would for these
// templates (static segments equal, a non-empty parameter segment without
// '/', on the raw path as the router reads it, PathOriginal) and leaves
// everything else to the router: 404, 405, empty parameters, trailing
// slashes.
func (s *Server) handle(method, path string, h fasthttp.RequestHandler) {
	ri := newRouteInfo(path)
	boxed := any(ri)
	wrapped := func(ctx *fasthttp.RequestCtx) {
		ctx.SetUserValue(matchedRouteKey, boxed)
		h(ctx)
	}
	ri.h = wrapped
	s.r.Handle(method, path, wrapped)
	if s.fast == nil {
		s.fast = map[string][]*routeInfo{}
	}
	if ri.param < 0 {
		// Static routes first: where a static segment and a parameter could
		// both match, the router prefers the static one.
		s.fast[method] = append([]*routeInfo{ri}, s.fast[method]...)
	} else {
		s.fast[method] = append(s.fast[method], ri)
	}
}

// routeInfo is a registered route.
type routeInfo struct {
	label string   // the template, e.g. "/locks/{name}/acquire"
	segs  []string // its segments after the leading '/'; the parameter's is ""
	param int      // index of the {param} segment in segs, -1 for none
	h     fasthttp.RequestHandler
}

func newRouteInfo(path string) *routeInfo {
	ri := &routeInfo{label: path, param: -1}
	for i, seg := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if strings.HasPrefix(seg, "{") {
			ri.param, seg = i, ""
		}
		ri.segs = append(ri.segs, seg)
	}
	return ri
}

// matches reports whether the raw path matches the template (a non-empty
// parameter segment).
func (ri *routeInfo) matches(path []byte) bool {
	if len(path) == 0 || path[0] != '/' {
		return false
	}
	p := path[1:]
	for i, seg := range ri.segs {
		cur := p
		j := bytes.IndexByte(p, '/')
		if j >= 0 {
			cur, p = p[:j], p[j+1:]
		}
		if last := i == len(ri.segs)-1; last != (j < 0) {
			return false // more or fewer segments than the template
		}
		if i == ri.param {
			if len(cur) == 0 {
				return false
			}
		} else if string(cur) != seg {
			return false
		}
	}
	return true
}

// dispatch is the server's request handler: a route the matcher finds
// (handle) runs at once, anything else goes through the router. A panic in
// a handler is answered by the router's PanicHandler either way.
func (s *Server) dispatch(ctx *fasthttp.RequestCtx) {
	path := ctx.Request.URI().PathOriginal()
	for _, ri := range s.fast[string(ctx.Method())] {
		if ri.matches(path) {
			s.serve(ri, ctx)
			return
		}
	}
	s.r.Handler(ctx)
}

// serve runs a matched route (a function of its own: a defer in dispatch's
// loop would be allocated on every request).
func (s *Server) serve(ri *routeInfo, ctx *fasthttp.RequestCtx) {
	defer func() {
		if v := recover(); v != nil {
			s.r.PanicHandler(ctx, v)
		}
	}()
	ri.h(ctx)
}

// routeOf is the route a request was dispatched to (nil: none matched).
func routeOf(ctx *fasthttp.RequestCtx) *routeInfo {
	ri, _ := ctx.UserValue(matchedRouteKey).(*routeInfo)
	return ri
}

// pathParam is the request's {param} path segment (raw, as the router
// gives it: PathOriginal), "" if its route has none.
func pathParam(ctx *fasthttp.RequestCtx) string {
	ri := routeOf(ctx)
	if ri == nil || ri.param < 0 {
		return ""
	}
	p := ctx.Request.URI().PathOriginal()
	for i := 0; i <= ri.param; i++ {
		j := bytes.IndexByte(p, '/')
		if j < 0 {
			return ""
		}
		p = p[j+1:]
	}
	if j := bytes.IndexByte(p, '/'); j >= 0 {
		p = p[:j]
	}
	return string(p)
}
