/*
 * rebuild.h - `bookingctl rebuild`: a fresh read model built from offset 0 of the log into
 * shadow schemas (booking_rb, ord_rb, booking_proj_rb, made from the migration files),
 * caught up to the live end and renamed into place in one transaction (SPEC §5). Readers
 * see the old model or the new one, never a mix; the live projector resumes from the new
 * model's checkpoints. docs/rebuild.md has the design.
 */
#ifndef PROJ_REBUILD_H
#define PROJ_REBUILD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "bk_err.h"
#include "kconf.h"

/* Results of rb_run: symbol, exit code class, message. */
#define RB_RC_MAP(X)                                                                               \
	X(OK, "done")                                                                              \
	X(TRUNCATED, "a partition of the log lost history: it cannot be rebuilt")                  \
	X(BUSY, "another rebuild holds the rebuild lock")                                          \
	X(DATA, "the log holds something the rebuild cannot reproduce")                            \
	X(STOPPED, "interrupted; the live model is unchanged")                                     \
	X(USAGE, "bad input (migrations directory, replay file)")                                  \
	X(DEPENDENCY, "PostgreSQL or Kafka failed; the live model is unchanged")

typedef enum rb_rc {
#define RB_RC_ENUM(sym, msg) RB_##sym,
	RB_RC_MAP(RB_RC_ENUM)
#undef RB_RC_ENUM
	    RB__COUNT
} rb_rc;

const char *rb_rc_msg(rb_rc rc);

/* Where the rebuild is; progress counts records (Kafka) or bytes (replay file). */
typedef enum rb_phase {
	RB_PH_PREPARE, /* shadow schemas from the migrations */
	RB_PH_LOAD,    /* offset 0 to the high watermarks at start */
	RB_PH_CATCHUP, /* the tail written meanwhile, still in memory */
	RB_PH_WRITE,   /* COPY of the rows kept in memory */
	RB_PH_INDEX,   /* keys, foreign keys, indexes, price snapshots */
	RB_PH_SWAP,    /* last tail and the renames, in one transaction */
	RB_PH_DONE,
} rb_phase;

const char *rb_phase_name(rb_phase ph);

typedef struct rb_progress {
	rb_phase phase;
	int64_t done, total; /* records (or bytes of the file) read of what was known at start */
	int64_t events;	     /* events read so far (all phases) */
	double seconds;	     /* since the start of the load */
} rb_progress;

typedef struct rb_cfg {
	const char *conninfo;	    /* libpq conninfo; NULL or "": PG* variables */
	const bk_kconf *kc;	    /* topic names, and the brokers when use_kafka */
	bool use_kafka;		    /* read Kafka (always without from_file; with it: the tail) */
	const char *from_file;	    /* `bookingctl replay --format msgpack` output, or NULL */
	const char *migrations_dir; /* NNN_name.sql files the shadow schemas are made from */
	bool keep_old;		    /* keep the replaced schemas (renamed *_old_<time>) */
	/* the seal rule for what is read from Kafka or a replay file (its seal records are
	 * checked as Kafka's; lib/trust.h): the writer keyring, or trust_unsealed
	 * (development only) */
	const struct bk_keyring *writers;
	bool trust_unsealed;
	long batch;		     /* records per planning chunk (0: 20000) */
	volatile sig_atomic_t *stop; /* set by a signal: give up, drop the shadow schemas */
	/* Called from rb_run's thread at phase changes and about every 200 ms. */
	void (*progress)(void *opaque, const rb_progress *p);
	void *progress_opaque;
} rb_cfg;

typedef struct rb_stats {
	int64_t records, events, applied, duplicates, forks, quarantined, held, rejected;
	int64_t tail_records;	/* applied inside the swap transaction */
	double load_s, total_s; /* load = read + plan + COPY + index, before the swap */
	char old_suffix[40];	/* "_old_20240101T120000" when keep_old, else "" */
} rb_stats;

/*
 * Run a whole rebuild. On RB_OK the new model is live and ret_stats filled. On any other
 * result the live model is untouched and the shadow schemas were dropped (best effort);
 * err holds one line.
 */
rb_rc rb_run(const rb_cfg *cfg, rb_stats *ret_stats, char *err, size_t errsz) BK_MUSTCHECK;

#endif
