/*
 * test_seal.c - the shared table of hostile logs (issue #10 item 7) through the reader
 * rule every reader calls: core's seal buffer (bk_sealbuf, bk_seal_check) and the chain
 * judge, as the two kinds of reader use it: the processor's restore and verify
 * (bk_engine_read) and the projection's planning (projector/proj_plan.c, which the live
 * projector and rebuild share). Each log is a real order's records
 * (fixtures/rtb_accept.jsonl through the engine) with one attack planted; the table names
 * the verdict expected for every record, both readers must give it, and the last valid
 * record must always apply (never held back).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bk_auth.h"
#include "bk_codec.h"
#include "bk_engine.h"
#include "bk_seal.h"
#include "fixture_run.h"
#include "proj_plan.h"

#define MAXREC 64

/* The fixture's records, as the processor would write them. */
typedef struct recs {
	msgpack_sbuffer b[MAXREC];
	size_t n;
} recs;

static int collect(void *opaque, const bk_record *r, const void *bytes, size_t n)
{
	recs *rs = opaque;
	(void)r;
	ck_assert_uint_lt(rs->n, MAXREC);
	msgpack_sbuffer_init(&rs->b[rs->n]);
	msgpack_sbuffer_write(&rs->b[rs->n], bytes, n);
	rs->n++;
	return 0;
}

/* One record of a hostile log. */
typedef struct entry {
	const void *val;
	size_t n;
	bool seal;  /* a seal record: signed by `signer` */
	int signer; /* 0 w1, 1 w2 (both trusted), 2 an attacker's key */
	int64_t base;
	const int64_t *covers; /* offsets the seal lists (-1 ends) */
	int expect;	       /* verdict of the record's first event; -1 for seals */
} entry;

static uint8_t sk[3][BK_SK_LEN], pk[3][BK_PK_LEN];
static const char *const kid[3] = {"w1", "w2", "mallory"};
static bk_keyring *writers;

static void keys(void)
{
	if (writers)
		return;
	ck_assert_int_ge(sodium_init(), 0);
	char text[1024] = "", b64[64];
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(bk_auth_keygen(pk[i], sk[i]), 0);
		ck_assert_int_gt(bk_b64_encode(pk[i], BK_PK_LEN, b64, sizeof(b64)), 0);
		if (i < 2) /* mallory is not in the writer keyring */
			snprintf(text + strlen(text), sizeof(text) - strlen(text),
				 "%s %s system seal\n", kid[i], b64);
	}
	char err[256];
	ck_assert_int_eq(bk_keyring_parse(text, strlen(text), &writers, err, sizeof(err)), 0);
	ck_assert(bk_keyring_only_type(writers, BK_SEAL_TYPE));
}

/* Digest of an events record's bytes (as a reader computes it), or false for garbage. */
static bool digest_of(const void *val, size_t n, uint8_t d[BK_HASH_LEN])
{
	msgpack_zone z;
	msgpack_zone_init(&z, 4096);
	bk_record r;
	char err[256];
	bool ok = bk_codec_record_decode(val, n, &z, &r, err, sizeof(err)) == 0;
	if (ok)
		bk_seal_digest_record(&r, d);
	msgpack_zone_destroy(&z);
	return ok;
}

typedef struct reader {
	bk_engine *e;
	const entry *log;
	int got[MAXREC];
	/* the projection's planning over the same records, in the order they are released */
	pp_plan pl;
	pp_order orders[4];
	size_t norders;
	msgpack_zone z;
	bk_record recs[MAXREC];
} reader;

static pp_order *plan_order(void *ctx, const char *id)
{
	reader *rd = ctx;
	for (size_t i = 0; i < rd->norders; i++)
		if (!strcmp(rd->orders[i].id, id))
			return &rd->orders[i];
	ck_assert_uint_lt(rd->norders, 4);
	pp_order *o = &rd->orders[rd->norders++];
	memset(o, 0, sizeof(*o));
	snprintf(o->id, sizeof(o->id), "%s", id);
	o->c.f.status = -1;
	return o;
}

/* Hashes of applied events, kept by seq (the test's orders are short). */
static uint8_t applied_hash[MAXREC][BK_HASH_LEN];

