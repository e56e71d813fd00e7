/*
 * fuzz.h - shared by the libFuzzer harnesses of tests/fuzz/: each harness hands
 * LLVMFuzzerTestOneInput's bytes to one decoder and checks what the decoder promises;
 * a broken promise aborts (a crash to libFuzzer), as does any sanitizer report.
 */
#ifndef BK_FUZZ_H
#define BK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A promise of the code under test that did not hold: report and abort. */
#define FUZZ_ASSERT(cond)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
