/* logit_scores.h: the baseline OOD scores of one image's logits. The CPU twin
 * of the CUDA backend's score kernel. */
#ifndef FN_LOGIT_SCORES_H
#define FN_LOGIT_SCORES_H

#include <stddef.h>

/* For n images whose logit k sits at logits[i*image_stride + k*class_stride]
 * writes (any output may be NULL): pred = argmax, maxlogit, msp = max softmax
 * probability, energy = logsumexp (T = 1), all computed stably in double. */
void logit_scores(const float *logits, int n, int K, size_t image_stride, size_t class_stride,
                  int *pred, float *msp, float *maxlogit, float *energy);

#endif
