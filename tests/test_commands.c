/*
 * test_commands.c - helper for tests/test_commands.sh (the booking-commands integration
 * test): `check` compares `bookingctl send --wait` output with a fixture's expectations,
 * `gen` writes a stream of valid commands, `bad` sends hostile records around valid ones
 * and checks the DLQ, `verify` re-reads the topics and checks exactly-one-outcome, the
 * reader rule (no fork, no gap) and every hash chain, `legacy-rule` writes a rules record
 * as written before profile.bind (no `owner`). Exit 0 pass, 1 fail, 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "bk_archive.h"
#include "bk_auth.h"
#include "bk_codec.h"
#include "bk_snap.h"
#include "bk_engine.h"
#include "fixture_run.h"
#include "kconf.h"
#include "trust.h"

#define TIMEOUT_MS 10000

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- check: send --wait output against the fixture's "expect" ---------------------- */

static int cmd_check(const char *fixture, const char *output)
{
	FILE *f = fopen(fixture, "r"), *o = fopen(output, "r");
	if (!f || !o) {
		fprintf(stderr, "check: cannot open %s or %s\n", fixture, output);
		return 2;
	}
	char *a = NULL, *b = NULL;
	size_t ca = 0, cb = 0;
	int n = 0, bad = 0, lineno = 0;
	while (getline(&a, &ca, f) > 0) {
		lineno++;
		if (a[0] == '\n' || a[0] == '#')
			continue;
		json_t *fx = json_loads(a, 0, NULL);
		if (getline(&b, &cb, o) <= 0) {
			fprintf(stderr, "check: %s:%d: no output line\n", fixture, lineno);
			json_decref(fx);
			bad++;
			break;
		}
		json_t *got = json_loads(b, 0, NULL);
		json_t *exp = json_object_get(fx, "expect");
		const char *want = json_string_value(json_object_get(exp, "status"));
		const char *code = json_string_value(json_object_get(exp, "code"));
		if (!want)
			want = "accepted";
		if (!strcmp(want, "malformed"))
			want = "dlq";
		const char *gs = json_string_value(json_object_get(got, "status"));
		const char *gc = json_string_value(json_object_get(got, "code"));
		const char *gid = json_string_value(json_object_get(got, "command_id"));
		const char *fid = json_string_value(json_object_get(fx, "id"));
		if (!gs || strcmp(gs, want) || (code && (!gc || strcmp(code, gc))) ||
		    (fid && (!gid || strcmp(fid, gid)))) {
			fprintf(stderr, "check: %s:%d: %s: want %s %s, got %s", fixture, lineno,
				fid ? fid : "?", want, code ? code : "", b);
			bad++;
		}
		n++;
		json_decref(fx);
		json_decref(got);
	}
	free(a);
	free(b);
	fclose(f);
	fclose(o);
	printf("check: %s: %d commands, %d unexpected\n", fixture, n, bad);
	return bad ? 1 : 0;
}

/* ---- gen: a stream of valid commands ------------------------------------------------ */

