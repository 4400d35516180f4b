/* csv.c: loading a CSV file into an RtDataset for a model.
 *
 * The dialect: comma-separated fields (the file may be gzip-compressed;
 * a NUL byte is an error), an optional header line, optional
 * double quotes around a field ("" inside quotes is one quote; a quoted field
 * does not span lines), LF or CRLF line ends, a UTF-8 byte-order mark
 * ignored, blank lines skipped, spaces and tabs around fields trimmed.
 *
 * Owns the mapping of columns to model inputs, number parsing, and class ids
 * for a column of string labels. Every error names the file, the 1-based line
 * and the 1-based column. Inputs left out by RtCsvSpec.need are skipped
 * whole: their columns are never looked up, so the file may lack them.
 * Must not keep any part of the file after returning (the dataset owns
 * copies), and must not know anything about training.
 *
 * The file is read whole and walked three times: a scan (field counts, which
 * int columns hold strings, row count), the distinct labels of the string
 * column if there is one (unless the caller gives the class names, as
 * weights trained on other rows carry them), and the conversion into the
 * dataset.
 */
#include "rt_internal.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct Csv {
    const char *path;
    char *text; /* the whole file, NUL-terminated */
    size_t len;
    size_t data_pos;  /* where the data rows start (after the header) */
    long data_line;   /* line number before data_pos */
    size_t pos;       /* the next line to read */
    long line;        /* line number of the row just read */
    char *scratch;    /* the current row's fields, unquoted, NUL-separated */
    size_t scratch_cap;
    char **fields; /* the current row's fields, into scratch */
    int nfields, fields_cap;
    RtError *err;
} Csv;

/* "path:line:col: msg"; line 0 leaves out line and column, col 0 the column. */
__attribute__((format(printf, 4, 5))) static RtStatus csv_fail(Csv *c, long line, int col,
                                                               const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line <= 0)
        return rt_fail(c->err, "%s: %s", c->path, msg);
    if (col <= 0)
        return rt_fail(c->err, "%s:%ld: %s", c->path, line, msg);
    return rt_fail(c->err, "%s:%ld:%d: %s", c->path, line, col, msg);
}

/* The whole file (gunzipped when it starts with the gzip magic), which must
 * be text: a NUL byte is an error naming its line. */
static RtStatus read_file(Csv *c) {
    unsigned char *data;
    size_t len;
    bool gzipped;
    if (rt_read_data_file(c->path, &data, &len, &gzipped, c->err) != RT_OK)
        return RT_FAIL;
    char *text = (char *)data;
    const char *nul = memchr(text, 0, len);
    if (nul) {
        size_t at = (size_t)(nul - text);
        long line = 1;
        for (size_t k = 0; k < at; k++)
            line += text[k] == '\n';
        free(text);
        return rt_fail(c->err, "%s:%ld: a NUL byte (byte offset %zu%s); CSV data must be text",
                       c->path, line, at, gzipped ? " after gzip decompression" : "");
    }
    c->text = text;
    c->len = len;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        c->pos = 3;
    return RT_OK;
}

static bool is_blank(char ch) {
    return ch == ' ' || ch == '\t';
}

static bool push_field(Csv *c, char *start) {
    if (c->nfields == c->fields_cap) {
        int cap = c->fields_cap ? 2 * c->fields_cap : 16;
        char **fields = realloc(c->fields, sizeof *fields * (size_t)cap);
        if (!fields)
            return false;
        c->fields = fields;
        c->fields_cap = cap;
    }
    c->fields[c->nfields++] = start;
    return true;
}

