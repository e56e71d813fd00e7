/*
 * bk_engine.c - orders by id (open addressing over owned aggregates) and the ruleset,
 * with command handling and record reading on top of bk_decide / bk_evolve / bk_chain.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_archive.h"
#include "bk_engine.h"
#include "bk_seal.h"

struct bk_engine {
	bk_order **slots;
	uint32_t n, cap;
	bk_ruleset *own_rules;
	bk_ruleset *rules; /* own_rules or a shared set */
	/* decide's scratch when the caller gives none: reused, not allocated per command */
	msgpack_sbuffer scratch;
	bool no_hash_check;	 /* bk_engine_check_hashes(e, false): measuring only */
	bk_idset archived;	 /* fingerprints of archived orders' ids */
	bool track;		 /* bk_engine_track_archives: keep `gone` for the snapshot writer */
	bk_archived_order *gone; /* archived since the last bk_engine_archived_take */
	uint32_t n_gone, cap_gone;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return h;
}

bk_engine *bk_engine_new(void)
{
	bk_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->cap = 1024;
	msgpack_sbuffer_init(&e->scratch);
	e->slots = calloc(e->cap, sizeof(*e->slots));
	e->rules = e->own_rules = bk_ruleset_new();
	if (!e->slots || !e->rules) {
		bk_engine_free(e);
		return NULL;
	}
	return e;
}

void bk_engine_free(bk_engine *e)
{
	if (!e)
		return;
	if (e->slots)
		for (uint32_t i = 0; i < e->cap; i++)
			bk_order_free(e->slots[i]);
	free(e->slots);
	bk_ruleset_free(e->own_rules);
	msgpack_sbuffer_destroy(&e->scratch);
	bk_idset_clear(&e->archived);
	free(e->gone);
	free(e);
}

static uint32_t slot_of(const bk_engine *e, const char *id)
{
	uint32_t mask = e->cap - 1, i = (uint32_t)hash_str(id) & mask;
	while (e->slots[i] && strcmp(e->slots[i]->order_id, id) != 0)
		i = (i + 1) & mask;
	return i;
}

const bk_order *bk_engine_order(const bk_engine *e, const char *order_id)
{
	return e->slots[slot_of(e, order_id)];
}

size_t bk_engine_count(const bk_engine *e)
{
	return e->n;
}

void bk_engine_foreach(const bk_engine *e, void (*fn)(const bk_order *o, void *opaque),
		       void *opaque)
{
	for (uint32_t i = 0; i < e->cap; i++)
		if (e->slots[i])
			fn(e->slots[i], opaque);
}

void bk_engine_each(bk_engine *e, void (*fn)(bk_order *o, void *opaque), void *opaque)
{
	for (uint32_t i = 0; i < e->cap; i++)
		if (e->slots[i])
			fn(e->slots[i], opaque);
}

bk_ruleset *bk_engine_rules(bk_engine *e)
{
	return e->rules;
}

void bk_engine_share_rules(bk_engine *e, bk_ruleset *shared)
{
	e->rules = shared ? shared : e->own_rules;
}

void bk_engine_drop(bk_engine *e, const char *order_id)
{
	uint32_t i = slot_of(e, order_id), mask = e->cap - 1;
	if (!e->slots[i])
		return;
	bk_order_free(e->slots[i]);
	e->slots[i] = NULL;
	e->n--;
	for (uint32_t j = (i + 1) & mask; e->slots[j]; j = (j + 1) & mask) {
		bk_order *o = e->slots[j];
		e->slots[j] = NULL;
		e->slots[slot_of(e, o->order_id)] = o;
	}
}

/* The order's slot, created empty (not yet in the table) when missing. */
static bk_order *order_for(bk_engine *e, const char *id, bool *ret_new)
{
	*ret_new = false;
	bk_order *o = e->slots[slot_of(e, id)];
	if (o)
		return o;
	*ret_new = true;
	return bk_order_new(id);
}

