// Package apiserver owns the daemon's northbound HTTP API (/api/v1): one
// route table, one JSON error shape (api.ErrorBody) with meaningful status
// codes, bearer-token auth, request metrics, and the validation of every
// body that arrives from outside. Scripts, the console and tests reach it
// through daemon/client; docs/openapi.yaml describes it and docs/api.md
// explains it.
//
// The handler keeps no state of its own beyond its metrics: resources live
// in the store.Store, events come from the events.Bus, consoles from the
// ConsoleSource.
package apiserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/controller"
	"wasmbed.io/wasmbed/daemon/events"
	"wasmbed.io/wasmbed/daemon/store"
	"wasmbed.io/wasmbed/docs"
	"wasmbed.io/wasmbed/gateway"
)

// DefaultMaxModule is the upload limit for modules when Deps.MaxModule is
// zero, bytes.
const DefaultMaxModule = 16 << 20

// DefaultBodyStall is how long a request body may send nothing.
const DefaultBodyStall = 30 * time.Second

// Limits on request bodies other than modules, bytes.
const (
	maxJSONBody    = 1 << 20 // any JSON request body
	maxConsoleBody = 4 << 10 // one console input write
)

// ErrBoardOff is what a ConsoleSource wraps when the device has no running
// board; the API answers it with 503 Unavailable.
var ErrBoardOff = errors.New("board is off")

// TokenIssuer makes one-time enrollment tokens; *pki.Authority satisfies
// it. It must be safe for concurrent use.
type TokenIssuer interface {
	// CreateToken returns a token bound to device, valid for ttl.
	CreateToken(device string, ttl time.Duration) (string, error)
	// CACertPEM returns the PEM of the CA devices must trust.
	CACertPEM() []byte
}

// ConsoleSource attaches to the console of a device's emulated board. It
// must be safe for concurrent use.
type ConsoleSource interface {
	// AttachConsole returns the console's scrollback, a channel of the
	// bytes the board prints from now on, and a function that types into
	// the board. The channel is closed when ctx ends, when the board goes
	// away or when the reader falls too far behind. err wraps ErrBoardOff
	// when the device has no running board.
	AttachConsole(ctx context.Context, device string) (history []byte, live <-chan []byte, input func([]byte) error, err error)
}

// LiveSessions is the gateway's session registry as the API reads it. Safe
// for concurrent use.
type LiveSessions interface {
	Session(device string) (gateway.SessionInfo, bool)
}

// withLive merges a device's live session facts, when its session is on
// live, into dev, and returns dev.
func withLive(live LiveSessions, dev *v1alpha1.Device) *v1alpha1.Device {
	if live == nil {
		return dev
	}
	if s, ok := live.Session(dev.Name); ok {
		dev.Status.LastSeen = &metav1.Time{Time: s.LastSeen.Truncate(time.Second)}
		dev.Status.RTTMicros = s.RTT.Microseconds()
	}
	return dev
}

// Deps is what the API serves from. Store is required; every other field
// is optional, with the default its comment gives.
type Deps struct {
	Store store.Store
	// Boards is the board catalog; a Device's spec.board must name one.
	// Empty means no device can be created.
	Boards []api.Board
	// Tokens issues enrollment tokens; nil answers the token route with
	// 503 Unavailable.
	Tokens TokenIssuer
	// Consoles serves board consoles; nil answers the console routes with
	// 503 Unavailable.
	Consoles ConsoleSource
	// Events feeds GET /api/v1/events; nil answers it with 503
	// Unavailable. ResourcePublisher puts the store's changes on it.
	Events *events.Bus
	// Sessions serves POST /api/v1/devices/{name}/session/...: app
	// commands for the devices on this daemon's gateway, from the other
	// daemons of a cluster; nil answers them with 503 Unavailable.
	Sessions controller.Sessions
	// Live holds the hot facts of device sessions (last seen, round
	// trip), which change with every heartbeat and are never stored:
	// devices served have them merged in. nil serves the stored status.
	Live LiveSessions
	// Info describes the daemon for GET /api/v1/info; nil reports only the
	// store backend.
	Info func() api.Info
	// Token is the bearer token every route but /healthz and /readyz
	// requires; "" turns authentication off (the daemon allows that only
	// on loopback).
	Token string
	// Registry is where the API registers its metrics and what /metrics
	// serves; nil means a fresh registry of its own.
	Registry *prometheus.Registry
	// Ready reports readiness for /readyz: nil when ready. nil means
	// always ready.
	Ready func() error
	// MaxModule is the largest module upload, bytes; 0 means
	// DefaultMaxModule.
	MaxModule int64
	// BodyStall is the longest a request body may send nothing before
	// the request is answered 408 and its connection closed;
	// DefaultBodyStall.
	BodyStall time.Duration
	// Logger receives request logs and the detail of internal errors; nil
	// discards them.
	Logger *slog.Logger
}

