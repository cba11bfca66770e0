package mcu_test

// Tests of the C WebAssembly interpreter (firmware/mcu/wasm): they build its
// host runner, wasmrun, with the host gcc and compare what it does with
// what wazero does with the same modules, the same host functions and the
// same fake clock.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"wasmbed.io/wasmbed/firmware/sandbox"
)

const (
	appsDir = "../../testdata/apps"
	// testTicks is how many times the differential runs call tick: enough
	// for sensor's 5th-tick log and for grow to reach its 16-page limit.
	testTicks = 20
	// wazeroBudget stops a looping call on the wazero side, where the C
	// side uses fuel. Only an endless loop ever reaches it.
	wazeroBudget = 200 * time.Millisecond
	// invokeHang only guards the invoke tests against a hang: none of their
	// calls loops, so no call may stop on it, however loaded the machine.
	invokeHang = time.Minute
)

var cSources = []string{"wasm/host/wasmrun.c", "wasm/load.c", "wasm/exec.c", "wasm/abi.c"}

// wasmruns caches the runner builds of one test process: the tests share
// them while any of them runs, and the last one to finish removes them.
var wasmruns struct {
	sync.Mutex
	users int
	dir   string
	bins  map[bool]string
}

// buildWasmrun returns the runner compiled by the host gcc: with the
// address and undefined-behaviour sanitizers for tests, without for
// benchmarks. It skips the test when there is no gcc.
func buildWasmrun(tb testing.TB, sanitize bool) string {
	tb.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		tb.Skip("gcc not found: the C interpreter tests build firmware/mcu/wasm with the host C compiler (CI installs it)")
	}
	c := &wasmruns
	c.Lock()
	defer c.Unlock()
	if c.users == 0 {
		if c.dir, err = os.MkdirTemp("", "wasmrun-test-"); err != nil {
			tb.Fatal(err)
		}
		c.bins = make(map[bool]string)
	}
	c.users++
	tb.Cleanup(func() {
		c.Lock()
		defer c.Unlock()
		if c.users--; c.users == 0 {
			os.RemoveAll(c.dir)
		}
	})
	if bin, ok := c.bins[sanitize]; ok {
		return bin
	}
	bin := compileWasmrun(tb, gcc, c.dir, sanitize)
	c.bins[sanitize] = bin
	return bin
}

func compileWasmrun(tb testing.TB, gcc, dir string, sanitize bool) string {
	name := "wasmrun"
	args := []string{"-std=c11", "-Wall", "-Wextra", "-Werror", "-O2"}
	if sanitize {
		name += "-sanitized"
		args = append(args, "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer")
	}
	out := filepath.Join(dir, name)
	args = append(args, "-o", out)
	args = append(args, cSources...)
	if msg, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		tb.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
	if sanitize {
		// Where the sanitizers cannot run (some sandboxes forbid what
		// they need), test without them rather than not at all.
		var stderr bytes.Buffer
		probe := exec.Command(out, "-mutate", "1", out)
		probe.Stderr = &stderr
		if err := probe.Run(); err != nil || stderr.Len() > 0 {
			tb.Logf("the sanitizers do not run here (%v: %s); testing without them", err, stderr.String())
			return compileWasmrun(tb, gcc, dir, false)
		}
	}
	return out
}

// runC runs the runner and returns its standard output. Any exit status
// but 0, or anything on standard error (a sanitizer report), fails the test.
func runC(tb testing.TB, bin string, args ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil || stderr.Len() > 0 {
		tb.Fatalf("wasmrun %s: %v\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String()
}

// wat compiles WebAssembly text with wabt's wat2wasm; check false keeps
// invalid modules (--no-check).
func wat(tb testing.TB, src string, check bool) []byte {
	tb.Helper()
	bin, err := exec.LookPath("wat2wasm")
	if err != nil {
		tb.Skip("wat2wasm not found: these tests compile WebAssembly text with wabt (CI installs it)")
	}
	dir := tb.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o600); err != nil {
		tb.Fatal(err)
	}
	args := []string{in, "-o", out}
	if !check {
		args = append(args, "--no-check")
	}
	if msg, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		tb.Fatalf("wat2wasm: %v\n%s\n%s", err, msg, src)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func writeTemp(tb testing.TB, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

var fuelLine = regexp.MustCompile(`^end failed: fuel exhausted \(\d+ units\)$`)

// traceLines returns the trace lines of a run, without informational
// lines, with the engine-specific details of refusals and budget stops
// reduced to their kind.
func traceLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "#"):
			continue
		case strings.HasPrefix(l, "end refused: "):
			l = "end refused"
		case fuelLine.MatchString(l):
			l = "end failed: budget"
		}
		lines = append(lines, l)
	}
	return lines
}

// ---- the wazero side ----

type telemetryValue struct {
	name  string
	value float64
}

// goHost is the Go twin of wasmrun's host: the ABI's host functions with
// the same trace lines, telemetry batches and fake clock.
type goHost struct {
	name      string
	out       strings.Builder
	console   bytes.Buffer // bytes written to fd 1
	now       int64
	callStart int64
	callMS    int64
	timedOut  bool
	batch     []telemetryValue
	closedFDs uint32
	exitCode  int32
	exited    bool
	random    uint64
}

func newGoHost(name string) *goHost {
	return &goHost{name: name, callMS: 5000, random: 0x9e3779b97f4a7c15}
}

// quote formats bytes as wasmrun's put_quoted does.
func quote(b []byte) string {
	var s strings.Builder
	s.WriteByte('"')
	for _, c := range b {
		switch {
		case c == '"':
			s.WriteString(`\"`)
		case c == '\\':
			s.WriteString(`\\`)
		case c == '\n':
			s.WriteString(`\n`)
		case c == '\t':
			s.WriteString(`\t`)
		case c >= 0x20 && c < 0x7f:
			s.WriteByte(c)
		default:
			fmt.Fprintf(&s, `\x%02x`, c)
		}
	}
	s.WriteByte('"')
	return s.String()
}

func formatFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return fmt.Sprintf("%.17g", v)
}

func (h *goHost) printf(format string, args ...any) { fmt.Fprintf(&h.out, format, args...) }

func (h *goHost) flush() {
	if len(h.batch) == 0 {
		return
	}
	h.printf("send at=%d", h.now)
	for _, v := range h.batch {
		h.printf(" %s=%s", v.name, formatFloat(v.value))
	}
	h.printf("\n")
	h.batch = h.batch[:0]
}

func (h *goHost) trapRange(mod api.Module, fn string, ptr, n uint32) {
	panic(fmt.Errorf("%s: out of bounds memory access [%d, %d) of %d bytes", fn, ptr, uint64(ptr)+uint64(n), mod.Memory().Size()))
}

func (h *goHost) log(_ context.Context, mod api.Module, stack []uint64) {
	ptr, n := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		h.trapRange(mod, "log", ptr, n)
	}
	h.printf("log %s\n", quote(b))
}

func (h *goHost) telemetry(_ context.Context, mod api.Module, stack []uint64) {
	ptr, n := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	v := api.DecodeF64(stack[2])
	if n > 64 {
		panic(fmt.Errorf("telemetry limit: name of %d bytes is over 64", n))
	}
	b, ok := mod.Memory().Read(ptr, n)
	switch {
	case !ok:
		h.trapRange(mod, "telemetry", ptr, n)
	case n == 0:
		panic(errors.New("telemetry: empty name"))
	case !utf8.Valid(b):
		panic(errors.New("telemetry: name is not UTF-8"))
	}
	h.printf("telemetry %s %s\n", quote(b), formatFloat(v))
	for i := range h.batch {
		if h.batch[i].name == string(b) {
			h.batch[i].value = v
			return
		}
	}
	if len(h.batch) == 32 {
		panic(errors.New("telemetry limit: more than 32 names in one batch"))
	}
	h.batch = append(h.batch, telemetryValue{string(b), v})
}

