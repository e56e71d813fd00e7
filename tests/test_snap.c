/*
 * test_snap.c - core/bk_snap: a snapshot decodes to the aggregate it was taken of (every
 * fixture's orders, byte for byte again when re-encoded), an engine continued from
 * snapshots decides a generated stream exactly as the engine that never stopped,
 * corrupt and inconsistent snapshots are refused, checkpoints round-trip and the set
 * digest is independent of the order of its members.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_codec.h"
#include "bk_engine.h"
#include "bk_snap.h"
#include "fixture_run.h"
#include "gen.h"
#include "tz.h"

/* Encode o into a fresh buffer (caller destroys). */
static void enc(const bk_order *o, msgpack_sbuffer *sb)
{
	msgpack_sbuffer_init(sb);
	ck_assert_int_eq(bk_snap_encode(o, 3, 1234, sb), 0);
}

static bool has_fp(const bk_idset *s, uint64_t fp)
{
	for (uint32_t j = (uint32_t)fp & (s->cap - 1);; j = (j + 1) & (s->cap - 1)) {
		if (s->slots[j] == fp)
			return true;
		if (!s->slots[j])
			return false;
	}
}

/* The decoded b is a, field by field where summaries do not look. */
static void same_order(const bk_order *a, const bk_order *b)
{
	ck_assert_str_eq(a->order_id, b->order_id);
	ck_assert_int_eq(a->version, b->version);
	ck_assert_int_eq(memcmp(a->hashes, b->hashes, (size_t)a->version * BK_HASH_LEN), 0);
	ck_assert_uint_eq(a->seen.n, b->seen.n);
	for (uint32_t i = 0; i < a->seen.cap; i++)
		if (a->seen.slots[i])
			ck_assert(has_fp(&b->seen, a->seen.slots[i]));
	ck_assert_str_eq(a->last_command_id, b->last_command_id);
	ck_assert_int_eq(a->last_event_at, b->last_event_at);
	ck_assert_int_gt(b->last_event_at, 0);
	ck_assert_int_eq(memcmp(&a->money, &b->money, sizeof(a->money)), 0);
	ck_assert_int_eq(a->start_ts, b->start_ts);
	ck_assert_int_eq(a->end_ts, b->end_ts);
	ck_assert(a->travel_miles == b->travel_miles);
	ck_assert_uint_eq(a->n_cards, b->n_cards);
	ck_assert_uint_eq(a->n_reqs, b->n_reqs);
	ck_assert_uint_eq(a->items.n, b->items.n);
	json_t *ja = fx_order_summary(a), *jb = fx_order_summary(b);
	ck_assert(json_equal(ja, jb));
	json_decref(ja);
	json_decref(jb);
}

typedef struct rt_ctx {
	bk_engine *into;
	int n;
} rt_ctx;

static void round_trip(const bk_order *o, void *opaque)
{
	rt_ctx *x = opaque;
	msgpack_sbuffer a, b;
	enc(o, &a);
	bk_order *d;
	int32_t part;
	int64_t off;
	char err[256];
	ck_assert_msg(bk_snap_decode(a.data, a.size, &d, &part, &off, err, sizeof(err)) == 0,
		      "%s: %s", o->order_id, err);
	ck_assert_int_eq(part, 3);
	ck_assert_int_eq(off, 1234);
	ck_assert_int_eq(d->snap_version, o->version);
	uint8_t h[BK_HASH_LEN];
	bk_snap_hash(a.data, a.size, h);
	ck_assert_int_eq(memcmp(d->snap_hash, h, BK_HASH_LEN), 0);
	same_order(o, d);
	enc(d, &b);
	ck_assert_uint_eq(a.size, b.size);
	ck_assert_int_eq(memcmp(a.data, b.data, a.size), 0);
	msgpack_sbuffer_destroy(&a);
	msgpack_sbuffer_destroy(&b);
	ck_assert_int_eq(bk_engine_put(x->into, d), 0);
	x->n++;
}

