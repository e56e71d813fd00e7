/*
 * migrate.c - the SQL migration runner (see migrate.h).
 * Invariant: a migration's effects and its schema_migrations row commit together or not
 * at all, and nothing is applied while any applied migration's file differs from what was
 * recorded. Output only through the caller's callbacks.
 */
#include "migrate.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#define MIG_MAX_FILE_BYTES (64u * 1024u * 1024u)

static const char *const rc_names[] = {
#define RC_NAME(sym, name, msg) [MIGRATE_##sym] = name,
    MIGRATE_RC_MAP(RC_NAME)
#undef RC_NAME
};
static const char *const rc_msgs[] = {
#define RC_MSG(sym, name, msg) [MIGRATE_##sym] = msg,
    MIGRATE_RC_MAP(RC_MSG)
#undef RC_MSG
};
_Static_assert(sizeof(rc_names) / sizeof(rc_names[0]) == MIGRATE__COUNT, "rc names");

static const char *const state_names[] = {
    [MIGRATE_ST_APPLIED] = "applied",	      [MIGRATE_ST_PENDING] = "pending",
    [MIGRATE_ST_APPLIED_NOW] = "applied_now", [MIGRATE_ST_CHANGED] = "changed",
    [MIGRATE_ST_MISSING] = "missing",	      [MIGRATE_ST_FAILED] = "failed",
};
_Static_assert(sizeof(state_names) / sizeof(state_names[0]) == MIGRATE_ST__COUNT, "states");

const char *migrate_rc_name(migrate_rc rc)
{
	return (unsigned)rc < MIGRATE__COUNT ? rc_names[rc] : "unknown";
}

const char *migrate_rc_msg(migrate_rc rc)
{
	return (unsigned)rc < MIGRATE__COUNT ? rc_msgs[rc] : "unknown result";
}

const char *migrate_state_name(migrate_state st)
{
	return (unsigned)st < MIGRATE_ST__COUNT ? state_names[st] : "unknown";
}

/* A file of the directory. */
typedef struct mig_file {
	char *file;	 /* "013_booking_core.sql" */
	char *version;	 /* "013" */
	char *name;	 /* "booking_core" */
	uint64_t num;	 /* 13 */
	char *sql;	 /* contents, NUL-terminated */
	size_t len;	 /* bytes of sql */
	char sha256[65]; /* hex */
	int applied;	 /* a schema_migrations row matches */
} mig_file;

/* A row of schema_migrations. */
typedef struct mig_row {
	char *version, *name, *sha256, *applied_at;
	uint64_t num;
	mig_file *file; /* the file with the same version, or NULL */
} mig_row;

typedef struct mig_set {
	mig_file *files;
	size_t nfiles;
	mig_row *rows;
	size_t nrows;
} mig_set;

