/*
 * test_projector_feed.c - writes an events log for the projector tests, without the
 * command processor: fixture commands go through the engine in-process (as the processor
 * would decide them) and each accepted command's events become one record on the
 * events topic (key = order id), each rules change one record on the rules topic.
 * It can also copy fixtures many times under fresh ids, duplicate records, append a
 * forked record or a garbage record, and create its topics through the devbroker.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bk_codec.h"
#include "bk_engine.h"
#include "kconf.h"
#include "tz.h"

typedef struct feed {
	rd_kafka_t *rk;
	const char *events, *rules;
	long dup_every;
	long records, events_n, rules_n, dups;
	long sleep_every, sleep_ms;
	/* the last record produced per order named by --fork */
	const char *fork_order;
	msgpack_sbuffer fork_rec;
} feed;

static void usage(void)
{
	fputs("usage: test_projector_feed [kafka options] [--control SOCK --create-topics N]\n"
	      "       [--copies K] [--dup-every N] [--fork ORDER] [--garbage KEY]\n"
	      "       [--sleep-every N --sleep-ms MS] FIXTURE.jsonl...\n",
	      stderr);
}

/* Ask the devbroker (control socket) to create a topic. */
static int create_topic(const char *sock, const char *name, long parts)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("control socket");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char line[512];
	int n = snprintf(line, sizeof(line), "topic %s %ld\n", name, parts);
	if (write(fd, line, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	ssize_t got = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (got <= 0 || strncmp(line, "ok", 2) != 0) {
		fprintf(stderr, "create topic %s: %.*s\n", name, (int)(got > 0 ? got : 0), line);
		return -1;
	}
	return 0;
}

static int produce(feed *f, const char *topic, const char *key, const void *val, size_t n)
{
	for (;;) {
		rd_kafka_resp_err_t e = rd_kafka_producev(
		    f->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
		    RD_KAFKA_V_VALUE((void *)val, n), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		    RD_KAFKA_V_END);
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			rd_kafka_poll(f->rk, 50);
			continue;
		}
		if (e) {
			fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e));
			return -1;
		}
		rd_kafka_poll(f->rk, 0);
		return 0;
	}
}

