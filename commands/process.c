/*
 * process.c - one admitted command record in (admit.c did the checks), its records out:
 * a DLQ record, or decide+evolve through the partition's engine, then one events record,
 * one result, and for autoaccept.* one rules record, produced in the open batch. Results
 * are released in order as the records before them are acknowledged. Batches close as
 * one transaction (or one flush); a failed batch is forgotten by restoring the
 * partitions again from the log and seeking back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp.h"
#include "log.h"
#include "trust.h"

int64_t cp_now_us(const cp *c)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 + c->o.clock_offset_s * 1000000;
}

int64_t cp_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void cp_fatal(cp *c, int code)
{
	if (!c->exit_code)
		c->exit_code = code;
	*c->stop = 1;
}

bool cp_batch_due(const cp *c)
{
	if (!c->txn_open)
		return false;
	int64_t now = cp_mono_us();
	return c->batch_n >= c->o.batch_commands ||
	       now - c->batch_start_us >= (int64_t)c->o.batch_ms * 1000 ||
	       (c->o.batch_idle_ms > 0 &&
		now - c->last_cmd_us >= (int64_t)c->o.batch_idle_ms * 1000);
}

static int batch_begin(cp *c)
{
	if (c->txn_open)
		return 0;
	if (!c->o.no_txn) {
		rd_kafka_error_t *e = rd_kafka_begin_transaction(c->producer);
		if (e) {
			bk_logf(BK_LOG_ERROR, "begin_transaction failed", "err=\"%s\" fatal=%d",
				rd_kafka_error_string(e), rd_kafka_error_is_fatal(e));
			rd_kafka_error_destroy(e);
			cp_fatal(c, CP_EXIT_FATAL);
			return -1;
		}
	}
	c->txn_open = true;
	c->epoch++;
	c->gate_n = 0;
	c->gate_prefix = 0;
	c->n_srec = 0;
	c->held_next = 0;
	c->batch_n = 0;
	c->batch_start_us = cp_mono_us();
	c->last_cmd_us = c->batch_start_us;
	c->dr_err = RD_KAFKA_RESP_ERR_NO_ERROR;
	return 0;
}

static void hdr_int(rd_kafka_headers_t *h, const char *name, int64_t v)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%lld", (long long)v);
	rd_kafka_header_add(h, name, -1, buf, n);
}

/*
 * A record's delivery-report opaque: the batch epoch (16 bits), its gate number (24
 * bits, 0: not gated) and its index in the batch's sealed records + 1 (24 bits, 0: not
 * sealed). A batch that would overflow either fails at its close.
 */
#define GATE_MAX ((1u << 24) - 1)

static uint64_t gate_next(cp *c)
{
	if (c->gate_n >= GATE_MAX)
		return 0;
	if (c->gate_n == c->cap_gate) {
		size_t cap = c->cap_gate ? c->cap_gate * 2 : 4096;
		uint8_t *v = realloc(c->gate_acked, cap);
		if (!v)
			return 0; /* never released: the batch fails at its close */
		c->gate_acked = v;
		c->cap_gate = cap;
	}
	c->gate_acked[c->gate_n++] = 0;
	return c->gate_n;
}

/* Note a record its seal will list; returns its index + 1, or 0 (the batch then fails). */
static uint64_t srec_next(cp *c, int kind, int32_t partition, const uint8_t d[BK_HASH_LEN])
{
	if (c->n_srec >= GATE_MAX)
		goto fail;
	if (c->n_srec == c->cap_srec) {
		size_t cap = c->cap_srec ? c->cap_srec * 2 : 4096;
		cp_sealrec *v = realloc(c->srec, cap * sizeof(*v));
		if (!v)
			goto fail;
		c->srec = v;
		c->cap_srec = cap;
	}
	cp_sealrec *r = &c->srec[c->n_srec++];
	r->kind = (uint8_t)kind;
	r->partition = partition;
	r->offset = -1;
	if (d)
		memcpy(r->digest, d, BK_HASH_LEN);
	else
		memset(r->digest, 0, BK_HASH_LEN); /* covers nothing: no record has it */
	return c->n_srec;
fail:
	if (c->dr_err == RD_KAFKA_RESP_ERR_NO_ERROR)
		c->dr_err = RD_KAFKA_RESP_ERR__FAIL;
	return 0;
}

void cp_gate_acked(cp *c, uintptr_t opaque, int64_t offset)
{
	uint64_t o = (uint64_t)opaque;
	uint64_t g = (o >> 24) & GATE_MAX, si = o & GATE_MAX;
	if (o == 0 || (uint32_t)(o >> 48) != (c->epoch & 0xffffu))
		return; /* a report from an earlier batch */
	if (si > 0 && si <= c->n_srec)
		c->srec[si - 1].offset = offset;
	if (g == 0 || g > c->gate_n)
		return;
	c->gate_acked[g - 1] = 1;
	while (c->gate_prefix < c->gate_n && c->gate_acked[c->gate_prefix])
		c->gate_prefix++;
}

/* The batch's chunks: bytes that librdkafka may point to until the batch is over. */
typedef struct cp_chunk {
	struct cp_chunk *next;
	size_t n, cap;
	char data[];
} cp_chunk;

