// Package sandbox runs one WebAssembly app under limits with the Wasmbed host
// ABI (docs/app-abi.md), using wazero.
//
// Each app gets its own wazero runtime, so apps share no memory, no compiled
// code and no failure: a trap, a time-limit breach or a non-zero exit ends
// that app alone and is reported through App.Err. The package owns the host
// side of the ABI (module "wasmbed" and wasi_snapshot_preview1), the limits of
// one app (linear memory, time per call, tick period) and the app's
// lifecycle; where its output goes is the caller's Host.
package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// Defaults applied by Limits.WithDefaults to zero fields.
const (
	// DefaultMemoryPages is the default cap on an app's linear memory, in
	// 64 KiB pages (16 pages = 1 MiB).
	DefaultMemoryPages uint32 = 16
	// DefaultCallTimeout is the default wall-time limit of one call into an
	// app (_start, _initialize or one tick).
	DefaultCallTimeout = 5 * time.Second
	// DefaultPeriod is the default interval between two tick calls.
	DefaultPeriod = time.Second
	// MaxMemoryPages is the largest memory limit a 32-bit WebAssembly module
	// can have, in 64 KiB pages (4 GiB).
	MaxMemoryPages uint32 = 65536
)

// Errors callers branch on. Errors returned by this package wrap exactly one
// of them; test with errors.Is.
var (
	// ErrInvalidModule marks a module that cannot run as a Wasmbed app: not
	// WebAssembly, an import the host does not provide or of the wrong
	// signature, missing or malformed exports, or declared memory over the
	// limit. Returned by Validate and Start.
	ErrInvalidModule = errors.New("invalid module")
	// ErrTrap marks an app that stopped on a WebAssembly trap (unreachable,
	// out-of-bounds access, division by zero, stack exhaustion) or on a host
	// function that refused its arguments (see ErrTelemetryLimit).
	ErrTrap = errors.New("trap")
	// ErrTelemetryLimit marks the trap raised when an app records a
	// telemetry name longer than MaxTelemetryNameLen bytes or more than
	// MaxTelemetryNames names in one batch. Errors wrapping it also wrap
	// ErrTrap.
	ErrTelemetryLimit = errors.New("telemetry limit")
	// ErrTimeLimit marks an app stopped because one call ran longer than
	// Limits.CallTimeout.
	ErrTimeLimit = errors.New("time limit")
	// ErrExit marks an app that called WASI proc_exit with a non-zero code;
	// errors.As with *sys.ExitError gives the code.
	ErrExit = errors.New("exit")
)

// Limits bounds one app. The zero value means every default; the deploy
// message of the device protocol carries these three numbers.
type Limits struct {
	// MemoryPages caps the app's linear memory, in 64 KiB pages; 0 means
	// DefaultMemoryPages. A module declaring a larger minimum is refused and
	// memory.grow past the cap returns -1.
	MemoryPages uint32
	// CallTimeout is the maximum wall time of one call (_start,
	// _initialize or one tick), sleeps included; 0 means DefaultCallTimeout.
	CallTimeout time.Duration
	// Period is the interval between tick calls; 0 means DefaultPeriod.
	Period time.Duration
}

// WithDefaults returns l with every zero field set to its default. It fails
// when a field is out of range: negative durations or MemoryPages above
// MaxMemoryPages.
func (l Limits) WithDefaults() (Limits, error) {
	if l.MemoryPages == 0 {
		l.MemoryPages = DefaultMemoryPages
	}
	if l.CallTimeout == 0 {
		l.CallTimeout = DefaultCallTimeout
	}
	if l.Period == 0 {
		l.Period = DefaultPeriod
	}
	switch {
	case l.MemoryPages > MaxMemoryPages:
		return l, fmt.Errorf("memory limit of %d pages is over the maximum of %d", l.MemoryPages, MaxMemoryPages)
	case l.CallTimeout < 0:
		return l, fmt.Errorf("call timeout %s is negative", l.CallTimeout)
	case l.Period < 0:
		return l, fmt.Errorf("period %s is negative", l.Period)
	}
	return l, nil
}

