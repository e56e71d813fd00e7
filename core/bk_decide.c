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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_archive.h"
#include "bk_codec.h"
#include "bk_decide.h"
#include "bk_ids.h"
#include "bk_internal.h"
#include "bk_money.h"
#include "bk_time.h"

#define MAX_ROWS 8

typedef struct facts {
	const bk_rule *rule;	/* RTB: a matching rule */
	const bk_rule *rule_ib; /* IB: a matching rule with allow_ib */
	bool amount_is_total;
	int side; /* bk_status of the side support names, -1 none */
	int card_type;
	bool completes;
} facts;

typedef struct dctx {
	const bk_decide_ctx *ctx;
	const bk_command *cmd;
	const bk_order *o; /* state the command is judged on (after lazy expiry) */
	bk_order *work;	   /* owned clone when lazy expiry changed the state */
	msgpack_zone *z;
	bk_decision *d;
	bk_event *evs;
	int64_t next_seq;
	const uint8_t *prev;
	msgpack_sbuffer own_scratch;
	msgpack_sbuffer *scratch; /* ctx->scratch or own_scratch */
	const char *ev_cmd_id;	  /* command id stamped on the events being emitted */
	uint32_t ev_idx;	  /* index of the next event of ev_cmd_id */
	const char *ev_actor;
	int64_t ev_at; /* created_at of the events being emitted */
	bk_vctx v;     /* payload getter context, errors into d->message */
	facts f;
	bk_status to;	 /* status the chosen row moves to (BK_ST_SAME: none) */
	uint32_t id_idx; /* counter for sub-entity ids minted by this command */
} dctx;

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

BK_PRINTF(3, 4) static int reject(dctx *x, bk_err code, const char *fmt, ...)
{
	x->d->outcome = BK_REJECTED;
	x->d->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->d->message, sizeof(x->d->message), fmt, ap);
	va_end(ap);
	return 1; /* "stop, the decision is made" */
}

/* The payload getters wrote their complaint into d->message already. */
static int invalid(dctx *x)
{
	x->d->outcome = BK_REJECTED;
	x->d->code = BK_E_VALIDATION_FAILED;
	return 1;
}

static int oom(dctx *x)
{
	snprintf(x->d->message, sizeof(x->d->message), "out of memory");
	return -1;
}

/* --- emitting events ------------------------------------------------------------- */

static const char *zstr(dctx *x, const char *s)
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
static const char *mint(dctx *x, const char *prefix, const char *label)
{
	char buf[BK_ID_MAX];
	bk_id_derive(buf, prefix, x->cmd->id, label, x->id_idx++);
	return zstr(x, buf);
}

/* Append an event and seal it (seq, prev_hash, hash). Returns it, NULL on failure. */
static bk_event *emit(dctx *x, bk_ev_type type, uint8_t sub, uint8_t card_type, bk_val payload)
{
	if (x->d->n_events >= BK_MAX_EVENTS) {
		snprintf(x->d->message, sizeof(x->d->message), "too many events for one command");
		return NULL;
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
	e->schema = BK_EVENT_SCHEMA;
	e->payload = payload;
	memcpy(e->prev_hash, x->prev, BK_HASH_LEN);
	if (!e->event_id || bk_codec_event_seal(e, x->scratch) < 0) {
		oom(x);
		return NULL;
	}
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
	return e;
}

#define MAPB(b, cap)                                                                               \
	bk_mapb b;                                                                                 \
	if (!bk_mapb_init(&b, x->z, (cap)))                                                        \
	return oom(x)
#define PUT(expr)                                                                                  \
	do {                                                                                       \
		if (!(expr))                                                                       \
			return oom(x);                                                             \
	} while (0)
#define EMIT(type, sub, ct, b)                                                                     \
	do {                                                                                       \
		if (!emit(x, (type), (sub), (ct), bk_mapb_done(&(b))))                             \
			return -1;                                                                 \
	} while (0)

static int emit_status_by(dctx *x, bk_cmd_type cause, bk_status from, bk_status to,
			  const char *reason, int side)
{
	MAPB(b, 6);
	PUT(bk_mapb_str(&b, "from", bk_status_name(from)));
	PUT(bk_mapb_str(&b, "to", bk_status_name(to)));
	PUT(bk_mapb_str(&b, "cause", bk_cmd_name(cause)));
	if (reason)
		PUT(bk_mapb_str(&b, "reason", reason));
	if (side >= 0)
		PUT(bk_mapb_str(&b, "side", side == BK_ST_CANCELLED_BUYER ? "buyer" : "provider"));
	if (to == BK_ST_CONFIRMED) {
		PUT(bk_mapb_str(&b, "chat_thread_id", mint(x, "cht_", "chat")));
		PUT(bk_mapb_str(&b, "location_address", x->o->location_address));
	}
	EMIT(BK_EV_ORDER_STATUS, (uint8_t)to, 0, b);
	return 0;
}

static int emit_status(dctx *x, bk_status from, bk_status to, const char *reason, int side)
{
	return emit_status_by(x, (bk_cmd_type)x->cmd->type, from, to, reason, side);
}

static int emit_card_simple(dctx *x, const bk_card *c, bk_card_verb verb)
{
	MAPB(b, 2);
	PUT(bk_mapb_str(&b, "card_id", c->id));
	if (verb == BK_CV_EXPIRED || verb == BK_CV_EXPIRING)
		PUT(bk_mapb_ts(&b, "expires_at", c->expires_at));
	EMIT(BK_EV_CARD, (uint8_t)verb, c->type, b);
	return 0;
}

/* Terminal status reached: close the order's open, accepted and declined cards. */
static int close_cards(dctx *x, bk_status to)
{
	if (!bk_status_is_terminal(to))
		return 0;
	for (uint32_t i = 0; i < x->o->n_cards; i++) {
		const bk_card *c = &x->o->cards[i];
		if (bk_card_row_find(BK_CO_CLOSE, (bk_card_type)c->type, c->state) &&
		    emit_card_simple(x, c, BK_CV_CLOSED) < 0)
			return -1;
	}
	return 0;
}

/* Status event (when the row moves the order) and the card closings it implies. */
static int finish_status(dctx *x, const char *reason, int side)
{
	if (x->to == BK_ST_SAME || x->to == (bk_status)x->o->status)
		return 0;
	if (emit_status(x, (bk_status)x->o->status, x->to, reason, side) < 0)
		return -1;
	return close_cards(x, x->to);
}

/* --- the tables ------------------------------------------------------------------- */

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

/* Rows allowed for the command in the current status and the actor's role. */
typedef struct rowset {
	const bk_status_row *r[MAX_ROWS];
	size_t n;
} rowset;

static int table_rows(dctx *x, rowset *rs)
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
	return 0;
}

