/*
 * projector.c - booking-projector: consumes booking.events and booking.rules and keeps
 * the PostgreSQL read model (SPEC §5). Thin: flags, the Kafka consumer (partitions are
 * resumed from booking_proj.checkpoint, never from Kafka's committed offsets), signals
 * and the batching clock; proj_batch does the projecting. SIGTERM finishes or rolls back
 * the current batch and exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "bk_codec.h"
#include "conffile.h"
#include "kconf.h"
#include "log.h"
#include "metrics.h"
#include "pgutil.h"
#include "proj_batch.h"
#include "startup.h"
#include "trust.h"

#ifndef BK_VERSION
#define BK_VERSION "unknown"
#endif

#define EXIT_OK		0
#define EXIT_FATAL	1
#define EXIT_USAGE	2
#define EXIT_DEPENDENCY 3 /* Kafka unreachable at start, after --timeout-ms */

#define CAUGHT_UP_MS 10 /* nothing to read for this long: the batch is written */

static volatile sig_atomic_t stop, stop_signal, hup_flag;

static void on_signal(int sig)
{
	stop_signal = sig;
	stop = 1;
}

static void on_hup(int sig)
{
	(void)sig;
	hup_flag = 1;
}

static const char usage_text[] =
    "usage: booking-projector [options]\n"
    "\n"
    "Project booking.events (and booking.rules) into the PostgreSQL read model:\n"
    "booking.*, ord.* and booking.autoaccept_rule. Batches are written in one transaction\n"
    "together with the partition checkpoints (booking_proj.checkpoint); events that\n"
    "cannot be applied quarantine their order (bookingctl quarantine). docs/projector.md.\n"
    "\n"
    "options:\n"
    "  -d, --dbname CONNINFO  libpq conninfo or postgresql:// URI (default: the PG*\n"
    "                         environment variables, as psql)\n"
    "      --batch-events N   close a batch after N events (default 20000)\n"
    "      --batch-ms T       close a batch T ms after its first record, or as soon as\n"
    "                         nothing more has come for 10 ms (default 200)\n"
    "      --group-id ID      consumer group (default booking-projector)\n"
    "      --write-path P     copy (COPY into staging tables, default) or pipeline\n"
    "                         (pipelined prepared statements)\n"
    "      --stats-s S        log counters every S seconds (default 10, 0: never)\n"
    "      --writer-keyring F the processors' writer keys ($BOOKING_WRITER_KEYRING): only\n"
    "                         records their seals cover are projected; the rest are\n"
    "                         rejected (booking_proj.rejected)\n"
    "      --trust-unsealed   DEVELOPMENT ONLY: project records without seals\n"
    "      --timeout-ms MS    wait this long for Kafka at start (retrying, one log line\n"
    "                         per 5 s), then exit 3 (default 30000, as booking-commands)\n"
    "      --metrics-addr HOST:PORT  serve GET /metrics (Prometheus), /healthz and\n"
    "                         /readyz there (default off; e.g. 127.0.0.1:9465)\n"
    "  -h, --help             this text\n"
    "      --version          the version\n"
    "\n"
    "SIGHUP is logged and changes nothing (logs go to stderr).\n"
    "\n"
    "exit: 0 stopped by a signal, 1 fatal error, 2 bad configuration (also: a topic\n"
    "missing, a partition with lost history), 3 Kafka unreachable at start\n"
    "\n";

typedef struct app {
	rd_kafka_t *rk;
	proj *p;
	bk_kconf *kc;
	const char *events_topic, *rules_topic;
	bool drop_batch; /* a rebalance happened: the buffered records are not ours any more */
	bool fatal;
	bk_trust *trust;	   /* the events partitions' seal buffers */
	bk_keyring *writers;	   /* owned */
	rd_kafka_message_t **msgs; /* the batch being gathered */
	uint8_t *ver;		   /* PV_* per message (proj_batch.h) */
	size_t n, cap;
	uint64_t *hid; /* each message's seal-buffer handle: increasing along msgs */
	uint64_t next_hid;
	/* the batch handed to proj_batch (select_ready): messages, their PV_*, and for each
	 * of a->msgs whether it was handed */
	rd_kafka_message_t **sel;
	uint8_t *selver, *taken;
	/* per message of a PV_CHECK record: the digest its seal lists (a->dig), and the
	 * batch's copy (a->seldig) */
	uint8_t (*dig)[BK_HASH_LEN], (*seldig)[BK_HASH_LEN];
	/* a record that may be ready was taken, or a seal: select_ready may find more */
	bool news;
	int32_t *wait_part; /* events partitions with a record waiting (select_ready) */
	int64_t gen;	    /* the read model generation the partitions were sought for */
} app;

/* Fill a->sel with the messages a batch may take now: all but, per events partition, the
 * ones from its first record still waiting for a seal on. Returns how many. */
static size_t select_ready(app *a)
{
	size_t k = 0, nw = 0;
	for (size_t i = 0; i < a->n; i++) {
		rd_kafka_message_t *m = a->msgs[i];
		bool waits = a->ver[i] == PV_PENDING;
		for (size_t j = 0; !waits && j < nw; j++)
			waits = a->wait_part[j] == m->partition &&
				!strcmp(rd_kafka_topic_name(m->rkt), a->events_topic);
		if (waits) {
			if (a->ver[i] == PV_PENDING)
				a->wait_part[nw++] = m->partition;
			a->taken[i] = 0;
			continue;
		}
		a->taken[i] = 1;
		a->sel[k] = m;
		a->selver[k] = a->ver[i];
		if (a->ver[i] == PV_CHECK)
			memcpy(a->seldig[k], a->dig[i], BK_HASH_LEN);
		k++;
	}
	return k;
}

/* After a batch: destroy what it took, keep the rest in order. */
static void keep_rest(app *a)
{
	size_t m = 0;
	for (size_t i = 0; i < a->n; i++) {
		if (a->taken[i]) {
			rd_kafka_message_destroy(a->msgs[i]);
			continue;
		}
		a->msgs[m] = a->msgs[i];
		a->ver[m] = a->ver[i];
		memcpy(a->dig[m], a->dig[i], BK_HASH_LEN);
		a->hid[m] = a->hid[i];
		m++;
	}
	a->n = m;
}

