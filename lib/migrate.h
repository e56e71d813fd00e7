/*
 * migrate.h - the SQL migration runner behind `bookingctl migrate`.
 * Applies migrations/NNN_name.sql in version order, each in its own transaction together
 * with its row in booking_proj.schema_migrations (version, name, SHA-256, applied_at), under
 * a PostgreSQL advisory lock; refuses to go on when an applied file changed or vanished.
 */
#ifndef BK_MIGRATE_H
#define BK_MIGRATE_H

#include <stddef.h>

#include <libpq-fe.h>

#include "bk_err.h"
#include "pgutil.h"

/* The advisory lock key ("bkmigrat") held while migrating. */
#define MIGRATE_LOCK_KEY "7091882337699520884"
#define MIGRATE_TABLE	 "booking_proj.schema_migrations"

/* Results of migrate_run: symbol, name, message. */
#define MIGRATE_RC_MAP(X)                                                                          \
	X(OK, "ok", "success")                                                                     \
	X(DIR, "bad_directory", "the migrations directory or one of its files is unusable")        \
	X(DB, "database", "PostgreSQL failed outside a migration (connection, lock, bookkeeping)") \
	X(CHANGED, "changed", "an applied migration was changed or removed")                       \
	X(FAILED, "failed", "a migration could not be applied; it was rolled back")                \
	X(INTERNAL, "internal", "internal error (out of memory, libsodium)")

typedef enum migrate_rc {
#define MIGRATE_RC_ENUM(sym, name, msg) MIGRATE_##sym,
	MIGRATE_RC_MAP(MIGRATE_RC_ENUM)
#undef MIGRATE_RC_ENUM
	    MIGRATE__COUNT
} migrate_rc;

const char *migrate_rc_name(migrate_rc rc);
const char *migrate_rc_msg(migrate_rc rc);

typedef enum migrate_mode {
	MIGRATE_APPLY,	 /* apply what is pending */
	MIGRATE_DRY_RUN, /* report what is pending; write nothing */
	MIGRATE_STATUS,	 /* report every migration, applied or not; write nothing */
} migrate_mode;

typedef enum migrate_state {
	MIGRATE_ST_APPLIED,	/* applied before this run; the file is unchanged */
	MIGRATE_ST_PENDING,	/* not applied (dry run and status) */
	MIGRATE_ST_APPLIED_NOW, /* applied by this run */
	MIGRATE_ST_CHANGED,	/* applied, but the file's SHA-256 is not the recorded one */
	MIGRATE_ST_MISSING,	/* applied, but the file is gone from the directory */
	MIGRATE_ST_FAILED,	/* this run tried it and PostgreSQL refused it */
	MIGRATE_ST__COUNT
} migrate_state;

/* Name of a state ("applied", "pending", ...). */
const char *migrate_state_name(migrate_state st);

/* One migration as reported to the caller. All strings are borrowed for the callback. */
typedef struct migrate_item {
	const char *version;	     /* digits as in the file name: "013" */
	const char *name;	     /* "booking_core" */
	const char *file;	     /* "013_booking_core.sql"; NULL when missing */
	const char *sha256;	     /* hex of the file; NULL when missing */
	const char *recorded_sha256; /* hex recorded when applied; NULL when not applied */
	const char *applied_at;	     /* as PostgreSQL prints it; NULL when not applied */
	migrate_state state;
	long elapsed_ms; /* APPLIED_NOW and FAILED: time spent */
} migrate_item;

typedef struct migrate_opts {
	const char *dir; /* directory holding NNN_name.sql files */
	migrate_mode mode;
	const pgu_log *log; /* progress and warnings; may be NULL */
	/* Called once per migration in version order (MIGRATE_APPLY reports applied,
	 * applied_now and failed ones; the other modes every one they look at). */
	void (*on_item)(void *opaque, const migrate_item *item);
	void *item_opaque;
} migrate_opts;

/*
 * Bring the database on `conn` up to date with opts->dir (or only report, per mode).
 * Every applied migration is checked first: a changed or missing file is reported through
 * on_item and makes the run stop with MIGRATE_CHANGED before anything is applied. Pending
 * ones are applied in order, each atomically with its bookkeeping row; the first failure
 * stops the run (earlier ones stay applied). Migration files must not contain their own
 * begin/commit. `conn` must be idle (no open transaction); it stays open.
 * Returns MIGRATE_OK or an error with one line in errstr.
 */
migrate_rc migrate_run(PGconn *conn, const migrate_opts *opts, char *errstr,
		       size_t errstr_size) BK_MUSTCHECK;

/*
 * The migrations applied to the database on `conn`, in version order, each handed to
 * `each` with its file's path and SQL, after every applied one was checked against its
 * file in `dir` (a changed or missing file: MIGRATE_CHANGED, nothing handed over). Writes
 * nothing; for `bookingctl rebuild`, which runs them again into its shadow schemas.
 * `each` returns 0, or -1 to stop (MIGRATE_FAILED; the caller keeps its own error).
 */
migrate_rc migrate_applied(PGconn *conn, const char *dir, const pgu_log *log,
			   int (*each)(void *opaque, const char *path, const char *sql),
			   void *opaque, char *errstr, size_t errstr_size) BK_MUSTCHECK;

#endif
