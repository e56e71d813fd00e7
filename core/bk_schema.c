/*
 * bk_schema.c - event schemas as data (bk_schema.h): the current version of every event
 * type, and the fields of every payload with where each goes in the read model.
 * Knowledge of what an event holds lives here once: the record decoder checks from these
 * rows, the projector copies fields into the columns they name (and defines the columns
 * only they name: projector/proj_rows.c), `bookingctl events` prints them
 * (docs/events.md). tests/test_upcast.c holds every key the decider writes in the
 * fixtures against these rows.
 */
#include "bk_schema.h"

static const struct {
	const char *name;
	uint32_t current;
} families[BK_SF__COUNT] = {
    [BK_SF_PLAIN] = {"plain", 1},
    [BK_SF_MONEY] = {"money", 2},
};

/* The money events: what the issue calls payment captured, refund, tip, and the extras
 * and expense (adjustment) line items, which join the order when their card is
 * accepted. Every other type is plain. */
static const uint8_t family_of_type[BK_EV__COUNT] = {
    [BK_EV_PAYMENT_CAPTURED] = BK_SF_MONEY,
    [BK_EV_PAYMENT_REFUNDED] = BK_SF_MONEY,
    [BK_EV_TIP_ADDED] = BK_SF_MONEY,
};
static const uint8_t family_of_card[BK_CT__COUNT][BK_CV__COUNT] = {
    [BK_CT_EXTRAS][BK_CV_ACCEPTED] = BK_SF_MONEY,
    [BK_CT_EXPENSE][BK_CV_ACCEPTED] = BK_SF_MONEY,
};
_Static_assert(BK_SF_PLAIN == 0, "a type without a row is plain");

/* --- the payload fields of every schema ----------------------------------------------- */

/* A row: F("key", BK_F_TYPE, required, destinations), a field since version 1 that the
 * decider computes; F_SINCE(..., since, destinations) one that version `since` added (an older
 * event is not checked for it: its upcaster adds it). destinations: TO(COPY(table, column),
 * CODE(table, column)...) (bk_pkind), or NO when the field is not projected. */
#define F(key, type, req, to) F_SINCE(key, type, req, 1, to)
#define F_SINCE(key, type, req, since, to)                                                         \
	{                                                                                          \
		key, (uint8_t)(sizeof(key) - 1), type, req, since, to, BK_S_DECIDER, 0             \
	}
/* A field the decider copies from the command's payload (text of 1 to max bytes; src
 * BK_S_CMD, or BK_S_CMD_REQUIRED when the command must give it): a new one is this row
 * (and, to project it, its destination and a migration), no code. */
#define F_CMD(key, type, req, src, max, to)                                                        \
	{                                                                                          \
		key, (uint8_t)(sizeof(key) - 1), type, req, 1, to, src, max                        \
	}
#define F_END                                                                                      \
	{                                                                                          \
		NULL, 0, BK_F_STR, false, 1, NULL, BK_S_DECIDER, 0                                 \
	}
#define TO(...) ((const bk_proj[]){__VA_ARGS__, {NULL, NULL, NULL, BK_P_COPY}})
#define COPY(t, c)                                                                                 \
	{                                                                                          \
		t, c, NULL, BK_P_COPY                                                              \
	}
#define COPY_AS(t, c, sqltype)                                                                     \
	{                                                                                          \
		t, c, sqltype, BK_P_COPY                                                           \
	}
#define CODE(t, c)                                                                                 \
	{                                                                                          \
		t, c, NULL, BK_P_CODE                                                              \
	}
#define NO     NULL
#define BO     "booking.order"
#define OO     "ord.order"
#define RQ     "booking.request"
#define RCP    "booking.invite_recipient"
#define DS     "booking.dispute"
#define MS     "booking.milestone"
#define CD     "ord.card"
#define CR     "ord.card_response"
#define LI     "booking.line_item"
#define MODE_T "booking.booking_mode"
/* a payload's totals: their fields are booking.order's money columns; the order's price
 * snapshot is then recomputed from them and its line items */
