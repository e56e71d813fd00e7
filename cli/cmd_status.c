/*
 * cmd_status.c - `bookingctl status`: how far the projector is behind, per partition of
 * booking.events: log end offset, the projector's checkpoint, lag in records and in
 * seconds (age of the oldest record not projected yet), plus the quarantined orders and
 * reported forks. --wait blocks until every partition is caught up. Exit codes: cmd.h.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd.h"
#include "kconf.h"
#include "pgutil.h"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: bookingctl status [-d CONNINFO] [Kafka options] [--format text|json]\n"
	    "                         [--wait [--timeout-ms MS]]\n"
	    "\n"
	    "Per partition of the events topic: the log end offset, the projector's checkpoint\n"
	    "(booking_proj.checkpoint), the lag in records and in seconds (age of the oldest\n"
	    "record not projected yet), then the quarantined orders and the forks reported.\n"
	    "\n"
	    "  -d, --dbname CONNINFO  libpq conninfo or URI (default: PG* variables)\n"
	    "      --format FMT       text (default, a table) or json: one object\n"
	    "                         {topic, partitions: [{partition, low, end, checkpoint,\n"
	    "                         lag, lag_seconds}], lag, quarantined: [{order_id,\n"
	    "                         events, status, reason}], forks}\n"
	    "      --wait             wait until every partition has lag 0\n"
	    "      --timeout-ms MS    with --wait: give up after MS ms, exit 1 (60000)\n"
	    "  -h, --help             this text\n"
	    "\n"
	    "exit status: 0 caught up or lagging without problems, 1 orders are quarantined\n"
	    "(or --wait timed out), 2 usage, 3 Kafka or PostgreSQL unreachable\n"
	    "\n"
	    "%s",
	    bk_kconf_usage());
}

typedef struct part {
	int64_t low, high, next, lag;
	double lag_s; /* -1: unknown */
} part;

/* Timestamps (ms) of the records at the checkpoints of lagging partitions. */
static void oldest_ages(rd_kafka_t *rk, const char *topic, part *ps, int n)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
	int want = 0;
	for (int i = 0; i < n; i++)
		if (ps[i].lag > 0) {
			int64_t at = ps[i].next < ps[i].low ? ps[i].low : ps[i].next;
			rd_kafka_topic_partition_list_add(l, topic, i)->offset = at;
			want++;
		}
	if (want && rd_kafka_assign(rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		struct timespec t0, t;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int got = 0;
		while (got < want) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			if (t.tv_sec - t0.tv_sec > 3)
				break;
			rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
			if (!m)
				continue;
			if (!m->err && m->partition >= 0 && m->partition < n &&
			    ps[m->partition].lag_s < 0) {
				int64_t ts = rd_kafka_message_timestamp(m, NULL);
				if (ts > 0) {
					struct timespec now;
					clock_gettime(CLOCK_REALTIME, &now);
					double age = (double)now.tv_sec +
						     (double)now.tv_nsec / 1e9 -
						     (double)ts / 1000.0;
					ps[m->partition].lag_s = age < 0 ? 0 : age;
				}
				got++;
			}
			rd_kafka_message_destroy(m);
		}
		rd_kafka_assign(rk, NULL);
	}
	rd_kafka_topic_partition_list_destroy(l);
}

typedef struct snapshot {
	part *ps;
	int n;
	int64_t total_lag;
	json_t *quarantined; /* array of {order_id, events, status} */
	long forks;
} snapshot;

