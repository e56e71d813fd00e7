/*
 * test_fsm.c - the state-machine tables drive the decider: the tables check themselves,
 * every allowed booking_status row succeeds (the order is brought to the row's state
 * through the decider, the row's command is sent by the row's actor), and every other
 * (status, command) pair is rejected with invalid_transition; every (profile state,
 * profile command, actor) triple is accepted exactly when a bk_profile_table row allows
 * it. Card and milestone rows are exercised through the fixtures and test_decide.
 */
#include <check.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bk_codec.h"
#include "bk_engine.h"
#include "tz.h"

static bk_tzdb *tzdb;
static int seqno;

#define BUYER "usr_b"
#define PROV  "usr_p"
#define SP    "sp_1"

/* Send one JSON command; returns the outcome and writes the code. */
static bk_outcome sendj(bk_engine *e, bk_err *ret_code, char *msg, size_t msgsz, const char *fmt,
			...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	msgpack_zone z;
	msgpack_zone_init(&z, 4096);
	bk_command c;
	char err[256];
	ck_assert_msg(
	    bk_codec_command_decode(buf, strlen(buf), true, true, &z, &c, err, sizeof(err)) == 0,
	    "decode %s: %s", buf, err);
	bk_decide_ctx ctx = {.now = c.at, .tz = bk_tz_offset, .tz_opaque = tzdb};
	bk_decision d;
	ck_assert_int_eq(bk_engine_handle(e, &c, &ctx, &z, &d), 0);
	if (ret_code)
		*ret_code = d.code;
	if (msg)
		snprintf(msg, msgsz, "%s", d.message);
	bk_decision_clear(&d);
	msgpack_zone_destroy(&z);
	return d.outcome;
}

/* A command by (user, role) with a payload; the time advances a minute each call. */
#define CMD(type, user, role, payload)                                                             \
	"{\"id\":\"cmd_t%d\",\"type\":\"" type                                                     \
	"\",\"order_id\":\"ord_t\",\"actor\":{\"user_id\":\"" user "\",\"role\":\"" role           \
	"\"},\"at\":\"%s\",\"payload\":" payload "}"
#define AT tick(), g_at

static char g_at[40];
/* Next command number; the command time (g_at) advances one minute per command. */
static int tick(void)
{
	++seqno;
	snprintf(g_at, sizeof(g_at), "2026-11-%02dT%02d:%02d:00Z", 2 + seqno / 1440,
		 (seqno / 60) % 24, seqno % 60);
	return seqno;
}

static void must(const char *what, bk_outcome o, bk_err code, const char *msg)
{
	ck_assert_msg(o == BK_ACCEPTED, "set-up step %s: %s %s", what, bk_err_name(code), msg);
}

#define STEP(e, type, user, role, payload)                                                         \
	do {                                                                                       \
		bk_err c_ = BK_E_OK;                                                               \
		char m_[256] = "";                                                                 \
		bk_outcome o_ = sendj(e, &c_, m_, sizeof(m_), CMD(type, user, role, payload), AT); \
		must(type, o_, c_, m_);                                                            \
	} while (0)

#define ORDER_PAYLOAD(mode, parties)                                                               \
	"{\"mode\":\"" mode "\"" parties ",\"role_code\":\"model\",\"city\":\"Lyon\","             \
	"\"start_ts\":\"2026-12-07T09:00:00Z\",\"end_ts\":\"2026-12-07T12:00:00Z\","               \
	"\"timezone\":\"Europe/Paris\",\"location\":{\"kind\":\"remote\"},\"currency\":\"eur\","   \
	"\"line_items\":[{\"kind\":\"package\",\"title\":\"Shoot\",\"qty\":2,\"unit_cents\":"      \
	"10000}],\"platform_fee_cents\":1000,\"tax_cents\":500,\"policy\":{}}"
#define PARTIES ",\"provider_user_id\":\"" PROV "\",\"service_profile_id\":\"" SP "\""

/* Bring a fresh order to `status` in `mode` (0 IB, 1 RTB, 2 INVITE). rule: 1 RTB rule, 2 IB rule.
 */
