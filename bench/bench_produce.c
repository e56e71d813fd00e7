/*
 * bench_produce.c - the baseline of the processor benchmark: read what booking-commands
 * wrote (events, rules, command-results), then produce the same records (key, value,
 * headers, partition), in the order they were written, with a transactional producer
 * configured like the processor's, in transactions of N commands (results) each.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bk_codec.h"
#include "kconf.h"

static const char usage_text[] =
    "usage: bench_produce [Kafka options] --to-prefix PFX [--batch N[,N...]]\n"
    "  reads events, rules and command-results (their --topic-prefix names) to the end,\n"
    "  then produces the same records to PFX<name> (topics with the same partitions),\n"
    "  in transactions of N results each, once per N; prints one line per N\n";

enum { T_EVENTS, T_RULES, T_RESULTS, T_N };

typedef struct rec {
	int t;
	int32_t partition;
	int64_t ts, offset;
	void *key, *val;
	size_t klen, vlen, bytes; /* bytes: key + value + header names and values */
	rd_kafka_headers_t *hdrs;
} rec;

typedef struct recs {
	rec *v;
	size_t n, cap;
	long long per_t[T_N], bytes_t[T_N], status[4];
} recs;

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *dup(const void *p, size_t n)
{
	void *d = malloc(n ? n : 1);
	if (d && n)
		memcpy(d, p, n);
	return d;
}

static int cmp_rec(const void *a, const void *b)
{
	const rec *x = a, *y = b;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	if (x->t != y->t)
		return x->t - y->t;
	if (x->partition != y->partition)
		return x->partition - y->partition;
	return (x->offset > y->offset) - (x->offset < y->offset);
}

static void take(recs *r, int t, rd_kafka_message_t *m)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 65536;
		r->v = realloc(r->v, r->cap * sizeof(*r->v));
	}
	rec *x = &r->v[r->n++];
	rd_kafka_timestamp_type_t tt;
	*x = (rec){.t = t,
		   .partition = m->partition,
		   .ts = rd_kafka_message_timestamp(m, &tt),
		   .offset = m->offset,
		   .key = dup(m->key, m->key_len),
		   .klen = m->key_len,
		   .val = dup(m->payload, m->len),
		   .vlen = m->len};
	x->bytes = x->klen + x->vlen;
	if (rd_kafka_message_detach_headers(m, &x->hdrs))
		x->hdrs = NULL;
	const char *name;
	const void *v;
	size_t vn;
	for (size_t i = 0; x->hdrs && !rd_kafka_header_get_all(x->hdrs, i, &name, &v, &vn); i++)
		x->bytes += strlen(name) + vn;
	r->per_t[t]++;
	r->bytes_t[t] += (long long)x->bytes;
	if (t == T_RESULTS) {
		msgpack_zone z;
		msgpack_zone_init(&z, 2048);
		bk_result res;
		char err[256];
		int s = bk_codec_result_decode(m->payload, m->len, &z, &res, err, sizeof(err)) < 0
			    ? 3
			    : (int)res.status;
		r->status[s >= 0 && s < 3 ? s : 3]++;
		msgpack_zone_destroy(&z);
	}
}

