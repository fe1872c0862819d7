/* featurenorm.h: out-of-distribution detection with block-selected FeatureNorm.
 *
 * The whole public API in one read. A trained CNN is loaded from safetensors,
 * (or any CNN from an ONNX file), run on the CPU (oneDNN) or CUDA (cuDNN/cuBLAS) backend, and every forward
 * pass returns the FeatureNorm of every block plus the logits:
 *
 *   FeatureNorm(x; block) = mean over channels c of || max(z_c, 0) ||_2
 *
 * where z is the block's output feature map. NormRatio over Jigsaw-shuffled ID
 * images picks the block (fn_select_block), and its FeatureNorm is the OOD score
 * (higher = in-distribution). Method: Yu et al., CVPR 2023, arXiv 2212.02295.
 *
 * Conventions: every call that can fail returns fn_status; on failure
 * fn_last_error() holds a message for this thread naming the file and the
 * problem. The library never exits or aborts. Objects are opaque handles, freed
 * by their _free call (NULL is accepted). Matrices are row-major, float32.
 */
#ifndef FEATURENORM_H
#define FEATURENORM_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define FN_API __attribute__((visibility("default")))
#else
#define FN_API
#endif

#define FN_VERSION "0.1.0"
/* Raised whenever a public struct, enum or function signature changes; hosts
 * in other languages check it (and fn_struct_size) before any call. */
#define FN_ABI_VERSION 1

/* ---- status and errors ------------------------------------------------- */

typedef enum fn_status {
    FN_OK = 0,
    FN_ERR_INVALID_ARG,   /* a bad argument, option or flag value */
    FN_ERR_IO,            /* a file could not be opened, read or written */
    FN_ERR_FORMAT,        /* a malformed file: weights, image, CSV, JSON */
    FN_ERR_SHAPE,         /* a tensor, image or batch of the wrong shape */
    FN_ERR_NOT_FOUND,     /* unknown architecture, block, tensor or column */
    FN_ERR_NO_MEMORY,     /* a host allocation failed */
    FN_ERR_DEVICE_MEMORY, /* the GPU has too little memory for this batch */
    FN_ERR_DEVICE,        /* a CUDA, cuDNN or cuBLAS call failed */
    FN_ERR_UNAVAILABLE,   /* backend not built in, or no usable device */
    FN_ERR_EMPTY,         /* no images, or a metric with an empty class */
    FN_ERR_CANCELLED      /* stopped by fn_run_options.cancel; the checkpoint is kept */
} fn_status;

FN_API const char *fn_last_error(void);          /* this thread's last message */
FN_API const char *fn_status_name(fn_status s);  /* "FN_ERR_FORMAT", ... */
FN_API const char *fn_version(void);

/* ---- architectures ------------------------------------------------------ */

FN_API int fn_arch_count(void);
FN_API const char *fn_arch_name(int i);          /* "resnet20_cifar", "resnet50", ... */
FN_API const char *fn_arch_description(int i);

/* ---- models ------------------------------------------------------------- */

typedef struct fn_model fn_model;

typedef enum fn_backend { FN_BACKEND_AUTO, FN_BACKEND_CPU, FN_BACKEND_CUDA } fn_backend;

typedef enum fn_precision {
    FN_PRECISION_FP32, /* exact float32 (CPU; CUDA without tensor cores) */
    FN_PRECISION_TF32, /* CUDA: float32 storage, TF32 tensor-core math */
    FN_PRECISION_FP16, /* CUDA: half storage, NHWC, float32 accumulation */
    FN_PRECISION_BF16  /* CUDA, and CPUs with AVX512-BF16/AMX: bfloat16 storage, float32 accumulation */
} fn_precision;

FN_API const char *fn_precision_name(fn_precision p); /* "fp32", "tf32", ... */

typedef enum fn_preset {
    FN_PRESET_AUTO,     /* the architecture's: CIFAR for 32x32 inputs, else ImageNet */
    FN_PRESET_CIFAR,    /* squash to S x S, antialiased bilinear (PIL) */
    FN_PRESET_IMAGENET  /* shorter side to S*256/224, center crop S (torchvision eval) */
} fn_preset;

