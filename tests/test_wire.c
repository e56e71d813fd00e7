/*
 * test_wire.c - the code agrees with every wire test vector of fixtures/wire/ (written by
 * gen_vectors.py with msgpack-python, PyNaCl and its own murmur2, independently of this
 * code): the command's JSON converts to exactly the vector's msgpack bytes, the bytes
 * decode, the committed key signs them to exactly the vector's signature and the keyring
 * verifies it, librdkafka's murmur2_random puts the key on the vector's partitions, and
 * the engine, fed the vectors' bytes in order, answers the expected results. Also the
 * DLQ's command-id reader (bk_wire_peek_command_id) on the vectors and on broken bytes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "bk_auth.h"
#include "bk_codec.h"
#include "bk_engine.h"
#include "bk_wire.h"
#include "tz.h"

#define WIRE_DIR SRCDIR "/fixtures/wire/"
#define MAX_VEC	 64

typedef struct vec {
	json_t *j; /* the vector line */
	uint8_t *value;
	size_t value_n;
	uint8_t sig[BK_SIG_LEN];
} vec;

static vec vecs[MAX_VEC];
static int n_vecs;
static uint8_t sk[BK_SK_LEN];
static bk_keyring *kr;

static size_t unhex(const char *h, uint8_t *out, size_t max)
{
	size_t n = strlen(h) / 2;
	ck_assert_uint_le(n, max);
	for (size_t i = 0; i < n; i++) {
		unsigned b;
		ck_assert_int_eq(sscanf(h + 2 * i, "%2x", &b), 1);
		out[i] = (uint8_t)b;
	}
	return n;
}

static char *slurp(const char *path, size_t *ret_n)
{
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)sz + 1);
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_eq(fread(b, 1, (size_t)sz, f), (size_t)sz);
	fclose(f);
	b[sz] = '\0';
	if (ret_n)
		*ret_n = (size_t)sz;
	return b;
}

static void setup(void)
{
	size_t n;
	char *s = slurp(WIRE_DIR "wire-test.sk", &n);
	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		n--;
	ck_assert_int_eq(bk_b64_decode(s, n, sk, sizeof(sk)), BK_SK_LEN);
	free(s);
	char err[256];
	s = slurp(WIRE_DIR "keyring", &n);
	ck_assert_msg(bk_keyring_parse(s, n, &kr, err, sizeof(err)) == 0, "keyring: %s", err);
	free(s);
	FILE *f = fopen(WIRE_DIR "vectors.jsonl", "r");
	ck_assert_ptr_nonnull(f);
	char *line = NULL;
	size_t cap = 0;
	n_vecs = 0;
	while (getline(&line, &cap, f) > 0) {
		ck_assert_int_lt(n_vecs, MAX_VEC);
		vec *v = &vecs[n_vecs++];
		json_error_t je;
		v->j = json_loads(line, 0, &je);
		ck_assert_msg(v->j != NULL, "vectors.jsonl:%d: %s", n_vecs, je.text);
		const char *hex = json_string_value(json_object_get(v->j, "value_hex"));
		ck_assert_ptr_nonnull(hex);
		v->value = malloc(strlen(hex) / 2 + 1);
		v->value_n = unhex(hex, v->value, strlen(hex) / 2);
		const char *sh = json_string_value(json_object_get(v->j, "signature_hex"));
		ck_assert_ptr_nonnull(sh);
		ck_assert_uint_eq(unhex(sh, v->sig, sizeof(v->sig)), BK_SIG_LEN);
	}
	free(line);
	fclose(f);
	ck_assert_int_ge(n_vecs, 10);
}

static void teardown(void)
{
	for (int i = 0; i < n_vecs; i++) {
		json_decref(vecs[i].j);
		free(vecs[i].value);
	}
	n_vecs = 0;
	bk_keyring_free(kr);
	kr = NULL;
}

