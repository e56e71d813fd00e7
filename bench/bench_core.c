/*
 * bench_core.c - one-core throughput of the booking core. The seeded generator of lib/gen.h
 * builds a realistic command stream (RTB, IB, INVITE, cards, cancellations, disputes, ~3%
 * resent duplicates, ~2% invalid commands) as msgpack; the timed section runs bk_engine_handle
 * (decide + evolve, with canonical encoding and BLAKE2b of every event) and encodes each
 * events record. Codec rates and msgpack-c / libsodium baselines are measured in the same run.
 */
#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>
#include <sodium.h>

#include "bk_archive.h"
#include "bk_codec.h"
#include "bk_engine.h"
#include "bk_seal.h"
#include "bk_snap.h"
#include "gen.h"
#include "tz.h"

#define TARGET_CMDS_PER_S 1000000.0
#define HOUR_US		  (3600 * BK_US_PER_S)

/* --- output helpers --------------------------------------------------------------------- */

static void die(const char *what)
{
	fprintf(stderr, "bench_core: %s\n", what);
	exit(1);
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);
	if (!p)
		die("out of memory");
	return p;
}

static void *xrealloc(void *p, size_t sz)
{
	p = realloc(p, sz ? sz : 1);
	if (!p)
		die("out of memory");
	return p;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* --- the stream (lib/gen), kept whole in memory --------------------------------------- */

static int sb_write(void *data, const char *buf, size_t len)
{
	if (msgpack_sbuffer_write(data, buf, len) != 0)
		die("out of memory");
	return 0;
}

typedef struct cmdref {
	size_t off;
	uint32_t len;
	uint8_t expect; /* bk_outcome */
} cmdref;

typedef struct stream {
	msgpack_sbuffer sb; /* every command, back to back */
	cmdref *v;
	size_t n, cap;
	bk_gen_stats st; /* what was generated */
} stream;

/* The whole stream: rules, then `orders` orders interleaved over `window` live orders. */
static void generate(stream *g, uint32_t orders, uint32_t window, uint64_t seed)
{
	memset(g, 0, sizeof(*g));
	msgpack_sbuffer_init(&g->sb);
	bk_gen_opts o;
	bk_gen_opts_default(&o);
	o.orders = orders;
	o.window = window;
	o.seed = seed;
	char err[256];
	bk_gen *gen = bk_gen_new(&o, err, sizeof(err));
	if (!gen)
		die(err);
	bk_gen_cmd c;
	int rc;
	while ((rc = bk_gen_next(gen, &c, err, sizeof(err))) == 1) {
		if (g->n == g->cap) {
			g->cap = g->cap ? g->cap * 2 : 1 << 16;
			g->v = xrealloc(g->v, g->cap * sizeof(*g->v));
		}
		g->v[g->n++] = (cmdref){g->sb.size, (uint32_t)c.len, (uint8_t)c.expect};
		sb_write(&g->sb, c.bytes, c.len);
	}
	if (rc < 0)
		die(err);
	bk_gen_stats_get(gen, &g->st);
	bk_gen_free(gen);
}

static void stream_free(stream *g)
{
	msgpack_sbuffer_destroy(&g->sb);
	free(g->v);
}

/* --- (a) decide + evolve + encode + hash ---------------------------------------------------- */

typedef struct recref {
	size_t off;
	uint32_t len;
} recref;

typedef struct engine_run {
	double secs;
	uint64_t outcome[3], codes[BK_E__COUNT], events, mismatches, rules_bytes;
	size_t orders;
	msgpack_sbuffer arch; /* every events record, back to back */
	recref *recs;
	size_t n_recs;
} engine_run;

static void report_mismatch(const stream *g, size_t i, const bk_command *c, const bk_decision *d,
			    uint64_t *shown)
{
	if ((*shown)++ >= 10)
		return;
	fprintf(stderr, "mismatch #%zu %s %s %s: want %s, got %s %s: %s\n", i, c->id,
		bk_cmd_name((bk_cmd_type)c->type), c->order_id,
		bk_outcome_name((bk_outcome)g->v[i].expect), bk_outcome_name(d->outcome),
		bk_err_name(d->code), d->message);
}

static int run_engine(const stream *g, size_t batch, bool verbose, engine_run *out)
{
	memset(out, 0, sizeof(*out));
	bk_engine *e = bk_engine_new();
	bk_tzdb *tz = bk_tzdb_new(NULL);
	if (!e || !tz)
		die("out of memory");
	msgpack_zone cz, ez;
	if (!msgpack_zone_init(&cz, 1 << 20) || !msgpack_zone_init(&ez, 1 << 16))
		die("out of memory");
	msgpack_sbuffer rec, rules;
	msgpack_sbuffer_init(&rec);
	msgpack_sbuffer_init(&rules);
	msgpack_sbuffer_init(&out->arch);
	bk_command *cmds = xcalloc(batch, sizeof(*cmds));
	size_t *ends = xcalloc(batch, sizeof(*ends));
	out->recs = xcalloc(g->n, sizeof(*out->recs));
	uint64_t shown = 0;
	int rc = 0;
	char err[256];

	for (size_t b0 = 0; b0 < g->n && rc == 0; b0 += batch) {
		size_t nb = g->n - b0 < batch ? g->n - b0 : batch;
		for (size_t i = 0; i < nb; i++) { /* untimed: what the consumer hands over */
			const cmdref *r = &g->v[b0 + i];
			if (bk_codec_command_decode(g->sb.data + r->off, r->len, false, false, &cz,
						    &cmds[i], err, sizeof(err)) < 0) {
				fprintf(stderr, "bench_core: command %zu does not decode: %s\n",
					b0 + i, err);
				die("generator bug");
			}
		}
		double t0 = now_s();
		for (size_t i = 0; i < nb; i++) {
			const bk_command *c = &cmds[i];
			bk_decide_ctx ctx = {.now = c->at,
					     .expiring_lead = 24 * HOUR_US,
					     .tz = bk_tz_offset,
					     .tz_opaque = tz};
			bk_decision d;
			if (bk_engine_handle(e, c, &ctx, &ez, &d) < 0) {
				fprintf(stderr, "bench_core: %s: %s\n", c->id, d.message);
				rc = -1;
				break;
			}
			ends[i] = rec.size;
			if (d.n_events > 0) {
				bk_record r = {c->order_id, c->id, d.events, d.n_events};
				if (bk_codec_record_encode(&r, &rec) < 0) {
					fprintf(stderr, "bench_core: %s: record encode failed\n",
						c->id);
					rc = -1;
					break;
				}
				ends[i] = rec.size;
			}
			if (d.has_rules && d.outcome == BK_ACCEPTED &&
			    bk_codec_rules_encode(&d.rules, &rules) < 0) {
				fprintf(stderr, "bench_core: %s: rules encode failed\n", c->id);
				rc = -1;
				break;
			}
			out->outcome[d.outcome]++;
			out->codes[d.code]++;
			out->events += d.n_events;
			if (d.outcome != (bk_outcome)g->v[b0 + i].expect) {
				out->mismatches++;
				if (verbose)
					report_mismatch(g, b0 + i, c, &d, &shown);
			}
			bk_decision_clear(&d);
			msgpack_zone_clear(&ez);
		}
		out->secs += now_s() - t0;
		/* untimed: keep the records for (b) */
		size_t base = out->arch.size, start = 0;
		sb_write(&out->arch, rec.data, rec.size);
		for (size_t i = 0; i < nb; i++) {
			if (ends[i] > start)
				out->recs[out->n_recs++] =
				    (recref){base + start, (uint32_t)(ends[i] - start)};
			start = ends[i];
		}
		out->rules_bytes += rules.size;
		msgpack_sbuffer_clear(&rec);
		msgpack_sbuffer_clear(&rules);
		msgpack_zone_clear(&cz);
	}
	out->orders = bk_engine_count(e);
	free(cmds);
	free(ends);
	msgpack_sbuffer_destroy(&rec);
	msgpack_sbuffer_destroy(&rules);
	msgpack_zone_destroy(&cz);
	msgpack_zone_destroy(&ez);
	bk_tzdb_free(tz);
	bk_engine_free(e);
	return rc;
}

/* --- (b) codecs, (c) baselines ------------------------------------------------------------ */

typedef struct codec_run {
	double cmd_dec, cmd_raw;			       /* command decode; msgpack_unpack */
	double rec_dec, rec_raw_unpack, rec_enc, rec_raw_pack; /* records */
	double hash, floor;				       /* BLAKE2b alone; pack+hash floor */
	uint64_t cmd_bytes, rec_bytes, canon_bytes, events, hash_bad, floor_bad;
	bool enc_identical, pack_identical;
} codec_run;

static void bench_commands(const stream *g, size_t batch, codec_run *cr)
{
	msgpack_zone z;
	if (!msgpack_zone_init(&z, 4 << 20))
		die("out of memory");
	char err[256];
	for (size_t b0 = 0; b0 < g->n; b0 += batch) {
		size_t nb = g->n - b0 < batch ? g->n - b0 : batch;
		double t0 = now_s();
		for (size_t i = 0; i < nb; i++) {
			const cmdref *r = &g->v[b0 + i];
			bk_command c;
			if (bk_codec_command_decode(g->sb.data + r->off, r->len, false, false, &z,
						    &c, err, sizeof(err)) < 0)
				die("command decode failed");
		}
		double t1 = now_s();
		msgpack_zone_clear(&z);
		double t2 = now_s();
		for (size_t i = 0; i < nb; i++) {
			const cmdref *r = &g->v[b0 + i];
			size_t off = 0;
			msgpack_object o;
			if (msgpack_unpack(g->sb.data + r->off, r->len, &off, &z, &o) !=
			    MSGPACK_UNPACK_SUCCESS)
				die("msgpack_unpack failed");
		}
		double t3 = now_s();
		msgpack_zone_clear(&z);
		cr->cmd_dec += t1 - t0;
		cr->cmd_raw += t3 - t2;
	}
	cr->cmd_bytes = g->sb.size;
	msgpack_zone_destroy(&z);
}

/* One hash link: BLAKE2b-256(prev || canon), as bk_chain_hash computes it. */
static void chain_hash(const uint8_t *prev, const void *canon, size_t n, uint8_t out[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, prev, 32);
	crypto_generichash_update(&st, canon, n);
	crypto_generichash_final(&st, out, 32);
}

static void ignore_release(void *opaque, void *rec, int64_t offset, bool sealed,
			   const uint8_t *digest)
{
	(void)digest;
	(void)opaque;
	(void)rec;
	(void)offset;
	(void)sealed;
}

/*
 * The reader rule as a restore applies it, on the records the engine wrote: decode +
 * bk_engine_read with the hash check off ("without the checks", the rule before seals)
 * and on, and the seal path alone (record digest, seal buffer, one Ed25519 verify per
 * seal of `batch` records, as the processor writes them).
 */
typedef struct restore_run {
	double read_nocheck, read_check, seal;
	uint64_t applied_nocheck, applied_check, sealed;
} restore_run;

static double restore_pass(const engine_run *er, bool check, uint64_t *ret_applied)
{
	bk_engine *e = bk_engine_new();
	bk_engine_check_hashes(e, check);
	msgpack_zone z;
	if (!e || !msgpack_zone_init(&z, 1 << 16))
		die("out of memory");
	bk_chain_verdict v[BK_MAX_EVENTS];
	char err[256];
	uint64_t applied = 0;
	double t0 = now_s();
	for (size_t i = 0; i < er->n_recs; i++) {
		bk_record r;
		msgpack_zone_clear(&z);
		if (bk_codec_record_decode(er->arch.data + er->recs[i].off, er->recs[i].len, &z, &r,
					   err, sizeof(err)) < 0 ||
		    r.n > BK_MAX_EVENTS || bk_engine_read(e, &r, v, err, sizeof(err)) < 0)
			die(err);
		for (uint32_t k = 0; k < r.n; k++)
			applied += v[k] == BK_CHAIN_NEXT;
	}
	double t = now_s() - t0;
	msgpack_zone_destroy(&z);
	bk_engine_free(e);
	*ret_applied = applied;
	return t;
}

/* Memory per order held (heap in use, glibc mallinfo2, around building an engine from
 * every record) and the orders' snapshots: bytes, encode and decode rates. */
typedef struct snap_acc {
	msgpack_sbuffer sb;
	uint64_t n, bytes, max;
	double enc_s;
	bk_engine *into;
	double dec_s;
} snap_acc;

static void snap_one(const bk_order *o, void *opaque)
{
	snap_acc *a = opaque;
	msgpack_sbuffer_clear(&a->sb);
	double t0 = now_s();
	if (bk_snap_encode(o, 0, 0, &a->sb) < 0)
		die("snapshot encode");
	double t1 = now_s();
	bk_order *d;
	int32_t part;
	int64_t off;
	char err[256];
	if (bk_snap_decode(a->sb.data, a->sb.size, &d, &part, &off, err, sizeof(err)) < 0)
		die(err);
	if (bk_engine_put(a->into, d) < 0)
		die("out of memory");
	a->dec_s += now_s() - t1;
	a->enc_s += t1 - t0;
	a->n++;
	a->bytes += a->sb.size;
	if (a->sb.size > a->max)
		a->max = a->sb.size;
}

static void bench_memory(const engine_run *er)
{
	msgpack_zone z;
	if (!msgpack_zone_init(&z, 1 << 16))
		die("out of memory");
	bk_chain_verdict v[BK_MAX_EVENTS];
	char err[256];
	size_t before = mallinfo2().uordblks;
	bk_engine *e = bk_engine_new();
	if (!e)
		die("out of memory");
	for (size_t i = 0; i < er->n_recs; i++) {
		bk_record r;
		msgpack_zone_clear(&z);
		if (bk_codec_record_decode(er->arch.data + er->recs[i].off, er->recs[i].len, &z, &r,
					   err, sizeof(err)) < 0 ||
		    r.n > BK_MAX_EVENTS || bk_engine_read(e, &r, v, err, sizeof(err)) < 0)
			die(err);
	}
	msgpack_zone_destroy(&z);
	size_t held = mallinfo2().uordblks - before;
	size_t n = bk_engine_count(e);
	snap_acc a = {.into = bk_engine_new()};
	msgpack_sbuffer_init(&a.sb);
	/* the orders come in this engine's table order, as a checkpoint writes them: the
	 * restore reserves the checkpoint's count first (bk_engine_reserve) */
	if (!a.into || bk_engine_reserve(a.into, n) < 0)
		die("out of memory");
	bk_engine_foreach(e, snap_one, &a);
	printf("\nmemory and snapshots (%zu orders held, from %zu records):\n"
	       "  heap in use by the engine: %.1f MB, %.0f bytes per order (engine table "
	       "included)\n"
	       "  snapshots: %.1f MB, %.0f bytes per order on average, largest %" PRIu64
	       " bytes; encode %.0f orders/s, decode + put %.0f orders/s (one core)\n",
	       n, er->n_recs, (double)held / 1e6, n ? (double)held / (double)n : 0.0,
	       (double)a.bytes / 1e6, a.n ? (double)a.bytes / (double)a.n : 0.0, a.max,
	       (double)a.n / a.enc_s, (double)a.n / a.dec_s);
	msgpack_sbuffer_destroy(&a.sb);
	bk_engine_free(a.into);
	bk_engine_free(e);
}

/* An engine of every record (the reader rule, as a restore builds it). */
static bk_engine *engine_of(const engine_run *er)
{
	msgpack_zone z;
	if (!msgpack_zone_init(&z, 1 << 16))
		die("out of memory");
	bk_chain_verdict v[BK_MAX_EVENTS];
	char err[256];
	bk_engine *e = bk_engine_new();
	if (!e)
		die("out of memory");
	for (size_t i = 0; i < er->n_recs; i++) {
		bk_record r;
		msgpack_zone_clear(&z);
		if (bk_codec_record_decode(er->arch.data + er->recs[i].off, er->recs[i].len, &z, &r,
					   err, sizeof(err)) < 0 ||
		    r.n > BK_MAX_EVENTS || bk_engine_read(e, &r, v, err, sizeof(err)) < 0)
			die(err);
	}
	msgpack_zone_destroy(&z);
	return e;
}

/* Resident set size in bytes (/proc/self/statm), after giving freed heap back. */
static size_t rss_bytes(void)
{
	malloc_trim(0);
	long pages = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f || fscanf(f, "%ld %ld", &pages, &res) != 2)
		res = 0;
	if (f)
		fclose(f);
	return (size_t)res * 4096;
}

