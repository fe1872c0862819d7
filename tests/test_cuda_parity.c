/* test_cuda_parity.c: the CUDA backend against the CPU backend (the oracle).
 *
 * 1. Every case in tests/fixtures/models/ whose architecture is built in is
 *    loaded on the CPU and on CUDA in FP32, TF32, FP16 and BF16 and run from
 *    float NCHW and from uint8 NHWC input, at a batch below the CUDA model's
 *    max_batch and again at max_batch (the fixture images repeated). Norms,
 *    logits, features, ReAct logits and energy, MSP, MaxLogit, energy and the
 *    predictions must agree (row-scaled rule of test_forward.c), and an FP32
 *    or FP16 pass repeated must give the same bits.
 * 2. The trained CIFAR ResNet-20 of ../shared/data (converted with
 *    scripts/convert_weights.py into the build folder, when python3 is
 *    there) on 200 random uint8 images, batch 256.
 * 3. Too small a card: resnet50 at 224 with max_batch 2^20 must fail with
 *    FN_ERR_DEVICE_MEMORY and a message that names the batch.
 *
 * Tolerances:
 *   FP32 per element: |got - want| <= 1e-4 |want| + 1e-5 rms(row) (norms:
 *        1e-4 of each block's own norm, no floor). Float32 throughout, only
 *        the summation order and cuDNN's Winograd/FFT transforms differ. TF32
 *        leaking in (it must not: FMA math, no TF32 in cuBLAS) would show as
 *        1e-3 and more.
 *   The others row-scaled, |got - want| <= tol * (|want| + max |want| of the row):
 *   TF32 5e-3: inputs of every product rounded to a 10-bit mantissa, ~5e-4
 *        per layer, compounding over up to 57 layers (resnet56).
 *   FP16 1e-2: activations and weights stored with 11-bit significands
 *        (~3e-4 per rounding), float accumulation; same depth argument.
 *   BF16 5e-2: 8-bit significands, 8x coarser than FP16 (~2e-3 per rounding,
 *        ~4e-3 per layer), which over 57 layers reaches ~3e-2.
 * Every comparison prints its largest error, so the margins can be read off.
 * Without CUDA in the build, or without a usable device: "SKIP: <why>", 77. */
#include <stdint.h>

#include "backend.h"
#include "fixture_cases.h"

#ifdef FN_WITH_CUDA
#include "cuda_nets.h"
#endif

#ifdef FN_WITH_CUDA

static const char *prec_name[] = {"fp32", "tf32", "fp16", "bf16"};
static const double prec_tol[] = {1e-4, 5e-3, 1e-2, 5e-2};

typedef struct outputs {
    int n, B, K, D, S;
    float *norms, *logits, *features, *react, *scores;
    int *pred;
} outputs;

static void outputs_alloc(outputs *o, int n, const fn_model_info *info)
{
    o->n = n, o->B = info->num_blocks, o->K = info->num_classes, o->D = info->feature_dim;
    o->S = fn_score_count();
    o->norms = calloc((size_t)n * o->B, sizeof(float));
    o->logits = calloc((size_t)n * o->K, sizeof(float));
    o->features = calloc((size_t)n * o->D, sizeof(float));
    o->react = calloc((size_t)n * o->K, sizeof(float));
    o->scores = calloc((size_t)n * o->S, sizeof(float));
    o->pred = calloc((size_t)n, sizeof(int));
    REQUIRE(o->norms && o->logits && o->features && o->react && o->scores && o->pred);
}

static void outputs_free(outputs *o)
{
    free(o->norms), free(o->logits), free(o->features), free(o->react), free(o->scores), free(o->pred);
}

static fn_outputs as_fn(outputs *o, float clip)
{
    fn_outputs f;
    fn_outputs_init(&f);
    f.norms = o->norms, f.logits = o->logits, f.features = o->features, f.react_logits = o->react;
    f.pred = o->pred, f.scores = o->scores, f.block = o->B - 1, f.react_clip = clip;
    return f;
}

/* want's rows in got's order (row r of got is want's row map[r]). */
static float *gather(const float *want, int rows, int cols, const int *map)
{
    float *g = malloc(sizeof(float) * (size_t)rows * cols + 1);
    for (int r = 0; r < rows; r++)
        memcpy(g + (size_t)r * cols, want + (size_t)(map ? map[r] : r) * cols, sizeof(float) * cols);
    return g;
}