typedef struct fn_model_options {
    const char *arch;       /* see fn_arch_name(); required */
    const char *weights;    /* .safetensors path; NULL builds shapes only (info) */
    const char *model;      /* instead of arch + weights: an .onnx file (any CNN, see README) */
    const char *blocks;     /* ONNX: NULL or "auto", "all", or tensor names "a,b,..." */
    fn_backend backend;     /* AUTO: CUDA when a device is usable, else CPU */
    fn_precision precision; /* FP32 by default */
    int max_batch;          /* largest n passed to forward (default 64; on the CPU its
                               activations may take at most half of the machine's memory) */
    int threads;            /* CPU threads for compute and decode (0: all cores; at most
                               4 per core and 256) */
    int input_size;         /* square input side (0: the architecture's, 32 or 224) */
    float mean[3], std[3];  /* normalisation of [0,1] RGB (std[0] == 0: arch default) */
    int stem_padding;       /* resnet18_cifar stem padding (0: 1; the authors used 2) */
    int verbose;            /* say on stderr which backend was chosen and why */
    int device;             /* CUDA device index (default 0; MPI ranks: the node-local rank's) */
    int allow_unused_weights; /* 1: load weights holding tensors the architecture does not
                                 use (default: refused, naming them: a wrong --arch) */
} fn_model_options;

FN_API void fn_model_options_init(fn_model_options *o);
FN_API fn_status fn_model_load(const fn_model_options *o, fn_model **out);
FN_API void fn_model_free(fn_model *m);

typedef struct fn_model_info {
    const char *arch;
    const char *backend;    /* "cpu" or "cuda" */
    const char *device;     /* e.g. "NVIDIA H100 80GB HBM3" or "CPU, 8 threads" */
    fn_precision precision;
    int has_weights;
    int input_size;         /* images are input_size x input_size RGB */
    int num_blocks;         /* columns of the FeatureNorm matrix */
    int num_classes;        /* columns of the logits */
    int feature_dim;        /* penultimate features: input of the last linear layer */
    int max_batch;
    fn_preset preset;       /* the architecture's preprocessing */
    float mean[3], std[3];
} fn_model_info;

FN_API void fn_model_get_info(const fn_model *m, fn_model_info *out);
FN_API const char *fn_model_block_name(const fn_model *m, int block); /* "layer3.0" */
FN_API void fn_model_block_shape(const fn_model *m, int block, int *c, int *h, int *w);
FN_API int fn_model_find_block(const fn_model *m, const char *name);  /* -1: none */

/* ---- scores: one table ------------------------------------------------- */

/* Every OOD score, higher = more in-distribution, in a fixed order:
 *   fn_selected   FeatureNorm of the selected block (needs a block)
 *   msp           max softmax probability
 *   maxlogit      max logit
 *   energy        logsumexp of the logits (-Energy at T = 1)
 *   react_energy  energy of the logits of features clipped at react_clip (ReAct)
 *   entropy       -H(softmax), sum p log p
 *   gen           GEN (Liu et al. 2023): -sum of p^g (1-p)^g over the M largest p
 *   gradnorm      GradNorm (Huang et al. 2021), closed form: sum|p - 1/K| * ||f||_1
 *   mahalanobis   Mahalanobis to the nearest class mean, shared covariance (needs a fit)
 *   fdbd          fDBD (Liu & Qin 2024): distance to the decision boundaries (needs a fit)
 *   <logit score>_fn  "with the selected norm": the same score of the logits
 *                 W f' + b of f' = FN(selected block) * f / ||f|| (needs a block)
 * The CSV columns, eval's rows and scripts/reproduce all follow this table. */
FN_API int fn_score_count(void);
FN_API const char *fn_score_name(int i);  /* CSV column: "msp" */
FN_API const char *fn_score_title(int i); /* table row: "MSP" */
/* "logits", or what else it needs joined by '+': "block", "react", "features"
 * (the penultimate features and a last layer W f + b), "fit" (the training
 * statistics of fn_run_options.fit_path), e.g. "block+features". */
