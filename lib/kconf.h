/*
 * kconf.h - the Kafka configuration every program shares, kcat-style: -b brokers,
 * repeatable -X key=value, --brokers-file (the list `bookingctl devbroker` writes), and
 * the topic names (SPEC defaults, --<kind>-topic, --topic-prefix). It builds
 * rd_kafka_conf_t objects and answers metadata questions (partition counts,
 * watermarks). Errors come back as -1 plus errstr; nothing here prints or exits.
 */
#ifndef BK_KCONF_H
#define BK_KCONF_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "bk_err.h"

/* The project's topics. */
typedef enum bk_topic {
	BK_TOPIC_COMMANDS,  /* booking.commands */
	BK_TOPIC_EVENTS,    /* booking.events (the system of record) */
	BK_TOPIC_RESULTS,   /* booking.command-results */
	BK_TOPIC_DLQ,	    /* booking.dlq */
	BK_TOPIC_RULES,	    /* booking.rules (compacted on a real cluster) */
	BK_TOPIC_SNAPSHOTS, /* booking.snapshots (compacted on a real cluster; a cache) */
	BK_TOPIC_COUNT
} bk_topic;

/* SPEC default name of a topic ("booking.events"); NULL when out of range. */
const char *bk_topic_default_name(bk_topic t);
/* Long option that renames a topic, without dashes ("events-topic"); NULL when out of
 * range. */
const char *bk_topic_option(bk_topic t);

/* What a configuration is built for. Producers get partitioner=murmur2_random. */
typedef enum bk_kconf_role {
	BK_KCONF_PRODUCER,
	BK_KCONF_CONSUMER,
	BK_KCONF_ADMIN, /* metadata and watermark queries only */
} bk_kconf_role;

/* Opaque: the options gathered from the command line. */
typedef struct bk_kconf bk_kconf;

/* A new empty configuration (SPEC topic names, no brokers, no -X). NULL on OOM.
 * Free with bk_kconf_destroy. */
bk_kconf *bk_kconf_new(void);
/* Accepts NULL. */
void bk_kconf_destroy(bk_kconf *kc);

/*
 * The command-line options, for a program's own argument loop. Looks at argv[*idx]:
 * returns 1 when it was one of ours (consumed with its value; *idx then points at the
 * last argument consumed), 0 when it is not ours (*idx untouched), -1 on a bad value
 * (errstr says which option and why). Recognized forms:
 *   -b LIST, -bLIST, --brokers LIST, --brokers=LIST
 *   -X key=value, -Xkey=value          (repeatable; checked against librdkafka now)
 *   --brokers-file PATH                 (read when a configuration is built)
 *   --topic-prefix PFX                  (prefixes every topic name, also renamed ones)
 *   --commands-topic, --events-topic, --results-topic, --dlq-topic, --rules-topic,
 *   --snapshots-topic NAME
 * Each long option also takes the --opt=value form.
 */
int bk_kconf_take_arg(bk_kconf *kc, int argc, char **argv, int *idx, char *errstr,
		      size_t errstr_size) BK_MUSTCHECK;

/* Help text for the options above (static, ends with a newline). */
const char *bk_kconf_usage(void);

/* The setters behind the options (for getopt users); each returns 0 or -1 + errstr. */
int bk_kconf_set_brokers(bk_kconf *kc, const char *list, char *errstr,
			 size_t errstr_size) BK_MUSTCHECK;
int bk_kconf_set_brokers_file(bk_kconf *kc, const char *path, char *errstr,
			      size_t errstr_size) BK_MUSTCHECK;
/* "key=value"; unknown keys and invalid values are rejected with librdkafka's reason. */
int bk_kconf_set_kv(bk_kconf *kc, const char *key_eq_value, char *errstr,
		    size_t errstr_size) BK_MUSTCHECK;
int bk_kconf_set(bk_kconf *kc, const char *key, const char *value, char *errstr,
		 size_t errstr_size) BK_MUSTCHECK;
int bk_kconf_set_topic(bk_kconf *kc, bk_topic t, const char *name, char *errstr,
		       size_t errstr_size) BK_MUSTCHECK;
int bk_kconf_set_topic_prefix(bk_kconf *kc, const char *prefix, char *errstr,
			      size_t errstr_size) BK_MUSTCHECK;

/* Full name of a topic (prefix + name); owned by kc, valid until the next setter call
 * or destroy. */
const char *bk_kconf_topic(const bk_kconf *kc, bk_topic t);

/*
 * Read a bootstrap file: the first non-empty line, whitespace trimmed. On success
 * *ret_list is a malloc'd string the caller frees. Returns 0 or -1 + errstr.
 */
int bk_kconf_read_brokers_file(const char *path, char **ret_list, char *errstr,
			       size_t errstr_size) BK_MUSTCHECK;

