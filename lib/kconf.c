/*
 * kconf.c - shared Kafka configuration: command-line options kept in order, turned
 * into rd_kafka_conf_t on demand, plus metadata queries. Every -X is checked against
 * librdkafka when given, so a typo fails at start-up with librdkafka's own reason.
 * Nothing here prints or exits: errors return -1 with errstr filled in.
 */
#include "kconf.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

/* SPEC §3: every producer of every language must map keys to partitions alike. */
#define BK_PARTITIONER "murmur2_random"
#define TOPIC_NAME_MAX 249

static const char *const topic_defaults[BK_TOPIC_COUNT] = {
    [BK_TOPIC_COMMANDS] = "booking.commands",
    [BK_TOPIC_EVENTS] = "booking.events",
    [BK_TOPIC_RESULTS] = "booking.command-results",
    [BK_TOPIC_DLQ] = "booking.dlq",
    [BK_TOPIC_RULES] = "booking.rules",
    [BK_TOPIC_SNAPSHOTS] = "booking.snapshots",
};

static const char *const topic_options[BK_TOPIC_COUNT] = {
    [BK_TOPIC_COMMANDS] = "commands-topic", [BK_TOPIC_EVENTS] = "events-topic",
    [BK_TOPIC_RESULTS] = "results-topic",   [BK_TOPIC_DLQ] = "dlq-topic",
    [BK_TOPIC_RULES] = "rules-topic",	    [BK_TOPIC_SNAPSHOTS] = "snapshots-topic",
};

typedef struct kv {
	char *key;
	char *value;
} kv;

struct bk_kconf {
	char *brokers;	    /* -b, or NULL */
	char *brokers_file; /* --brokers-file, or NULL */
	kv *props;	    /* -X, in command-line order */
	size_t nprops, capprops;
	char *prefix;		     /* --topic-prefix, or NULL */
	char *names[BK_TOPIC_COUNT]; /* renamed topics, NULL = SPEC default */
	char *full[BK_TOPIC_COUNT];  /* prefix + name, recomputed by every setter */
};

static int fail(char *errstr, size_t errstr_size, const char *fmt, ...) BK_PRINTF(3, 4);

static int fail(char *errstr, size_t errstr_size, const char *fmt, ...)
{
	if (errstr && errstr_size) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(errstr, errstr_size, fmt, ap);
		va_end(ap);
	}
	return -1;
}

const char *bk_topic_default_name(bk_topic t)
{
	return (unsigned)t < BK_TOPIC_COUNT ? topic_defaults[t] : NULL;
}

const char *bk_topic_option(bk_topic t)
{
	return (unsigned)t < BK_TOPIC_COUNT ? topic_options[t] : NULL;
}

/* Recompute the full topic names; returns 0 or -1 (OOM, names left as they were). */
static int refresh_names(bk_kconf *kc)
{
	char *full[BK_TOPIC_COUNT] = {0};
	const char *pfx = kc->prefix ? kc->prefix : "";

	for (int t = 0; t < BK_TOPIC_COUNT; t++) {
		const char *base = kc->names[t] ? kc->names[t] : topic_defaults[t];
		size_t n = strlen(pfx) + strlen(base) + 1;
		full[t] = malloc(n);
		if (!full[t]) {
			for (int i = 0; i < t; i++)
				free(full[i]);
			return -1;
		}
		snprintf(full[t], n, "%s%s", pfx, base);
	}
	for (int t = 0; t < BK_TOPIC_COUNT; t++) {
		free(kc->full[t]);
		kc->full[t] = full[t];
	}
	return 0;
}

bk_kconf *bk_kconf_new(void)
{
	bk_kconf *kc = calloc(1, sizeof(*kc));
	if (!kc)
		return NULL;
	if (refresh_names(kc) < 0) {
		free(kc);
		return NULL;
	}
	return kc;
}

void bk_kconf_destroy(bk_kconf *kc)
{
	if (!kc)
		return;
	free(kc->brokers);
	free(kc->brokers_file);
	for (size_t i = 0; i < kc->nprops; i++) {
		free(kc->props[i].key);
		free(kc->props[i].value);
	}
	free(kc->props);
	free(kc->prefix);
	for (int t = 0; t < BK_TOPIC_COUNT; t++) {
		free(kc->names[t]);
		free(kc->full[t]);
	}
	free(kc);
}

