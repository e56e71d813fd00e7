/*
 * test_codec.c - Check suite of the wire formats (core/bk_codec.c, bk_json.c, bk_val.c).
 *
 * Round trips (command via msgpack and JSON, events record, result, rules), canonical
 * bytes that survive decode/re-encode, and a hostile corpus (truncations, wrong types,
 * huge declared lengths, deep nesting, bad UTF-8, NUL bytes, fuzz) that must fail cleanly.
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_codec.h"
#include "bk_engine.h"
#include "bk_ids.h"
#include "bk_internal.h"
#include "bk_money.h"
#include "bk_schema.h"
#include "bk_time.h"
#include "bk_upcast.h"
#include "fixture_run.h"

#define ERRSZ 256

static msgpack_zone *zone;

static void setup(void)
{
	zone = msgpack_zone_new(8192);
	ck_assert_ptr_nonnull(zone);
}

static void teardown(void)
{
	msgpack_zone_free(zone);
	zone = NULL;
}

/* --- helpers --- */

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static int64_t ts(const char *s)
{
	int64_t us;
	ck_assert_int_eq(bk_ts_parse(s, strlen(s), &us), 0);
	return us;
}

/* Bytes of a value packed with msgpack-c; caller frees. */
static char *pack_val(const bk_val *v, size_t *ret_n)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	ck_assert_int_eq(msgpack_pack_object(&pk, *v), 0);
	*ret_n = sb.size;
	return msgpack_sbuffer_release(&sb);
}

static bool val_eq(const bk_val *a, const bk_val *b)
{
	size_t na, nb;
	char *pa = pack_val(a, &na), *pb = pack_val(b, &nb);
	bool eq = na == nb && memcmp(pa, pb, na) == 0;
	free(pa);
	free(pb);
	return eq;
}

/* A payload with every kind of value: strings, ints, floats, bools, nil, nesting. */
static bk_val sample_payload(msgpack_zone *z)
{
	bk_mapb li, loc, pay, pol;
	bk_val items;
	ck_assert(bk_mapb_init(&li, z, 4));
	ck_assert(bk_mapb_str(&li, "kind", "package"));
	ck_assert(bk_mapb_str(&li, "title", "Half day \xe2\x80\x94 studio \xf0\x9f\x93\xb7"));
	ck_assert(bk_mapb_int(&li, "qty", 2));
	ck_assert(bk_mapb_int(&li, "unit_cents", 15000));
	ck_assert(bk_val_arr(z, 1, &items));
	items.via.array.ptr[0] = bk_mapb_done(&li);
	ck_assert(bk_mapb_init(&loc, z, 4));
	ck_assert(bk_mapb_str(&loc, "kind", "buyer"));
	ck_assert(bk_mapb_f64(&loc, "lat", 40.7128));
	ck_assert(bk_mapb_f64(&loc, "lng", -74.006));
	ck_assert(bk_mapb_nil(&loc, "address"));
	ck_assert(bk_mapb_init(&pol, z, 2));
	ck_assert(bk_mapb_str(&pol, "name", "flexible"));
	ck_assert(bk_mapb_bool(&pol, "refundable", true));
	ck_assert(bk_mapb_init(&pay, z, 10));
	ck_assert(bk_mapb_str(&pay, "mode", "RTB"));
	ck_assert(bk_mapb_str(&pay, "provider_user_id", "usr_provider1"));
	ck_assert(bk_mapb_ts(&pay, "start_ts", ts("2026-12-01T15:00:00Z")));
	ck_assert(bk_mapb_ts(&pay, "end_ts", ts("2026-12-01T19:30:00.250Z")));
	ck_assert(bk_mapb_val(&pay, "location", bk_mapb_done(&loc)));
	ck_assert(bk_mapb_val(&pay, "line_items", items));
	ck_assert(bk_mapb_int(&pay, "platform_fee_cents", 3000));
	ck_assert(bk_mapb_int(&pay, "delta", -42));
	ck_assert(bk_mapb_val(&pay, "policy", bk_mapb_done(&pol)));
	ck_assert(bk_mapb_str(&pay, "empty", ""));
	return bk_mapb_done(&pay);
}

static bk_command sample_command(msgpack_zone *z)
{
	bk_command c;
	memset(&c, 0, sizeof(c));
	c.id = "cmd_01JABCDEF";
	c.type = BK_CMD_ORDER_CREATE;
	c.order_id = "ord_01JXYZ";
	c.actor_user_id = "usr_buyer1";
	c.actor_role = BK_ROLE_BUYER;
	c.has_expected_version = true;
	c.expected_version = 0;
	c.at = ts("2026-11-20T10:00:00.123456Z");
	c.payload = sample_payload(z);
	return c;
}

static void assert_cmd_eq(const bk_command *a, const bk_command *b)
{
	ck_assert_str_eq(a->id, b->id);
	ck_assert_int_eq(a->type, b->type);
	ck_assert_str_eq(a->order_id, b->order_id);
	if (a->actor_user_id == NULL)
		ck_assert_ptr_null(b->actor_user_id);
	else
		ck_assert_str_eq(a->actor_user_id, b->actor_user_id);
	ck_assert_int_eq(a->actor_role, b->actor_role);
	ck_assert_int_eq(a->has_expected_version, b->has_expected_version);
	if (a->has_expected_version)
		ck_assert_int_eq(a->expected_version, b->expected_version);
	ck_assert_int_eq(a->at, b->at);
	ck_assert(val_eq(&a->payload, &b->payload));
}

/* Encoded bytes of a command; caller frees. */
static char *enc_cmd(const bk_command *c, size_t *ret_n)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(bk_codec_command_encode(c, &sb), 0);
	*ret_n = sb.size;
	return msgpack_sbuffer_release(&sb);
}

/* A payload the record decoder accepts for the sample record's event seq: the sample
 * payload (fields no reader needs are free) with what its subtype requires (SPEC §4;
 * bk_codec.h): seq 1 order.created, seq 2 card.reschedule.proposed, seq 3 note.added
 * without a payload (nil: the empty map). */
static bk_val sample_event_payload(msgpack_zone *z, int64_t seq)
{
	if (seq == 3)
		return bk_val_nil();
	bk_val base = sample_payload(z);
	bk_mapb b, li, tot, terms;
	ck_assert(bk_mapb_init(&b, z, base.via.map.size + 8));
	for (uint32_t i = 0; i < base.via.map.size; i++) {
		const msgpack_object_kv *kv = &base.via.map.ptr[i];
		if (seq == 1 && bk_val_streq(&kv->key, "line_items"))
			continue; /* replaced by items with ids and totals */
		ck_assert(bk_mapb_val(&b, kv->key.via.str.ptr, kv->val));
	}
	if (seq == 1) {
		bk_val items;
		ck_assert(bk_mapb_init(&li, z, 6));
		ck_assert(bk_mapb_str(&li, "id", "li_01"));
		ck_assert(bk_mapb_str(&li, "kind", "package"));
		ck_assert(bk_mapb_str(&li, "title", "Half day"));
		ck_assert(bk_mapb_int(&li, "qty", 2));
		ck_assert(bk_mapb_int(&li, "unit_cents", 15000));
		ck_assert(bk_mapb_int(&li, "total_cents", 30000));
		ck_assert(bk_val_arr(z, 1, &items));
		items.via.array.ptr[0] = bk_mapb_done(&li);
		ck_assert(bk_mapb_init(&tot, z, 5));
		ck_assert(bk_mapb_int(&tot, "subtotal_cents", 30000));
		ck_assert(bk_mapb_int(&tot, "platform_fee_cents", 3000));
		ck_assert(bk_mapb_int(&tot, "tax_cents", 0));
		ck_assert(bk_mapb_int(&tot, "tip_cents", 0));
		ck_assert(bk_mapb_int(&tot, "total_cents", 33000));
		ck_assert(bk_mapb_val(&b, "line_items", items));
		ck_assert(bk_mapb_str(&b, "buyer_user_id", "usr_buyer1"));
		ck_assert(bk_mapb_str(&b, "role_code", "photographer"));
		ck_assert(bk_mapb_str(&b, "timezone", "America/New_York"));
		ck_assert(bk_mapb_str(&b, "currency", "usd"));
		ck_assert(bk_mapb_int(&b, "tax_cents", 0));
		ck_assert(bk_mapb_val(&b, "totals", bk_mapb_done(&tot)));
	} else {
		ck_assert(bk_mapb_init(&terms, z, 2));
		ck_assert(bk_mapb_ts(&terms, "start_ts", ts("2026-12-02T15:00:00Z")));
		ck_assert(bk_mapb_ts(&terms, "end_ts", ts("2026-12-02T19:00:00Z")));
		ck_assert(bk_mapb_str(&b, "card_id", "acd_01"));
		ck_assert(bk_mapb_str(&b, "created_by", "usr_buyer1"));
		ck_assert(bk_mapb_str(&b, "creator_role", "buyer"));
		ck_assert(bk_mapb_val(&b, "payload", bk_mapb_done(&terms)));
	}
	return bk_mapb_done(&b);
}

static void make_event(msgpack_zone *z, bk_event *e, int64_t seq, const char *subtype,
		       const uint8_t prev[BK_HASH_LEN])
{
	char id[BK_ID_MAX];
	memset(e, 0, sizeof(*e));
	bk_id_derive(id, "tev_", "cmd_01JABCDEF", "event", (uint32_t)seq);
	e->event_id = bk_val_str(z, id, strlen(id)).via.str.ptr;
	e->order_id = "ord_01JXYZ";
	e->seq = seq;
	ck_assert_int_eq(
	    bk_event_subtype_parse(subtype, strlen(subtype), &e->type, &e->sub, &e->card_type), 0);
	e->actor_user_id = seq == 2 ? NULL : "usr_buyer1";
	e->command_id = "cmd_01JABCDEF";
	e->created_at = ts("2026-11-20T10:00:00.123456Z") + seq;
	e->schema = bk_event_version(e);
	e->payload = sample_event_payload(z, seq);
	memcpy(e->prev_hash, prev, BK_HASH_LEN);
}

/* A sealed record of three chained events. */
static bk_record sample_record(msgpack_zone *z)
{
	static const char *const subs[] = {"order.created", "card.reschedule.proposed",
					   "note.added"};
	bk_record r;
	uint8_t prev[BK_HASH_LEN] = {0};
	msgpack_sbuffer scratch;
	msgpack_sbuffer_init(&scratch);
	r.order_id = "ord_01JXYZ";
	r.command_id = "cmd_01JABCDEF";
	r.n = 3;
	r.events = msgpack_zone_malloc(z, 3 * sizeof(bk_event));
	for (uint32_t i = 0; i < 3; i++) {
		make_event(z, &r.events[i], i + 1, subs[i], prev);
		ck_assert_int_eq(bk_codec_event_seal(&r.events[i], &scratch), 0);
		memcpy(prev, r.events[i].hash, BK_HASH_LEN);
	}
	msgpack_sbuffer_destroy(&scratch);
	return r;
}

static char *enc_record(const bk_record *r, size_t *ret_n)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(bk_codec_record_encode(r, &sb), 0);
	*ret_n = sb.size;
	return msgpack_sbuffer_release(&sb);
}

static const char *sample_ids[] = {"tev_A1", "tev_B2", "tev_C3"};

static bk_result sample_result(void)
{
	bk_result r;
	memset(&r, 0, sizeof(r));
	r.command_id = "cmd_01JABCDEF";
	r.order_id = "ord_01JXYZ";
	r.status = BK_REJECTED;
	r.code = BK_E_VERSION_CONFLICT;
	r.message = "expected_version 3, the order is at 4";
	r.version = 4;
	r.event_ids = sample_ids;
	r.n_event_ids = 3;
	return r;
}

static char *enc_result(const bk_result *r, size_t *ret_n)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(bk_codec_result_encode(r, &sb), 0);
	*ret_n = sb.size;
	return msgpack_sbuffer_release(&sb);
}

static bk_rule sample_rules[2];

static bk_profile_rules sample_profile(void)
{
	bk_profile_rules p;
	memset(&p, 0, sizeof(p));
	memset(sample_rules, 0, sizeof(sample_rules));
	strcpy(p.service_profile_id, "spr_01JPROF");
	strcpy(p.owner_user_id, "usr_provider1");
	strcpy(sample_rules[0].rule_id, "rule-1");
	sample_rules[0].has_min_price = true;
	sample_rules[0].min_price_cents = 20000;
	sample_rules[0].has_weekday_mask = true;
	sample_rules[0].weekday_mask = 0x1f;
	sample_rules[0].has_max_distance = true;
	sample_rules[0].max_distance_mi = 12.5;
	sample_rules[0].allow_ib = true;
	strcpy(sample_rules[1].rule_id, "rule-2");
	p.rules = sample_rules;
	p.n = p.cap = 2;
	p.recent[0] = 1;
	p.recent[1] = UINT64_MAX;
	p.recent[2] = 0x0123456789abcdefULL;
	p.n_recent = 3;
	return p;
}

static char *enc_rules(const bk_profile_rules *p, size_t *ret_n)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(bk_codec_rules_encode(p, &sb), 0);
	*ret_n = sb.size;
	return msgpack_sbuffer_release(&sb);
}

static const char sample_json[] =
    "{\"id\": \"cmd_01JABCDEF\", \"type\": \"order.create\", \"order_id\": \"ord_01JXYZ\",\n"
    " \"actor\": {\"user_id\": \"usr_buyer1\", \"role\": \"buyer\"},\n"
    " \"expected_version\": 0, \"at\": \"2026-11-20T11:00:00.123456+01:00\",\n"
    " \"payload\": {\"mode\": \"RTB\", \"provider_user_id\": \"usr_provider1\",\n"
    "  \"start_ts\": \"2026-12-01T15:00:00Z\", \"end_ts\": \"2026-12-01T19:30:00.250000Z\",\n"
    "  \"location\": {\"kind\": \"buyer\", \"lat\": 40.7128, \"lng\": -74.006, \"address\": "
    "null},\n"
    "  \"line_items\": [{\"kind\": \"package\", \"title\": \"Half day \\u2014 studio "
    "\\ud83d\\udcf7\", \"qty\": 2, \"unit_cents\": 15000}],\n"
    "  \"platform_fee_cents\": 3000, \"delta\": -42,\n"
    "  \"policy\": {\"name\": \"flexible\", \"refundable\": true}, \"empty\": \"\"},\n"
    " \"unknown_field\": [1, 2, {\"x\": null}]}";

/* Decodes msgpack bytes from a malloc'd copy of exactly n bytes (so ASan sees over-reads). */
static int dec_cmd_exact(const void *buf, size_t n, bool json, bool internal, bk_command *ret,
			 char *err)
{
	void *copy = malloc(n ? n : 1);
	if (n)
		memcpy(copy, buf, n);
	int rc = bk_codec_command_decode(copy, n, json, internal, zone, ret, err, ERRSZ);
	free(copy);
	return rc;
}

/* --- bk_val --- */

