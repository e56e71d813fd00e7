/*
 * bk_json.c - the JSON bridge: JSON values <-> msgpack values, and commands, events and
 * results as JSON objects for people (bookingctl send/replay) and for jsonb columns.
 * Conversions are depth-limited and all-or-nothing: a failure releases what was built.
 * Strings made here are zone copies, NUL-terminated like every string the codec returns.
 *
 * Output for people (events, results, commands as JSON) writes every timestamp one way:
 * RFC 3339, UTC, always six fractional digits ("2026-11-02T10:00:00.000000Z"), so text
 * order is time order. That covers the envelope's times (created_at, a command's at) and,
 * in events, the payload fields whose row in the schema table (core/bk_schema.c) is a
 * time (BK_F_TS), at every depth the table describes: the schemas bk_payload_schemas_of
 * selects (the decoder's), the terms of a card proposal, line items, totals, location.
 * Whatever the table does not describe is written as stored: free payloads (note.added,
 * other card types' terms, a card response's payload), keys no row names, events of a
 * schema version newer than the code knows, command payloads. Keys keep their stored
 * order. The tree (bk_event_to_json) and the streaming writer (bk_event_write_json) ask
 * the same key_rule. The streaming writer prints floats in their shortest form that
 * reads back to the same double (48.86, not 48.859999999999999). bk_val_to_json (jsonb
 * columns) converts values as they are.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_codec.h"
#include "bk_schema.h"
#include "bk_time.h"

/* A value converted to JSON may be as deep as the deepest record the codec reads. */
#define TO_JSON_MAX_DEPTH (BK_MAX_DEPTH + 8)

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

/* --- JSON -> msgpack value --- */

static int to_str(msgpack_zone *z, const char *s, size_t n, bk_val *ret, char *err, size_t errsz)
{
	if (memchr(s, '\0', n) != NULL)
		return seterr(err, errsz, "JSON: NUL character in a string");
	bk_val v = bk_val_str(z, s, n);
	if (v.type != MSGPACK_OBJECT_STR)
		return seterr(err, errsz, "out of memory");
	*ret = v;
	return 0;
}

static int json_to_val(const json_t *j, msgpack_zone *z, int depth, bk_val *ret, char *err,
		       size_t errsz)
{
	bk_val v = bk_val_nil();
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		if (depth >= BK_MAX_DEPTH)
			return seterr(err, errsz, "JSON: nesting deeper than %d", BK_MAX_DEPTH);
		size_t n = json_object_size(j);
		if (n > UINT32_MAX)
			return seterr(err, errsz, "JSON: object too large");
		msgpack_object_kv *kv = NULL;
		if (n > 0) {
			kv = msgpack_zone_malloc(z, n * sizeof(*kv));
			if (kv == NULL)
				return seterr(err, errsz, "out of memory");
		}
		size_t i = 0;
		json_t *obj = (json_t *)(uintptr_t)j; /* iteration does not modify */
		for (void *it = json_object_iter(obj); it != NULL && i < n;
		     it = json_object_iter_next(obj, it), i++) {
			const char *key = json_object_iter_key(it);
#if JANSSON_VERSION_HEX >= 0x020e00
			size_t kn = json_object_iter_key_len(it);
#else
			size_t kn = strlen(key);
#endif
			if (to_str(z, key, kn, &kv[i].key, err, errsz) < 0 ||
			    json_to_val(json_object_iter_value(it), z, depth + 1, &kv[i].val, err,
					errsz) < 0)
				return -1;
		}
		v.type = MSGPACK_OBJECT_MAP;
		v.via.map.size = (uint32_t)i;
		v.via.map.ptr = kv;
		break;
	}
	case JSON_ARRAY: {
		if (depth >= BK_MAX_DEPTH)
			return seterr(err, errsz, "JSON: nesting deeper than %d", BK_MAX_DEPTH);
		size_t n = json_array_size(j);
		if (n > UINT32_MAX)
			return seterr(err, errsz, "JSON: array too large");
		if (!bk_val_arr(z, (uint32_t)n, &v))
			return seterr(err, errsz, "out of memory");
		for (size_t i = 0; i < n; i++)
			if (json_to_val(json_array_get(j, i), z, depth + 1, &v.via.array.ptr[i],
					err, errsz) < 0)
				return -1;
		break;
	}
	case JSON_STRING:
		if (to_str(z, json_string_value(j), json_string_length(j), &v, err, errsz) < 0)
			return -1;
		break;
	case JSON_INTEGER:
		v = bk_val_int((int64_t)json_integer_value(j));
		break;
	case JSON_REAL:
		v.type = MSGPACK_OBJECT_FLOAT64;
		v.via.f64 = json_real_value(j);
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		v.type = MSGPACK_OBJECT_BOOLEAN;
		v.via.boolean = json_is_true(j);
		break;
	case JSON_NULL:
		break;
	}
	*ret = v;
	return 0;
}

