/*
 * bk_val.c - msgpack_object trees built in a msgpack_zone, and typed field getters.
 * Builders copy every key and string into the zone, NUL-terminated; nothing here frees.
 * Getters trust no value: they check type, range, UTF-8 and NUL bytes, and name the
 * field that is wrong ("payload.line_items[0].qty: expected an integer").
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bk_err.h"
#include "bk_internal.h"
#include "bk_time.h"
#include "bk_val.h"

#define VAL_COPY_MAX_DEPTH 64 /* deep copies stop here (values are far shallower) */

static char *zone_strndup(msgpack_zone *z, const char *s, size_t n)
{
	char *p = msgpack_zone_malloc_no_align(z, n + 1);
	if (p == NULL)
		return NULL;
	if (n > 0)
		memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

bool bk_mapb_init(bk_mapb *b, msgpack_zone *z, uint32_t cap)
{
	b->z = z;
	b->n = 0;
	b->cap = cap;
	b->kv = NULL;
	if (cap == 0)
		return true;
	b->kv = msgpack_zone_malloc(z, (size_t)cap * sizeof(msgpack_object_kv));
	if (b->kv == NULL) {
		b->cap = 0;
		return false;
	}
	return true;
}

/* The next slot with its key set, or NULL when out of memory. A full builder grows (the
 * zone keeps the old slots until it is freed): cap is a size hint, not a limit, so a
 * payload gains a field (a schema row, core/bk_schema.c) without its builder's count. */
static msgpack_object_kv *mapb_slot(bk_mapb *b, const char *k)
{
	if (b->n >= b->cap) {
		uint32_t cap = b->cap ? b->cap * 2 : 4;
		if (cap <= b->cap)
			return NULL;
		msgpack_object_kv *kv = msgpack_zone_malloc(b->z, (size_t)cap * sizeof(*kv));
		if (kv == NULL)
			return NULL;
		if (b->n)
			memcpy(kv, b->kv, (size_t)b->n * sizeof(*kv));
		b->kv = kv;
		b->cap = cap;
	}
	size_t kn = strlen(k);
	char *kc = zone_strndup(b->z, k, kn);
	if (kc == NULL)
		return NULL;
	msgpack_object_kv *kv = &b->kv[b->n];
	kv->key.type = MSGPACK_OBJECT_STR;
	kv->key.via.str.ptr = kc;
	kv->key.via.str.size = (uint32_t)kn;
	kv->val.type = MSGPACK_OBJECT_NIL;
	b->n++;
	return kv;
}

bool bk_mapb_strn(bk_mapb *b, const char *k, const char *v, size_t n)
{
	if (v == NULL)
		return bk_mapb_nil(b, k);
	if (n > UINT32_MAX)
		return false;
	char *vc = zone_strndup(b->z, v, n);
	if (vc == NULL)
		return false;
	msgpack_object_kv *kv = mapb_slot(b, k);
	if (kv == NULL)
		return false;
	kv->val.type = MSGPACK_OBJECT_STR;
	kv->val.via.str.ptr = vc;
	kv->val.via.str.size = (uint32_t)n;
	return true;
}

bool bk_mapb_str(bk_mapb *b, const char *k, const char *v)
{
	return bk_mapb_strn(b, k, v, v ? strlen(v) : 0);
}

bool bk_mapb_int(bk_mapb *b, const char *k, int64_t v)
{
	msgpack_object_kv *kv = mapb_slot(b, k);
	if (kv == NULL)
		return false;
	kv->val = bk_val_int(v);
	return true;
}

bool bk_mapb_bool(bk_mapb *b, const char *k, bool v)
{
	msgpack_object_kv *kv = mapb_slot(b, k);
	if (kv == NULL)
		return false;
	kv->val.type = MSGPACK_OBJECT_BOOLEAN;
	kv->val.via.boolean = v;
	return true;
}

bool bk_mapb_f64(bk_mapb *b, const char *k, double v)
{
	msgpack_object_kv *kv = mapb_slot(b, k);
	if (kv == NULL)
		return false;
	kv->val.type = MSGPACK_OBJECT_FLOAT64;
	kv->val.via.f64 = v;
	return true;
}

bool bk_mapb_nil(bk_mapb *b, const char *k)
{
	return mapb_slot(b, k) != NULL;
}

bool bk_mapb_val(bk_mapb *b, const char *k, bk_val v)
{
	msgpack_object_kv *kv = mapb_slot(b, k);
	if (kv == NULL)
		return false;
	kv->val = v;
	return true;
}

bool bk_mapb_ts(bk_mapb *b, const char *k, int64_t ts_us)
{
	if (ts_us == BK_TS_NONE)
		return bk_mapb_nil(b, k);
	char buf[48];
	size_t n = bk_ts_format(ts_us, buf, sizeof(buf));
	if (n >= sizeof(buf))
		return false;
	return bk_mapb_strn(b, k, buf, n);
}

bk_val bk_mapb_done(const bk_mapb *b)
{
	bk_val v;
	v.type = MSGPACK_OBJECT_MAP;
	v.via.map.size = b->n;
	v.via.map.ptr = b->n ? b->kv : NULL;
	return v;
}

bk_val bk_val_str(msgpack_zone *z, const char *s, size_t n)
{
	bk_val v = bk_val_nil();
	if (n > UINT32_MAX)
		return v;
	char *c = zone_strndup(z, s, n);
	if (c == NULL)
		return v;
	v.type = MSGPACK_OBJECT_STR;
	v.via.str.ptr = c;
	v.via.str.size = (uint32_t)n;
	return v;
}

bk_val bk_val_int(int64_t v)
{
	bk_val o;
	if (v >= 0) {
		o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
		o.via.u64 = (uint64_t)v;
	} else {
		o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
		o.via.i64 = v;
	}
	return o;
}

bk_val bk_val_nil(void)
{
	bk_val o;
	memset(&o, 0, sizeof(o));
	o.type = MSGPACK_OBJECT_NIL;
	return o;
}

bool bk_val_arr(msgpack_zone *z, uint32_t n, bk_val *ret)
{
	msgpack_object *items = NULL;
	if (n > 0) {
		items = msgpack_zone_malloc(z, (size_t)n * sizeof(msgpack_object));
		if (items == NULL)
			return false;
		for (uint32_t i = 0; i < n; i++)
			items[i] = bk_val_nil();
	}
	ret->type = MSGPACK_OBJECT_ARRAY;
	ret->via.array.size = n;
	ret->via.array.ptr = items;
	return true;
}

static bool val_copy(msgpack_zone *z, const bk_val *src, bk_val *dst, int depth)
{
	if (depth > VAL_COPY_MAX_DEPTH)
		return false;
	switch (src->type) {
	case MSGPACK_OBJECT_STR:
	case MSGPACK_OBJECT_BIN:
	case MSGPACK_OBJECT_EXT: {
		const char *p;
		uint32_t n;
		if (src->type == MSGPACK_OBJECT_STR) {
			p = src->via.str.ptr;
			n = src->via.str.size;
		} else if (src->type == MSGPACK_OBJECT_BIN) {
			p = src->via.bin.ptr;
			n = src->via.bin.size;
		} else {
			p = src->via.ext.ptr;
			n = src->via.ext.size;
		}
		char *c = zone_strndup(z, p, n);
		if (c == NULL)
			return false;
		*dst = *src;
		if (src->type == MSGPACK_OBJECT_STR)
			dst->via.str.ptr = c;
		else if (src->type == MSGPACK_OBJECT_BIN)
			dst->via.bin.ptr = c;
		else
			dst->via.ext.ptr = c;
		return true;
	}
	case MSGPACK_OBJECT_ARRAY: {
		bk_val a;
		if (!bk_val_arr(z, src->via.array.size, &a))
			return false;
		for (uint32_t i = 0; i < src->via.array.size; i++)
			if (!val_copy(z, &src->via.array.ptr[i], &a.via.array.ptr[i], depth + 1))
				return false;
		*dst = a;
		return true;
	}
	case MSGPACK_OBJECT_MAP: {
		uint32_t n = src->via.map.size;
		msgpack_object_kv *kv = NULL;
		if (n > 0) {
			kv = msgpack_zone_malloc(z, (size_t)n * sizeof(*kv));
			if (kv == NULL)
				return false;
		}
		for (uint32_t i = 0; i < n; i++) {
			if (!val_copy(z, &src->via.map.ptr[i].key, &kv[i].key, depth + 1) ||
			    !val_copy(z, &src->via.map.ptr[i].val, &kv[i].val, depth + 1))
				return false;
		}
		dst->type = MSGPACK_OBJECT_MAP;
		dst->via.map.size = n;
		dst->via.map.ptr = kv;
		return true;
	}
	default:
		*dst = *src;
		return true;
	}
}

bool bk_val_copy(msgpack_zone *z, const bk_val *src, bk_val *ret)
{
	bk_val v;
	if (!val_copy(z, src, &v, 0))
		return false;
	*ret = v;
	return true;
}

/* The value stored under key (nil included), or NULL when absent or map is not a map. */
static const bk_val *map_find(const bk_val *map, const char *key)
{
	if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	size_t kn = strlen(key);
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		/* the first byte inline: most keys of the right length differ there */
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kn &&
		    (kn == 0 ||
		     (k->via.str.ptr[0] == key[0] && memcmp(k->via.str.ptr, key, kn) == 0)))
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

const bk_val *bk_map_get(const bk_val *map, const char *key)
{
	const bk_val *v = map_find(map, key);
	return (v == NULL || v->type == MSGPACK_OBJECT_NIL) ? NULL : v;
}

bool bk_map_with(msgpack_zone *z, const bk_val *map, const char *key, bk_val v, bk_val *ret)
{
	if (map == NULL || map->type != MSGPACK_OBJECT_MAP || map->via.map.size == UINT32_MAX)
		return false;
	uint32_t n = map->via.map.size;
	const bk_val *old = map_find(map, key);
	bk_mapb b;
	if (!bk_mapb_init(&b, z, old ? n : n + 1))
		return false;
	for (uint32_t i = 0; i < n; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		b.kv[b.n++] = (msgpack_object_kv){kv->key, &kv->val == old ? v : kv->val};
	}
	if (!old && !bk_mapb_val(&b, key, v))
		return false;
	*ret = bk_mapb_done(&b);
	return true;
}

/* a[0..n) == b[0..n), inline for the short keys of the wire formats: up to 16 bytes as
 * two overlapping words. */
static bool bytes_eq(const char *a, const char *b, size_t n)
{
	if (n >= 8 && n <= 16) {
		uint64_t x, y, u, v;
		memcpy(&x, a, 8);
		memcpy(&y, b, 8);
		memcpy(&u, a + n - 8, 8);
		memcpy(&v, b + n - 8, 8);
		return ((x ^ y) | (u ^ v)) == 0;
	}
	if (n >= 4 && n < 8) {
		uint32_t x, y, u, v;
		memcpy(&x, a, 4);
		memcpy(&y, b, 4);
		memcpy(&u, a + n - 4, 4);
		memcpy(&v, b + n - 4, 4);
		return ((x ^ y) | (u ^ v)) == 0;
	}
	if (n < 4) {
		for (size_t i = 0; i < n; i++)
			if (a[i] != b[i])
				return false;
		return true;
	}
	return memcmp(a, b, n) == 0;
}

static bool key_is(const msgpack_object *k, const bk_key *key)
{
	return k->via.str.size == key->n && bytes_eq(k->via.str.ptr, key->s, key->n);
}

void bk_map_lookup(const bk_val *map, const bk_key *keys, size_t n, const bk_val **ret)
{
	uint64_t found = 0;
	for (size_t j = 0; j < n; j++)
		ret[j] = NULL;
	if (map == NULL || map->type != MSGPACK_OBJECT_MAP || n == 0 || n > 64)
		return;
	size_t hint = 0; /* where the next key most likely is: after the last one found */
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		if (k->type != MSGPACK_OBJECT_STR)
			continue;
		size_t j = hint;
		if (!key_is(k, &keys[j])) {
			for (j = 0; j < n && !key_is(k, &keys[j]); j++)
				;
			if (j == n)
				continue; /* a key not asked for */
		}
		if ((found & (UINT64_C(1) << j)) == 0) { /* the first of repeated keys */
			const bk_val *v = &map->via.map.ptr[i].val;
			found |= UINT64_C(1) << j;
			ret[j] = v->type == MSGPACK_OBJECT_NIL ? NULL : v;
		}
		hint = j + 1 == n ? 0 : j + 1;
	}
}

