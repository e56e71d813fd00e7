/*
 * fuzz_record.c - libFuzzer harness: events record decode (bk_codec_record_decode). A
 * decoded record keeps the contract of bk_codec.h: ids and subtypes set, every event
 * names itself as JSON (replay's two writers) and packs to canonical bytes, and the
 * record re-encodes to bytes that decode again.
 */
#include <string.h>

#include "bk_codec.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	msgpack_zone z;
	bk_record r, again;
	char err[256];
	if (!msgpack_zone_init(&z, 4096))
		return 0;
	if (bk_codec_record_decode(data, size, &z, &r, err, sizeof(err)) == 0) {
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		FUZZ_ASSERT(r.order_id != NULL && r.command_id != NULL);
		for (uint32_t i = 0; i < r.n; i++) {
			bk_event *e = &r.events[i];
			FUZZ_ASSERT(e->event_id != NULL && e->command_id != NULL);
			FUZZ_ASSERT(strcmp(e->order_id, r.order_id) == 0);
			FUZZ_ASSERT(e->seq >= 1 && e->seq <= BK_RECORD_SEQ_MAX);
			FUZZ_ASSERT(bk_event_subtype_name(e) != NULL);
			FUZZ_ASSERT(e->payload.type == MSGPACK_OBJECT_MAP);
			/* JSON has no form for every payload (NaN): either may refuse */
			json_decref(bk_event_to_json(e, 0, 0));
			(void)bk_event_write_json(e, 0, 0, &sb);
			msgpack_sbuffer_clear(&sb);
			FUZZ_ASSERT(bk_codec_event_canon(e, &sb) == 0);
			msgpack_sbuffer_clear(&sb);
		}
		/* re-encoding may add bytes (absent payloads, nil actors): checked where it
		 * cannot reach the size limit */
		if (size < BK_MAX_MESSAGE / 2) {
			FUZZ_ASSERT(bk_codec_record_encode(&r, &sb) == 0);
			FUZZ_ASSERT(bk_codec_record_decode(sb.data, sb.size, &z, &again, err,
							   sizeof(err)) == 0);
			FUZZ_ASSERT(again.n == r.n);
		}
		msgpack_sbuffer_destroy(&sb);
	}
	msgpack_zone_destroy(&z);
	return 0;
}
