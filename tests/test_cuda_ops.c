/* test_cuda_ops.c: every op of net.h on the CUDA backend against the CPU
 * backend, as ggml's test-backend-ops does it: each op (and each activation in
 * each epilogue) inside a tiny net built with the builder (nb_*), random
 * weights (cuda_nets.h), the same float input on both backends; norms of the
 * op's output (tapped), logits, features and ReAct logits compared.
 *
 *   conv 3x3 / 5x5 stride 2 / 1x1, grouped, depthwise, with and without a
 *     residual, every activation (ReLU and identity also through cuDNN's
 *     fused call when it is chosen); affine; max pool; adaptive average pool;
 *     k x k average pool with and without count_include_pad; option-A
 *     shortcut; scale by c x 1 x 1 (squeeze-excitation) and by a same-shaped
 *     tensor; add (+ every activation); act (every activation, leaky slope
 *     0.1); concat of three tensors; linear with an activation.
 *
 * Tolerances (cuda_nets.h): FP32 per element, relative 1e-4 with a floor of
 * 1e-5 x the row's rms (norms: 1e-4 each, no floor); TF32 5e-3, FP16 1e-2,
 * BF16 5e-2 normwise. Input 13 x 13 (odd: padding and strides bite), batch 5.
 * Without CUDA in the build, or without a usable device: "SKIP: <why>", 77.
 *
 *   test_cuda_ops [-o CASE[,CASE...]]   only those cases (as ggml's test-backend-ops
 *                                       -o), when GPU time is short; -h lists them */
#include <stdint.h>

#include "backend.h"
#include "featurenorm.h"
#include "net.h"
#include "test.h"

static const char *const case_names[] = {"conv", "conv_res", "affine", "add", "act", "linear", "conv_shape",
                                         "pool", "shortcut", "scale", "concat"};
static const char *only; /* -o: a comma-separated list of case_names, NULL for all */

/* The length of the list item at p: up to a comma or the end. */
static size_t item_len(const char *p)
{
    const char *e = strchr(p, ',');
    return e ? (size_t)(e - p) : strlen(p);
}

/* Whether the n characters at p are one of the names. */
static int one_of(const char *p, size_t n, const char *const *names, size_t count)
{
    for (size_t k = 0; k < count; k++)
        if (strlen(names[k]) == n && !strncmp(names[k], p, n))
            return 1;
    return 0;
}

static int usage(FILE *f, int code)
{
    fprintf(f, "usage: test_cuda_ops [-o CASE[,CASE...]]\n  cases:");
    for (size_t i = 0; i < sizeof case_names / sizeof case_names[0]; i++)
        fprintf(f, " %s", case_names[i]);
    fprintf(f, "\n");
    return code;
}

/* -1 when the arguments are good, else the exit code. */
static int parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return usage(stdout, 0);
        if (strcmp(argv[i], "-o") || i + 1 >= argc)
            return usage(stderr, 2);
        only = argv[++i];
    }
    const size_t cases = sizeof case_names / sizeof case_names[0];
    for (const char *p = only ? only : ""; *p; p += item_len(p) + (p[item_len(p)] == ','))
        if (!one_of(p, item_len(p), case_names, cases)) { /* every name must be a case */
            fprintf(stderr, "test_cuda_ops: no case '%.*s'\n", (int)item_len(p), p);
            return usage(stderr, 2);
        }
    return -1;
}

#ifdef FN_WITH_CUDA
#include "cuda_nets.h"

/* Whether `name` is in the comma-separated list. */
static int listed(const char *list, const char *name)
{
    for (size_t n; *list; list += n + (list[n] == ','))
        if (one_of(list, n = item_len(list), &name, 1))
            return 1;
    return 0;
}

#define SIZE 13
#define BATCH 5

static const char *prec_name[] = {"fp32", "tf32", "fp16", "bf16"};

/* The op under test, from the input tensor x (3 x 13 x 13); returns its output. */
typedef int (*body_fn)(net_builder *nb, int x, int variant);

/* ACT_LEAKY's slope on the op that made t (the builder leaves it 0). */
static int slope(net_builder *nb, int t)
{
    if (t >= 0)
        nb->net->ops[nb->net->n_ops - 1].alpha = 0.1f;
    return t;
}

static int stem(net_builder *nb, int x) /* 8 channels to work on */
{
    return nb_conv(nb, x, .conv = "stem", .cout = 8, .k = 3, .pad = 1, .bias = 1);
}

static int body_conv(net_builder *nb, int x, int act)
{
    int s = stem(nb, x);
    return slope(nb, nb_conv(nb, s, .conv = "conv", .cout = 16, .k = 3, .pad = 1, .bias = 1, .act = (net_act)act));
}