static void set_free(mig_set *s)
{
	for (size_t i = 0; i < s->nfiles; i++) {
		free(s->files[i].file);
		free(s->files[i].version);
		free(s->files[i].name);
		free(s->files[i].sql);
	}
	for (size_t i = 0; i < s->nrows; i++) {
		free(s->rows[i].version);
		free(s->rows[i].name);
		free(s->rows[i].sha256);
		free(s->rows[i].applied_at);
	}
	free(s->files);
	free(s->rows);
	memset(s, 0, sizeof(*s));
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/*
 * Split "NNN_name.sql" into version digits and name. Returns 0, or -1 when the name does
 * not have that shape. The version must fit in 18 digits.
 */
static int parse_name(const char *fn, size_t *ret_vlen, size_t *ret_nlen)
{
	size_t n = strlen(fn), v = 0;

	while (isdigit((unsigned char)fn[v]))
		v++;
	if (v == 0 || v > 18 || fn[v] != '_' || n < v + 1 + 1 + 4 ||
	    strcmp(fn + n - 4, ".sql") != 0)
		return -1;
	for (size_t i = v + 1; i < n - 4; i++) {
		unsigned char c = (unsigned char)fn[i];
		if (!isalnum(c) && c != '_' && c != '-' && c != '.')
			return -1;
	}
	*ret_vlen = v;
	*ret_nlen = n - 4 - v - 1;
	return 0;
}

/* Read a whole file; NUL bytes are refused. Returns 0 or -1 with errstr. */
static int read_file(const char *path, char **ret_buf, size_t *ret_len, char *errstr,
		     size_t errstr_size)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f) {
		snprintf(errstr, errstr_size, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		size_t got;
		if (cap - len < 4096) {
			size_t ncap = cap ? cap * 2 : 16384;
			char *nb;
			if (ncap > MIG_MAX_FILE_BYTES + 1) {
				snprintf(errstr, errstr_size, "%s is larger than %u bytes", path,
					 MIG_MAX_FILE_BYTES);
				goto fail;
			}
			nb = realloc(buf, ncap);
			if (!nb) {
				snprintf(errstr, errstr_size, "out of memory reading %s", path);
				goto fail;
			}
			buf = nb;
			cap = ncap;
		}
		got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(errstr, errstr_size, "cannot read %s: %s", path, strerror(errno));
		goto fail;
	}
	fclose(f);
	buf[len] = '\0';
	if (memchr(buf, '\0', len)) {
		snprintf(errstr, errstr_size, "%s contains a NUL byte; not an SQL text file", path);
		free(buf);
		return -1;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
fail:
	fclose(f);
	free(buf);
	return -1;
}

static int cmp_file(const void *a, const void *b)
{
	const mig_file *x = a, *y = b;

	return x->num < y->num ? -1 : x->num > y->num;
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* Scan dir for NNN_name.sql files, read and hash them, sort by version. */
static migrate_rc scan_dir(const char *dir, const pgu_log *log, mig_set *set, char *errstr,
			   size_t errstr_size)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t cap = 0;

	if (!d) {
		snprintf(errstr, errstr_size, "cannot open migrations directory %s: %s", dir,
			 strerror(errno));
		return MIGRATE_DIR;
	}
	while ((de = readdir(d)) != NULL) {
		const char *fn = de->d_name;
		size_t vlen, nlen, plen;
		mig_file *mf;
		char *path;
		unsigned char hash[crypto_hash_sha256_BYTES];

		if (fn[0] == '.')
			continue;
		if (parse_name(fn, &vlen, &nlen) != 0) {
			size_t n = strlen(fn);
			if (n >= 4 && strcmp(fn + n - 4, ".sql") == 0)
				pgu_logf(log, PGU_LOG_WARN,
					 "ignoring %s/%s: not named NNN_name.sql", dir, fn);
			continue;
		}
		if (set->nfiles == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			mig_file *nf = realloc(set->files, ncap * sizeof(*nf));
			if (!nf)
				goto nomem;
			set->files = nf;
			cap = ncap;
		}
		mf = &set->files[set->nfiles];
		memset(mf, 0, sizeof(*mf));
		set->nfiles++;
		mf->file = strdup(fn);
		mf->version = dup_n(fn, vlen);
		mf->name = dup_n(fn + vlen + 1, nlen);
		if (!mf->file || !mf->version || !mf->name)
			goto nomem;
		mf->num = strtoull(mf->version, NULL, 10);
		plen = strlen(dir) + 1 + strlen(fn) + 1;
		path = malloc(plen);
		if (!path)
			goto nomem;
		snprintf(path, plen, "%s/%s", dir, fn);
		if (read_file(path, &mf->sql, &mf->len, errstr, errstr_size) != 0) {
			free(path);
			closedir(d);
			return MIGRATE_DIR;
		}
		free(path);
		crypto_hash_sha256(hash, (const unsigned char *)mf->sql, mf->len);
		sodium_bin2hex(mf->sha256, sizeof(mf->sha256), hash, sizeof(hash));
	}
	closedir(d);
	if (set->nfiles)
		qsort(set->files, set->nfiles, sizeof(*set->files), cmp_file);
	for (size_t i = 1; i < set->nfiles; i++)
		if (set->files[i].num == set->files[i - 1].num) {
			snprintf(errstr, errstr_size,
				 "%s: %s and %s have the same version; rename one", dir,
				 set->files[i - 1].file, set->files[i].file);
			return MIGRATE_DIR;
		}
	return MIGRATE_OK;
nomem:
	closedir(d);
	snprintf(errstr, errstr_size, "out of memory scanning %s", dir);
	return MIGRATE_INTERNAL;
}

/*
 * Find a line that is only a transaction statement (begin; commit; rollback; start
 * transaction; end transaction;). The runner owns the transaction, so such a file would
 * commit its changes without their bookkeeping row. Returns the 1-based line or 0.
 */
static int find_txn_statement(const char *sql)
{
	static const char *const words[] = {
	    "begin",	"begin transaction",  "begin work",	      "start transaction",
	    "commit",	"commit transaction", "commit work",	      "end transaction",
	    "end work", "rollback",	      "rollback transaction", "rollback work",
	};
	int line = 1;

	for (const char *p = sql; *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char buf[64];
		size_t o = 0;
		int space = 0;

		/* Lower-case the line with runs of blanks as one space, up to "--". */
		for (size_t i = 0; i < n && o + 1 < sizeof(buf); i++) {
			char c = p[i];
			if (c == '-' && i + 1 < n && p[i + 1] == '-')
				break;
			if (c == ' ' || c == '\t' || c == '\r') {
				space = o > 0;
				continue;
			}
			if (space && c != ';')
				buf[o++] = ' ';
			space = 0;
			if (o + 1 < sizeof(buf))
				buf[o++] = (char)tolower((unsigned char)c);
		}
		buf[o] = '\0';
		if (o > 1 && buf[o - 1] == ';') {
			buf[o - 1] = '\0';
			for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++)
				if (strcmp(buf, words[w]) == 0)
					return line;
		}
		if (!e)
			break;
		p = e + 1;
		line++;
	}
	return 0;
}

