/*
 * cmd_wire.c - `bookingctl wire`: the parts of docs/wire.md the code holds as data,
 * rendered as Markdown: command types (from the FSM tables: who may issue each, which
 * are internal), roles, outcomes, error codes (bk_err.h's list, with what a client does
 * on each) and the murmur2_random partition of sample keys (librdkafka's own partitioner).
 * scripts/gen-wire-docs.sh pastes it between the GENERATED markers of docs/wire.md and
 * checks it there (--check), so the contract cannot drift from the code.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "bk_decide.h"
#include "bk_err.h"
#include "bk_fsm.h"
#include "cmd.h"

/* What a client does on each code of a result: one row per bk_err, in its order. */
typedef struct err_advice {
	const char *where;  /* where a client meets it */
	const char *action; /* what it should do */
} err_advice;

static const err_advice advice[BK_E__COUNT] = {
    [BK_E_OK] = {"`accepted`, `duplicate`", "nothing: done (a `duplicate` was applied before, "
					    "under the same command id)"},
    [BK_E_INVALID_TRANSITION] = {"`rejected`", "do not retry as is: read the order's state "
					       "(events) and decide again"},
    [BK_E_VERSION_CONFLICT] = {"`rejected`", "the order moved: re-read it, rebuild the command "
					     "with a new id and the new `expected_version`"},
    [BK_E_FORBIDDEN] = {"`rejected`", "do not retry: the actor may not do this on this order"},
    [BK_E_VALIDATION_FAILED] = {"`rejected`", "fix the command (`message` names the field); "
					      "send it with a new id"},
    [BK_E_UNKNOWN_ORDER] = {"`rejected`", "the order does not exist (yet): check the id, or "
					  "send `order.create` first and wait for its result"},
    [BK_E_ORDER_EXISTS] = {"`rejected`",
			   "the order id is taken: pick a new `ord_` id for a new order"},
    [BK_E_IB_NOT_ALLOWED] = {"`rejected`", "no auto-accept rule allows instant booking: submit "
					   "as RTB or ask the provider for a rule"},
    [BK_E_EXPIRED] = {"`rejected`",
		      "the request or card expired: open a new one with a later `expires_at`"},
    [BK_E_AMOUNT_MISMATCH] = {"`rejected`", "the captured amount differs from the order total "
					    "(`message` has both): reconcile, then resend"},
    [BK_E_OVERFLOW] = {"`rejected`", "an amount or a sum exceeds 2147483647 minor units: "
				     "split the order or fix the amount"},
    [BK_E_NOT_FOUND] = {"`rejected`", "the referenced request, card, dispute or milestone id "
				      "does not exist on this order: check the id"},
    [BK_E_ARCHIVED] = {"`rejected`", "the order ended longer ago than the archive window "
				     "(`--archive-after`): nothing can change it any more, and "
				     "a retry of any of its commands gets this too; read its "
				     "history from the read model"},
    [BK_E_DECODE] = {"never in a result", "the command was dead-lettered (DLQ `decode: ...`): "
					  "fix the encoding, send with a new id"},
    [BK_E_NOMEM] = {"never in a result", "(processor-internal)"},
    [BK_E_CHAIN] = {"never in a result", "(readers of booking.events: a broken hash chain)"},
    [BK_E_AUTH] = {"never in a result", "the command was dead-lettered (DLQ `auth: ...` or "
					"`unsigned: ...`): fix the key or keyring line, resend"},
    [BK_E_INTERNAL] = {"`rejected`", "the processor failed on this command (it is also in "
				     "the DLQ): retry later with the same id, report it"},
};

/* Roles for commands that have no booking_status row (the decider checks them itself). */
static unsigned extra_roles(bk_cmd_type t)
{
	switch (t) {
	case BK_CMD_AUTOACCEPT_SET:
	case BK_CMD_AUTOACCEPT_DELETE:
		return BK_RM(BK_ROLE_PROVIDER);
	default:
		return 0;
	}
}

