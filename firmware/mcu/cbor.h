/*
 * cbor.h: the CBOR subset of the Wasmbed southbound protocol (docs/protocol.md,
 * section "CBOR profile"), for the microcontroller firmware.
 *
 * Decoding is a cursor over the caller's buffer: nothing is copied or
 * allocated, and byte and text strings come back as pointer + length into
 * that buffer. Every read checks the profile (definite lengths only, no tags,
 * no reserved additional information, MaxNesting, MaxArray, MaxMapPairs,
 * UTF-8 of text strings) and fails with a cbor_err; no input makes it read
 * outside the buffer. Encoding writes the shortest forms of RFC 8949 core
 * deterministic encoding into the caller's buffer; the caller writes map keys
 * in ascending order.
 *
 * Neither side keeps global state; a cbor_dec or cbor_enc is used by one
 * thread (or interrupt level) at a time.
 */
#ifndef WASMBED_CBOR_H
#define WASMBED_CBOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits of the profile, the same as gateway/protocol/codec.go. */
#define CBOR_MAX_NESTING 8    /* arrays and maps, the outermost counting as 1 */
#define CBOR_MAX_ARRAY 256    /* elements of one array */
#define CBOR_MAX_MAP_PAIRS 256 /* pairs of one map */

/* Result of every cbor_* call. All but CBOR_OK make a payload malformed. */
typedef enum {
	CBOR_OK = 0,
	CBOR_ERR_END,        /* input ends inside an item */
	CBOR_ERR_INDEFINITE, /* indefinite length, or a break byte */
	CBOR_ERR_TAG,        /* a tag (major type 6) */
	CBOR_ERR_RESERVED,   /* additional information 28..30, or simple value < 32 in two bytes */
	CBOR_ERR_TYPE,       /* another major type (or simple value) than the field wants */
	CBOR_ERR_RANGE,      /* integer does not fit the field (negative in unsigned, too wide) */
	CBOR_ERR_DEPTH,      /* more than CBOR_MAX_NESTING levels */
	CBOR_ERR_ARRAY_LEN,  /* array of more than CBOR_MAX_ARRAY elements */
	CBOR_ERR_MAP_LEN,    /* map of more than CBOR_MAX_MAP_PAIRS pairs */
	CBOR_ERR_UTF8,       /* text string that is not valid UTF-8 */
	CBOR_ERR_KEY,        /* map key neither an integer in int64 range nor a text string */
	CBOR_ERR_DUP_KEY,    /* a key repeated in a map */
	CBOR_ERR_TRAILING,   /* bytes after the item */
	CBOR_ERR_NO_SPACE,   /* encoder: output buffer full */
	CBOR_ERR_ARG         /* encoder: argument outside the profile (count above a limit) */
} cbor_err;

/* Short English description of e, for logs. Never NULL. */
const char *cbor_strerror(cbor_err e);

/* Returns the error of x from the calling function unless it is CBOR_OK:
 * decoding stops at the first error. */
#define CBOR_TRY(x)                     \
	do {                                \
		cbor_err err_ = (x);            \
		if (err_ != CBOR_OK) {          \
			return err_;                \
		}                               \
	} while (0)

/* Major types (RFC 8949 section 3.1). */
enum {
	CBOR_MAJOR_UINT = 0,
	CBOR_MAJOR_NEGINT = 1,
	CBOR_MAJOR_BYTES = 2,
	CBOR_MAJOR_TEXT = 3,
	CBOR_MAJOR_ARRAY = 4,
	CBOR_MAJOR_MAP = 5,
	CBOR_MAJOR_TAG = 6,
	CBOR_MAJOR_SIMPLE = 7
};

/*
 * Decoder: a cursor over buf[0, len). depth counts the arrays and maps
 * entered with cbor_enter_* and not yet left; nesting is checked against it.
 * After an error the cursor's position is unspecified: stop decoding.
 */
typedef struct {
	const uint8_t *p;   /* next byte to read */
	const uint8_t *end; /* one past the last byte */
	uint8_t depth;      /* containers entered, 0 at the top level */
} cbor_dec;

void cbor_dec_init(cbor_dec *d, const uint8_t *buf, size_t len);

/* True when every byte has been read. */
bool cbor_dec_done(const cbor_dec *d);

