/*
 * bench_commands.c - the load side of the processor benchmark (bench_commands.sh):
 * `preload` produces a `bookingctl gen --format msgpack` stream to booking.commands as
 * `bookingctl send` does; `count` times the results; `latency` sends at a steady rate
 * and measures send -> result per command, matched by (src-partition, src-offset);
 * `sequential` sends one command at a time and waits for its answer before the next
 * (the round trip of an idle system, bench_latency.sh).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "bk_auth.h"
#include "kconf.h"

static const char usage_text[] =
    "usage: bench_commands preload|count|latency [Kafka options] [options]\n"
    "  preload --file F [--from I] [--to J] [--key SK --key-id ID]\n"
    "        commands I..J-1 of the stream (default all) to booking.commands\n"
    "  count --n N [--skip K] [--timeout-ms T]\n"
    "        wait for N records on command-results + dlq; print the arrival (epoch s) of\n"
    "        record K+1 (first) and of the last\n"
    "  latency --file F --rate R --seconds S [--warmup W] [--key SK --key-id ID]\n"
    "          [-C key=value]\n"
    "        send W commands and wait for their results (untimed), then R/s for S s;\n"
    "        send -> result per command (-C: results consumer settings)\n"
    "  sequential --file F --n N [--warmup W] [--key SK --key-id ID] [-C key=value]\n"
    "        W untimed, then N commands one at a time, each sent when the previous one's\n"
    "        result or DLQ record arrived; send -> answer per command\n";

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double real_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One command of the stream: bytes in the file buffer and its key. */
typedef struct cmd {
	const char *val, *key;
	size_t len, klen;
} cmd;

typedef struct stream {
	char *buf;
	cmd *v;
	size_t n;
} stream;

/* Read a msgpack stream (maps back to back); key = the "order_id" string. */
static int load_stream(const char *path, size_t max, stream *s)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	s->buf = malloc((size_t)sz + 1);
	if (!s->buf || fread(s->buf, 1, (size_t)sz, f) != (size_t)sz) {
		fclose(f);
		return -1;
	}
	fclose(f);
	size_t cap = 1024, off = 0;
	if (!(s->v = malloc(cap * sizeof(*s->v))))
		return -1;
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	while (off < (size_t)sz && s->n < max) {
		size_t start = off;
		if (msgpack_unpack_next(&u, s->buf, (size_t)sz, &off) != MSGPACK_UNPACK_SUCCESS ||
		    u.data.type != MSGPACK_OBJECT_MAP) {
			fprintf(stderr, "bench_commands: %s: bad msgpack at byte %zu\n", path,
				start);
			msgpack_unpacked_destroy(&u);
			return -1;
		}
		if (s->n == cap) {
			cmd *nv = realloc(s->v, cap * 2 * sizeof(*s->v));
			if (!nv) {
				msgpack_unpacked_destroy(&u);
				return -1;
			}
			s->v = nv;
			cap *= 2;
		}
		cmd *c = &s->v[s->n++];
		*c = (cmd){.val = s->buf + start, .len = off - start};
		const msgpack_object_map *m = &u.data.via.map;
		for (uint32_t i = 0; i < m->size; i++) {
			const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
			if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 8 &&
			    !memcmp(k->via.str.ptr, "order_id", 8) &&
			    v->type == MSGPACK_OBJECT_STR) {
				/* the string's bytes live in s->buf (msgpack-c references them) */
				c->key = v->via.str.ptr;
				c->klen = v->via.str.size;
			}
		}
	}
	msgpack_unpacked_destroy(&u);
	return 0;
}

static void stream_free(stream *s)
{
	free(s->v);
	free(s->buf);
	*s = (stream){0};
}

static int load_key(const char *path, uint8_t sk[BK_SK_LEN])
{
	char b[256];
	FILE *f = fopen(path, "r");
	if (!f) {
		perror(path);
		return -1;
	}
	size_t n = fread(b, 1, sizeof(b) - 1, f);
	fclose(f);
	while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == ' '))
		n--;
	return bk_b64_decode(b, n, sk, BK_SK_LEN) == BK_SK_LEN ? 0 : -1;
}

