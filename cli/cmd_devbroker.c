/*
 * cmd_devbroker.c - `bookingctl devbroker`: librdkafka's in-memory mock cluster on
 * 127.0.0.1 with the project's topics, for development and tests. It publishes its
 * bootstrap list (stdout and an atomically written file), takes line commands on a
 * unix socket (topics, broker down/up, latency, request errors) and exits 0 on
 * SIGTERM/SIGINT. Its limits are in --help and docs/devbroker.md.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cmd.h"
#include "kconf.h"
#include "log.h"

#define MAX_CLIENTS    32
#define LINE_MAX_LEN   1024
#define MAX_BROKERS    16
#define MAX_PARTITIONS 10000
#define MAX_ERRORS     100000
/* ApiKeys cleared by a bare `clear` (Kafka's keys stay well below this). */
#define API_KEY_LIMIT 100

static const char usage_text[] =
    "usage: bookingctl devbroker [options]\n"
    "       bookingctl devbroker ctl --control PATH COMMAND [ARG...]\n"
    "\n"
    "Run a Kafka-protocol broker for development and tests: the mock cluster that\n"
    "librdkafka ships (rdkafka_mock.h), listening on 127.0.0.1 on ports it picks itself.\n"
    "Creates the project's topics, prints the bootstrap list on stdout (one line), and\n"
    "runs until SIGTERM or SIGINT, then exits 0.\n"
    "\n"
    "options:\n"
    "  --broker-count N       number of brokers, ids 1..N (default 1, at most 16;\n"
    "                         --brokers N is the old spelling: elsewhere --brokers\n"
    "                         is the bootstrap list)\n"
    "  --partitions P         partitions of every project topic (default 8)\n"
    "  --topic-prefix PFX     prefix the project topics' names (per-test topics)\n"
    "  --topics a,b:N,...     also create these topics (names taken as given, no prefix;\n"
    "                         N partitions, default P)\n"
    "  --bootstrap-file PATH  also write the bootstrap list to PATH (temp file + rename;\n"
    "                         removed again on exit). Programs read it with --brokers-file\n"
    "                         (its first line; the next lines set the consumers' group\n"
    "                         timeouts: session.timeout.ms=6000, heartbeat.interval.ms=500,\n"
    "                         max.poll.interval.ms=30000, so a restart rejoins in seconds)\n"
    "  --control PATH         unix socket taking line commands (see below)\n"
    "  --debug                log the mock's own debug lines (BOOKING_LOG_LEVEL=debug)\n"
    "  -h, --help             this text\n"
    "\n"
    "Project topics, P partitions each: booking.commands, booking.events,\n"
    "booking.command-results, booking.dlq, booking.rules (rules gets P too: the mock\n"
    "keeps data per partition, see below, and does not compact). Partition p of every\n"
    "topic created here is led by broker (p mod N)+1 (`leader` moves it).\n"
    "The brokers' sockets get TCP_NODELAY, as a Kafka broker's do (the mock leaves\n"
    "Nagle on, which delays about one response in two by ~40 ms);\n"
    "BK_DEVBROKER_NAGLE=1 in the environment keeps Nagle on.\n"
    "\n"
    "Control commands (one per line; each answered by one line \"ok ...\" or \"error ...\";\n"
    "`bookingctl devbroker ctl --control PATH COMMAND` sends one and prints the answer,\n"
    "exit 0 on ok, 1 on error, 3 when the socket cannot be reached):\n"
    "  ping                          ok pong\n"
    "  bootstrap                     ok HOST:PORT,...\n"
    "  topic NAME PARTITIONS         create a topic (name as given)\n"
    "  broker-down ID | broker-up ID ID 1..N, or -1/all (no leader change happens)\n"
    "  leader TOPIC PARTITION ID     move a partition's leader (ID -1: leaderless)\n"
    "  rtt ID MS                     add MS ms to every response of broker ID (-1 = all)\n"
    "  error APIKEY COUNT ERRCODE    fail the next COUNT requests of APIKEY with ERRCODE\n"
    "                                APIKEY: number or name (Produce, Fetch, Metadata,\n"
    "                                InitProducerId, AddPartitionsToTxn, EndTxn,\n"
    "                                TxnOffsetCommit, ...); ERRCODE: number or name as in\n"
    "                                rd_kafka_err2name (NOT_LEADER_FOR_PARTITION,\n"
    "                                REQUEST_TIMED_OUT, _TRANSPORT = disconnect, ...)\n"
    "  clear [APIKEY]                drop pending injected errors (all keys, or one)\n"
    "  help                          list the commands\n"
    "\n"
    "LIMITS (librdkafka 2.0.2 mock, measured: docs/devbroker.md). Development only:\n"
    "  - everything is in memory and gone on exit; nothing is written to disk;\n"
    "  - a partition keeps about 5 MiB (and at most 100000 produce batches): older data\n"
    "    is dropped silently (the low watermark rises), so give topics enough partitions;\n"
    "  - topics must be created here or via `topic`; auto-creation gives 4 partitions;\n"
    "  - no compaction, no retention settings, no ACLs, no TLS/SASL;\n"
    "  - transactions are accepted but isolate nothing: read_committed consumers see\n"
    "    aborted records, and zombie producers are not fenced; offsets sent in a\n"
    "    transaction (send_offsets_to_transaction) are never stored;\n"
    "  - consumer group changes wait for session.timeout.ms (use ~6000 ms in tests).\n"
    "Production points at a real Kafka cluster.\n";

