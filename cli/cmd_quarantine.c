/*
 * cmd_quarantine.c - `bookingctl quarantine list|retry|skip`: the orders the projector set
 * aside (booking_proj.quarantine). retry asks the projector to re-apply an order's held
 * events in seq order on its next batch; skip gives them up and releases the order (the
 * highest skipped event becomes the order's head). Exit codes as in cmd.h.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cmd.h"
#include "pgutil.h"

static void usage(FILE *f)
{
	fputs("usage: bookingctl quarantine list [--all] [--format text|json] [-d CONNINFO]\n"
	      "       bookingctl quarantine retry ORDER_ID... [-d CONNINFO]\n"
	      "       bookingctl quarantine skip ORDER_ID... [-d CONNINFO]\n"
	      "\n"
	      "Orders the projector could not apply wait in booking_proj.quarantine with their\n"
	      "events (status held). list shows them (--all: also retried-and-applied and skipped\n"
	      "rows); retry marks an order's held events for the projector to re-apply in seq\n"
	      "order on its next batch (fix the cause first); skip gives the held events up and\n"
	      "releases the order: its next events apply on top of the skipped ones.\n"
	      "\n"
	      "  -d, --dbname CONNINFO  libpq conninfo or URI (default: PG* variables)\n"
	      "      --all              list: also rows retried-and-applied or skipped\n"
	      "      --format FMT       list: text (default, a table) or json (one object:\n"
	      "                         {\"orders\":[{order_id, status, events, seq_min,\n"
	      "                         seq_max, topic, partition, offset, reason}]})\n"
	      "  -h, --help             this text\n"
	      "\n"
	      "exit status: 0 ok, 1 an order named has no waiting events, 2 usage,\n"
	      "3 PostgreSQL unreachable or failing\n",
	      f);
}

/* A column as a JSON integer, or null when NULL. */
static json_t *int_or_null(PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? json_null()
					: json_integer(strtoll(PQgetvalue(r, row, col), NULL, 10));
}

static int list(PGconn *c, bool all, bool as_json)
{
	char err[512];
	const char *sql =
	    all ? "select order_id, status, count(*), min(seq), max(seq), min(topic), "
		  "min(partition), min(record_offset), (array_agg(reason order by seq nulls last, "
		  "id))[1] from booking_proj.quarantine group by order_id, status order by "
		  "order_id, status"
		: "select order_id, status, count(*), min(seq), max(seq), min(topic), "
		  "min(partition), min(record_offset), (array_agg(reason order by seq nulls last, "
		  "id))[1] from booking_proj.quarantine where status in ('held', 'retry') group by "
		  "order_id, status order by order_id, status";
	PGresult *r = pgu_query(c, sql, 0, NULL, "list quarantine", err, sizeof(err));
	if (!r) {
		fprintf(stderr, "bookingctl quarantine: %s\n", err);
		return BK_EXIT_DEPENDENCY;
	}
	if (as_json) {
		json_t *orders = json_array();
		for (int i = 0; i < PQntuples(r); i++)
			json_array_append_new(
			    orders,
			    json_pack("{s:s, s:s, s:o, s:o, s:o, s:s, s:o, s:o, s:s}", "order_id",
				      PQgetvalue(r, i, 0), "status", PQgetvalue(r, i, 1), "events",
				      int_or_null(r, i, 2), "seq_min", int_or_null(r, i, 3),
				      "seq_max", int_or_null(r, i, 4), "topic", PQgetvalue(r, i, 5),
				      "partition", int_or_null(r, i, 6), "offset",
				      int_or_null(r, i, 7), "reason", PQgetvalue(r, i, 8)));
		json_t *j = json_pack("{s:o}", "orders", orders);
		char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
		if (t)
			puts(t);
		free(t);
		json_decref(j);
		PQclear(r);
		return t ? BK_EXIT_OK : BK_EXIT_PROBLEM;
	}
	printf("%-40s %-8s %6s %-13s %s\n", "ORDER", "STATUS", "EVENTS", "SEQS",
	       "FIRST (topic/partition@offset: reason)");
	for (int i = 0; i < PQntuples(r); i++) {
		char seqs[64];
		snprintf(seqs, sizeof(seqs), "%s-%s",
			 PQgetisnull(r, i, 3) ? "?" : PQgetvalue(r, i, 3),
			 PQgetisnull(r, i, 4) ? "?" : PQgetvalue(r, i, 4));
		printf("%-40s %-8s %6s %-13s %s/%s@%s: %s\n", PQgetvalue(r, i, 0),
		       PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), seqs, PQgetvalue(r, i, 5),
		       PQgetvalue(r, i, 6), PQgetvalue(r, i, 7), PQgetvalue(r, i, 8));
	}
	PQclear(r);
	return BK_EXIT_OK;
}

