/*
 * test_plan.c - the projection's planning (projector/proj_plan.c), without Kafka or
 * PostgreSQL: what the live projector and rebuild both do with a batch's records. The
 * reader rule's verdicts per hostile record are in test_seal.c (the shared table); here
 * the rules that are the planning's own: a valid event that fails to apply quarantines
 * its order and holds its later events (and nothing else), a plan never keeps part of a
 * refused event's rows, a retried quarantine row goes first and releases its order, an
 * invalid record holds nothing back, a failed hash lookup fails the whole plan.
 * Records: fixtures/cancellations.jsonl (five orders) through the engine, as the
 * processor writes them.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_codec.h"
#include "bk_engine.h"
#include "fixture_run.h"
#include "proj_plan.h"

#define MAXREC	  256
#define MAXORDERS 16

typedef struct log {
	msgpack_zone z;
	bk_record r[MAXREC];
	size_t n;
} log_t;

static int collect(void *opaque, const bk_record *r, const void *bytes, size_t n)
{
	log_t *l = opaque;
	ck_assert_uint_lt(l->n, MAXREC);
	char err[256];
	void *copy = msgpack_zone_malloc(&l->z, n);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, bytes, n);
	(void)r;
	ck_assert_int_eq(bk_codec_record_decode(copy, n, &l->z, &l->r[l->n], err, sizeof(err)), 0);
	l->n++;
	return 0;
}

static void load(log_t *l)
{
	memset(l, 0, sizeof(*l));
	ck_assert(msgpack_zone_init(&l->z, 1 << 20));
	bk_engine *e = bk_engine_new();
	json_t *fails = json_array();
	char err[256];
	ck_assert_int_ge(fx_run_file_cb(e, SRCDIR "/fixtures/cancellations.jsonl", fails, collect,
					l, err, sizeof(err)),
			 0);
	ck_assert_uint_ge(l->n, 8);
	json_decref(fails);
	bk_engine_free(e);
}

/* The orders a reader keeps, and every hash it applied (by order and seq). */
typedef struct reader {
	pp_order o[MAXORDERS];
	uint8_t h[MAXORDERS][64][BK_HASH_LEN];
	size_t n;
	bool fail_lookup;
	int lookups;
} reader;

static pp_order *order_of(void *ctx, const char *id)
{
	reader *rd = ctx;
	for (size_t i = 0; i < rd->n; i++)
		if (!strcmp(rd->o[i].id, id))
			return &rd->o[i];
	ck_assert_uint_lt(rd->n, MAXORDERS);
	pp_order *o = &rd->o[rd->n++];
	snprintf(o->id, sizeof(o->id), "%s", id);
	o->c.f.status = -1;
	return o;
}

static int hash_at(void *ctx, pp_order *o, int64_t seq, uint8_t ret[BK_HASH_LEN], char *err,
		   size_t errsz)
{
	reader *rd = ctx;
	rd->lookups++;
	if (rd->fail_lookup) {
		snprintf(err, errsz, "lookup failed (planted)");
		return -1;
	}
	size_t i = (size_t)(o - rd->o);
	if (seq < 1 || seq > o->b.seq || seq >= 64)
		return 1;
	memcpy(ret, rd->h[i][seq], BK_HASH_LEN);
	return 0;
}

static int applied(void *ctx, pp_order *o, const bk_event *e)
{
	reader *rd = ctx;
	ck_assert_int_lt(e->seq, 64);
	memcpy(rd->h[o - rd->o][e->seq], e->hash, BK_HASH_LEN);
	return 0;
}

static void add(pp_plan *pl, reader *rd, const bk_record *r, pp_seal seal, int64_t off, int64_t qid)
{
	long first =
	    pp_add_record(pl, r, "garbage", seal, NULL, order_of, rd, r ? r->order_id : "x");
	ck_assert_int_ge(first, 0);
	for (size_t i = (size_t)first; i < pl->n; i++) {
		pl->items[i].offset = off;
		pl->items[i].qid = qid;
	}
}

static int run(pp_plan *pl, reader *rd, pr_store *s)
{
	const pp_ops ops = {hash_at, NULL, applied, rd};
	char err[256];
	return pp_run(pl, s, &ops, err, sizeof(err));
}

