/*
 * proj_apply.c - the mapping from timeline events to read-model rows, in two parts:
 *  - per event type, code for what the event does to the rows' structure: which rows it
 *    creates or patches, statuses and states, times, the documents derived from several
 *    fields (location_json, the price snapshot), one row per element of an array;
 *  - one copy for every payload field whose schema row (core/bk_schema.c, BK_P_COPY)
 *    names a column: its value, written by its type, into the row of that table the code
 *    chose (pr_field_targets). A field gets a column with a schema row and a migration.
 * A field missing or of the wrong type makes the event poison. Business times (the
 * event's created_at) are the only times written, so projecting the same log twice gives
 * the same rows.
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
	const char *at;		 /* the event's created_at as text */
	bk_vctx v;		 /* core's getters: messages into err, paths from "payload" */
	pr_row *rows[PR__COUNT]; /* per table the row this event writes (its first) */
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

/* The image of table t's row (k0, k1); the first of a table is the event's row there,
 * the one its fields are copied into. */
static int row(actx *x, pr_table t, const char *k0, const char *k1, bool is_new, pr_row **ret)
{
	const char *pk[2] = {k0, k1};
	if (pr_row_get(x->s, t, pk, x->e->order_id, is_new, ret, x->err, x->errsz) < 0)
		return -1;
	if (!x->rows[t])
		x->rows[t] = *ret;
	return 0;
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

/* --- the copy of fields into columns, driven by the schema table ---------------------- */

/* The value v of field f (present, not nil) as its column's text. */
static int value_text(actx *x, const bk_field *f, const bk_val *v, const char **ret)
{
	const char *s = NULL;
	size_t n = 0;
	char buf[48];
	int64_t i;
	double d;
	bool present;
	*ret = NULL;
	switch ((bk_ftype)f->type) {
	case BK_F_ANY: /* text as it is (a dispute's reason), any other value as JSON */
		if (v->type != MSGPACK_OBJECT_STR)
			return val_json(x, v, ret);
		/* fall through */
	case BK_F_STR:
	case BK_F_ID:
		if (bk_take_str(&x->v, v, f->key, true, &s, &n) < 0)
			return -1;
		break;
	case BK_F_CENTS:
		if (bk_take_int(&x->v, v, f->key, true, &i, &present) < 0)
			return -1;
		n = (size_t)snprintf(buf, sizeof(buf), "%lld", (long long)i);
		s = buf;
		break;
	case BK_F_NUM:
		if (bk_take_num(&x->v, v, f->key, true, &d, &present) < 0)
			return -1;
		n = (size_t)snprintf(buf, sizeof(buf), "%.15g", d);
		s = buf;
		break;
	case BK_F_TS:
		if (bk_take_ts(&x->v, v, f->key, true, &i) < 0)
			return -1;
		bk_ts_format(i, buf, sizeof(buf));
		n = strlen(buf);
		s = buf;
		break;
	case BK_F_MAP: {
		const bk_val *m;
		if (bk_take_map(&x->v, v, f->key, true, &m) < 0)
			return -1;
		return val_json(x, m, ret);
	}
	case BK_F_STRS:
	case BK_F_ITEMS:
	case BK_F_ITEM:
	case BK_F_TOTALS:
	case BK_F_LOCATION:
	case BK_F__COUNT:
		return fail(x, "payload.%s: not one column", f->key);
	}
	if (!s || !(*ret = pr_strdup(x->s, s, n)))
		return oom(x);
	return 0;
}

/* The row of schema sc whose key is k, its index in *ret_i; NULL when none. */
static const bk_field *field_of(int sc, const bk_val *k, int *ret_i)
{
	if (k->type != MSGPACK_OBJECT_STR)
		return NULL;
	int i = 0;
	for (const bk_field *f = bk_schemas[sc].fields; f->key; f++, i++)
		if (f->klen == k->via.str.size && memcmp(f->key, k->via.str.ptr, f->klen) == 0) {
			*ret_i = i;
			return f;
		}
	return NULL;
}

_Static_assert(PR_MAX_FIELDS <= 32, "copy_fields keeps the fields it saw in 32 bits");

/* Copy the fields of schema sc that map holds into the columns their rows name, in the
 * rows of rows[]; the parts a field holds (totals, location) likewise. One pass over the
 * payload (the codec refuses a map that repeats a key, so each row is met at most once).
 * A copy into a key column checks that the field names the row the code chose. */
static int copy_fields(actx *x, int sc, const bk_val *map, pr_row *const *rows)
{
	uint32_t seen = 0;
	for (uint32_t j = 0; j < map->via.map.size; j++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[j];
		int i;
		const bk_field *f = field_of(sc, &kv->key, &i);
		if (!f)
			continue;
		seen |= 1u << i;
		if (f->since > x->e->schema || !f->to) /* not projected, nor its parts */
			continue;
		if (kv->val.type == MSGPACK_OBJECT_NIL) {
			if (f->req)
				return fail(x, "payload.%s: is required", f->key);
			continue;
		}
		if (f->type == BK_F_TOTALS || f->type == BK_F_LOCATION) {
			const bk_val *m;
			if (bk_take_map(&x->v, &kv->val, f->key, true, &m) < 0 ||
			    copy_fields(x, bk_ftype_schema((bk_ftype)f->type), m, rows) < 0)
				return -1;
			/* the price snapshot follows the totals (recomputed after the batch) */
			if (f->type == BK_F_TOTALS && !pr_price_dirty(x->s, x->e->order_id))
				return oom(x);
			continue;
		}
		int n;
		const pr_target *tg = pr_field_targets(sc, i, &n);
		const char *v;
		if (n == 0)
			continue;
		if (value_text(x, f, &kv->val, &v) < 0)
			return -1;
		for (int k = 0; k < n; k++) {
			pr_row *r = rows[tg[k].t];
			if (!r)
				return fail(
				    x,
				    "payload.%s: projected to %s.%s, a table the event does "
				    "not write",
				    f->key, pr_def((pr_table)tg[k].t)->name,
				    pr_def((pr_table)tg[k].t)->cols[tg[k].col].name);
			if (!tg[k].key)
				SET(r, tg[k].col, v);
			else if (!r->v[tg[k].col] || strcmp(r->v[tg[k].col], v) != 0)
				return fail(x, "payload.%s: %s is not the %s row the event writes",
					    f->key, v, pr_def((pr_table)tg[k].t)->name);
		}
	}
	/* a projected field the schema requires and the payload lacks */
	int i = 0;
	for (const bk_field *f = bk_schemas[sc].fields; f->key; f++, i++)
		if (f->req && f->to && f->since <= x->e->schema && !(seen & (1u << i)))
			return fail(x, "payload.%s: is required", f->key);
	return 0;
}

/* The copies of the event's own fields: every schema its payload has (the one selection
 * the decoder and the JSON writer use too). */
static int copy_event(actx *x)
{
	bk_payload_schemas ps;
	bk_payload_schemas_of(x->e, &ps);
	for (int i = 0; i < ps.n; i++)
		if (copy_fields(x, ps.top[i], x->p, x->rows) < 0)
			return -1;
	return 0;
}

/* Line items of an array field (or one item): a row each, appended to the order's list;
 * their fields are copied by BK_SC_ITEM's rows. */
static int item(actx *x, const bk_val *it, uint32_t idx)
{
	const char *id;
	pr_row *r, *rows[PR__COUNT] = {0};
	if (it->type != MSGPACK_OBJECT_MAP)
		return fail(x, "payload line item: expected a map");
	if (get_str(x, it, "id", true, &id) < 0 || row(x, PR_LINE_ITEM, id, NULL, true, &r) < 0)
		return -1;
	if (!pr_setf(x->s, r, LI_POS, "%lld", (long long)x->e->seq * 1000 + idx))
		return oom(x);
	rows[PR_LINE_ITEM] = r;
	return copy_fields(x, BK_SC_ITEM, it, rows);
}

static int items(actx *x, const bk_val *arr)
{
	uint32_t n = arr->via.array.size;
	if (n > 999)
		return fail(x, "payload.line_items: more than 999 items");
	for (uint32_t i = 0; i < n; i++)
		if (item(x, &arr->via.array.ptr[i], i) < 0)
			return -1;
	return 0;
}

/* --- handlers: the structure each event type gives the rows -------------------------- */

static int ev_created(actx *x)
{
	const bk_val *p = x->p, *loc, *li;
	const char *buyer, *prov, *city, *cur, *loc_json;
	if (get_str(x, p, "buyer_user_id", true, &buyer) < 0 ||
	    get_str(x, p, "provider_user_id", false, &prov) < 0 ||
	    get_str(x, p, "city", false, &city) < 0 || get_str(x, p, "currency", true, &cur) < 0 ||
	    get_map(x, p, "location", true, &loc) < 0 || get_arr(x, p, "line_items", &li) < 0)
		return -1;
	if (strlen(buyer) >= BK_ID_MAX || (prov && strlen(prov) >= BK_ID_MAX))
		return fail(x, "payload: user id too long");
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

	pr_row *bo, *oo, *lk;
	if (row(x, PR_BORDER, x->e->order_id, NULL, true, &bo) < 0 ||
	    row(x, PR_OORDER, x->e->order_id, NULL, true, &oo) < 0 ||
	    row(x, PR_LOCK, x->e->order_id, NULL, true, &lk) < 0)
		return -1;
	SET(bo, BO_STATUS, bk_status_name(BK_ST_INITIATED));
	SET(bo, BO_CREATED, x->at);
	SET(bo, BO_UPDATED, x->at);
	SET(oo, OO_LOCATION, loc_json);
	SET(oo, OO_PRICE, "{}"); /* recomputed after the batch (pa_price_sql) */
	SET(oo, OO_STATE, bk_ostate_name(bk_ostate_of(BK_ST_INITIATED)));
	SET(oo, OO_CREATED, x->at);
	SET(oo, OO_UPDATED, x->at);
	SET(lk, LK_VERSION, "0");
	if (items(x, li) < 0)
		return -1;
	x->o->status = BK_ST_INITIATED;
	snprintf(x->o->buyer, sizeof(x->o->buyer), "%s", buyer);
	snprintf(x->o->provider, sizeof(x->o->provider), "%s", prov ? prov : "");
	snprintf(x->o->currency, sizeof(x->o->currency), "%s", cur);
	return 0;
}

static int ev_status(actx *x)
{
	const char *from, *addr = NULL;
	if (get_str(x, x->p, "from", true, &from) < 0)
		return -1;
	int f = bk_status_from(from, strlen(from));
	if (f != x->o->status)
		return fail(x, "the order is %s, not the event's from-status %s",
			    bk_status_name((bk_status)x->o->status), from);
	if (x->e->sub >= BK_ST__COUNT)
		return fail(x, "unknown status %u", x->e->sub);
	bk_status to = (bk_status)x->e->sub;
	if (get_str(x, x->p, "location_address", false, &addr) < 0)
		return -1;
	pr_row *bo, *oo;
	if (orders(x, &bo, &oo) < 0)
		return -1;
	SET(bo, BO_STATUS, bk_status_name(to));
	SET(oo, OO_STATE, bk_ostate_name(bk_ostate_of(to)));
	if (addr) {
		/* location_json gains the address: merged into a new row's full object, or a
		 * patch {address} merged (||) into the stored one */
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
	x->o->status = (int)to;
	return 0;
}

static int ev_request_new(actx *x, bool invite)
{
	const char *id, *mode = "INVITE";
	const bk_val *rcps = NULL;
	if (get_str(x, x->p, invite ? "invite_id" : "request_id", true, &id) < 0)
		return -1;
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
	const char *id;
	const bk_val *li = NULL;
	if (get_str(x, x->p, "request_id", true, &id) < 0)
		return -1;
	if (x->e->type == BK_EV_REQUEST_COUNTER_ACCEPTED && get_arr(x, x->p, "line_items", &li) < 0)
		return -1;
	pr_row *r, *bo, *oo;
	if (orders(x, &bo, &oo) < 0 || row(x, PR_REQUEST, id, NULL, false, &r) < 0)
		return -1;
	SET(r, RQ_STATUS, status);
	if (li) { /* the offer's line items replace the order's */
		if (!pr_replace_items(x->s, x->e->order_id))
			return oom(x);
		if (items(x, li) < 0)
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
	const char *id, *uid;
	const bk_val *others;
	if (get_str(x, x->p, "invite_id", true, &id) < 0 ||
	    get_str(x, x->p, "recipient_user_id", true, &uid) < 0 ||
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
	snprintf(x->o->provider, sizeof(x->o->provider), "%s", uid);
	return 0;
}

static int ev_refund(actx *x)
{
	const bk_val *li;
	pr_row *bo, *oo;
	if (get_map(x, x->p, "line_item", true, &li) < 0 || orders(x, &bo, &oo) < 0)
		return -1;
	return item(x, li, 0);
}

static int ev_dispute(actx *x)
{
	const char *id;
	bool open = x->e->type == BK_EV_DISPUTE_OPENED;
	if (get_str(x, x->p, "dispute_id", true, &id) < 0)
		return -1;
	pr_row *d, *bo, *oo;
	if (orders(x, &bo, &oo) < 0 || row(x, PR_DISPUTE, id, NULL, open, &d) < 0)
		return -1;
	if (open) {
		SET(d, DS_STATUS, "open");
		SET(d, DS_CREATED, x->at);
	}
	SET(d, DS_UPDATED, x->at);
	return 0;
}

static int ev_milestone(actx *x)
{
	const char *id;
	bool add = x->e->type == BK_EV_MILESTONE_ADDED;
	if (get_str(x, x->p, "milestone_id", true, &id) < 0)
		return -1;
	if (!add && x->e->sub >= BK_MS__COUNT)
		return fail(x, "unknown milestone state %u", x->e->sub);
	pr_row *m, *bo, *oo;
	if (orders(x, &bo, &oo) < 0 || row(x, PR_MILESTONE, id, NULL, add, &m) < 0)
		return -1;
	SET(m, MS_STATUS, add ? "open" : bk_ms_state_name((bk_ms_state)x->e->sub));
	return 0;
}

static int ev_card(actx *x)
{
	const char *id, *resp_id = NULL, *resp_payload = NULL;
	const bk_val *li = NULL;
	bk_card_verb verb = (bk_card_verb)x->e->sub;
	if (x->e->card_type >= BK_CT__COUNT || verb >= BK_CV__COUNT)
		return fail(x, "unknown card type or verb");
	if (get_str(x, x->p, "card_id", true, &id) < 0)
		return -1;
	if (verb != BK_CV_PROPOSED) {
		if (get_str(x, x->p, "response_id", false, &resp_id) < 0)
			return -1;
		if (resp_id && val_json(x, bk_map_get(x->p, "payload"), &resp_payload) < 0)
			return -1;
		if (verb == BK_CV_ACCEPTED && bk_map_get(x->p, "line_items") &&
		    get_arr(x, x->p, "line_items", &li) < 0)
			return -1;
		if (verb == BK_CV_SUPERSEDED && !bk_map_get(x->p, "superseded_by"))
			return fail(x, "payload.superseded_by: missing");
	}
	pr_row *c, *bo, *oo;
	if (orders(x, &bo, &oo) < 0 || row(x, PR_CARD, id, NULL, verb == BK_CV_PROPOSED, &c) < 0)
		return -1;
	if (verb == BK_CV_PROPOSED) {
		SET(c, CD_TYPE, bk_card_type_name((bk_card_type)x->e->card_type));
		SET(c, CD_CREATED, x->at);
	}
	/* the state a verb moves the card to (bk_card_table); responded and expiring keep it */
	int to = bk_card_verb_state(verb);
	if (to >= 0)
		SET(c, CD_STATE, bk_card_state_name((bk_card_state)to));
	if (verb != BK_CV_EXPIRING)
		SET(c, CD_UPDATED, x->at);
	if (resp_id) {
		pr_row *r;
		if (row(x, PR_CARD_RESPONSE, resp_id, NULL, true, &r) < 0)
			return -1;
		SET(r, CR_CARD_ID, id);
		SET(r, CR_PAYLOAD, resp_payload);
		SET(r, CR_CREATED, x->at);
	}
	return li ? items(x, li) : 0;
}

static int dispatch(actx *x)
{
	pr_row *bo, *oo;
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
	case BK_EV_PAYMENT_REFUNDED:
		return ev_refund(x);
	case BK_EV_DISPUTE_OPENED:
	case BK_EV_DISPUTE_UPDATED:
	case BK_EV_DISPUTE_RESOLVED:
		return ev_dispute(x);
	case BK_EV_MILESTONE_ADDED:
	case BK_EV_MILESTONE_CHANGED:
		return ev_milestone(x);
	case BK_EV_CARD:
		return ev_card(x);
	case BK_EV_PAYMENT_CAPTURED:
	case BK_EV_TIP_ADDED:
	case BK_EV_NOTE_ADDED:
	case BK_EV_CALENDAR_RESCHEDULED: /* the order's rows; their fields are copies */
		return orders(x, &bo, &oo);
	case BK_EV_ORDER_ARCHIVED: /* the processor let the order go: it stays here, marked */
		if (orders(x, &bo, &oo) < 0)
			return -1;
		SET(bo, BO_ARCHIVED, x->at);
		return 0;
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
	actx x = {s, e, o, &e->payload, err, errsz, at, {err, errsz, "payload"}, {0}};
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
		rc = copy_event(&x);
	if (rc == 0)
		rc = timeline(&x);
	if (zone)
		msgpack_zone_destroy(&z);
	if (rc < 0)
		*o = saved;
	return rc;
}
