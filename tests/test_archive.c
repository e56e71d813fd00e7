/*
 * test_archive.c - core/bk_archive and archiving in the engine (issue #11): which orders
 * are settled (table-driven, from the FSM tables), the sweep's order.archived (only when
 * the window has passed, the same bytes whenever the sweep runs), the order leaving the
 * engine for a fingerprint, `archived` for every later command naming it (a new command,
 * a retried command id, an order.create reusing the id), the reader rule's path doing
 * the same as the decider's, and evolve refusing an order.archived that does not fit.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_archive.h"
#include "bk_codec.h"
#include "bk_engine.h"
#include "fixture_run.h"
#include "tz.h"

#define DAY (INT64_C(86400) * BK_US_PER_S)
#define IBH "ord_ibh_1" /* ib_happy_path: completed, then tipped */

/* --- settled: a row per (status, part, part state) ------------------------------------ */

enum { P_NONE, P_REQ, P_DISPUTE, P_CARD, P_MS };

typedef struct settle_row {
	uint8_t status;
	uint8_t part;
	uint8_t state;
	bool settled;
} settle_row;

static const settle_row settle_rows[] = {
    {BK_ST_COMPLETED, P_NONE, 0, true},
    {BK_ST_DECLINED, P_NONE, 0, true},
    {BK_ST_CANCELLED_BUYER, P_NONE, 0, true},
    {BK_ST_CANCELLED_PROVIDER, P_NONE, 0, true},
    {BK_ST_RESOLVED, P_NONE, 0, true},
    {BK_ST_INITIATED, P_NONE, 0, false},
    {BK_ST_PENDING_ACCEPT, P_NONE, 0, false},
    {BK_ST_CONFIRMED, P_NONE, 0, false},
    {BK_ST_DELIVERED, P_NONE, 0, false},
    {BK_ST_DISPUTED, P_NONE, 0, false},
    /* terminal: no command the status table allows there moves these parts any more */
    {BK_ST_COMPLETED, P_CARD, BK_CS_ACCEPTED, true},
    {BK_ST_COMPLETED, P_MS, BK_MS_APPROVED, true},
    {BK_ST_RESOLVED, P_DISPUTE, BK_DS_RESOLVED_BUYER, true},
    {BK_ST_DECLINED, P_REQ, BK_RQ_EXPIRED, true},
    {BK_ST_CANCELLED_BUYER, P_REQ, BK_RQ_DECLINED, true},
    /* not terminal: a part that a command allowed there still moves */
    {BK_ST_DISPUTED, P_DISPUTE, BK_DS_OPEN, false},
    {BK_ST_CONFIRMED, P_CARD, BK_CS_OPEN, false},
    {BK_ST_IN_PROGRESS, P_MS, BK_MS_OPEN, false},
    {BK_ST_PENDING_ACCEPT, P_REQ, BK_RQ_PENDING, false},
};

START_TEST(settled_table)
{
	const settle_row *r = &settle_rows[_i];
	bk_order *o = bk_order_new("ord_t");
	ck_assert_ptr_nonnull(o);
	o->status = r->status;
	o->version = 3;
	o->last_event_at = 1000;
	switch (r->part) {
	case P_REQ:
		o->reqs = calloc(1, sizeof(*o->reqs));
		o->reqs[0].status = r->state;
		o->n_reqs = o->cap_reqs = 1;
		break;
	case P_DISPUTE:
		o->disputes = calloc(1, sizeof(*o->disputes));
		o->disputes[0].status = r->state;
		o->n_disputes = o->cap_disputes = 1;
		break;
	case P_CARD:
		o->cards = calloc(1, sizeof(*o->cards));
		o->cards[0].type = BK_CT_EXTRAS;
		o->cards[0].state = r->state;
		o->n_cards = o->cap_cards = 1;
		break;
	case P_MS:
		o->ms = calloc(1, sizeof(*o->ms));
		o->ms[0].status = r->state;
		o->n_ms = o->cap_ms = 1;
		break;
	}
	ck_assert_msg(bk_archive_settled(o) == r->settled, "row %d (%s)", _i,
		      bk_status_name((bk_status)r->status));
	ck_assert_int_eq(bk_archive_due(o, DAY), r->settled ? 1000 + DAY : BK_TS_NONE);
	ck_assert_int_eq(bk_archive_due(o, 0), BK_TS_NONE); /* 0: never */
	o->version = 0;
	ck_assert(!bk_archive_settled(o)); /* no events: nothing to archive */
	bk_order_free(o);
}
END_TEST

