/*
 * admit.c - the checks a command record passes before its order's engine sees it (size,
 * content type, decode, signature, key and partition), and a small pool of threads that
 * runs them for a run of records at once. Ed25519 verification (~94 us a record on the
 * development machine) is most of a signed command's CPU, and nothing in it depends on
 * another record, so the pool spreads it over the cores.
 *
 * The pool also runs process.c's deciding of a run, one partition per item
 * (cp_decide_run): a partition's commands stay in order on one thread at a time.
 *
 * Ownership: the pool owns its threads. A run (cp_pool_run) borrows the caller's job;
 * each item is handled by exactly one thread (taken with an atomic counter), and the
 * caller reads the results only after every thread has finished the run (the mutex
 * orders those writes before the caller's reads). The checks read the processor's
 * options, keyring and partition count, which do not change while the pool runs.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp.h"
#include "log.h"

struct cp_pool {
	pthread_mutex_t mu;
	pthread_cond_t go;   /* a new run (or stop) for the workers */
	pthread_cond_t done; /* a worker finished its part of the run */
	pthread_t *threads;
	int nthreads;
	bool stop;
	uint64_t run;	    /* run number, bumped per run */
	int finished;	    /* workers done with the current run */
	cp_pool_fn *fn;	    /* the current run's job */
	void *arg;	    /* ... its argument */
	size_t n;	    /* ... and its number of items */
	atomic_size_t next; /* next item to take */
};

/* A worker thread and its number (1..nthreads; the caller of a run is 0). */
typedef struct pool_thread {
	cp_pool *pl;
	int worker;
} pool_thread;

/* A header's value; NULL when absent. */
static const void *hdr(const rd_kafka_message_t *m, const char *name, size_t *ret_n)
{
	rd_kafka_headers_t *h = NULL;
	const void *v = NULL;
	if (rd_kafka_message_headers(m, &h) || !h || rd_kafka_header_get_last(h, name, &v, ret_n))
		return NULL;
	return v;
}

/* The checks; 0 with a->cmd filled, or 1 with a->why (dead-letter). */
static int check(const cp *c, cp_adm *a)
{
	const rd_kafka_message_t *m = a->m;
	char err[256];
	if (!m->payload || m->len == 0) {
		snprintf(a->why, sizeof(a->why), "empty value");
		return 1;
	}
	if (m->len > BK_MAX_MESSAGE) {
		snprintf(a->why, sizeof(a->why), "oversized: %zu bytes, the limit is %u", m->len,
			 (unsigned)BK_MAX_MESSAGE);
		return 1;
	}
	size_t n = 0;
	const char *ct = hdr(m, "content-type", &n);
	bool json = false;
	/* media type only: "application/json; charset=utf-8" is JSON */
	for (size_t i = 0; ct && i < n; i++)
		if (ct[i] == ';' || ct[i] == ' ') {
			n = i;
			break;
		}
	if (ct && n == 16 && !memcmp(ct, "application/json", 16))
		json = true;
	else if (ct && !(n == 19 && !memcmp(ct, "application/msgpack", 19))) {
		snprintf(a->why, sizeof(a->why), "unsupported content-type \"%.*s\"",
			 (int)(n < 64 ? n : 64), ct);
		return 1;
	}
	if (bk_codec_command_decode(m->payload, m->len, json, false, &a->z, &a->cmd, err,
				    sizeof(err)) < 0) {
		snprintf(a->why, sizeof(a->why), "decode: %s", err);
		return 1;
	}
	size_t kn = 0, sn = 0;
	const char *kid = hdr(m, "key-id", &kn);
	const uint8_t *sig = hdr(m, "signature", &sn);
	if (!kid && !sig && c->o.allow_unsigned) {
		a->unsigned_ok = true; /* logged by the main thread (cp_note_unsigned) */
	} else if (!kid || !sig) {
		snprintf(a->why, sizeof(a->why),
			 "unsigned: the key-id and signature headers are required");
		return 1;
	} else if (!c->kr) {
		snprintf(a->why, sizeof(a->why),
			 "auth: no keyring loaded (--keyring) to verify key %.*s",
			 (int)(kn < 80 ? kn : 80), kid);
		return 1;
	} else if (bk_auth_verify(c->kr, kid, kn, sig, sn, m->payload, m->len,
				  (bk_role)a->cmd.actor_role, bk_cmd_name((bk_cmd_type)a->cmd.type),
				  err, sizeof(err)) < 0) {
		snprintf(a->why, sizeof(a->why), "auth: %s", err);
		return 1;
	}
	size_t on = strlen(a->cmd.order_id);
	if (!m->key || m->key_len != on || memcmp(m->key, a->cmd.order_id, on) != 0) {
		snprintf(a->why, sizeof(a->why), "key: the record key must be the order_id (%s)",
			 a->cmd.order_id);
		return 1;
	}
	int32_t want =
	    rd_kafka_msg_partitioner_murmur2(NULL, m->key, m->key_len, c->nparts, NULL, NULL);
	if (want != m->partition) {
		snprintf(a->why, sizeof(a->why),
			 "partition: key %s belongs on partition %d (murmur2_random), not %d",
			 a->cmd.order_id, (int)want, (int)m->partition);
		return 1;
	}
	return 0;
}

