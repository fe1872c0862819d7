/* test_onnx.c: networks from ONNX files (tests/fixtures/onnx/, made by
 * scripts/make_onnx_fixtures.py; no Python runs here but convert_weights.py).
 *
 * - ResNet-18 (random weights) and the shared CIFAR ResNet-20 (real weights,
 *   BatchNorm kept, every weight external): the same norms, logits, features
 *   and block selection as the named architecture from safetensors, 1e-5.
 * - RegNetX-400MF, MobileNetV3, EfficientNet-B0, DenseNet-121 at reduced width
 *   and a VGG-like net: PyTorch forward-hook references of the blocks that
 *   --blocks auto chooses, 1e-4 row-scaled (tests/fixture_cases.h).
 * - Broken files: an unsupported op, a tensor of the wrong size, a cycle, every
 *   truncation of a file, short external data: clear errors, never a crash. */
#include <unistd.h>

#include "fixture_cases.h"
#include "model.h" /* the net itself: fusion is checked by counting ops */

#define ONNX_DIR FN_FIXTURES "/onnx"

static fn_model *load(const char *model, const char *blocks, int input_size, fn_status *status)
{
    fn_model_options o;
    fn_model_options_init(&o);
    o.model = model;
    o.blocks = blocks;
    o.input_size = input_size;
    o.backend = FN_BACKEND_CPU;
    o.max_batch = 16;
    fn_model *m = NULL;
    fn_status s = fn_model_load(&o, &m);
    if (status)
        *status = s;
    return s == FN_OK ? m : NULL;
}

static int count_ops(const fn_model *m, net_op_kind kind)
{
    int n = 0;
    for (int i = 0; i < m->net.n_ops; i++)
        n += m->net.ops[i].kind == kind;
    return n;
}

static void forward(fn_model *m, int n, const float *x, float **norms, float **logits, float **features)
{
    fn_model_info info;
    fn_model_get_info(m, &info);
    *norms = calloc((size_t)n * (size_t)info.num_blocks + 1, sizeof(float));
    *logits = calloc((size_t)n * (size_t)info.num_classes + 1, sizeof(float));
    *features = calloc((size_t)n * (size_t)info.feature_dim + 1, sizeof(float));
    fn_outputs out;
    fn_outputs_init(&out);
    out.norms = *norms, out.logits = *logits, out.features = *features;
    REQUIRE_OK(fn_model_forward(m, n, x, &out));
}

static double report(const char *what, const char *name, const float *got, const float *want, int rows,
                     int cols, double tol)
{
    double worst = compare_rows(what, name, got, want, rows, cols, NULL, tol);
    printf("  %-10s max rel. error %.2e\n", what, worst);
    return worst;
}

/* Block selection of both models on the same images: same block, same ratios. */
static void compare_selection(const char *name, fn_model *a, fn_model *b)
{
    fn_dataset *d;
    REQUIRE_OK(fn_dataset_open(FN_FIXTURES "/images", NULL, &d));
    fn_run_options ro;
    fn_run_options_init(&ro);
    ro.preset = FN_PRESET_CIFAR;
    fn_selection *sa, *sb;
    REQUIRE_OK(fn_select_block(a, d, &ro, &sa));
    REQUIRE_OK(fn_select_block(b, d, &ro, &sb));
    CHECK_MSG(sa->selected == sb->selected && sa->num_blocks == sb->num_blocks,
              "%s: selected block %d (named) vs %d (ONNX)", name, sa->selected, sb->selected);
    float ra[64], rb[64];
    for (int i = 0; i < sa->num_blocks && i < 64; i++)
        ra[i] = (float)sa->norm_ratio[i], rb[i] = (float)sb->norm_ratio[i];
    report("normratio", name, rb, ra, 1, sa->num_blocks < 64 ? sa->num_blocks : 64, 1e-5);
    printf("  selected   %s = %s (of %d, %zu images)\n", sa->block_names[sa->selected],
           sb->block_names[sb->selected], sa->num_blocks, sa->images);
    fn_selection_free(sa), fn_selection_free(sb);
    fn_dataset_free(d);
}

