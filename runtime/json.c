/* json.c: a small strict JSON reader (RFC 8259) for safetensors headers and
 * for reading back the training log.
 *
 * Owns parsing text into an RtJson tree and freeing it. Rejects anything
 * the RFC rejects (trailing commas, single quotes, leading zeros, raw control
 * characters in strings, lone surrogates) plus duplicate object keys and
 * nesting deeper than MAX_DEPTH, and says what it expected where. Must not
 * know what the documents mean; must not write JSON (writers escape their
 * own strings).
 */
#include "rt_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_DEPTH = 64 };

typedef struct Reader {
    const char *p, *start, *end;
    char *why;
    size_t nwhy;
    bool failed;
} Reader;

/* Record the first error only, with the byte offset where it happened. */
__attribute__((format(printf, 2, 3))) static bool fail(Reader *r, const char *fmt, ...) {
    if (r->failed)
        return false;
    r->failed = true;
    if (r->why && r->nwhy) {
        char what[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        snprintf(r->why, r->nwhy, "%s at byte %zu", what, (size_t)(r->p - r->start));
    }
    return false;
}

static void skip_ws(Reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

/* A printable description of the byte at r->p for messages. */
static const char *found(const Reader *r, char *buf, size_t n) {
    if (r->p >= r->end)
        snprintf(buf, n, "the end of the text");
    else if ((unsigned char)*r->p >= 0x20 && (unsigned char)*r->p < 0x7f)
        snprintf(buf, n, "'%c'", *r->p);
    else
        snprintf(buf, n, "byte 0x%02x", (unsigned char)*r->p);
    return buf;
}

static bool expect(Reader *r, char c, const char *what) {
    char buf[32];
    skip_ws(r);
    if (r->p < r->end && *r->p == c) {
        r->p++;
        return true;
    }
    return fail(r, "expected %s, found %s", what, found(r, buf, sizeof buf));
}

static bool parse_value(Reader *r, RtJson *v, int depth);

/* Growable byte buffer for string contents. */
typedef struct Buf {
    char *data;
    size_t len, cap;
} Buf;

static bool buf_put(Reader *r, Buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 32;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *data = realloc(b->data, cap);
        if (!data)
            return fail(r, "out of memory");
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* \uXXXX (with a following low surrogate for code points above U+FFFF),
 * r->p just past the 'u'; appends the code point as UTF-8. */
static bool parse_unicode(Reader *r, Buf *b) {
    if (r->end - r->p < 4 || hex4(r->p) < 0)
        return fail(r, "expected four hex digits after \\u");
    unsigned cp = (unsigned)hex4(r->p);
    r->p += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail(r, "lone low surrogate \\u%04X", cp);
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' || hex4(r->p + 2) < 0xDC00 ||
            hex4(r->p + 2) > 0xDFFF)
            return fail(r, "high surrogate \\u%04X without a low surrogate", cp);
        cp = 0x10000 + ((cp - 0xD800) << 10) + ((unsigned)hex4(r->p + 2) - 0xDC00);
        r->p += 6;
    }
    if (cp == 0)
        return fail(r, "\\u0000 in a string is not supported");
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return buf_put(r, b, u, n);
}

/* string = '"' { char | '\' escape } '"'; r->p at the opening quote.
 * On success *out is a malloc'd NUL-terminated copy. */
static bool parse_string(Reader *r, char **out) {
    Buf b = {0};
    r->p++;
    if (!buf_put(r, &b, "", 0))
        return false;
    for (;;) {
        if (r->p >= r->end) {
            free(b.data);
            return fail(r, "unterminated string");
        }
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            r->p++;
            *out = b.data;
            return true;
        }
        if (c < 0x20) {
            free(b.data);
            return fail(r, "raw control character 0x%02x in a string", c);
        }
        if (c != '\\') {
            const char *run = r->p;
            while (r->p < r->end && *r->p != '"' && *r->p != '\\' &&
                   (unsigned char)*r->p >= 0x20)
                r->p++;
            if (!buf_put(r, &b, run, (size_t)(r->p - run))) {
                free(b.data);
                return false;
            }
            continue;
        }
        r->p++;
        char e = r->p < r->end ? *r->p++ : '\0';
        const char *rep = e == '"' ? "\"" : e == '\\' ? "\\" : e == '/' ? "/" : e == 'b' ? "\b"
                          : e == 'f' ? "\f" : e == 'n' ? "\n" : e == 'r' ? "\r" : e == 't' ? "\t"
                                                                            : NULL;
        bool ok = rep ? buf_put(r, &b, rep, 1)
                  : e == 'u' ? parse_unicode(r, &b)
                             : fail(r, "invalid escape '\\%c' in a string", e ? e : '0');
        if (!ok) {
            free(b.data);
            return false;
        }
    }
}

