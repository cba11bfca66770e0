// Package api holds the wire types of the daemon's HTTP API (/api/v1):
// the error shape, the event stream, and the request and response bodies
// that are not resources. Resources travel as the crds/v1alpha1 types. The
// server (daemon/apiserver), the typed client (daemon/client) and the
// console share this package; it imports nothing of the daemon's internals.
package api

import (
	"encoding/json"
	"fmt"
	"time"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// Prefix is the path prefix of every versioned route.
const Prefix = "/api/v1"

// Reason classifies an Error; clients branch on it.
type Reason string

// Error reasons, each with the HTTP status it is sent with.
const (
	ReasonBadRequest    Reason = "BadRequest"    // 400: malformed body or parameters
	ReasonInvalid       Reason = "Invalid"       // 422: well-formed but not acceptable; Field says which
	ReasonUnauthorized  Reason = "Unauthorized"  // 401: missing or wrong bearer token
	ReasonNotFound      Reason = "NotFound"      // 404
	ReasonAlreadyExists Reason = "AlreadyExists" // 409
	ReasonConflict      Reason = "Conflict"      // 409: stale resourceVersion; read again and retry
	ReasonTooLarge      Reason = "TooLarge"      // 413
	ReasonUnsupported   Reason = "Unsupported"   // 415: wrong content type
	ReasonUnavailable   Reason = "Unavailable"   // 503: e.g. the board is off
	ReasonInternal      Reason = "Internal"      // 500
	ReasonNotConnected  Reason = "NotConnected"  // 409: the device holds no session on this daemon's gateway
	ReasonDeployFailed  Reason = "DeployFailed"  // 422: the device refused or failed a deploy; Message says why
	ReasonTimeout       Reason = "Timeout"       // 408: the request body stalled
	// ReasonInsufficientStorage is 507: the daemon's disk is full.
	ReasonInsufficientStorage Reason = "InsufficientStorage"
)

// Error is the one error shape of the API, sent as {"error": Error}.
type Error struct {
	Status  int    `json:"status"`
	Reason  Reason `json:"reason"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Reason, e.Message, e.Field)
	}
	return fmt.Sprintf("%s: %s", e.Reason, e.Message)
}

// Is makes errors.Is(err, &api.Error{Reason: r}) match any Error with
// reason r.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason && t.Message == ""
}

// ErrorBody is the JSON document of an error response.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Info describes the daemon (GET /api/v1/info).
type Info struct {
	Version     string    `json:"version"`
	Store       string    `json:"store"` // "embedded" or "kubernetes"
	Gateway     string    `json:"gateway"`
	GatewayAddr string    `json:"gatewayAddr"` // host:port devices dial
	Started     time.Time `json:"started"`
	// Leader is the gateway of the daemon that runs rollouts and placement
	// (this one with the embedded store); empty during an election.
	Leader string `json:"leader,omitempty"`
}

// SessionCommand acts on an app of a device through its session on this
// daemon's gateway (POST /api/v1/devices/{name}/session/deploy, .../start,
// .../stop and .../remove). The daemons of one cluster send it to each other to reach
// the devices on each other's gateways; scripts have the Application
// resources instead.
type SessionCommand struct {
	App string `json:"app"`
	// Spec is, for a deploy, the app's spec: its module (uploaded before,
	// by sha256), version and limits.
	Spec *v1alpha1.ApplicationSpec `json:"spec,omitempty"`
}

// Module describes an uploaded module (POST /api/v1/modules answers one).
type Module struct {
	SHA256 string    `json:"sha256"`
	Size   int64     `json:"size"`
	Added  time.Time `json:"added"`
}

// TokenRequest asks for a one-time enrollment token for a device (POST
// /api/v1/devices/{name}/token).
type TokenRequest struct {
	TTLSeconds int `json:"ttlSeconds,omitempty"` // default 3600
}

// Token is an enrollment token; it is shown once and stored only as a hash.
type Token struct {
	Device  string    `json:"device"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	CA      string    `json:"ca"` // PEM of the CA the device must trust
}

// Board is one entry of the board catalog (GET /api/v1/boards).
type Board struct {
	Name           string   `json:"name"`
	Title          string   `json:"title"`
	Vendor         string   `json:"vendor"`
	MCU            string   `json:"mcu"`
	Core           string   `json:"core"`
	FlashKiB       int      `json:"flashKiB"`
	RAMKiB         int      `json:"ramKiB"`
	RenodePlatform string   `json:"renodePlatform,omitempty"`
	Capabilities   []string `json:"capabilities"`
	Backends       []string `json:"backends"`
}

// EventType classifies an Event of the stream (GET /api/v1/events).
type EventType string

// Event types: resource changes, then what devices do.
const (
	EventResource  EventType = "resource"  // Kind, Action, Name, Object
	EventOnline    EventType = "online"    // Device
	EventOffline   EventType = "offline"   // Device, Reason
	EventApp       EventType = "app"       // Device, App
	EventProgress  EventType = "progress"  // Device, App (Sent, Total)
	EventTelemetry EventType = "telemetry" // Device, App.Name, Values
	EventLog       EventType = "log"       // what Kubernetes Events say, with the embedded store: Kind, Name, Level, Reason, Message, Count
)

// Event is one entry of the live event stream, sent as server-sent events
// with the event type as the SSE event name and the JSON as data.
type Event struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Type EventType `json:"type"`

	Kind   string          `json:"kind,omitempty"`   // Device, Application, Gateway
	Action string          `json:"action,omitempty"` // ADDED, MODIFIED, DELETED
	Name   string          `json:"name,omitempty"`
	Object json.RawMessage `json:"object,omitempty"`

	Device  string             `json:"device,omitempty"`
	App     *AppEvent          `json:"app,omitempty"`
	Values  map[string]float64 `json:"values,omitempty"`
	Reason  string             `json:"reason,omitempty"`
	Message string             `json:"message,omitempty"`
	// Level and Count are those of a log event: Normal or Warning, and
	// how many times it happened (repeats are counted, not repeated).
	Level string `json:"level,omitempty"`
	Count int32  `json:"count,omitempty"`
}

// AppRemoved is the State of an AppEvent that says the app was removed
// from the device: it no longer holds or lists it.
const AppRemoved = "removed"

// AppEvent is an app's state or transfer progress on one device.
type AppEvent struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	State   string `json:"state,omitempty"` // an app state (running, failed, ...) or AppRemoved
	Reason  string `json:"reason,omitempty"`
	Sent    uint64 `json:"sent,omitempty"`
	Total   uint64 `json:"total,omitempty"`
}
