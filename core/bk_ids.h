/*
 * bk_ids.h - prefixed ids ("ord_", "tev_", "acd_", "acr_", "req_", "dsp_", "mst_", "li_",
 * "cht_", "cmd_") and ids derived from a command id.
 *
 * A derived id is prefix + 26 Crockford base32 characters of BLAKE2b-128 over
 * (command id, label, index), so a replayed command mints the same ids.
 */
#ifndef BK_IDS_H
#define BK_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BK_ID_MAX 80 /* longest accepted id, including the NUL */

/* Writes prefix + derived suffix into out (>= BK_ID_MAX). Returns the length. */
size_t bk_id_derive(char *out, const char *prefix, const char *cmd_id, const char *label,
		    uint32_t index);

/* True when s[0..n) is a valid id: 1..BK_ID_MAX-1 bytes of [A-Za-z0-9_.:-], starting
 * with `prefix` when prefix is not NULL. */
bool bk_id_valid(const char *s, size_t n, const char *prefix);

/* 64-bit fingerprint of a string (BLAKE2b-64), used for the seen-command set. */
uint64_t bk_id_fingerprint(const char *s, size_t n);

#endif
