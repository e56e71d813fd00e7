/*
 * bk_upcast.c - the upcasters of each schema family (bk_upcast.h), as data: per family,
 * the step from each older version. Pure: no I/O, no state.
 */
#include "bk_upcast.h"

#include <stdio.h>
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
