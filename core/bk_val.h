/*
 * bk_val.h - dynamic values (msgpack_object trees) built in a msgpack_zone arena.
 *
 * Command and event payloads are msgpack maps. Builders allocate in the zone passed in
 * (the zone owns every node and string; nothing is freed individually). Getters read a
 * field of a map with a type check and write a precise complaint ("payload.line_items[0].qty:
 * expected an integer") into the caller's buffer.
 */
#ifndef BK_VAL_H
#define BK_VAL_H

#include "bk_err.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef msgpack_object bk_val;

/* A map under construction: cap is the caller's size hint (it grows past it). */
typedef struct bk_mapb {
	msgpack_zone *z;
	msgpack_object_kv *kv;
	uint32_t n, cap;
} bk_mapb;

/* Builders. Strings are copied into the zone. Return false on out-of-memory only. */
bool bk_mapb_init(bk_mapb *b, msgpack_zone *z, uint32_t cap) BK_MUSTCHECK;
bool bk_mapb_str(bk_mapb *b, const char *k, const char *v) BK_MUSTCHECK; /* v NULL: nil */
bool bk_mapb_strn(bk_mapb *b, const char *k, const char *v, size_t n) BK_MUSTCHECK;
bool bk_mapb_int(bk_mapb *b, const char *k, int64_t v) BK_MUSTCHECK;
bool bk_mapb_bool(bk_mapb *b, const char *k, bool v) BK_MUSTCHECK;
bool bk_mapb_f64(bk_mapb *b, const char *k, double v) BK_MUSTCHECK;
bool bk_mapb_nil(bk_mapb *b, const char *k) BK_MUSTCHECK;
bool bk_mapb_val(bk_mapb *b, const char *k, bk_val v) BK_MUSTCHECK; /* v shared, not copied */
bool bk_mapb_ts(bk_mapb *b, const char *k,
		int64_t ts_us) BK_MUSTCHECK; /* RFC 3339; BK_TS_NONE: nil */
bk_val bk_mapb_done(const bk_mapb *b);

bk_val bk_val_str(msgpack_zone *z, const char *s, size_t n); /* type NIL on OOM */
bk_val bk_val_int(int64_t v);
bk_val bk_val_nil(void);
/* An array of n nodes (uninitialised nil); returns false on OOM. */
bool bk_val_arr(msgpack_zone *z, uint32_t n, bk_val *ret) BK_MUSTCHECK;
/* Deep copy into zone z. */
bool bk_val_copy(msgpack_zone *z, const bk_val *src, bk_val *ret) BK_MUSTCHECK;

/* Lookups. Return NULL when absent or when the value is nil. */
const bk_val *bk_map_get(const bk_val *map, const char *key);
bool bk_val_streq(const bk_val *v, const char *s);
/* *ret = map with key set to v: a new map in z sharing map's keys and values (key's
 * value replaced where map has it, else appended last). false when map is not a map or
 * on OOM. */
bool bk_map_with(msgpack_zone *z, const bk_val *map, const char *key, bk_val v, bk_val *ret);

/*
 * Typed getters for a required (req=true) or optional field of `map`. `path` names the
 * map in messages ("payload"). Return 0 on success (optional absent: 0 with *present
 * false where given), -1 with a message in err on a type or range error or a missing
 * required field. Strings are returned as zone-owned (pointer, length) and must be valid
 * UTF-8 without NUL bytes.
 */
typedef struct bk_vctx {
	char *err;
	size_t errsz;
	const char *path;
} bk_vctx;

int bk_get_str(bk_vctx *c, const bk_val *map, const char *key, bool req, const char **ret_s,
	       size_t *ret_n) BK_MUSTCHECK;
int bk_get_int(bk_vctx *c, const bk_val *map, const char *key, bool req, int64_t *ret,
	       bool *ret_present) BK_MUSTCHECK;
int bk_get_num(bk_vctx *c, const bk_val *map, const char *key, bool req, double *ret,
	       bool *ret_present) BK_MUSTCHECK;
int bk_get_bool(bk_vctx *c, const bk_val *map, const char *key, bool req, bool *ret,
		bool *ret_present) BK_MUSTCHECK;
int bk_get_ts(bk_vctx *c, const bk_val *map, const char *key, bool req,
	      int64_t *ret_us) BK_MUSTCHECK;
int bk_get_map(bk_vctx *c, const bk_val *map, const char *key, bool req,
	       const bk_val **ret) BK_MUSTCHECK;
int bk_get_arr(bk_vctx *c, const bk_val *map, const char *key, bool req,
	       const bk_val **ret) BK_MUSTCHECK;

/* Copy a (pointer, length) string into a fixed buffer, NUL-terminated. Returns -1 if it
 * does not fit (the buffer is then untouched). */
int bk_strlcpyn(char *dst, size_t dstsz, const char *s, size_t n) BK_MUSTCHECK;

/* bk_get_str, _int, _num, _ts, _map, _arr on a value already looked up (v as bk_map_get or
 * bk_map_lookup gives it, NULL when absent); key names the field in messages. */
int bk_take_str(bk_vctx *c, const bk_val *v, const char *key, bool req, const char **ret_s,
		size_t *ret_n) BK_MUSTCHECK;
int bk_take_int(bk_vctx *c, const bk_val *v, const char *key, bool req, int64_t *ret,
		bool *ret_present) BK_MUSTCHECK;
int bk_take_num(bk_vctx *c, const bk_val *v, const char *key, bool req, double *ret,
		bool *ret_present) BK_MUSTCHECK;
int bk_take_ts(bk_vctx *c, const bk_val *v, const char *key, bool req,
	       int64_t *ret_us) BK_MUSTCHECK;
int bk_take_map(bk_vctx *c, const bk_val *v, const char *key, bool req,
		const bk_val **ret) BK_MUSTCHECK;
int bk_take_arr(bk_vctx *c, const bk_val *v, const char *key, bool req,
		const bk_val **ret) BK_MUSTCHECK;

#endif
