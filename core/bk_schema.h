/*
 * bk_schema.h - event schemas as data (issue #14): per event type its current version
 * and its payload's fields (key, type, required, since-version, projected column), one
 * table that the record decoder checks from and docs/events.md is generated from
 * (`bookingctl events`, scripts/gen-events-docs.sh).
 *
 * Every event carries the schema version it was written with (`schema`). The version of
 * an event type moves up when what its payload holds changes; readers bring older events
 * to the current version with the upcasters of core/bk_upcast.c, and refuse newer ones.
 * Version 2 of the money events (payment.captured, payment.refunded, tip.added,
 * card.extras.accepted, card.expense.accepted) carries the order's currency.
 */
#ifndef BK_SCHEMA_H
#define BK_SCHEMA_H

#include <stdbool.h>
#include <stdint.h>

#include "bk_event.h"

/* What a payload field holds (the decoder's check, the docs' wording). */
typedef enum bk_ftype {
	BK_F_STR,      /* text */
	BK_F_ID,       /* an id (bk_id_valid) */
	BK_F_CENTS,    /* an integer within the schema's int (BK_CENTS_MIN..BK_CENTS_MAX) */
	BK_F_NUM,      /* a finite number */
	BK_F_TS,       /* RFC 3339 text */
	BK_F_MAP,      /* a map */
	BK_F_ANY,      /* any value but nil */
	BK_F_STRS,     /* an array of text */
	BK_F_ITEMS,    /* an array of line items (BK_SC_ITEM) */
	BK_F_ITEM,     /* a line item (BK_SC_ITEM) */
	BK_F_TOTALS,   /* totals (BK_SC_TOTALS) */
	BK_F_LOCATION, /* a location (BK_SC_LOCATION) */
	BK_F__COUNT
} bk_ftype;

/* How a field reaches the read model (projector/proj_apply.c). */
typedef enum bk_pkind {
	/* The field's value, written by its type, is the column, in the row of that table the
	 * event writes. A column that only such rows name is defined by them alone (its SQL
	 * type: sqltype, else the field type's, bk_ftype_sql): a new projected column is a
	 * schema row plus its migration. A copy into a key column names the row (checked). */
	BK_P_COPY,
	/* The projector's code derives the column from the field (a JSON document, one row
	 * per element of an array, the price snapshot); named here for the docs. */
	BK_P_CODE,
} bk_pkind;

/* One destination of a field. */
typedef struct bk_proj {
	const char *table;   /* "booking.order"; NULL ends a list */
	const char *column;  /* "city"; NULL (BK_P_CODE): the table's rows */
	const char *sqltype; /* BK_P_COPY: the column's SQL type when not the field type's */
	uint8_t kind;	     /* bk_pkind */
} bk_proj;

/* Where the decider takes a field's value from. */
typedef enum bk_fsrc {
	BK_S_DECIDER,	   /* it computes it (ids, statuses, money, what the order holds) */
	BK_S_CMD,	   /* the command payload's text field of the same key, when given */
	BK_S_CMD_REQUIRED, /* the same, which the command must give */
} bk_fsrc;

/* One field of a payload. */
typedef struct bk_field {
	const char *key; /* NULL ends a list */
	uint8_t klen;	 /* strlen(key) */
	uint8_t type;	 /* bk_ftype */
	bool req;
	uint8_t since;	   /* the first schema version of the event that has the field */
	const bk_proj *to; /* where it is projected (a list ended by a NULL table), or NULL */
	uint8_t src;	   /* bk_fsrc */
	uint16_t max;	   /* BK_S_CMD*: its limit, 1 to max bytes */
} bk_field;

/* The schemas: one per event type (in bk_ev_type order; card: every verb but proposed),
 * then the parts some subtypes add and the shapes fields share. */
