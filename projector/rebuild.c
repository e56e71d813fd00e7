/*
 * rebuild.c - a fresh read model from offset 0, swapped in atomically (SPEC §5).
 *
 * Shadow schemas booking_rb, ord_rb, booking_proj_rb are made by running the migration
 * files with the schema names rewritten. The load keeps every mutable row in memory (one
 * image per key, as the projector's batch store) and streams the append-only timeline
 * with COPY into tables stripped of keys and indexes; those are rebuilt after the load.
 * Events are judged by the shared reader rule and mapped by pa_apply, the projector's own
 * mapping. Tails are then written with SQL into the shadow schemas, and the last one, the
 * renames and the new checkpoints commit in one transaction that holds the projector out.
 *
 * Threads: during the load one writer thread (tl_writer) owns the timeline connection
 * r->tc and sends the COPY data the main thread queues in r->tq (mutex + two condition
 * variables; a buffer belongs to the writer from when it is queued until it is sent). Every
 * other field of rb, and r->tc before tl_start and after tl_finish, belong to the main
 * thread alone.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "bk_codec.h"
#include "bk_seal.h"
#include "log.h"
#include "logread.h"
#include "migrate.h"
#include "pgutil.h"
#include "proj_apply.h"
#include "proj_db.h"
#include "proj_plan.h"
#include "proj_rows.h"
#include "rebuild.h"
#include "trust.h"

#define NSCHEMA	       3
#define SFX	       "_rb"
#define DEFAULT_BATCH  20000
#define COPY_FLUSH     ((size_t)1024 * 1024)
#define REASON_MAX     400
#define REBUILD_LOCK   "7091882337699520885" /* migrate's key + 1 */
#define SWAP_TRIES     100
#define SWAP_LOCK_WAIT "500ms" /* under deadlock_timeout: a reader never deadlocks with us */

static const char *const schemas[NSCHEMA] = {"booking", "ord", "booking_proj"};

static const char *const rc_msgs[RB__COUNT] = {
#define RB_RC_MSG(sym, msg) [RB_##sym] = msg,
    RB_RC_MAP(RB_RC_MSG)
#undef RB_RC_MSG
};

const char *rb_rc_msg(rb_rc rc)
{
	return rc < RB__COUNT ? rc_msgs[rc] : "unknown";
}

static const char *const phase_names[] = {
    [RB_PH_PREPARE] = "prepare", [RB_PH_LOAD] = "load",	  [RB_PH_CATCHUP] = "catchup",
    [RB_PH_WRITE] = "write",	 [RB_PH_INDEX] = "index", [RB_PH_SWAP] = "swap",
    [RB_PH_DONE] = "done",
};

const char *rb_phase_name(rb_phase ph)
{
	return ph <= RB_PH_DONE ? phase_names[ph] : "?";
}

/* --- growable text ------------------------------------------------------------------ */

typedef struct buf {
	char *p;
	size_t n, cap;
} buf;

static bool b_add(buf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return false;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
	return true;
}

static bool b_str(buf *b, const char *s)
{
	return b_add(b, s, strlen(s));
}

BK_PRINTF(2, 3) static bool b_printf(buf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < sizeof(tmp) && b_add(b, tmp, (size_t)n);
}

/* COPY text format of one value (NULL: \N). */
static bool b_copyval(buf *b, const char *v)
{
	if (!v)
		return b_add(b, "\\N", 2);
	const char *start = v;
	for (const char *p = v; *p; p++) {
		const char *esc;
		switch (*p) {
		case '\\':
			esc = "\\\\";
			break;
		case '\t':
			esc = "\\t";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		default:
			continue;
		}
		if (!b_add(b, start, (size_t)(p - start)) || !b_add(b, esc, 2))
			return false;
		start = p + 1;
	}
	return b_str(b, start);
}

/* A table name of pr_def ("booking.order") in the shadow schemas, quoted. */
static void shadow_table(const char *name, char *out, size_t outsz)
{
	const char *dot = strchr(name, '.');
	snprintf(out, outsz, "%.*s" SFX ".\"%s\"", (int)(dot - name), name, dot + 1);
}

/* --- orders ------------------------------------------------------------------------- */

typedef struct oentry {
	pp_order po; /* first: what planning sees (id, heads, quarantine flags) */
	uint8_t (*hashes)[BK_HASH_LEN]; /* hashes[seq - 1], for duplicates of older seqs */
	size_t nh, caph;
	pr_row **items; /* the order's line items in the memory store */
	uint32_t nitems, capitems;
	bool dirty; /* price snapshot to recompute */
} oentry;

#define OENTRY(o) ((oentry *)(void *)(o)) /* a pp_order is its entry's first member */

/* One record read from the log (Kafka or the replay file). */
typedef struct rec {
	int32_t part;
	int64_t off;
	char key[BK_ID_MAX];
	const void *val;
	size_t len;
	rd_kafka_message_t *m;	  /* owned (Kafka) */
	void *own;		  /* owned copy of the bytes (file) */
	uint8_t ver;		  /* RV_*: what the seal rule said (Kafka) */
	uint8_t dig[BK_HASH_LEN]; /* RV_CHECK: the digest its seal lists */
	bool bad_seal;		  /* a seal record that did not check: rejected as garbage */
	uint64_t hid;		  /* its seal-buffer handle: increasing along r->recs */
} rec;

/* The seal rule's word on a record read from Kafka or from a replay file. */
enum {
	RV_SEALED,
	RV_PENDING,
	RV_UNSEALED,
	RV_CHECK, /* a seal lists it with dig: sealed if that is its digest (gather decodes) */
};

typedef struct ddl {
	char **v;
	size_t n, cap;
} ddl;

/*
 * The timeline COPY queue: full buffers q[head .. head + nfull) wait for the writer, which
 * sends q[head] with the lock released and only then pops it; the main thread swaps its
 * filled buffer with the free slot q[(head + nfull) % TLQ_N]. The buffers' memory is
 * freed by tl_stop.
 */
#define TLQ_N 8
typedef struct tlq {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t can_put, can_get;
	buf q[TLQ_N];
	size_t head, nfull;
	bool running, closing, failed;
	PGconn *c;
	char err[512];
} tlq;

typedef struct rb {
	const rb_cfg *cfg;
	rb_rc rc;
	char *err;
	size_t errsz;
	PGconn *c;  /* DDL, bookkeeping, tails, swap */
	PGconn *tc; /* the timeline stream of the load */
	buf tl;	    /* timeline COPY data not queued yet */
	tlq tq;	    /* the writer thread sending the timeline (load) */
	bool in_memory;
	bool staged; /* temp staging tables made */
	rd_kafka_t *rk;
	const char *ev_topic, *ru_topic;
	int nparts, nrparts;
	int64_t *next, *rnext; /* checkpoints of the new model (-1: none) */
	oentry **slots;
	size_t nslots, norders;
	pr_store *cs, *ps;
	rec *recs;
	size_t nrecs, caprecs;
	bk_trust *trust; /* the events partitions' seal buffers (Kafka) */
	uint64_t next_hid;
	int64_t bad_seals;
	pp_plan pl;	/* the chunk's items */
	bool pdb_ready; /* r->c set up for the shared writer (pdb_setup) */
	msgpack_sbuffer sb;
	ddl drop, mk_keys, mk_idx, mk_fks;
	rb_stats st;
	rb_progress pr;
	struct timespec t0, last_cb;
	double last_step;
	char suffix_old[40];
} rb;

BK_PRINTF(3, 4) static int fail(rb *r, rb_rc rc, const char *fmt, ...)
{
	if (r->rc == RB_OK) {
		r->rc = rc;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(r->err, r->errsz, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static double since(const struct timespec *t)
{
	struct timespec n;
	clock_gettime(CLOCK_MONOTONIC, &n);
	return (double)(n.tv_sec - t->tv_sec) + (double)(n.tv_nsec - t->tv_nsec) / 1e9;
}

static void progress(rb *r, bool force)
{
	if (!r->cfg->progress)
		return;
	if (!force && since(&r->last_cb) < 0.2)
		return;
	clock_gettime(CLOCK_MONOTONIC, &r->last_cb);
	r->pr.seconds = since(&r->t0);
	r->pr.events = r->st.events;
	r->cfg->progress(r->cfg->progress_opaque, &r->pr);
}

static void set_phase(rb *r, rb_phase ph, int64_t total)
{
	r->pr.phase = ph;
	r->pr.done = 0;
	r->pr.total = total;
	progress(r, true);
	bk_logf(BK_LOG_INFO, "rebuild phase", "phase=%s total=%lld events=%lld seconds=%.1f",
		rb_phase_name(ph), (long long)total, (long long)r->st.events, since(&r->t0));
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return h;
}

static size_t slot_of(const rb *r, const char *id)
{
	size_t mask = r->nslots - 1, i = (size_t)hash_str(id) & mask;
	while (r->slots[i] && strcmp(r->slots[i]->po.id, id) != 0)
		i = (i + 1) & mask;
	return i;
}

static oentry *order_get(rb *r, const char *id)
{
	if (r->nslots) {
		oentry *o = r->slots[slot_of(r, id)];
		if (o)
			return o;
	}
	if ((r->norders + 1) * 2 > r->nslots) {
		size_t ns = r->nslots ? r->nslots * 2 : 65536;
		oentry **slots = calloc(ns, sizeof(*slots)), **old = r->slots;
		if (!slots)
			return NULL;
		size_t oldn = r->nslots;
		r->slots = slots;
		r->nslots = ns;
		for (size_t i = 0; i < oldn; i++)
			if (old[i])
				r->slots[slot_of(r, old[i]->po.id)] = old[i];
		free(old);
	}
	oentry *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	snprintf(o->po.id, sizeof(o->po.id), "%s", id);
	o->po.c.f.status = -1;
	o->po.b = o->po.c;
	r->slots[slot_of(r, id)] = o;
	r->norders++;
	return o;
}

static oentry *order_find(const rb *r, const char *id)
{
	return r->nslots ? r->slots[slot_of(r, id)] : NULL;
}

static void orders_free(rb *r)
{
	for (size_t i = 0; i < r->nslots; i++)
		if (r->slots[i]) {
			free(r->slots[i]->hashes);
			free(r->slots[i]->items);
			free(r->slots[i]);
		}
	free(r->slots);
	r->slots = NULL;
	r->nslots = r->norders = 0;
}

/* --- SQL helpers ---------------------------------------------------------------------- */

static int sql(rb *r, const char *s, const char *what)
{
	char e[1024];
	if (pgu_exec(r->c, s, what, e, sizeof(e)) < 0)
		return fail(r, RB_DEPENDENCY, "%s", e);
	return 0;
}

static int sqlp(rb *r, const char *s, int n, const char *const *v, const char *what)
{
	char e[1024];
	if (pgu_exec_params(r->c, s, n, v, what, e, sizeof(e)) < 0)
		return fail(r, RB_DEPENDENCY, "%s", e);
	return 0;
}

/* First column of the first row, or def when there is none. */
static int query1(rb *r, const char *s, int n, const char *const *v, char *out, size_t outsz,
		  const char *def)
{
	char e[1024];
	PGresult *res = pgu_query(r->c, s, n, v, NULL, e, sizeof(e));
	if (!res)
		return fail(r, RB_DEPENDENCY, "%s", e);
	snprintf(out, outsz, "%s",
		 PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : def);
	PQclear(res);
	return 0;
}

static bool ddl_push(ddl *d, const char *s)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 32;
		char **v = realloc(d->v, cap * sizeof(*v));
		if (!v)
			return false;
		d->v = v;
		d->cap = cap;
	}
	char *c = strdup(s);
	if (!c)
		return false;
	d->v[d->n++] = c;
	return true;
}

static void ddl_free(ddl *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i]);
	free(d->v);
	memset(d, 0, sizeof(*d));
}

