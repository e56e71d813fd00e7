/*
 * conffile.c - `-F FILE` expansion (conffile.h). The expanded vector owns its new
 * strings through a hidden trailer: argv[ret_argc] is NULL and the owned strings follow
 * it, ended by a second NULL, so one free function releases exactly what was made here.
 */
#include "conffile.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <librdkafka/rdkafka.h>

#include "log.h"

typedef struct vec {
	char **v;
	size_t n, cap;
	char **own; /* strings made here */
	size_t nown, capown;
} vec;

static int push(vec *a, char *s, bool owned)
{
	if (a->n + 1 >= a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 32;
		char **nv = realloc(a->v, cap * sizeof(*nv));
		if (!nv)
			return -1;
		a->v = nv;
		a->cap = cap;
	}
	if (owned) {
		if (a->nown == a->capown) {
			size_t cap = a->capown ? a->capown * 2 : 16;
			char **no = realloc(a->own, cap * sizeof(*no));
			if (!no)
				return -1;
			a->own = no;
			a->capown = cap;
		}
		a->own[a->nown++] = s;
	}
	a->v[a->n++] = s;
	return 0;
}

static char *fmt2(const char *a, const char *b, const char *c)
{
	size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s%s%s", a, b, c);
	return s;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* Is key a librdkafka property (global or topic)? */
static bool is_rdkafka_prop(const char *key)
{
	char why[256];
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	/* a value that is valid for no property, so nothing but the name is judged */
	rd_kafka_conf_res_t r = rd_kafka_conf_set(c, key, "\x01", why, sizeof(why));
	rd_kafka_conf_destroy(c);
	return r != RD_KAFKA_CONF_UNKNOWN;
}

static bool secret_key(const char *key)
{
	return strstr(key, "password") || strstr(key, "secret") || strstr(key, ".key.pem");
}

/* The options of one file, appended to a. 0 or -1 + errstr. */
static int expand_file(vec *a, const char *path, char *errstr, size_t errsz)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(errstr, errsz, "-F %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	bool open_to_others = fstat(fileno(f), &st) == 0 && (st.st_mode & 0004);
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, rc = 0;
	bool warned = false;
	while (rc == 0 && getline(&line, &cap, f) >= 0) {
		lineno++;
		char *s = trim(line);
		if (!*s || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			snprintf(errstr, errsz, "-F %s:%d: expected key=value, got '%.60s'", path,
				 lineno, s);
			rc = -1;
			break;
		}
		*eq = '\0';
		char *key = trim(s), *val = trim(eq + 1);
		if (!*key) {
			snprintf(errstr, errsz, "-F %s:%d: empty key", path, lineno);
			rc = -1;
			break;
		}
		if (!strcmp(key, "F") || !strcmp(key, "config")) {
			snprintf(errstr, errsz,
				 "-F %s:%d: a configuration file cannot include another", path,
				 lineno);
			rc = -1;
			break;
		}
		if (open_to_others && secret_key(key) && !warned) {
			bk_logf(BK_LOG_WARN,
				"configuration file holds a secret and is readable by everyone: "
				"chmod 0640 it, or pass the secret in the environment",
				"path=%s line=%d key=%s", path, lineno, key);
			warned = true;
		}
		/* one or two arguments: -X k=v, --switch, --key=value, or -k value */
		char *o1 = NULL, *o2 = NULL;
		bool two = false;
		if (is_rdkafka_prop(key)) {
			o1 = strdup("-X");
			o2 = fmt2(key, "=", val);
			two = true;
		} else if (!strcmp(val, "true") || !strcmp(val, "yes") || !strcmp(val, "on")) {
			o1 = fmt2("--", key, "");
		} else if (!strcmp(val, "false") || !strcmp(val, "no") || !strcmp(val, "off")) {
			continue; /* a switch left off */
		} else if (strlen(key) == 1) {
			o1 = fmt2("-", key, "");
			o2 = strdup(val);
			two = true;
		} else {
			char *k = fmt2("--", key, "=");
			o1 = k ? fmt2(k, val, "") : NULL;
			free(k);
		}
		if (!o1 || (two && !o2)) {
			free(o1);
			free(o2);
			snprintf(errstr, errsz, "-F %s: out of memory", path);
			rc = -1;
			break;
		}
		if (push(a, o1, true) < 0) {
			free(o1);
			free(o2);
			snprintf(errstr, errsz, "-F %s: out of memory", path);
			rc = -1;
			break;
		}
		if (two && push(a, o2, true) < 0) {
			free(o2);
			snprintf(errstr, errsz, "-F %s: out of memory", path);
			rc = -1;
		}
	}
	if (rc == 0 && ferror(f)) {
		snprintf(errstr, errsz, "-F %s: read error", path);
		rc = -1;
	}
	free(line);
	fclose(f);
	return rc;
}

static void vec_free(vec *a)
{
	for (size_t i = 0; i < a->nown; i++)
		free(a->own[i]);
	free(a->own);
	free(a->v);
}

int bk_conffile_expand(int argc, char **argv, int *ret_argc, char ***ret_argv, char *errstr,
		       size_t errstr_size)
{
	vec a = {0};
	int rc = 0;
	for (int i = 0; rc == 0 && i < argc; i++) {
		const char *s = argv[i], *path = NULL;
		if (i > 0 && (!strcmp(s, "-F") || !strcmp(s, "--config"))) {
			if (i + 1 >= argc) {
				snprintf(errstr, errstr_size, "%s needs a FILE", s);
				rc = -1;
				break;
			}
			path = argv[++i];
		} else if (i > 0 && !strncmp(s, "-F", 2) && s[2]) {
			path = s + 2;
		} else if (i > 0 && !strncmp(s, "--config=", 9)) {
			path = s + 9;
		}
		if (path)
			rc = expand_file(&a, path, errstr, errstr_size);
		else if (push(&a, argv[i], false) < 0) {
			snprintf(errstr, errstr_size, "out of memory");
			rc = -1;
		}
	}
	/* the trailer: NULL, the owned strings, NULL */
	size_t need = a.n + a.nown + 2;
	char **out = rc == 0 ? malloc(need * sizeof(*out)) : NULL;
	if (rc == 0 && !out) {
		snprintf(errstr, errstr_size, "out of memory");
		rc = -1;
	}
	if (rc < 0) {
		vec_free(&a);
		return -1;
	}
	if (a.n)
		memcpy(out, a.v, a.n * sizeof(*out));
	out[a.n] = NULL;
	if (a.nown)
		memcpy(out + a.n + 1, a.own, a.nown * sizeof(*out));
	out[a.n + 1 + a.nown] = NULL;
	*ret_argc = (int)a.n;
	*ret_argv = out;
	free(a.v);
	free(a.own);
	return 0;
}

void bk_conffile_free_argv(char **argv)
{
	if (!argv)
		return;
	char **p = argv;
	while (*p)
		p++;
	for (p++; *p; p++)
		free(*p);
	free(argv);
}

const char *bk_conffile_usage(void)
{
	return "Configuration:\n"
	       "  -F, --config FILE              key=value lines (kcat's format; # comments):\n"
	       "                                 librdkafka properties, and this program's\n"
	       "                                 long options without the dashes\n"
	       "                                 (brokers-file=PATH, switch=true); options\n"
	       "                                 after -F override the file\n"
	       "  PostgreSQL passwords: never in -d; use PGPASSFILE (default ~/.pgpass) or\n"
	       "  PGSERVICE (pg_service.conf), as libpq and psql do\n";
}
