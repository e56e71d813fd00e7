/*
 * test_upcast.c - event schema versions and upcasting (issue #14 item 3): the upcasters
 * of core/bk_upcast.c one by one, the decoder's checks by version, hashes over the stored
 * bytes, and mixed logs (schema-1 money events, then schema-2 ones, on one order) that
 * restore (bk_engine_read) and project (pa_apply) to what the decider's own log gives.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_codec.h"
#include "bk_engine.h"
#include "bk_ids.h"
#include "bk_schema.h"
#include "bk_seal.h"
#include "bk_time.h"
#include "bk_upcast.h"
#include "fixture_run.h"
#include "proj_apply.h"
#include "proj_rows.h"

#define ERRSZ 512

static msgpack_zone *zone;

static void setup(void)
{
	zone = msgpack_zone_new(4096);
}

static void teardown(void)
{
	msgpack_zone_free(zone);
}

/* A payment.captured of `schema` (2: with currency cur) for order ord_up, seq 2, chained
 * to prev and sealed. */
static bk_event captured(uint32_t schema, const char *cur, const uint8_t prev[BK_HASH_LEN])
{
	bk_event e;
	memset(&e, 0, sizeof(e));
	e.event_id = "tev_up2";
	e.order_id = "ord_up";
	e.seq = 2;
	e.type = BK_EV_PAYMENT_CAPTURED;
	e.command_id = "cmd_up2";
	e.actor_user_id = "usr_buyer1";
	e.created_at = 1700000000000000;
	e.schema = schema;
	bk_mapb b;
	ck_assert(bk_mapb_init(&b, zone, 3));
	ck_assert(bk_mapb_str(&b, "payment_intent_id", "pi_1"));
	ck_assert(bk_mapb_int(&b, "amount_cents", 12345));
	if (cur)
		ck_assert(bk_mapb_str(&b, "currency", cur));
	e.payload = bk_mapb_done(&b);
	memcpy(e.prev_hash, prev, BK_HASH_LEN);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(bk_codec_event_seal(&e, &sb), 0);
	msgpack_sbuffer_destroy(&sb);
	return e;
}

static const char *str_of(const bk_val *map, const char *key)
{
	const bk_val *v = bk_map_get(map, key);
	if (v == NULL || v->type != MSGPACK_OBJECT_STR)
		return NULL;
	char *s = msgpack_zone_malloc(zone, v->via.str.size + 1);
	memcpy(s, v->via.str.ptr, v->via.str.size);
	s[v->via.str.size] = '\0';
	return s;
}

/* The versions are data: the money events are at 2, every other type at 1, and the
 * record header's BK_EVENT_SCHEMA is the highest. */
START_TEST(test_versions)
{
	bk_event e;
	memset(&e, 0, sizeof(e));
	static const char *const money[] = {"payment.captured", "payment.refunded", "tip.added",
					    "card.extras.accepted", "card.expense.accepted"};
	static const char *const plain[] = {"order.created",	       "order.confirmed",
					    "card.extras.proposed",    "card.expense.declined",
					    "dispute.resolved",	       "milestone.added",
					    "request.counter_accepted"};
	for (size_t i = 0; i < sizeof(money) / sizeof(*money); i++) {
		ck_assert_int_eq(bk_event_subtype_parse(money[i], strlen(money[i]), &e.type, &e.sub,
							&e.card_type),
				 0);
		ck_assert_msg(bk_event_is_money(&e), "%s", money[i]);
		ck_assert_uint_eq(bk_event_version(&e), 2);
	}
	for (size_t i = 0; i < sizeof(plain) / sizeof(*plain); i++) {
		ck_assert_int_eq(bk_event_subtype_parse(plain[i], strlen(plain[i]), &e.type, &e.sub,
							&e.card_type),
				 0);
		ck_assert_msg(!bk_event_is_money(&e), "%s", plain[i]);
		ck_assert_uint_eq(bk_event_version(&e), 1);
	}
	uint32_t max = 0;
	for (int f = 0; f < BK_SF__COUNT; f++)
		if (bk_schema_family_version((bk_schema_family)f) > max)
			max = bk_schema_family_version((bk_schema_family)f);
	ck_assert_uint_eq(max, BK_EVENT_SCHEMA);
}
END_TEST

/* v1 money event + the order's currency -> v2 with currency, the rest of the payload and
 * the hashes as stored; the stored bytes still check, the upcast ones would not. */