static int ddl_run(rb *r, const ddl *d, const char *what)
{
	for (size_t i = 0; i < d->n; i++)
		if (sql(r, d->v[i], what) < 0)
			return -1;
	return 0;
}

/* Start COPY into table (columns of td); the data follows with put_copy. */
static int copy_start(rb *r, PGconn *c, const char *table, const pr_tabledef *td, bool staged)
{
	buf b = {0};
	bool ok = b_printf(&b, "copy %s (", table);
	for (int i = 0; ok && i < td->ncols; i++)
		ok = b_printf(&b, "%s%s", i ? ", " : "", td->cols[i].name);
	ok = ok && b_str(&b, staged ? ", _new) from stdin" : ") from stdin");
	if (!ok) {
		free(b.p);
		return fail(r, RB_DEPENDENCY, "out of memory");
	}
	PGresult *res = PQexec(c, b.p);
	free(b.p);
	if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
		char e[1024];
		pgu_format_error(c, res, "copy", e, sizeof(e));
		PQclear(res);
		return fail(r, RB_DEPENDENCY, "%s: %s", table, e);
	}
	PQclear(res);
	return 0;
}

static int copy_put(rb *r, PGconn *c, buf *b, bool force)
{
	if (b->n && (force || b->n >= COPY_FLUSH)) {
		if (PQputCopyData(c, b->p, (int)b->n) != 1) {
			char e[512];
			pgu_format_error(c, NULL, "copy data", e, sizeof(e));
			return fail(r, RB_DEPENDENCY, "%s", e);
		}
		b->n = 0;
	}
	return 0;
}

static int copy_end(rb *r, PGconn *c, buf *b, const char *table)
{
	if (copy_put(r, c, b, true) < 0)
		return -1;
	char e[1024];
	if (PQputCopyEnd(c, NULL) != 1) {
		pgu_format_error(c, NULL, "copy end", e, sizeof(e));
		return fail(r, RB_DEPENDENCY, "%s: %s", table, e);
	}
	int rc = 0;
	PGresult *res;
	while ((res = PQgetResult(c)) != NULL) {
		if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK) {
			pgu_format_error(c, res, "copy", e, sizeof(e));
			/* the data's fault (a CHECK, a bad value): not reproducible here */
			bool data = strncmp(pgu_sqlstate(res), "22", 2) == 0 ||
				    strncmp(pgu_sqlstate(res), "23", 2) == 0;
			rc = fail(r, data ? RB_DATA : RB_DEPENDENCY, "%s: %s", table, e);
		}
		PQclear(res);
	}
	return rc;
}

static bool row_text(buf *b, const pr_tabledef *td, const pr_row *row, int staged)
{
	bool ok = true;
	for (int k = 0; k < td->ncols && ok; k++)
		ok = (k == 0 || b_add(b, "\t", 1)) && b_copyval(b, row->v[k]);
	if (ok && staged)
		ok = b_str(b, row->is_new ? "\tt" : "\tf");
	return ok && b_add(b, "\n", 1);
}

/* COPY every live row of table t of store s into target (staged: with the _new flag). */
static int copy_table(rb *r, const pr_store *s, pr_table t, const char *target, bool staged)
{
	const pr_tabledef *td = pr_def(t);
	size_t n = pr_store_count(s, t);
	if (n == 0)
		return 0;
	if (copy_start(r, r->c, target, td, staged) < 0)
		return -1;
	buf b = {0};
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const pr_row *row = pr_store_row(s, t, i);
		if (row->dead)
			continue;
		if (!row_text(&b, td, row, staged))
			rc = fail(r, RB_DEPENDENCY, "out of memory");
		else
			rc = copy_put(r, r->c, &b, false);
	}
	if (rc < 0) {
		PQputCopyEnd(r->c, "rebuild: failed");
		PGresult *res;
		while ((res = PQgetResult(r->c)) != NULL)
			PQclear(res);
	} else {
		rc = copy_end(r, r->c, &b, target);
	}
	free(b.p);
	return rc;
}

/* --- the timeline writer thread ---------------------------------------------------------- */

