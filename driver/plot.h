/* plot.h: the training curves of `train --plot F.svg`, as an SVG chart
 * drawn without any library: loss and held-out loss on the left axis,
 * accuracy (when the model has a metric) on the right, per epoch. Part of
 * the run library (gradc and built programs alike).
 */
#ifndef GRADC_DRIVER_PLOT_H
#define GRADC_DRIVER_PLOT_H

#include "run.h"

/* Draw the n epochs e[] (in order; NaN figures are left out) under title
 * into path, atomically (run_out_open). Nothing for n == 0. */
RtStatus run_plot_write(const char *path, const char *title, int n, const RtEpochStats *e,
                        RtError *err);

#endif
