/*
 * bk_decide_rules.c - the decider's commands on a service profile: profile.bind and
 * autoaccept.set/delete, judged on the profile's entry in ctx->rules through
 * bk_profile_table. The decision carries the profile's whole new entry, never events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_decide_int.h"
#include "bk_ids.h"

static bk_profile_state profile_state(const bk_profile_rules *cur)
{
	if (!cur || !cur->owner_user_id[0])
		return BK_PS_UNBOUND;
	return cur->bound ? BK_PS_BOUND : BK_PS_LEGACY;
}

/* The row of bk_profile_table for the command on the profile's state, and the actor's
 * right to it (role, then identity); BK_DR_OK, or BK_DR_REJECTED with the rejection made. */
BK_MUSTCHECK static bk_dres profile_row(dctx *x, const char *sp, const bk_profile_rules *cur)
{
	const bk_command *c = x->cmd;
	bk_profile_state st = profile_state(cur);
	const bk_profile_row *r = bk_profile_row_find((bk_cmd_type)c->type, st);
	if (!r) {
		if (st == BK_PS_UNBOUND)
			return reject(x, BK_E_FORBIDDEN,
				      "service profile %s is not bound to a provider: profile.bind "
				      "first",
				      sp);
		return reject(x, BK_E_FORBIDDEN, "%s is not allowed on a %s service profile",
			      bk_cmd_name((bk_cmd_type)c->type), bk_profile_state_name(st));
	}
	if (!(r->actors & BK_RM(c->actor_role))) {
		char roles[64] = "";
		for (int i = 0; i < BK_ROLE__COUNT; i++)
			if (r->actors & BK_RM(i))
				snprintf(roles + strlen(roles), sizeof(roles) - strlen(roles),
					 "%s%s", roles[0] ? ", " : "", bk_role_name((bk_role)i));
		return reject(x, BK_E_FORBIDDEN, "%s is for role %s, not %s",
			      bk_cmd_name((bk_cmd_type)c->type), roles,
			      bk_role_name((bk_role)c->actor_role));
	}
	if (r->who == BK_PW_OWNER &&
	    (!cur || !c->actor_user_id || strcmp(cur->owner_user_id, c->actor_user_id) != 0))
		return reject(x, BK_E_FORBIDDEN, "service profile %s is %s another provider", sp,
			      st == BK_PS_BOUND ? "bound to" : "owned by");
	return BK_DR_OK;
}

/* payload.<key> must be the command's key: the service profile. */
BK_MUSTCHECK static bk_dres same_profile(dctx *x, const char *key, const char *sp)
{
	const bk_val *pl = &x->cmd->payload;
	const char *psp;
	size_t pspn;
	if (bk_get_str(&x->v, pl, key, true, &psp, &pspn) < 0)
		return invalid(x);
	if (pspn != strlen(sp) || memcmp(psp, sp, pspn) != 0)
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.%s must equal the command's key (order_id field) %s", key,
			      sp);
	return BK_DR_OK;
}

/*
 * profile.bind: the profile's owner becomes payload.provider_user_id. Binding to the
 * provider that owns it already (a legacy owner confirmed, or a repeated bind) keeps the
 * rules; binding to another provider drops them, for they are the terms of the provider
 * who set them.
 */
BK_MUSTCHECK static bk_dres d_bind(dctx *x, const char *sp, const bk_profile_rules *cur,
				   bk_profile_rules *p)
{
	const bk_val *pl = &x->cmd->payload;
	bk_dres rc = same_profile(x, "service_profile_id", sp);
	if (rc != BK_DR_OK)
		return rc;
	const char *prov;
	size_t pn;
	if (bk_get_str(&x->v, pl, "provider_user_id", true, &prov, &pn) < 0)
		return invalid(x);
	if (!bk_id_valid(prov, pn, NULL))
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.provider_user_id: not a valid id");
	bool keep =
	    cur && strlen(cur->owner_user_id) == pn && memcmp(cur->owner_user_id, prov, pn) == 0;
	if (cur) {
		*p = *cur;
		p->rules = NULL;
		p->cap = 0;
		p->n = 0;
		if (keep && cur->n) {
			p->rules = malloc(sizeof(bk_rule) * cur->n);
			if (!p->rules)
				return oom(x);
			memcpy(p->rules, cur->rules, sizeof(bk_rule) * cur->n);
			p->cap = p->n = cur->n;
		}
	} else {
		snprintf(p->service_profile_id, sizeof(p->service_profile_id), "%s", sp);
	}
	if (bk_strlcpyn(p->owner_user_id, sizeof(p->owner_user_id), prov, pn) < 0)
		return reject(x, BK_E_VALIDATION_FAILED, /* not reached: a valid id fits */
			      "payload.provider_user_id: not a valid id");
	p->bound = true;
	return BK_DR_OK;
}

