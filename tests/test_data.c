/* test_data.c: datasets (folders, list files, CIFAR binary), Jigsaw, the
 * decode pipeline (unreadable files skipped or fatal), and scoring a dataset
 * through the public API against direct forward passes. */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include "dataset.h"
#include "featurenorm.h"
#include "jigsaw.h"
#include "test.h"

static void write_png(const char *path, int w, int h, int seed)
{
    unsigned char *px = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++)
        px[i] = (unsigned char)((i * 31 + seed * 97) % 251);
    REQUIRE(stbi_write_png(path, w, h, 3, px, w * 3));
    free(px);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    fputs(text, f);
    fclose(f);
}

/* ---- Jigsaw ------------------------------------------------------------- */

static void jigsaw(void)
{
    const int S = 32, tile = 10;
    uint8_t src[32 * 32 * 3], dst[32 * 32 * 3], again[32 * 32 * 3];
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int c = 0; c < 3; c++) /* every pixel names its tile */
                src[(y * S + x) * 3 + c] = (uint8_t)(y < 30 && x < 30 ? 1 + (y / tile) * 3 + x / tile : 200);
    int identity = 0, differ = 0;
    for (uint64_t index = 0; index < 200; index++) {
        fn_jigsaw(src, dst, 1, S, 3, 7, index);
        int seen[10] = {0};
        for (int ty = 0; ty < 3; ty++)
            for (int tx = 0; tx < 3; tx++) {
                uint8_t v = dst[(ty * tile * S + tx * tile) * 3];
                /* a tile moves whole: every pixel of the destination tile agrees */
                for (int y = 0; y < tile; y++)
                    for (int x = 0; x < tile; x++)
                        for (int c = 0; c < 3; c++)
                            CHECK(dst[((ty * tile + y) * S + tx * tile + x) * 3 + c] == v);
                CHECK(v >= 1 && v <= 9);
                seen[v]++;
            }
        for (int t = 1; t <= 9; t++)
            CHECK_MSG(seen[t] == 1, "index %llu: tile %d placed %d times", (unsigned long long)index, t, seen[t]);
        for (int y = 0; y < S; y++) /* the 2-pixel border outside the grid is zero */
            for (int x = 0; x < S; x++)
                if (y >= 30 || x >= 30)
                    CHECK(dst[(y * S + x) * 3] == 0);
        fn_jigsaw(src, again, 1, S, 3, 7, index);
        CHECK(memcmp(dst, again, sizeof dst) == 0); /* the same seed and index repeat */
        fn_jigsaw(src, again, 1, S, 3, 8, index);
        differ += memcmp(dst, again, sizeof dst) != 0;
        int perm[9];
        jigsaw_permutation(7, index, perm);
        int id = 1;
        for (int i = 0; i < 9; i++)
            id &= perm[i] == i;
        identity += id;
    }
    CHECK_MSG(differ > 190, "another seed changed only %d of 200 permutations", differ);
    CHECK(identity <= 2); /* 1 in 9! */
    /* a batch equals its images one by one */
    uint8_t batch[2 * 32 * 32 * 3], out[2 * 32 * 32 * 3];
    memcpy(batch, src, sizeof src);
    memcpy(batch + sizeof src, src, sizeof src);
    fn_jigsaw(batch, out, 2, S, 3, 5, 40);
    fn_jigsaw(src, dst, 1, S, 3, 5, 41);
    CHECK(memcmp(out + sizeof src, dst, sizeof dst) == 0);
    /* 224 input: tiles of 74, 2-pixel border */
    static uint8_t big[224 * 224 * 3], bigout[224 * 224 * 3];
    memset(big, 9, sizeof big);
    fn_jigsaw(big, bigout, 1, 224, 3, 1, 0);
    CHECK(bigout[(221 * 224 + 221) * 3] == 9 && bigout[(222 * 224 + 5) * 3] == 0 && bigout[(5 * 224 + 223) * 3] == 0);
}

