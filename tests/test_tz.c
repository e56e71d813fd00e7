/*
 * test_tz.c - Check suite for lib/tz.c: offsets from the system zoneinfo (DST boundaries,
 * half-hour zones, instants past the last transition via the POSIX footer), zone name
 * checks, and hand-made TZif v1 / v2 files that pin the parser and the footer rules.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bk_time.h"
#include "tz.h"

static bk_tzdb *db;

static void db_setup(void)
{
	db = bk_tzdb_new(NULL);
	ck_assert_ptr_nonnull(db);
}

static void db_teardown(void)
{
	bk_tzdb_free(db);
	db = NULL;
}

static int64_t ts(const char *s)
{
	int64_t us;
	ck_assert_msg(bk_ts_parse(s, strlen(s), &us) == 0, "bad test timestamp %s", s);
	return us;
}

/* The offset of zone at instant; fails the test when the zone is unknown. */
static int32_t off_in(bk_tzdb *d, const char *zone, const char *at)
{
	int32_t off = 12345;
	ck_assert_msg(bk_tz_offset(d, zone, ts(at), &off) == 0, "%s unknown at %s", zone, at);
	return off;
}

static int32_t off(const char *zone, const char *at)
{
	return off_in(db, zone, at);
}

START_TEST(tz_paris)
{
	ck_assert_int_eq(off("Europe/Paris", "2026-07-01T12:00:00Z"), 7200);
	ck_assert_int_eq(off("Europe/Paris", "2026-01-15T12:00:00Z"), 3600);
	/* 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00 UTC */
	ck_assert_int_eq(off("Europe/Paris", "2026-03-29T00:59:59Z"), 3600);
	ck_assert_int_eq(off("Europe/Paris", "2026-03-29T01:00:00Z"), 7200);
	ck_assert_int_eq(off("Europe/Paris", "2026-10-25T00:59:59Z"), 7200);
	ck_assert_int_eq(off("Europe/Paris", "2026-10-25T01:00:00Z"), 3600);
	/* before the first transition: local mean time, time type 0 (+0:09:21) */
	ck_assert_int_eq(off("Europe/Paris", "1800-01-01T00:00:00Z"), 561);
}
END_TEST

START_TEST(tz_new_york_kolkata_utc)
{
	/* 2026-03-08 02:00 EST -> 03:00 EDT at 07:00 UTC; back on 2026-11-01 at 06:00 UTC */
	ck_assert_int_eq(off("America/New_York", "2026-03-08T06:59:59Z"), -18000);
	ck_assert_int_eq(off("America/New_York", "2026-03-08T07:00:00Z"), -14400);
	ck_assert_int_eq(off("America/New_York", "2026-11-01T05:59:59Z"), -14400);
	ck_assert_int_eq(off("America/New_York", "2026-11-01T06:00:00Z"), -18000);
	ck_assert_int_eq(off("Asia/Kolkata", "2026-07-01T00:00:00Z"), 19800);
	ck_assert_int_eq(off("Asia/Kolkata", "2026-01-01T00:00:00Z"), 19800);
	ck_assert_int_eq(off("UTC", "2026-07-01T00:00:00Z"), 0);
	ck_assert_int_eq(off("Etc/UTC", "2026-07-01T00:00:00Z"), 0);
	ck_assert_int_eq(off("Etc/GMT-3", "2026-07-01T00:00:00Z"), 10800);
	/* microseconds just before a transition are still before it */
	int32_t o;
	ck_assert_int_eq(bk_tz_offset(db, "America/New_York", ts("2026-03-08T07:00:00Z") - 1, &o),
			 0);
	ck_assert_int_eq(o, -18000);
}
END_TEST

