/*
 * bk_fsm.h - the state machines of a booking, as data.
 *
 * booking_status moves, card_state moves, card responses by type, milestone moves and
 * the derived ord.order_state are static const tables. Nothing else in the code decides
 * whether a move is allowed: the decider looks rows up here, tests iterate the tables,
 * `bookingctl fsm` renders them. Any (state, command) pair not in a table is rejected.
 */
#ifndef BK_FSM_H
#define BK_FSM_H

#include "bk_err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* booking.order.status (booking_status enum of 013_booking_core.sql). */
typedef enum bk_status {
	BK_ST_INITIATED,
	BK_ST_PENDING_ACCEPT,
	BK_ST_COUNTERED,
	BK_ST_ACCEPTED,
	BK_ST_DECLINED,
	BK_ST_CONFIRMED,
	BK_ST_IN_PROGRESS,
	BK_ST_DELIVERED,
	BK_ST_COMPLETED,
	BK_ST_CANCELLED_BUYER,
	BK_ST_CANCELLED_PROVIDER,
	BK_ST_DISPUTED,
	BK_ST_RESOLVED,
	BK_ST__COUNT,
	BK_ST_SAME = 0x7f, /* in a table row: the status does not change */
	BK_ST_NONE = 0x7e, /* in a table row: the order does not exist yet */
} bk_status;
#define BK_STM(s) (1u << (s))

/* ord.order.state (ord.order_state enum of 022_orders_cards.sql), derived. */
typedef enum bk_ostate {
	BK_OS_CREATED,
	BK_OS_AUTHORIZED,
	BK_OS_CONFIRMED,
	BK_OS_IN_PROGRESS,
	BK_OS_COMPLETED,
	BK_OS_CANCELLED,
	BK_OS_DISPUTED,
	BK_OS_CLOSED,
	BK_OS__COUNT
} bk_ostate;

typedef enum bk_mode { BK_MODE_IB, BK_MODE_RTB, BK_MODE_INVITE, BK_MODE__COUNT } bk_mode;

/* Who asserts a command (actor.role). */
typedef enum bk_role {
	BK_ROLE_BUYER,
	BK_ROLE_PROVIDER,
	BK_ROLE_SUPPORT,
	BK_ROLE_SYSTEM,
	BK_ROLE__COUNT
} bk_role;
#define BK_RM(r) (1u << (r))

/* Commands of SPEC §3. The last three are internal: issued by the processor itself. */
#define BK_CMD_MAP(X)                                                                              \
	X(ORDER_CREATE, "order.create")                                                            \
	X(REQUEST_SUBMIT, "request.submit")                                                        \
	X(INVITE_SEND, "invite.send")                                                              \
	X(INVITE_RESPOND, "invite.respond")                                                        \
	X(INVITE_AWARD, "invite.award")                                                            \
	X(REQUEST_ACCEPT, "request.accept")                                                        \
	X(REQUEST_DECLINE, "request.decline")                                                      \
	X(REQUEST_COUNTER, "request.counter")                                                      \
	X(REQUEST_ACCEPT_COUNTER, "request.accept_counter")                                        \
	X(REQUEST_DECLINE_COUNTER, "request.decline_counter")                                      \
	X(PAYMENT_CAPTURED, "payment.captured")                                                    \
	X(ORDER_START, "order.start")                                                              \
	X(ORDER_DELIVER, "order.deliver")                                                          \
	X(ORDER_COMPLETE, "order.complete")                                                        \
	X(ORDER_CANCEL, "order.cancel")                                                            \
	X(DISPUTE_OPEN, "dispute.open")                                                            \
	X(DISPUTE_UPDATE, "dispute.update")                                                        \
	X(DISPUTE_RESOLVE, "dispute.resolve")                                                      \
	X(MILESTONE_ADD, "milestone.add")                                                          \
	X(MILESTONE_DELIVER, "milestone.deliver")                                                  \
	X(MILESTONE_APPROVE, "milestone.approve")                                                  \
	X(MILESTONE_DISPUTE, "milestone.dispute")                                                  \
	X(MILESTONE_REFUND, "milestone.refund")                                                    \
	X(TIP_ADD, "tip.add")                                                                      \
	X(NOTE_ADD, "note.add")                                                                    \
	X(CARD_OPEN, "card.open")                                                                  \
	X(CARD_RESPOND, "card.respond")                                                            \
	X(CARD_CANCEL, "card.cancel")                                                              \
	X(AUTOACCEPT_SET, "autoaccept.set")                                                        \
	X(AUTOACCEPT_DELETE, "autoaccept.delete")                                                  \
	X(PROFILE_BIND, "profile.bind")                                                            \
	X(ORDER_SWEEP, "order.sweep")                                                              \
	X(REQUEST_EXPIRE, "request.expire")                                                        \
	X(CARD_EXPIRE, "card.expire")

