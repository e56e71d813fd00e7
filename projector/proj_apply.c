/*
 * proj_apply.c - the mapping from timeline events to read-model rows. Each handler first
 * reads every payload field it needs (any of which may be missing: the event is then
 * poison), then writes images; business times (the event's created_at) are the only
 * times written, so projecting the same log twice gives the same rows.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bk_codec.h"
#include "bk_schema.h"
#include "bk_time.h"
#include "bk_upcast.h"
#include "proj_apply.h"
#include "proj_json.h"

const char pa_price_sql[] =
    "update ord.order o set price_snapshot = jsonb_build_object("
    "'currency', b.currency, "
    "'line_items', coalesce((select jsonb_agg(jsonb_build_object('id', li.id, 'kind', li.kind, "
    "'title', li.title, 'qty', li.qty, 'unit_cents', li.unit_cents, 'total_cents', "
    "li.total_cents) order by li.list_pos, li.id) from booking.line_item li "
    "where li.order_id = o.order_id), '[]'::jsonb), "
    "'subtotal_cents', b.subtotal_cents, 'platform_fee_cents', b.platform_fee_cents, "
    "'tax_cents', b.tax_cents, 'tip_cents', b.tip_cents, 'total_cents', b.total_cents) "
    "from booking.order b where b.order_id = o.order_id and o.order_id = any($1::text[])";

typedef struct actx {
	pr_store *s;
	const bk_event *e;
	pa_order *o;
	const bk_val *p; /* payload */
	char *err;
	size_t errsz;
	const char *at; /* the event's created_at as text */
	bk_vctx v;	/* core's getters: messages into err, paths from "payload" */
} actx;

BK_PRINTF(2, 3) static void set_err(actx *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->err, x->errsz, fmt, ap);
	va_end(ap);
}

/* Sets the error text and is -1. A macro, not a function, so that the -1 is visible to
 * the static analyzer, which does not follow variadic calls: it would otherwise assume
 * that a failed reader returned 0 and left its output NULL or unset. */
#define fail(x, ...) (set_err((x), __VA_ARGS__), -1)

static int oom(actx *x)
{
	return fail(x, "out of memory");
}

/* --- payload readers: core's typed getters (bk_val.h), values as arena text ---------- */

/* A string field; NULL in *ret when absent or nil (an error when req). */
static int get_str(actx *x, const bk_val *map, const char *key, bool req, const char **ret)
{
	const char *s;
	size_t n;
	*ret = NULL;
	if (bk_get_str(&x->v, map, key, req, &s, &n) < 0)
		return -1;
	if (!s) /* absent: bk_get_str refused it when required (said again for the analyzer) */
		return req ? fail(x, "payload.%s: is required", key) : 0;
	if (!(*ret = pr_strdup(x->s, s, n)))
		return oom(x);
	return 0;
}

/* An integer field as decimal text. */
static int get_int(actx *x, const bk_val *map, const char *key, bool req, const char **ret)
{
	int64_t v;
	bool present;
	char buf[32];
	*ret = NULL;
	if (bk_get_int(&x->v, map, key, req, &v, &present) < 0)
		return -1;
	if (!present)
		return 0;
	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	if (!(*ret = pr_strdup(x->s, buf, strlen(buf))))
		return oom(x);
	return 0;
}

/* An optional number (integer or float) as text. */
static int get_num(actx *x, const bk_val *map, const char *key, const char **ret)
{
	double d;
	bool present;
	char buf[48];
	*ret = NULL;
	if (bk_get_num(&x->v, map, key, false, &d, &present) < 0)
		return -1;
	if (!present)
		return 0;
	snprintf(buf, sizeof(buf), "%.15g", d);
	if (!(*ret = pr_strdup(x->s, buf, strlen(buf))))
		return oom(x);
	return 0;
}

/* A timestamp field (RFC 3339 text), normalised to UTC text. */
static int get_ts(actx *x, const bk_val *map, const char *key, bool req, const char **ret)
{
	int64_t us;
	char buf[40];
	*ret = NULL;
	if (bk_get_ts(&x->v, map, key, req, &us) < 0)
		return -1;
	if (us == BK_TS_NONE)
		return 0;
	bk_ts_format(us, buf, sizeof(buf));
	if (!(*ret = pr_strdup(x->s, buf, strlen(buf))))
		return oom(x);
	return 0;
}

static int get_map(actx *x, const bk_val *map, const char *key, bool req, const bk_val **ret)
{
	return bk_get_map(&x->v, map, key, req, ret);
}

