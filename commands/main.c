/*
 * main.c - booking-commands: flags, Kafka handles, the consumer-group rebalance callback
 * (restore before assign, commit before revoke) and the poll loop that batches commands
 * into transactions and runs the expiry sweep. SIGTERM/SIGINT commit the batch, exit 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cp.h"
#include "log.h"
#include "trust.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static const char usage_text[] =
    "usage: booking-commands [options]\n"
    "\n"
    "The command processor: consumes booking.commands (consumer group), decides each\n"
    "command against the order's state restored from booking.events, and produces one\n"
    "events record, one result (and for autoaccept.* one rules record) per command.\n"
    "Logs logfmt on stderr; SIGTERM/SIGINT finish the current batch and exit 0.\n"
    "\n"
    "options:\n"
    "  --keyring PATH               key ids -> public keys and roles (bk_auth.h format)\n"
    "  --writer-key PATH            this processor's Ed25519 key (a keygen .sk file) that\n"
    "                               signs its seals and rules records ($BOOKING_WRITER_KEY)\n"
    "  --writer-key-id ID           its key id ($BOOKING_WRITER_KEY_ID)\n"
    "  --writer-keyring PATH        the writer keys of every processor instance, each\n"
    "                               limited to 'system seal' ($BOOKING_WRITER_KEYRING);\n"
    "                               only records they seal are restored\n"
    "  --allow-unsigned             DEVELOPMENT ONLY: accept commands without signature\n"
    "                               headers (each one is logged as a warning)\n"
    "  --batch-commands N           close a batch (transaction) after N commands (2000)\n"
    "  --batch-ms T                 ... or T ms after its first command (100)\n"
    "  --batch-idle-ms T            ... or when no command arrived for T ms, so a batch\n"
    "                               holds what was ready: for clusters where results\n"
    "                               show only at commit (docs/commands.md); 0: off (0)\n"
    "  --no-group-commit            keep a batch open while no command is waiting (by\n"
    "                               default it closes then: an idle processor answers\n"
    "                               at once, a busy one still fills its batches)\n"
    "  --verify-threads N           threads that decode, verify signatures and decide\n"
    "                               (one partition each at a time) beside the main\n"
    "                               thread, which produces (online CPUs - 1)\n"
    "  --sweep-interval-ms MS       expiry sweep period; 0 turns the sweep off (1000)\n"
    "  --expiring-lead SECONDS      card.<type>.expiring this long before expiry (86400)\n"
    "  --group-id ID                consumer group (booking-commands)\n"
    "  --transactional-id-prefix P  transactional.id = P-<group.instance.id>, or\n"
    "                               P-<host>-<pid> without one (booking-commands)\n"
    "  --no-transactions            for clusters without transactions: each batch is\n"
    "                               flushed instead (correctness does not change)\n"
    "  --timeout-ms MS              Kafka call timeout: metadata, commit, restore (30000)\n"
    "  --clock-offset SECONDS       DEVELOPMENT ONLY: shift the processor's clock\n"
    "  -h, --help                   this text\n"
    "\n"
    "exit: 0 stopped by a signal, 1 fatal Kafka or internal error, 2 bad configuration,\n"
    "mismatched partition counts or a partition with lost history\n"
    "\n";

static int parse_i64(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *ret)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr,
			"booking-commands: %s: expected an integer in [%lld, %lld], got '%s'\n",
			opt, (long long)lo, (long long)hi, s);
		return -1;
	}
	*ret = v;
	return 0;
}

/* Parse argv into c->o and c->kc. 0, 1 for --help, -1 on a bad flag (message printed). */
static int parse_args(cp *c, int argc, char **argv)
{
	char err[512];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int r = bk_kconf_take_arg(c->kc, argc, argv, &i, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "booking-commands: %s\n", err);
			return -1;
		}
		if (r > 0)
			continue;
		const char *val = NULL;
		const char *eq = strchr(a, '=');
		char name[64];
		size_t nl = eq ? (size_t)(eq - a) : strlen(a);
		snprintf(name, sizeof(name), "%.*s", (int)(nl < 63 ? nl : 63), a);
		static const char *const with_value[] = {
		    "--keyring",	"--writer-key",	    "--writer-key-id",
		    "--writer-keyring", "--batch-commands", "--batch-ms",
		    "--batch-idle-ms",	"--verify-threads", "--sweep-interval-ms",
		    "--expiring-lead",	"--group-id",	    "--transactional-id-prefix",
		    "--timeout-ms",	"--clock-offset",   NULL};
		bool takes = false;
		for (int k = 0; with_value[k]; k++)
			if (!strcmp(name, with_value[k]))
				takes = true;
		if (takes) {
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else {
				fprintf(stderr, "booking-commands: %s needs a value\n", name);
				return -1;
			}
		} else if (eq) {
			fprintf(stderr, "booking-commands: %s takes no value\n", name);
			return -1;
		}
		int64_t v;
		if (!strcmp(name, "-h") || !strcmp(name, "--help"))
			return 1;
		else if (!strcmp(name, "--keyring"))
			c->o.keyring_path = val;
		else if (!strcmp(name, "--writer-key"))
			c->o.writer_key_path = val;
		else if (!strcmp(name, "--writer-key-id"))
			c->o.writer_key_id = val;
		else if (!strcmp(name, "--writer-keyring"))
			c->o.writer_keyring_path = val;
		else if (!strcmp(name, "--allow-unsigned"))
			c->o.allow_unsigned = true;
		else if (!strcmp(name, "--no-transactions"))
			c->o.no_txn = true;
		else if (!strcmp(name, "--no-group-commit"))
			c->o.no_group_commit = true;
		else if (!strcmp(name, "--group-id"))
			c->o.group_id = val;
		else if (!strcmp(name, "--transactional-id-prefix"))
			c->o.txn_prefix = val;
		else if (!strcmp(name, "--batch-commands")) {
			if (parse_i64(name, val, 1, 1000000, &v) < 0)
				return -1;
			c->o.batch_commands = (int)v;
		} else if (!strcmp(name, "--batch-ms")) {
			if (parse_i64(name, val, 1, 600000, &v) < 0)
				return -1;
			c->o.batch_ms = (int)v;
		} else if (!strcmp(name, "--batch-idle-ms")) {
			if (parse_i64(name, val, 0, 600000, &v) < 0)
				return -1;
			c->o.batch_idle_ms = (int)v;
		} else if (!strcmp(name, "--verify-threads")) {
			if (parse_i64(name, val, 0, 64, &v) < 0)
				return -1;
			c->o.admit_threads = (int)v;
		} else if (!strcmp(name, "--sweep-interval-ms")) {
			if (parse_i64(name, val, 0, 86400000, &v) < 0)
				return -1;
			c->o.sweep_interval_ms = (int)v;
		} else if (!strcmp(name, "--expiring-lead")) {
			if (parse_i64(name, val, 0, 366LL * 86400, &v) < 0)
				return -1;
			c->o.expiring_lead_s = v;
		} else if (!strcmp(name, "--timeout-ms")) {
			if (parse_i64(name, val, 100, 3600000, &v) < 0)
				return -1;
			c->o.timeout_ms = (int)v;
		} else if (!strcmp(name, "--clock-offset")) {
			if (parse_i64(name, val, -100LL * 366 * 86400, 100LL * 366 * 86400, &v) < 0)
				return -1;
			c->o.clock_offset_s = v;
		} else {
			fprintf(stderr, "booking-commands: unknown option or argument '%s'\n", a);
			return -1;
		}
	}
	if (!c->o.group_id[0] || !c->o.txn_prefix[0]) {
		fprintf(stderr, "booking-commands: --group-id and --transactional-id-prefix must "
				"not be empty\n");
		return -1;
	}
	return 0;
}

