package renode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// QEMUConfig configures the qemu backend.
type QEMUConfig struct {
	// Binary is qemu-system-arm; by default looked up in PATH when a board
	// starts.
	Binary string
	// Firmware is the Wasmbed firmware ELF for mps2-an385 boards
	// (firmware/mcu, `make firmware`); by default wasmbed-mcu.elf next to
	// the running program.
	Firmware string
	// Dir holds a working directory per board: its boot config block and
	// the sockets of its UARTs.
	Dir    string
	Logger *slog.Logger
}

// QEMU runs microcontroller boards in qemu-system-arm with the Wasmbed
// firmware (firmware/mcu). A board's UART0 is its console; its UART1 is
// the protocol's serial link, which a BoardLink relays to the gateway
// under the board's provisioned identity. The device name reaches the
// firmware in a boot config block (NoNetwork gateway) loaded into RAM.
//
// Only boards the firmware supports run here: mps2-an385.
type QEMU struct {
	cfg QEMUConfig
	log *slog.Logger

	mu     sync.Mutex
	boards map[string]*qemuBoard
	closed bool
}

var _ Backend = (*QEMU)(nil)

// FirmwareFile is the name of the firmware ELF `make build` puts next to
// the binaries.
const FirmwareFile = "wasmbed-mcu.elf"

// Supports reports whether the backend runs board: the boards the
// firmware is built for, which QEMU emulates.
func (q *QEMU) Supports(b Board) bool { return qemuFirmwareBoards[b.Name] && b.QEMUMachine != "" }

// qemuFirmwareBoards are the boards firmware/mcu is built for.
var qemuFirmwareBoards = map[string]bool{"mps2-an385": true}

// NewQEMU returns the backend; what a board needs (QEMU, the firmware) is
// checked when one starts, so a daemon without them still runs its other
// backends.
func NewQEMU(cfg QEMUConfig) (*QEMU, error) {
	if cfg.Dir == "" {
		return nil, errors.New("qemu backend: no working directory")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Firmware == "" {
		if exe, err := os.Executable(); err == nil {
			cfg.Firmware = filepath.Join(filepath.Dir(exe), FirmwareFile)
		}
	}
	// QEMU runs in a board's directory, so the paths it is given must not
	// be relative to the daemon's.
	var err error
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return nil, fmt.Errorf("qemu backend: %w", err)
	}
	if cfg.Firmware != "" {
		if cfg.Firmware, err = filepath.Abs(cfg.Firmware); err != nil {
			return nil, fmt.Errorf("qemu backend: %w", err)
		}
	}
	return &QEMU{cfg: cfg, log: log.With("component", "qemu"), boards: map[string]*qemuBoard{}}, nil
}

// Name returns "qemu".
func (q *QEMU) Name() string { return "qemu" }

type qemuBoard struct {
	boardBase
	cancel context.CancelFunc
	done   chan struct{} // closed when qemu has exited and the relays ended
}

func (b *qemuBoard) set(state State, reason string) {
	b.mu.Lock()
	b.status.State, b.status.Reason = state, reason
	b.mu.Unlock()
}

// Start boots the device's board: QEMU with the firmware and the boot
// config block, its console attached, its link relayed to the gateway.
func (q *QEMU) Start(ctx context.Context, spec Spec) error {
	if err := spec.validate(); err != nil {
		return err
	}
	if !q.Supports(spec.Board) {
		return fmt.Errorf("qemu backend: no Wasmbed firmware for board %s under QEMU (it runs mps2-an385)", spec.Board.Name)
	}
	bin, err := q.available()
	if err != nil {
		return err
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return fmt.Errorf("start board %s: %w", spec.Device, ErrBackendClosed)
	}
	if b := q.boards[spec.Device]; b != nil {
		if s := b.get().State; s == Running || s == Starting {
			return nil
		}
	}
	dir := filepath.Join(q.cfg.Dir, spec.Device)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	block, err := BootConfig{Gateway: NoNetwork, Device: spec.Device}.MarshalBinary()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bootcfg.bin"), block, 0o600); err != nil {
		return err
	}
	bctx, cancel := context.WithCancel(context.Background())
	b := &qemuBoard{boardBase: newBoardBase(spec, q.Name()), cancel: cancel, done: make(chan struct{})}
	b.status = Status{Device: spec.Device, Backend: q.Name(), State: Starting, Started: time.Now()}
	q.boards[spec.Device] = b
	go q.run(bctx, b, bin, dir)
	return nil
}

// Available reports whether boards can start here: QEMU is installed and
// the firmware built.
func (q *QEMU) Available() error {
	_, err := q.available()
	return err
}

func (q *QEMU) available() (string, error) {
	name := q.cfg.Binary
	if name == "" {
		name = "qemu-system-arm"
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("qemu backend: %s not found: install it (Debian: apt-get install qemu-system-arm)", name)
	}
	if _, err := os.Stat(q.cfg.Firmware); err != nil {
		return "", fmt.Errorf("qemu backend: firmware %q: %w; build it with make firmware", q.cfg.Firmware, err)
	}
	return bin, nil
}

