/* plot.c: files written atomically, and the training curves of
 * `train --plot F.svg` drawn as SVG.
 *
 * The chart: epochs on x; the training loss and, with held-out rows, the
 * held-out loss on the left axis; the accuracy, when the model has a
 * metric, on a right axis from 0 to 100%. Each series is a polyline, and a
 * legend above the plot names them. Axis ranges are rounded outward to 1, 2 or 5 times a
 * power of ten so that the ticks read as round numbers. Up to 60 epochs
 * each point has a marker (with its value as a tooltip).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plot.h"

/* ---- atomic files (run.h) ------------------------------------------------------ */

RtStatus run_out_open(const char *path, RunOut *out, RtError *err) {
    *out = (RunOut){stdout, NULL, false};
    if (!path)
        return RT_OK;
    /* A device or a pipe (/dev/stdout, /dev/null) is written in place:
     * renaming over it would replace the device with a file. */
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode)) {
        if (!(out->f = fopen(path, "w")))
            return rt_fail(err, "cannot write '%s': %s", path, strerror(errno));
        out->in_place = true;
        return RT_OK;
    }
    size_t n = strlen(path) + 32;
    if (!(out->tmp = malloc(n)))
        return rt_fail(err, "cannot write '%s': out of memory", path);
    snprintf(out->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    if (!(out->f = fopen(out->tmp, "w"))) {
        int e = errno;
        free(out->tmp);
        out->tmp = NULL;
        return rt_fail(err, "cannot write '%s': %s", path, strerror(e));
    }
    return RT_OK;
}

RtStatus run_out_finish(const char *path, RunOut *out, bool ok, RtError *err) {
    if (out->in_place) {
        int e = fclose(out->f) != 0 ? errno : 0;
        out->in_place = false;
        return !ok || !e ? (ok ? RT_OK : RT_FAIL)
                         : rt_fail(err, "cannot write '%s': %s", path, strerror(e));
    }
    if (!out->tmp)
        return fflush(stdout) == 0 || !ok ? RT_OK : rt_fail(err, "cannot write to stdout");
    int e = 0;
    if (ok && (fflush(out->f) != 0 || fsync(fileno(out->f)) != 0))
        e = errno;
    if (fclose(out->f) != 0 && !e)
        e = errno;
    if (ok && !e && rename(out->tmp, path) != 0)
        e = errno;
    if (!ok || e)
        unlink(out->tmp);
    free(out->tmp);
    out->tmp = NULL;
    if (!ok || e)
        return ok ? rt_fail(err, "cannot write '%s': %s", path, strerror(e)) : RT_FAIL;
    return RT_OK;
}

/* ---- the chart ------------------------------------------------------------------ */

enum { W = 720, H = 420, LEFT = 72, RIGHT = 72, TOP = 56, BOTTOM = 56, MAX_MARKERS = 60 };

typedef struct Axis {
    double lo, hi, step; /* range and tick spacing */
} Axis;

/* 1, 2 or 5 times a power of ten, at least x. */
static double nice_step(double x) {
    double p = pow(10, floor(log10(x)));
    double m = x / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* Ticks over [lo, hi] (about five), the range widened to whole ticks. */
static Axis nice_axis(double lo, double hi) {
    if (!(hi > lo)) {
        double pad = fabs(lo) > 0 ? fabs(lo) * 0.5 : 1;
        lo -= pad;
        hi += pad;
    }
    double step = nice_step((hi - lo) / 5);
    return (Axis){floor(lo / step) * step, ceil(hi / step) * step, step};
}

static double to_px(const Axis *a, double v, double px_lo, double px_hi) {
    return px_lo + (v - a->lo) / (a->hi - a->lo) * (px_hi - px_lo);
}

/* A tick label: as few digits as the step needs. */
static void tick_label(char *buf, size_t n, double v, double step) {
    int digits = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) < step * 1e-9)
        v = 0;
    snprintf(buf, n, "%.*f", digits > 12 ? 12 : digits, v);
}

typedef struct Series {
    const char *name, *colour;
    size_t field; /* offsetof the figure in RtEpochStats */
    bool right;   /* on the accuracy axis (a fraction shown as %) */
} Series;

static const Series series[] = {
    {"loss", "#1f77b4", offsetof(RtEpochStats, loss), false},
    {"val_loss", "#ff7f0e", offsetof(RtEpochStats, val_loss), false},
    {"accuracy", "#2ca02c", offsetof(RtEpochStats, accuracy), true},
};
enum { NSERIES = sizeof series / sizeof series[0] };

static double figure(const RtEpochStats *e, const Series *s) {
    return *(const double *)((const char *)e + s->field);
}

/* Escape &, < and > (and quotes, for attributes) for XML text. */
static void put_xml(FILE *f, const char *s) {
    for (; *s; s++)
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            /* XML 1.0 allows no control characters but tab, LF and CR. */
            if ((unsigned char)*s >= 0x20 || *s == '\t' || *s == '\n' || *s == '\r')
                fputc(*s, f);
        }
}

