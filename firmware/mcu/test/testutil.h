/*
 * testutil.h: the little the host tests of firmware/mcu need: a CHECK macro
 * that counts failures, hex helpers, a deterministic random generator and a
 * reader of whitespace-separated tokens from stdin (the Go driver,
 * firmware/mcu/mcu_test.go, writes the golden vectors there). Host only.
 */
#ifndef WASMBED_TESTUTIL_H
#define WASMBED_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                            \
	do {                                                                       \
		if (!(cond)) {                                                         \
			failures++;                                                        \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
		}                                                                      \
	} while (0)

/* CHECKF: CHECK with a printf-style explanation. */
#define CHECKF(cond, ...)                                                      \
	do {                                                                       \
		if (!(cond)) {                                                         \
			failures++;                                                        \
			fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                      \
			fputc('\n', stderr);                                               \
		}                                                                      \
	} while (0)

static inline int done(const char *name)
{
	if (failures > 0) {
		fprintf(stderr, "%s: %d failures\n", name, failures);
		return 1;
	}
	printf("%s: ok\n", name);
	return 0;
}

static inline int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Decodes hex (spaces ignored, "-" is empty) into out and returns the
 * length. Bad hex or overflow is a bug of the test: it exits. */
static inline size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;
	if (strcmp(s, "-") == 0) {
		return 0;
	}
	while (*s) {
		if (*s == ' ') {
			s++;
			continue;
		}
		int hi = hexval(s[0]), lo = s[1] ? hexval(s[1]) : -1;
		if (hi < 0 || lo < 0 || n == cap) {
			fprintf(stderr, "bad or oversized hex in a test: %.40s\n", s);
			exit(2);
		}
		out[n++] = (uint8_t)(hi << 4 | lo);
		s += 2;
	}
	return n;
}

static inline void tohex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = 0;
}

/* xorshift64*: a fixed seed gives the same inputs on every run. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static inline uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1du;
}

static inline size_t rndn(size_t n)
{
	return n == 0 ? 0 : (size_t)(rnd() % n);
}

/* Whitespace-separated tokens of stdin, read whole. */
static char *tok_buf;
static char *tok_next;

static inline void tok_read_stdin(void)
{
	size_t cap = 1 << 20, n = 0;
	tok_buf = malloc(cap + 1);
	for (;;) {
		if (n == cap) {
			cap *= 2;
			tok_buf = realloc(tok_buf, cap + 1);
		}
		size_t r = fread(tok_buf + n, 1, cap - n, stdin);
		if (r == 0) {
			break;
		}
		n += r;
	}
	tok_buf[n] = 0;
	tok_next = tok_buf;
}

/* The next token, or NULL at the end. */
static inline const char *tok(void)
{
	while (*tok_next == ' ' || *tok_next == '\n' || *tok_next == '\t' || *tok_next == '\r') {
		tok_next++;
	}
	if (*tok_next == 0) {
		return NULL;
	}
	char *t = tok_next;
	while (*tok_next && *tok_next != ' ' && *tok_next != '\n' && *tok_next != '\t' && *tok_next != '\r') {
		tok_next++;
	}
	if (*tok_next) {
		*tok_next++ = 0;
	}
	return t;
}

/* A token that must be there. */
static inline const char *tok_must(void)
{
	const char *t = tok();
	if (t == NULL) {
		fprintf(stderr, "input ends early\n");
		exit(2);
	}
	return t;
}

/* A copy of p[0, n) in a buffer of exactly n bytes, so that the address
 * sanitizer catches a read past the end. */
static inline uint8_t *exact_copy(const uint8_t *p, size_t n)
{
	uint8_t *c = calloc(n > 0 ? n : 1, 1);
	if (n > 0) {
		memcpy(c, p, n);
	}
	return n > 0 ? c : c + 1; /* one past the end: nothing may be read */
}

static inline void exact_free(uint8_t *c, size_t n)
{
	free(n > 0 ? c : c - 1);
}

#endif /* WASMBED_TESTUTIL_H */
