/*
 * test_proto.c: host tests of cbor.c and proto.c.
 *
 * stdin (written by firmware/mcu/mcu_test.go from
 * testdata/protocol/vectors.json) holds whitespace-separated records:
 *
 *   V <name> <hex> <canonical hex> <n> <token>*n   a vector and its meaning
 *   I <name> <error code> <hex or ->                a payload to refuse
 *
 * A meaning token is name=value with the field names of docs/protocol.md:
 * integers in decimal, t:<hex> for text, b:<hex> for bytes, f:<16 hex
 * digits of the IEEE bits> or f:nan for floats, <array>#=<count> before the
 * elements <array>.<i>, and Values.<hex of the name> for telemetry values.
 */
#include <math.h>
#include <stdarg.h>

#include "../cbor.h"
#include "../proto.h"
#include "testutil.h"

/* ---- meaning dump ---- */

static char dump_buf[1 << 20];
static size_t dump_len;
static char hex_buf[2 * PROTO_MAX_FRAME + 1];

static void emit(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(dump_buf + dump_len, sizeof dump_buf - dump_len, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n + 1 < sizeof dump_buf - dump_len) {
		dump_len += (size_t)n;
		dump_buf[dump_len++] = ' ';
		dump_buf[dump_len] = 0;
	}
}

/*
 * A field of the meaning: its token name, how it is printed and where it is
 * (offsetof proto_msg, or of proto_app_info in app_info_fields). Kinds: '1',
 * '2', '4', '8' unsigned integers of that many bytes, 'i' int64, 't' text,
 * 'b' bytes, 'A' an AppInfo, and 'c', 'a', 'v' for Hello.Capabilities,
 * Hello.Apps and Telemetry.Values. Written apart from proto.c's tables, so
 * that a slip in those shows.
 */
typedef struct {
	uint16_t type; /* message type; 0 in app_info_fields */
	char kind;
	const char *name;
	size_t off;
} dump_field;

#define APP(kind, name, member) {0, kind, name, offsetof(proto_app_info, member)}
static const dump_field app_info_fields[] = {
	APP('t', "App", app), APP('t', "Version", version), APP('b', "SHA256", sha256), APP('1', "State", state),
	APP('t', "Reason", reason), APP('t', "Previous", previous), APP('8', "Received", received),
	APP('4', "Limits.MemoryPages", limits.memory_pages), APP('4', "Limits.CallMS", limits.call_ms),
	APP('4', "Limits.PeriodMS", limits.period_ms),
};

#define BODY(type, kind, name, member) {PROTO_##type, kind, name, offsetof(proto_msg, body.member)}
static const dump_field body_fields[] = {
	BODY(HELLO, 't', "Device", hello.device),
	BODY(HELLO, 't', "Board", hello.board),
	BODY(HELLO, 'c', "Capabilities", hello.caps),
	BODY(HELLO, 't', "Firmware", hello.firmware),
	BODY(HELLO, 'a', "Apps", hello.apps),
	BODY(HELLO, '2', "MinVersion", hello.min_version),
	BODY(HELLO, '2', "MaxVersion", hello.max_version),
	BODY(HELLO, '8', "MaxModule", hello.max_module),
	BODY(HELLO, 'i', "CertExpiry", hello.cert_expiry),
	BODY(WELCOME, '2', "Version", welcome.version),
	BODY(WELCOME, '4', "HeartbeatMS", welcome.heartbeat_ms),
	BODY(WELCOME, '4', "TimeoutMS", welcome.timeout_ms),
	BODY(WELCOME, '4', "MaxFrame", welcome.max_frame),
	BODY(WELCOME, 'i', "ServerTime", welcome.server_time),
	BODY(ENROLL_REQUEST, 't', "Token", enroll_request.token),
	BODY(ENROLL_REQUEST, 'b', "CSR", enroll_request.csr),
	BODY(ENROLL_RESPONSE, 't', "Device", enroll_response.device),
	BODY(ENROLL_RESPONSE, 'b', "Cert", enroll_response.cert),
	BODY(ENROLL_RESPONSE, 'b', "CA", enroll_response.ca),
	BODY(HEARTBEAT, '8', "Seq", heartbeat.seq),
	BODY(HEARTBEAT, '8', "UptimeMS", heartbeat.uptime_ms),
	BODY(HEARTBEAT, '8', "RTTMicro", heartbeat.rtt_micro),
	BODY(HEARTBEAT_ACK, 'i', "ServerTime", heartbeat_ack.server_time),
	BODY(DEPLOY, 't', "App", deploy.app),
	BODY(DEPLOY, 't', "Version", deploy.version),
	BODY(DEPLOY, 'b', "SHA256", deploy.sha256),
	BODY(DEPLOY, '8', "Size", deploy.size),
	BODY(DEPLOY, '4', "Limits.MemoryPages", deploy.limits.memory_pages),
	BODY(DEPLOY, '4', "Limits.CallMS", deploy.limits.call_ms),
	BODY(DEPLOY, '4', "Limits.PeriodMS", deploy.limits.period_ms),
	BODY(CHUNK, 't', "App", chunk.app),
	BODY(CHUNK, 'b', "SHA256", chunk.sha256),
	BODY(CHUNK, '8', "Offset", chunk.offset),
	BODY(CHUNK, 'b', "Data", chunk.data),
	BODY(DEPLOY_STATUS, 't', "App", deploy_status.app),
	BODY(DEPLOY_STATUS, 't', "Version", deploy_status.version),
	BODY(DEPLOY_STATUS, 'b', "SHA256", deploy_status.sha256),
	BODY(DEPLOY_STATUS, '1', "State", deploy_status.state),
	BODY(DEPLOY_STATUS, '8', "Received", deploy_status.received),
	BODY(DEPLOY_STATUS, 't', "Reason", deploy_status.reason),
	BODY(START, 't', "App", app_ref.app),
	BODY(STOP, 't', "App", app_ref.app),
	BODY(REMOVE, 't', "App", app_ref.app),
	BODY(APP_STATUS, 'A', "", app_status),
	BODY(TELEMETRY, 't', "App", telemetry.app),
	BODY(TELEMETRY, 'v', "Values", telemetry.values),
	BODY(TELEMETRY, 'i', "TimeMS", telemetry.time_ms),
	BODY(CONSOLE, 'b', "Data", console.data),
	BODY(CONSOLE, 't', "App", console.app),
	BODY(ERROR, '2', "Code", error.code),
	BODY(ERROR, 't', "Text", error.text),
	BODY(RENEW_REQUEST, 'b', "CSR", renew_request.csr),
	BODY(RENEW_RESPONSE, 'b', "Cert", renew_response.cert),
};

static int value_cmp(const void *a, const void *b)
{
	const proto_value *x = a, *y = b;
	size_t n = x->name.n < y->name.n ? x->name.n : y->name.n;
	int c = n > 0 ? memcmp(x->name.p, y->name.p, n) : 0;
	if (c != 0) {
		return c;
	}
	return x->name.n < y->name.n ? -1 : x->name.n > y->name.n;
}