/* 1-based line of 1-based character position `pos` (PostgreSQL counts characters). */
static int line_of_position(const char *sql, long pos)
{
	int line = 1;
	long chars = 0;

	for (const unsigned char *p = (const unsigned char *)sql; *p; p++) {
		if ((*p & 0xC0) == 0x80)
			continue;
		if (++chars >= pos)
			break;
		if (*p == '\n')
			line++;
	}
	return line;
}

static migrate_rc lock(PGconn *conn, const pgu_log *log, char *errstr, size_t errstr_size)
{
	const char *key[] = {MIGRATE_LOCK_KEY};
	PGresult *res;
	int got;

	res = pgu_query(conn, "select pg_try_advisory_lock($1::bigint)", 1, key,
			"taking the migration lock", errstr, errstr_size);
	if (!res)
		return MIGRATE_DB;
	got = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (got)
		return MIGRATE_OK;
	pgu_logf(log, PGU_LOG_INFO,
		 "another migrate run holds the migration lock (advisory lock %s); waiting",
		 MIGRATE_LOCK_KEY);
	if (pgu_exec_params(conn, "select pg_advisory_lock($1::bigint)", 1, key,
			    "waiting for the migration lock", errstr, errstr_size) != 0)
		return MIGRATE_DB;
	return MIGRATE_OK;
}

static void unlock(PGconn *conn)
{
	const char *key[] = {MIGRATE_LOCK_KEY};

	PQclear(PQexecParams(conn, "select pg_advisory_unlock($1::bigint)", 1, NULL, key, NULL,
			     NULL, 0));
}

static const char create_table_sql[] = "set local client_min_messages = warning;\n"
				       "create schema if not exists booking_proj;\n"
				       "create table if not exists " MIGRATE_TABLE " (\n"
				       "  version text primary key,\n"
				       "  name text not null,\n"
				       "  sha256 text not null,\n"
				       "  applied_at timestamptz not null default now(),\n"
				       "  applied_by text not null default current_user\n"
				       ");";

/* Does the bookkeeping table exist? 1, 0, or -1 with errstr. */
static int table_exists(PGconn *conn, char *errstr, size_t errstr_size)
{
	PGresult *res = pgu_query(conn, "select to_regclass('" MIGRATE_TABLE "') is not null", 0,
				  NULL, "looking for " MIGRATE_TABLE, errstr, errstr_size);
	int yes;

	if (!res)
		return -1;
	yes = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return yes;
}

static int cmp_row(const void *a, const void *b)
{
	const mig_row *x = a, *y = b;

	return x->num < y->num ? -1 : x->num > y->num;
}