static int take(rd_kafka_t *rk, PGconn *c, const char *topic, bool ages, snapshot *s, char *err,
		size_t errsz)
{
	int n;
	if (bk_kconf_partition_count(rk, topic, 10000, &n, err, errsz) < 0)
		return -1;
	s->ps = calloc((size_t)n, sizeof(part));
	s->n = n;
	s->total_lag = 0;
	if (!s->ps) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		s->ps[i].next = -1;
		s->ps[i].lag_s = -1;
		if (bk_kconf_watermarks(rk, topic, i, 10000, &s->ps[i].low, &s->ps[i].high, err,
					errsz) < 0)
			return -1;
	}
	const char *p[1] = {topic};
	PGresult *r = pgu_query(c,
				"select partition, next_offset from booking_proj.checkpoint where "
				"topic = $1",
				1, p, "read checkpoints", err, errsz);
	if (!r)
		return -2;
	for (int i = 0; i < PQntuples(r); i++) {
		int part_i = atoi(PQgetvalue(r, i, 0));
		if (part_i >= 0 && part_i < n)
			s->ps[part_i].next = strtoll(PQgetvalue(r, i, 1), NULL, 10);
	}
	PQclear(r);
	for (int i = 0; i < n; i++) {
		part *pp = &s->ps[i];
		int64_t from = pp->next < 0 ? pp->low : pp->next;
		pp->lag = pp->high > from ? pp->high - from : 0;
		s->total_lag += pp->lag;
	}
	if (ages)
		oldest_ages(rk, topic, s->ps, n);
	r = pgu_query(
	    c,
	    "select order_id, count(*), min(status), "
	    "(array_agg(reason order by seq nulls last, id))[1] from booking_proj.quarantine "
	    "where status in ('held', 'retry') group by order_id order by order_id",
	    0, NULL, "read quarantine", err, errsz);
	if (!r)
		return -2;
	s->quarantined = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(
		    s->quarantined,
		    json_pack("{s:s, s:I, s:s, s:s}", "order_id", PQgetvalue(r, i, 0), "events",
			      (json_int_t)atoll(PQgetvalue(r, i, 1)), "status", PQgetvalue(r, i, 2),
			      "reason", PQgetvalue(r, i, 3)));
	PQclear(r);
	r = pgu_query(c, "select count(*) from booking_proj.fork", 0, NULL, "read forks", err,
		      errsz);
	if (!r)
		return -2;
	s->forks = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

static void print(const snapshot *s, const char *topic, bool as_json)
{
	if (as_json) {
		json_t *parts = json_array();
		for (int i = 0; i < s->n; i++) {
			const part *p = &s->ps[i];
			json_array_append_new(
			    parts,
			    json_pack("{s:i, s:I, s:I, s:o, s:I, s:o}", "partition", i, "low",
				      (json_int_t)p->low, "end", (json_int_t)p->high, "checkpoint",
				      p->next < 0 ? json_null() : json_integer(p->next), "lag",
				      (json_int_t)p->lag, "lag_seconds",
				      p->lag_s < 0 ? json_null() : json_real(p->lag_s)));
		}
		json_t *j = json_pack("{s:s, s:o, s:I, s:O, s:i}", "topic", topic, "partitions",
				      parts, "lag", (json_int_t)s->total_lag, "quarantined",
				      s->quarantined, "forks", (int)s->forks);
		char *t = json_dumps(j, JSON_COMPACT);
		puts(t);
		free(t);
		json_decref(j);
		return;
	}
	printf("%-32s %9s %12s %12s %10s %10s\n", "TOPIC", "PARTITION", "END", "CHECKPOINT", "LAG",
	       "LAG_S");
	for (int i = 0; i < s->n; i++) {
		const part *p = &s->ps[i];
		char cp[24], ls[24];
		snprintf(cp, sizeof(cp), "%lld", (long long)p->next);
		snprintf(ls, sizeof(ls), "%.1f", p->lag_s < 0 ? 0.0 : p->lag_s);
		printf("%-32s %9d %12lld %12s %10lld %10s\n", topic, i, (long long)p->high,
		       p->next < 0 ? "-" : cp, (long long)p->lag,
		       p->lag > 0 && p->lag_s < 0 ? "?" : ls);
	}
	printf("total lag: %lld record(s)\n", (long long)s->total_lag);
	size_t nq = json_array_size(s->quarantined);
	printf("quarantined orders: %zu\n", nq);
	for (size_t i = 0; i < nq; i++) {
		json_t *q = json_array_get(s->quarantined, i);
		printf("  %s  %lld event(s) %s: %s\n",
		       json_string_value(json_object_get(q, "order_id")),
		       (long long)json_integer_value(json_object_get(q, "events")),
		       json_string_value(json_object_get(q, "status")),
		       json_string_value(json_object_get(q, "reason")));
	}
	printf("forks reported: %ld\n", s->forks);
}