#define TOTALS F("totals", BK_F_TOTALS, true, TO(CODE(OO, "price_snapshot")))

static const bk_field f_none[] = {F_END};
static const bk_field f_created[] = {
    F("mode", BK_F_STR, true, TO(COPY_AS(BO, "mode", MODE_T))),
    F("buyer_user_id", BK_F_ID, true, TO(COPY(BO, "buyer_user_id"), COPY(OO, "buyer_user_id"))),
    F("provider_user_id", BK_F_ID, false,
      TO(COPY(BO, "provider_user_id"), COPY(OO, "provider_user_id"))),
    F("service_profile_id", BK_F_ID, false, TO(COPY(BO, "service_profile_id"))),
    F_CMD("package_id", BK_F_STR, false, BK_S_CMD, 200, TO(COPY(BO, "package_id"))),
    F_CMD("role_code", BK_F_STR, true, BK_S_CMD_REQUIRED, 64, TO(COPY(OO, "role_code"))),
    F_CMD("city", BK_F_STR, false, BK_S_CMD_REQUIRED, 200,
	  TO(COPY(BO, "city"), CODE(OO, "location_json"))),
    F_CMD("license_tier", BK_F_STR, false, BK_S_CMD, 64, TO(COPY(BO, "license_tier"))),
    F("start_ts", BK_F_TS, true, TO(COPY(BO, "start_ts"), COPY(OO, "start_utc"))),
    F("end_ts", BK_F_TS, true, TO(COPY(BO, "end_ts"), COPY(OO, "end_utc"))),
    F("timezone", BK_F_STR, true, TO(COPY(OO, "timezone"))),
    F("currency", BK_F_STR, true, TO(COPY(BO, "currency"))),
    F("location", BK_F_LOCATION, true, TO(CODE(OO, "location_json"))),
    F("travel_miles", BK_F_NUM, false, TO(COPY(BO, "travel_miles"))),
    F("line_items", BK_F_ITEMS, true, TO(CODE(LI, NULL))),
    F("platform_fee_cents", BK_F_CENTS, true, NO),
    F("tax_cents", BK_F_CENTS, true, NO),
    F("tip_cents", BK_F_CENTS, false, NO),
    TOTALS,
    F("policy", BK_F_MAP, true, TO(COPY(OO, "policy_snapshot"))),
    F_END};
/* order.<status>: the chat thread and the address come with confirmed */
static const bk_field f_status[] = {
    F("from", BK_F_STR, true, NO),
    F("to", BK_F_STR, false, NO),
    F("cause", BK_F_STR, false, NO),
    F("reason", BK_F_STR, false, NO),
    F("side", BK_F_STR, false, NO),
    F("totals", BK_F_TOTALS, false, NO),
    F("chat_thread_id", BK_F_STR, false, TO(COPY(BO, "chat_thread_id"))),
    F("location_address", BK_F_STR, false,
      TO(COPY(BO, "location_address"), CODE(OO, "location_json"))),
    F_END};
static const bk_field f_req_submitted[] = {
    F("request_id", BK_F_ID, true, TO(COPY(RQ, "request_id"))),
    F("mode", BK_F_STR, true, TO(COPY_AS(RQ, "mode", MODE_T))),
    F_CMD("message", BK_F_STR, false, BK_S_CMD, 4000, TO(COPY(RQ, "message"))),
    F("expires_at", BK_F_TS, false, TO(COPY(RQ, "expires_at"))), F_END};
/* request.declined, request.counter_declined: the party's reason, when given */
static const bk_field f_req_simple[] = {F("request_id", BK_F_ID, true, TO(COPY(RQ, "request_id"))),
					F_CMD("reason", BK_F_STR, false, BK_S_CMD, 4000, NO),
					F_END};