static migrate_rc load_rows(PGconn *conn, mig_set *set, char *errstr, size_t errstr_size)
{
	PGresult *res =
	    pgu_query(conn,
		      "select version, name, sha256, applied_at::text from " MIGRATE_TABLE
		      " order by version",
		      0, NULL, "reading " MIGRATE_TABLE, errstr, errstr_size);
	int n;

	if (!res)
		return MIGRATE_DB;
	n = PQntuples(res);
	set->rows = calloc(n ? (size_t)n : 1, sizeof(*set->rows));
	if (!set->rows) {
		PQclear(res);
		snprintf(errstr, errstr_size, "out of memory");
		return MIGRATE_INTERNAL;
	}
	for (int i = 0; i < n; i++) {
		mig_row *r = &set->rows[i];
		set->nrows++;
		r->version = strdup(PQgetvalue(res, i, 0));
		r->name = strdup(PQgetvalue(res, i, 1));
		r->sha256 = strdup(PQgetvalue(res, i, 2));
		r->applied_at = strdup(PQgetvalue(res, i, 3));
		if (!r->version || !r->name || !r->sha256 || !r->applied_at) {
			PQclear(res);
			snprintf(errstr, errstr_size, "out of memory");
			return MIGRATE_INTERNAL;
		}
		r->num = strtoull(r->version, NULL, 10);
		for (size_t f = 0; f < set->nfiles; f++)
			if (set->files[f].num == r->num) {
				r->file = &set->files[f];
				set->files[f].applied = 1;
				break;
			}
	}
	PQclear(res);
	if (set->nrows)
		qsort(set->rows, set->nrows, sizeof(*set->rows), cmp_row);
	return MIGRATE_OK;
}

/* Report one migration: its file f (never NULL) and its recorded row r, if any. */
static void report(const migrate_opts *opts, const mig_file *f, const mig_row *r, migrate_state st,
		   long elapsed_ms)
{
	migrate_item it = {
	    .version = f->version,
	    .name = f->name,
	    .file = f->file,
	    .sha256 = f->sha256,
	    .recorded_sha256 = r ? r->sha256 : NULL,
	    .applied_at = r ? r->applied_at : NULL,
	    .state = st,
	    .elapsed_ms = elapsed_ms,
	};

	if (opts->on_item)
		opts->on_item(opts->item_opaque, &it);
}

/* Report an applied migration whose file is gone: only its recorded row r (never NULL). */
static void report_missing(const migrate_opts *opts, const mig_row *r)
{
	migrate_item it = {
	    .version = r->version,
	    .name = r->name,
	    .file = NULL,
	    .sha256 = NULL,
	    .recorded_sha256 = r->sha256,
	    .applied_at = r->applied_at,
	    .state = MIGRATE_ST_MISSING,
	    .elapsed_ms = 0,
	};

	if (opts->on_item)
		opts->on_item(opts->item_opaque, &it);
}

static const mig_row *row_of(const mig_set *set, const mig_file *f)
{
	for (size_t i = 0; i < set->nrows; i++)
		if (set->rows[i].file == f)
			return &set->rows[i];
	return NULL;
}

/*
 * Check every applied migration against its file, reporting each in version order in
 * status mode and each problem in the other modes. Returns the number of problems and
 * describes the first in errstr.
 */
static int verify(const migrate_opts *opts, const mig_set *set, char *errstr, size_t errstr_size)
{
	int problems = 0;
	size_t fi = 0, ri = 0;

	/* Merge files and rows (rows without a file are "missing") by version. */
	while (fi < set->nfiles || ri < set->nrows) {
		const mig_row *r = NULL;
		const mig_file *f = NULL;

		if (ri < set->nrows && set->rows[ri].file) {
			ri++;
			continue;
		}
		if (ri < set->nrows &&
		    (fi >= set->nfiles || set->rows[ri].num < set->files[fi].num))
			r = &set->rows[ri++];
		else
			f = &set->files[fi++];

		if (r) { /* applied, file gone */
			if (problems++ == 0)
				snprintf(errstr, errstr_size,
					 "migration %s_%s was applied (at %s) but its file is "
					 "missing from %s; restore it",
					 r->version, r->name, r->applied_at, opts->dir);
			report_missing(opts, r);
			continue;
		}
		r = row_of(set, f);
		if (r && strcmp(r->sha256, f->sha256) != 0) {
			if (problems++ == 0)
				snprintf(errstr, errstr_size,
					 "migration %s was changed after it was applied (at %s): "
					 "sha256 recorded %.12s..., file now %.12s...; restore the "
					 "file and put the change in a new migration",
					 f->file, r->applied_at, r->sha256, f->sha256);
			report(opts, f, r, MIGRATE_ST_CHANGED, 0);
		} else if (opts->mode == MIGRATE_STATUS) {
			report(opts, f, r, r ? MIGRATE_ST_APPLIED : MIGRATE_ST_PENDING, 0);
		}
	}
	if (problems > 1) {
		size_t n = strlen(errstr);
		snprintf(errstr + n, errstr_size > n ? errstr_size - n : 0,
			 " (and %d more changed or missing)", problems - 1);
	}
	return problems;
}