/* Telemetry.Values in name order: Values#=n, then Values.<hex name>=f:... */
static void emit_values(const proto_telemetry *t)
{
	static proto_value sorted[PROTO_MAX_VALUES];
	memcpy(sorted, t->values, sizeof sorted);
	qsort(sorted, t->n_values, sizeof sorted[0], value_cmp);
	emit("Values#=%u", t->n_values);
	for (unsigned i = 0; i < t->n_values; i++) {
		char name[2 * 256 + 1];
		uint64_t bits;
		memcpy(&bits, &sorted[i].value, sizeof bits);
		tohex((const uint8_t *)sorted[i].name.p, sorted[i].name.n < 256 ? sorted[i].name.n : 256, name);
		if (isnan(sorted[i].value)) {
			emit("Values.%s=f:nan", name);
		} else {
			emit("Values.%s=f:%016llx", name, (unsigned long long)bits);
		}
	}
}

/* Writes the token of field f of the struct at base, name after prefix. */
static void emit_field(const char *prefix, const dump_field *f, const void *base)
{
	const void *p = (const uint8_t *)base + f->off;
	switch (f->kind) {
	case '1': emit("%s%s=%u", prefix, f->name, *(const uint8_t *)p); return;
	case '2': emit("%s%s=%u", prefix, f->name, *(const uint16_t *)p); return;
	case '4': emit("%s%s=%lu", prefix, f->name, (unsigned long)*(const uint32_t *)p); return;
	case '8': emit("%s%s=%llu", prefix, f->name, (unsigned long long)*(const uint64_t *)p); return;
	case 'i': emit("%s%s=%lld", prefix, f->name, (long long)*(const int64_t *)p); return;
	case 't': {
		const proto_text *t = p;
		tohex((const uint8_t *)t->p, t->n, hex_buf);
		emit("%s%s=t:%s", prefix, f->name, hex_buf);
		return;
	}
	case 'b': {
		const proto_bytes *b = p;
		tohex(b->p, b->n, hex_buf);
		emit("%s%s=b:%s", prefix, f->name, hex_buf);
		return;
	}
	case 'A':
		for (size_t i = 0; i < sizeof app_info_fields / sizeof app_info_fields[0]; i++) {
			emit_field(prefix, &app_info_fields[i], p);
		}
		return;
	}
	const proto_msg *m = base;
	const proto_hello *hello = &m->body.hello;
	switch (f->kind) {
	case 'c':
		emit("Capabilities#=%u", hello->n_caps);
		for (unsigned i = 0; i < hello->n_caps; i++) {
			char name[32];
			snprintf(name, sizeof name, "Capabilities.%u", i);
			emit_field("", &(dump_field){0, 't', name, 0}, &hello->caps[i]);
		}
		return;
	case 'a':
		emit("Apps#=%u", hello->n_apps);
		for (unsigned i = 0; i < hello->n_apps; i++) {
			char name[32];
			snprintf(name, sizeof name, "Apps.%u.", i);
			emit_field(name, &(dump_field){0, 'A', "", 0}, &hello->apps[i]);
		}
		return;
	case 'v': emit_values(&m->body.telemetry); return;
	}
}

/* Writes the tokens of m into dump_buf. */
static void dump(const proto_msg *m)
{
	dump_len = 0;
	dump_buf[0] = 0;
	emit("version=%u", m->version);
	emit("type=%u", m->type);
	emit("id=%llu", (unsigned long long)m->id);
	emit("re=%llu", (unsigned long long)m->re);
	for (size_t i = 0; i < sizeof body_fields / sizeof body_fields[0]; i++) {
		if (body_fields[i].type == m->type) {
			emit_field("", &body_fields[i], m);
		}
	}
}

/* ---- helpers ---- */

static uint8_t in_buf[PROTO_MAX_FRAME];
static uint8_t out_buf[PROTO_MAX_FRAME];

/* An exactly sized copy of p[0, n), so that the address sanitizer catches a
 * read past the end; kept until the next call, as a decoded message points
 * into it. */
static const uint8_t *copy_of(const uint8_t *p, size_t n)
{
	static uint8_t *copy;
	static size_t copy_len;
	if (copy != NULL) {
		exact_free(copy, copy_len);
	}
	copy_len = n;
	copy = exact_copy(p, n);
	return copy;
}

static const uint8_t *copy_hex(const char *hex, size_t *n)
{
	*n = unhex(hex, in_buf, sizeof in_buf);
	return copy_of(in_buf, *n);
}

static proto_err decode_hex(const char *hex, proto_msg *m, cbor_err *cause)
{
	size_t n;
	const uint8_t *c = copy_hex(hex, &n);
	return proto_decode(c, n, m, cause);
}

/* A CBOR decoder over a copy of hex, valid until the next copy. */
static cbor_dec *dec_hex(const char *hex)
{
	static cbor_dec d;
	size_t n;
	const uint8_t *c = copy_hex(hex, &n);
	cbor_dec_init(&d, c, n);
	return &d;
}

static proto_msg msg, msg2; /* ~600 bytes each: not on the stack */

/* A payload that must be refused with the given wire code. */
static void refuse(const char *what, const char *hex, uint16_t code)
{
	cbor_err cause = CBOR_OK;
	proto_err e = decode_hex(hex, &msg, &cause);
	CHECKF(e != PROTO_OK && proto_wire_code(e) == code, "%s: decode(%s) = %s (%s), want wire code %u", what, hex,
	       proto_strerror(e), cbor_strerror(cause), code);
}

static void accept(const char *what, const char *hex)
{
	cbor_err cause = CBOR_OK;
	proto_err e = decode_hex(hex, &msg, &cause);
	CHECKF(e == PROTO_OK, "%s: decode(%s) = %s (%s), want ok", what, hex, proto_strerror(e), cbor_strerror(cause));
}

/* ---- vectors from stdin ---- */

static void check_vector(const char *name, const char *hex, const char *canon_hex, char **want, size_t ntok)
{
	static uint8_t canon[PROTO_MAX_FRAME];
	size_t cn = unhex(canon_hex, canon, sizeof canon);
	const char *inputs[2] = {hex, canon_hex};
	for (int k = 0; k < 2; k++) {
		cbor_err cause = CBOR_OK;
		proto_err e = decode_hex(inputs[k], &msg, &cause);
		if (e != PROTO_OK) {
			CHECKF(false, "vector %s: decode(%s) = %s (%s)", name, inputs[k], proto_strerror(e), cbor_strerror(cause));
			continue;
		}
		/* The meaning, token by token. */
		dump(&msg);
		char *save = dump_buf;
		for (size_t i = 0; i < ntok; i++) {
			while (*save == ' ') {
				save++;
			}
			char *end = strchr(save, ' ');
			size_t len = end ? (size_t)(end - save) : strlen(save);
			if (len != strlen(want[i]) || strncmp(save, want[i], len) != 0) {
				CHECKF(false, "vector %s: decoded field %.*s, want %s", name, (int)len, save, want[i]);
				break;
			}
			save += len;
		}
		while (*save == ' ') {
			save++;
		}
		CHECKF(*save == 0, "vector %s: decoded extra fields: %s", name, save);
		/* Re-encoding gives the canonical bytes. */
		size_t n = 0;
		e = proto_encode(&msg, out_buf, sizeof out_buf, &n);
		CHECKF(e == PROTO_OK && n == cn && memcmp(out_buf, canon, n) == 0, "vector %s: encode = %s, %zu bytes, want %s",
		       name, proto_strerror(e), n, canon_hex);
		/* An encoder given a buffer one byte short fails cleanly. */
		if (cn > 0) {
			uint8_t *tight = malloc(cn - 1 > 0 ? cn - 1 : 1);
			size_t tn = 99;
			CHECK(proto_encode(&msg, tight, cn - 1, &tn) == PROTO_ERR_NO_SPACE && tn == 0);
			free(tight);
		}
	}
	/* Every strict prefix is refused as malformed; so are trailing bytes. */
	size_t n = unhex(hex, in_buf, sizeof in_buf);
	for (size_t cut = 0; cut < n; cut++) {
		proto_err e = proto_decode(copy_of(in_buf, cut), cut, &msg, NULL);
		CHECKF(e == PROTO_ERR_MALFORMED, "vector %s cut to %zu bytes: %s", name, cut, proto_strerror(e));
	}
	if (n >= sizeof in_buf) {
		return;
	}
	in_buf[n] = 0x00;
	cbor_err cause = CBOR_OK;
	CHECKF(proto_decode(copy_of(in_buf, n + 1), n + 1, &msg, &cause) == PROTO_ERR_MALFORMED && cause == CBOR_ERR_TRAILING,
	       "vector %s with a trailing byte: %s", name, cbor_strerror(cause));
}

