/*
 * bk_decide_order.c - the decider's commands on the order itself and its disputes and
 * milestones: order.create, order.cancel, note.add, dispute.*, milestone.*. The status
 * move of each is the row pick_row chose; refunds go through emit_refund.
 */
#include <string.h>

#include "bk_decide_int.h"
#include "bk_ids.h"

bk_dres d_create(dctx *x)
{
	const bk_val *pl = &x->cmd->payload;
	const bk_command *c = x->cmd;
	if (!bk_id_valid(c->order_id, strlen(c->order_id), "ord_"))
		return reject(x, BK_E_VALIDATION_FAILED,
			      "order_id: expected an id starting with ord_");
	const char *s;
	size_t n;
	if (bk_get_str(&x->v, pl, "mode", true, &s, &n) < 0)
		return invalid(x);
	int mode = bk_mode_from(s, n);
	if (mode < 0)
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.mode: expected IB, RTB or INVITE");
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 24) || !bk_mapb_str(&b, "mode", bk_mode_name((bk_mode)mode)) ||
	    !bk_mapb_str(&b, "buyer_user_id", c->actor_user_id))
		return oom(x);
	const char *prov, *sp;
	size_t provn, spn;
	if (bk_get_str(&x->v, pl, "provider_user_id", mode != BK_MODE_INVITE, &prov, &provn) < 0)
		return invalid(x);
	if (bk_get_str(&x->v, pl, "service_profile_id", mode != BK_MODE_INVITE, &sp, &spn) < 0)
		return invalid(x);
	if (mode == BK_MODE_INVITE && (prov || sp))
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload: INVITE orders get provider_user_id and service_profile_id "
			      "at invite.award");
	if (prov) {
		if (!bk_id_valid(prov, provn, NULL) || !bk_id_valid(sp, spn, NULL))
			return reject(
			    x, BK_E_VALIDATION_FAILED,
			    "payload.provider_user_id / service_profile_id: not valid ids");
		if (c->actor_user_id && strlen(c->actor_user_id) == provn &&
		    memcmp(c->actor_user_id, prov, provn) == 0)
			return reject(x, BK_E_VALIDATION_FAILED,
				      "payload.provider_user_id: a buyer cannot book themself");
		if (!bk_mapb_strn(&b, "provider_user_id", prov, provn) ||
		    !bk_mapb_strn(&b, "service_profile_id", sp, spn))
			return oom(x);
	}
	bk_dres rc = copy_cmd(x, &b, BK_EV_ORDER_CREATED);
	if (rc != BK_DR_OK)
		return rc;
	int64_t start, end;
	if (bk_get_ts(&x->v, pl, "start_ts", true, &start) < 0)
		return invalid(x);
	if (bk_get_ts(&x->v, pl, "end_ts", true, &end) < 0)
		return invalid(x);
	if (end <= start)
		return reject(x, BK_E_VALIDATION_FAILED, "payload.end_ts: must be after start_ts");
	if (!bk_mapb_ts(&b, "start_ts", start) || !bk_mapb_ts(&b, "end_ts", end))
		return oom(x);
	if (bk_get_str(&x->v, pl, "timezone", true, &s, &n) < 0)
		return invalid(x);
	char tz[64];
	int32_t off;
	if (bk_strlcpyn(tz, sizeof(tz), s, n) < 0 || !x->ctx->tz ||
	    x->ctx->tz(x->ctx->tz_opaque, tz, start, &off) != 0)
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.timezone: not a known IANA time zone name");
	if (!bk_mapb_str(&b, "timezone", tz))
		return oom(x);
	const bk_val *loc;
	if (bk_get_map(&x->v, pl, "location", true, &loc) < 0)
		return invalid(x);
	bk_vctx lv = {x->v.err, x->v.errsz, "payload.location"};
	if (bk_get_str(&lv, loc, "kind", true, &s, &n) < 0)
		return invalid(x);
	static const char *const kinds[] = {"buyer", "provider_studio", "rented_studio", "remote"};
	bool kind_ok = false;
	for (size_t i = 0; i < 4; i++)
		kind_ok |= strlen(kinds[i]) == n && memcmp(kinds[i], s, n) == 0;
	if (!kind_ok)
		return reject(
		    x, BK_E_VALIDATION_FAILED,
		    "payload.location.kind: expected buyer, provider_studio, rented_studio "
		    "or remote");
	double lat, lng;
	bool has_lat, has_lng;
	if (bk_get_str(&lv, loc, "address", false, &s, &n) < 0 ||
	    bk_get_num(&lv, loc, "lat", false, &lat, &has_lat) < 0 ||
	    bk_get_num(&lv, loc, "lng", false, &lng, &has_lng) < 0)
		return invalid(x);
	if ((has_lat && (lat < -90 || lat > 90)) || (has_lng && (lng < -180 || lng > 180)))
		return reject(x, BK_E_VALIDATION_FAILED, "payload.location: lat/lng out of range");
	if (!bk_mapb_val(&b, "location", *loc))
		return oom(x);
	double miles;
	bool has_miles;
	if (bk_get_num(&x->v, pl, "travel_miles", false, &miles, &has_miles) < 0)
		return invalid(x);
	if (has_miles) {
		if (!(miles >= 0 && miles <= 100000))
			return reject(x, BK_E_VALIDATION_FAILED,
				      "payload.travel_miles: expected 0 to 100000");
		if (!bk_mapb_f64(&b, "travel_miles", miles))
			return oom(x);
	}
	if (bk_get_str(&x->v, pl, "currency", true, &s, &n) < 0)
		return invalid(x);
	char cur[4] = {0};
	if (n != 3)
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.currency: a 3-letter ISO 4217 code");
	for (size_t i = 0; i < 3; i++) {
		char ch = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] + 32) : s[i];
		if (ch < 'a' || ch > 'z')
			return reject(x, BK_E_VALIDATION_FAILED,
				      "payload.currency: a 3-letter ISO 4217 code");
		cur[i] = ch;
	}
	if (!bk_mapb_str(&b, "currency", cur))
		return oom(x);
	bk_li_view *items;
	uint32_t n_items;
	int64_t sum, fee, tax, tip;
	rc = client_items(x, pl, "payload", &items, &n_items, &sum);
	if (rc != BK_DR_OK)
		return rc;
	rc = get_cents(x, pl, "platform_fee_cents", true, &fee, 0);
	if (rc != BK_DR_OK)
		return rc;
	rc = get_cents(x, pl, "tax_cents", true, &tax, 0);
	if (rc != BK_DR_OK)
		return rc;
	rc = get_cents(x, pl, "tip_cents", false, &tip, 0);
	if (rc != BK_DR_OK)
		return rc;
	bk_money m;
	rc = money_with(x, NULL, items, n_items, fee, tax, tip, &m);
	if (rc != BK_DR_OK)
		return rc;
	bk_val arr, totals;
	if (!bk_li_build(x->z, items, n_items, &arr) || !bk_mapb_val(&b, "line_items", arr) ||
	    !bk_mapb_int(&b, "platform_fee_cents", fee) || !bk_mapb_int(&b, "tax_cents", tax) ||
	    !bk_mapb_int(&b, "tip_cents", tip) || !bk_totals_build(x->z, &m, &totals) ||
	    !bk_mapb_val(&b, "totals", totals))
		return oom(x);
	const bk_val *policy;
	if (bk_get_map(&x->v, pl, "policy", true, &policy) < 0)
		return invalid(x);
	if (!bk_mapb_val(&b, "policy", *policy))
		return oom(x);
	return emit(x, BK_EV_ORDER_CREATED, 0, 0, bk_mapb_done(&b));
}

