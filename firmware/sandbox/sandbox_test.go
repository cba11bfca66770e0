package sandbox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// waitLimit bounds every wait in these tests. It is a deadline against hangs,
// far above what any wait needs; no test asserts on elapsed time.
const waitLimit = 20 * time.Second

// recordingHost is a Host that keeps everything apps emit, for inspection.
type recordingHost struct {
	mu      sync.Mutex
	console map[string][]byte
	batches []telemetryBatch
}

type telemetryBatch struct {
	app    string
	at     time.Time
	values map[string]float64
}

func newRecordingHost() *recordingHost {
	return &recordingHost{console: make(map[string][]byte)}
}

func (h *recordingHost) Console(app string, p []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.console[app] = append(h.console[app], p...)
}

func (h *recordingHost) Telemetry(app string, at time.Time, values map[string]float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.batches = append(h.batches, telemetryBatch{app: app, at: at, values: values})
}

// consoleText returns everything app wrote to the console so far.
func (h *recordingHost) consoleText(app string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return string(h.console[app])
}

// telemetry returns the batches received so far, oldest first.
func (h *recordingHost) telemetry() []telemetryBatch {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]telemetryBatch(nil), h.batches...)
}

// discardHost is a Host that drops everything, for benchmarks.
type discardHost struct{}

func (discardHost) Console(string, []byte)                          {}
func (discardHost) Telemetry(string, time.Time, map[string]float64) {}

// loadApp reads a committed module from testdata/apps.
func loadApp(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "apps", name))
	if err != nil {
		tb.Fatalf("read app: %v", err)
	}
	return b
}

// startApp starts a committed module and stops it when the test ends.
func startApp(t *testing.T, file, app string, lim Limits, host Host) *App {
	t.Helper()
	a, err := Start(context.Background(), app, loadApp(t, file), lim, host)
	if err != nil {
		t.Fatalf("Start(%s) = %v, want nil", file, err)
	}
	t.Cleanup(a.Stop)
	return a
}

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitDone waits for the app to end, failing the test after waitLimit.
func waitDone(t *testing.T, a *App) {
	t.Helper()
	select {
	case <-a.Done():
	case <-time.After(waitLimit):
		t.Fatalf("app %s did not end", a.Name())
	}
}

// stopWithin calls Stop and fails the test when it has not returned within
// waitLimit.
func stopWithin(t *testing.T, a *App) {
	t.Helper()
	stopped := make(chan struct{})
	go func() {
		a.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(waitLimit):
		t.Fatalf("Stop of app %s did not return", a.Name())
	}
}

func TestHelloExits(t *testing.T) {
	host := newRecordingHost()
	a := startApp(t, "hello.wasm", "hello", Limits{}, host)
	waitDone(t, a)

	if err := a.Err(); err != nil {
		t.Errorf("Err() = %v, want nil", err)
	}
	if !a.Exited() {
		t.Errorf("Exited() = false, want true")
	}
	want := "hello from wasmbed\napp hello ran once and exits cleanly\n"
	if got := host.consoleText("hello"); got != want {
		t.Errorf("console = %q, want %q", got, want)
	}
	if got := host.telemetry(); len(got) != 0 {
		t.Errorf("telemetry = %v, want none", got)
	}
	a.Stop() // after the end: returns at once
}

func TestSensorTelemetry(t *testing.T) {
	tests := []struct {
		file    string
		names   []string
		logLine string
	}{
		{file: "sensor.wasm", names: []string{"temperature"}, logLine: "sensor v1 tick 5 (uptime "},
		{file: "sensor-v2.wasm", names: []string{"temperature", "humidity"}, logLine: "sensor v2 tick 5 (uptime "},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			host := newRecordingHost()
			a := startApp(t, tt.file, "sensor", Limits{Period: 10 * time.Millisecond}, host)

			waitFor(t, "6 telemetry batches and the tick 5 log line", func() bool {
				return len(host.telemetry()) >= 6 && strings.Contains(host.consoleText("sensor"), tt.logLine)
			})
			stopWithin(t, a)
			if err := a.Err(); err != nil {
				t.Errorf("Err() after Stop = %v, want nil", err)
			}
			if a.Exited() {
				t.Errorf("Exited() after Stop = true, want false")
			}

			var last time.Time
			for i, b := range host.telemetry() {
				n := float64(i + 1) // the tick counter of batch i
				want := map[string]float64{"temperature": 20 + float64(int(n)%10)*0.5}
				if len(tt.names) == 2 {
					want["humidity"] = 40 + float64(int(n)%7)*1.5
				}
				if b.app != "sensor" {
					t.Errorf("batch %d app = %q, want %q", i, b.app, "sensor")
				}
				if len(b.values) != len(want) {
					t.Errorf("batch %d = %v, want %v", i, b.values, want)
				}
				for name, v := range want {
					if got, ok := b.values[name]; !ok || got != v {
						t.Errorf("batch %d %s = %v (present %t), want %v", i, name, got, ok, v)
					}
				}
				if b.at.Before(last) {
					t.Errorf("batch %d at %v, before the previous batch at %v", i, b.at, last)
				}
				last = b.at
			}
		})
	}
}

