/*
 * cmd_replay.c - `bookingctl replay`: events out of booking.events as JSON lines (one
 * event per line, with partition, offset, order id, seq, subtype, actor, payload, hash)
 * or as msgpack records for offline rebuilds, filtered by order, type glob, time range,
 * partition and offsets. Stops at the log's end unless --follow.
 *
 * The seal rule (lib/trust, core/bk_seal): with the writer keyring every events record
 * waits in its partition's seal buffer; only records a valid seal covers, and of them
 * only events whose hash matches their bytes, are printed. Rejected records are reported
 * on stderr and counted, never printed as events (--include-rejected: printed, marked).
 * The msgpack file (docs/rebuild.md, "The replay file") is a copy of the log range read:
 * a header saying what it holds, every record with its key, the seal records with their
 * key id and signature (rebuild checks them again), and a trailer with the counts.
 */
#include <fnmatch.h>
#include <pthread.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bk_codec.h"
#include "bk_ids.h"
#include "bk_seal.h"
#include "bk_schema.h"
#include "bk_time.h"
#include "bk_upcast.h"
#include "cmd.h"
#include "kconf.h"
#include "log.h"
#include "logread.h"
#include "pool.h"
#include "trust.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* What a batch record is. */
enum {
	RK_EVENTS,   /* an events record: printed (json), copied (msgpack) */
	RK_SEAL,     /* a seal record (msgpack only): copied with its key id and signature */
	RK_REJECTED, /* a record the seal rule rejected (json, --include-rejected): marked */
};

/* A record of a batch: where it came from, and its bytes in the batch's arena: the value
 * at `at`, then its key (klen), then a seal record's key id (kidlen) and signature. */
typedef struct rp_rec {
	int32_t partition;
	int64_t offset;
	size_t at, len;
	int64_t ts_ms; /* the record's Kafka timestamp (ms since the epoch), -1 when none */
	uint32_t klen;
	uint16_t kidlen, siglen;
	uint8_t kind;	 /* RK_* */
	uint8_t verdict; /* RK_REJECTED: the bk_chain_verdict */
} rp_rec;

/* A slice of a batch, formatted by one thread into its own buffer. */
typedef struct rp_slice {
	size_t lo, hi;	     /* records [lo, hi) of the batch */
	msgpack_sbuffer out; /* the slice's output; reused from batch to batch */
	int64_t events, records, bad, bad_hash;
	int failed;
} rp_slice;

/* Records copied out of the consumer's messages (which are freed as soon as they are
 * handed over), and once formatted, their output in slices. */
typedef struct rp_batch {
	rp_rec *recs; /* [RP_BATCH_RECORDS] */
	size_t n;
	char *arena; /* the records' bytes */
	size_t used, arena_cap;
	rp_slice *slices; /* [nslices] */
	size_t nused;	  /* slices with records; > 0: formatted output not yet written */
	/* json: the facts of its order.created events, noted by the main thread as it
	 * copies the records in; merged into replay's facts by the formatter before the
	 * slices run */
	bk_facts *facts;
} rp_batch;

/*
 * The main thread reads the log and copies records into one of two batches. A full
 * batch (or any batch when the reader is idle) goes to the formatter thread, which
 * decodes, filters and formats it in slices on the pool (the formatter is the pool's
 * caller). Meanwhile the main thread writes out the batch formatted before, then fills
 * it again. Batches are written in the order they were read, slices in order, so the
 * output is the same, byte for byte, as one thread reading and writing would give.
 *
 * Ownership: replay owns the batches, the pool and the formatter thread. The batch in
 * `ready` belongs to the formatter until it sets `ready` back to NULL (under mu); every
 * other batch, the output file and the counts belong to the main thread.
 */
typedef struct replay {
	const char *order;    /* filter: one order id */
	const char *type;     /* filter: fnmatch glob on the subtype */
	int64_t since, until; /* filter: created_at in [since, until) */
	bool msgpack;
	const char *topic;
	FILE *out;
	int64_t events, records, bad;
	/* the seal rule: trust is NULL with --trust-unsealed (every record printed as read) */
	bk_trust *trust;
	bool include_rejected;
	bool flushing;	/* the end of the read: what is still held was never sealed */
	bool discard;	/* an error: held records are only freed */
	bool cb_failed; /* a release could not be batched (out of memory, write) */
	int64_t *limit; /* msgpack: per partition, the end the header states */
	int nparts;	/* the topic's partitions (trust and limit) */
	msgpack_zone z; /* main thread: decoding for the seal digest */
	/* json: the facts of the order.created events read, to upcast older events (the
	 * formatter merges each batch's into it before the batch's slices read it) */
	bk_facts *facts;
	msgpack_zone fz;	  /* main thread: decoding order.created records */
	msgpack_sbuffer fscratch; /* main thread: their hash check */
	int64_t seals, bad_seals, sealed, rejected, rejected_events, bad_hash;
	bk_pool *pool;
	size_t nslices;
	rp_batch b[2];
	int fill; /* the batch the main thread fills */
	pthread_t formatter;
	bool has_formatter;
	bool has_sync; /* mu and cv are initialized */
	bool has_fz;   /* fz and fscratch are initialized */
	pthread_mutex_t mu;
	pthread_cond_t cv; /* ready changed, or quit */
	rp_batch *ready;   /* handed to the formatter; NULL once formatted */
	bool quit;	   /* the formatter stops when nothing is ready */
	bool write_failed; /* main thread: a write (or a batch's formatting) failed */
} replay;

/* A batch goes to the formatter when it holds this many records or arena bytes. */
#define RP_BATCH_RECORDS 8192
#define RP_BATCH_BYTES	 (8u << 20)

static bool event_matches(const replay *r, const bk_event *e)
{
	if (r->order && strcmp(e->order_id, r->order) != 0)
		return false;
	if (e->created_at < r->since || e->created_at >= r->until)
		return false;
	if (r->type) {
		char sub[64];
		if (fnmatch(r->type, bk_event_subtype(e, sub, sizeof(sub)), 0) != 0)
			return false;
	}
	return true;
}