/* Pick the first row whose guard holds; x->to is set. Else reject with the guard's code. */
static int pick_row(dctx *x, const rowset *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		if (guard_holds(x, (bk_guard)rs->r[i]->guard)) {
			x->to = (bk_status)rs->r[i]->to;
			return 0;
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
static int check_party(dctx *x)
{
	const bk_command *c = x->cmd;
	const char *u = c->actor_user_id ? c->actor_user_id : "";
	switch ((bk_role)c->actor_role) {
	case BK_ROLE_BUYER:
		if (strcmp(u, x->o->buyer) != 0)
			return reject(x, BK_E_FORBIDDEN, "user %s is not the buyer of order %s", u,
				      c->order_id);
		return 0;
	case BK_ROLE_PROVIDER:
		if (c->type == BK_CMD_INVITE_RESPOND) {
			const bk_recipient *r = bk_order_recipient(x->o, u, strlen(u));
			if (!r || !bk_life_allows(BK_LIFE_RECIPIENT, BK_CMD_INVITE_RESPOND,
						  r->status, -1))
				return reject(x, BK_E_FORBIDDEN,
					      "user %s is not an invited recipient of order %s", u,
					      c->order_id);
			return 0;
		}
		if (!x->o->provider[0] || strcmp(u, x->o->provider) != 0)
			return reject(x, BK_E_FORBIDDEN, "user %s is not the provider of order %s",
				      u, c->order_id);
		return 0;
	case BK_ROLE_SUPPORT:
	case BK_ROLE_SYSTEM:
	case BK_ROLE__COUNT:
		return 0;
	}
	return 0;
}

/* --- payload helpers ------------------------------------------------------------- */

#define P (&x->cmd->payload)
#define GET(call)                                                                                  \
	do {                                                                                       \
		if ((call) < 0)                                                                    \
			return invalid(x);                                                         \
	} while (0)

/* An optional client-given sub-entity id, else a derived one. NULL on failure (rejected). */
static const char *id_or_mint(dctx *x, const char *key, const char *prefix, int *rc)
{
	const char *s;
	size_t n;
	*rc = 0;
	if (bk_get_str(&x->v, P, key, false, &s, &n) < 0) {
		*rc = invalid(x);
		return NULL;
	}
	if (s) {
		if (!bk_id_valid(s, n, NULL)) {
			*rc = reject(x, BK_E_VALIDATION_FAILED, "payload.%s: not a valid id", key);
			return NULL;
		}
		char *p = msgpack_zone_malloc(x->z, n + 1);
		if (!p) {
			*rc = oom(x);
			return NULL;
		}
		memcpy(p, s, n);
		p[n] = 0;
		return p;
	}
	const char *m = mint(x, prefix, key);
	if (!m)
		*rc = oom(x);
	return m;
}

/* Optional expires_at that must lie after the command's time. */
static int get_expiry(dctx *x, const bk_val *map, int64_t *ret)
{
	GET(bk_get_ts(&x->v, map, "expires_at", false, ret));
	if (*ret != BK_TS_NONE && *ret <= x->cmd->at)
		return reject(x, BK_E_VALIDATION_FAILED,
			      "%s.expires_at: must be after the command's at", x->v.path);
	return 0;
}

/* Optional short text copied into the payload under the same key. */
static int copy_text(dctx *x, bk_mapb *b, const char *key, bool req, size_t max)
{
	const char *s;
	size_t n;
	GET(bk_get_str(&x->v, P, key, req, &s, &n));
	if (!s)
		return 0;
	if (n > max || (req && n == 0))
		return reject(x, BK_E_VALIDATION_FAILED, "payload.%s: 1 to %zu bytes", key, max);
	PUT(bk_mapb_strn(b, key, s, n));
	return 0;
}

/* Line items of a command payload with ids minted; totals checked. */
static int client_items(dctx *x, const bk_val *map, const char *path, bk_li_view **ret,
			uint32_t *ret_n, int64_t *ret_sum)
{
	const bk_val *arr;
	bool ovf = false;
	bk_vctx v = {x->v.err, x->v.errsz, path};
	if (bk_get_arr(&v, map, "line_items", true, &arr) < 0 ||
	    bk_li_parse(&v, arr, true, x->z, ret, ret_n, &ovf) < 0) {
		x->d->outcome = BK_REJECTED;
		x->d->code = ovf ? BK_E_OVERFLOW : BK_E_VALIDATION_FAILED;
		return 1;
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
	return 0;
}

static int get_cents(dctx *x, const bk_val *map, const char *key, bool req, int64_t *ret,
		     int64_t min)
{
	bool present = false;
	GET(bk_get_int(&x->v, map, key, req, ret, &present));
	if (!present) {
		*ret = 0;
		return 0;
	}
	if (*ret < min || !bk_cents_fits(*ret))
		return reject(x, *ret > 0 ? BK_E_OVERFLOW : BK_E_VALIDATION_FAILED,
			      "%s.%s: expected %lld to 2147483647 cents", x->v.path, key,
			      (long long)min);
	return 0;
}

/* New money after replacing/adding items or fees; false (rejected) on overflow. */
static int money_with(dctx *x, const bk_items *base, const bk_li_view *add, uint32_t n_add,
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
	return 0;
ovf:
	return reject(x, BK_E_OVERFLOW, "the order's total would overflow the schema's int");
}

/* --- commands ---------------------------------------------------------------------- */

static int d_create(dctx *x)
{
	const bk_command *c = x->cmd;
	if (!bk_id_valid(c->order_id, strlen(c->order_id), "ord_"))
		return reject(x, BK_E_VALIDATION_FAILED,
			      "order_id: expected an id starting with ord_");
	const char *s;
	size_t n;
	GET(bk_get_str(&x->v, P, "mode", true, &s, &n));
	int mode = bk_mode_from(s, n);
	if (mode < 0)
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.mode: expected IB, RTB or INVITE");
	MAPB(b, 24);
	PUT(bk_mapb_str(&b, "mode", bk_mode_name((bk_mode)mode)));
	PUT(bk_mapb_str(&b, "buyer_user_id", c->actor_user_id));
	const char *prov, *sp;
	size_t provn, spn;
	GET(bk_get_str(&x->v, P, "provider_user_id", mode != BK_MODE_INVITE, &prov, &provn));
	GET(bk_get_str(&x->v, P, "service_profile_id", mode != BK_MODE_INVITE, &sp, &spn));
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
		PUT(bk_mapb_strn(&b, "provider_user_id", prov, provn));
		PUT(bk_mapb_strn(&b, "service_profile_id", sp, spn));
	}
	int rc;
	if ((rc = copy_text(x, &b, "package_id", false, 200)) ||
	    (rc = copy_text(x, &b, "role_code", true, 64)) ||
	    (rc = copy_text(x, &b, "city", true, 200)) ||
	    (rc = copy_text(x, &b, "license_tier", false, 64)))
		return rc;
	int64_t start, end;
	GET(bk_get_ts(&x->v, P, "start_ts", true, &start));
	GET(bk_get_ts(&x->v, P, "end_ts", true, &end));
	if (end <= start)
		return reject(x, BK_E_VALIDATION_FAILED, "payload.end_ts: must be after start_ts");
	PUT(bk_mapb_ts(&b, "start_ts", start));
	PUT(bk_mapb_ts(&b, "end_ts", end));
	GET(bk_get_str(&x->v, P, "timezone", true, &s, &n));
	char tz[64];
	int32_t off;
	if (bk_strlcpyn(tz, sizeof(tz), s, n) < 0 || !x->ctx->tz ||
	    x->ctx->tz(x->ctx->tz_opaque, tz, start, &off) != 0)
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.timezone: not a known IANA time zone name");
	PUT(bk_mapb_str(&b, "timezone", tz));
	const bk_val *loc;
	GET(bk_get_map(&x->v, P, "location", true, &loc));
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
	PUT(bk_mapb_val(&b, "location", *loc));
	double miles;
	bool has_miles;
	GET(bk_get_num(&x->v, P, "travel_miles", false, &miles, &has_miles));
	if (has_miles) {
		if (!(miles >= 0 && miles <= 100000))
			return reject(x, BK_E_VALIDATION_FAILED,
				      "payload.travel_miles: expected 0 to 100000");
		PUT(bk_mapb_f64(&b, "travel_miles", miles));
	}
	GET(bk_get_str(&x->v, P, "currency", true, &s, &n));
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
	PUT(bk_mapb_str(&b, "currency", cur));
	bk_li_view *items;
	uint32_t n_items;
	int64_t sum, fee, tax, tip;
	if ((rc = client_items(x, P, "payload", &items, &n_items, &sum)))
		return rc;
	if ((rc = get_cents(x, P, "platform_fee_cents", true, &fee, 0)) ||
	    (rc = get_cents(x, P, "tax_cents", true, &tax, 0)) ||
	    (rc = get_cents(x, P, "tip_cents", false, &tip, 0)))
		return rc;
	bk_money m;
	if ((rc = money_with(x, NULL, items, n_items, fee, tax, tip, &m)))
		return rc;
	bk_val arr, totals;
	PUT(bk_li_build(x->z, items, n_items, &arr));
	PUT(bk_mapb_val(&b, "line_items", arr));
	PUT(bk_mapb_int(&b, "platform_fee_cents", fee));
	PUT(bk_mapb_int(&b, "tax_cents", tax));
	PUT(bk_mapb_int(&b, "tip_cents", tip));
	PUT(bk_totals_build(x->z, &m, &totals));
	PUT(bk_mapb_val(&b, "totals", totals));
	const bk_val *policy;
	GET(bk_get_map(&x->v, P, "policy", true, &policy));
	PUT(bk_mapb_val(&b, "policy", *policy));
	EMIT(BK_EV_ORDER_CREATED, 0, 0, b);
	return 0;
}

static int d_submit(dctx *x, const rowset *rs)
{
	const bk_order *o = x->o;
	const bk_profile_rules *pr =
	    bk_ruleset_get_owned(x->ctx->rules, o->service_profile, o->provider);
	bk_rule_subject subj = {o->money.subtotal, o->start_ts, o->timezone, o->has_travel,
				o->travel_miles};
	x->f.rule = bk_rules_match(pr, &subj, false, x->ctx->tz, x->ctx->tz_opaque);
	x->f.rule_ib = bk_rules_match(pr, &subj, true, x->ctx->tz, x->ctx->tz_opaque);
	int rc;
	if ((rc = pick_row(x, rs)))
		return rc;
	int64_t exp;
	if ((rc = get_expiry(x, P, &exp)))
		return rc;
	const char *rid = id_or_mint(x, "request_id", "req_", &rc);
	if (!rid)
		return rc;
	if (bk_order_request(o, rid, strlen(rid)))
		return reject(x, BK_E_VALIDATION_FAILED, "payload.request_id: %s already exists",
			      rid);
	MAPB(b, 5);
	PUT(bk_mapb_str(&b, "request_id", rid));
	PUT(bk_mapb_str(&b, "mode", bk_mode_name((bk_mode)o->mode)));
	if ((rc = copy_text(x, &b, "message", false, 4000)))
		return rc;
	PUT(bk_mapb_ts(&b, "expires_at", exp));
	EMIT(BK_EV_REQUEST_SUBMITTED, 0, 0, b);
	const bk_rule *r = o->mode == BK_MODE_IB ? x->f.rule_ib : x->f.rule;
	if (x->to == BK_ST_ACCEPTED && r) {
		MAPB(a, 3);
		PUT(bk_mapb_str(&a, "request_id", rid));
		PUT(bk_mapb_str(&a, "by", "rule"));
		PUT(bk_mapb_str(&a, "rule_id", r->rule_id));
		EMIT(BK_EV_REQUEST_ACCEPTED, 0, 0, a);
	}
	return finish_status(x, NULL, -1);
}

static int d_invite_send(dctx *x, const rowset *rs)
{
	int rc;
	if ((rc = pick_row(x, rs)))
		return rc;
	const bk_val *arr;
	GET(bk_get_arr(&x->v, P, "recipients", true, &arr));
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
	if ((rc = get_expiry(x, P, &exp)))
		return rc;
	const char *iid = id_or_mint(x, "invite_id", "req_", &rc);
	if (!iid)
		return rc;
	MAPB(b, 4);
	PUT(bk_mapb_str(&b, "invite_id", iid));
	PUT(bk_mapb_val(&b, "recipients", *arr));
	PUT(bk_mapb_ts(&b, "expires_at", exp));
	if ((rc = copy_text(x, &b, "message", false, 4000)))
		return rc;
	EMIT(BK_EV_INVITE_SENT, 0, 0, b);
	return finish_status(x, NULL, -1);
}

/* The order's live request (pending or countered), optionally named by payload.request_id. */
static const bk_request *live_request(dctx *x, int *rc)
{
	const char *s;
	size_t n;
	*rc = 0;
	if (bk_get_str(&x->v, P, "request_id", false, &s, &n) < 0) {
		*rc = invalid(x);
		return NULL;
	}
	for (uint32_t i = x->o->n_reqs; i-- > 0;) {
		const bk_request *r = &x->o->reqs[i];
		if (s && (strlen(r->id) != n || memcmp(r->id, s, n) != 0))
			continue;
		if (bk_life_open(BK_LIFE_REQUEST, r->status))
			return r;
		if (s && r->status == BK_RQ_EXPIRED) {
			*rc = reject(x, BK_E_EXPIRED, "request %s expired", r->id);
			return NULL;
		}
	}
	*rc = reject(x, BK_E_NOT_FOUND, "order %s has no open request%s%.*s", x->cmd->order_id,
		     s ? " " : "", s ? (int)n : 0, s ? s : "");
	return NULL;
}

static int d_invite_respond(dctx *x, const rowset *rs)
{
	int rc;
	if ((rc = pick_row(x, rs)))
		return rc;
	const bk_request *r = live_request(x, &rc);
	if (!r)
		return rc;
	MAPB(b, 3);
	PUT(bk_mapb_str(&b, "invite_id", r->id));
	PUT(bk_mapb_str(&b, "recipient_user_id", x->cmd->actor_user_id));
	if ((rc = copy_text(x, &b, "message", false, 4000)))
		return rc;
	EMIT(BK_EV_INVITE_RESPONDED, 0, 0, b);
	return 0;
}

static int d_invite_award(dctx *x, const rowset *rs)
{
	int rc;
	if ((rc = pick_row(x, rs)))
		return rc;
	const bk_request *r = live_request(x, &rc);
	if (!r)
		return rc;
	const char *u, *sp;
	size_t un, spn;
	GET(bk_get_str(&x->v, P, "recipient_user_id", true, &u, &un));
	GET(bk_get_str(&x->v, P, "service_profile_id", true, &sp, &spn));
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
	PUT(bk_val_arr(x->z, x->o->n_rcps ? x->o->n_rcps - 1 : 0, &others));
	for (uint32_t i = 0; i < x->o->n_rcps; i++)
		if (&x->o->rcps[i] != w)
			others.via.array.ptr[n_others++] =
			    bk_val_str(x->z, x->o->rcps[i].user_id, strlen(x->o->rcps[i].user_id));
	MAPB(b, 4);
	PUT(bk_mapb_str(&b, "invite_id", r->id));
	PUT(bk_mapb_strn(&b, "recipient_user_id", u, un));
	PUT(bk_mapb_strn(&b, "service_profile_id", sp, spn));
	PUT(bk_mapb_val(&b, "not_awarded", others));
	EMIT(BK_EV_INVITE_AWARDED, 0, 0, b);
	return finish_status(x, NULL, -1);
}

static int d_request_simple(dctx *x, const rowset *rs, bk_ev_type type)
{
	int rc;
	if ((rc = pick_row(x, rs)))
		return rc;
	const bk_request *r = live_request(x, &rc);
	if (!r)
		return rc;
	MAPB(b, 2);
	PUT(bk_mapb_str(&b, "request_id", r->id));
	if ((rc = copy_text(x, &b, "reason", false, 4000)))
		return rc;
	EMIT(type, 0, 0, b);
	return finish_status(x, NULL, -1);
}

static int d_counter(dctx *x, const rowset *rs)
{
	int rc;
	if ((rc = pick_row(x, rs)))
		return rc;
	const bk_request *r = live_request(x, &rc);
	if (!r)
		return rc;
	bk_li_view *items;
	uint32_t n;
	int64_t sum, fee, tax, exp;
	if ((rc = client_items(x, P, "payload", &items, &n, &sum)) ||
	    (rc = get_cents(x, P, "platform_fee_cents", true, &fee, 0)) ||
	    (rc = get_cents(x, P, "tax_cents", true, &tax, 0)) || (rc = get_expiry(x, P, &exp)))
		return rc;
	bk_money m;
	if ((rc = money_with(x, NULL, items, n, fee, tax, x->o->money.tip, &m)))
		return rc;
	bk_val arr, totals;
	MAPB(b, 7);
	PUT(bk_mapb_str(&b, "request_id", r->id));
	PUT(bk_li_build(x->z, items, n, &arr));
	PUT(bk_mapb_val(&b, "line_items", arr));
	PUT(bk_mapb_int(&b, "platform_fee_cents", fee));
	PUT(bk_mapb_int(&b, "tax_cents", tax));
	PUT(bk_totals_build(x->z, &m, &totals));
	PUT(bk_mapb_val(&b, "totals", totals));
	PUT(bk_mapb_ts(&b, "expires_at", exp));
	if ((rc = copy_text(x, &b, "message", false, 4000)))
		return rc;
	EMIT(BK_EV_REQUEST_COUNTERED, 0, 0, b);
	return finish_status(x, NULL, -1);
}

static int d_accept_counter(dctx *x, const rowset *rs)
{
	int rc;
	if ((rc = pick_row(x, rs)))
		return rc;
	const bk_request *r = live_request(x, &rc);
	if (!r)
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
	if ((rc = money_with(x, NULL, v, r->offer.n, r->offer_fee_cents, r->offer_tax_cents,
			     x->o->money.tip, &m)))
		return rc;
	bk_val arr, totals;
	MAPB(b, 5);
	PUT(bk_mapb_str(&b, "request_id", r->id));
	PUT(bk_li_build(x->z, v, r->offer.n, &arr));
	PUT(bk_mapb_val(&b, "line_items", arr));
	PUT(bk_mapb_int(&b, "platform_fee_cents", r->offer_fee_cents));
	PUT(bk_mapb_int(&b, "tax_cents", r->offer_tax_cents));
	PUT(bk_totals_build(x->z, &m, &totals));
	PUT(bk_mapb_val(&b, "totals", totals));
	EMIT(BK_EV_REQUEST_COUNTER_ACCEPTED, 0, 0, b);
	return finish_status(x, NULL, -1);
}

static int d_payment(dctx *x, const rowset *rs)
{
	int64_t amount;
	int rc;
	const char *pi;
	size_t pin;
	GET(bk_get_str(&x->v, P, "payment_intent_id", true, &pi, &pin));
	if ((rc = get_cents(x, P, "amount_cents", true, &amount, 0)))
		return rc;
	x->f.amount_is_total = amount == x->o->money.total;
	if ((rc = pick_row(x, rs)))
		return rc;
	MAPB(b, 4);
	PUT(bk_mapb_strn(&b, "payment_intent_id", pi, pin));
	PUT(bk_mapb_int(&b, "amount_cents", amount));
	if ((rc = copy_text(x, &b, "transfer_group", false, 200)))
		return rc;
	PUT(bk_mapb_int(&b, "paid_cents", x->o->money.paid + amount));
	EMIT(BK_EV_PAYMENT_CAPTURED, 0, 0, b);
	return finish_status(x, NULL, -1);
}

/* A refund of `amount` (> 0) as a refund line item; `why` names its cause. */
static int emit_refund(dctx *x, int64_t amount, const char *why)
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
	int rc;
	if ((rc = money_with(x, &x->o->items, &li, 1, x->o->money.fee, x->o->money.tax,
			     x->o->money.tip, &m)))
		return rc;
	bk_val arr, totals;
	PUT(bk_li_build(x->z, &li, 1, &arr));
	PUT(bk_totals_build(x->z, &m, &totals));
	MAPB(b, 4);
	PUT(bk_mapb_int(&b, "refund_cents", amount));
	PUT(bk_mapb_val(&b, "line_item", arr.via.array.ptr[0]));
	PUT(bk_mapb_int(&b, "refunded_cents", x->o->money.refunded + amount));
	PUT(bk_mapb_val(&b, "totals", totals));
	EMIT(BK_EV_PAYMENT_REFUNDED, 0, 0, b);
	return 0;
}

static int d_cancel(dctx *x, const rowset *rs)
{
	const char *s;
	size_t n;
	int rc;
	x->f.side = -1;
	GET(bk_get_str(&x->v, P, "side", false, &s, &n));
	if (s && n == 5 && memcmp(s, "buyer", 5) == 0)
		x->f.side = BK_ST_CANCELLED_BUYER;
	else if (s && n == 8 && memcmp(s, "provider", 8) == 0)
		x->f.side = BK_ST_CANCELLED_PROVIDER;
	if ((rc = pick_row(x, rs)))
		return rc;
	const char *reason;
	size_t rn;
	GET(bk_get_str(&x->v, P, "reason", true, &reason, &rn));
	if (rn == 0 || rn > 4000)
		return reject(x, BK_E_VALIDATION_FAILED, "payload.reason: 1 to 4000 bytes");
	int64_t refund;
	bool has_refund;
	GET(bk_get_int(&x->v, P, "refund_cents", false, &refund, &has_refund));
	if (has_refund && refund < 0)
		return reject(x, BK_E_VALIDATION_FAILED, "payload.refund_cents: must be >= 0");
	if (!has_refund) /* the provider's side cancelling owes the buyer everything paid */
		refund =
		    x->to == BK_ST_CANCELLED_PROVIDER ? x->o->money.paid - x->o->money.refunded : 0;
	if (refund > 0 && (rc = emit_refund(x, refund, "Cancellation refund")))
		return rc;
	char *why = msgpack_zone_malloc(x->z, rn + 1);
	if (!why)
		return oom(x);
	memcpy(why, reason, rn);
	why[rn] = 0;
	return finish_status(x, why, x->to);
}

static int d_dispute_open(dctx *x, const rowset *rs)
{
	int rc;
	if ((rc = pick_row(x, rs)))
		return rc;
	const char *did = id_or_mint(x, "dispute_id", "dsp_", &rc);
	if (!did)
		return rc;
	if (bk_order_dispute(x->o, did, strlen(did)))
		return reject(x, BK_E_VALIDATION_FAILED, "payload.dispute_id: %s already exists",
			      did);
	MAPB(b, 5);
	PUT(bk_mapb_str(&b, "dispute_id", did));
	PUT(bk_mapb_str(&b, "opened_by", bk_role_name((bk_role)x->cmd->actor_role)));
	if ((rc = copy_text(x, &b, "reason", true, 4000)) ||
	    (rc = copy_text(x, &b, "description", false, 20000)))
		return rc;
	PUT(bk_mapb_str(&b, "from_status", bk_status_name((bk_status)x->o->status)));
	EMIT(BK_EV_DISPUTE_OPENED, 0, 0, b);
	return finish_status(x, NULL, -1);
}

static const bk_dispute *open_dispute(dctx *x, int *rc)
{
	const char *s;
	size_t n;
	*rc = 0;
	if (bk_get_str(&x->v, P, "dispute_id", false, &s, &n) < 0) {
		*rc = invalid(x);
		return NULL;
	}
	for (uint32_t i = x->o->n_disputes; i-- > 0;) {
		const bk_dispute *d = &x->o->disputes[i];
		if (s && (strlen(d->id) != n || memcmp(d->id, s, n) != 0))
			continue;
		if (bk_life_open(BK_LIFE_DISPUTE, d->status))
			return d;
	}
	*rc = reject(x, BK_E_NOT_FOUND, "order %s has no open dispute%s%.*s", x->cmd->order_id,
		     s ? " " : "", s ? (int)n : 0, s ? s : "");
	return NULL;
}

static int d_dispute_update(dctx *x, const rowset *rs)
{
	int rc;
	if ((rc = pick_row(x, rs)))
		return rc;
	const bk_dispute *d = open_dispute(x, &rc);
	if (!d)
		return rc;
	const char *s;
	size_t n;
	GET(bk_get_str(&x->v, P, "status", true, &s, &n));
	int st = bk_dsp_status_from(s, n);
	if (st < 0 || !bk_life_allows(BK_LIFE_DISPUTE, BK_CMD_DISPUTE_UPDATE, d->status, st))
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.status: expected awaiting_evidence or under_review");
	MAPB(b, 3);
	PUT(bk_mapb_str(&b, "dispute_id", d->id));
	PUT(bk_mapb_str(&b, "status", bk_dsp_status_name((bk_dsp_status)st)));
	if ((rc = copy_text(x, &b, "note", false, 4000)))
		return rc;
	EMIT(BK_EV_DISPUTE_UPDATED, 0, 0, b);
	return 0;
}

static int d_dispute_resolve(dctx *x, const rowset *rs)
{
	int rc;
	if ((rc = pick_row(x, rs)))
		return rc;
	const bk_dispute *d = open_dispute(x, &rc);
	if (!d)
		return rc;
	const char *s;
	size_t n;
	GET(bk_get_str(&x->v, P, "outcome", true, &s, &n));
	int st = bk_dsp_status_from(s, n);
	if (st < 0 || !bk_life_allows(BK_LIFE_DISPUTE, BK_CMD_DISPUTE_RESOLVE, d->status, st))
		return reject(
		    x, BK_E_VALIDATION_FAILED,
		    "payload.outcome: expected resolved_buyer, resolved_provider or split");
	int64_t refund, left = x->o->money.paid - x->o->money.refunded;
	bool has;
	GET(bk_get_int(&x->v, P, "refund_cents", false, &refund, &has));
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
	if (refund > 0 && (rc = emit_refund(x, refund, "Dispute refund")))
		return rc;
	MAPB(b, 4);
	PUT(bk_mapb_str(&b, "dispute_id", d->id));
	PUT(bk_mapb_str(&b, "outcome", bk_dsp_status_name((bk_dsp_status)st)));
	PUT(bk_mapb_int(&b, "refund_cents", refund));
	if ((rc = copy_text(x, &b, "note", false, 4000)))
		return rc;
	EMIT(BK_EV_DISPUTE_RESOLVED, 0, 0, b);
	return finish_status(x, NULL, -1);
}

static int d_milestone(dctx *x, const rowset *rs)
{
	int rc;
	if ((rc = pick_row(x, rs)))
		return rc;
	bk_cmd_type t = (bk_cmd_type)x->cmd->type;
	if (t == BK_CMD_MILESTONE_ADD) {
		const char *mid = id_or_mint(x, "milestone_id", "mst_", &rc);
		if (!mid)
			return rc;
		if (bk_order_milestone(x->o, mid, strlen(mid)))
			return reject(x, BK_E_VALIDATION_FAILED,
				      "payload.milestone_id: %s already exists", mid);
		int64_t amount, due, sum = 0;
		if ((rc = get_cents(x, P, "amount_cents", true, &amount, 1)))
			return rc;
		GET(bk_get_ts(&x->v, P, "due_ts", false, &due));
		for (uint32_t i = 0; i < x->o->n_ms; i++)
			if (x->o->ms[i].status != BK_MS_REFUNDED)
				sum += x->o->ms[i].amount_cents;
		if (sum + amount > x->o->money.subtotal)
			return reject(x, BK_E_VALIDATION_FAILED,
				      "payload.amount_cents: milestones would exceed the order "
				      "subtotal of %lld cents (%lld already allotted)",
				      (long long)x->o->money.subtotal, (long long)sum);
		MAPB(b, 4);
		PUT(bk_mapb_str(&b, "milestone_id", mid));
		if ((rc = copy_text(x, &b, "title", true, 500)))
			return rc;
		PUT(bk_mapb_ts(&b, "due_ts", due));
		PUT(bk_mapb_int(&b, "amount_cents", amount));
		EMIT(BK_EV_MILESTONE_ADDED, 0, 0, b);
		return 0;
	}
	const char *s;
	size_t n;
	GET(bk_get_str(&x->v, P, "milestone_id", true, &s, &n));
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
		if ((rc = emit_refund(x, m->amount_cents < left ? m->amount_cents : left,
				      "Milestone refund")))
			return rc;
	}
	MAPB(b, 2);
	PUT(bk_mapb_str(&b, "milestone_id", m->id));
	if ((rc = copy_text(x, &b, "note", false, 4000)))
		return rc;
	EMIT(BK_EV_MILESTONE_CHANGED, row->to, 0, b);
	return 0;
}