func TestAppFailures(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		lim     Limits
		kinds   []error
		msg     string // exact Err().Error(); empty to check prefix only
		prefix  string
		console string
	}{
		{
			name:  "loop hits the time limit",
			file:  "loop.wasm",
			lim:   Limits{CallTimeout: 100 * time.Millisecond, Period: 10 * time.Millisecond},
			kinds: []error{ErrTimeLimit},
			msg:   "time limit: call exceeded 100ms",
		},
		{
			name:  "sleep past the time limit",
			file:  "sleep.wasm",
			lim:   Limits{CallTimeout: 100 * time.Millisecond},
			kinds: []error{ErrTimeLimit},
			msg:   "time limit: call exceeded 100ms",
		},
		{
			name:    "trap after a log line",
			file:    "trap.wasm",
			kinds:   []error{ErrTrap},
			msg:     "trap: wasm error: unreachable",
			console: "about to trap\n",
		},
		{
			name:   "telemetry name too long",
			file:   "longname.wasm",
			kinds:  []error{ErrTrap, ErrTelemetryLimit},
			prefix: "trap: telemetry limit: ",
		},
		{
			name:  "non-zero proc_exit",
			file:  "exit.wasm",
			kinds: []error{ErrExit},
			msg:   "exit: code 3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := newRecordingHost()
			a := startApp(t, tt.file, "app", tt.lim, host)
			waitDone(t, a)

			err := a.Err()
			if err == nil {
				t.Fatalf("Err() = nil, want %v", tt.kinds)
			}
			for _, kind := range tt.kinds {
				if !errors.Is(err, kind) {
					t.Errorf("errors.Is(%v, %v) = false, want true", err, kind)
				}
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("Err() = %q, want %q", err, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), tt.prefix) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Err() = %q, want one line starting with %q", err, tt.prefix)
			}
			if a.Exited() {
				t.Errorf("Exited() = true, want false")
			}
			if got := host.consoleText("app"); got != tt.console {
				t.Errorf("console = %q, want %q", got, tt.console)
			}
			stopWithin(t, a)
			if got := a.Err(); got != err {
				t.Errorf("Err() after Stop = %v, want %v", got, err)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	a := startApp(t, "exit.wasm", "exit", Limits{}, newRecordingHost())
	waitDone(t, a)
	var exitErr *sys.ExitError
	if !errors.As(a.Err(), &exitErr) || exitErr.ExitCode() != 3 {
		t.Errorf("Err() = %v, want a *sys.ExitError with code 3", a.Err())
	}
}

func TestStopInterrupts(t *testing.T) {
	t.Run("sleep", func(t *testing.T) {
		host := newRecordingHost()
		a := startApp(t, "sleep.wasm", "sleeper", Limits{CallTimeout: time.Hour}, host)
		// sleep_ms sends the batch before it sleeps: once it is here, the app
		// is inside its 60 s sleep.
		waitFor(t, "the batch sent before sleeping", func() bool { return len(host.telemetry()) == 1 })
		if got := host.telemetry()[0].values; len(got) != 1 || got["sleeping"] != 1 {
			t.Errorf("telemetry = %v, want sleeping=1", got)
		}
		stopWithin(t, a)
		if err := a.Err(); err != nil || a.Exited() {
			t.Errorf("after Stop: Err() = %v, Exited() = %t, want nil, false", err, a.Exited())
		}
	})
	t.Run("infinite loop", func(t *testing.T) {
		a := startApp(t, "loop.wasm", "looper", Limits{CallTimeout: time.Hour, Period: time.Millisecond}, newRecordingHost())
		// loop.wasm emits nothing to wait for; with a 1 ms period this pause
		// lets its first tick start (the test holds either way).
		time.Sleep(50 * time.Millisecond)
		stopWithin(t, a)
		if err := a.Err(); err != nil || a.Exited() {
			t.Errorf("after Stop: Err() = %v, Exited() = %t, want nil, false", err, a.Exited())
		}
	})
	t.Run("concurrent and repeated", func(t *testing.T) {
		a := startApp(t, "sensor.wasm", "sensor", Limits{Period: time.Millisecond}, newRecordingHost())
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(a.Stop)
		}
		wg.Wait()
		stopWithin(t, a)
		select {
		case <-a.Done():
		default:
			t.Errorf("Done() is open after Stop returned")
		}
	})
}

