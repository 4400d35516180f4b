/* cache.c: compiled objects kept on disk between runs (cg_internal.h).
 *
 * A part of a compile (cg.c) is a function of its unoptimised module, the
 * LLVM that compiles it, the host CPU it is compiled for and the
 * optimisation level; the key hashes all of them, so a hit is the object
 * the compile would have produced. A file holds a header (magic, key,
 * length, a hash of the object) and the object; one that does not check
 * out in every field is a miss and is removed. Writes go to a temporary
 * file renamed into place, so readers see a whole file or none; every
 * failure on disk is a miss or a skipped store, never an error: the cache
 * only ever saves time. Past $GRADC_CACHE_MAX_MB (256 MiB) the least
 * recently used files go (a hit touches its file), with temporary files a
 * killed process left an hour ago or more. Only a directory of this user's
 * that no one else may write is used (its files are code).
 */
#include "cg_internal.h"

#include <llvm-c/BitWriter.h>
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
    CACHE_FORMAT = 1, /* bump when what the key covers changes */
    HEADER_BYTES = 8 + 16 + 8 + 8,
};
static const char MAGIC[8] = "gradcob1";

/* The most the entries may take: $GRADC_CACHE_MAX_MB MiB, 256 by default. */
static long long max_bytes(void) {
    const char *s = getenv("GRADC_CACHE_MAX_MB");
    char *end;
    long long mb = s && *s ? strtoll(s, &end, 10) : -1;
    return mb >= 0 && !*end && mb < (1ll << 40) ? mb << 20 : 256ll << 20;
}

/* ---- hashing: xxHash64 (Yann Collet's, public domain) ------------------------- */

static const uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full,
                      P3 = 0x165667B19E3779F9ull, P4 = 0x85EBCA77C2B2AE63ull,
                      P5 = 0x27D4EB2F165667C5ull;

static uint64_t rotl(uint64_t x, int r) { return x << r | x >> (64 - r); }
static uint64_t rd64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static uint32_t rd32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t round64(uint64_t acc, uint64_t in) { return rotl(acc + in * P2, 31) * P1; }
static uint64_t merge64(uint64_t acc, uint64_t v) { return (acc ^ round64(0, v)) * P1 + P4; }

static uint64_t xxh64(const void *data, size_t n, uint64_t seed) {
    const unsigned char *p = data, *end = p + n;
    uint64_t h;
    if (n >= 32) {
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        for (; p + 32 <= end; p += 32) {
            v1 = round64(v1, rd64(p));
            v2 = round64(v2, rd64(p + 8));
            v3 = round64(v3, rd64(p + 16));
            v4 = round64(v4, rd64(p + 24));
        }
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = merge64(merge64(merge64(merge64(h, v1), v2), v3), v4);
    } else {
        h = seed + P5;
    }
    h += (uint64_t)n;
    for (; p + 8 <= end; p += 8)
        h = rotl(h ^ round64(0, rd64(p)), 27) * P1 + P4;
    if (p + 4 <= end) {
        h = rotl(h ^ (uint64_t)rd32(p) * P1, 23) * P2 + P3;
        p += 4;
    }
    for (; p < end; p++)
        h = rotl(h ^ *p * P5, 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    return h ^ h >> 32;
}

/* ---- the key --------------------------------------------------------------------- */

/* Appends to a growing buffer; on failure the buffer is dropped (NULL). */
typedef struct Buf {
    unsigned char *p;
    size_t len, cap;
} Buf;

static void put(Buf *b, const void *data, size_t n) {
    if (!b->p && b->cap)
        return;
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2 + 256;
        unsigned char *q = realloc(b->p, cap);
        if (!q) {
            free(b->p);
            *b = (Buf){.cap = 1};
            return;
        }
        b->p = q, b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}
static void put_str(Buf *b, const char *s) { put(b, s, strlen(s) + 1); }

bool cg_cache_key(LLVMModuleRef mod, int opt_level, CgCacheKey *key) {
    Buf b = {0};
    unsigned maj, min, patch;
    LLVMGetVersion(&maj, &min, &patch);
    int head[5] = {CACHE_FORMAT, opt_level, (int)maj, (int)min, (int)patch};
    put(&b, head, sizeof head);
    char *triple = LLVMGetDefaultTargetTriple(), *cpu = LLVMGetHostCPUName(),
         *features = LLVMGetHostCPUFeatures();
    put_str(&b, triple);
    put_str(&b, cpu);
    put_str(&b, features);
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(features);
    LLVMMemoryBufferRef bc = LLVMWriteBitcodeToMemoryBuffer(mod);
    if (!bc) {
        free(b.p);
        return false;
    }
    put(&b, LLVMGetBufferStart(bc), LLVMGetBufferSize(bc));
    LLVMDisposeMemoryBuffer(bc);
    if (!b.p)
        return false;
    key->h[0] = xxh64(b.p, b.len, 0);
    key->h[1] = xxh64(b.p, b.len, 0x6772616463ull); /* "gradc" */
    free(b.p);
    return true;
}

/* ---- the directory ----------------------------------------------------------------- */

/* mkdir -p path (mode 0700 for what it creates). */
static bool make_dirs(char *path) {
    for (char *s = path + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        int r = mkdir(path, 0700);
        *s = '/';
        if (r != 0 && errno != EEXIST)
            return false;
    }
    return mkdir(path, 0700) == 0 || errno == EEXIST;
}

bool cg_cache_dir(char *buf, size_t n) {
    const char *env = getenv("GRADC_CACHE_DIR");
    int len;
    if (env) {
        if (!*env || !strcmp(env, "off"))
            return false;
        len = snprintf(buf, n, "%s", env);
    } else if ((env = getenv("XDG_CACHE_HOME")) && *env == '/') {
        len = snprintf(buf, n, "%s/gradc/jit", env);
    } else if ((env = getenv("HOME")) && *env == '/') {
        len = snprintf(buf, n, "%s/.cache/gradc/jit", env);
    } else {
        return false;
    }
    if (len <= 0 || (size_t)len >= n || !make_dirs(buf))
        return false;
    /* The entries are code gradc runs: only from a directory that no one
     * but this user can write into. */
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
           !(st.st_mode & (S_IWGRP | S_IWOTH));
}

static void entry_path(char *buf, size_t n, const char *dir, CgCacheKey key) {
    snprintf(buf, n, "%s/%016llx%016llx.o", dir, (unsigned long long)key.h[0],
             (unsigned long long)key.h[1]);
}

/* ---- load and store ---------------------------------------------------------------- */

static bool read_all(int fd, void *buf, size_t n) {
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return false;
        }
        got += (size_t)r;
    }
    return true;
}