const char *bk_kconf_topic(const bk_kconf *kc, bk_topic t)
{
	if (!kc || (unsigned)t >= BK_TOPIC_COUNT)
		return NULL;
	return kc->full[t];
}

/* Kafka's legal topic characters: ASCII letters, digits, '.', '_', '-'. */
static int legal_topic_chars(const char *s)
{
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
			return 0;
	return 1;
}

/* Replace *slot with a copy of s (NULL clears it); returns 0 or -1 on OOM. */
static int replace_str(char **slot, const char *s)
{
	char *copy = NULL;
	if (s && !(copy = strdup(s)))
		return -1;
	free(*slot);
	*slot = copy;
	return 0;
}

int bk_kconf_set_brokers(bk_kconf *kc, const char *list, char *errstr, size_t errstr_size)
{
	if (!list || !*list)
		return fail(errstr, errstr_size, "-b: the broker list is empty");
	if (kc->brokers_file)
		return fail(errstr, errstr_size,
			    "-b and --brokers-file are both given: use one of them");
	if (replace_str(&kc->brokers, list) < 0)
		return fail(errstr, errstr_size, "out of memory");
	return 0;
}

int bk_kconf_set_brokers_file(bk_kconf *kc, const char *path, char *errstr, size_t errstr_size)
{
	if (!path || !*path)
		return fail(errstr, errstr_size, "--brokers-file: the path is empty");
	if (kc->brokers)
		return fail(errstr, errstr_size,
			    "-b and --brokers-file are both given: use one of them");
	if (replace_str(&kc->brokers_file, path) < 0)
		return fail(errstr, errstr_size, "out of memory");
	return 0;
}

int bk_kconf_set(bk_kconf *kc, const char *key, const char *value, char *errstr, size_t errstr_size)
{
	char why[512];

	if (!key || !*key)
		return fail(errstr, errstr_size, "-X: the property name is empty");
	if (!value)
		return fail(errstr, errstr_size, "-X %s: no value (use -X key=value)", key);

	/* Check now, on a scratch configuration, so a typo fails before anything runs. */
	rd_kafka_conf_t *scratch = rd_kafka_conf_new();
	rd_kafka_conf_res_t res = rd_kafka_conf_set(scratch, key, value, why, sizeof(why));
	rd_kafka_conf_destroy(scratch);
	if (res == RD_KAFKA_CONF_UNKNOWN)
		return fail(errstr, errstr_size, "-X %s=%s: unknown property: %s", key, value, why);
	if (res != RD_KAFKA_CONF_OK)
		return fail(errstr, errstr_size, "-X %s=%s: invalid value: %s", key, value, why);

	if (kc->nprops == kc->capprops) {
		size_t cap = kc->capprops ? kc->capprops * 2 : 8;
		kv *p = realloc(kc->props, cap * sizeof(*p));
		if (!p)
			return fail(errstr, errstr_size, "out of memory");
		kc->props = p;
		kc->capprops = cap;
	}
	kv item = {strdup(key), strdup(value)};
	if (!item.key || !item.value) {
		free(item.key);
		free(item.value);
		return fail(errstr, errstr_size, "out of memory");
	}
	kc->props[kc->nprops++] = item;
	return 0;
}

int bk_kconf_set_kv(bk_kconf *kc, const char *key_eq_value, char *errstr, size_t errstr_size)
{
	const char *eq = key_eq_value ? strchr(key_eq_value, '=') : NULL;
	if (!eq)
		return fail(errstr, errstr_size, "-X %s: expected key=value",
			    key_eq_value ? key_eq_value : "");
	size_t klen = (size_t)(eq - key_eq_value);
	char *key = malloc(klen + 1);
	if (!key)
		return fail(errstr, errstr_size, "out of memory");
	memcpy(key, key_eq_value, klen);
	key[klen] = '\0';
	int r = bk_kconf_set(kc, key, eq + 1, errstr, errstr_size);
	free(key);
	return r;
}