static int plan_hash_at(void *ctx, pp_order *o, int64_t seq, uint8_t ret[BK_HASH_LEN], char *err,
			size_t errsz)
{
	(void)ctx;
	(void)err;
	(void)errsz;
	if (seq < 1 || seq > o->b.seq || seq >= MAXREC)
		return 1;
	memcpy(ret, applied_hash[seq], BK_HASH_LEN);
	return 0;
}

static int plan_applied(void *ctx, pp_order *o, const bk_event *e)
{
	(void)ctx;
	(void)o;
	ck_assert_int_lt(e->seq, MAXREC);
	memcpy(applied_hash[e->seq], e->hash, BK_HASH_LEN);
	return 0;
}

/* The planning's word on an item, as a reader rule verdict. */
static int plan_verdict(const pp_item *it)
{
	switch ((pp_action)it->action) {
	case PP_APPLY:
		return BK_CHAIN_NEXT;
	case PP_DUP:
		return BK_CHAIN_DUPLICATE;
	case PP_FORK:
		return BK_CHAIN_FORK;
	case PP_REJECT:
		return it->verdict;
	case PP_QUAR:
	case PP_HELD:
		break;
	}
	return -1; /* quarantine is for valid events the read model refuses: never here */
}

static void release(void *opaque, void *rec, int64_t offset, bool sealed, const uint8_t *digest)
{
	(void)digest;
	reader *rd = opaque;
	(void)rec;
	{ /* the projection's items of the record, in release order */
		bk_record *pr = &rd->recs[offset];
		char why[256];
		bool ok = bk_codec_record_decode(rd->log[offset].val, rd->log[offset].n, &rd->z, pr,
						 why, sizeof(why)) == 0;
		long first =
		    pp_add_record(&rd->pl, ok ? pr : NULL, why, sealed ? PP_SEALED : PP_UNSEALED,
				  NULL, plan_order, rd, "o");
		ck_assert_int_ge(first, 0);
		for (size_t i = (size_t)first; i < rd->pl.n; i++)
			rd->pl.items[i].offset = offset;
	}
	if (!sealed) {
		rd->got[offset] = BK_CHAIN_UNSEALED;
		return;
	}
	msgpack_zone z;
	msgpack_zone_init(&z, 4096);
	bk_record r;
	char err[256];
	ck_assert_int_eq(bk_codec_record_decode(rd->log[offset].val, rd->log[offset].n, &z, &r, err,
						sizeof(err)),
			 0);
	bk_chain_verdict v[16];
	ck_assert_uint_le(r.n, 16);
	ck_assert_int_eq(bk_engine_read(rd->e, &r, v, err, sizeof(err)), 0);
	rd->got[offset] = v[0];
	msgpack_zone_destroy(&z);
}

