/*
 * test_decide.c - decider and evolve behaviour beyond the tables: lazy expiry and the
 * timer sweep, idempotency of derived ids, determinism, the hash chain, restore from
 * records (the reader rule: duplicate, fork, gap), auto-accept matching in the order's
 * time zone, service profiles bound by profile.bind (the squatting case of issue 11, a
 * rebind, a legacy first-rule owner read from an old rules record), and the future-time
 * check.
 */
#include <check.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bk_codec.h"
#include "bk_engine.h"
#include "fixture_run.h"
#include "tz.h"

static bk_tzdb *tzdb;

typedef struct run {
	bk_decision d;
	msgpack_zone z;
	msgpack_sbuffer record; /* the events record, encoded */
} run;

/* Decide a JSON command with the engine; the result stays valid until run_done. */
static void run_json(bk_engine *e, run *r, int64_t now_shift_s, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	msgpack_zone_init(&r->z, 4096);
	msgpack_sbuffer_init(&r->record);
	bk_command c;
	char err[256];
	ck_assert_msg(
	    bk_codec_command_decode(buf, strlen(buf), true, true, &r->z, &c, err, sizeof(err)) == 0,
	    "%s", err);
	bk_decide_ctx ctx = {.now = c.at + now_shift_s * BK_US_PER_S,
			     .expiring_lead = 3600 * BK_US_PER_S,
			     .tz = bk_tz_offset,
			     .tz_opaque = tzdb};
	ck_assert_int_eq(bk_engine_handle(e, &c, &ctx, &r->z, &r->d), 0);
	if (r->d.n_events) {
		bk_record rec = {c.order_id, c.id, r->d.events, r->d.n_events};
		ck_assert_int_eq(bk_codec_record_encode(&rec, &r->record), 0);
	}
}

static void run_done(run *r)
{
	bk_decision_clear(&r->d);
	msgpack_sbuffer_destroy(&r->record);
	msgpack_zone_destroy(&r->z);
}

static const char *subtype(const bk_event *e)
{
	static char buf[64];
	return bk_event_subtype(e, buf, sizeof(buf));
}

#define ORDER(id, mode, start)                                                                     \
	"{\"id\":\"cmd_" id "_c\",\"type\":\"order.create\",\"order_id\":\"ord_" id "\","          \
	"\"actor\":{\"user_id\":\"usr_b\",\"role\":\"buyer\"},\"at\":\"2026-11-02T10:00:00Z\","    \
	"\"payload\":{\"mode\":\"" mode "\",\"provider_user_id\":\"usr_p\","                       \
	"\"service_profile_id\":\"sp_1\",\"role_code\":\"model\",\"city\":\"Paris\","              \
	"\"start_ts\":\"" start "\",\"end_ts\":\"2026-12-31T12:00:00Z\",\"timezone\":"             \
	"\"Europe/Paris\",\"location\":{\"kind\":\"buyer\",\"address\":\"1 quai X\"},"             \
	"\"currency\":\"EUR\",\"line_items\":[{\"kind\":\"package\",\"title\":\"Day\","            \
	"\"unit_cents\":50000}],\"platform_fee_cents\":5000,\"tax_cents\":1000,\"policy\":{}}}"

#define CMD(id, type, oid, user, role, at, payload)                                                \
	"{\"id\":\"" id "\",\"type\":\"" type "\",\"order_id\":\"" oid "\",\"actor\":{"            \
	"\"user_id\":\"" user "\",\"role\":\"" role "\"},\"at\":\"" at "\",\"payload\":" payload   \
	"}"

START_TEST(lazy_expiry_kept_on_rejection)
{
	bk_engine *e = bk_engine_new();
	run r;
	run_json(e, &r, 0, ORDER("x", "RTB", "2026-12-04T09:00:00Z"));
	run_done(&r);
	run_json(e, &r, 0,
		 CMD("cmd_x_s", "request.submit", "ord_x", "usr_b", "buyer", "2026-11-02T10:01:00Z",
		     "{\"expires_at\":\"2026-11-03T10:00:00Z\"}"));
	run_done(&r);
	/* provider accepts after the expiry: the expiry is appended, the accept rejected */
	run_json(e, &r, 0,
		 CMD("cmd_x_a", "request.accept", "ord_x", "usr_p", "provider",
		     "2026-11-03T10:00:00Z", "{}"));
	ck_assert_int_eq(r.d.outcome, BK_REJECTED);
	ck_assert_int_eq(r.d.code, BK_E_INVALID_TRANSITION);
	ck_assert_uint_eq(r.d.n_events, 2);
	ck_assert_str_eq(subtype(&r.d.events[0]), "request.expired");
	ck_assert_str_eq(subtype(&r.d.events[1]), "order.declined");
	ck_assert_ptr_null(r.d.events[0].actor_user_id);
	ck_assert(strncmp(r.d.events[0].command_id, "sys_", 4) == 0);
	ck_assert_str_eq(r.d.events[0].command_id, r.d.events[1].command_id);
	run_done(&r);
	const bk_order *o = bk_engine_order(e, "ord_x");
	ck_assert_int_eq(o->status, BK_ST_DECLINED);
	ck_assert_int_eq(o->version, 5);
	/* the rejected command left no trace: sending it again is decided again, not a duplicate */
	ck_assert(!bk_order_seen(o, "cmd_x_a", 7));
	run_json(e, &r, 0,
		 CMD("cmd_x_a", "request.accept", "ord_x", "usr_p", "provider",
		     "2026-11-03T10:00:00Z", "{}"));
	ck_assert_int_eq(r.d.outcome, BK_REJECTED);
	ck_assert_uint_eq(r.d.n_events, 0);
	run_done(&r);
	bk_engine_free(e);
}
END_TEST

