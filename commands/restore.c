/*
 * restore.c - rebuilding a partition's state from the log (SPEC §5, docs/design.md
 * "Restore"): the whole rules topic (signed records) into a fresh shared ruleset, then
 * every events record through the seal rule (lib/trust) and the reader rule
 * (bk_engine_read); the partition resumes at its last valid seal's src_next. Nothing here
 * trusts committed consumer offsets or unsealed records; lost history is refused.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp.h"
#include "log.h"
#include "trust.h"

enum { PH_RULES, PH_EVENTS, PH_SNAPS };

/* One partition being read to its end. */
typedef struct rd_part {
	int kind; /* PH_* */
	int32_t partition;
	int64_t start; /* read from here (events: a checkpoint's E, or 0) */
	int64_t end;   /* high watermark at the start */
	bool done;
} rd_part;

/* A partition's snapshots being read (snapshot.c wrote them): the records since the last
 * valid checkpoint wait for the next one; the checkpoint found last; how the partition's
 * events are then read. */
typedef struct snap_part {
	rd_kafka_message_t **pending;
	size_t n_pending, cap_pending;
	bool has_ck;
	bk_checkpoint ck;
	bool from_snap; /* the engine starts from snapshots; events are read from ck's E */
	bool mismatch;	/* an event after E did not follow its snapshot: read from 0 */
	uint64_t loaded, bad, archived_records;
} snap_part;

typedef struct restore_ctx {
	cp *c;
	bk_ruleset *rules; /* the fresh ruleset being read (phase rules) */
	msgpack_zone z;
	msgpack_zone z2; /* decoding a released record */
	bk_trust *trust; /* the events partitions' seal buffers */
	uint64_t n_records, n_applied, n_reported, n_unsealed, n_seals, n_bad_seals, n_bad;
	uint64_t n_verdict[BK_CHAIN__COUNT];
	int64_t t0_us, last_progress_us;
	snap_part *sp; /* [nparts] */
	uint64_t n_snap_records, n_snap_loaded, n_snap_bad, n_fallbacks;
} restore_ctx;

/* Every few seconds of a long restore: how far it got. */
static void progress(restore_ctx *x)
{
	int64_t now = cp_mono_us();
	double s = (double)(now - x->t0_us) / 1e6;
	size_t orders = 0;
	for (int i = 0; i < x->c->nparts; i++)
		if (x->c->parts[i].eng)
			orders += bk_engine_count(x->c->parts[i].eng);
	bk_logf(BK_LOG_INFO, "restore progress",
		"records=%llu orders=%zu seals=%llu seconds=%.1f records_per_s=%.0f",
		(unsigned long long)x->n_records, orders, (unsigned long long)x->n_seals, s,
		s > 0 ? (double)x->n_records / s : 0.0);
	x->last_progress_us = now;
}

static int fail(char *errstr, size_t errstr_size, const char *fmt, ...) BK_PRINTF(3, 4);
static int fail(char *errstr, size_t errstr_size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errstr, errstr_size, fmt, ap);
	va_end(ap);
	return -1;
}

static const char *kind_topic(const cp *c, int kind)
{
	return c->topic[kind == PH_RULES   ? BK_TOPIC_RULES
			: kind == PH_SNAPS ? BK_TOPIC_SNAPSHOTS
					   : BK_TOPIC_EVENTS];
}

static void on_rules(restore_ctx *x, const rd_kafka_message_t *m)
{
	char err[256];
	if (bk_trust_check_rules(x->c->wkr, m, err, sizeof(err)) < 0) {
		x->n_reported++;
		bk_logf(BK_LOG_WARN, "rules record not trusted: skipped",
			"topic=%s partition=%d offset=%lld err=\"%s\"", rd_kafka_topic_name(m->rkt),
			(int)m->partition, (long long)m->offset, err);
		return;
	}
	if (!m->payload) { /* a tombstone deletes the profile's entry */
		if (m->key && m->key_len < BK_ID_MAX) {
			char key[BK_ID_MAX];
			memcpy(key, m->key, m->key_len);
			key[m->key_len] = '\0';
			bk_ruleset_remove(x->rules, key);
		}
		return;
	}
	bk_profile_rules pr;
	if (bk_codec_rules_decode(m->payload, m->len, &pr, err, sizeof(err)) < 0) {
		x->n_bad++;
		bk_logf(BK_LOG_ERROR, "undecodable rules record skipped",
			"topic=%s partition=%d offset=%lld err=\"%s\"", rd_kafka_topic_name(m->rkt),
			(int)m->partition, (long long)m->offset, err);
		return;
	}
	if (bk_ruleset_put(x->rules, &pr) < 0)
		bk_logf(BK_LOG_ERROR, "out of memory storing rules", "service_profile_id=%s",
			pr.service_profile_id);
	bk_profile_rules_clear(&pr);
}

