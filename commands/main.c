/*
 * main.c - booking-commands: flags, Kafka handles, the consumer-group rebalance callback
 * (restore before assign, commit before revoke) and the poll loop that batches commands
 * into transactions and runs the expiry sweep. SIGTERM/SIGINT commit the batch, exit 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <systemd/sd-daemon.h>

#include "conffile.h"
#include "cp.h"
#include "log.h"
#include "metrics.h"
#include "startup.h"
#include "trust.h"

#ifndef BK_VERSION
#define BK_VERSION "unknown"
#endif

static volatile sig_atomic_t stop_flag, stop_signal, hup_flag;

static void on_signal(int sig)
{
	stop_signal = sig;
	stop_flag = 1;
}

static const char *signal_name(int sig)
{
	return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "stopped";
}

static void on_hup(int sig)
{
	(void)sig;
	hup_flag = 1;
}

/* --metrics-addr: the processor's metrics (ops/metrics.md). The main thread updates
 * them; the HTTP thread only renders and reads the readiness atomics. */
typedef struct cp_mx {
	bk_metrics *reg; /* NULL: metrics off */
	/* commands and dead letters count when their batch commits (an aborted batch is
	 * done again): the open batch's counts wait in shadows and plain totals */
	bk_mgrid *commands, *commands_batch; /* commands_batch is c->m_commands; owned */
	bk_mgrid *dlq, *dlq_batch;	     /* dlq_batch owned */
	uint64_t handled_batch;
	bk_series *batch_size, *batch_seconds, *result_seconds, *restore_seconds, *restore_records,
	    *sweeps, *batches, *aborts, *events, *commands_seen, *assigned, *keyring_reloads,
	    *keyring_errors, *delivery_failures, *restore_forks, *restore_invalid;
	bk_metric *lag, *end;
	bk_series **lag_s, **end_s; /* [nparts] */
	int64_t *ts_ms;		    /* the open batch's commands' record timestamps */
	size_t n_ts, cap_ts;
	atomic_int n_assigned, n_restored;
} cp_mx;

static cp_mx mx;

/* Delivery failures since the last batch close: the first is logged, the rest counted and
 * summed up in one line when the batch closes (an aborted batch purges every record it
 * still had queued: hundreds of identical lines otherwise). Main thread only. */
static uint64_t dr_failed;

static const char usage_text[] =
    "usage: booking-commands [options]\n"
    "\n"
    "The command processor: consumes booking.commands (consumer group), decides each\n"
    "command against the order's state restored from booking.events, and produces one\n"
    "events record, one result (and for autoaccept.* one rules record) per command.\n"
    "Logs logfmt on stderr; SIGTERM/SIGINT finish the current batch and exit 0; SIGHUP\n"
    "reloads the keyring (a keyring that does not load leaves the old one in place).\n"
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
    "  --archive-after SECONDS      the sweep archives an order this long after its last\n"
    "                               event once it is terminal with nothing open: it\n"
    "                               leaves memory, later commands get `archived`; this\n"
    "                               is the dispute and tip window; 0: never (2592000 =\n"
    "                               30 days)\n"
    "  --snapshot-interval-ms MS    write a checkpoint (changed orders' snapshots on\n"
    "                               booking.snapshots) this often and restore from it;\n"
    "                               0: neither (5000)\n"
    "  --group-id ID                consumer group (booking-commands)\n"
    "  --transactional-id-prefix P  transactional.id = P-<group.instance.id>, or\n"
    "                               P-<host>-<pid> without one (booking-commands)\n"
    "  --no-transactions            for clusters without transactions: each batch is\n"
    "                               flushed instead (correctness does not change)\n"
    "  --timeout-ms MS              Kafka call timeout: metadata, commit, restore; at\n"
    "                               start, how long to wait for Kafka (retrying, one\n"
    "                               log line per 5 s) before exit 3 (30000)\n"
    "  --clock-offset SECONDS       DEVELOPMENT ONLY: shift the processor's clock\n"
    "  --metrics-addr HOST:PORT     serve GET /metrics (Prometheus), /healthz and\n"
    "                               /readyz there (off; e.g. 127.0.0.1:9464)\n"
    "  -h, --help                   this text\n"
    "  --version                    the version\n"
    "\n"
    "exit: 0 stopped by a signal, 1 fatal Kafka or internal error, 2 bad configuration\n"
    "(also: a topic missing, mismatched partition counts, a partition with lost\n"
    "history), 3 Kafka unreachable at start\n"
    "\n";

static const char *metrics_addr; /* --metrics-addr; NULL: off */

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

