/*
 * snapshot.c - checkpoints: the changed orders' snapshots and a checkpoint record per
 * partition on booking.snapshots (docs/design.md, "Snapshots and archiving"). Written
 * between batches, so every engine holds exactly the state after the last sealed batch.
 * A checkpoint record is signed with the writer key, as rules records are (lib/trust),
 * and its set digest covers every byte of the partition's latest snapshots (the topic
 * is compacted, so a seal listing offsets would not do; one signature per snapshot cost
 * an Ed25519 check per snapshot at every restore). The restore (restore.c) trusts
 * nothing here that the log does not confirm.
 */
#include <stdlib.h>
#include <string.h>

#include "cp.h"
#include "log.h"
#include "trust.h"

static void sum_order(bk_order *o, void *opaque)
{
	if (o->snap_version > 0)
		bk_snap_sum_add(opaque, o->snap_hash, 1);
}

void cp_seal_acked(cp *c, const rd_kafka_message_t *m)
{
	if (m->key_len != strlen(BK_SEAL_KEY) || memcmp(m->key, BK_SEAL_KEY, m->key_len) != 0 ||
	    m->partition < 0 || m->partition >= c->nparts || !bk_trust_is_seal(m) ||
	    strcmp(rd_kafka_topic_name(m->rkt), c->topic[BK_TOPIC_EVENTS]) != 0)
		return;
	if (m->offset + 1 > c->parts[m->partition].own_seal_end)
		c->parts[m->partition].own_seal_end = m->offset + 1;
}

typedef struct arch_take {
	cp_part *pt;
	bool live;
	bool oom;
} arch_take;

static void take_one(const bk_archived_order *a, void *opaque)
{
	arch_take *t = opaque;
	if (a->had_snap) {
		if (t->live)
			bk_snap_sum_add(&t->pt->snap_sum, a->snap_hash, -1);
		if (msgpack_sbuffer_write(&t->pt->tomb, a->order_id, strlen(a->order_id) + 1) != 0)
			t->oom = true;
	}
	if (!t->pt->arch_full && bk_idset_add(&t->pt->arch_new, a->fp) < 0)
		t->oom = true;
}

void cp_archived_take(cp_part *p, bool live)
{
	if (!p->eng)
		return;
	arch_take t = {.pt = p, .live = live};
	bk_engine_archived_take(p->eng, take_one, &t);
	if (t.oom) { /* a full record and every order again put it right */
		bk_logf(BK_LOG_WARN,
			"out of memory noting archived orders: the next checkpoint "
			"lists every archived order",
			"archived=%zu", bk_engine_archived_count(p->eng));
		p->arch_full = true;
		p->resnap = true;
	}
	if (p->arch_full)
		bk_idset_clear(&p->arch_new);
}

void cp_archived_reset(cp_part *p)
{
	bk_idset_clear(&p->arch_new);
	msgpack_sbuffer_destroy(&p->tomb);
	memset(&p->tomb, 0, sizeof(p->tomb));
	memset(&p->arch_sum, 0, sizeof(p->arch_sum));
	memset(&p->arch_sum_next, 0, sizeof(p->arch_sum_next));
	p->arch_full = false;
}

void cp_snap_sum_rebuild(cp_part *p)
{
	memset(&p->snap_sum, 0, sizeof(p->snap_sum));
	if (p->eng)
		bk_engine_each(p->eng, sum_order, &p->snap_sum);
}

/* Produce one record on the snapshots topic (value copied), signed with the writer key
 * when `sign` (checkpoints; a snapshot is covered by its checkpoint's digest). 0 or -1. */
static int produce_snap(cp *c, int32_t p, const char *key, const void *val, size_t vlen, bool sign)
{
	uint8_t sig[BK_SIG_LEN];
	size_t klen = strlen(key);
	if (sign)
		bk_trust_sign_rules(c->wsk, key, klen, val, vlen, sig);
	for (int tries = 0;; tries++) {
		rd_kafka_headers_t *h = NULL;
		if (sign) {
			h = rd_kafka_headers_new(2);
			rd_kafka_header_add(h, "key-id", -1, c->wkid, -1);
			rd_kafka_header_add(h, "signature", -1, sig, BK_SIG_LEN);
		}
		rd_kafka_resp_err_t e = rd_kafka_producev(
		    c->producer, RD_KAFKA_V_TOPIC(c->topic[BK_TOPIC_SNAPSHOTS]),
		    RD_KAFKA_V_PARTITION(p), RD_KAFKA_V_KEY(key, klen),
		    RD_KAFKA_V_VALUE((void *)(uintptr_t)val, vlen),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
		    RD_KAFKA_V_OPAQUE(NULL), RD_KAFKA_V_END);
		if (!e)
			return 0;
		if (h)
			rd_kafka_headers_destroy(h);
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && tries < 600) {
			rd_kafka_poll(c->producer, 50);
			continue;
		}
		bk_logf(BK_LOG_ERROR, "snapshot produce failed", "topic=%s partition=%d err=\"%s\"",
			c->topic[BK_TOPIC_SNAPSHOTS], (int)p, rd_kafka_err2str(e));
		return -1;
	}
}