/* autoaccept.set / autoaccept.delete by the profile's owner (profile_row checked it). */
BK_MUSTCHECK static bk_dres d_rule(dctx *x, const char *sp, const bk_profile_rules *cur,
				   bk_profile_rules *p)
{
	const bk_val *pl = &x->cmd->payload;
	const bk_command *c = x->cmd;
	const char *s;
	size_t n;
	bk_dres rc;
	if (!cur) /* not reached: bk_profile_table has rules only on an owned profile */
		return reject(x, BK_E_FORBIDDEN, "service profile %s has no owner", sp);
	if (bk_get_str(&x->v, pl, "rule_id", true, &s, &n) < 0)
		return invalid(x);
	if (!bk_id_valid(s, n, NULL))
		return reject(x, BK_E_VALIDATION_FAILED, "payload.rule_id: not a valid id");
	if (c->type == BK_CMD_AUTOACCEPT_SET) {
		rc = same_profile(x, "service_profile_id", sp);
		if (rc != BK_DR_OK)
			return rc;
	}
	*p = *cur;
	p->rules = malloc(sizeof(bk_rule) * (cur->n + 1));
	if (!p->rules)
		return oom(x);
	p->cap = cur->n + 1;
	p->n = 0;
	for (uint32_t i = 0; i < cur->n; i++)
		if (strlen(cur->rules[i].rule_id) != n || memcmp(cur->rules[i].rule_id, s, n) != 0)
			p->rules[p->n++] = cur->rules[i];
	if (c->type == BK_CMD_AUTOACCEPT_DELETE) {
		if (p->n == cur->n)
			return reject(x, BK_E_NOT_FOUND, "service profile %s has no rule %.*s", sp,
				      (int)n, s);
		return BK_DR_OK;
	}
	bk_rule r = {0};
	if (bk_strlcpyn(r.rule_id, sizeof(r.rule_id), s, n) < 0) /* not reached: a valid id fits */
		return reject(x, BK_E_VALIDATION_FAILED, "payload.rule_id: not a valid id");
	rc = get_cents(x, pl, "min_price_cents", false, &r.min_price_cents, 0);
	if (rc != BK_DR_OK)
		return rc;
	if (bk_get_int(&x->v, pl, "min_price_cents", false, &r.min_price_cents, &r.has_min_price) <
	    0)
		return invalid(x);
	if (bk_get_int(&x->v, pl, "weekday_mask", false, &r.weekday_mask, &r.has_weekday_mask) < 0)
		return invalid(x);
	if (r.has_weekday_mask && (r.weekday_mask < 0 || r.weekday_mask > 127))
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.weekday_mask: bits 0 (Monday) to 6 (Sunday): 0 to 127");
	if (bk_get_num(&x->v, pl, "max_distance_mi", false, &r.max_distance_mi,
		       &r.has_max_distance) < 0)
		return invalid(x);
	if (r.has_max_distance && !(r.max_distance_mi >= 0))
		return reject(x, BK_E_VALIDATION_FAILED, "payload.max_distance_mi: must be >= 0");
	if (bk_get_bool(&x->v, pl, "allow_ib", true, &r.allow_ib, NULL) < 0)
		return invalid(x);
	if (p->n >= 64)
		return reject(x, BK_E_VALIDATION_FAILED, "at most 64 rules per service profile");
	p->rules[p->n++] = r;
	return BK_DR_OK;
}

/*
 * A command on a service profile (bk_cmd_is_profile): judged on the profile's entry in
 * ctx->rules through bk_profile_table (state, role, owner), then its payload. On success
 * the decision carries the profile's whole new entry (the booking.rules record).
 */
bk_dres d_profile(dctx *x)
{
	const bk_command *c = x->cmd;
	const char *sp = c->order_id; /* the record key: the service profile */
	const bk_profile_rules *cur = bk_ruleset_get(x->ctx->rules, sp);
	uint64_t fp = bk_id_fingerprint(c->id, strlen(c->id));
	for (uint32_t i = 0; cur && i < cur->n_recent; i++)
		if (cur->recent[i] == fp) {
			x->d->outcome = BK_DUPLICATE;
			x->d->code = BK_E_OK;
			snprintf(x->d->message, sizeof(x->d->message),
				 "command %s was already applied", c->id);
			return BK_DR_REJECTED;
		}
	bk_dres rc = profile_row(x, sp, cur);
	if (rc != BK_DR_OK)
		return rc;
	bk_profile_rules *p = &x->d->rules;
	memset(p, 0, sizeof(*p));
	x->d->has_rules = true;
	rc = c->type == BK_CMD_PROFILE_BIND ? d_bind(x, sp, cur, p) : d_rule(x, sp, cur, p);
	if (rc != BK_DR_OK)
		return rc;
	/* remember the command id (ring of the last BK_PROFILE_RECENT) */
	if (p->n_recent < BK_PROFILE_RECENT) {
		p->recent[p->n_recent++] = fp;
	} else {
		memmove(p->recent, p->recent + 1, sizeof(p->recent[0]) * (BK_PROFILE_RECENT - 1));
		p->recent[BK_PROFILE_RECENT - 1] = fp;
	}
	return BK_DR_OK;
}