/* Parse argv into c->o and c->kc. 0, 1 for --help, 2 for --version, -1 on a bad flag
 * (message printed). */
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
		static const char *const with_value[] = {"--keyring",
							 "--writer-key",
							 "--writer-key-id",
							 "--writer-keyring",
							 "--batch-commands",
							 "--batch-ms",
							 "--batch-idle-ms",
							 "--verify-threads",
							 "--sweep-interval-ms",
							 "--expiring-lead",
							 "--archive-after",
							 "--group-id",
							 "--transactional-id-prefix",
							 "--timeout-ms",
							 "--clock-offset",
							 "--metrics-addr",
							 NULL};
		bool takes = !strcmp(name, "--snapshot-interval-ms"); /* (issue #11) */
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
		else if (!strcmp(name, "--version"))
			return 2;
		else if (!strcmp(name, "--metrics-addr"))
			metrics_addr = val;
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
		} else if (!strcmp(name, "--snapshot-interval-ms")) {
			if (parse_i64(name, val, 0, 86400000, &v) < 0)
				return -1;
			c->o.snapshot_interval_ms = (int)v;
		} else if (!strcmp(name, "--expiring-lead")) {
			if (parse_i64(name, val, 0, 366LL * 86400, &v) < 0)
				return -1;
			c->o.expiring_lead_s = v;
		} else if (!strcmp(name, "--archive-after")) {
			if (parse_i64(name, val, 0, 100LL * 366 * 86400, &v) < 0)
				return -1;
			c->o.archive_after_s = v;
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
	if (bk_trust_check_writer(c->wkr, c->wsk, c->wkid, err, sizeof(err)) < 0) {
		fprintf(stderr, "booking-commands: %s\n", err);
		return -1;
	}
	return 0;
}

/* --- metrics --- */

static const char *const dlq_reasons[] = {"empty",    "oversized", "content_type", "decode",
					  "unsigned", "auth",	   "key",	   "partition",
					  "internal", "other"};
#define DLQ_REASONS ((int)(sizeof(dlq_reasons) / sizeof(dlq_reasons[0])))

/* The reason class of a dead-letter reason (admit.c and process.c write them). */
static int dlq_reason(const char *why)
{
	static const char *const prefix[] = {"empty value", "oversized", "unsupported content-type",
					     "decode",	    "unsigned",	 "auth",
					     "key",	    "partition", "internal"};
	for (int i = 0; i < (int)(sizeof(prefix) / sizeof(prefix[0])); i++)
		if (!strncmp(why, prefix[i], strlen(prefix[i])))
			return i;
	return DLQ_REASONS - 1;
}

static const char *dlq_name(int dim, int idx)
{
	(void)dim;
	return dlq_reasons[idx];
}

static const char *command_name(int dim, int idx)
{
	if (dim == 0)
		return idx < BK_CMD__COUNT ? bk_cmd_name((bk_cmd_type)idx) : "other";
	if (dim == 1)
		return idx <= BK_DUPLICATE ? bk_outcome_name((bk_outcome)idx) : "other";
	return idx < BK_E__COUNT ? bk_err_name((bk_err)idx) : "other";
}

static bool cp_ready(void *opaque, char *why, size_t whysz)
{
	(void)opaque;
	int a = atomic_load(&mx.n_assigned), r = atomic_load(&mx.n_restored);
	if (a == 0)
		snprintf(why, whysz, "no partitions assigned");
	else if (r < a)
		snprintf(why, whysz, "restoring: %d of %d partitions restored", r, a);
	return a > 0 && r == a;
}

static bk_series *mx_add(bk_mtype t, const char *name, const char *help, const double *b, size_t nb)
{
	return bk_metric_with(bk_metrics_add(mx.reg, t, name, help, NULL, b, nb), NULL);
}

/* The registry and its server, before Kafka is set up (/healthz answers during start-up).
 * 0, or -1 with a message printed (bad address: exit 2). */