START_TEST(fixtures_round_trip)
{
	DIR *dir = opendir(SRCDIR "/fixtures");
	ck_assert_ptr_nonnull(dir);
	struct dirent *de;
	int files = 0, orders = 0;
	while ((de = readdir(dir))) {
		size_t n = strlen(de->d_name);
		if (n < 7 || strcmp(de->d_name + n - 6, ".jsonl") != 0)
			continue;
		char path[1024], err[512];
		snprintf(path, sizeof(path), SRCDIR "/fixtures/%s", de->d_name);
		bk_engine *e = bk_engine_new(), *e2 = bk_engine_new();
		json_t *fails = json_array();
		ck_assert_msg(fx_run_file(e, path, fails, err, sizeof(err)) > 0, "%s: %s", path,
			      err);
		rt_ctx x = {.into = e2};
		bk_engine_foreach(e, round_trip, &x);
		ck_assert_uint_eq(bk_engine_count(e2), bk_engine_count(e));
		json_t *sa = fx_engine_summary(e), *sb = fx_engine_summary(e2);
		ck_assert_msg(json_equal(sa, sb), "%s: summaries differ", path);
		json_decref(sa);
		json_decref(sb);
		json_decref(fails);
		bk_engine_free(e);
		bk_engine_free(e2);
		files++;
		orders += x.n;
	}
	closedir(dir);
	ck_assert_int_gt(files, 10);
	ck_assert_int_ge(orders, 30);
}
END_TEST

static void copy_all(const bk_order *o, void *opaque)
{
	rt_ctx x = {.into = opaque};
	round_trip(o, &x);
}

static void found_in(const bk_order *o, void *opaque)
{
	const bk_order *f = bk_engine_order(opaque, o->order_id);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(f->version, o->version);
}

/* Both engines see the same stream; the second is rebuilt from snapshots of the first
 * at the middle of it. Every decision after that must be the same, event hashes too. */
