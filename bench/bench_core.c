/*
 * bench_core.c - one-core throughput of the booking core. A seeded generator builds a
 * realistic command stream (RTB, IB, INVITE, cards, cancellations, disputes, ~3% resent
 * duplicates, ~2% invalid commands) as msgpack; the timed section runs bk_engine_handle
 * (decide + evolve, with canonical encoding and BLAKE2b of every event) and encodes each
 * events record. Codec rates and msgpack-c / libsodium baselines are measured in the same run.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>
#include <sodium.h>

#include "bk_codec.h"
#include "bk_engine.h"
#include "tz.h"

#define TARGET_CMDS_PER_S 1000000.0
#define MAX_STEPS	  64
#define ID_LEN		  40
#define DAY_US		  (86400 * BK_US_PER_S)
#define HOUR_US		  (3600 * BK_US_PER_S)

/* --- output helpers --------------------------------------------------------------------- */

static void die(const char *what)
{
	fprintf(stderr, "bench_core: %s\n", what);
	exit(1);
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);
	if (!p)
		die("out of memory");
	return p;
}

static void *xrealloc(void *p, size_t sz)
{
	p = realloc(p, sz ? sz : 1);
	if (!p)
		die("out of memory");
	return p;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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

static bool chance(rng *r, uint32_t per_mille)
{
	return below(r, 1000) < per_mille;
}

/* --- the generator ------------------------------------------------------------------------ */

/* What kind of thing an id names (mixed into its hash). */
enum { K_ORDER = 1, K_CMD, K_BUYER, K_PROV, K_SP, K_CARD, K_RULE, K_RULECMD, K_SUPPORT };

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
	double lat, lng;
} zone_info;

/* Start times are 12:00 UTC: the local weekday equals the UTC weekday in all of these. */
static const zone_info zones[] = {
    {"Europe/Paris", "Paris", "EUR", 48.86, 2.35},
    {"Europe/London", "London", "GBP", 51.51, -0.13},
    {"America/New_York", "New York", "USD", 40.71, -74.01},
    {"America/Los_Angeles", "Los Angeles", "USD", 34.05, -118.24},
    {"Europe/Berlin", "Berlin", "EUR", 52.52, 13.40},
    {"Asia/Tokyo", "Tokyo", "JPY", 35.68, 139.69},
    {"Australia/Sydney", "Sydney", "AUD", -33.87, 151.21},
    {"America/Sao_Paulo", "S\xC3\xA3o Paulo", "BRL", -23.55, -46.63},
};
#define N_ZONES (sizeof(zones) / sizeof(zones[0]))

static const char *const role_codes[] = {"photographer", "model", "videographer", "studio",
					 "makeup_artist"};
static const char *const packages[] = {"Half-day studio shoot", "Full-day editorial",
				       "Portrait session", "Lookbook, 30 looks", "Event coverage"};
static const char *const loc_kinds[] = {"buyer", "provider_studio", "rented_studio"};

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
};

typedef enum mod { MOD_NONE, MOD_WRONG_ACTOR, MOD_STALE, MOD_DUP } mod;
typedef enum mode { M_RTB, M_IB, M_INVITE, M_ABANDON, M__COUNT } mode;

/* SUBMIT arg */
enum { SUB_PLAIN, SUB_EXPIRES, SUB_EXPIRES_NOW };

typedef struct step {
	uint8_t op, mod, expect; /* expect: bk_outcome */
	uint8_t arg, arg2;
	uint8_t dup_of;	   /* MOD_DUP: index of the step resent */
	uint32_t alt;	   /* MOD_WRONG_ACTOR: the user index that acts instead */
	int64_t stale_ver; /* MOD_STALE: an expected_version below the order's */
} step;

typedef struct gorder {
	uint32_t idx;
	uint8_t mode, zone, loc_kind, role_code, pkg_title;
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
	size_t off[MAX_STEPS]; /* where each step's bytes went (for resends) */
	uint32_t len[MAX_STEPS];
	uint32_t n, next;
} gorder;

typedef struct cmdref {
	size_t off;
	uint32_t len;
	uint8_t expect; /* bk_outcome */
} cmdref;

typedef struct gen {
	rng r;
	uint64_t seed;
	int64_t t0, now; /* the stream's clock: +1..2 s per command */
	uint32_t nb, np;
	char (*buyers)[ID_LEN], (*provs)[ID_LEN], (*sps)[ID_LEN], support[4][ID_LEN];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	cmdref *v;
	size_t n, cap;
	char *scratch; /* a resent command's bytes */
	size_t scratch_cap;
	/* what was generated */
	size_t n_orders[M__COUNT], n_valid, n_dup, n_wrong, n_stale, n_rules;
} gen;

static int gen_write(void *data, const char *buf, size_t len)
{
	if (msgpack_sbuffer_write(data, buf, len) != 0)
		die("out of memory");
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

static uint32_t pick_prov(gen *g, int lo, int hi)
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
	if (o->n >= MAX_STEPS)
		die("plan too long");
	o->st[o->n++] = s;
}

