/*
 * bk_chain.h - the per-order hash chain (SPEC §4) and the shared reader rule (SPEC §5).
 *
 * hash = BLAKE2b-256(prev_hash || canonical msgpack bytes of the event without its hash);
 * an order's first event chains from 32 zero bytes. Every reader (processor restore,
 * projector, verify, replay) classifies an incoming event with bk_chain_classify, so
 * they all agree on what is new, a duplicate, a fork or a gap.
 */
#ifndef BK_CHAIN_H
#define BK_CHAIN_H

#include "bk_err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BK_HASH_LEN 32

void bk_chain_hash(const uint8_t prev[BK_HASH_LEN], const uint8_t *canon, size_t n,
		   uint8_t ret_hash[BK_HASH_LEN]);

/*
 * The reader rule's verdict on one event (docs/design.md, "The reader rule"). Only NEXT
 * is applied; every verdict after DUPLICATE is reported. An event is *valid* when its
 * record is sealed, its hash matches its canonical bytes and its prev_hash is the hash
 * of the order's valid event at seq - 1 (32 zero bytes for seq 1).
 */
typedef enum bk_chain_verdict {
	BK_CHAIN_NEXT,	    /* valid, seq = last + 1: apply it */
	BK_CHAIN_DUPLICATE, /* seq <= last with the hash applied at seq: skip */
	BK_CHAIN_FORK,	    /* valid, but seq is taken by another valid event (first wins) */
	BK_CHAIN_BAD_HASH,  /* the hash does not match the event's canonical bytes */
	BK_CHAIN_BAD_LINK,  /* prev_hash is not the hash at seq - 1 (a gap is one too) */
	BK_CHAIN_UNSEALED,  /* its record is covered by no valid seal */
	BK_CHAIN_GARBAGE,   /* its record does not decode */
	BK_CHAIN__COUNT
} bk_chain_verdict;

const char *bk_chain_verdict_name(bk_chain_verdict v);
/* Is v a verdict readers report (every one but NEXT and DUPLICATE)? */
bool bk_chain_verdict_reported(bk_chain_verdict v);

/*
 * Classify an event (seq, prev_hash, hash), whose hash the caller has checked, against
 * what the reader applied for its order: last_seq and last_hash (0 and 32 zero bytes for
 * an order not seen yet), and a lookup for the hash applied at an older seq (returns 0
 * and writes ret_hash, or non-zero when it has none).
 *   seq == last + 1: prev_hash == last_hash ? NEXT : BAD_LINK
 *   seq > last + 1 or seq < 1: BAD_LINK
 *   seq <= last: hash == hash at seq ? DUPLICATE
 *              : prev_hash == hash at seq - 1 ? FORK : BAD_LINK
 * A hash the lookup cannot give counts as not equal. Pure; known_hash_at is called on the
 * caller's thread.
 */
typedef int (*bk_hash_at_fn)(void *opaque, int64_t seq, uint8_t ret_hash[BK_HASH_LEN]);
bk_chain_verdict bk_chain_classify(int64_t last_seq, const uint8_t last_hash[BK_HASH_LEN],
				   int64_t seq, const uint8_t prev_hash[BK_HASH_LEN],
				   const uint8_t hash[BK_HASH_LEN], bk_hash_at_fn known_hash_at,
				   void *opaque);

/* Lower-case hex of a hash into out (>= 65 bytes); and back (returns -1 on bad text). */
void bk_hex(const uint8_t *b, size_t n, char *out);
int bk_unhex(const char *s, size_t n, uint8_t *out, size_t outlen) BK_MUSTCHECK;

#endif
