/*
 * bk_err.c - names and messages of bk_err, generated from BK_ERR_MAP.
 */
#include <string.h>

#include "bk_err.h"

static const char *const err_names[BK_E__COUNT] = {
#define BK_ERR_NAME(sym, name, msg) [BK_E_##sym] = name,
    BK_ERR_MAP(BK_ERR_NAME)
#undef BK_ERR_NAME
};

static const char *const err_msgs[BK_E__COUNT] = {
#define BK_ERR_MSG(sym, name, msg) [BK_E_##sym] = msg,
    BK_ERR_MAP(BK_ERR_MSG)
#undef BK_ERR_MSG
};

const char *bk_err_name(bk_err e)
{
	return (unsigned)e < BK_E__COUNT ? err_names[e] : "unknown";
}

const char *bk_err_msg(bk_err e)
{
	return (unsigned)e < BK_E__COUNT ? err_msgs[e] : "unknown error";
}

bk_err bk_err_from_name(const char *name)
{
	for (int i = 0; i < BK_E__COUNT; i++)
		if (strcmp(err_names[i], name) == 0)
			return (bk_err)i;
	return BK_E__COUNT;
}
