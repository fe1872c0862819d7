/* logit_scores.c: MSP, MaxLogit and Energy from logits. */
#include "logit_scores.h"

#include <math.h>

void logit_scores(const float *logits, int n, int K, size_t image_stride, size_t class_stride,
                  int *pred, float *msp, float *maxlogit, float *energy)
{
    for (int i = 0; i < n; i++) {
        const float *l = logits + (size_t)i * image_stride;
        int arg = 0;
        for (int k = 1; k < K; k++)
            if (l[k * class_stride] > l[arg * class_stride])
                arg = k;
        double m = l[arg * class_stride], sum = 0;
        for (int k = 0; k < K; k++)
            sum += exp((double)l[k * class_stride] - m);
        if (pred)
            pred[i] = arg;
        if (maxlogit)
            maxlogit[i] = (float)m;
        if (msp)
            msp[i] = (float)(1.0 / sum);
        if (energy)
            energy[i] = (float)(m + log(sum));
    }
}
