/*
 * cmd_seal.c - `bookingctl seal`: the one-time migration of a log written before seals
 * existed (docs/design.md, "Existing logs"). It checks the whole log with the reader rule
 * (as `verify --unsealed-ok` does) and, only when it is sound, appends with the writer key
 * one seal per events and results partition covering every valid record, and signs the
 * rules records again (each profile's latest). Nothing is written when a problem is found.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bk_codec.h"
#include "bk_engine.h"
#include "bk_seal.h"
#include "cmd.h"
#include "kconf.h"
#include "log.h"
#include "logread.h"
#include "trust.h"

#define SEAL_CHUNK 65536 /* records listed per seal record */

typedef struct part_recs {
	bk_seal_rec *v;
	size_t n, cap;
	int64_t src_max; /* highest src-offset header seen (events and results), -1 */
} part_recs;

typedef struct sealer {
	bk_engine *e;
	int nparts;
	part_recs *ev, *res; /* [nparts] */
	int64_t records, problems, duplicates, already;
	json_t *rules; /* key -> {"v": base64 value or null} latest per key */
	msgpack_zone z;
} sealer;

static int push(part_recs *p, int64_t off, const uint8_t d[BK_HASH_LEN])
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 1024;
		bk_seal_rec *v = realloc(p->v, cap * sizeof(*v));
		if (!v)
			return -1;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n].offset = off;
	memcpy(p->v[p->n].digest, d, BK_HASH_LEN);
	p->n++;
	return 0;
}

/* A decimal header (src-offset), -1 when absent. */
static int64_t hdr_i64(const rd_kafka_message_t *m, const char *name)
{
	int64_t v;
	return bk_kconf_header_int(m, name, &v) == 0 ? v : -1;
}

static void problem(sealer *s, const rd_kafka_message_t *m, const char *what, const char *why)
{
	s->problems++;
	if (s->problems <= 100)
		printf("%s: topic=%s partition=%d offset=%lld: %s\n", what,
		       rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset, why);
}

static int on_event(void *opaque, const rd_kafka_message_t *m)
{
	sealer *s = opaque;
	if (m->partition < 0 || m->partition >= s->nparts)
		return 0;
	if (bk_trust_is_seal(m)) {
		s->already++;
		return 0;
	}
	s->records++;
	char err[256];
	bk_record r;
	msgpack_zone_clear(&s->z);
	if (!m->payload ||
	    bk_codec_record_decode(m->payload, m->len, &s->z, &r, err, sizeof(err))) {
		problem(s, m, "garbage", m->payload ? err : "no value");
		return 0;
	}
	bk_chain_verdict v[BK_MAX_EVENTS];
	if (r.n > BK_MAX_EVENTS || bk_engine_read(s->e, &r, v, err, sizeof(err)) < 0) {
		problem(s, m, "illegal event", r.n > BK_MAX_EVENTS ? "too many events" : err);
		return 0;
	}
	bool all_next = true, all_dup = true;
	for (uint32_t i = 0; i < r.n; i++) {
		all_next &= v[i] == BK_CHAIN_NEXT;
		all_dup &= v[i] == BK_CHAIN_DUPLICATE;
		if (bk_chain_verdict_reported(v[i]))
			problem(s, m, bk_chain_verdict_name(v[i]), r.order_id);
	}
	if (all_dup) {
		s->duplicates++; /* a copy: not sealed again */
		return 0;
	}
	if (!all_next)
		return 0;
	part_recs *p = &s->ev[m->partition];
	int64_t so = hdr_i64(m, "src-offset");
	if (so > p->src_max)
		p->src_max = so;
	uint8_t d[BK_HASH_LEN];
	bk_seal_digest_record(&r, d);
	return push(p, m->offset, d);
}

static int on_result(void *opaque, const rd_kafka_message_t *m)
{
	sealer *s = opaque;
	if (m->partition < 0 || m->partition >= s->nparts)
		return 0;
	if (bk_trust_is_seal(m)) {
		s->already++;
		return 0;
	}
	bk_result r;
	char err[256];
	msgpack_zone_clear(&s->z);
	if (!m->payload ||
	    bk_codec_result_decode(m->payload, m->len, &s->z, &r, err, sizeof(err))) {
		problem(s, m, "garbage", "undecodable result");
		return 0;
	}
	int64_t so = hdr_i64(m, "src-offset");
	if (so > s->ev[m->partition].src_max)
		s->ev[m->partition].src_max = so;
	uint8_t d[BK_HASH_LEN];
	bk_seal_digest_bytes(m->payload, m->len, d);
	return push(&s->res[m->partition], m->offset, d);
}

