/*
 * cmd_verify.c - `bookingctl verify`: walks booking.events (or one order's partition)
 * and checks every event's hash against its canonical bytes, every order's seq and
 * chain with the shared reader rule, and every status change against the FSM table.
 * Each broken link, gap, fork or illegal transition is reported with its partition and
 * offset; the exit status says whether the log is sound.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_codec.h"
#include "bk_ids.h"
#include "bk_engine.h"
#include "cmd.h"
#include "kconf.h"
#include "log.h"
#include "logread.h"

typedef struct verify {
	bk_engine *e;
	const char *order;
	bool quiet;
	int64_t records, events, duplicates, problems;
	msgpack_sbuffer scratch;
} verify;

static void report(verify *v, const rd_kafka_message_t *m, const bk_event *e, const char *what,
		   const char *detail)
{
	v->problems++;
	if (v->quiet && v->problems > 100)
		return;
	char sub[64] = "", key[BK_ID_MAX] = "?";
	if (e)
		bk_event_subtype(e, sub, sizeof(sub));
	else if (m->key && m->key_len > 0 && m->key_len < sizeof(key) &&
		 bk_id_valid(m->key, m->key_len, NULL)) /* undecodable: the key names the order */
		snprintf(key, sizeof(key), "%.*s", (int)m->key_len, (const char *)m->key);
	printf("%s: partition=%d offset=%lld order_id=%s seq=%lld subtype=%s: %s\n", what,
	       m->partition, (long long)m->offset, e ? e->order_id : key,
	       e ? (long long)e->seq : -1LL, e ? sub : "?", detail);
}

/* A status event must be a move the booking_status table allows from the order's status. */
static int check_transition(verify *v, const rd_kafka_message_t *m, const bk_event *ev)
{
	if (ev->type != BK_EV_ORDER_STATUS)
		return 0;
	const bk_order *o = bk_engine_order(v->e, ev->order_id);
	const bk_val *cause = bk_map_get(&ev->payload, "cause");
	int cmd = cause && cause->type == MSGPACK_OBJECT_STR
		      ? bk_cmd_from(cause->via.str.ptr, cause->via.str.size)
		      : -1;
	char detail[256];
	if (!o || cmd < 0) {
		report(v, m, ev, "illegal transition", "no order, or no known cause command");
		return -1;
	}
	const bk_status_row *rows[8];
	size_t n = bk_status_rows(o->status, (bk_cmd_type)cmd, rows, 8);
	for (size_t i = 0; i < n && i < 8; i++)
		if (rows[i]->to == ev->sub)
			return 0;
	snprintf(detail, sizeof(detail), "%s does not move %s to %s in the booking_status table",
		 bk_cmd_name((bk_cmd_type)cmd), bk_status_name((bk_status)o->status),
		 bk_status_name((bk_status)ev->sub));
	report(v, m, ev, "illegal transition", detail);
	return -1;
}

