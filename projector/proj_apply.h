/*
 * proj_apply.h - one timeline event -> the row images it changes (docs/projector.md has
 * the table per event type). Events are fat: everything a row needs is in the event or
 * in the few order facts of pa_order, so nothing here decides or reads PostgreSQL.
 * Pure: no I/O; images go into the caller's pr_store.
 */
#ifndef PROJ_APPLY_H
#define PROJ_APPLY_H

#include "bk_event.h"
#include "bk_ids.h"
#include "proj_rows.h"

/* What the mapping needs to know about an order besides the event. */
typedef struct pa_order {
	int status; /* bk_status; -1 when the order is not in the read model */
	char buyer[BK_ID_MAX];
	char provider[BK_ID_MAX]; /* "" until known (INVITE orders: until the award) */
	char currency[8];	  /* the order's (order.created), for upcasting its events */
} pa_order;

/*
 * Write the images of event e into s and move o along (status, provider). Checks that
 * the event fits: the order exists (or does not, for order.created), a status event's
 * `from` is the order's status, the payload has the fields its type needs, the schema
 * version is one this program reads. An event of an older schema is upcast first
 * (bk_upcast, with o's currency): the rows show the current schema (the timeline row's
 * `schema` and payload), its hashes the stored ones. Returns 0, or -1 with the reason in err; after
 * a failure s may hold part of the event's images (the caller rebuilds the batch without it) and o
 * is unchanged.
 */
int pa_apply(pr_store *s, const bk_event *e, pa_order *o, char *err, size_t errsz) BK_MUSTCHECK;

/* The price snapshot of the orders in $1 (text[]), recomputed from booking.line_item and
 * booking.order; run after the batch's rows are written. */
extern const char pa_price_sql[];

#endif
