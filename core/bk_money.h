/*
 * bk_money.h - integer cents with overflow checks against the schema's `int` (int32).
 */
#ifndef BK_MONEY_H
#define BK_MONEY_H

#include "bk_err.h"

#include <stdbool.h>
#include <stdint.h>

#define BK_CENTS_MAX INT32_MAX
#define BK_CENTS_MIN INT32_MIN

/* Each writes *ret and returns true when the result fits an int32; else false, *ret untouched. */
bool bk_cents_add(int64_t a, int64_t b, int64_t *ret) BK_MUSTCHECK;
bool bk_cents_mul(int64_t a, int64_t b, int64_t *ret) BK_MUSTCHECK;
bool bk_cents_fits(int64_t a);

#endif