static bk_engine *reach(bk_status status, int mode, int rule)
{
	bk_engine *e = bk_engine_new();
	if (rule) {
		bk_err c = BK_E_OK;
		char m[256] = "";
		must("profile.bind",
		     sendj(e, &c, m, sizeof(m),
			   "{\"id\":\"cmd_t%d\",\"type\":\"profile.bind\",\"order_id\":\"" SP
			   "\",\"actor\":{\"role\":\"system\"},\"at\":\"%s\",\"payload\":{"
			   "\"service_profile_id\":\"" SP "\",\"provider_user_id\":\"" PROV "\"}}",
			   AT),
		     c, m);
		must("autoaccept.set",
		     sendj(e, &c, m, sizeof(m),
			   "{\"id\":\"cmd_t%d\",\"type\":\"autoaccept.set\",\"order_id\":\"" SP
			   "\",\"actor\":{\"user_id\":\"" PROV "\",\"role\":\"provider\"},"
			   "\"at\":\"%s\",\"payload\":{\"rule_id\":\"rule_1\","
			   "\"service_profile_id\":\"" SP "\",\"allow_ib\":%s}}",
			   AT, rule == 2 ? "true" : "false"),
		     c, m);
	}
	if (mode == 2)
		STEP(e, "order.create", BUYER, "buyer", ORDER_PAYLOAD("INVITE", ""));
	else if (mode == 0)
		STEP(e, "order.create", BUYER, "buyer", ORDER_PAYLOAD("IB", PARTIES));
	else
		STEP(e, "order.create", BUYER, "buyer", ORDER_PAYLOAD("RTB", PARTIES));
	if (status == BK_ST_INITIATED)
		return e;
	if (mode == 2) {
		STEP(e, "invite.send", BUYER, "buyer", "{\"recipients\":[\"" PROV "\"]}");
		if (status == BK_ST_PENDING_ACCEPT)
			return e;
		STEP(e, "invite.respond", PROV, "provider", "{}");
		STEP(e, "invite.award", BUYER, "buyer",
		     "{\"recipient_user_id\":\"" PROV "\",\"service_profile_id\":\"" SP "\"}");
	} else {
		STEP(e, "request.submit", BUYER, "buyer", "{}");
		if (status == BK_ST_PENDING_ACCEPT)
			return e;
		if (status == BK_ST_COUNTERED || status == BK_ST_DECLINED) {
			STEP(e, "request.counter", PROV, "provider",
			     "{\"line_items\":[{\"kind\":\"package\",\"title\":\"Longer\",\"unit_"
			     "cents\":"
			     "30000}],\"platform_fee_cents\":1500,\"tax_cents\":700}");
			if (status == BK_ST_DECLINED)
				STEP(e, "request.decline_counter", BUYER, "buyer", "{}");
			return e;
		}
		STEP(e, "request.accept", PROV, "provider", "{}");
	}
	if (status == BK_ST_ACCEPTED)
		return e;
	if (status == BK_ST_CANCELLED_BUYER) {
		STEP(e, "order.cancel", BUYER, "buyer", "{\"reason\":\"x\"}");
		return e;
	}
	if (status == BK_ST_CANCELLED_PROVIDER) {
		STEP(e, "order.cancel", PROV, "provider", "{\"reason\":\"x\"}");
		return e;
	}
	const bk_order *o = bk_engine_order(e, "ord_t");
	char pay[200];
	snprintf(pay, sizeof(pay), "{\"payment_intent_id\":\"pi_1\",\"amount_cents\":%lld}",
		 (long long)o->money.total);
	bk_err c = BK_E_OK;
	char m[256] = "";
	must("payment",
	     sendj(e, &c, m, sizeof(m), CMD("payment.captured", "sys", "system", "%s"), AT, pay), c,
	     m);
	if (status == BK_ST_CONFIRMED)
		return e;
	if (status == BK_ST_DISPUTED || status == BK_ST_RESOLVED) {
		/* what commands allowed while disputed need, made while it still can be */
		STEP(e, "milestone.add", PROV, "provider",
		     "{\"milestone_id\":\"mst_1\",\"title\":\"m\",\"amount_cents\":100}");
		STEP(e, "card.open", PROV, "provider",
		     "{\"type\":\"proofs\",\"card_id\":\"acd_1\"}");
		STEP(e, "card.open", BUYER, "buyer",
		     "{\"type\":\"reschedule\",\"card_id\":\"acd_2\",\"payload\":{\"start_ts\":"
		     "\"2026-12-08T09:00:00Z\",\"end_ts\":\"2026-12-08T10:00:00Z\"}}");
		STEP(e, "dispute.open", BUYER, "buyer", "{\"reason\":\"late\"}");
		if (status == BK_ST_RESOLVED)
			STEP(e, "dispute.resolve", "usr_s", "support",
			     "{\"outcome\":\"resolved_provider\"}");
		return e;
	}
	STEP(e, "order.start", PROV, "provider", "{}");
	if (status == BK_ST_IN_PROGRESS)
		return e;
	STEP(e, "order.deliver", PROV, "provider", "{}");
	if (status == BK_ST_DELIVERED)
		return e;
	STEP(e, "order.complete", BUYER, "buyer", "{}");
	return e;
}

