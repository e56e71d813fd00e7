/*
 * bk_event.h - timeline events (SPEC §4) and the events record of one command.
 *
 * Event subtypes are an enum with names; card events are "card.<type>.<verb>" and status
 * events "order.<status>". Strings and payloads live in a msgpack_zone owned by whoever
 * decoded or decided them.
 */
#ifndef BK_EVENT_H
#define BK_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#include "bk_err.h"
#include "bk_chain.h"
#include "bk_fsm.h"
#include "bk_val.h"

/* The highest event schema version this code writes (the record header `schema`); each
 * event type has its own current version (bk_schema.h: bk_event_version). */
#define BK_EVENT_SCHEMA 2

/* kind column of ord.timeline_event */
typedef enum bk_ev_kind {
	BK_EK_SYSTEM,
	BK_EK_CARD,
	BK_EK_PAYMENT,
	BK_EK_CALENDAR,
	BK_EK_NOTE,
	BK_EK__COUNT
} bk_ev_kind;

#define BK_EV_MAP(X)                                                                               \
	X(ORDER_CREATED, "order.created", SYSTEM)                                                  \
	X(ORDER_STATUS, "order.", SYSTEM) /* "order.<status>" */                                   \
	X(REQUEST_SUBMITTED, "request.submitted", SYSTEM)                                          \
	X(REQUEST_ACCEPTED, "request.accepted", SYSTEM)                                            \
	X(REQUEST_DECLINED, "request.declined", SYSTEM)                                            \
	X(REQUEST_COUNTERED, "request.countered", SYSTEM)                                          \
	X(REQUEST_COUNTER_ACCEPTED, "request.counter_accepted", SYSTEM)                            \
	X(REQUEST_COUNTER_DECLINED, "request.counter_declined", SYSTEM)                            \
	X(REQUEST_EXPIRED, "request.expired", SYSTEM)                                              \
	X(INVITE_SENT, "invite.sent", SYSTEM)                                                      \
	X(INVITE_RESPONDED, "invite.responded", SYSTEM)                                            \
	X(INVITE_AWARDED, "invite.awarded", SYSTEM)                                                \
	X(PAYMENT_CAPTURED, "payment.captured", PAYMENT)                                           \
	X(PAYMENT_REFUNDED, "payment.refunded", PAYMENT)                                           \
	X(TIP_ADDED, "tip.added", PAYMENT)                                                         \
	X(DISPUTE_OPENED, "dispute.opened", SYSTEM)                                                \
	X(DISPUTE_UPDATED, "dispute.updated", SYSTEM)                                              \
	X(DISPUTE_RESOLVED, "dispute.resolved", SYSTEM)                                            \
	X(MILESTONE_ADDED, "milestone.added", SYSTEM)                                              \
	X(MILESTONE_CHANGED, "milestone.", SYSTEM) /* "milestone.<state>" */                       \
	X(NOTE_ADDED, "note.added", NOTE)                                                          \
	X(CALENDAR_RESCHEDULED, "calendar.rescheduled", CALENDAR)                                  \
	X(CARD, "card.", CARD) /* "card.<type>.<verb>" */                                          \
	X(ORDER_ARCHIVED, "order.archived",                                                        \
	  SYSTEM) /* the order leaves memory (core/bk_archive.h) */

typedef enum bk_ev_type {
#define BK_EV_ENUM(sym, name, kind) BK_EV_##sym,
	BK_EV_MAP(BK_EV_ENUM)
#undef BK_EV_ENUM
	    BK_EV__COUNT
} bk_ev_type;

/* Verbs of card events: card.<type>.<verb>. */
typedef enum bk_card_verb {
	BK_CV_PROPOSED,
	BK_CV_ACCEPTED,
	BK_CV_DECLINED,
	BK_CV_RESPONDED,
	BK_CV_SUPERSEDED,
	BK_CV_CANCELLED,
	BK_CV_EXPIRED,
	BK_CV_EXPIRING,
	BK_CV_CLOSED,
	BK_CV__COUNT
} bk_card_verb;

typedef struct bk_event {
	const char *event_id;
	const char *order_id;
	int64_t seq;
	uint8_t type; /* bk_ev_type */
	uint8_t
	    sub; /* ORDER_STATUS: bk_status; MILESTONE_CHANGED: bk_ms_state; CARD: bk_card_verb */
	uint8_t card_type;	   /* CARD: bk_card_type */
	const char *actor_user_id; /* NULL when the system acted */
	const char *command_id;
	int64_t created_at; /* microseconds; the command's `at` */
	uint32_t schema;
	bk_val payload; /* map */
	uint8_t prev_hash[BK_HASH_LEN];
	uint8_t hash[BK_HASH_LEN];
	/* The canonical bytes the hash was computed over, when the writer kept them (zone
	 * memory; NULL otherwise). The record encoder reuses them instead of packing the event
	 * again. Whoever changes a sealed event must reseal it (which clears these). */
	const uint8_t *canon;
	uint32_t canon_len;
} bk_event;

/* The events of one command, as one record on booking.events (key = order_id). */
typedef struct bk_record {
	const char *order_id;
	const char *command_id; /* the command that caused the record */
	bk_event *events;
	uint32_t n;
} bk_record;

bk_ev_kind bk_event_kind(const bk_event *e);
const char *bk_ev_kind_name(bk_ev_kind k);
/* "card.reschedule.proposed", "order.confirmed"... into buf (>= 48 bytes); returns buf. */
const char *bk_event_subtype(const bk_event *e, char *buf, size_t bufsz);
/* The same as a static string, no copy; NULL when the event's type fields are out of range. */
const char *bk_event_subtype_name(const bk_event *e);
/* Parse a subtype string into (type, sub, card_type). Returns -1 when unknown. */
int bk_event_subtype_parse(const char *s, size_t n, uint8_t *ret_type, uint8_t *ret_sub,
			   uint8_t *ret_card_type) BK_MUSTCHECK;
const char *bk_card_verb_name(bk_card_verb v);
/* The card state a card event puts its card in (one table, core/bk_event.c, that evolve
 * applies and the decider reads), or -1 when it leaves the state as it is (responded,
 * expiring). */
int bk_card_verb_state(bk_card_verb v);
/* The verb of a response that moves its card to state `to` (a bk_card_table row's `to`):
 * the verb whose state that is, or `responded` when the card stays as it was. */
bk_card_verb bk_card_response_verb(bk_card_state to);

#endif