/* Without parts, settled is terminal, for every status. */
START_TEST(settled_is_terminal_without_parts)
{
	for (int s = 0; s < BK_ST__COUNT; s++) {
		bk_order *o = bk_order_new("ord_t");
		o->status = (uint8_t)s;
		o->version = 1;
		ck_assert_int_eq(bk_archive_settled(o), bk_status_is_terminal((bk_status)s));
		bk_order_free(o);
	}
	ck_assert_int_eq(bk_archive_due(&(bk_order){.status = BK_ST_COMPLETED,
						    .version = 1,
						    .last_event_at = INT64_MAX - 5},
					DAY),
			 BK_TS_NONE); /* overflow: never */
}
END_TEST

/* --- the sweep, the engine and later commands ---------------------------------------- */

/* The events records of a run, one after the other in one buffer. */
typedef struct recs {
	msgpack_sbuffer all;
	size_t off[256], len[256];
	int n;
} recs;

static int keep_record(void *opaque, const bk_record *r, const void *bytes, size_t n)
{
	(void)r;
	recs *x = opaque;
	ck_assert_int_lt(x->n, 256);
	x->off[x->n] = x->all.size;
	x->len[x->n++] = n;
	return msgpack_sbuffer_write(&x->all, bytes, n);
}

static bk_engine *run_fixture(const char *name, recs *keep)
{
	char path[512], err[256];
	snprintf(path, sizeof(path), SRCDIR "/fixtures/%s.jsonl", name);
	bk_engine *e = bk_engine_new();
	json_t *fails = json_array();
	ck_assert_ptr_nonnull(e);
	ck_assert_msg(
	    fx_run_file_cb(e, path, fails, keep ? keep_record : NULL, keep, err, sizeof(err)) > 0,
	    "%s", err);
	ck_assert_uint_eq(json_array_size(fails), 0);
	json_decref(fails);
	return e;
}

static bk_tzdb *tzdb;

static bk_command sweep_cmd(const char *order_id, int64_t at)
{
	return (bk_command){.id = "cmd_sweep_test",
			    .type = BK_CMD_ORDER_SWEEP,
			    .order_id = order_id,
			    .actor_role = BK_ROLE_SYSTEM,
			    .at = at,
			    .payload = {.type = MSGPACK_OBJECT_MAP}};
}

static bk_decide_ctx ctx_at(int64_t now, int64_t window)
{
	return (bk_decide_ctx){
	    .now = now, .archive_after = window, .tz = bk_tz_offset, .tz_opaque = tzdb};
}

/* A command of the fixture's JSON form, decoded (strings in z). */
static bk_command json_cmd(const char *json, msgpack_zone *z)
{
	bk_command c;
	char err[256];
	ck_assert_msg(
	    bk_codec_command_decode(json, strlen(json), true, true, z, &c, err, sizeof(err)) == 0,
	    "%s", err);
	return c;
}