/* ---- datasets ------------------------------------------------------------ */

static void datasets(void)
{
    mkdir("ds", 0755);
    mkdir("ds/b_class", 0755);
    mkdir("ds/a_class", 0755);
    mkdir("ds/.hidden", 0755);
    write_png("ds/b_class/2.png", 8, 8, 1);
    write_png("ds/b_class/1.png", 8, 8, 2);
    write_png("ds/a_class/z.png", 8, 8, 3);
    write_png("ds/.hidden/x.png", 8, 8, 4);
    write_text("ds/README.md", "not an image");
    fn_dataset *d;
    fn_dataset_options o;
    fn_dataset_options_init(&o);
    o.labels = 1;
    REQUIRE_OK(fn_dataset_open("ds", &o, &d));
    CHECK(fn_dataset_size(d) == 3);
    CHECK(strcmp(fn_dataset_item_name(d, 0), "ds/a_class/z.png") == 0);
    CHECK(strcmp(fn_dataset_item_name(d, 2), "ds/b_class/2.png") == 0);
    CHECK(fn_dataset_label(d, 0) == 0 && fn_dataset_label(d, 1) == 1 && fn_dataset_label(d, 2) == 1);
    fn_dataset_free(d);
    o.labels = 0;
    o.limit = 1;
    o.every = 2;
    REQUIRE_OK(fn_dataset_open("ds", &o, &d));
    CHECK(fn_dataset_size(d) == 1 && fn_dataset_label(d, 0) == -1);
    fn_dataset_free(d);

    write_text("ds/list.txt", "# comment\nb_class/1.png 4\n\n/abs/path/img.png\na_class/z.png   7\n");
    REQUIRE_OK(fn_dataset_open("ds/list.txt", NULL, &d));
    CHECK(fn_dataset_size(d) == 3);
    CHECK(strcmp(fn_dataset_item_name(d, 0), "ds/b_class/1.png") == 0 && fn_dataset_label(d, 0) == 4);
    CHECK(strcmp(fn_dataset_item_name(d, 1), "/abs/path/img.png") == 0 && fn_dataset_label(d, 1) == -1);
    CHECK(fn_dataset_label(d, 2) == 7);
    fn_dataset_free(d);

    /* CIFAR-10 binary: label byte + R, G, B planes */
    FILE *f = fopen("ds/batch.bin", "wb");
    for (int r = 0; r < 5; r++) {
        fputc(r, f);
        for (int i = 0; i < 3072; i++)
            fputc((i / 1024) * 50 + r, f);
    }
    fclose(f);
    REQUIRE_OK(fn_dataset_open("ds/batch.bin", NULL, &d));
    CHECK(fn_dataset_size(d) == 5 && fn_dataset_label(d, 3) == 3);
    CHECK(strcmp(fn_dataset_item_name(d, 3), "ds/batch.bin#3") == 0);
    fn_dataset_free(d);
    f = fopen("ds/short.bin", "wb");
    fputs("abc", f);
    fclose(f);
    CHECK_FAILS(fn_dataset_open("ds/short.bin", NULL, &d), FN_ERR_FORMAT, "whole number of CIFAR records");

    mkdir("empty", 0755);
    CHECK_FAILS(fn_dataset_open("empty", NULL, &d), FN_ERR_EMPTY, "no images found");
    CHECK_FAILS(fn_dataset_open("no/such/dir", NULL, &d), FN_ERR_IO, "no/such/dir");
    CHECK_FAILS(fn_dataset_open("ds/README.md", NULL, &d), FN_ERR_INVALID_ARG, "ds/README.md: not a folder");
}

/* ---- hostile inputs (issue #13) ------------------------------------------ */

static void write_cifar(const char *path, int records, int first_label)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    for (int r = 0; r < records; r++) {
        fputc(first_label + r, f);
        for (int i = 0; i < 3072; i++)
            fputc(i % 251, f);
    }
    fclose(f);
}

