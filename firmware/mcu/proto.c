//go:build ignore

/*
 * proto.c: envelope and bodies of the southbound protocol (docs/protocol.md,
 * sections "Envelope", "Message types", "Unknown keys"). See proto.h.
 *
 * Decoding runs in two passes over the payload. The envelope pass reads keys
 * 1 to 4 and skips the body (key 5) and unknown keys with cbor_skip, which
 * checks the structural rules of the whole payload (no tags or indefinite
 * lengths, nesting, array and map limits) whatever the message type, as the
 * Go reference does before it looks at the type. The body pass then decodes
 * the body of a known type by its layout (see "message layouts").
 */
#include "proto.h"

#include <string.h>

const char *proto_strerror(proto_err e)
{
	switch (e) {
	case PROTO_OK: return "ok";
	case PROTO_ERR_MALFORMED: return "malformed";
	case PROTO_ERR_UNSUPPORTED_TYPE: return "unsupported message type";
	case PROTO_ERR_LIMIT: return "more elements than this device holds";
	case PROTO_ERR_NO_SPACE: return "output buffer too small";
	case PROTO_ERR_INVALID: return "message cannot be encoded";
	}
	return "unknown error";
}

uint16_t proto_wire_code(proto_err e)
{
	switch (e) {
	case PROTO_ERR_MALFORMED: return PROTO_CODE_MALFORMED;
	case PROTO_ERR_UNSUPPORTED_TYPE: return PROTO_CODE_UNSUPPORTED_TYPE;
	case PROTO_ERR_LIMIT: return PROTO_CODE_BAD_REQUEST;
	default: return PROTO_CODE_INTERNAL;
	}
}

static const char *const type_names[] = {
	NULL, "hello", "welcome", "enroll-request", "enroll-response", "heartbeat",
	"heartbeat-ack", "deploy", "chunk", "deploy-status", "start", "stop",
	NULL /* 12, retired */, "app-status", "telemetry", "console", "ack", "error",
	"renew-request", "renew-response", "remove",
};

const char *proto_type_name(uint16_t type)
{
	return type < sizeof type_names / sizeof type_names[0] ? type_names[type] : NULL;
}

bool proto_type_known(uint16_t type)
{
	return proto_type_name(type) != NULL;
}

bool proto_valid_name(const char *s, size_t n)
{
	if (s == NULL || n == 0 || n > PROTO_MAX_NAME) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && (c != '-' || i == 0 || i == n - 1)) {
			return false;
		}
	}
	return true;
}

/* ---- message layouts ---- */

/*
 * Every body, and the AppInfo and Limits maps nested in them, is a map with
 * keys 1..n that stands for a struct. Its layout says per key how the value
 * is coded and where it lives, so that one loop decodes and one loop encodes
 * every message. The tables are const: they stay in flash.
 */
enum {
	K_U8, K_U16, K_U32, K_U64, /* unsigned integers of 1 << kind bytes */
	K_I64,
	K_TEXT,
	K_BYTES,
	K_LIMITS, /* Deploy.Limits, a nested map */
	K_CAPS,   /* Hello.Capabilities, an array of text */
	K_APPS,   /* Hello.Apps, an array of AppInfo maps */
	K_VALUES, /* Telemetry.Values, a map of names to floats */
	K_OPT = 0x80 /* with a kind: the encoder omits the value when zero */
};

typedef struct {
	uint8_t kind; /* K_*, maybe | K_OPT */
	uint16_t off; /* of the member in its struct */
} member;

typedef struct {
	const member *m; /* m[k - 1] is key k */
	uint8_t n;
} layout;

_Static_assert(sizeof(proto_msg) <= UINT16_MAX, "member offsets fit uint16_t");

/* Bytes of a member of a kind. M refuses to build an entry whose member
 * has another size, which catches most slips in the tables below. */
