/*
 * proj_db.c - SQL of the projector. A batch's images are written in the table order of
 * pr_def (foreign keys point backwards): new rows are INSERTed, patches UPDATE only
 * the columns they set (coalesce) and must find their row (guarded by order id), append-
 * only tables are COPYed straight in. Nothing here begins, commits or rolls back.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_fsm.h"
#include "proj_apply.h"
#include "pgutil.h"
#include "log.h"
#include "proj_db.h"

#define COPY_CHUNK ((size_t)256 * 1024)

bool pdb_is_poison(const PGresult *res)
{
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	return st && (strncmp(st, "22", 2) == 0 || strncmp(st, "23", 2) == 0);
}

/* Check a result; on failure format the error, set *poison, clear res and return -1. */
static int check(PGconn *c, PGresult *res, const char *what, bool *poison, char *err, size_t errsz)
{
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return 0;
	if (poison)
		*poison = pdb_is_poison(res);
	pgu_format_error(c, res, what, err, errsz);
	PQclear(res);
	return -1;
}

static int exec0(PGconn *c, const char *sql, int n, const char *const *params, const char *what,
		 bool *poison, char *err, size_t errsz)
{
	PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	if (check(c, res, what, poison, err, errsz) < 0)
		return -1;
	PQclear(res);
	return 0;
}

char *pdb_array(const char *const *v, size_t n)
{
	size_t cap = 3;
	for (size_t i = 0; i < n; i++)
		cap += 2 * strlen(v[i]) + 3;
	char *out = malloc(cap), *p = out;
	if (!out)
		return NULL;
	*p++ = '{';
	for (size_t i = 0; i < n; i++) {
		if (i)
			*p++ = ',';
		*p++ = '"';
		for (const char *s = v[i]; *s; s++) {
			if (*s == '"' || *s == '\\')
				*p++ = '\\';
			*p++ = *s;
		}
		*p++ = '"';
	}
	*p++ = '}';
	*p = 0;
	return out;
}

/* --- SQL text per table ------------------------------------------------------------- */

typedef struct sqlbuf {
	char *p;
	size_t n, cap;
} sqlbuf;

static bool sb_add(sqlbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return false;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
	return true;
}

BK_PRINTF(2, 3) static bool sb_printf(sqlbuf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < sizeof(tmp) && sb_add(b, tmp, (size_t)n);
}

const pdb_target pdb_live = {""};

static const char *const schemas[] = {"booking", "ord", "booking_proj"};

char *pdb_map_names(const char *sql, const char *sfx)
{
	sqlbuf b = {0};
	const char *p = sql, *prevword = "";
	size_t pw_len = 0;
	while (*p) {
		bool ident = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_';
		if (!ident) {
			if (!sb_add(&b, p, 1))
				goto oom;
			p++;
			continue;
		}
		const char *s = p;
		while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		       (*p >= '0' && *p <= '9') || *p == '_' || *p == '$')
			p++;
		size_t n = (size_t)(p - s);
		bool before_ident = s > sql && (s[-1] == '_' || s[-1] == '$' || s[-1] == '"' ||
						(s[-1] >= '0' && s[-1] <= '9'));
		bool hit = false;
		for (size_t k = 0; k < sizeof(schemas) / sizeof(*schemas) && !before_ident; k++)
			if (strlen(schemas[k]) == n && strncmp(s, schemas[k], n) == 0)
				hit = *p == '.' ||
				      (pw_len == 6 && strncmp(prevword, "schema", 6) == 0) ||
				      (pw_len == 6 && strncmp(prevword, "exists", 6) == 0);
		if (!sb_add(&b, s, n) || (hit && !sb_add(&b, sfx, strlen(sfx))))
			goto oom;
		prevword = s;
		pw_len = n;
	}
	if (!b.p && !sb_add(&b, "", 0))
		goto oom;
	return b.p;
oom:
	free(b.p);
	return NULL;
}

/* sql for target tg: sql itself for the live model, else a mapped copy (*own, freed by the
 * caller; NULL returned on out of memory). */
static const char *tq(const pdb_target *tg, const char *sql, char **own)
{
	*own = NULL;
	if (!tg || !tg->sfx[0])
		return sql;
	*own = pdb_map_names(sql, tg->sfx);
	return *own;
}

/* exec0 of sql on target tg. */
static int texec(PGconn *c, const pdb_target *tg, const char *sql, int n, const char *const *params,
		 const char *what, bool *poison, char *err, size_t errsz)
{
	char *own;
	const char *q = tq(tg, sql, &own);
	if (!q) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	int rc = exec0(c, q, n, params, what, poison, err, errsz);
	free(own);
	return rc;
}

static bool col_list(sqlbuf *b, const pr_tabledef *td, const char *prefix)
{
	for (int i = 0; i < td->ncols; i++)
		if (!sb_printf(b, "%s%s%s", i ? ", " : "", prefix, td->cols[i].name))
			return false;
	return true;
}

/* "set c = coalesce(<src>c, t.c), ..." for the non-key columns but skip (-1: none).
 * src: "s." or "$" */
static bool set_list(sqlbuf *b, const pr_tabledef *td, bool params, int skip)
{
	bool first = true;
	for (int i = td->npk; i < td->ncols; i++) {
		if (i == td->order_col || i == skip)
			continue;
		char src[96];
		if (params)
			snprintf(src, sizeof(src), "$%d::%s", i + 1, td->cols[i].type);
		else
			snprintf(src, sizeof(src), "s.%s", td->cols[i].name);
		const char *n = td->cols[i].name;
		bool ok =
		    td->cols[i].merge == PR_M_JSON_MERGE
			? sb_printf(b, "%s%s = t.%s || coalesce(%s, '{}'::jsonb)",
				    first ? "" : ", ", n, n, src)
			: sb_printf(b, "%s%s = coalesce(%s, t.%s)", first ? "" : ", ", n, src, n);
		if (!ok)
			return false;
		first = false;
	}
	return true;
}

static bool where_list(sqlbuf *b, const pr_tabledef *td, bool params)
{
	int n = td->npk + (td->order_col >= td->npk ? 1 : 0);
	for (int k = 0; k < n; k++) {
		int i = k < td->npk ? k : td->order_col;
		const char *nm = td->cols[i].name;
		bool ok = params ? sb_printf(b, "%st.%s = $%d", k ? " and " : "", nm, i + 1)
				 : sb_printf(b, "%st.%s = s.%s", k ? " and " : "", nm, nm);
		if (!ok)
			return false;
	}
	return true;
}