/* Split line [s, e) into c->fields. */
static RtStatus split_line(Csv *c, const char *s, const char *e) {
    size_t need = 2 * (size_t)(e - s) + 2;
    if (need > c->scratch_cap) {
        char *scratch = realloc(c->scratch, need);
        if (!scratch)
            return csv_fail(c, 0, 0, "out of memory");
        c->scratch = scratch;
        c->scratch_cap = need;
    }
    char *out = c->scratch;
    const char *p = s;
    c->nfields = 0;
    for (;;) {
        while (p < e && is_blank(*p))
            p++;
        if (!push_field(c, out))
            return csv_fail(c, 0, 0, "out of memory");
        if (p < e && *p == '"') {
            const char *open = p++;
            for (;;) {
                if (p >= e)
                    return csv_fail(c, c->line, c->nfields, "unterminated quote (opened at "
                                    "character %d)", (int)(open - s) + 1);
                if (*p == '"' && p + 1 < e && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *out++ = *p++;
                }
            }
            while (p < e && is_blank(*p))
                p++;
            if (p < e && *p != ',')
                return csv_fail(c, c->line, c->nfields, "expected ',' after a closing quote, "
                                "found '%c'", *p);
        } else {
            const char *start = p;
            while (p < e && *p != ',')
                p++;
            const char *stop = p;
            while (stop > start && is_blank(stop[-1]))
                stop--;
            memcpy(out, start, (size_t)(stop - start));
            out += stop - start;
        }
        *out++ = '\0';
        if (p >= e)
            return RT_OK;
        p++; /* the comma */
    }
}

/* Read the next non-blank line into c->fields. 1: a row; 0: end of file;
 * -1: error (in c->err). */
static int next_row(Csv *c) {
    while (c->pos < c->len) {
        const char *s = c->text + c->pos;
        const char *nl = memchr(s, '\n', c->len - c->pos);
        const char *e = nl ? nl : c->text + c->len;
        c->pos = nl ? (size_t)(nl - c->text) + 1 : c->len;
        c->line++;
        if (e > s && e[-1] == '\r')
            e--;
        const char *q = s;
        while (q < e && (is_blank(*q) || *q == '\r'))
            q++;
        if (q == e)
            continue;
        return split_line(c, s, e) == RT_OK ? 1 : -1;
    }
    return 0;
}

static void rewind_rows(Csv *c) {
    c->pos = c->data_pos;
    c->line = c->data_line;
}

/* Edit distance counting insertions, deletions, substitutions and swaps of
 * adjacent characters (optimal string alignment), ignoring case; SIZE_MAX
 * for names over 127 bytes. */
static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 127 || lb > 127)
        return SIZE_MAX;
    size_t rows[3][128], *before = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            int ai = tolower((unsigned char)a[i - 1]), bj = tolower((unsigned char)b[j - 1]);
            size_t best = prev[j - 1] + (ai != bj);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && ai == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == bj && before[j - 2] + 1 < best)
                best = before[j - 2] + 1;
            cur[j] = best;
        }
        size_t *t = before;
        before = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

/* The header name closest to name, if close enough to be a likely typo. */
static const char *closest(const char *name, char **names, int n) {
    const char *best = NULL;
    size_t best_d = SIZE_MAX, len = strlen(name);
    size_t limit = len / 3 > 1 ? len / 3 : 1;
    for (int i = 0; i < n; i++) {
        size_t d = edit_distance(name, names[i]);
        if (d < best_d) {
            best_d = d;
            best = names[i];
        }
    }
    return best && best_d <= limit && best_d < len ? best : NULL;
}

/* A finite decimal number, the whole field. */
static bool parse_number(const char *s, double *out) {
    char *end;
    if (!*s)
        return false;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0')
        return false;
    *out = v;
    return true;
}

/* A number, finite or not: a column of them with a "nan" or "inf" among
 * them is a column of numbers with a bad value, not of string labels. */
static bool is_number(const char *s) {
    double v;
    return parse_number(s, &v);
}

/* Where each model input's values come from. */
typedef struct Feed {
    const RtCsvInput *spec;
    int64_t row_elems;
    int *cols; /* row_elems column indices */
} Feed;

