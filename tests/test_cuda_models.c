/* test_cuda_models.c: full-size networks on the CUDA backend against the CPU
 * backend, and the slot pipeline.
 *
 * Weights are deterministic random numbers (cuda_nets.h) filled into nets
 * built with no weights (arch_build with NULL): full-width ResNet-50, VGG-16
 * and MobileNetV3-Large at 224 have no fixture small enough to ship, and the
 * numbers to check are the engine's, not a training run's. Inputs are random
 * uint8 images, normalised on each backend.
 *
 *   ResNet-50, 224, batch 64 (FP32 per element; TF32 normwise AND measurably
 *     different from FP32: the TF32 mode is really on); FP32 again with
 *     FN_CUDA_NO_FUSE=1 and with FN_CUDA_CONV_ALGO=heuristic, FP16 heuristic
 *     (the fused tensor-op path without timing)
 *   VGG-16, 224, batch 8: the 25,088-input classifier; FP32 and BF16
 *   MobileNetV3-Large, 224, batch 32: depthwise, squeeze-excitation,
 *     hardswish; FP32, FP16 and BF16
 *   the pipeline: fn_score_dataset on CUDA over a 37-image CIFAR binary file
 *     with batches of 1, 4 and 37 (several batches in flight on the 3 slots,
 *     a short last batch) against the CPU's pass: same rows, norms per element
 *
 * Tolerances: cuda_nets.h (FP32 per element rtol 1e-4 + 1e-5 rms floor;
 * TF32 5e-3, FP16 1e-2, BF16 5e-2 normwise). Runtime on an H200 with 16
 * cores: about a minute, most of it the CPU reference.
 * Without CUDA in the build, or without a usable device: "SKIP: <why>", 77. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend.h"
#include "featurenorm.h"
#include "test.h"

#ifdef FN_WITH_CUDA
#include "cuda_nets.h"
#include "models/models.h"

static const char *prec_name[] = {"fp32", "tf32", "fp16", "bf16"};

static void build(const char *arch, int size, net *nt)
{
    arch_options ao = {0};
    const struct arch *a = arch_find(arch);
    REQUIRE(a);
    REQUIRE_OK(arch_build(a, NULL, size, &ao, nt));
    nets_fill_weights(nt, 42);
}

static uint8_t *random_images(int n, int size)
{
    const size_t bytes = (size_t)n * size * size * 3;
    uint8_t *u8 = malloc(bytes);
    REQUIRE(u8);
    nets_rng = 777;
    for (size_t i = 0; i < bytes; i++)
        u8[i] = (uint8_t)(nets_uniform() * 127.5f + 128);
    return u8;
}

/* One CUDA run of nt at precision p with env (NAME=VALUE or NULL) set,
 * compared with want; returns the worst measure (or -1 when it failed). */
static double run_cuda(const char *label, const net *nt, fn_precision p, const char *env, int n, const uint8_t *u8,
                       const nets_out *want, nets_out *keep)
{
    char name[64] = "";
    if (env) {
        snprintf(name, sizeof name, "%.*s", (int)(strchr(env, '=') - env), env);
        setenv(name, strchr(env, '=') + 1, 1);
    }
    nets_out got;
    memset(&got, 0, sizeof got);
    fn_status s = nets_forward(nt, 1, p, n, n, NULL, u8, 1.0f, &got);
    if (env)
        unsetenv(name);
    if (s != FN_OK) {
        fprintf(stderr, "%s: CUDA failed: %s: %s\n", label, fn_status_name(s), fn_last_error());
        test_failures++;
        return -1;
    }
    double e = nets_compare(label, p, &got, want, 1);
    printf("  %-40s %s %.2e\n", label, p == FN_PRECISION_FP32 ? "worst / tolerance" : "normwise error   ", e);
    if (keep)
        *keep = got;
    else
        nets_out_free(&got);
    return e;
}

static double normwise_diff(const float *a, const float *b, size_t count)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < count; i++)
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), den += (double)b[i] * b[i];
    return sqrt(num) / (sqrt(den) + 1e-30);
}

