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
 * the body of a known type field by field.
 */
#include "proto.h"

#include <string.h>

#define TRY(x)                          \
	do {                                \
		cbor_err err_ = (x);            \
		if (err_ != CBOR_OK) {          \
			return err_;                \
		}                               \
	} while (0)

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
	"rollback", "app-status", "telemetry", "console", "ack", "error",
	"renew-request", "renew-response",
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
		TRY(cbor_read_key(&r, &prev));
		if (cbor_key_equal(&prev, k)) {
			return CBOR_ERR_DUP_KEY;
		}
		TRY(cbor_skip(&r));
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
	TRY(cbor_enter_map(d, &n));
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
		TRY(cbor_read_key(f->d, &k));
		if (!k.is_text && k.i >= 1 && k.i <= (int64_t)f->known) {
			uint32_t bit = (uint32_t)1 << k.i;
			if (f->seen & bit) {
				return CBOR_ERR_DUP_KEY;
			}
			f->seen |= bit;
			*key = (unsigned)k.i;
			return CBOR_OK;
		}
		TRY(dup_before(f->d, f->first, at, &k));
		TRY(cbor_skip(f->d));
	}
	cbor_leave(f->d);
	*key = 0;
	return CBOR_OK;
}

/* Field readers: null or undefined is the zero value. */

static cbor_err get_uint(cbor_dec *d, uint64_t max, uint64_t *v)
{
	if (cbor_read_null(d)) {
		*v = 0;
		return CBOR_OK;
	}
	return cbor_read_uint(d, max, v);
}

static cbor_err get_u8(cbor_dec *d, uint8_t *v)
{
	uint64_t x;
	TRY(get_uint(d, UINT8_MAX, &x));
	*v = (uint8_t)x;
	return CBOR_OK;
}

static cbor_err get_u16(cbor_dec *d, uint16_t *v)
{
	uint64_t x;
	TRY(get_uint(d, UINT16_MAX, &x));
	*v = (uint16_t)x;
	return CBOR_OK;
}

static cbor_err get_u32(cbor_dec *d, uint32_t *v)
{
	uint64_t x;
	TRY(get_uint(d, UINT32_MAX, &x));
	*v = (uint32_t)x;
	return CBOR_OK;
}

static cbor_err get_u64(cbor_dec *d, uint64_t *v)
{
	return get_uint(d, UINT64_MAX, v);
}

static cbor_err get_i64(cbor_dec *d, int64_t *v)
{
	if (cbor_read_null(d)) {
		*v = 0;
		return CBOR_OK;
	}
	return cbor_read_int(d, v);
}

static cbor_err get_text(cbor_dec *d, proto_text *t)
{
	t->p = NULL;
	t->n = 0;
	if (cbor_read_null(d)) {
		return CBOR_OK;
	}
	return cbor_read_text(d, &t->p, &t->n);
}

static cbor_err get_bytes(cbor_dec *d, proto_bytes *b)
{
	b->p = NULL;
	b->n = 0;
	if (cbor_read_null(d)) {
		return CBOR_OK;
	}
	return cbor_read_bytes(d, &b->p, &b->n);
}

static cbor_err get_float(cbor_dec *d, double *v)
{
	if (cbor_read_null(d)) {
		*v = 0;
		return CBOR_OK;
	}
	return cbor_read_float(d, v);
}

/* AppInfo; *a must be zero on entry. */
static cbor_err dec_app_info(cbor_dec *d, proto_app_info *a)
{
	if (cbor_read_null(d)) {
		return CBOR_OK;
	}
	fields f;
	unsigned k;
	TRY(fields_begin(d, &f, 7));
	for (;;) {
		TRY(fields_next(&f, &k));
		switch (k) {
		case 0: return CBOR_OK;
		case 1: TRY(get_text(d, &a->app)); break;
		case 2: TRY(get_text(d, &a->version)); break;
		case 3: TRY(get_bytes(d, &a->sha256)); break;
		case 4: TRY(get_u8(d, &a->state)); break;
		case 5: TRY(get_text(d, &a->reason)); break;
		case 6: TRY(get_text(d, &a->previous)); break;
		case 7: TRY(get_u64(d, &a->received)); break;
		}
	}
}

