/*
 * bk_evolve.c - evolve(state, event): the one place an order aggregate changes.
 *
 * Events are fat: each carries the facts it establishes (ids, line items, new status),
 * so evolve reads them and never decides. It checks that an event fits the state it is
 * applied to (seq, status from, known ids) and refuses it otherwise, leaving the state
 * as it was for every refusal detected before the first assignment.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_archive.h"
#include "bk_decide.h"
#include "bk_internal.h"
#include "bk_money.h"
#include "bk_schema.h"
#include "bk_time.h"
#include "bk_upcast.h"

/* --- line items shared with the decider ------------------------------------------ */

int bk_li_parse(bk_vctx *c, const bk_val *arr, bool client, msgpack_zone *z, bk_li_view **ret,
		uint32_t *ret_n, bool *ret_overflow)
{
	*ret_overflow = false;
	if (!arr || arr->type != MSGPACK_OBJECT_ARRAY) {
		snprintf(c->err, c->errsz, "%s: expected an array of line items", c->path);
		return -1;
	}
	uint32_t n = arr->via.array.size;
	if (n > 200) {
		snprintf(c->err, c->errsz, "%s: at most 200 line items", c->path);
		return -1;
	}
	bk_li_view *v = n ? msgpack_zone_malloc(z, sizeof(*v) * n) : NULL;
	if (n && !v) {
		snprintf(c->err, c->errsz, "out of memory");
		return -1;
	}
	const char *outer = c->path;
	char path[96];
	int rc = -1;
	for (uint32_t i = 0; i < n; i++) {
		const bk_val *it = &arr->via.array.ptr[i];
		snprintf(path, sizeof(path), "%s[%u]", outer, i);
		c->path = path;
		bk_li_view *l = &v[i];
		memset(l, 0, sizeof(*l));
		if (it->type != MSGPACK_OBJECT_MAP) {
			snprintf(c->err, c->errsz, "%s: expected an object", path);
			goto out;
		}
		const char *kind;
		size_t kn;
		bool present;
		if (bk_get_str(c, it, "id", !client, &l->id, &l->id_n) < 0 ||
		    bk_get_str(c, it, "kind", true, &kind, &kn) < 0 ||
		    bk_get_str(c, it, "title", true, &l->title, &l->title_n) < 0 ||
		    bk_get_int(c, it, "qty", false, &l->qty, &present) < 0)
			goto out;
		if (!present)
			l->qty = 1;
		if (l->id && !bk_id_valid(l->id, l->id_n, NULL)) {
			snprintf(c->err, c->errsz, "%s.id: not a valid id", path);
			goto out;
		}
		int k = bk_li_kind_from(kind, kn);
		if (k < 0 || (client && k == BK_LI_REFUND)) {
			snprintf(
			    c->err, c->errsz,
			    "%s.kind: expected one of package, extra, travel, license, adjustment",
			    path);
			goto out;
		}
		l->kind = (uint8_t)k;
		if (l->title_n == 0 || l->title_n > 500) {
			snprintf(c->err, c->errsz, "%s.title: 1 to 500 bytes", path);
			goto out;
		}
		if (bk_get_int(c, it, "unit_cents", true, &l->unit_cents, NULL) < 0)
			goto out;
		if (client) {
			if (l->qty < 1 || l->qty > 10000) {
				snprintf(c->err, c->errsz, "%s.qty: a whole number from 1 to 10000",
					 path);
				goto out;
			}
			if (l->unit_cents < 0 || !bk_cents_fits(l->unit_cents)) {
				snprintf(c->err, c->errsz,
					 "%s.unit_cents: expected 0 to 2147483647 cents", path);
				*ret_overflow = l->unit_cents > 0;
				goto out;
			}
			if (!bk_cents_mul(l->qty, l->unit_cents, &l->total_cents)) {
				snprintf(c->err, c->errsz,
					 "%s: qty x unit_cents overflows the schema's int", path);
				*ret_overflow = true;
				goto out;
			}
		} else if (bk_get_int(c, it, "total_cents", true, &l->total_cents, NULL) < 0) {
			goto out;
		}
	}
	*ret = v;
	*ret_n = n;
	rc = 0;
out:
	c->path = outer;
	return rc;
}