bool bk_val_streq(const bk_val *v, const char *s)
{
	if (v == NULL || v->type != MSGPACK_OBJECT_STR)
		return false;
	size_t n = strlen(s);
	return v->via.str.size == n && (n == 0 || memcmp(v->via.str.ptr, s, n) == 0);
}

/* --- getters --- */

BK_PRINTF(3, 4)
static int fail(bk_vctx *c, const char *key, const char *fmt, ...);

static int fail(bk_vctx *c, const char *key, const char *fmt, ...)
{
	if (c->err == NULL || c->errsz == 0)
		return -1;
	int off;
	if (c->path != NULL && c->path[0] != '\0')
		off = snprintf(c->err, c->errsz, "%s.%s: ", c->path, key);
	else
		off = snprintf(c->err, c->errsz, "%s: ", key);
	if (off < 0 || (size_t)off >= c->errsz)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err + off, c->errsz - (size_t)off, fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * The field's value, given as found (NULL when absent); *ret NULL when absent or nil.
 * Returns -1 (message written) when required and missing.
 */
static int field(bk_vctx *c, const bk_val *v, const char *key, bool req, const char *what,
		 const bk_val **ret)
{
	if (v != NULL && v->type == MSGPACK_OBJECT_NIL)
		v = NULL;
	if (v == NULL && req)
		return fail(c, key, "is required (%s)", what);
	*ret = v;
	return 0;
}

#define ONES  UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* True when every byte of s[0..n) is in 0x01..0x7f (ASCII without NUL), tested 8 bytes at
 * a time: no high bit, and subtracting 1 from each byte borrows nowhere. */
static bool ascii_nonul(const unsigned char *s, size_t n)
{
	size_t i = 0;
	for (; n - i >= 8; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, sizeof(w));
		if (((w | (w - ONES)) & HIGHS) != 0)
			return false;
	}
	for (; i < n; i++)
		if ((unsigned)s[i] - 1u >= 0x7fu)
			return false;
	return true;
}

