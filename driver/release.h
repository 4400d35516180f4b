/* release.h: handing back the compiler's memory once the JIT is done.
 *
 * After gradc train (predict, eval) has compiled its model, LLVM's code is
 * not run again (unless --check-numerics recompiles to explain a NaN), yet
 * the pages of it that the compile touched stay in the process's resident
 * set for the whole run: about 40 MB of a statically linked gradc, more
 * than the data of most models. release_compiler_memory drops them.
 */
#ifndef GRADC_DRIVER_RELEASE_H
#define GRADC_DRIVER_RELEASE_H

#include <stddef.h>

/* Give back what the compile no longer needs: the free memory the allocator
 * holds (malloc_trim), and the resident pages of the read-only segments
 * (code, constants) of the gradc executable and of libLLVM when it is
 * loaded, with madvise(MADV_DONTNEED). Those pages are clean copies of the
 * file: a later use faults them back in from the page cache, so nothing
 * changes but the resident set. Skipped under a debugger (TracerPid in
 * /proc/self/status), whose breakpoints live in private copies of such
 * pages that this would drop, for an object with text relocations, and
 * when the environment sets GRADC_KEEP_COMPILER_MEMORY (to a non-empty
 * value: for uprobes, `perf probe`, which live in such pages too, and for
 * the test that compares the two). Returns the bytes of segments advised
 * (0 when skipped). */
size_t release_compiler_memory(void);

#endif
