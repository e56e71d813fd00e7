/*
 * cp.h - booking-commands internals: the processor state shared by its modules
 * (main loop and rebalances in main.c, restore in restore.c, command handling, batches
 * and transactions in process.c, the expiry sweep in sweep.c, record checks on a thread
 * pool, lib/pool.c). One thread owns it all; during a run of checks the pool's threads
 * only read the options, the keyring and the partition count, and each writes only its
 * own cp_adm elements.
 * Invariant: a partition's commands are handled only once its restore has finished.
 */
#ifndef CP_H
#define CP_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "bk_auth.h"
#include "bk_codec.h"
#include "bk_engine.h"
#include "bk_seal.h"
#include "bk_snap.h"
#include "kconf.h"
#include "metrics.h"
#include "pool.h"
#include "tz.h"

#define CP_EXIT_OK    0
#define CP_EXIT_FATAL 1 /* a fatal Kafka or internal error after start */
#define CP_EXIT_USAGE 2 /* bad configuration, mismatched partitions, lost history */

typedef struct cp_opts {
	const char *keyring_path;
	bool allow_unsigned;
	int batch_commands;	 /* close a batch after this many commands */
	int batch_ms;		 /* ... or this long after its first command */
	int batch_idle_ms;	 /* ... or when no command arrived for this long; 0: off */
	bool no_group_commit;	 /* off: a batch also closes when no command is waiting */
	int sweep_interval_ms;	 /* 0: no sweep */
	int64_t expiring_lead_s; /* card.<t>.expiring this long before expires_at */
	int64_t archive_after_s; /* archive settled orders this long after their last event
				  * (the dispute and tip window); 0: never */
	const char *group_id;
	const char *txn_prefix;
	bool no_txn;
	int64_t clock_offset_s;		 /* development: added to the wall clock */
	int timeout_ms;			 /* Kafka calls (metadata, commit, restore) */
	int admit_threads;		 /* threads checking records besides the main one */
	const char *writer_key_path;	 /* --writer-key (or $BOOKING_WRITER_KEY) */
	const char *writer_key_id;	 /* --writer-key-id (or $BOOKING_WRITER_KEY_ID) */
	const char *writer_keyring_path; /* --writer-keyring (or $BOOKING_WRITER_KEYRING) */
	int snapshot_interval_ms;	 /* checkpoints (snapshot.c); 0: none written or read */
} cp_opts;

/* One partition of booking.commands and its engine. */
typedef struct cp_part {
	bool assigned;	     /* ours now */
	bool restored;	     /* restore finished: commands may be handled */
	bk_engine *eng;	     /* owned; shares cp.rules */
	int64_t next_offset; /* the next commands offset to handle */
	int64_t batch_first; /* first offset handled in the open batch, -1 */
	int64_t last_result; /* unused since seals (kept -1) */
	int64_t last_event;  /* highest src-offset of a sealed events record at restore */
	/* seals: the high watermarks of the events and results partitions at the last
	 * restore (a seal's `base`), and the seal the restore resumed from */
	int64_t base_events, base_results;
	int64_t last_seal;   /* offset of the last valid events seal found, -1 */
	int64_t prev_result; /* src-offset of the last result written (header prev-src-offset) */
	/* snapshots (snapshot.c): the set digest of the partition's latest snapshots on the
	 * log (each order's bk_order.snap_version), whether every order must be written
	 * again at the next checkpoint (the digest is then rebuilt), and the commands
	 * offset of the last checkpoint written */
	bk_snap_sum snap_sum;
	bool resnap;
	int64_t ck_next;
	int64_t own_seal_end; /* offset after this instance's last events seal, -1 */
	/* archiving (snapshot.c, issue #11): the digest of the fingerprints the partition's
	 * archived records list up to its last checkpoint (and the one being written); what
	 * was archived since (fingerprints, and the NUL-separated ids of the orders that had
	 * a snapshot to tombstone), kept until a checkpoint succeeds; whether the next
	 * archived record must list every archived order (after a restore that read the
	 * log, or when the bookkeeping ran out of memory) */
	bk_snap_sum arch_sum, arch_sum_next;
	bk_idset arch_new;
	msgpack_sbuffer tomb;
	bool arch_full;
} cp_part;

