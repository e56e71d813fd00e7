/*
 * fuzz_snapshot.c - libFuzzer harness: snapshot and checkpoint decode (core/bk_snap.c).
 * A decoded snapshot re-encodes, decodes again to the same bytes, and takes an event
 * through the engine's reader rule without a crash; a decoded checkpoint re-encodes to
 * the same checkpoint.
 */
#include <string.h>

#include "bk_engine.h"
#include "bk_snap.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bk_order *o = NULL, *again = NULL;
	int32_t part, part2;
	int64_t off, off2;
	char err[256];
	if (bk_snap_decode(data, size, &o, &part, &off, err, sizeof(err)) == 0) {
		msgpack_sbuffer a, b;
		msgpack_sbuffer_init(&a);
		msgpack_sbuffer_init(&b);
		FUZZ_ASSERT(bk_snap_encode(o, part, off, &a) == 0);
		FUZZ_ASSERT(
		    bk_snap_decode(a.data, a.size, &again, &part2, &off2, err, sizeof(err)) == 0);
		FUZZ_ASSERT(part2 == part && off2 == off && again->version == o->version);
		FUZZ_ASSERT(bk_snap_encode(again, part2, off2, &b) == 0);
		FUZZ_ASSERT(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);
		FUZZ_ASSERT(
		    bk_order_seen(again, again->last_command_id, strlen(again->last_command_id)));
		/* the engine holds it and judges the next event against it */
		bk_engine *e = bk_engine_new();
		FUZZ_ASSERT(e != NULL);
		bk_engine_check_hashes(e, false); /* reach the chain rule and evolve */
		FUZZ_ASSERT(bk_engine_put(e, again) == 0);
		again = NULL;
		FUZZ_ASSERT(bk_engine_count(e) == 1);
		bk_event ev = {.event_id = "evt_fuzz",
			       .order_id = o->order_id,
			       .command_id = "cmd_fuzz",
			       .seq = o->version + 1,
			       .schema = 1,
			       .payload = {.type = MSGPACK_OBJECT_MAP}};
		memcpy(ev.prev_hash, bk_order_last_hash(o), BK_HASH_LEN);
		bk_record r = {
		    .order_id = o->order_id, .command_id = "cmd_fuzz", .events = &ev, .n = 1};
		bk_chain_verdict v;
		(void)bk_engine_read(e, &r, &v, err, sizeof(err));
		bk_engine_free(e);
		msgpack_sbuffer_destroy(&a);
		msgpack_sbuffer_destroy(&b);
	}
	bk_order_free(o);
	bk_order_free(again);
	bk_checkpoint ck, ck2;
	if (bk_snap_checkpoint_decode(data, size, &ck, err, sizeof(err)) == 0) {
		msgpack_sbuffer a;
		msgpack_sbuffer_init(&a);
		FUZZ_ASSERT(bk_snap_checkpoint_encode(&ck, &a) == 0);
		FUZZ_ASSERT(bk_snap_checkpoint_decode(a.data, a.size, &ck2, err, sizeof(err)) == 0);
		FUZZ_ASSERT(ck2.partition == ck.partition &&
			    ck2.events_offset == ck.events_offset && ck2.src_next == ck.src_next &&
			    bk_snap_sum_eq(&ck.sum, &ck2.sum));
		msgpack_sbuffer_destroy(&a);
	}
	return 0;
}