FN_API const char *fn_score_needs(int i);
FN_API int fn_score_find(const char *name); /* -1: none */

/* What one forward pass writes: any pointer may be NULL (not wanted). A model
 * runs one forward (or dataset pass) at a time. */
typedef struct fn_outputs {
    float *norms;        /* n x num_blocks: FeatureNorm of every block */
    float *logits;       /* n x num_classes */
    float *features;     /* n x feature_dim: input of the last linear layer */
    float *react_logits; /* n x num_classes: needs react_clip > 0 */
    int *pred;           /* n: argmax of the logits */
    float *scores;       /* n x fn_score_count(); NaN where a score's needs are unmet */
    int block;           /* the block of fn_selected (-1: none) */
    float react_clip;    /* > 0: ReAct (Sun et al. 2021) clips the features here */
    float gen_gamma;     /* GEN's gamma (0: the paper's 0.1) */
    int gen_m;           /* GEN's M largest probabilities (0: 10; at most the classes) */
} fn_outputs;

FN_API void fn_outputs_init(fn_outputs *o); /* all NULL, block -1, no ReAct, default detectors */

/* images: n x 3 x S x S, already normalised (S = input_size). */
FN_API fn_status fn_model_forward(fn_model *m, int n, const float *images, fn_outputs *out);
/* images: n x S x S x 3 RGB bytes; normalised inside (on the device for CUDA). */
FN_API fn_status fn_model_forward_u8(fn_model *m, int n, const uint8_t *images, fn_outputs *out);
/* Wall seconds of `batches` forward passes of the same n images (as for
 * fn_model_forward_u8) run as fn_score_dataset runs them: the backend's slots
 * in flight (on a GPU one batch's copies overlap another's compute), every
 * score on the host, no decoding. `featurenorm bench` prints n * batches / seconds. */
FN_API fn_status fn_model_time(fn_model *m, int n, const uint8_t *images, int batches, double *seconds);

/* ---- datasets ----------------------------------------------------------- */

typedef struct fn_dataset fn_dataset;

typedef struct fn_dataset_options {
    size_t limit;  /* keep at most this many items after `every` (0: all) */
    size_t every;  /* keep every K-th item (0 or 1: all) */
    int labels;    /* folders: 1 = first-level sub-folders are classes (ImageFolder) */
} fn_dataset_options;

/* path: a folder of images (recursive, sorted by path), a list file (.txt or
 * .lst: one path per line, relative to the list, optional integer label after
 * whitespace), or CIFAR-10/100 binary data (a .bin file, or a folder holding
 * data_batch_*.bin / test_batch.bin / train.bin / test.bin). */
FN_API void fn_dataset_options_init(fn_dataset_options *o);
FN_API fn_status fn_dataset_open(const char *path, const fn_dataset_options *o, fn_dataset **out);
FN_API void fn_dataset_free(fn_dataset *d);
FN_API size_t fn_dataset_size(const fn_dataset *d);
FN_API const char *fn_dataset_item_name(const fn_dataset *d, size_t i); /* path, or file#record */
FN_API int fn_dataset_label(const fn_dataset *d, size_t i);             /* -1: unknown */
/* A dataset of n images already in memory: n x height x width x 3 RGB bytes,
 * preprocessed by the run's preset as decoded files are; labels: n values or
 * NULL. Not copied: images and labels must outlive the dataset. Items are
 * named "array#i". */
FN_API fn_status fn_dataset_from_images(const uint8_t *images, size_t n, int height, int width,
                                        const int *labels, fn_dataset **out);

/* ---- scoring and block selection --------------------------------------- */


