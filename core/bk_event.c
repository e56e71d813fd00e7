/*
 * bk_event.c - event subtypes: names, kinds and parsing of "order.<status>",
 * "milestone.<state>" and "card.<type>.<verb>".
 */
#include <stdio.h>
#include <string.h>

#include "bk_event.h"

static const char *const ev_names[BK_EV__COUNT] = {
#define BK_EV_NAME(sym, name, kind) [BK_EV_##sym] = name,
    BK_EV_MAP(BK_EV_NAME)
#undef BK_EV_NAME
};

static const uint8_t ev_kinds[BK_EV__COUNT] = {
#define BK_EV_KIND(sym, name, kind) [BK_EV_##sym] = BK_EK_##kind,
    BK_EV_MAP(BK_EV_KIND)
#undef BK_EV_KIND
};

static const char *const kind_names[BK_EK__COUNT] = {
    [BK_EK_SYSTEM] = "system",	   [BK_EK_CARD] = "card", [BK_EK_PAYMENT] = "payment",
    [BK_EK_CALENDAR] = "calendar", [BK_EK_NOTE] = "note",
};

static const char *const verb_names[BK_CV__COUNT] = {
    [BK_CV_PROPOSED] = "proposed",     [BK_CV_ACCEPTED] = "accepted",
    [BK_CV_DECLINED] = "declined",     [BK_CV_RESPONDED] = "responded",
    [BK_CV_SUPERSEDED] = "superseded", [BK_CV_CANCELLED] = "cancelled",
    [BK_CV_EXPIRED] = "expired",       [BK_CV_EXPIRING] = "expiring",
    [BK_CV_CLOSED] = "closed",
};

/* What each card event does to its card's state (BK_CS_NONE: leaves it as it is). */
static const uint8_t verb_states[BK_CV__COUNT] = {
    [BK_CV_PROPOSED] = BK_CS_OPEN,	   [BK_CV_ACCEPTED] = BK_CS_ACCEPTED,
    [BK_CV_DECLINED] = BK_CS_DECLINED,	   [BK_CV_RESPONDED] = BK_CS_NONE,
    [BK_CV_SUPERSEDED] = BK_CS_SUPERSEDED, [BK_CV_CANCELLED] = BK_CS_CANCELLED,
    [BK_CV_EXPIRED] = BK_CS_EXPIRED,	   [BK_CV_EXPIRING] = BK_CS_NONE,
    [BK_CV_CLOSED] = BK_CS_CLOSED,
};

int bk_card_verb_state(bk_card_verb v)
{
	return (unsigned)v < BK_CV__COUNT && verb_states[v] != BK_CS_NONE ? verb_states[v] : -1;
}

bk_card_verb bk_card_response_verb(bk_card_state to)
{
	for (int v = 0; v < BK_CV__COUNT; v++)
		if (v != BK_CV_PROPOSED && verb_states[v] == to)
			return (bk_card_verb)v;
	return BK_CV_RESPONDED;
}

bk_ev_kind bk_event_kind(const bk_event *e)
{
	return e->type < BK_EV__COUNT ? (bk_ev_kind)ev_kinds[e->type] : BK_EK_SYSTEM;
}

const char *bk_ev_kind_name(bk_ev_kind k)
{
	return (unsigned)k < BK_EK__COUNT ? kind_names[k] : "?";
}

const char *bk_card_verb_name(bk_card_verb v)
{
	return (unsigned)v < BK_CV__COUNT ? verb_names[v] : "?";
}

/* Every composite subtype as a literal, so naming an event costs no formatting. */
static const char *const status_subtypes[BK_ST__COUNT] = {
    [BK_ST_INITIATED] = "order.initiated",
    [BK_ST_PENDING_ACCEPT] = "order.pending_accept",
    [BK_ST_COUNTERED] = "order.countered",
    [BK_ST_ACCEPTED] = "order.accepted",
    [BK_ST_DECLINED] = "order.declined",
    [BK_ST_CONFIRMED] = "order.confirmed",
    [BK_ST_IN_PROGRESS] = "order.in_progress",
    [BK_ST_DELIVERED] = "order.delivered",
    [BK_ST_COMPLETED] = "order.completed",
    [BK_ST_CANCELLED_BUYER] = "order.cancelled_buyer",
    [BK_ST_CANCELLED_PROVIDER] = "order.cancelled_provider",
    [BK_ST_DISPUTED] = "order.disputed",
    [BK_ST_RESOLVED] = "order.resolved",
};
static const char *const ms_subtypes[BK_MS__COUNT] = {
    [BK_MS_OPEN] = "milestone.open",	     [BK_MS_DELIVERED] = "milestone.delivered",
    [BK_MS_APPROVED] = "milestone.approved", [BK_MS_DISPUTED] = "milestone.disputed",
    [BK_MS_REFUNDED] = "milestone.refunded",
};
#define CARD_VERBS(t)                                                                              \
	{                                                                                          \
		"card." t ".proposed", "card." t ".accepted", "card." t ".declined",               \
		    "card." t ".responded", "card." t ".superseded", "card." t ".cancelled",       \
		    "card." t ".expired", "card." t ".expiring", "card." t ".closed"               \
	}