static int run_vectors(void)
{
	int valid = 0, invalid = 0;
	static char *want[4096];
	const char *t;
	while ((t = tok()) != NULL) {
		if (strcmp(t, "V") == 0) {
			const char *name = tok_must(), *hex = tok_must(), *canon = tok_must();
			size_t ntok = (size_t)strtoul(tok_must(), NULL, 10);
			if (ntok > sizeof want / sizeof want[0]) {
				fprintf(stderr, "too many tokens\n");
				exit(2);
			}
			for (size_t i = 0; i < ntok; i++) {
				want[i] = (char *)tok_must();
			}
			check_vector(name, hex, canon, want, ntok);
			valid++;
		} else if (strcmp(t, "I") == 0) {
			const char *name = tok_must();
			uint16_t code = (uint16_t)strtoul(tok_must(), NULL, 10);
			refuse(name, tok_must(), code);
			invalid++;
		} else {
			fprintf(stderr, "unknown record %s\n", t);
			exit(2);
		}
	}
	printf("vectors: %d valid, %d invalid checked\n", valid, invalid);
	return valid;
}

/* ---- CBOR unit tests ---- */

static void check_enc(const char *what, void (*write)(cbor_enc *, const void *), const void *arg, const char *want_hex)
{
	uint8_t buf[32], want[32];
	size_t wn = unhex(want_hex, want, sizeof want), n;
	cbor_enc e;
	cbor_enc_init(&e, buf, sizeof buf);
	write(&e, arg);
	CHECKF(cbor_enc_finish(&e, &n) == CBOR_OK && n == wn && memcmp(buf, want, n) == 0, "encode %s", what);
	/* Every shorter buffer fails without writing past it. */
	for (size_t cap = 0; cap < wn; cap++) {
		uint8_t *tight = malloc(cap > 0 ? cap : 1);
		cbor_enc_init(&e, tight, cap);
		write(&e, arg);
		CHECK(cbor_enc_finish(&e, &n) == CBOR_ERR_NO_SPACE && n == 0);
		free(tight);
	}
}

static void w_uint(cbor_enc *e, const void *a) { cbor_write_uint(e, *(const uint64_t *)a); }
static void w_int(cbor_enc *e, const void *a) { cbor_write_int(e, *(const int64_t *)a); }
static void w_float(cbor_enc *e, const void *a) { cbor_write_float(e, *(const double *)a); }

static double from_bits(uint64_t b)
{
	double f;
	memcpy(&f, &b, sizeof f);
	return f;
}

static uint64_t to_bits(double f)
{
	uint64_t b;
	memcpy(&b, &f, sizeof b);
	return b;
}

static void test_cbor_encode(void)
{
	static const struct { uint64_t v; const char *hex; } u[] = {
		{0, "00"}, {23, "17"}, {24, "1818"}, {255, "18ff"}, {256, "190100"}, {65535, "19ffff"},
		{65536, "1a00010000"}, {0xffffffffu, "1affffffff"}, {0x100000000u, "1b0000000100000000"},
		{UINT64_MAX, "1bffffffffffffffff"},
	};
	for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
		check_enc(u[i].hex, w_uint, &u[i].v, u[i].hex);
	}
	static const struct { int64_t v; const char *hex; } s[] = {
		{-1, "20"}, {-24, "37"}, {-25, "3818"}, {-256, "38ff"}, {-257, "390100"},
		{INT64_MIN, "3b7fffffffffffffff"}, {INT64_MAX, "1b7fffffffffffffff"}, {1767225600000, "1b0000019b76daa800"},
	};
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
		check_enc(s[i].hex, w_int, &s[i].v, s[i].hex);
	}
	static const struct { uint64_t bits; const char *hex; } f[] = {
		{0x4035800000000000u, "fb4035800000000000"}, /* 21.5 */
		{0x8000000000000000u, "fb8000000000000000"}, /* -0 */
		{0x0000000000000000u, "fb0000000000000000"},
		{0x7ff0000000000000u, "f97c00"},             /* +Inf */
		{0xfff0000000000000u, "f9fc00"},             /* -Inf */
		{0x7ff8000000000000u, "f97e00"},             /* NaN */
		{0xfff8000000000001u, "f97e00"},             /* a negative NaN with a payload */
		{0x0000000000000001u, "fb0000000000000001"}, /* smallest subnormal */
	};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		double v = from_bits(f[i].bits);
		check_enc(f[i].hex, w_float, &v, f[i].hex);
	}
	/* Array and map heads above the limits are refused. */
	uint8_t buf[8];
	cbor_enc e;
	cbor_enc_init(&e, buf, sizeof buf);
	cbor_write_array(&e, CBOR_MAX_ARRAY + 1);
	CHECK(cbor_enc_finish(&e, NULL) == CBOR_ERR_ARG);
	cbor_enc_init(&e, buf, sizeof buf);
	cbor_write_map(&e, CBOR_MAX_MAP_PAIRS + 1);
	CHECK(cbor_enc_finish(&e, NULL) == CBOR_ERR_ARG);
	cbor_enc_init(&e, buf, sizeof buf);
	cbor_write_bool(&e, true);
	cbor_write_bool(&e, false);
	cbor_write_null(&e);
	size_t n;
	CHECK(cbor_enc_finish(&e, &n) == CBOR_OK && n == 3 && buf[0] == 0xf5 && buf[1] == 0xf4 && buf[2] == 0xf6);
}

static cbor_err read_float_hex(const char *hex, double *v)
{
	cbor_dec *d = dec_hex(hex);
	cbor_err err = cbor_read_float(d, v);
	return err == CBOR_OK && !cbor_dec_done(d) ? CBOR_ERR_TRAILING : err;
}

