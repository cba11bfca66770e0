//go:build ignore

/*
 * cbor.c: the CBOR profile of docs/protocol.md ("CBOR profile"). See cbor.h.
 */
#include "cbor.h"

#include <string.h>

const char *cbor_strerror(cbor_err e)
{
	switch (e) {
	case CBOR_OK: return "ok";
	case CBOR_ERR_END: return "input ends inside an item";
	case CBOR_ERR_INDEFINITE: return "indefinite length or break";
	case CBOR_ERR_TAG: return "tag";
	case CBOR_ERR_RESERVED: return "reserved additional information or simple value";
	case CBOR_ERR_TYPE: return "wrong type";
	case CBOR_ERR_RANGE: return "integer out of range";
	case CBOR_ERR_DEPTH: return "nesting too deep";
	case CBOR_ERR_ARRAY_LEN: return "array too long";
	case CBOR_ERR_MAP_LEN: return "map too large";
	case CBOR_ERR_UTF8: return "invalid UTF-8";
	case CBOR_ERR_KEY: return "map key neither integer nor text";
	case CBOR_ERR_DUP_KEY: return "duplicate map key";
	case CBOR_ERR_TRAILING: return "bytes after the item";
	case CBOR_ERR_NO_SPACE: return "output buffer full";
	case CBOR_ERR_ARG: return "value outside the profile";
	}
	return "unknown error";
}

/* ---- decoding ---- */

void cbor_dec_init(cbor_dec *d, const uint8_t *buf, size_t len)
{
	d->p = buf;
	d->end = buf + len;
	d->depth = 0;
}

bool cbor_dec_done(const cbor_dec *d)
{
	return d->p >= d->end;
}

/* A decoded initial byte and its argument. */
typedef struct {
	uint8_t major;
	uint8_t ai;   /* additional information, 0..27 */
	uint64_t arg; /* value, length, count, or float bits */
} head;

/* Reads one head (RFC 8949 section 3) and refuses what the profile forbids
 * in any position: reserved additional information, indefinite lengths and
 * breaks, two-byte simple values below 32. Tags are refused by the callers,
 * so that they can report CBOR_ERR_TAG. */
static cbor_err read_head(cbor_dec *d, head *h)
{
	if (d->p >= d->end) {
		return CBOR_ERR_END;
	}
	uint8_t b = *d->p++;
	h->major = (uint8_t)(b >> 5);
	h->ai = (uint8_t)(b & 31u);
	if (h->ai < 24) {
		h->arg = h->ai;
		return CBOR_OK;
	}
	if (h->ai > 27) {
		return h->ai == 31 ? CBOR_ERR_INDEFINITE : CBOR_ERR_RESERVED;
	}
	size_t n = (size_t)1 << (h->ai - 24); /* 1, 2, 4 or 8 bytes */
	if ((size_t)(d->end - d->p) < n) {
		return CBOR_ERR_END;
	}
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		v = (v << 8) | d->p[i];
	}
	d->p += n;
	h->arg = v;
	if (h->major == CBOR_MAJOR_SIMPLE && h->ai == 24 && v < 32) {
		return CBOR_ERR_RESERVED;
	}
	return CBOR_OK;
}

/* Reads the head of a value: anything but a tag. */
static cbor_err read_value(cbor_dec *d, head *h)
{
	CBOR_TRY(read_head(d, h));
	return h->major == CBOR_MAJOR_TAG ? CBOR_ERR_TAG : CBOR_OK;
}

/* Reads a head of the wanted major type. */
static cbor_err read_typed(cbor_dec *d, uint8_t major, head *h)
{
	CBOR_TRY(read_value(d, h));
	return h->major == major ? CBOR_OK : CBOR_ERR_TYPE;
}

cbor_err cbor_peek_major(const cbor_dec *d, uint8_t *major)
{
	if (d->p >= d->end) {
		return CBOR_ERR_END;
	}
	*major = (uint8_t)(*d->p >> 5);
	return CBOR_OK;
}

bool cbor_read_null(cbor_dec *d)
{
	if (d->p < d->end && (*d->p == 0xf6 || *d->p == 0xf7)) {
		d->p++;
		return true;
	}
	return false;
}

/* Reads the head of an integer (major type 0 or 1). */
static cbor_err read_integer(cbor_dec *d, head *h)
{
	CBOR_TRY(read_value(d, h));
	return h->major <= CBOR_MAJOR_NEGINT ? CBOR_OK : CBOR_ERR_TYPE;
}

cbor_err cbor_read_uint(cbor_dec *d, uint64_t max, uint64_t *v)
{
	head h;
	CBOR_TRY(read_integer(d, &h));
	if (h.major == CBOR_MAJOR_NEGINT || h.arg > max) {
		return CBOR_ERR_RANGE;
	}
	*v = h.arg;
	return CBOR_OK;
}

