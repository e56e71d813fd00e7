/*
 * bk_chain.c - the per-order hash chain and the reader rule every reader shares.
 *
 * hash = BLAKE2b-256(prev_hash || canonical bytes); bk_chain_classify is the only place
 * that decides whether an incoming event is next, a duplicate, a fork or a gap.
 */
#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#include "bk_chain.h"

void bk_chain_hash(const uint8_t prev[BK_HASH_LEN], const uint8_t *canon, size_t n,
		   uint8_t ret_hash[BK_HASH_LEN])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, BK_HASH_LEN);
	crypto_generichash_update(&st, prev, BK_HASH_LEN);
	if (n)
		crypto_generichash_update(&st, canon, n);
	crypto_generichash_final(&st, ret_hash, BK_HASH_LEN);
}

static const char *const verdict_names[BK_CHAIN__COUNT] = {
    [BK_CHAIN_NEXT] = "next",	      [BK_CHAIN_DUPLICATE] = "duplicate",
    [BK_CHAIN_FORK] = "fork",	      [BK_CHAIN_BAD_HASH] = "bad_hash",
    [BK_CHAIN_BAD_LINK] = "bad_link", [BK_CHAIN_UNSEALED] = "unsealed",
    [BK_CHAIN_GARBAGE] = "garbage",
};

const char *bk_chain_verdict_name(bk_chain_verdict v)
{
	return (unsigned)v < BK_CHAIN__COUNT ? verdict_names[v] : "?";
}

bool bk_chain_verdict_reported(bk_chain_verdict v)
{
	return v != BK_CHAIN_NEXT && v != BK_CHAIN_DUPLICATE;
}

/* Hashes are public data: a plain comparison is fine (no timing concern). */
static bool same_hash(const uint8_t a[BK_HASH_LEN], const uint8_t b[BK_HASH_LEN])
{
	return memcmp(a, b, BK_HASH_LEN) == 0;
}

/* The hash applied at seq (seq 0: the zero hash every chain starts from). */
static bool hash_at(int64_t seq, int64_t last_seq, const uint8_t last_hash[BK_HASH_LEN],
		    bk_hash_at_fn known_hash_at, void *opaque, uint8_t ret[BK_HASH_LEN])
{
	if (seq == 0) {
		memset(ret, 0, BK_HASH_LEN);
		return true;
	}
	if (seq == last_seq) {
		memcpy(ret, last_hash, BK_HASH_LEN);
		return true;
	}
	return known_hash_at != NULL && known_hash_at(opaque, seq, ret) == 0;
}

bk_chain_verdict bk_chain_classify(int64_t last_seq, const uint8_t last_hash[BK_HASH_LEN],
				   int64_t seq, const uint8_t prev_hash[BK_HASH_LEN],
				   const uint8_t hash[BK_HASH_LEN], bk_hash_at_fn known_hash_at,
				   void *opaque)
{
	uint8_t at[BK_HASH_LEN];

	if (seq < 1 || seq > last_seq + 1)
		return BK_CHAIN_BAD_LINK;
	if (seq == last_seq + 1)
		return same_hash(prev_hash, last_hash) ? BK_CHAIN_NEXT : BK_CHAIN_BAD_LINK;
	if (hash_at(seq, last_seq, last_hash, known_hash_at, opaque, at) && same_hash(hash, at))
		return BK_CHAIN_DUPLICATE;
	if (hash_at(seq - 1, last_seq, last_hash, known_hash_at, opaque, at) &&
	    same_hash(prev_hash, at))
		return BK_CHAIN_FORK;
	return BK_CHAIN_BAD_LINK;
}

void bk_hex(const uint8_t *b, size_t n, char *out)
{
	static const char digits[16] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly 2 * outlen hex digits (either case); out is written only on success. */
int bk_unhex(const char *s, size_t n, uint8_t *out, size_t outlen)
{
	if (s == NULL || n != 2 * outlen)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (hexval(s[i]) < 0)
			return -1;
	for (size_t i = 0; i < outlen; i++)
		out[i] =
		    (uint8_t)((unsigned)hexval(s[2 * i]) << 4 | (unsigned)hexval(s[2 * i + 1]));
	return 0;
}