static int get_arr(actx *x, const bk_val *map, const char *key, const bk_val **ret)
{
	return bk_get_arr(&x->v, map, key, true, ret);
}

/* A JSON text of j (consumed), in the arena. */
static int json_text(actx *x, json_t *j, const char **ret)
{
	if (!j)
		return fail(x, "a payload value has no JSON form");
	char *t = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
	json_decref(j);
	if (!t)
		return oom(x);
	*ret = pr_strdup(x->s, t, strlen(t));
	free(t);
	return *ret ? 0 : oom(x);
}

/* v's JSON text in the arena, streamed (proj_json); "{}" for no value. */
static int val_json(actx *x, const bk_val *v, const char **ret)
{
	if (!v) {
		*ret = "{}";
		return 0;
	}
	char stack[4096];
	pj_buf b;
	pj_buf_init(&b, stack, sizeof(stack));
	int rc = pj_val_json(v, &b);
	if (rc < 0)
		rc = fail(x, "a payload value has no JSON form");
	else if (!(*ret = pr_strdup(x->s, b.p, b.n)))
		rc = oom(x);
	pj_buf_free(&b);
	return rc;
}

/* --- row helpers --------------------------------------------------------------------- */

#define SET(r, c, v)                                                                               \
	do {                                                                                       \
		if (!pr_set(x->s, (r), (c), (v)))                                                  \
			return oom(x);                                                             \
	} while (0)

static int row(actx *x, pr_table t, const char *k0, const char *k1, bool is_new, pr_row **ret)
{
	const char *pk[2] = {k0, k1};
	return pr_row_get(x->s, t, pk, x->e->order_id, is_new, ret, x->err, x->errsz);
}

/* The order's two rows, touched by every event (updated_at). */
static int orders(actx *x, pr_row **bo, pr_row **oo)
{
	if (row(x, PR_BORDER, x->e->order_id, NULL, false, bo) < 0 ||
	    row(x, PR_OORDER, x->e->order_id, NULL, false, oo) < 0)
		return -1;
	SET(*bo, BO_UPDATED, x->at);
	SET(*oo, OO_UPDATED, x->at);
	return 0;
}

typedef struct li_text {
	const char *id, *kind, *title, *qty, *unit, *total;
} li_text;

static int li_read(actx *x, const bk_val *it, li_text *ret)
{
	if (it->type != MSGPACK_OBJECT_MAP)
		return fail(x, "payload line item: expected a map");
	if (get_str(x, it, "id", true, &ret->id) < 0 ||
	    get_str(x, it, "kind", true, &ret->kind) < 0 ||
	    get_str(x, it, "title", true, &ret->title) < 0 ||
	    get_int(x, it, "qty", true, &ret->qty) < 0 ||
	    get_int(x, it, "unit_cents", true, &ret->unit) < 0 ||
	    get_int(x, it, "total_cents", true, &ret->total) < 0)
		return -1;
	return 0;
}

static int li_write(actx *x, const li_text *l, uint32_t idx)
{
	pr_row *r;
	if (row(x, PR_LINE_ITEM, l->id, NULL, true, &r) < 0)
		return -1;
	SET(r, LI_KIND, l->kind);
	SET(r, LI_TITLE, l->title);
	SET(r, LI_QTY, l->qty);
	SET(r, LI_UNIT, l->unit);
	SET(r, LI_TOTAL, l->total);
	if (!pr_setf(x->s, r, LI_POS, "%lld", (long long)x->e->seq * 1000 + idx))
		return oom(x);
	return 0;
}

/* Line items of an array field: read all, then write all (appended to the order's list). */
static int items(actx *x, const bk_val *arr, uint32_t first_idx)
{
	uint32_t n = arr->via.array.size;
	if (n > 999)
		return fail(x, "payload.line_items: more than 999 items");
	li_text *v = n ? calloc(n, sizeof(*v)) : NULL;
	if (n && !v)
		return oom(x);
	int rc = 0;
	for (uint32_t i = 0; i < n && rc == 0; i++)
		rc = li_read(x, &arr->via.array.ptr[i], &v[i]);
	for (uint32_t i = 0; i < n && rc == 0; i++)
		rc = li_write(x, &v[i], first_idx + i);
	free(v);
	return rc;
}

typedef struct totals_text {
	const char *sub, *fee, *tax, *tip, *total;
} totals_text;

static int totals_read(actx *x, totals_text *t)
{
	const bk_val *m;
	if (get_map(x, x->p, "totals", true, &m) < 0 ||
	    get_int(x, m, "subtotal_cents", true, &t->sub) < 0 ||
	    get_int(x, m, "platform_fee_cents", true, &t->fee) < 0 ||
	    get_int(x, m, "tax_cents", true, &t->tax) < 0 ||
	    get_int(x, m, "tip_cents", true, &t->tip) < 0 ||
	    get_int(x, m, "total_cents", true, &t->total) < 0)
		return -1;
	return 0;
}