int bk_kconf_set_topic(bk_kconf *kc, bk_topic t, const char *name, char *errstr, size_t errstr_size)
{
	if ((unsigned)t >= BK_TOPIC_COUNT)
		return fail(errstr, errstr_size, "unknown topic kind %d", (int)t);
	if (!name || !*name)
		return fail(errstr, errstr_size, "--%s: the topic name is empty", topic_options[t]);
	if (strlen(name) > TOPIC_NAME_MAX || !legal_topic_chars(name))
		return fail(errstr, errstr_size,
			    "--%s %s: a topic name is 1-%d of the characters [A-Za-z0-9._-]",
			    topic_options[t], name, TOPIC_NAME_MAX);
	char *old = kc->names[t];
	kc->names[t] = strdup(name);
	if (!kc->names[t] || refresh_names(kc) < 0) {
		free(kc->names[t]);
		kc->names[t] = old;
		return fail(errstr, errstr_size, "out of memory");
	}
	free(old);
	return 0;
}

int bk_kconf_set_topic_prefix(bk_kconf *kc, const char *prefix, char *errstr, size_t errstr_size)
{
	if (!prefix)
		prefix = "";
	if (strlen(prefix) > TOPIC_NAME_MAX / 2 || !legal_topic_chars(prefix))
		return fail(errstr, errstr_size,
			    "--topic-prefix %s: a prefix is at most %d of the characters "
			    "[A-Za-z0-9._-]",
			    prefix, TOPIC_NAME_MAX / 2);
	char *old = kc->prefix;
	kc->prefix = *prefix ? strdup(prefix) : NULL;
	if ((*prefix && !kc->prefix) || refresh_names(kc) < 0) {
		free(kc->prefix);
		kc->prefix = old;
		return fail(errstr, errstr_size, "out of memory");
	}
	free(old);
	return 0;
}

/*
 * If arg is the long option `name` ("--brokers") alone or as "--brokers=VALUE", return 1
 * and point *ret_inline at VALUE (NULL when alone); else 0.
 */
static int match_long(const char *arg, const char *name, const char **ret_inline)
{
	size_t n = strlen(name);
	if (strncmp(arg, name, n) != 0)
		return 0;
	if (arg[n] == '\0') {
		*ret_inline = NULL;
		return 1;
	}
	if (arg[n] == '=') {
		*ret_inline = arg + n + 1;
		return 1;
	}
	return 0;
}

/* The value of an option: inline, or the next argument (then *idx advances). */
static const char *option_value(int argc, char **argv, int *idx, const char *inl, const char *opt,
				char *errstr, size_t errstr_size)
{
	if (inl)
		return inl;
	if (*idx + 1 >= argc) {
		fail(errstr, errstr_size, "%s needs a value", opt);
		return NULL;
	}
	return argv[++*idx];
}

int bk_kconf_take_arg(bk_kconf *kc, int argc, char **argv, int *idx, char *errstr,
		      size_t errstr_size)
{
	const char *arg = argv[*idx];
	const char *inl = NULL;
	const char *val;
	int at = *idx;
	int r;

	if (!arg)
		return 0;
	if (arg[0] == '-' && (arg[1] == 'b' || arg[1] == 'X')) {
		char opt[3] = {'-', arg[1], '\0'};
		val = option_value(argc, argv, &at, arg[2] ? arg + 2 : NULL, opt, errstr,
				   errstr_size);
		if (!val)
			return -1;
		r = arg[1] == 'b' ? bk_kconf_set_brokers(kc, val, errstr, errstr_size)
				  : bk_kconf_set_kv(kc, val, errstr, errstr_size);
	} else if (match_long(arg, "--brokers", &inl)) {
		if (!(val = option_value(argc, argv, &at, inl, "--brokers", errstr, errstr_size)))
			return -1;
		r = bk_kconf_set_brokers(kc, val, errstr, errstr_size);
	} else if (match_long(arg, "--brokers-file", &inl)) {
		if (!(val = option_value(argc, argv, &at, inl, "--brokers-file", errstr,
					 errstr_size)))
			return -1;
		r = bk_kconf_set_brokers_file(kc, val, errstr, errstr_size);
	} else if (match_long(arg, "--topic-prefix", &inl)) {
		if (!(val = option_value(argc, argv, &at, inl, "--topic-prefix", errstr,
					 errstr_size)))
			return -1;
		r = bk_kconf_set_topic_prefix(kc, val, errstr, errstr_size);
	} else {
		int t;
		char opt[64];
		for (t = 0; t < BK_TOPIC_COUNT; t++) {
			snprintf(opt, sizeof(opt), "--%s", topic_options[t]);
			if (match_long(arg, opt, &inl))
				break;
		}
		if (t == BK_TOPIC_COUNT)
			return 0;
		if (!(val = option_value(argc, argv, &at, inl, opt, errstr, errstr_size)))
			return -1;
		r = bk_kconf_set_topic(kc, (bk_topic)t, val, errstr, errstr_size);
	}
	if (r < 0)
		return -1;
	*idx = at;
	return 1;
}

