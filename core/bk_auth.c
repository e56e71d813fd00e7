/*
 * bk_auth.c - the keyring (key id -> Ed25519 public key, roles, system type prefixes)
 * and command signature checks.
 *
 * Pure: the keyring is parsed from text the caller read. The program calls sodium_init()
 * once at start-up (bk_auth_keygen calls it itself, for its random bytes); nothing else
 * here does. A parsed keyring is immutable, so it may be shared between threads.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bk_auth.h"
#include "bk_err.h"
#include "bk_ids.h"

typedef struct bk_key {
	char *id; /* NUL-terminated, owned */
	size_t id_len;
	uint8_t pk[BK_PK_LEN];
	unsigned roles; /* BK_RM() mask */
	char *prefixes; /* owned "p1,p2" restricting role system, or NULL: any type */
} bk_key;

struct bk_keyring {
	bk_key *keys;
	size_t n;
	size_t cap;
};

/* DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), as `openssl pkey -pubout`
 * writes it: 12 bytes, then the 32-byte key. */
static const uint8_t spki_ed25519[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
					 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

static void BK_PRINTF(3, 4) set_err(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

void bk_keyring_free(bk_keyring *kr)
{
	if (kr == NULL)
		return;
	for (size_t i = 0; i < kr->n; i++) {
		free(kr->keys[i].id);
		free(kr->keys[i].prefixes);
	}
	free(kr->keys);
	free(kr);
}

size_t bk_keyring_count(const bk_keyring *kr)
{
	return kr ? kr->n : 0;
}

bool bk_keyring_only_type(const bk_keyring *kr, const char *type)
{
	for (size_t i = 0; kr && i < kr->n; i++)
		if (kr->keys[i].roles != BK_RM(BK_ROLE_SYSTEM) || !kr->keys[i].prefixes ||
		    strcmp(kr->keys[i].prefixes, type) != 0)
			return false;
	return kr != NULL;
}

static const bk_key *keyring_find(const bk_keyring *kr, const char *id, size_t n)
{
	for (size_t i = 0; i < kr->n; i++)
		if (kr->keys[i].id_len == n && memcmp(kr->keys[i].id, id, n) == 0)
			return &kr->keys[i];
	return NULL;
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static bool prefix_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

/* A field of a keyring line: [p, p + n). */
typedef struct field {
	const char *p;
	size_t n;
} field;

/* Parses the roles column into *ret_mask; on error writes the reason into err. */
static int parse_roles(field f, unsigned *ret_mask, char *err, size_t errsz)
{
	unsigned mask = 0;
	size_t i = 0;

	for (;;) {
		size_t j = i;
		while (j < f.n && f.p[j] != ',')
			j++;
		if (j == i) {
			snprintf(err, errsz, "empty role in '%.*s'", (int)f.n, f.p);
			return -1;
		}
		const int r = bk_role_from(f.p + i, j - i);
		if (r < 0 || r >= BK_ROLE__COUNT) {
			snprintf(err, errsz,
				 "unknown role '%.*s' (buyer, provider, support, system)",
				 (int)(j - i), f.p + i);
			return -1;
		}
		mask |= BK_RM(r);
		if (j == f.n)
			break;
		i = j + 1;
	}
	*ret_mask = mask;
	return 0;
}

static int check_prefixes(field f, char *err, size_t errsz)
{
	size_t i = 0;

	for (;;) {
		size_t j = i;
		while (j < f.n && f.p[j] != ',') {
			if (!prefix_char(f.p[j])) {
				snprintf(err, errsz, "bad character in type prefixes '%.*s'",
					 (int)f.n, f.p);
				return -1;
			}
			j++;
		}
		if (j == i) {
			snprintf(err, errsz, "empty type prefix in '%.*s'", (int)f.n, f.p);
			return -1;
		}
		if (j == f.n)
			return 0;
		i = j + 1;
	}
}

/* Parses one line's fields into *ret (owning id and prefixes on success). */
static int parse_key(const bk_keyring *kr, const field *fs, size_t nf, bk_key *ret, char *err,
		     size_t errsz)
{
	bk_key k = {0};
	uint8_t raw[64];
	const int rawn = bk_b64_decode(fs[1].p, fs[1].n, raw, sizeof raw);

	if (!bk_id_valid(fs[0].p, fs[0].n, NULL)) {
		snprintf(err, errsz, "bad key id '%.*s' (1..%d of [A-Za-z0-9_.:-])", (int)fs[0].n,
			 fs[0].p, BK_ID_MAX - 1);
		return -1;
	}
	if (keyring_find(kr, fs[0].p, fs[0].n)) {
		snprintf(err, errsz, "duplicate key id '%.*s'", (int)fs[0].n, fs[0].p);
		return -1;
	}
	if (rawn == BK_PK_LEN) {
		memcpy(k.pk, raw, BK_PK_LEN);
	} else if (rawn == (int)(sizeof spki_ed25519 + BK_PK_LEN) &&
		   memcmp(raw, spki_ed25519, sizeof spki_ed25519) == 0) {
		memcpy(k.pk, raw + sizeof spki_ed25519, BK_PK_LEN);
	} else if (rawn < 0) {
		snprintf(err, errsz, "public key is not standard padded base64");
		return -1;
	} else {
		snprintf(err, errsz,
			 "public key is %d bytes; want 32 (raw Ed25519) or 44 (Ed25519 SPKI DER)",
			 rawn);
		return -1;
	}
	if (!crypto_core_ed25519_is_valid_point(k.pk)) {
		snprintf(err, errsz, "public key is not a valid Ed25519 key");
		return -1;
	}
	if (parse_roles(fs[2], &k.roles, err, errsz) < 0)
		return -1;
	if (nf == 4) {
		if (!(k.roles & BK_RM(BK_ROLE_SYSTEM))) {
			snprintf(err, errsz,
				 "type prefixes apply to role system, which the key lacks");
			return -1;
		}
		if (check_prefixes(fs[3], err, errsz) < 0)
			return -1;
	}
	k.id_len = fs[0].n;
	k.id = dup_n(fs[0].p, fs[0].n);
	k.prefixes = nf == 4 ? dup_n(fs[3].p, fs[3].n) : NULL;
	if (k.id == NULL || (nf == 4 && k.prefixes == NULL)) {
		free(k.id);
		free(k.prefixes);
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	*ret = k;
	return 0;
}

static int keyring_add(bk_keyring *kr, const bk_key *k)
{
	if (kr->n == kr->cap) {
		const size_t cap = kr->cap ? kr->cap * 2 : 8;
		bk_key *keys = realloc(kr->keys, cap * sizeof *keys);
		if (keys == NULL)
			return -1;
		kr->keys = keys;
		kr->cap = cap;
	}
	kr->keys[kr->n++] = *k;
	return 0;
}

/*
 * Lines end with '\n' (a '\r' before it is ignored); '#' starts a comment anywhere (no
 * field may contain it); fields are separated by spaces or tabs. Blank lines are fine;
 * an empty keyring is valid (count 0). Key ids must be unique.
 */
int bk_keyring_parse(const char *text, size_t n, bk_keyring **ret, char *err, size_t errsz)
{
	bk_keyring *kr = calloc(1, sizeof *kr);
	size_t pos = 0, lineno = 0;
	char why[160];

	if (kr == NULL) {
		set_err(err, errsz, "out of memory");
		return -1;
	}
	while (pos < n) {
		size_t end = pos, stop;
		field fs[5];
		size_t nf = 0;
		bk_key k;

		lineno++;
		while (end < n && text[end] != '\n')
			end++;
		stop = pos;
		while (stop < end && text[stop] != '#')
			stop++;
		for (size_t i = pos; i < stop;) {
			if (text[i] == ' ' || text[i] == '\t' || text[i] == '\r') {
				i++;
				continue;
			}
			if (text[i] == '\0') {
				snprintf(why, sizeof why, "NUL byte");
				goto fail;
			}
			size_t j = i;
			while (j < stop && text[j] != ' ' && text[j] != '\t' && text[j] != '\r' &&
			       text[j] != '\0')
				j++;
			if (nf < 5)
				fs[nf] = (field){text + i, j - i};
			nf++;
			i = j;
		}
		pos = end < n ? end + 1 : end;
		if (nf == 0)
			continue;
		if (nf < 3 || nf > 4) {
			snprintf(why, sizeof why,
				 "%zu fields; want <key_id> <base64 public key> <role>[,<role>...] "
				 "[<type-prefix>,...]",
				 nf);
			goto fail;
		}
		if (parse_key(kr, fs, nf, &k, why, sizeof why) < 0)
			goto fail;
		if (keyring_add(kr, &k) < 0) {
			free(k.id);
			free(k.prefixes);
			snprintf(why, sizeof why, "out of memory");
			goto fail;
		}
	}
	*ret = kr;
	return 0;
fail:
	set_err(err, errsz, "line %zu: %s", lineno, why);
	bk_keyring_free(kr);
	return -1;
}

int bk_auth_keygen(uint8_t ret_pk[BK_PK_LEN], uint8_t ret_sk[BK_SK_LEN])
{
	uint8_t pk[BK_PK_LEN], sk[BK_SK_LEN];

	if (sodium_init() < 0 || crypto_sign_keypair(pk, sk) != 0)
		return -1;
	memcpy(ret_pk, pk, sizeof pk);
	memcpy(ret_sk, sk, sizeof sk);
	sodium_memzero(sk, sizeof sk);
	return 0;
}

void bk_auth_sign(const uint8_t sk[BK_SK_LEN], const void *msg, size_t n,
		  uint8_t ret_sig[BK_SIG_LEN])
{
	crypto_sign_detached(ret_sig, NULL, msg, n, sk);
}

/* True when type_name starts with one of the comma-separated prefixes. */
static bool type_allowed(const char *prefixes, const char *type_name)
{
	const char *p = prefixes;

	if (type_name == NULL)
		return false;
	for (;;) {
		const char *c = strchr(p, ',');
		const size_t len = c ? (size_t)(c - p) : strlen(p);
		if (strncmp(type_name, p, len) == 0)
			return true;
		if (c == NULL)
			return false;
		p = c + 1;
	}
}

/* Order of checks: key, signature, role, type. The key id is not echoed in messages
 * (it is untrusted input); callers log it with their own context. */
int bk_auth_verify(const bk_keyring *kr, const char *key_id, size_t key_id_len, const uint8_t *sig,
		   size_t sig_len, const void *msg, size_t n, bk_role role, const char *type_name,
		   char *err, size_t errsz)
{
	const bk_key *k = kr && key_id ? keyring_find(kr, key_id, key_id_len) : NULL;

	if (k == NULL) {
		set_err(err, errsz, "unknown key id");
		return -1;
	}
	if (sig == NULL || sig_len != BK_SIG_LEN) {
		set_err(err, errsz, "bad signature length %zu (want %d)", sig_len, BK_SIG_LEN);
		return -1;
	}
	if (crypto_sign_verify_detached(sig, msg, n, k->pk) != 0) {
		set_err(err, errsz, "bad signature");
		return -1;
	}
	if ((unsigned)role >= BK_ROLE__COUNT || !(k->roles & BK_RM(role))) {
		set_err(err, errsz, "key may not assert role %s", bk_role_name(role));
		return -1;
	}
	if (role == BK_ROLE_SYSTEM && k->prefixes && !type_allowed(k->prefixes, type_name)) {
		set_err(err, errsz, "key may not assert role system for %s",
			type_name ? type_name : "(no type)");
		return -1;
	}
	return 0;
}

/* out needs 4 * ceil(n / 3) + 1 bytes; it is NUL-terminated. */
int bk_b64_encode(const uint8_t *in, size_t n, char *out, size_t outsz)
{
	const size_t need = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);

	if (n > (size_t)INT32_MAX / 2 || outsz < need)
		return -1;
	sodium_bin2base64(out, outsz, in, n, sodium_base64_VARIANT_ORIGINAL);
	return (int)strlen(out);
}

/* Spaces, tabs and line breaks are skipped (key files end with a newline); anything else
 * that is not padded standard base64 is an error. */
int bk_b64_decode(const char *in, size_t n, uint8_t *out, size_t outsz)
{
	size_t len = 0;

	if (in == NULL || n > (size_t)INT32_MAX)
		return -1;
	if (sodium_base642bin(out, outsz, in, n, " \t\r\n", &len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		return -1;
	return (int)len;
}
