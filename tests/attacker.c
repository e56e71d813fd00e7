/*
 * attacker.c - what someone with produce rights on booking.events can do, with librdkafka
 * directly (not bookingctl) and the canonical form docs/design.md gives: read an order's
 * head and append a record that is not the processor's (tests/test_attack.sh).
 *
 *   attacker --brokers-file F [--topic-prefix P] --order ID --mode MODE
 *            [--key FILE.sk --key-id ID]
 *   forge       one event at head + 1, prev_hash = the real head, a correctly computed
 *               hash, changed content; no seal
 *   forge-seal  the same, then a seal over it signed with --key under --key-id (a key the
 *               writer keyring does not hold for that id)
 *   tamper      a copy of the order's last record with one value changed, hashes kept
 *   tamper-seal the same under a seal signed with --key under --key-id (an insider with
 *               the writer's key: the record is sealed, its event's hash does not match)
 *   ahead       a chain at head + 3 (prev_hash made up), correctly hashed
 *   result      a result for the order's last command that contradicts it, with a high
 *               src-offset header (as if far more commands had been handled)
 * Each attack targets the order's real head (the last record that carries the processor's
 * event-types header). Prints "offset=N seq=S" of the planted record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <sodium.h>

#include "bk_auth.h"
#include "bk_codec.h"
#include "bk_ids.h"
#include "bk_seal.h"
#include "kconf.h"
#include "logread.h"

static int64_t delivered = -1;

static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	if (!m->err)
		delivered = m->offset;
	else
		fprintf(stderr, "attacker: delivery failed: %s\n", rd_kafka_err2str(m->err));
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *b = calloc(1, 4096);
	size_t n = b ? fread(b, 1, 4095, f) : 0;
	fclose(f);
	while (b && n && (b[n - 1] == '\n' || b[n - 1] == ' '))
		b[--n] = 0;
	return b;
}

int main(int argc, char **argv)
{
	const char *order = NULL, *mode = NULL, *keyfile = NULL, *key_id = NULL;
	char err[512];
	bk_kconf *kc = bk_kconf_new();
	for (int i = 1; i < argc; i++) {
		int t = bk_kconf_take_arg(kc, argc, argv, &i, err, sizeof(err));
		if (t < 0) {
			fprintf(stderr, "attacker: %s\n", err);
			return 2;
		}
		if (t > 0)
			continue;
		if (!strcmp(argv[i], "--order") && i + 1 < argc)
			order = argv[++i];
		else if (!strcmp(argv[i], "--mode") && i + 1 < argc)
			mode = argv[++i];
		else if (!strcmp(argv[i], "--key") && i + 1 < argc)
			keyfile = argv[++i];
		else if (!strcmp(argv[i], "--key-id") && i + 1 < argc)
			key_id = argv[++i];
		else {
			fprintf(stderr, "attacker: bad argument %s\n", argv[i]);
			return 2;
		}
	}
	if (!order || !mode || sodium_init() < 0) {
		fprintf(stderr, "attacker: --order and --mode are required\n");
		return 2;
	}
	const char *topic = bk_kconf_topic(kc, BK_TOPIC_EVENTS);
	static const char *const cdefs[] = {"group.id", "attacker", "enable.auto.commit", "false",
					    NULL};
	rd_kafka_t *c;
	if (bk_kconf_new_handle(kc, BK_KCONF_CONSUMER, cdefs, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "attacker: %s\n", err);
		return 2;
	}
	int nparts;
	if (bk_kconf_partition_count(c, topic, 10000, &nparts, err, sizeof(err)) < 0) {
		fprintf(stderr, "attacker: %s\n", err);
		return 3;
	}
	int32_t p = bk_kafka_partition_of(order, strlen(order), nparts);
	int64_t lo, hi;
	if (bk_kconf_watermarks(c, topic, p, 10000, &lo, &hi, err, sizeof(err)) < 0 || hi <= lo) {
		fprintf(stderr, "attacker: %s\n", hi <= lo ? "empty partition" : err);
		return 3;
	}
	/* the order's last events record */
	rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(tl, topic, p)->offset = lo;
	rd_kafka_assign(c, tl);
	rd_kafka_topic_partition_list_destroy(tl);
	static char last[1 << 20]; /* the order's last record (records are at most 1 MiB) */
	size_t last_n = 0;
	for (int64_t seen = lo; seen < hi;) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 1000);
		if (!m)
			continue;
		if (!m->err) {
			seen = m->offset + 1;
			rd_kafka_headers_t *hs = NULL;
			const void *hv;
			size_t hn;
			/* the processor's records (they carry event-types), not earlier attacks */
			bool real = !rd_kafka_message_headers(m, &hs) && hs &&
				    !rd_kafka_header_get_last(hs, "event-types", &hv, &hn);
			if (real && m->key_len == strlen(order) &&
			    !memcmp(m->key, order, m->key_len)) {
				last_n = m->payload && m->len <= sizeof(last) ? m->len : 0;
				if (last_n)
					memcpy(last, m->payload, last_n);
			}
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(c);
	rd_kafka_destroy(c);
	if (last_n == 0) {
		fprintf(stderr, "attacker: no record of %s\n", order);
		return 3;
	}
	msgpack_zone z;
	msgpack_zone_init(&z, 8192);
	bk_record r;
	if (bk_codec_record_decode(last, last_n, &z, &r, err, sizeof(err)) < 0) {
		fprintf(stderr, "attacker: %s\n", err);
		msgpack_zone_destroy(&z);
		return 3;
	}
	bk_event ev = r.events[r.n - 1]; /* the head */
	msgpack_sbuffer scratch;
	msgpack_sbuffer_init(&scratch);
	if (!strcmp(mode, "tamper") || !strcmp(mode, "tamper-seal")) {
		r.events[0].created_at += 3600 * 1000000LL; /* content changed, hashes kept */
		r.n = 1;
	} else {
		uint8_t head[BK_HASH_LEN];
		memcpy(head, ev.hash, BK_HASH_LEN);
		ev.seq += !strcmp(mode, "ahead") ? 3 : 1;
		if (!strcmp(mode, "ahead"))
			memset(ev.prev_hash, 0x5a, BK_HASH_LEN);
		else
			memcpy(ev.prev_hash, head, BK_HASH_LEN);
		ev.event_id = "tev_FORGEDFORGEDFORGEDFORGED00";
		ev.command_id = "cmd_forged";
		ev.created_at += 1000000;
		ev.canon = NULL;
		ev.canon_len = 0;
		if (bk_codec_event_seal(&ev, &scratch) < 0) {
			fprintf(stderr, "attacker: cannot hash\n");
			return 3;
		}
		r.events = &ev;
		r.n = 1;
		r.command_id = "cmd_forged";
	}
	msgpack_sbuffer val;
	msgpack_sbuffer_init(&val);
	bool is_result = !strcmp(mode, "result");
	if (is_result) {
		bk_result res = {.command_id = r.command_id,
				 .order_id = order,
				 .status = BK_REJECTED,
				 .code = BK_E_FORBIDDEN,
				 .message = "forged",
				 .version = 1};
		topic = bk_kconf_topic(kc, BK_TOPIC_RESULTS);
		if (bk_codec_result_encode(&res, &val) < 0)
			return 3;
	} else if (bk_codec_record_encode(&r, &val) < 0) {
		return 3;
	}

	rd_kafka_conf_t *pc;
	static const char *const pdefs[] = {"linger.ms", "0", NULL};
	if (bk_kconf_build(kc, BK_KCONF_PRODUCER, pdefs, &pc, err, sizeof(err)) < 0) {
		fprintf(stderr, "attacker: %s\n", err);
		return 2;
	}
	rd_kafka_conf_set_dr_msg_cb(pc, dr);
	rd_kafka_t *pr = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err));
	if (!pr)
		return 3;
	rd_kafka_headers_t *h = rd_kafka_headers_new(4);
	rd_kafka_header_add(h, "command-id", -1, r.command_id, -1);
	if (is_result) {
		char ps[16];
		snprintf(ps, sizeof(ps), "%d", (int)p);
		rd_kafka_header_add(h, "src-partition", -1, ps, -1);
		rd_kafka_header_add(h, "src-offset", -1, "999999", -1);
	} else {
		rd_kafka_header_add(h, "schema", -1, "1", 1);
	}
	if (rd_kafka_producev(pr, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p),
			      RD_KAFKA_V_KEY(order, strlen(order)),
			      RD_KAFKA_V_VALUE(val.data, val.size), RD_KAFKA_V_HEADERS(h),
			      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) ||
	    rd_kafka_flush(pr, 10000) || delivered < 0) {
		fprintf(stderr, "attacker: produce failed\n");
		return 3;
	}
	int64_t at = delivered;
	if (!strcmp(mode, "forge-seal") || !strcmp(mode, "tamper-seal")) {
		char *b64 = keyfile ? read_text(keyfile) : NULL;
		uint8_t sk[BK_SK_LEN];
		if (!b64 || !key_id ||
		    bk_b64_decode(b64, strlen(b64), sk, sizeof(sk)) != BK_SK_LEN) {
			fprintf(stderr, "attacker: %s needs --key and --key-id\n", mode);
			return 2;
		}
		free(b64);
		bk_seal_rec sr = {.offset = at};
		bk_seal_digest_record(&r, sr.digest);
		bk_seal s = {.writer = key_id,
			     .topic = topic,
			     .partition = p,
			     .base = -1,
			     .src_next = 1000000000,
			     .recs = &sr,
			     .n = 1};
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		if (bk_seal_encode(&s, &sb) < 0)
			return 3;
		uint8_t sig[BK_SIG_LEN];
		bk_auth_sign(sk, sb.data, sb.size, sig);
		rd_kafka_headers_t *sh = rd_kafka_headers_new(3);
		rd_kafka_header_add(sh, BK_SEAL_KEY, -1, "1", 1);
		rd_kafka_header_add(sh, "key-id", -1, key_id, -1);
		rd_kafka_header_add(sh, "signature", -1, sig, BK_SIG_LEN);
		delivered = -1;
		if (rd_kafka_producev(pr, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p),
				      RD_KAFKA_V_KEY(BK_SEAL_KEY, strlen(BK_SEAL_KEY)),
				      RD_KAFKA_V_VALUE(sb.data, sb.size), RD_KAFKA_V_HEADERS(sh),
				      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) ||
		    rd_kafka_flush(pr, 10000) || delivered < 0) {
			fprintf(stderr, "attacker: seal produce failed\n");
			return 3;
		}
		msgpack_sbuffer_destroy(&sb);
	}
	printf("offset=%lld seq=%lld partition=%d\n", (long long)at, (long long)r.events[0].seq,
	       (int)p);
	rd_kafka_destroy(pr);
	msgpack_sbuffer_destroy(&val);
	msgpack_sbuffer_destroy(&scratch);
	msgpack_zone_destroy(&z);
	bk_kconf_destroy(kc);
	return 0;
}
