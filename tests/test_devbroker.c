/*
 * test_devbroker.c - lib/log (logfmt lines, threshold), lib/kconf (options, errors,
 * configuration building, metadata helpers) and `bookingctl devbroker` end to end:
 * topics, control socket, produce/consume, fault injection with an idempotent producer
 * delivering every record exactly once, SIGTERM exit 0, and the mock's known limits.
 * Needs BOOKINGCTL (path of bookingctl) in the environment.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "kconf.h"
#include "log.h"

#define TIMEOUT_MS 10000

/* ---------------------------------------------------------------- helpers */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run fn with stderr redirected to a temp file; returns what it wrote (caller frees). */
static char *capture_stderr(void (*fn)(void))
{
	char path[] = "/tmp/bk_logXXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	fflush(stderr);
	int saved = dup(2);
	dup2(fd, 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	off_t n = lseek(fd, 0, SEEK_END);
	char *buf = calloc(1, (size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(pread(fd, buf, (size_t)n, 0), n);
	close(fd);
	return buf;
}

/* ---------------------------------------------------------------- log */

static void log_sample(void)
{
	bk_logf(BK_LOG_INFO, "batch committed", "topic=%s partition=%d offset=%lld n=%d",
		"booking.events", 3, 42LL, 7);
	bk_logf(BK_LOG_WARN, "odd \"values\"",
		"err=%s empty=%s eq=%s q=%s nl=%s quoted=\"%s!\" num=%5.1f sz=%zu w=%*d",
		"has space", "", "a=b", "a\"b", "a\nb", "x \"y\"", 2.25, (size_t)9, 3, 7);
	bk_log(BK_LOG_ERROR, "plain");
}

START_TEST(log_format)
{
	bk_log_set_level(BK_LOG_DEBUG);
	char *out = capture_stderr(log_sample);
	ck_assert_msg(!strncmp(out, "ts=", 3), "%s", out);
	ck_assert_msg(strstr(out, "Z level=info msg=\"batch committed\" topic=booking.events "
				  "partition=3 offset=42 n=7\n"),
		      "%s", out);
	ck_assert_msg(strstr(out, "level=warn msg=\"odd \\\"values\\\"\" err=\"has space\" "
				  "empty=\"\" eq=\"a=b\" q=\"a\\\"b\" nl=\"a\\nb\" "
				  "quoted=\"x \\\"y\\\"!\" num=\"  2.2\" sz=9 w=\"  7\"\n"),
		      "%s", out);
	ck_assert_msg(strstr(out, "level=error msg=\"plain\"\n"), "%s", out);
	/* one line per call */
	int lines = 0;
	for (char *p = out; *p; p++)
		lines += *p == '\n';
	ck_assert_int_eq(lines, 3);
	free(out);
}
END_TEST

static void log_levels(void)
{
	bk_log(BK_LOG_DEBUG, "dropped-debug");
	bk_log(BK_LOG_INFO, "dropped-info");
	bk_log(BK_LOG_ERROR, "kept-error");
}

START_TEST(log_threshold_from_env)
{
	/* Each Check test runs in a fresh fork, so the env is read here for the first time. */
	setenv("BOOKING_LOG_LEVEL", "error", 1);
	ck_assert_int_eq(bk_log_get_level(), BK_LOG_ERROR);
	char *out = capture_stderr(log_levels);
	ck_assert_msg(!strstr(out, "dropped") && strstr(out, "kept-error"), "%s", out);
	free(out);
	bk_log_set_level(BK_LOG_OFF);
	out = capture_stderr(log_levels);
	ck_assert_str_eq(out, "");
	free(out);
}
END_TEST

START_TEST(log_level_names)
{
	bk_log_level l;
	ck_assert_int_eq(bk_log_level_parse("WARNING", &l), 0);
	ck_assert_int_eq(l, BK_LOG_WARN);
	ck_assert_int_eq(bk_log_level_parse("debug", &l), 0);
	ck_assert_int_eq(l, BK_LOG_DEBUG);
	ck_assert_int_eq(bk_log_level_parse("loud", &l), -1);
	ck_assert_str_eq(bk_log_level_name(BK_LOG_ERROR), "error");
}
END_TEST

/* ---------------------------------------------------------------- kconf */

START_TEST(kconf_topic_names)
{
	char err[512];
	bk_kconf *kc = bk_kconf_new();
	ck_assert_str_eq(bk_kconf_topic(kc, BK_TOPIC_COMMANDS), "booking.commands");
	ck_assert_str_eq(bk_kconf_topic(kc, BK_TOPIC_RESULTS), "booking.command-results");
	ck_assert_int_eq(bk_kconf_set_topic_prefix(kc, "t1.", err, sizeof(err)), 0);
	ck_assert_str_eq(bk_kconf_topic(kc, BK_TOPIC_EVENTS), "t1.booking.events");
	ck_assert_int_eq(bk_kconf_set_topic(kc, BK_TOPIC_DLQ, "dead", err, sizeof(err)), 0);
	ck_assert_str_eq(bk_kconf_topic(kc, BK_TOPIC_DLQ), "t1.dead");
	ck_assert_int_eq(bk_kconf_set_topic(kc, BK_TOPIC_DLQ, "bad/name", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "--dlq-topic"), "%s", err);
	ck_assert_int_eq(bk_kconf_set_topic_prefix(kc, "a b", err, sizeof(err)), -1);
	ck_assert_str_eq(bk_kconf_topic(kc, BK_TOPIC_DLQ), "t1.dead"); /* unchanged */
	ck_assert_str_eq(bk_topic_default_name(BK_TOPIC_RULES), "booking.rules");
	bk_kconf_destroy(kc);
	bk_kconf_destroy(NULL);
}
END_TEST

START_TEST(kconf_take_arg_forms)
{
	char err[512];
	char *argv[] = {"prog",
			"-b",
			"127.0.0.1:9",
			"-Xlinger.ms=7",
			"-X",
			"client.id=abc",
			"--topic-prefix=p.",
			"--events-topic",
			"ev",
			"--other",
			"--rules-topic=rl",
			NULL};
	int argc = 11;
	bk_kconf *kc = bk_kconf_new();
	int ours = 0, theirs = 0;
	for (int i = 1; i < argc; i++) {
		int r = bk_kconf_take_arg(kc, argc, argv, &i, err, sizeof(err));
		ck_assert_msg(r >= 0, "%s", err);
		if (r)
			ours++;
		else
			theirs++;
	}
	ck_assert_int_eq(ours, 6);
	ck_assert_int_eq(theirs, 1);
	ck_assert_str_eq(bk_kconf_topic(kc, BK_TOPIC_EVENTS), "p.ev");
	ck_assert_str_eq(bk_kconf_topic(kc, BK_TOPIC_RULES), "p.rl");
	ck_assert_str_eq(bk_kconf_topic(kc, BK_TOPIC_COMMANDS), "p.booking.commands");

	rd_kafka_conf_t *conf;
	const char *defaults[] = {"linger.ms", "1", "acks", "all", NULL};
	ck_assert_msg(bk_kconf_build(kc, BK_KCONF_PRODUCER, defaults, &conf, err, sizeof(err)) == 0,
		      "%s", err);
	char v[256];
	size_t n = sizeof(v);
	ck_assert_int_eq(rd_kafka_conf_get(conf, "linger.ms", v, &n), RD_KAFKA_CONF_OK);
	ck_assert_str_eq(v, "7"); /* -X beats the program's default */
	n = sizeof(v);
	ck_assert_int_eq(rd_kafka_conf_get(conf, "bootstrap.servers", v, &n), RD_KAFKA_CONF_OK);
	ck_assert_str_eq(v, "127.0.0.1:9");
	n = sizeof(v);
	ck_assert_int_eq(rd_kafka_conf_get(conf, "client.id", v, &n), RD_KAFKA_CONF_OK);
	ck_assert_str_eq(v, "abc");
	rd_kafka_conf_destroy(conf);
	bk_kconf_destroy(kc);
}
END_TEST

START_TEST(kconf_errors)
{
	char err[512];
	bk_kconf *kc = bk_kconf_new();
	ck_assert_int_eq(bk_kconf_set_kv(kc, "no.such.property=1", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "unknown property") && strstr(err, "no.such.property"), "%s",
		      err);
	ck_assert_int_eq(bk_kconf_set_kv(kc, "linger.ms=soon", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "invalid value") && strstr(err, "linger.ms"), "%s", err);
	ck_assert_int_eq(bk_kconf_set_kv(kc, "linger.ms", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "key=value"), "%s", err);

	char *argv[] = {"prog", "-X", NULL};
	int i = 1;
	ck_assert_int_eq(bk_kconf_take_arg(kc, 2, argv, &i, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "-X needs a value"), "%s", err);

	rd_kafka_conf_t *conf;
	ck_assert_int_eq(bk_kconf_build(kc, BK_KCONF_CONSUMER, NULL, &conf, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "no Kafka brokers"), "%s", err);

	ck_assert_int_eq(bk_kconf_set_brokers(kc, "127.0.0.1:9", err, sizeof(err)), 0);
	ck_assert_int_eq(bk_kconf_set_brokers_file(kc, "/tmp/x", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "both"), "%s", err);

	ck_assert_int_eq(bk_kconf_set_kv(kc, "partitioner=consistent", err, sizeof(err)), 0);
	ck_assert_int_eq(bk_kconf_build(kc, BK_KCONF_PRODUCER, NULL, &conf, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "murmur2_random"), "%s", err);
	bk_kconf_destroy(kc);
}
END_TEST

START_TEST(kconf_producer_partitioner_and_file)
{
	char err[512];
	char path[] = "/tmp/bk_bsXXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_gt(write(fd, "\n  127.0.0.1:1234,127.0.0.1:5678 \n", 34), 0);
	close(fd);

	char *list = NULL;
	ck_assert_int_eq(bk_kconf_read_brokers_file(path, &list, err, sizeof(err)), 0);
	ck_assert_str_eq(list, "127.0.0.1:1234,127.0.0.1:5678");
	free(list);

	bk_kconf *kc = bk_kconf_new();
	ck_assert_int_eq(bk_kconf_set_brokers_file(kc, path, err, sizeof(err)), 0);
	rd_kafka_conf_t *conf;
	ck_assert_msg(bk_kconf_build(kc, BK_KCONF_PRODUCER, NULL, &conf, err, sizeof(err)) == 0,
		      "%s", err);
	char v[256];
	size_t n = sizeof(v);
	ck_assert_int_eq(rd_kafka_conf_get(conf, "bootstrap.servers", v, &n), RD_KAFKA_CONF_OK);
	ck_assert_str_eq(v, "127.0.0.1:1234,127.0.0.1:5678");
	rd_kafka_topic_conf_t *tc = rd_kafka_conf_get_default_topic_conf(conf);
	ck_assert_ptr_nonnull(tc);
	n = sizeof(v);
	ck_assert_int_eq(rd_kafka_topic_conf_get(tc, "partitioner", v, &n), RD_KAFKA_CONF_OK);
	ck_assert_str_eq(v, "murmur2_random");
	rd_kafka_conf_destroy(conf);

	/* empty and missing files are clear errors, reported at build time */
	fd = open(path, O_WRONLY | O_TRUNC);
	close(fd);
	ck_assert_int_eq(bk_kconf_build(kc, BK_KCONF_PRODUCER, NULL, &conf, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "no broker list"), "%s", err);
	unlink(path);
	ck_assert_int_eq(bk_kconf_build(kc, BK_KCONF_PRODUCER, NULL, &conf, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, path) && strstr(err, "No such file"), "%s", err);
	bk_kconf_destroy(kc);
}
END_TEST

/* ---------------------------------------------------------------- dev broker harness */

typedef struct broker {
	pid_t pid;
	char dir[64];
	char bsfile[100];
	char ctl[100];
	char prefix[64];
	char bootstraps[512];
} broker;

static int broker_seq;

/* Start `bookingctl devbroker` with its own topic prefix, bootstrap file and control
 * socket; returns once the bootstrap file exists and matches the stdout line. */
static void broker_start(broker *b, int nbrokers, int partitions, const char *extra_topics)
{
	const char *exe = getenv("BOOKINGCTL");
	ck_assert_msg(exe && *exe, "BOOKINGCTL is not set");
	memset(b, 0, sizeof(*b));
	snprintf(b->dir, sizeof(b->dir), "/tmp/bk_devbrokerXXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(b->dir));
	snprintf(b->bsfile, sizeof(b->bsfile), "%s/bootstrap", b->dir);
	snprintf(b->ctl, sizeof(b->ctl), "%s/ctl.sock", b->dir);
	snprintf(b->prefix, sizeof(b->prefix), "t%ld-%d.", (long)getpid(), ++broker_seq);

	int out[2];
	ck_assert_int_eq(pipe(out), 0);
	char nb[16], np[16];
	snprintf(nb, sizeof(nb), "%d", nbrokers);
	snprintf(np, sizeof(np), "%d", partitions);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a failed test */
		dup2(out[1], 1);
		close(out[0]);
		close(out[1]);
		const char *argv[20] = {exe,
					"devbroker",
					"--brokers",
					nb,
					"--partitions",
					np,
					"--topic-prefix",
					b->prefix,
					"--bootstrap-file",
					b->bsfile,
					"--control",
					b->ctl};
		int argc = 12;
		if (extra_topics) {
			argv[argc++] = "--topics";
			argv[argc++] = extra_topics;
		}
		argv[argc] = NULL;
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	close(out[1]);
	b->pid = pid;

	/* The first stdout line is the bootstrap list. */
	FILE *f = fdopen(out[0], "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_msg(fgets(b->bootstraps, sizeof(b->bootstraps), f), "devbroker printed nothing");
	fclose(f);
	b->bootstraps[strcspn(b->bootstraps, "\n")] = '\0';

	long long deadline = now_ms() + 10000;
	char *list = NULL;
	char err[256];
	while (bk_kconf_read_brokers_file(b->bsfile, &list, err, sizeof(err)) < 0) {
		ck_assert_msg(now_ms() < deadline, "no bootstrap file: %s", err);
		usleep(20000);
	}
	ck_assert_str_eq(list, b->bootstraps);
	free(list);
}

/* SIGTERM, wait; returns the exit status (or -1 when it did not exit in 10 s). */
static int broker_stop(broker *b)
{
	int status = 0;
	if (b->pid <= 0)
		return -1;
	kill(b->pid, SIGTERM);
	long long deadline = now_ms() + 10000;
	pid_t r;
	while ((r = waitpid(b->pid, &status, WNOHANG)) == 0 && now_ms() < deadline)
		usleep(20000);
	if (r == 0) {
		kill(b->pid, SIGKILL);
		waitpid(b->pid, &status, 0);
		status = -1;
	}
	b->pid = 0;
	unlink(b->bsfile);
	unlink(b->ctl);
	rmdir(b->dir);
	return status;
}

/* One control command; returns the reply line (static buffer, newline stripped). */
static const char *ctl(const broker *b, const char *cmd)
{
	static char reply[1024];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", b->ctl);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s: %s",
		      b->ctl, strerror(errno));
	char line[512];
	int n = snprintf(line, sizeof(line), "%s\n", cmd);
	ck_assert_int_eq(write(fd, line, (size_t)n), n);
	size_t got = 0;
	while (got < sizeof(reply) - 1) {
		ssize_t r = read(fd, reply + got, sizeof(reply) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		if (memchr(reply, '\n', got))
			break;
	}
	close(fd);
	reply[got] = '\0';
	reply[strcspn(reply, "\n")] = '\0';
	return reply;
}

static void ctl_ok(const broker *b, const char *cmd)
{
	const char *r = ctl(b, cmd);
	ck_assert_msg(!strncmp(r, "ok", 2), "control '%s' answered '%s'", cmd, r);
}

static bk_kconf *broker_kconf(const broker *b)
{
	char err[512];
	bk_kconf *kc = bk_kconf_new();
	ck_assert_ptr_nonnull(kc);
	ck_assert_int_eq(bk_kconf_set_brokers_file(kc, b->bsfile, err, sizeof(err)), 0);
	ck_assert_int_eq(bk_kconf_set_topic_prefix(kc, b->prefix, err, sizeof(err)), 0);
	return kc;
}

typedef struct dr_count {
	int ok, failed;
} dr_count;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	dr_count *c = opaque;
	if (m->err) {
		c->failed++;
		fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(m->err));
	} else {
		c->ok++;
	}
}

/* Idempotent producer (the project's default) with fast reconnects for the tests;
 * extra: more key, value pairs (NULL-terminated) or NULL. */
static rd_kafka_t *producer(const bk_kconf *kc, dr_count *counts, const char *const *extra)
{
	const char *defaults[32] = {"enable.idempotence",
				    "true",
				    "linger.ms",
				    "5",
				    "message.timeout.ms",
				    "60000",
				    "retry.backoff.ms",
				    "50",
				    "reconnect.backoff.ms",
				    "50",
				    "reconnect.backoff.max.ms",
				    "500"};
	int n = 12;
	for (; extra && extra[0] && extra[1] && n < 30; extra += 2) {
		defaults[n++] = extra[0];
		defaults[n++] = extra[1];
	}
	defaults[n] = NULL;
	rd_kafka_conf_t *conf;
	char err[512];
	ck_assert_msg(bk_kconf_build(kc, BK_KCONF_PRODUCER, defaults, &conf, err, sizeof(err)) == 0,
		      "%s", err);
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_conf_set_opaque(conf, counts);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	ck_assert_msg(rk, "%s", err);
	return rk;
}

/* Produce ids [from, to) keyed by order (id % 37): value "id=<n>". */
static void produce_range(rd_kafka_t *rk, const char *topic, int from, int to)
{
	for (int i = from; i < to; i++) {
		char key[32], val[32];
		int kl = snprintf(key, sizeof(key), "ord_%d", i % 37);
		int vl = snprintf(val, sizeof(val), "id=%d", i);
		rd_kafka_resp_err_t err;
		while ((err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
						RD_KAFKA_V_KEY(key, (size_t)kl),
						RD_KAFKA_V_VALUE(val, (size_t)vl),
						RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
						RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(rk, 10);
		ck_assert_msg(!err, "produce: %s", rd_kafka_err2str(err));
		rd_kafka_poll(rk, 0);
	}
}

/*
 * Read every partition of topic from the beginning to its end. counts[id] is bumped per
 * record "id=<n>" (n < ncounts); checks that within a key the ids arrive in increasing
 * order. Returns the number of records read.
 */
static int consume_all(const bk_kconf *kc, const char *topic, int partitions, int *counts,
		       int ncounts, const char *isolation)
{
	char err[512];
	const char *defaults[] = {"group.id",
				  "test-devbroker",
				  "enable.auto.commit",
				  "false",
				  "enable.partition.eof",
				  "true",
				  "isolation.level",
				  isolation,
				  NULL};
	rd_kafka_t *rk;
	ck_assert_msg(bk_kconf_new_handle(kc, BK_KCONF_CONSUMER, defaults, &rk, err, sizeof(err)) ==
			  0,
		      "%s", err);
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
	for (int p = 0; p < partitions; p++)
		rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
	ck_assert_int_eq(rd_kafka_assign(rk, l), 0);
	rd_kafka_topic_partition_list_destroy(l);

	int last[37];
	for (int k = 0; k < 37; k++)
		last[k] = -1;
	int eof = 0, n = 0;
	long long deadline = now_ms() + 30000;
	while (eof < partitions) {
		ck_assert_msg(now_ms() < deadline, "consuming %s timed out (%d/%d partitions)",
			      topic, eof, partitions);
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
		if (!m)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			eof++;
		} else {
			ck_assert_msg(!m->err, "consume: %s", rd_kafka_message_errstr(m));
			int id = -1;
			char val[32];
			snprintf(val, sizeof(val), "%.*s", (int)m->len, (const char *)m->payload);
			ck_assert_int_eq(sscanf(val, "id=%d", &id), 1);
			if (id >= 0 && id < ncounts) {
				counts[id]++;
				int k = id % 37;
				ck_assert_msg(counts[id] > 1 || id > last[k],
					      "key ord_%d: id %d after %d", k, id, last[k]);
				last[k] = id;
			}
			n++;
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return n;
}

/* Sum of (high - low) watermarks over the topic's partitions. */
static long long log_size(rd_kafka_t *rk, const char *topic, int partitions)
{
	long long total = 0;
	char err[512];
	for (int p = 0; p < partitions; p++) {
		int64_t lo, hi;
		ck_assert_msg(
		    bk_kconf_watermarks(rk, topic, p, TIMEOUT_MS, &lo, &hi, err, sizeof(err)) == 0,
		    "%s", err);
		total += hi - lo;
	}
	return total;
}

/* ---------------------------------------------------------------- dev broker tests */

START_TEST(devbroker_topics_and_control)
{
	broker b;
	broker_start(&b, 3, 3, "extra.one,extra.two:5");
	ck_assert_msg(!strncmp(b.bootstraps, "127.0.0.1:", 10), "bootstrap %s", b.bootstraps);
	int commas = 0;
	for (const char *p = b.bootstraps; *p; p++)
		commas += *p == ',';
	ck_assert_int_eq(commas, 2);

	bk_kconf *kc = broker_kconf(&b);
	rd_kafka_t *rk;
	char err[512];
	ck_assert_msg(bk_kconf_new_handle(kc, BK_KCONF_ADMIN, NULL, &rk, err, sizeof(err)) == 0,
		      "%s", err);
	for (int t = 0; t < BK_TOPIC_COUNT; t++) {
		int n = 0;
		const char *name = bk_kconf_topic(kc, (bk_topic)t);
		ck_assert_msg(
		    bk_kconf_partition_count(rk, name, TIMEOUT_MS, &n, err, sizeof(err)) == 0, "%s",
		    err);
		ck_assert_msg(n == 3, "%s has %d partitions", name, n);
	}
	int n = 0;
	ck_assert_int_eq(
	    bk_kconf_partition_count(rk, "extra.one", TIMEOUT_MS, &n, err, sizeof(err)), 0);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(
	    bk_kconf_partition_count(rk, "extra.two", TIMEOUT_MS, &n, err, sizeof(err)), 0);
	ck_assert_int_eq(n, 5);
	ck_assert_int_eq(bk_kconf_partition_count(rk, "nope", TIMEOUT_MS, &n, err, sizeof(err)),
			 -1);
	ck_assert_msg(strstr(err, "nope does not exist"), "%s", err);

	int common = 0;
	ck_assert_msg(bk_kconf_check_partitions(rk, kc, TIMEOUT_MS, &common, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_int_eq(common, 3);

	/* A topic made through the control socket, then a mismatch the check reports. */
	char cmd[256], name[128];
	snprintf(name, sizeof(name), "%sshort", b.prefix);
	snprintf(cmd, sizeof(cmd), "topic %s 2", name);
	ctl_ok(&b, cmd);
	ck_assert_msg(!strncmp(ctl(&b, cmd), "error", 5), "creating a topic twice must fail");
	ck_assert_int_eq(bk_kconf_partition_count(rk, name, TIMEOUT_MS, &n, err, sizeof(err)), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(bk_kconf_set_topic(kc, BK_TOPIC_EVENTS, "short", err, sizeof(err)), 0);
	ck_assert_int_eq(bk_kconf_check_partitions(rk, kc, TIMEOUT_MS, &common, err, sizeof(err)),
			 -1);
	ck_assert_msg(strstr(err, "short=2") && strstr(err, "booking.commands=3"), "%s", err);
	ck_assert_int_eq(bk_kconf_set_topic(kc, BK_TOPIC_EVENTS, "missing", err, sizeof(err)), 0);
	ck_assert_int_eq(bk_kconf_check_partitions(rk, kc, TIMEOUT_MS, &common, err, sizeof(err)),
			 -1);
	ck_assert_msg(strstr(err, "missing=missing"), "%s", err);

	/* Partition p is led by broker (p mod N) + 1 (replication factor 1). */
	const struct rd_kafka_metadata *md;
	ck_assert_int_eq(rd_kafka_metadata(rk, 1, NULL, &md, TIMEOUT_MS), 0);
	for (int i = 0; i < md->topic_cnt; i++) {
		if (strcmp(md->topics[i].topic, bk_kconf_topic(kc, BK_TOPIC_COMMANDS)))
			continue;
		for (int p = 0; p < md->topics[i].partition_cnt; p++)
			ck_assert_int_eq(md->topics[i].partitions[p].leader,
					 md->topics[i].partitions[p].id % 3 + 1);
	}
	rd_kafka_metadata_destroy(md);

	/* `leader` moves a partition; the metadata shows it. */
	snprintf(cmd, sizeof(cmd), "leader %s 0 2", bk_kconf_topic(kc, BK_TOPIC_COMMANDS));
	ctl_ok(&b, cmd);
	ck_assert_int_eq(rd_kafka_metadata(rk, 1, NULL, &md, TIMEOUT_MS), 0);
	for (int i = 0; i < md->topic_cnt; i++)
		if (!strcmp(md->topics[i].topic, bk_kconf_topic(kc, BK_TOPIC_COMMANDS)))
			ck_assert_int_eq(md->topics[i].partitions[0].leader, 2);
	rd_kafka_metadata_destroy(md);

	/* The protocol: every line gets one "ok ..." or "error ..." line. */
	ck_assert_str_eq(ctl(&b, "ping"), "ok pong");
	char want[600];
	snprintf(want, sizeof(want), "ok %s", b.bootstraps);
	ck_assert_str_eq(ctl(&b, "bootstrap"), want);
	ck_assert_str_eq(ctl(&b, "error Produce 2 NOT_LEADER_FOR_PARTITION"),
			 "ok error 0 2 NOT_LEADER_FOR_PARTITION");
	ck_assert_str_eq(ctl(&b, "error initproducerid 1 _TRANSPORT"), "ok error 22 1 _TRANSPORT");
	ck_assert_str_eq(ctl(&b, "error 26 1 51"), "ok error 26 1 CONCURRENT_TRANSACTIONS");
	ck_assert_str_eq(ctl(&b, "clear"), "ok clear all");
	ck_assert_str_eq(ctl(&b, "clear Fetch"), "ok clear 1");
	ck_assert_str_eq(ctl(&b, "rtt 2 10"), "ok rtt 2 10");
	ck_assert_str_eq(ctl(&b, "rtt all 0"), "ok rtt -1 0");
	const char *bad[] = {"",
			     "frobnicate",
			     "topic x",
			     "topic x 0",
			     "topic bad/name 1",
			     "broker-down 4",
			     "broker-down 0",
			     "rtt 1",
			     "error Nope 1 1",
			     "error Produce 0 1",
			     "error Produce 1 NO_SUCH_ERROR",
			     "clear Nope",
			     "leader nope 0 1",
			     "leader extra.one 3 1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *r = ctl(&b, bad[i]);
		ck_assert_msg(!strncmp(r, "error ", 6), "'%s' answered '%s'", bad[i], r);
	}

	rd_kafka_destroy(rk);
	bk_kconf_destroy(kc);
	ck_assert_int_eq(broker_stop(&b), 0);
}
END_TEST

START_TEST(devbroker_produce_consume)
{
	enum { N = 500, P = 4 };
	broker b;
	broker_start(&b, 1, P, NULL);
	bk_kconf *kc = broker_kconf(&b);
	const char *topic = bk_kconf_topic(kc, BK_TOPIC_COMMANDS);

	dr_count dc = {0, 0};
	rd_kafka_t *rk = producer(kc, &dc, NULL);
	produce_range(rk, topic, 0, N);
	ck_assert_int_eq(rd_kafka_flush(rk, 30000), 0);
	ck_assert_int_eq(dc.ok, N);
	ck_assert_int_eq(dc.failed, 0);
	ck_assert_int_eq(log_size(rk, topic, P), N);

	static int counts[N];
	memset(counts, 0, sizeof(counts));
	ck_assert_int_eq(consume_all(kc, topic, P, counts, N, "read_committed"), N);
	for (int i = 0; i < N; i++)
		ck_assert_msg(counts[i] == 1, "id %d read %d times", i, counts[i]);

	rd_kafka_destroy(rk);
	bk_kconf_destroy(kc);
	ck_assert_int_eq(broker_stop(&b), 0);
}
END_TEST

/*
 * Request errors, disconnects, a broker down and back up, latency: the idempotent
 * producer retries through all of it and every record lands exactly once, in order
 * per key.
 */
START_TEST(devbroker_faults_exactly_once)
{
	enum { N = 500, P = 6 };
	broker b;
	broker_start(&b, 3, P, NULL);
	bk_kconf *kc = broker_kconf(&b);
	const char *topic = bk_kconf_topic(kc, BK_TOPIC_EVENTS);

	dr_count dc = {0, 0};
	rd_kafka_t *rk = producer(kc, &dc, NULL);

	ctl_ok(&b, "error Produce 5 NOT_LEADER_FOR_PARTITION");
	produce_range(rk, topic, 0, 100);
	ck_assert_int_eq(rd_kafka_flush(rk, 30000), 0);

	ctl_ok(&b, "error Produce 3 _TRANSPORT"); /* the broker drops the connection */
	produce_range(rk, topic, 100, 200);
	ck_assert_int_eq(rd_kafka_flush(rk, 30000), 0);

	ctl_ok(&b, "error Produce 4 NOT_ENOUGH_REPLICAS");
	ctl_ok(&b, "rtt all 150");
	produce_range(rk, topic, 200, 300);
	ck_assert_int_eq(rd_kafka_flush(rk, 30000), 0);
	ctl_ok(&b, "rtt all 0");

	/* Broker 2 leads partitions 1 and 4: their records wait while it is down. */
	ctl_ok(&b, "broker-down 2");
	produce_range(rk, topic, 300, 400);
	long long until = now_ms() + 1500;
	while (now_ms() < until)
		rd_kafka_poll(rk, 100);
	ck_assert_msg(rd_kafka_outq_len(rk) > 0, "broker-down 2 did not hold anything back");
	ck_assert_int_lt(dc.ok, 400);
	ctl_ok(&b, "broker-up 2");
	ck_assert_int_eq(rd_kafka_flush(rk, 30000), 0);

	ctl_ok(&b, "error Produce 2 _TRANSPORT");
	ctl_ok(&b, "error Metadata 1 _TRANSPORT");
	produce_range(rk, topic, 400, N);
	ck_assert_int_eq(rd_kafka_flush(rk, 30000), 0);
	ctl_ok(&b, "clear");

	ck_assert_int_eq(dc.failed, 0);
	ck_assert_int_eq(dc.ok, N);
	ck_assert_int_eq(log_size(rk, topic, P), N); /* nothing written twice */

	static int counts[N];
	memset(counts, 0, sizeof(counts));
	ck_assert_int_eq(consume_all(kc, topic, P, counts, N, "read_committed"), N);
	for (int i = 0; i < N; i++)
		ck_assert_msg(counts[i] == 1, "id %d read %d times", i, counts[i]);

	rd_kafka_destroy(rk);
	bk_kconf_destroy(kc);
	ck_assert_int_eq(broker_stop(&b), 0);
}
END_TEST

START_TEST(devbroker_sigterm_exits_0)
{
	broker b;
	broker_start(&b, 1, 1, NULL);
	char bs[128], sock[128];
	snprintf(bs, sizeof(bs), "%s", b.bsfile);
	snprintf(sock, sizeof(sock), "%s", b.ctl);
	ck_assert_str_eq(ctl(&b, "ping"), "ok pong");
	kill(b.pid, SIGTERM);
	int status;
	ck_assert_int_eq(waitpid(b.pid, &status, 0), b.pid);
	b.pid = 0;
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
	ck_assert_int_eq(access(bs, F_OK), -1); /* removed: nobody reads a dead list */
	ck_assert_int_eq(access(sock, F_OK), -1);
	rmdir(b.dir);
}
END_TEST

START_TEST(devbroker_bad_usage)
{
	const char *exe = getenv("BOOKINGCTL");
	ck_assert_ptr_nonnull(exe);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s devbroker --partitions 0 2>/dev/null", exe);
	int st = system(cmd);
	ck_assert_int_eq(WEXITSTATUS(st), 2);
	snprintf(cmd, sizeof(cmd), "%s devbroker --bogus 1 2>/dev/null", exe);
	st = system(cmd);
	ck_assert_int_eq(WEXITSTATUS(st), 2);
	snprintf(cmd, sizeof(cmd), "%s devbroker --help | grep -q 'transactions are accepted'",
		 exe);
	st = system(cmd);
	ck_assert_int_eq(WEXITSTATUS(st), 0);
}
END_TEST

/*
 * The dev broker's limits as measured on librdkafka 2.0.2 (docs/devbroker.md). These
 * pin today's behaviour: if one fails after a librdkafka upgrade, update the docs.
 */
START_TEST(devbroker_limit_retention)
{
	broker b;
	broker_start(&b, 1, 1, NULL);
	bk_kconf *kc = broker_kconf(&b);
	char cmd[256], topic[128];
	snprintf(topic, sizeof(topic), "%sbig", b.prefix);
	snprintf(cmd, sizeof(cmd), "topic %s 1", topic);
	ctl_ok(&b, cmd);

	dr_count dc = {0, 0};
	rd_kafka_t *rk = producer(kc, &dc, NULL);
	static char big[100 * 1024];
	memset(big, 'x', sizeof(big));
	enum { MSGS = 70 }; /* 70 x 100 KiB = 6.8 MiB */
	for (int i = 0; i < MSGS; i++) {
		while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
					 RD_KAFKA_V_VALUE(big, sizeof(big)),
					 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
					 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(rk, 10);
	}
	ck_assert_int_eq(rd_kafka_flush(rk, 30000), 0);
	ck_assert_int_eq(dc.ok, MSGS);
	int64_t lo, hi;
	char err[512];
	ck_assert_int_eq(bk_kconf_watermarks(rk, topic, 0, TIMEOUT_MS, &lo, &hi, err, sizeof(err)),
			 0);
	ck_assert_int_eq(hi, MSGS);
	ck_assert_msg(lo > 0,
		      "the mock kept all 6.8 MiB (low watermark 0): update docs/devbroker.md");
	ck_assert_msg((hi - lo) * 100 <= 5 * 1024 + 100, "kept %lld x 100 KiB",
		      (long long)(hi - lo));
	fprintf(stderr, "retention: 70 x 100 KiB produced, offsets %lld..%lld kept\n",
		(long long)lo, (long long)hi);
	rd_kafka_destroy(rk);
	bk_kconf_destroy(kc);
	ck_assert_int_eq(broker_stop(&b), 0);
}
END_TEST

START_TEST(devbroker_limit_transactions)
{
	broker b;
	broker_start(&b, 1, 1, NULL);
	bk_kconf *kc = broker_kconf(&b);
	const char *topic = bk_kconf_topic(kc, BK_TOPIC_EVENTS);
	char txid[96];
	snprintf(txid, sizeof(txid), "%stx", b.prefix);

	dr_count dc = {0, 0};
	const char *tx[] = {"transactional.id", txid, NULL};
	rd_kafka_t *rk = producer(kc, &dc, tx);
	rd_kafka_error_t *e;
	ck_assert_ptr_null(e = rd_kafka_init_transactions(rk, TIMEOUT_MS));
	ck_assert_ptr_null(e = rd_kafka_begin_transaction(rk));
	produce_range(rk, topic, 0, 10);
	ck_assert_int_eq(rd_kafka_flush(rk, 30000), 0); /* on the broker, then aborted */
	ck_assert_ptr_null(e = rd_kafka_abort_transaction(rk, TIMEOUT_MS));
	ck_assert_ptr_null(e = rd_kafka_begin_transaction(rk));
	produce_range(rk, topic, 10, 15);
	rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(offs, topic, 0)->offset = 3;
	rd_kafka_consumer_group_metadata_t *gm = rd_kafka_consumer_group_metadata_new("txgroup");
	ck_assert_ptr_null(e = rd_kafka_send_offsets_to_transaction(rk, offs, gm, TIMEOUT_MS));
	rd_kafka_consumer_group_metadata_destroy(gm);
	rd_kafka_topic_partition_list_destroy(offs);
	ck_assert_ptr_null(e = rd_kafka_commit_transaction(rk, TIMEOUT_MS));

	/* read_committed sees the 10 aborted records too */
	static int counts[15];
	memset(counts, 0, sizeof(counts));
	int seen = consume_all(kc, topic, 1, counts, 15, "read_committed");
	ck_assert_msg(seen == 15,
		      "read_committed saw %d of 10 aborted + 5 committed: update "
		      "docs/devbroker.md",
		      seen);

	/* the offset sent in the transaction was not stored */
	rd_kafka_t *c;
	char err[512];
	const char *cdef[] = {"group.id", "txgroup", NULL};
	ck_assert_int_eq(bk_kconf_new_handle(kc, BK_KCONF_CONSUMER, cdef, &c, err, sizeof(err)), 0);
	rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(q, topic, 0);
	ck_assert_int_eq(rd_kafka_committed(c, q, TIMEOUT_MS), 0);
	ck_assert_msg(q->elems[0].offset == RD_KAFKA_OFFSET_INVALID,
		      "transactional offset %lld was stored: update docs/devbroker.md",
		      (long long)q->elems[0].offset);
	rd_kafka_topic_partition_list_destroy(q);
	rd_kafka_destroy(c);

	/* no fencing: a second producer with the same transactional.id does not stop us */
	rd_kafka_t *rk2 = producer(kc, &dc, tx);
	ck_assert_ptr_null(e = rd_kafka_init_transactions(rk2, TIMEOUT_MS));
	ck_assert_ptr_null(e = rd_kafka_begin_transaction(rk));
	produce_range(rk, topic, 15, 16);
	e = rd_kafka_commit_transaction(rk, TIMEOUT_MS);
	ck_assert_msg(e == NULL, "the zombie was fenced (%s): update docs/devbroker.md",
		      e ? rd_kafka_error_string(e) : "");
	rd_kafka_destroy(rk2);
	rd_kafka_destroy(rk);
	bk_kconf_destroy(kc);
	ck_assert_int_eq(broker_stop(&b), 0);
}
END_TEST

/*
 * A Produce response that arrives after the client's socket.timeout.ms: the client
 * retries the batch with the same sequence numbers. A real broker (and the mock, for a
 * transactional producer) drops the retry as a duplicate; the 2.0.2 mock appends it
 * again for a plain idempotent producer. Nothing is ever lost; readers dedupe (SPEC §5).
 */
static long long lost_response_growth(broker *b, bk_kconf *kc, const char *topic, const char *txid)
{
	dr_count dc = {0, 0};
	const char *extra[] = {"socket.timeout.ms", "1000", "transactional.id", txid, NULL};
	if (!txid)
		extra[2] = NULL;
	rd_kafka_t *rk = producer(kc, &dc, extra);
	if (txid) {
		ck_assert_ptr_null(rd_kafka_init_transactions(rk, TIMEOUT_MS));
		ck_assert_ptr_null(rd_kafka_begin_transaction(rk));
	}
	/* warm up: connection, producer id, partition in the transaction */
	produce_range(rk, topic, 0, 1);
	ck_assert_int_eq(rd_kafka_flush(rk, 10000), 0);
	int64_t lo, hi0, hi;
	char err[512];
	ck_assert_int_eq(bk_kconf_watermarks(rk, topic, 0, TIMEOUT_MS, &lo, &hi0, err, sizeof(err)),
			 0);

	ctl_ok(b, "rtt all 3000");
	produce_range(rk, topic, 1, 11);
	long long until = now_ms() + 4000;
	while (now_ms() < until)
		rd_kafka_poll(rk, 100);
	ctl_ok(b, "rtt all 0");
	ck_assert_int_eq(rd_kafka_flush(rk, 30000), 0);
	if (txid)
		ck_assert_ptr_null(rd_kafka_commit_transaction(rk, TIMEOUT_MS));
	ck_assert_int_eq(dc.ok, 11);
	ck_assert_int_eq(bk_kconf_watermarks(rk, topic, 0, TIMEOUT_MS, &lo, &hi, err, sizeof(err)),
			 0);
	rd_kafka_destroy(rk);
	return hi - hi0;
}

START_TEST(devbroker_limit_lost_response)
{
	broker b;
	broker_start(&b, 1, 1, NULL);
	bk_kconf *kc = broker_kconf(&b);
	char cmd[256], t1[128], t2[128], txid[96];
	snprintf(t1, sizeof(t1), "%sidem", b.prefix);
	snprintf(t2, sizeof(t2), "%stxn", b.prefix);
	snprintf(txid, sizeof(txid), "%slost", b.prefix);
	snprintf(cmd, sizeof(cmd), "topic %s 1", t1);
	ctl_ok(&b, cmd);
	snprintf(cmd, sizeof(cmd), "topic %s 1", t2);
	ctl_ok(&b, cmd);

	long long idem = lost_response_growth(&b, kc, t1, NULL);
	long long txn = lost_response_growth(&b, kc, t2, txid);
	fprintf(stderr,
		"lost response: 10 records grew the log by %lld (idempotent), %lld "
		"(transactional)\n",
		idem, txn);
	ck_assert_int_ge(idem, 10); /* never lost */
	ck_assert_int_eq(txn, 10);  /* deduplicated */
	bk_kconf_destroy(kc);
	ck_assert_int_eq(broker_stop(&b), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("devbroker");
	TCase *tl = tcase_create("log");
	tcase_add_test(tl, log_format);
	tcase_add_test(tl, log_threshold_from_env);
	tcase_add_test(tl, log_level_names);
	suite_add_tcase(s, tl);

	TCase *tk = tcase_create("kconf");
	tcase_add_test(tk, kconf_topic_names);
	tcase_add_test(tk, kconf_take_arg_forms);
	tcase_add_test(tk, kconf_errors);
	tcase_add_test(tk, kconf_producer_partitioner_and_file);
	suite_add_tcase(s, tk);

	TCase *td = tcase_create("devbroker");
	tcase_set_timeout(td, 120);
	tcase_add_test(td, devbroker_topics_and_control);
	tcase_add_test(td, devbroker_produce_consume);
	tcase_add_test(td, devbroker_faults_exactly_once);
	tcase_add_test(td, devbroker_sigterm_exits_0);
	tcase_add_test(td, devbroker_bad_usage);
	suite_add_tcase(s, td);

	TCase *tm = tcase_create("limits");
	tcase_set_timeout(tm, 120);
	tcase_add_test(tm, devbroker_limit_retention);
	tcase_add_test(tm, devbroker_limit_transactions);
	tcase_add_test(tm, devbroker_limit_lost_response);
	suite_add_tcase(s, tm);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