cbor_err cbor_read_int(cbor_dec *d, int64_t *v)
{
	head h;
	CBOR_TRY(read_integer(d, &h));
	if (h.arg > (uint64_t)INT64_MAX) {
		return CBOR_ERR_RANGE;
	}
	*v = h.major == CBOR_MAJOR_UINT ? (int64_t)h.arg : -1 - (int64_t)h.arg;
	return CBOR_OK;
}

/* Builds a double from its fields without floating-point arithmetic (the
 * Cortex-M3 has no FPU; only the integer-to-float conversions of libgcc are
 * used elsewhere). */
static double double_from_bits(uint64_t bits)
{
	double f;
	memcpy(&f, &bits, sizeof f);
	return f;
}

/* A float of mbits mantissa bits and an exponent bias, widened exactly to a
 * double: normals and subnormals by moving bits, infinities and NaNs keep
 * their mantissa (a NaN stays a NaN). */
static double widen_float(uint64_t bits, unsigned mbits, unsigned ebits, int bias)
{
	uint64_t sign = (bits >> (mbits + ebits)) & 1u;
	uint64_t exp = (bits >> mbits) & ((1u << ebits) - 1u);
	uint64_t mant = bits & (((uint64_t)1 << mbits) - 1u);
	uint64_t out = sign << 63;
	if (exp == ((1u << ebits) - 1u)) {
		out |= (uint64_t)0x7ff << 52 | mant << (52 - mbits);
	} else if (exp != 0) {
		out |= (uint64_t)((int64_t)exp - bias + 1023) << 52 | mant << (52 - mbits);
	} else if (mant != 0) {
		/* Subnormal: value = mant * 2^(1 - bias - mbits). Normalise so that
		 * the highest set bit becomes the implicit one. */
		int top = 0;
		while ((mant >> (top + 1)) != 0) {
			top++;
		}
		int64_t e = (int64_t)top + 1 - bias - (int64_t)mbits;
		uint64_t frac = (mant << (52 - top)) & (((uint64_t)1 << 52) - 1u);
		out |= (uint64_t)(e + 1023) << 52 | frac;
	}
	return double_from_bits(out);
}

cbor_err cbor_read_float(cbor_dec *d, double *v)
{
	head h;
	CBOR_TRY(read_value(d, &h));
	switch (h.major) {
	case CBOR_MAJOR_UINT:
		*v = (double)h.arg;
		return CBOR_OK;
	case CBOR_MAJOR_NEGINT:
		/* -1 - arg, computed so that arg = 2^64 - 1 does not overflow. */
		*v = -1.0 - (double)h.arg;
		return CBOR_OK;
	case CBOR_MAJOR_SIMPLE:
		switch (h.ai) {
		case 25:
			*v = widen_float(h.arg, 10, 5, 15);
			return CBOR_OK;
		case 26:
			*v = widen_float(h.arg, 23, 8, 127);
			return CBOR_OK;
		case 27:
			*v = double_from_bits(h.arg);
			return CBOR_OK;
		}
		break;
	}
	return CBOR_ERR_TYPE;
}

cbor_err cbor_read_bool(cbor_dec *d, bool *v)
{
	head h;
	CBOR_TRY(read_typed(d, CBOR_MAJOR_SIMPLE, &h));
	if (h.ai != 20 && h.ai != 21) {
		return CBOR_ERR_TYPE;
	}
	*v = h.ai == 21;
	return CBOR_OK;
}

/* The body of a string whose head was read: checks that it fits the input. */
static cbor_err string_body(cbor_dec *d, const head *h, const uint8_t **p, size_t *n)
{
	if (h->arg > (uint64_t)(d->end - d->p)) {
		return CBOR_ERR_END;
	}
	*p = d->p;
	*n = (size_t)h->arg;
	d->p += *n;
	return CBOR_OK;
}

/* A byte or text string, by its major type. */
static cbor_err read_string(cbor_dec *d, uint8_t major, const uint8_t **p, size_t *n)
{
	head h;
	CBOR_TRY(read_typed(d, major, &h));
	return string_body(d, &h, p, n);
}

cbor_err cbor_read_bytes(cbor_dec *d, const uint8_t **p, size_t *n)
{
	return read_string(d, CBOR_MAJOR_BYTES, p, n);
}

cbor_err cbor_read_text(cbor_dec *d, const char **p, size_t *n)
{
	const uint8_t *s;
	CBOR_TRY(read_string(d, CBOR_MAJOR_TEXT, &s, n));
	if (!cbor_utf8_valid(s, *n)) {
		return CBOR_ERR_UTF8;
	}
	*p = (const char *)s;
	return CBOR_OK;
}

