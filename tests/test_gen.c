/*
 * test_gen.c - lib/gen: the same options give the same bytes, another seed other bytes,
 * and every generated command, run in order through the engine (from msgpack, and again
 * from its JSON line), gets exactly its planned outcome and code. With --run-jsonl FILE
 * it instead runs a `bookingctl gen --with-expect` file as a fixture (test_gen.sh).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_codec.h"
#include "bk_engine.h"
#include "fixture_run.h"
#include "gen.h"
#include "tz.h"

static bk_gen *new_gen(const bk_gen_opts *o)
{
	char err[256] = "";
	bk_gen *g = bk_gen_new(o, err, sizeof(err));
	ck_assert_msg(g != NULL, "bk_gen_new: %s", err);
	return g;
}

/* Every command, concatenated as [len u32][expect][code][kind][bytes]. Caller frees. */
static char *dump(const bk_gen_opts *o, size_t *ret_n, bk_gen_stats *ret_st)
{
	bk_gen *g = new_gen(o);
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	ck_assert_ptr_nonnull(f);
	bk_gen_cmd c;
	char err[256];
	int rc;
	uint64_t i = 0;
	while ((rc = bk_gen_next(g, &c, err, sizeof(err))) == 1) {
		ck_assert_uint_eq(c.index, i++);
		uint32_t len = (uint32_t)c.len;
		uint8_t meta[3] = {(uint8_t)c.expect, (uint8_t)c.expect_code, (uint8_t)c.kind};
		fwrite(&len, sizeof(len), 1, f);
		fwrite(meta, 1, 3, f);
		fwrite(c.bytes, 1, c.len, f);
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(bk_gen_next(g, &c, err, sizeof(err)), 0); /* stays at the end */
	bk_gen_stats_get(g, ret_st);
	ck_assert_uint_eq(ret_st->commands, i);
	bk_gen_free(g);
	fclose(f);
	*ret_n = n;
	return buf;
}

START_TEST(same_seed_same_bytes)
{
	bk_gen_opts o;
	bk_gen_opts_default(&o);
	o.orders = 500;
	o.window = 64;
	size_t na, nb;
	bk_gen_stats sa, sb;
	char *a = dump(&o, &na, &sa), *b = dump(&o, &nb, &sb);
	ck_assert_uint_eq(na, nb);
	ck_assert(memcmp(a, b, na) == 0);
	ck_assert(memcmp(&sa, &sb, sizeof(sa)) == 0);
	free(b);
	o.seed = 2;
	b = dump(&o, &nb, &sb);
	ck_assert(na != nb || memcmp(a, b, na) != 0);
	free(b);
	o.seed = 1;
	o.window = 65;
	b = dump(&o, &nb, &sb);
	ck_assert(na != nb || memcmp(a, b, na) != 0);
	free(a);
	free(b);
}
END_TEST

START_TEST(bad_options)
{
	bk_gen_opts o;
	char err[256];
	const struct {
		uint32_t orders, window, dup, wrong, stale;
		int64_t start;
		const char *want;
	} bad[] = {
	    {0, 1, 0, 0, 0, 0, "orders"},	 {BK_GEN_MAX_ORDERS + 1, 1, 0, 0, 0, 0, "orders"},
	    {10, 0, 0, 0, 0, 0, "window"},	 {10, 65537, 0, 0, 0, 0, "window"},
	    {10, 1, 1001, 0, 0, 0, "per-mille"}, {10, 1, 0, 1001, 0, 0, "per-mille"},
	    {10, 1, 0, 0, 1001, 0, "per-mille"}, {10, 1, 0, 0, 0, -1, "start"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bk_gen_opts_default(&o);
		o.orders = bad[i].orders;
		o.window = bad[i].window;
		o.dup_per_mille = bad[i].dup;
		o.wrong_actor_per_mille = bad[i].wrong;
		o.stale_per_mille = bad[i].stale;
		o.start_us = bad[i].start;
		err[0] = '\0';
		ck_assert_ptr_null(bk_gen_new(&o, err, sizeof(err)));
		ck_assert_msg(strstr(err, bad[i].want), "case %zu: %s", i, err);
	}
	bk_gen_free(NULL);
}
END_TEST

/* A command's JSON line, as `bookingctl gen` writes it. Caller frees. */
static char *json_line(const bk_command *c)
{
	json_t *j = bk_command_to_json(c);
	ck_assert_ptr_nonnull(j);
	char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));
	json_decref(j);
	ck_assert_ptr_nonnull(s);
	return s;
}