static bool filtered_by_event(const replay *r)
{
	return r->order || r->type || r->since != INT64_MIN || r->until != INT64_MAX;
}

/* An event whose hash does not match its bytes (the seal rule's checks only): reported. */
static void report_bad_hash(const replay *r, const rp_rec *x, const bk_event *e)
{
	bk_logf(BK_LOG_WARN, "record rejected",
		"topic=%s partition=%d offset=%lld order_id=%s seq=%lld verdict=%s "
		"reason=\"the hash does not match the event's bytes\"",
		r->topic, x->partition, (long long)x->offset, e->order_id, (long long)e->seq,
		bk_chain_verdict_name(BK_CHAIN_BAD_HASH));
}

/* msgpack: [partition, offset, value, key, seal] (docs/rebuild.md); seal is nil or
 * [key id, signature] */
static int pack_record(const rp_batch *b, const rp_rec *x, msgpack_sbuffer *out)
{
	const char *v = b->arena + x->at, *k = v + x->len, *kid = k + x->klen,
		   *sig = kid + x->kidlen;
	msgpack_packer pk;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	if (msgpack_pack_array(&pk, 5) || msgpack_pack_int32(&pk, x->partition) ||
	    msgpack_pack_int64(&pk, x->offset) || msgpack_pack_bin(&pk, x->len) ||
	    msgpack_pack_bin_body(&pk, v, x->len))
		return -1;
	if (x->klen ? msgpack_pack_bin(&pk, x->klen) || msgpack_pack_bin_body(&pk, k, x->klen)
		    : msgpack_pack_nil(&pk))
		return -1;
	if (x->kind != RK_SEAL)
		return msgpack_pack_nil(&pk) ? -1 : 0;
	if (msgpack_pack_array(&pk, 2) || msgpack_pack_bin(&pk, x->kidlen) ||
	    msgpack_pack_bin_body(&pk, kid, x->kidlen) || msgpack_pack_bin(&pk, x->siglen) ||
	    msgpack_pack_bin_body(&pk, sig, x->siglen))
		return -1;
	return 0;
}

/* Decode one record and append what the filters keep to s->out; -1 when out of memory. */
static int format_record(const replay *r, const rp_batch *b, const rp_rec *x, msgpack_zone *z,
			 msgpack_sbuffer *scratch, rp_slice *s)
{
	const char *bytes = b->arena + x->at;
	bk_record rec;
	char err[256];
	msgpack_zone_clear(z);
	if (r->msgpack && x->kind == RK_SEAL) {
		if (pack_record(b, x, &s->out) < 0)
			return -1;
		s->records++;
		return 0;
	}
	if (bk_codec_record_decode(bytes, x->len, z, &rec, err, sizeof(err)) < 0) {
		if (x->kind != RK_REJECTED) /* a rejected one was counted when it was read */
			s->bad++;
		if (r->msgpack && !filtered_by_event(r)) {
			/* a copy of the log: rebuild rejects it as the Kafka rebuild does */
			bk_logf(BK_LOG_WARN, "undecodable record copied",
				"topic=%s partition=%d offset=%lld error=\"%s\"", r->topic,
				x->partition, (long long)x->offset, err);
			if (pack_record(b, x, &s->out) < 0)
				return -1;
			s->records++;
			return 0;
		}
		if (x->kind == RK_REJECTED) { /* reported by the main thread */
			char line[160];
			int n = snprintf(line, sizeof(line),
					 "{\"partition\":%d,\"offset\":%lld,\"rejected\":\"%s\"}\n",
					 (int)x->partition, (long long)x->offset,
					 bk_chain_verdict_name((bk_chain_verdict)x->verdict));
			return msgpack_sbuffer_write(&s->out, line, (size_t)n) < 0 ? -1 : 0;
		}
		if (!r->trust) /* with the seal rule, the main thread reported it */
			bk_logf(BK_LOG_WARN, "undecodable record skipped",
				"topic=%s partition=%d offset=%lld error=\"%s\"", r->topic,
				x->partition, (long long)x->offset, err);
		return 0;
	}
	if (r->msgpack) {
		bool any = false;
		for (uint32_t i = 0; i < rec.n && !any; i++)
			any = event_matches(r, &rec.events[i]);
		if (!any)
			return 0;
		/* a copy of the log: the reader of the file checks the hashes (the seal
		 * verdicts are reported when the seals are read) */
		if (pack_record(b, x, &s->out) < 0)
			return -1;
		s->records++;
		s->events += rec.n;
		return 0;
	}
	/* "appended_at" beside the business time (created_at): when the record was appended
	 * to the log (its Kafka timestamp), in the same RFC 3339 form */
	char head[128];
	int hn = snprintf(head, sizeof(head),
			  "{\"partition\":%d,\"offset\":%lld,\"appended_at\":", (int)x->partition,
			  (long long)x->offset);
	if (hn <= 0 || (size_t)hn >= sizeof(head) - 48)
		return -1;
	if (x->ts_ms >= 0) {
		head[hn++] = '"';
		size_t tn = bk_ts_format(x->ts_ms * 1000, head + hn, sizeof(head) - (size_t)hn - 4);
		if (tn < 2 || memchr(head + hn, '.', tn) == NULL) { /* always six digits */
			hn += (int)tn - 1;
			memcpy(head + hn, ".000000Z", 8);
			hn += 8;
		} else
			hn += (int)tn;
		head[hn++] = '"';
	} else {
		memcpy(head + hn, "null", 4);
		hn += 4;
	}
	head[hn++] = ',';
	for (uint32_t i = 0; i < rec.n; i++) {
		if (!event_matches(r, &rec.events[i]))
			continue;
		int verdict = x->kind == RK_REJECTED ? x->verdict : -1;
		if (r->trust && verdict < 0 && !bk_seal_hash_ok(&rec.events[i], scratch)) {
			report_bad_hash(r, x, &rec.events[i]);
			s->bad_hash++;
			if (!r->include_rejected)
				continue;
			verdict = BK_CHAIN_BAD_HASH;
		}
		/* the event without its partition and offset, its "{" replaced by the head
		 * (and a rejected one's mark) */
		size_t start = s->out.size, brace = start + (size_t)hn - 1;
		if (msgpack_sbuffer_write(&s->out, head, (size_t)hn - 1) < 0)
			return -1;
		if (verdict >= 0) {
			char mark[64];
			int mn = snprintf(mark, sizeof(mark), ",\"rejected\":\"%s\"",
					  bk_chain_verdict_name((bk_chain_verdict)verdict));
			if (mn <= 0 || (size_t)mn >= sizeof(mark) ||
			    msgpack_sbuffer_write(&s->out, mark, (size_t)mn) < 0)
				return -1;
			brace = s->out.size;
		}
		/* an older schema is printed upcast with its order's facts (its hashes the
		 * stored ones); as stored, its `schema` saying so, when they are unknown */
		const bk_event *pe = &rec.events[i];
		bk_event up;
		if (r->facts && verdict < 0 && pe->schema < bk_event_version(pe)) {
			char why[160];
			bk_upcast_ctx uc = bk_facts_ctx(r->facts, pe->order_id);
			up = *pe;
			if (bk_upcast(&up, &uc, z, why, sizeof(why)) == 0)
				pe = &up;
		}
		if (bk_event_write_json(pe, -1, 0, &s->out) < 0)
			return -1;
		s->out.data[brace] = ',';
		if (msgpack_sbuffer_write(&s->out, "\n", 1) < 0)
			return -1;
		if (verdict < 0)
			s->events++;
	}
	s->records++;
	return 0;
}

