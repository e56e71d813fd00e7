/*
 * cmd_fsm.c - `bookingctl fsm`: the state machines of core/bk_fsm.c rendered as Markdown
 * tables or Graphviz DOT digraphs, and linted (--lint). Every row, name and guard printed
 * here is read from the tables at run time; nothing in this file restates a transition,
 * so the docs cannot drift from what the decider enforces.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "bk_fsm.h"
#include "bk_model.h"
#include "cmd.h"

#define MAX_STATES 16
_Static_assert(BK_ST__COUNT <= MAX_STATES && BK_CS__COUNT <= MAX_STATES &&
		   BK_MS__COUNT <= MAX_STATES && BK_OS__COUNT <= MAX_STATES &&
		   BK_RQ__COUNT <= MAX_STATES && BK_RC__COUNT <= MAX_STATES &&
		   BK_DS__COUNT <= MAX_STATES,
	       "raise MAX_STATES");

typedef enum fsm_machine {
	MACH_STATUS,
	MACH_CARD,
	MACH_MS,
	MACH_OSTATE,
	MACH_PROFILE,
	MACH_REQUEST,	/* bk_life_tables[BK_LIFE_REQUEST] */
	MACH_RECIPIENT, /* ... BK_LIFE_RECIPIENT */
	MACH_DISPUTE,	/* ... BK_LIFE_DISPUTE */
	MACH__COUNT
} fsm_machine;
#define LIFE_OF(m) ((bk_life)((m)-MACH_REQUEST))
typedef enum fsm_format { FMT_MARKDOWN, FMT_DOT } fsm_format;

static const char *const machine_names[MACH__COUNT] = {
    [MACH_STATUS] = "status",
    [MACH_CARD] = "card",
    [MACH_MS] = "milestone",
    [MACH_OSTATE] = "order_state",
    [MACH_PROFILE] = "profile",
    [MACH_REQUEST] = "request",
    [MACH_RECIPIENT] = "invite_recipient",
    [MACH_DISPUTE] = "dispute",
};

/* --- a small bounded string builder (labels, cells) ----------------------------- */

typedef struct sbuf {
	char b[4096];
	size_t n;
} sbuf;

static void sb_init(sbuf *s)
{
	s->n = 0;
	s->b[0] = '\0';
}

/* Appends; output that does not fit is cut (no label here comes near the size). */
__attribute__((format(printf, 2, 3))) static void sb_add(sbuf *s, const char *fmt, ...)
{
	size_t room = sizeof(s->b) - s->n;
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(s->b + s->n, room, fmt, ap);
	va_end(ap);
	if (k > 0)
		s->n += (size_t)k < room ? (size_t)k : room - 1;
}

/* Appends `line` as a new line of s unless s already holds exactly that line. */
static void sb_add_line(sbuf *s, const char *line)
{
	size_t len = strlen(line);

	for (const char *p = s->b; *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == len && memcmp(p, line, len) == 0)
			return;
		p += n + (e ? 1 : 0);
	}
	sb_add(s, "%s%s", s->n ? "\n" : "", line);
}

/*
 * Appends the lines of `lines` to s joined by ", "; with per_line > 0, every per_line
 * items (and before the first) a newline starts a new line instead.
 */
static void sb_add_wrapped(sbuf *s, const char *lines, int per_line)
{
	int k = 0;

	for (const char *p = lines; *p; k++) {
		size_t n = strcspn(p, "\n");
		const char *sep = per_line > 0 && k % per_line == 0 ? "\n" : k ? ", " : "";
		sb_add(s, "%s%.*s", sep, (int)n, p);
		p += n + (p[n] ? 1 : 0);
	}
}

/* --- names as int -> string, so one helper serves every machine ----------------- */

typedef const char *(*name_fn)(int v);

static const char *status_nm(int v)
{
	return bk_status_name((bk_status)v);
}
static const char *ostate_nm(int v)
{
	return bk_ostate_name((bk_ostate)v);
}
static const char *role_nm(int v)
{
	return bk_role_name((bk_role)v);
}
static const char *card_type_nm(int v)
{
	return bk_card_type_name((bk_card_type)v);
}
static const char *card_state_nm(int v)
{
	return bk_card_state_name((bk_card_state)v);
}
static const char *ms_state_nm(int v)
{
	return bk_ms_state_name((bk_ms_state)v);
}
/* The profile machine's nodes are the states after unbound, which is its start node. */
static const char *profile_node_nm(int v)
{
	return bk_profile_state_name((bk_profile_state)(v + 1));
}

