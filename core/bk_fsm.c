/*
 * bk_fsm.c - the state-machine tables of a booking and their name tables.
 *
 * Invariant: a move is allowed only if a row below says so. Rows store their own
 * index so that tests (and bk_fsm_selfcheck) can assert the order; name tables use
 * designated initializers and are checked for holes.
 */
#include <stdio.h>
#include <string.h>

#include "bk_fsm.h"
#include "bk_model.h"

static const char *const status_names[BK_ST__COUNT] = {
    [BK_ST_INITIATED] = "initiated",
    [BK_ST_PENDING_ACCEPT] = "pending_accept",
    [BK_ST_COUNTERED] = "countered",
    [BK_ST_ACCEPTED] = "accepted",
    [BK_ST_DECLINED] = "declined",
    [BK_ST_CONFIRMED] = "confirmed",
    [BK_ST_IN_PROGRESS] = "in_progress",
    [BK_ST_DELIVERED] = "delivered",
    [BK_ST_COMPLETED] = "completed",
    [BK_ST_CANCELLED_BUYER] = "cancelled_buyer",
    [BK_ST_CANCELLED_PROVIDER] = "cancelled_provider",
    [BK_ST_DISPUTED] = "disputed",
    [BK_ST_RESOLVED] = "resolved",
};

static const char *const ostate_names[BK_OS__COUNT] = {
    [BK_OS_CREATED] = "created",     [BK_OS_AUTHORIZED] = "authorized",
    [BK_OS_CONFIRMED] = "confirmed", [BK_OS_IN_PROGRESS] = "in_progress",
    [BK_OS_COMPLETED] = "completed", [BK_OS_CANCELLED] = "cancelled",
    [BK_OS_DISPUTED] = "disputed",   [BK_OS_CLOSED] = "closed",
};

/* The derived ord.order_state of each booking status (SPEC §2). */
static const uint8_t ostate_of[BK_ST__COUNT] = {
    [BK_ST_INITIATED] = BK_OS_CREATED,
    [BK_ST_PENDING_ACCEPT] = BK_OS_CREATED,
    [BK_ST_COUNTERED] = BK_OS_CREATED,
    [BK_ST_ACCEPTED] = BK_OS_AUTHORIZED,
    [BK_ST_DECLINED] = BK_OS_CANCELLED,
    [BK_ST_CONFIRMED] = BK_OS_CONFIRMED,
    [BK_ST_IN_PROGRESS] = BK_OS_IN_PROGRESS,
    [BK_ST_DELIVERED] = BK_OS_IN_PROGRESS,
    [BK_ST_COMPLETED] = BK_OS_COMPLETED,
    [BK_ST_CANCELLED_BUYER] = BK_OS_CANCELLED,
    [BK_ST_CANCELLED_PROVIDER] = BK_OS_CANCELLED,
    [BK_ST_DISPUTED] = BK_OS_DISPUTED,
    [BK_ST_RESOLVED] = BK_OS_CLOSED,
};

static const char *const mode_names[BK_MODE__COUNT] = {
    [BK_MODE_IB] = "IB",
    [BK_MODE_RTB] = "RTB",
    [BK_MODE_INVITE] = "INVITE",
};

static const char *const role_names[BK_ROLE__COUNT] = {
    [BK_ROLE_BUYER] = "buyer",
    [BK_ROLE_PROVIDER] = "provider",
    [BK_ROLE_SUPPORT] = "support",
    [BK_ROLE_SYSTEM] = "system",
};

static const char *const cmd_names[BK_CMD__COUNT] = {
#define BK_CMD_NAME(sym, name) [BK_CMD_##sym] = name,
    BK_CMD_MAP(BK_CMD_NAME)
#undef BK_CMD_NAME
};

static const char *const guard_names[BK_G__COUNT] = {
    [BK_G_NONE] = "",
    [BK_G_MODE_RTB_NO_RULE] = "RTB, no auto-accept rule matches",
    [BK_G_MODE_RTB_RULE] = "RTB, an auto-accept rule matches",
    [BK_G_MODE_IB_RULE] = "IB, a rule with allow_ib matches",
    [BK_G_MODE_INVITE] = "INVITE order",
    [BK_G_AMOUNT_IS_TOTAL] = "amount = total",
    [BK_G_SIDE_BUYER] = "side = buyer",
    [BK_G_SIDE_PROVIDER] = "side = provider",
    [BK_G_MODE_RTB] = "RTB order",
    [BK_G_CARD_DISPUTE] = "dispute card",
    [BK_G_CARD_OTHER] = "not a dispute card",
    [BK_G_CARD_COMPLETES] = "accepts a complete card",
    [BK_G_CARD_KEEPS] = "does not complete the order",
};

