/*
 * bookingctl.c - the command-line tool for upstream developers, analysts and support.
 * Dispatches to one subcommand; each subcommand parses its own flags and documents
 * them with --help.
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "conffile.h"

typedef struct subcmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} subcmd;

static const subcmd subcmds[] = {
#ifdef HAVE_CMD_MIGRATE
    {"migrate", cmd_migrate, "apply the SQL migrations to PostgreSQL"},
#endif
#ifdef HAVE_CMD_SEND
    {"send", cmd_send, "send JSON-lines commands, signed, to booking.commands"},
#endif
#ifdef HAVE_CMD_REPLAY
    {"replay", cmd_replay, "print events from the log as JSON lines or msgpack"},
#endif
#ifdef HAVE_CMD_VERIFY
    {"verify", cmd_verify, "check seals, hash chains, seqs and FSM moves of the log"},
#endif
#ifdef HAVE_CMD_SEAL
    {"seal", cmd_seal, "seal a log written before seals (one-time migration)"},
#endif
#ifdef HAVE_CMD_REBUILD
    {"rebuild", cmd_rebuild, "rebuild the read model from offset 0 and swap it in"},
#endif
#ifdef HAVE_CMD_STATUS
    {"status", cmd_status, "projector lag and checkpoints per partition"},
#endif
#ifdef HAVE_CMD_QUARANTINE
    {"quarantine", cmd_quarantine, "list, retry or skip quarantined orders"},
#endif
#ifdef HAVE_CMD_PROFILES
    {"profiles", cmd_profiles, "service profiles and their owners (bound or legacy)"},
#endif
#ifdef HAVE_CMD_FSM
    {"fsm", cmd_fsm, "print the state machines as Markdown or Graphviz DOT; --lint"},
#endif
#ifdef HAVE_CMD_KEYGEN
    {"keygen", cmd_keygen, "generate a signing key pair and its keyring line"},
#endif
#ifdef HAVE_CMD_GEN
    {"gen", cmd_gen, "generate a realistic synthetic command stream"},
#endif
    {"wire", cmd_wire, "print the generated parts of docs/wire.md (the wire contract)"},
#ifdef HAVE_CMD_EVENTS
    {"events", cmd_events, "print the event reference of docs/events.md (the schema table)"},
#endif
#ifdef HAVE_CMD_DEVBROKER
    {"devbroker", cmd_devbroker, "run the development Kafka broker (librdkafka mock cluster)"},
#endif
    {NULL, NULL, NULL},
};

int cmd_take_format(int argc, char **argv, int *i, const char *who, bool *ret_json)
{
	const char *a = argv[*i], *v;
	if (!strcmp(a, "--format")) {
		if (*i + 1 >= argc) {
			fprintf(stderr, "%s: --format needs a value: text or json\n", who);
			return -1;
		}
		v = argv[++*i];
	} else if (!strncmp(a, "--format=", 9)) {
		v = a + 9;
	} else {
		return 0;
	}
	if (strcmp(v, "text") && strcmp(v, "json")) {
		fprintf(stderr, "%s: --format %s: text or json\n", who, v);
		return -1;
	}
	*ret_json = !strcmp(v, "json");
	return 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bookingctl <command> [options]   (bookingctl <command> --help)\n"
		   "       bookingctl --version\n\n"
		   "commands:\n");
	for (const subcmd *s = subcmds; s->name; s++)
		fprintf(f, "  %-11s %s\n", s->name, s->summary);
	fprintf(f,
		"\nEvery command takes -F FILE (its options and librdkafka properties as\n"
		"key=value lines) and BOOKING_KAFKA_<PROP> variables; see docs/operations.md.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return BK_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("bookingctl %s\n", BK_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return BK_EXIT_OK;
	}
	for (const subcmd *s = subcmds; s->name; s++)
		if (strcmp(argv[1], s->name) == 0) {
			/* -F FILE anywhere after the command: its options in its place */
			char err[600], **av = NULL;
			int ac = 0;
			if (bk_conffile_expand(argc - 1, argv + 1, &ac, &av, err, sizeof(err)) <
			    0) {
				fprintf(stderr, "bookingctl %s: %s\n", s->name, err);
				return BK_EXIT_USAGE;
			}
			int rc = s->fn(ac, av);
			bk_conffile_free_argv(av);
			return rc;
		}
	fprintf(stderr, "bookingctl: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return BK_EXIT_USAGE;
}