/* Money columns from a totals map; the price snapshot is recomputed after the batch. */
static int totals_write(actx *x, pr_row *bo, const totals_text *t)
{
	SET(bo, BO_SUBTOTAL, t->sub);
	SET(bo, BO_FEE, t->fee);
	SET(bo, BO_TAX, t->tax);
	SET(bo, BO_TIP, t->tip);
	SET(bo, BO_TOTAL, t->total);
	if (!pr_price_dirty(x->s, x->e->order_id))
		return oom(x);
	return 0;
}

/* --- handlers ----------------------------------------------------------------------- */

static int ev_created(actx *x)
{
	const bk_val *p = x->p, *loc, *li, *policy;
	const char *mode, *buyer, *prov, *sp, *pkg, *role, *city, *lic, *start, *end, *tz, *cur,
	    *kind, *miles, *loc_json, *policy_json;
	totals_text t;
	if (get_str(x, p, "mode", true, &mode) < 0 ||
	    get_str(x, p, "buyer_user_id", true, &buyer) < 0 ||
	    get_str(x, p, "provider_user_id", false, &prov) < 0 ||
	    get_str(x, p, "service_profile_id", false, &sp) < 0 ||
	    get_str(x, p, "package_id", false, &pkg) < 0 ||
	    get_str(x, p, "role_code", true, &role) < 0 ||
	    get_str(x, p, "city", false, &city) < 0 ||
	    get_str(x, p, "license_tier", false, &lic) < 0 ||
	    get_ts(x, p, "start_ts", true, &start) < 0 || get_ts(x, p, "end_ts", true, &end) < 0 ||
	    get_str(x, p, "timezone", true, &tz) < 0 || get_str(x, p, "currency", true, &cur) < 0 ||
	    get_map(x, p, "location", true, &loc) < 0 || get_str(x, loc, "kind", true, &kind) < 0 ||
	    get_num(x, p, "travel_miles", &miles) < 0 || get_arr(x, p, "line_items", &li) < 0 ||
	    get_map(x, p, "policy", true, &policy) < 0 || totals_read(x, &t) < 0 ||
	    val_json(x, policy, &policy_json) < 0)
		return -1;
	/* location_json: {kind, city, lat, lng}; the address joins it on confirmation */
	json_t *lj = bk_val_to_json(loc);
	if (!lj || !json_is_object(lj)) {
		json_decref(lj);
		return fail(x, "payload.location: no JSON form");
	}
	json_object_del(lj, "address");
	if (city)
		json_object_set_new(lj, "city", json_string(city));
	if (json_text(x, lj, &loc_json) < 0)
		return -1;
	if (strlen(buyer) >= BK_ID_MAX || (prov && strlen(prov) >= BK_ID_MAX))
		return fail(x, "payload: user id too long");

	pr_row *bo, *oo, *lk;
	if (row(x, PR_BORDER, x->e->order_id, NULL, true, &bo) < 0 ||
	    row(x, PR_OORDER, x->e->order_id, NULL, true, &oo) < 0 ||
	    row(x, PR_LOCK, x->e->order_id, NULL, true, &lk) < 0)
		return -1;
	SET(bo, BO_BUYER, buyer);
	SET(bo, BO_PROVIDER, prov);
	SET(bo, BO_SP, sp);
	SET(bo, BO_PACKAGE, pkg);
	SET(bo, BO_MODE, mode);
	SET(bo, BO_STATUS, bk_status_name(BK_ST_INITIATED));
	SET(bo, BO_CITY, city);
	SET(bo, BO_START, start);
	SET(bo, BO_END, end);
	SET(bo, BO_LOC_KIND, kind);
	SET(bo, BO_LOC_ADDR, NULL); /* revealed on confirmation */
	SET(bo, BO_TRAVEL, miles);
	SET(bo, BO_LICENSE, lic);
	SET(bo, BO_CURRENCY, cur);
	SET(bo, BO_CREATED, x->at);
	SET(bo, BO_UPDATED, x->at);
	if (totals_write(x, bo, &t) < 0)
		return -1;
	SET(oo, OO_BUYER, buyer);
	SET(oo, OO_PROVIDER, prov);
	SET(oo, OO_ROLE, role);
	SET(oo, OO_START, start);
	SET(oo, OO_END, end);
	SET(oo, OO_TZ, tz);
	SET(oo, OO_LOCATION, loc_json);
	SET(oo, OO_POLICY, policy_json);
	SET(oo, OO_PRICE, "{}"); /* recomputed after the batch (pa_price_sql) */
	SET(oo, OO_STATE, bk_ostate_name(bk_ostate_of(BK_ST_INITIATED)));
	SET(oo, OO_CREATED, x->at);
	SET(oo, OO_UPDATED, x->at);
	SET(lk, LK_VERSION, "0");
	if (items(x, li, 0) < 0)
		return -1;
	x->o->status = BK_ST_INITIATED;
	snprintf(x->o->buyer, sizeof(x->o->buyer), "%s", buyer);
	snprintf(x->o->provider, sizeof(x->o->provider), "%s", prov ? prov : "");
	snprintf(x->o->currency, sizeof(x->o->currency), "%s", cur);
	return 0;
}

