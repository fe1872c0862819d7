/* test_image.c: image decoding and preprocessing (host/image.c) against PIL and
 * torchvision.
 *
 * - Every line of tests/fixtures/images/manifest.txt (written by
 *   scripts/make_image_fixtures.py): resizes and preset transforms must equal
 *   PIL's bytes exactly; JPEG decodes agree within a tolerance (stb and
 *   libjpeg-turbo differ by a level here and there); grey and CMYK JPEGs come
 *   out as RGB. Lines on the shared data run when FN_SHARED_DATA exists.
 * - Corrupt files, made here at run time: each fails with the right status and
 *   a message naming the file and the problem.
 * - Real-world JPEGs of the shared data all pass the truncation check and decode
 *   (imagenet-sample and dtd10; every folder with FN_IMAGE_SWEEP_ALL=1).
 * - Four threads decoding and preprocessing the same files at once get the
 *   same bytes and their own error messages.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, opendir, strcasecmp */

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <strings.h>
#include <unistd.h>

#include "image.h"
#include "test.h"

#ifndef FN_FIXTURES
#define FN_FIXTURES "tests/fixtures"
#endif
#ifndef FN_SHARED_DATA
#define FN_SHARED_DATA ""
#endif

static int shared_ok;         /* FN_SHARED_DATA is there */
static int shared_skipped;    /* manifest lines left out for want of it */
static char tmpdir[256];

/* ---- helpers ------------------------------------------------------------ */

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap)
            break;
        uint8_t *bigger = realloc(b, cap *= 2);
        if (!bigger)
            free(b);
        b = bigger;
    }
    fclose(f);
    *len = n;
    return b;
}

static void write_all(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    REQUIRE(fwrite(data, 1, len, f) == len);
    REQUIRE(fclose(f) == 0);
}

static void tmp_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

/* "fix:rel" or "shared:rel" to a path; 0 when the shared data is missing. */
static int resolve(const char *src, char *out, size_t n)
{
    if (strncmp(src, "fix:", 4) == 0) {
        snprintf(out, n, "%s/%s", FN_FIXTURES, src + 4);
        return 1;
    }
    if (strncmp(src, "shared:", 7) == 0) {
        snprintf(out, n, "%s/%s", FN_SHARED_DATA, src + 7);
        return shared_ok && test_exists(out);
    }
    fprintf(stderr, "manifest: bad source %s\n", src);
    test_failures++;
    return 0;
}

/* Exact comparison; on a mismatch, how many bytes differ, by how much at most,
 * and where the first one is. */
static void expect_same(const char *what, const uint8_t *got, const uint8_t *want, int w, int h)
{
    size_t n = (size_t)w * h * 3, differ = 0, first = 0;
    int maxd = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)want[i]);
        if (d) {
            if (!differ)
                first = i;
            differ++;
            if (d > maxd)
                maxd = d;
        }
    }
    if (differ) {
        fprintf(stderr,
                "%s: %zu of %zu bytes differ from PIL, max |diff| %d, first at x=%zu y=%zu c=%zu "
                "(got %d, want %d)\n",
                what, differ, n, maxd, first / 3 % w, first / 3 / w, first % 3, got[first],
                want[first]);
        test_failures++;
    }
}

