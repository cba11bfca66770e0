//go:build ignore

/* apps.c: see apps.h. */
#include "apps.h"

#include <stddef.h>
#include <string.h>

#include "sha256.h"
#include "wasm/abi.h"
#include "wasm/wasm.h"

typedef struct {
	bool present;
	char version[PROTO_MAX_NAME + 2];
	uint8_t sha[32];
	uint32_t size;
	proto_limits limits;
	uint8_t bytes[APPS_MAX_MODULE];
} module;

typedef struct {
	bool used;
	char name[PROTO_MAX_NAME + 1];
	module mods[2]; /* current and previous */
	int cur;        /* index of the current module in mods */
	uint8_t state;  /* PROTO_STATE_* of the current version */
	char reason[WASM_MSG_MAX + 8];

	/* A transfer under way. */
	bool xfer;
	char xversion[PROTO_MAX_NAME + 2];
	uint8_t xsha[32];
	uint32_t xsize, xheld;
	proto_limits xlimits;
	uint8_t xbuf[APPS_MAX_MODULE];

	/* The running instance. */
	wasm_instance *inst;
	uint32_t call_ms, deadline; /* the time limit of a call, and of the one under way */
	wasm_abi_env env;
	uint32_t tick, fuel, period_ms, next_tick, started_ms;
	bool has_tick;
	uint8_t arena[APPS_ARENA];

	/* The telemetry batch of the current call. */
	char names[WASM_ABI_MAX_NAMES][WASM_ABI_MAX_NAME + 1];
	proto_value values[WASM_ABI_MAX_NAMES];
	uint16_t nvalues;
} app;

static app apps[APPS_SLOTS];
static apps_io io;
static proto_msg msg; /* a message being built */

static proto_text text(const char *z) { return (proto_text){z, strlen(z)}; }
static bool text_eq(proto_text t, const char *z) { return t.n == strlen(z) && memcmp(t.p, z, t.n) == 0; }

static void copy_text(char *dst, size_t cap, proto_text t)
{
	size_t n = t.n < cap - 1 ? t.n : cap - 1;
	memcpy(dst, t.p, n);
	dst[n] = '\0';
}

static app *find(proto_text name)
{
	for (int i = 0; i < APPS_SLOTS; i++) {
		if (apps[i].used && text_eq(name, apps[i].name)) {
			return &apps[i];
		}
	}
	return NULL;
}

/* clear empties a slot: no instance, no versions, no transfer. */
static void clear(app *a)
{
	memset(a, 0, offsetof(app, xbuf)); /* not the big buffers */
}

/* find_or_add returns the slot of the app called name, or a free one; NULL
 * when every slot holds an app (the gateway removes the apps a board is
 * no longer meant to run, which frees their slots). */
static app *find_or_add(proto_text name)
{
	app *a = find(name);
	for (int i = 0; a == NULL && i < APPS_SLOTS; i++) {
		if (!apps[i].used) {
			a = &apps[i];
			clear(a);
			a->used = true;
			copy_text(a->name, sizeof a->name, name);
		}
	}
	return a;
}

static module *current(app *a) { return a->mods[a->cur].present ? &a->mods[a->cur] : NULL; }
static module *previous(app *a) { return a->mods[1 - a->cur].present ? &a->mods[1 - a->cur] : NULL; }

/* ---- messages ---- */

static void begin(uint16_t type, uint64_t re)
{
	memset(&msg, 0, sizeof msg);
	msg.type = type;
	msg.re = re;
}

static void fill_info(proto_app_info *in, app *a)
{
	module *m = current(a);
	in->app = text(a->name);
	if (m != NULL) {
		in->version = text(m->version);
		in->sha256 = (proto_bytes){m->sha, 32};
	}
	in->state = a->state;
	in->reason = text(a->reason);
	module *p = previous(a);
	if (p != NULL) {
		in->previous = text(p->version);
	}
	if (m != NULL) {
		in->limits = m->limits;
	}
}

static void send_status(app *a)
{
	begin(PROTO_APP_STATUS, 0);
	fill_info(&msg.body.app_status, a);
	io.send(&msg);
}

/* send_failed reports a version that did not install. */
static void send_failed(app *a, const char *version, const uint8_t *sha, const char *reason)
{
	begin(PROTO_APP_STATUS, 0);
	msg.body.app_status.app = text(a->name);
	msg.body.app_status.version = text(version);
	msg.body.app_status.sha256 = (proto_bytes){sha, 32};
	msg.body.app_status.state = PROTO_STATE_FAILED;
	msg.body.app_status.reason = text(reason);
	io.send(&msg);
}

