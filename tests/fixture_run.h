/*
 * fixture_run.h - runs a fixture (JSON lines of commands) through the engine, the way
 * the processor does, and summarises the resulting orders as JSON for golden files.
 * Shared by test_fixtures and the decider tests.
 */
#ifndef FIXTURE_RUN_H
#define FIXTURE_RUN_H

#include <jansson.h>
#include <stdio.h>

#include "bk_engine.h"

typedef struct fx_line_result {
	int line;
	const char *expect_status; /* from the line's "expect", NULL when none */
	const char *expect_code;
	bk_outcome outcome;
	bk_err code;
	char message[256];
} fx_line_result;

/* A JSON summary of one order (status, version, money, cards, requests...). New reference. */
json_t *fx_order_summary(const bk_order *o);
/* Summaries of every order of the engine, keyed by order id. New reference. */
json_t *fx_engine_summary(const bk_engine *e);

/*
 * Run the JSON-lines file through engine e. For every line whose outcome differs from
 * its "expect" ({"status": ..., "code": ...}), a description is appended to `fails`
 * (a JSON array). Returns the number of lines run, -1 on a file or decode error
 * (message in err).
 */
int fx_run_file(bk_engine *e, const char *path, json_t *fails, char *err, size_t errsz);

/* The same, handing each events record (as the processor would produce it) to cb. */
typedef int (*fx_record_fn)(void *opaque, const bk_record *r, const void *bytes, size_t n);
int fx_run_file_cb(bk_engine *e, const char *path, json_t *fails, fx_record_fn cb, void *opaque,
		   char *err, size_t errsz);

/* True when every key of `want` (recursively for objects) equals the same key of `got`. */
int fx_subset_diff(const json_t *want, const json_t *got, const char *path, json_t *diffs);

#endif