static void add(gorder *o, op what, uint8_t arg, uint8_t arg2, bk_outcome expect)
{
	push_step(o,
		  (step){.op = (uint8_t)what, .arg = arg, .arg2 = arg2, .expect = (uint8_t)expect});
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
static void plan_after_accept(gen *g, gorder *o)
{
	rng *r = &g->r;
	if (chance(r, 50)) {
		add(o, OP_CANCEL, 0, 0, BK_ACCEPTED); /* the buyer walks away before paying */
		return;
	}
	add(o, OP_PAYMENT, 0, 0, BK_ACCEPTED);
	if (chance(r, 120)) {
		add(o, OP_CARD_RESCHEDULE, 0, 0, BK_ACCEPTED);
		add(o, OP_CARD_RESPOND, 0, chance(r, 850), BK_ACCEPTED);
	}
	if (chance(r, 80)) {
		o->extra_qty = 1 + below(r, 5);
		o->extra_unit = 1500 + 100 * (int64_t)below(r, 36);
		add(o, OP_CARD_EXTRAS, 1, 0, BK_ACCEPTED);
		add(o, OP_CARD_RESPOND, 1, chance(r, 800), BK_ACCEPTED);
	}
	if (chance(r, 30)) {
		add(o, OP_CANCEL, 1, 0, BK_ACCEPTED); /* the provider cancels: full refund */
		return;
	}
	add(o, OP_START, 0, 0, BK_ACCEPTED);
	if (chance(r, 80))
		add(o, OP_NOTE, 1, 0, BK_ACCEPTED);
	add(o, OP_DELIVER, 0, 0, BK_ACCEPTED);
	if (chance(r, 15)) {
		add(o, OP_DISPUTE_OPEN, 0, 0, BK_ACCEPTED);
		add(o, OP_DISPUTE_RESOLVE, 0, 0, BK_ACCEPTED);
		return;
	}
	add(o, OP_COMPLETE, 0, 0, BK_ACCEPTED);
	if (chance(r, 200))
		add(o, OP_TIP, 0, 0, BK_ACCEPTED);
}

/* A resend waiting to be placed: of step `pos`, after `left` more planned steps. */
typedef struct pending {
	uint8_t pos, left;
} pending;

static step resend_of(const gorder *o, uint8_t pos)
{
	return (step){.op = o->st[pos].op, .mod = MOD_DUP, .expect = BK_DUPLICATE, .dup_of = pos};
}

/* Insert invalid copies (wrong actor, stale expected_version) and resends into a plan. */
static void plan_noise(gen *g, gorder *o)
{
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
		    (role == BK_ROLE_BUYER || role == BK_ROLE_PROVIDER) && chance(&g->r, 14)) {
			step w = s;
			w.mod = MOD_WRONG_ACTOR;
			w.expect = BK_REJECTED;
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
			g->n_wrong++;
		} else if (s.op != OP_CREATE && ok > 0 && chance(&g->r, 12)) {
			step w = s;
			w.mod = MOD_STALE;
			w.expect = BK_REJECTED;
			w.stale_ver = ok - 1; /* every accepted command added >= 1 event */
			push_step(o, w);
			g->n_stale++;
		}
		push_step(o, s);
		g->n_valid++;
		if (s.expect == BK_ACCEPTED) {
			ok++;
			if (chance(&g->r, 32))
				pend[n_pend++] =
				    (pending){(uint8_t)(o->n - 1), (uint8_t)below(&g->r, 3)};
		}
		for (uint32_t k = 0; k < n_pend;) {
			if (pend[k].left-- == 0) {
				push_step(o, resend_of(o, pend[k].pos));
				g->n_dup++;
				pend[k] = pend[--n_pend];
			} else {
				k++;
			}
		}
	}
	for (uint32_t k = 0; k < n_pend; k++) {
		push_step(o, resend_of(o, pend[k].pos));
		g->n_dup++;
	}
}