START_TEST(test_money_v1_to_v2)
{
	static const uint8_t zero[BK_HASH_LEN];
	char err[ERRSZ] = "";
	bk_event e = captured(1, NULL, zero), up = e;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	ck_assert(bk_seal_hash_ok(&e, &sb));
	bk_upcast_ctx c = {"EUR"};
	ck_assert_msg(bk_upcast(&up, &c, zone, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(up.schema, 2);
	ck_assert_str_eq(str_of(&up.payload, "currency"), "EUR");
	ck_assert_str_eq(str_of(&up.payload, "payment_intent_id"), "pi_1");
	ck_assert_int_eq(bk_map_get(&up.payload, "amount_cents")->via.i64, 12345);
	ck_assert_uint_eq(up.payload.via.map.size, e.payload.via.map.size + 1);
	ck_assert_mem_eq(up.hash, e.hash, BK_HASH_LEN);
	ck_assert_mem_eq(up.prev_hash, e.prev_hash, BK_HASH_LEN);
	ck_assert_ptr_null(up.canon);
	/* the stored event is untouched and its hash still checks; the hash covers the
	 * stored bytes, never the upcast ones */
	ck_assert_uint_eq(e.schema, 1);
	ck_assert_ptr_null(bk_map_get(&e.payload, "currency"));
	ck_assert(bk_seal_hash_ok(&e, &sb));
	ck_assert(!bk_seal_hash_ok(&up, &sb));
	/* what the decider writes for the same payment is the upcast form */
	bk_event w = e;
	w.payload = captured(1, NULL, zero).payload;
	ck_assert_int_eq(bk_event_stamp(&w, &c, zone), 0);
	ck_assert_uint_eq(w.schema, 2);
	msgpack_sbuffer a, b;
	msgpack_sbuffer_init(&a);
	msgpack_sbuffer_init(&b);
	ck_assert_int_eq(bk_codec_event_canon(&w, &a), 0);
	ck_assert_int_eq(bk_codec_event_canon(&up, &b), 0);
	ck_assert_uint_eq(a.size, b.size);
	ck_assert_mem_eq(a.data, b.data, a.size);
	msgpack_sbuffer_destroy(&a);
	msgpack_sbuffer_destroy(&b);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* v2 is left as it is (same payload), and held against the order's currency. */
START_TEST(test_money_v2_untouched)
{
	static const uint8_t zero[BK_HASH_LEN];
	char err[ERRSZ] = "";
	bk_event e = captured(2, "EUR", zero), up = e;
	bk_upcast_ctx c = {"EUR"};
	ck_assert_msg(bk_upcast(&up, &c, zone, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(up.schema, 2);
	ck_assert_ptr_eq(up.payload.via.map.ptr, e.payload.via.map.ptr);
	ck_assert_mem_eq(up.hash, e.hash, BK_HASH_LEN);
	/* a reader that does not know the order's currency takes it as written */
	bk_upcast_ctx none = {NULL};
	ck_assert_int_eq(bk_upcast(&up, &none, zone, err, sizeof(err)), 0);
	/* another currency than the order's */
	bk_upcast_ctx usd = {"USD"};
	ck_assert_int_eq(bk_upcast(&up, &usd, zone, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "is not the order's (USD)") != NULL, "%s", err);
}
END_TEST

/* Newer than the code knows: refused with a reason naming the schema (readers report it
 * and do not apply it); v1 without the facts its step needs: refused too. */
START_TEST(test_unknown_version)
{
	static const uint8_t zero[BK_HASH_LEN];
	char err[ERRSZ] = "";
	bk_upcast_ctx c = {"EUR"};
	bk_event e = captured(3, "EUR", zero);
	ck_assert_int_eq(bk_upcast(&e, &c, zone, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "event schema 3 of payment.captured is not one this code "
				  "reads (1 to 2)") != NULL,
		      "%s", err);
	ck_assert_uint_eq(e.schema, 3);
	/* a plain type has no version 2 */
	bk_event n;
	memset(&n, 0, sizeof(n));
	n.type = BK_EV_NOTE_ADDED;
	n.schema = 2;
	bk_mapb nb;
	ck_assert(bk_mapb_init(&nb, zone, 0));
	n.payload = bk_mapb_done(&nb);
	ck_assert_int_eq(bk_upcast(&n, &c, zone, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "schema 2 of note.added") != NULL, "%s", err);
	/* v1 money without the order's currency */
	bk_event o = captured(1, NULL, zero);
	bk_upcast_ctx none = {""};
	ck_assert_int_eq(bk_upcast(&o, &none, zone, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "no currency known for order ord_up") != NULL, "%s", err);
}
END_TEST

/* The decoder checks by version: v1 money without currency decodes, v2 without it does
 * not, v3 is only known to be a map. */
START_TEST(test_decoder_by_version)
{
	static const uint8_t zero[BK_HASH_LEN];
	char err[ERRSZ] = "";
	struct {
		uint32_t schema;
		const char *cur;
		const char *want; /* NULL: decodes */
	} cases[] = {{1, NULL, NULL},
		     {2, "EUR", NULL},
		     {2, NULL, "events[0].payload.currency: is required"},
		     {3, NULL, NULL}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		bk_event e = captured(cases[i].schema, cases[i].cur, zero);
		e.seq = 1;
		bk_record r = {"ord_up", "cmd_up2", &e, 1}, d;
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		ck_assert_int_eq(bk_codec_record_encode(&r, &sb), 0);
		int rc = bk_codec_record_decode(sb.data, sb.size, zone, &d, err, sizeof(err));
		if (cases[i].want == NULL) {
			ck_assert_msg(rc == 0, "case %zu: %s", i, err);
			ck_assert_uint_eq(d.events[0].schema, cases[i].schema);
		} else {
			ck_assert_int_eq(rc, -1);
			ck_assert_msg(strstr(err, cases[i].want) != NULL, "case %zu: %s", i, err);
		}
		msgpack_sbuffer_destroy(&sb);
	}
}
END_TEST

/* --- mixed logs -------------------------------------------------------------------- */

typedef struct rec_list {
	char **v;
	size_t *n;
	size_t len, cap;
} rec_list;

static int collect(void *opaque, const bk_record *r, const void *bytes, size_t n)
{
	(void)r;
	rec_list *l = opaque;
	if (l->len == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		l->n = realloc(l->n, l->cap * sizeof(*l->n));
		ck_assert(l->v && l->n);
	}
	l->v[l->len] = malloc(n);
	memcpy(l->v[l->len], bytes, n);
	l->n[l->len++] = n;
	return 0;
}

static void rec_list_free(rec_list *l)
{
	for (size_t i = 0; i < l->len; i++)
		free(l->v[i]);
	free(l->v);
	free(l->n);
}

/* Per order: the hash of its last event in the rewritten log, how many money events it
 * has had, and the projector's facts. */
typedef struct ord_slot {
	char id[BK_ID_MAX];
	uint8_t last[BK_HASH_LEN];
	int money;
	bool v1, v2_after_v1;
	pa_order f;
} ord_slot;

static ord_slot *slot(ord_slot *s, size_t *n, const char *id)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(s[i].id, id) == 0)
			return &s[i];
	ck_assert_uint_lt(*n, 256);
	memset(&s[*n], 0, sizeof(s[*n]));
	snprintf(s[*n].id, sizeof(s[*n].id), "%s", id);
	s[*n].f.status = -1;
	return &s[(*n)++];
}

/* The payload of e without `currency` (schema 1 of a money event). */
static bk_val without_currency(const bk_val *p)
{
	bk_mapb b;
	ck_assert(bk_mapb_init(&b, zone, p->via.map.size));
	for (uint32_t i = 0; i < p->via.map.size; i++) {
		const msgpack_object_kv *kv = &p->via.map.ptr[i];
		if (kv->key.via.str.size == 8 && memcmp(kv->key.via.str.ptr, "currency", 8) == 0)
			continue;
		b.kv[b.n++] = *kv;
	}
	return bk_mapb_done(&b);
}

/* One table's rows as text, the hash columns of the timeline left out (the hashes cover
 * the stored bytes, which differ between the logs). */
static char *rows_text(const pr_store *s)
{
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	out[0] = '\0';
	for (int t = 0; t < PR__COUNT; t++)
		for (size_t i = 0; i < pr_store_count(s, (pr_table)t); i++) {
			const pr_row *r = pr_store_row(s, (pr_table)t, i);
			for (int c = 0; c < pr_def(t)->ncols; c++) {
				if (t == PR_TIMELINE && (c == TE_HASH || c == TE_PREV_HASH))
					continue;
				const char *v = r->v[c] ? r->v[c] : "\\N";
				size_t k = strlen(v) + 2;
				while (len + k + 1 > cap) {
					char *more = realloc(out, cap *= 2);
					ck_assert_ptr_nonnull(more);
					out = more;
				}
				len += (size_t)sprintf(out + len, "%s%c", v,
						       c + 1 == pr_def(t)->ncols ? '\n' : '|');
			}
		}
	return out;
}

/*
 * The fixtures as the decider writes them (money events at schema 2), and the same log
 * rewritten as an older writer would have left it: the first `v1` money events of every
 * order at schema 1 (no currency), the later ones at 2, every hash of the order chained
 * again. Restored by a fresh engine (decode, hash check, bk_engine_read) and projected by
 * pa_apply, both logs give the same orders and the same rows (hash columns aside).
 */
static void mixed_log(const char *file, int v1, int *ret_mixed)
{
	char path[1024], err[ERRSZ];
	snprintf(path, sizeof(path), "%s/fixtures/%s", SRCDIR, file);
	bk_engine *live = bk_engine_new(), *rest = bk_engine_new();
	rec_list recs = {0};
	json_t *fails = json_array();
	ck_assert_msg(fx_run_file_cb(live, path, fails, collect, &recs, err, sizeof(err)) > 0,
		      "%s: %s", file, err);
	static ord_slot slots[256], pslots[256];
	size_t ns = 0, nps = 0;
	pr_store *sa = pr_store_new(), *sb = pr_store_new();
	msgpack_sbuffer scratch, enc;
	msgpack_sbuffer_init(&scratch);
	msgpack_sbuffer_init(&enc);
	for (size_t i = 0; i < recs.len; i++) {
		bk_record r, d, w;
		/* as written: projected into sa */
		ck_assert_int_eq(
		    bk_codec_record_decode(recs.v[i], recs.n[i], zone, &w, err, sizeof(err)), 0);
		for (uint32_t k = 0; k < w.n; k++) {
			ord_slot *o = slot(pslots, &nps, w.events[k].order_id);
			ck_assert_msg(pa_apply(sa, &w.events[k], &o->f, err, sizeof(err)) == 0,
				      "%s: %s", file, err);
		}
		/* rewritten */
		ck_assert_int_eq(
		    bk_codec_record_decode(recs.v[i], recs.n[i], zone, &r, err, sizeof(err)), 0);
		for (uint32_t k = 0; k < r.n; k++) {
			bk_event *e = &r.events[k];
			ord_slot *o = slot(slots, &ns, e->order_id);
			if (bk_event_is_money(e)) {
				ck_assert_uint_eq(e->schema, 2);
				ck_assert_ptr_nonnull(bk_map_get(&e->payload, "currency"));
				if (o->money++ < v1) {
					e->payload = without_currency(&e->payload);
					e->schema = 1;
					o->v1 = true;
				} else if (o->v1) {
					o->v2_after_v1 = true;
				}
			}
			memcpy(e->prev_hash, o->last, BK_HASH_LEN);
			ck_assert_int_eq(bk_codec_event_seal(e, &scratch), 0);
			memcpy(o->last, e->hash, BK_HASH_LEN);
		}
		enc.size = 0;
		ck_assert_int_eq(bk_codec_record_encode(&r, &enc), 0);
		ck_assert_msg(
		    bk_codec_record_decode(enc.data, enc.size, zone, &d, err, sizeof(err)) == 0,
		    "%s: %s", file, err);
		bk_chain_verdict vs[BK_MAX_EVENTS];
		ck_assert_msg(bk_engine_read(rest, &d, vs, err, sizeof(err)) == 0, "%s: %s", file,
			      err);
		for (uint32_t k = 0; k < d.n; k++) {
			ck_assert_msg(vs[k] == BK_CHAIN_NEXT, "%s: record %zu event %u: %s", file,
				      i, k, bk_chain_verdict_name(vs[k]));
			ord_slot *o = slot(slots, &ns, d.events[k].order_id);
			ck_assert_msg(pa_apply(sb, &d.events[k], &o->f, err, sizeof(err)) == 0,
				      "%s: %s", file, err);
		}
	}
	json_t *a = fx_engine_summary(live), *b = fx_engine_summary(rest);
	ck_assert_msg(json_equal(a, b), "%s: the mixed log restores to another state", file);
	char *ta = rows_text(sa), *tb = rows_text(sb);
	ck_assert_msg(strcmp(ta, tb) == 0, "%s: the mixed log projects to other rows", file);
	ck_assert_ptr_nonnull(strstr(ta, "payment.captured"));
	for (size_t i = 0; i < ns; i++)
		*ret_mixed += slots[i].v2_after_v1;
	free(ta);
	free(tb);
	json_decref(a);
	json_decref(b);
	json_decref(fails);
	msgpack_sbuffer_destroy(&scratch);
	msgpack_sbuffer_destroy(&enc);
	pr_store_free(sa);
	pr_store_free(sb);
	rec_list_free(&recs);
	bk_engine_free(live);
	bk_engine_free(rest);
}

START_TEST(test_mixed_logs)
{
	static const char *const files[] = {"ib_happy_path.jsonl", "card_extras.jsonl",
					    "card_expense.jsonl", "dispute_split_refund.jsonl",
					    "milestones.jsonl"};
	int mixed = 0;
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		mixed_log(files[i], 1, &mixed); /* v1 then v2 on one order */
		mixed_log(files[i], 1000, &mixed);
	}
	/* the fixtures hold orders with a v1 money event followed by v2 ones */
	ck_assert_int_gt(mixed, 0);
}
END_TEST

/* A projector that meets a money event of a newer schema, or a v2 one in another
 * currency than its order's, refuses it (the batch quarantines it); the order is as it
 * was. */
START_TEST(test_projector_refuses)
{
	static const uint8_t zero[BK_HASH_LEN];
	char err[ERRSZ] = "";
	pr_store *s = pr_store_new();
	pa_order o = {.status = BK_ST_CONFIRMED, .buyer = "usr_buyer1", .currency = "EUR"};
	bk_event e = captured(3, "EUR", zero);
	ck_assert_int_eq(pa_apply(s, &e, &o, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "event schema 3") != NULL, "%s", err);
	e = captured(2, "USD", zero);
	ck_assert_int_eq(pa_apply(s, &e, &o, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "is not the order's (EUR)") != NULL, "%s", err);
	ck_assert_int_eq(o.status, BK_ST_CONFIRMED);
	pr_store_free(s);
}
END_TEST

/* Is key a row of one of the schemas sc[0..n)? */
static bool declared(const int *sc, int n, const bk_val *key)
{
	for (int i = 0; i < n; i++)
		for (const bk_field *f = bk_schemas[sc[i]].fields; f->key; f++)
			if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == f->klen &&
			    memcmp(key->via.str.ptr, f->key, f->klen) == 0)
				return true;
	return false;
}

/* Every key of map (and of the totals and line items it holds) is declared by its
 * schemas; returns how many keys were looked at. */
static int check_keys(const char *what, const int *sc, int n, const bk_val *map)
{
	static const int totals[] = {BK_SC_TOTALS}, item[] = {BK_SC_ITEM};
	int seen = 0;
	ck_assert_int_eq(map->type, MSGPACK_OBJECT_MAP);
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		ck_assert_msg(declared(sc, n, &kv->key), "%s: payload.%.*s is in no schema row",
			      what, (int)kv->key.via.str.size, kv->key.via.str.ptr);
		seen++;
		const char *k = kv->key.via.str.ptr;
		size_t kn = kv->key.via.str.size;
		if (kn == 6 && memcmp(k, "totals", 6) == 0)
			seen += check_keys(what, totals, 1, &kv->val);
		else if (kn == 10 && memcmp(k, "line_items", 10) == 0)
			for (uint32_t j = 0; j < kv->val.via.array.size; j++)
				seen += check_keys(what, item, 1, &kv->val.via.array.ptr[j]);
		else if (kn == 9 && memcmp(k, "line_item", 9) == 0)
			seen += check_keys(what, item, 1, &kv->val);
	}
	return seen;
}