func (h *goHost) nowMS(_ context.Context, _ api.Module, stack []uint64) {
	h.printf("now_ms %d\n", h.now)
	stack[0] = uint64(h.now)
}

func (h *goHost) sleepMS(_ context.Context, _ api.Module, stack []uint64) {
	ms := int64(api.DecodeI32(stack[0]))
	h.printf("sleep_ms %d\n", ms)
	h.flush()
	if ms <= 0 {
		return
	}
	if deadline := h.callStart + h.callMS; h.now+ms > deadline {
		h.now = deadline
		h.timedOut = true
		panic(fmt.Errorf("time limit: call exceeded %s", time.Duration(h.callMS)*time.Millisecond))
	}
	h.now += ms
}

// WASI errno values.
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoFault   = 21
	errnoInval   = 28
	errnoNosys   = 52
)

func (h *goHost) stdioOpen(fd uint32) bool { return fd <= 2 && h.closedFDs&(1<<fd) == 0 }

// wasi returns the WASI functions of firmware/mcu/wasm/abi.c, by name, with
// their signatures.
func (h *goHost) wasi() map[string]struct {
	fn      func(mod api.Module, s []uint64) uint32
	params  []api.ValueType
	results []api.ValueType
} {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	type fn = struct {
		fn      func(mod api.Module, s []uint64) uint32
		params  []api.ValueType
		results []api.ValueType
	}
	ret := []api.ValueType{i32}
	put32 := func(mod api.Module, ptr, v uint32) bool { return mod.Memory().WriteUint32Le(ptr, v) }
	return map[string]fn{
		"args_get": {func(mod api.Module, s []uint64) uint32 {
			argv, buf := uint32(s[0]), uint32(s[1])
			arg := append([]byte(h.name), 0)
			if _, ok := mod.Memory().Read(argv, 4); !ok {
				return errnoFault
			}
			if !mod.Memory().Write(buf, arg) {
				return errnoFault
			}
			put32(mod, argv, buf)
			return errnoSuccess
		}, []api.ValueType{i32, i32}, ret},
		"args_sizes_get": {func(mod api.Module, s []uint64) uint32 {
			if !put32(mod, uint32(s[0]), 1) || !put32(mod, uint32(s[1]), uint32(len(h.name)+1)) {
				return errnoFault
			}
			return errnoSuccess
		}, []api.ValueType{i32, i32}, ret},
		"environ_get": {func(mod api.Module, s []uint64) uint32 {
			_, ok1 := mod.Memory().Read(uint32(s[0]), 0)
			_, ok2 := mod.Memory().Read(uint32(s[1]), 0)
			if !ok1 || !ok2 {
				return errnoFault
			}
			return errnoSuccess
		}, []api.ValueType{i32, i32}, ret},
		"environ_sizes_get": {func(mod api.Module, s []uint64) uint32 {
			if !put32(mod, uint32(s[0]), 0) || !put32(mod, uint32(s[1]), 0) {
				return errnoFault
			}
			return errnoSuccess
		}, []api.ValueType{i32, i32}, ret},
		"clock_res_get": {func(mod api.Module, s []uint64) uint32 {
			if uint32(s[0]) > 1 {
				return errnoInval
			}
			if !mod.Memory().WriteUint64Le(uint32(s[1]), 1000000) {
				return errnoFault
			}
			return errnoSuccess
		}, []api.ValueType{i32, i32}, ret},
		"clock_time_get": {func(mod api.Module, s []uint64) uint32 {
			id := uint32(s[0])
			if id > 1 {
				return errnoInval
			}
			h.printf("clock_time_get %d %d\n", id, h.now*1000000)
			if !mod.Memory().WriteUint64Le(uint32(s[2]), uint64(h.now)*1000000) {
				return errnoFault
			}
			return errnoSuccess
		}, []api.ValueType{i32, i64, i32}, ret},
		"fd_close": {func(_ api.Module, s []uint64) uint32 {
			fd := uint32(s[0])
			if !h.stdioOpen(fd) {
				return errnoBadf
			}
			h.closedFDs |= 1 << fd
			return errnoSuccess
		}, []api.ValueType{i32}, ret},
		"fd_fdstat_get": {func(mod api.Module, s []uint64) uint32 {
			if _, ok := mod.Memory().Read(uint32(s[1]), 24); !ok {
				return errnoFault
			}
			if !h.stdioOpen(uint32(s[0])) {
				return errnoBadf
			}
			// A block device, so not a terminal, with the rights wazero
			// gives stdio.
			var st [24]byte
			st[0] = 1
			binary.LittleEndian.PutUint64(st[8:], 0x08e001ff)
			mod.Memory().Write(uint32(s[1]), st[:])
			return errnoSuccess
		}, []api.ValueType{i32, i32}, ret},
		"fd_prestat_get":      {func(api.Module, []uint64) uint32 { return errnoBadf }, []api.ValueType{i32, i32}, ret},
		"fd_prestat_dir_name": {func(api.Module, []uint64) uint32 { return errnoBadf }, []api.ValueType{i32, i32, i32}, ret},
		"fd_read": {func(mod api.Module, s []uint64) uint32 {
			fd := uint32(s[0])
			if !h.stdioOpen(fd) || fd != 0 {
				return errnoBadf
			}
			if _, ok := mod.Memory().Read(uint32(s[1]), uint32(s[2])*8); !ok || uint32(s[2]) > math.MaxUint32/8 {
				return errnoFault
			}
			if !put32(mod, uint32(s[3]), 0) {
				return errnoFault
			}
			return errnoSuccess
		}, []api.ValueType{i32, i32, i32, i32}, ret},
		"fd_seek": {func(_ api.Module, s []uint64) uint32 {
			if h.stdioOpen(uint32(s[0])) {
				return errnoNosys
			}
			return errnoBadf
		}, []api.ValueType{i32, i64, i32, i32}, ret},
		"fd_write": {func(mod api.Module, s []uint64) uint32 {
			fd, iovs, n := uint32(s[0]), uint32(s[1]), uint32(s[2])
			if !h.stdioOpen(fd) || fd == 0 {
				return errnoBadf
			}
			if n > math.MaxUint32/8 {
				return errnoFault
			}
			iov, ok := mod.Memory().Read(iovs, n*8)
			if !ok {
				return errnoFault
			}
			var total uint32
			for i := uint32(0); i < n; i++ {
				ptr, l := binary.LittleEndian.Uint32(iov[8*i:]), binary.LittleEndian.Uint32(iov[8*i+4:])
				b, ok := mod.Memory().Read(ptr, l)
				if !ok {
					return errnoFault
				}
				if l > 0 {
					h.printf("fd_write %d %s\n", fd, quote(b))
					if fd == 1 {
						h.console.Write(b)
					}
				}
				total += l
			}
			if !put32(mod, uint32(s[3]), total) {
				return errnoFault
			}
			return errnoSuccess
		}, []api.ValueType{i32, i32, i32, i32}, ret},
		"proc_exit": {func(_ api.Module, s []uint64) uint32 {
			h.exitCode, h.exited = int32(uint32(s[0])), true
			panic(sys.NewExitError(uint32(s[0])))
		}, []api.ValueType{i32}, nil},
		"random_get": {func(mod api.Module, s []uint64) uint32 {
			p, n := uint32(s[0]), uint32(s[1])
			if _, ok := mod.Memory().Read(p, n); !ok {
				return errnoFault
			}
			h.printf("random_get %d\n", n)
			b := make([]byte, n)
			for i := range b {
				h.random ^= h.random << 13
				h.random ^= h.random >> 7
				h.random ^= h.random << 17
				b[i] = byte(h.random)
			}
			mod.Memory().Write(p, b)
			return errnoSuccess
		}, []api.ValueType{i32, i32}, ret},
		"sched_yield": {func(api.Module, []uint64) uint32 { return errnoSuccess }, nil, ret},
	}
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func binaryPutUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// instantiateHosts adds the host modules "wasmbed" and
// "wasi_snapshot_preview1" of h to rt.
func (h *goHost) instantiateHosts(ctx context.Context, t testing.TB, rt wazero.Runtime) {
	i32, i64, f64 := api.ValueTypeI32, api.ValueTypeI64, api.ValueTypeF64
	b := rt.NewHostModuleBuilder("wasmbed")
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(h.log), []api.ValueType{i32, i32}, nil).Export("log")
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(h.telemetry), []api.ValueType{i32, i32, f64}, nil).Export("telemetry")
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(h.nowMS), nil, []api.ValueType{i64}).Export("now_ms")
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(h.sleepMS), []api.ValueType{i32}, nil).Export("sleep_ms")
	if _, err := b.Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	w := rt.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	for name, f := range h.wasi() {
		impl := f.fn
		w.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, mod api.Module, s []uint64) {
			e := impl(mod, s)
			if len(s) > 0 {
				s[0] = uint64(e)
			}
		}), f.params, f.results).Export(name)
	}
	if _, err := w.Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
}

