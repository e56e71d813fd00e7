/*
 * bk_seal.c - seal records (codec, signature check, digests) and the seal buffer that
 * decides, for every reader alike, which records a seal covers (docs/design.md, "Seals").
 * Invariant: the buffer holds records in strictly increasing offset order and gives each
 * handle back exactly once.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bk_codec.h"
#include "bk_seal.h"
#include "bk_val.h"

void bk_seal_digest_record(const bk_record *r, uint8_t ret[BK_HASH_LEN])
{
	crypto_generichash_state st;
	static const uint8_t nul = 0;

	crypto_generichash_init(&st, NULL, 0, BK_HASH_LEN);
	if (r->order_id)
		crypto_generichash_update(&st, (const uint8_t *)r->order_id, strlen(r->order_id));
	crypto_generichash_update(&st, &nul, 1);
	if (r->command_id)
		crypto_generichash_update(&st, (const uint8_t *)r->command_id,
					  strlen(r->command_id));
	crypto_generichash_update(&st, &nul, 1);
	for (uint32_t i = 0; i < r->n; i++)
		crypto_generichash_update(&st, r->events[i].hash, BK_HASH_LEN);
	crypto_generichash_final(&st, ret, BK_HASH_LEN);
}

void bk_seal_digest_bytes(const void *buf, size_t n, uint8_t ret[BK_HASH_LEN])
{
	crypto_generichash(ret, BK_HASH_LEN, buf, n, NULL, 0);
}

bool bk_seal_hash_ok(const bk_event *e, msgpack_sbuffer *scratch)
{
	uint8_t h[BK_HASH_LEN];
	scratch->size = 0;
	if (bk_codec_event_canon(e, scratch) < 0)
		return false;
	bk_chain_hash(e->prev_hash, (const uint8_t *)scratch->data, scratch->size, h);
	return memcmp(h, e->hash, BK_HASH_LEN) == 0;
}

static int pk_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

int bk_seal_encode(const bk_seal *s, msgpack_sbuffer *sb)
{
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	int rc = msgpack_pack_map(&pk, 7) || pk_str(&pk, "seal") ||
		 msgpack_pack_int64(&pk, BK_SEAL_VERSION) || pk_str(&pk, "writer") ||
		 pk_str(&pk, s->writer) || pk_str(&pk, "topic") || pk_str(&pk, s->topic) ||
		 pk_str(&pk, "partition") || msgpack_pack_int64(&pk, s->partition) ||
		 pk_str(&pk, "base") || msgpack_pack_int64(&pk, s->base) ||
		 pk_str(&pk, "src_next") || msgpack_pack_int64(&pk, s->src_next) ||
		 pk_str(&pk, "records") || msgpack_pack_array(&pk, s->n);
	for (uint32_t i = 0; !rc && i < s->n; i++)
		rc = msgpack_pack_array(&pk, 2) || msgpack_pack_int64(&pk, s->recs[i].offset) ||
		     msgpack_pack_bin(&pk, BK_HASH_LEN) ||
		     msgpack_pack_bin_body(&pk, s->recs[i].digest, BK_HASH_LEN);
	return rc ? -1 : 0;
}

static int seterr(char *err, size_t errsz, const char *msg)
{
	snprintf(err, errsz, "%s", msg);
	return -1;
}

static int decode(const void *val, size_t n, msgpack_zone *z, bk_seal *ret, char *err, size_t errsz)
{
	bk_val v;
	if (bk_codec_unpack(val, n, z, &v, err, errsz) < 0)
		return -1;
	if (v.type != MSGPACK_OBJECT_MAP)
		return seterr(err, errsz, "seal: not a map");
	bk_vctx c = {.err = err, .errsz = errsz, .path = "seal"};
	int64_t ver, part;
	const char *writer, *topic;
	size_t wn, tn;
	bk_seal s = {0};
	const bk_val *recs;
	if (bk_get_int(&c, &v, "seal", true, &ver, NULL) < 0 ||
	    bk_get_str(&c, &v, "writer", true, &writer, &wn) < 0 ||
	    bk_get_str(&c, &v, "topic", true, &topic, &tn) < 0 ||
	    bk_get_int(&c, &v, "partition", true, &part, NULL) < 0 ||
	    bk_get_int(&c, &v, "base", true, &s.base, NULL) < 0 ||
	    bk_get_int(&c, &v, "src_next", true, &s.src_next, NULL) < 0 ||
	    bk_get_arr(&c, &v, "records", true, &recs) < 0)
		return -1;
	if (ver != BK_SEAL_VERSION)
		return seterr(err, errsz, "seal: unknown version");
	if (part < 0 || part > INT32_MAX || s.base < -1 || s.src_next < -1)
		return seterr(err, errsz, "seal: partition, base or src_next out of range");
	if (recs->via.array.size > BK_SEAL_MAX_RECS)
		return seterr(err, errsz, "seal: too many records");
	/* strings from bk_get_str are not NUL-terminated: copy into the zone */
	char *w = msgpack_zone_malloc(z, wn + 1), *t = msgpack_zone_malloc(z, tn + 1);
	bk_seal_rec *r = msgpack_zone_malloc(z, sizeof(*r) * (recs->via.array.size + 1));
	if (!w || !t || !r)
		return seterr(err, errsz, "out of memory");
	memcpy(w, writer, wn);
	w[wn] = '\0';
	memcpy(t, topic, tn);
	t[tn] = '\0';
	int64_t prev = -1;
	for (uint32_t i = 0; i < recs->via.array.size; i++) {
		const bk_val *e = &recs->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 ||
		    e->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    e->via.array.ptr[1].type != MSGPACK_OBJECT_BIN ||
		    e->via.array.ptr[1].via.bin.size != BK_HASH_LEN)
			return seterr(err, errsz, "seal: records[i] must be [offset, bin 32]");
		uint64_t off = e->via.array.ptr[0].via.u64;
		if (off > INT64_MAX || (int64_t)off <= prev)
			return seterr(err, errsz, "seal: record offsets must increase");
		r[i].offset = prev = (int64_t)off;
		memcpy(r[i].digest, e->via.array.ptr[1].via.bin.ptr, BK_HASH_LEN);
	}
	s.writer = w;
	s.topic = t;
	s.partition = (int32_t)part;
	s.recs = r;
	s.n = recs->via.array.size;
	*ret = s;
	return 0;
}

