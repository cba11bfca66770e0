// Package client is the typed client of the daemon's HTTP API (/api/v1),
// the only way the console, scripts written in Go and tests talk to
// wasmbedd. Each method is one route; every answer that is not 2xx comes
// back as an *api.Error, so callers branch with
// errors.Is(err, &api.Error{Reason: api.ReasonNotFound}) or errors.As.
// Failures to reach the daemon are wrapped with the operation.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"wasmbed.io/wasmbed/daemon/api"
)

// maxErrorBody is how much of an error response is read, bytes.
const maxErrorBody = 64 << 10

// Client talks to one daemon. It is safe for concurrent use.
type Client struct {
	base  *url.URL // scheme and host, with any path prefix, no trailing '/'
	token string
	hc    *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends token as the bearer token of every request.
func WithToken(token string) Option {
	return func(c *Client) { c.token = token }
}

// WithHTTPClient makes the client send its requests with hc instead of a
// client of its own. Set no Timeout on hc: the console and event streams
// last as long as their context; bound each call with its context instead.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// New returns a client of the daemon at base, an http or https URL such
// as "http://127.0.0.1:7070".
func New(base string, opts ...Option) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("new client: daemon address: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("new client: daemon address %q: want an http:// or https:// URL", base)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("new client: daemon address %q has no host", base)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("new client: daemon address %q: want only scheme, host and path", base)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	c := &Client{base: u, hc: &http.Client{Transport: http.DefaultTransport}}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		return nil, errors.New("new client: nil HTTP client")
	}
	return c, nil
}

// request is one call to the API.
type request struct {
	op          string // what the caller does, for wrapping transport errors
	method      string
	path        string // below the base, starting with '/', segments escaped
	query       url.Values
	body        io.Reader
	contentType string
	header      http.Header
}

// send makes the request and returns the response when it is 2xx; any
// other status becomes an *api.Error. The caller closes the body.
func (c *Client) send(ctx context.Context, rq request) (*http.Response, error) {
	u := *c.base
	// rq.path has its segments escaped already: keep them so.
	raw := c.base.EscapedPath() + rq.path
	path, err := url.PathUnescape(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rq.op, err)
	}
	u.Path, u.RawPath = path, raw
	if rq.query != nil {
		u.RawQuery = rq.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, u.String(), rq.body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rq.op, err)
	}
	for k, v := range rq.header {
		req.Header[k] = v
	}
	if rq.contentType != "" {
		req.Header.Set("Content-Type", rq.contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rq.op, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp, nil
}

// do makes a request and decodes a JSON answer into out (nil discards it).
func (c *Client) do(ctx context.Context, rq request, out any) error {
	resp, err := c.send(ctx, rq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s: decode the answer: %w", rq.op, err)
	}
	return nil
}

// doJSON sends in as a JSON body and decodes the answer into out.
func (c *Client) doJSON(ctx context.Context, rq request, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("%s: encode the request: %w", rq.op, err)
	}
	rq.body = bytes.NewReader(body)
	rq.contentType = "application/json"
	return c.do(ctx, rq, out)
}

// readError turns an answer that is not 2xx into an *api.Error: the one
// the daemon sent, or, when the body is not the API's error shape (a
// proxy's page, say), one made from the status with the start of the
// body.
func readError(resp *http.Response) *api.Error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var eb api.ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error.Reason != "" {
		e := eb.Error
		if e.Status == 0 {
			e.Status = resp.StatusCode
		}
		return &e
	}
	msg := strings.TrimSpace(string(data))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = "no details in the answer"
	}
	return &api.Error{
		Status:  resp.StatusCode,
		Reason:  reasonOf(resp.StatusCode),
		Message: fmt.Sprintf("%s %s: %s: %s", resp.Request.Method, resp.Request.URL.Path, resp.Status, msg),
	}
}

// reasonOf is the API's reason for a status, for answers that carry none.
func reasonOf(status int) api.Reason {
	switch status {
	case http.StatusBadRequest:
		return api.ReasonBadRequest
	case http.StatusUnauthorized, http.StatusForbidden:
		return api.ReasonUnauthorized
	case http.StatusNotFound:
		return api.ReasonNotFound
	case http.StatusConflict:
		return api.ReasonConflict
	case http.StatusRequestEntityTooLarge:
		return api.ReasonTooLarge
	case http.StatusUnsupportedMediaType:
		return api.ReasonUnsupported
	case http.StatusUnprocessableEntity:
		return api.ReasonInvalid
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return api.ReasonUnavailable
	}
	if status >= 500 {
		return api.ReasonInternal
	}
	return api.ReasonBadRequest
}

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }

// Health checks that the daemon answers (GET /healthz).
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, request{op: "health", method: http.MethodGet, path: "/healthz"}, nil)
}

// Ready checks that the daemon is ready (GET /readyz); an
// api.ReasonUnavailable error says why it is not.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, request{op: "ready", method: http.MethodGet, path: "/readyz"}, nil)
}

// Metrics returns the daemon's metrics in the Prometheus text format (GET
// /metrics).
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	return c.bytes(ctx, request{op: "get metrics", method: http.MethodGet, path: "/metrics"})
}

// OpenAPI returns the OpenAPI document of the API (GET
// /api/v1/openapi.yaml).
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	return c.bytes(ctx, request{op: "get openapi", method: http.MethodGet, path: api.Prefix + "/openapi.yaml"})
}

// Info describes the daemon (GET /api/v1/info).
func (c *Client) Info(ctx context.Context) (api.Info, error) {
	var in api.Info
	err := c.do(ctx, request{op: "get info", method: http.MethodGet, path: api.Prefix + "/info"}, &in)
	return in, err
}

// Boards returns the board catalog (GET /api/v1/boards).
func (c *Client) Boards(ctx context.Context) ([]api.Board, error) {
	var boards []api.Board
	err := c.do(ctx, request{op: "list boards", method: http.MethodGet, path: api.Prefix + "/boards"}, &boards)
	return boards, err
}

func (c *Client) bytes(ctx context.Context, rq request) ([]byte, error) {
	resp, err := c.send(ctx, rq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rq.op, err)
	}
	return data, nil
}
