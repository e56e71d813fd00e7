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

#include <stddef.h>
#include <stdint.h>

#define BK_HASH_LEN 32

void bk_chain_hash(const uint8_t prev[BK_HASH_LEN], const uint8_t *canon, size_t n,
		   uint8_t ret_hash[BK_HASH_LEN]);

typedef enum bk_chain_verdict {
	BK_CHAIN_NEXT,	    /* seq = last+1 and prev_hash links: apply it */
	BK_CHAIN_DUPLICATE, /* seq <= last and the hash equals the one recorded: skip */
	BK_CHAIN_FORK, /* seq <= last with another hash, or seq = last+1 not linking: report, never
			  apply */
	BK_CHAIN_GAP,  /* seq > last+1: an earlier event is missing */
} bk_chain_verdict;

const char *bk_chain_verdict_name(bk_chain_verdict v);

/*
 * Classify an event (seq, prev_hash, hash) against what the reader has for its order:
 * last_seq and last_hash (0 and 32 zero bytes for an order not seen yet), and a lookup
 * for the hash the reader recorded at an older seq (returns 0 and writes ret_hash, or
 * non-zero when it has none).
 *   seq < 1                                       -> FORK
 *   seq == last_seq + 1, prev_hash == last_hash   -> NEXT
 *   seq == last_seq + 1, another prev_hash        -> FORK
 *   seq >  last_seq + 1                           -> GAP
 *   seq == last_seq: hash == last_hash            ? DUPLICATE : FORK
 *   seq <  last_seq: hash == known_hash_at(seq)   ? DUPLICATE : FORK
 * When known_hash_at is NULL or has no hash for seq, an older seq is a FORK (it cannot
 * be shown to be a copy). So a reader that may meet a redelivered multi-event record
 * (events seq k..last) must pass known_hash_at, or it reports its copies as forks.
 * Pure; known_hash_at is called at most once, on the caller's thread.
 */
typedef int (*bk_hash_at_fn)(void *opaque, int64_t seq, uint8_t ret_hash[BK_HASH_LEN]);
bk_chain_verdict bk_chain_classify(int64_t last_seq, const uint8_t last_hash[BK_HASH_LEN],
				   int64_t seq, const uint8_t prev_hash[BK_HASH_LEN],
				   const uint8_t hash[BK_HASH_LEN], bk_hash_at_fn known_hash_at,
				   void *opaque);

/* Lower-case hex of a hash into out (>= 65 bytes); and back (returns -1 on bad text). */
void bk_hex(const uint8_t *b, size_t n, char *out);
int bk_unhex(const char *s, size_t n, uint8_t *out, size_t outlen);

#endif
