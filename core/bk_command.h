/*
 * bk_command.h - a decoded command (SPEC §3 envelope).
 *
 * Strings and the payload point into the msgpack_zone the decoder was given; the zone
 * owns them. A command is valid only while its zone lives.
 */
#ifndef BK_COMMAND_H
#define BK_COMMAND_H

#include <stdbool.h>
#include <stdint.h>

#include "bk_fsm.h"
#include "bk_val.h"

#define BK_MAX_MESSAGE (1u << 20) /* largest command or event record accepted, bytes */
#define BK_MAX_DEPTH   16	  /* deepest nesting accepted in a payload */

typedef struct bk_command {
	const char *id;		   /* idempotency key */
	uint8_t type;		   /* bk_cmd_type */
	const char *order_id;	   /* for autoaccept.*: the service profile id */
	const char *actor_user_id; /* NULL for role system without a user */
	uint8_t actor_role;	   /* bk_role */
	bool has_expected_version;
	int64_t expected_version;
	int64_t at;	/* business time, microseconds since epoch */
	bk_val payload; /* a map (empty map when absent) */
} bk_command;

#endif
