/*
 * proj_rows.c - the table definitions of the read model and the per-batch row store:
 * an arena for strings and rows, and per table a vector (write order) plus an
 * open-addressing index by primary key. Invariant: one image per key per batch.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_schema.h"
#include "proj_rows.h"

/* --- table definitions ------------------------------------------------------------- */

#define C(n, t)                                                                                    \
	{                                                                                          \
		n, t, PR_M_COALESCE                                                                \
	}
#define CJ(n, t)                                                                                   \
	{                                                                                          \
		n, t, PR_M_JSON_MERGE                                                              \
	}

static const pr_col border_cols[] = {
    [BO_ORDER_ID] = C("order_id", "text"),
    [BO_STATUS] = C("status", "booking.booking_status"),
    [BO_SUBTOTAL] = C("subtotal_cents", "int"),
    [BO_FEE] = C("platform_fee_cents", "int"),
    [BO_TAX] = C("tax_cents", "int"),
    [BO_TIP] = C("tip_cents", "int"),
    [BO_TOTAL] = C("total_cents", "int"),
    [BO_CURRENCY] = C("currency", "text"),
    [BO_CREATED] = C("created_at", "timestamptz"),
    [BO_UPDATED] = C("updated_at", "timestamptz"),
    [BO_ARCHIVED] = C("archived_at", "timestamptz"),
};
_Static_assert(sizeof(border_cols) / sizeof(*border_cols) == BO__N,
	       "a definition for every column of the enum");
static const pr_col oorder_cols[] = {
    [OO_ORDER_ID] = C("order_id", "text"),	   [OO_LOCATION] = CJ("location_json", "jsonb"),
    [OO_PRICE] = C("price_snapshot", "jsonb"),	   [OO_STATE] = C("state", "ord.order_state"),
    [OO_CREATED] = C("created_at", "timestamptz"), [OO_UPDATED] = C("updated_at", "timestamptz"),
};
_Static_assert(sizeof(oorder_cols) / sizeof(*oorder_cols) == OO__N,
	       "a definition for every column of the enum");
static const pr_col li_cols[] = {
    [LI_ID] = C("id", "text"),
    [LI_ORDER_ID] = C("order_id", "text"),
    [LI_KIND] = C("kind", "text"),
    [LI_TITLE] = C("title", "text"),
    [LI_QTY] = C("qty", "numeric"),
    [LI_UNIT] = C("unit_cents", "int"),
    [LI_TOTAL] = C("total_cents", "int"),
    [LI_POS] = C("list_pos", "bigint"),
};
_Static_assert(sizeof(li_cols) / sizeof(*li_cols) == LI__N,
	       "a definition for every column of the enum");
static const pr_col rq_cols[] = {
    [RQ_ID] = C("request_id", "text"),
    [RQ_MODE] = C("mode", "booking.booking_mode"),
    [RQ_ORDER_ID] = C("order_id", "text"),
    [RQ_BUYER] = C("buyer_user_id", "text"),
    [RQ_PROVIDER] = C("provider_user_id", "text"),
    [RQ_STATUS] = C("status", "text"),
    [RQ_CREATED] = C("created_at", "timestamptz"),
};
_Static_assert(sizeof(rq_cols) / sizeof(*rq_cols) == RQ__N,
	       "a definition for every column of the enum");
static const pr_col rc_cols[] = {
    [RC_INVITE_ID] = C("invite_id", "text"),
    [RC_USER_ID] = C("recipient_user_id", "text"),
    [RC_STATUS] = C("status", "text"),
};
_Static_assert(sizeof(rc_cols) / sizeof(*rc_cols) == RC__N,
	       "a definition for every column of the enum");
static const pr_col ms_cols[] = {
    [MS_ID] = C("milestone_id", "text"),
    [MS_ORDER_ID] = C("order_id", "text"),
    [MS_STATUS] = C("status", "text"),
};
_Static_assert(sizeof(ms_cols) / sizeof(*ms_cols) == MS__N,
	       "a definition for every column of the enum");
static const pr_col ds_cols[] = {
    [DS_ID] = C("dispute_id", "text"),
    [DS_ORDER_ID] = C("order_id", "text"),
    [DS_STATUS] = C("status", "text"),
    [DS_CREATED] = C("created_at", "timestamptz"),
    [DS_UPDATED] = C("updated_at", "timestamptz"),
};
_Static_assert(sizeof(ds_cols) / sizeof(*ds_cols) == DS__N,
	       "a definition for every column of the enum");