/* number = [ '-' ] int [ frac ] [ exp ], checked by hand (strtod accepts
 * more: hex, inf, nan, leading '+'), then converted by strtod. */
static bool parse_number(Reader *r, double *out) {
    const char *s = r->p, *q = r->p;
    char buf[32];
    if (q < r->end && *q == '-')
        q++;
    if (q < r->end && *q == '0') {
        q++;
    } else if (q < r->end && *q >= '1' && *q <= '9') {
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    } else {
        r->p = q;
        return fail(r, "expected a digit, found %s", found(r, buf, sizeof buf));
    }
    if (q < r->end && *q == '.') {
        q++;
        if (q >= r->end || *q < '0' || *q > '9') {
            r->p = q;
            return fail(r, "expected a digit after '.'");
        }
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < r->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < r->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= r->end || *q < '0' || *q > '9') {
            r->p = q;
            return fail(r, "expected a digit in the exponent");
        }
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    }
    size_t n = (size_t)(q - s);
    char small[64];
    char *copy = n < sizeof small ? small : malloc(n + 1);
    if (!copy)
        return fail(r, "out of memory");
    memcpy(copy, s, n);
    copy[n] = '\0';
    errno = 0;
    *out = strtod(copy, NULL);
    bool range = errno == ERANGE && (*out > 1.0 || *out < -1.0);
    if (copy != small)
        free(copy);
    if (range)
        return fail(r, "number out of range");
    r->p = q;
    return true;
}

static bool literal(Reader *r, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) >= n && memcmp(r->p, word, n) == 0) {
        r->p += n;
        return true;
    }
    return fail(r, "expected a value");
}

/* Push a zeroed item (and for objects a key slot) onto v. */
static RtJson *push_item(Reader *r, RtJson *v, int *cap) {
    if (v->n == *cap) {
        int ncap = *cap ? 2 * *cap : 4;
        RtJson *items = realloc(v->items, sizeof *items * (size_t)ncap);
        if (!items) {
            fail(r, "out of memory");
            return NULL;
        }
        v->items = items;
        if (v->kind == RT_JSON_OBJECT) {
            char **keys = realloc(v->keys, sizeof *keys * (size_t)ncap);
            if (!keys) {
                fail(r, "out of memory");
                return NULL;
            }
            v->keys = keys;
        }
        *cap = ncap;
    }
    RtJson *it = &v->items[v->n];
    memset(it, 0, sizeof *it);
    if (v->keys)
        v->keys[v->n] = NULL;
    v->n++;
    return it;
}

typedef struct KeyRef {
    const char *key;
    int index;
} KeyRef;

static int cmp_keyref(const void *a, const void *b) {
    return strcmp(((const KeyRef *)a)->key, ((const KeyRef *)b)->key);
}