static int body_conv_res(net_builder *nb, int x, int act)
{
    int s = stem(nb, x);
    return slope(nb, nb_conv_add(nb, s, s, .conv = "conv", .cout = 8, .k = 3, .pad = 1, .bias = 1,
                                 .act = (net_act)act));
}

static int body_conv_shapes(net_builder *nb, int x, int v)
{
    int s = stem(nb, x);
    switch (v) {
    case 0: return nb_conv(nb, s, .conv = "c5s2", .cout = 12, .k = 5, .stride = 2, .pad = 2, .bias = 1,
                           .act = ACT_RELU);
    case 1: return nb_conv(nb, s, .conv = "c1", .cout = 24, .k = 1, .bias = 1);
    case 2: return nb_conv(nb, s, .conv = "grouped", .cout = 16, .k = 3, .pad = 1, .groups = 2, .bias = 1,
                           .act = ACT_RELU6);
    case 3: return nb_conv(nb, s, .conv = "dw", .cout = 8, .k = 3, .pad = 1, .groups = NB_DEPTHWISE, .bias = 1,
                           .act = ACT_HARDSWISH);
    default: return nb_conv(nb, s, .conv = "dw5s2", .cout = 16, .k = 5, .stride = 2, .pad = 2,
                            .groups = NB_DEPTHWISE, .bias = 1, .act = ACT_RELU); /* multiplier 2 */
    }
}

static int body_affine(net_builder *nb, int x, int act)
{
    return slope(nb, nb_affine_bn(nb, stem(nb, x), "bn", (net_act)act));
}

static int body_pool(net_builder *nb, int x, int v)
{
    int s = stem(nb, x);
    switch (v) {
    case 0: return nb_maxpool(nb, s, 3, 2, 1);
    case 1: return nb_maxpool(nb, s, 2, 2, 0);
    case 2: return nb_avgpool(nb, s, 3, 2);   /* adaptive, overlapping bins */
    case 3: return nb_avgpool(nb, s, 5, 5);
    case 4: return nb_avgpool_k(nb, s, 3, 2, 1, 1);
    case 5: return nb_avgpool_k(nb, s, 3, 2, 1, 0);
    case 6: return nb_avgpool_k(nb, s, 2, 2, 0, 0);
    default: return nb_avgpool_k(nb, s, 3, 1, 1, 0);
    }
}

static int body_shortcut(net_builder *nb, int x, int v)
{
    return nb_shortcut_a(nb, stem(nb, x), 16);
}

static int body_scale(net_builder *nb, int x, int v)
{
    int s = stem(nb, x);
    if (v == 0) { /* squeeze-excitation: c x 1 x 1 */
        int g = nb_avgpool(nb, s, 1, 1);
        int r = nb_conv(nb, g, .conv = "se.fc1", .cout = 4, .k = 1, .bias = 1, .act = ACT_RELU);
        int e = nb_conv(nb, r, .conv = "se.fc2", .cout = 8, .k = 1, .bias = 1, .act = ACT_HARDSIGMOID);
        return nb_scale(nb, s, e);
    }
    int gate = nb_act(nb, nb_conv(nb, s, .conv = "gate", .cout = 8, .k = 1, .bias = 1), ACT_SIGMOID, 0);
    return nb_scale(nb, s, gate); /* same shape: elementwise */
}

static int body_add(net_builder *nb, int x, int act)
{
    int s = stem(nb, x);
    int t = nb_conv(nb, s, .conv = "branch", .cout = 8, .k = 3, .pad = 1, .bias = 1);
    return slope(nb, nb_add(nb, s, t, (net_act)act));
}

static int body_act(net_builder *nb, int x, int act)
{
    return nb_act(nb, stem(nb, x), (net_act)act, 0.1f);
}

static int body_concat(net_builder *nb, int x, int v)
{
    int s = stem(nb, x);
    int a = nb_conv(nb, s, .conv = "a", .cout = 3, .k = 1, .bias = 1, .act = ACT_RELU);
    int b = nb_conv(nb, s, .conv = "b", .cout = 5, .k = 3, .pad = 1, .bias = 1, .act = ACT_SILU);
    int ins[3] = {a, s, b};
    return nb_concat(nb, ins, 3);
}

static int body_linear(net_builder *nb, int x, int act)
{
    int s = stem(nb, x);
    return slope(nb, nb_linear(nb, s, "hidden", 20, (net_act)act)); /* flattens 8 x 13 x 13 */
}

/* Builds input -> body -> tap -> [global pool] -> linear, runs it on both
 * backends in every precision and compares. */