static void test_cbor_decode(void)
{
	static const struct { const char *hex; uint64_t bits; } f[] = {
		{"f93e00", 0x3ff8000000000000u},         /* 1.5 */
		{"f98000", 0x8000000000000000u},         /* -0 */
		{"f90001", 0x3e70000000000000u},         /* 2^-24, smallest f16 subnormal */
		{"f903ff", 0x3f0ff80000000000u},         /* largest f16 subnormal */
		{"f90400", 0x3f10000000000000u},         /* 2^-14 */
		{"f97bff", 0x40effc0000000000u},         /* 65504 */
		{"f97c00", 0x7ff0000000000000u},
		{"f9fc00", 0xfff0000000000000u},
		{"fa3e800000", 0x3fd0000000000000u},     /* 0.25 */
		{"fa00000001", 0x36a0000000000000u},     /* 2^-149 */
		{"fa7f7fffff", 0x47efffffe0000000u},     /* largest f32 */
		{"fa7f800000", 0x7ff0000000000000u},
		{"fb4035800000000000", 0x4035800000000000u},
		{"03", 0x4008000000000000u},             /* integer 3 */
		{"21", 0xc000000000000000u},             /* integer -2 */
		{"1b0020000000000000", 0x4340000000000000u}, /* 2^53 */
	};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		double v = 0;
		cbor_err err = read_float_hex(f[i].hex, &v);
		CHECKF(err == CBOR_OK && to_bits(v) == f[i].bits, "read_float(%s) = %s %016llx, want %016llx", f[i].hex,
		       cbor_strerror(err), (unsigned long long)to_bits(v), (unsigned long long)f[i].bits);
	}
	double v;
	CHECK(read_float_hex("f97e00", &v) == CBOR_OK && isnan(v));
	CHECK(read_float_hex("fa7fc00000", &v) == CBOR_OK && isnan(v));
	CHECK(read_float_hex("f5", &v) == CBOR_ERR_TYPE);
	CHECK(read_float_hex("f6", &v) == CBOR_ERR_TYPE); /* null is the caller's business */
	CHECK(read_float_hex("6161", &v) == CBOR_ERR_TYPE);
	CHECK(read_float_hex("c1fb4035800000000000", &v) == CBOR_ERR_TAG);
	CHECK(read_float_hex("f93e", &v) == CBOR_ERR_END);
	CHECK(read_float_hex("fb40358000", &v) == CBOR_ERR_END);
	CHECK(read_float_hex("fc", &v) == CBOR_ERR_RESERVED);

	/* Integers and their ranges. */
	static const struct { const char *hex; uint64_t max; cbor_err want; uint64_t v; } u[] = {
		{"00", 255, CBOR_OK, 0}, {"18ff", 255, CBOR_OK, 255}, {"190100", 255, CBOR_ERR_RANGE, 0},
		{"1bffffffffffffffff", UINT64_MAX, CBOR_OK, UINT64_MAX}, {"20", UINT64_MAX, CBOR_ERR_RANGE, 0},
		{"1800", 255, CBOR_OK, 0}, {"1b0000000000000001", 1, CBOR_OK, 1}, {"6130", 9, CBOR_ERR_TYPE, 0},
		{"f93c00", 9, CBOR_ERR_TYPE, 0}, {"f0", 99, CBOR_ERR_TYPE, 0}, {"c000", 9, CBOR_ERR_TAG, 0},
		{"19ff", 99, CBOR_ERR_END, 0}, {"1f", 99, CBOR_ERR_INDEFINITE, 0}, {"1c", 99, CBOR_ERR_RESERVED, 0},
		{"", 99, CBOR_ERR_END, 0},
	};
	for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
		uint64_t got = 0;
		cbor_err err = cbor_read_uint(dec_hex(u[i].hex), u[i].max, &got);
		CHECKF(err == u[i].want && (err != CBOR_OK || got == u[i].v), "read_uint(%s) = %s", u[i].hex, cbor_strerror(err));
	}
	static const struct { const char *hex; cbor_err want; int64_t v; } s[] = {
		{"3b7fffffffffffffff", CBOR_OK, INT64_MIN}, {"3b8000000000000000", CBOR_ERR_RANGE, 0},
		{"1b7fffffffffffffff", CBOR_OK, INT64_MAX}, {"1b8000000000000000", CBOR_ERR_RANGE, 0},
		{"20", CBOR_OK, -1}, {"4100", CBOR_ERR_TYPE, 0},
	};
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
		int64_t got = 0;
		cbor_err err = cbor_read_int(dec_hex(s[i].hex), &got);
		CHECKF(err == s[i].want && (err != CBOR_OK || got == s[i].v), "read_int(%s) = %s", s[i].hex, cbor_strerror(err));
	}

	/* Booleans and null. */
	{
		uint8_t b[] = {0xf5, 0xf4, 0xf6, 0xf7, 0xf6};
		cbor_dec d;
		bool x = false;
		cbor_dec_init(&d, b, sizeof b);
		CHECK(cbor_read_bool(&d, &x) == CBOR_OK && x);
		CHECK(cbor_read_bool(&d, &x) == CBOR_OK && !x);
		CHECK(cbor_read_null(&d) && cbor_read_null(&d));
		CHECK(cbor_read_bool(&d, &x) == CBOR_ERR_TYPE);
		CHECK(cbor_dec_done(&d) && !cbor_read_null(&d));
	}

	/* Strings: lengths past the input, huge lengths, indefinite lengths. */
	static const struct { const char *hex; cbor_err want; } str[] = {
		{"43010203", CBOR_OK}, {"44010203", CBOR_ERR_END}, {"440102", CBOR_ERR_END},
		{"5affffffff00", CBOR_ERR_END}, {"5bffffffffffffffff00", CBOR_ERR_END}, {"5b8000000000000000", CBOR_ERR_END},
		{"5f4100ff", CBOR_ERR_INDEFINITE}, {"6100", CBOR_ERR_TYPE}, {"40", CBOR_OK},
	};
	for (size_t i = 0; i < sizeof str / sizeof str[0]; i++) {
		const uint8_t *p;
		size_t len;
		cbor_err err = cbor_read_bytes(dec_hex(str[i].hex), &p, &len);
		CHECKF(err == str[i].want, "read_bytes(%s) = %s", str[i].hex, cbor_strerror(err));
	}

	/* UTF-8, as Go's utf8.Valid. */
	static const struct { const char *hex; bool ok; } utf[] = {
		{"", true}, {"41", true}, {"c3a9", true}, {"e282ac", true}, {"f09f9880", true}, {"f48fbfbf", true},
		{"ff", false}, {"80", false}, {"c0 80", false}, {"c1bf", false}, {"e08080", false}, {"e09fbf", false},
		{"eda080", false}, {"edbfbf", false}, {"ee8080", true}, {"f08f8080", false}, {"f4908080", false},
		{"f5808080", false}, {"e282", false}, {"c3", false}, {"c328", false}, {"f09f98", false},
		{"e2 82 ac 41", true}, {"41 c3", false},
	};
	for (size_t i = 0; i < sizeof utf / sizeof utf[0]; i++) {
		size_t n;
		const uint8_t *c = copy_hex(utf[i].hex, &n);
		CHECKF(cbor_utf8_valid(c, n) == utf[i].ok, "utf8_valid(%s)", utf[i].hex);
	}

	/* Skipping: nesting, limits, tags anywhere. */
	static const struct { const char *hex; cbor_err want; } skip[] = {
		{"8181818181818100", CBOR_OK},              /* 7 arrays: levels 1..7 */
		{"818181818181818100", CBOR_OK},            /* 8 levels */
		{"81818181818181818100", CBOR_ERR_DEPTH},   /* 9 levels */
		{"a1 01 a1 01 a1 01 a1 01 a1 01 a1 01 a1 01 a1 01 00", CBOR_OK},
		{"a1 01 a1 01 a1 01 a1 01 a1 01 a1 01 a1 01 a1 01 a1 01 00", CBOR_ERR_DEPTH},
		{"8080808080808080808080", CBOR_ERR_TRAILING}, /* empty arrays are level 1 only */
		{"82 8181818181818100 00", CBOR_OK},
		{"99 0101", CBOR_ERR_ARRAY_LEN}, {"b9 0101", CBOR_ERR_MAP_LEN},
		{"9b ffffffffffffffff", CBOR_ERR_ARRAY_LEN}, {"bb 0000000100000000", CBOR_ERR_MAP_LEN},
		{"82 00", CBOR_ERR_END}, {"a1 00", CBOR_ERR_END}, {"83 01 c1 00 02", CBOR_ERR_TAG},
		{"9f ff", CBOR_ERR_INDEFINITE}, {"ff", CBOR_ERR_INDEFINITE}, {"f818", CBOR_ERR_RESERVED},
		{"f820", CBOR_OK}, {"f0", CBOR_OK}, {"fb00", CBOR_ERR_END}, {"1e", CBOR_ERR_RESERVED},
		{"a2 6161 6180 6162 f5", CBOR_OK},         /* no UTF-8 check in skipped items */
		{"a2 01 00 01 00", CBOR_OK},               /* nor duplicate keys */
	};
	for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++) {
		cbor_dec *d = dec_hex(skip[i].hex);
		cbor_err err = cbor_skip(d);
		if (err == CBOR_OK && !cbor_dec_done(d)) {
			err = CBOR_ERR_TRAILING;
		}
		CHECKF(err == skip[i].want, "skip(%s) = %s, want %s", skip[i].hex, cbor_strerror(err), cbor_strerror(skip[i].want));
	}
	/* Nesting counts from the decoder's depth. */
	for (uint8_t depth = 6; depth <= 7; depth++) {
		cbor_dec *d = dec_hex("81 81 00");
		d->depth = depth;
		CHECKF(cbor_skip(d) == (depth == 6 ? CBOR_OK : CBOR_ERR_DEPTH), "skip at depth %u", depth);
	}

	/* Keys. */
	static const struct { const char *hex; cbor_err want; } keys[] = {
		{"01", CBOR_OK}, {"1801", CBOR_OK}, {"3863", CBOR_OK}, {"6178", CBOR_OK}, {"1b7fffffffffffffff", CBOR_OK},
		{"1b8000000000000000", CBOR_ERR_KEY}, {"3b8000000000000000", CBOR_ERR_KEY}, {"4101", CBOR_ERR_KEY},
		{"f6", CBOR_ERR_KEY}, {"f93c00", CBOR_ERR_KEY}, {"80", CBOR_ERR_KEY}, {"a0", CBOR_ERR_KEY},
		{"c101", CBOR_ERR_TAG}, {"61ff", CBOR_ERR_UTF8}, {"f800", CBOR_ERR_RESERVED}, {"7f", CBOR_ERR_INDEFINITE},
	};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		cbor_key k;
		cbor_err err = cbor_read_key(dec_hex(keys[i].hex), &k);
		CHECKF(err == keys[i].want, "read_key(%s) = %s", keys[i].hex, cbor_strerror(err));
	}
	{
		cbor_key a = {false, 1, NULL, 0}, b = {true, 0, "1", 1}, c = {false, 1, NULL, 0}, d = {true, 0, "1", 1};
		CHECK(cbor_key_equal(&a, &c) && cbor_key_equal(&b, &d) && !cbor_key_equal(&a, &b));
	}
	for (int e = CBOR_OK; e <= CBOR_ERR_ARG; e++) {
		CHECK(cbor_strerror((cbor_err)e) != NULL);
	}
}

