/*
 * cmd_replay.c - `bookingctl replay`: events out of booking.events as JSON lines (one
 * event per line, with partition, offset, order id, seq, subtype, actor, payload, hash)
 * or as msgpack records for offline rebuilds, filtered by order, type glob, time range,
 * partition and offsets. Stops at the log's end unless --follow.
 */
#include <fnmatch.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_codec.h"
#include "cmd.h"
#include "kconf.h"
#include "log.h"
#include "logread.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

typedef struct replay {
	const char *order;    /* filter: one order id */
	const char *type;     /* filter: fnmatch glob on the subtype */
	int64_t since, until; /* filter: created_at in [since, until) */
	bool msgpack;
	FILE *out;
	int64_t events, records, bad;
	msgpack_sbuffer sb;
	msgpack_packer pk;
} replay;

static bool event_matches(const replay *r, const bk_event *e)
{
	if (r->order && strcmp(e->order_id, r->order) != 0)
		return false;
	if (e->created_at < r->since || e->created_at >= r->until)
		return false;
	if (r->type) {
		char sub[64];
		if (fnmatch(r->type, bk_event_subtype(e, sub, sizeof(sub)), 0) != 0)
			return false;
	}
	return true;
}

static int on_record(void *opaque, const rd_kafka_message_t *m)
{
	replay *r = opaque;
	if (r->order &&
	    (m->key_len != strlen(r->order) || memcmp(m->key, r->order, m->key_len) != 0))
		return 0;
	msgpack_zone z;
	if (!msgpack_zone_init(&z, 4096))
		return -1;
	bk_record rec;
	char err[256];
	if (bk_codec_record_decode(m->payload, m->len, &z, &rec, err, sizeof(err)) < 0) {
		bk_logf(BK_LOG_WARN, "undecodable record skipped",
			"topic=%s partition=%d offset=%lld error=\"%s\"",
			rd_kafka_topic_name(m->rkt), m->partition, (long long)m->offset, err);
		r->bad++;
		msgpack_zone_destroy(&z);
		return 0;
	}
	int rc = 0;
	if (r->msgpack) {
		bool any = false;
		for (uint32_t i = 0; i < rec.n && !any; i++)
			any = event_matches(r, &rec.events[i]);
		if (any) {
			/* [partition, offset, record bytes]: what `rebuild --from-file` reads */
			msgpack_sbuffer_clear(&r->sb);
			msgpack_pack_array(&r->pk, 3);
			msgpack_pack_int32(&r->pk, m->partition);
			msgpack_pack_int64(&r->pk, m->offset);
			msgpack_pack_bin(&r->pk, m->len);
			msgpack_pack_bin_body(&r->pk, m->payload, m->len);
			if (fwrite(r->sb.data, 1, r->sb.size, r->out) != r->sb.size)
				rc = -1;
			r->records++;
			r->events += rec.n;
		}
	} else {
		msgpack_sbuffer_clear(&r->sb);
		for (uint32_t i = 0; i < rec.n && rc == 0; i++) {
			if (!event_matches(r, &rec.events[i]))
				continue;
			if (bk_event_write_json(&rec.events[i], m->partition, m->offset, &r->sb) <
				0 ||
			    msgpack_sbuffer_write(&r->sb, "\n", 1) < 0)
				rc = -1;
			r->events++;
		}
		if (rc == 0 && r->sb.size &&
		    fwrite(r->sb.data, 1, r->sb.size, r->out) != r->sb.size)
			rc = -1;
		r->records++;
	}
	msgpack_zone_destroy(&z);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: bookingctl replay [options]\n"
	    "\n"
	    "Prints events from booking.events, oldest first per partition, and stops at the\n"
	    "end of the log (the high watermark when it starts) unless --follow.\n"
	    "\n"
	    "  --order ID          only this order's events (reads only its partition)\n"
	    "  --type GLOB         only subtypes matching GLOB, e.g. 'card.*' or "
	    "'order.cancelled_*'\n"
	    "  --since TIME        only events with created_at >= TIME (RFC 3339)\n"
	    "  --until TIME        only events with created_at < TIME\n"
	    "  --partition N       only partition N\n"
	    "  --from-offset N     start at offset N (default 0)\n"
	    "  --to-offset N       stop before offset N\n"
	    "  --follow            keep printing new events until interrupted\n"
	    "  --format json|msgpack\n"
	    "                      json (default): one event per line with partition, offset,\n"
	    "                      event_id, order_id, seq, kind, subtype, actor_user_id,\n"
	    "                      command_id, created_at, schema, payload, prev_hash, hash;\n"
	    "                      msgpack: whole records [partition, offset, bytes] for\n"
	    "                      `bookingctl rebuild --from-file` (a record is kept when any\n"
	    "                      of its events matches the filters)\n"
	    "  -o, --output FILE   write there instead of standard output\n"
	    "  -h, --help          this text\n"
	    "\n%s"
	    "\nexit status: 0 done, 2 bad usage, 3 Kafka failed\n",
	    bk_kconf_usage());
}