static const char *user_of(bk_role r)
{
	return r == BK_ROLE_BUYER      ? BUYER
	       : r == BK_ROLE_PROVIDER ? PROV
	       : r == BK_ROLE_SUPPORT  ? "usr_s"
				       : "sys";
}

/* A valid payload for the row's command; may run set-up steps (a card, a milestone). */
static const char *payload_for(bk_engine *e, const bk_status_row *r, bk_role role)
{
	const bk_order *o = bk_engine_order(e, "ord_t");
	bool has_ms = bk_order_milestone(o, "mst_1", 5) != NULL;
	bool has_card = bk_order_card(o, "acd_1", 5) != NULL;
	switch ((bk_cmd_type)r->cmd) {
	case BK_CMD_INVITE_SEND:
		return "{\"recipients\":[\"usr_p\"]}";
	case BK_CMD_PAYMENT_CAPTURED: {
		static char pay[200];
		snprintf(pay, sizeof(pay), "{\"payment_intent_id\":\"pi_1\",\"amount_cents\":%lld}",
			 (long long)o->money.total);
		return pay;
	}
	case BK_CMD_INVITE_AWARD:
		STEP(e, "invite.respond", PROV, "provider", "{}");
		return "{\"recipient_user_id\":\"" PROV "\",\"service_profile_id\":\"" SP "\"}";
	case BK_CMD_REQUEST_COUNTER:
		return "{\"line_items\":[{\"kind\":\"package\",\"title\":\"L\",\"unit_cents\":1}],"
		       "\"platform_fee_cents\":0,\"tax_cents\":0}";
	case BK_CMD_ORDER_CANCEL:
		return r->guard == BK_G_SIDE_BUYER	? "{\"reason\":\"r\",\"side\":\"buyer\"}"
		       : r->guard == BK_G_SIDE_PROVIDER ? "{\"reason\":\"r\",\"side\":\"provider\"}"
							: "{\"reason\":\"r\"}";
	case BK_CMD_DISPUTE_OPEN:
		return "{\"reason\":\"r\"}";
	case BK_CMD_DISPUTE_UPDATE:
		return "{\"status\":\"under_review\"}";
	case BK_CMD_DISPUTE_RESOLVE:
		return "{\"outcome\":\"resolved_provider\"}";
	case BK_CMD_MILESTONE_ADD:
		return "{\"title\":\"m\",\"amount_cents\":100}";
	case BK_CMD_MILESTONE_DELIVER:
	case BK_CMD_MILESTONE_DISPUTE:
	case BK_CMD_MILESTONE_REFUND:
		if (has_ms)
			return "{\"milestone_id\":\"mst_1\"}";
		STEP(e, "milestone.add", PROV, "provider",
		     "{\"milestone_id\":\"mst_1\",\"title\":\"m\",\"amount_cents\":100}");
		return "{\"milestone_id\":\"mst_1\"}";
	case BK_CMD_MILESTONE_APPROVE:
		STEP(e, "milestone.add", PROV, "provider",
		     "{\"milestone_id\":\"mst_1\",\"title\":\"m\",\"amount_cents\":100}");
		STEP(e, "milestone.deliver", PROV, "provider", "{\"milestone_id\":\"mst_1\"}");
		return "{\"milestone_id\":\"mst_1\"}";
	case BK_CMD_TIP_ADD:
		return "{\"amount_cents\":500}";
	case BK_CMD_NOTE_ADD:
		return "{\"text\":\"hello\"}";
	case BK_CMD_CARD_OPEN:
		return r->guard == BK_G_CARD_DISPUTE
			   ? "{\"type\":\"dispute\",\"payload\":{\"reason\":\"r\"}}"
			   : "{\"type\":\"reschedule\",\"payload\":{\"start_ts\":"
			     "\"2026-12-08T09:00:00Z\",\"end_ts\":\"2026-12-08T10:00:00Z\"}}";
	case BK_CMD_CARD_RESPOND:
		if (r->guard == BK_G_CARD_COMPLETES) {
			STEP(e, "card.open", PROV, "provider",
			     "{\"type\":\"complete\",\"card_id\":\"acd_1\"}");
			return role == BK_ROLE_BUYER
				   ? "{\"card_id\":\"acd_1\",\"action\":\"accept\"}"
				   : NULL;
		}
		if (!has_card)
			STEP(e, "card.open", PROV, "provider",
			     "{\"type\":\"proofs\",\"card_id\":\"acd_1\"}");
		return role == BK_ROLE_BUYER
			   ? "{\"card_id\":\"acd_1\",\"action\":\"request_changes\"}"
			   : "{\"card_id\":\"acd_1\",\"action\":\"upload\"}";
	case BK_CMD_CARD_CANCEL:
		if (has_card)
			return role == BK_ROLE_BUYER ? "{\"card_id\":\"acd_2\"}"
						     : "{\"card_id\":\"acd_1\"}";
		if (role == BK_ROLE_BUYER)
			STEP(e, "card.open", BUYER, "buyer",
			     "{\"type\":\"extras\",\"card_id\":\"acd_1\",\"payload\":{\"line_"
			     "items\":[{\"kind\":\"extra\",\"title\":\"x\",\"unit_cents\":1}]}}");
		else
			STEP(e, "card.open", PROV, "provider",
			     "{\"type\":\"proofs\",\"card_id\":\"acd_1\"}");
		return "{\"card_id\":\"acd_1\"}";
	default:
		return "{}";
	}
}

