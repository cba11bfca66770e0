package renode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// renodeWaitTimeout bounds every wait of these tests: reaching it is a failure,
// never an expected outcome.
const renodeWaitTimeout = 10 * time.Second

// fakeSocketTerminal plays the part of Renode's server socket terminal
// (emulation CreateServerSocketTerminal): Renode cannot run on this
// project's machines, so this TCP peer on 127.0.0.1 stands in for it. It is
// the one test double of the renode backend's tests; the console link under
// test is the backend's own code.
type fakeSocketTerminal struct {
	ln    net.Listener
	conns chan net.Conn // each accepted connection, in order
}

func newFakeSocketTerminal(t *testing.T) *fakeSocketTerminal {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSocketTerminal{ln: ln, conns: make(chan net.Conn, 16)}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns <- c
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		close(f.conns)
		for c := range f.conns {
			c.Close()
		}
	})
	return f
}

func (f *fakeSocketTerminal) addr() string { return f.ln.Addr().String() }

// accept returns the next connection the backend made.
func (f *fakeSocketTerminal) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-f.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(renodeWaitTimeout):
		t.Fatal("the console link did not connect to the socket terminal")
		return nil
	}
}

// renodeReadUntil reads from c until what it read contains want.
func renodeReadUntil(t *testing.T, c net.Conn, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(renodeWaitTimeout))
	var got []byte
	buf := make([]byte, 256)
	for !bytes.Contains(got, []byte(want)) {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("socket terminal read %q, then %v; want %q", got, err, want)
		}
	}
}

// renodeWaitOutput waits until the console's live output contains want.
func renodeWaitOutput(t *testing.T, live <-chan []byte, want string) {
	t.Helper()
	var got []byte
	deadline := time.After(renodeWaitTimeout)
	for !bytes.Contains(got, []byte(want)) {
		select {
		case p, ok := <-live:
			if !ok {
				t.Fatalf("console closed after %q; want %q", got, want)
			}
			got = append(got, p...)
		case <-deadline:
			t.Fatalf("console got %q; want %q", got, want)
		}
	}
}

func TestRenodeConsoleLink(t *testing.T) {
	term := newFakeSocketTerminal(t)
	console := NewConsole(0)
	_, live, cancelSub := console.Subscribe()
	defer cancelSub()
	ctx, cancel := context.WithCancel(context.Background())
	linked := make(chan struct{})
	go func() {
		defer close(linked)
		linkUART(ctx, term.addr(), console, slog.New(slog.DiscardHandler))
	}()
	defer func() {
		cancel()
		<-linked
	}()

	// First connection: output reaches the console, input reaches Renode.
	c1 := term.accept(t)
	if _, err := c1.Write([]byte("*** Booting Zephyr OS ***\r\n")); err != nil {
		t.Fatal(err)
	}
	renodeWaitOutput(t, live, "Booting Zephyr OS")
	if err := console.Input([]byte("wasmbed status\r")); err != nil {
		t.Fatalf("Input() = %v, want nil while linked", err)
	}
	renodeReadUntil(t, c1, "wasmbed status\r")

	// Renode drops the connection: the link dials again.
	c1.Close()
	c2 := term.accept(t)
	if _, err := c2.Write([]byte("uart: back\r\n")); err != nil {
		t.Fatal(err)
	}
	renodeWaitOutput(t, live, "uart: back")
	if err := console.Input([]byte("again\r")); err != nil {
		t.Fatalf("Input() after reconnect = %v, want nil", err)
	}
	renodeReadUntil(t, c2, "again\r")
	if h := console.History(); !bytes.Contains(h, []byte("Booting Zephyr OS")) || !bytes.Contains(h, []byte("uart: back")) {
		t.Errorf("History() = %q, want the output of both connections", h)
	}

	// The link ends with its context and detaches the input.
	cancel()
	select {
	case <-linked:
	case <-time.After(renodeWaitTimeout):
		t.Fatal("linkUART did not return after its context ended")
	}
	if err := console.Input([]byte("x")); !errors.Is(err, ErrBoardOff) {
		t.Errorf("Input() after the link ended = %v, want ErrBoardOff", err)
	}
}