typedef struct Load {
    Csv c;
    const RtModel *m;
    const RtCsvSpec *spec;
    char **header; /* header names, or NULL */
    int nheader;
    int nfields; /* fields per row */
    Feed *feeds; /* one per model input */
    bool *int_col; /* column feeds an int input */
    bool *str_col; /* column feeds an int input and holds a non-number */
    long *str_line; /* first line where str_col[j] saw a non-number */
    int label_col; /* the string label column, or -1 */
    char **classes; /* class id i is classes[i] */
    int nclasses;
    int *by_name;   /* class ids in strcmp order of their names */
} Load;

static void load_free(Load *L) {
    free(L->c.text);
    free(L->c.scratch);
    free(L->c.fields);
    for (int i = 0; i < L->nheader; i++)
        free(L->header[i]);
    free(L->header);
    if (L->feeds)
        for (int i = 0; i < L->m->ninputs; i++)
            free(L->feeds[i].cols);
    free(L->feeds);
    free(L->int_col);
    free(L->str_col);
    free(L->str_line);
    for (int i = 0; i < L->nclasses; i++)
        free(L->classes[i]);
    free(L->classes);
    free(L->by_name);
}

/* Is model input i loaded at all? */
static bool wanted(const Load *L, int i) {
    return !L->spec->need || L->spec->need[i];
}

/* Pair every wanted model input with exactly one RtCsvInput; inputs not
 * wanted keep a NULL spec. */
static RtStatus match_inputs(Load *L) {
    const RtModel *m = L->m;
    const RtCsvSpec *spec = L->spec;
    L->feeds = calloc((size_t)(m->ninputs ? m->ninputs : 1), sizeof *L->feeds);
    if (!L->feeds)
        return csv_fail(&L->c, 0, 0, "out of memory");
    for (int k = 0; k < spec->ninputs; k++) {
        const RtCsvInput *ci = &spec->inputs[k];
        int found = -1;
        for (int i = 0; i < m->ninputs && found < 0; i++)
            if (strcmp(m->inputs[i].name, ci->input) == 0)
                found = i;
        if (found < 0)
            return rt_fail(L->c.err, "no model input named '%s'", ci->input);
        if (L->feeds[found].spec)
            return rt_fail(L->c.err, "input '%s' is fed twice", ci->input);
        if (!wanted(L, found))
            continue;
        L->feeds[found].spec = ci;
        L->feeds[found].row_elems = rt_numel(&m->inputs[found], 1);
    }
    for (int i = 0; i < m->ninputs; i++)
        if (!L->feeds[i].spec && wanted(L, i))
            return rt_fail(L->c.err, "data for input '%s' is missing", m->inputs[i].name);
    return RT_OK;
}

/* The header (if any) and the number of fields per row. */
static RtStatus read_header(Load *L) {
    Csv *c = &L->c;
    int r = next_row(c);
    if (r < 0)
        return RT_FAIL;
    if (r == 0)
        return csv_fail(c, 0, 0, "the file is empty");
    L->nfields = c->nfields;
    if (L->spec->header) {
        L->header = calloc((size_t)c->nfields, sizeof *L->header);
        if (!L->header)
            return csv_fail(c, 0, 0, "out of memory");
        for (int j = 0; j < c->nfields; j++, L->nheader++)
            if (!(L->header[j] = strdup(c->fields[j])))
                return csv_fail(c, 0, 0, "out of memory");
        c->data_pos = c->pos;
        c->data_line = c->line;
    } else {
        c->data_pos = 0;
        c->data_line = 0;
        if (c->text && c->len >= 3 && memcmp(c->text, "\xEF\xBB\xBF", 3) == 0)
            c->data_pos = 3;
    }
    return RT_OK;
}

