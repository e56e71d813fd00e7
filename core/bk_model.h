/*
 * bk_model.h - the order aggregate: what the decider needs to know about one order.
 *
 * An aggregate is built only by bk_evolve() from the order's events (SPEC §5 restore);
 * nothing else assigns its fields. It owns all its memory (bk_order_free releases it).
 */
#ifndef BK_MODEL_H
#define BK_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_err.h"
#include "bk_chain.h"
#include "bk_fsm.h"
#include "bk_ids.h"

typedef enum bk_li_kind {
	BK_LI_PACKAGE,
	BK_LI_EXTRA,
	BK_LI_TRAVEL,
	BK_LI_LICENSE,
	BK_LI_ADJUSTMENT,
	BK_LI_REFUND,
	BK_LI__COUNT
} bk_li_kind;
const char *bk_li_kind_name(bk_li_kind k);
int bk_li_kind_from(const char *s, size_t n) BK_MUSTCHECK;

typedef struct bk_line_item {
	char id[BK_ID_MAX];
	uint8_t kind; /* bk_li_kind */
	char *title;  /* owned */
	int64_t qty;
	int64_t unit_cents;
	int64_t total_cents;
} bk_line_item;

typedef struct bk_items {
	bk_line_item *v;
	uint32_t n, cap;
} bk_items;

typedef enum bk_req_status {
	BK_RQ_PENDING,
	BK_RQ_ACCEPTED,
	BK_RQ_DECLINED,
	BK_RQ_COUNTERED,
	BK_RQ_EXPIRED,
	BK_RQ__COUNT
} bk_req_status;
const char *bk_req_status_name(bk_req_status s);

typedef struct bk_request {
	char id[BK_ID_MAX];
	uint8_t mode;	    /* bk_mode */
	uint8_t status;	    /* bk_req_status */
	int64_t expires_at; /* BK_TS_NONE when none */
	/* pending custom offer (status countered) */
	bk_items offer;
	int64_t offer_fee_cents, offer_tax_cents;
} bk_request;

typedef enum bk_rcp_status {
	BK_RC_NEW,
	BK_RC_RESPONDED,
	BK_RC_AWARDED,
	BK_RC_NOT_AWARDED,
	BK_RC__COUNT
} bk_rcp_status;
const char *bk_rcp_status_name(bk_rcp_status s);

typedef struct bk_recipient {
	char user_id[BK_ID_MAX];
	uint8_t status; /* bk_rcp_status */
} bk_recipient;

typedef struct bk_card {
	char id[BK_ID_MAX];
	uint8_t type;  /* bk_card_type */
	uint8_t state; /* bk_card_state */
	bool expiring_sent;
	uint8_t creator_role; /* bk_role of the creator: buyer or provider */
	char created_by[BK_ID_MAX];
	int64_t expires_at;
	/* type-specific terms applied on accept */
	int64_t start_ts, end_ts; /* reschedule */
	bk_items items;		  /* extras */
	int64_t amount_cents;	  /* expense */
	char *title;		  /* expense; owned */
} bk_card;

typedef enum bk_dsp_status {
	BK_DS_OPEN,
	BK_DS_AWAITING_EVIDENCE,
	BK_DS_UNDER_REVIEW,
	BK_DS_RESOLVED_BUYER,
	BK_DS_RESOLVED_PROVIDER,
	BK_DS_SPLIT,
	BK_DS_CHARGEBACK,
	BK_DS__COUNT
} bk_dsp_status;
const char *bk_dsp_status_name(bk_dsp_status s);
int bk_dsp_status_from(const char *s, size_t n) BK_MUSTCHECK;

typedef struct bk_dispute {
	char id[BK_ID_MAX];
	uint8_t status; /* bk_dsp_status */
} bk_dispute;

typedef struct bk_milestone {
	char id[BK_ID_MAX];
	uint8_t status; /* bk_ms_state */
	int64_t amount_cents;
} bk_milestone;

