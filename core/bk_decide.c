/*
 * bk_decide.c - decide(state, command) -> events | rejection.
 *
 * Order of checks: future time, existence, idempotency (seen command id), lazy expiry
 * (its events are kept even when the command is then rejected), expected_version, the
 * status table (invalid_transition), the actor's role (forbidden), the actor's identity
 * (forbidden), the payload (validation_failed), then the row's guard. Commands on a
 * service profile (profile.bind, autoaccept.*) are judged on the profile instead:
 * idempotency, bk_profile_table (state, role, owner: forbidden), the payload. Whether a
 * move is allowed is only ever answered by the tables of bk_fsm.c.
 */

#include <stdio.h>
#include <string.h>

#include "bk_archive.h"
#include "bk_decide_int.h"
#include "bk_ids.h"
#include "bk_time.h"

const char *bk_outcome_name(bk_outcome o)
{
	switch (o) {
	case BK_ACCEPTED:
		return "accepted";
	case BK_REJECTED:
		return "rejected";
	case BK_DUPLICATE:
		return "duplicate";
	}
	return "?";
}

void bk_decision_clear(bk_decision *d)
{
	if (d && d->has_rules)
		bk_profile_rules_clear(&d->rules);
}

/* --- the tables --------------------------------------------------------------------- */

static bool guard_holds(const dctx *x, bk_guard g)
{
	const bk_order *o = x->o;
	switch (g) {
	case BK_G_NONE:
		return true;
	case BK_G_MODE_RTB_NO_RULE:
		return o->mode == BK_MODE_RTB && !x->f.rule;
	case BK_G_MODE_RTB_RULE:
		return o->mode == BK_MODE_RTB && x->f.rule;
	case BK_G_MODE_IB_RULE:
		return o->mode == BK_MODE_IB && x->f.rule_ib;
	case BK_G_MODE_INVITE:
		return o->mode == BK_MODE_INVITE;
	case BK_G_MODE_RTB:
		return o->mode == BK_MODE_RTB;
	case BK_G_AMOUNT_IS_TOTAL:
		return x->f.amount_is_total;
	case BK_G_SIDE_BUYER:
		return x->f.side == BK_ST_CANCELLED_BUYER;
	case BK_G_SIDE_PROVIDER:
		return x->f.side == BK_ST_CANCELLED_PROVIDER;
	case BK_G_CARD_DISPUTE:
		return x->f.card_type == BK_CT_DISPUTE;
	case BK_G_CARD_OTHER:
		return x->f.card_type != BK_CT_DISPUTE;
	case BK_G_CARD_COMPLETES:
		return x->f.completes;
	case BK_G_CARD_KEEPS:
		return !x->f.completes;
	case BK_G__COUNT:
		break;
	}
	return false;
}

static void list_statuses(bk_cmd_type cmd, char *buf, size_t sz)
{
	uint32_t mask = 0;
	for (size_t i = 0; i < bk_status_table_len; i++)
		if (bk_status_table[i].cmd == cmd)
			mask |= bk_status_table[i].from;
	size_t off = 0;
	buf[0] = 0;
	for (int s = 0; s < BK_ST__COUNT && off < sz; s++)
		if (mask & BK_STM(s))
			off += (size_t)snprintf(buf + off, sz - off, "%s%s", off ? ", " : "",
						bk_status_name((bk_status)s));
}

BK_MUSTCHECK static bk_dres table_rows(dctx *x, rowset *rs)
{
	const bk_status_row *all[MAX_ROWS];
	int from = x->o ? x->o->status : BK_ST_NONE;
	size_t n = bk_status_rows(from, (bk_cmd_type)x->cmd->type, all, MAX_ROWS);
	if (n == 0) {
		char allowed[200];
		list_statuses((bk_cmd_type)x->cmd->type, allowed, sizeof(allowed));
		return reject(x, BK_E_INVALID_TRANSITION,
			      "order %s is %s; %s is allowed only in: %s", x->cmd->order_id,
			      bk_status_name((bk_status)from),
			      bk_cmd_name((bk_cmd_type)x->cmd->type), allowed);
	}
	rs->n = 0;
	for (size_t i = 0; i < n && i < MAX_ROWS; i++)
		if (all[i]->actors & BK_RM(x->cmd->actor_role))
			rs->r[rs->n++] = all[i];
	if (rs->n == 0)
		return reject(x, BK_E_FORBIDDEN, "role %s may not issue %s",
			      bk_role_name((bk_role)x->cmd->actor_role),
			      bk_cmd_name((bk_cmd_type)x->cmd->type));
	return BK_DR_OK;
}

