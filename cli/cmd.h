/*
 * cmd.h - the subcommands of bookingctl. Each lives in cli/cmd_<name>.c and has the
 * signature of main (argv[0] is the subcommand name). Exit codes (docs/operations.md):
 * 0 success, 1 the operation ran and found a problem (verify: broken log), 2 bad usage
 * or configuration, 3 a dependency (Kafka, PostgreSQL) failed.
 */
#ifndef BK_CLI_CMD_H
#define BK_CLI_CMD_H

#include <stdbool.h>

#define BK_EXIT_OK	   0
#define BK_EXIT_PROBLEM	   1
#define BK_EXIT_USAGE	   2
#define BK_EXIT_DEPENDENCY 3

/*
 * --format text|json (also --format=VALUE): the output format, the same everywhere
 * (docs/operations.md, "Command-line conventions"); text is the default. Looks at
 * argv[*i]: returns 1 when it was --format (*i moved past its value, *ret_json set),
 * 0 when it is something else, -1 on a missing or unknown value (message printed on
 * stderr, prefixed with who: exit 2).
 */
int cmd_take_format(int argc, char **argv, int *i, const char *who, bool *ret_json);

int cmd_fsm(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_devbroker(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_seal(int argc, char **argv);
int cmd_gen(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_quarantine(int argc, char **argv);
int cmd_rebuild(int argc, char **argv);
int cmd_profiles(int argc, char **argv);
int cmd_wire(int argc, char **argv);
int cmd_events(int argc, char **argv);

#endif
