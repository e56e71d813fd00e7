/*
 * startup.h - the start-up checks both daemons share (docs/operations.md, "Start-up"):
 * wait for the Kafka cluster, retrying with one log line per attempt window, up to
 * --timeout-ms; then check that the topics exist with the expected partition counts.
 * A misspelled --topic-prefix is refused here instead of leaving a daemon idle on
 * auto-created topics. And, while running, the watch that says in one line that Kafka
 * has been unreachable for a while (the pipeline is stalled) and again when it is back.
 */
#ifndef BK_STARTUP_H
#define BK_STARTUP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "bk_err.h"

/* One topic a daemon needs. */
typedef struct bk_startup_topic {
	const char *name;   /* full name (prefix included) */
	const char *option; /* the option that names it ("--events-topic"), for messages */
	bool same_count;    /* must have the partition count of the other same_count topics */
	int count;	    /* out: its partition count */
} bk_startup_topic;

/* bk_startup_check's outcomes; the daemons map them to their exit codes. */
typedef enum bk_startup_rc {
	BK_STARTUP_OK = 0,
	BK_STARTUP_BAD_TOPICS = -1,  /* missing, in error or mismatched counts: exit 2 */
	BK_STARTUP_UNREACHABLE = -2, /* no broker answered within timeout_ms: exit 3 */
	BK_STARTUP_STOPPED = -3,     /* *stop became non-zero while waiting: exit 0 */
} bk_startup_rc;

/* The retry window: one metadata attempt (and at most one log line) per window. */
#define BK_STARTUP_WINDOW_MS 5000

/*
 * Wait until the cluster answers a metadata request (all topics: the query never
 * auto-creates one), at most timeout_ms; each failed window logs one warn line
 * (`msg="kafka unreachable at start: retrying"` with attempt, elapsed_ms, timeout_ms,
 * err). Then check every topic of ts[0..n) (count filled in). stop (may be NULL) is
 * polled between attempts (a signal handler's flag). errstr: the reason, one line,
 * naming the topics and options or the timeout.
 */
bk_startup_rc bk_startup_check(rd_kafka_t *rk, bk_startup_topic *ts, int n, int timeout_ms,
			       volatile sig_atomic_t *stop, char *errstr,
			       size_t errstr_size) BK_MUSTCHECK;

/* The exit code a daemon gives a start-up outcome: 0, 2 or 3 (docs/operations.md). */
int bk_startup_exit_code(bk_startup_rc rc);

/*
 * The stall watch: librdkafka's statistics (statistics.interval.ms, set by
 * bk_kwatch_conf) say once a second whether any broker connection is up. When none has
 * been up for BK_KWATCH_STALL_MS, one warn line `msg="kafka unreachable: pipeline
 * stalled"` (seconds, partitions stalled); when one is up again, one info line
 * `msg="kafka reachable again: pipeline resumes"` (down seconds). One watch per
 * process, fed from the handle's poll thread.
 */
#define BK_KWATCH_STALL_MS 10000

typedef struct bk_kwatch {
	const char *program;
	int64_t down_since_ms; /* 0: a broker is up */
	bool reported;	       /* the stall line was logged */
	uint64_t stalls;       /* stalls reported so far */
	int partitions;	       /* assigned when the brokers went down (a group session
				* that times out meanwhile revokes them) */
} bk_kwatch;

/* Ask for statistics once a second on conf and route them to bk_kwatch_stats through
 * cb (the program's stats callback, which has the opaque). 0, or -1 + errstr. */
int bk_kwatch_conf(rd_kafka_conf_t *conf,
		   int (*cb)(rd_kafka_t *rk, char *json, size_t json_len, void *opaque),
		   char *errstr, size_t errstr_size) BK_MUSTCHECK;

/* One statistics document (the stats callback's json): updates w, logs a stall or a
 * recovery; partitions: how many the process has assigned now (the stall line names
 * those it had when Kafka went away). */
void bk_kwatch_stats(bk_kwatch *w, const char *json, size_t json_len, int partitions);

/* Whether a statistics document shows a broker connection in state UP. */
bool bk_kwatch_any_up(const char *json, size_t json_len);

/* "0,1,5-9": a partition list for a summary log line (sorted here, in place; truncated
 * with ",..." when buf is too small). Returns buf. */
const char *bk_part_list(int32_t *ids, size_t n, char *buf, size_t bufsz);

#endif
