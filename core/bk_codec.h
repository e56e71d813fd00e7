/*
 * bk_codec.h - wire formats: commands, events records, results and rules records as
 * msgpack, with a JSON bridge (jansson) for people and for jsonb columns.
 *
 * Decoders take hostile bytes: the unpacker checks each object before it builds it
 * (lengths against the bytes left, nesting depth, UTF-8 strings, size limit; the checks
 * bk_codec_prescan runs alone), so truncated data, huge declared lengths, deep nesting or
 * invalid UTF-8 yield an error and never a crash, an over-read or a huge allocation. It
 * builds what msgpack_unpack would.
 * Decoded strings and values live in the msgpack_zone the caller passes; the zone owns them.
 *
 * Wire shapes (maps; keys in this order when encoding):
 *  command: {id, type, order_id, actor:{user_id, role}, expected_version?, at (RFC 3339 text),
 * payload} event:   {event_id, order_id, seq, kind, subtype, actor_user_id, command_id, created_at
 * (int us), schema, payload, prev_hash (bin 32), hash (bin 32)} canonical bytes (hashed) = the same
 * map without `hash` (11 keys). record:  {v: 1, order_id, command_id, events: [event...]} result:
 * {command_id, order_id, status, code, message, version, event_ids: [...]} rules:
 * {service_profile_id, owner_user_id, owner?, rules: [{rule_id, min_price_cents?,
 * weekday_mask?, max_distance_mi?, allow_ib}], recent: [uint64...]}; `owner` (= owner_user_id)
 * when profile.bind bound the profile; without it owner_user_id is a legacy first-rule owner.
 */
#ifndef BK_CODEC_H
#define BK_CODEC_H

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_command.h"
#include "bk_decide.h"
#include "bk_err.h"
#include "bk_event.h"
#include "bk_rules.h"

/* Structural check of untrusted msgpack bytes: exactly one object filling buf.
 * Returns 0, or -1 with the reason in err (err may be NULL). */
int bk_codec_prescan(const void *buf, size_t n, char *err, size_t errsz) BK_MUSTCHECK;

/* Decode a whole buffer into a value in zone z: bk_codec_prescan's checks, then no
 * repeated key in any map. 0 or -1 (reason in err). */
int bk_codec_unpack(const void *buf, size_t n, msgpack_zone *z, bk_val *ret, char *err,
		    size_t errsz) BK_MUSTCHECK;

/* --- commands --- */
/* Decode a command from msgpack (json=false) or JSON text (json=true).
 * allow_internal: accept internal command types (processor-issued). */
int bk_codec_command_decode(const void *buf, size_t n, bool json, bool allow_internal,
			    msgpack_zone *z, bk_command *ret, char *err, size_t errsz) BK_MUSTCHECK;
/* Envelope checks on an already unpacked map (used by both decode paths). */
int bk_codec_command_from_val(const bk_val *v, bool allow_internal, bk_command *ret, char *err,
			      size_t errsz) BK_MUSTCHECK;
int bk_codec_command_encode(const bk_command *c, msgpack_sbuffer *sb) BK_MUSTCHECK;

/* --- events --- */
/* Canonical bytes of an event (without hash), appended to sb. */
int bk_codec_event_canon(const bk_event *e, msgpack_sbuffer *sb) BK_MUSTCHECK;
/* Compute e->hash from e->prev_hash and the canonical bytes. scratch is reused. */
int bk_codec_event_seal(bk_event *e, msgpack_sbuffer *scratch) BK_MUSTCHECK;
/* Whole record, appended to sb. */
int bk_codec_record_encode(const bk_record *r, msgpack_sbuffer *sb) BK_MUSTCHECK;
/* The highest seq a record may carry (an order's events number at most this many). */
#define BK_RECORD_SEQ_MAX INT64_C(2147483647)

