/*
 * proj_batch.h - one projector instance's PostgreSQL side: the order cache (head and
 * facts per order), the partition checkpoints it expects, and the batch: decode records,
 * apply the reader rule per order, coalesce the rows, write them with the checkpoints in
 * one transaction (SPEC §5). Poison events quarantine their order; the rest go on.
 * Single-threaded: the daemon's main loop calls everything here.
 */
#ifndef PROJ_BATCH_H
#define PROJ_BATCH_H

#include <signal.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "proj_db.h"

typedef struct proj_cfg {
	const char *conninfo; /* libpq conninfo; NULL or "": PG* variables */
	const char *events_topic;
	const char *rules_topic;
	pdb_path path;
	volatile sig_atomic_t *stop; /* set by SIGTERM: give up waiting for PostgreSQL */
} proj_cfg;

typedef struct proj_stats {
	uint64_t batches, records, events, applied, duplicates, forks, quarantined, held, retried,
	    rules, slow_paths, pg_errors, rejected;
	uint64_t busy_us; /* time spent in committed batches */
} proj_stats;

typedef struct proj proj; /* opaque */

/* A new instance; cfg's strings must outlive it. NULL on OOM. */
proj *proj_new(const proj_cfg *cfg);
void proj_free(proj *p); /* NULL ok; closes the connection */
const proj_stats *proj_get_stats(const proj *p);

/*
 * Connect (or reconnect), retrying with exponential backoff and logging each failure,
 * until it works (0) or *cfg->stop is set (-1).
 */
int proj_connect(proj *p);

/*
 * Partitions assigned: read their checkpoints (retrying through PostgreSQL outages);
 * ret_next[i] is the offset to resume partition parts[i] of topic at (-1: none, start at
 * the beginning). The instance remembers them to detect another writer (fence). 0, or -1
 * when stopped.
 */
int proj_assign(proj *p, const char *topic, const int32_t *parts, size_t n, int64_t *ret_next);
/* Partitions revoked: forget the checkpoints and the order cache. */
void proj_revoke(proj *p);

typedef enum proj_rc {
	PROJ_OK,      /* committed */
	PROJ_FENCED,  /* a checkpoint moved under us: seek the batch's partitions to proj_next */
	PROJ_STOPPED, /* stop was requested while PostgreSQL was unavailable: nothing written */
} proj_rc;

/*
 * Project the messages (events and rules records, in consumption order; they stay the
 * caller's). Retries through PostgreSQL failures until committed or stopped.
 */
/* What the seal rule (lib/trust) said of each message before the batch was cut. */
enum {
	PV_SEALED,   /* an events record a valid seal covers, or a trusted rules record */
	PV_SEAL,     /* a valid seal record: consumed, nothing to project */
	PV_UNSEALED, /* covered by no valid seal (or an unsigned rules record): rejected */
	PV_BAD_SEAL, /* a seal record that does not check: rejected */
	PV_PENDING,  /* waiting for its seal: never handed to proj_batch */
	PV_CHECK,    /* an events record a valid seal lists with digests[i]: sealed when its
		      * own digest is that one (checked where the batch decodes it), else
		      * unsealed (core/bk_seal.h, deferred digests) */
};
proj_rc proj_batch(proj *p, rd_kafka_message_t *const *msgs, const uint8_t *verdicts,
		   const uint8_t (*digests)[BK_HASH_LEN], size_t n);

/* The next offset the instance expects for a partition (-1: unknown, start at 0). */
int64_t proj_next(const proj *p, const char *topic, int32_t partition);

/* The read model generation the instance works against (booking_proj.model; -1 before
 * the first connection). It changes when a rebuild swap is seen, by a batch's fence or
 * on reconnecting: the caller then re-reads every partition from the new checkpoints. */
int64_t proj_generation(const proj *p);

#endif