static int mx_start(cp *c, const char *addr)
{
	char err[512];
	if (!(mx.reg = bk_metrics_new()))
		return -1;
	const double *sb = bk_metric_seconds_buckets, *nb = bk_metric_size_buckets;
	const size_t ns = bk_metric_seconds_nbuckets, nn = bk_metric_size_nbuckets;
	bk_metric *info =
	    bk_metrics_add(mx.reg, BK_MT_GAUGE, "booking_build_info",
			   "Build information; always 1.", "program,version", NULL, 0);
	bk_series_set(bk_metric_with(info, (const char *const[]){"booking-commands", BK_VERSION}),
		      1);
	int csz[3] = {BK_CMD__COUNT + 1, BK_DUPLICATE + 2, BK_E__COUNT + 1};
	mx.commands = bk_metric_grid(
	    bk_metrics_add(mx.reg, BK_MT_COUNTER, "booking_commands_total",
			   "Commands answered with a result, by command type, outcome and "
			   "rejection code.",
			   "type,outcome,code", NULL, 0),
	    3, csz, command_name);
	int dsz[1] = {DLQ_REASONS};
	mx.dlq = bk_metric_grid(
	    bk_metrics_add(mx.reg, BK_MT_COUNTER, "booking_commands_dlq_records_total",
			   "Command records dead-lettered, by reason.", "reason", NULL, 0),
	    1, dsz, dlq_name);
	c->m_commands = mx.commands_batch = bk_mgrid_shadow(mx.commands);
	mx.dlq_batch = bk_mgrid_shadow(mx.dlq);
	mx.commands_seen = mx_add(BK_MT_COUNTER, "booking_commands_handled_total",
				  "Command records handled (answered or dead-lettered).", NULL, 0);
	mx.events = mx_add(BK_MT_COUNTER, "booking_commands_events_total",
			   "Events produced to booking.events (the events of one command share "
			   "one record).",
			   NULL, 0);
	mx.batches = mx_add(BK_MT_COUNTER, "booking_commands_batches_total",
			    "Batches (transactions) committed.", NULL, 0);
	mx.aborts = mx_add(BK_MT_COUNTER, "booking_commands_batch_aborts_total",
			   "Batches aborted and re-done from the log after a restore.", NULL, 0);
	mx.batch_size = mx_add(BK_MT_HISTOGRAM, "booking_commands_batch_size",
			       "Commands per committed batch.", nb, nn);
	mx.batch_seconds =
	    mx_add(BK_MT_HISTOGRAM, "booking_commands_batch_seconds",
		   "Time from a batch's first command to its commit, in seconds.", sb, ns);
	mx.result_seconds = mx_add(
	    BK_MT_HISTOGRAM, "booking_commands_result_latency_seconds",
	    "Time from a command record's timestamp to the commit of its result, in seconds.", sb,
	    ns);
	mx.restore_seconds = mx_add(
	    BK_MT_HISTOGRAM, "booking_commands_restore_seconds",
	    "Duration of a restore of assigned partitions from the log, in seconds.", sb, ns);
	mx.restore_records = mx_add(
	    BK_MT_COUNTER, "booking_commands_restore_records_total",
	    "Events and results records read by restores (the partitions' extents).", NULL, 0);
	mx.delivery_failures = mx_add(
	    BK_MT_COUNTER, "booking_commands_delivery_failures_total",
	    "Records whose delivery to Kafka failed (their batch aborts and is re-done).", NULL, 0);
	mx.sweeps =
	    mx_add(BK_MT_COUNTER, "booking_commands_sweeps_total", "Expiry sweeps run.", NULL, 0);
	mx.restore_forks = mx_add(BK_MT_COUNTER, "booking_commands_restore_forks_total",
				  "Events a restore did not apply because another valid event "
				  "holds their seq (a fork: two writers).",
				  NULL, 0);
	mx.restore_invalid =
	    mx_add(BK_MT_COUNTER, "booking_commands_restore_invalid_records_total",
		   "Invalid records a restore met in booking.events: bad hash or link, "
		   "undecodable, bad seals, events that could not be applied.",
		   NULL, 0);
	mx.assigned = mx_add(BK_MT_GAUGE, "booking_commands_partitions_assigned",
			     "booking.commands partitions assigned to this instance.", NULL, 0);
	mx.keyring_reloads = mx_add(BK_MT_COUNTER, "booking_commands_keyring_reloads_total",
				    "Keyring reloads on SIGHUP that succeeded.", NULL, 0);
	mx.keyring_errors =
	    mx_add(BK_MT_COUNTER, "booking_commands_keyring_reload_errors_total",
		   "Keyring reloads on SIGHUP that failed (the old keyring stays).", NULL, 0);
	mx.lag = bk_metrics_add(mx.reg, BK_MT_GAUGE, "booking_commands_partition_lag_records",
				"booking.commands records not yet handled, per assigned partition "
				"(end offset - next offset).",
				"topic,partition", NULL, 0);
	mx.end = bk_metrics_add(mx.reg, BK_MT_GAUGE, "booking_commands_partition_end_offset",
				"booking.commands high watermark, per assigned partition.",
				"topic,partition", NULL, 0);
	if (!c->m_commands || !mx.dlq_batch || !mx.result_seconds || !mx.lag || !mx.end ||
	    !mx.keyring_errors) {
		fprintf(stderr, "booking-commands: metrics: out of memory\n");
		return -1;
	}
	int port = 0;
	if (bk_metrics_serve(mx.reg, addr, 120, cp_ready, NULL, &port, err, sizeof(err)) < 0) {
		fprintf(stderr, "booking-commands: %s\n", err);
		return -1;
	}
	bk_logf(BK_LOG_INFO, "metrics listening", "addr=%s port=%d version=%s", addr, port,
		BK_VERSION);
	return 0;
}