#define CHUNK_BYTES ((size_t)1 << 20)

/* n bytes in the open batch's chunks, or NULL when out of memory. Chunks are used in list
 * order from chunk_cur; a new one goes at the end. */
static char *bytes_alloc(cp *c, size_t n)
{
	cp_chunk *k = c->chunk_cur ? c->chunk_cur : c->chunks, *last = NULL;
	for (; k && k->cap - k->n < n; k = k->next)
		last = k;
	if (!k) {
		size_t cap = n > CHUNK_BYTES ? n : CHUNK_BYTES;
		if (!(k = malloc(sizeof(*k) + cap)))
			return NULL;
		*k = (cp_chunk){.cap = cap};
		while (last && last->next)
			last = last->next;
		*(last ? &last->next : &c->chunks) = k;
	}
	c->chunk_cur = k;
	char *at = k->data + k->n;
	k->n += n;
	return at;
}

/* The batch is over: its chunks are reused once the producer holds none of its records.
 * After a commit, an abort or a flush it holds none; if a flush timed out, the chunks
 * keep their bytes (later batches use what is left after them) until a later reset. */
static void bytes_reset(cp *c)
{
	if (rd_kafka_outq_len(c->producer) > 0 &&
	    rd_kafka_flush(c->producer, c->o.timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		bk_logf(BK_LOG_WARN, "records still queued after the batch: keeping their memory",
			"queued=%d", rd_kafka_outq_len(c->producer));
		return;
	}
	for (cp_chunk *k = c->chunks; k; k = k->next)
		k->n = 0;
	c->chunk_cur = c->chunks;
}

/* Produce val to topic/partition; takes hdrs (NULL ok) in every case. `in_chunks`: val
 * lives in the batch's chunks (bytes_alloc), which stay put until the batch is over, so
 * librdkafka need not copy it. A gated record (events, rules, DLQ) holds back the results
 * produced after it until it is acknowledged. */
static int produce(cp *c, const char *topic, int32_t partition, const void *key, size_t klen,
		   const void *val, size_t vlen, rd_kafka_headers_t *hdrs, bool gated,
		   bool in_chunks, int seal_kind, const uint8_t *digest)
{
	uint64_t g = gated ? gate_next(c) : 0;
	uint64_t si = seal_kind >= 0 ? srec_next(c, seal_kind, partition, digest) : 0;
	uintptr_t opaque = (uintptr_t)(((uint64_t)(c->epoch & 0xffffu) << 48) | (g << 24) | si);
	const int flags = in_chunks ? 0 : RD_KAFKA_MSG_F_COPY;
	for (int tries = 0;; tries++) {
		rd_kafka_resp_err_t e = rd_kafka_producev(
		    c->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
		    RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)val, vlen),
		    RD_KAFKA_V_MSGFLAGS(flags), RD_KAFKA_V_HEADERS(hdrs),
		    RD_KAFKA_V_OPAQUE((void *)opaque), RD_KAFKA_V_END);
		if (!e)
			return 0;
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && tries < 600) {
			rd_kafka_poll(c->producer, 50);
			continue;
		}
		bk_logf(BK_LOG_ERROR, "produce failed", "topic=%s partition=%d err=\"%s\"", topic,
			(int)partition, rd_kafka_err2str(e));
		if (hdrs)
			rd_kafka_headers_destroy(hdrs);
		if (c->dr_err == RD_KAFKA_RESP_ERR_NO_ERROR)
			c->dr_err = e;
		return -1;
	}
}

/* Dead-letter a command record: original key and value, reason and source headers,
 * `command-id` when one could be read (cid, never NULL, not empty), the original headers
 * renamed orig-<name>. */
static int dlq(cp *c, const rd_kafka_message_t *m, const char *reason, const char *cid)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(8);
	rd_kafka_header_add(h, "reason", -1, reason, -1);
	if (cid[0])
		rd_kafka_header_add(h, "command-id", -1, cid, -1);
	rd_kafka_header_add(h, "src-topic", -1, rd_kafka_topic_name(m->rkt), -1);
	hdr_int(h, "src-partition", m->partition);
	hdr_int(h, "src-offset", m->offset);
	rd_kafka_headers_t *oh = NULL;
	if (!rd_kafka_message_headers(m, &oh) && oh) {
		const char *name;
		const void *v;
		size_t n;
		for (size_t i = 0; !rd_kafka_header_get_all(oh, i, &name, &v, &n); i++) {
			char nn[256];
			snprintf(nn, sizeof(nn), "orig-%s", name);
			rd_kafka_header_add(h, nn, -1, v, (ssize_t)n);
		}
	}
	int32_t part = c->dlq_parts == c->nparts ? m->partition : RD_KAFKA_PARTITION_UA;
	c->n_dlq++;
	bk_logf(BK_LOG_WARN, "command dead-lettered", "topic=%s partition=%d offset=%lld reason=%s",
		rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset, reason);
	return produce(c, c->topic[BK_TOPIC_DLQ], part, m->key, m->key_len, m->payload, m->len, h,
		       true, false, -1, NULL);
}

