/*
 * tz.c - UTC offsets of IANA zones from TZif files (RFC 8536, versions 1 to 4).
 *
 * A zone is read once and cached (a few zones, round-robin eviction). Zone names are
 * checked before any path is built, so a name can only reach files under the zoneinfo
 * directory. A bk_tzdb may be shared by threads: a mutex guards the cache.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tz.h"

#define TZ_CACHE      8
#define TZ_NAME_MAX   255
#define TZ_FILE_MAX   (1 << 20) /* real TZif files are a few KiB */
#define TZ_HEADER_LEN 44

/* One date of a POSIX TZ rule: Mm.w.d, Jn (1..365, no Feb 29) or n (0..365). */
typedef struct tz_rdate {
	char kind; /* 'M', 'J' or 'D' */
	int m, w, d, n;
	int32_t time; /* seconds after local midnight, -167h..167h */
} tz_rdate;

/* A parsed POSIX TZ footer ("CET-1CEST,M3.5.0,M10.5.0/3"). Offsets are east positive. */
typedef struct tz_posix {
	bool valid;
	bool has_dst;
	int32_t std_off;
	int32_t dst_off;
	tz_rdate start, end;
} tz_posix;

typedef struct tz_zone {
	char *name;
	size_t ntrans;
	int64_t *trans;	     /* ascending UTC seconds */
	uint8_t *trans_type; /* index into type_off */
	size_t ntypes;
	int32_t *type_off;
	tz_posix rule; /* for instants after the last transition */
} tz_zone;

struct bk_tzdb {
	pthread_mutex_t mu; /* the cache: lookups may come from several threads */
	char *dir;
	tz_zone *cache[TZ_CACHE];
	unsigned next; /* slot evicted next */
};

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && a < 0) ? q - 1 : q;
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

/* Howard Hinnant's days_from_civil (core has the inverse, bk_civil_from_days). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	const int64_t era = floor_div(y, 400);
	const int64_t yoe = y - era * 400;
	const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void zone_free(tz_zone *z)
{
	if (z == NULL)
		return;
	free(z->name);
	free(z->trans);
	free(z->trans_type);
	free(z->type_off);
	free(z);
}

bk_tzdb *bk_tzdb_new(const char *dir)
{
	bk_tzdb *db = calloc(1, sizeof *db);

	if (db == NULL)
		return NULL;
	db->dir = strdup(dir ? dir : BK_TZ_DIR_DEFAULT);
	if (db->dir == NULL) {
		free(db);
		return NULL;
	}
	pthread_mutex_init(&db->mu, NULL);
	return db;
}

void bk_tzdb_free(bk_tzdb *db)
{
	if (db == NULL)
		return;
	for (int i = 0; i < TZ_CACHE; i++)
		zone_free(db->cache[i]);
	pthread_mutex_destroy(&db->mu);
	free(db->dir);
	free(db);
}

bool bk_tz_name_valid(const char *name)
{
	size_t n;

	if (name == NULL)
		return false;
	n = strlen(name);
	if (n == 0 || n > TZ_NAME_MAX || name[0] == '/' || name[n - 1] == '/')
		return false;
	for (size_t i = 0; i < n; i++) {
		const char c = name[i];
		if (c == '/' && name[i + 1] == '/')
			return false;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '+' || c == '-' || c == '/'))
			return false;
	}
	return true;
}

/* ---- POSIX TZ strings ---- */

/* [+-]hh[:mm[:ss]] with hh <= max_h; returns seconds (sign applied). */
static bool posix_hms(const char **sp, int max_h, int32_t *ret)
{
	const char *s = *sp;
	int sign = 1;
	int32_t v[3] = {0, 0, 0};

	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	for (int part = 0; part < 3; part++) {
		int nd = 0;
		if (part > 0) {
			if (*s != ':')
				break;
			s++;
		}
		while (*s >= '0' && *s <= '9' && nd < (part == 0 ? 3 : 2)) {
			v[part] = v[part] * 10 + (*s++ - '0');
			nd++;
		}
		if (nd == 0 || (part > 0 && v[part] > 59))
			return false;
	}
	if (v[0] > max_h)
		return false;
	*ret = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
	*sp = s;
	return true;
}