typedef struct due_ids {
	char (*id)[BK_ID_MAX];
	int64_t *at;
	size_t n;
	int64_t window;
} due_ids;

static void note_due(const bk_order *o, void *opaque)
{
	due_ids *d = opaque;
	int64_t at = bk_archive_due(o, d->window);
	if (at == BK_TS_NONE)
		return;
	memcpy(d->id[d->n], o->order_id, BK_ID_MAX);
	d->at[d->n++] = at;
}

static void snap_bytes(const bk_order *o, void *opaque)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	if (bk_snap_encode(o, 0, 0, &sb) < 0)
		die("snapshot encode");
	*(uint64_t *)opaque += sb.size;
	msgpack_sbuffer_destroy(&sb);
}

/* Sweep every order of d due by `now` (the processor's sweep: order.archived, decided and
 * evolved by bk_engine_handle). Returns the orders archived; adds the time to *secs. */
static size_t sweep_due(bk_engine *b, const due_ids *d, int64_t now, double *secs)
{
	bk_tzdb *tz = bk_tzdb_new(NULL);
	msgpack_zone z;
	if (!tz || !msgpack_zone_init(&z, 1 << 16))
		die("out of memory");
	size_t n = 0;
	double t0 = now_s();
	for (size_t i = 0; i < d->n; i++) {
		if (d->at[i] > now || !bk_engine_order(b, d->id[i]))
			continue;
		bk_command c = {.id = "cmd_bench_sweep",
				.type = BK_CMD_ORDER_SWEEP,
				.order_id = d->id[i],
				.actor_role = BK_ROLE_SYSTEM,
				.at = now,
				.payload = {.type = MSGPACK_OBJECT_MAP}};
		bk_decide_ctx ctx = {
		    .now = now, .archive_after = d->window, .tz = bk_tz_offset, .tz_opaque = tz};
		bk_decision dec;
		msgpack_zone_clear(&z);
		if (bk_engine_handle(b, &c, &ctx, &z, &dec) < 0 || dec.n_events != 1)
			die("archiving sweep");
		n++;
	}
	*secs += now_s() - t0;
	msgpack_zone_destroy(&z);
	bk_tzdb_free(tz);
	return n;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* The fingerprint set's own heap for n archived orders (8 bytes a slot, at most half
 * full): measured on an empty engine. */
