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
#include <time.h>

#include "bk_codec.h"
#include "bk_ids.h"
#include "bk_engine.h"
#include "cmd.h"
#include "kconf.h"
#include "log.h"
#include "logread.h"
#include "trust.h"

typedef struct unsealed_ev unsealed_ev;

typedef struct verify {
	bk_engine *e;
	const char *order;
	int64_t max_problems; /* --max-problems; -1: all */
	json_t *jproblems;    /* --format json: the problems, and the records awaiting seal */
	json_t *jawaiting;
	int64_t records, events, duplicates, problems, seals;
	msgpack_sbuffer scratch;
	bk_trust *trust;
	unsealed_ev *uns; /* unsealed events, judged at the end */
	size_t nuns, capuns;
	bool flushing;
	int64_t now_ms;	  /* wall clock at the end of the read */
	int64_t await_ms; /* --await-seal-ms */
	int64_t leftovers, awaiting;
	/* results: first sealed answer per command record (src-partition:src-offset) */
	bk_trust *rtrust;
	json_t *answers;
	int64_t results, results_copies, results_unsealed, results_bad;
	bool results_read;
} verify;

/* One problem (or record awaiting its seal): a line "VERDICT: partition=... : DETAIL", or
 * with --format json an object of the array to (verdict, partition, offset, order_id,
 * seq, subtype, detail). */
static void emit(json_t *to, const char *what, int32_t partition, int64_t offset,
		 const char *order_id, long long seq, const char *sub, const char *detail)
{
	if (to) {
		json_array_append_new(to,
				      json_pack("{s:s, s:i, s:I, s:s, s:I, s:s, s:s}", "verdict",
						what, "partition", (int)partition, "offset",
						(json_int_t)offset, "order_id", order_id, "seq",
						(json_int_t)seq, "subtype", sub, "detail", detail));
		return;
	}
	printf("%s: partition=%d offset=%lld order_id=%s seq=%lld subtype=%s: %s\n", what,
	       (int)partition, (long long)offset, order_id, seq, sub, detail);
}