/* Build v->sorted (indices in key order) and reject duplicate keys. */
static bool index_keys(Reader *r, RtJson *v) {
    if (v->n == 0)
        return true;
    KeyRef *refs = malloc(sizeof *refs * (size_t)v->n);
    v->sorted = malloc(sizeof *v->sorted * (size_t)v->n);
    if (!refs || !v->sorted) {
        free(refs);
        return fail(r, "out of memory");
    }
    for (int i = 0; i < v->n; i++)
        refs[i] = (KeyRef){v->keys[i], i};
    qsort(refs, (size_t)v->n, sizeof *refs, cmp_keyref);
    bool ok = true;
    for (int i = 0; i < v->n; i++) {
        v->sorted[i] = refs[i].index;
        if (ok && i > 0 && strcmp(refs[i - 1].key, refs[i].key) == 0)
            ok = fail(r, "duplicate key \"%.100s\"", refs[i].key);
    }
    free(refs);
    return ok;
}

/* object = '{' [ string ':' value { ',' string ':' value } ] '}' */
static bool parse_object(Reader *r, RtJson *v, int depth) {
    char buf[32];
    int cap = 0;
    v->kind = RT_JSON_OBJECT;
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return true;
    }
    for (;;) {
        skip_ws(r);
        if (r->p >= r->end || *r->p != '"')
            return fail(r, "expected a string key, found %s", found(r, buf, sizeof buf));
        RtJson *it = push_item(r, v, &cap);
        if (!it || !parse_string(r, &v->keys[v->n - 1]))
            return false;
        if (!expect(r, ':', "':' after a key") || !parse_value(r, it, depth + 1))
            return false;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (!expect(r, '}', "',' or '}' in an object"))
            return false;
        return index_keys(r, v);
    }
}

/* array = '[' [ value { ',' value } ] ']' */
static bool parse_array(Reader *r, RtJson *v, int depth) {
    int cap = 0;
    v->kind = RT_JSON_ARRAY;
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return true;
    }
    for (;;) {
        RtJson *it = push_item(r, v, &cap);
        if (!it || !parse_value(r, it, depth + 1))
            return false;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        return expect(r, ']', "',' or ']' in an array");
    }
}

/* value = object | array | string | number | true | false | null */
static bool parse_value(Reader *r, RtJson *v, int depth) {
    char buf[32];
    if (depth > MAX_DEPTH)
        return fail(r, "nesting deeper than %d", (int)MAX_DEPTH);
    skip_ws(r);
    if (r->p >= r->end)
        return fail(r, "expected a value, found the end of the text");
    switch (*r->p) {
    case '{': return parse_object(r, v, depth);
    case '[': return parse_array(r, v, depth);
    case '"': v->kind = RT_JSON_STRING; return parse_string(r, &v->string);
    case 't': v->kind = RT_JSON_BOOL; v->boolean = true; return literal(r, "true");
    case 'f': v->kind = RT_JSON_BOOL; return literal(r, "false");
    case 'n': v->kind = RT_JSON_NULL; return literal(r, "null");
    default:
        if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9')) {
            v->kind = RT_JSON_NUMBER;
            return parse_number(r, &v->number);
        }
        return fail(r, "expected a value, found %s", found(r, buf, sizeof buf));
    }
}

static void free_contents(RtJson *v) {
    for (int i = 0; i < v->n; i++) {
        free_contents(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->sorted);
    free(v->string);
}

RtJson *rt_json_parse(const char *text, size_t len, char *why, size_t nwhy) {
    Reader r = {.p = text, .start = text, .end = text + len, .why = why, .nwhy = nwhy};
    RtJson *v = calloc(1, sizeof *v);
    if (!v) {
        fail(&r, "out of memory");
        return NULL;
    }
    if (parse_value(&r, v, 0)) {
        skip_ws(&r);
        if (r.p == r.end)
            return v;
        char buf[32];
        fail(&r, "expected the end of the text, found %s", found(&r, buf, sizeof buf));
    }
    rt_json_free(v);
    return NULL;
}

void rt_json_free(RtJson *v) {
    if (!v)
        return;
    free_contents(v);
    free(v);
}

const RtJson *rt_json_get(const RtJson *v, const char *key) {
    if (!v || v->kind != RT_JSON_OBJECT)
        return NULL;
    int lo = 0, hi = v->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(v->keys[v->sorted[mid]], key);
        if (c == 0)
            return &v->items[v->sorted[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}