static void plan_order(gen *g, gorder *o, uint32_t idx)
{
	rng *r = &g->r;
	memset(o, 0, sizeof(*o));
	o->idx = idx;
	mkid(o->id, g->seed, "ord_", K_ORDER, idx, 0);
	uint32_t m = below(r, 1000);
	o->mode = m < 600 ? M_RTB : m < 850 ? M_IB : m < 950 ? M_INVITE : M_ABANDON;
	g->n_orders[o->mode]++;
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

	add(o, OP_CREATE, 0, 0, BK_ACCEPTED);
	if (chance(r, 40))
		add(o, OP_NOTE, 0, 0, BK_ACCEPTED);
	switch ((mode)o->mode) {
	case M_RTB: {
		o->prov = pick_prov(g, 3, 9);
		bool autoacc = prov_class(o->prov) == 3 && weekday_mon0(o->start) < 5;
		if (!autoacc && chance(r, 15)) {
			/* the request expires a second later; the provider answers too late */
			add(o, OP_SUBMIT, SUB_EXPIRES_NOW, 0, BK_ACCEPTED);
			add(o, OP_ACCEPT, 0, 0, BK_REJECTED);
			break;
		}
		add(o, OP_SUBMIT, chance(r, 300) ? SUB_EXPIRES : SUB_PLAIN, 0, BK_ACCEPTED);
		if (!autoacc) {
			uint32_t k = below(r, 1000);
			if (k < 800) {
				add(o, OP_ACCEPT, 0, 0, BK_ACCEPTED);
			} else if (k < 920) {
				o->cpkg = o->pkg * (90 + below(r, 36)) / 100 / 100 * 100;
				int64_t csub = o->cpkg + o->trv;
				o->cfee = csub / 10;
				o->ctax = (csub + o->cfee) / 5;
				add(o, OP_COUNTER, 0, 0, BK_ACCEPTED);
				if (!chance(r, 750)) {
					add(o, OP_DECLINE_COUNTER, 0, 0, BK_ACCEPTED);
					break;
				}
				o->pay_total = csub + o->cfee + o->ctax;
				add(o, OP_ACCEPT_COUNTER, 0, 0, BK_ACCEPTED);
			} else {
				add(o, OP_DECLINE, 0, 0, BK_ACCEPTED);
				break;
			}
		}
		plan_after_accept(g, o);
		break;
	}
	case M_IB:
		if (chance(r, 20)) {
			/* no rule of this provider allows instant booking: rejected, then cancelled
			 */
			o->prov = pick_prov(g, 4, 9);
			add(o, OP_SUBMIT, SUB_PLAIN, 0, BK_REJECTED);
			add(o, OP_CANCEL, 0, 0, BK_ACCEPTED);
			break;
		}
		o->prov = pick_prov(g, 0, 2);
		add(o, OP_SUBMIT, SUB_PLAIN, 0, BK_ACCEPTED);
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
		add(o, OP_INVITE_SEND, 0, 0, BK_ACCEPTED);
		uint32_t nresp = 2 + below(r, 2);
		for (uint32_t i = 0; i < nresp; i++)
			add(o, OP_INVITE_RESPOND, (uint8_t)i, 0, BK_ACCEPTED);
		o->prov = o->rcp[below(r, nresp)];
		add(o, OP_INVITE_AWARD, 0, 0, BK_ACCEPTED);
		plan_after_accept(g, o);
		break;
	}
	case M_ABANDON:
		o->prov = pick_prov(g, 4, 9);
		if (chance(r, 500))
			add(o, OP_SUBMIT, SUB_PLAIN, 0, BK_ACCEPTED);
		add(o, OP_CANCEL, 0, 0, BK_ACCEPTED);
		break;
	case M__COUNT:
		break;
	}
	plan_noise(g, o);
}

static void push_cmd(gen *g, size_t off, bk_outcome expect)
{
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 1 << 16;
		g->v = xrealloc(g->v, g->cap * sizeof(*g->v));
	}
	g->v[g->n++] = (cmdref){off, (uint32_t)(g->sb.size - off), (uint8_t)expect};
}

