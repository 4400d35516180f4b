/* mpi.c: RtDist over MPI (rt_mpi.h). The collectives are MPI's on
 * MPI_COMM_WORLD; errors return (MPI_ERRORS_RETURN) and become RtErrors
 * with MPI's own message, and abort is MPI_Abort, which makes mpirun end
 * every process of the run.
 *
 * A process that dies ends the run: mpirun sees it exit and stops the
 * others. One that stops answering without dying (a stopped process, a
 * lost machine) would leave the others waiting in a collective forever,
 * so a watchdog thread ends this process, with a message, when one
 * collective has waited GRADC_MPI_TIMEOUT seconds (default 600; 0: never);
 * mpirun then stops the rest. Its exit status is 1, and nothing is being
 * written then: checkpoints are written between collectives, atomically.
 */
#include "runtime/rt_mpi.h"

#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* The watchdog: since when (CLOCK_MONOTONIC ns; 0: none) a collective of
 * this process has been waiting, and what it is. */
static atomic_llong waiting_since;
static const char *_Atomic waiting_in;
static double timeout_s = 600;
static const RtDist *_Atomic watched; /* for its rank and name */

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *watchdog(void *arg) {
    (void)arg;
    for (;;) {
        struct timespec tick = {.tv_sec = 0, .tv_nsec = 250000000};
        nanosleep(&tick, NULL);
        long long since = atomic_load(&waiting_since);
        const RtDist *d = atomic_load(&watched);
        if (d && since && (double)(now_ns() - since) * 1e-9 > timeout_s) {
            fprintf(stderr, "%s: error: process %d: no answer from the other processes for "
                            "%g s in %s (GRADC_MPI_TIMEOUT); stopping the run\n",
                    d->name, d->rank, timeout_s, atomic_load(&waiting_in));
            fflush(stderr);
            _exit(1);
        }
    }
    return NULL;
}

static void watch(const char *what) {
    atomic_store(&waiting_in, what);
    atomic_store(&waiting_since, now_ns());
}

static void unwatch(void) { atomic_store(&waiting_since, 0); }

/* GRADC_MPI_TIMEOUT, and the watchdog unless it is 0. */
static RtStatus start_watchdog(RtError *err) {
    const char *v = getenv("GRADC_MPI_TIMEOUT");
    if (v && *v) {
        char *end;
        double t = strtod(v, &end);
        if (*end || !(t >= 0))
            return rt_fail(err, "GRADC_MPI_TIMEOUT is '%s'; expected seconds (0: no limit)", v);
        timeout_s = t;
    }
    if (timeout_s == 0)
        return RT_OK;
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog, NULL) != 0)
        return rt_fail(err, "cannot start the MPI watchdog thread");
    pthread_detach(t);
    return RT_OK;
}

static RtStatus mpi_fail(RtError *err, const char *what, int code) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
        len = snprintf(text, sizeof text, "MPI error %d", code);
    return rt_fail(err, "%s failed: %.*s", what, len, text);
}

static MPI_Datatype mpi_type(RtDistType t) {
    switch (t) {
    case RT_DIST_F32: return MPI_FLOAT;
    case RT_DIST_F64: return MPI_DOUBLE;
    case RT_DIST_I64: return MPI_INT64_T;
    }
    return MPI_DATATYPE_NULL;
}

static MPI_Op mpi_op(RtDistOp op) {
    switch (op) {
    case RT_DIST_SUM: return MPI_SUM;
    case RT_DIST_MIN: return MPI_MIN;
    case RT_DIST_MAX: return MPI_MAX;
    }
    return MPI_OP_NULL;
}

/* MPI counts are ints: larger buffers go in pieces. */
static RtStatus mpi_allreduce(RtDist *d, void *buf, int64_t count, RtDistType type, RtDistOp op,
                              RtError *err) {
    (void)d;
    size_t size = type == RT_DIST_F32 ? 4 : 8;
    for (int64_t at = 0; at < count; at += INT_MAX) {
        int n = count - at < INT_MAX ? (int)(count - at) : INT_MAX;
        watch("MPI_Allreduce");
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + (size_t)at * size, n, mpi_type(type),
                               mpi_op(op), MPI_COMM_WORLD);
        unwatch();
        if (rc != MPI_SUCCESS)
            return mpi_fail(err, "MPI_Allreduce", rc);
    }
    return RT_OK;
}

static RtStatus mpi_broadcast(RtDist *d, void *buf, size_t bytes, RtError *err) {
    (void)d;
    for (size_t at = 0; at < bytes; at += INT_MAX) {
        int n = bytes - at < INT_MAX ? (int)(bytes - at) : INT_MAX;
        watch("MPI_Bcast");
        int rc = MPI_Bcast((char *)buf + at, n, MPI_BYTE, 0, MPI_COMM_WORLD);
        unwatch();
        if (rc != MPI_SUCCESS)
            return mpi_fail(err, "MPI_Bcast", rc);
    }
    return RT_OK;
}

static void mpi_abort(RtDist *d, int status) {
    (void)d;
    MPI_Abort(MPI_COMM_WORLD, status);
    abort(); /* MPI_Abort does not return; if it did, this process must still end */
}

RtStatus rt_mpi_start(RtDist **out, RtError *err) {
    int started = 0, provided = 0, rc;
    MPI_Initialized(&started);
    if (!started && (rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided)) !=
                        MPI_SUCCESS)
        return rt_fail(err, "MPI_Init_thread failed (error %d): is this an MPI installation "
                            "that mpirun started?",
                       rc);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    RtDist *d = calloc(1, sizeof *d);
    if (!d) {
        MPI_Finalize();
        return rt_fail(err, "out of memory");
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    d->name = "gradc";
    MPI_Comm here;
    d->local_size = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &here) ==
        MPI_SUCCESS) {
        MPI_Comm_size(here, &d->local_size);
        MPI_Comm_free(&here);
    }
    atomic_store(&watched, d);
    if (d->size > 1 && start_watchdog(err) != RT_OK) {
        atomic_store(&watched, NULL);
        free(d);
        MPI_Finalize();
        return RT_FAIL;
    }
    d->allreduce = mpi_allreduce;
    d->broadcast = mpi_broadcast;
    d->abort = mpi_abort;
    *out = d;
    return RT_OK;
}

void rt_mpi_finish(RtDist *d) {
    atomic_store(&watched, NULL);
    free(d);
    int finished = 0;
    MPI_Finalized(&finished);
    if (!finished)
        MPI_Finalize();
}
