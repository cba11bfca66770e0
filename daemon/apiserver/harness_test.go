package apiserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/apiserver"
	"wasmbed.io/wasmbed/daemon/client"
	"wasmbed.io/wasmbed/daemon/events"
	"wasmbed.io/wasmbed/daemon/store"
	"wasmbed.io/wasmbed/gateway/pki"
)

// testBoards is the board catalog of the tests.
var testBoards = []api.Board{
	{Name: "nrf52840-dk", Title: "Nordic nRF52840 DK", Vendor: "Nordic Semiconductor", MCU: "nRF52840", Core: "Cortex-M4F", FlashKiB: 1024, RAMKiB: 256, Capabilities: []string{"ble", "thread"}, Backends: []string{"sim", "renode"}},
	{Name: "esp32-devkitc", Title: "Espressif ESP32-DevKitC", Vendor: "Espressif", MCU: "ESP32", Core: "Xtensa LX6", FlashKiB: 4096, RAMKiB: 520, Capabilities: []string{"wifi", "ble"}, Backends: []string{"sim", "docker"}},
	{Name: "mps2-an385", Title: "Arm MPS2+ AN385", Vendor: "Arm", MCU: "CMSDK", Core: "Cortex-M3", FlashKiB: 4096, RAMKiB: 4096, Capabilities: []string{"ethernet"}, Backends: []string{"sim", "renode"}},
}

// harness is a daemon API on loopback: the real handler over a real
// embedded store and certificate authority, reached through the real
// client.
type harness struct {
	url      string
	store    *store.Embedded
	bus      *events.Bus
	pki      *pki.Authority
	consoles *pipeConsoles
	reg      *prometheus.Registry
	c        *client.Client
}

// newHarness starts a server; edit adjusts its dependencies first.
func newHarness(tb testing.TB, edit ...func(*apiserver.Deps)) *harness {
	tb.Helper()
	return newHarnessIn(tb, tb.TempDir(), edit...)
}

// newHarnessIn is newHarness with its store in storeDir.
func newHarnessIn(tb testing.TB, storeDir string, edit ...func(*apiserver.Deps)) *harness {
	tb.Helper()
	st, err := store.OpenEmbedded(storeDir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	ca, err := pki.Open(tb.TempDir(), pki.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	h := &harness{store: st, bus: events.New(1000), pki: ca, consoles: newPipeConsoles(), reg: prometheus.NewRegistry()}
	d := apiserver.Deps{
		Store:    st,
		Boards:   testBoards,
		Tokens:   ca,
		Consoles: h.consoles,
		Events:   h.bus,
		Info:     func() api.Info { return api.Info{Version: "test", Store: st.Backend()} },
		Registry: h.reg,
	}
	for _, e := range edit {
		e(&d)
	}
	handler, err := apiserver.New(d)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	tb.Cleanup(srv.Close)
	h.url = srv.URL
	var opts []client.Option
	if d.Token != "" {
		opts = append(opts, client.WithToken(d.Token))
	}
	h.c, err = client.New(srv.URL, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// publish runs the ResourcePublisher until the test ends.
func (h *harness) publish(tb testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&apiserver.ResourcePublisher{Store: h.store, Bus: h.bus}).Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("ResourcePublisher.Run: %v", err)
		}
	})
}

// raw sends a request the typed client would never send, and returns the
// status and the error body, if any.
func (h *harness) raw(tb testing.TB, method, path, contentType string, body []byte) (int, *api.Error) {
	tb.Helper()
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode/100 == 2 {
		return resp.StatusCode, nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		tb.Fatalf("%s %s: error with Content-Type %q, want application/json; body %q", method, path, ct, data)
	}
	var eb api.ErrorBody
	if err := json.Unmarshal(data, &eb); err != nil {
		tb.Fatalf("%s %s: error body %q: %v", method, path, data, err)
	}
	if eb.Error.Status != resp.StatusCode {
		tb.Errorf("%s %s: error body status %d, response status %d", method, path, eb.Error.Status, resp.StatusCode)
	}
	return resp.StatusCode, &eb.Error
}

// wasm reads a module of testdata/apps.
func wasm(tb testing.TB, name string) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "apps", name))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func device(name, board string, labels map[string]string) *v1alpha1.Device {
	return &v1alpha1.Device{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       v1alpha1.DeviceSpec{Board: board},
	}
}

func application(name, sum, version string, devices ...string) *v1alpha1.Application {
	return &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ApplicationSpec{
			Module:  v1alpha1.ModuleRef{SHA256: sum},
			Version: version,
			Target:  v1alpha1.Target{Devices: devices},
		},
	}
}

// wantAPIError fails unless err is an *api.Error with the reason and
// status.
func wantAPIError(tb testing.TB, what string, err error, reason api.Reason, status int) *api.Error {
	tb.Helper()
	ae, ok := err.(*api.Error)
	if !ok {
		tb.Fatalf("%s = %v (%T), want *api.Error %s", what, err, err, reason)
	}
	if ae.Reason != reason || ae.Status != status {
		tb.Fatalf("%s = %d %s (%v), want %d %s", what, ae.Status, ae.Reason, ae, status, reason)
	}
	return ae
}

// pipeConsoles is a ConsoleSource over in-memory byte pipes, standing in
// for the boards in the console route tests only: the real boards and
// their consoles are tested in renode/.
type pipeConsoles struct {
	mu     sync.Mutex
	boards map[string]*pipeBoard
}

type pipeBoard struct {
	history []byte
	subs    map[chan []byte]struct{}
	input   chan []byte
}

func newPipeConsoles() *pipeConsoles {
	return &pipeConsoles{boards: map[string]*pipeBoard{}}
}

// powerOn gives device a running board that has printed history.
func (p *pipeConsoles) powerOn(device, history string) *pipeBoard {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := &pipeBoard{history: []byte(history), subs: map[chan []byte]struct{}{}, input: make(chan []byte, 16)}
	p.boards[device] = b
	return b
}

// print is the board printing s.
func (p *pipeConsoles) print(device, s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.boards[device]
	b.history = append(b.history, s...)
	for ch := range b.subs {
		ch <- []byte(s)
	}
}

func (p *pipeConsoles) AttachConsole(ctx context.Context, device string) ([]byte, <-chan []byte, func([]byte) error, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.boards[device]
	if !ok {
		return nil, nil, nil, fmt.Errorf("attach console of %s: %w", device, apiserver.ErrBoardOff)
	}
	ch := make(chan []byte, 16)
	b.subs[ch] = struct{}{}
	context.AfterFunc(ctx, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(b.subs, ch)
		close(ch)
	})
	input := func(data []byte) error {
		b.input <- bytes.Clone(data)
		return nil
	}
	return bytes.Clone(b.history), ch, input, nil
}