const char *bk_kconf_usage(void)
{
	return "Kafka options:\n"
	       "  -b, --brokers HOST:PORT[,...]  bootstrap brokers\n"
	       "  --brokers-file PATH            read the broker list from PATH (first line;\n"
	       "                                 `bookingctl devbroker --bootstrap-file` writes "
	       "it)\n"
	       "  -X KEY=VALUE                   any librdkafka property (repeatable; later "
	       "wins)\n"
	       "  --topic-prefix PFX             prefix every topic name (per-test topics)\n"
	       "  --commands-topic NAME          default booking.commands\n"
	       "  --events-topic NAME            default booking.events\n"
	       "  --results-topic NAME           default booking.command-results\n"
	       "  --dlq-topic NAME               default booking.dlq\n"
	       "  --rules-topic NAME             default booking.rules\n"
	       "  --snapshots-topic NAME         default booking.snapshots\n"
	       "  BOOKING_KAFKA_<PROP>=VALUE     (environment) librdkafka property <prop>, upper\n"
	       "                                 case with '_' for '.': "
	       "BOOKING_KAFKA_SASL_PASSWORD\n"
	       "                                 keeps a secret off argv; -X wins over it\n"
	       "  Producers always use partitioner=murmur2_random (SPEC §3).\n";
}

int bk_kconf_read_brokers_file(const char *path, char **ret_list, char *errstr, size_t errstr_size)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return fail(errstr, errstr_size, "--brokers-file %s: %s", path, strerror(errno));

	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) >= 0) {
		char *s = line;
		char *e = line + n;
		while (s < e && isspace((unsigned char)*s))
			s++;
		while (e > s && isspace((unsigned char)e[-1]))
			e--;
		if (e == s)
			continue;
		*e = '\0';
		char *list = strdup(s);
		free(line);
		fclose(f);
		if (!list)
			return fail(errstr, errstr_size, "out of memory");
		*ret_list = list;
		return 0;
	}
	int rerr = ferror(f);
	free(line);
	fclose(f);
	if (rerr)
		return fail(errstr, errstr_size, "--brokers-file %s: read error", path);
	return fail(errstr, errstr_size, "--brokers-file %s: the file holds no broker list", path);
}

/* Apply one property to conf, with a message naming where it came from. */
static int conf_apply(rd_kafka_conf_t *conf, const char *origin, const char *key, const char *value,
		      char *errstr, size_t errstr_size)
{
	char why[512];
	rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, key, value, why, sizeof(why));
	if (res == RD_KAFKA_CONF_OK)
		return 0;
	return fail(errstr, errstr_size, "%s %s=%s: %s: %s", origin, key, value,
		    res == RD_KAFKA_CONF_UNKNOWN ? "unknown property" : "invalid value", why);
}

/* Value of a property in conf, "" when unset. */
static void conf_get(const rd_kafka_conf_t *conf, const char *key, char *buf, size_t size)
{
	size_t n = size;
	if (rd_kafka_conf_get(conf, key, buf, &n) != RD_KAFKA_CONF_OK)
		buf[0] = '\0';
}

