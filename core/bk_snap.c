/*
 * bk_snap.c - snapshot and checkpoint records (bk_snap.h): positional msgpack arrays,
 * decoded from hostile bytes through bk_codec_unpack (lengths, depth, UTF-8 checked
 * before anything is built), then every field checked before it is copied.
 */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_codec.h"
#include "bk_ids.h"
#include "bk_snap.h"

#define SNAP_TAG       "snapshot"
#define CHECKPOINT_TAG "checkpoint"
#define ARCHIVED_TAG   "archived"
#define SNAP_FORMAT    2 /* 2: last_event_at; the checkpoint's archived digest (issue #11) */
#define SNAP_FIELDS    29
#define CK_FIELDS      10
#define AR_FIELDS      6

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

/* --- encoding --- */

static int pk_str(msgpack_packer *pk, const char *s)
{
	if (s == NULL)
		return msgpack_pack_nil(pk);
	size_t n = strlen(s);
	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int pk_bin(msgpack_packer *pk, const void *p, size_t n)
{
	return msgpack_pack_bin(pk, n) || (n > 0 && msgpack_pack_bin_body(pk, p, n));
}

static int pk_items(msgpack_packer *pk, const bk_items *it)
{
	int rc = msgpack_pack_array(pk, it->n);
	for (uint32_t i = 0; i < it->n && rc == 0; i++) {
		const bk_line_item *l = &it->v[i];
		rc = msgpack_pack_array(pk, 6) || pk_str(pk, l->id) ||
		     msgpack_pack_uint8(pk, l->kind) || pk_str(pk, l->title) ||
		     msgpack_pack_int64(pk, l->qty) || msgpack_pack_int64(pk, l->unit_cents) ||
		     msgpack_pack_int64(pk, l->total_cents);
	}
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int bk_snap_encode(const bk_order *o, int32_t partition, int64_t events_offset, msgpack_sbuffer *sb)
{
	if (o->version < 1)
		return -1;
	size_t start = sb->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	int rc = msgpack_pack_array(&pk, SNAP_FIELDS) || pk_str(&pk, SNAP_TAG) ||
		 msgpack_pack_int(&pk, SNAP_FORMAT) || msgpack_pack_int32(&pk, partition) ||
		 msgpack_pack_int64(&pk, events_offset) || pk_str(&pk, o->order_id) ||
		 msgpack_pack_uint8(&pk, o->status) || msgpack_pack_uint8(&pk, o->mode) ||
		 msgpack_pack_int64(&pk, o->version) || pk_str(&pk, o->buyer) ||
		 pk_str(&pk, o->provider) || pk_str(&pk, o->service_profile) ||
		 pk_str(&pk, o->timezone) || pk_str(&pk, o->currency) ||
		 msgpack_pack_int64(&pk, o->start_ts) || msgpack_pack_int64(&pk, o->end_ts) ||
		 pk_str(&pk, o->location_address) ||
		 (o->has_travel ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk)) ||
		 msgpack_pack_double(&pk, o->travel_miles) || pk_items(&pk, &o->items);
	const bk_money *m = &o->money;
	rc = rc || msgpack_pack_array(&pk, 7) || msgpack_pack_int64(&pk, m->subtotal) ||
	     msgpack_pack_int64(&pk, m->fee) || msgpack_pack_int64(&pk, m->tax) ||
	     msgpack_pack_int64(&pk, m->tip) || msgpack_pack_int64(&pk, m->total) ||
	     msgpack_pack_int64(&pk, m->paid) || msgpack_pack_int64(&pk, m->refunded);
	rc = rc || msgpack_pack_array(&pk, o->n_reqs);
	for (uint32_t i = 0; i < o->n_reqs && rc == 0; i++) {
		const bk_request *r = &o->reqs[i];
		rc = msgpack_pack_array(&pk, 7) || pk_str(&pk, r->id) ||
		     msgpack_pack_uint8(&pk, r->mode) || msgpack_pack_uint8(&pk, r->status) ||
		     msgpack_pack_int64(&pk, r->expires_at) || pk_items(&pk, &r->offer) ||
		     msgpack_pack_int64(&pk, r->offer_fee_cents) ||
		     msgpack_pack_int64(&pk, r->offer_tax_cents);
	}
	rc = rc || msgpack_pack_array(&pk, o->n_rcps);
	for (uint32_t i = 0; i < o->n_rcps && rc == 0; i++)
		rc = msgpack_pack_array(&pk, 2) || pk_str(&pk, o->rcps[i].user_id) ||
		     msgpack_pack_uint8(&pk, o->rcps[i].status);
	rc = rc || msgpack_pack_array(&pk, o->n_cards);
	for (uint32_t i = 0; i < o->n_cards && rc == 0; i++) {
		const bk_card *c = &o->cards[i];
		rc = msgpack_pack_array(&pk, 12) || pk_str(&pk, c->id) ||
		     msgpack_pack_uint8(&pk, c->type) || msgpack_pack_uint8(&pk, c->state) ||
		     (c->expiring_sent ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk)) ||
		     msgpack_pack_uint8(&pk, c->creator_role) || pk_str(&pk, c->created_by) ||
		     msgpack_pack_int64(&pk, c->expires_at) ||
		     msgpack_pack_int64(&pk, c->start_ts) || msgpack_pack_int64(&pk, c->end_ts) ||
		     pk_items(&pk, &c->items) || msgpack_pack_int64(&pk, c->amount_cents) ||
		     pk_str(&pk, c->title);
	}
	rc = rc || msgpack_pack_array(&pk, o->n_disputes);
	for (uint32_t i = 0; i < o->n_disputes && rc == 0; i++)
		rc = msgpack_pack_array(&pk, 2) || pk_str(&pk, o->disputes[i].id) ||
		     msgpack_pack_uint8(&pk, o->disputes[i].status);
	rc = rc || msgpack_pack_array(&pk, o->n_ms);
	for (uint32_t i = 0; i < o->n_ms && rc == 0; i++)
		rc = msgpack_pack_array(&pk, 3) || pk_str(&pk, o->ms[i].id) ||
		     msgpack_pack_uint8(&pk, o->ms[i].status) ||
		     msgpack_pack_int64(&pk, o->ms[i].amount_cents);
	/* the fingerprints sorted, so equal sets encode to equal bytes */
	uint64_t *fps = malloc(((size_t)o->seen.n + 1) * sizeof(*fps));
	uint32_t written = 0;
	if (!fps)
		rc = -1;
	for (uint32_t i = 0; i < o->seen.cap && rc == 0; i++)
		if (o->seen.slots[i] && written < o->seen.n)
			fps[written++] = o->seen.slots[i];
	if (rc == 0)
		qsort(fps, written, sizeof(*fps), cmp_u64);
	rc = rc || msgpack_pack_bin(&pk, (size_t)written * 8);
	for (uint32_t i = 0; i < written && rc == 0; i++) {
		uint8_t be[8];
		for (int b = 0; b < 8; b++)
			be[b] = (uint8_t)(fps[i] >> (56 - 8 * b));
		rc = msgpack_pack_bin_body(&pk, be, 8);
	}
	free(fps);
	rc = rc || written != o->seen.n;
	rc = rc || pk_str(&pk, o->last_command_id) ||
	     pk_bin(&pk, o->hashes, (size_t)o->version * BK_HASH_LEN) ||
	     msgpack_pack_int64(&pk, o->last_event_at);
	if (rc) {
		sb->size = start;
		return -1;
	}
	return 0;
}