/* ---- protocol-level malformed and limit cases ---- */

#define ENV_ACK "a4 01 01 02 10 03 01 05"      /* ack, id 1, up to the body */
#define ENV_HB "a4 01 01 02 05 03 02 05"       /* heartbeat, id 2 */
#define ENV_HELLO "a4 01 01 02 01 03 01 05"
#define ENV_TELEMETRY "a4 01 01 02 0e 03 01 05"
#define ENV_DEPLOY "a4 01 01 02 07 03 03 05"
#define SHA "5820 93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476"

/* head, count elements of fmt, then tail. fmt gets the two letters of the
 * element's name, 'a' + i / 26 and 'a' + i % 26, which it may leave out. */
static const char *repeat_hex(const char *head, int count, const char *fmt, const char *tail)
{
	static char hex[4096];
	int n = snprintf(hex, sizeof hex, "%s", head);
	for (int i = 0; i < count; i++) {
		n += snprintf(hex + n, sizeof hex - (size_t)n, fmt, 'a' + i / 26, 'a' + i % 26);
	}
	snprintf(hex + n, sizeof hex - (size_t)n, "%s", tail);
	return hex;
}

static void test_malformed(void)
{
	const uint16_t M = PROTO_CODE_MALFORMED;
	/* Envelope. */
	refuse("empty", "-", M);
	refuse("not a map", "80", M);
	refuse("no type", "a3 01 01 03 01 05 a0", M);
	refuse("type 0", "a4 01 01 02 00 03 01 05 a0", M);
	refuse("type null", "a4 01 01 02 f6 03 01 05 a0", M);
	refuse("type 65536", "a4 01 01 02 1a00010000 03 01 05 a0", M);
	refuse("version text", "a4 01 6131 02 10 03 01 05 a0", M);
	refuse("version 65536", "a4 01 1a00010000 02 10 03 01 05 a0", M);
	refuse("id float", "a4 01 01 02 10 03 f93c00 05 a0", M);
	refuse("id negative", "a4 01 01 02 10 03 20 05 a0", M);
	refuse("re text", "a5 01 01 02 10 03 01 04 6131 05 a0", M);
	refuse("body array", ENV_ACK "80", M);
	refuse("body undefined", ENV_ACK "f7", M);
	refuse("body text", ENV_ACK "6161", M);
	refuse("null key", "a4 f6 01 02 10 03 01 05 a0", M);
	refuse("float key", "a5 01 01 02 10 03 01 05 a0 f93c00 00", M);
	refuse("array key", "a5 01 01 02 10 03 01 05 a0 80 00", M);
	refuse("key 2^63", "a5 01 01 02 10 03 01 05 a0 1b8000000000000000 00", M);
	refuse("key -2^63-1", "a5 01 01 02 10 03 01 05 a0 3b8000000000000000 00", M);
	accept("key -2^63", "a5 01 01 02 10 03 01 05 a0 3b7fffffffffffffff 00");
	refuse("dup unknown int key", "a6 01 01 02 10 03 01 05 a0 1863 00 1863 01", M);
	refuse("dup unknown key non-shortest", "a6 01 01 02 10 03 01 05 a0 1863 00 190063 01", M);
	refuse("dup unknown negative key", "a6 01 01 02 10 03 01 05 a0 3863 00 3863 f6", M);
	refuse("dup unknown text key", "a6 01 01 02 10 03 01 05 a0 6178 00 6178 01", M);
	accept("text key 1 is not key 1", "a5 01 01 02 10 03 01 05 a0 6131 6131");
	accept("unknown keys of both kinds", "a7 01 01 02 10 03 01 05 a0 6178 00 1878 01 6179 02");
	refuse("tag on the envelope", "c0 a4 01 01 02 10 03 01 05 a0", M);
	refuse("unknown type, tag in body", "a4 01 01 02 1863 03 01 05 a1 01 c1 00", M);
	refuse("unknown type, truncated body", "a4 01 01 02 1863 03 01 05 a1 01", M);
	refuse("unknown type, body too deep", "a4 01 01 02 1863 03 01 05 a1 01 81818181818181 00", M);
	refuse("unknown type, indefinite body", "a4 01 01 02 1863 03 01 05 bf ff", M);
	refuse("unknown type, trailing byte", "a4 01 01 02 1863 03 01 05 a0 00", M);
	refuse("unknown type, reserved in unknown key", "a5 01 01 02 1863 03 01 05 a0 06 1d", M);
	refuse("unknown type 0xffff", "a4 01 01 02 19ffff 03 01 05 a0", PROTO_CODE_UNSUPPORTED_TYPE);
	refuse("unknown type, body array", "a4 01 01 02 1863 03 07 05 80", PROTO_CODE_UNSUPPORTED_TYPE);
	refuse("unknown type, body with wrong field types", "a4 01 01 02 15 03 07 05 a1 01 6161", PROTO_CODE_UNSUPPORTED_TYPE);
	{
		CHECK(decode_hex("a5 01 01 02 1863 03 07 04 05 05 a0", &msg, NULL) == PROTO_ERR_UNSUPPORTED_TYPE);
		CHECK(msg.type == 99 && msg.id == 7 && msg.re == 5 && msg.version == 1);
	}
	accept("no body", "a3 01 01 02 10 03 01");
	accept("no version", "a3 02 10 03 01 05 a0");
	accept("keys in any order", "a4 05 a0 03 01 02 10 01 01");

	/* Bodies: wrong types, ranges, nulls. */
	refuse("seq text", ENV_HB "a1 01 6134", M);
	refuse("seq simple value", ENV_HB "a1 01 f0", M); /* stricter than the Go reference, see README */
	refuse("seq bool", ENV_HB "a1 01 f5", M);
	refuse("seq negative", ENV_HB "a1 01 20", M);
	refuse("seq array", ENV_HB "a1 01 80", M);
	refuse("dup body key", ENV_HB "a2 01 01 01 02", M);
	refuse("dup body key, null first", ENV_HB "a2 01 f6 01 02", M);
	accept("null seq", ENV_HB "a1 01 f6");
	accept("undefined seq", ENV_HB "a1 01 f7");
	refuse("hello device int", ENV_HELLO "a1 01 01", M);
	refuse("hello device bytes", ENV_HELLO "a1 01 4161", M);
	refuse("hello min version 65536", ENV_HELLO "a1 06 1a00010000", M);
	refuse("hello cert expiry 2^63", ENV_HELLO "a1 09 1b8000000000000000", M);
	accept("hello cert expiry negative", ENV_HELLO "a1 09 3903e7");
	refuse("hello capabilities map", ENV_HELLO "a1 03 a0", M);
	refuse("hello capability int", ENV_HELLO "a1 03 81 01", M);
	accept("hello capability null", ENV_HELLO "a1 03 82 6161 f6");
	refuse("hello apps map", ENV_HELLO "a1 05 a0", M);
	refuse("hello app not a map", ENV_HELLO "a1 05 81 01", M);
	accept("hello app null", ENV_HELLO "a1 05 82 f6 a0");
	refuse("hello app state 256", ENV_HELLO "a1 05 81 a1 04 190100", M);
	refuse("hello app dup key", ENV_HELLO "a1 05 81 a2 01 6161 01 6162", M);
	refuse("hello app sha text", ENV_HELLO "a1 05 81 a1 03 6161", M);
	refuse("hello app too deep", ENV_HELLO "a1 05 81 a1 1863 818181818100", M);
	accept("hello app deepest", ENV_HELLO "a1 05 81 a1 1863 8181818100");
	refuse("deploy limits int", ENV_DEPLOY "a1 05 01", M);
	refuse("deploy limits dup", ENV_DEPLOY "a1 05 a2 01 01 01 02", M);
	refuse("deploy memory pages 2^32", ENV_DEPLOY "a1 05 a1 01 1b0000000100000000", M);
	accept("deploy limits null", ENV_DEPLOY "a1 05 f6");
	refuse("deploy sha text", ENV_DEPLOY "a1 03 6161", M);
	refuse("deploy size float", ENV_DEPLOY "a1 04 fb4020000000000000", M);
	refuse("chunk data text", "a4 01 01 02 08 03 04 05 a1 04 6161", M);
	refuse("error code 65536", "a4 01 01 02 11 03 01 05 a1 01 1a00010000", M);
	refuse("welcome heartbeat 2^32", "a5 01 01 02 02 03 01 04 01 05 a1 02 1b0000000100000000", M);
	refuse("telemetry values array", ENV_TELEMETRY "a1 02 80", M);
	refuse("telemetry value name int", ENV_TELEMETRY "a1 02 a1 01 f93c00", M);
	refuse("telemetry value name bytes", ENV_TELEMETRY "a1 02 a1 4161 f93c00", M);
	refuse("telemetry value text", ENV_TELEMETRY "a1 02 a1 6161 6161", M);
	refuse("telemetry value bool", ENV_TELEMETRY "a1 02 a1 6161 f5", M);
	refuse("telemetry dup name", ENV_TELEMETRY "a1 02 a3 6161 01 6162 02 6161 03", M);
	accept("telemetry value null", ENV_TELEMETRY "a1 02 a1 6161 f6");
	accept("telemetry values null", ENV_TELEMETRY "a1 02 f6");
	refuse("telemetry time text", ENV_TELEMETRY "a1 03 6161", M);
	accept("deploy", ENV_DEPLOY "a5 01 66 73656e736f72 02 65 312e312e30 03 " SHA " 04 08 05 a3 01 01 02 1864 03 1903e8");

	/* UTF-8 where text is expected. */
	static const char *const bad_utf8[] = {"61ff", "62c328", "62c080", "63eda080", "64f4908080", "62e282", "6180"};
	static const char *const text_fields[] = {
		ENV_HELLO "a1 01 %s",                                  /* Device */
		ENV_HELLO "a1 02 %s",                                  /* Board */
		ENV_HELLO "a1 03 81 %s",                               /* a capability */
		ENV_HELLO "a1 05 81 a1 02 %s",                         /* an app's Version */
		ENV_DEPLOY "a1 01 %s",                                 /* App */
		"a4 01 01 02 09 03 01 05 a1 06 %s",                    /* DeployStatus.Reason */
		"a4 01 01 02 11 03 01 05 a1 02 %s",                    /* Error.Text */
		"a4 01 01 02 0f 03 01 05 a1 02 %s",                    /* Console.App */
		ENV_TELEMETRY "a1 02 a1 %s 00",                        /* a value name */
		ENV_ACK "a1 %s 00",                                    /* an unknown text key */
	};
	for (size_t f = 0; f < sizeof text_fields / sizeof text_fields[0]; f++) {
		for (size_t b = 0; b < sizeof bad_utf8 / sizeof bad_utf8[0]; b++) {
			char hex[256];
			snprintf(hex, sizeof hex, text_fields[f], bad_utf8[b]);
			refuse("invalid UTF-8", hex, M);
		}
		char hex[256];
		snprintf(hex, sizeof hex, text_fields[f], "6c c3a9 e282ac f09f9880 41 2d 30"); /* valid: é € 😀 */
		accept("valid UTF-8", hex);
	}
	accept("invalid UTF-8 inside an unknown key's value", ENV_ACK "a1 1863 61ff");

	/* Oversize lengths. */
	refuse("bytes longer than the payload", "a4 01 01 02 0f 03 01 05 a1 01 5a00010000 00", M);
	refuse("bytes of 2^64-1", "a4 01 01 02 0f 03 01 05 a1 01 5bffffffffffffffff", M);
	refuse("text of 2^63", ENV_HELLO "a1 01 7b8000000000000000", M);
	refuse("array of 2^32", ENV_HELLO "a1 03 9b0000000100000000", M);
	refuse("map of 257 pairs", ENV_ACK "b90101", M);
	refuse("hello 257 capabilities", ENV_HELLO "a1 03 990101", M);

	/* Limits of this device's structs: well formed, answered bad-request.
	 * Names are two letters from aa. */
	const uint16_t B = PROTO_CODE_BAD_REQUEST;
	refuse("9 capabilities", repeat_hex(ENV_HELLO "a1 03 89", 9, " 62 %02x%02x", ""), B);
	CHECK(msg.type == PROTO_HELLO && msg.id == 1);
	refuse("9 apps", repeat_hex(ENV_HELLO "a1 05 89", 9, " a0", ""), B);
	/* Over the limit and malformed after it: malformed wins. */
	refuse("9 apps, the last malformed", repeat_hex(ENV_HELLO "a1 05 89", 8, " a0", " a1 04 190100"), M);
	refuse("33 telemetry values", repeat_hex(ENV_TELEMETRY "a1 02 b8 21", 33, " 62 %02x%02x f6", ""), B);
	/* A duplicate past the 32 kept names is still found. */
	refuse("34 telemetry values with a duplicate",
	       repeat_hex(ENV_TELEMETRY "a1 02 b8 22", 33, " 62 %02x%02x f6", " 62 6162 f6"), M);
	accept("32 telemetry values", repeat_hex(ENV_TELEMETRY "a1 02 b8 20", 32, " 62 %02x%02x f6", ""));
	CHECK(msg.body.telemetry.n_values == 32);
	CHECK(proto_wire_code(PROTO_ERR_NO_SPACE) == PROTO_CODE_INTERNAL);
	for (int e = PROTO_OK; e <= PROTO_ERR_INVALID; e++) {
		CHECK(proto_strerror((proto_err)e) != NULL);
	}
}