#define KIND_SIZE(k)                                            \
	((k) <= K_U64      ? 1u << (k)                              \
	 : (k) == K_I64    ? sizeof(int64_t)                        \
	 : (k) <= K_BYTES  ? sizeof(proto_text) /* = bytes */       \
	 : (k) == K_LIMITS ? sizeof(proto_limits)                   \
	 : (k) == K_CAPS   ? sizeof(proto_text[PROTO_MAX_CAPS])     \
	 : (k) == K_APPS   ? sizeof(proto_app_info[PROTO_MAX_APPS]) \
	                   : sizeof(proto_value[PROTO_MAX_VALUES]))
#define M(kind, type, name)                    \
	{(kind), (uint16_t)(offsetof(type, name) + \
	                    0 * sizeof(char[KIND_SIZE((kind) & ~K_OPT) == sizeof(((type *)0)->name) ? 1 : -1]))}
#define LAYOUT(a) {(a), (uint8_t)(sizeof(a) / sizeof((a)[0]))}

#define O K_OPT
static const member app_info_m[] = {
	M(K_TEXT, proto_app_info, app), M(K_TEXT, proto_app_info, version), M(K_BYTES, proto_app_info, sha256),
	M(K_U8, proto_app_info, state), M(K_TEXT | O, proto_app_info, reason), M(K_TEXT | O, proto_app_info, previous),
	M(K_U64 | O, proto_app_info, received), M(K_LIMITS | O, proto_app_info, limits),
};
static const member hello_m[] = {
	M(K_TEXT, proto_hello, device), M(K_TEXT | O, proto_hello, board), M(K_CAPS | O, proto_hello, caps),
	M(K_TEXT | O, proto_hello, firmware), M(K_APPS | O, proto_hello, apps), M(K_U16, proto_hello, min_version),
	M(K_U16, proto_hello, max_version), M(K_U64 | O, proto_hello, max_module), M(K_I64 | O, proto_hello, cert_expiry),
};
static const member welcome_m[] = {
	M(K_U16, proto_welcome, version), M(K_U32, proto_welcome, heartbeat_ms), M(K_U32, proto_welcome, timeout_ms),
	M(K_U32, proto_welcome, max_frame), M(K_I64, proto_welcome, server_time),
};
static const member enroll_request_m[] = {
	M(K_TEXT, proto_enroll_request, token), M(K_BYTES, proto_enroll_request, csr),
};
static const member enroll_response_m[] = {
	M(K_TEXT, proto_enroll_response, device), M(K_BYTES, proto_enroll_response, cert),
	M(K_BYTES, proto_enroll_response, ca),
};
static const member heartbeat_m[] = {
	M(K_U64, proto_heartbeat, seq), M(K_U64 | O, proto_heartbeat, uptime_ms), M(K_U64 | O, proto_heartbeat, rtt_micro),
};
static const member heartbeat_ack_m[] = {M(K_I64, proto_heartbeat_ack, server_time)};
static const member limits_m[] = {
	M(K_U32 | O, proto_limits, memory_pages), M(K_U32 | O, proto_limits, call_ms), M(K_U32 | O, proto_limits, period_ms),
};
static const member deploy_m[] = {
	M(K_TEXT, proto_deploy, app), M(K_TEXT, proto_deploy, version), M(K_BYTES, proto_deploy, sha256),
	M(K_U64, proto_deploy, size), M(K_LIMITS | O, proto_deploy, limits),
};
static const member chunk_m[] = {
	M(K_TEXT, proto_chunk, app), M(K_BYTES, proto_chunk, sha256), M(K_U64, proto_chunk, offset),
	M(K_BYTES, proto_chunk, data),
};
static const member deploy_status_m[] = {
	M(K_TEXT, proto_deploy_status, app), M(K_TEXT, proto_deploy_status, version),
	M(K_BYTES, proto_deploy_status, sha256), M(K_U8, proto_deploy_status, state),
	M(K_U64, proto_deploy_status, received), M(K_TEXT | O, proto_deploy_status, reason),
};
static const member app_ref_m[] = {M(K_TEXT, proto_app_ref, app)};
static const member telemetry_m[] = {
	M(K_TEXT, proto_telemetry, app), M(K_VALUES, proto_telemetry, values), M(K_I64, proto_telemetry, time_ms),
};
static const member console_m[] = {M(K_BYTES, proto_console, data), M(K_TEXT | O, proto_console, app)};
static const member error_m[] = {M(K_U16, proto_error, code), M(K_TEXT | O, proto_error, text)};
static const member renew_request_m[] = {M(K_BYTES, proto_renew_request, csr)};
static const member renew_response_m[] = {M(K_BYTES, proto_renew_response, cert)};
/* Keys 1 to 4 of the envelope; the body (5) is read in a second pass. */
static const member envelope_m[] = {
	M(K_U16, proto_msg, version), M(K_U16, proto_msg, type), M(K_U64, proto_msg, id), M(K_U64, proto_msg, re),
};
#undef O

