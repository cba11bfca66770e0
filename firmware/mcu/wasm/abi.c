/*
 * The host functions of docs/app-abi.md. WASI functions follow wazero's
 * wasi_snapshot_preview1 (the reference device runtime) in their errno
 * results: stdio only, no files, argv = {app name}, empty environment.
 */
#include <string.h>

#include "abi.h"

/* WASI errno values. */
enum {
	ERRNO_SUCCESS = 0,
	ERRNO_BADF = 8,
	ERRNO_FAULT = 21,
	ERRNO_INVAL = 28,
	ERRNO_NOSYS = 52
};

/* The rights wazero reports for stdio (its fileRightsBase). */
#define STDIO_RIGHTS 0x08e001ffull
#define FILETYPE_BLOCK_DEVICE 1

static wasm_abi_env *env_of(wasm_instance *inst) { return (wasm_abi_env *)wasm_user(inst); }

/* trap_range describes an out-of-bounds host access like the sandbox does:
 * "log: out of bounds memory access [ptr, end) of size bytes". */
static wasm_code trap_range(wasm_instance *inst, const char *fn, uint32_t ptr, uint32_t n) {
	wasm_status *st = wasm_host_status(inst);
	uint32_t size;
	(void)wasm_memory(inst, &size);
	wasm_status_set(st, WASM_TRAP_HOST, fn);
	wasm_status_append(st, ": out of bounds memory access [");
	wasm_status_append_int(st, ptr);
	wasm_status_append(st, ", ");
	wasm_status_append_int(st, (int64_t)ptr + n);
	wasm_status_append(st, ") of ");
	wasm_status_append_int(st, size);
	wasm_status_append(st, " bytes");
	return WASM_TRAP_HOST;
}

/* ---- module wasmbed ---- */

static wasm_code host_log(wasm_instance *inst, wasm_value *a) {
	wasm_abi_env *env = env_of(inst);
	uint8_t *p = wasm_memory_range(inst, a[0].i32, a[1].i32);
	if (p == NULL) {
		return trap_range(inst, "log", a[0].i32, a[1].i32);
	}
	env->ops->log(env->ctx, p, a[1].i32);
	return WASM_OK;
}

static wasm_code host_telemetry(wasm_instance *inst, wasm_value *a) {
	wasm_abi_env *env = env_of(inst);
	wasm_status *st = wasm_host_status(inst);
	uint32_t ptr = a[0].i32, n = a[1].i32;
	if (n > WASM_ABI_MAX_NAME) {
		wasm_status_set(st, WASM_TRAP_HOST, "telemetry limit: name of ");
		wasm_status_append_int(st, n);
		wasm_status_append(st, " bytes is over 64");
		return WASM_TRAP_HOST;
	}
	uint8_t *p = wasm_memory_range(inst, ptr, n);
	if (p == NULL) {
		return trap_range(inst, "telemetry", ptr, n);
	}
	if (n == 0) {
		wasm_status_set(st, WASM_TRAP_HOST, "telemetry: empty name");
		return WASM_TRAP_HOST;
	}
	if (!wasm_utf8_valid(p, n)) {
		wasm_status_set(st, WASM_TRAP_HOST, "telemetry: name is not UTF-8");
		return WASM_TRAP_HOST;
	}
	if (!env->ops->telemetry(env->ctx, p, n, a[2].f64)) {
		wasm_status_set(st, WASM_TRAP_HOST, "telemetry limit: more than 32 names in one batch");
		return WASM_TRAP_HOST;
	}
	return WASM_OK;
}

static wasm_code host_now_ms(wasm_instance *inst, wasm_value *a) {
	wasm_abi_env *env = env_of(inst);
	a[0].i64 = (uint64_t)env->ops->now_ms(env->ctx);
	return WASM_OK;
}

static wasm_code host_sleep_ms(wasm_instance *inst, wasm_value *a) {
	wasm_abi_env *env = env_of(inst);
	return env->ops->sleep_ms(env->ctx, (int32_t)a[0].i32, wasm_host_status(inst));
}

/* ---- module wasi_snapshot_preview1 ---- */

static wasm_code errno_result(wasm_value *a, uint32_t e) {
	a[0].i32 = e;
	return WASM_OK;
}

