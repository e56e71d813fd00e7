/*
 * cmd_rebuild.c - `bookingctl rebuild`: flags, progress (one updating line on a terminal,
 * a logfmt line every few seconds otherwise) and exit codes around rb_run
 * (projector/rebuild.c), which builds the new read model and swaps it in.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "paths.h"
#include "kconf.h"
#include "log.h"
#include "rebuild.h"
#include "trust.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: bookingctl rebuild [options]\n"
	    "\n"
	    "Builds a fresh read model from offset 0 of booking.events (and booking.rules)\n"
	    "into shadow schemas (booking_rb, ord_rb, booking_proj_rb, made from the\n"
	    "migration files), catches up with the live end and swaps it in with the live\n"
	    "schemas in one transaction: readers see the old model or the new one, never a\n"
	    "mix. A running booking-projector is held out during the swap, reconnects and\n"
	    "resumes from the new checkpoints. docs/rebuild.md.\n"
	    "\n"
	    "  -d, --dbname CONNINFO  libpq conninfo or postgresql:// URI (default: the PG*\n"
	    "                         environment variables, as psql)\n"
	    "      --from-file PATH   read the log from a `bookingctl replay --format msgpack`\n"
	    "                         file instead of Kafka; with -b/--brokers-file the tail\n"
	    "                         after the file is then read from Kafka; the rules come\n"
	    "                         from the live model. Refused (exit 2) unless the file is\n"
	    "                         a whole log: no filter, every partition from offset 0\n"
	    "                         to the end when it was read, its trailer\n"
	    "      --migrations DIR   migration files (default: $BOOKING_MIGRATIONS,\n"
	    "                         ./migrations, else the installed ones)\n"
	    "      --keep-old         keep the replaced schemas as <schema>_old_<time>\n"
	    "      --batch N          records per planning chunk (default 20000)\n"
	    "      --writer-keyring F the processors' writer keys ($BOOKING_WRITER_KEYRING):\n"
	    "                         only records their seals cover are projected, the rest\n"
	    "                         rejected as the live projector does (a replay file\n"
	    "                         carries the seal records: they are checked again)\n"
	    "      --trust-unsealed   DEVELOPMENT ONLY: project records without seals\n"
	    "  -h, --help             this text\n"
	    "\n%s"
	    "\nexit status: 0 swapped in, 1 refused (truncated log, another rebuild running,\n"
	    "data the rebuild cannot reproduce, interrupted), 2 bad usage, 3 Kafka or\n"
	    "PostgreSQL failed; on any failure the live model is unchanged\n",
	    bk_kconf_usage());
}

/* The default migrations directory (lib/paths.h). */
static const char *default_dir(char *out, size_t outsz)
{
	return bk_default_migrations_dir(out, outsz);
}

typedef struct prog {
	bool tty;
	double last_line;
	rb_phase last_phase;
	int width;
} prog;

static void on_progress(void *opaque, const rb_progress *p)
{
	prog *g = opaque;
	double rate = p->seconds > 0 ? (double)p->events / p->seconds : 0;
	double pct = p->total > 0 ? 100.0 * (double)p->done / (double)p->total : 0;
	double eta = -1;
	if (p->phase == RB_PH_LOAD && p->done > 0 && p->total > p->done && p->seconds > 0)
		eta = p->seconds * (double)(p->total - p->done) / (double)p->done;
	if (g->tty) {
		char line[200], etas[32] = "";
		if (eta >= 0)
			snprintf(etas, sizeof(etas), "  ETA %d:%02d", (int)eta / 60, (int)eta % 60);
		int n = snprintf(line, sizeof(line),
				 "rebuild %-7s %lld events  %.0f events/s  %5.1f%%%s  %.0fs",
				 rb_phase_name(p->phase), (long long)p->events, rate,
				 p->phase == RB_PH_LOAD || p->phase == RB_PH_WRITE ? pct : 0.0,
				 etas, p->seconds);
		fprintf(stderr, "\r%s%*s", line, g->width > n ? g->width - n : 0, "");
		g->width = n;
		if (p->phase == RB_PH_DONE)
			fputc('\n', stderr);
		fflush(stderr);
		return;
	}
	if (p->phase == g->last_phase && p->seconds - g->last_line < 5.0)
		return;
	g->last_line = p->seconds;
	g->last_phase = p->phase;
	bk_logf(BK_LOG_INFO, "rebuild progress",
		"phase=%s events=%lld events_per_s=%.0f done=%lld total=%lld percent=%.1f "
		"eta_s=%.0f seconds=%.1f",
		rb_phase_name(p->phase), (long long)p->events, rate, (long long)p->done,
		(long long)p->total, pct, eta, p->seconds);
}

static int exit_of(rb_rc rc)
{
	switch (rc) {
	case RB_OK:
		return BK_EXIT_OK;
	case RB_USAGE:
		return BK_EXIT_USAGE;
	case RB_DEPENDENCY:
		return BK_EXIT_DEPENDENCY;
	default:
		return BK_EXIT_PROBLEM;
	}
}