/* Per-partition series, once the partition count is known. */
static void mx_partitions(cp *c)
{
	if (!mx.reg || !(mx.lag_s = calloc((size_t)c->nparts, sizeof(*mx.lag_s))) ||
	    !(mx.end_s = calloc((size_t)c->nparts, sizeof(*mx.end_s))))
		return;
	for (int p = 0; p < c->nparts; p++) {
		char ps[16];
		snprintf(ps, sizeof(ps), "%d", p);
		const char *v[2] = {c->topic[BK_TOPIC_COMMANDS], ps};
		mx.lag_s[p] = bk_metric_with(mx.lag, v);
		mx.end_s[p] = bk_metric_with(mx.end, v);
		bk_series_hide(mx.lag_s[p], true);
		bk_series_hide(mx.end_s[p], true);
	}
}

/* Readiness, lag and the totals kept in cp (every second and after rebalances). */
static void mx_update(cp *c)
{
	if (!mx.reg)
		return;
	int a = 0, r = 0;
	for (int p = 0; p < c->nparts; p++) {
		const cp_part *cpp = &c->parts[p];
		a += cpp->assigned;
		r += cpp->assigned && cpp->restored;
		int64_t lo = 0, hi = 0;
		bool show =
		    cpp->assigned && mx.lag_s &&
		    rd_kafka_get_watermark_offsets(c->consumer, c->topic[BK_TOPIC_COMMANDS], p, &lo,
						   &hi) == RD_KAFKA_RESP_ERR_NO_ERROR &&
		    hi >= 0;
		if (mx.lag_s) {
			bk_series_hide(mx.lag_s[p], !show);
			bk_series_hide(mx.end_s[p], !show);
		}
		if (show) {
			int64_t lag = hi - cpp->next_offset;
			bk_series_set(mx.end_s[p], (double)hi);
			bk_series_set(mx.lag_s[p], (double)(lag < 0 ? 0 : lag));
		}
	}
	atomic_store(&mx.n_assigned, a);
	atomic_store(&mx.n_restored, r);
	bk_series_set(mx.assigned, a);
	bk_series_store(mx.events, c->n_events);
	bk_series_store(mx.aborts, c->n_aborts);
	bk_series_store(mx.restore_forks, c->n_restore_forks);
	bk_series_store(mx.restore_invalid, c->n_restore_invalid);
	bk_metrics_heartbeat(mx.reg);
}

/* A command record was handled (answered or dead-lettered): its timestamp waits for the
 * batch's commit (result latency); a dead letter is counted by reason. */
static void mx_handled(const cp_adm *a, bool dead_lettered)
{
	mx.handled_batch++;
	if (dead_lettered)
		bk_mgrid_inc3(mx.dlq_batch, dlq_reason(a->why), 0, 0);
	rd_kafka_timestamp_type_t tt;
	int64_t ts = rd_kafka_message_timestamp(a->m, &tt);
	if (ts <= 0)
		return;
	if (mx.n_ts == mx.cap_ts) {
		size_t cap = mx.cap_ts ? mx.cap_ts * 2 : 4096;
		int64_t *n = realloc(mx.ts_ms, cap * sizeof(*n));
		if (!n)
			return;
		mx.ts_ms = n;
		mx.cap_ts = cap;
	}
	mx.ts_ms[mx.n_ts++] = ts;
}

/* cp_batch_close, with the batch's size, duration and result latencies observed when it
 * commits. Every batch close goes through here. */
