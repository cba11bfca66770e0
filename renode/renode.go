package renode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Console link timing: the delay before reconnecting to a board's socket
// terminal starts at uartRetryMin, doubles after every attempt that
// delivered no output, and is capped at uartRetryMax.
const (
	uartRetryMin    = 100 * time.Millisecond
	uartRetryMax    = 2 * time.Second
	uartDialTimeout = 2 * time.Second
)

// ErrNoRenodeImage is wrapped by Renode.Start when the Renode image is not
// on the host, or when no container runtime is configured to look for it.
var ErrNoRenodeImage = errors.New("renode image not available")

// imageError is Start's error for a missing image or runtime.
type imageError struct {
	image string
	cause string // "" or why the image could not be used
}

func (e *imageError) Error() string {
	msg := "renode backend: image " + e.image + " is not available on this host (no registry can be reached here); build or load a Renode image and set --renode-image"
	if e.cause != "" {
		msg += " (" + e.cause + ")"
	}
	return msg
}

func (e *imageError) Is(target error) bool { return target == ErrNoRenodeImage }

// ContainerRuntime creates and runs the containers the renode backend plans
// (ContainerPlan). It is the backend's only tie to a container engine, so
// that this package needs no engine client. Implementations are safe for
// concurrent use; every method honours ctx.
type ContainerRuntime interface {
	// HasImage reports whether image is present on the host. It never
	// pulls.
	HasImage(ctx context.Context, image string) (bool, error)
	// Create creates the container plan describes, without starting it,
	// and returns its id.
	Create(ctx context.Context, plan ContainerPlan) (id string, err error)
	// Start starts container id and returns the host address
	// ("127.0.0.1:49153") of each published port, keyed by container
	// port.
	Start(ctx context.Context, id string) (hostAddrs map[int]string, err error)
	// Wait blocks until container id has stopped, or ctx ends, and
	// returns the exit code of its command.
	Wait(ctx context.Context, id string) (exitCode int, err error)
	// Stop stops container id: SIGTERM, then SIGKILL after grace.
	// Stopping a stopped container returns nil.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Remove removes container id, stopped or not. Removing a container
	// that does not exist returns nil.
	Remove(ctx context.Context, id string) error
	// List returns the ids of the containers, running or not, that carry
	// every label of labels.
	List(ctx context.Context, labels map[string]string) ([]string, error)
}

// RenodeConfig configures a Renode backend.
type RenodeConfig struct {
	// Dir holds the boards: the script of device d is written to
	// Dir/d/d.resc (with the container plan in Dir/d/container.json) and
	// Dir/d is mounted read-only in d's container. It is created if
	// missing. Required. The container engine must see it at the same
	// path.
	Dir string
	// FirmwareDir is the host directory holding the firmware ELFs, at
	// the paths Board.Firmware gives; "" means Dir/firmware.
	FirmwareDir string
	// Image is the Renode container image; "" means DefaultRenodeImage.
	Image string
	// Runtime runs the containers; nil makes every Start fail with an
	// error wrapping ErrNoRenodeImage.
	Runtime ContainerRuntime
	// Daemon names this daemon in the LabelDaemon of its containers: a
	// DNS label that stays the same across restarts, so that a new daemon
	// finds its predecessor's containers and leaves other daemons' alone.
	// "" means "wasmbed".
	Daemon string
	// Gateway, when set, is the gateway's IPv4 host:port as boards in
	// Renode dial it, written into their boot config blocks instead of
	// Spec.Gateway (which is how local processes reach it).
	Gateway string
	// MemoryBytes and CPUs limit each board's container; zero means
	// DefaultRenodeMemory and DefaultRenodeCPUs.
	MemoryBytes int64
	CPUs        float64
	// Logger receives the backend's logs; nil discards them.
	Logger *slog.Logger
}