static uint8_t *load_expected(const char *rel, size_t want_len)
{
    char path[1024];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/images/%s", FN_FIXTURES, rel);
    uint8_t *b = read_all(path, &len);
    if (!b || len != want_len) {
        fprintf(stderr, "%s: missing or %zu bytes instead of %zu\n", path, len, want_len);
        test_failures++;
        free(b);
        return NULL;
    }
    return b;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a 64, as scripts/make_jpeg_fixtures.py */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* ---- the manifest ------------------------------------------------------- */

static void run_manifest(void)
{
    char mpath[1024], line[2048];
    snprintf(mpath, sizeof mpath, "%s/images/manifest.txt", FN_FIXTURES);
    FILE *f = fopen(mpath, "r");
    REQUIRE(f);
    int cases = 0, exact = 0;
    while (fgets(line, sizeof line, f)) {
        char kind[32], src[512], a[64], exp[512], path[1024];
        int w = 0, h = 0;
        if (line[0] == '#' || sscanf(line, "%31s %511s", kind, src) != 2)
            continue;
        if (!resolve(src, path, sizeof path)) {
            shared_skipped++;
            continue;
        }
        cases++;
        image_rgb im;
        fn_status s = image_load(path, &im);
        if (s != FN_OK) {
            fprintf(stderr, "%s: %s: %s\n", src, fn_status_name(s), fn_last_error());
            test_failures++;
            continue;
        }
        char what[1200];
        snprintf(what, sizeof what, "%.900s", line);
        what[strcspn(what, "\n")] = '\0';

        if (strcmp(kind, "resize") == 0) {
            CHECK(sscanf(line, "%*s %*s %d %d %511s", &w, &h, exp) == 3);
            image_rgb out = {0};
            uint8_t *want = load_expected(exp, (size_t)w * h * 3);
            s = image_resize(&im, w, h, &out);
            CHECK_MSG(s == FN_OK, "%s: %s", what, fn_last_error());
            if (want && s == FN_OK) {
                CHECK(out.w == w && out.h == h);
                expect_same(what, out.px, want, w, h);
                exact++;
            }
            free(want);
            image_free(&out);
        } else if (strcmp(kind, "preset") == 0) {
            int size = 0;
            CHECK(sscanf(line, "%*s %*s %63s %d %511s", a, &size, exp) == 3);
            fn_preset p = strcmp(a, "cifar") == 0 ? FN_PRESET_CIFAR : FN_PRESET_IMAGENET;
            uint8_t *want = load_expected(exp, (size_t)size * size * 3);
            uint8_t *out = malloc((size_t)size * size * 3);
            s = image_preprocess(&im, p, size, out);
            CHECK_MSG(s == FN_OK, "%s: %s", what, fn_last_error());
            if (want && s == FN_OK) {
                expect_same(what, out, want, size, size);
                exact++;
            }
            free(want);
            free(out);
        } else if (strcmp(kind, "jpeg") == 0) {
            double tol = 0;
            CHECK(sscanf(line, "%*s %*s %d %d %511s %lf", &w, &h, exp, &tol) == 4);
            CHECK_MSG(im.w == w && im.h == h, "%s: decoded %d x %d", what, im.w, im.h);
            uint8_t *want = load_expected(exp, (size_t)w * h * 3);
            (void)tol; /* libjpeg-turbo, as PIL: bit-exact, the tolerance is not needed */
            if (want && im.w == w && im.h == h) {
                expect_same(what, im.px, want, w, h);
                exact++;
            }
            free(want);
        } else if (strcmp(kind, "gray") == 0 || strcmp(kind, "cmyk") == 0) {
            double m[3], got[3] = {0, 0, 0};
            CHECK(sscanf(line, "%*s %*s %d %d %lf %lf %lf", &w, &h, &m[0], &m[1], &m[2]) == 5);
            CHECK_MSG(im.w == w && im.h == h, "%s: decoded %d x %d", what, im.w, im.h);
            size_t n = (size_t)im.w * im.h, not_grey = 0;
            for (size_t i = 0; i < n; i++) {
                const uint8_t *p = im.px + 3 * i;
                got[0] += p[0], got[1] += p[1], got[2] += p[2];
                not_grey += p[0] != p[1] || p[1] != p[2];
            }
            if (kind[0] == 'g')
                CHECK_MSG(not_grey == 0, "%s: %zu pixels with R, G, B unequal", what, not_grey);
            /* Decoders differ by about a level; a wrong CMYK conversion (inverted,
             * or K ignored) is off by tens. */
            for (int c = 0; c < 3; c++)
                CHECK_MSG(fabs(got[c] / n - m[c]) < 2.0, "%s: channel %d mean %.3f, PIL %.3f",
                          what, c, got[c] / n, m[c]);
        } else {
            fprintf(stderr, "manifest: unknown line: %s\n", what);
            test_failures++;
        }
        image_free(&im);
    }
    fclose(f);
    CHECK(cases > 30);
    printf("manifest: %d cases (%d compared bit-exact with PIL)\n", cases, exact);
}

/* ---- corrupt and awkward files ------------------------------------------ */

static int has(const char *needle) { return strstr(fn_last_error(), needle) != NULL; }

static void check_bad_files(void)
{
    char p[512], q[512];
    image_rgb im;
    size_t len;
    char jpg[512];
    snprintf(jpg, sizeof jpg, "%s/images/rgb_48x32.jpg", FN_FIXTURES);
    uint8_t *good = read_all(jpg, &len);
    REQUIRE(good && len > 200);
    image_rgb ref;
    REQUIRE_OK(image_load(jpg, &ref));

    tmp_path(p, sizeof p, "empty.png");
    write_all(p, "", 0);
    CHECK_FAILS(image_load(p, &im), FN_ERR_FORMAT, "empty file");
    CHECK(has("empty.png"));
    CHECK(im.px == NULL);

    tmp_path(p, sizeof p, "notes.png");
    const char *text = "this is a text file, not a PNG\n";
    write_all(p, text, strlen(text));
    CHECK_FAILS(image_load(p, &im), FN_ERR_FORMAT, "notes.png");
    CHECK(has("unknown image type")); /* stb's reason */

    /* Cut in the middle of the entropy-coded data. */
    tmp_path(p, sizeof p, "cut.jpg");
    write_all(p, good, len * 2 / 3);
    CHECK_FAILS(image_load(p, &im), FN_ERR_FORMAT, "truncated JPEG");
    CHECK(has("cut.jpg"));

    /* All data there but the final EOI marker. */
    tmp_path(p, sizeof p, "no_eoi.jpg");
    write_all(p, good, len - 2);
    CHECK_FAILS(image_load(p, &im), FN_ERR_FORMAT, "truncated JPEG");

    /* Only the SOI and part of a header. */
    tmp_path(p, sizeof p, "header_only.jpg");
    write_all(p, good, 40);
    CHECK_FAILS(image_load(p, &im), FN_ERR_FORMAT, "header_only.jpg");

    /* An APP1 segment holding an EOI of its own (as an EXIF thumbnail does)
     * must not make a cut file look complete. */
    {
        static const uint8_t app1[] = {0xFF, 0xE1, 0x00, 0x0C, 'E', 'x', 'i', 'f', 0, 0,
                                       0xFF, 0xD8, 0xFF, 0xD9};
        size_t n2 = len + sizeof app1;
        uint8_t *b = malloc(n2 + 100);
        REQUIRE(b);
        memcpy(b, good, 2);
        memcpy(b + 2, app1, sizeof app1);
        memcpy(b + 2 + sizeof app1, good + 2, len - 2);
        tmp_path(p, sizeof p, "thumb.jpg");
        write_all(p, b, n2);
        REQUIRE_OK(image_load(p, &im));
        CHECK(im.w == ref.w && im.h == ref.h && !memcmp(im.px, ref.px, (size_t)ref.w * ref.h * 3));
        image_free(&im);
        tmp_path(p, sizeof p, "thumb_cut.jpg");
        write_all(p, b, n2 * 2 / 3);
        CHECK_FAILS(image_load(p, &im), FN_ERR_FORMAT, "truncated JPEG");
        /* Padding and junk after the EOI are fine (cameras append trailers). */
        memset(b + n2, 0, 60);
        memcpy(b + n2 + 60, "trailing junk\xff\xd8", 15);
        tmp_path(p, sizeof p, "trailer.jpg");
        write_all(p, b, n2 + 75);
        fn_status s = image_load(p, &im);
        CHECK_MSG(s == FN_OK, "trailer.jpg: %s", fn_last_error());
        if (s == FN_OK)
            CHECK(!memcmp(im.px, ref.px, (size_t)ref.w * ref.h * 3));
        image_free(&im);
        free(b);
    }

    /* A progressive JPEG cut between or inside its scans. */
    snprintf(q, sizeof q, "%s/images/progressive_48x32.jpg", FN_FIXTURES);
    size_t plen;
    uint8_t *prog = read_all(q, &plen);
    REQUIRE(prog);
    for (int k = 1; k <= 4; k++) {
        tmp_path(p, sizeof p, "prog_cut.jpg");
        write_all(p, prog, plen * k / 5);
        CHECK_FAILS(image_load(p, &im), FN_ERR_FORMAT, "truncated JPEG");
    }
    free(prog);

    /* A PNG header claiming 15000 x 15000 grey pixels (stb itself would
     * allow it): refused before anything is allocated. */
    {
        static const uint8_t png[] = {
            0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A,
            0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 0, 0x3A, 0x98, 0, 0, 0x3A, 0x98, 8, 0, 0, 0, 0,
            0, 0, 0, 0, /* CRC, not checked by stb */
            0, 0, 0, 0, 'I', 'D', 'A', 'T', 0, 0, 0, 0,
            0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
        tmp_path(p, sizeof p, "huge.png");
        write_all(p, png, sizeof png);
        CHECK_FAILS(image_load(p, &im), FN_ERR_FORMAT, "too large");
        CHECK(has("huge.png"));
    }

    tmp_path(p, sizeof p, "missing.png");
    CHECK_FAILS(image_load(p, &im), FN_ERR_IO, "No such file");
    CHECK(has("missing.png"));
    CHECK_FAILS(image_load(tmpdir, &im), FN_ERR_IO, "is a directory");
    CHECK(has(tmpdir));

    /* From memory: the name given is the one in the message. */
    CHECK_FAILS(image_decode(good, len / 2, "buffer.jpg", &im), FN_ERR_FORMAT, "buffer.jpg: truncated");
    CHECK_FAILS(image_decode(good, 0, "zero.jpg", &im), FN_ERR_FORMAT, "zero.jpg: empty file");

    /* Bad arguments. */
    image_rgb out;
    CHECK_FAILS(image_resize(&ref, 0, 5, &out), FN_ERR_INVALID_ARG, "size");
    uint8_t px[3 * 4];
    CHECK_FAILS(image_preprocess(&ref, FN_PRESET_CIFAR, 0, px), FN_ERR_INVALID_ARG, "size");

    /* AUTO means CIFAR for 32 x 32 inputs, ImageNet otherwise. */
    {
        uint8_t *a = malloc(32 * 32 * 3), *b = malloc(32 * 32 * 3);
        REQUIRE_OK(image_preprocess(&ref, FN_PRESET_AUTO, 32, a));
        REQUIRE_OK(image_preprocess(&ref, FN_PRESET_CIFAR, 32, b));
        CHECK(!memcmp(a, b, 32 * 32 * 3));
        REQUIRE_OK(image_preprocess(&ref, FN_PRESET_AUTO, 16, a));
        REQUIRE_OK(image_preprocess(&ref, FN_PRESET_IMAGENET, 16, b));
        CHECK(!memcmp(a, b, 16 * 16 * 3));
        free(a);
        free(b);
    }

    /* A 1 x 1000 strip through the ImageNet preset: the intermediate would be
     * 256 x 256000; only the crop is computed. A constant image stays constant. */
    {
        image_rgb strip = {malloc(1000 * 3), 1, 1000};
        REQUIRE(strip.px);
        for (int i = 0; i < 1000; i++)
            strip.px[3 * i] = 10, strip.px[3 * i + 1] = 120, strip.px[3 * i + 2] = 250;
        uint8_t *o = malloc(224 * 224 * 3);
        REQUIRE_OK(image_preprocess(&strip, FN_PRESET_IMAGENET, 224, o));
        int bad = 0;
        for (int i = 0; i < 224 * 224; i++)
            bad += o[3 * i] != 10 || o[3 * i + 1] != 120 || o[3 * i + 2] != 250;
        CHECK_MSG(bad == 0, "%d pixels changed", bad);
        free(o);
        image_free(&strip);
    }
    image_free(&ref);
    free(good);
}

/* ---- real-world JPEGs: accepted and decoded ----------------------------- */

typedef struct file_list {
    char **path;
    size_t n, cap;
} file_list;

static void list_add(file_list *l, const char *p)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->path = realloc(l->path, l->cap * sizeof *l->path);
        REQUIRE(l->path);
    }
    l->path[l->n] = malloc(strlen(p) + 1);
    REQUIRE(l->path[l->n]);
    strcpy(l->path[l->n++], p);
}