typedef struct plan_run {
	uint64_t commands, mismatches, by_kind[BK_GEN__COUNT], outcome[3];
} plan_run;

/* Run the stream of o through two engines, one fed the msgpack bytes, one the JSON
 * lines; both must give every command its planned outcome and code. */
static void run_plan(const bk_gen_opts *o, plan_run *pr)
{
	memset(pr, 0, sizeof(*pr));
	bk_gen *g = new_gen(o);
	bk_engine *em = bk_engine_new(), *ej = bk_engine_new();
	bk_tzdb *tz = bk_tzdb_new(NULL);
	ck_assert(em && ej && tz);
	msgpack_zone z;
	ck_assert(msgpack_zone_init(&z, 1 << 16));
	bk_gen_cmd gc;
	char err[256];
	int rc;
	int64_t last_at = INT64_MIN;
	while ((rc = bk_gen_next(g, &gc, err, sizeof(err))) == 1) {
		bk_command cm, cj;
		ck_assert_msg(bk_codec_command_decode(gc.bytes, gc.len, false, false, &z, &cm, err,
						      sizeof(err)) == 0,
			      "command %llu does not decode: %s", (unsigned long long)gc.index,
			      err);
		if (gc.kind != BK_GEN_DUPLICATE) {	  /* a resend keeps its first "at" */
			ck_assert_int_ge(cm.at, last_at); /* the clock never goes back */
			last_at = cm.at;
		}
		ck_assert_str_eq(gc.key, cm.order_id); /* the partition key */
		char *line = json_line(&cm);
		ck_assert_msg(bk_codec_command_decode(line, strlen(line), true, false, &z, &cj, err,
						      sizeof(err)) == 0,
			      "JSON line does not decode: %s: %s", err, line);
		char *again = json_line(&cj);
		ck_assert_str_eq(line, again); /* JSON and msgpack say the same */
		free(again);
		bk_engine *es[2] = {em, ej};
		const bk_command *cs[2] = {&cm, &cj};
		for (int k = 0; k < 2; k++) {
			bk_decide_ctx ctx = {.now = cs[k]->at,
					     .expiring_lead = INT64_C(24) * 3600 * BK_US_PER_S,
					     .tz = bk_tz_offset,
					     .tz_opaque = tz};
			bk_decision d;
			ck_assert_msg(bk_engine_handle(es[k], cs[k], &ctx, &z, &d) == 0, "%s",
				      d.message);
			bool same = d.outcome == gc.expect &&
				    (gc.expect != BK_REJECTED || d.code == gc.expect_code);
			if (!same && pr->mismatches++ < 10)
				fprintf(stderr,
					"mismatch (%s) #%llu %s %s: want %s %s, got %s %s: %s\n",
					k ? "json" : "msgpack", (unsigned long long)gc.index, cm.id,
					bk_gen_kind_name(gc.kind), bk_outcome_name(gc.expect),
					bk_err_name(gc.expect_code), bk_outcome_name(d.outcome),
					bk_err_name(d.code), d.message);
			if (k == 0)
				pr->outcome[d.outcome]++;
			bk_decision_clear(&d);
		}
		free(line);
		msgpack_zone_clear(&z);
		pr->by_kind[gc.kind]++;
		pr->commands++;
	}
	ck_assert_int_eq(rc, 0);
	bk_gen_stats st;
	bk_gen_stats_get(g, &st);
	ck_assert_uint_eq(st.commands, pr->commands);
	ck_assert_uint_eq(st.binds, pr->by_kind[BK_GEN_BIND]);
	ck_assert_uint_eq(st.rules, pr->by_kind[BK_GEN_RULE]);
	/* every profile with rules was bound first (else its rules would be forbidden) */
	ck_assert_uint_gt(st.binds, 0);
	ck_assert_uint_ge(st.rules, st.binds);
	ck_assert_uint_eq(st.planned, pr->by_kind[BK_GEN_PLANNED]);
	ck_assert_uint_eq(st.duplicates, pr->by_kind[BK_GEN_DUPLICATE]);
	ck_assert_uint_eq(st.wrong_actor, pr->by_kind[BK_GEN_WRONG_ACTOR]);
	ck_assert_uint_eq(st.stale, pr->by_kind[BK_GEN_STALE]);
	ck_assert_uint_eq(st.rtb + st.ib + st.invite + st.abandoned, o->orders);
	ck_assert_uint_eq(bk_engine_count(em), o->orders);
	ck_assert_uint_eq(bk_engine_count(ej), o->orders);
	msgpack_zone_destroy(&z);
	bk_tzdb_free(tz);
	bk_engine_free(em);
	bk_engine_free(ej);
	bk_gen_free(g);
}