/* One output: FP32 per element (rtol 1e-4, floor 1e-5 x the row's rms; norms
 * each against itself), the others by the row-scaled rule. */
static double compare_one(const char *what, const char *name, int p, const float *got, const float *want, int rows,
                          int cols, const int *map, int norms)
{
    if (p != FN_PRECISION_FP32)
        return compare_rows(what, name, got, want, rows, cols, map, prec_tol[p]);
    float *w = gather(want, rows, cols, map);
    double e = nets_elementwise(name, what, got, w, rows, cols, prec_tol[p], norms ? 0 : 1e-5);
    free(w);
    return e;
}

/* All outputs of a CUDA pass (n rows, row r from CPU row map[r]) against the CPU's. */
static double compare_all(const char *name, int p, const outputs *g, const outputs *w, const int *map)
{
    const double tol = prec_tol[p];
    double worst = compare_one("norms", name, p, g->norms, w->norms, g->n, g->B, map, 1);
    worst = fmax(worst, compare_one("logits", name, p, g->logits, w->logits, g->n, g->K, map, 0));
    worst = fmax(worst, compare_one("features", name, p, g->features, w->features, g->n, g->D, map, 0));
    worst = fmax(worst, compare_one("react", name, p, g->react, w->react, g->n, g->K, map, 0));
    for (int r = 0; r < g->n; r++) {
        int i = map ? map[r] : r;
        const float *l = w->logits + (size_t)i * w->K;
        double scale = 0, top = -INFINITY, second = -INFINITY;
        for (int k = 0; k < w->K; k++) {
            scale = fmax(scale, fabs(l[k]));
            if (l[k] > top)
                second = top, top = l[k];
            else if (l[k] > second)
                second = l[k];
        }
        /* scores (host/scores.c, from these tensors) move with the logits and norms */
        const double atol = (p == FN_PRECISION_FP32 ? 10 * tol : tol) * (1 + scale);
        for (int j = 0; j < g->S; j++) {
            float gs = g->scores[(size_t)r * g->S + j], ws = w->scores[(size_t)i * w->S + j];
            CHECK_MSG((isnan(gs) && isnan(ws)) || test_close(gs, ws, 10 * tol, atol), "%s: score %s[%d] %.8g, CPU %.8g",
                      name, fn_score_name(j), r, gs, ws);
        }
        if (w->K == 1 || top - second > 4 * atol) /* a clear winner must win on both */
            CHECK_MSG(g->pred[r] == w->pred[i], "%s: pred[%d] %d, CPU %d", name, r, g->pred[r], w->pred[i]);
    }
    return worst;
}

/* ---- 1. fixtures ------------------------------------------------------------------------ */