static size_t set_heap(size_t n)
{
	bk_engine *f = bk_engine_new();
	size_t fb = mallinfo2().uordblks;
	for (size_t i = 0; i < n; i++)
		if (bk_engine_archived_put(f, (uint64_t)(i + 1) << 1 | 1) < 0)
			die("out of memory");
	size_t bytes = mallinfo2().uordblks - fb;
	bk_engine_free(f);
	return bytes;
}

/*
 * Memory with archiving (issue #11): an engine of every record (as a restore builds it),
 * then the processor's sweep archives the settled orders whose 30-day window has passed
 * by an instant: none, the older half, all of them. Heap in use (and RSS) with the orders
 * held and archived at each step: memory follows the live orders, plus a fingerprint per
 * archived one; the snapshots a checkpoint holds and the archived records a restore reads.
 */
static void bench_archive(const engine_run *er)
{
	/* the bench's own bookkeeping first, outside the heap measured */
	due_ids d = {.id = xcalloc(er->orders, BK_ID_MAX),
		     .at = xcalloc(er->orders, sizeof(int64_t)),
		     .window = INT64_C(30) * 24 * HOUR_US};
	int64_t *sorted = xcalloc(er->orders, sizeof(int64_t));
	size_t rss0 = rss_bytes(), before = mallinfo2().uordblks;
	bk_engine *b = engine_of(er);
	if (bk_engine_count(b) > er->orders)
		die("more orders than handled");
	bk_engine_foreach(b, note_due, &d);
	memcpy(sorted, d.at, d.n * sizeof(int64_t));
	qsort(sorted, d.n, sizeof(int64_t), cmp_i64);
	const struct {
		const char *name;
		int64_t now;
	} steps[] = {
	    {"none yet", d.n ? sorted[0] - 1 : 0},
	    {"the older half", d.n ? sorted[d.n / 2] : 0},
	    {"all settled", d.n ? sorted[d.n - 1] : 0},
	};
	printf("\narchiving (window 30 days; %zu of %zu orders settled; the sweep at three "
	       "instants):\n",
	       d.n, bk_engine_count(b));
	double secs = 0;
	size_t swept = 0;
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		swept += sweep_due(b, &d, steps[k].now, &secs);
		size_t live = bk_engine_count(b), arch = bk_engine_archived_count(b);
		size_t held = mallinfo2().uordblks - before, rss = rss_bytes() - rss0;
		size_t set = arch ? set_heap(arch) : 0;
		uint64_t snaps = 0;
		bk_engine_foreach(b, snap_bytes, &snaps);
		printf("  %-15s %6zu live, %6zu archived: heap %6.1f MB = %4.0f bytes per live "
		       "order + fingerprint set %.2f MB (%.1f bytes per archived order); RSS "
		       "+%.1f MB; snapshots %.1f MB, archived records %.2f MB\n",
		       steps[k].name, live, arch, (double)held / 1e6,
		       live ? (double)(held - set) / (double)live : 0.0, (double)set / 1e6,
		       arch ? (double)set / (double)arch : 0.0, (double)rss / 1e6,
		       (double)snaps / 1e6, (double)arch * 8 / 1e6);
	}
	printf("  order.archived decided and evolved: %.0f orders/s (one core)\n",
	       swept ? (double)swept / secs : 0.0);
	free(sorted);
	free(d.id);
	free(d.at);
	bk_engine_free(b);
}