/* Run a log through the reader rule; check every record's verdict. */
static void run(const entry *log, size_t n, const char *name)
{
	reader rd = {.e = bk_engine_new(), .log = log};
	pp_init(&rd.pl);
	msgpack_zone_init(&rd.z, 65536);
	bk_sealbuf *b = bk_sealbuf_new();
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	for (size_t off = 0; off < n; off++) {
		rd.got[off] = -1;
		const entry *e = &log[off];
		if (!e->seal) {
			uint8_t d[BK_HASH_LEN];
			if (!digest_of(e->val, e->n, d)) {
				rd.got[off] = BK_CHAIN_GARBAGE;
				bk_record *none = NULL; /* the projection: one garbage item */
				long first = pp_add_record(&rd.pl, none, "not msgpack", PP_SEALED,
							   NULL, plan_order, &rd, "o");
				ck_assert_int_ge(first, 0);
				rd.pl.items[first].offset = (int64_t)off;
			} else
				ck_assert_int_eq(bk_sealbuf_add(b, (int64_t)off, d, NULL), 0);
			continue;
		}
		/* the seal: records it covers, with their digests, signed by its writer */
		bk_seal_rec recs[MAXREC];
		uint32_t k = 0;
		for (const int64_t *c = e->covers; *c >= 0; c++) {
			recs[k].offset = *c;
			ck_assert(digest_of(log[*c].val, log[*c].n, recs[k].digest));
			k++;
		}
		bk_seal s = {.writer = kid[e->signer],
			     .topic = "booking.events",
			     .partition = 0,
			     .base = e->base,
			     .src_next = (int64_t)off,
			     .recs = recs,
			     .n = k};
		msgpack_sbuffer_clear(&sb);
		ck_assert_int_eq(bk_seal_encode(&s, &sb), 0);
		uint8_t sig[BK_SIG_LEN];
		bk_auth_sign(sk[e->signer], sb.data, sb.size, sig);
		msgpack_zone z;
		msgpack_zone_init(&z, 4096);
		bk_seal got;
		char err[256];
		const char *id = kid[e->signer];
		int rc = bk_seal_check(writers, id, strlen(id), sig, sizeof(sig), sb.data, sb.size,
				       "booking.events", 0, &z, &got, err, sizeof(err));
		if (e->signer == 2) {
			ck_assert_int_eq(rc, -1); /* not a trusted writer */
		} else {
			ck_assert_msg(rc == 0, "%s: seal at %zu: %s", name, off, err);
			bk_sealbuf_seal(b, &got, release, &rd);
		}
		msgpack_zone_destroy(&z);
	}
	bk_sealbuf_flush(b, release, &rd);
	for (size_t off = 0; off < n; off++)
		ck_assert_msg(rd.got[off] == log[off].expect, "%s: offset %zu: got %s, want %s",
			      name, off, rd.got[off] < 0 ? "-" : bk_chain_verdict_name(rd.got[off]),
			      log[off].expect < 0 ? "-" : bk_chain_verdict_name(log[off].expect));
	/* the projection's planning: the same verdict for every record (first event) */
	pr_store *store = pr_store_new();
	ck_assert_ptr_nonnull(store);
	const pp_ops ops = {plan_hash_at, NULL, plan_applied, &rd};
	char err[256];
	ck_assert_int_eq(pp_run(&rd.pl, store, &ops, err, sizeof(err)), 0);
	int planned[MAXREC];
	for (size_t off = 0; off < n; off++)
		planned[off] = -1;
	for (size_t i = 0; i < rd.pl.n; i++)
		if (i == 0 || rd.pl.items[i - 1].offset != rd.pl.items[i].offset)
			planned[rd.pl.items[i].offset] = plan_verdict(&rd.pl.items[i]);
	for (size_t off = 0; off < n; off++)
		ck_assert_msg(planned[off] == log[off].expect,
			      "%s: planning, offset %zu: got %s, want %s", name, off,
			      planned[off] < 0 ? "-" : bk_chain_verdict_name(planned[off]),
			      log[off].expect < 0 ? "-" : bk_chain_verdict_name(log[off].expect));
	ck_assert_uint_gt(pr_store_count(store, PR_TIMELINE), 0); /* it mapped rows */
	pr_store_free(store);
	pp_free(&rd.pl);
	msgpack_zone_destroy(&rd.z);
	msgpack_sbuffer_destroy(&sb);
	bk_sealbuf_free(b);
	bk_engine_free(rd.e);
}

/* A copy of record i with its first event changed by `how`: 'b' other bytes under the
 * same hash fields, 'f' a fork of seq (relinked and rehashed), 'n' seq + n (rehashed). */
static void mutate(const msgpack_sbuffer *src, int how, int64_t n, msgpack_sbuffer *out)
{
	msgpack_zone z;
	msgpack_zone_init(&z, 4096);
	bk_record r;
	char err[256];
	ck_assert_int_eq(bk_codec_record_decode(src->data, src->size, &z, &r, err, sizeof(err)), 0);
	r.n = 1;
	msgpack_sbuffer scratch;
	msgpack_sbuffer_init(&scratch);
	r.events[0].created_at += 1000000; /* other content */
	if (how == 'n')
		r.events[0].seq += n;
	if (how != 'b')
		ck_assert_int_eq(bk_codec_event_seal(&r.events[0], &scratch), 0);
	msgpack_sbuffer_init(out);
	ck_assert_int_eq(bk_codec_record_encode(&r, out), 0);
	msgpack_sbuffer_destroy(&scratch);
	msgpack_zone_destroy(&z);
}

