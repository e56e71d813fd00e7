/*
 * bk_err.h - the error and rejection codes of the booking core.
 *
 * One list macro generates the enum, the wire names (the `code` of a result) and
 * a default message. Rejection codes go to clients; the others are library errors.
 */
#ifndef BK_ERR_H
#define BK_ERR_H

/*
 * How core's functions fail. A fallible function says so in its result (0 / -1, a
 * bk_err, a success bool, a pointer NULL on failure) and is declared BK_MUSTCHECK:
 * ignoring the result is a compile error under -Werror. When it has a reason to give, its
 * last parameters are `char *err, size_t errsz`: a NUL-terminated message written on
 * failure (never a static pointer handed out, never a third spelling). The decider's
 * reasons go to bk_decision.message, the payload getters' through bk_vctx (err, errsz).
 */
#if defined(__GNUC__)
#define BK_MUSTCHECK	__attribute__((warn_unused_result))
#define BK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define BK_MUSTCHECK
#define BK_PRINTF(a, b)
#endif

#define BK_ERR_MAP(X)                                                                              \
	X(OK, "ok", "success")                                                                     \
	X(INVALID_TRANSITION, "invalid_transition",                                                \
	  "the order's status does not allow this command")                                        \
	X(VERSION_CONFLICT, "version_conflict",                                                    \
	  "expected_version does not match the order's version")                                   \
	X(FORBIDDEN, "forbidden", "the actor may not issue this command on this order")            \
	X(VALIDATION_FAILED, "validation_failed", "the command is malformed")                      \
	X(UNKNOWN_ORDER, "unknown_order", "no such order")                                         \
	X(ORDER_EXISTS, "order_exists", "an order with this id already exists")                    \
	X(IB_NOT_ALLOWED, "ib_not_allowed", "no auto-accept rule allows instant booking")          \
	X(EXPIRED, "expired", "the request or card has expired")                                   \
	X(AMOUNT_MISMATCH, "amount_mismatch",                                                      \
	  "the captured amount does not equal the order total")                                    \
	X(OVERFLOW, "overflow", "an amount overflows the schema's int")                            \
	X(NOT_FOUND, "not_found",                                                                  \
	  "the referenced request, card, dispute or milestone does not exist")                     \
	X(ARCHIVED, "archived",                                                                    \
	  "the order was archived: its window for commands (and command ids) has ended")           \
	X(DECODE, "decode_error", "the bytes are not a valid message")                             \
	X(NOMEM, "out_of_memory", "out of memory")                                                 \
	X(CHAIN, "chain_error", "the event does not continue the order's hash chain")              \
	X(AUTH, "auth_failed", "signature or key check failed")                                    \
	X(INTERNAL, "internal", "internal error")

typedef enum bk_err {
#define BK_ERR_ENUM(sym, name, msg) BK_E_##sym,
	BK_ERR_MAP(BK_ERR_ENUM)
#undef BK_ERR_ENUM
	    BK_E__COUNT
} bk_err;

/* Wire name of a code ("invalid_transition"); never NULL. */
const char *bk_err_name(bk_err e);
/* Default human message of a code; never NULL. */
const char *bk_err_msg(bk_err e);
/* Parse a wire name; returns BK_E__COUNT when unknown. */
bk_err bk_err_from_name(const char *name) BK_MUSTCHECK;

#endif