START_TEST(tz_far_future)
{
	/* beyond the files' last transition (2037): the POSIX footer decides */
	ck_assert_int_eq(off("Europe/Paris", "2100-07-01T00:00:00Z"), 7200);
	ck_assert_int_eq(off("Europe/Paris", "2100-01-01T00:00:00Z"), 3600);
	ck_assert_int_eq(off("Europe/Paris", "2099-03-29T00:59:59Z"), 3600);
	ck_assert_int_eq(off("Europe/Paris", "2099-03-29T01:00:00Z"), 7200);
	ck_assert_int_eq(off("America/New_York", "2200-07-04T00:00:00Z"), -14400);
	ck_assert_int_eq(off("America/New_York", "2200-12-25T00:00:00Z"), -18000);
	/* southern hemisphere: DST spans the new year */
	ck_assert_int_eq(off("Australia/Sydney", "2100-01-15T00:00:00Z"), 39600);
	ck_assert_int_eq(off("Australia/Sydney", "2100-07-15T00:00:00Z"), 36000);
	ck_assert_int_eq(off("America/Sao_Paulo", "2100-01-01T00:00:00Z"), -10800);
	ck_assert_int_eq(off("Asia/Kolkata", "2300-01-01T00:00:00Z"), 19800);
	ck_assert_int_eq(off("Europe/Paris", "9999-12-31T23:59:59Z"), 3600);
}
END_TEST

START_TEST(tz_names_rejected)
{
	static const char *const bad[] = {
	    "Mars/Olympus_Mons",
	    "Europe/Pariss",
	    "../../../../etc/passwd",
	    "/etc/passwd",
	    "Europe/../../../etc/passwd",
	    "Europe/./Paris",
	    "Europe//Paris",
	    "Europe/Paris/",
	    "Europe/Paris\n",
	    "Europe/Paris ",
	    "iso3166.tab",
	    "zone.tab",
	    "Europe",
	    "",
	};
	int32_t o = 777;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(bk_tz_offset(db, bad[i], 0, &o) == -1, "accepted '%s'", bad[i]);
	ck_assert_int_eq(bk_tz_offset(db, NULL, 0, &o), -1);
	ck_assert_int_eq(bk_tz_offset(NULL, "Europe/Paris", 0, &o), -1);
	ck_assert_int_eq(o, 777);

	ck_assert(bk_tz_name_valid("America/Argentina/Buenos_Aires"));
	ck_assert(bk_tz_name_valid("Etc/GMT+5"));
	ck_assert(!bk_tz_name_valid(".."));
	ck_assert(!bk_tz_name_valid("a/../b"));
	char longname[300];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	ck_assert(!bk_tz_name_valid(longname));
}
END_TEST

START_TEST(tz_cache)
{
	/* more zones than the cache holds, twice over: evictions keep answers right */
	static const char *const zones[] = {
	    "Europe/Paris",  "America/New_York", "Asia/Kolkata",   "Australia/Sydney",
	    "Europe/London", "Asia/Tokyo",	 "America/Denver", "Africa/Cairo",
	    "Europe/Berlin", "America/Chicago",	 "Asia/Kathmandu", "Pacific/Auckland",
	};
	static const int32_t jan[] = {3600,   -18000, 19800, 39600,  0,	    32400,
				      -25200, 7200,   3600,  -21600, 20700, 46800};
	for (int round = 0; round < 3; round++)
		for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++)
			ck_assert_int_eq(off(zones[i], "2026-01-15T12:00:00Z"), jan[i]);
}
END_TEST

/* ---- hand-made TZif files ---- */

static char tmpdir[64];

static void tmp_setup(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_tz.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	db = bk_tzdb_new(tmpdir);
	ck_assert_ptr_nonnull(db);
}

static void tmp_teardown(void)
{
	char cmd[128];
	bk_tzdb_free(db);
	db = NULL;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

typedef struct buf {
	uint8_t b[1024];
	size_t n;
} buf;

static void put(buf *b, const void *p, size_t n)
{
	ck_assert_uint_le(b->n + n, sizeof b->b);
	if (n == 0)
		return;
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void put_be(buf *b, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--) {
		const uint8_t c = (uint8_t)(v >> (8 * i));
		put(b, &c, 1);
	}
}

typedef struct ttype {
	int32_t off;
	uint8_t isdst;
} ttype;

/* A header and data block: times of tsize bytes, no leap seconds, "XX\0" designations. */
static void put_block(buf *b, char ver, int tsize, const int64_t *times, const uint8_t *idx,
		      int ntimes, const ttype *types, int ntypes)
{
	const uint8_t zeros[15] = {0};
	put(b, "TZif", 4);
	put(b, &ver, 1);
	put(b, zeros, 15);
	put_be(b, 0, 4);      /* isutcnt */
	put_be(b, 0, 4);      /* isstdcnt */
	put_be(b, 0, 4);      /* leapcnt */
	put_be(b, ntimes, 4); /* timecnt */
	put_be(b, ntypes, 4); /* typecnt */
	put_be(b, 3, 4);      /* charcnt */
	for (int i = 0; i < ntimes; i++)
		put_be(b, (uint64_t)times[i], tsize);
	put(b, idx, (size_t)ntimes);
	for (int i = 0; i < ntypes; i++) {
		put_be(b, (uint32_t)types[i].off, 4);
		put(b, &types[i].isdst, 1);
		put_be(b, 0, 1);
	}
	put(b, "XX", 3);
}

static void write_zone(const char *name, const buf *b)
{
	char path[128];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(b->b, 1, b->n, f), b->n);
	ck_assert_int_eq(fclose(f), 0);
}

