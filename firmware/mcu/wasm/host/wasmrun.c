/*
 * wasmrun runs a Wasmbed app with the interpreter on a host, the way a
 * device does, and prints a deterministic trace: every host call with its
 * arguments, every telemetry batch sent, and the app's final state.
 *
 *   wasmrun [flags] app.wasm
 *
 *   -name NAME      app name, also argv[0] (default: the file name without .wasm)
 *   -ticks N        call tick N times after _start/_initialize (default 3)
 *   -fuel N         fuel per call (default 10000000)
 *   -pages N        memory limit in 64 KiB pages (default 16)
 *   -arena BYTES    arena size (default: enough for -pages plus the code)
 *   -stack N        value stack slots (default: the interpreter's, 2048)
 *   -depth N        nested call limit (default: the interpreter's, 128)
 *   -call-ms N      time limit per call, in fake milliseconds (default 5000)
 *   -period-ms N    tick period, in fake milliseconds (default 1000)
 *   -invoke "F A.." call export F with raw 64-bit arguments instead of
 *                   running the app; repeatable; prints each result's bits
 *   -invoke-file P  like -invoke, one "F A.." per line of file P
 *   -bench N        after start-up, time N untraced calls of -bench-func
 *   -mutate N       robustness check: load (and, if valid, run with little
 *                   fuel) N copies of the module with a few random bytes changed
 *   -bench-func F   export timed by -bench (default tick)
 *
 * Time is fake: now_ms starts at 0 when the module is instantiated, each
 * tick advances it by the period and sleep_ms by its argument, so traces
 * compare across runs and engines. Lines starting with '#' are
 * informational (sizes, timings) and not part of the trace.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../abi.h"
#include "../wasm.h"

typedef struct batch_entry {
	char name[WASM_ABI_MAX_NAME + 1];
	double value;
} batch_entry;

typedef struct runner {
	int64_t now_ms;
	int64_t call_start_ms;
	int64_t call_ms;
	bool quiet;     /* no trace (benchmarks) */
	bool timed_out; /* a sleep crossed the call's time limit */
	batch_entry batch[WASM_ABI_MAX_NAMES];
	int nbatch;
	uint64_t random_state;
} runner;

static void put_quoted(const uint8_t *p, size_t n) {
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		switch (c) {
		case '"': fputs("\\\"", stdout); break;
		case '\\': fputs("\\\\", stdout); break;
		case '\n': fputs("\\n", stdout); break;
		case '\t': fputs("\\t", stdout); break;
		default:
			if (c >= 0x20 && c < 0x7f) {
				putchar(c);
			} else {
				printf("\\x%02x", c);
			}
		}
	}
	putchar('"');
}

/* put_float prints v like Go's fmt "%.17g", with Go's NaN and infinities. */
static void put_float(double v) {
	if (v != v) {
		fputs("NaN", stdout);
	} else if (v > 1.7976931348623157e308) {
		fputs("+Inf", stdout);
	} else if (v < -1.7976931348623157e308) {
		fputs("-Inf", stdout);
	} else {
		printf("%.17g", v);
	}
}

static void flush_batch(runner *r) {
	if (r->nbatch == 0) {
		return;
	}
	if (!r->quiet) {
		printf("send at=%" PRId64, r->now_ms);
		for (int i = 0; i < r->nbatch; i++) {
			printf(" %s=", r->batch[i].name);
			put_float(r->batch[i].value);
		}
		putchar('\n');
	}
	r->nbatch = 0;
}

static void op_log(void *ctx, const uint8_t *p, uint32_t n) {
	runner *r = ctx;
	if (!r->quiet) {
		fputs("log ", stdout);
		put_quoted(p, n);
		putchar('\n');
	}
}

static void op_console(void *ctx, int fd, const uint8_t *p, uint32_t n) {
	runner *r = ctx;
	if (!r->quiet) {
		printf("fd_write %d ", fd);
		put_quoted(p, n);
		putchar('\n');
	}
}

