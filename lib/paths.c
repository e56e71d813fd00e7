/*
 * paths.c - the default data directories of the programs (paths.h): environment, the
 * current directory, the build tree's source, the compiled-in install path, and last the
 * same path relative to the program (an install under a staging root).
 */
#include "paths.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef BK_MIGRATIONS_DIR
#define BK_MIGRATIONS_DIR "/usr/local/share/booking-log/migrations"
#endif

static bool is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Is the running executable inside the build tree? */
static bool in_build_tree(void)
{
#ifdef BK_BUILD_ROOT
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	size_t bl = strlen(BK_BUILD_ROOT);
	return strncmp(exe, BK_BUILD_ROOT, bl) == 0 && exe[bl] == '/';
#else
	return false;
#endif
}

const char *bk_default_migrations_dir(char *buf, size_t bufsz)
{
	const char *env = getenv("BOOKING_MIGRATIONS");
	if (env && *env) {
		snprintf(buf, bufsz, "%s", env);
		return buf;
	}
	if (is_dir("migrations")) {
		snprintf(buf, bufsz, "migrations");
		return buf;
	}
#ifdef BK_SOURCE_ROOT
	if (in_build_tree()) {
		snprintf(buf, bufsz, "%s/migrations", BK_SOURCE_ROOT);
		if (is_dir(buf))
			return buf;
	}
#endif
	snprintf(buf, bufsz, "%s", BK_MIGRATIONS_DIR);
	if (is_dir(buf))
		return buf;
#ifdef BK_MIGRATIONS_REL
	/* installed under a staging root (meson install --destdir): beside the program */
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
	if (slash) {
		*slash = '\0';
		snprintf(buf, bufsz, "%s/%s", exe, BK_MIGRATIONS_REL);
		if (is_dir(buf))
			return buf;
	}
#endif
	return NULL;
}
