/*
 * cmd_events.c - `bookingctl events`: the event reference of docs/events.md, rendered as
 * Markdown from the schema table of core/bk_schema.c (every payload field: type,
 * required, the schema version that added it, the read-model column it is projected
 * to) and the versions of core/bk_schema.c. Nothing here restates a field: the decoder
 * checks the same rows. scripts/gen-events-docs.sh pastes it between the GENERATED
 * markers of docs/events.md and checks it there (--check).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "bk_event.h"
#include "bk_schema.h"
#include "cmd.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: bookingctl events [--help]\n\n"
		   "Prints the event reference (the generated part of docs/events.md) as\n"
		   "Markdown: the schema version of every event type and the fields of every\n"
		   "payload, from the schema table the record decoder checks events against.\n");
}

/* The subtypes of a family, as text ("payment.captured, ..."), from the table. */
static void family_members(FILE *f, bk_schema_family fam)
{
	bk_event e;
	bool first = true;
	memset(&e, 0, sizeof(e));
	for (int t = 0; t < BK_EV__COUNT; t++) {
		e.type = (uint8_t)t;
		int nct = t == BK_EV_CARD ? BK_CT__COUNT : 1,
		    ncv = t == BK_EV_CARD ? BK_CV__COUNT : 1;
		for (int ct = 0; ct < nct; ct++)
			for (int cv = 0; cv < ncv; cv++) {
				e.card_type = (uint8_t)ct;
				e.sub = (uint8_t)cv;
				if (bk_event_family(&e) != fam)
					continue;
				char sub[64];
				fprintf(f, "%s`%s`", first ? "" : ", ",
					t == BK_EV_CARD ? bk_event_subtype(&e, sub, sizeof(sub))
							: bk_schemas[t].name);
				first = false;
			}
	}
}

static void print_versions(FILE *f)
{
	fprintf(f,
		"### Schema versions\n\n"
		"Every event carries the version of its type's schema it was written with "
		"(`schema`). The decider writes the current one; readers upcast older ones "
		"(`core/bk_upcast.c`) and report newer ones without applying them. Records "
		"carry the highest in their `schema` header (%d).\n\n"
		"| family | current version | event types |\n|---|---|---|\n",
		BK_EVENT_SCHEMA);
	for (int s = 0; s < BK_SF__COUNT; s++) {
		fprintf(f, "| %s | %u | ", bk_schema_family_name((bk_schema_family)s),
			bk_schema_family_version((bk_schema_family)s));
		if (s == BK_SF_PLAIN)
			fprintf(f, "every other type");
		else
			family_members(f, (bk_schema_family)s);
		fprintf(f, " |\n");
	}
	fprintf(f, "\n");
}

/* Where a field goes: copies as table.column, what the projector derives marked so. */
static void print_proj(FILE *f, const bk_proj *p)
{
	if (!p || !p->table) {
		fprintf(f, "-");
		return;
	}
	for (const bk_proj *q = p; q->table; q++) {
		fprintf(f, "%s", q == p ? "" : ", ");
		if (!q->column)
			fprintf(f, "%s (a row each)", q->table);
		else
			fprintf(f, "%s.%s%s", q->table, q->column,
				q->kind == BK_P_CODE ? " (derived)" : "");
	}
}

static void print_schema(FILE *f, const bk_schema_def *d)
{
	fprintf(f, "#### `%s`\n\n", d->name);
	if (d->note)
		fprintf(f, "%s.\n\n", d->note);
	if (d->fields[0].key == NULL) {
		fprintf(f, "No fields checked.\n\n");
		return;
	}
	fprintf(f, "| field | type | required | since | from the command | projected to "
		   "|\n|---|---|---|---|---|---|\n");
	for (const bk_field *x = d->fields; x->key != NULL; x++) {
		fprintf(f, "| `%s` | %s | %s | %u | ", x->key, bk_ftype_name((bk_ftype)x->type),
			x->req ? "yes" : "no", x->since);
		if (x->src == BK_S_DECIDER)
			fprintf(f, "- | ");
		else
			fprintf(f, "%s, 1 to %u bytes | ",
				x->src == BK_S_CMD_REQUIRED ? "required" : "optional", x->max);
		print_proj(f, x->to);
		fprintf(f, " |\n");
	}
	fprintf(f, "\n");
}

int cmd_events(int argc, char **argv)
{
	static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return BK_EXIT_OK;
		}
		usage(stderr);
		return BK_EXIT_USAGE;
	}
	if (optind != argc) {
		usage(stderr);
		return BK_EXIT_USAGE;
	}
	print_versions(stdout);
	fprintf(stdout, "### Payloads\n\n"
			"Per event type, then the parts some subtypes add and the shapes fields "
			"share. `since`: the first schema version of the event that has the "
			"field (an older event is not checked for it; its upcaster adds it). "
			"`from the command`: the decider copies the command payload's text "
			"field of that name (`-`: it computes the value). `projected to`: the "
			"read-model columns a copy of the value fills, and those the projector "
			"derives from it. Fields not listed are free.\n\n");
	for (int s = 0; s < BK_SC__COUNT; s++)
		print_schema(stdout, &bk_schemas[s]);
	return fflush(stdout) == 0 && !ferror(stdout) ? BK_EXIT_OK : BK_EXIT_PROBLEM;
}