static void test_resnet50(void)
{
    const int n = 64;
    net nt;
    build("resnet50", 224, &nt);
    uint8_t *u8 = random_images(n, 224);
    nets_out want, fp32, tf32;
    REQUIRE_OK(nets_forward(&nt, 0, FN_PRECISION_FP32, n, n, NULL, u8, 1.0f, &want));
    memset(&fp32, 0, sizeof fp32), memset(&tf32, 0, sizeof tf32);
    run_cuda("resnet50 224 b64 fp32", &nt, FN_PRECISION_FP32, NULL, n, u8, &want, &fp32);
    run_cuda("resnet50 224 b64 tf32", &nt, FN_PRECISION_TF32, NULL, n, u8, &want, &tf32);
    if (fp32.features && tf32.features) {
        /* Convolutions only (features are the pooled last block): TF32 rounds
         * every product's inputs to 10 bits, ~1e-3 after 50 layers; FP32 ~1e-6. */
        const size_t count = (size_t)n * nt.feature_dim;
        double e32 = normwise_diff(fp32.features, want.features, count);
        double e_tf = normwise_diff(tf32.features, want.features, count);
        printf("  tf32 is on: features' normwise error vs the CPU: tf32 %.2e, fp32 %.2e\n", e_tf, e32);
        CHECK_MSG(e_tf > 1e-4 && e_tf > 10 * e32, "TF32 does not differ from FP32 (tf32 %.2e, fp32 %.2e): "
                  "is TF32 really on in the convolutions?", e_tf, e32);
    }
    nets_out_free(&fp32), nets_out_free(&tf32);
    run_cuda("resnet50 fp32 FN_CUDA_NO_FUSE=1", &nt, FN_PRECISION_FP32, "FN_CUDA_NO_FUSE=1", n, u8, &want, NULL);
    run_cuda("resnet50 fp32 heuristic algorithms", &nt, FN_PRECISION_FP32, "FN_CUDA_CONV_ALGO=heuristic", n, u8,
             &want, NULL);
    run_cuda("resnet50 fp16 heuristic algorithms", &nt, FN_PRECISION_FP16, "FN_CUDA_CONV_ALGO=heuristic", n, u8,
             &want, NULL);
    nets_out_free(&want);
    free(u8);
    net_free(&nt);
}

static void test_vgg16(void)
{
    const int n = 8;
    net nt;
    build("vgg16", 224, &nt);
    REQUIRE(nt.feature_dim == 4096 && net_tensor_elems(&nt, nt.ops[nt.last_linear].in) == 4096);
    uint8_t *u8 = random_images(n, 224);
    nets_out want;
    REQUIRE_OK(nets_forward(&nt, 0, FN_PRECISION_FP32, n, n, NULL, u8, 1.0f, &want));
    run_cuda("vgg16 224 b8 fp32", &nt, FN_PRECISION_FP32, NULL, n, u8, &want, NULL);
    run_cuda("vgg16 224 b8 bf16", &nt, FN_PRECISION_BF16, NULL, n, u8, &want, NULL);
    nets_out_free(&want);
    free(u8);
    net_free(&nt);
}

static void test_mobilenet_v3(void)
{
    const int n = 32;
    net nt;
    build("mobilenet_v3_large", 224, &nt);
    uint8_t *u8 = random_images(n, 224);
    nets_out want;
    REQUIRE_OK(nets_forward(&nt, 0, FN_PRECISION_FP32, n, n, NULL, u8, 1.0f, &want));
    for (int p = 0; p < 4; p++) {
        if (p == FN_PRECISION_TF32)
            continue;
        char label[64];
        snprintf(label, sizeof label, "mobilenet_v3_large 224 b32 %s", prec_name[p]);
        run_cuda(label, &nt, (fn_precision)p, NULL, n, u8, &want, NULL);
    }
    nets_out_free(&want);
    free(u8);
    net_free(&nt);
}