/* ---- encoder refusals and helpers ---- */

static void test_encode(void)
{
	size_t n = 1;
	memset(&msg, 0, sizeof msg);
	msg.type = 0;
	CHECK(proto_encode(&msg, out_buf, sizeof out_buf, &n) == PROTO_ERR_INVALID && n == 0);
	msg.type = 99;
	CHECK(proto_encode(&msg, out_buf, sizeof out_buf, &n) == PROTO_ERR_INVALID);

	/* Version 0 is written as 1; an ack is an empty map. */
	msg.type = PROTO_ACK;
	msg.id = 4;
	msg.re = 4;
	CHECK(proto_encode(&msg, out_buf, sizeof out_buf, &n) == PROTO_OK && n == 11 &&
	      memcmp(out_buf, "\xa5\x01\x01\x02\x10\x03\x04\x04\x04\x05\xa0", 11) == 0);

	/* Text that is not UTF-8 is never sent. */
	memset(&msg, 0, sizeof msg);
	msg.type = PROTO_CONSOLE;
	msg.body.console.data.p = (const uint8_t *)"\xff";
	msg.body.console.data.n = 1;
	CHECK(proto_encode(&msg, out_buf, sizeof out_buf, &n) == PROTO_OK); /* bytes are opaque */
	msg.body.console.app.p = "\xff";
	msg.body.console.app.n = 1;
	CHECK(proto_encode(&msg, out_buf, sizeof out_buf, &n) == PROTO_ERR_INVALID);
	msg.body.console.app.p = NULL;
	msg.body.console.app.n = 3;
	CHECK(proto_encode(&msg, out_buf, sizeof out_buf, &n) == PROTO_ERR_INVALID);

	/* Telemetry: sorted canonically whatever the order given; names 1..64
	 * bytes, unique, at most 32. */
	memset(&msg, 0, sizeof msg);
	msg.type = PROTO_TELEMETRY;
	msg.id = 10;
	proto_telemetry *t = &msg.body.telemetry;
	t->app = (proto_text){"sensor", 6};
	t->values[0] = (proto_value){{"temp", 4}, 21.5};
	t->values[1] = (proto_value){{"humidity", 8}, 40.25};
	t->n_values = 2;
	t->time_ms = 1767225601500;
	uint8_t want[128];
	size_t wn = unhex("a40101020e030a05a3016673656e736f7202a26474656d70fb40358000000000006868756d6964697479fb4044200000000000031b0000019b76daaddc",
	                  want, sizeof want);
	CHECK(proto_encode(&msg, out_buf, sizeof out_buf, &n) == PROTO_OK && n == wn && memcmp(out_buf, want, n) == 0);
	t->values[1].name = (proto_text){"temp", 4};
	CHECK(proto_encode(&msg, out_buf, sizeof out_buf, &n) == PROTO_ERR_INVALID);
	t->values[1].name = (proto_text){"", 0};
	CHECK(proto_encode(&msg, out_buf, sizeof out_buf, &n) == PROTO_ERR_INVALID);
	static char long_name[PROTO_MAX_VALUE_NAME + 1];
	memset(long_name, 'x', sizeof long_name);
	t->values[1].name = (proto_text){long_name, PROTO_MAX_VALUE_NAME + 1};
	CHECK(proto_encode(&msg, out_buf, sizeof out_buf, &n) == PROTO_ERR_INVALID);
	t->values[1].name = (proto_text){long_name, PROTO_MAX_VALUE_NAME};
	CHECK(proto_encode(&msg, out_buf, sizeof out_buf, &n) == PROTO_OK);
	t->n_values = PROTO_MAX_VALUES + 1;
	CHECK(proto_encode(&msg, out_buf, sizeof out_buf, &n) == PROTO_ERR_INVALID);
	/* 32 names in reverse order come out sorted: shorter first, then bytewise. */
	static char names[PROTO_MAX_VALUES][3];
	for (int i = 0; i < PROTO_MAX_VALUES; i++) {
		int k = PROTO_MAX_VALUES - 1 - i;
		names[i][0] = (char)('a' + k % 26);
		names[i][1] = (char)('a' + k / 26);
		t->values[i] = (proto_value){{names[i], k < 26 ? 1u : 2u}, (double)k};
	}
	t->n_values = PROTO_MAX_VALUES;
	CHECK(proto_encode(&msg, out_buf, sizeof out_buf, &n) == PROTO_OK);
	CHECK(proto_decode(out_buf, n, &msg2, NULL) == PROTO_OK && msg2.body.telemetry.n_values == PROTO_MAX_VALUES);
	for (int i = 0; i < PROTO_MAX_VALUES; i++) {
		CHECKF(msg2.body.telemetry.values[i].value == (double)i, "value %d = %g", i, msg2.body.telemetry.values[i].value);
	}

	/* Hello with too many elements. */
	memset(&msg, 0, sizeof msg);
	msg.type = PROTO_HELLO;
	msg.body.hello.n_apps = PROTO_MAX_APPS + 1;
	CHECK(proto_encode(&msg, out_buf, sizeof out_buf, &n) == PROTO_ERR_INVALID);

	/* Names. */
	static const struct { const char *s; bool ok; } names2[] = {
		{"sensor", true}, {"dev-1", true}, {"a", true}, {"0", true}, {"-a", false}, {"a-", false}, {"", false},
		{"Sensor", false}, {"a_b", false}, {"a.b", false}, {"a b", false},
		{"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0", true},
		{"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01", false},
	};
	for (size_t i = 0; i < sizeof names2 / sizeof names2[0]; i++) {
		CHECKF(proto_valid_name(names2[i].s, strlen(names2[i].s)) == names2[i].ok, "valid_name(%s)", names2[i].s);
	}
	CHECK(!proto_valid_name(NULL, 0));
	CHECK(proto_type_known(PROTO_HELLO) && proto_type_known(PROTO_RENEW_RESPONSE) && !proto_type_known(0) &&
	      !proto_type_known(21) && !proto_type_known(12) && strcmp(proto_type_name(PROTO_DEPLOY_STATUS), "deploy-status") == 0);
}