START_TEST(hostile_logs_table)
{
	keys();
	recs rs = {0};
	bk_engine *e = bk_engine_new();
	json_t *fails = json_array();
	char err[256];
	ck_assert_int_ge(fx_run_file_cb(e, SRCDIR "/fixtures/rtb_accept.jsonl", fails, collect, &rs,
					err, sizeof(err)),
			 0);
	ck_assert_uint_ge(rs.n, 4);
	const size_t h = rs.n - 1; /* records 0..h-1 are the history, record h comes last */
	msgpack_sbuffer bytes, fork, ahead;
	mutate(&rs.b[h - 1], 'b', 0, &bytes); /* changed bytes, same hash fields */
	mutate(&rs.b[h - 1], 'f', 0, &fork);  /* a valid other event at the head's seq */
	mutate(&rs.b[h - 1], 'n', 3, &ahead); /* a forged chain at head + n */
	static const char garbage[] = "\xc1\xc1 not msgpack";

	/* the history sealed by w1, then each attack, then the order's real next record */
	entry log[MAXREC];
	size_t n = 0;
	int64_t cover[MAXREC][MAXREC];
	size_t nc = 0;
#define REC(v_, n_, want)                                                                          \
	do {                                                                                       \
		log[n] = (entry){.val = (v_), .n = (n_), .expect = (want)};                        \
		n++;                                                                               \
	} while (0)
#define SEAL(who, base_, ...)                                                                      \
	do {                                                                                       \
		const int64_t c_[] = {__VA_ARGS__, -1};                                            \
		memcpy(cover[nc], c_, sizeof(c_));                                                 \
		log[n] = (entry){.seal = true,                                                     \
				 .signer = (who),                                                  \
				 .base = (base_),                                                  \
				 .covers = cover[nc],                                              \
				 .expect = -1};                                                    \
		nc++;                                                                              \
		n++;                                                                               \
	} while (0)
	for (size_t i = 0; i < h; i++)
		REC(rs.b[i].data, rs.b[i].size, BK_CHAIN_NEXT);
	int64_t hist[MAXREC + 1];
	for (size_t i = 0; i < h; i++)
		hist[i] = (int64_t)i;
	hist[h] = -1;
	log[n] = (entry){.seal = true, .signer = 0, .base = 0, .covers = hist, .expect = -1};
	n++;
	/* exact duplicate of a sealed record, sealed again */
	size_t dup = n;
	REC(rs.b[1].data, rs.b[1].size, BK_CHAIN_DUPLICATE);
	SEAL(0, 0, (int64_t)dup);
	/* same hash fields, other bytes: bad hash */
	size_t bh = n;
	REC(bytes.data, bytes.size, BK_CHAIN_BAD_HASH);
	SEAL(0, 0, (int64_t)bh);
	/* a forged event linked to the head with a correct hash, no seal: unsealed */
	size_t forged = n;
	REC(fork.data, fork.size, BK_CHAIN_UNSEALED);
	/* the same under an attacker's seal: unsealed (the seal does not check) */
	size_t mal = n;
	REC(fork.data, fork.size, BK_CHAIN_UNSEALED);
	SEAL(2, 0, (int64_t)mal);
	/* a fork by a second trusted writer: reported, never applied */
	size_t fk = n;
	REC(fork.data, fork.size, BK_CHAIN_FORK);
	SEAL(1, 0, (int64_t)fk);
	/* a chain at head + 3: a bad link even when sealed */
	size_t ah = n;
	REC(ahead.data, ahead.size, BK_CHAIN_BAD_LINK);
	SEAL(1, 0, (int64_t)ah);
	/* garbage bytes */
	REC(garbage, sizeof(garbage) - 1, BK_CHAIN_GARBAGE);
	/* a crashed batch's leftover (never sealed), abandoned by the next writer's seal
	 * (its base), which seals the same command's rewrite: applied once */
	size_t left = n;
	REC(rs.b[h].data, rs.b[h].size, BK_CHAIN_UNSEALED);
	size_t rewrite = n;
	REC(rs.b[h].data, rs.b[h].size, BK_CHAIN_NEXT);
	SEAL(0, (int64_t)rewrite, (int64_t)rewrite);
	(void)forged;
	(void)left;
	run(log, n, "hostile log");

	/* the same attacks in another order: the forged records first, then the valid
	 * ones still apply (a bad record never holds back a valid one) */
	n = 0;
	nc = 0;
	for (size_t i = 0; i + 1 < h; i++)
		REC(rs.b[i].data, rs.b[i].size, BK_CHAIN_NEXT);
	hist[h - 1] = -1;
	log[n] = (entry){.seal = true, .signer = 0, .base = 0, .covers = hist, .expect = -1};
	n++;
	size_t a1 = n;
	REC(ahead.data, ahead.size, BK_CHAIN_BAD_LINK);
	REC(garbage, sizeof(garbage) - 1, BK_CHAIN_GARBAGE);
	size_t real = n;
	REC(rs.b[h - 1].data, rs.b[h - 1].size, BK_CHAIN_NEXT);
	SEAL(1, 0, (int64_t)a1, (int64_t)real);
	size_t last = n;
	REC(rs.b[h].data, rs.b[h].size, BK_CHAIN_NEXT);
	SEAL(0, 0, (int64_t)last);
	run(log, n, "attacks before valid records");
#undef REC
#undef SEAL
	for (size_t i = 0; i < rs.n; i++)
		msgpack_sbuffer_destroy(&rs.b[i]);
	msgpack_sbuffer_destroy(&bytes);
	msgpack_sbuffer_destroy(&fork);
	msgpack_sbuffer_destroy(&ahead);
	json_decref(fails);
	bk_engine_free(e);
}
END_TEST