static const pr_col cd_cols[] = {
    [CD_ID] = C("card_id", "text"),
    [CD_ORDER_ID] = C("order_id", "text"),
    [CD_TYPE] = C("type", "ord.card_type"),
    [CD_STATE] = C("state", "ord.card_state"),
    [CD_CREATED] = C("created_at", "timestamptz"),
    [CD_UPDATED] = C("updated_at", "timestamptz"),
};
_Static_assert(sizeof(cd_cols) / sizeof(*cd_cols) == CD__N,
	       "a definition for every column of the enum");
static const pr_col cr_cols[] = {
    [CR_ID] = C("response_id", "text"),
    [CR_CARD_ID] = C("card_id", "text"),
    [CR_PAYLOAD] = C("payload", "jsonb"),
    [CR_CREATED] = C("created_at", "timestamptz"),
};
_Static_assert(sizeof(cr_cols) / sizeof(*cr_cols) == CR__N,
	       "a definition for every column of the enum");
static const pr_col lk_cols[] = {
    [LK_ORDER_ID] = C("order_id", "text"),
    [LK_VERSION] = C("version", "bigint"),
    [LK_UPDATED] = C("updated_at", "timestamptz"),
};
_Static_assert(sizeof(lk_cols) / sizeof(*lk_cols) == LK__N,
	       "a definition for every column of the enum");
static const pr_col te_cols[] = {
    [TE_EVENT_ID] = C("event_id", "text"),
    [TE_ORDER_ID] = C("order_id", "text"),
    [TE_KIND] = C("kind", "text"),
    [TE_SUBTYPE] = C("subtype", "text"),
    [TE_ACTOR] = C("actor_user_id", "text"),
    [TE_PAYLOAD] = C("payload", "jsonb"),
    [TE_CREATED] = C("created_at", "timestamptz"),
    [TE_SEQ] = C("seq", "bigint"),
    [TE_COMMAND_ID] = C("command_id", "text"),
    [TE_HASH] = C("hash", "bytea"),
    [TE_PREV_HASH] = C("prev_hash", "bytea"),
    [TE_SCHEMA] = C("schema", "int"),
};
_Static_assert(sizeof(te_cols) / sizeof(*te_cols) == TE__N,
	       "a definition for every column of the enum");

/* In write order: a row's foreign keys point at tables written before it. */
static const pr_tabledef code_tables[PR__COUNT] = {
    [PR_BORDER] = {"booking.order", "s_border", border_cols, BO__N, 1, BO_ORDER_ID},
    [PR_OORDER] = {"ord.order", "s_oorder", oorder_cols, OO__N, 1, OO_ORDER_ID},
    [PR_LINE_ITEM] = {"booking.line_item", NULL, li_cols, LI__N, 1, LI_ORDER_ID},
    [PR_REQUEST] = {"booking.request", "s_request", rq_cols, RQ__N, 1, RQ_ORDER_ID},
    [PR_RECIPIENT] = {"booking.invite_recipient", "s_recipient", rc_cols, RC__N, 2, -1},
    [PR_MILESTONE] = {"booking.milestone", "s_milestone", ms_cols, MS__N, 1, MS_ORDER_ID},
    [PR_DISPUTE] = {"booking.dispute", "s_dispute", ds_cols, DS__N, 1, DS_ORDER_ID},
    [PR_CARD] = {"ord.card", "s_card", cd_cols, CD__N, 1, CD_ORDER_ID},
    [PR_CARD_RESPONSE] = {"ord.card_response", NULL, cr_cols, CR__N, 1, -1},
    [PR_LOCK] = {"ord.order_lock", "s_lock", lk_cols, LK__N, 1, LK_ORDER_ID},
    [PR_TIMELINE] = {"ord.timeline_event", NULL, te_cols, TE__N, 1, TE_ORDER_ID},
};

/* --- the tables with the schema's columns (built once) -------------------------------- */

#define MAX_TARGETS 512 /* copies of all schemas */

static pr_tabledef defs[PR__COUNT];
static pr_col cols[PR__COUNT][PR_MAX_COLS];
static pr_target targets[MAX_TARGETS];
static uint16_t tfirst[BK_SC__COUNT]
		      [PR_MAX_FIELDS + 1]; /* field i: targets[first[i]..first[i+1]) */
static pthread_once_t built = PTHREAD_ONCE_INIT;