/* The schema table is the whole contract of what the decider writes: in every event of
 * every fixture, every payload key (and every key of its totals and line items) is a
 * schema row, so docs/events.md lists it and the decoder checks it. Free are only
 * note.added's other keys, the other card types' terms and a command's own location
 * keys. */
START_TEST(test_schema_complete)
{
	char path[1024], err[ERRSZ];
	int keys = 0, events = 0;
	DIR *d = opendir(SRCDIR "/fixtures");
	ck_assert_ptr_nonnull(d);
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		size_t n = strlen(de->d_name);
		if (n < 7 || strcmp(de->d_name + n - 6, ".jsonl") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/fixtures/%s", SRCDIR, de->d_name);
		bk_engine *live = bk_engine_new();
		rec_list recs = {0};
		json_t *fails = json_array();
		ck_assert_msg(fx_run_file_cb(live, path, fails, collect, &recs, err, sizeof(err)) >=
				  0,
			      "%s: %s", de->d_name, err);
		for (size_t i = 0; i < recs.len; i++) {
			bk_record r;
			ck_assert_int_eq(bk_codec_record_decode(recs.v[i], recs.n[i], zone, &r, err,
								sizeof(err)),
					 0);
			for (uint32_t k = 0; k < r.n; k++) {
				const bk_event *e = &r.events[k];
				int sc[BK_PAYLOAD_SCHEMAS_MAX];
				char what[128];
				bk_payload_schemas ps;
				snprintf(what, sizeof(what), "%s %s", de->d_name,
					 bk_event_subtype_name(e));
				bk_payload_schemas_of(e, &ps);
				ck_assert_int_gt(ps.n, 0);
				for (int j = 0; j < ps.n; j++)
					sc[j] = ps.top[j];
				keys += check_keys(what, sc, ps.n, &e->payload);
				events++;
			}
		}
		json_decref(fails);
		rec_list_free(&recs);
		bk_engine_free(live);
	}
	closedir(d);
	ck_assert_int_gt(events, 200);
	ck_assert_int_gt(keys, 1500);
}
END_TEST

