/* mpi_plugin.h: gradc's MPI transport, loaded on first use (mpi_plugin.c).
 * The same contracts as rt_mpi_start and rt_mpi_finish (runtime/rt_mpi.h),
 * for RunModel.dist_start and dist_finish. */
#ifndef GRADC_DRIVER_MPI_PLUGIN_H
#define GRADC_DRIVER_MPI_PLUGIN_H

#include "runtime/rt.h"

RtStatus mpi_plugin_start(RtDist **out, RtError *err);
void mpi_plugin_finish(RtDist *d);

#endif