static const char *vname(int i)
{
	return json_string_value(json_object_get(vecs[i].j, "name"));
}

static bool is_json(int i)
{
	const char *ct = json_string_value(json_object_get(vecs[i].j, "content_type"));
	return ct && !strcmp(ct, "application/json");
}

/* The command's JSON, converted as `bookingctl send` does, is the vector's bytes. */
START_TEST(test_encoding)
{
	for (int i = 0; i < n_vecs; i++) {
		json_t *cmd = json_object_get(vecs[i].j, "command");
		if (is_json(i)) {
			/* JSON text is sent as is: it must parse back to the same command */
			json_error_t je;
			json_t *back =
			    json_loadb((const char *)vecs[i].value, vecs[i].value_n, 0, &je);
			ck_assert_msg(back && json_equal(back, cmd), "%s: JSON value", vname(i));
			json_decref(back);
			continue;
		}
		msgpack_zone z;
		msgpack_zone_init(&z, 4096);
		bk_val v;
		char err[256];
		ck_assert_msg(bk_json_to_val(cmd, &z, &v, err, sizeof(err)) == 0, "%s: %s",
			      vname(i), err);
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		msgpack_packer pk;
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		ck_assert_int_eq(msgpack_pack_object(&pk, v), 0);
		ck_assert_msg(sb.size == vecs[i].value_n &&
				  !memcmp(sb.data, vecs[i].value, sb.size),
			      "%s: msgpack bytes differ (%zu vs %zu bytes)", vname(i), sb.size,
			      vecs[i].value_n);
		msgpack_sbuffer_destroy(&sb);
		msgpack_zone_destroy(&z);
	}
}
END_TEST

/* The bytes decode to the command (envelope fields as in the JSON). */
START_TEST(test_decode)
{
	for (int i = 0; i < n_vecs; i++) {
		json_t *cmd = json_object_get(vecs[i].j, "command");
		msgpack_zone z;
		msgpack_zone_init(&z, 4096);
		bk_command c;
		char err[256];
		ck_assert_msg(bk_codec_command_decode(vecs[i].value, vecs[i].value_n, is_json(i),
						      false, &z, &c, err, sizeof(err)) == 0,
			      "%s: %s", vname(i), err);
		ck_assert_str_eq(c.id, json_string_value(json_object_get(cmd, "id")));
		ck_assert_str_eq(bk_cmd_name((bk_cmd_type)c.type),
				 json_string_value(json_object_get(cmd, "type")));
		ck_assert_str_eq(c.order_id, json_string_value(json_object_get(cmd, "order_id")));
		ck_assert_str_eq(c.order_id, json_string_value(json_object_get(vecs[i].j, "key")));
		msgpack_zone_destroy(&z);
	}
}
END_TEST

/* Ed25519 is deterministic: the committed key signs each value to the vector's bytes. */
START_TEST(test_signature)
{
	for (int i = 0; i < n_vecs; i++) {
		uint8_t sig[BK_SIG_LEN];
		bk_auth_sign(sk, vecs[i].value, vecs[i].value_n, sig);
		ck_assert_msg(!memcmp(sig, vecs[i].sig, BK_SIG_LEN), "%s: signature differs",
			      vname(i));
		json_t *cmd = json_object_get(vecs[i].j, "command");
		const char *kid = json_string_value(json_object_get(vecs[i].j, "key_id"));
		int role = bk_role_from(
		    json_string_value(json_object_get(json_object_get(cmd, "actor"), "role")),
		    strlen(
			json_string_value(json_object_get(json_object_get(cmd, "actor"), "role"))));
		const char *type = json_string_value(json_object_get(cmd, "type"));
		char err[256];
		ck_assert_msg(bk_auth_verify(kr, kid, strlen(kid), vecs[i].sig, BK_SIG_LEN,
					     vecs[i].value, vecs[i].value_n, (bk_role)role, type,
					     err, sizeof(err)) == 0,
			      "%s: %s", vname(i), err);
		/* one bit of the value changed: the same signature fails */
		vecs[i].value[vecs[i].value_n / 2] ^= 1;
		ck_assert_int_eq(bk_auth_verify(kr, kid, strlen(kid), vecs[i].sig, BK_SIG_LEN,
						vecs[i].value, vecs[i].value_n, (bk_role)role, type,
						err, sizeof(err)),
				 -1);
		vecs[i].value[vecs[i].value_n / 2] ^= 1;
	}
}
END_TEST

