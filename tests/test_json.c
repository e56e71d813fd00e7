/*
 * test_json.c - Check suite of the JSON writer for people (core/bk_json.c): which payload
 * strings it writes as times is the schema table's word (core/bk_schema.c, BK_F_TS rows,
 * at every depth the table describes), not the keys' names. Every event here goes through
 * the record encoder and decoder first (the decoder accepts it as the processor would
 * write it), and both writers, the tree (bk_event_to_json) and the streaming text
 * (bk_event_write_json), must give the same bytes.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_codec.h"
#include "bk_schema.h"

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

/* A time as a client may send it (an offset, no fraction) and as people read it. */
#define T_IN  "2026-11-04T12:00:00+02:00"
#define T_OUT "2026-11-04T10:00:00.000000Z"

/* An event of subtype sub at schema version `schema` with the payload given as JSON, in
 * zone; decoded from its record when decode (the decoder must accept it). */
static bk_event make(const char *sub, uint32_t schema, const char *payload, bool decode)
{
	bk_event e;
	memset(&e, 0, sizeof(e));
	ck_assert_int_eq(bk_event_subtype_parse(sub, strlen(sub), &e.type, &e.sub, &e.card_type),
			 0);
	e.event_id = "tev_json_1";
	e.order_id = "ord_json_1";
	e.command_id = "cmd_json_1";
	e.seq = 1;
	e.created_at = INT64_C(1793613600000000); /* 2026-11-02T10:00:00Z */
	e.schema = schema;
	json_error_t jerr;
	json_t *j = json_loads(payload, 0, &jerr);
	ck_assert_msg(j != NULL, "%s: %s", payload, jerr.text);
	char err[256] = "";
	ck_assert_int_eq(bk_json_to_val(j, zone, &e.payload, err, sizeof(err)), 0);
	json_decref(j);
	if (!decode)
		return e;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(bk_codec_event_seal(&e, &sb), 0);
	bk_record r = {.order_id = e.order_id, .command_id = e.command_id, .events = &e, .n = 1};
	msgpack_sbuffer_clear(&sb);
	ck_assert_int_eq(bk_codec_record_encode(&r, &sb), 0);
	bk_record d;
	int rc = bk_codec_record_decode(sb.data, sb.size, zone, &d, err, sizeof(err));
	ck_assert_msg(rc == 0 && d.n == 1, "%s: %s", sub, err);
	msgpack_sbuffer_destroy(&sb);
	return d.events[0];
}

/* The event's JSON from both writers, which must agree byte for byte (no floats here);
 * caller frees. */
static char *both(const bk_event *e)
{
	json_t *j = bk_event_to_json(e, -1, 0);
	ck_assert_ptr_nonnull(j);
	char *tree = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(bk_event_write_json(e, -1, 0, &sb), 0);
	ck_assert_msg(sb.size == strlen(tree) && memcmp(sb.data, tree, sb.size) == 0,
		      "tree   %s\nstream %.*s", tree, (int)sb.size, sb.data);
	msgpack_sbuffer_destroy(&sb);
	return tree;
}

/* The payload's JSON text (stored key order) of e, as both writers give it. */
static void payload_is(const bk_event *e, const char *want)
{
	char *t = both(e);
	const char *p = strstr(t, ",\"payload\":");
	const char *end = strstr(t, ",\"prev_hash\":");
	ck_assert(p != NULL && end != NULL);
	p += strlen(",\"payload\":");
	ck_assert_msg(strlen(want) == (size_t)(end - p) && memcmp(p, want, strlen(want)) == 0,
		      "want %s\n got %.*s", want, (int)(end - p), p);
	free(t);
}

/* A card proposal: due_at, expires_at and the reschedule terms' start_ts/end_ts are times
 * (rows of card.<type>.proposed and of the reschedule terms, one level down); a key no row
 * names keeps its stored text at either level, whatever its name; key order is kept. */