/* The events record of a decision: key order_id, explicit partition p. */
static int produce_events(cp *c, int32_t p, int64_t src_offset, const char *cmd_id,
			  const bk_decision *d)
{
	bk_record r = {.order_id = d->events[0].order_id,
		       .command_id = cmd_id,
		       .events = d->events,
		       .n = d->n_events};
	msgpack_sbuffer *sb = &c->enc;
	msgpack_sbuffer_clear(sb);
	if (bk_codec_record_encode(&r, sb) < 0) {
		bk_logf(BK_LOG_ERROR, "events record encode failed", "order_id=%s command_id=%s",
			r.order_id, cmd_id);
		return -1;
	}
	char types[BK_MAX_EVENTS * 50];
	size_t tn = 0;
	types[0] = '\0';
	for (uint32_t i = 0; i < d->n_events; i++) {
		char sub[64];
		bk_event_subtype(&d->events[i], sub, sizeof(sub));
		tn += (size_t)snprintf(types + tn, sizeof(types) - tn, "%s%s", i ? "," : "", sub);
		if (tn >= sizeof(types))
			tn = sizeof(types) - 1;
	}
	rd_kafka_headers_t *h = rd_kafka_headers_new(5);
	rd_kafka_header_add(h, "event-types", -1, types, (ssize_t)tn);
	hdr_int(h, "schema", BK_EVENT_SCHEMA);
	hdr_int(h, "src-partition", p);
	hdr_int(h, "src-offset", src_offset);
	rd_kafka_header_add(h, "command-id", -1, cmd_id, -1);
	char *val = bytes_alloc(c, sb->size);
	if (val)
		memcpy(val, sb->data, sb->size);
	uint8_t digest[BK_HASH_LEN];
	bk_seal_digest_record(&r, digest);
	int rc = produce(c, c->topic[BK_TOPIC_EVENTS], p, r.order_id, strlen(r.order_id),
			 val ? val : sb->data, sb->size, h, true, val != NULL, 0, digest);
	c->n_events += d->n_events;
	return rc;
}

/* The result of command `src_offset`, held until the gated records before it are
 * acknowledged; header prev-src-offset names the partition's previous result. */
static int produce_result(cp *c, int32_t p, int64_t src_offset, const bk_result *res)
{
	cp_part *pt = &c->parts[p];
	msgpack_sbuffer *sb = &c->enc;
	msgpack_sbuffer_clear(sb);
	if (bk_codec_result_encode(res, sb) < 0) {
		bk_logf(BK_LOG_ERROR, "result encode failed", "command_id=%s", res->command_id);
		return -1;
	}
	size_t kn = strlen(res->order_id), cn = strlen(res->command_id);
	char *at = bytes_alloc(c, kn + sb->size + cn);
	if (!at)
		return -1;
	if (c->n_held == c->cap_held) {
		size_t cap = c->cap_held ? c->cap_held * 2 : 1024;
		cp_held *v = realloc(c->held, cap * sizeof(*v));
		if (!v)
			return -1;
		c->held = v;
		c->cap_held = cap;
	}
	cp_held *e = &c->held[c->n_held++];
	*e = (cp_held){.gate = c->gate_n,
		       .partition = p,
		       .src_offset = src_offset,
		       .prev_src_offset = pt->prev_result,
		       .at = at,
		       .key_n = (uint32_t)kn,
		       .val_n = (uint32_t)sb->size,
		       .cid_n = (uint32_t)cn};
	memcpy(at, res->order_id, kn);
	memcpy(at + kn, sb->data, sb->size);
	memcpy(at + kn + sb->size, res->command_id, cn);
	pt->prev_result = src_offset;
	return 0;
}

/* Produce a held result, with its headers. */
static int release_one(cp *c, const cp_held *e)
{
	const char *at = e->at;
	rd_kafka_headers_t *h = rd_kafka_headers_new(4);
	hdr_int(h, "src-partition", e->partition);
	hdr_int(h, "src-offset", e->src_offset);
	hdr_int(h, "prev-src-offset", e->prev_src_offset);
	rd_kafka_header_add(h, "command-id", -1, at + e->key_n + e->val_n, (ssize_t)e->cid_n);
	uint8_t digest[BK_HASH_LEN];
	bk_seal_digest_bytes(at + e->key_n, e->val_n, digest);
	return produce(c, c->topic[BK_TOPIC_RESULTS], e->partition, at, e->key_n, at + e->key_n,
		       e->val_n, h, false, true, 1, digest);
}

int cp_release_ready(cp *c)
{
	if (c->dr_err)
		return 0; /* the batch fails: nothing more goes out */
	while (c->held_next < c->n_held && c->held[c->held_next].gate <= c->gate_prefix) {
		if (release_one(c, &c->held[c->held_next++]) < 0)
			return -1;
	}
	return 0;
}

/* Produce (send = true) or drop the results not yet produced; forget them all. */
static int release_held(cp *c, bool send)
{
	int rc = 0;
	for (size_t i = c->held_next; send && rc == 0 && i < c->n_held; i++)
		rc = release_one(c, &c->held[i]);
	c->n_held = 0;
	c->held_next = 0;
	return rc;
}