bool bk_li_build(msgpack_zone *z, const bk_li_view *v, uint32_t n, bk_val *ret)
{
	bk_val arr;
	if (!bk_val_arr(z, n, &arr))
		return false;
	for (uint32_t i = 0; i < n; i++) {
		bk_mapb b;
		if (!bk_mapb_init(&b, z, 6) || !bk_mapb_strn(&b, "id", v[i].id, v[i].id_n) ||
		    !bk_mapb_str(&b, "kind", bk_li_kind_name((bk_li_kind)v[i].kind)) ||
		    !bk_mapb_strn(&b, "title", v[i].title, v[i].title_n) ||
		    !bk_mapb_int(&b, "qty", v[i].qty) ||
		    !bk_mapb_int(&b, "unit_cents", v[i].unit_cents) ||
		    !bk_mapb_int(&b, "total_cents", v[i].total_cents))
			return false;
		arr.via.array.ptr[i] = bk_mapb_done(&b);
	}
	*ret = arr;
	return true;
}

bool bk_items_append(bk_items *it, const bk_li_view *v, uint32_t n)
{
	if (it->n + n > it->cap) {
		uint32_t cap = it->cap ? it->cap : 4;
		while (cap < it->n + n)
			cap *= 2;
		bk_line_item *nv = realloc(it->v, sizeof(*nv) * cap);
		if (!nv)
			return false;
		it->v = nv;
		it->cap = cap;
	}
	for (uint32_t i = 0; i < n; i++) {
		bk_line_item *l = &it->v[it->n];
		memset(l, 0, sizeof(*l));
		if (bk_strlcpyn(l->id, sizeof(l->id), v[i].id ? v[i].id : "", v[i].id_n) < 0)
			return false;
		l->title = strndup(v[i].title, v[i].title_n);
		if (!l->title)
			return false;
		l->kind = v[i].kind;
		l->qty = v[i].qty;
		l->unit_cents = v[i].unit_cents;
		l->total_cents = v[i].total_cents;
		it->n++;
	}
	return true;
}

void bk_items_reset(bk_items *it)
{
	for (uint32_t i = 0; i < it->n; i++)
		free(it->v[i].title);
	it->n = 0;
}

bool bk_totals_build(msgpack_zone *z, const bk_money *m, bk_val *ret)
{
	bk_mapb b;
	if (!bk_mapb_init(&b, z, 5) || !bk_mapb_int(&b, "subtotal_cents", m->subtotal) ||
	    !bk_mapb_int(&b, "platform_fee_cents", m->fee) ||
	    !bk_mapb_int(&b, "tax_cents", m->tax) || !bk_mapb_int(&b, "tip_cents", m->tip) ||
	    !bk_mapb_int(&b, "total_cents", m->total))
		return false;
	*ret = bk_mapb_done(&b);
	return true;
}

/* --- evolve ------------------------------------------------------------------------ */

typedef struct ectx {
	bk_order *o;
	const bk_event *e;
	bk_vctx v;
	msgpack_zone *z; /* scratch for parsing item arrays, made on first use */
	msgpack_zone zone;
} ectx;

static msgpack_zone *ez(ectx *x)
{
	if (!x->z && msgpack_zone_init(&x->zone, 1024))
		x->z = &x->zone;
	return x->z;
}

#define GROW(arr, n, cap)                                                                          \
	do {                                                                                       \
		if ((n) == (cap)) {                                                                \
			uint32_t nc_ = (cap) ? (cap)*2 : 4;                                        \
			void *p_ = realloc((arr), sizeof(*(arr)) * nc_);                           \
			if (!p_)                                                                   \
				return oom(x);                                                     \
			(arr) = p_;                                                                \
			(cap) = nc_;                                                               \
		}                                                                                  \
	} while (0)

static int fail(ectx *x, const char *fmt, const char *a)
{
	char sub[48];
	char what[160];
	snprintf(what, sizeof(what), fmt, a);
	snprintf(x->v.err, x->v.errsz, "seq %lld (%s): %s", (long long)x->e->seq,
		 bk_event_subtype(x->e, sub, sizeof(sub)), what);
	return -1;
}

static int oom(ectx *x)
{
	return fail(x, "%s", "out of memory");
}