/* --- setup --------------------------------------------------------------------------- */

/* PQprepare of sql, mapped for tg. */
static int tprepare(PGconn *c, const pdb_target *tg, const char *name, const char *sql,
		    const char *what, char *err, size_t errsz)
{
	char *own;
	const char *q = tq(tg, sql, &own);
	if (!q) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	PGresult *res = PQprepare(c, name, q, 0, NULL);
	free(own);
	if (check(c, res, what, NULL, err, errsz) < 0)
		return -1;
	PQclear(res);
	return 0;
}

int pdb_setup(PGconn *c, const pdb_target *tg, char *err, size_t errsz)
{
	for (int t = 0; t < PR__COUNT; t++) {
		const pr_tabledef *td = pr_def(t);
		sqlbuf b = {0};
		bool ok = true;
		int rc = 0;
		if (td->stage) {
			ok =
			    sb_printf(&b,
				      "create temp table if not exists %s on commit delete rows as "
				      "select ",
				      td->stage) &&
			    col_list(&b, td, "") &&
			    sb_printf(&b, ", false as _new from %s with no data", td->name);
			if (ok)
				rc = texec(c, tg, b.p, 0, NULL, "create staging table", NULL, err,
					   errsz);
		}
		/* prepared statements of the pipelined path */
		char name[32];
		b.n = 0;
		snprintf(name, sizeof(name), "ins_%d", t);
		ok = ok && sb_printf(&b, "insert into %s (", td->name) && col_list(&b, td, "") &&
		     sb_add(&b, ") values (", 10);
		for (int i = 0; ok && i < td->ncols; i++)
			ok = sb_printf(&b, "%s$%d::%s", i ? ", " : "", i + 1, td->cols[i].type);
		ok = ok && sb_add(&b, ")", 1);
		if (ok && rc == 0)
			rc = tprepare(c, tg, name, b.p, "prepare insert", err, errsz);
		if (ok && rc == 0 && td->stage) {
			b.n = 0;
			snprintf(name, sizeof(name), "upd_%d", t);
			ok = sb_printf(&b, "update %s t set ", td->name) &&
			     set_list(&b, td, true, -1) && sb_add(&b, " where ", 7) &&
			     where_list(&b, td, true);
			if (ok)
				rc = tprepare(c, tg, name, b.p, "prepare update", err, errsz);
		}
		free(b.p);
		if (!ok)
			snprintf(err, errsz, "out of memory");
		if (!ok || rc < 0)
			return -1;
	}
	return 0;
}

int pdb_clear_stage(PGconn *c, char *err, size_t errsz)
{
	sqlbuf b = {0};
	bool ok = sb_add(&b, "truncate ", 9);
	bool first = true;
	for (int t = 0; t < PR__COUNT && ok; t++)
		if (pr_def(t)->stage) {
			ok = sb_printf(&b, "%s%s", first ? "" : ", ", pr_def(t)->stage);
			first = false;
		}
	int rc = ok ? exec0(c, b.p, 0, NULL, "clear staging tables", NULL, err, errsz) : -1;
	if (!ok)
		snprintf(err, errsz, "out of memory");
	free(b.p);
	return rc;
}

/* --- COPY path ----------------------------------------------------------------------- */

/* Append v in COPY text format. */
static bool copy_val(sqlbuf *b, const char *v)
{
	if (!v)
		return sb_add(b, "\\N", 2);
	size_t plain = strcspn(v, "\\\t\n\r");
	if (!v[plain])
		return sb_add(b, v, plain);
	const char *start = v;
	for (const char *p = v + plain; *p; p++) {
		const char *esc = NULL;
		switch (*p) {
		case '\\':
			esc = "\\\\";
			break;
		case '\t':
			esc = "\\t";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		default:
			continue;
		}
		if (!sb_add(b, start, (size_t)(p - start)) || !sb_add(b, esc, 2))
			return false;
		start = p + 1;
	}
	return sb_add(b, start, strlen(start));
}

/* Which rows of a table copy_rows sends. */
typedef enum copy_sel {
	COPY_ALL,   /* every live row; into a staging table with its _new flag */
	COPY_NEW,   /* the new rows, straight into the table */
	COPY_PATCH, /* the patches, into the staging table (_new false) */
} copy_sel;

/* COPY the rows of table t that sel picks into target. prices: NULL, or per row of
 * ord.order the price snapshot to send instead of the image's (NULL: the image's). */
static int copy_rows(PGconn *c, const pdb_target *tg, const pr_store *s, pr_table t,
		     const char *target, copy_sel sel, char *const *prices, bool *poison, char *err,
		     size_t errsz)
{
	bool staged = sel != COPY_NEW;
	const pr_tabledef *td = pr_def(t);
	sqlbuf b = {0};
	if (!sb_printf(&b, "copy %s (", target) || !col_list(&b, td, "") ||
	    !sb_add(&b, staged ? ", _new) from stdin" : ") from stdin",
		    staged ? strlen(", _new) from stdin") : strlen(") from stdin"))) {
		free(b.p);
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	char *own;
	const char *q = tq(tg, b.p, &own);
	PGresult *res = q ? PQexec(c, q) : NULL;
	free(own);
	if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
		int rc = check(c, res, "copy", poison, err, errsz);
		if (rc == 0) /* an unexpected but successful status */
			PQclear(res);
		free(b.p);
		return -1;
	}
	PQclear(res);
	b.n = 0;
	bool ok = true;
	size_t n = pr_store_count(s, t);
	for (size_t i = 0; i < n && ok; i++) {
		const pr_row *r = pr_store_row(s, t, i);
		if (r->dead || (sel == COPY_NEW && !r->is_new) || (sel == COPY_PATCH && r->is_new))
			continue;
		for (int k = 0; k < td->ncols && ok; k++)
			ok = (k == 0 || sb_add(&b, "\t", 1)) &&
			     copy_val(&b,
				      prices && k == OO_PRICE && prices[i] ? prices[i] : r->v[k]);
		if (ok && staged)
			ok = sb_add(&b, r->is_new ? "\tt" : "\tf", 2);
		ok = ok && sb_add(&b, "\n", 1);
		if (ok && b.n >= COPY_CHUNK) {
			ok = PQputCopyData(c, b.p, (int)b.n) == 1;
			b.n = 0;
		}
	}
	if (ok && b.n)
		ok = PQputCopyData(c, b.p, (int)b.n) == 1;
	free(b.p);
	if (PQputCopyEnd(c, ok ? NULL : "projector: out of memory") != 1) {
		pgu_format_error(c, NULL, "copy end", err, errsz);
		return -1;
	}
	int rc = 0;
	while ((res = PQgetResult(c)) != NULL) {
		if (rc == 0 && check(c, res, "copy", poison, err, errsz) < 0) {
			rc = -1; /* check() cleared it */
			continue;
		}
		PQclear(res); /* also the results after a failure: drain them all */
	}
	return ok ? rc : -1;
}

