/*
 * paths.h - where the installed programs find their data (migrations). The install
 * directory is compiled in (meson: BK_MIGRATIONS_DIR); a program run from the build tree
 * (BK_BUILD_ROOT) uses the source tree's (BK_SOURCE_ROOT) instead, so a developer's build
 * never picks up an older installed copy.
 */
#ifndef BK_PATHS_H
#define BK_PATHS_H

#include <stddef.h>

/*
 * The default migrations directory, the first of: $BOOKING_MIGRATIONS; ./migrations;
 * the source tree's when the running program is inside the build tree; the compiled-in
 * install directory; that directory relative to the program's (bin/../share/...). Writes into buf
 * and returns it, or NULL when none exists.
 */
const char *bk_default_migrations_dir(char *buf, size_t bufsz);

#endif