static int get_id(ectx *x, const char *key, char out[BK_ID_MAX])
{
	const char *s;
	size_t n;
	if (bk_get_str(&x->v, &x->e->payload, key, true, &s, &n) < 0)
		return -1;
	if (bk_strlcpyn(out, BK_ID_MAX, s, n) < 0)
		return fail(x, "%s: id too long", key);
	return 0;
}

static int get_str_ref(ectx *x, const char *key, const char **s, size_t *n)
{
	return bk_get_str(&x->v, &x->e->payload, key, true, s, n);
}

static int items_from(ectx *x, const bk_val *map, const char *key, bk_items *dst, bool replace)
{
	const bk_val *arr;
	bk_li_view *v;
	uint32_t n;
	bool ovf;
	if (!ez(x))
		return oom(x);
	if (bk_get_arr(&x->v, map, key, true, &arr) < 0 ||
	    bk_li_parse(&x->v, arr, false, x->z, &v, &n, &ovf) < 0)
		return -1;
	if (replace)
		bk_items_reset(dst);
	if (!bk_items_append(dst, v, n))
		return oom(x);
	return 0;
}

static int recompute(ectx *x)
{
	if (!bk_money_recompute(&x->o->items, &x->o->money))
		return fail(x, "%s", "totals overflow the schema's int");
	return 0;
}

static int ev_created(ectx *x)
{
	bk_order *o = x->o;
	const bk_val *p = &x->e->payload;
	const char *s;
	size_t n;
	int64_t v;
	bool present;
	if (bk_get_str(&x->v, p, "mode", true, &s, &n) < 0)
		return -1;
	int mode = bk_mode_from(s, n);
	if (mode < 0)
		return fail(x, "%s", "unknown mode");
	if (get_id(x, "buyer_user_id", o->buyer) < 0)
		return -1;
	if (bk_get_str(&x->v, p, "provider_user_id", false, &s, &n) < 0 ||
	    (s && bk_strlcpyn(o->provider, sizeof(o->provider), s, n) < 0))
		return -1;
	if (bk_get_str(&x->v, p, "service_profile_id", false, &s, &n) < 0 ||
	    (s && bk_strlcpyn(o->service_profile, sizeof(o->service_profile), s, n) < 0))
		return -1;
	if (bk_get_str(&x->v, p, "timezone", true, &s, &n) < 0 ||
	    bk_strlcpyn(o->timezone, sizeof(o->timezone), s, n) < 0)
		return -1;
	if (bk_get_str(&x->v, p, "currency", true, &s, &n) < 0 ||
	    bk_strlcpyn(o->currency, sizeof(o->currency), s, n) < 0)
		return -1;
	if (bk_get_ts(&x->v, p, "start_ts", true, &o->start_ts) < 0 ||
	    bk_get_ts(&x->v, p, "end_ts", true, &o->end_ts) < 0)
		return -1;
	const bk_val *loc;
	if (bk_get_map(&x->v, p, "location", true, &loc) < 0)
		return -1;
	bk_vctx lv = {x->v.err, x->v.errsz, "location"};
	if (bk_get_str(&lv, loc, "address", false, &s, &n) < 0)
		return -1;
	if (s && !(o->location_address = strndup(s, n)))
		return oom(x);
	double miles;
	if (bk_get_num(&x->v, p, "travel_miles", false, &miles, &present) < 0)
		return -1;
	o->has_travel = present;
	o->travel_miles = present ? miles : 0;
	if (items_from(x, p, "line_items", &o->items, true) < 0)
		return -1;
	if (bk_get_int(&x->v, p, "platform_fee_cents", true, &o->money.fee, NULL) < 0 ||
	    bk_get_int(&x->v, p, "tax_cents", true, &o->money.tax, NULL) < 0 ||
	    bk_get_int(&x->v, p, "tip_cents", false, &v, &present) < 0)
		return -1;
	o->money.tip = present ? v : 0;
	o->mode = (uint8_t)mode;
	o->status = BK_ST_INITIATED;
	return recompute(x);
}

static int ev_status(ectx *x)
{
	const char *s;
	size_t n;
	if (bk_get_str(&x->v, &x->e->payload, "from", true, &s, &n) < 0)
		return -1;
	int from = bk_status_from(s, n);
	if (x->e->sub >= BK_ST__COUNT)
		return fail(x, "%s", "unknown status");
	if (from != x->o->status)
		return fail(x, "the order is %s, not the event's from-status",
			    bk_status_name((bk_status)x->o->status));
	x->o->status = x->e->sub;
	return 0;
}