START_TEST(seal_check_refusals)
{
	keys();
	bk_seal_rec r = {.offset = 5};
	bk_seal s = {.writer = "w1",
		     .topic = "booking.events",
		     .partition = 2,
		     .base = -1,
		     .src_next = 7,
		     .recs = &r,
		     .n = 1};
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(bk_seal_encode(&s, &sb), 0);
	uint8_t sig[BK_SIG_LEN];
	bk_auth_sign(sk[0], sb.data, sb.size, sig);
	msgpack_zone z;
	msgpack_zone_init(&z, 4096);
	bk_seal got;
	char err[256];
	ck_assert_int_eq(bk_seal_check(writers, "w1", 2, sig, sizeof(sig), sb.data, sb.size,
				       "booking.events", 2, &z, &got, err, sizeof(err)),
			 0);
	ck_assert_int_eq(got.src_next, 7);
	ck_assert_int_eq(got.recs[0].offset, 5);
	/* another partition or topic than it names */
	ck_assert_int_eq(bk_seal_check(writers, "w1", 2, sig, sizeof(sig), sb.data, sb.size,
				       "booking.events", 3, &z, &got, err, sizeof(err)),
			 -1);
	ck_assert_int_eq(bk_seal_check(writers, "w1", 2, sig, sizeof(sig), sb.data, sb.size,
				       "booking.command-results", 2, &z, &got, err, sizeof(err)),
			 -1);
	/* the key id of another trusted writer than the one it names */
	uint8_t sig2[BK_SIG_LEN];
	bk_auth_sign(sk[1], sb.data, sb.size, sig2);
	ck_assert_int_eq(bk_seal_check(writers, "w2", 2, sig2, sizeof(sig2), sb.data, sb.size,
				       "booking.events", 2, &z, &got, err, sizeof(err)),
			 -1);
	/* a flipped byte */
	((char *)sb.data)[sb.size - 1] ^= 1;
	ck_assert_int_eq(bk_seal_check(writers, "w1", 2, sig, sizeof(sig), sb.data, sb.size,
				       "booking.events", 2, &z, &got, err, sizeof(err)),
			 -1);
	/* no keyring, no headers */
	ck_assert_int_eq(bk_seal_check(NULL, "w1", 2, sig, sizeof(sig), sb.data, sb.size,
				       "booking.events", 2, &z, &got, err, sizeof(err)),
			 -1);
	ck_assert_int_eq(bk_seal_check(writers, NULL, 0, NULL, 0, sb.data, sb.size,
				       "booking.events", 2, &z, &got, err, sizeof(err)),
			 -1);
	msgpack_zone_destroy(&z);
	msgpack_sbuffer_destroy(&sb);
	/* a commands keyring (a key that may assert any system type) is no writer keyring */
	bk_keyring *cmds;
	char b64[64], text[256];
	ck_assert_int_eq(bk_b64_encode(pk[0], BK_PK_LEN, b64, sizeof(b64)), 44);
	snprintf(text, sizeof(text), "web-1 %s buyer,system\n", b64);
	ck_assert_int_eq(bk_keyring_parse(text, strlen(text), &cmds, err, sizeof(err)), 0);
	ck_assert(!bk_keyring_only_type(cmds, BK_SEAL_TYPE));
	bk_keyring_free(cmds);
}
END_TEST