int bk_json_to_val(const json_t *j, msgpack_zone *z, bk_val *ret, char *err, size_t errsz)
{
	bk_val v;
	if (j == NULL)
		return seterr(err, errsz, "JSON: no value");
	if (json_to_val(j, z, 0, &v, err, errsz) < 0)
		return -1;
	*ret = v;
	return 0;
}

/* --- msgpack value -> JSON --- */

/* Hex text of bytes as a new JSON string; NULL on OOM. */
static json_t *hex_string(const uint8_t *b, size_t n)
{
	char small[2 * BK_HASH_LEN + 1];
	char *out = small;
	if (n > BK_HASH_LEN) {
		out = malloc(2 * n + 1);
		if (out == NULL)
			return NULL;
	}
	bk_hex(b, n, out);
	json_t *j = json_stringn(out, 2 * n);
	if (out != small)
		free(out);
	return j;
}

/* RFC 3339 UTC with exactly six fractional digits, into buf (>= 40 bytes); length or 0. */
static size_t ts6(int64_t us, char *buf, size_t size)
{
	size_t n = bk_ts_format(us, buf, size);
	if (n < 2 || n + 8 > size || buf[n - 1] != 'Z' || memchr(buf, '.', n))
		return n;
	memcpy(buf + n - 1, ".000000Z", 9);
	return n + 7;
}

/* A string that parses as RFC 3339, rewritten by ts6 into buf; its length or 0. */
static size_t ts_text(const bk_val *v, char *buf, size_t size)
{
	int64_t us;
	if (v->type != MSGPACK_OBJECT_STR || v->via.str.size > 64 ||
	    bk_ts_parse(v->via.str.ptr, v->via.str.size, &us) < 0)
		return 0;
	return ts6(us, buf, size);
}

/* --- which payload strings are timestamps: the schema's BK_F_TS rows -------------------
 * A scope is what the schema table says of one map of an event's payload: the rows of
 * the schemas that describe it (bk_payload_schemas_of; rows since <= the event's
 * version) and, at the top level, the schema of the terms under BK_TERMS_KEY. Both
 * writers (the tree of bk_event_to_json, the text of bk_event_write_json) ask key_rule
 * of every key; a map no scope describes (NULL) is written as stored. A schema none of
 * whose rows is a time or holds a schema (line item, totals, location) writes nothing
 * differently: it gives no scope, and its maps are written as stored at once. */
typedef struct jscope {
	const bk_field *fields[BK_PAYLOAD_SCHEMAS_MAX]; /* each with a row at least */
	uint8_t n;
	uint8_t terms; /* bk_schema_id under BK_TERMS_KEY, BK_SC__COUNT when none */
	uint32_t schema;
} jscope;

/* Where the last lookup in a map found its row: a payload's keys mostly come in the
 * order of its rows, so the next lookup starts after it. */