static void check_partitions(const char *key, json_t *want, const char *what)
{
	static const int counts[] = {1, 4, 8, 64};
	for (size_t c = 0; c < 4; c++) {
		char k[8];
		snprintf(k, sizeof(k), "%d", counts[c]);
		json_t *w = json_object_get(want, k);
		ck_assert_msg(json_is_integer(w), "%s: no partition for %s", what, k);
		int32_t got = rd_kafka_msg_partitioner_murmur2_random(NULL, key, strlen(key),
								      counts[c], NULL, NULL);
		ck_assert_msg(got == json_integer_value(w),
			      "%s: key %s on %d partitions: %d, want %d", what, key, counts[c],
			      (int)got, (int)json_integer_value(w));
	}
}

START_TEST(test_partitions)
{
	for (int i = 0; i < n_vecs; i++)
		check_partitions(json_string_value(json_object_get(vecs[i].j, "key")),
				 json_object_get(vecs[i].j, "partition"), vname(i));
	json_error_t je;
	json_t *keys = json_load_file(WIRE_DIR "partitions.json", 0, &je);
	ck_assert_msg(json_is_array(keys), "partitions.json: %s", je.text);
	ck_assert_uint_ge(json_array_size(keys), 10);
	size_t i;
	json_t *k;
	json_array_foreach(keys, i, k)
	{
		check_partitions(json_string_value(json_object_get(k, "key")),
				 json_object_get(k, "partition"), "partitions.json");
	}
	json_decref(keys);
}
END_TEST

/* The engine, fed the vectors' bytes in order, gives each vector's result. */
START_TEST(test_results)
{
	bk_engine *e = bk_engine_new();
	bk_tzdb *tz = bk_tzdb_new(NULL);
	ck_assert_ptr_nonnull(e);
	ck_assert_ptr_nonnull(tz);
	for (int i = 0; i < n_vecs; i++) {
		json_t *want = json_object_get(vecs[i].j, "result");
		msgpack_zone z;
		msgpack_zone_init(&z, 4096);
		bk_command c;
		char err[256];
		ck_assert_int_eq(bk_codec_command_decode(vecs[i].value, vecs[i].value_n, is_json(i),
							 false, &z, &c, err, sizeof(err)),
				 0);
		bk_decide_ctx ctx = {.now = c.at,
				     .expiring_lead = INT64_C(86400000000),
				     .tz = bk_tz_offset,
				     .tz_opaque = tz};
		bk_decision d;
		ck_assert_int_eq(bk_engine_handle(e, &c, &ctx, &z, &d), 0);
		ck_assert_msg(!strcmp(bk_outcome_name(d.outcome),
				      json_string_value(json_object_get(want, "status"))) &&
				  !strcmp(bk_err_name(d.code),
					  json_string_value(json_object_get(want, "code"))),
			      "%s: %s/%s (%s), want %s/%s", vname(i), bk_outcome_name(d.outcome),
			      bk_err_name(d.code), d.message,
			      json_string_value(json_object_get(want, "status")),
			      json_string_value(json_object_get(want, "code")));
		bk_decision_clear(&d);
		msgpack_zone_destroy(&z);
	}
	bk_tzdb_free(tz);
	bk_engine_free(e);
}
END_TEST

