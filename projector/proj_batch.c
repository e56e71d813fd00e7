/*
 * proj_batch.c - a batch from consumed records to one committed PostgreSQL transaction.
 *
 * Plan: every event is judged by the shared reader rule (bk_chain_classify) against its
 * order's head - cached, or loaded for all missing orders in one query - and NEXT events
 * are coalesced into row images (proj_apply). Write: one transaction locks and checks the
 * batch's checkpoints (another instance moved them: fenced, nothing written), writes the
 * images, the quarantine and fork rows, the rules and the new checkpoints, and commits.
 * A poison event found while planning is quarantined and the plan is redone without it;
 * one PostgreSQL refuses sends the batch down the slow path (a savepoint per order, then
 * per event) so that only the poisoned order stops. The cache changes only on commit.
 *
 * A rebuild swap (docs/rebuild.md) replaces the read model under a live connection: each
 * session reads the model's generation at connect and again in every batch's fence, after
 * the checkpoint rows are locked (the swap holds their table, so a fence waiting on it
 * reads the new generation). A new generation fences the batch, drops the cache and closes
 * the connection: its temp staging tables and prepared statements are the old model's.
 *
 * Threads: everything here runs on the caller's thread, except that gather hands the
 * second half of a big batch's records to a helper thread (decode_all) to decode and
 * hash-check: it owns that half of dec[] and its own msgpack zone and scratch buffer,
 * reads nothing else but the messages and the topic names, and is joined before gather
 * goes on. The instance, its cache, its connection and its store stay single-threaded.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bk_codec.h"
#include "bk_seal.h"
#include "log.h"
#include "pgutil.h"
#include "proj_apply.h"
#include "proj_batch.h"
#include "proj_plan.h"

#define RING	    8	    /* recent hashes kept per order, for duplicate checks */
#define CACHE_MAX   1000000 /* orders cached; the cache is emptied past this */
#define BACKOFF_MIN 100	    /* ms */
#define BACKOFF_MAX 5000    /* ms */

/* Recent hashes of an order, for duplicates of events before its last (no query). */
typedef struct ring {
	int64_t seq[RING];
	uint8_t hash[RING][BK_HASH_LEN];
} ring;

typedef struct oentry {
	pp_order po; /* first: what planning sees (id, heads, quarantine flags) */
	ring rc;     /* recent hashes: committed */
	ring rb;     /* while planning */
} oentry;

#define OENTRY(o) ((oentry *)(void *)(o)) /* a pp_order is its entry's first member */

typedef struct expect {
	int topic; /* 0 events, 1 rules */
	int32_t part;
	int64_t next;
} expect;

typedef struct bpart {
	int topic;
	int32_t part;
	int64_t last; /* offset of the batch's last record of the partition */
} bpart;

struct proj {
	proj_cfg cfg;
	PGconn *conn;
	proj_stats st;
	oentry **slots;
	size_t nslots, n;
	uint32_t gen;
	expect *exp;
	size_t nexp, capexp;
	pr_store *store;
	pp_plan pl;	     /* the batch's items */
	PGresult *retry_res; /* rows being retried (their bytes), cleared per attempt */
	msgpack_sbuffer sb;
	int backoff_ms;
	bpart *bparts; /* the batch's partitions with their last offsets (batch_parts) */
	size_t nbparts, capbparts;
	int64_t model_gen; /* read model generation the connection saw (0: no booking_proj.model) */
	bool model_table;  /* booking_proj.model existed at the connection's last read of it */
	bool model_known;  /* model_gen was read by a session of this instance */
	bool replaced;	   /* the fence saw a new generation: close the connection */
	const uint8_t *ver;		   /* the batch's PV_* per message */
	const uint8_t (*dig)[BK_HASH_LEN]; /* PV_CHECK: the digest the record's seal lists */
};

/* --- small helpers ------------------------------------------------------------------ */

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int topic_idx(const proj *p, const char *name)
{
	return strcmp(name, p->cfg.events_topic) == 0 ? 0 : 1;
}

static const char *topic_name(const proj *p, int t)
{
	return t == 0 ? p->cfg.events_topic : p->cfg.rules_topic;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return h;
}

/* --- order cache --------------------------------------------------------------------- */

static void cache_clear(proj *p)
{
	for (size_t i = 0; i < p->nslots; i++) {
		free(p->slots[i]);
		p->slots[i] = NULL;
	}
	p->n = 0;
}

static size_t cache_slot(const proj *p, const char *id)
{
	size_t mask = p->nslots - 1, i = (size_t)hash_str(id) & mask;
	while (p->slots[i] && strcmp(p->slots[i]->po.id, id) != 0)
		i = (i + 1) & mask;
	return i;
}

static oentry *cache_find(const proj *p, const char *id)
{
	return p->nslots ? p->slots[cache_slot(p, id)] : NULL;
}

static void cache_evict(proj *p, const char *id)
{
	if (!p->nslots)
		return;
	size_t i = cache_slot(p, id), mask = p->nslots - 1;
	if (!p->slots[i])
		return;
	free(p->slots[i]);
	p->slots[i] = NULL;
	p->n--;
	for (size_t j = (i + 1) & mask; p->slots[j]; j = (j + 1) & mask) {
		oentry *o = p->slots[j];
		p->slots[j] = NULL;
		p->slots[cache_slot(p, o->po.id)] = o;
	}
}