typedef struct fn_run_options {
    fn_preset preset;
    int batch;             /* images per forward (0: the model's max_batch) */
    int decode_threads;    /* 0: the model's thread count */
    int strict;            /* 1: stop at the first unreadable image; 0: skip it */
    int verbose;           /* 1: progress and skipped images on stderr */
    int profile;           /* 1: at the end, seconds per stage on stderr (decode, forward...) */
    /* score */
    int block;             /* block for the fn_selected column (-1: none) */
    float react_clip;      /* > 0: also compute react_energy */
    /* select */
    uint64_t seed;         /* Jigsaw permutations (default 0; repeatable) */
    float react_percentile;/* percentile of penultimate features for the clip (90) */
    /* Long runs. With a checkpoint path the pass saves its progress and partial
     * results there (atomically) every checkpoint_every images or minute. The
     * file records the model file's hash, the data listing and these options;
     * resume = 1 continues from it, and the result is identical to an
     * uninterrupted run; a checkpoint of another run is refused, and without
     * resume an existing one is an error. Remove it once the outputs are
     * written. When *cancel becomes non-zero (a signal handler may set it) the
     * pass stops after the batch in hand, saves, and returns FN_ERR_CANCELLED. */
    const char *checkpoint;
    int resume;
    int checkpoint_every;  /* images (0: 5000) */
    const volatile sig_atomic_t *cancel;
    /* Scale-out: with ranks > 1 (an MPI build, every rank of the job calling
     * with the same dataset and options) each rank reads its share of whole
     * batches on its own device. Score: rank 0's result holds every row in
     * dataset order, equal to a one-process run; other ranks hold their share.
     * Select: every rank gets the same selection (sums added in rank order). */
    int rank, ranks;
    float gen_gamma;       /* GEN's gamma (0: the paper's 0.1) */
    int gen_m;             /* GEN's M largest probabilities (0: 10; at most the classes) */
    /* Deployment: with ood_score (a score name) fn_scores.ood flags each image
     * whose score is below ood_threshold (from fn_selection_calibrate). */
    const char *ood_score;
    float ood_threshold;
    /* The feature detectors (Mahalanobis, fDBD) need statistics of the ID
     * training features: select gathers them with fit = 1 (fn_selection.fit,
     * written by fn_fit_write); score computes those detectors from fit_path. */
    int fit;
    const char *fit_path;
} fn_run_options;

FN_API void fn_run_options_init(fn_run_options *o);

/* One row per readable image, in dataset order. */
typedef struct fn_scores {
    size_t n;
    int num_blocks, num_classes;
    size_t *index;        /* dataset item of each row */
    int *label;           /* -1 where unknown */
    int *pred;            /* argmax of the logits */
    float *norms;         /* n x num_blocks */
    int num_scores;       /* the table's scores whose needs were met, in table order */
    int *score_id;        /* num_scores table indices (fn_score_name) */
    float *scores;        /* num_scores x n: score j of row i at scores[j * n + i] */
    int selected_block;   /* -1: none */
    size_t skipped;       /* unreadable images (not in the rows) */
    int *ood;             /* n: 1 = flagged OOD (score below the threshold), 0 = ID;
                             NULL without fn_run_options.ood_score */
} fn_scores;

/* Score column `name` (n values), or NULL when the run did not compute it. */
FN_API const float *fn_scores_column(const fn_scores *s, const char *name);
FN_API fn_status fn_score_dataset(fn_model *m, fn_dataset *d, const fn_run_options *o,
                                  fn_scores **out);
FN_API void fn_scores_free(fn_scores *s);
/* Outputs are written whole or not at all (a temp file beside the target,
 * fsynced, renamed over it; the target's mode kept); a target that exists and
 * is not a regular file is refused. fn_scores_write commits the CSV and the
 * .npy together: either may be NULL, not both.
 * CSV: path,[label],pred,fn.<block> for every block, then the score columns.
 * .npy: float32, n x num_blocks. */
FN_API fn_status fn_scores_write(const fn_scores *s, const fn_model *m, const fn_dataset *d,
                                 const char *csv_path, const char *npy_path);
FN_API fn_status fn_scores_write_csv(const fn_scores *s, const fn_model *m,
                                     const fn_dataset *d, const char *path);
/* Fails at once when path could not be written later (missing or read-only
 * folder, not a regular file): check outputs before a long run. */
FN_API fn_status fn_output_check(const char *path);