/* A v2 file with one type (std) and no transitions: the footer decides everything. */
static void write_footer_zone(const char *name, int32_t std, const char *footer)
{
	buf b = {.n = 0};
	const ttype t = {std, 0};
	put_block(&b, '2', 4, NULL, NULL, 0, &t, 1);
	put_block(&b, '2', 8, NULL, NULL, 0, &t, 1);
	put(&b, "\n", 1);
	put(&b, footer, strlen(footer));
	put(&b, "\n", 1);
	write_zone(name, &b);
}

START_TEST(tz_v1_file)
{
	buf b = {.n = 0};
	const int64_t times[] = {1000000000, 1100000000, 1200000000};
	const uint8_t idx[] = {1, 0, 1};
	const ttype types[] = {{3600, 0}, {7200, 1}};

	put_block(&b, '\0', 4, times, idx, 3, types, 2);
	write_zone("Test_V1", &b);
	ck_assert_int_eq(off("Test_V1", "2000-01-01T00:00:00Z"), 3600); /* before the first */
	ck_assert_int_eq(off("Test_V1", "2001-09-09T01:46:40Z"), 7200); /* = 1000000000 */
	ck_assert_int_eq(off("Test_V1", "2001-09-09T01:46:39Z"), 3600);
	ck_assert_int_eq(off("Test_V1", "2005-01-01T00:00:00Z"), 3600);
	ck_assert_int_eq(off("Test_V1", "2100-01-01T00:00:00Z"), 7200); /* last type, no footer */
}
END_TEST

START_TEST(tz_v2_transitions_and_fallback)
{
	buf b = {.n = 0};
	const int64_t times[] = {INT64_C(-5000000000), 0, INT64_C(5000000000)};
	const uint8_t idx[] = {1, 2, 1};
	const ttype types[] = {{-3600, 0}, {0, 0}, {3600, 1}};

	/* a v1 block that disagrees, to show the 64-bit block is the one read */
	const ttype wrong = {9999, 0};
	put_block(&b, '3', 4, NULL, NULL, 0, &wrong, 1);
	put_block(&b, '3', 8, times, idx, 3, types, 3);
	put(&b, "\nnot a tz string\n", 17);
	write_zone("Test_V2", &b);
	ck_assert_int_eq(off("Test_V2", "1800-01-01T00:00:00Z"), -3600);
	ck_assert_int_eq(off("Test_V2", "1900-01-01T00:00:00Z"), 0);
	ck_assert_int_eq(off("Test_V2", "1969-12-31T23:59:59Z"), 0);
	ck_assert_int_eq(off("Test_V2", "1970-01-01T00:00:00Z"), 3600);
	/* past the last transition, a malformed footer falls back to the last type */
	ck_assert_int_eq(off("Test_V2", "2200-01-01T00:00:00Z"), 0);
}
END_TEST