// firstLine is an error message without wazero's stack trace.
func firstLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return strings.TrimSuffix(msg, " (recovered by wazero)")
}

// runWazero runs an app the way wasmrun does, with wazero: refused when
// firmware/sandbox refuses it, then _start or _initialize, then ticks.
func runWazero(t testing.TB, wasm []byte, name string, ticks int) *goHost {
	ctx := context.Background()
	h := newGoHost(name)
	if err := sandbox.Validate(ctx, wasm, sandbox.Limits{}); err != nil {
		h.printf("end refused: %v\n", err)
		return h
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithMemoryLimitPages(16).WithCloseOnContextDone(true))
	defer rt.Close(ctx)
	h.instantiateHosts(ctx, t, rt)
	// A start section runs during instantiation, under a budget as a call
	// does; the C interpreter refuses a module whose start section runs out
	// of it (the module never loads).
	ictx, icancel := context.WithTimeout(ctx, wazeroBudget)
	mod, err := rt.InstantiateWithConfig(ictx, wasm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	icancel()
	if err != nil {
		h.printf("end refused: %v\n", err)
		return h
	}
	call := func(fn string) (goOn bool) {
		h.printf("call %s\n", fn)
		h.callStart, h.timedOut = h.now, false
		callCtx, cancel := context.WithTimeout(ctx, wazeroBudget)
		defer cancel()
		_, err := mod.ExportedFunction(fn).Call(callCtx)
		h.flush()
		var exit *sys.ExitError
		switch {
		case err == nil:
			return true
		case h.exited && h.exitCode == 0:
			h.printf("end exited\n")
		case h.exited:
			h.printf("end failed: exit: code %d\n", h.exitCode)
		case errors.As(err, &exit):
			h.printf("end failed: budget\n")
		case h.timedOut:
			h.printf("end failed: %s\n", firstLine(err))
		default:
			h.printf("end failed: trap: %s\n", firstLine(err))
		}
		return false
	}
	for _, entry := range []string{"_start", "_initialize"} {
		if mod.ExportedFunction(entry) != nil {
			if !call(entry) {
				return h
			}
			break
		}
	}
	if mod.ExportedFunction("tick") == nil {
		h.printf("end exited\n")
		return h
	}
	for range ticks {
		h.now += 1000
		if !call("tick") {
			return h
		}
	}
	h.printf("end running\n")
	return h
}

// invokeWazero mirrors wasmrun -invoke: it calls exports with raw
// arguments and prints each result's bits or trap, with wazero's
// interpreter (whose call depth limit makes stack overflows quick).
func invokeWazero(t testing.TB, wasm []byte, specs []string) []string {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithMemoryLimitPages(16).WithCloseOnContextDone(true))
	defer rt.Close(ctx)
	h := newGoHost("invoke")
	h.instantiateHosts(ctx, t, rt)
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		t.Fatalf("wazero: %v", err)
	}
	var lines []string
	for _, spec := range specs {
		fields := strings.Fields(spec)
		fn := mod.ExportedFunction(fields[0])
		if fn == nil {
			lines = append(lines, fmt.Sprintf("invoke %s -> error: no such export", spec))
			continue
		}
		args := make([]uint64, len(fields)-1)
		for i, a := range fields[1:] {
			v, err := strconv.ParseUint(a, 0, 64)
			if err != nil {
				t.Fatalf("invoke %q: %v", spec, err)
			}
			if p := fn.Definition().ParamTypes()[i]; p == api.ValueTypeI32 || p == api.ValueTypeF32 {
				v = uint64(uint32(v))
			}
			args[i] = v
		}
		callCtx, cancel := context.WithTimeout(ctx, invokeHang)
		res, err := fn.Call(callCtx, args...)
		cancel()
		line := "invoke " + spec
		switch {
		case err != nil:
			line += " -> " + firstLine(err)
		case len(res) == 0:
			line += " ->"
		default:
			line += " -> " + formatBits(fn.Definition().ResultTypes()[0], res[0])
		}
		lines = append(lines, line)
	}
	return lines
}

func formatBits(t api.ValueType, v uint64) string {
	switch t {
	case api.ValueTypeI32:
		return fmt.Sprintf("i32 0x%08x", uint32(v))
	case api.ValueTypeF32:
		return fmt.Sprintf("f32 0x%08x", uint32(v))
	case api.ValueTypeI64:
		return fmt.Sprintf("i64 0x%016x", v)
	default:
		return fmt.Sprintf("f64 0x%016x", v)
	}
}

var nanResult = regexp.MustCompile(`-> (f32 0x[0-9a-f]{8}|f64 0x[0-9a-f]{16})$`)

// canonNaN rewrites NaN results to "nan": WebAssembly leaves the sign and
// payload of a NaN produced by arithmetic to the engine.
func canonNaN(line string) string {
	m := nanResult.FindStringSubmatchIndex(line)
	if m == nil {
		return line
	}
	bits, _ := strconv.ParseUint(line[m[2]+4:m[3]], 0, 64)
	isNaN := false
	if line[m[2]:m[2]+3] == "f32" {
		isNaN = math.IsNaN(float64(math.Float32frombits(uint32(bits))))
	} else {
		isNaN = math.IsNaN(math.Float64frombits(bits))
	}
	if isNaN {
		return line[:m[2]] + line[m[2]:m[2]+3] + " nan"
	}
	return line
}