/* The body of each message type; Ack has no fields. */
static const layout bodies[] = {
	[PROTO_HELLO] = LAYOUT(hello_m),
	[PROTO_WELCOME] = LAYOUT(welcome_m),
	[PROTO_ENROLL_REQUEST] = LAYOUT(enroll_request_m),
	[PROTO_ENROLL_RESPONSE] = LAYOUT(enroll_response_m),
	[PROTO_HEARTBEAT] = LAYOUT(heartbeat_m),
	[PROTO_HEARTBEAT_ACK] = LAYOUT(heartbeat_ack_m),
	[PROTO_DEPLOY] = LAYOUT(deploy_m),
	[PROTO_CHUNK] = LAYOUT(chunk_m),
	[PROTO_DEPLOY_STATUS] = LAYOUT(deploy_status_m),
	[PROTO_START] = LAYOUT(app_ref_m),
	[PROTO_STOP] = LAYOUT(app_ref_m),
	[PROTO_APP_STATUS] = LAYOUT(app_info_m),
	[PROTO_TELEMETRY] = LAYOUT(telemetry_m),
	[PROTO_CONSOLE] = LAYOUT(console_m),
	[PROTO_ACK] = {NULL, 0},
	[PROTO_ERROR] = LAYOUT(error_m),
	[PROTO_RENEW_REQUEST] = LAYOUT(renew_request_m),
	[PROTO_RENEW_RESPONSE] = LAYOUT(renew_response_m),
	[PROTO_REMOVE] = LAYOUT(app_ref_m),
};
_Static_assert(sizeof bodies / sizeof bodies[0] == sizeof type_names / sizeof type_names[0], "a body per type");

static const layout limits_l = LAYOUT(limits_m);

static uint64_t load_uint(unsigned kind, const void *p)
{
	switch (kind) {
	case K_U8: return *(const uint8_t *)p;
	case K_U16: return *(const uint16_t *)p;
	case K_U32: return *(const uint32_t *)p;
	}
	return *(const uint64_t *)p; /* K_U64, and K_I64 for a test of zero */
}

static void store_uint(unsigned kind, void *p, uint64_t v)
{
	switch (kind) {
	case K_U8: *(uint8_t *)p = (uint8_t)v; return;
	case K_U16: *(uint16_t *)p = (uint16_t)v; return;
	case K_U32: *(uint32_t *)p = (uint32_t)v; return;
	}
	*(uint64_t *)p = v;
}

/* ---- decoding ---- */

/* Reports CBOR_ERR_DUP_KEY when a key of the map whose first key is at first,
 * and that comes before at, equals k. The bytes up to at were read already,
 * so this pass cannot fail otherwise. It costs a walk over the earlier pairs
 * per unknown key (at most 256 per map) and needs no memory. */
