/*
 * log.c - logfmt lines on stderr. A line is built whole in memory (values expanded
 * from their printf conversions, then quoted and escaped as logfmt needs) and written
 * with one stdio call, so concurrent threads never interleave within a line.
 */
#include "log.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <time.h>
#include <wchar.h>

static const char *const level_names[BK_LOG_LEVEL_COUNT] = {
    [BK_LOG_DEBUG] = "debug", [BK_LOG_INFO] = "info", [BK_LOG_WARN] = "warn",
    [BK_LOG_ERROR] = "error", [BK_LOG_OFF] = "off",
};

static atomic_int threshold = BK_LOG_INFO;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* A growable line buffer; on allocation failure it keeps what it has and marks
 * itself truncated. */
typedef struct sbuf {
	char *p;
	size_t len, cap;
	int truncated;
	char local[1024];
} sbuf;

static void sb_init(sbuf *b)
{
	b->p = b->local;
	b->len = 0;
	b->cap = sizeof(b->local);
	b->truncated = 0;
}

static void sb_free(sbuf *b)
{
	if (b->p != b->local)
		free(b->p);
}

/* Make room for n more bytes plus a NUL; returns 0, or -1 (buffer marked truncated). */
static int sb_reserve(sbuf *b, size_t n)
{
	if (b->truncated)
		return -1;
	if (b->len + n + 1 <= b->cap)
		return 0;
	size_t cap = b->cap * 2;
	while (cap < b->len + n + 1)
		cap *= 2;
	char *p = b->p == b->local ? malloc(cap) : realloc(b->p, cap);
	if (!p) {
		b->truncated = 1;
		return -1;
	}
	if (b->p == b->local)
		memcpy(p, b->local, b->len);
	b->p = p;
	b->cap = cap;
	return 0;
}

static void sb_put(sbuf *b, const char *s, size_t n)
{
	if (sb_reserve(b, n) < 0)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_putc(sbuf *b, char c)
{
	sb_put(b, &c, 1);
}

static void sb_puts(sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* Append s escaped for the inside of a logfmt double-quoted value. */
static void sb_put_escaped(sbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"':
			sb_puts(b, "\\\"");
			break;
		case '\\':
			sb_puts(b, "\\\\");
			break;
		case '\n':
			sb_puts(b, "\\n");
			break;
		case '\r':
			sb_puts(b, "\\r");
			break;
		case '\t':
			sb_puts(b, "\\t");
			break;
		default:
			if (c < 0x20 || c == 0x7f) {
				char hex[8];
				snprintf(hex, sizeof(hex), "\\u%04x", c);
				sb_puts(b, hex);
			} else {
				sb_putc(b, (char)c);
			}
		}
	}
}

static int needs_quotes(const char *s, size_t n)
{
	if (n == 0)
		return 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c == '=' || c == '"' || c == 0x7f)
			return 1;
	}
	return 0;
}

static void sb_put_value(sbuf *b, const char *s, size_t n)
{
	if (!needs_quotes(s, n)) {
		sb_put(b, s, n);
		return;
	}
	sb_putc(b, '"');
	sb_put_escaped(b, s, n);
	sb_putc(b, '"');
}

/*
 * Length of the printf conversion specification starting at f (which is '%'), not
 * reading past end. Returns at least 1.
 */
