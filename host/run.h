/* run.h: settings shared by the dataset passes (score, select). */
#ifndef FN_RUN_H
#define FN_RUN_H

#include "featurenorm.h"

typedef struct run_settings {
    int batch;        /* dataset images per forward */
    fn_preset preset; /* resolved from AUTO */
    int threads;      /* decode threads */
} run_settings;

/* Checks the options; per_image = forward rows per dataset image (select: 2). */
fn_status run_setup(fn_model *m, const fn_dataset *d, const fn_run_options *o, int per_image,
                    run_settings *rs);

#endif