static int ev_status(actx *x)
{
	const char *from, *chat = NULL, *addr = NULL;
	if (get_str(x, x->p, "from", true, &from) < 0)
		return -1;
	int f = bk_status_from(from, strlen(from));
	if (f != x->o->status)
		return fail(x, "the order is %s, not the event's from-status %s",
			    bk_status_name((bk_status)x->o->status), from);
	if (x->e->sub >= BK_ST__COUNT)
		return fail(x, "unknown status %u", x->e->sub);
	bk_status to = (bk_status)x->e->sub;
	if (to == BK_ST_CONFIRMED && (get_str(x, x->p, "chat_thread_id", false, &chat) < 0 ||
				      get_str(x, x->p, "location_address", false, &addr) < 0))
		return -1;
	pr_row *bo, *oo;
	if (orders(x, &bo, &oo) < 0)
		return -1;
	SET(bo, BO_STATUS, bk_status_name(to));
	SET(oo, OO_STATE, bk_ostate_name(bk_ostate_of(to)));
	if (to == BK_ST_CONFIRMED) {
		if (chat)
			SET(bo, BO_CHAT, chat);
		if (addr) {
			SET(bo, BO_LOC_ADDR, addr);
			/* location_json gains the address: merged into a new row's full object,
			 * or a patch {address} merged (||) into the stored one */
			json_t *j = NULL;
			if (oo->is_new && oo->v[OO_LOCATION])
				j = json_loads(oo->v[OO_LOCATION], 0, NULL);
			if (!j)
				j = json_object();
			const char *lj;
			json_object_set_new(j, "address", json_string(addr));
			if (json_text(x, j, &lj) < 0)
				return -1;
			SET(oo, OO_LOCATION, lj);
		}
	}
	x->o->status = (int)to;
	return 0;
}

static int ev_request_new(actx *x, bool invite)
{
	const char *id, *mode, *msg, *exp;
	const bk_val *rcps = NULL;
	if (get_str(x, x->p, invite ? "invite_id" : "request_id", true, &id) < 0 ||
	    get_str(x, x->p, "message", false, &msg) < 0 ||
	    get_ts(x, x->p, "expires_at", false, &exp) < 0)
		return -1;
	mode = invite ? "INVITE" : NULL;
	if (!invite && get_str(x, x->p, "mode", true, &mode) < 0)
		return -1;
	if (invite) {
		if (get_arr(x, x->p, "recipients", &rcps) < 0)
			return -1;
		for (uint32_t i = 0; i < rcps->via.array.size; i++)
			if (rcps->via.array.ptr[i].type != MSGPACK_OBJECT_STR)
				return fail(x, "payload.recipients[%u]: expected a string", i);
	}
	pr_row *r, *bo, *oo;
	if (orders(x, &bo, &oo) < 0 || row(x, PR_REQUEST, id, NULL, true, &r) < 0)
		return -1;
	SET(r, RQ_MODE, mode);
	SET(r, RQ_BUYER, x->o->buyer);
	SET(r, RQ_PROVIDER, x->o->provider[0] ? x->o->provider : NULL);
	SET(r, RQ_STATUS, "pending");
	SET(r, RQ_MESSAGE, msg);
	SET(r, RQ_EXPIRES, exp);
	SET(r, RQ_CREATED, x->at);
	for (uint32_t i = 0; rcps && i < rcps->via.array.size; i++) {
		const bk_val *u = &rcps->via.array.ptr[i];
		const char *uid = pr_strdup(x->s, u->via.str.ptr, u->via.str.size);
		pr_row *rc;
		if (!uid)
			return oom(x);
		if (row(x, PR_RECIPIENT, id, uid, true, &rc) < 0)
			return -1;
		SET(rc, RC_STATUS, "new");
	}
	return 0;
}

