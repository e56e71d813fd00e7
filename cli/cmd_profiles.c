/*
 * cmd_profiles.c - `bookingctl profiles`: the service profiles of booking.rules (the last
 * record of each key, as compaction keeps it), each with its owner, how it got it (bound
 * by profile.bind, or legacy: the first rule's provider, from before profile.bind) and
 * its rules. With --bind-commands it writes the profile.bind commands that confirm the
 * listed owners, for an operator to check against the profiles service and send: the
 * migration of docs/operations.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bk_codec.h"
#include "bk_ids.h"
#include "bk_rules.h"
#include "bk_time.h"
#include "cmd.h"
#include "kconf.h"
#include "logread.h"
#include "trust.h"

typedef struct profiles {
	bk_ruleset *rs;
	int64_t records, tombstones, undecodable, untrusted;
	const bk_keyring *writers; /* NULL: signatures not checked */
} profiles;

static int on_record(void *opaque, const rd_kafka_message_t *m)
{
	profiles *p = opaque;
	char key[BK_ID_MAX];
	p->records++;
	if (!m->key || m->key_len == 0 || m->key_len >= sizeof(key) ||
	    !bk_id_valid(m->key, m->key_len, NULL)) {
		fprintf(stderr, "profiles: partition=%d offset=%lld: the key is not a profile id\n",
			(int)m->partition, (long long)m->offset);
		p->undecodable++;
		return 0;
	}
	snprintf(key, sizeof(key), "%.*s", (int)m->key_len, (const char *)m->key);
	char why[256];
	if (p->writers && bk_trust_check_rules(p->writers, m, why, sizeof(why)) < 0) {
		fprintf(
		    stderr,
		    "profiles: partition=%d offset=%lld service_profile_id=%s: not a processor's "
		    "record (%s): skipped, as the processors skip it\n",
		    (int)m->partition, (long long)m->offset, key, why);
		p->untrusted++;
		return 0;
	}
	if (!m->payload) { /* a tombstone: the profile's record is gone */
		bk_ruleset_remove(p->rs, key);
		p->tombstones++;
		return 0;
	}
	bk_profile_rules pr;
	char err[256];
	if (bk_codec_rules_decode(m->payload, m->len, &pr, err, sizeof(err)) < 0) {
		fprintf(stderr, "profiles: partition=%d offset=%lld service_profile_id=%s: %s\n",
			(int)m->partition, (long long)m->offset, key, err);
		p->undecodable++;
		return 0;
	}
	int rc = strcmp(pr.service_profile_id, key) == 0 ? bk_ruleset_put(p->rs, &pr) : 1;
	bk_profile_rules_clear(&pr);
	if (rc > 0) {
		fprintf(stderr,
			"profiles: partition=%d offset=%lld: record of another profile under key "
			"%s\n",
			(int)m->partition, (long long)m->offset, key);
		p->undecodable++;
		return 0;
	}
	return rc < 0 ? -1 : 0;
}

static int by_id(const void *a, const void *b)
{
	const bk_profile_rules *x = *(const bk_profile_rules *const *)a;
	const bk_profile_rules *y = *(const bk_profile_rules *const *)b;
	return strcmp(x->service_profile_id, y->service_profile_id);
}

/*
 * One profile.bind command as a JSON line, binding p to its current owner. The command
 * id is derived from the profile and its owner, so running the migration twice sends the
 * same ids (the second answered `duplicate` while the profile remembers them).
 */
static void bind_line(const bk_profile_rules *p, const char *at)
{
	char seed[2 * BK_ID_MAX + 1], id[BK_ID_MAX];
	snprintf(seed, sizeof(seed), "%s/%s", p->service_profile_id, p->owner_user_id);
	bk_id_derive(id, "cmd_", seed, "profile.bind", 0);
	printf("{\"id\":\"%s\",\"type\":\"profile.bind\",\"order_id\":\"%s\",\"actor\":{"
	       "\"role\":\"system\"},\"at\":\"%s\",\"payload\":{\"service_profile_id\":\"%s\","
	       "\"provider_user_id\":\"%s\"}}\n",
	       id, p->service_profile_id, at, p->service_profile_id, p->owner_user_id);
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: bookingctl profiles [--legacy] [--bind-commands] [options]\n"
	    "\n"
	    "Lists the service profiles of booking.rules, one line each: the profile id, its\n"
	    "owner, `bound` (profile.bind bound it) or `legacy` (a record from before\n"
	    "profile.bind: the owner is the provider of its first rule), and how many rules\n"
	    "it has. The last record of each key counts, as compaction keeps it.\n"
	    "\n"
	    "  --legacy          only the legacy profiles; exit 1 when there is one\n"
	    "  --bind-commands   instead of the list, one profile.bind command (JSON line, role\n"
	    "                    system, at = now) per listed profile, binding it to its owner:\n"
	    "                    check each owner against the profiles service, correct the\n"
	    "                    provider_user_id where it is wrong, then send them with\n"
	    "                    `bookingctl send --key <profiles key> --wait`\n"
	    "  -h, --help        this text\n"
	    "\n%s"
	    "\nexit status: 0 ok, 1 undecodable records (or --legacy found some), 2 bad usage,\n"
	    "3 Kafka failed\n",
	    bk_kconf_usage());
}