/* Re-chain one order's events from event `at` on (after a change), rehashing each. */
static void rechain(log_t *l, const char *order_id)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	const uint8_t *prev = NULL;
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->r[i].order_id, order_id) != 0)
			continue;
		for (uint32_t k = 0; k < l->r[i].n; k++) {
			bk_event *e = &l->r[i].events[k];
			if (prev)
				memcpy(e->prev_hash, prev, BK_HASH_LEN);
			e->canon = NULL;
			ck_assert_int_eq(bk_codec_event_seal(e, &sb), 0);
			prev = e->hash;
		}
	}
	msgpack_sbuffer_destroy(&sb);
}

/* The index of the k-th record of an order (-1 when none). */
static long nth_record(const log_t *l, const char *order_id, int k)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->r[i].order_id, order_id) && k-- == 0)
			return (long)i;
	return -1;
}

START_TEST(clean_log_applies_everything)
{
	log_t l;
	load(&l);
	reader rd = {0};
	pp_plan pl;
	pp_init(&pl);
	pr_store *s = pr_store_new();
	size_t events = 0;
	for (size_t i = 0; i < l.n; i++) {
		add(&pl, &rd, &l.r[i], PP_SEALED, (int64_t)i, 0);
		events += l.r[i].n;
	}
	ck_assert_int_eq(run(&pl, &rd, s), 0);
	ck_assert_uint_eq(pl.n, events);
	for (size_t i = 0; i < pl.n; i++)
		ck_assert_msg(pl.items[i].action == PP_APPLY, "item %zu: action %d (%s)", i,
			      pl.items[i].action, pl.items[i].reason);
	ck_assert_uint_eq(pr_store_count(s, PR_TIMELINE), events);
	ck_assert_uint_ge(rd.n, 5);
	/* committed: the same records again are duplicates, without a row */
	pp_commit(&pl);
	pp_clear(&pl);
	for (size_t i = 0; i < l.n; i++)
		add(&pl, &rd, &l.r[i], PP_SEALED, (int64_t)i, 0);
	ck_assert_int_eq(run(&pl, &rd, s), 0);
	for (size_t i = 0; i < pl.n; i++)
		ck_assert_int_eq(pl.items[i].action, PP_DUP);
	ck_assert_uint_eq(pr_store_count(s, PR_TIMELINE), 0);
	ck_assert_int_gt(rd.lookups, 0); /* older seqs were looked up */
	pp_free(&pl);
	pr_store_free(s);
	msgpack_zone_destroy(&l.z);
}
END_TEST

START_TEST(apply_failure_quarantines_its_order_only)
{
	log_t l;
	load(&l);
	/* order B's second record carries an event of a schema version no projector reads,
	 * correctly hashed and linked (a valid event the read model cannot take) */
	const char *b = l.r[nth_record(&l, l.r[0].order_id, 0)].order_id;
	long bad = nth_record(&l, b, 1);
	ck_assert_int_ge(bad, 0);
	ck_assert_int_ge(nth_record(&l, b, 2), 0); /* it has later records */
	l.r[bad].events[0].schema = 99;
	rechain(&l, b);

	reader rd = {0};
	pp_plan pl;
	pp_init(&pl);
	pr_store *s = pr_store_new();
	size_t events = 0, other_events = 0;
	for (size_t i = 0; i < l.n; i++) {
		add(&pl, &rd, &l.r[i], PP_SEALED, (int64_t)i, 0);
		events += l.r[i].n;
		if (strcmp(l.r[i].order_id, b) != 0)
			other_events += l.r[i].n;
	}
	/* garbage and an unsealed copy in the middle: rejected, holding nothing back */
	add(&pl, &rd, NULL, PP_SEALED, 1000, 0);
	add(&pl, &rd, &l.r[l.n - 1], PP_UNSEALED, 1001, 0);
	ck_assert_int_eq(run(&pl, &rd, s), 0);
	size_t before = 0, quar = 0, held = 0, applied_other = 0, rejected = 0;
	for (size_t i = 0; i < pl.n; i++) {
		const pp_item *it = &pl.items[i];
		if (it->offset >= 1000) {
			ck_assert_int_eq(it->action, PP_REJECT);
			rejected++;
			continue;
		}
		if (strcmp(pp_order_id(it), b) != 0) {
			ck_assert_msg(it->action == PP_APPLY, "other order held: %s", it->reason);
			applied_other++;
		} else if (it->offset < bad) {
			ck_assert_int_eq(it->action, PP_APPLY);
			before++;
		} else if (it->offset == bad && it == &pl.items[i] &&
			   it->e == &l.r[bad].events[0]) {
			ck_assert_int_eq(it->action, PP_QUAR);
			ck_assert_msg(strstr(it->reason, "schema") != NULL, "reason: %s",
				      it->reason);
			quar++;
		} else {
			ck_assert_int_eq(it->action, PP_HELD);
			held++;
		}
	}
	ck_assert_uint_eq(quar, 1);
	ck_assert_uint_gt(held, 0);
	ck_assert_uint_gt(before, 0);
	ck_assert_uint_eq(applied_other, other_events);
	ck_assert_uint_eq(rejected, 1 + l.r[l.n - 1].n); /* garbage: one item */
	/* the refused event left no rows: one timeline row per applied event */
	ck_assert_uint_eq(pr_store_count(s, PR_TIMELINE), before + applied_other);
	ck_assert_uint_eq(before + quar + held + applied_other, events);

	/* next batch: the order is held (its rows wait); an operator retries its quarantined
	 * row, fixed (schema 1 again): it goes first, releases the order, and the held ones
	 * apply after it in seq order */
	pp_commit(&pl);
	pp_order *ob = order_of(&rd, b);
	ck_assert(ob->quar);
	ob->held = true;
	l.r[bad].events[0].schema = 1;
	rechain(&l, b);
	pp_clear(&pl);
	for (size_t i = (size_t)bad; i < l.n; i++)
		if (!strcmp(l.r[i].order_id, b))
			add(&pl, &rd, &l.r[i], PP_SEALED, (int64_t)i, (int64_t)(i + 1));
	ck_assert_int_eq(run(&pl, &rd, s), 0);
	for (size_t i = 0; i < pl.n; i++)
		ck_assert_msg(pl.items[i].action == PP_APPLY, "retried item %zu: %d %s", i,
			      pl.items[i].action, pl.items[i].reason);
	ck_assert_uint_eq(pr_store_count(s, PR_TIMELINE), pl.n);
	pp_free(&pl);
	pr_store_free(s);
	msgpack_zone_destroy(&l.z);
}
END_TEST

