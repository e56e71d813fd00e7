/*
 * test_ops.c - Check suite for the operations modules of lib/: the metrics registry
 * (exposition text, escaping, histograms, grids, hidden series, concurrent updates), its
 * HTTP endpoint (/metrics, /healthz, /readyz, 404, 405), the -F configuration file
 * expansion (lib/conffile) and the daemons' shared start-up helpers (lib/startup: the
 * partition list of summary lines, the stall watch, the start-up exit codes, a closed
 * port given up after timeout_ms).
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conffile.h"
#include "metrics.h"
#include "startup.h"

/* ---- registry and exposition ---- */

static char *render(bk_metrics *r)
{
	size_t n = 99;
	char *t = bk_metrics_render(r, &n);
	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(n, strlen(t));
	return t;
}

START_TEST(counter_gauge_text)
{
	bk_metrics *r = bk_metrics_new();
	bk_metric *c =
	    bk_metrics_add(r, BK_MT_COUNTER, "x_total", "Things.\nMore \\ help.", "a,b", NULL, 0);
	bk_series *s = bk_metric_with(c, (const char *const[]){"1", "q\"u\\o\nte"});
	ck_assert_ptr_eq(s, bk_metric_with(c, (const char *const[]){"1", "q\"u\\o\nte"}));
	bk_series_inc(s);
	bk_series_add(s, 41);
	bk_series *g = bk_metric_with(
	    bk_metrics_add(r, BK_MT_GAUGE, "y_seconds", "A gauge.", NULL, NULL, 0), NULL);
	bk_series_set(g, 2.5);
	bk_series_add(g, 1);
	char *t = render(r);
	ck_assert_str_eq(t, "# HELP x_total Things.\\nMore \\\\ help.\n"
			    "# TYPE x_total counter\n"
			    "x_total{a=\"1\",b=\"q\\\"u\\\\o\\nte\"} 42\n"
			    "# HELP y_seconds A gauge.\n"
			    "# TYPE y_seconds gauge\n"
			    "y_seconds 3.5\n");
	free(t);
	bk_series_store(s, 7);
	bk_series_hide(g, true);
	t = render(r);
	ck_assert_ptr_nonnull(strstr(t, "} 7\n"));
	ck_assert_ptr_null(strstr(t, "y_seconds 3.5"));
	free(t);
	bk_metrics_free(r);
}
END_TEST

START_TEST(histogram_text)
{
	bk_metrics *r = bk_metrics_new();
	const double b[] = {0.1, 1, 10};
	bk_series *h =
	    bk_metric_with(bk_metrics_add(r, BK_MT_HISTOGRAM, "h_seconds", "H.", "k", b, 3),
			   (const char *const[]){"v"});
	bk_series_observe(h, 0.05);
	bk_series_observe(h, 0.1); /* le is inclusive */
	bk_series_observe(h, 5);
	bk_series_observe(h, 100);
	char *t = render(r);
	ck_assert_str_eq(t, "# HELP h_seconds H.\n"
			    "# TYPE h_seconds histogram\n"
			    "h_seconds_bucket{k=\"v\",le=\"0.1\"} 2\n"
			    "h_seconds_bucket{k=\"v\",le=\"1\"} 2\n"
			    "h_seconds_bucket{k=\"v\",le=\"10\"} 3\n"
			    "h_seconds_bucket{k=\"v\",le=\"+Inf\"} 4\n"
			    "h_seconds_sum{k=\"v\"} 105.15000000000001\n"
			    "h_seconds_count{k=\"v\"} 4\n");
	free(t);
	/* bad arguments */
	ck_assert_ptr_null(bk_metrics_add(r, BK_MT_HISTOGRAM, "n", "n", NULL, NULL, 0));
	const double desc[] = {2, 1};
	ck_assert_ptr_null(bk_metrics_add(r, BK_MT_HISTOGRAM, "n", "n", NULL, desc, 2));
	ck_assert_ptr_null(bk_metrics_add(r, BK_MT_COUNTER, "n", "n", NULL, NULL, 3));
	ck_assert_ptr_null(bk_metrics_add(r, BK_MT_GAUGE, "n", "n", NULL, b, 3));
	ck_assert_ptr_null(bk_metrics_add(r, BK_MT_COUNTER, "n", "n", "a,,b", NULL, 0));
	ck_assert_ptr_null(
	    bk_metric_with(bk_metrics_add(r, BK_MT_COUNTER, "n", "n", "a", NULL, 0), NULL));
	bk_metrics_free(r);
}
END_TEST