static void report(restore_ctx *x, const rd_kafka_message_t *m, const char *order_id, int64_t seq,
		   bk_chain_verdict v, const char *why)
{
	x->n_reported++;
	x->n_verdict[v]++;
	/* a crashed batch's leftovers are expected: counted in the summary line */
	bk_logf(v == BK_CHAIN_UNSEALED ? BK_LOG_DEBUG : BK_LOG_WARN, "events record not applied",
		"verdict=%s topic=%s partition=%d offset=%lld order_id=%s seq=%lld err=\"%s\"",
		bk_chain_verdict_name(v), rd_kafka_topic_name(m->rkt), (int)m->partition,
		(long long)m->offset, order_id ? order_id : "?", (long long)seq, why ? why : "");
}

/* A record the seal rule released: apply it (sealed) or report it (unsealed). */
static void on_release(void *opaque, void *rec, int32_t partition, int64_t offset, bool sealed,
		       const uint8_t *digest)
{
	(void)digest;
	restore_ctx *x = opaque;
	rd_kafka_message_t *m = rec;
	char err[256];
	bk_record r;
	(void)offset;
	msgpack_zone_clear(&x->z2);
	if (bk_codec_record_decode(m->payload, m->len, &x->z2, &r, err, sizeof(err)) < 0) {
		report(x, m, NULL, 0, BK_CHAIN_GARBAGE, err); /* decoded once already: cannot be */
		rd_kafka_message_destroy(m);
		return;
	}
	if (!sealed) {
		x->n_unsealed++;
		for (uint32_t i = 0; i < r.n; i++)
			report(x, m, r.order_id, r.events[i].seq, BK_CHAIN_UNSEALED,
			       "no valid seal covers the record");
		rd_kafka_message_destroy(m);
		return;
	}
	cp_part *p = &x->c->parts[partition];
	int64_t so = -1;
	if (bk_kconf_header_int(m, "src-offset", &so) == 0 && so > p->last_event)
		p->last_event = so;
	bk_chain_verdict v[BK_MAX_EVENTS];
	bk_chain_verdict *vs = r.n <= BK_MAX_EVENTS ? v : malloc(sizeof(*vs) * r.n);
	if (!vs) {
		x->n_bad++;
		rd_kafka_message_destroy(m);
		return;
	}
	if (bk_engine_read(p->eng, &r, vs, err, sizeof(err)) < 0) {
		x->n_bad++;
		if (x->sp && x->sp[partition].from_snap)
			x->sp[partition].mismatch = true;
		bk_logf(BK_LOG_ERROR, "events record could not be applied",
			"topic=%s partition=%d offset=%lld order_id=%s err=\"%s\"",
			rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset,
			r.order_id, err);
	}
	for (uint32_t i = 0; i < r.n; i++) {
		if (vs[i] == BK_CHAIN_NEXT)
			x->n_applied++;
		/* from snapshots, an event that does not follow may follow the full history:
		 * the partition is read again from 0 (so its verdicts are a full read's) */
		if (x->sp && x->sp[partition].from_snap &&
		    (vs[i] == BK_CHAIN_FORK || vs[i] == BK_CHAIN_BAD_LINK))
			x->sp[partition].mismatch = true;
		if (bk_chain_verdict_reported(vs[i]))
			report(x, m, r.order_id, r.events[i].seq, vs[i], "");
	}
	if (vs != v)
		free(vs);
	rd_kafka_message_destroy(m);
}

static void on_seal(void *opaque, const rd_kafka_message_t *m, const bk_seal *s)
{
	restore_ctx *x = opaque;
	cp_part *p = &x->c->parts[m->partition];
	x->n_seals++;
	p->last_seal = m->offset;
	if (s->src_next > p->next_offset)
		p->next_offset = s->src_next;
}

static void on_bad_seal(void *opaque, const rd_kafka_message_t *m, const char *why)
{
	restore_ctx *x = opaque;
	x->n_bad_seals++;
	report(x, m, NULL, 0, BK_CHAIN_GARBAGE, why);
}

/* Is m a rules record this process wrote (header writer-instance)? */
static bool own_rules(const cp *c, const rd_kafka_message_t *m)
{
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t n;
	return !rd_kafka_message_headers(m, &h) && h &&
	       !rd_kafka_header_get_last(h, "writer-instance", &v, &n) &&
	       n == strlen(c->instance) && !memcmp(v, c->instance, n);
}