static const char *const card_subtypes[BK_CT__COUNT][BK_CV__COUNT] = {
    [BK_CT_RESCHEDULE] = CARD_VERBS("reschedule"), [BK_CT_EXTRAS] = CARD_VERBS("extras"),
    [BK_CT_PROOFS] = CARD_VERBS("proofs"),	   [BK_CT_EXPENSE] = CARD_VERBS("expense"),
    [BK_CT_COMPLETE] = CARD_VERBS("complete"),	   [BK_CT_DISPUTE] = CARD_VERBS("dispute"),
};
_Static_assert(BK_CV__COUNT == 9, "CARD_VERBS lists every verb in enum order");

const char *bk_event_subtype_name(const bk_event *e)
{
	switch (e->type) {
	case BK_EV_ORDER_STATUS:
		return e->sub < BK_ST__COUNT ? status_subtypes[e->sub] : NULL;
	case BK_EV_MILESTONE_CHANGED:
		return e->sub < BK_MS__COUNT ? ms_subtypes[e->sub] : NULL;
	case BK_EV_CARD:
		return e->card_type < BK_CT__COUNT && e->sub < BK_CV__COUNT
			   ? card_subtypes[e->card_type][e->sub]
			   : NULL;
	default:
		return e->type < BK_EV__COUNT ? ev_names[e->type] : NULL;
	}
}

const char *bk_event_subtype(const bk_event *e, char *buf, size_t bufsz)
{
	const char *name = bk_event_subtype_name(e);
	if (name) {
		snprintf(buf, bufsz, "%s", name);
		return buf;
	}
	switch (e->type) {
	case BK_EV_ORDER_STATUS:
		snprintf(buf, bufsz, "order.%s", bk_status_name((bk_status)e->sub));
		break;
	case BK_EV_MILESTONE_CHANGED:
		snprintf(buf, bufsz, "milestone.%s", bk_ms_state_name((bk_ms_state)e->sub));
		break;
	case BK_EV_CARD:
		snprintf(buf, bufsz, "card.%s.%s", bk_card_type_name((bk_card_type)e->card_type),
			 bk_card_verb_name((bk_card_verb)e->sub));
		break;
	default:
		snprintf(buf, bufsz, "%s", e->type < BK_EV__COUNT ? ev_names[e->type] : "?");
	}
	return buf;
}

static int find_name(const char *const *tab, int count, const char *s, size_t n)
{
	for (int i = 0; i < count; i++)
		if (tab[i] && strlen(tab[i]) == n && memcmp(tab[i], s, n) == 0)
			return i;
	return -1;
}

int bk_event_subtype_parse(const char *s, size_t n, uint8_t *ret_type, uint8_t *ret_sub,
			   uint8_t *ret_card_type)
{
	int i = find_name(ev_names, BK_EV__COUNT, s, n);
	if (i >= 0 && i != BK_EV_ORDER_STATUS && i != BK_EV_MILESTONE_CHANGED && i != BK_EV_CARD) {
		*ret_type = (uint8_t)i;
		*ret_sub = 0;
		*ret_card_type = 0;
		return 0;
	}
	if (n > 6 && memcmp(s, "order.", 6) == 0) {
		int st = bk_status_from(s + 6, n - 6);
		if (st < 0)
			return -1;
		*ret_type = BK_EV_ORDER_STATUS;
		*ret_sub = (uint8_t)st;
		*ret_card_type = 0;
		return 0;
	}
	if (n > 10 && memcmp(s, "milestone.", 10) == 0) {
		int ms = bk_ms_state_from(s + 10, n - 10);
		if (ms < 0 || ms == BK_MS_OPEN)
			return -1;
		*ret_type = BK_EV_MILESTONE_CHANGED;
		*ret_sub = (uint8_t)ms;
		*ret_card_type = 0;
		return 0;
	}
	if (n > 5 && memcmp(s, "card.", 5) == 0) {
		const char *t = s + 5, *end = s + n;
		const char *dot = memchr(t, '.', (size_t)(end - t));
		if (!dot)
			return -1;
		int ct = bk_card_type_from(t, (size_t)(dot - t));
		int v = find_name(verb_names, BK_CV__COUNT, dot + 1, (size_t)(end - dot - 1));
		if (ct < 0 || v < 0)
			return -1;
		*ret_type = BK_EV_CARD;
		*ret_sub = (uint8_t)v;
		*ret_card_type = (uint8_t)ct;
		return 0;
	}
	return -1;
}
