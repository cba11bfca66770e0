/*
 * test_link.c: host tests of link.c, the serial link framing. stdin holds
 * testdata/protocol/link-vectors.json as written by firmware/mcu/mcu_test.go,
 * one record per vector:
 *
 *   L <name> <max payload> <n> <stream element hex or ->*n <encode 0|1>
 *     <m> (F <payload hex> | T <announced length>)*m
 *     <frames> <skipped> <bad_header> <too_large> <bad_crc> <truncated>
 *
 * The line goes idle after each stream element.
 */
#include "../link.h"
#include "testutil.h"

#define MAX_EVENTS 64

typedef struct {
	bool frame;
	uint32_t too_large;
	uint8_t *payload;
	size_t len;
} event;

typedef struct {
	event ev[MAX_EVENTS];
	size_t n;
} events;

static void record(events *out, link_status st, const uint8_t *p, size_t n)
{
	if (out->n == MAX_EVENTS) {
		return;
	}
	event *e = &out->ev[out->n++];
	e->frame = st == LINK_FRAME;
	e->too_large = st == LINK_TOO_LARGE ? (uint32_t)n : 0;
	e->payload = NULL;
	e->len = 0;
	if (e->frame) {
		e->payload = malloc(n);
		memcpy(e->payload, p, n);
		e->len = n;
	}
}

static void drain(link_dec *d, events *out)
{
	const uint8_t *p;
	size_t n;
	link_status st;
	while ((st = link_dec_next(d, &p, &n)) != LINK_NEED_MORE) {
		CHECK(st == LINK_FRAME || st == LINK_TOO_LARGE);
		if (st == LINK_FRAME) {
			CHECK(n >= 1 && n <= d->max);
		}
		record(out, st, p, n);
	}
}

static void free_events(events *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->ev[i].payload);
	}
	e->n = 0;
}

/* Runs a decoder with room for max-byte payloads over the stream elements,
 * idle after each; mode 0 writes each element whole, 1 a byte at a time, 2
 * in random pieces. */
static link_stats run(size_t max, uint8_t **elems, size_t *lens, size_t nelem, int mode, events *out)
{
	size_t cap = LINK_DEC_BUF(max);
	uint8_t *buf = malloc(cap);
	link_dec d;
	link_dec_init(&d, buf, cap);
	for (size_t i = 0; i < nelem; i++) {
		const uint8_t *p = elems[i];
		size_t left = lens[i];
		while (left > 0) {
			size_t k;
			if (mode == 1) {
				CHECK(link_dec_put(&d, *p));
				k = 1;
			} else {
				size_t want = mode == 0 ? left : 1 + rndn(left < 40 ? left : 40);
				k = link_dec_write(&d, p, want);
				CHECK(k > 0);
			}
			p += k;
			left -= k;
			drain(&d, out);
		}
		link_dec_idle(&d);
		drain(&d, out);
	}
	CHECK(d.start == 0 && d.end == 0); /* nothing left after idle */
	free(buf);
	return d.stats;
}

static bool same_events(const events *a, const events *b)
{
	if (a->n != b->n) {
		return false;
	}
	for (size_t i = 0; i < a->n; i++) {
		const event *x = &a->ev[i], *y = &b->ev[i];
		if (x->frame != y->frame || x->too_large != y->too_large || x->len != y->len ||
		    (x->len > 0 && memcmp(x->payload, y->payload, x->len) != 0)) {
			return false;
		}
	}
	return true;
}

static bool same_stats(link_stats a, link_stats b)
{
	return a.frames == b.frames && a.skipped == b.skipped && a.bad_header == b.bad_header &&
	       a.too_large == b.too_large && a.bad_crc == b.bad_crc && a.truncated == b.truncated;
}

