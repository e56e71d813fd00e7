/*
 * bk_auth.h - Ed25519 command signatures and the keyring.
 *
 * A command record carries, in Kafka headers, `key-id` and `signature` (64 raw bytes,
 * Ed25519 over the record value). The keyring maps key ids to public keys and to the
 * roles (and, for `system`, the command-type prefixes) each key may assert.
 *
 * Keyring text format, one key a line ('#' starts a comment):
 *     <key_id> <base64 public key> <role>[,<role>...] [<cmd-prefix>,...]
 * e.g. "payments-1 MCowBQ...= system payment." lets key payments-1 assert role system
 * for commands whose type starts with "payment.".
 */
#ifndef BK_AUTH_H
#define BK_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_err.h"
#include "bk_fsm.h"

#define BK_SIG_LEN 64
#define BK_PK_LEN  32
#define BK_SK_LEN  64

typedef struct bk_keyring bk_keyring; /* opaque */

/* Parse keyring text. On success *ret is owned by the caller (bk_keyring_free).
 * On failure returns -1 with "line N: reason" in err and writes nothing. */
int bk_keyring_parse(const char *text, size_t n, bk_keyring **ret, char *err,
		     size_t errsz) BK_MUSTCHECK;
void bk_keyring_free(bk_keyring *kr); /* NULL ok */
size_t bk_keyring_count(const bk_keyring *kr);
/* Is every key limited to role system and exactly the type prefix `type` (a writer
 * keyring: its keys sign seals and nothing else)? */
bool bk_keyring_only_type(const bk_keyring *kr, const char *type);

/* Generate a key pair (libsodium must be initialised: sodium_init()). */
int bk_auth_keygen(uint8_t ret_pk[BK_PK_LEN], uint8_t ret_sk[BK_SK_LEN]) BK_MUSTCHECK;
void bk_auth_sign(const uint8_t sk[BK_SK_LEN], const void *msg, size_t n,
		  uint8_t ret_sig[BK_SIG_LEN]);

/*
 * Verify a signed command: the key exists, the signature verifies over msg, and the key
 * may assert `role` for command `type_name`. Returns 0, or -1 with the reason in err
 * ("unknown key id", "bad signature", "key may not assert role system for order.cancel").
 */
int bk_auth_verify(const bk_keyring *kr, const char *key_id, size_t key_id_len, const uint8_t *sig,
		   size_t sig_len, const void *msg, size_t n, bk_role role, const char *type_name,
		   char *err, size_t errsz) BK_MUSTCHECK;

/* Base64 (standard, padded) helpers for key files. Return length, or -1 on error. */
int bk_b64_encode(const uint8_t *in, size_t n, char *out, size_t outsz) BK_MUSTCHECK;
int bk_b64_decode(const char *in, size_t n, uint8_t *out, size_t outsz) BK_MUSTCHECK;

#endif
