/* scores.cu: the baseline OOD scores of each image's logits, on the device.
 *
 *   pred = argmax_k l_k (the first on ties)   maxlogit = max_k l_k
 *   msp = 1 / sum_k exp(l_k - max)            energy = max + log sum_k exp(l_k - max)
 *
 * One warp per image: lanes stride over the classes, then butterfly
 * reductions (fixed order, so repeatable). The exponentials are summed in
 * double, as the CPU twin logit_scores() in host/logit_scores.c does, so a
 * thousand classes lose nothing to the order of the sum. */
#include <math.h>

#include "kernels.h"

#define THREADS 128
#define WARPS (THREADS / 32)

static __global__ void __launch_bounds__(THREADS)
logit_scores(const float *__restrict__ logits, int n, int K, int *__restrict__ pred,
             float *__restrict__ msp, float *__restrict__ maxlogit, float *__restrict__ energy)
{
    const int img = blockIdx.x * WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (img >= n) /* whole warps leave; no block barrier follows */
        return;
    const float *l = logits + (size_t)img * K;
    float best = -INFINITY;
    int arg = K; /* K: none seen yet (a lane with no class, or only NaNs) */
    for (int k = lane; k < K; k += 32) /* ascending k: this lane's first maximum */
        if (arg == K || l[k] > best)
            best = l[k], arg = k;
    for (int off = 16; off > 0; off >>= 1) {
        float ob = __shfl_xor_sync(0xffffffffu, best, off);
        int oa = __shfl_xor_sync(0xffffffffu, arg, off);
        if (oa != K && (arg == K || ob > best || (ob == best && oa < arg)))
            best = ob, arg = oa;
    }
    double sum = 0;
    for (int k = lane; k < K; k += 32)
        sum += exp((double)l[k] - (double)best);
    for (int off = 16; off > 0; off >>= 1)
        sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (lane == 0) {
        if (pred)
            pred[img] = arg;
        if (maxlogit)
            maxlogit[img] = best;
        if (msp)
            msp[img] = (float)(1.0 / sum);
        if (energy)
            energy[img] = (float)((double)best + log(sum));
    }
}

extern "C" cudaError_t fn_launch_logit_scores(const float *logits, int n, int k, int *pred,
                                              float *msp, float *maxlogit, float *energy,
                                              cudaStream_t stream)
{
    if (n <= 0 || k <= 0)
        return cudaErrorInvalidValue;
    if (!pred && !msp && !maxlogit && !energy)
        return cudaSuccess;
    unsigned grid = (unsigned)((n + WARPS - 1) / WARPS);
    logit_scores<<<grid, THREADS, 0, stream>>>(logits, n, k, pred, msp, maxlogit, energy);
    return cudaGetLastError();
}