START_TEST(held_order_waits_without_retry)
{
	log_t l;
	load(&l);
	reader rd = {0};
	pp_plan pl;
	pp_init(&pl);
	pr_store *s = pr_store_new();
	const char *a = l.r[0].order_id;
	order_of(&rd, a)->held = true; /* quarantine rows wait, nobody asked to retry */
	for (size_t i = 0; i < l.n; i++)
		add(&pl, &rd, &l.r[i], PP_SEALED, (int64_t)i, 0);
	ck_assert_int_eq(run(&pl, &rd, s), 0);
	size_t held = 0;
	for (size_t i = 0; i < pl.n; i++) {
		const pp_item *it = &pl.items[i];
		bool mine = !strcmp(pp_order_id(it), a);
		ck_assert_int_eq(it->action, mine ? PP_HELD : PP_APPLY);
		if (mine) {
			ck_assert_str_eq(it->reason, pp_held_reason);
			held++;
		}
	}
	ck_assert_uint_gt(held, 0);
	pp_free(&pl);
	pr_store_free(s);
	msgpack_zone_destroy(&l.z);
}
END_TEST

START_TEST(lookup_failure_fails_the_plan)
{
	log_t l;
	load(&l);
	reader rd = {0};
	pp_plan pl;
	pp_init(&pl);
	pr_store *s = pr_store_new();
	for (size_t i = 0; i < l.n; i++)
		add(&pl, &rd, &l.r[i], PP_SEALED, (int64_t)i, 0);
	ck_assert_int_eq(run(&pl, &rd, s), 0);
	pp_commit(&pl);
	/* a duplicate of an older seq needs the order's older hash: the lookup fails */
	pp_clear(&pl);
	add(&pl, &rd, &l.r[0], PP_SEALED, 0, 0);
	rd.fail_lookup = true;
	const pp_ops ops = {hash_at, NULL, applied, &rd};
	char err[256] = "";
	ck_assert_int_eq(pp_run(&pl, s, &ops, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "lookup failed (planted)");
	pp_free(&pl);
	pr_store_free(s);
	msgpack_zone_destroy(&l.z);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("plan");
	TCase *tc = tcase_create("plan");
	tcase_add_test(tc, clean_log_applies_everything);
	tcase_add_test(tc, apply_failure_quarantines_its_order_only);
	tcase_add_test(tc, held_order_waits_without_retry);
	tcase_add_test(tc, lookup_failure_fails_the_plan);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}
