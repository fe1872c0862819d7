/* dist.h: a dataset pass split across the ranks of an MPI job.
 *
 * Every rank reads a contiguous run of whole batches (the same batches a
 * one-process run forms, so per-image results are the same bits), runs its
 * own pipeline on its own device, and the results meet on rank 0: score rows
 * are gathered in rank order, which is dataset order; select's sums are added
 * in rank order, in double, then shared with every rank. host/dist_mpi.c
 * implements the transport with Open MPI; host/dist_stub.c stands in for it
 * in a build without MPI (one process: ranks == 1 always works). */
#ifndef FN_DIST_H
#define FN_DIST_H

#include <stddef.h>

#include "featurenorm.h"

/* The items [*first, *first + *count) of rank r among ranks, in whole batches. */
void dist_shard(size_t n, int batch, int rank, int ranks, size_t *first, size_t *count);

/* Every rank calls these with the same arguments but its own data. */
/* The job's status: mine when every rank succeeded, else the first failing
 * rank's status and message, on every rank. */
fn_status dist_agree(fn_status mine, int ranks);
/* Rows (row_bytes each) of every rank into rank 0's buf after its own, in rank
 * order; *total = all rows, on every rank. buf holds cap rows on rank 0. */
fn_status dist_gather_rows(void *buf, size_t row_bytes, size_t mine, size_t cap, size_t *total,
                           int ranks);
/* v[0..n): the sum over ranks, added in rank order, on every rank. */
fn_status dist_sum(double *v, int n, int ranks);
/* Rank 0's bytes to every rank. */
fn_status dist_share(void *buf, size_t bytes, int ranks);

#endif