static void draw(FILE *f, const char *title, int n, const RtEpochStats *e) {
    bool has[NSERIES] = {0};
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < NSERIES; k++)
        for (int i = 0; i < n; i++) {
            double v = figure(&e[i], &series[k]);
            if (!isfinite(v))
                continue;
            has[k] = true;
            if (!series[k].right) {
                lo = fmin(lo, v);
                hi = fmax(hi, v);
            }
        }
    if (!(lo <= hi))
        lo = 0, hi = 1;
    /* Losses are usually positive: start the axis at 0 when that costs
     * less than half the height, so that the curves' drops read true. */
    if (lo > 0 && lo < hi)
        lo = 0;
    Axis y = nice_axis(lo, hi), acc = {0, 1, 0.2};
    Axis x = {(double)e[0].epoch, (double)e[n - 1].epoch, 1};
    if (x.hi == x.lo)
        x.lo -= 1, x.hi += 1;
    x.step = nice_step((x.hi - x.lo) / 8);
    if (x.step < 1)
        x.step = 1;
    double x0 = LEFT, x1 = W - RIGHT, y0 = H - BOTTOM, y1 = TOP;

    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    fputs("<text x=\"360\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">", f);
    put_xml(f, title);
    fputs("</text>\n", f);

    /* Grid and left ticks. */
    char buf[64];
    for (double v = y.lo; v <= y.hi + y.step * 1e-6; v += y.step) {
        double py = to_px(&y, v, y0, y1);
        tick_label(buf, sizeof buf, v, y.step);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n",
                x0, py, x1, py);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", x0 - 6, py + 4,
                buf);
    }
    double first = ceil(x.lo / x.step) * x.step;
    for (double v = first; v <= x.hi + 1e-9; v += x.step) {
        double px = to_px(&x, v, x0, x1);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", px,
                y0, px, y0 + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>\n", px,
                y0 + 19, v);
    }
    if (has[2])
        for (double v = 0; v <= 1 + 1e-9; v += acc.step) {
            double py = to_px(&acc, v, y0, y1);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%.0f%%</text>\n", x1 + 6, py + 4, 100 * v);
        }
    /* Axes and their names. */
    fprintf(f, "<path d=\"M%.1f %.1f V%.1f H%.1f\" fill=\"none\" stroke=\"#444\"/>\n", x0, y1,
            y0, x1);
    if (has[2])
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n",
                x1, y0, x1, y1);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">epoch</text>\n", (x0 + x1) / 2,
            H - 16);
    fprintf(f, "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">"
               "loss</text>\n",
            (y0 + y1) / 2);
    if (has[2])
        fprintf(f, "<text transform=\"translate(%d %.1f) rotate(90)\" text-anchor=\"middle\">"
                   "accuracy</text>\n",
                W - 18, (y0 + y1) / 2);

    /* The series, then the legend. */
    int nlegend = 0;
    for (int k = 0; k < NSERIES; k++) {
        if (!has[k])
            continue;
        const Axis *a = series[k].right ? &acc : &y;
        fprintf(f, "<g class=\"series\" id=\"%s\" stroke=\"%s\" fill=\"%s\">\n", series[k].name,
                series[k].colour, series[k].colour);
        fputs("<polyline fill=\"none\" stroke-width=\"2\" points=\"", f);
        for (int i = 0; i < n; i++) {
            double v = figure(&e[i], &series[k]);
            if (isfinite(v))
                fprintf(f, "%s%.1f,%.1f", i ? " " : "", to_px(&x, (double)e[i].epoch, x0, x1),
                        to_px(a, v, y0, y1));
        }
        fputs("\"/>\n", f);
        /* A marker per epoch while they stay apart. */
        for (int i = 0; i < n && n <= MAX_MARKERS; i++) {
            double v = figure(&e[i], &series[k]);
            if (isfinite(v))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\"><title>epoch %lld: %s "
                           "%.6g</title></circle>\n",
                        to_px(&x, (double)e[i].epoch, x0, x1), to_px(a, v, y0, y1),
                        (long long)e[i].epoch, series[k].name, v);
        }
        fputs("</g>\n", f);
        /* The legend: one row above the plot, clear of the curves. */
        double lx = x0 + 150 * nlegend++, ly = TOP - 12;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                   "stroke-width=\"2\"/>\n",
                lx, ly, lx + 24, ly, series[k].colour);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%s%s</text>\n", lx + 30, ly + 4,
                series[k].name, series[k].right ? " (right)" : "");
    }
    fputs("</svg>\n", f);
}

RtStatus run_plot_write(const char *path, const char *title, int n, const RtEpochStats *e,
                        RtError *err) {
    if (n <= 0)
        return RT_OK;
    RunOut out;
    if (run_out_open(path, &out, err) != RT_OK)
        return RT_FAIL;
    draw(out.f, title, n, e);
    return run_out_finish(path, &out, !ferror(out.f), err);
}