/* Major type of the next item, without consuming it; CBOR_ERR_END at the end. */
cbor_err cbor_peek_major(const cbor_dec *d, uint8_t *major);

/* Consumes a null (f6) or undefined (f7) and returns true; else false and
 * nothing is consumed. The profile reads both as "field absent". */
bool cbor_read_null(cbor_dec *d);

/* Unsigned integer (major type 0) of at most max. */
cbor_err cbor_read_uint(cbor_dec *d, uint64_t max, uint64_t *v);
/* Integer (major type 0 or 1) in the int64 range. */
cbor_err cbor_read_int(cbor_dec *d, int64_t *v);
/* Float of any width (16, 32, 64 bit) or an integer (major type 0 or 1). */
cbor_err cbor_read_float(cbor_dec *d, double *v);
cbor_err cbor_read_bool(cbor_dec *d, bool *v);
/* Byte string (major type 2); *p points into the input. */
cbor_err cbor_read_bytes(cbor_dec *d, const uint8_t **p, size_t *n);
/* Text string (major type 3), checked to be valid UTF-8; *p points into
 * the input and is not NUL-terminated. */
cbor_err cbor_read_text(cbor_dec *d, const char **p, size_t *n);

/* Enter an array or map: reads its head, checks the length and nesting
 * limits and increments depth. The caller reads the n elements (2n items for
 * a map) and then calls cbor_leave. */
cbor_err cbor_enter_array(cbor_dec *d, size_t *n);
cbor_err cbor_enter_map(cbor_dec *d, size_t *pairs);
void cbor_leave(cbor_dec *d);

/* Skips one item of any type, nested ones included, checking the profile's
 * structural rules (no tags, no indefinite lengths, nesting, array and map
 * limits). Text inside skipped items is not checked for UTF-8 (spec section
 * "CBOR profile": values of unknown keys). No recursion: an array of
 * CBOR_MAX_NESTING counters on the stack. */
cbor_err cbor_skip(cbor_dec *d);

/* A map key of a map decoded as a struct: an integer in the int64 range, or
 * a valid UTF-8 text string (pointing into the input). */
typedef struct {
	bool is_text;
	int64_t i;     /* when !is_text */
	const char *s; /* when is_text */
	size_t n;
} cbor_key;

cbor_err cbor_read_key(cbor_dec *d, cbor_key *k);
/* Keys compare by value: 1 and 0x18 0x01 are equal; "1" never equals 1. */
bool cbor_key_equal(const cbor_key *a, const cbor_key *b);

/* Strict UTF-8 check (no overlong forms, no surrogates, nothing above
 * U+10FFFF), the same as Go's utf8.Valid. */
bool cbor_utf8_valid(const uint8_t *s, size_t n);

/*
 * Encoder: appends to buf[0, cap). The first error sticks: later writes do
 * nothing and cbor_enc_finish returns it, so a message can be written without
 * checking every call.
 */
typedef struct {
	uint8_t *buf;
	size_t cap;
	size_t len; /* bytes written */
	cbor_err err;
} cbor_enc;

void cbor_enc_init(cbor_enc *e, uint8_t *buf, size_t cap);
/* The first error of the writes, or CBOR_OK; *len (may be NULL) gets the
 * number of bytes written. */
cbor_err cbor_enc_finish(const cbor_enc *e, size_t *len);

void cbor_write_uint(cbor_enc *e, uint64_t v);
void cbor_write_int(cbor_enc *e, int64_t v);
/* 64-bit float, except NaN (any payload), +Inf and -Inf, which are written
 * as the 16-bit f9 7e 00, f9 7c 00 and f9 fc 00 (spec section "CBOR
 * profile"). */
void cbor_write_float(cbor_enc *e, double v);
void cbor_write_bool(cbor_enc *e, bool v);
void cbor_write_null(cbor_enc *e);
void cbor_write_bytes(cbor_enc *e, const uint8_t *p, size_t n);
/* The caller guarantees valid UTF-8 (cbor_utf8_valid). */
void cbor_write_text(cbor_enc *e, const char *p, size_t n);
/* Heads of an array of n elements / a map of n pairs (n at most the limits,
 * else CBOR_ERR_ARG). */
void cbor_write_array(cbor_enc *e, size_t n);
void cbor_write_map(cbor_enc *e, size_t pairs);

#endif /* WASMBED_CBOR_H */
