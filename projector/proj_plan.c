/*
 * proj_plan.c - the projection's planning (proj_plan.h): items of records, the reader
 * rule per order, the mapping of the next valid events, the quarantine rules.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_seal.h"
#include "proj_plan.h"

const char pp_held_reason[] = "held: an earlier event of the order is quarantined";

void pp_init(pp_plan *pl)
{
	memset(pl, 0, sizeof(*pl));
	msgpack_sbuffer_init(&pl->sb);
}

void pp_free(pp_plan *pl)
{
	if (!pl)
		return;
	free(pl->items);
	msgpack_sbuffer_destroy(&pl->sb);
	memset(pl, 0, sizeof(*pl));
}

void pp_clear(pp_plan *pl)
{
	pl->n = 0;
}

static pp_item *item_add(pp_plan *pl)
{
	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? pl->cap * 2 : 1024;
		pp_item *v = realloc(pl->items, cap * sizeof(*v));
		if (!v)
			return NULL;
		pl->items = v;
		pl->cap = cap;
	}
	pp_item *it = &pl->items[pl->n++];
	memset(it, 0, offsetof(pp_item, reason));
	it->reason[0] = 0;
	return it;
}

static void reject(pp_item *it, bk_chain_verdict v, const char *fmt, const char *arg)
{
	it->pre_bad = true;
	it->verdict = (uint8_t)v;
	snprintf(it->reason, sizeof(it->reason), fmt, arg);
}

long pp_add_record(pp_plan *pl, const bk_record *rec, const char *why, pp_seal seal,
		   const uint8_t *hash_bad, pp_order *(*o_of)(void *ctx, const char *order_id),
		   void *ctx, const char *key)
{
	long first = (long)pl->n;
	if (seal == PP_BAD_SEAL || !rec || rec->n == 0) {
		pp_item *it = item_add(pl);
		if (!it)
			return -1;
		it->o = o_of(ctx, key && *key ? key : "(no key)");
		if (seal == PP_BAD_SEAL)
			reject(it, BK_CHAIN_GARBAGE, "undecodable record: %s",
			       "a seal record that does not check");
		else
			reject(it, BK_CHAIN_GARBAGE, "undecodable record: %s",
			       rec   ? "no events"
			       : why ? why
				     : "?");
		return first;
	}
	for (uint32_t i = 0; i < rec->n; i++) {
		pp_item *it = item_add(pl);
		if (!it)
			return -1;
		it->e = &rec->events[i];
		it->o = o_of(ctx, it->e->order_id);
		if (seal == PP_UNSEALED)
			reject(it, BK_CHAIN_UNSEALED, "%s",
			       "unsealed: no valid seal covers the record");
		else if (hash_bad ? hash_bad[i] : !bk_seal_hash_ok(it->e, &pl->sb))
			reject(it, BK_CHAIN_BAD_HASH, "event %s: hash does not match its content",
			       it->e->event_id);
	}
	return first;
}

void pp_quarantine(pp_plan *pl, size_t i, const char *why)
{
	pp_item *it = &pl->items[i];
	it->action = PP_QUAR;
	if (why && why != it->reason)
		snprintf(it->reason, sizeof(it->reason), "%s", why);
	if (it->o)
		it->o->quar = true;
}

typedef struct lookup {
	const pp_ops *ops;
	pp_order *o;
	bool failed;
	char *err;
	size_t errsz;
} lookup;

static int known_hash_at(void *opaque, int64_t seq, uint8_t ret[BK_HASH_LEN])
{
	lookup *l = opaque;
	int rc = l->ops->hash_at(l->ops->ctx, l->o, seq, ret, l->err, l->errsz);
	if (rc < 0)
		l->failed = true;
	return rc == 0 ? 0 : -1;
}

int pp_run(pp_plan *pl, pr_store *store, const pp_ops *ops, char *err, size_t errsz)
{
restart:
	pr_store_reset(store);
	for (size_t i = 0; i < pl->n; i++) {
		pp_order *o = pl->items[i].o;
		if (o) {
			o->b = o->c;
			o->quar = o->held;
			if (ops->reset)
				ops->reset(ops->ctx, o);
		}
	}
	/* an order being retried starts released; its own rows come first */
	for (size_t i = 0; i < pl->n; i++)
		if (pl->items[i].qid && pl->items[i].o)
			pl->items[i].o->quar = false;
	for (size_t i = 0; i < pl->n; i++) {
		pp_item *it = &pl->items[i];
		pp_order *o = it->o;
		if (o && o->quar) {
			it->action = PP_HELD;
			if (!it->pre_bad)
				snprintf(it->reason, sizeof(it->reason), "%s", pp_held_reason);
			continue;
		}
		/* a retried row that is still invalid, or an event that failed to apply */
		if (o && (it->apply_bad || (it->pre_bad && it->qid))) {
			pp_quarantine(pl, i, NULL);
			continue;
		}
		if (it->pre_bad || !o) { /* rejected alone: it takes no seq, holds nothing back */
			if (!it->pre_bad)
				reject(it, BK_CHAIN_GARBAGE, "%s",
				       "the record names no usable order");
			it->action = PP_REJECT;
			continue;
		}
		const bk_event *e = it->e;
		lookup l = {ops, o, false, err, errsz};
		bk_chain_verdict v = bk_chain_classify(o->b.seq, o->b.hash, e->seq, e->prev_hash,
						       e->hash, known_hash_at, &l);
		if (l.failed)
			return -1;
		switch (v) {
		case BK_CHAIN_NEXT: {
			char why[PP_REASON_MAX];
			if (pa_apply(store, e, &o->b.f, why, sizeof(why)) < 0) {
				it->apply_bad = true;
				snprintf(it->reason, sizeof(it->reason), "%s", why);
				goto restart;
			}
			o->b.seq = e->seq;
			memcpy(o->b.hash, e->hash, BK_HASH_LEN);
			if (ops->applied && ops->applied(ops->ctx, o, e) < 0) {
				snprintf(err, errsz, "out of memory");
				return -1;
			}
			it->action = PP_APPLY;
			break;
		}
		case BK_CHAIN_DUPLICATE:
			it->action = PP_DUP;
			break;
		case BK_CHAIN_FORK:
			it->action = PP_FORK;
			snprintf(it->reason, sizeof(it->reason),
				 "fork: seq %lld (order at %lld) with another hash or link",
				 (long long)e->seq, (long long)o->b.seq);
			break;
		case BK_CHAIN_BAD_LINK:
		case BK_CHAIN_BAD_HASH:
		case BK_CHAIN_UNSEALED:
		case BK_CHAIN_GARBAGE:
		case BK_CHAIN__COUNT:
			it->action = PP_REJECT;
			it->verdict = (uint8_t)(v == BK_CHAIN__COUNT ? BK_CHAIN_BAD_LINK : v);
			snprintf(it->reason, sizeof(it->reason),
				 "%s: seq %lld does not link to the order's last valid event "
				 "(seq %lld)",
				 bk_chain_verdict_name((bk_chain_verdict)it->verdict),
				 (long long)e->seq, (long long)o->b.seq);
			break;
		}
	}
	return 0;
}

void pp_commit(pp_plan *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		if (pl->items[i].o)
			pl->items[i].o->c = pl->items[i].o->b;
}

const char *pp_order_id(const pp_item *it)
{
	return it->o ? it->o->id : "(no key)";
}

int pp_item_bytes(const pp_item *it, msgpack_sbuffer *sb, const void **ret, size_t *ret_n)
{
	if (!it->e) {
		*ret = it->raw ? it->raw : "";
		*ret_n = it->raw_n;
		return 0;
	}
	bk_record r = {it->e->order_id, it->e->command_id, (bk_event *)it->e, 1};
	sb->size = 0;
	if (bk_codec_record_encode(&r, sb) < 0)
		return -1;
	*ret = sb->data;
	*ret_n = sb->size;
	return 0;
}
