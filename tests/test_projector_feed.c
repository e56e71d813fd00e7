/*
 * test_projector_feed.c - writes an events log for the projector tests, without the
 * command processor: fixture commands go through the engine in-process (as the processor
 * would decide them) and each accepted command's events become one record on the
 * events topic (key = order id), each rules change one record on the rules topic.
 * It can also copy fixtures many times under fresh ids, duplicate records, append a
 * forked record or a garbage record, and create its topics through the devbroker.
 * --seal-every N seals the log as the processor does (docs/design.md): after every N
 * events records, a flush, then one seal per partition listing that batch's records,
 * signed with the writer key of $BOOKING_WRITER_KEY / $BOOKING_WRITER_KEY_ID.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bk_archive.h"
#include "bk_codec.h"
#include "bk_engine.h"
#include "kconf.h"
#include "trust.h"
#include "tz.h"

typedef struct feed {
	rd_kafka_t *rk;
	const char *events, *rules;
	long dup_every;
	long records, events_n, rules_n, dups;
	long sleep_every, sleep_ms;
	int64_t archive_after; /* --archive-after: sweep settled orders after each file (us) */
	/* the last record produced per order named by --fork */
	const char *fork_order;
	msgpack_sbuffer fork_rec;
	/* --seal-every: the batch's events records (digest; partition and offset from their
	 * delivery reports), the writer key */
	long seal_every, seals;
	struct pend {
		uint8_t digest[BK_HASH_LEN];
		int32_t part;
		int64_t offset;
	} * pend;
	size_t npend, cappend;
	uint8_t wsk[BK_SK_LEN];
	char wkid[64];
} feed;

/* Delivery report: the offset of a pending events record (msg_opaque: its index + 1). */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	feed *f = opaque;
	size_t i = (size_t)(uintptr_t)m->_private;
	if (i == 0 || i > f->npend)
		return;
	f->pend[i - 1].part = m->err ? -1 : m->partition;
	f->pend[i - 1].offset = m->err ? -1 : m->offset;
}