// server is the handler New returns. It is safe for concurrent use.
type server struct {
	d         Deps
	log       *slog.Logger
	boards    map[string]api.Board
	boardList string // the catalog's names, for error messages
	tokenHash [sha256.Size]byte
	mux       *http.ServeMux
	routes    []route
	metrics   *metrics
	promh     http.Handler
}

// handlerFunc serves one route. A returned error is sent as the JSON error
// shape, unless the response was already started, when it is only logged.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is one entry of the route table.
type route struct {
	pattern string // http.ServeMux pattern with its method: "GET /api/v1/info"
	open    bool   // served without the bearer token
	h       handlerFunc
}

// New validates d and returns the API handler.
func New(d Deps) (http.Handler, error) {
	if d.Store == nil {
		return nil, errors.New("new api server: no store")
	}
	if d.MaxModule < 0 {
		return nil, fmt.Errorf("new api server: negative module limit %d", d.MaxModule)
	}
	if d.MaxModule == 0 {
		d.MaxModule = DefaultMaxModule
	}
	if d.BodyStall <= 0 {
		d.BodyStall = DefaultBodyStall
	}
	d.Boards = slices.Clone(d.Boards) // the caller may reuse its slice
	s := &server{d: d, boards: make(map[string]api.Board, len(d.Boards))}
	s.log = d.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "apiserver")
	names := make([]string, 0, len(d.Boards))
	for _, b := range d.Boards {
		if b.Name == "" {
			return nil, errors.New("new api server: a board of the catalog has no name")
		}
		if _, dup := s.boards[b.Name]; dup {
			return nil, fmt.Errorf("new api server: board %q is twice in the catalog", b.Name)
		}
		s.boards[b.Name] = b
		names = append(names, b.Name)
	}
	s.boardList = strings.Join(names, ", ")
	if d.Token != "" {
		s.tokenHash = sha256.Sum256([]byte(d.Token))
	}
	reg := d.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("new api server: %w", err)
	}
	s.metrics = m
	s.promh = promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError)})

	s.routes = s.routeTable()
	s.mux = http.NewServeMux()
	for _, rt := range s.routes {
		s.mux.Handle(rt.pattern, s.wrap(rt))
	}
	return s, nil
}