/* Apply one file and record it, atomically. */
static migrate_rc apply_one(PGconn *conn, const migrate_opts *opts, const mig_file *f, char *errstr,
			    size_t errstr_size)
{
	const char *params[] = {f->version, f->name, f->sha256};
	char msg[768];
	long t0 = now_ms();
	PGresult *res;
	int line = find_txn_statement(f->sql);

	if (line) {
		snprintf(errstr, errstr_size,
			 "%s/%s line %d: the file begins or ends a transaction; remove its "
			 "begin/commit (the runner applies each file in its own transaction)",
			 opts->dir, f->file, line);
		report(opts, f, NULL, MIGRATE_ST_FAILED, 0);
		return MIGRATE_FAILED;
	}
	if (pgu_begin(conn, errstr, errstr_size) != 0)
		return MIGRATE_DB;
	res = PQexec(conn, f->sql);
	if (!res ||
	    (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK &&
	     PQresultStatus(res) != PGRES_EMPTY_QUERY)) {
		const char *pos = res ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;
		char what[300];

		if (pos)
			snprintf(what, sizeof(what), "%s/%s line %d", opts->dir, f->file,
				 line_of_position(f->sql, strtol(pos, NULL, 10)));
		else
			snprintf(what, sizeof(what), "%s/%s", opts->dir, f->file);
		pgu_format_error(conn, res, what, msg, sizeof(msg));
		snprintf(errstr, errstr_size, "%s", msg);
		PQclear(res);
		pgu_rollback(conn);
		report(opts, f, NULL, MIGRATE_ST_FAILED, now_ms() - t0);
		return PQstatus(conn) == CONNECTION_OK ? MIGRATE_FAILED : MIGRATE_DB;
	}
	PQclear(res);
	if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
		snprintf(errstr, errstr_size,
			 "%s/%s ended the runner's transaction (COMMIT or ROLLBACK inside); its "
			 "effects may be committed without being recorded: check the database, "
			 "remove the transaction statements",
			 opts->dir, f->file);
		pgu_rollback(conn);
		report(opts, f, NULL, MIGRATE_ST_FAILED, now_ms() - t0);
		return MIGRATE_FAILED;
	}
	if (pgu_exec_params(
		conn, "insert into " MIGRATE_TABLE " (version, name, sha256) values ($1, $2, $3)",
		3, params, "recording the migration", msg, sizeof(msg)) != 0 ||
	    pgu_commit(conn, msg, sizeof(msg)) != 0) {
		snprintf(errstr, errstr_size, "%s: %s", f->file, msg);
		pgu_rollback(conn);
		report(opts, f, NULL, MIGRATE_ST_FAILED, now_ms() - t0);
		return MIGRATE_DB;
	}
	{
		mig_row r = {.version = f->version, .name = f->name, .sha256 = (char *)f->sha256};
		long ms = now_ms() - t0;
		pgu_logf(opts->log, PGU_LOG_DEBUG, "applied %s (%ld ms)", f->file, ms);
		report(opts, f, &r, MIGRATE_ST_APPLIED_NOW, ms);
	}
	return MIGRATE_OK;
}