/*
 * Build an rd_kafka_conf_t for role. Applied in order: `defaults` (a NULL-terminated
 * array of key, value pairs the program wants, e.g. {"enable.idempotence", "true",
 * NULL}; may be NULL), the brokers (-b or --brokers-file, read now), the environment's
 * BOOKING_KAFKA_<PROP> variables (BOOKING_KAFKA_SASL_PASSWORD: sasl.password; an error
 * names the variable, never its value), every -X in command-line order (a property
 * only consumers use is left out of a producer's configuration and the other way round,
 * so one -X list serves every client of a program), then what the role requires
 * (producers: partitioner murmur2_random, SPEC §3; a -X partitioner other than that is an error).
 * Also routes librdkafka's own log lines through lib/log.h. Fails when no broker list was given
 * (none of -b, --brokers-file, -X bootstrap.servers, defaults). On success *ret_conf is
 * the caller's (hand it to rd_kafka_new or rd_kafka_conf_destroy it); on failure
 * nothing is allocated.
 */
int bk_kconf_build(const bk_kconf *kc, bk_kconf_role role, const char *const *defaults,
		   rd_kafka_conf_t **ret_conf, char *errstr, size_t errstr_size) BK_MUSTCHECK;

/* bk_kconf_build followed by rd_kafka_new; *ret_rk is the caller's to
 * rd_kafka_destroy. */
int bk_kconf_new_handle(const bk_kconf *kc, bk_kconf_role role, const char *const *defaults,
			rd_kafka_t **ret_rk, char *errstr, size_t errstr_size) BK_MUSTCHECK;

/* The log callback bk_kconf_build installs: librdkafka lines as logfmt
 * (msg="librdkafka" fac=... client=... text="..."); connection failures and the other
 * errors librdkafka retries by itself (facilities FAIL, ERROR) at warn. Thread-safe. */
void bk_kconf_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* A header of a consumed record, the last one of that name: 0 with its value in *ret_v,
 * *ret_n (may be NULL for an empty value), or -1 when m has none (*ret_v NULL, *ret_n 0). */
int bk_kconf_header(const rd_kafka_message_t *m, const char *name, const void **ret_v,
		    size_t *ret_n);
/* A header holding a decimal integer (as the processor writes src-offset): 0 with *ret, or
 * -1 when absent, empty or not an integer. */
int bk_kconf_header_int(const rd_kafka_message_t *m, const char *name, int64_t *ret);

/*
 * Partition count of an existing topic (asks for the whole cluster's metadata, so
 * the query itself never auto-creates the topic). Returns 0 and *ret_count, or -1 +
 * errstr (broker unreachable within timeout_ms, topic missing, topic in error).
 */
int bk_kconf_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, int *ret_count,
			     char *errstr, size_t errstr_size) BK_MUSTCHECK;

/*
 * SPEC §5: commands, events and command-results must have the same partition count.
 * Returns 0 and *ret_partitions (the common count), or -1 with an errstr naming each
 * topic and its count (or why it could not be read).
 */
int bk_kconf_check_partitions(rd_kafka_t *rk, const bk_kconf *kc, int timeout_ms,
			      int *ret_partitions, char *errstr, size_t errstr_size) BK_MUSTCHECK;

/*
 * Low and high watermarks of one partition, asked of the broker (not cached). Returns 0
 * and both offsets, or -1 + errstr.
 */
int bk_kconf_watermarks(rd_kafka_t *rk, const char *topic, int32_t partition, int timeout_ms,
			int64_t *ret_low, int64_t *ret_high, char *errstr,
			size_t errstr_size) BK_MUSTCHECK;

/*
 * librdkafka before 2.3.1 (issue #4684, fixed by PR #4671): its main thread spins on
 * the clock whenever its next timer is less than 1 ms away, and a transactional
 * producer arms a 1 ms timer each time partitions join a transaction - a quarter of a
 * core for a busy producer. On such versions this lowers the priority of the client's
 * main thread (nice +10, that thread only) so the spin gives way to real work; on newer
 * versions it does nothing. Call on the conf before rd_kafka_new. 0, or -1 + errstr.
 */
int bk_kconf_tame_main_thread(rd_kafka_conf_t *conf, char *errstr, size_t errstr_size) BK_MUSTCHECK;

/*
 * Make the producer rk know the topics' partitions before it first produces to them:
 * a metadata request per topic, answered within timeout_ms. Without it the first
 * record to a topic waits for librdkafka's once-a-second topic scan (about 1 s per
 * newly seen topic, and a transaction's first commit waits for every one of them).
 * Returns 0, or -1 + errstr (broker unreachable, topic missing or in error).
 */
int bk_kconf_warm_topics(rd_kafka_t *rk, const char *const *topics, int n, int timeout_ms,
			 char *errstr, size_t errstr_size) BK_MUSTCHECK;

#endif