/* The writer: sends the queued buffers on q->c until closed and drained (or a failure). */
static void *tl_writer(void *opaque)
{
	tlq *q = opaque;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (q->nfull == 0 && !q->closing)
			pthread_cond_wait(&q->can_get, &q->mu);
		if (q->nfull == 0)
			break;
		buf *b = &q->q[q->head];
		pthread_mutex_unlock(&q->mu);
		bool ok = PQputCopyData(q->c, b->p, (int)b->n) == 1;
		pthread_mutex_lock(&q->mu);
		if (!ok) {
			pgu_format_error(q->c, NULL, "timeline copy data", q->err, sizeof(q->err));
			q->failed = true;
			pthread_cond_signal(&q->can_put);
			break;
		}
		b->n = 0;
		q->head = (q->head + 1) % TLQ_N;
		q->nfull--;
		pthread_cond_signal(&q->can_put);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* Hand r->tc (in COPY IN) to a writer thread; r->tc is the writer's until tl_finish. */
static int tl_start(rb *r)
{
	tlq *q = &r->tq;
	q->c = r->tc;
	if (pthread_mutex_init(&q->mu, NULL) != 0)
		return fail(r, RB_DEPENDENCY, "timeline writer: mutex");
	if (pthread_cond_init(&q->can_put, NULL) != 0) {
		pthread_mutex_destroy(&q->mu);
		return fail(r, RB_DEPENDENCY, "timeline writer: condition variable");
	}
	if (pthread_cond_init(&q->can_get, NULL) != 0) {
		pthread_cond_destroy(&q->can_put);
		pthread_mutex_destroy(&q->mu);
		return fail(r, RB_DEPENDENCY, "timeline writer: condition variable");
	}
	int e = pthread_create(&q->th, NULL, tl_writer, q);
	if (e != 0) {
		pthread_cond_destroy(&q->can_get);
		pthread_cond_destroy(&q->can_put);
		pthread_mutex_destroy(&q->mu);
		return fail(r, RB_DEPENDENCY, "timeline writer: %s", strerror(e));
	}
	q->running = true;
	return 0;
}

/* Queue r->tl for the writer when it is full enough (force: whatever it holds). Blocks
 * while TLQ_N buffers wait. */
static int tl_put(rb *r, bool force)
{
	tlq *q = &r->tq;
	if (r->tl.n == 0 || (!force && r->tl.n < COPY_FLUSH))
		return 0;
	pthread_mutex_lock(&q->mu);
	while (q->nfull == TLQ_N && !q->failed)
		pthread_cond_wait(&q->can_put, &q->mu);
	if (q->failed) {
		pthread_mutex_unlock(&q->mu);
		return fail(r, RB_DEPENDENCY, "%s", q->err);
	}
	buf *slot = &q->q[(q->head + q->nfull) % TLQ_N];
	buf full = r->tl;
	r->tl = *slot;
	r->tl.n = 0;
	*slot = full;
	q->nfull++;
	pthread_cond_signal(&q->can_get);
	pthread_mutex_unlock(&q->mu);
	return 0;
}

/* Stop the writer (after it sent what is queued, or failed) and free the queue; r->tc is
 * the main thread's again. Safe to call when no writer runs. */
static void tl_stop(rb *r)
{
	tlq *q = &r->tq;
	if (q->running) {
		pthread_mutex_lock(&q->mu);
		q->closing = true;
		pthread_cond_signal(&q->can_get);
		pthread_mutex_unlock(&q->mu);
		pthread_join(q->th, NULL);
		pthread_cond_destroy(&q->can_get);
		pthread_cond_destroy(&q->can_put);
		pthread_mutex_destroy(&q->mu);
		q->running = false;
	}
	for (int i = 0; i < TLQ_N; i++) {
		free(q->q[i].p);
		q->q[i] = (buf){0};
	}
}

/* The rest of the timeline to the writer, the writer stopped, the COPY ended. */
static int tl_finish(rb *r)
{
	int rc = tl_put(r, true);
	tl_stop(r);
	if (rc == 0 && r->tq.failed)
		rc = fail(r, RB_DEPENDENCY, "%s", r->tq.err);
	if (rc < 0)
		return -1;
	return copy_end(r, r->tc, &r->tl, "ord_rb.timeline_event");
}

/* --- preparing the shadow schemas ------------------------------------------------------ */

static int drop_shadow(rb *r)
{
	return sql(r,
		   "set client_min_messages = warning; drop schema if exists booking" SFX
		   ", ord" SFX ", booking_proj" SFX " cascade",
		   "drop the shadow schemas");
}

/* One applied migration (lib/migrate checked its file) into the shadow schemas. */
static int shadow_migration(void *opaque, const char *path, const char *text)
{
	rb *r = opaque;
	char e[1024];
	char *mapped = pdb_map_names(text, SFX);
	int rc = !mapped ? fail(r, RB_DEPENDENCY, "out of memory")
		 : pgu_exec(r->c, mapped, path, e, sizeof(e)) < 0
		     ? fail(r, RB_DEPENDENCY, "shadow schema from %s: %s", path, e)
		     : 0;
	free(mapped);
	return rc;
}

/*
 * The shadow schemas: every migration the live database recorded, from its file with
 * the schema names rewritten; the migration bookkeeping copied; then the keys, foreign
 * keys and indexes of the read-model tables saved and dropped for the load.
 */
static int prepare(rb *r)
{
	char v[64];
	if (query1(r, "select to_regclass('booking_proj.schema_migrations') is not null", 0, NULL,
		   v, sizeof(v), "f") < 0)
		return -1;
	if (strcmp(v, "t") != 0)
		return fail(r, RB_USAGE,
			    "the database has no booking_proj.schema_migrations: run bookingctl "
			    "migrate first");
	if (query1(r, "select pg_try_advisory_lock(" REBUILD_LOCK ")", 0, NULL, v, sizeof(v), "f") <
	    0)
		return -1;
	if (strcmp(v, "t") != 0)
		return fail(r, RB_BUSY, "another bookingctl rebuild is running on this database");
	if (drop_shadow(r) < 0)
		return -1;
	char e[1024];
	int rc = sql(r, "begin; set local client_min_messages = warning", "begin");
	if (rc == 0) {
		migrate_rc mrc = migrate_applied(r->c, r->cfg->migrations_dir, NULL,
						 shadow_migration, r, e, sizeof(e));
		if (mrc == MIGRATE_DB)
			rc = fail(r, RB_DEPENDENCY, "%s", e);
		else if (mrc != MIGRATE_OK && mrc != MIGRATE_FAILED)
			rc = fail(r, RB_USAGE, "%s", e);
		else if (mrc == MIGRATE_FAILED)
			rc = -1; /* shadow_migration said why */
	}
	if (rc == 0)
		rc = sql(r,
			 "create table booking_proj" SFX ".schema_migrations (like "
			 "booking_proj.schema_migrations including all);"
			 "insert into booking_proj" SFX ".schema_migrations select * from "
			 "booking_proj.schema_migrations;"
			 "create table booking_proj" SFX ".model (generation bigint not null, "
			 "rebuilt_at timestamptz not null default now(), source text not null)",
			 "copy the migration bookkeeping");
	if (rc == 0)
		rc = sql(r, "commit", "commit the shadow schemas");
	if (rc < 0) {
		pgu_rollback(r->c);
		return -1;
	}
	/* keys, foreign keys and indexes of the read-model tables (autoaccept_rule keeps its
	 * key: rules are upserted) */
	static const char cons_sql[] =
	    "select format('alter table %s drop constraint %I', conrelid::regclass, conname), "
	    "format('alter table %s add constraint %I %s', conrelid::regclass, conname, "
	    "pg_get_constraintdef(oid)), contype from pg_constraint where connamespace in "
	    "('booking" SFX "'::regnamespace, 'ord" SFX "'::regnamespace) and contype in "
	    "('p', 'u', 'f') and conrelid <> 'booking" SFX ".autoaccept_rule'::regclass "
	    "order by contype = 'f' desc, conname";
	static const char idx_sql[] =
	    "select format('drop index %s', i.indexrelid::regclass), "
	    "pg_get_indexdef(i.indexrelid) from pg_index i join pg_class c on c.oid = i.indrelid "
	    "where c.relnamespace in ('booking" SFX "'::regnamespace, 'ord" SFX
	    "'::regnamespace) and c.oid <> 'booking" SFX ".autoaccept_rule'::regclass and not "
	    "exists (select 1 from pg_constraint k where k.conindid = i.indexrelid and "
	    "k.contype in ('p', 'u', 'x')) order by 1";
	PGresult *res = pgu_query(r->c, idx_sql, 0, NULL, "list indexes", e, sizeof(e));
	if (!res)
		return fail(r, RB_DEPENDENCY, "%s", e);
	for (int i = 0; i < PQntuples(res); i++)
		if (!ddl_push(&r->drop, PQgetvalue(res, i, 0)) ||
		    !ddl_push(&r->mk_idx, PQgetvalue(res, i, 1)))
			rc = fail(r, RB_DEPENDENCY, "out of memory");
	PQclear(res);
	res = pgu_query(r->c, cons_sql, 0, NULL, "list constraints", e, sizeof(e));
	if (!res)
		return fail(r, RB_DEPENDENCY, "%s", e);
	for (int i = 0; i < PQntuples(res); i++)
		if (!ddl_push(&r->drop, PQgetvalue(res, i, 0)) ||
		    !ddl_push(PQgetvalue(res, i, 2)[0] == 'f' ? &r->mk_fks : &r->mk_keys,
			      PQgetvalue(res, i, 1)))
			rc = fail(r, RB_DEPENDENCY, "out of memory");
	PQclear(res);
	if (rc < 0)
		return -1;
	return ddl_run(r, &r->drop, "drop keys and indexes for the load");
}

/* --- the reader rule and the mapping: proj_plan.c, as the live projector ------------ */

static pp_order *order_of(void *ctx, const char *order_id)
{
	oentry *o = order_get(ctx, order_id);
	return o ? &o->po : NULL;
}

/* An older hash of an order: every hash is kept (the shadow model cannot be asked). */
static int hash_at(void *ctx, pp_order *po, int64_t seq, uint8_t ret[BK_HASH_LEN], char *err,
		   size_t errsz)
{
	(void)ctx;
	(void)err;
	(void)errsz;
	const oentry *o = OENTRY(po);
	if (seq < 1 || (size_t)seq > o->nh || seq > po->b.seq)
		return 1;
	memcpy(ret, o->hashes[seq - 1], BK_HASH_LEN);
	return 0;
}

static int keep_hash(void *ctx, pp_order *po, const bk_event *e)
{
	(void)ctx;
	oentry *o = OENTRY(po);
	if ((size_t)e->seq > o->caph) {
		size_t cap = o->caph ? o->caph * 2 : 8;
		while (cap < (size_t)e->seq)
			cap *= 2;
		void *h = realloc(o->hashes, cap * BK_HASH_LEN);
		if (!h)
			return -1;
		o->hashes = h;
		o->caph = cap;
	}
	memcpy(o->hashes[e->seq - 1], e->hash, BK_HASH_LEN);
	if ((size_t)e->seq > o->nh)
		o->nh = (size_t)e->seq;
	return 0;
}

/* The chunk's records as items (events decoded into zone z). */
static int gather(rb *r, msgpack_zone *z)
{
	pp_clear(&r->pl);
	for (size_t i = 0; i < r->nrecs; i++) {
		const rec *rc = &r->recs[i];
		if (!rc->bad_seal && !strcmp(rc->key, BK_SEAL_KEY))
			continue; /* a seal record: nothing to project */
		bk_record d;
		char why[200] = "empty record";
		bool ok = !rc->bad_seal && rc->len &&
			  bk_codec_record_decode(rc->val, rc->len, z, &d, why, sizeof(why)) == 0;
		/* RV_CHECK: is it the record its seal lists? */
		bool other = ok && rc->ver == RV_CHECK && !bk_seal_digest_is(&d, rc->dig);
		pp_seal seal = rc->bad_seal			 ? PP_BAD_SEAL
			       : rc->ver == RV_UNSEALED || other ? PP_UNSEALED
								 : PP_SEALED;
		long first =
		    pp_add_record(&r->pl, ok ? &d : NULL, why, seal, NULL, order_of, r, rc->key);
		if (first < 0)
			return fail(r, RB_DEPENDENCY, "out of memory");
		for (size_t k = (size_t)first; k < r->pl.n; k++) {
			pp_item *it = &r->pl.items[k];
			if (!it->o)
				return fail(r, RB_DEPENDENCY, "out of memory");
			it->part = rc->part;
			it->offset = rc->off;
			it->raw = rc->val;
			it->raw_n = rc->len;
			if (it->e)
				r->st.events++;
		}
	}
	return 0;
}

static int plan(rb *r)
{
	const pp_ops ops = {hash_at, NULL, keep_hash, r};
	char e[512];
	if (pp_run(&r->pl, r->cs, &ops, e, sizeof(e)) < 0)
		return fail(r, RB_DEPENDENCY, "%s", e);
	return 0;
}

/* old || new for jsonb objects, as PostgreSQL merges a location patch. */
static const char *json_merge(pr_store *s, const char *old, const char *add)
{
	json_t *a = old ? json_loads(old, 0, NULL) : json_object();
	json_t *b = json_loads(add, 0, NULL);
	const char *out = NULL;
	if (a && b && json_is_object(a) && json_is_object(b) && json_object_update(a, b) == 0) {
		char *t = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
		if (t)
			out = pr_strdup(s, t, strlen(t));
		free(t);
	}
	json_decref(a);
	json_decref(b);
	return out;
}

/*
 * Fold the chunk's images (r->cs) into the memory model (r->ps): new rows are added,
 * patches change the image they patch, replaced line item lists die. The timeline goes to
 * the COPY stream instead.
 */
static int merge(rb *r)
{
	size_t n;
	const char *const *ids = pr_replaced(r->cs, &n);
	for (size_t i = 0; i < n; i++) {
		oentry *o = order_find(r, ids[i]);
		for (uint32_t k = 0; o && k < o->nitems; k++)
			o->items[k]->dead = true;
		if (o)
			o->nitems = 0;
	}
	ids = pr_dirty(r->cs, &n);
	for (size_t i = 0; i < n; i++) {
		oentry *o = order_find(r, ids[i]);
		if (o)
			o->dirty = true;
	}
	char err[256];
	for (int t = 0; t < PR__COUNT; t++) {
		const pr_tabledef *td = pr_def(t);
		size_t cnt = pr_store_count(r->cs, (pr_table)t);
		if (t == PR_TIMELINE) {
			for (size_t i = 0; i < cnt; i++)
				if (!row_text(&r->tl, td, pr_store_row(r->cs, (pr_table)t, i), 0))
					return fail(r, RB_DEPENDENCY, "out of memory");
			if (tl_put(r, false) < 0)
				return -1;
			continue;
		}
		for (size_t i = 0; i < cnt; i++) {
			const pr_row *src = pr_store_row(r->cs, (pr_table)t, i);
			if (src->dead)
				continue;
			const char *pk[2] = {src->v[0], td->npk > 1 ? src->v[1] : NULL};
			bool is_new = src->is_new || !td->stage;
			size_t before = pr_store_count(r->ps, (pr_table)t);
			pr_row *d;
			if (pr_row_get(r->ps, (pr_table)t, pk, src->order_id, is_new, &d, err,
				       sizeof(err)) < 0)
				return fail(r, RB_DATA, "order %s: %s", src->order_id, err);
			if (!is_new && pr_store_count(r->ps, (pr_table)t) != before)
				return fail(
				    r, RB_DATA,
				    "order %s: %s %s to update is not in the model (the live "
				    "projector quarantines such an order; rebuild does not)",
				    src->order_id, td->name, pk[0]);
			for (int c = td->npk; c < td->ncols; c++) {
				const char *v = src->v[c];
				if (!is_new && !v)
					continue;
				if (!is_new && td->cols[c].merge == PR_M_JSON_MERGE)
					v = json_merge(r->ps, d->v[c], v);
				else if (v)
					v = pr_strdup(r->ps, v, strlen(v));
				if (src->v[c] && !v)
					return fail(r, RB_DEPENDENCY, "out of memory (%s)",
						    td->name);
				d->v[c] = v;
			}
			if (t == PR_LINE_ITEM) {
				oentry *o = order_find(r, src->order_id);
				if (o && o->nitems == o->capitems) {
					uint32_t cap = o->capitems ? o->capitems * 2 : 4;
					pr_row **v = realloc(o->items, cap * sizeof(*v));
					if (!v)
						return fail(r, RB_DEPENDENCY, "out of memory");
					o->items = v;
					o->capitems = cap;
				}
				if (o)
					o->items[o->nitems++] = d;
			}
		}
	}
	return 0;
}

/* --- writing into the shadow schemas with SQL (tails) ------------------------------- */

/* The price snapshots of orders ids, with the projector's own SQL (pa_price_sql). */
static int price(rb *r, const char *const *ids, size_t n)
{
	if (n == 0)
		return 0;
	char *q = pdb_map_names(pa_price_sql, SFX), *arr = pdb_array(ids, n);
	const char *v[1] = {arr};
	int rc = q && arr ? sqlp(r, q, 1, v, "price snapshots")
			  : fail(r, RB_DEPENDENCY, "out of memory");
	free(q);
	free(arr);
	return rc;
}

static const pdb_target shadow = {SFX};

/* Write r->cs into the shadow schemas with the live projector's writer (the caller's
 * transaction). */
static int write_sql(rb *r)
{
	char e[1024];
	if (!r->pdb_ready) {
		if (pdb_setup(r->c, &shadow, e, sizeof(e)) < 0)
			return fail(r, RB_DEPENDENCY, "%s", e);
		r->pdb_ready = true;
	}
	bool poison = false;
	if (pdb_write(r->c, &shadow, r->cs, PDB_COPY, &poison, e, sizeof(e)) < 0)
		return fail(r, poison ? RB_DATA : RB_DEPENDENCY, "%s%s", e,
			    poison ? " (the live projector quarantines such an order; rebuild does "
				     "not)"
				   : "");
	return 0;
}

/* --- bookkeeping: quarantine and fork rows, checkpoints -------------------------------- */

/* The report rows of the chunk's items not applied, as the live projector writes them. */
static int bookkeeping(rb *r)
{
	for (size_t i = 0; i < r->pl.n; i++) {
		const pp_item *it = &r->pl.items[i];
		char e[1024];
		if (pdb_report_item(r->c, &shadow, r->ev_topic, it, &r->sb, e, sizeof(e)) < 0)
			return fail(r, RB_DEPENDENCY, "%s", e);
		switch ((pp_action)it->action) {
		case PP_APPLY:
			r->st.applied++;
			break;
		case PP_DUP:
			r->st.duplicates++;
			break;
		case PP_FORK:
			r->st.forks++;
			break;
		case PP_REJECT:
			r->st.rejected++;
			break;
		case PP_QUAR:
			r->st.quarantined++;
			break;
		case PP_HELD:
			r->st.held++;
			break;
		}
	}
	return 0;
}

static int write_checkpoints(rb *r, const char *topic, const int64_t *next_read, int n)
{
	/* a record still waiting for its seal (r->recs) is read again by the projector:
	 * the checkpoint of its partition stays at the first of them */
	int64_t *next = malloc(((size_t)n + 1) * sizeof(*next));
	if (!next)
		return fail(r, RB_DEPENDENCY, "out of memory");
	memcpy(next, next_read, (size_t)n * sizeof(*next));
	for (size_t i = 0; topic == r->ev_topic && i < r->nrecs; i++) {
		const rec *x = &r->recs[i];
		if (x->part >= 0 && x->part < n && (next[x->part] < 0 || x->off < next[x->part]))
			next[x->part] = x->off;
	}
	int32_t *parts = malloc(((size_t)n + 1) * sizeof(*parts));
	size_t np = 0;
	for (int p = 0; parts && p < n; p++)
		if (next[p] >= 0) {
			parts[np] = p;
			next[np++] = next[p];
		}
	char e[1024];
	int rc =
	    !parts ? fail(r, RB_DEPENDENCY, "out of memory")
	    : np && pdb_checkpoints_set(r->c, &shadow, topic, parts, next, np, e, sizeof(e)) < 0
		? fail(r, RB_DEPENDENCY, "%s", e)
		: 0;
	free(parts);
	free(next);
	return rc;
}

/* --- chunks ----------------------------------------------------------------------------- */

static void recs_clear(rb *r)
{
	for (size_t i = 0; i < r->nrecs; i++) {
		if (r->recs[i].m)
			rd_kafka_message_destroy(r->recs[i].m);
		free(r->recs[i].own);
	}
	r->nrecs = 0;
}

/*
 * Plan the chunk's records and write them: into the memory model (load) or with SQL into
 * the shadow schemas (tails; the caller owns the transaction). Heads commit after.
 */
static int process_chunk(rb *r)
{
	if (r->nrecs == 0)
		return 0;
	msgpack_zone z;
	if (!msgpack_zone_init(&z, (size_t)256 * 1024))
		return fail(r, RB_DEPENDENCY, "out of memory");
	int rc = gather(r, &z);
	if (rc == 0)
		rc = plan(r);
	if (rc == 0)
		rc = r->in_memory ? merge(r) : write_sql(r);
	if (rc == 0)
		rc = bookkeeping(r);
	if (rc == 0) {
		pp_commit(&r->pl);
		/* a quarantined order holds its later events in later chunks too */
		for (size_t i = 0; i < r->pl.n; i++)
			if (r->pl.items[i].action == PP_QUAR && r->pl.items[i].o)
				r->pl.items[i].o->held = true;
	}
	r->st.records += (int64_t)r->nrecs;
	if (!r->in_memory)
		r->st.tail_records += (int64_t)r->nrecs;
	msgpack_zone_destroy(&z);
	recs_clear(r);
	return rc;
}

/* The seal rule released record `rec` (a handle: hid); hid increases along r->recs. */
static void rb_release(void *opaque, void *rec, int32_t partition, int64_t offset, bool sealed,
		       const uint8_t *digest)
{
	rb *r = opaque;
	uint64_t h = (uintptr_t)rec;
	(void)partition;
	(void)offset;
	size_t lo = 0, hi = r->nrecs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->recs[mid].hid < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < r->nrecs && r->recs[lo].hid == h) {
		r->recs[lo].ver = !sealed ? RV_UNSEALED : digest ? RV_CHECK : RV_SEALED;
		if (digest)
			memcpy(r->recs[lo].dig, digest, BK_HASH_LEN);
	}
}