/* Start following the rules partitions from where the restore's read ended. */
static void follow_from(cp *c, const rd_part *rp, int n)
{
	rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
	for (int i = 0; i < n; i++)
		if (rp[i].kind == PH_RULES)
			rd_kafka_topic_partition_list_add(tl, c->topic[BK_TOPIC_RULES],
							  rp[i].partition)
			    ->offset = rp[i].end;
	rd_kafka_resp_err_t e = rd_kafka_assign(c->rules_rd, tl);
	if (e)
		bk_logf(BK_LOG_ERROR, "cannot follow the rules topic", "topic=%s err=\"%s\"",
			c->topic[BK_TOPIC_RULES], rd_kafka_err2str(e));
	rd_kafka_topic_partition_list_destroy(tl);
}

void cp_follow_rules(cp *c)
{
	if (!c->rules_rd || !c->rules)
		return;
	restore_ctx x = {.c = c, .rules = c->rules};
	for (int i = 0; i < 1000; i++) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rules_rd, 0);
		if (!m)
			break;
		if (!m->err && !own_rules(c, m)) {
			on_rules(&x, m);
			c->n_rules_followed++;
			bk_logf(BK_LOG_DEBUG, "rules record followed",
				"topic=%s partition=%d offset=%lld", rd_kafka_topic_name(m->rkt),
				(int)m->partition, (long long)m->offset);
		}
		rd_kafka_message_destroy(m);
	}
}

/* An events record read: a seal is judged at once, any other record waits for one. */
static bool on_event(restore_ctx *x, rd_kafka_message_t *m)
{
	if (bk_trust_is_seal(m)) {
		(void)bk_trust_seal(x->trust, m);
		return false;
	}
	char err[256];
	bk_record r;
	msgpack_zone_clear(&x->z);
	if (!m->payload ||
	    bk_codec_record_decode(m->payload, m->len, &x->z, &r, err, sizeof(err)) < 0) {
		char key[BK_ID_MAX] = "?";
		if (m->key && m->key_len < sizeof(key)) {
			memcpy(key, m->key, m->key_len);
			key[m->key_len] = '\0';
		}
		report(x, m, key, 0, BK_CHAIN_GARBAGE, m->payload ? err : "no value");
		return false;
	}
	uint8_t d[BK_HASH_LEN];
	bk_seal_digest_record(&r, d);
	if (bk_trust_add(x->trust, m->partition, m->offset, d, m) < 0) {
		x->n_bad++;
		return false;
	}
	return true; /* kept: released through on_release */
}

static bool key_is(const rd_kafka_message_t *m, const char *k)
{
	return m->key && m->key_len == strlen(k) && !memcmp(m->key, k, m->key_len);
}

/* An archived record before a valid checkpoint: its fingerprints join the engine's
 * archived set (a full one replaces it). One that does not decode, or names another
 * partition or a later E, is skipped; the checkpoint's archived digest decides. */
static void archived_promote(restore_ctx *x, snap_part *sp, const rd_kafka_message_t *m)
{
	char err[256] = "";
	bk_snap_archived a;
	cp_part *p = &x->c->parts[m->partition];
	if (!m->payload || bk_snap_archived_decode(m->payload, m->len, &a, err, sizeof(err)) < 0) {
		sp->bad++;
		bk_logf(BK_LOG_WARN, "archived record refused: skipped",
			"topic=%s partition=%d offset=%lld err=\"%s\"", rd_kafka_topic_name(m->rkt),
			(int)m->partition, (long long)m->offset, m->payload ? err : "no value");
		return;
	}
	if (a.partition != m->partition || a.events_offset > sp->ck.events_offset) {
		sp->bad++;
		bk_logf(BK_LOG_WARN, "archived record refused: skipped",
			"topic=%s partition=%d offset=%lld err=\"names another partition or a "
			"later offset\"",
			rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset);
		free(a.fps);
		return;
	}
	if (a.full)
		bk_engine_archived_reset(p->eng);
	for (size_t i = 0; i < a.n; i++)
		if (bk_engine_archived_put(p->eng, a.fps[i]) < 0) {
			sp->bad++;
			break;
		}
	sp->archived_records++;
	free(a.fps);
}