void cp_held_free(cp *c)
{
	release_held(c, false);
	free(c->held);
	c->held = NULL;
	c->cap_held = 0;
	while (c->chunks) {
		cp_chunk *k = c->chunks;
		c->chunks = k->next;
		free(k);
	}
	c->chunk_cur = NULL;
	free(c->gate_acked);
	c->gate_acked = NULL;
	c->cap_gate = 0;
}

static int produce_rules(cp *c, const bk_profile_rules *pr)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	if (bk_codec_rules_encode(pr, &sb) < 0) {
		msgpack_sbuffer_destroy(&sb);
		bk_logf(BK_LOG_ERROR, "rules encode failed", "service_profile_id=%s",
			pr->service_profile_id);
		return -1;
	}
	const size_t kn = strlen(pr->service_profile_id);
	uint8_t sig[BK_SIG_LEN];
	bk_trust_sign_rules(c->wsk, pr->service_profile_id, kn, sb.data, sb.size, sig);
	rd_kafka_headers_t *h = rd_kafka_headers_new(3);
	rd_kafka_header_add(h, "key-id", -1, c->wkid, -1);
	rd_kafka_header_add(h, "signature", -1, sig, BK_SIG_LEN);
	rd_kafka_header_add(h, "writer-instance", -1, c->instance, -1);
	int rc = produce(c, c->topic[BK_TOPIC_RULES], RD_KAFKA_PARTITION_UA, pr->service_profile_id,
			 kn, sb.data, sb.size, h, true, false, -1, NULL);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static bk_decide_ctx decide_ctx_on(const cp *c, int64_t now, msgpack_sbuffer *scratch)
{
	return (bk_decide_ctx){.now = now,
			       .expiring_lead = c->o.expiring_lead_s * 1000000,
			       .archive_after = c->o.archive_after_s * 1000000,
			       .tz = bk_tz_offset,
			       .tz_opaque = c->tz,
			       .scratch = scratch};
}

static bk_decide_ctx decide_ctx(cp *c, int64_t now)
{
	return decide_ctx_on(c, now, &c->dscratch);
}

/* One pool item of cp_decide_run: the records of one partition, in order. */
typedef struct decide_job {
	cp *c;
	cp_adm *adm;
	const uint16_t *idx; /* record indexes, grouped by partition, in run order per group */
	const uint16_t *grp; /* [ngroups + 1]: group g is idx[grp[g]..grp[g + 1]) */
} decide_job;

static void decide_item(void *arg, size_t g, int worker)
{
	decide_job *j = arg;
	cp *c = j->c;
	msgpack_sbuffer *scratch = worker == 0 ? &c->dscratch : &c->wscratch[worker];
	for (uint16_t k = j->grp[g]; k < j->grp[g + 1]; k++) {
		cp_adm *a = &j->adm[j->idx[k]];
		cp_part *p = &c->parts[a->m->partition];
		bk_decide_ctx ctx = decide_ctx_on(c, cp_now_us(c), scratch);
		a->dec_rc = bk_engine_handle(p->eng, &a->cmd, &ctx, &a->z, &a->d);
		const bk_order *o = bk_engine_order(p->eng, a->cmd.order_id);
		a->version = o ? o->version : 0;
		a->decided = true;
		if (a->dec_rc < 0)
			break; /* the engine may hold half of it: the batch fails there */
	}
}

static bool rules_cmd(const bk_command *cmd)
{
	return bk_cmd_is_profile((bk_cmd_type)cmd->type); /* profile.bind, autoaccept.* */
}

/* Decide the records idx[0..m) (run order): grouped by partition, one pool item each.
 * false when an engine failed (the batch fails there: nothing more is decided ahead). */
static bool decide_segment(cp *c, cp_adm *adm, uint16_t *idx, size_t m)
{
	uint16_t grp[CP_RUN_MAX + 1];
	/* stable insertion sort by partition: a partition's records keep the run order */
	for (size_t i = 1; i < m; i++) {
		uint16_t v = idx[i];
		size_t k = i;
		while (k > 0 && adm[idx[k - 1]].m->partition > adm[v].m->partition) {
			idx[k] = idx[k - 1];
			k--;
		}
		idx[k] = v;
	}
	size_t ng = 0;
	for (size_t k = 0; k < m; k++)
		if (k == 0 || adm[idx[k]].m->partition != adm[idx[k - 1]].m->partition)
			grp[ng++] = (uint16_t)k;
	grp[ng] = (uint16_t)m;
	decide_job j = {c, adm, idx, grp};
	bk_pool_run(c->pool, decide_item, &j, ng);
	for (size_t k = 0; k < m; k++)
		if (!adm[idx[k]].decided || adm[idx[k]].dec_rc < 0)
			return false;
	return true;
}

void cp_decide_run(cp *c, cp_adm *adm, size_t n)
{
	if (bk_pool_threads(c->pool) == 0 || c->n_wscratch <= bk_pool_threads(c->pool) ||
	    n > CP_RUN_MAX)
		return;
	uint16_t idx[CP_RUN_MAX];
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		cp_adm *a = &adm[i];
		if (a->skip || !a->checked || a->dlq || a->m->err || !cp_wants(c, a->m))
			continue;
		if (rules_cmd(&a->cmd)) {
			/* it changes the shared ruleset: the records before it are decided
			 * first, those after it once it is */
			if (m > 0 && !decide_segment(c, adm, idx, m))
				return;
			m = 0;
			idx[0] = (uint16_t)i;
			if (!decide_segment(c, adm, idx, 1))
				return;
			continue;
		}
		idx[m++] = (uint16_t)i;
	}
	if (m > 0)
		decide_segment(c, adm, idx, m);
}