/* The ONNX file against the named architecture with the same weights. */
static void compare_named(const char *name, const char *onnx, const char *arch, const char *weights,
                          const char *input_npy)
{
    printf("%s: ONNX vs --arch %s\n", name, arch);
    fn_model_options o;
    fn_model_options_init(&o);
    o.arch = arch, o.weights = weights, o.backend = FN_BACKEND_CPU, o.max_batch = 16;
    npy input;
    REQUIRE(npy_load(input_npy, &input) == 0);
    o.input_size = (int)input.shape[2];
    fn_model *named, *m;
    REQUIRE_OK(fn_model_load(&o, &named));
    fn_status s;
    m = load(onnx, NULL, o.input_size, &s);
    REQUIRE_OK(s);
    fn_model_info ia, ib;
    fn_model_get_info(named, &ia), fn_model_get_info(m, &ib);
    REQUIRE(ia.num_blocks == ib.num_blocks && ia.num_classes == ib.num_classes && ia.feature_dim == ib.feature_dim);
    for (int b = 0; b < ia.num_blocks; b++) {
        int c1, h1, w1, c2, h2, w2;
        fn_model_block_shape(named, b, &c1, &h1, &w1), fn_model_block_shape(m, b, &c2, &h2, &w2);
        CHECK_MSG(c1 == c2 && h1 == h2 && w1 == w2, "%s: block %d %s vs %s", name, b,
                  fn_model_block_name(named, b), fn_model_block_name(m, b));
    }
    /* BatchNorm folded, residual adds and activations fused: the same op list */
    CHECK_MSG(named->net.n_ops == m->net.n_ops, "%s: %d ops from ONNX, %d named", name, m->net.n_ops,
              named->net.n_ops);
    int n = (int)input.shape[0];
    float *x = npy_floats(&input), *na, *la, *fa, *nb, *lb, *fb;
    forward(named, n, x, &na, &la, &fa);
    forward(m, n, x, &nb, &lb, &fb);
    report("norms", name, nb, na, n, ia.num_blocks, 1e-5);
    report("logits", name, lb, la, n, ia.num_classes, 1e-5);
    report("features", name, fb, fa, n, ia.feature_dim, 1e-5);
    compare_selection(name, named, m);
    free(x), free(na), free(la), free(fa), free(nb), free(lb), free(fb);
    npy_free(&input);
    fn_model_free(named), fn_model_free(m);
}

/* A reduced-width torchvision layout against PyTorch's float64 forward hooks. */
static void compare_pytorch(const char *name)
{
    char dir[600], model[700], path[800];
    snprintf(dir, sizeof dir, "%s/%s", ONNX_DIR, name);
    snprintf(model, sizeof model, "%s/model.onnx", dir);
    snprintf(path, sizeof path, "%s/meta.json", dir);
    size_t len;
    char *text = slurp(path, &len);
    json *meta;
    REQUIRE_OK(json_parse(text, len, path, &meta));
    printf("%s: ONNX vs PyTorch\n", name);
    fn_status s;
    const json *named = json_get(meta, "blocks_arg");
    fn_model *m = load(model, named ? named->string : "auto", (int)json_get(meta, "input_size")->number, &s);
    CHECK_MSG(s == FN_OK, "%s: %s", name, fn_last_error());
    if (m) {
        fn_model_info info;
        fn_model_get_info(m, &info);
        /* every activation fused into the op before it (ReLU, ReLU6, HardSwish and SiLU gates,
         * sigmoid of squeeze-excitation, LeakyRelu after a standalone add) */
        CHECK_MSG(count_ops(m, OP_ACT) == 0, "%s: %d activations left unfused", name, count_ops(m, OP_ACT));
        printf("  %d ops: %d conv, %d affine, %d add, %d scale, %d concat\n", m->net.n_ops, count_ops(m, OP_CONV),
               count_ops(m, OP_AFFINE), count_ops(m, OP_ADD), count_ops(m, OP_SCALE), count_ops(m, OP_CONCAT));
        const json *blocks = json_get(meta, "blocks"), *shapes = json_get(meta, "block_shapes");
        CHECK_MSG(info.num_blocks == (int)blocks->count, "%s: %d blocks, PyTorch %zu", name, info.num_blocks,
                  blocks->count);
        for (int b = 0; b < info.num_blocks && b < (int)blocks->count; b++) {
            int c, h, w;
            fn_model_block_shape(m, b, &c, &h, &w);
            const json *sh = json_at(shapes, (size_t)b);
            CHECK_MSG(c == json_at(sh, 0)->number && h == json_at(sh, 1)->number && w == json_at(sh, 2)->number,
                      "%s: block %d (%s) is %d x %d x %d, PyTorch's %s differs", name, b,
                      fn_model_block_name(m, b), c, h, w, json_at(blocks, (size_t)b)->string);
        }
        npy input, norms, logits, features;
        load_npy(dir, "input.npy", &input), load_npy(dir, "norms.npy", &norms);
        load_npy(dir, "logits.npy", &logits), load_npy(dir, "features.npy", &features);
        int n = (int)input.shape[0];
        float *x = npy_floats(&input), *wn = npy_floats(&norms), *wl = npy_floats(&logits), *wf = npy_floats(&features);
        float *gn, *gl, *gf;
        if (info.num_blocks == (int)blocks->count && info.feature_dim == (int)features.shape[1]) {
            forward(m, n, x, &gn, &gl, &gf);
            report("norms", name, gn, wn, n, info.num_blocks, 1e-4);
            report("logits", name, gl, wl, n, info.num_classes, 1e-4);
            report("features", name, gf, wf, n, info.feature_dim, 1e-4);
            free(gn), free(gl), free(gf);
        }
        free(x), free(wn), free(wl), free(wf);
        npy_free(&input), npy_free(&norms), npy_free(&logits), npy_free(&features);
        fn_model_free(m);
    }
    json_free(meta);
    free(text);
}