static void hostile_datasets(void)
{
    fn_dataset *d;
    /* Two links back to their own folder: listed once, not 2^64 times, and
     * not an error (a loop used to fail the whole dataset). */
    mkdir("loop", 0755);
    write_png("loop/x.png", 8, 8, 5);
    unlink("loop/a"), unlink("loop/b");
    REQUIRE(symlink(".", "loop/a") == 0 && symlink(".", "loop/b") == 0);
    mkdir("loop/sub", 0755);
    write_png("loop/sub/y.png", 8, 8, 6);
    unlink("loop/sub/up");
    REQUIRE(symlink("..", "loop/sub/up") == 0);
    REQUIRE_OK(fn_dataset_open("loop", NULL, &d));
    CHECK_MSG(fn_dataset_size(d) == 2, "%zu items", fn_dataset_size(d));
    fn_dataset_free(d);

    /* List entries that are not regular files are skipped when read, without
     * reading /dev/zero to its (non-existent) end or blocking on a FIFO. */
    unlink("fifo.png");
    REQUIRE(mkfifo("fifo.png", 0644) == 0);
    write_text("specials.txt", "/dev/zero\nfifo.png\nds\n");
    REQUIRE_OK(fn_dataset_open("specials.txt", NULL, &d));
    REQUIRE(fn_dataset_size(d) == 3);
    image_rgb im = {0};
    CHECK_FAILS(dataset_read(d, 0, &im), FN_ERR_IO, "/dev/zero: not a regular file");
    CHECK_FAILS(dataset_read(d, 1, &im), FN_ERR_IO, "fifo.png: not a regular file (a FIFO)");
    CHECK_FAILS(dataset_read(d, 2, &im), FN_ERR_IO, "is a directory");
    fn_dataset_free(d);
    /* A FIFO named .bin: refused at open, not waited on. */
    unlink("fifo.bin");
    REQUIRE(mkfifo("fifo.bin", 0644) == 0);
    CHECK_FAILS(fn_dataset_open("fifo.bin", NULL, &d), FN_ERR_IO, "not a regular file");

    /* CIFAR folders: all data_batch_*.bin (70 here, once cut to 64), and a
     * folder with test_batch.bin alone, as the header documents. */
    mkdir("cifar70", 0755);
    char p[64];
    for (int i = 1; i <= 70; i++) {
        snprintf(p, sizeof p, "cifar70/data_batch_%d.bin", i);
        write_cifar(p, 1, i % 10);
    }
    write_cifar("cifar70/test_batch.bin", 2, 0);
    REQUIRE_OK(fn_dataset_open("cifar70", NULL, &d));
    CHECK_MSG(fn_dataset_size(d) == 70, "%zu records", fn_dataset_size(d));
    fn_dataset_free(d);
    mkdir("cifar_test", 0755);
    write_cifar("cifar_test/test_batch.bin", 3, 4);
    REQUIRE_OK(fn_dataset_open("cifar_test", NULL, &d));
    CHECK(fn_dataset_size(d) == 3 && fn_dataset_label(d, 2) == 6);
    fn_dataset_free(d);
}

/* ---- scoring a dataset ---------------------------------------------------- */

static fn_model *load(void)
{
    fn_model_options o;
    fn_model_options_init(&o);
    o.arch = "resnet20_cifar";
    o.weights = FN_FIXTURES "/models/resnet20_cifar/model.safetensors";
    o.backend = FN_BACKEND_CPU;
    o.max_batch = 8;
    fn_model *m;
    REQUIRE_OK(fn_model_load(&o, &m));
    return m;
}

