/*
 * bk_wire.c - the command id of a record that may not decode (bk_wire.h). The msgpack
 * scanner only walks lengths: each step checks what it reads against the bytes left and
 * nesting is bounded, so hostile input ends the scan, never the process.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "bk_command.h"
#include "bk_wire.h"

typedef struct scan {
	const uint8_t *p;
	size_t left;
} scan;

static bool take(scan *s, size_t k, const uint8_t **ret)
{
	if (k > s->left)
		return false;
	*ret = s->p;
	s->p += k;
	s->left -= k;
	return true;
}

static bool take_be(scan *s, size_t k, uint64_t *ret)
{
	const uint8_t *b;
	if (!take(s, k, &b))
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < k; i++)
		v = v << 8 | b[i];
	*ret = v;
	return true;
}

/* Skip one object; false when it does not fit or nests deeper than BK_MAX_DEPTH + 8. */
static bool skip(scan *s, int depth)
{
	const uint8_t *b;
	uint64_t len = 0, items = 0;
	if (depth > BK_MAX_DEPTH + 8 || !take(s, 1, &b))
		return false;
	uint8_t t = b[0];
	if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
		return true;
	if (t >= 0xa0 && t <= 0xbf)
		return take(s, t & 0x1f, &b);
	if (t >= 0x90 && t <= 0x9f)
		items = t & 0x0f;
	else if (t >= 0x80 && t <= 0x8f)
		items = (uint64_t)(t & 0x0f) * 2;
	else
		switch (t) {
		case 0xcc:
		case 0xd0:
			return take(s, 1, &b);
		case 0xcd:
		case 0xd1:
			return take(s, 2, &b);
		case 0xca:
		case 0xce:
		case 0xd2:
			return take(s, 4, &b);
		case 0xcb:
		case 0xcf:
		case 0xd3:
			return take(s, 8, &b);
		case 0xd4:
			return take(s, 2, &b);
		case 0xd5:
			return take(s, 3, &b);
		case 0xd6:
			return take(s, 5, &b);
		case 0xd7:
			return take(s, 9, &b);
		case 0xd8:
			return take(s, 17, &b);
		case 0xc4:
		case 0xd9:
			return take_be(s, 1, &len) && take(s, len, &b);
		case 0xc5:
		case 0xda:
			return take_be(s, 2, &len) && take(s, len, &b);
		case 0xc6:
		case 0xdb:
			return take_be(s, 4, &len) && take(s, len, &b);
		case 0xc7:
			return take_be(s, 1, &len) && take(s, len + 1, &b);
		case 0xc8:
			return take_be(s, 2, &len) && take(s, len + 1, &b);
		case 0xc9:
			return take_be(s, 4, &len) && take(s, len + 1, &b);
		case 0xdc:
			if (!take_be(s, 2, &items))
				return false;
			break;
		case 0xdd:
			if (!take_be(s, 4, &items))
				return false;
			break;
		case 0xde:
			if (!take_be(s, 2, &items))
				return false;
			items *= 2;
			break;
		case 0xdf:
			if (!take_be(s, 4, &items))
				return false;
			items *= 2;
			break;
		default:
			return false; /* 0xc1: never used */
		}
	/* every item takes at least one byte: a huge declared count ends here */
	for (uint64_t i = 0; i < items; i++)
		if (!skip(s, depth + 1))
			return false;
	return true;
}

/* A string object: its bytes and length; false (nothing consumed that matters) if not. */
static bool take_str(scan *s, const uint8_t **ret, size_t *ret_n)
{
	const uint8_t *b;
	uint64_t len;
	if (s->left == 0)
		return false;
	uint8_t t = s->p[0];
	if (t >= 0xa0 && t <= 0xbf) {
		if (!take(s, 1, &b))
			return false;
		len = t & 0x1f;
	} else if (t == 0xd9 || t == 0xda || t == 0xdb) {
		if (!take(s, 1, &b) || !take_be(s, t == 0xd9 ? 1 : t == 0xda ? 2 : 4, &len))
			return false;
	} else
		return false;
	if (!take(s, len, ret))
		return false;
	*ret_n = (size_t)len;
	return true;
}

static int give(const char *id, size_t n, char *ret, size_t ret_size)
{
	if (n + 1 > ret_size || !bk_id_valid(id, n, NULL))
		return -1;
	memcpy(ret, id, n);
	ret[n] = '\0';
	return (int)n;
}

static int peek_msgpack(const uint8_t *p, size_t n, char *ret, size_t ret_size)
{
	scan s = {p, n};
	const uint8_t *b;
	uint64_t pairs;
	uint8_t t = p[0];
	if (!take(&s, 1, &b))
		return -1;
	if (t >= 0x80 && t <= 0x8f)
		pairs = t & 0x0f;
	else if (t == 0xde) {
		if (!take_be(&s, 2, &pairs))
			return -1;
	} else if (t == 0xdf) {
		if (!take_be(&s, 4, &pairs))
			return -1;
	} else
		return -1;
	for (uint64_t i = 0; i < pairs; i++) {
		const uint8_t *k, *v;
		size_t kn, vn;
		if (!take_str(&s, &k, &kn))
			return -1; /* a key that is not a string: the map is not a command */
		if (kn == 2 && !memcmp(k, "id", 2))
			return take_str(&s, &v, &vn) ? give((const char *)v, vn, ret, ret_size)
						     : -1;
		if (!skip(&s, 1))
			return -1;
	}
	return -1;
}

static int peek_json(const void *buf, size_t n, char *ret, size_t ret_size)
{
	json_error_t jerr;
	json_t *j = json_loadb(buf, n, 0, &jerr);
	int rc = -1;
	json_t *id = json_is_object(j) ? json_object_get(j, "id") : NULL;
	if (json_is_string(id))
		rc = give(json_string_value(id), json_string_length(id), ret, ret_size);
	json_decref(j);
	return rc;
}

int bk_wire_peek_command_id(const void *buf, size_t n, char *ret, size_t ret_size)
{
	const uint8_t *p = buf;
	if (!buf || n == 0 || !ret)
		return -1;
	size_t i = 0;
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	if (i < n && p[i] == '{')
		return n <= BK_MAX_MESSAGE ? peek_json(buf, n, ret, ret_size) : -1;
	return peek_msgpack(p, n, ret, ret_size);
}
