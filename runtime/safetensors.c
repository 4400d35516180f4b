/* safetensors.c: weight files and checkpoints in the safetensors format
 * (https://github.com/huggingface/safetensors#format).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 *   {"__metadata__":{"header_crc32":"<8 hex>","data_crc32":"<8 hex>",
 *                    "format":"gradc","model":"<name>", extra pairs...},
 *    "<param>":{"dtype":"F32","shape":[784,256],"data_offsets":[begin,end]},...
 *    "<state>":{...},...}
 * padded with spaces so that the data starts 8-byte aligned, then the
 * tensors' little-endian bytes: the parameters in model order, then the
 * optimizer states in model order, offsets relative to the data. A
 * checkpoint adds "step", "epoch", "epoch_rows" and "rng" to the metadata.
 *
 * The two checksums are CRC-32s (zlib's crc32, the polynomial of gzip and
 * PNG), always first in the header so that a reader finds them by position:
 * data_crc32 of the data section (every byte after the header),
 * header_crc32 of the first 8 + N bytes with its own 8 digits read as '0's
 * (so it covers the length, every metadata pair, data_crc32 and the
 * padding). The data's is computed as the data is written; the header's
 * digits are then written over the placeholders. A file whose header starts
 * that way is checked before anything in it is believed (a mismatch is
 * "corrupt checkpoint"); a file without them (from another tool, or from
 * gradc before checksums) is read unchecked, unless its header is within
 * 8 flipped bits of that beginning or still has a checksum's key: then the
 * checksums are damaged, and the file is corrupt (a bit flipped in their
 * keys must not make a file unchecked).
 *
 * Owns writing a session's parameters and optimizer states atomically
 * (temporary file "<path>.tmp.<pid>", fsync, rename, fsync of the
 * directory; a save first removes the temporary files of killed earlier
 * saves to the same path) and reading them back all-or-nothing, after
 * checking the whole header (every tensor's offsets fit its dtype and shape,
 * and the tensors tile the data section exactly), the string metadata pairs
 * (a text model's vocabulary and context) beside them, and the session
 * counters a checkpoint restores.
 * Must not leave a half-written file at the target path, and must not touch
 * the arena or the session unless the whole file checked out.
 */
#include "rt_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* The Python reference rejects headers above 100 MB; so do we. */
#define MAX_HEADER ((uint64_t)100 * 1000 * 1000)

/* How every header gradc writes begins: the checksums' keys and values at
 * fixed offsets (the values here are the placeholders). */
#define CRC_HEAD "{\"__metadata__\":{\"header_crc32\":\""
#define CRC_MID "\",\"data_crc32\":\""
#define CRC_TAIL "\","
enum {
    CRC_HEADER_AT = sizeof CRC_HEAD - 1,                     /* header_crc32's digits */
    CRC_DATA_AT = CRC_HEADER_AT + 8 + sizeof CRC_MID - 1,    /* data_crc32's digits */
    CRC_PREFIX_LEN = CRC_DATA_AT + 8 + sizeof CRC_TAIL - 1,  /* up to the next key */
};
#define CRC_PREFIX CRC_HEAD "00000000" CRC_MID "00000000" CRC_TAIL

/* Bytes of the file read or written at a time while checksumming. */
enum { CRC_PIECE = 1 << 20 };

static void put_hex8(char *at, uint32_t v) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 7; i >= 0; i--, v >>= 4)
        at[i] = hex[v & 15];
}

