/*
 * restore.c - rebuilding a partition's state from the log (SPEC §5): command-results for
 * the highest source offset that has its result, the whole rules topic into a fresh
 * shared ruleset, then every events record through the reader rule (bk_engine_read).
 * Nothing here trusts committed consumer offsets; a partition with lost history is refused.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp.h"
#include "log.h"

enum { PH_RESULTS, PH_RULES, PH_EVENTS };

/* One partition being read to its end. */
typedef struct rd_part {
	int kind; /* PH_* */
	int32_t partition;
	int64_t end; /* high watermark at the start */
	bool done;
} rd_part;

typedef struct restore_ctx {
	cp *c;
	bk_ruleset *rules; /* the fresh ruleset being read (phase rules) */
	msgpack_zone z;
	uint64_t n_records, n_forks, n_gaps, n_bad;
} restore_ctx;

static int fail(char *errstr, size_t errstr_size, const char *fmt, ...) BK_PRINTF(3, 4);
static int fail(char *errstr, size_t errstr_size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errstr, errstr_size, fmt, ap);
	va_end(ap);
	return -1;
}

int cp_hdr_int(const rd_kafka_message_t *m, const char *name, int64_t *ret)
{
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t n;
	char buf[32];
	if (rd_kafka_message_headers(m, &h) || !h || rd_kafka_header_get_last(h, name, &v, &n) ||
	    !v || n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	char *end;
	errno = 0;
	long long x = strtoll(buf, &end, 10);
	if (errno || *end)
		return -1;
	*ret = x;
	return 0;
}

static const char *kind_topic(const cp *c, int kind)
{
	return c->topic[kind == PH_RESULTS ? BK_TOPIC_RESULTS
			: kind == PH_RULES ? BK_TOPIC_RULES
					   : BK_TOPIC_EVENTS];
}

static void on_result(restore_ctx *x, const rd_kafka_message_t *m)
{
	int64_t sp, so;
	if (cp_hdr_int(m, "src-partition", &sp) < 0 || cp_hdr_int(m, "src-offset", &so) < 0) {
		x->n_bad++;
		bk_logf(BK_LOG_WARN, "result record without source headers",
			"topic=%s partition=%d offset=%lld", rd_kafka_topic_name(m->rkt),
			(int)m->partition, (long long)m->offset);
		return;
	}
	if (sp != m->partition || sp < 0 || sp >= x->c->nparts)
		return;
	cp_part *p = &x->c->parts[sp];
	if (so > p->last_result)
		p->last_result = so;
	int64_t prev;
	if (cp_hdr_int(m, "prev-src-offset", &prev) < 0)
		prev = -1;
	if (p->n_links == p->cap_links) {
		size_t cap = p->cap_links ? p->cap_links * 2 : 1024;
		int64_t(*l)[2] = realloc(p->links, cap * sizeof(*l));
		if (!l) {
			x->n_bad++;
			return;
		}
		p->links = l;
		p->cap_links = cap;
	}
	p->links[p->n_links][0] = so;
	p->links[p->n_links][1] = prev;
	p->n_links++;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

bool cp_has_result(const cp_part *p, int64_t off)
{
	return p->n_have && bsearch(&off, p->have, p->n_have, sizeof(int64_t), cmp_i64);
}

/*
 * Where partition p resumes: the smallest src-offset some result names as its
 * predecessor without a result of its own (a delivery failed there while later ones
 * landed), else after the highest result. Results at or after that point are kept in
 * p->have, so their commands are decided again (their events may be missing) but not
 * answered twice.
 */
static int plan_resume(cp_part *p)
{
	size_t n = p->n_links;
	int64_t *srcs = malloc((n + 1) * sizeof(*srcs));
	if (!srcs)
		return -1;
	for (size_t i = 0; i < n; i++)
		srcs[i] = p->links[i][0];
	qsort(srcs, n, sizeof(*srcs), cmp_i64);
	int64_t resume = p->last_result + 1;
	for (size_t i = 0; i < n; i++) {
		int64_t prev = p->links[i][1];
		if (prev >= 0 && prev < resume && !bsearch(&prev, srcs, n, sizeof(*srcs), cmp_i64))
			resume = prev;
	}
	/* srcs is sorted: those below resume are answered and behind us, the rest (unique)
	 * stay in p->have */
	size_t m = 0;
	p->prev_result = -1;
	for (size_t i = 0; i < n; i++) {
		if (srcs[i] < resume)
			p->prev_result = srcs[i];
		else if (m == 0 || srcs[m - 1] != srcs[i])
			srcs[m++] = srcs[i];
	}
	p->have = srcs;
	p->n_have = m;
	p->next_offset = resume;
	free(p->links);
	p->links = NULL;
	p->n_links = p->cap_links = 0;
	return 0;
}

static void on_rules(restore_ctx *x, const rd_kafka_message_t *m)
{
	char err[256];
	if (!m->payload) { /* a tombstone deletes the profile's entry */
		if (m->key && m->key_len < BK_ID_MAX) {
			char key[BK_ID_MAX];
			memcpy(key, m->key, m->key_len);
			key[m->key_len] = '\0';
			bk_ruleset_remove(x->rules, key);
		}
		return;
	}
	bk_profile_rules pr;
	if (bk_codec_rules_decode(m->payload, m->len, &pr, err, sizeof(err)) < 0) {
		x->n_bad++;
		bk_logf(BK_LOG_ERROR, "undecodable rules record skipped",
			"topic=%s partition=%d offset=%lld err=\"%s\"", rd_kafka_topic_name(m->rkt),
			(int)m->partition, (long long)m->offset, err);
		return;
	}
	if (bk_ruleset_put(x->rules, &pr) < 0)
		bk_logf(BK_LOG_ERROR, "out of memory storing rules", "service_profile_id=%s",
			pr.service_profile_id);
	bk_profile_rules_clear(&pr);
}

/* Remember an applied record whose result may be missing (src-offset > last_result). */
static void note_pending(cp_part *p, const bk_record *r, int64_t so)
{
	if (so < p->next_offset || cp_has_result(p, so) || !r->command_id || r->n == 0)
		return;
	bool own = false;
	for (uint32_t i = 0; i < r->n; i++)
		if (r->events[i].command_id && !strcmp(r->events[i].command_id, r->command_id))
			own = true;
	if (!own) /* only expiry events (a rejected command): its replay is rejected again */
		return;
	if (!p->pending)
		p->pending = json_object();
	json_t *ids = json_array();
	for (uint32_t i = 0; i < r->n; i++)
		json_array_append_new(ids, json_string(r->events[i].event_id));
	json_object_set_new(
	    p->pending, r->command_id,
	    json_pack("{s:I, s:o}", "v", (json_int_t)r->events[r->n - 1].seq, "ids", ids));
}

static void on_event(restore_ctx *x, const rd_kafka_message_t *m)
{
	char err[256];
	bk_record r;
	msgpack_zone_clear(&x->z);
	if (!m->payload ||
	    bk_codec_record_decode(m->payload, m->len, &x->z, &r, err, sizeof(err)) < 0) {
		x->n_bad++;
		bk_logf(BK_LOG_ERROR, "undecodable events record skipped",
			"topic=%s partition=%d offset=%lld err=\"%s\"", rd_kafka_topic_name(m->rkt),
			(int)m->partition, (long long)m->offset, m->payload ? err : "no value");
		return;
	}
	cp_part *p = &x->c->parts[m->partition];
	int64_t so = -1;
	if (cp_hdr_int(m, "src-offset", &so) == 0 && so > p->last_event)
		p->last_event = so;
	bk_chain_verdict v[BK_MAX_EVENTS];
	bk_chain_verdict *vs = r.n <= BK_MAX_EVENTS ? v : malloc(sizeof(*vs) * r.n);
	if (!vs) {
		x->n_bad++;
		return;
	}
	if (bk_engine_read(p->eng, &r, vs, err, sizeof(err)) < 0) {
		x->n_bad++;
		bk_logf(BK_LOG_ERROR, "events record could not be applied",
			"topic=%s partition=%d offset=%lld order_id=%s err=\"%s\"",
			rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset,
			r.order_id, err);
	}
	bool applied = false;
	for (uint32_t i = 0; i < r.n; i++) {
		if (vs[i] == BK_CHAIN_NEXT) {
			applied = true;
			continue;
		}
		if (vs[i] == BK_CHAIN_DUPLICATE)
			continue;
		if (vs[i] == BK_CHAIN_FORK)
			x->n_forks++;
		else
			x->n_gaps++;
		bk_logf(BK_LOG_WARN, "events record not applied",
			"verdict=%s topic=%s partition=%d offset=%lld order_id=%s seq=%lld "
			"command_id=%s",
			bk_chain_verdict_name(vs[i]), rd_kafka_topic_name(m->rkt),
			(int)m->partition, (long long)m->offset, r.order_id,
			(long long)r.events[i].seq, r.command_id);
	}
	if (vs != v)
		free(vs);
	if (applied && so >= 0)
		note_pending(p, &r, so);
}

/*
 * Read the listed partitions from offset 0 to their current end with the reader
 * consumer, handing each record to its handler. Returns 0 or -1 + errstr.
 */
static int read_to_end(restore_ctx *x, rd_part *rp, int n, char *errstr, size_t errstr_size)
{
	cp *c = x->c;
	rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(n);
	int left = 0;
	for (int i = 0; i < n; i++) {
		int64_t lo, hi;
		const char *t = kind_topic(c, rp[i].kind);
		if (bk_kconf_watermarks(c->reader, t, rp[i].partition, c->o.timeout_ms, &lo, &hi,
					errstr, errstr_size) < 0)
			goto err;
		if (lo > 0 && rp[i].kind != PH_RULES) {
			fail(errstr, errstr_size,
			     "%s [%d]: low watermark is %lld, not 0: the partition has lost "
			     "history (retention is not infinite); refusing to restore from it",
			     t, (int)rp[i].partition, (long long)lo);
			goto err;
		}
		rp[i].end = hi;
		rp[i].done = hi <= lo;
		if (rp[i].done)
			continue;
		rd_kafka_topic_partition_list_add(tl, t, rp[i].partition)->offset = lo;
		left++;
	}
	if (left == 0) {
		rd_kafka_topic_partition_list_destroy(tl);
		return 0;
	}
	rd_kafka_resp_err_t e = rd_kafka_assign(c->reader, tl);
	if (e) {
		fail(errstr, errstr_size, "restore: assign: %s", rd_kafka_err2str(e));
		goto err;
	}
	int64_t last_progress = cp_mono_us();
	while (left > 0) {
		if (*c->stop && c->exit_code) {
			fail(errstr, errstr_size, "restore interrupted");
			goto err_unassign;
		}
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c->reader, 200);
		if (!m) {
			if (cp_mono_us() - last_progress > (int64_t)c->o.timeout_ms * 1000) {
				fail(errstr, errstr_size,
				     "restore stalled: no record for %d ms (%d partitions not "
				     "at their end)",
				     c->o.timeout_ms, left);
				goto err_unassign;
			}
			continue;
		}
		last_progress = cp_mono_us();
		const char *tn = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
		rd_part *me = NULL;
		for (int i = 0; i < n; i++)
			if (rp[i].partition == m->partition &&
			    !strcmp(kind_topic(c, rp[i].kind), tn))
				me = &rp[i];
		if (m->err) {
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				bk_logf(BK_LOG_WARN, "restore: consumer error",
					"topic=%s partition=%d err=\"%s\"", tn, (int)m->partition,
					rd_kafka_message_errstr(m));
			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && me && !me->done) {
				me->done = true;
				left--;
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		if (me && !me->done) {
			x->n_records++;
			if (me->kind == PH_RESULTS)
				on_result(x, m);
			else if (me->kind == PH_RULES)
				on_rules(x, m);
			else
				on_event(x, m);
			if (m->offset >= me->end - 1) {
				me->done = true;
				left--;
			}
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_assign(c->reader, NULL);
	rd_kafka_topic_partition_list_destroy(tl);
	return 0;
err_unassign:
	rd_kafka_assign(c->reader, NULL);
err:
	rd_kafka_topic_partition_list_destroy(tl);
	return -1;
}

void cp_part_reset(cp_part *p)
{
	bk_engine_free(p->eng);
	p->eng = NULL;
	json_decref(p->pending);
	p->pending = NULL;
	p->restored = false;
	p->last_result = -1;
	p->last_event = -1;
	p->prev_result = -1;
	free(p->have);
	p->have = NULL;
	p->n_have = 0;
	free(p->links);
	p->links = NULL;
	p->n_links = p->cap_links = 0;
	p->batch_first = -1;
	p->next_offset = 0;
}

int cp_restore(cp *c, const int32_t *ps, int n, char *errstr, size_t errstr_size)
{
	int64_t t0 = cp_mono_us();
	restore_ctx x = {.c = c};
	rd_part *rp = calloc((size_t)(2 * n + c->rules_parts) + 1, sizeof(*rp));
	if (!rp)
		return fail(errstr, errstr_size, "out of memory");
	msgpack_zone_init(&x.z, 1 << 16);
	x.rules = bk_ruleset_new();
	int rc = -1;
	if (!x.rules) {
		fail(errstr, errstr_size, "out of memory");
		goto done;
	}
	for (int i = 0; i < n; i++) {
		cp_part *p = &c->parts[ps[i]];
		cp_part_reset(p);
		if (!(p->eng = bk_engine_new())) {
			fail(errstr, errstr_size, "out of memory");
			goto done;
		}
	}
	/* phase 1: results of our partitions, and every rules partition */
	int k = 0;
	for (int i = 0; i < n; i++)
		rp[k++] = (rd_part){.kind = PH_RESULTS, .partition = ps[i]};
	for (int i = 0; i < c->rules_parts; i++)
		rp[k++] = (rd_part){.kind = PH_RULES, .partition = i};
	if (read_to_end(&x, rp, k, errstr, errstr_size) < 0)
		goto done;
	for (int i = 0; i < n; i++)
		if (plan_resume(&c->parts[ps[i]]) < 0) {
			fail(errstr, errstr_size, "out of memory");
			goto done;
		}
	/* the fresh ruleset replaces the old one for every engine */
	for (int i = 0; i < c->nparts; i++)
		if (c->parts[i].eng)
			bk_engine_share_rules(c->parts[i].eng, x.rules);
	bk_ruleset_free(c->rules);
	c->rules = x.rules;
	x.rules = NULL;
	/* phase 2: events */
	k = 0;
	for (int i = 0; i < n; i++)
		rp[k++] = (rd_part){.kind = PH_EVENTS, .partition = ps[i]};
	if (read_to_end(&x, rp, k, errstr, errstr_size) < 0)
		goto done;
	for (int i = 0; i < n; i++) {
		cp_part *p = &c->parts[ps[i]];
		p->restored = true;
		bk_logf(BK_LOG_INFO, "partition restored",
			"topic=%s partition=%d orders=%zu last_result_offset=%lld "
			"last_event_offset=%lld resume_offset=%lld answered_after_resume=%zu "
			"pending_results=%zu",
			c->topic[BK_TOPIC_COMMANDS], (int)ps[i], bk_engine_count(p->eng),
			(long long)p->last_result, (long long)p->last_event,
			(long long)p->next_offset, p->n_have,
			p->pending ? json_object_size(p->pending) : 0);
	}
	bk_logf(BK_LOG_INFO, "restore finished",
		"partitions=%d records=%llu forks=%llu gaps=%llu bad=%llu rules_profiles=%zu "
		"ms=%lld",
		n, (unsigned long long)x.n_records, (unsigned long long)x.n_forks,
		(unsigned long long)x.n_gaps, (unsigned long long)x.n_bad,
		bk_ruleset_count(c->rules), (long long)((cp_mono_us() - t0) / 1000));
	rc = 0;
done:
	if (rc < 0)
		for (int i = 0; i < n; i++)
			cp_part_reset(&c->parts[ps[i]]);
	bk_ruleset_free(x.rules);
	msgpack_zone_destroy(&x.z);
	free(rp);
	return rc;
}
