/*
 * metrics.c - the metrics registry and its HTTP endpoint (metrics.h). Families and
 * series are appended under the registry's mutex and never removed, so a series pointer
 * stays valid; values are atomics, updated without the mutex and read by the renderer.
 */
#include "metrics.h"

#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"

const double bk_metric_seconds_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					    0.25,   0.5,   1,	   2.5,	  5,	10,    30,   60};
const size_t bk_metric_seconds_nbuckets =
    sizeof(bk_metric_seconds_buckets) / sizeof(bk_metric_seconds_buckets[0]);
const double bk_metric_size_buckets[] = {1,    5,    10,   50,	  100,	 250,	500,
					 1000, 2000, 5000, 10000, 20000, 50000, 100000};
const size_t bk_metric_size_nbuckets =
    sizeof(bk_metric_size_buckets) / sizeof(bk_metric_size_buckets[0]);

struct bk_series {
	struct bk_series *next;
	_Atomic uint64_t v;	   /* counter value, or a gauge's double bits */
	_Atomic uint64_t sum;	   /* histogram: the double bits of the sum */
	_Atomic uint64_t *buckets; /* histogram: [nbounds + 1], not cumulative */
	atomic_bool hidden;
	const bk_metric *m;
	char *values[BK_METRIC_MAX_LABELS];
};

struct bk_mgrid {
	int ndims;
	int sizes[3];
	bk_mgrid_name_fn name;
	_Atomic uint64_t cells[];
};

struct bk_metric {
	struct bk_metric *next;
	bk_metrics *r;
	bk_mtype type;
	char *name, *help;
	int nlabels;
	char *labels[BK_METRIC_MAX_LABELS];
	size_t nbounds;
	double bounds[BK_METRIC_MAX_BUCKETS];
	bk_series *series, **series_tail;
	bk_mgrid *grid;
};

struct bk_metrics {
	pthread_mutex_t mu;
	bk_metric *head, **tail;
	_Atomic int64_t beat_us; /* monotonic µs of the last heartbeat */
	struct MHD_Daemon *httpd;
	int stale_s;
	bk_ready_fn ready;
	void *ready_opaque;
};

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t dbits(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof(u));
	return u;
}

static double bitsd(uint64_t u)
{
	double d;
	memcpy(&d, &u, sizeof(d));
	return d;
}

bk_metrics *bk_metrics_new(void)
{
	bk_metrics *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	r->tail = &r->head;
	atomic_store(&r->beat_us, mono_us());
	return r;
}

static void series_free(bk_series *s)
{
	for (int i = 0; i < BK_METRIC_MAX_LABELS; i++)
		free(s->values[i]);
	free(s->buckets);
	free(s);
}

