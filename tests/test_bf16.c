/* test_bf16.c: the CPU backend in bf16 (bf16 weights and activations, FP32
 * accumulation and norms), on CPUs whose oneDNN has AVX512-BF16 or AMX.
 *
 * Every fixture network against PyTorch's float64 values within 5e-2,
 * row-scaled (bf16 keeps 8 bits of mantissa: one rounding is 4e-3, and a deep
 * network stacks dozens of them); the real ResNet-20 on the 100 lossless
 * CIFAR-10 images classifies at most one image worse than in fp32. Where the
 * CPU has no bf16, loading must fail with FN_ERR_UNAVAILABLE and say why; the
 * test then skips. */
#include <stdlib.h>

#include "fixture_cases.h"

#define RTOL 5e-2

static void compare(const char *what, const char *name, const float *got, const npy *want)
{
    float *w = npy_floats(want);
    int rows = (int)want->shape[0];
    double worst = compare_rows(what, name, got, w, rows, (int)(want->count / (size_t)rows), NULL, RTOL);
    printf("  %-10s max rel. error %.2e\n", what, worst);
    free(w);
}

static void run_case(const char *dir, const char *name, const json *meta)
{
    char weights[1100];
    fn_model_options o;
    case_options(dir, meta, &o, weights);
    o.backend = FN_BACKEND_CPU;
    o.precision = FN_PRECISION_BF16;
    printf("%s\n", name);
    fn_model *m;
    REQUIRE_OK(fn_model_load(&o, &m));
    npy input, norms, logits;
    load_npy(dir, "input.npy", &input);
    load_npy(dir, "norms.npy", &norms);
    load_npy(dir, "logits.npy", &logits);
    int n = (int)input.shape[0];
    float *x = npy_floats(&input);
    float *g_norms = calloc(norms.count, sizeof(float)), *g_logits = calloc(logits.count, sizeof(float));
    fn_outputs out;
    fn_outputs_init(&out);
    out.norms = g_norms, out.logits = g_logits;
    REQUIRE_OK(fn_model_forward(m, n, x, &out));
    compare("norms", name, g_norms, &norms);
    compare("logits", name, g_logits, &logits);
    free(x), free(g_norms), free(g_logits);
    npy_free(&input), npy_free(&norms), npy_free(&logits);
    fn_model_free(m);
}

/* Correct predictions of the real ResNet-20 on the 100 lossless images. */
static int real_accuracy(const char *weights, fn_precision precision, const npy *labels)
{
    fn_model_options o;
    fn_model_options_init(&o);
    o.arch = "resnet20_cifar";
    o.weights = weights;
    o.backend = FN_BACKEND_CPU;
    o.precision = precision;
    o.max_batch = 100;
    fn_model *m;
    REQUIRE_OK(fn_model_load(&o, &m));
    fn_dataset *d;
    REQUIRE_OK(fn_dataset_open(FN_SHARED_DATA "/cifar10-lossless/png", NULL, &d));
    fn_run_options ro;
    fn_run_options_init(&ro);
    fn_scores *s;
    REQUIRE_OK(fn_score_dataset(m, d, &ro, &s));
    int correct = 0;
    for (size_t i = 0; i < s->n; i++)
        correct += s->pred[i] == (int)labels->data[i];
    fn_scores_free(s);
    fn_dataset_free(d);
    fn_model_free(m);
    return correct;
}

int main(int argc, char **argv)
{
    fn_model_options o;
    fn_model_options_init(&o);
    o.arch = "resnet20_cifar";
    o.weights = FN_FIXTURES "/models/resnet20_cifar/model.safetensors";
    o.backend = FN_BACKEND_CPU;
    o.precision = FN_PRECISION_BF16;
    fn_model *m;
    fn_status s = fn_model_load(&o, &m);
    if (s == FN_ERR_UNAVAILABLE) {
        CHECK_MSG(strstr(fn_last_error(), "bf16"), "unclear message: %s", fn_last_error());
        if (test_failures)
            return test_finish("test_bf16");
        SKIP("%s", fn_last_error());
    }
    REQUIRE_OK(s);
    fn_model_info info;
    fn_model_get_info(m, &info);
    printf("device: %s\n", info.device);
    fn_model_free(m);
    for_each_case(argc > 1 ? argv[1] : NULL, run_case);

    const char *th = FN_SHARED_DATA "/weights/cifar10/resnet20-12fca82f.th";
    if (test_exists(th) && system("python3 -c 'import torch' > /dev/null 2>&1") == 0) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "python3 '%s/scripts/convert_weights.py' '%s' bf16_r20.safetensors > /dev/null",
                 FN_SOURCE_DIR, th);
        REQUIRE(test_exists("bf16_r20.safetensors") || system(cmd) == 0);
        npy labels;
        load_npy(FN_FIXTURES "/real/resnet20_cifar", "labels.npy", &labels);
        int fp32 = real_accuracy("bf16_r20.safetensors", FN_PRECISION_FP32, &labels);
        int bf16 = real_accuracy("bf16_r20.safetensors", FN_PRECISION_BF16, &labels);
        printf("real resnet20_cifar: accuracy %d%% in fp32, %d%% in bf16\n", fp32, bf16);
        CHECK_MSG(bf16 >= fp32 - 1, "bf16 accuracy %d%%, fp32 %d%%", bf16, fp32);
        npy_free(&labels);
    } else {
        printf("(no real data or torch: the real ResNet-20 part is not run)\n");
    }
    return test_finish("test_bf16");
}