/*
 * Decode a record; events and strings in z. Checks types, ranges and field presence,
 * not hashes, seals or links (the reader rule's job).
 *
 * A decoded record guarantees, so that evolve, the engine (bk_engine_read), the
 * projector, verify and replay may rely on it without checking again:
 *  - order_id and command_id are ids (bk_id_valid: non-NULL, NUL-terminated, shorter
 *    than BK_ID_MAX); events is an array of n events, 1 <= n <= BK_MAX_EVENTS;
 *  - every event has: event_id, order_id (equal to the record's) and command_id as ids
 *    (never NULL; command_id may differ from the record's for lazy-expiry events);
 *    actor_user_id NULL or an id; 1 <= seq <= BK_RECORD_SEQ_MAX; a known subtype
 *    (type < BK_EV__COUNT; sub < BK_ST__COUNT, BK_MS__COUNT or BK_CV__COUNT and
 *    card_type < BK_CT__COUNT as the type requires) whose kind is the `kind` written;
 *    created_at within years 0000-9999 (as a command's `at`); schema >= 1; payload a
 *    map (absent/nil: the empty map); prev_hash and hash of exactly BK_HASH_LEN bytes;
 *  - for schema <= BK_EVENT_SCHEMA, the payload holds every field its subtype's readers
 *    require, with its type: ids where evolve copies into id buffers, cents integers
 *    within BK_CENTS_MIN..BK_CENTS_MAX, RFC 3339 text for times, line items as
 *    {id, kind, title, qty, unit_cents, total_cents}, totals with their five cents,
 *    card terms by card type (the table pf_of_type in bk_codec.c lists them); a later
 *    schema's payload is only known to be a map;
 *  - every string is valid UTF-8 without NUL bytes, NUL-terminated in z.
 * Evolve still checks what depends on the state (seq and link, known ids, from-status,
 * money overflow) and returns an error for it; it never crashes on a decoded event.
 */
int bk_codec_record_decode(const void *buf, size_t n, msgpack_zone *z, bk_record *ret, char *err,
			   size_t errsz) BK_MUSTCHECK;

/* --- results --- */
typedef struct bk_result {
	const char *command_id;
	const char *order_id;
	bk_outcome status;
	bk_err code;
	const char *message;
	int64_t version;
	const char **event_ids;
	uint32_t n_event_ids;
} bk_result;
int bk_codec_result_encode(const bk_result *r, msgpack_sbuffer *sb) BK_MUSTCHECK;
int bk_codec_result_decode(const void *buf, size_t n, msgpack_zone *z, bk_result *ret, char *err,
			   size_t errsz) BK_MUSTCHECK;

/* --- rules records --- */
int bk_codec_rules_encode(const bk_profile_rules *p, msgpack_sbuffer *sb) BK_MUSTCHECK;
/* ret is filled with owned memory (bk_profile_rules_clear). */
int bk_codec_rules_decode(const void *buf, size_t n, bk_profile_rules *ret, char *err,
			  size_t errsz) BK_MUSTCHECK;

/* --- JSON bridge --- */
/* JSON value -> msgpack value in z (integers stay integers; reals become float64).
 * Depth-limited. Returns 0 or -1 (err). */
int bk_json_to_val(const json_t *j, msgpack_zone *z, bk_val *ret, char *err,
		   size_t errsz) BK_MUSTCHECK;
/* msgpack value -> new JSON reference (caller json_decref); bin becomes lower-case hex,
 * non-string map keys are rejected. NULL on error. */
json_t *bk_val_to_json(const bk_val *v) BK_MUSTCHECK;
/* An event as a JSON object for people (replay): subtype text, created_at and the
 * payload's times by the schema table (BK_F_TS rows) in RFC 3339 UTC with six fractional
 * digits, the rest of the payload as stored, hashes in hex. partition/offset are added
 * when partition >= 0. New reference. */
json_t *bk_event_to_json(const bk_event *e, int32_t partition, int64_t offset) BK_MUSTCHECK;
/* The same text as json_dumps(bk_event_to_json(e, ...), JSON_COMPACT), appended to out
 * without building a JSON tree (the fast path of `bookingctl replay`). 0 or -1 (out
 * unchanged). */
int bk_event_write_json(const bk_event *e, int32_t partition, int64_t offset,
			msgpack_sbuffer *out) BK_MUSTCHECK;
json_t *bk_result_to_json(const bk_result *r) BK_MUSTCHECK;
json_t *bk_command_to_json(const bk_command *c) BK_MUSTCHECK;

#endif