typedef enum bk_schema_id {
#define BK_SC_ENUM(sym, name, kind) BK_SC_##sym,
	BK_EV_MAP(BK_SC_ENUM)
#undef BK_SC_ENUM
	    BK_SC_CARD_PROPOSED, /* card.<type>.proposed */
	BK_SC_CARD_RESPONSE,	 /* a card event with response_id */
	BK_SC_CARD_MONEY,	 /* card.extras.accepted, card.expense.accepted */
	BK_SC_TERMS_RESCHEDULE,	 /* card.reschedule.proposed: payload.payload */
	BK_SC_TERMS_EXPENSE,	 /* card.expense.proposed: payload.payload */
	BK_SC_TERMS_EXTRAS,	 /* card.extras.proposed: payload.payload */
	BK_SC_TERMS_OTHER,	 /* the other card types' terms: free */
	BK_SC_ITEM,		 /* a line item */
	BK_SC_TOTALS,		 /* totals */
	BK_SC_LOCATION,		 /* a location */
	BK_SC__COUNT
} bk_schema_id;

typedef struct bk_schema_def {
	const char *name; /* "payment.captured", "card.<type>.proposed", "line item" */
	const char *note; /* when it applies, in words (docs); NULL when plainly */
	const bk_field *fields;
} bk_schema_def;

extern const bk_schema_def bk_schemas[BK_SC__COUNT];
const char *bk_ftype_name(bk_ftype t); /* "text", "id", "cents"... */
/* The SQL type of a column a field of type t is copied into ("text", "timestamptz",
 * "int", "numeric", "jsonb"), NULL when a value of that type is not one column. */
const char *bk_ftype_sql(bk_ftype t);

/* Event types that share a version history (and the upcasters along it). */
typedef enum bk_schema_family {
	BK_SF_PLAIN, /* no change since version 1 */
	BK_SF_MONEY, /* 2: + currency (the order's) */
	BK_SF__COUNT
} bk_schema_family;

/* The family of e's subtype (type, and for card events card type and verb). */
bk_schema_family bk_event_family(const bk_event *e);
/* The current schema version of e's subtype: the one the decider writes. */
uint32_t bk_event_version(const bk_event *e);
/* Does e move money (its current version carries the order's currency)? */
bool bk_event_is_money(const bk_event *e);
/* The current version of a family (for the docs and the tests). */
uint32_t bk_schema_family_version(bk_schema_family f);
const char *bk_schema_family_name(bk_schema_family f);

/* --- which schemas describe an event's payload ---------------------------------------
 * One selection, used by every walk over a payload by its schema: the record decoder's
 * checks (core/bk_codec.c) and the JSON writer's timestamps (core/bk_json.c). */

/* The key of a card proposal's terms (payload.payload, a BK_F_MAP row). */
#define BK_TERMS_KEY	       "payload"
#define BK_PAYLOAD_SCHEMAS_MAX 3

typedef struct bk_payload_schemas {
	uint8_t n;			     /* schemas of the payload's top level */
	uint8_t top[BK_PAYLOAD_SCHEMAS_MAX]; /* bk_schema_id, their fields together */
	uint8_t terms; /* bk_schema_id of the map under BK_TERMS_KEY, BK_SC__COUNT when none */
} bk_payload_schemas;

/* The schemas that describe e's payload, from its type, card type and verb, whether its
 * payload holds a response_id, and whether it moves money: the event type's schema, or
 * for card events card.<type>.proposed and its terms (BK_SC_TERMS_* by card type), or
 * card.<type>.<verb> (+ card response when it holds a response_id, + card money). The
 * sub-schemas of fields (line item, totals, location) follow from their rows' types.
 * None (n 0, terms BK_SC__COUNT) when e's subtype is out of range or e->schema is newer
 * than the code knows (bk_event_version): such a payload is described by no row here.
 * Each row applies to e when its `since` <= e->schema. */
void bk_payload_schemas_of(const bk_event *e, bk_payload_schemas *ret);
/* The schema a field of type t holds (line items and a line item: BK_SC_ITEM; totals;
 * location), BK_SC__COUNT for the other types. Inline: the JSON writer asks it of rows. */
static inline bk_schema_id bk_ftype_schema(bk_ftype t)
{
	return t == BK_F_ITEMS || t == BK_F_ITEM ? BK_SC_ITEM
	       : t == BK_F_TOTALS		 ? BK_SC_TOTALS
	       : t == BK_F_LOCATION		 ? BK_SC_LOCATION
						 : BK_SC__COUNT;
}

#endif
