/*
 * bench_consume.c - the baseline of the replay benchmark: consume a topic from its start
 * to its end with the same reader bookingctl replay uses (lib/logread) and do nothing
 * with the records but count them. Prints records, bytes, seconds and rates.
 *   bench_consume --brokers-file F [--topic-prefix P]
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kconf.h"
#include "logread.h"

typedef struct count {
	long long records, bytes;
} count;

static int on_record(void *opaque, const rd_kafka_message_t *m)
{
	count *c = opaque;
	c->records++;
	c->bytes += (long long)m->len;
	return 0;
}

int main(int argc, char **argv)
{
	char err[512];
	bk_kconf *kc = bk_kconf_new();
	for (int i = 1; i < argc; i++)
		if (bk_kconf_take_arg(kc, argc, argv, &i, err, sizeof(err)) != 1) {
			fprintf(stderr, "bench_consume: bad argument %s\n", argv[i]);
			return 2;
		}
	rd_kafka_t *rk;
	if (bk_logread_consumer(kc, &rk, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_consume: %s\n", err);
		return 3;
	}
	bk_logread_opts o = {
	    .topic = bk_kconf_topic(kc, BK_TOPIC_EVENTS), .partition = -1, .to = -1};
	count c = {0};
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (bk_logread(rk, &o, on_record, &c, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_consume: %s\n", err);
		return 3;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("records=%lld bytes=%lld seconds=%.3f records_per_s=%.0f MB_per_s=%.1f\n", c.records,
	       c.bytes, s, (double)c.records / s, (double)c.bytes / s / 1e6);
	rd_kafka_destroy(rk);
	bk_kconf_destroy(kc);
	return 0;
}
