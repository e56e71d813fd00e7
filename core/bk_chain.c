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

const char *bk_chain_verdict_name(bk_chain_verdict v)
{
	switch (v) {
	case BK_CHAIN_NEXT:
		return "next";
	case BK_CHAIN_DUPLICATE:
		return "duplicate";
	case BK_CHAIN_FORK:
		return "fork";
	case BK_CHAIN_GAP:
		return "gap";
	}
	return "?";
}

/* Hashes are public data: a plain comparison is fine (no timing concern). */
static bool same_hash(const uint8_t a[BK_HASH_LEN], const uint8_t b[BK_HASH_LEN])
{
	return memcmp(a, b, BK_HASH_LEN) == 0;
}

/*
 * The rule, in order: seq < 1 is a fork (no valid event has it); seq = last+1 is next when
 * prev_hash links to last_hash, else a fork; seq > last+1 is a gap; seq <= last is
 * compared with the hash recorded at seq (last_hash for seq = last, else known_hash_at):
 * equal is a duplicate, different is a fork. When the recorded hash cannot be had
 * (known_hash_at is NULL or returns non-zero), an older seq is a fork: the reader cannot
 * show it is a copy of what it applied.
 */
bk_chain_verdict bk_chain_classify(int64_t last_seq, const uint8_t last_hash[BK_HASH_LEN],
				   int64_t seq, const uint8_t prev_hash[BK_HASH_LEN],
				   const uint8_t hash[BK_HASH_LEN], bk_hash_at_fn known_hash_at,
				   void *opaque)
{
	uint8_t recorded[BK_HASH_LEN];

	if (seq < 1)
		return BK_CHAIN_FORK;
	if (seq > last_seq) {
		if (seq - last_seq > 1)
			return BK_CHAIN_GAP;
		return same_hash(prev_hash, last_hash) ? BK_CHAIN_NEXT : BK_CHAIN_FORK;
	}
	if (seq == last_seq)
		return same_hash(hash, last_hash) ? BK_CHAIN_DUPLICATE : BK_CHAIN_FORK;
	if (known_hash_at == NULL || known_hash_at(opaque, seq, recorded) != 0)
		return BK_CHAIN_FORK;
	return same_hash(hash, recorded) ? BK_CHAIN_DUPLICATE : BK_CHAIN_FORK;
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
