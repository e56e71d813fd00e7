/*
 * fuzz_keyring.c - libFuzzer harness: keyring text (bk_keyring_parse). A parsed keyring
 * counts at most one key per line and answers a verify for a key it may not hold.
 */
#include <sodium.h>
#include <string.h>

#include "bk_auth.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return sodium_init() < 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bk_keyring *kr = NULL;
	char err[256];
	if (bk_keyring_parse((const char *)data, size, &kr, err, sizeof(err)) == 0) {
		size_t lines = 1;
		for (size_t i = 0; i < size; i++)
			lines += data[i] == '\n';
		FUZZ_ASSERT(bk_keyring_count(kr) <= lines);
		uint8_t sig[BK_SIG_LEN] = {0};
		FUZZ_ASSERT(bk_auth_verify(kr, "k1", 2, sig, sizeof(sig), data, size, BK_ROLE_BUYER,
					   "order.create", err, sizeof(err)) != 0);
		bk_keyring_free(kr);
	}
	return 0;
}
