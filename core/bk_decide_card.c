/*
 * bk_decide_card.c - the decider's action cards: card.open (superseding an open card of
 * the same type), card.respond (accept, decline, counter...: bk_card_table row and who may
 * act) and card.cancel. An accepted card's effect (line items, reschedule) is emitted here.
 */
#include <string.h>

#include "bk_decide_int.h"

/* Validate a card's type-specific terms; fills extras' line items with minted ids. */
BK_MUSTCHECK static bk_dres card_terms(dctx *x, bk_card_type t, const bk_val *terms, bk_val *ret)
{
	bk_vctx saved = x->v;
	x->v.path = "payload.payload";
	bk_dres rc = BK_DR_OK;
	const bk_val *p = terms;
	switch (t) {
	case BK_CT_RESCHEDULE: {
		int64_t s, e;
		if (bk_get_ts(&x->v, p, "start_ts", true, &s) < 0 ||
		    bk_get_ts(&x->v, p, "end_ts", true, &e) < 0) {
			rc = invalid(x);
			break;
		}
		if (e <= s) {
			rc = reject(x, BK_E_VALIDATION_FAILED,
				    "payload.payload.end_ts: must be after start_ts");
			break;
		}
		*ret = *terms;
		break;
	}
	case BK_CT_EXTRAS: {
		bk_li_view *items;
		uint32_t n;
		int64_t sum;
		rc = client_items(x, p, "payload.payload", &items, &n, &sum);
		if (rc != BK_DR_OK)
			break;
		if (n == 0) {
			rc = reject(x, BK_E_VALIDATION_FAILED,
				    "payload.payload.line_items: at least one extra");
			break;
		}
		bk_val arr;
		bk_mapb b;
		if (!bk_li_build(x->z, items, n, &arr) || !bk_mapb_init(&b, x->z, 1) ||
		    !bk_mapb_val(&b, "line_items", arr)) {
			rc = oom(x);
			break;
		}
		*ret = bk_mapb_done(&b);
		break;
	}
	case BK_CT_EXPENSE: {
		const char *s;
		size_t n;
		int64_t a;
		if (bk_get_str(&x->v, p, "title", true, &s, &n) < 0) {
			rc = invalid(x);
			break;
		}
		if (n == 0 || n > 500) {
			rc = reject(x, BK_E_VALIDATION_FAILED,
				    "payload.payload.title: 1 to 500 bytes");
			break;
		}
		rc = get_cents(x, p, "amount_cents", true, &a, 1);
		if (rc != BK_DR_OK)
			break;
		*ret = *terms;
		break;
	}
	case BK_CT_DISPUTE: {
		const char *s;
		size_t n;
		if (bk_get_str(&x->v, p, "reason", true, &s, &n) < 0) {
			rc = invalid(x);
			break;
		}
		*ret = *terms;
		break;
	}
	default:
		*ret = *terms;
	}
	x->v = saved;
	return rc;
}

/* Emit card.<t>.proposed for a new card (superseding an open one of the same type). */
BK_MUSTCHECK static bk_dres open_card(dctx *x, bk_card_type t, const char *card_id,
				      const bk_val *terms, int64_t due, int64_t exp)
{
	for (uint32_t i = 0; i < x->o->n_cards; i++) {
		const bk_card *c = &x->o->cards[i];
		if (c->type != t || c->state != BK_CS_OPEN)
			continue;
		if (!bk_card_row_find(BK_CO_SUPERSEDE, t, c->state))
			continue;
		bk_mapb s;
		if (!bk_mapb_init(&s, x->z, 2) || !bk_mapb_str(&s, "card_id", c->id) ||
		    !bk_mapb_str(&s, "superseded_by", card_id))
			return oom(x);
		bk_dres rc = emit(x, BK_EV_CARD, BK_CV_SUPERSEDED, (uint8_t)t, bk_mapb_done(&s));
		if (rc != BK_DR_OK)
			return rc;
	}
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 8) || !bk_mapb_str(&b, "card_id", card_id) ||
	    !bk_mapb_str(&b, "type", bk_card_type_name(t)) ||
	    !bk_mapb_str(&b, "created_by", x->cmd->actor_user_id) ||
	    !bk_mapb_str(&b, "creator_role", bk_role_name((bk_role)x->cmd->actor_role)) ||
	    !bk_mapb_ts(&b, "due_at", due) || !bk_mapb_ts(&b, "expires_at", exp) ||
	    !bk_mapb_val(&b, "payload", *terms))
		return oom(x);
	return emit(x, BK_EV_CARD, BK_CV_PROPOSED, (uint8_t)t, bk_mapb_done(&b));
}

