/*
 * bk_archive.h - when an order leaves memory (issue #11; docs/design.md, "Snapshots and
 * archiving"). An order is *settled* when its status is terminal and no part of it (a
 * request, invite recipient, dispute, card or milestone) is in a state that a command the
 * status table still allows in that status could move: asked of the FSM tables, never of
 * enum order. A settled order is archived (order.archived, appended by the sweep) once
 * the archive window has passed since its last event's created_at, so the event's time,
 * ids and bytes depend on the log alone. Pure: no clock is read here.
 */
#ifndef BK_ARCHIVE_H
#define BK_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_model.h"

/* Is o settled (terminal, nothing open that a command could still change)? */
bool bk_archive_settled(const bk_order *o);

/* When o is archived: last_event_at + window_us, or BK_TS_NONE when o is not settled,
 * window_us <= 0 (never archive) or the sum overflows. */
int64_t bk_archive_due(const bk_order *o, int64_t window_us);

/* The 8-byte fingerprint kept for an archived order's id (never 0: the low bit is set,
 * so 63 bits of BLAKE2b, bk_id_fingerprint). */
uint64_t bk_archive_fp(const char *order_id, size_t n);

#endif