typedef struct client {
	int fd;
	size_t len;
	char buf[LINE_MAX_LEN];
} client;

/* A topic this program created (the mock has no lookup of its own). */
typedef struct topic_entry {
	struct topic_entry *next;
	int partitions;
	char name[];
} topic_entry;

typedef struct devbroker {
	rd_kafka_t *rk;
	topic_entry *topics;
	rd_kafka_mock_cluster_t *mc;
	int nbrokers;
	const char *bootstraps;
	client clients[MAX_CLIENTS];
	int nclients;
} devbroker;

static const struct {
	const char *name;
	int key;
} api_keys[] = {
    {"Produce", 0},
    {"Fetch", 1},
    {"ListOffsets", 2},
    {"Metadata", 3},
    {"OffsetCommit", 8},
    {"OffsetFetch", 9},
    {"FindCoordinator", 10},
    {"JoinGroup", 11},
    {"Heartbeat", 12},
    {"LeaveGroup", 13},
    {"SyncGroup", 14},
    {"DescribeGroups", 15},
    {"ListGroups", 16},
    {"SaslHandshake", 17},
    {"ApiVersions", 18},
    {"CreateTopics", 19},
    {"DeleteTopics", 20},
    {"DeleteRecords", 21},
    {"InitProducerId", 22},
    {"OffsetForLeaderEpoch", 23},
    {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25},
    {"EndTxn", 26},
    {"WriteTxnMarkers", 27},
    {"TxnOffsetCommit", 28},
    {"DescribeConfigs", 32},
    {"AlterConfigs", 33},
    {"SaslAuthenticate", 36},
    {"CreatePartitions", 37},
    {"DeleteGroups", 42},
    {"OffsetDelete", 47},
};

/* Parse a decimal integer in [lo, hi]; returns 0 or -1. */
static int parse_int(const char *s, long lo, long hi, long *ret)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*ret = v;
	return 0;
}

static int parse_api_key(const char *s, int *ret)
{
	long v;
	if (parse_int(s, 0, SHRT_MAX, &v) == 0) {
		*ret = (int)v;
		return 0;
	}
	for (size_t i = 0; i < sizeof(api_keys) / sizeof(api_keys[0]); i++) {
		if (!strcasecmp(s, api_keys[i].name)) {
			*ret = api_keys[i].key;
			return 0;
		}
	}
	return -1;
}

/* An error code by number or by rd_kafka_err2name name (prefix RD_KAFKA_RESP_ERR_
 * optional, case-insensitive). */
static int parse_err_code(const char *s, rd_kafka_resp_err_t *ret)
{
	long v;
	if (parse_int(s, INT_MIN, INT_MAX, &v) == 0) {
		*ret = (rd_kafka_resp_err_t)v;
		return 0;
	}
	if (!strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18))
		s += 18;
	const struct rd_kafka_err_desc *descs;
	size_t n;
	rd_kafka_get_err_descs(&descs, &n);
	for (size_t i = 0; i < n; i++) {
		if (descs[i].name && !strcasecmp(descs[i].name, s)) {
			*ret = descs[i].code;
			return 0;
		}
	}
	return -1;
}