/* The seal rule released a record (an index into a->msgs): sealed or not. */
static void on_release(void *opaque, void *rec, int32_t partition, int64_t offset, bool sealed,
		       const uint8_t *digest)
{
	app *a = opaque;
	(void)partition;
	(void)offset;
	uint64_t h = (uintptr_t)rec;
	size_t lo = 0, hi = a->n;
	while (lo < hi) { /* hid increases along msgs */
		size_t mid = lo + (hi - lo) / 2;
		if (a->hid[mid] < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < a->n && a->hid[lo] == h)
		a->news = true;
	if (lo < a->n && a->hid[lo] == h) {
		a->ver[lo] = !sealed ? PV_UNSEALED : digest ? PV_CHECK : PV_SEALED;
		if (digest) /* the batch's decode compares it with the record's own */
			memcpy(a->dig[lo], digest, BK_HASH_LEN);
	}
}

static void on_bad_seal(void *opaque, const rd_kafka_message_t *m, const char *why)
{
	(void)opaque;
	bk_logf(BK_LOG_WARN, "seal record rejected", "topic=%s partition=%d offset=%lld err=\"%s\"",
		rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset, why);
}

/* Room for twice as many gathered messages (all the parallel arrays). 0, or -1 on OOM. */
static int grow(app *a)
{
	size_t cap = a->cap ? a->cap * 2 : 4096;
	rd_kafka_message_t **v = realloc(a->msgs, cap * sizeof(*v));
	if (!v)
		return -1;
	a->msgs = v;
	uint8_t *w = realloc(a->ver, cap);
	if (!w)
		return -1;
	a->ver = w;
	uint64_t *h = realloc(a->hid, cap * sizeof(*h));
	if (!h)
		return -1;
	a->hid = h;
	rd_kafka_message_t **sel = realloc(a->sel, cap * sizeof(*sel));
	if (!sel)
		return -1;
	a->sel = sel;
	void *d1 = realloc(a->dig, cap * BK_HASH_LEN);
	if (!d1)
		return -1;
	a->dig = d1;
	void *d2 = realloc(a->seldig, cap * BK_HASH_LEN);
	if (!d2)
		return -1;
	a->seldig = d2;
	uint8_t *sv = realloc(a->selver, cap), *tk = sv ? realloc(a->taken, cap) : NULL;
	if (sv)
		a->selver = sv;
	if (!tk)
		return -1;
	a->taken = tk;
	int32_t *wp = realloc(a->wait_part, cap * sizeof(*wp));
	if (!wp)
		return -1;
	a->wait_part = wp;
	a->cap = cap;
	return 0;
}

/* Add a consumed message to the batch and judge it: a seal at once, an events record
 * when a seal covers it, a rules record by its signature. 0, or -1 on OOM. */
static int take(app *a, rd_kafka_message_t *m)
{
	if (a->n == a->cap && grow(a) < 0)
		return -1;
	size_t i = a->n++;
	a->msgs[i] = m;
	a->ver[i] = PV_UNSEALED;
	a->hid[i] = a->next_hid++;
	char err[256];
	if (strcmp(rd_kafka_topic_name(m->rkt), a->events_topic) != 0) {
		if (bk_trust_unsealed_ok(a->trust) ||
		    bk_trust_check_rules(a->writers, m, err, sizeof(err)) == 0)
			a->ver[i] = PV_SEALED;
		else
			bk_logf(BK_LOG_WARN, "rules record not trusted: not projected",
				"topic=%s partition=%d offset=%lld err=\"%s\"",
				rd_kafka_topic_name(m->rkt), (int)m->partition,
				(long long)m->offset, err);
		return 0;
	}
	if (bk_trust_is_seal(m)) {
		a->ver[i] = bk_trust_seal(a->trust, m) >= 0 ? PV_SEAL : PV_BAD_SEAL;
		return 0;
	}
	if (bk_trust_unsealed_ok(a->trust)) { /* every record is trusted: no digest to match */
		a->ver[i] = PV_SEALED;
		return 0;
	}
	/* held without its digest: the batch decodes it (on two threads) and compares the
	 * digest with the one its seal lists (PV_CHECK), so nothing is decoded twice */
	a->ver[i] = PV_PENDING;
	if (bk_trust_add(a->trust, m->partition, m->offset, NULL, (void *)(uintptr_t)a->hid[i]) < 0)
		a->ver[i] = PV_UNSEALED; /* out of order or OOM: not trusted */
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Seek offsets of the partitions of one topic in `parts`, from the checkpoints. */
static int resume_offsets(app *a, rd_kafka_topic_partition_list_t *parts, const char *topic)
{
	int32_t ids[4096];
	int idx[4096];
	size_t n = 0;
	for (int i = 0; i < parts->cnt && n < 4096; i++)
		if (strcmp(parts->elems[i].topic, topic) == 0) {
			ids[n] = parts->elems[i].partition;
			idx[n++] = i;
		}
	if (n == 0)
		return 0;
	int64_t next[4096];
	if (proj_assign(a->p, topic, ids, n, next) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		rd_kafka_topic_partition_t *tp = &parts->elems[idx[i]];
		int64_t lo = 0, hi = 0;
		char err[256];
		/* lost history: the partition's oldest record is past what was projected */
		if (bk_kconf_watermarks(a->rk, topic, tp->partition, 5000, &lo, &hi, err,
					sizeof(err)) == 0 &&
		    lo > 0 && (next[i] < 0 ? 0 : next[i]) < lo) {
			bk_logf(
			    BK_LOG_ERROR,
			    "partition lost history: records before the low watermark were never "
			    "projected; rebuild from a complete log",
			    "topic=%s partition=%d checkpoint=%lld low_watermark=%lld", topic,
			    tp->partition, (long long)next[i], (long long)lo);
			a->fatal = true;
			stop = 1;
		}
		tp->offset = next[i] >= 0 ? next[i] : RD_KAFKA_OFFSET_BEGINNING;
		bk_logf(BK_LOG_DEBUG, "partition assigned", "topic=%s partition=%d offset=%lld",
			topic, tp->partition, (long long)next[i]);
	}
	char list[1024];
	bk_logf(BK_LOG_INFO, "partition assigned", "topic=%s count=%zu partitions=%s", topic, n,
		bk_part_list(ids, n, list, sizeof(list)));
	return 0;
}

/* Kafka unreachable while running: one line when the pipeline stalls, one when it
 * resumes (lib/startup.h). Fed by the consumer's statistics, on the main thread. */
static bk_kwatch kwatch = {.program = "booking-projector"};
static int n_assigned; /* partitions assigned (both topics), kept by rebalance_cb */

static int stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
	/* no librdkafka calls here: this also runs inside rd_kafka_consumer_close */
	(void)rk;
	(void)opaque;
	bk_kwatch_stats(&kwatch, json, json_len, n_assigned);
	return 0; /* librdkafka frees json */
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	app *a = opaque;
	bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	a->drop_batch = true; /* re-read from the checkpoints in every case */
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		if (resume_offsets(a, parts, a->events_topic) < 0 ||
		    resume_offsets(a, parts, a->rules_topic) < 0) {
			stop = 1; /* stopped while PostgreSQL was unavailable */
			return;
		}
		n_assigned = coop ? n_assigned + parts->cnt : parts->cnt;
		if (coop) {
			rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
			if (e) {
				bk_logf(BK_LOG_ERROR, "assign failed", "err=\"%s\"",
					rd_kafka_error_string(e));
				rd_kafka_error_destroy(e);
			}
		} else {
			rd_kafka_assign(rk, parts);
		}
		return;
	}
	int32_t ids[4096];
	size_t nids = 0;
	for (int i = 0; i < parts->cnt; i++) {
		bk_logf(BK_LOG_DEBUG, "partition revoked", "topic=%s partition=%d",
			parts->elems[i].topic, parts->elems[i].partition);
		if (nids < 4096 && strcmp(parts->elems[i].topic, a->events_topic) == 0)
			ids[nids++] = parts->elems[i].partition;
	}
	char list[1024];
	bk_logf(BK_LOG_INFO, "partition revoked", "count=%d events_partitions=%s", parts->cnt,
		bk_part_list(ids, nids, list, sizeof(list)));
	proj_revoke(a->p);
	n_assigned = coop && n_assigned > parts->cnt ? n_assigned - parts->cnt : 0;
	if (coop) {
		rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
		if (e)
			rd_kafka_error_destroy(e);
	} else {
		rd_kafka_assign(rk, NULL);
	}
}