/* Pool job: format slice i of the ready batch. The slice is worked on in a local copy:
 * the slices sit side by side in one array, and writing their counters and buffer sizes
 * in place made the threads fight over shared cache lines (two threads ran no faster
 * than one). */
static void format_slice(void *arg, size_t i, int worker)
{
	replay *r = arg;
	rp_batch *b = r->ready;
	rp_slice s = b->slices[i];
	msgpack_zone z;
	msgpack_sbuffer scratch;
	(void)worker;
	s.out.size = 0;
	s.events = s.records = s.bad = s.bad_hash = 0;
	s.failed = !msgpack_zone_init(&z, 4096);
	msgpack_sbuffer_init(&scratch);
	if (!s.failed) {
		for (size_t k = s.lo; k < s.hi && !s.failed; k++)
			s.failed = format_record(r, b, &b->recs[k], &z, &scratch, &s) < 0;
		msgpack_zone_destroy(&z);
	}
	msgpack_sbuffer_destroy(&scratch);
	b->slices[i] = s;
}

/* Formatter thread: format each ready batch on the pool. */
static void *formatter_main(void *arg)
{
	replay *r = arg;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->ready && !r->quit)
			pthread_cond_wait(&r->cv, &r->mu);
		if (!r->ready)
			break;
		rp_batch *b = r->ready;
		pthread_mutex_unlock(&r->mu);
		size_t per = (b->n + r->nslices - 1) / r->nslices;
		b->nused = 0;
		for (size_t i = 0; i < r->nslices; i++) {
			size_t lo = i * per < b->n ? i * per : b->n;
			b->slices[i].lo = lo;
			b->slices[i].hi = lo + per < b->n ? lo + per : b->n;
			if (b->slices[i].hi > lo)
				b->nused = i + 1;
		}
		if (r->facts) /* the batch's order facts, for its slices and the next batches */
			(void)bk_facts_merge(r->facts, b->facts);
		bk_pool_run(r->pool, format_slice, r, b->nused);
		pthread_mutex_lock(&r->mu);
		r->ready = NULL;
		pthread_cond_broadcast(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Main thread: wait until the formatter has nothing in hand. */
static void wait_formatted(replay *r)
{
	pthread_mutex_lock(&r->mu);
	while (r->ready)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
}

/* Main thread: write a formatted batch's slices in order and empty it. */
static int write_out(replay *r, rp_batch *b)
{
	int rc = 0;
	for (size_t i = 0; i < b->nused && rc == 0; i++) {
		rp_slice *s = &b->slices[i];
		if (s->failed) {
			bk_log(BK_LOG_ERROR, "replay: out of memory formatting a batch");
			rc = -1;
		} else if (s->out.size &&
			   fwrite(s->out.data, 1, s->out.size, r->out) != s->out.size) {
			bk_log(BK_LOG_ERROR, "replay: write failed");
			rc = -1;
		}
		if (rc < 0)
			r->write_failed = true;
		r->events += s->events;
		r->records += s->records;
		r->bad += s->bad;
		r->bad_hash += s->bad_hash;
	}
	b->n = b->used = b->nused = 0;
	return rc;
}

/* Main thread: hand the batch being filled to the formatter, write out the one it
 * formatted before while it works, and fill that one next. With `all`, also wait for
 * the batch just handed over and write it: nothing is held back then. */
static int submit(replay *r, bool all)
{
	rp_batch *b = &r->b[r->fill], *prev = &r->b[r->fill ^ 1];
	wait_formatted(r);
	if (b->n) {
		pthread_mutex_lock(&r->mu);
		r->ready = b;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
		r->fill ^= 1;
	}
	int rc = write_out(r, prev);
	if (all && b->n) {
		wait_formatted(r);
		if (write_out(r, b) < 0)
			rc = -1;
	}
	return rc;
}

/* The reader has nothing at hand: write out what is batched (--follow shows it now). */
static int on_idle(void *opaque)
{
	replay *r = opaque;
	if (submit(r, true) < 0)
		return -1;
	return fflush(r->out) == 0 ? 0 : -1;
}

/* Main thread: the facts of a record's order.created events into the batch (hashes
 * checked under the seal rule). A fact that cannot be kept (out of memory) leaves its
 * order's older events printed as stored. */
static void note_facts(replay *r, rp_batch *b, const void *val, size_t len)
{
	bk_record rec;
	char err[160];
	msgpack_zone_clear(&r->fz);
	if (bk_codec_record_decode(val, len, &r->fz, &rec, err, sizeof(err)) < 0)
		return;
	for (uint32_t i = 0; i < rec.n; i++)
		if (rec.events[i].type == BK_EV_ORDER_CREATED &&
		    (!r->trust || bk_seal_hash_ok(&rec.events[i], &r->fscratch)))
			(void)bk_facts_note(b->facts, &rec.events[i]);
}

/* Copy a record into the batch being filled (value, key, a seal's key id and signature). */
static int batch_put(replay *r, int32_t partition, int64_t offset, int64_t ts_ms, const void *val,
		     size_t len, const void *key, size_t klen, const void *kid, size_t kidlen,
		     const void *sig, size_t siglen, uint8_t kind, uint8_t verdict)
{
	if (!r->msgpack) /* the json lines need neither key nor seal headers */
		klen = kidlen = siglen = 0;
	if (kidlen > UINT16_MAX || siglen > UINT16_MAX || klen > UINT32_MAX)
		return -1;
	size_t need = len + klen + kidlen + siglen;
	rp_batch *b = &r->b[r->fill];
	if (b->n == RP_BATCH_RECORDS || b->used + need > b->arena_cap) {
		if (submit(r, false) < 0)
			return -1;
		b = &r->b[r->fill];
	}
	if (need > b->arena_cap) { /* one record larger than the arena: grow it */
		char *a = realloc(b->arena, need);
		if (!a)
			return -1;
		b->arena = a;
		b->arena_cap = need;
	}
	rp_rec *x = &b->recs[b->n++];
	*x = (rp_rec){partition,      offset,		b->used,	  len,	ts_ms,
		      (uint32_t)klen, (uint16_t)kidlen, (uint16_t)siglen, kind, verdict};
	char *at = b->arena + b->used;
	if (len)
		memcpy(at, val, len);
	if (klen)
		memcpy(at + len, key, klen);
	if (kidlen)
		memcpy(at + len + klen, kid, kidlen);
	if (siglen)
		memcpy(at + len + klen + kidlen, sig, siglen);
	b->used += need;
	if (b->facts && kind == RK_EVENTS && memmem(val, len, "order.created", 13))
		note_facts(r, b, val, len);
	return 0;
}

/* A record in a seal buffer: what the report needs and, for json, its bytes. */
typedef struct rp_held {
	int64_t ts_ms;
	char order[BK_ID_MAX];
	int64_t seq;
	uint32_t nev;
	size_t len;
	char *bytes; /* json: the record's value; NULL for msgpack (copied when read) */
} rp_held;

static void report_rejected(const replay *r, int32_t partition, int64_t offset, const char *order,
			    int64_t seq, bk_chain_verdict v, const char *why)
{
	bk_logf(BK_LOG_WARN, "record rejected",
		"topic=%s partition=%d offset=%lld order_id=%s seq=%lld verdict=%s reason=\"%s\"",
		r->topic, (int)partition, (long long)offset, order, (long long)seq,
		bk_chain_verdict_name(v), why);
}

/* The seal rule released a held record (main thread, in offset order per partition). */
static void on_release(void *opaque, void *rec, int32_t partition, int64_t offset, bool sealed,
		       const uint8_t *digest)
{
	replay *r = opaque;
	rp_held *h = rec;
	(void)digest; /* held with its digest: the seal matched it */
	if (r->discard) {
	} else if (sealed) {
		r->sealed++;
		if (h->bytes && batch_put(r, partition, offset, h->ts_ms, h->bytes, h->len, NULL, 0,
					  NULL, 0, NULL, 0, RK_EVENTS, 0) < 0)
			r->cb_failed = true;
	} else {
		r->rejected++;
		r->rejected_events += h->nev;
		report_rejected(r, partition, offset, h->order, h->seq, BK_CHAIN_UNSEALED,
				r->flushing
				    ? "no valid seal of a trusted writer covered it by the "
				      "end of the read (an open batch, or someone else's)"
				    : "no valid seal of a trusted writer covers the record");
		if (h->bytes && r->include_rejected &&
		    batch_put(r, partition, offset, h->ts_ms, h->bytes, h->len, NULL, 0, NULL, 0,
			      NULL, 0, RK_REJECTED, BK_CHAIN_UNSEALED) < 0)
			r->cb_failed = true;
	}
	free(h->bytes);
	free(h);
}

static void on_bad_seal(void *opaque, const rd_kafka_message_t *m, const char *why)
{
	replay *r = opaque;
	r->bad_seals++;
	report_rejected(r, m->partition, m->offset, BK_SEAL_KEY, -1, BK_CHAIN_GARBAGE, why);
}

/* With the seal rule: seal records checked (and copied to a msgpack file), events records
 * held until a seal covers them (a msgpack file copies them as read). */
static int on_record_sealed(replay *r, const rd_kafka_message_t *m, int64_t ts)
{
	if (bk_trust_is_seal(m)) {
		r->seals++;
		if (r->msgpack) {
			const void *kid, *sig;
			size_t kn, sn;
			(void)bk_kconf_header(m, "key-id", &kid, &kn);
			(void)bk_kconf_header(m, "signature", &sig, &sn);
			if (batch_put(r, m->partition, m->offset, ts, m->payload, m->len, m->key,
				      m->key_len, kid, kn, sig, sn, RK_SEAL, 0) < 0)
				return -1;
		}
		(void)bk_trust_seal(r->trust, m); /* a bad one is reported by on_bad_seal */
		return r->cb_failed ? -1 : 0;
	}
	if (r->order &&
	    (m->key_len != strlen(r->order) || memcmp(m->key, r->order, m->key_len) != 0))
		return 0;
	if (r->msgpack && batch_put(r, m->partition, m->offset, ts, m->payload, m->len, m->key,
				    m->key_len, NULL, 0, NULL, 0, RK_EVENTS, 0) < 0)
		return -1;
	bk_record rec;
	char err[256];
	msgpack_zone_clear(&r->z);
	if (!m->payload ||
	    bk_codec_record_decode(m->payload, m->len, &r->z, &rec, err, sizeof(err)) < 0) {
		char key[BK_ID_MAX] = "?";
		if (m->key && m->key_len > 0 && m->key_len < sizeof(key))
			snprintf(key, sizeof(key), "%.*s", (int)m->key_len, (const char *)m->key);
		r->rejected++;
		if (!r->msgpack)
			r->bad++; /* a msgpack file copies it: counted by the formatter */
		report_rejected(r, m->partition, m->offset, key, -1, BK_CHAIN_GARBAGE,
				m->payload ? err : "no value");
		if (!r->msgpack && r->include_rejected &&
		    batch_put(r, m->partition, m->offset, ts, m->payload, m->len, NULL, 0, NULL, 0,
			      NULL, 0, RK_REJECTED, BK_CHAIN_GARBAGE) < 0)
			return -1;
		return 0;
	}
	uint8_t d[BK_HASH_LEN];
	bk_seal_digest_record(&rec, d);
	rp_held *h = calloc(1, sizeof(*h));
	if (!h)
		return -1;
	h->ts_ms = ts;
	snprintf(h->order, sizeof(h->order), "%s", rec.order_id ? rec.order_id : "?");
	h->seq = rec.n ? rec.events[0].seq : -1;
	h->nev = rec.n;
	h->len = m->len;
	if (!r->msgpack) {
		if (!(h->bytes = malloc(m->len ? m->len : 1))) {
			free(h);
			return -1;
		}
		memcpy(h->bytes, m->payload, m->len);
	}
	if (bk_trust_add(r->trust, m->partition, m->offset, d, h) < 0)
		on_release(r, h, m->partition, m->offset, false, NULL); /* out of order: not held */
	return r->cb_failed ? -1 : 0;
}

static int on_record(void *opaque, const rd_kafka_message_t *m)
{
	replay *r = opaque;
	if (r->limit &&
	    (m->partition < 0 || m->partition >= r->nparts || m->offset >= r->limit[m->partition]))
		return 0; /* past the end the file's header states */
	int64_t ts = rd_kafka_message_timestamp(m, NULL);
	if (r->trust)
		return on_record_sealed(r, m, ts);
	if (bk_trust_is_seal(m)) { /* --trust-unsealed: a seal is no events record */
		r->seals++;
		if (r->msgpack) {
			const void *kid, *sig;
			size_t kn, sn;
			(void)bk_kconf_header(m, "key-id", &kid, &kn);
			(void)bk_kconf_header(m, "signature", &sig, &sn);
			return batch_put(r, m->partition, m->offset, ts, m->payload, m->len, m->key,
					 m->key_len, kid, kn, sig, sn, RK_SEAL, 0);
		}
		return 0;
	}
	if (r->order &&
	    (m->key_len != strlen(r->order) || memcmp(m->key, r->order, m->key_len) != 0))
		return 0;
	return batch_put(r, m->partition, m->offset, ts, m->payload, m->len, m->key, m->key_len,
			 NULL, 0, NULL, 0, RK_EVENTS, 0);
}

/* The batches, the formatter and a pool: `threads` formatting threads in all (the
 * formatter and threads - 1 pool threads). */
static int replay_init(replay *r, int threads, char *err, size_t errsz)
{
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->has_sync = true;
	r->nslices = (size_t)threads * 4; /* several per thread: records differ in size */
	for (int i = 0; i < 2; i++) {
		rp_batch *b = &r->b[i];
		b->arena_cap = RP_BATCH_BYTES;
		b->recs = calloc(RP_BATCH_RECORDS, sizeof(*b->recs));
		b->arena = malloc(RP_BATCH_BYTES);
		b->slices = calloc(r->nslices, sizeof(*b->slices));
		if (!b->recs || !b->arena || !b->slices) {
			snprintf(err, errsz, "out of memory");
			return -1;
		}
		for (size_t k = 0; k < r->nslices; k++)
			msgpack_sbuffer_init(&b->slices[k].out);
	}
	if (threads > 1 && !(r->pool = bk_pool_new(threads - 1, err, errsz)))
		return -1;
	if (!r->msgpack) {
		r->facts = bk_facts_new();
		r->b[0].facts = bk_facts_new();
		r->b[1].facts = bk_facts_new();
		msgpack_sbuffer_init(&r->fscratch);
		if (!r->facts || !r->b[0].facts || !r->b[1].facts ||
		    !msgpack_zone_init(&r->fz, 4096)) {
			snprintf(err, errsz, "out of memory");
			return -1;
		}
		r->has_fz = true;
	}
	int e = pthread_create(&r->formatter, NULL, formatter_main, r);
	if (e) {
		snprintf(err, errsz, "pthread_create: %s", strerror(e));
		return -1;
	}
	r->has_formatter = true;
	return 0;
}

/* Stops the formatter (after the batch in its hands) and frees everything. */
static void replay_free(replay *r)
{
	if (r->has_formatter) {
		pthread_mutex_lock(&r->mu);
		r->quit = true;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
		pthread_join(r->formatter, NULL);
		r->has_formatter = false;
	}
	bk_pool_free(r->pool);
	r->pool = NULL;
	bk_facts_free(r->facts);
	r->facts = NULL;
	if (r->has_fz) {
		msgpack_zone_destroy(&r->fz);
		msgpack_sbuffer_destroy(&r->fscratch);
		r->has_fz = false;
	}
	if (r->trust) { /* held records are freed, not reported */
		r->discard = true;
		bk_trust_flush(r->trust, -1);
		bk_trust_free(r->trust);
		r->trust = NULL;
		msgpack_zone_destroy(&r->z);
	}
	free(r->limit);
	r->limit = NULL;
	for (int i = 0; i < 2; i++) {
		rp_batch *b = &r->b[i];
		for (size_t k = 0; b->slices && k < r->nslices; k++)
			msgpack_sbuffer_destroy(&b->slices[k].out);
		free(b->slices);
		free(b->recs);
		free(b->arena);
		bk_facts_free(b->facts);
		*b = (rp_batch){0};
	}
	if (r->has_sync) {
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		r->has_sync = false;
	}
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: bookingctl replay [options]\n"
	    "\n"
	    "Prints events from booking.events, oldest first per partition, and stops at the\n"
	    "end of the log (the high watermark when it starts) unless --follow.\n"
	    "\n"
	    "  --order ID          only this order's events (reads only its partition)\n"
	    "  --type GLOB         only subtypes matching GLOB, e.g. 'card.*' or "
	    "'order.cancelled_*'\n"
	    "  --since TIME        only events with created_at >= TIME (RFC 3339)\n"
	    "  --until TIME        only events with created_at < TIME\n"
	    "  --partition N       only partition N\n"
	    "  --from-offset N     start at offset N (default 0)\n"
	    "  --to-offset N       stop before offset N\n"
	    "  --follow            keep printing new events until interrupted\n"
	    "  --writer-keyring F  the processors' writer keys ($BOOKING_WRITER_KEYRING): only\n"
	    "                      records a valid seal covers, and events whose hash matches\n"
	    "                      their bytes, are printed; every rejected record is reported\n"
	    "                      on stderr (`record rejected` with partition, offset, order,\n"
	    "                      seq and verdict) and counted in the summary\n"
	    "  --trust-unsealed    a log written before seals: print every record, check\n"
	    "                      nothing (a forged record is printed like a real one)\n"
	    "  --include-rejected  json: print rejected records' events too, marked\n"
	    "                      \"rejected\":\"<verdict>\" (for analysts)\n"
	    "  --format json|msgpack\n"
	    "                      json (default): one event per line with partition, offset,\n"
	    "                      event_id, order_id, seq, kind, subtype, actor_user_id,\n"
	    "                      command_id, created_at, schema, payload, prev_hash, hash\n"
	    "                      (an older schema upcast when its order.created was read,\n"
	    "                      the hashes as stored: docs/events.md);\n"
	    "                      msgpack: the file `bookingctl rebuild --from-file` reads: a\n"
	    "                      header (topic, partitions, offset ranges, watermarks,\n"
	    "                      filters, seal check), every record with its key, the seal\n"
	    "                      records, a trailer with the counts (docs/rebuild.md); with\n"
	    "                      filters a record is kept when any of its events matches,\n"
	    "                      and rebuild refuses the file\n"
	    "  -o, --output FILE   write there instead of standard output\n"
	    "  --threads N         decode and format on N threads in all (default: the\n"
	    "                      online CPUs, at most 8); the output is the same for any N\n"
	    "  -h, --help          this text\n"
	    "\n%s"
	    "\nexit status: 0 done (rejected records are reported, not failures), 1 write\n"
	    "failed, 2 bad usage (also: no writer keyring and no --trust-unsealed), 3 Kafka\n"
	    "failed\n",
	    bk_kconf_usage());
}

