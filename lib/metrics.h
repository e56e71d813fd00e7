/*
 * metrics.h - a registry of Prometheus metrics (counters, gauges, histograms, with
 * labels) and the HTTP endpoint that serves them (libmicrohttpd): GET /metrics in the
 * text exposition format 0.0.4, GET /healthz and GET /readyz. Shared by both daemons.
 * Updating a series is lock-free (atomic operations only); creating a series or a metric
 * and rendering take the registry's mutex. Series are never freed before the registry.
 */
#ifndef BK_METRICS_H
#define BK_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bk_err.h"

typedef struct bk_metrics bk_metrics; /* opaque: the registry */
typedef struct bk_metric bk_metric;   /* opaque: one metric family (name, type, labels) */
typedef struct bk_series bk_series;   /* opaque: one label set of a family */
typedef struct bk_mgrid bk_mgrid;     /* opaque: a dense counter array over small indexes */

typedef enum bk_mtype { BK_MT_COUNTER, BK_MT_GAUGE, BK_MT_HISTOGRAM } bk_mtype;

#define BK_METRIC_MAX_LABELS  4
#define BK_METRIC_MAX_BUCKETS 24

/* A new empty registry; NULL on OOM. Free with bk_metrics_free (NULL ok), after
 * bk_metrics_serve_stop. */
bk_metrics *bk_metrics_new(void);
void bk_metrics_free(bk_metrics *r);

/*
 * Add a family. `labels`: comma-separated label names ("type,outcome,code") or NULL;
 * `bounds`: the histogram's upper bounds, ascending (the +Inf bucket is implied), NULL
 * for the other types. name and help are copied. Returns the family (owned by the
 * registry) or NULL on OOM or a bad argument. Thread-safe.
 */
bk_metric *bk_metrics_add(bk_metrics *r, bk_mtype type, const char *name, const char *help,
			  const char *labels, const double *bounds, size_t nbounds);

/*
 * The series of family m with these label values (as many as the family has labels;
 * NULL for none), created on first use. Stable pointer, owned by the registry. NULL on
 * OOM or when m is NULL (every update below accepts NULL and does nothing). Thread-safe;
 * takes the mutex: look series up once, outside hot paths.
 */
bk_series *bk_metric_with(bk_metric *m, const char *const *values);

/* Counters: add n. Gauges: add n. Lock-free. */
void bk_series_add(bk_series *s, uint64_t n);
static inline void bk_series_inc(bk_series *s)
{
	bk_series_add(s, 1);
}
/* Counters mirrored from a program's own totals: store the total (never decrease it). */
void bk_series_store(bk_series *s, uint64_t total);
/* Gauges: set the value. Lock-free. */
void bk_series_set(bk_series *s, double v);
/* Histograms: one observation. Lock-free. */
void bk_series_observe(bk_series *s, double v);
/* A hidden series is left out of /metrics (a partition revoked from this instance). */
void bk_series_hide(bk_series *s, bool hidden);

/*
 * A dense grid of counters of family m (a counter with ndims labels) indexed by small
 * integers, one dimension per label, sizes[d] values each; name(d, i) gives the label
 * value of index i in dimension d (a static string). Only non-zero cells are rendered.
 * For per-command hot paths: bk_mgrid_inc is one atomic increment. Owned by the
 * registry; NULL on OOM.
 */
typedef const char *(*bk_mgrid_name_fn)(int dim, int idx);
bk_mgrid *bk_metric_grid(bk_metric *m, int ndims, const int *sizes, bk_mgrid_name_fn name);
/* Increment cell (i, j, k) (unused dimensions 0); out-of-range indexes count in the last
 * cell of their dimension. NULL g: nothing. */
void bk_mgrid_inc3(bk_mgrid *g, int i, int j, int k);

/*
 * A shadow of grid g: the same shape, never rendered, for counts held back until they are
 * final (a batch's, until it commits). bk_mgrid_fold adds its cells into g and zeroes
 * them; bk_mgrid_clear drops them. The caller owns it: bk_mgrid_free (NULL ok). NULL on
 * OOM or when g is NULL. Fold and clear are for one thread at a time per shadow.
 */
bk_mgrid *bk_mgrid_shadow(const bk_mgrid *g);
void bk_mgrid_fold(bk_mgrid *into, bk_mgrid *shadow);
void bk_mgrid_clear(bk_mgrid *shadow);
void bk_mgrid_free(bk_mgrid *shadow);

/* Standard bucket layouts. */
extern const double bk_metric_seconds_buckets[]; /* 0.0005 .. 60 s */
extern const size_t bk_metric_seconds_nbuckets;
extern const double bk_metric_size_buckets[]; /* 1 .. 100000 */
extern const size_t bk_metric_size_nbuckets;

/* The whole registry in the text exposition format (version 0.0.4). Returns a
 * NUL-terminated buffer the caller frees, or NULL on OOM; *ret_len its length. */
char *bk_metrics_render(bk_metrics *r, size_t *ret_len);

/*
 * Liveness: the main loop calls bk_metrics_heartbeat now and then (lock-free); /healthz
 * answers 503 once the last beat is older than stale_s seconds (set at serve time).
 * Readiness: ready(opaque, why, whysz) is called by /readyz on the server's thread; it
 * must only read atomics; true → 200 "ready", false → 503 with why.
 */
void bk_metrics_heartbeat(bk_metrics *r);
typedef bool (*bk_ready_fn)(void *opaque, char *why, size_t whysz);

/*
 * Serve r on addr ("HOST:PORT"; PORT 0 picks one) on libmicrohttpd's own thread.
 * ret_port gets the bound port. 0, or -1 with errstr (bad address, bind failed).
 */
int bk_metrics_serve(bk_metrics *r, const char *addr, int stale_s, bk_ready_fn ready,
		     void *ready_opaque, int *ret_port, char *errstr,
		     size_t errstr_size) BK_MUSTCHECK;
/* Stop the server (NULL or not serving: nothing). */
void bk_metrics_serve_stop(bk_metrics *r);

#endif
