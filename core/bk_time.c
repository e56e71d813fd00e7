/*
 * bk_time.c - RFC 3339 timestamps <-> int64 microseconds since the Unix epoch (UTC).
 *
 * Pure calendar arithmetic (Howard Hinnant's days/civil algorithms, proleptic Gregorian);
 * no clock reads and no zone database. Parsing is strict: a text is either a complete,
 * in-range RFC 3339 date-time or it is rejected.
 */
#include <stdbool.h>
#include <stdio.h>

#include "bk_time.h"

#define US_PER_DAY (INT64_C(86400) * BK_US_PER_S)

/* Floor division and modulo for a positive divisor. */
static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && a < 0) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
	int64_t r = a % b;
	return r < 0 ? r + b : r;
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
	static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms": days_from_civil. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	const int64_t era = floor_div(y, 400);
	const int64_t yoe = y - era * 400;				     /* [0, 399] */
	const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
	const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;	     /* [0, 146096] */
	return era * 146097 + doe - 719468;
}

void bk_civil_from_days(int64_t days, int *ret_y, int *ret_m, int *ret_d)
{
	days += 719468;
	const int64_t era = floor_div(days, 146097);
	const int64_t doe = days - era * 146097;				   /* [0, 146096] */
	const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
	const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);		   /* [0, 365] */
	const int64_t mp = (5 * doy + 2) / 153;					   /* [0, 11] */
	const int d = (int)(doy - (153 * mp + 2) / 5 + 1);
	const int m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*ret_y = (int)(yoe + era * 400 + (m <= 2));
	*ret_m = m;
	*ret_d = d;
}

int bk_weekday_mon0(int64_t utc_us, int32_t offset_s)
{
	const int64_t days =
	    floor_div(utc_us, US_PER_DAY) +
	    floor_div(floor_mod(utc_us, US_PER_DAY) + (int64_t)offset_s * BK_US_PER_S, US_PER_DAY);
	/* 1970-01-01 was a Thursday: 3 with Monday = 0. */
	return (int)floor_mod(days + 3, 7);
}

/* Reads exactly `width` decimal digits at s[*pos]; advances *pos. */
static bool digits(const char *s, size_t n, size_t *pos, int width, int *ret)
{
	int v = 0;
	if (n - *pos < (size_t)width)
		return false;
	for (int i = 0; i < width; i++) {
		const char c = s[*pos + (size_t)i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*pos += (size_t)width;
	*ret = v;
	return true;
}

static bool expect(const char *s, size_t n, size_t *pos, char a, char b)
{
	if (*pos >= n || (s[*pos] != a && s[*pos] != b))
		return false;
	(*pos)++;
	return true;
}

/*
 * Grammar (RFC 3339 §5.6): full-date ("T"/"t") partial-time time-offset, where
 * time-secfrac has 1..9 digits (truncated to microseconds) and time-offset is "Z", "z"
 * (the RFC allows either case) or +hh:mm / -hh:mm. A leap second (:60) is rejected:
 * microseconds since the epoch cannot represent it.
 */
int bk_ts_parse(const char *s, size_t n, int64_t *ret_us)
{
	size_t pos = 0;
	int y, mo, d, h, mi, sec;
	int64_t frac_us = 0;
	int32_t off_s = 0;

	if (s == NULL)
		return -1;
	if (!digits(s, n, &pos, 4, &y) || !expect(s, n, &pos, '-', '-') ||
	    !digits(s, n, &pos, 2, &mo) || !expect(s, n, &pos, '-', '-') ||
	    !digits(s, n, &pos, 2, &d) || !expect(s, n, &pos, 'T', 't') ||
	    !digits(s, n, &pos, 2, &h) || !expect(s, n, &pos, ':', ':') ||
	    !digits(s, n, &pos, 2, &mi) || !expect(s, n, &pos, ':', ':') ||
	    !digits(s, n, &pos, 2, &sec))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
		return -1;
	if (pos < n && s[pos] == '.') {
		int nd = 0;
		pos++;
		while (pos < n && s[pos] >= '0' && s[pos] <= '9') {
			if (++nd > 9)
				return -1;
			if (nd <= 6)
				frac_us = frac_us * 10 + (s[pos] - '0');
			pos++;
		}
		if (nd == 0)
			return -1;
		for (; nd < 6; nd++)
			frac_us *= 10;
	}
	if (pos >= n)
		return -1;
	if (s[pos] == 'Z' || s[pos] == 'z') {
		pos++;
	} else if (s[pos] == '+' || s[pos] == '-') {
		const int sign = s[pos] == '-' ? -1 : 1;
		int oh, om;
		pos++;
		if (!digits(s, n, &pos, 2, &oh) || !expect(s, n, &pos, ':', ':') ||
		    !digits(s, n, &pos, 2, &om) || oh > 23 || om > 59)
			return -1;
		off_s = sign * (oh * 3600 + om * 60);
	} else {
		return -1;
	}
	if (pos != n)
		return -1;

	const int64_t secs =
	    days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec - off_s;
	*ret_us = secs * BK_US_PER_S + frac_us;
	return 0;
}

size_t bk_ts_format(int64_t us, char *buf, size_t bufsz)
{
	const int64_t days = floor_div(us, US_PER_DAY);
	const int64_t rem = floor_mod(us, US_PER_DAY);
	const int64_t sod = rem / BK_US_PER_S;
	const int64_t frac = rem % BK_US_PER_S;
	int y, m, d, len;

	if (buf == NULL || bufsz == 0)
		return 0;
	bk_civil_from_days(days, &y, &m, &d);
	if (y >= 0 && y <= 9999 && bufsz >= 28) {
		/* the hot path (every event payload time): digits by hand */
		char *p = buf;
		const int f[6] = {m, d, (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60)};
		static const char seps[] = "--T::";
		*p++ = (char)('0' + y / 1000);
		*p++ = (char)('0' + y / 100 % 10);
		*p++ = (char)('0' + y / 10 % 10);
		*p++ = (char)('0' + y % 10);
		for (int i = 0; i < 5; i++) {
			*p++ = seps[i];
			*p++ = (char)('0' + f[i] / 10);
			*p++ = (char)('0' + f[i] % 10);
		}
		if (frac != 0) {
			*p++ = '.';
			for (int64_t div = 100000; div > 0; div /= 10)
				*p++ = (char)('0' + frac / div % 10);
		}
		*p++ = 'Z';
		*p = '\0';
		return (size_t)(p - buf);
	}
	if (frac != 0)
		len = snprintf(buf, bufsz, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", y, m, d,
			       (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (int)frac);
	else
		len = snprintf(buf, bufsz, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d,
			       (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60));
	if (len < 0) {
		buf[0] = '\0';
		return 0;
	}
	return (size_t)len < bufsz ? (size_t)len : bufsz - 1;
}
