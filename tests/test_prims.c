/*
 * test_prims.c - Check suite for the core primitives: RFC 3339 time, money, derived ids,
 * the hash chain and its reader rule (every verdict), and command authentication.
 * Expected hashes and ids were computed independently (Python hashlib.blake2b).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bk_auth.h"
#include "bk_chain.h"
#include "bk_ids.h"
#include "bk_money.h"
#include "bk_time.h"

/* ---- time ---- */

static int64_t ts(const char *s)
{
	int64_t us = 42;
	ck_assert_msg(bk_ts_parse(s, strlen(s), &us) == 0, "should parse: %s", s);
	return us;
}

static void ts_bad(const char *s)
{
	int64_t us = 42;
	ck_assert_msg(bk_ts_parse(s, strlen(s), &us) == -1, "should reject: %s", s);
	ck_assert_int_eq(us, 42);
}

START_TEST(time_parse_valid)
{
	ck_assert_int_eq(ts("1970-01-01T00:00:00Z"), 0);
	ck_assert_int_eq(ts("2026-12-01T15:00:00Z"), INT64_C(1796137200) * BK_US_PER_S);
	ck_assert_int_eq(ts("2026-12-01t15:00:00z"), INT64_C(1796137200) * BK_US_PER_S);
	ck_assert_int_eq(ts("2026-12-01T15:00:00+02:00"), INT64_C(1796130000) * BK_US_PER_S);
	ck_assert_int_eq(ts("2026-12-01T15:00:00-05:30"), INT64_C(1796157000) * BK_US_PER_S);
	ck_assert_int_eq(ts("2026-12-01T15:00:00-00:00"), INT64_C(1796137200) * BK_US_PER_S);
	ck_assert_int_eq(ts("2026-12-01T15:00:00.123Z"),
			 INT64_C(1796137200) * BK_US_PER_S + 123000);
	ck_assert_int_eq(ts("2026-12-01T15:00:00.1Z"), INT64_C(1796137200) * BK_US_PER_S + 100000);
	ck_assert_int_eq(ts("2026-12-01T15:00:00.123456789+00:00"),
			 INT64_C(1796137200) * BK_US_PER_S + 123456);
	ck_assert_int_eq(ts("1969-12-31T23:59:59.5Z"), -500000);
	ck_assert_int_eq(ts("0000-01-01T00:00:00Z"), INT64_C(-62167219200) * BK_US_PER_S);
	ck_assert_int_eq(ts("9999-12-31T23:59:59Z"), INT64_C(253402300799) * BK_US_PER_S);
	/* leap years */
	ck_assert_int_eq(ts("2024-02-29T00:00:00Z"), INT64_C(1709164800) * BK_US_PER_S);
	ck_assert_int_eq(ts("2000-02-29T00:00:00Z"), INT64_C(11016) * 86400 * BK_US_PER_S);
	/* only n bytes are read */
	const char *s = "2026-12-01T15:00:00Zjunk";
	int64_t us;
	ck_assert_int_eq(bk_ts_parse(s, 20, &us), 0);
	ck_assert_int_eq(us, INT64_C(1796137200) * BK_US_PER_S);
}
END_TEST