static void ignore(void *opaque, void *rec, int64_t offset, bool sealed, const uint8_t *digest)
{
	int *n = opaque;
	(void)rec;
	(void)offset;
	ck_assert(digest == NULL); /* every record here was added with its digest */
	n[sealed]++;
}

START_TEST(sealbuf_order_and_base)
{
	bk_sealbuf *b = bk_sealbuf_new();
	uint8_t d[BK_HASH_LEN] = {1};
	ck_assert_int_eq(bk_sealbuf_add(b, 3, d, NULL), 0);
	ck_assert_int_eq(bk_sealbuf_add(b, 3, d, NULL), -1); /* not after the last */
	ck_assert_int_eq(bk_sealbuf_add(b, 9, d, NULL), 0);
	ck_assert_int_eq(bk_sealbuf_add(b, 12, d, NULL), 0);
	/* a seal listing 9 with another digest, base 0: the writer's record at 9 is another
	 * one, so 9 is released unsealed; 3 and 12 (not listed, not below base) wait */
	bk_seal_rec r = {.offset = 9};
	bk_seal s = {.base = 0, .recs = &r, .n = 1};
	int n[2] = {0, 0};
	ck_assert_uint_eq(bk_sealbuf_seal(b, &s, ignore, n), 0);
	ck_assert_int_eq(n[0], 1);
	ck_assert_uint_eq(bk_sealbuf_held(b), 2);
	/* the right digest seals 12; base 4 abandons 3 */
	memcpy(r.digest, d, BK_HASH_LEN);
	r.offset = 12;
	s.base = 4;
	ck_assert_uint_eq(bk_sealbuf_seal(b, &s, ignore, n), 1);
	ck_assert_int_eq(n[1], 1);
	ck_assert_int_eq(n[0], 2);
	ck_assert_uint_eq(bk_sealbuf_held(b), 0);
	bk_sealbuf_free(b);
}
END_TEST

typedef struct deferred {
	int sealed, unsealed;
	uint8_t got[BK_HASH_LEN];
} deferred;

static void on_deferred(void *opaque, void *rec, int64_t offset, bool sealed, const uint8_t *digest)
{
	deferred *x = opaque;
	(void)rec;
	(void)offset;
	if (sealed) {
		ck_assert_ptr_nonnull(digest); /* the caller compares it with its record's */
		memcpy(x->got, digest, BK_HASH_LEN);
		x->sealed++;
	} else {
		ck_assert(digest == NULL);
		x->unsealed++;
	}
}

/* Records held without their digest (the live projector decodes later, on two threads):
 * a seal that lists one releases it with the digest it lists; the rest as always. */
START_TEST(sealbuf_deferred_digest)
{
	bk_sealbuf *b = bk_sealbuf_new();
	ck_assert_int_eq(bk_sealbuf_add(b, 5, NULL, NULL), 0);
	ck_assert_int_eq(bk_sealbuf_add(b, 6, NULL, NULL), 0);
	ck_assert_int_eq(bk_sealbuf_add(b, 8, NULL, NULL), 0);
	bk_seal_rec r = {.offset = 6, .digest = {7, 7, 7}};
	bk_seal s = {.base = 7, .recs = &r, .n = 1};
	deferred x = {0};
	ck_assert_uint_eq(bk_sealbuf_seal(b, &s, on_deferred, &x), 1);
	ck_assert_int_eq(x.sealed, 1);	 /* 6, with the listed digest */
	ck_assert_int_eq(x.unsealed, 1); /* 5: below the base, not listed */
	ck_assert_int_eq(memcmp(x.got, r.digest, BK_HASH_LEN), 0);
	ck_assert_uint_eq(bk_sealbuf_held(b), 1); /* 8 waits */
	bk_sealbuf_flush(b, on_deferred, &x);
	ck_assert_int_eq(x.unsealed, 2);
	bk_sealbuf_free(b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("seal");
	TCase *tc = tcase_create("seal");
	tcase_add_test(tc, hostile_logs_table);
	tcase_add_test(tc, seal_check_refusals);
	tcase_add_test(tc, sealbuf_order_and_base);
	tcase_add_test(tc, sealbuf_deferred_digest);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	bk_keyring_free(writers);
	return nf == 0 ? 0 : 1;
}
