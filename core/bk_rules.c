/*
 * bk_rules.c - the auto-accept ruleset (per service profile) and rule matching.
 * The set is an open-addressing table of owned entries keyed by service profile id.
 */
#include <stdlib.h>
#include <string.h>

#include "bk_rules.h"

struct bk_ruleset {
	bk_profile_rules **slots; /* NULL = empty; tombstones are not needed: removal rehashes */
	uint32_t n, cap;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return h;
}

bk_ruleset *bk_ruleset_new(void)
{
	bk_ruleset *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return NULL;
	rs->cap = 64;
	rs->slots = calloc(rs->cap, sizeof(*rs->slots));
	if (!rs->slots) {
		free(rs);
		return NULL;
	}
	return rs;
}

void bk_profile_rules_clear(bk_profile_rules *p)
{
	if (!p)
		return;
	free(p->rules);
	memset(p, 0, sizeof(*p));
}

void bk_ruleset_free(bk_ruleset *rs)
{
	if (!rs)
		return;
	for (uint32_t i = 0; i < rs->cap; i++)
		if (rs->slots[i]) {
			bk_profile_rules_clear(rs->slots[i]);
			free(rs->slots[i]);
		}
	free(rs->slots);
	free(rs);
}

static uint32_t slot_of(const bk_ruleset *rs, const char *sp)
{
	uint32_t mask = rs->cap - 1;
	uint32_t i = (uint32_t)hash_str(sp) & mask;
	while (rs->slots[i] && strcmp(rs->slots[i]->service_profile_id, sp) != 0)
		i = (i + 1) & mask;
	return i;
}

const bk_profile_rules *bk_ruleset_get(const bk_ruleset *rs, const char *sp_id)
{
	if (!rs)
		return NULL;
	return rs->slots[slot_of(rs, sp_id)];
}

const bk_profile_rules *bk_ruleset_get_owned(const bk_ruleset *rs, const char *sp_id,
					     const char *provider_user_id)
{
	const bk_profile_rules *p = bk_ruleset_get(rs, sp_id);
	if (!p || !provider_user_id || !p->owner_user_id[0] ||
	    strcmp(p->owner_user_id, provider_user_id) != 0)
		return NULL;
	return p;
}

static int grow(bk_ruleset *rs)
{
	bk_ruleset nw = {calloc((size_t)rs->cap * 2, sizeof(*rs->slots)), rs->n, rs->cap * 2};
	if (!nw.slots)
		return -1;
	for (uint32_t i = 0; i < rs->cap; i++)
		if (rs->slots[i])
			nw.slots[slot_of(&nw, rs->slots[i]->service_profile_id)] = rs->slots[i];
	free(rs->slots);
	*rs = nw;
	return 0;
}

static int copy_profile(bk_profile_rules *dst, const bk_profile_rules *src)
{
	*dst = *src;
	dst->rules = NULL;
	dst->cap = 0;
	if (src->n) {
		dst->rules = malloc(sizeof(bk_rule) * src->n);
		if (!dst->rules)
			return -1;
		memcpy(dst->rules, src->rules, sizeof(bk_rule) * src->n);
		dst->cap = src->n;
	}
	return 0;
}

int bk_ruleset_put(bk_ruleset *rs, const bk_profile_rules *p)
{
	if ((rs->n + 1) * 2 > rs->cap && grow(rs) < 0)
		return -1;
	bk_profile_rules *e = malloc(sizeof(*e));
	if (!e)
		return -1;
	if (copy_profile(e, p) < 0) {
		free(e);
		return -1;
	}
	uint32_t i = slot_of(rs, p->service_profile_id);
	if (rs->slots[i]) {
		bk_profile_rules_clear(rs->slots[i]);
		free(rs->slots[i]);
	} else {
		rs->n++;
	}
	rs->slots[i] = e;
	return 0;
}

void bk_ruleset_remove(bk_ruleset *rs, const char *sp_id)
{
	uint32_t i = slot_of(rs, sp_id), mask = rs->cap - 1;
	if (!rs->slots[i])
		return;
	bk_profile_rules_clear(rs->slots[i]);
	free(rs->slots[i]);
	rs->slots[i] = NULL;
	rs->n--;
	/* re-seat the rest of the cluster so lookups never stop early */
	for (uint32_t j = (i + 1) & mask; rs->slots[j]; j = (j + 1) & mask) {
		bk_profile_rules *e = rs->slots[j];
		rs->slots[j] = NULL;
		rs->slots[slot_of(rs, e->service_profile_id)] = e;
	}
}

size_t bk_ruleset_count(const bk_ruleset *rs)
{
	return rs ? rs->n : 0;
}

size_t bk_ruleset_list(const bk_ruleset *rs, const bk_profile_rules **ret, size_t max)
{
	size_t n = 0;
	for (uint32_t i = 0; rs && i < rs->cap; i++)
		if (rs->slots[i]) {
			if (n < max)
				ret[n] = rs->slots[i];
			n++;
		}
	return n;
}

static bool rule_holds(const bk_rule *r, const bk_rule_subject *s, bk_tz_fn tz, void *tz_opaque)
{
	if (r->has_min_price && s->subtotal_cents < r->min_price_cents)
		return false;
	if (r->has_max_distance && (s->has_travel ? s->travel_miles : 0.0) > r->max_distance_mi)
		return false;
	if (r->has_weekday_mask) {
		int32_t off;
		if (!tz || tz(tz_opaque, s->timezone, s->start_ts, &off) != 0)
			return false;
		int wd = bk_weekday_mon0(s->start_ts, off);
		if (!(r->weekday_mask & (INT64_C(1) << wd)))
			return false;
	}
	return true;
}

const bk_rule *bk_rules_match(const bk_profile_rules *p, const bk_rule_subject *s, bool need_ib,
			      bk_tz_fn tz, void *tz_opaque)
{
	if (!p)
		return NULL;
	for (uint32_t i = 0; i < p->n; i++) {
		const bk_rule *r = &p->rules[i];
		if (need_ib && !r->allow_ib)
			continue;
		if (rule_holds(r, s, tz, tz_opaque))
			return r;
	}
	return NULL;
}