static cbor_err dup_before(const cbor_dec *d, const uint8_t *first, const uint8_t *at, const cbor_key *k)
{
	cbor_dec r = *d;
	r.p = first;
	while (r.p < at) {
		cbor_key prev;
		CBOR_TRY(cbor_read_key(&r, &prev));
		if (cbor_key_equal(&prev, k)) {
			return CBOR_ERR_DUP_KEY;
		}
		CBOR_TRY(cbor_skip(&r));
	}
	return CBOR_OK;
}

/* Iterator over a map decoded as a struct whose fields have keys 1..known. */
typedef struct {
	cbor_dec *d;
	const uint8_t *first; /* first key of the map */
	size_t left;          /* pairs not read yet */
	unsigned known;
	uint32_t seen; /* bit k set: key k read */
} fields;

static cbor_err fields_begin(cbor_dec *d, fields *f, unsigned known)
{
	size_t n;
	CBOR_TRY(cbor_enter_map(d, &n));
	f->d = d;
	f->first = d->p;
	f->left = n;
	f->known = known;
	f->seen = 0;
	return CBOR_OK;
}

/* Sets *key to the next known key (its value is next in the input), or to 0
 * at the end of the map, which it leaves. Unknown keys are checked for
 * duplicates and skipped with their values (spec section "Unknown keys"). */
static cbor_err fields_next(fields *f, unsigned *key)
{
	while (f->left > 0) {
		f->left--;
		const uint8_t *at = f->d->p;
		cbor_key k;
		CBOR_TRY(cbor_read_key(f->d, &k));
		if (!k.is_text && k.i >= 1 && k.i <= (int64_t)f->known) {
			uint32_t bit = (uint32_t)1 << k.i;
			if (f->seen & bit) {
				return CBOR_ERR_DUP_KEY;
			}
			f->seen |= bit;
			*key = (unsigned)k.i;
			return CBOR_OK;
		}
		CBOR_TRY(dup_before(f->d, f->first, at, &k));
		CBOR_TRY(cbor_skip(f->d));
	}
	cbor_leave(f->d);
	*key = 0;
	return CBOR_OK;
}

/* A value of a kind up to K_BYTES into *p. Null or undefined is an absent
 * value: *p keeps the zero it holds. */
static cbor_err dec_scalar(cbor_dec *d, unsigned kind, void *p)
{
	if (cbor_read_null(d)) {
		return CBOR_OK;
	}
	switch (kind) {
	case K_I64: return cbor_read_int(d, p);
	case K_TEXT: {
		proto_text *t = p;
		return cbor_read_text(d, &t->p, &t->n);
	}
	case K_BYTES: {
		proto_bytes *b = p;
		return cbor_read_bytes(d, &b->p, &b->n);
	}
	}
	uint64_t v;
	CBOR_TRY(cbor_read_uint(d, UINT64_MAX >> (64 - (8u << kind)), &v));
	store_uint(kind, p, v);
	return CBOR_OK;
}

static cbor_err dec_list(cbor_dec *d, bool apps, proto_hello *h, bool *limit);
static cbor_err dec_values(cbor_dec *d, proto_telemetry *t, bool *limit);

/* A map into the struct at base, by its layout. Nested maps hold only
 * scalars, so this recurses once at most. Null is an absent map, as for
 * every value below. */
static cbor_err dec_map(cbor_dec *d, const layout *l, void *base, bool *limit)
{
	fields f;
	unsigned k;
	if (cbor_read_null(d)) {
		return CBOR_OK;
	}
	CBOR_TRY(fields_begin(d, &f, l->n));
	for (;;) {
		CBOR_TRY(fields_next(&f, &k));
		if (k == 0) {
			return CBOR_OK;
		}
		const member *m = &l->m[k - 1];
		unsigned kind = m->kind & ~K_OPT;
		void *p = (uint8_t *)base + m->off;
		cbor_err c;
		switch (kind) {
		case K_LIMITS: c = dec_map(d, &limits_l, p, limit); break;
		case K_CAPS:
		case K_APPS: c = dec_list(d, kind == K_APPS, base, limit); break;
		case K_VALUES: c = dec_values(d, base, limit); break;
		default: c = dec_scalar(d, kind, p);
		}
		CBOR_TRY(c);
	}
}