BK_PRINTF(1, 2) static _Noreturn void defect(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "read-model definition: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (core/bk_schema.c, projector/proj_rows.c)\n");
	va_end(ap);
	abort();
}

static int table_named(const char *name)
{
	for (int t = 0; t < PR__COUNT; t++)
		if (strcmp(defs[t].name, name) == 0)
			return t;
	return -1;
}

static int column_named(int t, const char *name)
{
	for (int c = 0; c < defs[t].ncols; c++)
		if (strcmp(cols[t][c].name, name) == 0)
			return c;
	return -1;
}

/* The column p names, added to its table when no code column and no earlier row has it. */
static int copy_column(const bk_schema_def *d, const bk_field *f, const bk_proj *p, int t)
{
	const char *type = p->sqltype ? p->sqltype : bk_ftype_sql((bk_ftype)f->type);
	if (!type || !p->column)
		defect("%s.%s (%s) cannot be copied into one column", d->name, f->key,
		       bk_ftype_name((bk_ftype)f->type));
	int c = column_named(t, p->column);
	if (c >= 0) {
		if (strcmp(cols[t][c].type, type) != 0)
			defect("%s.%s: %s.%s is %s, not %s", d->name, f->key, defs[t].name,
			       p->column, cols[t][c].type, type);
		return c;
	}
	if (defs[t].ncols >= PR_MAX_COLS)
		defect("%s has more than PR_MAX_COLS columns", defs[t].name);
	c = defs[t].ncols++;
	cols[t][c] = (pr_col){p->column, type, PR_M_COALESCE};
	return c;
}

static void build(void)
{
	for (int t = 0; t < PR__COUNT; t++) {
		defs[t] = code_tables[t];
		memcpy(cols[t], code_tables[t].cols, (size_t)code_tables[t].ncols * sizeof(pr_col));
		defs[t].cols = cols[t];
	}
	size_t n = 0;
	for (int s = 0; s < BK_SC__COUNT; s++) {
		const bk_schema_def *d = &bk_schemas[s];
		int i = 0;
		for (const bk_field *f = d->fields; f->key; f++, i++) {
			if (i >= PR_MAX_FIELDS)
				defect("%s has more than %d fields", d->name, PR_MAX_FIELDS);
			tfirst[s][i] = (uint16_t)n;
			for (const bk_proj *p = f->to; p && p->table; p++) {
				int t = table_named(p->table);
				if (t < 0)
					defect("%s.%s: no table %s", d->name, f->key, p->table);
				if (p->kind != BK_P_COPY)
					continue;
				if (n >= MAX_TARGETS)
					defect("more than %d copies", MAX_TARGETS);
				int c = copy_column(d, f, p, t);
				targets[n++] = (pr_target){(uint8_t)t, (uint8_t)c, c < defs[t].npk};
			}
		}
		for (; i <= PR_MAX_FIELDS; i++)
			tfirst[s][i] = (uint16_t)n;
	}
	/* the columns code derives from fields are code columns (or copies) */
	for (int s = 0; s < BK_SC__COUNT; s++)
		for (const bk_field *f = bk_schemas[s].fields; f->key; f++)
			for (const bk_proj *p = f->to; p && p->table; p++)
				if (p->kind == BK_P_CODE && p->column &&
				    column_named(table_named(p->table), p->column) < 0)
					defect("%s.%s: no column %s.%s", bk_schemas[s].name, f->key,
					       p->table, p->column);
}

const pr_tabledef *pr_def(pr_table t)
{
	pthread_once(&built, build);
	return &defs[t];
}

const pr_target *pr_field_targets(int s, int i, int *ret_n)
{
	pthread_once(&built, build);
	*ret_n = tfirst[s][i + 1] - tfirst[s][i];
	return &targets[tfirst[s][i]];
}

/* --- arena ------------------------------------------------------------------------- */

typedef struct chunk {
	struct chunk *next;
	size_t used, cap;
	_Alignas(max_align_t) char data[];
} chunk;

#define CHUNK_MIN ((size_t)256 * 1024)

typedef struct rowvec {
	pr_row **v;
	size_t n, cap;
	uint32_t *slots; /* index + 1; 0 = empty */
	size_t nslots;
} rowvec;

typedef struct strvec {
	const char **v;
	size_t n, cap;
} strvec;

struct pr_store {
	chunk *head;  /* chunk being filled */
	chunk *spare; /* emptied chunks, reused after a reset */
	rowvec t[PR__COUNT];
	strvec replaced, dirty;
};