static bool skip_cmd(bk_cmd_type c)
{
	return bk_cmd_is_internal(c) || bk_cmd_is_profile(c);
}

START_TEST(tables_selfcheck)
{
	char err[200];
	ck_assert_msg(bk_fsm_selfcheck(err, sizeof(err)) == 0, "%s", err);
	for (size_t i = 0; i < bk_status_table_len; i++)
		ck_assert_uint_eq(bk_status_table[i].index, i);
	for (size_t i = 0; i < bk_card_table_len; i++)
		ck_assert_uint_eq(bk_card_table[i].index, i);
	for (size_t i = 0; i < bk_ms_table_len; i++)
		ck_assert_uint_eq(bk_ms_table[i].index, i);
	for (size_t i = 0; i < bk_profile_table_len; i++) {
		ck_assert_uint_eq(bk_profile_table[i].index, i);
		ck_assert(bk_cmd_is_profile((bk_cmd_type)bk_profile_table[i].cmd));
	}
	ck_assert(bk_cmd_is_profile(BK_CMD_PROFILE_BIND));
	ck_assert(!bk_cmd_is_profile(BK_CMD_ORDER_CREATE));
	/* every name round-trips */
	for (int s = 0; s < BK_ST__COUNT; s++)
		ck_assert_int_eq(bk_status_from(bk_status_name((bk_status)s),
						strlen(bk_status_name((bk_status)s))),
				 s);
	for (int c = 0; c < BK_CMD__COUNT; c++)
		ck_assert_int_eq(
		    bk_cmd_from(bk_cmd_name((bk_cmd_type)c), strlen(bk_cmd_name((bk_cmd_type)c))),
		    c);
	/* the derived ord.order_state of SPEC §2 */
	ck_assert_int_eq(bk_ostate_of(BK_ST_COUNTERED), BK_OS_CREATED);
	ck_assert_int_eq(bk_ostate_of(BK_ST_ACCEPTED), BK_OS_AUTHORIZED);
	ck_assert_int_eq(bk_ostate_of(BK_ST_DELIVERED), BK_OS_IN_PROGRESS);
	ck_assert_int_eq(bk_ostate_of(BK_ST_DECLINED), BK_OS_CANCELLED);
	ck_assert_int_eq(bk_ostate_of(BK_ST_CANCELLED_PROVIDER), BK_OS_CANCELLED);
	ck_assert_int_eq(bk_ostate_of(BK_ST_RESOLVED), BK_OS_CLOSED);
}
END_TEST

