/* dist_mpi.c: the MPI transport of a sharded run, and joining the job.
 * Everything runs on MPI_COMM_WORLD; counts travel as bytes in chunks of at
 * most 1 GiB so no MPI int overflows. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "error.h"

#define CHUNK ((size_t)1 << 30)

static int joined; /* we called MPI_Init (and so finalize) */

int fn_mpi_built(void) { return 1; }

/* Launched by mpirun or srun: join the job; else run as one process. */
fn_status fn_mpi_init(int *argc, char ***argv, fn_mpi_info *out)
{
    memset(out, 0, sizeof *out);
    out->ranks = out->local_ranks = 1;
    static const char *const launchers[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                                            "SLURM_STEP_NUM_TASKS"};
    int launched = 0, inited = 0;
    for (size_t i = 0; i < sizeof launchers / sizeof launchers[0]; i++)
        launched |= getenv(launchers[i]) != NULL;
    MPI_Initialized(&inited);
    if (!launched && !inited)
        return FN_OK;
    if (!inited) {
        if (MPI_Init(argc, argv) != MPI_SUCCESS)
            return fn_fail(FN_ERR_UNAVAILABLE, "MPI_Init failed");
        joined = 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &out->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &out->ranks);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, out->rank, MPI_INFO_NULL, &local) ==
        MPI_SUCCESS) {
        MPI_Comm_rank(local, &out->local_rank);
        MPI_Comm_size(local, &out->local_ranks);
        MPI_Comm_free(&local);
    }
    return FN_OK;
}

void fn_mpi_finalize(void)
{
    if (joined)
        MPI_Finalize();
    joined = 0;
}

void fn_mpi_abort(int code)
{
    int inited = 0;
    MPI_Initialized(&inited);
    if (inited)
        MPI_Abort(MPI_COMM_WORLD, code);
}

fn_status dist_agree(fn_status mine, int ranks)
{
    if (ranks <= 1)
        return mine;
    int rank, failed_in[2], failed[2];
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    failed_in[0] = mine != FN_OK ? rank : ranks; /* the lowest failing rank wins */
    failed_in[1] = rank;
    if (MPI_Allreduce(failed_in, failed, 1, MPI_2INT, MPI_MINLOC, MPI_COMM_WORLD) != MPI_SUCCESS)
        return fn_fail(FN_ERR_IO, "MPI_Allreduce failed");
    if (failed[0] == ranks)
        return FN_OK;
    struct {
        int status;
        char text[1024];
    } msg = {(int)mine, ""};
    if (rank == failed[0])
        snprintf(msg.text, sizeof msg.text, "%s", fn_last_error());
    MPI_Bcast(&msg, sizeof msg, MPI_BYTE, failed[0], MPI_COMM_WORLD);
    if (rank == failed[0])
        return mine;
    return fn_fail((fn_status)msg.status, "rank %d: %s", failed[0], msg.text);
}

fn_status dist_gather_rows(void *buf, size_t row_bytes, size_t mine, size_t cap, size_t *total,
                           int ranks)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    unsigned long long m = mine, *all = calloc((size_t)ranks, sizeof *all);
    if (!all)
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory");
    MPI_Allgather(&m, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD);
    size_t at = 0;
    for (int r = 0; r < ranks; r++)
        at += (size_t)all[r];
    *total = at;
    fn_status s = rank == 0 && at > cap ? fn_fail(FN_ERR_SHAPE, "%zu rows gathered, room for %zu", at, cap)
                                        : FN_OK;
    s = dist_agree(s, ranks);
    /* point to point in rank order: rank r's rows land after ranks 0..r-1 */
    at = (size_t)all[0];
    for (int r = 1; s == FN_OK && r < ranks; r++) {
        size_t bytes = (size_t)all[r] * row_bytes;
        for (size_t off = 0; off < bytes; off += CHUNK) {
            int len = (int)(bytes - off < CHUNK ? bytes - off : CHUNK);
            if (rank == 0)
                MPI_Recv((char *)buf + at * row_bytes + off, len, MPI_BYTE, r, 7, MPI_COMM_WORLD,
                         MPI_STATUS_IGNORE);
            else if (rank == r)
                MPI_Send((char *)buf + off, len, MPI_BYTE, 0, 7, MPI_COMM_WORLD);
        }
        at += (size_t)all[r];
    }
    free(all);
    return s;
}

fn_status dist_sum(double *v, int n, int ranks)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    double *all = rank == 0 ? malloc(sizeof(double) * (size_t)n * (size_t)ranks) : NULL;
    fn_status s = dist_agree(rank == 0 && !all ? fn_fail(FN_ERR_NO_MEMORY, "out of host memory") : FN_OK,
                             ranks);
    if (s != FN_OK) {
        free(all);
        return s;
    }
    MPI_Gather(v, n, MPI_DOUBLE, all, n, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (rank == 0)
        for (int i = 0; i < n; i++) { /* a fixed order: the same sum on any network */
            double sum = 0;
            for (int r = 0; r < ranks; r++)
                sum += all[(size_t)r * n + i];
            v[i] = sum;
        }
    free(all);
    MPI_Bcast(v, n, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    return FN_OK;
}

fn_status dist_share(void *buf, size_t bytes, int ranks)
{
    for (size_t off = 0; ranks > 1 && off < bytes; off += CHUNK)
        MPI_Bcast((char *)buf + off, (int)(bytes - off < CHUNK ? bytes - off : CHUNK), MPI_BYTE, 0,
                  MPI_COMM_WORLD);
    return FN_OK;
}
