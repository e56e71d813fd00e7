/*
 * proj_json.h - payload values (bk_val) to JSON text for jsonb columns, written straight
 * from the msgpack tree: the same values jansson's json_dumps(bk_val_to_json(v),
 * JSON_COMPACT | JSON_REAL_PRECISION(15)) gives, without building a tree per event.
 * Pure: no I/O. Not thread-safe per buffer.
 */
#ifndef PROJ_JSON_H
#define PROJ_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "bk_err.h"
#include "bk_val.h"

/* A growable text buffer that starts in caller-provided storage (e.g. on the stack). */
typedef struct pj_buf {
	char *p;
	size_t n, cap;
	char *own; /* heap storage once the initial one is too small; pj_buf_free releases it */
} pj_buf;

void pj_buf_init(pj_buf *b, char *storage, size_t cap);
void pj_buf_free(pj_buf *b); /* keeps the caller's storage; NULL ok */

/*
 * Append the JSON text of v to b (NUL-terminated). -1 when v has no JSON form (the cases
 * where bk_val_to_json gives NULL: ext values, integers above INT64_MAX, NaN or infinite
 * reals, strings or keys with a NUL byte or invalid UTF-8, non-string keys, too deep) or
 * on OOM; b is then left as it was.
 */
int pj_val_json(const bk_val *v, pj_buf *b) BK_MUSTCHECK;

#endif
