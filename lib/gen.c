/*
 * gen.c - the seeded command-stream generator (gen.h). Each order gets a plan (its story,
 * then noise: invalid copies and resends), and the live orders' next steps are drawn at
 * random, as a partition would interleave them. Every random draw comes from one
 * xoshiro256** stream, so the options alone fix the output, byte for byte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "bk_fsm.h"
#include "bk_time.h"
#include "gen.h"

#define MAX_STEPS  64 /* a plan has at most 3 x 17 steps: story, copies, resends */
#define ID_LEN	   40
#define DAY_US	   (86400 * BK_US_PER_S)
#define HOUR_US	   (3600 * BK_US_PER_S)
#define MAX_WINDOW 65536u
/* Up to this window a command advances the clock 1-2 s; above it, proportionally less, so
 * that the steps of one order stay well within the 2-day expiries the plans assume. */
#define TIME_WINDOW 4096u

/* --- seeded PRNG: splitmix64 seeding xoshiro256** ----------------------------------------- */

typedef struct rng {
	uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r)
{
	uint64_t *s = r->s;
	const uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

/* Uniform in [0, n). */
static uint32_t below(rng *r, uint32_t n)
{
	return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* One draw whatever per_mille is, so the knobs do not shift the draws that follow. */
static bool chance(rng *r, uint32_t per_mille)
{
	return below(r, 1000) < per_mille;
}

/* --- ids and reference data ----------------------------------------------------------- */

/* What kind of thing an id names (mixed into its hash). */
enum {
	K_ORDER = 1,
	K_CMD,
	K_BUYER,
	K_PROV,
	K_SP,
	K_CARD,
	K_RULE,
	K_RULECMD,
	K_SUPPORT,
	K_BINDCMD,
	K_MILESTONE
};

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* prefix + 26 Crockford characters, a pure function of (seed, kind, a, b): ULID-shaped. */
static void mkid(char out[ID_LEN], uint64_t seed, const char *prefix, uint64_t kind, uint64_t a,
		 uint64_t b)
{
	uint64_t x = seed ^ (kind * 0xD6E8FEB86659FD93ULL) ^ (a * 0x9E3779B97F4A7C15ULL) ^
		     (b * 0xC2B2AE3D27D4EB4FULL);
	uint64_t h[2] = {splitmix64(&x), splitmix64(&x)};
	size_t p = strlen(prefix);
	memcpy(out, prefix, p);
	for (int i = 0; i < 26; i++)
		out[p + (size_t)i] = crockford[(h[i / 13] >> (5 * (i % 13))) & 31];
	out[p + 26] = '\0';
}

typedef struct zone_info {
	const char *tz, *city, *currency;
	int32_t lat_milli, lng_milli; /* degrees / 1000: the JSON of a point stays short */
} zone_info;

/* Start times are 12:00 UTC: the local weekday equals the UTC weekday in all of these. */
static const zone_info zones[] = {
    {"Europe/Paris", "Paris", "EUR", 48860, 2350},
    {"Europe/London", "London", "GBP", 51510, -130},
    {"America/New_York", "New York", "USD", 40710, -74010},
    {"America/Los_Angeles", "Los Angeles", "USD", 34050, -118240},
    {"Europe/Berlin", "Berlin", "EUR", 52520, 13400},
    {"Asia/Tokyo", "Tokyo", "JPY", 35680, 139690},
    {"Australia/Sydney", "Sydney", "AUD", -33870, 151210},
    {"America/Sao_Paulo", "S\xC3\xA3o Paulo", "BRL", -23550, -46630},
};
#define N_ZONES (sizeof(zones) / sizeof(zones[0]))

static const char *const role_codes[] = {"photographer", "model", "videographer", "studio",
					 "makeup_artist"};
static const char *const packages[] = {"Half-day studio shoot", "Full-day editorial",
				       "Portrait session", "Lookbook, 30 looks", "Event coverage"};
static const char *const loc_kinds[] = {"buyer", "provider_studio", "rented_studio"};

/* --- plans ------------------------------------------------------------------------------ */

/* Operations of an order's plan. */
typedef enum op {
	OP_CREATE,
	OP_SUBMIT,
	OP_ACCEPT,
	OP_DECLINE,
	OP_COUNTER,
	OP_ACCEPT_COUNTER,
	OP_DECLINE_COUNTER,
	OP_INVITE_SEND,
	OP_INVITE_RESPOND,
	OP_INVITE_AWARD,
	OP_PAYMENT,
	OP_START,
	OP_DELIVER,
	OP_COMPLETE,
	OP_TIP,
	OP_NOTE,
	OP_CARD_RESCHEDULE,
	OP_CARD_EXTRAS,
	OP_CARD_RESPOND,
	OP_CANCEL,
	OP_DISPUTE_OPEN,
	OP_DISPUTE_RESOLVE,
	OP_MS_ADD,
	OP_MS_DELIVER,
	OP_MS_APPROVE,
	OP_MS_REFUND,
} op;

static const char *const op_type[] = {
    [OP_CREATE] = "order.create",
    [OP_SUBMIT] = "request.submit",
    [OP_ACCEPT] = "request.accept",
    [OP_DECLINE] = "request.decline",
    [OP_COUNTER] = "request.counter",
    [OP_ACCEPT_COUNTER] = "request.accept_counter",
    [OP_DECLINE_COUNTER] = "request.decline_counter",
    [OP_INVITE_SEND] = "invite.send",
    [OP_INVITE_RESPOND] = "invite.respond",
    [OP_INVITE_AWARD] = "invite.award",
    [OP_PAYMENT] = "payment.captured",
    [OP_START] = "order.start",
    [OP_DELIVER] = "order.deliver",
    [OP_COMPLETE] = "order.complete",
    [OP_TIP] = "tip.add",
    [OP_NOTE] = "note.add",
    [OP_CARD_RESCHEDULE] = "card.open",
    [OP_CARD_EXTRAS] = "card.open",
    [OP_CARD_RESPOND] = "card.respond",
    [OP_CANCEL] = "order.cancel",
    [OP_DISPUTE_OPEN] = "dispute.open",
    [OP_DISPUTE_RESOLVE] = "dispute.resolve",
    [OP_MS_ADD] = "milestone.add",
    [OP_MS_DELIVER] = "milestone.deliver",
    [OP_MS_APPROVE] = "milestone.approve",
    [OP_MS_REFUND] = "milestone.refund",
};

typedef enum mod { MOD_NONE, MOD_WRONG_ACTOR, MOD_STALE, MOD_DUP } mod;
typedef enum mode { M_RTB, M_IB, M_INVITE, M_ABANDON, M__COUNT } mode;

/* SUBMIT arg */
enum { SUB_PLAIN, SUB_EXPIRES, SUB_EXPIRES_NOW };

typedef struct step {
	uint8_t op, mod, expect, code; /* expect: bk_outcome; code: bk_err when rejected */
	uint8_t arg, arg2;
	uint8_t dup_of;	   /* MOD_DUP: index of the step resent */
	uint32_t alt;	   /* MOD_WRONG_ACTOR: the user index that acts instead */
	int64_t stale_ver; /* MOD_STALE: an expected_version below the order's */
} step;

/* A growable byte buffer (the packer's sink). */
typedef struct buf {
	char *data;
	size_t size, cap;
} buf;

typedef struct gorder {
	uint32_t idx;
	uint8_t mode, zone, loc_kind, role_code, pkg_title;
	bool overflow; /* a plan longer than MAX_STEPS (cannot happen; checked) */
	char id[ID_LEN];
	uint32_t buyer, prov; /* prov: for INVITE, the awarded recipient */
	uint32_t rcp[3];
	bool travel;
	int64_t travel_mi;
	int64_t start, end;
	int64_t pkg, trv, fee, tax;    /* create terms */
	int64_t cpkg, cfee, ctax;      /* counter terms */
	int64_t pay_total;	       /* amount captured */
	int64_t extra_qty, extra_unit; /* extras card */
	step st[MAX_STEPS];
	uint32_t off[MAX_STEPS]; /* where each step's bytes are in b (for resends) */
	uint32_t len[MAX_STEPS];
	uint32_t n, next;
	buf b; /* the bytes of the steps emitted so far; kept across plans */
} gorder;

enum { PHASE_RULES, PHASE_ORDERS };

struct bk_gen {
	bk_gen_opts opts;
	rng r;
	uint64_t seed;
	int64_t t0, now; /* t0: the UTC day of the start; now: the stream's clock */
	int64_t step_us; /* the clock's unit per command */
	uint32_t nb, np;
	char (*buyers)[ID_LEN], (*provs)[ID_LEN], (*sps)[ID_LEN], support[4][ID_LEN];
	msgpack_packer pk;
	buf *cur; /* where pk writes */
	buf rule_buf;
	bool oom;
	int phase;
	uint32_t rule_p, rule_k; /* the next rule to emit (k = 0: the profile's bind) */
	gorder *live;
	uint32_t window, n_live, next_order;
	int64_t done_slot; /* a live slot whose plan ended with the last command, -1: none */
	bk_gen_stats st;
};

static int buf_reserve(bk_gen *g, buf *b, size_t more)
{
	if (b->cap - b->size >= more)
		return 0;
	size_t cap = b->cap ? b->cap : 1024;
	while (cap - b->size < more)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p) {
		g->oom = true;
		return -1;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

static int gen_write(void *data, const char *s, size_t len)
{
	bk_gen *g = data;
	if (buf_reserve(g, g->cur, len) < 0)
		return -1;
	memcpy(g->cur->data + g->cur->size, s, len);
	g->cur->size += len;
	return 0;
}

static void p_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void p_kstr(msgpack_packer *pk, const char *k, const char *v)
{
	p_str(pk, k);
	p_str(pk, v);
}

static void p_kint(msgpack_packer *pk, const char *k, int64_t v)
{
	p_str(pk, k);
	msgpack_pack_int64(pk, v);
}

static void p_kf64(msgpack_packer *pk, const char *k, double v)
{
	p_str(pk, k);
	msgpack_pack_double(pk, v);
}

static void p_kts(msgpack_packer *pk, const char *k, int64_t us)
{
	char b[48];
	bk_ts_format(us, b, sizeof(b));
	p_kstr(pk, k, b);
}

static void p_item(msgpack_packer *pk, const char *kind, const char *title, int64_t qty,
		   int64_t unit)
{
	msgpack_pack_map(pk, 4);
	p_kstr(pk, "kind", kind);
	p_kstr(pk, "title", title);
	p_kint(pk, "qty", qty);
	p_kint(pk, "unit_cents", unit);
}

static int prov_class(uint32_t p)
{
	return (int)(p % 10); /* 0-2: IB rules, 3: RTB auto-accept rule on weekdays, 4-9: none */
}

static uint32_t pick_prov(bk_gen *g, int lo, int hi)
{
	for (;;) {
		uint32_t p = below(&g->r, g->np);
		if (prov_class(p) >= lo && prov_class(p) <= hi)
			return p;
	}
}

static int weekday_mon0(int64_t us)
{
	int64_t days = us / DAY_US;
	return (int)((days + 3) % 7); /* 1970-01-01 was a Thursday */
}

static void push_step(gorder *o, step s)
{
	if (o->n >= MAX_STEPS) {
		o->overflow = true;
		return;
	}
	o->st[o->n++] = s;
}

static void add(gorder *o, op what, uint8_t arg, uint8_t arg2)
{
	push_step(o, (step){.op = (uint8_t)what, .arg = arg, .arg2 = arg2, .expect = BK_ACCEPTED});
}

/* A step the engine must reject with `code`. */
static void add_rejected(gorder *o, op what, uint8_t arg, bk_err code)
{
	push_step(
	    o,
	    (step){.op = (uint8_t)what, .arg = arg, .expect = BK_REJECTED, .code = (uint8_t)code});
}

/* The role a step's actor asserts. */
static bk_role step_role(const step *s)
{
	switch ((op)s->op) {
	case OP_ACCEPT:
	case OP_DECLINE:
	case OP_COUNTER:
	case OP_START:
	case OP_DELIVER:
	case OP_INVITE_RESPOND:
	case OP_CARD_EXTRAS:
	case OP_MS_DELIVER:
	case OP_MS_REFUND:
		return BK_ROLE_PROVIDER;
	case OP_PAYMENT:
		return BK_ROLE_SYSTEM;
	case OP_DISPUTE_RESOLVE:
		return BK_ROLE_SUPPORT;
	case OP_NOTE:
	case OP_CANCEL:
		return s->arg ? BK_ROLE_PROVIDER : BK_ROLE_BUYER;
	case OP_CARD_RESPOND:
		return s->arg == 0 ? BK_ROLE_PROVIDER : BK_ROLE_BUYER; /* card 0: reschedule */
	default:
		return BK_ROLE_BUYER;
	}
}

/* After acceptance: payment, cards, work, the end (completion, a cancel or a dispute). */
static void plan_after_accept(bk_gen *g, gorder *o)
{
	rng *r = &g->r;
	if (chance(r, 50)) {
		add(o, OP_CANCEL, 0, 0); /* the buyer walks away before paying */
		return;
	}
	add(o, OP_PAYMENT, 0, 0);
	if (chance(r, 120)) {
		add(o, OP_CARD_RESCHEDULE, 0, 0);
		add(o, OP_CARD_RESPOND, 0, chance(r, 850));
	}
	if (chance(r, 80)) {
		o->extra_qty = 1 + below(r, 5);
		o->extra_unit = 1500 + 100 * (int64_t)below(r, 36);
		add(o, OP_CARD_EXTRAS, 1, 0);
		add(o, OP_CARD_RESPOND, 1, chance(r, 800));
	}
	if (chance(r, 30)) {
		add(o, OP_CANCEL, 1, 0); /* the provider cancels: full refund */
		return;
	}
	add(o, OP_START, 0, 0);
	if (chance(r, 80))
		add(o, OP_NOTE, 1, 0);
	if (chance(r, 100)) { /* a milestone: delivered and approved, or refunded */
		add(o, OP_MS_ADD, 0, 0);
		if (chance(r, 750)) {
			add(o, OP_MS_DELIVER, 0, 0);
			add(o, OP_MS_APPROVE, 0, 0);
		} else {
			add(o, OP_MS_REFUND, 0, 0);
		}
	}
	add(o, OP_DELIVER, 0, 0);
	if (chance(r, 15)) {
		add(o, OP_DISPUTE_OPEN, 0, 0);
		add(o, OP_DISPUTE_RESOLVE, 0, 0);
		return;
	}
	add(o, OP_COMPLETE, 0, 0);
	if (chance(r, 200))
		add(o, OP_TIP, 0, 0);
}

/* A resend waiting to be placed: of step `pos`, after `left` more planned steps. */
typedef struct pending {
	uint8_t pos, left;
} pending;

static step resend_of(const gorder *o, uint8_t pos)
{
	return (step){.op = o->st[pos].op, .mod = MOD_DUP, .expect = BK_DUPLICATE, .dup_of = pos};
}

/*
 * Insert invalid copies (wrong actor, stale expected_version) and resends into a plan.
 * A copy is judged in the state its original expects. The engine checks, in this order,
 * expected_version, the status table, then the actor's identity: a stale copy is a
 * version_conflict; a wrong actor's copy is forbidden, unless the original itself fails
 * the status table (an answer to an expired request): then it fails the same way.
 */
static void plan_noise(bk_gen *g, gorder *o)
{
	const bk_gen_opts *op = &g->opts;
	step in[MAX_STEPS];
	uint32_t n = o->n, ok = 0;
	pending pend[MAX_STEPS];
	uint32_t n_pend = 0;
	memcpy(in, o->st, sizeof(step) * n);
	o->n = 0;
	for (uint32_t i = 0; i < n; i++) {
		step s = in[i];
		bk_role role = step_role(&s);
		if (s.op != OP_CREATE && ok > 0 &&
		    (role == BK_ROLE_BUYER || role == BK_ROLE_PROVIDER) &&
		    chance(&g->r, op->wrong_actor_per_mille)) {
			step w = s;
			w.mod = MOD_WRONG_ACTOR;
			w.expect = BK_REJECTED;
			w.code = s.expect == BK_REJECTED && s.code == BK_E_INVALID_TRANSITION
				     ? BK_E_INVALID_TRANSITION
				     : BK_E_FORBIDDEN;
			if (role == BK_ROLE_BUYER) {
				w.alt = (o->buyer + 1 + below(&g->r, g->nb - 1)) % g->nb;
			} else {
				for (;;) {
					w.alt = below(&g->r, g->np);
					if (w.alt != o->prov && w.alt != o->rcp[0] &&
					    w.alt != o->rcp[1] && w.alt != o->rcp[2])
						break;
				}
			}
			push_step(o, w);
			g->st.wrong_actor++;
		} else if (s.op != OP_CREATE && ok > 0 && chance(&g->r, op->stale_per_mille)) {
			step w = s;
			w.mod = MOD_STALE;
			w.expect = BK_REJECTED;
			w.code = BK_E_VERSION_CONFLICT;
			w.stale_ver = ok - 1; /* every accepted command added >= 1 event */
			push_step(o, w);
			g->st.stale++;
		}
		push_step(o, s);
		g->st.planned++;
		if (s.expect == BK_ACCEPTED) {
			ok++;
			if (chance(&g->r, op->dup_per_mille))
				pend[n_pend++] =
				    (pending){(uint8_t)(o->n - 1), (uint8_t)below(&g->r, 3)};
		}
		for (uint32_t k = 0; k < n_pend;) {
			if (pend[k].left-- == 0) {
				push_step(o, resend_of(o, pend[k].pos));
				g->st.duplicates++;
				pend[k] = pend[--n_pend];
			} else {
				k++;
			}
		}
	}
	for (uint32_t k = 0; k < n_pend; k++) {
		push_step(o, resend_of(o, pend[k].pos));
		g->st.duplicates++;
	}
}

/* Plan order idx into o (its byte buffer is kept, emptied). */
static void plan_order(bk_gen *g, gorder *o, uint32_t idx)
{
	rng *r = &g->r;
	buf keep = o->b;
	memset(o, 0, sizeof(*o));
	o->b = keep;
	o->b.size = 0;
	o->idx = idx;
	mkid(o->id, g->seed, "ord_", K_ORDER, idx, 0);
	uint32_t m = below(r, 1000);
	o->mode = m < 600 ? M_RTB : m < 850 ? M_IB : m < 950 ? M_INVITE : M_ABANDON;
	switch ((mode)o->mode) {
	case M_RTB:
		g->st.rtb++;
		break;
	case M_IB:
		g->st.ib++;
		break;
	case M_INVITE:
		g->st.invite++;
		break;
	case M_ABANDON:
	case M__COUNT:
		g->st.abandoned++;
		break;
	}
	o->buyer = below(r, g->nb);
	o->zone = (uint8_t)below(r, N_ZONES);
	o->loc_kind = (uint8_t)below(r, 3);
	o->role_code = (uint8_t)below(r, 5);
	o->pkg_title = (uint8_t)below(r, 5);
	o->rcp[0] = o->rcp[1] = o->rcp[2] = UINT32_MAX;
	o->start = g->t0 + (20 + (int64_t)below(r, 60)) * DAY_US + 12 * HOUR_US;
	o->end = o->start + (2 + (int64_t)below(r, 7)) * HOUR_US;
	o->pkg = (o->mode == M_IB ? 20000 + 500 * (int64_t)below(r, 121)
				  : 15000 + 500 * (int64_t)below(r, 131));
	o->travel = chance(r, 500);
	o->trv = o->travel ? 1500 + 100 * (int64_t)below(r, 36) : 0;
	o->travel_mi = o->travel ? 3 + (int64_t)below(r, 38) : 0;
	int64_t sub = o->pkg + o->trv;
	o->fee = sub / 10;
	o->tax = (sub + o->fee) / 5;
	o->pay_total = sub + o->fee + o->tax;

	add(o, OP_CREATE, 0, 0);
	if (chance(r, 40))
		add(o, OP_NOTE, 0, 0);
	switch ((mode)o->mode) {
	case M_RTB: {
		o->prov = pick_prov(g, 3, 9);
		bool autoacc = prov_class(o->prov) == 3 && weekday_mon0(o->start) < 5;
		if (!autoacc && chance(r, 15)) {
			/* the request expires one clock step later (a second unless the window
			 * is large); the provider answers too late: the lazy expiry declines the
			 * order first */
			add(o, OP_SUBMIT, SUB_EXPIRES_NOW, 0);
			add_rejected(o, OP_ACCEPT, 0, BK_E_INVALID_TRANSITION);
			break;
		}
		add(o, OP_SUBMIT, chance(r, 300) ? SUB_EXPIRES : SUB_PLAIN, 0);
		if (!autoacc) {
			uint32_t k = below(r, 1000);
			if (k < 800) {
				add(o, OP_ACCEPT, 0, 0);
			} else if (k < 920) {
				o->cpkg = o->pkg * (90 + below(r, 36)) / 100 / 100 * 100;
				int64_t csub = o->cpkg + o->trv;
				o->cfee = csub / 10;
				o->ctax = (csub + o->cfee) / 5;
				add(o, OP_COUNTER, 0, 0);
				if (!chance(r, 750)) {
					add(o, OP_DECLINE_COUNTER, 0, 0);
					break;
				}
				o->pay_total = csub + o->cfee + o->ctax;
				add(o, OP_ACCEPT_COUNTER, 0, 0);
			} else {
				add(o, OP_DECLINE, 0, 0);
				break;
			}
		}
		plan_after_accept(g, o);
		break;
	}
	case M_IB:
		if (chance(r, 20)) {
			/* no rule of this provider allows instant booking: rejected, then
			 * cancelled */
			o->prov = pick_prov(g, 4, 9);
			add_rejected(o, OP_SUBMIT, SUB_PLAIN, BK_E_IB_NOT_ALLOWED);
			add(o, OP_CANCEL, 0, 0);
			break;
		}
		o->prov = pick_prov(g, 0, 2);
		add(o, OP_SUBMIT, SUB_PLAIN, 0);
		plan_after_accept(g, o);
		break;
	case M_INVITE: {
		for (int i = 0; i < 3; i++) {
			uint32_t p;
			do
				p = below(r, g->np);
			while (p == o->rcp[0] || p == o->rcp[1]);
			o->rcp[i] = p;
		}
		add(o, OP_INVITE_SEND, 0, 0);
		uint32_t nresp = 2 + below(r, 2);
		for (uint32_t i = 0; i < nresp; i++)
			add(o, OP_INVITE_RESPOND, (uint8_t)i, 0);
		o->prov = o->rcp[below(r, nresp)];
		add(o, OP_INVITE_AWARD, 0, 0);
		plan_after_accept(g, o);
		break;
	}
	case M_ABANDON:
		o->prov = pick_prov(g, 4, 9);
		if (chance(r, 500))
			add(o, OP_SUBMIT, SUB_PLAIN, 0);
		add(o, OP_CANCEL, 0, 0);
		break;
	case M__COUNT:
		break;
	}
	plan_noise(g, o);
}

/* --- encoding ------------------------------------------------------------------------- */

/* Envelope up to (and including) the "payload" key. */
static void p_envelope(bk_gen *g, const char *id, const char *type, const char *key, bk_role role,
		       const char *user, bool has_ver, int64_t ver)
{
	msgpack_packer *pk = &g->pk;
	msgpack_pack_map(pk, has_ver ? 7 : 6);
	p_kstr(pk, "id", id);
	p_kstr(pk, "type", type);
	p_kstr(pk, "order_id", key);
	p_str(pk, "actor");
	msgpack_pack_map(pk, user ? 2 : 1);
	if (user)
		p_kstr(pk, "user_id", user);
	p_kstr(pk, "role", bk_role_name(role));
	if (has_ver)
		p_kint(pk, "expected_version", ver);
	p_kts(pk, "at", g->now);
	p_str(pk, "payload");
}

static void p_create(bk_gen *g, const gorder *o)
{
	msgpack_packer *pk = &g->pk;
	const zone_info *z = &zones[o->zone];
	bool invite = o->mode == M_INVITE;
	msgpack_pack_map(pk, 12 + (invite ? 0 : 2) + (o->travel ? 1 : 0));
	if (!invite) {
		p_kstr(pk, "provider_user_id", g->provs[o->prov]);
		p_kstr(pk, "service_profile_id", g->sps[o->prov]);
	}
	p_kstr(pk, "mode", o->mode == M_IB ? "IB" : invite ? "INVITE" : "RTB");
	p_kstr(pk, "role_code", role_codes[o->role_code]);
	p_kstr(pk, "city", z->city);
	p_kts(pk, "start_ts", o->start);
	p_kts(pk, "end_ts", o->end);
	p_kstr(pk, "timezone", z->tz);
	p_str(pk, "location");
	msgpack_pack_map(pk, 4);
	p_kstr(pk, "kind", loc_kinds[o->loc_kind]);
	char addr[96];
	snprintf(addr, sizeof(addr), "%u Market Street, %s", 1 + o->idx % 400, z->city);
	p_kstr(pk, "address", addr);
	/* the doubles nearest to 3-decimal numbers: 15 significant digits give them back */
	p_kf64(pk, "lat", (double)(z->lat_milli + (int32_t)(o->idx % 100)) / 1000.0);
	p_kf64(pk, "lng", (double)(z->lng_milli - (int32_t)(o->idx % 100)) / 1000.0);
	if (o->travel)
		p_kint(pk, "travel_miles", o->travel_mi);
	p_kstr(pk, "currency", z->currency);
	p_str(pk, "line_items");
	msgpack_pack_array(pk, o->travel ? 2 : 1);
	p_item(pk, "package", packages[o->pkg_title], 1, o->pkg);
	if (o->travel)
		p_item(pk, "travel", "Travel", 1, o->trv);
	p_kint(pk, "platform_fee_cents", o->fee);
	p_kint(pk, "tax_cents", o->tax);
	p_str(pk, "policy");
	msgpack_pack_map(pk, 2);
	p_kstr(pk, "cancellation", o->idx % 3 ? "flexible" : "moderate");
	p_kint(pk, "full_refund_until_hours", o->idx % 3 ? 48 : 168);
}

static void p_payload(bk_gen *g, const gorder *o, const step *s)
{
	msgpack_packer *pk = &g->pk;
	char id[ID_LEN];
	switch ((op)s->op) {
	case OP_CREATE:
		p_create(g, o);
		break;
	case OP_SUBMIT:
		msgpack_pack_map(pk, s->arg == SUB_PLAIN ? 1 : 2);
		p_kstr(pk, "message",
		       "Hi! Are you available for this date? We would love to work "
		       "with you.");
		if (s->arg == SUB_EXPIRES)
			p_kts(pk, "expires_at", g->now + 2 * DAY_US);
		else if (s->arg == SUB_EXPIRES_NOW) /* the next command comes later */
			p_kts(pk, "expires_at", g->now + g->step_us);
		break;
	case OP_DECLINE:
		msgpack_pack_map(pk, 1);
		p_kstr(pk, "reason", "Fully booked that week, sorry.");
		break;
	case OP_COUNTER:
		msgpack_pack_map(pk, 5);
		p_str(pk, "line_items");
		msgpack_pack_array(pk, o->travel ? 2 : 1);
		p_item(pk, "package", packages[o->pkg_title], 1, o->cpkg);
		if (o->travel)
			p_item(pk, "travel", "Travel", 1, o->trv);
		p_kint(pk, "platform_fee_cents", o->cfee);
		p_kint(pk, "tax_cents", o->ctax);
		p_kstr(pk, "message", "I can do it at this rate.");
		p_kts(pk, "expires_at", g->now + 2 * DAY_US);
		break;
	case OP_INVITE_SEND:
		msgpack_pack_map(pk, 3);
		p_str(pk, "recipients");
		msgpack_pack_array(pk, 3);
		for (int i = 0; i < 3; i++)
			p_str(pk, g->provs[o->rcp[i]]);
		p_kstr(pk, "message", "Casting for a spring campaign, interested?");
		p_kts(pk, "expires_at", g->now + 2 * DAY_US);
		break;
	case OP_INVITE_RESPOND:
		msgpack_pack_map(pk, 1);
		p_kstr(pk, "message", "Interested, portfolio attached.");
		break;
	case OP_INVITE_AWARD:
		msgpack_pack_map(pk, 2);
		p_kstr(pk, "recipient_user_id", g->provs[o->prov]);
		p_kstr(pk, "service_profile_id", g->sps[o->prov]);
		break;
	case OP_PAYMENT:
		msgpack_pack_map(pk, 3);
		mkid(id, g->seed, "pi_", K_CMD, o->idx, 1000);
		p_kstr(pk, "payment_intent_id", id);
		p_kint(pk, "amount_cents", o->pay_total);
		mkid(id, g->seed, "tg_", K_ORDER, o->idx, 0);
		p_kstr(pk, "transfer_group", id);
		break;
	case OP_TIP:
		msgpack_pack_map(pk, 1);
		p_kint(pk, "amount_cents", 500 + 100 * (int64_t)(o->idx % 46));
		break;
	case OP_NOTE:
		msgpack_pack_map(pk, 2);
		p_kstr(pk, "text", "Parking is behind the building, ring twice.");
		p_kstr(pk, "visibility", "parties");
		break;
	case OP_CARD_RESCHEDULE:
		msgpack_pack_map(pk, 4);
		p_kstr(pk, "type", "reschedule");
		mkid(id, g->seed, "acd_", K_CARD, o->idx, 0);
		p_kstr(pk, "card_id", id);
		p_kts(pk, "expires_at", g->now + 3 * DAY_US);
		p_str(pk, "payload");
		msgpack_pack_map(pk, 2);
		p_kts(pk, "start_ts", o->start + 2 * DAY_US);
		p_kts(pk, "end_ts", o->end + 2 * DAY_US);
		break;
	case OP_CARD_EXTRAS:
		msgpack_pack_map(pk, 4);
		p_kstr(pk, "type", "extras");
		mkid(id, g->seed, "acd_", K_CARD, o->idx, 1);
		p_kstr(pk, "card_id", id);
		p_kts(pk, "expires_at", g->now + 3 * DAY_US);
		p_str(pk, "payload");
		msgpack_pack_map(pk, 1);
		p_str(pk, "line_items");
		msgpack_pack_array(pk, 1);
		p_item(pk, "extra", "Extra retouched images", o->extra_qty, o->extra_unit);
		break;
	case OP_CARD_RESPOND:
		msgpack_pack_map(pk, 2);
		mkid(id, g->seed, "acd_", K_CARD, o->idx, s->arg);
		p_kstr(pk, "card_id", id);
		p_kstr(pk, "action", s->arg2 ? "accept" : "decline");
		break;
	case OP_CANCEL:
		msgpack_pack_map(pk, 1);
		p_kstr(pk, "reason", s->arg ? "Injured, cannot shoot." : "Plans changed.");
		break;
	case OP_DISPUTE_OPEN:
		msgpack_pack_map(pk, 2);
		p_kstr(pk, "reason", "not_as_described");
		p_kstr(pk, "description", "Half of the looks were not delivered.");
		break;
	case OP_DISPUTE_RESOLVE:
		msgpack_pack_map(pk, 2);
		p_kstr(pk, "outcome", "resolved_buyer");
		p_kstr(pk, "note", "Deliverables missing; full refund.");
		break;
	case OP_MS_ADD: /* half the package: within the order's subtotal */
		msgpack_pack_map(pk, 4);
		mkid(id, g->seed, "mst_", K_MILESTONE, o->idx, 0);
		p_kstr(pk, "milestone_id", id);
		p_kstr(pk, "title", "First selection of retouched images");
		p_kts(pk, "due_ts", o->end + DAY_US);
		p_kint(pk, "amount_cents", o->pkg / 2 > 0 ? o->pkg / 2 : 1);
		break;
	case OP_MS_DELIVER:
	case OP_MS_APPROVE:
	case OP_MS_REFUND:
		msgpack_pack_map(pk, 1);
		mkid(id, g->seed, "mst_", K_MILESTONE, o->idx, 0);
		p_kstr(pk, "milestone_id", id);
		break;
	case OP_ACCEPT:
	case OP_ACCEPT_COUNTER:
	case OP_DECLINE_COUNTER:
	case OP_START:
	case OP_DELIVER:
	case OP_COMPLETE:
		msgpack_pack_map(pk, 0);
		break;
	}
}

static const bk_gen_kind kind_of_mod[] = {
    [MOD_NONE] = BK_GEN_PLANNED,
    [MOD_WRONG_ACTOR] = BK_GEN_WRONG_ACTOR,
    [MOD_STALE] = BK_GEN_STALE,
    [MOD_DUP] = BK_GEN_DUPLICATE,
};

/* Append the order's next step to its bytes at the stream's clock; describe it in *ret. */
static int emit_step(bk_gen *g, gorder *o, bk_gen_cmd *ret)
{
	uint32_t i = o->next++;
	const step *s = &o->st[i];
	size_t off = o->b.size;
	g->cur = &o->b;
	if (s->mod == MOD_DUP) {
		uint32_t len = o->len[s->dup_of];
		if (buf_reserve(g, &o->b, len) < 0)
			return -1;
		memcpy(o->b.data + off, o->b.data + o->off[s->dup_of], len);
		o->b.size += len;
	} else {
		char cid[ID_LEN];
		mkid(cid, g->seed, "cmd_", K_CMD, o->idx, i);
		bk_role role = step_role(s);
		const char *user = NULL;
		if (role == BK_ROLE_BUYER)
			user = g->buyers[s->mod == MOD_WRONG_ACTOR ? s->alt : o->buyer];
		else if (role == BK_ROLE_PROVIDER)
			user = g->provs[s->mod == MOD_WRONG_ACTOR    ? s->alt
					: s->op == OP_INVITE_RESPOND ? o->rcp[s->arg]
								     : o->prov];
		else if (role == BK_ROLE_SUPPORT)
			user = g->support[o->idx % 4];
		p_envelope(g, cid, op_type[s->op], o->id, role, user, s->mod == MOD_STALE,
			   s->stale_ver);
		p_payload(g, o, s);
		if (g->oom)
			return -1;
	}
	if (o->b.size > UINT32_MAX)
		return -1; /* cannot happen: an order's bytes are a few kB */
	o->off[i] = (uint32_t)off;
	o->len[i] = (uint32_t)(o->b.size - off);
	*ret = (bk_gen_cmd){.bytes = o->b.data + off,
			    .len = o->len[i],
			    .key = o->id,
			    .index = g->st.commands++,
			    .kind = kind_of_mod[s->mod],
			    .expect = (bk_outcome)s->expect,
			    .expect_code = s->expect == BK_REJECTED ? (bk_err)s->code : BK_E_OK};
	g->now += (1 + (int64_t)below(&g->r, 2)) * g->step_us;
	return 0;
}

/* Auto-accept rules of provider p: IB providers allow instant booking (two rules),
 * class 3 auto-accepts RTB on weekdays (one), the others have none. */
static uint32_t rules_of(uint32_t p)
{
	int cls = prov_class(p);
	return cls < 3 ? 2 : cls == 3 ? 1 : 0;
}

/* profile.bind of provider p's service profile, by the profiles service (role system),
 * before its rules: autoaccept.* are allowed only on a bound profile. */
static int emit_bind(bk_gen *g, uint32_t p, bk_gen_cmd *ret)
{
	msgpack_packer *pk = &g->pk;
	char cid[ID_LEN];
	g->rule_buf.size = 0;
	g->cur = &g->rule_buf;
	mkid(cid, g->seed, "cmd_", K_BINDCMD, p, 0);
	p_envelope(g, cid, "profile.bind", g->sps[p], BK_ROLE_SYSTEM, NULL, false, 0);
	msgpack_pack_map(pk, 2);
	p_kstr(pk, "service_profile_id", g->sps[p]);
	p_kstr(pk, "provider_user_id", g->provs[p]);
	if (g->oom)
		return -1;
	*ret = (bk_gen_cmd){.bytes = g->rule_buf.data,
			    .len = g->rule_buf.size,
			    .key = g->sps[p],
			    .index = g->st.commands++,
			    .kind = BK_GEN_BIND,
			    .expect = BK_ACCEPTED,
			    .expect_code = BK_E_OK};
	g->st.binds++;
	g->now += BK_US_PER_S;
	return 0;
}

static int emit_rule(bk_gen *g, uint32_t p, uint32_t k, bk_gen_cmd *ret)
{
	msgpack_packer *pk = &g->pk;
	int cls = prov_class(p);
	char cid[ID_LEN], rid[ID_LEN];
	g->rule_buf.size = 0;
	g->cur = &g->rule_buf;
	mkid(cid, g->seed, "cmd_", K_RULECMD, p, (uint64_t)k);
	mkid(rid, g->seed, "rule_", K_RULE, p, (uint64_t)k);
	p_envelope(g, cid, "autoaccept.set", g->sps[p], BK_ROLE_PROVIDER, g->provs[p], false, 0);
	bool ib = cls < 3;
	msgpack_pack_map(pk, ib && k == 0 ? 6 : 5);
	p_kstr(pk, "rule_id", rid);
	p_kstr(pk, "service_profile_id", g->sps[p]);
	p_kint(pk, "min_price_cents", ib ? (k == 0 ? 5000 : 20000) : 10000);
	p_kint(pk, "weekday_mask", ib && k == 1 ? 96 : 31); /* 31 Mon-Fri, 96 Sat-Sun */
	if (ib && k == 0)
		p_kf64(pk, "max_distance_mi", 50);
	p_str(pk, "allow_ib");
	if (ib)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	if (g->oom)
		return -1;
	*ret = (bk_gen_cmd){.bytes = g->rule_buf.data,
			    .len = g->rule_buf.size,
			    .key = g->sps[p],
			    .index = g->st.commands++,
			    .kind = BK_GEN_RULE,
			    .expect = BK_ACCEPTED,
			    .expect_code = BK_E_OK};
	g->st.rules++;
	g->now += BK_US_PER_S;
	return 0;
}

/* --- API ---------------------------------------------------------------------------- */

const char *bk_gen_kind_name(bk_gen_kind k)
{
	static const char *const names[BK_GEN__COUNT] = {
	    [BK_GEN_BIND] = "bind",
	    [BK_GEN_RULE] = "rule",
	    [BK_GEN_PLANNED] = "planned",
	    [BK_GEN_DUPLICATE] = "duplicate",
	    [BK_GEN_WRONG_ACTOR] = "wrong_actor",
	    [BK_GEN_STALE] = "stale",
	};
	return (unsigned)k < BK_GEN__COUNT ? names[k] : "unknown";
}

void bk_gen_opts_default(bk_gen_opts *ret)
{
	*ret = (bk_gen_opts){.orders = 1000,
			     .seed = 1,
			     .window = 4096,
			     .dup_per_mille = 32,
			     .wrong_actor_per_mille = 14,
			     .stale_per_mille = 12,
			     .start_us = BK_GEN_START_DEFAULT};
}

/* 9000-01-01T00:00:00Z: the stream may run for years and must stay in 4-digit years. */
#define MAX_START_US (INT64_C(221845392000) * BK_US_PER_S)

bk_gen *bk_gen_new(const bk_gen_opts *opts, char *errstr, size_t errstr_size)
{
	const char *bad = NULL;
	if (opts->orders < 1 || opts->orders > BK_GEN_MAX_ORDERS)
		bad = "orders: 1 to 50000000";
	else if (opts->window < 1 || opts->window > MAX_WINDOW)
		bad = "window: 1 to 65536";
	else if (opts->dup_per_mille > 1000 || opts->wrong_actor_per_mille > 1000 ||
		 opts->stale_per_mille > 1000)
		bad = "per-mille knobs: 0 to 1000";
	else if (opts->start_us < 0 || opts->start_us >= MAX_START_US)
		bad = "start: from 1970 to 8999";
	if (bad) {
		snprintf(errstr, errstr_size, "%s", bad);
		return NULL;
	}
	bk_gen *g = calloc(1, sizeof(*g));
	if (!g) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	g->opts = *opts;
	g->seed = opts->seed;
	rng_seed(&g->r, opts->seed);
	g->t0 = opts->start_us / DAY_US * DAY_US;
	g->now = opts->start_us;
	g->window = opts->window > opts->orders ? opts->orders : opts->window;
	g->step_us =
	    g->window <= TIME_WINDOW ? BK_US_PER_S : BK_US_PER_S * (int64_t)TIME_WINDOW / g->window;
	g->nb = opts->orders / 3 > 16 ? opts->orders / 3 : 16;
	g->np = opts->orders / 20 > 40 ? opts->orders / 20 : 40;
	g->buyers = calloc(g->nb, ID_LEN);
	g->provs = calloc(g->np, ID_LEN);
	g->sps = calloc(g->np, ID_LEN);
	g->live = calloc(g->window, sizeof(*g->live));
	if (!g->buyers || !g->provs || !g->sps || !g->live) {
		bk_gen_free(g);
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	for (uint32_t i = 0; i < g->nb; i++)
		mkid(g->buyers[i], g->seed, "usr_", K_BUYER, i, 0);
	for (uint32_t i = 0; i < g->np; i++) {
		mkid(g->provs[i], g->seed, "usr_", K_PROV, i, 0);
		mkid(g->sps[i], g->seed, "sp_", K_SP, i, 0);
	}
	for (uint32_t i = 0; i < 4; i++)
		mkid(g->support[i], g->seed, "usr_", K_SUPPORT, i, 0);
	msgpack_packer_init(&g->pk, g, gen_write);
	g->phase = PHASE_RULES;
	g->done_slot = -1;
	return g;
}

void bk_gen_free(bk_gen *g)
{
	if (!g)
		return;
	if (g->live)
		for (uint32_t i = 0; i < g->window; i++)
			free(g->live[i].b.data);
	free(g->live);
	free(g->rule_buf.data);
	free(g->buyers);
	free(g->provs);
	free(g->sps);
	free(g);
}

static int fail(bk_gen *g, char *errstr, size_t errstr_size, const char *why)
{
	g->oom = true; /* unusable from now on */
	snprintf(errstr, errstr_size, "%s", why);
	return -1;
}

static int plan_into(bk_gen *g, gorder *o, char *errstr, size_t errstr_size)
{
	plan_order(g, o, g->next_order++);
	if (o->overflow)
		return fail(g, errstr, errstr_size, "internal: a plan exceeds its steps");
	return 0;
}

/*
 * The draws happen in this order, whatever the caller does between calls: the plans of
 * the first `window` orders (after the rules, which draw nothing), then per command the
 * live order to advance, its clock step, and, when its plan ended, the next order's plan.
 */
int bk_gen_next(bk_gen *g, bk_gen_cmd *ret, char *errstr, size_t errstr_size)
{
	if (g->oom)
		return fail(g, errstr, errstr_size, "out of memory (earlier)");
	if (g->phase == PHASE_RULES) {
		/* per provider with rules: its profile's bind (k = 0), then its rules */
		while (g->rule_p < g->np &&
		       (rules_of(g->rule_p) == 0 || g->rule_k > rules_of(g->rule_p))) {
			g->rule_p++;
			g->rule_k = 0;
		}
		if (g->rule_p < g->np) {
			uint32_t k = g->rule_k++;
			if ((k == 0 ? emit_bind(g, g->rule_p, ret)
				    : emit_rule(g, g->rule_p, k - 1, ret)) < 0)
				return fail(g, errstr, errstr_size, "out of memory");
			return 1;
		}
		g->phase = PHASE_ORDERS;
		while (g->n_live < g->window && g->next_order < g->opts.orders)
			if (plan_into(g, &g->live[g->n_live++], errstr, errstr_size) < 0)
				return -1;
	}
	if (g->done_slot >= 0) {
		uint32_t k = (uint32_t)g->done_slot;
		g->done_slot = -1;
		if (g->next_order < g->opts.orders) {
			if (plan_into(g, &g->live[k], errstr, errstr_size) < 0)
				return -1;
		} else {
			/* swap, so that every slot keeps one buffer */
			gorder t = g->live[k];
			g->live[k] = g->live[g->n_live - 1];
			g->live[--g->n_live] = t;
		}
	}
	if (g->n_live == 0)
		return 0;
	uint32_t k = below(&g->r, g->n_live);
	gorder *o = &g->live[k];
	if (emit_step(g, o, ret) < 0)
		return fail(g, errstr, errstr_size, "out of memory");
	if (o->next >= o->n)
		g->done_slot = k;
	return 1;
}

void bk_gen_stats_get(const bk_gen *g, bk_gen_stats *ret)
{
	*ret = g->st;
}