static int d_tip(dctx *x, const rowset *rs)
{
	int rc;
	if ((rc = pick_row(x, rs)))
		return rc;
	int64_t amount, tip;
	if ((rc = get_cents(x, P, "amount_cents", true, &amount, 1)))
		return rc;
	if (!bk_cents_add(x->o->money.tip, amount, &tip))
		return reject(x, BK_E_OVERFLOW, "the tip would overflow the schema's int");
	bk_money m;
	if ((rc = money_with(x, &x->o->items, NULL, 0, x->o->money.fee, x->o->money.tax, tip, &m)))
		return rc;
	bk_val totals;
	MAPB(b, 3);
	PUT(bk_mapb_int(&b, "amount_cents", amount));
	PUT(bk_mapb_int(&b, "tip_cents", tip));
	PUT(bk_totals_build(x->z, &m, &totals));
	PUT(bk_mapb_val(&b, "totals", totals));
	EMIT(BK_EV_TIP_ADDED, 0, 0, b);
	return 0;
}

static int d_note(dctx *x, const rowset *rs)
{
	int rc;
	if ((rc = pick_row(x, rs)))
		return rc;
	MAPB(b, 2);
	if ((rc = copy_text(x, &b, "text", true, 20000)) ||
	    (rc = copy_text(x, &b, "visibility", false, 32)))
		return rc;
	EMIT(BK_EV_NOTE_ADDED, 0, 0, b);
	return 0;
}