/* The writer key and keyring (seals, rules records). 0, or -1 (message printed). */
static int load_writer(cp *c)
{
	char err[512];
	if (bk_trust_load_key(c->o.writer_key_path, c->o.writer_key_id, c->wsk, c->wkid, err,
			      sizeof(err)) < 0 ||
	    bk_trust_load_keyring(c->o.writer_keyring_path, &c->wkr, err, sizeof(err)) < 0) {
		fprintf(stderr, "booking-commands: %s\n", err);
		return -1;
	}
	/* our own seals must verify, or every restore would throw our work away */
	static const char probe[] = "seal probe";
	uint8_t sig[BK_SIG_LEN];
	bk_auth_sign(c->wsk, probe, sizeof(probe), sig);
	if (bk_auth_verify(c->wkr, c->wkid, strlen(c->wkid), sig, sizeof(sig), probe, sizeof(probe),
			   BK_ROLE_SYSTEM, BK_SEAL_TYPE, err, sizeof(err)) < 0) {
		fprintf(stderr,
			"booking-commands: the writer key %s does not verify against the writer "
			"keyring: %s\n",
			c->wkid, err);
		return -1;
	}
	return 0;
}

static int load_keyring(cp *c)
{
	char err[512];
	if (!c->o.keyring_path) {
		if (!c->o.allow_unsigned) {
			fprintf(stderr, "booking-commands: --keyring PATH is required (or "
					"--allow-unsigned, for development only)\n");
			return -1;
		}
		return 0;
	}
	FILE *f = fopen(c->o.keyring_path, "r");
	if (!f) {
		fprintf(stderr, "booking-commands: --keyring %s: %s\n", c->o.keyring_path,
			strerror(errno));
		return -1;
	}
	char *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (n + 4096 > cap) {
			char *nb = realloc(buf, cap = cap * 2 + 8192);
			if (!nb) {
				free(buf);
				fclose(f);
				fprintf(stderr, "booking-commands: out of memory\n");
				return -1;
			}
			buf = nb;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	int rc = bk_keyring_parse(buf ? buf : "", n, &c->kr, err, sizeof(err));
	free(buf);
	if (rc < 0) {
		fprintf(stderr, "booking-commands: --keyring %s: %s\n", c->o.keyring_path, err);
		return -1;
	}
	if (bk_keyring_count(c->kr) == 0 && !c->o.allow_unsigned) {
		fprintf(stderr, "booking-commands: --keyring %s holds no key\n", c->o.keyring_path);
		return -1;
	}
	return 0;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	cp *c = opaque;
	(void)rk;
	if (!m->err) {
		cp_gate_acked(c, (uintptr_t)m->_private, m->offset);
		return;
	}
	bk_logf(BK_LOG_ERROR, "delivery failed", "topic=%s partition=%d err=\"%s\"",
		rd_kafka_topic_name(m->rkt), (int)m->partition, rd_kafka_err2str(m->err));
	if (c->dr_err == RD_KAFKA_RESP_ERR_NO_ERROR)
		c->dr_err = m->err;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	cp *c = opaque;
	const bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
	c->generation++;
	char estr[512];
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		c->ever_assigned = true;
		/* commit first: the rules topic must hold our own changes before re-reading it */
		cp_batch_close(c, false);
		int32_t *ps = calloc((size_t)parts->cnt + 1, sizeof(*ps));
		int n = 0;
		for (int i = 0; ps && i < parts->cnt; i++) {
			int32_t p = parts->elems[i].partition;
			if (p < 0 || p >= c->nparts)
				continue;
			c->parts[p].assigned = true;
			ps[n++] = p;
		}
		bk_logf(BK_LOG_INFO, "partitions assigned: restoring",
			"topic=%s count=%d protocol=%s", c->topic[BK_TOPIC_COMMANDS], n,
			rd_kafka_rebalance_protocol(rk));
		if (!ps) {
			cp_fatal(c, CP_EXIT_FATAL);
		} else if (n > 0 && cp_restore(c, ps, n, estr, sizeof(estr)) < 0) {
			bk_logf(BK_LOG_ERROR, "restore failed: stopping", "topic=%s err=\"%s\"",
				c->topic[BK_TOPIC_EVENTS], estr);
			cp_fatal(c, strstr(estr, "lost history") ? CP_EXIT_USAGE : CP_EXIT_FATAL);
		}
		free(ps);
		for (int i = 0; i < parts->cnt; i++) {
			int32_t p = parts->elems[i].partition;
			if (p >= 0 && p < c->nparts)
				parts->elems[i].offset = c->parts[p].next_offset;
		}
		if (coop) {
			rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
			if (e) {
				bk_logf(BK_LOG_ERROR, "incremental_assign failed", "err=\"%s\"",
					rd_kafka_error_string(e));
				rd_kafka_error_destroy(e);
				cp_fatal(c, CP_EXIT_FATAL);
			}
		} else {
			rd_kafka_assign(rk, parts);
		}
		return;
	}
	bool lost = err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS || rd_kafka_assignment_lost(rk);
	if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
		bk_logf(BK_LOG_ERROR, "rebalance error", "err=\"%s\"", rd_kafka_err2str(err));
	/* finish (or, when lost, abort) the batch before the partitions go */
	cp_batch_close(c, lost);
	for (int i = 0; i < parts->cnt; i++) {
		int32_t p = parts->elems[i].partition;
		if (p < 0 || p >= c->nparts)
			continue;
		cp_part_reset(&c->parts[p]);
		c->parts[p].assigned = false;
	}
	bk_logf(BK_LOG_INFO, "partitions revoked", "topic=%s count=%d lost=%d",
		c->topic[BK_TOPIC_COMMANDS], parts->cnt, lost);
	if (coop && err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
		rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
		if (e) {
			bk_logf(BK_LOG_ERROR, "incremental_unassign failed", "err=\"%s\"",
				rd_kafka_error_string(e));
			rd_kafka_error_destroy(e);
		}
	} else {
		rd_kafka_assign(rk, NULL);
	}
}