static bk_request *req_of(ectx *x, const char *key)
{
	const char *s;
	size_t n;
	if (get_str_ref(x, key, &s, &n) < 0)
		return NULL;
	bk_request *r = bk_order_request(x->o, s, n);
	if (!r)
		fail(x, "unknown request %s", "");
	return r;
}

static int ev_request_new(ectx *x, bool invite)
{
	bk_order *o = x->o;
	GROW(o->reqs, o->n_reqs, o->cap_reqs);
	bk_request *r = &o->reqs[o->n_reqs];
	memset(r, 0, sizeof(*r));
	if (get_id(x, invite ? "invite_id" : "request_id", r->id) < 0)
		return -1;
	if (bk_get_ts(&x->v, &x->e->payload, "expires_at", false, &r->expires_at) < 0)
		return -1;
	r->mode = invite ? BK_MODE_INVITE : o->mode;
	r->status = BK_RQ_PENDING;
	if (invite) {
		const bk_val *arr;
		if (bk_get_arr(&x->v, &x->e->payload, "recipients", true, &arr) < 0)
			return -1;
		for (uint32_t i = 0; i < arr->via.array.size; i++) {
			const bk_val *u = &arr->via.array.ptr[i];
			if (u->type != MSGPACK_OBJECT_STR)
				return fail(x, "%s", "recipients: expected strings");
			GROW(o->rcps, o->n_rcps, o->cap_rcps);
			bk_recipient *rc = &o->rcps[o->n_rcps];
			memset(rc, 0, sizeof(*rc));
			if (bk_strlcpyn(rc->user_id, sizeof(rc->user_id), u->via.str.ptr,
					u->via.str.size) < 0)
				return fail(x, "%s", "recipient id too long");
			o->n_rcps++;
		}
	}
	o->n_reqs++;
	return 0;
}

static int ev_request(ectx *x, uint8_t to)
{
	bk_request *r = req_of(x, x->e->type == BK_EV_INVITE_AWARDED ? "invite_id" : "request_id");
	if (!r)
		return -1;
	if (x->e->type == BK_EV_REQUEST_COUNTERED) {
		const bk_val *offer = &x->e->payload;
		if (items_from(x, offer, "line_items", &r->offer, true) < 0 ||
		    bk_get_int(&x->v, offer, "platform_fee_cents", true, &r->offer_fee_cents,
			       NULL) < 0 ||
		    bk_get_int(&x->v, offer, "tax_cents", true, &r->offer_tax_cents, NULL) < 0)
			return -1;
		int64_t exp;
		if (bk_get_ts(&x->v, offer, "expires_at", false, &exp) < 0)
			return -1;
		if (exp != BK_TS_NONE)
			r->expires_at = exp;
	} else if (x->e->type == BK_EV_REQUEST_COUNTER_ACCEPTED) {
		if (items_from(x, &x->e->payload, "line_items", &x->o->items, true) < 0 ||
		    bk_get_int(&x->v, &x->e->payload, "platform_fee_cents", true, &x->o->money.fee,
			       NULL) < 0 ||
		    bk_get_int(&x->v, &x->e->payload, "tax_cents", true, &x->o->money.tax, NULL) <
			0 ||
		    recompute(x) < 0)
			return -1;
	} else if (x->e->type == BK_EV_INVITE_AWARDED) {
		const char *s;
		size_t n;
		if (get_str_ref(x, "recipient_user_id", &s, &n) < 0)
			return -1;
		bk_recipient *w = bk_order_recipient(x->o, s, n);
		if (!w)
			return fail(x, "%s", "unknown recipient");
		if (get_id(x, "service_profile_id", x->o->service_profile) < 0)
			return -1;
		for (uint32_t i = 0; i < x->o->n_rcps; i++)
			x->o->rcps[i].status = BK_RC_NOT_AWARDED;
		w->status = BK_RC_AWARDED;
		memcpy(x->o->provider, w->user_id, sizeof(x->o->provider));
	}
	r->status = to;
	return 0;
}

