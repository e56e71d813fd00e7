/*
 * log.h - logfmt lines on stderr for the daemons and bookingctl.
 * One call writes one whole line with one stdio call, so lines from several threads
 * never interleave. The threshold comes from BOOKING_LOG_LEVEL (debug, info, warn,
 * error, off; default info) unless a program sets it. Only programs log: core/ never.
 */
#ifndef BK_LOG_H
#define BK_LOG_H

#include <stdarg.h>

#include "bk_err.h"

typedef enum bk_log_level {
	BK_LOG_DEBUG,
	BK_LOG_INFO,
	BK_LOG_WARN,
	BK_LOG_ERROR,
	BK_LOG_OFF, /* as a threshold only: log nothing */
	BK_LOG_LEVEL_COUNT
} bk_log_level;

/* Name of a level as written in lines ("debug", "info", "warn", "error", "off"). */
const char *bk_log_level_name(bk_log_level level);

/*
 * Parse a level name (case-insensitive; "warning", "err", "none" and the digits 0-4 are
 * accepted too). Returns 0 and sets *ret_level, or -1 when the name is unknown.
 */
int bk_log_level_parse(const char *name, bk_log_level *ret_level) BK_MUSTCHECK;

/*
 * The threshold: lines below it are dropped. The first call to any bk_log function
 * reads BOOKING_LOG_LEVEL; bk_log_set_level overrides it (e.g. for a -v flag).
 * Thread-safe.
 */
void bk_log_set_level(bk_log_level level);
bk_log_level bk_log_get_level(void);
int bk_log_enabled(bk_log_level level);

/*
 * Write `ts=... level=... msg="..."` followed by the key-value pairs of kvfmt, a
 * printf format of space-separated `key=value` pairs (kvfmt may be NULL or "").
 * Each value is expanded from its printf conversions and then quoted when it needs
 * it (empty, or holding a space, '=', '"' or a control character), with '"', '\'
 * and control characters escaped; a value already quoted in the format
 * (`err="%s"`) is only escaped. Example:
 *
 *   bk_logf(BK_LOG_INFO, "batch committed", "topic=%s partition=%d offset=%lld n=%d",
 *           topic, partition, (long long)offset, n);
 *
 * Supported conversions: d i u o x X c s p f F e E g G a A and %%, with flags, width,
 * precision (also `*`) and the length modifiers hh h l ll j z t L. %n is not
 * supported (it prints nothing). msg is always quoted. Thread-safe; never fails
 * visibly (a line that cannot be allocated is written truncated).
 */
void bk_logf(bk_log_level level, const char *msg, const char *kvfmt, ...) BK_PRINTF(3, 4);
void bk_vlogf(bk_log_level level, const char *msg, const char *kvfmt, va_list ap);

/* A line with no key-value pairs. */
void bk_log(bk_log_level level, const char *msg);

#endif