/*
 * Consumer defaults a bootstrap file may carry after its broker list, one a line as
 * "consumer KEY=VALUE" (`bookingctl devbroker` writes its group timeouts so): applied to
 * consumers after the program's defaults and before -X. Other lines are ignored.
 */
static int file_consumer_defaults(const char *path, rd_kafka_conf_t *conf, char *errstr,
				  size_t errstr_size)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return fail(errstr, errstr_size, "--brokers-file %s: %s", path, strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;
	while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
		while (n > 0 && isspace((unsigned char)line[n - 1]))
			line[--n] = '\0';
		char *eq = strchr(line, '=');
		if (strncmp(line, "consumer ", 9) != 0 || !eq)
			continue;
		*eq = '\0';
		rc = conf_apply(conf, "--brokers-file", line + 9, eq + 1, errstr, errstr_size);
	}
	free(line);
	fclose(f);
	return rc;
}

extern char **environ;

/* librdkafka's properties that only consumers (C) or only producers (P) use, from its own
 * table (rd_kafka_conf_properties_show), read once. */
typedef struct scoped {
	char name[64];
	char scope;
} scoped;
static scoped *scopes;
static size_t nscopes;
static pthread_once_t scopes_once = PTHREAD_ONCE_INIT;

static void load_scopes(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return;
	rd_kafka_conf_properties_show(f);
	fclose(f);
	size_t cap = 0;
	for (char *line = buf, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char *bar = strchr(line, '|');
		if (!bar)
			continue;
		char *bar2 = strchr(bar + 1, '|');
		size_t nl = (size_t)(bar - line);
		while (nl && line[nl - 1] == ' ')
			nl--;
		char sc = 0;
		for (char *c = bar + 1; bar2 && c < bar2; c++)
			if (*c == 'C' || *c == 'P')
				sc = *c;
		if (!sc || nl == 0 || nl >= sizeof(scopes->name))
			continue;
		if (nscopes == cap) {
			cap = cap ? cap * 2 : 64;
			scoped *n = realloc(scopes, cap * sizeof(*n));
			if (!n)
				break;
			scopes = n;
		}
		memcpy(scopes[nscopes].name, line, nl);
		scopes[nscopes].name[nl] = '\0';
		scopes[nscopes++].scope = sc;
	}
	free(buf);
}

/* Does a property not apply to this role (a consumer property for a producer, or the
 * other way round)? librdkafka would warn at each start that it ignores it. */
static bool other_role(const char *key, bk_kconf_role role)
{
	pthread_once(&scopes_once, load_scopes);
	for (size_t i = 0; i < nscopes; i++)
		if (!strcmp(scopes[i].name, key))
			return scopes[i].scope == (role == BK_KCONF_CONSUMER ? 'P' : 'C');
	return false;
}

/*
 * The librdkafka properties in the environment: BOOKING_KAFKA_SASL_PASSWORD=x is
 * sasl.password=x (lower case, '_' as '.'), so secrets need not be on argv. An error
 * names the variable, never its value. 0 or -1 + errstr; *ret_partitioner is set when
 * one of them is the partitioner.
 */
static int apply_env(rd_kafka_conf_t *conf, bk_kconf_role role, const char **ret_partitioner,
		     char *errstr, size_t errstr_size)
{
	static const char pfx[] = "BOOKING_KAFKA_";
	for (char **e = environ; e && *e; e++) {
		if (strncmp(*e, pfx, sizeof(pfx) - 1) != 0)
			continue;
		const char *name = *e + sizeof(pfx) - 1, *eq = strchr(name, '=');
		char key[256], why[512];
		size_t n = eq ? (size_t)(eq - name) : 0;
		if (!eq || n == 0 || n >= sizeof(key))
			continue;
		for (size_t i = 0; i < n; i++)
			key[i] = name[i] == '_' ? '.' : (char)tolower((unsigned char)name[i]);
		key[n] = '\0';
		if (other_role(key, role))
			continue;
		rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, key, eq + 1, why, sizeof(why));
		if (res != RD_KAFKA_CONF_OK)
			return fail(errstr, errstr_size, "environment %.*s%.*s (property %s): %s",
				    (int)(sizeof(pfx) - 1), pfx, (int)n, name, key,
				    res == RD_KAFKA_CONF_UNKNOWN ? "unknown property"
								 : "invalid value");
		if (!strcmp(key, "partitioner"))
			*ret_partitioner = eq + 1;
	}
	return 0;
}