/* The part of migrate_run that runs with the lock held (apply) or without (reports). */
static migrate_rc run_locked(PGconn *conn, const migrate_opts *opts, mig_set *set, char *errstr,
			     size_t errstr_size)
{
	migrate_rc rc;
	uint64_t max_applied = 0;
	int have_applied = 0;

	if (opts->mode == MIGRATE_APPLY) {
		if (pgu_begin(conn, errstr, errstr_size) != 0)
			return MIGRATE_DB;
		if (pgu_exec(conn, create_table_sql, "creating " MIGRATE_TABLE, errstr,
			     errstr_size) != 0 ||
		    pgu_commit(conn, errstr, errstr_size) != 0) {
			pgu_rollback(conn);
			return MIGRATE_DB;
		}
	} else {
		int exists = table_exists(conn, errstr, errstr_size);
		if (exists < 0)
			return MIGRATE_DB;
		if (!exists)
			goto verified; /* nothing applied yet; write nothing */
	}
	rc = load_rows(conn, set, errstr, errstr_size);
	if (rc != MIGRATE_OK)
		return rc;
verified:
	if (verify(opts, set, errstr, errstr_size) > 0)
		return MIGRATE_CHANGED;
	if (opts->mode == MIGRATE_STATUS)
		return MIGRATE_OK;

	for (size_t i = 0; i < set->nrows; i++)
		if (!have_applied || set->rows[i].num > max_applied) {
			max_applied = set->rows[i].num;
			have_applied = 1;
		}
	for (size_t i = 0; i < set->nfiles; i++) {
		const mig_file *f = &set->files[i];

		if (f->applied) {
			if (opts->mode == MIGRATE_APPLY)
				report(opts, f, row_of(set, f), MIGRATE_ST_APPLIED, 0);
			continue;
		}
		if (have_applied && f->num < max_applied)
			pgu_logf(opts->log, PGU_LOG_WARN,
				 "%s is older than the newest applied migration (%llu); applying "
				 "it out of order",
				 f->file, (unsigned long long)max_applied);
		if (opts->mode == MIGRATE_DRY_RUN) {
			report(opts, f, NULL, MIGRATE_ST_PENDING, 0);
			continue;
		}
		rc = apply_one(conn, opts, f, errstr, errstr_size);
		if (rc != MIGRATE_OK)
			return rc;
	}
	return MIGRATE_OK;
}

migrate_rc migrate_run(PGconn *conn, const migrate_opts *opts, char *errstr, size_t errstr_size)
{
	mig_set set = {0};
	migrate_rc rc;

	if (!opts || !opts->dir || !*opts->dir) {
		snprintf(errstr, errstr_size, "no migrations directory given");
		return MIGRATE_DIR;
	}
	if (sodium_init() < 0) {
		snprintf(errstr, errstr_size, "libsodium failed to initialize");
		return MIGRATE_INTERNAL;
	}
	if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
		snprintf(errstr, errstr_size, "the connection is not idle (open transaction?)");
		return MIGRATE_DB;
	}
	rc = scan_dir(opts->dir, opts->log, &set, errstr, errstr_size);
	if (rc != MIGRATE_OK) {
		set_free(&set);
		return rc;
	}
	if (set.nfiles == 0)
		pgu_logf(opts->log, PGU_LOG_WARN, "no NNN_name.sql files in %s", opts->dir);

	if (opts->mode == MIGRATE_APPLY) {
		rc = lock(conn, opts->log, errstr, errstr_size);
		if (rc == MIGRATE_OK) {
			rc = run_locked(conn, opts, &set, errstr, errstr_size);
			unlock(conn);
		}
	} else {
		rc = run_locked(conn, opts, &set, errstr, errstr_size);
	}
	set_free(&set);
	return rc;
}

migrate_rc migrate_applied(PGconn *conn, const char *dir, const pgu_log *log,
			   int (*each)(void *opaque, const char *path, const char *sql),
			   void *opaque, char *errstr, size_t errstr_size)
{
	mig_set set = {0};
	migrate_opts opts = {.dir = dir, .mode = MIGRATE_DRY_RUN, .log = log};
	if (!dir || !*dir) {
		snprintf(errstr, errstr_size, "no migrations directory given");
		return MIGRATE_DIR;
	}
	if (sodium_init() < 0) {
		snprintf(errstr, errstr_size, "libsodium failed to initialize");
		return MIGRATE_INTERNAL;
	}
	migrate_rc rc = scan_dir(dir, log, &set, errstr, errstr_size);
	if (rc == MIGRATE_OK) {
		int exists = table_exists(conn, errstr, errstr_size);
		if (exists < 0)
			rc = MIGRATE_DB;
		else if (!exists)
			rc = MIGRATE_OK; /* nothing applied */
		else
			rc = load_rows(conn, &set, errstr, errstr_size);
	}
	if (rc == MIGRATE_OK && verify(&opts, &set, errstr, errstr_size) > 0)
		rc = MIGRATE_CHANGED;
	for (size_t i = 0; rc == MIGRATE_OK && i < set.nrows; i++) {
		const mig_file *f = set.rows[i].file; /* verify: every row has its file */
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, f->file);
		if (each(opaque, path, f->sql) < 0)
			rc = MIGRATE_FAILED;
	}
	set_free(&set);
	return rc;
}