static int legal_topic(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 249)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
			return 0;
	return 1;
}

/* Broker id: 1..N, or -1/"all" for every broker. */
static int parse_broker_id(const devbroker *db, const char *s, int *ret)
{
	long v;
	if (!strcasecmp(s, "all")) {
		*ret = -1;
		return 0;
	}
	if (parse_int(s, -1, db->nbrokers, &v) < 0 || v == 0)
		return -1;
	*ret = (int)v;
	return 0;
}

/* Create one topic; returns 0 or -1 with the reason in why. */
static int create_topic(devbroker *db, const char *name, int partitions, char *why, size_t why_size)
{
	if (!legal_topic(name)) {
		snprintf(why, why_size, "bad topic name '%s' (1-249 of [A-Za-z0-9._-])", name);
		return -1;
	}
	rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(db->mc, name, partitions, 1);
	if (err) {
		snprintf(why, why_size, "topic %s: %s", name, rd_kafka_err2str(err));
		return -1;
	}
	/* The mock picks leaders at random; a fixed layout lets tests know which
	 * partitions a broker-down takes away. Each call is a round trip to the mock's
	 * thread (~0.3 s), so with one broker, where broker 1 leads everything anyway,
	 * it is skipped: hundreds of partitions then start at once. */
	for (int p = 0; db->nbrokers > 1 && p < partitions; p++) {
		err = rd_kafka_mock_partition_set_leader(db->mc, name, p, p % db->nbrokers + 1);
		if (err) {
			snprintf(why, why_size, "topic %s [%d]: setting the leader: %s", name, p,
				 rd_kafka_err2str(err));
			return -1;
		}
	}
	const size_t name_len = strlen(name);
	topic_entry *te = malloc(sizeof(*te) + name_len + 1);
	if (te) {
		te->partitions = partitions;
		memcpy(te->name, name, name_len + 1);
		te->next = db->topics;
		db->topics = te;
	}
	bk_logf(BK_LOG_INFO, "topic created", "topic=%s partitions=%d", name, partitions);
	return 0;
}

static const topic_entry *find_topic(const devbroker *db, const char *name)
{
	for (const topic_entry *te = db->topics; te; te = te->next)
		if (!strcmp(te->name, name))
			return te;
	return NULL;
}

/*
 * Execute one control line; writes the one-line answer (no newline) into out.
 */