int bk_seal_check(const bk_keyring *writers, const char *key_id, size_t key_id_len,
		  const uint8_t *sig, size_t sig_len, const void *val, size_t n, const char *topic,
		  int32_t partition, msgpack_zone *z, bk_seal *ret, char *err, size_t errsz)
{
	bk_seal s;
	if (!writers)
		return seterr(err, errsz, "seal: no writer keyring");
	if (!key_id || !sig)
		return seterr(err, errsz, "seal: no key-id or signature header");
	if (bk_auth_verify(writers, key_id, key_id_len, sig, sig_len, val, n, BK_ROLE_SYSTEM,
			   BK_SEAL_TYPE, err, errsz) < 0)
		return -1;
	if (decode(val, n, z, &s, err, errsz) < 0)
		return -1;
	if (strlen(s.writer) != key_id_len || memcmp(s.writer, key_id, key_id_len) != 0)
		return seterr(err, errsz, "seal: writer is not the signing key");
	if (strcmp(s.topic, topic) != 0 || s.partition != partition)
		return seterr(err, errsz, "seal: names another topic or partition");
	*ret = s;
	return 0;
}

/* --- the seal buffer --- */

typedef struct held {
	int64_t offset;
	uint8_t digest[BK_HASH_LEN]; /* known: the record's; else, once listed: the seal's */
	void *rec;
	bool known;  /* the record's digest was given */
	bool listed; /* a valid seal listed its offset */
	bool sealed; /* ... with its digest (known records) */
} held;

struct bk_sealbuf {
	held *v;
	size_t n, cap;
};

bk_sealbuf *bk_sealbuf_new(void)
{
	return calloc(1, sizeof(bk_sealbuf));
}

void bk_sealbuf_free(bk_sealbuf *b)
{
	if (!b)
		return;
	free(b->v);
	free(b);
}

size_t bk_sealbuf_held(const bk_sealbuf *b)
{
	return b->n;
}

int bk_sealbuf_add(bk_sealbuf *b, int64_t offset, const uint8_t digest[BK_HASH_LEN], void *rec)
{
	if (b->n && b->v[b->n - 1].offset >= offset)
		return -1;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		held *v = realloc(b->v, cap * sizeof(*v));
		if (!v)
			return -1;
		b->v = v;
		b->cap = cap;
	}
	held *h = &b->v[b->n++];
	h->offset = offset;
	h->known = digest != NULL;
	if (digest)
		memcpy(h->digest, digest, BK_HASH_LEN);
	h->rec = rec;
	h->listed = h->sealed = false;
	return 0;
}

static held *find(bk_sealbuf *b, int64_t offset)
{
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (b->v[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < b->n && b->v[lo].offset == offset ? &b->v[lo] : NULL;
}

size_t bk_sealbuf_seal(bk_sealbuf *b, const bk_seal *s, bk_sealbuf_release_fn fn, void *opaque)
{
	size_t sealed = 0, m = 0;
	for (uint32_t i = 0; i < s->n; i++) {
		held *h = find(b, s->recs[i].offset);
		if (!h || h->listed)
			continue;
		h->listed = true;
		if (!h->known) { /* the caller compares when it has the record's digest */
			memcpy(h->digest, s->recs[i].digest, BK_HASH_LEN);
			h->sealed = true;
			sealed++;
		} else if (memcmp(h->digest, s->recs[i].digest, BK_HASH_LEN) == 0) {
			h->sealed = true;
			sealed++;
		}
	}
	for (size_t i = 0; i < b->n; i++) {
		held *h = &b->v[i];
		if (h->listed || h->offset < s->base)
			fn(opaque, h->rec, h->offset, h->sealed,
			   h->sealed && !h->known ? h->digest : NULL);
		else
			b->v[m++] = *h;
	}
	b->n = m;
	return sealed;
}

void bk_sealbuf_flush(bk_sealbuf *b, bk_sealbuf_release_fn fn, void *opaque)
{
	for (size_t i = 0; i < b->n; i++)
		fn(opaque, b->v[i].rec, b->v[i].offset, false, NULL);
	b->n = 0;
}

void bk_sealbuf_trust_all(bk_sealbuf *b, bk_sealbuf_release_fn fn, void *opaque)
{
	for (size_t i = 0; i < b->n; i++)
		fn(opaque, b->v[i].rec, b->v[i].offset, true, NULL);
	b->n = 0;
}

bool bk_seal_digest_is(const bk_record *r, const uint8_t listed[BK_HASH_LEN])
{
	uint8_t d[BK_HASH_LEN];
	bk_seal_digest_record(r, d);
	return memcmp(d, listed, BK_HASH_LEN) == 0;
}