typedef struct fn_selection {
    int num_blocks;
    char **block_names;
    int selected;            /* argmax of norm_ratio */
    double *norm_ratio;      /* mean over images of FN(x) / FN(jigsaw(x)) */
    double *mean_norm_id;
    double *mean_norm_jigsaw;
    size_t images;
    size_t skipped;
    uint64_t seed;
    float react_percentile;
    float react_clip;        /* that percentile of the ID penultimate features */
    char *arch;
    char *data;              /* the ID training data, as written in the file (or NULL) */
    /* The deployment threshold (fn_selection_calibrate; ood_score NULL: none):
     * images whose ood_score is below ood_threshold are flagged OOD, which keeps
     * ood_tpr of the ood_images ID validation images. */
    char *ood_score;
    double ood_tpr;
    float ood_threshold;
    size_t ood_images;
    void *fit;               /* with fn_run_options.fit: the detectors' statistics, or NULL */
} fn_selection;

FN_API fn_status fn_select_block(fn_model *m, fn_dataset *d, const fn_run_options *o,
                                 fn_selection **out);
FN_API void fn_selection_free(fn_selection *s);
FN_API fn_status fn_selection_write_json(const fn_selection *s, const fn_model *m,
                                         const char *data_path, const char *path);
/* Reads a selection and checks its blocks against the model's. */
FN_API fn_status fn_selection_read_json(const char *path, const fn_model *m,
                                        fn_selection **out);

/* The detectors' statistics of a selection run (s->fit) as one versioned file
 * (safetensors of F64 sums; the D x D covariance sum is capped at 1 GiB). */
FN_API fn_status fn_fit_write(const fn_selection *s, const char *path);

/* The deployment threshold: the largest t keeping at least a fraction tpr of
 * the n ID scores (score >= t), as the TPR of fn_metrics.fpr95 counts them. */
FN_API fn_status fn_threshold_at_tpr(const float *id, size_t n, double tpr, float *threshold);
/* Stores in s the threshold of score column `score` of ID validation scores at
 * tpr (0.95 is the usual); written and read with the selection. */
FN_API fn_status fn_selection_calibrate(fn_selection *s, const fn_scores *validation,
                                        const char *score, double tpr);

/* Jigsaw pseudo-OOD: n images (n x S x S x C bytes) cut into a 3x3 grid of
 * floor(S/3) tiles, placed in a random permutation, zero outside the grid.
 * Image i's permutation depends only on (seed, first_index + i). */
FN_API void fn_jigsaw(const uint8_t *src, uint8_t *dst, int n, int size, int channels,
                      uint64_t seed, uint64_t first_index);

/* ---- scale-out with MPI ------------------------------------------------- */

typedef struct fn_mpi_info {
    int rank, ranks;             /* in the job (0 of 1 without MPI) */
    int local_rank, local_ranks; /* on this node: picks the GPU and splits the cores */
} fn_mpi_info;

FN_API int fn_mpi_built(void);
/* Joins the MPI job when started by mpirun/srun; otherwise rank 0 of 1. */
FN_API fn_status fn_mpi_init(int *argc, char ***argv, fn_mpi_info *out);
FN_API void fn_mpi_finalize(void);
/* Ends every rank of the job (MPI_Abort): for the host program to call when
 * one rank failed outside a collective call; the library never calls it. */
FN_API void fn_mpi_abort(int code);
/* CUDA devices usable here (0 without CUDA). */
FN_API int fn_cuda_device_count(void);

/* ---- the ABI, for hosts in other languages --------------------------------- */

/* The library's FN_ABI_VERSION, and a description of every public struct:
 * fn_struct_name(i) for i = 0, 1, ... (NULL past the end); its sizeof (0: no
 * such struct); field i of it (0 past the end): name, type ("int", "enum",
 * "float", "double", "size_t", "uint64_t", "char*", "float*", "float[3]",
 * "fn_metrics*", ...), offsetof and sizeof. python/featurenorm builds its
 * ctypes structures from these, so no layout is written twice. */
