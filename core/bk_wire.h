/*
 * bk_wire.h - what can be learnt from a command record's bytes before (or without)
 * decoding it: the command id, so that a record the processor dead-letters still carries
 * the id its sender knows it by (docs/wire.md, "Matching answers").
 */
#ifndef BK_WIRE_H
#define BK_WIRE_H

#include <stddef.h>

#include "bk_err.h"
#include "bk_ids.h"

/*
 * Read the top-level "id" of a command from untrusted bytes: a msgpack map (scanned pair
 * by pair, so a record broken after its id still yields it) or a JSON object (which must
 * parse). The content type is not needed: the first byte tells. Bounds-checked, never
 * reads past n, never allocates for msgpack.
 * Writes the id NUL-terminated into ret (ret_size >= BK_ID_MAX) and returns its length
 * when it is a string that is a valid id (bk_id_valid); returns -1 otherwise (ret
 * untouched).
 */
int bk_wire_peek_command_id(const void *buf, size_t n, char *ret, size_t ret_size) BK_MUSTCHECK;

#endif