/* _i = row index x roles: each (row, actor role in the row) pair must succeed. */
START_TEST(allowed_row_succeeds)
{
	const bk_status_row *r = &bk_status_table[_i / BK_ROLE__COUNT];
	bk_role role = (bk_role)(_i % BK_ROLE__COUNT);
	if (!(r->actors & BK_RM(role)) || skip_cmd((bk_cmd_type)r->cmd) || r->from == 0)
		return;
	int mode = r->guard == BK_G_MODE_INVITE ? 2 : r->guard == BK_G_MODE_IB_RULE ? 0 : 1;
	int rule = r->guard == BK_G_MODE_IB_RULE ? 2 : r->guard == BK_G_MODE_RTB_RULE ? 1 : 0;
	for (int s = 0; s < BK_ST__COUNT; s++) {
		if (!(r->from & BK_STM(s)))
			continue;
		if (mode != 2 && r->cmd == BK_CMD_INVITE_RESPOND)
			continue;
		bk_engine *e = reach((bk_status)s, mode, rule);
		const bk_order *o = bk_engine_order(e, "ord_t");
		ck_assert_int_eq(o->status, s);
		const char *pay = payload_for(e, r, role);
		if (!pay) {
			bk_engine_free(e);
			continue;
		}
		bk_err code;
		char msg[256];
		bk_outcome out = sendj(e, &code, msg, sizeof(msg), CMD("%s", "%s", "%s", "%s"),
				       tick(), bk_cmd_name((bk_cmd_type)r->cmd), user_of(role),
				       bk_role_name(role), g_at, pay);
		ck_assert_msg(out == BK_ACCEPTED, "row %u %s by %s in %s: %s: %s", r->index,
			      bk_cmd_name((bk_cmd_type)r->cmd), bk_role_name(role),
			      bk_status_name((bk_status)s), bk_err_name(code), msg);
		o = bk_engine_order(e, "ord_t");
		bk_status want = r->to == BK_ST_SAME ? (bk_status)s : (bk_status)r->to;
		ck_assert_msg(o->status == want, "row %u from %s: status %s, want %s", r->index,
			      bk_status_name((bk_status)s), bk_status_name((bk_status)o->status),
			      bk_status_name(want));
		bk_engine_free(e);
	}
}
END_TEST

/* _i = status x command: pairs with no row are rejected with invalid_transition. */
START_TEST(other_pairs_rejected)
{
	bk_status s = (bk_status)(_i / BK_CMD__COUNT);
	bk_cmd_type c = (bk_cmd_type)(_i % BK_CMD__COUNT);
	if (skip_cmd(c) || c == BK_CMD_ORDER_CREATE)
		return;
	const bk_status_row *rows[8];
	if (bk_status_rows(s, c, rows, 8) > 0)
		return;
	bk_engine *e = reach(s, 1, 0);
	bk_err code;
	char msg[256];
	bk_outcome out = sendj(e, &code, msg, sizeof(msg), CMD("%s", BUYER, "buyer", "{}"), tick(),
			       bk_cmd_name(c), g_at);
	ck_assert_msg(out == BK_REJECTED && code == BK_E_INVALID_TRANSITION,
		      "%s in %s: got %s %s (%s)", bk_cmd_name(c), bk_status_name(s),
		      bk_outcome_name(out), bk_err_name(code), msg);
	ck_assert_int_eq(bk_engine_order(e, "ord_t")->status, s);
	bk_engine_free(e);
}
END_TEST

/*
 * _i = profile state x actor (each role as the profile's owner PROV, then a provider who
 * does not own it); every service-profile command is sent: it is accepted exactly when a
 * bk_profile_table row has the state, the role and (for BK_PW_OWNER) the owner; else it
 * is forbidden. An accepted command leaves the profile in the row's state.
 */