int bk_kconf_build(const bk_kconf *kc, bk_kconf_role role, const char *const *defaults,
		   rd_kafka_conf_t **ret_conf, char *errstr, size_t errstr_size)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char *file_list = NULL;
	const char *partitioner = NULL;

	for (size_t i = 0; defaults && defaults[i] && defaults[i + 1]; i += 2)
		if (conf_apply(conf, "default", defaults[i], defaults[i + 1], errstr, errstr_size) <
		    0)
			goto err;

	if (kc->brokers &&
	    conf_apply(conf, "-b", "bootstrap.servers", kc->brokers, errstr, errstr_size) < 0)
		goto err;
	if (kc->brokers_file) {
		if (bk_kconf_read_brokers_file(kc->brokers_file, &file_list, errstr, errstr_size) <
		    0)
			goto err;
		if (conf_apply(conf, "--brokers-file", "bootstrap.servers", file_list, errstr,
			       errstr_size) < 0)
			goto err;
		if (role == BK_KCONF_CONSUMER &&
		    file_consumer_defaults(kc->brokers_file, conf, errstr, errstr_size) < 0)
			goto err;
	}
	if (apply_env(conf, role, &partitioner, errstr, errstr_size) < 0)
		goto err;
	for (size_t i = 0; i < kc->nprops; i++) {
		/* -X applies to every client of the program: each takes what is its own */
		if (other_role(kc->props[i].key, role))
			continue;
		if (conf_apply(conf, "-X", kc->props[i].key, kc->props[i].value, errstr,
			       errstr_size) < 0)
			goto err;
		if (!strcmp(kc->props[i].key, "partitioner"))
			partitioner = kc->props[i].value;
	}

	if (role == BK_KCONF_PRODUCER) {
		if (partitioner && strcmp(partitioner, BK_PARTITIONER) != 0) {
			fail(errstr, errstr_size,
			     "partitioner=%s: the partitioner is fixed to " BK_PARTITIONER
			     " so that producers in every language agree (SPEC §3)",
			     partitioner);
			goto err;
		}
		if (conf_apply(conf, "required", "partitioner", BK_PARTITIONER, errstr,
			       errstr_size) < 0)
			goto err;
	}

	char servers[1024], mock[32];
	conf_get(conf, "bootstrap.servers", servers, sizeof(servers));
	conf_get(conf, "test.mock.num.brokers", mock, sizeof(mock));
	if (!servers[0] && (!mock[0] || !strcmp(mock, "0"))) {
		fail(errstr, errstr_size,
		     "no Kafka brokers given: use -b HOST:PORT, --brokers-file PATH "
		     "or -X bootstrap.servers=HOST:PORT");
		goto err;
	}

	rd_kafka_conf_set_log_cb(conf, bk_kconf_log_cb);
	free(file_list);
	*ret_conf = conf;
	return 0;
err:
	free(file_list);
	rd_kafka_conf_destroy(conf);
	return -1;
}

int bk_kconf_new_handle(const bk_kconf *kc, bk_kconf_role role, const char *const *defaults,
			rd_kafka_t **ret_rk, char *errstr, size_t errstr_size)
{
	rd_kafka_conf_t *conf;
	char why[512];

	if (bk_kconf_build(kc, role, defaults, &conf, errstr, errstr_size) < 0)
		return -1;
	rd_kafka_t *rk =
	    rd_kafka_new(role == BK_KCONF_CONSUMER ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, conf,
			 why, sizeof(why));
	if (!rk) {
		rd_kafka_conf_destroy(conf); /* not taken over on failure */
		return fail(errstr, errstr_size, "creating the Kafka client: %s", why);
	}
	*ret_rk = rk;
	return 0;
}