START_TEST(sweep_archives_when_due)
{
	bk_engine *e = run_fixture("ib_happy_path", NULL);
	const bk_order *o = bk_engine_order(e, IBH);
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(o->status, BK_ST_COMPLETED);
	int64_t last = o->last_event_at, version = o->version;
	ck_assert_int_gt(last, 0);
	size_t live = bk_engine_count(e);
	msgpack_zone z;
	msgpack_zone_init(&z, 8192);
	bk_decision d;
	/* one microsecond early: nothing */
	bk_command c = sweep_cmd(IBH, last + DAY - 1);
	bk_decide_ctx x = ctx_at(c.at, DAY);
	ck_assert_int_eq(bk_engine_handle(e, &c, &x, &z, &d), 0);
	ck_assert_int_eq(d.outcome, BK_ACCEPTED);
	ck_assert_uint_eq(d.n_events, 0);
	ck_assert_ptr_nonnull(bk_engine_order(e, IBH));
	/* archiving off: nothing, however late */
	c = sweep_cmd(IBH, last + 400 * DAY);
	x = ctx_at(c.at, 0);
	ck_assert_int_eq(bk_engine_handle(e, &c, &x, &z, &d), 0);
	ck_assert_uint_eq(d.n_events, 0);
	/* due: order.archived at the window's end, whatever the sweep's time */
	c = sweep_cmd(IBH, last + 3 * DAY);
	x = ctx_at(c.at, DAY);
	ck_assert_int_eq(bk_engine_handle(e, &c, &x, &z, &d), 0);
	ck_assert_int_eq(d.outcome, BK_ACCEPTED);
	ck_assert_uint_eq(d.n_events, 1);
	const bk_event *ev = &d.events[0];
	ck_assert_int_eq(ev->type, BK_EV_ORDER_ARCHIVED);
	ck_assert_int_eq(ev->created_at, last + DAY);
	ck_assert_int_eq(ev->seq, version + 1);
	ck_assert_ptr_null(ev->actor_user_id);
	ck_assert_int_eq(strncmp(ev->command_id, "sys_", 4), 0);
	char sub[64];
	ck_assert_str_eq(bk_event_subtype(ev, sub, sizeof(sub)), "order.archived");
	/* the order left the engine; its fingerprint stayed */
	ck_assert_ptr_null(bk_engine_order(e, IBH));
	ck_assert_uint_eq(bk_engine_count(e), live - 1);
	ck_assert(bk_engine_archived(e, IBH));
	ck_assert_uint_eq(bk_engine_archived_count(e), 1);
	ck_assert(!bk_engine_archived(e, "ord_ibh_2"));
	msgpack_zone_destroy(&z);
	bk_engine_free(e);
}
END_TEST

START_TEST(later_commands_get_archived)
{
	bk_engine *e = run_fixture("ib_happy_path", NULL);
	int64_t last = bk_engine_order(e, IBH)->last_event_at;
	msgpack_zone z;
	msgpack_zone_init(&z, 8192);
	bk_decision d;
	bk_command c = sweep_cmd(IBH, last + DAY);
	bk_decide_ctx x = ctx_at(c.at, DAY);
	ck_assert_int_eq(bk_engine_handle(e, &c, &x, &z, &d), 0);
	ck_assert_uint_eq(d.n_events, 1);
	static const char *const later[] = {
	    /* a new command the order allowed before: a tip on a completed order */
	    "{\"id\":\"cmd_ibh_99\",\"type\":\"tip.add\",\"order_id\":\"" IBH "\","
	    "\"actor\":{\"user_id\":\"usr_buyer_ben\",\"role\":\"buyer\"},"
	    "\"at\":\"2026-12-30T09:05:00Z\",\"payload\":{\"amount_cents\":500}}",
	    /* a retry of a command id the order accepted (was `duplicate`) */
	    "{\"id\":\"cmd_ibh_08\",\"type\":\"tip.add\",\"order_id\":\"" IBH "\","
	    "\"actor\":{\"user_id\":\"usr_buyer_ben\",\"role\":\"buyer\"},"
	    "\"at\":\"2026-11-21T09:05:00Z\",\"payload\":{\"amount_cents\":2000}}",
	    /* an order.create reusing the id */
	    "{\"id\":\"cmd_new_1\",\"type\":\"order.create\",\"order_id\":\"" IBH "\","
	    "\"actor\":{\"user_id\":\"usr_buyer_ben\",\"role\":\"buyer\"},"
	    "\"at\":\"2026-12-30T10:00:00Z\",\"payload\":{\"provider_user_id\":\"usr_prov_ana\","
	    "\"service_profile_id\":\"sp_studio_lumen\",\"mode\":\"RTB\",\"role_code\":\"p\","
	    "\"city\":\"Paris\",\"start_ts\":\"2027-01-04T09:00:00Z\",\"end_ts\":"
	    "\"2027-01-04T13:00:00Z\",\"timezone\":\"Europe/Paris\",\"location\":{\"kind\":"
	    "\"provider_studio\"},\"currency\":\"EUR\",\"line_items\":[{\"kind\":\"package\","
	    "\"title\":\"x\",\"qty\":1,\"unit_cents\":40000}],\"platform_fee_cents\":0,"
	    "\"tax_cents\":0}}",
	};
	for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
		bk_command lc = json_cmd(later[i], &z);
		bk_decide_ctx lx = ctx_at(lc.at + DAY, DAY);
		ck_assert_int_eq(bk_engine_handle(e, &lc, &lx, &z, &d), 0);
		ck_assert_msg(d.outcome == BK_REJECTED && d.code == BK_E_ARCHIVED,
			      "later[%zu]: %s %s", i, bk_outcome_name(d.outcome),
			      bk_err_name(d.code));
		ck_assert_uint_eq(d.n_events, 0);
	}
	ck_assert_ptr_null(bk_engine_order(e, IBH)); /* the create did not bring it back */
	/* the sweep again (a second instance, a late timer): archived, no event */
	ck_assert_int_eq(bk_engine_handle(e, &c, &x, &z, &d), 0);
	ck_assert_int_eq(d.code, BK_E_ARCHIVED);
	ck_assert_uint_eq(d.n_events, 0);
	msgpack_zone_destroy(&z);
	bk_engine_free(e);
}
END_TEST