/* A msgpack string or small scalar at *p (what a record's keys and first values are):
 * skipped; false when it is something else. */
static bool skip_scalar(const uint8_t **p, const uint8_t *end, const uint8_t **ret_str,
			size_t *ret_len)
{
	if (*p >= end)
		return false;
	uint8_t b = **p;
	size_t len = 0, hdr = 1;
	if ((b & 0xe0) == 0xa0) {
		len = b & 0x1f;
	} else if (b == 0xd9 && end - *p >= 2) {
		len = (*p)[1], hdr = 2;
	} else if (b == 0xda && end - *p >= 3) {
		len = (size_t)(*p)[1] << 8 | (*p)[2], hdr = 3;
	} else if (b <= 0x7f || b == 0xc0) {
		len = 0;
	} else if (b >= 0xcc && b <= 0xcf) {
		hdr = 1 + ((size_t)1 << (b - 0xcc));
	} else {
		return false;
	}
	if ((size_t)(end - *p) < hdr + len)
		return false;
	*ret_str = *p + hdr;
	*ret_len = len;
	*p += hdr + len;
	return true;
}

/*
 * The number of events in an events record ({v, order_id, command_id, events: [...]}),
 * read from the msgpack headers without decoding; 1 when the record is not of that shape
 * (it is decoded, and judged, with the batch anyway). Batches are sized in events.
 */
static size_t record_events(const rd_kafka_message_t *m)
{
	const uint8_t *p = m->payload, *end = p + m->len;
	if (!p || m->len < 1 || (*p & 0xf0) != 0x80)
		return 1;
	unsigned keys = *p++ & 0x0f;
	for (unsigned k = 0; k < keys; k++) {
		const uint8_t *key, *val;
		size_t klen, vlen;
		if (!skip_scalar(&p, end, &key, &klen))
			return 1;
		if (klen == 6 && memcmp(key, "events", 6) == 0) {
			if (p >= end)
				return 1;
			if ((*p & 0xf0) == 0x90)
				return (*p & 0x0f) ? (size_t)(*p & 0x0f) : 1;
			if (*p == 0xdc && end - p >= 3)
				return ((size_t)p[1] << 8 | p[2]) ? ((size_t)p[1] << 8 | p[2]) : 1;
			return 1;
		}
		if (!skip_scalar(&p, end, &val, &vlen))
			return 1;
	}
	return 1;
}

static void drop(rd_kafka_message_t **msgs, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		rd_kafka_message_destroy(msgs[i]);
	*n = 0;
}

/* Seek every partition of topic assigned to this instance (in l) to its checkpoint, read
 * again from PostgreSQL (the fence only knows the batch's partitions). -1 when stopped. */