// Host receives what an app emits. Implementations must be safe for
// concurrent use (each running app calls from its own goroutine) and must not
// block for long: the app's call, and its time limit, wait for them. A Host
// method must not call Stop on the app that called it. A panic in a Host
// method stops the calling app as a trap.
type Host interface {
	// Console receives bytes the app wrote to the device console: one
	// wasmbed.log line including its trailing newline, or one WASI write to
	// stdout or stderr (not necessarily a whole line). The Host owns p.
	Console(app string, p []byte)
	// Telemetry receives one batch of named values recorded during one call
	// into the app (or up to a wasmbed.sleep_ms). at is when the batch was
	// sent. Batches are never empty. The Host owns values.
	Telemetry(app string, at time.Time, values map[string]float64)
}

// App is one running WebAssembly app. Its methods are safe for concurrent
// use. An App is created by Start and ends by itself, on a failure, or on
// Stop; its wazero runtime is closed before Done is closed.
type App struct {
	name    string
	host    Host
	lim     Limits
	started time.Time

	rt  wazero.Runtime
	mod api.Module

	cancel context.CancelFunc // ends the app's lifetime context
	done   chan struct{}      // closed when run has finished

	// Written by run before done is closed; read only after.
	err    error
	exited bool

	// Owned by the goroutine calling into the module (Start, then run).
	callCtx context.Context
	batch   map[string]float64
}

// Start compiles and instantiates wasm as the app named app (also its
// argv[0]) and runs it in a new goroutine: _start or _initialize once, then,
// when the module exports tick, tick every lim.Period until Stop or a
// failure. Only compilation and instantiation use ctx; the app lives until
// it ends or Stop is called, and the caller must call Stop or wait for Done.
// Errors about the module wrap ErrInvalidModule.
func Start(ctx context.Context, app string, wasm []byte, lim Limits, host Host) (*App, error) {
	if host == nil {
		return nil, fmt.Errorf("start app %s: nil host", app)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start app %s: %w", app, err)
	}
	a, err := newApp(ctx, app, wasm, lim, host)
	if err != nil {
		return nil, fmt.Errorf("start app %s: %w", app, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go a.run(runCtx)
	return a, nil
}

// Name returns the app name given to Start.
func (a *App) Name() string { return a.name }

// Limits returns the limits the app runs under, defaults applied.
func (a *App) Limits() Limits { return a.lim }

// Stop ends the app, interrupting a call in progress (an infinite loop or a
// sleep included), and returns once the app's goroutine and runtime are gone.
// It is idempotent and safe to call concurrently, and does nothing more on an
// app that has already ended. Stop must not be called from a Host method.
func (a *App) Stop() {
	a.cancel()
	<-a.done
}

// Done returns a channel closed when the app has ended for any reason: by
// itself, on a failure, or by Stop.
func (a *App) Done() <-chan struct{} { return a.done }

// Err returns why the app ended. It is nil before Done is closed, when the
// app ended by itself cleanly and when it was stopped. Otherwise it wraps
// ErrTrap, ErrTimeLimit or ErrExit and reads as a reason for an operator,
// e.g. "trap: wasm error: unreachable" or "time limit: call exceeded 1s".
func (a *App) Err() error {
	select {
	case <-a.done:
		return a.err
	default:
		return nil
	}
}

// Exited reports, after Done is closed, whether the app ended by itself
// cleanly: _start returned (or called proc_exit(0)) and the module has no
// tick. It is false before Done, after Stop and after a failure.
func (a *App) Exited() bool {
	select {
	case <-a.done:
		return a.exited
	default:
		return false
	}
}

// newApp validates, compiles and instantiates wasm in a runtime of its own.
// The returned App has no goroutine yet; the caller runs it or closes a.rt.
func newApp(ctx context.Context, app string, wasm []byte, lim Limits, host Host) (*App, error) {
	lim, err := lim.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("limits: %w", err)
	}
	facts, err := checkBinary(wasm, lim)
	if err != nil {
		return nil, err
	}
	rt := wazero.NewRuntimeWithConfig(ctx, runtimeConfig(wazero.NewRuntimeConfig(), lim))
	a := &App{
		name:  app,
		host:  host,
		lim:   lim,
		rt:    rt,
		done:  make(chan struct{}),
		batch: make(map[string]float64),
	}
	if err := a.instantiate(ctx, facts); err != nil {
		_ = rt.Close(context.Background())
		return nil, err
	}
	return a, nil
}

// instantiate compiles the module, checks it against the ABI and links it
// with the host modules it imports.
func (a *App) instantiate(ctx context.Context, facts binaryFacts) error {
	compiled, err := compile(ctx, a.rt, facts.binary)
	if err != nil {
		return err
	}
	uses, err := checkCompiled(compiled, facts)
	if err != nil {
		return err
	}
	if uses.wasi {
		if _, err := wasi_snapshot_preview1.Instantiate(ctx, a.rt); err != nil {
			return fmt.Errorf("instantiate %s: %w", wasi_snapshot_preview1.ModuleName, err)
		}
	}
	if uses.wasmbed {
		b := a.rt.NewHostModuleBuilder(ABIModule)
		for _, f := range abiFuncs {
			b = b.NewFunctionBuilder().
				WithGoModuleFunction(f.impl(a), f.params, f.results).
				WithParameterNames(f.paramNames...).
				Export(f.name)
		}
		if _, err := b.Instantiate(ctx); err != nil {
			return fmt.Errorf("instantiate %s: %w", ABIModule, err)
		}
	}

	// The instance is anonymous, so no app name can clash with a host
	// module, and has no start functions: the run loop calls _start or
	// _initialize itself, under the time limit.
	console := consoleWriter{a}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithArgs(a.name).
		WithStdout(console).
		WithStderr(console).
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(func(ns int64) { a.sleep(a.callCtx, time.Duration(ns)) }).
		WithRandSource(rand.Reader)

	// A module's start section runs during instantiation: bound it like a call.
	instCtx, cancel := context.WithTimeout(ctx, a.lim.CallTimeout)
	defer cancel()
	a.callCtx = instCtx
	a.started = time.Now()
	a.mod, err = a.rt.InstantiateModule(instCtx, compiled, cfg)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return fmt.Errorf("instantiate: %w", ctx.Err())
	case errors.Is(instCtx.Err(), context.DeadlineExceeded):
		return &runError{kind: ErrTimeLimit, cause: err,
			msg: fmt.Sprintf("%s: the start section ran past %s", ErrTimeLimit, a.lim.CallTimeout)}
	default:
		return fmt.Errorf("%w: instantiate: %s", ErrInvalidModule, firstLine(err))
	}
	return nil
}

