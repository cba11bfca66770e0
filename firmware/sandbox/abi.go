package sandbox

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tetratelabs/wazero/api"
)

// The host ABI of docs/app-abi.md.
const (
	// ABIModule is the import module name of the Wasmbed host functions.
	ABIModule = "wasmbed"
	// MaxTelemetryNameLen is the longest telemetry name an app may record,
	// in bytes of UTF-8.
	MaxTelemetryNameLen = 64
	// MaxTelemetryNames is the most distinct names one telemetry batch may
	// hold.
	MaxTelemetryNames = 32

	exportMemory     = "memory"
	exportStart      = "_start"
	exportInitialize = "_initialize"
	exportTick       = "tick"
)

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
	f64 = api.ValueTypeF64
)

// signature is the type of a WebAssembly function.
type signature struct {
	params, results []api.ValueType
}

func (s signature) equal(o signature) bool {
	return slices.Equal(s.params, o.params) && slices.Equal(s.results, o.results)
}

func (s signature) String() string {
	return fmt.Sprintf("%s -> %s", typeList(s.params), typeList(s.results))
}

func typeList(ts []api.ValueType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = api.ValueTypeName(t)
	}
	return "(" + strings.Join(names, ", ") + ")"
}

// abiFunc is one host function of module "wasmbed".
type abiFunc struct {
	name       string
	params     []api.ValueType
	paramNames []string
	results    []api.ValueType
	usesMemory bool // reads the app's memory, so the app must export it
	impl       func(*App) api.GoModuleFunc
}

func (f abiFunc) signature() signature { return signature{params: f.params, results: f.results} }

// abiFuncs is the "wasmbed" module, in the order of docs/app-abi.md.
var abiFuncs = []abiFunc{
	{
		name: "log", params: []api.ValueType{i32, i32}, paramNames: []string{"ptr", "len"},
		usesMemory: true, impl: func(a *App) api.GoModuleFunc { return a.hostLog },
	},
	{
		name: "telemetry", params: []api.ValueType{i32, i32, f64}, paramNames: []string{"name_ptr", "name_len", "value"},
		usesMemory: true, impl: func(a *App) api.GoModuleFunc { return a.hostTelemetry },
	},
	{
		name: "now_ms", results: []api.ValueType{i64},
		impl: func(a *App) api.GoModuleFunc { return a.hostNowMS },
	},
	{
		name: "sleep_ms", params: []api.ValueType{i32}, paramNames: []string{"ms"},
		impl: func(a *App) api.GoModuleFunc { return a.hostSleepMS },
	},
}

func findABIFunc(name string) (abiFunc, bool) {
	for _, f := range abiFuncs {
		if f.name == name {
			return f, true
		}
	}
	return abiFunc{}, false
}

// readApp returns the app's bytes [ptr, ptr+n) or traps naming fn.
func readApp(mod api.Module, fn string, ptr, n uint32) []byte {
	mem := mod.Memory()
	if mem == nil {
		panic(fmt.Errorf("%s: module has no memory", fn))
	}
	b, ok := mem.Read(ptr, n)
	if !ok {
		panic(fmt.Errorf("%s: out of bounds memory access [%d, %d) of %d bytes", fn, ptr, uint64(ptr)+uint64(n), mem.Size()))
	}
	return b
}

// hostLog implements wasmbed.log(ptr, len): one console line.
func (a *App) hostLog(_ context.Context, mod api.Module, stack []uint64) {
	ptr, n := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	b := readApp(mod, "log", ptr, n)
	line := make([]byte, len(b)+1)
	copy(line, b)
	line[len(b)] = '\n'
	a.host.Console(a.name, line)
}

// hostTelemetry implements wasmbed.telemetry(name_ptr, name_len, value):
// one value in the current batch.
func (a *App) hostTelemetry(_ context.Context, mod api.Module, stack []uint64) {
	ptr, n := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	value := api.DecodeF64(stack[2])
	if n > MaxTelemetryNameLen {
		panic(fmt.Errorf("%w: name of %d bytes is over %d", ErrTelemetryLimit, n, MaxTelemetryNameLen))
	}
	b := readApp(mod, "telemetry", ptr, n)
	switch {
	case n == 0:
		panic(fmt.Errorf("telemetry: empty name"))
	case !utf8.Valid(b):
		panic(fmt.Errorf("telemetry: name %q is not UTF-8", b))
	}
	name := string(b)
	if _, ok := a.batch[name]; !ok && len(a.batch) >= MaxTelemetryNames {
		panic(fmt.Errorf("%w: more than %d names in one batch", ErrTelemetryLimit, MaxTelemetryNames))
	}
	a.batch[name] = value
}

// hostNowMS implements wasmbed.now_ms(): monotonic milliseconds since the
// app was started.
func (a *App) hostNowMS(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = api.EncodeI64(time.Since(a.started).Milliseconds())
}

// hostSleepMS implements wasmbed.sleep_ms(ms): sends the batch so far, then
// sleeps within the call's time limit.
func (a *App) hostSleepMS(ctx context.Context, _ api.Module, stack []uint64) {
	ms := api.DecodeI32(stack[0])
	a.flush()
	a.sleep(ctx, time.Duration(ms)*time.Millisecond)
}