/* request.accepted: by a rule (by, rule_id) or by the provider */
static const bk_field f_req_accepted[] = {
    F("request_id", BK_F_ID, true, TO(COPY(RQ, "request_id"))), F("by", BK_F_STR, false, NO),
    F("rule_id", BK_F_STR, false, NO), F_CMD("reason", BK_F_STR, false, BK_S_CMD, 4000, NO), F_END};
static const bk_field f_req_expired[] = {F("request_id", BK_F_ID, true, TO(COPY(RQ, "request_id"))),
					 F("expires_at", BK_F_TS, false, NO), F_END};
/* the counter offer's line items are the order's only when it is accepted */
static const bk_field f_req_countered[] = {
    F("request_id", BK_F_ID, true, TO(COPY(RQ, "request_id"))),
    F("line_items", BK_F_ITEMS, true, NO),
    F("platform_fee_cents", BK_F_CENTS, true, NO),
    F("tax_cents", BK_F_CENTS, true, NO),
    F("totals", BK_F_TOTALS, false, NO),
    F_CMD("message", BK_F_STR, false, BK_S_CMD, 4000, NO),
    F("expires_at", BK_F_TS, false, TO(COPY(RQ, "expires_at"))),
    F_END};
static const bk_field f_req_counter_accepted[] = {
    F("request_id", BK_F_ID, true, TO(COPY(RQ, "request_id"))),
    F("line_items", BK_F_ITEMS, true, TO(CODE(LI, NULL))),
    F("platform_fee_cents", BK_F_CENTS, true, NO),
    F("tax_cents", BK_F_CENTS, true, NO),
    TOTALS,
    F_END};
static const bk_field f_invite_sent[] = {
    F("invite_id", BK_F_ID, true, TO(COPY(RQ, "request_id"))),
    F("recipients", BK_F_STRS, true, TO(CODE(RCP, NULL))),
    F_CMD("message", BK_F_STR, false, BK_S_CMD, 4000, TO(COPY(RQ, "message"))),
    F("expires_at", BK_F_TS, false, TO(COPY(RQ, "expires_at"))), F_END};
static const bk_field f_invite_responded[] = {
    F("invite_id", BK_F_ID, true, TO(COPY(RCP, "invite_id"))),
    F("recipient_user_id", BK_F_STR, true, TO(COPY(RCP, "recipient_user_id"))),
    F_CMD("message", BK_F_STR, false, BK_S_CMD, 4000, NO), F_END};
static const bk_field f_invite_awarded[] = {
    F("invite_id", BK_F_ID, true, TO(COPY(RQ, "request_id"), COPY(RCP, "invite_id"))),
    F("recipient_user_id", BK_F_STR, true,
      TO(COPY(RCP, "recipient_user_id"), COPY(BO, "provider_user_id"), COPY(OO, "provider_user_id"),
	 COPY(RQ, "provider_user_id"))),
    F("service_profile_id", BK_F_ID, true, TO(COPY(BO, "service_profile_id"))),
    F("not_awarded", BK_F_STRS, true, TO(CODE(RCP, NULL))), F_END};
/* the money events: schema 2 adds the order's currency (checked against
 * booking.order.currency, not projected apart) */
static const bk_field f_captured[] = {
    F("payment_intent_id", BK_F_STR, true, TO(COPY(BO, "stripe_payment_intent_id"))),
    F_CMD("transfer_group", BK_F_STR, false, BK_S_CMD, 200, TO(COPY(BO, "connect_transfer_group"))),
    F("amount_cents", BK_F_CENTS, true, TO(COPY(BO, "captured_cents"))),
    F("paid_cents", BK_F_CENTS, false, NO),
    F_SINCE("currency", BK_F_STR, true, 2, NO),
    F_END};
