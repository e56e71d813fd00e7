/*
 * proj_rows.h - the row images one batch writes: per read-model table, one image per
 * primary key, so an order touched seven times in a batch is written once.
 *
 * An image is either new (every column known: INSERT) or a patch of a row written by an
 * earlier batch (only the columns that changed are set, the others are NULL: UPDATE with
 * coalesce). All strings live in the store's arena until pr_store_reset; the store owns
 * every row. Not thread-safe: one store per batch.
 */
#ifndef PROJ_ROWS_H
#define PROJ_ROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_err.h"

typedef enum pr_table {
	PR_BORDER,	  /* booking.order */
	PR_OORDER,	  /* ord.order */
	PR_LINE_ITEM,	  /* booking.line_item (append only) */
	PR_REQUEST,	  /* booking.request */
	PR_RECIPIENT,	  /* booking.invite_recipient */
	PR_MILESTONE,	  /* booking.milestone */
	PR_DISPUTE,	  /* booking.dispute */
	PR_CARD,	  /* ord.card */
	PR_CARD_RESPONSE, /* ord.card_response (append only) */
	PR_LOCK,	  /* ord.order_lock */
	PR_TIMELINE,	  /* ord.timeline_event (append only) */
	PR__COUNT
} pr_table;

/* The columns the projector's code writes or reads (keys, statuses, times, derived
 * documents, what the price snapshot is made of), in
 * table order; proj_rows.c defines each by its name here ([BO_STATUS] = C("status",
 * "booking.booking_status")), with a _Static_assert that every table has as many
 * definitions as its enum has columns. Every other column is a payload field's value: the
 * field's schema row (core/bk_schema.c, BK_P_COPY) defines it and the projector copies it
 * (pr_field_targets); pr_def's tables hold both, these first. A new column is added
 * where it comes from, plus its migration (tests/test_schema_pg.sh holds the two against
 * PostgreSQL). */
enum {
	BO_ORDER_ID,
	BO_STATUS,
	BO_SUBTOTAL,
	BO_FEE,
	BO_TAX,
	BO_TIP,
	BO_TOTAL,
	BO_CURRENCY,
	BO_CREATED,
	BO_UPDATED,
	BO_ARCHIVED,
	BO__N
};
enum { OO_ORDER_ID, OO_LOCATION, OO_PRICE, OO_STATE, OO_CREATED, OO_UPDATED, OO__N };
enum { LI_ID, LI_ORDER_ID, LI_KIND, LI_TITLE, LI_QTY, LI_UNIT, LI_TOTAL, LI_POS, LI__N };
enum { RQ_ID, RQ_MODE, RQ_ORDER_ID, RQ_BUYER, RQ_PROVIDER, RQ_STATUS, RQ_CREATED, RQ__N };
enum { RC_INVITE_ID, RC_USER_ID, RC_STATUS, RC__N };
enum { MS_ID, MS_ORDER_ID, MS_STATUS, MS__N };
enum { DS_ID, DS_ORDER_ID, DS_STATUS, DS_CREATED, DS_UPDATED, DS__N };
enum { CD_ID, CD_ORDER_ID, CD_TYPE, CD_STATE, CD_CREATED, CD_UPDATED, CD__N };
enum { CR_ID, CR_CARD_ID, CR_PAYLOAD, CR_CREATED, CR__N };
enum { LK_ORDER_ID, LK_VERSION, LK_UPDATED, LK__N };
enum {
	TE_EVENT_ID,
	TE_ORDER_ID,
	TE_KIND,
	TE_SUBTYPE,
	TE_ACTOR,
	TE_PAYLOAD,
	TE_CREATED,
	TE_SEQ,
	TE_COMMAND_ID,
	TE_HASH,
	TE_PREV_HASH,
	TE_SCHEMA,
	TE__N
};

#define PR_MAX_COLS   40
#define PR_MAX_FIELDS 24 /* fields of one schema (core/bk_schema.c) */

/* How a patch writes a column. */
typedef enum pr_merge {
	PR_M_COALESCE,	 /* col = coalesce(new, old) */
	PR_M_JSON_MERGE, /* col = old || coalesce(new, '{}') (jsonb objects) */
} pr_merge;