/* The same log gives the same order.archived bytes, whenever the sweep runs. */
START_TEST(archived_event_is_deterministic)
{
	bk_engine *a = run_fixture("ib_happy_path", NULL), *b = run_fixture("ib_happy_path", NULL);
	int64_t last = bk_engine_order(a, IBH)->last_event_at;
	msgpack_zone za, zb;
	msgpack_zone_init(&za, 8192);
	msgpack_zone_init(&zb, 8192);
	bk_decision da, db;
	bk_command ca = sweep_cmd(IBH, last + DAY + 1), cb = sweep_cmd(IBH, last + 90 * DAY);
	cb.id = "cmd_other_sweep"; /* another instance's timer */
	bk_decide_ctx xa = ctx_at(ca.at, DAY), xb = ctx_at(cb.at + 7, DAY);
	ck_assert_int_eq(bk_engine_handle(a, &ca, &xa, &za, &da), 0);
	ck_assert_int_eq(bk_engine_handle(b, &cb, &xb, &zb, &db), 0);
	ck_assert_uint_eq(da.n_events, 1);
	ck_assert_uint_eq(db.n_events, 1);
	const bk_event *ea = &da.events[0], *eb = &db.events[0];
	ck_assert_str_eq(ea->event_id, eb->event_id);
	ck_assert_str_eq(ea->command_id, eb->command_id);
	ck_assert_int_eq(ea->created_at, eb->created_at);
	ck_assert_int_eq(memcmp(ea->hash, eb->hash, BK_HASH_LEN), 0);
	ck_assert_ptr_nonnull(ea->canon);
	ck_assert_uint_eq(ea->canon_len, eb->canon_len);
	ck_assert_int_eq(memcmp(ea->canon, eb->canon, ea->canon_len), 0);
	/* another window is another event */
	bk_engine *c = run_fixture("ib_happy_path", NULL);
	msgpack_zone zc;
	msgpack_zone_init(&zc, 8192);
	bk_decision dc;
	bk_decide_ctx xc = ctx_at(cb.at, 2 * DAY);
	ck_assert_int_eq(bk_engine_handle(c, &cb, &xc, &zc, &dc), 0);
	ck_assert_uint_eq(dc.n_events, 1);
	ck_assert_int_ne(memcmp(dc.events[0].hash, ea->hash, BK_HASH_LEN), 0);
	msgpack_zone_destroy(&za);
	msgpack_zone_destroy(&zb);
	msgpack_zone_destroy(&zc);
	bk_engine_free(a);
	bk_engine_free(b);
	bk_engine_free(c);
}
END_TEST