/* Pick the first row whose guard holds; x->to is set. Else reject with the guard's code. */
bk_dres pick_row(dctx *x, const rowset *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		if (guard_holds(x, (bk_guard)rs->r[i]->guard)) {
			x->to = (bk_status)rs->r[i]->to;
			return BK_DR_OK;
		}
	const char *cmd = bk_cmd_name((bk_cmd_type)x->cmd->type);
	switch ((bk_guard)rs->r[0]->guard) {
	case BK_G_MODE_IB_RULE:
	case BK_G_MODE_RTB_RULE:
	case BK_G_MODE_RTB_NO_RULE:
		if (x->o->mode == BK_MODE_IB)
			return reject(x, BK_E_IB_NOT_ALLOWED,
				      "no auto-accept rule of service profile %s allows instant "
				      "booking of this order; submit it as RTB instead",
				      x->o->service_profile);
		return reject(x, BK_E_INVALID_TRANSITION,
			      "%s is for IB and RTB orders; INVITE orders use invite.send", cmd);
	case BK_G_AMOUNT_IS_TOTAL:
		return reject(x, BK_E_AMOUNT_MISMATCH,
			      "captured amount must equal the order total of %lld cents",
			      (long long)x->o->money.total);
	case BK_G_SIDE_BUYER:
	case BK_G_SIDE_PROVIDER:
		return reject(
		    x, BK_E_VALIDATION_FAILED,
		    "payload.side: support must say whose side cancels: buyer or provider");
	case BK_G_MODE_INVITE:
		return reject(x, BK_E_INVALID_TRANSITION, "%s applies to INVITE orders only", cmd);
	case BK_G_MODE_RTB:
		return reject(
		    x, BK_E_INVALID_TRANSITION,
		    "%s applies to RTB orders; INVITE orders are awarded with invite.award", cmd);
	case BK_G_CARD_COMPLETES:
	case BK_G_CARD_KEEPS:
		return reject(x, BK_E_INVALID_TRANSITION,
			      "a complete card can be accepted only once the order is delivered "
			      "(it is %s)",
			      bk_status_name((bk_status)x->o->status));
	default:
		return reject(x, BK_E_INVALID_TRANSITION, "%s is not allowed now", cmd);
	}
}

/* The actor is the party its role claims: buyer, provider (or invite recipient). */
BK_MUSTCHECK static bk_dres check_party(dctx *x)
{
	const bk_command *c = x->cmd;
	const char *u = c->actor_user_id ? c->actor_user_id : "";
	switch ((bk_role)c->actor_role) {
	case BK_ROLE_BUYER:
		if (strcmp(u, x->o->buyer) != 0)
			return reject(x, BK_E_FORBIDDEN, "user %s is not the buyer of order %s", u,
				      c->order_id);
		return BK_DR_OK;
	case BK_ROLE_PROVIDER:
		if (c->type == BK_CMD_INVITE_RESPOND) {
			const bk_recipient *r = bk_order_recipient(x->o, u, strlen(u));
			if (!r || !bk_life_allows(BK_LIFE_RECIPIENT, BK_CMD_INVITE_RESPOND,
						  r->status, -1))
				return reject(x, BK_E_FORBIDDEN,
					      "user %s is not an invited recipient of order %s", u,
					      c->order_id);
			return BK_DR_OK;
		}
		if (!x->o->provider[0] || strcmp(u, x->o->provider) != 0)
			return reject(x, BK_E_FORBIDDEN, "user %s is not the provider of order %s",
				      u, c->order_id);
		return BK_DR_OK;
	case BK_ROLE_SUPPORT:
	case BK_ROLE_SYSTEM:
	case BK_ROLE__COUNT:
		return BK_DR_OK;
	}
	return BK_DR_OK;
}

/* --- expiry ------------------------------------------------------------------------- */

/* Events of the order's requests and cards whose time has come by `at`, each stamped
 * with a system command id derived from (order, target), so they are minted once. */