/* --- price snapshots of new orders ------------------------------------------------- */

/* A line item of the batch, for grouping by order in list order. */
typedef struct li_ref {
	const char *order_id;
	long long pos;
	const pr_row *r;
} li_ref;

static int li_ref_cmp(const void *a, const void *b)
{
	const li_ref *x = a, *y = b;
	int c = strcmp(x->order_id, y->order_id);
	if (c)
		return c;
	if (x->pos != y->pos)
		return x->pos < y->pos ? -1 : 1;
	return strcmp(x->r->v[LI_ID], y->r->v[LI_ID]);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int border_cmp(const void *a, const void *b)
{
	const pr_row *x = *(const pr_row *const *)a, *y = *(const pr_row *const *)b;
	return strcmp(x->v[BO_ORDER_ID], y->v[BO_ORDER_ID]);
}

/* An integer column's text (what the images hold for money and quantities). */
static bool int_text(const char *v)
{
	if (!v)
		return false;
	v += *v == '-';
	if (!*v)
		return false;
	for (; *v; v++)
		if (*v < '0' || *v > '9')
			return false;
	return true;
}

static bool json_str(sqlbuf *b, const char *v)
{
	if (!v)
		return sb_add(b, "null", 4);
	if (!sb_add(b, "\"", 1))
		return false;
	const char *start = v;
	for (; *v; v++) {
		unsigned char ch = (unsigned char)*v;
		if (ch != '"' && ch != '\\' && ch >= 0x20)
			continue;
		char esc[8];
		snprintf(esc, sizeof(esc), "\\u%04x", ch);
		if (!sb_add(b, start, (size_t)(v - start)) || !sb_add(b, esc, 6))
			return false;
		start = v + 1;
	}
	return sb_add(b, start, strlen(start)) && sb_add(b, "\"", 1);
}

/* A key and an integer (or null) value; false when v is not integer text (or OOM). */
static bool json_int(sqlbuf *b, const char *key, const char *v)
{
	if (v && !int_text(v))
		return false;
	return sb_printf(b, "\"%s\": ", key) && sb_add(b, v ? v : "null", v ? strlen(v) : 4);
}

/*
 * The price snapshot of an order created in this batch, as pa_price_sql computes it from
 * the written rows (every line item and the booking.order row of a new order are images
 * of this batch): bo its booking.order image, li[0..n) its line items in list order.
 * Malloc'd JSON text (caller frees); NULL when a value is not what the images normally
 * hold (the caller lets PostgreSQL compute it) or on OOM.
 */
static char *price_json(const pr_row *bo, const li_ref *li, size_t n)
{
	sqlbuf b = {0};
	bool ok = sb_add(&b, "{\"currency\": ", 13) && json_str(&b, bo->v[BO_CURRENCY]) &&
		  sb_add(&b, ", \"line_items\": [", 17);
	for (size_t i = 0; i < n && ok; i++) {
		const char *const *v = li[i].r->v;
		ok = sb_add(&b, i ? ", {\"id\": " : "{\"id\": ", i ? 9 : 7) &&
		     json_str(&b, v[LI_ID]) && sb_add(&b, ", \"kind\": ", 10) &&
		     json_str(&b, v[LI_KIND]) && sb_add(&b, ", \"title\": ", 11) &&
		     json_str(&b, v[LI_TITLE]) && sb_add(&b, ", ", 2) &&
		     json_int(&b, "qty", v[LI_QTY]) && sb_add(&b, ", ", 2) &&
		     json_int(&b, "unit_cents", v[LI_UNIT]) && sb_add(&b, ", ", 2) &&
		     json_int(&b, "total_cents", v[LI_TOTAL]) && sb_add(&b, "}", 1);
	}
	ok = ok && sb_add(&b, "], ", 3) && json_int(&b, "subtotal_cents", bo->v[BO_SUBTOTAL]) &&
	     sb_add(&b, ", ", 2) && json_int(&b, "platform_fee_cents", bo->v[BO_FEE]) &&
	     sb_add(&b, ", ", 2) && json_int(&b, "tax_cents", bo->v[BO_TAX]) &&
	     sb_add(&b, ", ", 2) && json_int(&b, "tip_cents", bo->v[BO_TIP]) &&
	     sb_add(&b, ", ", 2) && json_int(&b, "total_cents", bo->v[BO_TOTAL]) &&
	     sb_add(&b, "}", 1);
	if (!ok) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/*
 * Price snapshots of the new ord.order rows of s whose order is dirty, computed here so
 * that those rows can be COPYed straight into ord.order. *ret_prices: one entry per
 * ord.order image (NULL: send the image's value), or NULL when some snapshot cannot be
 * computed here (a dirty new order without a new booking.order image, an unusual value):
 * the rows then go through the staging table and PostgreSQL computes them. Free with
 * prices_free. -1 on OOM.
 */
static int new_prices(const pr_store *s, const char *const *dirty, size_t ndirty,
		      char ***ret_prices)
{
	size_t no = pr_store_count(s, PR_OORDER), nli = pr_store_count(s, PR_LINE_ITEM),
	       nbo = pr_store_count(s, PR_BORDER);
	*ret_prices = NULL;
	char **prices = calloc(no + 1, sizeof(*prices));
	li_ref *li = calloc(nli + 1, sizeof(*li));
	const pr_row **bo = calloc(nbo + 1, sizeof(*bo));
	const char **dv = calloc(ndirty + 1, sizeof(*dv));
	int rc = -1;
	if (!prices || !li || !bo || !dv)
		goto out;
	size_t n = 0;
	for (size_t i = 0; i < nli; i++) {
		const pr_row *r = pr_store_row(s, PR_LINE_ITEM, i);
		if (r->dead)
			continue;
		if (!r->v[LI_ORDER_ID] || !r->v[LI_ID] || !int_text(r->v[LI_POS])) {
			rc = 0; /* not computed here */
			goto out;
		}
		li[n++] = (li_ref){r->v[LI_ORDER_ID], strtoll(r->v[LI_POS], NULL, 10), r};
	}
	nli = n;
	n = 0;
	for (size_t i = 0; i < nbo; i++) {
		const pr_row *r = pr_store_row(s, PR_BORDER, i);
		if (r->is_new && r->v[BO_ORDER_ID])
			bo[n++] = r;
	}
	nbo = n;
	if (nli > 1)
		qsort(li, nli, sizeof(*li), li_ref_cmp);
	if (nbo > 1)
		qsort(bo, nbo, sizeof(*bo), border_cmp);
	if (ndirty)
		memcpy(dv, dirty, ndirty * sizeof(*dv));
	if (ndirty > 1)
		qsort(dv, ndirty, sizeof(*dv), str_cmp);
	for (size_t i = 0; i < no; i++) {
		const pr_row *r = pr_store_row(s, PR_OORDER, i);
		const char *id = r->v[OO_ORDER_ID];
		if (!r->is_new || !id || !bsearch(&id, dv, ndirty, sizeof(*dv), str_cmp))
			continue;
		pr_row key_row = {0};
		const char *kv[BO__N] = {0};
		kv[BO_ORDER_ID] = id;
		key_row.v = kv;
		const pr_row *key = &key_row;
		const pr_row *const *b = bsearch(&key, bo, nbo, sizeof(*bo), border_cmp);
		if (!b) {
			rc = 0;
			goto out;
		}
		size_t lo = 0, hi = nli; /* the first line item of the order */
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (strcmp(li[mid].order_id, id) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		size_t end = lo;
		while (end < nli && strcmp(li[end].order_id, id) == 0)
			end++;
		if (!(prices[i] = price_json(*b, li + lo, end - lo))) {
			rc = 0; /* an unusual value, or OOM: PostgreSQL computes them */
			goto out;
		}
	}
	*ret_prices = prices;
	prices = NULL;
	rc = 0;
out:
	if (prices)
		for (size_t i = 0; i < no; i++)
			free(prices[i]);
	free(prices);
	free(li);
	free(bo);
	free(dv);
	return rc;
}

static void prices_free(char **prices, size_t n)
{
	for (size_t i = 0; prices && i < n; i++)
		free(prices[i]);
	free(prices);
}

/* The price snapshot of the order whose id is in column `id` (pa_price_sql's value). */
#define PRICE_OF(id)                                                                               \
	"(select jsonb_build_object('currency', b.currency, 'line_items', "                        \
	"coalesce((select jsonb_agg(jsonb_build_object('id', li.id, 'kind', li.kind, 'title', "    \
	"li.title, 'qty', li.qty, 'unit_cents', li.unit_cents, 'total_cents', li.total_cents) "    \
	"order by li.list_pos, li.id) from booking.line_item li where li.order_id = b.order_id), " \
	"'[]'::jsonb), 'subtotal_cents', b.subtotal_cents, 'platform_fee_cents', "                 \
	"b.platform_fee_cents, 'tax_cents', b.tax_cents, 'tip_cents', b.tip_cents, "               \
	"'total_cents', b.total_cents) from booking.order b where b.order_id = " id ")"

/* The orders of $1 whose price is recomputed, joined to the staged ord.order rows. */
#define DIRTY_JOIN " left join (select distinct unnest($1::text[]) as id) d on d.id = s.order_id"

/*
 * Rows of table t: inserted (new) and patched (must exist). For ord.order, dirty is the
 * text[] of orders whose price snapshot is recomputed in the same statements (after the
 * order's money and line items were written), rather than by a second UPDATE of the rows.
 */
static int write_staged(PGconn *c, const pdb_target *tg, const pr_store *s, pr_table t,
			const char *dirty, const char *const *dirty_ids, size_t ndirty,
			bool *poison, char *err, size_t errsz)
{
	const pr_tabledef *td = pr_def(t);
	size_t n = pr_store_count(s, t), n_new = 0, n_patch = 0;
	for (size_t i = 0; i < n; i++) {
		const pr_row *r = pr_store_row(s, t, i);
		if (r->is_new)
			n_new++;
		else
			n_patch++;
	}
	if (n == 0)
		return 0;
	/* New rows go straight into the table (new ord.order rows with the price snapshots
	 * computed here, or, when that cannot be done, through the staging table with
	 * PostgreSQL computing them); patches go through the staging table. */
	bool price = t == PR_OORDER && dirty;
	char **prices = NULL;
	if (price && n_new && new_prices(s, dirty_ids, ndirty, &prices) < 0) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	bool stage_new = price && n_new && !prices;
	int crc = 0;
	if (!stage_new && n_new)
		crc = copy_rows(c, tg, s, t, td->name, COPY_NEW, prices, poison, err, errsz);
	prices_free(prices, n);
	if (crc == 0 && (stage_new || n_patch))
		crc = copy_rows(c, tg, s, t, td->stage, stage_new ? COPY_ALL : COPY_PATCH, NULL,
				poison, err, errsz);
	if (crc < 0)
		return -1;
	const char *p[1] = {dirty};
	sqlbuf b = {0};
	int rc = 0;
	if (stage_new) {
		bool ok = sb_printf(&b, "insert into %s (", td->name) && col_list(&b, td, "") &&
			  sb_add(&b, ") select ", 9);
		for (int i = 0; ok && i < td->ncols; i++) {
			ok = sb_add(&b, i ? ", " : "", i ? 2 : 0);
			if (ok && price && i == OO_PRICE)
				ok = sb_add(
				    &b,
				    "case when d.id is null then s.price_snapshot else "
				    "coalesce(" PRICE_OF("s.order_id") ", s.price_snapshot) end",
				    strlen("case when d.id is null then s.price_snapshot else "
					   "coalesce(" PRICE_OF(
					       "s.order_id") ", s.price_snapshot) end"));
			else if (ok)
				ok = sb_printf(&b, "s.%s", td->cols[i].name);
		}
		ok = ok &&
		     sb_printf(&b, " from %s s%s where s._new", td->stage, price ? DIRTY_JOIN : "");
		if (!ok || texec(c, tg, b.p, price ? 1 : 0, p, td->name, poison, err, errsz) < 0)
			rc = -1;
	}
	if (rc == 0 && n_patch) {
		b.n = 0;
		bool ok = sb_printf(&b, "update %s t set ", td->name) &&
			  set_list(&b, td, false, price ? OO_PRICE : -1);
		if (ok && price)
			ok = sb_add(
			    &b,
			    ", price_snapshot = case when d.id is null then "
			    "coalesce(s.price_snapshot, t.price_snapshot) else coalesce(" PRICE_OF(
				"t.order_id") ", s.price_snapshot, t.price_snapshot) end",
			    strlen(", price_snapshot = case when d.id is null then "
				   "coalesce(s.price_snapshot, t.price_snapshot) else "
				   "coalesce(" PRICE_OF(
				       "t.order_id") ", s.price_snapshot, t.price_snapshot) end"));
		ok = ok &&
		     sb_printf(&b, " from %s s%s where not s._new and ", td->stage,
			       price ? DIRTY_JOIN : "") &&
		     where_list(&b, td, false);
		char *own = NULL;
		const char *q = ok ? tq(tg, b.p, &own) : NULL;
		PGresult *res =
		    q ? PQexecParams(c, q, price ? 1 : 0, NULL, p, NULL, NULL, 0) : NULL;
		free(own);
		if (check(c, res, td->name, poison, err, errsz) < 0) {
			rc = -1;
		} else {
			long got = strtol(PQcmdTuples(res), NULL, 10);
			PQclear(res);
			if (got != (long)n_patch) {
				*poison = true;
				snprintf(
				    err, errsz,
				    "%s: %zu row(s) to update, %ld found (an event refers to a "
				    "row the read model does not have)",
				    td->name, n_patch, got);
				rc = -1;
			}
		}
	}
	free(b.p);
	return rc;
}

/* The COPY path's table order: the write order of pr_def with booking.line_item moved
 * before ord.order, whose price snapshots are computed from the written line items;
 * foreign keys still point backwards (line items point at booking.order). */
_Static_assert(PR_BORDER < PR_OORDER && PR_OORDER < PR_LINE_ITEM,
	       "booking.order, then ord.order, then booking.line_item in write order");
static pr_table copy_order(int k)
{
	if (k == PR_OORDER)
		return PR_LINE_ITEM;
	if (k > PR_OORDER && k <= PR_LINE_ITEM)
		return (pr_table)(k - 1);
	return (pr_table)k;
}

static int write_copy(PGconn *c, const pdb_target *tg, const pr_store *s, const char *dirty,
		      const char *const *dirty_ids, size_t ndirty, bool *poison, char *err,
		      size_t errsz)
{
	for (int k = 0; k < PR__COUNT; k++) {
		pr_table t = copy_order(k);
		const pr_tabledef *td = pr_def(t);
		int rc;
		if (td->stage)
			rc =
			    write_staged(c, tg, s, t, dirty, dirty_ids, ndirty, poison, err, errsz);
		else
			rc = pr_store_count(s, t) ? copy_rows(c, tg, s, t, td->name, COPY_NEW, NULL,
							      poison, err, errsz)
						  : 0;
		if (rc < 0)
			return -1;
	}
	return 0;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ULL;
	return h;
}

/*
 * Of the dirty orders, those without an ord.order image in s (their snapshot is not
 * recomputed by write_staged): a text[] literal, malloc'd; "" when there are none.
 */
static char *dirty_unstaged(const pr_store *s, const char *const *ids, size_t n)
{
	size_t no = pr_store_count(s, PR_OORDER), ns = 16;
	while (ns < 2 * no)
		ns *= 2;
	const char **set = calloc(ns, sizeof(*set));
	const char **left = calloc(n + 1, sizeof(*left));
	char *out = NULL;
	if (!set || !left)
		goto out;
	for (size_t i = 0; i < no; i++) {
		const char *id = pr_store_row(s, PR_OORDER, i)->v[OO_ORDER_ID];
		size_t h = (size_t)fnv1a(id) & (ns - 1);
		while (set[h] && strcmp(set[h], id) != 0)
			h = (h + 1) & (ns - 1);
		set[h] = id;
	}
	size_t nl = 0;
	for (size_t i = 0; i < n; i++) {
		size_t h = (size_t)fnv1a(ids[i]) & (ns - 1);
		while (set[h] && strcmp(set[h], ids[i]) != 0)
			h = (h + 1) & (ns - 1);
		if (!set[h])
			left[nl++] = ids[i];
	}
	out = nl ? pdb_array(left, nl) : strdup("");
out:
	free(set);
	free(left);
	return out;
}

/* --- pipeline path ------------------------------------------------------------------- */

#define PIPE_CHUNK 1000 /* statements between syncs: the server's replies must not pile up */

typedef struct pipe_ref {
	int t;
	const pr_row *r;
} pipe_ref;

/* Read the results of n statements then the sync. 0, or -1 (first failure). */
static int pipe_collect(PGconn *c, const pipe_ref *refs, size_t n, bool *poison, char *err,
			size_t errsz)
{
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		PGresult *res = PQgetResult(c);
		if (!res) {
			if (rc == 0) {
				pgu_format_error(c, NULL, "pipeline", err, errsz);
				rc = -1;
			}
			break;
		}
		if (rc == 0 && check(c, res, pr_def(refs[i].t)->name, poison, err, errsz) < 0) {
			rc = -1;
		} else {
			if (rc == 0 && !refs[i].r->is_new && strcmp(PQcmdTuples(res), "1") != 0) {
				*poison = true;
				snprintf(
				    err, errsz,
				    "%s: row %s to update not found (an event refers to a row the "
				    "read model does not have)",
				    pr_def(refs[i].t)->name, refs[i].r->v[0]);
				rc = -1;
			}
			PQclear(res);
		}
		PGresult *nul = PQgetResult(c); /* the NULL that ends each statement's results */
		if (nul)
			PQclear(nul);
	}
	for (;;) { /* up to the sync */
		PGresult *res = PQgetResult(c);
		if (!res) {
			if (PQstatus(c) == CONNECTION_BAD) {
				if (rc == 0)
					pgu_format_error(c, NULL, "pipeline", err, errsz);
				return -1;
			}
			continue;
		}
		ExecStatusType st = PQresultStatus(res);
		PQclear(res);
		if (st == PGRES_PIPELINE_SYNC)
			break;
	}
	return rc;
}

static int write_pipeline(PGconn *c, const pdb_target *tg, const pr_store *s, bool *poison,
			  char *err, size_t errsz)
{
	if (texec(c, tg, "set constraints ord.card_superseded_by_fkey deferred", 0, NULL,
		  "defer constraint", poison, err, errsz) < 0)
		return -1;
	pipe_ref *refs = malloc(PIPE_CHUNK * sizeof(*refs));
	if (!refs || PQenterPipelineMode(c) != 1) {
		free(refs);
		pgu_format_error(c, NULL, "pipeline mode", err, errsz);
		return -1;
	}
	size_t n = 0;
	int rc = 0;
	for (int t = 0; t <= PR__COUNT && rc == 0; t++) {
		size_t cnt = t < PR__COUNT ? pr_store_count(s, (pr_table)t) : 0;
		for (size_t i = 0; i <= cnt && rc == 0; i++) {
			bool last = t == PR__COUNT;
			if (i < cnt) {
				const pr_row *r = pr_store_row(s, (pr_table)t, i);
				if (r->dead)
					continue;
				char name[32];
				snprintf(name, sizeof(name), "%s_%d", r->is_new ? "ins" : "upd", t);
				if (PQsendQueryPrepared(c, name, pr_def(t)->ncols, r->v, NULL, NULL,
							0) != 1) {
					pgu_format_error(c, NULL, "pipeline send", err, errsz);
					rc = -1;
					break;
				}
				refs[n++] = (pipe_ref){t, r};
			}
			if (n == PIPE_CHUNK || (last && n > 0)) {
				if (PQpipelineSync(c) != 1) {
					pgu_format_error(c, NULL, "pipeline sync", err, errsz);
					rc = -1;
					break;
				}
				rc = pipe_collect(c, refs, n, poison, err, errsz);
				n = 0;
			}
			if (last)
				break;
		}
	}
	free(refs);
	if (PQexitPipelineMode(c) != 1 && rc == 0) {
		pgu_format_error(c, NULL, "pipeline exit", err, errsz);
		rc = -1;
	}
	/* the deferred reference is checked now, inside the write */
	if (rc == 0)
		rc = exec0(c, "set constraints all immediate", 0, NULL, "check constraints", poison,
			   err, errsz);
	return rc;
}

int pdb_write(PGconn *c, const pdb_target *tg, const pr_store *s, pdb_path path, bool *ret_poison,
	      char *err, size_t errsz)
{
	bool poison = false;
	size_t n;
	int rc = 0;
	const char *const *ids = pr_replaced(s, &n);
	if (n) {
		char *arr = pdb_array(ids, n);
		const char *p[1] = {arr};
		rc = arr ? texec(c, tg,
				 "delete from booking.line_item where order_id = any($1::text[])",
				 1, p, "replace line items", &poison, err, errsz)
			 : -1;
		free(arr);
	}
	const char *const *dirty = pr_dirty(s, &n);
	char *darr = n ? pdb_array(dirty, n) : NULL;
	if (rc == 0 && n && !darr) {
		snprintf(err, errsz, "out of memory");
		rc = -1;
	}
	if (rc == 0)
		rc = path == PDB_PIPELINE
			 ? write_pipeline(c, tg, s, &poison, err, errsz)
			 : write_copy(c, tg, s, darr, dirty, n, &poison, err, errsz);
	free(darr);
	if (rc == 0 && n) {
		/* the pipeline path recomputes every dirty snapshot here; the COPY path only
		 * those of orders it wrote no ord.order image for (normally none) */
		char *arr =
		    path == PDB_PIPELINE ? pdb_array(dirty, n) : dirty_unstaged(s, dirty, n);
		const char *p[1] = {arr};
		rc = !arr ? -1
		     : *arr
			 ? texec(c, tg, pa_price_sql, 1, p, "price snapshots", &poison, err, errsz)
			 : 0;
		if (!arr)
			snprintf(err, errsz, "out of memory");
		free(arr);
	}
	*ret_poison = poison;
	return rc;
}

/* --- bookkeeping ----------------------------------------------------------------------- */

static int unhex_col(const char *s, uint8_t out[BK_HASH_LEN])
{
	/* bytea text output: \x followed by hex */
	if (!s || strncmp(s, "\\x", 2) != 0)
		return -1;
	return bk_unhex(s + 2, strlen(s + 2), out, BK_HASH_LEN);
}

int pdb_load_heads(PGconn *c, const char *const *ids, size_t n, pdb_head *ret, char *err,
		   size_t errsz)
{
	/* One index probe per id and table (lateral ... limit 1: plain joins get a hash join
	 * over the whole of ord.order_lock for a few thousand ids, mostly of new orders). */
	static const char sql[] =
	    "select k.i, coalesce(l.version, 0), t.hash, o.status, o.buyer_user_id, "
	    "o.provider_user_id, s.seq, s.hash, o.currency "
	    "from unnest($1::text[]) with ordinality as k(id, i) "
	    "left join lateral (select l.version from ord.order_lock l "
	    "  where l.order_id = k.id limit 1) l on true "
	    "left join lateral (select t.hash from ord.timeline_event t "
	    "  where t.order_id = k.id and t.seq = l.version limit 1) t on true "
	    "left join lateral (select o.status, o.buyer_user_id, o.provider_user_id, o.currency "
	    "  from booking.order o where o.order_id = k.id limit 1) o on true "
	    "left join lateral (select q.seq, q.hash from booking_proj.quarantine q "
	    "  where q.order_id = k.id and q.status = 'skipped' and q.hash is not null "
	    "  order by q.seq desc limit 1) s on true";
	char *arr = pdb_array(ids, n);
	if (!arr) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	const char *p[1] = {arr};
	PGresult *res = PQexecParams(c, sql, 1, NULL, p, NULL, NULL, 0);
	free(arr);
	if (check(c, res, "load order heads", NULL, err, errsz) < 0)
		return -1;
	for (int r = 0; r < PQntuples(res); r++) {
		long i = strtol(PQgetvalue(res, r, 0), NULL, 10) - 1;
		if (i < 0 || (size_t)i >= n)
			continue;
		pdb_head *h = &ret[i];
		memset(h, 0, sizeof(*h));
		h->seq = strtoll(PQgetvalue(res, r, 1), NULL, 10);
		if (h->seq > 0 && unhex_col(PQgetvalue(res, r, 2), h->hash) < 0)
			memset(h->hash, 0xff,
			       BK_HASH_LEN); /* no event at the head: nothing links */
		h->status = PQgetisnull(res, r, 3) ? -1
						   : bk_status_from(PQgetvalue(res, r, 3),
								    strlen(PQgetvalue(res, r, 3)));
		snprintf(h->buyer, sizeof(h->buyer), "%s", PQgetvalue(res, r, 4));
		snprintf(h->provider, sizeof(h->provider), "%s", PQgetvalue(res, r, 5));
		snprintf(h->currency, sizeof(h->currency), "%s", PQgetvalue(res, r, 8));
		if (!PQgetisnull(res, r, 6)) {
			int64_t sk = strtoll(PQgetvalue(res, r, 6), NULL, 10);
			if (sk > h->seq && unhex_col(PQgetvalue(res, r, 7), h->hash) == 0)
				h->seq = sk;
		}
	}
	PQclear(res);
	return 0;
}

int pdb_hash_at(PGconn *c, const char *order_id, int64_t seq, uint8_t ret_hash[BK_HASH_LEN],
		bool *ret_found, char *err, size_t errsz)
{
	char sq[24];
	snprintf(sq, sizeof(sq), "%lld", (long long)seq);
	const char *p[2] = {order_id, sq};
	PGresult *res = PQexecParams(
	    c, "select hash from ord.timeline_event where order_id = $1 and seq = $2::bigint", 2,
	    NULL, p, NULL, NULL, 0);
	if (check(c, res, "hash at seq", NULL, err, errsz) < 0)
		return -1;
	*ret_found = PQntuples(res) == 1 && unhex_col(PQgetvalue(res, 0, 0), ret_hash) == 0;
	PQclear(res);
	return 0;
}

int pdb_checkpoints(PGconn *c, const char *topic, const int32_t *parts, size_t n, bool lock,
		    int64_t *ret_next, char *err, size_t errsz)
{
	sqlbuf b = {0};
	bool ok = sb_add(&b, "{", 1);
	for (size_t i = 0; i < n && ok; i++)
		ok = sb_printf(&b, "%s%d", i ? "," : "", parts[i]);
	ok = ok && sb_add(&b, "}", 1);
	if (!ok) {
		free(b.p);
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	const char *p[2] = {topic, b.p};
	PGresult *res = PQexecParams(
	    c,
	    lock ? "select partition, next_offset from booking_proj.checkpoint where topic = $1 "
		   "and partition = any($2::int[]) order by partition for update"
		 : "select partition, next_offset from booking_proj.checkpoint where topic = $1 "
		   "and partition = any($2::int[])",
	    2, NULL, p, NULL, NULL, 0);
	free(b.p);
	if (check(c, res, "read checkpoints", NULL, err, errsz) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		ret_next[i] = -1;
	for (int r = 0; r < PQntuples(res); r++) {
		int32_t part = (int32_t)strtol(PQgetvalue(res, r, 0), NULL, 10);
		for (size_t i = 0; i < n; i++)
			if (parts[i] == part)
				ret_next[i] = strtoll(PQgetvalue(res, r, 1), NULL, 10);
	}
	PQclear(res);
	return 0;
}

/* One bigint of a one-row result (0 when NULL), or -1. */
static int query_int(PGconn *c, const char *sql, const char *what, int64_t *ret, char *err,
		     size_t errsz)
{
	PGresult *res = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0);
	if (check(c, res, what, NULL, err, errsz) < 0)
		return -1;
	*ret = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)
		   ? strtoll(PQgetvalue(res, 0, 0), NULL, 10)
		   : 0;
	PQclear(res);
	return 0;
}

int pdb_model_generation(PGconn *c, bool *io_present, int64_t *ret_gen, char *err, size_t errsz)
{
	*ret_gen = 0;
	if (!*io_present) {
		int64_t present;
		if (query_int(c, "select (to_regclass('booking_proj.model') is not null)::int",
			      "look for booking_proj.model", &present, err, errsz) < 0)
			return -1;
		if (!present)
			return 0;
		*io_present = true;
	}
	return query_int(c, "select max(generation) from booking_proj.model",
			 "read the model generation", ret_gen, err, errsz);
}

int pdb_checkpoint_set(PGconn *c, const char *topic, int32_t part, int64_t next, char *err,
		       size_t errsz)
{
	char ps[16], ns[24];
	snprintf(ps, sizeof(ps), "%d", part);
	snprintf(ns, sizeof(ns), "%lld", (long long)next);
	const char *p[3] = {topic, ps, ns};
	return exec0(
	    c,
	    "insert into booking_proj.checkpoint (topic, partition, next_offset, updated_at) "
	    "values ($1, $2::int, $3::bigint, now()) on conflict (topic, partition) do "
	    "update set next_offset = excluded.next_offset, updated_at = now()",
	    3, p, "write checkpoint", NULL, err, errsz);
}

int pdb_checkpoints_set(PGconn *c, const pdb_target *tg, const char *topic, const int32_t *parts,
			const int64_t *next, size_t n, char *err, size_t errsz)
{
	sqlbuf a = {0}, b = {0};
	bool ok = sb_add(&a, "{", 1) && sb_add(&b, "{", 1);
	for (size_t i = 0; i < n && ok; i++)
		ok = sb_printf(&a, "%s%d", i ? "," : "", parts[i]) &&
		     sb_printf(&b, "%s%lld", i ? "," : "", (long long)next[i]);
	ok = ok && sb_add(&a, "}", 1) && sb_add(&b, "}", 1);
	int rc = -1;
	if (!ok) {
		snprintf(err, errsz, "out of memory");
	} else {
		const char *p[3] = {topic, a.p, b.p};
		rc =
		    texec(c, tg,
			  "insert into booking_proj.checkpoint (topic, partition, next_offset, "
			  "updated_at) select $1, p, o, now() from unnest($2::int[], $3::bigint[]) "
			  "as u(p, o) on conflict (topic, partition) do update set next_offset = "
			  "excluded.next_offset, updated_at = now()",
			  3, p, "write checkpoints", NULL, err, errsz);
	}
	free(a.p);
	free(b.p);
	return rc;
}

int pdb_rules_put(PGconn *c, const pdb_target *tg, const char *sp_id, const bk_profile_rules *p,
		  char *err, size_t errsz)
{
	const char *d[1] = {sp_id};
	if (texec(c, tg, "delete from booking.autoaccept_rule where service_profile_id = $1", 1, d,
		  "delete rules", NULL, err, errsz) < 0)
		return -1;
	for (uint32_t i = 0; p && i < p->n; i++) {
		const bk_rule *r = &p->rules[i];
		char minp[24], mask[24], dist[48];
		snprintf(minp, sizeof(minp), "%lld", (long long)r->min_price_cents);
		snprintf(mask, sizeof(mask), "%lld", (long long)r->weekday_mask);
		snprintf(dist, sizeof(dist), "%.15g", r->max_distance_mi);
		const char *v[6] = {r->rule_id,
				    sp_id,
				    r->has_min_price ? minp : NULL,
				    r->has_weekday_mask ? mask : NULL,
				    r->has_max_distance ? dist : NULL,
				    r->allow_ib ? "true" : "false"};
		if (texec(
			c, tg,
			"insert into booking.autoaccept_rule (rule_id, service_profile_id, "
			"min_price_cents, weekday_mask, max_distance_mi, allow_ib) values ($1, $2, "
			"$3::int, $4::int, $5::numeric, $6::boolean) on conflict (rule_id) do "
			"update "
			"set service_profile_id = excluded.service_profile_id, min_price_cents = "
			"excluded.min_price_cents, weekday_mask = excluded.weekday_mask, "
			"max_distance_mi = excluded.max_distance_mi, allow_ib = excluded.allow_ib",
			6, v, "write rule", NULL, err, errsz) < 0)
			return -1;
	}
	return 0;
}

/* --- reports of planned items ---------------------------------------------------------- */

static void hexhash(const uint8_t *h, char out[2 * BK_HASH_LEN + 3])
{
	out[0] = '\\';
	out[1] = 'x';
	bk_hex(h, BK_HASH_LEN, out + 2);
}

int pdb_report_item(PGconn *c, const pdb_target *tg, const char *topic, const pp_item *it,
		    msgpack_sbuffer *sb, char *err, size_t errsz)
{
	if (it->qid || it->action == PP_APPLY || it->action == PP_DUP)
		return 0;
	const void *bytes;
	size_t nb;
	if (pp_item_bytes(it, sb, &bytes, &nb) < 0) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	char ps[16], os[24], ss[24], h[2 * BK_HASH_LEN + 3] = "", ph[2 * BK_HASH_LEN + 3] = "";
	snprintf(ps, sizeof(ps), "%d", it->part);
	snprintf(os, sizeof(os), "%lld", (long long)it->offset);
	snprintf(ss, sizeof(ss), "%lld", it->e ? (long long)it->e->seq : 0LL);
	if (it->e) {
		hexhash(it->e->hash, h);
		hexhash(it->e->prev_hash, ph);
	}
	const char *oid = pp_order_id(it), *eid = it->e ? it->e->event_id : NULL;
	const char *seq = it->e ? ss : NULL;
	long long seqv = it->e ? (long long)it->e->seq : -1LL;
	const char *q, *what;
	const char *v[10];
	int np, bi;
	if (it->action == PP_REJECT) {
		const char *vname = bk_chain_verdict_name((bk_chain_verdict)it->verdict);
		q = "insert into booking_proj.rejected (order_id, topic, partition, record_offset, "
		    "seq, event_id, verdict, reason, record) values ($1, $2, $3::int, $4::bigint, "
		    "$5::bigint, $6, $7, $8, $9::bytea) on conflict do nothing";
		what = "record rejected";
		const char *rv[9] = {oid, topic, ps, os, seq, eid, vname, it->reason, bytes};
		memcpy(v, rv, sizeof(rv));
		np = 9;
		bi = 8;
		bk_logf(BK_LOG_WARN, "event rejected: not applied",
			"verdict=%s topic=%s partition=%d offset=%lld order_id=%s seq=%lld "
			"reason=\"%s\"",
			vname, topic, it->part, (long long)it->offset, oid, seqv, it->reason);
	} else if (it->action == PP_FORK && it->e) {
		q = "insert into booking_proj.fork (order_id, topic, partition, record_offset, "
		    "seq, "
		    "event_id, hash, prev_hash, event) values ($1, $2, $3::int, $4::bigint, "
		    "$5::bigint, $6, $7::bytea, $8::bytea, $9::bytea) on conflict do nothing";
		what = "record fork";
		const char *fv[9] = {oid, topic, ps, os, ss, eid, h, ph, bytes};
		memcpy(v, fv, sizeof(fv));
		np = 9;
		bi = 8;
		bk_logf(BK_LOG_WARN, "fork: event not applied",
			"topic=%s partition=%d offset=%lld order_id=%s seq=%lld event_id=%s", topic,
			it->part, (long long)it->offset, oid, seqv, eid);
	} else if (it->action == PP_QUAR || it->action == PP_HELD) {
		q = "insert into booking_proj.quarantine (order_id, topic, partition, "
		    "record_offset, "
		    "seq, event_id, reason, event, status, hash, prev_hash) values ($1, $2, "
		    "$3::int, "
		    "$4::bigint, $5::bigint, $6, $7, $8::bytea, 'held', $9::bytea, $10::bytea) on "
		    "conflict do nothing";
		what = "record quarantine";
		const char *qv[10] = {oid,
				      topic,
				      ps,
				      os,
				      seq,
				      eid,
				      it->reason,
				      bytes,
				      it->e ? h : NULL,
				      it->e ? ph : NULL};
		memcpy(v, qv, sizeof(qv));
		np = 10;
		bi = 7;
		if (it->action == PP_QUAR)
			bk_logf(BK_LOG_WARN, "order quarantined",
				"topic=%s partition=%d offset=%lld order_id=%s seq=%lld "
				"reason=\"%s\"",
				topic, it->part, (long long)it->offset, oid, seqv, it->reason);
	} else {
		return 0;
	}
	int lens[10] = {0}, fmts[10] = {0};
	lens[bi] = (int)nb;
	fmts[bi] = 1;
	char *own;
	const char *sql = tq(tg, q, &own);
	PGresult *r = sql ? PQexecParams(c, sql, np, NULL, v, lens, fmts, 0) : NULL;
	free(own);
	if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
		pgu_format_error(c, r, what, err, errsz);
		PQclear(r);
		return -1;
	}
	PQclear(r);
	return 0;
}

int pdb_rules_record(PGconn *c, const pdb_target *tg, const char *topic, int32_t partition,
		     int64_t offset, const void *key, size_t key_len, const void *value, size_t len,
		     char *err, size_t errsz)
{
	char sp[BK_ID_MAX] = "";
	if (!key || key_len == 0 || key_len >= sizeof(sp)) {
		bk_logf(BK_LOG_ERROR, "rules record without a usable key, skipped",
			"topic=%s partition=%d offset=%lld", topic, partition, (long long)offset);
		return 1;
	}
	memcpy(sp, key, key_len);
	bk_profile_rules pr;
	memset(&pr, 0, sizeof(pr));
	char derr[256];
	if (value && len && bk_codec_rules_decode(value, len, &pr, derr, sizeof(derr)) < 0) {
		bk_logf(BK_LOG_ERROR, "undecodable rules record, skipped",
			"topic=%s partition=%d offset=%lld service_profile_id=%s err=\"%s\"", topic,
			partition, (long long)offset, sp, derr);
		return 1;
	}
	int rc = pdb_rules_put(c, tg, sp, &pr, err, errsz);
	bk_profile_rules_clear(&pr);
	return rc;
}
