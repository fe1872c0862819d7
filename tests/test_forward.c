/* test_forward.c: the CPU backend against PyTorch.
 *
 * Every case in tests/fixtures/models/ (made by scripts/make_fixtures.py from
 * torchvision's and the reference layouts, computed in float64) is loaded from
 * its safetensors and run from float NCHW input and from uint8 NHWC input.
 * FeatureNorm of every block, logits, penultimate features and ReAct logits
 * must agree within 1e-4 relative. */
#include <dirent.h>

#include "featurenorm.h"
#include "json.h"
#include "npy_read.h"
#include "test.h"

#define RTOL 1e-4

/* Compares got (float, rows x cols) with want: |got - want| <= 1e-4 (|want| +
 * max |want| of the row). A logit near zero is the difference of large terms,
 * so its float32 error is relative to the row's scale, not to itself. */
static int compare(const char *what, const char *name, const float *got, const npy *want)
{
    size_t rows = (size_t)want->shape[0], cols = want->count / rows;
    double worst = 0;
    for (size_t r = 0; r < rows; r++) {
        double scale = 0;
        for (size_t c = 0; c < cols; c++)
            if (fabs(want->data[r * cols + c]) > scale)
                scale = fabs(want->data[r * cols + c]);
        for (size_t c = 0; c < cols; c++) {
            double w = want->data[r * cols + c], g = got[r * cols + c];
            double err = fabs(g - w) / (fabs(w) + scale + 1e-30);
            if (!(err <= worst))
                worst = err;
            if (!(err <= RTOL)) {
                fprintf(stderr, "%s: %s[%zu][%zu] = %.8g, PyTorch %.8g (rel. error %.2e)\n", name,
                        what, r, c, g, w, err);
                test_failures++;
                return 0;
            }
        }
    }
    printf("  %-10s max rel. error %.2e\n", what, worst);
    return 1;
}

static void load_npy(const char *dir, const char *file, npy *a)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    REQUIRE(npy_load(path, a) == 0);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *t = malloc(*len + 1);
    REQUIRE(fread(t, 1, *len, f) == *len);
    fclose(f);
    return t;
}

static void run_case(const char *dir, const char *name)
{
    char path[1100], weights[1100];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    size_t len;
    char *text = slurp(path, &len);
    json *meta;
    REQUIRE_OK(json_parse(text, len, path, &meta));
    printf("%s\n", name);

    fn_model_options o;
    fn_model_options_init(&o);
    o.arch = json_get(meta, "arch")->string;
    snprintf(weights, sizeof weights, "%s/model.safetensors", dir);
    o.weights = weights;
    o.backend = FN_BACKEND_CPU;
    o.threads = getenv("FN_TEST_THREADS") ? atoi(getenv("FN_TEST_THREADS")) : 0;
    o.input_size = (int)json_get(meta, "input_size")->number;
    for (int c = 0; c < 3; c++) {
        o.mean[c] = (float)json_at(json_get(meta, "mean"), (size_t)c)->number;
        o.std[c] = (float)json_at(json_get(meta, "std"), (size_t)c)->number;
    }
    const json *opts = json_get(meta, "options"), *pad = json_get(opts, "stem_padding");
    if (pad)
        o.stem_padding = (int)pad->number;
    fn_model *m;
    fn_status s = fn_model_load(&o, &m);
    if (s != FN_OK) {
        fprintf(stderr, "%s: load failed: %s\n", name, fn_last_error());
        test_failures++;
        json_free(meta);
        free(text);
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
    float *x = malloc(sizeof(float) * input.count);
    for (size_t i = 0; i < input.count; i++)
        x[i] = (float)input.data[i];
    float *g_norms = calloc(norms.count, sizeof(float)), *g_logits = calloc(logits.count, sizeof(float));
    float *g_feat = calloc(features.count, sizeof(float)), *g_react = calloc(react.count, sizeof(float));
    float *g_energy = calloc((size_t)n, sizeof(float));
    /* a clip of 0 (features mostly zero) is a degenerate ReAct: not compared */
    float clip = (float)json_get(meta, "react_clip")->number;
    fn_outputs out = {g_norms, g_logits, g_feat, NULL, NULL, NULL, g_energy,
                      clip > 0 ? g_react : NULL, NULL, clip};
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
            CHECK_MSG(test_close(g_energy[i], mx + log(sum), 1e-4, 1e-4), "%s: energy %d", name, i);
        }
        memset(g_norms, 0, sizeof(float) * norms.count);
        memset(g_logits, 0, sizeof(float) * logits.count);
        fn_outputs out8 = {.norms = g_norms, .logits = g_logits};
        REQUIRE_OK(fn_model_forward_u8(m, n, input_u8.bytes, &out8));
        compare("norms(u8)", name, g_norms, &norms);
        compare("logits(u8)", name, g_logits, &logits);
    }
    free(x), free(g_norms), free(g_logits), free(g_feat), free(g_react), free(g_energy);
    npy_free(&input), npy_free(&input_u8), npy_free(&norms), npy_free(&logits);
    npy_free(&features), npy_free(&react);
    fn_model_free(m);
    json_free(meta);
    free(text);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    const char *root = FN_FIXTURES "/models";
    DIR *d = opendir(root);
    REQUIRE(d);
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256)
        if (e->d_name[0] != '.')
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, compare_names);
    int ran = 0;
    for (int i = 0; i < n; i++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", root, names[i]);
        if (argc > 1 && strcmp(argv[1], names[i]) != 0)
            continue;
        /* architectures this build does not have are reported, not failed */
        char meta[1100];
        snprintf(meta, sizeof meta, "%s/meta.json", dir);
        size_t len;
        char *text = slurp(meta, &len);
        json *j;
        REQUIRE_OK(json_parse(text, len, meta, &j));
        int known = 0;
        for (int a = 0; a < fn_arch_count(); a++)
            known |= strcmp(fn_arch_name(a), json_get(j, "arch")->string) == 0;
        if (!known) {
            fprintf(stderr, "%s: architecture %s is not built in\n", names[i], json_get(j, "arch")->string);
            test_failures++;
        } else {
            run_case(dir, names[i]);
            ran++;
        }
        json_free(j);
        free(text);
        free(names[i]);
    }
    printf("%d fixture cases run\n", ran);
    return test_finish("test_forward");
}