/* --- cards ------------------------------------------------------------------------- */

/* Validate a card's type-specific terms; fills extras' line items with minted ids. */
static int card_terms(dctx *x, bk_card_type t, const bk_val *terms, bk_val *ret)
{
	bk_vctx saved = x->v;
	x->v.path = "payload.payload";
	int rc = 0;
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
		if ((rc = client_items(x, p, "payload.payload", &items, &n, &sum)))
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
		if ((rc = get_cents(x, p, "amount_cents", true, &a, 1)))
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
static int open_card(dctx *x, bk_card_type t, const char *card_id, const bk_val *terms, int64_t due,
		     int64_t exp)
{
	for (uint32_t i = 0; i < x->o->n_cards; i++) {
		const bk_card *c = &x->o->cards[i];
		if (c->type != t || c->state != BK_CS_OPEN)
			continue;
		if (!bk_card_row_find(BK_CO_SUPERSEDE, t, c->state))
			continue;
		MAPB(s, 2);
		PUT(bk_mapb_str(&s, "card_id", c->id));
		PUT(bk_mapb_str(&s, "superseded_by", card_id));
		EMIT(BK_EV_CARD, BK_CV_SUPERSEDED, (uint8_t)t, s);
	}
	MAPB(b, 8);
	PUT(bk_mapb_str(&b, "card_id", card_id));
	PUT(bk_mapb_str(&b, "type", bk_card_type_name(t)));
	PUT(bk_mapb_str(&b, "created_by", x->cmd->actor_user_id));
	PUT(bk_mapb_str(&b, "creator_role", bk_role_name((bk_role)x->cmd->actor_role)));
	PUT(bk_mapb_ts(&b, "due_at", due));
	PUT(bk_mapb_ts(&b, "expires_at", exp));
	PUT(bk_mapb_val(&b, "payload", *terms));
	EMIT(BK_EV_CARD, BK_CV_PROPOSED, (uint8_t)t, b);
	return 0;
}

static int d_card_open(dctx *x, const rowset *rs)
{
	const char *s;
	size_t n;
	int rc;
	GET(bk_get_str(&x->v, P, "type", true, &s, &n));
	int t = bk_card_type_from(s, n);
	if (t < 0)
		return reject(
		    x, BK_E_VALIDATION_FAILED,
		    "payload.type: expected reschedule, extras, proofs, expense, complete "
		    "or dispute");
	x->f.card_type = t;
	if ((rc = pick_row(x, rs)))
		return rc;
	const bk_card_row *row = bk_card_row_find(BK_CO_OPEN, (bk_card_type)t, BK_CS_NONE);
	if (!row || !(row->openers & BK_RM(x->cmd->actor_role)))
		return reject(x, BK_E_FORBIDDEN, "a %s may not open a %s card",
			      bk_role_name((bk_role)x->cmd->actor_role), s);
	const char *cid = id_or_mint(x, "card_id", "acd_", &rc);
	if (!cid)
		return rc;
	if (bk_order_card(x->o, cid, strlen(cid)))
		return reject(x, BK_E_VALIDATION_FAILED, "payload.card_id: %s already exists", cid);
	int64_t due, exp;
	GET(bk_get_ts(&x->v, P, "due_at", false, &due));
	if ((rc = get_expiry(x, P, &exp)))
		return rc;
	const bk_val *terms;
	bk_val empty = {.type = MSGPACK_OBJECT_MAP};
	GET(bk_get_map(&x->v, P, "payload",
		       t == BK_CT_RESCHEDULE || t == BK_CT_EXTRAS || t == BK_CT_EXPENSE ||
			   t == BK_CT_DISPUTE,
		       &terms));
	if (!terms)
		terms = &empty;
	bk_val tv;
	if ((rc = card_terms(x, (bk_card_type)t, terms, &tv)) ||
	    (rc = open_card(x, (bk_card_type)t, cid, &tv, due, exp)))
		return rc;
	if (t == BK_CT_DISPUTE) {
		MAPB(b, 5);
		PUT(bk_mapb_str(&b, "dispute_id", mint(x, "dsp_", "dispute")));
		PUT(bk_mapb_str(&b, "opened_by", bk_role_name((bk_role)x->cmd->actor_role)));
		PUT(bk_mapb_val(&b, "reason", *bk_map_get(&tv, "reason")));
		PUT(bk_mapb_str(&b, "card_id", cid));
		PUT(bk_mapb_str(&b, "from_status", bk_status_name((bk_status)x->o->status)));
		EMIT(BK_EV_DISPUTE_OPENED, 0, 0, b);
	}
	return finish_status(x, NULL, -1);
}

static const bk_card *find_card(dctx *x, int *rc)
{
	const char *s;
	size_t n;
	*rc = 0;
	if (bk_get_str(&x->v, P, "card_id", true, &s, &n) < 0) {
		*rc = invalid(x);
		return NULL;
	}
	const bk_card *c = bk_order_card(x->o, s, n);
	if (!c)
		*rc = reject(x, BK_E_NOT_FOUND, "payload.card_id: order %s has no card %.*s",
			     x->cmd->order_id, (int)n, s);
	return c;
}

/* The actor's relation to the card's creator, against the row's rule. */
static int card_who(dctx *x, const bk_card *c, const bk_card_row *row, const char *what)
{
	const char *u = x->cmd->actor_user_id ? x->cmd->actor_user_id : "";
	bool creator = strcmp(u, c->created_by) == 0;
	bool ok = row->who == BK_CW_EITHER || row->who == BK_CW_PARTY ||
		  (row->who == BK_CW_CREATOR && creator) ||
		  (row->who == BK_CW_COUNTERPARTY && !creator);
	if (!ok)
		return reject(x, BK_E_FORBIDDEN, "only the card's %s may %s card %s",
			      bk_card_who_name((bk_card_who)row->who), what, c->id);
	return 0;
}

static int d_card_respond(dctx *x, const rowset *rs)
{
	int rc;
	const bk_card *c = find_card(x, &rc);
	if (!c)
		return rc;
	const char *s;
	size_t n;
	GET(bk_get_str(&x->v, P, "action", true, &s, &n));
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
	if ((rc = card_who(x, c, row, s)))
		return rc;
	x->f.completes = c->type == BK_CT_COMPLETE && row->to == BK_CS_ACCEPTED;
	if ((rc = pick_row(x, rs)))
		return rc;
	const bk_val *rp;
	bk_val empty = {.type = MSGPACK_OBJECT_MAP};
	GET(bk_get_map(&x->v, P, "payload", op == BK_CO_COUNTER, &rp));
	if (!rp)
		rp = &empty;
	const char *resp_id = mint(x, "acr_", "response");
	if (!resp_id)
		return oom(x);
	bk_card_verb verb = bk_card_response_verb((bk_card_state)row->to);
	bk_val counter_terms;
	const char *new_id = NULL;
	if (op == BK_CO_COUNTER) {
		if ((rc = card_terms(x, (bk_card_type)c->type, rp, &counter_terms)))
			return rc;
		if (!(new_id = mint(x, "acd_", "counter")))
			return oom(x);
	}
	MAPB(b, 9);
	PUT(bk_mapb_str(&b, "card_id", c->id));
	PUT(bk_mapb_str(&b, "response_id", resp_id));
	PUT(bk_mapb_str(&b, "action", bk_card_op_name((bk_card_op)op)));
	PUT(bk_mapb_str(&b, "responder_user_id", x->cmd->actor_user_id));
	PUT(bk_mapb_val(&b, "payload", op == BK_CO_COUNTER ? counter_terms : *rp));
	if (new_id)
		PUT(bk_mapb_str(&b, "superseded_by", new_id));
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
		if ((rc = money_with(x, &x->o->items, v, nv, x->o->money.fee, x->o->money.tax,
				     x->o->money.tip, &m)))
			return rc;
		bk_val arr, totals;
		PUT(bk_li_build(x->z, v, nv, &arr));
		PUT(bk_totals_build(x->z, &m, &totals));
		PUT(bk_mapb_val(&b, "line_items", arr));
		PUT(bk_mapb_val(&b, "totals", totals));
	}
	EMIT(BK_EV_CARD, (uint8_t)verb, c->type, b);
	if (applies && c->type == BK_CT_RESCHEDULE) {
		MAPB(r, 3);
		PUT(bk_mapb_str(&r, "card_id", c->id));
		PUT(bk_mapb_ts(&r, "start_ts", c->start_ts));
		PUT(bk_mapb_ts(&r, "end_ts", c->end_ts));
		EMIT(BK_EV_CALENDAR_RESCHEDULED, 0, 0, r);
	}
	if (new_id) {
		/* the counter is a new card by the responder, replacing this one */
		MAPB(nb, 8);
		PUT(bk_mapb_str(&nb, "card_id", new_id));
		PUT(bk_mapb_str(&nb, "type", bk_card_type_name((bk_card_type)c->type)));
		PUT(bk_mapb_str(&nb, "created_by", x->cmd->actor_user_id));
		PUT(bk_mapb_str(&nb, "creator_role", bk_role_name((bk_role)x->cmd->actor_role)));
		PUT(bk_mapb_ts(&nb, "expires_at", c->expires_at));
		PUT(bk_mapb_val(&nb, "payload", counter_terms));
		PUT(bk_mapb_str(&nb, "counter_of", c->id));
		EMIT(BK_EV_CARD, BK_CV_PROPOSED, c->type, nb);
	}
	return finish_status(x, NULL, -1);
}