/* A snapshot (or tombstone) before a valid checkpoint: decoded and checked (order id =
 * key, partition, E not past the checkpoint's), then put in the engine in place of the
 * order's earlier one. One that does not check is skipped (counted). Snapshots carry no
 * signature: the checkpoint's set digest over their bytes tells whether what was
 * loaded is exactly what the writer wrote (snap_decide). */
static void snap_promote(restore_ctx *x, snap_part *sp, const rd_kafka_message_t *m)
{
	char err[256];
	cp_part *p = &x->c->parts[m->partition];
	char key[BK_ID_MAX];
	if (!m->key || m->key_len >= sizeof(key)) {
		sp->bad++;
		return;
	}
	memcpy(key, m->key, m->key_len);
	key[m->key_len] = '\0';
	if (strncmp(key, BK_SNAP_ARCHIVED_KEY, strlen(BK_SNAP_ARCHIVED_KEY)) == 0) {
		archived_promote(x, sp, m);
		return;
	}
	if (!m->payload) { /* the order was archived */
		bk_engine_drop(p->eng, key);
		return;
	}
	bk_order *o;
	int32_t part;
	int64_t off;
	err[0] = '\0';
	if (bk_snap_decode(m->payload, m->len, &o, &part, &off, err, sizeof(err)) < 0 ||
	    part != m->partition || strcmp(o->order_id, key) != 0 || off > sp->ck.events_offset) {
		if (o && !err[0])
			snprintf(err, sizeof(err), "names another partition, order or offset");
		bk_order_free(o);
		sp->bad++;
		bk_logf(BK_LOG_WARN, "snapshot refused: skipped",
			"topic=%s partition=%d offset=%lld order_id=%s err=\"%s\"",
			rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset, key,
			err);
		return;
	}
	if (bk_engine_put(p->eng, o) < 0)
		sp->bad++;
	else
		sp->loaded++;
}

static void snap_drop_pending(snap_part *sp)
{
	for (size_t i = 0; i < sp->n_pending; i++)
		rd_kafka_message_destroy(sp->pending[i]);
	sp->n_pending = 0;
}

/* A snapshots record read: snapshots wait for the checkpoint that covers them. */
static bool on_snap(restore_ctx *x, rd_kafka_message_t *m)
{
	snap_part *sp = &x->sp[m->partition];
	x->n_snap_records++;
	if (!key_is(m, BK_SNAP_CHECKPOINT_KEY)) {
		if (sp->n_pending == sp->cap_pending) {
			size_t cap = sp->cap_pending ? sp->cap_pending * 2 : 256;
			rd_kafka_message_t **v = realloc(sp->pending, cap * sizeof(*v));
			if (!v)
				return false;
			sp->pending = v;
			sp->cap_pending = cap;
		}
		sp->pending[sp->n_pending++] = m;
		return true;
	}
	char err[256];
	bk_checkpoint ck;
	if (bk_trust_check_rules(x->c->wkr, m, err, sizeof(err)) < 0 || !m->payload ||
	    bk_snap_checkpoint_decode(m->payload, m->len, &ck, err, sizeof(err)) < 0 ||
	    ck.partition != m->partition) {
		sp->bad++;
		bk_logf(BK_LOG_WARN, "checkpoint refused: skipped",
			"topic=%s partition=%d offset=%lld err=\"%s\"", rd_kafka_topic_name(m->rkt),
			(int)m->partition, (long long)m->offset, m->payload ? err : "no value");
		return false;
	}
	sp->ck = ck;
	sp->has_ck = true;
	/* the snapshots come in the writer's table order: a table that grew while taking
	 * them would cluster (bk_engine_reserve) */
	if (bk_engine_reserve(x->c->parts[m->partition].eng, (size_t)ck.sum.count) < 0)
		bk_logf(BK_LOG_WARN, "out of memory reserving the orders of a checkpoint",
			"orders=%llu", (unsigned long long)ck.sum.count);
	for (size_t i = 0; i < sp->n_pending; i++)
		snap_promote(x, sp, sp->pending[i]);
	snap_drop_pending(sp);
	return false;
}

static void order_loaded(bk_order *o, void *opaque)
{
	(void)opaque;
	o->snap_version = o->version;
}

typedef struct gone_ids {
	const bk_engine *eng;
	msgpack_sbuffer ids; /* NUL-separated */
	bool oom;
} gone_ids;

static void note_archived(const bk_order *o, void *opaque)
{
	gone_ids *g = opaque;
	if (bk_engine_archived(g->eng, o->order_id) &&
	    msgpack_sbuffer_write(&g->ids, o->order_id, strlen(o->order_id) + 1) != 0)
		g->oom = true;
}

