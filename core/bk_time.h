/*
 * bk_time.h - timestamps as int64 microseconds since the Unix epoch (UTC), RFC 3339 text.
 *
 * Pure arithmetic: no clock reads, no time zone database. Local time for a named zone
 * is asked of a bk_tz_fn the caller supplies (lib/tz.c reads TZif files).
 */
#ifndef BK_TIME_H
#define BK_TIME_H

#include "bk_err.h"

#include <stddef.h>
#include <stdint.h>

#define BK_TS_NONE  INT64_MIN
#define BK_US_PER_S INT64_C(1000000)

/* Parse RFC 3339 ("2026-12-01T15:00:00Z", "...T15:00:00.123+02:00"). Returns 0 and
 * writes *ret_us, or -1 when the text is not a valid timestamp. */
int bk_ts_parse(const char *s, size_t n, int64_t *ret_us) BK_MUSTCHECK;

/* Format as "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" into buf (>= 32 bytes). Returns length. */
size_t bk_ts_format(int64_t us, char *buf, size_t bufsz);

/* Days since epoch -> civil date, and weekday with Monday = 0 ... Sunday = 6. */
void bk_civil_from_days(int64_t days, int *ret_y, int *ret_m, int *ret_d);
int bk_weekday_mon0(int64_t utc_us, int32_t offset_s);

/*
 * A time-zone oracle: the UTC offset in seconds of zone `name` at instant `utc_us`.
 * Returns 0 on success, -1 when the zone is unknown. `opaque` is the caller's.
 */
typedef int (*bk_tz_fn)(void *opaque, const char *name, int64_t utc_us, int32_t *ret_offset_s);

#endif