/* --- decoding --- */

typedef struct dctx {
	char *err;
	size_t errsz;
} dctx;

static const bk_val *arr_of(dctx *d, const bk_val *v, uint32_t n, const char *what)
{
	if (v->type != MSGPACK_OBJECT_ARRAY || (n != UINT32_MAX && v->via.array.size != n)) {
		if (n == UINT32_MAX)
			seterr(d->err, d->errsz, "%s: expected an array", what);
		else
			seterr(d->err, d->errsz, "%s: expected an array of %u", what, n);
		return NULL;
	}
	/* an empty array has no elements to point at: v itself (never indexed) says "ok" */
	return v->via.array.size ? v->via.array.ptr : v;
}

static int get_i64(dctx *d, const bk_val *v, const char *what, int64_t lo, int64_t hi, int64_t *ret)
{
	int64_t x;
	if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= (uint64_t)INT64_MAX)
		x = (int64_t)v->via.u64;
	else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		x = v->via.i64;
	else
		return seterr(d->err, d->errsz, "%s: expected an integer", what);
	if (x < lo || x > hi)
		return seterr(d->err, d->errsz, "%s: %lld is out of range", what, (long long)x);
	*ret = x;
	return 0;
}

static int get_u8(dctx *d, const bk_val *v, const char *what, int count, uint8_t *ret)
{
	int64_t x = 0;
	if (get_i64(d, v, what, 0, count - 1, &x) < 0)
		return -1;
	*ret = (uint8_t)x;
	return 0;
}

