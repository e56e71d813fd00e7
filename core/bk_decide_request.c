/*
 * bk_decide_request.c - the decider's commands on requests and invites: request.submit
 * (auto-accepted when a rule matches), invite.send/respond/award, request.accept,
 * decline, counter, accept_counter, decline_counter. Each acts on the order's live request.
 */
#include <string.h>

#include "bk_decide_int.h"
#include "bk_ids.h"

bk_dres d_submit(dctx *x, const rowset *rs)
{
	const bk_val *pl = &x->cmd->payload;
	const bk_order *o = x->o;
	const bk_profile_rules *pr =
	    bk_ruleset_get_owned(x->ctx->rules, o->service_profile, o->provider);
	bk_rule_subject subj = {o->money.subtotal, o->start_ts, o->timezone, o->has_travel,
				o->travel_miles};
	x->f.rule = bk_rules_match(pr, &subj, false, x->ctx->tz, x->ctx->tz_opaque);
	x->f.rule_ib = bk_rules_match(pr, &subj, true, x->ctx->tz, x->ctx->tz_opaque);
	bk_dres rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	int64_t exp;
	rc = get_expiry(x, pl, &exp);
	if (rc != BK_DR_OK)
		return rc;
	const char *rid = NULL;
	rc = id_or_mint(x, "request_id", "req_", &rid);
	if (rc != BK_DR_OK)
		return rc;
	if (bk_order_request(o, rid, strlen(rid)))
		return reject(x, BK_E_VALIDATION_FAILED, "payload.request_id: %s already exists",
			      rid);
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 5) || !bk_mapb_str(&b, "request_id", rid) ||
	    !bk_mapb_str(&b, "mode", bk_mode_name((bk_mode)o->mode)))
		return oom(x);
	rc = copy_cmd(x, &b, BK_EV_REQUEST_SUBMITTED);
	if (rc != BK_DR_OK)
		return rc;
	if (!bk_mapb_ts(&b, "expires_at", exp))
		return oom(x);
	rc = emit(x, BK_EV_REQUEST_SUBMITTED, 0, 0, bk_mapb_done(&b));
	if (rc != BK_DR_OK)
		return rc;
	const bk_rule *r = o->mode == BK_MODE_IB ? x->f.rule_ib : x->f.rule;
	if (x->to == BK_ST_ACCEPTED && r) {
		bk_mapb a;
		if (!bk_mapb_init(&a, x->z, 3) || !bk_mapb_str(&a, "request_id", rid) ||
		    !bk_mapb_str(&a, "by", "rule") || !bk_mapb_str(&a, "rule_id", r->rule_id))
			return oom(x);
		rc = emit(x, BK_EV_REQUEST_ACCEPTED, 0, 0, bk_mapb_done(&a));
		if (rc != BK_DR_OK)
			return rc;
	}
	return finish_status(x, NULL, -1);
}

bk_dres d_invite_send(dctx *x, const rowset *rs)
{
	const bk_val *pl = &x->cmd->payload;
	bk_dres rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	const bk_val *arr;
	if (bk_get_arr(&x->v, pl, "recipients", true, &arr) < 0)
		return invalid(x);
	uint32_t n = arr->via.array.size;
	if (n < 1 || n > 50)
		return reject(x, BK_E_VALIDATION_FAILED, "payload.recipients: 1 to 50 user ids");
	for (uint32_t i = 0; i < n; i++) {
		const bk_val *u = &arr->via.array.ptr[i];
		if (u->type != MSGPACK_OBJECT_STR ||
		    !bk_id_valid(u->via.str.ptr, u->via.str.size, NULL))
			return reject(x, BK_E_VALIDATION_FAILED,
				      "payload.recipients[%u]: expected a user id", i);
		if (u->via.str.size == strlen(x->o->buyer) &&
		    memcmp(u->via.str.ptr, x->o->buyer, u->via.str.size) == 0)
			return reject(x, BK_E_VALIDATION_FAILED,
				      "payload.recipients[%u]: the buyer cannot invite themself",
				      i);
		for (uint32_t j = 0; j < i; j++) {
			const bk_val *w = &arr->via.array.ptr[j];
			if (w->via.str.size == u->via.str.size &&
			    memcmp(w->via.str.ptr, u->via.str.ptr, u->via.str.size) == 0)
				return reject(x, BK_E_VALIDATION_FAILED,
					      "payload.recipients[%u]: listed twice", i);
		}
	}
	int64_t exp;
	rc = get_expiry(x, pl, &exp);
	if (rc != BK_DR_OK)
		return rc;
	const char *iid = NULL;
	rc = id_or_mint(x, "invite_id", "req_", &iid);
	if (rc != BK_DR_OK)
		return rc;
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 4) || !bk_mapb_str(&b, "invite_id", iid) ||
	    !bk_mapb_val(&b, "recipients", *arr) || !bk_mapb_ts(&b, "expires_at", exp))
		return oom(x);
	rc = copy_cmd(x, &b, BK_EV_INVITE_SENT);
	if (rc != BK_DR_OK)
		return rc;
	rc = emit(x, BK_EV_INVITE_SENT, 0, 0, bk_mapb_done(&b));
	if (rc != BK_DR_OK)
		return rc;
	return finish_status(x, NULL, -1);
}