typedef struct opts {
	const char *mode, *file, *key_path, *key_id;
	long long n, rate, seconds, timeout_ms, from, to, skip, warmup;
	const char *cons_kv[16];
	int n_cons_kv;
} opts;

/* Produce command i (signed when sk is set). */
static int produce(rd_kafka_t *rk, const char *topic, const cmd *c, size_t i, const uint8_t *sk,
		   const char *key_id)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(3);
	rd_kafka_header_add(h, "content-type", -1, "application/msgpack", -1);
	if (sk) {
		uint8_t sig[BK_SIG_LEN];
		bk_auth_sign(sk, c->val, c->len, sig);
		rd_kafka_header_add(h, "key-id", -1, key_id, -1);
		rd_kafka_header_add(h, "signature", -1, sig, sizeof(sig));
	}
	for (;;) {
		rd_kafka_resp_err_t e = rd_kafka_producev(
		    rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(c->key, c->klen),
		    RD_KAFKA_V_VALUE((void *)c->val, c->len), RD_KAFKA_V_HEADERS(h),
		    RD_KAFKA_V_OPAQUE((void *)(uintptr_t)i), RD_KAFKA_V_END);
		if (!e)
			return 0;
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			fprintf(stderr, "bench_commands: produce: %s\n", rd_kafka_err2str(e));
			rd_kafka_headers_destroy(h);
			return -1;
		}
		rd_kafka_poll(rk, 10);
	}
}

typedef struct dr_state {
	long long ok, failed;
	int32_t *part; /* latency: where command i landed */
	int64_t *off;
} dr_state;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	dr_state *d = opaque;
	(void)rk;
	if (m->err) {
		d->failed++;
		return;
	}
	d->ok++;
	if (d->part) {
		size_t i = (size_t)(uintptr_t)m->_private;
		d->part[i] = m->partition;
		d->off[i] = m->offset;
	}
}

