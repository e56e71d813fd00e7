/*
 * pgutil.h - PostgreSQL helpers shared by the daemons and the CLI: connect with retry and
 * exponential backoff, run SQL and turn a failed result into one clear message.
 * Nothing here prints: progress goes to the caller's pgu_log callback, failures come
 * back in the caller's errstr buffer (librdkafka style).
 */
#ifndef BK_PGUTIL_H
#define BK_PGUTIL_H

#include <stddef.h>

#include <libpq-fe.h>

#include "bk_err.h"

typedef enum pgu_level {
	PGU_LOG_DEBUG,
	PGU_LOG_INFO,
	PGU_LOG_WARN,
	PGU_LOG_ERROR,
} pgu_level;

/* A log sink: fn(opaque, level, one line without a trailing newline). */
typedef struct pgu_log {
	void (*fn)(void *opaque, pgu_level level, const char *msg);
	void *opaque;
} pgu_log;

/* Log through `log` when it is non-NULL and has a fn; otherwise drop the line. */
void pgu_logf(const pgu_log *log, pgu_level level, const char *fmt, ...) BK_PRINTF(3, 4);

/* Name of a level ("debug", "info", "warn", "error"). */
const char *pgu_level_name(pgu_level level);

/*
 * How pgu_connect retries. Zeroed fields take the defaults: 5 attempts, first delay 100 ms,
 * doubling up to 5000 ms. Only failures where no server answered (or it is starting up or
 * shutting down) are retried; a refused login or a missing database is reported at once.
 */
typedef struct pgu_connect_opts {
	int attempts;
	int initial_delay_ms;
	int max_delay_ms;
	const char *application_name; /* fallback_application_name; NULL: "booking" */
	const pgu_log *log; /* retries, and server WARNINGs; must outlive the connection */
} pgu_connect_opts;

/*
 * Connect. `conninfo` is a libpq conninfo string ("host=... dbname=...") or a URI
 * ("postgresql://..."); NULL or "" means the libpq defaults and the standard PG*
 * environment variables. `opts` may be NULL. Returns a connection the caller closes with
 * PQfinish, or NULL with the reason in errstr.
 */
PGconn *pgu_connect(const char *conninfo, const pgu_connect_opts *opts, char *errstr,
		    size_t errstr_size) BK_MUSTCHECK;

/* "user@host:port/dbname" of a connection, for log lines. Returns buf. */
const char *pgu_describe(const PGconn *conn, char *buf, size_t bufsz);

/*
 * Format why `res` (NULL allowed: out of memory or lost connection) failed, as
 * "<what>: <message> (SQLSTATE xxxxx; detail: ...; hint: ...)", into errstr.
 */
void pgu_format_error(const PGconn *conn, const PGresult *res, const char *what, char *errstr,
		      size_t errstr_size);

/* SQLSTATE of a result ("" when there is none). */
const char *pgu_sqlstate(const PGresult *res);

/*
 * Run `sql` (one or more statements, no parameters). Returns 0 when it completed (command
 * or rows), -1 with the message in errstr. `what` names the step in the message; NULL
 * uses the start of the SQL.
 */
int pgu_exec(PGconn *conn, const char *sql, const char *what, char *errstr,
	     size_t errstr_size) BK_MUSTCHECK;

/*
 * Run one parameterized statement with text parameters (NULL entries are SQL NULL) and
 * return its result when it completed (command or rows); the caller frees it with PQclear.
 * On failure returns NULL with the message in errstr.
 */
PGresult *pgu_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
		    const char *what, char *errstr, size_t errstr_size) BK_MUSTCHECK;

/* pgu_query for statements whose rows are not needed. Returns 0 or -1 (errstr). */
int pgu_exec_params(PGconn *conn, const char *sql, int nparams, const char *const *params,
		    const char *what, char *errstr, size_t errstr_size) BK_MUSTCHECK;

/* Transaction helpers. pgu_rollback ignores errors (it is called on error paths). */
int pgu_begin(PGconn *conn, char *errstr, size_t errstr_size) BK_MUSTCHECK;
int pgu_commit(PGconn *conn, char *errstr, size_t errstr_size) BK_MUSTCHECK;
void pgu_rollback(PGconn *conn);

#endif