/* ---- robustness: random and mutated inputs ---- */

static uint8_t corpus[64][512];
static size_t corpus_len[64];
static size_t corpus_n;

static void add_corpus(const char *hex)
{
	if (corpus_n < 64 && strlen(hex) <= 2 * sizeof corpus[0]) {
		corpus_len[corpus_n] = unhex(hex, corpus[corpus_n], sizeof corpus[0]);
		corpus_n++;
	}
}

/* Decodes p[0, n) from an exactly sized copy; when it decodes, encoding and
 * decoding again must give the same message. */
static void decode_checked(const uint8_t *p, size_t n, int *ok)
{
	const uint8_t *c = copy_of(p, n);
	cbor_err cause = CBOR_OK;
	proto_err e = proto_decode(c, n, &msg, &cause);
	CHECK(e == PROTO_OK || e == PROTO_ERR_MALFORMED || e == PROTO_ERR_UNSUPPORTED_TYPE || e == PROTO_ERR_LIMIT);
	if (e == PROTO_OK) {
		(*ok)++;
		if (msg.version == 0) {
			msg.version = PROTO_VERSION; /* what the encoder writes */
		}
		static char first[sizeof dump_buf];
		dump(&msg);
		memcpy(first, dump_buf, dump_len + 1);
		size_t en = 0;
		proto_err ee = proto_encode(&msg, out_buf, sizeof out_buf, &en);
		/* Decoding accepts telemetry names the encoder refuses (empty,
		 * longer than 64 bytes): the Go side does too. */
		CHECKF(ee == PROTO_OK || (ee == PROTO_ERR_INVALID && msg.type == PROTO_TELEMETRY), "re-encode: %s",
		       proto_strerror(ee));
		if (ee == PROTO_OK) {
			CHECK(proto_decode(out_buf, en, &msg2, NULL) == PROTO_OK);
			dump(&msg2);
			CHECKF(strcmp(first, dump_buf) == 0, "decode-encode-decode differs:\n%s\n%s", first, dump_buf);
		}
	}
	/* The CBOR layer alone, too. */
	cbor_dec d;
	cbor_dec_init(&d, c, n);
	(void)cbor_skip(&d);
}

