/*
 * cmd_migrate.c - `bookingctl migrate`: apply migrations/NNN_name.sql to PostgreSQL, or
 * list what is pending (--dry-run) or the state of every migration (--status).
 * Results go to stdout, diagnostics to stderr; exit codes as in cmd.h (1: a migration
 * changed after it was applied, is missing, or failed to apply).
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd.h"
#include "paths.h"
#include "migrate.h"
#include "pgutil.h"

typedef struct mig_cli {
	int verbose;
	int quiet;
	migrate_mode mode;
	json_t *items; /* --format json: every migration reported */
	int applied_now, applied, pending, problems;
} mig_cli;

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: bookingctl migrate [-d CONNINFO] [--migrations DIR] [--dry-run | --status]\n"
	       "                          [--format text|json] [--retries N] [-q] [-v]\n"
	       "\n"
	       "Apply the pending SQL migrations (DIR/NNN_name.sql, in version order), each in\n"
	       "its own transaction together with its row in " MIGRATE_TABLE ".\n"
	       "Refuses to apply anything when an applied migration's file changed (SHA-256) or\n"
	       "is missing. Concurrent runs wait for each other (advisory lock).\n"
	       "\n"
	       "  -d, --dbname CONNINFO  libpq conninfo or postgresql:// URI (default: the PG*\n"
	       "                         environment variables and libpq defaults)\n"
	       "      --migrations DIR   migrations directory (default: $BOOKING_MIGRATIONS,\n"
	       "                         else ./migrations, else the installed ones (the\n"
	       "                         source tree's when run from the build tree));\n"
	       "                         --dir DIR is the old spelling\n"
	       "  -n, --dry-run          list the pending migrations; change nothing\n"
	       "  -s, --status           list every migration and its state; change nothing\n"
	       "      --retries N        connection attempts, with exponential backoff (5)\n"
	       "      --format FMT       text (default) or json: one object on stdout,\n"
	       "                         {ok, applied, applied_now, pending, problems,\n"
	       "                         migrations: [{version, name, state, applied_at,\n"
	       "                         sha256}]}; state: applied, pending, applied_now,\n"
	       "                         changed, missing, failed (with --status: every one)\n"
	       "  -q, --quiet            print only errors\n"
	       "  -v, --verbose          also print progress details\n"
	       "  -h, --help             this text\n"
	       "\n"
	       "exit status: 0 ok, 1 a migration changed, is missing or failed, 2 usage,\n"
	       "3 PostgreSQL unreachable or failing\n");
}

static void log_line(void *opaque, pgu_level level, const char *msg)
{
	const mig_cli *cli = opaque;

	if (level == PGU_LOG_DEBUG && !cli->verbose)
		return;
	if (level == PGU_LOG_INFO && cli->quiet)
		return;
	fprintf(stderr, "bookingctl migrate: %s%s%s\n",
		level >= PGU_LOG_WARN ? pgu_level_name(level) : "",
		level >= PGU_LOG_WARN ? ": " : "", msg);
}

