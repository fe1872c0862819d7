/* test_real.c: the real CIFAR-10 ResNet-20 and ResNet-56 (akamaster weights in
 * ../shared/data, converted here with scripts/convert_weights.py) on the 100
 * lossless CIFAR-10 test PNGs, through the whole pipeline (folder -> decode ->
 * forward -> norms), against PyTorch's float64 values in tests/fixtures/real/
 * (scripts/make_fixtures.py --shared). Skips when the data or python3 is absent. */
#include <stdlib.h>

#include <stb/stb_image.h>

#include "fixture_cases.h"

/* Compares with PyTorch's float64 values within 1e-4, row-scaled. */
static void compare(const char *what, const char *arch, const float *got, const npy *want)
{
    float *w = npy_floats(want);
    int rows = (int)want->shape[0];
    double worst = compare_rows(what, arch, got, w, rows, (int)(want->count / (size_t)rows), NULL, 1e-4);
    printf("  %-8s max rel. error %.2e\n", what, worst);
    free(w);
}

static void run(const char *arch, const char *th)
{
    char src[1024], st[256], cmd[2048], dir[512];
    snprintf(src, sizeof src, "%s/weights/cifar10/%s", FN_SHARED_DATA, th);
    snprintf(st, sizeof st, "%s.safetensors", arch);
    snprintf(cmd, sizeof cmd, "python3 '%s/scripts/convert_weights.py' '%s' '%s' > /dev/null",
             FN_SOURCE_DIR, src, st);
    if (!test_exists(st))
        REQUIRE(system(cmd) == 0);
    printf("%s (%s)\n", arch, th);

    fn_model_options o;
    fn_model_options_init(&o);
    o.arch = arch;
    o.weights = st;
    o.backend = FN_BACKEND_CPU;
    o.max_batch = 100;
    fn_model *m;
    REQUIRE_OK(fn_model_load(&o, &m));
    snprintf(dir, sizeof dir, "%s/real/%s", FN_FIXTURES, arch);
    npy norms, logits, labels;
    char path[1100];
    load_npy(dir, "norms.npy", &norms);
    load_npy(dir, "logits.npy", &logits);
    load_npy(dir, "labels.npy", &labels);

    /* the folder through the pipeline: FeatureNorm of every block */
    fn_dataset *d;
    snprintf(path, sizeof path, "%s/cifar10-lossless/png", FN_SHARED_DATA);
    REQUIRE_OK(fn_dataset_open(path, NULL, &d));
    REQUIRE(fn_dataset_size(d) == 100);
    fn_run_options ro;
    fn_run_options_init(&ro);
    ro.batch = 32;
    fn_scores *s;
    REQUIRE_OK(fn_score_dataset(m, d, &ro, &s));
    REQUIRE(s->n == 100);
    compare("norms", arch, s->norms, &norms);
    int correct = 0;
    for (size_t i = 0; i < 100; i++)
        correct += s->pred[i] == (int)labels.data[i];
    printf("  accuracy %d%% on the 100 lossless test images\n", correct);
    CHECK_MSG(correct >= 90, "%s: accuracy %d%%", arch, correct);

    /* the logits, from the same pixels in one batch */
    static unsigned char images[100 * 32 * 32 * 3];
    for (size_t i = 0; i < 100; i++) {
        int w, h, c;
        unsigned char *px = stbi_load(fn_dataset_item_name(d, i), &w, &h, &c, 3);
        REQUIRE(px && w == 32 && h == 32);
        memcpy(images + i * 3072, px, 3072);
        stbi_image_free(px);
    }
    float *got = malloc(sizeof(float) * 100 * 10), *got_norms = malloc(sizeof(float) * 100 * 27);
    fn_outputs out = {.norms = got_norms, .logits = got};
    REQUIRE_OK(fn_model_forward_u8(m, 100, images, &out));
    compare("logits", arch, got, &logits);

    /* the same images as CIFAR binary records give the same rows */
    fn_dataset *bin;
    snprintf(path, sizeof path, "%s/cifar10-lossless/test_batch_100.bin", FN_SHARED_DATA);
    REQUIRE_OK(fn_dataset_open(path, NULL, &bin));
    fn_scores *sb;
    REQUIRE_OK(fn_score_dataset(m, bin, &ro, &sb));
    REQUIRE(sb->n == 100);
    CHECK(memcmp(sb->norms, s->norms, sizeof(float) * 100 * (size_t)s->num_blocks) == 0);
    for (size_t i = 0; i < 100; i++)
        CHECK(fn_dataset_label(bin, i) == (int)labels.data[i]);
    fn_scores_free(sb);
    fn_dataset_free(bin);
    free(got), free(got_norms);
    fn_scores_free(s);
    fn_dataset_free(d);
    npy_free(&norms), npy_free(&logits), npy_free(&labels);
    fn_model_free(m);
}

int main(void)
{
    if (!test_exists(FN_SHARED_DATA "/weights/cifar10/resnet20-12fca82f.th"))
        SKIP("no real data at %s (see ../shared/data/README.md)", FN_SHARED_DATA);
    if (system("python3 -c 'import sys' > /dev/null 2>&1") != 0)
        SKIP("python3 is needed to convert the .th checkpoints (scripts/convert_weights.py)");
    run("resnet20_cifar", "resnet20-12fca82f.th");
    run("resnet56_cifar", "resnet56-4bfd9763.th");
    return test_finish("test_real");
}
