/*
 * sweep.c - the timer: on the wall clock, find orders with a request or card whose
 * expires_at has passed, a card inside the expiring lead without its `expiring` event, or
 * a settled order whose archive window has passed (core/bk_archive.h), and run an
 * internal order.sweep for each through the normal decide/produce path.
 * Sweep command ids derive from (order, target), as do the expiry events' ids.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_archive.h"
#include "cp.h"
#include "log.h"

#define TARGET_MAX (BK_ID_MAX + 16)

typedef struct due {
	char order_id[BK_ID_MAX];
	char target[TARGET_MAX];
} due;

typedef struct due_list {
	due *v;
	size_t n, cap;
	int64_t now, lead;
	int64_t archive_after; /* us; 0: never */
	bool oom;
} due_list;

static void push(due_list *l, const char *order_id, const char *verb, const char *id)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		due *v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			l->oom = true;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	snprintf(l->v[l->n].order_id, BK_ID_MAX, "%s", order_id);
	snprintf(l->v[l->n].target, TARGET_MAX, "%s:%s", verb, id);
	l->n++;
}

/* First thing due on an order (one sweep handles everything due on it). */
static void collect(const bk_order *o, void *opaque)
{
	due_list *l = opaque;
	const bk_status_row *rows[2];
	if (bk_status_rows(o->status, BK_CMD_REQUEST_EXPIRE, rows, 2) > 0)
		for (uint32_t i = 0; i < o->n_reqs; i++) {
			const bk_request *r = &o->reqs[i];
			if ((r->status == BK_RQ_PENDING || r->status == BK_RQ_COUNTERED) &&
			    r->expires_at != BK_TS_NONE && r->expires_at <= l->now) {
				push(l, o->order_id, "expire", r->id);
				return;
			}
		}
	bool card_ok = bk_status_rows(o->status, BK_CMD_CARD_EXPIRE, rows, 2) > 0;
	for (uint32_t i = 0; i < o->n_cards; i++) {
		const bk_card *c = &o->cards[i];
		if (c->state != BK_CS_OPEN || c->expires_at == BK_TS_NONE)
			continue;
		if (card_ok && c->expires_at <= l->now) {
			push(l, o->order_id, "expire", c->id);
			return;
		}
		if (!c->expiring_sent && l->lead > 0 && c->expires_at - l->lead <= l->now &&
		    c->expires_at > l->now) {
			push(l, o->order_id, "expiring", c->id);
			return;
		}
	}
	/* the cheap tests first: the settled test reads the FSM tables */
	if (l->archive_after <= 0 || !bk_status_is_terminal((bk_status)o->status) ||
	    o->last_event_at > l->now - l->archive_after)
		return;
	int64_t due = bk_archive_due(o, l->archive_after);
	if (due != BK_TS_NONE && due <= l->now)
		push(l, o->order_id, "archive", o->order_id);
}

int cp_sweep(cp *c, int64_t now)
{
	due_list l = {.now = now,
		      .lead = c->o.expiring_lead_s * 1000000,
		      .archive_after = c->o.archive_after_s * 1000000};
	int rc = 0;
	if (!cp_sure_owner(c)) /* never stamp events for partitions that may be gone */
		return 0;
	for (int p = 0; p < c->nparts && rc == 0; p++) {
		cp_part *pt = &c->parts[p];
		if (!pt->assigned || !pt->restored || !pt->eng)
			continue;
		l.n = 0;
		bk_engine_foreach(pt->eng, collect, &l);
		if (l.oom) {
			bk_log(BK_LOG_ERROR, "sweep: out of memory");
			break;
		}
		for (size_t i = 0; i < l.n && rc == 0; i++)
			rc = cp_handle_sweep(c, p, l.v[i].order_id, l.v[i].target, now);
	}
	free(l.v);
	return rc;
}