static const char *const card_type_names[BK_CT__COUNT] = {
    [BK_CT_RESCHEDULE] = "reschedule", [BK_CT_EXTRAS] = "extras",     [BK_CT_PROOFS] = "proofs",
    [BK_CT_EXPENSE] = "expense",       [BK_CT_COMPLETE] = "complete", [BK_CT_DISPUTE] = "dispute",
};

static const char *const card_state_names[BK_CS__COUNT] = {
    [BK_CS_OPEN] = "open",	 [BK_CS_ACCEPTED] = "accepted",	  [BK_CS_DECLINED] = "declined",
    [BK_CS_EXPIRED] = "expired", [BK_CS_CANCELLED] = "cancelled", [BK_CS_SUPERSEDED] = "superseded",
    [BK_CS_CLOSED] = "closed",
};

static const char *const card_op_names[BK_CO__COUNT] = {
    [BK_CO_OPEN] = "open",	 [BK_CO_ACCEPT] = "accept",
    [BK_CO_APPROVE] = "approve", [BK_CO_DECLINE] = "decline",
    [BK_CO_COUNTER] = "counter", [BK_CO_REQUEST_CHANGES] = "request_changes",
    [BK_CO_UPLOAD] = "upload",	 [BK_CO_CANCEL] = "cancel",
    [BK_CO_EXPIRE] = "expire",	 [BK_CO_SUPERSEDE] = "supersede",
    [BK_CO_CLOSE] = "close",
};

static const char *const card_who_names[BK_CW__COUNT] = {
    [BK_CW_PARTY] = "buyer or provider", [BK_CW_COUNTERPARTY] = "counter-party",
    [BK_CW_CREATOR] = "creator",	 [BK_CW_EITHER] = "creator or counter-party",
    [BK_CW_SYSTEM] = "system",
};

static const char *const ms_state_names[BK_MS__COUNT] = {
    [BK_MS_OPEN] = "open",	   [BK_MS_DELIVERED] = "delivered", [BK_MS_APPROVED] = "approved",
    [BK_MS_DISPUTED] = "disputed", [BK_MS_REFUNDED] = "refunded",
};

static const char *const profile_state_names[BK_PS__COUNT] = {
    [BK_PS_UNBOUND] = "unbound",
    [BK_PS_LEGACY] = "legacy",
    [BK_PS_BOUND] = "bound",
};

static const char *const profile_who_names[BK_PW__COUNT] = {
    [BK_PW_AUTHORITY] = "keyring: system for profile.",
    [BK_PW_OWNER] = "the profile's owner",
};

/* --- booking_status ------------------------------------------------------------ */

#define S(x) BK_STM(BK_ST_##x)
#define R(x) BK_RM(BK_ROLE_##x)
#define ST_CANCELLABLE                                                                             \
	(S(INITIATED) | S(PENDING_ACCEPT) | S(COUNTERED) | S(ACCEPTED) | S(CONFIRMED))
#define ST_LIVE                                                                                    \
	(S(INITIATED) | S(PENDING_ACCEPT) | S(COUNTERED) | S(ACCEPTED) | S(CONFIRMED) |            \
	 S(IN_PROGRESS) | S(DELIVERED) | S(DISPUTED))
#define ST_ALL	((1u << BK_ST__COUNT) - 1)
#define ST_WORK (S(CONFIRMED) | S(IN_PROGRESS) | S(DELIVERED))