static void print_commands(FILE *f)
{
	fprintf(f, "### Command types\n\n"
		   "From the state-machine tables (`core/bk_fsm.c`; per status in "
		   "[fsm.md](fsm.md)). Internal types are issued by the processor itself; on "
		   "`booking.commands` they are dead-lettered (`decode: ...`).\n\n"
		   "| type | actor roles | record key (`order_id` field) | internal |\n"
		   "|---|---|---|---|\n");
	for (int t = 0; t < BK_CMD__COUNT; t++) {
		unsigned roles = extra_roles((bk_cmd_type)t);
		for (size_t i = 0; i < bk_status_table_len; i++)
			if (bk_status_table[i].cmd == t)
				roles |= bk_status_table[i].actors;
		for (size_t i = 0; i < bk_ms_table_len; i++)
			if (bk_ms_table[i].cmd == t)
				roles |= bk_ms_table[i].actors;
		fprintf(f, "| `%s` | ", bk_cmd_name((bk_cmd_type)t));
		const char *sep = "";
		for (int r = 0; r < BK_ROLE__COUNT; r++)
			if (roles & BK_RM(r)) {
				fprintf(f, "%s%s", sep, bk_role_name((bk_role)r));
				sep = ", ";
			}
		bool rules = t == BK_CMD_AUTOACCEPT_SET || t == BK_CMD_AUTOACCEPT_DELETE;
		fprintf(f, " | %s | %s |\n",
			t == BK_CMD_ORDER_CREATE ? "the new order id (`ord_...`)"
			: rules			 ? "the service profile id"
						 : "the order id",
			bk_cmd_is_internal((bk_cmd_type)t) ? "yes" : "");
	}
	fprintf(f, "\nRoles (`actor.role`): ");
	for (int r = 0; r < BK_ROLE__COUNT; r++)
		fprintf(f, "%s`%s`", r ? ", " : "", bk_role_name((bk_role)r));
	fprintf(f, ". Outcomes (`status` of a result): `%s`, `%s`, `%s`.\n\n",
		bk_outcome_name(BK_ACCEPTED), bk_outcome_name(BK_REJECTED),
		bk_outcome_name(BK_DUPLICATE));
}

static void print_errors(FILE *f)
{
	fprintf(f, "### Error codes\n\n"
		   "The `code` of a result (`core/bk_err.h`); `message` adds the detail.\n\n"
		   "| code | meaning | status | what a client does |\n"
		   "|---|---|---|---|\n");
	for (int e = 0; e < BK_E__COUNT; e++)
		fprintf(f, "| `%s` | %s | %s | %s |\n", bk_err_name((bk_err)e),
			bk_err_msg((bk_err)e), advice[e].where, advice[e].action);
	fprintf(f, "\n");
}

/* Keys of the partition vectors: ids of the shapes clients send, and edge cases. */
static const char *const vector_keys[] = {
    "ord_1", "ord_2", "ord_rtb_accept_1", "ord_ib_happy_1", "ord_01J9Z3", "sp_anna_berlin",
    "sp_x",  "a",     "ord_cards_001",	  "ord_é", /* non-ASCII: the key's UTF-8 bytes are hashed */
};

static void print_partitions(FILE *f)
{
	static const int counts[] = {1, 4, 8, 64};
	fprintf(f, "### Partition test vectors\n\n"
		   "`murmur2_random` as librdkafka computes it "
		   "(`rd_kafka_msg_partitioner_murmur2_random`, which is Java Kafka's "
		   "default partitioner for keyed records): partition = "
		   "(murmur2(key bytes, seed 0x9747b28c) & 0x7fffffff) %% partition count.\n\n"
		   "| key | 1 | 4 | 8 | 64 |\n|---|---|---|---|---|\n");
	for (size_t k = 0; k < sizeof(vector_keys) / sizeof(vector_keys[0]); k++) {
		const char *key = vector_keys[k];
		fprintf(f, "| `%s` |", key);
		for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++)
			fprintf(f, " %d |",
				(int)rd_kafka_msg_partitioner_murmur2_random(
				    NULL, key, strlen(key), counts[c], NULL, NULL));
		fprintf(f, "\n");
	}
	fprintf(f, "\n");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bookingctl wire [--section commands|errors|partitions|all]\n"
		   "  the generated parts of docs/wire.md as Markdown, from the code's tables\n"
		   "  (scripts/gen-wire-docs.sh writes and checks them)\n"
		   "exit status: 0 ok, 2 bad usage\n");
}

int cmd_wire(int argc, char **argv)
{
	static const struct option longopts[] = {{"section", required_argument, NULL, 's'},
						 {"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};
	const char *section = "all";
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:h", longopts, NULL)) != -1) {
		if (c == 's')
			section = optarg;
		else if (c == 'h') {
			usage(stdout);
			return BK_EXIT_OK;
		} else {
			usage(stderr);
			return BK_EXIT_USAGE;
		}
	}
	bool all = !strcmp(section, "all");
	if (optind != argc || (!all && strcmp(section, "commands") && strcmp(section, "errors") &&
			       strcmp(section, "partitions"))) {
		usage(stderr);
		return BK_EXIT_USAGE;
	}
	if (all || !strcmp(section, "commands"))
		print_commands(stdout);
	if (all || !strcmp(section, "errors"))
		print_errors(stdout);
	if (all || !strcmp(section, "partitions"))
		print_partitions(stdout);
	return fflush(stdout) == 0 && !ferror(stdout) ? BK_EXIT_OK : BK_EXIT_PROBLEM;
}