static rd_kafka_t *new_producer(bk_kconf *kc, dr_state *d)
{
	static const char *const defs[] = {"enable.idempotence",
					   "true",
					   "acks",
					   "all",
					   "queue.buffering.max.messages",
					   "1000000",
					   "message.max.bytes",
					   "8000000",
					   NULL};
	rd_kafka_conf_t *conf;
	char err[512];
	if (bk_kconf_build(kc, BK_KCONF_PRODUCER, defs, &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_commands: %s\n", err);
		return NULL;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_conf_set_opaque(conf, d);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk)
		fprintf(stderr, "bench_commands: producer: %s\n", err);
	return rk;
}

/* A consumer assigned to every partition of command-results and dlq from the start. */
static rd_kafka_t *new_results_consumer(bk_kconf *kc, const opts *o)
{
	static const char *const defs[] = {"group.id", "bench-commands",    "enable.auto.commit",
					   "false",    "auto.offset.reset", "earliest",
					   NULL};
	rd_kafka_conf_t *conf;
	char err[512];
	if (bk_kconf_build(kc, BK_KCONF_CONSUMER, defs, &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_commands: %s\n", err);
		return NULL;
	}
	for (int i = 0; i < o->n_cons_kv; i++) {
		char kv[256];
		snprintf(kv, sizeof(kv), "%s", o->cons_kv[i]);
		char *eq = strchr(kv, '=');
		if (!eq || (*eq = '\0', rd_kafka_conf_set(conf, kv, eq + 1, err, sizeof(err))) !=
			       RD_KAFKA_CONF_OK) {
			fprintf(stderr, "bench_commands: -C %s: %s\n", o->cons_kv[i],
				eq ? err : "not key=value");
			rd_kafka_conf_destroy(conf);
			return NULL;
		}
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	if (!rk) {
		fprintf(stderr, "bench_commands: consumer: %s\n", err);
		return NULL;
	}
	rd_kafka_poll_set_consumer(rk);
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(256);
	const bk_topic ts[2] = {BK_TOPIC_RESULTS, BK_TOPIC_DLQ};
	for (int t = 0; t < 2; t++) {
		const char *name = bk_kconf_topic(kc, ts[t]);
		int np;
		if (bk_kconf_partition_count(rk, name, 30000, &np, err, sizeof(err)) < 0) {
			fprintf(stderr, "bench_commands: %s\n", err);
			return NULL;
		}
		for (int p = 0; p < np; p++)
			rd_kafka_topic_partition_list_add(l, name, p)->offset =
			    RD_KAFKA_OFFSET_BEGINNING;
	}
	rd_kafka_assign(rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	return rk;
}

static int is_dlq(const rd_kafka_message_t *m, const char *dlq)
{
	return !strcmp(rd_kafka_topic_name(m->rkt), dlq);
}

static int run_preload(bk_kconf *kc, const opts *o, const uint8_t *sk)
{
	stream s = {0};
	if (load_stream(o->file, (size_t)-1, &s) < 0)
		return 1;
	dr_state d = {0};
	rd_kafka_t *rk = new_producer(kc, &d);
	if (!rk) {
		stream_free(&s);
		return 3;
	}
	const char *topic = bk_kconf_topic(kc, BK_TOPIC_COMMANDS);
	long long bytes = 0;
	size_t from = (size_t)o->from, to = o->to < 0 || (size_t)o->to > s.n ? s.n : (size_t)o->to;
	int64_t t0 = mono_us();
	for (size_t i = from; i < to; i++) {
		if (produce(rk, topic, &s.v[i], i, sk, o->key_id) < 0) {
			rd_kafka_destroy(rk);
			stream_free(&s);
			return 3;
		}
		bytes += (long long)s.v[i].len;
		if ((i & 1023) == 0)
			rd_kafka_poll(rk, 0);
	}
	rd_kafka_flush(rk, 120000);
	double sec = (double)(mono_us() - t0) / 1e6;
	printf("commands=%zu bytes=%lld delivered=%lld failed=%lld seconds=%.3f "
	       "commands_per_s=%.0f\n",
	       to - from, bytes, d.ok, d.failed, sec, (double)(to - from) / sec);
	rd_kafka_destroy(rk);
	stream_free(&s);
	return d.failed || d.ok != (long long)(to - from) ? 3 : 0;
}

static int run_count(bk_kconf *kc, const opts *o)
{
	rd_kafka_t *rk = new_results_consumer(kc, o);
	if (!rk)
		return 3;
	const char *dlq = bk_kconf_topic(kc, BK_TOPIC_DLQ);
	long long res = 0, dl = 0, bytes = 0;
	double first = 0, last = 0;
	int64_t idle = mono_us();
	printf("ready=%.6f\n", real_s());
	fflush(stdout);
	while (res + dl < o->n) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (!m) {
			if (mono_us() - idle > o->timeout_ms * 1000) {
				fprintf(stderr, "bench_commands: count: timeout at %lld of %lld\n",
					res + dl, o->n);
				break;
			}
			continue;
		}
		if (!m->err) {
			last = real_s();
			if (first == 0 && res + dl >= o->skip)
				first = last;
			idle = mono_us();
			if (is_dlq(m, dlq))
				dl++;
			else
				res++;
			bytes += (long long)m->len;
		}
		rd_kafka_message_destroy(m);
	}
	printf("results=%lld dlq=%lld result_value_bytes=%lld first=%.6f last=%.6f\n", res, dl,
	       bytes, first, last);
	rd_kafka_destroy(rk);
	return res + dl == o->n ? 0 : 3;
}

static int hdr_int(const rd_kafka_message_t *m, const char *name, int64_t *ret)
{
	rd_kafka_headers_t *h;
	const void *v;
	size_t n;
	char b[32];
	if (rd_kafka_message_headers(m, &h) || rd_kafka_header_get_last(h, name, &v, &n) || !v ||
	    n == 0 || n >= sizeof(b))
		return -1;
	memcpy(b, v, n);
	b[n] = '\0';
	*ret = strtoll(b, NULL, 10);
	return 0;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

/* Read one results/dlq record: its arrival time into arr[partition][offset]. */
static void take_result(rd_kafka_t *cons, const char *dlq, int64_t **arr, int np, size_t cap,
			long long *got, long long *dl)
{
	rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 1);
	if (!m)
		return;
	if (!m->err) {
		int64_t sp, so, at = mono_us();
		if (is_dlq(m, dlq))
			(*dl)++;
		else if (!hdr_int(m, "src-partition", &sp) && !hdr_int(m, "src-offset", &so) &&
			 sp >= 0 && sp < np && so >= 0 && so < (int64_t)cap) {
			arr[sp][so] = at;
			(*got)++;
		}
	}
	rd_kafka_message_destroy(m);
}

static int run_latency(bk_kconf *kc, const opts *o, const uint8_t *sk)
{
	stream s = {0};
	size_t warm = (size_t)o->warmup, want = (size_t)(o->rate * o->seconds), all = warm + want;
	dr_state d = {0};
	int64_t *sent = NULL, **arr = NULL;
	long long *lat = NULL;
	rd_kafka_t *prod = NULL, *cons = NULL;
	int np = 0, rc = 3;
	char err[512];
	if (load_stream(o->file, all, &s) < 0) {
		rc = 1;
		goto out;
	}
	if (s.n < all) {
		fprintf(stderr,
			"bench_commands: latency: the stream has %zu commands, %zu needed\n", s.n,
			all);
		rc = 2;
		goto out;
	}
	d.part = malloc(all * sizeof(int32_t));
	d.off = malloc(all * sizeof(int64_t));
	sent = malloc(all * sizeof(int64_t));
	if (!d.part || !d.off || !sent)
		goto out;
	prod = new_producer(kc, &d);
	cons = new_results_consumer(kc, o);
	if (!prod || !cons ||
	    bk_kconf_partition_count(cons, bk_kconf_topic(kc, BK_TOPIC_COMMANDS), 30000, &np, err,
				     sizeof(err)) < 0)
		goto out;
	/* offsets start at 0 on the fresh topic: arrival times by [partition][offset] */
	if (!(arr = calloc((size_t)np, sizeof(*arr))))
		goto out;
	for (int p = 0; p < np; p++)
		if (!(arr[p] = calloc(all, sizeof(int64_t))))
			goto out;
	for (size_t i = 0; i < all; i++)
		d.part[i] = -1;
	const char *topic = bk_kconf_topic(kc, BK_TOPIC_COMMANDS);
	const char *dlq = bk_kconf_topic(kc, BK_TOPIC_DLQ);
	long long got = 0, dl = 0;
	/* warm-up (untimed): the processor's first transaction pays for metadata and
	 * connections */
	int64_t tw = mono_us();
	for (size_t i = 0; i < warm; i++) {
		sent[i] = mono_us();
		if (produce(prod, topic, &s.v[i], i, sk, o->key_id) < 0)
			goto out;
	}
	while (got + dl < (long long)warm && mono_us() - tw < o->timeout_ms * 1000) {
		rd_kafka_poll(prod, 0);
		take_result(cons, dlq, arr, np, all, &got, &dl);
	}
	if (warm)
		printf("warmup=%zu results=%lld seconds=%.3f\n", warm, got + dl,
		       (double)(mono_us() - tw) / 1e6);
	size_t next = warm;
	int64_t t0 = mono_us(), idle = t0;
	long long before = got + dl;
	while (got + dl < (long long)all) {
		int64_t now = mono_us();
		size_t due = warm + (size_t)((now - t0) * o->rate / 1000000) + 1;
		if (due > all)
			due = all;
		for (; next < due; next++) {
			sent[next] = mono_us();
			if (produce(prod, topic, &s.v[next], next, sk, o->key_id) < 0)
				goto out;
		}
		rd_kafka_poll(prod, 0);
		take_result(cons, dlq, arr, np, all, &got, &dl);
		if (got + dl != before) {
			before = got + dl;
			idle = mono_us();
		} else if (next == all && mono_us() - idle > o->timeout_ms * 1000)
			break;
	}
	double span = (double)(sent[all - 1] - sent[warm]) / 1e6;
	rd_kafka_flush(prod, 10000);
	if (!(lat = malloc(want * sizeof(long long))))
		goto out;
	size_t nl = 0;
	for (size_t i = warm; i < all; i++)
		if (d.part[i] >= 0 && d.part[i] < np && d.off[i] >= 0 && d.off[i] < (int64_t)all &&
		    arr[d.part[i]][d.off[i]])
			lat[nl++] = arr[d.part[i]][d.off[i]] - sent[i];
	qsort(lat, nl, sizeof(*lat), cmp_ll);
	double sum = 0;
	for (size_t i = 0; i < nl; i++)
		sum += (double)lat[i];
#define PCT(q) (nl ? (double)lat[(size_t)((double)(nl - 1) * (q))] / 1000.0 : 0.0)
	printf("sent=%zu send_seconds=%.3f send_rate=%.0f dlq=%lld matched=%zu p50_ms=%.1f "
	       "p95_ms=%.1f p99_ms=%.1f max_ms=%.1f mean_ms=%.1f min_ms=%.1f\n",
	       want, span, (double)(want - 1) / span, dl, nl, PCT(0.50), PCT(0.95), PCT(0.99),
	       PCT(1.0), nl ? sum / (double)nl / 1000.0 : 0.0, PCT(0.0));
#undef PCT
	rc = nl == want ? 0 : 3;
out:
	if (cons)
		rd_kafka_destroy(cons);
	if (prod)
		rd_kafka_destroy(prod);
	if (arr)
		for (int p = 0; p < np; p++)
			free(arr[p]);
	free(arr);
	free(lat);
	free(sent);
	free(d.part);
	free(d.off);
	stream_free(&s);
	return rc;
}

/* Wait for the delivery report of command i, then for its answer; arrival time or -1. */
static int64_t await_answer(rd_kafka_t *prod, rd_kafka_t *cons, const char *dlq, dr_state *d,
			    size_t i, int64_t **arr, int np, size_t cap, long long *got,
			    long long *dl, long long timeout_ms)
{
	int64_t t0 = mono_us();
	long long dl0 = *dl;
	while (mono_us() - t0 < timeout_ms * 1000) {
		rd_kafka_poll(prod, 0);
		take_result(cons, dlq, arr, np, cap, got, dl);
		if (*dl != dl0) /* a DLQ record is the answer of the only command in flight */
			return mono_us();
		if (d->part[i] >= 0 && d->part[i] < np && d->off[i] >= 0 &&
		    d->off[i] < (int64_t)cap && arr[d->part[i]][d->off[i]])
			return arr[d->part[i]][d->off[i]];
		if (d->failed)
			return -1;
	}
	return -1;
}

static int run_sequential(bk_kconf *kc, const opts *o, const uint8_t *sk)
{
	stream s = {0};
	size_t warm = (size_t)o->warmup, want = (size_t)o->n, all = warm + want;
	dr_state d = {0};
	int64_t **arr = NULL;
	long long *lat = NULL;
	rd_kafka_t *prod = NULL, *cons = NULL;
	int np = 0, rc = 3;
	char err[512];
	if (load_stream(o->file, all, &s) < 0) {
		rc = 1;
		goto out;
	}
	if (s.n < all) {
		fprintf(stderr,
			"bench_commands: sequential: the stream has %zu commands, %zu needed\n",
			s.n, all);
		rc = 2;
		goto out;
	}
	d.part = malloc(all * sizeof(int32_t));
	d.off = malloc(all * sizeof(int64_t));
	lat = malloc(all * sizeof(long long));
	if (!d.part || !d.off || !lat)
		goto out;
	prod = new_producer(kc, &d);
	cons = new_results_consumer(kc, o);
	if (!prod || !cons ||
	    bk_kconf_partition_count(cons, bk_kconf_topic(kc, BK_TOPIC_COMMANDS), 30000, &np, err,
				     sizeof(err)) < 0)
		goto out;
	if (!(arr = calloc((size_t)np, sizeof(*arr))))
		goto out;
	for (int p = 0; p < np; p++)
		if (!(arr[p] = calloc(all, sizeof(int64_t))))
			goto out;
	for (size_t i = 0; i < all; i++)
		d.part[i] = -1;
	const char *topic = bk_kconf_topic(kc, BK_TOPIC_COMMANDS);
	const char *dlq = bk_kconf_topic(kc, BK_TOPIC_DLQ);
	long long got = 0, dl = 0;
	size_t nl = 0;
	int64_t t0 = 0;
	for (size_t i = 0; i < all; i++) {
		if (i == warm)
			t0 = mono_us();
		int64_t sent = mono_us();
		if (produce(prod, topic, &s.v[i], i, sk, o->key_id) < 0)
			goto out;
		int64_t at =
		    await_answer(prod, cons, dlq, &d, i, arr, np, all, &got, &dl, o->timeout_ms);
		if (at < 0) {
			fprintf(stderr, "bench_commands: sequential: no answer to command %zu\n",
				i);
			goto out;
		}
		if (i >= warm)
			lat[nl++] = at - sent;
	}
	double span = (double)(mono_us() - t0) / 1e6;
	qsort(lat, nl, sizeof(*lat), cmp_ll);
	double sum = 0;
	for (size_t i = 0; i < nl; i++)
		sum += (double)lat[i];
#define PCT(q) (nl ? (double)lat[(size_t)((double)(nl - 1) * (q))] / 1000.0 : 0.0)
	printf("sequential=%zu seconds=%.3f dlq=%lld p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f "
	       "max_ms=%.1f mean_ms=%.1f min_ms=%.1f\n",
	       nl, span, dl, PCT(0.50), PCT(0.90), PCT(0.99), PCT(1.0),
	       nl ? sum / (double)nl / 1000.0 : 0.0, PCT(0.0));
#undef PCT
	rc = nl == want ? 0 : 3;
out:
	if (cons)
		rd_kafka_destroy(cons);
	if (prod)
		rd_kafka_destroy(prod);
	if (arr)
		for (int p = 0; p < np; p++)
			free(arr[p]);
	free(arr);
	free(lat);
	free(d.part);
	free(d.off);
	stream_free(&s);
	return rc;
}

int main(int argc, char **argv)
{
	opts o = {.timeout_ms = 60000, .rate = 1000, .seconds = 25, .to = -1};
	char err[512];
	bk_kconf *kc = bk_kconf_new();
	if (argc < 2 || argv[1][0] == '-') {
		fputs(usage_text, stderr);
		return 2;
	}
	o.mode = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int r = bk_kconf_take_arg(kc, argc, argv, &i, err, sizeof(err));
		if (r == 1)
			continue;
		if (r < 0 || !v) {
			fprintf(stderr, "bench_commands: %s\n%s", r < 0 ? err : a, usage_text);
			return 2;
		}
		i++;
		if (!strcmp(a, "--file"))
			o.file = v;
		else if (!strcmp(a, "--key"))
			o.key_path = v;
		else if (!strcmp(a, "--key-id"))
			o.key_id = v;
		else if (!strcmp(a, "--n"))
			o.n = atoll(v);
		else if (!strcmp(a, "--from"))
			o.from = atoll(v);
		else if (!strcmp(a, "--to"))
			o.to = atoll(v);
		else if (!strcmp(a, "--skip"))
			o.skip = atoll(v);
		else if (!strcmp(a, "--warmup"))
			o.warmup = atoll(v);
		else if (!strcmp(a, "--rate"))
			o.rate = atoll(v);
		else if (!strcmp(a, "--seconds"))
			o.seconds = atoll(v);
		else if (!strcmp(a, "--timeout-ms"))
			o.timeout_ms = atoll(v);
		else if (!strcmp(a, "-C") && o.n_cons_kv < 16)
			o.cons_kv[o.n_cons_kv++] = v;
		else {
			fprintf(stderr, "bench_commands: unknown option %s\n%s", a, usage_text);
			return 2;
		}
	}
	uint8_t sk[BK_SK_LEN];
	const uint8_t *skp = NULL;
	if (o.key_path) {
		if (!o.key_id || load_key(o.key_path, sk) < 0) {
			fprintf(stderr, "bench_commands: --key needs a key file and --key-id\n");
			return 2;
		}
		skp = sk;
	}
	int rc;
	if (!strcmp(o.mode, "preload") && o.file)
		rc = run_preload(kc, &o, skp);
	else if (!strcmp(o.mode, "count") && o.n > 0)
		rc = run_count(kc, &o);
	else if (!strcmp(o.mode, "latency") && o.file && o.rate > 0 && o.seconds > 0)
		rc = run_latency(kc, &o, skp);
	else if (!strcmp(o.mode, "sequential") && o.file && o.n > 0)
		rc = run_sequential(kc, &o, skp);
	else {
		fputs(usage_text, stderr);
		rc = 2;
	}
	bk_kconf_destroy(kc);
	return rc;
}