/* errno_access ends a call whose last step is a memory access: ok says it
 * fitted the memory. */
static wasm_code errno_access(wasm_value *a, bool ok) {
	return errno_result(a, ok ? ERRNO_SUCCESS : ERRNO_FAULT);
}

static bool stdio_open(const wasm_abi_env *env, uint32_t fd) {
	return fd <= 2 && !(env->closed_fds & (1u << fd));
}

/* args_sizes_get(argc *, argv_buf_size *) */
static wasm_code wasi_args_sizes_get(wasm_instance *inst, wasm_value *a) {
	wasm_abi_env *env = env_of(inst);
	uint32_t size = (uint32_t)strlen(env->app_name) + 1;
	return errno_access(a, wasm_memory_set_u32(inst, a[0].i32, 1) &&
	                           wasm_memory_set_u32(inst, a[1].i32, size));
}

/* args_get(argv **, argv_buf *) */
static wasm_code wasi_args_get(wasm_instance *inst, wasm_value *a) {
	wasm_abi_env *env = env_of(inst);
	uint32_t argv = a[0].i32, buf = a[1].i32, n = (uint32_t)strlen(env->app_name) + 1;
	uint8_t *pv = wasm_memory_range(inst, argv, 4);
	uint8_t *pb = wasm_memory_range(inst, buf, n);
	if (pv == NULL || pb == NULL) {
		return errno_result(a, ERRNO_FAULT);
	}
	memcpy(pv, &buf, 4);
	memcpy(pb, env->app_name, n);
	return errno_result(a, ERRNO_SUCCESS);
}

/* environ_sizes_get(count *, buf_size *): the environment is empty. */
static wasm_code wasi_environ_sizes_get(wasm_instance *inst, wasm_value *a) {
	return errno_access(a, wasm_memory_set_u32(inst, a[0].i32, 0) &&
	                           wasm_memory_set_u32(inst, a[1].i32, 0));
}

/* environ_get(environ **, environ_buf *) */
static wasm_code wasi_environ_get(wasm_instance *inst, wasm_value *a) {
	return errno_access(a, wasm_memory_range(inst, a[0].i32, 0) != NULL &&
	                           wasm_memory_range(inst, a[1].i32, 0) != NULL);
}

/* clock_res_get(id, resolution *): clocks tick in milliseconds. */
static wasm_code wasi_clock_res_get(wasm_instance *inst, wasm_value *a) {
	if (a[0].i32 > 1) {
		return errno_result(a, ERRNO_INVAL);
	}
	return errno_access(a, wasm_memory_set_u64(inst, a[1].i32, 1000000));
}

/* clock_time_get(id, precision, time *) */
static wasm_code wasi_clock_time_get(wasm_instance *inst, wasm_value *a) {
	wasm_abi_env *env = env_of(inst);
	uint32_t id = a[0].i32, ptr = a[2].i32;
	if (id > 1) {
		return errno_result(a, ERRNO_INVAL);
	}
	return errno_access(a, wasm_memory_set_u64(inst, ptr, env->ops->clock_ns(env->ctx, id)));
}

/* fd_close(fd): stdio can be closed once. */
static wasm_code wasi_fd_close(wasm_instance *inst, wasm_value *a) {
	wasm_abi_env *env = env_of(inst);
	uint32_t fd = a[0].i32;
	if (!stdio_open(env, fd)) {
		return errno_result(a, ERRNO_BADF);
	}
	env->closed_fds |= 1u << fd;
	return errno_result(a, ERRNO_SUCCESS);
}

/* fd_fdstat_get(fd, fdstat *): stdio is a non-seekable device. */
static wasm_code wasi_fd_fdstat_get(wasm_instance *inst, wasm_value *a) {
	wasm_abi_env *env = env_of(inst);
	uint8_t *p = wasm_memory_range(inst, a[1].i32, 24);
	if (p == NULL) {
		return errno_result(a, ERRNO_FAULT);
	}
	if (!stdio_open(env, a[0].i32)) {
		return errno_result(a, ERRNO_BADF);
	}
	uint64_t rights = STDIO_RIGHTS, inheriting = 0;
	memset(p, 0, 24);
	p[0] = FILETYPE_BLOCK_DEVICE;
	memcpy(p + 8, &rights, 8);
	memcpy(p + 16, &inheriting, 8);
	return errno_result(a, ERRNO_SUCCESS);
}