static bool op_telemetry(void *ctx, const uint8_t *name, uint32_t n, double value) {
	runner *r = ctx;
	if (!r->quiet) {
		fputs("telemetry ", stdout);
		put_quoted(name, n);
		putchar(' ');
		put_float(value);
		putchar('\n');
	}
	for (int i = 0; i < r->nbatch; i++) {
		if (strlen(r->batch[i].name) == n && memcmp(r->batch[i].name, name, n) == 0) {
			r->batch[i].value = value;
			return true;
		}
	}
	if (r->nbatch == WASM_ABI_MAX_NAMES) {
		return false;
	}
	memcpy(r->batch[r->nbatch].name, name, n);
	r->batch[r->nbatch].name[n] = 0;
	r->batch[r->nbatch].value = value;
	r->nbatch++;
	return true;
}

static int64_t op_now_ms(void *ctx) {
	runner *r = ctx;
	if (!r->quiet) {
		printf("now_ms %" PRId64 "\n", r->now_ms);
	}
	return r->now_ms;
}

/* format_ms writes a whole number of milliseconds as Go's time.Duration
 * prints it ("5s", "1.5s", "200ms"). */
static void format_ms(char *buf, size_t n, int64_t ms) {
	if (ms < 1000) {
		snprintf(buf, n, "%" PRId64 "ms", ms);
	} else if (ms % 1000 == 0) {
		snprintf(buf, n, "%" PRId64 "s", ms / 1000);
	} else {
		char frac[8];
		snprintf(frac, sizeof frac, "%03" PRId64, ms % 1000);
		for (int i = 2; i > 0 && frac[i] == '0'; i--) {
			frac[i] = 0;
		}
		snprintf(buf, n, "%" PRId64 ".%ss", ms / 1000, frac);
	}
}

static wasm_code op_sleep_ms(void *ctx, int32_t ms, wasm_status *st) {
	runner *r = ctx;
	if (!r->quiet) {
		printf("sleep_ms %" PRId32 "\n", ms);
	}
	flush_batch(r);
	if (ms <= 0) {
		return WASM_OK;
	}
	int64_t deadline = r->call_start_ms + r->call_ms;
	if (r->now_ms + ms > deadline) {
		char d[32];
		r->now_ms = deadline;
		r->timed_out = true;
		format_ms(d, sizeof d, r->call_ms);
		wasm_status_set(st, WASM_TRAP_HOST, "time limit: call exceeded ");
		wasm_status_append(st, d);
		return WASM_TRAP_HOST;
	}
	r->now_ms += ms;
	return WASM_OK;
}

static uint64_t op_clock_ns(void *ctx, uint32_t id) {
	runner *r = ctx;
	if (!r->quiet) {
		printf("clock_time_get %" PRIu32 " %" PRId64 "\n", id, r->now_ms * 1000000);
	}
	return (uint64_t)r->now_ms * 1000000u;
}

static void op_random(void *ctx, uint8_t *p, uint32_t n) {
	runner *r = ctx;
	if (!r->quiet) {
		printf("random_get %" PRIu32 "\n", n);
	}
	for (uint32_t i = 0; i < n; i++) { /* a fixed xorshift stream: deterministic */
		r->random_state ^= r->random_state << 13;
		r->random_state ^= r->random_state >> 7;
		r->random_state ^= r->random_state << 17;
		p[i] = (uint8_t)r->random_state;
	}
}

static const wasm_abi_ops ops = {
    .log = op_log,
    .console = op_console,
    .telemetry = op_telemetry,
    .now_ms = op_now_ms,
    .sleep_ms = op_sleep_ms,
    .clock_ns = op_clock_ns,
    .random = op_random,
};

static uint8_t *read_file(const char *path, size_t *len) {
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		return NULL;
	}
	size_t cap = 1 << 16, n = 0;
	uint8_t *buf = malloc(cap);
	for (;;) {
		if (buf == NULL) {
			fclose(f);
			return NULL;
		}
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap) {
			break;
		}
		cap *= 2;
		uint8_t *nb = realloc(buf, cap);
		if (nb == NULL) {
			free(buf);
		}
		buf = nb;
	}
	fclose(f);
	*len = n;
	return buf;
}