const bk_status_row bk_status_table[] = {
    {0, BK_CMD_ORDER_CREATE, R(BUYER), 0, BK_ST_INITIATED, BK_G_NONE},
    {1, BK_CMD_REQUEST_SUBMIT, R(BUYER), S(INITIATED), BK_ST_ACCEPTED, BK_G_MODE_RTB_RULE},
    {2, BK_CMD_REQUEST_SUBMIT, R(BUYER), S(INITIATED), BK_ST_PENDING_ACCEPT, BK_G_MODE_RTB_NO_RULE},
    {3, BK_CMD_REQUEST_SUBMIT, R(BUYER), S(INITIATED), BK_ST_ACCEPTED, BK_G_MODE_IB_RULE},
    {4, BK_CMD_INVITE_SEND, R(BUYER), S(INITIATED), BK_ST_PENDING_ACCEPT, BK_G_MODE_INVITE},
    {5, BK_CMD_INVITE_RESPOND, R(PROVIDER), S(PENDING_ACCEPT), BK_ST_SAME, BK_G_MODE_INVITE},
    {6, BK_CMD_INVITE_AWARD, R(BUYER), S(PENDING_ACCEPT), BK_ST_ACCEPTED, BK_G_MODE_INVITE},
    {7, BK_CMD_REQUEST_ACCEPT, R(PROVIDER), S(PENDING_ACCEPT), BK_ST_ACCEPTED, BK_G_MODE_RTB},
    {8, BK_CMD_REQUEST_DECLINE, R(PROVIDER), S(PENDING_ACCEPT) | S(COUNTERED), BK_ST_DECLINED,
     BK_G_MODE_RTB},
    {9, BK_CMD_REQUEST_COUNTER, R(PROVIDER), S(PENDING_ACCEPT), BK_ST_COUNTERED, BK_G_MODE_RTB},
    {10, BK_CMD_REQUEST_ACCEPT_COUNTER, R(BUYER), S(COUNTERED), BK_ST_ACCEPTED, BK_G_NONE},
    {11, BK_CMD_REQUEST_DECLINE_COUNTER, R(BUYER), S(COUNTERED), BK_ST_DECLINED, BK_G_NONE},
    {12, BK_CMD_REQUEST_EXPIRE, R(SYSTEM), S(PENDING_ACCEPT) | S(COUNTERED), BK_ST_DECLINED,
     BK_G_NONE},
    {13, BK_CMD_PAYMENT_CAPTURED, R(SYSTEM), S(ACCEPTED), BK_ST_CONFIRMED, BK_G_AMOUNT_IS_TOTAL},
    {14, BK_CMD_ORDER_START, R(PROVIDER) | R(SYSTEM), S(CONFIRMED), BK_ST_IN_PROGRESS, BK_G_NONE},
    {15, BK_CMD_ORDER_DELIVER, R(PROVIDER), S(IN_PROGRESS), BK_ST_DELIVERED, BK_G_NONE},
    {16, BK_CMD_ORDER_COMPLETE, R(BUYER) | R(SYSTEM), S(DELIVERED), BK_ST_COMPLETED, BK_G_NONE},
    {17, BK_CMD_ORDER_CANCEL, R(BUYER), ST_CANCELLABLE, BK_ST_CANCELLED_BUYER, BK_G_NONE},
    {18, BK_CMD_ORDER_CANCEL, R(PROVIDER), ST_CANCELLABLE, BK_ST_CANCELLED_PROVIDER, BK_G_NONE},
    {19, BK_CMD_ORDER_CANCEL, R(SUPPORT), ST_CANCELLABLE, BK_ST_CANCELLED_BUYER, BK_G_SIDE_BUYER},
    {20, BK_CMD_ORDER_CANCEL, R(SUPPORT), ST_CANCELLABLE, BK_ST_CANCELLED_PROVIDER,
     BK_G_SIDE_PROVIDER},
    {21, BK_CMD_DISPUTE_OPEN, R(BUYER) | R(PROVIDER), ST_WORK | S(COMPLETED), BK_ST_DISPUTED,
     BK_G_NONE},
    {22, BK_CMD_DISPUTE_UPDATE, R(SUPPORT), S(DISPUTED), BK_ST_SAME, BK_G_NONE},
    {23, BK_CMD_DISPUTE_RESOLVE, R(SUPPORT), S(DISPUTED), BK_ST_RESOLVED, BK_G_NONE},
    {24, BK_CMD_MILESTONE_ADD, R(BUYER) | R(PROVIDER), S(ACCEPTED) | ST_WORK, BK_ST_SAME,
     BK_G_NONE},
    {25, BK_CMD_MILESTONE_DELIVER, R(PROVIDER), ST_WORK, BK_ST_SAME, BK_G_NONE},
    {26, BK_CMD_MILESTONE_APPROVE, R(BUYER), ST_WORK, BK_ST_SAME, BK_G_NONE},
    {27, BK_CMD_MILESTONE_DISPUTE, R(BUYER), ST_WORK, BK_ST_SAME, BK_G_NONE},
    {28, BK_CMD_MILESTONE_REFUND, R(PROVIDER) | R(SUPPORT), ST_WORK | S(DISPUTED), BK_ST_SAME,
     BK_G_NONE},
    {29, BK_CMD_TIP_ADD, R(BUYER), S(DELIVERED) | S(COMPLETED), BK_ST_SAME, BK_G_NONE},
    {30, BK_CMD_NOTE_ADD, R(BUYER) | R(PROVIDER) | R(SUPPORT), ST_LIVE, BK_ST_SAME, BK_G_NONE},
    {31, BK_CMD_CARD_OPEN, R(BUYER) | R(PROVIDER), ST_WORK, BK_ST_DISPUTED, BK_G_CARD_DISPUTE},
    {32, BK_CMD_CARD_OPEN, R(BUYER) | R(PROVIDER), ST_WORK, BK_ST_SAME, BK_G_CARD_OTHER},
    {33, BK_CMD_CARD_RESPOND, R(BUYER) | R(PROVIDER), S(DELIVERED), BK_ST_COMPLETED,
     BK_G_CARD_COMPLETES},
    {34, BK_CMD_CARD_RESPOND, R(BUYER) | R(PROVIDER), ST_WORK | S(DISPUTED), BK_ST_SAME,
     BK_G_CARD_KEEPS},
    {35, BK_CMD_CARD_CANCEL, R(BUYER) | R(PROVIDER), ST_WORK | S(DISPUTED), BK_ST_SAME, BK_G_NONE},
    {36, BK_CMD_CARD_EXPIRE, R(SYSTEM), ST_WORK | S(DISPUTED), BK_ST_SAME, BK_G_NONE},
    {37, BK_CMD_ORDER_SWEEP, R(SYSTEM), ST_ALL, BK_ST_SAME, BK_G_NONE},
};
const size_t bk_status_table_len = sizeof(bk_status_table) / sizeof(bk_status_table[0]);
_Static_assert(sizeof(bk_status_table) / sizeof(bk_status_table[0]) == 38,
	       "update the count when rows change");