bool cp_wants(const cp *c, const rd_kafka_message_t *m)
{
	if (m->err || m->partition < 0 || m->partition >= c->nparts)
		return false;
	const cp_part *p = &c->parts[m->partition];
	return p->assigned && p->restored && m->offset >= p->next_offset;
}

void cp_note_unsigned(cp *c, const rd_kafka_message_t *m, const bk_command *cmd)
{
	if (++c->n_unsigned <= CP_UNSIGNED_LOGGED) {
		bk_logf(BK_LOG_WARN,
			"UNSIGNED COMMAND ACCEPTED (--allow-unsigned: development only)",
			"topic=%s partition=%d offset=%lld order_id=%s command_id=%s%s",
			rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset,
			cmd->order_id, cmd->id,
			c->n_unsigned == CP_UNSIGNED_LOGGED
			    ? " next=\"further ones are counted every 10 s\""
			    : "");
		return;
	}
	c->n_unsigned_unreported++;
}

void cp_report_unsigned(cp *c)
{
	if (!c->n_unsigned_unreported)
		return;
	bk_logf(BK_LOG_WARN, "UNSIGNED COMMANDS ACCEPTED (--allow-unsigned: development only)",
		"since_last=%llu total=%llu", (unsigned long long)c->n_unsigned_unreported,
		(unsigned long long)c->n_unsigned);
	c->n_unsigned_unreported = 0;
}

int cp_handle_admitted(cp *c, cp_adm *a)
{
	const rd_kafka_message_t *m = a->m;
	if (a->skip || !cp_wants(c, m)) {
		if (a->decided) {
			/* cannot happen (nothing between deciding and handling changes what is
			 * wanted); if it did, the engine would hold an unwritten decision */
			bk_logf(BK_LOG_ERROR, "a decided command was not handled: restoring",
				"partition=%d offset=%lld", (int)m->partition,
				(long long)m->offset);
			c->rerestore = true;
		}
		if (m->partition >= 0 && m->partition < c->nparts)
			bk_logf(BK_LOG_DEBUG, "command record skipped",
				"topic=%s partition=%d offset=%lld next_offset=%lld restored=%d",
				rd_kafka_topic_name(m->rkt), (int)m->partition,
				(long long)m->offset, (long long)c->parts[m->partition].next_offset,
				c->parts[m->partition].restored);
		return 0;
	}
	if (!a->checked)
		cp_admit(c, a); /* checked late: the state changed since the run */
	cp_part *p = &c->parts[m->partition];
	if (batch_begin(c) < 0)
		return -1;
	if (p->batch_first < 0)
		p->batch_first = m->offset;
	p->next_offset = m->offset + 1;
	c->last_cmd_us = cp_mono_us();
	c->batch_n++;
	c->n_cmds++;

	msgpack_zone *z = &a->z;
	bk_command cmd = a->cmd;
	char *why = a->why;
	const size_t whysz = sizeof(a->why);
	int rc = 0;
	if (a->dlq)
		return dlq(c, m, why, a->cid);
	if (a->unsigned_ok)
		cp_note_unsigned(c, m, &a->cmd);
	bk_decision d;
	int64_t version;
	int dec_rc;
	if (a->decided) {
		d = a->d; /* moved out: cp_adm_done must not clear it again */
		a->decided = false;
		dec_rc = a->dec_rc;
		version = a->version;
	} else {
		bk_decide_ctx ctx = decide_ctx(c, cp_now_us(c));
		dec_rc = bk_engine_handle(p->eng, &cmd, &ctx, z, &d);
		const bk_order *o = bk_engine_order(p->eng, cmd.order_id);
		version = o ? o->version : 0;
	}
	if (dec_rc < 0) {
		/* the engine may hold half of it: dead-letter, answer, restore again */
		snprintf(why, whysz, "internal: %s", d.message);
		bk_logf(BK_LOG_ERROR, "command could not be handled",
			"topic=%s partition=%d offset=%lld order_id=%s command_id=%s err=\"%s\"",
			rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset,
			cmd.order_id, cmd.id, d.message);
		rc = dlq(c, m, why, cmd.id);
		bk_result res = {.command_id = cmd.id,
				 .order_id = cmd.order_id,
				 .status = BK_REJECTED,
				 .code = BK_E_INTERNAL,
				 .message = why};
		if (rc == 0)
			rc = produce_result(c, m->partition, m->offset, &res);
		c->rerestore = true;
		return rc;
	}
	if (d.n_events > 0)
		rc = produce_events(c, m->partition, m->offset, cmd.id, &d);
	if (rc == 0 && d.has_rules && d.outcome == BK_ACCEPTED)
		rc = produce_rules(c, &d.rules);

	const char *ids[BK_MAX_EVENTS];
	bk_result res = {.command_id = cmd.id,
			 .order_id = cmd.order_id,
			 .status = d.outcome,
			 .code = d.code,
			 .message = d.message,
			 .event_ids = ids,
			 .n_event_ids = d.n_events};
	for (uint32_t i = 0; i < d.n_events && i < BK_MAX_EVENTS; i++)
		ids[i] = d.events[i].event_id;
	res.version = version;
	if (rc == 0)
		rc = produce_result(c, m->partition, m->offset, &res);
	bk_mgrid_inc3(c->m_commands, (int)cmd.type, (int)res.status, (int)res.code);
	bk_logf(BK_LOG_DEBUG, "command handled", /* counted: booking_commands_total */
		"topic=%s partition=%d offset=%lld order_id=%s command_id=%s type=%s status=%s "
		"code=%s events=%u version=%lld message=\"%s\"",
		rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset, cmd.order_id,
		cmd.id, bk_cmd_name((bk_cmd_type)cmd.type), bk_outcome_name(res.status),
		bk_err_name(res.code), (unsigned)d.n_events, (long long)res.version, res.message);
	bk_decision_clear(&d);
	return rc;
}