/* The column index of table.column in pr_def, -1 when none; *ret_t its table (-1). */
static int column_of(const char *table, const char *column, int *ret_t)
{
	*ret_t = -1;
	for (int t = 0; t < PR__COUNT; t++) {
		if (strcmp(pr_def(t)->name, table) != 0)
			continue;
		*ret_t = t;
		for (int c = 0; column && c < pr_def(t)->ncols; c++)
			if (strcmp(pr_def(t)->cols[c].name, column) == 0)
				return c;
	}
	return -1;
}

/* The schema table names every field once per schema, each since-version one its type
 * has, each destination a real table and column of the read model; every copy resolves
 * to that column (pr_field_targets, a key column when the table's key), and every column
 * of the read model is written by the projector's code or by a copy. */
START_TEST(test_schema_table)
{
	int copies = 0, derived = 0;
	bool written[PR__COUNT][PR_MAX_COLS] = {{false}};
	for (int s = 0; s < BK_SC__COUNT; s++) {
		const bk_schema_def *d = &bk_schemas[s];
		ck_assert_msg(d->name != NULL && d->fields != NULL, "schema %d", s);
		int i = 0;
		for (const bk_field *f = d->fields; f->key != NULL; f++, i++) {
			ck_assert_uint_eq(f->klen, strlen(f->key));
			ck_assert_int_lt(f->type, BK_F__COUNT);
			ck_assert_uint_ge(f->since, 1);
			ck_assert_uint_le(f->since, BK_EVENT_SCHEMA);
			for (const bk_field *g = d->fields; g != f; g++)
				ck_assert_msg(strcmp(g->key, f->key) != 0, "%s.%s twice", d->name,
					      f->key);
			int n, k = 0;
			const pr_target *tg = pr_field_targets(s, i, &n);
			for (const bk_proj *p = f->to; p && p->table; p++) {
				int t, c = column_of(p->table, p->column, &t);
				ck_assert_msg(t >= 0, "%s.%s: no table %s", d->name, f->key,
					      p->table);
				ck_assert_msg(c >= 0 || (!p->column && p->kind == BK_P_CODE),
					      "%s.%s: no column %s.%s", d->name, f->key, p->table,
					      p->column);
				if (p->kind == BK_P_CODE) {
					derived++;
					continue;
				}
				ck_assert_msg(k < n && tg[k].t == t && tg[k].col == c,
					      "%s.%s: copy %d resolves elsewhere", d->name, f->key,
					      k);
				ck_assert(tg[k].key == (c < pr_def(t)->npk));
				ck_assert_str_eq(pr_def(t)->cols[c].type,
						 p->sqltype ? p->sqltype
							    : bk_ftype_sql((bk_ftype)f->type));
				written[t][c] = true;
				k++;
				copies++;
			}
			ck_assert_int_eq(k, n);
		}
	}
	ck_assert_int_gt(copies, 60);
	ck_assert_int_gt(derived, 10);
	/* the code columns are proj_rows.h's enums: the others all come from copies */
	static const int ncode[PR__COUNT] = {
	    [PR_BORDER] = BO__N,  [PR_OORDER] = OO__N,	  [PR_LINE_ITEM] = LI__N,
	    [PR_REQUEST] = RQ__N, [PR_RECIPIENT] = RC__N, [PR_MILESTONE] = MS__N,
	    [PR_DISPUTE] = DS__N, [PR_CARD] = CD__N,	  [PR_CARD_RESPONSE] = CR__N,
	    [PR_LOCK] = LK__N,	  [PR_TIMELINE] = TE__N,
	};
	int schema_cols = 0;
	for (int t = 0; t < PR__COUNT; t++)
		for (int c = ncode[t]; c < pr_def(t)->ncols; c++) {
			ck_assert_msg(written[t][c], "%s.%s: no copy writes it", pr_def(t)->name,
				      pr_def(t)->cols[c].name);
			schema_cols++;
		}
	ck_assert_int_gt(schema_cols, 25);
}
END_TEST