static void profile_case(bk_cmd_type c, bk_profile_state st, int a)
{
	bk_role role = a == BK_ROLE__COUNT ? BK_ROLE_PROVIDER : (bk_role)a;
	const char *user = a == BK_ROLE__COUNT ? "usr_other" : PROV;
	bk_ruleset *rs = bk_ruleset_new();
	ck_assert_ptr_nonnull(rs);
	if (st != BK_PS_UNBOUND) {
		bk_rule rule = {.allow_ib = true};
		snprintf(rule.rule_id, sizeof(rule.rule_id), "rule_1");
		bk_profile_rules p = {.rules = &rule, .n = 1, .bound = st == BK_PS_BOUND};
		snprintf(p.service_profile_id, sizeof(p.service_profile_id), SP);
		snprintf(p.owner_user_id, sizeof(p.owner_user_id), PROV);
		ck_assert_int_eq(bk_ruleset_put(rs, &p), 0);
	}
	const char *payload = c == BK_CMD_PROFILE_BIND ? "{\"service_profile_id\":\"" SP
							 "\",\"provider_user_id\":\"" PROV "\"}"
			      : c == BK_CMD_AUTOACCEPT_SET
				  ? "{\"rule_id\":\"rule_2\",\"service_profile_id\":\"" SP
				    "\",\"allow_ib\":false}"
				  : "{\"rule_id\":\"rule_1\"}";
	char buf[1024];
	snprintf(buf, sizeof(buf),
		 "{\"id\":\"cmd_p%d\",\"type\":\"%s\",\"order_id\":\"" SP "\",\"actor\":{"
		 "\"user_id\":\"%s\",\"role\":\"%s\"},\"at\":\"2026-11-02T10:00:00Z\","
		 "\"payload\":%s}",
		 (int)c, bk_cmd_name(c), user, bk_role_name(role), payload);
	msgpack_zone z;
	msgpack_zone_init(&z, 4096);
	bk_command cmd;
	char err[256];
	ck_assert_msg(
	    bk_codec_command_decode(buf, strlen(buf), true, true, &z, &cmd, err, sizeof(err)) == 0,
	    "%s", err);
	bk_decide_ctx ctx = {.now = cmd.at, .rules = rs, .tz = bk_tz_offset, .tz_opaque = tzdb};
	bk_decision d;
	ck_assert_int_eq(bk_decide(NULL, &cmd, &ctx, &z, &d), 0);

	const bk_profile_row *r = bk_profile_row_find(c, st);
	bool allowed =
	    r && (r->actors & BK_RM(role)) && (r->who != BK_PW_OWNER || strcmp(user, PROV) == 0);
	ck_assert_msg(allowed ? d.outcome == BK_ACCEPTED
			      : d.outcome == BK_REJECTED && d.code == BK_E_FORBIDDEN,
		      "%s on a %s profile by %s %s: got %s %s (%s), want %s", bk_cmd_name(c),
		      bk_profile_state_name(st), bk_role_name(role), user,
		      bk_outcome_name(d.outcome), bk_err_name(d.code), d.message,
		      allowed ? "accepted" : "forbidden");
	ck_assert_int_eq(d.has_rules, allowed);
	if (allowed) {
		bk_profile_state want = r->to == BK_PS_SAME ? st : (bk_profile_state)r->to;
		ck_assert_int_eq(d.rules.bound, want == BK_PS_BOUND);
		ck_assert_str_eq(d.rules.owner_user_id, PROV);
		ck_assert_uint_eq(d.n_events, 0);
	}
	bk_decision_clear(&d);
	msgpack_zone_destroy(&z);
	bk_ruleset_free(rs);
}

START_TEST(profile_table_decides)
{
	const int actors = BK_ROLE__COUNT + 1;
	for (int c = 0; c < BK_CMD__COUNT; c++)
		if (bk_cmd_is_profile((bk_cmd_type)c))
			profile_case((bk_cmd_type)c, (bk_profile_state)(_i / actors), _i % actors);
}
END_TEST

/* The lifecycle tables: rows name real states, every state but the reserved is reachable,
 * and the moves the decider relies on are (or are not) there. */
