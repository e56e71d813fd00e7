/*
 * tz.h - the time-zone oracle (a bk_tz_fn, core/bk_time.h) over the system's TZif files.
 *
 * Zones are read from a zoneinfo directory (RFC 8536 TZif v1, v2+) and kept in a small
 * cache. Thread-safe: lookups from several threads take the cache's mutex.
 */
#ifndef BK_TZ_H
#define BK_TZ_H

#include <stdbool.h>
#include <stdint.h>

#include "bk_err.h"
#include "bk_time.h"

#define BK_TZ_DIR_DEFAULT "/usr/share/zoneinfo"

typedef struct bk_tzdb bk_tzdb; /* opaque */

/* A zone database over `dir` (NULL: BK_TZ_DIR_DEFAULT). Nothing is read until a zone is
 * asked for. Returns NULL when out of memory; the caller frees it with bk_tzdb_free. */
bk_tzdb *bk_tzdb_new(const char *dir);
void bk_tzdb_free(bk_tzdb *db); /* NULL ok */

/*
 * The bk_tz_fn: opaque is a bk_tzdb *. Writes the UTC offset (seconds, east positive) of
 * zone `name` at `utc_us`. Returns -1 when the name is invalid (bk_tz_name_valid), the
 * zone file is missing or is not a sound TZif file. "UTC" and "Etc/UTC" need no file.
 * Instants after the file's last transition follow its POSIX TZ footer (v2+).
 */
BK_MUSTCHECK int bk_tz_offset(void *opaque, const char *name, int64_t utc_us,
			      int32_t *ret_offset_s);

/* True when `name` may name a zone file: 1..255 bytes of [A-Za-z0-9_+-/], no leading,
 * trailing or doubled '/', hence no "." or ".." component and no absolute path. */
bool bk_tz_name_valid(const char *name);

#endif