static const bk_field f_refunded[] = {F("refund_cents", BK_F_CENTS, true, NO),
				      F("refunded_cents", BK_F_CENTS, false, NO),
				      F("line_item", BK_F_ITEM, true, TO(CODE(LI, NULL))),
				      TOTALS,
				      F_SINCE("currency", BK_F_STR, true, 2, NO),
				      F_END};
static const bk_field f_tip[] = {F("tip_cents", BK_F_CENTS, true, NO),
				 F("amount_cents", BK_F_CENTS, false, NO), TOTALS,
				 F_SINCE("currency", BK_F_STR, true, 2, NO), F_END};
static const bk_field f_dispute_opened[] = {
    F("dispute_id", BK_F_ID, true, TO(COPY(DS, "dispute_id"))),
    F("opened_by", BK_F_STR, true, TO(COPY(DS, "opened_by"))),
    F_CMD("reason", BK_F_ANY, true, BK_S_CMD_REQUIRED, 4000, TO(COPY(DS, "reason"))),
    F_CMD("description", BK_F_STR, false, BK_S_CMD, 20000, TO(COPY(DS, "description"))),
    F("card_id", BK_F_STR, false, NO),
    F("from_status", BK_F_STR, false, NO),
    F_END};
static const bk_field f_dispute_updated[] = {
    F("dispute_id", BK_F_ID, true, TO(COPY(DS, "dispute_id"))),
    F("status", BK_F_STR, true, TO(COPY(DS, "status"))),
    F_CMD("note", BK_F_STR, false, BK_S_CMD, 4000, NO), F_END};
static const bk_field f_dispute_resolved[] = {
    F("dispute_id", BK_F_ID, true, TO(COPY(DS, "dispute_id"))),
    F("outcome", BK_F_STR, true, TO(COPY(DS, "status"))), F("refund_cents", BK_F_CENTS, false, NO),
    F_CMD("note", BK_F_STR, false, BK_S_CMD, 4000, NO), F_END};
static const bk_field f_ms_added[] = {
    F("milestone_id", BK_F_ID, true, TO(COPY(MS, "milestone_id"))),
    F_CMD("title", BK_F_STR, true, BK_S_CMD_REQUIRED, 500, TO(COPY(MS, "title"))),
    F("due_ts", BK_F_TS, false, TO(COPY(MS, "due_ts"))),
    F("amount_cents", BK_F_CENTS, true, TO(COPY(MS, "amount_cents"))), F_END};
static const bk_field f_ms_changed[] = {
    F("milestone_id", BK_F_ID, true, TO(COPY(MS, "milestone_id"))),
    F_CMD("note", BK_F_STR, false, BK_S_CMD, 4000, NO), F_END};
static const bk_field f_rescheduled[] = {
    F("start_ts", BK_F_TS, true, TO(COPY(BO, "start_ts"), COPY(OO, "start_utc"))),
    F("end_ts", BK_F_TS, true, TO(COPY(BO, "end_ts"), COPY(OO, "end_utc"))),
    F("card_id", BK_F_STR, false, NO), F_END};
/* note.added: its text; other keys are free */
static const bk_field f_note[] = {F_CMD("text", BK_F_STR, false, BK_S_CMD_REQUIRED, 20000, NO),
				  F_CMD("visibility", BK_F_STR, false, BK_S_CMD, 32, NO), F_END};
/* order.archived: the created_at of the order's event before it (the window's start); the
 * event's own created_at is booking.order.archived_at */
static const bk_field f_archived[] = {F("last_event_at", BK_F_TS, true, NO), F_END};
static const bk_field f_card_proposed[] = {
    F("card_id", BK_F_ID, true, TO(COPY(CD, "card_id"))),
    F("created_by", BK_F_ID, true, TO(COPY(CD, "created_by"))),
    F("type", BK_F_STR, false, NO),
    F("counter_of", BK_F_STR, false, NO),
    F("creator_role", BK_F_STR, true, NO),
    F("due_at", BK_F_TS, false, TO(COPY(CD, "due_at"))),
    F("expires_at", BK_F_TS, false, TO(COPY(CD, "expires_at"))),
    F("payload", BK_F_MAP, true, TO(COPY(CD, "payload"))),
    F_END};
