/* mpi_plugin.c: the MPI transport of gradc train --mpi (rt_mpi.h), loaded
 * from its module (runtime/libgradc_mpi.so, build_mpi_plugin) the first
 * time a run asks for it, so that gradc does not load MPI's libraries for
 * anything else. The module is loaded RTLD_GLOBAL: Open MPI loads its own
 * components later, and they need libmpi's symbols.
 */
#include <dlfcn.h>

#include "build.h"
#include "mpi_plugin.h"

static RtStatus (*start)(RtDist **out, RtError *err);
static void (*finish)(RtDist *d);

RtStatus mpi_plugin_start(RtDist **out, RtError *err) {
    if (!start) {
        const char *path = build_mpi_plugin(err);
        if (!path)
            return RT_FAIL;
        void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
        if (!h)
            return rt_fail(err, "cannot load the MPI transport: %s", dlerror());
        *(void **)&start = dlsym(h, "rt_mpi_start");
        *(void **)&finish = dlsym(h, "rt_mpi_finish");
        if (!start || !finish) {
            start = NULL;
            return rt_fail(err, "%s is not gradc's MPI transport (no rt_mpi_start)", path);
        }
    }
    return start(out, err);
}

void mpi_plugin_finish(RtDist *d) { finish(d); }
