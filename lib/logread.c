/*
 * logread.c - bounded (or following) reads of whole partitions with an assigned,
 * group-less consumer. Ends are the high watermarks taken when the read starts, so a
 * read terminates even while writers keep appending.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kconf.h"
#include "logread.h"

int bk_logread_consumer(const bk_kconf *kc, rd_kafka_t **ret_rk, char *errstr, size_t errstr_size)
{
	char group[64];
	snprintf(group, sizeof(group), "bookingctl-reader-%ld", (long)getpid());
	const char *defaults[] = {"group.id",
				  group,
				  "enable.auto.commit",
				  "false",
				  "enable.partition.eof",
				  "true",
				  "isolation.level",
				  "read_committed",
				  "auto.offset.reset",
				  "earliest",
				  "fetch.wait.max.ms", /* --follow shows a record when it lands */
				  "10",
				  NULL};
	return bk_kconf_new_handle(kc, BK_KCONF_CONSUMER, defaults, ret_rk, errstr, errstr_size);
}

int bk_logread(rd_kafka_t *rk, const bk_logread_opts *o, bk_logread_fn fn, void *opaque,
	       int64_t *ret_records, char *errstr, size_t errstr_size)
{
	int timeout = o->timeout_ms > 0 ? o->timeout_ms : 10000;
	int nparts = 1;
	if (o->partition < 0 &&
	    bk_kconf_partition_count(rk, o->topic, timeout, &nparts, errstr, errstr_size) < 0)
		return -1;
	int32_t first = o->partition < 0 ? 0 : o->partition;
	int64_t *end = calloc((size_t)nparts, sizeof(*end));
	bool *done = calloc((size_t)nparts, sizeof(*done));
	rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(nparts);
	int rc = -1, open = 0;
	int64_t delivered = 0;
	if (!end || !done || !tp) {
		snprintf(errstr, errstr_size, "out of memory");
		goto out;
	}
	for (int i = 0; i < nparts; i++) {
		int32_t p = first + i;
		int64_t lo, hi;
		if (bk_kconf_watermarks(rk, o->topic, p, timeout, &lo, &hi, errstr, errstr_size) <
		    0)
			goto out;
		if (o->refuse_truncated && lo > o->from) {
			snprintf(errstr, errstr_size,
				 "%s [%d]: the log starts at offset %lld, not %lld: history was "
				 "deleted (retention), refusing to read a truncated log",
				 o->topic, p, (long long)lo, (long long)o->from);
			goto out;
		}
		end[i] = o->to >= 0 ? (o->to < hi ? o->to : hi) : hi;
		int64_t start = o->from > lo ? o->from : lo;
		done[i] = !o->follow && start >= end[i];
		if (!done[i]) {
			rd_kafka_topic_partition_list_add(tp, o->topic, p)->offset = start;
			open++;
		}
	}
	if (open == 0) {
		rc = 0;
		goto out;
	}
	rd_kafka_resp_err_t err = rd_kafka_assign(rk, tp);
	if (err) {
		snprintf(errstr, errstr_size, "%s: assign: %s", o->topic, rd_kafka_err2str(err));
		goto out;
	}
	rc = 0;
	while (open > 0 && !(o->stop && *o->stop)) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		bool idle = !m || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
		if (idle && o->idle && o->idle(opaque) < 0) {
			snprintf(errstr, errstr_size, "stopped by the record handler");
			if (m)
				rd_kafka_message_destroy(m);
			rc = -1;
			break;
		}
		if (!m)
			continue;
		if (m->err) {
			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				/* the end may be a transaction marker, never delivered itself */
				int j = m->partition - first;
				if (!o->follow && j >= 0 && j < nparts && !done[j] &&
				    m->offset >= end[j]) {
					done[j] = true;
					open--;
				}
			} else {
				snprintf(errstr, errstr_size, "%s [%d]: %s", o->topic, m->partition,
					 rd_kafka_message_errstr(m));
				rd_kafka_message_destroy(m);
				rc = -1;
				break;
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		int i = m->partition - first;
		if (i < 0 || i >= nparts || done[i]) {
			rd_kafka_message_destroy(m);
			continue;
		}
		if (!o->follow && m->offset >= end[i]) {
			done[i] = true;
			open--;
			rd_kafka_message_destroy(m);
			continue;
		}
		int r = fn(opaque, m);
		delivered++;
		if (!o->follow && m->offset + 1 >= end[i]) {
			done[i] = true;
			open--;
		}
		rd_kafka_message_destroy(m);
		if (r < 0) {
			snprintf(errstr, errstr_size, "stopped by the record handler");
			rc = -1;
			break;
		}
		if (r > 0)
			break;
	}
	rd_kafka_assign(rk, NULL);
out:
	if (ret_records)
		*ret_records = delivered;
	if (tp)
		rd_kafka_topic_partition_list_destroy(tp);
	free(end);
	free(done);
	return rc;
}

/* Kafka's murmur2 (seed 0x9747b28c), as the Java client and librdkafka compute it. */
static uint32_t murmur2(const uint8_t *data, size_t len)
{
	const uint32_t m = 0x5bd1e995;
	uint32_t h = 0x9747b28c ^ (uint32_t)len;
	while (len >= 4) {
		uint32_t k = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
			     (uint32_t)data[3] << 24;
		k *= m;
		k ^= k >> 24;
		k *= m;
		h *= m;
		h ^= k;
		data += 4;
		len -= 4;
	}
	switch (len) {
	case 3:
		h ^= (uint32_t)data[2] << 16;
		/* fall through */
	case 2:
		h ^= (uint32_t)data[1] << 8;
		/* fall through */
	case 1:
		h ^= data[0];
		h *= m;
	}
	h ^= h >> 13;
	h *= m;
	h ^= h >> 15;
	return h;
}

int32_t bk_kafka_partition_of(const void *key, size_t n, int32_t partitions)
{
	return (int32_t)((murmur2(key, n) & 0x7fffffff) % (uint32_t)partitions);
}