/* request.accepted / declined / countered / counter_accepted / counter_declined / expired */
static int ev_request(actx *x, const char *status)
{
	const char *id, *exp = NULL;
	const bk_val *li = NULL;
	totals_text t;
	if (get_str(x, x->p, "request_id", true, &id) < 0)
		return -1;
	if (x->e->type == BK_EV_REQUEST_COUNTERED && get_ts(x, x->p, "expires_at", false, &exp) < 0)
		return -1;
	if (x->e->type == BK_EV_REQUEST_COUNTER_ACCEPTED &&
	    (get_arr(x, x->p, "line_items", &li) < 0 || totals_read(x, &t) < 0))
		return -1;
	pr_row *r, *bo, *oo;
	if (orders(x, &bo, &oo) < 0 || row(x, PR_REQUEST, id, NULL, false, &r) < 0)
		return -1;
	SET(r, RQ_STATUS, status);
	if (exp)
		SET(r, RQ_EXPIRES, exp);
	if (li) {
		/* the offer's line items replace the order's */
		if (!pr_replace_items(x->s, x->e->order_id))
			return oom(x);
		if (items(x, li, 0) < 0 || totals_write(x, bo, &t) < 0)
			return -1;
	}
	return 0;
}

static int ev_invite_responded(actx *x)
{
	const char *id, *uid;
	pr_row *rc, *bo, *oo;
	if (get_str(x, x->p, "invite_id", true, &id) < 0 ||
	    get_str(x, x->p, "recipient_user_id", true, &uid) < 0)
		return -1;
	if (orders(x, &bo, &oo) < 0 || row(x, PR_RECIPIENT, id, uid, false, &rc) < 0)
		return -1;
	SET(rc, RC_STATUS, "responded");
	return 0;
}

static int ev_invite_awarded(actx *x)
{
	const char *id, *uid, *sp;
	const bk_val *others;
	if (get_str(x, x->p, "invite_id", true, &id) < 0 ||
	    get_str(x, x->p, "recipient_user_id", true, &uid) < 0 ||
	    get_str(x, x->p, "service_profile_id", true, &sp) < 0 ||
	    get_arr(x, x->p, "not_awarded", &others) < 0)
		return -1;
	if (strlen(uid) >= BK_ID_MAX)
		return fail(x, "payload.recipient_user_id: too long");
	for (uint32_t i = 0; i < others->via.array.size; i++)
		if (others->via.array.ptr[i].type != MSGPACK_OBJECT_STR)
			return fail(x, "payload.not_awarded[%u]: expected a string", i);
	pr_row *r, *rc, *bo, *oo;
	if (orders(x, &bo, &oo) < 0 || row(x, PR_REQUEST, id, NULL, false, &r) < 0 ||
	    row(x, PR_RECIPIENT, id, uid, false, &rc) < 0)
		return -1;
	SET(rc, RC_STATUS, "awarded");
	for (uint32_t i = 0; i < others->via.array.size; i++) {
		const bk_val *u = &others->via.array.ptr[i];
		const char *oid = pr_strdup(x->s, u->via.str.ptr, u->via.str.size);
		pr_row *orc;
		if (!oid)
			return oom(x);
		if (row(x, PR_RECIPIENT, id, oid, false, &orc) < 0)
			return -1;
		SET(orc, RC_STATUS, "not_awarded");
	}
	SET(r, RQ_STATUS, "accepted");
	SET(r, RQ_PROVIDER, uid);
	SET(bo, BO_PROVIDER, uid);
	SET(bo, BO_SP, sp);
	SET(oo, OO_PROVIDER, uid);
	snprintf(x->o->provider, sizeof(x->o->provider), "%s", uid);
	return 0;
}

static int ev_payment(actx *x)
{
	const char *pi, *tg;
	pr_row *bo, *oo;
	if (get_str(x, x->p, "payment_intent_id", true, &pi) < 0 ||
	    get_str(x, x->p, "transfer_group", false, &tg) < 0 || orders(x, &bo, &oo) < 0)
		return -1;
	SET(bo, BO_PI, pi);
	if (tg)
		SET(bo, BO_TG, tg);
	return 0;
}

static int ev_refund(actx *x)
{
	const bk_val *li;
	li_text l;
	totals_text t;
	pr_row *bo, *oo;
	if (get_map(x, x->p, "line_item", true, &li) < 0 || li_read(x, li, &l) < 0 ||
	    totals_read(x, &t) < 0 || orders(x, &bo, &oo) < 0)
		return -1;
	if (li_write(x, &l, 0) < 0 || totals_write(x, bo, &t) < 0)
		return -1;
	return 0;
}