// compile compiles binary in r. A panic inside wazero, which hostile input
// has been seen to cause in its validator, becomes an invalid-module error
// instead of crashing the device.
func compile(ctx context.Context, r wazero.Runtime, binary []byte) (compiled wazero.CompiledModule, err error) {
	defer func() {
		if p := recover(); p != nil {
			compiled, err = nil, fmt.Errorf("%w: compile: wazero failed on this module: %v", ErrInvalidModule, p)
		}
	}()
	compiled, err = r.CompileModule(ctx, binary)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidModule, err)
	}
	return compiled, nil
}

// runtimeConfig applies the app's limits to base.
func runtimeConfig(base wazero.RuntimeConfig, lim Limits) wazero.RuntimeConfig {
	return base.
		WithMemoryLimitPages(lim.MemoryPages).
		WithCloseOnContextDone(true). // lets a timeout or Stop interrupt a loop
		WithDebugInfoEnabled(false)   // custom sections are dropped anyway
}

// run is the app's goroutine: it drives the lifecycle, then releases the
// runtime and publishes the outcome.
func (a *App) run(ctx context.Context) {
	end := a.lifecycle(ctx)
	_ = a.rt.Close(context.Background())
	a.cancel()
	a.err, a.exited = end.err, end.exited
	close(a.done)
}

// outcome is how an app ended: err as for App.Err and exited as for
// App.Exited.
type outcome struct {
	err    error
	exited bool
}