static bool posix_name(const char **sp)
{
	const char *s = *sp;
	size_t n = 0;

	if (*s == '<') {
		s++;
		while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		       (*s >= '0' && *s <= '9') || *s == '+' || *s == '-') {
			s++;
			n++;
		}
		if (*s != '>' || n < 3)
			return false;
		s++;
	} else {
		while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')) {
			s++;
			n++;
		}
		if (n < 3)
			return false;
	}
	*sp = s;
	return true;
}

static bool posix_num(const char **sp, int lo, int hi, int *ret)
{
	const char *s = *sp;
	int v = 0, nd = 0;

	while (*s >= '0' && *s <= '9' && nd < 4) {
		v = v * 10 + (*s++ - '0');
		nd++;
	}
	if (nd == 0 || v < lo || v > hi)
		return false;
	*ret = v;
	*sp = s;
	return true;
}

static bool posix_rdate(const char **sp, tz_rdate *r)
{
	const char *s = *sp;

	if (*s == 'M') {
		s++;
		r->kind = 'M';
		if (!posix_num(&s, 1, 12, &r->m) || *s++ != '.' || !posix_num(&s, 1, 5, &r->w) ||
		    *s++ != '.' || !posix_num(&s, 0, 6, &r->d))
			return false;
	} else if (*s == 'J') {
		s++;
		r->kind = 'J';
		if (!posix_num(&s, 1, 365, &r->n))
			return false;
	} else {
		r->kind = 'D';
		if (!posix_num(&s, 0, 365, &r->n))
			return false;
	}
	r->time = 2 * 3600;
	if (*s == '/') {
		s++;
		/* RFC 8536 §3.3.1 extends the time to -167..167 hours. */
		if (!posix_hms(&s, 167, &r->time))
			return false;
	}
	*sp = s;
	return true;
}

/* Parses a whole TZ string; leaves *ret invalid when it is empty or malformed. */
static void posix_parse(const char *s, tz_posix *ret)
{
	tz_posix p = {0};
	int32_t off;

	if (!posix_name(&s) || !posix_hms(&s, 24, &off))
		return;
	p.std_off = -off; /* POSIX counts west positive */
	if (*s != '\0') {
		p.has_dst = true;
		if (!posix_name(&s))
			return;
		p.dst_off = p.std_off + 3600;
		if (*s != ',' && *s != '\0') {
			if (!posix_hms(&s, 24, &off))
				return;
			p.dst_off = -off;
		}
		if (*s == ',') {
			s++;
			if (!posix_rdate(&s, &p.start) || *s++ != ',' || !posix_rdate(&s, &p.end))
				return;
		} else {
			/* No rule: the US rule, as glibc and tzcode assume. */
			p.start = (tz_rdate){.kind = 'M', .m = 3, .w = 2, .d = 0, .time = 7200};
			p.end = (tz_rdate){.kind = 'M', .m = 11, .w = 1, .d = 0, .time = 7200};
		}
		if (*s != '\0')
			return;
	}
	p.valid = true;
	*ret = p;
}

/* Days since the epoch of a rule date in year y. */
static int64_t rdate_day(const tz_rdate *r, int64_t y)
{
	const int64_t jan1 = days_from_civil(y, 1, 1);

	if (r->kind == 'J')
		return jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
	if (r->kind == 'D')
		return jan1 + r->n;
	const int64_t first = days_from_civil(y, r->m, 1);
	const int wd_first = (int)((first % 7 + 7 + 4) % 7); /* 1970-01-01: Thursday, Sun = 0 */
	int64_t day = first + (r->d - wd_first + 7) % 7 + 7 * (int64_t)(r->w - 1);
	while (day >= first + days_in_month(y, r->m))
		day -= 7;
	return day;
}