static int grow(bk_engine *e, uint32_t cap)
{
	bk_order **slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -1;
	bk_engine old = *e;
	e->slots = slots;
	e->cap = cap;
	for (uint32_t i = 0; i < old.cap; i++)
		if (old.slots[i])
			e->slots[slot_of(e, old.slots[i]->order_id)] = old.slots[i];
	free(old.slots);
	return 0;
}

int bk_engine_reserve(bk_engine *e, size_t n)
{
	uint64_t cap = e->cap;
	while ((n + 1) * 2 > cap && cap < (UINT64_C(1) << 31))
		cap *= 2;
	return cap > e->cap ? grow(e, (uint32_t)cap) : 0;
}

static int insert(bk_engine *e, bk_order *o)
{
	if ((e->n + 1) * 2 > e->cap) {
		if (grow(e, e->cap * 2) < 0)
			return -1;
	}
	e->slots[slot_of(e, o->order_id)] = o;
	e->n++;
	return 0;
}

int bk_engine_put(bk_engine *e, bk_order *o)
{
	uint32_t i = slot_of(e, o->order_id);
	if (e->slots[i]) {
		bk_order_free(e->slots[i]);
		e->slots[i] = o;
		return 0;
	}
	if (insert(e, o) < 0) {
		bk_order_free(o);
		return -1;
	}
	return 0;
}

bool bk_engine_archived(const bk_engine *e, const char *order_id)
{
	return bk_idset_has(&e->archived, bk_archive_fp(order_id, strlen(order_id)));
}

size_t bk_engine_archived_count(const bk_engine *e)
{
	return e->archived.n;
}

int bk_engine_archived_put(bk_engine *e, uint64_t fp)
{
	return bk_idset_add(&e->archived, fp);
}

void bk_engine_archived_reset(bk_engine *e)
{
	bk_idset_clear(&e->archived);
}

void bk_engine_archived_foreach(const bk_engine *e, void (*fn)(uint64_t fp, void *opaque),
				void *opaque)
{
	for (uint32_t i = 0; i < e->archived.cap; i++)
		if (e->archived.slots[i])
			fn(e->archived.slots[i], opaque);
}

void bk_engine_track_archives(bk_engine *e, bool on)
{
	e->track = on;
	if (!on)
		e->n_gone = 0;
}

void bk_engine_archived_take(bk_engine *e, void (*fn)(const bk_archived_order *a, void *opaque),
			     void *opaque)
{
	for (uint32_t i = 0; i < e->n_gone; i++)
		fn(&e->gone[i], opaque);
	e->n_gone = 0;
}

/* order.archived was applied to o: keep its fingerprint (and what the snapshot writer
 * needs), then let it go. 0, or -1 on OOM (o stays). */
static int let_go(bk_engine *e, bk_order *o, bool is_new)
{
	uint64_t fp = bk_archive_fp(o->order_id, strlen(o->order_id));
	if (e->track && e->n_gone == e->cap_gone) {
		uint32_t cap = e->cap_gone ? e->cap_gone * 2 : 64;
		bk_archived_order *v = realloc(e->gone, cap * sizeof(*v));
		if (!v)
			return -1;
		e->gone = v;
		e->cap_gone = cap;
	}
	if (bk_idset_add(&e->archived, fp) < 0)
		return -1;
	if (e->track) {
		bk_archived_order *a = &e->gone[e->n_gone++];
		memset(a, 0, sizeof(*a));
		a->fp = fp;
		a->had_snap = o->snap_version > 0;
		memcpy(a->order_id, o->order_id, sizeof(a->order_id));
		memcpy(a->snap_hash, o->snap_hash, BK_HASH_LEN);
	}
	if (is_new)
		bk_order_free(o);
	else
		bk_engine_drop(e, o->order_id);
	return 0;
}

/* Evolve events into their order; a new order joins the table after its first event, an
 * archived one leaves it. */