// Renode is the renode backend: it runs a board's Zephyr firmware in the
// Renode emulator, one container per board, through cfg.Runtime. Its
// Backend name is "renode".
//
// Start writes the board's Renode script (Script) to Dir/<device>, plans
// its container (RenodeContainer), checks that the image and the firmware
// are on the host, removes containers an earlier run left for the device,
// then creates and starts the container. The board's console is Renode's
// socket terminal on its console UART, published on the host loopback: the
// backend connects to it, reconnecting whenever the connection drops,
// feeds what it reads into the board's Console and writes Console input to
// it.
//
// A container that exits without being stopped makes the board Failed
// with its exit code as the reason; the container is kept (for its logs)
// until the board is stopped or started again. The daemon's Device
// controller starts a Failed board again at its next resync.
//
// All methods are safe for concurrent use.
type Renode struct {
	cfg RenodeConfig
	log *slog.Logger

	mu     sync.Mutex
	boards map[string]*renodeBoardRun
	closed bool

	// creating is held for reading while a Start creates a container and
	// records its id, and for writing while Run removes leftovers, so
	// that Run never takes a container being created for a leftover.
	creating sync.RWMutex
}

var _ Backend = (*Renode)(nil)

// NewRenode checks cfg and creates cfg.Dir. It succeeds without a runtime
// or an image: the boards then fail to start, each with the reason.
func NewRenode(cfg RenodeConfig) (*Renode, error) {
	if cfg.Dir == "" {
		return nil, errors.New("renode backend: board directory is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("renode backend: board directory: %w", err)
	}
	cfg.Dir = dir
	if cfg.FirmwareDir == "" {
		cfg.FirmwareDir = filepath.Join(dir, "firmware")
	}
	if cfg.FirmwareDir, err = filepath.Abs(cfg.FirmwareDir); err != nil {
		return nil, fmt.Errorf("renode backend: firmware directory: %w", err)
	}
	if cfg.Image == "" {
		cfg.Image = DefaultRenodeImage
	}
	if cfg.Daemon == "" {
		cfg.Daemon = "wasmbed"
	}
	if !validName(cfg.Daemon) {
		return nil, fmt.Errorf("renode backend: daemon name %q is not a DNS label", cfg.Daemon)
	}
	if cfg.Gateway != "" {
		if _, err := parseBootGateway(cfg.Gateway); err != nil {
			return nil, fmt.Errorf("renode backend: %w", err)
		}
	}
	if cfg.MemoryBytes < 0 || cfg.CPUs < 0 {
		return nil, errors.New("renode backend: negative memory or CPU limit")
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("renode backend: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Renode{cfg: cfg, log: cfg.Logger.With("component", "renode"), boards: map[string]*renodeBoardRun{}}, nil
}

// Name returns "renode".
func (r *Renode) Name() string { return "renode" }

// renodeBoardRun is one device's board; its supervisor goroutine owns the
// running container.
type renodeBoardRun struct {
	boardBase
	stopc chan struct{}
	stop  sync.Once
	done  chan struct{} // closed when the board has ended

	leftover string // under mu: the container of a run that ended by itself, kept for its logs
}

func (b *renodeBoardRun) requestStop() { b.stop.Do(func() { close(b.stopc) }) }

func (b *renodeBoardRun) stopping() bool {
	return closed(b.stopc)
}

func (b *renodeBoardRun) finished() bool {
	return closed(b.done)
}

func (b *renodeBoardRun) set(state State, reason, id string, started time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status.State, b.status.Reason, b.status.ID = state, reason, id
	if !started.IsZero() {
		b.status.Started = started
	}
}

// Start starts the board of spec.Device in a Renode container (see Renode)
// and returns once the container runs. It is idempotent: a board already
// starting or running returns nil and keeps its spec. A board being stopped
// is waited for (within ctx) and started again. When the board cannot
// start, its status is Failed with the error as the reason; without a
// runtime or without the image the error wraps ErrNoRenodeImage.
func (r *Renode) Start(ctx context.Context, spec Spec) error {
	if !validName(spec.Device) {
		return fmt.Errorf("start board: invalid device name %q", spec.Device)
	}
	if spec.Board.Name == "" {
		return fmt.Errorf("start board %s: no board type", spec.Device)
	}
	if spec.Gateway == "" && r.cfg.Gateway == "" {
		return fmt.Errorf("start board %s: no gateway address", spec.Device)
	}
	var b *renodeBoardRun
	for b == nil {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return fmt.Errorf("start board %s: %w", spec.Device, ErrBackendClosed)
		}
		old := r.boards[spec.Device]
		switch {
		case old == nil || old.finished():
			b = &renodeBoardRun{
				boardBase: newBoardBase(spec, r.Name()),
				stopc:     make(chan struct{}),
				done:      make(chan struct{}),
			}
			r.boards[spec.Device] = b
			r.mu.Unlock()
		case old.stopping():
			r.mu.Unlock()
			select {
			case <-old.done:
			case <-ctx.Done():
				return fmt.Errorf("start board %s: %w", spec.Device, ctx.Err())
			}
		default:
			r.mu.Unlock()
			return nil
		}
	}
	id, uart, err := r.launch(ctx, b)
	if err != nil {
		b.set(Failed, err.Error(), "", time.Time{})
		b.console.Write(fmt.Appendf(nil, "[renode: board did not start: %s]\r\n", err))
		b.console.Close()
		close(b.done)
		return fmt.Errorf("start board %s: %w", spec.Device, err)
	}
	b.set(Running, "", id, time.Now())
	r.log.Info("board started", "device", spec.Device, "board", spec.Board.Name, "container", id, "uart", uart)
	go r.supervise(b, id, uart)
	return nil
}

// launch writes the board's script and plan, checks the image and the
// firmware, and creates and starts its container. It returns the
// container's id and the host address of its console socket terminal.
func (r *Renode) launch(ctx context.Context, b *renodeBoardRun) (id, uart string, err error) {
	spec := b.spec
	dir := filepath.Join(r.cfg.Dir, spec.Device)
	gateway := spec.Gateway
	if r.cfg.Gateway != "" {
		gateway = r.cfg.Gateway
	} else if _, err := parseBootGateway(gateway); err != nil {
		return "", "", fmt.Errorf("renode backend: %w; set the daemon's --gateway-advertise (WASMBED_GATEWAY_ADVERTISE) to the gateway's IPv4 host:port as boards reach it", err)
	}
	script, err := Script(ScriptSpec{
		Device:       spec.Device,
		Board:        spec.Board,
		FirmwarePath: RenodeFirmwarePath,
		UARTPort:     RenodeUARTPort,
		Gateway:      gateway,
		Ethernet:     spec.Board.HasCapability(CapEthernet),
	})
	if err != nil {
		return "", "", fmt.Errorf("renode backend: %w", err)
	}
	firmware := filepath.Join(r.cfg.FirmwareDir, filepath.FromSlash(spec.Board.Firmware))
	plan, err := RenodeContainer(ContainerSpec{
		Device: spec.Device, Board: spec.Board, Daemon: r.cfg.Daemon, Image: r.cfg.Image,
		FirmwareFile: firmware, ScriptDir: dir,
		MemoryBytes: r.cfg.MemoryBytes, CPUs: r.cfg.CPUs, Labels: spec.Labels,
	})
	if err != nil {
		return "", "", fmt.Errorf("renode backend: %w", err)
	}
	planJSON, err := json.MarshalIndent(plan, "", "  ")
	if err != nil {
		return "", "", fmt.Errorf("renode backend: %w", err)
	}
	// The container's user reads the directory through its mount: it is
	// world-readable, and holds no secret (the identity stays out of it).
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("renode backend: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{spec.Device + ".resc", []byte(script)}, {"container.json", append(planJSON, '\n')}} {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return "", "", fmt.Errorf("renode backend: write %s: %w", f.name, err)
		}
		if err := os.Chmod(filepath.Join(dir, f.name), 0o644); err != nil {
			return "", "", fmt.Errorf("renode backend: %w", err)
		}
	}

	rt := r.cfg.Runtime
	if rt == nil {
		return "", "", &imageError{image: plan.Image, cause: "no container runtime is configured"}
	}
	ok, err := rt.HasImage(ctx, plan.Image)
	if err != nil {
		return "", "", fmt.Errorf("renode backend: look up image %s: %w", plan.Image, err)
	}
	if !ok {
		return "", "", &imageError{image: plan.Image}
	}
	if fi, err := os.Stat(firmware); err != nil || !fi.Mode().IsRegular() {
		return "", "", fmt.Errorf("renode backend: firmware %s of board %s not found: build the board's Zephyr firmware into the firmware directory or set --renode-firmware-dir", firmware, spec.Board.Name)
	}
	if err := r.removeContainers(ctx, map[string]string{LabelDevice: spec.Device}, nil); err != nil {
		return "", "", fmt.Errorf("renode backend: remove the device's old containers: %w", err)
	}
	r.creating.RLock()
	id, err = rt.Create(ctx, plan)
	if err == nil {
		b.set(Starting, "", id, time.Time{})
	}
	r.creating.RUnlock()
	if err != nil {
		return "", "", fmt.Errorf("renode backend: create container: %w", err)
	}
	addrs, err := rt.Start(ctx, id)
	if err == nil && addrs[RenodeUARTPort] == "" {
		err = fmt.Errorf("container port %d is not published", RenodeUARTPort)
	}
	if err != nil {
		r.discard(id)
		return "", "", fmt.Errorf("renode backend: start container: %w", err)
	}
	return id, addrs[RenodeUARTPort], nil
}

// discard stops and removes container id, logging failures: it is called
// where the work ends.
func (r *Renode) discard(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), StopGrace+10*time.Second)
	defer cancel()
	if err := r.cfg.Runtime.Stop(ctx, id, StopGrace); err != nil {
		r.log.Error("container not stopped", "container", id, "err", err)
	}
	if err := r.cfg.Runtime.Remove(ctx, id); err != nil {
		r.log.Error("container not removed", "container", id, "err", err)
	}
}