void cp_admit(const cp *c, cp_adm *a)
{
	a->why[0] = '\0';
	a->checked = true;
	a->unsigned_ok = false;
	if (!a->has_zone && msgpack_zone_init(&a->z, 32768))
		a->has_zone = true;
	if (!a->has_zone) {
		snprintf(a->why, sizeof(a->why), "internal: out of memory");
		a->dlq = true;
		return;
	}
	a->dlq = check(c, a) != 0;
}

void cp_adm_done(cp_adm *a)
{
	if (a->decided)
		bk_decision_clear(&a->d);
	a->decided = false;
	if (a->has_zone)
		msgpack_zone_clear(&a->z);
	a->checked = false;
}

void cp_adm_free(cp_adm *a)
{
	if (a->has_zone)
		msgpack_zone_destroy(&a->z);
	a->has_zone = false;
}

/* Take items of the current run until none is left. */
static void work(cp_pool *pl, cp_pool_fn *fn, void *arg, size_t n, int worker)
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
	cp_pool *pl = pt->pl;
	uint64_t seen = 0;
	pthread_mutex_lock(&pl->mu);
	for (;;) {
		while (!pl->stop && pl->run == seen)
			pthread_cond_wait(&pl->go, &pl->mu);
		if (pl->stop)
			break;
		seen = pl->run;
		cp_pool_fn *fn = pl->fn;
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

cp_pool *cp_pool_new(int nthreads, char *err, size_t errsz)
{
	cp_pool *pl = calloc(1, sizeof(*pl));
	if (!pl) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&pl->mu, NULL);
	pthread_cond_init(&pl->go, NULL);
	pthread_cond_init(&pl->done, NULL);
	atomic_init(&pl->next, 0);
	if (nthreads > 0 && !(pl->threads = calloc((size_t)nthreads, sizeof(*pl->threads)))) {
		cp_pool_free(pl);
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
			cp_pool_free(pl);
			return NULL;
		}
		pl->nthreads++;
	}
	return pl;
}

void cp_pool_free(cp_pool *pl)
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

int cp_pool_threads(const cp_pool *pl)
{
	return pl ? pl->nthreads : 0;
}

void cp_pool_run(cp_pool *pl, cp_pool_fn *fn, void *arg, size_t n)
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

typedef struct admit_job {
	const cp *c;
	cp_adm *adm;
} admit_job;

static void admit_item(void *arg, size_t i, int worker)
{
	admit_job *j = arg;
	(void)worker;
	if (!j->adm[i].skip)
		cp_admit(j->c, &j->adm[i]);
}

void cp_admit_run(cp_pool *pl, const cp *c, cp_adm *adm, size_t n)
{
	admit_job j = {c, adm};
	cp_pool_run(pl, admit_item, &j, n);
}