static const char *gname(int dim, int idx)
{
	static const char *const n[2][3] = {{"a0", "a1", "a2"}, {"b0", "b1", "b2"}};
	return n[dim][idx];
}

START_TEST(grid_nonzero_only)
{
	bk_metrics *r = bk_metrics_new();
	bk_mgrid *g =
	    bk_metric_grid(bk_metrics_add(r, BK_MT_COUNTER, "g_total", "G.", "x,y", NULL, 0), 2,
			   (const int[]){3, 3}, gname);
	ck_assert_ptr_nonnull(g);
	bk_mgrid_inc3(g, 1, 2, 0);
	bk_mgrid_inc3(g, 1, 2, 0);
	bk_mgrid_inc3(g, 7, -1, 0); /* out of range: the last cell of each dimension */
	bk_mgrid_inc3(NULL, 0, 0, 0);
	char *t = render(r);
	ck_assert_str_eq(t, "# HELP g_total G.\n# TYPE g_total counter\n"
			    "g_total{x=\"a1\",y=\"b2\"} 2\n"
			    "g_total{x=\"a2\",y=\"b2\"} 1\n");
	free(t);
	bk_metrics_free(r);
}
END_TEST

START_TEST(grid_shadow_fold_clear)
{
	bk_metrics *r = bk_metrics_new();
	bk_mgrid *g =
	    bk_metric_grid(bk_metrics_add(r, BK_MT_COUNTER, "g_total", "G.", "x", NULL, 0), 1,
			   (const int[]){3}, gname);
	bk_mgrid *sh = bk_mgrid_shadow(g);
	ck_assert_ptr_nonnull(sh);
	bk_mgrid_inc3(sh, 0, 0, 0);
	bk_mgrid_inc3(sh, 1, 0, 0);
	char *t = render(r); /* a shadow is never rendered */
	ck_assert_ptr_null(strstr(t, "g_total{"));
	free(t);
	bk_mgrid_fold(g, sh); /* committed */
	bk_mgrid_inc3(sh, 2, 0, 0);
	bk_mgrid_clear(sh); /* aborted */
	bk_mgrid_fold(g, sh);
	t = render(r);
	ck_assert_str_eq(t, "# HELP g_total G.\n# TYPE g_total counter\n"
			    "g_total{x=\"a0\"} 1\n"
			    "g_total{x=\"a1\"} 1\n");
	free(t);
	bk_mgrid_free(sh);
	bk_mgrid_free(NULL);
	bk_metrics_free(r);
}
END_TEST

typedef struct hammer {
	bk_series *c, *h;
	bk_mgrid *g;
} hammer;

static void *hammer_run(void *arg)
{
	hammer *hm = arg;
	for (int i = 0; i < 100000; i++) {
		bk_series_inc(hm->c);
		bk_series_observe(hm->h, 1);
		bk_mgrid_inc3(hm->g, 0, 0, 0);
	}
	return NULL;
}

START_TEST(concurrent_updates_are_exact)
{
	bk_metrics *r = bk_metrics_new();
	const double b[] = {0.5, 2};
	hammer hm = {
	    bk_metric_with(bk_metrics_add(r, BK_MT_COUNTER, "c_total", "C.", NULL, NULL, 0), NULL),
	    bk_metric_with(bk_metrics_add(r, BK_MT_HISTOGRAM, "h", "H.", NULL, b, 2), NULL),
	    bk_metric_grid(bk_metrics_add(r, BK_MT_COUNTER, "g_total", "G.", "x", NULL, 0), 1,
			   (const int[]){3}, gname)};
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, hammer_run, &hm);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	char *t = render(r);
	ck_assert_ptr_nonnull(strstr(t, "\nc_total 400000\n"));
	ck_assert_ptr_nonnull(strstr(t, "\nh_sum 400000\n"));
	ck_assert_ptr_nonnull(strstr(t, "\nh_count 400000\n"));
	ck_assert_ptr_nonnull(strstr(t, "\ng_total{x=\"a0\"} 400000\n"));
	free(t);
	bk_metrics_free(r);
}
END_TEST

