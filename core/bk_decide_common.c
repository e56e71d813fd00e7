/*
 * bk_decide_common.c - what every handler of the decider uses: rejections, events
 * emitted and sealed in order (emit is the only writer of d->events), the status event
 * and the card closings a terminal status implies, and the payload helpers that reject
 * with a message naming the field.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bk_codec.h"
#include "bk_decide_int.h"
#include "bk_schema.h"
#include "bk_ids.h"
#include "bk_money.h"
#include "bk_time.h"
#include "bk_upcast.h"

void reject_with(dctx *x, bk_err code, const char *fmt, ...)
{
	x->d->outcome = BK_REJECTED;
	x->d->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->d->message, sizeof(x->d->message), fmt, ap);
	va_end(ap);
}

/* --- emitting events ---------------------------------------------------------------- */

const char *zstr(dctx *x, const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *p = msgpack_zone_malloc(x->z, n + 1);
	if (p)
		memcpy(p, s, n + 1);
	return p;
}

/* Mint a sub-entity id (client-given id wins, see callers). */
const char *mint(dctx *x, const char *prefix, const char *label)
{
	char buf[BK_ID_MAX];
	bk_id_derive(buf, prefix, x->cmd->id, label, x->id_idx++);
	return zstr(x, buf);
}

/* Append an event and seal it (seq, prev_hash, hash). BK_DR_FAILED when there are
 * too many or on OOM. */
bk_dres emit(dctx *x, bk_ev_type type, uint8_t sub, uint8_t card_type, bk_val payload)
{
	if (x->d->n_events >= BK_MAX_EVENTS) {
		snprintf(x->d->message, sizeof(x->d->message), "too many events for one command");
		return BK_DR_FAILED;
	}
	bk_event *e = &x->evs[x->d->n_events];
	memset(e, 0, sizeof(*e));
	char id[BK_ID_MAX];
	bk_id_derive(id, "tev_", x->ev_cmd_id, "event", x->ev_idx++);
	e->event_id = zstr(x, id);
	e->order_id = x->cmd->order_id;
	e->seq = x->next_seq;
	e->type = (uint8_t)type;
	e->sub = sub;
	e->card_type = card_type;
	e->actor_user_id = x->ev_actor;
	e->command_id = x->ev_cmd_id;
	e->created_at = x->ev_at;
	e->payload = payload;
	/* its type's current schema, with the order facts it carries (money: currency) */
	bk_upcast_ctx uc = {x->o ? x->o->currency : NULL};
	memcpy(e->prev_hash, x->prev, BK_HASH_LEN);
	if (!e->event_id || bk_event_stamp(e, &uc, x->z) < 0 ||
	    bk_codec_event_seal(e, x->scratch) < 0)
		return oom(x);
	/* keep the hashed bytes: the record encoder splices them instead of packing again */
	uint8_t *canon = msgpack_zone_malloc(x->z, x->scratch->size);
	if (canon) {
		memcpy(canon, x->scratch->data, x->scratch->size);
		e->canon = canon;
		e->canon_len = (uint32_t)x->scratch->size;
	}
	x->prev = e->hash;
	x->next_seq++;
	x->d->n_events++;
	return BK_DR_OK;
}

bk_dres emit_status_by(dctx *x, bk_cmd_type cause, bk_status from, bk_status to, const char *reason,
		       int side)
{
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 6) || !bk_mapb_str(&b, "from", bk_status_name(from)) ||
	    !bk_mapb_str(&b, "to", bk_status_name(to)) ||
	    !bk_mapb_str(&b, "cause", bk_cmd_name(cause)))
		return oom(x);
	if (reason && !bk_mapb_str(&b, "reason", reason))
		return oom(x);
	if (side >= 0 &&
	    !bk_mapb_str(&b, "side", side == BK_ST_CANCELLED_BUYER ? "buyer" : "provider"))
		return oom(x);
	if (to == BK_ST_CONFIRMED) {
		if (!bk_mapb_str(&b, "chat_thread_id", mint(x, "cht_", "chat")) ||
		    !bk_mapb_str(&b, "location_address", x->o->location_address))
			return oom(x);
	}
	return emit(x, BK_EV_ORDER_STATUS, (uint8_t)to, 0, bk_mapb_done(&b));
}

BK_MUSTCHECK static bk_dres emit_status(dctx *x, bk_status from, bk_status to, const char *reason,
					int side)
{
	return emit_status_by(x, (bk_cmd_type)x->cmd->type, from, to, reason, side);
}

bk_dres emit_card_simple(dctx *x, const bk_card *c, bk_card_verb verb)
{
	bk_mapb b;
	if (!bk_mapb_init(&b, x->z, 2) || !bk_mapb_str(&b, "card_id", c->id))
		return oom(x);
	if ((verb == BK_CV_EXPIRED || verb == BK_CV_EXPIRING) &&
	    !bk_mapb_ts(&b, "expires_at", c->expires_at))
		return oom(x);
	return emit(x, BK_EV_CARD, (uint8_t)verb, c->type, bk_mapb_done(&b));
}

/* Terminal status reached: close the order's open, accepted and declined cards. */
bk_dres close_cards(dctx *x, bk_status to)
{
	if (!bk_status_is_terminal(to))
		return BK_DR_OK;
	for (uint32_t i = 0; i < x->o->n_cards; i++) {
		const bk_card *c = &x->o->cards[i];
		if (!bk_card_row_find(BK_CO_CLOSE, (bk_card_type)c->type, c->state))
			continue;
		bk_dres rc = emit_card_simple(x, c, BK_CV_CLOSED);
		if (rc != BK_DR_OK)
			return rc;
	}
	return BK_DR_OK;
}