/* Hello.Capabilities: elements past PROTO_MAX_CAPS are checked, not kept. */
static cbor_err dec_caps(cbor_dec *d, proto_hello *h, bool *limit)
{
	size_t n;
	if (cbor_read_null(d)) {
		return CBOR_OK;
	}
	TRY(cbor_enter_array(d, &n));
	for (size_t i = 0; i < n; i++) {
		proto_text t;
		TRY(get_text(d, &t));
		if (i < PROTO_MAX_CAPS) {
			h->caps[i] = t;
		} else {
			*limit = true;
		}
	}
	cbor_leave(d);
	h->n_caps = (uint16_t)(n < PROTO_MAX_CAPS ? n : PROTO_MAX_CAPS);
	return CBOR_OK;
}

static cbor_err dec_apps(cbor_dec *d, proto_hello *h, bool *limit)
{
	size_t n;
	if (cbor_read_null(d)) {
		return CBOR_OK;
	}
	TRY(cbor_enter_array(d, &n));
	for (size_t i = 0; i < n; i++) {
		if (i < PROTO_MAX_APPS) {
			TRY(dec_app_info(d, &h->apps[i]));
		} else {
			proto_app_info scratch;
			memset(&scratch, 0, sizeof scratch);
			TRY(dec_app_info(d, &scratch));
			*limit = true;
		}
	}
	cbor_leave(d);
	h->n_apps = (uint16_t)(n < PROTO_MAX_APPS ? n : PROTO_MAX_APPS);
	return CBOR_OK;
}

static cbor_err dec_hello(cbor_dec *d, proto_hello *h, bool *limit)
{
	fields f;
	unsigned k;
	TRY(fields_begin(d, &f, 9));
	for (;;) {
		TRY(fields_next(&f, &k));
		switch (k) {
		case 0: return CBOR_OK;
		case 1: TRY(get_text(d, &h->device)); break;
		case 2: TRY(get_text(d, &h->board)); break;
		case 3: TRY(dec_caps(d, h, limit)); break;
		case 4: TRY(get_text(d, &h->firmware)); break;
		case 5: TRY(dec_apps(d, h, limit)); break;
		case 6: TRY(get_u16(d, &h->min_version)); break;
		case 7: TRY(get_u16(d, &h->max_version)); break;
		case 8: TRY(get_u64(d, &h->max_module)); break;
		case 9: TRY(get_i64(d, &h->cert_expiry)); break;
		}
	}
}

static cbor_err dec_welcome(cbor_dec *d, proto_welcome *w)
{
	fields f;
	unsigned k;
	TRY(fields_begin(d, &f, 5));
	for (;;) {
		TRY(fields_next(&f, &k));
		switch (k) {
		case 0: return CBOR_OK;
		case 1: TRY(get_u16(d, &w->version)); break;
		case 2: TRY(get_u32(d, &w->heartbeat_ms)); break;
		case 3: TRY(get_u32(d, &w->timeout_ms)); break;
		case 4: TRY(get_u32(d, &w->max_frame)); break;
		case 5: TRY(get_i64(d, &w->server_time)); break;
		}
	}
}

static cbor_err dec_enroll_request(cbor_dec *d, proto_enroll_request *r)
{
	fields f;
	unsigned k;
	TRY(fields_begin(d, &f, 2));
	for (;;) {
		TRY(fields_next(&f, &k));
		switch (k) {
		case 0: return CBOR_OK;
		case 1: TRY(get_text(d, &r->token)); break;
		case 2: TRY(get_bytes(d, &r->csr)); break;
		}
	}
}