bk_dres d_cancel(dctx *x, const rowset *rs)
{
	const bk_val *pl = &x->cmd->payload;
	const char *s;
	size_t n;
	bk_dres rc;
	x->f.side = -1;
	if (bk_get_str(&x->v, pl, "side", false, &s, &n) < 0)
		return invalid(x);
	if (s && n == 5 && memcmp(s, "buyer", 5) == 0)
		x->f.side = BK_ST_CANCELLED_BUYER;
	else if (s && n == 8 && memcmp(s, "provider", 8) == 0)
		x->f.side = BK_ST_CANCELLED_PROVIDER;
	rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	const char *reason;
	size_t rn;
	if (bk_get_str(&x->v, pl, "reason", true, &reason, &rn) < 0)
		return invalid(x);
	if (rn == 0 || rn > 4000)
		return reject(x, BK_E_VALIDATION_FAILED, "payload.reason: 1 to 4000 bytes");
	int64_t refund;
	bool has_refund;
	if (bk_get_int(&x->v, pl, "refund_cents", false, &refund, &has_refund) < 0)
		return invalid(x);
	if (has_refund && refund < 0)
		return reject(x, BK_E_VALIDATION_FAILED, "payload.refund_cents: must be >= 0");
	if (!has_refund) /* the provider's side cancelling owes the buyer everything paid */
		refund =
		    x->to == BK_ST_CANCELLED_PROVIDER ? x->o->money.paid - x->o->money.refunded : 0;
	if (refund > 0) {
		rc = emit_refund(x, refund, "Cancellation refund");
		if (rc != BK_DR_OK)
			return rc;
	}
	char *why = msgpack_zone_malloc(x->z, rn + 1);
	if (!why)
		return oom(x);
	memcpy(why, reason, rn);
	why[rn] = 0;
	return finish_status(x, why, x->to);
}

