/*
 * bk_codec.c - msgpack wire formats of commands, events records, results and rules.
 * Untrusted bytes are validated and unpacked in one pass (scan_msg, building what
 * msgpack_unpack would) over a zone copy of them, so every decoded string lives in the
 * zone, NUL-terminated. Encoders always write the same keys
 * in the same order in the smallest forms: a decoded event re-encodes to its hashed bytes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_codec.h"
#include "bk_ids.h"
#include "bk_internal.h"
#include "bk_money.h"
#include "bk_schema.h"
#include "bk_time.h"

/* Records, results and rules carry payloads one or two levels below a command's, so
 * their readers allow more nesting than commands get (what a writer produces stays
 * readable). */
#define RECORD_MAX_DEPTH (BK_MAX_DEPTH + 8)
/* msgpack-c's unpacker keeps a fixed stack of 32 containers (MSGPACK_EMBED_STACK_SIZE). */
_Static_assert(RECORD_MAX_DEPTH < 32, "prescan must refuse what msgpack-c cannot nest");
/* Instants RFC 3339 text can write (years 0000-9999), so an integer `at` re-encodes. */
#define TS_TEXT_MIN INT64_C(-62167219200000000)
#define TS_TEXT_MAX INT64_C(253402300799999999)

BK_PRINTF(3, 4)
static int seterr(char *err, size_t errsz, const char *fmt, ...);