/* Length of the valid UTF-8 prefix of s[0..n); n when the whole string is valid. */
static size_t utf8_valid_prefix(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char b = s[i];
		if (b < 0x80) {
			i++;
			continue;
		}
		size_t len;
		unsigned char lo = 0x80, hi = 0xbf;
		if (b >= 0xc2 && b <= 0xdf) {
			len = 2;
		} else if (b >= 0xe0 && b <= 0xef) {
			len = 3;
			if (b == 0xe0)
				lo = 0xa0; /* overlong */
			else if (b == 0xed)
				hi = 0x9f; /* surrogates */
		} else if (b >= 0xf0 && b <= 0xf4) {
			len = 4;
			if (b == 0xf0)
				lo = 0x90; /* overlong */
			else if (b == 0xf4)
				hi = 0x8f; /* > U+10FFFF */
		} else {
			return i;
		}
		if (n - i < len)
			return i;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return i;
		for (size_t k = 2; k < len; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return i;
		i += len;
	}
	return n;
}

int bk_take_str(bk_vctx *c, const bk_val *fv, const char *key, bool req, const char **ret_s,
		size_t *ret_n)
{
	const bk_val *v = NULL;
	if (field(c, fv, key, req, "a string", &v) < 0)
		return -1;
	if (v == NULL) {
		*ret_s = NULL;
		*ret_n = 0;
		return 0;
	}
	if (v->type != MSGPACK_OBJECT_STR)
		return fail(c, key, "expected a string");
	const char *s = v->via.str.ptr;
	size_t n = v->via.str.size;
	if (!ascii_nonul((const unsigned char *)s, n)) {
		if (n > 0 && memchr(s, '\0', n) != NULL)
			return fail(c, key, "NUL byte in string");
		if (utf8_valid_prefix((const unsigned char *)s, n) != n)
			return fail(c, key, "invalid UTF-8 in string");
	}
	*ret_s = n ? s : "";
	*ret_n = n;
	return 0;
}