BK_MUSTCHECK static bk_dres expire(dctx *x, bool sweep)
{
	const char *saved_id = x->ev_cmd_id, *saved_actor = x->ev_actor;
	uint32_t saved_idx = x->ev_idx;
	int64_t at = x->cmd->at;
	bk_dres rc = BK_DR_OK;
	char sys_id[BK_ID_MAX], label[BK_ID_MAX + 16];
	const bk_order *o = x->o;
	for (uint32_t i = 0; i < o->n_reqs && rc == BK_DR_OK; i++) {
		const bk_request *r = &o->reqs[i];
		if (!bk_life_allows(BK_LIFE_REQUEST, BK_CMD_REQUEST_EXPIRE, r->status, -1) ||
		    r->expires_at == BK_TS_NONE || r->expires_at > at)
			continue;
		const bk_status_row *rows[2];
		if (bk_status_rows(o->status, BK_CMD_REQUEST_EXPIRE, rows, 2) == 0)
			continue;
		snprintf(label, sizeof(label), "expire:%s", r->id);
		bk_id_derive(sys_id, "sys_", o->order_id, label, 0);
		x->ev_cmd_id = zstr(x, sys_id);
		x->ev_idx = 0;
		x->ev_actor = NULL;
		bk_mapb b;
		if (!x->ev_cmd_id || !bk_mapb_init(&b, x->z, 2) ||
		    !bk_mapb_str(&b, "request_id", r->id) ||
		    !bk_mapb_ts(&b, "expires_at", r->expires_at))
			return oom(x);
		x->ev_at = r->expires_at; /* the same expiry whichever command finds it */
		rc = emit(x, BK_EV_REQUEST_EXPIRED, 0, 0, bk_mapb_done(&b));
		if (rc == BK_DR_OK)
			rc = emit_status_by(x, BK_CMD_REQUEST_EXPIRE, (bk_status)o->status,
					    (bk_status)rows[0]->to, "request expired", -1);
		if (rc == BK_DR_OK)
			rc = close_cards(x, (bk_status)rows[0]->to);
		break; /* the order is now declined: nothing else can expire */
	}
	for (uint32_t i = 0; i < o->n_cards && rc == BK_DR_OK; i++) {
		const bk_card *c = &o->cards[i];
		if (c->state != BK_CS_OPEN || c->expires_at == BK_TS_NONE)
			continue;
		bk_card_verb verb;
		if (c->expires_at <= at)
			verb = BK_CV_EXPIRED;
		else if (sweep && !c->expiring_sent && x->ctx->expiring_lead > 0 &&
			 c->expires_at - x->ctx->expiring_lead <= at)
			verb = BK_CV_EXPIRING;
		else
			continue;
		const bk_status_row *rows[2];
		if (verb == BK_CV_EXPIRED &&
		    (bk_status_rows(o->status, BK_CMD_CARD_EXPIRE, rows, 2) == 0 ||
		     !bk_card_row_find(BK_CO_EXPIRE, (bk_card_type)c->type, c->state)))
			continue;
		snprintf(label, sizeof(label), "%s:%s",
			 verb == BK_CV_EXPIRED ? "expire" : "expiring", c->id);
		bk_id_derive(sys_id, "sys_", o->order_id, label, 0);
		x->ev_cmd_id = zstr(x, sys_id);
		x->ev_idx = 0;
		x->ev_actor = NULL;
		x->ev_at = verb == BK_CV_EXPIRED ? c->expires_at : at;
		rc = x->ev_cmd_id ? emit_card_simple(x, c, verb) : BK_DR_FAILED;
	}
	x->ev_cmd_id = saved_id;
	x->ev_actor = saved_actor;
	x->ev_idx = saved_idx;
	x->ev_at = at;
	return rc;
}

/* Run lazy expiry; when it emitted events, judge the command on an evolved clone. */
BK_MUSTCHECK static bk_dres expire_and_evolve(dctx *x, bool sweep)
{
	uint32_t first = x->d->n_events;
	bk_dres rc = expire(x, sweep);
	if (rc != BK_DR_OK)
		return rc;
	if (x->d->n_events == first)
		return BK_DR_OK;
	x->work = bk_order_clone(x->o);
	if (!x->work)
		return oom(x);
	for (uint32_t i = first; i < x->d->n_events; i++) {
		char err[200];
		if (bk_evolve(x->work, &x->evs[i], err, sizeof(err)) < 0) {
			snprintf(x->d->message, sizeof(x->d->message), "internal: expiry: %s", err);
			return BK_DR_FAILED;
		}
	}
	x->o = x->work;
	return BK_DR_OK;
}