static int d_card_cancel(dctx *x, const rowset *rs)
{
	int rc;
	if ((rc = pick_row(x, rs)))
		return rc;
	const bk_card *c = find_card(x, &rc);
	if (!c)
		return rc;
	if (c->state == BK_CS_EXPIRED)
		return reject(x, BK_E_EXPIRED, "card %s expired", c->id);
	const bk_card_row *row = bk_card_row_find(BK_CO_CANCEL, (bk_card_type)c->type, c->state);
	if (!row)
		return reject(x, BK_E_INVALID_TRANSITION,
			      "card %s is %s; only open cards can be cancelled", c->id,
			      bk_card_state_name((bk_card_state)c->state));
	if ((rc = card_who(x, c, row, "cancel")))
		return rc;
	return emit_card_simple(x, c, BK_CV_CANCELLED);
}

/* --- expiry ------------------------------------------------------------------------ */

/* Events of the order's requests and cards whose time has come by `at`, each stamped
 * with a system command id derived from (order, target), so they are minted once. */
static int expire(dctx *x, bool sweep)
{
	const char *saved_id = x->ev_cmd_id, *saved_actor = x->ev_actor;
	uint32_t saved_idx = x->ev_idx;
	int64_t at = x->cmd->at;
	int rc = 0;
	char sys_id[BK_ID_MAX], label[BK_ID_MAX + 16];
	const bk_order *o = x->o;
	for (uint32_t i = 0; i < o->n_reqs && rc == 0; i++) {
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
		if (!emit(x, BK_EV_REQUEST_EXPIRED, 0, 0, bk_mapb_done(&b)) ||
		    emit_status_by(x, BK_CMD_REQUEST_EXPIRE, (bk_status)o->status,
				   (bk_status)rows[0]->to, "request expired", -1) < 0 ||
		    close_cards(x, (bk_status)rows[0]->to) < 0)
			rc = -1;
		break; /* the order is now declined: nothing else can expire */
	}
	for (uint32_t i = 0; i < o->n_cards && rc == 0; i++) {
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
		if (!x->ev_cmd_id || emit_card_simple(x, c, verb) < 0)
			rc = -1;
	}
	x->ev_cmd_id = saved_id;
	x->ev_actor = saved_actor;
	x->ev_idx = saved_idx;
	x->ev_at = at;
	return rc;
}