static const bk_field f_card_other[] = {
    F("card_id", BK_F_ID, true, TO(COPY(CD, "card_id"))),
    F("response_id", BK_F_STR, false, TO(COPY(CR, "response_id"))),
    F("superseded_by", BK_F_STR, false, TO(COPY(CD, "superseded_by"))),
    F("expires_at", BK_F_TS, false, NO),
    F("payload", BK_F_MAP, false, TO(CODE(CR, "payload"))),
    F("line_items", BK_F_ITEMS, false, TO(CODE(LI, NULL))),
    F("totals", BK_F_TOTALS, false, TO(CODE(OO, "price_snapshot"))),
    F_END};
static const bk_field f_card_response[] = {
    F("action", BK_F_STR, true, TO(COPY(CR, "action"))),
    F("responder_user_id", BK_F_STR, true, TO(COPY(CR, "responder_user_id"))), F_END};
static const bk_field f_card_money[] = {F_SINCE("currency", BK_F_STR, true, 2, NO), F_END};
static const bk_field f_terms_reschedule[] = {F("start_ts", BK_F_TS, true, NO),
					      F("end_ts", BK_F_TS, true, NO), F_END};
static const bk_field f_terms_expense[] = {F("amount_cents", BK_F_CENTS, true, NO),
					   F("title", BK_F_STR, true, NO), F_END};
static const bk_field f_terms_extras[] = {F("line_items", BK_F_ITEMS, true, NO), F_END};
static const bk_field f_item[] = {F("id", BK_F_ID, true, TO(COPY(LI, "id"))),
				  F("kind", BK_F_STR, true, TO(COPY(LI, "kind"))),
				  F("title", BK_F_STR, true, TO(COPY(LI, "title"))),
				  F("qty", BK_F_CENTS, true, TO(COPY_AS(LI, "qty", "numeric"))),
				  F("unit_cents", BK_F_CENTS, true, TO(COPY(LI, "unit_cents"))),
				  F("total_cents", BK_F_CENTS, true, TO(COPY(LI, "total_cents"))),
				  F_END};
static const bk_field f_totals[] = {
    F("subtotal_cents", BK_F_CENTS, true, TO(COPY(BO, "subtotal_cents"))),
    F("platform_fee_cents", BK_F_CENTS, true, TO(COPY(BO, "platform_fee_cents"))),
    F("tax_cents", BK_F_CENTS, true, TO(COPY(BO, "tax_cents"))),
    F("tip_cents", BK_F_CENTS, true, TO(COPY(BO, "tip_cents"))),
    F("total_cents", BK_F_CENTS, true, TO(COPY(BO, "total_cents"))),
    F_END};
/* the address is revealed on confirmation (order.<status>'s location_address) */
static const bk_field f_location[] = {
    F("kind", BK_F_STR, true, TO(COPY(BO, "location_kind"), CODE(OO, "location_json"))),
    F("address", BK_F_STR, false, NO), F("lat", BK_F_NUM, false, TO(CODE(OO, "location_json"))),
    F("lng", BK_F_NUM, false, TO(CODE(OO, "location_json"))), F_END};

