/*
 * conffile.h - `-F FILE`: a configuration file in kcat's properties format (key=value
 * lines, # comments) for every program. A key librdkafka knows becomes `-X key=value`;
 * any other key is one of the program's own long options (`keyring=PATH` becomes
 * `--keyring=PATH`; `allow-unsigned=true` the switch `--allow-unsigned`, `=false`
 * nothing). The file's options take the place of the -F, so options after it on the
 * command line win (later wins, as with -X).
 */
#ifndef BK_CONFFILE_H
#define BK_CONFFILE_H

#include <stddef.h>

#include "bk_err.h"

/*
 * Expand every `-F FILE`, `-FFILE`, `--config FILE` or `--config=FILE` in argv[1..argc)
 * into the options the file holds. Returns 0 with *ret_argc and *ret_argv (a new
 * NULL-terminated vector; argv[0] and the other arguments are shared with argv, the
 * expanded ones owned by it: free it with bk_conffile_free_argv), or -1 with errstr
 * naming the file and line (unreadable file, a line without '=', an empty key, a nested
 * -F). Without any -F, *ret_argv is a plain copy of argv.
 */
int bk_conffile_expand(int argc, char **argv, int *ret_argc, char ***ret_argv, char *errstr,
		       size_t errstr_size) BK_MUSTCHECK;
/* Free a vector from bk_conffile_expand (NULL ok). */
void bk_conffile_free_argv(char **argv);

/* Help text for -F and the environment (static, ends with a newline). */
const char *bk_conffile_usage(void);

#endif
