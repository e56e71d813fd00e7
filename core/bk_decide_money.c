/*
 * bk_decide_money.c - the decider's money: the totals after a change (money_with, which
 * rejects an overflow of the schema's int), payment.captured, refunds as refund line items
 * (never more than paid and not yet refunded), tip.add.
 */
#include <string.h>

#include "bk_decide_int.h"
#include "bk_money.h"

/* New money after replacing/adding items or fees, in *ret; BK_DR_REJECTED on overflow. */
bk_dres money_with(dctx *x, const bk_items *base, const bk_li_view *add, uint32_t n_add,
		   int64_t fee, int64_t tax, int64_t tip, bk_money *ret)
{
	bk_money m = x->o ? x->o->money : (bk_money){0};
	int64_t sub = 0, total;
	if (base)
		for (uint32_t i = 0; i < base->n; i++)
			if (!bk_cents_add(sub, base->v[i].total_cents, &sub))
				goto ovf;
	for (uint32_t i = 0; i < n_add; i++)
		if (!bk_cents_add(sub, add[i].total_cents, &sub))
			goto ovf;
	if (!bk_cents_add(sub, fee, &total) || !bk_cents_add(total, tax, &total) ||
	    !bk_cents_add(total, tip, &total))
		goto ovf;
	m.subtotal = sub;
	m.fee = fee;
	m.tax = tax;
	m.tip = tip;
	m.total = total;
	*ret = m;
	return BK_DR_OK;
ovf:
	return reject(x, BK_E_OVERFLOW, "the order's total would overflow the schema's int");
}

bk_dres d_payment(dctx *x, const rowset *rs)
{
	const bk_val *pl = &x->cmd->payload;
	int64_t amount;
	bk_dres rc;
	const char *pi;
	size_t pin;
	if (bk_get_str(&x->v, pl, "payment_intent_id", true, &pi, &pin) < 0)
		return invalid(x);
	rc = get_cents(x, pl, "amount_cents", true, &amount, 0);
	if (rc != BK_DR_OK)
		return rc;
	x->f.amount_is_total = amount == x->o->money.total;
	rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 4) || !bk_mapb_strn(&b, "payment_intent_id", pi, pin) ||
	    !bk_mapb_int(&b, "amount_cents", amount))
		return oom(x);
	rc = copy_cmd(x, &b, BK_EV_PAYMENT_CAPTURED);
	if (rc != BK_DR_OK)
		return rc;
	if (!bk_mapb_int(&b, "paid_cents", x->o->money.paid + amount))
		return oom(x);
	rc = emit(x, BK_EV_PAYMENT_CAPTURED, 0, 0, bk_mapb_done(&b));
	if (rc != BK_DR_OK)
		return rc;
	return finish_status(x, NULL, -1);
}

/* A refund of `amount` (> 0) as a refund line item; `why` names its cause. */
bk_dres emit_refund(dctx *x, int64_t amount, const char *why)
{
	int64_t left = x->o->money.paid - x->o->money.refunded;
	if (amount > left)
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.refund_cents: %lld exceeds the %lld cents paid and not yet "
			      "refunded",
			      (long long)amount, (long long)left);
	bk_li_view li = {
	    mint(x, "li_", "refund"), 0, BK_LI_REFUND, why, strlen(why), 1, -amount, -amount};
	if (!li.id)
		return oom(x);
	li.id_n = strlen(li.id);
	bk_money m;
	bk_dres rc = money_with(x, &x->o->items, &li, 1, x->o->money.fee, x->o->money.tax,
				x->o->money.tip, &m);
	if (rc != BK_DR_OK)
		return rc;
	bk_val arr, totals;
	if (!bk_li_build(x->z, &li, 1, &arr) || !bk_totals_build(x->z, &m, &totals))
		return oom(x);
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 4) || !bk_mapb_int(&b, "refund_cents", amount) ||
	    !bk_mapb_val(&b, "line_item", arr.via.array.ptr[0]) ||
	    !bk_mapb_int(&b, "refunded_cents", x->o->money.refunded + amount) ||
	    !bk_mapb_val(&b, "totals", totals))
		return oom(x);
	return emit(x, BK_EV_PAYMENT_REFUNDED, 0, 0, bk_mapb_done(&b));
}

bk_dres d_tip(dctx *x, const rowset *rs)
{
	const bk_val *pl = &x->cmd->payload;
	bk_dres rc = pick_row(x, rs);
	if (rc != BK_DR_OK)
		return rc;
	int64_t amount, tip;
	rc = get_cents(x, pl, "amount_cents", true, &amount, 1);
	if (rc != BK_DR_OK)
		return rc;
	if (!bk_cents_add(x->o->money.tip, amount, &tip))
		return reject(x, BK_E_OVERFLOW, "the tip would overflow the schema's int");
	bk_money m;
	rc = money_with(x, &x->o->items, NULL, 0, x->o->money.fee, x->o->money.tax, tip, &m);
	if (rc != BK_DR_OK)
		return rc;
	bk_val totals;
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 3) || !bk_mapb_int(&b, "amount_cents", amount) ||
	    !bk_mapb_int(&b, "tip_cents", tip) || !bk_totals_build(x->z, &m, &totals) ||
	    !bk_mapb_val(&b, "totals", totals))
		return oom(x);
	return emit(x, BK_EV_TIP_ADDED, 0, 0, bk_mapb_done(&b));
}