static void rb_bad_seal(void *opaque, const rd_kafka_message_t *m, const char *why)
{
	rb *r = opaque;
	r->bad_seals++;
	bk_logf(BK_LOG_WARN, "seal record rejected", "topic=%s partition=%d offset=%lld err=\"%s\"",
		m->rkt ? rd_kafka_topic_name(m->rkt) : r->ev_topic, (int)m->partition,
		(long long)m->offset, why); /* no rkt: read from a replay file */
}

/*
 * Process what the seal rule has judged: every record except, per partition, those from
 * the first one still waiting for its seal on (they stay in r->recs, in order, for a
 * later chunk; the checkpoints stay before them).
 */
static int process_ready(rb *r)
{
	size_t n = r->nrecs, k = 0, nk = 0, nw = 0;
	if (n == 0)
		return 0;
	rec *keep = malloc(n * sizeof(*keep));
	int32_t *wait = malloc(n * sizeof(*wait));
	if (!keep || !wait) {
		free(keep);
		free(wait);
		return fail(r, RB_DEPENDENCY, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		rec *x = &r->recs[i];
		bool waits = x->ver == RV_PENDING;
		for (size_t j = 0; !waits && j < nw; j++)
			waits = wait[j] == x->part;
		if (x->ver == RV_PENDING)
			wait[nw++] = x->part;
		if (waits)
			keep[nk++] = *x;
		else
			r->recs[k++] = *x;
	}
	free(wait);
	r->nrecs = k;
	int rc = process_chunk(r); /* frees the k records taken */
	memcpy(r->recs, keep, nk * sizeof(*keep));
	r->nrecs = nk;
	free(keep);
	return rc;
}

static rec *rec_add(rb *r)
{
	if (r->nrecs == r->caprecs) {
		size_t cap = r->caprecs ? r->caprecs * 2 : 1024;
		rec *v = realloc(r->recs, cap * sizeof(*v));
		if (!v)
			return NULL;
		r->recs = v;
		r->caprecs = cap;
	}
	rec *x = &r->recs[r->nrecs++];
	memset(x, 0, sizeof(*x));
	return x;
}

static long chunk_size(const rb *r)
{
	return r->cfg->batch > 0 ? r->cfg->batch : DEFAULT_BATCH;
}

/* --- reading Kafka ------------------------------------------------------------------------- */

static int watermarks(rb *r, const char *topic, int n, int64_t *lo, int64_t *hi)
{
	for (int p = 0; p < n; p++) {
		char e[512];
		if (bk_kconf_watermarks(r->rk, topic, p, 10000, &lo[p], &hi[p], e, sizeof(e)) < 0)
			return fail(r, RB_DEPENDENCY, "%s", e);
	}
	return 0;
}

/* Rules record: the profile's rules replace what it had (a tombstone deletes them). */
static int rules_put(rb *r, const rd_kafka_message_t *m)
{
	char e[1024];
	if (pdb_rules_record(r->c, &shadow, r->ru_topic, m->partition, m->offset, m->key,
			     m->key_len, m->payload, m->len, e, sizeof(e)) < 0)
		return fail(r, RB_DEPENDENCY, "%s", e);
	return 0;
}

/*
 * Read partitions [0, n) of topic from from[p] to to[p] (exclusive); events records are
 * gathered into chunks, rules records applied one by one. from[p] < 0 counts as 0.
 */
static int read_range(rb *r, const char *topic, bool rules, int n, const int64_t *from,
		      const int64_t *to)
{
	rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
	bool *done = calloc((size_t)(n > 0 ? n : 1), sizeof(bool));
	int open = 0, rc = 0;
	if (!tp || !done) {
		rc = fail(r, RB_DEPENDENCY, "out of memory");
		goto out;
	}
	for (int p = 0; p < n; p++) {
		int64_t f = from[p] < 0 ? 0 : from[p];
		done[p] = f >= to[p];
		if (!done[p]) {
			rd_kafka_topic_partition_list_add(tp, topic, p)->offset = f;
			open++;
		}
	}
	if (open == 0)
		goto out;
	rd_kafka_resp_err_t ke = rd_kafka_assign(r->rk, tp);
	if (ke) {
		rc = fail(r, RB_DEPENDENCY, "%s: assign: %s", topic, rd_kafka_err2str(ke));
		goto out;
	}
	while (open > 0 && rc == 0) {
		if (r->cfg->stop && *r->cfg->stop) {
			rc = fail(r, RB_STOPPED, "interrupted");
			break;
		}
		rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, 200);
		if (!m)
			continue;
		int p = m->partition;
		if (m->err) {
			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				if (p >= 0 && p < n && !done[p] && m->offset >= to[p]) {
					done[p] = true;
					open--;
				}
			} else {
				rc = fail(r, RB_DEPENDENCY, "%s [%d]: %s", topic, p,
					  rd_kafka_message_errstr(m));
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		if (p < 0 || p >= n || done[p] || m->offset >= to[p]) {
			if (p >= 0 && p < n && !done[p]) {
				done[p] = true;
				open--;
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->offset + 1 >= to[p]) {
			done[p] = true;
			open--;
		}
		r->pr.done++;
		if (rules) {
			rc = rules_put(r, m);
			rd_kafka_message_destroy(m);
			continue;
		}
		bool bad_seal = false;
		if (bk_trust_is_seal(m)) {
			if (bk_trust_seal(r->trust, m) >= 0) { /* 1: not checked (trusted) */
				rd_kafka_message_destroy(m);
				continue;
			}
			bad_seal = true; /* reported like the live projector: a garbage row */
		}
		rec *x = rec_add(r);
		if (!x) {
			rd_kafka_message_destroy(m);
			rc = fail(r, RB_DEPENDENCY, "out of memory");
			break;
		}
		x->m = m;
		x->part = p;
		x->off = m->offset;
		x->val = m->payload;
		x->len = m->len;
		if (m->key && m->key_len < sizeof(x->key)) {
			memcpy(x->key, m->key, m->key_len);
			x->key[m->key_len] = 0;
		}
		x->hid = r->next_hid++;
		x->ver = RV_SEALED; /* a bad seal is rejected as garbage by gather */
		x->bad_seal = bad_seal;
		/* held without its digest: gather decodes the record once and compares its
		 * digest with the one its seal lists (RV_CHECK; core/bk_seal.h) */
		if (!bad_seal) {
			x->ver = RV_PENDING;
			if (bk_trust_add(r->trust, p, m->offset, NULL, (void *)(uintptr_t)x->hid) <
			    0)
				x->ver = RV_UNSEALED;
		}
		if ((long)r->nrecs >= chunk_size(r)) {
			rc = process_ready(r);
			progress(r, false);
		}
	}
	if (rc == 0)
		rc = process_ready(r); /* what waits for a seal stays for the next read */
	rd_kafka_assign(r->rk, NULL);
out:
	if (tp)
		rd_kafka_topic_partition_list_destroy(tp);
	free(done);
	return rc;
}

/* --- reading a replay file ------------------------------------------------------------- */

static int64_t as_int(const msgpack_object *o, bool *ok)
{
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		return (int64_t)o->via.u64;
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return o->via.i64;
	*ok = false;
	return 0;
}

/* The value of key k in map m (NULL: absent, or m is no map). */
static const msgpack_object *map_get(const msgpack_object *m, const char *k)
{
	if (m->type != MSGPACK_OBJECT_MAP)
		return NULL;
	size_t n = strlen(k);
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object *key = &m->via.map.ptr[i].key;
		if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == n &&
		    !memcmp(key->via.str.ptr, k, n))
			return &m->via.map.ptr[i].val;
	}
	return NULL;
}