// removeContainers stops and removes the containers of this backend and
// daemon that carry labels too, except those in keep.
func (r *Renode) removeContainers(ctx context.Context, labels map[string]string, keep map[string]bool) error {
	want := map[string]string{LabelBackend: "renode", LabelDaemon: r.cfg.Daemon}
	for k, v := range labels {
		want[k] = v
	}
	ids, err := r.cfg.Runtime.List(ctx, want)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if keep[id] {
			continue
		}
		if err := r.cfg.Runtime.Stop(ctx, id, StopGrace); err != nil {
			return err
		}
		if err := r.cfg.Runtime.Remove(ctx, id); err != nil {
			return err
		}
		r.log.Info("leftover container removed", "container", id)
	}
	return nil
}

// supervise links the board's console to its socket terminal at uart and
// waits until the container exits or the board is asked to stop.
func (r *Renode) supervise(b *renodeBoardRun, id, uart string) {
	log := r.log.With("device", b.spec.Device, "container", id)
	defer close(b.done)
	defer b.console.Close()
	ctx, cancel := context.WithCancel(context.Background())
	linked := make(chan struct{})
	go func() {
		defer close(linked)
		linkUART(ctx, uart, b.console, log)
	}()
	type exit struct {
		code int
		err  error
	}
	exited := make(chan exit, 1)
	go func() {
		code, err := r.cfg.Runtime.Wait(ctx, id)
		exited <- exit{code, err}
	}()
	select {
	case <-b.stopc:
		cancel()
		<-linked
		r.discard(id)
		b.set(Stopped, "", "", time.Time{})
		log.Info("board stopped")
	case e := <-exited:
		cancel()
		<-linked
		reason := fmt.Sprintf("renode exited with status %d", e.code)
		if e.err != nil {
			reason = "renode container: " + e.err.Error()
		}
		b.console.Write(fmt.Appendf(nil, "\r\n[renode: board ended (%s)]\r\n", reason))
		b.mu.Lock()
		b.leftover = id
		b.mu.Unlock()
		b.set(Failed, reason, "", time.Time{})
		log.Warn("board ended", "reason", reason)
	}
}