/* Drop the loaded snapshots of orders the archived records list (a tombstone the log
 * lacks: a full read does not hold them either). 0, or -1 on OOM. */
static int drop_archived(bk_engine *e)
{
	gone_ids g = {.eng = e};
	msgpack_sbuffer_init(&g.ids);
	if (bk_engine_archived_count(e) > 0)
		bk_engine_foreach(e, note_archived, &g);
	for (size_t i = 0; i < g.ids.size && !g.oom;) {
		const char *id = g.ids.data + i;
		i += strlen(id) + 1;
		bk_engine_drop(e, id);
	}
	msgpack_sbuffer_destroy(&g.ids);
	return g.oom ? -1 : 0;
}

static void sum_fp(uint64_t fp, void *opaque)
{
	bk_snap_sum_add_fp(opaque, fp);
}

/* A fresh engine for partition p (sharing the processor's ruleset). 0 or -1. */
static int fresh_engine(cp *c, int32_t p)
{
	bk_engine_free(c->parts[p].eng);
	if (!(c->parts[p].eng = bk_engine_new()))
		return -1;
	bk_engine_share_rules(c->parts[p].eng, c->rules);
	return 0;
}

/*
 * After the snapshots partitions were read: each partition starts from its last valid
 * checkpoint when the snapshots loaded are exactly the set it names (the digest and
 * count match, E is not past the events' end), else from an empty engine and offset 0.
 */
static int snap_decide(restore_ctx *x, rd_part *rp, int n, char *errstr, size_t errstr_size)
{
	cp *c = x->c;
	for (int i = 0; i < n; i++) {
		int32_t p = rp[i].partition;
		snap_part *sp = &x->sp[p];
		cp_part *pt = &c->parts[p];
		/* snapshots after the last checkpoint: a checkpoint that never finished */
		pt->resnap = sp->n_pending > 0 || sp->bad > 0;
		snap_drop_pending(sp);
		x->n_snap_loaded += sp->loaded;
		x->n_snap_bad += sp->bad;
		rp[i].start = 0;
		if (!sp->has_ck) {
			if ((bk_engine_count(pt->eng) > 0 ||
			     bk_engine_archived_count(pt->eng) > 0) &&
			    fresh_engine(c, p) < 0)
				return fail(errstr, errstr_size, "out of memory");
			continue;
		}
		int64_t lo = 0, hi = 0;
		if (bk_kconf_watermarks(c->reader, c->topic[BK_TOPIC_EVENTS], p, c->o.timeout_ms,
					&lo, &hi, errstr, errstr_size) < 0)
			return -1;
		if (drop_archived(pt->eng) < 0)
			return fail(errstr, errstr_size, "out of memory");
		bk_engine_each(pt->eng, order_loaded, NULL);
		cp_snap_sum_rebuild(pt);
		bk_snap_sum archived = {0};
		bk_engine_archived_foreach(pt->eng, sum_fp, &archived);
		if (sp->ck.events_offset <= hi && bk_snap_sum_eq(&pt->snap_sum, &sp->ck.sum) &&
		    bk_snap_sum_eq(&archived, &sp->ck.archived)) {
			sp->from_snap = true;
			rp[i].start = sp->ck.events_offset;
			pt->next_offset = sp->ck.src_next;
			pt->ck_next = sp->ck.src_next;
			pt->arch_sum = sp->ck.archived;
			/* orders archived by the events after E: tombstones and fingerprints for
			 * the next checkpoint (cp_archived_take at the end of the restore) */
			bk_engine_track_archives(pt->eng, true);
			continue;
		}
		x->n_fallbacks++;
		bk_logf(
		    BK_LOG_WARN,
		    "snapshots do not match their checkpoint: the partition is read from "
		    "offset 0",
		    "topic=%s partition=%d checkpoint_orders=%llu loaded=%llu refused=%llu "
		    "checkpoint_archived=%llu archived_loaded=%llu checkpoint_events_offset=%lld "
		    "events_end=%lld",
		    c->topic[BK_TOPIC_SNAPSHOTS], (int)p, (unsigned long long)sp->ck.sum.count,
		    (unsigned long long)sp->loaded, (unsigned long long)sp->bad,
		    (unsigned long long)sp->ck.archived.count, (unsigned long long)archived.count,
		    (long long)sp->ck.events_offset, (long long)hi);
		pt->resnap = true;
		if (fresh_engine(c, p) < 0)
			return fail(errstr, errstr_size, "out of memory");
	}
	return 0;
}

/*
 * Read the listed partitions from their start (0 unless set) to their current end with
 * the reader consumer, handing each record to its handler. Returns 0 or -1 + errstr.
 */