START_TEST(continue_from_snapshots)
{
	bk_gen_opts go;
	bk_gen_opts_default(&go);
	go.orders = 400;
	go.window = 64;
	char err[256];
	bk_gen *g = bk_gen_new(&go, err, sizeof(err));
	ck_assert_ptr_nonnull(g);
	bk_engine *a = bk_engine_new(), *b = NULL;
	bk_tzdb *tz = bk_tzdb_new(NULL);
	ck_assert(a && tz);
	msgpack_zone z;
	ck_assert(msgpack_zone_init(&z, 1 << 16));
	bk_gen_cmd gc;
	int rc;
	uint64_t compared = 0;
	while ((rc = bk_gen_next(g, &gc, err, sizeof(err))) == 1) {
		if (gc.index == 1500) {
			b = bk_engine_new();
			ck_assert_ptr_nonnull(b);
			bk_engine_foreach(a, copy_all, b);
			ck_assert_uint_eq(bk_engine_count(a), bk_engine_count(b));
			/* the rules are not in snapshots: b shares a's ruleset */
			bk_engine_share_rules(b, bk_engine_rules(a));
		}
		bk_command cm;
		ck_assert(bk_codec_command_decode(gc.bytes, gc.len, false, false, &z, &cm, err,
						  sizeof(err)) == 0);
		bk_decide_ctx ctx = {.now = cm.at,
				     .expiring_lead = INT64_C(24) * 3600 * BK_US_PER_S,
				     .tz = bk_tz_offset,
				     .tz_opaque = tz};
		bk_decision da, db;
		ck_assert(bk_engine_handle(a, &cm, &ctx, &z, &da) == 0);
		if (b && cm.type != BK_CMD_AUTOACCEPT_SET && cm.type != BK_CMD_AUTOACCEPT_DELETE &&
		    cm.type != BK_CMD_PROFILE_BIND) {
			ck_assert(bk_engine_handle(b, &cm, &ctx, &z, &db) == 0);
			ck_assert_int_eq(da.outcome, db.outcome);
			ck_assert_int_eq(da.code, db.code);
			ck_assert_uint_eq(da.n_events, db.n_events);
			for (uint32_t i = 0; i < da.n_events; i++)
				ck_assert_int_eq(
				    memcmp(da.events[i].hash, db.events[i].hash, BK_HASH_LEN), 0);
			bk_decision_clear(&db);
			compared++;
		}
		bk_decision_clear(&da);
		msgpack_zone_clear(&z);
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_gt(compared, 1000);
	/* a restore reserves a checkpoint's count before putting its snapshots: the table
	 * then takes them all without growing, and every one is found */
	bk_engine *r = bk_engine_new();
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(bk_engine_reserve(r, bk_engine_count(a)), 0);
	ck_assert_int_eq(bk_engine_reserve(r, 10), 0); /* smaller: nothing changes */
	bk_engine_foreach(a, copy_all, r);
	ck_assert_uint_eq(bk_engine_count(r), bk_engine_count(a));
	bk_engine_foreach(a, found_in, r);
	bk_engine_free(r);
	ck_assert_uint_eq(bk_engine_count(a), bk_engine_count(b));
	msgpack_zone_destroy(&z);
	bk_tzdb_free(tz);
	bk_engine_free(b);
	bk_engine_free(a);
	bk_gen_free(g);
}
END_TEST

static void pick_fn(const bk_order *o, void *opaque)
{
	const bk_order **best = opaque;
	if (!*best || o->version > (*best)->version)
		*best = o;
}

/* A valid snapshot of a fixture order with cards, requests and items. */
static void sample(msgpack_sbuffer *sb)
{
	bk_engine *e = bk_engine_new();
	json_t *fails = json_array();
	char err[256];
	ck_assert(fx_run_file(e, SRCDIR "/fixtures/card_extras.jsonl", fails, err, sizeof(err)) >
		  0);
	const bk_order *best = NULL;
	bk_engine_foreach(e, pick_fn, &best);
	ck_assert_ptr_nonnull(best);
	enc(best, sb);
	json_decref(fails);
	bk_engine_free(e);
}

static int try_decode(const void *p, size_t n)
{
	bk_order *o = NULL;
	int32_t part;
	int64_t off;
	char err[256];
	int rc = bk_snap_decode(p, n, &o, &part, &off, err, sizeof(err));
	if (rc == 0) {
		ck_assert_ptr_nonnull(o);
		msgpack_sbuffer sb;
		enc(o, &sb); /* whatever decodes encodes again */
		msgpack_sbuffer_destroy(&sb);
	} else {
		ck_assert_ptr_null(o);
	}
	bk_order_free(o);
	return rc;
}

/* Re-pack a snapshot with field i replaced by the msgpack bytes rep[0..nrep). */
static void with_field(const msgpack_sbuffer *src, uint32_t i, const void *rep, size_t nrep,
		       msgpack_sbuffer *out)
{
	msgpack_zone z;
	msgpack_object v;
	char err[128];
	msgpack_zone_init(&z, 4096);
	ck_assert_int_eq(bk_codec_unpack(src->data, src->size, &z, &v, err, sizeof(err)), 0);
	msgpack_sbuffer_init(out);
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, v.via.array.size);
	for (uint32_t k = 0; k < v.via.array.size; k++)
		if (k == i)
			msgpack_sbuffer_write(out, rep, nrep);
		else
			msgpack_pack_object(&pk, v.via.array.ptr[k]);
	msgpack_zone_destroy(&z);
}