/* ---- the pipeline ---------------------------------------------------------------------- */

static fn_scores *score(fn_backend b, const char *bin, int batch)
{
    fn_model_options o;
    fn_model_options_init(&o);
    o.arch = "resnet20_cifar";
    o.weights = FN_FIXTURES "/models/resnet20_cifar/model.safetensors";
    o.backend = b;
    o.max_batch = batch;
    fn_model *m;
    REQUIRE_OK(fn_model_load(&o, &m));
    fn_dataset *d;
    REQUIRE_OK(fn_dataset_open(bin, NULL, &d));
    fn_run_options r;
    fn_run_options_init(&r);
    r.batch = batch;
    r.block = 2;
    r.react_clip = 1.0f;
    r.decode_threads = 2;
    fn_scores *s = NULL;
    fn_status st = fn_score_dataset(m, d, &r, &s);
    if (st != FN_OK) {
        fprintf(stderr, "pipeline (%s, batch %d): fn_score_dataset failed: %s\n", b == FN_BACKEND_CUDA ? "cuda" : "cpu",
                batch, fn_last_error());
        test_failures++;
    }
    fn_dataset_free(d);
    fn_model_free(m);
    return s;
}

static void test_pipeline(void)
{
    const int n = 37;
    char bin[64];
    snprintf(bin, sizeof bin, "cuda_pipeline_%ld.bin", (long)getpid());
    FILE *f = fopen(bin, "wb");
    REQUIRE(f);
    nets_rng = 99;
    for (int i = 0; i < n; i++) { /* CIFAR-10 records: label, then 3 planes of 32 x 32 */
        fputc(i % 10, f);
        for (int k = 0; k < 3072; k++)
            fputc((int)(nets_uniform() * 127.5f + 128), f);
    }
    fclose(f);
    fn_scores *want = score(FN_BACKEND_CPU, bin, n);
    static const int batches[] = {1, 4, 37};
    for (int b = 0; want && b < 3; b++) {
        fn_scores *got = score(FN_BACKEND_CUDA, bin, batches[b]);
        if (!got)
            continue;
        char label[64];
        snprintf(label, sizeof label, "pipeline batch %d", batches[b]);
        CHECK_MSG(got->n == want->n, "%s: %zu rows, CPU %zu", label, got->n, want->n);
        int same_rows = got->n == want->n;
        for (size_t i = 0; same_rows && i < got->n; i++)
            same_rows = got->index[i] == want->index[i] && got->label[i] == want->label[i];
        CHECK_MSG(same_rows, "%s: rows in another order than the CPU's", label);
        if (same_rows) {
            double e = nets_elementwise(label, "norms", got->norms, want->norms, (int)got->n, got->num_blocks,
                                        nets_fp32_rtol, 0);
            CHECK_MSG(got->num_scores == want->num_scores, "%s: %d scores, CPU %d", label, got->num_scores,
                      want->num_scores);
            for (int j = 0; j < got->num_scores && got->num_scores == want->num_scores; j++)
                e = fmax(e, nets_elementwise(label, fn_score_name(got->score_id[j]), got->scores + (size_t)j * got->n,
                                             want->scores + (size_t)j * want->n, 1, (int)got->n, 1e-3, 1e-4));
            printf("  %-40s %zu rows in order, worst / tolerance %.2e\n", label, got->n, e);
        }
        fn_scores_free(got);
    }
    fn_scores_free(want);
    remove(bin);
}
#endif

int main(int argc, char **argv)
{
    SKIP_WITHOUT_CUDA();
#ifdef FN_WITH_CUDA
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || !strcmp(only, "pipeline"))
        test_pipeline();
    if (!only || !strcmp(only, "mobilenet"))
        test_mobilenet_v3();
    if (!only || !strcmp(only, "resnet50"))
        test_resnet50();
    if (!only || !strcmp(only, "vgg16"))
        test_vgg16();
    return test_finish("test_cuda_models");
#endif
}