/* Reading the log (the reader rule, as a restore does) archives as deciding did, and an
 * event naming the archived order afterwards has nothing to link to. */
START_TEST(reading_archives_too)
{
	recs r = {0};
	msgpack_sbuffer_init(&r.all);
	bk_engine *a = run_fixture("ib_happy_path", &r);
	int64_t last = bk_engine_order(a, IBH)->last_event_at;
	msgpack_zone z;
	msgpack_zone_init(&z, 8192);
	bk_decision d;
	bk_command c = sweep_cmd(IBH, last + DAY);
	bk_decide_ctx x = ctx_at(c.at, DAY);
	ck_assert_int_eq(bk_engine_handle(a, &c, &x, &z, &d), 0);
	ck_assert_uint_eq(d.n_events, 1);
	bk_record ar = {IBH, c.id, d.events, 1};
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(bk_codec_record_encode(&ar, &sb), 0);
	keep_record(&r, &ar, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);

	bk_engine *b = bk_engine_new();
	bk_chain_verdict v[BK_MAX_EVENTS];
	char err[256];
	for (int i = 0; i < r.n; i++) {
		msgpack_zone rz;
		msgpack_zone_init(&rz, 8192);
		bk_record rec;
		ck_assert_int_eq(bk_codec_record_decode(r.all.data + r.off[i], r.len[i], &rz, &rec,
							err, sizeof(err)),
				 0);
		ck_assert_msg(bk_engine_read(b, &rec, v, err, sizeof(err)) == 0, "%s", err);
		for (uint32_t k = 0; k < rec.n; k++)
			ck_assert_int_eq(v[k], BK_CHAIN_NEXT);
		msgpack_zone_destroy(&rz);
	}
	ck_assert_ptr_null(bk_engine_order(b, IBH));
	ck_assert(bk_engine_archived(b, IBH));
	ck_assert_uint_eq(bk_engine_count(b), bk_engine_count(a));
	/* the order's first record again: its chain ended */
	msgpack_zone rz;
	msgpack_zone_init(&rz, 8192);
	bk_record rec = {0};
	for (int i = 0; i < r.n; i++) {
		ck_assert_int_eq(bk_codec_record_decode(r.all.data + r.off[i], r.len[i], &rz, &rec,
							err, sizeof(err)),
				 0);
		if (strcmp(rec.order_id, IBH) == 0)
			break;
	}
	ck_assert_str_eq(rec.order_id, IBH);
	ck_assert_int_eq(bk_engine_read(b, &rec, v, err, sizeof(err)), 0);
	ck_assert_int_eq(v[0], BK_CHAIN_BAD_LINK);
	ck_assert_ptr_null(bk_engine_order(b, IBH));
	msgpack_zone_destroy(&rz);
	msgpack_sbuffer_destroy(&r.all);
	msgpack_zone_destroy(&z);
	bk_engine_free(a);
	bk_engine_free(b);
}
END_TEST