// invokeC runs specs in wasmrun (one instance, like invokeWazero).
func invokeC(t testing.TB, bin string, wasm []byte, specs []string, flags ...string) []string {
	path := writeTemp(t, "m.wasm", wasm)
	list := writeTemp(t, "invoke.txt", []byte(strings.Join(specs, "\n")+"\n"))
	args := append(append([]string{}, flags...), "-invoke-file", list, path)
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(runC(t, bin, args...), "\n"), "\n") {
		if strings.HasPrefix(l, "end refused") {
			t.Fatalf("wasmrun refused the module: %s", l)
		}
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// compareInvokes runs specs in both engines and reports every difference.
func compareInvokes(t *testing.T, bin string, wasm []byte, specs []string) []string {
	t.Helper()
	got := invokeC(t, bin, wasm, specs)
	want := invokeWazero(t, wasm, specs)
	if len(got) != len(want) {
		t.Fatalf("wasmrun printed %d results, wazero %d", len(got), len(want))
	}
	bad := 0
	for i := range got {
		if canonNaN(got[i]) != canonNaN(want[i]) {
			if bad++; bad <= 20 {
				t.Errorf("C:      %s\nwazero: %s", got[i], want[i])
			}
		}
	}
	if bad > 20 {
		t.Errorf("... %d differences in all", bad)
	}
	return got
}

// ---- tests ----

// TestCWasmDifferential runs every sample app in the C interpreter and in
// wazero with identical host functions and fake clock, and compares the
// traces: host calls and their arguments, telemetry batches, console bytes,
// and how the app ended.
func TestCWasmDifferential(t *testing.T) {
	t.Parallel()
	bin := buildWasmrun(t, true)
	apps, err := filepath.Glob(filepath.Join(appsDir, "*.wasm"))
	if err != nil || len(apps) == 0 {
		t.Fatalf("no sample apps in %s: %v", appsDir, err)
	}
	// What each known app must show, beyond the two engines agreeing.
	expect := map[string][]string{
		"badimport": {"end refused"},
		"bigmem":    {"end refused"},
		"exit":      {"end failed: exit: code 3"},
		"grow":      {`telemetry "grow" 15`, `telemetry "grow" -1`, `telemetry "pages" 16`, "end running"},
		"hello":     {`fd_write 1 "hello from wasmbed"`, `fd_write 1 "app hello ran once and exits cleanly\n"`, "end exited"},
		"longname":  {"end failed: trap: telemetry limit: name of 65 bytes is over 64"},
		"loop":      {"end failed: budget"},
		"sensor":    {`telemetry "temperature" 20.5`, `log "sensor v1 tick 5 (uptime 5000 ms)"`, "send at=20000 temperature=20", "end running"},
		"sensor-v2": {`telemetry "humidity" 41.5`, `log "sensor v2 tick 10 (uptime 10000 ms)"`, "end running"},
		"sleep":     {"send at=0 sleeping=1", "end failed: time limit: call exceeded 5s"},
		"startloop": {"end refused"},
		"trap":      {`log "about to trap"`, "end failed: trap: wasm error: unreachable"},
	}
	for _, path := range apps {
		name := strings.TrimSuffix(filepath.Base(path), ".wasm")
		t.Run(name, func(t *testing.T) {
			wasm, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got := traceLines(runC(t, bin, "-ticks", strconv.Itoa(testTicks), path))
			h := runWazero(t, wasm, name, testTicks)
			want := traceLines(h.out.String())
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("traces differ\nC interpreter:\n%s\n\nwazero:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for _, line := range expect[name] {
				if !contains(got, line) {
					t.Errorf("the C trace has no line %q:\n%s", line, strings.Join(got, "\n"))
				}
			}
			if name == "hello" {
				// The console bytes also match wazero's own WASI.
				if real := runRealWASI(t, wasm, name); real != h.console.String() {
					t.Errorf("console with wazero's WASI = %q, with the ABI's = %q", real, h.console.String())
				}
			}
		})
	}
}

func contains(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

// runRealWASI runs a WASI command with wazero's wasi_snapshot_preview1 and
// returns its stdout.
func runRealWASI(t *testing.T, wasm []byte, name string) string {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	var out bytes.Buffer
	_, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName("").WithArgs(name).WithStdout(&out))
	var exit *sys.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 0) {
		t.Fatalf("wazero WASI run: %v", err)
	}
	return out.String()
}