START_TEST(ts_in_terms_at_depth)
{
	bk_event e =
	    make("card.reschedule.proposed", 1,
		 "{\"card_id\":\"acd_1\",\"type\":\"reschedule\",\"created_by\":\"usr_b\","
		 "\"creator_role\":\"buyer\",\"expires_at\":\"2026-11-05T12:00:00.5+02:00\","
		 "\"due_at\":\"" T_IN "\",\"payload\":{\"end_ts\":\"2026-12-04T13:00:00+02:00\","
		 "\"start_ts\":\"2026-12-04T09:00:00+02:00\",\"note_at\":\"" T_IN "\"},"
		 "\"reminder_at\":\"" T_IN "\"}",
		 true);
	payload_is(&e, "{\"card_id\":\"acd_1\",\"type\":\"reschedule\",\"created_by\":\"usr_b\","
		       "\"creator_role\":\"buyer\",\"expires_at\":\"2026-11-05T10:00:00.500000Z\","
		       "\"due_at\":\"" T_OUT "\",\"payload\":{"
		       "\"end_ts\":\"2026-12-04T11:00:00.000000Z\","
		       "\"start_ts\":\"2026-12-04T07:00:00.000000Z\",\"note_at\":\"" T_IN "\"},"
		       "\"reminder_at\":\"" T_IN "\"}");
	/* the same terms under another card type are free: as stored */
	e = make("card.proofs.proposed", 1,
		 "{\"card_id\":\"acd_2\",\"created_by\":\"usr_b\",\"creator_role\":\"buyer\","
		 "\"payload\":{\"start_ts\":\"" T_IN "\"}}",
		 true);
	payload_is(&e, "{\"card_id\":\"acd_2\",\"created_by\":\"usr_b\",\"creator_role\":\"buyer\","
		       "\"payload\":{\"start_ts\":\"" T_IN "\"}}");
}
END_TEST

/* A card response: the card's expires_at row is a time; the response's own payload (a
 * counter's terms) has no row, so it is written as stored (the one change in the
 * fixtures' replay: card_supersede_counter_cancel_expire, card.reschedule.superseded). */
START_TEST(ts_card_response_and_items)
{
	bk_event e = make("card.reschedule.superseded", 1,
			  "{\"card_id\":\"acd_1\",\"response_id\":\"acr_1\",\"action\":\"counter\","
			  "\"responder_user_id\":\"usr_p\",\"payload\":{\"start_ts\":\"" T_IN "\"},"
			  "\"superseded_by\":\"acd_2\",\"expires_at\":\"" T_IN "\"}",
			  true);
	payload_is(&e, "{\"card_id\":\"acd_1\",\"response_id\":\"acr_1\",\"action\":\"counter\","
		       "\"responder_user_id\":\"usr_p\",\"payload\":{\"start_ts\":\"" T_IN "\"},"
		       "\"superseded_by\":\"acd_2\",\"expires_at\":\"" T_OUT "\"}");
	/* line items and totals: rows without times; a time-like key in an item is free */
	e = make("request.countered", 1,
		 "{\"request_id\":\"req_1\",\"line_items\":[{\"id\":\"li_1\",\"kind\":\"package\","
		 "\"title\":\"x\",\"qty\":1,\"unit_cents\":5,\"total_cents\":5,\"paid_at\":\"" T_IN
		 "\"}],\"platform_fee_cents\":0,\"tax_cents\":0,\"expires_at\":\"" T_IN "\"}",
		 true);
	payload_is(&e, "{\"request_id\":\"req_1\",\"line_items\":[{\"id\":\"li_1\",\"kind\":"
		       "\"package\",\"title\":\"x\",\"qty\":1,\"unit_cents\":5,\"total_cents\":5,"
		       "\"paid_at\":\"" T_IN "\"}],\"platform_fee_cents\":0,\"tax_cents\":0,"
		       "\"expires_at\":\"" T_OUT "\"}");
}
END_TEST

/* Free payloads and what the table does not describe are written as stored: a note (its
 * payload is free) with "x_at", "at" and a nested "due_ts"; a key no row names in a
 * described payload; a time row's value that is no time; an event of a schema version
 * newer than the code knows. */
