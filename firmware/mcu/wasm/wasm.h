/*
 * wasm: a WebAssembly interpreter for small devices.
 *
 * It runs one module (WebAssembly core 1.0 plus the sign-extension,
 * saturating float-to-int, and memory.copy/memory.fill instructions) out of a
 * single byte arena that the caller provides: decoded code, types,
 * functions, globals, the table, the value and call stacks and the linear
 * memory all live in it. The library never allocates, needs no OS and uses
 * only the freestanding C headers plus <string.h>.
 *
 * A module is decoded and fully validated (operand types, control frames,
 * branch targets, indices, signatures) before anything runs, and translated
 * into a compact internal code whose branches are already resolved, so the
 * interpreter loop never scans. An invalid module is refused with a message;
 * a running call that traps returns a wasm_code and a message and leaves the
 * host intact. Each call runs under a fuel budget (one unit per call and per
 * taken branch), so an endless loop ends with WASM_TRAP_FUEL.
 *
 * Imports resolve against a caller-supplied table of host functions; the
 * host reaches the instance's memory through the bounds-checked helpers
 * below. An instance is not safe for concurrent use; distinct instances
 * share nothing.
 */
#ifndef WASMBED_WASM_H
#define WASMBED_WASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* wasm_code is the outcome of a load or a call. */
typedef enum wasm_code {
	WASM_OK = 0,

	/* The module is refused by wasm_instantiate; nothing of it ran (but
	 * for WASM_TRAP_* from a start function). */
	WASM_ERR_MALFORMED = 1,   /* not a well-formed WebAssembly binary */
	WASM_ERR_INVALID = 2,     /* well-formed but fails validation */
	WASM_ERR_UNSUPPORTED = 3, /* valid, but uses a feature this interpreter lacks */
	WASM_ERR_LINK = 4,        /* an import the host does not provide, or with another signature */
	WASM_ERR_LIMIT = 5,       /* over a configured limit (memory pages, locals, table) */
	WASM_ERR_ARENA = 6,       /* the arena is too small for this module */
	WASM_ERR_ARG = 7,         /* a bad call: unknown function, argument count, re-entry */

	/* A call trapped. The instance stays usable, but the app should end. */
	WASM_TRAP_UNREACHABLE = 16, /* wasm error: unreachable */
	WASM_TRAP_MEMORY = 17,      /* wasm error: out of bounds memory access */
	WASM_TRAP_DIV_ZERO = 18,    /* wasm error: integer divide by zero */
	WASM_TRAP_OVERFLOW = 19,    /* wasm error: integer overflow */
	WASM_TRAP_CONVERSION = 20,  /* wasm error: invalid conversion to integer */
	WASM_TRAP_TABLE = 21,       /* wasm error: invalid table access (call_indirect) */
	WASM_TRAP_SIGNATURE = 22,   /* wasm error: indirect call type mismatch */
	WASM_TRAP_STACK = 23,       /* wasm error: stack overflow */
	WASM_TRAP_FUEL = 24,        /* the call used up its fuel */
	WASM_TRAP_HOST = 25,        /* a host function refused its arguments */
	WASM_TRAP_EXIT = 26         /* a host function ended the app (WASI proc_exit) */
} wasm_code;

/* wasm_is_trap reports whether code is one of the WASM_TRAP_* codes. */
static inline bool wasm_is_trap(wasm_code code) { return code >= WASM_TRAP_UNREACHABLE; }

/* WASM_MSG_MAX is the size of a status message buffer, NUL included. */
#define WASM_MSG_MAX 160

/* wasm_status is a code with a human-readable reason, e.g.
 * {WASM_TRAP_UNREACHABLE, "wasm error: unreachable"} or
 * {WASM_ERR_INVALID, "function 3: type mismatch: i32.add expects i32, got i64 (at byte 0x1f2)"}. */
typedef struct wasm_status {
	wasm_code code;
	char msg[WASM_MSG_MAX];
} wasm_status;

/* wasm_status_set sets st to code and msg (truncated to fit). */
void wasm_status_set(wasm_status *st, wasm_code code, const char *msg);
/* wasm_status_append appends s to st's message, truncating. */
void wasm_status_append(wasm_status *st, const char *s);
/* wasm_status_append_int appends v in decimal. */
void wasm_status_append_int(wasm_status *st, int64_t v);

/* wasm_value is one WebAssembly value. An i32 lives in .i32 (the upper half
 * of .i64 is then unspecified), f32 in .f32, and so on. */
typedef union wasm_value {
	uint32_t i32;
	uint64_t i64;
	float f32;
	double f64;
} wasm_value;

typedef struct wasm_instance wasm_instance;

/* wasm_host_fn implements an imported function. args holds the parameters
 * in order; the result, if any, goes to args[0]. It returns WASM_OK, or a
 * trap code after describing it with wasm_host_status (WASM_TRAP_HOST for
 * refused arguments, WASM_TRAP_EXIT to end the app). It must not call back
 * into the instance with wasm_call. */
typedef wasm_code (*wasm_host_fn)(wasm_instance *inst, wasm_value *args);

/* wasm_host_func is one entry of the host's import table. Signatures are
 * strings with one letter per value: 'i' i32, 'I' i64, 'f' f32, 'F' f64;
 * e.g. params "iiF", results "" for wasmbed.telemetry. An import matches an
 * entry with the same module and name and must have exactly its signature. */
