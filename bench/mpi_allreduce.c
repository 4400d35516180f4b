/* bench/mpi_allreduce.c: how long MPI_Allreduce of n floats takes here,
 * the cost data-parallel training pays each step (docs/distributed.md).
 *
 *   mpicc -O2 bench/mpi_allreduce.c -o /tmp/mpi_allreduce
 *   mpirun -np 2 /tmp/mpi_allreduce
 *
 * Sizes from 4 KiB to 16 MiB; each the mean over 500 calls (50 from
 * 4 MiB on), after 5 to warm up. Process 0 prints.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    for (int n = 1 << 10; n <= 1 << 23; n <<= 2) {
        float *buf = calloc((size_t)n, sizeof *buf);
        if (!buf)
            MPI_Abort(MPI_COMM_WORLD, 1);
        int calls = n >= 1 << 20 ? 50 : 500;
        for (int i = 0; i < 5; i++)
            MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double t = MPI_Wtime();
        for (int i = 0; i < calls; i++)
            MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t = (MPI_Wtime() - t) / calls;
        if (rank == 0)
            printf("%9d floats (%6.2f MiB): %8.3f ms  %5.2f GB/s\n", n, n * 4 / 1048576.0,
                   t * 1e3, n * 4 / t * 1e-9);
        free(buf);
    }
    MPI_Finalize();
    return 0;
}
