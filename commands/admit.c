/*
 * admit.c - the checks a command record passes before its order's engine sees it (size,
 * content type, decode, signature, key and partition), run for a whole run of records
 * at once on the processor's thread pool (lib/pool.c).
 * Ed25519 verification (~94 us a record on the development machine) is most of a signed
 * command's CPU, and nothing in it depends on another record, so the pool spreads it
 * over the cores.
 *
 * The pool also runs process.c's deciding of a run, one partition per item
 * (cp_decide_run): a partition's commands stay in order on one thread at a time.
 *
 * The checks read the processor's options, keyring and partition count, which do not
 * change while the pool runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bk_wire.h"
#include "cp.h"
#include "log.h"

/* A header's value; NULL when absent. */
static const void *hdr(const rd_kafka_message_t *m, const char *name, size_t *ret_n)
{
	const void *v;
	return bk_kconf_header(m, name, &v, ret_n) == 0 ? v : NULL;
}

/* The checks; 0 with a->cmd filled, or 1 with a->why (dead-letter). */
static int check(const cp *c, cp_adm *a)
{
	const rd_kafka_message_t *m = a->m;
	char err[256];
	if (!m->payload || m->len == 0) {
		snprintf(a->why, sizeof(a->why), "empty value");
		return 1;
	}
	if (m->len > BK_MAX_MESSAGE) {
		snprintf(a->why, sizeof(a->why), "oversized: %zu bytes, the limit is %u", m->len,
			 (unsigned)BK_MAX_MESSAGE);
		return 1;
	}
	size_t n = 0;
	const char *ct = hdr(m, "content-type", &n);
	bool json = false;
	/* media type only: "application/json; charset=utf-8" is JSON */
	for (size_t i = 0; ct && i < n; i++)
		if (ct[i] == ';' || ct[i] == ' ') {
			n = i;
			break;
		}
	if (ct && n == 16 && !memcmp(ct, "application/json", 16))
		json = true;
	else if (ct && !(n == 19 && !memcmp(ct, "application/msgpack", 19))) {
		snprintf(a->why, sizeof(a->why), "unsupported content-type \"%.*s\"",
			 (int)(n < 64 ? n : 64), ct);
		return 1;
	}
	if (bk_codec_command_decode(m->payload, m->len, json, false, &a->z, &a->cmd, err,
				    sizeof(err)) < 0) {
		snprintf(a->why, sizeof(a->why), "decode: %s", err);
		return 1;
	}
	size_t kn = 0, sn = 0;
	const char *kid = hdr(m, "key-id", &kn);
	const uint8_t *sig = hdr(m, "signature", &sn);
	if (!kid && !sig && c->o.allow_unsigned) {
		a->unsigned_ok = true; /* logged by the main thread (cp_note_unsigned) */
	} else if (!kid || !sig) {
		snprintf(a->why, sizeof(a->why),
			 "unsigned: the key-id and signature headers are required");
		return 1;
	} else if (!c->kr) {
		snprintf(a->why, sizeof(a->why),
			 "auth: no keyring loaded (--keyring) to verify key %.*s",
			 (int)(kn < 80 ? kn : 80), kid);
		return 1;
	} else if (bk_auth_verify(c->kr, kid, kn, sig, sn, m->payload, m->len,
				  (bk_role)a->cmd.actor_role, bk_cmd_name((bk_cmd_type)a->cmd.type),
				  err, sizeof(err)) < 0) {
		snprintf(a->why, sizeof(a->why), "auth: %s", err);
		return 1;
	}
	size_t on = strlen(a->cmd.order_id);
	if (!m->key || m->key_len != on || memcmp(m->key, a->cmd.order_id, on) != 0) {
		snprintf(a->why, sizeof(a->why), "key: the record key must be the order_id (%s)",
			 a->cmd.order_id);
		return 1;
	}
	int32_t want =
	    rd_kafka_msg_partitioner_murmur2(NULL, m->key, m->key_len, c->nparts, NULL, NULL);
	if (want != m->partition) {
		snprintf(a->why, sizeof(a->why),
			 "partition: key %s belongs on partition %d (murmur2_random), not %d",
			 a->cmd.order_id, (int)want, (int)m->partition);
		return 1;
	}
	return 0;
}

void cp_admit(const cp *c, cp_adm *a)
{
	a->why[0] = '\0';
	a->checked = true;
	a->unsigned_ok = false;
	if (!a->has_zone && msgpack_zone_init(&a->z, 32768))
		a->has_zone = true;
	if (!a->has_zone) {
		snprintf(a->why, sizeof(a->why), "internal: out of memory");
		a->dlq = true;
		return;
	}
	a->dlq = check(c, a) != 0;
	a->cid[0] = '\0';
	if (a->dlq && a->m->payload &&
	    bk_wire_peek_command_id(a->m->payload, a->m->len, a->cid, sizeof(a->cid)) < 0)
		a->cid[0] = '\0';
}

void cp_adm_done(cp_adm *a)
{
	if (a->decided)
		bk_decision_clear(&a->d);
	a->decided = false;
	if (a->has_zone)
		msgpack_zone_clear(&a->z);
	a->checked = false;
}

void cp_adm_free(cp_adm *a)
{
	if (a->has_zone)
		msgpack_zone_destroy(&a->z);
	a->has_zone = false;
}

typedef struct admit_job {
	const cp *c;
	cp_adm *adm;
} admit_job;

static void admit_item(void *arg, size_t i, int worker)
{
	admit_job *j = arg;
	(void)worker;
	if (!j->adm[i].skip)
		cp_admit(j->c, &j->adm[i]);
}

void cp_admit_run(bk_pool *pl, const cp *c, cp_adm *adm, size_t n)
{
	admit_job j = {c, adm};
	bk_pool_run(pl, admit_item, &j, n);
}