static int apply_events(bk_engine *e, const bk_event *evs, uint32_t n, char *err, size_t errsz)
{
	if (n == 0)
		return 0;
	bool is_new;
	bk_order *o = order_for(e, evs[0].order_id, &is_new);
	if (!o) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	for (uint32_t i = 0; i < n; i++)
		if (bk_evolve(o, &evs[i], err, errsz) < 0) {
			if (is_new)
				bk_order_free(o);
			return -1;
		}
	if (o->archived) {
		if (let_go(e, o, is_new) == 0)
			return 0;
		if (is_new)
			bk_order_free(o);
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	if (is_new && insert(e, o) < 0) {
		bk_order_free(o);
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	return 0;
}

int bk_engine_handle(bk_engine *e, const bk_command *c, const bk_decide_ctx *ctx, msgpack_zone *z,
		     bk_decision *ret)
{
	bk_decide_ctx dc = *ctx;
	dc.rules = e->rules;
	if (dc.scratch == NULL)
		dc.scratch = &e->scratch;
	bool profile = c->type == BK_CMD_AUTOACCEPT_SET || c->type == BK_CMD_AUTOACCEPT_DELETE;
	const bk_order *o = profile ? NULL : bk_engine_order(e, c->order_id);
	if (!o && c->type < BK_CMD__COUNT && !bk_cmd_is_profile((bk_cmd_type)c->type) &&
	    c->order_id && bk_engine_archived(e, c->order_id)) {
		/* the engine no longer holds the order: it answers for it (decide cannot) */
		memset(ret, 0, sizeof(*ret));
		ret->outcome = BK_REJECTED;
		ret->code = BK_E_ARCHIVED;
		snprintf(ret->message, sizeof(ret->message),
			 "order %s was archived: its window for commands and command ids has ended",
			 c->order_id);
		return 0;
	}
	if (bk_decide(o, c, &dc, z, ret) < 0)
		return -1;
	char err[200];
	if (apply_events(e, ret->events, ret->n_events, err, sizeof(err)) < 0) {
		snprintf(ret->message, sizeof(ret->message), "internal: evolve: %s", err);
		return -1;
	}
	if (ret->has_rules && ret->outcome == BK_ACCEPTED &&
	    bk_ruleset_put(e->rules, &ret->rules) < 0) {
		snprintf(ret->message, sizeof(ret->message), "out of memory");
		return -1;
	}
	return 0;
}

static int hash_at(void *opaque, int64_t seq, uint8_t ret_hash[BK_HASH_LEN])
{
	const bk_order *o = opaque;
	if (seq < 1 || seq > o->version)
		return -1;
	memcpy(ret_hash, o->hashes[seq - 1], BK_HASH_LEN);
	return 0;
}

void bk_engine_check_hashes(bk_engine *e, bool on)
{
	if (e)
		e->no_hash_check = !on;
}

int bk_engine_read(bk_engine *e, const bk_record *r, bk_chain_verdict *ret_verdicts, char *err,
		   size_t errsz)
{
	for (uint32_t i = 0; i < r->n; i++) {
		const bk_event *ev = &r->events[i];
		const bk_order *o = bk_engine_order(e, ev->order_id);
		static const uint8_t zero[BK_HASH_LEN];
		bk_chain_verdict v;
		if (!e->no_hash_check && !bk_seal_hash_ok(ev, &e->scratch))
			v = BK_CHAIN_BAD_HASH;
		else if (!o && bk_engine_archived(e, ev->order_id))
			v = BK_CHAIN_BAD_LINK; /* its chain ended with order.archived */
		else
			v = bk_chain_classify(o ? o->version : 0, o ? bk_order_last_hash(o) : zero,
					      ev->seq, ev->prev_hash, ev->hash, o ? hash_at : NULL,
					      (void *)o);
		if (ret_verdicts)
			ret_verdicts[i] = v;
		if (v == BK_CHAIN_NEXT && apply_events(e, ev, 1, err, errsz) < 0)
			return -1;
	}
	return 0;
}
