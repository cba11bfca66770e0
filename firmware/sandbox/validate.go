package sandbox

import (
	"context"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Validate checks, without running any of it, that wasm can run as a
// Wasmbed app under lim: it is valid WebAssembly, imports only functions of
// the host ABI with their exact signatures, exports _start or tick (and
// memory when it imports a function that reads it), declares no more memory
// than lim allows and stays within MaxTableElements and MaxFunctionLocals.
// Custom sections are ignored. Any refusal wraps ErrInvalidModule and says why,
// e.g. "invalid module: imports wasmbed.reboot, which the host ABI does not
// provide". A module that passes may still be refused by Start when linking
// fails at instantiation (e.g. a data segment out of range). Validate is safe
// for concurrent use.
func Validate(ctx context.Context, wasm []byte, lim Limits) error {
	lim, err := lim.WithDefaults()
	if err != nil {
		return fmt.Errorf("limits: %w", err)
	}
	facts, err := checkBinary(wasm, lim)
	if err != nil {
		return err
	}
	// Validation is the same for both engines; the interpreter skips
	// generating machine code.
	r := wazero.NewRuntimeWithConfig(ctx, runtimeConfig(wazero.NewRuntimeConfigInterpreter(), lim))
	defer r.Close(context.Background())
	compiled, err := compile(ctx, r, facts.binary)
	if err != nil {
		return err
	}
	_, err = checkCompiled(compiled, facts)
	return err
}

// checkBinary runs preflight and refuses a module whose declared memory
// minimum is over lim, with a clearer message than compilation gives.
func checkBinary(wasm []byte, lim Limits) (binaryFacts, error) {
	facts, err := preflight(wasm)
	if err != nil {
		return facts, err
	}
	if facts.hasMemory && facts.memoryMin > lim.MemoryPages {
		return facts, fmt.Errorf("%w: declares a minimum of %d memory pages (%d KiB), over the limit of %d pages (%d KiB)",
			ErrInvalidModule, facts.memoryMin, uint64(facts.memoryMin)*64, lim.MemoryPages, uint64(lim.MemoryPages)*64)
	}
	return facts, nil
}

// hostUses says which host modules a module imports from.
type hostUses struct {
	wasmbed, wasi bool
}

// checkCompiled checks a compiled module's imports and exports against the
// ABI.
func checkCompiled(m wazero.CompiledModule, facts binaryFacts) (hostUses, error) {
	invalid := func(format string, args ...any) (hostUses, error) {
		return hostUses{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidModule}, args...)...)
	}
	const wasi = wasi_snapshot_preview1.ModuleName

	var uses hostUses
	imports := m.ImportedFunctions()
	if int(facts.imports) != len(imports) {
		return invalid("imports a memory, table, global or tag; only functions of %s and %s can be imported", ABIModule, wasi)
	}
	readsMemory := "" // first import that reads the app's memory
	for _, def := range imports {
		module, name, _ := def.Import()
		var want signature
		switch module {
		case ABIModule:
			f, ok := findABIFunc(name)
			if !ok {
				return invalid("imports %s.%s, which the host ABI does not provide", module, name)
			}
			want = f.signature()
			uses.wasmbed = true
			if f.usesMemory && readsMemory == "" {
				readsMemory = module + "." + name
			}
		case wasi:
			sigs, err := wasiSignatures()
			if err != nil {
				return hostUses{}, err
			}
			sig, ok := sigs[name]
			if !ok {
				return invalid("imports %s.%s, which %s does not provide", module, name, wasi)
			}
			want = sig
			uses.wasi = true
			if readsMemory == "" {
				readsMemory = module + "." + name
			}
		default:
			return invalid("imports %s.%s; the host provides only the modules %s and %s", module, name, ABIModule, wasi)
		}
		if got := (signature{params: def.ParamTypes(), results: def.ResultTypes()}); !want.equal(got) {
			return invalid("imports %s.%s as %s, want %s", module, name, got, want)
		}
	}

	exports := m.ExportedFunctions()
	for _, name := range []string{exportStart, exportInitialize, exportTick} {
		def, ok := exports[name]
		if !ok {
			continue
		}
		if got := (signature{params: def.ParamTypes(), results: def.ResultTypes()}); !got.equal(signature{}) {
			return invalid("exports %s as %s, want () -> ()", name, got)
		}
	}
	_, hasStart := exports[exportStart]
	_, hasInit := exports[exportInitialize]
	_, hasTick := exports[exportTick]
	switch {
	case !hasStart && !hasTick:
		return invalid("exports neither %s nor %s", exportStart, exportTick)
	case hasStart && hasInit:
		return invalid("exports both %s and %s; a module is either a command or a reactor", exportStart, exportInitialize)
	}
	if _, ok := m.ExportedMemories()[exportMemory]; readsMemory != "" && !ok {
		return invalid("imports %s but exports no memory named %q", readsMemory, exportMemory)
	}
	return uses, nil
}