START_TEST(test_val_getters)
{
	char err[ERRSZ];
	bk_val p = sample_payload(zone);
	bk_vctx c = {err, sizeof(err), "payload"};
	const char *s;
	size_t n;
	int64_t i;
	double d;
	bool b, present;
	const bk_val *m;

	ck_assert_int_eq(bk_get_str(&c, &p, "mode", true, &s, &n), 0);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(memcmp(s, "RTB", 3), 0);
	ck_assert_int_eq(bk_get_str(&c, &p, "empty", true, &s, &n), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(bk_get_str(&c, &p, "nothing", false, &s, &n), 0);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(bk_get_str(&c, &p, "nothing", true, &s, &n), -1);
	ck_assert_str_eq(err, "payload.nothing: is required (a string)");
	ck_assert_int_eq(bk_get_str(&c, &p, "delta", true, &s, &n), -1);
	ck_assert_str_eq(err, "payload.delta: expected a string");

	ck_assert_int_eq(bk_get_int(&c, &p, "delta", true, &i, &present), 0);
	ck_assert(present);
	ck_assert_int_eq(i, -42);
	i = 7;
	ck_assert_int_eq(bk_get_int(&c, &p, "nothing", false, &i, &present), 0);
	ck_assert(!present);
	ck_assert_int_eq(i, 7);

	ck_assert_int_eq(bk_get_arr(&c, &p, "line_items", true, &m), 0);
	ck_assert_int_eq(m->via.array.size, 1);
	bk_vctx li = {err, sizeof(err), "payload.line_items[0]"};
	ck_assert_int_eq(bk_get_int(&li, &m->via.array.ptr[0], "qty", true, &i, NULL), 0);
	ck_assert_int_eq(i, 2);
	ck_assert_int_eq(bk_get_int(&li, &m->via.array.ptr[0], "title", true, &i, NULL), -1);
	ck_assert_str_eq(err, "payload.line_items[0].title: expected an integer");
	ck_assert_int_eq(bk_get_map(&li, &m->via.array.ptr[0], "qty", true, &m), -1);
	ck_assert_str_eq(err, "payload.line_items[0].qty: expected a map");

	ck_assert_int_eq(bk_get_map(&c, &p, "location", true, &m), 0);
	bk_vctx lc = {err, sizeof(err), "payload.location"};
	ck_assert_int_eq(bk_get_num(&lc, m, "lat", true, &d, &present), 0);
	ck_assert(d > 40.71 && d < 40.72);
	ck_assert_int_eq(bk_get_str(&lc, m, "address", false, &s, &n), 0); /* nil = absent */
	ck_assert_ptr_null(s);
	ck_assert_int_eq(bk_get_num(&c, &p, "platform_fee_cents", true, &d, NULL), 0);
	ck_assert(d == 3000.0);
	ck_assert_int_eq(bk_get_num(&c, &p, "mode", true, &d, NULL), -1);
	ck_assert_str_eq(err, "payload.mode: expected a number");
	ck_assert_int_eq(bk_get_map(&c, &p, "policy", true, &m), 0);
	ck_assert_int_eq(bk_get_bool(&c, m, "refundable", true, &b, NULL), 0);
	ck_assert(b);
	ck_assert_int_eq(bk_get_bool(&c, &p, "mode", true, &b, NULL), -1);
	ck_assert_str_eq(err, "payload.mode: expected a boolean");

	int64_t t;
	ck_assert_int_eq(bk_get_ts(&c, &p, "end_ts", true, &t), 0);
	ck_assert_int_eq(t, ts("2026-12-01T19:30:00.25Z"));
	ck_assert_int_eq(bk_get_ts(&c, &p, "nothing", false, &t), 0);
	ck_assert_int_eq(t, BK_TS_NONE);
	ck_assert_int_eq(bk_get_ts(&c, &p, "mode", true, &t), -1);
	ck_assert_str_eq(err, "payload.mode: expected an RFC 3339 timestamp, got \"RTB\"");
	ck_assert_int_eq(bk_get_ts(&c, &p, "delta", true, &t), -1);
	ck_assert(has_prefix(err, "payload.delta: expected an RFC 3339"));
	ck_assert_int_eq(bk_get_arr(&c, &p, "policy", true, &m), -1);
	ck_assert_str_eq(err, "payload.policy: expected an array");

	/* top-level path: no leading dot */
	bk_vctx top = {err, sizeof(err), ""};
	ck_assert_int_eq(bk_get_int(&top, &p, "mode", true, &i, NULL), -1);
	ck_assert_str_eq(err, "mode: expected an integer");
}
END_TEST

START_TEST(test_val_ranges_and_strings)
{
	char err[ERRSZ];
	bk_vctx c = {err, sizeof(err), "p"};
	bk_mapb b;
	int64_t i;
	double d;
	const char *s;
	size_t n;
	ck_assert(bk_mapb_init(&b, zone, 6));
	ck_assert(bk_mapb_int(&b, "neg", INT64_MIN));
	ck_assert(bk_mapb_strn(&b, "nul", "a\0b", 3));
	ck_assert(bk_mapb_strn(&b, "bad", "\xc0\x80", 2));
	ck_assert(bk_mapb_f64(&b, "nan", NAN));
	ck_assert(bk_mapb_str(&b, "nil", NULL));
	bk_val big;
	big.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
	big.via.u64 = (uint64_t)INT64_MAX + 1;
	ck_assert(bk_mapb_val(&b, "big", big));
	ck_assert(bk_mapb_int(&b, "past", 1)); /* past the hint: the builder grows */
	bk_val m = bk_mapb_done(&b);
	ck_assert_int_eq(m.via.map.size, 7);
	ck_assert_int_eq(bk_get_int(&c, &m, "past", true, &i, NULL), 0);
	ck_assert_int_eq(i, 1);

	ck_assert_int_eq(bk_get_int(&c, &m, "neg", true, &i, NULL), 0);
	ck_assert_int_eq(i, INT64_MIN);
	ck_assert_int_eq(bk_get_int(&c, &m, "big", true, &i, NULL), -1);
	ck_assert_str_eq(err, "p.big: integer out of range");
	ck_assert_int_eq(bk_get_str(&c, &m, "nul", true, &s, &n), -1);
	ck_assert_str_eq(err, "p.nul: NUL byte in string");
	ck_assert_int_eq(bk_get_str(&c, &m, "bad", true, &s, &n), -1);
	ck_assert_str_eq(err, "p.bad: invalid UTF-8 in string");
	ck_assert_int_eq(bk_get_num(&c, &m, "nan", true, &d, NULL), -1);
	ck_assert_str_eq(err, "p.nan: expected a finite number");
	ck_assert_int_eq(bk_get_str(&c, &m, "nil", true, &s, &n), -1);
	ck_assert_str_eq(err, "p.nil: is required (a string)");
	ck_assert_ptr_null(bk_map_get(&m, "nil"));
	ck_assert_ptr_nonnull(bk_map_get(&m, "neg"));
	ck_assert_ptr_null(bk_map_get(&big, "neg")); /* not a map */

	/* bk_get_str skips ASCII 8 bytes at a time: a NUL, a bad byte or a valid 2-byte
	 * character at every offset of strings of 1..20 bytes */
	for (size_t len = 1; len <= 20; len++) {
		for (size_t k = 0; k < len; k++) {
			static const struct {
				const char *ins;
				const char *err;
			} cases[] = {{"\x01", NULL},
				     {"\x7f", NULL},
				     {"\xc3\xa9", NULL},
				     {"\0", "p.s: NUL byte in string"},
				     {"\x80", "p.s: invalid UTF-8 in string"},
				     {"\xff", "p.s: invalid UTF-8 in string"},
				     {"\xc3", "p.s: invalid UTF-8 in string"}};
			for (size_t j = 0; j < sizeof(cases) / sizeof(cases[0]); j++) {
				char t[24];
				size_t il = cases[j].ins[0] ? strlen(cases[j].ins) : 1;
				if (k + il > len)
					continue;
				memset(t, 'a', len);
				memcpy(t + k, cases[j].ins, il);
				bk_mapb sb;
				ck_assert(bk_mapb_init(&sb, zone, 1));
				ck_assert(bk_mapb_strn(&sb, "s", t, len));
				bk_val sm = bk_mapb_done(&sb);
				int rc = bk_get_str(&c, &sm, "s", true, &s, &n);
				if (cases[j].err == NULL) {
					ck_assert_int_eq(rc, 0);
					ck_assert_uint_eq(n, len);
				} else {
					ck_assert_int_eq(rc, -1);
					ck_assert_str_eq(err, cases[j].err);
				}
			}
		}
	}

	char buf[4];
	ck_assert_int_eq(bk_strlcpyn(buf, sizeof(buf), "abc", 3), 0);
	ck_assert_str_eq(buf, "abc");
	ck_assert_int_eq(bk_strlcpyn(buf, sizeof(buf), "abcd", 4), -1);
	ck_assert_str_eq(buf, "abc"); /* untouched */

	bk_val p = sample_payload(zone), copy;
	ck_assert(bk_val_copy(zone, &p, &copy));
	ck_assert(val_eq(&p, &copy));
	ck_assert_ptr_ne(copy.via.map.ptr, p.via.map.ptr);
	ck_assert(bk_val_streq(&copy.via.map.ptr[0].val, "RTB"));
	ck_assert(!bk_val_streq(&copy.via.map.ptr[0].val, "RT"));

	bk_mapb e;
	ck_assert(bk_mapb_init(&e, zone, 0));
	bk_val em = bk_mapb_done(&e);
	ck_assert_int_eq(em.type, MSGPACK_OBJECT_MAP);
	ck_assert_int_eq(em.via.map.size, 0);
}
END_TEST

/* bk_map_lookup gives what bk_map_get gives for every key: keys in any order, unknown
 * keys, repeated keys (the first counts, nil or not), nil values, non-string keys. */
START_TEST(test_map_lookup)
{
	static const bk_key keys[] = {BK_KEY("a"),   BK_KEY("bb"), BK_KEY("ab"),    BK_KEY(""),
				      BK_KEY("nil"), BK_KEY("cc"), BK_KEY("absent")};
	enum { NK = sizeof(keys) / sizeof(keys[0]) };
	static const char *const orders[][9] = {
	    {"a", "bb", "ab", "", "nil", "cc", NULL},
	    {"cc", "nil", "", "ab", "bb", "a", NULL},
	    {"x", "ab", "zz", "a", "a", "bb", "nil", "nil", NULL},
	    {"nil", "bb", "ba", "cc", "cc", "", "", NULL},
	    {NULL},
	};
	for (size_t o = 0; o < sizeof(orders) / sizeof(orders[0]); o++) {
		bk_mapb b;
		ck_assert(bk_mapb_init(&b, zone, 10));
		int i = 0;
		for (; orders[o][i] != NULL; i++) {
			const char *k = orders[o][i];
			/* "nil" is nil the first time in map 2, then an int; in others nil */
			if (strcmp(k, "nil") == 0 && !(o == 2 && i == 7))
				ck_assert(bk_mapb_nil(&b, k));
			else
				ck_assert(bk_mapb_int(&b, k, 100 * (int)o + i));
		}
		/* an integer key, which lookups skip */
		ck_assert(bk_mapb_int(&b, "a", -1));
		bk_val m = bk_mapb_done(&b);
		m.via.map.ptr[m.via.map.size - 1].key = bk_val_int(7);
		const bk_val *got[NK];
		bk_map_lookup(&m, keys, NK, got);
		for (size_t k = 0; k < NK; k++)
			ck_assert_msg(got[k] == bk_map_get(&m, keys[k].s), "map %zu key \"%s\"", o,
				      keys[k].s);
	}
	const bk_val *got[NK];
	bk_val notmap = bk_val_int(1);
	bk_map_lookup(&notmap, keys, NK, got);
	for (size_t k = 0; k < NK; k++)
		ck_assert_ptr_null(got[k]);
}
END_TEST

/* --- commands --- */

START_TEST(test_command_roundtrip_msgpack)
{
	char err[ERRSZ] = "";
	bk_command c = sample_command(zone), d;
	size_t n, n2;
	char *buf = enc_cmd(&c, &n);
	ck_assert_int_eq(bk_codec_prescan(buf, n, NULL, 0), 0);
	ck_assert_msg(bk_codec_command_decode(buf, n, false, false, zone, &d, err, sizeof(err)) ==
			  0,
		      "%s", err);
	assert_cmd_eq(&c, &d);
	char *buf2 = enc_cmd(&d, &n2);
	ck_assert_int_eq(n, n2);
	ck_assert_int_eq(memcmp(buf, buf2, n), 0);
	free(buf2);

	/* a system actor without a user, no expected_version, empty payload */
	c.actor_user_id = NULL;
	c.actor_role = BK_ROLE_SYSTEM;
	c.type = BK_CMD_PAYMENT_CAPTURED;
	c.has_expected_version = false;
	c.payload = bk_val_nil();
	free(buf);
	buf = enc_cmd(&c, &n);
	ck_assert_msg(bk_codec_command_decode(buf, n, false, false, zone, &d, err, sizeof(err)) ==
			  0,
		      "%s", err);
	ck_assert_ptr_null(d.actor_user_id);
	ck_assert_int_eq(d.actor_role, BK_ROLE_SYSTEM);
	ck_assert(!d.has_expected_version);
	ck_assert_int_eq(d.payload.type, MSGPACK_OBJECT_MAP);
	ck_assert_int_eq(d.payload.via.map.size, 0);
	free(buf);
}
END_TEST

START_TEST(test_command_json_matches_msgpack)
{
	char err[ERRSZ] = "";
	bk_command want = sample_command(zone), j, m, back;
	ck_assert_msg(bk_codec_command_decode(sample_json, strlen(sample_json), true, false, zone,
					      &j, err, sizeof(err)) == 0,
		      "%s", err);
	assert_cmd_eq(&want, &j);
	size_t n;
	char *buf = enc_cmd(&want, &n);
	ck_assert_int_eq(bk_codec_command_decode(buf, n, false, false, zone, &m, err, sizeof(err)),
			 0);
	assert_cmd_eq(&j, &m);
	/* identical commands encode to identical bytes */
	size_t nj;
	char *bj = enc_cmd(&j, &nj);
	ck_assert_int_eq(n, nj);
	ck_assert_int_eq(memcmp(buf, bj, n), 0);
	free(bj);

	/* bk_command_to_json -> text -> decode gives the same command back */
	json_t *o = bk_command_to_json(&m);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(json_string_value(json_object_get(o, "at")),
			 "2026-11-20T10:00:00.123456Z");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "actor"), "role")),
			 "buyer");
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	ck_assert_msg(bk_codec_command_decode(text, strlen(text), true, false, zone, &back, err,
					      sizeof(err)) == 0,
		      "%s", err);
	free(text);
	assert_cmd_eq(&m, &back);
	free(buf);
}
END_TEST

START_TEST(test_command_at_integer)
{
	char err[ERRSZ] = "";
	bk_command c = sample_command(zone), d;
	bk_mapb b, a;
	ck_assert(bk_mapb_init(&a, zone, 2));
	ck_assert(bk_mapb_str(&a, "user_id", "usr_buyer1"));
	ck_assert(bk_mapb_str(&a, "role", "buyer"));
	ck_assert(bk_mapb_init(&b, zone, 6));
	ck_assert(bk_mapb_str(&b, "id", c.id));
	ck_assert(bk_mapb_str(&b, "type", "order.create"));
	ck_assert(bk_mapb_str(&b, "order_id", c.order_id));
	ck_assert(bk_mapb_val(&b, "actor", bk_mapb_done(&a)));
	ck_assert(bk_mapb_int(&b, "at", c.at));
	ck_assert(bk_mapb_val(&b, "payload", c.payload));
	bk_val v = bk_mapb_done(&b);
	size_t n;
	char *buf = pack_val(&v, &n);
	ck_assert_msg(bk_codec_command_decode(buf, n, false, false, zone, &d, err, sizeof(err)) ==
			  0,
		      "%s", err);
	ck_assert_int_eq(d.at, c.at);
	free(buf);
	/* out of the range RFC 3339 text can carry */
	b.n = 4;
	ck_assert(bk_mapb_int(&b, "at", INT64_MAX));
	ck_assert(bk_mapb_val(&b, "payload", c.payload));
	v = bk_mapb_done(&b);
	buf = pack_val(&v, &n);
	ck_assert_int_eq(bk_codec_command_decode(buf, n, false, false, zone, &d, err, sizeof(err)),
			 -1);
	ck_assert(has_prefix(err, "at: timestamp out of range"));
	free(buf);
}
END_TEST