/* fd_prestat_get(fd, prestat *): there are no preopened directories. */
static wasm_code wasi_fd_prestat_get(wasm_instance *inst, wasm_value *a) {
	(void)inst;
	return errno_result(a, ERRNO_BADF);
}

/* fd_prestat_dir_name(fd, path *, len) */
static wasm_code wasi_fd_prestat_dir_name(wasm_instance *inst, wasm_value *a) {
	(void)inst;
	return errno_result(a, ERRNO_BADF);
}

/* iovecs returns the array of n iovecs at iovs, or NULL. */
static const uint8_t *iovecs(wasm_instance *inst, uint32_t iovs, uint32_t n) {
	if (n > UINT32_MAX / 8) {
		return NULL;
	}
	return wasm_memory_range(inst, iovs, n * 8);
}

/* fd_read(fd, iovs, iovs_len, nread *): stdin is empty. */
static wasm_code wasi_fd_read(wasm_instance *inst, wasm_value *a) {
	wasm_abi_env *env = env_of(inst);
	uint32_t fd = a[0].i32;
	if (!stdio_open(env, fd) || fd != 0) {
		return errno_result(a, ERRNO_BADF);
	}
	if (iovecs(inst, a[1].i32, a[2].i32) == NULL) {
		return errno_result(a, ERRNO_FAULT);
	}
	return errno_access(a, wasm_memory_set_u32(inst, a[3].i32, 0));
}

/* fd_seek(fd, offset, whence, newoffset *): stdio does not seek. */
static wasm_code wasi_fd_seek(wasm_instance *inst, wasm_value *a) {
	return errno_result(a, stdio_open(env_of(inst), a[0].i32) ? ERRNO_NOSYS : ERRNO_BADF);
}

/* fd_write(fd, iovs, iovs_len, nwritten *): stdout and stderr go to the
 * console, one iovec at a time. */
static wasm_code wasi_fd_write(wasm_instance *inst, wasm_value *a) {
	wasm_abi_env *env = env_of(inst);
	uint32_t fd = a[0].i32, n = a[2].i32, total = 0;
	if (!stdio_open(env, fd) || fd == 0) {
		return errno_result(a, ERRNO_BADF);
	}
	const uint8_t *iov = iovecs(inst, a[1].i32, n);
	if (iov == NULL) {
		return errno_result(a, ERRNO_FAULT);
	}
	for (uint32_t i = 0; i < n; i++) {
		uint32_t ptr, len;
		memcpy(&ptr, iov + 8 * i, 4);
		memcpy(&len, iov + 8 * i + 4, 4);
		const uint8_t *p = wasm_memory_range(inst, ptr, len);
		if (p == NULL) {
			return errno_result(a, ERRNO_FAULT);
		}
		if (len > 0) {
			env->ops->console(env->ctx, (int)fd, p, len);
		}
		total += len;
	}
	return errno_access(a, wasm_memory_set_u32(inst, a[3].i32, total));
}

/* proc_exit(code) ends the app: cleanly for 0, as failed otherwise. */
static wasm_code wasi_proc_exit(wasm_instance *inst, wasm_value *a) {
	wasm_abi_env *env = env_of(inst);
	wasm_status *st = wasm_host_status(inst);
	env->exit_code = (int32_t)a[0].i32;
	env->exited = true;
	wasm_status_set(st, WASM_TRAP_EXIT, "exit: code ");
	wasm_status_append_int(st, env->exit_code);
	return WASM_TRAP_EXIT;
}

/* random_get(buf *, len) */
static wasm_code wasi_random_get(wasm_instance *inst, wasm_value *a) {
	wasm_abi_env *env = env_of(inst);
	uint8_t *p = wasm_memory_range(inst, a[0].i32, a[1].i32);
	if (p == NULL) {
		return errno_result(a, ERRNO_FAULT);
	}
	env->ops->random(env->ctx, p, a[1].i32);
	return errno_result(a, ERRNO_SUCCESS);
}