static int on_rules(void *opaque, const rd_kafka_message_t *m)
{
	sealer *s = opaque;
	if (!m->key || m->key_len == 0 || m->key_len >= 256)
		return 0;
	char key[256];
	memcpy(key, m->key, m->key_len);
	key[m->key_len] = 0;
	json_t *v = json_null();
	if (m->payload) {
		char *b64 = malloc(m->len * 4 / 3 + 8);
		if (!b64 || bk_b64_encode(m->payload, m->len, b64, m->len * 4 / 3 + 8) < 0) {
			free(b64);
			return -1;
		}
		v = json_string(b64);
		free(b64);
	}
	json_object_set_new(s->rules, key, v);
	return 0;
}

static int produce(rd_kafka_t *pr, const char *topic, int32_t p, const char *key, const void *val,
		   size_t n, rd_kafka_headers_t *h)
{
	for (;;) {
		rd_kafka_resp_err_t e =
		    rd_kafka_producev(pr, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p),
				      RD_KAFKA_V_KEY(key, strlen(key)),
				      RD_KAFKA_V_VALUE((void *)val, n), RD_KAFKA_V_HEADERS(h),
				      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			return e ? -1 : 0;
		rd_kafka_poll(pr, 100);
	}
}

static int write_seals(rd_kafka_t *pr, const char *topic, int32_t p, const part_recs *pr_recs,
		       int64_t base, int64_t src_next, const uint8_t *sk, const char *kid)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	int rc = 0;
	for (size_t from = 0; rc == 0 && (from < pr_recs->n || from == 0); from += SEAL_CHUNK) {
		size_t n = pr_recs->n - from < SEAL_CHUNK ? pr_recs->n - from : SEAL_CHUNK;
		bool last = from + n >= pr_recs->n;
		bk_seal s = {.writer = kid,
			     .topic = topic,
			     .partition = p,
			     .base = last ? base : -1,
			     .src_next = src_next,
			     .recs = pr_recs->v ? pr_recs->v + from : NULL,
			     .n = (uint32_t)n};
		rd_kafka_headers_t *h;
		if (bk_trust_seal_record(&s, sk, kid, &sb, &h) < 0) {
			rc = -1;
			break;
		}
		if (produce(pr, topic, p, BK_SEAL_KEY, sb.data, sb.size, h) < 0) {
			rd_kafka_headers_destroy(h);
			rc = -1;
		}
		if (pr_recs->n == 0)
			break;
	}
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: bookingctl seal [options]\n"
	    "\n"
	    "Migrates a log written before seals existed (docs/design.md, \"Existing logs\"):\n"
	    "checks booking.events with the reader rule (as verify --unsealed-ok) and, only\n"
	    "when it is sound, appends one seal per events and results partition covering\n"
	    "every valid record, and signs each service profile's latest rules record again.\n"
	    "Run it once, with the processors stopped, then start them with the writer key.\n"
	    "\n"
	    "  --writer-key FILE      the writer key (.sk; $BOOKING_WRITER_KEY)\n"
	    "  --writer-key-id ID     its id ($BOOKING_WRITER_KEY_ID)\n"
	    "  --writer-keyring FILE  the readers' writer keyring; the key must verify against\n"
	    "                         it ($BOOKING_WRITER_KEYRING)\n"
	    "  --dry-run              check and count, write nothing\n"
	    "  -h, --help             this text\n"
	    "\n%s"
	    "\nexit status: 0 sealed (or would be), 1 the log has problems or seals already\n"
	    "(nothing written), 2 bad usage, 3 Kafka failed\n",
	    bk_kconf_usage());
}