/* Envelope errors, as JSON: text and the start of the expected message. */
static const struct {
	const char *json;
	const char *err; /* NULL: accepted */
} envelope_cases[] = {
    {"[]", "command: expected a map"},
    {"{}", "id: is required"},
    {"{\"id\":\"\"}", "id: expected an id"},
    {"{\"id\":\"cmd 1\"}", "id: expected an id"},
    {"{\"id\":\"cmd_1\",\"type\":\"order.explode\"}",
     "type: unknown command type \"order.explode\""},
    {"{\"id\":\"cmd_1\",\"type\":\"order.sweep\"}", "type: order.sweep is internal"},
    {"{\"id\":\"cmd_1\",\"type\":\"order.start\"}", "order_id: is required"},
    {"{\"id\":\"cmd_1\",\"type\":\"order.start\",\"order_id\":\"ord_1\"}", "actor: is required"},
    {"{\"id\":\"cmd_1\",\"type\":\"order.start\",\"order_id\":\"ord_1\",\"actor\":[]}",
     "actor: expected a map"},
    {"{\"id\":\"cmd_1\",\"type\":\"order.start\",\"order_id\":\"ord_1\",\"actor\":{}}",
     "actor.role: is required"},
    {"{\"id\":\"cmd_1\",\"type\":\"order.start\",\"order_id\":\"ord_1\",\"actor\":{\"role\":"
     "\"admin\"}}",
     "actor.role: expected one of buyer, provider, support, system"},
    {"{\"id\":\"cmd_1\",\"type\":\"order.start\",\"order_id\":\"ord_1\",\"actor\":{\"role\":"
     "\"provider\"}}",
     "actor.user_id: is required"},
    {"{\"id\":\"cmd_1\",\"type\":\"order.start\",\"order_id\":\"ord_1\",\"actor\":{\"role\":"
     "\"provider\",\"user_id\":\"\"}}",
     "actor.user_id: expected an id"},
    {"{\"id\":\"cmd_1\",\"type\":\"order.start\",\"order_id\":\"ord_1\",\"actor\":{\"role\":"
     "\"system\"}}",
     "at: is required"},
    {"{\"id\":\"cmd_1\",\"type\":\"order.start\",\"order_id\":\"ord_1\",\"actor\":{\"role\":"
     "\"system\"},\"at\":\"2026-13-01T00:00:00Z\"}",
     "at: expected an RFC 3339 timestamp"},
    {"{\"id\":\"cmd_1\",\"type\":\"order.start\",\"order_id\":\"ord_1\",\"actor\":{\"role\":"
     "\"system\"},\"at\":true}",
     "at: expected an RFC 3339 timestamp"},
    {"{\"id\":\"cmd_1\",\"type\":\"order.start\",\"order_id\":\"ord_1\",\"actor\":{\"role\":"
     "\"system\"},\"at\":\"2026-12-01T00:00:00Z\",\"expected_version\":-1}",
     "expected_version: expected a non-negative integer"},
    {"{\"id\":\"cmd_1\",\"type\":\"order.start\",\"order_id\":\"ord_1\",\"actor\":{\"role\":"
     "\"system\"},\"at\":\"2026-12-01T00:00:00Z\",\"expected_version\":1.0}",
     "expected_version: expected an integer"},
    {"{\"id\":\"cmd_1\",\"type\":\"order.start\",\"order_id\":\"ord_1\",\"actor\":{\"role\":"
     "\"system\"},\"at\":\"2026-12-01T00:00:00Z\",\"payload\":[]}",
     "payload: expected a map"},
    {"{\"id\":\"cmd_1\",\"type\":\"order.start\",\"order_id\":\"ord_1\",\"actor\":{\"role\":"
     "\"system\"},\"at\":\"2026-12-01T00:00:00Z\",\"payload\":null,\"expected_version\":null}",
     NULL},
    {"{\"id\":\"cmd_1\",\"type\":\"order.start\",\"order_id\":\"ord_1\",\"actor\":{\"role\":"
     "\"system\",\"extra\":1},\"at\":\"2026-12-01T00:00:00Z\",\"future\":{\"a\":[1]}}",
     NULL},
    {"{\"id\":\"cmd_1\",\"id\":\"cmd_2\"}", "JSON: duplicate object key"},
    {"{\"id\":\"cmd_1\"} x", "JSON: end of file expected"},
    {"{\"id\":\"cmd_\\u0000\"}", "JSON:"},
    {"{\"id\":\"cmd_\xff\"}", "JSON:"},
    {"{\"expected_version\":9223372036854775808}", "JSON: too big integer"},
    {"{\"expected_version\":-9223372036854775809}", "JSON: too big negative integer"},
    {"", "empty message"},
    {"   ", "JSON:"},
    {"\"cmd\"", "JSON:"},
};

START_TEST(test_command_envelope_errors)
{
	char err[ERRSZ];
	bk_command d;
	const char *json = envelope_cases[_i].json;
	const char *want = envelope_cases[_i].err;
	strcpy(err, "(none)");
	int rc = dec_cmd_exact(json, strlen(json), true, false, &d, err);
	if (want == NULL) {
		ck_assert_msg(rc == 0, "case %d: %s", _i, err);
		ck_assert_int_eq(d.payload.type, MSGPACK_OBJECT_MAP);
		ck_assert_int_eq(d.payload.via.map.size, 0);
		ck_assert(!d.has_expected_version);
	} else {
		ck_assert_msg(rc == -1, "case %d accepted", _i);
		ck_assert_msg(has_prefix(err, want), "case %d: got \"%s\", want \"%s...\"", _i, err,
			      want);
	}
}
END_TEST

START_TEST(test_command_internal_types)
{
	char err[ERRSZ];
	bk_command d;
	const char *json = "{\"id\":\"cmd_1\",\"type\":\"card.expire\",\"order_id\":\"ord_1\","
			   "\"actor\":{\"role\":\"system\"},\"at\":\"2026-12-01T00:00:00Z\"}";
	ck_assert_int_eq(dec_cmd_exact(json, strlen(json), true, false, &d, err), -1);
	ck_assert(has_prefix(err, "type: card.expire is internal"));
	ck_assert_msg(dec_cmd_exact(json, strlen(json), true, true, &d, err) == 0, "%s", err);
	ck_assert_int_eq(d.type, BK_CMD_CARD_EXPIRE);
	for (int t = 0; t < BK_CMD__COUNT; t++) {
		char buf[512];
		snprintf(
		    buf, sizeof(buf),
		    "{\"id\":\"cmd_1\",\"type\":\"%s\",\"order_id\":\"ord_1\",\"actor\":{"
		    "\"role\":\"support\",\"user_id\":\"usr_s\"},\"at\":\"2026-12-01T00:00:00Z\"}",
		    bk_cmd_name((bk_cmd_type)t));
		int rc = dec_cmd_exact(buf, strlen(buf), true, false, &d, err);
		ck_assert_int_eq(rc, bk_cmd_is_internal((bk_cmd_type)t) ? -1 : 0);
		if (rc == 0)
			ck_assert_int_eq(d.type, t);
	}
}
END_TEST

/* Wrong types for every envelope field, through msgpack and JSON alike. */
enum { F_ID, F_TYPE, F_ORDER, F_ACTOR, F_USER, F_ROLE, F_EXPV, F_AT, F_PAYLOAD, F__COUNT };
static const char *const field_path[F__COUNT] = {
    "id", "type",   "order_id", "actor", "actor.user_id", "actor.role", "expected_version",
    "at", "payload"};
enum { W_ABSENT, W_NIL, W_INT, W_NEG, W_STR, W_BOOL, W_FLOAT, W_ARR, W_MAP, W_BIN, W__COUNT };

static bk_val wrong_val(int w)
{
	bk_val v = bk_val_nil();
	switch (w) {
	case W_INT:
		return bk_val_int(42);
	case W_NEG:
		return bk_val_int(-1);
	case W_STR:
		return bk_val_str(zone, "x", 1);
	case W_BOOL:
		v.type = MSGPACK_OBJECT_BOOLEAN;
		v.via.boolean = true;
		return v;
	case W_FLOAT:
		v.type = MSGPACK_OBJECT_FLOAT64;
		v.via.f64 = 1.5;
		return v;
	case W_ARR:
		ck_assert(bk_val_arr(zone, 0, &v));
		return v;
	case W_MAP:
		v.type = MSGPACK_OBJECT_MAP;
		return v;
	case W_BIN:
		v.type = MSGPACK_OBJECT_BIN;
		v.via.bin.ptr = "ab";
		v.via.bin.size = 2;
		return v;
	default:
		return v;
	}
}

static void put_field(bk_mapb *b, int f, int bad_f, int w, const char *k, bk_val good)
{
	if (f != bad_f) {
		ck_assert(bk_mapb_val(b, k, good));
	} else if (w != W_ABSENT) {
		ck_assert(bk_mapb_val(b, k, wrong_val(w)));
	}
}

static bk_val cmd_with(int bad_f, int w)
{
	bk_mapb b, a;
	ck_assert(bk_mapb_init(&a, zone, 2));
	put_field(&a, F_USER, bad_f, w, "user_id", bk_val_str(zone, "usr_p", 5));
	put_field(&a, F_ROLE, bad_f, w, "role", bk_val_str(zone, "provider", 8));
	ck_assert(bk_mapb_init(&b, zone, 7));
	put_field(&b, F_ID, bad_f, w, "id", bk_val_str(zone, "cmd_1", 5));
	put_field(&b, F_TYPE, bad_f, w, "type", bk_val_str(zone, "order.start", 11));
	put_field(&b, F_ORDER, bad_f, w, "order_id", bk_val_str(zone, "ord_1", 5));
	put_field(&b, F_ACTOR, bad_f, w, "actor", bk_mapb_done(&a));
	put_field(&b, F_EXPV, bad_f, w, "expected_version", bk_val_int(3));
	put_field(&b, F_AT, bad_f, w, "at", bk_val_str(zone, "2026-12-01T15:00:00Z", 20));
	bk_mapb p;
	ck_assert(bk_mapb_init(&p, zone, 1));
	ck_assert(bk_mapb_int(&p, "k", 1));
	put_field(&b, F_PAYLOAD, bad_f, w, "payload", bk_mapb_done(&p));
	return bk_mapb_done(&b);
}

static bool wrong_is_valid(int f, int w)
{
	switch (f) {
	case F_ID:
	case F_ORDER:
	case F_USER:
		return w == W_STR;
	case F_EXPV:
		return w == W_INT || w == W_ABSENT || w == W_NIL;
	case F_AT:
		return w == W_INT || w == W_NEG;
	case F_PAYLOAD:
		return w == W_MAP || w == W_ABSENT || w == W_NIL;
	default:
		return false;
	}
}

START_TEST(test_command_wrong_types)
{
	int f = _i / W__COUNT, w = _i % W__COUNT;
	char err[ERRSZ], jerr[ERRSZ];
	bk_command d, dj;
	bk_val v = cmd_with(f, w);
	size_t n;
	char *buf = pack_val(&v, &n);
	int rc = dec_cmd_exact(buf, n, false, false, &d, err);
	free(buf);
	if (wrong_is_valid(f, w)) {
		ck_assert_msg(rc == 0, "%s/%d: %s", field_path[f], w, err);
	} else {
		ck_assert_msg(rc == -1, "%s/%d accepted", field_path[f], w);
		ck_assert_msg(has_prefix(err, field_path[f]), "%s/%d: \"%s\"", field_path[f], w,
			      err);
	}
	if (w == W_BIN)
		return; /* JSON has no binary: bin becomes a hex string */
	json_t *o = bk_val_to_json(&v);
	ck_assert_ptr_nonnull(o);
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	int rcj = dec_cmd_exact(text, strlen(text), true, false, &dj, jerr);
	free(text);
	ck_assert_int_eq(rc, rcj);
	if (rc == 0)
		assert_cmd_eq(&d, &dj);
	else
		ck_assert_str_eq(err, jerr);
}
END_TEST