/* The names of the bits of mask, ", "-separated; `all` when every one of count is set. */
static void sb_mask(sbuf *s, unsigned mask, int count, name_fn name, const char *all)
{
	const char *sep = "";

	if (all && mask == (1u << count) - 1) {
		sb_add(s, "%s", all);
		return;
	}
	for (int i = 0; i < count; i++)
		if (mask & (1u << i)) {
			sb_add(s, "%s%s", sep, name(i));
			sep = ", ";
		}
}

/* --- machines as graphs: one description per machine ---------------------------- */

/*
 * An edge function says whether table row `row` moves from state `from` (-1: the start,
 * the entity does not exist yet) to state `to`; if so and ret_label is not NULL, it
 * appends the edge label "command [actors] (guard)". Rows that keep the state without
 * naming it (BK_ST_SAME) are not edges.
 */
typedef bool (*edge_fn)(size_t row, int from, int to, sbuf *ret_label);

typedef struct machine_desc {
	const char *graph;   /* DOT graph name */
	const char *title;   /* the column it describes */
	const char *start;   /* what the start node stands for */
	const char *rankdir; /* DOT layout direction: TB for the big machines */
	int nstates;
	unsigned entered; /* states entered from outside the table (lint: reachable) */
	size_t nrows;
	name_fn state_name;
	edge_fn edge;
	bool (*is_terminal)(int s); /* NULL: a state no row leaves is terminal */
} machine_desc;

static void row_label(sbuf *l, const char *cmd, unsigned actors, const char *actor_text,
		      const char *guard)
{
	sb_add(l, "%s [", cmd);
	if (actor_text)
		sb_add(l, "%s", actor_text);
	else
		sb_mask(l, actors, BK_ROLE__COUNT, role_nm, NULL);
	sb_add(l, "]");
	if (guard && guard[0])
		sb_add(l, " (%s)", guard);
}

static bool status_edge(size_t row, int from, int to, sbuf *ret_label)
{
	const bk_status_row *r = &bk_status_table[row];

	if (r->to == BK_ST_SAME || r->to != to)
		return false;
	if (from < 0 ? r->from != 0 : !(r->from & BK_STM(from)))
		return false;
	if (ret_label)
		row_label(ret_label, bk_cmd_name((bk_cmd_type)r->cmd), r->actors, NULL,
			  bk_guard_name((bk_guard)r->guard));
	return true;
}

static bool status_terminal(int s)
{
	return bk_status_is_terminal((bk_status)s);
}

static bool card_terminal(int s)
{
	return bk_card_state_is_terminal((bk_card_state)s);
}

static bool ms_terminal(int s)
{
	return bk_ms_state_is_terminal((bk_ms_state)s);
}

static bool card_edge(size_t row, int from, int to, sbuf *ret_label)
{
	const bk_card_row *r = &bk_card_table[row];

	if (r->to != to || (from < 0 ? r->from != 0 : !(r->from & BK_CSM(from))))
		return false;
	if (ret_label) {
		sbuf types;
		sb_init(&types);
		sb_mask(&types, r->types, BK_CT__COUNT, card_type_nm, "any type");
		if (r->op == BK_CO_OPEN)
			row_label(ret_label, bk_card_op_name((bk_card_op)r->op), r->openers, NULL,
				  types.b);
		else
			row_label(ret_label, bk_card_op_name((bk_card_op)r->op), 0,
				  bk_card_who_name((bk_card_who)r->who), types.b);
	}
	return true;
}

static bool ms_edge(size_t row, int from, int to, sbuf *ret_label)
{
	const bk_ms_row *r = &bk_ms_table[row];

	if (r->to != to || (from < 0 ? r->from != 0 : !(r->from & BK_MSM(from))))
		return false;
	if (ret_label)
		row_label(ret_label, bk_cmd_name((bk_cmd_type)r->cmd), r->actors, NULL, NULL);
	return true;
}

/* A profile row moves from node `from` (-1: the start, unbound) to node `to` when its
 * from-mask holds that state and it leads to `to` (BK_PS_SAME: to where it was). */
static bool profile_edge(size_t row, int from, int to, sbuf *ret_label)
{
	const bk_profile_row *r = &bk_profile_table[row];
	int f = from < 0 ? BK_PS_UNBOUND : from + 1, t = to + 1;

	if (!(r->from & BK_PSM(f)) || (r->to == BK_PS_SAME ? f : r->to) != t)
		return false;
	if (ret_label)
		row_label(ret_label, bk_cmd_name((bk_cmd_type)r->cmd), r->actors, NULL,
			  bk_profile_who_name((bk_profile_who)r->who));
	return true;
}

static bool profile_terminal(int s)
{
	return s + 1 == BK_PS_BOUND; /* nothing unbinds a profile; a rebind keeps it bound */
}

