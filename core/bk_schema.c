/*
 * bk_schema.c - event schemas as data (bk_schema.h): the current version of every event
 * type, and the fields of every payload. Knowledge of what an event holds lives here
 * once: the record decoder checks from these rows, `bookingctl events` prints them
 * (docs/events.md).
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

/* A row: F("key", BK_F_TYPE, required, column), a field since version 1; F_SINCE(...,
 * since, column) one that version `since` added (an older event is not checked for it:
 * its upcaster adds it). column: the read-model column(s) it is projected to, or NULL. */
#define F(key, type, req, col) F_SINCE(key, type, req, 1, col)
#define F_SINCE(key, type, req, since, col)                                                        \
	{                                                                                          \
		key, (uint8_t)(sizeof(key) - 1), type, req, since, col                             \
	}
#define F_END                                                                                      \
	{                                                                                          \
		NULL, 0, BK_F_STR, false, 1, NULL                                                  \
	}
#define BO  "booking.order."
#define OO  "ord.order."
#define RQ  "booking.request."
#define RCP "booking.invite_recipient."
#define DS  "booking.dispute."
#define MS  "booking.milestone."
#define CD  "ord.card."
#define CR  "ord.card_response."
#define LI  "booking.line_item"

static const bk_field f_none[] = {F_END};
static const bk_field f_created[] = {
    F("mode", BK_F_STR, true, BO "mode"),
    F("buyer_user_id", BK_F_ID, true, BO "buyer_user_id, " OO "buyer_user_id"),
    F("provider_user_id", BK_F_ID, false, BO "provider_user_id, " OO "provider_user_id"),
    F("service_profile_id", BK_F_ID, false, BO "service_profile_id"),
    F("package_id", BK_F_STR, false, BO "package_id"),
    F("role_code", BK_F_STR, true, OO "role_code"),
    F("city", BK_F_STR, false, BO "city"),
    F("license_tier", BK_F_STR, false, BO "license_tier"),
    F("start_ts", BK_F_TS, true, BO "start_ts, " OO "start_utc"),
    F("end_ts", BK_F_TS, true, BO "end_ts, " OO "end_utc"),
    F("timezone", BK_F_STR, true, OO "timezone"),
    F("currency", BK_F_STR, true, BO "currency"),
    F("location", BK_F_LOCATION, true, BO "location_kind, " OO "location_json"),
    F("travel_miles", BK_F_NUM, false, BO "travel_miles"),
    F("line_items", BK_F_ITEMS, true, LI),
    F("platform_fee_cents", BK_F_CENTS, true, NULL),
    F("tax_cents", BK_F_CENTS, true, NULL),
    F("tip_cents", BK_F_CENTS, false, NULL),
    F("totals", BK_F_TOTALS, true, "booking.order"),
    F("policy", BK_F_MAP, true, OO "policy_snapshot"),
    F_END};
static const bk_field f_status[] = {
    F("from", BK_F_STR, true, NULL), F("chat_thread_id", BK_F_STR, false, BO "chat_thread_id"),
    F("location_address", BK_F_STR, false, BO "location_address"), F_END};
static const bk_field f_req_submitted[] = {F("request_id", BK_F_ID, true, RQ "request_id"),
					   F("mode", BK_F_STR, true, RQ "mode"),
					   F("message", BK_F_STR, false, RQ "message"),
					   F("expires_at", BK_F_TS, false, RQ "expires_at"), F_END};
static const bk_field f_req_simple[] = {F("request_id", BK_F_ID, true, RQ "request_id"), F_END};
static const bk_field f_req_expired[] = {F("request_id", BK_F_ID, true, RQ "request_id"),
					 F("expires_at", BK_F_TS, false, NULL), F_END};
static const bk_field f_req_countered[] = {
    F("request_id", BK_F_ID, true, RQ "request_id"),  F("line_items", BK_F_ITEMS, true, NULL),
    F("platform_fee_cents", BK_F_CENTS, true, NULL),  F("tax_cents", BK_F_CENTS, true, NULL),
    F("expires_at", BK_F_TS, false, RQ "expires_at"), F_END};
static const bk_field f_req_counter_accepted[] = {
    F("request_id", BK_F_ID, true, RQ "request_id"), F("line_items", BK_F_ITEMS, true, LI),
    F("platform_fee_cents", BK_F_CENTS, true, NULL), F("tax_cents", BK_F_CENTS, true, NULL),
    F("totals", BK_F_TOTALS, true, "booking.order"), F_END};
static const bk_field f_invite_sent[] = {F("invite_id", BK_F_ID, true, RQ "request_id"),
					 F("recipients", BK_F_STRS, true, RCP "recipient_user_id"),
					 F("expires_at", BK_F_TS, false, RQ "expires_at"), F_END};
static const bk_field f_invite_responded[] = {
    F("invite_id", BK_F_ID, true, RCP "invite_id"),
    F("recipient_user_id", BK_F_STR, true, RCP "recipient_user_id"), F_END};
static const bk_field f_invite_awarded[] = {
    F("invite_id", BK_F_ID, true, RCP "invite_id"),
    F("recipient_user_id", BK_F_STR, true,
      BO "provider_user_id, " OO "provider_user_id, " RQ "provider_user_id"),
    F("service_profile_id", BK_F_ID, true, BO "service_profile_id"),
    F("not_awarded", BK_F_STRS, true, RCP "recipient_user_id"), F_END};
/* the money events: schema 2 adds the order's currency (checked against
 * booking.order.currency, not projected apart) */
static const bk_field f_captured[] = {
    F("payment_intent_id", BK_F_STR, true, BO "stripe_payment_intent_id"),
    F("transfer_group", BK_F_STR, false, BO "connect_transfer_group"),
    F("amount_cents", BK_F_CENTS, true, NULL), F_SINCE("currency", BK_F_STR, true, 2, NULL), F_END};
