/*
 * trust.c - wiring Kafka messages to core's seal rule for every reader (trust.h).
 * Invariant: one core seal buffer per partition; every handle added is released once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kconf.h"
#include "log.h"
#include "trust.h"

static char *read_file(const char *path, size_t *ret_n, char *errstr, size_t errstr_size)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
		return NULL;
	}
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	while (b) {
		size_t r = fread(b + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
		if (cap - n - 1 == 0) {
			char *nb = cap < (1u << 24) ? realloc(b, cap * 2) : NULL;
			if (!nb) {
				free(b);
				b = NULL;
				break;
			}
			b = nb;
			cap *= 2;
		}
	}
	bool bad = ferror(f);
	fclose(f);
	if (!b || bad) {
		free(b);
		snprintf(errstr, errstr_size, "%s: %s", path, b ? "read error" : "too large");
		return NULL;
	}
	b[n] = '\0';
	*ret_n = n;
	return b;
}

int bk_trust_load_keyring(const char *path, bk_keyring **ret, char *errstr, size_t errstr_size)
{
	if (!path || !*path)
		path = getenv(BK_ENV_WRITER_KEYRING);
	if (!path || !*path) {
		snprintf(errstr, errstr_size,
			 "no writer keyring (--writer-keyring or $" BK_ENV_WRITER_KEYRING ")");
		return -1;
	}
	size_t n;
	char *text = read_file(path, &n, errstr, errstr_size);
	if (!text)
		return -1;
	bk_keyring *kr;
	char why[256];
	int rc = bk_keyring_parse(text, n, &kr, why, sizeof(why));
	free(text);
	if (rc < 0) {
		snprintf(errstr, errstr_size, "%s: %s", path, why);
		return -1;
	}
	if (bk_keyring_count(kr) == 0) {
		bk_keyring_free(kr);
		snprintf(errstr, errstr_size, "%s: no key", path);
		return -1;
	}
	if (!bk_keyring_only_type(kr, BK_SEAL_TYPE)) {
		bk_keyring_free(kr);
		snprintf(errstr, errstr_size,
			 "%s: not a writer keyring: every key must be limited to role system, "
			 "type %s (bookingctl keygen --roles system --types %s)",
			 path, BK_SEAL_TYPE, BK_SEAL_TYPE);
		return -1;
	}
	*ret = kr;
	return 0;
}

int bk_trust_load_key(const char *path, const char *key_id, uint8_t ret_sk[BK_SK_LEN],
		      char ret_key_id[64], char *errstr, size_t errstr_size)
{
	if (!path || !*path)
		path = getenv(BK_ENV_WRITER_KEY);
	if (!key_id || !*key_id)
		key_id = getenv(BK_ENV_WRITER_KEY_ID);
	if (!path || !*path || !key_id || !*key_id) {
		snprintf(
		    errstr, errstr_size,
		    "no writer key (--writer-key FILE --writer-key-id ID, or $" BK_ENV_WRITER_KEY
		    " and $" BK_ENV_WRITER_KEY_ID ")");
		return -1;
	}
	if (strlen(key_id) >= 64) {
		snprintf(errstr, errstr_size, "writer key id too long");
		return -1;
	}
	size_t n;
	char *text = read_file(path, &n, errstr, errstr_size);
	if (!text)
		return -1;
	while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		n--;
	uint8_t sk[BK_SK_LEN];
	int got = bk_b64_decode(text, n, sk, sizeof(sk));
	free(text);
	if (got != BK_SK_LEN) {
		snprintf(errstr, errstr_size, "%s: not a base64 Ed25519 secret key (64 bytes)",
			 path);
		return -1;
	}
	memcpy(ret_sk, sk, BK_SK_LEN);
	snprintf(ret_key_id, 64, "%s", key_id);
	return 0;
}

int bk_trust_check_writer(const bk_keyring *writers, const uint8_t sk[BK_SK_LEN],
			  const char *key_id, char *errstr, size_t errstr_size)
{
	static const char probe[] = "seal probe";
	uint8_t sig[BK_SIG_LEN];
	char why[256];
	bk_auth_sign(sk, probe, sizeof(probe), sig);
	if (bk_auth_verify(writers, key_id, strlen(key_id), sig, sizeof(sig), probe, sizeof(probe),
			   BK_ROLE_SYSTEM, BK_SEAL_TYPE, why, sizeof(why)) < 0) {
		snprintf(errstr, errstr_size,
			 "the writer key %s does not verify against the writer keyring: %s", key_id,
			 why);
		return -1;
	}
	return 0;
}

bool bk_trust_is_seal(const rd_kafka_message_t *m)
{
	const void *v;
	size_t n;
	return bk_kconf_header(m, BK_SEAL_KEY, &v, &n) == 0;
}

static void rules_msg(const void *key, size_t klen, const void *val, size_t vlen, uint8_t **ret,
		      size_t *ret_n)
{
	uint8_t *b = malloc(klen + 1 + vlen + 1);
	if (!b) {
		*ret = NULL;
		return;
	}
	if (klen)
		memcpy(b, key, klen);
	b[klen] = 0;
	if (vlen)
		memcpy(b + klen + 1, val, vlen);
	*ret = b;
	*ret_n = klen + 1 + vlen;
}

void bk_trust_sign_rules(const uint8_t sk[BK_SK_LEN], const void *key, size_t klen, const void *val,
			 size_t vlen, uint8_t ret_sig[BK_SIG_LEN])
{
	uint8_t *b;
	size_t n;
	rules_msg(key, klen, val, vlen, &b, &n);
	if (!b) {
		memset(ret_sig, 0, BK_SIG_LEN); /* verifies nowhere: the record is not trusted */
		return;
	}
	bk_auth_sign(sk, b, n, ret_sig);
	free(b);
}

