/*
 * cmd_replay.c - `bookingctl replay`: events out of booking.events as JSON lines (one
 * event per line, with partition, offset, order id, seq, subtype, actor, payload, hash)
 * or as msgpack records for offline rebuilds, filtered by order, type glob, time range,
 * partition and offsets. Stops at the log's end unless --follow.
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
#include "bk_time.h"
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

/* A record of a batch: where it came from, and its bytes in the batch's arena. */
typedef struct rp_rec {
	int32_t partition;
	int64_t offset;
	size_t at, len;
	int64_t ts_ms; /* the record's Kafka timestamp (ms since the epoch), -1 when none */
} rp_rec;

/* A slice of a batch, formatted by one thread into its own buffer. */
typedef struct rp_slice {
	size_t lo, hi;	     /* records [lo, hi) of the batch */
	msgpack_sbuffer out; /* the slice's output; reused from batch to batch */
	int64_t events, records, bad;
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
	bk_pool *pool;
	size_t nslices;
	rp_batch b[2];
	int fill; /* the batch the main thread fills */
	pthread_t formatter;
	bool has_formatter;
	bool has_sync; /* mu and cv are initialized */
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

/* Decode one record and append what the filters keep to s->out; -1 when out of memory. */
static int format_record(const replay *r, const rp_batch *b, const rp_rec *x, msgpack_zone *z,
			 rp_slice *s)
{
	const char *bytes = b->arena + x->at;
	bk_record rec;
	char err[256];
	msgpack_zone_clear(z);
	if (bk_codec_record_decode(bytes, x->len, z, &rec, err, sizeof(err)) < 0) {
		bk_logf(BK_LOG_WARN, "undecodable record skipped",
			"topic=%s partition=%d offset=%lld error=\"%s\"", r->topic, x->partition,
			(long long)x->offset, err);
		s->bad++;
		return 0;
	}
	if (r->msgpack) {
		bool any = false;
		for (uint32_t i = 0; i < rec.n && !any; i++)
			any = event_matches(r, &rec.events[i]);
		if (!any)
			return 0;
		/* [partition, offset, record bytes]: what `rebuild --from-file` reads */
		msgpack_packer pk;
		msgpack_packer_init(&pk, &s->out, msgpack_sbuffer_write);
		if (msgpack_pack_array(&pk, 3) || msgpack_pack_int32(&pk, x->partition) ||
		    msgpack_pack_int64(&pk, x->offset) || msgpack_pack_bin(&pk, x->len) ||
		    msgpack_pack_bin_body(&pk, bytes, x->len))
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
		/* the event without its partition and offset, its "{" replaced by the head */
		size_t start = s->out.size;
		if (msgpack_sbuffer_write(&s->out, head, (size_t)hn - 1) < 0 ||
		    bk_event_write_json(&rec.events[i], -1, 0, &s->out) < 0)
			return -1;
		s->out.data[start + (size_t)hn - 1] = ',';
		if (msgpack_sbuffer_write(&s->out, "\n", 1) < 0)
			return -1;
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
	(void)worker;
	s.out.size = 0;
	s.events = s.records = s.bad = 0;
	s.failed = !msgpack_zone_init(&z, 4096);
	if (!s.failed) {
		for (size_t k = s.lo; k < s.hi && !s.failed; k++)
			s.failed = format_record(r, b, &b->recs[k], &z, &s) < 0;
		msgpack_zone_destroy(&z);
	}
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

static int on_record(void *opaque, const rd_kafka_message_t *m)
{
	replay *r = opaque;
	if (bk_trust_is_seal(m)) /* a seal record: no events of its own */
		return 0;
	if (r->order &&
	    (m->key_len != strlen(r->order) || memcmp(m->key, r->order, m->key_len) != 0))
		return 0;
	rp_batch *b = &r->b[r->fill];
	if (b->n == RP_BATCH_RECORDS || b->used + m->len > b->arena_cap) {
		if (submit(r, false) < 0)
			return -1;
		b = &r->b[r->fill];
	}
	if (m->len > b->arena_cap) { /* one record larger than the arena: grow it */
		char *a = realloc(b->arena, m->len);
		if (!a)
			return -1;
		b->arena = a;
		b->arena_cap = m->len;
	}
	rp_rec *x = &b->recs[b->n++];
	*x =
	    (rp_rec){m->partition, m->offset, b->used, m->len, rd_kafka_message_timestamp(m, NULL)};
	if (m->len)
		memcpy(b->arena + b->used, m->payload, m->len);
	b->used += m->len;
	return 0;
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
	for (int i = 0; i < 2; i++) {
		rp_batch *b = &r->b[i];
		for (size_t k = 0; b->slices && k < r->nslices; k++)
			msgpack_sbuffer_destroy(&b->slices[k].out);
		free(b->slices);
		free(b->recs);
		free(b->arena);
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
	    "  --format json|msgpack\n"
	    "                      json (default): one event per line with partition, offset,\n"
	    "                      event_id, order_id, seq, kind, subtype, actor_user_id,\n"
	    "                      command_id, created_at, schema, payload, prev_hash, hash;\n"
	    "                      msgpack: whole records [partition, offset, bytes] for\n"
	    "                      `bookingctl rebuild --from-file` (a record is kept when any\n"
	    "                      of its events matches the filters)\n"
	    "  -o, --output FILE   write there instead of standard output\n"
	    "  --threads N         decode and format on N threads in all (default: the\n"
	    "                      online CPUs, at most 8); the output is the same for any N\n"
	    "  -h, --help          this text\n"
	    "\n%s"
	    "\nexit status: 0 done, 2 bad usage, 3 Kafka failed\n",
	    bk_kconf_usage());
}

int cmd_replay(int argc, char **argv)
{
	replay r = {.since = INT64_MIN, .until = INT64_MAX, .out = stdout};
	bk_logread_opts o = {.partition = -1, .from = 0, .to = -1, .stop = &stop_flag};
	const char *output = NULL;
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
	o.topic = bk_kconf_topic(kc, BK_TOPIC_EVENTS);
	if (bk_logread_consumer(kc, &rk, err, sizeof(err)) < 0) {
		fprintf(stderr, "bookingctl replay: %s\n", err);
		goto out;
	}
	if (r.order && o.partition < 0) {
		int n;
		if (bk_kconf_partition_count(rk, o.topic, 10000, &n, err, sizeof(err)) < 0) {
			fprintf(stderr, "bookingctl replay: %s\n", err);
			rc = BK_EXIT_DEPENDENCY;
			goto out;
		}
		o.partition = bk_kafka_partition_of(r.order, strlen(r.order), n);
	}
	if (output && !(r.out = fopen(output, "w"))) {
		fprintf(stderr, "bookingctl replay: cannot write %s\n", output);
		goto out;
	}
	if (replay_init(&r, threads, err, sizeof(err)) < 0) {
		fprintf(stderr, "bookingctl replay: %s\n", err);
		rc = BK_EXIT_DEPENDENCY;
		goto out;
	}
	r.topic = o.topic;
	o.idle = on_idle;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	int64_t n;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int lr = bk_logread(rk, &o, on_record, &r, &n, err, sizeof(err));
	/* what was read before an error is written too */
	int fl = r.has_formatter ? submit(&r, true) : 0;
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
		"topic=%s records=%lld events=%lld undecodable=%lld seconds=%.3f events_per_s=%.0f",
		o.topic, (long long)n, (long long)r.events, (long long)r.bad, secs,
		secs > 0 ? (double)r.events / secs : 0.0);
	rc = BK_EXIT_OK;
out:
	replay_free(&r);
	if (rk)
		rd_kafka_destroy(rk);
	bk_kconf_destroy(kc);
	return rc;
}