/* The same expiry reached by two different paths mints identical events. */
START_TEST(expiry_ids_are_derived_from_target)
{
	uint8_t hash[2][BK_HASH_LEN];
	for (int k = 0; k < 2; k++) {
		bk_engine *e = bk_engine_new();
		run r;
		run_json(e, &r, 0, ORDER("y", "RTB", "2026-12-04T09:00:00Z"));
		run_done(&r);
		run_json(e, &r, 0,
			 CMD("cmd_y_s", "request.submit", "ord_y", "usr_b", "buyer",
			     "2026-11-02T10:01:00Z", "{\"expires_at\":\"2026-11-03T10:00:00Z\"}"));
		run_done(&r);
		if (k == 0)
			run_json(
			    e, &r, 0,
			    "{\"id\":\"sweep_1\",\"type\":\"order.sweep\",\"order_id\":\"ord_y\","
			    "\"actor\":{\"role\":\"system\"},\"at\":\"2026-11-03T10:00:00Z\"}");
		else
			run_json(e, &r, 0,
				 CMD("cmd_y_n", "note.add", "ord_y", "usr_b", "buyer",
				     "2026-11-03T10:00:00Z", "{\"text\":\"hi\"}"));
		ck_assert_uint_ge(r.d.n_events, 2);
		ck_assert_str_eq(subtype(&r.d.events[1]), "order.declined");
		memcpy(hash[k], r.d.events[1].hash, BK_HASH_LEN);
		run_done(&r);
		bk_engine_free(e);
	}
	ck_assert(memcmp(hash[0], hash[1], BK_HASH_LEN) == 0);
}
END_TEST

START_TEST(sweep_expiring_then_expired_once)
{
	bk_engine *e = bk_engine_new();
	run r;
	run_json(e, &r, 0, ORDER("z", "RTB", "2026-12-04T09:00:00Z"));
	run_done(&r);
	const char *steps[] = {
	    CMD("cmd_z_s", "request.submit", "ord_z", "usr_b", "buyer", "2026-11-02T10:01:00Z",
		"{}"),
	    CMD("cmd_z_a", "request.accept", "ord_z", "usr_p", "provider", "2026-11-02T10:02:00Z",
		"{}"),
	    "{\"id\":\"cmd_z_p\",\"type\":\"payment.captured\",\"order_id\":\"ord_z\",\"actor\":{"
	    "\"role\":\"system\"},\"at\":\"2026-11-02T10:03:00Z\",\"payload\":{"
	    "\"payment_intent_id\":\"pi\",\"amount_cents\":56000}}",
	    CMD("cmd_z_card", "card.open", "ord_z", "usr_p", "provider", "2026-11-02T11:00:00Z",
		"{\"type\":\"expense\",\"card_id\":\"acd_z\",\"expires_at\":\"2026-11-02T15:00:"
		"00Z\","
		"\"payload\":{\"title\":\"Taxi\",\"amount_cents\":2000}}"),
	};
	for (size_t i = 0; i < 4; i++) {
		run_json(e, &r, 0, "%s", steps[i]);
		ck_assert_msg(r.d.outcome == BK_ACCEPTED, "%s", r.d.message);
		run_done(&r);
	}
	/* 13:30 is within the 1 h lead: card.expense.expiring, once */
	for (int k = 0; k < 2; k++) {
		run_json(e, &r, 0,
			 "{\"id\":\"sweep_%d\",\"type\":\"order.sweep\",\"order_id\":\"ord_z\","
			 "\"actor\":{\"role\":\"system\"},\"at\":\"2026-11-02T14:30:00Z\"}",
			 k);
		ck_assert_int_eq(r.d.outcome, BK_ACCEPTED);
		ck_assert_uint_eq(r.d.n_events, k == 0 ? 1 : 0);
		if (k == 0)
			ck_assert_str_eq(subtype(&r.d.events[0]), "card.expense.expiring");
		run_done(&r);
	}
	run_json(e, &r, 0,
		 "{\"id\":\"sweep_9\",\"type\":\"order.sweep\",\"order_id\":\"ord_z\","
		 "\"actor\":{\"role\":\"system\"},\"at\":\"2026-11-02T15:00:00Z\"}");
	ck_assert_uint_eq(r.d.n_events, 1);
	ck_assert_str_eq(subtype(&r.d.events[0]), "card.expense.expired");
	run_done(&r);
	const bk_order *o = bk_engine_order(e, "ord_z");
	ck_assert_int_eq(o->cards[0].state, BK_CS_EXPIRED);
	run_json(e, &r, 0,
		 CMD("cmd_z_r", "card.respond", "ord_z", "usr_b", "buyer", "2026-11-02T15:01:00Z",
		     "{\"card_id\":\"acd_z\",\"action\":\"approve\"}"));
	ck_assert_int_eq(r.d.code, BK_E_EXPIRED);
	run_done(&r);
	bk_engine_free(e);
}
END_TEST

START_TEST(future_commands_rejected)
{
	bk_engine *e = bk_engine_new();
	run r;
	run_json(e, &r, -301, ORDER("f", "RTB", "2026-12-04T09:00:00Z"));
	ck_assert_int_eq(r.d.outcome, BK_REJECTED);
	ck_assert_int_eq(r.d.code, BK_E_VALIDATION_FAILED);
	ck_assert_ptr_nonnull(strstr(r.d.message, "future"));
	run_done(&r);
	run_json(e, &r, -299, ORDER("f", "RTB", "2026-12-04T09:00:00Z"));
	ck_assert_int_eq(r.d.outcome, BK_ACCEPTED);
	run_done(&r);
	bk_engine_free(e);
}
END_TEST