static void *arena_alloc(pr_store *s, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (!s->head || s->head->cap - s->head->used < n) {
		chunk *c = NULL;
		if (s->spare && s->spare->cap >= n) {
			c = s->spare;
			s->spare = c->next;
		} else {
			size_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
			c = malloc(sizeof(*c) + cap);
			if (!c)
				return NULL;
			c->cap = cap;
		}
		c->used = 0;
		c->next = s->head;
		s->head = c;
	}
	void *p = s->head->data + s->head->used;
	s->head->used += n;
	return p;
}

char *pr_strdup(pr_store *s, const char *str, size_t n)
{
	char *p = arena_alloc(s, n + 1);
	if (!p)
		return NULL;
	memcpy(p, str, n);
	p[n] = 0;
	return p;
}

pr_store *pr_store_new(void)
{
	return calloc(1, sizeof(pr_store));
}

static void free_chunks(chunk *c)
{
	while (c) {
		chunk *n = c->next;
		free(c);
		c = n;
	}
}

void pr_store_free(pr_store *s)
{
	if (!s)
		return;
	free_chunks(s->head);
	free_chunks(s->spare);
	for (int i = 0; i < PR__COUNT; i++) {
		free(s->t[i].v);
		free(s->t[i].slots);
	}
	free(s->replaced.v);
	free(s->dirty.v);
	free(s);
}

void pr_store_reset(pr_store *s)
{
	while (s->head) {
		chunk *c = s->head;
		s->head = c->next;
		if (c->cap == CHUNK_MIN) {
			c->next = s->spare;
			s->spare = c;
		} else {
			free(c);
		}
	}
	for (int i = 0; i < PR__COUNT; i++) {
		s->t[i].n = 0;
		if (s->t[i].slots)
			memset(s->t[i].slots, 0, s->t[i].nslots * sizeof(uint32_t));
	}
	s->replaced.n = 0;
	s->dirty.n = 0;
}

size_t pr_store_count(const pr_store *s, pr_table t)
{
	return s->t[t].n;
}

pr_row *pr_store_row(const pr_store *s, pr_table t, size_t i)
{
	return s->t[t].v[i];
}

size_t pr_store_rows_total(const pr_store *s)
{
	size_t n = 0;
	for (int i = 0; i < PR__COUNT; i++)
		n += s->t[i].n;
	return n;
}

/* --- index ------------------------------------------------------------------------- */

static uint64_t hash_key(const char *const *pk, int npk)
{
	uint64_t h = 1469598103934665603ULL;
	for (int i = 0; i < npk; i++) {
		for (const char *p = pk[i]; *p; p++)
			h = (h ^ (uint8_t)*p) * 1099511628211ULL;
		h = (h ^ 0x1f) * 1099511628211ULL;
	}
	return h;
}

static bool key_eq(const pr_row *r, const char *const *pk, int npk)
{
	for (int i = 0; i < npk; i++)
		if (strcmp(r->v[i], pk[i]) != 0)
			return false;
	return true;
}

/* Slot of pk in rv: the one holding it, or the empty one where it would go. */
static size_t find_slot(const rowvec *rv, const char *const *pk, int npk)
{
	size_t mask = rv->nslots - 1, i = (size_t)hash_key(pk, npk) & mask;
	while (rv->slots[i] && !key_eq(rv->v[rv->slots[i] - 1], pk, npk))
		i = (i + 1) & mask;
	return i;
}

static bool grow(rowvec *rv, int npk)
{
	if (rv->n == rv->cap) {
		size_t cap = rv->cap ? rv->cap * 2 : 256;
		pr_row **v = realloc(rv->v, cap * sizeof(*v));
		if (!v)
			return false;
		rv->v = v;
		rv->cap = cap;
	}
	if (npk > 0 && (rv->n + 1) * 2 > rv->nslots) {
		size_t ns = rv->nslots ? rv->nslots * 2 : 512;
		uint32_t *slots = calloc(ns, sizeof(uint32_t));
		if (!slots)
			return false;
		free(rv->slots);
		rv->slots = slots;
		rv->nslots = ns;
		for (size_t i = 0; i < rv->n; i++)
			rv->slots[find_slot(rv, (const char *const *)rv->v[i]->v, npk)] =
			    (uint32_t)i + 1;
	}
	return true;
}

static void reset_values(const pr_tabledef *td, pr_row *r, int from)
{
	for (int c = from; c < td->ncols; c++)
		r->v[c] = NULL;
}