/* Hello.Capabilities and Hello.Apps. Elements past what the struct holds
 * are checked, not kept: they are decoded over its last one, as the body of
 * a PROTO_ERR_LIMIT is not usable (proto.h); a scratch element would cost
 * its size in stack. */
static cbor_err dec_list(cbor_dec *d, bool apps, proto_hello *h, bool *limit)
{
	size_t max = apps ? PROTO_MAX_APPS : PROTO_MAX_CAPS;
	size_t n;
	if (cbor_read_null(d)) {
		return CBOR_OK;
	}
	CBOR_TRY(cbor_enter_array(d, &n));
	for (size_t i = 0; i < n; i++) {
		size_t at = i < max ? i : max - 1;
		*limit |= i >= max;
		CBOR_TRY(apps ? dec_map(d, &bodies[PROTO_APP_STATUS], &h->apps[at], limit)
		              : dec_scalar(d, K_TEXT, &h->caps[at]));
	}
	cbor_leave(d);
	*(apps ? &h->n_apps : &h->n_caps) = (uint16_t)(n < max ? n : max);
	return CBOR_OK;
}

/* Telemetry.Values: a map of text names to floats; names are unique. Pairs
 * past PROTO_MAX_VALUES are checked, not kept. Not inlined: its locals
 * would take stack in every frame of the dec_map recursion. */
__attribute__((noinline)) static cbor_err dec_values(cbor_dec *d, proto_telemetry *t, bool *limit)
{
	size_t n;
	if (cbor_read_null(d)) {
		return CBOR_OK;
	}
	CBOR_TRY(cbor_enter_map(d, &n));
	const uint8_t *first = d->p;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *at = d->p;
		uint8_t major;
		CBOR_TRY(cbor_peek_major(d, &major));
		if (major != CBOR_MAJOR_TEXT) {
			return CBOR_ERR_TYPE;
		}
		cbor_key k;
		CBOR_TRY(cbor_read_key(d, &k));
		CBOR_TRY(dup_before(d, first, at, &k));
		double v = 0; /* null or undefined reads as 0 */
		if (!cbor_read_null(d)) {
			CBOR_TRY(cbor_read_float(d, &v));
		}
		if (i < PROTO_MAX_VALUES) {
			t->values[i].name.p = k.s;
			t->values[i].name.n = k.n;
			t->values[i].value = v;
		} else {
			*limit = true;
		}
	}
	cbor_leave(d);
	t->n_values = (uint16_t)(n < PROTO_MAX_VALUES ? n : PROTO_MAX_VALUES);
	return CBOR_OK;
}

proto_err proto_decode(const uint8_t *buf, size_t len, proto_msg *m, cbor_err *cause)
{
	memset(m, 0, sizeof *m);
	cbor_err c;
	cbor_dec d;
	fields f;
	unsigned k;
	const uint8_t *body = NULL;
	size_t body_len = 0;

	cbor_dec_init(&d, buf, len);
	if ((c = fields_begin(&d, &f, 5)) != CBOR_OK) {
		goto malformed;
	}
	for (;;) {
		if ((c = fields_next(&f, &k)) != CBOR_OK) {
			goto malformed;
		}
		if (k == 0) {
			break;
		}
		if (k == 5) {
			body = d.p;
			c = cbor_skip(&d);
			body_len = (size_t)(d.p - body);
		} else {
			const member *e = &envelope_m[k - 1];
			c = dec_scalar(&d, e->kind, (uint8_t *)m + e->off);
		}
		if (c != CBOR_OK) {
			goto malformed;
		}
	}
	if (!cbor_dec_done(&d)) {
		c = CBOR_ERR_TRAILING;
		goto malformed;
	}
	if (m->type == 0) {
		c = CBOR_ERR_TYPE; /* an envelope needs a message type */
		goto malformed;
	}
	if (!proto_type_known(m->type)) {
		return PROTO_ERR_UNSUPPORTED_TYPE;
	}
	if (body == NULL) {
		return PROTO_OK; /* an absent body is an empty map */
	}
	if ((body[0] >> 5) != CBOR_MAJOR_MAP) {
		c = CBOR_ERR_TYPE; /* also null: the body must be a map */
		goto malformed;
	}
	cbor_dec bd;
	cbor_dec_init(&bd, body, body_len);
	bd.depth = 1; /* inside the envelope */
	bool limit = false;
	if ((c = dec_map(&bd, &bodies[m->type], &m->body, &limit)) != CBOR_OK) {
		goto malformed;
	}
	return limit ? PROTO_ERR_LIMIT : PROTO_OK;

malformed:
	if (cause != NULL) {
		*cause = c;
	}
	return PROTO_ERR_MALFORMED;
}