/* Insert a new entry (not yet loaded). NULL on OOM or a too long id. */
static oentry *cache_add(proj *p, const char *id)
{
	if (strlen(id) >= BK_ID_MAX)
		return NULL;
	if ((p->n + 1) * 2 > p->nslots) {
		size_t ns = p->nslots ? p->nslots * 2 : 4096;
		oentry **slots = calloc(ns, sizeof(*slots));
		if (!slots)
			return NULL;
		oentry **old = p->slots;
		size_t oldn = p->nslots;
		p->slots = slots;
		p->nslots = ns;
		for (size_t i = 0; i < oldn; i++)
			if (old[i])
				p->slots[cache_slot(p, old[i]->po.id)] = old[i];
		free(old);
	}
	oentry *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	snprintf(o->po.id, sizeof(o->po.id), "%s", id);
	p->slots[cache_slot(p, id)] = o;
	p->n++;
	return o;
}

/* --- instance ------------------------------------------------------------------------ */

proj *proj_new(const proj_cfg *cfg)
{
	proj *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->cfg = *cfg;
	p->store = pr_store_new();
	if (!p->store) {
		free(p);
		return NULL;
	}
	msgpack_sbuffer_init(&p->sb);
	pp_init(&p->pl);
	p->backoff_ms = BACKOFF_MIN;
	return p;
}

void proj_free(proj *p)
{
	if (!p)
		return;
	cache_clear(p);
	free(p->slots);
	free(p->exp);
	pp_free(&p->pl);
	free(p->bparts);
	PQclear(p->retry_res);
	pr_store_free(p->store);
	msgpack_sbuffer_destroy(&p->sb);
	if (p->conn)
		PQfinish(p->conn);
	free(p);
}

const proj_stats *proj_get_stats(const proj *p)
{
	return &p->st;
}

static void pg_log(void *opaque, pgu_level level, const char *msg)
{
	(void)opaque;
	bk_logf(level >= PGU_LOG_WARN ? BK_LOG_WARN : BK_LOG_DEBUG, "postgresql", "detail=\"%s\"",
		msg);
}

static void model_replaced(const proj *p, int64_t gen, const char *at)
{
	bk_logf(BK_LOG_WARN, "read model replaced (rebuild swap)",
		"old_generation=%lld new_generation=%lld at=%s", (long long)p->model_gen,
		(long long)gen, at);
}

int proj_connect(proj *p)
{
	static const pgu_log log = {pg_log, NULL};
	if (p->conn && PQstatus(p->conn) == CONNECTION_OK &&
	    PQtransactionStatus(p->conn) == PQTRANS_IDLE)
		return 0;
	if (p->conn) {
		PQfinish(p->conn);
		p->conn = NULL;
	}
	int delay = BACKOFF_MIN;
	while (!*p->cfg.stop) {
		char err[512];
		pgu_connect_opts o = {
		    .attempts = 1, .application_name = "booking-projector", .log = &log};
		PGconn *c = pgu_connect(p->cfg.conninfo, &o, err, sizeof(err));
		/* the generation before the staging tables: a swap between the two is seen by
		 * the first fence, never missed */
		bool table = false;
		int64_t gen = 0;
		/* A commit lost to a server crash is harmless: the checkpoint is in the same
		 * transaction, so the batch is read from Kafka and projected again. JIT
		 * compiling costs more than it saves on the per-batch statements. */
		if (c &&
		    pgu_exec(c, "set synchronous_commit = off; set jit = off", "session settings",
			     err, sizeof(err)) == 0 &&
		    pdb_model_generation(c, &table, &gen, err, sizeof(err)) == 0 &&
		    pdb_setup(c, &pdb_live, err, sizeof(err)) == 0) {
			char who[256];
			bk_logf(BK_LOG_INFO, "connected to postgresql", "db=%s generation=%lld",
				pgu_describe(c, who, sizeof(who)), (long long)gen);
			if (p->model_known && gen != p->model_gen) {
				/* replaced while disconnected (the swap ends our sessions) */
				model_replaced(p, gen, "connect");
				cache_clear(p);
			}
			p->model_gen = gen;
			p->model_table = table;
			p->model_known = true;
			p->conn = c;
			return 0;
		}
		if (c)
			PQfinish(c);
		p->st.pg_errors++;
		bk_logf(BK_LOG_WARN, "postgresql unavailable, retrying", "err=\"%s\" retry_ms=%d",
			err, delay);
		sleep_ms(delay);
		delay = delay * 2 > BACKOFF_MAX ? BACKOFF_MAX : delay * 2;
	}
	return -1;
}

static expect *exp_find(proj *p, int topic, int32_t part, bool create)
{
	for (size_t i = 0; i < p->nexp; i++)
		if (p->exp[i].topic == topic && p->exp[i].part == part)
			return &p->exp[i];
	if (!create)
		return NULL;
	if (p->nexp == p->capexp) {
		size_t cap = p->capexp ? p->capexp * 2 : 64;
		expect *e = realloc(p->exp, cap * sizeof(*e));
		if (!e)
			return NULL;
		p->exp = e;
		p->capexp = cap;
	}
	p->exp[p->nexp] = (expect){topic, part, -1};
	return &p->exp[p->nexp++];
}