/* A bin or str object's bytes; false for anything else (nil: *n = 0, true). */
static bool bytes_of(const msgpack_object *o, const char **p, uint32_t *n)
{
	*p = NULL;
	*n = 0;
	if (o->type == MSGPACK_OBJECT_NIL)
		return true;
	if (o->type == MSGPACK_OBJECT_BIN) {
		*p = o->via.bin.ptr;
		*n = o->via.bin.size;
		return true;
	}
	if (o->type == MSGPACK_OBJECT_STR) {
		*p = o->via.str.ptr;
		*n = o->via.str.size;
		return true;
	}
	return false;
}

/* What a replay file's header says (docs/rebuild.md, "The replay file"). */
typedef struct rf_hdr {
	int n;		    /* partitions */
	int64_t *from, *to; /* [n]: the range of each partition the file covers */
	int64_t *last;	    /* [n]: the last offset read from the file, -1 none */
	int64_t records;    /* records after the header */
	bool trailer;	    /* the trailer was read (and checked) */
} rf_hdr;

/* The header: refuse a file that is not a whole log, saying what is missing. */
static int file_header(rb *r, const msgpack_object *o, rf_hdr *h)
{
	const char *f = r->cfg->from_file;
	const msgpack_object *v = map_get(o, "booking_replay");
	bool ok = true;
	if (!v) {
		if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 3)
			return fail(r, RB_USAGE,
				    "%s: an old replay file without a header: it does not say what "
				    "it holds (filters, partitions, offsets), so it cannot be "
				    "checked; make a new one with `bookingctl replay --format "
				    "msgpack -o FILE` (no filters)",
				    f);
		return fail(r, RB_USAGE,
			    "%s: not a replay file (no header; a file of `bookingctl replay "
			    "--format msgpack`?)",
			    f);
	}
	if (as_int(v, &ok) != 2 || !ok)
		return fail(r, RB_USAGE, "%s: replay file format %lld; this rebuild reads 2", f,
			    (long long)as_int(v, &ok));
	const msgpack_object *t = map_get(o, "topic"), *np = map_get(o, "partitions"),
			     *rg = map_get(o, "ranges"), *fo = map_get(o, "follow"),
			     *fi = map_get(o, "filtered"), *fs = map_get(o, "filters");
	if (!t || t->type != MSGPACK_OBJECT_STR || !np || !rg || rg->type != MSGPACK_OBJECT_ARRAY ||
	    !fo || fo->type != MSGPACK_OBJECT_BOOLEAN || !fi || fi->type != MSGPACK_OBJECT_BOOLEAN)
		return fail(r, RB_USAGE,
			    "%s: the header lacks topic, partitions, ranges, follow or filtered",
			    f);
	if (t->via.str.size != strlen(r->ev_topic) ||
	    memcmp(t->via.str.ptr, r->ev_topic, t->via.str.size) != 0)
		return fail(
		    r, RB_USAGE,
		    "%s: the file holds topic %.*s, this rebuild is for %s (--topic-prefix?)", f,
		    (int)t->via.str.size, t->via.str.ptr, r->ev_topic);
	if (fi->via.boolean) {
		char names[200] = "";
		size_t k = 0;
		for (uint32_t i = 0; fs && fs->type == MSGPACK_OBJECT_MAP && i < fs->via.map.size;
		     i++) {
			const msgpack_object *key = &fs->via.map.ptr[i].key;
			if (key->type == MSGPACK_OBJECT_STR &&
			    k + key->via.str.size + 4 < sizeof(names))
				k += (size_t)snprintf(names + k, sizeof(names) - k, "%s--%.*s",
						      k ? " " : "", (int)key->via.str.size,
						      key->via.str.ptr);
		}
		return fail(r, RB_USAGE,
			    "%s: a filtered replay file (%s): it is not a whole log and would "
			    "drop the rest of the model; make one without filters",
			    f, k ? names : "filters");
	}
	if (fo->via.boolean)
		return fail(r, RB_USAGE,
			    "%s: made with --follow: it states no end of the log; make one "
			    "without --follow",
			    f);
	int64_t n = as_int(np, &ok);
	if (!ok || n < 1 || n > 100000)
		return fail(r, RB_USAGE, "%s: the header's partition count is not a number >= 1",
			    f);
	if (r->rk && r->nparts != n)
		return fail(r, RB_USAGE, "%s: the file has %lld partitions, %s has %d now", f,
			    (long long)n, r->ev_topic, r->nparts);
	h->n = (int)n;
	h->from = malloc((size_t)n * 3 * sizeof(int64_t));
	if (!h->from)
		return fail(r, RB_DEPENDENCY, "out of memory");
	h->to = h->from + n;
	h->last = h->to + n;
	for (int64_t p = 0; p < n; p++)
		h->from[p] = h->to[p] = h->last[p] = -1;
	for (uint32_t i = 0; i < rg->via.array.size; i++) {
		const msgpack_object *e = &rg->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 5)
			return fail(r, RB_USAGE,
				    "%s: range %u of the header is not "
				    "[partition, from, to, low, high]",
				    f, i);
		const msgpack_object *a = e->via.array.ptr;
		int64_t p = as_int(&a[0], &ok), from = as_int(&a[1], &ok), to = as_int(&a[2], &ok),
			lo = as_int(&a[3], &ok), hi = as_int(&a[4], &ok);
		if (!ok || p < 0 || p >= n)
			return fail(r, RB_USAGE,
				    "%s: range %u of the header is not "
				    "[partition, from, to, low, high]",
				    f, i);
		if (from != lo)
			return fail(r, RB_USAGE,
				    "%s: partition %lld starts at offset %lld, the log started at "
				    "%lld: a partial file, not the whole log",
				    f, (long long)p, (long long)from, (long long)lo);
		if (lo > 0)
			return fail(r, RB_TRUNCATED,
				    "%s: partition %lld starts at offset %lld: history was deleted "
				    "(retention) before the file was written, refusing to rebuild "
				    "from a truncated log",
				    f, (long long)p, (long long)lo);
		if (to != hi)
			return fail(r, RB_USAGE,
				    "%s: partition %lld ends at offset %lld, the log's end when it "
				    "was read was %lld: a partial file, not the whole log",
				    f, (long long)p, (long long)to, (long long)hi);
		h->from[p] = from;
		h->to[p] = to;
	}
	for (int64_t p = 0; p < n; p++)
		if (h->to[p] < 0)
			return fail(
			    r, RB_USAGE,
			    "%s: partition %lld of %lld is missing from the file: a partial "
			    "file, not the whole log",
			    f, (long long)p, (long long)n);
	/* the seal rule over the file's records, the same as over Kafka's */
	bk_trust_free(r->trust);
	r->trust = bk_trust_new(r->cfg->writers, r->cfg->trust_unsealed || !r->cfg->writers, h->n,
				rb_release, NULL, rb_bad_seal, r);
	if (!r->trust)
		return fail(r, RB_DEPENDENCY, "out of memory");
	return 0;
}