/* --- card_state ----------------------------------------------------------------- */

#define T(x)   BK_CTM(BK_CT_##x)
#define C(x)   BK_CSM(BK_CS_##x)
#define CT_ALL ((1u << BK_CT__COUNT) - 1)

const bk_card_row bk_card_table[] = {
    {0, BK_CO_OPEN, T(RESCHEDULE) | T(EXTRAS) | T(DISPUTE), 0, BK_CS_OPEN, BK_CW_PARTY,
     R(BUYER) | R(PROVIDER)},
    {1, BK_CO_OPEN, T(PROOFS) | T(EXPENSE) | T(COMPLETE), 0, BK_CS_OPEN, BK_CW_PARTY, R(PROVIDER)},
    {2, BK_CO_ACCEPT, T(RESCHEDULE) | T(EXTRAS) | T(EXPENSE) | T(COMPLETE), C(OPEN), BK_CS_ACCEPTED,
     BK_CW_COUNTERPARTY, 0},
    {3, BK_CO_APPROVE, T(PROOFS) | T(EXPENSE) | T(COMPLETE), C(OPEN), BK_CS_ACCEPTED,
     BK_CW_COUNTERPARTY, 0},
    {4, BK_CO_DECLINE, T(RESCHEDULE) | T(EXTRAS) | T(PROOFS) | T(EXPENSE) | T(COMPLETE), C(OPEN),
     BK_CS_DECLINED, BK_CW_COUNTERPARTY, 0},
    {5, BK_CO_COUNTER, T(RESCHEDULE) | T(EXTRAS), C(OPEN), BK_CS_SUPERSEDED, BK_CW_COUNTERPARTY, 0},
    {6, BK_CO_REQUEST_CHANGES, T(PROOFS), C(OPEN), BK_CS_OPEN, BK_CW_COUNTERPARTY, 0},
    {7, BK_CO_UPLOAD, T(PROOFS) | T(DISPUTE), C(OPEN), BK_CS_OPEN, BK_CW_EITHER, 0},
    {8, BK_CO_CANCEL, CT_ALL, C(OPEN), BK_CS_CANCELLED, BK_CW_CREATOR, 0},
    {9, BK_CO_EXPIRE, CT_ALL, C(OPEN), BK_CS_EXPIRED, BK_CW_SYSTEM, 0},
    {10, BK_CO_SUPERSEDE, CT_ALL, C(OPEN), BK_CS_SUPERSEDED, BK_CW_SYSTEM, 0},
    {11, BK_CO_CLOSE, CT_ALL, C(OPEN) | C(ACCEPTED) | C(DECLINED), BK_CS_CLOSED, BK_CW_SYSTEM, 0},
};
const size_t bk_card_table_len = sizeof(bk_card_table) / sizeof(bk_card_table[0]);
_Static_assert(sizeof(bk_card_table) / sizeof(bk_card_table[0]) == 12,
	       "update the count when rows change");

/* --- milestones ----------------------------------------------------------------- */

#define M(x) BK_MSM(BK_MS_##x)

const bk_ms_row bk_ms_table[] = {
    {0, BK_CMD_MILESTONE_ADD, R(BUYER) | R(PROVIDER), 0, BK_MS_OPEN},
    {1, BK_CMD_MILESTONE_DELIVER, R(PROVIDER), M(OPEN), BK_MS_DELIVERED},
    {2, BK_CMD_MILESTONE_APPROVE, R(BUYER), M(DELIVERED), BK_MS_APPROVED},
    {3, BK_CMD_MILESTONE_DISPUTE, R(BUYER), M(OPEN) | M(DELIVERED), BK_MS_DISPUTED},
    {4, BK_CMD_MILESTONE_REFUND, R(PROVIDER) | R(SUPPORT), M(OPEN) | M(DELIVERED) | M(DISPUTED),
     BK_MS_REFUNDED},
};
const size_t bk_ms_table_len = sizeof(bk_ms_table) / sizeof(bk_ms_table[0]);
_Static_assert(sizeof(bk_ms_table) / sizeof(bk_ms_table[0]) == 5,
	       "update the count when rows change");

