/* abi.h: the public structs of featurenorm.h that host/abi.c describes (and
 * tests/test_abi.c checks against sizeof and against the header's text). */
#ifndef FN_ABI_H
#define FN_ABI_H

#define FN_ABI_STRUCTS(X)                                                                          \
    X(fn_model_options) X(fn_model_info) X(fn_outputs) X(fn_dataset_options) X(fn_run_options)     \
    X(fn_scores) X(fn_selection) X(fn_mpi_info) X(fn_metrics) X(fn_eval_result) X(fn_columns)

#endif