/* Column indices for every input from the selectors; counts must match. */
static RtStatus resolve_columns(Load *L) {
    Csv *c = &L->c;
    const RtModel *m = L->m;
    char dims[96];
    for (int i = 0; i < m->ninputs; i++) {
        Feed *f = &L->feeds[i];
        const RtTensor *t = &m->inputs[i];
        if (!f->spec)
            continue;
        if (f->spec->ncols != f->row_elems)
            return csv_fail(c, 0, 0, "input '%s' %s takes %lld values per row, but %d columns "
                            "are selected",
                            t->name, rt_dims_str(t, dims, sizeof dims), (long long)f->row_elems,
                            f->spec->ncols);
        f->cols = malloc(sizeof *f->cols * (size_t)(f->row_elems ? f->row_elems : 1));
        if (!f->cols)
            return csv_fail(c, 0, 0, "out of memory");
        for (int k = 0; k < f->spec->ncols; k++) {
            const RtColumnSel *sel = &f->spec->cols[k];
            if (sel->name) {
                if (!L->header)
                    return csv_fail(c, 0, 0, "column '%s' (for input '%s') is selected by name, "
                                    "but the file has no header",
                                    sel->name, t->name);
                int found = -1;
                for (int j = 0; j < L->nheader && found < 0; j++)
                    if (strcmp(L->header[j], sel->name) == 0)
                        found = j;
                if (found < 0) {
                    const char *near = closest(sel->name, L->header, L->nheader);
                    if (near)
                        return csv_fail(c, c->data_line, 0, "no column named '%s' in the header; "
                                        "did you mean '%s'?", sel->name, near);
                    return csv_fail(c, c->data_line, 0, "no column named '%s' in the header",
                                    sel->name);
                }
                f->cols[k] = found;
            } else {
                if (sel->index < 0 || sel->index >= L->nfields)
                    return csv_fail(c, 0, 0, "column index %d (for input '%s') is out of range: "
                                    "the file has %d columns, 0 to %d",
                                    sel->index, t->name, L->nfields, L->nfields - 1);
                f->cols[k] = sel->index;
            }
        }
    }
    return RT_OK;
}