static int ev_tip(actx *x)
{
	totals_text t;
	pr_row *bo, *oo;
	if (totals_read(x, &t) < 0 || orders(x, &bo, &oo) < 0)
		return -1;
	return totals_write(x, bo, &t);
}

static int ev_dispute(actx *x)
{
	const char *id, *opened_by = NULL, *reason = NULL, *desc = NULL, *status = NULL;
	bool open = x->e->type == BK_EV_DISPUTE_OPENED;
	if (get_str(x, x->p, "dispute_id", true, &id) < 0)
		return -1;
	if (open) {
		const bk_val *rv = bk_map_get(x->p, "reason");
		if (get_str(x, x->p, "opened_by", true, &opened_by) < 0 ||
		    get_str(x, x->p, "description", false, &desc) < 0)
			return -1;
		if (rv && rv->type != MSGPACK_OBJECT_STR) {
			if (val_json(x, rv, &reason) < 0) /* a card's free-form reason */
				return -1;
		} else if (get_str(x, x->p, "reason", true, &reason) < 0) {
			return -1;
		}
		status = "open";
	} else if (get_str(x, x->p, x->e->type == BK_EV_DISPUTE_UPDATED ? "status" : "outcome",
			   true, &status) < 0) {
		return -1;
	}
	pr_row *d, *bo, *oo;
	if (orders(x, &bo, &oo) < 0 || row(x, PR_DISPUTE, id, NULL, open, &d) < 0)
		return -1;
	if (open) {
		SET(d, DS_OPENED_BY, opened_by);
		SET(d, DS_REASON, reason);
		SET(d, DS_DESCRIPTION, desc);
		SET(d, DS_CREATED, x->at);
	}
	SET(d, DS_STATUS, status);
	SET(d, DS_UPDATED, x->at);
	return 0;
}

static int ev_milestone(actx *x)
{
	const char *id, *title = NULL, *due = NULL, *amount = NULL;
	bool add = x->e->type == BK_EV_MILESTONE_ADDED;
	if (get_str(x, x->p, "milestone_id", true, &id) < 0)
		return -1;
	if (add && (get_str(x, x->p, "title", true, &title) < 0 ||
		    get_ts(x, x->p, "due_ts", false, &due) < 0 ||
		    get_int(x, x->p, "amount_cents", true, &amount) < 0))
		return -1;
	if (!add && x->e->sub >= BK_MS__COUNT)
		return fail(x, "unknown milestone state %u", x->e->sub);
	pr_row *m, *bo, *oo;
	if (orders(x, &bo, &oo) < 0 || row(x, PR_MILESTONE, id, NULL, add, &m) < 0)
		return -1;
	if (add) {
		SET(m, MS_TITLE, title);
		SET(m, MS_DUE, due);
		SET(m, MS_AMOUNT, amount);
	}
	SET(m, MS_STATUS, add ? "open" : bk_ms_state_name((bk_ms_state)x->e->sub));
	return 0;
}

static int ev_rescheduled(actx *x)
{
	const char *start, *end;
	pr_row *bo, *oo;
	if (get_ts(x, x->p, "start_ts", true, &start) < 0 ||
	    get_ts(x, x->p, "end_ts", true, &end) < 0 || orders(x, &bo, &oo) < 0)
		return -1;
	SET(bo, BO_START, start);
	SET(bo, BO_END, end);
	SET(oo, OO_START, start);
	SET(oo, OO_END, end);
	return 0;
}