START_TEST(outcomes_as_planned)
{
	bk_gen_opts o;
	bk_gen_opts_default(&o);
	o.orders = 2000;
	plan_run pr;
	run_plan(&o, &pr);
	ck_assert_uint_eq(pr.mismatches, 0);
	ck_assert_uint_gt(pr.commands, 13000);
	/* the default mix has every kind, and all three outcomes */
	for (int k = 0; k < BK_GEN__COUNT; k++)
		ck_assert_uint_gt(pr.by_kind[k], 0);
	for (int k = 0; k < 3; k++)
		ck_assert_uint_gt(pr.outcome[k], 0);
}
END_TEST

/* The knobs at both ends, one order at a time or many, a clock that does not start at
 * midnight, and a window past 4096 (where the clock slows down): still as planned. */
START_TEST(outcomes_as_planned_variants)
{
	static const struct {
		uint32_t orders, window, dup, wrong, stale;
		const char *start;
	} v[] = {
	    {300, 1, 0, 0, 0, "2027-03-15T17:45:30.250Z"},
	    {300, 7, 1000, 1000, 0, "2026-11-01T00:00:00Z"},
	    {300, 50, 1000, 0, 1000, "2030-06-30T23:59:59Z"},
	    {300, 4096, 500, 500, 500, "2026-11-01T00:00:00Z"},
	    {12000, 8192, 32, 14, 12, "2026-11-01T00:00:00Z"},
	};
	int i = _i;
	bk_gen_opts o;
	bk_gen_opts_default(&o);
	o.orders = v[i].orders;
	o.window = v[i].window;
	o.dup_per_mille = v[i].dup;
	o.wrong_actor_per_mille = v[i].wrong;
	o.stale_per_mille = v[i].stale;
	ck_assert_int_eq(bk_ts_parse(v[i].start, strlen(v[i].start), &o.start_us), 0);
	plan_run pr;
	run_plan(&o, &pr);
	ck_assert_uint_eq(pr.mismatches, 0);
	if (v[i].dup == 0)
		ck_assert_uint_eq(pr.by_kind[BK_GEN_DUPLICATE], 0);
	if (v[i].wrong == 0)
		ck_assert_uint_eq(pr.by_kind[BK_GEN_WRONG_ACTOR], 0);
	if (v[i].stale == 0)
		ck_assert_uint_eq(pr.by_kind[BK_GEN_STALE], 0);
	if (v[i].dup == 1000)
		ck_assert_uint_gt(pr.by_kind[BK_GEN_DUPLICATE], pr.by_kind[BK_GEN_PLANNED] / 2);
	if (v[i].wrong == 1000)
		ck_assert_uint_gt(pr.by_kind[BK_GEN_WRONG_ACTOR], pr.by_kind[BK_GEN_PLANNED] / 2);
}
END_TEST