START_TEST(time_parse_invalid)
{
	static const char *const bad[] = {
	    "",
	    "2026-12-01",
	    "2026-12-01T15:00:00",
	    "2026-12-01 15:00:00Z",
	    "2026-12-01T15:00Z",
	    "2026-12-01T15:00:00ZZ",
	    "2026-12-01T15:00:00Z ",
	    " 2026-12-01T15:00:00Z",
	    "2026-12-1T15:00:00Z",
	    "26-12-01T15:00:00Z",
	    "+2026-12-01T15:00:00Z",
	    "2026/12/01T15:00:00Z",
	    "2026-13-01T15:00:00Z",
	    "2026-00-01T15:00:00Z",
	    "2026-12-00T15:00:00Z",
	    "2026-12-32T15:00:00Z",
	    "2026-04-31T15:00:00Z",
	    "2023-02-29T00:00:00Z",
	    "1900-02-29T00:00:00Z",
	    "2026-12-01T24:00:00Z",
	    "2026-12-01T15:60:00Z",
	    "2026-12-01T15:00:60Z",
	    "2026-12-01T15:00:00.Z",
	    "2026-12-01T15:00:00.1234567890Z",
	    "2026-12-01T15:00:00,5Z",
	    "2026-12-01T15:00:00+0200",
	    "2026-12-01T15:00:00+02",
	    "2026-12-01T15:00:00+24:00",
	    "2026-12-01T15:00:00+02:60",
	    "2026-12-01T15:00:00 +02:00",
	    "2026-12-01T15:00:00UTC",
	    "2026-12-01T1a:00:00Z",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ts_bad(bad[i]);
	int64_t us = 42;
	ck_assert_int_eq(bk_ts_parse(NULL, 0, &us), -1);
	ck_assert_int_eq(bk_ts_parse("2026-12-01T15:00:00Z", 19, &us), -1);
}
END_TEST

static void fmt_is(int64_t us, const char *want)
{
	char buf[32];
	const size_t n = bk_ts_format(us, buf, sizeof buf);
	ck_assert_str_eq(buf, want);
	ck_assert_uint_eq(n, strlen(want));
}

START_TEST(time_format)
{
	fmt_is(0, "1970-01-01T00:00:00Z");
	fmt_is(INT64_C(1796137200) * BK_US_PER_S, "2026-12-01T15:00:00Z");
	fmt_is(INT64_C(1796137200) * BK_US_PER_S + 123000, "2026-12-01T15:00:00.123000Z");
	fmt_is(INT64_C(1796137200) * BK_US_PER_S + 1, "2026-12-01T15:00:00.000001Z");
	fmt_is(-1, "1969-12-31T23:59:59.999999Z");
	fmt_is(-500000, "1969-12-31T23:59:59.500000Z");
	fmt_is(INT64_C(253402300799) * BK_US_PER_S, "9999-12-31T23:59:59Z");
	fmt_is(INT64_C(-62167219200) * BK_US_PER_S, "0000-01-01T00:00:00Z");

	/* a short buffer is NUL-terminated and the length says what it holds */
	char small[8];
	ck_assert_uint_eq(bk_ts_format(0, small, sizeof small), 7);
	ck_assert_str_eq(small, "1970-01");
	ck_assert_uint_eq(bk_ts_format(0, small, 0), 0);

	/* round trip across leap years, month ends and pre-epoch instants */
	for (int64_t s = INT64_C(-5000000000); s < INT64_C(9000000000); s += 7654321) {
		char buf[32];
		int64_t back;
		const int64_t us = s * BK_US_PER_S + (s % 3 == 0 ? 0 : (s & 0xfffff) % 1000000);
		const size_t n = bk_ts_format(us, buf, sizeof buf);
		ck_assert_int_eq(bk_ts_parse(buf, n, &back), 0);
		ck_assert_int_eq(back, us);
	}
}
END_TEST

START_TEST(time_civil_weekday)
{
	int y, m, d;
	bk_civil_from_days(0, &y, &m, &d);
	ck_assert(y == 1970 && m == 1 && d == 1);
	bk_civil_from_days(-1, &y, &m, &d);
	ck_assert(y == 1969 && m == 12 && d == 31);
	bk_civil_from_days(11016, &y, &m, &d);
	ck_assert(y == 2000 && m == 2 && d == 29);
	bk_civil_from_days(-719468, &y, &m, &d);
	ck_assert(y == 0 && m == 3 && d == 1);

	const int64_t day_us = 86400 * BK_US_PER_S;
	ck_assert_int_eq(bk_weekday_mon0(0, 0), 3); /* Thursday */
	ck_assert_int_eq(bk_weekday_mon0(-1, 0), 2);
	ck_assert_int_eq(bk_weekday_mon0(ts("2026-12-01T15:00:00Z"), 0), 1); /* Tuesday */
	ck_assert_int_eq(bk_weekday_mon0(ts("2026-12-06T12:00:00Z"), 0), 6); /* Sunday */
	ck_assert_int_eq(bk_weekday_mon0(ts("2026-12-07T12:00:00Z"), 0), 0); /* Monday */
	/* the offset moves the local date across midnight, both ways */
	ck_assert_int_eq(bk_weekday_mon0(ts("2026-12-01T23:30:00Z"), 3600), 2);
	ck_assert_int_eq(bk_weekday_mon0(ts("2026-12-01T00:30:00Z"), -3600), 0);
	ck_assert_int_eq(bk_weekday_mon0(ts("2026-12-01T00:00:00Z") + 7 * day_us, 0), 1);
}
END_TEST

/* ---- money ---- */

START_TEST(money_checked)
{
	int64_t r = 7;
	ck_assert(bk_cents_add(100, 250, &r) && r == 350);
	ck_assert(bk_cents_add(INT32_MAX - 1, 1, &r) && r == INT32_MAX);
	ck_assert(bk_cents_add(INT32_MIN, 0, &r) && r == INT32_MIN);
	ck_assert(bk_cents_add(-500, 200, &r) && r == -300);
	r = 7;
	ck_assert(!bk_cents_add(INT32_MAX, 1, &r) && r == 7);
	ck_assert(!bk_cents_add(INT32_MIN, -1, &r) && r == 7);
	ck_assert(!bk_cents_add((int64_t)INT32_MAX + 1, -1, &r) && r == 7); /* operand too big */
	ck_assert(!bk_cents_add(INT64_MAX, INT64_MIN, &r) && r == 7);

	ck_assert(bk_cents_mul(3, 1999, &r) && r == 5997);
	ck_assert(bk_cents_mul(-2, 1000, &r) && r == -2000);
	ck_assert(bk_cents_mul(0, INT32_MAX, &r) && r == 0);
	ck_assert(bk_cents_mul(46340, 46340, &r) && r == 2147395600);
	r = 7;
	ck_assert(!bk_cents_mul(46341, 46341, &r) && r == 7);
	ck_assert(!bk_cents_mul(INT32_MIN, -1, &r) && r == 7);
	ck_assert(!bk_cents_mul(INT64_MAX, 0, &r) && r == 7);
	ck_assert(!bk_cents_mul(INT32_MAX, INT32_MAX, &r) && r == 7);

	ck_assert(bk_cents_fits(0) && bk_cents_fits(INT32_MAX) && bk_cents_fits(INT32_MIN));
	ck_assert(!bk_cents_fits((int64_t)INT32_MAX + 1) && !bk_cents_fits((int64_t)INT32_MIN - 1));
}
END_TEST

/* ---- ids ---- */

START_TEST(ids_derive)
{
	char a[BK_ID_MAX], b[BK_ID_MAX];
	size_t n = bk_id_derive(a, "acd_", "cmd_01J000", "card", 0);

	ck_assert_uint_eq(n, 4 + 26);
	ck_assert_str_eq(a, "acd_7AVHDQW7SYPEHFSFWWQ3SZWKCM");
	ck_assert(bk_id_valid(a, n, "acd_"));
	ck_assert(a[4] >= '0' && a[4] <= '7');

	bk_id_derive(b, "acd_", "cmd_01J000", "card", 0);
	ck_assert_str_eq(a, b); /* a replay mints the same id */
	bk_id_derive(b, "acd_", "cmd_01J000", "card", 1);
	ck_assert_str_ne(a, b);
	bk_id_derive(b, "acd_", "cmd_01J000", "cards", 0);
	ck_assert_str_ne(a, b);
	bk_id_derive(b, "acd_", "cmd_01J001", "card", 0);
	ck_assert_str_ne(a, b);
	/* fields are length-prefixed: moving a byte between them changes the id */
	bk_id_derive(a, "x_", "ab", "c", 0);
	bk_id_derive(b, "x_", "a", "bc", 0);
	ck_assert_str_ne(a, b);

	for (uint32_t i = 0; i < 200; i++) {
		n = bk_id_derive(a, "tev_", "cmd_x", "event", i);
		ck_assert_uint_eq(n, 30);
		for (size_t k = 4; k < n; k++)
			ck_assert_msg(strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", a[k]) != NULL,
				      "not Crockford: %s", a);
	}
	/* a prefix too long for BK_ID_MAX yields "" */
	char longp[64];
	memset(longp, 'p', sizeof longp - 1);
	longp[sizeof longp - 1] = '\0';
	ck_assert_uint_eq(bk_id_derive(a, longp, "c", "l", 0), 0);
	ck_assert_str_eq(a, "");
	ck_assert_uint_eq(bk_id_derive(a, NULL, "c", "l", 0), 26);
}
END_TEST

START_TEST(ids_valid_fingerprint)
{
	char big[BK_ID_MAX + 1];
	ck_assert(bk_id_valid("ord_123", 7, "ord_"));
	ck_assert(bk_id_valid("ord_123", 7, NULL));
	ck_assert(bk_id_valid("a.b:c-d_E9", 10, NULL));
	ck_assert(!bk_id_valid("ord_123", 7, "tev_"));
	ck_assert(!bk_id_valid("ord_", 4, "ord_"));
	ck_assert(!bk_id_valid("or", 2, "ord_"));
	ck_assert(!bk_id_valid("", 0, NULL));
	ck_assert(!bk_id_valid("ord 1", 5, NULL));
	ck_assert(!bk_id_valid("ord/1", 5, NULL));
	ck_assert(!bk_id_valid("ord\0"
			       "1",
			       5, NULL));
	ck_assert(!bk_id_valid(NULL, 3, NULL));
	memset(big, 'a', sizeof big);
	ck_assert(bk_id_valid(big, BK_ID_MAX - 1, NULL));
	ck_assert(!bk_id_valid(big, BK_ID_MAX, NULL));
	/* every byte value, alone and at each end of a longer id (the table of id
	 * characters against the rule spelled out) */
	for (int b = 0; b < 256; b++) {
		bool ok = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
			  (b >= '0' && b <= '9') || b == '_' || b == '.' || b == ':' || b == '-';
		char one[3] = {(char)b, 'x', 'y'};
		ck_assert_msg(bk_id_valid(one, 1, NULL) == ok, "byte 0x%02x", b);
		ck_assert(bk_id_valid(one, 3, NULL) == ok);
		char end[3] = {'x', 'y', (char)b};
		ck_assert(bk_id_valid(end, 3, NULL) == ok);
	}

	/* SipHash-2-4 (crypto_shorthash), key "booking-log-fp-1", little-endian */
	ck_assert_uint_eq(bk_id_fingerprint("abc", 3), UINT64_C(0x1baea65f90c293ce));
	ck_assert_uint_eq(bk_id_fingerprint("abcd", 3), UINT64_C(0x1baea65f90c293ce));
	ck_assert_uint_ne(bk_id_fingerprint("abd", 3), bk_id_fingerprint("abc", 3));
}
END_TEST

/* ---- chain ---- */

static const uint8_t zero[BK_HASH_LEN];

START_TEST(chain_hash_hex)
{
	uint8_t h[BK_HASH_LEN], back[BK_HASH_LEN];
	char hex[2 * BK_HASH_LEN + 1];

	bk_chain_hash(zero, (const uint8_t *)"hello", 5, h);
	bk_hex(h, sizeof h, hex);
	ck_assert_str_eq(hex, "4c23fec91df812b234e8a6e81e716d99824df735d4c6122aaacd3584c90e559d");
	bk_chain_hash(zero, NULL, 0, h);
	bk_hex(h, sizeof h, hex);
	ck_assert_str_eq(hex, "89eb0d6a8a691dae2cd15ed0369931ce0a949ecafa5c3f93f8121833646e15c3");

	ck_assert_int_eq(bk_unhex(hex, strlen(hex), back, sizeof back), 0);
	ck_assert_mem_eq(back, h, sizeof h);
	ck_assert_int_eq(bk_unhex("0aFf", 4, back, 2), 0);
	ck_assert(back[0] == 0x0a && back[1] == 0xff);

	memset(back, 0x5a, sizeof back);
	ck_assert_int_eq(bk_unhex("0g", 2, back, 1), -1);
	ck_assert_int_eq(bk_unhex("abc", 3, back, 2), -1);
	ck_assert_int_eq(bk_unhex("abcd", 4, back, 1), -1);
	ck_assert_int_eq(bk_unhex("ab", 2, back, 2), -1);
	ck_assert_int_eq(bk_unhex(" abc", 4, back, 2), -1);
	ck_assert_int_eq(back[0], 0x5a); /* untouched on error */
	ck_assert_int_eq(bk_unhex("", 0, back, 0), 0);
}
END_TEST

/* A reader's history: hashes of seq 1..n. */
typedef struct history {
	uint8_t h[8][BK_HASH_LEN];
	int64_t n;
	int calls;
} history;

static int hist_at(void *opaque, int64_t seq, uint8_t ret_hash[BK_HASH_LEN])
{
	history *hs = opaque;
	hs->calls++;
	if (seq < 1 || seq > hs->n)
		return -1;
	memcpy(ret_hash, hs->h[seq - 1], BK_HASH_LEN);
	return 0;
}

static int hist_none(void *opaque, int64_t seq, uint8_t ret_hash[BK_HASH_LEN])
{
	(void)opaque;
	(void)seq;
	(void)ret_hash;
	return -1;
}

START_TEST(chain_classify_all_verdicts)
{
	history hs = {.n = 0};
	const uint8_t *prev = zero;
	uint8_t other[BK_HASH_LEN];

	for (int i = 0; i < 4; i++) {
		char canon[16];
		snprintf(canon, sizeof canon, "event-%d", i + 1);
		bk_chain_hash(prev, (const uint8_t *)canon, strlen(canon), hs.h[i]);
		/* each new event links: NEXT (the first one chains from zero bytes) */
		ck_assert_int_eq(bk_chain_classify(hs.n, hs.n ? hs.h[hs.n - 1] : zero, i + 1, prev,
						   hs.h[i], hist_at, &hs),
				 BK_CHAIN_NEXT);
		prev = hs.h[i];
		hs.n++;
	}
	const uint8_t *last = hs.h[3];
	bk_chain_hash(zero, (const uint8_t *)"forged", 6, other);

	/* seq = last+1 not linking: a bad link, never a fork */
	ck_assert_int_eq(bk_chain_classify(4, last, 5, hs.h[2], other, hist_at, &hs),
			 BK_CHAIN_BAD_LINK);
	ck_assert_int_eq(bk_chain_classify(0, zero, 1, other, other, NULL, NULL),
			 BK_CHAIN_BAD_LINK);
	/* gaps cannot link to anything: bad links */
	ck_assert_int_eq(bk_chain_classify(4, last, 6, last, other, hist_at, &hs),
			 BK_CHAIN_BAD_LINK);
	ck_assert_int_eq(bk_chain_classify(0, zero, 2, zero, other, NULL, NULL), BK_CHAIN_BAD_LINK);
	/* seq = last: compared with last_hash; a valid other event at it links to seq 3 */
	hs.calls = 0;
	ck_assert_int_eq(bk_chain_classify(4, last, 4, hs.h[2], last, hist_at, &hs),
			 BK_CHAIN_DUPLICATE);
	ck_assert_int_eq(bk_chain_classify(4, last, 4, hs.h[2], other, hist_at, &hs),
			 BK_CHAIN_FORK);
	ck_assert_int_eq(bk_chain_classify(4, last, 4, hs.h[2], last, NULL, NULL),
			 BK_CHAIN_DUPLICATE);
	/* without a lookup the link to seq 3 cannot be shown */
	ck_assert_int_eq(bk_chain_classify(4, last, 4, hs.h[2], other, NULL, NULL),
			 BK_CHAIN_BAD_LINK);
	/* another event at seq 4 that does not link to seq 3: bad link */
	ck_assert_int_eq(bk_chain_classify(4, last, 4, other, other, hist_at, &hs),
			 BK_CHAIN_BAD_LINK);
	/* seq < last: looked up */
	ck_assert_int_eq(bk_chain_classify(4, last, 2, hs.h[0], hs.h[1], hist_at, &hs),
			 BK_CHAIN_DUPLICATE);
	ck_assert_int_eq(bk_chain_classify(4, last, 1, zero, hs.h[0], hist_at, &hs),
			 BK_CHAIN_DUPLICATE);
	ck_assert_int_eq(bk_chain_classify(4, last, 2, hs.h[0], other, hist_at, &hs),
			 BK_CHAIN_FORK);
	ck_assert_int_eq(bk_chain_classify(4, last, 1, zero, other, hist_at, &hs), BK_CHAIN_FORK);
	ck_assert_int_eq(bk_chain_classify(4, last, 2, other, other, hist_at, &hs),
			 BK_CHAIN_BAD_LINK);
	/* seq < last that cannot be compared: not shown valid */
	ck_assert_int_eq(bk_chain_classify(4, last, 2, hs.h[0], hs.h[1], NULL, NULL),
			 BK_CHAIN_BAD_LINK);
	ck_assert_int_eq(bk_chain_classify(4, last, 2, hs.h[0], hs.h[1], hist_none, NULL),
			 BK_CHAIN_BAD_LINK);
	/* seq < 1 never exists */
	ck_assert_int_eq(bk_chain_classify(4, last, 0, zero, hs.h[0], hist_at, &hs),
			 BK_CHAIN_BAD_LINK);
	ck_assert_int_eq(bk_chain_classify(0, zero, 0, zero, zero, NULL, NULL), BK_CHAIN_BAD_LINK);
	ck_assert_int_eq(bk_chain_classify(4, last, INT64_MIN, zero, zero, NULL, NULL),
			 BK_CHAIN_BAD_LINK);
	ck_assert_int_eq(bk_chain_classify(4, last, INT64_MAX, last, zero, NULL, NULL),
			 BK_CHAIN_BAD_LINK);

	ck_assert_str_eq(bk_chain_verdict_name(BK_CHAIN_NEXT), "next");
	ck_assert_str_eq(bk_chain_verdict_name(BK_CHAIN_DUPLICATE), "duplicate");
	ck_assert_str_eq(bk_chain_verdict_name(BK_CHAIN_FORK), "fork");
	ck_assert_str_eq(bk_chain_verdict_name(BK_CHAIN_BAD_LINK), "bad_link");
	ck_assert_str_eq(bk_chain_verdict_name(BK_CHAIN_UNSEALED), "unsealed");
	ck_assert(!bk_chain_verdict_reported(BK_CHAIN_DUPLICATE));
	ck_assert(bk_chain_verdict_reported(BK_CHAIN_FORK));
	ck_assert_str_eq(bk_chain_verdict_name((bk_chain_verdict)99), "?");
}
END_TEST

/* ---- auth ---- */

static uint8_t pk1[BK_PK_LEN], sk1[BK_SK_LEN], pk2[BK_PK_LEN], sk2[BK_SK_LEN];
static char ring_text[1024];

static void auth_setup(void)
{
	char b1[64], b2[64];

	ck_assert_int_ge(sodium_init(), 0);
	ck_assert_int_eq(bk_auth_keygen(pk1, sk1), 0);
	ck_assert_int_eq(bk_auth_keygen(pk2, sk2), 0);
	ck_assert_int_eq(bk_b64_encode(pk1, sizeof pk1, b1, sizeof b1), 44);
	ck_assert_int_eq(bk_b64_encode(pk2, sizeof pk2, b2, sizeof b2), 44);
	snprintf(ring_text, sizeof ring_text,
		 "# upstream keys\n"
		 "\n"
		 "web-1\t%s  buyer,provider   # the web app\r\n"
		 "payments-1 %s system payment.,refund.\n"
		 "   \n",
		 b1, b2);
}

static bk_keyring *ring(void)
{
	bk_keyring *kr = NULL;
	char err[128];
	ck_assert_msg(bk_keyring_parse(ring_text, strlen(ring_text), &kr, err, sizeof err) == 0,
		      "%s", err);
	return kr;
}

static int verify(const bk_keyring *kr, const char *kid, const uint8_t *sig, const char *msg,
		  bk_role role, const char *type, char *err, size_t errsz)
{
	err[0] = '\0';
	return bk_auth_verify(kr, kid, strlen(kid), sig, BK_SIG_LEN, msg, strlen(msg), role, type,
			      err, errsz);
}

START_TEST(auth_sign_verify)
{
	bk_keyring *kr = ring();
	const char *msg = "{\"id\":\"cmd_1\",\"type\":\"request.accept\"}";
	uint8_t sig[BK_SIG_LEN], sig2[BK_SIG_LEN];
	char err[128];

	ck_assert_uint_eq(bk_keyring_count(kr), 2);
	bk_auth_sign(sk1, msg, strlen(msg), sig);
	bk_auth_sign(sk2, msg, strlen(msg), sig2);

	ck_assert_int_eq(
	    verify(kr, "web-1", sig, msg, BK_ROLE_PROVIDER, "request.accept", err, sizeof err), 0);
	ck_assert_int_eq(
	    verify(kr, "web-1", sig, msg, BK_ROLE_BUYER, "order.cancel", err, sizeof err), 0);
	/* a key without a type column may sign any type for its roles */
	ck_assert_int_eq(verify(kr, "web-1", sig, msg, BK_ROLE_BUYER, NULL, err, sizeof err), 0);
	ck_assert_int_eq(verify(kr, "payments-1", sig2, msg, BK_ROLE_SYSTEM, "payment.captured",
				err, sizeof err),
			 0);
	ck_assert_int_eq(
	    verify(kr, "payments-1", sig2, msg, BK_ROLE_SYSTEM, "refund.issued", err, sizeof err),
	    0);
	bk_keyring_free(kr);
}
END_TEST

START_TEST(auth_rejections)
{
	bk_keyring *kr = ring();
	const char *msg = "{\"id\":\"cmd_1\",\"type\":\"payment.captured\"}";
	uint8_t sig[BK_SIG_LEN], sig2[BK_SIG_LEN], forged[BK_SIG_LEN];
	char err[128];

	bk_auth_sign(sk1, msg, strlen(msg), sig);
	bk_auth_sign(sk2, msg, strlen(msg), sig2);

	/* forged signature: one bit flipped */
	memcpy(forged, sig, sizeof forged);
	forged[10] ^= 0x01;
	ck_assert_int_eq(verify(kr, "web-1", forged, msg, BK_ROLE_BUYER, "x.y", err, sizeof err),
			 -1);
	ck_assert_str_eq(err, "bad signature");
	/* the message was altered after signing */
	ck_assert_int_eq(
	    verify(kr, "web-1", sig, "{\"id\":\"cmd_2\"}", BK_ROLE_BUYER, "x.y", err, sizeof err),
	    -1);
	ck_assert_str_eq(err, "bad signature");
	/* signed with another key than the key id names */
	ck_assert_int_eq(verify(kr, "web-1", sig2, msg, BK_ROLE_BUYER, "x.y", err, sizeof err), -1);
	ck_assert_str_eq(err, "bad signature");
	ck_assert_int_eq(
	    verify(kr, "payments-1", sig, msg, BK_ROLE_SYSTEM, "payment.captured", err, sizeof err),
	    -1);
	ck_assert_str_eq(err, "bad signature");
	/* unknown key id, and a key id that is a prefix of a known one */
	ck_assert_int_eq(verify(kr, "web-2", sig, msg, BK_ROLE_BUYER, "x.y", err, sizeof err), -1);
	ck_assert_str_eq(err, "unknown key id");
	ck_assert_int_eq(verify(kr, "web", sig, msg, BK_ROLE_BUYER, "x.y", err, sizeof err), -1);
	ck_assert_str_eq(err, "unknown key id");
	/* role not allowed */
	ck_assert_int_eq(
	    verify(kr, "web-1", sig, msg, BK_ROLE_SYSTEM, "payment.captured", err, sizeof err), -1);
	ck_assert_str_eq(err, "key may not assert role system");
	ck_assert_int_eq(
	    verify(kr, "payments-1", sig2, msg, BK_ROLE_BUYER, "payment.captured", err, sizeof err),
	    -1);
	ck_assert_str_eq(err, "key may not assert role buyer");
	/* type prefix not allowed */
	ck_assert_int_eq(
	    verify(kr, "payments-1", sig2, msg, BK_ROLE_SYSTEM, "order.cancel", err, sizeof err),
	    -1);
	ck_assert_str_eq(err, "key may not assert role system for order.cancel");
	ck_assert_int_eq(
	    verify(kr, "payments-1", sig2, msg, BK_ROLE_SYSTEM, "payment", err, sizeof err), -1);
	ck_assert_int_eq(verify(kr, "payments-1", sig2, msg, BK_ROLE_SYSTEM, NULL, err, sizeof err),
			 -1);
	/* signature of the wrong length */
	ck_assert_int_eq(bk_auth_verify(kr, "web-1", 5, sig, 63, msg, strlen(msg), BK_ROLE_BUYER,
					"x.y", err, sizeof err),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "signature length"));
	/* errstr may be NULL */
	ck_assert_int_eq(bk_auth_verify(kr, "web-1", 5, forged, BK_SIG_LEN, msg, strlen(msg),
					BK_ROLE_BUYER, "x.y", NULL, 0),
			 -1);
	bk_keyring_free(kr);
}
END_TEST