/* The order facts of readers without order state: noted from order.created events only,
 * found again by order id (past the table's first growth), none for an order not seen. */
START_TEST(test_facts)
{
	bk_facts *f = bk_facts_new();
	ck_assert_ptr_nonnull(f);
	char id[BK_ID_MAX];
	for (int i = 0; i < 1000; i++) {
		bk_event e;
		bk_mapb b;
		memset(&e, 0, sizeof(e));
		snprintf(id, sizeof(id), "ord_f%d", i);
		e.order_id = bk_val_str(zone, id, strlen(id)).via.str.ptr;
		e.type = i % 2 ? BK_EV_ORDER_CREATED : BK_EV_NOTE_ADDED;
		ck_assert(bk_mapb_init(&b, zone, 1));
		ck_assert(bk_mapb_str(&b, "currency", i % 3 ? "EUR" : "USD"));
		e.payload = bk_mapb_done(&b);
		ck_assert_int_eq(bk_facts_note(f, &e), 0);
	}
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "ord_f%d", i);
		bk_upcast_ctx c = bk_facts_ctx(f, id);
		if (i % 2 == 0)
			ck_assert_ptr_null(c.currency);
		else
			ck_assert_str_eq(c.currency, i % 3 ? "EUR" : "USD");
	}
	ck_assert_ptr_null(bk_facts_ctx(f, "ord_never").currency);
	/* merged into another table: all there, the source emptied */
	bk_facts *g = bk_facts_new();
	ck_assert_ptr_nonnull(g);
	ck_assert_int_eq(bk_facts_merge(g, f), 0);
	ck_assert_str_eq(bk_facts_ctx(g, "ord_f999").currency, "USD");
	ck_assert_str_eq(bk_facts_ctx(g, "ord_f1").currency, "EUR");
	ck_assert_ptr_null(bk_facts_ctx(g, "ord_f2").currency);
	ck_assert_ptr_null(bk_facts_ctx(f, "ord_f999").currency);
	bk_facts_free(g);
	bk_facts_free(f);
}
END_TEST