int cmd_rebuild(int argc, char **argv)
{
	rb_cfg cfg = {.use_kafka = true};
	const char *wkr_path = NULL;
	bk_keyring *writers = NULL;
	char err[1024], dirbuf[PATH_MAX];
	bool brokers = false;
	int rc = BK_EXIT_USAGE;
	bk_kconf *kc = bk_kconf_new();
	if (!kc)
		return BK_EXIT_DEPENDENCY;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strncmp(a, "-b", 2) || !strncmp(a, "--brokers", 9) ||
		    !strncmp(a, "-Xbootstrap.servers", 19) ||
		    (!strcmp(a, "-X") && i + 1 < argc &&
		     !strncmp(argv[i + 1], "bootstrap.servers", 17)))
			brokers = true;
		int t = bk_kconf_take_arg(kc, argc, argv, &i, err, sizeof(err));
		if (t < 0) {
			fprintf(stderr, "bookingctl rebuild: %s\n", err);
			goto out;
		}
		if (t > 0)
			continue;
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool needs = !strcmp(a, "-d") || !strcmp(a, "--dbname") ||
			     !strcmp(a, "--from-file") || !strcmp(a, "--migrations") ||
			     !strcmp(a, "--batch") || !strcmp(a, "--writer-keyring");
		if (needs && !v) {
			fprintf(stderr, "bookingctl rebuild: %s needs a value\n", a);
			goto out;
		}
		if (needs)
			i++;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			rc = BK_EXIT_OK;
			goto out;
		} else if (!strcmp(a, "-d") || !strcmp(a, "--dbname")) {
			cfg.conninfo = v;
		} else if (!strcmp(a, "--from-file")) {
			cfg.from_file = v;
		} else if (!strcmp(a, "--migrations")) {
			cfg.migrations_dir = v;
		} else if (!strcmp(a, "--batch")) {
			char *end;
			if (!v) /* cannot be: --batch needs a value (checked above) */
				goto out;
			long n = strtol(v, &end, 10);
			if (!*v || *end || n < 1) {
				fprintf(stderr, "bookingctl rebuild: --batch %s: a number >= 1\n",
					v);
				goto out;
			}
			cfg.batch = n;
		} else if (!strcmp(a, "--keep-old")) {
			cfg.keep_old = true;
		} else if (!strcmp(a, "--writer-keyring")) {
			wkr_path = v;
		} else if (!strcmp(a, "--trust-unsealed")) {
			cfg.trust_unsealed = true;
		} else {
			fprintf(stderr, "bookingctl rebuild: unknown option %s (see --help)\n", a);
			goto out;
		}
	}
	if (cfg.from_file)
		cfg.use_kafka = brokers;
	if (!cfg.trust_unsealed) { /* Kafka or a replay file: the same seal rule */
		if (bk_trust_load_keyring(wkr_path, &writers, err, sizeof(err)) < 0) {
			fprintf(stderr,
				"bookingctl rebuild: %s (or --trust-unsealed, development only)\n",
				err);
			goto out;
		}
		cfg.writers = writers;
	}
	if (!cfg.migrations_dir && !(cfg.migrations_dir = default_dir(dirbuf, sizeof(dirbuf)))) {
		fprintf(stderr, "bookingctl rebuild: no migrations directory (--migrations)\n");
		goto out;
	}
	cfg.kc = kc;
	cfg.stop = &stop_flag;
	prog g = {.tty = isatty(STDERR_FILENO) == 1, .last_phase = RB_PH_DONE};
	cfg.progress = on_progress;
	cfg.progress_opaque = &g;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	rb_stats st;
	rb_rc r = rb_run(&cfg, &st, err, sizeof(err));
	if (g.tty && g.width)
		fputc('\n', stderr);
	rc = exit_of(r);
	if (r != RB_OK) {
		fprintf(stderr, "bookingctl rebuild: %s: %s\n", rb_rc_msg(r), err);
		goto out;
	}
	double rate = st.load_s > 0 ? (double)st.events / st.load_s : 0;
	bk_logf(BK_LOG_INFO, "rebuild done",
		"records=%lld events=%lld applied=%lld duplicates=%lld forks=%lld "
		"quarantined=%lld held=%lld tail_records=%lld load_s=%.2f total_s=%.2f "
		"events_per_s=%.0f old_schemas=%s",
		(long long)st.records, (long long)st.events, (long long)st.applied,
		(long long)st.duplicates, (long long)st.forks, (long long)st.quarantined,
		(long long)st.held, (long long)st.tail_records, st.load_s, st.total_s, rate,
		st.old_suffix[0] ? st.old_suffix : "dropped");
out:
	bk_keyring_free(writers);
	bk_kconf_destroy(kc);
	return rc;
}
