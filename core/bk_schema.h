/*
 * bk_schema.h - event schemas as data (issue #14): per event type its current version.
 *
 * Every event carries the schema version it was written with (`schema`). The version of
 * an event type moves up when what its payload holds changes; readers bring older events
 * to the current version with the upcasters of core/bk_upcast.c, and refuse newer ones.
 * Version 2 of the money events (payment.captured, payment.refunded, tip.added,
 * card.extras.accepted, card.expense.accepted) carries the order's currency.
 */
#ifndef BK_SCHEMA_H
#define BK_SCHEMA_H

#include <stdbool.h>
#include <stdint.h>

#include "bk_event.h"

/* Event types that share a version history (and the upcasters along it). */
typedef enum bk_schema_family {
	BK_SF_PLAIN, /* no change since version 1 */
	BK_SF_MONEY, /* 2: + currency (the order's) */
	BK_SF__COUNT
} bk_schema_family;

/* The family of e's subtype (type, and for card events card type and verb). */
bk_schema_family bk_event_family(const bk_event *e);
/* The current schema version of e's subtype: the one the decider writes. */
uint32_t bk_event_version(const bk_event *e);
/* Does e move money (its current version carries the order's currency)? */
bool bk_event_is_money(const bk_event *e);
/* The current version of a family (for the docs and the tests). */
uint32_t bk_schema_family_version(bk_schema_family f);
const char *bk_schema_family_name(bk_schema_family f);

#endif