/* The status rows projected onto ord.order_state; moves inside one order_state vanish. */
static bool ostate_edge(size_t row, int from, int to, sbuf *ret_label)
{
	const bk_status_row *r = &bk_status_table[row];
	bool hit = false;

	if (r->to == BK_ST_SAME || (int)bk_ostate_of((bk_status)r->to) != to)
		return false;
	if (from < 0) {
		hit = r->from == 0;
	} else if (from != to) {
		for (int s = 0; s < BK_ST__COUNT && !hit; s++)
			hit = (r->from & BK_STM(s)) && (int)bk_ostate_of((bk_status)s) == from;
	}
	if (hit && ret_label)
		row_label(ret_label, bk_cmd_name((bk_cmd_type)r->cmd), r->actors, NULL,
			  bk_guard_name((bk_guard)r->guard));
	return hit;
}

/* An order_state is terminal when every status that maps to it is. */
static bool ostate_terminal(int o)
{
	bool any = false;

	for (int s = 0; s < BK_ST__COUNT; s++) {
		if ((int)bk_ostate_of((bk_status)s) != o)
			continue;
		if (!bk_status_is_terminal((bk_status)s))
			return false;
		any = true;
	}
	return any;
}

/* A lifecycle row (bk_life_tables) moves from `from` (-1: a new part) to `to`. */
static bool life_edge(bk_life l, size_t row, int from, int to, sbuf *ret_label)
{
	const bk_life_row *r = &bk_life_tables[l].rows[row];

	if (r->to != to || (from < 0 ? r->from != 0 : !(r->from & (1u << from))))
		return false;
	if (ret_label)
		sb_add(ret_label, "%s", bk_cmd_name((bk_cmd_type)r->cmd));
	return true;
}
static bool req_edge(size_t row, int from, int to, sbuf *ret_label)
{
	return life_edge(BK_LIFE_REQUEST, row, from, to, ret_label);
}
static bool rcp_edge(size_t row, int from, int to, sbuf *ret_label)
{
	return life_edge(BK_LIFE_RECIPIENT, row, from, to, ret_label);
}
static bool dsp_edge(size_t row, int from, int to, sbuf *ret_label)
{
	return life_edge(BK_LIFE_DISPUTE, row, from, to, ret_label);
}

static const machine_desc machines[MACH__COUNT] = {
    [MACH_STATUS] = {.graph = "booking_status",
		     .title = "booking.order.status",
		     .start = "no order yet",
		     .rankdir = "TB",
		     .nstates = BK_ST__COUNT,
		     .state_name = status_nm,
		     .edge = status_edge,
		     .is_terminal = status_terminal},
    [MACH_CARD] = {.graph = "card_state",
		   .title = "ord.card.state",
		   .start = "no card yet",
		   .rankdir = "LR",
		   .nstates = BK_CS__COUNT,
		   .state_name = card_state_nm,
		   .edge = card_edge,
		   .is_terminal = card_terminal},
    [MACH_MS] = {.graph = "milestone",
		 .title = "booking.milestone.status",
		 .start = "no milestone yet",
		 .rankdir = "LR",
		 .nstates = BK_MS__COUNT,
		 .state_name = ms_state_nm,
		 .edge = ms_edge,
		 .is_terminal = ms_terminal},
    [MACH_OSTATE] = {.graph = "order_state",
		     .title = "ord.order.state",
		     .start = "no order yet",
		     .rankdir = "TB",
		     .nstates = BK_OS__COUNT,
		     .state_name = ostate_nm,
		     .edge = ostate_edge,
		     .is_terminal = ostate_terminal},
    [MACH_PROFILE] = {.graph = "service_profile",
		      .title = "service profile (booking.rules)",
		      .start = "unbound",
		      .rankdir = "LR",
		      .nstates = BK_PS__COUNT - 1,
		      .state_name = profile_node_nm,
		      .edge = profile_edge,
		      .is_terminal = profile_terminal,
		      .entered = 1u << (BK_PS_LEGACY - 1)}, /* records from before profile.bind */
    [MACH_REQUEST] = {.graph = "request",
		      .start = "no request yet",
		      .rankdir = "LR",
		      .edge = req_edge},
    [MACH_RECIPIENT] = {.graph = "invite_recipient",
			.start = "not invited",
			.rankdir = "LR",
			.edge = rcp_edge},
    [MACH_DISPUTE] = {.graph = "dispute",
		      .start = "no dispute yet",
		      .rankdir = "LR",
		      .edge = dsp_edge},
};

