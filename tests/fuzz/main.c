/* main.c: one libFuzzer target around one body of fuzz.h; the build
 * compiles it once per target with GRADC_FUZZ_BODY set to the body's name
 * (tests/fuzz/CMakeLists.txt). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzResult r;
    GRADC_FUZZ_BODY(data, size, &r);
    return 0;
}