/* A result waiting for the batch's events to be acknowledged (owned by the batch). Its
 * bytes are in the batch's chunks (cp_chunk): the key (order id), the value, the command
 * id. */
typedef struct cp_held {
	uint64_t gate; /* produced after gated record number `gate` (1-based; 0: none) */
	int32_t partition;
	int64_t src_offset, prev_src_offset;
	const char *at; /* in the batch's chunks */
	uint32_t key_n, val_n, cid_n;
} cp_held;

/* A command record on its way in: the record and the outcome of its checks (admit.c). */
typedef struct cp_adm {
	rd_kafka_message_t *m; /* owned by the run loop */
	bool skip;	       /* not this instance's to handle now: neither checked nor handled */
	bool dlq;	       /* failed a check; why says which */
	bool has_zone;	       /* z is initialised (kept across runs, cleared after each) */
	bool checked;	       /* cp_admit ran on m */
	bool unsigned_ok;      /* accepted without a signature (--allow-unsigned) */
	msgpack_zone z;	       /* cmd's memory */
	bk_command cmd;
	char why[512];
	char cid[BK_ID_MAX]; /* dead-lettered: the command id read from the bytes, or "" */
	/* decided ahead on the pool (cp_decide_run): the engine's return, its decision (owned;
	 * cleared by cp_adm_done) and the order's version right after it */
	bool decided;
	int dec_rc;
	bk_decision d;
	int64_t version;
} cp_adm;

/* A record of the open batch that its seals will list: which topic (0 events, 1
 * results), where, and its digest; the offset comes with its delivery report. */
typedef struct cp_sealrec {
	uint8_t kind;
	int32_t partition;
	int64_t offset; /* -1 until acknowledged */
	uint8_t digest[BK_HASH_LEN];
} cp_sealrec;

/* Records taken from the consumer per run of checks (main.c). */
#define CP_RUN_MAX 256

typedef struct cp {
	cp_opts o;
	bk_kconf *kc;	      /* owned */
	rd_kafka_t *consumer; /* the group consumer of booking.commands */
	rd_kafka_t *producer; /* events, results, rules, dlq (transactional) */
	rd_kafka_t *reader;   /* restore: assign()-only, read_committed */
	rd_kafka_t *rules_rd; /* follows booking.rules between restores: assign()-only */
	char instance[17];    /* this process's id on its rules records (header writer-instance) */
	uint64_t n_rules_followed;
	rd_kafka_consumer_group_metadata_t *cgmd; /* owned */
	const char *topic[BK_TOPIC_COUNT];
	int nparts;		/* partitions of commands = events = results */
	int rules_parts;	/* partitions of booking.rules */
	int dlq_parts;		/* partitions of booking.dlq */
	cp_part *parts;		/* [nparts], owned */
	bk_ruleset *rules;	/* owned; shared by every engine */
	bk_keyring *kr;		/* owned; NULL with --allow-unsigned and no --keyring */
	bk_keyring *wkr;	/* owned: the writer keyring (seals and rules of every
				 * instance; this instance's key must be in it) */
	uint8_t wsk[BK_SK_LEN]; /* this instance's writer key */
	char wkid[64];		/* its key id */
	cp_sealrec *srec;	/* the open batch's sealed records */
	size_t n_srec, cap_srec;
	int64_t last_poll_us;	   /* monotonic: the group consumer's last poll */
	int session_timeout_ms;	   /* the group's session.timeout.ms */
	bk_tzdb *tz;		   /* owned */
	bk_pool *pool;		   /* owned: the checks' and deciders' threads */
	msgpack_sbuffer enc;	   /* reused: records being encoded */
	msgpack_sbuffer dscratch;  /* reused: the decider's scratch (bk_decide_ctx) */
	msgpack_sbuffer *wscratch; /* [pool threads + 1]: each worker's; [0] is &dscratch's twin */
	int n_wscratch;
	/* bumped by every rebalance and re-restore: records read before are stale */
	uint64_t generation;
	/* the open batch */
	bool txn_open;
	int batch_n;
	int64_t batch_start_us;	    /* monotonic */
	int64_t last_cmd_us;	    /* monotonic: when the batch's last command arrived */
	bool rerestore;		    /* a batch failed: restore every partition again */
	bool ever_assigned;	    /* the group has assigned this consumer partitions once */
	rd_kafka_resp_err_t dr_err; /* first delivery error of the batch */
	/* results of the open batch, held back until its events records are acknowledged:
	 * a result on the log then implies its command's events are on the log. The events,
	 * rules and DLQ records of a batch are "gated", numbered 1.. in produce order (the
	 * delivery report's opaque); a held result is produced, in order, once every gated
	 * record produced before it is acknowledged, so results stream out during the batch
	 * instead of waiting for its close. */
	struct cp_held *held;
	size_t n_held, cap_held;
	/* the bytes of the batch's events records and results, produced without a copy:
	 * chunks never move, and are reused only once the batch is committed or aborted
	 * and the producer holds no record (process.c: bytes_alloc, bytes_reset) */
	struct cp_chunk *chunks, *chunk_cur;
	size_t held_next;     /* held[0..held_next) are produced */
	uint32_t epoch;	      /* batch number: high half of a gated record's opaque */
	uint64_t gate_n;      /* gated records produced in this batch */
	uint64_t gate_prefix; /* records 1..gate_prefix are all acknowledged */
	uint8_t *gate_acked;  /* [gate_n]: acknowledged (delivery reports come in any order) */
	size_t cap_gate;
	/* counters for the log */
	uint64_t n_cmds, n_events, n_dlq, n_batches, n_aborts, n_checkpoints;
	/* where the run loop's time went (µs): waiting for records, checking them, handling
	 * them (deciding, producing, batch closes inside), closing batches */
	int64_t us_wait, us_check, us_handle, us_close;
	/* --allow-unsigned: commands accepted unsigned, in all and not yet reported */
	uint64_t n_unsigned, n_unsigned_unreported;
	/* what restores found (metrics): events records not applied for a fork, and invalid
	 * ones (bad hash or link, undecodable, bad seals, not applicable) */
	uint64_t n_restore_forks, n_restore_invalid;
	volatile sig_atomic_t *stop;
	int exit_code; /* set with *stop on fatal errors */
	/* --metrics-addr (main.c): the open batch's commands by type x outcome x code,
	 * folded into booking_commands_total when it commits; NULL when off */
	bk_mgrid *m_commands;
} cp;