/* The table lengths are not constant expressions: fill them in at run time. */
static machine_desc machine_get(fsm_machine m)
{
	machine_desc d = machines[m];
	if (m >= MACH_REQUEST) { /* the lifecycle tables say the rest */
		const bk_life_table *t = &bk_life_tables[LIFE_OF(m)];
		d.title = t->title;
		d.nstates = t->nstates;
		d.nrows = t->n;
		d.state_name = t->state_name;
		d.entered = t->entered;
		return d;
	}

	d.nrows = m == MACH_CARD      ? bk_card_table_len
		  : m == MACH_MS      ? bk_ms_table_len
		  : m == MACH_PROFILE ? bk_profile_table_len
				      : bk_status_table_len;
	return d;
}

/* adj[from + 1][to]: some row moves from `from` (-1 = start) to `to`. */
typedef struct graph {
	bool adj[MAX_STATES + 1][MAX_STATES];
	bool terminal[MAX_STATES];
} graph;

static void graph_build(const machine_desc *m, graph *ret)
{
	memset(ret, 0, sizeof(*ret));
	for (int from = -1; from < m->nstates; from++)
		for (int to = 0; to < m->nstates; to++)
			for (size_t i = 0; i < m->nrows && !ret->adj[from + 1][to]; i++)
				ret->adj[from + 1][to] = m->edge(i, from, to, NULL);
	for (int s = 0; s < m->nstates; s++) {
		bool leaves = false;
		for (int t = 0; t < m->nstates; t++)
			leaves = leaves || ret->adj[s + 1][t];
		ret->terminal[s] = m->is_terminal ? m->is_terminal(s) : !leaves;
	}
}

/* --- Markdown -------------------------------------------------------------------- */

static const char *dash(const char *s)
{
	return s && s[0] ? s : "—";
}

static void md_states_line(FILE *f, const machine_desc *m, const graph *g, const char *how)
{
	fprintf(f, "States: ");
	for (int s = 0; s < m->nstates; s++)
		fprintf(f, "%s`%s`%s", s ? ", " : "", m->state_name(s),
			g->terminal[s] ? " (terminal)" : "");
	fprintf(f, ".%s%s\n\n", how ? " " : "", how ? how : "");
}

static void md_status(FILE *f)
{
	machine_desc m = machine_get(MACH_STATUS);
	graph g;

	graph_build(&m, &g);
	fprintf(f,
		"## booking_status\n\n`%s`, %zu rows. An order does not exist until "
		"`order.create`; a command whose (status, actor, guard) matches no row is "
		"rejected `invalid_transition`.\n\n",
		m.title, m.nrows);
	md_states_line(f, &m, &g, "Terminal statuses accept only the rows listed for them.");
	fprintf(f, "| # | command | actors | from | to | guard |\n"
		   "|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < bk_status_table_len; i++) {
		const bk_status_row *r = &bk_status_table[i];
		sbuf actors, from;
		sb_init(&actors);
		sb_init(&from);
		sb_mask(&actors, r->actors, BK_ROLE__COUNT, role_nm, NULL);
		if (r->from == 0)
			sb_add(&from, "— (no order yet)");
		else
			sb_mask(&from, r->from, BK_ST__COUNT, status_nm, "any status");
		fprintf(f, "| %u | `%s`%s | %s | %s | %s | %s |\n", (unsigned)r->index,
			bk_cmd_name((bk_cmd_type)r->cmd),
			bk_cmd_is_internal((bk_cmd_type)r->cmd) ? " (internal)" : "", actors.b,
			from.b, r->to == BK_ST_SAME ? "(same)" : bk_status_name((bk_status)r->to),
			dash(bk_guard_name((bk_guard)r->guard)));
	}
	fprintf(f, "\n");
}

static void md_card(FILE *f)
{
	machine_desc m = machine_get(MACH_CARD);
	sbuf where;
	graph g;

	graph_build(&m, &g);
	sb_init(&where);
	sb_mask(&where, BK_CARD_STATUSES, BK_ST__COUNT, status_nm, NULL);
	fprintf(f,
		"## card_state\n\n`%s`, %zu rows. Cards are opened and responded to while "
		"the order is %s. \"who\" is relative to the card's creator; \"who may open\" "
		"is the role that may open a card of those types.\n\n",
		m.title, m.nrows, where.b);
	md_states_line(f, &m, &g, "(Terminal here: no row leaves the state.)");
	fprintf(f, "| # | op | card types | from | to | who | who may open |\n"
		   "|---|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < bk_card_table_len; i++) {
		const bk_card_row *r = &bk_card_table[i];
		sbuf types, from, openers;
		sb_init(&types);
		sb_init(&from);
		sb_init(&openers);
		sb_mask(&types, r->types, BK_CT__COUNT, card_type_nm, "any type");
		if (r->from == 0)
			sb_add(&from, "— (no card yet)");
		else
			sb_mask(&from, r->from, BK_CS__COUNT, card_state_nm, NULL);
		sb_mask(&openers, r->openers, BK_ROLE__COUNT, role_nm, NULL);
		fprintf(f, "| %u | `%s` | %s | %s | %s | %s | %s |\n", (unsigned)r->index,
			bk_card_op_name((bk_card_op)r->op), types.b, from.b,
			bk_card_state_name((bk_card_state)r->to),
			bk_card_who_name((bk_card_who)r->who), dash(openers.b));
	}
	fprintf(f, "\n");
}