static int run_vectors(void)
{
	int count = 0;
	for (const char *t; (t = tok()) != NULL; count++) {
		CHECK(strcmp(t, "L") == 0);
		const char *name = tok_must();
		size_t max = (size_t)strtoul(tok_must(), NULL, 10);
		if (max == 0) {
			max = LINK_MAX_PAYLOAD;
		}
		size_t nelem = (size_t)strtoul(tok_must(), NULL, 10);
		uint8_t *elems[16];
		size_t lens[16], total = 0;
		CHECK(nelem <= 16);
		for (size_t i = 0; i < nelem && i < 16; i++) {
			const char *h = tok_must();
			size_t cap = strlen(h) / 2 + 1;
			uint8_t *tmp = malloc(cap);
			lens[i] = unhex(h, tmp, cap);
			elems[i] = exact_copy(tmp, lens[i]);
			free(tmp);
			total += lens[i];
		}
		bool encode = strcmp(tok_must(), "1") == 0;
		events want = {.n = 0};
		size_t nev = (size_t)strtoul(tok_must(), NULL, 10);
		for (size_t i = 0; i < nev; i++) {
			const char *kind = tok_must(), *v = tok_must();
			if (strcmp(kind, "F") == 0) {
				size_t cap = strlen(v) / 2 + 1;
				uint8_t *p = malloc(cap);
				size_t n = unhex(v, p, cap);
				record(&want, LINK_FRAME, p, n);
				free(p);
			} else {
				record(&want, LINK_TOO_LARGE, NULL, (size_t)strtoul(v, NULL, 10));
			}
		}
		link_stats ws;
		ws.frames = (uint32_t)strtoul(tok_must(), NULL, 10);
		ws.skipped = (uint32_t)strtoul(tok_must(), NULL, 10);
		ws.bad_header = (uint32_t)strtoul(tok_must(), NULL, 10);
		ws.too_large = (uint32_t)strtoul(tok_must(), NULL, 10);
		ws.bad_crc = (uint32_t)strtoul(tok_must(), NULL, 10);
		ws.truncated = (uint32_t)strtoul(tok_must(), NULL, 10);

		for (int mode = 0; mode < 3; mode++) {
			events got = {.n = 0};
			link_stats st = run(max, elems, lens, nelem, mode, &got);
			CHECKF(same_events(&got, &want), "vector %s (mode %d): %zu events, want %zu", name, mode, got.n, want.n);
			CHECKF(same_stats(st, ws), "vector %s (mode %d): stats frames %u skipped %u bad_header %u too_large %u bad_crc %u truncated %u",
			       name, mode, st.frames, st.skipped, st.bad_header, st.too_large, st.bad_crc, st.truncated);
			free_events(&got);
		}
		/* Every byte is a frame's or a skipped one. */
		size_t framed = 0;
		for (size_t i = 0; i < want.n; i++) {
			framed += want.ev[i].frame ? want.ev[i].len + LINK_OVERHEAD : 0;
		}
		CHECKF(framed + ws.skipped == total, "vector %s: %zu framed + %u skipped != %zu", name, framed, ws.skipped, total);
		if (encode) {
			static uint8_t enc[4096];
			size_t n = 0;
			for (size_t i = 0; i < want.n; i++) {
				size_t k = link_encode(want.ev[i].payload, want.ev[i].len, enc + n, sizeof enc - n);
				CHECK(k == want.ev[i].len + LINK_OVERHEAD);
				n += k;
			}
			CHECKF(nelem == 1 && n == lens[0] && memcmp(enc, elems[0], n) == 0, "vector %s: encoding differs", name);
		}
		free_events(&want);
		for (size_t i = 0; i < nelem && i < 16; i++) {
			exact_free(elems[i], lens[i]);
		}
	}
	printf("link vectors: %d checked\n", count);
	return count;
}

static void test_checksums(void)
{
	const uint8_t *check = (const uint8_t *)"123456789";
	CHECK(link_crc8(check, 9) == 0xf4);
	CHECK(link_crc32(0, check, 9) == 0xcbf43926u);
	CHECK(link_crc32(link_crc32(0, check, 4), check + 4, 5) == 0xcbf43926u);
	CHECK(link_crc32(0, NULL, 0) == 0);
}

/* The largest frame, and what the encoder refuses. */
static void test_limits(void)
{
	static uint8_t payload[LINK_MAX_PAYLOAD + 1], frame[LINK_MAX_PAYLOAD + LINK_OVERHEAD + 1];
	for (size_t i = 0; i < sizeof payload; i++) {
		payload[i] = (uint8_t)rnd();
	}
	CHECK(link_encode(payload, 0, frame, sizeof frame) == 0);
	CHECK(link_encode(payload, LINK_MAX_PAYLOAD + 1, frame, sizeof frame) == 0);
	CHECK(link_encode(payload, 10, frame, 10 + LINK_OVERHEAD - 1) == 0);
	CHECK(link_encode(payload, 10, frame, 5) == 0);
	size_t n = link_encode(payload, LINK_MAX_PAYLOAD, frame, sizeof frame);
	CHECK(n == LINK_MAX_PAYLOAD + LINK_OVERHEAD);

	/* Header and trailer written apart give the same bytes. */
	uint8_t h[LINK_HEADER_LEN], tr[LINK_TRAILER_LEN];
	link_header(h, LINK_MAX_PAYLOAD);
	link_trailer(tr, payload, LINK_MAX_PAYLOAD);
	CHECK(memcmp(frame, h, sizeof h) == 0 && memcmp(frame + LINK_HEADER_LEN + LINK_MAX_PAYLOAD, tr, sizeof tr) == 0);

	size_t cap = LINK_DEC_BUF(LINK_MAX_PAYLOAD);
	uint8_t *buf = malloc(cap);
	link_dec d;
	link_dec_init(&d, buf, cap);
	CHECK(d.max == LINK_MAX_PAYLOAD);
	/* Garbage first, then the frame a byte at a time. */
	for (int i = 0; i < 100; i++) {
		CHECK(link_dec_put(&d, (uint8_t)i));
	}
	const uint8_t *p;
	size_t len;
	CHECK(link_dec_next(&d, &p, &len) == LINK_NEED_MORE);
	int frames = 0;
	for (size_t i = 0; i < n; i++) {
		CHECK(link_dec_put(&d, frame[i]));
		link_status st;
		while ((st = link_dec_next(&d, &p, &len)) != LINK_NEED_MORE) {
			CHECK(st == LINK_FRAME && len == LINK_MAX_PAYLOAD && memcmp(p, payload, len) == 0);
			frames++;
		}
	}
	CHECK(frames == 1 && d.stats.skipped == 100);
	free(buf);

	/* A buffer larger than needed still caps payloads at the protocol's
	 * MaxFrame; a smaller one at what fits. */
	buf = malloc(cap + 100);
	link_dec_init(&d, buf, cap + 100);
	CHECK(d.max == LINK_MAX_PAYLOAD);
	free(buf);
	uint8_t small[LINK_OVERHEAD + 16];
	link_dec_init(&d, small, sizeof small);
	CHECK(d.max == 16);
	/* Drained after each byte, a small decoder never refuses one. */
	for (int i = 0; i < 5000; i++) {
		uint8_t b = rndn(4) == 0 ? LINK_MAGIC0 : rndn(4) == 0 ? LINK_MAGIC1 : (uint8_t)rnd();
		CHECK(link_dec_put(&d, b));
		while (link_dec_next(&d, &p, &len) != LINK_NEED_MORE) {
		}
	}
	/* Undrained, it fills up and says so instead of overflowing. */
	link_dec_init(&d, small, sizeof small);
	CHECK(link_dec_put(&d, LINK_MAGIC0) && link_dec_put(&d, LINK_MAGIC1));
	size_t k = link_dec_write(&d, payload, 1000);
	CHECK(k == sizeof small - 2 && !link_dec_put(&d, 0));
}