func TestMemoryGrowStopsAtLimit(t *testing.T) {
	host := newRecordingHost()
	a := startApp(t, "grow.wasm", "grow", Limits{MemoryPages: 3, Period: 10 * time.Millisecond}, host)
	waitFor(t, "a failed memory.grow", func() bool {
		b := host.telemetry()
		return len(b) > 0 && b[len(b)-1].values["grow"] == -1
	})
	stopWithin(t, a)
	want := []map[string]float64{
		{"grow": 1, "pages": 2},
		{"grow": 2, "pages": 3},
		{"grow": -1, "pages": 3},
	}
	got := host.telemetry()
	if len(got) < len(want) {
		t.Fatalf("got %d batches, want at least %d", len(got), len(want))
	}
	for i, w := range want {
		if g := got[i].values; g["grow"] != w["grow"] || g["pages"] != w["pages"] {
			t.Errorf("batch %d = %v, want %v", i, g, w)
		}
	}
	if err := a.Err(); err != nil {
		t.Errorf("Err() = %v, want nil", err)
	}
}

// hostCall is one call of a wasmbed host function with its arguments.
type hostCall struct {
	fn    string // "log" or "telemetry"
	text  string // written to the app's memory and passed as ptr, len
	value float64
	ptr   uint32 // overrides where text is read from when non-zero
}

func TestHostFunctions(t *testing.T) {
	names := func(n int) []hostCall {
		var calls []hostCall
		for i := range n {
			calls = append(calls, hostCall{fn: "telemetry", text: fmt.Sprintf("v%02d", i), value: float64(i)})
		}
		return calls
	}
	tests := []struct {
		name      string
		calls     []hostCall
		trap      string // substring of the panic; empty for none
		telemetry map[string]float64
		console   string
	}{
		{
			name:      "later value replaces earlier",
			calls:     []hostCall{{fn: "telemetry", text: "t", value: 1}, {fn: "telemetry", text: "u", value: 2}, {fn: "telemetry", text: "t", value: 3}},
			telemetry: map[string]float64{"t": 3, "u": 2},
		},
		{name: "32 names fit", calls: names(32), telemetry: func() map[string]float64 {
			m := make(map[string]float64)
			for i := range 32 {
				m[fmt.Sprintf("v%02d", i)] = float64(i)
			}
			return m
		}()},
		{name: "33 names trap", calls: names(33), trap: "telemetry limit: more than 32 names in one batch"},
		{name: "64-byte name fits", calls: []hostCall{{fn: "telemetry", text: strings.Repeat("n", 64), value: 1}}, telemetry: map[string]float64{strings.Repeat("n", 64): 1}},
		{name: "65-byte name traps", calls: []hostCall{{fn: "telemetry", text: strings.Repeat("n", 65)}}, trap: "telemetry limit: name of 65 bytes is over 64"},
		{name: "empty name traps", calls: []hostCall{{fn: "telemetry", text: ""}}, trap: "telemetry: empty name"},
		{name: "invalid UTF-8 name traps", calls: []hostCall{{fn: "telemetry", text: "\xff"}}, trap: "is not UTF-8"},
		{name: "name out of bounds traps", calls: []hostCall{{fn: "telemetry", text: "t", ptr: 65535 + 1}}, trap: "telemetry: out of bounds memory access"},
		{name: "log line", calls: []hostCall{{fn: "log", text: "one"}, {fn: "log", text: ""}}, console: "one\n\n"},
		{name: "log out of bounds traps", calls: []hostCall{{fn: "log", text: "xy", ptr: 65535}}, trap: "log: out of bounds memory access [65535, 65537) of 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			host := newRecordingHost()
			a, err := newApp(ctx, "host", loadApp(t, "trap.wasm"), Limits{}, host)
			if err != nil {
				t.Fatalf("newApp() = %v", err)
			}
			defer a.rt.Close(ctx)

			var trap any
			func() {
				defer func() { trap = recover() }()
				for _, c := range tt.calls {
					ptr := uint32(1024)
					if c.ptr != 0 {
						ptr = c.ptr
					} else if !a.mod.Memory().Write(ptr, []byte(c.text)) {
						t.Fatalf("write %q to memory", c.text)
					}
					stack := []uint64{uint64(ptr), uint64(len(c.text)), api.EncodeF64(c.value)}
					switch c.fn {
					case "log":
						a.hostLog(ctx, a.mod, stack)
					case "telemetry":
						a.hostTelemetry(ctx, a.mod, stack)
					}
				}
			}()
			a.flush()

			switch {
			case tt.trap == "" && trap != nil:
				t.Fatalf("trap %v, want none", trap)
			case tt.trap != "":
				if err, ok := trap.(error); !ok || !strings.Contains(err.Error(), tt.trap) {
					t.Fatalf("trap %v, want one containing %q", trap, tt.trap)
				}
				return
			}
			batches := host.telemetry()
			if tt.telemetry == nil && len(batches) != 0 {
				t.Errorf("telemetry = %v, want none", batches)
			}
			if tt.telemetry != nil && (len(batches) != 1 || !maps.Equal(batches[0].values, tt.telemetry)) {
				t.Errorf("telemetry = %v, want one batch %v", batches, tt.telemetry)
			}
			if got := host.consoleText("host"); got != tt.console {
				t.Errorf("console = %q, want %q", got, tt.console)
			}
		})
	}
}