// TestCWasmValidation feeds malformed and invalid modules to the C
// interpreter: each must be refused with the expected reason (and without a
// sanitizer report), and firmware/sandbox (wazero) must refuse it too.
func TestCWasmValidation(t *testing.T) {
	t.Parallel()
	bin := buildWasmrun(t, true)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(appsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hello, sensor := read("hello.wasm"), read("sensor.wasm")
	edit := func(b []byte, at int, v ...byte) []byte {
		c := bytes.Clone(b)
		copy(c[at:], v)
		return c
	}
	// tick wraps a function body into a module exporting it as tick.
	tick := func(body string, decls ...string) []byte {
		return wat(t, "(module "+strings.Join(decls, " ")+` (func (export "tick") `+body+"))", false)
	}
	// Instantiation must fail on a segment out of bounds (core spec 2.0,
	// 4.5.4), but wazero v1.12 instantiates this one anyway.
	wazeroAccepts := map[string]bool{"element out of bounds": true}
	cases := []struct {
		name string
		wasm []byte
		want string // part of the C reason
	}{
		{"empty", nil, "no \\0asm magic"},
		{"bad magic", edit(sensor, 0, 0, 'a', 's', 'n'), "no \\0asm magic"},
		{"bad version", edit(sensor, 4, 2), "version"},
		{"truncated", hello[:len(hello)/2], "larger than the bytes left"},
		{"truncated header", sensor[:9], "unexpected end"},
		{"section size past end", append(bytes.Clone(sensor[:8]), 1, 0x7f, 1, 0x60), "section size is larger than the bytes left"},
		{"LEB128 too long", append(bytes.Clone(sensor[:8]), 1, 0x86, 0x80, 0x80, 0x80, 0x80, 0x00), "integer representation too long"},
		{"unknown section", append(bytes.Clone(sensor[:8]), 14, 0), "unknown section id"},
		{"sections out of order", append(bytes.Clone(sensor[:8]), 3, 1, 0, 1, 1, 0), "out of order"},
		{"type mismatch", tick("(drop (i32.add (i32.const 1) (i64.const 2)))"), "type mismatch: expected i32, got i64"},
		{"stack underflow", tick("(drop (i32.add (i32.const 1)))"), "but the stack is empty"},
		{"values left at end", tick("(i32.const 1)"), "values remain"},
		{"wrong block result", tick("(drop (block (result i32) (f32.const 1)))"), "type mismatch"},
		{"if without else with a result", tick("(drop (if (result i32) (i32.const 1) (then (i32.const 2))))"), "if without else"},
		{"unknown local", tick("(drop (local.get 5))"), "unknown local"},
		{"unknown global", tick("(drop (global.get 3))"), "unknown global"},
		{"immutable global", tick("(global.set 0 (i32.const 1))", "(global i32 (i32.const 0))"), "immutable"},
		{"unknown function", tick("(call 99)"), "unknown function"},
		{"branch too deep", tick("(block (br 3))"), "unknown label"},
		{"br_table arity", tick("(drop (block (result i32) (block (br_table 0 1 (i32.const 0) (i32.const 0)))))"), "br_table"},
		{"select operands", tick("(drop (select (i32.const 1) (i64.const 2) (i32.const 0)))"), "type mismatch"},
		{"call arguments", tick("(call $f (i64.const 1))", "(func $f (param i32))"), "type mismatch: expected i32, got i64"},
		{"call_indirect without table", tick("(call_indirect (type 0) (i32.const 0))", "(type (func))"), "unknown table"},
		{"call_indirect unknown type", tick("(call_indirect (type 9) (i32.const 0))", "(table 1 1 funcref)"), "unknown type"},
		{"load without memory", tick("(drop (i32.load (i32.const 0)))"), "unknown memory"},
		{"alignment", tick("(drop (i32.load align=8 (i32.const 0)))", "(memory 1)"), "alignment"},
		{"memory over 4 GiB", tick("", "(memory 65537)"), "at most 65536 pages"},
		{"memory over the limit", read("bigmem.wasm"), "declares a minimum of 17 memory pages (1088 KiB), over the limit of 16 pages (1024 KiB)"},
		{"unknown import", read("badimport.wasm"), "imports wasmbed.reboot, which the host does not provide"},
		{"import from an unknown module", tick("", `(import "env" "f" (func))`), "imports env.f, from a module the host does not provide"},
		{"import signature", tick("", `(import "wasmbed" "log" (func (param i32)))`), "imports wasmbed.log as (i32) -> (), want (i32, i32) -> ()"},
		{"memory import", tick("", `(import "env" "memory" (memory 1))`), "only functions can be imported"},
		{"data out of bounds", tick("", "(memory 1)", `(data (i32.const 65535) "ab")`), "segment does not fit the memory"},
		{"element out of bounds", tick("", "(table 1 1 funcref)", "(elem (i32.const 1) 0)"), "segment does not fit the table"},
		{"start function type", tick("", "(func $s (param i32))", "(start $s)"), "start function"},
		{"duplicate export", wat(t, `(module (func (export "tick")) (func (export "tick")))`, false), "duplicate export"},
		{"missing end", []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x07\x08\x01\x04tick\x00\x00\x0a\x04\x01\x02\x00\x01"), "missing end"},
		{"no entry point", wat(t, `(module (func (export "main")))`, true), "exports neither _start nor tick"},
		{"table without maximum", tick("", "(table 1 funcref)"), "declares no maximum"},
		{"log without memory export", tick("", `(import "wasmbed" "log" (func (param i32 i32)))`, "(memory 1)"), `exports no memory named "memory"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := runC(t, bin, writeTemp(t, "m.wasm", c.wasm))
			lines := traceLines(out)
			if len(lines) != 1 || lines[0] != "end refused" {
				t.Fatalf("wasmrun ran an invalid module:\n%s", out)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("reason %q does not contain %q", strings.TrimSpace(out), c.want)
			}
			if refused := sandboxRefuses(t, c.wasm); refused == wazeroAccepts[c.name] {
				t.Errorf("firmware/sandbox refuses the module: %v, want %v", refused, !wazeroAccepts[c.name])
			}
		})
	}
	t.Run("mutations", func(t *testing.T) {
		// Random byte changes: refused or run, never a crash or a
		// sanitizer report.
		for _, app := range []string{"hello.wasm", "sensor.wasm", "grow.wasm", "trap.wasm"} {
			out := runC(t, bin, "-mutate", "2000", filepath.Join(appsDir, app))
			t.Logf("%s: %s", app, strings.TrimSpace(out))
		}
	})
}

// nopHost is a sandbox.Host that drops what an app emits.
type nopHost struct{}

func (nopHost) Console(string, []byte)                          {}
func (nopHost) Telemetry(string, time.Time, map[string]float64) {}

// sandboxRefuses reports whether firmware/sandbox refuses wasm, when
// validating it or when instantiating it.
func sandboxRefuses(t *testing.T, wasm []byte) bool {
	ctx := context.Background()
	if err := sandbox.Validate(ctx, wasm, sandbox.Limits{}); err != nil {
		return true
	}
	app, err := sandbox.Start(ctx, "check", wasm, sandbox.Limits{}, nopHost{})
	if err != nil {
		return true
	}
	app.Stop()
	return false
}

var arenaLine = regexp.MustCompile(`arena (\d+) bytes used`)

// TestCWasmArena checks the arena figure wasmrun reports: each sample app
// runs the same in an arena of exactly that size, and one byte less is
// refused cleanly.
func TestCWasmArena(t *testing.T) {
	t.Parallel()
	bin := buildWasmrun(t, true)
	for _, name := range []string{"hello", "sensor", "sensor-v2", "trap", "sleep", "exit"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(appsDir, name+".wasm")
			args := []string{"-ticks", "10", "-stack", "256", "-depth", "32"}
			out := runC(t, bin, append(args, path)...)
			m := arenaLine.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no arena figure:\n%s", out)
			}
			n, _ := strconv.Atoi(m[1])
			exact := runC(t, bin, append(args, "-arena", m[1], path)...)
			if got, want := strings.Join(traceLines(exact), "\n"), strings.Join(traceLines(out), "\n"); got != want {
				t.Errorf("in an arena of %d bytes:\n%s\nwant:\n%s", n, got, want)
			}
			short := runC(t, bin, append(args, "-arena", strconv.Itoa(n-1), path)...)
			if !strings.Contains(short, "end refused: arena too small") {
				t.Errorf("in an arena of %d bytes:\n%s", n-1, short)
			}
			t.Logf("%s: %s", name, m[0])
		})
	}
}

// trapsWAT exports one function per trap kind, and a few that work.
const trapsWAT = `(module
  (type $v_i (func (result i32)))
  (type $i_i (func (param i32) (result i32)))
  (import "wasmbed" "log" (func $log (param i32 i32)))
  (import "wasmbed" "telemetry" (func $telemetry (param i32 i32 f64)))
  (memory (export "memory") 1)
  (table 4 4 funcref)
  (elem (i32.const 0) $seven $id)
  (func $seven (type $v_i) (i32.const 7))
  (func $id (type $i_i) (local.get 0))
  (func (export "unreachable") unreachable)
  (func (export "load_oob") (result i32) (i32.load (i32.const 65533)))
  (func (export "load_offset_oob") (result i32) (i32.load offset=4294967295 (i32.const 1)))
  (func (export "load8_oob") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "store_oob") (i64.store (i32.const 65529) (i64.const 1)))
  (func (export "div_u") (param i32 i32) (result i32) (i32.div_u (local.get 0) (local.get 1)))
  (func (export "rem_s64") (param i64 i64) (result i64) (i64.rem_s (local.get 0) (local.get 1)))
  (func (export "div_s") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "div_s64") (param i64 i64) (result i64) (i64.div_s (local.get 0) (local.get 1)))
  (func (export "trunc_f64_s") (param f64) (result i32) (i32.trunc_f64_s (local.get 0)))
  (func (export "trunc_f32_u") (param f32) (result i32) (i32.trunc_f32_u (local.get 0)))
  (func (export "trunc_f64_u64") (param f64) (result i64) (i64.trunc_f64_u (local.get 0)))
  (func (export "indirect") (param i32) (result i32) (call_indirect (type $v_i) (local.get 0)))
  (func $rec (export "recurse") (param i32) (result i32) (call $rec (i32.add (local.get 0) (i32.const 1))))
  (func (export "log_oob") (call $log (i32.const 65530) (i32.const 16)))
  (func (export "telemetry_empty") (call $telemetry (i32.const 0) (i32.const 0) (f64.const 1)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "ok") (result i32) (i32.const 42)))`

// TestCWasmTraps checks that every trap kind stops the call with the
// reason wazero gives, and that the instance and the host go on: each
// invocation below runs in the same instance, in one process.
func TestCWasmTraps(t *testing.T) {
	t.Parallel()
	bin := buildWasmrun(t, true)
	wasm := wat(t, trapsWAT, true)
	cases := []struct{ spec, want string }{
		{"unreachable", "wasm error: unreachable"},
		{"ok", "i32 0x0000002a"},
		{"load_oob", "wasm error: out of bounds memory access"},
		{"load_offset_oob", "wasm error: out of bounds memory access"},
		{"load8_oob 65535", "i32 0x00000000"},
		{"load8_oob 65536", "wasm error: out of bounds memory access"},
		{"load8_oob 0xffffffff", "wasm error: out of bounds memory access"},
		{"store_oob", "wasm error: out of bounds memory access"},
		{"div_u 7 0", "wasm error: integer divide by zero"},
		{"rem_s64 1 0", "wasm error: integer divide by zero"},
		{"div_s 0x80000000 0xffffffff", "wasm error: integer overflow"},
		{"div_s64 0x8000000000000000 0xffffffffffffffff", "wasm error: integer overflow"},
		{"trunc_f64_s 0x7ff8000000000000", "wasm error: invalid conversion to integer"},
		{"trunc_f64_s 0x41e0000000000000", "wasm error: integer overflow"}, // 2^31
		{"trunc_f64_s 0xc1e0000000200000", "wasm error: integer overflow"}, // -2^31 - 1
		{"trunc_f64_s 0xc1dfffffffffffff", "i32 0x80000001"},
		{"trunc_f32_u 0x501502f9", "wasm error: integer overflow"},           // 1e10
		{"trunc_f32_u 0xbf7fffff", "i32 0x00000000"},                         // -0.99999994
		{"trunc_f64_u64 0x43f0000000000000", "wasm error: integer overflow"}, // 2^64
		{"indirect 0", "i32 0x00000007"},
		{"indirect 1", "wasm error: indirect call type mismatch"},
		{"indirect 3", "wasm error: invalid table access"},
		{"indirect 4", "wasm error: invalid table access"},
		{"recurse 0", "wasm error: stack overflow"},
		{"log_oob", "log: out of bounds memory access [65530, 65546) of 65536 bytes"},
		{"telemetry_empty", "telemetry: empty name"},
		{"grow 15", "i32 0x00000001"},
		{"grow 1", "i32 0xffffffff"},
		{"load8_oob 1048575", "i32 0x00000000"},
		{"ok", "i32 0x0000002a"},
	}
	specs := make([]string, len(cases))
	for i, c := range cases {
		specs[i] = c.spec
	}
	got := compareInvokes(t, bin, wasm, specs)
	for i, c := range cases {
		if want := "invoke " + c.spec + " -> " + c.want; got[i] != want {
			t.Errorf("got  %s\nwant %s", got[i], want)
		}
	}
}

// countWAT loops n times (one taken branch each) and returns n.
const countWAT = `(module
  (func (export "count") (param $n i32) (result i32) (local $i i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $i))
  (func (export "forever") (loop $l (br $l))))`

// TestCWasmFuel checks the per-call budget: loop.wasm ends with the fuel
// trap, a bounded loop passes or stops exactly at its budget, and the
// instance keeps working after a budget stop.
func TestCWasmFuel(t *testing.T) {
	t.Parallel()
	bin := buildWasmrun(t, true)
	out := runC(t, bin, "-fuel", "100000", filepath.Join(appsDir, "loop.wasm"))
	if lines := traceLines(out); strings.Join(lines, "\n") != "call tick\nend failed: budget" {
		t.Errorf("loop.wasm under fuel 100000:\n%s", out)
	}
	if !strings.Contains(out, "end failed: fuel exhausted (100000 units)") {
		t.Errorf("loop.wasm does not report the fuel trap:\n%s", out)
	}
	wasm := wat(t, countWAT, true)
	// count n takes n+1 branches (n loop iterations and the exit), one
	// unit each.
	got := invokeC(t, bin, wasm, []string{"count 100", "forever", "count 1000", "count 9999", "count 10000", "count 5"}, "-fuel", "10000")
	want := []string{
		"invoke count 100 -> i32 0x00000064",
		"invoke forever -> fuel exhausted",
		"invoke count 1000 -> i32 0x000003e8",
		"invoke count 9999 -> i32 0x0000270f",
		"invoke count 10000 -> fuel exhausted",
		"invoke count 5 -> i32 0x00000005",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Edge values for the arithmetic checks.
var (
	i32Edges = []uint64{0, 1, 2, 31, 32, 33, 0x7fffffff, 0x80000000, 0x80000001, 0xffffffff, 0xfffffffe, 0x12345678, 0xffffff9c}
	i64Edges = []uint64{0, 1, 63, 64, 65, 0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff,
		0xfffffffffffffffe, 0x123456789abcdef0, 0xffffffff, 0x100000000, 0xffffffffffffff9c}
	f32Edges = f32Bits(0, math.Copysign(0, -1), 1, -1, 0.5, -0.5, 1.5, 2.5, -2.5, 3.7, -3.7, math.Inf(1), math.Inf(-1),
		math.NaN(), 2147483648, -2147483648, 2147483520, 4294967296, 4294967040, 1e10, 9.223372e18, -9.223372e18,
		1.8446743e19, 8388609.5, 1.401298464324817e-45, 1.1754943508222875e-38, 3.4028234663852886e38, 0.49999997)
	f64Edges = f64Bits(0, math.Copysign(0, -1), 1, -1, 0.5, -0.5, 1.5, 2.5, -2.5, 3.7, -3.7, math.Inf(1), math.Inf(-1),
		math.NaN(), 2147483647.9, 2147483648, -2147483648.9, -2147483649, 4294967295.5, 4294967296, 1e10,
		9223372036854775807, -9223372036854775808, 18446744073709549568, 18446744073709551616, 4503599627370497.5,
		5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.49999999999999994, 2, 1e-300)
)

func f32Bits(vs ...float64) []uint64 {
	var out []uint64
	for _, v := range vs {
		out = append(out, uint64(math.Float32bits(float32(v))))
	}
	return out
}

func f64Bits(vs ...float64) []uint64 {
	var out []uint64
	for _, v := range vs {
		out = append(out, math.Float64bits(v))
	}
	return out
}

// TestCWasmArithmetic is a spec-style check of every numeric instruction:
// each one is exported as a function and called with edge-case operands
// (all pairs, for binary ones) in both engines, comparing result bits and
// traps: division overflow, shift counts modulo the width, rotations,
// clz/ctz/popcnt, sign extension, float min/max/nearest/sqrt, conversions
// and their traps, saturating truncation.
func TestCWasmArithmetic(t *testing.T) {
	t.Parallel()
	bin := buildWasmrun(t, true)
	type op struct{ name, params, result string }
	var ops []op
	for _, ty := range []string{"i32", "i64"} {
		for _, n := range strings.Fields("add sub mul div_s div_u rem_s rem_u and or xor shl shr_s shr_u rotl rotr") {
			ops = append(ops, op{ty + "." + n, ty + " " + ty, ty})
		}
		for _, n := range strings.Fields("eq ne lt_s lt_u gt_s gt_u le_s le_u ge_s ge_u") {
			ops = append(ops, op{ty + "." + n, ty + " " + ty, "i32"})
		}
		for _, n := range strings.Fields("clz ctz popcnt extend8_s extend16_s") {
			ops = append(ops, op{ty + "." + n, ty, ty})
		}
		ops = append(ops, op{ty + ".eqz", ty, "i32"})
	}
	ops = append(ops, op{"i64.extend32_s", "i64", "i64"})
	for _, ty := range []string{"f32", "f64"} {
		for _, n := range strings.Fields("add sub mul div min max copysign") {
			ops = append(ops, op{ty + "." + n, ty + " " + ty, ty})
		}
		for _, n := range strings.Fields("eq ne lt gt le ge") {
			ops = append(ops, op{ty + "." + n, ty + " " + ty, "i32"})
		}
		for _, n := range strings.Fields("abs neg ceil floor trunc nearest sqrt") {
			ops = append(ops, op{ty + "." + n, ty, ty})
		}
	}
	for _, c := range []struct{ name, from, to string }{
		{"i32.wrap_i64", "i64", "i32"}, {"i64.extend_i32_s", "i32", "i64"}, {"i64.extend_i32_u", "i32", "i64"},
		{"f32.demote_f64", "f64", "f32"}, {"f64.promote_f32", "f32", "f64"},
		{"i32.reinterpret_f32", "f32", "i32"}, {"f32.reinterpret_i32", "i32", "f32"},
		{"i64.reinterpret_f64", "f64", "i64"}, {"f64.reinterpret_i64", "i64", "f64"},
	} {
		ops = append(ops, op{c.name, c.from, c.to})
	}
	for _, to := range []string{"i32", "i64"} {
		for _, from := range []string{"f32", "f64"} {
			for _, s := range []string{"s", "u"} {
				ops = append(ops, op{to + ".trunc_" + from + "_" + s, from, to}, op{to + ".trunc_sat_" + from + "_" + s, from, to})
			}
		}
	}
	for _, to := range []string{"f32", "f64"} {
		for _, from := range []string{"i32", "i64"} {
			for _, s := range []string{"s", "u"} {
				ops = append(ops, op{to + ".convert_" + from + "_" + s, from, to})
			}
		}
	}
	edges := map[string][]uint64{"i32": i32Edges, "i64": i64Edges, "f32": f32Edges, "f64": f64Edges}
	var src strings.Builder
	var specs []string
	src.WriteString("(module\n")
	for _, o := range ops {
		params := strings.Fields(o.params)
		fmt.Fprintf(&src, "  (func (export %q) (param %s) (result %s) (local.get 0)", o.name, o.params, o.result)
		if len(params) == 2 {
			src.WriteString(" (local.get 1)")
		}
		fmt.Fprintf(&src, " (%s))\n", o.name)
		for _, a := range edges[params[0]] {
			if len(params) == 1 {
				specs = append(specs, fmt.Sprintf("%s %#x", o.name, a))
				continue
			}
			for _, b := range edges[params[1]] {
				specs = append(specs, fmt.Sprintf("%s %#x %#x", o.name, a, b))
			}
		}
	}
	// "i32.const c; op" is fused into one instruction when c fits in 24
	// bits: check the fused forms against the plain ones.
	for _, n := range strings.Fields("eq ne lt_s lt_u gt_s gt_u le_s le_u ge_s ge_u add sub mul and or xor shl shr_s shr_u rotl rotr") {
		for _, c := range []int64{0, 1, 5, 31, 32, 33, -1, -32, 0x7fffff, -0x800000, 0x800000, 0x12345678, -0x80000000} {
			name := fmt.Sprintf("i32.%s/%d", n, c)
			fmt.Fprintf(&src, "  (func (export %q) (param i32) (result i32) (local.get 0) (i32.const %d) (i32.%s))\n", name, c, n)
			for _, a := range i32Edges {
				specs = append(specs, fmt.Sprintf("%s %#x", name, a))
			}
		}
	}
	src.WriteString(`  (func (export "locals") (param i32 i32 i32) (result i32) (local $x i32)
    (local.set $x (i32.sub (local.get 2) (local.get 0)))
    (i32.add (i32.mul (local.get 0) (local.get 1)) (i32.sub (local.get $x) (local.get 1))))
`)
	specs = append(specs, "locals 1 2 3", "locals 0xffffffff 7 0x80000000")
	src.WriteString(")\n")
	wasm := wat(t, src.String(), true)
	got := compareInvokes(t, bin, wasm, specs)
	t.Logf("%d instructions, %d calls compared", len(ops), len(got))
}

// controlWAT exercises control flow, locals, globals, memory access of
// every width, tables and calls.
const controlWAT = `(module
  (type $bin (func (param i32 i32) (result i32)))
  (memory (export "memory") 1 2)
  (global $counter (mut i32) (i32.const 0))
  (global $k i64 (i64.const -5))
  (table 3 3 funcref)
  (elem (i32.const 0) $add $sub $mul)
  (func $add (type $bin) (i32.add (local.get 0) (local.get 1)))
  (func $sub (type $bin) (i32.sub (local.get 0) (local.get 1)))
  (func $mul (type $bin) (i32.mul (local.get 0) (local.get 1)))
  (func (export "dispatch") (param i32 i32 i32) (result i32)
    (call_indirect (type $bin) (local.get 1) (local.get 2) (local.get 0)))
  (func $fib (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func (export "switch") (param i32) (result i32)
    (block $d (block $c (block $b (block $a
      (br_table $a $b $c $d (local.get 0)))
      (return (i32.const 10)))
      (return (i32.const 20)))
      (return (i32.const 30)))
    (i32.const 40))
  (func (export "switch_value") (param i32) (result i32)
    (i32.add (i32.const 1000)
      (block $out (result i32)
        (i32.mul (i32.const 3)
          (block $in (result i32)
            (drop (i32.const 99))
            (br_table $in $out $in (i32.const 7) (local.get 0)))))))
  (func (export "brif_value") (param i32) (result i32)
    (block $b (result i32)
      (drop (br_if $b (i32.const 5) (local.get 0)))
      (i32.const 6)))
  (func (export "deep_br") (param i32) (result i64)
    (local $x i64)
    (local.set $x (i64.const 1))
    (block $out (result i64)
      (loop $l
        (local.set $x (i64.mul (local.get $x) (i64.const 3)))
        (i64.const 777) (drop)
        (br_if $out (local.get $x) (i32.eqz (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
        (br $l))
      (i64.const -1)))
  (func (export "select") (param i32 i64 i64) (result i64)
    (select (local.get 1) (local.get 2) (local.get 0)))
  (func (export "nested_if") (param i32) (result i32)
    (if (result i32) (i32.and (local.get 0) (i32.const 1))
      (then (if (result i32) (i32.and (local.get 0) (i32.const 2)) (then (i32.const 3)) (else (i32.const 1))))
      (else (if (result i32) (i32.and (local.get 0) (i32.const 2)) (then (i32.const 2)) (else (i32.const 0))))))
  (func (export "count_global") (param i32) (result i32)
    (loop $l
      (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
      (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
    (global.get $counter))
  (func (export "k") (result i64) (global.get $k))
  (func (export "store_load") (param i32 i64) (result i64)
    (i64.store (local.get 0) (local.get 1))
    (i64.add
      (i64.add (i64.load8_s (local.get 0)) (i64.load8_u offset=1 (local.get 0)))
      (i64.add
        (i64.add (i64.load16_s offset=2 (local.get 0)) (i64.load16_u offset=4 (local.get 0)))
        (i64.add (i64.load32_s (local.get 0)) (i64.load32_u offset=4 (local.get 0))))))
  (func (export "store_narrow") (param i32 i32) (result i64)
    (i32.store8 (local.get 0) (local.get 1))
    (i32.store16 offset=2 (local.get 0) (local.get 1))
    (i64.store32 offset=4 (local.get 0) (i64.extend_i32_s (local.get 1)))
    (i64.load (local.get 0)))
  (func (export "floats") (param f64) (result f64)
    (f64.store (i32.const 64) (local.get 0))
    (f32.store (i32.const 72) (f32.demote_f64 (local.get 0)))
    (f64.add (f64.load (i32.const 64)) (f64.promote_f32 (f32.load (i32.const 72)))))
  (func (export "grow") (param i32) (result i32)
    (i32.add (i32.mul (memory.grow (local.get 0)) (i32.const 100)) (memory.size)))
  (func (export "unwind") (param i32) (result i32)
    (local $i i32)
    (loop $l (result i32)
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (i32.const 1) (i32.const 2) (drop) (drop)
      (if (i32.lt_u (local.get $i) (local.get 0)) (then (br $l)))
      (local.get $i))))`

// TestCWasmControl compares control flow, calls, tables, globals and memory
// accesses between the two engines over a range of inputs.
func TestCWasmControl(t *testing.T) {
	t.Parallel()
	bin := buildWasmrun(t, true)
	wasm := wat(t, controlWAT, true)
	var specs []string
	for i := range 6 {
		specs = append(specs, fmt.Sprintf("dispatch %d 7 3", i), fmt.Sprintf("switch %d", i), fmt.Sprintf("switch_value %d", i),
			fmt.Sprintf("brif_value %d", i), fmt.Sprintf("nested_if %d", i), fmt.Sprintf("deep_br %d", i+1), fmt.Sprintf("unwind %d", i))
	}
	specs = append(specs, "fib 0", "fib 1", "fib 2", "fib 15", "select 0 1 2", "select 1 1 2", "count_global 10", "count_global 5", "k",
		"store_load 100 0x8899aabbccddeeff", "store_load 65528 0x0102030405060708", "store_load 65529 1",
		"store_narrow 200 0xfffff180", "store_narrow 65532 1", "floats 0x400921fb54442d18", "floats 0x7ff0000000000000",
		"grow 0", "grow 1", "grow 1", "grow 0xffffffff", "store_load 131064 7", "switch 0xffffffff")
	compareInvokes(t, bin, wasm, specs)

	// A start function runs at instantiation, before any export.
	start := wat(t, `(module
	  (global $g (mut i32) (i32.const 1))
	  (func $init (global.set $g (i32.mul (global.get $g) (i32.const 42))))
	  (start $init)
	  (func (export "g") (result i32) (global.get $g)))`, true)
	if got := compareInvokes(t, bin, start, []string{"g"}); got[0] != "invoke g -> i32 0x0000002a" {
		t.Errorf("after the start function: %s", got[0])
	}
}

// TestCWasmCrossCompile builds the interpreter for the board (Cortex-M3,
// freestanding) when the cross compiler is installed, and logs its size.
func TestCWasmCrossCompile(t *testing.T) {
	cc, err := exec.LookPath("arm-none-eabi-gcc")
	if err != nil {
		t.Skip("arm-none-eabi-gcc not found: install gcc-arm-none-eabi to check the board build")
	}
	dir := t.TempDir()
	var objs []string
	for _, src := range []string{"wasm/load.c", "wasm/exec.c", "wasm/abi.c"} {
		obj := filepath.Join(dir, strings.TrimSuffix(filepath.Base(src), ".c")+".o")
		args := []string{"-std=c11", "-mcpu=cortex-m3", "-mthumb", "-Os", "-Wall", "-Wextra", "-Werror", "-Wpedantic", "-ffreestanding", "-c", src, "-o", obj}
		if msg, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", cc, strings.Join(args, " "), err, msg)
		}
		objs = append(objs, obj)
	}
	if size, err := exec.LookPath("arm-none-eabi-size"); err == nil {
		out, err := exec.Command(size, objs...).CombinedOutput()
		if err != nil {
			t.Fatalf("arm-none-eabi-size: %v\n%s", err, out)
		}
		t.Logf("interpreter for Cortex-M3 (-Os):\n%s", out)
	}
}

// computeWAT is a CPU-bound tick: 10,000 iterations of integer mixing and
// memory stores, and a recursive fib(15) for calls.
const computeWAT = `(module
  (memory (export "memory") 1)
  (global $seed (mut i32) (i32.const 1))
  (func $fib (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func (export "tick") (local $i i32) (local $h i32)
    (local.set $h (global.get $seed))
    (loop $l
      (local.set $h (i32.add (i32.mul (i32.xor (local.get $h) (i32.shr_u (local.get $h) (i32.const 15)))
                                      (i32.const 0x2c1b3c6d)) (local.get $i)))
      (i32.store (i32.and (i32.shl (local.get $i) (i32.const 2)) (i32.const 0xfffc)) (local.get $h))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10000))))
    (global.set $seed (i32.add (local.get $h) (call $fib (i32.const 15))))))`

var benchLine = regexp.MustCompile(`# bench tick calls=\d+ ns_per_call=([0-9.]+)`)

// BenchmarkCWasmVsWazero times one tick of an app in the C interpreter
// (built with -O2, timed by wasmrun itself) and in wazero, with its
// compiler and its interpreter, and reports the time per tick of each and
// the ratios C/wazero.
func BenchmarkCWasmVsWazero(b *testing.B) {
	bin := buildWasmrun(b, false)
	sensor, err := os.ReadFile(filepath.Join(appsDir, "sensor.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	apps := []struct {
		name  string
		wasm  []byte
		calls int
	}{
		{"sensor", sensor, 200000},
		{"compute", wat(b, computeWAT, true), 200},
	}
	for _, app := range apps {
		// Measured once per app, then reported on every round of b.N.
		var metrics map[string]float64
		b.Run(app.name, func(b *testing.B) {
			if metrics == nil {
				metrics = measureTicks(b, bin, app.name, app.wasm, app.calls)
			}
			ctx := context.Background()
			rt := wazero.NewRuntime(ctx)
			defer rt.Close(ctx)
			h := newGoHost(app.name)
			h.instantiateHosts(ctx, b, rt)
			mod, err := rt.InstantiateWithConfig(ctx, app.wasm, wazero.NewModuleConfig().WithName(""))
			if err != nil {
				b.Fatal(err)
			}
			tick := mod.ExportedFunction("tick")
			// The b.N loop is a tick of the wazero compiler, so ns/op is
			// its cost.
			b.ResetTimer()
			for range b.N {
				h.out.Reset()
				h.batch = h.batch[:0]
				if _, err := tick.Call(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			for unit, v := range metrics {
				b.ReportMetric(v, unit)
			}
		})
	}
}

// measureTicks times calls ticks of wasm in wasmrun and in wazero's two
// engines, and returns the times per tick and their ratios as benchmark
// metrics.
func measureTicks(b *testing.B, bin, name string, wasm []byte, calls int) map[string]float64 {
	out := runC(b, bin, "-bench", strconv.Itoa(calls), "-fuel", "4000000000", writeTemp(b, name+".wasm", wasm))
	m := benchLine.FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("no timing from wasmrun:\n%s", out)
	}
	cNS, _ := strconv.ParseFloat(m[1], 64)
	metrics := map[string]float64{"C-ns/tick": cNS}
	for _, e := range []struct {
		name string
		cfg  wazero.RuntimeConfig
	}{
		{"compiler", wazero.NewRuntimeConfig()},
		{"interpreter", wazero.NewRuntimeConfigInterpreter()},
	} {
		ns := wazeroTickNS(b, e.cfg, wasm, calls)
		metrics["wazero-"+e.name+"-ns/tick"] = ns
		metrics["C/wazero-"+e.name] = cNS / ns
	}
	return metrics
}

// wazeroTickNS times n ticks of wasm in a wazero runtime of cfg.
func wazeroTickNS(b *testing.B, cfg wazero.RuntimeConfig, wasm []byte, n int) float64 {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	defer rt.Close(ctx)
	h := newGoHost("bench")
	h.instantiateHosts(ctx, b, rt)
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		b.Fatal(err)
	}
	tick := mod.ExportedFunction("tick")
	start := time.Now()
	for range n {
		h.out.Reset()
		h.batch = h.batch[:0]
		if _, err := tick.Call(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}