static void md_ms(FILE *f)
{
	machine_desc m = machine_get(MACH_MS);
	graph g;

	graph_build(&m, &g);
	fprintf(f, "## milestone\n\n`%s`, %zu rows.\n\n", m.title, m.nrows);
	md_states_line(f, &m, &g, "(Terminal here: no row leaves the state.)");
	fprintf(f, "| # | command | actors | from | to |\n|---|---|---|---|---|\n");
	for (size_t i = 0; i < bk_ms_table_len; i++) {
		const bk_ms_row *r = &bk_ms_table[i];
		sbuf actors, from;
		sb_init(&actors);
		sb_init(&from);
		sb_mask(&actors, r->actors, BK_ROLE__COUNT, role_nm, NULL);
		if (r->from == 0)
			sb_add(&from, "— (new milestone)");
		else
			sb_mask(&from, r->from, BK_MS__COUNT, ms_state_nm, NULL);
		fprintf(f, "| %u | `%s` | %s | %s | %s |\n", (unsigned)r->index,
			bk_cmd_name((bk_cmd_type)r->cmd), actors.b, from.b,
			bk_ms_state_name((bk_ms_state)r->to));
	}
	fprintf(f, "\n");
}

/* A lifecycle table (requests, invite recipients, disputes) as Markdown. */
static void md_life(FILE *f, fsm_machine which)
{
	machine_desc m = machine_get(which);
	const bk_life_table *t = &bk_life_tables[LIFE_OF(which)];
	graph g;

	graph_build(&m, &g);
	fprintf(f,
		"## %s\n\n`%s`, %zu rows. Who may issue each command, and in which order "
		"status, is the status table's.\n\n",
		t->name, m.title, m.nrows);
	md_states_line(f, &m, &g, "(Terminal here: no row leaves the state.)");
	fprintf(f, "| # | command | from | to |\n|---|---|---|---|\n");
	for (size_t i = 0; i < t->n; i++) {
		const bk_life_row *r = &t->rows[i];
		sbuf from;
		sb_init(&from);
		if (r->from == 0)
			sb_add(&from, "— (new)");
		else
			sb_mask(&from, r->from, t->nstates, t->state_name, NULL);
		fprintf(f, "| %u | `%s` | %s | %s |\n", (unsigned)r->index,
			bk_cmd_name((bk_cmd_type)r->cmd), from.b, t->state_name(r->to));
	}
	fprintf(f, "\n");
}
static void md_request(FILE *f)
{
	md_life(f, MACH_REQUEST);
}
static void md_recipient(FILE *f)
{
	md_life(f, MACH_RECIPIENT);
}
static void md_dispute(FILE *f)
{
	md_life(f, MACH_DISPUTE);
}

static void md_ostate(FILE *f)
{
	machine_desc m = machine_get(MACH_OSTATE);
	graph g;

	graph_build(&m, &g);
	fprintf(f,
		"## order_state\n\n`%s`: never set by a command, always `bk_ostate_of(status)`."
		" Its moves are the booking_status rows that change it.\n\n",
		m.title);
	fprintf(f, "| order_state | booking statuses | terminal |\n|---|---|---|\n");
	for (int o = 0; o < BK_OS__COUNT; o++) {
		sbuf sts;
		sb_init(&sts);
		for (int s = 0; s < BK_ST__COUNT; s++)
			if ((int)bk_ostate_of((bk_status)s) == o)
				sb_add(&sts, "%s%s", sts.n ? ", " : "",
				       bk_status_name((bk_status)s));
		fprintf(f, "| %s | %s | %s |\n", bk_ostate_name((bk_ostate)o), dash(sts.b),
			g.terminal[o] ? "yes" : "no");
	}
	fprintf(f, "\n| from | to | commands |\n|---|---|---|\n");
	for (int from = -1; from < m.nstates; from++)
		for (int to = 0; to < m.nstates; to++) {
			sbuf cmds, row;
			if (!g.adj[from + 1][to])
				continue;
			sb_init(&cmds);
			for (size_t i = 0; i < m.nrows; i++)
				if (ostate_edge(i, from, to, NULL)) {
					char c[64];
					snprintf(c, sizeof(c), "`%s`",
						 bk_cmd_name((bk_cmd_type)bk_status_table[i].cmd));
					sb_add_line(&cmds, c);
				}
			sb_init(&row);
			sb_add_wrapped(&row, cmds.b, 0);
			fprintf(f, "| %s | %s | %s |\n",
				from < 0 ? "— (no order yet)" : ostate_nm(from), ostate_nm(to),
				row.b);
		}
	fprintf(f, "\n");
}