static void on_item(void *opaque, const migrate_item *it)
{
	mig_cli *cli = opaque;
	if (cli->items) {
		json_t *o = json_pack("{s:s, s:s, s:s}", "version", it->version, "name", it->name,
				      "state", migrate_state_name(it->state));
		if (o) {
			json_object_set_new(o, "applied_at",
					    it->applied_at ? json_string(it->applied_at)
							   : json_null());
			json_object_set_new(o, "sha256",
					    it->sha256 ? json_string(it->sha256) : json_null());
			json_array_append_new(cli->items, o);
		}
		switch (it->state) {
		case MIGRATE_ST_APPLIED:
			cli->applied++;
			break;
		case MIGRATE_ST_PENDING:
			cli->pending++;
			break;
		case MIGRATE_ST_APPLIED_NOW:
			cli->applied_now++;
			break;
		default:
			cli->problems++;
			break;
		}
		return;
	}

	switch (it->state) {
	case MIGRATE_ST_APPLIED:
		cli->applied++;
		if (cli->mode == MIGRATE_STATUS && !cli->quiet)
			printf("%-8s %-32s applied   %s\n", it->version, it->name, it->applied_at);
		break;
	case MIGRATE_ST_PENDING:
		cli->pending++;
		if (cli->quiet)
			break;
		if (cli->mode == MIGRATE_STATUS)
			printf("%-8s %-32s pending\n", it->version, it->name);
		else
			printf("pending %s\n", it->file);
		break;
	case MIGRATE_ST_APPLIED_NOW:
		cli->applied_now++;
		if (!cli->quiet)
			printf("applied %s (%ld ms)\n", it->file, it->elapsed_ms);
		break;
	case MIGRATE_ST_CHANGED:
		cli->problems++;
		if (cli->mode == MIGRATE_STATUS)
			printf("%-8s %-32s CHANGED   %s\n", it->version, it->name, it->applied_at);
		fprintf(stderr,
			"bookingctl migrate: %s CHANGED since it was applied at %s\n"
			"  recorded sha256 %s\n  file     sha256 %s\n",
			it->file, it->applied_at, it->recorded_sha256, it->sha256);
		break;
	case MIGRATE_ST_MISSING:
		cli->problems++;
		if (cli->mode == MIGRATE_STATUS)
			printf("%-8s %-32s MISSING   %s\n", it->version, it->name, it->applied_at);
		fprintf(stderr,
			"bookingctl migrate: %s_%s.sql MISSING: applied at %s, no such file\n",
			it->version, it->name, it->applied_at);
		break;
	case MIGRATE_ST_FAILED:
		cli->problems++;
		fprintf(stderr, "bookingctl migrate: %s FAILED (rolled back)\n", it->file);
		break;
	case MIGRATE_ST__COUNT:
		break;
	}
}

static int is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The default migrations directory (lib/paths.h). */
static const char *default_dir(char *buf, size_t bufsz)
{
	return bk_default_migrations_dir(buf, bufsz);
}

static int exit_code(migrate_rc rc)
{
	switch (rc) {
	case MIGRATE_OK:
		return BK_EXIT_OK;
	case MIGRATE_DIR:
		return BK_EXIT_USAGE;
	case MIGRATE_CHANGED:
	case MIGRATE_FAILED:
		return BK_EXIT_PROBLEM;
	case MIGRATE_DB:
	case MIGRATE_INTERNAL:
	case MIGRATE__COUNT:
		break;
	}
	return BK_EXIT_DEPENDENCY;
}