int bk_trust_check_rules(const bk_keyring *writers, const rd_kafka_message_t *m, char *errstr,
			 size_t errstr_size)
{
	const void *kid, *sig;
	size_t kn, sn;
	if (!writers) {
		snprintf(errstr, errstr_size, "no writer keyring");
		return -1;
	}
	if (bk_kconf_header(m, "key-id", &kid, &kn) < 0 ||
	    bk_kconf_header(m, "signature", &sig, &sn) < 0) {
		snprintf(errstr, errstr_size, "unsigned rules record");
		return -1;
	}
	uint8_t *b;
	size_t n;
	rules_msg(m->key, m->key_len, m->payload, m->payload ? m->len : 0, &b, &n);
	if (!b) {
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	int rc = bk_auth_verify(writers, kid, kn, sig, sn, b, n, BK_ROLE_SYSTEM, BK_SEAL_TYPE,
				errstr, errstr_size);
	free(b);
	return rc;
}

struct bk_trust {
	const bk_keyring *writers;
	bool trust_unsealed;
	int nparts;
	bk_sealbuf **bufs; /* [nparts], created on first use */
	bk_trust_release_fn release;
	bk_trust_seal_fn on_seal;
	bk_trust_bad_fn on_bad;
	void *opaque;
	int32_t cur_part; /* the partition being released (for the core callback) */
	msgpack_zone z;
};

bk_trust *bk_trust_new(const bk_keyring *writers, bool trust_unsealed, int nparts,
		       bk_trust_release_fn release, bk_trust_seal_fn on_seal,
		       bk_trust_bad_fn on_bad_seal, void *opaque)
{
	if (nparts < 1)
		nparts = 1;
	bk_trust *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->bufs = calloc((size_t)nparts, sizeof(*t->bufs));
	if (!t->bufs) {
		free(t);
		return NULL;
	}
	t->writers = writers;
	t->trust_unsealed = trust_unsealed;
	t->nparts = nparts;
	t->release = release;
	t->on_seal = on_seal;
	t->on_bad = on_bad_seal;
	t->opaque = opaque;
	msgpack_zone_init(&t->z, 1 << 14);
	return t;
}

void bk_trust_free(bk_trust *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->nparts; i++)
		bk_sealbuf_free(t->bufs[i]);
	free(t->bufs);
	msgpack_zone_destroy(&t->z);
	free(t);
}

bool bk_trust_unsealed_ok(const bk_trust *t)
{
	return t->trust_unsealed;
}