bk_dres d_note(dctx *x, const rowset *rs)
{
	bk_dres rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 2))
		return oom(x);
	rc = copy_cmd(x, &b, BK_EV_NOTE_ADDED);
	if (rc != BK_DR_OK)
		return rc;
	return emit(x, BK_EV_NOTE_ADDED, 0, 0, bk_mapb_done(&b));
}

/* --- disputes ----------------------------------------------------------------------- */

bk_dres d_dispute_open(dctx *x, const rowset *rs)
{
	bk_dres rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	const char *did = NULL;
	rc = id_or_mint(x, "dispute_id", "dsp_", &did);
	if (rc != BK_DR_OK)
		return rc;
	if (bk_order_dispute(x->o, did, strlen(did)))
		return reject(x, BK_E_VALIDATION_FAILED, "payload.dispute_id: %s already exists",
			      did);
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 5) || !bk_mapb_str(&b, "dispute_id", did) ||
	    !bk_mapb_str(&b, "opened_by", bk_role_name((bk_role)x->cmd->actor_role)))
		return oom(x);
	rc = copy_cmd(x, &b, BK_EV_DISPUTE_OPENED);
	if (rc != BK_DR_OK)
		return rc;
	if (!bk_mapb_str(&b, "from_status", bk_status_name((bk_status)x->o->status)))
		return oom(x);
	rc = emit(x, BK_EV_DISPUTE_OPENED, 0, 0, bk_mapb_done(&b));
	if (rc != BK_DR_OK)
		return rc;
	return finish_status(x, NULL, -1);
}

/* The order's open dispute, optionally named by payload.dispute_id. */
BK_MUSTCHECK static bk_dres open_dispute(dctx *x, const bk_dispute **ret_dispute)
{
	const bk_val *pl = &x->cmd->payload;
	const char *s;
	size_t n;
	if (bk_get_str(&x->v, pl, "dispute_id", false, &s, &n) < 0)
		return invalid(x);
	for (uint32_t i = x->o->n_disputes; i-- > 0;) {
		const bk_dispute *d = &x->o->disputes[i];
		if (s && (strlen(d->id) != n || memcmp(d->id, s, n) != 0))
			continue;
		if (bk_life_open(BK_LIFE_DISPUTE, d->status)) {
			*ret_dispute = d;
			return BK_DR_OK;
		}
	}
	return reject(x, BK_E_NOT_FOUND, "order %s has no open dispute%s%.*s", x->cmd->order_id,
		      s ? " " : "", s ? (int)n : 0, s ? s : "");
}