static void test_robustness(void)
{
	static const uint8_t interesting[] = {0x00, 0x01, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1f, 0x20, 0x3b, 0x40, 0x5b,
	                                      0x5f, 0x60, 0x7b, 0x7f, 0x80, 0x9b, 0x9f, 0xa0, 0xbb, 0xbf, 0xc0, 0xd9, 0xf4,
	                                      0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xff, 0x99, 0xb9};
	static uint8_t buf[1024];
	int ok = 0, runs = 0;
	/* Random bytes, biased to CBOR heads of maps and small integers. */
	for (int i = 0; i < 3000; i++, runs++) {
		size_t n = rndn(200);
		for (size_t j = 0; j < n; j++) {
			buf[j] = rndn(3) == 0 ? interesting[rndn(sizeof interesting)] : (uint8_t)rnd();
		}
		if (n > 0 && rndn(2) == 0) {
			buf[0] = (uint8_t)(0xa0 | rndn(6)); /* an envelope-like map */
		}
		decode_checked(buf, n, &ok);
	}
	/* Mutations of the vectors. */
	for (int i = 0; i < 6000 && corpus_n > 0; i++, runs++) {
		size_t k = rndn(corpus_n), n = corpus_len[k];
		memcpy(buf, corpus[k], n);
		int edits = 1 + (int)rndn(4);
		for (int e = 0; e < edits; e++) {
			size_t at = rndn(n + 1);
			switch (rndn(6)) {
			case 0: /* flip a bit */
				if (n > 0) {
					buf[rndn(n)] ^= (uint8_t)(1u << rndn(8));
				}
				break;
			case 1: /* interesting byte */
				if (n > 0) {
					buf[rndn(n)] = interesting[rndn(sizeof interesting)];
				}
				break;
			case 2: /* insert */
				if (n < sizeof buf - 1) {
					memmove(buf + at + 1, buf + at, n - at);
					buf[at] = interesting[rndn(sizeof interesting)];
					n++;
				}
				break;
			case 3: /* delete */
				if (at < n) {
					memmove(buf + at, buf + at + 1, n - at - 1);
					n--;
				}
				break;
			case 4: /* truncate */
				n = at;
				break;
			case 5: { /* duplicate a slice */
				size_t len = rndn(16);
				if (at + len <= n && n + len < sizeof buf) {
					memmove(buf + at + len, buf + at, n - at);
					n += len;
				}
				break;
			}
			}
		}
		decode_checked(buf, n, &ok);
	}
	printf("robustness: %d inputs decoded without fault, %d of them valid and stable\n", runs, ok);
}

static void print_sizes(void)
{
	printf("sizes (host): proto_msg %zu, proto_hello %zu, proto_telemetry %zu, proto_app_info %zu, "
	       "proto_deploy %zu, proto_chunk %zu, cbor_dec %zu, cbor_enc %zu\n",
	       sizeof(proto_msg), sizeof(proto_hello), sizeof(proto_telemetry), sizeof(proto_app_info),
	       sizeof(proto_deploy), sizeof(proto_chunk), sizeof(cbor_dec), sizeof(cbor_enc));
}

int main(void)
{
	print_sizes();
	test_cbor_encode();
	test_cbor_decode();
	test_malformed();
	test_encode();
	tok_read_stdin();
	/* Keep a copy of the vectors for the mutation corpus. */
	size_t input_len = strlen(tok_buf);
	char *copy = malloc(input_len + 1);
	memcpy(copy, tok_buf, input_len + 1);
	int valid = run_vectors();
	CHECKF(valid > 0, "no vectors on stdin");
	tok_next = copy;
	for (const char *t; (t = tok()) != NULL;) {
		if (strcmp(t, "V") == 0) {
			tok_must();
			add_corpus(tok_must());
			add_corpus(tok_must());
			size_t ntok = (size_t)strtoul(tok_must(), NULL, 10);
			while (ntok-- > 0) {
				tok_must();
			}
		} else if (strcmp(t, "I") == 0) {
			tok_must();
			tok_must();
			add_corpus(tok_must());
		}
	}
	test_robustness();
	free(copy);
	free(tok_buf);
	return done("test_proto");
}
