/*
 * bk_engine.h - the in-memory state of a command processor partition: every order's
 * aggregate and the auto-accept rules, with the two ways state grows: handling a command
 * (decide, then evolve its events) and reading an events record (the SPEC §5 reader rule).
 * Pure: no I/O. One engine per thread; it owns every aggregate it holds.
 */
#ifndef BK_ENGINE_H
#define BK_ENGINE_H

#include "bk_err.h"
#include "bk_chain.h"
#include "bk_decide.h"

typedef struct bk_engine bk_engine; /* opaque */

bk_engine *bk_engine_new(void) BK_MUSTCHECK; /* NULL on OOM */
void bk_engine_free(bk_engine *e);	     /* NULL ok */

/* The aggregate of an order, NULL when unknown. Owned by the engine. */
const bk_order *bk_engine_order(const bk_engine *e, const char *order_id);
size_t bk_engine_count(const bk_engine *e);
void bk_engine_foreach(const bk_engine *e, void (*fn)(const bk_order *o, void *opaque),
		       void *opaque);
bk_ruleset *bk_engine_rules(bk_engine *e);
/* Use `shared` (not owned; NULL = back to the engine's own) as the ruleset for deciding
 * and for applying rule changes: rules are global across partitions (SPEC §4), so the
 * processor keeps one ruleset for all its per-partition engines. */
void bk_engine_share_rules(bk_engine *e, bk_ruleset *shared);
/* The same with the aggregates writable, for the snapshot writer's bookkeeping
 * (bk_order.snap_version) only: fn must change nothing decide or evolve reads. */
void bk_engine_each(bk_engine *e, void (*fn)(bk_order *o, void *opaque), void *opaque);
/* Put an aggregate (a decoded snapshot, bk_snap_decode) in the engine, replacing the order's
 * aggregate if any; the engine owns o from then on, also on failure. 0, or -1 on OOM. */
int bk_engine_put(bk_engine *e, bk_order *o) BK_MUSTCHECK;
/* Grow the table to hold n orders without growing again (a restore knows how many
 * snapshots a checkpoint counts: they arrive in the writer's table order, which a
 * growing table of the same hash would cluster). 0, or -1 on OOM (nothing changed). */
int bk_engine_reserve(bk_engine *e, size_t n) BK_MUSTCHECK;
/* Remove an order (after a revoked partition or an aborted transaction). */
void bk_engine_drop(bk_engine *e, const char *order_id);

/*
 * Archived orders (core/bk_archive.h). Evolving order.archived removes the order and keeps
 * the 8-byte fingerprint of its id (bk_archive_fp) in a set, so bk_engine_handle answers
 * every later command naming it `archived` and bk_engine_read reports its later events as
 * bad links (its chain ended). The set is the part of the state that still grows with
 * history: 16-32 bytes of table per archived order (8-byte slots, at most half full).
 */
bool bk_engine_archived(const bk_engine *e, const char *order_id);
size_t bk_engine_archived_count(const bk_engine *e);
/* Add a fingerprint read back from the snapshots topic (restore). 1 added, 0 already
 * there, -1 out of memory. fp must be non-zero. */
int bk_engine_archived_put(bk_engine *e, uint64_t fp) BK_MUSTCHECK;
/* Forget every fingerprint (a full archived record replaces them, restore). */
void bk_engine_archived_reset(bk_engine *e);
/* Every fingerprint, in table order. */
void bk_engine_archived_foreach(const bk_engine *e, void (*fn)(uint64_t fp, void *opaque),
				void *opaque);

/* What archiving removed, for the snapshot writer (kept only after
 * bk_engine_track_archives(e, true): nothing else drains it). */
typedef struct bk_archived_order {
	uint64_t fp;
	bool had_snap; /* the order had a snapshot on the log (snap_version > 0): tombstone it */
	char order_id[BK_ID_MAX];
	uint8_t snap_hash[BK_HASH_LEN]; /* of that snapshot, when had_snap */
} bk_archived_order;
void bk_engine_track_archives(bk_engine *e, bool on);
/* Hand every order archived since the last call to fn, in archiving order, and forget
 * them. */
void bk_engine_archived_take(bk_engine *e, void (*fn)(const bk_archived_order *a, void *opaque),
			     void *opaque);

/*
 * Decide a command and apply what it produced (events into the order, rules into the
 * ruleset). ctx->rules is replaced by the engine's ruleset; without ctx->scratch, decide
 * uses one kept by the engine (so one engine is handled by one thread at a time, as its
 * orders require anyway). Returns 0 with *ret filled,
 * -1 on OOM or an internal error (message in ret->message). Events live in z.
 */
int bk_engine_handle(bk_engine *e, const bk_command *c, const bk_decide_ctx *ctx, msgpack_zone *z,
		     bk_decision *ret) BK_MUSTCHECK;

/*
 * Read one *sealed* events record with the reader rule: each event's hash is checked
 * against its canonical bytes (BAD_HASH), then classified against what the engine holds
 * (bk_chain_classify); only NEXT is applied. The caller has judged the seal.
 * ret_verdicts (may be NULL) gets one verdict per event. Returns 0, or -1 when an event
 * classified NEXT could not be evolved (message in err; the order keeps the events
 * before it).
 */
int bk_engine_read(bk_engine *e, const bk_record *r, bk_chain_verdict *ret_verdicts, char *err,
		   size_t errsz) BK_MUSTCHECK;

/* Check each read event's hash against its bytes (default on; off only to measure). */
void bk_engine_check_hashes(bk_engine *e, bool on);

#endif
