/* dist.c: what a sharded run computes the same way with or without MPI. */
#include "dist.h"

void dist_shard(size_t n, int batch, int rank, int ranks, size_t *first, size_t *count)
{
    if (ranks <= 1) {
        *first = 0, *count = n;
        return;
    }
    const size_t b = (size_t)batch, batches = (n + b - 1) / b;
    size_t lo = batches * (size_t)rank / (size_t)ranks, hi = batches * (size_t)(rank + 1) / (size_t)ranks;
    lo *= b, hi *= b;
    *first = lo < n ? lo : n;
    *count = (hi < n ? hi : n) - *first;
}
