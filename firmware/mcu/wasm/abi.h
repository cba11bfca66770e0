/*
 * abi: the Wasmbed app ABI (docs/app-abi.md) on top of the interpreter:
 * the host functions of module "wasmbed" (log, telemetry, now_ms,
 * sleep_ms) and of "wasi_snapshot_preview1" (the subset wasi-libc programs
 * use), and the checks an app module must pass beyond WebAssembly validity.
 *
 * It owns the argument checks and memory access of every host call (a bad
 * pointer or length traps, or returns the WASI errno wazero returns) and
 * leaves the effects to the embedder through wasm_abi_ops: where console
 * bytes go, how telemetry is batched and sent, what time it is, how to
 * sleep. Like the interpreter it needs no OS.
 */
#ifndef WASMBED_WASM_ABI_H
#define WASMBED_WASM_ABI_H

#include "wasm.h"

/* Fixed limits of the ABI. */
#define WASM_ABI_MAX_NAME 64    /* bytes of a telemetry name */
#define WASM_ABI_MAX_NAMES 32   /* distinct names in one telemetry batch */
#define WASM_ABI_MAX_TABLE 65536 /* table elements */

/* wasm_abi_ops are the embedder's side of the host functions. ctx is
 * wasm_abi_env.ctx. Pointers into app memory are valid during the call
 * only. */
typedef struct wasm_abi_ops {
	/* log receives one wasmbed.log line, without its newline. */
	void (*log)(void *ctx, const uint8_t *p, uint32_t n);
	/* console receives bytes written to WASI fd 1 (stdout) or 2 (stderr),
	 * one non-empty iovec at a time. */
	void (*console)(void *ctx, int fd, const uint8_t *p, uint32_t n);
	/* telemetry records name (1..64 bytes of UTF-8, checked) = value in the
	 * current batch; false when the batch already holds
	 * WASM_ABI_MAX_NAMES other names. */
	bool (*telemetry)(void *ctx, const uint8_t *name, uint32_t n, double value);
	/* now_ms gives monotonic milliseconds since the app was started. */
	int64_t (*now_ms)(void *ctx);
	/* sleep_ms sends the telemetry batch so far, then sleeps ms
	 * milliseconds (none when ms <= 0). It returns WASM_OK, or a trap
	 * code after describing it in st (the call's time limit, or the app
	 * being stopped). */
	wasm_code (*sleep_ms)(void *ctx, int32_t ms, wasm_status *st);
	/* clock_ns reads clock 0 (realtime) or 1 (monotonic), in nanoseconds. */
	uint64_t (*clock_ns)(void *ctx, uint32_t id);
	/* random fills p[0:n) with random bytes. */
	void (*random)(void *ctx, uint8_t *p, uint32_t n);
} wasm_abi_ops;

/* wasm_abi_env is the per-app state of the ABI. Pass a pointer to it as
 * wasm_config.user, with wasm_abi_hosts as the import table. */
typedef struct wasm_abi_env {
	const wasm_abi_ops *ops;
	void *ctx;
	const char *app_name; /* argv[0] */
	uint32_t closed_fds;  /* bit fd: stdio fd closed by fd_close */
	int32_t exit_code;    /* set by proc_exit */
	bool exited;          /* proc_exit was called */
} wasm_abi_env;

/* wasm_abi_hosts is the import table of the ABI; wasm_abi_nhosts its length. */
extern const wasm_host_func wasm_abi_hosts[];
extern const size_t wasm_abi_nhosts;

/* wasm_abi_check checks an instantiated module against the export and table
 * rules of the ABI: _start or tick exported, not both _start and
 * _initialize, all three () -> (), memory exported as "memory" when an
 * import reads it, and a table with a declared maximum of at most
 * WASM_ABI_MAX_TABLE elements. It returns WASM_OK or WASM_ERR_INVALID with
 * the reason in st. */
wasm_code wasm_abi_check(const wasm_instance *inst, wasm_status *st);

#endif
