/*
 * bk_model.c - the order aggregate's memory: creation, deep copy, release, lookups,
 * the seen-command set and money recomputation. Fields are assigned by bk_evolve only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_model.h"
#include "bk_money.h"

static const char *const li_names[BK_LI__COUNT] = {
    [BK_LI_PACKAGE] = "package", [BK_LI_EXTRA] = "extra",	    [BK_LI_TRAVEL] = "travel",
    [BK_LI_LICENSE] = "license", [BK_LI_ADJUSTMENT] = "adjustment", [BK_LI_REFUND] = "refund",
};
static const char *const rq_names[BK_RQ__COUNT] = {
    [BK_RQ_PENDING] = "pending",     [BK_RQ_ACCEPTED] = "accepted", [BK_RQ_DECLINED] = "declined",
    [BK_RQ_COUNTERED] = "countered", [BK_RQ_EXPIRED] = "expired",
};
static const char *const rc_names[BK_RC__COUNT] = {
    [BK_RC_NEW] = "new",
    [BK_RC_RESPONDED] = "responded",
    [BK_RC_AWARDED] = "awarded",
    [BK_RC_NOT_AWARDED] = "not_awarded",
};
static const char *const ds_names[BK_DS__COUNT] = {
    [BK_DS_OPEN] = "open",
    [BK_DS_AWAITING_EVIDENCE] = "awaiting_evidence",
    [BK_DS_UNDER_REVIEW] = "under_review",
    [BK_DS_RESOLVED_BUYER] = "resolved_buyer",
    [BK_DS_RESOLVED_PROVIDER] = "resolved_provider",
    [BK_DS_SPLIT] = "split",
    [BK_DS_CHARGEBACK] = "chargeback",
};

static int find(const char *const *tab, int count, const char *s, size_t n)
{
	for (int i = 0; i < count; i++)
		if (strlen(tab[i]) == n && memcmp(tab[i], s, n) == 0)
			return i;
	return -1;
}

const char *bk_li_kind_name(bk_li_kind k)
{
	return (unsigned)k < BK_LI__COUNT ? li_names[k] : "?";
}
int bk_li_kind_from(const char *s, size_t n)
{
	return find(li_names, BK_LI__COUNT, s, n);
}
const char *bk_req_status_name(bk_req_status s)
{
	return (unsigned)s < BK_RQ__COUNT ? rq_names[s] : "?";
}
const char *bk_rcp_status_name(bk_rcp_status s)
{
	return (unsigned)s < BK_RC__COUNT ? rc_names[s] : "?";
}
const char *bk_dsp_status_name(bk_dsp_status s)
{
	return (unsigned)s < BK_DS__COUNT ? ds_names[s] : "?";
}
int bk_dsp_status_from(const char *s, size_t n)
{
	return find(ds_names, BK_DS__COUNT, s, n);
}

bk_order *bk_order_new(const char *order_id)
{
	bk_order *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	snprintf(o->order_id, sizeof(o->order_id), "%s", order_id);
	o->start_ts = o->end_ts = INT64_MIN;
	return o;
}

static void items_free(bk_items *it)
{
	for (uint32_t i = 0; i < it->n; i++)
		free(it->v[i].title);
	free(it->v);
	memset(it, 0, sizeof(*it));
}

static bool items_copy(bk_items *dst, const bk_items *src)
{
	memset(dst, 0, sizeof(*dst));
	if (!src->n)
		return true;
	dst->v = calloc(src->n, sizeof(*dst->v));
	if (!dst->v)
		return false;
	dst->cap = src->n;
	for (uint32_t i = 0; i < src->n; i++) {
		dst->v[i] = src->v[i];
		dst->v[i].title = NULL;
		dst->n = i + 1;
		if (src->v[i].title && !(dst->v[i].title = strdup(src->v[i].title)))
			return false;
	}
	return true;
}

void bk_order_free(bk_order *o)
{
	if (!o)
		return;
	items_free(&o->items);
	free(o->location_address);
	for (uint32_t i = 0; i < o->n_reqs; i++)
		items_free(&o->reqs[i].offer);
	free(o->reqs);
	free(o->rcps);
	for (uint32_t i = 0; i < o->n_cards; i++) {
		items_free(&o->cards[i].items);
		free(o->cards[i].title);
	}
	free(o->cards);
	free(o->disputes);
	free(o->ms);
	free(o->seen.slots);
	free(o->hashes);
	free(o);
}

#define DUP_ARRAY(dst, src, field, nfield, capfield)                                               \
	do {                                                                                       \
		(dst)->field = NULL;                                                               \
		(dst)->capfield = 0;                                                               \
		if ((src)->nfield) {                                                               \
			(dst)->field = malloc(sizeof(*(src)->field) * (src)->nfield);              \
			if (!(dst)->field) {                                                       \
				(dst)->nfield = 0;                                                 \
				goto fail;                                                         \
			}                                                                          \
			memcpy((dst)->field, (src)->field, sizeof(*(src)->field) * (src)->nfield); \
			(dst)->capfield = (src)->nfield;                                           \
		}                                                                                  \
	} while (0)

bk_order *bk_order_clone(const bk_order *o)
{
	bk_order *c = malloc(sizeof(*c));
	if (!c)
		return NULL;
	*c = *o;
	/* detach every owned pointer first, so a failure part-way frees only what is ours */
	memset(&c->items, 0, sizeof(c->items));
	c->location_address = NULL;
	c->reqs = NULL, c->rcps = NULL, c->cards = NULL, c->disputes = NULL, c->ms = NULL;
	c->n_reqs = c->n_rcps = c->n_cards = c->n_disputes = c->n_ms = 0;
	memset(&c->seen, 0, sizeof(c->seen));
	c->hashes = NULL;
	c->cap_hashes = 0;

	if (!items_copy(&c->items, &o->items))
		goto fail;
	if (o->location_address && !(c->location_address = strdup(o->location_address)))
		goto fail;
	c->n_reqs = o->n_reqs;
	DUP_ARRAY(c, o, reqs, n_reqs, cap_reqs);
	for (uint32_t i = 0; i < c->n_reqs; i++)
		memset(&c->reqs[i].offer, 0, sizeof(c->reqs[i].offer));
	for (uint32_t i = 0; i < c->n_reqs; i++)
		if (!items_copy(&c->reqs[i].offer, &o->reqs[i].offer))
			goto fail;
	c->n_rcps = o->n_rcps;
	DUP_ARRAY(c, o, rcps, n_rcps, cap_rcps);
	c->n_cards = o->n_cards;
	DUP_ARRAY(c, o, cards, n_cards, cap_cards);
	for (uint32_t i = 0; i < c->n_cards; i++) {
		memset(&c->cards[i].items, 0, sizeof(c->cards[i].items));
		c->cards[i].title = NULL;
	}
	for (uint32_t i = 0; i < c->n_cards; i++) {
		if (!items_copy(&c->cards[i].items, &o->cards[i].items))
			goto fail;
		if (o->cards[i].title && !(c->cards[i].title = strdup(o->cards[i].title)))
			goto fail;
	}
	c->n_disputes = o->n_disputes;
	DUP_ARRAY(c, o, disputes, n_disputes, cap_disputes);
	c->n_ms = o->n_ms;
	DUP_ARRAY(c, o, ms, n_ms, cap_ms);
	if (o->seen.cap) {
		c->seen.slots = malloc(sizeof(uint64_t) * o->seen.cap);
		if (!c->seen.slots)
			goto fail;
		memcpy(c->seen.slots, o->seen.slots, sizeof(uint64_t) * o->seen.cap);
		c->seen = (bk_idset){c->seen.slots, o->seen.n, o->seen.cap};
	}
	if (o->version > 0) {
		c->hashes = malloc(BK_HASH_LEN * (size_t)o->version);
		if (!c->hashes)
			goto fail;
		memcpy(c->hashes, o->hashes, BK_HASH_LEN * (size_t)o->version);
		c->cap_hashes = (uint32_t)o->version;
	}
	return c;