static int32_t posix_offset(const tz_posix *p, int64_t t)
{
	int y, m, d;

	if (!p->has_dst)
		return p->std_off;
	bk_civil_from_days(floor_div(t + p->std_off, 86400), &y, &m, &d);
	const int64_t start = rdate_day(&p->start, y) * 86400 + p->start.time - p->std_off;
	const int64_t end = rdate_day(&p->end, y) * 86400 + p->end.time - p->dst_off;
	bool dst;
	if (start < end)
		dst = t >= start && t < end;
	else /* southern hemisphere: DST spans the new year */
		dst = !(t >= end && t < start);
	return dst ? p->dst_off : p->std_off;
}

/* ---- TZif ---- */

typedef struct tzif_counts {
	uint32_t isut, isstd, leap, time, type, chars;
} tzif_counts;

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64s(const uint8_t *p)
{
	const uint64_t v = (uint64_t)be32(p) << 32 | be32(p + 4);
	return v <= INT64_MAX ? (int64_t)v : -(int64_t)(~v) - 1;
}

static int32_t be32s(const uint8_t *p)
{
	const uint32_t v = be32(p);
	return v <= INT32_MAX ? (int32_t)v : -(int32_t)(~v) - 1;
}

/* Reads a header at p[0..n); returns the data block length or 0 on a bad header. */
static size_t tzif_header(const uint8_t *p, size_t n, size_t tsize, tzif_counts *c, char *ver)
{
	if (n < TZ_HEADER_LEN || memcmp(p, "TZif", 4) != 0)
		return 0;
	*ver = (char)p[4];
	c->isut = be32(p + 20);
	c->isstd = be32(p + 24);
	c->leap = be32(p + 28);
	c->time = be32(p + 32);
	c->type = be32(p + 36);
	c->chars = be32(p + 40);
	if (c->type == 0 || c->type > 256 || (c->isut && c->isut != c->type) ||
	    (c->isstd && c->isstd != c->type) || c->time > 1000000 || c->leap > 100000 ||
	    c->chars > 100000)
		return 0;
	const size_t len = (size_t)c->time * tsize + c->time + (size_t)c->type * 6 + c->chars +
			   (size_t)c->leap * (tsize + 4) + c->isstd + c->isut;
	return len <= n - TZ_HEADER_LEN ? len : 0;
}

/* Parses the data block at p (counts c, times of tsize bytes) into z. */
static int tzif_block(const uint8_t *p, const tzif_counts *c, size_t tsize, tz_zone *z)
{
	const uint8_t *idx = p + (size_t)c->time * tsize;
	const uint8_t *types = idx + c->time;

	z->ntrans = c->time;
	z->ntypes = c->type;
	z->trans = malloc((c->time ? c->time : 1) * sizeof *z->trans);
	z->trans_type = malloc(c->time ? c->time : 1);
	z->type_off = malloc(c->type * sizeof *z->type_off);
	if (z->trans == NULL || z->trans_type == NULL || z->type_off == NULL)
		return -1;
	for (uint32_t i = 0; i < c->type; i++) {
		const int32_t off = be32s(types + (size_t)6 * i);
		if (off < -25 * 3600 || off > 26 * 3600 || types[6 * i + 4] > 1)
			return -1;
		z->type_off[i] = off;
	}
	for (uint32_t i = 0; i < c->time; i++) {
		const int64_t t = tsize == 8 ? be64s(p + (size_t)8 * i) : be32s(p + (size_t)4 * i);
		if ((i > 0 && t <= z->trans[i - 1]) || idx[i] >= c->type)
			return -1;
		z->trans[i] = t;
		z->trans_type[i] = idx[i];
	}
	return 0;
}