const bk_schema_def bk_schemas[BK_SC__COUNT] = {
    [BK_SC_ORDER_CREATED] = {"order.created", NULL, f_created},
    [BK_SC_ORDER_STATUS] = {"order.<status>", NULL, f_status},
    [BK_SC_REQUEST_SUBMITTED] = {"request.submitted", NULL, f_req_submitted},
    [BK_SC_REQUEST_ACCEPTED] = {"request.accepted", NULL, f_req_accepted},
    [BK_SC_REQUEST_DECLINED] = {"request.declined", NULL, f_req_simple},
    [BK_SC_REQUEST_COUNTERED] = {"request.countered", NULL, f_req_countered},
    [BK_SC_REQUEST_COUNTER_ACCEPTED] = {"request.counter_accepted", NULL, f_req_counter_accepted},
    [BK_SC_REQUEST_COUNTER_DECLINED] = {"request.counter_declined", NULL, f_req_simple},
    [BK_SC_REQUEST_EXPIRED] = {"request.expired", NULL, f_req_expired},
    [BK_SC_INVITE_SENT] = {"invite.sent", NULL, f_invite_sent},
    [BK_SC_INVITE_RESPONDED] = {"invite.responded", NULL, f_invite_responded},
    [BK_SC_INVITE_AWARDED] = {"invite.awarded", NULL, f_invite_awarded},
    [BK_SC_PAYMENT_CAPTURED] = {"payment.captured", NULL, f_captured},
    [BK_SC_PAYMENT_REFUNDED] = {"payment.refunded", NULL, f_refunded},
    [BK_SC_TIP_ADDED] = {"tip.added", NULL, f_tip},
    [BK_SC_DISPUTE_OPENED] = {"dispute.opened", NULL, f_dispute_opened},
    [BK_SC_DISPUTE_UPDATED] = {"dispute.updated", NULL, f_dispute_updated},
    [BK_SC_DISPUTE_RESOLVED] = {"dispute.resolved", NULL, f_dispute_resolved},
    [BK_SC_MILESTONE_ADDED] = {"milestone.added", NULL, f_ms_added},
    [BK_SC_MILESTONE_CHANGED] = {"milestone.<state>", NULL, f_ms_changed},
    [BK_SC_NOTE_ADDED] = {"note.added", "Other keys are free", f_note},
    [BK_SC_CALENDAR_RESCHEDULED] = {"calendar.rescheduled", NULL, f_rescheduled},
    [BK_SC_CARD] = {"card.<type>.<verb>",
		    "Every verb but proposed; superseded needs superseded_by; line_items need "
		    "totals",
		    f_card_other},
    [BK_SC_ORDER_ARCHIVED] = {"order.archived",
			      "Appended by the sweep when a settled order's archive window has "
			      "passed (docs/design.md, archiving); the order then leaves memory",
			      f_archived},
    [BK_SC_CARD_PROPOSED] = {"card.<type>.proposed",
			     "Its terms (payload.payload) by card type below", f_card_proposed},
    [BK_SC_CARD_RESPONSE] = {"card response", "A card event with response_id also holds these",
			     f_card_response},
    [BK_SC_CARD_MONEY] = {"card.extras.accepted, card.expense.accepted",
			  "Money events: their line_items join the order; they also hold",
			  f_card_money},
    [BK_SC_TERMS_RESCHEDULE] = {"reschedule terms",
				"The terms (payload.payload) of card.reschedule.proposed",
				f_terms_reschedule},
    [BK_SC_TERMS_EXPENSE] = {"expense terms",
			     "The terms (payload.payload) of card.expense.proposed",
			     f_terms_expense},
    [BK_SC_TERMS_EXTRAS] = {"extras terms", "The terms (payload.payload) of card.extras.proposed",
			    f_terms_extras},
    [BK_SC_TERMS_OTHER] = {"other terms",
			   "The terms (payload.payload) of the other card types' proposals: free",
			   f_none},
    [BK_SC_ITEM] = {"line item", "An element of line_items, or line_item", f_item},
    [BK_SC_TOTALS] = {"totals", NULL, f_totals},
    [BK_SC_LOCATION] = {"location", NULL, f_location},
};
_Static_assert(BK_EV__COUNT == 24 && BK_SC__COUNT == BK_EV__COUNT + 10,
	       "bk_schemas has a row for every event type and part");
