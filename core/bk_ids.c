/*
 * bk_ids.c - prefixed ids, ids derived from a command id, and id fingerprints.
 *
 * A derived id is a pure function of (prefix, command id, label, index), so a command
 * processed twice mints the same ids. libsodium's BLAKE2b needs no sodium_init().
 */
#include <string.h>

#include <sodium.h>

#include "bk_ids.h"

#define DERIVED_HASH_LEN 16 /* BLAKE2b-128 */
#define DERIVED_CHARS	 26 /* ceil(128 / 5) */

static const char crockford[32] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static void put_u32be(uint8_t b[4], uint32_t v)
{
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}

/* Feeds a length-prefixed field (u32 big-endian length, then the bytes). */
static void hash_field(crypto_generichash_state *st, const char *s)
{
	uint8_t len[4];
	const size_t n = s ? strlen(s) : 0;
	put_u32be(len, (uint32_t)n);
	crypto_generichash_update(st, len, sizeof len);
	if (n)
		crypto_generichash_update(st, (const uint8_t *)s, n);
}

/* 128 bits as a 130-bit big-endian number (two leading zero bits, as ULID does): the
 * first character is always 0..7. */
static void base32_128(const uint8_t h[DERIVED_HASH_LEN], char out[DERIVED_CHARS])
{
	/* 130 bits = 2 leading zero bits + h, read 5 bits at a time from the top */
	uint64_t hi = 0, lo = 0;
	for (int i = 0; i < 8; i++) {
		hi = hi << 8 | h[i];
		lo = lo << 8 | h[8 + i];
	}
	for (int i = DERIVED_CHARS - 1; i >= 0; i--) {
		out[i] = crockford[lo & 31u];
		lo = lo >> 5 | hi << 59;
		hi >>= 5;
	}
}

/*
 * Hash input: len(cmd_id) cmd_id len(label) label index, lengths and index as u32
 * big-endian. NULL strings count as empty. A prefix too long for BK_ID_MAX yields ""
 * and 0.
 */
size_t bk_id_derive(char *out, const char *prefix, const char *cmd_id, const char *label,
		    uint32_t index)
{
	crypto_generichash_state st;
	uint8_t h[DERIVED_HASH_LEN];
	uint8_t idx[4];
	const size_t plen = prefix ? strlen(prefix) : 0;

	if (plen + DERIVED_CHARS > BK_ID_MAX - 1) {
		out[0] = '\0';
		return 0;
	}
	crypto_generichash_init(&st, NULL, 0, sizeof h);
	hash_field(&st, cmd_id);
	hash_field(&st, label);
	put_u32be(idx, index);
	crypto_generichash_update(&st, idx, sizeof idx);
	crypto_generichash_final(&st, h, sizeof h);

	if (plen)
		memcpy(out, prefix, plen);
	base32_128(h, out + plen);
	out[plen + DERIVED_CHARS] = '\0';
	return plen + DERIVED_CHARS;
}

/* The characters of an id: [A-Za-z0-9_.:-]. */
static const bool id_chars[256] = {
    ['A'] = true, ['B'] = true, ['C'] = true, ['D'] = true, ['E'] = true, ['F'] = true,
    ['G'] = true, ['H'] = true, ['I'] = true, ['J'] = true, ['K'] = true, ['L'] = true,
    ['M'] = true, ['N'] = true, ['O'] = true, ['P'] = true, ['Q'] = true, ['R'] = true,
    ['S'] = true, ['T'] = true, ['U'] = true, ['V'] = true, ['W'] = true, ['X'] = true,
    ['Y'] = true, ['Z'] = true, ['a'] = true, ['b'] = true, ['c'] = true, ['d'] = true,
    ['e'] = true, ['f'] = true, ['g'] = true, ['h'] = true, ['i'] = true, ['j'] = true,
    ['k'] = true, ['l'] = true, ['m'] = true, ['n'] = true, ['o'] = true, ['p'] = true,
    ['q'] = true, ['r'] = true, ['s'] = true, ['t'] = true, ['u'] = true, ['v'] = true,
    ['w'] = true, ['x'] = true, ['y'] = true, ['z'] = true, ['0'] = true, ['1'] = true,
    ['2'] = true, ['3'] = true, ['4'] = true, ['5'] = true, ['6'] = true, ['7'] = true,
    ['8'] = true, ['9'] = true, ['_'] = true, ['.'] = true, [':'] = true, ['-'] = true};

/* With a prefix, at least one character must follow it: "ord_" alone is not an id. */
bool bk_id_valid(const char *s, size_t n, const char *prefix)
{
	if (s == NULL || n == 0 || n > BK_ID_MAX - 1)
		return false;
	if (prefix) {
		const size_t plen = strlen(prefix);
		if (n <= plen || memcmp(s, prefix, plen) != 0)
			return false;
	}
	/* no early exit: ids are short, and a branch per byte costs more than the bytes */
	const unsigned char *u = (const unsigned char *)s;
	bool ok = true;
	size_t i = 0;
	for (; n - i >= 4; i += 4)
		ok &= id_chars[u[i]] & id_chars[u[i + 1]] & id_chars[u[i + 2]] & id_chars[u[i + 3]];
	for (; i < n; i++)
		ok &= id_chars[u[i]];
	return ok;
}

/*
 * BLAKE2b with an 8-byte digest (not a truncated longer one), read little-endian.
 * libsodium documents 16 as the minimum output length but its BLAKE2b accepts 1..64;
 * test_prims pins the value against an independent BLAKE2b-64. Should a libsodium ever
 * refuse, the first 8 bytes of BLAKE2b-128 are used instead (an in-memory fingerprint,
 * never stored).
 */
uint64_t bk_id_fingerprint(const char *s, size_t n)
{
	static const uint8_t key[crypto_shorthash_KEYBYTES] = "booking-log-fp-1";
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v = 0;

	crypto_shorthash(h, (const uint8_t *)s, n, key);
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | h[i];
	return v;
}
