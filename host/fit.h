/* fit.h: statistics of the ID training features that the feature detectors
 * need (Mahalanobis, fDBD), gathered in the select pass: sums in double, so
 * shards of an MPI job and a resumed run add up exactly, written to one
 * versioned safetensors file (F64 tensors, never code), and what scoring
 * derives from them once per run. */
#ifndef FN_FIT_H
#define FN_FIT_H

#include "checkpoint.h"
#include "featurenorm.h"

#define FIT_VERSION 1
/* The D x D sums take 8 D^2 bytes: 32 MiB at D = 2048; refused above this. */
#define FIT_MAX_BYTES ((size_t)1 << 30)

typedef struct fit_stats {
    int K, D;
    double count;        /* images */
    double *feature_sum; /* D */
    double *class_count; /* K */
    double *class_sum;   /* K x D */
    double *outer;       /* D x D: sum of f f^T */
} fit_stats;

fn_status fit_create(int K, int D, fit_stats **out);
void fit_free(fit_stats *f);
/* n rows of features; label[i] < 0 takes the prediction (unlabelled data). */
void fit_add(fit_stats *f, const float *features, const int *label, int n);
/* Checkpoint state, one layout both ways. */
void fit_state(fit_stats *f, bytes *b, int load);
/* Every rank's sums added in rank order. */
fn_status fit_reduce(fit_stats *f, int ranks);
fn_status fit_write(const fit_stats *f, const char *path);
/* Reads and validates a fit file for a model of K classes and D features. */
fn_status fit_read(const char *path, int K, int D, fit_stats **out);

/* What the detectors read. */
typedef struct fit_model {
    int K, D;
    double *mean;      /* D: the training features' mean (fDBD) */
    double *pm;        /* K x D: P mu_k, P the inverse shared class covariance */
    double *mpm;       /* K: mu_k^T P mu_k */
    double *precision; /* D x D: P */
    double *wdist;     /* K x K: ||w_i - w_j|| of the last layer's rows (fDBD) */
} fit_model;

/* weight: the last layer, K x D. Fails when the covariance is singular. */
fn_status fit_model_make(const fit_stats *f, const float *weight, const char *path, fit_model **out);
void fit_model_free(fit_model *m);

#endif
