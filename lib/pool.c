/*
 * pool.c - the thread pool of pool.h: workers sleep on a condition variable between
 * runs, take items with an atomic counter during one, and report on another condition
 * variable when the run has none left.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

struct bk_pool {
	pthread_mutex_t mu;
	pthread_cond_t go;   /* a new run (or stop) for the workers */
	pthread_cond_t done; /* a worker finished its part of the run */
	pthread_t *threads;
	int nthreads;
	bool stop;
	uint64_t run;	    /* run number, bumped per run */
	int finished;	    /* workers done with the current run */
	bk_pool_fn *fn;	    /* the current run's job */
	void *arg;	    /* ... its argument */
	size_t n;	    /* ... and its number of items */
	atomic_size_t next; /* next item to take */
};

/* A worker thread and its number (1..nthreads; the caller of a run is 0). */
typedef struct pool_thread {
	bk_pool *pl;
	int worker;
} pool_thread;

/* Take items of the current run until none is left. */
static void work(bk_pool *pl, bk_pool_fn *fn, void *arg, size_t n, int worker)
{
	for (;;) {
		size_t i = atomic_fetch_add(&pl->next, 1);
		if (i >= n)
			return;
		fn(arg, i, worker);
	}
}

static void *worker(void *varg)
{
	pool_thread *pt = varg;
	bk_pool *pl = pt->pl;
	uint64_t seen = 0;
	pthread_mutex_lock(&pl->mu);
	for (;;) {
		while (!pl->stop && pl->run == seen)
			pthread_cond_wait(&pl->go, &pl->mu);
		if (pl->stop)
			break;
		seen = pl->run;
		bk_pool_fn *fn = pl->fn;
		void *arg = pl->arg;
		size_t n = pl->n;
		pthread_mutex_unlock(&pl->mu);
		work(pl, fn, arg, n, pt->worker);
		pthread_mutex_lock(&pl->mu);
		pl->finished++;
		pthread_cond_signal(&pl->done);
	}
	pthread_mutex_unlock(&pl->mu);
	free(pt);
	return NULL;
}

bk_pool *bk_pool_new(int nthreads, char *err, size_t errsz)
{
	bk_pool *pl = calloc(1, sizeof(*pl));
	if (!pl) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&pl->mu, NULL);
	pthread_cond_init(&pl->go, NULL);
	pthread_cond_init(&pl->done, NULL);
	atomic_init(&pl->next, 0);
	if (nthreads > 0 && !(pl->threads = calloc((size_t)nthreads, sizeof(*pl->threads)))) {
		bk_pool_free(pl);
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	for (int i = 0; i < nthreads; i++) {
		pool_thread *pt = malloc(sizeof(*pt));
		int e = pt ? 0 : ENOMEM;
		if (pt) {
			*pt = (pool_thread){pl, i + 1};
			if ((e = pthread_create(&pl->threads[i], NULL, worker, pt)))
				free(pt);
		}
		if (e) {
			snprintf(err, errsz, "pthread_create: %s", strerror(e));
			bk_pool_free(pl);
			return NULL;
		}
		pl->nthreads++;
	}
	return pl;
}

void bk_pool_free(bk_pool *pl)
{
	if (!pl)
		return;
	pthread_mutex_lock(&pl->mu);
	pl->stop = true;
	pthread_cond_broadcast(&pl->go);
	pthread_mutex_unlock(&pl->mu);
	for (int i = 0; i < pl->nthreads; i++)
		pthread_join(pl->threads[i], NULL);
	free(pl->threads);
	pthread_cond_destroy(&pl->done);
	pthread_cond_destroy(&pl->go);
	pthread_mutex_destroy(&pl->mu);
	free(pl);
}

int bk_pool_threads(const bk_pool *pl)
{
	return pl ? pl->nthreads : 0;
}

void bk_pool_run(bk_pool *pl, bk_pool_fn *fn, void *arg, size_t n)
{
	/* one item, or no workers: not worth a wake-up */
	if (!pl || pl->nthreads == 0 || n < 2) {
		for (size_t i = 0; i < n; i++)
			fn(arg, i, 0);
		return;
	}
	pthread_mutex_lock(&pl->mu);
	pl->fn = fn;
	pl->arg = arg;
	pl->n = n;
	atomic_store(&pl->next, 0);
	pl->finished = 0;
	pl->run++;
	pthread_cond_broadcast(&pl->go);
	pthread_mutex_unlock(&pl->mu);
	work(pl, fn, arg, n, 0); /* the calling thread takes its share */
	pthread_mutex_lock(&pl->mu);
	while (pl->finished < pl->nthreads)
		pthread_cond_wait(&pl->done, &pl->mu);
	pthread_mutex_unlock(&pl->mu);
}