static void ts(int64_t s, char *buf, size_t n)
{
	time_t t = (time_t)s;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Command k (0-based) of order i; returns 0 when the order has no command k. */
static int gen_cmd(FILE *out, const char *run, int i, int k, int64_t now, int card_every)
{
	char at[32], exp[32], id[96], ord[96];
	ts(now, at, sizeof(at));
	snprintf(ord, sizeof(ord), "ord_%s_%d", run, i);
	snprintf(id, sizeof(id), "cmd_%s_%d_%d", run, i, k);
	const char *buyer = "usr_buyer_gen", *prov = "usr_prov_gen";
	bool card = card_every > 0 && i % card_every == 0;
	const char *hdr = "{\"id\":\"%s\",\"type\":\"%s\",\"order_id\":\"%s\",\"actor\":{%s},"
			  "\"at\":\"%s\",\"payload\":";
	char actor_b[80], actor_p[80];
	snprintf(actor_b, sizeof(actor_b), "\"user_id\":\"%s\",\"role\":\"buyer\"", buyer);
	snprintf(actor_p, sizeof(actor_p), "\"user_id\":\"%s\",\"role\":\"provider\"", prov);
	switch (card ? (k < 5 ? k : k == 5 ? 8 : -1) : (k < 8 ? k : -1)) {
	case 0:
		fprintf(out, hdr, id, "order.create", ord, actor_b, at);
		fprintf(out,
			"{\"mode\":\"RTB\",\"role_code\":\"photographer\",\"city\":\"Paris\","
			"\"start_ts\":\"2027-03-04T09:00:00Z\",\"end_ts\":\"2027-03-04T13:00:00Z\","
			"\"timezone\":\"Europe/Paris\",\"location\":{\"kind\":\"provider_studio\","
			"\"address\":\"12 rue des Arts, 75003 Paris\",\"lat\":48.86,\"lng\":2.36},"
			"\"travel_miles\":4,\"currency\":\"EUR\",\"line_items\":[{\"kind\":"
			"\"package\",\"title\":\"Half-day studio shoot\",\"qty\":1,\"unit_cents\":"
			"40000},{\"kind\":\"travel\",\"title\":\"Travel\",\"qty\":1,\"unit_cents\":"
			"2500}],\"platform_fee_cents\":4000,\"tax_cents\":8800,\"policy\":{"
			"\"cancellation\":\"flexible\",\"full_refund_until_hours\":48},"
			"\"provider_user_id\":\"%s\",\"service_profile_id\":\"sp_gen\"}}\n",
			prov);
		return 1;
	case 1:
		fprintf(out, hdr, id, "request.submit", ord, actor_b, at);
		fprintf(out, "{\"message\":\"Available?\"}}\n");
		return 1;
	case 2:
		fprintf(out, hdr, id, "request.accept", ord, actor_p, at);
		fprintf(out, "{}}\n");
		return 1;
	case 3:
		fprintf(out, hdr, id, "payment.captured", ord, "\"role\":\"system\"", at);
		fprintf(out, "{\"payment_intent_id\":\"pi_%s_%d\",\"amount_cents\":55300}}\n", run,
			i);
		return 1;
	case 4:
		fprintf(out, hdr, id, "order.start", ord, actor_p, at);
		fprintf(out, "{}}\n");
		return 1;
	case 5:
		fprintf(out, hdr, id, "note.add", ord, actor_b, at);
		fprintf(out, "{\"text\":\"see you there\"}}\n");
		return 1;
	case 6:
		fprintf(out, hdr, id, "order.deliver", ord, actor_p, at);
		fprintf(out, "{}}\n");
		return 1;
	case 7:
		fprintf(out, hdr, id, "order.complete", ord, actor_b, at);
		fprintf(out, "{}}\n");
		return 1;
	case 8: /* a card nobody answers: the sweep sends expiring, then expires it */
		ts(now + 5 + i % 10, exp, sizeof(exp));
		fprintf(out, hdr, id, "card.open", ord, actor_p, at);
		fprintf(out,
			"{\"type\":\"proofs\",\"expires_at\":\"%s\",\"payload\":{\"gallery_url\":"
			"\"https://media.example/g/%d\"}}}\n",
			exp, i);
		return 1;
	default:
		return 0;
	}
}

static int cmd_gen(const char *run, int orders, int window, int card_every, unsigned seed)
{
	int64_t now = (int64_t)time(NULL);
	if (orders < 0 || window <= 0) {
		fprintf(stderr, "gen: need orders >= 0 and window > 0\n");
		return 2;
	}
	int *next = calloc((size_t)orders, sizeof(int));
	int *active = calloc((size_t)window, sizeof(int));
	if ((orders > 0 && !next) || !active) {
		free(next);
		free(active);
		return 2;
	}
	int n_active = 0, started = 0, total = 0;
	srand(seed);
	while (started < orders || n_active > 0) {
		while (n_active < window && started < orders)
			active[n_active++] = started++;
		int j = rand() % n_active, i = active[j];
		if (gen_cmd(stdout, run, i, next[i], now, card_every)) {
			next[i]++;
			total++;
		} else {
			active[j] = active[--n_active];
		}
	}
	free(next);
	free(active);
	fprintf(stderr, "gen: %d commands for %d orders\n", total, orders);
	return 0;
}

/* ---- reading whole topics ----------------------------------------------------------- */

typedef void (*rec_fn)(const rd_kafka_message_t *m, void *opaque);

/* Read every partition of topic from 0 to its high watermark (each partition in order). */
/* Set by a handler that keeps the message (read_topic then does not destroy it). */
static bool g_kept;

static int read_topic(rd_kafka_t *rk, const char *topic, rec_fn fn, void *opaque)
{
	char err[512];
	int n;
	if (bk_kconf_partition_count(rk, topic, TIMEOUT_MS, &n, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	int64_t *end = calloc((size_t)n, sizeof(*end));
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
	int left = 0, rc = 0;
	for (int p = 0; p < n && rc == 0; p++) {
		int64_t lo, hi;
		if (bk_kconf_watermarks(rk, topic, p, TIMEOUT_MS, &lo, &hi, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			rc = -1;
		} else if (lo > 0) {
			fprintf(stderr, "%s [%d]: low watermark %lld: data was lost\n", topic, p,
				(long long)lo);
			rc = -1;
		} else if (hi > lo) {
			end[p] = hi;
			rd_kafka_topic_partition_list_add(l, topic, p)->offset = lo;
			left++;
		}
	}
	if (rc == 0 && left > 0) {
		rd_kafka_assign(rk, l);
		int64_t last = mono_ms();
		while (left > 0) {
			rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
			if (!m) {
				if (mono_ms() - last > TIMEOUT_MS) {
					fprintf(stderr, "%s: read stalled\n", topic);
					rc = -1;
					break;
				}
				continue;
			}
			last = mono_ms();
			int32_t p = m->partition;
			if (p >= 0 && p < n && end[p] > 0) {
				bool done = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ||
					    (!m->err && m->offset >= end[p] - 1);
				g_kept = false;
				if (!m->err)
					fn(m, opaque);
				if (done) {
					end[p] = 0;
					left--;
				}
			}
			if (!g_kept) /* a record waiting for its seal is kept (read_sealed) */
				rd_kafka_message_destroy(m);
			g_kept = false;
		}
		rd_kafka_assign(rk, NULL);
	}
	rd_kafka_topic_partition_list_destroy(l);
	free(end);
	return rc;
}

static int hdr_str(const rd_kafka_message_t *m, const char *name, char *buf, size_t n)
{
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t vn;
	if (rd_kafka_message_headers(m, &h) || !h || rd_kafka_header_get_last(h, name, &v, &vn) ||
	    !v || vn >= n)
		return -1;
	memcpy(buf, v, vn);
	buf[vn] = '\0';
	return 0;
}

static int64_t hdr_int(const rd_kafka_message_t *m, const char *name)
{
	char b[32];
	return hdr_str(m, name, b, sizeof(b)) < 0 ? -2 : strtoll(b, NULL, 10);
}

/* ---- verify ------------------------------------------------------------------------- */

typedef struct vstate {
	json_t *cmds;	 /* "p:o" -> command id (or "?") */
	json_t *results; /* "p:o" -> [status...] */
	json_t *evrecs;	 /* command id -> number of events records */
	json_t *status_n;
	bk_engine *eng;
	msgpack_zone z;
	msgpack_sbuffer sb;
	long n_events, forks, gaps, dups, badhash, undecodable, evolve_err;
	json_t *gap_list; /* [order_id, seq, hex hash] of events classified GAP */
} vstate;

static void v_cmd(const rd_kafka_message_t *m, void *opaque)
{
	vstate *v = opaque;
	char key[48], ct[64] = "";
	snprintf(key, sizeof(key), "%d:%lld", (int)m->partition, (long long)m->offset);
	bk_command c;
	char err[256];
	hdr_str(m, "content-type", ct, sizeof(ct));
	msgpack_zone_clear(&v->z);
	bool json = !strcmp(ct, "application/json");
	if (m->payload && bk_codec_command_decode(m->payload, m->len, json, false, &v->z, &c, err,
						  sizeof(err)) == 0)
		json_object_set_new(v->cmds, key, json_string(c.id));
	else
		json_object_set_new(v->cmds, key, json_string("?"));
}

static void v_result(const rd_kafka_message_t *m, void *opaque)
{
	vstate *v = opaque;
	char key[48];
	snprintf(key, sizeof(key), "%lld:%lld", (long long)hdr_int(m, "src-partition"),
		 (long long)hdr_int(m, "src-offset"));
	bk_result r;
	char err[256];
	msgpack_zone_clear(&v->z);
	const char *st = "undecodable";
	if (bk_codec_result_decode(m->payload, m->len, &v->z, &r, err, sizeof(err)) == 0)
		st = bk_outcome_name(r.status);
	json_t *a = json_object_get(v->results, key);
	if (!a) {
		a = json_array();
		json_object_set_new(v->results, key, a);
	} else if (!strcmp(json_string_value(json_array_get(a, 0)), st)) {
		/* a second sealed copy of the same answer (its batch's events seal did not
		 * land, so it was decided again): the first counts, no contradiction */
		return;
	}
	json_array_append_new(a, json_string(st));
	json_object_set_new(v->status_n, st,
			    json_integer(json_integer_value(json_object_get(v->status_n, st)) + 1));
}

static void v_event(const rd_kafka_message_t *m, void *opaque)
{
	vstate *v = opaque;
	bk_record r;
	char err[256];
	msgpack_zone_clear(&v->z);
	if (!m->payload ||
	    bk_codec_record_decode(m->payload, m->len, &v->z, &r, err, sizeof(err))) {
		v->undecodable++;
		fprintf(stderr, "verify: events [%d] @%lld undecodable: %s\n", (int)m->partition,
			(long long)m->offset, err);
		return;
	}
	json_t *c = json_object_get(v->evrecs, r.command_id);
	json_object_set_new(v->evrecs, r.command_id, json_integer(json_integer_value(c) + 1));
	bk_chain_verdict vs[BK_MAX_EVENTS];
	if (r.n > BK_MAX_EVENTS) {
		v->undecodable++;
		return;
	}
	for (uint32_t i = 0; i < r.n; i++) {
		bk_event e = r.events[i];
		msgpack_sbuffer_clear(&v->sb);
		if (bk_codec_event_seal(&e, &v->sb) < 0 ||
		    memcmp(e.hash, r.events[i].hash, BK_HASH_LEN) != 0) {
			v->badhash++;
			fprintf(stderr, "verify: %s seq %lld: hash does not verify\n", r.order_id,
				(long long)r.events[i].seq);
		}
	}
	if (bk_engine_read(v->eng, &r, vs, err, sizeof(err)) < 0) {
		v->evolve_err++;
		fprintf(stderr, "verify: %s: %s\n", r.order_id, err);
	}
	for (uint32_t i = 0; i < r.n; i++) {
		v->n_events++;
		if (vs[i] == BK_CHAIN_FORK)
			v->forks++;
		else if (vs[i] == BK_CHAIN_BAD_LINK || vs[i] == BK_CHAIN_BAD_HASH)
			v->gaps++;
		else if (vs[i] == BK_CHAIN_DUPLICATE)
			v->dups++;
		if (vs[i] == BK_CHAIN_BAD_LINK) {
			char hex[2 * BK_HASH_LEN + 1];
			bk_hex(r.events[i].hash, BK_HASH_LEN, hex);
			json_array_append_new(
			    v->gap_list,
			    json_pack("[s, I, s]", r.order_id, (json_int_t)r.events[i].seq, hex));
		}
		if (bk_chain_verdict_reported(vs[i]))
			fprintf(stderr, "verify: %s seq %lld: %s (events [%d] @%lld)\n", r.order_id,
				(long long)r.events[i].seq, bk_chain_verdict_name(vs[i]),
				(int)m->partition, (long long)m->offset);
	}
}

static void bump(json_t *j, const char *k)
{
	json_object_set_new(j, k, json_integer(json_integer_value(json_object_get(j, k)) + 1));
}

/* ---- the seal rule for the verifier: only sealed events and results count ---------- */

typedef struct sealed_read {
	rec_fn fn;
	void *opaque;
	bool events; /* digest: events record (else the value's bytes) */
	bk_trust *trust;
	long unsealed, seals, bad_seals;
} sealed_read;

/* A kept record is the consumer's message itself, destroyed once released. */
static void sr_release(void *opaque, void *rec, int32_t partition, int64_t offset, bool sealed,
		       const uint8_t *digest)
{
	(void)digest;
	sealed_read *sr = opaque;
	rd_kafka_message_t *m = rec;
	(void)partition;
	(void)offset;
	if (sealed)
		sr->fn(m, sr->opaque);
	else
		sr->unsealed++;
	rd_kafka_message_destroy(m);
}

static void sr_bad(void *opaque, const rd_kafka_message_t *m, const char *why)
{
	sealed_read *sr = opaque;
	sr->bad_seals++;
	fprintf(stderr, "verify: %s [%d] @%lld: bad seal: %s\n", rd_kafka_topic_name(m->rkt),
		(int)m->partition, (long long)m->offset, why);
}

static void sr_intake(const rd_kafka_message_t *m, void *opaque)
{
	sealed_read *sr = opaque;
	if (bk_trust_is_seal(m)) {
		sr->seals++;
		(void)bk_trust_seal(sr->trust, m);
		return;
	}
	uint8_t d[BK_HASH_LEN];
	if (sr->events) {
		msgpack_zone z;
		msgpack_zone_init(&z, 4096);
		bk_record r;
		char err[256];
		bool ok = m->payload &&
			  bk_codec_record_decode(m->payload, m->len, &z, &r, err, sizeof(err)) == 0;
		if (ok)
			bk_seal_digest_record(&r, d);
		msgpack_zone_destroy(&z);
		if (!ok) {
			sr->fn(m, sr->opaque); /* the handler counts it undecodable */
			return;
		}
	} else {
		bk_seal_digest_bytes(m->payload, m->len, d);
	}
	if (bk_trust_add(sr->trust, m->partition, m->offset, d, (void *)m) == 0)
		g_kept = true;
}

/* read_topic through the seal rule (writer keyring: $BOOKING_WRITER_KEYRING). */
static int read_sealed(rd_kafka_t *rk, const char *topic, bool events, rec_fn fn, void *opaque,
		       long *ret_unsealed)
{
	char err[512];
	bk_keyring *kr = NULL;
	if (bk_trust_load_keyring(NULL, &kr, err, sizeof(err)) < 0) {
		fprintf(stderr, "verify: %s\n", err);
		return -1;
	}
	sealed_read sr = {.fn = fn, .opaque = opaque, .events = events};
	sr.trust = bk_trust_new(kr, false, 1 << 12, sr_release, NULL, sr_bad, &sr);
	int rc = sr.trust ? read_topic(rk, topic, sr_intake, &sr) : -1;
	if (sr.trust)
		bk_trust_flush(sr.trust, -1);
	bk_trust_free(sr.trust);
	bk_keyring_free(kr);
	if (ret_unsealed)
		*ret_unsealed += sr.unsealed;
	fprintf(stderr, "verify: %s: seals=%ld bad_seals=%ld unsealed_records=%ld\n", topic,
		sr.seals, sr.bad_seals, sr.unsealed);
	return rc < 0 || sr.bad_seals ? -1 : 0;
}

/* ---- outcomes: what a stream came to, to compare two runs of it -------------------- */

typedef struct outcomes {
	FILE *out;
	json_t *seen; /* src-partition:src-offset of the sealed results seen */
	msgpack_zone z;
	long results, later;
} outcomes;

/* Every sealed result: the command's place (src-partition:src-offset), id, status, code,
 * version, event ids. A command answered twice shows twice. */
static void o_result(const rd_kafka_message_t *m, void *opaque)
{
	outcomes *o = opaque;
	bk_result r;
	char err[256], at[48];
	msgpack_zone_clear(&o->z);
	if (bk_codec_result_decode(m->payload, m->len, &o->z, &r, err, sizeof(err)) < 0) {
		fprintf(o->out, "undecodable-result %d:%lld\n", (int)m->partition,
			(long long)m->offset);
		return;
	}
	snprintf(at, sizeof(at), "%lld:%lld", (long long)hdr_int(m, "src-partition"),
		 (long long)hdr_int(m, "src-offset"));
	char line[4096];
	int n = snprintf(line, sizeof(line), "result %s %s %s %s %lld", at, r.command_id,
			 bk_outcome_name(r.status), bk_err_name(r.code), (long long)r.version);
	for (uint32_t i = 0; i < r.n_event_ids && n > 0 && (size_t)n < sizeof(line); i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %s", r.event_ids[i]);
	json_t *first = json_object_get(o->seen, at);
	if (first) { /* a second sealed result for one command record: the first counts */
		o->later++;
		if (strcmp(json_string_value(first), line) != 0)
			fprintf(o->out, "contradiction %s\n", line);
		return;
	}
	json_object_set_new(o->seen, at, json_string(line));
	o->results++;
	fprintf(o->out, "%s\n", line);
}

/* Every sealed event: event id, order, seq, hash. */
static void o_event(const rd_kafka_message_t *m, void *opaque)
{
	outcomes *o = opaque;
	bk_record r;
	char err[256], hex[2 * BK_HASH_LEN + 1];
	msgpack_zone_clear(&o->z);
	if (!m->payload ||
	    bk_codec_record_decode(m->payload, m->len, &o->z, &r, err, sizeof(err))) {
		fprintf(o->out, "undecodable-events %d:%lld\n", (int)m->partition,
			(long long)m->offset);
		return;
	}
	for (uint32_t i = 0; i < r.n; i++) {
		bk_hex(r.events[i].hash, BK_HASH_LEN, hex);
		fprintf(o->out, "event %s %s %lld %s\n", r.events[i].event_id, r.order_id,
			(long long)r.events[i].seq, hex);
	}
}

static int cmd_outcomes(bk_kconf *kc)
{
	char err[512];
	static const char *const defs[] = {
	    "enable.partition.eof", "true",  "group.id", "test-commands-outcomes",
	    "enable.auto.commit",   "false", NULL};
	rd_kafka_t *rk;
	if (bk_kconf_new_handle(kc, BK_KCONF_CONSUMER, defs, &rk, err, sizeof(err)) < 0) {
		fprintf(stderr, "outcomes: %s\n", err);
		return 2;
	}
	outcomes o = {.out = stdout, .seen = json_object()};
	msgpack_zone_init(&o.z, 1 << 16);
	int rc =
	    read_sealed(rk, bk_kconf_topic(kc, BK_TOPIC_RESULTS), false, o_result, &o, NULL) < 0 ||
		    read_sealed(rk, bk_kconf_topic(kc, BK_TOPIC_EVENTS), true, o_event, &o, NULL) <
			0
		? 1
		: 0;
	fprintf(stderr, "outcomes: results=%ld second_sealed_results=%ld\n", o.results, o.later);
	json_decref(o.seen);
	msgpack_zone_destroy(&o.z);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return rc;
}

static void count_status(const bk_order *o, void *opaque)
{
	json_t *j = opaque;
	bump(json_object_get(j, "orders"), bk_status_name((bk_status)o->status));
	for (uint32_t i = 0; i < o->n_cards; i++)
		bump(json_object_get(j, "cards"),
		     bk_card_state_name((bk_card_state)o->cards[i].state));
}

static int cmd_verify(bk_kconf *kc, bool all_accepted, bool strict, const char *golden,
		      long wait_ms)
{
	char err[512];
	static const char *const defs[] = {
	    "enable.partition.eof", "true",  "group.id", "test-commands-verify",
	    "enable.auto.commit",   "false", NULL};
	rd_kafka_t *rk;
	if (bk_kconf_new_handle(kc, BK_KCONF_CONSUMER, defs, &rk, err, sizeof(err)) < 0) {
		fprintf(stderr, "verify: %s\n", err);
		return 2;
	}
	vstate v = {.eng = bk_engine_new()};
	msgpack_zone_init(&v.z, 1 << 16);
	msgpack_sbuffer_init(&v.sb);
	int rc = 1;
	int64_t deadline = mono_ms() + wait_ms;
	size_t missing = 0, multi = 0;
	/* results may still be coming: read until every command has one or the wait is over */
	for (;;) {
		json_decref(v.cmds);
		json_decref(v.results);
		json_decref(v.status_n);
		v.cmds = json_object();
		v.results = json_object();
		v.status_n = json_object();
		long unsealed = 0;
		if (read_topic(rk, bk_kconf_topic(kc, BK_TOPIC_COMMANDS), v_cmd, &v) < 0 ||
		    read_sealed(rk, bk_kconf_topic(kc, BK_TOPIC_RESULTS), false, v_result, &v,
				&unsealed) < 0)
			goto out;
		missing = multi = 0;
		const char *k;
		json_t *val;
		json_object_foreach(v.cmds, k, val)
		{
			json_t *a = json_object_get(v.results, k);
			if (!a)
				missing++;
			else if (json_array_size(a) > 1)
				multi++;
		}
		if (missing == 0 || mono_ms() > deadline)
			break;
		fprintf(stderr, "verify: %zu of %zu commands without a result yet\n", missing,
			json_object_size(v.cmds));
		sleep(2);
	}
	v.evrecs = json_object();
	v.gap_list = json_array();
	long unsealed_events = 0;
	if (read_sealed(rk, bk_kconf_topic(kc, BK_TOPIC_EVENTS), true, v_event, &v,
			&unsealed_events) < 0)
		goto out;
	/* a GAP whose event the order got later (same seq, same hash) was an orphan copy:
	 * its predecessor's delivery had failed and both were written again */
	long healed = 0;
	for (size_t i = 0; i < json_array_size(v.gap_list); i++) {
		json_t *g = json_array_get(v.gap_list, i);
		const bk_order *o = bk_engine_order(v.eng, json_string_value(json_array_get(g, 0)));
		int64_t seq = json_integer_value(json_array_get(g, 1));
		char hex[2 * BK_HASH_LEN + 1];
		if (o && seq >= 1 && seq <= o->version) {
			bk_hex(o->hashes[seq - 1], BK_HASH_LEN, hex);
			if (!strcmp(hex, json_string_value(json_array_get(g, 2))))
				healed++;
		}
	}
	v.gaps -= healed;
	long multi_ev = 0;
	{
		const char *k;
		json_t *val;
		json_object_foreach(v.evrecs, k, val) if (json_integer_value(val) > 1)
		{
			multi_ev++;
			fprintf(stderr, "verify: command %s has %lld events records\n", k,
				(long long)json_integer_value(val));
		}
		json_object_foreach(v.cmds, k, val)
		{
			json_t *a = json_object_get(v.results, k);
			if (!a)
				fprintf(stderr, "verify: command %s (%s) has no result\n", k,
					json_string_value(val));
			else if (json_array_size(a) > 1)
				fprintf(stderr, "verify: command %s (%s) has %zu results\n", k,
					json_string_value(val), json_array_size(a));
		}
	}
	json_t *st = json_pack("{s:o, s:o}", "orders", json_object(), "cards", json_object());
	bk_engine_foreach(v.eng, count_status, st);
	char *sts = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
	char *rs = json_dumps(v.status_n, JSON_COMPACT | JSON_SORT_KEYS);
	printf("verify: commands=%zu missing_results=%zu multi_results=%zu events=%ld "
	       "multi_events_records=%ld forks=%ld gaps=%ld orphan_copies=%ld duplicates=%ld "
	       "bad_hashes=%ld "
	       "undecodable=%ld evolve_errors=%ld results=%s orders=%zu states=%s\n",
	       json_object_size(v.cmds), missing, multi, v.n_events, multi_ev, v.forks, v.gaps,
	       healed, v.dups, v.badhash, v.undecodable, v.evolve_err, rs, bk_engine_count(v.eng),
	       sts);
	free(sts);
	free(rs);
	json_decref(st);
	bool ok = missing == 0 && multi == 0 && v.forks == 0 && v.gaps == 0 && v.badhash == 0 &&
		  v.undecodable == 0 && v.evolve_err == 0;
	/* strict: no copy at all (a crash leaves a prefix; only failed deliveries leave
	 * orphan copies, each one healed by the command's second record) */
	if (strict && (multi_ev || healed))
		ok = false;
	if (all_accepted) {
		long acc = (long)json_integer_value(json_object_get(v.status_n, "accepted"));
		if ((size_t)acc != json_object_size(v.cmds)) {
			fprintf(stderr, "verify: %ld of %zu results are `accepted`\n", acc,
				json_object_size(v.cmds));
			ok = false;
		}
	}
	if (golden) {
		json_error_t je;
		json_t *want = json_load_file(golden, 0, &je);
		json_t *got = fx_engine_summary(v.eng);
		json_t *diffs = json_array();
		if (!want) {
			fprintf(stderr, "verify: %s: %s\n", golden, je.text);
			ok = false;
		} else if (fx_subset_diff(json_object_get(want, "orders"), got, "orders", diffs)) {
			for (size_t i = 0; i < json_array_size(diffs); i++)
				fprintf(stderr, "verify: golden: %s\n",
					json_string_value(json_array_get(diffs, i)));
			ok = false;
		}
		json_decref(want);
		json_decref(got);
		json_decref(diffs);
	}
	rc = ok ? 0 : 1;
out:
	json_decref(v.cmds);
	json_decref(v.results);
	json_decref(v.status_n);
	json_decref(v.evrecs);
	json_decref(v.gap_list);
	bk_engine_free(v.eng);
	msgpack_zone_destroy(&v.z);
	msgpack_sbuffer_destroy(&v.sb);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return rc;
}

/* ---- bad: hostile records around valid ones ------------------------------------------ */

typedef struct bad_msg {
	const char *name;   /* what it tests */
	const char *reason; /* substring expected in the DLQ reason; NULL: a valid command */
	int64_t offset;
	int32_t partition;
	bool seen;
	bool no_id; /* no command id can be read from its bytes: no command-id header */
} bad_msg;

static void bad_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	bad_msg *b = m->_private;
	if (!m->err) {
		b->partition = m->partition;
		b->offset = m->offset;
	}
}

static char *valid_cmd(const char *id, const char *ord, int64_t now)
{
	char at[32];
	ts(now, at, sizeof(at));
	char *s = NULL;
	if (asprintf(&s,
		     "{\"id\":\"%s\",\"type\":\"order.create\",\"order_id\":\"%s\",\"actor\":{"
		     "\"user_id\":\"usr_b\",\"role\":\"buyer\"},\"at\":\"%s\",\"payload\":{"
		     "\"mode\":\"RTB\",\"role_code\":\"model\",\"city\":\"Paris\",\"start_ts\":"
		     "\"2027-03-04T09:00:00Z\",\"end_ts\":\"2027-03-04T13:00:00Z\",\"timezone\":"
		     "\"Europe/Paris\",\"location\":{\"kind\":\"remote\"},\"currency\":\"EUR\","
		     "\"line_items\":[{\"kind\":\"package\",\"title\":\"x\",\"qty\":1,"
		     "\"unit_cents\":1000}],\"platform_fee_cents\":100,\"tax_cents\":0,\"policy\":"
		     "{},\"provider_user_id\":\"usr_p\",\"service_profile_id\":\"sp_x\"}}",
		     id, ord, at) < 0)
		return NULL;
	return s;
}

/* msgpack bytes of a JSON text (sbuffer data, caller frees). */
static char *to_msgpack(const char *json, size_t *ret_n)
{
	json_t *j = json_loads(json, 0, NULL);
	msgpack_zone z;
	msgpack_zone_init(&z, 4096);
	bk_val v;
	char err[128];
	char *out = NULL;
	if (j && bk_json_to_val(j, &z, &v, err, sizeof(err)) == 0) {
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		msgpack_packer pk;
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_object(&pk, v);
		out = sb.data;
		*ret_n = sb.size;
	}
	msgpack_zone_destroy(&z);
	json_decref(j);
	return out;
}

static int cmd_bad(bk_kconf *kc, const char *sk_path, const char *key_id, const char *wrong_sk,
		   const char *wrong_id)
{
	uint8_t sk[BK_SK_LEN], sk2[BK_SK_LEN];
	char buf[256];
	const char *paths[2] = {sk_path, wrong_sk};
	uint8_t *keys[2] = {sk, sk2};
	for (int i = 0; i < 2; i++) {
		FILE *f = fopen(paths[i], "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		if (f)
			fclose(f);
		while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
			n--;
		if (bk_b64_decode(buf, n, keys[i], BK_SK_LEN) != BK_SK_LEN) {
			fprintf(stderr, "bad: %s: not a secret key\n", paths[i]);
			return 2;
		}
	}
	char err[512];
	rd_kafka_conf_t *conf;
	static const char *const pdef[] = {"enable.idempotence", "true", "message.max.bytes",
					   "8000000", NULL};
	if (bk_kconf_build(kc, BK_KCONF_PRODUCER, pdef, &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "bad: %s\n", err);
		return 2;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, bad_dr);
	rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!prod)
		return 2;
	int64_t now = (int64_t)time(NULL);
	enum { N = 14 };
	bad_msg msgs[N] = {
	    {.name = "valid-1", .reason = NULL},
	    {.name = "unsigned", .reason = "unsigned"},
	    {.name = "valid-2", .reason = NULL},
	    {.name = "forged", .reason = "auth: "},
	    {.name = "unknown-key", .reason = "auth: "},
	    {.name = "malformed-msgpack", .no_id = true, .reason = "decode: "},
	    {.name = "not-a-map", .no_id = true, .reason = "decode: "},
	    {.name = "oversized", .no_id = true, .reason = "oversized"},
	    {.name = "wrong-role", .reason = "auth: "},
	    {.name = "internal-type", .reason = "decode: "},
	    {.name = "bad-json", .no_id = true, .reason = "decode: "},
	    {.name = "wrong-content-type", .reason = "content-type"},
	    {.name = "key-mismatch", .reason = "key"},
	    {.name = "valid-3", .reason = NULL},
	};
	for (int i = 0; i < N; i++) {
		bad_msg *b = &msgs[i];
		b->partition = -1;
		char id[64], ord[64];
		snprintf(id, sizeof(id), "cmd_bad_%d", i);
		snprintf(ord, sizeof(ord), "ord_bad_%d", i);
		char *json = valid_cmd(id, ord, now);
		size_t n = 0;
		char *val = NULL;
		const char *ct = "application/msgpack";
		const char *kid = key_id;
		uint8_t *key = sk;
		bool sign = true;
		const char *rkey = ord;
		if (!strcmp(b->name, "unsigned")) {
			sign = false;
		} else if (!strcmp(b->name, "unknown-key")) {
			kid = "no-such-key";
		} else if (!strcmp(b->name, "wrong-role")) {
			kid = wrong_id; /* a key that may assert buyer only, signing role system */
			key = sk2;
			free(json);
			char at[32];
			ts(now, at, sizeof(at));
			if (asprintf(
				&json,
				"{\"id\":\"%s\",\"type\":\"payment.captured\",\"order_id\":"
				"\"ord_bad_0\",\"actor\":{\"role\":\"system\"},\"at\":\"%s\","
				"\"payload\":{\"payment_intent_id\":\"pi\",\"amount_cents\":1}}",
				id, at) < 0)
				json = NULL;
			rkey = "ord_bad_0";
		} else if (!strcmp(b->name, "internal-type")) {
			/* the type order.create -> order.sweep (internal, never accepted on the
			 * command topic) */
			const char *p = json ? strstr(json, "\"order.create\"") : NULL;
			char *sweep = NULL;
			if (p && asprintf(&sweep, "%.*s\"order.sweep\"%s", (int)(p - json), json,
					  p + strlen("\"order.create\"")) < 0)
				sweep = NULL;
			free(json);
			json = sweep;
		} else if (!strcmp(b->name, "key-mismatch")) {
			rkey = "ord_somewhere_else";
		}
		if (!strcmp(b->name, "malformed-msgpack")) {
			/* a map of 5 with one key, truncated */
			static const char trunc[6] = {'\xde', '\x00', '\x05', '\xa2', 'i', 'd'};
			n = sizeof(trunc);
			if ((val = malloc(n)))
				memcpy(val, trunc, n);
		} else if (!strcmp(b->name, "not-a-map")) {
			val = to_msgpack("[1,2,3]", &n);
		} else if (!strcmp(b->name, "oversized")) {
			n = BK_MAX_MESSAGE + 10;
			if ((val = malloc(n)))
				memset(val, 0x91, n);
		} else if (!strcmp(b->name, "bad-json")) {
			ct = "application/json";
			val = strdup("{\"id\": \"cmd_x\", \"type\": ");
			n = val ? strlen(val) : 0;
		} else if (!strcmp(b->name, "wrong-content-type")) {
			ct = "text/xml";
			val = to_msgpack(json, &n);
		} else {
			val = to_msgpack(json, &n);
		}
		free(json);
		if (!val) {
			fprintf(stderr, "bad: %s: out of memory building the record\n", b->name);
			return 1;
		}
		rd_kafka_headers_t *h = rd_kafka_headers_new(3);
		rd_kafka_header_add(h, "content-type", -1, ct, -1);
		if (sign) {
			uint8_t sig[BK_SIG_LEN];
			bk_auth_sign(key, val, n, sig);
			if (!strcmp(b->name, "forged"))
				sig[7] ^= 0x20;
			rd_kafka_header_add(h, "key-id", -1, kid, -1);
			rd_kafka_header_add(h, "signature", -1, sig, sizeof(sig));
		}
		rd_kafka_resp_err_t e =
		    rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(bk_kconf_topic(kc, BK_TOPIC_COMMANDS)),
				      RD_KAFKA_V_KEY(rkey, strlen(rkey)), RD_KAFKA_V_VALUE(val, n),
				      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				      RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(b), RD_KAFKA_V_END);
		free(val);
		if (e) {
			fprintf(stderr, "bad: produce %s: %s\n", b->name, rd_kafka_err2str(e));
			rd_kafka_headers_destroy(h);
			return 1;
		}
		rd_kafka_flush(prod, TIMEOUT_MS); /* one by one: offsets in this order */
	}
	rd_kafka_destroy(prod);

	/* outcomes: results for the valid ones, DLQ records for the rest */
	static const char *const cdef[] = {"enable.partition.eof", "false", "group.id",
					   "test-commands-bad", NULL};
	rd_kafka_t *rk;
	if (bk_kconf_new_handle(kc, BK_KCONF_CONSUMER, cdef, &rk, err, sizeof(err)) < 0)
		return 2;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(64);
	const bk_topic tl[2] = {BK_TOPIC_RESULTS, BK_TOPIC_DLQ};
	for (int t = 0; t < 2; t++) {
		int np = 0;
		if (bk_kconf_partition_count(rk, bk_kconf_topic(kc, tl[t]), TIMEOUT_MS, &np, err,
					     sizeof(err)) < 0)
			return 2;
		for (int p = 0; p < np; p++)
			rd_kafka_topic_partition_list_add(l, bk_kconf_topic(kc, tl[t]), p)->offset =
			    RD_KAFKA_OFFSET_BEGINNING;
	}
	rd_kafka_assign(rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	int seen = 0;
	int bad = 0;
	int64_t deadline = mono_ms() + 30000;
	while (seen < N && mono_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (!m)
			continue;
		if (m->err) {
			rd_kafka_message_destroy(m);
			continue;
		}
		bool is_dlq =
		    !strcmp(rd_kafka_topic_name(m->rkt), bk_kconf_topic(kc, BK_TOPIC_DLQ));
		int64_t sp = hdr_int(m, "src-partition"), so = hdr_int(m, "src-offset");
		for (int i = 0; i < N; i++) {
			bad_msg *b = &msgs[i];
			if (b->partition != sp || b->offset != so || b->seen)
				continue;
			b->seen = true;
			seen++;
			char reason[512] = "";
			if (is_dlq)
				hdr_str(m, "reason", reason, sizeof(reason));
			bool ok = is_dlq ? b->reason && strstr(reason, b->reason) != NULL
					 : b->reason == NULL;
			char orig[128] = "";
			if (is_dlq && (size_t)m->len != (size_t)(strcmp(b->name, "oversized")
								     ? m->len
								     : BK_MAX_MESSAGE + 10))
				ok = false;
			if (is_dlq && hdr_str(m, "orig-content-type", orig, sizeof(orig)) < 0)
				ok = false;
			/* every answer names the command it answers when its id can be read */
			char cid[128] = "", want[64];
			snprintf(want, sizeof(want), "cmd_bad_%d", i);
			int has = hdr_str(m, "command-id", cid, sizeof(cid)) == 0;
			if (b->no_id ? has : !has || strcmp(cid, want) != 0)
				ok = false;
			printf("bad: %-20s -> %s%s command-id=%s %s\n", b->name,
			       is_dlq ? "dlq: " : "result", reason, cid[0] ? cid : "-",
			       ok ? "ok" : "UNEXPECTED");
			if (!ok)
				bad++;
		}
		rd_kafka_message_destroy(m);
	}
	for (int i = 0; i < N; i++)
		if (!msgs[i].seen) {
			printf("bad: %-20s -> nothing (neither result nor DLQ)\n", msgs[i].name);
			bad++;
		}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	sodium_memzero(sk, sizeof(sk));
	return bad ? 1 : 0;
}

/* ---- junk: fill a partition past the dev broker's retention (lost history) ------------ */

static int cmd_junk(bk_kconf *kc, bk_topic t, int count, int size)
{
	char err[512];
	static const char *const pdef[] = {"message.max.bytes", "8000000", NULL};
	rd_kafka_t *prod;
	if (bk_kconf_new_handle(kc, BK_KCONF_PRODUCER, pdef, &prod, err, sizeof(err)) < 0) {
		fprintf(stderr, "junk: %s\n", err);
		return 2;
	}
	char *val = calloc(1, (size_t)size);
	for (int i = 0; i < count && val; i++)
		if (rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(bk_kconf_topic(kc, t)),
				      RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_VALUE(val, (size_t)size),
				      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END))
			break;
	free(val);
	int rc = rd_kafka_flush(prod, TIMEOUT_MS) ? 1 : 0;
	rd_kafka_destroy(prod);
	return rc;
}

/* ---- legacy-rule: a booking.rules record from before profile.bind ---------------------- */

/* {service_profile_id, owner_user_id, rules: [{rule_id, allow_ib: true}], recent: []}: the
 * first-rule owner of the old processor, without the `owner` that profile.bind writes;
 * signed with the writer key ($BOOKING_WRITER_KEY...), as `bookingctl seal` signs the
 * rules records of a log it migrates. */
static int cmd_legacy_rule(bk_kconf *kc, const char *sp, const char *owner, const char *rule)
{
	char err[512];
	rd_kafka_t *prod;
	if (bk_kconf_new_handle(kc, BK_KCONF_PRODUCER, NULL, &prod, err, sizeof(err)) < 0) {
		fprintf(stderr, "legacy-rule: %s\n", err);
		return 2;
	}
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	const char *kv[] = {"service_profile_id", sp, "owner_user_id", owner, "rules"};
	msgpack_pack_map(&pk, 4);
	for (int i = 0; i < 5; i++) {
		msgpack_pack_str(&pk, strlen(kv[i]));
		msgpack_pack_str_body(&pk, kv[i], strlen(kv[i]));
	}
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str(&pk, 7);
	msgpack_pack_str_body(&pk, "rule_id", 7);
	msgpack_pack_str(&pk, strlen(rule));
	msgpack_pack_str_body(&pk, rule, strlen(rule));
	msgpack_pack_str(&pk, 8);
	msgpack_pack_str_body(&pk, "allow_ib", 8);
	msgpack_pack_true(&pk);
	msgpack_pack_str(&pk, 6);
	msgpack_pack_str_body(&pk, "recent", 6);
	msgpack_pack_array(&pk, 0);
	uint8_t wsk[BK_SK_LEN], sig[BK_SIG_LEN];
	char wkid[64];
	if (bk_trust_load_key(NULL, NULL, wsk, wkid, err, sizeof(err)) < 0) {
		fprintf(stderr, "legacy-rule: %s\n", err);
		msgpack_sbuffer_destroy(&sb);
		rd_kafka_destroy(prod);
		return 2;
	}
	bk_trust_sign_rules(wsk, sp, strlen(sp), sb.data, sb.size, sig);
	rd_kafka_headers_t *h = rd_kafka_headers_new(2);
	rd_kafka_header_add(h, "key-id", -1, wkid, -1);
	rd_kafka_header_add(h, "signature", -1, sig, BK_SIG_LEN);
	rd_kafka_resp_err_t e = rd_kafka_producev(
	    prod, RD_KAFKA_V_TOPIC(bk_kconf_topic(kc, BK_TOPIC_RULES)),
	    RD_KAFKA_V_KEY(sp, strlen(sp)), RD_KAFKA_V_VALUE(sb.data, sb.size),
	    RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
	if (e)
		rd_kafka_headers_destroy(h);
	msgpack_sbuffer_destroy(&sb);
	int rc = e || rd_kafka_flush(prod, TIMEOUT_MS) ? 1 : 0;
	if (e)
		fprintf(stderr, "legacy-rule: produce: %s\n", rd_kafka_err2str(e));
	rd_kafka_destroy(prod);
	return rc;
}

/* ---- snaptamper: snapshots a restore must not trust, appended to booking.snapshots ---- */

#define TAMPER_PARTS 64
#define TAMPER_EACH  3 /* orders tampered with per partition */

typedef struct tamper {
	const bk_keyring *writers; /* checkpoints count when they signed them */
	rd_kafka_message_t *first_ck[TAMPER_PARTS], *last_ck[TAMPER_PARTS];
	rd_kafka_message_t **snaps; /* every snapshot record, in read order per partition */
	size_t n, cap;
} tamper;

static bool is_ck(const rd_kafka_message_t *m)
{
	return m->key && m->key_len == strlen(BK_SNAP_CHECKPOINT_KEY) &&
	       !memcmp(m->key, BK_SNAP_CHECKPOINT_KEY, m->key_len);
}

static void t_rec(const rd_kafka_message_t *cm, void *opaque)
{
	tamper *t = opaque;
	rd_kafka_message_t *m = (rd_kafka_message_t *)(uintptr_t)cm;
	int32_t p = m->partition;
	char err[256];
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t vn;
	if (p < 0 || p >= TAMPER_PARTS ||
	    (!rd_kafka_message_headers(m, &h) && h &&
	     !rd_kafka_header_get_last(h, "tampered", &v, &vn)))
		return;
	if (is_ck(m)) {
		if (bk_trust_check_rules(t->writers, m, err, sizeof(err)) < 0)
			return;
		if (!t->first_ck[p])
			t->first_ck[p] = m;
		else if (t->last_ck[p] != t->first_ck[p])
			rd_kafka_message_destroy(t->last_ck[p]);
		t->last_ck[p] = m;
		g_kept = true;
		return;
	}
	if (!m->payload || !m->key)
		return;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		rd_kafka_message_t **v = realloc(t->snaps, cap * sizeof(*v));
		if (!v)
			return;
		t->snaps = v;
		t->cap = cap;
	}
	t->snaps[t->n++] = m;
	g_kept = true;
}

/* Append a copy of m (headers too) to its partition, with one value byte flipped. */
static int t_copy(rd_kafka_t *prod, const char *topic, const rd_kafka_message_t *m, bool flip)
{
	rd_kafka_headers_t *h = NULL, *hc = NULL;
	if (!rd_kafka_message_headers(m, &h) && h)
		hc = rd_kafka_headers_copy(h);
	else
		hc = rd_kafka_headers_new(1);
	rd_kafka_header_add(hc, "tampered", -1, "1", 1); /* for the next snaptamper only */
	char *v = malloc(m->len + 1);
	if (!v)
		return -1;
	memcpy(v, m->payload, m->len);
	if (flip)
		v[m->len / 2] ^= 0x01;
	rd_kafka_resp_err_t e = rd_kafka_producev(
	    prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(m->partition),
	    RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE(v, m->len),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hc), RD_KAFKA_V_END);
	free(v);
	if (e && hc)
		rd_kafka_headers_destroy(hc);
	return e ? -1 : 0;
}

static bool same_key(const rd_kafka_message_t *a, const rd_kafka_message_t *b)
{
	return a->partition == b->partition && a->key_len == b->key_len &&
	       !memcmp(a->key, b->key, a->key_len);
}

/* archived: an archived record (a valid one, for the checkpoint's E, listing a
 * fingerprint no order has) then the checkpoint again: the archived digest no longer
 * matches. 0 or 2. */
static int t_archived(rd_kafka_t *prod, const char *topic, const rd_kafka_message_t *ck)
{
	bk_checkpoint c;
	char err[256], key[64];
	if (!ck->payload ||
	    bk_snap_checkpoint_decode(ck->payload, ck->len, &c, err, sizeof(err)) < 0)
		return 2;
	const uint64_t fake = bk_archive_fp("ord_never_archived", 18);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	snprintf(key, sizeof(key), "%s%lld", BK_SNAP_ARCHIVED_KEY, (long long)c.events_offset);
	rd_kafka_headers_t *h = rd_kafka_headers_new(1);
	rd_kafka_header_add(h, "tampered", -1, "1", 1);
	rd_kafka_resp_err_t e =
	    bk_snap_archived_encode(ck->partition, c.events_offset, false, &fake, 1, &sb) < 0
		? RD_KAFKA_RESP_ERR__FAIL
		: rd_kafka_producev(
		      prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(ck->partition),
		      RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(sb.data, sb.size),
		      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
		      RD_KAFKA_V_END);
	if (e)
		rd_kafka_headers_destroy(h);
	msgpack_sbuffer_destroy(&sb);
	return e || t_copy(prod, topic, ck, false) < 0 ? 2 : 0;
}

/*
 * Checkpoints count when the writer keyring verifies them; appended copies carry a
 * header `tampered` (which the processor ignores) so that a later run does not take
 * them for the processor's records. Per partition with a checkpoint: corrupt: the
 * latest snapshots of a few orders with a byte flipped (their bytes no longer match the
 * checkpoint's digest), then the last checkpoint again; older: an order's first
 * snapshot, a later one being on the log (a replay), then the last checkpoint again;
 * newer: the latest snapshots, then the partition's first checkpoint again (snapshots
 * newer than the events it names); archived: a forged archived record, then the last
 * checkpoint again (t_archived). Exit 0 when something was appended, 1 when there was
 * nothing to tamper with.
 */
static int cmd_snaptamper(bk_kconf *kc, const char *mode)
{
	char err[512];
	static const char *const defs[] = {
	    "enable.partition.eof", "true",  "group.id", "test-commands-snaptamper",
	    "enable.auto.commit",   "false", NULL};
	rd_kafka_t *rk, *prod;
	if (bk_kconf_new_handle(kc, BK_KCONF_CONSUMER, defs, &rk, err, sizeof(err)) < 0 ||
	    bk_kconf_new_handle(kc, BK_KCONF_PRODUCER, NULL, &prod, err, sizeof(err)) < 0) {
		fprintf(stderr, "snaptamper: %s\n", err);
		return 2;
	}
	const char *topic = bk_kconf_topic(kc, BK_TOPIC_SNAPSHOTS);
	bk_keyring *kr = NULL;
	if (bk_trust_load_keyring(NULL, &kr, err, sizeof(err)) < 0) {
		fprintf(stderr, "snaptamper: %s\n", err);
		rd_kafka_destroy(rk);
		rd_kafka_destroy(prod);
		return 2;
	}
	tamper t = {.writers = kr};
	int rc = read_topic(rk, topic, t_rec, &t) < 0 ? 2 : 0;
	int appended = 0;
	for (int32_t p = 0; p < TAMPER_PARTS && rc == 0; p++) {
		if (!t.last_ck[p])
			continue;
		if (!strcmp(mode, "archived")) {
			rc = t_archived(prod, topic, t.last_ck[p]);
			appended += rc == 0;
			continue;
		}
		int done = 0;
		rd_kafka_message_t *ck = t.last_ck[p];
		if (!strcmp(mode, "newer")) {
			if (t.first_ck[p] == t.last_ck[p])
				continue;
			ck = t.first_ck[p];
		}
		for (size_t i = t.n; i-- > 0 && done < TAMPER_EACH && rc == 0;) {
			rd_kafka_message_t *m = t.snaps[i];
			if (m->partition != p || m->offset > t.last_ck[p]->offset)
				continue;
			bool later = false; /* is a later record of the order before this one? */
			for (size_t j = i + 1; j < t.n && !later; j++)
				later = same_key(m, t.snaps[j]) && t.snaps[j]->offset < ck->offset;
			if (later)
				continue; /* not the order's latest */
			const rd_kafka_message_t *src = m;
			if (!strcmp(mode, "older")) {
				src =
				    NULL; /* the order's first snapshot, if it has another since */
				for (size_t j = 0; j < i && !src; j++)
					if (same_key(m, t.snaps[j]) &&
					    (t.snaps[j]->len != m->len ||
					     memcmp(t.snaps[j]->payload, m->payload, m->len)))
						src = t.snaps[j];
				if (!src)
					continue;
			}
			if (t_copy(prod, topic, src, !strcmp(mode, "corrupt")) < 0)
				rc = 2;
			done++;
		}
		if (done > 0 && rc == 0) {
			if (t_copy(prod, topic, ck, false) < 0)
				rc = 2;
			appended += done;
		}
	}
	if (rc == 0 && rd_kafka_flush(prod, TIMEOUT_MS))
		rc = 2;
	fprintf(stderr, "snaptamper %s: %d snapshots appended\n", mode, appended);
	for (int32_t p = 0; p < TAMPER_PARTS; p++) {
		if (t.last_ck[p] && t.last_ck[p] != t.first_ck[p])
			rd_kafka_message_destroy(t.last_ck[p]);
		if (t.first_ck[p])
			rd_kafka_message_destroy(t.first_ck[p]);
	}
	for (size_t i = 0; i < t.n; i++)
		rd_kafka_message_destroy(t.snaps[i]);
	free(t.snaps);
	bk_keyring_free(kr);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	rd_kafka_destroy(prod);
	return rc ? rc : appended > 0 ? 0 : 1;
}

/* ---- ctl: one line to the dev broker's control socket, its answer on stdout --------- */

static int cmd_ctl(const char *path, const char *text)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char buf[1024];
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "ctl: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 2;
	}
	snprintf(buf, sizeof(buf), "%s\n", text);
	ssize_t n = write(fd, buf, strlen(buf));
	n = n > 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	close(fd);
	if (n <= 0)
		return 1;
	buf[n] = '\0';
	fputs(buf, stdout);
	return strncmp(buf, "ok", 2) == 0 ? 0 : 1;
}