/* What dispute.update and dispute.resolve share: the status row, the open dispute, and
 * the dispute status payload.<key> names, which the dispute table must allow this command
 * to move to (`expected` lists them for the rejection). *ret_d, *ret_st on BK_DR_OK. */
BK_MUSTCHECK static bk_dres dispute_move(dctx *x, const rowset *rs, const char *key,
					 const char *expected, const bk_dispute **ret_d,
					 int *ret_st)
{
	bk_dres rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	const bk_dispute *d = NULL;
	rc = open_dispute(x, &d);
	if (rc != BK_DR_OK)
		return rc;
	const char *s;
	size_t n;
	if (bk_get_str(&x->v, &x->cmd->payload, key, true, &s, &n) < 0)
		return invalid(x);
	int st = bk_dsp_status_from(s, n);
	if (st < 0 || !bk_life_allows(BK_LIFE_DISPUTE, (bk_cmd_type)x->cmd->type, d->status, st))
		return reject(x, BK_E_VALIDATION_FAILED, "payload.%s: expected %s", key, expected);
	*ret_d = d;
	*ret_st = st;
	return BK_DR_OK;
}

bk_dres d_dispute_update(dctx *x, const rowset *rs)
{
	const bk_dispute *d = NULL;
	int st = 0;
	bk_dres rc = dispute_move(x, rs, "status", "awaiting_evidence or under_review", &d, &st);
	if (rc != BK_DR_OK)
		return rc;
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 3) || !bk_mapb_str(&b, "dispute_id", d->id) ||
	    !bk_mapb_str(&b, "status", bk_dsp_status_name((bk_dsp_status)st)))
		return oom(x);
	rc = copy_cmd(x, &b, BK_EV_DISPUTE_UPDATED);
	if (rc != BK_DR_OK)
		return rc;
	return emit(x, BK_EV_DISPUTE_UPDATED, 0, 0, bk_mapb_done(&b));
}

bk_dres d_dispute_resolve(dctx *x, const rowset *rs)
{
	const bk_val *pl = &x->cmd->payload;
	const bk_dispute *d = NULL;
	int st = 0;
	bk_dres rc =
	    dispute_move(x, rs, "outcome", "resolved_buyer, resolved_provider or split", &d, &st);
	if (rc != BK_DR_OK)
		return rc;
	int64_t refund, left = x->o->money.paid - x->o->money.refunded;
	bool has;
	if (bk_get_int(&x->v, pl, "refund_cents", false, &refund, &has) < 0)
		return invalid(x);
	if (has && refund < 0)
		return reject(x, BK_E_VALIDATION_FAILED, "payload.refund_cents: must be >= 0");
	if (st == BK_DS_RESOLVED_BUYER && !has)
		refund = left;
	else if (st == BK_DS_RESOLVED_PROVIDER && !has)
		refund = 0;
	else if (st == BK_DS_SPLIT && (!has || refund == 0 || refund >= left))
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.refund_cents: a split refunds part of the %lld cents paid "
			      "(more than 0, less than all)",
			      (long long)left);
	if (refund > 0) {
		rc = emit_refund(x, refund, "Dispute refund");
		if (rc != BK_DR_OK)
			return rc;
	}
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 4) || !bk_mapb_str(&b, "dispute_id", d->id) ||
	    !bk_mapb_str(&b, "outcome", bk_dsp_status_name((bk_dsp_status)st)) ||
	    !bk_mapb_int(&b, "refund_cents", refund))
		return oom(x);
	rc = copy_cmd(x, &b, BK_EV_DISPUTE_RESOLVED);
	if (rc != BK_DR_OK)
		return rc;
	rc = emit(x, BK_EV_DISPUTE_RESOLVED, 0, 0, bk_mapb_done(&b));
	if (rc != BK_DR_OK)
		return rc;
	return finish_status(x, NULL, -1);
}

