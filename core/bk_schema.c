/*
 * bk_schema.c - the current version of every event type, as data (bk_schema.h).
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