static void send_error(uint64_t re, uint16_t code, const char *why)
{
	begin(PROTO_ERROR, re);
	msg.body.error.code = code;
	msg.body.error.text = text(why);
	io.send(&msg);
}

static void send_deploy_status(uint64_t re, app *a, const char *version, const uint8_t *sha, uint8_t state,
                               uint32_t received, const char *reason)
{
	begin(PROTO_DEPLOY_STATUS, re);
	msg.body.deploy_status.app = text(a->name);
	msg.body.deploy_status.version = text(version);
	msg.body.deploy_status.sha256 = (proto_bytes){sha, 32};
	msg.body.deploy_status.state = state;
	msg.body.deploy_status.received = received;
	msg.body.deploy_status.reason = text(reason ? reason : "");
	io.send(&msg);
}

static void flush_telemetry(app *a)
{
	if (a->nvalues == 0) {
		return;
	}
	begin(PROTO_TELEMETRY, 0);
	msg.body.telemetry.app = text(a->name);
	for (uint16_t i = 0; i < a->nvalues; i++) {
		msg.body.telemetry.values[i] = a->values[i];
	}
	msg.body.telemetry.n_values = a->nvalues;
	io.send(&msg);
	a->nvalues = 0;
}

/* ---- the ABI's effects ---- */

static void abi_log(void *ctx, const uint8_t *p, uint32_t n)
{
	app *a = ctx;
	io.console(a->name, p, n);
	io.console(a->name, (const uint8_t *)"\n", 1);
}

static void abi_console(void *ctx, int fd, const uint8_t *p, uint32_t n)
{
	(void)fd;
	app *a = ctx;
	io.console(a->name, p, n);
}

static bool abi_telemetry(void *ctx, const uint8_t *name, uint32_t n, double value)
{
	app *a = ctx;
	for (uint16_t i = 0; i < a->nvalues; i++) {
		if (a->values[i].name.n == n && memcmp(a->values[i].name.p, name, n) == 0) {
			a->values[i].value = value;
			return true;
		}
	}
	if (a->nvalues == WASM_ABI_MAX_NAMES) {
		return false;
	}
	memcpy(a->names[a->nvalues], name, n);
	a->values[a->nvalues] = (proto_value){{a->names[a->nvalues], n}, value};
	a->nvalues++;
	return true;
}

static int64_t abi_now_ms(void *ctx)
{
	app *a = ctx;
	return (int64_t)(io.now_ms() - a->started_ms);
}

/* sleep_ms blocks the board (the link and the console wait in their
 * receive buffers): apps should prefer tick. */
static wasm_code abi_sleep_ms(void *ctx, int32_t ms, wasm_status *st)
{
	app *a = ctx;
	flush_telemetry(a);
	uint32_t until = io.now_ms() + (ms > 0 ? (uint32_t)ms : 0);
	if ((int32_t)(until - a->deadline) > 0) {
		/* The sleep would cross the call's time limit: the app ends. */
		wasm_status_set(st, WASM_TRAP_FUEL, "call exceeded its time limit in sleep_ms");
		return WASM_TRAP_FUEL;
	}
	while ((int32_t)(until - io.now_ms()) > 0) {
		__asm volatile("wfi");
	}
	return WASM_OK;
}

static uint64_t abi_clock_ns(void *ctx, uint32_t id)
{
	(void)ctx;
	(void)id;
	return (uint64_t)io.now_ms() * 1000000u;
}