/* Envelope up to (and including) the "payload" key. */
static void p_envelope(gen *g, const char *id, const char *type, const char *key, bk_role role,
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

static void p_create(gen *g, const gorder *o)
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
	p_kf64(pk, "lat", z->lat + (double)(o->idx % 100) * 0.001);
	p_kf64(pk, "lng", z->lng - (double)(o->idx % 100) * 0.001);
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

static void p_payload(gen *g, const gorder *o, const step *s)
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
		else if (s->arg == SUB_EXPIRES_NOW)
			p_kts(pk, "expires_at", g->now + BK_US_PER_S);
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

/* Append the order's next step to the stream at the stream's clock. */
static void emit_step(gen *g, gorder *o)
{
	uint32_t i = o->next++;
	step *s = &o->st[i];
	size_t off = g->sb.size;
	if (s->mod == MOD_DUP) {
		uint32_t len = o->len[s->dup_of];
		if (len > g->scratch_cap) {
			g->scratch_cap = len;
			g->scratch = xrealloc(g->scratch, len);
		}
		memcpy(g->scratch, g->sb.data + o->off[s->dup_of], len);
		gen_write(&g->sb, g->scratch, len);
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
	}
	o->off[i] = off;
	o->len[i] = (uint32_t)(g->sb.size - off);
	push_cmd(g, off, (bk_outcome)s->expect);
	g->now += (1 + (int64_t)below(&g->r, 2)) * BK_US_PER_S;
}

/* Auto-accept rules first: IB providers allow instant booking, class 3 auto-accepts RTB. */
static void emit_rules(gen *g)
{
	msgpack_packer *pk = &g->pk;
	for (uint32_t p = 0; p < g->np; p++) {
		int cls = prov_class(p);
		int n = cls < 3 ? 2 : cls == 3 ? 1 : 0;
		for (int k = 0; k < n; k++) {
			char cid[ID_LEN], rid[ID_LEN];
			size_t off = g->sb.size;
			mkid(cid, g->seed, "cmd_", K_RULECMD, p, (uint64_t)k);
			mkid(rid, g->seed, "rule_", K_RULE, p, (uint64_t)k);
			p_envelope(g, cid, "autoaccept.set", g->sps[p], BK_ROLE_PROVIDER,
				   g->provs[p], false, 0);
			bool ib = cls < 3;
			msgpack_pack_map(pk, ib && k == 0 ? 6 : 5);
			p_kstr(pk, "rule_id", rid);
			p_kstr(pk, "service_profile_id", g->sps[p]);
			p_kint(pk, "min_price_cents", ib ? (k == 0 ? 5000 : 20000) : 10000);
			p_kint(pk, "weekday_mask",
			       ib && k == 1 ? 96 : 31); /* 31 Mon-Fri, 96 Sat-Sun */
			if (ib && k == 0)
				p_kf64(pk, "max_distance_mi", 50);
			p_str(pk, "allow_ib");
			if (ib)
				msgpack_pack_true(pk);
			else
				msgpack_pack_false(pk);
			push_cmd(g, off, BK_ACCEPTED);
			g->n_rules++;
			g->now += BK_US_PER_S;
		}
	}
}

/* The whole stream: rules, then `orders` orders interleaved over `window` live orders. */
static void generate(gen *g, uint32_t orders, uint32_t window, uint64_t seed)
{
	memset(g, 0, sizeof(*g));
	g->seed = seed;
	rng_seed(&g->r, seed);
	if (bk_ts_parse("2026-11-01T00:00:00Z", 20, &g->t0) < 0)
		die("bk_ts_parse");
	g->now = g->t0;
	g->nb = orders / 3 > 16 ? orders / 3 : 16;
	g->np = orders / 20 > 40 ? orders / 20 : 40;
	g->buyers = xcalloc(g->nb, ID_LEN);
	g->provs = xcalloc(g->np, ID_LEN);
	g->sps = xcalloc(g->np, ID_LEN);
	for (uint32_t i = 0; i < g->nb; i++)
		mkid(g->buyers[i], seed, "usr_", K_BUYER, i, 0);
	for (uint32_t i = 0; i < g->np; i++) {
		mkid(g->provs[i], seed, "usr_", K_PROV, i, 0);
		mkid(g->sps[i], seed, "sp_", K_SP, i, 0);
	}
	for (uint32_t i = 0; i < 4; i++)
		mkid(g->support[i], seed, "usr_", K_SUPPORT, i, 0);
	msgpack_sbuffer_init(&g->sb);
	msgpack_packer_init(&g->pk, &g->sb, gen_write);
	emit_rules(g);

	if (window > orders)
		window = orders ? orders : 1;
	gorder *live = xcalloc(window, sizeof(*live));
	uint32_t n_live = 0, next = 0;
	while (n_live < window && next < orders)
		plan_order(g, &live[n_live++], next++);
	while (n_live > 0) {
		uint32_t k = below(&g->r, n_live);
		emit_step(g, &live[k]);
		if (live[k].next < live[k].n)
			continue;
		if (next < orders)
			plan_order(g, &live[k], next++);
		else
			live[k] = live[--n_live];
	}
	free(live);
}

static void gen_free(gen *g)
{
	msgpack_sbuffer_destroy(&g->sb);
	free(g->v);
	free(g->scratch);
	free(g->buyers);
	free(g->provs);
	free(g->sps);
}

/* --- (a) decide + evolve + encode + hash ---------------------------------------------------- */

typedef struct recref {
	size_t off;
	uint32_t len;
} recref;

typedef struct engine_run {
	double secs;
	uint64_t outcome[3], codes[BK_E__COUNT], events, mismatches, rules_bytes;
	size_t orders;
	msgpack_sbuffer arch; /* every events record, back to back */
	recref *recs;
	size_t n_recs;
} engine_run;

static void report_mismatch(const gen *g, size_t i, const bk_command *c, const bk_decision *d,
			    uint64_t *shown)
{
	if ((*shown)++ >= 10)
		return;
	fprintf(stderr, "mismatch #%zu %s %s %s: want %s, got %s %s: %s\n", i, c->id,
		bk_cmd_name((bk_cmd_type)c->type), c->order_id,
		bk_outcome_name((bk_outcome)g->v[i].expect), bk_outcome_name(d->outcome),
		bk_err_name(d->code), d->message);
}

static int run_engine(const gen *g, size_t batch, bool verbose, engine_run *out)
{
	memset(out, 0, sizeof(*out));
	bk_engine *e = bk_engine_new();
	bk_tzdb *tz = bk_tzdb_new(NULL);
	if (!e || !tz)
		die("out of memory");
	msgpack_zone cz, ez;
	if (!msgpack_zone_init(&cz, 1 << 20) || !msgpack_zone_init(&ez, 1 << 16))
		die("out of memory");
	msgpack_sbuffer rec, rules;
	msgpack_sbuffer_init(&rec);
	msgpack_sbuffer_init(&rules);
	msgpack_sbuffer_init(&out->arch);
	bk_command *cmds = xcalloc(batch, sizeof(*cmds));
	size_t *ends = xcalloc(batch, sizeof(*ends));
	out->recs = xcalloc(g->n, sizeof(*out->recs));
	uint64_t shown = 0;
	int rc = 0;
	char err[256];

	for (size_t b0 = 0; b0 < g->n && rc == 0; b0 += batch) {
		size_t nb = g->n - b0 < batch ? g->n - b0 : batch;
		for (size_t i = 0; i < nb; i++) { /* untimed: what the consumer hands over */
			const cmdref *r = &g->v[b0 + i];
			if (bk_codec_command_decode(g->sb.data + r->off, r->len, false, false, &cz,
						    &cmds[i], err, sizeof(err)) < 0) {
				fprintf(stderr, "bench_core: command %zu does not decode: %s\n",
					b0 + i, err);
				die("generator bug");
			}
		}
		double t0 = now_s();
		for (size_t i = 0; i < nb; i++) {
			const bk_command *c = &cmds[i];
			bk_decide_ctx ctx = {.now = c->at,
					     .expiring_lead = 24 * HOUR_US,
					     .tz = bk_tz_offset,
					     .tz_opaque = tz};
			bk_decision d;
			if (bk_engine_handle(e, c, &ctx, &ez, &d) < 0) {
				fprintf(stderr, "bench_core: %s: %s\n", c->id, d.message);
				rc = -1;
				break;
			}
			ends[i] = rec.size;
			if (d.n_events > 0) {
				bk_record r = {c->order_id, c->id, d.events, d.n_events};
				if (bk_codec_record_encode(&r, &rec) < 0) {
					fprintf(stderr, "bench_core: %s: record encode failed\n",
						c->id);
					rc = -1;
					break;
				}
				ends[i] = rec.size;
			}
			if (d.has_rules && d.outcome == BK_ACCEPTED &&
			    bk_codec_rules_encode(&d.rules, &rules) < 0) {
				fprintf(stderr, "bench_core: %s: rules encode failed\n", c->id);
				rc = -1;
				break;
			}
			out->outcome[d.outcome]++;
			out->codes[d.code]++;
			out->events += d.n_events;
			if (d.outcome != (bk_outcome)g->v[b0 + i].expect) {
				out->mismatches++;
				if (verbose)
					report_mismatch(g, b0 + i, c, &d, &shown);
			}
			bk_decision_clear(&d);
			msgpack_zone_clear(&ez);
		}
		out->secs += now_s() - t0;
		/* untimed: keep the records for (b) */
		size_t base = out->arch.size, start = 0;
		gen_write(&out->arch, rec.data, rec.size);
		for (size_t i = 0; i < nb; i++) {
			if (ends[i] > start)
				out->recs[out->n_recs++] =
				    (recref){base + start, (uint32_t)(ends[i] - start)};
			start = ends[i];
		}
		out->rules_bytes += rules.size;
		msgpack_sbuffer_clear(&rec);
		msgpack_sbuffer_clear(&rules);
		msgpack_zone_clear(&cz);
	}
	out->orders = bk_engine_count(e);
	free(cmds);
	free(ends);
	msgpack_sbuffer_destroy(&rec);
	msgpack_sbuffer_destroy(&rules);
	msgpack_zone_destroy(&cz);
	msgpack_zone_destroy(&ez);
	bk_tzdb_free(tz);
	bk_engine_free(e);
	return rc;
}

/* --- (b) codecs, (c) baselines ------------------------------------------------------------ */

typedef struct codec_run {
	double cmd_dec, cmd_raw;			       /* command decode; msgpack_unpack */
	double rec_dec, rec_raw_unpack, rec_enc, rec_raw_pack; /* records */
	double hash, floor;				       /* BLAKE2b alone; pack+hash floor */
	uint64_t cmd_bytes, rec_bytes, canon_bytes, events, hash_bad, floor_bad;
	bool enc_identical, pack_identical;
} codec_run;

static void bench_commands(const gen *g, size_t batch, codec_run *cr)
{
	msgpack_zone z;
	if (!msgpack_zone_init(&z, 4 << 20))
		die("out of memory");
	char err[256];
	for (size_t b0 = 0; b0 < g->n; b0 += batch) {
		size_t nb = g->n - b0 < batch ? g->n - b0 : batch;
		double t0 = now_s();
		for (size_t i = 0; i < nb; i++) {
			const cmdref *r = &g->v[b0 + i];
			bk_command c;
			if (bk_codec_command_decode(g->sb.data + r->off, r->len, false, false, &z,
						    &c, err, sizeof(err)) < 0)
				die("command decode failed");
		}
		double t1 = now_s();
		msgpack_zone_clear(&z);
		double t2 = now_s();
		for (size_t i = 0; i < nb; i++) {
			const cmdref *r = &g->v[b0 + i];
			size_t off = 0;
			msgpack_object o;
			if (msgpack_unpack(g->sb.data + r->off, r->len, &off, &z, &o) !=
			    MSGPACK_UNPACK_SUCCESS)
				die("msgpack_unpack failed");
		}
		double t3 = now_s();
		msgpack_zone_clear(&z);
		cr->cmd_dec += t1 - t0;
		cr->cmd_raw += t3 - t2;
	}
	cr->cmd_bytes = g->sb.size;
	msgpack_zone_destroy(&z);
}

/* One hash link: BLAKE2b-256(prev || canon), as bk_chain_hash computes it. */
static void chain_hash(const uint8_t *prev, const void *canon, size_t n, uint8_t out[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, prev, 32);
	crypto_generichash_update(&st, canon, n);
	crypto_generichash_final(&st, out, 32);
}

static void bench_records(const engine_run *er, size_t batch, codec_run *cr)
{
	msgpack_zone zd, zr;
	if (!msgpack_zone_init(&zd, 4 << 20) || !msgpack_zone_init(&zr, 4 << 20))
		die("out of memory");
	msgpack_sbuffer enc, pack, canon, scratch, fl;
	msgpack_sbuffer_init(&enc);
	msgpack_sbuffer_init(&pack);
	msgpack_sbuffer_init(&canon);
	msgpack_sbuffer_init(&scratch);
	msgpack_sbuffer_init(&fl);
	msgpack_packer ppack, pscratch, pfl;
	msgpack_packer_init(&ppack, &pack, gen_write);
	msgpack_packer_init(&pscratch, &scratch, gen_write);
	msgpack_packer_init(&pfl, &fl, gen_write);
	bk_record *recs = xcalloc(batch, sizeof(*recs));
	msgpack_object *objs = xcalloc(batch, sizeof(*objs));
	size_t ev_cap = batch * 4, *coff = xcalloc(ev_cap, sizeof(*coff));
	const bk_event **evp = xcalloc(ev_cap, sizeof(*evp));
	uint8_t(*out)[32] = xcalloc(ev_cap, 32);
	char err[256];
	cr->enc_identical = cr->pack_identical = true;

	for (size_t b0 = 0; b0 < er->n_recs; b0 += batch) {
		size_t nb = er->n_recs - b0 < batch ? er->n_recs - b0 : batch;
		const char *first = er->arch.data + er->recs[b0].off;
		size_t span =
		    er->recs[b0 + nb - 1].off + er->recs[b0 + nb - 1].len - er->recs[b0].off;
		cr->rec_bytes += span;

		double t0 = now_s();
		for (size_t i = 0; i < nb; i++) {
			const recref *r = &er->recs[b0 + i];
			if (bk_codec_record_decode(er->arch.data + r->off, r->len, &zd, &recs[i],
						   err, sizeof(err)) < 0)
				die(err);
		}
		double t1 = now_s();
		for (size_t i = 0; i < nb; i++)
			if (bk_codec_record_encode(&recs[i], &enc) < 0)
				die("record encode failed");
		double t2 = now_s();
		cr->rec_dec += t1 - t0;
		cr->rec_enc += t2 - t1;
		if (enc.size != span || memcmp(enc.data, first, span) != 0)
			cr->enc_identical = false;
		msgpack_sbuffer_clear(&enc);

		/* BLAKE2b alone over the canonical bytes of the same events */
		size_t ne = 0;
		for (size_t i = 0; i < nb; i++)
			for (uint32_t k = 0; k < recs[i].n; k++) {
				if (ne + 1 >= ev_cap) {
					ev_cap *= 2;
					coff = xrealloc(coff, ev_cap * sizeof(*coff));
					evp = xrealloc(evp, ev_cap * sizeof(*evp));
					out = xrealloc(out, ev_cap * 32);
				}
				coff[ne] = canon.size;
				evp[ne++] = &recs[i].events[k];
				if (bk_codec_event_canon(&recs[i].events[k], &canon) < 0)
					die("canon failed");
			}
		coff[ne] = canon.size;
		t0 = now_s();
		for (size_t k = 0; k < ne; k++)
			chain_hash(evp[k]->prev_hash, canon.data + coff[k], coff[k + 1] - coff[k],
				   out[k]);
		t1 = now_s();
		cr->hash += t1 - t0;
		for (size_t k = 0; k < ne; k++)
			cr->hash_bad += memcmp(out[k], evp[k]->hash, 32) != 0;
		cr->events += ne;
		cr->canon_bytes += canon.size + 32 * ne;
		msgpack_sbuffer_clear(&canon);

		/* msgpack-c alone: unpack and pack the same records */
		t0 = now_s();
		for (size_t i = 0; i < nb; i++) {
			const recref *r = &er->recs[b0 + i];
			size_t off = 0;
			if (msgpack_unpack(er->arch.data + r->off, r->len, &off, &zr, &objs[i]) !=
			    MSGPACK_UNPACK_SUCCESS)
				die("msgpack_unpack failed");
		}
		t1 = now_s();
		for (size_t i = 0; i < nb; i++)
			msgpack_pack_object(&ppack, objs[i]);
		t2 = now_s();
		cr->rec_raw_unpack += t1 - t0;
		cr->rec_raw_pack += t2 - t1;
		if (pack.size != span || memcmp(pack.data, first, span) != 0)
			cr->pack_identical = false;
		msgpack_sbuffer_clear(&pack);

		/* The floor of the handle pipeline: for each event, pack its canonical map (the
		 * event without its last key, `hash`) and hash it; then pack the record. */
		for (size_t i = 0; i < nb; i++) {
			const msgpack_object_kv *kv = objs[i].via.map.ptr;
			if (objs[i].via.map.size != 4 || kv[3].val.type != MSGPACK_OBJECT_ARRAY)
				die("unexpected record shape");
			const msgpack_object_array *a = &kv[3].val.via.array;
			for (uint32_t k = 0; k < a->size; k++) {
				const msgpack_object_map *m = &a->ptr[k].via.map;
				if (m->size != 12 || m->ptr[10].val.type != MSGPACK_OBJECT_BIN ||
				    m->ptr[11].key.via.str.size != 4 ||
				    memcmp(m->ptr[11].key.via.str.ptr, "hash", 4) != 0)
					die("unexpected event shape");
			}
		}
		size_t k_ev = 0;
		t0 = now_s();
		for (size_t i = 0; i < nb; i++) {
			const msgpack_object_array *a = &objs[i].via.map.ptr[3].val.via.array;
			for (uint32_t k = 0; k < a->size; k++) {
				msgpack_object ev = a->ptr[k];
				ev.via.map.size = 11;
				msgpack_sbuffer_clear(&scratch);
				msgpack_pack_object(&pscratch, ev);
				chain_hash((const uint8_t *)ev.via.map.ptr[10].val.via.bin.ptr,
					   scratch.data, scratch.size, out[k_ev++]);
			}
			msgpack_pack_object(&pfl, objs[i]);
		}
		t1 = now_s();
		cr->floor += t1 - t0;
		for (size_t k = 0; k < ne && k < k_ev; k++)
			cr->floor_bad += memcmp(out[k], evp[k]->hash, 32) != 0;
		cr->floor_bad += k_ev != ne;
		msgpack_sbuffer_clear(&fl);
		msgpack_zone_clear(&zr);
		msgpack_zone_clear(&zd);
	}
	free(recs);
	free(objs);
	free(coff);
	free(evp);
	free(out);
	msgpack_sbuffer_destroy(&enc);
	msgpack_sbuffer_destroy(&pack);
	msgpack_sbuffer_destroy(&canon);
	msgpack_sbuffer_destroy(&scratch);
	msgpack_sbuffer_destroy(&fl);
	msgpack_zone_destroy(&zd);
	msgpack_zone_destroy(&zr);
}

/* --- report ----------------------------------------------------------------------------- */

typedef struct row {
	const char *name;
	uint64_t count;
	const char *unit;
	double secs;
	uint64_t bytes; /* 0: no MB/s */
	int base;	/* index of the baseline row, -1: this is a baseline */
} row;

static void print_table(const row *rows, size_t n)
{
	printf("\n%-58s %10s %-5s %8s %14s %8s %9s\n", "name", "count", "unit", "seconds",
	       "rate (/s)", "MB/s", "ratio");
	for (size_t i = 0; i < n; i++) {
		const row *r = &rows[i];
		char mbs[32] = "-", ratio[32] = "baseline";
		if (r->bytes)
			snprintf(mbs, sizeof(mbs), "%.1f", (double)r->bytes / r->secs / 1e6);
		if (r->base >= 0)
			snprintf(ratio, sizeof(ratio), "%.2fx [%d]", r->secs / rows[r->base].secs,
				 r->base);
		printf("%-58s %10" PRIu64 " %-5s %8.3f %14.0f %8s %9s\n", r->name, r->count,
		       r->unit, r->secs, (double)r->count / r->secs, mbs, ratio);
	}
	printf("ratio: seconds / seconds of the baseline row [n] over the same data "
	       "(rows numbered from 0)\n");
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bench_core [--orders N] [--seed S] [--window W] [--batch B] "
		"[--verbose] [--handle-only]\n"
		"  --orders  orders to generate (default 200000, ~7 commands each)\n"
		"  --seed    PRNG seed (default 1)\n"
		"  --window  orders in flight at once, interleaved (default 4096)\n"
		"  --batch   commands decoded ahead of each timed slice (default 4096)\n"
		"  --verbose print the first commands whose outcome differs from the plan\n");
}

