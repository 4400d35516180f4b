/* text.c: character-level language-model data: the vocabulary (bytes and
 * their ids), its metadata string, and loading a text file into an
 * RtDataset of (context, next character) rows.
 *
 * Characters are bytes: no decoding, so UTF-8 text has one id per byte. The
 * vocabulary is the sorted set of the file's distinct bytes (id = rank), or
 * the one the weights were trained with. NUL bytes are rejected: a text file
 * does not hold them, and the metadata string could not.
 *
 * Memory: the context rows overlap, so the context input's data is the id
 * sequence itself, read with a row stride of 1 (RtDataset.row_stride); the
 * next-character input is packed. 8 bytes per character in all, whatever
 * the context length. Must not know about models beyond their two inputs.
 */
#include "rt_internal.h"

#include <stdlib.h>
#include <string.h>

void rt_vocab_build(RtVocab *v, const void *bytes, size_t len) {
    bool seen[256] = {false};
    const unsigned char *p = bytes;
    for (size_t i = 0; i < len; i++)
        seen[p[i]] = true;
    v->n = 0;
    memset(v->chars, 0, sizeof v->chars);
    for (int c = 1; c < 256; c++)
        if (seen[c])
            v->chars[v->n++] = (unsigned char)c;
}

int rt_vocab_id(const RtVocab *v, unsigned char c) {
    int lo = 0, hi = v->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (v->chars[mid] == c)
            return mid;
        if (v->chars[mid] < c)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* A character for messages: 'a', '\n', or byte 0xc3. */
static const char *char_str(unsigned char c, char *buf, size_t n) {
    static const char *const esc[] = {['\n'] = "\\n", ['\t'] = "\\t", ['\r'] = "\\r"};
    if (c < sizeof esc / sizeof esc[0] && esc[c])
        snprintf(buf, n, "'%s'", esc[c]);
    else if (c >= 0x20 && c < 0x7f)
        snprintf(buf, n, "'%c'", c);
    else
        snprintf(buf, n, "byte 0x%02x", c);
    return buf;
}

/* id of every byte (-1: not in v). */
static void id_table(const RtVocab *v, int16_t table[256]) {
    for (int c = 0; c < 256; c++)
        table[c] = -1;
    for (int i = 0; i < v->n; i++)
        table[v->chars[i]] = (int16_t)i;
}

RtStatus rt_vocab_encode(const RtVocab *v, const char *s, size_t len, int32_t *ids,
                         const char *what, RtError *err) {
    int16_t table[256];
    id_table(v, table);
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)s[k];
        if (table[c] < 0) {
            char cs[32];
            return rt_fail(err, "%s: character %s at position %zu is not in the vocabulary (%d "
                                "characters)",
                           what, char_str(c, cs, sizeof cs), k + 1, v->n);
        }
        ids[k] = table[c];
    }
    return RT_OK;
}

RtStatus rt_vocab_decode(const RtVocab *v, const int32_t *ids, size_t n, char *out, RtError *err) {
    for (size_t k = 0; k < n; k++) {
        if (ids[k] < 0 || ids[k] >= v->n)
            return rt_fail(err, "id %d at position %zu is outside the vocabulary of %d "
                                "characters",
                           (int)ids[k], k + 1, v->n);
        out[k] = (char)v->chars[ids[k]];
    }
    return RT_OK;
}

char *rt_vocab_to_string(const RtVocab *v, char *buf) {
    size_t k = 0;
    for (int i = 0; i < v->n; i++) {
        unsigned char c = v->chars[i];
        if (c < 0x80) {
            buf[k++] = (char)c;
        } else {
            buf[k++] = (char)(0xC0 | c >> 6);
            buf[k++] = (char)(0x80 | (c & 0x3F));
        }
    }
    buf[k] = '\0';
    return buf;
}

RtStatus rt_vocab_from_string(RtVocab *v, const char *s, RtError *err) {
    const unsigned char *p = (const unsigned char *)s;
    memset(v, 0, sizeof *v);
    int prev = 0;
    while (*p) {
        int c;
        if (*p < 0x80) {
            c = *p++;
        } else if ((*p == 0xC2 || *p == 0xC3) && (p[1] & 0xC0) == 0x80) {
            c = (*p & 0x1F) << 6 | (p[1] & 0x3F);
            p += 2;
        } else {
            return rt_fail(err, "the vocabulary string holds a character above U+00FF or "
                                "invalid UTF-8 at byte %zu",
                           (size_t)(p - (const unsigned char *)s));
        }
        if (c <= prev)
            return rt_fail(err, "the vocabulary string is not in increasing order at character "
                                "%d",
                           v->n + 1);
        v->chars[v->n++] = (unsigned char)c;
        prev = c;
    }
    if (v->n == 0)
        return rt_fail(err, "the vocabulary string is empty");
    return RT_OK;
}