static cbor_err enter(cbor_dec *d, uint8_t major, size_t *n)
{
	head h;
	CBOR_TRY(read_typed(d, major, &h));
	if (major == CBOR_MAJOR_ARRAY && h.arg > CBOR_MAX_ARRAY) {
		return CBOR_ERR_ARRAY_LEN;
	}
	if (major == CBOR_MAJOR_MAP && h.arg > CBOR_MAX_MAP_PAIRS) {
		return CBOR_ERR_MAP_LEN;
	}
	if (d->depth >= CBOR_MAX_NESTING) {
		return CBOR_ERR_DEPTH;
	}
	d->depth++;
	*n = (size_t)h.arg;
	return CBOR_OK;
}

cbor_err cbor_enter_array(cbor_dec *d, size_t *n)
{
	return enter(d, CBOR_MAJOR_ARRAY, n);
}

cbor_err cbor_enter_map(cbor_dec *d, size_t *pairs)
{
	return enter(d, CBOR_MAJOR_MAP, pairs);
}

void cbor_leave(cbor_dec *d)
{
	if (d->depth > 0) {
		d->depth--;
	}
}

cbor_err cbor_skip(cbor_dec *d)
{
	/* left[i]: items still to skip in the i-th open container; only
	 * non-empty containers are opened, so top < CBOR_MAX_NESTING. */
	uint16_t left[CBOR_MAX_NESTING];
	unsigned top = 0;
	uint32_t todo = 1; /* items still to skip at the current level */
	for (;;) {
		if (todo == 0) {
			if (top == 0) {
				return CBOR_OK;
			}
			todo = left[--top];
			continue;
		}
		todo--;
		head h;
		CBOR_TRY(read_head(d, &h));
		switch (h.major) {
		case CBOR_MAJOR_UINT:
		case CBOR_MAJOR_NEGINT:
		case CBOR_MAJOR_SIMPLE: /* read_head refused what is not well formed */
			break;
		case CBOR_MAJOR_BYTES:
		case CBOR_MAJOR_TEXT: {
			const uint8_t *p;
			size_t n;
			CBOR_TRY(string_body(d, &h, &p, &n));
			break;
		}
		case CBOR_MAJOR_ARRAY:
		case CBOR_MAJOR_MAP: {
			bool map = h.major == CBOR_MAJOR_MAP;
			if (h.arg > (map ? CBOR_MAX_MAP_PAIRS : CBOR_MAX_ARRAY)) {
				return map ? CBOR_ERR_MAP_LEN : CBOR_ERR_ARRAY_LEN;
			}
			if ((unsigned)d->depth + top + 1 > CBOR_MAX_NESTING) {
				return CBOR_ERR_DEPTH;
			}
			uint32_t items = (uint32_t)h.arg * (map ? 2u : 1u);
			if (items > 0) {
				left[top++] = (uint16_t)todo;
				todo = items;
			}
			break;
		}
		default:
			return CBOR_ERR_TAG;
		}
	}
}

cbor_err cbor_read_key(cbor_dec *d, cbor_key *k)
{
	uint8_t major;
	cbor_err err;
	CBOR_TRY(cbor_peek_major(d, &major));
	switch (major) {
	case CBOR_MAJOR_UINT:
	case CBOR_MAJOR_NEGINT:
		k->is_text = false;
		k->s = NULL;
		k->n = 0;
		err = cbor_read_int(d, &k->i);
		return err == CBOR_ERR_RANGE ? CBOR_ERR_KEY : err;
	case CBOR_MAJOR_TEXT:
		k->is_text = true;
		k->i = 0;
		return cbor_read_text(d, &k->s, &k->n);
	case CBOR_MAJOR_TAG:
		return CBOR_ERR_TAG;
	}
	/* Still refuse what is not well formed with its own error. */
	head h;
	CBOR_TRY(read_head(d, &h));
	return CBOR_ERR_KEY;
}

bool cbor_key_equal(const cbor_key *a, const cbor_key *b)
{
	if (a->is_text != b->is_text) {
		return false;
	}
	if (!a->is_text) {
		return a->i == b->i;
	}
	return a->n == b->n && (a->n == 0 || memcmp(a->s, b->s, a->n) == 0);
}

bool cbor_utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		uint8_t lo = 0x80, hi = 0xbf; /* range of the second byte */
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			if (c == 0xe0) {
				lo = 0xa0; /* no overlong forms */
			} else if (c == 0xed) {
				hi = 0x9f; /* no surrogates */
			}
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			if (c == 0xf0) {
				lo = 0x90; /* no overlong forms */
			} else if (c == 0xf4) {
				hi = 0x8f; /* nothing above U+10FFFF */
			}
		} else {
			return false;
		}
		if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) {
			return false;
		}
		for (size_t j = 2; j < len; j++) {
			if ((s[i + j] & 0xc0) != 0x80) {
				return false;
			}
		}
		i += len;
	}
	return true;
}

