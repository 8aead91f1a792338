// Package docs carries the documents the server publishes: the OpenAPI
// document of its HTTP API (openapi.yaml, served at GET /openapi.yaml and
// checked against every exchange of the end-to-end tests by httpd/apitest).
// The Markdown files beside it are for readers of the repository only.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml, the API as built (OpenAPI 3.0.3), embedded in
// the binary. Callers must not modify it.
//
//go:embed openapi.yaml
var OpenAPI []byte
