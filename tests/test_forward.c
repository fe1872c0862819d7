/* test_forward.c: the CPU backend against PyTorch.
 *
 * Every case in tests/fixtures/models/ (made by scripts/make_fixtures.py from
 * torchvision's and the reference layouts, computed in float64) is loaded from
 * its safetensors and run from float NCHW input and from uint8 NHWC input.
 * FeatureNorm of every block, logits, penultimate features and ReAct logits
 * must agree within 1e-4 relative. */
#include "fixture_cases.h"

#define RTOL 1e-4

/* Compares with the float64 oracle; prints the largest error. */
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
    o.threads = getenv("FN_TEST_THREADS") ? atoi(getenv("FN_TEST_THREADS")) : 0;
    printf("%s\n", name);
    fn_model *m;
    fn_status s = fn_model_load(&o, &m);
    if (s != FN_OK) {
        fprintf(stderr, "%s: load failed: %s\n", name, fn_last_error());
        test_failures++;
        return;
    }
    fn_model_info info;
    fn_model_get_info(m, &info);
    const json *blocks = json_get(meta, "blocks"), *shapes = json_get(meta, "block_shapes");
    CHECK_MSG(info.num_blocks == (int)blocks->count, "%s: %d blocks, PyTorch %zu", name,
              info.num_blocks, blocks->count);
    for (int b = 0; b < info.num_blocks && b < (int)blocks->count; b++) {
        int c, h, w;
        fn_model_block_shape(m, b, &c, &h, &w);
        const json *sh = json_at(shapes, (size_t)b);
        CHECK_MSG(strcmp(fn_model_block_name(m, b), json_at(blocks, (size_t)b)->string) == 0 &&
                      c == json_at(sh, 0)->number && h == json_at(sh, 1)->number &&
                      w == json_at(sh, 2)->number,
                  "%s: block %d is %s %dx%dx%d, PyTorch %s", name, b, fn_model_block_name(m, b), c,
                  h, w, json_at(blocks, (size_t)b)->string);
    }
    npy input, input_u8, norms, logits, features, react;
    load_npy(dir, "input.npy", &input);
    load_npy(dir, "input_u8.npy", &input_u8);
    load_npy(dir, "norms.npy", &norms);
    load_npy(dir, "logits.npy", &logits);
    load_npy(dir, "features.npy", &features);
    load_npy(dir, "react_logits.npy", &react);
    int n = (int)input.shape[0];
    float *x = npy_floats(&input);
    float *g_norms = calloc(norms.count, sizeof(float)), *g_logits = calloc(logits.count, sizeof(float));
    float *g_feat = calloc(features.count, sizeof(float)), *g_react = calloc(react.count, sizeof(float));
    const int S = fn_score_count(), E = fn_score_find("energy");
    float *g_scores = calloc((size_t)n * S, sizeof(float));
    /* a clip of 0 (features mostly zero) is a degenerate ReAct: not compared */
    float clip = (float)json_get(meta, "react_clip")->number;
    fn_outputs out;
    fn_outputs_init(&out);
    out.norms = g_norms, out.logits = g_logits, out.features = g_feat, out.scores = g_scores;
    out.react_logits = clip > 0 ? g_react : NULL;
    out.react_clip = clip > 0 ? clip : 0;
    if (info.num_blocks == (int)blocks->count) {
        REQUIRE_OK(fn_model_forward(m, n, x, &out));
        compare("norms", name, g_norms, &norms);
        compare("logits", name, g_logits, &logits);
        compare("features", name, g_feat, &features);
        if (clip > 0)
            compare("react", name, g_react, &react);
        /* energy = logsumexp(logits) */
        for (int i = 0; i < n; i++) {
            double mx = -INFINITY, sum = 0;
            size_t K = (size_t)info.num_classes;
            for (size_t k = 0; k < K; k++)
                mx = fmax(mx, logits.data[i * K + k]);
            for (size_t k = 0; k < K; k++)
                sum += exp(logits.data[i * K + k] - mx);
            CHECK_MSG(test_close(g_scores[(size_t)i * S + E], mx + log(sum), 1e-4, 1e-4), "%s: energy %d", name, i);
        }
        memset(g_norms, 0, sizeof(float) * norms.count);
        memset(g_logits, 0, sizeof(float) * logits.count);
        fn_outputs out8 = {.norms = g_norms, .logits = g_logits};
        REQUIRE_OK(fn_model_forward_u8(m, n, input_u8.bytes, &out8));
        compare("norms(u8)", name, g_norms, &norms);
        compare("logits(u8)", name, g_logits, &logits);
        /* fn_model_time: the same batch through the slots, checked arguments */
        double sec = -1;
        REQUIRE_OK(fn_model_time(m, n, input_u8.bytes, 3, &sec));
        CHECK_MSG(sec > 0, "%s: fn_model_time gave %g s", name, sec);
        CHECK_MSG(fn_model_time(m, n, input_u8.bytes, 0, &sec) == FN_ERR_SHAPE, "%s: 0 batches accepted", name);
        CHECK_MSG(fn_model_time(m, 0, input_u8.bytes, 1, &sec) == FN_ERR_SHAPE, "%s: 0 images accepted", name);
        /* the slots now hold the timed images: the next forward must not care */
        REQUIRE_OK(fn_model_forward_u8(m, n, input_u8.bytes, &out8));
        compare("logits(u8, after timing)", name, g_logits, &logits);
    }
    free(x), free(g_norms), free(g_logits), free(g_feat), free(g_react), free(g_scores);
    npy_free(&input), npy_free(&input_u8), npy_free(&norms), npy_free(&logits);
    npy_free(&features), npy_free(&react);
    fn_model_free(m);
}

int main(int argc, char **argv)
{
    for_each_case(argc > 1 ? argv[1] : NULL, run_case);
    return test_finish("test_forward");
}