static size_t spec_len(const char *f, const char *end)
{
	const char *p = f + 1;
	while (p < end && strchr("-+ #0'", *p))
		p++;
	while (p < end && (isdigit((unsigned char)*p) || *p == '*'))
		p++;
	if (p < end && *p == '.') {
		p++;
		while (p < end && (isdigit((unsigned char)*p) || *p == '*'))
			p++;
	}
	while (p < end && strchr("hljztL", *p))
		p++;
	if (p < end)
		p++; /* the conversion character */
	return (size_t)(p - f);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
/*
 * Expand one conversion spec (spec[0] == '%', n bytes) consuming its arguments from ap
 * and append the text to out. `*` widths and precisions are read from ap and written
 * into the spec as digits, so each conversion is one snprintf with one argument.
 */
static void format_one(sbuf *out, const char *spec, size_t n, va_list *ap)
{
	char fmt[64];
	size_t fl = 0;
	char len[3] = "";
	char conv = spec[n - 1];

	for (size_t i = 0; i < n && fl < sizeof(fmt) - 16; i++) {
		char c = spec[i];
		if (c == '*') {
			int v = va_arg(*ap, int);
			fl += (size_t)snprintf(fmt + fl, sizeof(fmt) - fl, "%d", v);
		} else {
			fmt[fl++] = c;
		}
		if (i > 0 && i < n - 1 && strchr("hljztL", c)) {
			size_t l = strlen(len);
			if (l < 2) {
				len[l] = c;
				len[l + 1] = '\0';
			}
		}
	}
	fmt[fl] = '\0';

	char tmp[256];
	char *dst = tmp;
	int w = 0;
	/* Run the conversion twice at most: into tmp, then into a heap buffer if tmp was
	 * too small. The argument is fetched once and kept in a union. */
	union {
		long long ll;
		unsigned long long ull;
		intmax_t im;
		uintmax_t um;
		ssize_t ss;
		size_t sz;
		ptrdiff_t pd;
		double d;
		long double ld;
		const char *s;
		const wchar_t *ws;
		void *p;
	} v;
	enum { A_INT, A_LONG, A_LL, A_IM, A_SZ, A_PD, A_DBL, A_LDBL, A_STR, A_WSTR, A_PTR } kind;

	switch (conv) {
	case '%':
		sb_putc(out, '%');
		return;
	case 'n':
		(void)va_arg(*ap, void *);
		return;
	case 'c':
		kind = A_INT; /* int, or wint_t for %lc: both arrive as int-sized */
		v.ll = va_arg(*ap, int);
		break;
	case 'd':
	case 'i':
	case 'u':
	case 'o':
	case 'x':
	case 'X':
		if (!strcmp(len, "l")) {
			kind = A_LONG;
			v.ll = conv == 'd' || conv == 'i' ? va_arg(*ap, long)
							  : (long long)va_arg(*ap, unsigned long);
		} else if (!strcmp(len, "ll")) {
			kind = A_LL;
			v.ll = va_arg(*ap, long long);
		} else if (!strcmp(len, "j")) {
			kind = A_IM;
			v.im = va_arg(*ap, intmax_t);
		} else if (!strcmp(len, "z")) {
			kind = A_SZ;
			v.sz = va_arg(*ap, size_t);
		} else if (!strcmp(len, "t")) {
			kind = A_PD;
			v.pd = va_arg(*ap, ptrdiff_t);
		} else {
			kind = A_INT;
			v.ll = va_arg(*ap, int);
		}
		break;
	case 'f':
	case 'F':
	case 'e':
	case 'E':
	case 'g':
	case 'G':
	case 'a':
	case 'A':
		if (!strcmp(len, "L")) {
			kind = A_LDBL;
			v.ld = va_arg(*ap, long double);
		} else {
			kind = A_DBL;
			v.d = va_arg(*ap, double);
		}
		break;
	case 's':
		if (!strcmp(len, "l")) {
			kind = A_WSTR;
			v.ws = va_arg(*ap, const wchar_t *);
		} else {
			kind = A_STR;
			v.s = va_arg(*ap, const char *);
			if (!v.s) {
				sb_puts(out, "(null)");
				return;
			}
		}
		break;
	case 'p':
		kind = A_PTR;
		v.p = va_arg(*ap, void *);
		break;
	default:
		/* Unknown conversion: the compiler's format check rejects these; print the
		 * spec itself and consume nothing. */
		sb_put(out, spec, n);
		return;
	}

	size_t cap = sizeof(tmp);
	for (int pass = 0; pass < 2; pass++) {
		switch (kind) {
		case A_INT:
			w = snprintf(dst, cap, fmt, (int)v.ll);
			break;
		case A_LONG:
			w = snprintf(dst, cap, fmt, (long)v.ll);
			break;
		case A_LL:
			w = snprintf(dst, cap, fmt, v.ll);
			break;
		case A_IM:
			w = snprintf(dst, cap, fmt, v.im);
			break;
		case A_SZ:
			w = snprintf(dst, cap, fmt, v.sz);
			break;
		case A_PD:
			w = snprintf(dst, cap, fmt, v.pd);
			break;
		case A_DBL:
			w = snprintf(dst, cap, fmt, v.d);
			break;
		case A_LDBL:
			w = snprintf(dst, cap, fmt, v.ld);
			break;
		case A_STR:
			w = snprintf(dst, cap, fmt, v.s);
			break;
		case A_WSTR:
			w = snprintf(dst, cap, fmt, v.ws);
			break;
		case A_PTR:
			w = snprintf(dst, cap, fmt, v.p);
			break;
		}
		if (w < 0) {
			sb_put(out, spec, n);
			break;
		}
		if ((size_t)w < cap) {
			sb_put(out, dst, (size_t)w);
			break;
		}
		if (pass == 0) {
			cap = (size_t)w + 1;
			dst = malloc(cap);
			if (!dst) {
				sb_put(out, tmp, sizeof(tmp) - 1);
				out->truncated = 1;
				return;
			}
		}
	}
	if (dst != tmp)
		free(dst);
}
#pragma GCC diagnostic pop

/*
 * Expand the format segment [f, end) into out: literal bytes as they are, conversions
 * from ap (escaped for a quoted value when `escape`).
 */
static void expand(sbuf *out, const char *f, const char *end, va_list *ap, int escape)
{
	while (f < end) {
		if (*f != '%') {
			const char *lit = f;
			while (f < end && *f != '%')
				f++;
			sb_put(out, lit, (size_t)(f - lit));
			continue;
		}
		size_t n = spec_len(f, end);
		if (!escape) {
			format_one(out, f, n, ap);
		} else {
			sbuf tmp;
			sb_init(&tmp);
			format_one(&tmp, f, n, ap);
			sb_put_escaped(out, tmp.p, tmp.len);
			sb_free(&tmp);
		}
		f += n;
	}
}

/* Append the key-value pairs of kvfmt, each value expanded and then quoted if needed. */
static void put_pairs(sbuf *out, const char *kvfmt, va_list *ap)
{
	const char *f = kvfmt;
	const char *end = kvfmt + strlen(kvfmt);

	while (f < end) {
		while (f < end && *f == ' ')
			f++;
		if (f >= end)
			break;
		/* key: up to '=' or a space */
		const char *k = f;
		while (f < end && *f != '=' && *f != ' ') {
			if (*f == '%')
				f += spec_len(f, end);
			else
				f++;
		}
		sb_putc(out, ' ');
		expand(out, k, f, ap, 0);
		if (f >= end || *f != '=')
			continue; /* a bare key */
		f++;
		sb_putc(out, '=');
		if (f < end && *f == '"') {
			/* value quoted in the format: escape only what the conversions expand */
			const char *v = ++f;
			while (f < end && *f != '"') {
				if (*f == '\\' && f + 1 < end)
					f += 2;
				else if (*f == '%')
					f += spec_len(f, end);
				else
					f++;
			}
			sb_putc(out, '"');
			expand(out, v, f, ap, 1);
			sb_putc(out, '"');
			if (f < end)
				f++; /* closing quote */
			continue;
		}
		const char *v = f;
		while (f < end && *f != ' ') {
			if (*f == '%')
				f += spec_len(f, end);
			else
				f++;
		}
		sbuf val;
		sb_init(&val);
		expand(&val, v, f, ap, 0);
		sb_put_value(out, val.p, val.len);
		if (val.truncated)
			out->truncated = 1;
		sb_free(&val);
	}
}

static void put_ts(sbuf *out)
{
	struct timespec now;
	struct tm tm;
	char ts[64];

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t n = strftime(ts, sizeof(ts), "ts=%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000L);
	sb_puts(out, ts);
}

/* Build and write one line; no threshold check. */
static void emit(bk_log_level level, const char *msg, const char *kvfmt, va_list *ap)
{
	sbuf line;
	sb_init(&line);
	put_ts(&line);
	sb_puts(&line, " level=");
	sb_puts(&line, level_names[level]);
	sb_puts(&line, " msg=\"");
	if (msg)
		sb_put_escaped(&line, msg, strlen(msg));
	sb_putc(&line, '"');
	if (kvfmt && ap)
		put_pairs(&line, kvfmt, ap);
	if (line.truncated) {
		/* keep the line parseable: end on a marker the buffer still has room for */
		line.truncated = 0;
		if (line.len + 16 > line.cap)
			line.len = line.cap - 16;
		sb_puts(&line, " truncated=1");
	}
	sb_putc(&line, '\n');
	fwrite(line.p, 1, line.len, stderr);
	sb_free(&line);
}

static void emit_l(bk_log_level level, const char *msg, const char *kvfmt, ...)
{
	va_list ap;
	va_start(ap, kvfmt);
	va_list cp;
	va_copy(cp, ap);
	emit(level, msg, kvfmt, &cp);
	va_end(cp);
	va_end(ap);
}

static void init_from_env(void)
{
	const char *v = getenv("BOOKING_LOG_LEVEL");
	bk_log_level l;

	if (!v || !*v)
		return;
	if (bk_log_level_parse(v, &l) == 0) {
		atomic_store(&threshold, (int)l);
		return;
	}
	emit_l(BK_LOG_WARN, "unknown BOOKING_LOG_LEVEL, using info",
	       "value=%s valid=debug,info,warn,error,off", v);
}

const char *bk_log_level_name(bk_log_level level)
{
	if ((unsigned)level >= BK_LOG_LEVEL_COUNT)
		return "unknown";
	return level_names[level];
}

int bk_log_level_parse(const char *name, bk_log_level *ret_level)
{
	static const struct {
		const char *name;
		bk_log_level level;
	} names[] = {
	    {"debug", BK_LOG_DEBUG},  {"info", BK_LOG_INFO},   {"warn", BK_LOG_WARN},
	    {"warning", BK_LOG_WARN}, {"error", BK_LOG_ERROR}, {"err", BK_LOG_ERROR},
	    {"off", BK_LOG_OFF},      {"none", BK_LOG_OFF},    {"0", BK_LOG_DEBUG},
	    {"1", BK_LOG_INFO},	      {"2", BK_LOG_WARN},      {"3", BK_LOG_ERROR},
	    {"4", BK_LOG_OFF},
	};
	if (!name)
		return -1;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(name, names[i].name) == 0) {
			*ret_level = names[i].level;
			return 0;
		}
	}
	return -1;
}

void bk_log_set_level(bk_log_level level)
{
	pthread_once(&init_once, init_from_env);
	if ((unsigned)level < BK_LOG_LEVEL_COUNT)
		atomic_store(&threshold, (int)level);
}

bk_log_level bk_log_get_level(void)
{
	pthread_once(&init_once, init_from_env);
	return (bk_log_level)atomic_load(&threshold);
}

int bk_log_enabled(bk_log_level level)
{
	return (unsigned)level < BK_LOG_OFF && (int)level >= (int)bk_log_get_level();
}

void bk_vlogf(bk_log_level level, const char *msg, const char *kvfmt, va_list ap)
{
	if (!bk_log_enabled(level))
		return;
	va_list cp;
	va_copy(cp, ap);
	emit(level, msg, kvfmt, &cp);
	va_end(cp);
}

void bk_logf(bk_log_level level, const char *msg, const char *kvfmt, ...)
{
	va_list ap;
	va_start(ap, kvfmt);
	bk_vlogf(level, msg, kvfmt, ap);
	va_end(ap);
}

void bk_log(bk_log_level level, const char *msg)
{
	if (!bk_log_enabled(level))
		return;
	emit(level, msg, NULL, NULL);
}