static void run_case(const char *name, body_fn body, int variant)
{
    if (only && !listed(only, name))
        return;
    net nt;
    memset(&nt, 0, sizeof nt);
    snprintf(nt.arch, sizeof nt.arch, "test_%s", name);
    const float mean[3] = {0.5f, 0.4f, 0.3f}, sd[3] = {0.25f, 0.2f, 0.3f};
    memcpy(nt.mean, mean, sizeof mean), memcpy(nt.std, sd, sizeof sd);
    net_builder nb = {&nt, NULL, 1e-5f, FN_OK};
    int x = nb_input(&nb, SIZE);
    int y = body(&nb, x, variant);
    nb_tap(&nb, y, "op");
    if (y >= 0 && (nt.tensors[y].h > 1 || nt.tensors[y].w > 1) && strcmp(name, "pool") != 0)
        y = nb_avgpool(&nb, y, 1, 1);
    int logits = nb_linear(&nb, y, "fc", 10, ACT_NONE);
    fn_status s = nb_finish(&nb, logits);
    if (s != FN_OK) {
        fprintf(stderr, "%s/%d: building the net failed: %s\n", name, variant, fn_last_error());
        test_failures++;
        net_free(&nt);
        return;
    }
    nets_fill_weights(&nt, (uint64_t)(name[0] * 131 + variant));
    const size_t per = (size_t)3 * SIZE * SIZE;
    float *in = malloc(sizeof(float) * per * BATCH);
    uint8_t *u8 = malloc(per * BATCH);
    for (size_t i = 0; i < per * BATCH; i++)
        in[i] = 2 * nets_uniform(), u8[i] = (uint8_t)(nets_uniform() * 127.5f + 128);
    nets_out want, want8;
    REQUIRE_OK(nets_forward(&nt, 0, FN_PRECISION_FP32, BATCH, BATCH, in, NULL, 0.5f, &want));
    REQUIRE_OK(nets_forward(&nt, 0, FN_PRECISION_FP32, BATCH, BATCH, NULL, u8, 0.5f, &want8));
    char line[512];
    int o = snprintf(line, sizeof line, "  %-10s %d", name, variant);
    for (int p = 0; p < 4; p++) {
        char label[96];
        snprintf(label, sizeof label, "%s/%d/%s", name, variant, prec_name[p]);
        nets_out got, got8;
        memset(&got, 0, sizeof got), memset(&got8, 0, sizeof got8);
        /* max_batch above the batch: the descriptors change size once */
        backend_config cfg = {BATCH + 2, 0, (fn_precision)p, 0};
        backend *be = NULL;
        s = cuda_backend_create(&nt, &cfg, &be);
        if (s == FN_OK)
            s = nets_run(be, &nt, BATCH, in, NULL, 0.5f, &got);
        if (s == FN_OK)
            s = nets_run(be, &nt, BATCH, NULL, u8, 0.5f, &got8);
        if (be)
            be->destroy(be);
        if (s != FN_OK) {
            fprintf(stderr, "%s: CUDA failed: %s: %s\n", label, fn_status_name(s), fn_last_error());
            test_failures++;
            continue;
        }
        double e = fmax(nets_compare(label, (fn_precision)p, &got, &want, 1),
                        nets_compare(label, (fn_precision)p, &got8, &want8, 1));
        o += snprintf(line + o, sizeof line - (size_t)o, "  %s %.1e", prec_name[p], e);
        nets_out_free(&got), nets_out_free(&got8);
    }
    printf("%s\n", line);
    nets_out_free(&want), nets_out_free(&want8);
    free(in), free(u8);
    net_free(&nt);
}
#endif

int main(int argc, char **argv)
{
    int code = parse_args(argc, argv);
    if (code >= 0)
        return code;
    SKIP_WITHOUT_CUDA();
#ifdef FN_WITH_CUDA
    printf("per case: worst FP32 error as a fraction of its tolerance, else the normwise error\n");
    for (int a = 0; a < ACT_COUNT; a++) {
        printf("activation %s:\n", net_act_name((net_act)a));
        run_case("conv", body_conv, a);
        run_case("conv_res", body_conv_res, a);
        run_case("affine", body_affine, a);
        run_case("add", body_add, a);
        run_case("act", body_act, a);
        run_case("linear", body_linear, a);
    }
    for (int v = 0; v < 5; v++)
        run_case("conv_shape", body_conv_shapes, v);
    for (int v = 0; v < 8; v++)
        run_case("pool", body_pool, v);
    run_case("shortcut", body_shortcut, 0);
    run_case("scale", body_scale, 0);
    run_case("scale", body_scale, 1);
    run_case("concat", body_concat, 0);
    return test_finish("test_cuda_ops");
#endif
}