typedef struct pr_col {
	const char *name;
	const char *type; /* SQL type, for casts of text parameters */
	uint8_t merge;	  /* pr_merge */
} pr_col;

typedef struct pr_tabledef {
	const char *name;  /* "booking.order" */
	const char *stage; /* temp staging table ("s_border"); NULL: append only, no staging */
	const pr_col *cols;
	int ncols;
	int npk;       /* the first npk columns are the primary key */
	int order_col; /* the column holding the order id (patch guard), -1 when none */
} pr_tabledef;

/* The read-model table t: its code columns (the enums above), then the columns the schema
 * rows copy fields into, in schema order. Built on first use from proj_rows.c and
 * core/bk_schema.c; a schema row naming an unknown table, a copy of a field type that is
 * not one column, a column named with two SQL types or a table past PR_MAX_COLS is a
 * defect of the build: reported on stderr, then abort() (every test would see it). */
const pr_tabledef *pr_def(pr_table t);

/* A column a payload field is copied into, resolved: table, column index, and whether the
 * column is part of the table's key (the field then names the row: checked, not set). */
typedef struct pr_target {
	uint8_t t; /* pr_table */
	uint8_t col;
	bool key;
} pr_target;

/* The columns field i of schema s (bk_schemas[s].fields[i]) is copied into; *ret_n of
 * them (0: none). */
const pr_target *pr_field_targets(int s, int i, int *ret_n);

typedef struct pr_row {
	const char **v; /* ncols values: arena strings, NULL = not set (patch) or SQL NULL */
	const char *order_id;
	bool is_new;
	bool dead; /* line items dropped by a replacement later in the batch */
} pr_row;

typedef struct pr_store pr_store; /* opaque */

pr_store *pr_store_new(void);	  /* NULL on OOM */
void pr_store_free(pr_store *s);  /* NULL ok */
void pr_store_reset(pr_store *s); /* drop every row and string, keep the memory */
size_t pr_store_count(const pr_store *s, pr_table t);
/* The i-th row of table t (insertion order). */
pr_row *pr_store_row(const pr_store *s, pr_table t, size_t i);
size_t pr_store_rows_total(const pr_store *s);

/*
 * The image of the row of table t whose primary key values are pk[0..npk). With is_new
 * the row is created by this event: it must not exist in the batch yet (else -1,
 * "duplicate id"). Without, the image is a patch of the existing image, or a new patch
 * (the row is expected in PostgreSQL); order_id must be the one the image was made for
 * (else -1, "belongs to another order"). Append-only tables take only is_new. Returns 0
 * and *ret_row, or -1 with the reason in err.
 */
int pr_row_get(pr_store *s, pr_table t, const char *const *pk, const char *order_id, bool is_new,
	       pr_row **ret_row, char *err, size_t errsz) BK_MUSTCHECK;

/* Set column col of r to a copy of val (NULL: SQL NULL / unset). false on OOM. */
bool pr_set(pr_store *s, pr_row *r, int col, const char *val) BK_MUSTCHECK;
bool pr_setn(pr_store *s, pr_row *r, int col, const char *val, size_t n) BK_MUSTCHECK;
bool pr_setf(pr_store *s, pr_row *r, int col, const char *fmt, ...) BK_PRINTF(4, 5) BK_MUSTCHECK;

/* Copies into the arena (valid until reset); NULL on OOM. */
char *pr_strdup(pr_store *s, const char *str, size_t n);

/* Line items of order_id added so far in this batch are dropped (the order's list is
 * replaced) and the order is recorded for a DELETE before the inserts. */
bool pr_replace_items(pr_store *s, const char *order_id) BK_MUSTCHECK;
/* Orders whose price snapshot must be recomputed after the batch's rows are written. */
bool pr_price_dirty(pr_store *s, const char *order_id) BK_MUSTCHECK;
/* The lists above, as NUL-separated arena strings; counts in *ret_n. */
const char *const *pr_replaced(const pr_store *s, size_t *ret_n);
const char *const *pr_dirty(const pr_store *s, size_t *ret_n);

#endif