int cmd_status(int argc, char **argv)
{
	const char *conninfo = NULL;
	bool as_json = false, wait = false;
	long wait_ms = 60000;
	char err[512];
	bk_kconf *kc = bk_kconf_new();
	if (!kc)
		return BK_EXIT_DEPENDENCY;
	for (int i = 1; i < argc; i++) {
		int r = bk_kconf_take_arg(kc, argc, argv, &i, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "bookingctl status: %s\n", err);
			bk_kconf_destroy(kc);
			return BK_EXIT_USAGE;
		}
		if (r == 1)
			continue;
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			bk_kconf_destroy(kc);
			return BK_EXIT_OK;
		} else if ((!strcmp(a, "-d") || !strcmp(a, "--dbname")) && i + 1 < argc) {
			conninfo = argv[++i];
		} else if (!strncmp(a, "--dbname=", 9)) {
			conninfo = a + 9;
		} else if ((r = cmd_take_format(argc, argv, &i, "bookingctl status", &as_json)) !=
			   0) {
			if (r < 0) {
				bk_kconf_destroy(kc);
				return BK_EXIT_USAGE;
			}
		} else if (!strcmp(a, "--wait")) {
			wait = true;
			/* the old spelling, --wait SECONDS: still read */
			if (i + 1 < argc && argv[i + 1][0] >= '0' && argv[i + 1][0] <= '9' &&
			    strspn(argv[i + 1], "0123456789") == strlen(argv[i + 1])) {
				wait_ms = atol(argv[++i]) * 1000;
				fprintf(stderr, "bookingctl status: --wait SECONDS is deprecated: "
						"--wait --timeout-ms MS\n");
			}
		} else if (!strcmp(a, "--timeout-ms") || !strncmp(a, "--timeout-ms=", 13)) {
			const char *v = a[12] == '=' ? a + 13 : i + 1 < argc ? argv[++i] : "";
			char *end;
			wait_ms = strtol(v, &end, 10);
			if (!*v || *end || wait_ms < 0) {
				fprintf(stderr, "bookingctl status: --timeout-ms: a number of ms, "
						"please\n");
				bk_kconf_destroy(kc);
				return BK_EXIT_USAGE;
			}
		} else {
			usage(stderr);
			bk_kconf_destroy(kc);
			return BK_EXIT_USAGE;
		}
	}
	const long wait_s = wait ? 1 : -1; /* >= 0: --wait */
	const char *topic = bk_kconf_topic(kc, BK_TOPIC_EVENTS);
	char group[64];
	snprintf(group, sizeof(group), "bookingctl-status-%ld", (long)getpid());
	const char *defaults[] = {"group.id",
				  group,
				  "enable.auto.commit",
				  "false",
				  "isolation.level",
				  "read_committed",
				  "fetch.wait.max.ms",
				  "10",
				  NULL};
	rd_kafka_t *rk = NULL;
	if (bk_kconf_new_handle(kc, BK_KCONF_CONSUMER, defaults, &rk, err, sizeof(err)) < 0) {
		fprintf(stderr, "bookingctl status: %s\n", err);
		bk_kconf_destroy(kc);
		return BK_EXIT_USAGE;
	}
	PGconn *c = pgu_connect(
	    conninfo, &(pgu_connect_opts){.attempts = 3, .application_name = "bookingctl"}, err,
	    sizeof(err));
	if (!c) {
		fprintf(stderr, "bookingctl status: %s\n", err);
		rd_kafka_destroy(rk);
		bk_kconf_destroy(kc);
		return BK_EXIT_DEPENDENCY;
	}
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = BK_EXIT_OK;
	for (;;) {
		snapshot s = {0};
		int r = take(rk, c, topic, wait_s < 0, &s, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "bookingctl status: %s\n", err);
			free(s.ps);
			json_decref(s.quarantined);
			rc = BK_EXIT_DEPENDENCY;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		long elapsed_ms =
		    (long)(t.tv_sec - t0.tv_sec) * 1000 + (long)(t.tv_nsec - t0.tv_nsec) / 1000000;
		bool waiting = wait && s.total_lag > 0 && elapsed_ms < wait_ms;
		if (!waiting) {
			if (wait_s >= 0 && s.total_lag > 0)
				oldest_ages(rk, topic, s.ps, s.n);
			print(&s, topic, as_json);
			rc = json_array_size(s.quarantined) > 0 || (wait_s >= 0 && s.total_lag > 0)
				 ? BK_EXIT_PROBLEM
				 : BK_EXIT_OK;
		}
		free(s.ps);
		json_decref(s.quarantined);
		if (!waiting)
			break;
		usleep(200 * 1000);
	}
	PQfinish(c);
	rd_kafka_destroy(rk);
	bk_kconf_destroy(kc);
	return rc;
}
