//go:build ignore

/*
 * link.c: serial link framing (docs/protocol.md, "Serial link transport").
 * See link.h.
 */
#include "link.h"

#include <string.h>

uint8_t link_crc8(const uint8_t *p, size_t n)
{
	uint8_t crc = 0;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (unsigned b = 0; b < 8; b++) {
			crc = (uint8_t)((crc & 0x80u) != 0 ? ((unsigned)crc << 1) ^ 0x07u : (unsigned)crc << 1);
		}
	}
	return crc;
}

/* Half-byte table of the reflected polynomial 0xedb88320: 64 bytes of flash
 * instead of the usual 1 KiB, at two lookups per byte. */
static const uint32_t crc32_nibble[16] = {
	0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
	0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c, 0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
};

uint32_t link_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		crc = (crc >> 4) ^ crc32_nibble[crc & 15u];
		crc = (crc >> 4) ^ crc32_nibble[crc & 15u];
	}
	return ~crc;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void link_header(uint8_t out[LINK_HEADER_LEN], uint32_t len)
{
	out[0] = LINK_MAGIC0;
	out[1] = LINK_MAGIC1;
	put_be32(out + 2, len);
	out[6] = link_crc8(out + 2, 4);
}

void link_trailer(uint8_t out[LINK_TRAILER_LEN], const uint8_t *p, size_t n)
{
	put_be32(out, link_crc32(0, p, n));
}

size_t link_encode(const uint8_t *p, size_t n, uint8_t *out, size_t cap)
{
	if (n == 0 || n > LINK_MAX_PAYLOAD || cap < LINK_OVERHEAD || cap - LINK_OVERHEAD < n) {
		return 0;
	}
	link_header(out, (uint32_t)n);
	memmove(out + LINK_HEADER_LEN, p, n);
	link_trailer(out + LINK_HEADER_LEN + n, out + LINK_HEADER_LEN, n);
	return LINK_OVERHEAD + n;
}

void link_dec_init(link_dec *d, uint8_t *buf, size_t cap)
{
	memset(d, 0, sizeof *d);
	d->buf = buf;
	d->cap = cap;
	d->max = cap > LINK_OVERHEAD ? cap - LINK_OVERHEAD : 0;
	if (d->max > LINK_MAX_PAYLOAD) {
		d->max = LINK_MAX_PAYLOAD;
	}
}

/* Frees the frame returned last and moves the buffered bytes to the front
 * when there is no room after them. */
static void make_room(link_dec *d)
{
	d->start += d->delivered;
	d->delivered = 0;
	if (d->start == d->end) {
		d->start = d->end = 0;
	} else if (d->end == d->cap && d->start > 0) {
		memmove(d->buf, d->buf + d->start, d->end - d->start);
		d->end -= d->start;
		d->start = 0;
	}
}

bool link_dec_put(link_dec *d, uint8_t b)
{
	make_room(d);
	if (d->end == d->cap) {
		return false;
	}
	d->buf[d->end++] = b;
	d->idle = false;
	return true;
}

size_t link_dec_write(link_dec *d, const uint8_t *p, size_t n)
{
	make_room(d);
	size_t room = d->cap - d->end;
	if (n > room) {
		n = room;
	}
	if (n > 0) {
		memcpy(d->buf + d->end, p, n);
		d->end += n;
		d->idle = false;
	}
	return n;
}

void link_dec_idle(link_dec *d)
{
	d->idle = true;
}

/* Refuses the candidate at start: its first byte is dropped and the hunt
 * resumes at the next one. */
static void drop_one(link_dec *d)
{
	d->start++;
	d->stats.skipped++;
}

link_status link_dec_next(link_dec *d, const uint8_t **payload, size_t *len)
{
	d->start += d->delivered;
	d->delivered = 0;
	for (;;) {
		size_t have = d->end - d->start;
		const uint8_t *c = d->buf + d->start;
		if (have == 0) {
			d->start = d->end = 0;
			return LINK_NEED_MORE;
		}
		if (c[0] != LINK_MAGIC0) {
			const uint8_t *m = memchr(c, LINK_MAGIC0, have);
			size_t junk = m != NULL ? (size_t)(m - c) : have;
			d->start += junk;
			d->stats.skipped += (uint32_t)junk;
			continue;
		}
		size_t need = 2;
		if (have >= 2) {
			if (c[1] != LINK_MAGIC1) {
				drop_one(d);
				continue;
			}
			need = LINK_HEADER_LEN;
		}
		if (have >= LINK_HEADER_LEN) {
			uint32_t n = get_be32(c + 2);
			if (n == 0 || link_crc8(c + 2, 4) != c[6]) {
				d->stats.bad_header++;
				drop_one(d);
				continue;
			}
			if (n > d->max) {
				d->stats.too_large++;
				drop_one(d);
				*len = n;
				return LINK_TOO_LARGE;
			}
			need = LINK_OVERHEAD + n;
			if (have >= need) {
				if (link_crc32(0, c + LINK_HEADER_LEN, n) != get_be32(c + LINK_HEADER_LEN + n)) {
					d->stats.bad_crc++;
					drop_one(d);
					continue;
				}
				d->stats.frames++;
				d->delivered = need;
				*payload = c + LINK_HEADER_LEN;
				*len = n;
				return LINK_FRAME;
			}
		}
		/* A partial frame: wait for the rest, unless the line went idle. */
		if (d->idle) {
			d->stats.truncated++;
			drop_one(d);
			continue;
		}
		if (d->start + need > d->cap) {
			memmove(d->buf, c, have);
			d->start = 0;
			d->end = have;
		}
		return LINK_NEED_MORE;
	}
}