static void control_exec(devbroker *db, char *line, char *out, size_t out_size)
{
	char *argv[8];
	int argc = 0;
	char *save = NULL;
	for (char *tok = strtok_r(line, " \t\r", &save); tok && argc < 8;
	     tok = strtok_r(NULL, " \t\r", &save))
		argv[argc++] = tok;

	if (argc == 0) {
		snprintf(out, out_size, "error empty command (try help)");
		return;
	}
	const char *cmd = argv[0];
	long v, count;
	int id, key;
	rd_kafka_resp_err_t err, code;
	char why[512];

	if (!strcmp(cmd, "ping") && argc == 1) {
		snprintf(out, out_size, "ok pong");
	} else if (!strcmp(cmd, "help")) {
		snprintf(out, out_size,
			 "ok commands: ping | bootstrap | topic NAME PARTITIONS | broker-down ID | "
			 "broker-up ID | leader TOPIC PARTITION ID | rtt ID MS | error APIKEY "
			 "COUNT ERRCODE | clear [APIKEY] "
			 "| help");
	} else if (!strcmp(cmd, "bootstrap") && argc == 1) {
		snprintf(out, out_size, "ok %s", db->bootstraps);
	} else if (!strcmp(cmd, "topic")) {
		if (argc != 3 || parse_int(argv[2], 1, MAX_PARTITIONS, &v) < 0)
			snprintf(out, out_size,
				 "error usage: topic NAME PARTITIONS (PARTITIONS 1..%d)",
				 MAX_PARTITIONS);
		else if (create_topic(db, argv[1], (int)v, why, sizeof(why)) < 0)
			snprintf(out, out_size, "error %s", why);
		else
			snprintf(out, out_size, "ok topic %s %ld", argv[1], v);
	} else if (!strcmp(cmd, "leader")) {
		if (argc != 4 || !legal_topic(argv[1]) ||
		    parse_int(argv[2], 0, MAX_PARTITIONS, &v) < 0 ||
		    parse_broker_id(db, argv[3], &id) < 0) {
			snprintf(
			    out, out_size,
			    "error usage: leader TOPIC PARTITION ID (ID 1..%d, or -1 for none)",
			    db->nbrokers);
			return;
		}
		const topic_entry *te = find_topic(db, argv[1]);
		if (!te || v >= te->partitions) {
			/* set_leader would auto-create a missing topic: refuse instead */
			snprintf(out, out_size,
				 "error leader %s [%ld]: no such topic or partition "
				 "(among the topics this devbroker created)",
				 argv[1], v);
			return;
		}
		err = rd_kafka_mock_partition_set_leader(db->mc, argv[1], (int32_t)v, id);
		if (err)
			snprintf(out, out_size, "error leader %s [%ld]: %s", argv[1], v,
				 rd_kafka_err2str(err));
		else
			snprintf(out, out_size, "ok leader %s %ld %d", argv[1], v, id);
	} else if (!strcmp(cmd, "broker-down") || !strcmp(cmd, "broker-up")) {
		int down = !strcmp(cmd, "broker-down");
		if (argc != 2 || parse_broker_id(db, argv[1], &id) < 0) {
			snprintf(out, out_size, "error usage: %s ID (1..%d, or -1/all)", cmd,
				 db->nbrokers);
			return;
		}
		err = down ? rd_kafka_mock_broker_set_down(db->mc, id)
			   : rd_kafka_mock_broker_set_up(db->mc, id);
		if (err)
			snprintf(out, out_size, "error %s %d: %s", cmd, id, rd_kafka_err2str(err));
		else
			snprintf(out, out_size, "ok %s %d", cmd, id);
	} else if (!strcmp(cmd, "rtt")) {
		if (argc != 3 || parse_broker_id(db, argv[1], &id) < 0 ||
		    parse_int(argv[2], 0, 3600L * 1000, &v) < 0) {
			snprintf(out, out_size, "error usage: rtt ID MS (ID 1..%d or -1/all)",
				 db->nbrokers);
			return;
		}
		err = rd_kafka_mock_broker_set_rtt(db->mc, id, (int)v);
		if (err)
			snprintf(out, out_size, "error rtt %d: %s", id, rd_kafka_err2str(err));
		else
			snprintf(out, out_size, "ok rtt %d %ld", id, v);
	} else if (!strcmp(cmd, "error")) {
		if (argc != 4 || parse_api_key(argv[1], &key) < 0 ||
		    parse_int(argv[2], 1, MAX_ERRORS, &count) < 0 ||
		    parse_err_code(argv[3], &code) < 0) {
			snprintf(out, out_size,
				 "error usage: error APIKEY COUNT ERRCODE (APIKEY a number or a "
				 "name like Produce; COUNT 1..%d; ERRCODE a number or a name like "
				 "NOT_LEADER_FOR_PARTITION)",
				 MAX_ERRORS);
			return;
		}
		rd_kafka_resp_err_t *errs = malloc((size_t)count * sizeof(*errs));
		if (!errs) {
			snprintf(out, out_size, "error out of memory");
			return;
		}
		for (long i = 0; i < count; i++)
			errs[i] = code;
		rd_kafka_mock_push_request_errors_array(db->mc, (int16_t)key, (size_t)count, errs);
		free(errs);
		snprintf(out, out_size, "ok error %d %ld %s", key, count, rd_kafka_err2name(code));
	} else if (!strcmp(cmd, "clear")) {
		if (argc == 1) {
			for (int k = 0; k < API_KEY_LIMIT; k++)
				rd_kafka_mock_clear_request_errors(db->mc, (int16_t)k);
			snprintf(out, out_size, "ok clear all");
		} else if (argc == 2 && parse_api_key(argv[1], &key) == 0) {
			rd_kafka_mock_clear_request_errors(db->mc, (int16_t)key);
			snprintf(out, out_size, "ok clear %d", key);
		} else {
			snprintf(out, out_size, "error usage: clear [APIKEY]");
		}
	} else {
		snprintf(out, out_size, "error unknown command or arguments: %s (try help)", cmd);
	}
}