/* Money of an order, all in cents. */
typedef struct bk_money {
	int64_t subtotal, fee, tax, tip, total;
	int64_t paid;	  /* captured */
	int64_t refunded; /* refunded so far */
} bk_money;

/* Set of 64-bit command-id fingerprints (open addressing). */
typedef struct bk_idset {
	uint64_t *slots;
	uint32_t n, cap;
} bk_idset;

typedef struct bk_order {
	char order_id[BK_ID_MAX];
	uint8_t status;	 /* bk_status */
	uint8_t mode;	 /* bk_mode */
	int64_t version; /* = seq of the last event applied */
	char buyer[BK_ID_MAX];
	char provider[BK_ID_MAX];	 /* "" until awarded (INVITE) */
	char service_profile[BK_ID_MAX]; /* "" until awarded (INVITE) */
	char timezone[64];
	char currency[8];
	int64_t start_ts, end_ts;
	char *location_address; /* owned; revealed to the read model on confirm */
	bool has_travel;
	double travel_miles;
	bk_items items;
	bk_money money;
	bk_request *reqs;
	uint32_t n_reqs, cap_reqs;
	bk_recipient *rcps;
	uint32_t n_rcps, cap_rcps;
	bk_card *cards;
	uint32_t n_cards, cap_cards;
	bk_dispute *disputes;
	uint32_t n_disputes, cap_disputes;
	bk_milestone *ms;
	uint32_t n_ms, cap_ms;
	bk_idset seen;			 /* command ids that produced events */
	char last_command_id[BK_ID_MAX]; /* of the last event applied (seen holds it) */
	uint8_t (*hashes)[BK_HASH_LEN];	 /* hashes[seq-1], for the reader rule */
	uint32_t cap_hashes;
	int64_t last_event_at; /* created_at of the last event applied (the archive window's
				* start, core/bk_archive.h) */
	bool archived;	       /* order.archived applied: the engine lets the order go */
	/* Not state: the snapshot writer's bookkeeping (commands/snapshot.c), never read by
	 * decide or evolve: the version of the order's latest snapshot on the log, 0 none,
	 * and that snapshot's hash (bk_snap_hash) */
	int64_t snap_version;
	uint8_t snap_hash[BK_HASH_LEN];
} bk_order;

/* Add a fingerprint (non-zero) to a set: 1 added, 0 already there, -1 out of memory. */
int bk_idset_add(bk_idset *s, uint64_t fp) BK_MUSTCHECK;
/* Is fp (non-zero) in the set? */
bool bk_idset_has(const bk_idset *s, uint64_t fp);
/* Release the slots (the set is empty and usable again). */
void bk_idset_clear(bk_idset *s);

/* Allocate an empty aggregate for order_id (version 0). NULL on OOM. Free with bk_order_free. */
bk_order *bk_order_new(const char *order_id) BK_MUSTCHECK;
void bk_order_free(bk_order *o); /* NULL ok */
/* Deep copy; NULL on OOM. */
bk_order *bk_order_clone(const bk_order *o) BK_MUSTCHECK;

/* Hash of the last applied event (32 zero bytes for a new order). */
const uint8_t *bk_order_last_hash(const bk_order *o);
bool bk_order_seen(const bk_order *o, const char *cmd_id, size_t n);

/* Lookups by id; NULL when absent. */
bk_request *bk_order_request(const bk_order *o, const char *id, size_t n);
bk_card *bk_order_card(const bk_order *o, const char *id, size_t n);
bk_dispute *bk_order_dispute(const bk_order *o, const char *id, size_t n);
bk_milestone *bk_order_milestone(const bk_order *o, const char *id, size_t n);
bk_recipient *bk_order_recipient(const bk_order *o, const char *user_id, size_t n);

/* Recompute money.subtotal and money.total from the line items. false on overflow. */
bool bk_money_recompute(const bk_items *items, bk_money *m) BK_MUSTCHECK;

#endif