static int cmp_pend(const void *a, const void *b)
{
	const struct pend *x = a, *y = b;
	if (x->part != y->part)
		return x->part < y->part ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Close a sealed batch: flush, then one seal per partition listing its records. */
static int seal_batch(feed *f)
{
	if (f->npend == 0)
		return 0;
	if (rd_kafka_flush(f->rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "seal: flush failed\n");
		return -1;
	}
	for (size_t i = 0; i < f->npend; i++)
		if (f->pend[i].part < 0) {
			fprintf(stderr, "seal: a record was not delivered\n");
			return -1;
		}
	qsort(f->pend, f->npend, sizeof(*f->pend), cmp_pend);
	bk_seal_rec *recs = malloc(f->npend * sizeof(*recs));
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	int rc = recs ? 0 : -1;
	for (size_t from = 0, to; rc == 0 && from < f->npend; from = to) {
		for (to = from; to < f->npend && f->pend[to].part == f->pend[from].part; to++) {
			recs[to - from].offset = f->pend[to].offset;
			memcpy(recs[to - from].digest, f->pend[to].digest, BK_HASH_LEN);
		}
		bk_seal s = {.writer = f->wkid,
			     .topic = f->events,
			     .partition = f->pend[from].part,
			     .base = f->pend[to - 1].offset + 1,
			     .src_next = -1,
			     .recs = recs,
			     .n = (uint32_t)(to - from)};
		rd_kafka_headers_t *h;
		if (bk_trust_seal_record(&s, f->wsk, f->wkid, &sb, &h) < 0) {
			rc = -1;
			break;
		}
		rd_kafka_resp_err_t e;
		while ((e = rd_kafka_producev(
			    f->rk, RD_KAFKA_V_TOPIC(f->events), RD_KAFKA_V_PARTITION(s.partition),
			    RD_KAFKA_V_KEY(BK_SEAL_KEY, strlen(BK_SEAL_KEY)),
			    RD_KAFKA_V_VALUE(sb.data, sb.size),
			    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
			    RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(f->rk, 50);
		if (e) {
			rd_kafka_headers_destroy(h);
			fprintf(stderr, "seal: produce: %s\n", rd_kafka_err2str(e));
			rc = -1;
		}
		f->seals++;
	}
	free(recs);
	msgpack_sbuffer_destroy(&sb);
	f->npend = 0;
	return rc;
}

static void usage(void)
{
	fputs("usage: test_projector_feed [kafka options] [--control SOCK --create-topics N]\n"
	      "       [--copies K] [--dup-every N] [--fork ORDER] [--garbage KEY]\n"
	      "       [--archive-after SECONDS]\n"
	      "       [--sleep-every N --sleep-ms MS] [--seal-every N] FIXTURE.jsonl...\n",
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

/* Produce a record; an events record of a sealed feed is noted for its batch's seal. */
static int produce(feed *f, const char *topic, const char *key, const void *val, size_t n)
{
	uintptr_t idx = 0;
	if (f->seal_every > 0 && topic == f->events) {
		bk_record r;
		msgpack_zone z;
		msgpack_zone_init(&z, 4096);
		char err[256];
		if (f->npend == f->cappend) {
			size_t cap = f->cappend ? f->cappend * 2 : 1024;
			struct pend *v = realloc(f->pend, cap * sizeof(*v));
			if (!v)
				return -1;
			f->pend = v;
			f->cappend = cap;
		}
		struct pend *pe = &f->pend[f->npend];
		if (bk_codec_record_decode(val, n, &z, &r, err, sizeof(err)) == 0) {
			bk_seal_digest_record(&r, pe->digest);
			pe->part = pe->offset = -1;
			idx = ++f->npend; /* garbage stays unsealed */
		}
		msgpack_zone_destroy(&z);
	}
	rd_kafka_headers_t *h = rd_kafka_headers_new(2);
	if (f->seal_every > 0 && topic == f->rules) { /* signed one by one, as the processor */
		uint8_t sig[BK_SIG_LEN];
		bk_trust_sign_rules(f->wsk, key, strlen(key), val, n, sig);
		rd_kafka_header_add(h, "key-id", -1, f->wkid, -1);
		rd_kafka_header_add(h, "signature", -1, sig, BK_SIG_LEN);
	}
	for (;;) {
		rd_kafka_resp_err_t e = rd_kafka_producev(
		    f->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
		    RD_KAFKA_V_VALUE((void *)val, n), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		    RD_KAFKA_V_OPAQUE((void *)idx), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			rd_kafka_poll(f->rk, 50);
			continue;
		}
		if (e) {
			rd_kafka_headers_destroy(h);
			fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e));
			return -1;
		}
		rd_kafka_poll(f->rk, 0);
		if (f->seal_every > 0 && (long)f->npend >= f->seal_every)
			return seal_batch(f);
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

typedef struct due {
	char id[BK_ID_MAX];
	int64_t at;
} due;

typedef struct due_list {
	due v[4096];
	size_t n;
	int64_t window;
} due_list;

static void note_due(const bk_order *o, void *opaque)
{
	due_list *l = opaque;
	int64_t at = bk_archive_due(o, l->window);
	if (at != BK_TS_NONE && l->n < sizeof(l->v) / sizeof(l->v[0])) {
		memcpy(l->v[l->n].id, o->order_id, BK_ID_MAX);
		l->v[l->n++].at = at;
	}
}

/* --archive-after: the processor's sweep on every settled order of e once its window has
 * passed (order.archived records, as booking-commands writes them). */
static int archive_all(feed *f, bk_engine *e, bk_tzdb *tz)
{
	static due_list l;
	l.n = 0;
	l.window = f->archive_after;
	bk_engine_foreach(e, note_due, &l);
	int rc = 0;
	for (size_t i = 0; i < l.n && rc == 0; i++) {
		bk_command c = {.id = "cmd_feed_sweep",
				.type = BK_CMD_ORDER_SWEEP,
				.order_id = l.v[i].id,
				.actor_role = BK_ROLE_SYSTEM,
				.at = l.v[i].at,
				.payload = {.type = MSGPACK_OBJECT_MAP}};
		bk_decide_ctx ctx = {.now = c.at,
				     .archive_after = f->archive_after,
				     .tz = bk_tz_offset,
				     .tz_opaque = tz};
		msgpack_zone z;
		msgpack_zone_init(&z, 4096);
		bk_decision d;
		if (bk_engine_handle(e, &c, &ctx, &z, &d) < 0 || d.n_events == 0) {
			fprintf(stderr, "archive %s: %s\n", c.order_id, d.message);
			rc = -1;
		} else {
			bk_record r = {c.order_id, c.id, d.events, d.n_events};
			rc = emit_record(f, &r);
		}
		msgpack_zone_destroy(&z);
	}
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
		else if (!strcmp(a, "--seal-every"))
			f.seal_every = atol(v);
		else if (!strcmp(a, "--archive-after"))
			f.archive_after = (int64_t)atol(v) * BK_US_PER_S;
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
	if (f.seal_every > 0 &&
	    bk_trust_load_key(getenv("BOOKING_WRITER_KEY"), getenv("BOOKING_WRITER_KEY_ID"), f.wsk,
			      f.wkid, err, sizeof(err)) < 0) {
		fprintf(stderr, "--seal-every: %s\n", err);
		return 2;
	}
	rd_kafka_conf_t *conf;
	if (bk_kconf_build(kc, BK_KCONF_PRODUCER, defaults, &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_conf_set_opaque(conf, &f);
	f.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!f.rk) {
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
			if (rc == 0 && f.archive_after > 0)
				rc = archive_all(&f, e, tz);
			bk_engine_free(e);
		}
	if (rc == 0 && f.fork_order)
		rc = emit_fork(&f);
	if (rc == 0)
		rc = seal_batch(&f);
	if (rc == 0 && garbage)
		rc = produce(&f, f.events, garbage, "\xc1garbage", 8);
	if (rd_kafka_flush(f.rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "flush: not everything was delivered\n");
		rc = -1;
	}
	printf("records=%ld events=%ld rules=%ld duplicates=%ld seals=%ld\n", f.records, f.events_n,
	       f.rules_n, f.dups, f.seals);
	free(f.pend);
	rd_kafka_destroy(f.rk);
	bk_tzdb_free(tz);
	bk_kconf_destroy(kc);
	msgpack_sbuffer_destroy(&f.fork_rec);
	return rc == 0 ? 0 : 1;
}