static const bk_field f_refunded[] = {F("refund_cents", BK_F_CENTS, true, NULL),
				      F("line_item", BK_F_ITEM, true, LI),
				      F("totals", BK_F_TOTALS, true, "booking.order"),
				      F_SINCE("currency", BK_F_STR, true, 2, NULL), F_END};
static const bk_field f_tip[] = {F("tip_cents", BK_F_CENTS, true, NULL),
				 F("totals", BK_F_TOTALS, true, "booking.order"),
				 F_SINCE("currency", BK_F_STR, true, 2, NULL), F_END};
static const bk_field f_dispute_opened[] = {
    F("dispute_id", BK_F_ID, true, DS "dispute_id"), F("opened_by", BK_F_STR, true, DS "opened_by"),
    F("reason", BK_F_ANY, true, DS "reason"), F("description", BK_F_STR, false, DS "description"),
    F_END};
static const bk_field f_dispute_updated[] = {F("dispute_id", BK_F_ID, true, DS "dispute_id"),
					     F("status", BK_F_STR, true, DS "status"), F_END};
static const bk_field f_dispute_resolved[] = {F("dispute_id", BK_F_ID, true, DS "dispute_id"),
					      F("outcome", BK_F_STR, true, DS "status"),
					      F("refund_cents", BK_F_CENTS, false, NULL), F_END};
static const bk_field f_ms_added[] = {
    F("milestone_id", BK_F_ID, true, MS "milestone_id"), F("title", BK_F_STR, true, MS "title"),
    F("due_ts", BK_F_TS, false, MS "due_ts"),
    F("amount_cents", BK_F_CENTS, true, MS "amount_cents"), F_END};
static const bk_field f_ms_changed[] = {F("milestone_id", BK_F_ID, true, MS "milestone_id"), F_END};
static const bk_field f_rescheduled[] = {
    F("start_ts", BK_F_TS, true, BO "start_ts, " OO "start_utc"),
    F("end_ts", BK_F_TS, true, BO "end_ts, " OO "end_utc"), F_END};
/* order.archived: the created_at of the order's event before it (the window's start); the
 * event's own created_at is booking.order.archived_at */
static const bk_field f_archived[] = {F("last_event_at", BK_F_TS, true, NULL), F_END};
static const bk_field f_card_proposed[] = {F("card_id", BK_F_ID, true, CD "card_id"),
					   F("created_by", BK_F_ID, true, CD "created_by"),
					   F("creator_role", BK_F_STR, true, NULL),
					   F("due_at", BK_F_TS, false, CD "due_at"),
					   F("expires_at", BK_F_TS, false, CD "expires_at"),
					   F("payload", BK_F_MAP, true, CD "payload"),
					   F_END};
static const bk_field f_card_other[] = {F("card_id", BK_F_ID, true, CD "card_id"),
					F("response_id", BK_F_STR, false, CR "response_id"),
					F("superseded_by", BK_F_STR, false, CD "superseded_by"),
					F("expires_at", BK_F_TS, false, NULL),
					F("line_items", BK_F_ITEMS, false, LI),
					F("totals", BK_F_TOTALS, false, "booking.order"),
					F_END};
static const bk_field f_card_response[] = {
    F("action", BK_F_STR, true, CR "action"),
    F("responder_user_id", BK_F_STR, true, CR "responder_user_id"), F_END};
static const bk_field f_card_money[] = {F_SINCE("currency", BK_F_STR, true, 2, NULL), F_END};
static const bk_field f_terms_reschedule[] = {F("start_ts", BK_F_TS, true, NULL),
					      F("end_ts", BK_F_TS, true, NULL), F_END};
static const bk_field f_terms_expense[] = {F("amount_cents", BK_F_CENTS, true, NULL),
					   F("title", BK_F_STR, true, NULL), F_END};
static const bk_field f_terms_extras[] = {F("line_items", BK_F_ITEMS, true, NULL), F_END};
static const bk_field f_item[] = {F("id", BK_F_ID, true, LI ".id"),
				  F("kind", BK_F_STR, true, LI ".kind"),
				  F("title", BK_F_STR, true, LI ".title"),
				  F("qty", BK_F_CENTS, true, LI ".qty"),
				  F("unit_cents", BK_F_CENTS, true, LI ".unit_cents"),
				  F("total_cents", BK_F_CENTS, true, LI ".total_cents"),
				  F_END};
static const bk_field f_totals[] = {
    F("subtotal_cents", BK_F_CENTS, true, BO "subtotal_cents"),
    F("platform_fee_cents", BK_F_CENTS, true, BO "platform_fee_cents"),
    F("tax_cents", BK_F_CENTS, true, BO "tax_cents"),
    F("tip_cents", BK_F_CENTS, true, BO "tip_cents"),
    F("total_cents", BK_F_CENTS, true, BO "total_cents"),
    F_END};
static const bk_field f_location[] = {F("kind", BK_F_STR, true, BO "location_kind"),
				      F("address", BK_F_STR, false, NULL), F_END};

const bk_schema_def bk_schemas[BK_SC__COUNT] = {
    [BK_SC_ORDER_CREATED] = {"order.created", NULL, f_created},
    [BK_SC_ORDER_STATUS] = {"order.<status>", NULL, f_status},
    [BK_SC_REQUEST_SUBMITTED] = {"request.submitted", NULL, f_req_submitted},
    [BK_SC_REQUEST_ACCEPTED] = {"request.accepted", NULL, f_req_simple},
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
    [BK_SC_NOTE_ADDED] = {"note.added", "Its payload is free", f_none},
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