static void bench_restore(const engine_run *er, size_t batch, restore_run *rr)
{
	rr->read_nocheck = restore_pass(er, false, &rr->applied_nocheck);
	rr->read_check = restore_pass(er, true, &rr->applied_check);
	/* the seal path: digests (of decoded records), buffer, one signature check per seal */
	uint8_t pk[BK_PK_LEN], sk[BK_SK_LEN], sig[BK_SIG_LEN];
	if (bk_auth_keygen(pk, sk) < 0)
		die("bk_auth_keygen failed");
	bk_seal_rec *recs = xcalloc(batch + 1, sizeof(*recs));
	msgpack_zone z;
	if (!msgpack_zone_init(&z, 1 << 16))
		die("out of memory");
	bk_sealbuf *b = bk_sealbuf_new();
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	char err[256];
	double t = 0;
	for (size_t b0 = 0; b0 < er->n_recs; b0 += batch) {
		size_t nb = er->n_recs - b0 < batch ? er->n_recs - b0 : batch;
		/* the writer's side, not timed: the seal of these records */
		for (size_t i = 0; i < nb; i++) {
			bk_record r;
			msgpack_zone_clear(&z);
			if (bk_codec_record_decode(er->arch.data + er->recs[b0 + i].off,
						   er->recs[b0 + i].len, &z, &r, err,
						   sizeof(err)) < 0)
				die(err);
			recs[i].offset = (int64_t)(b0 + i);
			bk_seal_digest_record(&r, recs[i].digest);
		}
		bk_seal s = {.writer = "w",
			     .topic = "t",
			     .base = -1,
			     .src_next = 0,
			     .recs = recs,
			     .n = (uint32_t)nb};
		msgpack_sbuffer_clear(&sb);
		if (bk_seal_encode(&s, &sb) < 0)
			die("seal encode");
		bk_auth_sign(sk, sb.data, sb.size, sig);
		/* the reader's side, timed: what a reader adds to its decode and judge */
		double t0 = now_s();
		for (size_t i = 0; i < nb; i++) {
			bk_record r;
			msgpack_zone_clear(&z);
			if (bk_codec_record_decode(er->arch.data + er->recs[b0 + i].off,
						   er->recs[b0 + i].len, &z, &r, err,
						   sizeof(err)) < 0)
				die(err);
			uint8_t d[BK_HASH_LEN];
			bk_seal_digest_record(&r, d);
			if (bk_sealbuf_add(b, (int64_t)(b0 + i), d, NULL) < 0)
				die("sealbuf");
		}
		if (crypto_sign_verify_detached(sig, (const uint8_t *)sb.data, sb.size, pk) != 0)
			die("seal signature");
		rr->sealed += bk_sealbuf_seal(b, &s, ignore_release, NULL);
		t += now_s() - t0;
	}
	rr->seal = t;
	msgpack_sbuffer_destroy(&sb);
	bk_sealbuf_free(b);
	msgpack_zone_destroy(&z);
	free(recs);
}