static int usage(void)
{
	fprintf(
	    stderr,
	    "usage: test_commands check FIXTURE OUTPUT\n"
	    "       test_commands gen RUN ORDERS [WINDOW [CARD_EVERY [SEED]]]\n"
	    "       test_commands verify [kafka opts] [--all-accepted] [--golden FILE] "
	    "[--wait-ms N] [--strict]\n"
	    "       test_commands bad [kafka opts] SK KEY_ID WRONG_SK WRONG_KEY_ID\n"
	    "       test_commands junk [kafka opts] COUNT SIZE   (to events partition 0)\n"
	    "       test_commands legacy-rule [kafka opts] SERVICE_PROFILE OWNER RULE_ID\n"
	    "       test_commands ctl SOCKET LINE\n"
	    "       test_commands snaptamper [kafka opts] corrupt|older|newer|archived\n"
	    "       test_commands outcomes [kafka opts]   (first sealed results, sealed events)\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	if (sodium_init() < 0)
		return 2;
	if (!strcmp(argv[1], "check"))
		return argc == 4 ? cmd_check(argv[2], argv[3]) : usage();
	if (!strcmp(argv[1], "ctl"))
		return argc == 4 ? cmd_ctl(argv[2], argv[3]) : usage();
	if (!strcmp(argv[1], "gen"))
		return argc >= 4 ? cmd_gen(argv[2], atoi(argv[3]), argc > 4 ? atoi(argv[4]) : 200,
					   argc > 5 ? atoi(argv[5]) : 0,
					   argc > 6 ? (unsigned)atoi(argv[6]) : 1)
				 : usage();
	bk_kconf *kc = bk_kconf_new();
	const char *golden = NULL, *pos[4] = {0};
	bool all_acc = false, strict = false;
	long wait_ms = 0;
	int npos = 0;
	char err[512];
	for (int i = 2; i < argc; i++) {
		int r = bk_kconf_take_arg(kc, argc, argv, &i, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "%s\n", err);
			return 2;
		}
		if (r > 0)
			continue;
		if (!strcmp(argv[i], "--all-accepted"))
			all_acc = true;
		else if (!strcmp(argv[i], "--strict"))
			strict = true;
		else if (!strcmp(argv[i], "--golden") && i + 1 < argc)
			golden = argv[++i];
		else if (!strcmp(argv[i], "--wait-ms") && i + 1 < argc)
			wait_ms = atol(argv[++i]);
		else if (npos < 4)
			pos[npos++] = argv[i];
		else
			return usage();
	}
	int rc;
	if (!strcmp(argv[1], "verify"))
		rc = cmd_verify(kc, all_acc, strict, golden, wait_ms);
	else if (!strcmp(argv[1], "outcomes"))
		rc = cmd_outcomes(kc);
	else if (!strcmp(argv[1], "junk") && npos == 2)
		rc = cmd_junk(kc, BK_TOPIC_EVENTS, atoi(pos[0]), atoi(pos[1]));
	else if (!strcmp(argv[1], "legacy-rule") && npos == 3)
		rc = cmd_legacy_rule(kc, pos[0], pos[1], pos[2]);
	else if (!strcmp(argv[1], "snaptamper") && npos == 1)
		rc = cmd_snaptamper(kc, pos[0]);
	else if (!strcmp(argv[1], "bad") && npos == 4)
		rc = cmd_bad(kc, pos[0], pos[1], pos[2], pos[3]);
	else
		rc = usage();
	bk_kconf_destroy(kc);
	return rc;
}