static int emit_record(feed *f, const bk_record *r)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	int rc = bk_codec_record_encode(r, &sb);
	if (rc == 0)
		rc = produce(f, f->events, r->order_id, sb.data, sb.size);
	f->records++;
	f->events_n += r->n;
	if (rc == 0 && f->dup_every > 0 && f->records % f->dup_every == 0) {
		rc = produce(f, f->events, r->order_id, sb.data, sb.size);
		f->dups++;
	}
	if (f->fork_order && strcmp(f->fork_order, r->order_id) == 0) {
		msgpack_sbuffer_clear(&f->fork_rec);
		msgpack_sbuffer_write(&f->fork_rec, sb.data, sb.size);
	}
	msgpack_sbuffer_destroy(&sb);
	if (f->sleep_every > 0 && f->records % f->sleep_every == 0) {
		rd_kafka_flush(f->rk, 10000);
		struct timespec ts = {f->sleep_ms / 1000, (f->sleep_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	return rc;
}

/* Double *buf's capacity; on failure frees *buf, sets it to NULL and returns false. */
static bool grow(char **buf, size_t *cap)
{
	char *nb = realloc(*buf, *cap * 2);
	if (!nb) {
		free(*buf);
		*buf = NULL;
		return false;
	}
	*buf = nb;
	*cap *= 2;
	return true;
}

/* Replace every value `"<prefix>_` (after a colon) by `"<prefix>_k<copy>_`, for the id
 * prefixes of fixtures. NULL when out of memory. */
static char *rename_ids(const char *line, long copy)
{
	static const char *const pfx[] = {"ord_", "cmd_", "acd_", "dsp_", "mst_", "rule_",
					  "sp_",  "pi_",  "tg_",  "req_", "li_",  NULL};
	size_t cap = strlen(line) * 2 + 64, n = 0;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	for (const char *p = line; *p;) {
		bool hit = false;
		const char *b = p;
		while (b > line && b[-1] == ' ')
			b--;
		if (*p == '"' && b > line && b[-1] == ':')
			for (int i = 0; pfx[i]; i++) {
				size_t l = strlen(pfx[i]);
				if (strncmp(p + 1, pfx[i], l) == 0) {
					if (n + l + 32 >= cap && !grow(&out, &cap))
						return NULL;
					n += (size_t)sprintf(out + n, "\"%sk%ld_", pfx[i], copy);
					p += 1 + l;
					hit = true;
					break;
				}
			}
		if (hit)
			continue;
		if (n + 2 >= cap && !grow(&out, &cap))
			return NULL;
		out[n++] = *p++;
	}
	out[n] = 0;
	return out;
}

static int run_file(feed *f, bk_engine *e, bk_tzdb *tz, const char *path, long copy)
{
	FILE *fp = fopen(path, "r");
	if (!fp) {
		perror(path);
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;
	while (rc == 0 && (len = getline(&line, &cap, fp)) > 0) {
		if (len <= 1 || line[0] == '#')
			continue;
		char *l = copy > 0 ? rename_ids(line, copy) : strdup(line);
		if (!l) {
			fprintf(stderr, "%s: out of memory\n", path);
			rc = -1;
			break;
		}
		msgpack_zone z;
		msgpack_zone_init(&z, 4096);
		bk_command c;
		char err[256];
		if (bk_codec_command_decode(l, strlen(l), true, true, &z, &c, err, sizeof(err)) <
		    0) {
			msgpack_zone_destroy(&z);
			free(l);
			continue; /* a fixture line that is malformed on purpose */
		}
		bk_decide_ctx ctx = {.now = c.at,
				     .expiring_lead = INT64_C(24) * 3600 * BK_US_PER_S,
				     .tz = bk_tz_offset,
				     .tz_opaque = tz};
		bk_decision d;
		if (bk_engine_handle(e, &c, &ctx, &z, &d) < 0) {
			fprintf(stderr, "%s: %s\n", path, d.message);
			rc = -1;
		} else {
			if (getenv("FEED_DEBUG") && d.outcome != BK_ACCEPTED)
				fprintf(stderr, "%s: %s %s: %s\n", c.id, bk_outcome_name(d.outcome),
					bk_err_name(d.code), d.message);
			if (d.n_events > 0) {
				bk_record r = {c.order_id, c.id, d.events, d.n_events};
				rc = emit_record(f, &r);
			}
			if (rc == 0 && d.has_rules && d.outcome == BK_ACCEPTED) {
				msgpack_sbuffer sb;
				msgpack_sbuffer_init(&sb);
				if (bk_codec_rules_encode(&d.rules, &sb) == 0)
					rc = produce(f, f->rules, d.rules.service_profile_id,
						     sb.data, sb.size);
				f->rules_n++;
				msgpack_sbuffer_destroy(&sb);
			}
			bk_decision_clear(&d);
		}
		msgpack_zone_destroy(&z);
		free(l);
	}
	free(line);
	fclose(fp);
	return rc;
}

/* The last record of --fork's order again, its last event changed and resealed: same
 * seq, another hash. */
static int emit_fork(feed *f)
{
	if (!f->fork_rec.size) {
		fprintf(stderr, "--fork %s: no record of that order\n", f->fork_order);
		return -1;
	}
	msgpack_zone z;
	msgpack_zone_init(&z, 4096);
	bk_record r;
	char err[256];
	int rc = -1;
	if (bk_codec_record_decode(f->fork_rec.data, f->fork_rec.size, &z, &r, err, sizeof(err)) ==
	    0) {
		bk_event *ev = &r.events[r.n - 1];
		ev->created_at += 1000000; /* another writer, another clock */
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		if (bk_codec_event_seal(ev, &sb) == 0) {
			sb.size = 0;
			if (bk_codec_record_encode(&r, &sb) == 0)
				rc = produce(f, f->events, r.order_id, sb.data, sb.size);
		}
		msgpack_sbuffer_destroy(&sb);
	}
	msgpack_zone_destroy(&z);
	return rc;
}

int main(int argc, char **argv)
{
	feed f = {0};
	char err[512];
	bk_kconf *kc = bk_kconf_new();
	const char *control = NULL, *garbage = NULL;
	long parts = 0, copies = 0;
	msgpack_sbuffer_init(&f.fork_rec);
	int i;
	for (i = 1; i < argc; i++) {
		int r = bk_kconf_take_arg(kc, argc, argv, &i, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "%s\n", err);
			return 2;
		}
		if (r == 1)
			continue;
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (a[0] != '-')
			break;
		if (!v) {
			usage();
			return 2;
		}
		i++;
		if (!strcmp(a, "--control"))
			control = v;
		else if (!strcmp(a, "--create-topics"))
			parts = atol(v);
		else if (!strcmp(a, "--copies"))
			copies = atol(v);
		else if (!strcmp(a, "--dup-every"))
			f.dup_every = atol(v);
		else if (!strcmp(a, "--fork"))
			f.fork_order = v;
		else if (!strcmp(a, "--garbage"))
			garbage = v;
		else if (!strcmp(a, "--sleep-every"))
			f.sleep_every = atol(v);
		else if (!strcmp(a, "--sleep-ms"))
			f.sleep_ms = atol(v);
		else {
			usage();
			return 2;
		}
	}
	f.events = bk_kconf_topic(kc, BK_TOPIC_EVENTS);
	f.rules = bk_kconf_topic(kc, BK_TOPIC_RULES);
	if (control && parts > 0 &&
	    (create_topic(control, f.events, parts) < 0 ||
	     create_topic(control, f.rules, parts) < 0))
		return 1;
	const char *defaults[] = {"linger.ms", "20", "queue.buffering.max.messages", "200000",
				  NULL};
	if (bk_kconf_new_handle(kc, BK_KCONF_PRODUCER, defaults, &f.rk, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	bk_tzdb *tz = bk_tzdb_new(NULL);
	int rc = 0;
	for (long k = 0; k < (copies > 0 ? copies : 1) && rc == 0; k++)
		for (int j = i; j < argc && rc == 0; j++) {
			bk_engine *e =
			    bk_engine_new(); /* each fixture alone, as in test_fixtures */
			rc = run_file(&f, e, tz, argv[j], copies > 0 ? k + 1 : 0);
			bk_engine_free(e);
		}
	if (rc == 0 && f.fork_order)
		rc = emit_fork(&f);
	if (rc == 0 && garbage)
		rc = produce(&f, f.events, garbage, "\xc1garbage", 8);
	if (rd_kafka_flush(f.rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "flush: not everything was delivered\n");
		rc = -1;
	}
	printf("records=%ld events=%ld rules=%ld duplicates=%ld\n", f.records, f.events_n,
	       f.rules_n, f.dups);
	rd_kafka_destroy(f.rk);
	bk_tzdb_free(tz);
	bk_kconf_destroy(kc);
	msgpack_sbuffer_destroy(&f.fork_rec);
	return rc == 0 ? 0 : 1;
}