#define BIND(id, sp, prov, at)                                                                     \
	"{\"id\":\"" id "\",\"type\":\"profile.bind\",\"order_id\":\"" sp "\",\"actor\":{"         \
	"\"role\":\"system\"},\"at\":\"" at "\",\"payload\":{\"service_profile_id\":\"" sp         \
	"\",\"provider_user_id\":\"" prov "\"}}"

/* 2026-12-06T23:30Z is Sunday in UTC and Monday 00:30 in Paris: a Monday-only rule matches. */
START_TEST(weekday_in_order_timezone)
{
	bk_engine *e = bk_engine_new();
	run r;
	run_json(e, &r, 0, BIND("cmd_w_b", "sp_1", "usr_p", "2026-11-01T09:00:00Z"));
	ck_assert_msg(r.d.outcome == BK_ACCEPTED, "%s", r.d.message);
	run_done(&r);
	run_json(e, &r, 0,
		 CMD("cmd_w_r", "autoaccept.set", "sp_1", "usr_p", "provider",
		     "2026-11-01T10:00:00Z",
		     "{\"rule_id\":\"rule_mon\",\"service_profile_id\":\"sp_1\",\"weekday_mask\":1,"
		     "\"allow_ib\":true}"));
	ck_assert_int_eq(r.d.outcome, BK_ACCEPTED);
	run_done(&r);
	run_json(e, &r, 0, ORDER("w", "IB", "2026-12-06T23:30:00Z"));
	run_done(&r);
	run_json(e, &r, 0,
		 CMD("cmd_w_s", "request.submit", "ord_w", "usr_b", "buyer", "2026-11-02T10:01:00Z",
		     "{}"));
	ck_assert_msg(r.d.outcome == BK_ACCEPTED, "%s", r.d.message);
	ck_assert_str_eq(subtype(&r.d.events[1]), "request.accepted");
	run_done(&r);
	ck_assert_int_eq(bk_engine_order(e, "ord_w")->status, BK_ST_ACCEPTED);
	/* Sunday 12:00 Paris: refused for IB */
	run_json(e, &r, 0, ORDER("v", "IB", "2026-12-06T11:00:00Z"));
	run_done(&r);
	run_json(e, &r, 0,
		 CMD("cmd_v_s", "request.submit", "ord_v", "usr_b", "buyer", "2026-11-02T10:01:00Z",
		     "{}"));
	ck_assert_int_eq(r.d.code, BK_E_IB_NOT_ALLOWED);
	run_done(&r);
	bk_engine_free(e);
}
END_TEST

/* The outcome, code and message of one command, then the run is done with. */
static bk_outcome outcome_of(bk_engine *e, bk_err *ret_code, char *ret_msg, size_t msgsz,
			     const char *json)
{
	run r;
	run_json(e, &r, 0, "%s", json);
	bk_outcome o = r.d.outcome;
	*ret_code = r.d.code;
	snprintf(ret_msg, msgsz, "%s", r.d.message);
	run_done(&r);
	return o;
}

#define EXPECT(e, want, want_code, json)                                                           \
	do {                                                                                       \
		bk_err c_;                                                                         \
		char m_[256];                                                                      \
		bk_outcome o_ = outcome_of(e, &c_, m_, sizeof(m_), json);                          \
		ck_assert_msg(o_ == (want) && c_ == (want_code), "%s: got %s %s: %s", #json,       \
			      bk_outcome_name(o_), bk_err_name(c_), m_);                           \
	} while (0)

#define RULE_SET(id, sp, prov, rule, at)                                                           \
	CMD(id, "autoaccept.set", sp, prov, "provider", at,                                        \
	    "{\"rule_id\":\"" rule "\",\"service_profile_id\":\"" sp "\",\"allow_ib\":true}")

/* profile.bind is for role system only; binding creates the profile's record. */
START_TEST(profile_bind_by_system_only)
{
	bk_engine *e = bk_engine_new();
	const char *roles[] = {"buyer", "provider", "support"};
	char buf[1024];
	for (size_t i = 0; i < 3; i++) {
		snprintf(
		    buf, sizeof(buf),
		    "{\"id\":\"cmd_pb_%zu\",\"type\":\"profile.bind\",\"order_id\":\"sp_1\","
		    "\"actor\":{\"user_id\":\"usr_p\",\"role\":\"%s\"},\"at\":\"2026-11-01T09:"
		    "00:00Z\",\"payload\":{\"service_profile_id\":\"sp_1\",\"provider_user_id\":"
		    "\"usr_p\"}}",
		    i, roles[i]);
		bk_err code;
		char msg[256];
		ck_assert_int_eq(outcome_of(e, &code, msg, sizeof(msg), buf), BK_REJECTED);
		ck_assert_int_eq(code, BK_E_FORBIDDEN);
		ck_assert_msg(strstr(msg, "profile.bind is for role system") != NULL, "%s", msg);
	}
	ck_assert_ptr_null(bk_ruleset_get(bk_engine_rules(e), "sp_1"));
	/* payload checks: the profile must be the key, the provider an id */
	run r;
	run_json(e, &r, 0,
		 "{\"id\":\"cmd_pb_x\",\"type\":\"profile.bind\",\"order_id\":\"sp_1\",\"actor\":{"
		 "\"role\":\"system\"},\"at\":\"2026-11-01T09:00:00Z\",\"payload\":{"
		 "\"service_profile_id\":\"sp_2\",\"provider_user_id\":\"usr_p\"}}");
	ck_assert_int_eq(r.d.code, BK_E_VALIDATION_FAILED);
	run_done(&r);
	run_json(e, &r, 0, BIND("cmd_pb_ok", "sp_1", "usr_p", "2026-11-01T09:00:00Z"));
	ck_assert_msg(r.d.outcome == BK_ACCEPTED, "%s", r.d.message);
	ck_assert(r.d.has_rules);
	ck_assert(r.d.rules.bound);
	ck_assert_str_eq(r.d.rules.owner_user_id, "usr_p");
	ck_assert_uint_eq(r.d.n_events, 0);
	run_done(&r);
	const bk_profile_rules *p = bk_ruleset_get(bk_engine_rules(e), "sp_1");
	ck_assert_ptr_nonnull(p);
	ck_assert(p->bound);
	ck_assert_str_eq(p->owner_user_id, "usr_p");
	ck_assert_uint_eq(p->n, 0);
	/* the same command again: duplicate */
	EXPECT(e, BK_DUPLICATE, BK_E_OK,
	       BIND("cmd_pb_ok", "sp_1", "usr_p", "2026-11-01T09:00:00Z"));
	bk_engine_free(e);
}
END_TEST

