/*
 * kafka_committed.c - test helper: the offsets a consumer group has committed to Kafka,
 * one line per partition ("PARTITION OFFSET", -1001 when none) and a last line
 * "total N" (the sum of the committed ones).
 * usage: kafka_committed --brokers-file PATH GROUP TOPIC PARTITIONS
 */
#include <stdio.h>
#include <stdlib.h>

#include "kconf.h"

int main(int argc, char **argv)
{
	char err[512];
	bk_kconf *kc = bk_kconf_new();
	int i = 1;
	if (!kc || argc != 6 || bk_kconf_take_arg(kc, argc, argv, &i, err, sizeof(err)) != 1) {
		fprintf(stderr,
			"usage: kafka_committed --brokers-file PATH GROUP TOPIC PARTITIONS\n");
		bk_kconf_destroy(kc);
		return 2;
	}
	const char *group = argv[3], *topic = argv[4];
	int n = atoi(argv[5]);
	const char *defaults[] = {"group.id", group, "enable.auto.commit", "false", NULL};
	rd_kafka_t *rk = NULL;
	if (n < 1 ||
	    bk_kconf_new_handle(kc, BK_KCONF_CONSUMER, defaults, &rk, err, sizeof(err)) < 0) {
		fprintf(stderr, "kafka_committed: %s\n", n < 1 ? "bad PARTITIONS" : err);
		bk_kconf_destroy(kc);
		return 2;
	}
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
	for (int p = 0; p < n; p++)
		rd_kafka_topic_partition_list_add(l, topic, p);
	rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, 10000);
	long long total = 0;
	for (int k = 0; !e && k < l->cnt; k++) {
		printf("%d %lld\n", (int)l->elems[k].partition, (long long)l->elems[k].offset);
		if (l->elems[k].offset >= 0)
			total += l->elems[k].offset;
	}
	if (!e)
		printf("total %lld\n", total);
	else
		fprintf(stderr, "kafka_committed: %s\n", rd_kafka_err2str(e));
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_destroy(rk);
	bk_kconf_destroy(kc);
	return e ? 3 : 0;
}