// Modules assembled here because they exist only to be refused.
const (
	// (module (import "wasmbed" "log" (func $log))
	//   (func (export "tick") (call $log)))
	wrongSignatureWasm = "\x00asm\x01\x00\x00\x00" +
		"\x01\x04\x01\x60\x00\x00" +
		"\x02\x0f\x01\x07wasmbed\x03log\x00\x00" +
		"\x03\x02\x01\x00" +
		"\x07\x08\x01\x04tick\x00\x01" +
		"\x0a\x06\x01\x04\x00\x10\x00\x0b"
	// (module (import "wasmbed" "log" (func $log (param i32 i32)))
	//   (memory 1)
	//   (func (export "tick") (call $log (i32.const 0) (i32.const 0))))
	unexportedMemoryWasm = "\x00asm\x01\x00\x00\x00" +
		"\x01\x09\x02\x60\x02\x7f\x7f\x00\x60\x00\x00" +
		"\x02\x0f\x01\x07wasmbed\x03log\x00\x00" +
		"\x03\x02\x01\x01" +
		"\x05\x03\x01\x00\x01" +
		"\x07\x08\x01\x04tick\x00\x01" +
		"\x0a\x0a\x01\x08\x00\x41\x00\x41\x00\x10\x00\x0b"
	// (module)
	emptyModuleWasm = "\x00asm\x01\x00\x00\x00"
	// (module (func (export "tick")))
	tickOnlyWasm = emptyModuleWasm +
		"\x01\x04\x01\x60\x00\x00" +
		"\x03\x02\x01\x00" +
		"\x07\x08\x01\x04tick\x00\x00" +
		"\x0a\x04\x01\x02\x00\x0b"
	// (module (table 1 funcref) (func (export "tick")))
	unboundedTableWasm = emptyModuleWasm +
		"\x01\x04\x01\x60\x00\x00" +
		"\x03\x02\x01\x00" +
		"\x04\x04\x01\x70\x00\x01" +
		"\x07\x08\x01\x04tick\x00\x00" +
		"\x0a\x04\x01\x02\x00\x0b"
	// (module (table 1 70000 funcref) (func (export "tick")))
	bigTableWasm = emptyModuleWasm +
		"\x01\x04\x01\x60\x00\x00" +
		"\x03\x02\x01\x00" +
		"\x04\x07\x01\x70\x01\x01\xf0\xa2\x04" +
		"\x07\x08\x01\x04tick\x00\x00" +
		"\x0a\x04\x01\x02\x00\x0b"
	// tickOnlyWasm whose tick declares 2^32-1 locals of type i32.
	manyLocalsWasm = emptyModuleWasm +
		"\x01\x04\x01\x60\x00\x00" +
		"\x03\x02\x01\x00" +
		"\x07\x08\x01\x04tick\x00\x00" +
		"\x0a\x0a\x01\x08\x01\xff\xff\xff\xff\x0f\x7f\x0b"
	// A data section claiming 2^32-1 segments in 5 bytes; wazero alone
	// would try to allocate them all.
	hugeDataCountWasm = emptyModuleWasm + "\x0b\x05\xff\xff\xff\xff\x0f"
	// Two functions, the second of type 5 where only type 0 exists, the
	// first calling it; wazero's validator alone panics on it.
	badTypeIndexWasm = emptyModuleWasm +
		"\x01\x04\x01\x60\x00\x00" +
		"\x03\x03\x02\x00\x05" +
		"\x07\x08\x01\x04tick\x00\x00" +
		"\x0a\x09\x02\x04\x00\x10\x01\x0b\x02\x00\x0b"
	// tickOnlyWasm with custom sections: a plain one, then a "name" section
	// whose function-name map claims 2^32-1 entries.
	customSectionsWasm = tickOnlyWasm +
		"\x00\x05\x04note" +
		"\x00\x0d\x04name\x01\x06\xff\xff\xff\xff\x0f\x00"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		wasm    []byte
		lim     Limits
		wantErr string // substring of the error; empty means valid
	}{
		{name: "hello", wasm: loadApp(t, "hello.wasm")},
		{name: "sensor", wasm: loadApp(t, "sensor.wasm")},
		{name: "sensor-v2", wasm: loadApp(t, "sensor-v2.wasm")},
		{name: "loop", wasm: loadApp(t, "loop.wasm")},
		{name: "trap", wasm: loadApp(t, "trap.wasm")},
		{name: "sleep", wasm: loadApp(t, "sleep.wasm")},
		{name: "grow", wasm: loadApp(t, "grow.wasm")},
		{name: "exit", wasm: loadApp(t, "exit.wasm")},
		{name: "bigmem under a raised limit", wasm: loadApp(t, "bigmem.wasm"), lim: Limits{MemoryPages: 17}},
		{
			name: "bigmem", wasm: loadApp(t, "bigmem.wasm"),
			wantErr: "invalid module: declares a minimum of 17 memory pages (1088 KiB), over the limit of 16 pages (1024 KiB)",
		},
		{
			name: "hello under a 1-page limit", wasm: loadApp(t, "hello.wasm"), lim: Limits{MemoryPages: 1},
			wantErr: "over the limit of 1 pages",
		},
		{
			name: "unknown import", wasm: loadApp(t, "badimport.wasm"),
			wantErr: "invalid module: imports wasmbed.reboot, which the host ABI does not provide",
		},
		{
			name: "wrong import signature", wasm: []byte(wrongSignatureWasm),
			wantErr: "invalid module: imports wasmbed.log as () -> (), want (i32, i32) -> ()",
		},
		{
			name: "memory not exported", wasm: []byte(unexportedMemoryWasm),
			wantErr: `invalid module: imports wasmbed.log but exports no memory named "memory"`,
		},
		{name: "no entry point", wasm: []byte(emptyModuleWasm), wantErr: "invalid module: exports neither _start nor tick"},
		{name: "custom sections ignored", wasm: []byte(customSectionsWasm)},
		{name: "not wasm", wasm: []byte("#!/bin/sh\necho hello\n"), wantErr: "invalid module: not WebAssembly"},
		{name: "empty", wasm: nil, wantErr: "invalid module: not WebAssembly"},
		{name: "truncated", wasm: loadApp(t, "sensor.wasm")[:100], wantErr: "invalid module: "},
		{
			name: "huge data count", wasm: []byte(hugeDataCountWasm),
			wantErr: "invalid module: data section: data segment count 4294967295 is over the 0 bytes left",
		},
		{
			name: "too many locals", wasm: []byte(manyLocalsWasm),
			wantErr: "invalid module: code section: function body 0: local declaration 0: 4294967295 locals or more, over 50000",
		},
		{
			name: "function type out of range", wasm: []byte(badTypeIndexWasm),
			wantErr: "invalid module: function section: function 1: type index 5 is over the 1 types",
		},
		{name: "table without maximum", wasm: []byte(unboundedTableWasm), wantErr: "a table declares no maximum size"},
		{name: "table over the limit", wasm: []byte(bigTableWasm), wantErr: "tables allow 70000 elements or more in all, over the limit of 65536"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(context.Background(), tt.wasm, tt.lim)
			checkInvalid(t, "Validate", err, tt.wantErr)

			a, err := Start(context.Background(), "app", tt.wasm, tt.lim, newRecordingHost())
			if err == nil {
				a.Stop()
			}
			if tt.wantErr != "" {
				checkInvalid(t, "Start", err, tt.wantErr)
			} else if err != nil {
				t.Errorf("Start() = %v, want nil", err)
			}
		})
	}
}