static void list_free(file_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->path[i]);
    free(l->path);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void find_jpegs(const char *dir, file_list *l)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            find_jpegs(p, l);
        } else {
            const char *dot = strrchr(e->d_name, '.');
            if (dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg")))
                list_add(l, p);
        }
    }
    closedir(d);
}

typedef struct sweep_job {
    const file_list *files;
    size_t first, step;
    size_t ok, bad;
} sweep_job;

static void *sweep_thread(void *arg)
{
    sweep_job *j = arg;
    for (size_t i = j->first; i < j->files->n; i += j->step) {
        image_rgb im;
        if (image_load(j->files->path[i], &im) == FN_OK) {
            j->ok++;
        } else {
            j->bad++;
            fprintf(stderr, "real JPEG refused: %s\n", fn_last_error());
        }
        image_free(&im);
    }
    return NULL;
}

static void sweep_shared_jpegs(void)
{
    static const char *dirs[] = {"imagenet-sample", "dtd10", "tinyimagenet-val", "cifar10-jpeg"};
    int all = getenv("FN_IMAGE_SWEEP_ALL") != NULL;
    if (!shared_ok)
        return;
    for (int d = 0; d < (all ? 4 : 2); d++) {
        char dir[1024];
        file_list l = {0};
        snprintf(dir, sizeof dir, "%s/%s", FN_SHARED_DATA, dirs[d]);
        find_jpegs(dir, &l);
        if (!l.n) {
            printf("sweep: %s: no JPEGs, skipped\n", dirs[d]);
            continue;
        }
        pthread_t t[4];
        sweep_job job[4];
        for (int k = 0; k < 4; k++) {
            job[k] = (sweep_job){&l, (size_t)k, 4, 0, 0};
            REQUIRE(pthread_create(&t[k], NULL, sweep_thread, &job[k]) == 0);
        }
        size_t ok = 0, bad = 0;
        for (int k = 0; k < 4; k++) {
            pthread_join(t[k], NULL);
            ok += job[k].ok;
            bad += job[k].bad;
        }
        printf("sweep: %s: %zu JPEGs accepted, %zu refused\n", dirs[d], ok, bad);
        CHECK(bad == 0);
        list_free(&l);
    }
    if (!all)
        printf("sweep: set FN_IMAGE_SWEEP_ALL=1 to also decode tinyimagenet-val and cifar10-jpeg\n");
}

