/*
 * cmd_send.c - `bookingctl send`: JSON lines of commands -> signed records on
 * booking.commands (msgpack, or the JSON itself with --json), keyed by order_id with the
 * murmur2_random partitioner. With --wait it reads booking.command-results (and
 * booking.dlq) and prints each command's outcome as a JSON line, in input order, matched
 * by the (partition, offset) each command was written at.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "bk_auth.h"
#include "bk_codec.h"
#include "cmd.h"
#include "kconf.h"
#include "log.h"

static const char usage_text[] =
    "usage: bookingctl send [Kafka options] [--key PATH.sk --key-id ID | --unsigned]\n"
    "                       [--content-type msgpack|json]\n"
    "                       [--wait|--sequential [--timeout-ms N]] [FILE|-]\n"
    "\n"
    "Reads commands as JSON lines (FILE, or stdin for - or no FILE; blank lines and lines\n"
    "starting with # are skipped; a fixture line's \"expect\" field is dropped) and\n"
    "produces each to booking.commands, key = order_id, partitioner murmur2_random.\n"
    "\n"
    "  --key PATH       secret key file from `bookingctl keygen` (PREFIX.sk)\n"
    "  --key-id ID      the key's id in the processor's keyring\n"
    "  --unsigned       send without signature headers (the processor dead-letters them\n"
    "                   unless it runs with --allow-unsigned)\n"
    "  --content-type T the records' encoding: msgpack (default, content-type\n"
    "                   application/msgpack) or json (the JSON text as read,\n"
    "                   application/json)\n"
    "  --wait           wait for every command's outcome and print one JSON line each, in\n"
    "                   input order: the result (bk_result_to_json), or for a command the\n"
    "                   processor dead-lettered {\"status\":\"dlq\",\"reason\":...}\n"
    "  --sequential     --wait, and send each command only after the previous one's\n"
    "                   outcome arrived (commands on different partitions, e.g. an\n"
    "                   autoaccept.set and an order it should match, keep their order)\n"
    "  --timeout-ms N   with --wait: give up after N ms without a new outcome (30000)\n"
    "  -h, --help       this text\n"
    "\n"
    "exit: 0 every command delivered (and with --wait every outcome arrived, none rejected\n"
    "or dead-lettered); 1 with --wait, some command was rejected or dead-lettered;\n"
    "2 bad usage, input or configuration (-X, -F); 3 Kafka failed, or --wait timed out\n"
    "\n";

/* One input line and what became of it. */
typedef struct line {
	int lineno;
	char *id;	/* command id, NULL when the line has none */
	char *order_id; /* the key; NULL: no key */
	void *val;	/* the bytes sent (malloc) */
	size_t len;
	int32_t partition; /* where it was written; -1 until delivered */
	int64_t offset;
	rd_kafka_resp_err_t err;
	json_t *outcome; /* --wait: what the processor answered */
	bool bad;	 /* rejected or dead-lettered */
} line;

typedef struct sender {
	line *v;
	size_t n, cap;
	size_t delivered, failed;
} sender;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	sender *s = opaque;
	line *l = &s->v[(size_t)(uintptr_t)m->_private];
	(void)rk;
	l->err = m->err;
	if (m->err) {
		s->failed++;
		return;
	}
	l->partition = m->partition;
	l->offset = m->offset;
	s->delivered++;
}

