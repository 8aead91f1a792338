package httpd

import (
	"github.com/octostore/octostore/docs"
	"github.com/valyala/fasthttp"
)

// routeOpenAPI registers GET /openapi.yaml: the API contract
// (docs/openapi.yaml as embedded in the binary), without authentication.
func (s *Server) routeOpenAPI() {
	s.handle("GET", "/openapi.yaml", serveOpenAPI)
}

// openAPIType is the media type of the document (RFC 9512).
const openAPIType = "application/yaml"

func serveOpenAPI(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(openAPIType)
	ctx.SetBody(docs.OpenAPI) // SetBody copies: the embedded bytes are never written
}