/* order.sweep on a settled order whose archive window has passed: order.archived, stamped
 * as expiry is, with a system id derived from the order and the window's end as its time,
 * so its bytes depend on the log alone (core/bk_archive.h). */
BK_MUSTCHECK static bk_dres archive(dctx *x)
{
	int64_t due = bk_archive_due(x->o, x->ctx->archive_after);
	if (due == BK_TS_NONE || due > x->cmd->at)
		return BK_DR_OK;
	char sys_id[BK_ID_MAX];
	bk_id_derive(sys_id, "sys_", x->o->order_id, "archive", 0);
	x->ev_cmd_id = zstr(x, sys_id);
	x->ev_idx = 0;
	x->ev_actor = NULL;
	x->ev_at = due;
	bk_mapb b;
	if (!x->ev_cmd_id || !bk_mapb_init(&b, x->z, 1) ||
	    !bk_mapb_ts(&b, "last_event_at", x->o->last_event_at))
		return oom(x);
	return emit(x, BK_EV_ORDER_ARCHIVED, 0, 0, bk_mapb_done(&b));
}

/* --- entry -------------------------------------------------------------------------- */

BK_MUSTCHECK static bk_dres dispatch(dctx *x, const rowset *rs)
{
	switch ((bk_cmd_type)x->cmd->type) {
	case BK_CMD_REQUEST_SUBMIT:
		return d_submit(x, rs);
	case BK_CMD_INVITE_SEND:
		return d_invite_send(x, rs);
	case BK_CMD_INVITE_RESPOND:
		return d_invite_respond(x, rs);
	case BK_CMD_INVITE_AWARD:
		return d_invite_award(x, rs);
	case BK_CMD_REQUEST_ACCEPT:
		return d_request_simple(x, rs, BK_EV_REQUEST_ACCEPTED);
	case BK_CMD_REQUEST_DECLINE:
		return d_request_simple(x, rs, BK_EV_REQUEST_DECLINED);
	case BK_CMD_REQUEST_DECLINE_COUNTER:
		return d_request_simple(x, rs, BK_EV_REQUEST_COUNTER_DECLINED);
	case BK_CMD_REQUEST_COUNTER:
		return d_counter(x, rs);
	case BK_CMD_REQUEST_ACCEPT_COUNTER:
		return d_accept_counter(x, rs);
	case BK_CMD_PAYMENT_CAPTURED:
		return d_payment(x, rs);
	case BK_CMD_ORDER_START:
	case BK_CMD_ORDER_DELIVER:
	case BK_CMD_ORDER_COMPLETE: {
		bk_dres rc = pick_row(x, rs);
		if (rc != BK_DR_OK)
			return rc;
		return finish_status(x, NULL, -1);
	}
	case BK_CMD_ORDER_CANCEL:
		return d_cancel(x, rs);
	case BK_CMD_DISPUTE_OPEN:
		return d_dispute_open(x, rs);
	case BK_CMD_DISPUTE_UPDATE:
		return d_dispute_update(x, rs);
	case BK_CMD_DISPUTE_RESOLVE:
		return d_dispute_resolve(x, rs);
	case BK_CMD_MILESTONE_ADD:
	case BK_CMD_MILESTONE_DELIVER:
	case BK_CMD_MILESTONE_APPROVE:
	case BK_CMD_MILESTONE_DISPUTE:
	case BK_CMD_MILESTONE_REFUND:
		return d_milestone(x, rs);
	case BK_CMD_TIP_ADD:
		return d_tip(x, rs);
	case BK_CMD_NOTE_ADD:
		return d_note(x, rs);
	case BK_CMD_CARD_OPEN:
		return d_card_open(x, rs);
	case BK_CMD_CARD_RESPOND:
		return d_card_respond(x, rs);
	case BK_CMD_CARD_CANCEL:
		return d_card_cancel(x, rs);
	case BK_CMD_ORDER_SWEEP: {
		bk_dres rc = pick_row(x, rs); /* the expiry already ran */
		if (rc != BK_DR_OK)
			return rc;
		return archive(x);
	}
	case BK_CMD_REQUEST_EXPIRE:
	case BK_CMD_CARD_EXPIRE:
		return pick_row(x, rs); /* the expiry already ran; nothing more to do */
	case BK_CMD_ORDER_CREATE:
	case BK_CMD_AUTOACCEPT_SET:
	case BK_CMD_AUTOACCEPT_DELETE:
	case BK_CMD_PROFILE_BIND:
	case BK_CMD__COUNT:
		break;
	}
	return reject(x, BK_E_INVALID_TRANSITION, "unexpected command");
}

