/*
 * proj_json.c - bk_val -> JSON text for the projector's jsonb columns, streamed from the
 * msgpack tree. Refuses exactly what bk_val_to_json refuses, and writes numbers as jansson
 * does with JSON_REAL_PRECISION(15), so the jsonb values are the ones the jansson path gave.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_command.h"
#include "bk_chain.h"
#include "proj_json.h"

#define MAX_DEPTH (BK_MAX_DEPTH + 8) /* as bk_val_to_json */

void pj_buf_init(pj_buf *b, char *storage, size_t cap)
{
	b->p = storage;
	b->n = 0;
	b->cap = cap;
	b->own = NULL;
	if (cap)
		b->p[0] = 0;
}

void pj_buf_free(pj_buf *b)
{
	if (!b)
		return;
	free(b->own);
	b->own = NULL;
}

static int reserve(pj_buf *b, size_t more)
{
	if (b->n + more + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap * 2 : 1024;
	while (cap < b->n + more + 1)
		cap *= 2;
	char *p = b->own ? realloc(b->own, cap) : malloc(cap);
	if (!p)
		return -1;
	if (!b->own && b->n)
		memcpy(p, b->p, b->n);
	b->own = b->p = p;
	b->cap = cap;
	return 0;
}

static int put(pj_buf *b, const char *s, size_t n)
{
	if (reserve(b, n) < 0)
		return -1;
	memcpy(b->p + b->n, s, n);
	b->n += n;
	return 0;
}

/* Length of the valid UTF-8 sequence at s (jansson's rules), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	uint32_t v;
	if (c < 0x80)
		return 1;
	if (c < 0xC2)
		return 0;
	if (c < 0xE0)
		len = 2, v = c & 0x1F;
	else if (c < 0xF0)
		len = 3, v = c & 0x0F;
	else if (c <= 0xF4)
		len = 4, v = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3F);
	}
	if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (len == 3 && v < 0x800) ||
	    (len == 4 && v < 0x10000))
		return 0;
	return len;
}

static int put_str(pj_buf *b, const char *str, size_t n)
{
	static const char hexd[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	/* worst case: every byte a \u00XX escape */
	if (reserve(b, 6 * n + 2) < 0)
		return -1;
	char *o = b->p + b->n;
	*o++ = '"';
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		if (c >= 0x80) {
			size_t l = utf8_len(s + i, n - i);
			if (!l)
				return -1;
			memcpy(o, s + i, l);
			o += l;
			i += l;
			continue;
		}
		i++;
		if (c >= 0x20 && c != '"' && c != '\\') {
			*o++ = (char)c;
			continue;
		}
		if (c == 0)
			return -1;
		*o++ = '\\';
		switch (c) {
		case '"':
		case '\\':
			*o++ = (char)c;
			break;
		case '\b':
			*o++ = 'b';
			break;
		case '\f':
			*o++ = 'f';
			break;
		case '\n':
			*o++ = 'n';
			break;
		case '\r':
			*o++ = 'r';
			break;
		case '\t':
			*o++ = 't';
			break;
		default:
			o[0] = 'u';
			o[1] = '0';
			o[2] = '0';
			o[3] = hexd[c >> 4];
			o[4] = hexd[c & 15];
			o += 5;
		}
	}
	*o++ = '"';
	b->n = (size_t)(o - b->p);
	return 0;
}

static int put_int(pj_buf *b, int64_t v)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%" PRId64, v);
	return put(b, buf, (size_t)n);
}

/* jansson's jsonp_dtostr with precision 15: "%.15g", ".0" when it reads as an integer,
 * no '+' and no leading zeros in the exponent. */
static int put_real(pj_buf *b, double v)
{
	if (!isfinite(v))
		return -1;
	char buf[48];
	int n = snprintf(buf, sizeof(buf), "%.15g", v);
	if (n <= 0 || n >= (int)sizeof(buf) - 3)
		return -1;
	if (!strchr(buf, '.') && !strchr(buf, 'e')) {
		buf[n++] = '.';
		buf[n++] = '0';
		buf[n] = 0;
	}
	char *e = strchr(buf, 'e');
	if (e) {
		char *start = e + 1, *end = start + 1;
		if (*start == '-')
			start++;
		while (*end == '0')
			end++;
		if (end != start) {
			memmove(start, end, strlen(end) + 1);
			n = (int)strlen(buf);
		}
	}
	return put(b, buf, (size_t)n);
}

static int put_val(pj_buf *b, const bk_val *v, int depth)
{
	if (depth > MAX_DEPTH)
		return -1;
	switch (v->type) {
	case MSGPACK_OBJECT_NIL:
		return put(b, "null", 4);
	case MSGPACK_OBJECT_BOOLEAN:
		return v->via.boolean ? put(b, "true", 4) : put(b, "false", 5);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (v->via.u64 > (uint64_t)INT64_MAX)
			return -1;
		return put_int(b, (int64_t)v->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return put_int(b, v->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return put_real(b, v->via.f64);
	case MSGPACK_OBJECT_STR:
		return put_str(b, v->via.str.ptr, v->via.str.size);
	case MSGPACK_OBJECT_BIN: {
		size_t n = v->via.bin.size;
		if (reserve(b, 2 * n + 2) < 0)
			return -1;
		b->p[b->n++] = '"';
		bk_hex((const uint8_t *)v->via.bin.ptr, n, b->p + b->n);
		b->n += 2 * n;
		b->p[b->n++] = '"';
		return 0;
	}
	case MSGPACK_OBJECT_ARRAY:
		if (put(b, "[", 1) < 0)
			return -1;
		for (uint32_t i = 0; i < v->via.array.size; i++)
			if ((i && put(b, ",", 1) < 0) ||
			    put_val(b, &v->via.array.ptr[i], depth + 1) < 0)
				return -1;
		return put(b, "]", 1);
	case MSGPACK_OBJECT_MAP:
		if (put(b, "{", 1) < 0)
			return -1;
		for (uint32_t i = 0; i < v->via.map.size; i++) {
			const msgpack_object_kv *kv = &v->via.map.ptr[i];
			if (kv->key.type != MSGPACK_OBJECT_STR)
				return -1;
			/* a repeated key: jsonb keeps the last value, as jansson's object did */
			if ((i && put(b, ",", 1) < 0) ||
			    put_str(b, kv->key.via.str.ptr, kv->key.via.str.size) < 0 ||
			    put(b, ":", 1) < 0 || put_val(b, &kv->val, depth + 1) < 0)
				return -1;
		}
		return put(b, "}", 1);
	default:
		return -1; /* ext */
	}
}

int pj_val_json(const bk_val *v, pj_buf *b)
{
	size_t start = b->n;
	if (!v || put_val(b, v, 0) < 0 || reserve(b, 0) < 0) {
		b->n = start;
		if (b->cap)
			b->p[start] = 0;
		return -1;
	}
	b->p[b->n] = 0;
	return 0;
}