int bk_get_str(bk_vctx *c, const bk_val *map, const char *key, bool req, const char **ret_s,
	       size_t *ret_n)
{
	return bk_take_str(c, bk_map_get(map, key), key, req, ret_s, ret_n);
}

int bk_take_int(bk_vctx *c, const bk_val *fv, const char *key, bool req, int64_t *ret,
		bool *ret_present)
{
	const bk_val *v = NULL;
	if (field(c, fv, key, req, "an integer", &v) < 0)
		return -1;
	if (v == NULL) {
		if (ret_present)
			*ret_present = false;
		return 0;
	}
	int64_t x;
	if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (v->via.u64 > (uint64_t)INT64_MAX)
			return fail(c, key, "integer out of range");
		x = (int64_t)v->via.u64;
	} else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		x = v->via.i64;
	} else {
		return fail(c, key, "expected an integer");
	}
	*ret = x;
	if (ret_present)
		*ret_present = true;
	return 0;
}

int bk_get_int(bk_vctx *c, const bk_val *map, const char *key, bool req, int64_t *ret,
	       bool *ret_present)
{
	return bk_take_int(c, bk_map_get(map, key), key, req, ret, ret_present);
}

int bk_get_num(bk_vctx *c, const bk_val *map, const char *key, bool req, double *ret,
	       bool *ret_present)
{
	return bk_take_num(c, bk_map_get(map, key), key, req, ret, ret_present);
}

