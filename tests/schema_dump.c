/*
 * schema_dump.c - the C side of the read model's schema, for tests/test_schema_pg.sh to
 * hold against a migrated PostgreSQL (issue #14 item 2): every C enum the read model
 * stores, with the PostgreSQL enum type or CHECK-constrained column that holds it, and
 * every projected column of proj_rows.c's tables with its SQL type. One line each:
 *
 *   enum  <schema.type>          <value,value,...>     (a PostgreSQL enum type)
 *   check <schema.table.column>  <value,value,...>     (a CHECK (col in (...)) list)
 *   col   <schema.table>         <column> <sql type>
 *
 * The correspondence (which C enum a column stores) is written here once; the values and
 * the columns come from the C tables themselves.
 */
#include <stdio.h>

#include "bk_chain.h"
#include "bk_fsm.h"
#include "bk_model.h"
#include "proj_rows.h"

typedef const char *(*name_fn)(int);

/* The names of values [from, to) of a C enum, comma-separated. */
static void values(const char *kind, const char *where, const char *(*name)(int), int from, int to)
{
	printf("%s %s ", kind, where);
	for (int i = from; i < to; i++)
		printf("%s%s", i > from ? "," : "", name(i));
	printf("\n");
}

#define NAMES(fn, type)                                                                            \
	static const char *fn##_i(int v)                                                           \
	{                                                                                          \
		return fn((type)v);                                                                \
	}
NAMES(bk_mode_name, bk_mode)
NAMES(bk_status_name, bk_status)
NAMES(bk_ostate_name, bk_ostate)
NAMES(bk_card_type_name, bk_card_type)
NAMES(bk_card_state_name, bk_card_state)
NAMES(bk_li_kind_name, bk_li_kind)
NAMES(bk_req_status_name, bk_req_status)
NAMES(bk_rcp_status_name, bk_rcp_status)
NAMES(bk_ms_state_name, bk_ms_state)
NAMES(bk_dsp_status_name, bk_dsp_status)
NAMES(bk_chain_verdict_name, bk_chain_verdict)

int main(void)
{
	values("enum", "booking.booking_mode", bk_mode_name_i, 0, BK_MODE__COUNT);
	values("enum", "booking.booking_status", bk_status_name_i, 0, BK_ST__COUNT);
	values("enum", "ord.order_state", bk_ostate_name_i, 0, BK_OS__COUNT);
	values("enum", "ord.card_type", bk_card_type_name_i, 0, BK_CT__COUNT);
	values("enum", "ord.card_state", bk_card_state_name_i, 0, BK_CS__COUNT);
	values("check", "booking.line_item.kind", bk_li_kind_name_i, 0, BK_LI__COUNT);
	values("check", "booking.request.status", bk_req_status_name_i, 0, BK_RQ__COUNT);
	values("check", "booking.invite_recipient.status", bk_rcp_status_name_i, 0, BK_RC__COUNT);
	values("check", "booking.milestone.status", bk_ms_state_name_i, 0, BK_MS__COUNT);
	values("check", "booking.dispute.status", bk_dsp_status_name_i, 0, BK_DS__COUNT);
	/* the verdicts a rejected record can have: the invalid ones (not next, duplicate,
	 * fork, which are applied, skipped or kept in booking_proj.fork) */
	values("check", "booking_proj.rejected.verdict", bk_chain_verdict_name_i, BK_CHAIN_BAD_HASH,
	       BK_CHAIN__COUNT);
	for (int t = 0; t < PR__COUNT; t++)
		for (int c = 0; c < pr_def(t)->ncols; c++)
			printf("col %s %s %s\n", pr_def(t)->name, pr_def(t)->cols[c].name,
			       pr_def(t)->cols[c].type);
	return 0;
}