static int close_batch(cp *c, bool lost)
{
	const bool open = c->txn_open;
	int n = c->batch_n;
	int64_t start = c->batch_start_us;
	uint64_t nb = c->n_batches;
	int rc = cp_batch_close(c, lost);
	if (dr_failed > 1)
		bk_logf(BK_LOG_ERROR, "delivery failures in the batch", "records=%llu",
			(unsigned long long)dr_failed);
	dr_failed = 0;
	if (!mx.reg || !open)
		return rc;
	if (c->n_batches != nb) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		bk_series_inc(mx.batches);
		bk_mgrid_fold(mx.commands, mx.commands_batch);
		bk_mgrid_fold(mx.dlq, mx.dlq_batch);
		bk_series_add(mx.commands_seen, mx.handled_batch);
		bk_series_observe(mx.batch_size, n);
		bk_series_observe(mx.batch_seconds, (double)(cp_mono_us() - start) / 1e6);
		for (size_t i = 0; i < mx.n_ts; i++)
			bk_series_observe(
			    mx.result_seconds,
			    (double)(now_ms > mx.ts_ms[i] ? now_ms - mx.ts_ms[i] : 0) / 1e3);
	}
	/* committed: folded above; aborted: its commands come again */
	bk_mgrid_clear(mx.commands_batch);
	bk_mgrid_clear(mx.dlq_batch);
	mx.handled_batch = 0;
	mx.n_ts = 0;
	return rc;
}

/* cp_restore, timed, with the records it read taken from the reader's watermarks: the
 * restored partitions of events and results, and the whole rules topic. */
static int restore(cp *c, const int32_t *ps, int n, char *err, size_t errsz)
{
	int64_t t0 = cp_mono_us();
	int rc = cp_restore(c, ps, n, err, errsz);
	if (rc == 0 && mx.reg) {
		bk_series_observe(mx.restore_seconds, (double)(cp_mono_us() - t0) / 1e6);
		uint64_t recs = 0;
		for (int i = 0; i < n; i++)
			for (int t = 0; t < 2; t++) {
				int64_t lo = 0, hi = 0;
				if (rd_kafka_get_watermark_offsets(
					c->reader, c->topic[t ? BK_TOPIC_RESULTS : BK_TOPIC_EVENTS],
					ps[i], &lo, &hi) == RD_KAFKA_RESP_ERR_NO_ERROR &&
				    hi > lo && lo >= 0)
					recs += (uint64_t)(hi - lo);
			}
		for (int p = 0; p < c->rules_parts; p++) { /* the whole rules topic is read */
			int64_t lo = 0, hi = 0;
			if (rd_kafka_get_watermark_offsets(c->reader, c->topic[BK_TOPIC_RULES], p,
							   &lo,
							   &hi) == RD_KAFKA_RESP_ERR_NO_ERROR &&
			    hi > lo && lo >= 0)
				recs += (uint64_t)(hi - lo);
		}
		bk_series_add(mx.restore_records, recs);
	}
	return rc;
}

/* Read the keyring file into *ret (replacing nothing). 0, or -1 with errstr. */
static int read_keyring(const char *path, bool allow_unsigned, bk_keyring **ret, char *errstr,
			size_t errsz)
{
	char err[512];
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(errstr, errsz, "--keyring %s: %s", path, strerror(errno));
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
				snprintf(errstr, errsz, "--keyring %s: out of memory", path);
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
	bk_keyring *kr = NULL;
	int rc = bk_keyring_parse(buf ? buf : "", n, &kr, err, sizeof(err));
	free(buf);
	if (rc < 0) {
		snprintf(errstr, errsz, "--keyring %s: %s", path, err);
		return -1;
	}
	if (bk_keyring_count(kr) == 0 && !allow_unsigned) {
		bk_keyring_free(kr);
		snprintf(errstr, errsz, "--keyring %s holds no key", path);
		return -1;
	}
	*ret = kr;
	return 0;
}

static int load_keyring(cp *c)
{
	char err[600];
	if (!c->o.keyring_path) {
		if (!c->o.allow_unsigned) {
			fprintf(stderr, "booking-commands: --keyring PATH is required (or "
					"--allow-unsigned, for development only)\n");
			return -1;
		}
		return 0;
	}
	if (read_keyring(c->o.keyring_path, c->o.allow_unsigned, &c->kr, err, sizeof(err)) < 0) {
		fprintf(stderr, "booking-commands: %s\n", err);
		return -1;
	}
	return 0;
}

/* SIGHUP: reload the keyring (between runs of checks: the pool's threads are idle); a
 * keyring that does not load leaves the old one in place. Logs go to stderr: nothing to
 * reopen. */