static void on_release(void *opaque, void *rec, int64_t offset, bool sealed, const uint8_t *digest)
{
	bk_trust *t = opaque;
	t->release(t->opaque, rec, t->cur_part, offset, sealed, digest);
}

static bk_sealbuf *buf_of(bk_trust *t, int32_t p)
{
	if (p < 0 || p >= t->nparts)
		return NULL;
	if (!t->bufs[p])
		t->bufs[p] = bk_sealbuf_new();
	return t->bufs[p];
}

int bk_trust_seal(bk_trust *t, const rd_kafka_message_t *m)
{
	const void *kid = NULL, *sig = NULL;
	size_t kn = 0, sn = 0;
	(void)bk_kconf_header(m, "key-id", &kid, &kn);
	(void)bk_kconf_header(m, "signature", &sig, &sn);
	return bk_trust_seal_from(t, m, rd_kafka_topic_name(m->rkt), kid, kn, sig, sn);
}

int bk_trust_seal_from(bk_trust *t, const rd_kafka_message_t *m, const char *topic, const void *kid,
		       size_t kn, const void *sig, size_t sn)
{
	char why[256];
	bk_seal s;
	if (t->trust_unsealed && !t->writers)
		return 1; /* nothing to check it with, nothing waits for it */
	msgpack_zone_clear(&t->z);
	bk_sealbuf *b = buf_of(t, m->partition);
	if (!m->payload) {
		snprintf(why, sizeof(why), "seal without a value");
		goto bad;
	}
	if (bk_seal_check(t->writers, kid, kn, sig, sn, m->payload, m->len, topic, m->partition,
			  &t->z, &s, why, sizeof(why)) < 0)
		goto bad;
	if (!b) {
		snprintf(why, sizeof(why), "partition out of range");
		goto bad;
	}
	if (t->on_seal)
		t->on_seal(t->opaque, m, &s);
	if (!t->trust_unsealed) {
		t->cur_part = m->partition;
		bk_sealbuf_seal(b, &s, on_release, t);
	}
	return 0;
bad:
	if (t->on_bad)
		t->on_bad(t->opaque, m, why);
	return -1;
}

int bk_trust_add(bk_trust *t, int32_t partition, int64_t offset, const uint8_t digest[BK_HASH_LEN],
		 void *rec)
{
	if (t->trust_unsealed) {
		t->release(t->opaque, rec, partition, offset, true, NULL);
		return 0;
	}
	bk_sealbuf *b = buf_of(t, partition);
	if (!b)
		return -1;
	return bk_sealbuf_add(b, offset, digest, rec);
}

void bk_trust_flush(bk_trust *t, int32_t partition)
{
	for (int32_t p = 0; p < t->nparts; p++) {
		if ((partition >= 0 && p != partition) || !t->bufs[p])
			continue;
		t->cur_part = p;
		bk_sealbuf_flush(t->bufs[p], on_release, t);
	}
}

size_t bk_trust_held(const bk_trust *t, int32_t partition)
{
	size_t n = 0;
	for (int32_t p = 0; p < t->nparts; p++)
		if ((partition < 0 || p == partition) && t->bufs[p])
			n += bk_sealbuf_held(t->bufs[p]);
	return n;
}

int bk_trust_seal_record(const bk_seal *s, const uint8_t sk[BK_SK_LEN], const char *key_id,
			 msgpack_sbuffer *sb, rd_kafka_headers_t **ret_h)
{
	*ret_h = NULL;
	msgpack_sbuffer_clear(sb);
	if (bk_seal_encode(s, sb) < 0)
		return -1;
	uint8_t sig[BK_SIG_LEN];
	bk_auth_sign(sk, sb->data, sb->size, sig);
	rd_kafka_headers_t *h = rd_kafka_headers_new(3);
	if (!h)
		return -1;
	rd_kafka_header_add(h, BK_SEAL_KEY, -1, "1", 1);
	rd_kafka_header_add(h, "key-id", -1, key_id, -1);
	rd_kafka_header_add(h, "signature", -1, sig, BK_SIG_LEN);
	*ret_h = h;
	return 0;
}
