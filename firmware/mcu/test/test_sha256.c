/*
 * test_sha256.c: host tests of sha256.c: the FIPS 180-2 examples, the empty
 * message, a million 'a', the protocol vectors' module, and, from stdin,
 * digests computed by Go's crypto/sha256 (written by
 * firmware/mcu/mcu_test.go) for every length around the padding boundaries:
 *
 *   S <length> <hex digest>   the message is byte i = (i * 7 + 3) & 0xff
 */
#include "../sha256.h"
#include "testutil.h"

static void digest_hex(const uint8_t d[SHA256_DIGEST_LEN], char out[2 * SHA256_DIGEST_LEN + 1])
{
	tohex(d, SHA256_DIGEST_LEN, out);
}

static void check_known(const char *what, const void *msg, size_t n, const char *want)
{
	uint8_t d[SHA256_DIGEST_LEN];
	char got[2 * SHA256_DIGEST_LEN + 1];
	uint8_t *c = exact_copy(msg, n);
	sha256(c, n, d);
	exact_free(c, n);
	digest_hex(d, got);
	CHECKF(strcmp(got, want) == 0, "sha256(%s) = %s, want %s", what, got, want);
}

static void fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		p[i] = (uint8_t)(i * 7 + 3);
	}
}

int main(void)
{
	printf("sizes (host): sha256_ctx %zu\n", sizeof(sha256_ctx));
	check_known("empty", "", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check_known("abc", "abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	check_known("448-bit message", m448, strlen(m448), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
	check_known("896-bit message", m896, strlen(m896), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
	check_known("empty wasm module", "\x00" "asm\x01\x00\x00\x00", 8, "93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476");
	check_known("sensor 1.0.0", "sensor 1.0.0", 12, "f41bb3f4a4497947c50d6183b066a135037dfb532e50f4e7d1e9b95dec3283f3");

	/* A million 'a', fed in pieces of awkward sizes. */
	{
		static uint8_t a[1000];
		memset(a, 'a', sizeof a);
		sha256_ctx c;
		sha256_init(&c);
		size_t left = 1000000, step = 1;
		while (left > 0) {
			size_t k = step < left ? step : left;
			k = k < sizeof a ? k : sizeof a;
			sha256_update(&c, a, k);
			left -= k;
			step = step * 3 % 997 + 1;
		}
		uint8_t d[SHA256_DIGEST_LEN];
		char got[65];
		sha256_final(&c, d);
		digest_hex(d, got);
		CHECKF(strcmp(got, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0, "sha256(a * 10^6) = %s", got);
	}

	/* Go's digests: one shot, a byte at a time, and random splits agree. */
	tok_read_stdin();
	static uint8_t msg[4096];
	int n = 0;
	for (const char *t; (t = tok()) != NULL; n++) {
		CHECK(strcmp(t, "S") == 0);
		size_t len = (size_t)strtoul(tok_must(), NULL, 10);
		const char *want = tok_must();
		if (len > sizeof msg) {
			CHECK(len <= sizeof msg);
			continue;
		}
		fill(msg, len);
		uint8_t d[SHA256_DIGEST_LEN];
		char got[65];
		sha256(msg, len, d);
		digest_hex(d, got);
		CHECKF(strcmp(got, want) == 0, "sha256 of %zu bytes = %s, want %s", len, got, want);
		sha256_ctx c;
		sha256_init(&c);
		for (size_t i = 0; i < len; i++) {
			sha256_update(&c, msg + i, 1);
		}
		sha256_final(&c, d);
		digest_hex(d, got);
		CHECKF(strcmp(got, want) == 0, "sha256 of %zu bytes a byte at a time = %s", len, got);
		sha256_init(&c);
		for (size_t i = 0; i < len;) {
			size_t k = 1 + rndn(130);
			k = k < len - i ? k : len - i;
			sha256_update(&c, msg + i, k);
			i += k;
		}
		sha256_update(&c, msg, 0);
		sha256_final(&c, d);
		digest_hex(d, got);
		CHECKF(strcmp(got, want) == 0, "sha256 of %zu bytes in random pieces = %s", len, got);
	}
	CHECKF(n > 0, "no digests on stdin");
	printf("sha256: %d digests from Go checked\n", n);
	free(tok_buf);
	return done("test_sha256");
}
