/*
 * bk_upcast.h - old event schemas brought to the current one on read (SPEC §4: "old
 * versions are upcast on read, never rewritten"; issue #14).
 *
 * A chain of pure functions per schema family (bk_schema.h), one per step vN -> vN+1,
 * each given the event and the few order facts it may need. Readers decode a record,
 * check every hash over the *stored* bytes (an upcast event is never hashed again: its
 * hash and prev_hash stay the stored ones), then upcast before they use the payload:
 * evolve (processor restore, verify, seal), the projector's mapping (live and rebuild).
 * No I/O; the new payload lives in the caller's zone.
 */
#ifndef BK_UPCAST_H
#define BK_UPCAST_H

#include <msgpack.h>
#include <stddef.h>

#include "bk_err.h"
#include "bk_event.h"

/* The order facts an upcaster may need, from the order's order.created. */
typedef struct bk_upcast_ctx {
	const char *currency; /* the order's currency; NULL or "" when not known */
} bk_upcast_ctx;

/*
 * Bring e to its type's current version (bk_event_version): e->schema and e->payload
 * change (the payload rebuilt in z where a step adds to it), nothing else; e->canon is
 * cleared (the stored bytes are not the upcast event's). An event at the current version
 * is left as it is. Then the facts it carries are held against c: a money event's
 * currency must be the order's where c knows it.
 * Returns 0, or -1 with the reason in err: a version newer than this code knows (the
 * reader reports the event and does not apply it, as for any event it cannot read), a
 * fact a step needs that c does not give, a currency that is not the order's, or out of
 * memory.
 */
int bk_upcast(bk_event *e, const bk_upcast_ctx *c, msgpack_zone *z, char *err,
	      size_t errsz) BK_MUSTCHECK;

/*
 * The writer's side (the decider, for every event it emits): e->schema set to the
 * current version of e's type, and the order facts that version carries added to the
 * payload the decider built (a money event's currency, from c), in the same form the
 * upcasters give an old event. 0, or -1 (a money event without c->currency, or out of
 * memory).
 */
int bk_event_stamp(bk_event *e, const bk_upcast_ctx *c, msgpack_zone *z) BK_MUSTCHECK;

/*
 * The order facts of readers that keep no order state (`bookingctl replay`): per order
 * id, what its order.created said, fed with the events they read. Not thread-safe: fed
 * by one thread, read (bk_facts_ctx) by many only while nobody feeds it.
 */
typedef struct bk_facts bk_facts;
bk_facts *bk_facts_new(void);	 /* NULL on OOM */
void bk_facts_free(bk_facts *f); /* NULL ok */
/* Remember e's facts when e is an order.created (its currency). 0, or -1 on OOM. */
int bk_facts_note(bk_facts *f, const bk_event *e);
/* Every fact of src into dst (src's win), then src emptied. 0, or -1 on OOM. */
int bk_facts_merge(bk_facts *dst, bk_facts *src);
/* The facts of order_id ({NULL} when its order.created was not noted). */
bk_upcast_ctx bk_facts_ctx(const bk_facts *f, const char *order_id);

#endif
