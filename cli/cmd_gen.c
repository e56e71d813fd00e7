/*
 * cmd_gen.c - `bookingctl gen`: a realistic synthetic command stream from the seeded
 * generator of lib/gen.h (the one bench_core measures), as JSON lines that `bookingctl
 * send` reads or as msgpack command maps. The same options give the same bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "bk_codec.h"
#include "cmd.h"
#include "gen.h"
#include "log.h"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: bookingctl gen [--orders N] [--seed S] [--window W] [--format json|msgpack]\n"
	    "                      [--with-expect] [-o FILE] [options]\n"
	    "\n"
	    "Writes a realistic synthetic command stream: first the auto-accept rules of the\n"
	    "providers (profile.bind by the profiles service, role system, then the provider's\n"
	    "autoaccept.set), then N orders (60%% RTB, 25%% IB, 10%% INVITE, 5%%\n"
	    "abandoned) with counter-offers, cards, milestones, cancellations, disputes, tips\n"
	    "and notes, interleaved, with resent duplicates and invalid commands mixed in.\n"
	    "Every command\n"
	    "has a planned outcome that the booking core gives it when the stream is run in\n"
	    "order from an empty log. The same options give the same output, byte for byte.\n"
	    "\n"
	    "  --orders N          orders to generate, 1 to 50000000 (default 1000; about 7.3\n"
	    "                      commands per order)\n"
	    "  --seed S            PRNG seed, 0 to 2^64-1 (default 1); ids depend on it too\n"
	    "  --window W          orders in flight at once, interleaved, 1 to 65536 (default\n"
	    "                      4096)\n"
	    "  --start TIME        the clock of the first command, RFC 3339 (default\n"
	    "                      2026-11-01T00:00:00Z); it advances 1-2 s per command, and\n"
	    "                      the orders take place 20-79 days after its day\n"
	    "  --duplicates PM     per mille of accepted commands resent later, same id and\n"
	    "                      bytes (default 32)\n"
	    "  --wrong-actor PM    per mille of steps preceded by a copy from a user who is not\n"
	    "                      the party (forbidden; default 14)\n"
	    "  --stale PM          per mille of the other steps preceded by a copy with a stale\n"
	    "                      expected_version (version_conflict; default 12)\n"
	    "  --format json|msgpack\n"
	    "                      json (default): one command per line, the shape `bookingctl\n"
	    "                      send` reads; msgpack: the command maps back to back, no\n"
	    "                      length prefix or separator (msgpack is self-delimiting: read\n"
	    "                      them with a streaming unpacker)\n"
	    "  --with-expect       json only: add the planned outcome to each line as the\n"
	    "                      fixtures do, \"expect\":{\"status\":...,\"code\":...} (code "
	    "only\n"
	    "                      when rejected); `send` drops it\n"
	    "  -o, --output FILE   write there instead of standard output\n"
	    "  -h, --help          this text\n"
	    "\n"
	    "A summary line (counts per story and per kind of noise) goes to stderr.\n"
	    "\nexit status: 0 done, 1 write failed or out of memory, 2 bad usage\n");
}

/* A decimal number in [lo, hi] for option `opt`; false (message on stderr) otherwise. */
static bool parse_num(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
	if (*s < '0' || *s > '9' || *end != '\0' || errno == ERANGE || v < lo || v > hi) {
		fprintf(stderr,
			"bookingctl gen: %s: not a number from %" PRIu64 " to %" PRIu64 ": %s\n",
			opt, lo, hi, s);
		return false;
	}
	*ret = v;
	return true;
}

/* One command as a JSON line; 0, or -1 (err) when it does not decode or cannot be written. */
static int write_json(FILE *out, const bk_gen_cmd *c, bool with_expect, msgpack_zone *z, char *err,
		      size_t errsz)
{
	bk_command cmd;
	char derr[256];
	if (bk_codec_command_decode(c->bytes, c->len, false, false, z, &cmd, derr, sizeof(derr)) <
	    0) {
		snprintf(err, errsz, "internal: generated command %" PRIu64 " does not decode: %s",
			 c->index, derr);
		return -1;
	}
	json_t *j = bk_command_to_json(&cmd);
	if (j && with_expect) {
		json_t *e = json_pack("{s:s}", "status", bk_outcome_name(c->expect));
		if (e && c->expect == BK_REJECTED)
			json_object_set_new(e, "code", json_string(bk_err_name(c->expect_code)));
		if (!e || json_object_set_new(j, "expect", e) < 0) {
			json_decref(j);
			j = NULL;
		}
	}
	/* 15 digits: the generator's reals are the doubles nearest to short decimals, so the
	 * text is short and reads back to the same double */
	int rc = 0;
	if (!j) {
		snprintf(err, errsz, "out of memory");
		rc = -1;
	} else if (json_dumpf(j, out, JSON_COMPACT | JSON_REAL_PRECISION(15)) < 0 ||
		   fputc('\n', out) == EOF) {
		snprintf(err, errsz, "write failed");
		rc = -1;
	}
	json_decref(j);
	return rc;
}