// removeLeftover removes the container a board kept after it ended by
// itself, if any.
func (r *Renode) removeLeftover(b *renodeBoardRun) {
	b.mu.Lock()
	id := b.leftover
	b.leftover = ""
	b.mu.Unlock()
	if id != "" {
		r.discard(id)
	}
}

// Stop stops the board of device: its container is stopped (SIGTERM, then
// SIGKILL after StopGrace) and removed, and Stop waits until that is done
// or ctx ends. The console is closed and keeps its scrollback. Stopping a
// board that does not run returns nil; a board that had failed is Stopped
// afterwards, and the container it kept after it ended is removed.
func (r *Renode) Stop(ctx context.Context, device string) error {
	b := lookup(&r.mu, r.boards, device)
	if b == nil {
		return nil
	}
	b.requestStop()
	select {
	case <-b.done:
	case <-ctx.Done():
		return fmt.Errorf("stop board %s: %w", device, ctx.Err())
	}
	r.removeLeftover(b)
	b.set(Stopped, "", "", time.Time{}) // a board that had failed is now stopped on purpose
	return nil
}

// Status returns the state of the board of device; ID is its container's
// id from its creation until it stops.
func (r *Renode) Status(device string) Status {
	return statusOf(&r.mu, r.boards, device, r.Name())
}