/* Run lazy expiry; when it emitted events, judge the command on an evolved clone. */
static int expire_and_evolve(dctx *x, bool sweep)
{
	uint32_t first = x->d->n_events;
	if (expire(x, sweep) < 0)
		return -1;
	if (x->d->n_events == first)
		return 0;
	x->work = bk_order_clone(x->o);
	if (!x->work)
		return oom(x);
	for (uint32_t i = first; i < x->d->n_events; i++) {
		char err[200];
		if (bk_evolve(x->work, &x->evs[i], err, sizeof(err)) < 0) {
			snprintf(x->d->message, sizeof(x->d->message), "internal: expiry: %s", err);
			return -1;
		}
	}
	x->o = x->work;
	return 0;
}

/* order.sweep on a settled order whose archive window has passed: order.archived, stamped
 * as expiry is, with a system id derived from the order and the window's end as its time,
 * so its bytes depend on the log alone (core/bk_archive.h). */
static int archive(dctx *x)
{
	int64_t due = bk_archive_due(x->o, x->ctx->archive_after);
	if (due == BK_TS_NONE || due > x->cmd->at)
		return 0;
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
	return emit(x, BK_EV_ORDER_ARCHIVED, 0, 0, bk_mapb_done(&b)) ? 0 : -1;
}