/* The shared ResNet-20: BatchNorm nodes and external data in the safetensors
 * that convert_weights.py writes (byte offsets fixed at fixture time). */
static void resnet20_real(void)
{
    char th[1024], cmd[4096], path[800];
    snprintf(th, sizeof th, "%s/weights/cifar10/resnet20-12fca82f.th", FN_SHARED_DATA);
    if (!test_exists(th) || !test_exists(ONNX_DIR "/resnet20_real/model.onnx") || system("python3 -c '' 2>/dev/null")) {
        printf("SKIP: resnet20_real: needs %s, its fixture and python3\n", th);
        return;
    }
    REQUIRE(system("mkdir -p onnx_resnet20") == 0);
    snprintf(cmd, sizeof cmd, "cp '%s/resnet20_real/model.onnx' onnx_resnet20/ && python3 '%s/scripts/convert_weights.py' "
             "'%s' onnx_resnet20/resnet20_cifar.safetensors > /dev/null", ONNX_DIR, FN_SOURCE_DIR, th);
    REQUIRE(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/models/resnet20_cifar/input.npy", FN_FIXTURES);
    compare_named("resnet20_real", "onnx_resnet20/model.onnx", "resnet20_cifar",
                  "onnx_resnet20/resnet20_cifar.safetensors", path);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f && fwrite(p, 1, n, f) == n);
    fclose(f);
}

static void broken_files(void)
{
    printf("broken files\n");
    fn_status s;
    CHECK(!load(ONNX_DIR "/bad_op/model.onnx", NULL, 0, &s));
    CHECK_MSG(s == FN_ERR_FORMAT && strstr(fn_last_error(), "op Tanh") && strstr(fn_last_error(), "supported: Conv"),
              "unsupported op: %s", fn_last_error());
    printf("  %s\n", fn_last_error());
    CHECK(!load(ONNX_DIR "/bad_size/model.onnx", NULL, 0, &s));
    CHECK_MSG(s == FN_ERR_FORMAT && strstr(fn_last_error(), "bad_size/model.onnx: tensor") &&
                  strstr(fn_last_error(), "its shape needs"), "wrong size: %s", fn_last_error());
    printf("  %s\n", fn_last_error());
    CHECK(!load(ONNX_DIR "/bad_cycle/model.onnx", NULL, 0, &s));
    CHECK_MSG(s == FN_ERR_FORMAT && strstr(fn_last_error(), "cycle"), "cycle: %s", fn_last_error());
    printf("  %s\n", fn_last_error());
    /* the fold's error path once read a freed constant (ASan builds catch it) */
    CHECK(!load(ONNX_DIR "/bad_reshape/model.onnx", NULL, 0, &s));
    CHECK_MSG(s == FN_ERR_SHAPE && strstr(fn_last_error(), "bad_reshape/model.onnx") &&
                  strstr(fn_last_error(), "changes 6 elements into 4"), "bad reshape: %s", fn_last_error());
    printf("  %s\n", fn_last_error());
    CHECK(!load("no/such/model.onnx", NULL, 0, &s));
    CHECK_MSG(s == FN_ERR_IO && strstr(fn_last_error(), "no/such/model.onnx"), "missing: %s", fn_last_error());

    /* every truncation of a model: an error naming the file, never a crash */
    size_t len;
    char *bytes = slurp(ONNX_DIR "/regnet_x_400mf/model.onnx", &len);
    int errors = 0, tried = 0;
    for (size_t cut = 0; cut < len; cut += cut < 4096 ? 61 : 4099) {
        write_bytes("truncated.onnx", bytes, cut);
        fn_model *m = load("truncated.onnx", NULL, 0, &s);
        tried++;
        errors += !m && s == FN_ERR_FORMAT && strstr(fn_last_error(), "truncated.onnx") != NULL;
        if (m)
            fprintf(stderr, "truncated at %zu of %zu bytes: loaded\n", cut, len);
        fn_model_free(m);
    }
    CHECK_MSG(errors == tried, "%d of %d truncations failed cleanly", errors, tried);
    write_bytes("truncated.onnx", bytes, len / 2);
    load("truncated.onnx", NULL, 0, &s);
    printf("  %s (%d truncations)\n", fn_last_error(), tried);
    free(bytes);

    /* external data shorter than the model says */
    REQUIRE(system("mkdir -p onnx_short && cp '" ONNX_DIR "/tiny/model.onnx' onnx_short/") == 0);
    bytes = slurp(ONNX_DIR "/tiny/weights.bin", &len);
    write_bytes("onnx_short/weights.bin", bytes, len - 8);
    free(bytes);
    CHECK(!load("onnx_short/model.onnx", NULL, 0, &s));
    CHECK_MSG(s == FN_ERR_FORMAT && strstr(fn_last_error(), "weights.bin") && strstr(fn_last_error(), "too few"),
              "short external data: %s", fn_last_error());
    printf("  %s\n", fn_last_error());
}