static int get_bool(dctx *d, const bk_val *v, const char *what, bool *ret)
{
	if (v->type != MSGPACK_OBJECT_BOOLEAN)
		return seterr(d->err, d->errsz, "%s: expected a boolean", what);
	*ret = v->via.boolean;
	return 0;
}

/* A string into a fixed buffer; id: must be a valid id (or "" when may_be_empty). */
static int get_buf(dctx *d, const bk_val *v, const char *what, char *out, size_t outsz, bool id,
		   bool may_be_empty)
{
	if (v->type != MSGPACK_OBJECT_STR)
		return seterr(d->err, d->errsz, "%s: expected a string", what);
	const char *s = v->via.str.ptr;
	uint32_t n = v->via.str.size;
	if (n == 0 && !may_be_empty)
		return seterr(d->err, d->errsz, "%s: empty", what);
	if (id && n > 0 && !bk_id_valid(s, n, NULL))
		return seterr(d->err, d->errsz, "%s: not a valid id", what);
	if (n >= outsz || memchr(s, '\0', n))
		return seterr(d->err, d->errsz, "%s: too long", what);
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

/* An optional owned string (nil: NULL). */
static int get_dup(dctx *d, const bk_val *v, const char *what, char **ret)
{
	*ret = NULL;
	if (v->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (v->type != MSGPACK_OBJECT_STR || memchr(v->via.str.ptr, '\0', v->via.str.size))
		return seterr(d->err, d->errsz, "%s: expected a string or nil", what);
	*ret = malloc((size_t)v->via.str.size + 1);
	if (!*ret)
		return seterr(d->err, d->errsz, "out of memory");
	memcpy(*ret, v->via.str.ptr, v->via.str.size);
	(*ret)[v->via.str.size] = '\0';
	return 0;
}

#define CENTS_LIM INT64_C(4000000000000000000)

/* Items into an empty list (owned on success and on failure: the caller frees it). */
static int get_items(dctx *d, const bk_val *v, const char *what, bk_items *it)
{
	const bk_val *a = arr_of(d, v, UINT32_MAX, what);
	if (!a)
		return -1;
	uint32_t n = v->via.array.size;
	if (n == 0)
		return 0;
	if (!(it->v = calloc(n, sizeof(*it->v))))
		return seterr(d->err, d->errsz, "out of memory");
	it->cap = n;
	for (uint32_t i = 0; i < n; i++) {
		const bk_val *f = arr_of(d, &a[i], 6, what);
		bk_line_item *l = &it->v[i];
		it->n = i + 1;
		if (!f || get_buf(d, &f[0], what, l->id, sizeof(l->id), true, true) < 0 ||
		    get_u8(d, &f[1], what, BK_LI__COUNT, &l->kind) < 0 ||
		    get_dup(d, &f[2], what, &l->title) < 0 ||
		    get_i64(d, &f[3], what, INT64_MIN, INT64_MAX, &l->qty) < 0 ||
		    get_i64(d, &f[4], what, -CENTS_LIM, CENTS_LIM, &l->unit_cents) < 0 ||
		    get_i64(d, &f[5], what, -CENTS_LIM, CENTS_LIM, &l->total_cents) < 0)
			return -1;
	}
	return 0;
}

/* Allocate n zeroed elements of size sz for an array field. */
static void *alloc_n(dctx *d, uint32_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);
	if (!p)
		seterr(d->err, d->errsz, "out of memory");
	return p;
}

static int decode_order(dctx *d, const bk_val *f, bk_order *o)
{
	if (get_u8(d, &f[5], "status", BK_ST__COUNT, &o->status) < 0 ||
	    get_u8(d, &f[6], "mode", BK_MODE__COUNT, &o->mode) < 0 ||
	    get_i64(d, &f[7], "version", 1, BK_RECORD_SEQ_MAX, &o->version) < 0 ||
	    get_buf(d, &f[8], "buyer", o->buyer, sizeof(o->buyer), true, true) < 0 ||
	    get_buf(d, &f[9], "provider", o->provider, sizeof(o->provider), true, true) < 0 ||
	    get_buf(d, &f[10], "service_profile", o->service_profile, sizeof(o->service_profile),
		    true, true) < 0 ||
	    get_buf(d, &f[11], "timezone", o->timezone, sizeof(o->timezone), false, true) < 0 ||
	    get_buf(d, &f[12], "currency", o->currency, sizeof(o->currency), false, true) < 0 ||
	    get_i64(d, &f[13], "start_ts", INT64_MIN, INT64_MAX, &o->start_ts) < 0 ||
	    get_i64(d, &f[14], "end_ts", INT64_MIN, INT64_MAX, &o->end_ts) < 0 ||
	    get_dup(d, &f[15], "location_address", &o->location_address) < 0 ||
	    get_bool(d, &f[16], "has_travel", &o->has_travel) < 0)
		return -1;
	if (f[17].type != MSGPACK_OBJECT_FLOAT64 && f[17].type != MSGPACK_OBJECT_FLOAT32)
		return seterr(d->err, d->errsz, "travel_miles: expected a float");
	o->travel_miles = f[17].via.f64;
	if (get_items(d, &f[18], "items", &o->items) < 0)
		return -1;
	const bk_val *m = arr_of(d, &f[19], 7, "money");
	int64_t *mv[7] = {&o->money.subtotal, &o->money.fee,  &o->money.tax,	 &o->money.tip,
			  &o->money.total,    &o->money.paid, &o->money.refunded};
	if (!m)
		return -1;
	for (int i = 0; i < 7; i++)
		if (get_i64(d, &m[i], "money", -CENTS_LIM, CENTS_LIM, mv[i]) < 0)
			return -1;
	/* requests */
	const bk_val *a = arr_of(d, &f[20], UINT32_MAX, "requests");
	if (!a || !(o->reqs = alloc_n(d, f[20].via.array.size, sizeof(*o->reqs))))
		return -1;
	o->cap_reqs = f[20].via.array.size;
	for (uint32_t i = 0; i < f[20].via.array.size; i++) {
		const bk_val *r = arr_of(d, &a[i], 7, "request");
		bk_request *q = &o->reqs[i];
		o->n_reqs = i + 1;
		if (!r || get_buf(d, &r[0], "request.id", q->id, sizeof(q->id), true, false) < 0 ||
		    get_u8(d, &r[1], "request.mode", BK_MODE__COUNT, &q->mode) < 0 ||
		    get_u8(d, &r[2], "request.status", BK_RQ__COUNT, &q->status) < 0 ||
		    get_i64(d, &r[3], "request.expires_at", INT64_MIN, INT64_MAX, &q->expires_at) <
			0 ||
		    get_items(d, &r[4], "request.offer", &q->offer) < 0 ||
		    get_i64(d, &r[5], "request.offer_fee", -CENTS_LIM, CENTS_LIM,
			    &q->offer_fee_cents) < 0 ||
		    get_i64(d, &r[6], "request.offer_tax", -CENTS_LIM, CENTS_LIM,
			    &q->offer_tax_cents) < 0)
			return -1;
	}
	/* recipients */
	a = arr_of(d, &f[21], UINT32_MAX, "recipients");
	if (!a || !(o->rcps = alloc_n(d, f[21].via.array.size, sizeof(*o->rcps))))
		return -1;
	o->cap_rcps = f[21].via.array.size;
	for (uint32_t i = 0; i < f[21].via.array.size; i++) {
		const bk_val *r = arr_of(d, &a[i], 2, "recipient");
		o->n_rcps = i + 1;
		if (!r ||
		    get_buf(d, &r[0], "recipient.user_id", o->rcps[i].user_id,
			    sizeof(o->rcps[i].user_id), true, false) < 0 ||
		    get_u8(d, &r[1], "recipient.status", BK_RC__COUNT, &o->rcps[i].status) < 0)
			return -1;
	}
	/* cards */
	a = arr_of(d, &f[22], UINT32_MAX, "cards");
	if (!a || !(o->cards = alloc_n(d, f[22].via.array.size, sizeof(*o->cards))))
		return -1;
	o->cap_cards = f[22].via.array.size;
	for (uint32_t i = 0; i < f[22].via.array.size; i++) {
		const bk_val *r = arr_of(d, &a[i], 12, "card");
		bk_card *c = &o->cards[i];
		o->n_cards = i + 1;
		if (!r || get_buf(d, &r[0], "card.id", c->id, sizeof(c->id), true, false) < 0 ||
		    get_u8(d, &r[1], "card.type", BK_CT__COUNT, &c->type) < 0 ||
		    get_u8(d, &r[2], "card.state", BK_CS__COUNT, &c->state) < 0 ||
		    get_bool(d, &r[3], "card.expiring_sent", &c->expiring_sent) < 0 ||
		    get_u8(d, &r[4], "card.creator_role", BK_ROLE__COUNT, &c->creator_role) < 0 ||
		    get_buf(d, &r[5], "card.created_by", c->created_by, sizeof(c->created_by), true,
			    true) < 0 ||
		    get_i64(d, &r[6], "card.expires_at", INT64_MIN, INT64_MAX, &c->expires_at) <
			0 ||
		    get_i64(d, &r[7], "card.start_ts", INT64_MIN, INT64_MAX, &c->start_ts) < 0 ||
		    get_i64(d, &r[8], "card.end_ts", INT64_MIN, INT64_MAX, &c->end_ts) < 0 ||
		    get_items(d, &r[9], "card.items", &c->items) < 0 ||
		    get_i64(d, &r[10], "card.amount", -CENTS_LIM, CENTS_LIM, &c->amount_cents) <
			0 ||
		    get_dup(d, &r[11], "card.title", &c->title) < 0)
			return -1;
	}
	/* disputes */
	a = arr_of(d, &f[23], UINT32_MAX, "disputes");
	if (!a || !(o->disputes = alloc_n(d, f[23].via.array.size, sizeof(*o->disputes))))
		return -1;
	o->cap_disputes = f[23].via.array.size;
	for (uint32_t i = 0; i < f[23].via.array.size; i++) {
		const bk_val *r = arr_of(d, &a[i], 2, "dispute");
		o->n_disputes = i + 1;
		if (!r ||
		    get_buf(d, &r[0], "dispute.id", o->disputes[i].id, sizeof(o->disputes[i].id),
			    true, false) < 0 ||
		    get_u8(d, &r[1], "dispute.status", BK_DS__COUNT, &o->disputes[i].status) < 0)
			return -1;
	}
	/* milestones */
	a = arr_of(d, &f[24], UINT32_MAX, "milestones");
	if (!a || !(o->ms = alloc_n(d, f[24].via.array.size, sizeof(*o->ms))))
		return -1;
	o->cap_ms = f[24].via.array.size;
	for (uint32_t i = 0; i < f[24].via.array.size; i++) {
		const bk_val *r = arr_of(d, &a[i], 3, "milestone");
		o->n_ms = i + 1;
		if (!r ||
		    get_buf(d, &r[0], "milestone.id", o->ms[i].id, sizeof(o->ms[i].id), true,
			    false) < 0 ||
		    get_u8(d, &r[1], "milestone.status", BK_MS__COUNT, &o->ms[i].status) < 0 ||
		    get_i64(d, &r[2], "milestone.amount", -CENTS_LIM, CENTS_LIM,
			    &o->ms[i].amount_cents) < 0)
			return -1;
	}
	/* seen: distinct non-zero fingerprints with the low bit set, at most one per event */
	if (f[25].type != MSGPACK_OBJECT_BIN || f[25].via.bin.size % 8 != 0 ||
	    f[25].via.bin.size / 8 > (uint64_t)o->version)
		return seterr(d->err, d->errsz, "seen: expected at most version fingerprints");
	const uint8_t *fp = (const uint8_t *)f[25].via.bin.ptr;
	for (uint32_t i = 0; i < f[25].via.bin.size / 8; i++) {
		uint64_t v = 0;
		for (int b = 0; b < 8; b++)
			v = v << 8 | fp[8 * i + (uint32_t)b];
		if (!(v & 1))
			return seterr(d->err, d->errsz, "seen[%u]: not a fingerprint", i);
		int r = bk_idset_add(&o->seen, v);
		if (r < 0)
			return seterr(d->err, d->errsz, "out of memory");
		if (r == 0)
			return seterr(d->err, d->errsz, "seen[%u]: repeated", i);
	}
	if (get_buf(d, &f[26], "last_command_id", o->last_command_id, sizeof(o->last_command_id),
		    true, false) < 0)
		return -1;
	if (!bk_order_seen(o, o->last_command_id, strlen(o->last_command_id)))
		return seterr(d->err, d->errsz, "last_command_id: not among the seen ids");
	if (f[27].type != MSGPACK_OBJECT_BIN ||
	    f[27].via.bin.size != (uint64_t)o->version * BK_HASH_LEN)
		return seterr(d->err, d->errsz, "hashes: expected version x %d bytes", BK_HASH_LEN);
	if (!(o->hashes = malloc(f[27].via.bin.size)))
		return seterr(d->err, d->errsz, "out of memory");
	memcpy(o->hashes, f[27].via.bin.ptr, f[27].via.bin.size);
	o->cap_hashes = (uint32_t)o->version;
	return get_i64(d, &f[28], "last_event_at", INT64_MIN, INT64_MAX, &o->last_event_at);
}

int bk_snap_decode(const void *buf, size_t n, bk_order **ret, int32_t *ret_partition,
		   int64_t *ret_events_offset, char *err, size_t errsz)
{
	msgpack_zone z;
	bk_val v;
	dctx d = {err, errsz};
	bk_order *o = NULL;
	int rc = -1;
	*ret = NULL;
	if (!msgpack_zone_init(&z, 4096))
		return seterr(err, errsz, "out of memory");
	if (bk_codec_unpack(buf, n, &z, &v, err, errsz) < 0)
		goto out;
	const bk_val *f = arr_of(&d, &v, SNAP_FIELDS, "snapshot");
	if (!f)
		goto out;
	int64_t fmt = 0, part = 0, off = 0;
	char oid[BK_ID_MAX];
	if (f[0].type != MSGPACK_OBJECT_STR || f[0].via.str.size != strlen(SNAP_TAG) ||
	    memcmp(f[0].via.str.ptr, SNAP_TAG, strlen(SNAP_TAG)) != 0) {
		seterr(err, errsz, "not a snapshot");
		goto out;
	}
	if (get_i64(&d, &f[1], "format", SNAP_FORMAT, SNAP_FORMAT, &fmt) < 0 ||
	    get_i64(&d, &f[2], "partition", 0, INT32_MAX, &part) < 0 ||
	    get_i64(&d, &f[3], "events_offset", 0, INT64_MAX, &off) < 0 ||
	    get_buf(&d, &f[4], "order_id", oid, sizeof(oid), true, false) < 0)
		goto out;
	if (!(o = bk_order_new(oid))) {
		seterr(err, errsz, "out of memory");
		goto out;
	}
	if (decode_order(&d, f, o) < 0)
		goto out;
	o->snap_version = o->version;
	bk_snap_hash(buf, n, o->snap_hash);
	*ret = o;
	*ret_partition = (int32_t)part;
	*ret_events_offset = off;
	o = NULL;
	rc = 0;
out:
	bk_order_free(o);
	msgpack_zone_destroy(&z);
	return rc;
}

/* --- the set digest --- */

void bk_snap_hash(const void *buf, size_t n, uint8_t ret[BK_HASH_LEN])
{
	crypto_generichash(ret, BK_HASH_LEN, buf, n, NULL, 0);
}

void bk_snap_sum_add(bk_snap_sum *s, const uint8_t h[BK_HASH_LEN], int sign)
{
	for (int l = 0; l < 4; l++) {
		uint64_t x = 0;
		for (int b = 0; b < 8; b++)
			x = x << 8 | h[8 * l + b];
		s->lane[l] = sign > 0 ? s->lane[l] + x : s->lane[l] - x;
	}
	s->count = sign > 0 ? s->count + 1 : s->count - 1;
}

bool bk_snap_sum_eq(const bk_snap_sum *a, const bk_snap_sum *b)
{
	return a->count == b->count && memcmp(a->lane, b->lane, sizeof(a->lane)) == 0;
}

/* --- checkpoints --- */

static void lanes_out(const bk_snap_sum *s, uint8_t out[32])
{
	for (int l = 0; l < 4; l++)
		for (int b = 0; b < 8; b++)
			out[8 * l + b] = (uint8_t)(s->lane[l] >> (56 - 8 * b));
}

static void lanes_in(const uint8_t in[32], bk_snap_sum *s)
{
	for (int l = 0; l < 4; l++)
		for (int b = 0; b < 8; b++)
			s->lane[l] = s->lane[l] << 8 | in[8 * l + b];
}

int bk_snap_checkpoint_encode(const bk_checkpoint *ck, msgpack_sbuffer *sb)
{
	uint8_t sum[32], asum[32];
	lanes_out(&ck->sum, sum);
	lanes_out(&ck->archived, asum);
	size_t start = sb->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	int rc = msgpack_pack_array(&pk, CK_FIELDS) || pk_str(&pk, CHECKPOINT_TAG) ||
		 msgpack_pack_int(&pk, SNAP_FORMAT) || msgpack_pack_int32(&pk, ck->partition) ||
		 msgpack_pack_int64(&pk, ck->events_offset) ||
		 msgpack_pack_int64(&pk, ck->src_next) || msgpack_pack_uint64(&pk, ck->sum.count) ||
		 pk_bin(&pk, sum, sizeof(sum)) || msgpack_pack_int64(&pk, ck->written_at) ||
		 msgpack_pack_uint64(&pk, ck->archived.count) || pk_bin(&pk, asum, sizeof(asum));
	if (rc) {
		sb->size = start;
		return -1;
	}
	return 0;
}

int bk_snap_checkpoint_decode(const void *buf, size_t n, bk_checkpoint *ret, char *err,
			      size_t errsz)
{
	msgpack_zone z;
	bk_val v;
	dctx d = {err, errsz};
	bk_checkpoint ck;
	int rc = -1;
	memset(&ck, 0, sizeof(ck));
	if (!msgpack_zone_init(&z, 1024))
		return seterr(err, errsz, "out of memory");
	if (bk_codec_unpack(buf, n, &z, &v, err, errsz) < 0)
		goto out;
	const bk_val *f = arr_of(&d, &v, CK_FIELDS, "checkpoint");
	if (!f)
		goto out;
	if (f[0].type != MSGPACK_OBJECT_STR || f[0].via.str.size != strlen(CHECKPOINT_TAG) ||
	    memcmp(f[0].via.str.ptr, CHECKPOINT_TAG, strlen(CHECKPOINT_TAG)) != 0) {
		seterr(err, errsz, "not a checkpoint");
		goto out;
	}
	int64_t fmt = 0, part = 0, count = 0, acount = 0;
	if (get_i64(&d, &f[1], "format", SNAP_FORMAT, SNAP_FORMAT, &fmt) < 0 ||
	    get_i64(&d, &f[2], "partition", 0, INT32_MAX, &part) < 0 ||
	    get_i64(&d, &f[3], "events_offset", 0, INT64_MAX, &ck.events_offset) < 0 ||
	    get_i64(&d, &f[4], "src_next", 0, INT64_MAX, &ck.src_next) < 0 ||
	    get_i64(&d, &f[5], "orders", 0, INT64_MAX, &count) < 0 ||
	    get_i64(&d, &f[7], "written_at", INT64_MIN, INT64_MAX, &ck.written_at) < 0 ||
	    get_i64(&d, &f[8], "archived", 0, INT64_MAX, &acount) < 0)
		goto out;
	if (f[6].type != MSGPACK_OBJECT_BIN || f[6].via.bin.size != 32 ||
	    f[9].type != MSGPACK_OBJECT_BIN || f[9].via.bin.size != 32) {
		seterr(err, errsz, "sum, archived_sum: expected 32 bytes");
		goto out;
	}
	lanes_in((const uint8_t *)f[6].via.bin.ptr, &ck.sum);
	lanes_in((const uint8_t *)f[9].via.bin.ptr, &ck.archived);
	ck.sum.count = (uint64_t)count;
	ck.archived.count = (uint64_t)acount;
	ck.partition = (int32_t)part;
	*ret = ck;
	rc = 0;
out:
	msgpack_zone_destroy(&z);
	return rc;
}

/* --- archived records --- */

void bk_snap_sum_add_fp(bk_snap_sum *s, uint64_t fp)
{
	uint8_t be[8], h[BK_HASH_LEN];
	for (int b = 0; b < 8; b++)
		be[b] = (uint8_t)(fp >> (56 - 8 * b));
	bk_snap_hash(be, sizeof(be), h);
	bk_snap_sum_add(s, h, 1);
}

int bk_snap_archived_encode(int32_t partition, int64_t events_offset, bool full,
			    const uint64_t *fps, size_t n, msgpack_sbuffer *sb)
{
	uint64_t *v = malloc((n + 1) * sizeof(*v));
	if (!v)
		return -1;
	if (n)
		memcpy(v, fps, n * sizeof(*v));
	qsort(v, n, sizeof(*v), cmp_u64); /* equal sets encode to equal bytes */
	size_t start = sb->size;
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	int rc = msgpack_pack_array(&pk, AR_FIELDS) || pk_str(&pk, ARCHIVED_TAG) ||
		 msgpack_pack_int(&pk, SNAP_FORMAT) || msgpack_pack_int32(&pk, partition) ||
		 msgpack_pack_int64(&pk, events_offset) ||
		 (full ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk)) ||
		 msgpack_pack_bin(&pk, n * 8);
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint8_t be[8];
		for (int b = 0; b < 8; b++)
			be[b] = (uint8_t)(v[i] >> (56 - 8 * b));
		rc = msgpack_pack_bin_body(&pk, be, 8);
	}
	free(v);
	if (rc) {
		sb->size = start;
		return -1;
	}
	return 0;
}