/* ---- threads ------------------------------------------------------------ */

typedef struct result {
    fn_status status;
    uint64_t decoded, imagenet, cifar;
    char message[512];
} result;

static void process(const char *path, result *r)
{
    image_rgb im;
    memset(r, 0, sizeof *r);
    r->status = image_load(path, &im);
    if (r->status != FN_OK) {
        snprintf(r->message, sizeof r->message, "%s", fn_last_error());
        return;
    }
    r->decoded = fnv1a(im.px, (size_t)im.w * im.h * 3);
    uint8_t *o = malloc(224 * 224 * 3);
    REQUIRE(o);
    if (image_preprocess(&im, FN_PRESET_IMAGENET, 224, o) == FN_OK)
        r->imagenet = fnv1a(o, 224 * 224 * 3);
    if (image_preprocess(&im, FN_PRESET_CIFAR, 32, o) == FN_OK)
        r->cifar = fnv1a(o, 32 * 32 * 3);
    free(o);
    image_free(&im);
}

typedef struct thread_job {
    const file_list *files;
    const result *want;
    int offset, rounds, mismatches;
} thread_job;

static void *thread_main(void *arg)
{
    thread_job *j = arg;
    size_t n = j->files->n;
    for (int r = 0; r < j->rounds; r++) {
        for (size_t i = 0; i < n; i++) {
            size_t k = (i + (size_t)j->offset * 7) % n; /* threads start at different files */
            result got;
            process(j->files->path[k], &got);
            const result *w = &j->want[k];
            if (got.status != w->status || got.decoded != w->decoded ||
                got.imagenet != w->imagenet || got.cifar != w->cifar ||
                strcmp(got.message, w->message) != 0) {
                fprintf(stderr, "thread %d: %s: different result (%s / %s)\n", j->offset,
                        j->files->path[k], got.message, w->message);
                j->mismatches++;
            }
        }
    }
    return NULL;
}