/* --- requests, invite recipients, disputes ---------------------------------------- */

#define Q(x) (1u << BK_RQ_##x)
static const bk_life_row req_rows[] = {
    {0, BK_CMD_REQUEST_SUBMIT, 0, BK_RQ_PENDING},
    {1, BK_CMD_REQUEST_SUBMIT, Q(PENDING), BK_RQ_ACCEPTED}, /* accepted by a rule (IB, RTB) */
    {2, BK_CMD_INVITE_SEND, 0, BK_RQ_PENDING},
    {3, BK_CMD_INVITE_AWARD, Q(PENDING), BK_RQ_ACCEPTED},
    {4, BK_CMD_REQUEST_ACCEPT, Q(PENDING), BK_RQ_ACCEPTED},
    {5, BK_CMD_REQUEST_DECLINE, Q(PENDING) | Q(COUNTERED), BK_RQ_DECLINED},
    {6, BK_CMD_REQUEST_COUNTER, Q(PENDING), BK_RQ_COUNTERED},
    {7, BK_CMD_REQUEST_ACCEPT_COUNTER, Q(COUNTERED), BK_RQ_ACCEPTED},
    {8, BK_CMD_REQUEST_DECLINE_COUNTER, Q(COUNTERED), BK_RQ_DECLINED},
    {9, BK_CMD_REQUEST_EXPIRE, Q(PENDING) | Q(COUNTERED), BK_RQ_EXPIRED},
};
#undef Q
_Static_assert(sizeof(req_rows) / sizeof(req_rows[0]) == 10, "update the count when rows change");

#define RC(x) (1u << BK_RC_##x)
static const bk_life_row rcp_rows[] = {
    {0, BK_CMD_INVITE_SEND, 0, BK_RC_NEW},
    {1, BK_CMD_INVITE_RESPOND, RC(NEW) | RC(RESPONDED), BK_RC_RESPONDED},
    {2, BK_CMD_INVITE_AWARD, RC(RESPONDED), BK_RC_AWARDED},		  /* the one awarded */
    {3, BK_CMD_INVITE_AWARD, RC(NEW) | RC(RESPONDED), BK_RC_NOT_AWARDED}, /* every other */
};
#undef RC
_Static_assert(sizeof(rcp_rows) / sizeof(rcp_rows[0]) == 4, "update the count when rows change");

#define D(x)	(1u << BK_DS_##x)
#define DS_OPEN (D(OPEN) | D(AWAITING_EVIDENCE) | D(UNDER_REVIEW))
static const bk_life_row dsp_rows[] = {
    {0, BK_CMD_DISPUTE_OPEN, 0, BK_DS_OPEN},
    {1, BK_CMD_DISPUTE_UPDATE, DS_OPEN, BK_DS_AWAITING_EVIDENCE},
    {2, BK_CMD_DISPUTE_UPDATE, DS_OPEN, BK_DS_UNDER_REVIEW},
    {3, BK_CMD_DISPUTE_RESOLVE, DS_OPEN, BK_DS_RESOLVED_BUYER},
    {4, BK_CMD_DISPUTE_RESOLVE, DS_OPEN, BK_DS_RESOLVED_PROVIDER},
    {5, BK_CMD_DISPUTE_RESOLVE, DS_OPEN, BK_DS_SPLIT},
};
#undef DS_OPEN
#undef D
_Static_assert(sizeof(dsp_rows) / sizeof(dsp_rows[0]) == 6, "update the count when rows change");

static const char *req_nm(int s)
{
	return bk_req_status_name((bk_req_status)s);
}
static const char *rcp_nm(int s)
{
	return bk_rcp_status_name((bk_rcp_status)s);
}
static const char *dsp_nm(int s)
{
	return bk_dsp_status_name((bk_dsp_status)s);
}

const bk_life_table bk_life_tables[BK_LIFE__COUNT] = {
    [BK_LIFE_REQUEST] = {"request", "booking.request.status", req_rows,
			 sizeof(req_rows) / sizeof(req_rows[0]), BK_RQ__COUNT, req_nm, 0},
    [BK_LIFE_RECIPIENT] = {"invite_recipient", "booking.invite_recipient.status", rcp_rows,
			   sizeof(rcp_rows) / sizeof(rcp_rows[0]), BK_RC__COUNT, rcp_nm, 0},
    /* chargeback: in the data model's set, entered by no command yet (a payment
     * provider's chargeback would be one); shown as entered from outside */
    [BK_LIFE_DISPUTE] = {"dispute", "booking.dispute.status", dsp_rows,
			 sizeof(dsp_rows) / sizeof(dsp_rows[0]), BK_DS__COUNT, dsp_nm,
			 1u << BK_DS_CHARGEBACK},
};

