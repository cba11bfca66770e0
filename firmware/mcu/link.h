/*
 * link.h: the serial link transport of docs/protocol.md (section "Serial
 * link transport"): protocol payloads framed for a byte stream such as a
 * UART, with a start marker, a checked length and a CRC-32, so that a reader
 * finds frames again after noise, a reset or a lost byte. The Go side is
 * package wasmbed.io/wasmbed/firmware/link; both are checked against
 * testdata/protocol/link-vectors.json.
 *
 *   offset  size  field
 *   0       2     start marker d9 57
 *   2       4     length of the payload, uint32 big endian, 1..65536
 *   6       1     header check: CRC-8/SMBUS of the 4 length bytes
 *   7       len   payload: one protocol message (the CBOR envelope)
 *   7+len   4     CRC-32/ISO-HDLC of the payload, big endian
 *
 * The decoder takes bytes one at a time (or in blocks) into a buffer given by
 * the caller and returns whole frames from it; it never allocates. It is not
 * reentrant for one link_dec: feed it from one context (the poll loop, or an
 * interrupt handler that does nothing else with it).
 */
#ifndef WASMBED_LINK_H
#define WASMBED_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LINK_MAGIC0 0xd9u
#define LINK_MAGIC1 0x57u
#define LINK_HEADER_LEN 7u  /* marker, length, header check */
#define LINK_TRAILER_LEN 4u /* CRC-32 */
#define LINK_OVERHEAD (LINK_HEADER_LEN + LINK_TRAILER_LEN)
#define LINK_MAX_PAYLOAD 65536u /* the protocol's MaxFrame */
/* A receiver drops a partial frame after this much silence (link_dec_idle). */
#define LINK_IDLE_MS 1000u

/* Decoder buffer size for payloads of at most max bytes. */
#define LINK_DEC_BUF(max) ((size_t)(max) + LINK_OVERHEAD)

/* CRC-8/SMBUS (poly 0x07, init 0, no reflection, no final xor). */
uint8_t link_crc8(const uint8_t *p, size_t n);
/* CRC-32/ISO-HDLC, the IEEE CRC of zlib and Ethernet. Start with crc = 0;
 * feeding a message in pieces gives the same result as in one call. */
uint32_t link_crc32(uint32_t crc, const uint8_t *p, size_t n);

/* ---- encoding ---- */

/* The 7 header bytes of a frame of a len-byte payload (1..LINK_MAX_PAYLOAD).
 * With link_trailer, a sender can write header, payload and trailer without
 * copying the payload. */
void link_header(uint8_t out[LINK_HEADER_LEN], uint32_t len);
/* The 4 trailer bytes of the payload p[0, n). */
void link_trailer(uint8_t out[LINK_TRAILER_LEN], const uint8_t *p, size_t n);
/* Writes the whole frame of payload p[0, n) to out[0, cap). Returns its
 * length, or 0 when n is 0 or above LINK_MAX_PAYLOAD or out is too small. */
size_t link_encode(const uint8_t *p, size_t n, uint8_t *out, size_t cap);

/* ---- decoding ---- */

/* Counters since link_dec_init; every byte received is eventually counted
 * once in a delivered frame (payload + LINK_OVERHEAD) or in skipped. */
typedef struct {
	uint32_t frames;     /* frames delivered */
	uint32_t skipped;    /* bytes dropped while hunting for a start marker */
	uint32_t bad_header; /* marker followed by a wrong header check or length 0 */
	uint32_t too_large;  /* headers announcing more than the decoder's limit */
	uint32_t bad_crc;    /* whole frames whose CRC-32 was wrong */
	uint32_t truncated;  /* partial frames dropped because the line went idle */
} link_stats;

typedef struct {
	uint8_t *buf;
	size_t cap;       /* bytes of buf */
	size_t max;       /* largest payload: min(cap - LINK_OVERHEAD, LINK_MAX_PAYLOAD) */
	size_t start;     /* first byte of the candidate frame */
	size_t end;       /* one past the last byte received */
	size_t delivered; /* length of the frame last returned, released at the next call */
	bool idle;        /* the line went idle: partial frames will not complete */
	link_stats stats;
} link_dec;

typedef enum {
	LINK_NEED_MORE = 0, /* no whole frame in the buffer: give it more bytes */
	LINK_FRAME,         /* *payload, *len: a frame; valid until the next call */
	LINK_TOO_LARGE      /* *len: a header announced a payload above the limit */
} link_status;

/* buf must hold at least LINK_OVERHEAD + 1 bytes; LINK_DEC_BUF(65536) takes
 * every frame of the protocol. */
void link_dec_init(link_dec *d, uint8_t *buf, size_t cap);
/* Adds one received byte. Returns false (and drops the byte) only when the
 * buffer is full, which cannot happen when link_dec_next is called until it
 * returns LINK_NEED_MORE after each link_dec_put. */
bool link_dec_put(link_dec *d, uint8_t b);
/* Adds up to n bytes; returns how many were taken. */
size_t link_dec_write(link_dec *d, const uint8_t *p, size_t n);
/* Tells the decoder that nothing arrived for LINK_IDLE_MS: a partial frame in
 * the buffer was cut short. link_dec_next then drops it and looks for frames
 * in the bytes after its start marker. */
void link_dec_idle(link_dec *d);
/* Returns the next event from the buffered bytes. Call it until it returns
 * LINK_NEED_MORE. A refused candidate frame (wrong header check, length 0
 * or too large, wrong CRC-32, cut short) costs its first byte only: the hunt
 * for a start marker resumes at the byte after it, so a frame hidden behind
 * a false start is still found. */
link_status link_dec_next(link_dec *d, const uint8_t **payload, size_t *len);

#endif /* WASMBED_LINK_H */
