/*
 * sha256.h: SHA-256 (FIPS 180-4), incremental, for checking modules against
 * the SHA-256 of their deploy manifest (docs/protocol.md, "Module
 * transfer"). No allocation; a context is 104 bytes on a 32-bit target and is
 * used by one thread at a time.
 */
#ifndef WASMBED_SHA256_H
#define WASMBED_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_BLOCK_LEN 64

typedef struct {
	uint32_t h[8];                   /* chaining state */
	uint64_t bytes;                  /* message length so far */
	uint8_t block[SHA256_BLOCK_LEN]; /* partial block */
} sha256_ctx;

void sha256_init(sha256_ctx *c);
/* Adds n bytes; any split of a message gives the same digest. */
void sha256_update(sha256_ctx *c, const void *data, size_t n);
/* Writes the digest and wipes the context; call sha256_init to reuse it. */
void sha256_final(sha256_ctx *c, uint8_t out[SHA256_DIGEST_LEN]);
/* One-shot digest of data[0, n). */
void sha256(const void *data, size_t n, uint8_t out[SHA256_DIGEST_LEN]);

#endif /* WASMBED_SHA256_H */