int cmd_profiles(int argc, char **argv)
{
	profiles p = {0};
	bk_keyring *writers = NULL;
	bk_logread_opts o = {.partition = -1, .to = -1};
	bool legacy_only = false, bind_cmds = false;
	const bk_profile_rules **list = NULL;
	char err[512];
	int rc = BK_EXIT_USAGE;
	bk_kconf *kc = bk_kconf_new();
	rd_kafka_t *rk = NULL;
	if (!kc)
		return BK_EXIT_DEPENDENCY;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int t = bk_kconf_take_arg(kc, argc, argv, &i, err, sizeof(err));
		if (t < 0) {
			fprintf(stderr, "bookingctl profiles: %s\n", err);
			goto out;
		}
		if (t > 0)
			continue;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			rc = BK_EXIT_OK;
			goto out;
		} else if (!strcmp(a, "--legacy")) {
			legacy_only = true;
		} else if (!strcmp(a, "--bind-commands")) {
			bind_cmds = true;
		} else {
			fprintf(stderr, "bookingctl profiles: unknown option: %s\n", a);
			goto out;
		}
	}
	rc = BK_EXIT_DEPENDENCY;
	if (!(p.rs = bk_ruleset_new())) {
		fprintf(stderr, "bookingctl profiles: out of memory\n");
		goto out;
	}
	o.topic = bk_kconf_topic(kc, BK_TOPIC_RULES);
	/* with a writer keyring ($BOOKING_WRITER_KEYRING), only the processors' signed
	 * records count, as for the processors themselves */
	const char *wkr_env = getenv(BK_ENV_WRITER_KEYRING);
	if (wkr_env && *wkr_env) {
		if (bk_trust_load_keyring(NULL, &writers, err, sizeof(err)) < 0) {
			fprintf(stderr, "bookingctl profiles: %s\n", err);
			rc = BK_EXIT_USAGE;
			goto out;
		}
		p.writers = writers;
	}
	if (bk_logread_consumer(kc, &rk, err, sizeof(err)) < 0 ||
	    bk_logread(rk, &o, on_record, &p, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "bookingctl profiles: %s\n", err);
		goto out;
	}
	size_t n = bk_ruleset_count(p.rs);
	if (n && !(list = malloc(n * sizeof(*list)))) {
		fprintf(stderr, "bookingctl profiles: out of memory\n");
		goto out;
	}
	if (n) {
		bk_ruleset_list(p.rs, list, n);
		qsort(list, n, sizeof(*list), by_id);
	}
	char at[40];
	bk_ts_format((int64_t)time(NULL) * BK_US_PER_S, at, sizeof(at));
	size_t shown = 0, legacy = 0;
	for (size_t i = 0; i < n; i++) {
		const bk_profile_rules *e = list[i];
		legacy += !e->bound;
		if (legacy_only && e->bound)
			continue;
		shown++;
		if (bind_cmds)
			bind_line(e, at);
		else
			printf("%s %s %s rules=%u\n", e->service_profile_id,
			       e->owner_user_id[0] ? e->owner_user_id : "-",
			       e->bound ? "bound" : "legacy", e->n);
	}
	fprintf(stderr,
		"profiles: records=%lld profiles=%zu bound=%zu legacy=%zu shown=%zu "
		"undecodable=%lld not_signed=%lld%s\n",
		(long long)p.records, n, n - legacy, legacy, shown, (long long)p.undecodable,
		(long long)p.untrusted,
		p.writers ? "" : " (signatures not checked: no $" BK_ENV_WRITER_KEYRING ")");
	rc = p.undecodable || (legacy_only && shown) ? BK_EXIT_PROBLEM : BK_EXIT_OK;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("bookingctl profiles: writing stdout");
		rc = BK_EXIT_PROBLEM;
	}
out:
	free(list);
	bk_keyring_free(writers);
	bk_ruleset_free(p.rs);
	if (rk)
		rd_kafka_destroy(rk);
	bk_kconf_destroy(kc);
	return rc;
}
