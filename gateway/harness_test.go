package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wasmbed.io/wasmbed/firmware/agent"
	"wasmbed.io/wasmbed/gateway"
	"wasmbed.io/wasmbed/gateway/pki"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// waitLimit bounds every wait for an event; it is a safety net against a
// hung test, not a performance assertion.
const waitLimit = 60 * time.Second

// testbed is a real gateway on 127.0.0.1 with a CA made in the test, and the
// devices the test starts against it.
type testbed struct {
	t      testing.TB
	ca     *pki.Authority
	gw     *gateway.Gateway
	addr   string
	events *eventLog
	clock  atomic.Int64 // offset of the CA's clock from now, nanoseconds
}

func newTestbed(t testing.TB, mutate func(*gateway.Config)) *testbed {
	t.Helper()
	tb := &testbed{t: t, events: &eventLog{changed: make(chan struct{})}}
	ca, err := pki.Open(filepath.Join(t.TempDir(), "pki"), pki.Options{
		Now: func() time.Time { return time.Now().Add(time.Duration(tb.clock.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	tb.ca = ca
	cert, err := ca.ServerCertificate([]string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := gateway.Config{
		Authority: ca, Certificate: cert, Events: tb.events,
		HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: 5 * time.Second,
		ChunkSize: 256, Backoff: protocol.Backoff{Initial: time.Second, Max: 4 * time.Second},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	tb.gw, err = gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tb.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tb.gw.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway Serve = %v", err)
		}
	})
	return tb
}

// device is a real device runtime (firmware/agent) running in the test.
type device struct {
	name    string
	dir     string
	console *syncBuffer
	cancel  context.CancelFunc
	done    chan error
	once    sync.Once
}

func (tb *testbed) startDevice(name, token string, mutate func(*agent.Config)) *device {
	tb.t.Helper()
	return tb.startDeviceIn(name, filepath.Join(tb.t.TempDir(), name), token, mutate)
}

func (tb *testbed) startDeviceIn(name, dir, token string, mutate func(*agent.Config)) *device {
	tb.t.Helper()
	d := &device{name: name, dir: dir, console: &syncBuffer{}, done: make(chan error, 1)}
	cfg := agent.Config{
		Name: name, Board: "test-board", Firmware: "test", Capabilities: []string{"wasm"},
		Gateway: tb.addr, StateDir: dir, CAPEM: tb.ca.CACertPEM(), Token: token,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Console: d.console,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		tb.t.Fatal(err)
	}
	var ctx context.Context
	ctx, d.cancel = context.WithCancel(context.Background())
	go func() { d.done <- a.Run(ctx) }()
	tb.t.Cleanup(d.stop)
	return d
}

// stop ends the device and waits for it; safe to call twice.
func (d *device) stop() {
	d.once.Do(func() {
		d.cancel()
		select {
		case err := <-d.done:
			d.done <- err
		case <-time.After(waitLimit):
			panic("device " + d.name + " did not stop")
		}
	})
}

// exit waits for the device runtime to end by itself and returns its error.
func (d *device) exit(t *testing.T) error {
	t.Helper()
	select {
	case err := <-d.done:
		d.done <- err
		return err
	case <-time.After(waitLimit):
		t.Fatalf("device %s still running", d.name)
		return nil
	}
}

// provision pre-provisions a device's identity into a fresh state dir, as
// the board provisioner does.
func (tb *testbed) provision(name string) string {
	tb.t.Helper()
	dir := filepath.Join(tb.t.TempDir(), name)
	certPEM, keyPEM, err := tb.ca.ProvisionDevice(name)
	if err != nil {
		tb.t.Fatal(err)
	}
	for file, b := range map[string][]byte{"device.crt": certPEM, "device.key": keyPEM, "ca.crt": tb.ca.CACertPEM()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			tb.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), b, 0o600); err != nil {
			tb.t.Fatal(err)
		}
	}
	return dir
}

// eventLog records the gateway's events and lets tests wait for one.
type eventLog struct {
	mu      sync.Mutex
	events  []gateway.Event
	changed chan struct{}
	hook    func(gateway.Event)
}

func (l *eventLog) HandleEvent(e gateway.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	close(l.changed)
	l.changed = make(chan struct{})
	hook := l.hook
	l.mu.Unlock()
	if hook != nil {
		hook(e)
	}
}

func (l *eventLog) setHook(h func(gateway.Event)) {
	l.mu.Lock()
	l.hook = h
	l.mu.Unlock()
}

// mark returns the number of events so far, to wait for later ones.
func (l *eventLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// since returns the events after mark.
func (l *eventLog) since(mark int) []gateway.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]gateway.Event(nil), l.events[mark:]...)
}

// waitFor returns the first event after mark that matches, failing the test
// when none comes.
func (l *eventLog) waitFor(t *testing.T, mark int, what string, match func(gateway.Event) bool) gateway.Event {
	t.Helper()
	deadline := time.After(waitLimit)
	for i := mark; ; {
		l.mu.Lock()
		for ; i < len(l.events); i++ {
			if match(l.events[i]) {
				e := l.events[i]
				l.mu.Unlock()
				return e
			}
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no event: %s", what)
		}
	}
}

func isType(device string, typ gateway.EventType) func(gateway.Event) bool {
	return func(e gateway.Event) bool { return e.Device == device && e.Type == typ }
}

func appState(device, app, version string, state protocol.AppState) func(gateway.Event) bool {
	return func(e gateway.Event) bool {
		return e.Device == device && e.Type == gateway.EventApp && e.App.App == app &&
			(version == "" || e.App.Version == version) && e.App.State == state
	}
}

func telemetryHas(device, name string) func(gateway.Event) bool {
	return func(e gateway.Event) bool {
		if e.Device != device || e.Type != gateway.EventTelemetry {
			return false
		}
		_, ok := e.Telemetry.Values[name]
		return ok
	}
}

func consoleHas(device, text string) func(gateway.Event) bool {
	return func(e gateway.Event) bool {
		return e.Device == device && e.Type == gateway.EventConsole && bytes.Contains(e.Console.Data, []byte(text))
	}
}

// module loads a sample app from testdata/apps.
func module(t *testing.T, file, app, version string) gateway.Module {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "apps", file))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return gateway.Module{App: app, Version: version, SHA256: sum[:], Data: b,
		Limits: protocol.Limits{PeriodMS: 20, CallMS: 2000}}
}

// syncBuffer is a goroutine-safe bytes.Buffer for a device's local console.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}
