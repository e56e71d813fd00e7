/*
 * mkcorpus.c - writes the seed corpora of the libFuzzer harnesses (tests/fuzz/corpus/)
 * from the fixtures: what the processor reads and writes for real, a few dozen small
 * files per target. Run by `scripts/fuzz --mkcorpus`; the output is committed.
 *
 *   mkcorpus SRCDIR OUTDIR
 *
 * command, command_json: fixture lines (one per command type first, then every 7th);
 * record: events records (one per new subtype first); record_evolve: each order's
 * first records in log order, framed as fuzz_record_evolve reads them; result: the result of
 * each record and a few rejections; rules: every profile's rules after the fixtures;
 * keyring: keyring texts with fresh keys.
 */
#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bk_auth.h"
#include "bk_codec.h"
#include "bk_snap.h"
#include "fixture_run.h"

#define PER_TARGET     40
#define T__COUNT_MAX   8
#define EVOLVE_RECORDS 6 /* the first records of an order: small seeds, every kind of state */

typedef struct out {
	const char *dir;
	int n[T__COUNT_MAX];
} out;

enum { T_COMMAND, T_JSON, T_RECORD, T_EVOLVE, T_RESULT, T_RULES, T_KEYRING, T_SNAPSHOT, T__COUNT };
_Static_assert(T__COUNT <= T__COUNT_MAX, "out.n holds a count per target");
static const char *const tnames[T__COUNT] = {
    "fuzz_command", "fuzz_command_json", "fuzz_record",	 "fuzz_record_evolve",
    "fuzz_result",  "fuzz_rules",	 "fuzz_keyring", "fuzz_snapshot"};

static int put(out *o, int t, const void *bytes, size_t n);

/* fuzz_snapshot: a snapshot of each order of a fixture, while there is room */
typedef struct snap_seeds {
	out *o;
	int rc;
} snap_seeds;

static void snap_seed(const bk_order *ord, void *opaque)
{
	snap_seeds *s = opaque;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	if (s->rc == 0 && s->o->n[T_SNAPSHOT] < PER_TARGET - 1 &&
	    bk_snap_encode(ord, 0, 42, &sb) == 0 && put(s->o, T_SNAPSHOT, sb.data, sb.size) < 0)
		s->rc = -1;
	msgpack_sbuffer_destroy(&sb);
}

static int put(out *o, int t, const void *bytes, size_t n)
{
	char path[1200];
	if (o->n[t] >= PER_TARGET)
		return 0;
	snprintf(path, sizeof(path), "%s/%s/seed-%03d", o->dir, tnames[t], o->n[t]);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "mkcorpus: %s: %s\n", path, strerror(errno));
		return -1;
	}
	o->n[t]++;
	return 0;
}

/* What one fixture run collects: records per order, in log order, framed. */
typedef struct run {
	out *o;
	msgpack_sbuffer orders[64];
	char order_ids[64][BK_ID_MAX];
	int n_records[64];
	int n_orders;
	bool seen_sub[BK_EV__COUNT][BK_CV__COUNT + BK_ST__COUNT];
	int records;
} run;