/* Wall clock in microseconds, with --clock-offset. */
int64_t cp_now_us(const cp *c);
int64_t cp_mono_us(void);

/* Stop the daemon with an exit code (the first one wins). */
void cp_fatal(cp *c, int code);

/* Forget a partition's state (engine, offsets); not restored. */
void cp_part_reset(cp_part *p);

/* An unsigned command accepted under --allow-unsigned: a warn line for each of the first
 * CP_UNSIGNED_LOGGED, then counted for cp_report_unsigned. */
#define CP_UNSIGNED_LOGGED 10
void cp_note_unsigned(cp *c, const rd_kafka_message_t *m, const bk_command *cmd);
/* A warn line with the unsigned commands accepted since the last one, if any. */
void cp_report_unsigned(cp *c);

/* --- restore.c --- */
/*
 * Restore the partitions listed (indexes in ps[0..n)) from scratch: a new engine each,
 * the whole rules topic (signed records only) into a fresh shared ruleset, and each
 * events partition read from 0 to its end through the seal rule: only sealed records are
 * applied, and the partition resumes at the last valid seal's src_next (0 without one):
 * the state after the last sealed batch. Returns 0, or -1 with errstr (lost history,
 * Kafka unreachable, OOM); the caller stops the daemon then.
 */
int cp_restore(cp *c, const int32_t *ps, int n, char *errstr, size_t errstr_size) BK_MUSTCHECK;

/* Follow booking.rules (issue #11): other instances' rules records since the last restore
 * are applied to the shared ruleset, between runs of commands, on the main thread. Only
 * records signed by the writer keyring count; this process's own are skipped (it applied
 * them when it decided). */
void cp_follow_rules(cp *c);

/* --- admit.c --- */
/* Check a->m (thread-safe: reads only what does not change while running): sets a->dlq
 * and a->why, or a->cmd (in a->z). Release with cp_adm_done. */