static bool parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	if (!s || !*s)
		return false;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end != '\0')
		return false;
	*ret = v;
	return true;
}

int main(int argc, char **argv)
{
	uint64_t orders = 200000, seed = 1, window = 4096, batch = 4096;
	bool verbose = false, handle_only = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		uint64_t *dst = !strcmp(a, "--orders")	 ? &orders
				: !strcmp(a, "--seed")	 ? &seed
				: !strcmp(a, "--window") ? &window
				: !strcmp(a, "--batch")	 ? &batch
							 : NULL;
		if (!strcmp(a, "--verbose")) {
			verbose = true;
		} else if (!strcmp(a, "--handle-only")) {
			handle_only = true;
		} else if (dst && i + 1 < argc && parse_u64(argv[i + 1], dst)) {
			i++;
		} else {
			usage();
			return 2;
		}
	}
	if (orders < 1 || orders > 50000000 || window < 1 || batch < 1 || batch > 1000000) {
		usage();
		return 2;
	}
	if (sodium_init() < 0)
		die("sodium_init failed");

	double t = now_s();
	gen g;
	generate(&g, (uint32_t)orders, (uint32_t)window, seed);
	double gen_s = now_s() - t;
	size_t n_inv = g.n_wrong + g.n_stale;
	printf("bench_core: one core, no threads; %" PRIu64 " orders, seed %" PRIu64
	       ", window %" PRIu64 ", batch %" PRIu64 "\n",
	       orders, seed, window, batch);
	printf("generated in %.2f s: %zu commands, %.1f MB of msgpack (%.0f bytes/command)\n",
	       gen_s, g.n, (double)g.sb.size / 1e6, (double)g.sb.size / (double)g.n);
	printf("  orders: RTB %zu, IB %zu, INVITE %zu, abandoned %zu; autoaccept.set %zu\n",
	       g.n_orders[M_RTB], g.n_orders[M_IB], g.n_orders[M_INVITE], g.n_orders[M_ABANDON],
	       g.n_rules);
	printf("  commands: planned %zu, resent duplicates %zu (%.1f%%), invalid %zu (%.1f%%: "
	       "wrong actor %zu, stale expected_version %zu)\n",
	       g.n_valid, g.n_dup, 100.0 * (double)g.n_dup / (double)g.n, n_inv,
	       100.0 * (double)n_inv / (double)g.n, g.n_wrong, g.n_stale);

	engine_run er;
	if (run_engine(&g, batch, verbose, &er) < 0)
		die("engine failed");
	double cps = (double)g.n / er.secs;
	printf("\nhandle: accepted %" PRIu64 ", rejected %" PRIu64 ", duplicate %" PRIu64
	       "; outcome differs from the plan: %" PRIu64 "\n",
	       er.outcome[BK_ACCEPTED], er.outcome[BK_REJECTED], er.outcome[BK_DUPLICATE],
	       er.mismatches);
	printf("  rejections:");
	for (int c = 1; c < BK_E__COUNT; c++)
		if (er.codes[c])
			printf(" %s %" PRIu64, bk_err_name((bk_err)c), er.codes[c]);
	printf("\n  %zu orders held; %" PRIu64
	       " events (%.2f per command) in %zu records, %.1f MB; "
	       "%.2f M events/s\n",
	       er.orders, er.events, (double)er.events / (double)g.n, er.n_recs,
	       (double)er.arch.size / 1e6, (double)er.events / er.secs / 1e6);

	if (handle_only) {
		printf("\nhandle: %zu commands in %.3f s: %.0f commands/s (codecs and baselines "
		       "skipped)\n",
		       g.n, er.secs, cps);
		msgpack_sbuffer_destroy(&er.arch);
		free(er.recs);
		gen_free(&g);
		return 0;
	}
	codec_run cr;
	memset(&cr, 0, sizeof(cr));
	bench_commands(&g, batch, &cr);
	bench_records(&er, batch, &cr);
	printf("  checks: re-encoded records identical %s; msgpack-c repack identical %s; "
	       "BLAKE2b baseline hashes differing %" PRIu64 ", floor hashes differing %" PRIu64
	       "\n",
	       cr.enc_identical ? "yes" : "NO", cr.pack_identical ? "yes" : "NO", cr.hash_bad,
	       cr.floor_bad);

	const row rows[] = {
	    {"[0] handle: decide+evolve+encode+hash + record encode", g.n, "cmd", er.secs,
	     er.arch.size, 1},
	    {"[1]   floor: canon pack + BLAKE2b-256 + record pack", g.n, "cmd", cr.floor,
	     er.arch.size, -1},
	    {"[2]   BLAKE2b-256 alone over the canonical event bytes", cr.events, "event", cr.hash,
	     cr.canon_bytes, -1},
	    {"[3] command decode (bk_codec_command_decode, msgpack)", g.n, "cmd", cr.cmd_dec,
	     cr.cmd_bytes, 4},
	    {"[4]   msgpack_unpack of the same bytes", g.n, "cmd", cr.cmd_raw, cr.cmd_bytes, -1},
	    {"[5] record encode (bk_codec_record_encode)", er.n_recs, "rec", cr.rec_enc,
	     cr.rec_bytes, 6},
	    {"[6]   msgpack_pack_object of the same records", er.n_recs, "rec", cr.rec_raw_pack,
	     cr.rec_bytes, -1},
	    {"[7] record decode (bk_codec_record_decode)", er.n_recs, "rec", cr.rec_dec,
	     cr.rec_bytes, 8},
	    {"[8]   msgpack_unpack of the same records", er.n_recs, "rec", cr.rec_raw_unpack,
	     cr.rec_bytes, -1},
	};
	print_table(rows, sizeof(rows) / sizeof(rows[0]));
	printf("\ntarget: >= %.0f commands/s decided+evolved+encoded+hashed on one core: "
	       "%.0f commands/s, %s\n",
	       TARGET_CMDS_PER_S, cps, cps >= TARGET_CMDS_PER_S ? "MET" : "NOT MET");

	msgpack_sbuffer_destroy(&er.arch);
	free(er.recs);
	gen_free(&g);
	return 0;
}
