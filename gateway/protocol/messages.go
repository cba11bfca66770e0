// Package protocol implements the Wasmbed southbound protocol between a device
// and its gateway: CBOR messages with integer keys inside an envelope, carried
// in length-prefixed frames over a TLS 1.3 stream. docs/protocol.md is the
// specification; this package is its reference implementation, and the
// vectors in testdata/protocol are checked against it.
package protocol

import "fmt"

// Version is the protocol version this implementation speaks (spec section
// "Versions"). A peer announces the range it supports in Hello.
const Version = 1

// Type identifies the body carried by an envelope (spec section "Message
// types"). Numbers are part of the wire format and never reused.
type Type uint16

// Message types. The comment names the direction: D is the device, G the
// gateway.
const (
	TypeHello          Type = 1  // D->G: identity and what the device runs
	TypeWelcome        Type = 2  // G->D: reply to Hello
	TypeEnrollRequest  Type = 3  // D->G: token and CSR, on a session without a certificate
	TypeEnrollResponse Type = 4  // G->D: reply to EnrollRequest
	TypeHeartbeat      Type = 5  // D->G
	TypeHeartbeatAck   Type = 6  // G->D: reply to Heartbeat
	TypeDeploy         Type = 7  // G->D: module manifest
	TypeChunk          Type = 8  // G->D: module bytes at an offset
	TypeDeployStatus   Type = 9  // D->G: transfer and install progress; also the reply to Deploy
	TypeStart          Type = 10 // G->D
	TypeStop           Type = 11 // G->D
	// 12 was rollback: a rollback is a deploy of the version the device
	// still holds, which it installs without a transfer.
	TypeAppStatus     Type = 13 // D->G: an app changed state; body AppInfo
	TypeTelemetry     Type = 14 // D->G
	TypeConsole       Type = 15 // D->G: console output; G->D: console input
	TypeAck           Type = 16 // either way: reply with no content
	TypeError         Type = 17 // either way: reply or notice of failure
	TypeRenewRequest  Type = 18 // D->G: CSR for a fresh certificate
	TypeRenewResponse Type = 19 // G->D: reply to RenewRequest
	TypeRemove        Type = 20 // G->D: uninstall an app
)

var typeNames = map[Type]string{
	TypeHello: "hello", TypeWelcome: "welcome", TypeEnrollRequest: "enroll-request",
	TypeEnrollResponse: "enroll-response", TypeHeartbeat: "heartbeat", TypeHeartbeatAck: "heartbeat-ack",
	TypeDeploy: "deploy", TypeChunk: "chunk", TypeDeployStatus: "deploy-status", TypeStart: "start",
	TypeStop: "stop", TypeAppStatus: "app-status", TypeTelemetry: "telemetry",
	TypeConsole: "console", TypeAck: "ack", TypeError: "error", TypeRenewRequest: "renew-request",
	TypeRenewResponse: "renew-response", TypeRemove: "remove",
}

func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type(%d)", uint16(t))
}

// Known reports whether t is a message type of this protocol version.
func (t Type) Known() bool { _, ok := typeNames[t]; return ok }

// newBody returns a pointer to the zero body of type t, or nil for an unknown
// type.
func newBody(t Type) any {
	switch t {
	case TypeHello:
		return new(Hello)
	case TypeWelcome:
		return new(Welcome)
	case TypeEnrollRequest:
		return new(EnrollRequest)
	case TypeEnrollResponse:
		return new(EnrollResponse)
	case TypeHeartbeat:
		return new(Heartbeat)
	case TypeHeartbeatAck:
		return new(HeartbeatAck)
	case TypeDeploy:
		return new(Deploy)
	case TypeChunk:
		return new(Chunk)
	case TypeDeployStatus:
		return new(DeployStatus)
	case TypeStart, TypeStop, TypeRemove:
		return new(AppRef)
	case TypeAppStatus:
		return new(AppInfo)
	case TypeTelemetry:
		return new(Telemetry)
	case TypeConsole:
		return new(Console)
	case TypeAck:
		return new(Ack)
	case TypeError:
		return new(Error)
	case TypeRenewRequest:
		return new(RenewRequest)
	case TypeRenewResponse:
		return new(RenewResponse)
	}
	return nil
}

// AppState is the lifecycle state of one app on a device (spec section "App
// state machine").
type AppState uint8

// App states.
const (
	StateUnknown      AppState = 0
	StateTransferring AppState = 1 // receiving chunks
	StateVerifying    AppState = 2 // all bytes in, checking sha256 and validating
	StateRunning      AppState = 3
	StateStopped      AppState = 4 // stopped by command; installed
	StateExited       AppState = 5 // ran to completion by itself
	StateFailed       AppState = 6 // see Reason
)

var stateNames = [...]string{"unknown", "transferring", "verifying", "running", "stopped", "exited", "failed"}

