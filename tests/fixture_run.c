/*
 * fixture_run.c - fixture runner: JSON lines -> commands -> engine, plus order summaries.
 */
#include <stdlib.h>
#include <string.h>

#include "bk_codec.h"
#include "fixture_run.h"
#include "tz.h"

static bk_tzdb *tzdb;

json_t *fx_order_summary(const bk_order *o)
{
	json_t *j = json_object();
	json_object_set_new(j, "status", json_string(bk_status_name((bk_status)o->status)));
	json_object_set_new(j, "order_state",
			    json_string(bk_ostate_name(bk_ostate_of((bk_status)o->status))));
	json_object_set_new(j, "mode", json_string(bk_mode_name((bk_mode)o->mode)));
	json_object_set_new(j, "version", json_integer(o->version));
	json_object_set_new(j, "buyer_user_id", json_string(o->buyer));
	json_object_set_new(j, "provider_user_id", json_string(o->provider));
	json_object_set_new(j, "service_profile_id", json_string(o->service_profile));
	json_object_set_new(j, "subtotal_cents", json_integer(o->money.subtotal));
	json_object_set_new(j, "platform_fee_cents", json_integer(o->money.fee));
	json_object_set_new(j, "tax_cents", json_integer(o->money.tax));
	json_object_set_new(j, "tip_cents", json_integer(o->money.tip));
	json_object_set_new(j, "total_cents", json_integer(o->money.total));
	json_object_set_new(j, "paid_cents", json_integer(o->money.paid));
	json_object_set_new(j, "refunded_cents", json_integer(o->money.refunded));
	char ts[40];
	bk_ts_format(o->start_ts, ts, sizeof(ts));
	json_object_set_new(j, "start_ts", json_string(ts));
	bk_ts_format(o->end_ts, ts, sizeof(ts));
	json_object_set_new(j, "end_ts", json_string(ts));
	json_t *li = json_array();
	for (uint32_t i = 0; i < o->items.n; i++) {
		const bk_line_item *l = &o->items.v[i];
		json_array_append_new(li, json_pack("{s:s, s:s, s:I, s:I}", "kind",
						    bk_li_kind_name((bk_li_kind)l->kind), "title",
						    l->title, "qty", (json_int_t)l->qty,
						    "total_cents", (json_int_t)l->total_cents));
	}
	json_object_set_new(j, "line_items", li);
	json_t *m = json_object();
	for (uint32_t i = 0; i < o->n_reqs; i++)
		json_object_set_new(
		    m, o->reqs[i].id,
		    json_string(bk_req_status_name((bk_req_status)o->reqs[i].status)));
	json_object_set_new(j, "requests", m);
	m = json_object();
	for (uint32_t i = 0; i < o->n_rcps; i++)
		json_object_set_new(
		    m, o->rcps[i].user_id,
		    json_string(bk_rcp_status_name((bk_rcp_status)o->rcps[i].status)));
	json_object_set_new(j, "recipients", m);
	m = json_object();
	for (uint32_t i = 0; i < o->n_cards; i++)
		json_object_set_new(
		    m, o->cards[i].id,
		    json_pack("{s:s, s:s}", "type",
			      bk_card_type_name((bk_card_type)o->cards[i].type), "state",
			      bk_card_state_name((bk_card_state)o->cards[i].state)));
	json_object_set_new(j, "cards", m);
	m = json_object();
	for (uint32_t i = 0; i < o->n_disputes; i++)
		json_object_set_new(
		    m, o->disputes[i].id,
		    json_string(bk_dsp_status_name((bk_dsp_status)o->disputes[i].status)));
	json_object_set_new(j, "disputes", m);
	m = json_object();
	for (uint32_t i = 0; i < o->n_ms; i++)
		json_object_set_new(m, o->ms[i].id,
				    json_string(bk_ms_state_name((bk_ms_state)o->ms[i].status)));
	json_object_set_new(j, "milestones", m);
	return j;
}

static void add_summary(const bk_order *o, void *opaque)
{
	json_object_set_new(opaque, o->order_id, fx_order_summary(o));
}

json_t *fx_engine_summary(const bk_engine *e)
{
	json_t *j = json_object();
	bk_engine_foreach(e, add_summary, j);
	return j;
}