int64_t proj_next(const proj *p, const char *topic, int32_t partition)
{
	expect *e = exp_find((proj *)p, topic_idx(p, topic), partition, false);
	return e ? e->next : -1;
}

/* Drop the connection after a failure that was not the data's (it may be broken). */
static void pg_failed(proj *p, const char *what, const char *err)
{
	p->st.pg_errors++;
	bk_logf(BK_LOG_WARN, "postgresql failed, retrying the batch",
		"step=%s err=\"%s\" retry_ms=%d", what, err, p->backoff_ms);
	if (p->conn) {
		PQfinish(p->conn);
		p->conn = NULL;
	}
	cache_clear(p);
	sleep_ms(p->backoff_ms);
	p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX ? BACKOFF_MAX : p->backoff_ms * 2;
}

int proj_assign(proj *p, const char *topic, const int32_t *parts, size_t n, int64_t *ret_next)
{
	int t = topic_idx(p, topic);
	for (;;) {
		if (proj_connect(p) < 0)
			return -1;
		char err[512];
		if (pdb_checkpoints(p->conn, topic, parts, n, false, ret_next, err, sizeof(err)) ==
		    0)
			break;
		pg_failed(p, "read checkpoints", err);
	}
	for (size_t i = 0; i < n; i++) {
		expect *e = exp_find(p, t, parts[i], true);
		if (e)
			e->next = ret_next[i];
	}
	return 0;
}

void proj_revoke(proj *p)
{
	p->nexp = 0;
	cache_clear(p);
}

/* --- planning (proj_plan.c; here: the order lookup of this daemon) ------------------ */

static pp_order *order_of(void *ctx, const char *order_id)
{
	oentry *o = cache_find(ctx, order_id);
	return o ? &o->po : NULL;
}

/* The items of one record, from partition part at offset (qid: a retried row). */
static int add_record(proj *p, const bk_record *rec, pp_seal seal, const uint8_t *hash_bad,
		      const char *why, const void *raw, size_t raw_n, const char *key, int topic,
		      int32_t part, int64_t offset, int64_t qid)
{
	long first = pp_add_record(&p->pl, rec, why, seal, hash_bad, order_of, p, key);
	if (first < 0)
		return -1;
	for (size_t i = (size_t)first; i < p->pl.n; i++) {
		pp_item *it = &p->pl.items[i];
		it->qid = qid;
		it->topic = topic;
		it->part = part;
		it->offset = offset;
		it->raw = raw;
		it->raw_n = raw_n;
	}
	return 0;
}

/* An older hash of an order: its recent ring, else PostgreSQL's timeline. */
static int hash_at(void *ctx, pp_order *po, int64_t seq, uint8_t ret[BK_HASH_LEN], char *err,
		   size_t errsz)
{
	proj *p = ctx;
	const ring *r = &OENTRY(po)->rb;
	size_t i = (size_t)seq % RING;
	if (r->seq[i] == seq) {
		memcpy(ret, r->hash[i], BK_HASH_LEN);
		return 0;
	}
	bool found = false;
	if (pdb_hash_at(p->conn, po->id, seq, ret, &found, err, errsz) < 0)
		return -1;
	return found ? 0 : 1;
}

static void ring_reset(void *ctx, pp_order *po)
{
	(void)ctx;
	OENTRY(po)->rb = OENTRY(po)->rc;
}

static int ring_applied(void *ctx, pp_order *po, const bk_event *e)
{
	(void)ctx;
	ring *r = &OENTRY(po)->rb;
	r->seq[e->seq % RING] = e->seq;
	memcpy(r->hash[e->seq % RING], e->hash, BK_HASH_LEN);
	return 0;
}

static int plan(proj *p, char *err, size_t errsz)
{
	const pp_ops ops = {hash_at, ring_reset, ring_applied, p};
	return pp_run(&p->pl, p->store, &ops, err, errsz);
}

/* --- gathering ---------------------------------------------------------------------- */

/* A growable list of order ids (pointers owned elsewhere). */
typedef struct idlist {
	const char **v;
	size_t n, cap;
} idlist;

static bool id_push(idlist *l, const char *id)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		const char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return false;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = id;
	return true;
}

typedef struct decoded {
	bk_record r;
	bool ok;
	uint8_t *bad;  /* per event of r: hash does not match (in the decoding zone) */
	bool unsealed; /* PV_CHECK: its digest is not the one its seal lists */
	char key[BK_ID_MAX];
	char why[200];
} decoded;

/* Records [from, to) of a batch to decode and hash-check into dec[], with their own zone
 * and scratch buffer (so two ranges can be done on two threads). */
typedef struct dec_job {
	const proj *p;
	rd_kafka_message_t *const *msgs;
	decoded *dec;
	size_t from, to;
	msgpack_zone *z;
	msgpack_sbuffer sb;
	int rc; /* -1: out of memory */
} dec_job;