START_TEST(test_json_limits)
{
	char err[ERRSZ];
	bk_command d;
	char buf[1024];
	/* nesting: the envelope object is level 1, payload level 2 */
	for (int levels = BK_MAX_DEPTH - 2; levels <= BK_MAX_DEPTH; levels++) {
		char nest[BK_MAX_DEPTH + 1], close[BK_MAX_DEPTH + 1];
		memset(nest, '[', (size_t)levels);
		nest[levels] = '\0';
		memset(close, ']', (size_t)levels);
		close[levels] = '\0';
		snprintf(buf, sizeof(buf),
			 "{\"id\":\"cmd_1\",\"type\":\"note.add\",\"order_id\":\"ord_1\","
			 "\"actor\":{\"role\":\"system\"},\"at\":\"2026-12-01T00:00:00Z\","
			 "\"payload\":{\"deep\":%s%s}}",
			 nest, close);
		int rc = dec_cmd_exact(buf, strlen(buf), true, false, &d, err);
		if (levels + 2 <= BK_MAX_DEPTH)
			ck_assert_msg(rc == 0, "%d levels: %s", levels, err);
		else
			ck_assert_msg(rc == -1 && strstr(err, "nesting deeper") != NULL, "%d: %s",
				      levels, err);
	}
	/* 100k nested arrays: jansson stops itself, we never recurse that deep */
	size_t big = 200000;
	char *deep = malloc(big + 1);
	memset(deep, '[', big / 2);
	memset(deep + big / 2, ']', big / 2);
	deep[big] = '\0';
	ck_assert_int_eq(dec_cmd_exact(deep, big, true, false, &d, err), -1);
	free(deep);
	/* oversize */
	size_t on = BK_MAX_MESSAGE + 1;
	char *over = malloc(on);
	memset(over, ' ', on);
	over[0] = '{';
	over[on - 1] = '}';
	ck_assert_int_eq(dec_cmd_exact(over, on, true, false, &d, err), -1);
	ck_assert_str_eq(err, "message larger than BK_MAX_MESSAGE");
	ck_assert_int_eq(dec_cmd_exact(over, on, false, false, &d, err), -1);
	ck_assert_str_eq(err, "message larger than BK_MAX_MESSAGE");
	free(over);
	/* bk_json_to_val: a NUL inside a jansson string built by code */
	bk_val v;
	json_t *s = json_stringn("a\0b", 3);
	ck_assert_int_eq(bk_json_to_val(s, zone, &v, err, sizeof(err)), -1);
	json_decref(s);
	/* integers keep their type; reals become float64 */
	json_t *o =
	    json_pack("{s:I, s:f, s:b, s:n}", "i", (json_int_t)INT64_MIN, "r", 2.5, "b", 1, "n");
	ck_assert_int_eq(bk_json_to_val(o, zone, &v, err, sizeof(err)), 0);
	json_decref(o);
	ck_assert_int_eq(bk_map_get(&v, "i")->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
	ck_assert_int_eq(bk_map_get(&v, "i")->via.i64, INT64_MIN);
	ck_assert_int_eq(bk_map_get(&v, "r")->type, MSGPACK_OBJECT_FLOAT64);
	ck_assert_int_eq(bk_map_get(&v, "b")->type, MSGPACK_OBJECT_BOOLEAN);
	ck_assert_ptr_null(bk_map_get(&v, "n"));
}
END_TEST

/* --- events --- */

static void assert_event_eq(const bk_event *a, const bk_event *b)
{
	ck_assert_str_eq(a->event_id, b->event_id);
	ck_assert_str_eq(a->order_id, b->order_id);
	ck_assert_int_eq(a->seq, b->seq);
	ck_assert_int_eq(a->type, b->type);
	ck_assert_int_eq(a->sub, b->sub);
	if (a->type == BK_EV_CARD)
		ck_assert_int_eq(a->card_type, b->card_type);
	if (a->actor_user_id)
		ck_assert_str_eq(a->actor_user_id, b->actor_user_id);
	else
		ck_assert_ptr_null(b->actor_user_id);
	ck_assert_str_eq(a->command_id, b->command_id);
	ck_assert_int_eq(a->created_at, b->created_at);
	ck_assert_int_eq(a->schema, b->schema);
	if (a->payload.type == MSGPACK_OBJECT_NIL)
		ck_assert_int_eq(b->payload.via.map.size, 0);
	else
		ck_assert(val_eq(&a->payload, &b->payload));
	ck_assert_int_eq(memcmp(a->prev_hash, b->prev_hash, BK_HASH_LEN), 0);
	ck_assert_int_eq(memcmp(a->hash, b->hash, BK_HASH_LEN), 0);
}

START_TEST(test_record_roundtrip_and_chain)
{
	char err[ERRSZ] = "";
	bk_record r = sample_record(zone), d;
	size_t n, n2;
	char *buf = enc_record(&r, &n);
	ck_assert_msg(bk_codec_record_decode(buf, n, zone, &d, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(d.order_id, r.order_id);
	ck_assert_str_eq(d.command_id, r.command_id);
	ck_assert_int_eq(d.n, 3);
	msgpack_sbuffer scratch, ca, cb;
	msgpack_sbuffer_init(&scratch);
	msgpack_sbuffer_init(&ca);
	msgpack_sbuffer_init(&cb);
	uint8_t zero[BK_HASH_LEN] = {0};
	ck_assert_int_eq(memcmp(d.events[0].prev_hash, zero, BK_HASH_LEN), 0);
	for (uint32_t i = 0; i < 3; i++) {
		assert_event_eq(&r.events[i], &d.events[i]);
		/* the reader's canonical bytes equal the writer's, so the hash recomputes */
		msgpack_sbuffer_clear(&ca);
		msgpack_sbuffer_clear(&cb);
		ck_assert_int_eq(bk_codec_event_canon(&r.events[i], &ca), 0);
		ck_assert_int_eq(bk_codec_event_canon(&d.events[i], &cb), 0);
		ck_assert_int_eq(ca.size, cb.size);
		ck_assert_int_eq(memcmp(ca.data, cb.data, ca.size), 0);
		ck_assert_int_eq(((const uint8_t *)cb.data)[0], 0x8b); /* fixmap of 11 keys */
		bk_event e = d.events[i];
		memset(e.hash, 0, BK_HASH_LEN);
		ck_assert_int_eq(bk_codec_event_seal(&e, &scratch), 0);
		ck_assert_int_eq(memcmp(e.hash, d.events[i].hash, BK_HASH_LEN), 0);
		uint8_t h[BK_HASH_LEN];
		bk_chain_hash(e.prev_hash, (const uint8_t *)cb.data, cb.size, h);
		ck_assert_int_eq(memcmp(h, e.hash, BK_HASH_LEN), 0);
		if (i > 0)
			ck_assert_int_eq(
			    memcmp(d.events[i].prev_hash, d.events[i - 1].hash, BK_HASH_LEN), 0);
	}
	/* a changed payload changes the hash */
	bk_event e = d.events[0];
	bk_mapb pb;
	ck_assert(bk_mapb_init(&pb, zone, 1));
	ck_assert(bk_mapb_int(&pb, "x", 1));
	e.payload = bk_mapb_done(&pb);
	ck_assert_int_eq(bk_codec_event_seal(&e, &scratch), 0);
	ck_assert_int_ne(memcmp(e.hash, d.events[0].hash, BK_HASH_LEN), 0);
	/* re-encoding the decoded record gives the same bytes */
	char *buf2 = enc_record(&d, &n2);
	ck_assert_int_eq(n, n2);
	ck_assert_int_eq(memcmp(buf, buf2, n), 0);
	free(buf2);
	free(buf);
	msgpack_sbuffer_destroy(&scratch);
	msgpack_sbuffer_destroy(&ca);
	msgpack_sbuffer_destroy(&cb);
}
END_TEST

START_TEST(test_record_errors)
{
	char err[ERRSZ];
	bk_record r = sample_record(zone), d;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);

	/* an event of another order inside the record */
	r.events[1].order_id = "ord_OTHER";
	ck_assert_int_eq(bk_codec_record_encode(&r, &sb), 0);
	ck_assert_int_eq(bk_codec_record_decode(sb.data, sb.size, zone, &d, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "events[1].order_id: differs from the record's order_id");
	r.events[1].order_id = r.order_id;

	/* the path names events past 9 (a record holds at most BK_MAX_EVENTS) */
	bk_record rl = r;
	rl.n = BK_MAX_EVENTS;
	rl.events = msgpack_zone_malloc(zone, (rl.n + 1) * sizeof(bk_event));
	ck_assert_ptr_nonnull(rl.events);
	for (uint32_t i = 0; i <= rl.n; i++)
		rl.events[i] = r.events[i % 3];
	static const uint32_t bad_at[] = {9, 10, 11, BK_MAX_EVENTS - 1};
	for (size_t b = 0; b < sizeof(bad_at) / sizeof(bad_at[0]); b++) {
		char want[80];
		snprintf(want, sizeof(want),
			 "events[%u].order_id: differs from the record's order_id", bad_at[b]);
		rl.events[bad_at[b]].order_id = "ord_OTHER";
		msgpack_sbuffer_clear(&sb);
		ck_assert_int_eq(bk_codec_record_encode(&rl, &sb), 0);
		ck_assert_int_eq(
		    bk_codec_record_decode(sb.data, sb.size, zone, &d, err, sizeof(err)), -1);
		ck_assert_str_eq(err, want);
		rl.events[bad_at[b]].order_id = r.order_id;
	}
	/* one event more than a command may produce */
	rl.n = BK_MAX_EVENTS + 1;
	msgpack_sbuffer_clear(&sb);
	ck_assert_int_eq(bk_codec_record_encode(&rl, &sb), 0);
	ck_assert_int_eq(bk_codec_record_decode(sb.data, sb.size, zone, &d, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "events: expected 1 to 64 events");
	msgpack_sbuffer_clear(&sb);

	/* hand-made records with one field wrong */
	static const struct {
		const char *key;
		int w;
		const char *want;
	} cases[] = {
	    {"seq", W_STR, "events[0].seq: expected an integer"},
	    {"seq", W_NEG, "events[0].seq: expected a positive integer"},
	    {"kind", W_STR, "events[0].kind: expected one of"},
	    {"subtype", W_STR, "events[0].subtype: unknown subtype \"x\""},
	    {"created_at", W_FLOAT, "events[0].created_at: expected an integer"},
	    {"schema", W_ABSENT, "events[0].schema: is required"},
	    {"payload", W_ARR, "events[0].payload: expected a map"},
	    {"prev_hash", W_BIN, "events[0].prev_hash: expected binary of 32 bytes"},
	    {"hash", W_STR, "events[0].hash: expected binary of 32 bytes"},
	    {"event_id", W_INT, "events[0].event_id: expected a string"},
	    {"actor_user_id", W_BOOL, "events[0].actor_user_id: expected a string"},
	};
	bk_record r1 = r;
	r1.n = 1;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		/* a one-event record, unpacked, with one field of the event replaced */
		msgpack_sbuffer_clear(&sb);
		ck_assert_int_eq(bk_codec_record_encode(&r1, &sb), 0);
		bk_val rv;
		ck_assert_int_eq(bk_codec_unpack(sb.data, sb.size, zone, &rv, err, sizeof(err)), 0);
		const bk_val *ev = &bk_map_get(&rv, "events")->via.array.ptr[0];
		for (uint32_t k = 0; k < ev->via.map.size; k++) {
			msgpack_object_kv *kv = &ev->via.map.ptr[k];
			if (bk_val_streq(&kv->key, cases[c].key)) {
				if (cases[c].w == W_ABSENT)
					kv->key = bk_val_str(zone, "renamed", 7);
				else
					kv->val = wrong_val(cases[c].w);
			}
		}
		size_t en;
		char *bytes = pack_val(&rv, &en);
		ck_assert_int_eq(bk_codec_record_decode(bytes, en, zone, &d, err, sizeof(err)), -1);
		ck_assert_msg(has_prefix(err, cases[c].want), "%s: \"%s\"", cases[c].key, err);
		free(bytes);
	}
	/* unsupported record version */
	msgpack_sbuffer_clear(&sb);
	ck_assert_int_eq(bk_codec_record_encode(&r1, &sb), 0);
	((char *)sb.data)[2] = 2; /* {"v": 1, ...}: 0x84 0xa1 'v' 0x01 */
	((char *)sb.data)[3] = 2;
	ck_assert_int_eq(bk_codec_record_decode(sb.data, sb.size, zone, &d, err, sizeof(err)), -1);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_event_json)
{
	bk_record r = sample_record(zone);
	json_t *o = bk_event_to_json(&r.events[1], 3, 12345);
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(json_integer_value(json_object_get(o, "partition")), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(o, "offset")), 12345);
	ck_assert_str_eq(json_string_value(json_object_get(o, "subtype")),
			 "card.reschedule.proposed");
	ck_assert_str_eq(json_string_value(json_object_get(o, "kind")), "card");
	ck_assert(json_is_null(json_object_get(o, "actor_user_id")));
	ck_assert_str_eq(json_string_value(json_object_get(o, "created_at")),
			 "2026-11-20T10:00:00.123458Z");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "seq")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(o, "schema")), 1);
	char hex[2 * BK_HASH_LEN + 1];
	bk_hex(r.events[1].hash, BK_HASH_LEN, hex);
	ck_assert_str_eq(json_string_value(json_object_get(o, "hash")), hex);
	bk_hex(r.events[0].hash, BK_HASH_LEN, hex);
	ck_assert_str_eq(json_string_value(json_object_get(o, "prev_hash")), hex);
	json_t *p = json_object_get(o, "payload");
	ck_assert_str_eq(json_string_value(json_object_get(p, "mode")), "RTB");
	ck_assert_int_eq(json_integer_value(json_object_get(
			     json_array_get(json_object_get(p, "line_items"), 0), "qty")),
			 2);
	ck_assert_str_eq(json_string_value(json_object_get(o, "command_id")), "cmd_01JABCDEF");
	json_decref(o);

	o = bk_event_to_json(&r.events[2], -1, 0);
	ck_assert_ptr_null(json_object_get(o, "partition"));
	ck_assert_ptr_null(json_object_get(o, "offset"));
	ck_assert_str_eq(json_string_value(json_object_get(o, "subtype")), "note.added");
	ck_assert_str_eq(json_string_value(json_object_get(o, "kind")), "note");
	ck_assert_str_eq(json_string_value(json_object_get(o, "actor_user_id")), "usr_buyer1");
	ck_assert_int_eq(json_object_size(json_object_get(o, "payload")), 0);
	ck_assert_int_eq(json_object_size(o), 12);
	json_decref(o);
}
END_TEST

START_TEST(test_val_to_json)
{
	bk_val v;
	json_t *j;
	v.type = MSGPACK_OBJECT_BIN;
	v.via.bin.ptr = "\x01\xab";
	v.via.bin.size = 2;
	j = bk_val_to_json(&v);
	ck_assert_str_eq(json_string_value(j), "01ab");
	json_decref(j);
	v.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
	v.via.u64 = UINT64_MAX;
	ck_assert_ptr_null(bk_val_to_json(&v));
	v.type = MSGPACK_OBJECT_FLOAT64;
	v.via.f64 = INFINITY;
	ck_assert_ptr_null(bk_val_to_json(&v));
	/* non-string key */
	msgpack_object_kv kv[1];
	kv[0].key = bk_val_int(1);
	kv[0].val = bk_val_int(2);
	v.type = MSGPACK_OBJECT_MAP;
	v.via.map.ptr = kv;
	v.via.map.size = 1;
	ck_assert_ptr_null(bk_val_to_json(&v));
	/* invalid UTF-8 key and value */
	kv[0].key = bk_val_str(zone, "\xed\xa0\x80", 3);
	ck_assert_ptr_null(bk_val_to_json(&v));
	kv[0].key = bk_val_str(zone, "k", 1);
	kv[0].val = bk_val_str(zone, "\xc1\xbf", 2);
	ck_assert_ptr_null(bk_val_to_json(&v));
	kv[0].val = bk_val_str(zone, "ok", 2);
	j = bk_val_to_json(&v);
	ck_assert_str_eq(json_string_value(json_object_get(j, "k")), "ok");
	json_decref(j);
}
END_TEST

/* --- results and rules --- */

