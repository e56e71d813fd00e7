/*
 * fuzz_rules.c - libFuzzer harness: auto-accept rules record decode
 * (bk_codec_rules_decode, which owns what it returns). A decoded profile re-encodes and
 * decodes again to as many rules, and is cleared without a leak.
 */
#include "bk_codec.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bk_profile_rules p, again;
	char err[256];
	if (bk_codec_rules_decode(data, size, &p, err, sizeof(err)) == 0) {
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		FUZZ_ASSERT(bk_codec_rules_encode(&p, &sb) == 0);
		FUZZ_ASSERT(bk_codec_rules_decode(sb.data, sb.size, &again, err, sizeof(err)) == 0);
		FUZZ_ASSERT(again.n == p.n);
		bk_profile_rules_clear(&again);
		bk_profile_rules_clear(&p);
		msgpack_sbuffer_destroy(&sb);
	}
	return 0;
}