static int ev_invite_responded(ectx *x)
{
	const char *s;
	size_t n;
	if (get_str_ref(x, "recipient_user_id", &s, &n) < 0)
		return -1;
	bk_recipient *w = bk_order_recipient(x->o, s, n);
	if (!w)
		return fail(x, "%s", "unknown recipient");
	w->status = BK_RC_RESPONDED;
	return 0;
}

static int ev_refund(ectx *x)
{
	const bk_val *li;
	int64_t amount;
	if (bk_get_int(&x->v, &x->e->payload, "refund_cents", true, &amount, NULL) < 0 ||
	    bk_get_map(&x->v, &x->e->payload, "line_item", true, &li) < 0)
		return -1;
	bk_val one = {.type = MSGPACK_OBJECT_ARRAY, .via.array = {1, (bk_val *)li}};
	bk_li_view *v;
	uint32_t n;
	bool ovf;
	if (!ez(x))
		return oom(x);
	if (bk_li_parse(&x->v, &one, false, x->z, &v, &n, &ovf) < 0)
		return -1;
	int64_t refunded;
	if (!bk_cents_add(x->o->money.refunded, amount, &refunded))
		return fail(x, "%s", "refunded total overflows the schema's int");
	if (!bk_items_append(&x->o->items, v, n))
		return oom(x);
	x->o->money.refunded = refunded;
	return recompute(x);
}

static int ev_card(ectx *x)
{
	bk_order *o = x->o;
	const bk_val *p = &x->e->payload;
	if (x->e->card_type >= BK_CT__COUNT)
		return fail(x, "%s", "unknown card type");
	if (x->e->sub == BK_CV_PROPOSED) {
		GROW(o->cards, o->n_cards, o->cap_cards);
		bk_card *c = &o->cards[o->n_cards];
		memset(c, 0, sizeof(*c));
		const char *s;
		size_t n;
		if (get_id(x, "card_id", c->id) < 0 || get_id(x, "created_by", c->created_by) < 0 ||
		    bk_get_str(&x->v, p, "creator_role", true, &s, &n) < 0 ||
		    bk_get_ts(&x->v, p, "expires_at", false, &c->expires_at) < 0)
			return -1;
		int role = bk_role_from(s, n);
		if (role < 0)
			return fail(x, "%s", "unknown creator_role");
		c->creator_role = (uint8_t)role;
		c->type = x->e->card_type;
		c->state = BK_CS_OPEN;
		c->start_ts = c->end_ts = BK_TS_NONE;
		const bk_val *terms;
		if (bk_get_map(&x->v, p, "payload", true, &terms) < 0)
			return -1;
		bk_vctx tv = {x->v.err, x->v.errsz, "payload.payload"};
		int rc = 0;
		if (c->type == BK_CT_RESCHEDULE)
			rc = bk_get_ts(&tv, terms, "start_ts", true, &c->start_ts) < 0 ||
				     bk_get_ts(&tv, terms, "end_ts", true, &c->end_ts) < 0
				 ? -1
				 : 0;
		else if (c->type == BK_CT_EXPENSE)
			rc = bk_get_int(&tv, terms, "amount_cents", true, &c->amount_cents, NULL) <
					 0 ||
				     bk_get_str(&tv, terms, "title", true, &s, &n) < 0 ||
				     !(c->title = strndup(s, n))
				 ? -1
				 : 0;
		o->n_cards++; /* from here the card owns what was allocated */
		if (rc == 0 && c->type == BK_CT_EXTRAS)
			rc = items_from(x, terms, "line_items", &c->items, true);
		return rc;
	}
	const char *s;
	size_t n;
	if (get_str_ref(x, "card_id", &s, &n) < 0)
		return -1;
	bk_card *c = bk_order_card(o, s, n);
	if (!c)
		return fail(x, "%s", "unknown card");
	if (x->e->sub >= BK_CV__COUNT || x->e->sub == BK_CV_PROPOSED)
		return fail(x, "%s", "unknown card verb");
	if (x->e->sub == BK_CV_ACCEPTED && (c->type == BK_CT_EXTRAS || c->type == BK_CT_EXPENSE) &&
	    (items_from(x, p, "line_items", &o->items, false) < 0 || recompute(x) < 0))
		return -1;
	if (x->e->sub == BK_CV_EXPIRING)
		c->expiring_sent = true;
	int st = bk_card_verb_state((bk_card_verb)x->e->sub); /* one table, core/bk_event.c */
	if (st >= 0)
		c->state = (uint8_t)st;
	return 0;
}

