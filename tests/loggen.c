/*
 * loggen.c - test tool: runs fixture files through the engine (as the processor would)
 * and produces their events records to an events topic, optionally planting one defect
 * for `bookingctl verify` to find: a tampered payload, a missing record (gap), a second
 * writer's record (fork), an illegal status change, a duplicate record, or a record that
 * is not an events record at all (garbage). --schema1 writes the log as the code before
 * schema 2 did (issue #14): the money events at schema 1, without `currency`, every hash
 * of their orders chained again.
 *
 *   loggen --brokers-file F --topic T [-X key=value] [--schema1]
 *          [--plant tamper|gap|fork|illegal|duplicate|garbage] FIXTURE...
 * -X sets a producer property (the benchmarks shape the log's batches with it).
 * Prints the planted defect's order id on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "bk_codec.h"
#include "bk_schema.h"
#include "fixture_run.h"
#include "kconf.h"

typedef struct gen {
	rd_kafka_t *rk;
	const char *topic;
	const char *plant;
	int n;	    /* records produced so far */
	int target; /* the record index the defect is planted at */
	bool planted;
	char order[BK_ID_MAX];
	msgpack_sbuffer last; /* the previous record's bytes */
	char last_order[BK_ID_MAX];
	bool schema1;
	struct chain { /* --schema1: per order, the hash of its last event written */
		char order[BK_ID_MAX];
		uint8_t hash[BK_HASH_LEN];
	} * chains;
	size_t nchains;
	msgpack_sbuffer v1; /* --schema1: the record rewritten */
} gen;