START_TEST(test_result_roundtrip)
{
	char err[ERRSZ] = "";
	bk_result r = sample_result(), d;
	size_t n, n2;
	char *buf = enc_result(&r, &n);
	ck_assert_msg(bk_codec_result_decode(buf, n, zone, &d, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(d.command_id, r.command_id);
	ck_assert_str_eq(d.order_id, r.order_id);
	ck_assert_int_eq(d.status, BK_REJECTED);
	ck_assert_int_eq(d.code, BK_E_VERSION_CONFLICT);
	ck_assert_str_eq(d.message, r.message);
	ck_assert_int_eq(d.version, 4);
	ck_assert_int_eq(d.n_event_ids, 3);
	for (int i = 0; i < 3; i++)
		ck_assert_str_eq(d.event_ids[i], sample_ids[i]);
	char *buf2 = enc_result(&d, &n2);
	ck_assert_int_eq(n, n2);
	ck_assert_int_eq(memcmp(buf, buf2, n), 0);
	free(buf2);

	json_t *o = bk_result_to_json(&d);
	ck_assert_str_eq(json_string_value(json_object_get(o, "status")), "rejected");
	ck_assert_str_eq(json_string_value(json_object_get(o, "code")), "version_conflict");
	ck_assert_int_eq(json_array_size(json_object_get(o, "event_ids")), 3);
	json_decref(o);

	/* accepted without events, no message */
	r.status = BK_DUPLICATE;
	r.code = BK_E_OK;
	r.message = NULL;
	r.n_event_ids = 0;
	free(buf);
	buf = enc_result(&r, &n);
	ck_assert_int_eq(bk_codec_result_decode(buf, n, zone, &d, err, sizeof(err)), 0);
	ck_assert_int_eq(d.status, BK_DUPLICATE);
	ck_assert_str_eq(d.message, "");
	ck_assert_int_eq(d.n_event_ids, 0);
	free(buf);

	/* unknown code */
	bk_mapb b;
	ck_assert(bk_mapb_init(&b, zone, 5));
	ck_assert(bk_mapb_str(&b, "command_id", "cmd_1"));
	ck_assert(bk_mapb_str(&b, "status", "accepted"));
	ck_assert(bk_mapb_str(&b, "code", "teapot"));
	ck_assert(bk_mapb_int(&b, "version", 1));
	bk_val v = bk_mapb_done(&b);
	buf = pack_val(&v, &n);
	ck_assert_int_eq(bk_codec_result_decode(buf, n, zone, &d, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "code: unknown code \"teapot\"");
	free(buf);
	b.n = 1;
	ck_assert(bk_mapb_str(&b, "status", "maybe"));
	v = bk_mapb_done(&b);
	buf = pack_val(&v, &n);
	ck_assert_int_eq(bk_codec_result_decode(buf, n, zone, &d, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "status: expected one of accepted, rejected, duplicate");
	free(buf);
}
END_TEST

START_TEST(test_rules_roundtrip)
{
	char err[ERRSZ] = "";
	bk_profile_rules p = sample_profile(), d;
	size_t n, n2;
	char *buf = enc_rules(&p, &n);
	ck_assert_msg(bk_codec_rules_decode(buf, n, &d, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(d.service_profile_id, p.service_profile_id);
	ck_assert_str_eq(d.owner_user_id, p.owner_user_id);
	ck_assert_int_eq(d.n, 2);
	ck_assert_str_eq(d.rules[0].rule_id, "rule-1");
	ck_assert(d.rules[0].has_min_price && d.rules[0].min_price_cents == 20000);
	ck_assert(d.rules[0].has_weekday_mask && d.rules[0].weekday_mask == 0x1f);
	ck_assert(d.rules[0].has_max_distance && d.rules[0].max_distance_mi == 12.5);
	ck_assert(d.rules[0].allow_ib);
	ck_assert(!d.rules[1].has_min_price && !d.rules[1].has_weekday_mask &&
		  !d.rules[1].has_max_distance && !d.rules[1].allow_ib);
	ck_assert_int_eq(d.n_recent, 3);
	ck_assert(d.recent[1] == UINT64_MAX);
	ck_assert(d.recent[2] == 0x0123456789abcdefULL);
	char *buf2 = enc_rules(&d, &n2);
	ck_assert_int_eq(n, n2);
	ck_assert_int_eq(memcmp(buf, buf2, n), 0);
	free(buf2);
	bk_profile_rules_clear(&d);
	free(buf);

	/* no rules at all */
	p.n = 0;
	p.n_recent = 0;
	buf = enc_rules(&p, &n);
	ck_assert_int_eq(bk_codec_rules_decode(buf, n, &d, err, sizeof(err)), 0);
	ck_assert_int_eq(d.n, 0);
	bk_profile_rules_clear(&d);
	free(buf);

	/* a bad weekday mask; ret untouched on failure */
	p = sample_profile();
	sample_rules[1].has_weekday_mask = true;
	sample_rules[1].weekday_mask = 200;
	buf = enc_rules(&p, &n);
	memset(&d, 0x5a, sizeof(d));
	ck_assert_int_eq(bk_codec_rules_decode(buf, n, &d, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "rules[1].weekday_mask: expected an integer in 0..127");
	ck_assert_int_eq(d.service_profile_id[0], 0x5a);
	free(buf);
	/* too many recent entries */
	bk_mapb b;
	bk_val arr, rules;
	ck_assert(bk_val_arr(zone, BK_PROFILE_RECENT + 1, &arr));
	for (int i = 0; i <= BK_PROFILE_RECENT; i++)
		arr.via.array.ptr[i] = bk_val_int(i);
	ck_assert(bk_val_arr(zone, 0, &rules));
	ck_assert(bk_mapb_init(&b, zone, 4));
	ck_assert(bk_mapb_str(&b, "service_profile_id", "spr_1"));
	ck_assert(bk_mapb_str(&b, "owner_user_id", "usr_1"));
	ck_assert(bk_mapb_val(&b, "rules", rules));
	ck_assert(bk_mapb_val(&b, "recent", arr));
	bk_val v = bk_mapb_done(&b);
	buf = pack_val(&v, &n);
	ck_assert_int_eq(bk_codec_rules_decode(buf, n, &d, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "recent: more than 16 entries");
	free(buf);
}
END_TEST

/* --- hostile input --- */

typedef struct sample {
	char *buf;
	size_t n;
	int kind; /* 0 command, 1 record, 2 result, 3 rules */
} sample;

static int n_samples;
static sample samples[4];

static void samples_make(void)
{
	bk_command c = sample_command(zone);
	bk_record r = sample_record(zone);
	bk_result res = sample_result();
	bk_profile_rules p = sample_profile();
	samples[0].buf = enc_cmd(&c, &samples[0].n);
	samples[0].kind = 0;
	samples[1].buf = enc_record(&r, &samples[1].n);
	samples[1].kind = 1;
	samples[2].buf = enc_result(&res, &samples[2].n);
	samples[2].kind = 2;
	samples[3].buf = enc_rules(&p, &samples[3].n);
	samples[3].kind = 3;
	n_samples = 4;
}

static void samples_free(void)
{
	for (int i = 0; i < n_samples; i++)
		free(samples[i].buf);
	n_samples = 0;
}

/* True when a and b hold the same value (floats bit for bit, so NaN equals itself); the
 * strings of b must be NUL-terminated. */
static bool obj_same(const msgpack_object *a, const msgpack_object *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case MSGPACK_OBJECT_NIL:
		return true;
	case MSGPACK_OBJECT_BOOLEAN:
		return a->via.boolean == b->via.boolean;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return a->via.u64 == b->via.u64;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return a->via.i64 == b->via.i64;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: {
		uint64_t x, y;
		memcpy(&x, &a->via.f64, sizeof(x));
		memcpy(&y, &b->via.f64, sizeof(y));
		return x == y;
	}
	case MSGPACK_OBJECT_STR:
		return a->via.str.size == b->via.str.size &&
		       (a->via.str.size == 0 ||
			memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0) &&
		       b->via.str.ptr[b->via.str.size] == '\0';
	case MSGPACK_OBJECT_BIN:
		return a->via.bin.size == b->via.bin.size &&
		       (a->via.bin.size == 0 ||
			memcmp(a->via.bin.ptr, b->via.bin.ptr, a->via.bin.size) == 0);
	case MSGPACK_OBJECT_ARRAY:
		if (a->via.array.size != b->via.array.size)
			return false;
		for (uint32_t i = 0; i < a->via.array.size; i++)
			if (!obj_same(&a->via.array.ptr[i], &b->via.array.ptr[i]))
				return false;
		return true;
	case MSGPACK_OBJECT_MAP:
		if (a->via.map.size != b->via.map.size)
			return false;
		for (uint32_t i = 0; i < a->via.map.size; i++)
			if (!obj_same(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
			    !obj_same(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
				return false;
		return true;
	default:
		return false;
	}
}

/* True when some map in o repeats a key (checked pairwise). */
static bool obj_has_dup(const msgpack_object *o)
{
	if (o->type == MSGPACK_OBJECT_ARRAY) {
		for (uint32_t i = 0; i < o->via.array.size; i++)
			if (obj_has_dup(&o->via.array.ptr[i]))
				return true;
	} else if (o->type == MSGPACK_OBJECT_MAP) {
		const msgpack_object_kv *kv = o->via.map.ptr;
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			if (obj_has_dup(&kv[i].val))
				return true;
			for (uint32_t j = i + 1; j < o->via.map.size; j++)
				if (kv[i].key.via.str.size == kv[j].key.via.str.size &&
				    (kv[i].key.via.str.size == 0 ||
				     memcmp(kv[i].key.via.str.ptr, kv[j].key.via.str.ptr,
					    kv[i].key.via.str.size) == 0))
					return true;
		}
	}
	return false;
}

/* bk_codec_unpack against msgpack-c on bytes prescan accepted: msgpack_unpack must take
 * them whole; bk_codec_unpack (rc, v, err) must give the same value, or refuse exactly
 * when a map repeats a key. */
static void check_unpack_ref(const char *buf, size_t n, int rc, const bk_val *v, const char *err)
{
	msgpack_zone rz;
	ck_assert(msgpack_zone_init(&rz, 4096));
	msgpack_object o;
	size_t off = 0;
	ck_assert_int_eq(msgpack_unpack(buf, n, &off, &rz, &o), MSGPACK_UNPACK_SUCCESS);
	ck_assert_uint_eq(off, n);
	if (obj_has_dup(&o)) {
		ck_assert_int_eq(rc, -1);
		ck_assert_str_eq(err, "duplicate key in a map");
	} else {
		ck_assert_msg(rc == 0, "%s", err);
		ck_assert(obj_same(&o, v));
	}
	msgpack_zone_destroy(&rz);
}

/* Run every decoder on buf[0..n) (copied to an exact-size heap block). Returns how many
 * accepted it. Whatever prescan accepts, msgpack-c must unpack, to the value
 * bk_codec_unpack gives. */
static int decode_all(const char *buf, size_t n)
{
	char err[ERRSZ];
	char *copy = malloc(n ? n : 1);
	if (n)
		memcpy(copy, buf, n);
	int ok = 0;
	bk_command c;
	bk_record r;
	bk_result res;
	bk_profile_rules p;
	bk_val v;
	char why[ERRSZ] = "";
	if (bk_codec_prescan(copy, n, why, sizeof(why)) == 0) {
		int rc = bk_codec_unpack(copy, n, zone, &v, err, sizeof(err));
		ck_assert_msg(rc == 0 || strcmp(err, "duplicate key in a map") == 0, "%s", err);
		check_unpack_ref(copy, n, rc, &v, err);
	} else {
		ck_assert(why[0] != '\0');
	}
	if (bk_codec_command_decode(copy, n, false, false, zone, &c, err, sizeof(err)) == 0) {
		ok++;
		/* anything accepted re-encodes and decodes to the same bytes */
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		if (bk_codec_command_encode(&c, &sb) == 0) {
			bk_command c2;
			ck_assert_int_eq(bk_codec_command_decode(sb.data, sb.size, false, false,
								 zone, &c2, err, sizeof(err)),
					 0);
		}
		msgpack_sbuffer_destroy(&sb);
	}
	if (bk_codec_record_decode(copy, n, zone, &r, err, sizeof(err)) == 0) {
		ok++;
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		for (uint32_t i = 0; i < r.n; i++) {
			json_t *j = bk_event_to_json(&r.events[i], 0, 0);
			json_decref(j);
			ck_assert_int_eq(bk_codec_event_seal(&r.events[i], &sb), 0);
		}
		msgpack_sbuffer_destroy(&sb);
	}
	if (bk_codec_result_decode(copy, n, zone, &res, err, sizeof(err)) == 0) {
		ok++;
		json_decref(bk_result_to_json(&res));
	}
	if (bk_codec_rules_decode(copy, n, &p, err, sizeof(err)) == 0) {
		ok++;
		bk_profile_rules_clear(&p);
	}
	free(copy);
	return ok;
}

START_TEST(test_truncations)
{
	samples_make();
	for (int s = 0; s < n_samples; s++) {
		ck_assert_int_eq(decode_all(samples[s].buf, samples[s].n), 1);
		for (size_t k = 0; k < samples[s].n; k++) {
			char why[ERRSZ] = "";
			ck_assert_int_eq(bk_codec_prescan(samples[s].buf, k, why, sizeof(why)), -1);
			ck_assert_int_eq(decode_all(samples[s].buf, k), 0);
		}
		/* trailing garbage */
		char *more = malloc(samples[s].n + 1);
		memcpy(more, samples[s].buf, samples[s].n);
		more[samples[s].n] = (char)0xc0;
		char why[ERRSZ] = "";
		ck_assert_int_eq(bk_codec_prescan(more, samples[s].n + 1, why, sizeof(why)), -1);
		ck_assert_str_eq(why, "trailing bytes after the message");
		ck_assert_int_eq(decode_all(more, samples[s].n + 1), 0);
		free(more);
	}
	/* every prefix of the JSON command */
	size_t jn = strlen(sample_json);
	for (size_t k = 0; k < jn; k++) {
		char err[ERRSZ];
		bk_command c;
		ck_assert_int_eq(dec_cmd_exact(sample_json, k, true, false, &c, err), -1);
	}
	samples_free();
}
END_TEST

/* Byte strings that must be refused, with the reason prescan gives. */
#define R_COUNT "container declares more elements than bytes remain"
#define R_LEN	"string or binary longer than the bytes that remain"
#define R_UTF8	"invalid UTF-8 in a string"
#define R_NUL	"NUL byte in a string"
#define R_KEY	"map key is not a string"
#define R_EXT	"ext types are not accepted"
#define R_TRUNC "truncated message"
#define R_TRAIL "trailing bytes after the message"
#define H(s, why)                                                                                  \
	{                                                                                          \
		s, sizeof(s) - 1, why                                                              \
	}
static const struct {
	const char *bytes;
	size_t n;
	const char *why;
} hostile[] = {
    H("\xdd\xff\xff\xff\xff\xc0\xc0", R_COUNT),	  /* array32 of 2^32-1 */
    H("\xdf\xff\xff\xff\xff\xa1k\xc0", R_COUNT),  /* map32 of 2^32-1 */
    H("\xdc\xff\xff\xc0", R_COUNT),		  /* array16 */
    H("\xde\x00\x03\xa1k\xc0", R_COUNT),	  /* map16: 3 pairs, 3 bytes */
    H("\x82\xa1k\xc0", R_COUNT),		  /* fixmap */
    H("\x91", R_COUNT),				  /* nothing follows */
    H("\x81\xa1k\xdd\xff\xff\xff\xff", R_COUNT),  /* nested */
    H("\xdb\xff\xff\xff\xff\x61\x62\x63", R_LEN), /* str32 of 2^32-1 */
    H("\xc6\xff\xff\xff\xff\x61\x62\x63", R_LEN), /* bin32 */
    H("\xd9\x05\x61\x62\x63", R_LEN),		  /* str8 */
    H("\xa2\xc0\x80", R_UTF8),			  /* overlong NUL */
    H("\xa3\xe0\x80\xaf", R_UTF8),		  /* overlong '/' */
    H("\xa3\xed\xa0\x80", R_UTF8),		  /* surrogate */
    H("\xa4\xf4\x90\x80\x80", R_UTF8),		  /* > U+10FFFF */
    H("\xa4\xf0\x8f\xbf\xbf", R_UTF8),		  /* overlong 4-byte */
    H("\xa1\xf5", R_UTF8),			  /* never a lead byte */
    H("\xa1\x80", R_UTF8),			  /* lone continuation */
    H("\xa2\xe2\x82", R_UTF8),			  /* cut sequence */
    H("\xa2\x61\xff", R_UTF8),
    H("\x81\xa2\xc3\x28\xc0", R_UTF8), /* in a key */
    H("\xa3\x61\0\x62", R_NUL),
    H("\x81\xa2k\0\xc0", R_NUL), /* in a key */
    H("\x81\x01\xc0", R_KEY),
    H("\x81\xc0\xc0", R_KEY),
    H("\x81\x80\xc0", R_KEY),
    H("\x81\xc4\x01k\xc0", R_KEY), /* bin key */
    H("\xd4\x01\x00", R_EXT),	   /* fixext1 */
    H("\xc7\x01\x05\x00", R_EXT),  /* ext8 */
    H("\xd8\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
      R_EXT), /* fixext16 */
    H("\xc1", "reserved byte 0xc1"),
    H("\xc0\xc0", R_TRAIL),
    H("\x90\x90", R_TRAIL),
    H("", "empty message"),
    H("\xcf\x00\x00", R_TRUNC),
    H("\xcb\x00", R_TRUNC),
    H("\xda\x00", R_TRUNC),
    H("\x92\xc0\xcd\x01", R_TRUNC),
};
#undef H

START_TEST(test_hostile_corpus)
{
	char why[ERRSZ] = "";
	char *copy = malloc(hostile[_i].n ? hostile[_i].n : 1);
	memcpy(copy, hostile[_i].bytes, hostile[_i].n);
	ck_assert_int_eq(bk_codec_prescan(copy, hostile[_i].n, why, sizeof(why)), -1);
	ck_assert_msg(strcmp(why, hostile[_i].why) == 0, "case %d: \"%s\"", _i, why);
	ck_assert_int_eq(decode_all(copy, hostile[_i].n), 0);
	free(copy);
}
END_TEST

START_TEST(test_prescan_accepts)
{
	/* valid 2, 3 and 4-byte UTF-8, the edges of each range, and every scalar form */
	static const char ok[] = "\xa2\xc2\x80"
				 "\xa2\xdf\xbf"
				 "\xa3\xe0\xa0\x80"
				 "\xa3\xed\x9f\xbf"
				 "\xa3\xee\x80\x80"
				 "\xa4\xf0\x90\x80\x80"
				 "\xa4\xf4\x8f\xbf\xbf"
				 "\xc0\xc2\xc3"
				 "\xcc\xff\xcd\xff\xff\xce\xff\xff\xff\xff"
				 "\xcf\xff\xff\xff\xff\xff\xff\xff\xff"
				 "\xd0\x80\xd1\x80\x00\xd2\x80\x00\x00\x00"
				 "\xd3\x80\x00\x00\x00\x00\x00\x00\x00"
				 "\xca\x3f\x80\x00\x00"
				 "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00"
				 "\xc4\x00\xc5\x00\x01z\xc6\x00\x00\x00\x00"
				 "\xd9\x00\xda\x00\x00";
	char why[ERRSZ] = "";
	/* 7 strings, nil, 2 bools, 8 integers, 2 floats, 3 bins, 2 strings = 25 elements */
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	ck_assert_int_eq(msgpack_pack_array(&pk, 25), 0);
	ck_assert_int_eq(msgpack_sbuffer_write(&sb, ok, sizeof(ok) - 1), 0);
	int rc = bk_codec_prescan(sb.data, sb.size, why, sizeof(why));
	ck_assert_msg(rc == 0, "%s", why);
	bk_val v;
	char err[ERRSZ];
	ck_assert_msg(bk_codec_unpack(sb.data, sb.size, zone, &v, err, sizeof(err)) == 0, "%s",
		      err);
	check_unpack_ref(sb.data, sb.size, 0, &v, err);
	ck_assert_int_eq(v.via.array.size, 25);
	ck_assert_int_eq(v.via.array.ptr[24].type, MSGPACK_OBJECT_STR);
	/* decoded strings are NUL-terminated in place */
	ck_assert_str_eq(v.via.array.ptr[1].via.str.ptr, "\xdf\xbf");
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* A str8 message of the n bytes s (n < 256). */
static size_t str8_msg(unsigned char *out, const unsigned char *s, size_t n)
{
	out[0] = 0xd9;
	out[1] = (unsigned char)n;
	memcpy(out + 2, s, n);
	return n + 2;
}

/* bk_codec_prescan on an exact-size heap copy (so that AddressSanitizer sees a read past
 * the end). */
static int prescan_heap(const unsigned char *b, size_t n, char *err, size_t errsz)
{
	unsigned char *c = malloc(n);
	ck_assert_ptr_nonnull(c);
	memcpy(c, b, n);
	int rc = bk_codec_prescan(c, n, err, errsz);
	free(c);
	return rc;
}

/* Prescan's UTF-8 check skips ASCII 8 bytes at a time: a bad byte, a NUL or a multi-byte
 * character at every offset around the 8-byte steps, in strings of every length near
 * them, must be judged as byte by byte. */
START_TEST(test_utf8_boundaries)
{
	unsigned char s[40], msg[64];
	char why[ERRSZ] = "";
	char err[ERRSZ];
	bk_val v;
	for (size_t len = 1; len <= 33; len++) {
		memset(s, 'a', len);
		size_t n = str8_msg(msg, s, len);
		ck_assert_int_eq(prescan_heap(msg, n, why, sizeof(why)), 0);
		ck_assert_int_eq(bk_codec_unpack(msg, n, zone, &v, err, sizeof(err)), 0);
		check_unpack_ref((const char *)msg, n, 0, &v, err);
		for (size_t k = 0; k < len; k++) {
			static const struct {
				unsigned char b;
				const char *why;
			} bad[] = {{0x00, R_NUL},  {0x80, R_UTF8}, {0xff, R_UTF8},
				   {0xc0, R_UTF8}, {0xf5, R_UTF8}, {0x7f, NULL}};
			for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
				memset(s, 'a', len);
				s[k] = bad[j].b;
				n = str8_msg(msg, s, len);
				int rc = prescan_heap(msg, n, why, sizeof(why));
				if (bad[j].why == NULL) {
					ck_assert_int_eq(rc, 0);
				} else {
					ck_assert_msg(rc == -1 && strcmp(why, bad[j].why) == 0,
						      "len %zu, byte 0x%02x at %zu", len, bad[j].b,
						      k);
					ck_assert_int_eq(decode_all((const char *)msg, n), 0);
				}
			}
		}
	}
	/* a 2, 3 or 4-byte character at every offset of a 24-byte string: whole it is
	 * valid; cut (its last byte replaced by ASCII) or lead byte alone it is not */
	static const char *chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x93\xb7",
				      "\xed\x9f\xbf"};
	for (size_t c = 0; c < sizeof(chars) / sizeof(chars[0]); c++) {
		size_t cl = strlen(chars[c]);
		for (size_t k = 0; k + cl <= 24; k++) {
			memset(s, 'b', 24);
			memcpy(s + k, chars[c], cl);
			size_t n = str8_msg(msg, s, 24);
			ck_assert_msg(prescan_heap(msg, n, why, sizeof(why)) == 0,
				      "char %zu at %zu", c, k);
			ck_assert_int_eq(bk_codec_unpack(msg, n, zone, &v, err, sizeof(err)), 0);
			check_unpack_ref((const char *)msg, n, 0, &v, err);
			s[k + cl - 1] = 'b';
			n = str8_msg(msg, s, 24);
			ck_assert_int_eq(prescan_heap(msg, n, why, sizeof(why)), -1);
			ck_assert_str_eq(why, R_UTF8);
			/* the string ends inside the character */
			n = str8_msg(msg, s, k + cl - 1);
			ck_assert_int_eq(prescan_heap(msg, n, why, sizeof(why)), -1);
			ck_assert_str_eq(why, R_UTF8);
		}
	}
	/* short strings followed by other bytes (NULs, high bytes: the check reads a whole
	 * word and must ignore what follows the string) */
	for (size_t len = 1; len < 8; len++) {
		for (size_t k = 0; k <= len; k++) {
			for (int fill = 0; fill < 3; fill++) {
				static const unsigned char fills[] = {0x00, 0xff, 0x80};
				unsigned char m[32];
				size_t n = 0;
				m[n++] = 0x92;
				m[n++] = (unsigned char)(0xa0 | len);
				memset(m + n, 'd', len);
				if (k < len)
					m[n + k] = fills[fill]; /* k == len: the string is valid */
				n += len;
				m[n++] = 0xc4; /* bin8 of 9 bytes */
				m[n++] = 9;
				memset(m + n, fills[fill], 9);
				n += 9;
				int rc = prescan_heap(m, n, why, sizeof(why));
				if (k == len) {
					ck_assert_msg(rc == 0, "len %zu fill %d: %s", len, fill,
						      why);
					ck_assert_int_eq(
					    bk_codec_unpack(m, n, zone, &v, err, sizeof(err)), 0);
					check_unpack_ref((const char *)m, n, 0, &v, err);
				} else {
					ck_assert_int_eq(rc, -1);
					ck_assert_str_eq(why, fill == 0 ? R_NUL : R_UTF8);
				}
			}
		}
	}
	/* surrogates and overlongs right after 8 and 16 ASCII bytes */
	static const char *bads[] = {"\xed\xa0\x80", "\xe0\x80\xaf", "\xf4\x90\x80\x80",
				     "\xf0\x8f\xbf\xbf", "\xc1\xbf"};
	for (size_t c = 0; c < sizeof(bads) / sizeof(bads[0]); c++) {
		for (size_t k = 7; k <= 17; k++) {
			size_t cl = strlen(bads[c]);
			memset(s, 'c', sizeof(s));
			memcpy(s + k, bads[c], cl);
			size_t n = str8_msg(msg, s, 30);
			ck_assert_int_eq(prescan_heap(msg, n, why, sizeof(why)), -1);
			ck_assert_str_eq(why, R_UTF8);
		}
	}
}
END_TEST

/* Every scalar form with edge values unpacks as msgpack_unpack does (type and value):
 * signed forms holding non-negative values, floats with NaN and -0, fixints. */
START_TEST(test_scalars_match_msgpack)
{
	static const char *const one[] = {"\x00",
					  "\x7f",
					  "\xe0",
					  "\xff",
					  "\xc0",
					  "\xc2",
					  "\xc3",
					  "\xcc\x00",
					  "\xcc\xff",
					  "\xcd\x00\x00",
					  "\xcd\xff\xff",
					  "\xce\x00\x00\x00\x00",
					  "\xce\xff\xff\xff\xff",
					  "\xcf\x00\x00\x00\x00\x00\x00\x00\x00",
					  "\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
					  "\xd0\x00",
					  "\xd0\x7f",
					  "\xd0\x80",
					  "\xd0\xff",
					  "\xd1\x00\x00",
					  "\xd1\x7f\xff",
					  "\xd1\x80\x00",
					  "\xd1\xff\xff",
					  "\xd2\x00\x00\x00\x00",
					  "\xd2\x7f\xff\xff\xff",
					  "\xd2\x80\x00\x00\x00",
					  "\xd2\xff\xff\xff\xff",
					  "\xd3\x00\x00\x00\x00\x00\x00\x00\x00",
					  "\xd3\x7f\xff\xff\xff\xff\xff\xff\xff",
					  "\xd3\x80\x00\x00\x00\x00\x00\x00\x00",
					  "\xd3\xff\xff\xff\xff\xff\xff\xff\xff",
					  "\xca\x00\x00\x00\x00",
					  "\xca\x80\x00\x00\x00",
					  "\xca\x7f\xc0\x00\x01",
					  "\xca\xff\x80\x00\x00",
					  "\xca\x00\x00\x00\x01",
					  "\xcb\x00\x00\x00\x00\x00\x00\x00\x00",
					  "\xcb\x80\x00\x00\x00\x00\x00\x00\x00",
					  "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x01",
					  "\xcb\xff\xf0\x00\x00\x00\x00\x00\x00",
					  "\xc4\x00",
					  "\xc4\x01\x00",
					  "\xa0",
					  "\xd9\x00",
					  "\x90",
					  "\x80",
					  "\xdc\x00\x00",
					  "\xde\x00\x00"};
	/* the lengths: the literals hold NUL bytes, so strlen will not do */
	static const size_t lens[] = {1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 3, 5, 5, 9, 9, 2,
				      2, 2, 2, 3, 3, 3, 3, 5, 5, 5, 5, 9, 9, 9, 9, 5,
				      5, 5, 5, 5, 9, 9, 9, 9, 2, 3, 1, 2, 1, 1, 3, 3};
	ck_assert_uint_eq(sizeof(one) / sizeof(one[0]), sizeof(lens) / sizeof(lens[0]));
	char err[ERRSZ];
	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		/* alone, and as the value of a map inside an array */
		unsigned char m[32];
		size_t n = 0;
		m[n++] = 0x91;
		m[n++] = 0x81;
		m[n++] = 0xa1;
		m[n++] = 'k';
		memcpy(m + n, one[i], lens[i]);
		n += lens[i];
		bk_val v;
		ck_assert_msg(bk_codec_unpack(one[i], lens[i], zone, &v, err, sizeof(err)) == 0,
			      "case %zu: %s", i, err);
		check_unpack_ref(one[i], lens[i], 0, &v, err);
		ck_assert_msg(bk_codec_unpack(m, n, zone, &v, err, sizeof(err)) == 0,
			      "case %zu: %s", i, err);
		check_unpack_ref((const char *)m, n, 0, &v, err);
	}
}
END_TEST

/* Nested arrays: depth containers. */
static char *nested(int depth, size_t *ret_n)
{
	char *b = malloc((size_t)depth + 1);
	memset(b, 0x91, (size_t)depth);
	b[depth - 1] = (char)0x90; /* innermost is empty */
	*ret_n = (size_t)depth;
	return b;
}

START_TEST(test_depth_and_size)
{
	char why[ERRSZ] = "";
	char err[ERRSZ];
	size_t n;
	bk_val v;
	char *b = nested(BK_MAX_DEPTH, &n);
	ck_assert_int_eq(bk_codec_prescan(b, n, why, sizeof(why)), 0);
	ck_assert_int_eq(bk_codec_unpack(b, n, zone, &v, err, sizeof(err)), 0);
	free(b);
	b = nested(BK_MAX_DEPTH + 1, &n);
	ck_assert_int_eq(bk_codec_prescan(b, n, why, sizeof(why)), -1);
	ck_assert_str_eq(why, "nesting deeper than the limit");
	ck_assert_int_eq(decode_all(b, n), 0);
	free(b);
	b = nested(100000, &n);
	ck_assert_int_eq(bk_codec_prescan(b, n, why, sizeof(why)), -1);
	ck_assert_int_eq(decode_all(b, n), 0);
	free(b);

	/* a command whose payload nests too deep */
	bk_val inner = bk_val_int(1);
	for (int i = 0; i < BK_MAX_DEPTH - 1; i++) {
		bk_mapb m;
		ck_assert(bk_mapb_init(&m, zone, 1));
		ck_assert(bk_mapb_val(&m, "k", inner));
		inner = bk_mapb_done(&m);
	}
	bk_command c = sample_command(zone), d;
	c.payload = inner; /* envelope + 15 maps = 16 levels */
	char *buf = enc_cmd(&c, &n);
	ck_assert_msg(bk_codec_command_decode(buf, n, false, false, zone, &d, err, sizeof(err)) ==
			  0,
		      "%s", err);
	free(buf);
	bk_mapb m;
	ck_assert(bk_mapb_init(&m, zone, 1));
	ck_assert(bk_mapb_val(&m, "k", inner));
	c.payload = bk_mapb_done(&m);
	buf = enc_cmd(&c, &n);
	ck_assert_int_eq(bk_codec_command_decode(buf, n, false, false, zone, &d, err, sizeof(err)),
			 -1);
	ck_assert_str_eq(err, "nesting deeper than the limit");
	/* the same command as JSON is refused as well */
	json_t *o = bk_command_to_json(&c);
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	ck_assert_int_eq(dec_cmd_exact(text, strlen(text), true, false, &d, err), -1);
	ck_assert(strstr(err, "nesting deeper") != NULL);
	free(text);
	free(buf);

	/* oversize: a payload with a 1 MiB binary */
	size_t big = BK_MAX_MESSAGE;
	char *blob = calloc(1, big);
	bk_mapb pm;
	ck_assert(bk_mapb_init(&pm, zone, 1));
	bk_val bin;
	bin.type = MSGPACK_OBJECT_BIN;
	bin.via.bin.ptr = blob;
	bin.via.bin.size = (uint32_t)big;
	ck_assert(bk_mapb_val(&pm, "blob", bin));
	c.payload = bk_mapb_done(&pm);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(bk_codec_command_encode(&c, &sb), -1); /* the encoder refuses too */
	ck_assert_int_eq(sb.size, 0);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bk_val whole = cmd_with(F_PAYLOAD, W_ABSENT);
	ck_assert_int_eq(whole.via.map.size, 6);
	bk_mapb wb;
	ck_assert(bk_mapb_init(&wb, zone, 7));
	for (uint32_t i = 0; i < 6; i++)
		ck_assert(bk_mapb_val(&wb, whole.via.map.ptr[i].key.via.str.ptr,
				      whole.via.map.ptr[i].val));
	ck_assert(bk_mapb_val(&wb, "payload", c.payload));
	whole = bk_mapb_done(&wb);
	ck_assert_int_eq(msgpack_pack_object(&pk, whole), 0);
	ck_assert(sb.size > BK_MAX_MESSAGE);
	ck_assert_int_eq(bk_codec_prescan(sb.data, sb.size, why, sizeof(why)), -1);
	ck_assert_str_eq(why, "message larger than BK_MAX_MESSAGE");
	ck_assert_int_eq(decode_all(sb.data, sb.size), 0);
	msgpack_sbuffer_destroy(&sb);
	free(blob);
}
END_TEST

START_TEST(test_duplicate_keys)
{
	char err[ERRSZ];
	bk_val v;
	/* small map: pairwise check */
	static const char small[] = "\x82\xa1k\x01\xa1k\x02";
	ck_assert_int_eq(bk_codec_prescan(small, sizeof(small) - 1, NULL, 0), 0);
	ck_assert_int_eq(bk_codec_unpack(small, sizeof(small) - 1, zone, &v, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "duplicate key in a map");
	/* large map: sorted check */
	bk_mapb b;
	ck_assert(bk_mapb_init(&b, zone, 100));
	for (int i = 0; i < 100; i++) {
		char k[16];
		snprintf(k, sizeof(k), "key%d", i == 77 ? 13 : i);
		ck_assert(bk_mapb_int(&b, k, i));
	}
	bk_val m = bk_mapb_done(&b);
	size_t n;
	char *buf = pack_val(&m, &n);
	ck_assert_int_eq(bk_codec_unpack(buf, n, zone, &v, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "duplicate key in a map");
	free(buf);
	b.n = 77;
	ck_assert(bk_mapb_int(&b, "key77", 77));
	b.n = 100;
	m = bk_mapb_done(&b);
	buf = pack_val(&m, &n);
	ck_assert_int_eq(bk_codec_unpack(buf, n, zone, &v, err, sizeof(err)), 0);
	free(buf);
	/* maps of 2..40 keys (pairwise by signature up to 32, sorted above): keys that share
	 * length, first, middle and last byte are still different keys; a repeat of any
	 * key, at either end, is refused */
	for (int size = 2; size <= 40; size++) {
		for (int rep = -1; rep < size; rep++) {
			ck_assert(bk_mapb_init(&b, zone, (uint32_t)size));
			for (int i = 0; i < size; i++) {
				char k[16];
				int id = i == size - 1 && rep >= 0 ? rep : i;
				snprintf(k, sizeof(k), "a%c%cz", 'A' + id % 26, 'a' + id / 26);
				ck_assert(bk_mapb_int(&b, k, i));
			}
			m = bk_mapb_done(&b);
			buf = pack_val(&m, &n);
			int rc = bk_codec_unpack(buf, n, zone, &v, err, sizeof(err));
			if (rep < 0 || rep == size - 1) {
				ck_assert_msg(rc == 0, "size %d: %s", size, err);
			} else {
				ck_assert_int_eq(rc, -1);
				ck_assert_str_eq(err, "duplicate key in a map");
			}
			free(buf);
		}
	}
	/* "k" and "k\xc3\xa9" are different keys */
	static const char pre[] = "\x82\xa1k\x01\xa3k\xc3\xa9\x02";
	ck_assert_int_eq(bk_codec_unpack(pre, sizeof(pre) - 1, zone, &v, err, sizeof(err)), 0);
}
END_TEST

/* xorshift64*: deterministic fuzz. */
static uint64_t rng_state;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static const unsigned char interesting[] = {
    0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc4, 0xc6, 0xc7, 0xca, 0xcb,
    0xcf, 0xd3, 0xd4, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff, 0xed, 0xf4, 0xf5, 0xc3};

/* Mutate buf[0..n) (capacity cap) in place; returns the new length. */
static size_t mutate(unsigned char *b, size_t n, size_t cap)
{
	int k = 1 + (int)(rnd() % 4);
	for (int m = 0; m < k; m++) {
		size_t pos = n ? rnd() % n : 0;
		switch (rnd() % 8) {
		case 0: /* random byte */
			if (n)
				b[pos] = (unsigned char)rnd();
			break;
		case 1: /* interesting byte */
			if (n)
				b[pos] = interesting[rnd() % sizeof(interesting)];
			break;
		case 2: /* bit flip */
			if (n)
				b[pos] ^= (unsigned char)(1u << (rnd() % 8));
			break;
		case 3: /* insert */
			if (n < cap) {
				memmove(b + pos + 1, b + pos, n - pos);
				b[pos] = interesting[rnd() % sizeof(interesting)];
				n++;
			}
			break;
		case 4: /* delete */
			if (n > 1) {
				memmove(b + pos, b + pos + 1, n - pos - 1);
				n--;
			}
			break;
		case 5: /* truncate */
			n = pos;
			break;
		case 6: /* 0xff run: huge lengths */
			for (size_t i = pos; i < n && i < pos + 4; i++)
				b[i] = 0xff;
			break;
		default: /* duplicate a range */
			if (n > 0 && n < cap) {
				size_t len = 1 + rnd() % 16;
				if (len > cap - n)
					len = cap - n;
				if (len > n - pos)
					len = n - pos;
				memmove(b + pos + len, b + pos, n - pos);
				n += len;
			}
			break;
		}
	}
	return n;
}

START_TEST(test_fuzz)
{
	samples_make();
	rng_state = 0x9E3779B97F4A7C15ULL;
	int iters = 200000;
	const char *env = getenv("BK_FUZZ_ITERS");
	if (env)
		iters = atoi(env);
	unsigned char work[4096];
	int accepted = 0;
	for (int it = 0; it < iters; it++) {
		const sample *s = &samples[rnd() % (uint64_t)n_samples];
		ck_assert(s->n <= sizeof(work));
		memcpy(work, s->buf, s->n);
		size_t n = mutate(work, s->n, sizeof(work));
		accepted += decode_all((const char *)work, n);
		if (it % 1024 == 0)
			msgpack_zone_clear(zone);
	}
	/* JSON commands too */
	size_t jn = strlen(sample_json);
	for (int it = 0; it < iters / 4; it++) {
		char err[ERRSZ];
		bk_command c;
		memcpy(work, sample_json, jn);
		size_t n = mutate(work, jn, sizeof(work));
		if (dec_cmd_exact(work, n, true, false, &c, err) == 0)
			accepted++;
		if (it % 1024 == 0)
			msgpack_zone_clear(zone);
	}
	ck_assert_int_gt(accepted, 0); /* some mutations stay valid */
	samples_free();
}
END_TEST

/* --- the record decoder's contract (bk_codec.h): what it accepts, evolve can apply --- */

/* The k-th map entry, depth first, in v (maps inside arrays included); NULL past the
 * last. *k counts down. */
static msgpack_object_kv *nth_kv(msgpack_object *v, uint32_t *k)
{
	if (v->type == MSGPACK_OBJECT_MAP) {
		for (uint32_t i = 0; i < v->via.map.size; i++) {
			msgpack_object_kv *kv = &v->via.map.ptr[i];
			if ((*k)-- == 0)
				return kv;
			msgpack_object_kv *r = nth_kv(&kv->val, k);
			if (r != NULL)
				return r;
		}
	} else if (v->type == MSGPACK_OBJECT_ARRAY) {
		for (uint32_t i = 0; i < v->via.array.size; i++) {
			msgpack_object_kv *r = nth_kv(&v->via.array.ptr[i], k);
			if (r != NULL)
				return r;
		}
	}
	return NULL;
}

/* The value under key in map (msgpack-c objects: strings are not NUL-terminated). */
static msgpack_object *obj_get(msgpack_object *map, const char *key)
{
	size_t n = strlen(key);
	if (map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		msgpack_object *k = &map->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
		    memcmp(k->via.str.ptr, key, n) == 0)
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

typedef struct contract_run {
	const char *file;
	bk_engine *rest;    /* reads every record as the processor's restore does */
	long accepted;	    /* mutated records the decoder accepted (evolve then applied) */
	long rejected;	    /* mutated records the decoder refused */
	msgpack_sbuffer sb; /* scratch */
} contract_run;

enum { MUT_REMOVE, MUT_BOOL, MUT__COUNT };

/*
 * Every events record the fixtures produce decodes; and for each of its events, every
 * payload field at any depth removed (or turned into a boolean): either the decoder
 * refuses the record, or evolve applies the event to the order as it stood (so the
 * decoder's contract holds everything evolve needs). Then the record itself is read by
 * the restore engine.
 */
static int contract_cb(void *opaque, const bk_record *r, const void *bytes, size_t n)
{
	contract_run *c = opaque;
	char err[256];
	msgpack_zone z;
	bk_record d;
	(void)r;
	ck_assert(msgpack_zone_init(&z, 4096));
	ck_assert_msg(bk_codec_record_decode(bytes, n, &z, &d, err, sizeof(err)) == 0,
		      "%s: a record the processor wrote does not decode: %s", c->file, err);
	const bk_order *before = bk_engine_order(c->rest, d.order_id);
	for (uint32_t i = 0; i < d.n; i++) {
		for (int op = 0; op < MUT__COUNT; op++) {
			for (uint32_t k = 0;; k++) {
				msgpack_zone mz;
				msgpack_object root;
				size_t off = 0;
				ck_assert(msgpack_zone_init(&mz, 4096));
				ck_assert_int_eq(msgpack_unpack(bytes, n, &off, &mz, &root),
						 MSGPACK_UNPACK_SUCCESS);
				msgpack_object *evs = obj_get(&root, "events");
				msgpack_object *pay = obj_get(&evs->via.array.ptr[i], "payload");
				uint32_t left = k;
				msgpack_object_kv *kv = nth_kv(pay, &left);
				if (kv == NULL) {
					msgpack_zone_destroy(&mz);
					break;
				}
				char key[64];
				snprintf(key, sizeof(key), "%.*s", (int)kv->key.via.str.size,
					 kv->key.via.str.ptr);
				if (op == MUT_REMOVE) {
					kv->key.via.str.ptr = "zz_removed";
					kv->key.via.str.size = 10;
				} else {
					kv->val.type = MSGPACK_OBJECT_BOOLEAN;
					kv->val.via.boolean = true;
				}
				msgpack_packer pk;
				msgpack_sbuffer_clear(&c->sb);
				msgpack_packer_init(&pk, &c->sb, msgpack_sbuffer_write);
				ck_assert_int_eq(msgpack_pack_object(&pk, root), 0);
				bk_record m;
				if (bk_codec_record_decode(c->sb.data, c->sb.size, &mz, &m, err,
							   sizeof(err)) < 0) {
					c->rejected++;
					msgpack_zone_destroy(&mz);
					continue;
				}
				c->accepted++;
				bk_order *o =
				    before ? bk_order_clone(before) : bk_order_new(m.order_id);
				ck_assert_ptr_nonnull(o);
				for (uint32_t j = 0; j <= i; j++) {
					char sub[64];
					ck_assert_msg(
					    bk_evolve(o, &m.events[j], err, sizeof(err)) == 0,
					    "%s: %s with payload field %s %s: decoded, but "
					    "evolve refused it: %s",
					    c->file, bk_event_subtype(&m.events[j], sub, 64), key,
					    op == MUT_REMOVE ? "removed" : "a boolean", err);
				}
				bk_order_free(o);
				msgpack_zone_destroy(&mz);
			}
		}
	}
	bk_chain_verdict v[BK_MAX_EVENTS];
	ck_assert_msg(bk_engine_read(c->rest, &d, v, err, sizeof(err)) == 0, "%s: %s", c->file,
		      err);
	for (uint32_t i = 0; i < d.n; i++)
		ck_assert_int_eq(v[i], BK_CHAIN_NEXT);
	msgpack_zone_destroy(&z);
	return 0;
}

START_TEST(test_record_contract_fixtures)
{
	DIR *dir = opendir(SRCDIR "/fixtures");
	ck_assert_ptr_nonnull(dir);
	struct dirent *de;
	int files = 0;
	long accepted = 0, rejected = 0;
	while ((de = readdir(dir)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len < 7 || strcmp(de->d_name + len - 6, ".jsonl") != 0)
			continue;
		char path[1024], err[256];
		snprintf(path, sizeof(path), "%s/fixtures/%s", SRCDIR, de->d_name);
		bk_engine *live = bk_engine_new();
		contract_run c = {.file = de->d_name, .rest = bk_engine_new()};
		msgpack_sbuffer_init(&c.sb);
		json_t *fails = json_array();
		ck_assert_msg(fx_run_file_cb(live, path, fails, contract_cb, &c, err, sizeof(err)) >
				  0,
			      "%s: %s", path, err);
		/* the restore engine, fed the records, holds what the writer holds */
		json_t *a = fx_engine_summary(live), *b = fx_engine_summary(c.rest);
		ck_assert_msg(json_equal(a, b), "%s: restored state differs", de->d_name);
		json_decref(a);
		json_decref(b);
		json_decref(fails);
		accepted += c.accepted;
		rejected += c.rejected;
		msgpack_sbuffer_destroy(&c.sb);
		bk_engine_free(c.rest);
		bk_engine_free(live);
		files++;
	}
	closedir(dir);
	ck_assert_int_gt(files, 10);
	/* both ways taken: optional fields removed decode, required ones do not */
	ck_assert_int_gt(accepted, 100);
	ck_assert_int_gt(rejected, 100);
}
END_TEST

/* --- holes the record decoder closes (issue #10 item 7), one case each --- */

enum { ED_DEL, ED_STR, ED_INT, ED_ADD_STR, ED_ADD_ARR0 };
typedef struct rec_edit {
	const char *path; /* dot-separated keys and array indexes from the record's root */
	int op;
	const char *s;
	int64_t i;
} rec_edit;

/* The object at path (every component but the last) and the last component. */
static msgpack_object *walk(msgpack_object *root, const char *path, char last[64])
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	msgpack_object *o = root;
	char *save = NULL, *tok = strtok_r(buf, ".", &save), *next;
	for (; tok != NULL; tok = next) {
		next = strtok_r(NULL, ".", &save);
		if (next == NULL) {
			snprintf(last, 64, "%s", tok);
			return o;
		}
		if (o->type == MSGPACK_OBJECT_ARRAY)
			o = &o->via.array.ptr[atoi(tok)];
		else
			o = obj_get(o, tok);
		ck_assert_msg(o != NULL, "%s: no %s", path, tok);
	}
	return NULL;
}

static void apply_edit(msgpack_object *root, msgpack_zone *z, const rec_edit *ed)
{
	char key[64];
	msgpack_object *m = walk(root, ed->path, key);
	ck_assert_ptr_nonnull(m);
	if (m->type == MSGPACK_OBJECT_NIL) { /* a nil payload: an empty map to add to */
		m->type = MSGPACK_OBJECT_MAP;
		m->via.map.size = 0;
		m->via.map.ptr = NULL;
	}
	ck_assert_int_eq(m->type, MSGPACK_OBJECT_MAP);
	if (ed->op == ED_ADD_STR || ed->op == ED_ADD_ARR0) {
		uint32_t n = m->via.map.size;
		msgpack_object_kv *kv = msgpack_zone_malloc(z, (n + 1) * sizeof(*kv));
		ck_assert_ptr_nonnull(kv);
		if (n > 0)
			memcpy(kv, m->via.map.ptr, n * sizeof(*kv));
		kv[n].key.type = kv[n].val.type = MSGPACK_OBJECT_STR;
		kv[n].key.via.str.ptr = ed->path + strlen(ed->path) - strlen(key);
		kv[n].key.via.str.size = (uint32_t)strlen(key);
		if (ed->op == ED_ADD_ARR0) {
			kv[n].val.type = MSGPACK_OBJECT_ARRAY;
			kv[n].val.via.array.size = 0;
			kv[n].val.via.array.ptr = NULL;
		} else {
			kv[n].val.via.str.ptr = ed->s;
			kv[n].val.via.str.size = (uint32_t)strlen(ed->s);
		}
		m->via.map.ptr = kv;
		m->via.map.size = n + 1;
		return;
	}
	msgpack_object *v = obj_get(m, key);
	ck_assert_msg(v != NULL, "%s: no such field", ed->path);
	msgpack_object_kv *kv = (msgpack_object_kv *)((char *)v - offsetof(msgpack_object_kv, val));
	switch (ed->op) {
	case ED_DEL:
		kv->key.via.str.ptr = "zz_removed";
		kv->key.via.str.size = 10;
		break;
	case ED_STR:
		v->type = MSGPACK_OBJECT_STR;
		v->via.str.ptr = ed->s;
		v->via.str.size = (uint32_t)strlen(ed->s);
		break;
	default:
		if (ed->i >= 0) {
			v->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
			v->via.u64 = (uint64_t)ed->i;
		} else {
			v->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
			v->via.i64 = ed->i;
		}
	}
}

static const struct hole_case {
	const char *what;
	rec_edit ed[3];	  /* up to three edits; path NULL ends */
	const char *want; /* prefix of the decoder's complaint; NULL: accepted */
} hole_cases[] = {
    {"an event without command_id (evolve did strcmp(last, NULL))",
     {{"events.0.command_id", ED_DEL, NULL, 0}},
     "events[0].command_id: is required"},
    {"an event with a nil command_id",
     {{"events.1.command_id", ED_STR, "", 0}},
     "events[1].command_id: expected an id"},
    {"a record without command_id", {{"command_id", ED_DEL, NULL, 0}}, "command_id: is required"},
    {"a kind that is not its subtype's",
     {{"events.0.kind", ED_STR, "payment", 0}},
     "events[0].kind: order.created events are of kind system"},
    {"a seq past BK_RECORD_SEQ_MAX",
     {{"events.0.seq", ED_INT, NULL, INT64_C(2147483648)}},
     "events[0].seq: expected a positive integer up to 2^31-1"},
    {"a created_at no RFC 3339 text can write",
     {{"events.0.created_at", ED_INT, NULL, INT64_MAX}},
     "events[0].created_at: timestamp out of range"},
    {"order.created without buyer_user_id",
     {{"events.0.payload.buyer_user_id", ED_DEL, NULL, 0}},
     "events[0].payload.buyer_user_id: is required"},
    {"order.created with a buyer that is not an id",
     {{"events.0.payload.buyer_user_id", ED_STR, "usr buyer", 0}},
     "events[0].payload.buyer_user_id: expected an id"},
    {"a line item without total_cents",
     {{"events.0.payload.line_items.0.total_cents", ED_DEL, NULL, 0}},
     "events[0].payload.line_items[0].total_cents: is required"},
    {"a line item qty beyond the schema's int",
     {{"events.0.payload.line_items.0.qty", ED_INT, NULL, INT64_C(1) << 40}},
     "events[0].payload.line_items[0].qty: expected an integer within"},
    {"totals with cents beyond the schema's int",
     {{"events.0.payload.totals.tax_cents", ED_INT, NULL, INT64_C(-2147483649)}},
     "events[0].payload.totals.tax_cents: expected an integer within"},
    {"a start_ts that is not a time",
     {{"events.0.payload.start_ts", ED_STR, "tomorrow", 0}},
     "events[0].payload.start_ts: expected an RFC 3339 timestamp"},
    {"a location without kind",
     {{"events.0.payload.location.kind", ED_DEL, NULL, 0}},
     "events[0].payload.location.kind: is required"},
    {"a policy that is not a map",
     {{"events.0.payload.policy", ED_STR, "flexible", 0}},
     "events[0].payload.policy: expected a map"},
    {"reschedule terms without start_ts",
     {{"events.1.payload.payload.start_ts", ED_DEL, NULL, 0}},
     "events[1].payload.payload.start_ts: is required"},
    {"a proposed card without card_id",
     {{"events.1.payload.card_id", ED_DEL, NULL, 0}},
     "events[1].payload.card_id: is required"},
    {"card superseded without superseded_by",
     {{"events.1.subtype", ED_STR, "card.reschedule.superseded", 0},
      {"events.1.payload.line_items", ED_DEL, NULL, 0}},
     "events[1].payload.superseded_by: is required"},
    {"extras card accepted without line_items",
     {{"events.1.subtype", ED_STR, "card.extras.accepted", 0},
      {"events.1.payload.line_items", ED_DEL, NULL, 0}},
     "events[1].payload.line_items: is required"},
    {"a card response without action",
     {{"events.1.subtype", ED_STR, "card.reschedule.responded", 0},
      {"events.1.payload.line_items", ED_DEL, NULL, 0},
      {"events.1.payload.response_id", ED_ADD_STR, "rsp_1", 0}},
     "events[1].payload.action: is required"},
    {"invite.sent without anything",
     {{"events.2.subtype", ED_STR, "invite.sent", 0}, {"events.2.kind", ED_STR, "system", 0}},
     "events[2].payload.invite_id: is required"},
    {"invite.sent with a recipient that is not text",
     {{"events.2.subtype", ED_STR, "invite.sent", 0},
      {"events.2.kind", ED_STR, "system", 0},
      {"events.2.payload.invite_id", ED_ADD_STR, "inv_1", 0}},
     "events[2].payload.recipients: is required"},
    {"payment.captured without amount",
     {{"events.2.subtype", ED_STR, "payment.captured", 0},
      {"events.2.kind", ED_STR, "payment", 0},
      {"events.2.payload.payment_intent_id", ED_ADD_STR, "pi_1", 0}},
     "events[2].payload.amount_cents: is required"},
    {"a record without events",
     {{"events", ED_DEL, NULL, 0}, {"events", ED_ADD_ARR0, NULL, 0}},
     "events: expected 1 to 64 events"},
    {"a later schema: the payload is only known to be a map",
     {{"events.2.subtype", ED_STR, "payment.captured", 0},
      {"events.2.kind", ED_STR, "payment", 0},
      {"events.2.schema", ED_INT, NULL, BK_EVENT_SCHEMA + 1}},
     NULL},
};

START_TEST(test_record_holes)
{
	const struct hole_case *hc = &hole_cases[_i];
	char err[ERRSZ] = "";
	bk_record r = sample_record(zone), d;
	size_t n, off = 0;
	char *buf = enc_record(&r, &n);
	msgpack_object root;
	ck_assert_int_eq(msgpack_unpack(buf, n, &off, zone, &root), MSGPACK_UNPACK_SUCCESS);
	for (int k = 0; k < 3 && hc->ed[k].path != NULL; k++)
		apply_edit(&root, zone, &hc->ed[k]);
	size_t en;
	char *bytes = pack_val(&root, &en);
	int rc = bk_codec_record_decode(bytes, en, zone, &d, err, sizeof(err));
	if (hc->want == NULL) {
		ck_assert_msg(rc == 0, "%s: %s", hc->what, err);
	} else {
		ck_assert_msg(rc == -1, "%s: accepted", hc->what);
		ck_assert_msg(has_prefix(err, hc->want), "%s: \"%s\"", hc->what, err);
	}
	free(bytes);
	free(buf);
}
END_TEST

/* The first events record a fixture writes (bytes into sb) and the engine after it. */
static int first_record_cb(void *opaque, const bk_record *r, const void *bytes, size_t n)
{
	msgpack_sbuffer *sb = opaque;
	(void)r;
	if (sb->size == 0)
		msgpack_sbuffer_write(sb, bytes, n);
	return 0;
}

/* Issue #10 item 7 end to end: the processor's restore (decode, then bk_engine_read) of
 * an order.created record whose events lack command_id. The decoder refuses it; an event
 * without command_id handed to the engine some other way is refused by evolve. Neither
 * crashes, and the engine reads the real record afterwards. */
START_TEST(test_restore_without_command_id)
{
	char err[ERRSZ] = "";
	msgpack_sbuffer first;
	msgpack_sbuffer_init(&first);
	bk_engine *live = bk_engine_new(), *rest = bk_engine_new();
	json_t *fails = json_array();
	ck_assert_int_gt(fx_run_file_cb(live, SRCDIR "/fixtures/ib_happy_path.jsonl", fails,
					first_record_cb, &first, err, sizeof(err)),
			 0);
	ck_assert_uint_gt(first.size, 0);
	/* the fuzzer's record: every event's command_id removed */
	msgpack_object root;
	size_t off = 0, n;
	ck_assert_int_eq(msgpack_unpack(first.data, first.size, &off, zone, &root),
			 MSGPACK_UNPACK_SUCCESS);
	msgpack_object *evs = obj_get(&root, "events");
	for (uint32_t i = 0; i < evs->via.array.size; i++) {
		msgpack_object *cid = obj_get(&evs->via.array.ptr[i], "command_id");
		cid->type = MSGPACK_OBJECT_NIL;
	}
	char *bytes = pack_val(&root, &n);
	bk_record d;
	ck_assert_int_eq(bk_codec_record_decode(bytes, n, zone, &d, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "events[0].command_id: is required (a string)");
	free(bytes);
	/* past the decoder: evolve refuses, the order is not created */
	ck_assert_int_eq(bk_codec_record_decode(first.data, first.size, zone, &d, err, sizeof(err)),
			 0);
	bk_record bad = d;
	bad.events = msgpack_zone_malloc(zone, d.n * sizeof(bk_event));
	memcpy(bad.events, d.events, d.n * sizeof(bk_event));
	bad.events[0].command_id = NULL;
	bk_chain_verdict v[BK_MAX_EVENTS];
	/* the reader rule first: such an event has no canonical bytes, so no valid hash */
	ck_assert_int_eq(bk_engine_read(rest, &bad, v, err, sizeof(err)), 0);
	ck_assert_int_eq(v[0], BK_CHAIN_BAD_HASH);
	ck_assert_ptr_null(bk_engine_order(rest, d.order_id));
	/* and evolve itself, with the hash check off, refuses it too */
	bk_engine_check_hashes(rest, false);
	ck_assert_int_eq(bk_engine_read(rest, &bad, v, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "without event_id, order_id or command_id"));
	ck_assert_ptr_null(bk_engine_order(rest, d.order_id));
	bk_engine_check_hashes(rest, true);
	/* the real record still reads */
	ck_assert_int_eq(bk_engine_read(rest, &d, v, err, sizeof(err)), 0);
	ck_assert_int_eq(v[0], BK_CHAIN_NEXT);
	ck_assert_int_eq(bk_engine_order(rest, d.order_id)->version, d.events[d.n - 1].seq);
	json_decref(fails);
	bk_engine_free(live);
	bk_engine_free(rest);
	msgpack_sbuffer_destroy(&first);
}
END_TEST

static void first_paid(const bk_order *o, void *opaque)
{
	const bk_order **ret = opaque;
	if (*ret == NULL && o->money.paid > 0)
		*ret = o;
}

/* An event for the next seq of o, chained to its head (hash made up: evolve records it),
 * of schema 1 (a money event is upcast with the order's currency). */
static bk_event next_event(const bk_order *o, bk_ev_type type, uint8_t sub, uint8_t ct,
			   bk_val payload)
{
	bk_event e;
	memset(&e, 0, sizeof(e));
	e.event_id = "tev_hand";
	e.order_id = o->order_id;
	e.seq = o->version + 1;
	e.type = (uint8_t)type;
	e.sub = sub;
	e.card_type = ct;
	e.command_id = "cmd_hand";
	e.created_at = ts("2026-11-21T10:00:00Z");
	e.schema = 1;
	e.payload = payload;
	memcpy(e.prev_hash, bk_order_last_hash(o), BK_HASH_LEN);
	memset(e.hash, 0xab, BK_HASH_LEN);
	return e;
}

/* evolve's own checks on what it is handed: money that would overflow (signed overflow
 * before), subtype fields out of range (table indexes later), no ids. Each is an error
 * and leaves the money and status as they were. */
START_TEST(test_evolve_checked_errors)
{
	char err[ERRSZ] = "";
	bk_engine *live = bk_engine_new();
	json_t *fails = json_array();
	ck_assert_int_gt(
	    fx_run_file(live, SRCDIR "/fixtures/ib_happy_path.jsonl", fails, err, sizeof(err)), 0);
	const bk_order *paid = NULL;
	bk_engine_foreach(live, first_paid, &paid);
	ck_assert_ptr_nonnull(paid);
	bk_order *o = bk_order_clone(paid);
	ck_assert_ptr_nonnull(o);
	bk_money money = o->money;
	uint8_t status = o->status;
	int64_t version = o->version;
	bk_mapb b;

	/* a second capture of 2^31-1 cents: the paid total leaves the schema's int */
	ck_assert(bk_mapb_init(&b, zone, 2));
	ck_assert(bk_mapb_str(&b, "payment_intent_id", "pi_x"));
	ck_assert(bk_mapb_int(&b, "amount_cents", BK_CENTS_MAX));
	bk_event e = next_event(o, BK_EV_PAYMENT_CAPTURED, 0, 0, bk_mapb_done(&b));
	ck_assert_int_eq(bk_evolve(o, &e, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "paid total overflows"));

	/* refunds adding up past the schema's int */
	bk_mapb li;
	ck_assert(bk_mapb_init(&li, zone, 6));
	ck_assert(bk_mapb_str(&li, "id", "li_refund"));
	ck_assert(bk_mapb_str(&li, "kind", "refund"));
	ck_assert(bk_mapb_str(&li, "title", "Refund"));
	ck_assert(bk_mapb_int(&li, "qty", 1));
	ck_assert(bk_mapb_int(&li, "unit_cents", 0));
	ck_assert(bk_mapb_int(&li, "total_cents", 0));
	bk_val item = bk_mapb_done(&li);
	ck_assert(bk_mapb_init(&b, zone, 2));
	ck_assert(bk_mapb_int(&b, "refund_cents", BK_CENTS_MAX));
	ck_assert(bk_mapb_val(&b, "line_item", item));
	bk_val refund = bk_mapb_done(&b);
	e = next_event(o, BK_EV_PAYMENT_REFUNDED, 0, 0, refund);
	ck_assert_msg(bk_evolve(o, &e, err, sizeof(err)) == 0, "%s", err);
	e = next_event(o, BK_EV_PAYMENT_REFUNDED, 0, 0, refund);
	ck_assert_int_eq(bk_evolve(o, &e, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "refunded total overflows"));
	ck_assert_int_eq(o->money.refunded, money.refunded + BK_CENTS_MAX);
	money = o->money;

	/* a tip the totals cannot hold: refused, the money stays */
	ck_assert(bk_mapb_init(&b, zone, 1));
	ck_assert(bk_mapb_int(&b, "tip_cents", BK_CENTS_MAX));
	e = next_event(o, BK_EV_TIP_ADDED, 0, 0, bk_mapb_done(&b));
	ck_assert_int_eq(bk_evolve(o, &e, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "totals overflow"));
	ck_assert_int_eq(o->money.tip, money.tip);
	ck_assert_int_eq(o->money.total, money.total);

	/* a milestone amount the decider could not add up (an event built elsewhere, not
	 * decoded) */
	ck_assert(bk_mapb_init(&b, zone, 2));
	ck_assert(bk_mapb_str(&b, "milestone_id", "mst_x"));
	ck_assert(bk_mapb_int(&b, "amount_cents", INT64_MAX));
	e = next_event(o, BK_EV_MILESTONE_ADDED, 0, 0, bk_mapb_done(&b));
	ck_assert_int_eq(bk_evolve(o, &e, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "amount_cents overflows"));
	ck_assert_ptr_null(bk_order_milestone(o, "mst_x", 5));
	/* a later schema than this code knows: not applied (the decoder did not check its
	 * payload), whatever it holds */
	ck_assert(bk_mapb_init(&b, zone, 2));
	ck_assert(bk_mapb_str(&b, "milestone_id", "mst_y"));
	ck_assert(bk_mapb_int(&b, "amount_cents", 100));
	e = next_event(o, BK_EV_MILESTONE_ADDED, 0, 0, bk_mapb_done(&b));
	e.schema = BK_EVENT_SCHEMA + 1;
	int64_t before = o->version;
	ck_assert_int_eq(bk_evolve(o, &e, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "is not one this code reads") != NULL, "%s", err);
	ck_assert_ptr_null(bk_order_milestone(o, "mst_y", 5));
	ck_assert_int_eq(o->version, before);

	/* subtype fields out of range, as no decoder gives them */
	ck_assert(bk_mapb_init(&b, zone, 2));
	ck_assert(bk_mapb_str(&b, "from", bk_status_name((bk_status)o->status)));
	ck_assert(bk_mapb_str(&b, "card_id", "acd_x"));
	bk_val p = bk_mapb_done(&b);
	e = next_event(o, BK_EV_ORDER_STATUS, 200, 0, p);
	ck_assert_int_eq(bk_evolve(o, &e, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "unknown status"));
	ck_assert_int_eq(o->status, status);
	e = next_event(o, BK_EV_CARD, BK_CV_PROPOSED, 200, p);
	ck_assert_int_eq(bk_evolve(o, &e, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "unknown card type"));
	e = next_event(o, (bk_ev_type)BK_EV__COUNT, 0, 0, p);
	ck_assert_int_eq(bk_evolve(o, &e, err, sizeof(err)), -1);

	/* no ids */
	e = next_event(o, BK_EV_NOTE_ADDED, 0, 0, p);
	e.event_id = NULL;
	ck_assert_int_eq(bk_evolve(o, &e, err, sizeof(err)), -1);
	e = next_event(o, BK_EV_NOTE_ADDED, 0, 0, p);
	e.command_id = NULL;
	ck_assert_int_eq(bk_evolve(o, &e, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "command_id"));
	/* the order moved only by the one refund that fitted */
	ck_assert_int_eq(o->version, version + 1);
	bk_order_free(o);
	json_decref(fails);
	bk_engine_free(live);
}
END_TEST

static Suite *codec_suite(void)
{
	Suite *s = suite_create("codec");
	TCase *tc = tcase_create("val");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_val_getters);
	tcase_add_test(tc, test_val_ranges_and_strings);
	tcase_add_test(tc, test_val_to_json);
	tcase_add_test(tc, test_map_lookup);
	suite_add_tcase(s, tc);

	tc = tcase_create("command");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_command_roundtrip_msgpack);
	tcase_add_test(tc, test_command_json_matches_msgpack);
	tcase_add_test(tc, test_command_at_integer);
	tcase_add_loop_test(tc, test_command_envelope_errors, 0,
			    (int)(sizeof(envelope_cases) / sizeof(envelope_cases[0])));
	tcase_add_test(tc, test_command_internal_types);
	tcase_add_loop_test(tc, test_command_wrong_types, 0, F__COUNT * W__COUNT);
	tcase_add_test(tc, test_json_limits);
	suite_add_tcase(s, tc);

	tc = tcase_create("records");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_record_roundtrip_and_chain);
	tcase_add_test(tc, test_record_errors);
	tcase_add_test(tc, test_event_json);
	tcase_add_test(tc, test_result_roundtrip);
	tcase_add_test(tc, test_rules_roundtrip);
	tcase_add_test(tc, test_record_contract_fixtures);
	tcase_add_loop_test(tc, test_record_holes, 0,
			    (int)(sizeof(hole_cases) / sizeof(hole_cases[0])));
	tcase_add_test(tc, test_restore_without_command_id);
	tcase_add_test(tc, test_evolve_checked_errors);
	tcase_set_timeout(tc, 300); /* the fixture mutations take seconds under ASan */
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_truncations);
	tcase_add_loop_test(tc, test_hostile_corpus, 0,
			    (int)(sizeof(hostile) / sizeof(hostile[0])));
	tcase_add_test(tc, test_prescan_accepts);
	tcase_add_test(tc, test_utf8_boundaries);
	tcase_add_test(tc, test_scalars_match_msgpack);
	tcase_add_test(tc, test_depth_and_size);
	tcase_add_test(tc, test_duplicate_keys);
	tcase_add_test(tc, test_fuzz);
	tcase_set_timeout(tc, 600);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(codec_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