int cmd_migrate(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dbname", required_argument, NULL, 'd'},
	    {"dir", required_argument, NULL, 'D'},
	    {"migrations", required_argument, NULL, 'D'},
	    {"format", required_argument, NULL, 'f'},
	    {"dry-run", no_argument, NULL, 'n'},
	    {"status", no_argument, NULL, 's'},
	    {"retries", required_argument, NULL, 'r'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	mig_cli cli = {.mode = MIGRATE_APPLY};
	const char *conninfo = "", *dir = NULL;
	char dirbuf[PATH_MAX], absdir[PATH_MAX], errstr[1024], desc[256];
	int retries = 5, c, dry_run = 0, status = 0, as_json = 0;
	pgu_log log = {.fn = log_line, .opaque = &cli};
	pgu_connect_opts copts = {0};
	migrate_opts mopts = {0};
	migrate_rc rc;
	PGconn *conn;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:nsqvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			conninfo = optarg;
			break;
		case 'D':
			dir = optarg;
			break;
		case 'n':
			dry_run = 1;
			break;
		case 's':
			status = 1;
			break;
		case 'r': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 1000) {
				fprintf(stderr, "bookingctl migrate: --retries wants 1..1000\n");
				return BK_EXIT_USAGE;
			}
			retries = (int)v;
			break;
		}
		case 'f':
			if (strcmp(optarg, "text") && strcmp(optarg, "json")) {
				fprintf(stderr, "bookingctl migrate: --format %s: text or json\n",
					optarg);
				return BK_EXIT_USAGE;
			}
			as_json = !strcmp(optarg, "json");
			break;
		case 'q':
			cli.quiet = 1;
			break;
		case 'v':
			cli.verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return BK_EXIT_OK;
		default:
			usage(stderr);
			return BK_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bookingctl migrate: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return BK_EXIT_USAGE;
	}
	if (dry_run && status) {
		fprintf(stderr, "bookingctl migrate: --dry-run and --status exclude each other\n");
		return BK_EXIT_USAGE;
	}
	cli.mode = dry_run ? MIGRATE_DRY_RUN : status ? MIGRATE_STATUS : MIGRATE_APPLY;
	if (!dir)
		dir = default_dir(dirbuf, sizeof(dirbuf));
	if (!dir) {
		fprintf(stderr, "bookingctl migrate: no migrations directory found; give "
				"--migrations DIR or set BOOKING_MIGRATIONS\n");
		return BK_EXIT_USAGE;
	}
	if (!is_dir(dir)) {
		fprintf(stderr, "bookingctl migrate: %s is not a directory\n", dir);
		return BK_EXIT_USAGE;
	}
	if (realpath(dir, absdir))
		dir = absdir;

	copts.attempts = retries;
	copts.application_name = "bookingctl-migrate";
	copts.log = &log;
	conn = pgu_connect(conninfo, &copts, errstr, sizeof(errstr));
	if (!conn) {
		fprintf(stderr, "bookingctl migrate: %s\n", errstr);
		return BK_EXIT_DEPENDENCY;
	}
	pgu_logf(&log, PGU_LOG_DEBUG, "connected to %s; migrations in %s",
		 pgu_describe(conn, desc, sizeof(desc)), dir);

	mopts.dir = dir;
	mopts.mode = cli.mode;
	mopts.log = &log;
	mopts.on_item = on_item;
	mopts.item_opaque = &cli;
	if (as_json && !(cli.items = json_array())) {
		PQfinish(conn);
		return BK_EXIT_PROBLEM;
	}
	rc = migrate_run(conn, &mopts, errstr, sizeof(errstr));
	PQfinish(conn);
	if (as_json) { /* the items seen, also when a problem stopped the run */
		json_t *j =
		    json_pack("{s:b, s:i, s:i, s:i, s:i, s:o}", "ok", rc == MIGRATE_OK, "applied",
			      cli.applied, "applied_now", cli.applied_now, "pending", cli.pending,
			      "problems", cli.problems, "migrations", cli.items);
		char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
		if (t)
			puts(t);
		free(t);
		json_decref(j);
	}
	if (rc != MIGRATE_OK) {
		fprintf(stderr, "bookingctl migrate: %s: %s\n", migrate_rc_msg(rc), errstr);
		if (rc == MIGRATE_CHANGED)
			fprintf(stderr,
				"bookingctl migrate: refusing to migrate; nothing was applied\n");
		return exit_code(rc);
	}
	if (cli.quiet || as_json)
		return BK_EXIT_OK;
	switch (cli.mode) {
	case MIGRATE_APPLY:
		if (cli.applied_now == 0)
			printf("up to date: %d migration%s applied, none pending\n", cli.applied,
			       cli.applied == 1 ? "" : "s");
		else
			printf("%d applied now, %d applied before\n", cli.applied_now, cli.applied);
		break;
	case MIGRATE_DRY_RUN:
		printf("%d pending\n", cli.pending);
		break;
	case MIGRATE_STATUS:
		printf("%d applied, %d pending\n", cli.applied, cli.pending);
		break;
	}
	return BK_EXIT_OK;
}