static int on_record(void *opaque, const bk_record *r, const void *bytes, size_t n)
{
	run *x = opaque;
	bool fresh = false;
	for (uint32_t i = 0; i < r->n; i++) {
		const bk_event *e = &r->events[i];
		if (!x->seen_sub[e->type][e->sub]) {
			x->seen_sub[e->type][e->sub] = true;
			fresh = true;
		}
	}
	if ((fresh || x->records % 11 == 0) && put(x->o, T_RECORD, bytes, n) < 0)
		return -1;
	x->records++;
	int k = 0;
	while (k < x->n_orders && strcmp(x->order_ids[k], r->order_id) != 0)
		k++;
	if (k == x->n_orders) {
		if (k == 64)
			return 0;
		snprintf(x->order_ids[k], BK_ID_MAX, "%s", r->order_id);
		msgpack_sbuffer_init(&x->orders[k]);
		x->n_records[k] = 0;
		x->n_orders++;
	}
	unsigned char len[2] = {(unsigned char)(n >> 8), (unsigned char)n};
	if (n < 65536 && x->n_records[k]++ < EVOLVE_RECORDS) {
		msgpack_sbuffer_write(&x->orders[k], (const char *)len, 2);
		msgpack_sbuffer_write(&x->orders[k], bytes, n);
	}
	/* its result, as the processor answers an accepted command */
	const char *ids[BK_MAX_EVENTS];
	for (uint32_t i = 0; i < r->n && i < BK_MAX_EVENTS; i++)
		ids[i] = r->events[i].event_id;
	bk_result res = {.command_id = r->command_id,
			 .order_id = r->order_id,
			 .status = BK_ACCEPTED,
			 .code = BK_E_OK,
			 .message = "",
			 .version = r->n ? r->events[r->n - 1].seq : 0,
			 .event_ids = ids,
			 .n_event_ids = r->n < BK_MAX_EVENTS ? r->n : BK_MAX_EVENTS};
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	int rc = 0;
	if (x->records % 3 == 1 && bk_codec_result_encode(&res, &sb) == 0)
		rc = put(x->o, T_RESULT, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/* Command lines of a fixture: msgpack and JSON, one per command type not seen yet. */
static int commands(out *o, const char *path, bool seen_type[BK_CMD__COUNT], int *line_no,
		    char sp_ids[16][BK_ID_MAX], int *n_sp)
{
	FILE *f = fopen(path, "r");
	char line[16384];
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t len = strcspn(line, "\n");
		msgpack_zone z;
		bk_command c;
		char err[256];
		msgpack_zone_init(&z, 4096);
		if (len > 0 &&
		    bk_codec_command_decode(line, len, true, true, &z, &c, err, sizeof(err)) == 0) {
			bool take = !seen_type[c.type] || ++*line_no % 7 == 0;
			seen_type[c.type] = true;
			if (c.type == BK_CMD_AUTOACCEPT_SET && *n_sp < 16)
				snprintf(sp_ids[(*n_sp)++], BK_ID_MAX, "%s", c.order_id);
			msgpack_sbuffer sb;
			msgpack_sbuffer_init(&sb);
			if (take && (put(o, T_JSON, line, len) < 0 ||
				     (bk_codec_command_encode(&c, &sb) == 0 &&
				      put(o, T_COMMAND, sb.data, sb.size) < 0))) {
				msgpack_sbuffer_destroy(&sb);
				msgpack_zone_destroy(&z);
				fclose(f);
				return -1;
			}
			msgpack_sbuffer_destroy(&sb);
		}
		msgpack_zone_destroy(&z);
	}
	fclose(f);
	return 0;
}

static int keyrings(out *o)
{
	static const char *const roles[] = {"buyer", "provider,support",
					    "buyer,provider,support,system",
					    "system order.,payment.", "support"};
	char text[2048], b64[64];
	uint8_t pk[BK_PK_LEN], sk[BK_SK_LEN];
	size_t n = 0;
	for (int i = 0; i < 5; i++) {
		if (bk_auth_keygen(pk, sk) < 0 ||
		    bk_b64_encode(pk, BK_PK_LEN, b64, sizeof(b64)) < 0)
			return -1;
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%sk%d %s %s\n",
				      i == 2 ? "# upstream keys\n\n" : "", i + 1, b64, roles[i]);
		if (put(o, T_KEYRING, text, n) < 0)
			return -1;
	}
	/* an SPKI (44-byte DER) key */
	static const uint8_t spki[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
					 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
	uint8_t der[44];
	memcpy(der, spki, 12);
	memcpy(der + 12, pk, BK_PK_LEN);
	if (bk_b64_encode(der, sizeof(der), b64, sizeof(b64)) < 0)
		return -1;
	n = (size_t)snprintf(text, sizeof(text), "spki-key\t%s\tbuyer,provider\n", b64);
	return put(o, T_KEYRING, text, n);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: mkcorpus SRCDIR OUTDIR\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	out o = {.dir = argv[2]};
	for (int t = 0; t < T__COUNT; t++) {
		char d[1200];
		snprintf(d, sizeof(d), "%s/%s", o.dir, tnames[t]);
		if (mkdir(d, 0755) < 0 && errno != EEXIST) {
			fprintf(stderr, "mkcorpus: %s: %s\n", d, strerror(errno));
			return 1;
		}
	}
	char fxdir[1100];
	snprintf(fxdir, sizeof(fxdir), "%s/fixtures", argv[1]);
	struct dirent **names;
	int nf = scandir(fxdir, &names, NULL, alphasort);
	if (nf < 0) {
		fprintf(stderr, "mkcorpus: %s: %s\n", fxdir, strerror(errno));
		return 1;
	}
	bool seen_type[BK_CMD__COUNT] = {false};
	static run x; /* seen_sub carries over the fixtures */
	int line_no = 0, rc = 0;
	for (int i = 0; i < nf; i++) {
		const char *name = names[i]->d_name;
		size_t len = strlen(name);
		char path[2300], err[256];
		char sp_ids[16][BK_ID_MAX];
		int n_sp = 0;
		if (rc == 0 && len > 6 && strcmp(name + len - 6, ".jsonl") == 0) {
			snprintf(path, sizeof(path), "%s/%s", fxdir, name);
			bk_engine *e = bk_engine_new();
			json_t *fails = json_array();
			x.o = &o;
			x.n_orders = 0;
			if (commands(&o, path, seen_type, &line_no, sp_ids, &n_sp) < 0 ||
			    fx_run_file_cb(e, path, fails, on_record, &x, err, sizeof(err)) < 0) {
				fprintf(stderr, "mkcorpus: %s: %s\n", path, err);
				rc = 1;
			}
			for (int k = 0; k < x.n_orders; k++) {
				if (rc == 0 && (k == 0 || o.n[T_EVOLVE] < PER_TARGET / 2) &&
				    put(&o, T_EVOLVE, x.orders[k].data, x.orders[k].size) < 0)
					rc = 1;
				msgpack_sbuffer_destroy(&x.orders[k]);
			}
			for (int k = 0; k < n_sp && rc == 0; k++) {
				const bk_profile_rules *p =
				    bk_ruleset_get(bk_engine_rules(e), sp_ids[k]);
				msgpack_sbuffer sb;
				msgpack_sbuffer_init(&sb);
				if (p && bk_codec_rules_encode(p, &sb) == 0 &&
				    put(&o, T_RULES, sb.data, sb.size) < 0)
					rc = 1;
				msgpack_sbuffer_destroy(&sb);
			}
			snap_seeds ss = {&o, 0};
			bk_engine_foreach(e, snap_seed, &ss);
			if (ss.rc < 0)
				rc = 1;
			json_decref(fails);
			bk_engine_free(e);
		}
		free(names[i]);
	}
	free(names);
	{ /* and one checkpoint */
		bk_checkpoint ck = {.partition = 2, .events_offset = 1000, .src_next = 400};
		uint8_t h[BK_HASH_LEN];
		bk_snap_hash("seed", 4, h);
		bk_snap_sum_add(&ck.sum, h, 1);
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		if (rc == 0 && (bk_snap_checkpoint_encode(&ck, &sb) < 0 ||
				put(&o, T_SNAPSHOT, sb.data, sb.size) < 0))
			rc = 1;
		msgpack_sbuffer_destroy(&sb);
	}
	/* results the processor writes for rejections and duplicates */
	static const bk_result rej[] = {
	    {"cmd_rej_1", "ord_rej_1", BK_REJECTED, BK_E_VERSION_CONFLICT,
	     "expected_version 3, the order is at 4", 4, NULL, 0},
	    {"cmd_rej_2", NULL, BK_REJECTED, BK_E_VALIDATION_FAILED, "payload.qty: 1 to 10000", 0,
	     NULL, 0},
	    {"cmd_dup_1", "ord_dup_1", BK_DUPLICATE, BK_E_OK, "", 2, NULL, 0},
	};
	for (size_t i = 0; rc == 0 && i < sizeof(rej) / sizeof(rej[0]); i++) {
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		if (bk_codec_result_encode(&rej[i], &sb) < 0 ||
		    put(&o, T_RESULT, sb.data, sb.size) < 0)
			rc = 1;
		msgpack_sbuffer_destroy(&sb);
	}
	if (rc == 0 && keyrings(&o) < 0)
		rc = 1;
	for (int t = 0; t < T__COUNT; t++)
		printf("%s: %d seeds\n", tnames[t], o.n[t]);
	return rc;
}