/* The replay file's format version (docs/rebuild.md, "The replay file"). */
#define RP_FILE_VERSION 2

static int pack_str(msgpack_packer *pk, const char *v)
{
	size_t n = strlen(v);
	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, v, n) ? -1 : 0;
}

/* The key ids of a writer keyring (each line's first field), packed as an array. */
static int pack_key_ids(msgpack_packer *pk, const char *path)
{
	char ids[64][BK_ID_MAX];
	size_t n = 0;
	FILE *f = path && *path ? fopen(path, "r") : NULL;
	char line[1024];
	while (f && n < 64 && fgets(line, sizeof(line), f)) {
		char *p = line + strspn(line, " \t");
		size_t k = strcspn(p, " \t\r\n");
		if (k == 0 || *p == '#' || k >= BK_ID_MAX)
			continue;
		memcpy(ids[n], p, k);
		ids[n++][k] = 0;
	}
	if (f)
		fclose(f);
	if (msgpack_pack_array(pk, (uint32_t)n))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (pack_str(pk, ids[i]) < 0)
			return -1;
	return 0;
}

/*
 * The msgpack file's header: what it holds. ranges: [partition, from, to, low, high] for
 * each partition read (to = -1 with --follow); r->limit gets each `to`, so nothing past
 * it is written even when the reader's own end (read a moment later) is further. No
 * clock in it: the same log range gives the same file, byte for byte.
 */