// lifecycle runs _start or _initialize, then tick every period, and returns
// how the app ended.
func (a *App) lifecycle(ctx context.Context) outcome {
	for _, name := range []string{exportStart, exportInitialize} {
		if fn := a.mod.ExportedFunction(name); fn != nil {
			if end := a.call(ctx, fn); end != nil {
				return *end
			}
			break
		}
	}
	tick := a.mod.ExportedFunction(exportTick)
	if tick == nil {
		return outcome{exited: ctx.Err() == nil}
	}
	// A ticker drops the ticks a slow call overran: calls never overlap and
	// never bunch up after a slow one.
	ticker := time.NewTicker(a.lim.Period)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return outcome{}
		case <-ticker.C:
		}
		if end := a.call(ctx, tick); end != nil {
			return *end
		}
	}
}

// call runs fn once under the call time limit and sends the telemetry it
// recorded. It returns nil when the app goes on, or how it ended.
func (a *App) call(ctx context.Context, fn api.Function) *outcome {
	callCtx, cancel := context.WithTimeout(ctx, a.lim.CallTimeout)
	defer cancel()
	a.callCtx = callCtx
	_, err := fn.Call(callCtx)
	a.flush()
	if err == nil {
		return nil
	}
	end := a.classify(ctx, callCtx, err)
	return &end
}

// classify turns the error of a call into how the app ended.
func (a *App) classify(ctx, callCtx context.Context, callErr error) outcome {
	var exitErr *sys.ExitError
	if !errors.As(callErr, &exitErr) {
		return outcome{err: &runError{kind: ErrTrap, msg: fmt.Sprintf("%s: %s", ErrTrap, firstLine(callErr)), cause: callErr}}
	}
	switch {
	case ctx.Err() != nil: // Stop interrupted the call
		return outcome{}
	case errors.Is(callCtx.Err(), context.DeadlineExceeded):
		return outcome{err: &runError{
			kind:  ErrTimeLimit,
			msg:   fmt.Sprintf("%s: call exceeded %s", ErrTimeLimit, a.lim.CallTimeout),
			cause: callErr,
		}}
	case exitErr.ExitCode() == 0:
		return outcome{exited: true}
	default:
		return outcome{err: &runError{
			kind:  ErrExit,
			msg:   fmt.Sprintf("%s: code %d", ErrExit, exitErr.ExitCode()),
			cause: callErr,
		}}
	}
}

// flush sends the telemetry batch, if any, and starts a new one.
func (a *App) flush() {
	if len(a.batch) == 0 {
		return
	}
	values := a.batch
	a.batch = make(map[string]float64, len(values))
	a.host.Telemetry(a.name, time.Now(), values)
}

// sleep waits for d or until ctx is done; then it aborts the running call
// with the exit error wazero uses for that context, so the call returns at
// once whatever the app does next.
func (a *App) sleep(ctx context.Context, d time.Duration) {
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	switch {
	case ctx.Err() == nil:
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		panic(sys.NewExitError(sys.ExitCodeDeadlineExceeded))
	default:
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	}
}

// runError is an app failure: its message is the operator-facing reason and
// it wraps both the kind sentinel and wazero's error.
type runError struct {
	kind  error
	msg   string
	cause error
}

func (e *runError) Error() string { return e.msg }

func (e *runError) Unwrap() []error { return []error{e.kind, e.cause} }

// firstLine returns err's message without wazero's stack trace and recovery
// note, which are noise in a one-line reason.
func firstLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return strings.TrimSuffix(msg, " (recovered by wazero)")
}

// consoleWriter is the WASI stdout and stderr of an app.
type consoleWriter struct{ a *App }

func (w consoleWriter) Write(p []byte) (int, error) {
	w.a.host.Console(w.a.name, bytes.Clone(p)) // p is a view of the app's memory
	return len(p), nil
}

// wasiSignatures lists the functions of wasi_snapshot_preview1 as wazero
// provides them, for import checks without instantiating anything.
var wasiSignatures = sync.OnceValues(func() (map[string]signature, error) {
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	compiled, err := wasi_snapshot_preview1.NewBuilder(r).Compile(ctx)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", wasi_snapshot_preview1.ModuleName, err)
	}
	sigs := make(map[string]signature)
	for name, def := range compiled.ExportedFunctions() {
		sigs[name] = signature{params: def.ParamTypes(), results: def.ResultTypes()}
	}
	return sigs, nil
})
