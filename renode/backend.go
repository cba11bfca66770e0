package renode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Spec is everything a backend needs to start the board of one device.
type Spec struct {
	// Device is the device name, a DNS label; it names the board in its
	// backend.
	Device string
	// Board is the catalog entry of the board to run.
	Board Board
	// Gateway is the host:port of the gateway's TLS listener as this
	// backend's boards reach it.
	Gateway string
	// ServerName is the name in the gateway certificate; "" means the host
	// of Gateway.
	ServerName string
	// CertPEM, KeyPEM and CAPEM are the board's provisioned identity: its
	// client certificate, its private key and the CA certificate, PEM.
	CertPEM, KeyPEM, CAPEM []byte
	// Labels are the Device's labels, for backends that tag what they
	// create (containers); the sim backend does not use them.
	Labels map[string]string
}

// State is where a board is in its life.
type State string

// Board states.
const (
	Stopped  State = "Stopped"  // not running: never started, stopped, or unknown
	Starting State = "Starting" // being started or restarted
	Running  State = "Running"  // its process (container, emulator) runs
	Failed   State = "Failed"   // it ended unexpectedly or could not start; Reason says why
)

// Status is a board's state as its backend sees it.
type Status struct {
	Device  string
	Backend string // the backend's Name
	State   State
	Reason  string    // why the board failed or stopped; "" when running
	Started time.Time // when the current (or last) run started; zero if none
	ID      string    // the board in its backend: a process id, a container id
}

// Backend runs emulated boards, one per device. Implementations are safe
// for concurrent use.
type Backend interface {
	// Name is the backend's name as a Device's spec.emulation.backend
	// gives it: "sim", "docker", "renode".
	Name() string
	// Start starts the board described by spec and returns once it is
	// starting. It is idempotent: a board already running, starting or
	// waiting to restart returns nil and keeps its spec. ctx bounds the
	// preparation only; the board runs until Stop or the end of Run.
	Start(ctx context.Context, spec Spec) error
	// Stop stops the board of device and waits until it is gone, or until
	// ctx ends (the board is then still being stopped). Stopping a board
	// that does not run returns nil.
	Stop(ctx context.Context, device string) error
	// Status returns the state of the board of device; State is Stopped
	// for a device the backend does not know.
	Status(device string) Status
	// Console returns the console of the board of device: live while it
	// runs, and the last run's scrollback once it stopped. The error
	// wraps ErrNoBoard for a device never started.
	Console(device string) (*Console, error)
	// Run adopts or cleans the boards an earlier daemon left behind,
	// then waits for ctx to end, stops every board it started, and
	// returns nil. Call it once.
	Run(ctx context.Context) error
}

// Forgetter is a Backend that keeps a board's state between runs (the sim
// backend's state directory). Forget stops the board and deletes that
// state: the device is gone, and one created again under its name starts
// clean. Backends whose boards keep nothing (containers removed on stop,
// RAM-only microcontrollers) do not implement it.
type Forgetter interface {
	Forget(ctx context.Context, device string) error
}

// ErrNoBoard is wrapped by Backend.Console for a device the backend has not
// started a board for.
var ErrNoBoard = errors.New("no board")

// ErrBackendClosed is wrapped by Backend.Start once the backend's Run has
// ended: a board started then would outlive the daemon.
var ErrBackendClosed = errors.New("backend closed")

// validate checks what every backend needs of a Spec to start a board.
func (spec Spec) validate() error {
	if !validName(spec.Device) {
		return fmt.Errorf("start board: invalid device name %q", spec.Device)
	}
	if spec.Board.Name == "" {
		return fmt.Errorf("start board %s: no board type", spec.Device)
	}
	if spec.Gateway == "" {
		return fmt.Errorf("start board %s: no gateway address", spec.Device)
	}
	if len(spec.CertPEM) == 0 || len(spec.KeyPEM) == 0 || len(spec.CAPEM) == 0 {
		return fmt.Errorf("start board %s: spec has no identity", spec.Device)
	}
	return nil
}

// lookup returns the board of device in a backend's table, under the lock
// that guards it; nil when the backend does not run one.
func lookup[B any](mu *sync.Mutex, boards map[string]*B, device string) *B {
	mu.Lock()
	defer mu.Unlock()
	return boards[device]
}

// boardBase is what the boards of every backend hold: the spec, the
// console, and the status under mu.
type boardBase struct {
	spec    Spec
	console *Console

	mu     sync.Mutex // guards status, and what a backend's board keeps beside it
	status Status
}

// newBoardBase starts a board of spec on backend: a copy of spec, a new
// console, Starting.
func newBoardBase(spec Spec, backend string) boardBase {
	return boardBase{
		spec:    cloneSpec(spec),
		console: NewConsole(0),
		status:  Status{Device: spec.Device, Backend: backend, State: Starting},
	}
}

func (b *boardBase) get() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status
}

// board is what Status and Console need of every backend's boards.
type board interface {
	get() Status
	boardConsole() *Console
}

func (b *boardBase) boardConsole() *Console { return b.console }

// statusOf returns the status of device's board in a backend's table, or
// Stopped when the backend runs none.
func statusOf[P board](mu *sync.Mutex, boards map[string]P, device, backend string) Status {
	mu.Lock()
	b, ok := boards[device]
	mu.Unlock()
	if !ok {
		return Status{Device: device, Backend: backend, State: Stopped}
	}
	return b.get()
}

// consoleOf returns the console of device's board in a backend's table; the
// error wraps ErrNoBoard when the backend never started one.
func consoleOf[P board](mu *sync.Mutex, boards map[string]P, device string) (*Console, error) {
	mu.Lock()
	b, ok := boards[device]
	mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("console of %s: %w", device, ErrNoBoard)
	}
	return b.boardConsole(), nil
}

// awaitStopped waits until done is closed (a board being stopped is gone)
// or ctx ends.
func awaitStopped(ctx context.Context, device string, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop board %s: %w", device, ctx.Err())
	}
}

// closed reports whether ch is closed, without waiting.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