START_TEST(tz_footer_rules)
{
	/* J60 is 1 March in every year; zero-based day 200 is 20 July (19 in leap years) */
	write_footer_zone("Test_J", 10800, "AAA-3BBB,J60/0,200/0");
	ck_assert_int_eq(off("Test_J", "2027-02-28T20:59:59Z"), 10800);
	ck_assert_int_eq(off("Test_J", "2027-02-28T21:00:00Z"), 14400);
	ck_assert_int_eq(off("Test_J", "2027-07-19T19:59:59Z"), 14400);
	ck_assert_int_eq(off("Test_J", "2027-07-19T20:00:00Z"), 10800);
	ck_assert_int_eq(off("Test_J", "2028-02-29T20:59:59Z"), 10800);
	ck_assert_int_eq(off("Test_J", "2028-02-29T21:00:00Z"), 14400);
	ck_assert_int_eq(off("Test_J", "2028-07-18T19:59:59Z"), 14400);
	ck_assert_int_eq(off("Test_J", "2028-07-18T20:00:00Z"), 10800);

	/* quoted names, minutes in offsets, no DST */
	write_footer_zone("Test_Q", -12600, "<-0330>3:30");
	ck_assert_int_eq(off("Test_Q", "2050-06-01T00:00:00Z"), -12600);

	/* explicit DST offset and a negative transition time (RFC 8536 extension):
	 * DST from the last Sunday of March at -1:00 local std (Sat 23:00 local) */
	write_footer_zone("Test_N", 0, "ZZZ0YYY-2,M3.5.0/-1,M10.5.0");
	ck_assert_int_eq(off("Test_N", "2026-03-28T22:59:59Z"), 0);
	ck_assert_int_eq(off("Test_N", "2026-03-28T23:00:00Z"), 7200);
	/* ends the last Sunday of October at 02:00 DST = 00:00 UTC */
	ck_assert_int_eq(off("Test_N", "2026-10-24T23:59:59Z"), 7200);
	ck_assert_int_eq(off("Test_N", "2026-10-25T00:00:00Z"), 0);

	/* DST all year (RFC 8536 §3.3.1 example) */
	write_footer_zone("Test_All", -18000, "EST5EDT,0/0,J365/25");
	ck_assert_int_eq(off("Test_All", "2030-01-01T12:00:00Z"), -14400);
	ck_assert_int_eq(off("Test_All", "2030-07-01T12:00:00Z"), -14400);
	ck_assert_int_eq(off("Test_All", "2030-12-31T23:00:00Z"), -14400);
}
END_TEST

START_TEST(tz_bad_files)
{
	buf b = {.n = 0};
	const int64_t times[] = {100, 50};
	const uint8_t idx[] = {0, 0};
	const ttype t = {0, 0};
	int32_t o;

	put(&b, "# not a TZif file\n", 18);
	write_zone("Text", &b);
	ck_assert_int_eq(bk_tz_offset(db, "Text", 0, &o), -1);

	b.n = 0;
	put_block(&b, '\0', 4, times, idx, 2, &t, 1); /* transitions out of order */
	write_zone("Unordered", &b);
	ck_assert_int_eq(bk_tz_offset(db, "Unordered", 0, &o), -1);

	b.n = 0;
	put_block(&b, '\0', 4, times, idx, 1, &t, 1);
	b.n -= 2; /* truncated */
	write_zone("Short", &b);
	ck_assert_int_eq(bk_tz_offset(db, "Short", 0, &o), -1);

	b.n = 0;
	put_block(&b, '2', 4, NULL, NULL, 0, &t, 1); /* v2 without its 64-bit block */
	write_zone("NoV2", &b);
	ck_assert_int_eq(bk_tz_offset(db, "NoV2", 0, &o), -1);

	char dir[128];
	snprintf(dir, sizeof dir, "%s/Dir", tmpdir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(bk_tz_offset(db, "Dir", 0, &o), -1);
	ck_assert_int_eq(bk_tz_offset(db, "Missing", 0, &o), -1);
	/* UTC needs no file */
	ck_assert_int_eq(bk_tz_offset(db, "UTC", 0, &o), 0);
	ck_assert_int_eq(o, 0);
	ck_assert_int_eq(bk_tz_offset(db, "Etc/UTC", 0, &o), 0);
}
END_TEST

static Suite *tz_suite(void)
{
	Suite *s = suite_create("tz");
	TCase *tc;

	tc = tcase_create("zoneinfo");
	tcase_add_checked_fixture(tc, db_setup, db_teardown);
	tcase_add_test(tc, tz_paris);
	tcase_add_test(tc, tz_new_york_kolkata_utc);
	tcase_add_test(tc, tz_far_future);
	tcase_add_test(tc, tz_names_rejected);
	tcase_add_test(tc, tz_cache);
	suite_add_tcase(s, tc);

	tc = tcase_create("tzif");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_test(tc, tz_v1_file);
	tcase_add_test(tc, tz_v2_transitions_and_fallback);
	tcase_add_test(tc, tz_footer_rules);
	tcase_add_test(tc, tz_bad_files);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tz_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