typedef struct jcur {
	uint8_t i, r;
} jcur;

/* The schema the value of row f holds in scope s: its type's (bk_ftype_schema), or the
 * terms; BK_SC__COUNT when none. */
static bk_schema_id row_schema(const jscope *s, const bk_field *f)
{
	if (f->type == BK_F_MAP && s->terms < BK_SC__COUNT && !strcmp(f->key, BK_TERMS_KEY))
		return (bk_schema_id)s->terms;
	return bk_ftype_schema((bk_ftype)f->type);
}

/* Does row f change what is written: a time, or a field that holds a schema? */
static bool row_matters(const jscope *s, const bk_field *f)
{
	return f->since <= s->schema && (f->type == BK_F_TS || row_schema(s, f) < BK_SC__COUNT);
}

/* Adds the rows of schema id to s; true when one of them matters. */
static bool scope_add(jscope *s, bk_schema_id id)
{
	const bk_field *f = bk_schemas[id].fields;
	if (f->key == NULL)
		return false;
	s->fields[s->n++] = f;
	for (; f->key != NULL; f++)
		if (row_matters(s, f))
			return true;
	return false;
}

/* The scope of e's payload in *buf, or NULL when no schema describes it. */
static const jscope *event_scope(const bk_event *e, jscope *buf)
{
	bk_payload_schemas ps;
	bk_payload_schemas_of(e, &ps);
	*buf = (jscope){.n = 0, .terms = ps.terms, .schema = e->schema};
	bool matters = false;
	for (uint8_t i = 0; i < ps.n; i++)
		matters |= scope_add(buf, (bk_schema_id)ps.top[i]);
	return matters ? buf : NULL;
}

/* The scope of schema id (a field's sub-schema, the terms) at version `schema` in *buf,
 * or NULL (BK_SC__COUNT, or no row of it matters). */
static const jscope *sub_scope(bk_schema_id id, uint32_t schema, jscope *buf)
{
	if (id >= BK_SC__COUNT)
		return NULL;
	*buf = (jscope){.n = 0, .terms = BK_SC__COUNT, .schema = schema};
	return scope_add(buf, id) ? buf : NULL;
}

/* The row of key k[0..n) (n > 0) in scope s, NULL when s does not describe it: every row
 * once, from the cursor on, round to it. */
static const bk_field *scope_field(const jscope *s, jcur *c, const char *k, size_t n)
{
	uint8_t i = c->i, r = c->r;
	do {
		const bk_field *f = &s->fields[i][r];
		if (f->key == NULL) { /* the end of a list: the next one, or the first */
			i = (uint8_t)(i + 1 < s->n ? i + 1 : 0);
			r = 0;
			continue;
		}
		r++;
		if (f->klen == n && f->key[0] == k[0] && f->since <= s->schema &&
		    memcmp(f->key, k, n) == 0) {
			*c = (jcur){i, r};
			return f;
		}
	} while (i != c->i || r != c->r);
	return NULL;
}

/* The pair (k, v) of a map that s describes (c its cursor): the length of v's
 * ts6 text in tb when k's row says BK_F_TS and v parses as RFC 3339, else 0 (v is
 * written as stored); *ret_child: the scope of v (for line items: of its elements) in
 * *child_buf, NULL when none. */
static size_t key_rule(const jscope *s, jcur *c, const msgpack_object *k, const bk_val *v,
		       char tb[48], jscope *child_buf, const jscope **ret_child)
{
	*ret_child = NULL;
	if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0)
		return 0;
	const bk_field *f = scope_field(s, c, k->via.str.ptr, k->via.str.size);
	if (f == NULL)
		return 0;
	if (f->type == BK_F_TS)
		return ts_text(v, tb, 48);
	*ret_child = sub_scope(row_schema(s, f), s->schema, child_buf);
	return 0;
}

/* s: the scope of v (an array: of its elements), NULL when the schema does not describe
 * it; BK_F_TS strings are written as ts6 (key_rule). */