int bk_take_num(bk_vctx *c, const bk_val *fv, const char *key, bool req, double *ret,
		bool *ret_present)
{
	const bk_val *v = NULL;
	if (field(c, fv, key, req, "a number", &v) < 0)
		return -1;
	if (v == NULL) {
		if (ret_present)
			*ret_present = false;
		return 0;
	}
	double x;
	switch (v->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		x = (double)v->via.u64;
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		x = (double)v->via.i64;
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		x = v->via.f64;
		if (!isfinite(x))
			return fail(c, key, "expected a finite number");
		break;
	default:
		return fail(c, key, "expected a number");
	}
	*ret = x;
	if (ret_present)
		*ret_present = true;
	return 0;
}

int bk_get_bool(bk_vctx *c, const bk_val *map, const char *key, bool req, bool *ret,
		bool *ret_present)
{
	const bk_val *v = NULL;
	if (field(c, bk_map_get(map, key), key, req, "a boolean", &v) < 0)
		return -1;
	if (v == NULL) {
		if (ret_present)
			*ret_present = false;
		return 0;
	}
	if (v->type != MSGPACK_OBJECT_BOOLEAN)
		return fail(c, key, "expected a boolean");
	*ret = v->via.boolean;
	if (ret_present)
		*ret_present = true;
	return 0;
}

int bk_take_ts(bk_vctx *c, const bk_val *fv, const char *key, bool req, int64_t *ret_us)
{
	const bk_val *v = NULL;
	if (field(c, fv, key, req, "an RFC 3339 timestamp", &v) < 0)
		return -1;
	if (v == NULL) {
		*ret_us = BK_TS_NONE;
		return 0;
	}
	if (v->type != MSGPACK_OBJECT_STR)
		return fail(c, key, "expected an RFC 3339 timestamp string");
	int64_t us;
	if (bk_ts_parse(v->via.str.ptr, v->via.str.size, &us) < 0 || us == BK_TS_NONE) {
		int shown = v->via.str.size > 40 ? 40 : (int)v->via.str.size;
		return fail(c, key, "expected an RFC 3339 timestamp, got \"%.*s%s\"", shown,
			    v->via.str.ptr, v->via.str.size > 40 ? "..." : "");
	}
	*ret_us = us;
	return 0;
}

int bk_get_ts(bk_vctx *c, const bk_val *map, const char *key, bool req, int64_t *ret_us)
{
	return bk_take_ts(c, bk_map_get(map, key), key, req, ret_us);
}

int bk_take_map(bk_vctx *c, const bk_val *fv, const char *key, bool req, const bk_val **ret)
{
	const bk_val *v = NULL;
	if (field(c, fv, key, req, "a map", &v) < 0)
		return -1;
	if (v != NULL && v->type != MSGPACK_OBJECT_MAP)
		return fail(c, key, "expected a map");
	*ret = v;
	return 0;
}

int bk_get_map(bk_vctx *c, const bk_val *map, const char *key, bool req, const bk_val **ret)
{
	return bk_take_map(c, bk_map_get(map, key), key, req, ret);
}

int bk_take_arr(bk_vctx *c, const bk_val *fv, const char *key, bool req, const bk_val **ret)
{
	const bk_val *v = NULL;
	if (field(c, fv, key, req, "an array", &v) < 0)
		return -1;
	if (v != NULL && v->type != MSGPACK_OBJECT_ARRAY)
		return fail(c, key, "expected an array");
	*ret = v;
	return 0;
}

int bk_get_arr(bk_vctx *c, const bk_val *map, const char *key, bool req, const bk_val **ret)
{
	return bk_take_arr(c, bk_map_get(map, key), key, req, ret);
}

int bk_strlcpyn(char *dst, size_t dstsz, const char *s, size_t n)
{
	if (dstsz == 0 || n >= dstsz)
		return -1;
	if (n > 0)
		memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}