static void bench_records(const engine_run *er, size_t batch, codec_run *cr)
{
	msgpack_zone zd, zr;
	if (!msgpack_zone_init(&zd, 4 << 20) || !msgpack_zone_init(&zr, 4 << 20))
		die("out of memory");
	msgpack_sbuffer enc, pack, canon, scratch, fl;
	msgpack_sbuffer_init(&enc);
	msgpack_sbuffer_init(&pack);
	msgpack_sbuffer_init(&canon);
	msgpack_sbuffer_init(&scratch);
	msgpack_sbuffer_init(&fl);
	msgpack_packer ppack, pscratch, pfl;
	msgpack_packer_init(&ppack, &pack, sb_write);
	msgpack_packer_init(&pscratch, &scratch, sb_write);
	msgpack_packer_init(&pfl, &fl, sb_write);
	bk_record *recs = xcalloc(batch, sizeof(*recs));
	msgpack_object *objs = xcalloc(batch, sizeof(*objs));
	size_t ev_cap = batch * 4, *coff = xcalloc(ev_cap, sizeof(*coff));
	const bk_event **evp = xcalloc(ev_cap, sizeof(*evp));
	uint8_t(*out)[32] = xcalloc(ev_cap, 32);
	char err[256];
	cr->enc_identical = cr->pack_identical = true;

	for (size_t b0 = 0; b0 < er->n_recs; b0 += batch) {
		size_t nb = er->n_recs - b0 < batch ? er->n_recs - b0 : batch;
		const char *first = er->arch.data + er->recs[b0].off;
		size_t span =
		    er->recs[b0 + nb - 1].off + er->recs[b0 + nb - 1].len - er->recs[b0].off;
		cr->rec_bytes += span;

		double t0 = now_s();
		for (size_t i = 0; i < nb; i++) {
			const recref *r = &er->recs[b0 + i];
			if (bk_codec_record_decode(er->arch.data + r->off, r->len, &zd, &recs[i],
						   err, sizeof(err)) < 0)
				die(err);
		}
		double t1 = now_s();
		for (size_t i = 0; i < nb; i++)
			if (bk_codec_record_encode(&recs[i], &enc) < 0)
				die("record encode failed");
		double t2 = now_s();
		cr->rec_dec += t1 - t0;
		cr->rec_enc += t2 - t1;
		if (enc.size != span || (span && memcmp(enc.data, first, span) != 0))
			cr->enc_identical = false;
		msgpack_sbuffer_clear(&enc);

		/* BLAKE2b alone over the canonical bytes of the same events */
		size_t ne = 0;
		for (size_t i = 0; i < nb; i++)
			for (uint32_t k = 0; k < recs[i].n; k++) {
				if (ne + 1 >= ev_cap) {
					ev_cap *= 2;
					coff = xrealloc(coff, ev_cap * sizeof(*coff));
					evp = xrealloc(evp, ev_cap * sizeof(*evp));
					out = xrealloc(out, ev_cap * 32);
				}
				coff[ne] = canon.size;
				evp[ne++] = &recs[i].events[k];
				if (bk_codec_event_canon(&recs[i].events[k], &canon) < 0)
					die("canon failed");
			}
		coff[ne] = canon.size;
		t0 = now_s();
		for (size_t k = 0; k < ne; k++)
			chain_hash(evp[k]->prev_hash, canon.data + coff[k], coff[k + 1] - coff[k],
				   out[k]);
		t1 = now_s();
		cr->hash += t1 - t0;
		for (size_t k = 0; k < ne; k++)
			cr->hash_bad += memcmp(out[k], evp[k]->hash, 32) != 0;
		cr->events += ne;
		cr->canon_bytes += canon.size + 32 * ne;
		msgpack_sbuffer_clear(&canon);

		/* msgpack-c alone: unpack and pack the same records */
		t0 = now_s();
		for (size_t i = 0; i < nb; i++) {
			const recref *r = &er->recs[b0 + i];
			size_t off = 0;
			if (msgpack_unpack(er->arch.data + r->off, r->len, &off, &zr, &objs[i]) !=
			    MSGPACK_UNPACK_SUCCESS)
				die("msgpack_unpack failed");
		}
		t1 = now_s();
		for (size_t i = 0; i < nb; i++)
			msgpack_pack_object(&ppack, objs[i]);
		t2 = now_s();
		cr->rec_raw_unpack += t1 - t0;
		cr->rec_raw_pack += t2 - t1;
		if (pack.size != span || (span && memcmp(pack.data, first, span) != 0))
			cr->pack_identical = false;
		msgpack_sbuffer_clear(&pack);

		/* The floor of the handle pipeline: for each event, pack its canonical map (the
		 * event without its last key, `hash`) and hash it; then pack the record. */
		for (size_t i = 0; i < nb; i++) {
			const msgpack_object_kv *kv = objs[i].via.map.ptr;
			if (objs[i].via.map.size != 4 || kv[3].val.type != MSGPACK_OBJECT_ARRAY)
				die("unexpected record shape");
			const msgpack_object_array *a = &kv[3].val.via.array;
			for (uint32_t k = 0; k < a->size; k++) {
				const msgpack_object_map *m = &a->ptr[k].via.map;
				if (m->size != 12 || m->ptr[10].val.type != MSGPACK_OBJECT_BIN ||
				    m->ptr[11].key.via.str.size != 4 ||
				    memcmp(m->ptr[11].key.via.str.ptr, "hash", 4) != 0)
					die("unexpected event shape");
			}
		}
		size_t k_ev = 0;
		t0 = now_s();
		for (size_t i = 0; i < nb; i++) {
			const msgpack_object_array *a = &objs[i].via.map.ptr[3].val.via.array;
			for (uint32_t k = 0; k < a->size; k++) {
				msgpack_object ev = a->ptr[k];
				ev.via.map.size = 11;
				msgpack_sbuffer_clear(&scratch);
				msgpack_pack_object(&pscratch, ev);
				chain_hash((const uint8_t *)ev.via.map.ptr[10].val.via.bin.ptr,
					   scratch.data, scratch.size, out[k_ev++]);
			}
			msgpack_pack_object(&pfl, objs[i]);
		}
		t1 = now_s();
		cr->floor += t1 - t0;
		for (size_t k = 0; k < ne && k < k_ev; k++)
			cr->floor_bad += memcmp(out[k], evp[k]->hash, 32) != 0;
		cr->floor_bad += k_ev != ne;
		msgpack_sbuffer_clear(&fl);
		msgpack_zone_clear(&zr);
		msgpack_zone_clear(&zd);
	}
	free(recs);
	free(objs);
	free(coff);
	free(evp);
	free(out);
	msgpack_sbuffer_destroy(&enc);
	msgpack_sbuffer_destroy(&pack);
	msgpack_sbuffer_destroy(&canon);
	msgpack_sbuffer_destroy(&scratch);
	msgpack_sbuffer_destroy(&fl);
	msgpack_zone_destroy(&zd);
	msgpack_zone_destroy(&zr);
}