/* --- service profiles: profile.bind, auto-accept rules -------------------------------- */

static bk_profile_state profile_state(const bk_profile_rules *cur)
{
	if (!cur || !cur->owner_user_id[0])
		return BK_PS_UNBOUND;
	return cur->bound ? BK_PS_BOUND : BK_PS_LEGACY;
}

/* The row of bk_profile_table for the command on the profile's state, and the actor's
 * right to it (role, then identity); 0, or 1 with the rejection made. */
static int profile_row(dctx *x, const char *sp, const bk_profile_rules *cur)
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
	    (!c->actor_user_id || strcmp(cur->owner_user_id, c->actor_user_id) != 0))
		return reject(x, BK_E_FORBIDDEN, "service profile %s is %s another provider", sp,
			      st == BK_PS_BOUND ? "bound to" : "owned by");
	return 0;
}

/* payload.<key> must be the command's key: the service profile. */
static int same_profile(dctx *x, const char *key, const char *sp)
{
	const char *psp;
	size_t pspn;
	GET(bk_get_str(&x->v, P, key, true, &psp, &pspn));
	if (pspn != strlen(sp) || memcmp(psp, sp, pspn) != 0)
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.%s must equal the command's key (order_id field) %s", key,
			      sp);
	return 0;
}

/*
 * profile.bind: the profile's owner becomes payload.provider_user_id. Binding to the
 * provider that owns it already (a legacy owner confirmed, or a repeated bind) keeps the
 * rules; binding to another provider drops them, for they are the terms of the provider
 * who set them.
 */