/* Pass 1: field counts, row count, and which int columns hold strings. */
static RtStatus scan(Load *L, int64_t *nrows) {
    Csv *c = &L->c;
    const RtModel *m = L->m;
    size_t nf = (size_t)L->nfields;
    L->int_col = calloc(nf, sizeof *L->int_col);
    L->str_col = calloc(nf, sizeof *L->str_col);
    L->str_line = calloc(nf, sizeof *L->str_line);
    if (!L->int_col || !L->str_col || !L->str_line)
        return csv_fail(c, 0, 0, "out of memory");
    for (int i = 0; i < m->ninputs; i++)
        if (m->inputs[i].dtype == RT_INT && L->feeds[i].spec)
            for (int64_t k = 0; k < L->feeds[i].row_elems; k++)
                L->int_col[L->feeds[i].cols[k]] = true;
    rewind_rows(c);
    int64_t n = 0;
    int r;
    while ((r = next_row(c)) > 0) {
        if (c->nfields != L->nfields)
            return csv_fail(c, c->line, 0, "expected %d fields, found %d", L->nfields,
                            c->nfields);
        for (int j = 0; j < L->nfields; j++)
            if (L->int_col[j] && !L->str_col[j] && !is_number(c->fields[j])) {
                L->str_col[j] = true;
                L->str_line[j] = c->line;
            }
        n++;
    }
    if (r < 0)
        return RT_FAIL;
    if (n == 0)
        return csv_fail(c, 0, 0, "no data rows");
    *nrows = n;
    L->label_col = -1;
    for (int j = 0; j < L->nfields; j++) {
        if (!L->str_col[j])
            continue;
        if (L->label_col >= 0)
            return csv_fail(c, L->str_line[j], j + 1, "a second column of string labels "
                            "(column %d holds them already); only one is supported",
                            L->label_col + 1);
        L->label_col = j;
    }
    return RT_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct NamedId {
    const char *name;
    int id;
} NamedId;

static int by_name_order(const void *a, const void *b) {
    return strcmp(((const NamedId *)a)->name, ((const NamedId *)b)->name);
}

/* The class names the caller gave (RtCsvSpec.classes), copied: class id i
 * is classes[i], whatever labels the file holds. */
static RtStatus given_classes(Load *L) {
    Csv *c = &L->c;
    const RtCsvSpec *spec = L->spec;
    int n = spec->nclasses;
    L->classes = calloc((size_t)n, sizeof *L->classes);
    L->by_name = malloc(sizeof *L->by_name * (size_t)n);
    NamedId *order = malloc(sizeof *order * (size_t)n);
    RtStatus st = L->classes && L->by_name && order ? RT_OK
                                                    : csv_fail(c, 0, 0, "out of memory");
    for (int i = 0; st == RT_OK && i < n; i++) {
        if (!(L->classes[i] = strdup(spec->classes[i])))
            st = csv_fail(c, 0, 0, "out of memory");
        L->nclasses = i + 1;
        order[i] = (NamedId){L->classes[i], i};
    }
    if (st == RT_OK)
        qsort(order, (size_t)n, sizeof *order, by_name_order);
    for (int i = 0; st == RT_OK && i < n; i++) {
        L->by_name[i] = order[i].id;
        if (i > 0 && strcmp(order[i - 1].name, order[i].name) == 0)
            st = csv_fail(c, 0, 0, "the class name '%.60s' is given twice", order[i].name);
    }
    free(order);
    return st;
}

/* Pass 2: the distinct strings of the label column, sorted: class id i is
 * classes[i]. */
static RtStatus collect_classes(Load *L, int64_t n) {
    Csv *c = &L->c;
    char **all = calloc((size_t)n, sizeof *all);
    if (!all)
        return csv_fail(c, 0, 0, "out of memory");
    int64_t k = 0;
    rewind_rows(c);
    RtStatus st = RT_OK;
    while (k < n && next_row(c) > 0)
        if (!(all[k++] = strdup(c->fields[L->label_col]))) {
            st = csv_fail(c, 0, 0, "out of memory");
            break;
        }
    if (st == RT_OK) {
        qsort(all, (size_t)k, sizeof *all, cmp_str);
        int64_t u = 0;
        for (int64_t i = 0; i < k; i++) {
            if (u > 0 && strcmp(all[u - 1], all[i]) == 0)
                free(all[i]);
            else
                all[u++] = all[i];
        }
        if (u > INT32_MAX) {
            st = csv_fail(c, 0, 0, "more than %d distinct labels", INT32_MAX);
        } else if (!(L->by_name = malloc(sizeof *L->by_name * (size_t)(u ? u : 1)))) {
            st = csv_fail(c, 0, 0, "out of memory");
        } else {
            L->classes = all;
            L->nclasses = (int)u;
            for (int i = 0; i < L->nclasses; i++)
                L->by_name[i] = i;
            return RT_OK;
        }
        k = u;
    }
    for (int64_t i = 0; i < k; i++)
        free(all[i]);
    free(all);
    return st;
}

static int class_id(const Load *L, const char *s) {
    int lo = 0, hi = L->nclasses - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(L->classes[L->by_name[mid]], s);
        if (c == 0)
            return L->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* One field of an int input: an integer, or the class id of a string label;
 * checked against the input's limit. */
static RtStatus convert_int(Load *L, const RtTensor *t, int col, int32_t *out) {
    Csv *c = &L->c;
    const char *s = c->fields[col];
    int64_t v;
    if (col == L->label_col) {
        v = class_id(L, s);
        if (v < 0) { /* only with the caller's names */
            char list[240];
            size_t len = 0;
            for (int k = 0; k < L->nclasses && len < sizeof list; k++)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s'%.40s'",
                                        k ? ", " : "", L->classes[k]);
            if (len >= sizeof list)
                memcpy(list + sizeof list - 5, "...", 4);
            return csv_fail(c, c->line, col + 1, "label '%.60s' is not one of the %d classes "
                            "the model was trained on: %s",
                            s, L->nclasses, list);
        }
        if (t->limit > 0 && v >= t->limit)
            return csv_fail(c, c->line, col + 1, "label '%.60s' is class %lld, out of range for "
                            "%lld classes (the column holds %d distinct labels)",
                            s, (long long)v, (long long)t->limit, L->nclasses);
    } else {
        double x;
        if (!parse_number(s, &x) || x != floor(x) || x < INT32_MIN || x > INT32_MAX)
            return csv_fail(c, c->line, col + 1, "expected an integer, found '%.60s'", s);
        v = (int64_t)x;
        if (t->limit > 0 && (v < 0 || v >= t->limit))
            return csv_fail(c, c->line, col + 1, "value %lld is out of range for input '%s', "
                            "which takes 0 to %lld",
                            (long long)v, t->name, (long long)(t->limit - 1));
    }
    *out = (int32_t)v;
    return RT_OK;
}

/* Pass 3: every selected field into the dataset. */
static RtStatus convert(Load *L, RtDataset *d) {
    Csv *c = &L->c;
    const RtModel *m = L->m;
    rewind_rows(c);
    for (int64_t row = 0; row < d->n; row++) {
        if (next_row(c) <= 0)
            return csv_fail(c, 0, 0, "the file changed while it was read");
        for (int i = 0; i < m->ninputs; i++) {
            const RtTensor *t = &m->inputs[i];
            const Feed *f = &L->feeds[i];
            if (!f->spec)
                continue;
            for (int64_t k = 0; k < f->row_elems; k++) {
                int col = f->cols[k];
                int64_t at = row * f->row_elems + k;
                if (t->dtype == RT_INT) {
                    if (convert_int(L, t, col, (int32_t *)d->data[i] + at) != RT_OK)
                        return RT_FAIL;
                    continue;
                }
                const char *s = c->fields[col];
                double x;
                if (!parse_number(s, &x))
                    return csv_fail(c, c->line, col + 1, "expected a number, found '%.60s'", s);
                if (!isfinite(x))
                    return csv_fail(c, c->line, col + 1, "expected a finite number, found "
                                    "'%.60s'", s);
                if (m->elem_size == 4 && !isfinite((float)x))
                    return csv_fail(c, c->line, col + 1, "'%.60s' is too large for float32 "
                                    "(at most %.9g)", s, (double)FLT_MAX);
                rt_store_float(d->data[i], m->elem_size, at, x);
            }
        }
    }
    return RT_OK;
}

static RtStatus alloc_dataset(Load *L, RtDataset *d, int64_t n) {
    bool *load = calloc((size_t)(L->m->ninputs ? L->m->ninputs : 1), sizeof *load);
    if (!load)
        return csv_fail(&L->c, 0, 0, "out of memory");
    for (int i = 0; i < L->m->ninputs; i++)
        load[i] = L->feeds[i].spec != NULL;
    RtStatus st = rt_dataset_alloc(d, L->m, n, load, L->c.path, L->c.err);
    free(load);
    return st;
}

/* Contract: see rt.h. On RT_OK d owns everything it points to (free with
 * rt_dataset_free); on RT_FAIL d is empty and err says file:line:col. */
RtStatus rt_load_csv(RtDataset *d, const RtModel *m, const RtCsvSpec *spec, RtError *err) {
    memset(d, 0, sizeof *d);
    Load L = {.m = m, .spec = spec, .label_col = -1};
    L.c.path = spec->path;
    L.c.err = err;
    int64_t n = 0;
    RtStatus st = match_inputs(&L);
    if (st == RT_OK)
        st = read_file(&L.c);
    if (st == RT_OK)
        st = read_header(&L);
    if (st == RT_OK)
        st = resolve_columns(&L);
    if (st == RT_OK)
        st = scan(&L, &n);
    if (st == RT_OK && L.label_col >= 0)
        st = spec->nclasses > 0 ? given_classes(&L) : collect_classes(&L, n);
    if (st == RT_OK)
        st = alloc_dataset(&L, d, n);
    if (st == RT_OK)
        st = convert(&L, d);
    if (st == RT_OK && L.label_col >= 0) {
        d->class_names = L.classes;
        d->nclasses = L.nclasses;
        L.classes = NULL;
        L.nclasses = 0;
    }
    load_free(&L);
    if (st != RT_OK)
        rt_dataset_free(d);
    return st;
}