/* ---- encoding ---- */

void cbor_enc_init(cbor_enc *e, uint8_t *buf, size_t cap)
{
	e->buf = buf;
	e->cap = cap;
	e->len = 0;
	e->err = CBOR_OK;
}

cbor_err cbor_enc_finish(const cbor_enc *e, size_t *len)
{
	if (len != NULL) {
		*len = e->err == CBOR_OK ? e->len : 0;
	}
	return e->err;
}

/* Reserves n bytes and returns where to write them, or NULL (error set). */
static uint8_t *reserve(cbor_enc *e, size_t n)
{
	if (e->err != CBOR_OK) {
		return NULL;
	}
	if (e->cap - e->len < n) {
		e->err = CBOR_ERR_NO_SPACE;
		return NULL;
	}
	uint8_t *p = e->buf + e->len;
	e->len += n;
	return p;
}

/* The initial byte ib, then the n low bytes of arg, big-endian. */
static void write_raw(cbor_enc *e, uint8_t ib, uint64_t arg, size_t n)
{
	uint8_t *p = reserve(e, 1 + n);
	if (p == NULL) {
		return;
	}
	p[0] = ib;
	for (size_t i = 0; i < n; i++) {
		p[n - i] = (uint8_t)(arg >> (8 * i));
	}
}

/* A head in its shortest form. */
static void write_head(cbor_enc *e, uint8_t major, uint64_t arg)
{
	uint8_t ib = (uint8_t)(major << 5);
	if (arg < 24) {
		write_raw(e, (uint8_t)(ib | arg), 0, 0);
		return;
	}
	uint8_t ai = arg <= 0xff ? 24 : arg <= 0xffff ? 25 : arg <= 0xffffffffu ? 26 : 27;
	write_raw(e, (uint8_t)(ib | ai), arg, (size_t)1 << (ai - 24)); /* 1, 2, 4 or 8 bytes */
}

void cbor_write_uint(cbor_enc *e, uint64_t v)
{
	write_head(e, CBOR_MAJOR_UINT, v);
}

void cbor_write_int(cbor_enc *e, int64_t v)
{
	if (v >= 0) {
		write_head(e, CBOR_MAJOR_UINT, (uint64_t)v);
	} else {
		write_head(e, CBOR_MAJOR_NEGINT, ~(uint64_t)v); /* -1 - v */
	}
}

void cbor_write_float(cbor_enc *e, double v)
{
	uint64_t bits;
	memcpy(&bits, &v, sizeof bits);
	if (((bits >> 52) & 0x7ff) == 0x7ff) {
		bool nan = (bits & (((uint64_t)1 << 52) - 1u)) != 0;
		write_raw(e, 0xf9, nan ? 0x7e00 : (bits >> 63) ? 0xfc00 : 0x7c00, 2);
		return;
	}
	write_raw(e, 0xfb, bits, 8);
}

void cbor_write_bool(cbor_enc *e, bool v)
{
	write_raw(e, v ? 0xf5 : 0xf4, 0, 0);
}

void cbor_write_null(cbor_enc *e)
{
	write_raw(e, 0xf6, 0, 0);
}

static void write_string(cbor_enc *e, uint8_t major, const void *p, size_t n)
{
	write_head(e, major, n);
	uint8_t *dst = reserve(e, n);
	if (dst != NULL && n > 0) {
		memcpy(dst, p, n);
	}
}

void cbor_write_bytes(cbor_enc *e, const uint8_t *p, size_t n)
{
	write_string(e, CBOR_MAJOR_BYTES, p, n);
}

void cbor_write_text(cbor_enc *e, const char *p, size_t n)
{
	write_string(e, CBOR_MAJOR_TEXT, p, n);
}

/* The head of an array or map of n elements, at most max. */
static void write_container(cbor_enc *e, uint8_t major, size_t n, size_t max)
{
	if (n > max) {
		if (e->err == CBOR_OK) {
			e->err = CBOR_ERR_ARG;
		}
		return;
	}
	write_head(e, major, n);
}

void cbor_write_array(cbor_enc *e, size_t n)
{
	write_container(e, CBOR_MAJOR_ARRAY, n, CBOR_MAX_ARRAY);
}

void cbor_write_map(cbor_enc *e, size_t pairs)
{
	write_container(e, CBOR_MAJOR_MAP, pairs, CBOR_MAX_MAP_PAIRS);
}