/*
 * Issue 11, the squatting case: provider usr_sq, no party to sp_1, sets a rule on it
 * before anyone. It is forbidden (the profile is unbound); once the profiles service
 * bound sp_1 to usr_p it is still forbidden (bound to another provider), and usr_p's IB
 * order is not auto-accepted by any rule of the squatter; usr_p's own rule is accepted
 * and then accepts the order.
 */
START_TEST(profile_squatting_refused)
{
	bk_engine *e = bk_engine_new();
	bk_err code;
	char msg[256];
	ck_assert_int_eq(
	    outcome_of(e, &code, msg, sizeof(msg),
		       RULE_SET("cmd_sq_1", "sp_1", "usr_sq", "rule_sq", "2026-11-01T09:00:00Z")),
	    BK_REJECTED);
	ck_assert_int_eq(code, BK_E_FORBIDDEN);
	ck_assert_str_eq(msg,
			 "service profile sp_1 is not bound to a provider: profile.bind first");
	EXPECT(e, BK_REJECTED, BK_E_FORBIDDEN,
	       CMD("cmd_sq_2", "autoaccept.delete", "sp_1", "usr_sq", "provider",
		   "2026-11-01T09:00:10Z", "{\"rule_id\":\"rule_sq\"}"));
	ck_assert_ptr_null(bk_ruleset_get(bk_engine_rules(e), "sp_1"));

	EXPECT(e, BK_ACCEPTED, BK_E_OK, BIND("cmd_sq_b", "sp_1", "usr_p", "2026-11-01T09:01:00Z"));
	ck_assert_int_eq(
	    outcome_of(e, &code, msg, sizeof(msg),
		       RULE_SET("cmd_sq_3", "sp_1", "usr_sq", "rule_sq", "2026-11-01T09:02:00Z")),
	    BK_REJECTED);
	ck_assert_int_eq(code, BK_E_FORBIDDEN);
	ck_assert_str_eq(msg, "service profile sp_1 is bound to another provider");

	/* the real provider's IB order: no rule of the squatter's accepts it */
	run r;
	run_json(e, &r, 0, ORDER("q", "IB", "2026-12-04T09:00:00Z"));
	run_done(&r);
	EXPECT(e, BK_REJECTED, BK_E_IB_NOT_ALLOWED,
	       CMD("cmd_q_s1", "request.submit", "ord_q", "usr_b", "buyer", "2026-11-02T10:01:00Z",
		   "{}"));
	ck_assert_int_eq(bk_engine_order(e, "ord_q")->status, BK_ST_INITIATED);

	/* the bound provider's own rule is accepted, and accepts the order */
	EXPECT(e, BK_ACCEPTED, BK_E_OK,
	       RULE_SET("cmd_q_r", "sp_1", "usr_p", "rule_p", "2026-11-02T10:02:00Z"));
	run_json(e, &r, 0,
		 CMD("cmd_q_s2", "request.submit", "ord_q", "usr_b", "buyer",
		     "2026-11-02T10:03:00Z", "{}"));
	ck_assert_msg(r.d.outcome == BK_ACCEPTED, "%s", r.d.message);
	ck_assert_str_eq(subtype(&r.d.events[1]), "request.accepted");
	run_done(&r);
	ck_assert_int_eq(bk_engine_order(e, "ord_q")->status, BK_ST_ACCEPTED);
	/* and the squatter still may not delete it */
	EXPECT(e, BK_REJECTED, BK_E_FORBIDDEN,
	       CMD("cmd_sq_4", "autoaccept.delete", "sp_1", "usr_sq", "provider",
		   "2026-11-02T10:04:00Z", "{\"rule_id\":\"rule_p\"}"));
	ck_assert_uint_eq(bk_ruleset_get(bk_engine_rules(e), "sp_1")->n, 1);
	bk_engine_free(e);
}
END_TEST

/* A rebind to the same provider keeps its rules; to another provider it drops them and
 * moves the right to set rules to the new owner. */
