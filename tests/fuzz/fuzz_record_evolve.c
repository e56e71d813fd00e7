/*
 * fuzz_record_evolve.c - libFuzzer harness: the processor's restore. The input is a
 * sequence of events records, each a 2-byte big-endian length and that many bytes (the
 * last one takes what is left); each is decoded (bk_codec_record_decode) and, when it
 * decodes, read by one engine with the reader rule (bk_engine_read: classify, then
 * evolve). Whatever the records say, the engine returns (0 or an error) and its orders
 * stay consistent: version = the number of hashes kept, clones and frees cleanly.
 */
#include "bk_codec.h"
#include "bk_engine.h"
#include "fuzz.h"

static void check_order(const bk_order *o, void *opaque)
{
	(void)opaque;
	FUZZ_ASSERT(o->version >= 1 && o->version <= BK_RECORD_SEQ_MAX);
	FUZZ_ASSERT((uint64_t)o->version <= o->cap_hashes);
	bk_order *c = bk_order_clone(o);
	bk_order_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bk_engine *e = bk_engine_new();
	if (e == NULL)
		return 0;
	size_t pos = 0;
	while (size - pos >= 2) {
		size_t n = (size_t)data[pos] << 8 | data[pos + 1];
		pos += 2;
		if (n > size - pos)
			n = size - pos;
		msgpack_zone z;
		bk_record r;
		char err[256];
		if (!msgpack_zone_init(&z, 4096))
			break;
		if (bk_codec_record_decode(data + pos, n, &z, &r, err, sizeof(err)) == 0) {
			bk_chain_verdict v[256];
			bk_chain_verdict *vs = r.n <= 256 ? v : NULL;
			(void)bk_engine_read(e, &r, vs, err, sizeof(err));
		}
		msgpack_zone_destroy(&z);
		pos += n;
	}
	bk_engine_foreach(e, check_order, NULL);
	bk_engine_free(e);
	return 0;
}