bool bk_life_allows(bk_life l, bk_cmd_type cmd, int from, int to)
{
	if ((unsigned)l >= BK_LIFE__COUNT)
		return false;
	const bk_life_table *t = &bk_life_tables[l];
	for (size_t i = 0; i < t->n; i++) {
		const bk_life_row *r = &t->rows[i];
		if (r->cmd != cmd || (to >= 0 && r->to != to))
			continue;
		if (from < 0 ? r->from == 0 : from < 16 && (r->from & (1u << from)))
			return true;
	}
	return false;
}

bool bk_life_open(bk_life l, int s)
{
	if ((unsigned)l >= BK_LIFE__COUNT || s < 0 || s >= 16)
		return false;
	const bk_life_table *t = &bk_life_tables[l];
	for (size_t i = 0; i < t->n; i++)
		if (t->rows[i].from & (1u << s))
			return true;
	return false;
}

/* --- service profiles (booking.rules) --------------------------------------------- */

#define PS(x) BK_PSM(BK_PS_##x)

const bk_profile_row bk_profile_table[] = {
    {0, BK_CMD_PROFILE_BIND, R(SYSTEM), PS(UNBOUND) | PS(LEGACY) | PS(BOUND), BK_PS_BOUND,
     BK_PW_AUTHORITY},
    {1, BK_CMD_AUTOACCEPT_SET, R(PROVIDER), PS(LEGACY) | PS(BOUND), BK_PS_SAME, BK_PW_OWNER},
    {2, BK_CMD_AUTOACCEPT_DELETE, R(PROVIDER), PS(LEGACY) | PS(BOUND), BK_PS_SAME, BK_PW_OWNER},
};
const size_t bk_profile_table_len = sizeof(bk_profile_table) / sizeof(bk_profile_table[0]);
_Static_assert(sizeof(bk_profile_table) / sizeof(bk_profile_table[0]) == 3,
	       "update the count when rows change");

/* --- names ---------------------------------------------------------------------- */

#define NAME_OF(tab, v) (((unsigned)(v) < sizeof(tab) / sizeof(tab[0]) && tab[v]) ? tab[v] : "?")

const char *bk_status_name(bk_status s)
{
	return NAME_OF(status_names, s);
}
const char *bk_ostate_name(bk_ostate s)
{
	return NAME_OF(ostate_names, s);
}
const char *bk_mode_name(bk_mode m)
{
	return NAME_OF(mode_names, m);
}
const char *bk_role_name(bk_role r)
{
	return NAME_OF(role_names, r);
}
const char *bk_cmd_name(bk_cmd_type c)
{
	return NAME_OF(cmd_names, c);
}
const char *bk_guard_name(bk_guard g)
{
	return NAME_OF(guard_names, g);
}
const char *bk_card_type_name(bk_card_type t)
{
	return NAME_OF(card_type_names, t);
}
const char *bk_card_state_name(bk_card_state s)
{
	return NAME_OF(card_state_names, s);
}
const char *bk_card_op_name(bk_card_op o)
{
	return NAME_OF(card_op_names, o);
}
const char *bk_card_who_name(bk_card_who w)
{
	return NAME_OF(card_who_names, w);
}
const char *bk_ms_state_name(bk_ms_state s)
{
	return NAME_OF(ms_state_names, s);
}
const char *bk_profile_state_name(bk_profile_state s)
{
	return NAME_OF(profile_state_names, s);
}
const char *bk_profile_who_name(bk_profile_who w)
{
	return NAME_OF(profile_who_names, w);
}

static int lookup(const char *const *tab, int count, const char *s, size_t n)
{
	if (!s || n == 0) /* no name is empty */
		return -1;
	/* the first byte first: most candidates differ there, and then need no strlen */
	for (int i = 0; i < count; i++)
		if (tab[i] && tab[i][0] == s[0] && strlen(tab[i]) == n && memcmp(tab[i], s, n) == 0)
			return i;
	return -1;
}

int bk_status_from(const char *s, size_t n)
{
	return lookup(status_names, BK_ST__COUNT, s, n);
}
int bk_mode_from(const char *s, size_t n)
{
	return lookup(mode_names, BK_MODE__COUNT, s, n);
}
int bk_role_from(const char *s, size_t n)
{
	return lookup(role_names, BK_ROLE__COUNT, s, n);
}
int bk_cmd_from(const char *s, size_t n)
{
	return lookup(cmd_names, BK_CMD__COUNT, s, n);
}
int bk_card_type_from(const char *s, size_t n)
{
	return lookup(card_type_names, BK_CT__COUNT, s, n);
}
int bk_card_op_from(const char *s, size_t n)
{
	return lookup(card_op_names, BK_CO__COUNT, s, n);
}
int bk_card_state_from(const char *s, size_t n)
{
	return lookup(card_state_names, BK_CS__COUNT, s, n);
}
int bk_ms_state_from(const char *s, size_t n)
{
	return lookup(ms_state_names, BK_MS__COUNT, s, n);
}