static void client_close(devbroker *db, int i)
{
	close(db->clients[i].fd);
	db->clients[i] = db->clients[--db->nclients];
}

static void client_send(int fd, const char *s)
{
	size_t n = strlen(s);
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the client went away; its fd closes on the next read */
		s += w;
		n -= (size_t)w;
	}
}

/* Read from client i and answer every complete line. Returns 0, or -1 when the
 * client must be closed. */
static int client_read(devbroker *db, int i)
{
	client *c = &db->clients[i];
	ssize_t r = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
	if (r < 0 && errno == EINTR)
		return 0;
	if (r <= 0)
		return -1;
	c->len += (size_t)r;

	char *nl;
	while ((nl = memchr(c->buf, '\n', c->len))) {
		*nl = '\0';
		char line[LINE_MAX_LEN];
		char logged[LINE_MAX_LEN];
		char reply[LINE_MAX_LEN + 64];
		snprintf(line, sizeof(line), "%s", c->buf);
		snprintf(logged, sizeof(logged), "%s", c->buf);
		size_t used = (size_t)(nl - c->buf) + 1;
		memmove(c->buf, nl + 1, c->len - used);
		c->len -= used;

		control_exec(db, line, reply, sizeof(reply) - 1);
		bk_logf(!strncmp(reply, "ok", 2) ? BK_LOG_INFO : BK_LOG_WARN, "control command",
			"cmd=%s reply=%s", logged, reply);
		/* control_exec wrote at most sizeof(reply) - 2 characters: room for the newline */
		const size_t rlen = strlen(reply);
		memcpy(reply + rlen, "\n", 2);
		client_send(c->fd, reply);
	}
	if (c->len == sizeof(c->buf)) {
		client_send(c->fd, "error line too long\n");
		return -1;
	}
	return 0;
}

/* Listen on a unix socket at path; refuses a path a live devbroker answers on. */
static int control_listen(const char *path, char *why, size_t why_size)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(why, why_size, "--control %s: path longer than %zu bytes", path,
			 sizeof(sa.sun_path) - 1);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1); /* fits: checked above */

	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(why, why_size, "--control %s: exists and is not a socket", path);
			return -1;
		}
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			snprintf(why, why_size, "--control %s: another process listens there",
				 path);
			return -1;
		}
		if (probe >= 0)
			close(probe);
		unlink(path); /* stale socket of a dead devbroker */
	}

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
		snprintf(why, why_size, "--control %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/*
 * Consumer group timeouts for this broker's clients, written after the bootstrap list
 * (lib/kconf.c applies "consumer KEY=VALUE" lines to every consumer that reads the file
 * with --brokers-file, before its -X). The mock makes a group wait session.timeout.ms
 * for a member that vanished (45 s by default) and a rebalance wait up to the members'
 * max.poll.interval.ms (300 s) for one that rejoins with other timeouts: with every
 * client on these, a restart rejoins in seconds (docs/devbroker.md).
 */
static const char client_defaults[] = "consumer session.timeout.ms=6000\n"
				      "consumer heartbeat.interval.ms=500\n"
				      "consumer max.poll.interval.ms=30000\n";

/* Write text + "\n" + client_defaults to path atomically (temp file in the same directory,
 * rename). */
static int write_atomic(const char *path, const char *text, char *why, size_t why_size)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		snprintf(why, why_size, "--bootstrap-file %s: path too long", path);
		return -1;
	}
	FILE *f = fopen(tmp, "w");
	if (!f) {
		snprintf(why, why_size, "--bootstrap-file %s: cannot create its temp file: %s",
			 path, strerror(errno));
		return -1;
	}
	int ok = fprintf(f, "%s\n%s", text, client_defaults) > 0;
	ok = fflush(f) == 0 && ok;
	ok = fsync(fileno(f)) == 0 && ok;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) < 0) {
		snprintf(why, why_size, "--bootstrap-file %s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Remove the bootstrap file on exit, unless someone else has replaced it since. */
static void remove_bootstrap_file(const char *path, const char *text)
{
	char *cur = NULL;
	char why[256];
	if (bk_kconf_read_brokers_file(path, &cur, why, sizeof(why)) == 0 && !strcmp(cur, text))
		unlink(path);
	free(cur);
}

/*
 * Turn Nagle off on the mock brokers' listening sockets (accepted connections inherit
 * it). The mock writes a response in more than one send(); with Nagle on, the later part
 * waits for the client's delayed ACK, and about one response in two arrives ~40 ms late.
 * A Kafka broker sets TCP_NODELAY on its connections, so this makes the dev broker's
 * round trips look like a real one's. The sockets are librdkafka's: they are found among
 * this process's descriptors by the ports in the bootstrap list. Returns how many.
 */
static int nodelay_listeners(const char *bootstraps)
{
	int ports[MAX_BROKERS], np = 0, done = 0;
	for (const char *p = bootstraps; p && *p && np < MAX_BROKERS;) {
		const char *colon = strchr(p, ':');
		if (!colon)
			break;
		ports[np++] = atoi(colon + 1);
		p = strchr(colon, ',');
		p = p ? p + 1 : NULL;
	}
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return 0;
	const struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		int fd = atoi(de->d_name);
		struct stat st;
		struct sockaddr_in sin;
		memset(&sin, 0, sizeof(sin));
		socklen_t sl = sizeof(sin);
		int listening = 0, on = 1;
		socklen_t ll = sizeof(listening);
		if (de->d_name[0] < '0' || de->d_name[0] > '9' || fd == dirfd(d) ||
		    fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) ||
		    getsockname(fd, (struct sockaddr *)&sin, &sl) < 0 ||
		    sin.sin_family != AF_INET ||
		    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll) < 0 || !listening)
			continue;
		for (int i = 0; i < np; i++)
			if (ntohs(sin.sin_port) == ports[i] &&
			    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == 0)
				done++;
	}
	closedir(d);
	return done;
}