static void on_reload(cp *c)
{
	hup_flag = 0;
	if (!c->o.keyring_path) {
		bk_log(BK_LOG_INFO, "SIGHUP: no --keyring to reload; logs go to stderr");
		return;
	}
	char err[600];
	bk_keyring *kr = NULL;
	if (read_keyring(c->o.keyring_path, c->o.allow_unsigned, &kr, err, sizeof(err)) < 0) {
		bk_series_inc(mx.keyring_errors);
		bk_logf(BK_LOG_ERROR, "SIGHUP: keyring not reloaded, the old one stays",
			"err=\"%s\"", err);
		return;
	}
	bk_keyring *old = c->kr;
	c->kr = kr;
	bk_keyring_free(old);
	bk_series_inc(mx.keyring_reloads);
	bk_logf(BK_LOG_INFO, "SIGHUP: keyring reloaded", "path=%s keys=%zu", c->o.keyring_path,
		(size_t)bk_keyring_count(kr));
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	cp *c = opaque;
	(void)rk;
	if (!m->err) {
		cp_gate_acked(c, (uintptr_t)m->_private, m->offset);
		cp_seal_acked(c, m); /* a checkpoint's E (snapshot.c) */
		return;
	}
	if (dr_failed++ == 0)
		bk_logf(BK_LOG_ERROR, "delivery failed",
			"topic=%s partition=%d err=\"%s\" next=\"%s\"", rd_kafka_topic_name(m->rkt),
			(int)m->partition, rd_kafka_err2str(m->err),
			"further failures are counted until the batch closes");
	bk_series_inc(mx.delivery_failures);
	if (c->dr_err == RD_KAFKA_RESP_ERR_NO_ERROR)
		c->dr_err = m->err;
}

/* Kafka unreachable while running: one line when the pipeline stalls, one when it
 * resumes (lib/startup.h). Fed by the group consumer's statistics, on the main thread. */
static bk_kwatch kwatch = {.program = "booking-commands"};

