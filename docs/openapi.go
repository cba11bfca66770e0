// Package docs holds the documents the daemon serves: the OpenAPI 3.0
// description of its HTTP API (openapi.yaml), embedded at build time so
// that the binary and the document cannot drift apart.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml, the OpenAPI 3.0 document of the daemon's
// HTTP API, served at GET /api/v1/openapi.yaml. Callers must not modify it.
//
//go:embed openapi.yaml
var OpenAPI []byte