/* --- report ----------------------------------------------------------------------------- */

typedef struct row {
	const char *name;
	uint64_t count;
	const char *unit;
	double secs;
	uint64_t bytes; /* 0: no MB/s */
	int base;	/* index of the baseline row, -1: this is a baseline */
} row;

static void print_table(const row *rows, size_t n)
{
	printf("\n%-58s %10s %-5s %8s %14s %8s %9s\n", "name", "count", "unit", "seconds",
	       "rate (/s)", "MB/s", "ratio");
	for (size_t i = 0; i < n; i++) {
		const row *r = &rows[i];
		char mbs[32] = "-", ratio[32] = "baseline";
		if (r->bytes)
			snprintf(mbs, sizeof(mbs), "%.1f", (double)r->bytes / r->secs / 1e6);
		if (r->base >= 0)
			snprintf(ratio, sizeof(ratio), "%.2fx [%d]", r->secs / rows[r->base].secs,
				 r->base);
		printf("%-58s %10" PRIu64 " %-5s %8.3f %14.0f %8s %9s\n", r->name, r->count,
		       r->unit, r->secs, (double)r->count / r->secs, mbs, ratio);
	}
	printf("ratio: seconds / seconds of the baseline row [n] over the same data "
	       "(rows numbered from 0)\n");
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bench_core [--orders N] [--seed S] [--window W] [--batch B] "
		"[--verbose] [--handle-only] [--archive-only]\n"
		"  --orders  orders to generate (default 200000, ~7 commands each)\n"
		"  --seed    PRNG seed (default 1)\n"
		"  --window  orders in flight at once, interleaved (default 4096, at most 65536)\n"
		"  --batch   commands decoded ahead of each timed slice (default 4096)\n"
		"  --verbose print the first commands whose outcome differs from the plan\n"
		"  --archive-only  after handling, only the memory with and without archiving\n");
}