START_TEST(undescribed_as_stored)
{
	bk_event e = make(
	    "note.added", 1,
	    "{\"x_at\":\"" T_IN "\",\"at\":\"" T_IN "\",\"n\":{\"due_ts\":\"" T_IN "\"}}", true);
	payload_is(&e,
		   "{\"x_at\":\"" T_IN "\",\"at\":\"" T_IN "\",\"n\":{\"due_ts\":\"" T_IN "\"}}");
	e = make("request.submitted", 1,
		 "{\"request_id\":\"req_1\",\"mode\":\"RTB\",\"expires_at\":\"" T_IN
		 "\",\"decided_at\":\"" T_IN "\"}",
		 true);
	payload_is(&e, "{\"request_id\":\"req_1\",\"mode\":\"RTB\",\"expires_at\":\"" T_OUT
		       "\",\"decided_at\":\"" T_IN "\"}");
	/* not a time, or not text, under a time row (not decoded: the decoder refuses these) */
	e = make("request.submitted", 1,
		 "{\"request_id\":\"req_1\",\"mode\":\"RTB\",\"expires_at\":\"soon\"}", false);
	payload_is(&e, "{\"request_id\":\"req_1\",\"mode\":\"RTB\",\"expires_at\":\"soon\"}");
	e = make("milestone.added", 1, "{\"due_ts\":[\"" T_IN "\"]}", false);
	payload_is(&e, "{\"due_ts\":[\"" T_IN "\"]}");
	/* a version newer than the code knows: no row describes it */
	e = make("request.submitted", 1, "{\"request_id\":\"req_1\"}", false);
	uint32_t newer = bk_event_version(&e) + 1;
	e = make("request.submitted", newer,
		 "{\"request_id\":\"req_1\",\"mode\":\"RTB\",\"expires_at\":\"" T_IN "\"}", true);
	ck_assert_uint_eq(e.schema, newer);
	payload_is(&e, "{\"request_id\":\"req_1\",\"mode\":\"RTB\",\"expires_at\":\"" T_IN "\"}");
}
END_TEST

/* {"key":"value"}, or under the terms {BK_TERMS_KEY:{"key":"value"}}, into out[160]. */
static void one_text(char *out, bool terms, const char *key, const char *value)
{
	if (terms)
		snprintf(out, 160, "{\"%s\":{\"%s\":\"%s\"}}", BK_TERMS_KEY, key, value);
	else
		snprintf(out, 160, "{\"%s\":\"%s\"}", key, value);
}

/* one_text as a payload value in zone. */
static bk_val one_field(bool terms, const char *key, const char *value)
{
	char text[160];
	one_text(text, terms, key, value);
	json_t *j = json_loads(text, 0, NULL);
	bk_val v;
	ck_assert_int_eq(bk_json_to_val(j, zone, &v, NULL, 0), 0);
	json_decref(j);
	return v;
}

/* From the table: every BK_F_TS row of the schemas bk_payload_schemas_of selects for each
 * event type (card: each verb and card type, its terms) is written as a time, and a
 * value under a row of any other type is written as stored, even a time. */
START_TEST(every_ts_row_of_the_table)
{
	int ts_rows = 0, other_rows = 0;
	for (int t = 0; t < BK_EV__COUNT; t++) {
		for (int ct = 0; ct < (t == BK_EV_CARD ? BK_CT__COUNT : 1); ct++) {
			for (int v = 0; v < (t == BK_EV_CARD ? BK_CV__COUNT : 1); v++) {
				bk_event e = make("note.added", 1, "{}", false);
				e.type = (uint8_t)t;
				e.card_type = (uint8_t)ct;
				e.sub = (uint8_t)v;
				e.schema = bk_event_version(&e);
				bk_payload_schemas ps;
				bk_payload_schemas_of(&e, &ps);
				for (int k = 0; k <= ps.n; k++) {
					bool terms = k == ps.n;
					if (terms && ps.terms >= BK_SC__COUNT)
						continue;
					const bk_field *f =
					    bk_schemas[terms ? ps.terms : ps.top[k]].fields;
					for (; f->key != NULL; f++) {
						bool ts = f->type == BK_F_TS;
						e.payload = one_field(terms, f->key, T_IN);
						char want[160];
						one_text(want, terms, f->key, ts ? T_OUT : T_IN);
						payload_is(&e, want);
						ts ? ts_rows++ : other_rows++;
					}
				}
			}
		}
	}
	/* order.created, request.*, invite.sent, milestone.added, calendar.rescheduled,
	 * order.archived, card.*: at least these */
	ck_assert_int_ge(ts_rows, 12);
	ck_assert_int_gt(other_rows, 50);
}
END_TEST

static Suite *json_suite(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("schema times");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, ts_in_terms_at_depth);
	tcase_add_test(tc, ts_card_response_and_items);
	tcase_add_test(tc, undescribed_as_stored);
	tcase_add_test(tc, every_ts_row_of_the_table);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(json_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