static void decode_range(dec_job *j)
{
	j->rc = 0;
	for (size_t i = j->from; i < j->to; i++) {
		const rd_kafka_message_t *m = j->msgs[i];
		decoded *d = &j->dec[i];
		if (topic_idx(j->p, rd_kafka_topic_name(m->rkt)) != 0 ||
		    (j->p->ver && j->p->ver[i] == PV_SEAL))
			continue;
		if (m->key && m->key_len < sizeof(d->key)) {
			memcpy(d->key, m->key, m->key_len);
			d->key[m->key_len] = 0;
		}
		if (!d->key[0])
			snprintf(d->key, sizeof(d->key), "(no key)");
		d->ok = m->len && bk_codec_record_decode(m->payload, m->len, j->z, &d->r, d->why,
							 sizeof(d->why)) == 0;
		if (!m->len)
			snprintf(d->why, sizeof(d->why), "empty record");
		if (d->ok && j->p->ver && j->p->ver[i] == PV_CHECK)
			d->unsealed = !bk_seal_digest_is(&d->r, j->p->dig[i]);
		if (!d->ok || !d->r.n)
			continue;
		d->bad = msgpack_zone_malloc(j->z, d->r.n);
		if (!d->bad) {
			j->rc = -1;
			return;
		}
		for (uint32_t k = 0; k < d->r.n; k++)
			d->bad[k] = !bk_seal_hash_ok(&d->r.events[k], &j->sb);
	}
}

static void *decode_thread(void *arg)
{
	decode_range(arg);
	return NULL;
}

#define DECODE_SPLIT 256 /* records: below this a batch is decoded on one thread */

/*
 * Decode and hash-check the records of a batch into dec[]: the first half on this thread
 * into z, the second half (batches of DECODE_SPLIT records or more) on a helper thread
 * into z2, in parallel (PostgreSQL waits for the batch meanwhile). 0 or -1 (OOM).
 */
static int decode_all(const proj *p, rd_kafka_message_t *const *msgs, size_t n, decoded *dec,
		      msgpack_zone *z, msgpack_zone *z2)
{
	dec_job a = {p, msgs, dec, 0, n, z, {0}, 0}, b = {p, msgs, dec, n, n, z2, {0}, 0};
	msgpack_sbuffer_init(&a.sb);
	msgpack_sbuffer_init(&b.sb);
	pthread_t th;
	bool threaded = false;
	if (n >= DECODE_SPLIT) {
		a.to = b.from = n / 2;
		threaded = pthread_create(&th, NULL, decode_thread, &b) == 0;
		if (!threaded) /* no thread: all on this one */
			a.to = b.from = n;
	}
	decode_range(&a);
	if (threaded)
		pthread_join(th, NULL);
	msgpack_sbuffer_destroy(&a.sb);
	msgpack_sbuffer_destroy(&b.sb);
	return a.rc < 0 || b.rc < 0 ? -1 : 0;
}

/* Entries for ids not cached, loaded from PostgreSQL in one query. */
static int load_missing(proj *p, const idlist *ids, char *err, size_t errsz)
{
	idlist load = {0};
	int rc = 0;
	for (size_t i = 0; i < ids->n && rc == 0; i++) {
		if (cache_find(p, ids->v[i]) || strlen(ids->v[i]) >= BK_ID_MAX)
			continue;
		oentry *o = cache_add(p, ids->v[i]);
		if (!o || !id_push(&load, o->po.id))
			rc = -1;
	}
	pdb_head *h = load.n ? calloc(load.n, sizeof(*h)) : NULL;
	if (rc < 0 || (load.n && !h)) {
		snprintf(err, errsz, "out of memory");
		rc = -1;
	} else if (load.n && pdb_load_heads(p->conn, load.v, load.n, h, err, errsz) < 0) {
		rc = -1;
	}
	for (size_t i = 0; i < load.n; i++) {
		oentry *o = cache_find(p, load.v[i]);
		if (!o)
			continue;
		if (rc < 0) {
			cache_evict(p, load.v[i]);
			continue;
		}
		pp_head *s = &o->po.c;
		s->seq = h[i].seq;
		memcpy(s->hash, h[i].hash, BK_HASH_LEN);
		s->f.status = h[i].status;
		snprintf(s->f.buyer, sizeof(s->f.buyer), "%s", h[i].buyer);
		snprintf(s->f.provider, sizeof(s->f.provider), "%s", h[i].provider);
		snprintf(s->f.currency, sizeof(s->f.currency), "%s", h[i].currency);
		for (int k = 0; k < RING; k++)
			o->rc.seq[k] = -1;
	}
	free(h);
	free(load.v);
	return rc;
}

static int64_t be_int(const char *b, int n)
{
	uint64_t v = 0;
	for (int k = 0; k < n; k++)
		v = v << 8 | (uint8_t)b[k];
	return n == 4 ? (int64_t)(int32_t)(uint32_t)v : (int64_t)v;
}

/*
 * Build the items of a batch: retried quarantine rows first, then the log records.
 * Loads what the batch needs from PostgreSQL (quarantine state, heads, retried rows).
 * Decoded records live in z.
 */