/* The read model's column definitions (designated by their enum, counted by
 * _Static_assert in proj_rows.c): no enum value without its definition, no name twice. */
START_TEST(test_row_tables)
{
	for (int t = 0; t < PR__COUNT; t++) {
		const pr_tabledef *td = pr_def(t);
		ck_assert_ptr_nonnull(td->name);
		ck_assert_int_le(td->ncols, PR_MAX_COLS);
		for (int c = 0; c < td->ncols; c++) {
			ck_assert_msg(td->cols[c].name != NULL && td->cols[c].type != NULL,
				      "%s: column %d has no definition", td->name, c);
			for (int d = 0; d < c; d++)
				ck_assert_msg(strcmp(td->cols[c].name, td->cols[d].name) != 0,
					      "%s.%s twice", td->name, td->cols[c].name);
		}
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("upcast");
	TCase *tc = tcase_create("upcast");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_versions);
	tcase_add_test(tc, test_money_v1_to_v2);
	tcase_add_test(tc, test_money_v2_untouched);
	tcase_add_test(tc, test_unknown_version);
	tcase_add_test(tc, test_decoder_by_version);
	tcase_add_test(tc, test_mixed_logs);
	tcase_add_test(tc, test_projector_refuses);
	tcase_add_test(tc, test_schema_table);
	tcase_add_test(tc, test_schema_complete);
	tcase_add_test(tc, test_row_tables);
	tcase_add_test(tc, test_facts);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
