/*
 * bk_snap.h - snapshots of order aggregates and checkpoints (docs/design.md, "Snapshots
 * and archiving"): the bytes of a `booking.snapshots` record. A snapshot is a cache of
 * what the restore would build from the events: every field of a bk_order (the hashes of
 * all its events included, so the reader rule judges later events exactly as after a
 * full read), with the events offset it stands for. A checkpoint names the events offset
 * E and the commands offset src_next its partition resumes at, and the set digest of the
 * partition's latest snapshots (bk_snap_sum), so a missing, stale or replayed snapshot
 * is noticed. Snapshots carry no signature of their own: the signed checkpoint's digest
 * covers their bytes. Signing is the caller's (lib/trust): these are the values only.
 *
 * Wire shapes (msgpack arrays, positional):
 *  snapshot:   ["snapshot", 1, partition, events_offset, order_id, status, mode, version,
 *               buyer, provider, service_profile, timezone, currency, start_ts, end_ts,
 *               location_address|nil, has_travel, travel_miles (float64), items,
 *               money [subtotal, fee, tax, tip, total, paid, refunded], requests,
 *               recipients, cards, disputes, milestones, seen (bin, 8 bytes big-endian
 *               per command-id fingerprint), last_command_id, hashes (bin, 32 x version),
 *               last_event_at]
 *   item:      [id, kind, title|nil, qty, unit_cents, total_cents]
 *   request:   [id, mode, status, expires_at, offer items, offer_fee_cents, offer_tax_cents]
 *   recipient: [user_id, status]
 *   card:      [id, type, state, expiring_sent, creator_role, created_by, expires_at,
 *               start_ts, end_ts, items, amount_cents, title|nil]
 *   dispute:   [id, status]          milestone: [id, status, amount_cents]
 *  checkpoint: ["checkpoint", 2, partition, events_offset, src_next, orders, sum (bin 32),
 *               written_at (int us), archived, archived_sum (bin 32)]
 *  archived:   ["archived", 2, partition, events_offset, full, fingerprints (bin, 8 bytes
 *               big-endian each, sorted)]
 * Format 1 (before last_event_at and archiving) is refused: the restore then reads the
 * log, as for any snapshot it cannot use.
 */
#ifndef BK_SNAP_H
#define BK_SNAP_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_err.h"
#include "bk_model.h"

#define BK_SNAP_CHECKPOINT_KEY "checkpoint" /* the key of checkpoint records */
#define BK_SNAP_ARCHIVED_KEY   "archived:"  /* archived records: "archived:<E>" */

/* Append the snapshot of o (version >= 1) standing for events offset events_offset of
 * partition to sb. 0, or -1 (out of memory, an order without events). */
int bk_snap_encode(const bk_order *o, int32_t partition, int64_t events_offset,
		   msgpack_sbuffer *sb) BK_MUSTCHECK;

/*
 * Decode a snapshot from hostile bytes: a new aggregate (bk_order_free) that decide,
 * evolve and the reader rule may use as if evolve had built it, its partition and
 * events offset. Every id fits its buffer and is a valid id, every enum is in range, the
 * hashes are exactly version of them, the fingerprints are non-zero and distinct.
 * *ret's snap_version is its version and its snap_hash bk_snap_hash(buf, n). 0, or -1
 * with a message in err.
 */
int bk_snap_decode(const void *buf, size_t n, bk_order **ret, int32_t *ret_partition,
		   int64_t *ret_events_offset, char *err, size_t errsz) BK_MUSTCHECK;

/* The set digest of a partition's snapshots: four 64-bit lanes, each the sum mod 2^64 of
 * the members' hashes (bk_snap_hash of each snapshot's bytes), and their count, so a
 * member is added and removed in any order. A signed checkpoint naming it covers every
 * byte of every snapshot it counts, as a seal covers the records it lists. */
typedef struct bk_snap_sum {
	uint64_t lane[4];
	uint64_t count;
} bk_snap_sum;

/* BLAKE2b-256 of a snapshot's bytes. */
void bk_snap_hash(const void *buf, size_t n, uint8_t ret[BK_HASH_LEN]);
/* Add (sign +1) or remove (-1) a member. */
void bk_snap_sum_add(bk_snap_sum *s, const uint8_t h[BK_HASH_LEN], int sign);
bool bk_snap_sum_eq(const bk_snap_sum *a, const bk_snap_sum *b);

typedef struct bk_checkpoint {
	int32_t partition;
	int64_t events_offset; /* E: the events partition is read from here */
	int64_t src_next;      /* the commands offset to resume at */
	bk_snap_sum sum;       /* of the partition's latest snapshots (count = orders) */
	int64_t written_at;    /* wall clock, µs (for people) */
	/* of the fingerprints of every order archived on the partition up to E (count =
	 * archived orders; bk_snap_sum_add_fp), as its archived records list them */
	bk_snap_sum archived;
} bk_checkpoint;

int bk_snap_checkpoint_encode(const bk_checkpoint *ck, msgpack_sbuffer *sb) BK_MUSTCHECK;
int bk_snap_checkpoint_decode(const void *buf, size_t n, bk_checkpoint *ret, char *err,
			      size_t errsz) BK_MUSTCHECK;

/*
 * Archived records (key "archived:<E>", never deleted): at a checkpoint, the fingerprints
 * (bk_archive_fp) of the orders archived on the partition since the previous one, or,
 * when `full`, of every order archived on it so far (it replaces what earlier records
 * listed: after a restore that read the log, or a failed checkpoint). The restore takes
 * the union of the last full record and the later ones before its checkpoint, and
 * compares it with the checkpoint's archived digest, which the signature covers.
 */
typedef struct bk_snap_archived {
	int32_t partition;
	int64_t events_offset;
	bool full;
	uint64_t *fps; /* owned (free) */
	size_t n;
} bk_snap_archived;

/* Add a fingerprint to a digest: BLAKE2b-256 of its 8 big-endian bytes, as a member. */
void bk_snap_sum_add_fp(bk_snap_sum *s, uint64_t fp);
/* Append an archived record listing fps (any order; encoded sorted). 0 or -1 (OOM). */
int bk_snap_archived_encode(int32_t partition, int64_t events_offset, bool full,
			    const uint64_t *fps, size_t n, msgpack_sbuffer *sb) BK_MUSTCHECK;
/* Decode one from hostile bytes (fingerprints non-zero with the low bit set, sorted and
 * distinct). On success *ret owns fps (free(ret->fps)). 0, or -1 with a message. */
int bk_snap_archived_decode(const void *buf, size_t n, bk_snap_archived *ret, char *err,
			    size_t errsz) BK_MUSTCHECK;

#endif