int fx_run_file(bk_engine *e, const char *path, json_t *fails, char *err, size_t errsz)
{
	return fx_run_file_cb(e, path, fails, NULL, NULL, err, errsz);
}

int fx_run_file_cb(bk_engine *e, const char *path, json_t *fails, fx_record_fn cb, void *opaque,
		   char *err, size_t errsz)
{
	if (!tzdb)
		tzdb = bk_tzdb_new(NULL);
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errsz, "%s: cannot open", path);
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int n = 0, lineno = 0, rc = 0;
	while ((len = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (len <= 1 || line[0] == '#')
			continue;
		json_error_t jerr;
		json_t *j = json_loadb(line, (size_t)len, 0, &jerr);
		if (!j) {
			snprintf(err, errsz, "%s:%d: %s", path, lineno, jerr.text);
			rc = -1;
			break;
		}
		msgpack_zone z;
		msgpack_zone_init(&z, 4096);
		bk_command c;
		char derr[256];
		if (bk_codec_command_decode(line, (size_t)len, true, true, &z, &c, derr,
					    sizeof(derr)) < 0) {
			json_t *exp = json_object_get(j, "expect");
			const char *want = json_string_value(json_object_get(exp, "status"));
			if (!want || strcmp(want, "malformed") != 0)
				json_array_append_new(
				    fails, json_sprintf("%s:%d: decode: %s", path, lineno, derr));
			msgpack_zone_destroy(&z);
			json_decref(j);
			n++;
			continue;
		}
		bk_decide_ctx ctx = {.now = c.at,
				     .expiring_lead = INT64_C(24) * 3600 * BK_US_PER_S,
				     .tz = bk_tz_offset,
				     .tz_opaque = tzdb};
		bk_decision d;
		if (bk_engine_handle(e, &c, &ctx, &z, &d) < 0) {
			snprintf(err, errsz, "%s:%d: %s", path, lineno, d.message);
			rc = -1;
			msgpack_zone_destroy(&z);
			json_decref(j);
			break;
		}
		if (cb && d.n_events) {
			bk_record rec = {c.order_id, c.id, d.events, d.n_events};
			msgpack_sbuffer sb;
			msgpack_sbuffer_init(&sb);
			int cr = bk_codec_record_encode(&rec, &sb) < 0
				     ? -1
				     : cb(opaque, &rec, sb.data, sb.size);
			msgpack_sbuffer_destroy(&sb);
			if (cr < 0) {
				snprintf(err, errsz, "%s:%d: record handler failed", path, lineno);
				rc = -1;
				bk_decision_clear(&d);
				msgpack_zone_destroy(&z);
				json_decref(j);
				break;
			}
		}
		json_t *exp = json_object_get(j, "expect");
		const char *want = json_string_value(json_object_get(exp, "status"));
		const char *code = json_string_value(json_object_get(exp, "code"));
		if (!want)
			want = "accepted";
		if (strcmp(want, bk_outcome_name(d.outcome)) != 0 ||
		    (code && strcmp(code, bk_err_name(d.code)) != 0))
			json_array_append_new(
			    fails, json_sprintf("%s:%d: %s: want %s%s%s, got %s %s: %s", path,
						lineno, c.id, want, code ? " " : "",
						code ? code : "", bk_outcome_name(d.outcome),
						bk_err_name(d.code), d.message));
		bk_decision_clear(&d);
		msgpack_zone_destroy(&z);
		json_decref(j);
		n++;
	}
	free(line);
	fclose(f);
	return rc < 0 ? -1 : n;
}

int fx_subset_diff(const json_t *want, const json_t *got, const char *path, json_t *diffs)
{
	int n = 0;
	if (json_is_object(want) && json_is_object(got)) {
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)want, k, v)
		{
			char sub[512];
			snprintf(sub, sizeof(sub), "%s.%s", path, k);
			json_t *g = json_object_get(got, k);
			if (!g) {
				json_array_append_new(diffs, json_sprintf("%s: missing", sub));
				n++;
				continue;
			}
			n += fx_subset_diff(v, g, sub, diffs);
		}
		return n;
	}
	if (!json_equal((json_t *)want, (json_t *)got)) {
		char *a = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
		char *b = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
		json_array_append_new(diffs, json_sprintf("%s: want %s, got %s", path, a, b));
		free(a);
		free(b);
		n++;
	}
	return n;
}
