/*
 * bk_seal.h - seals: the processor's signature over the records of one batch on one
 * topic-partition, and the seal buffer every reader feeds (docs/design.md, "Seals").
 *
 * A seal record's value is a msgpack map {seal: 1, writer, topic, partition, base,
 * src_next, records: [[offset, digest(bin 32)]...]}; key-id and signature (Ed25519 over
 * the value) travel in Kafka headers. A record is trusted only when a valid seal lists
 * its offset with its digest. Pure: no I/O; the caller owns every record it hands in.
 */
#ifndef BK_SEAL_H
#define BK_SEAL_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_auth.h"
#include "bk_chain.h"
#include "bk_err.h"
#include "bk_event.h"

#define BK_SEAL_VERSION	 1
#define BK_SEAL_KEY	 "seal"	    /* record key and header name of a seal record */
#define BK_SEAL_TYPE	 "seal"	    /* the type a writer key may sign (keyring prefix) */
#define BK_SEAL_MAX_RECS (1u << 20) /* records one seal may list */

typedef struct bk_seal_rec {
	int64_t offset;
	uint8_t digest[BK_HASH_LEN];
} bk_seal_rec;

typedef struct bk_seal {
	const char *writer; /* key id */
	const char *topic;
	int32_t partition;
	int64_t base;	  /* unsealed records below it are abandoned; -1: none */
	int64_t src_next; /* events seals: the commands offset to resume at; -1: n/a */
	const bk_seal_rec *recs;
	uint32_t n;
} bk_seal;

/* The digest a seal lists for an events record: BLAKE2b-256 over order_id, NUL,
 * command_id, NUL and each event's 32-byte hash (the hashes cover the events' canonical
 * bytes, which readers check one by one). */
void bk_seal_digest_record(const bk_record *r, uint8_t ret[BK_HASH_LEN]);
/* A record held without its digest and released with the digest its seal lists (deferred
 * digests, below): is it that record? (It is sealed if so, unsealed if not.) */
bool bk_seal_digest_is(const bk_record *r, const uint8_t listed[BK_HASH_LEN]) BK_MUSTCHECK;
/* The digest of any other record (results): BLAKE2b-256 of its value. */
void bk_seal_digest_bytes(const void *buf, size_t n, uint8_t ret[BK_HASH_LEN]);

/* Does e->hash match BLAKE2b(prev_hash || canonical bytes of e)? scratch is reused. */
bool bk_seal_hash_ok(const bk_event *e, msgpack_sbuffer *scratch) BK_MUSTCHECK;

/* Append the seal's value to sb. 0, or -1 on OOM. */
int bk_seal_encode(const bk_seal *s, msgpack_sbuffer *sb) BK_MUSTCHECK;

/*
 * Check a seal record: key_id/sig are its headers, val its value, topic/partition where
 * it was read. It must decode, its writer must equal key_id, the key must be in the
 * writer keyring and may sign BK_SEAL_TYPE (role system), the signature must verify over
 * val, and its topic and partition must be where it was read. Returns 0 with *ret
 * (strings and records in z), or -1 with the reason in err.
 */
int bk_seal_check(const bk_keyring *writers, const char *key_id, size_t key_id_len,
		  const uint8_t *sig, size_t sig_len, const void *val, size_t n, const char *topic,
		  int32_t partition, msgpack_zone *z, bk_seal *ret, char *err,
		  size_t errsz) BK_MUSTCHECK;

/*
 * The seal buffer of one topic-partition: records wait in it, in offset order, until a
 * seal covers them (released sealed) or abandons them (released unsealed): a valid seal
 * covers a record it lists with the record's digest; a record it lists with another
 * digest is not the writer's, and neither is one below its base that it does not list.
 * Handles (`rec`) are the caller's; the buffer only keeps them and gives each back
 * exactly once through the release callback, in offset order.
 *
 * A record may be added without its digest (NULL: the reader has not decoded it yet; the
 * live projector decodes a batch on two threads later). Such a record is released as
 * soon as a seal lists its offset, with `digest` = the digest the seal lists: it is
 * sealed only if the caller finds that its record has exactly this digest (else it is
 * unsealed, as the buffer itself would have said). For every other release digest is
 * NULL.
 */
typedef struct bk_sealbuf bk_sealbuf; /* opaque */
typedef void (*bk_sealbuf_release_fn)(void *opaque, void *rec, int64_t offset, bool sealed,
				      const uint8_t *digest);

bk_sealbuf *bk_sealbuf_new(void) BK_MUSTCHECK; /* NULL on OOM */
void bk_sealbuf_free(bk_sealbuf *b);	       /* NULL ok; handles still held are not released */
/* Hold rec (offset strictly above every offset added before; digest NULL: not known
 * yet, above). 0, or -1 on OOM or an offset out of order (rec is then not held). */
int bk_sealbuf_add(bk_sealbuf *b, int64_t offset, const uint8_t digest[BK_HASH_LEN],
		   void *rec) BK_MUSTCHECK;
/* A valid seal read at seal_offset: release what it lists (sealed) and what it abandons
 * (unsealed), in offset order. Returns how many records it sealed. */
size_t bk_sealbuf_seal(bk_sealbuf *b, const bk_seal *s, bk_sealbuf_release_fn fn, void *opaque);
/* The end of a bounded read: release everything held as unsealed. */
void bk_sealbuf_flush(bk_sealbuf *b, bk_sealbuf_release_fn fn, void *opaque);
/* Release everything held as sealed (--trust-unsealed, development only). */
void bk_sealbuf_trust_all(bk_sealbuf *b, bk_sealbuf_release_fn fn, void *opaque);
size_t bk_sealbuf_held(const bk_sealbuf *b);

#endif