static int gather(proj *p, msgpack_zone *z, msgpack_zone *z2, rd_kafka_message_t *const *msgs,
		  size_t n, char *err, size_t errsz)
{
	pp_clear(&p->pl);
	PQclear(p->retry_res);
	p->retry_res = NULL;
	if (p->n > CACHE_MAX)
		cache_clear(p);
	int rc = -1;
	idlist ids = {0}, rids = {0};
	decoded *dec = calloc(n + 1, sizeof(*dec));
	/* orders with waiting quarantine rows: their heads are always read afresh */
	PGresult *q = PQexec(p->conn, "select order_id, bool_or(status = 'retry') from "
				      "booking_proj.quarantine where status in ('held', 'retry') "
				      "group by order_id");
	if (!q || PQresultStatus(q) != PGRES_TUPLES_OK) {
		pgu_format_error(p->conn, q, "read quarantine", err, errsz);
		goto out;
	}
	if (!dec)
		goto oom;
	int nq = PQntuples(q);
	for (int i = 0; i < nq; i++) {
		cache_evict(p, PQgetvalue(q, i, 0));
		if (PQgetvalue(q, i, 1)[0] == 't' &&
		    (!id_push(&rids, PQgetvalue(q, i, 0)) || !id_push(&ids, PQgetvalue(q, i, 0))))
			goto oom;
	}
	if (decode_all(p, msgs, n, dec, z, z2) < 0)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		const rd_kafka_message_t *m = msgs[i];
		const decoded *d = &dec[i];
		if (topic_idx(p, rd_kafka_topic_name(m->rkt)) != 0 ||
		    (p->ver && p->ver[i] == PV_SEAL))
			continue;
		if (d->ok && d->r.n) {
			for (uint32_t k = 0; k < d->r.n; k++)
				if (!id_push(&ids, d->r.events[k].order_id))
					goto oom;
		} else if (!id_push(&ids, d->key)) {
			goto oom;
		}
	}
	if (load_missing(p, &ids, err, errsz) < 0)
		goto out;
	for (size_t i = 0; i < ids.n; i++) {
		oentry *o = cache_find(p, ids.v[i]);
		if (o)
			o->po.held = o->po.retry = false;
	}
	for (int i = 0; i < nq; i++) {
		oentry *o = cache_find(p, PQgetvalue(q, i, 0));
		if (o) {
			o->po.held = true;
			o->po.retry = PQgetvalue(q, i, 1)[0] == 't';
		}
	}
	/* retried rows, in seq order per order (binary results) */
	if (rids.n) {
		char *arr = pdb_array(rids.v, rids.n);
		const char *pv[1] = {arr};
		PGresult *r =
		    arr ? PQexecParams(p->conn,
				       "select id, order_id, topic, partition, record_offset, "
				       "event from booking_proj.quarantine where order_id = "
				       "any($1::text[]) and status in ('held', 'retry') "
				       "order by order_id, seq nulls last, id",
				       1, NULL, pv, NULL, NULL, 1)
			: NULL;
		free(arr);
		if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
			pgu_format_error(p->conn, r, "read retried quarantine rows", err, errsz);
			PQclear(r);
			goto out;
		}
		p->retry_res = r;
		for (int i = 0; i < PQntuples(r); i++) {
			const char *oid = PQgetvalue(r, i, 1);
			const char *raw = PQgetvalue(r, i, 5);
			size_t raw_n = (size_t)PQgetlength(r, i, 5);
			bk_record rec;
			char why[200];
			bool ok =
			    bk_codec_record_decode(raw, raw_n, z, &rec, why, sizeof(why)) == 0;
			size_t before = p->pl.n;
			if (add_record(p, ok ? &rec : NULL, PP_SEALED, NULL, why, raw, raw_n, oid,
				       topic_idx(p, PQgetvalue(r, i, 2)),
				       (int32_t)be_int(PQgetvalue(r, i, 3), 4),
				       be_int(PQgetvalue(r, i, 4), 8),
				       be_int(PQgetvalue(r, i, 0), 8)) < 0)
				goto oom;
			for (size_t k = before; k < p->pl.n; k++) {
				p->pl.items[k].o = order_of(p, oid); /* the row's order */
				p->st.retried++;
			}
		}
	}
	/* the log records */
	for (size_t i = 0; i < n; i++) {
		const rd_kafka_message_t *m = msgs[i];
		if (topic_idx(p, rd_kafka_topic_name(m->rkt)) != 0)
			continue;
		decoded *d = &dec[i];
		const uint8_t v = p->ver ? p->ver[i] : PV_SEALED;
		if (v == PV_SEAL)
			continue;
		pp_seal seal = v == PV_BAD_SEAL					    ? PP_BAD_SEAL
			       : v == PV_UNSEALED || (v == PV_CHECK && d->unsealed) ? PP_UNSEALED
										    : PP_SEALED;
		if (add_record(p, d->ok ? &d->r : NULL, seal, d->bad, d->why,
			       m->payload ? m->payload : "", m->len, d->key, 0, m->partition,
			       m->offset, 0) < 0)
			goto oom;
		p->st.records++;
	}
	rc = 0;
	goto out;
oom:
	snprintf(err, errsz, "out of memory");
out:
	free(ids.v);
	free(rids.v);
	free(dec);
	PQclear(q);
	return rc;
}

/* --- writing ------------------------------------------------------------------------- */

static int sql(proj *p, const char *s, char *err, size_t errsz)
{
	return pgu_exec(p->conn, s, NULL, err, errsz);
}

static int bpart_cmp(const void *a, const void *b)
{
	const bpart *x = a, *y = b;
	if (x->topic != y->topic)
		return x->topic < y->topic ? -1 : 1;
	return x->part < y->part ? -1 : x->part > y->part;
}

/*
 * p->bparts: every (topic, partition) of the batch with its last offset, sorted. Records
 * of a partition come in offset order, so the last one is the highest. One pass over the
 * batch and a sort (the batch may hold 100,000 records over hundreds of partitions).
 */