static void parse_err(const char *text, const char *want)
{
	bk_keyring *kr = (bk_keyring *)&kr; /* a sentinel: must stay untouched */
	bk_keyring *const sentinel = kr;
	char err[256] = "";

	ck_assert_msg(bk_keyring_parse(text, strlen(text), &kr, err, sizeof err) == -1,
		      "should fail: %s", text);
	ck_assert_ptr_eq(kr, sentinel);
	ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
}

START_TEST(auth_keyring_parse_errors)
{
	char b1[64], spki[64], t[512];
	uint8_t der[44];

	ck_assert_int_eq(bk_b64_encode(pk1, sizeof pk1, b1, sizeof b1), 44);

	snprintf(t, sizeof t, "k1 %s buyer\nk2 %s shopper\n", b1, b1);
	parse_err(t, "line 2: unknown role 'shopper'");
	snprintf(t, sizeof t, "# c\nk1 %s\n", b1);
	parse_err(t, "line 2: 2 fields");
	snprintf(t, sizeof t, "k1 %s system payment. extra\n", b1);
	parse_err(t, "line 1: 5 fields");
	parse_err("k1 not*base64 buyer\n", "line 1: public key is not standard padded base64");
	parse_err("k1 AAAA buyer\n", "line 1: public key is 3 bytes");
	snprintf(t, sizeof t, "k1 %s buyer\n\nk1 %s provider\n", b1, b1);
	parse_err(t, "line 3: duplicate key id 'k1'");
	snprintf(t, sizeof t, "k1 %s buyer payment.\n", b1);
	parse_err(t, "line 1: type prefixes apply to role system");
	snprintf(t, sizeof t, "k1 %s buyer,,system\n", b1);
	parse_err(t, "line 1: empty role");
	snprintf(t, sizeof t, "k1 %s system payment.,\n", b1);
	parse_err(t, "line 1: empty type prefix");
	snprintf(t, sizeof t, "k1 %s system pay*\n", b1);
	parse_err(t, "line 1: bad character in type prefixes");
	snprintf(t, sizeof t, "k/1 %s buyer\n", b1);
	parse_err(t, "line 1: bad key id 'k/1'");

	/* comments, blank lines, CRLF and an SPKI DER key are fine; an empty ring too */
	static const uint8_t spki_prefix[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
						0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
	memcpy(der, spki_prefix, sizeof spki_prefix);
	memcpy(der + sizeof spki_prefix, pk1, 32);
	ck_assert_int_eq(bk_b64_encode(der, sizeof der, spki, sizeof spki), 60);
	snprintf(t, sizeof t, "# only comments\r\n\r\nk1 %s support\r\nk2 %s system,buyer", spki,
		 b1);
	bk_keyring *kr = NULL;
	char err[128];
	ck_assert_int_eq(bk_keyring_parse(t, strlen(t), &kr, err, sizeof err), 0);
	ck_assert_uint_eq(bk_keyring_count(kr), 2);
	uint8_t sig[BK_SIG_LEN];
	bk_auth_sign(sk1, "m", 1, sig);
	ck_assert_int_eq(bk_auth_verify(kr, "k1", 2, sig, sizeof sig, "m", 1, BK_ROLE_SUPPORT,
					"dispute.resolve", err, sizeof err),
			 0);
	ck_assert_int_eq(bk_auth_verify(kr, "k2", 2, sig, sizeof sig, "m", 1, BK_ROLE_SYSTEM,
					"order.start", err, sizeof err),
			 0);
	bk_keyring_free(kr);
	kr = NULL;
	ck_assert_int_eq(bk_keyring_parse("# nothing\n", 10, &kr, err, sizeof err), 0);
	ck_assert_uint_eq(bk_keyring_count(kr), 0);
	bk_keyring_free(kr);
	bk_keyring_free(NULL);
	ck_assert_uint_eq(bk_keyring_count(NULL), 0);
}
END_TEST

START_TEST(auth_base64)
{
	const uint8_t in[5] = {0xde, 0xad, 0xbe, 0xef, 0x01};
	uint8_t out[8];
	char b[16];

	ck_assert_int_eq(bk_b64_encode(in, sizeof in, b, sizeof b), 8);
	ck_assert_str_eq(b, "3q2+7wE=");
	ck_assert_int_eq(bk_b64_decode(b, 8, out, sizeof out), 5);
	ck_assert_mem_eq(out, in, 5);
	ck_assert_int_eq(bk_b64_decode("3q2+7wE=\n", 9, out, sizeof out), 5); /* key files */
	ck_assert_int_eq(bk_b64_encode(in, sizeof in, b, 8), -1);	      /* no room for NUL */
	ck_assert_int_eq(bk_b64_decode("3q2-7wE=", 8, out, sizeof out), -1);  /* URL variant */
	ck_assert_int_eq(bk_b64_decode("3q2+7wE", 7, out, sizeof out), -1);   /* unpadded */
	ck_assert_int_eq(bk_b64_decode("3q2+7wE=", 8, out, 4), -1);	      /* too long */
	ck_assert_int_eq(bk_b64_decode("", 0, out, sizeof out), 0);
}
END_TEST

static Suite *prims_suite(void)
{
	Suite *s = suite_create("prims");
	TCase *tc;

	tc = tcase_create("time");
	tcase_add_test(tc, time_parse_valid);
	tcase_add_test(tc, time_parse_invalid);
	tcase_add_test(tc, time_format);
	tcase_add_test(tc, time_civil_weekday);
	suite_add_tcase(s, tc);

	tc = tcase_create("money");
	tcase_add_test(tc, money_checked);
	suite_add_tcase(s, tc);

	tc = tcase_create("ids");
	tcase_add_test(tc, ids_derive);
	tcase_add_test(tc, ids_valid_fingerprint);
	suite_add_tcase(s, tc);

	tc = tcase_create("chain");
	tcase_add_test(tc, chain_hash_hex);
	tcase_add_test(tc, chain_classify_all_verdicts);
	suite_add_tcase(s, tc);

	tc = tcase_create("auth");
	tcase_add_checked_fixture(tc, auth_setup, NULL);
	tcase_add_test(tc, auth_sign_verify);
	tcase_add_test(tc, auth_rejections);
	tcase_add_test(tc, auth_keyring_parse_errors);
	tcase_add_test(tc, auth_base64);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(prims_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