static cbor_err dec_enroll_response(cbor_dec *d, proto_enroll_response *r)
{
	fields f;
	unsigned k;
	TRY(fields_begin(d, &f, 3));
	for (;;) {
		TRY(fields_next(&f, &k));
		switch (k) {
		case 0: return CBOR_OK;
		case 1: TRY(get_text(d, &r->device)); break;
		case 2: TRY(get_bytes(d, &r->cert)); break;
		case 3: TRY(get_bytes(d, &r->ca)); break;
		}
	}
}

static cbor_err dec_heartbeat(cbor_dec *d, proto_heartbeat *h)
{
	fields f;
	unsigned k;
	TRY(fields_begin(d, &f, 3));
	for (;;) {
		TRY(fields_next(&f, &k));
		switch (k) {
		case 0: return CBOR_OK;
		case 1: TRY(get_u64(d, &h->seq)); break;
		case 2: TRY(get_u64(d, &h->uptime_ms)); break;
		case 3: TRY(get_u64(d, &h->rtt_micro)); break;
		}
	}
}

static cbor_err dec_heartbeat_ack(cbor_dec *d, proto_heartbeat_ack *h)
{
	fields f;
	unsigned k;
	TRY(fields_begin(d, &f, 1));
	for (;;) {
		TRY(fields_next(&f, &k));
		switch (k) {
		case 0: return CBOR_OK;
		case 1: TRY(get_i64(d, &h->server_time)); break;
		}
	}
}

static cbor_err dec_limits(cbor_dec *d, proto_limits *l)
{
	if (cbor_read_null(d)) {
		return CBOR_OK;
	}
	fields f;
	unsigned k;
	TRY(fields_begin(d, &f, 3));
	for (;;) {
		TRY(fields_next(&f, &k));
		switch (k) {
		case 0: return CBOR_OK;
		case 1: TRY(get_u32(d, &l->memory_pages)); break;
		case 2: TRY(get_u32(d, &l->call_ms)); break;
		case 3: TRY(get_u32(d, &l->period_ms)); break;
		}
	}
}

static cbor_err dec_deploy(cbor_dec *d, proto_deploy *p)
{
	fields f;
	unsigned k;
	TRY(fields_begin(d, &f, 5));
	for (;;) {
		TRY(fields_next(&f, &k));
		switch (k) {
		case 0: return CBOR_OK;
		case 1: TRY(get_text(d, &p->app)); break;
		case 2: TRY(get_text(d, &p->version)); break;
		case 3: TRY(get_bytes(d, &p->sha256)); break;
		case 4: TRY(get_u64(d, &p->size)); break;
		case 5: TRY(dec_limits(d, &p->limits)); break;
		}
	}
}

static cbor_err dec_chunk(cbor_dec *d, proto_chunk *c)
{
	fields f;
	unsigned k;
	TRY(fields_begin(d, &f, 4));
	for (;;) {
		TRY(fields_next(&f, &k));
		switch (k) {
		case 0: return CBOR_OK;
		case 1: TRY(get_text(d, &c->app)); break;
		case 2: TRY(get_bytes(d, &c->sha256)); break;
		case 3: TRY(get_u64(d, &c->offset)); break;
		case 4: TRY(get_bytes(d, &c->data)); break;
		}
	}
}

static cbor_err dec_deploy_status(cbor_dec *d, proto_deploy_status *s)
{
	fields f;
	unsigned k;
	TRY(fields_begin(d, &f, 6));
	for (;;) {
		TRY(fields_next(&f, &k));
		switch (k) {
		case 0: return CBOR_OK;
		case 1: TRY(get_text(d, &s->app)); break;
		case 2: TRY(get_text(d, &s->version)); break;
		case 3: TRY(get_bytes(d, &s->sha256)); break;
		case 4: TRY(get_u8(d, &s->state)); break;
		case 5: TRY(get_u64(d, &s->received)); break;
		case 6: TRY(get_text(d, &s->reason)); break;
		}
	}
}