static double seconds(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* outcome of one call: 0 the app goes on, 1 it exited cleanly, -1 it failed
 * (the reason is printed). */
static int call(wasm_instance *inst, runner *r, wasm_abi_env *env, const char *name, uint32_t func, uint32_t fuel) {
	wasm_status st;
	if (!r->quiet) {
		printf("call %s\n", name);
	}
	r->call_start_ms = r->now_ms;
	r->timed_out = false;
	wasm_code code = wasm_call(inst, func, NULL, 0, NULL, fuel, &st);
	flush_batch(r);
	if (code == WASM_OK) {
		return 0;
	}
	if (code == WASM_TRAP_EXIT && env->exit_code == 0) {
		return 1;
	}
	if (code == WASM_TRAP_EXIT || r->timed_out) {
		printf("end failed: %s\n", st.msg);
	} else if (code == WASM_TRAP_FUEL) {
		printf("end failed: %s (%" PRIu32 " units)\n", st.msg, fuel);
	} else {
		printf("end failed: trap: %s\n", st.msg);
	}
	return -1;
}

/* invoke runs one "-invoke" spec: an export name and raw 64-bit arguments. */
static void invoke(wasm_instance *inst, const char *spec, uint32_t fuel) {
	char buf[1024], params[256], results[2];
	wasm_value args[16], res[1];
	uint32_t func, n = 0;
	snprintf(buf, sizeof buf, "%s", spec);
	char *save = NULL, *name = strtok_r(buf, " ", &save);
	printf("invoke %s", spec);
	if (name == NULL || !wasm_export_func(inst, name, &func)) {
		printf(" -> error: no such export\n");
		return;
	}
	wasm_func_signature(inst, func, params, results);
	for (char *a = strtok_r(NULL, " ", &save); a != NULL && n < 16; a = strtok_r(NULL, " ", &save)) {
		uint64_t v = strtoull(a, NULL, 0);
		if (params[n] == 'i' || params[n] == 'f') {
			args[n].i64 = 0;
			args[n].i32 = (uint32_t)v;
		} else {
			args[n].i64 = v;
		}
		n++;
	}
	wasm_status st;
	wasm_code code = wasm_call(inst, func, args, n, res, fuel, &st);
	if (code != WASM_OK) {
		printf(" -> %s\n", st.msg);
	} else if (results[0] == 0) {
		printf(" ->\n");
	} else if (results[0] == 'i' || results[0] == 'f') {
		printf(" -> %c32 0x%08" PRIx32 "\n", results[0], res[0].i32);
	} else {
		printf(" -> %c64 0x%016" PRIx64 "\n", results[0] == 'I' ? 'i' : 'f', res[0].i64);
	}
}

/* run_mutations loads n variants of bin with 1 to 4 bytes changed, and
 * runs those that load with a small fuel budget. Only a crash (or a
 * sanitizer report) is a failure. */
static void run_mutations(const uint8_t *bin, size_t len, void *arena, size_t arena_size, const char *name,
                          uint32_t pages, long n) {
	uint8_t *m = malloc(len);
	uint64_t x = 0x2545f4914f6cdd1dull;
	long refused = 0, ran = 0, trapped = 0;
	runner r = {.call_ms = 5000, .quiet = true, .random_state = 1};
	for (long i = 0; i < n && m != NULL && len > 0; i++) {
		memcpy(m, bin, len);
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		for (uint64_t k = 0, changes = 1 + (x >> 60) % 4; k < changes; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			m[(x >> 8) % len] = (uint8_t)x;
		}
		wasm_abi_env env = {.ops = &ops, .ctx = &r, .app_name = name};
		wasm_config cfg = {.hosts = wasm_abi_hosts, .nhosts = wasm_abi_nhosts, .user = &env, .memory_pages = pages};
		wasm_instance *inst;
		wasm_status st;
		if (wasm_instantiate(&inst, arena, arena_size, m, len, &cfg, &st) != WASM_OK) {
			refused++;
			continue;
		}
		ran++;
		static const char *const entries[] = {"_start", "_initialize", "tick"};
		for (int e = 0; e < 3; e++) {
			uint32_t f, np, nr;
			if (wasm_export_func(inst, entries[e], &f) && wasm_func_arity(inst, f, &np, &nr) && np == 0) {
				r.call_start_ms = r.now_ms;
				r.nbatch = 0;
				if (wasm_call(inst, f, NULL, 0, NULL, 20000, &st) != WASM_OK) {
					trapped++;
				}
			}
		}
	}
	free(m);
	printf("# mutations: %ld refused, %ld loaded and ran (%ld calls trapped)\n", refused, ran, trapped);
}

static void usage(void) {
	fprintf(stderr, "usage: wasmrun [-name NAME] [-ticks N] [-fuel N] [-pages N] [-arena BYTES] [-stack N] [-depth N] [-call-ms N]\n"
	                "               [-period-ms N] [-invoke \"F ARGS\"]... [-bench N [-bench-func F]] app.wasm\n");
	exit(2);
}

int main(int argc, char **argv) {
	const char *path = NULL, *name = NULL, *bench_func = "tick", *invoke_file = NULL;
	const char *invokes[256];
	int ninvokes = 0;
	long ticks = 3, bench = 0, period_ms = 1000, mutate = 0;
	uint32_t fuel = 10000000, pages = 16, stack_slots = 0, call_depth = 0;
	size_t arena_size = 0;
	runner r = {.call_ms = 5000, .random_state = 0x9e3779b97f4a7c15ull};

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (a[0] != '-') {
			path = a;
			continue;
		}
		if (v == NULL) {
			usage();
		}
		i++;
		if (strcmp(a, "-name") == 0) {
			name = v;
		} else if (strcmp(a, "-ticks") == 0) {
			ticks = strtol(v, NULL, 10);
		} else if (strcmp(a, "-fuel") == 0) {
			fuel = (uint32_t)strtoul(v, NULL, 10);
		} else if (strcmp(a, "-pages") == 0) {
			pages = (uint32_t)strtoul(v, NULL, 10);
		} else if (strcmp(a, "-stack") == 0) {
			stack_slots = (uint32_t)strtoul(v, NULL, 10);
		} else if (strcmp(a, "-depth") == 0) {
			call_depth = (uint32_t)strtoul(v, NULL, 10);
		} else if (strcmp(a, "-arena") == 0) {
			arena_size = (size_t)strtoull(v, NULL, 10);
		} else if (strcmp(a, "-call-ms") == 0) {
			r.call_ms = strtol(v, NULL, 10);
		} else if (strcmp(a, "-period-ms") == 0) {
			period_ms = strtol(v, NULL, 10);
		} else if (strcmp(a, "-invoke") == 0 && ninvokes < 256) {
			invokes[ninvokes++] = v;
		} else if (strcmp(a, "-invoke-file") == 0) {
			invoke_file = v;
		} else if (strcmp(a, "-mutate") == 0) {
			mutate = strtol(v, NULL, 10);
		} else if (strcmp(a, "-bench") == 0) {
			bench = strtol(v, NULL, 10);
		} else if (strcmp(a, "-bench-func") == 0) {
			bench_func = v;
		} else {
			usage();
		}
	}
	if (path == NULL) {
		usage();
	}
	size_t len;
	uint8_t *bin = read_file(path, &len);
	if (bin == NULL) {
		fprintf(stderr, "wasmrun: cannot read %s\n", path);
		return 2;
	}
	char app[256];
	if (name == NULL) {
		const char *base = strrchr(path, '/');
		base = base != NULL ? base + 1 : path;
		snprintf(app, sizeof app, "%s", base);
		char *dot = strstr(app, ".wasm");
		if (dot != NULL) {
			*dot = 0;
		}
		name = app;
	}
	if (arena_size == 0) {
		arena_size = (size_t)pages * 65536 + 4 * len + (256u << 10);
	}
	void *arena = malloc(arena_size);
	if (arena == NULL) {
		fprintf(stderr, "wasmrun: no memory for an arena of %zu bytes\n", arena_size);
		return 2;
	}

	if (mutate > 0) {
		run_mutations(bin, len, arena, arena_size, name, pages, mutate);
		free(bin);
		free(arena);
		return 0;
	}

	wasm_abi_env env = {.ops = &ops, .ctx = &r, .app_name = name};
	wasm_config cfg = {
	    .hosts = wasm_abi_hosts,
	    .nhosts = wasm_abi_nhosts,
	    .user = &env,
	    .memory_pages = pages,
	    .stack_slots = stack_slots,
	    .call_depth = call_depth,
	};
	wasm_instance *inst;
	wasm_status st;
	double t0 = seconds();
	wasm_code code = wasm_instantiate(&inst, arena, arena_size, bin, len, &cfg, &st);
	double t1 = seconds();
	free(bin);
	if (code != WASM_OK) {
		printf("end refused: %s\n", st.msg);
		free(arena);
		return 0;
	}
	wasm_stats stats;
	wasm_get_stats(inst, &stats);
	printf("# instantiated in %.3f ms: arena %zu bytes used (code %zu, stacks %zu, memory %" PRIu32 " pages)\n",
	       (t1 - t0) * 1e3, stats.arena_used, stats.code_bytes, stats.stack_bytes, stats.memory_pages);

	if (ninvokes > 0 || invoke_file != NULL) {
		for (int i = 0; i < ninvokes; i++) {
			invoke(inst, invokes[i], fuel);
		}
		FILE *f = invoke_file != NULL ? fopen(invoke_file, "r") : NULL;
		char line[1024];
		while (f != NULL && fgets(line, sizeof line, f) != NULL) {
			line[strcspn(line, "\r\n")] = 0;
			if (line[0] != 0) {
				invoke(inst, line, fuel);
			}
		}
		if (f != NULL) {
			fclose(f);
		}
		free(arena);
		return 0;
	}
	if (wasm_abi_check(inst, &st) != WASM_OK) {
		printf("end refused: %s\n", st.msg);
		free(arena);
		return 0;
	}

	uint32_t start, tick;
	bool has_tick = wasm_export_func(inst, "tick", &tick);
	int end = 0;
	if (wasm_export_func(inst, "_start", &start)) {
		end = call(inst, &r, &env, "_start", start, fuel);
	} else if (wasm_export_func(inst, "_initialize", &start)) {
		end = call(inst, &r, &env, "_initialize", start, fuel);
	}
	if (end == 0 && bench > 0) {
		uint32_t f;
		if (!wasm_export_func(inst, bench_func, &f)) {
			fprintf(stderr, "wasmrun: no export %s\n", bench_func);
			return 2;
		}
		r.quiet = true;
		double b0 = seconds();
		for (long i = 0; i < bench && end == 0; i++) {
			r.now_ms += period_ms;
			r.call_start_ms = r.now_ms;
			if (wasm_call(inst, f, NULL, 0, NULL, fuel, &st) != WASM_OK) {
				printf("# bench stopped: %s\n", st.msg);
				end = -1;
			}
			flush_batch(&r);
		}
		double b1 = seconds();
		printf("# bench %s calls=%ld ns_per_call=%.1f\n", bench_func, bench, (b1 - b0) * 1e9 / (double)bench);
		free(arena);
		return 0;
	}
	for (long i = 0; i < ticks && end == 0 && has_tick; i++) {
		r.now_ms += period_ms;
		end = call(inst, &r, &env, "tick", tick, fuel);
	}
	if (end == 1 || (end == 0 && !has_tick)) {
		puts("end exited");
	} else if (end == 0) {
		puts("end running");
	}
	wasm_get_stats(inst, &stats);
	printf("# peak use: %" PRIu32 " value stack slots, %" PRIu32 " nested calls, %" PRIu32 " memory pages\n",
	       stats.stack_peak, stats.depth_peak, stats.memory_pages);
	free(arena);
	return 0;
}