/* order.archived: only on a settled order, naming its last event's time, not before it;
 * the engine then lets the order go (bk_engine.c) */
static int ev_archived(ectx *x)
{
	int64_t at;
	if (bk_get_ts(&x->v, &x->e->payload, "last_event_at", true, &at) < 0)
		return -1;
	if (!bk_archive_settled(x->o))
		return fail(x, "%s", "order.archived on an order that is not settled");
	if (at != x->o->last_event_at || x->e->created_at < at)
		return fail(x, "%s", "order.archived: last_event_at is not the order's last event");
	x->o->archived = true;
	return 0;
}

static int apply(ectx *x)
{
	bk_order *o = x->o;
	const bk_val *p = &x->e->payload;
	const char *s;
	size_t n;
	int64_t v;
	switch ((bk_ev_type)x->e->type) {
	case BK_EV_ORDER_CREATED:
		if (o->version != 0)
			return fail(x, "%s", "order.created on an existing order");
		return ev_created(x);
	case BK_EV_ORDER_STATUS:
		return ev_status(x);
	case BK_EV_REQUEST_SUBMITTED:
		return ev_request_new(x, false);
	case BK_EV_INVITE_SENT:
		return ev_request_new(x, true);
	case BK_EV_REQUEST_ACCEPTED:
	case BK_EV_REQUEST_COUNTER_ACCEPTED:
	case BK_EV_INVITE_AWARDED:
		return ev_request(x, BK_RQ_ACCEPTED);
	case BK_EV_REQUEST_DECLINED:
	case BK_EV_REQUEST_COUNTER_DECLINED:
		return ev_request(x, BK_RQ_DECLINED);
	case BK_EV_REQUEST_COUNTERED:
		return ev_request(x, BK_RQ_COUNTERED);
	case BK_EV_REQUEST_EXPIRED:
		return ev_request(x, BK_RQ_EXPIRED);
	case BK_EV_INVITE_RESPONDED:
		return ev_invite_responded(x);
	case BK_EV_PAYMENT_CAPTURED:
		if (bk_get_int(&x->v, p, "amount_cents", true, &v, NULL) < 0)
			return -1;
		if (!bk_cents_add(o->money.paid, v, &o->money.paid))
			return fail(x, "%s", "paid total overflows the schema's int");
		return 0;
	case BK_EV_PAYMENT_REFUNDED:
		return ev_refund(x);
	case BK_EV_TIP_ADDED: {
		bk_money m = o->money; /* the order keeps its money when the tip does not fit */
		if (bk_get_int(&x->v, p, "tip_cents", true, &v, NULL) < 0)
			return -1;
		m.tip = v;
		if (!bk_money_recompute(&o->items, &m))
			return fail(x, "%s", "totals overflow the schema's int");
		o->money = m;
		return 0;
	}
	case BK_EV_DISPUTE_OPENED: {
		GROW(o->disputes, o->n_disputes, o->cap_disputes);
		bk_dispute *d = &o->disputes[o->n_disputes];
		memset(d, 0, sizeof(*d));
		if (get_id(x, "dispute_id", d->id) < 0)
			return -1;
		d->status = BK_DS_OPEN;
		o->n_disputes++;
		return 0;
	}
	case BK_EV_DISPUTE_UPDATED:
	case BK_EV_DISPUTE_RESOLVED: {
		const char *key = x->e->type == BK_EV_DISPUTE_UPDATED ? "status" : "outcome";
		const char *ds;
		size_t dn;
		if (get_str_ref(x, "dispute_id", &s, &n) < 0 || get_str_ref(x, key, &ds, &dn) < 0)
			return -1;
		bk_dispute *d = bk_order_dispute(o, s, n);
		int st = bk_dsp_status_from(ds, dn);
		if (!d || st < 0)
			return fail(x, "%s", "unknown dispute or dispute status");
		d->status = (uint8_t)st;
		return 0;
	}
	case BK_EV_MILESTONE_ADDED: {
		GROW(o->ms, o->n_ms, o->cap_ms);
		bk_milestone *m = &o->ms[o->n_ms];
		memset(m, 0, sizeof(*m));
		if (get_id(x, "milestone_id", m->id) < 0 ||
		    bk_get_int(&x->v, p, "amount_cents", true, &m->amount_cents, NULL) < 0)
			return -1;
		/* the decider adds milestone amounts up: each must fit the schema's int (a
		 * later schema's payload reaches here unchecked by the decoder) */
		if (!bk_cents_fits(m->amount_cents))
			return fail(x, "%s", "amount_cents overflows the schema's int");
		m->status = BK_MS_OPEN;
		o->n_ms++;
		return 0;
	}
	case BK_EV_MILESTONE_CHANGED: {
		if (get_str_ref(x, "milestone_id", &s, &n) < 0)
			return -1;
		bk_milestone *m = bk_order_milestone(o, s, n);
		if (!m)
			return fail(x, "%s", "unknown milestone");
		if (x->e->sub >= BK_MS__COUNT)
			return fail(x, "%s", "unknown milestone state");
		m->status = x->e->sub;
		return 0;
	}
	case BK_EV_NOTE_ADDED:
		return 0;
	case BK_EV_CALENDAR_RESCHEDULED:
		if (bk_get_ts(&x->v, p, "start_ts", true, &o->start_ts) < 0 ||
		    bk_get_ts(&x->v, p, "end_ts", true, &o->end_ts) < 0)
			return -1;
		return 0;
	case BK_EV_CARD:
		return ev_card(x);
	case BK_EV_ORDER_ARCHIVED:
		return ev_archived(x);
	case BK_EV__COUNT:
		break;
	}
	return fail(x, "%s", "unknown event type");
}