static cbor_err dec_app_ref(cbor_dec *d, proto_app_ref *r)
{
	fields f;
	unsigned k;
	TRY(fields_begin(d, &f, 1));
	for (;;) {
		TRY(fields_next(&f, &k));
		switch (k) {
		case 0: return CBOR_OK;
		case 1: TRY(get_text(d, &r->app)); break;
		}
	}
}

/* Telemetry.Values: a map of text names to floats; names are unique. Pairs
 * past PROTO_MAX_VALUES are checked, not kept. */
static cbor_err dec_values(cbor_dec *d, proto_telemetry *t, bool *limit)
{
	size_t n;
	if (cbor_read_null(d)) {
		return CBOR_OK;
	}
	TRY(cbor_enter_map(d, &n));
	const uint8_t *first = d->p;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *at = d->p;
		uint8_t major;
		TRY(cbor_peek_major(d, &major));
		if (major != CBOR_MAJOR_TEXT) {
			return CBOR_ERR_TYPE;
		}
		cbor_key k;
		TRY(cbor_read_key(d, &k));
		TRY(dup_before(d, first, at, &k));
		double v;
		TRY(get_float(d, &v));
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

static cbor_err dec_telemetry(cbor_dec *d, proto_telemetry *t, bool *limit)
{
	fields f;
	unsigned k;
	TRY(fields_begin(d, &f, 3));
	for (;;) {
		TRY(fields_next(&f, &k));
		switch (k) {
		case 0: return CBOR_OK;
		case 1: TRY(get_text(d, &t->app)); break;
		case 2: TRY(dec_values(d, t, limit)); break;
		case 3: TRY(get_i64(d, &t->time_ms)); break;
		}
	}
}

static cbor_err dec_console(cbor_dec *d, proto_console *c)
{
	fields f;
	unsigned k;
	TRY(fields_begin(d, &f, 2));
	for (;;) {
		TRY(fields_next(&f, &k));
		switch (k) {
		case 0: return CBOR_OK;
		case 1: TRY(get_bytes(d, &c->data)); break;
		case 2: TRY(get_text(d, &c->app)); break;
		}
	}
}

static cbor_err dec_error(cbor_dec *d, proto_error *e)
{
	fields f;
	unsigned k;
	TRY(fields_begin(d, &f, 2));
	for (;;) {
		TRY(fields_next(&f, &k));
		switch (k) {
		case 0: return CBOR_OK;
		case 1: TRY(get_u16(d, &e->code)); break;
		case 2: TRY(get_text(d, &e->text)); break;
		}
	}
}

/* A body of one bytes field under key 1: RenewRequest, RenewResponse. */
static cbor_err dec_one_bytes(cbor_dec *d, proto_bytes *b)
{
	fields f;
	unsigned k;
	TRY(fields_begin(d, &f, 1));
	for (;;) {
		TRY(fields_next(&f, &k));
		switch (k) {
		case 0: return CBOR_OK;
		case 1: TRY(get_bytes(d, b)); break;
		}
	}
}

static cbor_err dec_body(cbor_dec *d, proto_msg *m, bool *limit)
{
	switch (m->type) {
	case PROTO_HELLO: return dec_hello(d, &m->body.hello, limit);
	case PROTO_WELCOME: return dec_welcome(d, &m->body.welcome);
	case PROTO_ENROLL_REQUEST: return dec_enroll_request(d, &m->body.enroll_request);
	case PROTO_ENROLL_RESPONSE: return dec_enroll_response(d, &m->body.enroll_response);
	case PROTO_HEARTBEAT: return dec_heartbeat(d, &m->body.heartbeat);
	case PROTO_HEARTBEAT_ACK: return dec_heartbeat_ack(d, &m->body.heartbeat_ack);
	case PROTO_DEPLOY: return dec_deploy(d, &m->body.deploy);
	case PROTO_CHUNK: return dec_chunk(d, &m->body.chunk);
	case PROTO_DEPLOY_STATUS: return dec_deploy_status(d, &m->body.deploy_status);
	case PROTO_START:
	case PROTO_STOP:
	case PROTO_ROLLBACK: return dec_app_ref(d, &m->body.app_ref);
	case PROTO_APP_STATUS: return dec_app_info(d, &m->body.app_status);
	case PROTO_TELEMETRY: return dec_telemetry(d, &m->body.telemetry, limit);
	case PROTO_CONSOLE: return dec_console(d, &m->body.console);
	case PROTO_ACK: {
		fields f;
		unsigned k;
		TRY(fields_begin(d, &f, 0));
		return fields_next(&f, &k); /* only unknown keys: skipped */
	}
	case PROTO_ERROR: return dec_error(d, &m->body.error);
	case PROTO_RENEW_REQUEST: return dec_one_bytes(d, &m->body.renew_request.csr);
	case PROTO_RENEW_RESPONSE: return dec_one_bytes(d, &m->body.renew_response.cert);
	}
	return CBOR_ERR_TYPE;
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
		switch (k) {
		case 1: c = get_u16(&d, &m->version); break;
		case 2: c = get_u16(&d, &m->type); break;
		case 3: c = get_u64(&d, &m->id); break;
		case 4: c = get_u64(&d, &m->re); break;
		case 5:
			body = d.p;
			c = cbor_skip(&d);
			body_len = (size_t)(d.p - body);
			break;
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
	if ((c = dec_body(&bd, m, &limit)) != CBOR_OK) {
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

static void put_bytes(cbor_enc *e, proto_bytes b)
{
	if (b.p == NULL && b.n > 0) {
		invalid(e);
		return;
	}
	cbor_write_bytes(e, b.p, b.n);
}

static void put_key(cbor_enc *e, unsigned key)
{
	cbor_write_uint(e, key);
}

/* A map entry: the key, then its value. */
static void field_uint(cbor_enc *e, unsigned key, uint64_t v)
{
	put_key(e, key);
	cbor_write_uint(e, v);
}

static void field_int(cbor_enc *e, unsigned key, int64_t v)
{
	put_key(e, key);
	cbor_write_int(e, v);
}

static void field_text(cbor_enc *e, unsigned key, proto_text t)
{
	put_key(e, key);
	put_text(e, t);
}

static void field_bytes(cbor_enc *e, unsigned key, proto_bytes b)
{
	put_key(e, key);
	put_bytes(e, b);
}

static void enc_app_info(cbor_enc *e, const proto_app_info *a)
{
	bool reason = a->reason.n > 0, previous = a->previous.n > 0, received = a->received != 0;
	cbor_write_map(e, 4u + reason + previous + received);
	field_text(e, 1, a->app);
	field_text(e, 2, a->version);
	field_bytes(e, 3, a->sha256);
	field_uint(e, 4, a->state);
	if (reason) {
		field_text(e, 5, a->reason);
	}
	if (previous) {
		field_text(e, 6, a->previous);
	}
	if (received) {
		field_uint(e, 7, a->received);
	}
}

static void enc_hello(cbor_enc *e, const proto_hello *h)
{
	if (h->n_caps > PROTO_MAX_CAPS || h->n_apps > PROTO_MAX_APPS) {
		invalid(e);
		return;
	}
	bool board = h->board.n > 0, firmware = h->firmware.n > 0;
	bool max_module = h->max_module != 0, cert_expiry = h->cert_expiry != 0;
	cbor_write_map(e, 3u + board + (h->n_caps > 0) + firmware + (h->n_apps > 0) + max_module + cert_expiry);
	field_text(e, 1, h->device);
	if (board) {
		field_text(e, 2, h->board);
	}
	if (h->n_caps > 0) {
		put_key(e, 3);
		cbor_write_array(e, h->n_caps);
		for (size_t i = 0; i < h->n_caps; i++) {
			put_text(e, h->caps[i]);
		}
	}
	if (firmware) {
		field_text(e, 4, h->firmware);
	}
	if (h->n_apps > 0) {
		put_key(e, 5);
		cbor_write_array(e, h->n_apps);
		for (size_t i = 0; i < h->n_apps; i++) {
			enc_app_info(e, &h->apps[i]);
		}
	}
	field_uint(e, 6, h->min_version);
	field_uint(e, 7, h->max_version);
	if (max_module) {
		field_uint(e, 8, h->max_module);
	}
	if (cert_expiry) {
		field_int(e, 9, h->cert_expiry);
	}
}

static void enc_welcome(cbor_enc *e, const proto_welcome *w)
{
	cbor_write_map(e, 5);
	field_uint(e, 1, w->version);
	field_uint(e, 2, w->heartbeat_ms);
	field_uint(e, 3, w->timeout_ms);
	field_uint(e, 4, w->max_frame);
	field_int(e, 5, w->server_time);
}

static void enc_heartbeat(cbor_enc *e, const proto_heartbeat *h)
{
	bool uptime = h->uptime_ms != 0, rtt = h->rtt_micro != 0;
	cbor_write_map(e, 1u + uptime + rtt);
	field_uint(e, 1, h->seq);
	if (uptime) {
		field_uint(e, 2, h->uptime_ms);
	}
	if (rtt) {
		field_uint(e, 3, h->rtt_micro);
	}
}

static void enc_deploy(cbor_enc *e, const proto_deploy *p)
{
	const proto_limits *l = &p->limits;
	bool pages = l->memory_pages != 0, call = l->call_ms != 0, period = l->period_ms != 0;
	bool limits = pages || call || period;
	cbor_write_map(e, 4u + limits);
	field_text(e, 1, p->app);
	field_text(e, 2, p->version);
	field_bytes(e, 3, p->sha256);
	field_uint(e, 4, p->size);
	if (limits) {
		put_key(e, 5);
		cbor_write_map(e, (size_t)pages + call + period);
		if (pages) {
			field_uint(e, 1, l->memory_pages);
		}
		if (call) {
			field_uint(e, 2, l->call_ms);
		}
		if (period) {
			field_uint(e, 3, l->period_ms);
		}
	}
}

static void enc_chunk(cbor_enc *e, const proto_chunk *c)
{
	cbor_write_map(e, 4);
	field_text(e, 1, c->app);
	field_bytes(e, 2, c->sha256);
	field_uint(e, 3, c->offset);
	field_bytes(e, 4, c->data);
}

static void enc_deploy_status(cbor_enc *e, const proto_deploy_status *s)
{
	bool reason = s->reason.n > 0;
	cbor_write_map(e, 5u + reason);
	field_text(e, 1, s->app);
	field_text(e, 2, s->version);
	field_bytes(e, 3, s->sha256);
	field_uint(e, 4, s->state);
	field_uint(e, 5, s->received);
	if (reason) {
		field_text(e, 6, s->reason);
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

static void enc_telemetry(cbor_enc *e, const proto_telemetry *t)
{
	uint8_t order[PROTO_MAX_VALUES];
	size_t n = t->n_values;
	if (n > PROTO_MAX_VALUES) {
		invalid(e);
		return;
	}
	/* Insertion sort of at most 32 indexes; duplicates cannot be sent. */
	for (size_t i = 0; i < n; i++) {
		const proto_text *name = &t->values[i].name;
		if (name->n == 0 || name->n > PROTO_MAX_VALUE_NAME || name->p == NULL) {
			invalid(e);
			return;
		}
		size_t j = i;
		for (; j > 0; j--) {
			int c = name_cmp(&t->values[order[j - 1]].name, name);
			if (c == 0) {
				invalid(e);
				return;
			}
			if (c < 0) {
				break;
			}
			order[j] = order[j - 1];
		}
		order[j] = (uint8_t)i;
	}
	cbor_write_map(e, 3);
	field_text(e, 1, t->app);
	put_key(e, 2);
	cbor_write_map(e, n);
	for (size_t i = 0; i < n; i++) {
		const proto_value *v = &t->values[order[i]];
		put_text(e, v->name);
		cbor_write_float(e, v->value);
	}
	field_int(e, 3, t->time_ms);
}

static void enc_console(cbor_enc *e, const proto_console *c)
{
	bool app = c->app.n > 0;
	cbor_write_map(e, 1u + app);
	field_bytes(e, 1, c->data);
	if (app) {
		field_text(e, 2, c->app);
	}
}

static void enc_error(cbor_enc *e, const proto_error *x)
{
	bool text = x->text.n > 0;
	cbor_write_map(e, 1u + text);
	field_uint(e, 1, x->code);
	if (text) {
		field_text(e, 2, x->text);
	}
}

static void enc_body(cbor_enc *e, const proto_msg *m)
{
	switch (m->type) {
	case PROTO_HELLO: enc_hello(e, &m->body.hello); return;
	case PROTO_WELCOME: enc_welcome(e, &m->body.welcome); return;
	case PROTO_ENROLL_REQUEST:
		cbor_write_map(e, 2);
		field_text(e, 1, m->body.enroll_request.token);
		field_bytes(e, 2, m->body.enroll_request.csr);
		return;
	case PROTO_ENROLL_RESPONSE:
		cbor_write_map(e, 3);
		field_text(e, 1, m->body.enroll_response.device);
		field_bytes(e, 2, m->body.enroll_response.cert);
		field_bytes(e, 3, m->body.enroll_response.ca);
		return;
	case PROTO_HEARTBEAT: enc_heartbeat(e, &m->body.heartbeat); return;
	case PROTO_HEARTBEAT_ACK:
		cbor_write_map(e, 1);
		field_int(e, 1, m->body.heartbeat_ack.server_time);
		return;
	case PROTO_DEPLOY: enc_deploy(e, &m->body.deploy); return;
	case PROTO_CHUNK: enc_chunk(e, &m->body.chunk); return;
	case PROTO_DEPLOY_STATUS: enc_deploy_status(e, &m->body.deploy_status); return;
	case PROTO_START:
	case PROTO_STOP:
	case PROTO_ROLLBACK:
		cbor_write_map(e, 1);
		field_text(e, 1, m->body.app_ref.app);
		return;
	case PROTO_APP_STATUS: enc_app_info(e, &m->body.app_status); return;
	case PROTO_TELEMETRY: enc_telemetry(e, &m->body.telemetry); return;
	case PROTO_CONSOLE: enc_console(e, &m->body.console); return;
	case PROTO_ACK: cbor_write_map(e, 0); return;
	case PROTO_ERROR: enc_error(e, &m->body.error); return;
	case PROTO_RENEW_REQUEST:
		cbor_write_map(e, 1);
		field_bytes(e, 1, m->body.renew_request.csr);
		return;
	case PROTO_RENEW_RESPONSE:
		cbor_write_map(e, 1);
		field_bytes(e, 1, m->body.renew_response.cert);
		return;
	}
	invalid(e);
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
	put_key(&e, 1);
	cbor_write_uint(&e, m->version != 0 ? m->version : PROTO_VERSION);
	put_key(&e, 2);
	cbor_write_uint(&e, m->type);
	put_key(&e, 3);
	cbor_write_uint(&e, m->id);
	if (m->re != 0) {
		put_key(&e, 4);
		cbor_write_uint(&e, m->re);
	}
	put_key(&e, 5);
	enc_body(&e, m);
	switch (cbor_enc_finish(&e, len)) {
	case CBOR_OK: return PROTO_OK;
	case CBOR_ERR_NO_SPACE: return PROTO_ERR_NO_SPACE;
	default: return PROTO_ERR_INVALID;
	}
}
