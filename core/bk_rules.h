/*
 * bk_rules.h - auto-accept rules (booking.autoaccept_rule), keyed by service profile.
 *
 * A bk_ruleset holds, per service profile, its owner and its rules; it is what the
 * compacted topic booking.rules says (one record per profile holding all its rules).
 * The owner is the provider the profiles service bound the profile to (profile.bind);
 * a record written before profile.bind existed names its first rule's provider instead
 * (bound = false: a legacy owner, docs/design.md). A profile's rules apply only to
 * orders of its owner. Matching is pure: the weekday is judged in the order's time zone
 * through a bk_tz_fn.
 */
#ifndef BK_RULES_H
#define BK_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_err.h"
#include "bk_ids.h"
#include "bk_time.h"

typedef struct bk_rule {
	char rule_id[BK_ID_MAX];
	bool has_min_price;
	int64_t min_price_cents;
	bool has_weekday_mask;
	int64_t weekday_mask; /* bit 0 = Monday ... bit 6 = Sunday */
	bool has_max_distance;
	double max_distance_mi;
	bool allow_ib;
} bk_rule;

#define BK_PROFILE_RECENT 16 /* command ids remembered per profile, for idempotency */

typedef struct bk_profile_rules {
	char service_profile_id[BK_ID_MAX];
	char owner_user_id[BK_ID_MAX]; /* "" = unbound (no profile.bind, no legacy owner) */
	bool bound;		       /* owner_user_id comes from profile.bind, not legacy */
	bk_rule *rules;
	uint32_t n, cap;
	uint64_t recent[BK_PROFILE_RECENT]; /* fingerprints of the last command ids */
	uint32_t n_recent;
} bk_profile_rules;

typedef struct bk_ruleset bk_ruleset; /* opaque */

bk_ruleset *bk_ruleset_new(void) BK_MUSTCHECK;
void bk_ruleset_free(bk_ruleset *rs); /* NULL ok */
/* The profile's rules, or NULL when it has none. Valid until the next change. */
const bk_profile_rules *bk_ruleset_get(const bk_ruleset *rs, const char *sp_id);
/* Replace a profile's whole entry (a copy is made). 0, or -1 on OOM. */
int bk_ruleset_put(bk_ruleset *rs, const bk_profile_rules *p) BK_MUSTCHECK;
void bk_ruleset_remove(bk_ruleset *rs, const char *sp_id);
/* The rules of profile sp_id that apply to an order of provider provider_user_id: the
 * profile's entry when that provider owns it, else NULL (another provider's rules never
 * accept an order, whatever the order names as its service profile). */
const bk_profile_rules *bk_ruleset_get_owned(const bk_ruleset *rs, const char *sp_id,
					     const char *provider_user_id);
size_t bk_ruleset_count(const bk_ruleset *rs);
/* Writes up to max entries of rs into ret (in no particular order; valid until the next
 * change) and returns how many entries there are. */
size_t bk_ruleset_list(const bk_ruleset *rs, const bk_profile_rules **ret, size_t max);

/* What a rule is judged on. */
typedef struct bk_rule_subject {
	int64_t subtotal_cents;
	int64_t start_ts;
	const char *timezone;
	bool has_travel;
	double travel_miles;
} bk_rule_subject;

/*
 * The first rule of profile `p` that matches `s` (and allows IB when need_ib), or NULL.
 * A rule matches when every field it sets holds: subtotal >= min price, the start's
 * weekday (in s->timezone) is in the mask, travel_miles <= max distance (an order
 * without travel_miles has no travel: distance 0). A zone the oracle does not know
 * makes a weekday rule fail to match.
 */
const bk_rule *bk_rules_match(const bk_profile_rules *p, const bk_rule_subject *s, bool need_ib,
			      bk_tz_fn tz, void *tz_opaque);

void bk_profile_rules_clear(bk_profile_rules *p); /* frees p->rules, zeroes p */

#endif