void bk_kconf_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	/* connection failures (FAIL) and the errors librdkafka retries by itself (ERROR:
	 * all brokers down, transport errors) are transient: warn. What is fatal, the
	 * programs report themselves. */
	bool transient = fac && (!strcmp(fac, "FAIL") || !strcmp(fac, "ERROR"));
	bk_log_level l = level <= 3   ? (transient ? BK_LOG_WARN : BK_LOG_ERROR)
			 : level == 4 ? BK_LOG_WARN
			 : level <= 6 ? BK_LOG_INFO
				      : BK_LOG_DEBUG;
	bk_logf(l, "librdkafka", "fac=%s client=%s text=%s", fac, rk ? rd_kafka_name(rk) : "", buf);
}

/* Find topic in md; NULL when absent. */
static const rd_kafka_metadata_topic_t *md_topic(const struct rd_kafka_metadata *md,
						 const char *topic)
{
	for (int i = 0; i < md->topic_cnt; i++)
		if (!strcmp(md->topics[i].topic, topic))
			return &md->topics[i];
	return NULL;
}

/* Whole-cluster metadata (never auto-creates a topic). */
static int fetch_metadata(rd_kafka_t *rk, int timeout_ms, const struct rd_kafka_metadata **ret_md,
			  char *errstr, size_t errstr_size)
{
	rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, ret_md, timeout_ms);
	if (err)
		return fail(errstr, errstr_size, "Kafka metadata request failed: %s",
			    rd_kafka_err2str(err));
	return 0;
}

/* Count from md into *ret, or -1 + errstr naming the topic. */
static int md_count(const struct rd_kafka_metadata *md, const char *topic, int *ret, char *errstr,
		    size_t errstr_size)
{
	const rd_kafka_metadata_topic_t *t = md_topic(md, topic);
	if (!t)
		return fail(errstr, errstr_size, "topic %s does not exist", topic);
	if (t->err)
		return fail(errstr, errstr_size, "topic %s: %s", topic, rd_kafka_err2str(t->err));
	*ret = t->partition_cnt;
	return 0;
}

int bk_kconf_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, int *ret_count,
			     char *errstr, size_t errstr_size)
{
	const struct rd_kafka_metadata *md;
	int n = 0;

	if (fetch_metadata(rk, timeout_ms, &md, errstr, errstr_size) < 0)
		return -1;
	int r = md_count(md, topic, &n, errstr, errstr_size);
	rd_kafka_metadata_destroy(md);
	if (r == 0)
		*ret_count = n;
	return r;
}

static rd_kafka_resp_err_t tame_on_thread_start(rd_kafka_t *rk, rd_kafka_thread_type_t type,
						const char *name, void *opaque)
{
	(void)rk;
	(void)name;
	(void)opaque;
	/* PRIO_PROCESS with a thread id: that thread only (Linux). Threads the main thread
	 * starts later (a broker's, when metadata names it) inherit its nice value: they get
	 * theirs back, which needs CAP_SYS_NICE; without it they keep +10 (still working,
	 * only yielding sooner to the process's other threads). */
	const id_t tid = (id_t)syscall(SYS_gettid);
	if (type == RD_KAFKA_THREAD_MAIN)
		(void)setpriority(PRIO_PROCESS, tid, 10);
	else if (getpriority(PRIO_PROCESS, tid) == 10)
		(void)setpriority(PRIO_PROCESS, tid, 0);
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t tame_on_new(rd_kafka_t *rk, const rd_kafka_conf_t *conf, void *opaque,
				       char *errstr, size_t errstr_size)
{
	(void)conf;
	(void)errstr;
	(void)errstr_size;
	return rd_kafka_interceptor_add_on_thread_start(rk, "bk-tame-main", tame_on_thread_start,
							opaque);
}

int bk_kconf_tame_main_thread(rd_kafka_conf_t *conf, char *errstr, size_t errstr_size)
{
	if (rd_kafka_version() >= 0x020301ff)
		return 0;
	rd_kafka_resp_err_t e =
	    rd_kafka_conf_interceptor_add_on_new(conf, "bk-tame-main", tame_on_new, NULL);
	if (e)
		return fail(errstr, errstr_size, "interceptor: %s", rd_kafka_err2str(e));
	return 0;
}

int bk_kconf_warm_topics(rd_kafka_t *rk, const char *const *topics, int n, int timeout_ms,
			 char *errstr, size_t errstr_size)
{
	for (int i = 0; i < n; i++) {
		rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topics[i], NULL);
		if (!t)
			return fail(errstr, errstr_size, "topic %s: %s", topics[i],
				    rd_kafka_err2str(rd_kafka_last_error()));
		const struct rd_kafka_metadata *md = NULL;
		/* all_topics=0 with a topic handle: only this topic; the answer also fills
		 * the handle's partitions, which stay known after the handle is released */
		rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
		int r = 0;
		if (err)
			r = fail(errstr, errstr_size, "Kafka metadata request for %s failed: %s",
				 topics[i], rd_kafka_err2str(err));
		else {
			int cnt;
			char why[256];
			if (md_count(md, topics[i], &cnt, why, sizeof(why)) < 0)
				r = fail(errstr, errstr_size, "%s", why);
		}
		if (md)
			rd_kafka_metadata_destroy(md);
		rd_kafka_topic_destroy(t);
		if (r < 0)
			return -1;
	}
	return 0;
}