/* ---- encoding ---- */

/* Marks the encoding as impossible (PROTO_ERR_INVALID) unless it failed
 * already. */
static void invalid(cbor_enc *e)
{
	if (e->err == CBOR_OK) {
		e->err = CBOR_ERR_ARG;
	}
}

static void put_text(cbor_enc *e, proto_text t)
{
	if ((t.p == NULL && t.n > 0) || !cbor_utf8_valid((const uint8_t *)t.p, t.n)) {
		invalid(e);
		return;
	}
	cbor_write_text(e, t.p, t.n);
}

static size_t count_present(const layout *l, const void *base);

/* Whether a member is written: a required one always, an optional one when
 * it is not zero. */
static bool present(const member *m, const void *base)
{
	const void *p = (const uint8_t *)base + m->off;
	switch (m->kind) {
	case K_TEXT | K_OPT: return ((const proto_text *)p)->n > 0;
	case K_BYTES | K_OPT: return ((const proto_bytes *)p)->n > 0;
	case K_LIMITS | K_OPT: return count_present(&limits_l, p) > 0;
	case K_CAPS | K_OPT: return ((const proto_hello *)base)->n_caps > 0;
	case K_APPS | K_OPT: return ((const proto_hello *)base)->n_apps > 0;
	}
	return !(m->kind & K_OPT) || load_uint(m->kind & ~K_OPT, p) != 0;
}

static size_t count_present(const layout *l, const void *base)
{
	size_t n = 0;
	for (size_t i = 0; i < l->n; i++) {
		n += present(&l->m[i], base);
	}
	return n;
}

/* A value of a kind up to K_BYTES. */
static void enc_scalar(cbor_enc *e, unsigned kind, const void *p)
{
	switch (kind) {
	case K_I64: cbor_write_int(e, *(const int64_t *)p); return;
	case K_TEXT: put_text(e, *(const proto_text *)p); return;
	case K_BYTES: {
		const proto_bytes *b = p;
		if (b->p == NULL && b->n > 0) {
			invalid(e);
			return;
		}
		cbor_write_bytes(e, b->p, b->n);
		return;
	}
	}
	cbor_write_uint(e, load_uint(kind, p));
}

/* The struct at base as a map, by its layout, keys in ascending order. order
 * is the canonical order of the telemetry values. Nested maps hold only
 * scalars, so this recurses once at most. */