static int write_header(replay *r, const bk_logread_opts *o, const int64_t *lo, const int64_t *hi,
			const char *keyring_path)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bool filtered = filtered_by_event(r) || o->partition >= 0 || o->from > 0 || o->to >= 0;
	uint32_t nf = (r->order != NULL) + (r->type != NULL) + (r->since != INT64_MIN) +
		      (r->until != INT64_MAX) + (o->partition >= 0) + (o->from > 0) + (o->to >= 0);
	uint32_t nr = 0;
	for (int p = 0; p < r->nparts; p++)
		nr += o->partition < 0 || o->partition == p;
	int e = msgpack_pack_map(&pk, 10) || pack_str(&pk, "booking_replay") ||
		msgpack_pack_int(&pk, RP_FILE_VERSION) || pack_str(&pk, "topic") ||
		pack_str(&pk, r->topic) || pack_str(&pk, "partitions") ||
		msgpack_pack_int(&pk, r->nparts) || pack_str(&pk, "ranges") ||
		msgpack_pack_array(&pk, nr);
	for (int p = 0; p < r->nparts && !e; p++) {
		if (o->partition >= 0 && o->partition != p)
			continue;
		int64_t from = o->from > lo[p] ? o->from : lo[p];
		int64_t to = o->to >= 0 && o->to < hi[p] ? o->to : hi[p];
		if (to < from)
			to = from;
		r->limit[p] = o->follow ? INT64_MAX : to;
		e = msgpack_pack_array(&pk, 5) || msgpack_pack_int32(&pk, p) ||
		    msgpack_pack_int64(&pk, from) || msgpack_pack_int64(&pk, o->follow ? -1 : to) ||
		    msgpack_pack_int64(&pk, lo[p]) || msgpack_pack_int64(&pk, hi[p]);
	}
	e = e || pack_str(&pk, "follow") ||
	    (o->follow ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk)) ||
	    pack_str(&pk, "filtered") ||
	    (filtered ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk)) ||
	    pack_str(&pk, "filters") || msgpack_pack_map(&pk, nf);
	char t[40];
	if (!e && r->order)
		e = pack_str(&pk, "order") || pack_str(&pk, r->order);
	if (!e && r->type)
		e = pack_str(&pk, "type") || pack_str(&pk, r->type);
	if (!e && r->since != INT64_MIN) {
		bk_ts_format(r->since, t, sizeof(t));
		e = pack_str(&pk, "since") || pack_str(&pk, t);
	}
	if (!e && r->until != INT64_MAX) {
		bk_ts_format(r->until, t, sizeof(t));
		e = pack_str(&pk, "until") || pack_str(&pk, t);
	}
	if (!e && o->partition >= 0)
		e = pack_str(&pk, "partition") || msgpack_pack_int32(&pk, o->partition);
	if (!e && o->from > 0)
		e = pack_str(&pk, "from_offset") || msgpack_pack_int64(&pk, o->from);
	if (!e && o->to >= 0)
		e = pack_str(&pk, "to_offset") || msgpack_pack_int64(&pk, o->to);
	e = e || pack_str(&pk, "seals_checked") ||
	    (r->trust ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk)) ||
	    pack_str(&pk, "writer_keys") || pack_key_ids(&pk, r->trust ? keyring_path : NULL) ||
	    pack_str(&pk, "writer") || pack_str(&pk, "bookingctl " BK_VERSION);
	int rc = e || fwrite(sb.data, 1, sb.size, r->out) != sb.size ? -1 : 0;
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/* The trailer: the counts, and whether the read reached the end the header states. */
static int write_trailer(replay *r, bool complete)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	int e = msgpack_pack_map(&pk, 6) || pack_str(&pk, "booking_replay_end") ||
		msgpack_pack_int(&pk, RP_FILE_VERSION) || pack_str(&pk, "records") ||
		msgpack_pack_int64(&pk, r->records) || pack_str(&pk, "events") ||
		msgpack_pack_int64(&pk, r->events) || pack_str(&pk, "seals") ||
		msgpack_pack_int64(&pk, r->seals) || pack_str(&pk, "rejected") ||
		msgpack_pack_int64(&pk, r->rejected) || pack_str(&pk, "complete") ||
		(complete ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
	int rc = e || fwrite(sb.data, 1, sb.size, r->out) != sb.size ? -1 : 0;
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

int cmd_replay(int argc, char **argv)
{
	replay r = {.since = INT64_MIN, .until = INT64_MAX, .out = stdout};
	bk_logread_opts o = {.partition = -1, .from = 0, .to = -1, .stop = &stop_flag};
	const char *output = NULL, *wkr_path = NULL;
	bool trust_unsealed = false;
	bk_keyring *writers = NULL;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int threads = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu;
	char err[512];
	int rc = BK_EXIT_USAGE;
	bk_kconf *kc = bk_kconf_new();
	rd_kafka_t *rk = NULL;
	if (!kc)
		return BK_EXIT_DEPENDENCY;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int t = bk_kconf_take_arg(kc, argc, argv, &i, err, sizeof(err));
		if (t < 0) {
			fprintf(stderr, "bookingctl replay: %s\n", err);
			goto out;
		}
		if (t > 0)
			continue;
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                                                                                    \
	do {                                                                                       \
		if (!v) {                                                                          \
			fprintf(stderr, "bookingctl replay: %s needs a value\n", a);               \
			goto out;                                                                  \
		}                                                                                  \
		i++;                                                                               \
	} while (0)
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			rc = BK_EXIT_OK;
			goto out;
		} else if (!strcmp(a, "--order")) {
			NEEDV();
			r.order = v;
		} else if (!strcmp(a, "--type")) {
			NEEDV();
			r.type = v;
		} else if (!strcmp(a, "--since") || !strcmp(a, "--until")) {
			NEEDV();
			int64_t ts;
			if (bk_ts_parse(v, strlen(v), &ts) < 0) {
				fprintf(stderr, "bookingctl replay: %s: not an RFC 3339 time: %s\n",
					a, v);
				goto out;
			}
			*(a[2] == 's' ? &r.since : &r.until) = ts;
		} else if (!strcmp(a, "--partition") || !strcmp(a, "--from-offset") ||
			   !strcmp(a, "--to-offset")) {
			NEEDV();
			char *end;
			long long n = strtoll(v, &end, 10);
			if (*v == 0 || *end || n < 0) {
				fprintf(stderr, "bookingctl replay: %s: not a number >= 0: %s\n", a,
					v);
				goto out;
			}
			if (a[2] == 'p')
				o.partition = (int32_t)n;
			else if (a[2] == 'f')
				o.from = n;
			else
				o.to = n;
		} else if (!strcmp(a, "--follow")) {
			o.follow = true;
		} else if (!strcmp(a, "--writer-keyring")) {
			NEEDV();
			wkr_path = v;
		} else if (!strcmp(a, "--trust-unsealed")) {
			trust_unsealed = true;
		} else if (!strcmp(a, "--include-rejected")) {
			r.include_rejected = true;
		} else if (!strcmp(a, "--format")) {
			NEEDV();
			if (strcmp(v, "json") && strcmp(v, "msgpack")) {
				fprintf(stderr,
					"bookingctl replay: --format: json or msgpack, not %s\n",
					v);
				goto out;
			}
			r.msgpack = v[0] == 'm';
		} else if (!strcmp(a, "--threads")) {
			NEEDV();
			char *end;
			long n = strtol(v, &end, 10);
			if (*v == 0 || *end || n < 1 || n > 64) {
				fprintf(stderr, "bookingctl replay: --threads: 1 to 64, not %s\n",
					v);
				goto out;
			}
			threads = (int)n;
		} else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			NEEDV();
			output = v;
		} else {
			fprintf(stderr, "bookingctl replay: unknown option %s (see --help)\n", a);
			goto out;
		}