/* Log the mock's lines; the notice about our own handle having no bootstrap.servers
 * is expected (it only owns the cluster) and goes to debug. */
static void devbroker_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	if (strstr(buf, "bootstrap.servers"))
		level = 7;
	bk_kconf_log_cb(rk, level, fac, buf);
}

/* --topics a,b:N,... */
static int create_extra_topics(devbroker *db, const char *spec, int partitions, char *why,
			       size_t why_size)
{
	char *copy = strdup(spec);
	if (!copy) {
		snprintf(why, why_size, "out of memory");
		return -1;
	}
	char *save = NULL;
	int r = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok && r == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		long n = partitions;
		char *colon = strchr(tok, ':');
		if (colon) {
			*colon = '\0';
			if (parse_int(colon + 1, 1, MAX_PARTITIONS, &n) < 0) {
				snprintf(why, why_size, "--topics %s: bad partition count '%s'",
					 spec, colon + 1);
				r = -1;
				break;
			}
		}
		r = create_topic(db, tok, (int)n, why, why_size);
	}
	free(copy);
	return r;
}

/* Serve the control socket and wait for a signal; returns when one arrives. */
static void serve(devbroker *db, int sfd, int lfd)
{
	for (;;) {
		struct pollfd pfd[MAX_CLIENTS + 2];
		int n = 0;
		pfd[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		if (lfd >= 0)
			pfd[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
		int first_client = n;
		for (int i = 0; i < db->nclients; i++)
			pfd[n++] = (struct pollfd){.fd = db->clients[i].fd, .events = POLLIN};

		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			bk_logf(BK_LOG_ERROR, "poll failed", "err=\"%s\"", strerror(errno));
			return;
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				bk_logf(BK_LOG_INFO, "stopping", "signal=%s",
					strsignal((int)si.ssi_signo));
				return;
			}
		}
		/* Clients first (indexes shift when one closes), from the last one down. */
		for (int i = n - 1; i >= first_client; i--) {
			if (!pfd[i].revents)
				continue;
			int ci = i - first_client;
			if (client_read(db, ci) < 0)
				client_close(db, ci);
		}
		if (lfd >= 0 && pfd[1].revents & POLLIN) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			if (db->nclients == MAX_CLIENTS) {
				client_send(fd, "error too many control connections\n");
				close(fd);
				continue;
			}
			db->clients[db->nclients++] = (client){.fd = fd, .len = 0};
		}
	}
}

/*
 * `bookingctl devbroker ctl --control PATH COMMAND [ARG...]`: one control line to a
 * running dev broker, its one-line answer on stdout. Exit 0 on "ok ...", 1 on
 * "error ...", 3 when the socket cannot be reached, 2 on bad usage.
 */