bk_dres d_card_open(dctx *x, const rowset *rs)
{
	const bk_val *pl = &x->cmd->payload;
	const char *s;
	size_t n;
	bk_dres rc;
	if (bk_get_str(&x->v, pl, "type", true, &s, &n) < 0)
		return invalid(x);
	int t = bk_card_type_from(s, n);
	if (t < 0)
		return reject(
		    x, BK_E_VALIDATION_FAILED,
		    "payload.type: expected reschedule, extras, proofs, expense, complete "
		    "or dispute");
	x->f.card_type = t;
	rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	const bk_card_row *row = bk_card_row_find(BK_CO_OPEN, (bk_card_type)t, BK_CS_NONE);
	if (!row || !(row->openers & BK_RM(x->cmd->actor_role)))
		return reject(x, BK_E_FORBIDDEN, "a %s may not open a %s card",
			      bk_role_name((bk_role)x->cmd->actor_role), s);
	const char *cid = NULL;
	rc = id_or_mint(x, "card_id", "acd_", &cid);
	if (rc != BK_DR_OK)
		return rc;
	if (bk_order_card(x->o, cid, strlen(cid)))
		return reject(x, BK_E_VALIDATION_FAILED, "payload.card_id: %s already exists", cid);
	int64_t due, exp;
	if (bk_get_ts(&x->v, pl, "due_at", false, &due) < 0)
		return invalid(x);
	rc = get_expiry(x, pl, &exp);
	if (rc != BK_DR_OK)
		return rc;
	const bk_val *terms;
	bk_val empty = {.type = MSGPACK_OBJECT_MAP};
	if (bk_get_map(&x->v, pl, "payload",
		       t == BK_CT_RESCHEDULE || t == BK_CT_EXTRAS || t == BK_CT_EXPENSE ||
			   t == BK_CT_DISPUTE,
		       &terms) < 0)
		return invalid(x);
	if (!terms)
		terms = &empty;
	bk_val tv;
	rc = card_terms(x, (bk_card_type)t, terms, &tv);
	if (rc != BK_DR_OK)
		return rc;
	rc = open_card(x, (bk_card_type)t, cid, &tv, due, exp);
	if (rc != BK_DR_OK)
		return rc;
	if (t == BK_CT_DISPUTE) {
		bk_mapb b;
		if (!bk_mapb_init(&b, x->z, 5) ||
		    !bk_mapb_str(&b, "dispute_id", mint(x, "dsp_", "dispute")) ||
		    !bk_mapb_str(&b, "opened_by", bk_role_name((bk_role)x->cmd->actor_role)) ||
		    !bk_mapb_val(&b, "reason", *bk_map_get(&tv, "reason")) ||
		    !bk_mapb_str(&b, "card_id", cid) ||
		    !bk_mapb_str(&b, "from_status", bk_status_name((bk_status)x->o->status)))
			return oom(x);
		rc = emit(x, BK_EV_DISPUTE_OPENED, 0, 0, bk_mapb_done(&b));
		if (rc != BK_DR_OK)
			return rc;
	}
	return finish_status(x, NULL, -1);
}

/* The card payload.card_id names. */
BK_MUSTCHECK static bk_dres find_card(dctx *x, const bk_card **ret_card)
{
	const bk_val *pl = &x->cmd->payload;
	const char *s;
	size_t n;
	if (bk_get_str(&x->v, pl, "card_id", true, &s, &n) < 0)
		return invalid(x);
	const bk_card *c = bk_order_card(x->o, s, n);
	if (!c)
		return reject(x, BK_E_NOT_FOUND, "payload.card_id: order %s has no card %.*s",
			      x->cmd->order_id, (int)n, s);
	*ret_card = c;
	return BK_DR_OK;
}