int pr_row_get(pr_store *s, pr_table t, const char *const *pk, const char *order_id, bool is_new,
	       pr_row **ret_row, char *err, size_t errsz)
{
	const pr_tabledef *td = pr_def(t);
	rowvec *rv = &s->t[t];
	bool append_only = td->stage == NULL;
	if (append_only && !is_new) {
		snprintf(err, errsz, "%s rows are never updated", td->name);
		return -1;
	}
	if (!grow(rv, td->npk)) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	size_t slot = find_slot(rv, pk, td->npk);
	if (rv->slots[slot]) {
		pr_row *r = rv->v[rv->slots[slot] - 1];
		if (r->dead && is_new) { /* a replaced line item that comes back */
			reset_values(td, r, td->npk);
			r->dead = false;
			r->order_id = order_id;
			*ret_row = r;
			return 0;
		}
		if (is_new) {
			snprintf(err, errsz, "%s: duplicate id %s", td->name, pk[0]);
			return -1;
		}
		if (order_id && r->order_id && strcmp(order_id, r->order_id) != 0) {
			snprintf(err, errsz, "%s: %s belongs to another order (%s)", td->name,
				 pk[0], r->order_id);
			return -1;
		}
		*ret_row = r;
		return 0;
	}
	pr_row *r = arena_alloc(s, sizeof(pr_row) + sizeof(char *) * (size_t)td->ncols);
	if (!r) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	r->v = (const char **)(r + 1);
	reset_values(td, r, 0);
	for (int i = 0; i < td->npk; i++)
		if (!(r->v[i] = pr_strdup(s, pk[i], strlen(pk[i])))) {
			snprintf(err, errsz, "out of memory");
			return -1;
		}
	r->order_id = order_id ? pr_strdup(s, order_id, strlen(order_id)) : NULL;
	r->is_new = is_new;
	r->dead = false;
	if (td->order_col >= 0 && td->order_col >= td->npk)
		r->v[td->order_col] = r->order_id;
	rv->v[rv->n++] = r;
	rv->slots[slot] = (uint32_t)rv->n;
	*ret_row = r;
	return 0;
}

bool pr_setn(pr_store *s, pr_row *r, int col, const char *val, size_t n)
{
	if (!val) {
		r->v[col] = NULL;
		return true;
	}
	char *p = pr_strdup(s, val, n);
	r->v[col] = p;
	return p != NULL;
}

bool pr_set(pr_store *s, pr_row *r, int col, const char *val)
{
	return pr_setn(s, r, col, val, val ? strlen(val) : 0);
}

bool pr_setf(pr_store *s, pr_row *r, int col, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return false;
	return pr_setn(s, r, col, buf, (size_t)n);
}

static bool push(pr_store *s, strvec *v, const char *str)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->v[i], str) == 0)
			return true;
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		const char **nv = realloc(v->v, cap * sizeof(*nv));
		if (!nv)
			return false;
		v->v = nv;
		v->cap = cap;
	}
	const char *p = pr_strdup(s, str, strlen(str));
	if (!p)
		return false;
	v->v[v->n++] = p;
	return true;
}

bool pr_replace_items(pr_store *s, const char *order_id)
{
	rowvec *rv = &s->t[PR_LINE_ITEM];
	for (size_t i = 0; i < rv->n; i++)
		if (strcmp(rv->v[i]->order_id, order_id) == 0)
			rv->v[i]->dead = true;
	return push(s, &s->replaced, order_id);
}

bool pr_price_dirty(pr_store *s, const char *order_id)
{
	/* the last few entries catch the common case (an order touched repeatedly) */
	strvec *v = &s->dirty;
	for (size_t i = v->n; i-- > 0 && i + 8 >= v->n;)
		if (strcmp(v->v[i], order_id) == 0)
			return true;
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 256;
		const char **nv = realloc(v->v, cap * sizeof(*nv));
		if (!nv)
			return false;
		v->v = nv;
		v->cap = cap;
	}
	const char *p = pr_strdup(s, order_id, strlen(order_id));
	if (!p)
		return false;
	v->v[v->n++] = p;
	return true;
}

const char *const *pr_replaced(const pr_store *s, size_t *ret_n)
{
	*ret_n = s->replaced.n;
	return s->replaced.v;
}

const char *const *pr_dirty(const pr_store *s, size_t *ret_n)
{
	*ret_n = s->dirty.n;
	return s->dirty.v;
}