/* The trailer: the counts must match what was read, and the read must have finished. */
static int file_trailer(rb *r, const msgpack_object *o, rf_hdr *h)
{
	bool ok = true;
	const msgpack_object *n = map_get(o, "records"), *c = map_get(o, "complete");
	int64_t want = n ? as_int(n, &ok) : -1;
	if (!n || !ok || want != h->records)
		return fail(r, RB_USAGE,
			    "%s: the trailer counts %lld records, the file holds %lld: it is "
			    "damaged",
			    r->cfg->from_file, (long long)want, (long long)h->records);
	if (!c || c->type != MSGPACK_OBJECT_BOOLEAN || !c->via.boolean)
		return fail(r, RB_USAGE,
			    "%s: the replay that wrote it was interrupted before the end of the "
			    "log: a partial file",
			    r->cfg->from_file);
	h->trailer = true;
	return 0;
}

/* A record [partition, offset, value, key, seal] of the file: through the seal rule into
 * r->recs, as read_range does with Kafka's. */
static int file_record(rb *r, const msgpack_object *o, rf_hdr *h)
{
	const char *f = r->cfg->from_file;
	bool ok = o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 5;
	const msgpack_object *a = ok ? o->via.array.ptr : NULL;
	int64_t part = ok ? as_int(&a[0], &ok) : 0;
	int64_t off = ok ? as_int(&a[1], &ok) : 0;
	const char *val = NULL, *key = NULL, *kid = NULL, *sig = NULL;
	uint32_t vlen = 0, klen = 0, kidlen = 0, siglen = 0;
	ok = ok && bytes_of(&a[2], &val, &vlen) && bytes_of(&a[3], &key, &klen);
	bool seal = ok && a[4].type == MSGPACK_OBJECT_ARRAY;
	if (seal)
		ok = a[4].via.array.size == 2 && bytes_of(&a[4].via.array.ptr[0], &kid, &kidlen) &&
		     bytes_of(&a[4].via.array.ptr[1], &sig, &siglen);
	else
		ok = ok && a[4].type == MSGPACK_OBJECT_NIL;
	if (!ok)
		return fail(r, RB_USAGE,
			    "%s: record %lld is not [partition, offset, value, key, seal]", f,
			    (long long)h->records);
	if (part < 0 || part >= h->n || off < h->from[part] || off >= h->to[part] ||
	    off <= h->last[part])
		return fail(r, RB_USAGE,
			    "%s: record %lld (partition %lld, offset %lld) is outside the "
			    "header's ranges or out of order",
			    f, (long long)h->records, (long long)part, (long long)off);
	h->last[part] = off;
	h->records++;
	bool bad_seal = false;
	if (seal) {
		rd_kafka_message_t m;
		memset(&m, 0, sizeof(m));
		m.partition = (int32_t)part;
		m.offset = off;
		m.payload = (void *)(uintptr_t)val;
		m.len = vlen;
		m.key = (void *)(uintptr_t)key;
		m.key_len = klen;
		if (bk_trust_seal_from(r->trust, &m, r->ev_topic, kid, kidlen, sig, siglen) == 0)
			return 0;
		bad_seal = true; /* reported like the live projector: a garbage row */
	}
	rec *x = rec_add(r);
	void *own = malloc(vlen ? vlen : 1);
	if (!x || !own) {
		free(own);
		return fail(r, RB_DEPENDENCY, "out of memory");
	}
	if (vlen)
		memcpy(own, val, vlen);
	x->own = own;
	x->val = own;
	x->len = vlen;
	x->part = (int32_t)part;
	x->off = off;
	if (key && klen < sizeof(x->key)) {
		memcpy(x->key, key, klen);
		x->key[klen] = 0;
	}
	x->hid = r->next_hid++;
	x->ver = RV_SEALED; /* what does not decode is rejected as garbage by gather */
	x->bad_seal = bad_seal;
	msgpack_zone dz;
	bk_record dr;
	char why[200];
	if (!msgpack_zone_init(&dz, 4096))
		return fail(r, RB_DEPENDENCY, "out of memory");
	if (!bad_seal && vlen &&
	    bk_codec_record_decode(own, vlen, &dz, &dr, why, sizeof(why)) == 0) {
		uint8_t d[BK_HASH_LEN];
		bk_seal_digest_record(&dr, d);
		x->ver = RV_PENDING;
		if (bk_trust_add(r->trust, x->part, off, d, (void *)(uintptr_t)x->hid) < 0)
			x->ver = RV_UNSEALED;
	}
	msgpack_zone_destroy(&dz);
	return 0;
}

/*
 * A `replay --format msgpack` file: header, records, trailer (docs/rebuild.md). Refused
 * unless it is a whole log (every partition from 0 to the end when it was read, no
 * filter, the trailer's counts). *ret_next gets each partition's end from the header;
 * records still waiting for a seal stay in r->recs, as after a Kafka read.
 */
static int read_file_log(rb *r, int64_t **ret_next, int *ret_n)
{
	FILE *f = fopen(r->cfg->from_file, "rb");
	if (!f)
		return fail(r, RB_USAGE, "%s: %s", r->cfg->from_file, strerror(errno));
	msgpack_unpacker u;
	if (!msgpack_unpacker_init(&u, 1 << 20)) {
		fclose(f);
		return fail(r, RB_DEPENDENCY, "out of memory");
	}
	msgpack_unpacked res;
	msgpack_unpacked_init(&res);
	rf_hdr h = {0};
	bool have_hdr = false;
	int rc = 0;
	for (;;) {
		if (!msgpack_unpacker_reserve_buffer(&u, 1 << 20)) {
			rc = fail(r, RB_DEPENDENCY, "out of memory");
			break;
		}
		size_t got =
		    fread(msgpack_unpacker_buffer(&u), 1, msgpack_unpacker_buffer_capacity(&u), f);
		msgpack_unpacker_buffer_consumed(&u, got);
		r->pr.done += (int64_t)got;
		msgpack_unpack_return ur;
		while (rc == 0 &&
		       (ur = msgpack_unpacker_next(&u, &res)) == MSGPACK_UNPACK_SUCCESS) {
			const msgpack_object *o = &res.data;
			if (h.trailer)
				rc = fail(r, RB_USAGE, "%s: data after the trailer",
					  r->cfg->from_file);
			else if (!have_hdr) {
				rc = file_header(r, o, &h);
				have_hdr = rc == 0;
			} else if (map_get(o, "booking_replay_end"))
				rc = file_trailer(r, o, &h);
			else
				rc = file_record(r, o, &h);
			if (rc == 0 && (long)r->nrecs >= chunk_size(r)) {
				rc = process_ready(r);
				progress(r, false);
			}
			if (rc == 0 && r->cfg->stop && *r->cfg->stop)
				rc = fail(r, RB_STOPPED, "interrupted");
		}
		if (rc < 0)
			break;
		if (ur == MSGPACK_UNPACK_PARSE_ERROR) {
			rc = fail(r, RB_USAGE, "%s: not msgpack after record %lld",
				  r->cfg->from_file, (long long)h.records);
			break;
		}
		if (got == 0) {
			if (ferror(f))
				rc = fail(r, RB_USAGE, "%s: read error", r->cfg->from_file);
			else if (!have_hdr)
				rc = fail(r, RB_USAGE, "%s: empty: not a replay file",
					  r->cfg->from_file);
			else if (!h.trailer)
				rc = fail(r, RB_USAGE,
					  "%s: no trailer after record %lld: the file is truncated "
					  "(or its replay was killed)",
					  r->cfg->from_file, (long long)h.records);
			break;
		}
	}
	if (rc == 0)
		rc = process_ready(r); /* what waits for a seal stays, as after a Kafka read */
	msgpack_unpacked_destroy(&res);
	msgpack_unpacker_destroy(&u);
	fclose(f);
	int64_t *next = rc == 0 ? malloc((size_t)h.n * sizeof(*next)) : NULL;
	if (rc == 0 && !next)
		rc = fail(r, RB_DEPENDENCY, "out of memory");
	for (int p = 0; rc == 0 && p < h.n; p++)
		next[p] = h.to[p] > 0 ? h.to[p] : -1;
	free(h.from);
	if (rc < 0) {
		recs_clear(r);
		free(next);
		return -1;
	}
	*ret_next = next;
	*ret_n = h.n;
	return 0;
}

/* --- phases ---------------------------------------------------------------------------- */

static int timeline_open(rb *r)
{
	char e[512];
	pgu_connect_opts o = {.application_name = "bookingctl-rebuild"};
	r->tc = pgu_connect(r->cfg->conninfo, &o, e, sizeof(e));
	if (!r->tc)
		return fail(r, RB_DEPENDENCY, "%s", e);
	char target[128];
	shadow_table("ord.timeline_event", target, sizeof(target));
	if (copy_start(r, r->tc, target, pr_def(PR_TIMELINE), false) < 0)
		return -1;
	return tl_start(r);
}

/* The events of partitions whose checkpoint is behind the log's end. */
static int catch_up_events(rb *r, bool own_txn, int64_t *ret_n)
{
	int n = r->nparts;
	int64_t *lo = calloc((size_t)n + 1, sizeof(*lo)), *hi = calloc((size_t)n + 1, sizeof(*hi));
	*ret_n = 0;
	if (!lo || !hi) {
		free(lo);
		free(hi);
		return fail(r, RB_DEPENDENCY, "out of memory");
	}
	int rc = watermarks(r, r->ev_topic, n, lo, hi);
	for (int p = 0; p < n && rc == 0; p++) {
		int64_t from = r->next[p] < 0 ? 0 : r->next[p];
		if (lo[p] > from)
			rc = fail(r, RB_TRUNCATED,
				  "%s [%d]: the log starts at offset %lld, the rebuild needs it "
				  "from %lld: history was deleted (retention), refusing to "
				  "rebuild from a truncated log",
				  r->ev_topic, p, (long long)lo[p], (long long)from);
		else if (hi[p] > from)
			*ret_n += hi[p] - from;
	}
	if (rc == 0 && *ret_n > 0) {
		if (own_txn && sql(r, "begin", "begin") < 0)
			rc = -1;
		if (rc == 0)
			rc = read_range(r, r->ev_topic, false, n, r->next, hi);
		for (int p = 0; p < n && rc == 0; p++)
			if (hi[p] > 0)
				r->next[p] = hi[p];
		if (rc == 0)
			rc = write_checkpoints(r, r->ev_topic, r->next, n);
		if (own_txn) {
			if (rc == 0)
				rc = sql(r, "commit", "commit a tail");
			else
				pgu_rollback(r->c);
		}
	}
	free(lo);
	free(hi);
	return rc;
}

