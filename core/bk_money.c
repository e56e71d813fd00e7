/*
 * bk_money.c - integer cents arithmetic checked against the schema's `int` (int32).
 *
 * Operands and results must all fit an int32: an amount that could not be stored in the
 * read model is never produced, and since operands fit int32 the int64 math cannot wrap.
 */
#include "bk_money.h"

bool bk_cents_fits(int64_t a)
{
	return a >= BK_CENTS_MIN && a <= BK_CENTS_MAX;
}

bool bk_cents_add(int64_t a, int64_t b, int64_t *ret)
{
	if (!bk_cents_fits(a) || !bk_cents_fits(b))
		return false;
	const int64_t r = a + b;
	if (!bk_cents_fits(r))
		return false;
	*ret = r;
	return true;
}

bool bk_cents_mul(int64_t a, int64_t b, int64_t *ret)
{
	if (!bk_cents_fits(a) || !bk_cents_fits(b))
		return false;
	const int64_t r = a * b;
	if (!bk_cents_fits(r))
		return false;
	*ret = r;
	return true;
}