/* Returns whether needle occurs in hay. */
static bool contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
	for (size_t i = 0; i + m <= n; i++) {
		if (memcmp(hay + i, needle, m) == 0) {
			return true;
		}
	}
	return false;
}

/* Random streams of frames, noise and cuts: no fault, every frame is one of
 * the stream with correct checks, every byte accounted for, and the same
 * result however the bytes are split. */
static void test_robustness(void)
{
	static uint8_t stream[4096], enc[600];
	int frames = 0, runs = 0;
	for (int r = 0; r < 2000; r++, runs++) {
		size_t n = 0;
		while (n < sizeof stream - 600) {
			switch (rndn(4)) {
			case 0: { /* noise, markers included */
				size_t k = rndn(20);
				for (size_t i = 0; i < k; i++) {
					stream[n++] = rndn(3) == 0 ? LINK_MAGIC0 : rndn(3) == 0 ? LINK_MAGIC1 : (uint8_t)rnd();
				}
				break;
			}
			default: { /* a frame, sometimes damaged or cut */
				uint8_t payload[300];
				size_t len = 1 + rndn(sizeof payload);
				for (size_t i = 0; i < len; i++) {
					payload[i] = (uint8_t)rnd();
				}
				size_t k = link_encode(payload, len, enc, sizeof enc);
				if (rndn(5) == 0) {
					enc[rndn(k)] ^= (uint8_t)(1u << rndn(8));
				}
				if (rndn(6) == 0) {
					k = rndn(k);
				}
				memcpy(stream + n, enc, k);
				n += k;
				break;
			}
			}
			if (rndn(8) == 0) {
				break;
			}
		}
		size_t max = rndn(3) == 0 ? 1 + rndn(200) : LINK_MAX_PAYLOAD;
		uint8_t *c = exact_copy(stream, n);
		uint8_t *elems[1] = {c};
		size_t lens[1] = {n};
		events a = {.n = 0}, b = {.n = 0};
		link_stats sa = run(max, elems, lens, 1, 0, &a);
		link_stats sb = run(max, elems, lens, 1, (int)(1 + rndn(2)), &b);
		CHECK(same_events(&a, &b) && same_stats(sa, sb));
		size_t framed = 0;
		for (size_t i = 0; i < a.n; i++) {
			if (!a.ev[i].frame) {
				continue;
			}
			size_t k = link_encode(a.ev[i].payload, a.ev[i].len, enc, sizeof enc);
			CHECK(k > 0 && contains(c, n, enc, k));
			framed += k;
			frames++;
		}
		CHECKF(framed + sa.skipped == n, "%zu framed + %u skipped != %zu", framed, sa.skipped, n);
		free_events(&a);
		free_events(&b);
		exact_free(c, n);
	}
	printf("robustness: %d random streams, %d frames recovered\n", runs, frames);
}

int main(void)
{
	printf("sizes (host): link_dec %zu, link_stats %zu, decoder buffer for 64 KiB frames %zu\n", sizeof(link_dec),
	       sizeof(link_stats), (size_t)LINK_DEC_BUF(LINK_MAX_PAYLOAD));
	test_checksums();
	test_limits();
	tok_read_stdin();
	CHECKF(run_vectors() > 0, "no link vectors on stdin");
	test_robustness();
	free(tok_buf);
	return done("test_link");
}