void cp_admit(const cp *c, cp_adm *a);
/* After a record: clear a's memory for the next one (the zone is kept). */
void cp_adm_done(cp_adm *a);
/* At exit: free a's zone. */
void cp_adm_free(cp_adm *a);
/* cp_admit every element of adm[0..n) not marked skip, on the pool's threads and the
 * caller's; returns when all are done. */
void cp_admit_run(bk_pool *pl, const cp *c, cp_adm *adm, size_t n);

/* --- process.c --- */
/* Is this record one to handle now (assigned, restored partition; not handled yet)? */
bool cp_wants(const cp *c, const rd_kafka_message_t *m);
/*
 * Decide ahead, on the pool, the admitted records of a run that will be handled: one
 * pool item per partition, its records in order, each on its partition's engine (engines
 * share nothing but the ruleset, which only autoaccept.* commands change: a run holding
 * one is left to cp_handle_admitted). Marks each decided element; cp_handle_admitted
 * then only produces. A decided record is always handled or its batch fails and the
 * engines are restored from the log, so an engine never holds a decision not written.
 */
void cp_decide_run(cp *c, cp_adm *adm, size_t n);
/* Handle one admitted command record (cp_admit): dead-letter it, or decide and produce
 * its records into the open batch. 0, or -1 when fatal. Does not free a. */
int cp_handle_admitted(cp *c, cp_adm *a);
/* Handle an internal order.sweep of partition p's order (src-offset -1). */
int cp_handle_sweep(cp *c, int32_t p, const char *order_id, const char *target, int64_t now);
/* Close the open batch (commit the transaction, or flush). An abortable failure aborts,
 * restores every assigned partition again and seeks the consumer back. 0, or -1 when
 * fatal (cp_fatal was called). `lost`: the partitions were lost: abort, never commit. */
int cp_batch_close(cp *c, bool lost);
/* Free the held results (at exit). */
void cp_held_free(cp *c);
/* A delivery report: a record (opaque from this batch) was acknowledged at offset. */
void cp_gate_acked(cp *c, uintptr_t opaque, int64_t offset);
/* Can this instance still be sure it owns its partitions (assignment not lost, the
 * consumer polled within the session timeout)? Checked before every seal and sweep. */
bool cp_sure_owner(const cp *c);
/* Produce the held results whose gated records are all acknowledged. 0, or -1. */
int cp_release_ready(cp *c);
/* Seek the group consumer to the offsets in l; logs and returns -1 if any partition
 * failed (the caller stops: a partition left behind would skip commands). */
int cp_seek(cp *c, rd_kafka_topic_partition_list_t *l) BK_MUSTCHECK;
/* Restore all assigned partitions again and seek the consumer to their next offsets. */
int cp_rerestore_all(cp *c);
/* Is the open batch due (size or age)? */
bool cp_batch_due(const cp *c);

/* --- snapshot.c --- */
/*
 * A checkpoint (docs/design.md, "Snapshots and archiving"): with no batch open and this
 * instance sure it owns its partitions, for every restored partition with orders changed
 * since its last checkpoint (or commands handled since), one signed snapshot per changed
 * order, then a signed checkpoint record naming the events offset E they stand for (after
 * this instance's last events seal on the partition, or where its restore ended: every
 * record of its own below E is applied)
 * and the partition's src_next, in one transaction (flushed in order with --no-txn).
 * 0, or -1 when fatal; a failed checkpoint only makes the next one write every order.
 */
int cp_checkpoint(cp *c);
/* A delivery report: an events seal of this instance notes its partition's own_seal_end. */
void cp_seal_acked(cp *c, const rd_kafka_message_t *m);
/* The set digest of the engine's orders at their snap_version (after a restore). */
void cp_snap_sum_rebuild(cp_part *p);
/* Move what the engine archived since the last call into the partition's bookkeeping
 * for the next checkpoint; `live`: the orders' snapshots are still counted in snap_sum
 * (not after a restore, whose digest was rebuilt without them). */
void cp_archived_take(cp_part *p, bool live);
/* Free the archiving bookkeeping (cp_part_reset). */
void cp_archived_reset(cp_part *p);

/* --- sweep.c --- */
/* Issue order.sweep commands for every order with something due at `now`. */
int cp_sweep(cp *c, int64_t now);

#endif