fail:
	bk_order_free(c);
	return NULL;
}

int bk_idset_add(bk_idset *s, uint64_t fp)
{
	if ((s->n + 1) * 2 > s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 16;
		uint64_t *slots = calloc(cap, sizeof(uint64_t));
		if (!slots)
			return -1;
		for (uint32_t i = 0; i < s->cap; i++) {
			if (!s->slots[i])
				continue;
			uint32_t j = (uint32_t)s->slots[i] & (cap - 1);
			while (slots[j])
				j = (j + 1) & (cap - 1);
			slots[j] = s->slots[i];
		}
		free(s->slots);
		s->slots = slots;
		s->cap = cap;
	}
	uint32_t j = (uint32_t)fp & (s->cap - 1);
	while (s->slots[j] && s->slots[j] != fp)
		j = (j + 1) & (s->cap - 1);
	if (s->slots[j])
		return 0;
	s->slots[j] = fp;
	s->n++;
	return 1;
}

const uint8_t *bk_order_last_hash(const bk_order *o)
{
	static const uint8_t zero[BK_HASH_LEN];
	return o->version > 0 ? o->hashes[o->version - 1] : zero;
}

bool bk_idset_has(const bk_idset *s, uint64_t fp)
{
	if (!s->cap)
		return false;
	uint32_t mask = s->cap - 1;
	for (uint32_t i = (uint32_t)fp & mask;; i = (i + 1) & mask) {
		if (s->slots[i] == 0)
			return false;
		if (s->slots[i] == fp)
			return true;
	}
}

void bk_idset_clear(bk_idset *s)
{
	free(s->slots);
	*s = (bk_idset){0};
}

bool bk_order_seen(const bk_order *o, const char *cmd_id, size_t n)
{
	return bk_idset_has(&o->seen, bk_id_fingerprint(cmd_id, n) | 1); /* 0: an empty slot */
}

#define FIND_BY_ID(arr, count, field)                                                              \
	for (uint32_t i = 0; i < (count); i++)                                                     \
		if (strlen((arr)[i].field) == n && memcmp((arr)[i].field, id, n) == 0)             \
			return &(arr)[i];                                                          \
	return NULL

bk_request *bk_order_request(const bk_order *o, const char *id, size_t n)
{
	FIND_BY_ID(o->reqs, o->n_reqs, id);
}
bk_card *bk_order_card(const bk_order *o, const char *id, size_t n)
{
	FIND_BY_ID(o->cards, o->n_cards, id);
}
bk_dispute *bk_order_dispute(const bk_order *o, const char *id, size_t n)
{
	FIND_BY_ID(o->disputes, o->n_disputes, id);
}
bk_milestone *bk_order_milestone(const bk_order *o, const char *id, size_t n)
{
	FIND_BY_ID(o->ms, o->n_ms, id);
}
bk_recipient *bk_order_recipient(const bk_order *o, const char *id, size_t n)
{
	FIND_BY_ID(o->rcps, o->n_rcps, user_id);
}

bool bk_money_recompute(const bk_items *items, bk_money *m)
{
	int64_t sub = 0, total;
	for (uint32_t i = 0; i < items->n; i++)
		if (!bk_cents_add(sub, items->v[i].total_cents, &sub))
			return false;
	if (!bk_cents_add(sub, m->fee, &total) || !bk_cents_add(total, m->tax, &total) ||
	    !bk_cents_add(total, m->tip, &total))
		return false;
	m->subtotal = sub;
	m->total = total;
	return true;
}