static void report(verify *v, const rd_kafka_message_t *m, const bk_event *e, const char *what,
		   const char *detail)
{
	v->problems++;
	if (v->max_problems >= 0 && v->problems > v->max_problems)
		return;
	char sub[64] = "", key[BK_ID_MAX] = "?";
	if (e)
		bk_event_subtype(e, sub, sizeof(sub));
	else if (m->key && m->key_len > 0 && m->key_len < sizeof(key) &&
		 bk_id_valid(m->key, m->key_len, NULL)) /* undecodable: the key names the order */
		snprintf(key, sizeof(key), "%.*s", (int)m->key_len, (const char *)m->key);
	emit(v->jproblems, what, m->partition, m->offset, e ? e->order_id : key,
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

/* A record kept until a seal covers or abandons it (its bytes copied: logread reuses m). */
typedef struct kept {
	rd_kafka_message_t m; /* partition, offset, key and payload point into the copies */
	char *key, *payload;
	int64_t ts_ms; /* the record's Kafka timestamp (ms), -1 unknown */
} kept;

/* How long a record may wait for its seal before verify calls it unsealed (as the
 * projector): an open batch's records are younger than this (--await-seal-ms). */
#define AWAIT_SEAL_MS 60000

static void kept_free(kept *k)
{
	free(k->key);
	free(k->payload);
	free(k);
}

/* Judge a sealed record's events with the reader rule, and their status moves. */
static void judge(verify *v, const rd_kafka_message_t *m, const bk_record *rec)
{
	char err[256];
	for (uint32_t i = 0; i < rec->n; i++) {
		bk_event *ev = &rec->events[i];
		v->events++;
		bk_record one = {rec->order_id, rec->command_id, ev, 1};
		const bk_order *o = bk_engine_order(v->e, ev->order_id);
		static const uint8_t zero[BK_HASH_LEN];
		bk_chain_verdict pre =
		    bk_chain_classify(o ? o->version : 0, o ? bk_order_last_hash(o) : zero, ev->seq,
				      ev->prev_hash, ev->hash, NULL, NULL);
		if (pre == BK_CHAIN_NEXT && bk_seal_hash_ok(ev, &v->scratch) &&
		    check_transition(v, m, ev) < 0)
			continue;
		bk_chain_verdict got;
		if (bk_engine_read(v->e, &one, &got, err, sizeof(err)) < 0) {
			report(v, m, ev, "illegal event", err);
			continue;
		}
		char detail[200];
		switch (got) {
		case BK_CHAIN_NEXT:
			break;
		case BK_CHAIN_DUPLICATE:
			v->duplicates++;
			break;
		case BK_CHAIN_FORK:
			snprintf(detail, sizeof(detail),
				 "seq %lld is already taken by another valid event (two writers); "
				 "the first in log order wins",
				 (long long)ev->seq);
			report(v, m, ev, "fork", detail);
			break;
		case BK_CHAIN_BAD_HASH:
			report(v, m, ev, "bad_hash",
			       "the hash does not match the event's bytes (tampered or corrupt)");
			break;
		case BK_CHAIN_BAD_LINK:
		case BK_CHAIN_UNSEALED:
		case BK_CHAIN_GARBAGE:
		case BK_CHAIN__COUNT:
			snprintf(detail, sizeof(detail),
				 "prev_hash is not the hash of the order's valid event at seq %lld "
				 "(the order is at seq %lld)",
				 (long long)ev->seq - 1, o ? (long long)o->version : 0LL);
			report(v, m, ev, "bad_link", detail);
			break;
		}
	}
}

/* An unsealed event, kept for the end (unsealed_judge). */
struct unsealed_ev {
	int32_t partition;
	int64_t offset, seq;
	char order[BK_ID_MAX], sub[64];
	uint8_t hash[BK_HASH_LEN];
	bool at_end;  /* not abandoned by the end, and younger than AWAIT_SEAL_MS */
	bool hash_ok; /* its hash matches its content */
};

static int unsealed_add(verify *v, const rd_kafka_message_t *m, int64_t ts_ms, const bk_event *e)
{
	if (v->nuns == v->capuns) {
		size_t cap = v->capuns ? v->capuns * 2 : 256;
		unsealed_ev *n = realloc(v->uns, cap * sizeof(*n));
		if (!n)
			return -1;
		v->uns = n;
		v->capuns = cap;
	}
	unsealed_ev *u = &v->uns[v->nuns++];
	u->partition = m->partition;
	u->offset = m->offset;
	u->seq = e->seq;
	snprintf(u->order, sizeof(u->order), "%s", e->order_id);
	bk_event_subtype(e, u->sub, sizeof(u->sub));
	memcpy(u->hash, e->hash, BK_HASH_LEN);
	u->at_end = v->flushing && ts_ms >= 0 && v->now_ms - ts_ms < v->await_ms;
	u->hash_ok = bk_seal_hash_ok(e, &v->scratch);
	return 0;
}

/* Every unsealed event, once the sealed chain is known: a copy of the valid event at its
 * seq is a leftover (counted); anything else is a problem, or, when no seal had abandoned
 * it by the end of the log, a record that may still get its seal (an open batch). */
static void unsealed_judge(verify *v)
{
	for (size_t i = 0; i < v->nuns; i++) {
		const unsealed_ev *u = &v->uns[i];
		const bk_order *o = bk_engine_order(v->e, u->order);
		if (u->hash_ok && o && u->seq >= 1 && u->seq <= o->version &&
		    memcmp(o->hashes[u->seq - 1], u->hash, BK_HASH_LEN) == 0) {
			v->leftovers++;
			continue;
		}
		if (u->at_end) {
			v->awaiting++;
			emit(v->jawaiting, "awaiting seal", u->partition, u->offset, u->order,
			     (long long)u->seq, u->sub,
			     "no seal covers it yet (an open batch, or someone else's)");
			continue;
		}
		v->problems++;
		if (v->max_problems < 0 || v->problems <= v->max_problems)
			emit(v->jproblems, "unsealed", u->partition, u->offset, u->order,
			     (long long)u->seq, u->sub,
			     "no valid seal of a trusted writer covers the record");
	}
}

static void on_release(void *opaque, void *rec, int32_t partition, int64_t offset, bool sealed,
		       const uint8_t *digest)
{
	(void)digest;
	verify *v = opaque;
	kept *k = rec;
	(void)partition;
	(void)offset;
	msgpack_zone z;
	bk_record r;
	char err[256];
	if (msgpack_zone_init(&z, 4096) &&
	    bk_codec_record_decode(k->m.payload, k->m.len, &z, &r, err, sizeof(err)) == 0) {
		if (sealed) {
			judge(v, &k->m, &r);
		} else {
			/* judged at the end, against the chain the sealed records make: an
			 * unsealed copy of a valid event is a crashed or aborted batch's
			 * leftover (its command was decided again, byte for byte) */
			for (uint32_t i = 0; i < r.n; i++) {
				v->events++;
				if (unsealed_add(v, &k->m, k->ts_ms, &r.events[i]) < 0)
					report(
					    v, &k->m, &r.events[i], "unsealed",
					    "no valid seal of a trusted writer covers the record");
			}
		}
	}
	msgpack_zone_destroy(&z);
	kept_free(k);
}

static void on_bad_seal(void *opaque, const rd_kafka_message_t *m, const char *why)
{
	report(opaque, m, NULL, "garbage", why);
}

static int on_record(void *opaque, const rd_kafka_message_t *m)
{
	verify *v = opaque;
	if (bk_trust_is_seal(m)) {
		v->seals++;
		(void)bk_trust_seal(v->trust, m);
		return 0;
	}
	if (v->order &&
	    (m->key_len != strlen(v->order) || memcmp(m->key, v->order, m->key_len) != 0))
		return 0;
	msgpack_zone z;
	if (!msgpack_zone_init(&z, 4096))
		return -1;
	bk_record rec;
	char err[256];
	v->records++;
	if (!m->payload ||
	    bk_codec_record_decode(m->payload, m->len, &z, &rec, err, sizeof(err)) < 0) {
		report(v, m, NULL, "garbage", m->payload ? err : "no value");
		msgpack_zone_destroy(&z);
		return 0;
	}
	uint8_t d[BK_HASH_LEN];
	bk_seal_digest_record(&rec, d);
	msgpack_zone_destroy(&z);
	kept *k = calloc(1, sizeof(*k));
	if (!k || !(k->payload = malloc(m->len)) || !(k->key = malloc(m->key_len + 1))) {
		if (k)
			kept_free(k);
		return -1;
	}
	memcpy(k->payload, m->payload, m->len);
	if (m->key_len)
		memcpy(k->key, m->key, m->key_len);
	rd_kafka_timestamp_type_t tst;
	k->ts_ms = rd_kafka_message_timestamp(m, &tst);
	k->m = *m;
	k->m.payload = k->payload;
	k->m.key = k->key;
	if (bk_trust_add(v->trust, m->partition, m->offset, d, k) < 0) {
		kept_free(k);
		return -1;
	}
	return 0;
}

/* --- results: the first sealed result of each command record counts --------------------- */

typedef struct rkept {
	rd_kafka_message_t m; /* partition and offset (for the report) */
	char at[48];	      /* src-partition:src-offset */
	char *line;	      /* command id, status, code, version, event ids */
} rkept;

static void rkept_free(rkept *k)
{
	free(k->line);
	free(k);
}

static void on_result_release(void *opaque, void *rec, int32_t partition, int64_t offset,
			      bool sealed, const uint8_t *digest)
{
	(void)digest;
	verify *v = opaque;
	rkept *k = rec;
	(void)partition;
	(void)offset;
	if (!sealed) {
		v->results_unsealed++; /* a crashed batch's answer, or anyone's: never counted */
		rkept_free(k);
		return;
	}
	json_t *first = json_object_get(v->answers, k->at);
	if (!first) {
		v->results++;
		json_object_set_new(v->answers, k->at, json_string(k->line));
	} else if (strcmp(json_string_value(first), k->line) == 0) {
		v->results_copies++; /* decided again after a crash: the same answer */
	} else {
		char detail[1024];
		snprintf(detail, sizeof(detail),
			 "command record %s answered twice: first \"%s\", then \"%s\"", k->at,
			 json_string_value(first), k->line);
		report(v, &k->m, NULL, "contradiction", detail);
	}
	rkept_free(k);
}

static int hdr_text(const rd_kafka_message_t *m, const char *name, char *out, size_t outsz)
{
	const void *val;
	size_t n;
	if (bk_kconf_header(m, name, &val, &n) < 0 || !val || n >= outsz)
		return -1;
	memcpy(out, val, n);
	out[n] = '\0';
	return 0;
}

static int on_result(void *opaque, const rd_kafka_message_t *m)
{
	verify *v = opaque;
	if (bk_trust_is_seal(m)) {
		(void)bk_trust_seal(v->rtrust, m);
		return 0;
	}
	if (v->order &&
	    (m->key_len != strlen(v->order) || memcmp(m->key, v->order, m->key_len) != 0))
		return 0;
	msgpack_zone z;
	if (!msgpack_zone_init(&z, 2048))
		return -1;
	bk_result r;
	char err[256], sp[24], so[24];
	if (!m->payload ||
	    bk_codec_result_decode(m->payload, m->len, &z, &r, err, sizeof(err)) < 0 ||
	    hdr_text(m, "src-partition", sp, sizeof(sp)) < 0 ||
	    hdr_text(m, "src-offset", so, sizeof(so)) < 0) {
		msgpack_zone_destroy(&z);
		v->results_bad++; /* not a result the processor wrote: unsealed at best */
		return 0;
	}
	rkept *k = calloc(1, sizeof(*k));
	char line[2048];
	int n = snprintf(line, sizeof(line), "%s %s %s v%lld", r.command_id,
			 bk_outcome_name(r.status), bk_err_name(r.code), (long long)r.version);
	for (uint32_t i = 0; i < r.n_event_ids && n > 0 && (size_t)n < sizeof(line); i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %s", r.event_ids[i]);
	msgpack_zone_destroy(&z);
	if (!k || !(k->line = strdup(line))) {
		free(k);
		return -1;
	}
	snprintf(k->at, sizeof(k->at), "%s:%s", sp, so);
	k->m = *m;
	k->m.payload = NULL;
	k->m.key = NULL;
	uint8_t d[BK_HASH_LEN];
	bk_seal_digest_bytes(m->payload, m->len, d);
	if (bk_trust_add(v->rtrust, m->partition, m->offset, d, k) < 0) {
		rkept_free(k);
		return -1;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: bookingctl verify [options]\n"
	    "\n"
	    "Checks the event log with the reader rule every reader shares (docs/design.md):\n"
	    "each record against the writers' seals (unsealed), each seal's signature\n"
	    "(garbage), each event's hash against its canonical bytes (bad_hash), its\n"
	    "prev_hash against the order's last valid event (bad_link, gaps included), a seq\n"
	    "taken twice by valid events (fork), each status change against the\n"
	    "booking_status table and each event against the order's state (illegal\n"
	    "transition / illegal event). Problems are printed one per line with partition\n"
	    "and offset, named by the verdict.\n"
	    "\n"
	    "  --writer-keyring F  the processors' writer keys ($BOOKING_WRITER_KEYRING)\n"
	    "  --unsealed-ok       a log written before seals: check everything else\n"
	    "  --await-seal-ms MS  a record no seal covers at the end of the log and younger\n"
	    "                      than MS (60000) is `awaiting seal` (an open batch), not a\n"
	    "                      problem; an unsealed copy of a valid event is a crashed\n"
	    "                      batch's leftover, counted, not a problem\n"
	    "  --order ID          only this order (reads only its partition)\n"
	    "  --partition N       only partition N\n"
	    "  --max-problems N    print at most N problems (all are counted)\n"
	    "  --format FMT        text (default: one line per problem, then the summary\n"
	    "                      lines) or json: one object {ok, records, seals, events,\n"
	    "                      orders, duplicates_skipped, problems, seals_checked,\n"
	    "                      problem_list: [{verdict, partition, offset, order_id,\n"
	    "                      seq, subtype, detail}], leftovers, awaiting_seal,\n"
	    "                      awaiting: [...], results: {answered, same_answer_again,\n"
	    "                      unsealed, not_results} or null}\n"
	    "  -h, --help          this text\n"
	    "\n%s"
	    "\nexit status: 0 the log is sound, 1 problems found, 2 bad usage, 3 Kafka failed\n",
	    bk_kconf_usage());
}

int cmd_verify(int argc, char **argv)
{
	verify v = {.await_ms = AWAIT_SEAL_MS, .max_problems = -1};
	bool as_json = false;
	int fr;
	bk_logread_opts o = {.partition = -1, .to = -1};
	const char *wkr_path = NULL;
	bool unsealed_ok = false;
	bk_keyring *writers = NULL;
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
		} else if ((fr = cmd_take_format(argc, argv, &i, "bookingctl verify", &as_json)) !=
			   0) {
			if (fr < 0)
				goto out;
		} else if (!strcmp(a, "--max-problems") && i + 1 < argc) {
			char *end;
			long long n = strtoll(argv[++i], &end, 10);
			if (*end || n < 0) {
				fprintf(stderr,
					"bookingctl verify: --max-problems: not a number\n");
				goto out;
			}
			v.max_problems = n;
		} else if (!strcmp(a, "--unsealed-ok")) {
			unsealed_ok = true;
		} else if (!strcmp(a, "--await-seal-ms") && i + 1 < argc) {
			char *end;
			long long n = strtoll(argv[++i], &end, 10);
			if (*end || n < 0) {
				fprintf(stderr,
					"bookingctl verify: --await-seal-ms: not a number\n");
				goto out;
			}
			v.await_ms = n;
		} else if (!strcmp(a, "--writer-keyring") && i + 1 < argc) {
			wkr_path = argv[++i];
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
	if (as_json && (!(v.jproblems = json_array()) || !(v.jawaiting = json_array()))) {
		rc = BK_EXIT_PROBLEM;
		goto out;
	}
	o.topic = bk_kconf_topic(kc, BK_TOPIC_EVENTS);
	if (!unsealed_ok && bk_trust_load_keyring(wkr_path, &writers, err, sizeof(err)) < 0) {
		fprintf(stderr,
			"bookingctl verify: %s (or --unsealed-ok for a log written before "
			"seals)\n",
			err);
		goto out;
	}
	if (!(v.trust =
		  bk_trust_new(writers, unsealed_ok, 1 << 16, on_release, NULL, on_bad_seal, &v))) {
		rc = BK_EXIT_DEPENDENCY;
		goto out;
	}
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
	v.now_ms = (int64_t)time(NULL) * 1000;
	v.flushing = true; /* what no seal covered by the end is unsealed */
	bk_trust_flush(v.trust, -1);
	v.flushing = false;
	unsealed_judge(&v);
	msgpack_sbuffer_destroy(&v.scratch);
	if (lr < 0) {
		fprintf(stderr, "bookingctl verify: %s\n", err);
		rc = BK_EXIT_DEPENDENCY;
		goto out;
	}
	/* the results: one counted answer per command record, contradictions named (a log
	 * without a results topic, e.g. one written by hand, skips this) */
	int nres;
	bk_logread_opts ro = o;
	ro.topic = bk_kconf_topic(kc, BK_TOPIC_RESULTS);
	if (bk_kconf_partition_count(rk, ro.topic, 10000, &nres, err, sizeof(err)) == 0) {
		v.answers = json_object();
		v.rtrust = bk_trust_new(writers, unsealed_ok, nres, on_result_release, NULL,
					on_bad_seal, &v);
		if (!v.answers || !v.rtrust ||
		    bk_logread(rk, &ro, on_result, &v, NULL, err, sizeof(err)) < 0) {
			fprintf(stderr, "bookingctl verify: results: %s\n", err);
			rc = BK_EXIT_DEPENDENCY;
			goto out;
		}
		bk_trust_flush(v.rtrust, -1);
		v.results_read = true;
	}
	if (as_json) {
		json_t *j = json_pack(
		    "{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:O, s:I, s:I, s:O}", "ok",
		    !v.problems, "records", (json_int_t)v.records, "seals", (json_int_t)v.seals,
		    "events", (json_int_t)v.events, "orders", (json_int_t)bk_engine_count(v.e),
		    "duplicates_skipped", (json_int_t)v.duplicates, "problems",
		    (json_int_t)v.problems, "seals_checked", !unsealed_ok, "problem_list",
		    v.jproblems, "leftovers", (json_int_t)v.leftovers, "awaiting_seal",
		    (json_int_t)v.awaiting, "awaiting", v.jawaiting);
		if (j)
			json_object_set_new(
			    j, "results",
			    v.results_read ? json_pack("{s:I, s:I, s:I, s:I}", "answered",
						       (json_int_t)v.results, "same_answer_again",
						       (json_int_t)v.results_copies, "unsealed",
						       (json_int_t)v.results_unsealed,
						       "not_results", (json_int_t)v.results_bad)
					   : json_null());
		char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (!t) {
			rc = BK_EXIT_PROBLEM;
			goto out;
		}
		puts(t);
		free(t);
		rc = v.problems ? BK_EXIT_PROBLEM : BK_EXIT_OK;
		goto out;
	}
	printf("verify: %s: records=%lld seals=%lld events=%lld orders=%zu "
	       "duplicates_skipped=%lld problems=%lld%s\n",
	       v.problems ? "PROBLEMS" : "ok", (long long)v.records, (long long)v.seals,
	       (long long)v.events, bk_engine_count(v.e), (long long)v.duplicates,
	       (long long)v.problems, unsealed_ok ? " (seals not checked: --unsealed-ok)" : "");
	printf("verify: unsealed: leftovers=%lld (copies of valid events: crashed or aborted "
	       "batches) awaiting_seal=%lld\n",
	       (long long)v.leftovers, (long long)v.awaiting);
	if (v.results_read)
		printf("verify: results: answered=%lld same_answer_again=%lld unsealed=%lld "
		       "not_results=%lld\n",
		       (long long)v.results, (long long)v.results_copies,
		       (long long)v.results_unsealed, (long long)v.results_bad);
	rc = v.problems ? BK_EXIT_PROBLEM : BK_EXIT_OK;
out:
	if (v.trust)
		bk_trust_flush(v.trust, -1);
	bk_trust_free(v.trust);
	free(v.uns);
	if (v.rtrust)
		bk_trust_flush(v.rtrust, -1);
	bk_trust_free(v.rtrust);
	json_decref(v.answers);
	bk_keyring_free(writers);
	bk_engine_free(v.e);
	if (rk)
		rd_kafka_destroy(rk);
	bk_kconf_destroy(kc);
	json_decref(v.jproblems); /* after the flushes above, which may still report */
	json_decref(v.jawaiting);
	return rc;
}