static int seterr(char *err, size_t errsz, const char *fmt, ...)
{
	if (err != NULL && errsz > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* --- scan: validate and unpack in one pass --- */

#define ONES  UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* True when the 8 bytes at s are all in 0x01..0x7f: no high bit, and subtracting 1 from
 * each byte borrows nowhere (a zero byte would borrow and set its high bit). */
static bool word_ascii_nonul(const unsigned char *s)
{
	uint64_t w;
	memcpy(&w, s, sizeof(w));
	return ((w | (w - ONES)) & HIGHS) == 0;
}

/* True when s[0..n) is ASCII without NUL, found with whole words only: for n >= 8 the
 * last word overlaps the one before; for n < 8, when 8 bytes are readable at s (room),
 * the bytes past n are replaced by 0x01 (little-endian only). false means "not known":
 * the caller checks byte by byte. */
static bool ascii_nonul_fast(const unsigned char *s, size_t n, size_t room)
{
	if (n >= 8) {
		for (size_t i = 0; n - i > 8; i += 8)
			if (!word_ascii_nonul(s + i))
				return false;
		return word_ascii_nonul(s + n - 8);
	}
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (room >= 8 && n > 0) {
		uint64_t w, keep = ~UINT64_C(0) >> (64 - 8 * n);
		memcpy(&w, s, sizeof(w));
		w = (w & keep) | (ONES & ~keep);
		return ((w | (w - ONES)) & HIGHS) == 0;
	}
#else
	(void)room;
#endif
	return false;
}

/* Length of the valid UTF-8 prefix of s[0..n) (no overlongs, surrogates or > U+10FFFF);
 * also stops at a NUL byte. Runs of ASCII are skipped 8 bytes at a time. */
static size_t utf8_nonul_prefix(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		/* 8 bytes all in 0x01..0x7f: no high bit, and subtracting 1 from each byte
		 * borrows nowhere (a zero byte would borrow and set its high bit) */
		while (n - i >= 8) {
			uint64_t w;
			memcpy(&w, s + i, sizeof(w));
			if (((w | (w - ONES)) & HIGHS) != 0)
				break;
			i += 8;
		}
		if (i == n)
			break;
		unsigned char b = s[i];
		if (b < 0x80) {
			if (b == 0)
				return i;
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
				lo = 0xa0;
			else if (b == 0xed)
				hi = 0x9f;
		} else if (b >= 0xf0 && b <= 0xf4) {
			len = 4;
			if (b == 0xf0)
				lo = 0x90;
			else if (b == 0xf4)
				hi = 0x8f;
		} else {
			return i;
		}
		if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
			return i;
		for (size_t k = 2; k < len; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return i;
		i += len;
	}
	return n;
}

static uint64_t be_read(const unsigned char *p, size_t w)
{
	switch (w) {
	case 1:
		return p[0];
	case 2:
		return (uint64_t)p[0] << 8 | p[1];
	case 4:
		return (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
	default: {
		uint64_t v = 0;
		for (size_t i = 0; i < w; i++)
			v = (v << 8) | p[i];
		return v;
	}
	}
}

static int key_cmp(const void *a, const void *b)
{
	const msgpack_object *ka = &(*(const msgpack_object_kv *const *)a)->key;
	const msgpack_object *kb = &(*(const msgpack_object_kv *const *)b)->key;
	uint32_t na = ka->via.str.size, nb = kb->via.str.size;
	int c = memcmp(ka->via.str.ptr, kb->via.str.ptr, na < nb ? na : nb);
	if (c != 0)
		return c;
	return na < nb ? -1 : na > nb;
}

static bool key_eq(const msgpack_object *a, const msgpack_object *b)
{
	return a->via.str.size == b->via.str.size &&
	       memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0;
}

/* A key's length and its first, middle and last bytes: equal keys have equal
 * signatures, so only keys with equal signatures need comparing. */
static uint64_t key_sig(const msgpack_object *k)
{
	uint32_t n = k->via.str.size;
	if (n == 0)
		return 0;
	const unsigned char *s = (const unsigned char *)k->via.str.ptr;
	return (uint64_t)n | (uint64_t)s[0] << 32 | (uint64_t)s[n / 2] << 40 |
	       (uint64_t)s[n - 1] << 48;
}

/* Maps up to this size are checked for duplicate keys by signature; larger ones by
 * sorting. */
#define DUPCHECK_SIG 32

/* Sets *ret_dup when a map (all keys strings, as the scan ensured) repeats a key.
 * Returns -1 only on out-of-memory. */
static int map_has_dup(const msgpack_object *m, msgpack_zone *z, bool *ret_dup)
{
	uint32_t n = m->via.map.size;
	const msgpack_object_kv *kv = m->via.map.ptr;
	*ret_dup = false;
	if (n < 2)
		return 0;
	if (n <= DUPCHECK_SIG) {
		/* each signature marks one of 256 bits; only a key whose bit is taken
		 * already is compared with the keys before it */
		uint64_t sig[DUPCHECK_SIG], bits[4] = {0, 0, 0, 0};
		for (uint32_t i = 0; i < n; i++) {
			sig[i] = key_sig(&kv[i].key);
			unsigned h = (unsigned)((sig[i] * UINT64_C(0x9E3779B97F4A7C15)) >> 56);
			uint64_t bit = UINT64_C(1) << (h & 63);
			if (bits[h >> 6] & bit) {
				for (uint32_t j = 0; j < i; j++)
					if (sig[j] == sig[i] && key_eq(&kv[i].key, &kv[j].key))
						*ret_dup = true;
			}
			bits[h >> 6] |= bit;
		}
		return 0;
	}
	const msgpack_object_kv **v = msgpack_zone_malloc(z, (size_t)n * sizeof(*v));
	if (v == NULL)
		return -1;
	for (uint32_t i = 0; i < n; i++)
		v[i] = &kv[i];
	qsort(v, n, sizeof(*v), key_cmp);
	for (uint32_t i = 1; i < n; i++)
		if (key_eq(&v[i - 1]->key, &v[i]->key))
			*ret_dup = true;
	return 0;
}

/* One open container: elements still to read (a map counts keys and values); when
 * building, the container's object and the slot of its next element. */
typedef struct scan_frame {
	uint64_t left;
	bool is_map;
	msgpack_object *obj;   /* the container */
	msgpack_object *item;  /* array: next element */
	msgpack_object_kv *kv; /* map: next pair */
} scan_frame;

/* What a building scan produced (z != NULL). */
typedef struct scan_out {
	msgpack_object root;
	bool oom; /* the zone ran out: root is incomplete */
	bool dup; /* a map repeats a key */
} scan_out;

/*
 * Validate buf[0..n) as one msgpack value within the limits (size, depth, no ext, string
 * keys, UTF-8 strings without NUL, no trailing bytes) and, when z is not NULL, build it
 * into z as msgpack_unpack would. Strings and binaries point into a zone copy of buf;
 * every string is NUL-terminated in place (the byte after its body belongs to the next
 * object's header, read from buf, or is the spare byte at the end of the copy), and the
 * empty string is "". A limit broken anywhere is reported (return -1, *ret_why) before
 * out-of-memory or a duplicate key (flags in *out), as when validation ran first.
 */
static int scan_msg(const void *buf, size_t n, int max_depth, msgpack_zone *z, scan_out *out,
		    const char **ret_why)
{
	const unsigned char *p = buf;
	/* st[0] stands for the message: one element, the root; st[1..] are the containers
	 * open, f the innermost (f - st of them open) */
	scan_frame st[RECORD_MAX_DEPTH + 1];
	scan_frame *f = st;
	size_t pos = 0;
	const char *why;
	bool build = z != NULL;
	char *copy = NULL;

	if (max_depth > RECORD_MAX_DEPTH)
		max_depth = RECORD_MAX_DEPTH;
	if (n == 0 || buf == NULL) {
		why = "empty message";
		goto bad;
	}
	if (n > BK_MAX_MESSAGE) {
		why = "message larger than BK_MAX_MESSAGE";
		goto bad;
	}
	if (build) {
		out->oom = out->dup = false;
		out->root.type = MSGPACK_OBJECT_NIL;
		copy = msgpack_zone_malloc_no_align(z, n + 1);
		if (copy == NULL) {
			out->oom = true;
			build = false;
		} else {
			memcpy(copy, buf, n);
			copy[n] = '\0';
		}
	}
	st[0].left = 1;
	st[0].is_map = false;
	st[0].obj = NULL;
	st[0].item = build ? &out->root : NULL;
	st[0].kv = NULL;
	for (;;) {
		/* find the container that takes the next element; check each map closed */
		while (f->left == 0) {
			if (f == st)
				goto done;
			if (build && f->is_map) {
				bool dup;
				if (map_has_dup(f->obj, z, &dup) < 0) {
					out->oom = true;
					build = false;
				} else if (dup) {
					out->dup = true;
				}
			}
			f--;
		}
		if (pos >= n) {
			why = "truncated message";
			goto bad;
		}
		bool is_key = f->is_map && (f->left & 1) == 0;
		f->left--;
		msgpack_object *o = NULL;
		if (build) {
			if (!f->is_map)
				o = f->item++;
			else if (is_key)
				o = &f->kv->key;
			else
				o = &(f->kv++)->val;
		}

		unsigned char b = p[pos++];
		size_t rem = n - pos;
		uint64_t len = 0;   /* str/bin body length */
		uint64_t count = 0; /* container element count */
		int kind = 0;	    /* 0 scalar, 1 str, 2 bin, 3 array, 4 map */
		size_t w = 0;	    /* width of a length field or a scalar body */
		if ((b & 0xe0) == 0xa0) {
			/* fixstr, the most common header (every key): tested first */
			kind = 1;
			len = b & 0x1f;
		} else if (b <= 0x7f || b >= 0xe0) {
			/* fixint */
			if (is_key) {
				why = "map key is not a string";
				goto bad;
			}
			if (build) {
				if (b <= 0x7f) {
					o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
					o->via.u64 = b;
				} else {
					o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
					o->via.i64 = (int64_t)b - 256;
				}
			}
			continue;
		} else if (b <= 0x8f) {
			kind = 4;
			count = b & 0x0f;
		} else if (b <= 0x9f) {
			kind = 3;
			count = b & 0x0f;
		} else {
			switch (b) {
			case 0xc0: /* nil */
			case 0xc2: /* false */
			case 0xc3: /* true */
				break;
			case 0xc1:
				why = "reserved byte 0xc1";
				goto bad;
			case 0xc4:
			case 0xc5:
			case 0xc6:
				kind = 2;
				w = (size_t)1 << (b - 0xc4);
				break;
			case 0xc7:
			case 0xc8:
			case 0xc9:
			case 0xd4:
			case 0xd5:
			case 0xd6:
			case 0xd7:
			case 0xd8:
				why = "ext types are not accepted";
				goto bad;
			case 0xca:
				w = 4;
				break;
			case 0xcb:
				w = 8;
				break;
			case 0xcc:
			case 0xcd:
			case 0xce:
			case 0xcf:
				w = (size_t)1 << (b - 0xcc);
				break;
			case 0xd0:
			case 0xd1:
			case 0xd2:
			case 0xd3:
				w = (size_t)1 << (b - 0xd0);
				break;
			case 0xd9:
			case 0xda:
			case 0xdb:
				kind = 1;
				w = (size_t)1 << (b - 0xd9);
				break;
			case 0xdc:
			case 0xdd:
				kind = 3;
				w = (size_t)2 << (b - 0xdc);
				break;
			default: /* 0xde, 0xdf */
				kind = 4;
				w = (size_t)2 << (b - 0xde);
				break;
			}
		}
		if (is_key && kind != 1) {
			why = "map key is not a string";
			goto bad;
		}
		if (w > rem) {
			why = "truncated message";
			goto bad;
		}
		if (kind == 0) {
			if (build) {
				uint64_t v = w > 0 ? be_read(p + pos, w) : 0;
				if (b == 0xc0) {
					o->type = MSGPACK_OBJECT_NIL;
				} else if (b <= 0xc3) {
					o->type = MSGPACK_OBJECT_BOOLEAN;
					o->via.boolean = b == 0xc3;
				} else if (b == 0xca) {
					float fl;
					uint32_t u = (uint32_t)v;
					memcpy(&fl, &u, sizeof(fl));
					o->type = MSGPACK_OBJECT_FLOAT32;
					o->via.f64 = fl;
				} else if (b == 0xcb) {
					double d;
					memcpy(&d, &v, sizeof(d));
					o->type = MSGPACK_OBJECT_FLOAT64;
					o->via.f64 = d;
				} else if (b <= 0xcf) {
					o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
					o->via.u64 = v;
				} else {
					int64_t sv = w == 1   ? (int8_t)v
						     : w == 2 ? (int16_t)v
						     : w == 4 ? (int32_t)v
							      : (int64_t)v;
					if (sv >= 0) {
						o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
						o->via.u64 = (uint64_t)sv;
					} else {
						o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
						o->via.i64 = sv;
					}
				}
			}
			pos += w;
			continue;
		}
		if (w > 0) {
			uint64_t v = be_read(p + pos, w);
			pos += w;
			rem -= w;
			if (kind <= 2)
				len = v;
			else
				count = v;
		}
		if (kind <= 2) {
			if (len > rem) {
				why = "string or binary longer than the bytes that remain";
				goto bad;
			}
			if (kind == 1 && len > 0) {
				size_t ok = ascii_nonul_fast(p + pos, (size_t)len, rem)
						? (size_t)len
						: utf8_nonul_prefix(p + pos, (size_t)len);
				if (ok != len) {
					why = p[pos + ok] == 0 ? "NUL byte in a string"
							       : "invalid UTF-8 in a string";
					goto bad;
				}
			}
			if (build) {
				if (kind == 1) {
					o->type = MSGPACK_OBJECT_STR;
					o->via.str.size = (uint32_t)len;
					if (len == 0) {
						o->via.str.ptr = "";
					} else {
						o->via.str.ptr = copy + pos;
						copy[pos + len] = '\0';
					}
				} else {
					o->type = MSGPACK_OBJECT_BIN;
					o->via.bin.size = (uint32_t)len;
					o->via.bin.ptr = copy + pos;
				}
			}
			pos += (size_t)len;
			continue;
		}
		if (f - st >= max_depth) {
			why = "nesting deeper than the limit";
			goto bad;
		}
		uint64_t elems = kind == 4 ? 2 * count : count;
		if (elems > rem) {
			why = "container declares more elements than bytes remain";
			goto bad;
		}
		scan_frame *nf = f + 1;
		nf->left = elems;
		nf->is_map = kind == 4;
		nf->obj = o;
		nf->item = NULL;
		nf->kv = NULL;
		if (build) {
			/* count <= n, so the sizes cannot overflow */
			if (kind == 4) {
				o->type = MSGPACK_OBJECT_MAP;
				o->via.map.size = (uint32_t)count;
				o->via.map.ptr = NULL;
				if (count > 0) {
					nf->kv = msgpack_zone_malloc(
					    z, (size_t)count * sizeof(msgpack_object_kv));
					o->via.map.ptr = nf->kv;
				}
			} else {
				o->type = MSGPACK_OBJECT_ARRAY;
				o->via.array.size = (uint32_t)count;
				o->via.array.ptr = NULL;
				if (count > 0) {
					nf->item = msgpack_zone_malloc(
					    z, (size_t)count * sizeof(msgpack_object));
					o->via.array.ptr = nf->item;
				}
			}
			if (count > 0 && nf->kv == NULL && nf->item == NULL) {
				out->oom = true;
				build = false;
			}
		}
		f = nf;
	}
done:
	if (pos != n) {
		why = "trailing bytes after the message";
		goto bad;
	}
	return 0;
bad:
	if (ret_why != NULL)
		*ret_why = why;
	return -1;
}

int bk_codec_prescan(const void *buf, size_t n, char *err, size_t errsz)
{
	const char *why;
	if (scan_msg(buf, n, BK_MAX_DEPTH, NULL, NULL, &why) < 0)
		return seterr(err, errsz, "%s", why);
	return 0;
}

/* --- unpack --- */

static int unpack_lim(const void *buf, size_t n, int max_depth, msgpack_zone *z, bk_val *ret,
		      char *err, size_t errsz)
{
	const char *why;
	scan_out so;
	if (scan_msg(buf, n, max_depth, z, &so, &why) < 0)
		return seterr(err, errsz, "%s", why);
	if (so.oom)
		return seterr(err, errsz, "out of memory");
	if (so.dup)
		return seterr(err, errsz, "duplicate key in a map");
	*ret = so.root;
	return 0;
}

int bk_codec_unpack(const void *buf, size_t n, msgpack_zone *z, bk_val *ret, char *err,
		    size_t errsz)
{
	return unpack_lim(buf, n, BK_MAX_DEPTH, z, ret, err, errsz);
}

/* --- field helpers --- */

/* An id field: a string that bk_id_valid accepts (so it fits BK_ID_MAX). The value is
 * NUL-terminated (every decoded or built string is). */
static int take_id(bk_vctx *c, const bk_val *v, const char *key, bool req, const char **ret)
{
	const char *s;
	size_t n;
	/* an id is ASCII without NUL, so bk_take_str would accept it: only a value that is
	 * not an id goes through bk_take_str, for its messages */
	if (v != NULL && v->type == MSGPACK_OBJECT_STR &&
	    bk_id_valid(v->via.str.ptr, v->via.str.size, NULL)) {
		*ret = v->via.str.ptr;
		return 0;
	}
	if (bk_take_str(c, v, key, req, &s, &n) < 0)
		return -1;
	if (s != NULL && !bk_id_valid(s, n, NULL)) {
		const char *p = c->path;
		seterr(c->err, c->errsz,
		       "%s%s%s: expected an id (1-%d characters of A-Z a-z 0-9 _ . : -)",
		       p && *p ? p : "", p && *p ? "." : "", key, BK_ID_MAX - 1);
		return -1;
	}
	*ret = s;
	return 0;
}

static int get_id(bk_vctx *c, const bk_val *map, const char *key, bool req, const char **ret)
{
	return take_id(c, bk_map_get(map, key), key, req, ret);
}

/* Like bk_take_str, the text NUL-terminated; NULL when absent or nil. */
static int take_text(bk_vctx *c, const bk_val *v, const char *key, bool req, const char **ret)
{
	const char *s;
	size_t n;
	if (bk_take_str(c, v, key, req, &s, &n) < 0)
		return -1;
	*ret = s;
	return 0;
}

static bk_val empty_map(void)
{
	bk_val v = {.type = MSGPACK_OBJECT_NIL};
	memset(&v, 0, sizeof(v));
	v.type = MSGPACK_OBJECT_MAP;
	return v;
}

/* --- commands --- */

/*
 * The strings of v must be NUL-terminated, as every value from bk_codec_unpack,
 * bk_json_to_val and the bk_val builders is: the command points at them (no copy).
 * Optional fields: absent and nil are the same. *ret is written only on success.
 */
/* The fields of a command, in the order the encoder writes them. */
enum { C_ID, C_TYPE, C_ORDER_ID, C_ACTOR, C_EXPECTED_VERSION, C_AT, C_PAYLOAD, C__COUNT };
static const bk_key cmd_keys[C__COUNT] = {
    BK_KEY("id"), BK_KEY("type"),   BK_KEY("order_id"), BK_KEY("actor"), BK_KEY("expected_version"),
    BK_KEY("at"), BK_KEY("payload")};
enum { A_USER_ID, A_ROLE, A__COUNT };
static const bk_key actor_keys[A__COUNT] = {BK_KEY("user_id"), BK_KEY("role")};

int bk_codec_command_from_val(const bk_val *v, bool allow_internal, bk_command *ret, char *err,
			      size_t errsz)
{
	bk_vctx c = {err, errsz, ""};
	bk_command cmd;
	const char *s;
	size_t n;
	const bk_val *f[C__COUNT], *fa[A__COUNT];

	memset(&cmd, 0, sizeof(cmd));
	if (v == NULL || v->type != MSGPACK_OBJECT_MAP)
		return seterr(err, errsz, "command: expected a map");
	bk_map_lookup(v, cmd_keys, C__COUNT, f);
	if (take_id(&c, f[C_ID], "id", true, &cmd.id) < 0)
		return -1;
	if (bk_take_str(&c, f[C_TYPE], "type", true, &s, &n) < 0)
		return -1;
	int t = bk_cmd_from(s, n);
	if (t < 0)
		return seterr(err, errsz, "type: unknown command type \"%.*s\"",
			      n > 64 ? 64 : (int)n, s);
	if (bk_cmd_is_internal((bk_cmd_type)t) && !allow_internal)
		return seterr(err, errsz,
			      "type: %s is internal to the processor, not accepted here",
			      bk_cmd_name((bk_cmd_type)t));
	cmd.type = (uint8_t)t;
	if (take_id(&c, f[C_ORDER_ID], "order_id", true, &cmd.order_id) < 0)
		return -1;

	const bk_val *actor;
	if (bk_take_map(&c, f[C_ACTOR], "actor", true, &actor) < 0)
		return -1;
	c.path = "actor";
	bk_map_lookup(actor, actor_keys, A__COUNT, fa);
	if (bk_take_str(&c, fa[A_ROLE], "role", true, &s, &n) < 0)
		return -1;
	int role = bk_role_from(s, n);
	if (role < 0)
		return seterr(err, errsz,
			      "actor.role: expected one of buyer, provider, support, system");
	cmd.actor_role = (uint8_t)role;
	if (take_id(&c, fa[A_USER_ID], "user_id", role != BK_ROLE_SYSTEM, &cmd.actor_user_id) < 0)
		return -1;
	c.path = "";

	bool present;
	if (bk_take_int(&c, f[C_EXPECTED_VERSION], "expected_version", false, &cmd.expected_version,
			&present) < 0)
		return -1;
	if (present && cmd.expected_version < 0)
		return seterr(err, errsz, "expected_version: expected a non-negative integer");
	cmd.has_expected_version = present;

	const bk_val *at = f[C_AT];
	if (at != NULL && (at->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
			   at->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)) {
		if (bk_take_int(&c, at, "at", true, &cmd.at, NULL) < 0)
			return -1;
	} else if (at != NULL && at->type != MSGPACK_OBJECT_STR) {
		return seterr(err, errsz,
			      "at: expected an RFC 3339 timestamp (or integer microseconds)");
	} else if (bk_take_ts(&c, at, "at", true, &cmd.at) < 0) {
		return -1;
	}
	if (cmd.at < TS_TEXT_MIN || cmd.at > TS_TEXT_MAX)
		return seterr(err, errsz, "at: timestamp out of range (years 0000-9999)");

	const bk_val *payload;
	if (bk_take_map(&c, f[C_PAYLOAD], "payload", false, &payload) < 0)
		return -1;
	cmd.payload = payload ? *payload : empty_map();
	*ret = cmd;
	return 0;
}

int bk_codec_command_decode(const void *buf, size_t n, bool json, bool allow_internal,
			    msgpack_zone *z, bk_command *ret, char *err, size_t errsz)
{
	bk_val v = {.type = MSGPACK_OBJECT_NIL};
	if (!json) {
		if (bk_codec_unpack(buf, n, z, &v, err, errsz) < 0)
			return -1;
		return bk_codec_command_from_val(&v, allow_internal, ret, err, errsz);
	}
	if (n == 0 || buf == NULL)
		return seterr(err, errsz, "empty message");
	if (n > BK_MAX_MESSAGE)
		return seterr(err, errsz, "message larger than BK_MAX_MESSAGE");
	json_error_t jerr;
	json_t *j = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL)
		return seterr(err, errsz, "JSON: %s (line %d, column %d)", jerr.text, jerr.line,
			      jerr.column);
	int rc = bk_json_to_val(j, z, &v, err, errsz);
	json_decref(j);
	if (rc < 0)
		return -1;
	return bk_codec_command_from_val(&v, allow_internal, ret, err, errsz);
}

/* Packing helpers: each returns 0 or non-zero on a write failure. */
static int pk_str(msgpack_packer *pk, const char *s)
{
	if (s == NULL)
		return msgpack_pack_nil(pk);
	size_t n = strlen(s);
	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int pk_key(msgpack_packer *pk, const char *k)
{
	return pk_str(pk, k);
}

static int pk_kstr(msgpack_packer *pk, const char *k, const char *s)
{
	return pk_key(pk, k) || pk_str(pk, s);
}

static int pk_kint(msgpack_packer *pk, const char *k, int64_t v)
{
	return pk_key(pk, k) || msgpack_pack_int64(pk, v);
}

static int pk_kbin(msgpack_packer *pk, const char *k, const uint8_t *b, size_t n)
{
	return pk_key(pk, k) || msgpack_pack_bin(pk, n) || msgpack_pack_bin_body(pk, b, n);
}

/* A payload: a map, or nil/absent written as the empty map. */
static int pk_payload(msgpack_packer *pk, const bk_val *p)
{
	if (p->type == MSGPACK_OBJECT_NIL)
		return msgpack_pack_map(pk, 0);
	if (p->type != MSGPACK_OBJECT_MAP)
		return -1;
	return msgpack_pack_object(pk, *p);
}

/* Every encoder appends to sb, or on failure (out of memory, a missing required field,
 * more than BK_MAX_MESSAGE bytes, which no reader would accept) leaves sb as it was. */
static int enc_end(msgpack_sbuffer *sb, size_t start, int rc)
{
	if (rc != 0) {
		sb->size = start;
		return -1;
	}
	if (sb->size - start > BK_MAX_MESSAGE) {
		sb->size = start;
		return -1;
	}
	return 0;
}

int bk_codec_command_encode(const bk_command *c, msgpack_sbuffer *sb)
{
	size_t start = sb->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	char at[48];
	if (c->id == NULL || c->order_id == NULL || c->type >= BK_CMD__COUNT ||
	    c->actor_role >= BK_ROLE__COUNT || c->at < TS_TEXT_MIN || c->at > TS_TEXT_MAX)
		return -1;
	size_t atn = bk_ts_format(c->at, at, sizeof(at));
	if (atn == 0 || atn >= sizeof(at))
		return -1;
	int rc = msgpack_pack_map(&pk, c->has_expected_version ? 7 : 6);
	rc = rc || pk_kstr(&pk, "id", c->id);
	rc = rc || pk_kstr(&pk, "type", bk_cmd_name((bk_cmd_type)c->type));
	rc = rc || pk_kstr(&pk, "order_id", c->order_id);
	rc = rc || pk_key(&pk, "actor") || msgpack_pack_map(&pk, 2);
	rc = rc || pk_kstr(&pk, "user_id", c->actor_user_id);
	rc = rc || pk_kstr(&pk, "role", bk_role_name((bk_role)c->actor_role));
	if (c->has_expected_version)
		rc = rc || pk_kint(&pk, "expected_version", c->expected_version);
	rc = rc || pk_key(&pk, "at") || msgpack_pack_str(&pk, atn) ||
	     msgpack_pack_str_body(&pk, at, atn);
	rc = rc || pk_key(&pk, "payload") || pk_payload(&pk, &c->payload);
	return enc_end(sb, start, rc);
}

/* --- events --- */

static int pk_event(msgpack_packer *pk, const bk_event *e, bool with_hash)
{
	const char *sub = bk_event_subtype_name(e);
	if (e->type >= BK_EV__COUNT || e->event_id == NULL || e->order_id == NULL || !sub)
		return -1;
	if (with_hash && e->canon && e->canon_len > 1 && e->canon[0] == 0x8b) {
		/* splice the sealed canonical map (11 keys, fixmap 0x8b) and add the hash */
		int rc = msgpack_pack_map(pk, 12);
		rc = rc || pk->callback(pk->data, (const char *)e->canon + 1, e->canon_len - 1);
		return rc || pk_kbin(pk, "hash", e->hash, BK_HASH_LEN);
	}
	int rc = msgpack_pack_map(pk, with_hash ? 12 : 11);
	rc = rc || pk_kstr(pk, "event_id", e->event_id);
	rc = rc || pk_kstr(pk, "order_id", e->order_id);
	rc = rc || pk_kint(pk, "seq", e->seq);
	rc = rc || pk_kstr(pk, "kind", bk_ev_kind_name(bk_event_kind(e)));
	rc = rc || pk_kstr(pk, "subtype", sub);
	rc = rc || pk_kstr(pk, "actor_user_id", e->actor_user_id);
	rc = rc || pk_kstr(pk, "command_id", e->command_id);
	rc = rc || pk_kint(pk, "created_at", e->created_at);
	rc = rc || pk_kint(pk, "schema", e->schema);
	rc = rc || pk_key(pk, "payload") || pk_payload(pk, &e->payload);
	rc = rc || pk_kbin(pk, "prev_hash", e->prev_hash, BK_HASH_LEN);
	if (with_hash)
		rc = rc || pk_kbin(pk, "hash", e->hash, BK_HASH_LEN);
	return rc;
}

int bk_codec_event_canon(const bk_event *e, msgpack_sbuffer *sb)
{
	size_t start = sb->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	return enc_end(sb, start, pk_event(&pk, e, false));
}

int bk_codec_event_seal(bk_event *e, msgpack_sbuffer *scratch)
{
	e->canon = NULL;
	e->canon_len = 0;
	msgpack_sbuffer_clear(scratch);
	if (bk_codec_event_canon(e, scratch) < 0)
		return -1;
	bk_chain_hash(e->prev_hash, (const uint8_t *)scratch->data, scratch->size, e->hash);
	return 0;
}

int bk_codec_record_encode(const bk_record *r, msgpack_sbuffer *sb)
{
	size_t start = sb->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	if (r->order_id == NULL)
		return -1;
	int rc = msgpack_pack_map(&pk, 4);
	rc = rc || pk_kint(&pk, "v", 1);
	rc = rc || pk_kstr(&pk, "order_id", r->order_id);
	rc = rc || pk_kstr(&pk, "command_id", r->command_id);
	rc = rc || pk_key(&pk, "events") || msgpack_pack_array(&pk, r->n);
	for (uint32_t i = 0; i < r->n && rc == 0; i++)
		rc = pk_event(&pk, &r->events[i], true);
	return enc_end(sb, start, rc);
}

/* v as bk_map_lookup gives it. */
static int take_hash(bk_vctx *c, const bk_val *v, const char *key, uint8_t ret[BK_HASH_LEN])
{
	if (v == NULL || v->type != MSGPACK_OBJECT_BIN || v->via.bin.size != BK_HASH_LEN)
		return seterr(c->err, c->errsz, "%s.%s: expected binary of %d bytes", c->path, key,
			      BK_HASH_LEN);
	memcpy(ret, v->via.bin.ptr, BK_HASH_LEN);
	return 0;
}

/* path = prefix (n bytes, n <= 16) + decimal i + "]": what snprintf "%s%u]" writes,
 * without its cost for every event. path has room for 32 bytes. */
static void index_path(char path[32], const char *prefix, size_t n, uint32_t i)
{
	char dig[10];
	size_t k = 0;
	do {
		dig[k++] = (char)('0' + i % 10);
		i /= 10;
	} while (i != 0);
	memcpy(path, prefix, n);
	while (k > 0)
		path[n++] = dig[--k];
	path[n++] = ']';
	path[n] = '\0';
}

/* --- the payload contract of events ------------------------------------------------ */

/*
 * What each subtype's payload holds, for every reader that dereferences it (evolve, the
 * projector, the decider through the state evolve builds), is the schema table of
 * core/bk_schema.c (bk_schemas): the record decoder refuses an event (schema <= its type's
 * bk_event_version) whose payload misses a required field of its version or holds a field
 * of another type, so no reader meets a payload the processor would not write. Fields not
 * listed are free.
 */
static int pf_check_map(const bk_val *map, const bk_field *fields, uint32_t schema,
			const char *path, int depth, char *err, size_t errsz);

/* path + suffix into out (a bounded path for messages); only when a message is wanted
 * (err not NULL): the checks run without messages first, so valid records pay no
 * formatting. */
static const char *pf_path(char out[96], const char *path, const char *fmt, const char *key,
			   uint32_t i, const char *err)
{
	if (err == NULL)
		return path;
	int n = snprintf(out, 96, "%s.", path);
	if (n > 0 && n < 96)
		snprintf(out + n, (size_t)(96 - n), fmt, key, i);
	return out;
}

/* The value of f's key in map (NULL when absent or nil), as bk_map_get finds it. */
static const bk_val *pf_get(const bk_val *map, const bk_field *f)
{
	if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == f->klen &&
		    k->via.str.ptr[0] == f->key[0] &&
		    memcmp(k->via.str.ptr, f->key, f->klen) == 0) {
			const bk_val *v = &map->via.map.ptr[i].val;
			return v->type == MSGPACK_OBJECT_NIL ? NULL : v;
		}
	}
	return NULL;
}

/* One field of map against its row. depth bounds the nesting of item arrays. */
static int pf_check_field(const bk_val *map, const bk_field *f, uint32_t schema, const char *path,
			  int depth, char *err, size_t errsz)
{
	bk_vctx c = {err, errsz, path};
	const bk_val *v = pf_get(map, f), *sub;
	const char *s;
	size_t n;
	int64_t x;
	double d;
	bool present;
	char p[96];

	switch ((bk_ftype)f->type) {
	case BK_F_STR:
		return bk_take_str(&c, v, f->key, f->req, &s, &n);
	case BK_F_ID:
		return take_id(&c, v, f->key, f->req, &s);
	case BK_F_CENTS:
		if (bk_take_int(&c, v, f->key, f->req, &x, &present) < 0)
			return -1;
		if (present && (x < BK_CENTS_MIN || x > BK_CENTS_MAX))
			return seterr(err, errsz, "%s.%s: expected an integer within -2^31..2^31-1",
				      path, f->key);
		return 0;
	case BK_F_NUM:
		return bk_get_num(&c, map, f->key, f->req, &d, &present);
	case BK_F_TS:
		return bk_take_ts(&c, v, f->key, f->req, &x);
	case BK_F_MAP:
		return bk_take_map(&c, v, f->key, f->req, &sub);
	case BK_F_ANY:
		if (v == NULL && f->req)
			return seterr(err, errsz, "%s.%s: is required", path, f->key);
		return 0;
	case BK_F_STRS:
	case BK_F_ITEMS:
		if (bk_take_arr(&c, v, f->key, f->req, &sub) < 0)
			return -1;
		for (uint32_t i = 0; sub != NULL && i < sub->via.array.size; i++) {
			const bk_val *el = &sub->via.array.ptr[i];
			if (f->type == BK_F_STRS) {
				if (el->type != MSGPACK_OBJECT_STR)
					return seterr(err, errsz, "%s.%s[%u]: expected a string",
						      path, f->key, i);
			} else if (el->type != MSGPACK_OBJECT_MAP) {
				return seterr(err, errsz, "%s.%s[%u]: expected a line item (a map)",
					      path, f->key, i);
			} else if (pf_check_map(el, bk_schemas[BK_SC_ITEM].fields, schema,
						pf_path(p, path, "%s[%u]", f->key, i, err),
						depth + 1, err, errsz) < 0) {
				return -1;
			}
		}
		return 0;
	case BK_F_ITEM:
	case BK_F_TOTALS:
	case BK_F_LOCATION:
		if (bk_take_map(&c, v, f->key, f->req, &sub) < 0)
			return -1;
		if (sub == NULL)
			return 0;
		return pf_check_map(sub, bk_schemas[bk_ftype_schema((bk_ftype)f->type)].fields,
				    schema, pf_path(p, path, "%s", f->key, 0, err), depth + 1, err,
				    errsz);
	case BK_F__COUNT:
		break;
	}
	return seterr(err, errsz, "%s.%s: no rule", path, f->key);
}

static int pf_check_map(const bk_val *map, const bk_field *fields, uint32_t schema,
			const char *path, int depth, char *err, size_t errsz)
{
	if (depth > 4)
		return seterr(err, errsz, "%s: nested too deep", path);
	for (const bk_field *f = fields; f->key != NULL; f++)
		if (f->since <= schema &&
		    pf_check_field(map, f, schema, path, depth, err, errsz) < 0)
			return -1;
	return 0;
}

/* The payload of e (its subtype parsed) against the contract: every schema that
 * describes it (bk_payload_schemas_of, the selection the JSON writer uses too), then the
 * rules of card events that are not one field's. path names the event; err NULL: no
 * message (and no path formatting), only the verdict. */
static int payload_check(const bk_event *e, const char *path, char *err, size_t errsz)
{
	char pp[96] = "", tp[112] = "";
	const bk_val *p = &e->payload;
	bk_payload_schemas ps;
	bk_payload_schemas_of(e, &ps);
	if (err != NULL)
		snprintf(pp, sizeof(pp), "%s.payload", path);
	for (uint8_t i = 0; i < ps.n; i++)
		if (pf_check_map(p, bk_schemas[ps.top[i]].fields, e->schema, pp, 0, err, errsz) < 0)
			return -1;
	if (ps.terms < BK_SC__COUNT) {
		if (err != NULL)
			snprintf(tp, sizeof(tp), "%s.%s", pp, BK_TERMS_KEY);
		if (pf_check_map(bk_map_get(p, BK_TERMS_KEY), bk_schemas[ps.terms].fields,
				 e->schema, tp, 1, err, errsz) < 0)
			return -1;
	}
	if (e->type != BK_EV_CARD || e->sub == BK_CV_PROPOSED)
		return 0;
	if (e->sub == BK_CV_SUPERSEDED && bk_map_get(p, "superseded_by") == NULL)
		return seterr(err, errsz, "%s.superseded_by: is required", pp);
	bool items = bk_map_get(p, "line_items") != NULL;
	if (e->sub == BK_CV_ACCEPTED &&
	    (e->card_type == BK_CT_EXTRAS || e->card_type == BK_CT_EXPENSE) && !items)
		return seterr(err, errsz, "%s.line_items: is required", pp);
	if (items && bk_map_get(p, "totals") == NULL)
		return seterr(err, errsz, "%s.totals: is required with line_items", pp);
	return 0;
}

/* The fields of an event in a record, in the order the encoder writes them. */
enum {
	E_EVENT_ID,
	E_ORDER_ID,
	E_SEQ,
	E_KIND,
	E_SUBTYPE,
	E_ACTOR_USER_ID,
	E_COMMAND_ID,
	E_CREATED_AT,
	E_SCHEMA,
	E_PAYLOAD,
	E_PREV_HASH,
	E_HASH,
	E__COUNT
};
static const bk_key event_keys[E__COUNT] = {
    BK_KEY("event_id"), BK_KEY("order_id"),	 BK_KEY("seq"),	       BK_KEY("kind"),
    BK_KEY("subtype"),	BK_KEY("actor_user_id"), BK_KEY("command_id"), BK_KEY("created_at"),
    BK_KEY("schema"),	BK_KEY("payload"),	 BK_KEY("prev_hash"),  BK_KEY("hash")};

static int event_from_val(const bk_val *v, const char *path, bk_event *ret, char *err, size_t errsz)
{
	bk_vctx c = {err, errsz, path};
	bk_event e;
	const char *s;
	size_t n;
	bool present;
	int64_t x = 0;
	const bk_val *f[E__COUNT];

	memset(&e, 0, sizeof(e));
	if (v->type != MSGPACK_OBJECT_MAP)
		return seterr(err, errsz, "%s: expected a map", path);
	bk_map_lookup(v, event_keys, E__COUNT, f);
	if (take_id(&c, f[E_EVENT_ID], "event_id", true, &e.event_id) < 0 ||
	    take_id(&c, f[E_ORDER_ID], "order_id", true, &e.order_id) < 0 ||
	    bk_take_int(&c, f[E_SEQ], "seq", true, &e.seq, NULL) < 0)
		return -1;
	if (e.seq < 1 || e.seq > BK_RECORD_SEQ_MAX)
		return seterr(err, errsz, "%s.seq: expected a positive integer up to 2^31-1", path);
	if (bk_take_str(&c, f[E_KIND], "kind", true, &s, &n) < 0)
		return -1;
	int kind = -1;
	for (int k = 0; k < BK_EK__COUNT; k++) {
		const char *kn = bk_ev_kind_name((bk_ev_kind)k);
		if (kn[0] == s[0] && strlen(kn) == n && memcmp(kn, s, n) == 0)
			kind = k;
	}
	if (kind < 0)
		return seterr(err, errsz,
			      "%s.kind: expected one of system, card, payment, calendar, note",
			      path);
	if (bk_take_str(&c, f[E_SUBTYPE], "subtype", true, &s, &n) < 0)
		return -1;
	if (bk_event_subtype_parse(s, n, &e.type, &e.sub, &e.card_type) < 0)
		return seterr(err, errsz, "%s.subtype: unknown subtype \"%.*s\"", path,
			      n > 64 ? 64 : (int)n, s);
	/* the kind follows from the subtype (and the encoder writes it so): a record that
	 * says otherwise would not re-encode to its hashed bytes */
	if (kind != (int)bk_event_kind(&e))
		return seterr(err, errsz, "%s.kind: %s events are of kind %s", path,
			      bk_event_subtype_name(&e), bk_ev_kind_name(bk_event_kind(&e)));
	if (take_id(&c, f[E_ACTOR_USER_ID], "actor_user_id", false, &e.actor_user_id) < 0 ||
	    take_id(&c, f[E_COMMAND_ID], "command_id", true, &e.command_id) < 0 ||
	    bk_take_int(&c, f[E_CREATED_AT], "created_at", true, &e.created_at, NULL) < 0 ||
	    bk_take_int(&c, f[E_SCHEMA], "schema", true, &x, &present) < 0)
		return -1;
	if (e.created_at < TS_TEXT_MIN || e.created_at > TS_TEXT_MAX)
		return seterr(err, errsz, "%s.created_at: timestamp out of range (years 0000-9999)",
			      path);
	if (x < 1 || x > UINT32_MAX)
		return seterr(err, errsz, "%s.schema: expected a positive integer", path);
	e.schema = (uint32_t)x;
	const bk_val *payload;
	if (bk_take_map(&c, f[E_PAYLOAD], "payload", false, &payload) < 0)
		return -1;
	e.payload = payload ? *payload : empty_map();
	if (take_hash(&c, f[E_PREV_HASH], "prev_hash", e.prev_hash) < 0 ||
	    take_hash(&c, f[E_HASH], "hash", e.hash) < 0)
		return -1;
	/* a schema this code knows for the event's type has its payload checked; a later
	 * one is left to the readers to refuse (bk_upcast: not applied, reported) */
	if (e.schema <= bk_event_version(&e) && payload_check(&e, path, NULL, 0) < 0) {
		/* again, with the message */
		if (payload_check(&e, path, err, errsz) == 0)
			seterr(err, errsz, "%s.payload: does not hold what its subtype needs",
			       path);
		return -1;
	}
	*ret = e;
	return 0;
}

int bk_codec_record_decode(const void *buf, size_t n, msgpack_zone *z, bk_record *ret, char *err,
			   size_t errsz)
{
	bk_val v = {.type = MSGPACK_OBJECT_NIL};
	if (unpack_lim(buf, n, RECORD_MAX_DEPTH, z, &v, err, errsz) < 0)
		return -1;
	static const bk_key keys[] = {BK_KEY("v"), BK_KEY("order_id"), BK_KEY("command_id"),
				      BK_KEY("events")};
	const bk_val *f[4];
	bk_vctx c = {err, errsz, ""};
	bk_record r;
	int64_t ver;
	memset(&r, 0, sizeof(r));
	if (v.type != MSGPACK_OBJECT_MAP)
		return seterr(err, errsz, "record: expected a map");
	bk_map_lookup(&v, keys, 4, f);
	if (bk_take_int(&c, f[0], "v", true, &ver, NULL) < 0)
		return -1;
	if (ver != 1)
		return seterr(err, errsz, "v: unsupported record version %lld", (long long)ver);
	const bk_val *evs;
	if (take_id(&c, f[1], "order_id", true, &r.order_id) < 0 ||
	    take_id(&c, f[2], "command_id", true, &r.command_id) < 0 ||
	    bk_take_arr(&c, f[3], "events", true, &evs) < 0)
		return -1;
	r.n = evs->via.array.size;
	/* one command's events: at least one (no record is written without), at most what
	 * the decider may produce */
	if (r.n < 1 || r.n > BK_MAX_EVENTS)
		return seterr(err, errsz, "events: expected 1 to %d events", BK_MAX_EVENTS);
	if (r.n > 0) {
		r.events = msgpack_zone_malloc(z, (size_t)r.n * sizeof(bk_event));
		if (r.events == NULL)
			return seterr(err, errsz, "out of memory");
	}
	for (uint32_t i = 0; i < r.n; i++) {
		char path[32];
		index_path(path, "events[", sizeof("events[") - 1, i);
		if (event_from_val(&evs->via.array.ptr[i], path, &r.events[i], err, errsz) < 0)
			return -1;
		if (strcmp(r.events[i].order_id, r.order_id) != 0)
			return seterr(err, errsz, "%s.order_id: differs from the record's order_id",
				      path);
	}
	*ret = r;
	return 0;
}

/* --- results --- */

int bk_codec_result_encode(const bk_result *r, msgpack_sbuffer *sb)
{
	size_t start = sb->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	if (r->command_id == NULL)
		return -1;
	int rc = msgpack_pack_map(&pk, 7);
	rc = rc || pk_kstr(&pk, "command_id", r->command_id);
	rc = rc || pk_kstr(&pk, "order_id", r->order_id);
	rc = rc || pk_kstr(&pk, "status", bk_outcome_name(r->status));
	rc = rc || pk_kstr(&pk, "code", bk_err_name(r->code));
	rc = rc || pk_kstr(&pk, "message", r->message ? r->message : "");
	rc = rc || pk_kint(&pk, "version", r->version);
	rc = rc || pk_key(&pk, "event_ids") || msgpack_pack_array(&pk, r->n_event_ids);
	for (uint32_t i = 0; i < r->n_event_ids && rc == 0; i++)
		rc = pk_str(&pk, r->event_ids[i]);
	return enc_end(sb, start, rc);
}

int bk_codec_result_decode(const void *buf, size_t n, msgpack_zone *z, bk_result *ret, char *err,
			   size_t errsz)
{
	bk_val v = {.type = MSGPACK_OBJECT_NIL};
	if (unpack_lim(buf, n, RECORD_MAX_DEPTH, z, &v, err, errsz) < 0)
		return -1;
	static const bk_key keys[] = {BK_KEY("command_id"), BK_KEY("order_id"), BK_KEY("status"),
				      BK_KEY("code"),	    BK_KEY("message"),	BK_KEY("version"),
				      BK_KEY("event_ids")};
	const bk_val *f[7];
	bk_vctx c = {err, errsz, ""};
	bk_result r;
	const char *s;
	size_t sn;
	memset(&r, 0, sizeof(r));
	if (v.type != MSGPACK_OBJECT_MAP)
		return seterr(err, errsz, "result: expected a map");
	bk_map_lookup(&v, keys, 7, f);
	if (take_id(&c, f[0], "command_id", true, &r.command_id) < 0 ||
	    take_id(&c, f[1], "order_id", false, &r.order_id) < 0)
		return -1;
	if (bk_take_str(&c, f[2], "status", true, &s, &sn) < 0)
		return -1;
	int st = -1;
	for (int i = BK_ACCEPTED; i <= BK_DUPLICATE; i++) {
		const char *name = bk_outcome_name((bk_outcome)i);
		if (strlen(name) == sn && memcmp(name, s, sn) == 0)
			st = i;
	}
	if (st < 0)
		return seterr(err, errsz, "status: expected one of accepted, rejected, duplicate");
	r.status = (bk_outcome)st;
	if (bk_take_str(&c, f[3], "code", true, &s, &sn) < 0)
		return -1;
	r.code = bk_err_from_name(s); /* decoded strings are NUL-terminated */
	if (r.code == BK_E__COUNT)
		return seterr(err, errsz, "code: unknown code \"%.*s\"", sn > 64 ? 64 : (int)sn, s);
	if (take_text(&c, f[4], "message", false, &r.message) < 0 ||
	    bk_take_int(&c, f[5], "version", true, &r.version, NULL) < 0)
		return -1;
	if (r.message == NULL)
		r.message = "";
	const bk_val *ids;
	if (bk_take_arr(&c, f[6], "event_ids", false, &ids) < 0)
		return -1;
	if (ids != NULL && ids->via.array.size > 0) {
		r.n_event_ids = ids->via.array.size;
		r.event_ids = msgpack_zone_malloc(z, (size_t)r.n_event_ids * sizeof(char *));
		if (r.event_ids == NULL)
			return seterr(err, errsz, "out of memory");
		for (uint32_t i = 0; i < r.n_event_ids; i++) {
			const bk_val *e = &ids->via.array.ptr[i];
			if (e->type != MSGPACK_OBJECT_STR ||
			    !bk_id_valid(e->via.str.ptr, e->via.str.size, NULL))
				return seterr(err, errsz, "event_ids[%u]: expected an id", i);
			r.event_ids[i] = e->via.str.ptr;
		}
	}
	*ret = r;
	return 0;
}

/* --- rules records --- */

int bk_codec_rules_encode(const bk_profile_rules *p, msgpack_sbuffer *sb)
{
	size_t start = sb->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	uint32_t n_recent = p->n_recent > BK_PROFILE_RECENT ? BK_PROFILE_RECENT : p->n_recent;
	/* owner_user_id is written for every record, bound or legacy, so that a processor
	 * of the version before profile.bind (a rollback) still reads it; `owner` marks the
	 * owner as bound by profile.bind */
	int rc = msgpack_pack_map(&pk, p->bound ? 5 : 4);
	rc = rc || pk_kstr(&pk, "service_profile_id", p->service_profile_id);
	rc = rc || pk_kstr(&pk, "owner_user_id", p->owner_user_id);
	if (p->bound)
		rc = rc || pk_kstr(&pk, "owner", p->owner_user_id);
	rc = rc || pk_key(&pk, "rules") || msgpack_pack_array(&pk, p->n);
	for (uint32_t i = 0; i < p->n && rc == 0; i++) {
		const bk_rule *u = &p->rules[i];
		rc = msgpack_pack_map(&pk, 2u + u->has_min_price + u->has_weekday_mask +
					       u->has_max_distance);
		rc = rc || pk_kstr(&pk, "rule_id", u->rule_id);
		if (u->has_min_price)
			rc = rc || pk_kint(&pk, "min_price_cents", u->min_price_cents);
		if (u->has_weekday_mask)
			rc = rc || pk_kint(&pk, "weekday_mask", u->weekday_mask);
		if (u->has_max_distance)
			rc = rc || pk_key(&pk, "max_distance_mi") ||
			     msgpack_pack_double(&pk, u->max_distance_mi);
		rc = rc || pk_key(&pk, "allow_ib") ||
		     (u->allow_ib ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
	}
	rc = rc || pk_key(&pk, "recent") || msgpack_pack_array(&pk, n_recent);
	for (uint32_t i = 0; i < n_recent && rc == 0; i++)
		rc = msgpack_pack_uint64(&pk, p->recent[i]);
	return enc_end(sb, start, rc);
}

/* An id field copied into a fixed buffer of BK_ID_MAX bytes. */
static int get_id_buf(bk_vctx *c, const bk_val *map, const char *key, char out[BK_ID_MAX])
{
	const char *s;
	if (get_id(c, map, key, true, &s) < 0)
		return -1;
	return bk_strlcpyn(out, BK_ID_MAX, s, strlen(s));
}

static int rule_from_val(const bk_val *v, const char *path, bk_rule *ret, char *err, size_t errsz)
{
	bk_vctx c = {err, errsz, path};
	bk_rule u;
	memset(&u, 0, sizeof(u));
	if (v->type != MSGPACK_OBJECT_MAP)
		return seterr(err, errsz, "%s: expected a map", path);
	if (get_id_buf(&c, v, "rule_id", u.rule_id) < 0 ||
	    bk_get_int(&c, v, "min_price_cents", false, &u.min_price_cents, &u.has_min_price) < 0 ||
	    bk_get_int(&c, v, "weekday_mask", false, &u.weekday_mask, &u.has_weekday_mask) < 0 ||
	    bk_get_num(&c, v, "max_distance_mi", false, &u.max_distance_mi, &u.has_max_distance) <
		0 ||
	    bk_get_bool(&c, v, "allow_ib", true, &u.allow_ib, NULL) < 0)
		return -1;
	if (u.has_weekday_mask && (u.weekday_mask < 0 || u.weekday_mask > 0x7f))
		return seterr(err, errsz, "%s.weekday_mask: expected an integer in 0..127", path);
	*ret = u;
	return 0;
}

int bk_codec_rules_decode(const void *buf, size_t n, bk_profile_rules *ret, char *err, size_t errsz)
{
	msgpack_zone z;
	bk_profile_rules p;
	bk_vctx c = {err, errsz, ""};
	bk_val v = {.type = MSGPACK_OBJECT_NIL};
	const bk_val *rules, *recent;
	int rc = -1;

	memset(&p, 0, sizeof(p));
	if (!msgpack_zone_init(&z, 4096))
		return seterr(err, errsz, "out of memory");
	if (unpack_lim(buf, n, RECORD_MAX_DEPTH, &z, &v, err, errsz) < 0)
		goto out;
	if (v.type != MSGPACK_OBJECT_MAP) {
		seterr(err, errsz, "rules: expected a map");
		goto out;
	}
	/* `owner` (the provider profile.bind bound it to) is absent from records written
	 * before profile.bind: their owner_user_id is the first rule's provider, a legacy owner */
	const char *owner, *legacy;
	if (get_id_buf(&c, &v, "service_profile_id", p.service_profile_id) < 0 ||
	    get_id(&c, &v, "owner", false, &owner) < 0 ||
	    get_id(&c, &v, "owner_user_id", owner == NULL, &legacy) < 0 ||
	    bk_get_arr(&c, &v, "rules", true, &rules) < 0 ||
	    bk_get_arr(&c, &v, "recent", false, &recent) < 0)
		goto out;
	if (owner != NULL && legacy != NULL && strcmp(owner, legacy) != 0) {
		seterr(err, errsz, "owner and owner_user_id name different providers");
		goto out;
	}
	p.bound = owner != NULL;
	if (bk_strlcpyn(p.owner_user_id, sizeof(p.owner_user_id), owner ? owner : legacy,
			strlen(owner ? owner : legacy)) < 0) { /* not reached: an id fits */
		seterr(err, errsz, "owner_user_id: longer than an id");
		goto out;
	}
	if (rules->via.array.size > 0) {
		p.rules = calloc(rules->via.array.size, sizeof(bk_rule));
		if (p.rules == NULL) {
			seterr(err, errsz, "out of memory");
			goto out;
		}
		p.cap = rules->via.array.size;
	}
	for (uint32_t i = 0; i < rules->via.array.size; i++) {
		char path[32];
		snprintf(path, sizeof(path), "rules[%u]", i);
		if (rule_from_val(&rules->via.array.ptr[i], path, &p.rules[i], err, errsz) < 0)
			goto out;
		p.n++;
	}
	if (recent != NULL) {
		if (recent->via.array.size > BK_PROFILE_RECENT) {
			seterr(err, errsz, "recent: more than %d entries", BK_PROFILE_RECENT);
			goto out;
		}
		for (uint32_t i = 0; i < recent->via.array.size; i++) {
			const bk_val *e = &recent->via.array.ptr[i];
			if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
				seterr(err, errsz, "recent[%u]: expected an unsigned integer", i);
				goto out;
			}
			p.recent[i] = e->via.u64;
		}
		p.n_recent = recent->via.array.size;
	}
	*ret = p;
	p.rules = NULL;
	rc = 0;
out:
	free(p.rules);
	msgpack_zone_destroy(&z);
	return rc;
}