int cmd_seal(int argc, char **argv)
{
	const char *key_path = NULL, *key_id = NULL, *kr_path = NULL;
	bool dry = false;
	char err[512], kid[64] = "";
	uint8_t sk[BK_SK_LEN] = {0};
	int rc = BK_EXIT_USAGE;
	bk_kconf *kc = bk_kconf_new();
	rd_kafka_t *rk = NULL, *pr = NULL;
	bk_keyring *kr = NULL;
	sealer s = {0};
	msgpack_zone_init(&s.z, 1 << 16);
	s.rules = json_object();
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int t = bk_kconf_take_arg(kc, argc, argv, &i, err, sizeof(err));
		if (t < 0) {
			fprintf(stderr, "bookingctl seal: %s\n", err);
			goto out;
		}
		if (t > 0)
			continue;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			rc = BK_EXIT_OK;
			goto out;
		} else if (!strcmp(a, "--dry-run")) {
			dry = true;
		} else if (!strcmp(a, "--writer-key") && i + 1 < argc) {
			key_path = argv[++i];
		} else if (!strcmp(a, "--writer-key-id") && i + 1 < argc) {
			key_id = argv[++i];
		} else if (!strcmp(a, "--writer-keyring") && i + 1 < argc) {
			kr_path = argv[++i];
		} else {
			fprintf(stderr, "bookingctl seal: unknown option or missing value: %s\n",
				a);
			goto out;
		}
	}
	if (bk_trust_load_key(key_path, key_id, sk, kid, err, sizeof(err)) < 0 ||
	    bk_trust_load_keyring(kr_path, &kr, err, sizeof(err)) < 0) {
		fprintf(stderr, "bookingctl seal: %s\n", err);
		goto out;
	}
	if (bk_trust_check_writer(kr, sk, kid, err, sizeof(err)) < 0) {
		fprintf(stderr, "bookingctl seal: %s\n", err);
		goto out;
	}
	/* the producer's configuration is checked now, not after reading the whole log:
	 * a bad -X is bad configuration (exit 2) */
	static const char *const pdefs[] = {"enable.idempotence", "true", "acks", "all", NULL};
	rd_kafka_conf_t *pconf = NULL;
	if (bk_kconf_build(kc, BK_KCONF_PRODUCER, pdefs, &pconf, err, sizeof(err)) < 0) {
		fprintf(stderr, "bookingctl seal: %s\n", err);
		goto out;
	}
	rd_kafka_conf_destroy(pconf);
	const char *ev_topic = bk_kconf_topic(kc, BK_TOPIC_EVENTS);
	const char *res_topic = bk_kconf_topic(kc, BK_TOPIC_RESULTS);
	const char *rules_topic = bk_kconf_topic(kc, BK_TOPIC_RULES);
	rc = BK_EXIT_DEPENDENCY;
	if (bk_logread_consumer(kc, &rk, err, sizeof(err)) < 0 ||
	    bk_kconf_partition_count(rk, ev_topic, 10000, &s.nparts, err, sizeof(err)) < 0) {
		fprintf(stderr, "bookingctl seal: %s\n", err);
		if (!rk)
			rc = BK_EXIT_USAGE;
		goto out;
	}
	s.ev = calloc((size_t)s.nparts, sizeof(*s.ev));
	s.res = calloc((size_t)s.nparts, sizeof(*s.res));
	s.e = bk_engine_new();
	if (!s.ev || !s.res || !s.e)
		goto out;
	for (int p = 0; p < s.nparts; p++)
		s.ev[p].src_max = -1;
	int64_t *ev_end = calloc((size_t)s.nparts, sizeof(int64_t));
	int64_t *res_end = calloc((size_t)s.nparts, sizeof(int64_t));
	for (int p = 0; ev_end && res_end && p < s.nparts; p++) {
		int64_t lo;
		if (bk_kconf_watermarks(rk, ev_topic, p, 10000, &lo, &ev_end[p], err, sizeof(err)) <
			0 ||
		    bk_kconf_watermarks(rk, res_topic, p, 10000, &lo, &res_end[p], err,
					sizeof(err)) < 0) {
			fprintf(stderr, "bookingctl seal: %s\n", err);
			free(ev_end);
			free(res_end);
			goto out;
		}
	}
	bk_logread_opts o = {
	    .topic = ev_topic, .partition = -1, .to = -1, .refuse_truncated = true};
	if (!ev_end || !res_end || bk_logread(rk, &o, on_event, &s, NULL, err, sizeof(err)) < 0 ||
	    (o.topic = res_topic, bk_logread(rk, &o, on_result, &s, NULL, err, sizeof(err)) < 0) ||
	    (o.topic = rules_topic, o.refuse_truncated = false,
	     bk_logread(rk, &o, on_rules, &s, NULL, err, sizeof(err)) < 0)) {
		fprintf(stderr, "bookingctl seal: %s\n", err);
		free(ev_end);
		free(res_end);
		goto out;
	}
	size_t nev = 0, nres = 0;
	for (int p = 0; p < s.nparts; p++) {
		nev += s.ev[p].n;
		nres += s.res[p].n;
	}
	printf("seal: records=%lld valid=%zu duplicates=%lld results=%zu rules_profiles=%zu "
	       "problems=%lld seals_found=%lld%s\n",
	       (long long)s.records, nev, (long long)s.duplicates, nres, json_object_size(s.rules),
	       (long long)s.problems, (long long)s.already, dry ? " (dry run)" : "");
	if (s.problems || s.already) {
		fprintf(stderr, "bookingctl seal: %s: nothing written\n",
			s.already ? "the log has seals already" : "the log has problems");
		rc = BK_EXIT_PROBLEM;
		free(ev_end);
		free(res_end);
		goto out;
	}
	rc = BK_EXIT_OK;
	if (!dry) {
		rd_kafka_conf_t *conf;
		if (bk_kconf_build(kc, BK_KCONF_PRODUCER, pdefs, &conf, err, sizeof(err)) < 0 ||
		    !(pr = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)))) {
			fprintf(stderr, "bookingctl seal: %s\n", err);
			rc = BK_EXIT_DEPENDENCY;
			free(ev_end);
			free(res_end);
			goto out;
		}
		int bad = 0;
		for (int p = 0; p < s.nparts && !bad; p++) {
			int64_t next = s.ev[p].src_max + 1;
			bad |= write_seals(pr, ev_topic, p, &s.ev[p], ev_end[p], next, sk, kid) < 0;
			if (s.res[p].n)
				bad |= write_seals(pr, res_topic, p, &s.res[p], res_end[p], -1, sk,
						   kid) < 0;
		}
		const char *key;
		json_t *v;
		json_object_foreach(s.rules, key, v)
		{
			if (bad)
				break;
			uint8_t *val = NULL;
			int n = 0;
			if (json_is_string(v)) {
				size_t l = json_string_length(v);
				val = malloc(l + 1);
				n = val ? bk_b64_decode(json_string_value(v), l, val, l + 1) : -1;
				if (n < 0) {
					free(val);
					bad = 1;
					break;
				}
			}
			uint8_t rsig[BK_SIG_LEN];
			bk_trust_sign_rules(sk, key, strlen(key), val, (size_t)n, rsig);
			rd_kafka_headers_t *h = rd_kafka_headers_new(2);
			rd_kafka_header_add(h, "key-id", -1, kid, -1);
			rd_kafka_header_add(h, "signature", -1, rsig, BK_SIG_LEN);
			if (produce(pr, rules_topic, RD_KAFKA_PARTITION_UA, key, val, (size_t)n,
				    h) < 0) {
				rd_kafka_headers_destroy(h);
				bad = 1;
			}
			free(val);
		}
		if (bad || rd_kafka_flush(pr, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
			fprintf(stderr, "bookingctl seal: producing the seals failed\n");
			rc = BK_EXIT_DEPENDENCY;
		} else {
			printf("seal: sealed %d events partitions and the results partitions with "
			       "key %s; %zu rules records signed again\n",
			       s.nparts, kid, json_object_size(s.rules));
		}
	}
	free(ev_end);
	free(res_end);
out:
	sodium_memzero(sk, sizeof(sk));
	for (int p = 0; s.ev && p < s.nparts; p++)
		free(s.ev[p].v);
	for (int p = 0; s.res && p < s.nparts; p++)
		free(s.res[p].v);
	free(s.ev);
	free(s.res);
	bk_engine_free(s.e);
	json_decref(s.rules);
	msgpack_zone_destroy(&s.z);
	bk_keyring_free(kr);
	if (pr)
		rd_kafka_destroy(pr);
	if (rk)
		rd_kafka_destroy(rk);
	bk_kconf_destroy(kc);
	return rc;
}