static int run_ctl(int argc, char **argv)
{
	const char *path = NULL;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--control") && i + 1 < argc)
			path = argv[++i];
		else if (!strncmp(argv[i], "--control=", 10))
			path = argv[i] + 10;
		else
			break;
	}
	if (!path || i >= argc) {
		fprintf(stderr, "usage: bookingctl devbroker ctl --control PATH COMMAND [ARG...]\n"
				"  (bookingctl devbroker --help lists the commands)\n");
		return BK_EXIT_USAGE;
	}
	char line[LINE_MAX_LEN];
	size_t n = 0;
	for (; i < argc; i++) {
		int k = snprintf(line + n, sizeof(line) - n, "%s%s", n ? " " : "", argv[i]);
		if (k < 0 || (size_t)k >= sizeof(line) - n - 1) {
			fprintf(stderr, "bookingctl devbroker ctl: the command is too long\n");
			return BK_EXIT_USAGE;
		}
		n += (size_t)k;
	}
	line[n++] = '\n';
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "bookingctl devbroker ctl: --control %s: path too long\n", path);
		return BK_EXIT_USAGE;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "bookingctl devbroker ctl: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return BK_EXIT_DEPENDENCY;
	}
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(fd, line + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "bookingctl devbroker ctl: %s: %s\n", path,
				strerror(errno));
			close(fd);
			return BK_EXIT_DEPENDENCY;
		}
		off += (size_t)w;
	}
	char reply[LINE_MAX_LEN];
	size_t got = 0;
	while (got < sizeof(reply) - 1) {
		ssize_t r = read(fd, reply + got, sizeof(reply) - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		if (memchr(reply, '\n', got))
			break;
	}
	close(fd);
	reply[got] = '\0';
	char *nl = strchr(reply, '\n');
	if (nl)
		*nl = '\0';
	if (!got) {
		fprintf(stderr, "bookingctl devbroker ctl: %s: no answer\n", path);
		return BK_EXIT_DEPENDENCY;
	}
	printf("%s\n", reply);
	return !strncmp(reply, "ok", 2) ? BK_EXIT_OK : BK_EXIT_PROBLEM;
}