// checkInvalid checks err against a wanted ErrInvalidModule message part.
func checkInvalid(t *testing.T, op string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s() = %v, want nil", op, err)
	case want == "":
	case !errors.Is(err, ErrInvalidModule):
		t.Errorf("%s() = %v, want an error wrapping ErrInvalidModule", op, err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("%s() = %q, want it to contain %q", op, err, want)
	}
}

func TestStartArguments(t *testing.T) {
	tests := []struct {
		name string
		lim  Limits
		host Host
	}{
		{name: "nil host", host: nil},
		{name: "negative call timeout", lim: Limits{CallTimeout: -time.Second}, host: newRecordingHost()},
		{name: "negative period", lim: Limits{Period: -time.Second}, host: newRecordingHost()},
		{name: "memory over 4 GiB", lim: Limits{MemoryPages: MaxMemoryPages + 1}, host: newRecordingHost()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Start(context.Background(), "app", loadApp(t, "sensor.wasm"), tt.lim, tt.host)
			if err == nil {
				a.Stop()
				t.Fatalf("Start() = nil error, want one")
			}
			if errors.Is(err, ErrInvalidModule) {
				t.Errorf("Start() = %v, want an error not wrapping ErrInvalidModule", err)
			}
		})
	}
}

func TestLimitsWithDefaults(t *testing.T) {
	tests := []struct {
		in, want Limits
	}{
		{in: Limits{}, want: Limits{MemoryPages: 16, CallTimeout: 5 * time.Second, Period: time.Second}},
		{
			in:   Limits{MemoryPages: 2, CallTimeout: time.Millisecond, Period: time.Minute},
			want: Limits{MemoryPages: 2, CallTimeout: time.Millisecond, Period: time.Minute},
		},
	}
	for _, tt := range tests {
		got, err := tt.in.WithDefaults()
		if err != nil || got != tt.want {
			t.Errorf("%+v.WithDefaults() = %+v, %v, want %+v, nil", tt.in, got, err, tt.want)
		}
	}
}