START_TEST(profile_rebind)
{
	bk_engine *e = bk_engine_new();
	EXPECT(e, BK_ACCEPTED, BK_E_OK, BIND("cmd_rb_1", "sp_1", "usr_p", "2026-11-01T09:00:00Z"));
	EXPECT(e, BK_ACCEPTED, BK_E_OK,
	       RULE_SET("cmd_rb_2", "sp_1", "usr_p", "rule_a", "2026-11-01T09:01:00Z"));
	EXPECT(e, BK_ACCEPTED, BK_E_OK, BIND("cmd_rb_3", "sp_1", "usr_p", "2026-11-01T09:02:00Z"));
	const bk_profile_rules *p = bk_ruleset_get(bk_engine_rules(e), "sp_1");
	ck_assert_uint_eq(p->n, 1);
	ck_assert_str_eq(p->rules[0].rule_id, "rule_a");

	EXPECT(e, BK_ACCEPTED, BK_E_OK, BIND("cmd_rb_4", "sp_1", "usr_q", "2026-11-01T09:03:00Z"));
	p = bk_ruleset_get(bk_engine_rules(e), "sp_1");
	ck_assert(p->bound);
	ck_assert_str_eq(p->owner_user_id, "usr_q");
	ck_assert_uint_eq(p->n, 0);
	EXPECT(e, BK_REJECTED, BK_E_FORBIDDEN,
	       RULE_SET("cmd_rb_5", "sp_1", "usr_p", "rule_b", "2026-11-01T09:04:00Z"));
	EXPECT(e, BK_ACCEPTED, BK_E_OK,
	       RULE_SET("cmd_rb_6", "sp_1", "usr_q", "rule_c", "2026-11-01T09:05:00Z"));
	/* usr_p's IB order on sp_1 (now usr_q's) is not accepted by usr_q's rule */
	run r;
	run_json(e, &r, 0, ORDER("rb", "IB", "2026-12-04T09:00:00Z"));
	run_done(&r);
	EXPECT(e, BK_REJECTED, BK_E_IB_NOT_ALLOWED,
	       CMD("cmd_rb_s", "request.submit", "ord_rb", "usr_b", "buyer", "2026-11-02T10:01:00Z",
		   "{}"));
	bk_engine_free(e);
}
END_TEST

/*
 * Migration: a rules record written before profile.bind ({service_profile_id,
 * owner_user_id, rules, recent}, no `owner`) decodes as a legacy owner; the legacy owner
 * keeps its rules and may change them until a profile.bind; a bind to another provider
 * (the legacy owner was a squatter) drops them. A record written now carries `owner`
 * and decodes as bound.
 */