static int load_key(const char *path, uint8_t sk[BK_SK_LEN])
{
	FILE *f = fopen(path, "r");
	char buf[256];
	if (!f) {
		fprintf(stderr, "send: --key %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	if (bk_b64_decode(buf, n, sk, BK_SK_LEN) != BK_SK_LEN) {
		fprintf(stderr, "send: --key %s: not a base64 Ed25519 secret key (64 bytes)\n",
			path);
		sodium_memzero(buf, sizeof(buf));
		return -1;
	}
	sodium_memzero(buf, sizeof(buf));
	return 0;
}

static char *dupstr(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Parse one JSON line into l: 0, or -1 (message printed). */
static int prepare(line *l, const char *text, size_t n, bool as_json)
{
	json_error_t je;
	json_t *j = json_loadb(text, n, 0, &je);
	if (!j || !json_is_object(j)) {
		fprintf(stderr, "send: line %d: not a JSON object: %s\n", l->lineno,
			j ? "another JSON value" : je.text);
		json_decref(j);
		return -1;
	}
	bool had_expect = json_object_get(j, "expect") != NULL;
	json_object_del(j, "expect");
	l->id = dupstr(json_string_value(json_object_get(j, "id")));
	l->order_id = dupstr(json_string_value(json_object_get(j, "order_id")));
	int rc = 0;
	if (as_json) {
		if (had_expect) {
			l->val = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
			l->len = l->val ? strlen(l->val) : 0;
		} else {
			l->val = malloc(n);
			if (l->val)
				memcpy(l->val, text, n);
			l->len = n;
		}
		if (!l->val)
			rc = -1;
	} else {
		msgpack_zone z;
		msgpack_zone_init(&z, 4096);
		bk_val v;
		char err[256];
		if (bk_json_to_val(j, &z, &v, err, sizeof(err)) < 0) {
			fprintf(stderr, "send: line %d: %s\n", l->lineno, err);
			rc = -1;
		} else {
			msgpack_sbuffer sb;
			msgpack_sbuffer_init(&sb);
			msgpack_packer pk;
			msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
			msgpack_pack_object(&pk, v);
			l->val = sb.data; /* taken over */
			l->len = sb.size;
		}
		msgpack_zone_destroy(&z);
	}
	json_decref(j);
	return rc;
}

static int read_input(sender *s, FILE *in, bool as_json)
{
	char *buf = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, rc = 0;
	while ((len = getline(&buf, &cap, in)) >= 0) {
		lineno++;
		while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
			len--;
		size_t k = 0;
		while (k < (size_t)len && (buf[k] == ' ' || buf[k] == '\t'))
			k++;
		if (k == (size_t)len || buf[k] == '#')
			continue;
		if (s->n == s->cap) {
			size_t nc = s->cap ? s->cap * 2 : 256;
			line *nv = realloc(s->v, nc * sizeof(*nv));
			if (!nv) {
				rc = -1;
				break;
			}
			s->v = nv;
			s->cap = nc;
		}
		line *l = &s->v[s->n];
		*l = (line){.lineno = lineno, .partition = -1, .offset = -1};
		s->n++;
		if (prepare(l, buf, (size_t)len, as_json) < 0)
			rc = -1;
	}
	free(buf);
	return rc;
}

static int header_int(rd_kafka_headers_t *h, const char *name, int64_t *ret)
{
	const void *v;
	size_t n;
	char b[32];
	if (!h || rd_kafka_header_get_last(h, name, &v, &n) || !v || n == 0 || n >= sizeof(b))
		return -1;
	memcpy(b, v, n);
	b[n] = '\0';
	char *end;
	long long x = strtoll(b, &end, 10);
	if (*end)
		return -1;
	*ret = x;
	return 0;
}

/* Outcome of one results or dlq record: attach it to its line. Returns 1 when new. */
static int take_outcome(sender *s, json_t *index, const char *cmd_topic,
			const rd_kafka_message_t *m, bool is_dlq)
{
	rd_kafka_headers_t *h = NULL;
	int64_t sp, so;
	if (rd_kafka_message_headers(m, &h) || header_int(h, "src-partition", &sp) < 0 ||
	    header_int(h, "src-offset", &so) < 0)
		return 0;
	if (is_dlq) {
		const void *t;
		size_t tn;
		if (rd_kafka_header_get_last(h, "src-topic", &t, &tn) || tn != strlen(cmd_topic) ||
		    memcmp(t, cmd_topic, tn))
			return 0;
	}
	char key[48];
	snprintf(key, sizeof(key), "%lld:%lld", (long long)sp, (long long)so);
	json_t *ix = json_object_get(index, key);
	if (!ix)
		return 0;
	line *l = &s->v[json_integer_value(ix)];
	if (l->outcome)
		return 0; /* the first answer counts */
	if (is_dlq) {
		const void *r = NULL;
		size_t rn = 0;
		if (rd_kafka_header_get_last(h, "reason", &r, &rn))
			r = NULL;
		l->outcome = json_pack(
		    "{s:o, s:o, s:s, s:s%}", "command_id", l->id ? json_string(l->id) : json_null(),
		    "order_id", l->order_id ? json_string(l->order_id) : json_null(), "status",
		    "dlq", "reason", r ? (const char *)r : "", r ? rn : 0);
		l->bad = true;
		return l->outcome ? 1 : 0;
	}
	msgpack_zone z;
	msgpack_zone_init(&z, 2048);
	bk_result res;
	char err[256];
	if (bk_codec_result_decode(m->payload, m->len, &z, &res, err, sizeof(err)) < 0) {
		l->outcome = json_pack("{s:s, s:s}", "status", "undecodable_result", "error", err);
		l->bad = true;
	} else {
		l->outcome = bk_result_to_json(&res);
		l->bad = res.status == BK_REJECTED;
	}
	msgpack_zone_destroy(&z);
	return 1;
}

/* Partitions of results and dlq, from their current high watermarks. */
static rd_kafka_topic_partition_list_t *wait_start(rd_kafka_t *rk, const bk_kconf *kc,
						   int timeout_ms)
{
	char err[512];
	const bk_topic ts[2] = {BK_TOPIC_RESULTS, BK_TOPIC_DLQ};
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(64);
	for (int t = 0; t < 2; t++) {
		const char *name = bk_kconf_topic(kc, ts[t]);
		int n;
		if (bk_kconf_partition_count(rk, name, timeout_ms, &n, err, sizeof(err)) < 0) {
			fprintf(stderr, "send: %s\n", err);
			rd_kafka_topic_partition_list_destroy(l);
			return NULL;
		}
		for (int p = 0; p < n; p++) {
			int64_t lo, hi;
			if (bk_kconf_watermarks(rk, name, p, timeout_ms, &lo, &hi, err,
						sizeof(err)) < 0) {
				fprintf(stderr, "send: %s\n", err);
				rd_kafka_topic_partition_list_destroy(l);
				return NULL;
			}
			rd_kafka_topic_partition_list_add(l, name, p)->offset = hi;
		}
	}
	return l;
}

static void print_ready(sender *s, size_t *next)
{
	while (*next < s->n && s->v[*next].outcome) {
		char *t = json_dumps(s->v[*next].outcome, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (t) {
			puts(t);
			free(t);
		}
		(*next)++;
	}
	fflush(stdout);
}

/* Produce line i (signed when sk is not NULL). 0, or -1 (message printed). */
static int produce_line(rd_kafka_t *prod, sender *s, size_t i, const char *topic, bool as_json,
			const uint8_t *sk, const char *key_id)
{
	line *l = &s->v[i];
	rd_kafka_headers_t *h = rd_kafka_headers_new(3);
	rd_kafka_header_add(h, "content-type", -1,
			    as_json ? "application/json" : "application/msgpack", -1);
	if (sk) {
		uint8_t sig[BK_SIG_LEN];
		bk_auth_sign(sk, l->val, l->len, sig);
		rd_kafka_header_add(h, "key-id", -1, key_id, -1);
		rd_kafka_header_add(h, "signature", -1, sig, sizeof(sig));
	}
	for (;;) {
		rd_kafka_resp_err_t e = rd_kafka_producev(
		    prod, RD_KAFKA_V_TOPIC(topic),
		    RD_KAFKA_V_KEY(l->order_id, l->order_id ? strlen(l->order_id) : 0),
		    RD_KAFKA_V_VALUE(l->val, l->len), RD_KAFKA_V_HEADERS(h),
		    RD_KAFKA_V_OPAQUE((void *)(uintptr_t)i), RD_KAFKA_V_END);
		if (!e)
			break;
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			rd_kafka_poll(prod, 50);
			continue;
		}
		fprintf(stderr, "send: line %d: %s\n", l->lineno, rd_kafka_err2str(e));
		rd_kafka_headers_destroy(h);
		return -1;
	}
	rd_kafka_poll(prod, 0);
	return 0;
}

/* Remember where line i was written, to match its outcome. */
static void index_line(sender *s, json_t *index, size_t i)
{
	char key[48];
	if (!index)
		return;
	snprintf(key, sizeof(key), "%d:%lld", (int)s->v[i].partition, (long long)s->v[i].offset);
	json_object_set_new(index, key, json_integer((json_int_t)i));
}

typedef struct waiter {
	sender *s;
	rd_kafka_t *cons;
	json_t *index;
	const char *cmd_topic, *dlq_topic;
	long timeout_ms;
	size_t got, next; /* outcomes received; next line to print */
} waiter;

/* Read outcomes until `target` of them arrived; -1 after timeout_ms without one. */
static int wait_outcomes(waiter *w, size_t target)
{
	int64_t last = mono_ms();
	while (w->got < target) {
		if (mono_ms() - last >= w->timeout_ms)
			return -1;
		rd_kafka_message_t *m = rd_kafka_consumer_poll(w->cons, 100);
		if (!m)
			continue;
		if (!m->err) {
			bool is_dlq = !strcmp(rd_kafka_topic_name(m->rkt), w->dlq_topic);
			if (take_outcome(w->s, w->index, w->cmd_topic, m, is_dlq)) {
				w->got++;
				last = mono_ms();
				print_ready(w->s, &w->next);
			}
		}
		rd_kafka_message_destroy(m);
	}
	return 0;
}

int cmd_send(int argc, char **argv)
{
	bk_kconf *kc = bk_kconf_new();
	const char *key_path = NULL, *key_id = NULL, *file = NULL;
	bool unsigned_ = false, as_json = false, wait = false, sequential = false;
	waiter w;
	long timeout_ms = 30000;
	char err[1024];
	int rc = BK_EXIT_USAGE;
	sender s = {0};
	uint8_t sk[BK_SK_LEN];
	rd_kafka_t *prod = NULL, *cons = NULL;
	rd_kafka_topic_partition_list_t *starts = NULL;
	json_t *index = NULL;
	FILE *in = NULL;

	if (!kc)
		return BK_EXIT_PROBLEM;
	for (int i = 1; i < argc; i++) {
		int r = bk_kconf_take_arg(kc, argc, argv, &i, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "send: %s\n", err);
			goto out;
		}
		if (r > 0)
			continue;
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			fputs(bk_kconf_usage(), stdout);
			rc = BK_EXIT_OK;
			goto out;
		} else if (!strcmp(a, "--key") && i + 1 < argc) {
			key_path = argv[++i];
		} else if (!strcmp(a, "--key-id") && i + 1 < argc) {
			key_id = argv[++i];
		} else if (!strcmp(a, "--timeout-ms") && i + 1 < argc) {
			char *end;
			timeout_ms = strtol(argv[++i], &end, 10);
			if (*end || timeout_ms < 1) {
				fprintf(stderr, "send: --timeout-ms: a positive integer, please\n");
				goto out;
			}
		} else if (!strcmp(a, "--unsigned")) {
			unsigned_ = true;
		} else if (!strcmp(a, "--content-type") || !strncmp(a, "--content-type=", 15)) {
			const char *v = a[14] == '=' ? a + 15 : i + 1 < argc ? argv[++i] : "";
			if (strcmp(v, "json") && strcmp(v, "msgpack")) {
				fprintf(stderr, "send: --content-type %s: msgpack or json\n", v);
				goto out;
			}
			as_json = !strcmp(v, "json");
		} else if (!strcmp(a, "--wait")) {
			wait = true;
		} else if (!strcmp(a, "--sequential")) {
			sequential = wait = true;
		} else if ((a[0] != '-' || !strcmp(a, "-")) && !file) {
			file = a;
		} else {
			fprintf(stderr,
				"send: unknown option, missing value or extra argument: %s\n", a);
			fputs(usage_text, stderr);
			goto out;
		}
	}
	if (unsigned_ == (key_path != NULL) || (key_path != NULL) != (key_id != NULL)) {
		fprintf(stderr, "send: give --key PATH and --key-id ID, or --unsigned\n");
		goto out;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "send: libsodium failed to initialise\n");
		rc = BK_EXIT_PROBLEM;
		goto out;
	}
	if (key_path && load_key(key_path, sk) < 0)
		goto out;
	in = !file || !strcmp(file, "-") ? stdin : fopen(file, "r");
	if (!in) {
		fprintf(stderr, "send: %s: %s\n", file, strerror(errno));
		goto out;
	}
	if (read_input(&s, in, as_json) < 0)
		goto out; /* nothing was sent */

	rc = BK_EXIT_DEPENDENCY;
	const char *cmd_topic = bk_kconf_topic(kc, BK_TOPIC_COMMANDS);
	if (wait) {
		/* fetch.wait.max.ms: an answer is shown when it lands, not when a fetch that
		 * found nothing expires (the dev broker holds one the whole 500 ms default) */
		static const char *const cdef[] = {"enable.auto.commit",
						   "false",
						   "enable.partition.eof",
						   "false",
						   "group.id",
						   "bookingctl-send",
						   "fetch.wait.max.ms",
						   "5",
						   NULL};
		if (bk_kconf_new_handle(kc, BK_KCONF_CONSUMER, cdef, &cons, err, sizeof(err)) < 0) {
			fprintf(stderr, "send: %s\n", err);
			rc = BK_EXIT_USAGE; /* bad configuration: nothing was contacted yet */
			goto out;
		}
		if (!(starts = wait_start(cons, kc, (int)timeout_ms)))
			goto out;
	}
	static const char *const pdef[] = {
	    "enable.idempotence",	    "true",    "linger.ms", "5",
	    "queue.buffering.max.messages", "1000000", NULL};
	rd_kafka_conf_t *conf;
	if (bk_kconf_build(kc, BK_KCONF_PRODUCER, pdef, &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "send: %s\n", err);
		rc = BK_EXIT_USAGE; /* bad configuration (-X partitioner=..., no brokers) */
		goto out;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_conf_set_opaque(conf, &s);
	if (!(prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)))) {
		fprintf(stderr, "send: %s\n", err);
		rd_kafka_conf_destroy(conf);
		rc = BK_EXIT_USAGE; /* librdkafka refused the configuration */
		goto out;
	}
	/* the first record would otherwise wait ~1 s for librdkafka's topic scan */
	if (bk_kconf_warm_topics(prod, &cmd_topic, 1, timeout_ms, err, sizeof(err)) < 0) {
		fprintf(stderr, "send: %s\n", err);
		rc = BK_EXIT_DEPENDENCY;
		goto out;
	}
	if (wait) {
		index = json_object();
		rd_kafka_resp_err_t ae = rd_kafka_assign(cons, starts);
		if (ae) {
			fprintf(stderr, "send: assign: %s\n", rd_kafka_err2str(ae));
			goto out;
		}
	}
	w = (waiter){.s = &s,
		     .cons = cons,
		     .index = index,
		     .cmd_topic = cmd_topic,
		     .dlq_topic = bk_kconf_topic(kc, BK_TOPIC_DLQ),
		     .timeout_ms = timeout_ms};
	for (size_t i = 0; i < s.n; i++) {
		if (produce_line(prod, &s, i, cmd_topic, as_json, key_path ? sk : NULL, key_id) < 0)
			goto out;
		if (!sequential)
			continue;
		/* one at a time: its outcome before the next command goes out */
		if (rd_kafka_flush(prod, (int)timeout_ms) || s.v[i].err)
			break;
		index_line(&s, index, i);
		if (wait_outcomes(&w, i + 1) < 0)
			break;
	}
	if (rd_kafka_flush(prod, (int)timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR || s.failed) {
		for (size_t i = 0; i < s.n; i++)
			if (s.v[i].err)
				fprintf(stderr, "send: line %d: not delivered: %s\n", s.v[i].lineno,
					rd_kafka_err2str(s.v[i].err));
		fprintf(stderr, "send: %zu of %zu commands delivered\n", s.delivered, s.n);
		goto out;
	}
	fprintf(stderr, "send: %zu commands delivered to %s\n", s.delivered, cmd_topic);
	if (!wait) {
		rc = BK_EXIT_OK;
		goto out;
	}

	for (size_t i = 0; i < s.n; i++)
		index_line(&s, index, i);
	wait_outcomes(&w, s.n);
	size_t got = w.got, next = w.next;
	print_ready(&s, &next);
	if (got < s.n) {
		for (size_t i = 0; i < s.n; i++)
			if (!s.v[i].outcome)
				fprintf(stderr, "send: line %d (%s): no outcome after %ld ms\n",
					s.v[i].lineno, s.v[i].id ? s.v[i].id : "?", timeout_ms);
		/* print what is known after the gap, so nothing is lost */
		for (size_t i = next; i < s.n; i++)
			if (!s.v[i].outcome)
				s.v[i].outcome =
				    json_pack("{s:o, s:s}", "command_id",
					      s.v[i].id ? json_string(s.v[i].id) : json_null(),
					      "status", "timeout");
		print_ready(&s, &next);
		rc = BK_EXIT_DEPENDENCY;
		goto out;
	}
	rc = BK_EXIT_OK;
	for (size_t i = 0; i < s.n; i++)
		if (s.v[i].bad)
			rc = BK_EXIT_PROBLEM;
out:
	sodium_memzero(sk, sizeof(sk));
	if (in && in != stdin)
		fclose(in);
	if (prod)
		rd_kafka_destroy(prod);
	if (cons) {
		rd_kafka_consumer_close(cons);
		rd_kafka_destroy(cons);
	}
	if (starts)
		rd_kafka_topic_partition_list_destroy(starts);
	json_decref(index);
	for (size_t i = 0; i < s.n; i++) {
		free(s.v[i].id);
		free(s.v[i].order_id);
		free(s.v[i].val);
		json_decref(s.v[i].outcome);
	}
	free(s.v);
	bk_kconf_destroy(kc);
	return rc;
}