typedef struct ck_part {
	cp *c;
	cp_part *pt;
	int32_t p;
	int64_t events_end; /* E */
	uint64_t written;
	int rc;
} ck_part;

static void write_order(bk_order *o, void *opaque)
{
	ck_part *x = opaque;
	if (x->rc < 0 || (!x->pt->resnap && o->snap_version == o->version))
		return;
	msgpack_sbuffer *sb = &x->c->enc;
	msgpack_sbuffer_clear(sb);
	if (bk_snap_encode(o, x->p, x->events_end, sb) < 0 ||
	    produce_snap(x->c, x->p, o->order_id, sb->data, sb->size, false) < 0) {
		x->rc = -1;
		return;
	}
	if (!x->pt->resnap && o->snap_version > 0)
		bk_snap_sum_add(&x->pt->snap_sum, o->snap_hash, -1);
	o->snap_version = o->version;
	bk_snap_hash(sb->data, sb->size, o->snap_hash);
	bk_snap_sum_add(&x->pt->snap_sum, o->snap_hash, 1);
	x->written++;
}

typedef struct fp_vec {
	uint64_t *v;
	size_t n;
	bk_snap_sum *sum;
} fp_vec;

static void fp_collect(uint64_t fp, void *opaque)
{
	fp_vec *f = opaque;
	f->v[f->n++] = fp;
	bk_snap_sum_add_fp(f->sum, fp);
}

/* The tombstones of the archived orders that had a snapshot, and the archived record
 * (key "archived:<E>": what was archived since the last checkpoint, or everything when
 * arch_full); pt->arch_sum_next gets the digest the checkpoint names. 0 or -1. */
static int write_archived(ck_part *x)
{
	cp_part *pt = x->pt;
	for (size_t i = 0; i < pt->tomb.size;) {
		const char *id = pt->tomb.data + i;
		if (produce_snap(x->c, x->p, id, NULL, 0, false) < 0)
			return -1;
		i += strlen(id) + 1;
	}
	if (pt->arch_full)
		memset(&pt->arch_sum_next, 0, sizeof(pt->arch_sum_next));
	else
		pt->arch_sum_next = pt->arch_sum;
	const bk_idset *src = &pt->arch_new;
	size_t n = pt->arch_full ? bk_engine_archived_count(pt->eng) : src->n;
	if (n == 0 && !pt->arch_full)
		return 0;
	fp_vec f = {.v = malloc((n + 1) * sizeof(uint64_t)), .sum = &pt->arch_sum_next};
	if (!f.v)
		return -1;
	if (pt->arch_full)
		bk_engine_archived_foreach(pt->eng, fp_collect, &f);
	else
		for (uint32_t i = 0; i < src->cap; i++)
			if (src->slots[i])
				fp_collect(src->slots[i], &f);
	char key[64];
	snprintf(key, sizeof(key), "%s%lld", BK_SNAP_ARCHIVED_KEY, (long long)x->events_end);
	msgpack_sbuffer *sb = &x->c->enc;
	msgpack_sbuffer_clear(sb);
	int rc = bk_snap_archived_encode(x->p, x->events_end, pt->arch_full, f.v, f.n, sb) < 0 ||
			 produce_snap(x->c, x->p, key, sb->data, sb->size, false) < 0
		     ? -1
		     : 0;
	free(f.v);
	return rc;
}

static void count_dirty(bk_order *o, void *opaque)
{
	if (o->snap_version != o->version)
		(*(uint64_t *)opaque)++;
}