static void enc_map(cbor_enc *e, const layout *l, const void *base, const uint8_t *order)
{
	cbor_write_map(e, count_present(l, base));
	for (unsigned k = 1; k <= l->n; k++) {
		const member *m = &l->m[k - 1];
		unsigned kind = m->kind & ~K_OPT;
		const void *p = (const uint8_t *)base + m->off;
		const proto_hello *h = base;
		const proto_telemetry *t = base;
		if (!present(m, base)) {
			continue;
		}
		cbor_write_uint(e, k);
		switch (kind) {
		case K_LIMITS:
			enc_map(e, &limits_l, p, order);
			break;
		case K_CAPS:
			cbor_write_array(e, h->n_caps);
			for (size_t i = 0; i < h->n_caps; i++) {
				put_text(e, h->caps[i]);
			}
			break;
		case K_APPS:
			cbor_write_array(e, h->n_apps);
			for (size_t i = 0; i < h->n_apps; i++) {
				enc_map(e, &bodies[PROTO_APP_STATUS], &h->apps[i], order);
			}
			break;
		case K_VALUES:
			cbor_write_map(e, t->n_values);
			for (size_t i = 0; i < t->n_values; i++) {
				const proto_value *v = &t->values[order[i]];
				put_text(e, v->name);
				cbor_write_float(e, v->value);
			}
			break;
		default:
			enc_scalar(e, kind, p);
		}
	}
}

/* Canonical order of telemetry names as map keys: the bytewise order of
 * their encodings, which for text strings is shorter first, then bytewise. */
static int name_cmp(const proto_text *a, const proto_text *b)
{
	if (a->n != b->n) {
		return a->n < b->n ? -1 : 1;
	}
	return memcmp(a->p, b->p, a->n);
}

/* Sets order to the indexes of the telemetry values in canonical order;
 * false when they cannot be sent (too many, a name empty, longer than
 * PROTO_MAX_VALUE_NAME or repeated). */
static bool sort_values(const proto_telemetry *t, uint8_t order[PROTO_MAX_VALUES])
{
	size_t n = t->n_values;
	if (n > PROTO_MAX_VALUES) {
		return false;
	}
	/* Insertion sort of at most 32 indexes. */
	for (size_t i = 0; i < n; i++) {
		const proto_text *name = &t->values[i].name;
		if (name->n == 0 || name->n > PROTO_MAX_VALUE_NAME || name->p == NULL) {
			return false;
		}
		size_t j = i;
		for (; j > 0; j--) {
			int c = name_cmp(&t->values[order[j - 1]].name, name);
			if (c == 0) {
				return false;
			}
			if (c < 0) {
				break;
			}
			order[j] = order[j - 1];
		}
		order[j] = (uint8_t)i;
	}
	return true;
}

static void field_uint(cbor_enc *e, unsigned key, uint64_t v)
{
	cbor_write_uint(e, key);
	cbor_write_uint(e, v);
}

proto_err proto_encode(const proto_msg *m, uint8_t *buf, size_t cap, size_t *len)
{
	cbor_enc e;
	cbor_enc_init(&e, buf, cap);
	if (!proto_type_known(m->type)) {
		*len = 0;
		return PROTO_ERR_INVALID;
	}
	cbor_write_map(&e, m->re != 0 ? 5 : 4);
	field_uint(&e, 1, m->version != 0 ? m->version : PROTO_VERSION);
	field_uint(&e, 2, m->type);
	field_uint(&e, 3, m->id);
	if (m->re != 0) {
		field_uint(&e, 4, m->re);
	}
	cbor_write_uint(&e, 5);
	/* Counts and telemetry names are checked before the body is written. */
	const proto_hello *h = &m->body.hello;
	uint8_t order[PROTO_MAX_VALUES];
	if ((m->type == PROTO_HELLO && (h->n_caps > PROTO_MAX_CAPS || h->n_apps > PROTO_MAX_APPS)) ||
	    (m->type == PROTO_TELEMETRY && !sort_values(&m->body.telemetry, order))) {
		invalid(&e);
	} else {
		enc_map(&e, &bodies[m->type], &m->body, order);
	}
	switch (cbor_enc_finish(&e, len)) {
	case CBOR_OK: return PROTO_OK;
	case CBOR_ERR_NO_SPACE: return PROTO_ERR_NO_SPACE;
	default: return PROTO_ERR_INVALID;
	}
}