/* evolve takes order.archived only on a settled order, naming its last event's time. */
START_TEST(evolve_refuses_misfits)
{
	bk_engine *a = run_fixture("ib_happy_path", NULL);
	bk_order *before = bk_order_clone(bk_engine_order(a, IBH));
	ck_assert_ptr_nonnull(before);
	ck_assert(!before->archived);
	msgpack_zone z;
	msgpack_zone_init(&z, 8192);
	bk_decision d;
	bk_command c = sweep_cmd(IBH, before->last_event_at + DAY);
	bk_decide_ctx x = ctx_at(c.at, DAY);
	ck_assert_int_eq(bk_engine_handle(a, &c, &x, &z, &d), 0);
	ck_assert_uint_eq(d.n_events, 1);
	char err[256];
	bk_order *o = bk_order_clone(before);
	ck_assert_int_eq(bk_evolve(o, &d.events[0], err, sizeof(err)), 0);
	ck_assert(o->archived);
	ck_assert_int_eq(o->last_event_at, before->last_event_at + DAY);
	bk_order_free(o);
	/* before the order's last event */
	bk_event early = d.events[0];
	early.created_at = before->last_event_at - 1;
	o = bk_order_clone(before);
	ck_assert_int_eq(bk_evolve(o, &early, err, sizeof(err)), -1);
	ck_assert(!o->archived);
	bk_order_free(o);
	/* on an order that is not settled */
	o = bk_order_clone(before);
	o->status = BK_ST_DELIVERED;
	ck_assert_int_eq(bk_evolve(o, &d.events[0], err, sizeof(err)), -1);
	ck_assert(!o->archived);
	bk_order_free(o);
	/* naming another last event time */
	o = bk_order_clone(before);
	o->last_event_at -= 1;
	ck_assert_int_eq(bk_evolve(o, &d.events[0], err, sizeof(err)), -1);
	bk_order_free(o);
	bk_order_free(before);
	msgpack_zone_destroy(&z);
	bk_engine_free(a);
}
END_TEST

/* Every order of every fixture that the tables call settled is archived by one sweep
 * (and only those): the decider and evolve agree with bk_archive_settled. */
static void collect_ids(const bk_order *o, void *opaque)
{
	json_array_append_new(opaque, json_pack("{s:s,s:b,s:I}", "id", o->order_id, "settled",
						bk_archive_settled(o), "last",
						(json_int_t)o->last_event_at));
}

START_TEST(every_fixture_order)
{
	static const char *const files[] = {"cancellations",	    "dispute_split_refund",
					    "rtb_counter_declined", "card_complete",
					    "milestones",	    "rtb_expired"};
	int archived = 0, kept = 0;
	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		bk_engine *e = run_fixture(files[f], NULL);
		json_t *ids = json_array();
		bk_engine_foreach(e, collect_ids, ids);
		size_t i;
		json_t *it;
		json_array_foreach(ids, i, it)
		{
			const char *id = json_string_value(json_object_get(it, "id"));
			bool settled = json_is_true(json_object_get(it, "settled"));
			int64_t last = json_integer_value(json_object_get(it, "last"));
			msgpack_zone z;
			msgpack_zone_init(&z, 8192);
			bk_decision d;
			bk_command c = sweep_cmd(id, last + 2 * DAY);
			bk_decide_ctx x = ctx_at(c.at, DAY);
			ck_assert_int_eq(bk_engine_handle(e, &c, &x, &z, &d), 0);
			bool gone = bk_engine_order(e, id) == NULL;
			ck_assert_msg(gone == settled, "%s %s: settled %d, archived %d", files[f],
				      id, settled, gone);
			ck_assert_int_eq(bk_engine_archived(e, id), settled);
			archived += gone;
			kept += !gone;
			msgpack_zone_destroy(&z);
		}
		json_decref(ids);
		bk_engine_free(e);
	}
	ck_assert_int_gt(archived, 3);
	ck_assert_int_gt(kept, 0); /* and some orders were not settled */
}
END_TEST

int main(void)
{
	tzdb = bk_tzdb_new(NULL);
	Suite *s = suite_create("archive");
	TCase *tc = tcase_create("archive");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, settled_table, 0,
			    (int)(sizeof(settle_rows) / sizeof(settle_rows[0])));
	tcase_add_test(tc, settled_is_terminal_without_parts);
	tcase_add_test(tc, sweep_archives_when_due);
	tcase_add_test(tc, later_commands_get_archived);
	tcase_add_test(tc, archived_event_is_deterministic);
	tcase_add_test(tc, reading_archives_too);
	tcase_add_test(tc, evolve_refuses_misfits);
	tcase_add_test(tc, every_fixture_order);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	bk_tzdb_free(tzdb);
	return failed == 0 ? 0 : 1;
}