func renodeTestSpec(t *testing.T, device, board string) Spec {
	t.Helper()
	b, err := LookupBoard(board)
	if err != nil {
		t.Fatal(err)
	}
	return Spec{Device: device, Board: b, Gateway: "192.168.100.1:8081", CertPEM: []byte(renodeTestCert), KeyPEM: []byte(renodeTestKey), CAPEM: []byte(renodeTestCert)}
}

// Stand-ins for the identity: Start must not write them anywhere.
const (
	renodeTestCert = "-----BEGIN CERTIFICATE-----\ntest certificate\n-----END CERTIFICATE-----\n"
	renodeTestKey  = "-----BEGIN PRIVATE KEY-----\ntest key\n-----END PRIVATE KEY-----\n"
)

const renodeNoImageMessage = "renode backend: image antmicro/renode:1.15.3 is not available on this host (no registry can be reached here); build or load a Renode image and set --renode-image"

func TestRenodeStartWithoutRuntime(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRenode(RenodeConfig{Dir: dir, Daemon: "gw-1"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Name() != "renode" {
		t.Errorf("Name() = %q, want renode", r.Name())
	}
	ctx := context.Background()
	spec := renodeTestSpec(t, "dev-1", "stm32f746g-disco")
	err = r.Start(ctx, spec)
	if !errors.Is(err, ErrNoRenodeImage) || !strings.Contains(err.Error(), renodeNoImageMessage) {
		t.Fatalf("Start() without a runtime = %v, want ErrNoRenodeImage saying %q", err, renodeNoImageMessage)
	}
	st := r.Status("dev-1")
	if st.State != Failed || !strings.HasPrefix(st.Reason, renodeNoImageMessage) || st.Backend != "renode" || st.Device != "dev-1" || st.ID != "" {
		t.Errorf("Status() = %+v, want Failed with reason %q", st, renodeNoImageMessage)
	}

	// The script and the plan were written all the same, for inspection.
	script, err := os.ReadFile(filepath.Join(dir, "dev-1", "dev-1.resc"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := Script(ScriptSpec{Device: "dev-1", Board: spec.Board, FirmwarePath: RenodeFirmwarePath, UARTPort: RenodeUARTPort, Gateway: spec.Gateway, Ethernet: true})
	if err != nil {
		t.Fatal(err)
	}
	if string(script) != want {
		t.Errorf("written script =\n%s\nwant\n%s", script, want)
	}
	planJSON, err := os.ReadFile(filepath.Join(dir, "dev-1", "container.json"))
	if err != nil {
		t.Fatal(err)
	}
	var plan ContainerPlan
	if err := json.Unmarshal(planJSON, &plan); err != nil {
		t.Fatal(err)
	}
	if plan.Image != DefaultRenodeImage || plan.Mounts[0].Source != filepath.Join(dir, "firmware", spec.Board.Firmware) || plan.Labels[LabelDaemon] != "gw-1" {
		t.Errorf("written plan = %+v; want the default image, the firmware under Dir/firmware, daemon gw-1", plan)
	}
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err == nil && (bytes.Contains(data, []byte("test key")) || bytes.Contains(data, []byte("test certificate"))) {
			t.Errorf("%s holds identity material", path)
		}
		return err
	})

	c, err := r.Console("dev-1")
	if err != nil {
		t.Fatalf("Console() = %v", err)
	}
	if h := c.History(); !bytes.Contains(h, []byte("board did not start")) {
		t.Errorf("console history = %q, want the start failure", h)
	}
	if err := c.Input([]byte("x")); !errors.Is(err, ErrBoardOff) {
		t.Errorf("Input() = %v, want ErrBoardOff", err)
	}

	// Stop is idempotent, and a failed board is stopped afterwards.
	for i := range 3 {
		if err := r.Stop(ctx, "dev-1"); err != nil {
			t.Fatalf("Stop() #%d = %v, want nil", i+1, err)
		}
	}
	if st := r.Status("dev-1"); st.State != Stopped {
		t.Errorf("Status() after Stop = %+v, want Stopped", st)
	}
	if err := r.Stop(ctx, "never-started"); err != nil {
		t.Errorf("Stop(unknown device) = %v, want nil", err)
	}

	// Starting again fails the same way: no state is stuck.
	if err := r.Start(ctx, spec); !errors.Is(err, ErrNoRenodeImage) {
		t.Errorf("second Start() = %v, want ErrNoRenodeImage", err)
	}
}

func TestRenodeStartErrors(t *testing.T) {
	r, err := NewRenode(RenodeConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		name    string
		spec    Spec
		wantErr string
		failed  bool // the board is registered as Failed
	}{
		{"no platform", renodeTestSpec(t, "esp-1", "esp32-devkitc"), "no Renode platform: run it on the sim or qemu backend", true},
		{"loopback gateway", func() Spec { s := renodeTestSpec(t, "lo-1", "frdm-k64f"); s.Gateway = "127.0.0.1:8081"; return s }(), "cannot be dialled from a board", true},
		{"long device name", renodeTestSpec(t, strings.Repeat("d", 33), "nrf52840-dk"), "the block holds at most 32", true},
		{"invalid device name", renodeTestSpec(t, "Dev_1", "nrf52840-dk"), "invalid device name", false},
		{"no gateway", func() Spec { s := renodeTestSpec(t, "gw-less", "nrf52840-dk"); s.Gateway = ""; return s }(), "no gateway address", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := r.Start(ctx, tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Start() = %v, want an error containing %q", err, tt.wantErr)
			}
			st := r.Status(tt.spec.Device)
			if want := map[bool]State{true: Failed, false: Stopped}[tt.failed]; st.State != want {
				t.Errorf("Status() = %+v, want %s", st, want)
			}
			if tt.failed && !strings.Contains(st.Reason, tt.wantErr) {
				t.Errorf("Status().Reason = %q, want it to contain %q", st.Reason, tt.wantErr)
			}
		})
	}
	if _, err := r.Console("never-started"); !errors.Is(err, ErrNoBoard) {
		t.Errorf("Console(unknown device) = %v, want ErrNoBoard", err)
	}
}

func TestRenodeGatewayOverride(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRenode(RenodeConfig{Dir: dir, Gateway: "10.0.2.2:9443"})
	if err != nil {
		t.Fatal(err)
	}
	spec := renodeTestSpec(t, "dev-2", "frdm-k64f")
	spec.Gateway = "127.0.0.1:8081" // how local processes reach it; boards get the override
	if err := r.Start(context.Background(), spec); !errors.Is(err, ErrNoRenodeImage) {
		t.Fatalf("Start() = %v, want ErrNoRenodeImage", err)
	}
	script, err := os.ReadFile(filepath.Join(dir, "dev-2", "dev-2.resc"))
	if err != nil {
		t.Fatal(err)
	}
	_, block := decodeScriptBlock(t, string(script))
	c, err := ParseBootConfig(block)
	if err != nil || c.Gateway.String() != "10.0.2.2:9443" {
		t.Errorf("boot config = %+v, %v; want gateway 10.0.2.2:9443", c, err)
	}
}

func TestRenodeConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     RenodeConfig
		wantErr string
	}{
		{"no dir", RenodeConfig{}, "board directory is required"},
		{"bad daemon", RenodeConfig{Dir: t.TempDir(), Daemon: "My Daemon"}, "not a DNS label"},
		{"host name gateway", RenodeConfig{Dir: t.TempDir(), Gateway: "gateway.lan:8081"}, "not a host name"},
		{"negative limit", RenodeConfig{Dir: t.TempDir(), CPUs: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewRenode(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewRenode(%+v) = %v, want an error containing %q", tt.cfg, err, tt.wantErr)
			}
		})
	}
}

func TestRenodeRunCloses(t *testing.T) {
	r, err := NewRenode(RenodeConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	spec := renodeTestSpec(t, "dev-3", "sltb004a")
	r.Start(context.Background(), spec) // fails: no runtime
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run() = %v, want nil", err)
		}
	case <-time.After(renodeWaitTimeout):
		t.Fatal("Run did not return after its context ended")
	}
	if err := r.Start(context.Background(), spec); !errors.Is(err, ErrBackendClosed) {
		t.Errorf("Start() after Run = %v, want ErrBackendClosed", err)
	}
}