static void check_threads(void)
{
    file_list l = {0};
    static const char *fixtures[] = {"rand_37x23.png", "rgb16_20x15.png",  "palette_33x17.png",
                                     "rgba_19x13.png", "synth_449x300.png", "thin_3x201.png",
                                     "rgb_48x32.jpg",  "progressive_48x32.jpg", "cmyk_40x24.jpg",
                                     "gray_40x24.jpg"};
    char p[1024];
    for (size_t i = 0; i < sizeof fixtures / sizeof *fixtures; i++) {
        snprintf(p, sizeof p, "%s/images/%s", FN_FIXTURES, fixtures[i]);
        list_add(&l, p);
    }
    /* Failures too: each thread must see its own file's message. */
    static const char *bad[] = {"empty.png", "notes.png", "cut.jpg", "thumb_cut.jpg", "missing.png"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tmp_path(p, sizeof p, bad[i]);
        list_add(&l, p);
    }
    if (shared_ok) { /* a few real photos of various sizes, grey ones included */
        file_list real = {0};
        snprintf(p, sizeof p, "%s/imagenet-sample", FN_SHARED_DATA);
        find_jpegs(p, &real);
        qsort(real.path, real.n, sizeof *real.path, cmp_str);
        for (size_t i = 0; i < real.n; i += 50)
            list_add(&l, real.path[i]);
        list_free(&real);
    }

    result *want = calloc(l.n, sizeof *want);
    REQUIRE(want);
    for (size_t i = 0; i < l.n; i++)
        process(l.path[i], &want[i]);
    pthread_t t[4];
    thread_job job[4];
    for (int k = 0; k < 4; k++) {
        job[k] = (thread_job){&l, want, k, 3, 0};
        REQUIRE(pthread_create(&t[k], NULL, thread_main, &job[k]) == 0);
    }
    int mismatches = 0;
    for (int k = 0; k < 4; k++) {
        pthread_join(t[k], NULL);
        mismatches += job[k].mismatches;
    }
    CHECK(mismatches == 0);
    printf("threads: 4 threads x 3 rounds x %zu files, %d mismatches\n", l.n, mismatches);
    free(want);
    list_free(&l);
}