int cmd_replay(int argc, char **argv)
{
	replay r = {.since = INT64_MIN, .until = INT64_MAX, .out = stdout};
	bk_logread_opts o = {.partition = -1, .from = 0, .to = -1, .stop = &stop_flag};
	const char *output = NULL;
	char err[512];
	int rc = BK_EXIT_USAGE;
	bk_kconf *kc = bk_kconf_new();
	rd_kafka_t *rk = NULL;
	if (!kc)
		return BK_EXIT_DEPENDENCY;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int t = bk_kconf_take_arg(kc, argc, argv, &i, err, sizeof(err));
		if (t < 0) {
			fprintf(stderr, "bookingctl replay: %s\n", err);
			goto out;
		}
		if (t > 0)
			continue;
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                                                                                    \
	do {                                                                                       \
		if (!v) {                                                                          \
			fprintf(stderr, "bookingctl replay: %s needs a value\n", a);               \
			goto out;                                                                  \
		}                                                                                  \
		i++;                                                                               \
	} while (0)
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			rc = BK_EXIT_OK;
			goto out;
		} else if (!strcmp(a, "--order")) {
			NEEDV();
			r.order = v;
		} else if (!strcmp(a, "--type")) {
			NEEDV();
			r.type = v;
		} else if (!strcmp(a, "--since") || !strcmp(a, "--until")) {
			NEEDV();
			int64_t ts;
			if (bk_ts_parse(v, strlen(v), &ts) < 0) {
				fprintf(stderr, "bookingctl replay: %s: not an RFC 3339 time: %s\n",
					a, v);
				goto out;
			}
			*(a[2] == 's' ? &r.since : &r.until) = ts;
		} else if (!strcmp(a, "--partition") || !strcmp(a, "--from-offset") ||
			   !strcmp(a, "--to-offset")) {
			NEEDV();
			char *end;
			long long n = strtoll(v, &end, 10);
			if (*v == 0 || *end || n < 0) {
				fprintf(stderr, "bookingctl replay: %s: not a number >= 0: %s\n", a,
					v);
				goto out;
			}
			if (a[2] == 'p')
				o.partition = (int32_t)n;
			else if (a[2] == 'f')
				o.from = n;
			else
				o.to = n;
		} else if (!strcmp(a, "--follow")) {
			o.follow = true;
		} else if (!strcmp(a, "--format")) {
			NEEDV();
			if (strcmp(v, "json") && strcmp(v, "msgpack")) {
				fprintf(stderr,
					"bookingctl replay: --format: json or msgpack, not %s\n",
					v);
				goto out;
			}
			r.msgpack = v[0] == 'm';
		} else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			NEEDV();
			output = v;
		} else {
			fprintf(stderr, "bookingctl replay: unknown option %s (see --help)\n", a);
			goto out;
		}
#undef NEEDV
	}
	o.topic = bk_kconf_topic(kc, BK_TOPIC_EVENTS);
	if (bk_logread_consumer(kc, &rk, err, sizeof(err)) < 0) {
		fprintf(stderr, "bookingctl replay: %s\n", err);
		goto out;
	}
	if (r.order && o.partition < 0) {
		int n;
		if (bk_kconf_partition_count(rk, o.topic, 10000, &n, err, sizeof(err)) < 0) {
			fprintf(stderr, "bookingctl replay: %s\n", err);
			rc = BK_EXIT_DEPENDENCY;
			goto out;
		}
		o.partition = bk_kafka_partition_of(r.order, strlen(r.order), n);
	}
	if (output && !(r.out = fopen(output, "w"))) {
		fprintf(stderr, "bookingctl replay: cannot write %s\n", output);
		goto out;
	}
	msgpack_sbuffer_init(&r.sb);
	msgpack_packer_init(&r.pk, &r.sb, msgpack_sbuffer_write);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	int64_t n;
	int lr = bk_logread(rk, &o, on_record, &r, &n, err, sizeof(err));
	msgpack_sbuffer_destroy(&r.sb);
	if (fflush(r.out) != 0 || (output && fclose(r.out) != 0)) {
		fprintf(stderr, "bookingctl replay: write failed\n");
		rc = BK_EXIT_PROBLEM;
		goto out;
	}
	if (lr < 0) {
		fprintf(stderr, "bookingctl replay: %s\n", err);
		rc = BK_EXIT_DEPENDENCY;
		goto out;
	}
	bk_logf(BK_LOG_INFO, "replay done", "topic=%s records=%lld events=%lld undecodable=%lld",
		o.topic, (long long)n, (long long)r.events, (long long)r.bad);
	rc = BK_EXIT_OK;
out:
	if (rk)
		rd_kafka_destroy(rk);
	bk_kconf_destroy(kc);
	return rc;
}