static int ev_card(actx *x)
{
	const char *id, *created_by = NULL, *due = NULL, *exp = NULL, *terms = NULL;
	const char *resp_id = NULL, *action = NULL, *responder = NULL, *resp_payload = NULL;
	const char *superseded_by = NULL;
	const bk_val *tv = NULL, *li = NULL;
	totals_text t;
	bk_card_verb verb = (bk_card_verb)x->e->sub;
	if (x->e->card_type >= BK_CT__COUNT || verb >= BK_CV__COUNT)
		return fail(x, "unknown card type or verb");
	if (get_str(x, x->p, "card_id", true, &id) < 0)
		return -1;
	if (verb == BK_CV_PROPOSED) {
		if (get_str(x, x->p, "created_by", true, &created_by) < 0 ||
		    get_ts(x, x->p, "due_at", false, &due) < 0 ||
		    get_ts(x, x->p, "expires_at", false, &exp) < 0 ||
		    get_map(x, x->p, "payload", true, &tv) < 0 || val_json(x, tv, &terms) < 0)
			return -1;
	} else {
		if (get_str(x, x->p, "response_id", false, &resp_id) < 0 ||
		    get_str(x, x->p, "superseded_by", false, &superseded_by) < 0)
			return -1;
		if (resp_id && (get_str(x, x->p, "action", true, &action) < 0 ||
				get_str(x, x->p, "responder_user_id", true, &responder) < 0 ||
				val_json(x, bk_map_get(x->p, "payload"), &resp_payload) < 0))
			return -1;
		if (verb == BK_CV_ACCEPTED && bk_map_get(x->p, "line_items") &&
		    (get_arr(x, x->p, "line_items", &li) < 0 || totals_read(x, &t) < 0))
			return -1;
		if (verb == BK_CV_SUPERSEDED && !superseded_by)
			return fail(x, "payload.superseded_by: missing");
	}
	pr_row *c, *bo, *oo;
	if (orders(x, &bo, &oo) < 0 || row(x, PR_CARD, id, NULL, verb == BK_CV_PROPOSED, &c) < 0)
		return -1;
	switch (verb) {
	case BK_CV_PROPOSED:
		SET(c, CD_TYPE, bk_card_type_name((bk_card_type)x->e->card_type));
		SET(c, CD_STATE, "open");
		SET(c, CD_CREATED_BY, created_by);
		SET(c, CD_DUE, due);
		SET(c, CD_EXPIRES, exp);
		SET(c, CD_PAYLOAD, terms);
		SET(c, CD_CREATED, x->at);
		break;
	case BK_CV_ACCEPTED:
	case BK_CV_DECLINED:
	case BK_CV_SUPERSEDED:
	case BK_CV_CANCELLED:
	case BK_CV_EXPIRED:
	case BK_CV_CLOSED: {
		static const bk_card_state to[BK_CV__COUNT] = {
		    [BK_CV_ACCEPTED] = BK_CS_ACCEPTED,	   [BK_CV_DECLINED] = BK_CS_DECLINED,
		    [BK_CV_SUPERSEDED] = BK_CS_SUPERSEDED, [BK_CV_CANCELLED] = BK_CS_CANCELLED,
		    [BK_CV_EXPIRED] = BK_CS_EXPIRED,	   [BK_CV_CLOSED] = BK_CS_CLOSED,
		};
		SET(c, CD_STATE, bk_card_state_name(to[verb]));
		break;
	}
	case BK_CV_RESPONDED:
	case BK_CV_EXPIRING:
	case BK_CV__COUNT:
		break;
	}
	if (superseded_by)
		SET(c, CD_SUPERSEDED_BY, superseded_by);
	if (verb != BK_CV_EXPIRING)
		SET(c, CD_UPDATED, x->at);
	if (resp_id) {
		pr_row *r;
		if (row(x, PR_CARD_RESPONSE, resp_id, NULL, true, &r) < 0)
			return -1;
		SET(r, CR_CARD_ID, id);
		SET(r, CR_RESPONDER, responder);
		SET(r, CR_ACTION, action);
		SET(r, CR_PAYLOAD, resp_payload);
		SET(r, CR_CREATED, x->at);
	}
	if (li && (items(x, li, 0) < 0 || totals_write(x, bo, &t) < 0))
		return -1;
	return 0;
}

static int dispatch(actx *x)
{
	switch ((bk_ev_type)x->e->type) {
	case BK_EV_ORDER_CREATED:
		return ev_created(x);
	case BK_EV_ORDER_STATUS:
		return ev_status(x);
	case BK_EV_REQUEST_SUBMITTED:
		return ev_request_new(x, false);
	case BK_EV_INVITE_SENT:
		return ev_request_new(x, true);
	case BK_EV_REQUEST_ACCEPTED:
	case BK_EV_REQUEST_COUNTER_ACCEPTED:
		return ev_request(x, "accepted");
	case BK_EV_REQUEST_DECLINED:
	case BK_EV_REQUEST_COUNTER_DECLINED:
		return ev_request(x, "declined");
	case BK_EV_REQUEST_COUNTERED:
		return ev_request(x, "countered");
	case BK_EV_REQUEST_EXPIRED:
		return ev_request(x, "expired");
	case BK_EV_INVITE_RESPONDED:
		return ev_invite_responded(x);
	case BK_EV_INVITE_AWARDED:
		return ev_invite_awarded(x);
	case BK_EV_PAYMENT_CAPTURED:
		return ev_payment(x);
	case BK_EV_PAYMENT_REFUNDED:
		return ev_refund(x);
	case BK_EV_TIP_ADDED:
		return ev_tip(x);
	case BK_EV_DISPUTE_OPENED:
	case BK_EV_DISPUTE_UPDATED:
	case BK_EV_DISPUTE_RESOLVED:
		return ev_dispute(x);
	case BK_EV_MILESTONE_ADDED:
	case BK_EV_MILESTONE_CHANGED:
		return ev_milestone(x);
	case BK_EV_NOTE_ADDED: {
		pr_row *bo, *oo;
		return orders(x, &bo, &oo);
	}
	case BK_EV_CALENDAR_RESCHEDULED:
		return ev_rescheduled(x);
	case BK_EV_CARD:
		return ev_card(x);
	case BK_EV_ORDER_ARCHIVED: { /* the processor let the order go: it stays here, marked */
		pr_row *bo, *oo;
		if (orders(x, &bo, &oo) < 0)
			return -1;
		SET(bo, BO_ARCHIVED, x->at);
		return 0;
	}
	case BK_EV__COUNT:
		break;
	}
	return fail(x, "unknown event type %u", x->e->type);
}