static void scoring(void)
{
    mkdir("mixed", 0755);
    char path[64];
    for (int i = 0; i < 11; i++) { /* 32x32: no resampling, so rows can be checked exactly */
        snprintf(path, sizeof path, "mixed/img%02d.png", i);
        write_png(path, 32, 32, i);
    }
    write_png("mixed/big.png", 45, 37, 99); /* resized */
    write_png("mixed/one.png", 1, 1, 5);    /* upscaled */
    write_text("mixed/text.png", "this is not a PNG");
    write_text("mixed/zero.jpg", "");
    fn_model *m = load();
    fn_dataset *d;
    REQUIRE_OK(fn_dataset_open("mixed", NULL, &d));
    CHECK(fn_dataset_size(d) == 15);
    fn_run_options ro;
    fn_run_options_init(&ro);
    ro.batch = 4;
    ro.block = 8;
    ro.react_clip = 1.0f;
    fn_scores *s;
    REQUIRE_OK(fn_score_dataset(m, d, &ro, &s));
    CHECK(s->n == 13 && s->skipped == 2);
    const float *react = fn_scores_column(s, "react_energy"), *selected = fn_scores_column(s, "fn_selected");
    const float *energy_col = fn_scores_column(s, "energy"), *msp_col = fn_scores_column(s, "msp");
    CHECK(s->num_blocks == 9 && react && selected && energy_col && msp_col);
    int need_fit = 0; /* the detectors that need training statistics (ro.fit_path) */
    for (int i = 0; i < fn_score_count(); i++)
        need_fit += strstr(fn_score_needs(i), "fit") != NULL;
    CHECK(s->num_scores == fn_score_count() - need_fit && !fn_scores_column(s, "no_such_score"));
    /* rows are the readable images in path order; each equals a direct forward pass */
    for (size_t r = 0; r < s->n; r++) {
        const char *name = fn_dataset_item_name(d, s->index[r]);
        CHECK(!strstr(name, "text.png") && !strstr(name, "zero.jpg"));
        if (r > 0)
            CHECK(s->index[r] > s->index[r - 1]);
        if (!strstr(name, "/img"))
            continue;
        int w, h, c;
        unsigned char *px = stbi_load(name, &w, &h, &c, 3);
        REQUIRE(px);
        float norms[9], scores[64];
        REQUIRE(fn_score_count() <= 64);
        int pred;
        fn_outputs out;
        fn_outputs_init(&out);
        out.norms = norms, out.scores = scores, out.pred = &pred, out.block = 8, out.react_clip = 1.0f;
        REQUIRE_OK(fn_model_forward_u8(m, 1, px, &out));
        for (int b = 0; b < 9; b++)
            CHECK(test_close(s->norms[r * 9 + b], norms[b], 1e-5, 1e-6));
        CHECK(test_close(energy_col[r], scores[fn_score_find("energy")], 1e-5, 1e-5) && s->pred[r] == pred);
        CHECK(test_close(msp_col[r], scores[fn_score_find("msp")], 1e-5, 1e-6));
        CHECK_MSG(test_close(react[r], scores[fn_score_find("react_energy")], 1e-5, 1e-5), "react %g vs %g", react[r], scores[fn_score_find("react_energy")]);
        CHECK(selected[r] == s->norms[r * 9 + 8] && scores[fn_score_find("fn_selected")] == norms[8]);
        free(px);
    }
    REQUIRE_OK(fn_scores_write(s, m, d, "scores.csv", "norms.npy"));
    float *col;
    size_t n;
    REQUIRE_OK(fn_csv_read_column("scores.csv", "fn.layer3.2", &col, &n));
    CHECK(n == s->n && col[3] == s->norms[3 * 9 + 8]); /* %.9g round-trips a float */
    free(col);
    REQUIRE_OK(fn_csv_read_column("scores.csv", "react_energy", &col, &n));
    free(col);
    struct stat st;
    CHECK(stat("norms.npy", &st) == 0 && st.st_size == 128 + 13 * 9 * 4);
    /* an unwritable output leaves nothing behind */
    CHECK_FAILS(fn_scores_write_csv(s, m, d, "no/such/dir/scores.csv"), FN_ERR_IO, "no/such/dir/scores.csv");
    fn_scores_free(s);

    ro.strict = 1; /* the first unreadable image ends the run */
    CHECK_FAILS(fn_score_dataset(m, d, &ro, &s), FN_ERR_FORMAT, "mixed/");

    /* selection over the same folder: NormRatio per block, repeatable */
    fn_run_options so;
    fn_run_options_init(&so);
    so.seed = 3;
    fn_selection *a, *b;
    REQUIRE_OK(fn_select_block(m, d, &so, &a));
    so.batch = 2; /* another batch size: the same Jigsaw copies, the same result */
    REQUIRE_OK(fn_select_block(m, d, &so, &b));
    CHECK(a->images == 13 && a->num_blocks == 9 && a->react_clip > 0);
    for (int k = 0; k < 9; k++) {
        CHECK(test_close(a->norm_ratio[k], b->norm_ratio[k], 1e-5, 0));
        CHECK(a->norm_ratio[k] > 0 && a->norm_ratio[a->selected] >= a->norm_ratio[k]);
    }
    REQUIRE_OK(fn_selection_write_json(a, m, "mixed", "selection.json"));
    fn_selection *c;
    REQUIRE_OK(fn_selection_read_json("selection.json", m, &c));
    CHECK(c->selected == a->selected && test_close(c->react_clip, a->react_clip, 1e-6, 0));
    CHECK(test_close(c->norm_ratio[4], a->norm_ratio[4], 1e-8, 0));
    fn_selection_free(a), fn_selection_free(b), fn_selection_free(c);
    /* Numbers out of range, not finite or not whole: refused by name, never
     * converted (a float-to-integer overflow is undefined; ASan aborted). */
    {
        FILE *f = fopen("selection.json", "rb");
        REQUIRE(f);
        static char text[1 << 16];
        size_t len = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[len] = '\0';
        static const char *const cases[][3] = {
            {"\"images\": 13", "\"images\": -1", "\"images\" must be a whole number"},
            {"\"images\": 13", "\"images\": 1e999", "\"images\""},
            {"\"images\": 13", "\"images\": 2.5", "\"images\" must be a whole number"},
            {"\"images\": 13", "\"images\": 1e300", "\"images\" must be a whole number"},
            {"\"seed\": 3", "\"seed\": 1e20", "\"seed\" must be a whole number"},
            {"\"seed\": 3", "\"seed\": -3", "\"seed\""},
            {"\"percentile\": 90", "\"percentile\": 1000", "\"percentile\" must be a finite number"},
            {"\"clip\": ", "\"clip\": -", "\"clip\""},
        };
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            char *at = strstr(text, cases[k][0]);
            REQUIRE(at);
            static char variant[1 << 16];
            size_t head = (size_t)(at - text);
            snprintf(variant, sizeof variant, "%.*s%s%s", (int)head, text, cases[k][1],
                     at + strlen(cases[k][0]));
            write_text("numbers.json", variant);
            CHECK_FAILS(fn_selection_read_json("numbers.json", m, &c), FN_ERR_FORMAT, cases[k][2]);
        }
    }
    write_text("bad.json", "{\"arch\": \"resnet50\", \"blocks\": [], \"selected\": \"layer1.0\"}");
    CHECK_FAILS(fn_selection_read_json("bad.json", m, &c), FN_ERR_INVALID_ARG, "made for resnet50");
    write_text("bad.json", "{\"arch\": ");
    CHECK_FAILS(fn_selection_read_json("bad.json", m, &c), FN_ERR_FORMAT, "bad.json");
    fn_dataset_free(d);
    fn_model_free(m);
}

int main(void)
{
    jigsaw();
    datasets();
    hostile_datasets();
    scoring();
    return test_finish("test_data");
}
