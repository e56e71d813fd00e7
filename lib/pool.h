/*
 * pool.h - a small pool of threads that runs a job over items 0..n-1 and returns when
 * every item is done; the calling thread takes items too. Used by the command processor
 * (checks and deciding of a run) and by `bookingctl replay` (decoding and formatting a
 * batch of records).
 *
 * Ownership: the pool owns its threads. A run borrows the caller's job and argument;
 * each item is handled by exactly one thread (taken with an atomic counter), and the
 * caller reads the results only after every thread has finished the run (the pool's
 * mutex orders the workers' writes before the caller's reads).
 */
#ifndef BK_POOL_H
#define BK_POOL_H

#include <stddef.h>

typedef struct bk_pool bk_pool;

/* A pool of n threads (0: none, the caller runs every item). NULL with err on failure. */
bk_pool *bk_pool_new(int nthreads, char *err, size_t errsz);
/* Stops and joins the threads; NULL is fine. */
void bk_pool_free(bk_pool *pl);
/* A job of a pool run: item i of the run, on worker `worker` (0: the caller, 1..threads). */
typedef void bk_pool_fn(void *arg, size_t i, int worker);
/* Run fn on items 0..n-1 on the pool's threads and the caller's; returns when all are
 * done. One run at a time, from one thread. */
void bk_pool_run(bk_pool *pl, bk_pool_fn *fn, void *arg, size_t n);
/* The pool's threads, not counting the caller (0 for NULL). */
int bk_pool_threads(const bk_pool *pl);

#endif