int cp_handle_sweep(cp *c, int32_t p, const char *order_id, const char *target, int64_t now)
{
	cp_part *pt = &c->parts[p];
	char id[BK_ID_MAX], label[BK_ID_MAX + 16];
	snprintf(label, sizeof(label), "sweep:%s", target);
	bk_id_derive(id, "cmd_", order_id, label, 0);
	bk_command cmd = {.id = id,
			  .type = BK_CMD_ORDER_SWEEP,
			  .order_id = order_id,
			  .actor_user_id = NULL,
			  .actor_role = BK_ROLE_SYSTEM,
			  .at = now,
			  .payload = {.type = MSGPACK_OBJECT_MAP}};
	msgpack_zone z;
	msgpack_zone_init(&z, 8192);
	bk_decide_ctx ctx = decide_ctx(c, now);
	bk_decision d;
	int rc = 0;
	if (bk_engine_handle(pt->eng, &cmd, &ctx, &z, &d) < 0) {
		bk_logf(BK_LOG_ERROR, "sweep could not be handled",
			"partition=%d order_id=%s target=%s err=\"%s\"", (int)p, order_id, target,
			d.message);
		c->rerestore = true;
		msgpack_zone_destroy(&z);
		return 0;
	}
	if (d.n_events > 0) {
		if (batch_begin(c) < 0)
			rc = -1;
		else {
			c->batch_n++;
			rc = produce_events(c, p, -1, id, &d);
			char sub[64];
			bk_logf(BK_LOG_INFO, "sweep",
				"partition=%d order_id=%s target=%s events=%u first=%s", (int)p,
				order_id, target, (unsigned)d.n_events,
				bk_event_subtype(&d.events[0], sub, sizeof(sub)));
		}
	}
	bk_decision_clear(&d);
	msgpack_zone_destroy(&z);
	return rc;
}

/* Offsets to commit: the next offset of every partition the batch touched. */
static rd_kafka_topic_partition_list_t *batch_offsets(cp *c)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
	for (int i = 0; i < c->nparts; i++)
		if (c->parts[i].batch_first >= 0 && c->parts[i].assigned)
			rd_kafka_topic_partition_list_add(l, c->topic[BK_TOPIC_COMMANDS], i)
			    ->offset = c->parts[i].next_offset;
	return l;
}