static int catch_up_rules(rb *r, bool own_txn)
{
	int n = r->nrparts;
	int64_t *lo = calloc((size_t)n + 1, sizeof(*lo)), *hi = calloc((size_t)n + 1, sizeof(*hi));
	if (!lo || !hi) {
		free(lo);
		free(hi);
		return fail(r, RB_DEPENDENCY, "out of memory");
	}
	int rc = watermarks(r, r->ru_topic, n, lo, hi);
	bool any = false;
	for (int p = 0; p < n && rc == 0; p++)
		any |= hi[p] > (r->rnext[p] < 0 ? 0 : r->rnext[p]);
	if (rc == 0 && any) {
		if (own_txn && sql(r, "begin", "begin") < 0)
			rc = -1;
		if (rc == 0)
			rc = read_range(r, r->ru_topic, true, n, r->rnext, hi);
		for (int p = 0; p < n && rc == 0; p++)
			if (hi[p] > 0)
				r->rnext[p] = hi[p];
		if (rc == 0)
			rc = write_checkpoints(r, r->ru_topic, r->rnext, n);
		if (own_txn) {
			if (rc == 0)
				rc = sql(r, "commit", "commit the rules");
			else
				pgu_rollback(r->c);
		}
	}
	free(lo);
	free(hi);
	return rc;
}

/* Offset 0 to the end known at start, into memory (events) and the shadow rules table. */
static int load(rb *r)
{
	r->in_memory = true;
	if (timeline_open(r) < 0)
		return -1;
	if (r->cfg->from_file) {
		struct stat sbuf;
		set_phase(r, RB_PH_LOAD, stat(r->cfg->from_file, &sbuf) == 0 ? sbuf.st_size : 0);
		int64_t *next = NULL;
		int nn = 0;
		if (read_file_log(r, &next, &nn) < 0)
			return -1;
		for (int p = 0; p < nn && p < r->nparts; p++)
			r->next[p] = next[p];
		if (nn > 0 && nn > r->nparts) {
			int64_t *v = realloc(r->next, (size_t)nn * sizeof(*v));
			if (!v) {
				free(next);
				return fail(r, RB_DEPENDENCY, "out of memory");
			}
			r->next = v;
			for (int p = 0; p < nn; p++)
				r->next[p] = next[p];
			r->nparts = nn;
		}
		free(next);
		/* the rules are not in the file: the live model's rules and their checkpoints
		 * (one snapshot) */
		char q[1024];
		const char *v[1] = {r->ru_topic};
		snprintf(q, sizeof(q),
			 "insert into booking" SFX ".autoaccept_rule select * from "
			 "booking.autoaccept_rule");
		if (sql(r, "begin isolation level repeatable read", "begin") < 0 ||
		    sql(r, q, "copy the rules") < 0 ||
		    sqlp(r,
			 "insert into booking_proj" SFX ".checkpoint select * from "
			 "booking_proj.checkpoint where topic = $1",
			 1, v, "copy the rules checkpoints") < 0 ||
		    sql(r, "commit", "commit") < 0) {
			pgu_rollback(r->c);
			return -1;
		}
		if (r->rk) {
			PGresult *res =
			    pgu_query(r->c,
				      "select partition, next_offset from booking_proj" SFX
				      ".checkpoint where topic = $1",
				      1, v, NULL, q, sizeof(q));
			if (!res)
				return fail(r, RB_DEPENDENCY, "%s", q);
			for (int i = 0; i < PQntuples(res); i++) {
				int p = atoi(PQgetvalue(res, i, 0));
				if (p >= 0 && p < r->nrparts)
					r->rnext[p] = strtoll(PQgetvalue(res, i, 1), NULL, 10);
			}
			PQclear(res);
		}
		return 0;
	}
	int n = r->nparts;
	int64_t *lo = calloc((size_t)n, sizeof(*lo)), *hi = calloc((size_t)n, sizeof(*hi));
	int rc = 0;
	if (!lo || !hi)
		rc = fail(r, RB_DEPENDENCY, "out of memory");
	if (rc == 0)
		rc = watermarks(r, r->ev_topic, n, lo, hi);
	int64_t total = 0;
	for (int p = 0; p < n && rc == 0; p++) {
		if (lo[p] > 0)
			rc = fail(r, RB_TRUNCATED,
				  "%s [%d]: the log starts at offset %lld, not 0: history was "
				  "deleted (retention), refusing to rebuild from a truncated log",
				  r->ev_topic, p, (long long)lo[p]);
		total += hi[p];
	}
	if (rc == 0)
		rc = catch_up_rules(r, true);
	if (rc == 0) {
		set_phase(r, RB_PH_LOAD, total);
		int64_t *zero = calloc((size_t)n, sizeof(*zero));
		rc = zero ? read_range(r, r->ev_topic, false, n, zero, hi)
			  : fail(r, RB_DEPENDENCY, "out of memory");
		free(zero);
	}
	for (int p = 0; p < n && rc == 0; p++)
		r->next[p] = hi[p] > 0 ? hi[p] : -1;
	free(lo);
	free(hi);
	return rc;
}

/* A log line with the time since the previous step. */
static void step(rb *r, const char *name)
{
	double t = since(&r->t0);
	bk_logf(BK_LOG_INFO, "rebuild step", "step=%s seconds=%.2f", name, t - r->last_step);
	r->last_step = t;
}

/* Where a key or index of mk_keys / mk_idx is built (write_model). */
enum { DDL_TIMELINE, DDL_OORDER, DDL_OTHER };

static int ddl_class(const char *d)
{
	if (strstr(d, "timeline_event"))
		return DDL_TIMELINE;
	if (strstr(d, " ord" SFX ".\"order\" "))
		return DDL_OORDER;
	return DDL_OTHER;
}

/* Run the keys, then the indexes, of class cls on r->c. */
static int ddl_run_class(rb *r, int cls)
{
	for (int pass = 0; pass < 2; pass++) {
		const ddl *d = pass ? &r->mk_idx : &r->mk_keys;
		for (size_t i = 0; i < d->n; i++)
			if (ddl_class(d->v[i]) == cls &&
			    sql(r, d->v[i], pass ? "indexes" : "keys") < 0)
				return -1;
	}
	return 0;
}

/*
 * The memory model into the shadow tables, then keys, indexes and price snapshots. Two
 * server processes work at once: as soon as the timeline's COPY ends, its keys and indexes
 * are built on r->tc while r->c COPYs the memory model, builds the other keys and indexes,
 * and updates the price snapshots before ord.order has its key (no index to maintain, and
 * a hashed scan instead of one index probe per order); foreign keys after both.
 */
static int write_model(rb *r)
{
	step(r, "load");
	set_phase(r, RB_PH_WRITE, (int64_t)pr_store_rows_total(r->ps));
	if (tl_finish(r) < 0)
		return -1;
	buf tq = {0};
	bool ok = true;
	for (int pass = 0; pass < 2 && ok; pass++) {
		const ddl *d = pass ? &r->mk_idx : &r->mk_keys;
		for (size_t i = 0; i < d->n && ok; i++)
			if (ddl_class(d->v[i]) == DDL_TIMELINE)
				ok = b_str(&tq, d->v[i]) && b_str(&tq, ";");
	}
	if (!ok || (tq.n && PQsendQuery(r->tc, tq.p) != 1)) {
		free(tq.p);
		return fail(r, RB_DEPENDENCY, "timeline keys and indexes: %s",
			    ok ? PQerrorMessage(r->tc) : "out of memory");
	}
	free(tq.p);
	step(r, "timeline_copy_end");
	int rc = 0;
	for (int t = 0; t < PR__COUNT && rc == 0; t++) {
		if (t == PR_TIMELINE)
			continue;
		char target[128];
		shadow_table(pr_def(t)->name, target, sizeof(target));
		rc = copy_table(r, r->ps, (pr_table)t, target, false);
		r->pr.done += (int64_t)pr_store_count(r->ps, (pr_table)t);
		progress(r, false);
	}
	pr_store_free(r->ps);
	r->ps = NULL;
	step(r, "copy");
	set_phase(r, RB_PH_INDEX, (int64_t)(r->mk_keys.n + r->mk_idx.n + r->mk_fks.n));
	if (rc == 0)
		rc = ddl_run_class(r, DDL_OTHER);
	step(r, "keys_indexes");
	/* price snapshots of every order whose money or items changed; a one-off statement
	 * over every order: not worth JIT compiling */
	const char **ids = rc == 0 ? malloc((r->norders + 1) * sizeof(*ids)) : NULL;
	size_t n = 0;
	if (rc == 0 && !ids)
		rc = fail(r, RB_DEPENDENCY, "out of memory");
	for (size_t i = 0; rc == 0 && i < r->nslots; i++)
		if (r->slots[i] && r->slots[i]->dirty)
			ids[n++] = r->slots[i]->po.id;
	if (rc == 0)
		rc = sql(r, "set jit = off", "jit off");
	if (rc == 0)
		rc = price(r, ids, n);
	if (rc == 0)
		rc = sql(r, "reset jit", "jit reset");
	free(ids);
	step(r, "price_snapshots");
	if (rc == 0)
		rc = ddl_run_class(r, DDL_OORDER);
	step(r, "order_keys");
	PGresult *res;
	while ((res = PQgetResult(r->tc)) != NULL) {
		if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK) {
			char e[1024];
			pgu_format_error(r->tc, res, "timeline keys and indexes", e, sizeof(e));
			rc = fail(r, RB_DEPENDENCY, "%s", e);
		}
		PQclear(res);
	}
	PQfinish(r->tc);
	r->tc = NULL;
	step(r, "timeline_keys_indexes");
	if (rc == 0)
		rc = ddl_run(r, &r->mk_fks, "foreign keys");
	step(r, "foreign_keys");
	if (rc == 0)
		rc = write_checkpoints(r, r->ev_topic, r->next, r->nparts);
	return rc;
}