static int batch_parts(proj *p, rd_kafka_message_t *const *msgs, size_t n)
{
	p->nbparts = 0;
	const rd_kafka_topic_t *rkt = NULL;
	int t = 0;
	bpart *prev = NULL;
	for (size_t i = 0; i < n; i++) {
		const rd_kafka_message_t *m = msgs[i];
		if (m->rkt != rkt) {
			rkt = m->rkt;
			t = topic_idx(p, rd_kafka_topic_name(rkt));
			prev = NULL;
		}
		if (prev && prev->part == m->partition && prev->topic == t) {
			if (m->offset > prev->last)
				prev->last = m->offset;
			continue;
		}
		if (p->nbparts == p->capbparts) {
			size_t cap = p->capbparts ? p->capbparts * 2 : 256;
			bpart *v = realloc(p->bparts, cap * sizeof(*v));
			if (!v)
				return -1;
			p->bparts = v;
			p->capbparts = cap;
		}
		prev = &p->bparts[p->nbparts++];
		*prev = (bpart){t, m->partition, m->offset};
	}
	if (p->nbparts > 1) /* qsort wants a non-NULL array even for 0 elements */
		qsort(p->bparts, p->nbparts, sizeof(*p->bparts), bpart_cmp);
	size_t k = 0; /* merge the runs of one partition */
	for (size_t i = 0; i < p->nbparts; i++) {
		if (k && p->bparts[k - 1].topic == p->bparts[i].topic &&
		    p->bparts[k - 1].part == p->bparts[i].part) {
			if (p->bparts[i].last > p->bparts[k - 1].last)
				p->bparts[k - 1].last = p->bparts[i].last;
			continue;
		}
		p->bparts[k++] = p->bparts[i];
	}
	p->nbparts = k;
	return 0;
}

/* The batch's partitions of topic t: parts[] and, when next is given, last offset + 1. */
static size_t topic_parts(const proj *p, int t, int32_t *parts, int64_t *next)
{
	size_t np = 0;
	for (size_t i = 0; i < p->nbparts; i++)
		if (p->bparts[i].topic == t) {
			parts[np] = p->bparts[i].part;
			if (next)
				next[np] = p->bparts[i].last + 1;
			np++;
		}
	return np;
}

/* One allocation for a partition list and its offsets: the int64_t array first, so both
 * are aligned. Free the returned offsets pointer. */
static int64_t *parts_alloc(const proj *p, int32_t **ret_parts)
{
	int64_t *off = malloc((p->nbparts + 1) * (sizeof(int64_t) + sizeof(int32_t)));
	*ret_parts = off ? (int32_t *)(void *)(off + p->nbparts + 1) : NULL;
	return off;
}

/* Lock and check the checkpoints of the batch's partitions, then the model generation (a
 * rebuild swap waits for our locks, or we for its: read after them, it is the model we
 * write into). 1 when fenced; p->replaced when by a new generation. */
static int fence(proj *p, char *err, size_t errsz)
{
	int32_t *parts;
	int64_t *got = parts_alloc(p, &parts);
	if (!got) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	int rc = 0;
	for (int t = 0; t < 2 && rc == 0; t++) {
		size_t np = topic_parts(p, t, parts, NULL);
		if (!np)
			continue;
		for (size_t k = 0; k < np; k++)
			got[k] = -1;
		if (pdb_checkpoints(p->conn, topic_name(p, t), parts, np, true, got, err, errsz) <
		    0) {
			rc = -1;
			break;
		}
		for (size_t k = 0; k < np; k++) {
			expect *e = exp_find(p, t, parts[k], true);
			if (e && e->next != got[k]) {
				bk_logf(BK_LOG_WARN, "checkpoint moved under this instance",
					"topic=%s partition=%d expected=%lld found=%lld",
					topic_name(p, t), parts[k], (long long)e->next,
					(long long)got[k]);
				e->next = got[k];
				rc = 1;
			}
		}
	}
	free(got);
	int64_t gen = 0;
	if (rc >= 0 && pdb_model_generation(p->conn, &p->model_table, &gen, err, errsz) < 0)
		rc = -1;
	else if (rc >= 0 && gen != p->model_gen) {
		model_replaced(p, gen, "fence");
		p->model_gen = gen;
		p->replaced = true;
		rc = 1;
	}
	return rc;
}