START_TEST(profile_legacy_record)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	const char *kv[] = {"service_profile_id", "sp_1", "owner_user_id", "usr_sq"};
	for (int i = 0; i < 4; i++) {
		msgpack_pack_str(&pk, strlen(kv[i]));
		msgpack_pack_str_body(&pk, kv[i], strlen(kv[i]));
	}
	msgpack_pack_str(&pk, 5);
	msgpack_pack_str_body(&pk, "rules", 5);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str(&pk, 7);
	msgpack_pack_str_body(&pk, "rule_id", 7);
	msgpack_pack_str(&pk, 7);
	msgpack_pack_str_body(&pk, "rule_sq", 7);
	msgpack_pack_str(&pk, 8);
	msgpack_pack_str_body(&pk, "allow_ib", 8);
	msgpack_pack_true(&pk);
	msgpack_pack_str(&pk, 6);
	msgpack_pack_str_body(&pk, "recent", 6);
	msgpack_pack_array(&pk, 0);
	bk_profile_rules old;
	char err[256];
	ck_assert_msg(bk_codec_rules_decode(sb.data, sb.size, &old, err, sizeof(err)) == 0, "%s",
		      err);
	msgpack_sbuffer_destroy(&sb);
	ck_assert(!old.bound);
	ck_assert_str_eq(old.owner_user_id, "usr_sq");
	ck_assert_uint_eq(old.n, 1);

	bk_engine *e = bk_engine_new();
	ck_assert_int_eq(bk_ruleset_put(bk_engine_rules(e), &old), 0);
	bk_profile_rules_clear(&old);
	/* the legacy owner may still change its rules; nobody else may */
	EXPECT(e, BK_ACCEPTED, BK_E_OK,
	       RULE_SET("cmd_lg_1", "sp_1", "usr_sq", "rule_sq2", "2026-11-01T09:00:00Z"));
	EXPECT(e, BK_REJECTED, BK_E_FORBIDDEN,
	       RULE_SET("cmd_lg_2", "sp_1", "usr_p", "rule_p", "2026-11-01T09:01:00Z"));
	const bk_profile_rules *p = bk_ruleset_get(bk_engine_rules(e), "sp_1");
	ck_assert(!p->bound);
	ck_assert_uint_eq(p->n, 2);
	/* a legacy owner's rules never accept another provider's order */
	run r;
	run_json(e, &r, 0, ORDER("lg", "IB", "2026-12-04T09:00:00Z"));
	run_done(&r);
	EXPECT(e, BK_REJECTED, BK_E_IB_NOT_ALLOWED,
	       CMD("cmd_lg_s", "request.submit", "ord_lg", "usr_b", "buyer", "2026-11-02T10:01:00Z",
		   "{}"));
	/* the operator binds sp_1 to its real provider: the squatter's rules go */
	run_json(e, &r, 0, BIND("cmd_lg_b", "sp_1", "usr_p", "2026-11-01T09:02:00Z"));
	ck_assert_msg(r.d.outcome == BK_ACCEPTED, "%s", r.d.message);
	ck_assert_uint_eq(r.d.rules.n, 0);
	/* the record as written now: `owner` present, decodes as bound */
	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(bk_codec_rules_encode(&r.d.rules, &sb), 0);
	bk_profile_rules back;
	ck_assert_msg(bk_codec_rules_decode(sb.data, sb.size, &back, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert(back.bound);
	ck_assert_str_eq(back.owner_user_id, "usr_p");
	ck_assert_uint_eq(back.n_recent, r.d.rules.n_recent);
	bk_profile_rules_clear(&back);
	msgpack_sbuffer_destroy(&sb);
	run_done(&r);
	EXPECT(e, BK_REJECTED, BK_E_FORBIDDEN,
	       RULE_SET("cmd_lg_3", "sp_1", "usr_sq", "rule_sq3", "2026-11-01T09:03:00Z"));
	EXPECT(e, BK_ACCEPTED, BK_E_OK,
	       RULE_SET("cmd_lg_4", "sp_1", "usr_p", "rule_p", "2026-11-01T09:04:00Z"));
	bk_engine_free(e);
}
END_TEST

/* Records written while deciding, read back by a fresh engine with the reader rule,
 * rebuild the same state; a duplicate record is skipped, a fork detected, a gap seen. */
START_TEST(restore_duplicate_fork_gap)
{
	bk_engine *live = bk_engine_new();
	bk_engine *rest = bk_engine_new();
	json_t *fails = json_array();
	char err[256];
	ck_assert_int_gt(fx_run_file(live,
				     SRCDIR "/fixtures/card_supersede_counter_cancel_expire.jsonl",
				     fails, err, sizeof(err)),
			 0);
	/* replay the same commands, keeping each record's bytes */
	bk_engine *writer = bk_engine_new();
	FILE *f = fopen(SRCDIR "/fixtures/card_supersede_counter_cancel_expire.jsonl", "r");
	char line[8192];
	msgpack_sbuffer last;
	msgpack_sbuffer_init(&last);
	while (fgets(line, sizeof(line), f)) {
		run r;
		run_json(writer, &r, 0, "%s", line);
		if (r.d.n_events) {
			ck_assert_uint_gt(r.record.size, 0); /* events make a record */
			msgpack_zone z;
			msgpack_zone_init(&z, 4096);
			bk_record rec;
			ck_assert_int_eq(bk_codec_record_decode(r.record.data, r.record.size, &z,
								&rec, err, sizeof(err)),
					 0);
			bk_chain_verdict v[BK_MAX_EVENTS];
			ck_assert_int_eq(bk_engine_read(rest, &rec, v, err, sizeof(err)), 0);
			for (uint32_t i = 0; i < rec.n; i++)
				ck_assert_int_eq(v[i], BK_CHAIN_NEXT);
			/* read again: all duplicates, nothing applied twice */
			ck_assert_int_eq(bk_engine_read(rest, &rec, v, err, sizeof(err)), 0);
			for (uint32_t i = 0; i < rec.n; i++)
				ck_assert_int_eq(v[i], BK_CHAIN_DUPLICATE);
			msgpack_zone_destroy(&z);
			msgpack_sbuffer_clear(&last);
			msgpack_sbuffer_write(&last, r.record.data, r.record.size);
		}
		run_done(&r);
	}
	fclose(f);
	json_t *a = fx_engine_summary(live), *b = fx_engine_summary(rest);
	ck_assert_msg(json_equal(a, b), "restored state differs from the live state");
	/* a second writer's record for a seq already taken: a fork, never applied */
	const bk_order *o = bk_engine_order(rest, "ord_csc_1");
	int64_t version = o->version;
	msgpack_zone z;
	msgpack_zone_init(&z, 4096);
	bk_record rec;
	ck_assert_int_eq(bk_codec_record_decode(last.data, last.size, &z, &rec, err, sizeof(err)),
			 0);
	rec.events[0].payload = (bk_val){.type = MSGPACK_OBJECT_MAP}; /* other content */
	rec.n = 1;
	ck_assert_int_eq(bk_codec_event_seal(&rec.events[0], &last), 0);
	bk_chain_verdict v[1];
	ck_assert_int_eq(bk_engine_read(rest, &rec, v, err, sizeof(err)), 0);
	ck_assert_int_eq(v[0], BK_CHAIN_FORK);
	ck_assert_int_eq(bk_engine_order(rest, "ord_csc_1")->version, version);
	/* changed bytes under the same hash: a bad hash */
	rec.events[0].created_at += 1;
	ck_assert_int_eq(bk_engine_read(rest, &rec, v, err, sizeof(err)), 0);
	ck_assert_int_eq(v[0], BK_CHAIN_BAD_HASH);
	rec.events[0].created_at -= 1;
	/* a record from the future: a gap is a bad link */
	rec.events[0].seq = version + 5;
	ck_assert_int_eq(bk_codec_event_seal(&rec.events[0], &last), 0);
	ck_assert_int_eq(bk_engine_read(rest, &rec, v, err, sizeof(err)), 0);
	ck_assert_int_eq(v[0], BK_CHAIN_BAD_LINK);
	msgpack_zone_destroy(&z);
	msgpack_sbuffer_destroy(&last);
	json_decref(a);
	json_decref(b);
	json_decref(fails);
	bk_engine_free(writer);
	bk_engine_free(rest);
	bk_engine_free(live);
}
END_TEST

/* Deciding the same command on the same state twice gives byte-identical events. */
START_TEST(decide_is_deterministic_and_chained)
{
	uint8_t h[2][BK_HASH_LEN];
	for (int k = 0; k < 2; k++) {
		bk_engine *e = bk_engine_new();
		run r;
		run_json(e, &r, 0, ORDER("d", "RTB", "2026-12-04T09:00:00Z"));
		static const uint8_t zero[BK_HASH_LEN];
		ck_assert(memcmp(r.d.events[0].prev_hash, zero, BK_HASH_LEN) == 0);
		ck_assert_int_eq(r.d.events[0].seq, 1);
		run_done(&r);
		run_json(e, &r, 0,
			 CMD("cmd_d_s", "request.submit", "ord_d", "usr_b", "buyer",
			     "2026-11-02T10:01:00Z", "{}"));
		ck_assert_uint_eq(r.d.n_events, 2);
		ck_assert(memcmp(r.d.events[1].prev_hash, r.d.events[0].hash, BK_HASH_LEN) == 0);
		ck_assert_int_eq(r.d.events[1].seq, 3);
		/* the hash is over the canonical bytes: recomputing it gives the same */
		bk_event copy = r.d.events[1];
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		ck_assert_int_eq(bk_codec_event_seal(&copy, &sb), 0);
		ck_assert(memcmp(copy.hash, r.d.events[1].hash, BK_HASH_LEN) == 0);
		msgpack_sbuffer_destroy(&sb);
		memcpy(h[k], r.d.events[1].hash, BK_HASH_LEN);
		/* the record spliced from the kept canonical bytes equals a fresh encoding */
		ck_assert_ptr_nonnull(r.d.events[0].canon);
		bk_record rec = {"ord_d", "cmd_d_s", r.d.events, r.d.n_events};
		msgpack_sbuffer fresh;
		msgpack_sbuffer_init(&fresh);
		for (uint32_t i = 0; i < r.d.n_events; i++)
			r.d.events[i].canon = NULL;
		ck_assert_int_eq(bk_codec_record_encode(&rec, &fresh), 0);
		ck_assert_uint_eq(fresh.size, r.record.size);
		ck_assert(memcmp(fresh.data, r.record.data, fresh.size) == 0);
		msgpack_sbuffer_destroy(&fresh);
		run_done(&r);
		bk_engine_free(e);
	}
	ck_assert(memcmp(h[0], h[1], BK_HASH_LEN) == 0);
}
END_TEST

START_TEST(money_overflow_and_refund_limits)
{
	bk_engine *e = bk_engine_new();
	run r;
	run_json(
	    e, &r, 0,
	    "{\"id\":\"cmd_o\",\"type\":\"order.create\",\"order_id\":\"ord_o\",\"actor\":{"
	    "\"user_id\":\"usr_b\",\"role\":\"buyer\"},\"at\":\"2026-11-02T10:00:00Z\","
	    "\"payload\":{\"mode\":\"RTB\",\"provider_user_id\":\"usr_p\",\"service_profile_id\":"
	    "\"sp_1\",\"role_code\":\"model\",\"city\":\"Paris\",\"start_ts\":"
	    "\"2026-12-04T09:00:00Z\",\"end_ts\":\"2026-12-04T10:00:00Z\",\"timezone\":\"UTC\","
	    "\"location\":{\"kind\":\"remote\"},\"currency\":\"usd\",\"line_items\":[{\"kind\":"
	    "\"package\",\"title\":\"A\",\"unit_cents\":2000000000},{\"kind\":\"extra\",\"title\":"
	    "\"B\",\"unit_cents\":200000000}],\"platform_fee_cents\":0,\"tax_cents\":0,"
	    "\"policy\":{}}}");
	ck_assert_int_eq(r.d.code, BK_E_OVERFLOW);
	ck_assert_ptr_null(bk_engine_order(e, "ord_o"));
	run_done(&r);
	bk_engine_free(e);
}
END_TEST

/* The streaming JSON writer of replay gives exactly jansson's text, for every event of
 * every fixture: the same bytes for an event without floats, the same text once floats
 * are written as jansson writes them for one with floats. */
/* Streamed JSON parsed and dumped again by jansson (key order kept): equal to jansson's
 * own text when the streamed text has the same keys, order, strings and values. NULL when
 * it does not parse. Caller frees. */
static char *redump(const char *text, size_t n)
{
	json_t *p = json_loadb(text, n, 0, NULL);
	char *t = p ? json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(p);
	return t;
}

static bool has_float(const bk_val *v)
{
	switch (v->type) {
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return true;
	case MSGPACK_OBJECT_ARRAY:
		for (uint32_t i = 0; i < v->via.array.size; i++)
			if (has_float(&v->via.array.ptr[i]))
				return true;
		return false;
	case MSGPACK_OBJECT_MAP:
		for (uint32_t i = 0; i < v->via.map.size; i++)
			if (has_float(&v->via.map.ptr[i].val))
				return true;
		return false;
	default:
		return false;
	}
}

static int compare_json(void *opaque, const bk_record *r, const void *bytes, size_t n)
{
	int *count = opaque;
	msgpack_zone z;
	msgpack_zone_init(&z, 4096);
	bk_record rec;
	char err[256];
	ck_assert_int_eq(bk_codec_record_decode(bytes, n, &z, &rec, err, sizeof(err)), 0);
	(void)r;
	for (uint32_t i = 0; i < rec.n; i++) {
		json_t *j = bk_event_to_json(&rec.events[i], 3, 1234567);
		char *want = json_dumps(j, JSON_COMPACT);
		msgpack_sbuffer got;
		msgpack_sbuffer_init(&got);
		ck_assert_int_eq(bk_event_write_json(&rec.events[i], 3, 1234567, &got), 0);
		if (!has_float(&rec.events[i].payload))
			ck_assert_msg(got.size == strlen(want) &&
					  memcmp(got.data, want, got.size) == 0,
				      "want %s\n got %.*s", want, (int)got.size, got.data);
		/* the same text once floats are written as jansson writes them (the streaming
		 * writer prints their shortest round-trip form) */
		char *again = redump(got.data, got.size);
		ck_assert_msg(again && strcmp(again, want) == 0, "want %s\n got %.*s", want,
			      (int)got.size, got.data);
		free(again);
		msgpack_sbuffer_destroy(&got);
		free(want);
		json_decref(j);
		(*count)++;
	}
	msgpack_zone_destroy(&z);
	return 0;
}

START_TEST(streaming_json_equals_jansson)
{
	DIR *d = opendir(SRCDIR "/fixtures");
	ck_assert_ptr_nonnull(d);
	int count = 0, files = 0;
	for (struct dirent *de = readdir(d); de != NULL; de = readdir(d)) {
		size_t nl = strlen(de->d_name);
		if (nl < 7 || strcmp(de->d_name + nl - 6, ".jsonl") != 0)
			continue;
		char path[512], err[256];
		snprintf(path, sizeof(path), SRCDIR "/fixtures/%s", de->d_name);
		bk_engine *e = bk_engine_new();
		json_t *fails = json_array();
		ck_assert_int_gt(
		    fx_run_file_cb(e, path, fails, compare_json, &count, err, sizeof(err)), 0);
		json_decref(fails);
		bk_engine_free(e);
		files++;
	}
	closedir(d);
	ck_assert_int_ge(files, 22);
	ck_assert_int_gt(count, 200);
}
END_TEST

/* ... and for the strings and numbers the fixtures do not have: every escape JSON has,
 * control characters, quotes and backslashes at the start, middle and end of a string,
 * multi-byte UTF-8, and the extreme integers. */
START_TEST(streaming_json_escapes_and_extremes)
{
	static const char *const strs[] = {"",
					   "plain",
					   "\"",
					   "\\",
					   "a\"b\\c\"",
					   "\x01\x1f\x7f",
					   "\n\r\t\b\f",
					   "tab\tin",
					   "end\n",
					   "\x02start",
					   "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xb5",
					   "/slash/",
					   "quote at end\""};
	static const int64_t ints[] = {
	    0, 1, -1, 9, 10, -10, 123456789, INT64_MAX, INT64_MIN, (int64_t)INT32_MIN - 1};
	msgpack_sbuffer pb;
	msgpack_sbuffer_init(&pb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &pb, msgpack_sbuffer_write);
	size_t ns = sizeof(strs) / sizeof(strs[0]), ni = sizeof(ints) / sizeof(ints[0]);
	/* the writer copies plain runs 8 bytes at a time: an escape at every position of a
	 * 20-byte string, after plain ASCII and after multi-byte UTF-8 */
	static const char esc[] = {'"', '\\', '\x01', '\n', '\x1f'};
	size_t npos = 20 * sizeof(esc) * 2;
	msgpack_pack_map(&pk, (uint32_t)(ns + ni + npos));
	for (size_t k = 0; k < npos; k++) {
		char key[16], v[24];
		int kn = snprintf(key, sizeof(key), "p%zu", k);
		/* odd k: an e-acute (2 bytes) first, kept whole */
		memcpy(v,
		       k % 2 ? "\xc3\xa9"
			       "cdefghijklmnopqrst"
			     : "abcdefghijklmnopqrst",
		       21); /* with the NUL; 20 bytes are packed */
		size_t pos = k / 2 % 20;
		v[k % 2 && pos < 2 ? pos + 2 : pos] = esc[k / 40];
		msgpack_pack_str_with_body(&pk, key, (size_t)kn);
		msgpack_pack_str_with_body(&pk, v, 20);
	}
	for (size_t i = 0; i < ns; i++) {
		char key[16];
		int kn = snprintf(key, sizeof(key), "s%zu%s", i, i == 3 ? "\t" : "");
		msgpack_pack_str_with_body(&pk, key, (size_t)kn);
		msgpack_pack_str_with_body(&pk, strs[i], strlen(strs[i]));
	}
	for (size_t i = 0; i < ni; i++) {
		char key[16];
		int kn = snprintf(key, sizeof(key), "i%zu", i);
		msgpack_pack_str_with_body(&pk, key, (size_t)kn);
		msgpack_pack_int64(&pk, ints[i]);
	}
	msgpack_zone z;
	msgpack_zone_init(&z, 4096);
	msgpack_object payload;
	size_t off = 0;
	ck_assert_int_eq(msgpack_unpack(pb.data, pb.size, &off, &z, &payload),
			 MSGPACK_UNPACK_SUCCESS);
	bk_event e = {.event_id = "tev_x",
		      .order_id = "ord_\"q\"",
		      .seq = 7,
		      .type = BK_EV_NOTE_ADDED,
		      .actor_user_id = "usr_\\b",
		      .command_id = "cmd_\x01",
		      .created_at = -1,
		      .schema = 1,
		      .payload = payload};
	json_t *j = bk_event_to_json(&e, 0, INT64_MAX);
	char *want = json_dumps(j, JSON_COMPACT);
	msgpack_sbuffer got;
	msgpack_sbuffer_init(&got);
	ck_assert_int_eq(bk_event_write_json(&e, 0, INT64_MAX, &got), 0);
	char *again = redump(got.data, got.size);
	ck_assert_msg(again && strcmp(again, want) == 0, "want %s\n got %.*s", want, (int)got.size,
		      got.data);
	free(again);
	ck_assert_ptr_nonnull(strstr(want, "\\u0001\\u001F"));
	ck_assert_ptr_nonnull(strstr(want, "-9223372036854775808"));
	msgpack_sbuffer_destroy(&got);
	free(want);
	json_decref(j);
	msgpack_zone_destroy(&z);
	msgpack_sbuffer_destroy(&pb);
}
END_TEST

int main(void)
{
	tzdb = bk_tzdb_new(NULL);
	Suite *s = suite_create("decide");
	TCase *tc = tcase_create("decide");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, lazy_expiry_kept_on_rejection);
	tcase_add_test(tc, expiry_ids_are_derived_from_target);
	tcase_add_test(tc, sweep_expiring_then_expired_once);
	tcase_add_test(tc, future_commands_rejected);
	tcase_add_test(tc, weekday_in_order_timezone);
	tcase_add_test(tc, profile_bind_by_system_only);
	tcase_add_test(tc, profile_squatting_refused);
	tcase_add_test(tc, profile_rebind);
	tcase_add_test(tc, profile_legacy_record);
	tcase_add_test(tc, restore_duplicate_fork_gap);
	tcase_add_test(tc, decide_is_deterministic_and_chained);
	tcase_add_test(tc, money_overflow_and_refund_limits);
	tcase_add_test(tc, streaming_json_equals_jansson);
	tcase_add_test(tc, streaming_json_escapes_and_extremes);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	bk_tzdb_free(tzdb);
	return failed ? 1 : 0;
}
