/*
 * fuzz_command_json.c - libFuzzer harness: command decode from JSON text
 * (bk_codec_command_decode with json=true: jansson, then the JSON bridge, then the
 * envelope checks). A decoded command re-encodes as msgpack and decodes again.
 */
#include "bk_codec.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	msgpack_zone z;
	bk_command c, again;
	char err[256];
	if (!msgpack_zone_init(&z, 4096))
		return 0;
	if (bk_codec_command_decode(data, size, true, false, &z, &c, err, sizeof(err)) == 0) {
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		/* `at` as text may be longer than as an integer: checked below the limit */
		if (size < BK_MAX_MESSAGE / 2)
			FUZZ_ASSERT(bk_codec_command_encode(&c, &sb) == 0);
		if (sb.size > 0)
			FUZZ_ASSERT(bk_codec_command_decode(sb.data, sb.size, false, false, &z,
							    &again, err, sizeof(err)) == 0);
		msgpack_sbuffer_destroy(&sb);
	}
	msgpack_zone_destroy(&z);
	return 0;
}