int bk_kconf_check_partitions(rd_kafka_t *rk, const bk_kconf *kc, int timeout_ms,
			      int *ret_partitions, char *errstr, size_t errstr_size)
{
	static const bk_topic which[] = {BK_TOPIC_COMMANDS, BK_TOPIC_EVENTS, BK_TOPIC_RESULTS};
	const struct rd_kafka_metadata *md;
	int counts[3] = {0};
	int bad = 0;
	char part[3][300];

	if (fetch_metadata(rk, timeout_ms, &md, errstr, errstr_size) < 0)
		return -1;
	for (int i = 0; i < 3; i++) {
		const char *name = kc->full[which[i]];
		char why[256];
		if (md_count(md, name, &counts[i], why, sizeof(why)) < 0) {
			counts[i] = -1;
			bad = 1;
			const rd_kafka_metadata_topic_t *t = md_topic(md, name);
			snprintf(part[i], sizeof(part[i]), "%s=%s", name,
				 t ? rd_kafka_err2name(t->err) : "missing");
		} else {
			snprintf(part[i], sizeof(part[i]), "%s=%d", name, counts[i]);
			if (counts[i] != counts[0])
				bad = 1;
		}
	}
	rd_kafka_metadata_destroy(md);
	if (bad)
		return fail(errstr, errstr_size,
			    "partition counts %s %s %s: the commands, events and results topics "
			    "must exist with the same partition count (SPEC §5)",
			    part[0], part[1], part[2]);
	*ret_partitions = counts[0];
	return 0;
}

int bk_kconf_watermarks(rd_kafka_t *rk, const char *topic, int32_t partition, int timeout_ms,
			int64_t *ret_low, int64_t *ret_high, char *errstr, size_t errstr_size)
{
	int64_t lo, hi;
	rd_kafka_resp_err_t err =
	    rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi, timeout_ms);
	if (err)
		return fail(errstr, errstr_size, "watermarks of %s [%d]: %s", topic, (int)partition,
			    rd_kafka_err2str(err));
	*ret_low = lo;
	*ret_high = hi;
	return 0;
}

int bk_kconf_header(const rd_kafka_message_t *m, const char *name, const void **ret_v,
		    size_t *ret_n)
{
	rd_kafka_headers_t *h = NULL;
	*ret_v = NULL;
	*ret_n = 0;
	if (rd_kafka_message_headers(m, &h) || !h ||
	    rd_kafka_header_get_last(h, name, ret_v, ret_n)) {
		*ret_v = NULL;
		*ret_n = 0;
		return -1;
	}
	return 0;
}

int bk_kconf_header_int(const rd_kafka_message_t *m, const char *name, int64_t *ret)
{
	const void *v;
	size_t n;
	char buf[32];
	if (bk_kconf_header(m, name, &v, &n) < 0 || !v || n == 0 || n >= sizeof(buf))
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