/* ---- inputs found by tests/fuzz, kept in its corpus ---------------------- */

static void check_fuzz_findings(void)
{
    image_rgb im = {0};
    /* a 195-byte PNG declaring a 1.7 GB IDAT chunk: stb reserved it all */
    CHECK_FAILS(image_load(FN_SOURCE_DIR "/tests/fuzz/corpus/image/fuzz_png_idat_length.png", &im),
                FN_ERR_FORMAT, "chunk 'IDAT' claims 1734829927 bytes");
    /* a 143-byte text file (a list) that stb's lenient TGA test accepts as
     * 8308 x 53 pixels: 0.8 s under ASan each time a list named itself */
    CHECK_FAILS(image_load(FN_SOURCE_DIR "/tests/fuzz/corpus/list/fuzz_text_as_tga.txt", &im),
                FN_ERR_FORMAT, "more than 143 bytes can encode");
    /* a PGM header with a 13-digit width: stb's int overflowed parsing it (UBSan) */
    CHECK_FAILS(image_load(FN_SOURCE_DIR "/tests/fuzz/corpus/image/fuzz_pnm_header_overflow.pgm", &im),
                FN_ERR_FORMAT, "more than 7 digits");
    /* issue #13's crash inputs: refused with a reason, never decoded */
    CHECK_FAILS(image_load(FN_SOURCE_DIR "/tests/fuzz/corpus/image/issue13_pgm16.pgm", &im),
                FN_ERR_FORMAT, "16-bit PGM/PPM");
    CHECK_FAILS(image_load(FN_SOURCE_DIR "/tests/fuzz/corpus/image/issue13_pic_named.png", &im),
                FN_ERR_FORMAT, "unknown image type");
    CHECK_FAILS(image_load(FN_SOURCE_DIR "/tests/fuzz/corpus/image/issue13_bad_huffman.jpg", &im),
                FN_ERR_FORMAT, "corrupt JPEG");
    CHECK_FAILS(image_load(FN_SOURCE_DIR "/tests/fuzz/corpus/image/issue13_tga_bomb.tga", &im),
                FN_ERR_FORMAT, "more than 22 bytes can encode");
}