START_TEST(rejects_corrupt)
{
	msgpack_sbuffer sb, m;
	sample(&sb);
	ck_assert_int_eq(try_decode(sb.data, sb.size), 0);
	/* every truncation and one byte too many */
	for (size_t n = 0; n < sb.size; n++)
		ck_assert_int_eq(try_decode(sb.data, n), -1);
	char *longer = malloc(sb.size + 1);
	memcpy(longer, sb.data, sb.size);
	longer[sb.size] = 0;
	ck_assert_int_eq(try_decode(longer, sb.size + 1), -1);
	free(longer);
	/* single flipped bits never crash; some must be refused (tags, types, lengths) */
	int refused = 0;
	for (size_t n = 0; n < sb.size; n++)
		for (int bit = 0; bit < 8; bit += 3) {
			sb.data[n] ^= (char)(1 << bit);
			refused += try_decode(sb.data, sb.size) < 0;
			sb.data[n] ^= (char)(1 << bit);
		}
	ck_assert_int_gt(refused, (int)sb.size / 2);
	/* fields each refused on its own */
	static const struct {
		uint32_t field;
		const char *bytes;
		size_t n;
	} bad[] = {
	    {0, "\xa4snap", 5}, /* another tag */
	    {1, "\x03", 1},	/* a later format */
	    {1, "\x01", 1},	/* format 1 (no last_event_at): the restore reads the log */
	    {3, "\xff", 1},	/* negative events offset */
	    {4, "\xa3o o", 4},	/* not an id */
	    {5, "\x7f", 1},	/* status out of range */
	    {6, "\x09", 1},	/* mode out of range */
	    {7, "\x00", 1},	/* version 0 */
	    {7, "\x7f", 1},	/* version without its hashes */
	    {12,
	     "\xa9"
	     "ABCDEFGHI",
	     10},						  /* currency too long */
	    {17, "\x01", 1},					  /* travel miles not a float */
	    {19, "\x93\x01\x02\x03", 4},			  /* money of 3 */
	    {25, "\xc4\x08\x00\x00\x00\x00\x00\x00\x00\x02", 10}, /* fingerprint without bit 0 */
	    {25, "\xc4\x00", 2},  /* last_command_id not among the seen */
	    {26, "\xa5other", 6}, /* the same */
	    {27,
	     "\xc4\x20"
	     "0123456789abcdef0123456789abcdef",
	     34},	      /* one hash for many */
	    {28, "\xa1x", 2}, /* last_event_at not an int */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		with_field(&sb, bad[i].field, bad[i].bytes, bad[i].n, &m);
		ck_assert_msg(try_decode(m.data, m.size) == -1, "bad field %zu accepted", i);
		msgpack_sbuffer_destroy(&m);
	}
	/* the same fingerprint twice */
	{
		msgpack_zone z;
		msgpack_object v;
		char err[128];
		msgpack_zone_init(&z, 4096);
		ck_assert_int_eq(bk_codec_unpack(sb.data, sb.size, &z, &v, err, sizeof(err)), 0);
		const msgpack_object *seen = &v.via.array.ptr[25];
		ck_assert_uint_ge(seen->via.bin.size, 8);
		char rep[2 + 16];
		rep[0] = (char)0xc4;
		rep[1] = 16;
		memcpy(rep + 2, seen->via.bin.ptr, 8);
		memcpy(rep + 10, seen->via.bin.ptr, 8);
		with_field(&sb, 25, rep, sizeof(rep), &m);
		ck_assert_int_eq(try_decode(m.data, m.size), -1);
		msgpack_sbuffer_destroy(&m);
		msgpack_zone_destroy(&z);
	}
	/* an unchanged re-pack still decodes (the mutations above are what is refused) */
	with_field(&sb, 99, NULL, 0, &m);
	ck_assert_int_eq(try_decode(m.data, m.size), 0);
	msgpack_sbuffer_destroy(&m);
	/* a checkpoint is not a snapshot */
	bk_checkpoint ck = {.partition = 1, .events_offset = 5, .src_next = 7};
	msgpack_sbuffer_init(&m);
	ck_assert_int_eq(bk_snap_checkpoint_encode(&ck, &m), 0);
	ck_assert_int_eq(try_decode(m.data, m.size), -1);
	msgpack_sbuffer_destroy(&m);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(checkpoints_and_sums)
{
	uint8_t h1[BK_HASH_LEN], h2[BK_HASH_LEN], h3[BK_HASH_LEN];
	bk_snap_hash("one", 3, h1);
	bk_snap_hash("two", 3, h2);
	bk_snap_hash("onf", 3, h3); /* one byte off */
	ck_assert_int_ne(memcmp(h1, h3, BK_HASH_LEN), 0);
	bk_snap_sum a = {0}, b = {0}, zero = {0};
	bk_snap_sum_add(&a, h1, 1);
	bk_snap_sum_add(&a, h2, 1);
	bk_snap_sum_add(&b, h2, 1);
	bk_snap_sum_add(&b, h1, 1);
	ck_assert(bk_snap_sum_eq(&a, &b)); /* any order */
	ck_assert_uint_eq(a.count, 2);
	bk_snap_sum c = b;
	bk_snap_sum_add(&c, h3, 1); /* other bytes are another member */
	bk_snap_sum_add(&c, h1, -1);
	ck_assert(!bk_snap_sum_eq(&a, &c));
	bk_snap_sum_add(&c, h3, -1);
	bk_snap_sum_add(&c, h1, 1);
	ck_assert(bk_snap_sum_eq(&a, &c));
	bk_snap_sum d = a;
	bk_snap_sum_add(&d, h1, -1);
	bk_snap_sum_add(&d, h2, -1);
	ck_assert(bk_snap_sum_eq(&d, &zero));
	bk_snap_sum e = a;
	bk_snap_sum_add(&e, h1, 1); /* a member twice is not the set */
	bk_snap_sum_add(&e, h2, -1);
	ck_assert(!bk_snap_sum_eq(&a, &e));

	bk_checkpoint ck = {.partition = 7,
			    .events_offset = 123456789,
			    .src_next = 42,
			    .sum = a,
			    .written_at = 1700000000000000},
		      back;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(bk_snap_checkpoint_encode(&ck, &sb), 0);
	char err[256];
	ck_assert_int_eq(bk_snap_checkpoint_decode(sb.data, sb.size, &back, err, sizeof(err)), 0);
	ck_assert_int_eq(back.partition, 7);
	ck_assert_int_eq(back.events_offset, 123456789);
	ck_assert_int_eq(back.src_next, 42);
	ck_assert_int_eq(back.written_at, ck.written_at);
	ck_assert(bk_snap_sum_eq(&back.sum, &a));
	for (size_t n = 0; n < sb.size; n++)
		ck_assert_int_eq(bk_snap_checkpoint_decode(sb.data, n, &back, err, sizeof(err)),
				 -1);
	sb.data[1] ^= 0x20; /* the tag */
	ck_assert_int_eq(bk_snap_checkpoint_decode(sb.data, sb.size, &back, err, sizeof(err)), -1);
	msgpack_sbuffer_destroy(&sb);
	/* a snapshot is not a checkpoint */
	msgpack_sbuffer s2;
	sample(&s2);
	ck_assert_int_eq(bk_snap_checkpoint_decode(s2.data, s2.size, &back, err, sizeof(err)), -1);
	msgpack_sbuffer_destroy(&s2);
}
END_TEST

/* Archived records: round trip (sorted whatever the input order), refusals, and the
 * checkpoint's archived digest telling a tampered or missing record. */
START_TEST(archived_records)
{
	const uint64_t fps[] = {0x9000000000000001ULL, 0x0000000000000003ULL, 0x7fffffffffffffffULL,
				0x1234567890abcdefULL};
	const size_t n = sizeof(fps) / sizeof(fps[0]);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(bk_snap_archived_encode(4, 777, false, fps, n, &sb), 0);
	bk_snap_archived a;
	char err[256];
	ck_assert_msg(bk_snap_archived_decode(sb.data, sb.size, &a, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert_int_eq(a.partition, 4);
	ck_assert_int_eq(a.events_offset, 777);
	ck_assert(!a.full);
	ck_assert_uint_eq(a.n, n);
	for (size_t i = 1; i < a.n; i++)
		ck_assert(a.fps[i - 1] < a.fps[i]);
	/* the digest of what was read is the writer's, in any order */
	bk_snap_sum w = {0}, r = {0};
	for (size_t i = 0; i < n; i++)
		bk_snap_sum_add_fp(&w, fps[i]);
	for (size_t i = 0; i < a.n; i++)
		bk_snap_sum_add_fp(&r, a.fps[a.n - 1 - i]);
	ck_assert(bk_snap_sum_eq(&w, &r));
	ck_assert_uint_eq(w.count, n);
	free(a.fps);
	/* a full record, and an empty full one (a restore then forgets every earlier one) */
	msgpack_sbuffer_clear(&sb);
	ck_assert_int_eq(bk_snap_archived_encode(0, 0, true, NULL, 0, &sb), 0);
	ck_assert_int_eq(bk_snap_archived_decode(sb.data, sb.size, &a, err, sizeof(err)), 0);
	ck_assert(a.full);
	ck_assert_uint_eq(a.n, 0);
	free(a.fps);
	/* refused: every truncation, fingerprints without bit 0, repeated or unsorted */
	msgpack_sbuffer_clear(&sb);
	ck_assert_int_eq(bk_snap_archived_encode(4, 777, false, fps, n, &sb), 0);
	for (size_t k = 0; k < sb.size; k++)
		ck_assert_int_eq(bk_snap_archived_decode(sb.data, k, &a, err, sizeof(err)), -1);
	static const char *const bad_bins[] = {
	    "\xc4\x08\x00\x00\x00\x00\x00\x00\x00\x02", /* bit 0 clear */
	    "\xc4\x10\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x03", /* twice */
	    "\xc4\x10\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x03", /* unsorted
											 */
	    "\xc4\x07\x00\x00\x00\x00\x00\x00\x03", /* not 8 bytes each */
	};
	static const size_t bad_len[] = {10, 18, 18, 9};
	msgpack_sbuffer m;
	for (size_t i = 0; i < 4; i++) {
		with_field(&sb, 5, bad_bins[i], bad_len[i], &m);
		ck_assert_msg(bk_snap_archived_decode(m.data, m.size, &a, err, sizeof(err)) == -1,
			      "bad fingerprints %zu accepted", i);
		msgpack_sbuffer_destroy(&m);
	}
	with_field(&sb, 1, "\x01", 1, &m); /* format 1 */
	ck_assert_int_eq(bk_snap_archived_decode(m.data, m.size, &a, err, sizeof(err)), -1);
	msgpack_sbuffer_destroy(&m);
	with_field(&sb, 99, NULL, 0, &m); /* unchanged: decodes */
	ck_assert_int_eq(bk_snap_archived_decode(m.data, m.size, &a, err, sizeof(err)), 0);
	free(a.fps);
	msgpack_sbuffer_destroy(&m);
	/* a checkpoint carries the archived digest; a record with one fingerprint replaced
	 * (still a valid record) or missing no longer matches it */
	bk_checkpoint ck = {.partition = 4, .events_offset = 777, .archived = w}, back;
	msgpack_sbuffer_clear(&sb);
	ck_assert_int_eq(bk_snap_checkpoint_encode(&ck, &sb), 0);
	ck_assert_int_eq(bk_snap_checkpoint_decode(sb.data, sb.size, &back, err, sizeof(err)), 0);
	ck_assert(bk_snap_sum_eq(&back.archived, &w));
	ck_assert_uint_eq(back.archived.count, n);
	uint64_t forged[4];
	memcpy(forged, fps, sizeof(forged));
	forged[2] = 0x7ffffffffffffffdULL;
	bk_snap_sum f = {0}, missing = {0};
	for (size_t i = 0; i < n; i++)
		bk_snap_sum_add_fp(&f, forged[i]);
	for (size_t i = 0; i + 1 < n; i++)
		bk_snap_sum_add_fp(&missing, fps[i]);
	ck_assert(!bk_snap_sum_eq(&back.archived, &f));
	ck_assert(!bk_snap_sum_eq(&back.archived, &missing));
	/* the snapshots' digest and the archived one are different fields */
	ck_assert(!bk_snap_sum_eq(&back.sum, &back.archived));
	/* a checkpoint is not an archived record, nor the other way round */
	ck_assert_int_eq(bk_snap_archived_decode(sb.data, sb.size, &a, err, sizeof(err)), -1);
	msgpack_sbuffer_clear(&sb);
	ck_assert_int_eq(bk_snap_archived_encode(4, 777, false, fps, n, &sb), 0);
	ck_assert_int_eq(bk_snap_checkpoint_decode(sb.data, sb.size, &back, err, sizeof(err)), -1);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("snap");
	TCase *tc = tcase_create("snapshots");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, fixtures_round_trip);
	tcase_add_test(tc, continue_from_snapshots);
	tcase_add_test(tc, rejects_corrupt);
	tcase_add_test(tc, checkpoints_and_sums);
	tcase_add_test(tc, archived_records);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