static int reseek_topic(app *a, const rd_kafka_topic_partition_list_t *l, const char *topic,
			rd_kafka_topic_partition_list_t *seek)
{
	int32_t ids[4096];
	int64_t next[4096];
	size_t n = 0;
	for (int i = 0; i < l->cnt && n < 4096; i++)
		if (strcmp(l->elems[i].topic, topic) == 0)
			ids[n++] = l->elems[i].partition;
	if (n == 0)
		return 0;
	if (proj_assign(a->p, topic, ids, n, next) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(seek, topic, ids[i])->offset =
		    next[i] >= 0 ? next[i] : RD_KAFKA_OFFSET_BEGINNING;
	return 0;
}

/*
 * After a fence or a new read model generation (a rebuild swap): every assigned partition
 * resumes at its checkpoint in the model now live, idle or not. Seeking only the
 * partitions of the batch left an idle partition at the old model's position until a
 * new record arrived there (issue 10, item 8).
 */
static void reseek_all(app *a, const char *why)
{
	rd_kafka_topic_partition_list_t *l = NULL, *seek = rd_kafka_topic_partition_list_new(16);
	if (rd_kafka_assignment(a->rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR || !l) {
		bk_log(BK_LOG_ERROR, "re-read from the checkpoints: no assignment");
		rd_kafka_topic_partition_list_destroy(seek);
		return;
	}
	if (reseek_topic(a, l, a->events_topic, seek) == 0 &&
	    reseek_topic(a, l, a->rules_topic, seek) == 0 && seek->cnt > 0) {
		/* a seek that times out (a loaded broker) is asked again: the records after
		 * the checkpoints must be read again, never skipped; after 6 tries (30 s)
		 * the projector stops with an error, and its restart reads from them */
		bool sought = false;
		for (int tries = 1; tries <= 6 && !sought && !stop; tries++) {
			rd_kafka_error_t *e = rd_kafka_seek_partitions(a->rk, seek, 5000);
			sought = e == NULL;
			if (e) {
				bk_logf(tries < 6 ? BK_LOG_WARN : BK_LOG_ERROR, "seek failed",
					"err=\"%s\" try=%d%s", rd_kafka_error_string(e), tries,
					tries < 6 ? " retrying=1" : " stopping=1");
				rd_kafka_error_destroy(e);
			}
		}
		if (!sought) {
			a->fatal = true;
			stop = 1;
		} else {
			bk_logf(BK_LOG_INFO, "re-reading every partition from the checkpoints",
				"cause=%s partitions=%d generation=%lld", why, seek->cnt,
				(long long)proj_generation(a->p));
		}
	}
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_topic_partition_list_destroy(seek);
}

/* After a committed batch: its partitions' next offsets committed to Kafka too, async,
 * for Kafka's lag tooling (kafka-consumer-groups). Information only: the checkpoints in
 * PostgreSQL stay the truth, and the projector never reads these offsets. */
static void commit_info(app *a, rd_kafka_message_t *const *msgs, size_t n)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
	for (size_t i = 0; i < n; i++) {
		const char *t = rd_kafka_topic_name(msgs[i]->rkt);
		if (rd_kafka_topic_partition_list_find(l, t, msgs[i]->partition))
			continue;
		int64_t next = proj_next(a->p, t, msgs[i]->partition);
		if (next >= 0)
			rd_kafka_topic_partition_list_add(l, t, msgs[i]->partition)->offset = next;
	}
	if (l->cnt > 0)
		rd_kafka_commit(a->rk, l, 1); /* a failure only delays the tooling's view */
	rd_kafka_topic_partition_list_destroy(l);
}

static void log_stats(const proj *p)
{
	const proj_stats *s = proj_get_stats(p);
	bk_logf(BK_LOG_INFO, "stats",
		"batches=%llu records=%llu events=%llu applied=%llu duplicates=%llu forks=%llu "
		"quarantined=%llu held=%llu retried=%llu rules=%llu slow_paths=%llu pg_errors=%llu "
		"busy_ms=%llu",
		(unsigned long long)s->batches, (unsigned long long)s->records,
		(unsigned long long)s->events, (unsigned long long)s->applied,
		(unsigned long long)s->duplicates, (unsigned long long)s->forks,
		(unsigned long long)s->quarantined, (unsigned long long)s->held,
		(unsigned long long)s->retried, (unsigned long long)s->rules,
		(unsigned long long)s->slow_paths, (unsigned long long)s->pg_errors,
		(unsigned long long)(s->busy_us / 1000));
}

/* --metrics-addr: the projector's metrics (ops/metrics.md). The main thread mirrors
 * proj_stats after each batch and sets the lag every second; a monitor thread probes
 * PostgreSQL (readiness) and counts quarantined orders on its own connection. */
#define PX_MAX_PARTS 4096
typedef struct px {
	bk_metrics *reg; /* NULL: metrics off */
	bk_series *batches, *records, *events, *applied, *duplicates, *forks, *quarantined, *held,
	    *retried, *rules, *slow_paths, *pg_errors, *fenced, *batch_size, *batch_seconds,
	    *q_orders, *pg_up, *probe_failures, *assigned;
	bk_metric *lag, *end;
	bk_series *lag_s[PX_MAX_PARTS], *end_s[PX_MAX_PARTS];
	const char *conninfo;
	pthread_t mon;
	bool mon_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool mon_stop; /* under mu */
	atomic_int pg_ok;
} px;

static px pxm = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static bool px_ready(void *opaque, char *why, size_t whysz)
{
	(void)opaque;
	if (!atomic_load(&pxm.pg_ok)) {
		snprintf(why, whysz, "postgresql unreachable (or not probed yet)");
		return false;
	}
	return true;
}

/* One probe: connect if needed (5 s timeout), count the quarantined orders. */
static PGconn *px_probe(PGconn *c)
{
	char err[512];
	if (!c) {
		const char *k[] = {"dbname", "connect_timeout", "fallback_application_name", NULL};
		const char *v[] = {pxm.conninfo, "5", "booking-projector-monitor", NULL};
		c = PQconnectdbParams(k, v, 1);
		if (PQstatus(c) != CONNECTION_OK) {
			bk_logf(BK_LOG_DEBUG, "metrics: postgresql probe failed", "err=\"%s\"",
				PQerrorMessage(c));
			PQfinish(c);
			c = NULL;
		}
	}
	PGresult *r = c ? pgu_query(c,
				    "select count(distinct order_id) from booking_proj.quarantine "
				    "where status in ('held', 'retry')",
				    0, NULL, "count quarantined orders", err, sizeof(err))
			: NULL;
	if (r && PQntuples(r) == 1) {
		bk_series_set(pxm.q_orders, strtod(PQgetvalue(r, 0, 0), NULL));
		atomic_store(&pxm.pg_ok, 1);
		bk_series_set(pxm.pg_up, 1);
		PQclear(r);
		return c;
	}
	if (r)
		PQclear(r);
	else if (c)
		bk_logf(BK_LOG_DEBUG, "metrics: postgresql probe failed", "err=\"%s\"", err);
	atomic_store(&pxm.pg_ok, 0);
	bk_series_set(pxm.pg_up, 0);
	bk_series_inc(pxm.probe_failures);
	if (c)
		PQfinish(c);
	return NULL;
}

static void *px_monitor(void *arg)
{
	(void)arg;
	PGconn *c = NULL;
	pthread_mutex_lock(&pxm.mu);
	while (!pxm.mon_stop) {
		pthread_mutex_unlock(&pxm.mu);
		c = px_probe(c);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		pthread_mutex_lock(&pxm.mu);
		while (!pxm.mon_stop && pthread_cond_timedwait(&pxm.cv, &pxm.mu, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&pxm.mu);
	if (c)
		PQfinish(c);
	return NULL;
}

static bk_series *px_add(bk_mtype t, const char *name, const char *help, const double *b, size_t nb)
{
	return bk_metric_with(bk_metrics_add(pxm.reg, t, name, help, NULL, b, nb), NULL);
}

/* The registry, its server and the monitor thread. 0, or -1 (message printed). */
static int px_start(const char *addr, const char *conninfo)
{
	char err[512];
	if (!(pxm.reg = bk_metrics_new()))
		return -1;
	pxm.conninfo = conninfo;
	bk_metric *info =
	    bk_metrics_add(pxm.reg, BK_MT_GAUGE, "booking_build_info",
			   "Build information; always 1.", "program,version", NULL, 0);
	bk_series_set(bk_metric_with(info, (const char *const[]){"booking-projector", BK_VERSION}),
		      1);
	pxm.batches = px_add(BK_MT_COUNTER, "booking_projector_batches_total",
			     "Batches committed to PostgreSQL.", NULL, 0);
	pxm.records = px_add(BK_MT_COUNTER, "booking_projector_records_total",
			     "Events and rules records in committed batches.", NULL, 0);
	pxm.events = px_add(BK_MT_COUNTER, "booking_projector_events_total",
			    "Events read in committed batches.", NULL, 0);
	pxm.applied = px_add(BK_MT_COUNTER, "booking_projector_events_applied_total",
			     "Events applied to the read model.", NULL, 0);
	pxm.duplicates = px_add(BK_MT_COUNTER, "booking_projector_duplicates_total",
				"Events already projected (seen again), skipped.", NULL, 0);
	pxm.forks = px_add(BK_MT_COUNTER, "booking_projector_forks_total",
			   "Forks seen: an event that does not continue its order's hash chain "
			   "from the head (a second writer); recorded in booking_proj.fork.",
			   NULL, 0);
	pxm.quarantined = px_add(
	    BK_MT_COUNTER, "booking_projector_quarantined_events_total",
	    "Invalid records seen: events that could not be applied or records that could not "
	    "be decoded or hash-checked; each quarantines its order.",
	    NULL, 0);
	pxm.held = px_add(BK_MT_COUNTER, "booking_projector_held_events_total",
			  "Events held behind a quarantined event of their order.", NULL, 0);
	pxm.retried =
	    px_add(BK_MT_COUNTER, "booking_projector_quarantine_retried_total",
		   "Quarantined events re-applied after bookingctl quarantine retry.", NULL, 0);
	pxm.rules = px_add(BK_MT_COUNTER, "booking_projector_rules_records_total",
			   "booking.rules records projected.", NULL, 0);
	pxm.slow_paths =
	    px_add(BK_MT_COUNTER, "booking_projector_slow_paths_total",
		   "Batches re-written event by event after a constraint failure.", NULL, 0);
	pxm.pg_errors = px_add(BK_MT_COUNTER, "booking_projector_pg_errors_total",
			       "PostgreSQL failures (connect or batch); each one is retried "
			       "with backoff, so this also counts the retries.",
			       NULL, 0);
	pxm.fenced = px_add(BK_MT_COUNTER, "booking_projector_fenced_batches_total",
			    "Batches not written because a checkpoint moved (another instance, "
			    "or a rebuild swap): re-read from the checkpoints.",
			    NULL, 0);
	pxm.batch_size =
	    px_add(BK_MT_HISTOGRAM, "booking_projector_batch_size", "Records per committed batch.",
		   bk_metric_size_buckets, bk_metric_size_nbuckets);
	pxm.batch_seconds = px_add(BK_MT_HISTOGRAM, "booking_projector_batch_seconds",
				   "Time to project and commit a batch, in seconds.",
				   bk_metric_seconds_buckets, bk_metric_seconds_nbuckets);
	pxm.q_orders = px_add(BK_MT_GAUGE, "booking_projector_quarantined_orders",
			      "Orders with quarantined events waiting (held or retry), from "
			      "booking_proj.quarantine every 5 s.",
			      NULL, 0);
	pxm.pg_up = px_add(BK_MT_GAUGE, "booking_projector_postgresql_up",
			   "1 when the last PostgreSQL probe (every 5 s) succeeded.", NULL, 0);
	pxm.probe_failures = px_add(BK_MT_COUNTER, "booking_projector_pg_probe_failures_total",
				    "PostgreSQL probes (readiness) that failed.", NULL, 0);
	pxm.assigned = px_add(BK_MT_GAUGE, "booking_projector_partitions_assigned",
			      "booking.events partitions assigned to this instance.", NULL, 0);
	pxm.lag = bk_metrics_add(pxm.reg, BK_MT_GAUGE, "booking_projector_partition_lag_records",
				 "booking.events records not yet projected, per assigned partition "
				 "(end offset - checkpoint).",
				 "topic,partition", NULL, 0);
	pxm.end = bk_metrics_add(pxm.reg, BK_MT_GAUGE, "booking_projector_partition_end_offset",
				 "booking.events high watermark, per assigned partition.",
				 "topic,partition", NULL, 0);
	if (!pxm.assigned || !pxm.lag || !pxm.end) {
		fprintf(stderr, "booking-projector: metrics: out of memory\n");
		return -1;
	}
	int port = 0;
	if (bk_metrics_serve(pxm.reg, addr, 300, px_ready, NULL, &port, err, sizeof(err)) < 0) {
		fprintf(stderr, "booking-projector: %s\n", err);
		return -1;
	}
	if (pthread_create(&pxm.mon, NULL, px_monitor, NULL) != 0) {
		fprintf(stderr, "booking-projector: metrics: cannot start the monitor thread\n");
		return -1;
	}
	pxm.mon_started = true;
	bk_logf(BK_LOG_INFO, "metrics listening", "addr=%s port=%d version=%s", addr, port,
		BK_VERSION);
	return 0;
}

static void px_stop(void)
{
	if (pxm.mon_started) {
		pthread_mutex_lock(&pxm.mu);
		pxm.mon_stop = true;
		pthread_cond_signal(&pxm.cv);
		pthread_mutex_unlock(&pxm.mu);
		pthread_join(pxm.mon, NULL);
	}
	bk_metrics_free(pxm.reg);
	pxm.reg = NULL;
}

/* Counters from proj_stats, per-partition lag from the assignment (main thread). */
static void px_update(app *a)
{
	if (!pxm.reg)
		return;
	const proj_stats *s = proj_get_stats(a->p);
	bk_series_store(pxm.batches, s->batches);
	bk_series_store(pxm.records, s->records);
	bk_series_store(pxm.events, s->events);
	bk_series_store(pxm.applied, s->applied);
	bk_series_store(pxm.duplicates, s->duplicates);
	bk_series_store(pxm.forks, s->forks);
	bk_series_store(pxm.quarantined, s->quarantined);
	bk_series_store(pxm.held, s->held);
	bk_series_store(pxm.retried, s->retried);
	bk_series_store(pxm.rules, s->rules);
	bk_series_store(pxm.slow_paths, s->slow_paths);
	bk_series_store(pxm.pg_errors, s->pg_errors);
	bool shown[PX_MAX_PARTS] = {0};
	int assigned = 0;
	rd_kafka_topic_partition_list_t *l = NULL;
	if (rd_kafka_assignment(a->rk, &l) == RD_KAFKA_RESP_ERR_NO_ERROR && l) {
		for (int i = 0; i < l->cnt; i++) {
			int32_t p = l->elems[i].partition;
			if (strcmp(l->elems[i].topic, a->events_topic) != 0 || p < 0 ||
			    p >= PX_MAX_PARTS)
				continue;
			assigned++;
			int64_t lo = 0, hi = 0;
			if (rd_kafka_get_watermark_offsets(a->rk, a->events_topic, p, &lo, &hi) !=
				RD_KAFKA_RESP_ERR_NO_ERROR ||
			    hi < 0)
				continue;
			if (!pxm.lag_s[p]) {
				char ps[16];
				snprintf(ps, sizeof(ps), "%d", (int)p);
				const char *v[2] = {a->events_topic, ps};
				pxm.lag_s[p] = bk_metric_with(pxm.lag, v);
				pxm.end_s[p] = bk_metric_with(pxm.end, v);
			}
			int64_t next = proj_next(a->p, a->events_topic, p);
			int64_t lag = hi - (next < 0 ? 0 : next);
			bk_series_set(pxm.end_s[p], (double)hi);
			bk_series_set(pxm.lag_s[p], (double)(lag < 0 ? 0 : lag));
			shown[p] = true;
		}
		rd_kafka_topic_partition_list_destroy(l);
	}
	for (int p = 0; p < PX_MAX_PARTS; p++)
		if (pxm.lag_s[p]) {
			bk_series_hide(pxm.lag_s[p], !shown[p]);
			bk_series_hide(pxm.end_s[p], !shown[p]);
		}
	bk_series_set(pxm.assigned, assigned);
	bk_metrics_heartbeat(pxm.reg);
}

/* The longest a record may wait for its seal before it is rejected as unsealed. */
#define SEAL_WAIT_MS 60000

static int run(app *a, long batch_events, long batch_ms, long stats_s)
{
	if (grow(a) < 0)
		return EXIT_FATAL;
	size_t events = 0;
	int64_t first = 0, last_idle = now_ms(), last_stats = now_ms(), last_px = 0, last_wd = 0;
	uint64_t wd_us = 0; /* systemd's WatchdogSec (sd_notify WATCHDOG=1 at half of it) */
	if (sd_watchdog_enabled(0, &wd_us) <= 0)
		wd_us = 0;
	bool caught_up = false;
	/* every record gathered waits behind one waiting for its seal: nothing to do until a
	 * seal or a ready record comes (a->news) or the seal wait ends; no busy loop, and
	 * select_ready (a pass over the gathered records) is not run per record meanwhile */
	bool waiting = false;
	while (!stop || a->n > 0) {
		int64_t t = now_ms();
		caught_up = false;
		if (!stop) {
			int timeout = a->n ? (int)(first + batch_ms - t) : 100;
			if (a->n && timeout > CAUGHT_UP_MS)
				timeout = CAUGHT_UP_MS;
			if (waiting)
				timeout = 100; /* returns at once when a record comes */
			rd_kafka_message_t *m =
			    rd_kafka_consumer_poll(a->rk, timeout < 0 ? 0 : timeout);
			if (a->drop_batch) {
				bk_trust_free(a->trust);
				a->trust = bk_trust_new(a->writers, !a->writers, 1 << 16,
							on_release, NULL, on_bad_seal, a);
				drop(a->msgs, &a->n);
				events = 0;
				a->drop_batch = false;
				if (!a->trust)
					return EXIT_FATAL;
			}
			caught_up = !m && a->n > 0;
			if (m && m->err) {
				if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
					bk_logf(BK_LOG_WARN, "consumer error", "err=\"%s\"",
						rd_kafka_message_errstr(m));
				rd_kafka_message_destroy(m);
				m = NULL;
			}
			if (m) {
				if (a->n == 0)
					first = now_ms();
				events += record_events(m);
				if (take(a, m) < 0) {
					rd_kafka_message_destroy(m);
					return EXIT_FATAL;
				}
				if (a->ver[a->n - 1] != PV_PENDING)
					a->news = true;
			}
			t = now_ms();
		}
		bool full = events >= (size_t)batch_events || a->n >= (size_t)batch_events ||
			    (a->n > 0 && t >= first + batch_ms) || caught_up || (stop && a->n > 0);
		/* a batch takes every record judged so far, except, per events partition, the
		 * records from the first one still waiting for its seal on (they wait for the
		 * next batch); a record that waited too long is rejected as unsealed; at a
		 * stop, what waits is read again after the restart */
		if (full && waiting && !a->news && !stop && t < first + SEAL_WAIT_MS)
			full = false; /* nothing can have become ready */
		size_t k = 0;
		if (full) {
			a->news = false;
			waiting = false;
			k = select_ready(a);
			if (k == 0 && a->n > 0 && !stop) {
				if (t >= first + SEAL_WAIT_MS) {
					bk_trust_flush(a->trust, -1);
					k = select_ready(a);
				} else {
					full = false;
					waiting = true;
				}
			}
		}
		/* with nothing to project (nothing read, or all of it waiting for seals), an
		 * empty batch every second picks up retries and sees a new read model
		 * generation (its fence, or the reconnect after a swap) */
		bool idle = k == 0 && !full && !stop && t - last_idle >= 1000;
		if (full || idle) {
			int64_t t0 = now_ms();
			if (!full) /* an empty batch: it takes none of what waits for a seal */
				memset(a->taken, 0, a->n);
			proj_rc rc = proj_batch(a->p, a->sel, a->selver,
						(const uint8_t(*)[BK_HASH_LEN])a->seldig, k);
			int64_t gen = proj_generation(a->p);
			bool regen = rc != PROJ_STOPPED && gen != a->gen;
			a->gen = gen;
			if (rc == PROJ_FENCED || regen) {
				if (rc == PROJ_FENCED)
					bk_series_inc(pxm.fenced);
				if (rc == PROJ_OK && k > 0)
					commit_info(a, a->sel, k);
				reseek_all(a, regen ? "new_model_generation" : "fenced");
			} else if (rc == PROJ_OK && k > 0) {
				commit_info(a, a->sel, k);
				bk_series_observe(pxm.batch_size, (double)k);
				bk_series_observe(pxm.batch_seconds, (double)(now_ms() - t0) / 1e3);
				px_update(a);
			}
			if (rc == PROJ_FENCED || regen || stop || rc == PROJ_STOPPED) {
				/* everything is read again from the checkpoints */
				bk_trust_free(a->trust);
				a->trust = bk_trust_new(a->writers, !a->writers, 1 << 16,
							on_release, NULL, on_bad_seal, a);
				drop(a->msgs, &a->n);
				if (!a->trust)
					return EXIT_FATAL;
			} else {
				keep_rest(a);
				/* an empty batch keeps the seal wait's start */
				if (a->n > 0 && k > 0)
					first = now_ms();
			}
			events = 0;
			for (size_t i = 0; i < a->n; i++)
				events += record_events(a->msgs[i]);
			last_idle = now_ms();
			if (rc == PROJ_STOPPED || stop)
				break;
		}
		if (pxm.reg && t - last_px >= 1000) {
			px_update(a);
			last_px = t;
		}
		if (wd_us && t - last_wd >= (int64_t)(wd_us / 2000)) {
			sd_notify(0, "WATCHDOG=1");
			last_wd = t;
		}
		if (hup_flag) {
			hup_flag = 0;
			bk_log(BK_LOG_INFO, "SIGHUP: nothing to reload; logs go to stderr");
		}
		if (stats_s > 0 && t - last_stats >= stats_s * 1000) {
			log_stats(a->p);
			last_stats = t;
		}
	}
	drop(a->msgs, &a->n);
	return a->fatal ? EXIT_FATAL : EXIT_OK;
}

static int parse_long(const char *opt, const char *s, long min, long *ret)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < min) {
		fprintf(stderr, "booking-projector: %s %s: expected a number >= %ld\n", opt, s,
			min);
		return -1;
	}
	*ret = v;
	return 0;
}

static int projector_main(int argc, char **argv);

/* -F FILE expanded into argv first (lib/conffile.h); the vector lives as long as main. */
int main(int argc, char **argv)
{
	char err[600], **av = NULL;
	int ac = 0;
	if (bk_conffile_expand(argc, argv, &ac, &av, err, sizeof(err)) < 0) {
		fprintf(stderr, "booking-projector: %s\n", err);
		bk_logf(BK_LOG_ERROR, "not started: exiting",
			"exit=%d cause=\"bad -F file\" version=%s", EXIT_USAGE, BK_VERSION);
		return EXIT_USAGE;
	}
	int rc = projector_main(ac, av);
	bk_conffile_free_argv(av);
	return rc;
}

/* What the app holds besides Kafka and PostgreSQL: the seal buffers and the batch. */
static void app_free(app *a)
{
	bk_trust_free(a->trust);
	bk_keyring_free(a->writers);
	free(a->msgs);
	free(a->ver);
	free(a->hid);
	free(a->sel);
	free(a->selver);
	free(a->dig);
	free(a->seldig);
	free(a->taken);
	free(a->wait_part);
	memset(a, 0, sizeof(*a));
}

static int projector_main(int argc, char **argv)
{
	const char *conninfo = NULL, *group = "booking-projector", *metrics_addr = NULL,
		   *wkr_path = NULL;
	bool trust_unsealed = false;
	long batch_events = 20000, batch_ms = 200, stats_s = 10, timeout_ms = 30000;
	pdb_path path = PDB_COPY;
	char err[512];
	bk_kconf *kc = bk_kconf_new();
	if (!kc)
		return EXIT_FATAL;
	for (int i = 1; i < argc; i++) {
		int r = bk_kconf_take_arg(kc, argc, argv, &i, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "booking-projector: %s\n", err);
			bk_kconf_destroy(kc);
			bk_logf(BK_LOG_ERROR, "not started: exiting",
				"exit=%d cause=\"bad Kafka option\" version=%s", EXIT_USAGE,
				BK_VERSION);
			return EXIT_USAGE;
		}
		if (r == 1)
			continue;
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		const char *eq = strchr(a, '=');
		char name[64];
		if (a[0] == '-' && a[1] == '-' && eq && (size_t)(eq - a) < sizeof(name)) {
			memcpy(name, a, (size_t)(eq - a));
			name[eq - a] = 0;
			a = name;
			v = eq + 1;
		} else if (strcmp(a, "--trust-unsealed") == 0) {
			/* a switch, as in rebuild; the old "--trust-unsealed 1" still works */
			if (v && (strcmp(v, "1") == 0 || strcmp(v, "0") == 0))
				i++;
			v = v && strcmp(v, "0") == 0 ? "0" : "1";
		} else if (v && (strcmp(a, "-d") == 0 || strncmp(a, "--", 2) == 0) &&
			   strcmp(a, "--help") != 0 && strcmp(a, "--version") != 0) {
			i++;
		}
		int bad = 0;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage_text, stdout);
			fputs(bk_kconf_usage(), stdout);
			fputs(bk_conffile_usage(), stdout);
			bk_kconf_destroy(kc);
			return EXIT_OK;
		} else if (strcmp(a, "--version") == 0) {
			printf("booking-projector %s\n", BK_VERSION);
			bk_kconf_destroy(kc);
			return EXIT_OK;
		} else if (!v) {
			fprintf(stderr, "booking-projector: %s: missing value or unknown option\n",
				a);
			bad = 1;
		} else if (strcmp(a, "-d") == 0 || strcmp(a, "--dbname") == 0) {
			conninfo = v;
		} else if (strcmp(a, "--batch-events") == 0) {
			bad = parse_long(a, v, 1, &batch_events) < 0;
		} else if (strcmp(a, "--batch-ms") == 0) {
			bad = parse_long(a, v, 1, &batch_ms) < 0;
		} else if (strcmp(a, "--timeout-ms") == 0) {
			bad = parse_long(a, v, 100, &timeout_ms) < 0;
			if (!bad && timeout_ms > 3600000) /* as booking-commands */
				bad = fprintf(stderr,
					      "booking-projector: --timeout-ms %s: at most "
					      "3600000\n",
					      v) > 0;
		} else if (strcmp(a, "--stats-s") == 0) {
			bad = parse_long(a, v, 0, &stats_s) < 0;
		} else if (strcmp(a, "--group-id") == 0) {
			group = v;
		} else if (strcmp(a, "--metrics-addr") == 0) {
			metrics_addr = v;
		} else if (strcmp(a, "--writer-keyring") == 0) {
			wkr_path = v;
		} else if (strcmp(a, "--trust-unsealed") == 0) {
			trust_unsealed = strcmp(v, "1") == 0;
		} else if (strcmp(a, "--write-path") == 0) {
			if (strcmp(v, "copy") == 0)
				path = PDB_COPY;
			else if (strcmp(v, "pipeline") == 0)
				path = PDB_PIPELINE;
			else
				bad = fprintf(stderr,
					      "booking-projector: --write-path %s: copy or "
					      "pipeline\n",
					      v) > 0;
		} else {
			fprintf(stderr, "booking-projector: unknown option %s (--help)\n", a);
			bad = 1;
		}
		if (bad) {
			bk_kconf_destroy(kc);
			bk_logf(BK_LOG_ERROR, "not started: exiting",
				"exit=%d cause=\"bad usage\" version=%s", EXIT_USAGE, BK_VERSION);
			return EXIT_USAGE;
		}
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	if (metrics_addr && px_start(metrics_addr, conninfo) < 0) {
		px_stop();
		bk_kconf_destroy(kc);
		bk_logf(BK_LOG_ERROR, "not started: exiting",
			"exit=%d cause=\"bad --metrics-addr\" version=%s", EXIT_USAGE, BK_VERSION);
		return EXIT_USAGE;
	}

	app a = {.kc = kc,
		 .events_topic = bk_kconf_topic(kc, BK_TOPIC_EVENTS),
		 .rules_topic = bk_kconf_topic(kc, BK_TOPIC_RULES)};
	if (!trust_unsealed && bk_trust_load_keyring(wkr_path, &a.writers, err, sizeof(err)) < 0) {
		fprintf(stderr, "booking-projector: %s (or --trust-unsealed 1, development only)\n",
			err);
		px_stop();
		bk_kconf_destroy(kc);
		bk_logf(BK_LOG_ERROR, "not started: exiting",
			"exit=%d cause=\"no writer keyring\" version=%s", EXIT_USAGE, BK_VERSION);
		return EXIT_USAGE;
	}
	if (trust_unsealed)
		bk_log(BK_LOG_WARN, "*** --trust-unsealed: records WITHOUT A SEAL ARE PROJECTED. "
				    "Development only; never in production. ***");
	a.trust =
	    bk_trust_new(a.writers, trust_unsealed, 1 << 16, on_release, NULL, on_bad_seal, &a);
	proj_cfg cfg = {conninfo, a.events_topic, a.rules_topic, path, &stop};
	a.p = proj_new(&cfg);
	const char *defaults[] = {"group.id",
				  group,
				  "enable.auto.commit",
				  "false",
				  "enable.auto.offset.store",
				  "false",
				  "isolation.level",
				  "read_committed",
				  "auto.offset.reset",
				  "earliest",
				  NULL};
	rd_kafka_conf_t *conf = NULL;
	if (!a.p || bk_kconf_build(kc, BK_KCONF_CONSUMER, defaults, &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "booking-projector: %s\n", a.p ? err : "out of memory");
		proj_free(a.p);
		app_free(&a);
		bk_kconf_destroy(kc);
		px_stop();
		bk_logf(BK_LOG_ERROR, "not started: exiting",
			"exit=%d cause=\"bad configuration\" version=%s", EXIT_USAGE, BK_VERSION);
		return EXIT_USAGE;
	}
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	rd_kafka_conf_set_opaque(conf, &a);
	if (bk_kwatch_conf(conf, stats_cb, err, sizeof(err)) == 0)
		a.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	if (!a.rk) {
		rd_kafka_conf_destroy(conf);
		fprintf(stderr, "booking-projector: %s\n", err);
		proj_free(a.p);
		app_free(&a);
		bk_kconf_destroy(kc);
		px_stop();
		bk_logf(BK_LOG_ERROR, "not started: exiting",
			"exit=%d cause=\"bad Kafka configuration\" version=%s", EXIT_USAGE,
			BK_VERSION);
		return EXIT_USAGE;
	}
	rd_kafka_poll_set_consumer(a.rk);
	/* the cluster answers (retried up to --timeout-ms) and both topics exist: a
	 * misspelled --topic-prefix is refused, as by booking-commands (lib/startup.h) */
	bk_startup_topic ts[] = {{a.events_topic, "--events-topic", false, 0},
				 {a.rules_topic, "--rules-topic", false, 0}};
	bk_startup_rc sr = bk_startup_check(a.rk, ts, 2, (int)timeout_ms, &stop, err, sizeof(err));
	if (sr != BK_STARTUP_OK) {
		int code = bk_startup_exit_code(sr);
		if (sr != BK_STARTUP_STOPPED) {
			bk_logf(BK_LOG_ERROR, "refusing to run", "err=\"%s\"", err);
			fprintf(stderr, "booking-projector: %s\n", err);
		}
		rd_kafka_destroy(a.rk);
		proj_free(a.p);
		app_free(&a);
		bk_kconf_destroy(kc);
		px_stop();
		bk_logf(code ? BK_LOG_ERROR : BK_LOG_INFO, "not started: exiting",
			"exit=%d cause=\"%s\" version=%s", code,
			sr == BK_STARTUP_STOPPED  ? (stop_signal == SIGINT ? "SIGINT" : "SIGTERM")
			: code == EXIT_DEPENDENCY ? "kafka unreachable (see above)"
						  : "topics not usable (see above)",
			BK_VERSION);
		return code;
	}
	if (proj_connect(a.p) < 0) { /* stopped before PostgreSQL came */
		rd_kafka_destroy(a.rk);
		proj_free(a.p);
		app_free(&a);
		bk_kconf_destroy(kc);
		px_stop();
		bk_logf(BK_LOG_INFO, "projector stopped",
			"exit=%d cause=\"%s before postgresql came\"", EXIT_OK,
			stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
		return EXIT_OK;
	}
	a.gen = proj_generation(a.p);
	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(2);
	rd_kafka_topic_partition_list_add(topics, a.events_topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_topic_partition_list_add(topics, a.rules_topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t e = rd_kafka_subscribe(a.rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (e) {
		bk_logf(BK_LOG_ERROR, "subscribe failed", "err=\"%s\"", rd_kafka_err2str(e));
		rd_kafka_destroy(a.rk);
		proj_free(a.p);
		app_free(&a);
		bk_kconf_destroy(kc);
		px_stop();
		bk_logf(BK_LOG_ERROR, "projector stopped", "exit=%d cause=\"subscribe failed\"",
			EXIT_FATAL);
		return EXIT_FATAL;
	}
	bk_logf(
	    BK_LOG_INFO, "projector started",
	    "version=%s events_topic=%s rules_topic=%s group_id=%s batch_events=%ld batch_ms=%ld "
	    "write_path=%s",
	    BK_VERSION, a.events_topic, a.rules_topic, group, batch_events, batch_ms,
	    path == PDB_COPY ? "copy" : "pipeline");
	sd_notifyf(0, "READY=1\nSTATUS=projecting %s", a.events_topic);
	int rc = run(&a, batch_events, batch_ms, stats_s);
	sd_notify(0, "STOPPING=1");
	log_stats(a.p);
	rd_kafka_consumer_close(a.rk);
	rd_kafka_destroy(a.rk);
	proj_free(a.p);
	bk_kconf_destroy(kc);
	px_stop();
	app_free(&a);
	bk_logf(rc ? BK_LOG_ERROR : BK_LOG_INFO, "projector stopped", "exit=%d cause=%s", rc,
		rc			 ? "fatal error (logged above)"
		: stop_signal == SIGINT	 ? "SIGINT"
		: stop_signal == SIGTERM ? "SIGTERM"
					 : "stopped");
	return rc;
}