/* 8 lowercase hex digits at `at`, the only spelling gradc writes. */
static bool get_hex8(const char *at, uint32_t *v) {
    uint32_t x = 0;
    for (int i = 0; i < 8; i++) {
        char c = at[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        x = x << 4 | (uint32_t)d;
    }
    *v = x;
    return true;
}

static uint32_t crc_bytes(uint32_t crc, const void *p, size_t n) {
    return (uint32_t)crc32_z(crc, p, n);
}

/* header_crc32 of a header of n bytes (n >= CRC_PREFIX_LEN) after the
 * length bytes len8: its own digits read as '0's. */
static uint32_t header_crc(const unsigned char len8[8], const char *text, size_t n) {
    uint32_t crc = crc_bytes(0, len8, 8);
    crc = crc_bytes(crc, text, CRC_HEADER_AT);
    crc = crc_bytes(crc, "00000000", 8);
    return crc_bytes(crc, text + CRC_HEADER_AT + 8, n - CRC_HEADER_AT - 8);
}

/* Does the header text[0, n) begin as gradc writes it, checksums first?
 * Then *hcrc and *dcrc are their values. */
static bool has_checksums(const char *text, size_t n, uint32_t *hcrc, uint32_t *dcrc) {
    static const char prefix[] = CRC_PREFIX;
    if (n < CRC_PREFIX_LEN)
        return false;
    for (size_t i = 0; i < CRC_PREFIX_LEN; i++)
        if (!(i >= CRC_HEADER_AT && i < CRC_HEADER_AT + 8) &&
            !(i >= CRC_DATA_AT && i < CRC_DATA_AT + 8) && text[i] != prefix[i])
            return false;
    return get_hex8(text + CRC_HEADER_AT, hcrc) && get_hex8(text + CRC_DATA_AT, dcrc);
}

static bool host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* Reverse the bytes of each of n elements of size bytes, in place. */
static void swap_bytes(void *data, size_t n, size_t size) {
    unsigned char *p = data;
    for (size_t i = 0; i < n; i++, p += size)
        for (size_t a = 0, b = size - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* Persistent tensor i of m, i < nparams + nstates: the parameters, then the
 * optimizer states, the order of the file. */
static const RtTensor *persistent(const RtModel *m, int i) {
    return i < m->nparams ? &m->params[i] : &m->states[i - m->nparams];
}

static const char *persistent_kind(const RtModel *m, int i) {
    return i < m->nparams ? "parameter" : "optimizer state";
}

/* ---- writing ------------------------------------------------------------- */

typedef struct Text {
    char *data;
    size_t len, cap;
    bool oom;
} Text;

static void text_put(Text *t, const char *s, size_t n) {
    if (t->oom)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *data = realloc(t->data, cap);
        if (!data) {
            t->oom = true;
            return;
        }
        t->data = data;
        t->cap = cap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void text_puts(Text *t, const char *s) {
    text_put(t, s, strlen(s));
}

/* s as a JSON string: quotes, backslashes and control characters escaped,
 * other bytes (UTF-8 included) as they are. */
static void text_json_string(Text *t, const char *s) {
    text_put(t, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            text_put(t, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            text_put(t, esc, 6);
        } else {
            text_put(t, (const char *)p, 1);
        }
    }
    text_put(t, "\"", 1);
}

/* Contract: see rt.h. No overlong forms, surrogates or code points above
 * U+10FFFF. */
bool rt_utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, n, cp;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            n = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 3, cp = c & 0x07;
        else
            return false;
        for (unsigned k = 1; k <= n; k++) {
            if ((p[k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (p[k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += n + 1;
    }
    return true;
}

/* The extra metadata pairs: distinct keys, none reserved, all UTF-8. */
static RtStatus check_meta(int nmeta, const char *const *keys, const char *const *values,
                           const char *path, RtError *err) {
    for (int k = 0; k < nmeta; k++) {
        if (!keys[k] || !values[k])
            return rt_fail(err, "%s: metadata pair %d has no key or no value", path, k);
        if (!strcmp(keys[k], "format") || !strcmp(keys[k], "model") ||
            !strcmp(keys[k], "header_crc32") || !strcmp(keys[k], "data_crc32"))
            return rt_fail(err, "%s: metadata key '%s' is reserved", path, keys[k]);
        for (int j = 0; j < k; j++)
            if (!strcmp(keys[j], keys[k]))
                return rt_fail(err, "%s: metadata key '%s' is given twice", path, keys[k]);
        if (!rt_utf8_valid(keys[k]) || !rt_utf8_valid(values[k]))
            return rt_fail(err, "%s: metadata '%s' is not valid UTF-8", path,
                           rt_utf8_valid(keys[k]) ? keys[k] : "(key)");
    }
    return RT_OK;
}

/* The JSON header, padded with spaces to a multiple of 8 bytes. */
static RtStatus build_header(const RtModel *m, int nmeta, const char *const *keys,
                             const char *const *values, Text *t, RtError *err,
                             const char *path) {
    char num[64];
    const char *dtype = m->elem_size == 4 ? "F32" : "F64";
    size_t offset = 0;
    if (check_meta(nmeta, keys, values, path, err) != RT_OK)
        return RT_FAIL;
    text_puts(t, CRC_PREFIX "\"format\":\"gradc\",\"model\":");
    text_json_string(t, m->name);
    for (int k = 0; k < nmeta; k++) {
        text_puts(t, ",");
        text_json_string(t, keys[k]);
        text_puts(t, ":");
        text_json_string(t, values[k]);
    }
    text_puts(t, "}");
    for (int i = 0; i < m->nparams + m->nstates; i++) {
        const RtTensor *p = persistent(m, i);
        if (strcmp(p->name, "__metadata__") == 0)
            return rt_fail(err, "%s: a %s may not be named '__metadata__'", path,
                           persistent_kind(m, i));
        for (int j = 0; j < i; j++)
            if (strcmp(persistent(m, j)->name, p->name) == 0)
                return rt_fail(err, "%s: two %s are named '%s'", path,
                               j < m->nparams && i >= m->nparams ? "tensors (a parameter and an "
                                                                   "optimizer state)"
                               : i < m->nparams                  ? "parameters"
                                                                 : "optimizer states",
                               p->name);
        size_t bytes = rt_tensor_bytes(m, p, 1);
        text_puts(t, ",");
        text_json_string(t, p->name);
        text_puts(t, ":{\"dtype\":\"");
        text_puts(t, dtype);
        text_puts(t, "\",\"shape\":[");
        for (int d = 0; d < p->rank; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)p->dims[d]);
            text_puts(t, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", offset, offset + bytes);
        text_puts(t, num);
        offset += bytes;
    }
    text_puts(t, "}");
    while (t->len % 8 != 0)
        text_puts(t, " ");
    if (t->oom)
        return rt_fail(err, "%s: out of memory building the header", path);
    return RT_OK;
}

/* n bytes of data to fd: at offset off (pwrite), or at the file offset,
 * advancing it, when off is negative (write). */
static bool write_at(int fd, const void *data, size_t n, off_t off) {
    const char *p = data;
    while (n > 0) {
        ssize_t w = off < 0 ? write(fd, p, n) : pwrite(fd, p, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return false;
        }
        p += w;
        n -= (size_t)w;
        if (off >= 0)
            off += w;
    }
    return true;
}

static bool write_all(int fd, const void *data, size_t n) { return write_at(fd, data, n, -1); }

/* n elements of size bytes from src, as little-endian bytes, adding them to
 * *crc as they go out (a piece at a time, while it is in cache). */
static bool write_le(int fd, const void *src, size_t n, size_t size, uint32_t *crc) {
    if (host_is_little_endian()) {
        const unsigned char *p = src;
        for (size_t left = n * size; left > 0;) {
            size_t k = left < CRC_PIECE ? left : CRC_PIECE;
            *crc = crc_bytes(*crc, p, k);
            if (!write_all(fd, p, k))
                return false;
            p += k;
            left -= k;
        }
        return true;
    }
    unsigned char chunk[4096];
    size_t per = sizeof chunk / size;
    for (size_t i = 0; i < n; i += per) {
        size_t k = n - i < per ? n - i : per;
        memcpy(chunk, (const unsigned char *)src + i * size, k * size);
        swap_bytes(chunk, k, size);
        *crc = crc_bytes(*crc, chunk, k * size);
        if (!write_all(fd, chunk, k * size))
            return false;
    }
    return true;
}


/* The directory part of path ("." for a bare name); malloc'd, NULL when
 * out of memory. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
}

/* Best effort: make the rename durable by syncing the directory entry. */
static void sync_parent_dir(const char *path) {
    char *dir = dir_of(path);
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

/* Remove the temporary files "<name>.tmp.<pid>" beside path that earlier
 * saves to path left when they were killed before their rename: those whose
 * process no longer exists. A file of a live process (a save in progress)
 * is left alone, and so is every other name. Best effort: errors are
 * ignored, since the save itself does not depend on it. */
static void remove_stale_temps(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t nbase = strlen(base);
    char *dir = dir_of(path);
    DIR *dp = dir ? opendir(dir) : NULL;
    for (struct dirent *e; dp && (e = readdir(dp));) {
        const char *name = e->d_name;
        if (strncmp(name, base, nbase) != 0 || strncmp(name + nbase, ".tmp.", 5) != 0)
            continue;
        const char *digits = name + nbase + 5;
        long pid = 0;
        size_t k = 0;
        for (; digits[k] >= '0' && digits[k] <= '9' && pid < 1000000000L; k++)
            pid = pid * 10 + (digits[k] - '0');
        if (k == 0 || digits[k] != '\0' || pid <= 0 || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* alive, or someone else's to ask about */
        size_t n = strlen(dir) + strlen(name) + 2;
        char *full = malloc(n);
        if (full) {
            snprintf(full, n, "%s/%s", dir, name);
            unlink(full);
            free(full);
        }
    }
    if (dp)
        closedir(dp);
    free(dir);
}

/* Contract: on RT_OK, path holds every parameter and optimizer state of s
 * and has been renamed into place after an fsync. On RT_FAIL, whatever was at path before is
 * still there, unchanged, and no temporary file is left behind. */
RtStatus rt_save_weights(const RtSession *s, const char *path, RtError *err) {
    return rt_save_weights_meta(s, path, 0, NULL, NULL, err);
}

/* Contract: as rt_save_weights, with the pairs after "format" and "model".
 * Bad pairs fail before anything is written. */
RtStatus rt_save_weights_meta(const RtSession *s, const char *path, int nmeta,
                              const char *const *keys, const char *const *values, RtError *err) {
    const RtModel *m = s->m;
    Text header = {0};
    if (build_header(m, nmeta, keys, values, &header, err, path) != RT_OK) {
        free(header.data);
        return RT_FAIL;
    }
    size_t tmp_len = strlen(path) + 32;
    char *tmp = malloc(tmp_len);
    if (!tmp) {
        free(header.data);
        return rt_fail(err, "%s: out of memory", path);
    }
    snprintf(tmp, tmp_len, "%s.tmp.%ld", path, (long)getpid());
    remove_stale_temps(path);

    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        int e = errno;
        free(header.data);
        free(tmp);
        return rt_fail(err, "cannot write '%s': %s", path, strerror(e));
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)header.len >> (8 * i));
    bool ok = write_all(fd, len8, 8) && write_all(fd, header.data, header.len);
    uint32_t data_crc = 0;
    for (int i = 0; ok && i < m->nparams + m->nstates; i++) {
        const RtTensor *p = persistent(m, i);
        ok = write_le(fd, rt_ptr(s, p), (size_t)rt_numel(p, 1), (size_t)m->elem_size,
                      &data_crc);
    }
    /* The checksums over their placeholders: the data's, then the header's,
     * which covers the data's digits. */
    put_hex8(header.data + CRC_DATA_AT, data_crc);
    put_hex8(header.data + CRC_HEADER_AT, header_crc(len8, header.data, header.len));
    ok = ok && write_at(fd, header.data + CRC_HEADER_AT, CRC_DATA_AT + 8 - CRC_HEADER_AT,
                        8 + CRC_HEADER_AT);
    ok = ok && fsync(fd) == 0;
    int e = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        e = errno;
    }
    free(header.data);
    if (!ok) {
        unlink(tmp);
        free(tmp);
        return rt_fail(err, "cannot write '%s': %s", path, strerror(e));
    }
    free(tmp);
    sync_parent_dir(path);
    return RT_OK;
}

/* ---- reading ------------------------------------------------------------- */

static bool read_at(int fd, void *buf, size_t n, uint64_t off) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = 0; /* end of file: the caller reports truncation */
            return false;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return true;
}

/* A JSON number that is a whole number in [0, 2^53]. */
static bool json_count(const RtJson *v, uint64_t *out) {
    if (!v || v->kind != RT_JSON_NUMBER || v->number < 0 || v->number > 9007199254740992.0 ||
        v->number != (double)(uint64_t)v->number)
        return false;
    *out = (uint64_t)v->number;
    return true;
}

/* "[3, 2]" for a JSON shape array already checked to hold counts. */
static char *json_shape_str(const RtJson *shape, char *buf, size_t n) {
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < shape->n && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%.0f", i ? ", " : "",
                                shape->items[i].number);
    if (len < n)
        snprintf(buf + len, n - len, "]");
    return buf;
}

/* One parameter's entry in the header, checked against the model. */
typedef struct Entry {
    size_t file_elem; /* 4: F32, 8: F64 */
    uint64_t begin;   /* byte offset in the data section */
} Entry;

static RtStatus check_entry(const RtTensor *p, const char *kind, const RtJson *root,
                            uint64_t data_bytes, const char *path, Entry *out, RtError *err) {
    char want[96], got[96];
    const RtJson *e = rt_json_get(root, p->name);
    if (!e)
        return rt_fail(err, "%s: %s '%s' %s is missing", path, kind, p->name,
                       rt_dims_str(p, want, sizeof want));
    if (e->kind != RT_JSON_OBJECT)
        return rt_fail(err, "%s: corrupt header: entry '%s' is not an object", path, p->name);
    const RtJson *dtype = rt_json_get(e, "dtype");
    const RtJson *shape = rt_json_get(e, "shape");
    const RtJson *offs = rt_json_get(e, "data_offsets");
    if (!dtype || dtype->kind != RT_JSON_STRING)
        return rt_fail(err, "%s: corrupt header: tensor '%s' has no \"dtype\" string", path,
                       p->name);
    if (!shape || shape->kind != RT_JSON_ARRAY)
        return rt_fail(err, "%s: corrupt header: tensor '%s' has no \"shape\" array", path,
                       p->name);
    if (!offs || offs->kind != RT_JSON_ARRAY || offs->n != 2)
        return rt_fail(err, "%s: corrupt header: tensor '%s' has no \"data_offsets\" pair", path,
                       p->name);
    uint64_t numel = 1;
    for (int i = 0; i < shape->n; i++) {
        uint64_t d;
        if (!json_count(&shape->items[i], &d))
            return rt_fail(err, "%s: corrupt header: tensor '%s' has a shape entry that is not a "
                                "count",
                           path, p->name);
        numel = d == 0 || numel <= UINT64_MAX / d ? numel * d : UINT64_MAX;
    }
    bool same = shape->n == p->rank;
    for (int i = 0; same && i < p->rank; i++)
        same = shape->items[i].number == (double)p->dims[i];
    if (!same)
        return rt_fail(err, "%s: %s '%s' has shape %s in the file, but the model expects %s",
                       path, kind, p->name, json_shape_str(shape, got, sizeof got),
                       rt_dims_str(p, want, sizeof want));
    if (strcmp(dtype->string, "F32") == 0)
        out->file_elem = 4;
    else if (strcmp(dtype->string, "F64") == 0)
        out->file_elem = 8;
    else
        return rt_fail(err, "%s: %s '%s' has dtype %.32s; gradc reads F32 and F64", path, kind,
                       p->name, dtype->string);
    uint64_t begin, end;
    if (!json_count(&offs->items[0], &begin) || !json_count(&offs->items[1], &end) || end < begin)
        return rt_fail(err, "%s: corrupt header: tensor '%s' has bad data_offsets", path,
                       p->name);
    if (end - begin != numel * out->file_elem)
        return rt_fail(err, "%s: corrupt header: tensor '%s' spans %llu bytes, but %llu %s "
                            "elements need %llu",
                       path, p->name, (unsigned long long)(end - begin),
                       (unsigned long long)numel, dtype->string,
                       (unsigned long long)(numel * out->file_elem));
    if (end > data_bytes)
        return rt_fail(err, "%s: tensor '%s' ends at byte %llu of a %llu-byte data section; the "
                            "file is truncated",
                       path, p->name, (unsigned long long)end, (unsigned long long)data_bytes);
    out->begin = begin;
    return RT_OK;
}

/* Bytes per element of a safetensors dtype; 0 for a name the format does
 * not define. */
static size_t dtype_bytes(const char *dtype) {
    static const struct {
        const char *name;
        size_t bytes;
    } table[] = {{"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
                 {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
                 {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8}};
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (strcmp(dtype, table[i].name) == 0)
            return table[i].bytes;
    return 0;
}

/* One tensor's bytes in the data section, for the layout check. */
typedef struct Span {
    const char *name;
    uint64_t begin, end;
} Span;

static int span_order(const void *x, const void *y) {
    const Span *a = x, *b = y;
    if (a->begin != b->begin)
        return a->begin < b->begin ? -1 : 1;
    return a->end < b->end ? -1 : a->end > b->end;
}

/* Every tensor of the header, the model's or not: an object whose
 * data_offsets are a pair of counts and, for a dtype the format defines,
 * span its shape's elements; and together the tensors tile the data
 * section [0, data_bytes) without a gap or an overlap, as the format
 * requires. A corrupt header or a file cut short or lengthened fails here
 * even where the model's own tensors look fine. */
static RtStatus check_layout(const RtJson *root, uint64_t data_bytes, const char *path,
                             RtError *err) {
    Span *spans = malloc(sizeof *spans * (size_t)(root->n + 1));
    if (!spans)
        return rt_fail(err, "%s: out of memory", path);
    int n = 0;
    RtStatus st = RT_OK;
    for (int i = 0; i < root->n && st == RT_OK; i++) {
        const char *name = root->keys[i];
        const RtJson *e = &root->items[i];
        if (strcmp(name, "__metadata__") == 0)
            continue;
        const RtJson *dtype = e->kind == RT_JSON_OBJECT ? rt_json_get(e, "dtype") : NULL;
        const RtJson *shape = e->kind == RT_JSON_OBJECT ? rt_json_get(e, "shape") : NULL;
        const RtJson *offs = e->kind == RT_JSON_OBJECT ? rt_json_get(e, "data_offsets") : NULL;
        uint64_t begin, end;
        if (!offs || offs->kind != RT_JSON_ARRAY || offs->n != 2 ||
            !json_count(&offs->items[0], &begin) || !json_count(&offs->items[1], &end) ||
            end < begin) {
            st = rt_fail(err, "%s: corrupt header: tensor '%s' has no valid \"data_offsets\" "
                              "pair",
                         path, name);
            break;
        }
        size_t elem = dtype && dtype->kind == RT_JSON_STRING ? dtype_bytes(dtype->string) : 0;
        uint64_t numel = 1;
        bool counts = elem > 0 && shape && shape->kind == RT_JSON_ARRAY;
        for (int k = 0; counts && k < shape->n; k++) {
            uint64_t dim;
            counts = json_count(&shape->items[k], &dim);
            numel = dim == 0 || numel <= UINT64_MAX / dim ? numel * dim : UINT64_MAX;
        }
        if (counts && (numel > UINT64_MAX / elem || end - begin != numel * elem))
            st = rt_fail(err, "%s: corrupt header: tensor '%s' spans %llu bytes, but %llu %s "
                              "elements need %llu",
                         path, name, (unsigned long long)(end - begin),
                         (unsigned long long)numel, dtype->string,
                         (unsigned long long)(numel * elem));
        spans[n++] = (Span){name, begin, end};
    }
    if (st == RT_OK)
        qsort(spans, (size_t)n, sizeof *spans, span_order);
    uint64_t at = 0;
    for (int i = 0; i < n && st == RT_OK; i++) {
        if (spans[i].begin < at)
            st = rt_fail(err, "%s: corrupt header: tensors '%s' [%llu, %llu) and '%s' [%llu, "
                              "%llu) overlap in the data section",
                         path, spans[i - 1].name, (unsigned long long)spans[i - 1].begin,
                         (unsigned long long)spans[i - 1].end, spans[i].name,
                         (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end);
        else if (spans[i].begin > at)
            st = rt_fail(err, "%s: corrupt header: bytes %llu to %llu of the data section "
                              "belong to no tensor (before '%s')",
                         path, (unsigned long long)at, (unsigned long long)spans[i].begin,
                         spans[i].name);
        else if (spans[i].end > data_bytes)
            st = rt_fail(err, "%s: tensor '%s' ends at byte %llu of a %llu-byte data section; "
                              "the file is truncated",
                         path, spans[i].name, (unsigned long long)spans[i].end,
                         (unsigned long long)data_bytes);
        at = spans[i].end;
    }
    if (st == RT_OK && at != data_bytes)
        st = rt_fail(err, "%s: the data section has %llu bytes, but its tensors end at byte "
                          "%llu; the file has %llu bytes too many",
                     path, (unsigned long long)data_bytes, (unsigned long long)at,
                     (unsigned long long)(data_bytes - at));
    free(spans);
    return st;
}

/* Is text[0, n) (has_checksums failed) a gradc header whose checksums are
 * damaged? It begins within 8 flipped bits of gradc's prefix (the digits
 * aside: a damaged digit fails has_checksums or the comparison), or its
 * metadata still has one of the checksums' keys. A file without them from
 * another tool or an older gradc is neither (its first 67 bytes differ
 * from the prefix in far more bits). */
static bool lost_checksums(const char *text, size_t n, const RtJson *root) {
    static const char prefix[] = CRC_PREFIX;
    int bits = 0;
    for (size_t i = 0; i < CRC_PREFIX_LEN; i++) {
        if ((i >= CRC_HEADER_AT && i < CRC_HEADER_AT + 8) ||
            (i >= CRC_DATA_AT && i < CRC_DATA_AT + 8))
            continue;
        unsigned diff = i < n ? (unsigned char)(text[i] ^ prefix[i]) : 0xff;
        for (; diff; diff &= diff - 1)
            bits++;
    }
    if (bits <= 8)
        return true;
    const RtJson *meta = root && root->kind == RT_JSON_OBJECT ? rt_json_get(root, "__metadata__")
                                                              : NULL;
    return meta && meta->kind == RT_JSON_OBJECT &&
           (rt_json_get(meta, "header_crc32") || rt_json_get(meta, "data_crc32"));
}

/* The bytes the header says the file has: the data section ends where its
 * last tensor does (tensors with offsets that are not counts are left to
 * check_layout); *last names that tensor. */
static uint64_t expected_size(const RtJson *root, uint64_t data_start, const char **last) {
    uint64_t end_max = 0;
    *last = NULL;
    for (int i = 0; i < root->n; i++) {
        const RtJson *e = &root->items[i];
        const RtJson *offs = e->kind == RT_JSON_OBJECT ? rt_json_get(e, "data_offsets") : NULL;
        uint64_t begin, end;
        if (strcmp(root->keys[i], "__metadata__") == 0 || !offs || offs->kind != RT_JSON_ARRAY ||
            offs->n != 2 || !json_count(&offs->items[0], &begin) ||
            !json_count(&offs->items[1], &end) || end < begin || end <= end_max)
            continue;
        end_max = end;
        *last = root->keys[i];
    }
    return data_start + end_max;
}

/* A header read and believed: the JSON, where the data starts, and whether
 * the file carries checksums (then data_crc is the data section's). */
typedef struct Header {
    RtJson *root;
    uint64_t data_start;
    bool checked;
    uint32_t data_crc;
} Header;

/* Read the header at the start of fd: the length, header_crc32 when the
 * file has checksums (before anything in it is parsed), the JSON, and the
 * file's length against the tensors' offsets. Truncation and checksum
 * failures are "corrupt checkpoint". */
static RtStatus read_header(int fd, uint64_t file_size, const char *path, Header *h,
                            RtError *err) {
    memset(h, 0, sizeof *h);
    unsigned char len8[8];
    if (file_size == 0)
        return rt_fail(err, "%s: corrupt checkpoint: truncated: the file is empty", path);
    if (file_size < 8 || !read_at(fd, len8, 8, 0))
        return rt_fail(err, "%s: corrupt checkpoint: truncated: expected at least 8 bytes (the "
                            "header length), found %llu",
                       path, (unsigned long long)file_size);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)len8[i] << (8 * i);
    if (n > MAX_HEADER)
        return rt_fail(err, "%s: corrupt header: header length %llu is implausible", path,
                       (unsigned long long)n);
    if (n > file_size - 8)
        return rt_fail(err, "%s: corrupt checkpoint: truncated: expected at least %llu bytes (a "
                            "%llu-byte header after the 8-byte length), found %llu",
                       path, (unsigned long long)(8 + n), (unsigned long long)n,
                       (unsigned long long)file_size);
    char *text = malloc(n ? n : 1);
    if (!text)
        return rt_fail(err, "%s: out of memory reading the header", path);
    if (!read_at(fd, text, n, 8)) {
        int e = errno;
        free(text);
        return rt_fail(err, "cannot read '%s': %s", path, e ? strerror(e) : "unexpected end");
    }
    uint32_t hcrc;
    h->checked = has_checksums(text, n, &hcrc, &h->data_crc);
    if (h->checked) {
        uint32_t got = header_crc(len8, text, n);
        if (got != hcrc) {
            free(text);
            return rt_fail(err, "%s: corrupt checkpoint: header checksum mismatch: header_crc32 "
                                "says %08x, the header's bytes give %08x",
                           path, hcrc, got);
        }
    }
    char why[300];
    h->root = rt_json_parse(text, n, why, sizeof why);
    bool lost = !h->checked && lost_checksums(text, n, h->root);
    free(text);
    if (lost) {
        rt_json_free(h->root);
        h->root = NULL;
        return rt_fail(err, "%s: corrupt checkpoint: the checksums at the start of the header "
                            "(header_crc32, data_crc32) are damaged",
                       path);
    }
    if (!h->root)
        return rt_fail(err, "%s: corrupt header: %s", path, why);
    if (h->root->kind != RT_JSON_OBJECT) {
        rt_json_free(h->root);
        h->root = NULL;
        return rt_fail(err, "%s: corrupt header: expected a JSON object", path);
    }
    h->data_start = 8 + n;
    const char *last;
    uint64_t want = expected_size(h->root, h->data_start, &last);
    if (want > file_size) {
        rt_fail(err, "%s: corrupt checkpoint: truncated: expected %llu bytes, found %llu (tensor "
                     "'%s' ends at byte %llu of a %llu-byte data section)",
                path, (unsigned long long)want, (unsigned long long)file_size, last,
                (unsigned long long)(want - h->data_start),
                (unsigned long long)(file_size - h->data_start));
        rt_json_free(h->root);
        h->root = NULL;
        return RT_FAIL;
    }
    return RT_OK;
}

/* The data section's CRC as far as it has been read in order: the CRC of
 * its bytes [0, at). Reading the tensors extends it while they come in file
 * order (in gradc's own files they all do), so that the data is read once. */
typedef struct DataCrc {
    uint32_t crc;
    uint64_t at;
} DataCrc;

/* data_crc32 of a file with checksums: dc, extended over the rest of the
 * data section [dc->at, end) read in pieces, must match the header's. */
static RtStatus check_data_crc(int fd, const Header *h, const DataCrc *dc, uint64_t file_size,
                               const char *path, RtError *err) {
    uint32_t crc = dc->crc;
    uint64_t from = h->data_start + dc->at;
    unsigned char *buf = from < file_size ? malloc(CRC_PIECE) : NULL;
    if (from < file_size && !buf)
        return rt_fail(err, "%s: out of memory", path);
    for (uint64_t at = from; at < file_size;) {
        size_t k = file_size - at < CRC_PIECE ? (size_t)(file_size - at) : CRC_PIECE;
        if (!read_at(fd, buf, k, at)) {
            int e = errno;
            free(buf);
            return rt_fail(err, "cannot read '%s': %s", path,
                           e ? strerror(e) : "the file is truncated");
        }
        crc = crc_bytes(crc, buf, k);
        at += k;
    }
    free(buf);
    if (crc != h->data_crc)
        return rt_fail(err, "%s: corrupt checkpoint: data checksum mismatch: data_crc32 says "
                            "%08x, the %llu bytes of data give %08x",
                       path, h->data_crc, (unsigned long long)(file_size - h->data_start), crc);
    return RT_OK;
}

/* The values of persistent tensors [from, to), converted to the model's
 * elem type, into a staging buffer laid out like them in that order. */
static RtStatus read_tensors(const RtModel *m, int from, int to, int fd, const RtJson *root,
                             uint64_t data_start, uint64_t file_size, const char *path,
                             unsigned char *stage, DataCrc *dc, RtError *err) {
    size_t at = 0;
    for (int i = from; i < to; i++) {
        const RtTensor *p = persistent(m, i);
        Entry e = {0};
        if (check_entry(p, persistent_kind(m, i), root, file_size - data_start, path, &e, err) !=
            RT_OK)
            return RT_FAIL;
        size_t n = (size_t)rt_numel(p, 1);
        void *raw = stage + at;
        if (e.file_elem != (size_t)m->elem_size && !(raw = malloc(n * e.file_elem)))
            return rt_fail(err, "%s: out of memory reading '%s'", path, p->name);
        if (!read_at(fd, raw, n * e.file_elem, data_start + e.begin)) {
            int errnum = errno;
            if (raw != stage + at)
                free(raw);
            return rt_fail(err, "cannot read '%s': %s", path,
                           errnum ? strerror(errnum) : "the file is truncated");
        }
        if (e.begin == dc->at) {
            dc->crc = crc_bytes(dc->crc, raw, n * e.file_elem);
            dc->at += n * e.file_elem;
        }
        if (!host_is_little_endian())
            swap_bytes(raw, n, e.file_elem);
        if (raw != stage + at) {
            for (size_t k = 0; k < n; k++)
                rt_store_float(stage + at, m->elem_size, (int64_t)k,
                               rt_load_float(raw, (int)e.file_elem, (int64_t)k));
            free(raw);
        }
        at += n * (size_t)m->elem_size;
    }
    return RT_OK;
}

/* What a checkpoint restores besides the tensors. */
typedef struct Counters {
    int64_t step, epoch, epoch_rows;
    RtRng rng;
} Counters;

/* The metadata string under key, NULL when absent; RT_FAIL when the
 * metadata or the value is not a string. */
static RtStatus meta_string(const RtJson *root, const char *key, const char *path,
                            const char **out, RtError *err) {
    const RtJson *meta = rt_json_get(root, "__metadata__");
    *out = NULL;
    if (!meta)
        return RT_OK;
    if (meta->kind != RT_JSON_OBJECT)
        return rt_fail(err, "%s: corrupt header: __metadata__ is not an object", path);
    const RtJson *v = rt_json_get(meta, key);
    if (v && v->kind != RT_JSON_STRING)
        return rt_fail(err, "%s: corrupt header: metadata '%s' is not a string", path, key);
    *out = v ? v->string : NULL;
    return RT_OK;
}

/* s as a decimal count in [0, INT64_MAX]: digits only. */
static bool parse_count(const char *s, int64_t *out) {
    int64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - (*s - '0')) / 10)
            return false;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return true;
}

/* s as 4 words of 1 to 16 hex digits separated by single spaces, not all
 * zero (xoshiro's one forbidden state). */
static bool parse_rng(const char *s, RtRng *out) {
    uint64_t any = 0;
    for (int w = 0; w < 4; w++) {
        uint64_t v = 0;
        int digits = 0;
        for (; *s && *s != ' '; s++, digits++) {
            int c = *s >= '0' && *s <= '9'   ? *s - '0'
                    : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
                    : *s >= 'A' && *s <= 'F' ? *s - 'A' + 10
                                             : -1;
            if (c < 0 || digits == 16)
                return false;
            v = v << 4 | (uint64_t)c;
        }
        if (digits == 0 || (w < 3 ? *s != ' ' : *s != '\0'))
            return false;
        if (w < 3)
            s++;
        out->s[w] = v;
        any |= v;
    }
    return any != 0;
}

/* The checkpoint metadata of the file at path: "step", "epoch" and "rng"
 * required, "epoch_rows" optional (0). */
static RtStatus read_counters(const RtJson *root, const char *path, Counters *c, RtError *err) {
    static const char *const keys[] = {"step", "epoch", "epoch_rows", "rng"};
    const char *v[4];
    for (int k = 0; k < 4; k++) {
        if (meta_string(root, keys[k], path, &v[k], err) != RT_OK)
            return RT_FAIL;
        if (!v[k] && k != 2)
            return rt_fail(err, "'%s' is not a checkpoint: it has no \"%s\" in its metadata", path,
                           keys[k]);
    }
    *c = (Counters){0};
    for (int k = 0; k < 3; k++) {
        int64_t *dst = k == 0 ? &c->step : k == 1 ? &c->epoch : &c->epoch_rows;
        if (v[k] && !parse_count(v[k], dst))
            return rt_fail(err, "%s: corrupt checkpoint: metadata \"%s\" is \"%.40s\"; expected a "
                                "count",
                           path, keys[k], v[k]);
    }
    if (!parse_rng(v[3], &c->rng))
        return rt_fail(err, "%s: corrupt checkpoint: metadata \"rng\" is \"%.80s\"; expected 4 "
                            "hex words, not all zero",
                       path, v[3]);
    return RT_OK;
}

/* How many optimizer states to read: all of them when the file has any (it
 * must then have every one), none when it has none. A checkpoint must have
 * them all. */
static RtStatus states_to_read(const RtModel *m, const RtJson *root, bool checkpoint,
                               const char *path, int *nstates, RtError *err) {
    char dims[96];
    int present = 0, missing = -1;
    for (int k = 0; k < m->nstates; k++) {
        if (rt_json_get(root, m->states[k].name))
            present++;
        else if (missing < 0)
            missing = k;
    }
    *nstates = present ? m->nstates : 0;
    if (missing < 0)
        return RT_OK;
    const RtTensor *t = &m->states[missing];
    if (checkpoint && present == 0)
        return rt_fail(err, "'%s' is not a checkpoint: it has no optimizer state ('%s' %s is "
                            "missing)",
                       path, t->name, rt_dims_str(t, dims, sizeof dims));
    if (present > 0)
        return rt_fail(err, "%s: optimizer state '%s' %s is missing, though the file has other "
                            "optimizer states of this model",
                       path, t->name, rt_dims_str(t, dims, sizeof dims));
    return RT_OK;
}

/* Load the parameters (and the optimizer states when the file has them)
 * from path into s; a checkpoint also needs every state and the counters,
 * and restores them. All or nothing. */
static RtStatus load_file(RtSession *s, const char *path, bool checkpoint, RtError *err) {
    const RtModel *m = s->m;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rt_fail(err, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return rt_fail(err, "cannot read '%s': %s", path, strerror(e));
    }
    uint64_t file_size = (uint64_t)st.st_size;
    Header h;
    if (read_header(fd, file_size, path, &h, err) != RT_OK) {
        close(fd);
        return RT_FAIL;
    }
    RtJson *root = h.root;
    uint64_t data_start = h.data_start;
    /* Staged in file order: the parameters, then the states. */
    size_t param_bytes = 0, total = 0;
    for (int i = 0; i < m->nparams + m->nstates; i++) {
        total += rt_tensor_bytes(m, persistent(m, i), 1);
        if (i + 1 == m->nparams)
            param_bytes = total;
    }
    int nstates = 0;
    Counters c = {0};
    DataCrc dc = {0, 0};
    unsigned char *stage = malloc(total ? total : 1);
    RtStatus st_read = stage ? RT_OK : rt_fail(err, "%s: out of memory", path);
    if (st_read == RT_OK)
        st_read = read_tensors(m, 0, m->nparams, fd, root, data_start, file_size, path, stage,
                               &dc, err);
    if (st_read == RT_OK)
        st_read = states_to_read(m, root, checkpoint, path, &nstates, err);
    if (st_read == RT_OK)
        st_read = read_tensors(m, m->nparams, m->nparams + nstates, fd, root, data_start,
                               file_size, path, stage + param_bytes, &dc, err);
    if (st_read == RT_OK && checkpoint)
        st_read = read_counters(root, path, &c, err);
    if (st_read == RT_OK && h.checked)
        st_read = check_data_crc(fd, &h, &dc, file_size, path, err);
    if (st_read == RT_OK)
        st_read = check_layout(root, file_size - data_start, path, err);
    int ntensors = m->nparams + nstates;
    rt_json_free(root);
    close(fd);
    if (st_read == RT_OK) {
        size_t at = 0;
        for (int i = 0; i < ntensors; i++) {
            size_t bytes = rt_tensor_bytes(m, persistent(m, i), 1);
            memcpy(rt_ptr(s, persistent(m, i)), stage + at, bytes);
            at += bytes;
        }
        if (checkpoint) {
            s->step = c.step;
            s->epoch = c.epoch;
            s->epoch_rows = c.epoch_rows;
            s->rng = c.rng;
        }
    }
    free(stage);
    return st_read;
}

/* Contract: see rt.h. */
RtStatus rt_load_weights(RtSession *s, const char *path, RtError *err) {
    return load_file(s, path, false, err);
}

/* Contract: see rt.h. */
RtStatus rt_load_checkpoint(RtSession *s, const char *path, RtError *err) {
    return load_file(s, path, true, err);
}

/* Contract: see rt.h; the counters' keys come first, then the caller's. */
RtStatus rt_save_checkpoint(const RtSession *s, const char *path, int nmeta,
                            const char *const *keys, const char *const *values, RtError *err) {
    enum { NCOUNTERS = 4 };
    static const char *const own[NCOUNTERS] = {"step", "epoch", "epoch_rows", "rng"};
    if (nmeta < 0)
        return rt_fail(err, "%s: %d metadata pairs", path, nmeta);
    for (int k = 0; k < nmeta; k++)
        for (int j = 0; j < NCOUNTERS; j++)
            if (keys[k] && !strcmp(keys[k], own[j]))
                return rt_fail(err, "%s: metadata key '%s' is reserved for the checkpoint", path,
                               keys[k]);
    char step[32], epoch[32], rows[32], rng[80];
    snprintf(step, sizeof step, "%lld", (long long)s->step);
    snprintf(epoch, sizeof epoch, "%lld", (long long)s->epoch);
    snprintf(rows, sizeof rows, "%lld", (long long)s->epoch_rows);
    snprintf(rng, sizeof rng, "%016llx %016llx %016llx %016llx",
             (unsigned long long)s->rng.s[0], (unsigned long long)s->rng.s[1],
             (unsigned long long)s->rng.s[2], (unsigned long long)s->rng.s[3]);
    const char **k2 = malloc(sizeof *k2 * (size_t)(nmeta + NCOUNTERS));
    const char **v2 = malloc(sizeof *v2 * (size_t)(nmeta + NCOUNTERS));
    if (!k2 || !v2) {
        free(k2);
        free(v2);
        return rt_fail(err, "%s: out of memory", path);
    }
    const char *mine[NCOUNTERS] = {step, epoch, rows, rng};
    for (int k = 0; k < NCOUNTERS; k++) {
        k2[k] = own[k];
        v2[k] = mine[k];
    }
    for (int k = 0; k < nmeta; k++) {
        k2[NCOUNTERS + k] = keys[k];
        v2[NCOUNTERS + k] = values[k];
    }
    RtStatus st = rt_save_weights_meta(s, path, nmeta + NCOUNTERS, k2, v2, err);
    free(k2);
    free(v2);
    return st;
}

/* Contract: see rt.h. A __metadata__ that is not an object of strings, or a
 * non-string value under key, is a corrupt header. */
RtStatus rt_read_weights_meta(const char *path, const char *key, char **value_out, RtError *err) {
    *value_out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rt_fail(err, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return rt_fail(err, "cannot read '%s': %s", path, strerror(e));
    }
    Header h;
    RtStatus rs = read_header(fd, (uint64_t)st.st_size, path, &h, err);
    close(fd);
    if (rs != RT_OK)
        return RT_FAIL;
    RtJson *root = h.root;
    const RtJson *meta = rt_json_get(root, "__metadata__");
    const RtJson *v = meta ? rt_json_get(meta, key) : NULL;
    if (meta && meta->kind != RT_JSON_OBJECT)
        rs = rt_fail(err, "%s: corrupt header: __metadata__ is not an object", path);
    else if (v && v->kind != RT_JSON_STRING)
        rs = rt_fail(err, "%s: corrupt header: metadata '%s' is not a string", path, key);
    else if (v && !(*value_out = strdup(v->string)))
        rs = rt_fail(err, "%s: out of memory", path);
    rt_json_free(root);
    return rs;
}
