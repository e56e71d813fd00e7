/*
 * proj_db.h - the projector's PostgreSQL side: writing a batch's row images (COPY into
 * staging tables + INSERT/UPDATE, or pipelined prepared statements), and the bookkeeping
 * queries (order heads, quarantine, forks, checkpoints, auto-accept rules).
 * Every function runs on the caller's connection and transaction; none begins or ends one.
 * Failures come back as -1 with errstr; *ret_poison says whether the data was at fault
 * (constraint violation, bad value, a row to update that does not exist) rather than the
 * connection or the server.
 */
#ifndef PROJ_DB_H
#define PROJ_DB_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "bk_chain.h"
#include "bk_rules.h"
#include "proj_plan.h"
#include "proj_rows.h"

typedef enum pdb_path {
	PDB_COPY,     /* COPY into temp staging tables, then one INSERT and one UPDATE per table */
	PDB_PIPELINE, /* one prepared INSERT or UPDATE per row, pipelined (libpq pipeline mode) */
} pdb_path;

/*
 * Where the writer writes: the live read model (pdb_live: schemas booking, ord,
 * booking_proj), or the same tables in schemas named with a suffix (rebuild's shadow
 * schemas booking_rb, ord_rb, booking_proj_rb). One writer for both: the statements are
 * the live ones with the schema names mapped (pdb_map_names). NULL means pdb_live.
 */
typedef struct pdb_target {
	const char *sfx; /* "" for the live model */
} pdb_target;
extern const pdb_target pdb_live;

/* sql with the schema names booking, ord and booking_proj rewritten to name + sfx where
 * they name a schema (followed by '.', or right after "schema" / "exists"). malloc'd;
 * NULL on out of memory. */
char *pdb_map_names(const char *sql, const char *sfx);

/* Set a new connection up for a target: staging tables and prepared statements. 0 or -1
 * (errstr). */
int pdb_setup(PGconn *c, const pdb_target *tg, char *err, size_t errsz) BK_MUSTCHECK;

/* Write every image of s into the target, then recompute the dirty price snapshots. */
int pdb_write(PGconn *c, const pdb_target *tg, const pr_store *s, pdb_path path, bool *ret_poison,
	      char *err, size_t errsz) BK_MUSTCHECK;

/*
 * The report row of a planned item that is not applied, with its log line: a rejected
 * record (booking_proj.rejected), a fork (booking_proj.fork), a quarantined or held event
 * (booking_proj.quarantine, status held). Applied and duplicate items and retried rows
 * (qid) write nothing. topic: the item's topic name; sb: scratch. 0 or -1.
 */
int pdb_report_item(PGconn *c, const pdb_target *tg, const char *topic, const pp_item *it,
		    msgpack_sbuffer *sb, char *err, size_t errsz) BK_MUSTCHECK;

/* Empty the staging tables (between two pdb_write calls in one transaction). */
int pdb_clear_stage(PGconn *c, char *err, size_t errsz) BK_MUSTCHECK;

/* True when a failed result is the data's fault (SQLSTATE classes 22 and 23). */
bool pdb_is_poison(const PGresult *res);

/* A PostgreSQL text[] literal of n strings, malloc'd (caller frees); NULL on OOM. */
char *pdb_array(const char *const *v, size_t n);

/* What PostgreSQL holds about one order (its head for the reader rule). */
typedef struct pdb_head {
	int64_t seq; /* last applied seq, or the highest skipped one (quarantine skip) */
	uint8_t hash[BK_HASH_LEN];
	int status; /* bk_status, -1 when booking.order has no row */
	char buyer[80];
	char provider[80];
	char currency[8];
} pdb_head;

/* Heads of n orders, in one query; ret[i] for ids[i]. 0 or -1. */
int pdb_load_heads(PGconn *c, const char *const *ids, size_t n, pdb_head *ret, char *err,
		   size_t errsz) BK_MUSTCHECK;

/* Hash of the event at seq of an order (ret_found false when there is none). */
int pdb_hash_at(PGconn *c, const char *order_id, int64_t seq, uint8_t ret_hash[BK_HASH_LEN],
		bool *ret_found, char *err, size_t errsz) BK_MUSTCHECK;

/* Lock the checkpoint rows of (topic, partitions) and return their next offsets (-1 when
 * a partition has none). */
int pdb_checkpoints(PGconn *c, const char *topic, const int32_t *parts, size_t n, bool lock,
		    int64_t *ret_next, char *err, size_t errsz) BK_MUSTCHECK;
int pdb_checkpoint_set(PGconn *c, const char *topic, int32_t part, int64_t next, char *err,
		       size_t errsz) BK_MUSTCHECK;
/* pdb_checkpoint_set for n partitions of a topic in one statement. */
int pdb_checkpoints_set(PGconn *c, const pdb_target *tg, const char *topic, const int32_t *parts,
			const int64_t *next, size_t n, char *err, size_t errsz) BK_MUSTCHECK;

/*
 * The read model's generation: the highest in booking_proj.model, the table every rebuild's
 * swap brings along with a generation one above the replaced model's (docs/rebuild.md);
 * 0 when the table is absent (a model never rebuilt). *io_present tells whether the table
 * was there at this connection's last call: when true, one statement reads the
 * generation (a table dropped since is an error); when false, the catalog is asked first
 * (to_regclass, no error per call while it is absent) and the generation read only when
 * the table has appeared. *io_present is updated. 0 or -1 (errstr).
 */
int pdb_model_generation(PGconn *c, bool *io_present, int64_t *ret_gen, char *err,
			 size_t errsz) BK_MUSTCHECK;

/* Replace every rule of a service profile (p->n == 0: delete them). */
int pdb_rules_put(PGconn *c, const pdb_target *tg, const char *sp_id, const bk_profile_rules *p,
		  char *err, size_t errsz) BK_MUSTCHECK;

/*
 * A rules record (key: the service profile id; value: its rules, empty: none) into the
 * target. A record without a usable key or that does not decode is logged and skipped
 * (1). 0 written, -1 PostgreSQL failed (err).
 */
int pdb_rules_record(PGconn *c, const pdb_target *tg, const char *topic, int32_t partition,
		     int64_t offset, const void *key, size_t key_len, const void *value, size_t len,
		     char *err, size_t errsz) BK_MUSTCHECK;

#endif
