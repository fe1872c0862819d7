/* threshold.h: deployment thresholds (threshold.c), for score.c. */
#ifndef FN_THRESHOLD_H
#define FN_THRESHOLD_H

#include "featurenorm.h"

/* s->ood from the column `score`: 1 where it is below threshold. */
fn_status threshold_flag(fn_scores *s, const char *score, float threshold);

#endif
