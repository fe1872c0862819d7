/* dist_stub.c: a build without MPI runs one process: rank 0 of 1. */
#include <string.h>

#include "dist.h"
#include "error.h"

int fn_mpi_built(void) { return 0; }

fn_status fn_mpi_init(int *argc, char ***argv, fn_mpi_info *out)
{
    memset(out, 0, sizeof *out);
    out->ranks = out->local_ranks = 1;
    return FN_OK;
}

void fn_mpi_finalize(void) {}
void fn_mpi_abort(int code) {}

static fn_status unavailable(void)
{
    return fn_fail(FN_ERR_UNAVAILABLE, "this build has no MPI (configure with -DFEATURENORM_MPI=ON "
                                       "where libopenmpi-dev is installed)");
}

fn_status dist_agree(fn_status mine, int ranks) { return ranks <= 1 ? mine : unavailable(); }

fn_status dist_gather_rows(void *buf, size_t row_bytes, size_t mine, size_t cap, size_t *total,
                           int ranks)
{
    *total = mine;
    return ranks <= 1 ? FN_OK : unavailable();
}

fn_status dist_sum(double *v, int n, int ranks) { return ranks <= 1 ? FN_OK : unavailable(); }
fn_status dist_share(void *buf, size_t bytes, int ranks) { return ranks <= 1 ? FN_OK : unavailable(); }
