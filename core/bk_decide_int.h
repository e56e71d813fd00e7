/*
 * bk_decide_int.h - inside the decider (not exported from core): the context one
 * bk_decide call works in, the typed result of its steps, and the helpers its handlers
 * share. bk_decide.c holds the entry, the status table and lazy expiry; each aggregate's
 * handlers are in bk_decide_{order,request,card,money,rules}.c; the helpers below are in
 * bk_decide_common.c unless a line says otherwise.
 */
#ifndef BK_DECIDE_INT_H
#define BK_DECIDE_INT_H

#include <stdio.h>

#include "bk_decide.h"
#include "bk_internal.h"

#define MAX_ROWS 8

/*
 * What each step of the decider returns (handlers, payload helpers, emitters). The
 * caller goes on only on BK_DR_OK and otherwise returns the result as it is:
 *	bk_dres rc = step(x);
 *	if (rc != BK_DR_OK)
 *		return rc;
 */
typedef enum bk_dres {
	BK_DR_OK = 0,	/* done; go on */
	BK_DR_REJECTED, /* stop: the command is not accepted, d->outcome/code/message say why
			 * (rejected; or, from the idempotency checks, a duplicate) */
	BK_DR_FAILED,	/* stop: out of memory or an internal error (d->message); no
			 * decision: bk_decide returns -1 */
} bk_dres;

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

/* Rows allowed for the command in the current status and the actor's role. */
typedef struct rowset {
	const bk_status_row *r[MAX_ROWS];
	size_t n;
} rowset;

/* --- results ------------------------------------------------------------------------ */

/*
 * Reject the command: d->outcome, d->code and a message a person can act on
 * (printf-style). reject() is always BK_DR_REJECTED; it is a macro (with no return in it)
 * only so that the static analyser, which does not follow variadic calls, sees that
 * result; an unused reject() is an error (-Wunused-value), as BK_MUSTCHECK would make it.
 */
void reject_with(dctx *x, bk_err code, const char *fmt, ...) BK_PRINTF(3, 4);
#define reject(x, code, ...) (reject_with((x), (code), __VA_ARGS__), (bk_dres)BK_DR_REJECTED)

/* The payload getters wrote their complaint into d->message already. */
BK_MUSTCHECK static inline bk_dres invalid(dctx *x)
{
	x->d->outcome = BK_REJECTED;
	x->d->code = BK_E_VALIDATION_FAILED;
	return BK_DR_REJECTED;
}

BK_MUSTCHECK static inline bk_dres oom(dctx *x)
{
	snprintf(x->d->message, sizeof(x->d->message), "out of memory");
	return BK_DR_FAILED;
}

/* --- emitting events ---------------------------------------------------------------- */

/* A copy of s in the zone; NULL when s is NULL or on OOM. */
const char *zstr(dctx *x, const char *s);
/* A sub-entity id derived from the command id (zone memory); NULL on OOM. */
const char *mint(dctx *x, const char *prefix, const char *label);
bk_dres emit(dctx *x, bk_ev_type type, uint8_t sub, uint8_t card_type, bk_val payload) BK_MUSTCHECK;
bk_dres emit_status_by(dctx *x, bk_cmd_type cause, bk_status from, bk_status to, const char *reason,
		       int side) BK_MUSTCHECK;
bk_dres emit_card_simple(dctx *x, const bk_card *c, bk_card_verb verb) BK_MUSTCHECK;
bk_dres close_cards(dctx *x, bk_status to) BK_MUSTCHECK;
bk_dres finish_status(dctx *x, const char *reason, int side) BK_MUSTCHECK;

/* bk_decide.c: the first of rs whose guard holds sets x->to; else the guard's rejection */
bk_dres pick_row(dctx *x, const rowset *rs) BK_MUSTCHECK;

/* --- payload helpers ---------------------------------------------------------------- */

bk_dres id_or_mint(dctx *x, const char *key, const char *prefix, const char **ret_id) BK_MUSTCHECK;
bk_dres get_expiry(dctx *x, const bk_val *map, int64_t *ret) BK_MUSTCHECK;
/* Every field of event type t's schema (core/bk_schema.c) that the command gives
 * (BK_S_CMD, BK_S_CMD_REQUIRED), by copy_text with the row's limit, in schema order. */
bk_dres copy_cmd(dctx *x, bk_mapb *b, bk_ev_type t) BK_MUSTCHECK;
bk_dres client_items(dctx *x, const bk_val *map, const char *path, bk_li_view **ret,
		     uint32_t *ret_n, int64_t *ret_sum) BK_MUSTCHECK;
bk_dres get_cents(dctx *x, const bk_val *map, const char *key, bool req, int64_t *ret,
		  int64_t min) BK_MUSTCHECK;

/* --- money (bk_decide_money.c) -------------------------------------------------------- */

bk_dres money_with(dctx *x, const bk_items *base, const bk_li_view *add, uint32_t n_add,
		   int64_t fee, int64_t tax, int64_t tip, bk_money *ret) BK_MUSTCHECK;
bk_dres emit_refund(dctx *x, int64_t amount, const char *why) BK_MUSTCHECK;

/* --- the handlers, one per command (dispatch in bk_decide.c) --------------------------- */

/* bk_decide_order.c */
bk_dres d_create(dctx *x) BK_MUSTCHECK;
bk_dres d_cancel(dctx *x, const rowset *rs) BK_MUSTCHECK;
bk_dres d_note(dctx *x, const rowset *rs) BK_MUSTCHECK;
bk_dres d_dispute_open(dctx *x, const rowset *rs) BK_MUSTCHECK;
bk_dres d_dispute_update(dctx *x, const rowset *rs) BK_MUSTCHECK;
bk_dres d_dispute_resolve(dctx *x, const rowset *rs) BK_MUSTCHECK;
bk_dres d_milestone(dctx *x, const rowset *rs) BK_MUSTCHECK;
/* bk_decide_request.c */
bk_dres d_submit(dctx *x, const rowset *rs) BK_MUSTCHECK;
bk_dres d_invite_send(dctx *x, const rowset *rs) BK_MUSTCHECK;
bk_dres d_invite_respond(dctx *x, const rowset *rs) BK_MUSTCHECK;
bk_dres d_invite_award(dctx *x, const rowset *rs) BK_MUSTCHECK;
bk_dres d_request_simple(dctx *x, const rowset *rs, bk_ev_type type) BK_MUSTCHECK;
bk_dres d_counter(dctx *x, const rowset *rs) BK_MUSTCHECK;
bk_dres d_accept_counter(dctx *x, const rowset *rs) BK_MUSTCHECK;
/* bk_decide_money.c */
bk_dres d_payment(dctx *x, const rowset *rs) BK_MUSTCHECK;
bk_dres d_tip(dctx *x, const rowset *rs) BK_MUSTCHECK;
/* bk_decide_card.c */
bk_dres d_card_open(dctx *x, const rowset *rs) BK_MUSTCHECK;
bk_dres d_card_respond(dctx *x, const rowset *rs) BK_MUSTCHECK;
bk_dres d_card_cancel(dctx *x, const rowset *rs) BK_MUSTCHECK;
/* bk_decide_rules.c: a command on a service profile (bk_cmd_is_profile) */
bk_dres d_profile(dctx *x) BK_MUSTCHECK;

#endif
