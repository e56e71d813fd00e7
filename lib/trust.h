/*
 * trust.h - what every reader of booking.events / booking.command-results / booking.rules
 * shares to tell the processor's records from anyone else's (docs/design.md, "Seals"):
 * the writer keyring, seal records recognised and checked, one core seal buffer per
 * partition, and signed rules records. The rule itself is core's (bk_seal, bk_chain);
 * this module only wires Kafka messages to it.
 */
#ifndef BK_TRUST_H
#define BK_TRUST_H

#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "bk_auth.h"
#include "bk_seal.h"

/* Environment variables read when the flags are not given. */
#define BK_ENV_WRITER_KEYRING "BOOKING_WRITER_KEYRING"
#define BK_ENV_WRITER_KEY     "BOOKING_WRITER_KEY"
#define BK_ENV_WRITER_KEY_ID  "BOOKING_WRITER_KEY_ID"

/* Load a writer keyring from path (NULL: $BOOKING_WRITER_KEYRING). Every key in it must
 * be limited to signing seals (role system, type prefix "seal"), so a commands keyring
 * given by mistake is refused. 0 with *ret (caller frees), or -1 with errstr. */
int bk_trust_load_keyring(const char *path, bk_keyring **ret, char *errstr, size_t errstr_size);

/* Load the writer's secret key (a `bookingctl keygen` .sk file; NULL: $BOOKING_WRITER_KEY)
 * and its id (NULL: $BOOKING_WRITER_KEY_ID). 0, or -1 with errstr. */
int bk_trust_load_key(const char *path, const char *key_id, uint8_t ret_sk[BK_SK_LEN],
		      char ret_key_id[64], char *errstr, size_t errstr_size);

/* Does the writer key (sk, key_id) verify against the writer keyring for seals? A writer
 * whose own seals would not verify must not start: every reader would drop its work.
 * 0, or -1 with errstr. */
int bk_trust_check_writer(const bk_keyring *writers, const uint8_t sk[BK_SK_LEN],
			  const char *key_id, char *errstr, size_t errstr_size);

/* Is m a seal record (header `seal`)? */
bool bk_trust_is_seal(const rd_kafka_message_t *m);

/* Rules records are signed one by one: Ed25519 over key, NUL, value (a tombstone: key,
 * NUL). bk_trust_sign_rules fills ret_sig; bk_trust_check_rules checks m's key-id and
 * signature headers against the writer keyring: 0, or -1 with errstr. */
void bk_trust_sign_rules(const uint8_t sk[BK_SK_LEN], const void *key, size_t klen, const void *val,
			 size_t vlen, uint8_t ret_sig[BK_SIG_LEN]);
int bk_trust_check_rules(const bk_keyring *writers, const rd_kafka_message_t *m, char *errstr,
			 size_t errstr_size);

/*
 * The seal buffers of one topic's partitions. Records are added with their digest (or
 * none yet: core's bk_sealbuf, deferred digests) and a handle of the caller's;
 * release(opaque, rec, partition, offset, sealed, digest) gives each back exactly once,
 * in offset order per partition (digest: for a record added without one, the digest the
 * seal lists). on_seal (may be NULL) sees every valid seal; on_bad_seal (may be NULL)
 * every seal record that does not check. With trust_unsealed (development only) every
 * record is released sealed at once and seals are only checked (and without a writer
 * keyring not even that: bk_trust_seal says 1).
 */
typedef void (*bk_trust_release_fn)(void *opaque, void *rec, int32_t partition, int64_t offset,
				    bool sealed, const uint8_t *digest);
typedef void (*bk_trust_seal_fn)(void *opaque, const rd_kafka_message_t *m, const bk_seal *s);
typedef void (*bk_trust_bad_fn)(void *opaque, const rd_kafka_message_t *m, const char *why);

typedef struct bk_trust bk_trust; /* opaque */
bk_trust *bk_trust_new(const bk_keyring *writers, bool trust_unsealed, int nparts,
		       bk_trust_release_fn release, bk_trust_seal_fn on_seal,
		       bk_trust_bad_fn on_bad_seal, void *opaque);
void bk_trust_free(bk_trust *t); /* NULL ok; held handles are not released */
/* A seal record: check it and release what it covers. 0 valid, -1 not (reported), 1 not
 * checked (trust_unsealed without a writer keyring). */
int bk_trust_seal(bk_trust *t, const rd_kafka_message_t *m);
/* The same for a seal record read from elsewhere (a replay file): m carries partition,
 * offset and value (m->rkt may be NULL; the callbacks get m as given), topic is where it
 * was read, key_id and sig are its headers' values (NULL when absent). */
int bk_trust_seal_from(bk_trust *t, const rd_kafka_message_t *m, const char *topic,
		       const void *key_id, size_t key_id_len, const void *sig, size_t sig_len);
/* Hold a record (digest NULL: not known yet). 0, or -1 (out of memory, offset out of
 * order: not held). */
int bk_trust_add(bk_trust *t, int32_t partition, int64_t offset, const uint8_t digest[BK_HASH_LEN],
		 void *rec) BK_MUSTCHECK;
/* A bounded read reached the end of partition (-1: every partition): release what is
 * still held as unsealed. */
void bk_trust_flush(bk_trust *t, int32_t partition);
/* How many records wait for a seal on partition (-1: all). */
size_t bk_trust_held(const bk_trust *t, int32_t partition);
bool bk_trust_unsealed_ok(const bk_trust *t);

/*
 * A seal record as the writer produces it: s encoded into sb (cleared first) and signed
 * with the writer key (sk, key_id); *ret_h the record's headers (`seal: 1`, `key-id`,
 * `signature`), the caller's (to rd_kafka_producev's RD_KAFKA_V_HEADERS, which takes them
 * on success, or rd_kafka_headers_destroy). Key: BK_SEAL_KEY. 0, or -1 (out of memory).
 * The processor, `bookingctl seal` and the test feed write seals with it.
 */
int bk_trust_seal_record(const bk_seal *s, const uint8_t sk[BK_SK_LEN], const char *key_id,
			 msgpack_sbuffer *sb, rd_kafka_headers_t **ret_h) BK_MUSTCHECK;

#endif