bool bk_cmd_is_internal(bk_cmd_type c)
{
	return c == BK_CMD_ORDER_SWEEP || c == BK_CMD_REQUEST_EXPIRE || c == BK_CMD_CARD_EXPIRE;
}

bool bk_cmd_is_profile(bk_cmd_type c)
{
	for (size_t i = 0; i < bk_profile_table_len; i++)
		if (bk_profile_table[i].cmd == c)
			return true;
	return false;
}

bk_ostate bk_ostate_of(bk_status s)
{
	return (unsigned)s < BK_ST__COUNT ? (bk_ostate)ostate_of[s] : BK_OS_CREATED;
}

bool bk_card_state_is_terminal(bk_card_state s)
{
	return s == BK_CS_EXPIRED || s == BK_CS_CANCELLED || s == BK_CS_SUPERSEDED ||
	       s == BK_CS_CLOSED;
}

bool bk_ms_state_is_terminal(bk_ms_state s)
{
	return s == BK_MS_APPROVED || s == BK_MS_REFUNDED;
}

bool bk_status_is_terminal(bk_status s)
{
	return s == BK_ST_DECLINED || s == BK_ST_CANCELLED_BUYER || s == BK_ST_CANCELLED_PROVIDER ||
	       s == BK_ST_RESOLVED || s == BK_ST_COMPLETED;
}

/* --- lookups -------------------------------------------------------------------- */

size_t bk_status_rows(int from, bk_cmd_type cmd, const bk_status_row **ret_rows, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < bk_status_table_len; i++) {
		const bk_status_row *r = &bk_status_table[i];
		if (r->cmd != cmd)
			continue;
		bool match = from == BK_ST_NONE ? r->from == 0
						: (from >= 0 && from < BK_ST__COUNT &&
						   (r->from & BK_STM(from)) != 0);
		if (!match)
			continue;
		if (n < max)
			ret_rows[n] = r;
		n++;
	}
	return n;
}

const bk_card_row *bk_card_row_find(bk_card_op op, bk_card_type type, int from)
{
	for (size_t i = 0; i < bk_card_table_len; i++) {
		const bk_card_row *r = &bk_card_table[i];
		if (r->op != op || !(r->types & BK_CTM(type)))
			continue;
		if (from == BK_CS_NONE
			? r->from == 0
			: (from >= 0 && from < BK_CS__COUNT && (r->from & BK_CSM(from))))
			return r;
	}
	return NULL;
}

const bk_ms_row *bk_ms_row_find(bk_cmd_type cmd, int from)
{
	for (size_t i = 0; i < bk_ms_table_len; i++) {
		const bk_ms_row *r = &bk_ms_table[i];
		if (r->cmd != cmd)
			continue;
		if (from < 0 ? r->from == 0 : (from < BK_MS__COUNT && (r->from & BK_MSM(from))))
			return r;
	}
	return NULL;
}

const bk_profile_row *bk_profile_row_find(bk_cmd_type cmd, bk_profile_state from)
{
	if ((unsigned)from >= BK_PS__COUNT)
		return NULL;
	for (size_t i = 0; i < bk_profile_table_len; i++) {
		const bk_profile_row *r = &bk_profile_table[i];
		if (r->cmd == cmd && (r->from & BK_PSM(from)))
			return r;
	}
	return NULL;
}

/* --- self-check ----------------------------------------------------------------- */

#define CHECK_NAMES(tab, count, what)                                                              \
	for (int i_ = 0; i_ < (count); i_++)                                                       \
		if (!(tab)[i_] || (i_ > 0 && !(tab)[i_][0])) {                                     \
			snprintf(err, errsz, "%s name %d missing", what, i_);                      \
			return -1;                                                                 \
		}