// routeTable is every route of the API. docs/openapi.yaml describes each
// one; a test keeps the two in step.
func (s *server) routeTable() []route {
	const p = api.Prefix
	return []route{
		{pattern: "GET /healthz", open: true, h: s.healthz},
		{pattern: "GET /readyz", open: true, h: s.readyz},
		{pattern: "GET /metrics", h: s.serveMetrics},
		{pattern: "GET " + p + "/openapi.yaml", h: s.openAPI},
		{pattern: "GET " + p + "/info", h: s.info},
		{pattern: "GET " + p + "/boards", h: s.listBoards},

		{pattern: "GET " + p + "/devices", h: s.listDevices},
		{pattern: "POST " + p + "/devices", h: s.createDevice},
		{pattern: "GET " + p + "/devices/{name}", h: s.getDevice},
		{pattern: "PUT " + p + "/devices/{name}", h: s.updateDevice},
		{pattern: "DELETE " + p + "/devices/{name}", h: s.deleteDevice},
		{pattern: "POST " + p + "/devices/{name}/emulation/start", h: s.startEmulation},
		{pattern: "POST " + p + "/devices/{name}/emulation/stop", h: s.stopEmulation},
		{pattern: "POST " + p + "/devices/{name}/token", h: s.createToken},
		{pattern: "GET " + p + "/devices/{name}/console", h: s.streamConsole},
		{pattern: "POST " + p + "/devices/{name}/console", h: s.sendConsole},
		{pattern: "POST " + p + "/devices/{name}/session/{command}", h: s.sessionCommand},

		{pattern: "GET " + p + "/applications", h: s.listApplications},
		{pattern: "POST " + p + "/applications", h: s.createApplication},
		{pattern: "GET " + p + "/applications/{name}", h: s.getApplication},
		{pattern: "PUT " + p + "/applications/{name}", h: s.updateApplication},
		{pattern: "DELETE " + p + "/applications/{name}", h: s.deleteApplication},
		{pattern: "GET " + p + "/applications/{name}/devices", h: s.listApplicationDevices},
		{pattern: "POST " + p + "/applications/{name}/pause", h: s.appAction(pauseApp)},
		{pattern: "POST " + p + "/applications/{name}/resume", h: s.appAction(resumeApp)},
		{pattern: "POST " + p + "/applications/{name}/stop", h: s.appAction(stopApp)},
		{pattern: "POST " + p + "/applications/{name}/start", h: s.appAction(startApp)},
		{pattern: "POST " + p + "/applications/{name}/rollback", h: s.appAction(s.rollbackApp)},

		{pattern: "GET " + p + "/gateways", h: s.listGateways},
		{pattern: "POST " + p + "/gateways", h: s.createGateway},
		{pattern: "GET " + p + "/gateways/{name}", h: s.getGateway},
		{pattern: "PUT " + p + "/gateways/{name}", h: s.updateGateway},
		{pattern: "DELETE " + p + "/gateways/{name}", h: s.deleteGateway},

		{pattern: "GET " + p + "/modules", h: s.listModules},
		{pattern: "POST " + p + "/modules", h: s.uploadModule},
		{pattern: "GET " + p + "/modules/{sha256}", h: s.getModule},
		{pattern: "DELETE " + p + "/modules/{sha256}", h: s.deleteModule},

		{pattern: "GET " + p + "/events", h: s.streamEvents},
	}
}

// ServeHTTP answers requests no route matches with the JSON error shape
// (404, or 405 with Allow) and hands the rest to the mux.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w}
	if err := s.authorize(r); err != nil {
		s.writeError(rw, r, err)
	} else {
		s.serveUnmatched(rw, r)
	}
	s.metrics.observe("unmatched", r.Method, rw.code(), time.Since(start))
}

// serveUnmatched lets the mux decide between 404 and 405 and sends its
// verdict as the JSON error shape.
func (s *server) serveUnmatched(w *responseWriter, r *http.Request) {
	rec := &statusRecorder{header: http.Header{}}
	s.mux.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusMethodNotAllowed:
		allow := rec.header.Get("Allow")
		w.Header().Set("Allow", allow)
		s.writeError(w, r, &api.Error{
			Status:  http.StatusMethodNotAllowed,
			Reason:  api.ReasonBadRequest,
			Message: fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow),
		})
	case http.StatusNotFound:
		s.writeError(w, r, notFoundf("no route for %s %s", r.Method, r.URL.Path))
	default:
		// A redirect to the canonical path, or anything else the mux
		// decided: pass it on as it is.
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		w.Write(rec.body.Bytes())
	}
}