int cmd_gen(int argc, char **argv)
{
	bk_gen_opts o;
	bk_gen_opts_default(&o);
	bool msgpack = false, with_expect = false;
	const char *output = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t n;
#define NEEDV()                                                                                    \
	do {                                                                                       \
		if (!v) {                                                                          \
			fprintf(stderr, "bookingctl gen: %s needs a value\n", a);                  \
			return BK_EXIT_USAGE;                                                      \
		}                                                                                  \
		i++;                                                                               \
	} while (0)
#define NUMBER(lo, hi)                                                                             \
	do {                                                                                       \
		NEEDV();                                                                           \
		if (!parse_num(a, v, (lo), (hi), &n))                                              \
			return BK_EXIT_USAGE;                                                      \
	} while (0)
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return BK_EXIT_OK;
		} else if (!strcmp(a, "--orders")) {
			NUMBER(1, 50000000);
			o.orders = (uint32_t)n;
		} else if (!strcmp(a, "--seed")) {
			NUMBER(0, UINT64_MAX);
			o.seed = n;
		} else if (!strcmp(a, "--window")) {
			NUMBER(1, 65536);
			o.window = (uint32_t)n;
		} else if (!strcmp(a, "--duplicates")) {
			NUMBER(0, 1000);
			o.dup_per_mille = (uint32_t)n;
		} else if (!strcmp(a, "--wrong-actor")) {
			NUMBER(0, 1000);
			o.wrong_actor_per_mille = (uint32_t)n;
		} else if (!strcmp(a, "--stale")) {
			NUMBER(0, 1000);
			o.stale_per_mille = (uint32_t)n;
		} else if (!strcmp(a, "--start")) {
			NEEDV();
			if (bk_ts_parse(v, strlen(v), &o.start_us) < 0) {
				fprintf(stderr,
					"bookingctl gen: --start: not an RFC 3339 time: %s\n", v);
				return BK_EXIT_USAGE;
			}
		} else if (!strcmp(a, "--format")) {
			NEEDV();
			if (strcmp(v, "json") && strcmp(v, "msgpack")) {
				fprintf(stderr,
					"bookingctl gen: --format: json or msgpack, not %s\n", v);
				return BK_EXIT_USAGE;
			}
			msgpack = v[0] == 'm';
		} else if (!strcmp(a, "--with-expect")) {
			with_expect = true;
		} else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
			NEEDV();
			output = v;
		} else {
			fprintf(stderr, "bookingctl gen: unknown argument %s (see --help)\n", a);
			return BK_EXIT_USAGE;
		}
#undef NUMBER
#undef NEEDV
	}
	if (msgpack && with_expect) {
		fprintf(stderr, "bookingctl gen: --with-expect needs --format json\n");
		return BK_EXIT_USAGE;
	}
	char err[512];
	bk_gen *g = bk_gen_new(&o, err, sizeof(err));
	if (!g) {
		fprintf(stderr, "bookingctl gen: %s\n", err);
		return strcmp(err, "out of memory") == 0 ? BK_EXIT_PROBLEM : BK_EXIT_USAGE;
	}
	FILE *out = stdout;
	if (output && !(out = fopen(output, "w"))) {
		fprintf(stderr, "bookingctl gen: cannot write %s: %s\n", output, strerror(errno));
		bk_gen_free(g);
		return BK_EXIT_USAGE;
	}
	msgpack_zone z;
	if (!msgpack_zone_init(&z, 16384)) {
		fprintf(stderr, "bookingctl gen: out of memory\n");
		if (output)
			fclose(out);
		bk_gen_free(g);
		return BK_EXIT_PROBLEM;
	}
	int rc = BK_EXIT_OK, r;
	bk_gen_cmd c;
	while ((r = bk_gen_next(g, &c, err, sizeof(err))) == 1) {
		if (msgpack) {
			if (fwrite(c.bytes, 1, c.len, out) != c.len) {
				snprintf(err, sizeof(err), "write failed");
				r = -1;
				break;
			}
		} else {
			if (write_json(out, &c, with_expect, &z, err, sizeof(err)) < 0) {
				r = -1;
				break;
			}
			msgpack_zone_clear(&z);
		}
	}
	msgpack_zone_destroy(&z);
	if (r < 0)
		rc = BK_EXIT_PROBLEM;
	if ((fflush(out) != 0 || (output && fclose(out) != 0)) && r >= 0) {
		snprintf(err, sizeof(err), "write failed");
		rc = BK_EXIT_PROBLEM;
	}
	if (rc != BK_EXIT_OK) {
		fprintf(stderr, "bookingctl gen: %s%s%s\n", output ? output : "",
			output ? ": " : "", err);
	} else {
		bk_gen_stats s;
		bk_gen_stats_get(g, &s);
		bk_logf(BK_LOG_INFO, "gen done",
			"orders=%" PRIu32 " seed=%" PRIu64 " window=%" PRIu32 " commands=%" PRIu64
			" binds=%" PRIu64 " rules=%" PRIu64 " rtb=%" PRIu64 " ib=%" PRIu64
			" invite=%" PRIu64 " abandoned=%" PRIu64 " planned=%" PRIu64
			" duplicates=%" PRIu64 " wrong_actor=%" PRIu64 " stale=%" PRIu64,
			o.orders, o.seed, o.window, s.commands, s.binds, s.rules, s.rtb, s.ib,
			s.invite, s.abandoned, s.planned, s.duplicates, s.wrong_actor, s.stale);
	}
	bk_gen_free(g);
	return rc;
}