/* Check topics and partition counts; build the three handles. 0 or -1 (exit code set). */
static int setup_kafka(cp *c, int *ret_code)
{
	char err[1024];
	static const char *const reader_defaults[] = {"isolation.level",
						      "read_committed",
						      "enable.partition.eof",
						      "true",
						      "enable.auto.commit",
						      "false",
						      "auto.offset.reset",
						      "earliest",
						      "group.id",
						      "booking-commands-restore",
						      NULL};
	*ret_code = CP_EXIT_USAGE;
	for (int t = 0; t < BK_TOPIC_COUNT; t++)
		c->topic[t] = bk_kconf_topic(c->kc, (bk_topic)t);
	if (bk_kconf_new_handle(c->kc, BK_KCONF_CONSUMER, reader_defaults, &c->reader, err,
				sizeof(err)) < 0) {
		fprintf(stderr, "booking-commands: %s\n", err);
		return -1;
	}
	static const char *const follow_defaults[] = {"isolation.level",
						      "read_committed",
						      "enable.auto.commit",
						      "false",
						      "group.id",
						      "booking-commands-rules",
						      "fetch.wait.max.ms",
						      "10",
						      NULL};
	if (bk_kconf_new_handle(c->kc, BK_KCONF_CONSUMER, follow_defaults, &c->rules_rd, err,
				sizeof(err)) < 0) {
		fprintf(stderr, "booking-commands: %s\n", err);
		return -1;
	}
	uint8_t iid[8];
	randombytes_buf(iid, sizeof(iid));
	bk_hex(iid, sizeof(iid), c->instance);
	if (bk_kconf_check_partitions(c->reader, c->kc, c->o.timeout_ms, &c->nparts, err,
				      sizeof(err)) < 0) {
		bk_logf(BK_LOG_ERROR, "refusing to run", "err=\"%s\"", err);
		fprintf(stderr, "booking-commands: %s\n", err);
		return -1;
	}
	if (bk_kconf_partition_count(c->reader, c->topic[BK_TOPIC_RULES], c->o.timeout_ms,
				     &c->rules_parts, err, sizeof(err)) < 0 ||
	    bk_kconf_partition_count(c->reader, c->topic[BK_TOPIC_DLQ], c->o.timeout_ms,
				     &c->dlq_parts, err, sizeof(err)) < 0) {
		bk_logf(BK_LOG_ERROR, "refusing to run", "err=\"%s\"", err);
		fprintf(stderr, "booking-commands: %s\n", err);
		return -1;
	}
	c->parts = calloc((size_t)c->nparts, sizeof(*c->parts));
	if (!c->parts)
		return -1;
	for (int i = 0; i < c->nparts; i++)
		c->parts[i] = (cp_part){
		    .batch_first = -1, .last_result = -1, .last_event = -1, .prev_result = -1};

	/* the group consumer */
	static const char *const cons_defaults[] = {
	    "enable.auto.commit", "false", "enable.auto.offset.store", "false", "isolation.level",
	    "read_committed", "auto.offset.reset", "earliest", "partition.assignment.strategy",
	    "cooperative-sticky",
	    /* answer a waiting fetch within 10 ms: Kafka
	     * does when data arrives, the dev broker only
	     * after this wait (500 ms by default) */
	    "fetch.wait.max.ms", "10", NULL};
	rd_kafka_conf_t *conf;
	if (bk_kconf_build(c->kc, BK_KCONF_CONSUMER, cons_defaults, &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "booking-commands: %s\n", err);
		return -1;
	}
	char why[512], inst[256] = "";
	size_t il = sizeof(inst);
	if (rd_kafka_conf_set(conf, "group.id", c->o.group_id, why, sizeof(why)) !=
	    RD_KAFKA_CONF_OK) {
		fprintf(stderr, "booking-commands: --group-id: %s\n", why);
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	if (rd_kafka_conf_get(conf, "group.instance.id", inst, &il) != RD_KAFKA_CONF_OK)
		inst[0] = '\0';
	char sto[32];
	size_t sl = sizeof(sto);
	c->session_timeout_ms = 45000;
	if (rd_kafka_conf_get(conf, "session.timeout.ms", sto, &sl) == RD_KAFKA_CONF_OK)
		c->session_timeout_ms = atoi(sto) > 0 ? atoi(sto) : 45000;
	c->last_poll_us = cp_mono_us();
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	rd_kafka_conf_set_opaque(conf, c);
	if (!(c->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why)))) {
		fprintf(stderr, "booking-commands: consumer: %s\n", why);
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	rd_kafka_poll_set_consumer(c->consumer);

	/* the producer */
	char txn_id[512], host[128] = "host";
	if (inst[0])
		snprintf(txn_id, sizeof(txn_id), "%s-%s", c->o.txn_prefix, inst);
	else {
		gethostname(host, sizeof(host) - 1);
		snprintf(txn_id, sizeof(txn_id), "%s-%s-%ld", c->o.txn_prefix, host,
			 (long)getpid());
	}
	const char *prod_defaults[] = {"enable.idempotence",
				       "true",
				       "acks",
				       "all",
				       "linger.ms",
				       "5",
				       "queue.buffering.max.messages",
				       "1000000",
				       "message.max.bytes",
				       "8000000",
				       "transactional.id",
				       txn_id,
				       NULL};
	if (c->o.no_txn)
		prod_defaults[10] = NULL;
	if (bk_kconf_build(c->kc, BK_KCONF_PRODUCER, prod_defaults, &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "booking-commands: %s\n", err);
		return -1;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_conf_set_opaque(conf, c);
	if (!getenv("BK_NO_TAME") && bk_kconf_tame_main_thread(conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "booking-commands: %s\n", err);
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	if (!(c->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why)))) {
		fprintf(stderr, "booking-commands: producer: %s\n", why);
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	if (!c->o.no_txn) {
		rd_kafka_error_t *e = rd_kafka_init_transactions(c->producer, c->o.timeout_ms);
		if (e) {
			bk_logf(BK_LOG_ERROR,
				"init_transactions failed (use --no-transactions on "
				"clusters without them)",
				"transactional_id=%s err=\"%s\"", txn_id, rd_kafka_error_string(e));
			rd_kafka_error_destroy(e);
			*ret_code = CP_EXIT_FATAL;
			return -1;
		}
	}
	/* the first batch would otherwise wait ~1 s per output topic for librdkafka's topic
	 * scan (and so would the first results after every restart) */
	const char *outs[] = {c->topic[BK_TOPIC_EVENTS], c->topic[BK_TOPIC_RESULTS],
			      c->topic[BK_TOPIC_RULES], c->topic[BK_TOPIC_DLQ]};
	if (bk_kconf_warm_topics(c->producer, outs, 4, c->o.timeout_ms, err, sizeof(err)) < 0) {
		bk_logf(BK_LOG_ERROR, "output topics unavailable", "err=\"%s\"", err);
		*ret_code = CP_EXIT_FATAL;
		return -1;
	}
	rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, c->topic[BK_TOPIC_COMMANDS], RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t se = rd_kafka_subscribe(c->consumer, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if (se) {
		bk_logf(BK_LOG_ERROR, "subscribe failed", "err=\"%s\"", rd_kafka_err2str(se));
		*ret_code = CP_EXIT_FATAL;
		return -1;
	}
	bk_logf(BK_LOG_INFO, "booking-commands started",
		"partitions=%d group_id=%s transactional_id=%s transactions=%d batch_commands=%d "
		"batch_ms=%d batch_idle_ms=%d verify_threads=%d sweep_interval_ms=%d "
		"expiring_lead_s=%lld "
		"commands_topic=%s",
		c->nparts, c->o.group_id, c->o.no_txn ? "" : txn_id, !c->o.no_txn,
		c->o.batch_commands, c->o.batch_ms, c->o.batch_idle_ms, c->o.admit_threads,
		c->o.sweep_interval_ms, (long long)c->o.expiring_lead_s,
		c->topic[BK_TOPIC_COMMANDS]);
	return 0;
}

/* A group consumer left open at exit (see main): reachable, so not reported as a leak. */
static rd_kafka_t *never_assigned;

/* Drop collected records that a rebalance made stale; the partitions still ours are
 * sought back to their next offsets, so their records come again. */
static void drop_stale(cp *c, cp_adm *adm, size_t n)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
	for (size_t i = 0; i < n; i++) {
		rd_kafka_message_t *m = adm[i].m;
		int32_t p = m->partition;
		if (!m->err && p >= 0 && p < c->nparts && c->parts[p].assigned &&
		    !rd_kafka_topic_partition_list_find(l, c->topic[BK_TOPIC_COMMANDS], p))
			rd_kafka_topic_partition_list_add(l, c->topic[BK_TOPIC_COMMANDS], p)
			    ->offset = c->parts[p].next_offset;
		rd_kafka_message_destroy(m);
	}
	if (l->cnt > 0) {
		bk_logf(BK_LOG_INFO, "records read before a rebalance dropped: seeking back",
			"topic=%s records=%zu partitions=%d", c->topic[BK_TOPIC_COMMANDS], n,
			l->cnt);
		if (cp_seek(c, l) < 0)
			cp_fatal(c, CP_EXIT_FATAL);
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* Take up to CP_RUN_MAX records: wait up to `timeout` ms for the first, then what is ready. */
static size_t collect(cp *c, cp_adm *adm, int timeout)
{
	size_t n = 0;
	uint64_t gen = c->generation;
	while (n < CP_RUN_MAX && !*c->stop) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c->consumer, n ? 0 : timeout);
		c->last_poll_us = cp_mono_us();
		if (!m)
			break;
		if (c->generation != gen) {
			drop_stale(c, adm, n);
			n = 0;
			gen = c->generation;
		}
		adm[n].m = m;
		adm[n].skip = !cp_wants(c, m);
		adm[n].checked = false;
		adm[n].dlq = false;
		n++;
	}
	return n;
}

static void consumer_error(cp *c, const rd_kafka_message_t *m)
{
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
		return;
	bk_logf(BK_LOG_WARN, "consumer error", "topic=%s partition=%d err=\"%s\"",
		m->rkt ? rd_kafka_topic_name(m->rkt) : "", (int)m->partition,
		rd_kafka_message_errstr(m));
	char fe[256];
	if (rd_kafka_fatal_error(c->consumer, fe, sizeof(fe))) {
		bk_logf(BK_LOG_ERROR, "fatal consumer error", "err=\"%s\"", fe);
		cp_fatal(c, CP_EXIT_FATAL);
	}
}

/*
 * Group commit: close the open batch as soon as no further command is waiting. collect()
 * returned fewer than CP_RUN_MAX records only when the consumer's queue ran dry, so a
 * short run means nobody is waiting behind it: an idle processor answers at once, while
 * under load every run is full and batches still close by --batch-commands/--batch-ms.
 */
static bool group_commit_due(const cp *c, size_t n_run)
{
	return !c->o.no_group_commit && c->txn_open && n_run < CP_RUN_MAX;
}

static void run(cp *c, cp_adm *adm)
{
	int64_t next_sweep = cp_mono_us() + (int64_t)c->o.sweep_interval_ms * 1000;
	int64_t next_stats = cp_mono_us() + 10 * 1000000LL;
	while (!*c->stop) {
		int timeout = 100;
		if (c->txn_open) {
			int64_t now = cp_mono_us();
			int64_t left = c->batch_start_us + (int64_t)c->o.batch_ms * 1000 - now;
			if (c->o.batch_idle_ms > 0) {
				int64_t idle =
				    c->last_cmd_us + (int64_t)c->o.batch_idle_ms * 1000 - now;
				if (idle < left)
					left = idle;
			}
			timeout = left <= 0 ? 0 : (int)((left + 999) / 1000);
			if (timeout > 100)
				timeout = 100;
		}
		int64_t t0 = cp_mono_us();
		size_t n = collect(c, adm, timeout);
		cp_follow_rules(c); /* other instances' rule changes, before deciding */
		int64_t t1 = cp_mono_us();
		cp_admit_run(c->pool, c, adm, n);
		cp_decide_run(c, adm, n);
		int64_t t2 = cp_mono_us();
		c->us_wait += t1 - t0;
		c->us_check += t2 - t1;
		for (size_t i = 0; i < n; i++) {
			/* a failed batch: the rest is read again after the re-restore's seek */
			if (c->rerestore && !c->txn_open)
				break;
			if (adm[i].m->err)
				consumer_error(c, adm[i].m);
			else if (cp_handle_admitted(c, &adm[i]) < 0 && !c->dr_err)
				/* a produce failed: the batch fails and is re-done from the log */
				c->dr_err = RD_KAFKA_RESP_ERR__FAIL;
			/* a failed produce or an engine error ends the batch at once: no more
			 * commands are decided against state that is about to be restored */
			if ((c->dr_err || c->rerestore) && c->txn_open)
				cp_batch_close(c, false);
			if (c->txn_open && c->batch_n >= c->o.batch_commands)
				cp_batch_close(c, false);
			rd_kafka_poll(c->producer, 0);
			if (c->txn_open && cp_release_ready(c) < 0 && !c->dr_err)
				c->dr_err = RD_KAFKA_RESP_ERR__FAIL;
		}
		for (size_t i = 0; i < n; i++) {
			cp_adm_done(&adm[i]);
			rd_kafka_message_destroy(adm[i].m);
		}
		c->us_handle += cp_mono_us() - t2;
		if ((c->dr_err || c->rerestore) && c->txn_open)
			cp_batch_close(c, false);
		if (cp_batch_due(c) || group_commit_due(c, n))
			cp_batch_close(c, false);
		if (c->rerestore && !c->txn_open && !*c->stop)
			cp_rerestore_all(c);
		int64_t now = cp_mono_us();
		if (c->o.sweep_interval_ms > 0 && now >= next_sweep && !*c->stop && !c->rerestore) {
			cp_sweep(c, cp_now_us(c));
			next_sweep = now + (int64_t)c->o.sweep_interval_ms * 1000;
		}
		if (now >= next_stats) {
			bk_logf(BK_LOG_INFO, "stats",
				"commands=%llu events=%llu dlq=%llu batches=%llu aborts=%llu",
				(unsigned long long)c->n_cmds, (unsigned long long)c->n_events,
				(unsigned long long)c->n_dlq, (unsigned long long)c->n_batches,
				(unsigned long long)c->n_aborts);
			cp_report_unsigned(c);
			next_stats = now + 10 * 1000000LL;
		}
		rd_kafka_poll(c->producer, 0);
		if (c->txn_open && cp_release_ready(c) < 0 && !c->dr_err)
			c->dr_err = RD_KAFKA_RESP_ERR__FAIL;
	}
}

int main(int argc, char **argv)
{
	cp c = {.o = {.batch_commands = 2000,
		      .batch_ms = 100,
		      .batch_idle_ms = 0,
		      .sweep_interval_ms = 1000,
		      .expiring_lead_s = 86400,
		      .group_id = "booking-commands",
		      .txn_prefix = "booking-commands",
		      .timeout_ms = 30000},
		.stop = &stop_flag};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	c.o.admit_threads = ncpu > 17 ? 16 : ncpu > 1 ? (int)ncpu - 1 : 0;
	int code = CP_EXIT_USAGE;
	if (sodium_init() < 0) {
		fprintf(stderr, "booking-commands: libsodium failed to initialise\n");
		return CP_EXIT_FATAL;
	}
	if (!(c.kc = bk_kconf_new()))
		return CP_EXIT_FATAL;
	int pr = parse_args(&c, argc, argv);
	if (pr != 0) {
		FILE *f = pr > 0 ? stdout : stderr;
		fputs(usage_text, f);
		fputs(bk_kconf_usage(), f);
		bk_kconf_destroy(c.kc);
		return pr > 0 ? CP_EXIT_OK : CP_EXIT_USAGE;
	}
	if (load_keyring(&c) < 0 || load_writer(&c) < 0)
		goto out;
	if (c.o.allow_unsigned)
		bk_log(BK_LOG_WARN, "*** --allow-unsigned: commands WITHOUT A SIGNATURE ARE "
				    "ACCEPTED. Development only; never in production. ***");
	if (c.o.clock_offset_s)
		bk_logf(BK_LOG_WARN, "--clock-offset: the processor's clock is shifted",
			"seconds=%lld", (long long)c.o.clock_offset_s);
	if (!(c.tz = bk_tzdb_new(NULL))) {
		code = CP_EXIT_FATAL;
		goto out;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (setup_kafka(&c, &code) < 0)
		goto out;
	char perr[256];
	cp_adm *adm = calloc(CP_RUN_MAX, sizeof(*adm));
	if (!adm || !(c.pool = bk_pool_new(c.o.admit_threads, perr, sizeof(perr)))) {
		fprintf(stderr, "booking-commands: admission threads: %s\n",
			adm ? perr : "out of memory");
		free(adm);
		code = CP_EXIT_FATAL;
		goto out;
	}
	/* the deciders' scratch per pool worker ([0], the main thread, uses c.dscratch) */
	if ((c.wscratch = calloc((size_t)c.o.admit_threads + 1, sizeof(*c.wscratch)))) {
		c.n_wscratch = c.o.admit_threads + 1;
		for (int i = 0; i < c.n_wscratch; i++)
			msgpack_sbuffer_init(&c.wscratch[i]);
	}
	run(&c, adm);
	for (size_t i = 0; i < CP_RUN_MAX; i++)
		cp_adm_free(&adm[i]);
	free(adm);
	cp_batch_close(&c, false);
	cp_report_unsigned(&c);
	code = c.exit_code;
	bk_logf(code ? BK_LOG_ERROR : BK_LOG_INFO, "stopping",
		"exit=%d commands=%llu events=%llu dlq=%llu batches=%llu aborts=%llu wait_ms=%lld "
		"check_ms=%lld handle_ms=%lld close_ms=%lld",
		code, (unsigned long long)c.n_cmds, (unsigned long long)c.n_events,
		(unsigned long long)c.n_dlq, (unsigned long long)c.n_batches,
		(unsigned long long)c.n_aborts, (long long)(c.us_wait / 1000),
		(long long)(c.us_check / 1000), (long long)(c.us_handle / 1000),
		(long long)(c.us_close / 1000));
	if (c.consumer && !c.ever_assigned && rd_kafka_version() < 0x020300ff) {
		/* librdkafka before 2.3 (issue #4312) asserts when a cooperative-sticky consumer
		 * that never received an assignment is closed and destroyed. It holds nothing:
		 * leave it to the process exit (the group drops the member after
		 * session.timeout.ms). The static reference keeps LeakSanitizer quiet. */
		never_assigned = c.consumer;
		c.consumer = NULL;
		bk_logf(BK_LOG_INFO, "leaving without closing the group consumer",
			"why=\"no assignment yet; librdkafka %s asserts on closing it (#4312)\"",
			rd_kafka_version_str());
	}
	if (!code) {
		if (c.consumer)
			rd_kafka_consumer_close(c.consumer);
		rd_kafka_flush(c.producer, c.o.timeout_ms);
	}
out:
	if (c.consumer)
		rd_kafka_destroy(c.consumer);
	if (c.producer)
		rd_kafka_destroy(c.producer);
	if (c.rules_rd) {
		rd_kafka_consumer_close(c.rules_rd);
		rd_kafka_destroy(c.rules_rd);
	}
	if (c.reader) {
		rd_kafka_consumer_close(c.reader);
		rd_kafka_destroy(c.reader);
	}
	for (int i = 0; c.parts && i < c.nparts; i++)
		cp_part_reset(&c.parts[i]);
	cp_held_free(&c);
	bk_pool_free(c.pool);
	msgpack_sbuffer_destroy(&c.enc);
	msgpack_sbuffer_destroy(&c.dscratch);
	for (int i = 0; i < c.n_wscratch; i++)
		msgpack_sbuffer_destroy(&c.wscratch[i]);
	free(c.wscratch);
	free(c.parts);
	bk_ruleset_free(c.rules);
	bk_keyring_free(c.kr);
	bk_keyring_free(c.wkr);
	sodium_memzero(c.wsk, sizeof(c.wsk));
	free(c.srec);
	bk_tzdb_free(c.tz);
	bk_kconf_destroy(c.kc);
	return code;
}