_Static_assert((int)BK_SC_CARD == (int)BK_EV_CARD, "event types index their schemas");

const char *bk_ftype_name(bk_ftype t)
{
	static const char *const names[BK_F__COUNT] = {
	    [BK_F_STR] = "text",
	    [BK_F_ID] = "id",
	    [BK_F_CENTS] = "cents (integer, -2^31..2^31-1)",
	    [BK_F_NUM] = "number",
	    [BK_F_TS] = "time (RFC 3339)",
	    [BK_F_MAP] = "map",
	    [BK_F_ANY] = "any (not nil)",
	    [BK_F_STRS] = "array of text",
	    [BK_F_ITEMS] = "array of line items",
	    [BK_F_ITEM] = "line item",
	    [BK_F_TOTALS] = "totals",
	    [BK_F_LOCATION] = "location",
	};
	return t < BK_F__COUNT ? names[t] : "?";
}

const char *bk_ftype_sql(bk_ftype t)
{
	switch (t) {
	case BK_F_STR:
	case BK_F_ID:
	case BK_F_ANY: /* text as it is, any other value as its JSON text */
		return "text";
	case BK_F_CENTS:
		return "int";
	case BK_F_NUM:
		return "numeric";
	case BK_F_TS:
		return "timestamptz";
	case BK_F_MAP:
		return "jsonb";
	case BK_F_STRS:
	case BK_F_ITEMS:
	case BK_F_ITEM:
	case BK_F_TOTALS:
	case BK_F_LOCATION:
	case BK_F__COUNT:
		break;
	}
	return NULL;
}

bk_schema_family bk_event_family(const bk_event *e)
{
	if (e->type >= BK_EV__COUNT)
		return BK_SF_PLAIN;
	if (e->type != BK_EV_CARD)
		return (bk_schema_family)family_of_type[e->type];
	if (e->card_type >= BK_CT__COUNT || e->sub >= BK_CV__COUNT)
		return BK_SF_PLAIN;
	return (bk_schema_family)family_of_card[e->card_type][e->sub];
}

uint32_t bk_event_version(const bk_event *e)
{
	return families[bk_event_family(e)].current;
}

bool bk_event_is_money(const bk_event *e)
{
	return bk_event_family(e) == BK_SF_MONEY;
}

uint32_t bk_schema_family_version(bk_schema_family f)
{
	return f < BK_SF__COUNT ? families[f].current : 0;
}

const char *bk_schema_family_name(bk_schema_family f)
{
	return f < BK_SF__COUNT ? families[f].name : "?";
}

void bk_payload_schemas_of(const bk_event *e, bk_payload_schemas *ret)
{
	bk_payload_schemas ps = {.n = 0, .terms = BK_SC__COUNT};
	if (e->type >= BK_EV__COUNT || e->schema > bk_event_version(e)) {
		*ret = ps; /* nothing here describes it */
		return;
	}
	if (e->type != BK_EV_CARD) {
		ps.top[ps.n++] = (uint8_t)e->type; /* event types index their schemas */
	} else if (e->sub == BK_CV_PROPOSED) {
		ps.top[ps.n++] = BK_SC_CARD_PROPOSED;
		ps.terms = e->card_type == BK_CT_RESCHEDULE ? BK_SC_TERMS_RESCHEDULE
			   : e->card_type == BK_CT_EXPENSE  ? BK_SC_TERMS_EXPENSE
			   : e->card_type == BK_CT_EXTRAS   ? BK_SC_TERMS_EXTRAS
							    : BK_SC_TERMS_OTHER;
	} else {
		ps.top[ps.n++] = BK_SC_CARD;
		if (bk_map_get(&e->payload, "response_id") != NULL)
			ps.top[ps.n++] = BK_SC_CARD_RESPONSE;
		if (bk_event_is_money(e))
			ps.top[ps.n++] = BK_SC_CARD_MONEY;
	}
	*ret = ps;
}