int cp_checkpoint(cp *c)
{
	if (c->txn_open || c->rerestore || !cp_sure_owner(c))
		return 0;
	int64_t t0 = cp_mono_us();
	int32_t *todo = calloc((size_t)c->nparts + 1, sizeof(*todo));
	if (!todo)
		return 0;
	int n = 0;
	for (int32_t p = 0; p < c->nparts; p++) {
		cp_part *pt = &c->parts[p];
		if (!pt->assigned || !pt->restored || !pt->eng)
			continue;
		cp_archived_take(pt, true);
		uint64_t dirty = 0;
		bk_engine_each(pt->eng, count_dirty, &dirty);
		if (dirty > 0 || pt->resnap || pt->next_offset != pt->ck_next || pt->arch_full ||
		    pt->arch_new.n > 0 || pt->tomb.size > 0)
			todo[n++] = p;
	}
	if (n == 0) {
		free(todo);
		return 0;
	}
	/* E: after this instance's last events seal on the partition, or where its restore
	 * ended (base_events) when it sealed nothing since. Not the partition's end: records
	 * of another writer after it (a zombie, the next owner) are not in this engine, and
	 * a restore from this checkpoint must read them. */
	int64_t *ends = calloc((size_t)n, sizeof(*ends));
	int rc = 0;
	if (!ends) {
		free(todo);
		return 0;
	}
	for (int i = 0; i < n; i++) {
		const cp_part *pt = &c->parts[todo[i]];
		ends[i] = pt->own_seal_end > pt->base_events ? pt->own_seal_end : pt->base_events;
		if (ends[i] < 0)
			ends[i] = 0;
	}
	if (!c->o.no_txn) {
		rd_kafka_error_t *e = rd_kafka_begin_transaction(c->producer);
		if (e) {
			bk_logf(BK_LOG_ERROR, "begin_transaction failed", "err=\"%s\" fatal=%d",
				rd_kafka_error_string(e), rd_kafka_error_is_fatal(e));
			rd_kafka_error_destroy(e);
			free(ends);
			free(todo);
			cp_fatal(c, CP_EXIT_FATAL);
			return -1;
		}
	}
	c->dr_err = RD_KAFKA_RESP_ERR_NO_ERROR;
	uint64_t orders = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		cp_part *pt = &c->parts[todo[i]];
		ck_part x = {.c = c, .pt = pt, .p = todo[i], .events_end = ends[i]};
		if (pt->resnap)
			memset(&pt->snap_sum, 0, sizeof(pt->snap_sum));
		bk_engine_each(pt->eng, write_order, &x);
		orders += x.written;
		rc = x.rc;
		if (rc == 0)
			rc = write_archived(&x);
		/* the snapshots first (no-txn: acknowledged), then the checkpoint naming them */
		if (rc == 0 && c->o.no_txn &&
		    (rd_kafka_flush(c->producer, c->o.timeout_ms) || c->dr_err))
			rc = -1;
		bk_checkpoint ck = {.partition = todo[i],
				    .events_offset = ends[i],
				    .src_next = pt->next_offset,
				    .sum = pt->snap_sum,
				    .written_at = cp_now_us(c),
				    .archived = pt->arch_sum_next};
		msgpack_sbuffer_clear(&c->enc);
		if (rc == 0 && (bk_snap_checkpoint_encode(&ck, &c->enc) < 0 ||
				produce_snap(c, todo[i], BK_SNAP_CHECKPOINT_KEY, c->enc.data,
					     c->enc.size, true) < 0))
			rc = -1;
	}
	if (c->o.no_txn) {
		if (rc == 0 && (rd_kafka_flush(c->producer, c->o.timeout_ms) || c->dr_err))
			rc = -1;
	} else {
		rd_kafka_error_t *e =
		    rc == 0 && !c->dr_err
			? rd_kafka_commit_transaction(c->producer, c->o.timeout_ms)
			: NULL;
		if (e || rc < 0 || c->dr_err) {
			if (e) {
				bk_logf(BK_LOG_WARN, "checkpoint commit failed", "err=\"%s\"",
					rd_kafka_error_string(e));
				bool fatal = rd_kafka_error_is_fatal(e);
				rd_kafka_error_destroy(e);
				if (fatal) {
					free(ends);
					free(todo);
					cp_fatal(c, CP_EXIT_FATAL);
					return -1;
				}
			}
			rc = -1;
			rd_kafka_error_t *a =
			    rd_kafka_abort_transaction(c->producer, c->o.timeout_ms);
			if (a) {
				bk_logf(BK_LOG_ERROR, "abort_transaction failed", "err=\"%s\"",
					rd_kafka_error_string(a));
				rd_kafka_error_destroy(a);
				free(ends);
				free(todo);
				cp_fatal(c, CP_EXIT_FATAL);
				return -1;
			}
		}
	}
	c->dr_err = RD_KAFKA_RESP_ERR_NO_ERROR;
	for (int i = 0; i < n; i++) {
		cp_part *pt = &c->parts[todo[i]];
		if (rc < 0) {
			pt->resnap = true; /* the log holds who knows which of them: all again */
		} else {
			pt->resnap = false;
			pt->ck_next = pt->next_offset;
			pt->arch_sum = pt->arch_sum_next;
			pt->arch_full = false;
			bk_idset_clear(&pt->arch_new);
			msgpack_sbuffer_clear(&pt->tomb);
		}
	}
	bk_logf(rc < 0 ? BK_LOG_WARN : BK_LOG_DEBUG,
		rc < 0 ? "checkpoint failed: the next one writes every order"
		       : "checkpoint written",
		"partitions=%d snapshots=%llu ms=%lld", n, (unsigned long long)orders,
		(long long)((cp_mono_us() - t0) / 1000));
	c->n_checkpoints += rc == 0;
	free(ends);
	free(todo);
	return 0;
}
