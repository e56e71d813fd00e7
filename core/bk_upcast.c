/*
 * bk_upcast.c - the upcasters of each schema family (bk_upcast.h), as data: per family,
 * the step from each older version. Pure: no I/O, no state.
 */
#include "bk_upcast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_schema.h"
#include "bk_val.h"

#define UP_MAX_VERSION 8 /* steps a family may have: 1 -> 2 ... 7 -> 8 */

typedef int (*up_step)(bk_event *e, const bk_upcast_ctx *c, msgpack_zone *z, char *err,
		       size_t errsz);

static bool known(const char *s)
{
	return s != NULL && s[0] != '\0';
}

/* A money event's payload with the order's currency (the fact schema 2 adds). */
static int with_currency(bk_event *e, const bk_upcast_ctx *c, msgpack_zone *z, char *err,
			 size_t errsz)
{
	if (!known(c->currency)) {
		snprintf(err, errsz,
			 "%s: no currency known for order %s (its order.created "
			 "was not read)",
			 bk_event_subtype_name(e), e->order_id ? e->order_id : "?");
		return -1;
	}
	bk_val cur = bk_val_str(z, c->currency, strlen(c->currency));
	if (cur.type != MSGPACK_OBJECT_STR ||
	    !bk_map_with(z, &e->payload, "currency", cur, &e->payload)) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	return 0;
}

/* money 1 -> 2: the payload gains `currency`, the order's. */
static int money_1_2(bk_event *e, const bk_upcast_ctx *c, msgpack_zone *z, char *err, size_t errsz)
{
	return with_currency(e, c, z, err, errsz);
}

/* steps[f][v]: the step from version v of family f to v + 1 (v < current). */
static const up_step steps[BK_SF__COUNT][UP_MAX_VERSION] = {
    [BK_SF_MONEY] = {[1] = money_1_2},
};

/* What a current event carries is the order's: its currency. */
static int check_facts(const bk_event *e, const bk_upcast_ctx *c, char *err, size_t errsz)
{
	if (!bk_event_is_money(e) || !known(c->currency))
		return 0;
	const bk_val *v = bk_map_get(&e->payload, "currency");
	if (v == NULL || v->type != MSGPACK_OBJECT_STR) {
		snprintf(err, errsz, "%s: payload.currency: is required", bk_event_subtype_name(e));
		return -1;
	}
	size_t n = strlen(c->currency);
	if (v->via.str.size != n || memcmp(v->via.str.ptr, c->currency, n) != 0) {
		snprintf(err, errsz, "%s: payload.currency \"%.*s\" is not the order's (%s)",
			 bk_event_subtype_name(e), v->via.str.size > 8 ? 8 : (int)v->via.str.size,
			 v->via.str.ptr, c->currency);
		return -1;
	}
	return 0;
}

int bk_upcast(bk_event *e, const bk_upcast_ctx *c, msgpack_zone *z, char *err, size_t errsz)
{
	bk_schema_family f = bk_event_family(e);
	uint32_t cur = bk_schema_family_version(f);
	if (e->schema < 1 || e->schema > cur) {
		snprintf(err, errsz,
			 "event schema %u of %s is not one this code reads (1 to %u): newer "
			 "than this code",
			 e->schema, bk_event_subtype_name(e), cur);
		return -1;
	}
	_Static_assert(UP_MAX_VERSION > 2, "room for the money family's steps");
	for (uint32_t v = e->schema; v < cur; v++) {
		up_step s = v < UP_MAX_VERSION ? steps[f][v] : NULL;
		if (s == NULL) {
			snprintf(err, errsz, "no upcaster for %s from schema %u",
				 bk_event_subtype_name(e), v);
			return -1;
		}
		if (s(e, c, z, err, errsz) < 0)
			return -1;
		e->schema = v + 1;
		e->canon = NULL;
		e->canon_len = 0;
	}
	return check_facts(e, c, err, errsz);
}

int bk_event_stamp(bk_event *e, const bk_upcast_ctx *c, msgpack_zone *z)
{
	char err[160]; /* unused: the decider reports a failure as out of memory */
	e->schema = bk_event_version(e);
	return bk_event_is_money(e) ? with_currency(e, c, z, err, sizeof(err)) : 0;
}

/* --- order facts: an open-addressing table keyed by order id --------------------------- */

typedef struct fact {
	char *order_id; /* NULL: an empty slot */
	char currency[8];
} fact;

struct bk_facts {
	fact *v;
	size_t n, cap; /* cap: a power of two */
};

static size_t fact_slot(const bk_facts *f, const char *id)
{
	uint64_t h = 1469598103934665603ULL;
	for (const char *p = id; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ULL;
	size_t i = (size_t)h & (f->cap - 1);
	while (f->v[i].order_id != NULL && strcmp(f->v[i].order_id, id) != 0)
		i = (i + 1) & (f->cap - 1);
	return i;
}

bk_facts *bk_facts_new(void)
{
	bk_facts *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return NULL;
	f->cap = 256;
	f->v = calloc(f->cap, sizeof(*f->v));
	if (f->v == NULL) {
		free(f);
		return NULL;
	}
	return f;
}

void bk_facts_free(bk_facts *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->cap; i++)
		free(f->v[i].order_id);
	free(f->v);
	free(f);
}

static int facts_grow(bk_facts *f)
{
	bk_facts g = {calloc(f->cap * 2, sizeof(*f->v)), f->n, f->cap * 2};
	if (g.v == NULL)
		return -1;
	for (size_t i = 0; i < f->cap; i++)
		if (f->v[i].order_id != NULL)
			g.v[fact_slot(&g, f->v[i].order_id)] = f->v[i];
	free(f->v);
	*f = g;
	return 0;
}

/* order_id's currency (cur, n bytes < 8) into f. 0, or -1 on OOM. */
static int facts_put(bk_facts *f, const char *order_id, const char *cur, size_t n)
{
	if ((f->n + 1) * 2 > f->cap && facts_grow(f) < 0)
		return -1;
	fact *x = &f->v[fact_slot(f, order_id)];
	if (x->order_id == NULL) {
		if ((x->order_id = strdup(order_id)) == NULL)
			return -1;
		f->n++;
	}
	memcpy(x->currency, cur, n);
	x->currency[n] = '\0';
	return 0;
}

int bk_facts_note(bk_facts *f, const bk_event *e)
{
	if (e->type != BK_EV_ORDER_CREATED)
		return 0;
	const bk_val *cur = bk_map_get(&e->payload, "currency");
	if (cur == NULL || cur->type != MSGPACK_OBJECT_STR || cur->via.str.size >= 8)
		return 0;
	return facts_put(f, e->order_id, cur->via.str.ptr, cur->via.str.size);
}

int bk_facts_merge(bk_facts *dst, bk_facts *src)
{
	int rc = 0;
	for (size_t i = 0; i < src->cap; i++) {
		fact *x = &src->v[i];
		if (x->order_id == NULL)
			continue;
		if (rc == 0)
			rc = facts_put(dst, x->order_id, x->currency, strlen(x->currency));
		free(x->order_id);
		x->order_id = NULL;
	}
	src->n = 0;
	return rc;
}

bk_upcast_ctx bk_facts_ctx(const bk_facts *f, const char *order_id)
{
	const fact *x = &f->v[fact_slot(f, order_id)];
	return (bk_upcast_ctx){x->order_id ? x->currency : NULL};
}
