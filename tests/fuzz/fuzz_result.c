/*
 * fuzz_result.c - libFuzzer harness: command result decode (bk_codec_result_decode). A
 * decoded result has its command id, re-encodes, decodes again and prints as JSON.
 */
#include "bk_codec.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	msgpack_zone z;
	bk_result r, again;
	char err[256];
	if (!msgpack_zone_init(&z, 4096))
		return 0;
	if (bk_codec_result_decode(data, size, &z, &r, err, sizeof(err)) == 0) {
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		FUZZ_ASSERT(r.command_id != NULL && r.message != NULL);
		FUZZ_ASSERT(bk_codec_result_encode(&r, &sb) == 0);
		FUZZ_ASSERT(
		    bk_codec_result_decode(sb.data, sb.size, &z, &again, err, sizeof(err)) == 0);
		FUZZ_ASSERT(again.n_event_ids == r.n_event_ids);
		json_decref(bk_result_to_json(&r));
		msgpack_sbuffer_destroy(&sb);
	}
	msgpack_zone_destroy(&z);
	return 0;
}