static int read_to_end(restore_ctx *x, rd_part *rp, int n, char *errstr, size_t errstr_size)
{
	cp *c = x->c;
	rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(n);
	int left = 0;
	for (int i = 0; i < n; i++) {
		int64_t lo, hi;
		const char *t = kind_topic(c, rp[i].kind);
		if (bk_kconf_watermarks(c->reader, t, rp[i].partition, c->o.timeout_ms, &lo, &hi,
					errstr, errstr_size) < 0)
			goto err;
		if (lo > rp[i].start && rp[i].kind == PH_EVENTS) {
			fail(errstr, errstr_size,
			     "%s [%d]: low watermark is %lld, not 0: the partition has lost "
			     "history (retention is not infinite); refusing to restore from it",
			     t, (int)rp[i].partition, (long long)lo);
			goto err;
		}
		rp[i].end = hi;
		if (rp[i].kind == PH_EVENTS)
			c->parts[rp[i].partition].base_events = hi;
		int64_t from = rp[i].start > lo ? rp[i].start : lo;
		rp[i].done = hi <= from;
		if (rp[i].done)
			continue;
		rd_kafka_topic_partition_list_add(tl, t, rp[i].partition)->offset = from;
		left++;
	}
	if (left == 0) {
		rd_kafka_topic_partition_list_destroy(tl);
		return 0;
	}
	rd_kafka_resp_err_t e = rd_kafka_assign(c->reader, tl);
	if (e) {
		fail(errstr, errstr_size, "restore: assign: %s", rd_kafka_err2str(e));
		goto err;
	}
	int64_t last_progress = cp_mono_us();
	while (left > 0) {
		if (*c->stop && c->exit_code) {
			fail(errstr, errstr_size, "restore interrupted");
			goto err_unassign;
		}
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c->reader, 200);
		if (!m) {
			if (cp_mono_us() - last_progress > (int64_t)c->o.timeout_ms * 1000) {
				fail(errstr, errstr_size,
				     "restore stalled: no record for %d ms (%d partitions not "
				     "at their end)",
				     c->o.timeout_ms, left);
				goto err_unassign;
			}
			continue;
		}
		last_progress = cp_mono_us();
		const char *tn = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
		rd_part *me = NULL;
		for (int i = 0; i < n; i++)
			if (rp[i].partition == m->partition &&
			    !strcmp(kind_topic(c, rp[i].kind), tn))
				me = &rp[i];
		if (m->err) {
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				bk_logf(BK_LOG_WARN, "restore: consumer error",
					"topic=%s partition=%d err=\"%s\"", tn, (int)m->partition,
					rd_kafka_message_errstr(m));
			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && me && !me->done) {
				me->done = true;
				left--;
				if (me->kind == PH_EVENTS)
					bk_trust_flush(x->trust, me->partition);
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		bool kept = false;
		if (me && !me->done) {
			x->n_records++;
			if (me->kind == PH_RULES)
				on_rules(x, m);
			else if (me->kind == PH_SNAPS)
				kept = on_snap(x, m);
			else
				kept = on_event(x, m);
			if (m->offset >= me->end - 1) {
				me->done = true;
				left--;
			}
			if (me->done && me->kind == PH_EVENTS)
				bk_trust_flush(x->trust, me->partition);
		}
		if (!kept)
			rd_kafka_message_destroy(m);
		if (cp_mono_us() - x->last_progress_us > 5000000)
			progress(x);
	}
	rd_kafka_assign(c->reader, NULL);
	rd_kafka_topic_partition_list_destroy(tl);
	return 0;
err_unassign:
	rd_kafka_assign(c->reader, NULL);
err:
	rd_kafka_topic_partition_list_destroy(tl);
	return -1;
}

void cp_part_reset(cp_part *p)
{
	bk_engine_free(p->eng);
	p->eng = NULL;
	p->restored = false;
	p->last_result = -1;
	p->last_event = -1;
	p->prev_result = -1;
	p->base_events = -1;
	p->base_results = -1;
	p->last_seal = -1;
	p->batch_first = -1;
	p->next_offset = 0;
	memset(&p->snap_sum, 0, sizeof(p->snap_sum));
	p->resnap = false;
	p->ck_next = -1;
	p->own_seal_end = -1;
	cp_archived_reset(p);
}