FN_API int fn_abi_version(void);
FN_API const char *fn_struct_name(int i);
FN_API size_t fn_struct_size(const char *name);
FN_API int fn_struct_field(const char *strukt, int i, const char **name, const char **type,
                           size_t *offset, size_t *size);

/* ---- metrics (ID is the positive class) -------------------------------- */

typedef struct fn_metrics {
    double auroc;     /* ties counted half, as sklearn roc_auc_score */
    double fpr95;     /* OOD accepted at the first ROC point with TPR >= 0.95 */
    double aupr_in;   /* average precision, ID positive */
    double aupr_out;  /* average precision, OOD positive (scores negated) */
    double threshold; /* the score threshold of that FPR95 point */
    size_t n_id, n_ood;
} fn_metrics;

/* Higher score = more in-distribution. NaN scores and empty sets are errors. */
FN_API fn_status fn_metrics_compute(const float *id, size_t n_id, const float *ood,
                                    size_t n_ood, fn_metrics *out);

/* Whose metrics: the paper's (ID positive: FPR95 = OOD accepted at 95 % of ID
 * kept) or OpenOOD's (OOD positive: FPR@95 = ID rejected at 95 % of OOD caught;
 * threshold is then that point's score). AUROC is the same in both; aupr_in
 * and aupr_out keep their meaning (average precision, ID / OOD positive). */
typedef enum fn_eval_convention { FN_EVAL_PAPER, FN_EVAL_OPENOOD } fn_eval_convention;

FN_API const char *fn_eval_convention_name(fn_eval_convention c); /* "paper", "openood" */
FN_API fn_status fn_metrics_compute_as(fn_eval_convention c, const float *id, size_t n_id,
                                       const float *ood, size_t n_ood, fn_metrics *out);

/* ---- evaluation: score files -> the paper's table ------------------------ */

typedef struct fn_eval_result {
    int num_scores, num_sets;
    char **scores;        /* CSV columns evaluated */
    char **titles;        /* their row labels: "MSP", "FeatureNorm (layer3.2)" */
    char **sets;          /* OOD set names */
    fn_metrics *metrics;  /* num_scores x (num_sets + 1); the last of a row: the average */
    char *id_path;
    size_t n_id;
    double id_accuracy;   /* from label and pred; NaN without labels */
    fn_eval_convention convention; /* named in every output */
} fn_eval_result;

/* Each file is read once. scores: column names or patterns ("fn.*"); none:
 * the table's logit scores present, the last block and fn_selected. */
FN_API fn_status fn_eval_files(const char *id_csv, int n_sets, const char *const *set_names,
                               const char *const *set_csvs, const char *const *scores,
                               int n_scores, fn_eval_result **out);
/* The same in either convention (fn_eval_files: the paper's). */
FN_API fn_status fn_eval_files_as(fn_eval_convention c, const char *id_csv, int n_sets,
                                  const char *const *set_names, const char *const *set_csvs,
                                  const char *const *scores, int n_scores, fn_eval_result **out);
/* Any path may be NULL; "-" is standard output. Files are committed together. */
FN_API fn_status fn_eval_write(const fn_eval_result *e, const char *markdown, const char *json,
                               const char *csv);
FN_API void fn_eval_free(fn_eval_result *e);

/* Numeric columns of a CSV (fn_scores_write's, or any), read in one pass.
 * patterns: column names or shell patterns ("fn.*"); each must match a column
 * unless it starts with '?' ("?label": optional). Columns come in pattern
 * order, then header order, each once. Errors name the file, line and column. */
typedef struct fn_columns {
    size_t rows;
    int count;
    char **names;
    float **values;   /* values[j]: the rows values of column names[j] */
} fn_columns;

FN_API fn_status fn_csv_read_columns(const char *path, const char *const *patterns,
                                     int n_patterns, fn_columns **out);
FN_API void fn_columns_free(fn_columns *c);
/* One column by name. */
FN_API fn_status fn_csv_read_column(const char *path, const char *column, float **values,
                                    size_t *n);

#ifdef __cplusplus
}
#endif
#endif