static int change(PGconn *c, const char *what, char **orders, int n)
{
	const char *sql =
	    strcmp(what, "retry") == 0
		? "update booking_proj.quarantine set status = 'retry', updated_at = "
		  "now() where order_id = $1 and status in ('held', 'retry')"
		: "update booking_proj.quarantine set status = 'skipped', updated_at = "
		  "now() where order_id = $1 and status in ('held', 'retry')";
	int rc = BK_EXIT_OK;
	for (int i = 0; i < n; i++) {
		char err[512];
		const char *p[1] = {orders[i]};
		PGresult *r = pgu_query(c, sql, 1, p, what, err, sizeof(err));
		if (!r) {
			fprintf(stderr, "bookingctl quarantine: %s\n", err);
			return BK_EXIT_DEPENDENCY;
		}
		const char *n_rows = PQcmdTuples(r);
		if (strcmp(n_rows, "0") == 0) {
			fprintf(stderr, "bookingctl quarantine: order %s has no waiting events\n",
				orders[i]);
			rc = BK_EXIT_PROBLEM;
		} else {
			printf("%s %s: %s event(s)\n", what, orders[i], n_rows);
		}
		PQclear(r);
	}
	return rc;
}

int cmd_quarantine(int argc, char **argv)
{
	const char *conninfo = NULL, *sub = NULL;
	bool all = false, as_json = false;
	int fr;
	char **orders = calloc((size_t)argc + 1, sizeof(char *));
	int n = 0;
	if (!orders)
		return BK_EXIT_DEPENDENCY;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			free(orders);
			return BK_EXIT_OK;
		} else if (!strcmp(a, "-d") || !strcmp(a, "--dbname")) {
			if (++i >= argc)
				goto bad;
			conninfo = argv[i];
		} else if (!strncmp(a, "--dbname=", 9)) {
			conninfo = a + 9;
		} else if (!strcmp(a, "--all")) {
			all = true;
		} else if ((fr = cmd_take_format(argc, argv, &i, "bookingctl quarantine",
						 &as_json)) != 0) {
			if (fr < 0) {
				free(orders);
				return BK_EXIT_USAGE;
			}
		} else if (a[0] == '-') {
			goto bad;
		} else if (!sub) {
			sub = a;
		} else {
			orders[n++] = argv[i];
		}
	}
	if (!sub || (strcmp(sub, "list") && strcmp(sub, "retry") && strcmp(sub, "skip")) ||
	    (strcmp(sub, "list") == 0) != (n == 0))
		goto bad;
	char err[512];
	PGconn *c = pgu_connect(
	    conninfo, &(pgu_connect_opts){.attempts = 3, .application_name = "bookingctl"}, err,
	    sizeof(err));
	if (!c) {
		fprintf(stderr, "bookingctl quarantine: %s\n", err);
		free(orders);
		return BK_EXIT_DEPENDENCY;
	}
	int rc = strcmp(sub, "list") == 0 ? list(c, all, as_json) : change(c, sub, orders, n);
	PQfinish(c);
	free(orders);
	return rc;
bad:
	usage(stderr);
	free(orders);
	return BK_EXIT_USAGE;
}
