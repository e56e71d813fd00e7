/*
 * test_fixtures.c - every scenario in fixtures/ through decide/evolve (the engine),
 * checked line by line against each command's "expect" and at the end against the
 * golden fixtures/<name>.expected.json (keys present there must match).
 * BK_FIXTURES_UPDATE=1 rewrites the goldens from the current behaviour (review the diff!).
 */
#include <check.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_run.h"

#define MAX_FX 128
static char *names[MAX_FX];
static int n_names;

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_fixtures(void)
{
	DIR *d = opendir(SRCDIR "/fixtures");
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) && n_names < MAX_FX) {
		size_t n = strlen(de->d_name);
		if (n > 6 && strcmp(de->d_name + n - 6, ".jsonl") == 0)
			names[n_names++] = strndup(de->d_name, n - 6);
	}
	closedir(d);
	qsort(names, (size_t)n_names, sizeof(names[0]), cmp);
}

START_TEST(fixture)
{
	const char *name = names[_i];
	char path[1024], gold[1024], err[512];
	snprintf(path, sizeof(path), SRCDIR "/fixtures/%s.jsonl", name);
	snprintf(gold, sizeof(gold), SRCDIR "/fixtures/%s.expected.json", name);
	bk_engine *e = bk_engine_new();
	json_t *fails = json_array();
	int n = fx_run_file(e, path, fails, err, sizeof(err));
	ck_assert_msg(n > 0, "%s: %s", name, n < 0 ? err : "no commands");
	for (size_t i = 0; i < json_array_size(fails); i++)
		fprintf(stderr, "  %s\n", json_string_value(json_array_get(fails, i)));
	ck_assert_msg(json_array_size(fails) == 0, "%s: %zu command(s) with another outcome", name,
		      json_array_size(fails));
	json_t *got = fx_engine_summary(e);
	if (getenv("BK_FIXTURES_UPDATE")) {
		json_t *doc = json_pack("{s:O}", "orders", got);
		json_dump_file(doc, gold, JSON_INDENT(2) | JSON_SORT_KEYS);
		json_decref(doc);
	}
	json_error_t jerr;
	json_t *want = json_load_file(gold, 0, &jerr);
	ck_assert_msg(want != NULL, "%s: golden file: %s", gold, jerr.text);
	json_t *diffs = json_array();
	json_t *orders = json_object_get(want, "orders");
	ck_assert_msg(json_object_size(orders) > 0, "%s: golden lists no orders", gold);
	fx_subset_diff(orders, got, name, diffs);
	for (size_t i = 0; i < json_array_size(diffs); i++)
		fprintf(stderr, "  %s\n", json_string_value(json_array_get(diffs, i)));
	ck_assert_msg(json_array_size(diffs) == 0, "%s: %zu difference(s) from the golden", name,
		      json_array_size(diffs));
	json_decref(diffs);
	json_decref(want);
	json_decref(got);
	json_decref(fails);
	bk_engine_free(e);
}
END_TEST

int main(void)
{
	list_fixtures();
	Suite *s = suite_create("fixtures");
	TCase *tc = tcase_create("scenarios");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, fixture, 0, n_names);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (n_names == 0) {
		fprintf(stderr, "no fixtures found in " SRCDIR "/fixtures\n");
		return 1;
	}
	return failed ? 1 : 0;
}