static int stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
	const cp *c = opaque;
	(void)rk;
	int n = 0;
	for (int p = 0; c->parts && p < c->nparts; p++)
		n += c->parts[p].assigned;
	bk_kwatch_stats(&kwatch, json, json_len, n);
	return 0; /* librdkafka frees json */
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
		close_batch(c, false);
		int32_t *ps = calloc((size_t)parts->cnt + 1, sizeof(*ps));
		int n = 0;
		for (int i = 0; ps && i < parts->cnt; i++) {
			int32_t p = parts->elems[i].partition;
			if (p < 0 || p >= c->nparts)
				continue;
			c->parts[p].assigned = true;
			ps[n++] = p;
		}
		char list[1024] = "";
		if (ps) {
			int32_t *sorted = malloc(((size_t)n + 1) * sizeof(*sorted));
			if (sorted) {
				memcpy(sorted, ps, (size_t)n * sizeof(*sorted));
				bk_part_list(sorted, (size_t)n, list, sizeof(list));
				free(sorted);
			}
		}
		bk_logf(BK_LOG_INFO, "partitions assigned: restoring",
			"topic=%s count=%d partitions=%s protocol=%s", c->topic[BK_TOPIC_COMMANDS],
			n, list, rd_kafka_rebalance_protocol(rk));
		if (!ps) {
			cp_fatal(c, CP_EXIT_FATAL);
		} else if (n > 0 && restore(c, ps, n, estr, sizeof(estr)) < 0) {
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
		mx_update(c);
		return;
	}
	bool lost = err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS || rd_kafka_assignment_lost(rk);
	if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
		bk_logf(BK_LOG_ERROR, "rebalance error", "err=\"%s\"", rd_kafka_err2str(err));
	/* finish (or, when lost, abort) the batch before the partitions go */
	close_batch(c, lost);
	int32_t *ids = malloc(((size_t)parts->cnt + 1) * sizeof(*ids));
	size_t nids = 0;
	for (int i = 0; i < parts->cnt; i++) {
		int32_t p = parts->elems[i].partition;
		if (p < 0 || p >= c->nparts)
			continue;
		cp_part_reset(&c->parts[p]);
		c->parts[p].assigned = false;
		if (ids)
			ids[nids++] = p;
	}
	char list[1024] = "";
	if (ids)
		bk_part_list(ids, nids, list, sizeof(list));
	free(ids);
	bk_logf(BK_LOG_INFO, "partitions revoked", "topic=%s count=%d partitions=%s lost=%d",
		c->topic[BK_TOPIC_COMMANDS], parts->cnt, list, lost);
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
	mx_update(c);
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
	/* the cluster answers (retried up to --timeout-ms) and the topics exist, commands,
	 * events and results with one partition count (lib/startup.h, as the projector) */
	bk_startup_topic ts[] = {
	    {c->topic[BK_TOPIC_COMMANDS], "--commands-topic", true, 0},
	    {c->topic[BK_TOPIC_EVENTS], "--events-topic", true, 0},
	    {c->topic[BK_TOPIC_RESULTS], "--results-topic", true, 0},
	    {c->topic[BK_TOPIC_RULES], "--rules-topic", false, 0},
	    {c->topic[BK_TOPIC_DLQ], "--dlq-topic", false, 0},
	    /* checkpoints: the snapshots topic, partitioned as the events (unless off) */
	    {c->topic[BK_TOPIC_SNAPSHOTS], "--snapshots-topic", true, 0},
	};
	bk_startup_rc sr = bk_startup_check(c->reader, ts, c->o.snapshot_interval_ms > 0 ? 6 : 5,
					    c->o.timeout_ms, &stop_flag, err, sizeof(err));
	if (sr != BK_STARTUP_OK) {
		*ret_code = bk_startup_exit_code(sr);
		if (sr != BK_STARTUP_STOPPED) {
			bk_logf(BK_LOG_ERROR, "refusing to run", "err=\"%s\"", err);
			fprintf(stderr, "booking-commands: %s\n", err);
		}
		return -1;
	}
	c->nparts = ts[0].count;
	c->rules_parts = ts[3].count;
	c->dlq_parts = ts[4].count;
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
	if (bk_kwatch_conf(conf, stats_cb, err, sizeof(err)) < 0) {
		fprintf(stderr, "booking-commands: %s\n", err);
		rd_kafka_conf_destroy(conf);
		return -1;
	}
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
			      c->topic[BK_TOPIC_RULES], c->topic[BK_TOPIC_DLQ],
			      c->topic[BK_TOPIC_SNAPSHOTS]};
	if (bk_kconf_warm_topics(c->producer, outs, c->o.snapshot_interval_ms > 0 ? 5 : 4,
				 c->o.timeout_ms, err, sizeof(err)) < 0) {
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
		"version=%s partitions=%d group_id=%s transactional_id=%s transactions=%d "
		"batch_commands=%d "
		"batch_ms=%d batch_idle_ms=%d verify_threads=%d sweep_interval_ms=%d "
		"expiring_lead_s=%lld archive_after_s=%lld "
		"commands_topic=%s",
		BK_VERSION, c->nparts, c->o.group_id, c->o.no_txn ? "" : txn_id, !c->o.no_txn,
		c->o.batch_commands, c->o.batch_ms, c->o.batch_idle_ms, c->o.admit_threads,
		c->o.sweep_interval_ms, (long long)c->o.expiring_lead_s,
		(long long)c->o.archive_after_s, c->topic[BK_TOPIC_COMMANDS]);
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
	int64_t next_ck = cp_mono_us() + (int64_t)c->o.snapshot_interval_ms * 1000;
	int64_t next_mx = 0, next_wd = 0;
	uint64_t wd_us = 0; /* systemd's WatchdogSec (sd_notify WATCHDOG=1 at half of it) */
	if (sd_watchdog_enabled(0, &wd_us) <= 0)
		wd_us = 0;
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
			uint64_t cmds = c->n_cmds, dlqs = c->n_dlq;
			if (adm[i].m->err)
				consumer_error(c, adm[i].m);
			else if (cp_handle_admitted(c, &adm[i]) < 0 && !c->dr_err)
				/* a produce failed: the batch fails and is re-done from the log */
				c->dr_err = RD_KAFKA_RESP_ERR__FAIL;
			if (mx.reg && c->n_cmds != cmds)
				mx_handled(&adm[i], c->n_dlq != dlqs);
			/* a failed produce or an engine error ends the batch at once: no more
			 * commands are decided against state that is about to be restored */
			if ((c->dr_err || c->rerestore) && c->txn_open)
				close_batch(c, false);
			if (c->txn_open && c->batch_n >= c->o.batch_commands)
				close_batch(c, false);
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
			close_batch(c, false);
		if (cp_batch_due(c) || group_commit_due(c, n))
			close_batch(c, false);
		if (c->rerestore && !c->txn_open && !*c->stop)
			cp_rerestore_all(c);
		int64_t now = cp_mono_us();
		if (c->o.sweep_interval_ms > 0 && now >= next_sweep && !*c->stop && !c->rerestore) {
			cp_sweep(c, cp_now_us(c));
			bk_series_inc(mx.sweeps);
			next_sweep = now + (int64_t)c->o.sweep_interval_ms * 1000;
		}
		/* a checkpoint closes the open batch: it stands for sealed batches only */
		if (c->o.snapshot_interval_ms > 0 && now >= next_ck && !*c->stop && !c->rerestore) {
			if (c->txn_open)
				close_batch(c, false);
			if (c->rerestore && !c->txn_open && !*c->stop)
				cp_rerestore_all(c);
			else
				(void)cp_checkpoint(c);
			next_ck = cp_mono_us() + (int64_t)c->o.snapshot_interval_ms * 1000;
		}
		if (hup_flag)
			on_reload(c);
		if (wd_us && now >= next_wd) {
			sd_notify(0, "WATCHDOG=1");
			next_wd = now + (int64_t)(wd_us / 2);
		}
		if (mx.reg && now >= next_mx) {
			mx_update(c);
			next_mx = now + 1000000;
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
		      .snapshot_interval_ms = 5000,
		      .expiring_lead_s = 86400,
		      .archive_after_s = 30LL * 86400,
		      .group_id = "booking-commands",
		      .txn_prefix = "booking-commands",
		      .timeout_ms = 30000},
		.stop = &stop_flag};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	c.o.admit_threads = ncpu > 17 ? 16 : ncpu > 1 ? (int)ncpu - 1 : 0;
	int code = CP_EXIT_USAGE;
	bool started = false;
	if (sodium_init() < 0) {
		fprintf(stderr, "booking-commands: libsodium failed to initialise\n");
		return CP_EXIT_FATAL;
	}
	if (!(c.kc = bk_kconf_new()))
		return CP_EXIT_FATAL;
	char ferr[600], **av = NULL;
	int ac = 0;
	if (bk_conffile_expand(argc, argv, &ac, &av, ferr, sizeof(ferr)) < 0) {
		fprintf(stderr, "booking-commands: %s\n", ferr);
		bk_logf(BK_LOG_ERROR, "not started: exiting",
			"exit=%d cause=\"bad -F file\" version=%s", CP_EXIT_USAGE, BK_VERSION);
		bk_kconf_destroy(c.kc);
		return CP_EXIT_USAGE;
	}
	int pr = parse_args(&c, ac, av);
	if (pr == 2) {
		printf("booking-commands %s\n", BK_VERSION);
		bk_kconf_destroy(c.kc);
		bk_conffile_free_argv(av);
		return CP_EXIT_OK;
	}
	if (pr != 0) {
		FILE *f = pr > 0 ? stdout : stderr;
		fputs(usage_text, f);
		fputs(bk_kconf_usage(), f);
		fputs(bk_conffile_usage(), f);
		bk_kconf_destroy(c.kc);
		bk_conffile_free_argv(av);
		if (pr < 0)
			bk_logf(BK_LOG_ERROR, "not started: exiting",
				"exit=%d cause=\"bad usage\" version=%s", CP_EXIT_USAGE,
				BK_VERSION);
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
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	if (metrics_addr && mx_start(&c, metrics_addr) < 0)
		goto out;
	if (setup_kafka(&c, &code) < 0)
		goto out;
	mx_partitions(&c);
	sd_notifyf(0, "READY=1\nSTATUS=consuming %s (%d partitions)", c.topic[BK_TOPIC_COMMANDS],
		   c.nparts);
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
	sd_notify(0, "STOPPING=1");
	for (size_t i = 0; i < CP_RUN_MAX; i++)
		cp_adm_free(&adm[i]);
	free(adm);
	close_batch(&c, false);
	cp_report_unsigned(&c);
	code = c.exit_code;
	started = true;
	bk_logf(code ? BK_LOG_ERROR : BK_LOG_INFO, "stopping",
		"exit=%d cause=%s commands=%llu events=%llu dlq=%llu batches=%llu aborts=%llu "
		"wait_ms=%lld "
		"check_ms=%lld handle_ms=%lld close_ms=%lld",
		code, code ? "fatal error (logged above)" : signal_name(stop_signal),
		(unsigned long long)c.n_cmds, (unsigned long long)c.n_events,
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
	if (!started)
		bk_logf(code ? BK_LOG_ERROR : BK_LOG_INFO, "not started: exiting",
			"exit=%d cause=\"%s\" version=%s", code,
			code == CP_EXIT_USAGE
			    ? "bad configuration, or topics not usable (see above)"
			: code == 3	     ? "kafka unreachable (see above)"
			: code == CP_EXIT_OK ? signal_name(stop_signal)
					     : "fatal error (see above)",
			BK_VERSION);
	bk_metrics_free(mx.reg); /* stops the server first */
	free(mx.lag_s);
	free(mx.end_s);
	free(mx.ts_ms);
	bk_mgrid_free(mx.commands_batch);
	bk_mgrid_free(mx.dlq_batch);
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
	bk_conffile_free_argv(av); /* after everything that kept a pointer into it */
	return code;
}