static int table_exists(rb *r, const char *name, bool *ret)
{
	char v[8];
	const char *p[1] = {name};
	if (query1(r, "select to_regclass($1) is not null", 1, p, v, sizeof(v), "f") < 0)
		return -1;
	*ret = strcmp(v, "t") == 0;
	return 0;
}

/*
 * One transaction: the projector is held out (its checkpoint table locked), the last tail
 * is written with the new model's generation, the old schemas are locked against readers,
 * the projector's sessions are ended, and the schemas trade names. Readers see the old
 * model until the commit and the new one after. A projector notices the new generation by
 * itself (its fence, or its reconnect) and drops its cache and staging tables; ending its
 * sessions is belt and braces, for projectors built before that check (docs/rebuild.md).
 */
static int swap(rb *r)
{
	set_phase(r, RB_PH_SWAP, 0);
	bool has_model = false;
	if (sql(r, "begin", "begin the swap") < 0 ||
	    sql(r, "lock table booking_proj.checkpoint in exclusive mode", "lock the checkpoints") <
		0)
		goto fail;
	if (r->rk) {
		int64_t n;
		r->in_memory = false;
		if (catch_up_rules(r, false) < 0 || catch_up_events(r, false, &n) < 0)
			goto fail;
	}
	if (table_exists(r, "booking_proj.model", &has_model) < 0)
		goto fail;
	const char *src[1] = {r->cfg->from_file ? r->cfg->from_file : r->ev_topic};
	if (sqlp(r,
		 has_model ? "insert into booking_proj" SFX ".model (generation, source) select "
			     "coalesce(max(generation), 0) + 1, $1 from booking_proj.model"
			   : "insert into booking_proj" SFX
			     ".model (generation, source) values (1, "
			     "$1)",
		 1, src, "generation") < 0)
		goto fail;
	char e[1024];
	PGresult *res = pgu_query(r->c,
				  "select string_agg(format('%I.%I', n.nspname, c.relname), ', ') "
				  "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
				  "where n.nspname in ('booking', 'ord', 'booking_proj') and "
				  "c.relkind in ('r', 'p')",
				  0, NULL, "list the live tables", e, sizeof(e));
	if (!res) {
		fail(r, RB_DEPENDENCY, "%s", e);
		goto fail;
	}
	buf lock = {0};
	bool ok = b_printf(&lock, "set local lock_timeout = '%s'; lock table ", SWAP_LOCK_WAIT) &&
		  b_str(&lock, PQgetvalue(res, 0, 0)) && b_str(&lock, " in access exclusive mode");
	PQclear(res);
	if (!ok) {
		free(lock.p);
		fail(r, RB_DEPENDENCY, "out of memory");
		goto fail;
	}
	int tries = 0;
	for (;; tries++) {
		if (sql(r, "savepoint readers", "savepoint") < 0)
			break;
		PGresult *lr = PQexec(r->c, lock.p);
		bool got = lr && PQresultStatus(lr) == PGRES_COMMAND_OK;
		bool timeout = !got && strcmp(pgu_sqlstate(lr), "55P03") == 0;
		if (!got && (!timeout || tries >= SWAP_TRIES)) {
			pgu_format_error(r->c, lr, "lock the live tables", e, sizeof(e));
			fail(r, RB_DEPENDENCY, "%s", e);
		}
		PQclear(lr);
		if (got || r->rc != RB_OK)
			break;
		if (sql(r, "rollback to savepoint readers", "rollback to savepoint") < 0)
			break;
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
	}
	free(lock.p);
	if (r->rc != RB_OK)
		goto fail;
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(r->suffix_old, sizeof(r->suffix_old), "_old_%Y%m%dt%H%M%S", &tm);
	buf q = {0};
	ok = b_str(&q, "set local lock_timeout = 0; select count(pg_terminate_backend(pid)) from "
		       "pg_stat_activity where datname = current_database() and "
		       "application_name = 'booking-projector' and pid <> pg_backend_pid();");
	for (int k = 0; k < NSCHEMA && ok; k++)
		ok = b_printf(&q, "alter schema %s rename to %s%s;", schemas[k], schemas[k],
			      r->suffix_old);
	for (int k = 0; k < NSCHEMA && ok; k++)
		ok = b_printf(&q, "alter schema %s" SFX " rename to %s;", schemas[k], schemas[k]);
	if (!ok || sql(r, q.p, "rename the schemas") < 0 ||
	    sql(r, "commit", "commit the swap") < 0) {
		free(q.p);
		if (!ok)
			fail(r, RB_DEPENDENCY, "out of memory");
		goto fail;
	}
	free(q.p);
	bk_logf(BK_LOG_INFO, "new read model swapped in",
		"old_suffix=%s tail_records=%lld lock_tries=%d", r->suffix_old,
		(long long)r->st.tail_records, tries + 1);
	return 0;
fail:
	pgu_rollback(r->c);
	return -1;
}

static int drop_old(rb *r)
{
	if (r->cfg->keep_old) {
		snprintf(r->st.old_suffix, sizeof(r->st.old_suffix), "%s", r->suffix_old);
		return 0;
	}
	buf q = {0};
	bool ok = b_str(&q, "set client_min_messages = warning; drop schema ");
	for (int k = 0; k < NSCHEMA && ok; k++)
		ok = b_printf(&q, "%s%s%s", k ? ", " : "", schemas[k], r->suffix_old);
	ok = ok && b_str(&q, " cascade");
	int rc = ok ? sql(r, q.p, "drop the old schemas") : fail(r, RB_DEPENDENCY, "out of memory");
	free(q.p);
	return rc;
}

static void on_pg_log(void *opaque, pgu_level level, const char *msg)
{
	(void)opaque;
	if (level >= PGU_LOG_WARN)
		bk_logf(BK_LOG_WARN, "postgresql", "detail=\"%s\"", msg);
}

rb_rc rb_run(const rb_cfg *cfg, rb_stats *ret_stats, char *err, size_t errsz)
{
	static const pgu_log log = {on_pg_log, NULL};
	rb r;
	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.err = err;
	r.errsz = errsz;
	err[0] = 0;
	clock_gettime(CLOCK_MONOTONIC, &r.t0);
	r.last_cb = r.t0;
	r.ev_topic = bk_kconf_topic(cfg->kc, BK_TOPIC_EVENTS);
	r.ru_topic = bk_kconf_topic(cfg->kc, BK_TOPIC_RULES);
	msgpack_sbuffer_init(&r.sb);
	pp_init(&r.pl);
	r.cs = pr_store_new();
	r.ps = pr_store_new();
	bool swapped = false;
	if (!r.cs || !r.ps) {
		fail(&r, RB_DEPENDENCY, "out of memory");
		goto out;
	}
	char e[512];
	pgu_connect_opts o = {.application_name = "bookingctl-rebuild", .log = &log};
	r.c = pgu_connect(cfg->conninfo, &o, e, sizeof(e));
	if (!r.c) {
		fail(&r, RB_DEPENDENCY, "%s", e);
		goto out;
	}
	if (cfg->use_kafka) {
		if (bk_logread_consumer(cfg->kc, &r.rk, e, sizeof(e)) < 0) {
			fail(&r, RB_USAGE, "%s", e);
			goto out;
		}
		if (bk_kconf_partition_count(r.rk, r.ev_topic, 10000, &r.nparts, e, sizeof(e)) <
			0 ||
		    bk_kconf_partition_count(r.rk, r.ru_topic, 10000, &r.nrparts, e, sizeof(e)) <
			0) {
			fail(&r, RB_DEPENDENCY, "%s", e);
			goto out;
		}
	}
	r.trust = bk_trust_new(cfg->writers, cfg->trust_unsealed || !cfg->writers,
			       r.nparts > 0 ? r.nparts : 1, rb_release, NULL, rb_bad_seal, &r);
	if (!r.trust) {
		fail(&r, RB_DEPENDENCY, "out of memory");
		goto out;
	}
	r.next = malloc(((size_t)r.nparts + 1) * sizeof(int64_t));
	r.rnext = malloc(((size_t)r.nrparts + 1) * sizeof(int64_t));
	if (!r.next || !r.rnext) {
		fail(&r, RB_DEPENDENCY, "out of memory");
		goto out;
	}
	for (int p = 0; p < r.nparts; p++)
		r.next[p] = -1;
	for (int p = 0; p < r.nrparts; p++)
		r.rnext[p] = -1;
	set_phase(&r, RB_PH_PREPARE, 0);
	if (prepare(&r) < 0 || load(&r) < 0 || write_model(&r) < 0)
		goto out;
	/* tails written while loading, outside the lock, until they are short */
	for (int i = 0; r.rk && i < 5; i++) {
		int64_t n = 0;
		set_phase(&r, RB_PH_CATCHUP, 0);
		r.in_memory = false;
		if (catch_up_rules(&r, true) < 0 || catch_up_events(&r, true, &n) < 0)
			goto out;
		if (n <= chunk_size(&r) / 4)
			break;
	}
	r.st.load_s = since(&r.t0);
	if (swap(&r) < 0)
		goto out;
	swapped = true;
	drop_old(&r);
	r.st.total_s = since(&r.t0);
	set_phase(&r, RB_PH_DONE, 0);
out:
	tl_stop(&r);
	if (r.tc) {
		PQputCopyEnd(r.tc, "rebuild: failed");
		PQfinish(r.tc);
	}
	if (r.c && !swapped && r.rc != RB_BUSY) {
		char keep[1024];
		snprintf(keep, sizeof(keep), "%s", err);
		rb_rc rc = r.rc;
		pgu_rollback(r.c);
		r.rc = RB_OK;
		if (drop_shadow(&r) < 0)
			bk_logf(BK_LOG_WARN, "could not drop the shadow schemas", "err=\"%s\"",
				err);
		snprintf(err, errsz, "%s", keep);
		r.rc = rc;
	}
	if (r.c)
		PQfinish(r.c);
	if (r.rk)
		rd_kafka_destroy(r.rk);
	recs_clear(&r);
	free(r.recs);
	bk_trust_free(r.trust);
	pp_free(&r.pl);
	free(r.next);
	free(r.rnext);
	orders_free(&r);
	pr_store_free(r.cs);
	pr_store_free(r.ps);
	free(r.tl.p);
	ddl_free(&r.drop);
	ddl_free(&r.mk_keys);
	ddl_free(&r.mk_idx);
	ddl_free(&r.mk_fks);
	msgpack_sbuffer_destroy(&r.sb);
	if (r.rc == RB_OK && ret_stats)
		*ret_stats = r.st;
	return r.rc;
}