#undef NEEDV
	}
	if (!wkr_path)
		wkr_path = getenv(BK_ENV_WRITER_KEYRING);
	if (trust_unsealed) {
		bk_log(BK_LOG_WARN,
		       "*** --trust-unsealed: records are NOT checked against the writers' seals; "
		       "a forged record is printed like a real one (logs written before seals "
		       "only) ***");
	} else if (bk_trust_load_keyring(wkr_path, &writers, err, sizeof(err)) < 0) {
		fprintf(stderr,
			"bookingctl replay: %s (or --trust-unsealed, for a log written before "
			"seals)\n",
			err);
		goto out;
	}
	o.topic = bk_kconf_topic(kc, BK_TOPIC_EVENTS);
	if (bk_logread_consumer(kc, &rk, err, sizeof(err)) < 0) {
		fprintf(stderr, "bookingctl replay: %s\n", err);
		goto out;
	}
	if ((r.order && o.partition < 0) || writers || r.msgpack) {
		if (bk_kconf_partition_count(rk, o.topic, 10000, &r.nparts, err, sizeof(err)) < 0) {
			fprintf(stderr, "bookingctl replay: %s\n", err);
			rc = BK_EXIT_DEPENDENCY;
			goto out;
		}
		if (r.order && o.partition < 0)
			o.partition = bk_kafka_partition_of(r.order, strlen(r.order), r.nparts);
	}
	int64_t *lo = NULL, *hi = NULL;
	if (r.msgpack) { /* the header states each partition's range and watermarks */
		lo = calloc((size_t)r.nparts + 1, sizeof(*lo));
		hi = calloc((size_t)r.nparts + 1, sizeof(*hi));
		r.limit = calloc((size_t)r.nparts + 1, sizeof(*r.limit));
		if (!lo || !hi || !r.limit) {
			free(lo);
			free(hi);
			fprintf(stderr, "bookingctl replay: out of memory\n");
			rc = BK_EXIT_DEPENDENCY;
			goto out;
		}
		for (int p = 0; p < r.nparts; p++) {
			r.limit[p] = -1; /* a partition not read */
			if ((o.partition >= 0 && p != o.partition) ||
			    bk_kconf_watermarks(rk, o.topic, p, 10000, &lo[p], &hi[p], err,
						sizeof(err)) == 0)
				continue;
			free(lo);
			free(hi);
			fprintf(stderr, "bookingctl replay: %s\n", err);
			rc = BK_EXIT_DEPENDENCY;
			goto out;
		}
	}
	if (writers) {
		if (msgpack_zone_init(&r.z, 1 << 14) &&
		    !(r.trust = bk_trust_new(writers, false, r.nparts, on_release, NULL,
					     on_bad_seal, &r)))
			msgpack_zone_destroy(&r.z);
		if (!r.trust) {
			free(lo);
			free(hi);
			fprintf(stderr, "bookingctl replay: out of memory\n");
			rc = BK_EXIT_DEPENDENCY;
			goto out;
		}
	}
	r.topic = o.topic;
	if (output && !(r.out = fopen(output, "w"))) {
		free(lo);
		free(hi);
		fprintf(stderr, "bookingctl replay: cannot write %s\n", output);
		goto out;
	}
	int hw = r.msgpack ? write_header(&r, &o, lo, hi, wkr_path) : 0;
	free(lo);
	free(hi);
	if (hw < 0) {
		fprintf(stderr, "bookingctl replay: write failed\n");
		rc = BK_EXIT_PROBLEM;
		goto out;
	}
	if (replay_init(&r, threads, err, sizeof(err)) < 0) {
		fprintf(stderr, "bookingctl replay: %s\n", err);
		rc = BK_EXIT_DEPENDENCY;
		goto out;
	}
	o.idle = on_idle;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	int64_t n;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int lr = bk_logread(rk, &o, on_record, &r, &n, err, sizeof(err));
	if (r.trust && lr == 0) { /* what no seal covered by the end is rejected */
		r.flushing = true;
		bk_trust_flush(r.trust, -1);
	}
	/* what was read before an error is written too */
	int fl = r.has_formatter ? submit(&r, true) : 0;
	if (r.cb_failed)
		fl = -1;
	if (fl == 0 && r.msgpack && !r.write_failed &&
	    write_trailer(&r, lr == 0 && !stop_flag && !o.follow) < 0)
		fl = -1;
	replay_free(&r);
	/* a failed write stops the read too: say what failed first */
	if (fl < 0 || r.write_failed || fflush(r.out) != 0 || (output && fclose(r.out) != 0)) {
		fprintf(stderr, "bookingctl replay: write failed\n");
		rc = BK_EXIT_PROBLEM;
		goto out;
	}
	if (lr < 0) {
		fprintf(stderr, "bookingctl replay: %s\n", err);
		rc = BK_EXIT_DEPENDENCY;
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	bk_logf(BK_LOG_INFO, "replay done",
		"topic=%s records=%lld events=%lld undecodable=%lld seals=%s sealed=%lld "
		"rejected=%lld rejected_events=%lld bad_hash=%lld bad_seals=%lld seconds=%.3f "
		"events_per_s=%.0f",
		o.topic, (long long)n, (long long)r.events, (long long)r.bad,
		writers ? "checked" : "NOT_CHECKED", (long long)r.sealed, (long long)r.rejected,
		(long long)r.rejected_events, (long long)r.bad_hash, (long long)r.bad_seals, secs,
		secs > 0 ? (double)r.events / secs : 0.0);
	rc = BK_EXIT_OK;
out:
	replay_free(&r);
	if (rk)
		rd_kafka_destroy(rk);
	bk_keyring_free(writers);
	bk_kconf_destroy(kc);
	return rc;
}