typedef struct wasm_host_func {
	const char *module;
	const char *name;
	const char *params;
	const char *results;
	wasm_host_fn fn;
} wasm_host_func;

/* wasm_config sets the limits of one instance. Zero fields mean the
 * defaults in brackets. */
typedef struct wasm_config {
	const wasm_host_func *hosts; /* import table */
	size_t nhosts;
	void *user;                  /* returned by wasm_user, for host functions */
	uint32_t memory_pages;       /* linear memory limit in 64 KiB pages [16] */
	uint32_t stack_slots;        /* value stack, 8-byte slots: locals and operands [2048] */
	uint32_t call_depth;         /* nested wasm calls [128] */
	uint32_t max_locals;         /* locals of one function, params included [50000] */
	uint32_t max_table;          /* table elements [65536] */
	uint32_t start_fuel;         /* fuel of the module's start function, if any [10000000] */
} wasm_config;

/* wasm_instantiate decodes, validates and instantiates the module bin[0:len)
 * inside arena[0:arena_size) (any alignment), resolving imports against
 * cfg->hosts, applying element and data segments and running the module's
 * start function, if any. bin is not referenced afterwards. On success *out
 * is the instance, which lives in the arena until the caller reuses it;
 * otherwise *out is NULL and st says why. st may be NULL. */
wasm_code wasm_instantiate(wasm_instance **out, void *arena, size_t arena_size,
                           const uint8_t *bin, size_t len, const wasm_config *cfg,
                           wasm_status *st);

/* wasm_export_func finds the exported function name; false if there is none. */
bool wasm_export_func(const wasm_instance *inst, const char *name, uint32_t *func);
/* wasm_export_memory reports whether the module exports its memory as name. */
bool wasm_export_memory(const wasm_instance *inst, const char *name);
/* wasm_func_arity gives the parameter and result counts of function func. */
bool wasm_func_arity(const wasm_instance *inst, uint32_t func, uint32_t *params, uint32_t *results);
/* wasm_func_signature writes the signature of function func as letters, as
 * in wasm_host_func: params (at least 256 bytes) and results (at least 2). */
bool wasm_func_signature(const wasm_instance *inst, uint32_t func, char *params, char *results);
/* wasm_import_count and wasm_import give the host functions the module
 * imports, in import order. */
uint32_t wasm_import_count(const wasm_instance *inst);
const wasm_host_func *wasm_import(const wasm_instance *inst, uint32_t i);
/* wasm_table_limits gives the table's size and declared maximum (has_max
 * false if none); false when the module has no table. */
bool wasm_table_limits(const wasm_instance *inst, uint32_t *size, uint32_t *max, bool *has_max);

/* wasm_call calls function func with nargs arguments (which must match its
 * type) and stores its results (at most one) in results, under a budget of
 * fuel units: one unit per call and per taken branch, so every loop
 * iteration costs at least one. It returns WASM_OK, a WASM_TRAP_* code, or
 * WASM_ERR_ARG; st (may be NULL) gets the reason, e.g. "wasm error: integer
 * divide by zero" or "fuel exhausted". */
wasm_code wasm_call(wasm_instance *inst, uint32_t func, const wasm_value *args, uint32_t nargs,
                    wasm_value *results, uint32_t fuel, wasm_status *st);
/* wasm_fuel_left gives the fuel the last call had left. */
uint32_t wasm_fuel_left(const wasm_instance *inst);

/* Host-function helpers, valid while the instance lives. */

/* wasm_user returns cfg->user. */
void *wasm_user(const wasm_instance *inst);
/* wasm_host_status is where a host function describes its trap. */
wasm_status *wasm_host_status(wasm_instance *inst);
/* wasm_memory returns the linear memory and its size in bytes (NULL, 0 when
 * the module has none). The pointer moves only on memory.grow. */
uint8_t *wasm_memory(const wasm_instance *inst, uint32_t *size);
/* wasm_memory_range returns the bytes [ptr, ptr+len) of the linear memory,
 * or NULL when any of them is outside it. len 0 is valid at ptr <= size. */
uint8_t *wasm_memory_range(const wasm_instance *inst, uint32_t ptr, uint32_t len);
/* Little-endian loads and stores of linear memory; false when out of bounds. */
bool wasm_memory_get_u32(const wasm_instance *inst, uint32_t ptr, uint32_t *v);
bool wasm_memory_set_u32(wasm_instance *inst, uint32_t ptr, uint32_t v);
bool wasm_memory_set_u64(wasm_instance *inst, uint32_t ptr, uint64_t v);

/* wasm_stats describes an instance's use of its arena. */
typedef struct wasm_stats {
	size_t arena_used;     /* bytes of the arena in use, linear memory included */
	size_t code_bytes;     /* translated code */
	size_t stack_bytes;    /* value and call stacks */
	uint32_t memory_pages; /* current linear memory pages */
	uint32_t max_pages;    /* pages memory.grow may reach */
	uint32_t functions;    /* functions, imports included */
	uint32_t stack_peak;   /* most value stack slots used by any call so far */
	uint32_t depth_peak;   /* deepest call nesting so far (0: no nested call) */
} wasm_stats;

void wasm_get_stats(const wasm_instance *inst, wasm_stats *s);

/* wasm_utf8_valid reports whether p[0:n) is valid UTF-8. */
bool wasm_utf8_valid(const uint8_t *p, size_t n);

#endif