START_TEST(lifecycle_tables)
{
	for (int l = 0; l < BK_LIFE__COUNT; l++) {
		const bk_life_table *t = &bk_life_tables[l];
		ck_assert_uint_gt(t->n, 0);
		unsigned reached = t->entered;
		for (size_t i = 0; i < t->n; i++) {
			const bk_life_row *r = &t->rows[i];
			ck_assert_uint_eq(r->index, i);
			ck_assert_int_lt(r->to, t->nstates);
			ck_assert_uint_eq(r->from >> t->nstates, 0);
			ck_assert_str_ne(t->state_name(r->to), "?");
			reached |= 1u << r->to;
		}
		ck_assert_msg(reached == (1u << t->nstates) - 1, "%s: a state nothing enters",
			      t->name);
	}
	/* requests: open while pending or countered; a counter-offer only on a pending one */
	ck_assert(bk_life_open(BK_LIFE_REQUEST, BK_RQ_PENDING));
	ck_assert(bk_life_open(BK_LIFE_REQUEST, BK_RQ_COUNTERED));
	ck_assert(!bk_life_open(BK_LIFE_REQUEST, BK_RQ_ACCEPTED));
	ck_assert(!bk_life_open(BK_LIFE_REQUEST, BK_RQ_EXPIRED));
	ck_assert(bk_life_allows(BK_LIFE_REQUEST, BK_CMD_REQUEST_COUNTER, BK_RQ_PENDING, -1));
	ck_assert(!bk_life_allows(BK_LIFE_REQUEST, BK_CMD_REQUEST_COUNTER, BK_RQ_COUNTERED, -1));
	ck_assert(
	    bk_life_allows(BK_LIFE_REQUEST, BK_CMD_REQUEST_EXPIRE, BK_RQ_COUNTERED, BK_RQ_EXPIRED));
	ck_assert(bk_life_allows(BK_LIFE_REQUEST, BK_CMD_REQUEST_SUBMIT, -1, BK_RQ_PENDING));
	ck_assert(
	    !bk_life_allows(BK_LIFE_REQUEST, BK_CMD_REQUEST_ACCEPT_COUNTER, BK_RQ_PENDING, -1));
	/* recipients: award only one who responded */
	ck_assert(
	    bk_life_allows(BK_LIFE_RECIPIENT, BK_CMD_INVITE_AWARD, BK_RC_RESPONDED, BK_RC_AWARDED));
	ck_assert(
	    !bk_life_allows(BK_LIFE_RECIPIENT, BK_CMD_INVITE_AWARD, BK_RC_NEW, BK_RC_AWARDED));
	ck_assert(!bk_life_allows(BK_LIFE_RECIPIENT, BK_CMD_INVITE_RESPOND, BK_RC_AWARDED, -1));
	/* disputes: open until resolved; updates and resolutions only to their states */
	ck_assert(bk_life_open(BK_LIFE_DISPUTE, BK_DS_UNDER_REVIEW));
	ck_assert(!bk_life_open(BK_LIFE_DISPUTE, BK_DS_SPLIT));
	ck_assert(!bk_life_open(BK_LIFE_DISPUTE, BK_DS_CHARGEBACK));
	ck_assert(
	    bk_life_allows(BK_LIFE_DISPUTE, BK_CMD_DISPUTE_UPDATE, BK_DS_OPEN, BK_DS_UNDER_REVIEW));
	ck_assert(!bk_life_allows(BK_LIFE_DISPUTE, BK_CMD_DISPUTE_UPDATE, BK_DS_OPEN, BK_DS_SPLIT));
	ck_assert(!bk_life_allows(BK_LIFE_DISPUTE, BK_CMD_DISPUTE_RESOLVE, BK_DS_SPLIT,
				  BK_DS_RESOLVED_BUYER));
	ck_assert(!bk_life_allows(BK_LIFE__COUNT, BK_CMD_DISPUTE_OPEN, -1, -1));
}
END_TEST

int main(void)
{
	tzdb = bk_tzdb_new(NULL);
	Suite *su = suite_create("fsm");
	TCase *tc = tcase_create("tables");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, tables_selfcheck);
	tcase_add_test(tc, lifecycle_tables);
	tcase_add_loop_test(tc, allowed_row_succeeds, 0, (int)bk_status_table_len * BK_ROLE__COUNT);
	tcase_add_loop_test(tc, other_pairs_rejected, 0, BK_ST__COUNT * BK_CMD__COUNT);
	tcase_add_loop_test(tc, profile_table_decides, 0, BK_PS__COUNT * (BK_ROLE__COUNT + 1));
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	bk_tzdb_free(tzdb);
	return failed ? 1 : 0;
}