static bool write_all(int fd, const void *buf, size_t n) {
    for (size_t put = 0; put < n;) {
        ssize_t r = write(fd, (const char *)buf + put, n - put);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return false;
        }
        put += (size_t)r;
    }
    return true;
}

LLVMMemoryBufferRef cg_cache_load(const char *dir, CgCacheKey key) {
    char path[4096];
    entry_path(path, sizeof path, dir, key);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    unsigned char head[HEADER_BYTES];
    LLVMMemoryBufferRef obj = NULL;
    bool ok = fstat(fd, &st) == 0 && st.st_size > HEADER_BYTES &&
              read_all(fd, head, sizeof head) && !memcmp(head, MAGIC, 8) &&
              rd64(head + 8) == key.h[0] && rd64(head + 16) == key.h[1] &&
              rd64(head + 24) == (uint64_t)st.st_size - HEADER_BYTES;
    size_t n = ok ? (size_t)st.st_size - HEADER_BYTES : 0;
    char *data = ok ? malloc(n) : NULL;
    if (data && read_all(fd, data, n) && xxh64(data, n, 0) == rd64(head + 32))
        obj = LLVMCreateMemoryBufferWithMemoryRangeCopy(data, n, "gradc-cached-object");
    free(data);
    close(fd);
    if (!obj)
        unlink(path); /* whatever it is, it is not a good entry */
    else
        utimensat(AT_FDCWD, path, NULL, 0); /* recently used: evicted last */
    return obj;
}

/* Remove the least recently used entries of dir while its entries take more
 * than max_bytes(). */
static void evict(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    typedef struct Ent {
        char name[64];
        struct timespec t;
        long long bytes;
    } Ent;
    Ent *e = NULL;
    size_t ne = 0, cap = 0;
    long long total = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        struct stat st;
        if (len < 34 || fstatat(dirfd(d), de->d_name, &st, 0) != 0)
            continue;
        if (len > 34 && !strcmp(de->d_name + len - 4, ".tmp")) {
            if (st.st_mtim.tv_sec < time(NULL) - 3600) /* left by a killed process */
                unlinkat(dirfd(d), de->d_name, 0);
            continue;
        }
        if (len != 34 || strcmp(de->d_name + 32, ".o"))
            continue;
        if (ne == cap) {
            Ent *ne2 = realloc(e, sizeof *e * (cap = cap * 2 + 64));
            if (!ne2)
                break;
            e = ne2;
        }
        memcpy(e[ne].name, de->d_name, len + 1);
        e[ne].t = st.st_mtim;
        e[ne].bytes = (long long)st.st_size;
        total += e[ne++].bytes;
    }
    for (long long most = max_bytes(); total > most && ne > 0;) {
        size_t old = 0;
        for (size_t i = 1; i < ne; i++)
            if (e[i].t.tv_sec < e[old].t.tv_sec ||
                (e[i].t.tv_sec == e[old].t.tv_sec && e[i].t.tv_nsec < e[old].t.tv_nsec))
                old = i;
        unlinkat(dirfd(d), e[old].name, 0);
        total -= e[old].bytes;
        e[old] = e[--ne];
    }
    free(e);
    closedir(d);
}

void cg_cache_store(const char *dir, CgCacheKey key, LLVMMemoryBufferRef obj) {
    static atomic_ulong seq; /* threads of one process store at once */
    char path[4096], tmp[4200];
    entry_path(path, sizeof path, dir, key);
    snprintf(tmp, sizeof tmp, "%s.%ld.%lu.tmp", path, (long)getpid(), atomic_fetch_add(&seq, 1));
    const char *data = LLVMGetBufferStart(obj);
    size_t n = LLVMGetBufferSize(obj);
    unsigned char head[HEADER_BYTES];
    uint64_t fields[4] = {key.h[0], key.h[1], (uint64_t)n, xxh64(data, n, 0)};
    memcpy(head, MAGIC, 8);
    memcpy(head + 8, fields, sizeof fields);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    bool ok = write_all(fd, head, sizeof head) && write_all(fd, data, n);
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return;
    }
    evict(dir);
}