int cp_restore(cp *c, const int32_t *ps, int n, char *errstr, size_t errstr_size)
{
	int64_t t0 = cp_mono_us();
	restore_ctx x = {.c = c, .t0_us = t0, .last_progress_us = t0};
	rd_part *rp = calloc((size_t)(n + c->rules_parts) + 1, sizeof(*rp));
	if (!rp)
		return fail(errstr, errstr_size, "out of memory");
	msgpack_zone_init(&x.z, 1 << 16);
	msgpack_zone_init(&x.z2, 1 << 16);
	x.rules = bk_ruleset_new();
	x.trust = bk_trust_new(c->wkr, false, c->nparts, on_release, on_seal, on_bad_seal, &x);
	int rc = -1;
	if (!x.rules || !x.trust) {
		fail(errstr, errstr_size, "out of memory");
		goto done;
	}
	for (int i = 0; i < n; i++) {
		cp_part *p = &c->parts[ps[i]];
		cp_part_reset(p);
		if (!(p->eng = bk_engine_new())) {
			fail(errstr, errstr_size, "out of memory");
			goto done;
		}
		/* the results partitions' ends: the base of this writer's results seals */
		int64_t lo, hi;
		if (bk_kconf_watermarks(c->reader, c->topic[BK_TOPIC_RESULTS], ps[i],
					c->o.timeout_ms, &lo, &hi, errstr, errstr_size) < 0)
			goto done;
		p->base_results = hi;
	}
	/* phase 1: every rules partition */
	int k = 0;
	for (int i = 0; i < c->rules_parts; i++)
		rp[k++] = (rd_part){.kind = PH_RULES, .partition = i};
	if (read_to_end(&x, rp, k, errstr, errstr_size) < 0)
		goto done;
	if (c->rules_rd)
		follow_from(c, rp, k);
	/* the fresh ruleset replaces the old one for every engine */
	for (int i = 0; i < c->nparts; i++)
		if (c->parts[i].eng)
			bk_engine_share_rules(c->parts[i].eng, x.rules);
	bk_ruleset_free(c->rules);
	c->rules = x.rules;
	x.rules = NULL;
	/* phase 2: snapshots (issue #11): each partition's last valid checkpoint, whose
	 * snapshots are the engine's start and whose E is where its events are read from */
	k = 0;
	for (int i = 0; i < n; i++)
		rp[k++] = (rd_part){.kind = PH_EVENTS, .partition = ps[i]};
	if (c->o.snapshot_interval_ms > 0) {
		rd_part *sr = calloc((size_t)n + 1, sizeof(*sr));
		x.sp = calloc((size_t)c->nparts, sizeof(*x.sp));
		if (!sr || !x.sp) {
			free(sr);
			fail(errstr, errstr_size, "out of memory");
			goto done;
		}
		for (int i = 0; i < n; i++)
			sr[i] = (rd_part){.kind = PH_SNAPS, .partition = ps[i]};
		int r = read_to_end(&x, sr, n, errstr, errstr_size);
		free(sr);
		if (r < 0 || snap_decide(&x, rp, n, errstr, errstr_size) < 0)
			goto done;
	}
	/* phase 3: events, through the seal rule */
	if (read_to_end(&x, rp, k, errstr, errstr_size) < 0)
		goto done;
	bk_trust_flush(x.trust, -1);
	/* an event after a checkpoint that did not follow its snapshot: those partitions
	 * are read again from offset 0, with fresh seal buffers */
	k = 0;
	for (int i = 0; i < n; i++) {
		snap_part *sp = x.sp ? &x.sp[ps[i]] : NULL;
		if (!sp || !sp->mismatch)
			continue;
		cp_part *p = &c->parts[ps[i]];
		x.n_fallbacks++;
		bk_logf(BK_LOG_WARN,
			"an event after the checkpoint does not follow its snapshot: the "
			"partition is read from offset 0",
			"topic=%s partition=%d checkpoint_events_offset=%lld",
			c->topic[BK_TOPIC_EVENTS], (int)ps[i], (long long)sp->ck.events_offset);
		sp->from_snap = sp->mismatch = false;
		p->resnap = true;
		p->next_offset = 0;
		p->last_seal = -1;
		p->last_event = -1;
		if (fresh_engine(c, ps[i]) < 0) {
			fail(errstr, errstr_size, "out of memory");
			goto done;
		}
		rp[k++] = (rd_part){.kind = PH_EVENTS, .partition = ps[i]};
	}
	if (k > 0) {
		bk_trust_free(x.trust);
		x.trust =
		    bk_trust_new(c->wkr, false, c->nparts, on_release, on_seal, on_bad_seal, &x);
		if (!x.trust) {
			fail(errstr, errstr_size, "out of memory");
			goto done;
		}
		if (read_to_end(&x, rp, k, errstr, errstr_size) < 0)
			goto done;
		bk_trust_flush(x.trust, -1);
	}
	for (int i = 0; i < n; i++) {
		cp_part *p = &c->parts[ps[i]];
		if (!x.sp || !x.sp[ps[i]].from_snap)
			p->ck_next = -1; /* nothing on the log stands for it: checkpoint soon */
		cp_snap_sum_rebuild(p);
		if (c->o.snapshot_interval_ms > 0) {
			/* from a checkpoint: what the events after E archived; else the next
			 * archived record lists every archived order */
			p->arch_full = !x.sp || !x.sp[ps[i]].from_snap;
			cp_archived_take(p, false);
			bk_engine_track_archives(p->eng, true);
		}
	}
	for (int i = 0; i < n; i++) {
		cp_part *p = &c->parts[ps[i]];
		p->restored = true;
		bk_logf(BK_LOG_DEBUG, "partition restored",
			"topic=%s partition=%d orders=%zu archived=%zu last_seal_offset=%lld "
			"last_event_src_offset=%lld resume_offset=%lld from_checkpoint=%d "
			"events_from=%lld",
			c->topic[BK_TOPIC_COMMANDS], (int)ps[i], bk_engine_count(p->eng),
			bk_engine_archived_count(p->eng), (long long)p->last_seal,
			(long long)p->last_event, (long long)p->next_offset,
			x.sp && x.sp[ps[i]].from_snap,
			x.sp && x.sp[ps[i]].from_snap ? (long long)x.sp[ps[i]].ck.events_offset
						      : 0LL);
	}
	size_t live = 0, archived = 0;
	unsigned long long arch_records = 0;
	for (int i = 0; i < n; i++) {
		live += bk_engine_count(c->parts[ps[i]].eng);
		archived += bk_engine_archived_count(c->parts[ps[i]].eng);
		if (x.sp)
			arch_records += x.sp[ps[i]].archived_records;
	}
	bk_logf(BK_LOG_INFO, "restore finished",
		"partitions=%d records=%llu applied_events=%llu seals=%llu bad_seals=%llu "
		"unsealed_records=%llu reported_events=%llu forks=%llu bad_hash=%llu "
		"bad_link=%llu garbage=%llu bad=%llu rules_profiles=%zu snapshot_records=%llu "
		"snapshots_loaded=%llu snapshots_refused=%llu snapshot_fallbacks=%llu "
		"archived_records=%llu orders=%zu archived=%zu ms=%lld",
		n, (unsigned long long)x.n_records, (unsigned long long)x.n_applied,
		(unsigned long long)x.n_seals, (unsigned long long)x.n_bad_seals,
		(unsigned long long)x.n_unsealed, (unsigned long long)x.n_reported,
		(unsigned long long)x.n_verdict[BK_CHAIN_FORK],
		(unsigned long long)x.n_verdict[BK_CHAIN_BAD_HASH],
		(unsigned long long)x.n_verdict[BK_CHAIN_BAD_LINK],
		(unsigned long long)x.n_verdict[BK_CHAIN_GARBAGE], (unsigned long long)x.n_bad,
		bk_ruleset_count(c->rules), (unsigned long long)x.n_snap_records,
		(unsigned long long)x.n_snap_loaded, (unsigned long long)x.n_snap_bad,
		(unsigned long long)x.n_fallbacks, (unsigned long long)arch_records, live, archived,
		(long long)((cp_mono_us() - t0) / 1000));
	c->n_restore_forks += x.n_verdict[BK_CHAIN_FORK];
	c->n_restore_invalid += x.n_verdict[BK_CHAIN_BAD_HASH] + x.n_verdict[BK_CHAIN_BAD_LINK] +
				x.n_verdict[BK_CHAIN_GARBAGE] + x.n_bad_seals + x.n_bad;
	rc = 0;
done:
	bk_trust_flush(x.trust, -1); /* (already empty on success) frees kept messages */
	if (rc < 0)
		for (int i = 0; i < n; i++)
			cp_part_reset(&c->parts[ps[i]]);
	bk_trust_free(x.trust);
	if (x.sp)
		for (int i = 0; i < c->nparts; i++) {
			snap_drop_pending(&x.sp[i]);
			free(x.sp[i].pending);
		}
	free(x.sp);
	bk_ruleset_free(x.rules);
	msgpack_zone_destroy(&x.z);
	msgpack_zone_destroy(&x.z2);
	free(rp);
	return rc;
}