START_TEST(first_command_at_start)
{
	bk_gen_opts o;
	bk_gen_opts_default(&o);
	o.orders = 1;
	ck_assert_int_eq(bk_ts_parse("2027-03-15T17:45:30.25Z", 23, &o.start_us), 0);
	bk_gen *g = new_gen(&o);
	bk_gen_cmd gc;
	char err[256];
	ck_assert_int_eq(bk_gen_next(g, &gc, err, sizeof(err)), 1);
	ck_assert_int_eq(gc.kind, BK_GEN_BIND); /* the profile's bind comes before its rules */
	msgpack_zone z;
	ck_assert(msgpack_zone_init(&z, 4096));
	bk_command c;
	ck_assert_int_eq(
	    bk_codec_command_decode(gc.bytes, gc.len, false, false, &z, &c, err, sizeof(err)), 0);
	ck_assert_int_eq(c.at, o.start_us);
	msgpack_zone_destroy(&z);
	bk_gen_free(g);
	ck_assert_str_eq(bk_gen_kind_name(BK_GEN_WRONG_ACTOR), "wrong_actor");
	ck_assert_str_eq(bk_gen_kind_name(BK_GEN__COUNT), "unknown");
}
END_TEST

/* test_gen.sh: run a `bookingctl gen --with-expect` file as a fixture. */
static int run_jsonl(const char *path)
{
	bk_engine *e = bk_engine_new();
	json_t *fails = json_array();
	char err[512];
	int n = fx_run_file(e, path, fails, err, sizeof(err));
	int rc = 0;
	if (n < 0) {
		fprintf(stderr, "%s\n", err);
		rc = 1;
	} else {
		size_t i;
		json_t *f;
		json_array_foreach(fails, i, f)
		{
			if (i < 10)
				fprintf(stderr, "%s\n", json_string_value(f));
		}
		printf("%d commands, %zu not as expected\n", n, json_array_size(fails));
		rc = json_array_size(fails) == 0 && n > 0 ? 0 : 1;
	}
	json_decref(fails);
	bk_engine_free(e);
	return rc;
}

/* test_gen.sh: count the commands of a `--format msgpack` file (maps back to back), each
 * of which must decode as a command; prints the count. */
static int count_msgpack(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 1;
	char *buf = NULL;
	size_t cap = 0, n = 0, r;
	do {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 1 << 20;
			char *nb = realloc(buf, ncap);
			if (!nb) {
				free(buf);
				fclose(f);
				return 1;
			}
			buf = nb;
			cap = ncap;
		}
		r = fread(buf + n, 1, cap - n, f);
		n += r;
	} while (r > 0);
	fclose(f);
	msgpack_zone z;
	if (!msgpack_zone_init(&z, 1 << 16)) {
		free(buf);
		return 1;
	}
	size_t off = 0, count = 0;
	int rc = 0;
	while (off < n && rc == 0) {
		size_t start = off;
		msgpack_object obj;
		bk_command c;
		char err[256];
		msgpack_unpack_return ur = msgpack_unpack(buf, n, &off, &z, &obj);
		if ((ur != MSGPACK_UNPACK_SUCCESS && ur != MSGPACK_UNPACK_EXTRA_BYTES) ||
		    bk_codec_command_decode(buf + start, off - start, false, false, &z, &c, err,
					    sizeof(err)) < 0) {
			fprintf(stderr, "%s: command %zu at byte %zu does not decode\n", path,
				count, start);
			rc = 1;
		}
		msgpack_zone_clear(&z);
		count++;
	}
	msgpack_zone_destroy(&z);
	free(buf);
	printf("%zu\n", count);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--run-jsonl") == 0)
		return run_jsonl(argv[2]);
	if (argc == 3 && strcmp(argv[1], "--count-msgpack") == 0)
		return count_msgpack(argv[2]);
	Suite *s = suite_create("gen");
	TCase *tc = tcase_create("gen");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, same_seed_same_bytes);
	tcase_add_test(tc, bad_options);
	tcase_add_test(tc, outcomes_as_planned);
	tcase_add_loop_test(tc, outcomes_as_planned_variants, 0, 5);
	tcase_add_test(tc, first_command_at_start);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