static json_t *val_to_json(const bk_val *v, int depth, const jscope *s)
{
	if (depth > TO_JSON_MAX_DEPTH)
		return NULL;
	switch (v->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(v->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (v->via.u64 > (uint64_t)INT64_MAX)
			return NULL;
		return json_integer((json_int_t)v->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)v->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return json_real(v->via.f64); /* NULL for NaN and infinities */
	case MSGPACK_OBJECT_STR:
		if (v->via.str.size > 0 && memchr(v->via.str.ptr, '\0', v->via.str.size) != NULL)
			return NULL;
		return json_stringn(v->via.str.size ? v->via.str.ptr : "", v->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return hex_string((const uint8_t *)v->via.bin.ptr, v->via.bin.size);
	case MSGPACK_OBJECT_ARRAY: {
		json_t *a = json_array();
		if (a == NULL)
			return NULL;
		for (uint32_t i = 0; i < v->via.array.size; i++) {
			json_t *e = val_to_json(&v->via.array.ptr[i], depth + 1, s);
			if (e == NULL || json_array_append_new(a, e) != 0) {
				json_decref(a);
				return NULL;
			}
		}
		return a;
	}
	case MSGPACK_OBJECT_MAP: {
		json_t *o = json_object();
		if (o == NULL)
			return NULL;
		jcur cur = {0, 0};
		for (uint32_t i = 0; i < v->via.map.size; i++) {
			const msgpack_object *k = &v->via.map.ptr[i].key;
			if (k->type != MSGPACK_OBJECT_STR ||
			    (k->via.str.size > 0 &&
			     memchr(k->via.str.ptr, '\0', k->via.str.size) != NULL)) {
				json_decref(o);
				return NULL;
			}
			char tb[48];
			jscope cb;
			const jscope *cs = NULL;
			size_t tn =
			    s ? key_rule(s, &cur, k, &v->via.map.ptr[i].val, tb, &cb, &cs) : 0;
			json_t *e = tn ? json_stringn(tb, tn)
				       : val_to_json(&v->via.map.ptr[i].val, depth + 1, cs);
			/* json_object_setn_new checks the key's UTF-8 and releases e on failure */
			if (e == NULL ||
			    json_object_setn_new(o, k->via.str.size ? k->via.str.ptr : "",
						 k->via.str.size, e) != 0) {
				json_decref(o);
				return NULL;
			}
		}
		return o;
	}
	default:
		return NULL; /* ext */
	}
}

json_t *bk_val_to_json(const bk_val *v)
{
	return v ? val_to_json(v, 0, NULL) : NULL;
}

/* --- records for people --- */

/* Builds an object key by key; after the first failure every put is a no-op and
 * obj_done releases the object and returns NULL. */
typedef struct jb {
	json_t *o;
	bool bad;
} jb;

/* Takes v (NULL marks the build failed). */
static void put(jb *b, const char *k, json_t *v)
{
	if (v == NULL) {
		b->bad = true;
	} else if (b->bad || b->o == NULL) {
		json_decref(v);
		b->bad = true;
	} else if (json_object_set_new(b->o, k, v) != 0) { /* releases v on failure */
		b->bad = true;
	}
}

static void put_str(jb *b, const char *k, const char *s)
{
	put(b, k, s ? json_string(s) : json_null());
}

static void put_int(jb *b, const char *k, int64_t v)
{
	put(b, k, json_integer((json_int_t)v));
}

static void put_ts(jb *b, const char *k, int64_t us)
{
	char buf[48];
	if (us == BK_TS_NONE) {
		put(b, k, json_null());
		return;
	}
	size_t n = ts6(us, buf, sizeof(buf));
	put(b, k, n > 0 && n < sizeof(buf) ? json_stringn(buf, n) : NULL);
}

/* s: the payload's scope (event_scope), NULL when none. */
static void put_payload(jb *b, const char *k, const bk_val *p, const jscope *s)
{
	put(b, k, p->type == MSGPACK_OBJECT_NIL ? json_object() : val_to_json(p, 0, s));
}

static json_t *obj_done(jb *b)
{
	if (b->bad) {
		json_decref(b->o);
		return NULL;
	}
	return b->o;
}

json_t *bk_event_to_json(const bk_event *e, int32_t partition, int64_t offset)
{
	jb b = {json_object(), false};
	char sub[64];
	if (e->type >= BK_EV__COUNT)
		b.bad = true;
	if (partition >= 0) {
		put_int(&b, "partition", partition);
		put_int(&b, "offset", offset);
	}
	put_str(&b, "event_id", e->event_id);
	put_str(&b, "order_id", e->order_id);
	put_int(&b, "seq", e->seq);
	put_str(&b, "kind", bk_ev_kind_name(bk_event_kind(e)));
	put_str(&b, "subtype", bk_event_subtype(e, sub, sizeof(sub)));
	put_str(&b, "actor_user_id", e->actor_user_id);
	put_str(&b, "command_id", e->command_id);
	put_ts(&b, "created_at", e->created_at);
	put_int(&b, "schema", e->schema);
	jscope sc;
	put_payload(&b, "payload", &e->payload, event_scope(e, &sc));
	put(&b, "prev_hash", hex_string(e->prev_hash, BK_HASH_LEN));
	put(&b, "hash", hex_string(e->hash, BK_HASH_LEN));
	return obj_done(&b);
}

json_t *bk_result_to_json(const bk_result *r)
{
	jb b = {json_object(), false};
	put_str(&b, "command_id", r->command_id);
	put_str(&b, "order_id", r->order_id);
	put_str(&b, "status", bk_outcome_name(r->status));
	put_str(&b, "code", bk_err_name(r->code));
	put_str(&b, "message", r->message ? r->message : "");
	put_int(&b, "version", r->version);
	json_t *ids = json_array();
	for (uint32_t i = 0; i < r->n_event_ids && ids != NULL; i++) {
		json_t *s = r->event_ids[i] ? json_string(r->event_ids[i]) : NULL;
		if (s == NULL || json_array_append_new(ids, s) != 0) {
			json_decref(ids);
			ids = NULL;
		}
	}
	put(&b, "event_ids", ids);
	return obj_done(&b);
}

json_t *bk_command_to_json(const bk_command *c)
{
	jb b = {json_object(), false};
	if (c->type >= BK_CMD__COUNT || c->actor_role >= BK_ROLE__COUNT)
		b.bad = true;
	put_str(&b, "id", c->id);
	put_str(&b, "type", bk_cmd_name((bk_cmd_type)c->type));
	put_str(&b, "order_id", c->order_id);
	jb a = {json_object(), false};
	put_str(&a, "user_id", c->actor_user_id);
	put_str(&a, "role", bk_role_name((bk_role)c->actor_role));
	put(&b, "actor", obj_done(&a));
	if (c->has_expected_version)
		put_int(&b, "expected_version", c->expected_version);
	put_ts(&b, "at", c->at);
	put_payload(&b, "payload", &c->payload, NULL); /* no schema: as stored */
	return obj_done(&b);
}

/* --- streaming JSON for replay ---------------------------------------------------------
 * The same text json_dumps(bk_event_to_json(e), JSON_COMPACT) gives, written straight
 * from the msgpack values without building a jansson tree (replay writes millions). */

static int w(msgpack_sbuffer *o, const char *s, size_t n)
{
	return msgpack_sbuffer_write(o, s, n);
}

/* Bytes JSON strings carry as they are: not '"', not '\\', not a control character. */
static bool json_plain(unsigned char c)
{
	return c >= 0x20 && c != '"' && c != '\\';
}

/* The length of the plain run at s[0..n): eight bytes at a time while none of them
 * needs an escape (a byte below 0x20, or equal to '"' or '\\', sets its high bit in
 * `hit`; bytes of 0x80 and above are plain and masked out), then byte by byte. */
static size_t plain_run(const char *s, size_t n)
{
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t x;
		memcpy(&x, s + i, 8);
		uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
		uint64_t hit = (x - ones * 0x20) | (q - ones) | (b - ones);
		if (hit & ~x & highs)
			break;
	}
	while (i < n && json_plain((unsigned char)s[i]))
		i++;
	return i;
}

static int w_str(msgpack_sbuffer *o, const char *s, size_t n)
{
	static const char hexd[] = "0123456789ABCDEF"; /* as jansson writes \u001F */
	int rc = w(o, "\"", 1);
	size_t i = 0;
	while (i < n && rc == 0) {
		size_t run = i + plain_run(s + i, n - i); /* copied a run at a time */
		if (run > i)
			rc = w(o, s + i, run - i);
		if (run == n || rc)
			break;
		unsigned char c = (unsigned char)s[run];
		char esc[6] = {'\\', (char)c, 0, 0, 0, 0};
		size_t k = 2;
		switch (c) {
		case '"':
		case '\\':
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hexd[c >> 4];
			esc[5] = hexd[c & 15];
			k = 6;
		}
		rc = w(o, esc, k);
		i = run + 1;
	}
	return rc || w(o, "\"", 1);
}

static int w_cstr(msgpack_sbuffer *o, const char *s)
{
	return s ? w_str(o, s, strlen(s)) : w(o, "null", 4);
}

static int w_int(msgpack_sbuffer *o, int64_t v)
{
	char buf[24];
	char *p = buf + sizeof(buf);
	/* digits from the magnitude as unsigned: INT64_MIN has no positive twin */
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	return w(o, p, (size_t)(buf + sizeof(buf) - p));
}

static int w_real(msgpack_sbuffer *o, double v)
{
	char buf[40];
	int n = 0;
	/* the shortest form that reads back to the same double (at most 17 digits) */
	for (int prec = 1; prec <= 17; prec++) {
		n = snprintf(buf, sizeof(buf), "%.*g", prec, v);
		if (n <= 0 || n >= (int)sizeof(buf) - 3)
			return -1;
		if (strtod(buf, NULL) == v)
			break;
	}
	if (!strpbrk(buf, ".eE")) { /* as jansson: a real always shows it is one */
		buf[n++] = '.';
		buf[n++] = '0';
		buf[n] = '\0';
	}
	/* jansson writes exponents without '+' and leading zeros: 1e+20 -> 1e20 */
	char *e = strpbrk(buf, "eE");
	if (e) {
		char *d = e + 1;
		if (*d == '+')
			memmove(d, d + 1, strlen(d));
		if (*d == '-')
			d++;
		while (d[0] == '0' && d[1])
			memmove(d, d + 1, strlen(d));
		n = (int)strlen(buf);
	}
	return w(o, buf, (size_t)n);
}

static int w_hex(msgpack_sbuffer *o, const uint8_t *b, size_t n)
{
	char buf[2 * 256 + 2];
	if (n > 256)
		return -1;
	buf[0] = '"';
	bk_hex(b, n, buf + 1);
	buf[2 * n + 1] = '"';
	return w(o, buf, 2 * n + 2);
}

/* s: as val_to_json's. */
static int w_val(msgpack_sbuffer *o, const bk_val *v, int depth, const jscope *s)
{
	if (depth > 64)
		return -1;
	int rc = 0;
	switch (v->type) {
	case MSGPACK_OBJECT_NIL:
		return w(o, "null", 4);
	case MSGPACK_OBJECT_BOOLEAN:
		return v->via.boolean ? w(o, "true", 4) : w(o, "false", 5);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (v->via.u64 > INT64_MAX)
			return -1;
		return w_int(o, (int64_t)v->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return w_int(o, v->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return w_real(o, v->via.f64);
	case MSGPACK_OBJECT_STR:
		return w_str(o, v->via.str.ptr, v->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return w_hex(o, (const uint8_t *)v->via.bin.ptr, v->via.bin.size);
	case MSGPACK_OBJECT_ARRAY:
		rc = w(o, "[", 1);
		for (uint32_t i = 0; i < v->via.array.size && rc == 0; i++)
			rc = (i ? w(o, ",", 1) : 0) || w_val(o, &v->via.array.ptr[i], depth + 1, s);
		return rc || w(o, "]", 1);
	case MSGPACK_OBJECT_MAP:
		rc = w(o, "{", 1);
		jcur cur = {0, 0};
		for (uint32_t i = 0; i < v->via.map.size && rc == 0; i++) {
			const msgpack_object_kv *kv = &v->via.map.ptr[i];
			if (kv->key.type != MSGPACK_OBJECT_STR)
				return -1;
			char tb[48];
			jscope cb;
			const jscope *cs = NULL;
			size_t tn = s ? key_rule(s, &cur, &kv->key, &kv->val, tb, &cb, &cs) : 0;
			rc = (i ? w(o, ",", 1) : 0) ||
			     w_str(o, kv->key.via.str.ptr, kv->key.via.str.size) || w(o, ":", 1) ||
			     (tn ? w_str(o, tb, tn) : w_val(o, &kv->val, depth + 1, cs));
		}
		return rc || w(o, "}", 1);
	default:
		return -1;
	}
}

#define KEY(o, k) w(o, "\"" k "\":", sizeof(k) + 2)

int bk_event_write_json(const bk_event *e, int32_t partition, int64_t offset, msgpack_sbuffer *out)
{
	size_t start = out->size;
	char ts[40];
	jscope sc;
	const char *sub = bk_event_subtype_name(e);
	if (!sub)
		return -1;
	int rc = w(out, "{", 1);
	if (partition >= 0)
		rc = rc || KEY(out, "partition") || w_int(out, partition) || w(out, ",", 1) ||
		     KEY(out, "offset") || w_int(out, offset) || w(out, ",", 1);
	rc = rc || KEY(out, "event_id") || w_cstr(out, e->event_id) || w(out, ",", 1);
	rc = rc || KEY(out, "order_id") || w_cstr(out, e->order_id) || w(out, ",", 1);
	rc = rc || KEY(out, "seq") || w_int(out, e->seq) || w(out, ",", 1);
	rc = rc || KEY(out, "kind") || w_cstr(out, bk_ev_kind_name(bk_event_kind(e))) ||
	     w(out, ",", 1);
	rc = rc || KEY(out, "subtype") || w_cstr(out, sub) || w(out, ",", 1);
	rc = rc || KEY(out, "actor_user_id") || w_cstr(out, e->actor_user_id) || w(out, ",", 1);
	rc = rc || KEY(out, "command_id") || w_cstr(out, e->command_id) || w(out, ",", 1);
	ts6(e->created_at, ts, sizeof(ts));
	rc = rc || KEY(out, "created_at") || w_cstr(out, ts) || w(out, ",", 1);
	rc = rc || KEY(out, "schema") || w_int(out, e->schema) || w(out, ",", 1);
	rc = rc || KEY(out, "payload") ||
	     (e->payload.type == MSGPACK_OBJECT_NIL
		  ? w(out, "{}", 2)
		  : w_val(out, &e->payload, 0, event_scope(e, &sc))) ||
	     w(out, ",", 1);
	rc = rc || KEY(out, "prev_hash") || w_hex(out, e->prev_hash, BK_HASH_LEN) || w(out, ",", 1);
	rc = rc || KEY(out, "hash") || w_hex(out, e->hash, BK_HASH_LEN) || w(out, "}", 1);
	if (rc)
		out->size = start;
	return rc ? -1 : 0;
}