static int d_bind(dctx *x, const char *sp, const bk_profile_rules *cur, bk_profile_rules *p)
{
	int rc;
	if ((rc = same_profile(x, "service_profile_id", sp)))
		return rc;
	const char *prov;
	size_t pn;
	GET(bk_get_str(&x->v, P, "provider_user_id", true, &prov, &pn));
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
	bk_strlcpyn(p->owner_user_id, sizeof(p->owner_user_id), prov, pn);
	p->bound = true;
	return 0;
}

/* autoaccept.set / autoaccept.delete by the profile's owner (profile_row checked it). */
static int d_rule(dctx *x, const char *sp, const bk_profile_rules *cur, bk_profile_rules *p)
{
	const bk_command *c = x->cmd;
	const char *s;
	size_t n;
	int rc;
	GET(bk_get_str(&x->v, P, "rule_id", true, &s, &n));
	if (!bk_id_valid(s, n, NULL))
		return reject(x, BK_E_VALIDATION_FAILED, "payload.rule_id: not a valid id");
	if (c->type == BK_CMD_AUTOACCEPT_SET && (rc = same_profile(x, "service_profile_id", sp)))
		return rc;
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
		return 0;
	}
	bk_rule r = {0};
	bk_strlcpyn(r.rule_id, sizeof(r.rule_id), s, n);
	if ((rc = get_cents(x, P, "min_price_cents", false, &r.min_price_cents, 0)))
		return rc;
	GET(bk_get_int(&x->v, P, "min_price_cents", false, &r.min_price_cents, &r.has_min_price));
	GET(bk_get_int(&x->v, P, "weekday_mask", false, &r.weekday_mask, &r.has_weekday_mask));
	if (r.has_weekday_mask && (r.weekday_mask < 0 || r.weekday_mask > 127))
		return reject(x, BK_E_VALIDATION_FAILED,
			      "payload.weekday_mask: bits 0 (Monday) to 6 (Sunday): 0 to 127");
	GET(bk_get_num(&x->v, P, "max_distance_mi", false, &r.max_distance_mi,
		       &r.has_max_distance));
	if (r.has_max_distance && !(r.max_distance_mi >= 0))
		return reject(x, BK_E_VALIDATION_FAILED, "payload.max_distance_mi: must be >= 0");
	GET(bk_get_bool(&x->v, P, "allow_ib", true, &r.allow_ib, NULL));
	if (p->n >= 64)
		return reject(x, BK_E_VALIDATION_FAILED, "at most 64 rules per service profile");
	p->rules[p->n++] = r;
	return 0;
}

/*
 * A command on a service profile (bk_cmd_is_profile): judged on the profile's entry in
 * ctx->rules through bk_profile_table (state, role, owner), then its payload. On success
 * the decision carries the profile's whole new entry (the booking.rules record).
 */
static int d_profile(dctx *x)
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
			return 1;
		}
	int rc;
	if ((rc = profile_row(x, sp, cur)))
		return rc;
	bk_profile_rules *p = &x->d->rules;
	memset(p, 0, sizeof(*p));
	x->d->has_rules = true;
	rc = c->type == BK_CMD_PROFILE_BIND ? d_bind(x, sp, cur, p) : d_rule(x, sp, cur, p);
	if (rc)
		return rc;
	/* remember the command id (ring of the last BK_PROFILE_RECENT) */
	if (p->n_recent < BK_PROFILE_RECENT) {
		p->recent[p->n_recent++] = fp;
	} else {
		memmove(p->recent, p->recent + 1, sizeof(p->recent[0]) * (BK_PROFILE_RECENT - 1));
		p->recent[BK_PROFILE_RECENT - 1] = fp;
	}
	return 0;
}

/* --- entry ---------------------------------------------------------------------------- */

static int dispatch(dctx *x, const rowset *rs)
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
		int rc = pick_row(x, rs);
		return rc ? rc : finish_status(x, NULL, -1);
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
		int rc = pick_row(x, rs); /* the expiry already ran */
		return rc ? rc : archive(x);
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
	if (!x.evs)
		return oom(&x);
	ret->events = x.evs;
	x.next_seq = state ? state->version + 1 : 1;
	x.prev = state ? bk_order_last_hash(state) : (const uint8_t[BK_HASH_LEN]){0};
	static const uint8_t zero_hash[BK_HASH_LEN];
	if (!state)
		x.prev = zero_hash;
	msgpack_sbuffer_init(&x.own_scratch);
	x.scratch = ctx->scratch ? ctx->scratch : &x.own_scratch;

	int rc = 0;
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
		else if (!(rc = table_rows(&x, &(rowset){0})))
			rc = d_create(&x);
	} else if (bk_order_seen(state, cmd->id, strlen(cmd->id))) {
		ret->outcome = BK_DUPLICATE;
		snprintf(ret->message, sizeof(ret->message), "command %s was already applied",
			 cmd->id);
		rc = 1;
	} else if (cmd->type == BK_CMD_ORDER_CREATE) {
		rc = reject(&x, BK_E_ORDER_EXISTS, "order %s already exists", cmd->order_id);
	} else {
		rc = expire_and_evolve(&x, cmd->type == BK_CMD_ORDER_SWEEP);
		rowset rs;
		if (rc == 0 && cmd->has_expected_version && cmd->expected_version != x.o->version)
			rc = reject(&x, BK_E_VERSION_CONFLICT,
				    "expected_version %lld, but order %s is at version %lld",
				    (long long)cmd->expected_version, cmd->order_id,
				    (long long)x.o->version);
		if (rc == 0 && !(rc = table_rows(&x, &rs)) && !(rc = check_party(&x)))
			rc = dispatch(&x, &rs);
	}
	bk_order_free(x.work);
	msgpack_sbuffer_destroy(&x.own_scratch);
	if (rc < 0) {
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
