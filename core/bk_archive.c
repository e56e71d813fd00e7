/*
 * bk_archive.c - settled orders and the archive window, from the FSM tables: a part is
 * open when a row of its table leaves its state by a command that the status table still
 * allows in the order's status. Terminal statuses allow only dispute.open and tip.add
 * (completed; bk_fsm_check keeps it so): the archive window is their window.
 */
#include <string.h>

#include "bk_archive.h"
#include "bk_ids.h"
#include "bk_time.h"

/* The command that moves a card by each card op; BK_CMD__COUNT for closing, which comes
 * with the order's move to a terminal status (a status row). */
static const uint8_t card_op_cmd[BK_CO__COUNT] = {
    [BK_CO_OPEN] = BK_CMD_CARD_OPEN,
    [BK_CO_ACCEPT] = BK_CMD_CARD_RESPOND,
    [BK_CO_APPROVE] = BK_CMD_CARD_RESPOND,
    [BK_CO_DECLINE] = BK_CMD_CARD_RESPOND,
    [BK_CO_COUNTER] = BK_CMD_CARD_RESPOND,
    [BK_CO_REQUEST_CHANGES] = BK_CMD_CARD_RESPOND,
    [BK_CO_UPLOAD] = BK_CMD_CARD_RESPOND,
    [BK_CO_CANCEL] = BK_CMD_CARD_CANCEL,
    [BK_CO_EXPIRE] = BK_CMD_CARD_EXPIRE,
    [BK_CO_SUPERSEDE] = BK_CMD_CARD_OPEN, /* a new card of its type supersedes it */
    [BK_CO_CLOSE] = BK_CMD__COUNT,
};
_Static_assert(BK_CO__COUNT == 11, "card_op_cmd has a row for every card op");

static bool allowed(bk_status st, int cmd)
{
	const bk_status_row *rows[1];
	return cmd < BK_CMD__COUNT && bk_status_rows((int)st, (bk_cmd_type)cmd, rows, 1) > 0;
}

/* Could a command allowed in status st move a part of lifecycle l out of state s? */
static bool life_open(bk_life l, int s, bk_status st)
{
	const bk_life_table *t = &bk_life_tables[l];
	for (size_t i = 0; i < t->n; i++)
		if (s >= 0 && s < 16 && (t->rows[i].from & (1u << s)) &&
		    allowed(st, t->rows[i].cmd))
			return true;
	return false;
}

static bool card_open(const bk_card *c, bk_status st)
{
	for (size_t i = 0; i < bk_card_table_len; i++) {
		const bk_card_row *r = &bk_card_table[i];
		if (c->type < BK_CT__COUNT && c->state < BK_CS__COUNT &&
		    (r->types & BK_CTM(c->type)) && (r->from & BK_CSM(c->state)) &&
		    allowed(st, card_op_cmd[r->op]))
			return true;
	}
	return false;
}

static bool ms_open(const bk_milestone *m, bk_status st)
{
	for (size_t i = 0; i < bk_ms_table_len; i++) {
		const bk_ms_row *r = &bk_ms_table[i];
		if (m->status < BK_MS__COUNT && (r->from & BK_MSM(m->status)) &&
		    allowed(st, r->cmd))
			return true;
	}
	return false;
}

bool bk_archive_settled(const bk_order *o)
{
	bk_status st = (bk_status)o->status;
	if (o->version < 1 || !bk_status_is_terminal(st))
		return false;
	for (uint32_t i = 0; i < o->n_reqs; i++)
		if (life_open(BK_LIFE_REQUEST, o->reqs[i].status, st))
			return false;
	for (uint32_t i = 0; i < o->n_rcps; i++)
		if (life_open(BK_LIFE_RECIPIENT, o->rcps[i].status, st))
			return false;
	for (uint32_t i = 0; i < o->n_disputes; i++)
		if (life_open(BK_LIFE_DISPUTE, o->disputes[i].status, st))
			return false;
	for (uint32_t i = 0; i < o->n_cards; i++)
		if (card_open(&o->cards[i], st))
			return false;
	for (uint32_t i = 0; i < o->n_ms; i++)
		if (ms_open(&o->ms[i], st))
			return false;
	return true;
}

int64_t bk_archive_due(const bk_order *o, int64_t window_us)
{
	if (window_us <= 0 || !bk_archive_settled(o) || o->last_event_at == BK_TS_NONE ||
	    o->last_event_at > INT64_MAX - window_us)
		return BK_TS_NONE;
	return o->last_event_at + window_us;
}

uint64_t bk_archive_fp(const char *order_id, size_t n)
{
	return bk_id_fingerprint(order_id, n) | 1;
}
