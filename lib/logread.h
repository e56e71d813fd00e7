/*
 * logread.h - read a topic's partitions between two offsets (or follow them), handing
 * every record to a callback in per-partition order. Used by replay, verify and rebuild:
 * the readers of the log that are not consumer-group members.
 */
#ifndef BK_LOGREAD_H
#define BK_LOGREAD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "bk_err.h"
#include "kconf.h"

/* A consumer for bk_logread: read_committed, no auto commit, partition EOF events on,
 * a throw-away group id. *ret_rk is the caller's (rd_kafka_destroy). */
int bk_logread_consumer(const bk_kconf *kc, rd_kafka_t **ret_rk, char *errstr,
			size_t errstr_size) BK_MUSTCHECK;

/* Called for each record; return 0 to go on, 1 to stop reading cleanly, -1 to abort. */
typedef int (*bk_logread_fn)(void *opaque, const rd_kafka_message_t *m);
/* Called when the reader has nothing at hand: a poll returned no record, or a partition
 * reached the end of what is written. A caller that holds records back (replay batches
 * them) writes them out here, so --follow output is not delayed. 0 to go on, -1 to abort. */
typedef int (*bk_logread_idle_fn)(void *opaque);

typedef struct bk_logread_opts {
	const char *topic;
	int32_t partition;	     /* -1: every partition of the topic */
	int64_t from;		     /* first offset (>= 0); 0 = the beginning */
	int64_t to;		     /* stop before this offset; -1 = the high watermark at start */
	bool follow;		     /* keep reading past the end until *stop */
	bool refuse_truncated;	     /* -1 + error when a partition's low watermark is above from */
	volatile sig_atomic_t *stop; /* may be NULL */
	int timeout_ms;		     /* metadata and watermark queries */
	bk_logread_idle_fn idle;     /* may be NULL; gets the callback's opaque */
} bk_logread_opts;

/*
 * Read with `consumer` (a consumer handle, not subscribed; it is assigned here and
 * unassigned before returning). Returns 0 when every partition reached its end (or the
 * callback or *stop said stop), -1 with errstr on a Kafka error or when the callback
 * returned -1. ret_records, when not NULL, gets the number of records delivered.
 */
int bk_logread(rd_kafka_t *consumer, const bk_logread_opts *o, bk_logread_fn fn, void *opaque,
	       int64_t *ret_records, char *errstr, size_t errstr_size) BK_MUSTCHECK;

/* The partition Kafka's murmur2 partitioners (murmur2_random, Java's default) give a key. */
int32_t bk_kafka_partition_of(const void *key, size_t n, int32_t partitions);

#endif