/* --- milestones --------------------------------------------------------------------- */

bk_dres d_milestone(dctx *x, const rowset *rs)
{
	const bk_val *pl = &x->cmd->payload;
	bk_dres rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	bk_cmd_type t = (bk_cmd_type)x->cmd->type;
	if (t == BK_CMD_MILESTONE_ADD) {
		const char *mid = NULL;
		rc = id_or_mint(x, "milestone_id", "mst_", &mid);
		if (rc != BK_DR_OK)
			return rc;
		if (bk_order_milestone(x->o, mid, strlen(mid)))
			return reject(x, BK_E_VALIDATION_FAILED,
				      "payload.milestone_id: %s already exists", mid);
		int64_t amount, due, sum = 0;
		rc = get_cents(x, pl, "amount_cents", true, &amount, 1);
		if (rc != BK_DR_OK)
			return rc;
		if (bk_get_ts(&x->v, pl, "due_ts", false, &due) < 0)
			return invalid(x);
		for (uint32_t i = 0; i < x->o->n_ms; i++)
			if (x->o->ms[i].status != BK_MS_REFUNDED)
				sum += x->o->ms[i].amount_cents;
		if (sum + amount > x->o->money.subtotal)
			return reject(x, BK_E_VALIDATION_FAILED,
				      "payload.amount_cents: milestones would exceed the order "
				      "subtotal of %lld cents (%lld already allotted)",
				      (long long)x->o->money.subtotal, (long long)sum);
		bk_mapb b;
		if (!bk_mapb_init(&b, x->z, 4) || !bk_mapb_str(&b, "milestone_id", mid))
			return oom(x);
		rc = copy_cmd(x, &b, BK_EV_MILESTONE_ADDED);
		if (rc != BK_DR_OK)
			return rc;
		if (!bk_mapb_ts(&b, "due_ts", due) || !bk_mapb_int(&b, "amount_cents", amount))
			return oom(x);
		return emit(x, BK_EV_MILESTONE_ADDED, 0, 0, bk_mapb_done(&b));
	}
	const char *s;
	size_t n;
	if (bk_get_str(&x->v, pl, "milestone_id", true, &s, &n) < 0)
		return invalid(x);
	const bk_milestone *m = bk_order_milestone(x->o, s, n);
	if (!m)
		return reject(x, BK_E_NOT_FOUND, "payload.milestone_id: no milestone %.*s", (int)n,
			      s);
	const bk_ms_row *row = bk_ms_row_find(t, m->status);
	if (!row)
		return reject(x, BK_E_INVALID_TRANSITION, "milestone %s is %s; %s does not apply",
			      m->id, bk_ms_state_name((bk_ms_state)m->status), bk_cmd_name(t));
	if (!(row->actors & BK_RM(x->cmd->actor_role)))
		return reject(x, BK_E_FORBIDDEN, "role %s may not issue %s",
			      bk_role_name((bk_role)x->cmd->actor_role), bk_cmd_name(t));
	if (t == BK_CMD_MILESTONE_REFUND && m->amount_cents > 0 &&
	    x->o->money.paid - x->o->money.refunded > 0) {
		int64_t left = x->o->money.paid - x->o->money.refunded;
		rc = emit_refund(x, m->amount_cents < left ? m->amount_cents : left,
				 "Milestone refund");
		if (rc != BK_DR_OK)
			return rc;
	}
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 2) || !bk_mapb_str(&b, "milestone_id", m->id))
		return oom(x);
	rc = copy_cmd(x, &b, BK_EV_MILESTONE_CHANGED);
	if (rc != BK_DR_OK)
		return rc;
	return emit(x, BK_EV_MILESTONE_CHANGED, row->to, 0, bk_mapb_done(&b));
}