static void abi_random(void *ctx, uint8_t *p, uint32_t n)
{
	/* No entropy source on this board: a counter-seeded xorshift. The app
	 * ABI promises randomness, not cryptographic strength, here. */
	static uint32_t x = 2463534242u;
	(void)ctx;
	x ^= io.now_ms();
	for (uint32_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

static const wasm_abi_ops abi_ops = {
	.log = abi_log, .console = abi_console, .telemetry = abi_telemetry, .now_ms = abi_now_ms,
	.sleep_ms = abi_sleep_ms, .clock_ns = abi_clock_ns, .random = abi_random,
};

/* ---- running ---- */

static void fail(app *a, const char *prefix, const wasm_status *st)
{
	a->inst = NULL;
	a->state = PROTO_STATE_FAILED;
	a->reason[0] = '\0';
	strncat(a->reason, prefix, sizeof a->reason - 1);
	strncat(a->reason, st->msg, sizeof a->reason - strlen(a->reason) - 1);
}

/* call runs one entry point; false when the app ended (failed or exited). */
static bool call(app *a, uint32_t fn)
{
	wasm_status st = {0};
	a->deadline = io.now_ms() + a->call_ms;
	wasm_code c = wasm_call(a->inst, fn, NULL, 0, NULL, a->fuel, &st);
	flush_telemetry(a);
	if (c == WASM_OK) {
		return true;
	}
	if (c == WASM_TRAP_EXIT && a->env.exit_code == 0) {
		a->inst = NULL;
		a->state = PROTO_STATE_EXITED;
		a->reason[0] = '\0';
		return false;
	}
	if (c == WASM_TRAP_FUEL) {
		if (strstr(st.msg, "sleep_ms") == NULL) {
			wasm_status_set(&st, c, "call exceeded its fuel budget");
		}
		fail(a, "time limit: ", &st);
	} else {
		fail(a, c == WASM_TRAP_EXIT ? "" : "trap: ", &st);
	}
	return false;
}

/* instantiate makes an instance of bin in a's arena under limits. */
static wasm_code instantiate(app *a, const uint8_t *bin, uint32_t size, const proto_limits *limits, wasm_status *st)
{
	memset(&a->env, 0, sizeof a->env);
	a->env.ops = &abi_ops;
	a->env.ctx = a;
	a->env.app_name = a->name;
	a->call_ms = limits->call_ms ? limits->call_ms : APPS_DEFAULT_CALL_MS;
	a->fuel = a->call_ms * APPS_FUEL_PER_MS;
	a->period_ms = limits->period_ms ? limits->period_ms : APPS_DEFAULT_PERIOD_MS;
	a->deadline = io.now_ms() + a->call_ms;
	wasm_config cfg = {
		.hosts = wasm_abi_hosts, .nhosts = wasm_abi_nhosts, .user = &a->env,
		.memory_pages = limits->memory_pages ? limits->memory_pages : APPS_DEFAULT_PAGES,
		.start_fuel = a->fuel,
	};
	a->inst = NULL;
	wasm_code c = wasm_instantiate(&a->inst, a->arena, sizeof a->arena, bin, size, &cfg, st);
	if (c == WASM_OK) {
		c = wasm_abi_check(a->inst, st);
	}
	if (c != WASM_OK) {
		a->inst = NULL;
	}
	return c;
}

/* start instantiates the current module and runs its entry point. */
static void start(app *a)
{
	module *m = current(a);
	a->inst = NULL;
	a->nvalues = 0;
	if (m == NULL) {
		return;
	}
	wasm_status st = {0};
	a->started_ms = io.now_ms();
	if (instantiate(a, m->bytes, m->size, &m->limits, &st) != WASM_OK) {
		fail(a, "invalid module: ", &st);
		return;
	}
	a->state = PROTO_STATE_RUNNING;
	a->reason[0] = '\0';
	a->has_tick = wasm_export_func(a->inst, "tick", &a->tick);
	uint32_t entry;
	if (wasm_export_func(a->inst, "_start", &entry) || wasm_export_func(a->inst, "_initialize", &entry)) {
		if (!call(a, entry)) {
			return;
		}
	}
	if (!a->has_tick) {
		a->inst = NULL;
		a->state = PROTO_STATE_EXITED;
		return;
	}
	a->next_tick = io.now_ms() + a->period_ms;
}

static void stop(app *a)
{
	a->inst = NULL;
	a->state = PROTO_STATE_STOPPED;
	a->reason[0] = '\0';
}

void apps_poll(uint32_t now)
{
	for (int i = 0; i < APPS_SLOTS; i++) {
		app *a = &apps[i];
		if (!a->used || a->inst == NULL || !a->has_tick || (int32_t)(now - a->next_tick) < 0) {
			continue;
		}
		if (!call(a, a->tick)) {
			send_status(a);
			continue;
		}
		/* Ticks that came due during a slow one collapse into one. */
		a->next_tick += a->period_ms;
		if ((int32_t)(io.now_ms() - a->next_tick) > 0) {
			a->next_tick = io.now_ms();
		}
	}
}

/* ---- requests ---- */

/* install verifies and validates the transfer and makes it the current
 * version; a module that fails either changes nothing installed. */
static void install(app *a)
{
	send_deploy_status(0, a, a->xversion, a->xsha, PROTO_STATE_VERIFYING, a->xsize, NULL);
	uint8_t sum[32];
	sha256(a->xbuf, a->xsize, sum);
	a->xfer = false;
	wasm_status st = {0};
	const char *reason = NULL;
	bool was_running = a->inst != NULL;
	if (memcmp(sum, a->xsha, 32) != 0) {
		reason = "sha256 mismatch: the bytes received are not the module";
	} else if (instantiate(a, a->xbuf, a->xsize, &a->xlimits, &st) != WASM_OK) {
		/* The check used the arena: a running version starts again. */
		static char why[WASM_MSG_MAX + 20];
		why[0] = '\0';
		strncat(why, "invalid module: ", sizeof why - 1);
		strncat(why, st.msg, sizeof why - strlen(why) - 1);
		reason = why;
	}
	if (reason != NULL) {
		send_deploy_status(0, a, a->xversion, a->xsha, PROTO_STATE_FAILED, 0, reason);
		send_failed(a, a->xversion, a->xsha, reason);
		if (current(a) == NULL) {
			a->used = false;
			return;
		}
		if (was_running) {
			start(a);
		}
		send_status(a);
		return;
	}
	/* The new version replaces the previous one; the current one becomes
	 * previous. */
	int slot = 1 - a->cur;
	module *m = &a->mods[slot];
	m->present = true;
	memcpy(m->version, a->xversion, sizeof m->version);
	memcpy(m->sha, a->xsha, 32);
	m->size = a->xsize;
	m->limits = a->xlimits;
	memcpy(m->bytes, a->xbuf, a->xsize);
	a->cur = slot;
	start(a);
	send_status(a);
}

/* relabel applies a deploy of the module the app runs already: a new
 * version name is recorded, new limits restart a running app under them.
 * Either is reported; the same manifest again changes nothing. */
static void relabel(app *a, module *cur, const proto_deploy *d)
{
	bool renamed = !text_eq(d->version, cur->version);
	bool limited = memcmp(&cur->limits, &d->limits, sizeof cur->limits) != 0;
	if (!renamed && !limited) {
		return;
	}
	copy_text(cur->version, sizeof cur->version, d->version);
	cur->limits = d->limits;
	if (limited && a->inst != NULL) {
		start(a);
	}
	send_status(a);
}

static void deploy(const proto_msg *req)
{
	const proto_deploy *d = &req->body.deploy;
	if (!proto_valid_name(d->app.p, d->app.n) || d->version.n == 0 || d->version.n > PROTO_MAX_NAME ||
	    d->sha256.n != 32 || d->size == 0) {
		send_error(req->id, PROTO_CODE_BAD_REQUEST, "deploy needs an app name, a version, a 32-byte sha256 and a size");
		return;
	}
	if (d->size > APPS_MAX_MODULE) {
		send_error(req->id, PROTO_CODE_TOO_LARGE, "module larger than this board holds (64 KiB)");
		return;
	}
	app *a = find_or_add(d->app);
	if (a == NULL) {
		send_error(req->id, PROTO_CODE_TOO_LARGE, "this board holds at most 2 apps: remove one first");
		return;
	}
	module *cur = current(a);
	if (cur != NULL && memcmp(cur->sha, d->sha256.p, 32) == 0) {
		relabel(a, cur, d);
		send_deploy_status(req->id, a, cur->version, cur->sha, a->state, cur->size, NULL);
		return;
	}
	if (!a->xfer || memcmp(a->xsha, d->sha256.p, 32) != 0 || a->xsize != d->size) {
		a->xfer = true;
		memcpy(a->xsha, d->sha256.p, 32);
		a->xsize = (uint32_t)d->size;
		a->xheld = 0;
		module *prev = previous(a);
		if (prev != NULL && memcmp(prev->sha, d->sha256.p, 32) == 0) {
			memcpy(a->xbuf, prev->bytes, prev->size);
			a->xheld = prev->size;
		}
	}
	copy_text(a->xversion, sizeof a->xversion, d->version);
	a->xlimits = d->limits;
	uint8_t state = a->xheld == a->xsize ? PROTO_STATE_VERIFYING : PROTO_STATE_TRANSFERRING;
	send_deploy_status(req->id, a, a->xversion, a->xsha, state, a->xheld, NULL);
	if (state == PROTO_STATE_VERIFYING) {
		install(a);
	}
}

static void chunk(const proto_msg *req)
{
	const proto_chunk *c = &req->body.chunk;
	app *a = find(c->app);
	if (a == NULL || !a->xfer || c->sha256.n != 32 || memcmp(a->xsha, c->sha256.p, 32) != 0) {
		send_error(req->id, PROTO_CODE_BAD_REQUEST, "no transfer of this module: send deploy first");
		return;
	}
	if (c->offset > a->xsize || c->data.n > a->xsize - c->offset) {
		send_error(req->id, PROTO_CODE_BAD_REQUEST, "chunk beyond the module's size");
		return;
	}
	uint32_t end = (uint32_t)c->offset + (uint32_t)c->data.n;
	if (end <= a->xheld) {
		begin(PROTO_ACK, req->id); /* a retransmission */
		io.send(&msg);
		return;
	}
	if (c->offset != a->xheld) {
		send_error(req->id, PROTO_CODE_BAD_REQUEST, "chunk does not start where the bytes held end");
		return;
	}
	memcpy(a->xbuf + c->offset, c->data.p, c->data.n);
	a->xheld = end;
	if (a->xheld == a->xsize) {
		install(a);
	}
	begin(PROTO_ACK, req->id);
	io.send(&msg);
}

/* remove uninstalls an app: its instance, both versions, any transfer
 * and its slot. An app the board does not have is removed already. */
static void remove_app(const proto_msg *req)
{
	app *a = find(req->body.app_ref.app);
	if (a != NULL) {
		clear(a);
		io.log("apps: removed an app");
	}
	begin(PROTO_ACK, req->id);
	io.send(&msg);
}

static void command(const proto_msg *req)
{
	app *a = find(req->body.app_ref.app);
	if (a == NULL || current(a) == NULL) {
		send_error(req->id, PROTO_CODE_UNKNOWN_APP, "no such app on this board");
		return;
	}
	switch (req->type) {
	case PROTO_START:
		if (a->inst == NULL) {
			start(a);
		}
		break;
	case PROTO_STOP:
		stop(a);
		break;
	}
	send_status(a);
	begin(PROTO_ACK, req->id);
	io.send(&msg);
}

void apps_request(const proto_msg *req)
{
	switch (req->type) {
	case PROTO_DEPLOY:
		deploy(req);
		break;
	case PROTO_CHUNK:
		chunk(req);
		break;
	case PROTO_START:
	case PROTO_STOP:
		command(req);
		break;
	case PROTO_REMOVE:
		remove_app(req);
		break;
	default:
		send_error(req->id, PROTO_CODE_UNSUPPORTED_TYPE, "this board does not handle that request");
	}
}

void apps_hello(proto_hello *h)
{
	h->n_apps = 0;
	for (int i = 0; i < APPS_SLOTS && h->n_apps < PROTO_MAX_APPS; i++) {
		if (apps[i].used && current(&apps[i]) != NULL) {
			fill_info(&h->apps[h->n_apps++], &apps[i]);
		}
	}
	h->max_module = APPS_MAX_MODULE;
}

void apps_describe(void (*line)(const char *s))
{
	static const char *states[] = {"unknown", "transferring", "verifying", "running", "stopped", "exited", "failed"};
	char buf[200];
	for (int i = 0; i < APPS_SLOTS; i++) {
		app *a = &apps[i];
		module *m = current(a);
		if (!a->used || m == NULL) {
			continue;
		}
		buf[0] = '\0';
		strncat(buf, a->name, sizeof buf - 1);
		strncat(buf, " ", sizeof buf - strlen(buf) - 1);
		strncat(buf, m->version, sizeof buf - strlen(buf) - 1);
		strncat(buf, " ", sizeof buf - strlen(buf) - 1);
		strncat(buf, a->state < 7 ? states[a->state] : "?", sizeof buf - strlen(buf) - 1);
		if (a->reason[0]) {
			strncat(buf, ": ", sizeof buf - strlen(buf) - 1);
			strncat(buf, a->reason, sizeof buf - strlen(buf) - 1);
		}
		line(buf);
	}
}

void apps_init(apps_io i) { io = i; }
