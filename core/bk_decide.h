/*
 * bk_decide.h - the decider: decide(state, command) -> events | rejection, and
 * evolve(state, event) -> state. Pure functions: every input (clock, rules, time zones)
 * is handed in; nothing is read from the world.
 */
#ifndef BK_DECIDE_H
#define BK_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_command.h"
#include "bk_err.h"
#include "bk_event.h"
#include "bk_model.h"
#include "bk_rules.h"
#include "bk_time.h"

#define BK_FUTURE_SKEW_US                                                                          \
	(INT64_C(5) * 60 * BK_US_PER_S) /* commands > 5 min in the future are rejected */
#define BK_MAX_EVENTS 64		/* most events one command may produce */

typedef struct bk_decide_ctx {
	int64_t now;		 /* processor wall clock (us), for the future-time check */
	int64_t expiring_lead;	 /* order.sweep: emit card.<t>.expiring this long before expiry */
	int64_t archive_after;	 /* order.sweep: archive a settled order this long (us) after
				  * its last event (core/bk_archive.h); 0: never */
	const bk_ruleset *rules; /* auto-accept rules; NULL = none */
	bk_tz_fn tz;		 /* time-zone oracle; required */
	void *tz_opaque;
	msgpack_sbuffer *scratch; /* optional reusable buffer; one per thread */
} bk_decide_ctx;

typedef enum bk_outcome { BK_ACCEPTED, BK_REJECTED, BK_DUPLICATE } bk_outcome;
const char *bk_outcome_name(bk_outcome o);

/*
 * What decide produced. events (possibly non-empty even when rejected: lazy expiry
 * events are appended anyway) live in the zone passed to bk_decide, already numbered
 * (seq) and chained (prev_hash, hash) from the state's version and last hash.
 */
typedef struct bk_decision {
	bk_outcome outcome;
	bk_err code;	   /* BK_E_OK when accepted */
	char message[256]; /* a message a person can act on */
	bk_event *events;
	uint32_t n_events;
	/* for profile.bind and autoaccept.* (bk_cmd_is_profile): the profile's new entry, the
	 * booking.rules record to write (owned by the decision; bk_decision_clear) */
	bool has_rules;
	bk_profile_rules rules;
} bk_decision;

/*
 * Decide a command against the order's state (NULL when the order is unknown).
 * For commands on a service profile (profile.bind, autoaccept.*: bk_cmd_is_profile)
 * `state` is ignored and ctx->rules is consulted.
 * Returns 0 with *ret filled (accepted, rejected or duplicate); -1 only on
 * out-of-memory or an internal error (message in ret->message). Events and their
 * strings are allocated in z.
 */
int bk_decide(const bk_order *state, const bk_command *cmd, const bk_decide_ctx *ctx,
	      msgpack_zone *z, bk_decision *ret) BK_MUSTCHECK;
void bk_decision_clear(bk_decision *d);

/*
 * Apply one event to an aggregate (created with bk_order_new for the first event).
 * The event must be the order's next (seq = version + 1); the caller applies the
 * reader rule first. Returns 0, or -1 with a reason in err when the event cannot be
 * applied (the state is then unchanged... for decode-level problems; see bk_evolve.c).
 */
int bk_evolve(bk_order *state, const bk_event *ev, char *err, size_t errsz) BK_MUSTCHECK;

#endif