static void md_profile(FILE *f)
{
	machine_desc m = machine_get(MACH_PROFILE);

	fprintf(f,
		"## service_profile\n\n`%s`, %zu rows. Commands keyed by a service profile, "
		"decided on the profile's record in `booking.rules`, not on an order: a command "
		"whose (state, role, who) matches no row is rejected `forbidden`.\n\n",
		m.title, m.nrows);
	fprintf(f, "States: ");
	for (int s = 0; s < BK_PS__COUNT; s++)
		fprintf(f, "%s`%s`", s ? ", " : "", bk_profile_state_name((bk_profile_state)s));
	fprintf(f,
		". `%s`: no profile.bind yet (the start); `%s`: a record written before "
		"profile.bind existed, owned by its first rule's provider.\n\n",
		bk_profile_state_name(BK_PS_UNBOUND), bk_profile_state_name(BK_PS_LEGACY));
	fprintf(f, "| # | command | actors | from | to | who |\n|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < bk_profile_table_len; i++) {
		const bk_profile_row *r = &bk_profile_table[i];
		sbuf actors, from;
		sb_init(&actors);
		sb_init(&from);
		sb_mask(&actors, r->actors, BK_ROLE__COUNT, role_nm, NULL);
		for (int s = 0; s < BK_PS__COUNT; s++)
			if (r->from & BK_PSM(s))
				sb_add(&from, "%s%s", from.n ? ", " : "",
				       bk_profile_state_name((bk_profile_state)s));
		fprintf(f, "| %u | `%s` | %s | %s | %s | %s |\n", (unsigned)r->index,
			bk_cmd_name((bk_cmd_type)r->cmd), actors.b, from.b,
			r->to == BK_PS_SAME ? "(same)"
					    : bk_profile_state_name((bk_profile_state)r->to),
			bk_profile_who_name((bk_profile_who)r->who));
	}
	fprintf(f, "\n");
}

/* --- DOT --------------------------------------------------------------------------- */