static void blocks_and_sizes(void)
{
    printf("blocks and input sizes\n");
    fn_status s;
    const char *tiny = ONNX_DIR "/tiny/model.onnx";
    fn_model *autom = load(tiny, NULL, 0, &s), *all = load(tiny, "all", 0, &s);
    REQUIRE(autom && all);
    fn_model_info ia, ib;
    fn_model_get_info(autom, &ia), fn_model_get_info(all, &ib);
    CHECK(ia.num_blocks == 2 && ib.num_blocks > ia.num_blocks && ia.input_size == 16);
    /* the auto blocks by name give the same columns */
    char names[600];
    snprintf(names, sizeof names, "%s,%s", fn_model_block_name(autom, 1), fn_model_block_name(autom, 0));
    fn_model *named = load(tiny, names, 0, &s);
    REQUIRE_OK(s);
    CHECK(fn_model_find_block(named, fn_model_block_name(autom, 0)) == 0);
    /* a block that a conv would otherwise absorb: fusion steps aside */
    fn_model *inner = load(tiny, "/conv1/Conv", 0, &s);
    CHECK_MSG(s == FN_OK && inner, "a node name as a block: %s", fn_last_error());
    fn_model_free(inner);
    CHECK(!load(tiny, "nothing_like_this", 0, &s));
    CHECK_MSG(s == FN_ERR_NOT_FOUND && strstr(fn_last_error(), "nothing_like_this"), "%s", fn_last_error());
    CHECK(!load(tiny, NULL, 32, &s));
    CHECK_MSG(s == FN_ERR_SHAPE && strstr(fn_last_error(), "fixed at 16"), "input size: %s", fn_last_error());
    printf("  %s\n", fn_last_error());
    fn_model_options o;
    fn_model_options_init(&o);
    o.model = tiny, o.arch = "resnet18";
    fn_model *both;
    CHECK(fn_model_load(&o, &both) == FN_ERR_INVALID_ARG && !both);
    fn_model_free(autom), fn_model_free(all), fn_model_free(named);
}

int main(void)
{
    fn_status s;
    fn_model *probe = load(ONNX_DIR "/tiny/model.onnx", NULL, 0, &s);
    if (s == FN_ERR_UNAVAILABLE)
        SKIP("%s", fn_last_error());
    REQUIRE_OK(s);
    fn_model_free(probe);

    compare_named("resnet18", ONNX_DIR "/resnet18/model.onnx", "resnet18",
                  FN_FIXTURES "/models/resnet18/model.safetensors", FN_FIXTURES "/models/resnet18/input.npy");
    resnet20_real();
    static const char *const cases[] = {"regnet_x_400mf", "mobilenet_v3", "efficientnet_b0", "densenet121",
                                        "misc", "tiny"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        compare_pytorch(cases[i]);
    broken_files();
    blocks_and_sizes();
    return test_finish("test_onnx");
}