static wasm_code wasi_sched_yield(wasm_instance *inst, wasm_value *a) {
	(void)inst;
	return errno_result(a, ERRNO_SUCCESS);
}

#define WASMBED "wasmbed"
#define WASI "wasi_snapshot_preview1"

const wasm_host_func wasm_abi_hosts[] = {
    {WASMBED, "log", "ii", "", host_log},
    {WASMBED, "telemetry", "iiF", "", host_telemetry},
    {WASMBED, "now_ms", "", "I", host_now_ms},
    {WASMBED, "sleep_ms", "i", "", host_sleep_ms},
    {WASI, "args_get", "ii", "i", wasi_args_get},
    {WASI, "args_sizes_get", "ii", "i", wasi_args_sizes_get},
    {WASI, "environ_get", "ii", "i", wasi_environ_get},
    {WASI, "environ_sizes_get", "ii", "i", wasi_environ_sizes_get},
    {WASI, "clock_res_get", "ii", "i", wasi_clock_res_get},
    {WASI, "clock_time_get", "iIi", "i", wasi_clock_time_get},
    {WASI, "fd_close", "i", "i", wasi_fd_close},
    {WASI, "fd_fdstat_get", "ii", "i", wasi_fd_fdstat_get},
    {WASI, "fd_prestat_get", "ii", "i", wasi_fd_prestat_get},
    {WASI, "fd_prestat_dir_name", "iii", "i", wasi_fd_prestat_dir_name},
    {WASI, "fd_read", "iiii", "i", wasi_fd_read},
    {WASI, "fd_seek", "iIii", "i", wasi_fd_seek},
    {WASI, "fd_write", "iiii", "i", wasi_fd_write},
    {WASI, "proc_exit", "i", "", wasi_proc_exit},
    {WASI, "random_get", "ii", "i", wasi_random_get},
    {WASI, "sched_yield", "", "i", wasi_sched_yield},
};

const size_t wasm_abi_nhosts = sizeof wasm_abi_hosts / sizeof wasm_abi_hosts[0];

static wasm_code refuse(wasm_status *st, const char *a, const char *b, const char *c) {
	wasm_status_set(st, WASM_ERR_INVALID, a);
	wasm_status_append(st, b);
	wasm_status_append(st, c);
	return WASM_ERR_INVALID;
}

wasm_code wasm_abi_check(const wasm_instance *inst, wasm_status *st) {
	static const char *const entries[] = {"_start", "_initialize", "tick"};
	bool has[3];
	for (int i = 0; i < 3; i++) {
		uint32_t f, np, nr;
		has[i] = wasm_export_func(inst, entries[i], &f);
		if (has[i] && wasm_func_arity(inst, f, &np, &nr) && (np != 0 || nr != 0)) {
			return refuse(st, "exports ", entries[i], " with parameters or results, want () -> ()");
		}
	}
	if (!has[0] && !has[2]) {
		return refuse(st, "exports neither _start nor tick", "", "");
	}
	if (has[0] && has[1]) {
		return refuse(st, "exports both _start and _initialize; a module is either a command or a reactor", "", "");
	}
	for (uint32_t i = 0; i < wasm_import_count(inst); i++) {
		const wasm_host_func *h = wasm_import(inst, i);
		bool reads = strcmp(h->module, WASI) == 0 || strcmp(h->name, "log") == 0 ||
		             strcmp(h->name, "telemetry") == 0;
		if (reads && !wasm_export_memory(inst, "memory")) {
			wasm_status_set(st, WASM_ERR_INVALID, "imports ");
			wasm_status_append(st, h->module);
			wasm_status_append(st, ".");
			wasm_status_append(st, h->name);
			wasm_status_append(st, " but exports no memory named \"memory\"");
			return WASM_ERR_INVALID;
		}
	}
	uint32_t size, max;
	bool has_max;
	if (wasm_table_limits(inst, &size, &max, &has_max)) {
		if (!has_max) {
			return refuse(st, "a table declares no maximum size; tables must declare one", "", "");
		}
		if (max > WASM_ABI_MAX_TABLE) {
			return refuse(st, "a table allows more than 65536 elements", "", "");
		}
	}
	wasm_status_set(st, WASM_OK, "");
	return WASM_OK;
}
