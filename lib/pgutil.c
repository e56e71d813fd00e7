/*
 * pgutil.c - PostgreSQL connection and result helpers (see pgutil.h).
 * Invariant: no output of its own. Retries and server warnings go to the caller's log
 * callback; every failure is one line in the caller's errstr, with SQLSTATE and detail.
 */
#include "pgutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define PGU_DEFAULT_ATTEMPTS   5
#define PGU_DEFAULT_INITIAL_MS 100
#define PGU_DEFAULT_MAX_MS     5000

static const char *const level_names[] = {
    [PGU_LOG_DEBUG] = "debug",
    [PGU_LOG_INFO] = "info",
    [PGU_LOG_WARN] = "warn",
    [PGU_LOG_ERROR] = "error",
};

const char *pgu_level_name(pgu_level level)
{
	if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0]))
		return "?";
	return level_names[level];
}

void pgu_logf(const pgu_log *log, pgu_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!log || !log->fn)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log->fn(log->opaque, level, line);
}

/* Copy s into buf without its trailing newlines and with inner newlines as "; ". */
static void copy_oneline(char *buf, size_t bufsz, const char *s)
{
	size_t o = 0;

	if (bufsz == 0)
		return;
	for (; s && *s && o + 1 < bufsz; s++) {
		if (*s == '\n') {
			const char *t = s;
			while (*t == '\n' || *t == ' ' || *t == '\t')
				t++;
			if (*t == '\0')
				break;
			if (o + 3 >= bufsz)
				break;
			buf[o++] = ';';
			buf[o++] = ' ';
			s = t - 1;
			continue;
		}
		buf[o++] = *s;
	}
	buf[o] = '\0';
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Forward server WARNINGs (not NOTICEs such as "already exists, skipping") to the log. */
static void notice_receiver(void *arg, const PGresult *res)
{
	const pgu_log *log = arg;
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	char msg[512];

	if (!log || !sev || strcmp(sev, "WARNING") != 0)
		return;
	copy_oneline(msg, sizeof(msg), PQresultErrorMessage(res));
	pgu_logf(log, PGU_LOG_WARN, "postgresql: %s", msg);
}

PGconn *pgu_connect(const char *conninfo, const pgu_connect_opts *opts, char *errstr,
		    size_t errstr_size)
{
	pgu_connect_opts o = {0};
	const char *keys[] = {"dbname", "fallback_application_name", NULL};
	const char *vals[3];
	int delay;

	if (opts)
		o = *opts;
	if (o.attempts <= 0)
		o.attempts = PGU_DEFAULT_ATTEMPTS;
	if (o.initial_delay_ms <= 0)
		o.initial_delay_ms = PGU_DEFAULT_INITIAL_MS;
	if (o.max_delay_ms <= 0)
		o.max_delay_ms = PGU_DEFAULT_MAX_MS;
	vals[0] = conninfo ? conninfo : "";
	vals[1] = o.application_name ? o.application_name : "booking";
	vals[2] = NULL;

	delay = o.initial_delay_ms;
	for (int attempt = 1;; attempt++) {
		PGconn *conn = PQconnectdbParams(keys, vals, 1);
		char why[512];
		PGPing ping;

		if (!conn) {
			snprintf(errstr, errstr_size,
				 "postgresql: out of memory allocating a connection");
			return NULL;
		}
		if (PQstatus(conn) == CONNECTION_OK) {
			PQsetNoticeReceiver(conn, notice_receiver, (void *)o.log);
			if (attempt > 1)
				pgu_logf(o.log, PGU_LOG_INFO,
					 "postgresql: connected after %d attempts", attempt);
			return conn;
		}
		copy_oneline(why, sizeof(why), PQerrorMessage(conn));
		PQfinish(conn);

		/* Retry only while no server accepts connections; a server that answers
		 * but refused us (password, missing database) will not change its mind. */
		ping = PQpingParams(keys, vals, 1);
		if (ping == PQPING_OK || ping == PQPING_NO_ATTEMPT) {
			snprintf(errstr, errstr_size, "postgresql: cannot connect: %s", why);
			return NULL;
		}
		if (attempt >= o.attempts) {
			snprintf(errstr, errstr_size,
				 "postgresql: cannot connect (%d attempt%s): %s", attempt,
				 attempt == 1 ? "" : "s", why);
			return NULL;
		}
		pgu_logf(o.log, PGU_LOG_WARN,
			 "postgresql: cannot connect (attempt %d/%d), retrying in %d ms: %s",
			 attempt, o.attempts, delay, why);
		sleep_ms(delay);
		delay = delay > o.max_delay_ms / 2 ? o.max_delay_ms : delay * 2;
	}
}

const char *pgu_describe(const PGconn *conn, char *buf, size_t bufsz)
{
	const char *host = PQhost(conn);
	const char *user = PQuser(conn);
	const char *port = PQport(conn);
	const char *db = PQdb(conn);

	snprintf(buf, bufsz, "%s@%s:%s/%s", user ? user : "?", host && *host ? host : "?",
		 port && *port ? port : "?", db ? db : "?");
	return buf;
}

const char *pgu_sqlstate(const PGresult *res)
{
	const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return s ? s : "";
}

/* Append to errstr at *off, truncating quietly. */
static void append(char *errstr, size_t errstr_size, size_t *off, const char *fmt, ...)
    BK_PRINTF(4, 5);
static void append(char *errstr, size_t errstr_size, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*off >= errstr_size)
		return;
	va_start(ap, fmt);
	n = vsnprintf(errstr + *off, errstr_size - *off, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off = *off + (size_t)n < errstr_size ? *off + (size_t)n : errstr_size;
}

void pgu_format_error(const PGconn *conn, const PGresult *res, const char *what, char *errstr,
		      size_t errstr_size)
{
	char buf[512];
	const char *p = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *d = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	const char *h = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
	const char *state = pgu_sqlstate(res);
	const char *sep = " (";
	size_t off = 0;

	if (errstr_size == 0)
		return;
	if (!p && res && *PQresultErrorMessage(res))
		p = PQresultErrorMessage(res);
	if (!p && conn && *PQerrorMessage(conn))
		p = PQerrorMessage(conn);
	if (!p && res)
		p = PQresStatus(PQresultStatus(res));
	if (!p)
		p = "no result (out of memory or connection lost)";
	copy_oneline(buf, sizeof(buf), p);
	append(errstr, errstr_size, &off, "%s: %s", what ? what : "postgresql", buf);
	if (*state) {
		append(errstr, errstr_size, &off, "%sSQLSTATE %s", sep, state);
		sep = "; ";
	}
	if (d) {
		copy_oneline(buf, sizeof(buf), d);
		append(errstr, errstr_size, &off, "%sdetail: %s", sep, buf);
		sep = "; ";
	}
	if (h) {
		copy_oneline(buf, sizeof(buf), h);
		append(errstr, errstr_size, &off, "%shint: %s", sep, buf);
		sep = "; ";
	}
	if (strcmp(sep, "; ") == 0)
		append(errstr, errstr_size, &off, ")");
}

/* "SQL '<first line of sql, shortened>'" for messages when the caller gave no name. */
static const char *sql_label(const char *sql, char *buf, size_t bufsz)
{
	size_t n = 0;

	while (*sql == ' ' || *sql == '\n' || *sql == '\t')
		sql++;
	while (sql[n] && sql[n] != '\n' && n < 60)
		n++;
	snprintf(buf, bufsz, "SQL '%.*s%s'", (int)n, sql, sql[n] && sql[n] != '\n' ? "..." : "");
	return buf;
}

static int result_ok(const PGresult *res)
{
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
}

int pgu_exec(PGconn *conn, const char *sql, const char *what, char *errstr, size_t errstr_size)
{
	char label[96];
	PGresult *res = PQexec(conn, sql);

	if (!result_ok(res)) {
		pgu_format_error(conn, res, what ? what : sql_label(sql, label, sizeof(label)),
				 errstr, errstr_size);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

PGresult *pgu_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
		    const char *what, char *errstr, size_t errstr_size)
{
	char label[96];
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

	if (!result_ok(res)) {
		pgu_format_error(conn, res, what ? what : sql_label(sql, label, sizeof(label)),
				 errstr, errstr_size);
		PQclear(res);
		return NULL;
	}
	return res;
}

int pgu_exec_params(PGconn *conn, const char *sql, int nparams, const char *const *params,
		    const char *what, char *errstr, size_t errstr_size)
{
	PGresult *res = pgu_query(conn, sql, nparams, params, what, errstr, errstr_size);

	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

int pgu_begin(PGconn *conn, char *errstr, size_t errstr_size)
{
	return pgu_exec(conn, "begin", "begin transaction", errstr, errstr_size);
}

int pgu_commit(PGconn *conn, char *errstr, size_t errstr_size)
{
	PGresult *res = PQexec(conn, "commit");

	/* A transaction that failed earlier "commits" as ROLLBACK without an error. */
	if (result_ok(res) && strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
		snprintf(errstr, errstr_size, "commit: the transaction was rolled back");
		PQclear(res);
		return -1;
	}
	if (!result_ok(res)) {
		pgu_format_error(conn, res, "commit", errstr, errstr_size);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

void pgu_rollback(PGconn *conn)
{
	if (PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "rollback"));
}