/* ---- real JPEGs: bit-exact with PIL's decode --------------------------- */

/* tests/fixtures/images/jpeg_pil.txt (scripts/make_jpeg_fixtures.py) holds
 * PIL's convert("RGB") of shared JPEGs (CIFAR-10, DTD, ImageNet grey and
 * colour) as hashes; the decodes must match bit for bit. */
static void check_jpeg_pil(void)
{
    if (!shared_ok) {
        printf("jpeg_pil: no shared data, skipped\n");
        return;
    }
    char path[1024], line[2048];
    snprintf(path, sizeof path, "%s/images/jpeg_pil.txt", FN_FIXTURES);
    FILE *f = fopen(path, "r");
    REQUIRE(f);
    int n = 0, missing = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        char rel[1024], mode[16];
        int w, h;
        unsigned long long want;
        if (line[0] == '#' || sscanf(line, "%1023s %d %d %15s %llx", rel, &w, &h, mode, &want) != 5)
            continue;
        char file[2048];
        snprintf(file, sizeof file, "%s/%s", FN_SHARED_DATA, rel);
        if (!test_exists(file)) {
            missing++;
            continue;
        }
        image_rgb im = {0};
        fn_status s = image_load(file, &im);
        CHECK_MSG(s == FN_OK, "%s", fn_last_error());
        if (s == FN_OK) {
            uint64_t got = fnv1a(im.px, (size_t)im.w * im.h * 3);
            if (im.w != w || im.h != h || got != (uint64_t)want) {
                fprintf(stderr, "%s (%s): decoded %d x %d hash %016llx, PIL %d x %d %016llx\n", rel,
                        mode, im.w, im.h, (unsigned long long)got, w, h, want);
                bad++;
            }
        }
        image_free(&im);
        n++;
    }
    fclose(f);
    CHECK(n > 0 && bad == 0);
    printf("jpeg_pil: %d shared JPEGs decoded, %d differ from PIL, %d absent\n", n, bad, missing);
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        remove(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/fn_test_image_XXXXXX", base && *base ? base : "/tmp");
    REQUIRE(mkdtemp(tmpdir));

    shared_ok = FN_SHARED_DATA[0] && test_exists(FN_SHARED_DATA);
    if (!shared_ok)
        printf("shared data not found at \"%s\": its cases are skipped\n", FN_SHARED_DATA);

    run_manifest();
    if (shared_skipped)
        printf("manifest: %d shared-data cases skipped (no %s)\n", shared_skipped,
               FN_SHARED_DATA);
    check_bad_files();
    sweep_shared_jpegs();
    check_jpeg_pil();
    check_fuzz_findings();
    check_threads();

    remove_tmpdir();
    return test_finish("test_image");
}
