/*
 * gen.h - a seeded generator of realistic command streams (RTB, IB, INVITE orders, cards,
 * cancellations, disputes, resent duplicates, invalid commands) as msgpack, each command
 * with the outcome the engine must give it. Pure (no I/O, clock or globals): the same
 * options give the same bytes. Used by bench_core, `bookingctl gen` and the tests.
 */
#ifndef BK_GEN_H
#define BK_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_decide.h"
#include "bk_err.h"

typedef struct bk_gen bk_gen; /* opaque */

/* 2026-11-01T00:00:00Z, the default start of the stream's clock. */
#define BK_GEN_START_DEFAULT (INT64_C(1793491200) * INT64_C(1000000))
#define BK_GEN_MAX_ORDERS    50000000u

typedef struct bk_gen_opts {
	uint32_t orders; /* orders to generate, 1..BK_GEN_MAX_ORDERS (~7.3 commands each) */
	uint64_t seed;	 /* PRNG seed; ids are a function of it too */
	uint32_t window; /* orders in flight at once, interleaved (>= 1; capped at orders) */
	/* The noise, in per mille (0..1000): */
	uint32_t dup_per_mille;		/* an accepted command is resent 0-2 steps later */
	uint32_t wrong_actor_per_mille; /* a copy from another buyer/provider precedes a step */
	uint32_t stale_per_mille;	/* else a copy with a stale expected_version does */
	/* The stream's clock at the first command (microseconds since the epoch); it
	 * advances 1-2 s per command. Orders take place 20-79 days after its UTC day, at
	 * 12:00 UTC (so the local weekday of every zone used is the UTC weekday). */
	int64_t start_us;
} bk_gen_opts;

/* The defaults (those of bench_core): 1000 orders, seed 1, window 4096, duplicates 32,
 * wrong actor 14, stale 12 per mille, start BK_GEN_START_DEFAULT. */
void bk_gen_opts_default(bk_gen_opts *ret);

/* What a command is in the plan. */
typedef enum bk_gen_kind {
	BK_GEN_BIND,	    /* profile.bind of a provider's profile, before its rules */
	BK_GEN_RULE,	    /* autoaccept.set of a provider, before the orders */
	BK_GEN_PLANNED,	    /* a step of an order's story */
	BK_GEN_DUPLICATE,   /* an earlier command of the order resent: same id, same bytes */
	BK_GEN_WRONG_ACTOR, /* a step's copy (new id) from a user who is not the party */
	BK_GEN_STALE,	    /* a step's copy (new id) with an expected_version below the order's */
	BK_GEN__COUNT
} bk_gen_kind;

const char *bk_gen_kind_name(bk_gen_kind k); /* "rule", "planned"...; never NULL */

/* One generated command. Pointers stay valid until the next bk_gen_next or bk_gen_free
 * on the same generator; the generator owns them. */
typedef struct bk_gen_cmd {
	const void *bytes; /* the command as a msgpack map (core/bk_codec.h shape) */
	size_t len;
	const char *key; /* order_id (profile.bind, autoaccept.set: the service profile id): the
			    partition key */
	uint64_t index;	 /* position in the stream, from 0 */
	bk_gen_kind kind;
	bk_outcome expect;  /* the planned outcome */
	bk_err expect_code; /* BK_E_OK unless expect is BK_REJECTED: the planned code */
} bk_gen_cmd;

/* What was planned so far (final once bk_gen_next returned 0). */
typedef struct bk_gen_stats {
	uint64_t commands;		     /* emitted so far */
	uint64_t rtb, ib, invite, abandoned; /* orders planned, by story */
	uint64_t binds;			     /* profile.bind commands */
	uint64_t rules;			     /* autoaccept.set commands */
	uint64_t planned;		     /* story steps, including the planned rejections */
	uint64_t duplicates, wrong_actor, stale;
} bk_gen_stats;

/*
 * A generator for opts. Returns NULL when an option is out of range (errstr says which)
 * or when out of memory; the caller frees the result with bk_gen_free. Memory grows with
 * opts->window and the number of providers and buyers (orders / 20, orders / 3), not
 * with the length of the stream.
 */
bk_gen *bk_gen_new(const bk_gen_opts *opts, char *errstr, size_t errstr_size) BK_MUSTCHECK;
void bk_gen_free(bk_gen *g); /* NULL ok */

/*
 * The next command: 1 with *ret filled, 0 at the end of the stream (*ret untouched), -1
 * when out of memory (errstr; the generator is then unusable except for bk_gen_free).
 * Not thread-safe: one generator per thread.
 */
int bk_gen_next(bk_gen *g, bk_gen_cmd *ret, char *errstr, size_t errstr_size) BK_MUSTCHECK;

void bk_gen_stats_get(const bk_gen *g, bk_gen_stats *ret);

#endif