// qemuArgs is the command line of a board's QEMU: no display, no
// monitor, no default devices; the firmware ELF as the kernel; the boot
// config block at the board's config address; UART0 and UART1 as Unix
// sockets QEMU serves and waits on until the backend connects, so that
// not a byte of the boot is lost.
func qemuArgs(spec Spec, firmware, dir string) []string {
	uart := func(n int) []string {
		id := "uart" + strconv.Itoa(n)
		return []string{"-chardev", "socket,id=" + id + ",path=" + filepath.Join(dir, id+".sock") + ",server=on,wait=on", "-serial", "chardev:" + id}
	}
	args := []string{
		"-M", spec.Board.QEMUMachine, "-nographic", "-nodefaults", "-monitor", "none",
		"-kernel", firmware,
		"-device", fmt.Sprintf("loader,file=%s,addr=0x%x,force-raw=on", filepath.Join(dir, "bootcfg.bin"), DefaultBootConfigAddr),
	}
	args = append(args, uart(0)...)
	return append(args, uart(1)...)
}

// run runs one board until its context ends or QEMU exits.
func (q *QEMU) run(ctx context.Context, b *qemuBoard, bin, dir string) {
	defer close(b.done)
	for _, n := range []string{"uart0.sock", "uart1.sock"} {
		os.Remove(filepath.Join(dir, n))
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, qemuArgs(b.spec, q.cfg.Firmware, dir)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		b.set(Failed, fmt.Sprintf("run %s: %v", bin, err))
		return
	}
	b.mu.Lock()
	b.status.ID = strconv.Itoa(cmd.Process.Pid)
	b.mu.Unlock()
	// exited is closed when QEMU has exited, waitErr then says how.
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	log := q.log.With("device", b.spec.Device, "pid", cmd.Process.Pid)

	uart0, err := dialUnix(ctx, filepath.Join(dir, "uart0.sock"), exited)
	var uart1 net.Conn
	if err == nil {
		uart1, err = dialUnix(ctx, filepath.Join(dir, "uart1.sock"), exited)
	}
	var relays sync.WaitGroup
	if err == nil {
		b.console.SetInput(uart0)
		relays.Add(2)
		go func() {
			defer relays.Done()
			buf := make([]byte, 4096)
			for {
				n, err := uart0.Read(buf)
				if n > 0 {
					b.console.Write(buf[:n])
				}
				if err != nil {
					return
				}
			}
		}()
		go func() {
			defer relays.Done()
			if err := (&BoardLink{Spec: b.spec, Logger: q.cfg.Logger}).Run(ctx, uart1); err != nil && ctx.Err() == nil {
				log.Info("board link ended", "err", err)
			}
		}()
		b.set(Running, "")
		log.Info("board started", "board", b.spec.Board.Name)
	}

	ended := ctx.Done()
	if err != nil {
		// QEMU waits for the UARTs it serves: a board whose sockets could
		// not be reached ends now.
		closedNow := make(chan struct{})
		close(closedNow)
		ended = closedNow
	}
	select {
	case <-ended:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	case <-exited:
	}
	for _, c := range []net.Conn{uart0, uart1} {
		if c != nil {
			c.Close()
		}
	}
	relays.Wait()
	b.console.SetInput(nil)
	switch {
	case ctx.Err() != nil:
		b.set(Stopped, "stopped")
		log.Info("board stopped")
	case err != nil:
		reason := fmt.Sprintf("%v; qemu: %s", err, lastLine(stderr.Bytes()))
		b.set(Failed, reason)
		log.Info("board failed", "reason", reason)
	default:
		reason := fmt.Sprintf("qemu exited (%v): %s", waitErr, lastLine(stderr.Bytes()))
		b.set(Failed, reason)
		log.Info("board failed", "reason", reason)
	}
}

// dialUnix connects to a socket QEMU serves, waiting for it to appear.
func dialUnix(ctx context.Context, path string, exited <-chan struct{}) (net.Conn, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-exited:
			return nil, fmt.Errorf("qemu exited before serving %s", filepath.Base(path))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("qemu serves no %s after 10s: %w", filepath.Base(path), err)
		}
	}
}

func lastLine(b []byte) string {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}

// Stop stops the device's board and waits for QEMU to exit.
func (q *QEMU) Stop(ctx context.Context, device string) error {
	b := lookup(&q.mu, q.boards, device)
	if b == nil {
		return nil
	}
	b.cancel()
	return awaitStopped(ctx, device, b.done)
}

// Status returns the board's state.
func (q *QEMU) Status(device string) Status {
	return statusOf(&q.mu, q.boards, device, q.Name())
}

// Console returns the board's console (UART0).
func (q *QEMU) Console(device string) (*Console, error) {
	return consoleOf(&q.mu, q.boards, device)
}

// Run waits for ctx to end, then stops every board. QEMU boards die with
// the daemon (a death signal), so there is nothing left to adopt.
func (q *QEMU) Run(ctx context.Context) error {
	<-ctx.Done()
	q.mu.Lock()
	q.closed = true
	boards := make([]*qemuBoard, 0, len(q.boards))
	for _, b := range q.boards {
		boards = append(boards, b)
	}
	q.mu.Unlock()
	for _, b := range boards {
		b.cancel()
		<-b.done
	}
	return nil
}