typedef enum bk_cmd_type {
#define BK_CMD_ENUM(sym, name) BK_CMD_##sym,
	BK_CMD_MAP(BK_CMD_ENUM)
#undef BK_CMD_ENUM
	    BK_CMD__COUNT
} bk_cmd_type;

/* Guards: conditions a row needs besides (status, command, actor). */
typedef enum bk_guard {
	BK_G_NONE,
	BK_G_MODE_RTB_NO_RULE, /* RTB, no auto-accept rule matches */
	BK_G_MODE_RTB_RULE,    /* RTB, an auto-accept rule matches */
	BK_G_MODE_IB_RULE,     /* IB, a rule with allow_ib matches (else ib_not_allowed) */
	BK_G_MODE_INVITE,      /* the order is an INVITE order */
	BK_G_AMOUNT_IS_TOTAL,  /* payment amount equals the order total (else amount_mismatch) */
	BK_G_SIDE_BUYER,       /* support cancels on the buyer's side (payload.side) */
	BK_G_SIDE_PROVIDER,    /* support cancels on the provider's side */
	BK_G_MODE_RTB,	       /* the order is an RTB order (INVITE orders are awarded instead) */
	BK_G_CARD_DISPUTE,     /* the card opened is a dispute card: the order becomes disputed */
	BK_G_CARD_OTHER,       /* the card opened is not a dispute card */
	BK_G_CARD_COMPLETES,   /* the response accepts a complete card: the order completes */
	BK_G_CARD_KEEPS,       /* the response leaves the order's status alone */
	BK_G__COUNT
} bk_guard;

/* One allowed booking_status move. */
typedef struct bk_status_row {
	uint16_t index; /* own position: a test asserts table order */
	uint8_t cmd;	/* bk_cmd_type */
	uint8_t actors; /* BK_RM() mask */
	uint32_t from;	/* BK_STM() mask; 0 with to != SAME means "no order yet" */
	uint8_t to;	/* bk_status, BK_ST_SAME */
	uint8_t guard;	/* bk_guard */
} bk_status_row;

extern const bk_status_row bk_status_table[];
extern const size_t bk_status_table_len;

/* ord.card.type and ord.card.state. */
typedef enum bk_card_type {
	BK_CT_RESCHEDULE,
	BK_CT_EXTRAS,
	BK_CT_PROOFS,
	BK_CT_EXPENSE,
	BK_CT_COMPLETE,
	BK_CT_DISPUTE,
	BK_CT__COUNT
} bk_card_type;
#define BK_CTM(t) (1u << (t))

typedef enum bk_card_state {
	BK_CS_OPEN,
	BK_CS_ACCEPTED,
	BK_CS_DECLINED,
	BK_CS_EXPIRED,
	BK_CS_CANCELLED,
	BK_CS_SUPERSEDED,
	BK_CS_CLOSED,
	BK_CS__COUNT,
	BK_CS_NONE = 0x7e, /* in a table row: the card does not exist yet */
} bk_card_state;
#define BK_CSM(s) (1u << (s))

/* What happens to a card: a response action or a lifecycle event. */
typedef enum bk_card_op {
	BK_CO_OPEN,
	BK_CO_ACCEPT,
	BK_CO_APPROVE,
	BK_CO_DECLINE,
	BK_CO_COUNTER,
	BK_CO_REQUEST_CHANGES,
	BK_CO_UPLOAD,
	BK_CO_CANCEL,
	BK_CO_EXPIRE,
	BK_CO_SUPERSEDE,
	BK_CO_CLOSE,
	BK_CO__COUNT
} bk_card_op;

/* Who may perform a card op, relative to the card's creator. */
typedef enum bk_card_who {
	BK_CW_PARTY,	    /* buyer or provider of the order */
	BK_CW_COUNTERPARTY, /* the party that did not create the card */
	BK_CW_CREATOR,	    /* the party that created the card */
	BK_CW_EITHER,	    /* creator or counterparty */
	BK_CW_SYSTEM,	    /* the processor itself */
	BK_CW__COUNT
} bk_card_who;