/* The actor's relation to the card's creator, against the row's rule. */
BK_MUSTCHECK static bk_dres card_who(dctx *x, const bk_card *c, const bk_card_row *row,
				     const char *what)
{
	const char *u = x->cmd->actor_user_id ? x->cmd->actor_user_id : "";
	bool creator = strcmp(u, c->created_by) == 0;
	bool ok = row->who == BK_CW_EITHER || row->who == BK_CW_PARTY ||
		  (row->who == BK_CW_CREATOR && creator) ||
		  (row->who == BK_CW_COUNTERPARTY && !creator);
	if (!ok)
		return reject(x, BK_E_FORBIDDEN, "only the card's %s may %s card %s",
			      bk_card_who_name((bk_card_who)row->who), what, c->id);
	return BK_DR_OK;
}

bk_dres d_card_respond(dctx *x, const rowset *rs)
{
	const bk_val *pl = &x->cmd->payload;
	bk_dres rc;
	const bk_card *c = NULL;
	rc = find_card(x, &c);
	if (rc != BK_DR_OK)
		return rc;
	const char *s;
	size_t n;
	if (bk_get_str(&x->v, pl, "action", true, &s, &n) < 0)
		return invalid(x);
	int op = bk_card_op_from(s, n);
	if (op != BK_CO_ACCEPT && op != BK_CO_APPROVE && op != BK_CO_DECLINE &&
	    op != BK_CO_COUNTER && op != BK_CO_REQUEST_CHANGES && op != BK_CO_UPLOAD)
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.action: expected accept, approve, decline, counter, "
			      "request_changes or upload");
	if (c->state == BK_CS_EXPIRED)
		return reject(x, BK_E_EXPIRED, "card %s expired", c->id);
	const bk_card_row *row = bk_card_row_find((bk_card_op)op, (bk_card_type)c->type, c->state);
	if (!row)
		return reject(x, BK_E_INVALID_TRANSITION, "card %s (%s) is %s; %s does not apply",
			      c->id, bk_card_type_name((bk_card_type)c->type),
			      bk_card_state_name((bk_card_state)c->state), s);
	rc = card_who(x, c, row, s);
	if (rc != BK_DR_OK)
		return rc;
	x->f.completes = c->type == BK_CT_COMPLETE && row->to == BK_CS_ACCEPTED;
	rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	const bk_val *rp;
	bk_val empty = {.type = MSGPACK_OBJECT_MAP};
	if (bk_get_map(&x->v, pl, "payload", op == BK_CO_COUNTER, &rp) < 0)
		return invalid(x);
	if (!rp)
		rp = &empty;
	const char *resp_id = mint(x, "acr_", "response");
	if (!resp_id)
		return oom(x);
	bk_card_verb verb = bk_card_response_verb((bk_card_state)row->to);
	bk_val counter_terms = {.type = MSGPACK_OBJECT_NIL};
	const char *new_id = NULL;
	if (op == BK_CO_COUNTER) {
		rc = card_terms(x, (bk_card_type)c->type, rp, &counter_terms);
		if (rc != BK_DR_OK)
			return rc;
		if (!(new_id = mint(x, "acd_", "counter")))
			return oom(x);
	}
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 9) || !bk_mapb_str(&b, "card_id", c->id) ||
	    !bk_mapb_str(&b, "response_id", resp_id) ||
	    !bk_mapb_str(&b, "action", bk_card_op_name((bk_card_op)op)) ||
	    !bk_mapb_str(&b, "responder_user_id", x->cmd->actor_user_id) ||
	    !bk_mapb_val(&b, "payload", op == BK_CO_COUNTER ? counter_terms : *rp))
		return oom(x);
	if (new_id && !bk_mapb_str(&b, "superseded_by", new_id))
		return oom(x);
	bool applies = verb == BK_CV_ACCEPTED;
	if (applies && (c->type == BK_CT_EXTRAS || c->type == BK_CT_EXPENSE)) {
		bk_li_view one, *v = &one;
		uint32_t nv = 1;
		if (c->type == BK_CT_EXTRAS) {
			nv = c->items.n;
			v = msgpack_zone_malloc(x->z, sizeof(*v) * (nv ? nv : 1));
			if (!v)
				return oom(x);
			for (uint32_t i = 0; i < nv; i++) {
				const bk_line_item *l = &c->items.v[i];
				v[i] = (bk_li_view){l->id,	   strlen(l->id),    l->kind,
						    l->title,	   strlen(l->title), l->qty,
						    l->unit_cents, l->total_cents};
			}
		} else {
			one = (bk_li_view){
			    mint(x, "li_", "expense"), 0, BK_LI_ADJUSTMENT, c->title,
			    strlen(c->title),	       1, c->amount_cents,  c->amount_cents};
			if (!one.id)
				return oom(x);
			one.id_n = strlen(one.id);
		}
		bk_money m;
		rc = money_with(x, &x->o->items, v, nv, x->o->money.fee, x->o->money.tax,
				x->o->money.tip, &m);
		if (rc != BK_DR_OK)
			return rc;
		bk_val arr, totals;
		if (!bk_li_build(x->z, v, nv, &arr) || !bk_totals_build(x->z, &m, &totals) ||
		    !bk_mapb_val(&b, "line_items", arr) || !bk_mapb_val(&b, "totals", totals))
			return oom(x);
	}
	rc = emit(x, BK_EV_CARD, (uint8_t)verb, c->type, bk_mapb_done(&b));
	if (rc != BK_DR_OK)
		return rc;
	if (applies && c->type == BK_CT_RESCHEDULE) {
		bk_mapb r;
		if (!bk_mapb_init(&r, x->z, 3) || !bk_mapb_str(&r, "card_id", c->id) ||
		    !bk_mapb_ts(&r, "start_ts", c->start_ts) ||
		    !bk_mapb_ts(&r, "end_ts", c->end_ts))
			return oom(x);
		rc = emit(x, BK_EV_CALENDAR_RESCHEDULED, 0, 0, bk_mapb_done(&r));
		if (rc != BK_DR_OK)
			return rc;
	}
	if (new_id) {
		/* the counter is a new card by the responder, replacing this one */
		bk_mapb nb;
		if (!bk_mapb_init(&nb, x->z, 8) || !bk_mapb_str(&nb, "card_id", new_id) ||
		    !bk_mapb_str(&nb, "type", bk_card_type_name((bk_card_type)c->type)) ||
		    !bk_mapb_str(&nb, "created_by", x->cmd->actor_user_id) ||
		    !bk_mapb_str(&nb, "creator_role", bk_role_name((bk_role)x->cmd->actor_role)) ||
		    !bk_mapb_ts(&nb, "expires_at", c->expires_at) ||
		    !bk_mapb_val(&nb, "payload", counter_terms) ||
		    !bk_mapb_str(&nb, "counter_of", c->id))
			return oom(x);
		rc = emit(x, BK_EV_CARD, BK_CV_PROPOSED, c->type, bk_mapb_done(&nb));
		if (rc != BK_DR_OK)
			return rc;
	}
	return finish_status(x, NULL, -1);
}

bk_dres d_card_cancel(dctx *x, const rowset *rs)
{
	bk_dres rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	const bk_card *c = NULL;
	rc = find_card(x, &c);
	if (rc != BK_DR_OK)
		return rc;
	if (c->state == BK_CS_EXPIRED)
		return reject(x, BK_E_EXPIRED, "card %s expired", c->id);
	const bk_card_row *row = bk_card_row_find(BK_CO_CANCEL, (bk_card_type)c->type, c->state);
	if (!row)
		return reject(x, BK_E_INVALID_TRANSITION,
			      "card %s is %s; only open cards can be cancelled", c->id,
			      bk_card_state_name((bk_card_state)c->state));
	rc = card_who(x, c, row, "cancel");
	if (rc != BK_DR_OK)
		return rc;
	return emit_card_simple(x, c, BK_CV_CANCELLED);
}