static int bookkeeping(proj *p, rd_kafka_message_t *const *msgs, size_t n, char *err, size_t errsz)
{
	for (size_t i = 0; i < p->pl.n; i++) {
		const pp_item *it = &p->pl.items[i];
		if (it->qid && (i == 0 || p->pl.items[i - 1].qid != it->qid)) {
			/* a retried row: held while any of its events waits, else applied */
			bool bad = false, fork = false;
			const char *why = NULL;
			for (size_t k = i; k < p->pl.n && p->pl.items[k].qid == it->qid; k++) {
				uint8_t a = p->pl.items[k].action;
				bad |= a == PP_QUAR || a == PP_HELD;
				fork |= a == PP_FORK;
				if (a == PP_QUAR && !why)
					why = p->pl.items[k].reason;
			}
			const char *status = bad ? "held" : fork ? "skipped" : "applied";
			char qs[24];
			snprintf(qs, sizeof(qs), "%lld", (long long)it->qid);
			const char *v[4] = {qs, status, why, !bad && fork ? "t" : "f"};
			if (pgu_exec_params(
				p->conn,
				"update booking_proj.quarantine set status = $2, reason = "
				"coalesce($3, reason), hash = case when $4::boolean then "
				"null else hash end, updated_at = now() where id = $1::bigint",
				4, v, "update quarantine", err, errsz) < 0)
				return -1;
			if (bad)
				p->st.held++;
		}
		if (it->qid)
			continue;
		if (pdb_report_item(p->conn, &pdb_live, topic_name(p, it->topic), it, &p->sb, err,
				    errsz) < 0)
			return -1;
		switch ((pp_action)it->action) {
		case PP_FORK:
			p->st.forks++;
			break;
		case PP_REJECT:
			p->st.rejected++;
			break;
		case PP_QUAR:
			p->st.quarantined++;
			break;
		case PP_HELD:
			p->st.held++;
			break;
		case PP_APPLY:
		case PP_DUP:
			break;
		}
	}
	/* rules: the profile's record replaces all its rules (a tombstone deletes them) */
	for (size_t i = 0; i < n; i++) {
		const rd_kafka_message_t *m = msgs[i];
		if (topic_idx(p, rd_kafka_topic_name(m->rkt)) != 1)
			continue;
		if (p->ver && p->ver[i] != PV_SEALED)
			continue; /* an unsigned rules record: reported by the daemon */
		int rc =
		    pdb_rules_record(p->conn, &pdb_live, topic_name(p, 1), m->partition, m->offset,
				     m->key, m->key_len, m->payload, m->len, err, errsz);
		if (rc < 0)
			return -1;
		if (rc == 0)
			p->st.rules++;
	}
	/* checkpoints: the offset after the last record of each partition, one statement per
	 * topic */
	int32_t *parts;
	int64_t *next = parts_alloc(p, &parts);
	if (!next)
		goto oom;
	for (int t = 0; t < 2; t++) {
		size_t np = topic_parts(p, t, parts, next);
		if (np && pdb_checkpoints_set(p->conn, &pdb_live, topic_name(p, t), parts, next, np,
					      err, errsz) < 0) {
			free(next);
			return -1;
		}
	}
	free(next);
	return 0;
oom:
	snprintf(err, errsz, "out of memory");
	return -1;
}

/* After a commit: the new checkpoints are what this instance expects next. */
static void advance_expected(proj *p)
{
	for (size_t i = 0; i < p->nbparts; i++) {
		expect *e = exp_find(p, p->bparts[i].topic, p->bparts[i].part, true);
		if (e && p->bparts[i].last + 1 > e->next)
			e->next = p->bparts[i].last + 1;
	}
}

/*
 * Slow path, inside the open transaction: each order's applied events in a savepoint;
 * an order PostgreSQL refuses is retried event by event, and the event it refuses is
 * quarantined (the ones before it stay applied, the ones after it are held).
 * Returns 0, or -1 on a failure that is not the data's.
 */
static int slow_path(proj *p, char *err, size_t errsz)
{
	p->st.slow_paths++;
	bool *done = calloc(p->pl.n + 1, sizeof(bool));
	if (!done) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; i < p->pl.n && rc == 0; i++) {
		if (done[i] || p->pl.items[i].action != PP_APPLY)
			continue;
		pp_order *o = p->pl.items[i].o;
		/* the order as a whole */
		pr_store_reset(p->store);
		pa_order f = o->c.f;
		char why[PP_REASON_MAX];
		for (size_t k = i; k < p->pl.n; k++)
			if (p->pl.items[k].o == o && p->pl.items[k].action == PP_APPLY) {
				done[k] = true;
				if (pa_apply(p->store, p->pl.items[k].e, &f, why, sizeof(why)) <
				    0) {
					snprintf(err, errsz, "internal: replan differs: %s", why);
					rc = -1;
					break;
				}
			}
		if (rc < 0)
			break;
		bool poison = false;
		if ((rc = sql(p, "savepoint o", err, errsz)) < 0 ||
		    (rc = pdb_clear_stage(p->conn, err, errsz)) < 0)
			break;
		if (pdb_write(p->conn, &pdb_live, p->store, p->cfg.path, &poison, why,
			      sizeof(why)) == 0) {
			rc = sql(p, "release savepoint o", err, errsz);
			continue;
		}
		if (!poison) {
			snprintf(err, errsz, "%s", why);
			rc = -1;
			break;
		}
		if ((rc = sql(p, "rollback to savepoint o", err, errsz)) < 0)
			break;
		/* record by record (a command's events land together) */
		f = o->c.f;
		bool stopped = false;
		for (size_t k = i; k < p->pl.n && rc == 0; k++) {
			pp_item *it = &p->pl.items[k];
			if (it->o != o || it->action != PP_APPLY)
				continue;
			if (stopped) {
				it->action = PP_HELD;
				snprintf(it->reason, sizeof(it->reason), "%s", pp_held_reason);
				continue;
			}
			/* the items of it's record: same source */
			size_t end = k + 1;
			while (end < p->pl.n && p->pl.items[end].o == o &&
			       p->pl.items[end].action == PP_APPLY &&
			       p->pl.items[end].qid == it->qid &&
			       p->pl.items[end].part == it->part &&
			       p->pl.items[end].offset == it->offset)
				end++;
			pr_store_reset(p->store);
			pa_order g = f;
			size_t bad = end;
			for (size_t j = k; j < end && bad == end; j++)
				if (pa_apply(p->store, p->pl.items[j].e, &g, why, sizeof(why)) < 0)
					bad = j;
			if (bad == end) {
				if ((rc = sql(p, "savepoint e", err, errsz)) < 0 ||
				    (rc = pdb_clear_stage(p->conn, err, errsz)) < 0)
					break;
				if (pdb_write(p->conn, &pdb_live, p->store, p->cfg.path, &poison,
					      why, sizeof(why)) == 0) {
					rc = sql(p, "release savepoint e", err, errsz);
					f = g;
					k = end - 1;
					continue;
				}
				if (!poison) {
					snprintf(err, errsz, "%s", why);
					rc = -1;
					break;
				}
				rc = sql(p, "rollback to savepoint e", err, errsz);
				bad = k;
			}
			pp_quarantine(&p->pl, bad, why);
			for (size_t j = k; j < end; j++)
				if (j != bad) {
					p->pl.items[j].action = PP_HELD;
					snprintf(
					    p->pl.items[j].reason, sizeof(p->pl.items[j].reason),
					    "held: another event of its record is quarantined");
				}
			stopped = true;
			k = end - 1;
		}
	}
	free(done);
	return rc;
}