/* One allowed card_state move. */
typedef struct bk_card_row {
	uint16_t index;
	uint8_t op;	 /* bk_card_op */
	uint8_t types;	 /* BK_CTM() mask of card types it applies to */
	uint8_t from;	 /* BK_CSM() mask; 0 = the card does not exist yet */
	uint8_t to;	 /* bk_card_state */
	uint8_t who;	 /* bk_card_who */
	uint8_t openers; /* for BK_CO_OPEN: BK_RM() mask of who may open this type */
} bk_card_row;

extern const bk_card_row bk_card_table[];
extern const size_t bk_card_table_len;

/*
 * Service profiles (the key of booking.rules): who owns a profile comes from an authority,
 * the profiles service, through `profile.bind` (role system); autoaccept.* come from the
 * provider it is bound to. A profile is unbound until its first bind; `legacy` is a rules
 * record written before profile.bind existed, whose owner is its first rule's provider
 * (docs/design.md, "Auto-accept rules": kept as bound until a profile.bind).
 */
typedef enum bk_profile_state {
	BK_PS_UNBOUND,
	BK_PS_LEGACY,
	BK_PS_BOUND,
	BK_PS__COUNT,
	BK_PS_SAME = 0x7f, /* in a table row: the state does not change */
} bk_profile_state;
#define BK_PSM(s) (1u << (s))

/* Who, besides the row's roles, may issue a profile command. */
typedef enum bk_profile_who {
	BK_PW_AUTHORITY, /* whoever the keyring lets assert the role for the type (profile.) */
	BK_PW_OWNER,	 /* the provider the profile is bound to (legacy: its first-rule owner) */
	BK_PW__COUNT
} bk_profile_who;

/* One allowed command on a service profile. */
typedef struct bk_profile_row {
	uint16_t index;
	uint8_t cmd;	/* bk_cmd_type */
	uint8_t actors; /* BK_RM() mask */
	uint8_t from;	/* BK_PSM() mask */
	uint8_t to;	/* bk_profile_state, BK_PS_SAME */
	uint8_t who;	/* bk_profile_who */
} bk_profile_row;

extern const bk_profile_row bk_profile_table[];
extern const size_t bk_profile_table_len;

/* Statuses in which cards may be opened and responded to. */
#define BK_CARD_STATUSES                                                                           \
	(BK_STM(BK_ST_CONFIRMED) | BK_STM(BK_ST_IN_PROGRESS) | BK_STM(BK_ST_DELIVERED))

/* booking.milestone.status moves. */
typedef enum bk_ms_state {
	BK_MS_OPEN,
	BK_MS_DELIVERED,
	BK_MS_APPROVED,
	BK_MS_DISPUTED,
	BK_MS_REFUNDED,
	BK_MS__COUNT,
} bk_ms_state;
#define BK_MSM(s) (1u << (s))

typedef struct bk_ms_row {
	uint16_t index;
	uint8_t cmd;	/* BK_CMD_MILESTONE_* */
	uint8_t actors; /* BK_RM() mask */
	uint8_t from;	/* BK_MSM() mask; 0 = new milestone */
	uint8_t to;	/* bk_ms_state */
} bk_ms_row;

extern const bk_ms_row bk_ms_table[];
extern const size_t bk_ms_table_len;

/*
 * The lifecycles of an order's parts that the status table does not hold: a request's
 * status (booking.request), an invite recipient's (booking.invite_recipient) and a
 * dispute's (booking.dispute). One row per move: the command that makes it, the states it
 * leaves (mask; 0: the part is created) and the state it enters. Who may issue the
 * command and in which order status is the status table's; these say what the part itself
 * allows. The decider asks them (bk_life_allows, bk_life_open) instead of comparing
 * statuses; `bookingctl fsm` and docs/fsm.md show them.
 */
typedef struct bk_life_row {
	uint16_t index;
	uint8_t cmd;   /* bk_cmd_type */
	uint16_t from; /* mask of states (1 << state); 0 = new */
	uint8_t to;
} bk_life_row;

