/*
 * startup.c - the daemons' shared start-up checks and the stall watch (startup.h).
 */
#include "startup.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fail(char *errstr, size_t errstr_size, const char *fmt, ...) BK_PRINTF(3, 4);
static void fail(char *errstr, size_t errstr_size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errstr, errstr_size, fmt, ap);
	va_end(ap);
}

/* The metadata of every topic, retried until timeout_ms. */
static bk_startup_rc wait_metadata(rd_kafka_t *rk, int timeout_ms, volatile sig_atomic_t *stop,
				   const struct rd_kafka_metadata **ret_md, char *errstr,
				   size_t errstr_size)
{
	const int64_t t0 = mono_ms();
	int64_t next_log = t0;
	int attempt = 0;
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
	for (;;) {
		if (stop && *stop)
			return BK_STARTUP_STOPPED;
		int64_t left = t0 + timeout_ms - mono_ms();
		if (left <= 0)
			break;
		attempt++;
		/* short attempts: a stop signal is seen within a second */
		err = rd_kafka_metadata(rk, 1, NULL, ret_md, (int)(left < 1000 ? left : 1000));
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			if ((*ret_md)->broker_cnt > 0) {
				if (attempt > 1)
					bk_logf(BK_LOG_INFO, "kafka reachable: starting",
						"attempts=%d elapsed_ms=%lld", attempt,
						(long long)(mono_ms() - t0));
				return BK_STARTUP_OK;
			}
			rd_kafka_metadata_destroy(*ret_md);
			err = RD_KAFKA_RESP_ERR__TRANSPORT;
		}
		int64_t now = mono_ms();
		if (now >= next_log && now - t0 < timeout_ms) { /* another attempt follows */
			bk_logf(BK_LOG_WARN, "kafka unreachable at start: retrying",
				"attempt=%d elapsed_ms=%lld timeout_ms=%d err=\"%s\"", attempt,
				(long long)(now - t0), timeout_ms, rd_kafka_err2str(err));
			next_log = now + BK_STARTUP_WINDOW_MS;
		}
		if (err != RD_KAFKA_RESP_ERR__TIMED_OUT && err != RD_KAFKA_RESP_ERR__TRANSPORT) {
			/* an answer that is not a timeout comes at once: do not spin */
			struct timespec ts = {0, 200 * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	fail(errstr, errstr_size,
	     "kafka unreachable: no broker answered within %d ms (--timeout-ms; last error: %s)",
	     timeout_ms, rd_kafka_err2str(err));
	return BK_STARTUP_UNREACHABLE;
}

bk_startup_rc bk_startup_check(rd_kafka_t *rk, bk_startup_topic *ts, int n, int timeout_ms,
			       volatile sig_atomic_t *stop, char *errstr, size_t errstr_size)
{
	const struct rd_kafka_metadata *md = NULL;
	bk_startup_rc rc = wait_metadata(rk, timeout_ms, stop, &md, errstr, errstr_size);
	if (rc != BK_STARTUP_OK)
		return rc;
	char missing[1024] = "", counts[1024] = "";
	size_t ml = 0, cl = 0;
	int same = -1;
	bool mismatch = false;
	for (int i = 0; i < n; i++) {
		const rd_kafka_metadata_topic_t *t = NULL;
		for (int k = 0; k < md->topic_cnt; k++)
			if (!strcmp(md->topics[k].topic, ts[i].name))
				t = &md->topics[k];
		ts[i].count = t && !t->err ? t->partition_cnt : 0;
		if (!t || t->err || t->partition_cnt < 1) {
			if (ml < sizeof(missing))
				ml += (size_t)snprintf(
				    missing + ml, sizeof(missing) - ml, "%s%s (%s, %s)",
				    ml ? ", " : "", ts[i].name,
				    t ? rd_kafka_err2str(t->err) : "does not exist", ts[i].option);
			continue;
		}
		if (cl < sizeof(counts))
			cl += (size_t)snprintf(counts + cl, sizeof(counts) - cl, "%s%s=%d",
					       cl ? " " : "", ts[i].name, ts[i].count);
		if (ts[i].same_count) {
			if (same >= 0 && same != ts[i].count)
				mismatch = true;
			same = ts[i].count;
		}
	}
	rd_kafka_metadata_destroy(md);
	char mis[1200] = "";
	if (mismatch)
		snprintf(mis, sizeof(mis),
			 "partition counts %s: the commands, events and results topics must have "
			 "the same partition count (SPEC §5)",
			 counts);
	if (ml) {
		fail(errstr, errstr_size,
		     "topics missing or unusable: %s; create them before starting (auto-created "
		     "topics would get the broker's default partition count), or check "
		     "--topic-prefix%s%s",
		     missing, mismatch ? "; " : "", mis);
		return BK_STARTUP_BAD_TOPICS;
	}
	if (mismatch) {
		fail(errstr, errstr_size, "%s", mis);
		return BK_STARTUP_BAD_TOPICS;
	}
	return BK_STARTUP_OK;
}

int bk_startup_exit_code(bk_startup_rc rc)
{
	switch (rc) {
	case BK_STARTUP_OK:
	case BK_STARTUP_STOPPED:
		return 0;
	case BK_STARTUP_BAD_TOPICS:
		return 2;
	case BK_STARTUP_UNREACHABLE:
		return 3;
	}
	return 1;
}

int bk_kwatch_conf(rd_kafka_conf_t *conf,
		   int (*cb)(rd_kafka_t *rk, char *json, size_t json_len, void *opaque),
		   char *errstr, size_t errstr_size)
{
	char why[256];
	if (rd_kafka_conf_set(conf, "statistics.interval.ms", "1000", why, sizeof(why)) !=
	    RD_KAFKA_CONF_OK) {
		fail(errstr, errstr_size, "statistics.interval.ms: %s", why);
		return -1;
	}
	rd_kafka_conf_set_stats_cb(conf, cb);
	return 0;
}

bool bk_kwatch_any_up(const char *json, size_t json_len)
{
	/* brokers' "state" is upper case (UP, DOWN, CONNECT, ...); the consumer group's
	 * "state" is lower case ("up"), and no other object has a "state" key */
	static const char key[] = "\"state\":\"UP\"";
	return memmem(json, json_len, key, sizeof(key) - 1) != NULL;
}

void bk_kwatch_stats(bk_kwatch *w, const char *json, size_t json_len, int partitions)
{
	int64_t now = mono_ms();
	if (bk_kwatch_any_up(json, json_len)) {
		if (w->reported)
			bk_logf(BK_LOG_INFO, "kafka reachable again: pipeline resumes",
				"program=%s down_s=%lld partitions=%d", w->program,
				(long long)((now - w->down_since_ms) / 1000), partitions);
		w->down_since_ms = 0;
		w->reported = false;
		return;
	}
	if (!w->down_since_ms) {
		w->down_since_ms = now;
		w->partitions = partitions;
		return;
	}
	if (!w->reported && now - w->down_since_ms >= BK_KWATCH_STALL_MS) {
		w->reported = true;
		w->stalls++;
		bk_logf(BK_LOG_WARN, "kafka unreachable: pipeline stalled",
			"program=%s seconds=%lld partitions_stalled=%d", w->program,
			(long long)((now - w->down_since_ms) / 1000),
			partitions > w->partitions ? partitions : w->partitions);
	}
}

static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return (x > y) - (x < y);
}

const char *bk_part_list(int32_t *ids, size_t n, char *buf, size_t bufsz)
{
	size_t at = 0;
	if (bufsz == 0)
		return buf;
	buf[0] = '\0';
	qsort(ids, n, sizeof(*ids), cmp_i32);
	for (size_t i = 0; i < n; i++) {
		if (at + 16 >= bufsz) {
			snprintf(buf + at, bufsz - at, ",...");
			break;
		}
		size_t j = i;
		while (j + 1 < n && ids[j + 1] == ids[j] + 1)
			j++;
		int k = j > i ? snprintf(buf + at, bufsz - at, "%s%d-%d", at ? "," : "",
					 (int)ids[i], (int)ids[j])
			      : snprintf(buf + at, bufsz - at, "%s%d", at ? "," : "", (int)ids[i]);
		at += (size_t)k;
		i = j;
	}
	return buf;
}