/* One try at the batch. 1 fenced, 0 committed, -1 PostgreSQL failed (retry). */
static int attempt(proj *p, rd_kafka_message_t *const *msgs, size_t n, char *err, size_t errsz)
{
	msgpack_zone z, z2;
	if (!msgpack_zone_init(&z, (size_t)64 * 1024)) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	if (!msgpack_zone_init(&z2, (size_t)64 * 1024)) {
		msgpack_zone_destroy(&z);
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	int rc = batch_parts(p, msgs, n);
	if (rc < 0)
		snprintf(err, errsz, "out of memory");
	else
		rc = gather(p, &z, &z2, msgs, n, err, errsz);
	if (rc == 0)
		rc = plan(p, err, errsz);
	if (rc < 0)
		goto out;
	if ((rc = sql(p, "begin", err, errsz)) < 0)
		goto out;
	if ((rc = fence(p, err, errsz)) != 0) {
		pgu_rollback(p->conn);
		goto out;
	}
	bool poison = false, slow = false;
	char why[1024];
	if (pdb_write(p->conn, &pdb_live, p->store, p->cfg.path, &poison, why, sizeof(why)) < 0) {
		if (!poison) {
			snprintf(err, errsz, "%s", why);
			pgu_rollback(p->conn);
			rc = -1;
			goto out;
		}
		bk_logf(BK_LOG_WARN, "batch refused by postgresql, isolating the poisoned order",
			"err=\"%s\"", why);
		pgu_rollback(p->conn);
		slow = true;
		if ((rc = sql(p, "begin", err, errsz)) < 0)
			goto out;
		if ((rc = fence(p, err, errsz)) != 0 || (rc = slow_path(p, err, errsz)) < 0) {
			pgu_rollback(p->conn);
			goto out;
		}
	}
	if ((rc = bookkeeping(p, msgs, n, err, errsz)) < 0) {
		pgu_rollback(p->conn);
		goto out;
	}
	if ((rc = pgu_commit(p->conn, err, errsz)) < 0)
		goto out;
	/* committed: the plan is what PostgreSQL holds now */
	for (size_t i = 0; i < p->pl.n; i++) {
		const pp_item *it = &p->pl.items[i];
		if (it->action == PP_APPLY)
			p->st.applied++;
		else if (it->action == PP_DUP)
			p->st.duplicates++;
		if (it->e)
			p->st.events++;
	}
	if (slow) {
		cache_clear(p);
	} else {
		pp_commit(&p->pl);
		for (size_t i = 0; i < p->pl.n; i++)
			if (p->pl.items[i].o)
				OENTRY(p->pl.items[i].o)->rc = OENTRY(p->pl.items[i].o)->rb;
	}
	advance_expected(p);
	p->st.batches++;
	p->backoff_ms = BACKOFF_MIN;
out:
	pp_clear(&p->pl);
	PQclear(p->retry_res);
	p->retry_res = NULL;
	msgpack_zone_destroy(&z);
	msgpack_zone_destroy(&z2);
	return rc;
}

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

proj_rc proj_batch(proj *p, rd_kafka_message_t *const *msgs, const uint8_t *verdicts,
		   const uint8_t (*digests)[BK_HASH_LEN], size_t n)
{
	p->ver = verdicts;
	p->dig = digests;
	uint64_t t0 = mono_us();
	for (;;) {
		if (proj_connect(p) < 0)
			return PROJ_STOPPED;
		char err[1024];
		int rc = attempt(p, msgs, n, err, sizeof(err));
		if (rc == 0) {
			if (n)
				p->st.busy_us += mono_us() - t0;
			return PROJ_OK;
		}
		if (rc == 1) {
			cache_clear(p);
			if (p->replaced) { /* like pg_failed, without the backoff or the error */
				p->replaced = false;
				PQfinish(p->conn);
				p->conn = NULL;
			}
			return PROJ_FENCED;
		}
		pg_failed(p, "batch", err);
		if (*p->cfg.stop)
			return PROJ_STOPPED;
	}
}

int64_t proj_generation(const proj *p)
{
	return p->model_known ? p->model_gen : -1;
}