/* The model's int input with exactly these dims after the batch dimension
 * (rank 2 [B, context], or rank 1 [B] for context 0); -1 if none. */
static int find_int_input(const RtModel *m, int64_t context) {
    for (int i = 0; i < m->ninputs; i++) {
        const RtTensor *t = &m->inputs[i];
        if (t->dtype != RT_INT || t->rank < 1 || t->dims[0] != RT_DIM_BATCH)
            continue;
        if (context == 0 ? t->rank == 1 : t->rank == 2 && t->dims[1] == context)
            return i;
    }
    return -1;
}

/* Contract: see rt.h. On RT_FAIL d is empty and *vocab_out untouched. */
RtStatus rt_load_text(RtDataset *d, const RtModel *m, const char *path, int64_t context,
                      const RtVocab *vocab, RtVocab *vocab_out, RtError *err) {
    memset(d, 0, sizeof *d);
    char have[512];
    if (context < 1)
        return rt_fail(err, "%s: the context length is %lld; it must be at least 1", path,
                       (long long)context);
    int ci = find_int_input(m, context), ti = find_int_input(m, 0);
    if (ci < 0 || ti < 0 || m->ninputs != 2)
        return rt_fail(err, "%s: text data with context %lld feeds two int inputs, [B, %lld] "
                            "(the context) and [B] (the next character), but model '%s' has: %s",
                       path, (long long)context, (long long)context, m->name,
                       rt_inputs_str(m, have, sizeof have));
    unsigned char *text;
    size_t len;
    bool gzipped;
    if (rt_read_data_file(path, &text, &len, &gzipped, err) != RT_OK)
        return RT_FAIL;
    const unsigned char *nul = memchr(text, 0, len);
    RtStatus st = RT_OK;
    if (len == 0)
        st = rt_fail(err, "%s: the file is empty%s", path,
                     gzipped ? " (after gzip decompression)" : "");
    else if (nul)
        st = rt_fail(err, "%s: byte offset %zu: a NUL byte; text data must be text", path,
                     (size_t)(nul - text));
    else if (len < (size_t)context + 1)
        st = rt_fail(err, "%s: the text has %zu characters, but a context of %lld needs at "
                          "least %lld",
                     path, len, (long long)context, (long long)context + 1);
    RtVocab v;
    if (st == RT_OK && vocab)
        v = *vocab;
    else if (st == RT_OK)
        rt_vocab_build(&v, text, len);
    int16_t table[256];
    if (st == RT_OK)
        id_table(&v, table);
    if (st == RT_OK && vocab) {
        long line = 1, col = 1;
        for (size_t k = 0; k < len && st == RT_OK; k++) {
            if (table[text[k]] < 0) {
                char cs[32];
                st = rt_fail(err, "%s:%ld:%ld: character %s (byte offset %zu) is not in the "
                                  "vocabulary of the weights (%d characters)",
                             path, line, col, char_str(text[k], cs, sizeof cs), k, v.n);
            }
            if (text[k] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
    }
    const RtTensor *ct = &m->inputs[ci], *tt = &m->inputs[ti];
    if (st == RT_OK && ct->limit > 0 && v.n > ct->limit)
        st = rt_fail(err, "%s: the text has %d distinct characters, but the model's embedding "
                          "has %lld rows (input '%s' takes ids 0 to %lld)",
                     path, v.n, (long long)ct->limit, ct->name, (long long)ct->limit - 1);
    if (st == RT_OK && tt->limit > 0 && v.n > tt->limit)
        st = rt_fail(err, "%s: the text has %d distinct characters, but the model predicts %lld "
                          "classes (input '%s' takes ids 0 to %lld)",
                     path, v.n, (long long)tt->limit, tt->name, (long long)tt->limit - 1);
    int64_t n = (int64_t)len - context;
    bool load[2] = {false, false};
    load[ti] = true;
    if (st == RT_OK)
        st = rt_dataset_alloc(d, m, n, load, path, err);
    if (st == RT_OK) {
        d->row_stride = calloc(2, sizeof *d->row_stride);
        d->data[ci] = malloc(len * sizeof(int32_t));
        if (!d->row_stride || !d->data[ci])
            st = rt_fail(err, "%s: out of memory for %zu characters", path, len);
    }
    if (st == RT_OK) {
        int32_t *ids = d->data[ci], *next = d->data[ti];
        for (size_t k = 0; k < len; k++)
            ids[k] = table[text[k]];
        memcpy(next, ids + context, (size_t)n * sizeof *next);
        d->row_stride[ci] = 1;
        if (vocab_out)
            *vocab_out = v;
    }
    free(text);
    if (st != RT_OK)
        rt_dataset_free(d);
    return st;
}