static int seen_add(bk_order *o, const char *id)
{
	return bk_idset_add(&o->seen, bk_id_fingerprint(id, strlen(id)) | 1) < 0 ? -1 : 0;
}

int bk_evolve(bk_order *o, const bk_event *e, char *err, size_t errsz)
{
	ectx x = {.o = o, .e = e, .v = {err, errsz, "payload"}};
	/* what bk_codec_record_decode guarantees, checked for events built elsewhere */
	if (e->event_id == NULL || e->order_id == NULL || e->command_id == NULL)
		return fail(&x, "%s", "event without event_id, order_id or command_id");
	if (e->seq != o->version + 1)
		return fail(&x, "%s", "does not follow the order's version");
	if (memcmp(e->prev_hash, bk_order_last_hash(o), BK_HASH_LEN) != 0)
		return fail(&x, "%s", "prev_hash does not link to the order's last hash");
	if (e->payload.type != MSGPACK_OBJECT_MAP)
		return fail(&x, "%s", "payload is not a map");
	/* reserve bookkeeping space first, so a later failure leaves nothing half-done */
	if ((uint64_t)e->seq > o->cap_hashes) {
		uint32_t cap = o->cap_hashes ? o->cap_hashes * 2 : 8;
		void *h = realloc(o->hashes, (size_t)cap * BK_HASH_LEN);
		if (!h)
			return oom(&x);
		o->hashes = h;
		o->cap_hashes = cap;
	}
	/* the events of one command share its id: fingerprint it once */
	if (strcmp(o->last_command_id, e->command_id) != 0) {
		if (seen_add(o, e->command_id) < 0)
			return oom(&x);
		snprintf(o->last_command_id, sizeof(o->last_command_id), "%s", e->command_id);
	}
	/* an older schema is brought to the current one (its hash stays the stored one), a
	 * money event's currency held against the order's; a newer one is not applied */
	int rc = 0;
	bk_event up;
	uint32_t cur = bk_event_version(e);
	if (e->schema != cur || bk_event_is_money(e)) {
		char why[160];
		msgpack_zone *z = e->schema < cur ? ez(&x) : NULL;
		bk_upcast_ctx uc = {o->currency};
		up = *e;
		if (e->schema < cur && z == NULL)
			rc = oom(&x);
		else if (bk_upcast(&up, &uc, z, why, sizeof(why)) < 0)
			rc = fail(&x, "%s", why);
		x.e = &up;
	}
	if (rc == 0)
		rc = apply(&x);
	if (x.z)
		msgpack_zone_destroy(x.z);
	if (rc < 0)
		return -1;
	memcpy(o->hashes[e->seq - 1], e->hash, BK_HASH_LEN);
	o->version = e->seq;
	o->last_event_at = e->created_at;
	return 0;
}