typedef enum bk_life {
	BK_LIFE_REQUEST,   /* bk_req_status (core/bk_model.h) */
	BK_LIFE_RECIPIENT, /* bk_rcp_status */
	BK_LIFE_DISPUTE,   /* bk_dsp_status */
	BK_LIFE__COUNT
} bk_life;

typedef struct bk_life_table {
	const char *name;  /* "request" */
	const char *title; /* "booking.request.status" */
	const bk_life_row *rows;
	size_t n;
	int nstates;
	const char *(*state_name)(int s);
	unsigned entered; /* states no row enters: set from outside the tables (none yet) */
} bk_life_table;

extern const bk_life_table bk_life_tables[BK_LIFE__COUNT];

/* Does a row of lifecycle l let cmd move a part from state `from` (-1: a new part) to
 * state `to` (-1: to any state)? */
bool bk_life_allows(bk_life l, bk_cmd_type cmd, int from, int to);
/* Is state s open: does some row leave it? */
bool bk_life_open(bk_life l, int s);

/* Name tables. Each returns a static string, "?" when out of range. */
const char *bk_status_name(bk_status s);
const char *bk_ostate_name(bk_ostate s);
const char *bk_mode_name(bk_mode m);
const char *bk_role_name(bk_role r);
const char *bk_cmd_name(bk_cmd_type c);
const char *bk_guard_name(bk_guard g);
const char *bk_card_type_name(bk_card_type t);
const char *bk_card_state_name(bk_card_state s);
const char *bk_card_op_name(bk_card_op o);
const char *bk_card_who_name(bk_card_who w);
const char *bk_ms_state_name(bk_ms_state s);
const char *bk_profile_state_name(bk_profile_state s);
const char *bk_profile_who_name(bk_profile_who w);

/* Reverse lookups over a (pointer, length) string; return -1 when unknown. */
int bk_status_from(const char *s, size_t n) BK_MUSTCHECK;
int bk_mode_from(const char *s, size_t n) BK_MUSTCHECK;
int bk_role_from(const char *s, size_t n) BK_MUSTCHECK;
int bk_cmd_from(const char *s, size_t n) BK_MUSTCHECK;
int bk_card_type_from(const char *s, size_t n) BK_MUSTCHECK;
int bk_card_op_from(const char *s, size_t n) BK_MUSTCHECK;
int bk_card_state_from(const char *s, size_t n) BK_MUSTCHECK;
int bk_ms_state_from(const char *s, size_t n) BK_MUSTCHECK;

/* True when a command is issued by the processor, never accepted from the wire. */
bool bk_cmd_is_internal(bk_cmd_type c);
/* True when a command is keyed by service profile and changes booking.rules (a row of
 * bk_profile_table names it): profile.bind, autoaccept.set, autoaccept.delete. */
bool bk_cmd_is_profile(bk_cmd_type c);

/* The derived ord.order_state of a booking status. */
bk_ostate bk_ostate_of(bk_status s);

/* Terminal statuses: declined, cancelled_*, resolved, completed (which still takes
 * dispute.open and tip.add, as the table says). */
bool bk_status_is_terminal(bk_status s);
/* Final card states (expired, cancelled, superseded, closed) and milestone states
 * (approved, refunded): no row may leave them; lint checks every other state has a way out. */
bool bk_card_state_is_terminal(bk_card_state s);
bool bk_ms_state_is_terminal(bk_ms_state s);

/*
 * Collects into ret_rows (up to max) the status rows of command `cmd` whose from-mask
 * holds `from` (BK_ST_NONE for an order that does not exist yet), in table order.
 * Returns how many there are.
 */
size_t bk_status_rows(int from, bk_cmd_type cmd, const bk_status_row **ret_rows, size_t max);

/* Card rows for (op, type, from-state); from = BK_CS_NONE for a new card. NULL if none. */
const bk_card_row *bk_card_row_find(bk_card_op op, bk_card_type type, int from);

/* Milestone row for (cmd, from-state); from = -1 for a new milestone. NULL if none. */
const bk_ms_row *bk_ms_row_find(bk_cmd_type cmd, int from);

/* Profile row for (cmd, from-state). NULL if none. */
const bk_profile_row *bk_profile_row_find(bk_cmd_type cmd, bk_profile_state from);

/* Self-check of every table (indexes, masks in range, names present). Returns 0 when
 * sound, else -1 with a description in err. */
int bk_fsm_selfcheck(char *err, size_t errsz) BK_MUSTCHECK;

#endif