static int on_record(void *opaque, const rd_kafka_message_t *m)
{
	verify *v = opaque;
	if (v->order &&
	    (m->key_len != strlen(v->order) || memcmp(m->key, v->order, m->key_len) != 0))
		return 0;
	msgpack_zone z;
	if (!msgpack_zone_init(&z, 4096))
		return -1;
	bk_record rec;
	char err[256];
	v->records++;
	if (bk_codec_record_decode(m->payload, m->len, &z, &rec, err, sizeof(err)) < 0) {
		report(v, m, NULL, "undecodable record", err);
		msgpack_zone_destroy(&z);
		return 0;
	}
	for (uint32_t i = 0; i < rec.n; i++) {
		bk_event *ev = &rec.events[i];
		v->events++;
		bk_event check = *ev;
		if (bk_codec_event_seal(&check, &v->scratch) < 0 ||
		    memcmp(check.hash, ev->hash, BK_HASH_LEN) != 0) {
			report(v, m, ev, "broken link",
			       "the hash does not match the event's bytes (tampered or corrupt)");
			continue;
		}
		bk_record one = {rec.order_id, rec.command_id, ev, 1};
		const bk_order *o = bk_engine_order(v->e, ev->order_id);
		static const uint8_t zero[BK_HASH_LEN];
		bk_chain_verdict verdict =
		    bk_chain_classify(o ? o->version : 0, o ? bk_order_last_hash(o) : zero, ev->seq,
				      ev->prev_hash, ev->hash, NULL, NULL);
		if (verdict == BK_CHAIN_NEXT && check_transition(v, m, ev) < 0)
			continue;
		bk_chain_verdict got;
		if (bk_engine_read(v->e, &one, &got, err, sizeof(err)) < 0) {
			report(v, m, ev, "illegal event", err);
			continue;
		}
		char detail[160];
		switch (got) {
		case BK_CHAIN_NEXT:
			break;
		case BK_CHAIN_DUPLICATE:
			v->duplicates++;
			break;
		case BK_CHAIN_FORK:
			snprintf(
			    detail, sizeof(detail),
			    "seq %lld is already taken by another event (two writers); the first "
			    "in log order wins",
			    (long long)ev->seq);
			report(v, m, ev, "fork", detail);
			break;
		case BK_CHAIN_GAP:
			snprintf(detail, sizeof(detail),
				 "the order is at seq %lld: seq %lld..%lld missing",
				 o ? (long long)o->version : 0LL,
				 o ? (long long)o->version + 1 : 1LL, (long long)ev->seq - 1);
			report(v, m, ev, "gap", detail);
			break;
		}
	}
	msgpack_zone_destroy(&z);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: bookingctl verify [options]\n"
	    "\n"
	    "Checks the event log: each event's hash against its canonical bytes and its\n"
	    "prev_hash (broken link), each order's seq (gap), a seq taken twice with other\n"
	    "content (fork), each status change against the booking_status table and each\n"
	    "event against the order's state (illegal transition / illegal event).\n"
	    "Problems are printed one per line with partition and offset.\n"
	    "\n"
	    "  --order ID          only this order (reads only its partition)\n"
	    "  --partition N       only partition N\n"
	    "  -q, --quiet         print at most 100 problems, then only the summary\n"
	    "  -h, --help          this text\n"
	    "\n%s"
	    "\nexit status: 0 the log is sound, 1 problems found, 2 bad usage, 3 Kafka failed\n",
	    bk_kconf_usage());
}

int cmd_verify(int argc, char **argv)
{
	verify v = {0};
	bk_logread_opts o = {.partition = -1, .to = -1};
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
			fprintf(stderr, "bookingctl verify: %s\n", err);
			goto out;
		}
		if (t > 0)
			continue;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			rc = BK_EXIT_OK;
			goto out;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			v.quiet = true;
		} else if ((!strcmp(a, "--order") || !strcmp(a, "--partition")) && i + 1 < argc) {
			if (a[2] == 'o') {
				v.order = argv[++i];
			} else {
				char *end;
				long n = strtol(argv[++i], &end, 10);
				if (*end || n < 0) {
					fprintf(stderr,
						"bookingctl verify: --partition: not a number\n");
					goto out;
				}
				o.partition = (int32_t)n;
			}
		} else {
			fprintf(stderr, "bookingctl verify: unknown option or missing value: %s\n",
				a);
			goto out;
		}
	}
	o.topic = bk_kconf_topic(kc, BK_TOPIC_EVENTS);
	if (bk_logread_consumer(kc, &rk, err, sizeof(err)) < 0) {
		fprintf(stderr, "bookingctl verify: %s\n", err);
		goto out;
	}
	if (v.order && o.partition < 0) {
		int n;
		if (bk_kconf_partition_count(rk, o.topic, 10000, &n, err, sizeof(err)) < 0) {
			fprintf(stderr, "bookingctl verify: %s\n", err);
			rc = BK_EXIT_DEPENDENCY;
			goto out;
		}
		o.partition = bk_kafka_partition_of(v.order, strlen(v.order), n);
	}
	v.e = bk_engine_new();
	msgpack_sbuffer_init(&v.scratch);
	int lr = bk_logread(rk, &o, on_record, &v, NULL, err, sizeof(err));
	msgpack_sbuffer_destroy(&v.scratch);
	if (lr < 0) {
		fprintf(stderr, "bookingctl verify: %s\n", err);
		rc = BK_EXIT_DEPENDENCY;
		goto out;
	}
	printf("verify: %s: records=%lld events=%lld orders=%zu duplicates_skipped=%lld "
	       "problems=%lld\n",
	       v.problems ? "PROBLEMS" : "ok", (long long)v.records, (long long)v.events,
	       bk_engine_count(v.e), (long long)v.duplicates, (long long)v.problems);
	rc = v.problems ? BK_EXIT_PROBLEM : BK_EXIT_OK;
out:
	bk_engine_free(v.e);
	if (rk)
		rd_kafka_destroy(rk);
	bk_kconf_destroy(kc);
	return rc;
}
