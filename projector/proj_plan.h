/*
 * proj_plan.h - the projection's planning, one module for every projector: the live
 * daemon (proj_batch.c) and rebuild (rebuild.c) both build their items here and plan them
 * here, so their verdicts, actions and reason strings are the same by construction.
 *
 * Items: a record's events (or one item for a record that does not decode), each with
 * what the seal rule said of its record. Planning: every item is judged against its
 * order's last valid event by the shared reader rule (bk_chain_classify, docs/design.md):
 *
 *   next       -> mapped by pa_apply into the caller's row store (PP_APPLY)
 *   duplicate  -> nothing (PP_DUP)
 *   fork       -> reported, not applied (PP_FORK)
 *   invalid    -> rejected alone: unsealed, garbage, bad hash, bad link (PP_REJECT)
 *
 * Quarantine is for valid events that fail to apply (pa_apply refuses them, or
 * PostgreSQL does: the caller marks them with pp_fail): the event is PP_QUAR and the
 * order's later events PP_HELD until an operator retries or skips them. An invalid record
 * never holds anything back.
 *
 * Pure: no Kafka, no PostgreSQL, no clock. The caller keeps the per-order state (a
 * pp_order inside its own entry) and answers two questions through pp_ops: the hash of
 * an older seq of an order (duplicates of events before the last), and where to keep a
 * hash once an event is applied. Single-threaded.
 */
#ifndef PROJ_PLAN_H
#define PROJ_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

#include "bk_chain.h"
#include "bk_codec.h"
#include "proj_apply.h"

#define PP_REASON_MAX 400

/* An order as planning sees it: committed, and while a plan is made. */
typedef struct pp_head {
	int64_t seq; /* last valid event applied (0: none) */
	uint8_t hash[BK_HASH_LEN];
	pa_order f;
} pp_head;

typedef struct pp_order {
	char id[BK_ID_MAX];
	pp_head c;  /* committed: what the read model holds */
	pp_head b;  /* while planning */
	bool held;  /* set by the caller: quarantine rows of it wait (held or retry) */
	bool quar;  /* while planning: from here on its events wait in quarantine */
	bool retry; /* set by the caller: an operator asked to retry its rows */
} pp_order;

typedef enum pp_action {
	PP_APPLY,  /* the next valid event: mapped */
	PP_DUP,	   /* the same event again */
	PP_FORK,   /* a valid event for a seq another valid event took first */
	PP_QUAR,   /* a valid event that failed to apply: the order stops here */
	PP_HELD,   /* waits behind its order's quarantined event */
	PP_REJECT, /* invalid: reported, never applied, holds nothing back */
} pp_action;

/* What the seal rule said of an item's record. */
typedef enum pp_seal {
	PP_SEALED,   /* a valid seal covers it (or the reader trusts unsealed records) */
	PP_UNSEALED, /* no valid seal covers it */
	PP_BAD_SEAL, /* a seal record that does not check */
} pp_seal;

typedef struct pp_item {
	const bk_event *e; /* NULL: the record does not decode (or is a bad seal) */
	pp_order *o;	   /* NULL: the record names no order the caller could keep */
	int64_t qid;	   /* a quarantine row being retried; 0 for a record of the log */
	int topic;	   /* the caller's topic index */
	int32_t part;
	int64_t offset;
	const void *raw; /* the record's bytes */
	size_t raw_n;
	uint8_t action;	 /* pp_action, set by pp_run */
	uint8_t verdict; /* PP_REJECT: the reader rule's verdict (bk_chain_verdict) */
	bool pre_bad;	 /* invalid before planning (verdict and reason set) */
	bool apply_bad;	 /* valid, but failed to apply: quarantined by the next plan */
	char reason[PP_REASON_MAX];
} pp_item;

typedef struct pp_ops {
	/* The hash of the valid event at seq (< o->b.seq) of o: 0 found, 1 none, -1 the
	 * lookup failed (pp_run stops with the reason in err). */
	int (*hash_at)(void *ctx, pp_order *o, int64_t seq, uint8_t ret[BK_HASH_LEN], char *err,
		       size_t errsz);
	/* o->b is set back to o->c (a plan starts again): forget hashes kept since. NULL ok. */
	void (*reset)(void *ctx, pp_order *o);
	/* e was applied (o->b.seq == e->seq): keep its hash for hash_at. -1: out of memory. */
	int (*applied)(void *ctx, pp_order *o, const bk_event *e);
	void *ctx;
} pp_ops;

typedef struct pp_plan {
	pp_item *items;
	size_t n, cap;
	msgpack_sbuffer sb; /* scratch for the hash checks */
} pp_plan;

void pp_init(pp_plan *pl);
void pp_free(pp_plan *pl);
void pp_clear(pp_plan *pl); /* no items; keeps the memory */

/*
 * Add the items of one record: its events, or one garbage item when rec is NULL (why
 * says why it did not decode) or has no events. o_of: the caller's entry for an order id
 * (NULL when it has none: the item is rejected). hash_bad: per event whether its hash was
 * found not to match (checked already, e.g. on another thread), or NULL to check here.
 * Returns the first new item's index, or -1 on out of memory.
 */
long pp_add_record(pp_plan *pl, const bk_record *rec, const char *why, pp_seal seal,
		   const uint8_t *hash_bad, pp_order *(*o_of)(void *ctx, const char *order_id),
		   void *ctx, const char *key) BK_MUSTCHECK;

/*
 * Judge every item in order and map the next valid ones into store (reset first). An
 * item that pa_apply refuses is marked apply_bad and the plan starts again without it.
 * Orders start from their committed state (o->c) and held flag; an order with items being
 * retried (qid) starts released, its retried rows first. 0, or -1 with err (a lookup or
 * memory failure: nothing of the plan may be used).
 */
int pp_run(pp_plan *pl, pr_store *store, const pp_ops *ops, char *err, size_t errsz) BK_MUSTCHECK;

/* After the caller wrote the plan: each item's order commits what was planned (c = b). */
void pp_commit(pp_plan *pl);

/* Quarantine item i (a valid event the read model refused: why), its order stops. */
void pp_quarantine(pp_plan *pl, size_t i, const char *why);

/* The item's order id as reports name it. */
const char *pp_order_id(const pp_item *it);

/* The bytes a report keeps of an item: a one-event record (encoded into sb), or the
 * record's own bytes when it did not decode. 0, or -1 on out of memory. */
int pp_item_bytes(const pp_item *it, msgpack_sbuffer *sb, const void **ret, size_t *ret_n);

/* The reason text of a held item. */
extern const char pp_held_reason[];

#endif