/* Commit the transaction; returns 0, 1 when it was aborted, -1 when fatal. */
static int txn_commit(cp *c, rd_kafka_topic_partition_list_t *offs, bool lost)
{
	rd_kafka_error_t *e = NULL;
	if (!lost && offs->cnt > 0) {
		rd_kafka_consumer_group_metadata_t *md =
		    rd_kafka_consumer_group_metadata(c->consumer);
		e = rd_kafka_send_offsets_to_transaction(c->producer, offs, md, c->o.timeout_ms);
		rd_kafka_consumer_group_metadata_destroy(md);
	}
	for (int tries = 0; !lost && !e; tries++) {
		e = rd_kafka_commit_transaction(c->producer, c->o.timeout_ms);
		if (!e)
			return 0;
		if (rd_kafka_error_is_retriable(e) && tries < 3) {
			bk_logf(BK_LOG_WARN, "commit_transaction: retrying", "err=\"%s\"",
				rd_kafka_error_string(e));
			rd_kafka_error_destroy(e);
			e = NULL;
		}
	}
	if (e && rd_kafka_error_is_fatal(e)) {
		bk_logf(BK_LOG_ERROR, "transaction failed (fatal)", "err=\"%s\"",
			rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		return -1;
	}
	if (e) {
		bk_logf(BK_LOG_WARN, "transaction failed: aborting", "err=\"%s\" abortable=%d",
			rd_kafka_error_string(e), rd_kafka_error_txn_requires_abort(e));
		rd_kafka_error_destroy(e);
	}
	rd_kafka_error_t *a = rd_kafka_abort_transaction(c->producer, c->o.timeout_ms);
	if (a) {
		bk_logf(BK_LOG_ERROR, "abort_transaction failed", "err=\"%s\" fatal=%d",
			rd_kafka_error_string(a), rd_kafka_error_is_fatal(a));
		rd_kafka_error_destroy(a);
		return -1;
	}
	return 1;
}

bool cp_sure_owner(const cp *c)
{
	if (rd_kafka_assignment_lost(c->consumer))
		return false;
	/* the group drops a member whose heartbeats stop for session.timeout.ms; a process
	 * that did not poll for most of that (stopped, swapped out) cannot be sure */
	int64_t margin_ms = c->session_timeout_ms / 3;
	if (margin_ms > 3000)
		margin_ms = 3000;
	return cp_mono_us() - c->last_poll_us < (int64_t)(c->session_timeout_ms - margin_ms) * 1000;
}

static int cmp_srec(const void *a, const void *b)
{
	const cp_sealrec *x = a, *y = b;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->partition != y->partition)
		return x->partition < y->partition ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Produce one seal: the records srec[from, to) of one topic-partition. 0 or -1. */
static int produce_seal(cp *c, int kind, int32_t p, size_t from, size_t to)
{
	bk_seal_rec *recs = malloc((to - from + 1) * sizeof(*recs));
	if (!recs)
		return -1;
	for (size_t i = from; i < to; i++) {
		recs[i - from].offset = c->srec[i].offset;
		memcpy(recs[i - from].digest, c->srec[i].digest, BK_HASH_LEN);
	}
	const cp_part *pt = &c->parts[p];
	/* what lies below this batch's last record and is not listed is not this writer's
	 * (its earlier batches are sealed, this one is listed whole): abandoned */
	int64_t base = kind == 0 ? pt->base_events : pt->base_results;
	if (to > from && c->srec[to - 1].offset + 1 > base)
		base = c->srec[to - 1].offset + 1;
	bk_seal s = {.writer = c->wkid,
		     .topic = c->topic[kind == 0 ? BK_TOPIC_EVENTS : BK_TOPIC_RESULTS],
		     .partition = p,
		     .base = base,
		     .src_next = kind == 0 ? pt->next_offset : -1,
		     .recs = recs,
		     .n = (uint32_t)(to - from)};
	msgpack_sbuffer *sb = &c->enc;
	rd_kafka_headers_t *h;
	int rc = bk_trust_seal_record(&s, c->wsk, c->wkid, sb, &h);
	free(recs);
	if (rc < 0)
		return -1;
	return produce(c, s.topic, p, BK_SEAL_KEY, strlen(BK_SEAL_KEY), sb->data, sb->size, h,
		       false, false, -1, NULL);
}

/*
 * Seal the batch: every events and results record acknowledged (so its offset is known),
 * then, when this instance is still sure it owns its partitions, one seal per events
 * partition the batch consumed from or wrote to and per results partition it wrote to.
 * 0, or -1: the batch must not commit (dr_err is set).
 */
static int seal_batch(cp *c)
{
	rd_kafka_resp_err_t fe = rd_kafka_flush(c->producer, c->o.timeout_ms);
	if (fe || c->dr_err) {
		if (!c->dr_err)
			c->dr_err = fe;
		return -1;
	}
	for (size_t i = 0; i < c->n_srec; i++)
		if (c->srec[i].offset < 0) {
			c->dr_err = RD_KAFKA_RESP_ERR__FAIL;
			return -1;
		}
	if (!cp_sure_owner(c)) {
		bk_logf(BK_LOG_WARN,
			"not sure this instance still owns its partitions: the batch is not "
			"sealed, its partitions are restored",
			"commands=%d since_poll_ms=%lld session_timeout_ms=%d", c->batch_n,
			(long long)((cp_mono_us() - c->last_poll_us) / 1000),
			c->session_timeout_ms);
		c->dr_err = RD_KAFKA_RESP_ERR__STATE;
		return -1;
	}
	if (c->n_srec > 1) /* a batch of only dead letters has none (srec may be NULL) */
		qsort(c->srec, c->n_srec, sizeof(*c->srec), cmp_srec);
	size_t i = 0, first_result = 0;
	while (first_result < c->n_srec && c->srec[first_result].kind == 0)
		first_result++;
	int rc = 0;
	/* results partitions first, acknowledged, then the events partitions: a crash in
	 * between leaves sealed results whose batch is decided again (their second sealed
	 * copies are identical, and readers count the first); the other order could leave
	 * sealed events whose results are never sealed */
	i = first_result;
	while (rc == 0 && i < c->n_srec) {
		size_t from = i;
		int32_t p = c->srec[i].partition;
		while (i < c->n_srec && c->srec[i].partition == p)
			i++;
		rc = produce_seal(c, 1, p, from, i);
	}
	if (rc == 0 && first_result < c->n_srec &&
	    rd_kafka_flush(c->producer, c->o.timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
		rc = -1;
	if (rc == 0 && c->dr_err)
		rc = -1;
	/* events partitions: those with records, and those that consumed commands */
	i = 0;
	for (int32_t p = 0; p < c->nparts && rc == 0; p++) {
		size_t from = i;
		while (i < first_result && c->srec[i].partition == p)
			i++;
		if (i > from || c->parts[p].batch_first >= 0)
			rc = produce_seal(c, 0, p, from, i);
	}
	if (rc < 0 && !c->dr_err)
		c->dr_err = RD_KAFKA_RESP_ERR__FAIL;
	return rc;
}

int cp_batch_close(cp *c, bool lost)
{
	if (!c->txn_open)
		return 0;
	int64_t t0 = cp_mono_us();
	rd_kafka_topic_partition_list_t *offs = batch_offsets(c);
	int r;
	/* phase 1: events, rules and DLQ records acknowledged; phase 2: the results */
	const bool dropped = lost && c->held_next < c->n_held;
	if (!lost && c->held_next < c->n_held && !c->dr_err) {
		rd_kafka_resp_err_t fe = RD_KAFKA_RESP_ERR_NO_ERROR;
		if (c->gate_prefix < c->gate_n)
			fe = rd_kafka_flush(c->producer, c->o.timeout_ms);
		if (fe && !c->dr_err)
			c->dr_err = fe;
		if (!c->dr_err && c->gate_prefix < c->gate_n) /* flushed, yet not all acked */
			c->dr_err = RD_KAFKA_RESP_ERR__FAIL;
		release_held(c, !c->dr_err);
	}
	release_held(c, false);
	if (!lost && !c->dr_err)
		(void)seal_batch(c);
	if (!c->o.no_txn) {
		r = txn_commit(c, offs, lost || c->dr_err != RD_KAFKA_RESP_ERR_NO_ERROR);
	} else {
		rd_kafka_resp_err_t fe = rd_kafka_flush(c->producer, c->o.timeout_ms);
		r = fe || c->dr_err || dropped ? 1 : 0;
		if (fe)
			bk_logf(BK_LOG_ERROR, "flush did not finish", "err=\"%s\" queued=%d",
				rd_kafka_err2str(fe), rd_kafka_outq_len(c->producer));
		if (r == 0 && offs->cnt > 0)
			rd_kafka_commit(c->consumer, offs, 1); /* informational only */
	}
	c->txn_open = false;
	for (int i = 0; i < c->nparts; i++)
		c->parts[i].batch_first = -1;
	if (r >= 0)
		bytes_reset(c);
	if (r < 0) {
		rd_kafka_topic_partition_list_destroy(offs);
		cp_fatal(c, CP_EXIT_FATAL);
		return -1;
	}
	if (r > 0) {
		c->n_aborts++;
		c->rerestore = true;
		bk_logf(BK_LOG_WARN, "batch failed: restoring the partitions from the log",
			"commands=%d dr_err=\"%s\" lost=%d", c->batch_n,
			rd_kafka_err2str(c->dr_err), lost);
	} else {
		c->n_batches++;
		for (int i = 0; i < offs->cnt; i++)
			bk_logf(BK_LOG_DEBUG, "batch committed",
				"topic=%s partition=%d offset=%lld commands=%d ms=%lld",
				offs->elems[i].topic, (int)offs->elems[i].partition,
				(long long)offs->elems[i].offset, c->batch_n,
				(long long)((cp_mono_us() - t0) / 1000));
	}
	rd_kafka_topic_partition_list_destroy(offs);
	c->batch_n = 0;
	c->us_close += cp_mono_us() - t0;
	return 0;
}

int cp_seek(cp *c, rd_kafka_topic_partition_list_t *l)
{
	rd_kafka_error_t *e = rd_kafka_seek_partitions(c->consumer, l, c->o.timeout_ms);
	if (e) {
		bk_logf(BK_LOG_ERROR, "seek failed", "err=\"%s\"", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		return -1;
	}
	/* a partition left at its old position could skip commands: stop instead */
	int rc = 0;
	for (int i = 0; i < l->cnt; i++)
		if (l->elems[i].err) {
			bk_logf(BK_LOG_ERROR, "seek of a partition failed",
				"topic=%s partition=%d offset=%lld err=\"%s\"", l->elems[i].topic,
				(int)l->elems[i].partition, (long long)l->elems[i].offset,
				rd_kafka_err2str(l->elems[i].err));
			rc = -1;
		}
	return rc;
}

int cp_rerestore_all(cp *c)
{
	char err[512];
	int32_t *ps = calloc((size_t)c->nparts + 1, sizeof(*ps));
	int n = 0;
	if (!ps) {
		cp_fatal(c, CP_EXIT_FATAL);
		return -1;
	}
	for (int i = 0; i < c->nparts; i++)
		if (c->parts[i].assigned)
			ps[n++] = i;
	c->rerestore = false;
	c->generation++;
	if (n > 0 && cp_restore(c, ps, n, err, sizeof(err)) < 0) {
		bk_logf(BK_LOG_ERROR, "restore failed", "err=\"%s\"", err);
		free(ps);
		cp_fatal(c, CP_EXIT_FATAL);
		return -1;
	}
	if (n > 0) {
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
		for (int i = 0; i < n; i++)
			rd_kafka_topic_partition_list_add(l, c->topic[BK_TOPIC_COMMANDS], ps[i])
			    ->offset = c->parts[ps[i]].next_offset;
		bool bad = cp_seek(c, l) < 0;
		rd_kafka_topic_partition_list_destroy(l);
		if (bad) {
			free(ps);
			cp_fatal(c, CP_EXIT_FATAL);
			return -1;
		}
	}
	free(ps);
	return 0;
}