// Console returns the console of the board of device: live while its
// container runs, the last run's (closed, with its scrollback) after. The
// error wraps ErrNoBoard for a device never started.
func (r *Renode) Console(device string) (*Console, error) {
	return consoleOf(&r.mu, r.boards, device)
}

// Run removes the containers an earlier run of this daemon (same
// RenodeConfig.Daemon) left behind, except those of boards started since,
// waits for ctx to end, then stops every board, removes every container it
// kept, and returns nil. Start fails with ErrBackendClosed from then on.
// Call Run once.
func (r *Renode) Run(ctx context.Context) error {
	if r.cfg.Runtime != nil {
		r.creating.Lock()
		r.mu.Lock()
		keep := map[string]bool{}
		for _, b := range r.boards {
			b.mu.Lock()
			keep[b.status.ID], keep[b.leftover] = true, true
			b.mu.Unlock()
		}
		r.mu.Unlock()
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := r.removeContainers(cctx, nil, keep); err != nil && ctx.Err() == nil {
			r.log.Error("leftover containers not removed", "err", err)
		}
		cancel()
		r.creating.Unlock()
	}
	<-ctx.Done()
	r.mu.Lock()
	r.closed = true
	boards := make([]*renodeBoardRun, 0, len(r.boards))
	for _, b := range r.boards {
		boards = append(boards, b)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, b := range boards {
		wg.Go(func() {
			b.requestStop()
			<-b.done
			r.removeLeftover(b)
		})
	}
	wg.Wait()
	return nil
}

// linkUART connects console to the TCP socket terminal at addr until ctx
// ends: what the peer sends is written to the console, and the connection
// is the console's input while it lasts. When the dial fails or the
// connection ends, it dials again after a delay (uartRetryMin, doubling up
// to uartRetryMax while connections deliver nothing).
func linkUART(ctx context.Context, addr string, console *Console, log *slog.Logger) {
	d := net.Dialer{Timeout: uartDialTimeout}
	backoff := uartRetryMin
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			log.Debug("console linked", "addr", addr)
			if serveUART(ctx, conn, console) {
				backoff = uartRetryMin
			}
			log.Debug("console link ended", "addr", addr)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, uartRetryMax)
	}
}

// serveUART runs one connection to a socket terminal until it ends or ctx
// does, and reports whether it delivered any output. It closes conn.
func serveUART(ctx context.Context, conn net.Conn, console *Console) (delivered bool) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	console.SetInput(uartInput{conn})
	defer console.SetInput(nil)
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			console.Write(buf[:n])
			delivered = true
		}
		if err != nil {
			return delivered
		}
	}
}

// uartInput writes console input to the socket terminal, giving up after
// inputTimeout when Renode does not read it.
type uartInput struct{ conn net.Conn }

func (w uartInput) Write(p []byte) (int, error) {
	w.conn.SetWriteDeadline(time.Now().Add(inputTimeout))
	n, err := w.conn.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("board does not read its input: %w", err)
	}
	return n, err
}
