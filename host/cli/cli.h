/* cli.h: flag parsing and the model/dataset flags shared by the commands. */
#ifndef FN_CLI_H
#define FN_CLI_H

#include <stddef.h>

#include "featurenorm.h"

#define CLI_MAX_REPEAT 32

typedef struct cli_flag {
    const char *name;   /* without the dashes: "arch" */
    const char *arg;    /* NULL: a switch; else the value's placeholder, "A" */
    const char *help;
    int repeat;         /* may be given several times */
} cli_flag;

typedef struct cli_args {
    const cli_flag *flags;
    int n_flags;
    const char *values[64][CLI_MAX_REPEAT];
    int count[64];
} cli_args;

/* Parses argv[1..]; 0 on success, 1 on --help (usage printed), -1 on error. */
int cli_parse(cli_args *a, const cli_flag *flags, int n_flags, int argc, char **argv,
              const char *usage);
const char *cli_get(const cli_args *a, const char *name);   /* last value or NULL */
int cli_has(const cli_args *a, const char *name);
int cli_count(const cli_args *a, const char *name);
const char *cli_get_at(const cli_args *a, const char *name, int i);
/* Numeric flags: 0 on success, -1 after printing an error naming the flag. */
int cli_int(const cli_args *a, const char *name, long lo, long hi, long *out);
int cli_float(const cli_args *a, const char *name, double *out);
void cli_print_flags(const cli_flag *flags, int n_flags);

/* --arch --weights --model --blocks --backend --precision --batch --threads --input-size --mean --std
 * --stem-padding, filling model options; --preset --decode-threads --strict --quiet
 * --limit --every --labels --profile for the dataset passes. */
#define CLI_MODEL_FLAGS                                                                   \
    {"arch", "A", "architecture (featurenorm info lists them)", 0},                        \
    {"weights", "W", "weights, .safetensors (scripts/convert_weights.py makes them)", 0}, \
    {"model", "F", "instead of --arch/--weights: any CNN as an .onnx file", 0},          \
    {"blocks", "B", "ONNX: auto (default) | all | tensor names a,b,... (see info)", 0},    \
    {"backend", "B", "auto | cpu | cuda (default auto)", 0},                              \
    {"precision", "P", "fp32 | tf32 | fp16 | bf16 (default fp32; the CPU: fp32 or bf16)", 0},\
    {"batch", "N", "images per forward pass (default: 256 at <= 64 px, else 64)", 0},      \
    {"threads", "N", "CPU threads for compute and decoding (default: all cores)", 0},      \
    {"input-size", "S", "square input side (default: the architecture's)", 0},            \
    {"mean", "R,G,B", "normalisation mean (default: the architecture's)", 0},             \
    {"std", "R,G,B", "normalisation std (default: the architecture's)", 0},               \
    {"stem-padding", "P", "resnet18_cifar stem padding: 1 (default) or 2", 0},            \
    {"allow-unused-weights", NULL, "load weights holding tensors the --arch does not use", 0}

#define CLI_DATA_FLAGS                                                                    \
    {"data", "PATH", "images: a folder (recursive), a list file, or CIFAR .bin", 0},       \
    {"preset", "P", "cifar | imagenet (default: the architecture's)", 0},                 \
    {"labels", NULL, "folder data: first-level sub-folders are classes", 0},              \
    {"limit", "N", "use at most N images", 0},                                            \
    {"every", "K", "use every K-th image", 0},                                            \
    {"decode-threads", "N", "image decoding threads (default: --threads)", 0},            \
    {"strict", NULL, "stop at the first unreadable image instead of skipping it", 0},     \
    {"quiet", NULL, "no progress on stderr", 0},                                         \
    {"profile", NULL, "at the end, seconds per stage (decode, forward, host) on stderr", 0}, \
    {"resume", NULL, "continue an interrupted run from its checkpoint (OUT.ckpt)", 0},     \
    {"checkpoint-every", "N", "save progress every N images (default 5000) or minute", 0}

/* This process in its MPI job (rank 0 of 1 without one), set by main. */
extern fn_mpi_info cli_mpi;

int cli_model_options(const cli_args *a, fn_model_options *o);
/* These print their errors and return an exit status: 0, 2 (bad flags) or 1. */
int cli_load_model(const cli_args *a, int allow_no_weights, fn_model **m);
int cli_open_dataset(const cli_args *a, fn_dataset **d);
int cli_run_options(const cli_args *a, fn_run_options *o);
/* Prints "featurenorm: <message>" for the last error; returns 1. */
int cli_error(fn_status s);
/* Long runs (long_run.c): checks the outputs before any work, puts the
 * checkpoint at <first output>.ckpt and makes SIGINT/SIGTERM stop the run
 * cleanly; returns an exit status (0: go on). */
int cli_prepare_run(const cli_args *a, fn_run_options *o, const char *const *outputs, int n,
                    char *checkpoint, size_t len);
/* The exit status of a run: 0, 1, or 128 + the signal that stopped it; says
 * how many images were skipped, and removes the checkpoint after success. */
int cli_finish_run(fn_status s, const fn_run_options *o, size_t skipped);

int cmd_info(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_select(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