/* Read the three topics from the start to their ends. */
static int load(bk_kconf *kc, const char *const names[T_N], recs *r)
{
	static const char *const defs[] = {"group.id", "bench-produce",	       "enable.auto.commit",
					   "false",    "enable.partition.eof", "true",
					   NULL};
	rd_kafka_t *rk;
	char err[512];
	if (bk_kconf_new_handle(kc, BK_KCONF_CONSUMER, defs, &rk, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_produce: %s\n", err);
		return -1;
	}
	rd_kafka_poll_set_consumer(rk);
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(512);
	for (int t = 0; t < T_N; t++) {
		int np;
		if (bk_kconf_partition_count(rk, names[t], 30000, &np, err, sizeof(err)) < 0) {
			fprintf(stderr, "bench_produce: %s\n", err);
			return -1;
		}
		for (int p = 0; p < np; p++)
			rd_kafka_topic_partition_list_add(l, names[t], p)->offset =
			    RD_KAFKA_OFFSET_BEGINNING;
	}
	int left = l->cnt;
	rd_kafka_assign(rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	int64_t idle = mono_us();
	while (left > 0 && mono_us() - idle < 30000000) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		if (!m)
			continue;
		idle = mono_us();
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			left--;
		else if (!m->err) {
			const char *tn = rd_kafka_topic_name(m->rkt);
			for (int t = 0; t < T_N; t++)
				if (!strcmp(tn, names[t]))
					take(r, t, m);
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	if (left > 0) {
		fprintf(stderr, "bench_produce: %d partitions did not reach their end\n", left);
		return -1;
	}
	if (r->n) /* r->v is NULL while nothing was taken */
		qsort(r->v, r->n, sizeof(*r->v), cmp_rec);
	return 0;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	long long *failed = opaque;
	(void)rk;
	if (m->err)
		(*failed)++;
}

static int txn_ok(rd_kafka_error_t *e, const char *what)
{
	if (!e)
		return 1;
	fprintf(stderr, "bench_produce: %s: %s\n", what, rd_kafka_error_string(e));
	rd_kafka_error_destroy(e);
	return 0;
}

/* Produce every record in transactions of `batch` results. */
static int run(bk_kconf *kc, const recs *r, const char *const dst[T_N], long batch, int pass)
{
	char txn_id[64], err[512];
	snprintf(txn_id, sizeof(txn_id), "bench-produce-%d", pass);
	/* the processor's producer settings (commands/main.c) */
	const char *defs[] = {"enable.idempotence",
			      "true",
			      "acks",
			      "all",
			      "linger.ms",
			      "5",
			      "queue.buffering.max.messages",
			      "1000000",
			      "message.max.bytes",
			      "8000000",
			      "transactional.id",
			      txn_id,
			      NULL};
	rd_kafka_conf_t *conf;
	long long failed = 0;
	if (bk_kconf_build(kc, BK_KCONF_PRODUCER, defs, &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_produce: %s\n", err);
		return -1;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_conf_set_opaque(conf, &failed);
	if (bk_kconf_tame_main_thread(conf, err, sizeof(err)) < 0) { /* as the processor */
		fprintf(stderr, "bench_produce: %s\n", err);
		return -1;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk || !txn_ok(rd_kafka_init_transactions(rk, 30000), "init_transactions"))
		return -1;
	/* as the processor does at start: the topics' partitions known before timing */
	if (bk_kconf_warm_topics(rk, dst, T_N, 30000, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_produce: %s\n", err);
		return -1;
	}
	long long txns = 0, bytes = 0;
	int64_t t0 = mono_us(), first = 0;
	size_t i = 0;
	while (i < r->n) {
		if (!txn_ok(rd_kafka_begin_transaction(rk), "begin_transaction"))
			return -1;
		for (long res = 0; i < r->n && res < batch; i++) {
			const rec *x = &r->v[i];
			rd_kafka_headers_t *h = x->hdrs ? rd_kafka_headers_copy(x->hdrs) : NULL;
			rd_kafka_resp_err_t e;
			while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(dst[x->t]),
						      RD_KAFKA_V_PARTITION(x->partition),
						      RD_KAFKA_V_KEY(x->key, x->klen),
						      RD_KAFKA_V_VALUE(x->val, x->vlen),
						      RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END)) ==
			       RD_KAFKA_RESP_ERR__QUEUE_FULL)
				rd_kafka_poll(rk, 10);
			if (e) {
				fprintf(stderr, "bench_produce: produce: %s\n",
					rd_kafka_err2str(e));
				return -1;
			}
			bytes += (long long)x->bytes;
			res += x->t == T_RESULTS;
		}
		if (!txn_ok(rd_kafka_commit_transaction(rk, 30000), "commit_transaction"))
			return -1;
		if (txns++ == 0)
			first = mono_us() - t0;
	}
	double s = (double)(mono_us() - t0) / 1e6;
	printf(
	    "batch=%ld transactions=%lld commands=%lld records=%zu bytes=%lld failed=%lld "
	    "seconds=%.3f first_txn_ms=%.0f commands_per_s=%.0f records_per_s=%.0f MB_per_s=%.1f\n",
	    batch, txns, r->per_t[T_RESULTS], r->n, bytes, failed, s, (double)first / 1e3,
	    (double)r->per_t[T_RESULTS] / s, (double)r->n / s, (double)bytes / s / 1e6);
	fflush(stdout);
	rd_kafka_destroy(rk);
	return failed ? -1 : 0;
}

int main(int argc, char **argv)
{
	char err[512];
	const char *to = NULL, *batches = "500";
	bk_kconf *kc = bk_kconf_new();
	for (int i = 1; i < argc; i++) {
		int r = bk_kconf_take_arg(kc, argc, argv, &i, err, sizeof(err));
		if (r == 1)
			continue;
		if (r == 0 && i + 1 < argc && !strcmp(argv[i], "--to-prefix"))
			to = argv[++i];
		else if (r == 0 && i + 1 < argc && !strcmp(argv[i], "--batch"))
			batches = argv[++i];
		else {
			fprintf(stderr, "bench_produce: %s\n%s", r < 0 ? err : argv[i], usage_text);
			return 2;
		}
	}
	if (!to) {
		fputs(usage_text, stderr);
		return 2;
	}
	const bk_topic kinds[T_N] = {BK_TOPIC_EVENTS, BK_TOPIC_RULES, BK_TOPIC_RESULTS};
	const char *names[T_N];
	char dstbuf[T_N][256];
	const char *dst[T_N];
	for (int t = 0; t < T_N; t++) {
		names[t] = bk_kconf_topic(kc, kinds[t]);
		snprintf(dstbuf[t], sizeof(dstbuf[t]), "%s%s", to, bk_topic_default_name(kinds[t]));
		dst[t] = dstbuf[t];
	}
	recs r = {0};
	int64_t t0 = mono_us();
	if (load(kc, names, &r) < 0)
		return 3;
	printf("loaded events_records=%lld events_bytes=%lld rules_records=%lld rules_bytes=%lld "
	       "results=%lld "
	       "results_bytes=%lld accepted=%lld rejected=%lld duplicate=%lld undecodable=%lld "
	       "load_seconds=%.3f\n",
	       r.per_t[T_EVENTS], r.bytes_t[T_EVENTS], r.per_t[T_RULES], r.bytes_t[T_RULES],
	       r.per_t[T_RESULTS], r.bytes_t[T_RESULTS], r.status[BK_ACCEPTED],
	       r.status[BK_REJECTED], r.status[BK_DUPLICATE], r.status[3],
	       (double)(mono_us() - t0) / 1e6);
	fflush(stdout);
	int pass = 0;
	for (const char *p = batches; *p;) {
		char *end;
		long b = strtol(p, &end, 10);
		if (b <= 0 || end == p) {
			fprintf(stderr, "bench_produce: --batch: %s\n", batches);
			return 2;
		}
		if (run(kc, &r, dst, b, pass++) < 0)
			return 3;
		p = *end == ',' ? end + 1 : end;
	}
	bk_kconf_destroy(kc);
	return 0;
}