static bool parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	if (!s || !*s)
		return false;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end != '\0')
		return false;
	*ret = v;
	return true;
}

int main(int argc, char **argv)
{
	uint64_t orders = 200000, seed = 1, window = 4096, batch = 4096;
	bool verbose = false, handle_only = false, archive_only = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		uint64_t *dst = !strcmp(a, "--orders")	 ? &orders
				: !strcmp(a, "--seed")	 ? &seed
				: !strcmp(a, "--window") ? &window
				: !strcmp(a, "--batch")	 ? &batch
							 : NULL;
		if (!strcmp(a, "--verbose")) {
			verbose = true;
		} else if (!strcmp(a, "--handle-only")) {
			handle_only = true;
		} else if (!strcmp(a, "--archive-only")) {
			archive_only = true;
		} else if (dst && i + 1 < argc && parse_u64(argv[i + 1], dst)) {
			i++;
		} else {
			usage();
			return 2;
		}
	}
	if (orders < 1 || orders > BK_GEN_MAX_ORDERS || window < 1 || window > 65536 || batch < 1 ||
	    batch > 1000000) {
		usage();
		return 2;
	}
	if (sodium_init() < 0)
		die("sodium_init failed");

	double t = now_s();
	stream g;
	generate(&g, (uint32_t)orders, (uint32_t)window, seed);
	double gen_s = now_s() - t;
	uint64_t n_inv = g.st.wrong_actor + g.st.stale;
	printf("bench_core: one core, no threads; %" PRIu64 " orders, seed %" PRIu64
	       ", window %" PRIu64 ", batch %" PRIu64 "\n",
	       orders, seed, window, batch);
	printf("generated in %.2f s: %zu commands, %.1f MB of msgpack (%.0f bytes/command)\n",
	       gen_s, g.n, (double)g.sb.size / 1e6, (double)g.sb.size / (double)g.n);
	printf("  orders: RTB %" PRIu64 ", IB %" PRIu64 ", INVITE %" PRIu64 ", abandoned %" PRIu64
	       "; autoaccept.set %" PRIu64 "\n",
	       g.st.rtb, g.st.ib, g.st.invite, g.st.abandoned, g.st.rules);
	printf("  commands: planned %" PRIu64 ", resent duplicates %" PRIu64
	       " (%.1f%%), invalid %" PRIu64 " (%.1f%%: wrong actor %" PRIu64
	       ", stale expected_version %" PRIu64 ")\n",
	       g.st.planned, g.st.duplicates, 100.0 * (double)g.st.duplicates / (double)g.n, n_inv,
	       100.0 * (double)n_inv / (double)g.n, g.st.wrong_actor, g.st.stale);

	engine_run er;
	if (run_engine(&g, batch, verbose, &er) < 0)
		die("engine failed");
	double cps = (double)g.n / er.secs;
	printf("\nhandle: accepted %" PRIu64 ", rejected %" PRIu64 ", duplicate %" PRIu64
	       "; outcome differs from the plan: %" PRIu64 "\n",
	       er.outcome[BK_ACCEPTED], er.outcome[BK_REJECTED], er.outcome[BK_DUPLICATE],
	       er.mismatches);
	printf("  rejections:");
	for (int c = 1; c < BK_E__COUNT; c++)
		if (er.codes[c])
			printf(" %s %" PRIu64, bk_err_name((bk_err)c), er.codes[c]);
	printf("\n  %zu orders held; %" PRIu64
	       " events (%.2f per command) in %zu records, %.1f MB; "
	       "%.2f M events/s\n",
	       er.orders, er.events, (double)er.events / (double)g.n, er.n_recs,
	       (double)er.arch.size / 1e6, (double)er.events / er.secs / 1e6);

	if (archive_only) {
		bench_archive(&er);
		msgpack_sbuffer_destroy(&er.arch);
		free(er.recs);
		stream_free(&g);
		return 0;
	}
	if (handle_only) {
		printf("\nhandle: %zu commands in %.3f s: %.0f commands/s (codecs and baselines "
		       "skipped)\n",
		       g.n, er.secs, cps);
		msgpack_sbuffer_destroy(&er.arch);
		free(er.recs);
		stream_free(&g);
		return 0;
	}
	codec_run cr;
	memset(&cr, 0, sizeof(cr));
	bench_commands(&g, batch, &cr);
	bench_records(&er, batch, &cr);
	printf("  checks: re-encoded records identical %s; msgpack-c repack identical %s; "
	       "BLAKE2b baseline hashes differing %" PRIu64 ", floor hashes differing %" PRIu64
	       "\n",
	       cr.enc_identical ? "yes" : "NO", cr.pack_identical ? "yes" : "NO", cr.hash_bad,
	       cr.floor_bad);

	const row rows[] = {
	    {"[0] handle: decide+evolve+encode+hash + record encode", g.n, "cmd", er.secs,
	     er.arch.size, 1},
	    {"[1]   floor: canon pack + BLAKE2b-256 + record pack", g.n, "cmd", cr.floor,
	     er.arch.size, -1},
	    {"[2]   BLAKE2b-256 alone over the canonical event bytes", cr.events, "event", cr.hash,
	     cr.canon_bytes, -1},
	    {"[3] command decode (bk_codec_command_decode, msgpack)", g.n, "cmd", cr.cmd_dec,
	     cr.cmd_bytes, 4},
	    {"[4]   msgpack_unpack of the same bytes", g.n, "cmd", cr.cmd_raw, cr.cmd_bytes, -1},
	    {"[5] record encode (bk_codec_record_encode)", er.n_recs, "rec", cr.rec_enc,
	     cr.rec_bytes, 6},
	    {"[6]   msgpack_pack_object of the same records", er.n_recs, "rec", cr.rec_raw_pack,
	     cr.rec_bytes, -1},
	    {"[7] record decode (bk_codec_record_decode)", er.n_recs, "rec", cr.rec_dec,
	     cr.rec_bytes, 8},
	    {"[8]   msgpack_unpack of the same records", er.n_recs, "rec", cr.rec_raw_unpack,
	     cr.rec_bytes, -1},
	};
	print_table(rows, sizeof(rows) / sizeof(rows[0]));
	restore_run rr;
	memset(&rr, 0, sizeof(rr));
	bench_restore(&er, 2000, &rr);
	printf("\nrestore (the reader rule, one core, %zu records, %" PRIu64 " events):\n"
	       "  decode + judge, hash check off (the rule before seals): %.3f s, %.0f records/s\n"
	       "  decode + judge, hash check on:                           %.3f s, %.0f records/s "
	       "(%.2fx)\n"
	       "  seal path alone (decode, digest, buffer, 1 Ed25519 verify per 2000): %.3f s, "
	       "%.0f records/s\n"
	       "  with the checks, all in: %.0f records/s (%.2fx the rule without them); events "
	       "applied %" PRIu64 " / %" PRIu64 ", records sealed %" PRIu64 "\n",
	       er.n_recs, er.events, rr.read_nocheck, (double)er.n_recs / rr.read_nocheck,
	       rr.read_check, (double)er.n_recs / rr.read_check, rr.read_check / rr.read_nocheck,
	       rr.seal, (double)er.n_recs / rr.seal, (double)er.n_recs / (rr.read_check + rr.seal),
	       (rr.read_check + rr.seal) / rr.read_nocheck, rr.applied_check, rr.applied_nocheck,
	       rr.sealed);
	bench_memory(&er);
	bench_archive(&er);
	printf("\ntarget: >= %.0f commands/s decided+evolved+encoded+hashed on one core: "
	       "%.0f commands/s, %s\n",
	       TARGET_CMDS_PER_S, cps, cps >= TARGET_CMDS_PER_S ? "MET" : "NOT MET");

	msgpack_sbuffer_destroy(&er.arch);
	free(er.recs);
	stream_free(&g);
	return 0;
}