/* The order's live request (pending or countered), optionally named by payload.request_id;
 * *ret_req on BK_DR_OK. */
BK_MUSTCHECK static bk_dres live_request(dctx *x, const bk_request **ret_req)
{
	const bk_val *pl = &x->cmd->payload;
	const char *s;
	size_t n;
	if (bk_get_str(&x->v, pl, "request_id", false, &s, &n) < 0)
		return invalid(x);
	for (uint32_t i = x->o->n_reqs; i-- > 0;) {
		const bk_request *r = &x->o->reqs[i];
		if (s && (strlen(r->id) != n || memcmp(r->id, s, n) != 0))
			continue;
		if (bk_life_open(BK_LIFE_REQUEST, r->status)) {
			*ret_req = r;
			return BK_DR_OK;
		}
		if (s && r->status == BK_RQ_EXPIRED)
			return reject(x, BK_E_EXPIRED, "request %s expired", r->id);
	}
	return reject(x, BK_E_NOT_FOUND, "order %s has no open request%s%.*s", x->cmd->order_id,
		      s ? " " : "", s ? (int)n : 0, s ? s : "");
}

bk_dres d_invite_respond(dctx *x, const rowset *rs)
{
	bk_dres rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	const bk_request *r = NULL;
	rc = live_request(x, &r);
	if (rc != BK_DR_OK)
		return rc;
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 3) || !bk_mapb_str(&b, "invite_id", r->id) ||
	    !bk_mapb_str(&b, "recipient_user_id", x->cmd->actor_user_id))
		return oom(x);
	rc = copy_cmd(x, &b, BK_EV_INVITE_RESPONDED);
	if (rc != BK_DR_OK)
		return rc;
	return emit(x, BK_EV_INVITE_RESPONDED, 0, 0, bk_mapb_done(&b));
}

bk_dres d_invite_award(dctx *x, const rowset *rs)
{
	const bk_val *pl = &x->cmd->payload;
	bk_dres rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	const bk_request *r = NULL;
	rc = live_request(x, &r);
	if (rc != BK_DR_OK)
		return rc;
	const char *u, *sp;
	size_t un, spn;
	if (bk_get_str(&x->v, pl, "recipient_user_id", true, &u, &un) < 0)
		return invalid(x);
	if (bk_get_str(&x->v, pl, "service_profile_id", true, &sp, &spn) < 0)
		return invalid(x);
	if (!bk_id_valid(sp, spn, NULL))
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.service_profile_id: not a valid id");
	const bk_recipient *w = bk_order_recipient(x->o, u, un);
	if (!w)
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.recipient_user_id: %.*s was not invited", (int)un, u);
	if (!bk_life_allows(BK_LIFE_RECIPIENT, BK_CMD_INVITE_AWARD, w->status, BK_RC_AWARDED))
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.recipient_user_id: %.*s has not responded to the invite",
			      (int)un, u);
	bk_val others;
	uint32_t n_others = 0;
	if (!bk_val_arr(x->z, x->o->n_rcps ? x->o->n_rcps - 1 : 0, &others))
		return oom(x);
	for (uint32_t i = 0; i < x->o->n_rcps; i++)
		if (&x->o->rcps[i] != w)
			others.via.array.ptr[n_others++] =
			    bk_val_str(x->z, x->o->rcps[i].user_id, strlen(x->o->rcps[i].user_id));
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 4) || !bk_mapb_str(&b, "invite_id", r->id) ||
	    !bk_mapb_strn(&b, "recipient_user_id", u, un) ||
	    !bk_mapb_strn(&b, "service_profile_id", sp, spn) ||
	    !bk_mapb_val(&b, "not_awarded", others))
		return oom(x);
	rc = emit(x, BK_EV_INVITE_AWARDED, 0, 0, bk_mapb_done(&b));
	if (rc != BK_DR_OK)
		return rc;
	return finish_status(x, NULL, -1);
}