static void run_case(const char *dir, const char *name, const json *meta)
{
    char weights[1100];
    fn_model_options o;
    case_options(dir, meta, &o, weights);
    const float clip = (float)json_get(meta, "react_clip")->number;

    npy input, input_u8;
    load_npy(dir, "input.npy", &input);
    load_npy(dir, "input_u8.npy", &input_u8);
    const int n = (int)input.shape[0], big = 2 * n + 1;
    const size_t img_f = input.count / (size_t)n, img_u8 = input_u8.count / (size_t)n;
    float *x = npy_floats(&input), *x_big = malloc(sizeof(float) * img_f * big);
    uint8_t *u8_big = malloc(img_u8 * big);
    int *map = malloc(sizeof(int) * big);
    for (int r = 0; r < big; r++) { /* n < max_batch, then max_batch: images repeated */
        map[r] = (r * 7 + 3) % n;
        memcpy(x_big + (size_t)r * img_f, x + (size_t)map[r] * img_f, sizeof(float) * img_f);
        memcpy(u8_big + (size_t)r * img_u8, input_u8.bytes + (size_t)map[r] * img_u8, img_u8);
    }

    o.backend = FN_BACKEND_CPU;
    o.max_batch = n;
    fn_model *cpu;
    REQUIRE_OK(fn_model_load(&o, &cpu));
    fn_model_info info;
    fn_model_get_info(cpu, &info);
    outputs want, want8;
    outputs_alloc(&want, n, &info);
    outputs_alloc(&want8, n, &info);
    fn_outputs wf = as_fn(&want, clip), wf8 = as_fn(&want8, clip);
    REQUIRE_OK(fn_model_forward(cpu, n, x, &wf));
    REQUIRE_OK(fn_model_forward_u8(cpu, n, input_u8.bytes, &wf8));
    fn_model_free(cpu);

    for (int p = 0; p < 4; p++) {
        char label[160];
        snprintf(label, sizeof label, "%s/%s", name, prec_name[p]);
        o.backend = FN_BACKEND_CUDA;
        o.precision = (fn_precision)p;
        o.max_batch = big;
        fn_model *gpu;
        fn_status s = fn_model_load(&o, &gpu);
        if (s != FN_OK) {
            fprintf(stderr, "%s: CUDA load failed: %s: %s\n", label, fn_status_name(s), fn_last_error());
            test_failures++;
            continue;
        }
        outputs got, again, got_big;
        outputs_alloc(&got, n, &info);
        outputs_alloc(&again, n, &info);
        outputs_alloc(&got_big, big, &info);
        fn_outputs gf = as_fn(&got, clip), af = as_fn(&again, clip), bf = as_fn(&got_big, clip);
        double worst = 0, w8 = 0, wbig = 0, wbig8 = 0;
        s = fn_model_forward(gpu, n, x, &gf);
        if (s == FN_OK) {
            worst = compare_all(label, p, &got, &want, NULL);
            /* the same pass again: the same bits (no atomics, same algorithms) */
            if ((s = fn_model_forward(gpu, n, x, &af)) == FN_OK && (p == FN_PRECISION_FP32 || p == FN_PRECISION_FP16)) {
                CHECK_MSG(memcmp(got.norms, again.norms, sizeof(float) * n * info.num_blocks) == 0,
                          "%s: norms differ between two identical passes", label);
                CHECK_MSG(memcmp(got.logits, again.logits, sizeof(float) * n * info.num_classes) == 0,
                          "%s: logits differ between two identical passes", label);
            }
        }
        if (s == FN_OK && (s = fn_model_forward_u8(gpu, n, input_u8.bytes, &gf)) == FN_OK)
            w8 = compare_all(label, p, &got, &want8, NULL);
        if (s == FN_OK && (s = fn_model_forward(gpu, big, x_big, &bf)) == FN_OK)
            wbig = compare_all(label, p, &got_big, &want, map);
        if (s == FN_OK && (s = fn_model_forward_u8(gpu, big, u8_big, &bf)) == FN_OK)
            wbig8 = compare_all(label, p, &got_big, &want8, map);
        if (s != FN_OK) {
            fprintf(stderr, "%s: CUDA forward failed: %s: %s\n", label, fn_status_name(s), fn_last_error());
            test_failures++;
        }
        printf("  %-28s worst: float %.1e  u8 %.1e  batch %d: %.1e / %.1e  (%s)\n", label, worst, w8, big, wbig,
               wbig8, p == FN_PRECISION_FP32 ? "fraction of the per-element tolerance" : "row-scaled error");
        outputs_free(&got), outputs_free(&again), outputs_free(&got_big);
        fn_model_free(gpu);
    }
    outputs_free(&want), outputs_free(&want8);
    free(x), free(x_big), free(u8_big), free(map);
    npy_free(&input), npy_free(&input_u8);
}

/* ---- 2. the trained ResNet-20 ------------------------------------------------------------ */