int bk_fsm_selfcheck(char *err, size_t errsz)
{
	CHECK_NAMES(status_names, BK_ST__COUNT, "status");
	CHECK_NAMES(ostate_names, BK_OS__COUNT, "order_state");
	CHECK_NAMES(mode_names, BK_MODE__COUNT, "mode");
	CHECK_NAMES(role_names, BK_ROLE__COUNT, "role");
	CHECK_NAMES(cmd_names, BK_CMD__COUNT, "command");
	CHECK_NAMES(guard_names, BK_G__COUNT, "guard");
	CHECK_NAMES(card_type_names, BK_CT__COUNT, "card type");
	CHECK_NAMES(card_state_names, BK_CS__COUNT, "card state");
	CHECK_NAMES(card_op_names, BK_CO__COUNT, "card op");
	CHECK_NAMES(ms_state_names, BK_MS__COUNT, "milestone state");
	CHECK_NAMES(card_who_names, BK_CW__COUNT, "card who");
	CHECK_NAMES(profile_state_names, BK_PS__COUNT, "profile state");
	CHECK_NAMES(profile_who_names, BK_PW__COUNT, "profile who");
	for (size_t i = 0; i < bk_status_table_len; i++) {
		const bk_status_row *r = &bk_status_table[i];
		if (r->index != i || r->cmd >= BK_CMD__COUNT || r->guard >= BK_G__COUNT ||
		    r->actors == 0 || r->actors >= (1u << BK_ROLE__COUNT) ||
		    r->from >= (1u << BK_ST__COUNT) ||
		    (r->to != BK_ST_SAME && r->to >= BK_ST__COUNT) ||
		    (r->from == 0 && r->to == BK_ST_SAME)) {
			snprintf(err, errsz, "status row %zu is malformed", i);
			return -1;
		}
		/* a terminal status takes nothing but what SPEC §2 lets completed take */
		for (int s = 0; s < BK_ST__COUNT; s++) {
			if (!(r->from & BK_STM(s)) || !bk_status_is_terminal((bk_status)s))
				continue;
			bool ok = s == BK_ST_COMPLETED &&
				  (r->cmd == BK_CMD_DISPUTE_OPEN || r->cmd == BK_CMD_TIP_ADD);
			if (!ok && r->cmd != BK_CMD_ORDER_SWEEP) {
				snprintf(err, errsz,
					 "status row %zu lets terminal status %s take %s", i,
					 status_names[s], cmd_names[r->cmd]);
				return -1;
			}
		}
	}
	for (size_t i = 0; i < bk_card_table_len; i++) {
		const bk_card_row *r = &bk_card_table[i];
		if (r->index != i || r->op >= BK_CO__COUNT || r->to >= BK_CS__COUNT ||
		    r->types == 0 || r->types >= (1u << BK_CT__COUNT) ||
		    r->from >= (1u << BK_CS__COUNT) || (r->op == BK_CO_OPEN) != (r->from == 0) ||
		    (r->op == BK_CO_OPEN) != (r->openers != 0) || r->who >= BK_CW__COUNT ||
		    r->openers >= (1u << BK_ROLE__COUNT)) {
			snprintf(err, errsz, "card row %zu is malformed", i);
			return -1;
		}
	}
	for (size_t i = 0; i < bk_card_table_len; i++)
		for (int st = 0; st < BK_CS__COUNT; st++)
			if ((bk_card_table[i].from & BK_CSM(st)) &&
			    bk_card_state_is_terminal((bk_card_state)st)) {
				snprintf(err, errsz, "card row %zu leaves final state %s", i,
					 card_state_names[st]);
				return -1;
			}
	for (size_t i = 0; i < bk_ms_table_len; i++) {
		const bk_ms_row *r = &bk_ms_table[i];
		for (int st = 0; st < BK_MS__COUNT; st++)
			if ((r->from & BK_MSM(st)) && bk_ms_state_is_terminal((bk_ms_state)st)) {
				snprintf(err, errsz, "milestone row %zu leaves final state %s", i,
					 ms_state_names[st]);
				return -1;
			}
		if (r->index != i || r->to >= BK_MS__COUNT || r->from >= (1u << BK_MS__COUNT) ||
		    r->actors == 0 || r->actors >= (1u << BK_ROLE__COUNT) ||
		    r->cmd < BK_CMD_MILESTONE_ADD || r->cmd > BK_CMD_MILESTONE_REFUND) {
			snprintf(err, errsz, "milestone row %zu is malformed", i);
			return -1;
		}
	}
	for (size_t i = 0; i < bk_profile_table_len; i++) {
		const bk_profile_row *r = &bk_profile_table[i];
		if (r->index != i || r->cmd >= BK_CMD__COUNT || r->actors == 0 ||
		    r->actors >= (1u << BK_ROLE__COUNT) || r->from == 0 ||
		    r->from >= (1u << BK_PS__COUNT) ||
		    (r->to != BK_PS_SAME && r->to >= BK_PS__COUNT) || r->who >= BK_PW__COUNT ||
		    bk_cmd_is_internal((bk_cmd_type)r->cmd)) {
			snprintf(err, errsz, "profile row %zu is malformed", i);
			return -1;
		}
		/* a profile command is decided on the profile, never on an order */
		for (size_t k = 0; k < bk_status_table_len; k++)
			if (bk_status_table[k].cmd == r->cmd) {
				snprintf(err, errsz, "profile row %zu: %s also has a status row", i,
					 cmd_names[r->cmd]);
				return -1;
			}
	}
	return 0;
}