static int produce(gen *g, const char *key, const void *bytes, size_t n)
{
	rd_kafka_resp_err_t err;
	do {
		err = rd_kafka_producev(g->rk, RD_KAFKA_V_TOPIC(g->topic),
					RD_KAFKA_V_KEY(key, strlen(key)),
					RD_KAFKA_V_VALUE((void *)bytes, n),
					RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(g->rk, 50);
	} while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
	if (err)
		fprintf(stderr, "loggen: produce: %s\n", rd_kafka_err2str(err));
	return err ? -1 : 0;
}

/* Re-encode rec with event 0 changed by `mut`, keeping (or recomputing) hashes. */
static int produce_mutated(gen *g, const bk_record *src, int what)
{
	msgpack_zone z;
	msgpack_zone_init(&z, 4096);
	bk_record rec;
	char err[256];
	int rc = -1;
	if (bk_codec_record_decode(g->last.data, g->last.size, &z, &rec, err, sizeof(err)) < 0)
		goto out;
	(void)src;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	bk_event *e = &rec.events[rec.n - 1];
	rec.n = 1;
	/* fork: same seq and prev_hash as the last event, other content (a second writer's
	 * id and clock; the payload stays one its subtype allows, so the record decodes) */
	bool built;
	if (what == 'f') {
		rec.events[0] = *e;
		rec.events[0].created_at += 1000000;
		rec.events[0].event_id = "tev_forked_by_a_second_writer";
		built = bk_codec_event_seal(&rec.events[0], &sb) == 0;
	} else { /* illegal: the next seq, validly chained, an order.completed from anywhere */
		bk_mapb b;
		if (!bk_mapb_init(&b, &z, 3) || !bk_mapb_str(&b, "from", "initiated") ||
		    !bk_mapb_str(&b, "to", "completed") ||
		    !bk_mapb_str(&b, "cause", "order.complete")) {
			msgpack_sbuffer_destroy(&sb);
			goto out;
		}
		rec.events[0] = *e;
		rec.events[0].seq = e->seq + 1;
		memcpy(rec.events[0].prev_hash, e->hash, BK_HASH_LEN);
		rec.events[0].type = BK_EV_ORDER_STATUS;
		rec.events[0].sub = BK_ST_COMPLETED;
		rec.events[0].event_id = "tev_illegal_jump_to_completed";
		rec.events[0].payload = bk_mapb_done(&b);
		built = bk_codec_event_seal(&rec.events[0], &sb) == 0;
	}
	msgpack_sbuffer_clear(&sb);
	if (built && bk_codec_record_encode(&rec, &sb) == 0)
		rc = produce(g, rec.order_id, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
out:
	msgpack_zone_destroy(&z);
	return rc;
}

/* The hash an order's next event chains to in the rewritten log. */
static uint8_t *chain_of(gen *g, const char *order)
{
	for (size_t i = 0; i < g->nchains; i++)
		if (!strcmp(g->chains[i].order, order))
			return g->chains[i].hash;
	struct chain *c = realloc(g->chains, (g->nchains + 1) * sizeof(*c));
	if (!c)
		return NULL;
	g->chains = c;
	c = &g->chains[g->nchains++];
	snprintf(c->order, sizeof(c->order), "%s", order);
	memset(c->hash, 0, BK_HASH_LEN);
	return c->hash;
}

/* --schema1: the record with its money events at schema 1 (no currency) and every event
 * chained again, into g->v1. 0 or -1. */
static int to_schema1(gen *g, const void *bytes, size_t n)
{
	msgpack_zone z;
	msgpack_sbuffer scratch;
	bk_record rec;
	char err[256];
	int rc = -1;
	if (!msgpack_zone_init(&z, 4096))
		return -1;
	msgpack_sbuffer_init(&scratch);
	if (bk_codec_record_decode(bytes, n, &z, &rec, err, sizeof(err)) < 0)
		goto out;
	for (uint32_t i = 0; i < rec.n; i++) {
		bk_event *e = &rec.events[i];
		uint8_t *last = chain_of(g, e->order_id);
		if (!last)
			goto out;
		if (bk_event_is_money(e)) {
			const bk_val *p = &e->payload;
			bk_mapb b;
			if (!bk_mapb_init(&b, &z, p->via.map.size))
				goto out;
			for (uint32_t k = 0; k < p->via.map.size; k++)
				if (!bk_val_streq(&p->via.map.ptr[k].key, "currency"))
					b.kv[b.n++] = p->via.map.ptr[k];
			e->payload = bk_mapb_done(&b);
			e->schema = 1;
		}
		e->canon = NULL;
		memcpy(e->prev_hash, last, BK_HASH_LEN);
		if (bk_codec_event_seal(e, &scratch) < 0)
			goto out;
		memcpy(last, e->hash, BK_HASH_LEN);
	}
	msgpack_sbuffer_clear(&g->v1);
	rc = bk_codec_record_encode(&rec, &g->v1);
out:
	msgpack_sbuffer_destroy(&scratch);
	msgpack_zone_destroy(&z);
	return rc;
}

static int on_record(void *opaque, const bk_record *r, const void *bytes, size_t n)
{
	gen *g = opaque;
	if (g->schema1) {
		if (to_schema1(g, bytes, n) < 0) {
			fprintf(stderr, "loggen: cannot rewrite a record at schema 1\n");
			return -1;
		}
		bytes = g->v1.data;
		n = g->v1.size;
	}
	int idx = g->n++;
	const char *p = g->plant;
	if (p && !g->planted && idx >= g->target) {
		if (!strcmp(p, "tamper") && r->n == 1) {
			/* flip a byte of the payload's text: the hash no longer matches */
			char *copy = malloc(n);
			memcpy(copy, bytes, n);
			const char *needle = "Paris";
			for (size_t i = 0; i + 5 <= n; i++)
				if (!memcmp(copy + i, needle, 5)) {
					copy[i] = 'B';
					g->planted = true;
					break;
				}
			int rc = produce(g, r->order_id, copy, n);
			free(copy);
			if (g->planted) {
				snprintf(g->order, sizeof(g->order), "%s", r->order_id);
				return rc;
			}
		} else if (!strcmp(p, "gap") && strcmp(r->order_id, g->last_order) == 0) {
			g->planted = true; /* this record is never produced */
			snprintf(g->order, sizeof(g->order), "%s", r->order_id);
			return 0;
		} else if (!strcmp(p, "garbage")) {
			/* bytes that are no events record, on the order's partition, before the
			 * order's real record: readers must report or skip it and go on */
			static const char junk[] = "not an events record \xc1\xff";
			g->planted = true;
			snprintf(g->order, sizeof(g->order), "%s", r->order_id);
			if (produce(g, r->order_id, junk, sizeof(junk) - 1) < 0)
				return -1;
		} else if (!strcmp(p, "duplicate")) {
			g->planted = true;
			snprintf(g->order, sizeof(g->order), "%s", r->order_id);
			if (produce(g, r->order_id, bytes, n) < 0)
				return -1;
		}
	}
	if (produce(g, r->order_id, bytes, n) < 0)
		return -1;
	msgpack_sbuffer_clear(&g->last);
	msgpack_sbuffer_write(&g->last, bytes, n);
	snprintf(g->last_order, sizeof(g->last_order), "%s", r->order_id);
	return 0;
}

int main(int argc, char **argv)
{
	gen g = {.target = 5};
	const char *bfile = NULL;
	char err[512];
	bk_kconf *kc = bk_kconf_new();
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--brokers-file") && i + 1 < argc)
			bfile = argv[++i];
		else if (!strcmp(argv[i], "-X") && i + 1 < argc) {
			if (bk_kconf_set_kv(kc, argv[++i], err, sizeof(err)) < 0) {
				fprintf(stderr, "loggen: %s\n", err);
				return 2;
			}
		} else if (!strcmp(argv[i], "--topic") && i + 1 < argc)
			g.topic = argv[++i];
		else if (!strcmp(argv[i], "--plant") && i + 1 < argc)
			g.plant = argv[++i];
		else if (!strcmp(argv[i], "--schema1"))
			g.schema1 = true;
		else {
			fprintf(stderr, "loggen: bad argument %s\n", argv[i]);
			return 2;
		}
	}
	if (!bfile || !g.topic || i == argc) {
		fprintf(stderr,
			"usage: loggen --brokers-file F --topic T [-X key=value] [--schema1] "
			"[--plant KIND] FIXTURE...\n");
		return 2;
	}
	if (bk_kconf_set_brokers_file(kc, bfile, err, sizeof(err)) < 0 ||
	    bk_kconf_new_handle(kc, BK_KCONF_PRODUCER, NULL, &g.rk, err, sizeof(err)) < 0) {
		fprintf(stderr, "loggen: %s\n", err);
		return 3;
	}
	msgpack_sbuffer_init(&g.last);
	msgpack_sbuffer_init(&g.v1);
	for (; i < argc; i++) {
		bk_engine *e = bk_engine_new();
		json_t *fails = json_array();
		if (fx_run_file_cb(e, argv[i], fails, on_record, &g, err, sizeof(err)) < 0) {
			fprintf(stderr, "loggen: %s\n", err);
			return 1;
		}
		json_decref(fails);
		bk_engine_free(e);
	}
	if (g.plant && (!strcmp(g.plant, "fork") || !strcmp(g.plant, "illegal"))) {
		if (produce_mutated(&g, NULL, g.plant[0]) < 0)
			return 1;
		snprintf(g.order, sizeof(g.order), "%s", g.last_order);
		g.planted = true;
	}
	rd_kafka_flush(g.rk, 10000);
	if (g.plant && !g.planted) {
		fprintf(stderr, "loggen: could not plant %s\n", g.plant);
		return 1;
	}
	printf("%s\n", g.plant ? g.order : "");
	fprintf(stderr, "loggen: %d records to %s\n", g.n, g.topic);
	msgpack_sbuffer_destroy(&g.last);
	msgpack_sbuffer_destroy(&g.v1);
	free(g.chains);
	rd_kafka_destroy(g.rk);
	bk_kconf_destroy(kc);
	return 0;
}