int bk_decide(const bk_order *state, const bk_command *cmd, const bk_decide_ctx *ctx,
	      msgpack_zone *z, bk_decision *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->outcome = BK_ACCEPTED;
	ret->code = BK_E_OK;
	dctx x = {.ctx = ctx, .cmd = cmd, .o = state, .z = z, .d = ret};
	x.v = (bk_vctx){ret->message, sizeof(ret->message), "payload"};
	x.ev_cmd_id = cmd->id;
	x.ev_actor = cmd->actor_role == BK_ROLE_SYSTEM ? NULL : cmd->actor_user_id;
	x.ev_at = cmd->at;
	x.to = BK_ST_SAME;
	x.f.side = -1;
	x.f.card_type = -1;
	x.evs = msgpack_zone_malloc(z, sizeof(bk_event) * BK_MAX_EVENTS);
	if (!x.evs) {
		snprintf(ret->message, sizeof(ret->message), "out of memory");
		return -1;
	}
	ret->events = x.evs;
	x.next_seq = state ? state->version + 1 : 1;
	x.prev = state ? bk_order_last_hash(state) : (const uint8_t[BK_HASH_LEN]){0};
	static const uint8_t zero_hash[BK_HASH_LEN];
	if (!state)
		x.prev = zero_hash;
	msgpack_sbuffer_init(&x.own_scratch);
	x.scratch = ctx->scratch ? ctx->scratch : &x.own_scratch;

	bk_dres rc = BK_DR_OK;
	if (cmd->type >= BK_CMD__COUNT) {
		rc = reject(&x, BK_E_VALIDATION_FAILED, "unknown command type");
	} else if (cmd->at > ctx->now + BK_FUTURE_SKEW_US) {
		rc = reject(&x, BK_E_VALIDATION_FAILED,
			    "at: more than 5 minutes in the future of the processor's clock");
	} else if (bk_cmd_is_profile((bk_cmd_type)cmd->type)) {
		rc = d_profile(&x);
	} else if (!state) {
		if (cmd->type != BK_CMD_ORDER_CREATE)
			rc = reject(&x, BK_E_UNKNOWN_ORDER, "order %s does not exist",
				    cmd->order_id);
		else
			rc = table_rows(&x, &(rowset){0});
		if (rc == BK_DR_OK)
			rc = d_create(&x);
	} else if (bk_order_seen(state, cmd->id, strlen(cmd->id))) {
		ret->outcome = BK_DUPLICATE;
		snprintf(ret->message, sizeof(ret->message), "command %s was already applied",
			 cmd->id);
		rc = BK_DR_REJECTED; /* not accepted: a duplicate */
	} else if (cmd->type == BK_CMD_ORDER_CREATE) {
		rc = reject(&x, BK_E_ORDER_EXISTS, "order %s already exists", cmd->order_id);
	} else {
		rc = expire_and_evolve(&x, cmd->type == BK_CMD_ORDER_SWEEP);
		rowset rs;
		if (rc == BK_DR_OK && cmd->has_expected_version &&
		    cmd->expected_version != x.o->version)
			rc = reject(&x, BK_E_VERSION_CONFLICT,
				    "expected_version %lld, but order %s is at version %lld",
				    (long long)cmd->expected_version, cmd->order_id,
				    (long long)x.o->version);
		if (rc == BK_DR_OK)
			rc = table_rows(&x, &rs);
		if (rc == BK_DR_OK)
			rc = check_party(&x);
		if (rc == BK_DR_OK)
			rc = dispatch(&x, &rs);
	}
	bk_order_free(x.work);
	msgpack_sbuffer_destroy(&x.own_scratch);
	if (rc == BK_DR_FAILED) {
		bk_decision_clear(ret);
		ret->has_rules = false;
		return -1;
	}
	if (ret->outcome != BK_ACCEPTED) {
		/* a rejection keeps only the expiry events (stamped with system ids) */
		uint32_t keep = 0;
		while (keep < ret->n_events && ret->events[keep].command_id != cmd->id)
			keep++;
		ret->n_events = keep;
		if (ret->has_rules && ret->outcome != BK_ACCEPTED) {
			bk_profile_rules_clear(&ret->rules);
			ret->has_rules = false;
		}
	}
	return 0;
}