/* Status event (when the row moves the order) and the card closings it implies. */
bk_dres finish_status(dctx *x, const char *reason, int side)
{
	if (x->to == BK_ST_SAME || x->to == (bk_status)x->o->status)
		return BK_DR_OK;
	bk_dres rc = emit_status(x, (bk_status)x->o->status, x->to, reason, side);
	if (rc != BK_DR_OK)
		return rc;
	return close_cards(x, x->to);
}

/* --- payload helpers ---------------------------------------------------------------- */

/* An optional client-given sub-entity id (payload.<key>), else a derived one, in
 * *ret_id (zone memory) on BK_DR_OK. */
bk_dres id_or_mint(dctx *x, const char *key, const char *prefix, const char **ret_id)
{
	const bk_val *pl = &x->cmd->payload;
	const char *s;
	size_t n;
	if (bk_get_str(&x->v, pl, key, false, &s, &n) < 0)
		return invalid(x);
	if (s) {
		if (!bk_id_valid(s, n, NULL))
			return reject(x, BK_E_VALIDATION_FAILED, "payload.%s: not a valid id", key);
		char *p = msgpack_zone_malloc(x->z, n + 1);
		if (!p)
			return oom(x);
		memcpy(p, s, n);
		p[n] = 0;
		*ret_id = p;
		return BK_DR_OK;
	}
	const char *m = mint(x, prefix, key);
	if (!m)
		return oom(x);
	*ret_id = m;
	return BK_DR_OK;
}

/* Optional expires_at that must lie after the command's time. */
bk_dres get_expiry(dctx *x, const bk_val *map, int64_t *ret)
{
	if (bk_get_ts(&x->v, map, "expires_at", false, ret) < 0)
		return invalid(x);
	if (*ret != BK_TS_NONE && *ret <= x->cmd->at)
		return reject(x, BK_E_VALIDATION_FAILED,
			      "%s.expires_at: must be after the command's at", x->v.path);
	return BK_DR_OK;
}

/* Optional short text copied into the payload under the same key. */
static bk_dres copy_text(dctx *x, bk_mapb *b, const char *key, bool req, size_t max)
{
	const bk_val *pl = &x->cmd->payload;
	const char *s;
	size_t n;
	if (bk_get_str(&x->v, pl, key, req, &s, &n) < 0)
		return invalid(x);
	if (!s)
		return BK_DR_OK;
	if (n > max || (req && n == 0))
		return reject(x, BK_E_VALIDATION_FAILED, "payload.%s: 1 to %zu bytes", key, max);
	if (!bk_mapb_strn(b, key, s, n))
		return oom(x);
	return BK_DR_OK;
}

/* The fields of event type t's schema that come from the command (bk_fsrc), copied in
 * schema order: a new one is a schema row, no code here. */
bk_dres copy_cmd(dctx *x, bk_mapb *b, bk_ev_type t)
{
	for (const bk_field *f = bk_schemas[t].fields; f->key; f++) {
		if (f->src == BK_S_DECIDER)
			continue;
		bk_dres rc = copy_text(x, b, f->key, f->src == BK_S_CMD_REQUIRED, f->max);
		if (rc != BK_DR_OK)
			return rc;
	}
	return BK_DR_OK;
}

/* Line items of a command payload with ids minted; totals checked. */
bk_dres client_items(dctx *x, const bk_val *map, const char *path, bk_li_view **ret,
		     uint32_t *ret_n, int64_t *ret_sum)
{
	const bk_val *arr;
	bool ovf = false;
	bk_vctx v = {x->v.err, x->v.errsz, path};
	if (bk_get_arr(&v, map, "line_items", true, &arr) < 0 ||
	    bk_li_parse(&v, arr, true, x->z, ret, ret_n, &ovf) < 0) {
		x->d->outcome = BK_REJECTED;
		x->d->code = ovf ? BK_E_OVERFLOW : BK_E_VALIDATION_FAILED;
		return BK_DR_REJECTED;
	}
	int64_t sum = 0;
	for (uint32_t i = 0; i < *ret_n; i++) {
		bk_li_view *l = &(*ret)[i];
		if (!l->id) {
			l->id = mint(x, "li_", "line_item");
			if (!l->id)
				return oom(x);
			l->id_n = strlen(l->id);
		}
		if (!bk_cents_add(sum, l->total_cents, &sum))
			return reject(x, BK_E_OVERFLOW,
				      "%s.line_items: the sum overflows the schema's int", path);
	}
	*ret_sum = sum;
	return BK_DR_OK;
}

bk_dres get_cents(dctx *x, const bk_val *map, const char *key, bool req, int64_t *ret, int64_t min)
{
	bool present = false;
	if (bk_get_int(&x->v, map, key, req, ret, &present) < 0)
		return invalid(x);
	if (!present) {
		*ret = 0;
		return BK_DR_OK;
	}
	if (*ret < min || !bk_cents_fits(*ret))
		return reject(x, *ret > 0 ? BK_E_OVERFLOW : BK_E_VALIDATION_FAILED,
			      "%s.%s: expected %lld to 2147483647 cents", x->v.path, key,
			      (long long)min);
	return BK_DR_OK;
}