/* Parses a whole TZif file. Returns a zone (without name) or NULL. */
static tz_zone *tzif_parse(const uint8_t *p, size_t n)
{
	tzif_counts c;
	char ver;
	size_t len = tzif_header(p, n, 4, &c, &ver);
	tz_zone *z;

	if (len == 0)
		return NULL;
	z = calloc(1, sizeof *z);
	if (z == NULL)
		return NULL;
	if (ver == '\0') {
		if (tzif_block(p + TZ_HEADER_LEN, &c, 4, z) < 0)
			goto fail;
		return z;
	}
	/* v2+: skip the v1 block, read the 64-bit one and the footer. */
	p += TZ_HEADER_LEN + len;
	n -= TZ_HEADER_LEN + len;
	len = tzif_header(p, n, 8, &c, &ver);
	if (len == 0 || ver < '2' || tzif_block(p + TZ_HEADER_LEN, &c, 8, z) < 0)
		goto fail;
	p += TZ_HEADER_LEN + len;
	n -= TZ_HEADER_LEN + len;
	if (n >= 2 && p[0] == '\n') {
		const uint8_t *nl = memchr(p + 1, '\n', n - 1);
		if (nl && nl - p - 1 < 128) {
			char footer[128];
			memcpy(footer, p + 1, (size_t)(nl - p - 1));
			footer[nl - p - 1] = '\0';
			posix_parse(footer, &z->rule);
		}
	}
	return z;
fail:
	zone_free(z);
	return NULL;
}

static uint8_t *read_file(const char *path, size_t *ret_n)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > TZ_FILE_MAX || (buf = malloc((size_t)st.st_size)) == NULL) {
		close(fd);
		return NULL;
	}
	while (got < (size_t)st.st_size) {
		const ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	*ret_n = got;
	return buf;
}

static tz_zone *zone_load(const bk_tzdb *db, const char *name)
{
	const size_t dl = strlen(db->dir), nl = strlen(name);
	char *path = malloc(dl + nl + 2);
	uint8_t *data;
	size_t n = 0;
	tz_zone *z;

	if (path == NULL)
		return NULL;
	memcpy(path, db->dir, dl);
	path[dl] = '/';
	memcpy(path + dl + 1, name, nl + 1);
	data = read_file(path, &n);
	free(path);
	if (data == NULL)
		return NULL;
	z = tzif_parse(data, n);
	free(data);
	if (z && (z->name = strdup(name)) == NULL) {
		zone_free(z);
		z = NULL;
	}
	return z;
}

static tz_zone *zone_get(bk_tzdb *db, const char *name)
{
	tz_zone *z;

	for (int i = 0; i < TZ_CACHE; i++)
		if (db->cache[i] && strcmp(db->cache[i]->name, name) == 0)
			return db->cache[i];
	z = zone_load(db, name);
	if (z == NULL)
		return NULL;
	zone_free(db->cache[db->next]);
	db->cache[db->next] = z;
	db->next = (db->next + 1) % TZ_CACHE;
	return z;
}

/*
 * RFC 8536 §3.2: before the first transition, time type 0; from the last transition on,
 * the footer rule when the file has a usable one, else the last transition's type; with
 * no transitions, the footer rule or time type 0.
 */
static int32_t zone_offset(const tz_zone *z, int64_t t)
{
	if (z->ntrans == 0 || t >= z->trans[z->ntrans - 1]) {
		if (z->rule.valid)
			return posix_offset(&z->rule, t);
		return z->ntrans ? z->type_off[z->trans_type[z->ntrans - 1]] : z->type_off[0];
	}
	if (t < z->trans[0])
		return z->type_off[0];
	size_t lo = 0, hi = z->ntrans - 1; /* trans[lo] <= t < trans[hi] */
	while (hi - lo > 1) {
		const size_t mid = lo + (hi - lo) / 2;
		if (z->trans[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return z->type_off[z->trans_type[lo]];
}

int bk_tz_offset(void *opaque, const char *name, int64_t utc_us, int32_t *ret_offset_s)
{
	bk_tzdb *db = opaque;
	const tz_zone *z;

	if (name && (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0)) {
		*ret_offset_s = 0;
		return 0;
	}
	if (db == NULL || !bk_tz_name_valid(name))
		return -1;
	pthread_mutex_lock(&db->mu);
	z = zone_get(db, name);
	if (z != NULL)
		*ret_offset_s = zone_offset(z, floor_div(utc_us, BK_US_PER_S));
	pthread_mutex_unlock(&db->mu);
	return z != NULL ? 0 : -1;
}