/* The timeline row and the order's version. */
static int timeline(actx *x)
{
	const bk_event *e = x->e;
	char sub[64], hex[2 * BK_HASH_LEN + 1];
	const char *payload;
	pr_row *r, *lk;
	if (val_json(x, &e->payload, &payload) < 0 ||
	    row(x, PR_TIMELINE, e->event_id, NULL, true, &r) < 0 ||
	    row(x, PR_LOCK, e->order_id, NULL, false, &lk) < 0)
		return -1;
	SET(r, TE_KIND, bk_ev_kind_name(bk_event_kind(e)));
	SET(r, TE_SUBTYPE, bk_event_subtype(e, sub, sizeof(sub)));
	SET(r, TE_ACTOR, e->actor_user_id);
	SET(r, TE_PAYLOAD, payload);
	SET(r, TE_CREATED, x->at);
	if (!pr_setf(x->s, r, TE_SEQ, "%lld", (long long)e->seq) ||
	    !pr_setf(x->s, r, TE_SCHEMA, "%u", e->schema) ||
	    !pr_setf(x->s, lk, LK_VERSION, "%lld", (long long)e->seq))
		return oom(x);
	SET(r, TE_COMMAND_ID, e->command_id);
	bk_hex(e->hash, BK_HASH_LEN, hex);
	if (!pr_setf(x->s, r, TE_HASH, "\\x%s", hex))
		return oom(x);
	bk_hex(e->prev_hash, BK_HASH_LEN, hex);
	if (!pr_setf(x->s, r, TE_PREV_HASH, "\\x%s", hex))
		return oom(x);
	SET(lk, LK_UPDATED, x->at);
	return 0;
}

/* e at the current schema of its type: as it is, or upcast into *up (payload in z, made
 * on first use) with the order's facts. 0 or -1 (err). */
static int upcast(actx *x, bk_event *up, msgpack_zone *z, bool *ret_zone)
{
	uint32_t cur = bk_event_version(x->e);
	if (x->e->schema == cur && !bk_event_is_money(x->e))
		return 0;
	char why[200];
	bk_upcast_ctx uc = {x->o->currency};
	*up = *x->e;
	if (x->e->schema < cur) {
		if (!msgpack_zone_init(z, 512))
			return oom(x);
		*ret_zone = true;
	}
	if (bk_upcast(up, &uc, *ret_zone ? z : NULL, why, sizeof(why)) < 0)
		return fail(x, "%s", why);
	x->e = up;
	x->p = &up->payload;
	return 0;
}

int pa_apply(pr_store *s, const bk_event *e, pa_order *o, char *err, size_t errsz)
{
	char at[40];
	pa_order saved = *o;
	actx x = {s, e, o, &e->payload, err, errsz, at, {err, errsz, "payload"}};
	if (e->payload.type != MSGPACK_OBJECT_MAP)
		return fail(&x, "payload: expected a map");
	if (e->type == BK_EV_ORDER_CREATED) {
		if (o->status >= 0)
			return fail(&x, "order.created for an order the read model holds");
	} else if (o->status < 0) {
		return fail(&x, "the order is not in the read model (no order.created applied)");
	}
	bk_ts_format(e->created_at, at, sizeof(at));
	bk_event up;
	msgpack_zone z;
	bool zone = false;
	int rc = upcast(&x, &up, &z, &zone);
	if (rc == 0)
		rc = dispatch(&x);
	if (rc == 0)
		rc = timeline(&x);
	if (zone)
		msgpack_zone_destroy(&z);
	if (rc < 0)
		*o = saved;
	return rc;
}
