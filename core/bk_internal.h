/*
 * bk_internal.h - helpers shared inside core (not exported from it): line items read
 * from and written to payloads, in one format for the decider and evolve; field lookups
 * for the decoders.
 */
#ifndef BK_INTERNAL_H
#define BK_INTERNAL_H

#include "bk_err.h"
#include "bk_model.h"
#include "bk_val.h"

/* A line item as read from a payload; strings point into the payload's zone. */
typedef struct bk_li_view {
	const char *id; /* NULL when the payload gave none */
	size_t id_n;
	uint8_t kind;
	const char *title;
	size_t title_n;
	int64_t qty, unit_cents, total_cents;
} bk_li_view;

/*
 * Parse an array of line items. client=true: a command's items (kind may not be refund,
 * qty 1..10000, unit_cents 0..int max, total computed with overflow checks, ids optional);
 * client=false: an event's items (ids and totals required). On success *ret (zone
 * memory) and *ret_n. Returns 0 or -1 with a message in c->err; sets *ret_overflow when
 * the failure was an overflow.
 */
int bk_li_parse(bk_vctx *c, const bk_val *arr, bool client, msgpack_zone *z, bk_li_view **ret,
		uint32_t *ret_n, bool *ret_overflow) BK_MUSTCHECK;

/* Build a payload array of items (with ids and totals). false on OOM. */
bool bk_li_build(msgpack_zone *z, const bk_li_view *v, uint32_t n, bk_val *ret) BK_MUSTCHECK;
/* Append views to an owned item list. false on OOM. */
bool bk_items_append(bk_items *it, const bk_li_view *v, uint32_t n) BK_MUSTCHECK;
void bk_items_reset(bk_items *it);
/* The money totals of a payload: {subtotal_cents, platform_fee_cents, tax_cents, tip_cents,
 * total_cents}. */
bool bk_totals_build(msgpack_zone *z, const bk_money *m, bk_val *ret) BK_MUSTCHECK;

/* --- field lookups for the decoders (bk_val.c) --- */

/* A map key known at compile time: BK_KEY("order_id"). */
typedef struct bk_key {
	const char *s;
	uint32_t n;
} bk_key;
#define BK_KEY(lit)                                                                                \
	{                                                                                          \
		lit, (uint32_t)(sizeof(lit) - 1)                                                   \
	}

/*
 * Looks up n (at most 64) keys in one pass over map: ret[j] is what bk_map_get(map,
 * keys[j].s) returns (NULL when absent or nil, or when map is not a map; the first of
 * repeated keys). Cheapest when the map's keys come in the order of keys.
 */
void bk_map_lookup(const bk_val *map, const bk_key *keys, size_t n, const bk_val **ret);

#endif