/* The DLQ's command id: read from every vector, and from what is left of broken bytes. */
START_TEST(test_peek_command_id)
{
	char id[BK_ID_MAX];
	for (int i = 0; i < n_vecs; i++) {
		const char *want =
		    json_string_value(json_object_get(json_object_get(vecs[i].j, "command"), "id"));
		ck_assert_int_eq(
		    bk_wire_peek_command_id(vecs[i].value, vecs[i].value_n, id, sizeof(id)),
		    (int)strlen(want));
		ck_assert_str_eq(id, want);
		if (is_json(i))
			continue;
		/* truncated anywhere after the id: the id is still found; before it: not */
		size_t id_end = 1 + 3 + 1 + strlen(want); /* fixmap, "id", fixstr header */
		for (size_t cut = 0; cut < vecs[i].value_n; cut++) {
			int r = bk_wire_peek_command_id(vecs[i].value, cut, id, sizeof(id));
			ck_assert_int_eq(r, cut >= id_end ? (int)strlen(want) : -1);
		}
	}
	/* id after other keys, in a map16; a non-string id; not a map; JSON that breaks;
	 * an id that is not a valid id; a huge declared length */
	static const uint8_t later[] = {0xde, 0x00, 0x03, 0xa1, 'x', 0x92, 0xc0, 0xcb, 1,
					2,    3,    4,	  5,	6,   7,	   8,	 0xa2, 'i',
					'd',  0xa5, 'c',  'm',	'd', '_',  '1',	 0xa1, 'y'};
	ck_assert_int_eq(bk_wire_peek_command_id(later, sizeof(later), id, sizeof(id)), 5);
	ck_assert_str_eq(id, "cmd_1");
	static const uint8_t nonstr[] = {0x81, 0xa2, 'i', 'd', 0x05};
	ck_assert_int_eq(bk_wire_peek_command_id(nonstr, sizeof(nonstr), id, sizeof(id)), -1);
	static const uint8_t arr[] = {0x92, 0xa2, 'i', 'd', 0xa1, 'x'};
	ck_assert_int_eq(bk_wire_peek_command_id(arr, sizeof(arr), id, sizeof(id)), -1);
	const char *broken = "{\"id\": \"cmd_x\", \"type\": ";
	ck_assert_int_eq(bk_wire_peek_command_id(broken, strlen(broken), id, sizeof(id)), -1);
	const char *json = " {\"type\":\"x\",\"id\":\"cmd_json\"}";
	ck_assert_int_eq(bk_wire_peek_command_id(json, strlen(json), id, sizeof(id)), 8);
	ck_assert_str_eq(id, "cmd_json");
	static const uint8_t badid[] = {0x81, 0xa2, 'i', 'd', 0xa3, 'a', ' ', 'b'};
	ck_assert_int_eq(bk_wire_peek_command_id(badid, sizeof(badid), id, sizeof(id)), -1);
	static const uint8_t huge[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'x',
				       0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0};
	ck_assert_int_eq(bk_wire_peek_command_id(huge, sizeof(huge), id, sizeof(id)), -1);
	ck_assert_int_eq(bk_wire_peek_command_id(NULL, 0, id, sizeof(id)), -1);
	/* too small an output buffer: refused, not cut */
	char small[4];
	ck_assert_int_eq(bk_wire_peek_command_id(later, sizeof(later), small, sizeof(small)), -1);
}
END_TEST

/* JSON for analysts: one timestamp format (UTC, six fractional digits) for created_at,
 * floats in their shortest round-trip form; the payload of a note is free (no schema
 * row), so strings under time-like keys ("at", "*_at", "*_ts") are written as stored
 * (payload times by the schema table: tests/test_json.c); the tree (bk_event_to_json)
 * agrees. */
