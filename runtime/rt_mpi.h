/* rt_mpi.h: the MPI transport of data-parallel training (rt.h, RtDist),
 * in the library gradc_rt_mpi (runtime/mpi/), which only an MPI build has
 * (GRADC_HAVE_MPI): gradc and the programs gradc build --mpi makes link it.
 * This header needs no MPI header.
 */
#ifndef GRADC_RT_MPI_H
#define GRADC_RT_MPI_H

#include "runtime/rt.h"

/* Start MPI (MPI_Init_thread, funneled: only the thread that called this
 * calls MPI) unless it is started, and return this process's RtDist over
 * MPI_COMM_WORLD (*out, freed by rt_mpi_finish), whose errors come back as
 * RT_FAIL with MPI's message instead of ending the process. Started
 * without mpirun, the run is one process. */
RtStatus rt_mpi_start(RtDist **out, RtError *err);
/* Free d and finalize MPI (every process must call it). */
void rt_mpi_finish(RtDist *d);

#endif