static void test_real_resnet20(void)
{
    char th[1024], st[1024], cmd[6000];
    snprintf(th, sizeof th, "%s/weights/cifar10/resnet20-12fca82f.th", FN_SHARED_DATA);
    snprintf(st, sizeof st, "%s/resnet20-12fca82f.safetensors", FN_BINARY_DIR);
    if (!test_exists(th)) {
        printf("real ResNet-20: %s not found; that part skipped\n", th);
        return;
    }
    if (!test_exists(st)) {
        if (system("python3 -c 'import sys' > /dev/null 2>&1") != 0) {
            printf("real ResNet-20: no python3 to run scripts/convert_weights.py; that part skipped\n");
            return;
        }
        snprintf(cmd, sizeof cmd, "python3 '%s/scripts/convert_weights.py' '%s' '%s.tmp' > /dev/null && mv '%s.tmp' '%s'",
                 FN_SOURCE_DIR, th, st, st, st);
        if (system(cmd) != 0 || !test_exists(st)) {
            fprintf(stderr, "real ResNet-20: `%s` failed\n", cmd);
            test_failures++;
            return;
        }
    }
    const int n = 200, S = 32;
    uint8_t *images = malloc((size_t)n * S * S * 3);
    uint32_t r = 7;
    for (size_t i = 0; i < (size_t)n * S * S * 3; i++) {
        r = r * 1664525u + 1013904223u;
        images[i] = (uint8_t)(r >> 24);
    }
    fn_model_options o;
    fn_model_options_init(&o);
    o.arch = "resnet20_cifar";
    o.weights = st;
    o.backend = FN_BACKEND_CPU;
    o.max_batch = n;
    fn_model *cpu;
    REQUIRE_OK(fn_model_load(&o, &cpu));
    fn_model_info info;
    fn_model_get_info(cpu, &info);
    outputs want;
    outputs_alloc(&want, n, &info);
    fn_outputs wf;
    fn_outputs_init(&wf);
    wf.norms = want.norms, wf.logits = want.logits, wf.pred = want.pred;
    REQUIRE_OK(fn_model_forward_u8(cpu, n, images, &wf));
    fn_model_free(cpu);
    for (int p = 0; p < 4; p++) {
        o.backend = FN_BACKEND_CUDA;
        o.precision = (fn_precision)p;
        o.max_batch = 256;
        fn_model *gpu;
        fn_status s = fn_model_load(&o, &gpu);
        if (s != FN_OK) {
            fprintf(stderr, "real ResNet-20 %s: CUDA load failed: %s\n", prec_name[p], fn_last_error());
            test_failures++;
            continue;
        }
        outputs got;
        outputs_alloc(&got, n, &info);
        fn_outputs gf;
        fn_outputs_init(&gf);
        gf.norms = got.norms, gf.logits = got.logits, gf.pred = got.pred;
        s = fn_model_forward_u8(gpu, n, images, &gf);
        if (s != FN_OK) {
            fprintf(stderr, "real ResNet-20 %s: forward failed: %s\n", prec_name[p], fn_last_error());
            test_failures++;
        } else {
            char label[64];
            snprintf(label, sizeof label, "real resnet20/%s", prec_name[p]);
            double e1 = compare_rows("norms", label, got.norms, want.norms, n, info.num_blocks, NULL, prec_tol[p]);
            double e2 = compare_rows("logits", label, got.logits, want.logits, n, info.num_classes, NULL, prec_tol[p]);
            int agree = 0;
            for (int i = 0; i < n; i++)
                agree += got.pred[i] == want.pred[i];
            printf("  %-28s max rel. error: norms %.1e  logits %.1e  predictions agree %d/%d\n", label, e1, e2,
                   agree, n);
            /* random images can tie two classes closely; allow a few flips */
            CHECK_MSG(agree >= n - (p == FN_PRECISION_FP32 ? 1 : n / 25), "%s: only %d/%d predictions agree",
                      label, agree, n);
        }
        outputs_free(&got);
        fn_model_free(gpu);
    }
    outputs_free(&want);
    free(images);
}

/* ---- 3. too small a card ------------------------------------------------------------------ */

static void test_too_big(void)
{
    fn_model_options o;
    fn_model_options_init(&o);
    o.arch = "resnet50";
    o.weights = FN_FIXTURES "/models/resnet50/model.safetensors";
    o.backend = FN_BACKEND_CUDA;
    o.precision = FN_PRECISION_FP16;
    o.input_size = 224;
    o.max_batch = 1 << 20;
    fn_model *m = NULL;
    CHECK_FAILS(fn_model_load(&o, &m), FN_ERR_DEVICE_MEMORY, "batch");
    printf("  max_batch 2^20: %s\n", fn_last_error());
    fn_model_free(m);
}
#endif /* FN_WITH_CUDA */

int main(int argc, char **argv)
{
    SKIP_WITHOUT_CUDA();
#ifdef FN_WITH_CUDA
    for_each_case(argc > 1 ? argv[1] : NULL, run_case);
    if (argc <= 1) {
        test_real_resnet20();
        test_too_big();
    }
    return test_finish("test_cuda_parity");
#endif
}