START_TEST(test_json_output)
{
	msgpack_sbuffer pb;
	msgpack_sbuffer_init(&pb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &pb, msgpack_sbuffer_write);
	static const char *const skeys[] = {"expires_at", "start_ts", "title", "at"};
	static const char *const svals[] = {"2026-11-04T12:00:00+02:00", "2026-12-04T09:00:00.5Z",
					    "2026-11-04T10:00:00Z", "not a time"};
	static const char *const dkeys[] = {"lat", "sum", "big", "whole"};
	const double dvals[] = {48.86, 0.1 + 0.2, 1e20, 4.0};
	msgpack_pack_map(&pk, 9);
	for (int i = 0; i < 4; i++) {
		msgpack_pack_str_with_body(&pk, skeys[i], strlen(skeys[i]));
		msgpack_pack_str_with_body(&pk, svals[i], strlen(svals[i]));
		msgpack_pack_str_with_body(&pk, dkeys[i], strlen(dkeys[i]));
		msgpack_pack_double(&pk, dvals[i]);
	}
	msgpack_pack_str_with_body(&pk, "nested", 6);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "due_at", 6);
	msgpack_pack_str_with_body(&pk, "2026-11-05T00:00:00Z", 20);
	msgpack_zone z;
	msgpack_zone_init(&z, 4096);
	bk_val payload;
	size_t off = 0;
	ck_assert_int_eq(msgpack_unpack(pb.data, pb.size, &off, &z, &payload),
			 MSGPACK_UNPACK_SUCCESS);
	bk_event e = {.event_id = "tev_x",
		      .order_id = "ord_x",
		      .seq = 1,
		      .type = BK_EV_NOTE_ADDED,
		      .command_id = "cmd_x",
		      .created_at = INT64_C(1793613600000000), /* 2026-11-02T10:00:00Z */
		      .schema = 1,
		      .payload = payload};
	msgpack_sbuffer got;
	msgpack_sbuffer_init(&got);
	ck_assert_int_eq(bk_event_write_json(&e, -1, 0, &got), 0);
	msgpack_sbuffer_write(&got, "", 1);
	static const char *const want[] = {
	    "\"created_at\":\"2026-11-02T10:00:00.000000Z\"",
	    "\"expires_at\":\"2026-11-04T12:00:00+02:00\"", /* a free payload: as stored */
	    "\"start_ts\":\"2026-12-04T09:00:00.5Z\"",
	    "\"title\":\"2026-11-04T10:00:00Z\"",
	    "\"at\":\"not a time\"",
	    "\"due_at\":\"2026-11-05T00:00:00Z\"",
	    "\"lat\":48.86,",
	    "\"sum\":0.30000000000000004,",
	    "\"big\":1e20,",
	    "\"whole\":4.0,"};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_msg(strstr(got.data, want[i]) != NULL, "no %s in %s", want[i], got.data);
	json_t *j = bk_event_to_json(&e, -1, 0);
	ck_assert_str_eq(json_string_value(json_object_get(j, "created_at")),
			 "2026-11-02T10:00:00.000000Z");
	json_t *p = json_object_get(j, "payload");
	ck_assert_str_eq(json_string_value(json_object_get(p, "expires_at")),
			 "2026-11-04T12:00:00+02:00");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(p, "nested"), "due_at")),
			 "2026-11-05T00:00:00Z");
	ck_assert(json_real_value(json_object_get(p, "lat")) == 48.86);
	json_decref(j);
	/* a jsonb column gets the payload as it is */
	j = bk_val_to_json(&payload);
	ck_assert_str_eq(json_string_value(json_object_get(j, "expires_at")),
			 "2026-11-04T12:00:00+02:00");
	json_decref(j);
	msgpack_sbuffer_destroy(&got);
	msgpack_zone_destroy(&z);
	msgpack_sbuffer_destroy(&pb);
}
END_TEST

static Suite *wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("vectors");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_encoding);
	tcase_add_test(tc, test_decode);
	tcase_add_test(tc, test_signature);
	tcase_add_test(tc, test_partitions);
	tcase_add_test(tc, test_results);
	tcase_add_test(tc, test_peek_command_id);
	tcase_add_test(tc, test_json_output);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(wire_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