int cmd_devbroker(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "ctl"))
		return run_ctl(argc - 1, argv + 1);
	long nbrokers = 1, partitions = 8;
	const char *prefix = NULL, *extra = NULL, *bootstrap_file = NULL, *control = NULL;
	int debug = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			return BK_EXIT_OK;
		} else if (!strcmp(a, "--debug")) {
			debug = 1;
			continue;
		}
		if (!val) {
			fprintf(stderr,
				"bookingctl devbroker: unknown option or missing value: %s\n"
				"(bookingctl devbroker --help)\n",
				a);
			return BK_EXIT_USAGE;
		}
		i++;
		if (!strcmp(a, "--broker-count") || !strcmp(a, "--brokers")) {
			if (parse_int(val, 1, MAX_BROKERS, &nbrokers) < 0) {
				fprintf(stderr, "bookingctl devbroker: %s %s: want 1..%d\n", a, val,
					MAX_BROKERS);
				return BK_EXIT_USAGE;
			}
		} else if (!strcmp(a, "--partitions")) {
			if (parse_int(val, 1, MAX_PARTITIONS, &partitions) < 0) {
				fprintf(stderr,
					"bookingctl devbroker: --partitions %s: want 1..%d\n", val,
					MAX_PARTITIONS);
				return BK_EXIT_USAGE;
			}
		} else if (!strcmp(a, "--topic-prefix")) {
			prefix = val;
		} else if (!strcmp(a, "--topics")) {
			extra = val;
		} else if (!strcmp(a, "--bootstrap-file")) {
			bootstrap_file = val;
		} else if (!strcmp(a, "--control")) {
			control = val;
		} else {
			fprintf(stderr,
				"bookingctl devbroker: unknown option %s (bookingctl devbroker "
				"--help)\n",
				a);
			return BK_EXIT_USAGE;
		}
	}

	char why[1024];
	bk_kconf *kc = bk_kconf_new();
	if (!kc || (prefix && bk_kconf_set_topic_prefix(kc, prefix, why, sizeof(why)) < 0)) {
		fprintf(stderr, "bookingctl devbroker: %s\n", kc ? why : "out of memory");
		bk_kconf_destroy(kc);
		return BK_EXIT_USAGE;
	}

	/* Every thread started from here on inherits this mask, so the signals reach only
	 * the signalfd below. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0) {
		bk_logf(BK_LOG_ERROR, "signalfd failed", "err=\"%s\"", strerror(errno));
		bk_kconf_destroy(kc);
		return BK_EXIT_DEPENDENCY;
	}

	int rc = BK_EXIT_DEPENDENCY;
	int lfd = -1;
	devbroker db = {.nbrokers = (int)nbrokers};

	if (bootstrap_file)
		unlink(bootstrap_file); /* nobody may read a stale list while we start */
	if (control && (lfd = control_listen(control, why, sizeof(why))) < 0) {
		bk_logf(BK_LOG_ERROR, "cannot open the control socket", "err=%s", why);
		rc = BK_EXIT_USAGE;
		goto out;
	}

	/* The handle only owns the cluster: it connects nowhere itself. */
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, devbroker_log_cb);
	if (debug && rd_kafka_conf_set(conf, "debug", "mock", why, sizeof(why)) != RD_KAFKA_CONF_OK)
		bk_logf(BK_LOG_WARN, "cannot enable mock debug", "err=%s", why);
	db.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
	if (!db.rk) {
		rd_kafka_conf_destroy(conf);
		bk_logf(BK_LOG_ERROR, "cannot create the librdkafka handle", "err=%s", why);
		goto out;
	}
	db.mc = rd_kafka_mock_cluster_new(db.rk, (int)nbrokers);
	if (!db.mc) {
		bk_log(BK_LOG_ERROR, "cannot create the mock cluster");
		goto out;
	}
	db.bootstraps = rd_kafka_mock_cluster_bootstraps(db.mc);
	if (!getenv("BK_DEVBROKER_NAGLE")) {
		int n = nodelay_listeners(db.bootstraps);
		if (n < nbrokers)
			bk_logf(BK_LOG_WARN, "TCP_NODELAY not set on every broker listener",
				"set=%d brokers=%ld", n, nbrokers);
	}

	for (int t = 0; t < BK_TOPIC_COUNT; t++) {
		if (create_topic(&db, bk_kconf_topic(kc, (bk_topic)t), (int)partitions, why,
				 sizeof(why)) < 0) {
			bk_logf(BK_LOG_ERROR, "cannot create a topic", "err=%s", why);
			goto out;
		}
	}
	if (extra && create_extra_topics(&db, extra, (int)partitions, why, sizeof(why)) < 0) {
		bk_logf(BK_LOG_ERROR, "cannot create a topic", "err=%s", why);
		rc = BK_EXIT_USAGE;
		goto out;
	}

	printf("%s\n", db.bootstraps);
	fflush(stdout);
	if (bootstrap_file && write_atomic(bootstrap_file, db.bootstraps, why, sizeof(why)) < 0) {
		bk_logf(BK_LOG_ERROR, "cannot write the bootstrap file", "err=%s", why);
		goto out;
	}
	bk_logf(BK_LOG_INFO, "dev broker ready",
		"bootstrap=%s brokers=%ld partitions=%ld prefix=%s control=%s bootstrap_file=%s",
		db.bootstraps, nbrokers, partitions, prefix ? prefix : "", control ? control : "",
		bootstrap_file ? bootstrap_file : "");

	serve(&db, sfd, lfd);
	rc = BK_EXIT_OK;

out:
	while (db.nclients > 0)
		client_close(&db, db.nclients - 1);
	if (lfd >= 0) {
		close(lfd);
		unlink(control);
	}
	if (bootstrap_file && db.bootstraps)
		remove_bootstrap_file(bootstrap_file, db.bootstraps);
	if (db.mc)
		rd_kafka_mock_cluster_destroy(db.mc);
	if (db.rk)
		rd_kafka_destroy(db.rk);
	close(sfd);
	while (db.topics) {
		topic_entry *next = db.topics->next;
		free(db.topics);
		db.topics = next;
	}
	bk_kconf_destroy(kc);
	if (rc == BK_EXIT_OK)
		bk_log(BK_LOG_INFO, "dev broker stopped");
	return rc;
}