func TestPreflight(t *testing.T) {
	tests := []struct {
		name    string
		wasm    []byte
		want    binaryFacts // binary not compared
		wantLen int         // length of the binary to compile
		wantErr string
	}{
		{name: "empty module", wasm: []byte(emptyModuleWasm), wantLen: 8},
		{name: "bigmem", wasm: loadApp(t, "bigmem.wasm"), want: binaryFacts{hasMemory: true, memoryMin: 17}, wantLen: 48},
		{name: "trap", wasm: loadApp(t, "trap.wasm"), want: binaryFacts{imports: 1, hasMemory: true, memoryMin: 1}, wantLen: 100},
		{name: "hello", wasm: loadApp(t, "hello.wasm"), want: binaryFacts{imports: 7, hasMemory: true, memoryMin: 2}, wantLen: len(loadApp(t, "hello.wasm"))},
		{name: "custom sections dropped", wasm: []byte(customSectionsWasm), wantLen: len(tickOnlyWasm)},
		{name: "empty", wasm: nil, wantErr: "not WebAssembly"},
		{name: "version 2", wasm: []byte("\x00asm\x02\x00\x00\x00"), wantErr: "unsupported binary format version 02 00 00 00"},
		{name: "section past the end", wasm: []byte(emptyModuleWasm + "\x01\x05\x00"), wantErr: "type section: size 5 is over the 1 bytes left"},
		{name: "oversized leb", wasm: []byte(emptyModuleWasm + "\x01\xff\xff\xff\xff\x7f"), wantErr: "type section: LEB128 number over 32 bits"},
		{name: "memory section cut", wasm: []byte(emptyModuleWasm + "\x05\x02\x01\x00"), wantErr: "memory section: memory 0: unexpected end"},
		{name: "unknown section", wasm: []byte(emptyModuleWasm + "\x20\x00"), wantErr: "section 32: unknown section id"},
		{name: "import name too long", wasm: []byte(emptyModuleWasm + "\x02\x03\x01\x7f\x00"), wantErr: "import module name of 127 bytes is over the 1 bytes left"},
		{name: "huge data count", wasm: []byte(hugeDataCountWasm), wantErr: "data segment count 4294967295 is over the 0 bytes left"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := preflight(tt.wasm)
			switch {
			case tt.wantErr != "":
				if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("preflight() = %v, want an invalid module error containing %q", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("preflight() = %v, want nil", err)
			default:
				if len(got.binary) != tt.wantLen {
					t.Errorf("preflight() binary of %d bytes, want %d", len(got.binary), tt.wantLen)
				}
				if got.imports != tt.want.imports || got.hasMemory != tt.want.hasMemory || got.memoryMin != tt.want.memoryMin {
					t.Errorf("preflight() = %+v, want %+v", got, tt.want)
				}
			}
		})
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	host := newRecordingHost()
	var apps []*App
	for _, file := range []string{"hello.wasm", "sensor.wasm", "loop.wasm", "sleep.wasm", "trap.wasm"} {
		a, err := Start(context.Background(), file, loadApp(t, file), Limits{Period: time.Millisecond}, host)
		if err != nil {
			t.Fatalf("Start(%s) = %v", file, err)
		}
		apps = append(apps, a)
	}
	waitFor(t, "the sleep app's batch", func() bool {
		for _, b := range host.telemetry() {
			if b.app == "sleep.wasm" {
				return true
			}
		}
		return false
	})
	for _, a := range apps {
		stopWithin(t, a)
	}
	waitFor(t, "goroutines to return to the count before Start", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

func FuzzValidate(f *testing.F) {
	for _, name := range []string{"hello.wasm", "sensor.wasm", "trap.wasm", "bigmem.wasm", "badimport.wasm"} {
		f.Add(loadApp(f, name))
	}
	f.Add([]byte(wrongSignatureWasm))
	f.Add([]byte(emptyModuleWasm))
	f.Add([]byte(customSectionsWasm))
	f.Add([]byte(bigTableWasm))
	f.Add([]byte(hugeDataCountWasm))
	f.Add([]byte(badTypeIndexWasm))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		err := Validate(context.Background(), wasm, Limits{})
		if err != nil && !errors.Is(err, ErrInvalidModule) {
			t.Errorf("Validate() = %v, want nil or ErrInvalidModule", err)
		}
		if err != nil {
			return
		}
		// A module Validate accepts passed preflight within the limit.
		if facts, err := preflight(wasm); err != nil || facts.memoryMin > DefaultMemoryPages {
			t.Errorf("preflight() of a valid module = %+v, %v", facts, err)
		}
	})
}

func BenchmarkStartStop(b *testing.B) {
	wasm := loadApp(b, "sensor.wasm")
	ctx := context.Background()
	for b.Loop() {
		a, err := Start(ctx, "sensor", wasm, Limits{}, discardHost{})
		if err != nil {
			b.Fatal(err)
		}
		a.Stop()
	}
}

func BenchmarkTick(b *testing.B) {
	ctx := context.Background()
	a, err := newApp(ctx, "sensor", loadApp(b, "sensor.wasm"), Limits{}, discardHost{})
	if err != nil {
		b.Fatal(err)
	}
	defer a.rt.Close(ctx)
	tick := a.mod.ExportedFunction(exportTick)
	for b.Loop() {
		if end := a.call(ctx, tick); end != nil {
			b.Fatalf("tick ended the app: %v", end.err)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	wasm := loadApp(b, "hello.wasm")
	for b.Loop() {
		if err := Validate(context.Background(), wasm, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStartSectionTimeLimit: a start section that never returns is cut at
// the app's time limit and reported as such, not as an invalid module.
func TestStartSectionTimeLimit(t *testing.T) {
	_, err := Start(context.Background(), "stuck", loadApp(t, "startloop.wasm"),
		Limits{CallTimeout: 100 * time.Millisecond}, newRecordingHost())
	if !errors.Is(err, ErrTimeLimit) || errors.Is(err, ErrInvalidModule) || !strings.HasSuffix(err.Error(), "time limit: the start section ran past 100ms") {
		t.Fatalf("Start = %v, want time limit: the start section ran past 100ms", err)
	}
}