// wrap adds to a route what every route shares: authentication, the JSON
// error shape, metrics and the request log.
func (s *server) wrap(rt route) http.Handler {
	route := rt.pattern
	if _, path, ok := strings.Cut(rt.pattern, " "); ok {
		route = path
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &responseWriter{ResponseWriter: w}
		// The handler gets its own copy of the request with the tracked
		// body: net/http keeps its own, which it would otherwise drain
		// (without a deadline) before answering a request whose body was
		// not read.
		body := &trackedBody{ReadCloser: r.Body, rc: http.NewResponseController(w), stall: s.d.BodyStall}
		r = r.WithContext(r.Context())
		r.Body = body
		var err error
		if !rt.open {
			err = s.authorize(r)
		}
		if err == nil {
			err = checkQuery(r)
		}
		if err == nil {
			err = rt.h(rw, r)
		}
		if err != nil {
			if rw.wrote {
				// A stream cut short: usually the client went away
				// mid-write, which is no fault.
				level := slog.LevelWarn
				if r.Context().Err() != nil {
					level = slog.LevelDebug
				}
				s.log.Log(r.Context(), level, "response ended early", "route", route, "method", r.Method, "err", err)
			} else {
				if body.stalled {
					err = &api.Error{Status: http.StatusRequestTimeout, Reason: api.ReasonTimeout,
						Message: fmt.Sprintf("the request body sent nothing for %s", s.d.BodyStall)}
				}
				if body.started && isTooLarge(err) {
					drainRefused(body)
				}
				unread := r.ContentLength != 0 && !body.done
				if unread {
					// An answer before the body was read (a refused
					// token, for one) closes the connection: the body
					// is never waited for.
					rw.Header().Set("Connection", "close")
				}
				s.writeError(rw, r, err)
				if unread {
					// net/http reads what is left of a body before it
					// closes; this makes that read end at once.
					_ = body.rc.SetReadDeadline(time.Now())
				}
			}
		}
		d := time.Since(start)
		s.metrics.observe(route, r.Method, rw.code(), d)
		s.log.Debug("request", "route", route, "method", r.Method, "status", rw.code(), "duration", d)
	})
}

// checkQuery refuses a query string that does not parse: r.URL.Query
// drops the pairs it cannot read, which would turn a mistyped
// labelSelector into a list of everything.
func checkQuery(r *http.Request) error {
	if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
		return badRequestf("", "malformed query string: %v", err)
	}
	return nil
}

// authorize checks the bearer token, in constant time.
func (s *server) authorize(r *http.Request) error {
	if s.d.Token == "" {
		return nil
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		got := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) == 1 {
			return nil
		}
		return &api.Error{Status: http.StatusUnauthorized, Reason: api.ReasonUnauthorized, Message: "the bearer token is not valid"}
	}
	return &api.Error{Status: http.StatusUnauthorized, Reason: api.ReasonUnauthorized, Message: "an Authorization: Bearer token is required"}
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeText(w, http.StatusOK, "ok\n")
	return nil
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) error {
	if s.d.Ready != nil {
		if err := s.d.Ready(); err != nil {
			return unavailablef("not ready: %v", err)
		}
	}
	writeText(w, http.StatusOK, "ok\n")
	return nil
}

func (s *server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	s.promh.ServeHTTP(w, r)
	return nil
}

func (s *server) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	w.WriteHeader(http.StatusOK)
	w.Write(docs.OpenAPI)
	return nil
}

func (s *server) info(w http.ResponseWriter, r *http.Request) error {
	var in api.Info
	if s.d.Info != nil {
		in = s.d.Info()
	}
	if in.Store == "" {
		in.Store = s.d.Store.Backend()
	}
	return writeJSON(w, http.StatusOK, in)
}

func (s *server) listBoards(w http.ResponseWriter, r *http.Request) error {
	boards := s.d.Boards
	if boards == nil {
		boards = []api.Board{}
	}
	return writeJSON(w, http.StatusOK, boards)
}

func writeText(w http.ResponseWriter, code int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	w.Write([]byte(text))
}