/* Writes s as the inside of a DOT string: quotes escaped, newlines as \n. */
static void dot_str(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

/* What the drawing leaves out, as a graph label; empty when nothing is. */
static void dot_note(fsm_machine which, sbuf *ret)
{
	if (which == MACH_STATUS) {
		sbuf cmds;
		sb_init(&cmds);
		for (size_t i = 0; i < bk_status_table_len; i++)
			if (bk_status_table[i].to == BK_ST_SAME)
				sb_add_line(&cmds,
					    bk_cmd_name((bk_cmd_type)bk_status_table[i].cmd));
		sb_add(ret, "Not drawn: rows that keep the status:");
		sb_add_wrapped(ret, cmds.b, 5);
	} else if (which == MACH_OSTATE) {
		sbuf moves;
		sb_init(&moves);
		for (size_t i = 0; i < bk_status_table_len; i++) {
			const bk_status_row *r = &bk_status_table[i];
			for (int st = 0; st < BK_ST__COUNT && r->to != BK_ST_SAME; st++) {
				char mv[80];
				if (!(r->from & BK_STM(st)) || st == r->to ||
				    bk_ostate_of((bk_status)st) != bk_ostate_of((bk_status)r->to))
					continue;
				snprintf(mv, sizeof(mv), "%s -> %s", status_nm(st),
					 status_nm(r->to));
				sb_add_line(&moves, mv);
			}
		}
		sb_add(ret, "Not drawn: status moves inside one order_state:");
		sb_add_wrapped(ret, moves.b, 4);
	}
}

static void dot_machine(FILE *f, fsm_machine which)
{
	machine_desc m = machine_get(which);
	sbuf note;
	graph g;

	graph_build(&m, &g);
	fprintf(f,
		"digraph %s {\n"
		"\trankdir=%s;\n"
		"\tfontname=\"Helvetica\";\n"
		"\tnode [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=11];\n"
		"\tedge [fontname=\"Helvetica\", fontsize=9];\n",
		m.graph, m.rankdir);
	sb_init(&note);
	dot_note(which, &note);
	fprintf(f, "\tlabelloc=t;\n\tlabel=\"");
	dot_str(f, m.title);
	if (note.n) {
		fputs("\\n", f);
		dot_str(f, note.b);
	}
	fprintf(f, "\";\n\t\"__start\" [shape=point, width=0.15, label=\"\", xlabel=\"%s\"];\n",
		m.start);
	for (int s = 0; s < m.nstates; s++)
		fprintf(f, "\t\"%s\"%s;\n", m.state_name(s),
			g.terminal[s] ? " [peripheries=2]" : "");
	for (int from = -1; from < m.nstates; from++)
		for (int to = 0; to < m.nstates; to++) {
			sbuf label;
			if (!g.adj[from + 1][to])
				continue;
			sb_init(&label);
			for (size_t i = 0; i < m.nrows; i++) {
				sbuf one;
				sb_init(&one);
				if (m.edge(i, from, to, &one))
					sb_add_line(&label, one.b);
			}
			fprintf(f, "\t\"%s\" -> \"%s\" [label=\"",
				from < 0 ? "__start" : m.state_name(from), m.state_name(to));
			dot_str(f, label.b);
			fprintf(f, "\"];\n");
		}
	fprintf(f, "}\n");
}

/* --- lint -------------------------------------------------------------------------- */

/*
 * Reports, one line each, the states of machine `which` that the start cannot reach,
 * the non-terminal states no row leaves for another state (dead ends), and the reachable
 * non-terminal states from which no terminal state can be reached (traps). Returns the
 * number of findings.
 */
static int lint_machine(FILE *f, fsm_machine which, int *ret_terminals)
{
	machine_desc m = machine_get(which);
	bool reach[MAX_STATES] = {false}, ends[MAX_STATES] = {false};
	int findings = 0, terminals = 0;
	bool grew = true;
	graph g;

	graph_build(&m, &g);
	for (int s = 0; s < m.nstates; s++) {
		reach[s] = g.adj[0][s] || (m.entered & (1u << s));
		ends[s] = g.terminal[s];
		terminals += g.terminal[s];
	}
	while (grew) {
		grew = false;
		for (int s = 0; s < m.nstates; s++)
			for (int t = 0; t < m.nstates; t++) {
				if (reach[s] && g.adj[s + 1][t] && !reach[t])
					reach[t] = grew = true;
				if (ends[t] && g.adj[s + 1][t] && !ends[s])
					ends[s] = grew = true;
			}
	}
	for (int s = 0; s < m.nstates; s++) {
		bool leaves = false;
		for (int t = 0; t < m.nstates; t++)
			leaves = leaves || (t != s && g.adj[s + 1][t]);
		if (!reach[s]) {
			fprintf(f, "%s: unreachable: %s (no path from \"%s\" through the table)\n",
				machine_names[which], m.state_name(s), m.start);
			findings++;
		}
		if (!g.terminal[s] && !leaves) {
			fprintf(f,
				"%s: dead end: %s (not terminal, no row leads to another state)\n",
				machine_names[which], m.state_name(s));
			findings++;
		} else if (reach[s] && !ends[s]) {
			fprintf(f, "%s: trap: %s (no path from it to a terminal state)\n",
				machine_names[which], m.state_name(s));
			findings++;
		}
	}
	*ret_terminals = terminals;
	return findings;
}

/* Every order_state should be the image of some status, or it can never be shown. */
static int lint_ostate_image(FILE *f)
{
	int findings = 0;

	for (int o = 0; o < BK_OS__COUNT; o++) {
		bool hit = false;
		for (int s = 0; s < BK_ST__COUNT && !hit; s++)
			hit = (int)bk_ostate_of((bk_status)s) == o;
		if (!hit) {
			fprintf(f, "order_state: unmapped: %s (no booking status derives it)\n",
				bk_ostate_name((bk_ostate)o));
			findings++;
		}
	}
	return findings;
}

static int run_lint(FILE *f, unsigned which_mask)
{
	char err[256];
	sbuf summary;
	int findings = 0;

	sb_init(&summary);
	if (bk_fsm_selfcheck(err, sizeof(err)) != 0) {
		fprintf(f, "selfcheck: %s\n", err);
		findings++;
	}
	for (int w = 0; w < MACH__COUNT; w++) {
		machine_desc m = machine_get((fsm_machine)w);
		int terminals = 0;
		if (!(which_mask & (1u << w)))
			continue;
		findings += lint_machine(f, (fsm_machine)w, &terminals);
		if (w == MACH_OSTATE)
			findings += lint_ostate_image(f);
		sb_add(&summary, "%s%s: %d states, ", summary.n ? "; " : "", machine_names[w],
		       m.nstates);
		if (w == MACH_OSTATE)
			sb_add(&summary, "derived, ");
		else
			sb_add(&summary, "%zu rows, ", m.nrows);
		sb_add(&summary, "%d terminal", terminals);
	}
	if (findings) {
		fprintf(f, "fsm lint: %d problem%s\n", findings, findings == 1 ? "" : "s");
		return BK_EXIT_PROBLEM;
	}
	fprintf(f, "fsm lint: ok (selfcheck passed; %s)\n", summary.b);
	return BK_EXIT_OK;
}

/* --- command line ------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bookingctl fsm [--format markdown|dot] [--machine NAME] [--lint]\n"
		"\n"
		"Prints the booking state machines, generated from the tables of core/bk_fsm.c:\n"
		"Markdown (one table per machine, one line per row) or Graphviz DOT (one digraph\n"
		"per machine; edges \"command [actor] (guard)\"; render with `dot -Tsvg`).\n"
		"\n"
		"  -f, --format FMT    markdown (default) or dot\n"
		"  -m, --machine NAME  status, card, milestone, order_state, profile, request,\n"
		"                      invite_recipient, dispute or all\n"
		"                      (default)\n"
		"  -l, --lint          run bk_fsm_selfcheck and report, per machine, unreachable\n"
		"                      states (not reachable from the start through the rows),\n"
		"                      dead ends (non-terminal states no row leaves for another\n"
		"                      state) and traps (no path to a terminal state). Terminal:\n"
		"                      bk_status_is_terminal, bk_card_state_is_terminal and\n"
		"                      bk_ms_state_is_terminal. Not with --format.\n"
		"  -h, --help          this text\n"
		"\n"
		"exit status: 0 ok, 1 lint found problems (or output failed), 2 bad usage\n");
}

static int parse_machine(const char *s, unsigned *ret_mask)
{
	if (strcmp(s, "all") == 0) {
		*ret_mask = (1u << MACH__COUNT) - 1;
		return 0;
	}
	for (int w = 0; w < MACH__COUNT; w++)
		if (strcmp(s, machine_names[w]) == 0) {
			*ret_mask = 1u << w;
			return 0;
		}
	return -1;
}

int cmd_fsm(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"format", required_argument, NULL, 'f'},
	    {"machine", required_argument, NULL, 'm'},
	    {"lint", no_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	unsigned mask = (1u << MACH__COUNT) - 1;
	fsm_format fmt = FMT_MARKDOWN;
	bool lint = false, fmt_given = false;
	int c, rc;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":f:m:lh", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			fmt_given = true;
			if (strcmp(optarg, "markdown") == 0 || strcmp(optarg, "md") == 0) {
				fmt = FMT_MARKDOWN;
			} else if (strcmp(optarg, "dot") == 0) {
				fmt = FMT_DOT;
			} else {
				fprintf(stderr, "fsm: unknown format '%s' (markdown or dot)\n",
					optarg);
				return BK_EXIT_USAGE;
			}
			break;
		case 'm':
			if (parse_machine(optarg, &mask) != 0) {
				fprintf(stderr,
					"fsm: unknown machine '%s' (status, card, milestone, "
					"order_state, profile, request, invite_recipient, dispute "
					"or all)\n",
					optarg);
				return BK_EXIT_USAGE;
			}
			break;
		case 'l':
			lint = true;
			break;
		case 'h':
			usage(stdout);
			return BK_EXIT_OK;
		case ':':
			fprintf(stderr, "fsm: option %s needs an argument\n", argv[optind - 1]);
			usage(stderr);
			return BK_EXIT_USAGE;
		default:
			fprintf(stderr, "fsm: unknown option: %s\n", argv[optind - 1]);
			usage(stderr);
			return BK_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "fsm: unexpected argument: %s\n", argv[optind]);
		usage(stderr);
		return BK_EXIT_USAGE;
	}
	if (lint && fmt_given) {
		fprintf(stderr, "fsm: --lint prints findings, not a format: drop --format\n");
		return BK_EXIT_USAGE;
	}

	if (lint) {
		rc = run_lint(stdout, mask);
	} else {
		static void (*const md[MACH__COUNT])(FILE *) = {
		    [MACH_STATUS] = md_status,
		    [MACH_CARD] = md_card,
		    [MACH_MS] = md_ms,
		    [MACH_OSTATE] = md_ostate,
		    [MACH_PROFILE] = md_profile,
		    [MACH_REQUEST] = md_request,
		    [MACH_RECIPIENT] = md_recipient,
		    [MACH_DISPUTE] = md_dispute,
		};
		for (int w = 0; w < MACH__COUNT; w++) {
			if (!(mask & (1u << w)))
				continue;
			if (fmt == FMT_DOT)
				dot_machine(stdout, (fsm_machine)w);
			else
				md[w](stdout);
		}
		rc = BK_EXIT_OK;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("fsm: writing stdout");
		return BK_EXIT_PROBLEM;
	}
	return rc;
}