/* ---- HTTP ---- */

/* GET path from 127.0.0.1:port; returns the whole response (status line first). */
static char *http_get(int port, const char *method, const char *path)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	char req[256];
	int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: x\r\n\r\n", method, path);
	ck_assert_int_eq(write(fd, req, (size_t)n), n);
	size_t cap = 1 << 16, len = 0;
	char *buf = calloc(1, cap);
	ssize_t k;
	while ((k = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)k;
	close(fd);
	return buf;
}

static bool ready_flag;
static bool ready_cb(void *opaque, char *why, size_t whysz)
{
	ck_assert_ptr_eq(opaque, &ready_flag);
	snprintf(why, whysz, "waiting for the test");
	return ready_flag;
}

START_TEST(http_endpoints)
{
	bk_metrics *r = bk_metrics_new();
	bk_series_inc(bk_metric_with(
	    bk_metrics_add(r, BK_MT_COUNTER, "served_total", "S.", NULL, NULL, 0), NULL));
	char err[256];
	int port = 0;
	ck_assert_int_eq(
	    bk_metrics_serve(r, "nonsense", 60, ready_cb, &ready_flag, &port, err, sizeof(err)),
	    -1);
	ck_assert_int_eq(bk_metrics_serve(r, "127.0.0.1:99999", 60, ready_cb, &ready_flag, &port,
					  err, sizeof(err)),
			 -1);
	ck_assert_int_eq(
	    bk_metrics_serve(r, "127.0.0.1:0", 60, ready_cb, &ready_flag, &port, err, sizeof(err)),
	    0);
	ck_assert_int_gt(port, 0);
	char *t = http_get(port, "GET", "/metrics");
	ck_assert_msg(!strncmp(t, "HTTP/1.0 200", 12) || !strncmp(t, "HTTP/1.1 200", 12), "%s", t);
	ck_assert_ptr_nonnull(strstr(t, "text/plain; version=0.0.4"));
	ck_assert_ptr_nonnull(strstr(t, "\r\n\r\n# HELP served_total S.\n"));
	ck_assert_ptr_nonnull(strstr(t, "\nserved_total 1\n"));
	free(t);
	ready_flag = false;
	t = http_get(port, "GET", "/readyz");
	ck_assert_ptr_nonnull(strstr(t, " 503 "));
	ck_assert_ptr_nonnull(strstr(t, "not ready: waiting for the test"));
	free(t);
	ready_flag = true;
	t = http_get(port, "GET", "/readyz");
	ck_assert_ptr_nonnull(strstr(t, " 200 "));
	free(t);
	t = http_get(port, "GET", "/healthz");
	ck_assert_ptr_nonnull(strstr(t, " 200 "));
	free(t);
	t = http_get(port, "GET", "/other");
	ck_assert_ptr_nonnull(strstr(t, " 404 "));
	free(t);
	t = http_get(port, "POST", "/metrics");
	ck_assert_ptr_nonnull(strstr(t, " 405 "));
	free(t);
	bk_metrics_free(r); /* stops the server */
}
END_TEST

START_TEST(healthz_goes_stale)
{
	bk_metrics *r = bk_metrics_new();
	char err[256];
	int port = 0;
	ck_assert_int_eq(bk_metrics_serve(r, "127.0.0.1:0", 1, NULL, NULL, &port, err, sizeof(err)),
			 0);
	char *t = http_get(port, "GET", "/healthz");
	ck_assert_ptr_nonnull(strstr(t, " 200 "));
	free(t);
	usleep(2100 * 1000);
	t = http_get(port, "GET", "/healthz");
	ck_assert_msg(strstr(t, " 503 ") && strstr(t, "stalled"), "%s", t);
	free(t);
	bk_metrics_heartbeat(r);
	t = http_get(port, "GET", "/healthz");
	ck_assert_ptr_nonnull(strstr(t, " 200 "));
	free(t);
	bk_metrics_free(r);
}
END_TEST

