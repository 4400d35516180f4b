/* release.c: handing back the compiler's memory once the JIT is done
 * (release.h). Linux and glibc only: dl_iterate_phdr, madvise,
 * malloc_trim. Must never touch a writable segment: relocated data (GOT,
 * vtables after RELRO) lives there, in private pages that MADV_DONTNEED
 * would replace with the file's unrelocated bytes.
 */
#include "release.h"

#include <elf.h>
#include <link.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Is a debugger (or strace) attached? */
static bool traced(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return true;
    char line[256];
    long pid = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "TracerPid: %ld", &pid) == 1)
            break;
    fclose(f);
    return pid != 0;
}

/* Does the object have text relocations (code patched at load time, whose
 * private pages must stay)? */
static bool has_textrel(const struct dl_phdr_info *info) {
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_DYNAMIC)
            continue;
        for (const ElfW(Dyn) *d = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
             d->d_tag != DT_NULL; d++)
            if (d->d_tag == DT_TEXTREL || (d->d_tag == DT_FLAGS && (d->d_un.d_val & DF_TEXTREL)))
                return true;
    }
    return false;
}

typedef struct Walk {
    int index;    /* of the object dl_iterate_phdr reports next */
    size_t bytes; /* advised so far */
} Walk;

/* dl_iterate_phdr's callback: the executable (the first object) and
 * libLLVM: MADV_DONTNEED over the whole pages of every loaded segment that
 * is not writable. */
static int drop_readonly(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    Walk *w = data;
    bool exe = w->index++ == 0;
    if (!exe && !strstr(info->dlpi_name, "/libLLVM"))
        return 0;
    if (has_textrel(info))
        return 0;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W))
            continue;
        uintptr_t from = info->dlpi_addr + ph->p_vaddr, to = from + ph->p_memsz;
        from = (from + page - 1) & ~(page - 1);
        to &= ~(page - 1);
        if (to > from && madvise((void *)from, to - from, MADV_DONTNEED) == 0)
            w->bytes += to - from;
    }
    return 0;
}

size_t release_compiler_memory(void) {
    const char *keep = getenv("GRADC_KEEP_COMPILER_MEMORY");
    if ((keep && *keep) || traced())
        return 0;
    malloc_trim(0);
    Walk w = {0, 0};
    dl_iterate_phdr(drop_readonly, &w);
    return w.bytes;
}