void bk_metrics_free(bk_metrics *r)
{
	if (!r)
		return;
	bk_metrics_serve_stop(r);
	for (bk_metric *m = r->head, *mn; m; m = mn) {
		mn = m->next;
		for (bk_series *s = m->series, *sn; s; s = sn) {
			sn = s->next;
			series_free(s);
		}
		for (int i = 0; i < m->nlabels; i++)
			free(m->labels[i]);
		free(m->grid);
		free(m->name);
		free(m->help);
		free(m);
	}
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static void metric_free(bk_metric *m)
{
	for (int i = 0; i < m->nlabels; i++)
		free(m->labels[i]);
	free(m->name);
	free(m->help);
	free(m);
}

bk_metric *bk_metrics_add(bk_metrics *r, bk_mtype type, const char *name, const char *help,
			  const char *labels, const double *bounds, size_t nbounds)
{
	if (!r || !name || !help || nbounds > BK_METRIC_MAX_BUCKETS)
		return NULL;
	if (type == BK_MT_HISTOGRAM ? !bounds || nbounds == 0 : bounds != NULL || nbounds != 0)
		return NULL;
	bk_metric *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->r = r;
	m->type = type;
	m->series_tail = &m->series;
	m->name = strdup(name);
	m->help = strdup(help);
	bool ok = m->name && m->help;
	for (const char *p = labels; ok && p && *p;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (m->nlabels == BK_METRIC_MAX_LABELS || n == 0) {
			ok = false;
			break;
		}
		if (!(m->labels[m->nlabels++] = strndup(p, n)))
			ok = false;
		p = comma ? comma + 1 : p + n;
	}
	for (size_t i = 0; ok && i < nbounds; i++) {
		if (i > 0 && bounds[i] <= bounds[i - 1])
			ok = false;
		m->bounds[i] = bounds[i];
	}
	m->nbounds = nbounds;
	if (!ok) {
		metric_free(m);
		return NULL;
	}
	pthread_mutex_lock(&r->mu);
	*r->tail = m;
	r->tail = &m->next;
	pthread_mutex_unlock(&r->mu);
	return m;
}

bk_series *bk_metric_with(bk_metric *m, const char *const *values)
{
	if (!m || (m->nlabels > 0 && !values))
		return NULL;
	pthread_mutex_lock(&m->r->mu);
	for (bk_series *s = m->series; s; s = s->next) {
		int i = 0;
		while (i < m->nlabels && !strcmp(s->values[i], values[i]))
			i++;
		if (i == m->nlabels) {
			pthread_mutex_unlock(&m->r->mu);
			return s;
		}
	}
	bk_series *s = calloc(1, sizeof(*s));
	bool ok = s != NULL;
	for (int i = 0; ok && i < m->nlabels; i++)
		ok = (s->values[i] = strdup(values[i])) != NULL;
	if (ok && m->type == BK_MT_HISTOGRAM)
		ok = (s->buckets = calloc(m->nbounds + 1, sizeof(*s->buckets))) != NULL;
	if (!ok) {
		if (s)
			series_free(s);
		pthread_mutex_unlock(&m->r->mu);
		return NULL;
	}
	s->m = m;
	if (m->type == BK_MT_GAUGE)
		atomic_store(&s->v, dbits(0));
	atomic_store(&s->sum, dbits(0));
	*m->series_tail = s;
	m->series_tail = &s->next;
	pthread_mutex_unlock(&m->r->mu);
	return s;
}

static void add_double(_Atomic uint64_t *a, double d)
{
	uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(a, &old, dbits(bitsd(old) + d),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

void bk_series_add(bk_series *s, uint64_t n)
{
	if (!s)
		return;
	if (s->m->type == BK_MT_GAUGE)
		add_double(&s->v, (double)n);
	else
		atomic_fetch_add_explicit(&s->v, n, memory_order_relaxed);
}

void bk_series_store(bk_series *s, uint64_t total)
{
	if (s && s->m->type == BK_MT_COUNTER)
		atomic_store_explicit(&s->v, total, memory_order_relaxed);
}

void bk_series_set(bk_series *s, double v)
{
	if (s && s->m->type == BK_MT_GAUGE)
		atomic_store_explicit(&s->v, dbits(v), memory_order_relaxed);
}

void bk_series_observe(bk_series *s, double v)
{
	if (!s || s->m->type != BK_MT_HISTOGRAM)
		return;
	size_t b = 0;
	while (b < s->m->nbounds && v > s->m->bounds[b])
		b++;
	atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
	add_double(&s->sum, v);
}

void bk_series_hide(bk_series *s, bool hidden)
{
	if (s)
		atomic_store_explicit(&s->hidden, hidden, memory_order_relaxed);
}

bk_mgrid *bk_metric_grid(bk_metric *m, int ndims, const int *sizes, bk_mgrid_name_fn name)
{
	if (!m || m->type != BK_MT_COUNTER || ndims < 1 || ndims > 3 || ndims != m->nlabels ||
	    !name)
		return NULL;
	size_t cells = 1;
	for (int d = 0; d < ndims; d++) {
		if (sizes[d] < 1)
			return NULL;
		cells *= (size_t)sizes[d];
	}
	bk_mgrid *g = calloc(1, sizeof(*g) + cells * sizeof(g->cells[0]));
	if (!g)
		return NULL;
	g->ndims = ndims;
	g->name = name;
	for (int d = 0; d < 3; d++)
		g->sizes[d] = d < ndims ? sizes[d] : 1;
	pthread_mutex_lock(&m->r->mu);
	if (m->grid) {
		pthread_mutex_unlock(&m->r->mu);
		free(g);
		return NULL;
	}
	m->grid = g;
	pthread_mutex_unlock(&m->r->mu);
	return g;
}

static int clampi(int v, int n)
{
	return v < 0 || v >= n ? n - 1 : v;
}

void bk_mgrid_inc3(bk_mgrid *g, int i, int j, int k)
{
	if (!g)
		return;
	size_t at = ((size_t)clampi(i, g->sizes[0]) * (size_t)g->sizes[1] +
		     (size_t)clampi(j, g->sizes[1])) *
			(size_t)g->sizes[2] +
		    (size_t)clampi(k, g->sizes[2]);
	atomic_fetch_add_explicit(&g->cells[at], 1, memory_order_relaxed);
}

static size_t grid_cells(const bk_mgrid *g)
{
	return (size_t)g->sizes[0] * (size_t)g->sizes[1] * (size_t)g->sizes[2];
}

bk_mgrid *bk_mgrid_shadow(const bk_mgrid *g)
{
	if (!g)
		return NULL;
	bk_mgrid *s = calloc(1, sizeof(*s) + grid_cells(g) * sizeof(s->cells[0]));
	if (!s)
		return NULL;
	s->ndims = g->ndims;
	s->name = g->name;
	memcpy(s->sizes, g->sizes, sizeof(s->sizes));
	return s;
}

void bk_mgrid_fold(bk_mgrid *into, bk_mgrid *shadow)
{
	if (!into || !shadow || grid_cells(into) != grid_cells(shadow))
		return;
	for (size_t i = 0; i < grid_cells(shadow); i++) {
		uint64_t v = atomic_exchange_explicit(&shadow->cells[i], 0, memory_order_relaxed);
		if (v)
			atomic_fetch_add_explicit(&into->cells[i], v, memory_order_relaxed);
	}
}

void bk_mgrid_clear(bk_mgrid *shadow)
{
	for (size_t i = 0; shadow && i < grid_cells(shadow); i++)
		atomic_store_explicit(&shadow->cells[i], 0, memory_order_relaxed);
}

void bk_mgrid_free(bk_mgrid *shadow)
{
	free(shadow);
}

/* --- rendering --- */

typedef struct obuf {
	char *p;
	size_t n, cap;
	bool oom;
} obuf;

static void put(obuf *b, const char *fmt, ...) BK_PRINTF(2, 3);
static void put(obuf *b, const char *fmt, ...)
{
	if (b->oom)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
		va_end(ap);
		if (k < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)k < b->cap - b->n) {
			b->n += (size_t)k;
			return;
		}
		size_t cap = b->cap * 2 + (size_t)k + 1;
		char *np = realloc(b->p, cap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
}

/* s escaped for a HELP line (label == false: \ and newline) or a label value. */
static void put_escaped(obuf *b, const char *s, bool label)
{
	for (; *s; s++) {
		if (*s == '\\')
			put(b, "\\\\");
		else if (*s == '\n')
			put(b, "\\n");
		else if (*s == '"' && label)
			put(b, "\\\"");
		else
			put(b, "%c", *s);
	}
}

static void put_double(obuf *b, double v)
{
	if (v != v)
		put(b, "NaN");
	else if (v > 1e308 * 10)
		put(b, "+Inf");
	else if (v < -1e308 * 10)
		put(b, "-Inf");
	else
		put(b, "%.17g", v);
}

/* {a="x",b="y"[,le="..."]} or nothing. */
static void put_labels(obuf *b, const bk_metric *m, const char *const *values, const char *le)
{
	if (m->nlabels == 0 && !le)
		return;
	put(b, "{");
	for (int i = 0; i < m->nlabels; i++) {
		put(b, "%s%s=\"", i ? "," : "", m->labels[i]);
		put_escaped(b, values[i], true);
		put(b, "\"");
	}
	if (le)
		put(b, "%sle=\"%s\"", m->nlabels ? "," : "", le);
	put(b, "}");
}

static void render_series(obuf *b, const bk_metric *m, const bk_series *s)
{
	const char *const *vals = (const char *const *)s->values;
	if (m->type == BK_MT_COUNTER) {
		put(b, "%s", m->name);
		put_labels(b, m, vals, NULL);
		put(b, " %llu\n", (unsigned long long)atomic_load(&s->v));
		return;
	}
	if (m->type == BK_MT_GAUGE) {
		put(b, "%s", m->name);
		put_labels(b, m, vals, NULL);
		put(b, " ");
		put_double(b, bitsd(atomic_load(&s->v)));
		put(b, "\n");
		return;
	}
	uint64_t cum = 0;
	for (size_t i = 0; i <= m->nbounds; i++) {
		char le[64];
		if (i < m->nbounds)
			snprintf(le, sizeof(le), "%g", m->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		cum += atomic_load(&s->buckets[i]);
		put(b, "%s_bucket", m->name);
		put_labels(b, m, vals, le);
		put(b, " %llu\n", (unsigned long long)cum);
	}
	put(b, "%s_sum", m->name);
	put_labels(b, m, vals, NULL);
	put(b, " ");
	put_double(b, bitsd(atomic_load(&s->sum)));
	put(b, "\n%s_count", m->name);
	put_labels(b, m, vals, NULL);
	put(b, " %llu\n", (unsigned long long)cum);
}

static void render_grid(obuf *b, const bk_metric *m, const bk_mgrid *g)
{
	for (int i = 0; i < g->sizes[0]; i++)
		for (int j = 0; j < g->sizes[1]; j++)
			for (int k = 0; k < g->sizes[2]; k++) {
				size_t at = ((size_t)i * (size_t)g->sizes[1] + (size_t)j) *
						(size_t)g->sizes[2] +
					    (size_t)k;
				uint64_t v = atomic_load(&g->cells[at]);
				if (!v)
					continue;
				const int idx[3] = {i, j, k};
				const char *vals[BK_METRIC_MAX_LABELS] = {"", "", "", ""};
				for (int d = 0; d < g->ndims && d < 3; d++) {
					vals[d] = g->name(d, idx[d]);
					if (!vals[d])
						vals[d] = "";
				}
				put(b, "%s", m->name);
				put_labels(b, m, vals, NULL);
				put(b, " %llu\n", (unsigned long long)v);
			}
}

char *bk_metrics_render(bk_metrics *r, size_t *ret_len)
{
	static const char *const tname[] = {"counter", "gauge", "histogram"};
	obuf b = {0};
	pthread_mutex_lock(&r->mu);
	for (const bk_metric *m = r->head; m; m = m->next) {
		put(&b, "# HELP %s ", m->name);
		put_escaped(&b, m->help, false);
		put(&b, "\n# TYPE %s %s\n", m->name, tname[m->type]);
		for (const bk_series *s = m->series; s; s = s->next)
			if (!atomic_load(&s->hidden))
				render_series(&b, m, s);
		if (m->grid)
			render_grid(&b, m, m->grid);
	}
	pthread_mutex_unlock(&r->mu);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	if (!b.p) { /* an empty registry */
		*ret_len = 0;
		return strdup("");
	}
	*ret_len = b.n;
	return b.p;
}

/* --- HTTP --- */

void bk_metrics_heartbeat(bk_metrics *r)
{
	if (r)
		atomic_store_explicit(&r->beat_us, mono_us(), memory_order_relaxed);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
			     char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
	if (!resp) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	enum MHD_Result rc = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	return reply(conn, status, "text/plain; charset=utf-8", (char *)text, strlen(text),
		     MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	bk_metrics *r = cls;
	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (*upload_data_size)
		return MHD_NO; /* no request here has a body */
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n");
	if (!strcmp(url, "/metrics")) {
		size_t n = 0;
		char *body = bk_metrics_render(r, &n);
		if (!body)
			return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
		return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, n,
			     MHD_RESPMEM_MUST_FREE);
	}
	if (!strcmp(url, "/healthz")) {
		int64_t age = mono_us() - atomic_load(&r->beat_us);
		if (age > (int64_t)r->stale_s * 1000000) {
			char t[128];
			snprintf(t, sizeof(t), "stalled: main loop silent for %lld s\n",
				 (long long)(age / 1000000));
			return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, t);
		}
		return reply_text(conn, MHD_HTTP_OK, "ok\n");
	}
	if (!strcmp(url, "/readyz")) {
		char why[256] = "";
		if (r->ready && !r->ready(r->ready_opaque, why, sizeof(why))) {
			char t[300];
			snprintf(t, sizeof(t), "not ready: %s\n", why);
			return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, t);
		}
		return reply_text(conn, MHD_HTTP_OK, "ready\n");
	}
	return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: /metrics, /healthz, /readyz\n");
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char line[512];
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	bk_logf(BK_LOG_WARN, "metrics server", "err=\"%s\"", line);
}

int bk_metrics_serve(bk_metrics *r, const char *addr, int stale_s, bk_ready_fn ready,
		     void *ready_opaque, int *ret_port, char *errstr, size_t errstr_size)
{
	char host[256];
	const char *colon = addr ? strrchr(addr, ':') : NULL;
	if (!colon || colon == addr || !colon[1] || (size_t)(colon - addr) >= sizeof(host)) {
		snprintf(errstr, errstr_size, "--metrics-addr %s: expected HOST:PORT",
			 addr ? addr : "");
		return -1;
	}
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:9100 */
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535) {
		snprintf(errstr, errstr_size, "--metrics-addr %s: bad port", addr);
		return -1;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
			*ai = NULL;
	int ge = getaddrinfo(host, colon + 1, &hints, &ai);
	if (ge) {
		snprintf(errstr, errstr_size, "--metrics-addr %s: %s", addr, gai_strerror(ge));
		return -1;
	}
	r->stale_s = stale_s;
	r->ready = ready;
	r->ready_opaque = ready_opaque;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* the logger first: MHD logs with its own before it sees the option */
	r->httpd = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, r,
				    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
				    ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)32,
				    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!r->httpd) {
		snprintf(errstr, errstr_size, "--metrics-addr %s: cannot listen there", addr);
		return -1;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(r->httpd, MHD_DAEMON_INFO_BIND_PORT);
	if (ret_port)
		*ret_port = di ? (int)di->port : (int)port;
	return 0;
}

void bk_metrics_serve_stop(bk_metrics *r)
{
	if (r && r->httpd) {
		MHD_stop_daemon(r->httpd);
		r->httpd = NULL;
	}
}