func (s AppState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Hello opens every authenticated session (D->G). Name must equal the
// certificate's common name.
type Hello struct {
	Device       string    `cbor:"1,keyasint"`
	Board        string    `cbor:"2,keyasint,omitempty"`
	Capabilities []string  `cbor:"3,keyasint,omitempty"`
	Firmware     string    `cbor:"4,keyasint,omitempty"`
	Apps         []AppInfo `cbor:"5,keyasint,omitempty"`
	MinVersion   uint16    `cbor:"6,keyasint"`
	MaxVersion   uint16    `cbor:"7,keyasint"`
	MaxModule    uint64    `cbor:"8,keyasint,omitempty"` // largest module the device accepts, bytes
	CertExpiry   int64     `cbor:"9,keyasint,omitempty"` // unix seconds; informational
}

// Welcome answers Hello with the negotiated version and session parameters.
type Welcome struct {
	Version     uint16 `cbor:"1,keyasint"`
	HeartbeatMS uint32 `cbor:"2,keyasint"` // interval at which the device sends Heartbeat
	TimeoutMS   uint32 `cbor:"3,keyasint"` // silence after which the gateway drops the session
	MaxFrame    uint32 `cbor:"4,keyasint"` // largest frame either side may send, bytes
	ServerTime  int64  `cbor:"5,keyasint"` // unix milliseconds
}

// EnrollRequest asks for a first certificate with a one-time token.
type EnrollRequest struct {
	Token string `cbor:"1,keyasint"`
	CSR   []byte `cbor:"2,keyasint"` // PKCS#10 DER, CN = device name
}

// EnrollResponse carries the issued certificate. The gateway closes the
// session after sending it; the device reconnects with the certificate.
type EnrollResponse struct {
	Device string `cbor:"1,keyasint"`
	Cert   []byte `cbor:"2,keyasint"` // X.509 DER
	CA     []byte `cbor:"3,keyasint"` // X.509 DER of the issuing CA
}

// Heartbeat keeps the session alive and reports the device's view of it.
type Heartbeat struct {
	Seq      uint64 `cbor:"1,keyasint"`
	UptimeMS uint64 `cbor:"2,keyasint,omitempty"`
	RTTMicro uint64 `cbor:"3,keyasint,omitempty"` // last measured heartbeat round trip
}

// HeartbeatAck answers Heartbeat.
type HeartbeatAck struct {
	ServerTime int64 `cbor:"1,keyasint"` // unix milliseconds
}

// Limits bound one app's execution on the device (docs/app-abi.md).
type Limits struct {
	MemoryPages uint32 `cbor:"1,keyasint,omitempty"` // 64 KiB pages; 0 = device default
	CallMS      uint32 `cbor:"2,keyasint,omitempty"` // wall time per call; 0 = device default
	PeriodMS    uint32 `cbor:"3,keyasint,omitempty"` // tick interval; 0 = device default
}

// Deploy is the manifest of a module to install and run. The device replies
// with a DeployStatus saying how many bytes it already holds.
type Deploy struct {
	App     string `cbor:"1,keyasint"`
	Version string `cbor:"2,keyasint"`
	SHA256  []byte `cbor:"3,keyasint"` // 32 bytes
	Size    uint64 `cbor:"4,keyasint"`
	Limits  Limits `cbor:"5,keyasint,omitempty"`
}

// Chunk carries module bytes [Offset, Offset+len(Data)) of the transfer
// identified by App and SHA256. Acked with Ack.
type Chunk struct {
	App    string `cbor:"1,keyasint"`
	SHA256 []byte `cbor:"2,keyasint"`
	Offset uint64 `cbor:"3,keyasint"`
	Data   []byte `cbor:"4,keyasint"`
}

// DeployStatus reports a transfer's progress and outcome.
type DeployStatus struct {
	App      string   `cbor:"1,keyasint"`
	Version  string   `cbor:"2,keyasint"`
	SHA256   []byte   `cbor:"3,keyasint"`
	State    AppState `cbor:"4,keyasint"`
	Received uint64   `cbor:"5,keyasint"` // bytes held; the next chunk starts here
	Reason   string   `cbor:"6,keyasint,omitempty"`
}

// AppRef names the app of a Start, Stop or Remove command.
type AppRef struct {
	App string `cbor:"1,keyasint"`
}

// AppInfo is what a device reports about one app, in Hello and AppStatus.
type AppInfo struct {
	App      string   `cbor:"1,keyasint"`
	Version  string   `cbor:"2,keyasint"`
	SHA256   []byte   `cbor:"3,keyasint"`
	State    AppState `cbor:"4,keyasint"`
	Reason   string   `cbor:"5,keyasint,omitempty"`
	Previous string   `cbor:"6,keyasint,omitempty"` // version kept for rollback
	Received uint64   `cbor:"7,keyasint,omitempty"` // bytes of an unfinished transfer
	Limits   Limits   `cbor:"8,keyasint,omitempty"` // the limits the current version runs under
}

// Telemetry carries named values emitted by an app during one call.
type Telemetry struct {
	App    string             `cbor:"1,keyasint"`
	Values map[string]float64 `cbor:"2,keyasint"`
	TimeMS int64              `cbor:"3,keyasint"` // unix milliseconds on the device
}

// Console carries console bytes: device output (D->G) or input typed by an
// operator (G->D).
type Console struct {
	Data []byte `cbor:"1,keyasint"`
	App  string `cbor:"2,keyasint,omitempty"` // the app that wrote it, if any
}

// Ack answers a message that needs no other reply.
type Ack struct{}

// RenewRequest asks for a fresh certificate for the session's device.
type RenewRequest struct {
	CSR []byte `cbor:"1,keyasint"`
}

// RenewResponse carries the renewed certificate.
type RenewResponse struct {
	Cert []byte `cbor:"1,keyasint"`
}