/* ---- -F FILE ---- */

static char *write_tmp(const char *text)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/bk-test-ops.XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static char *joined(int argc, char **argv)
{
	static char out[2048];
	size_t at = 0;
	out[0] = '\0';
	for (int i = 0; i < argc && at < sizeof(out); i++)
		at += (size_t)snprintf(out + at, sizeof(out) - at, "%s%s", argv[i],
				       i + 1 < argc ? " " : "");
	ck_assert_ptr_null(argv[argc]);
	return out;
}

START_TEST(conffile_expands_in_place)
{
	char *path = write_tmp("# comment\n"
			       "\n"
			       "  keyring = /etc/k  \n"
			       "session.timeout.ms=6000\n"
			       "allow-unsigned=true\n"
			       "no-transactions=false\n"
			       "d=dbname=x\n"
			       "metrics-addr=127.0.0.1:9464\n");
	char *argv[] = {"prog", "--group-id", "g", "-F", path, "--keyring", "/k2", NULL};
	int ac = 0;
	char **av = NULL, err[512];
	ck_assert_int_eq(bk_conffile_expand(7, argv, &ac, &av, err, sizeof(err)), 0);
	ck_assert_str_eq(
	    joined(ac, av),
	    "prog --group-id g --keyring=/etc/k -X session.timeout.ms=6000 "
	    "--allow-unsigned -d dbname=x --metrics-addr=127.0.0.1:9464 --keyring /k2");
	bk_conffile_free_argv(av);
	char *argv2[] = {"prog", "--config=/nonexistent/x", NULL};
	ck_assert_int_eq(bk_conffile_expand(2, argv2, &ac, &av, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/x"));
	unlink(path);
}
END_TEST

START_TEST(conffile_errors)
{
	char err[512], **av = NULL;
	int ac = 0;
	const char *bad[] = {"no equals sign\n", "=value\n", "F=/other\n"};
	const char *want[] = {":1: expected key=value", ":1: empty key", "cannot include another"};
	for (int i = 0; i < 3; i++) {
		char *path = write_tmp(bad[i]);
		char *argv[] = {"prog", "-F", path, NULL};
		ck_assert_int_eq(bk_conffile_expand(3, argv, &ac, &av, err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, want[i]) != NULL, "%s", err);
		unlink(path);
	}
	char *argv[] = {"prog", "-F", NULL};
	ck_assert_int_eq(bk_conffile_expand(2, argv, &ac, &av, err, sizeof(err)), -1);
	char *plain[] = {"prog", "a", "b", NULL};
	ck_assert_int_eq(bk_conffile_expand(3, plain, &ac, &av, err, sizeof(err)), 0);
	ck_assert_str_eq(joined(ac, av), "prog a b");
	bk_conffile_free_argv(av);
}
END_TEST

/* ---- lib/startup ---- */

START_TEST(part_list_ranges)
{
	char buf[64];
	int32_t ids[] = {9, 2, 1, 3, 5, 10, 11, 0};
	ck_assert_str_eq(bk_part_list(ids, 8, buf, sizeof(buf)), "0-3,5,9-11");
	ck_assert_str_eq(bk_part_list(ids, 0, buf, sizeof(buf)), "");
	int32_t one[] = {7};
	ck_assert_str_eq(bk_part_list(one, 1, buf, sizeof(buf)), "7");
	/* too many for the buffer: cut at a whole entry, marked */
	int32_t odd[40];
	for (int i = 0; i < 40; i++)
		odd[i] = 2 * i;
	char small[32];
	const char *l = bk_part_list(odd, 40, small, sizeof(small));
	ck_assert_uint_lt(strlen(l), sizeof(small));
	ck_assert_ptr_nonnull(strstr(l, ",..."));
	ck_assert(strncmp(l, "0,2,4,", 6) == 0);
}
END_TEST

START_TEST(kwatch_up_down)
{
	static const char up[] = "{\"brokers\":{\"a:1/1\":{\"nodeid\":1,\"state\":\"UP\"}},"
				 "\"cgrp\":{\"state\":\"up\"}}";
	static const char down[] = "{\"brokers\":{\"a:1/1\":{\"nodeid\":1,\"state\":\"DOWN\"},"
				   "\"a:1/bootstrap\":{\"nodeid\":-1,\"state\":\"CONNECT\"}},"
				   "\"cgrp\":{\"state\":\"up\"}}";
	ck_assert(bk_kwatch_any_up(up, strlen(up)));
	ck_assert(!bk_kwatch_any_up(down, strlen(down))); /* the group's lower-case "up" is not */
	bk_kwatch w = {.program = "test"};
	bk_kwatch_stats(&w, up, strlen(up), 4);
	ck_assert_int_eq(w.down_since_ms, 0);
	bk_kwatch_stats(&w, down, strlen(down), 4); /* the first second down: noted */
	ck_assert_int_gt(w.down_since_ms, 0);
	ck_assert_int_eq(w.partitions, 4);
	bk_kwatch_stats(&w, down, strlen(down), 0); /* revoked meanwhile: not yet 10 s */
	ck_assert(!w.reported);
	w.down_since_ms -= BK_KWATCH_STALL_MS; /* as if 10 s had passed */
	bk_kwatch_stats(&w, down, strlen(down), 0);
	ck_assert(w.reported);
	ck_assert_uint_eq(w.stalls, 1);
	bk_kwatch_stats(&w, down, strlen(down), 0); /* said once */
	ck_assert_uint_eq(w.stalls, 1);
	bk_kwatch_stats(&w, up, strlen(up), 4); /* back: the next stall is said again */
	ck_assert(!w.reported);
	ck_assert_int_eq(w.down_since_ms, 0);
}
END_TEST

START_TEST(startup_closed_port)
{
	ck_assert_int_eq(bk_startup_exit_code(BK_STARTUP_OK), 0);
	ck_assert_int_eq(bk_startup_exit_code(BK_STARTUP_STOPPED), 0);
	ck_assert_int_eq(bk_startup_exit_code(BK_STARTUP_BAD_TOPICS), 2);
	ck_assert_int_eq(bk_startup_exit_code(BK_STARTUP_UNREACHABLE), 3);
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	ck_assert(rd_kafka_conf_set(conf, "bootstrap.servers", "127.0.0.1:1", err, sizeof(err)) ==
		  RD_KAFKA_CONF_OK);
	ck_assert(rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err)) == RD_KAFKA_CONF_OK);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	ck_assert_ptr_nonnull(rk);
	bk_startup_topic ts[] = {{"t", "--events-topic", false, 0}};
	bk_startup_rc rc = bk_startup_check(rk, ts, 1, 1200, NULL, err, sizeof(err));
	ck_assert_int_eq(rc, BK_STARTUP_UNREACHABLE);
	ck_assert_msg(strstr(err, "no broker answered within 1200 ms (--timeout-ms"), "%s", err);
	volatile sig_atomic_t stop = 1; /* a stop before the first attempt */
	ck_assert_int_eq(bk_startup_check(rk, ts, 1, 60000, &stop, err, sizeof(err)),
			 BK_STARTUP_STOPPED);
	rd_kafka_destroy(rk);
}
END_TEST

static Suite *ops_suite(void)
{
	Suite *s = suite_create("ops");
	TCase *m = tcase_create("metrics");
	tcase_add_test(m, counter_gauge_text);
	tcase_add_test(m, histogram_text);
	tcase_add_test(m, grid_nonzero_only);
	tcase_add_test(m, grid_shadow_fold_clear);
	tcase_add_test(m, concurrent_updates_are_exact);
	suite_add_tcase(s, m);
	TCase *h = tcase_create("http");
	tcase_set_timeout(h, 60);
	tcase_add_test(h, http_endpoints);
	tcase_add_test(h, healthz_goes_stale);
	suite_add_tcase(s, h);
	TCase *c = tcase_create("conffile");
	tcase_add_test(c, conffile_expands_in_place);
	tcase_add_test(c, conffile_errors);
	suite_add_tcase(s, c);
	TCase *st = tcase_create("startup");
	tcase_set_timeout(st, 30);
	tcase_add_test(st, part_list_ranges);
	tcase_add_test(st, kwatch_up_down);
	tcase_add_test(st, startup_closed_port);
	suite_add_tcase(s, st);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ops_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