bk_dres d_request_simple(dctx *x, const rowset *rs, bk_ev_type type)
{
	bk_dres rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	const bk_request *r = NULL;
	rc = live_request(x, &r);
	if (rc != BK_DR_OK)
		return rc;
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 2) || !bk_mapb_str(&b, "request_id", r->id))
		return oom(x);
	rc = copy_cmd(x, &b, type);
	if (rc != BK_DR_OK)
		return rc;
	rc = emit(x, type, 0, 0, bk_mapb_done(&b));
	if (rc != BK_DR_OK)
		return rc;
	return finish_status(x, NULL, -1);
}

bk_dres d_counter(dctx *x, const rowset *rs)
{
	const bk_val *pl = &x->cmd->payload;
	bk_dres rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	const bk_request *r = NULL;
	rc = live_request(x, &r);
	if (rc != BK_DR_OK)
		return rc;
	bk_li_view *items;
	uint32_t n;
	int64_t sum, fee, tax, exp;
	rc = client_items(x, pl, "payload", &items, &n, &sum);
	if (rc != BK_DR_OK)
		return rc;
	rc = get_cents(x, pl, "platform_fee_cents", true, &fee, 0);
	if (rc != BK_DR_OK)
		return rc;
	rc = get_cents(x, pl, "tax_cents", true, &tax, 0);
	if (rc != BK_DR_OK)
		return rc;
	rc = get_expiry(x, pl, &exp);
	if (rc != BK_DR_OK)
		return rc;
	bk_money m;
	rc = money_with(x, NULL, items, n, fee, tax, x->o->money.tip, &m);
	if (rc != BK_DR_OK)
		return rc;
	bk_val arr, totals;
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 7) || !bk_mapb_str(&b, "request_id", r->id) ||
	    !bk_li_build(x->z, items, n, &arr) || !bk_mapb_val(&b, "line_items", arr) ||
	    !bk_mapb_int(&b, "platform_fee_cents", fee) || !bk_mapb_int(&b, "tax_cents", tax) ||
	    !bk_totals_build(x->z, &m, &totals) || !bk_mapb_val(&b, "totals", totals) ||
	    !bk_mapb_ts(&b, "expires_at", exp))
		return oom(x);
	rc = copy_cmd(x, &b, BK_EV_REQUEST_COUNTERED);
	if (rc != BK_DR_OK)
		return rc;
	rc = emit(x, BK_EV_REQUEST_COUNTERED, 0, 0, bk_mapb_done(&b));
	if (rc != BK_DR_OK)
		return rc;
	return finish_status(x, NULL, -1);
}

bk_dres d_accept_counter(dctx *x, const rowset *rs)
{
	bk_dres rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	const bk_request *r = NULL;
	rc = live_request(x, &r);
	if (rc != BK_DR_OK)
		return rc;
	if (!bk_life_allows(BK_LIFE_REQUEST, (bk_cmd_type)x->cmd->type, r->status, -1))
		return reject(x, BK_E_INVALID_TRANSITION, "request %s has no counter-offer", r->id);
	bk_li_view *v = r->offer.n ? msgpack_zone_malloc(x->z, sizeof(*v) * r->offer.n) : NULL;
	if (r->offer.n && !v)
		return oom(x);
	for (uint32_t i = 0; i < r->offer.n; i++) {
		const bk_line_item *l = &r->offer.v[i];
		v[i] =
		    (bk_li_view){l->id,	 strlen(l->id), l->kind,       l->title, strlen(l->title),
				 l->qty, l->unit_cents, l->total_cents};
	}
	bk_money m;
	rc = money_with(x, NULL, v, r->offer.n, r->offer_fee_cents, r->offer_tax_cents,
			x->o->money.tip, &m);
	if (rc != BK_DR_OK)
		return rc;
	bk_val arr, totals;
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 5) || !bk_mapb_str(&b, "request_id", r->id) ||
	    !bk_li_build(x->z, v, r->offer.n, &arr) || !bk_mapb_val(&b, "line_items", arr) ||
	    !bk_mapb_int(&b, "platform_fee_cents", r->offer_fee_cents) ||
	    !bk_mapb_int(&b, "tax_cents", r->offer_tax_cents) ||
	    !bk_totals_build(x->z, &m, &totals) || !bk_mapb_val(&b, "totals", totals))
		return oom(x);
	rc = emit(x, BK_EV_REQUEST_COUNTER_ACCEPTED, 0, 0, bk_mapb_done(&b));
	if (rc != BK_DR_OK)
		return rc;
	return finish_status(x, NULL, -1);
}