int bk_snap_archived_decode(const void *buf, size_t n, bk_snap_archived *ret, char *err,
			    size_t errsz)
{
	msgpack_zone z;
	bk_val v;
	dctx d = {err, errsz};
	int rc = -1;
	uint64_t *fps = NULL;
	if (!msgpack_zone_init(&z, 1024))
		return seterr(err, errsz, "out of memory");
	if (bk_codec_unpack(buf, n, &z, &v, err, errsz) < 0)
		goto out;
	const bk_val *f = arr_of(&d, &v, AR_FIELDS, "archived record");
	if (!f)
		goto out;
	if (f[0].type != MSGPACK_OBJECT_STR || f[0].via.str.size != strlen(ARCHIVED_TAG) ||
	    memcmp(f[0].via.str.ptr, ARCHIVED_TAG, strlen(ARCHIVED_TAG)) != 0) {
		seterr(err, errsz, "not an archived record");
		goto out;
	}
	int64_t fmt = 0, part = 0, off = 0;
	bk_snap_archived a = {0};
	if (get_i64(&d, &f[1], "format", SNAP_FORMAT, SNAP_FORMAT, &fmt) < 0 ||
	    get_i64(&d, &f[2], "partition", 0, INT32_MAX, &part) < 0 ||
	    get_i64(&d, &f[3], "events_offset", 0, INT64_MAX, &off) < 0 ||
	    get_bool(&d, &f[4], "full", &a.full) < 0)
		goto out;
	if (f[5].type != MSGPACK_OBJECT_BIN || f[5].via.bin.size % 8 != 0) {
		seterr(err, errsz, "fingerprints: expected 8 bytes each");
		goto out;
	}
	a.n = f[5].via.bin.size / 8;
	if (!(fps = malloc((a.n + 1) * sizeof(*fps)))) {
		seterr(err, errsz, "out of memory");
		goto out;
	}
	const uint8_t *p = (const uint8_t *)f[5].via.bin.ptr;
	for (size_t i = 0; i < a.n; i++) {
		uint64_t x = 0;
		for (int b = 0; b < 8; b++)
			x = x << 8 | p[8 * i + (size_t)b];
		/* fingerprints have the low bit set; sorted and distinct */
		if (!(x & 1) || (i > 0 && x <= fps[i - 1])) {
			seterr(err, errsz, "fingerprint %zu: not a sorted, distinct fingerprint",
			       i);
			goto out;
		}
		fps[i] = x;
	}
	a.partition = (int32_t)part;
	a.events_offset = off;
	a.fps = fps;
	fps = NULL;
	*ret = a;
	rc = 0;
out:
	free(fps);
	msgpack_zone_destroy(&z);
	return rc;
}
