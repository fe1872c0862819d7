/* test_metrics.c: fn_metrics_compute against scikit-learn reference values
 * (tests/fixtures/metrics/cases.txt, made by scripts/make_metric_fixtures.py),
 * its error cases and a 2,000,000-score run; and fn_csv_read_column on small
 * CSV files written into the current directory.
 */
#include "featurenorm.h"
#include "test.h"

#include <stdint.h>

#ifndef FN_FIXTURES
#define FN_FIXTURES "tests/fixtures"
#endif

#define TOL 1e-9

/* ---- fixture parsing ------------------------------------------------------ */

/* Next whitespace-separated token, skipping '#' comments to the end of line. */
static int next_token(FILE *f, char *buf, size_t size)
{
    int c;
    for (;;) {
        while ((c = getc(f)) != EOF && (c == ' ' || c == '\t' || c == '\n' || c == '\r'))
            ;
        if (c != '#')
            break;
        while ((c = getc(f)) != EOF && c != '\n')
            ;
    }
    if (c == EOF)
        return 0;
    size_t n = 0;
    do {
        if (n + 1 < size)
            buf[n++] = (char)c;
    } while ((c = getc(f)) != EOF && !(c == ' ' || c == '\t' || c == '\n' || c == '\r'));
    buf[n] = '\0';
    return 1;
}

static float *read_floats(FILE *f, size_t n, const char *name)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    REQUIRE(v);
    char tok[64];
    for (size_t i = 0; i < n; i++) {
        char *end;
        REQUIRE(next_token(f, tok, sizeof tok));
        v[i] = strtof(tok, &end);
        if (*end) {
            fprintf(stderr, "case %s: bad score \"%s\"\n", name, tok);
            exit(1);
        }
    }
    return v;
}

static int same(double got, double want)
{
    if (isinf(want))
        return got == want;
    return fabs(got - want) <= TOL;
}

static void test_fixture_cases(void)
{
    const char *path = FN_FIXTURES "/metrics/cases.txt";
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot open (run scripts/make_metric_fixtures.py)\n", path);
        exit(1);
    }
    char tok[256], name[256];
    int cases = 0;
    while (next_token(f, tok, sizeof tok)) {
        REQUIRE(strcmp(tok, "case") == 0);
        REQUIRE(next_token(f, name, sizeof name));
        REQUIRE(next_token(f, tok, sizeof tok));
        size_t n_id = strtoul(tok, NULL, 10);
        REQUIRE(next_token(f, tok, sizeof tok));
        size_t n_ood = strtoul(tok, NULL, 10);
        float *id = read_floats(f, n_id, name), *ood = read_floats(f, n_ood, name);
        REQUIRE(next_token(f, tok, sizeof tok) && strcmp(tok, "expect") == 0);
        double want[5], want_oo[2];
        for (int k = 0; k < 5; k++) {
            REQUIRE(next_token(f, tok, sizeof tok));
            want[k] = strtod(tok, NULL);
        }
        REQUIRE(next_token(f, tok, sizeof tok) && strcmp(tok, "openood") == 0);
        for (int k = 0; k < 2; k++) {
            REQUIRE(next_token(f, tok, sizeof tok));
            want_oo[k] = strtod(tok, NULL);
        }

        /* Copies: the inputs must come back untouched. */
        float *id0 = malloc(n_id * sizeof *id0), *ood0 = malloc(n_ood * sizeof *ood0);
        REQUIRE(id0 && ood0);
        memcpy(id0, id, n_id * sizeof *id0);
        memcpy(ood0, ood, n_ood * sizeof *ood0);

        fn_metrics m;
        fn_status s = fn_metrics_compute(id, n_id, ood, n_ood, &m);
        CHECK_MSG(s == FN_OK, "case %s: %s: %s", name, fn_status_name(s), fn_last_error());
        if (s == FN_OK) {
            const char *what[5] = {"auroc", "fpr95", "aupr_in", "aupr_out", "threshold"};
            double got[5] = {m.auroc, m.fpr95, m.aupr_in, m.aupr_out, m.threshold};
            for (int k = 0; k < 5; k++)
                CHECK_MSG(same(got[k], want[k]), "case %s: %s = %.17g, sklearn %.17g", name,
                          what[k], got[k], want[k]);
            CHECK_MSG(m.n_id == n_id && m.n_ood == n_ood, "case %s: counts", name);
        }
        /* The deployment threshold at TPR 0.95 is sklearn's threshold of the FPR95 point. */
        float t;
        s = fn_threshold_at_tpr(id, n_id, 0.95, &t);
        CHECK_MSG(s == FN_OK && same(t, want[4]), "case %s: threshold at TPR 0.95 %.9g, sklearn %.17g",
                  name, t, want[4]);
        /* OpenOOD's convention: its FPR@95; the rest is the same metric renamed. */
        fn_metrics o;
        s = fn_metrics_compute_as(FN_EVAL_OPENOOD, id, n_id, ood, n_ood, &o);
        CHECK_MSG(s == FN_OK, "case %s openood: %s", name, fn_last_error());
        if (s == FN_OK) {
            CHECK_MSG(same(o.fpr95, want_oo[0]) && same(o.threshold, want_oo[1]),
                      "case %s: OpenOOD FPR@95 %.17g at %.17g, sklearn %.17g at %.17g", name, o.fpr95,
                      o.threshold, want_oo[0], want_oo[1]);
            CHECK_MSG(same(o.auroc, m.auroc) && same(o.aupr_in, m.aupr_in) && same(o.aupr_out, m.aupr_out),
                      "case %s: OpenOOD's AUROC and AUPRs are the paper's", name);
        }
        CHECK_MSG(memcmp(id, id0, n_id * sizeof *id) == 0 &&
                      memcmp(ood, ood0, n_ood * sizeof *ood) == 0,
                  "case %s: inputs modified", name);
        free(id);
        free(ood);
        free(id0);
        free(ood0);
        cases++;
    }
    fclose(f);
    CHECK_MSG(cases >= 15, "only %d cases in %s", cases, path);
    printf("metrics: %d sklearn cases compared\n", cases);
}

/* ---- brute force and errors ------------------------------------------------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void) /* xorshift64*: repeatable, no libc rand() */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static double rng_uniform(void) { return ((rng_next() >> 11) + 0.5) / 9007199254740992.0; }

static double rng_normal(void)
{
    return sqrt(-2.0 * log(rng_uniform())) * cos(6.283185307179586 * rng_uniform());
}

/* AUROC by counting every (ID, OOD) pair, ties half: independent of the sweep. */
static void test_brute_force_auroc(void)
{
    for (int trial = 0; trial < 50; trial++) {
        size_t n_id = 1 + rng_next() % 60, n_ood = 1 + rng_next() % 60;
        float id[60], ood[60];
        int levels = 1 + (int)(rng_next() % 8); /* few levels: many ties */
        for (size_t i = 0; i < n_id; i++)
            id[i] = (float)(rng_next() % (uint64_t)levels) + 0.5f;
        for (size_t j = 0; j < n_ood; j++)
            ood[j] = (float)(rng_next() % (uint64_t)levels);
        double pairs = 0;
        for (size_t i = 0; i < n_id; i++)
            for (size_t j = 0; j < n_ood; j++)
                pairs += id[i] > ood[j] ? 1.0 : id[i] == ood[j] ? 0.5 : 0.0;
        fn_metrics m;
        REQUIRE_OK(fn_metrics_compute(id, n_id, ood, n_ood, &m));
        CHECK_MSG(fabs(m.auroc - pairs / ((double)n_id * n_ood)) <= 1e-12,
                  "trial %d: auroc %.17g vs pairs %.17g", trial, m.auroc,
                  pairs / ((double)n_id * n_ood));
        /* Scores lower by 0.5 only: integer ties with OOD now. */
        for (size_t i = 0; i < n_id; i++)
            id[i] -= 0.5f;
        pairs = 0;
        for (size_t i = 0; i < n_id; i++)
            for (size_t j = 0; j < n_ood; j++)
                pairs += id[i] > ood[j] ? 1.0 : id[i] == ood[j] ? 0.5 : 0.0;
        REQUIRE_OK(fn_metrics_compute(id, n_id, ood, n_ood, &m));
        CHECK_MSG(fabs(m.auroc - pairs / ((double)n_id * n_ood)) <= 1e-12, "trial %d (ties)",
                  trial);
    }
}

static void test_metric_errors(void)
{
    float a[4] = {1, 2, 3, 4}, b[3] = {0, 1, 2};
    fn_metrics m;
    CHECK_FAILS(fn_metrics_compute(a, 0, b, 3, &m), FN_ERR_EMPTY, "no ID scores");
    CHECK_FAILS(fn_metrics_compute(NULL, 0, b, 3, &m), FN_ERR_EMPTY, "no ID scores");
    CHECK_FAILS(fn_metrics_compute(a, 4, b, 0, &m), FN_ERR_EMPTY, "no OOD scores");
    CHECK_FAILS(fn_metrics_compute(NULL, 4, b, 3, &m), FN_ERR_INVALID_ARG, "ID");
    CHECK_FAILS(fn_metrics_compute(a, 4, NULL, 3, &m), FN_ERR_INVALID_ARG, "OOD");
    CHECK_FAILS(fn_metrics_compute(a, 4, b, 3, NULL), FN_ERR_INVALID_ARG, "NULL");

    a[2] = NAN;
    CHECK_FAILS(fn_metrics_compute(a, 4, b, 3, &m), FN_ERR_INVALID_ARG, "NaN in ID scores at index 2");
    a[2] = 3;
    b[1] = -NAN;
    b[2] = NAN;
    CHECK_FAILS(fn_metrics_compute(a, 4, b, 3, &m), FN_ERR_INVALID_ARG, "NaN in OOD scores at index 1");
    b[1] = 1;
    b[2] = 2;
    REQUIRE_OK(fn_metrics_compute(a, 4, b, 3, &m));
}

/* 2,000,000 scores: must finish (O(n log n)); the AUROC of N(1,1) against
 * N(0,1) is Phi(1/sqrt 2) = 0.76025, a cheap check that the sweep is sane. */
static void test_large(void)
{
    const size_t n = 1000000;
    float *id = malloc(n * sizeof *id), *ood = malloc(n * sizeof *ood);
    REQUIRE(id && ood);
    for (size_t i = 0; i < n; i++) {
        id[i] = (float)(1.0 + rng_normal());
        ood[i] = (float)rng_normal();
    }
    fn_metrics m;
    REQUIRE_OK(fn_metrics_compute(id, n, ood, n, &m));
    CHECK_MSG(fabs(m.auroc - 0.76025) < 0.005, "auroc %g", m.auroc);
    /* FPR at TPR 0.95 of these normals: 1 - Phi(1 - 1.645) = 0.7405. */
    CHECK_MSG(fabs(m.fpr95 - 0.7405) < 0.005, "fpr95 %g", m.fpr95);
    printf("metrics: 2,000,000 scores: auroc %.5f fpr95 %.5f aupr_in %.5f aupr_out %.5f\n",
           m.auroc, m.fpr95, m.aupr_in, m.aupr_out);
    free(id);
    free(ood);
}

/* ---- CSV -------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    REQUIRE(fputs(text, f) >= 0);
    REQUIRE(fclose(f) == 0);
}

static void test_csv(void)
{
    float *v = NULL;
    size_t n = 0;

    /* Quoted paths holding commas, quotes and a newline; LF endings. */
    const char *p1 = "test_metrics_quoted.csv";
    write_file(p1, "path,label,fn.layer3.0,msp\n"
                   "\"a/b,c.png\",1,0.5,0.9\n"
                   "\"x \"\"y\"\" z.png\",-1,1e-3,nan\n"
                   "\"multi\nline.png\",2,-7.25,\n"
                   "plain.png,3,inf,0.125\n");
    REQUIRE_OK(fn_csv_read_column(p1, "fn.layer3.0", &v, &n));
    CHECK(n == 4);
    if (n == 4)
        CHECK(v[0] == 0.5f && v[1] == 1e-3f && v[2] == -7.25f && isinf(v[3]) && v[3] > 0);
    free(v);
    REQUIRE_OK(fn_csv_read_column(p1, "msp", &v, &n));
    CHECK(n == 4);
    if (n == 4)
        CHECK(v[0] == 0.9f && isnan(v[1]) && isnan(v[2]) && v[3] == 0.125f);
    free(v);
    CHECK_FAILS(fn_csv_read_column(p1, "path", &v, &n), FN_ERR_FORMAT, "test_metrics_quoted.csv:2:");
    CHECK(v == NULL && n == 0);
    /* Line numbers count the newlines inside quoted fields. */
    const char *p11 = "test_metrics_lines.csv";
    write_file(p11, "path,score\n\"multi\nline\",1\nx,oops\n");
    CHECK_FAILS(fn_csv_read_column(p11, "score", &v, &n), FN_ERR_FORMAT, "test_metrics_lines.csv:4:");

    /* CRLF endings, no final newline, a blank line, a BOM. */
    const char *p2 = "test_metrics_crlf.csv";
    write_file(p2, "\xEF\xBB\xBF" "score,other\r\n1.5,a\r\n\r\n\"2.5\",b\r\n-3,c");
    REQUIRE_OK(fn_csv_read_column(p2, "score", &v, &n));
    CHECK(n == 3);
    if (n == 3)
        CHECK(v[0] == 1.5f && v[1] == 2.5f && v[2] == -3.0f);
    free(v);
    /* The last field of a CRLF line must not keep the \r. */
    const char *p3 = "test_metrics_crlf_last.csv";
    write_file(p3, "a,score\r\nx,4\r\ny,5\r\n");
    REQUIRE_OK(fn_csv_read_column(p3, "score", &v, &n));
    CHECK(n == 2 && v[0] == 4.0f && v[1] == 5.0f);
    free(v);

    /* Missing column: names the column, the file, and the columns there are. */
    CHECK_FAILS(fn_csv_read_column(p1, "energy", &v, &n), FN_ERR_NOT_FOUND, "\"energy\"");
    CHECK(strstr(fn_last_error(), p1) && strstr(fn_last_error(), "path, label, fn.layer3.0, msp"));
    CHECK_FAILS(fn_csv_read_column(p1, "fn.layer3", &v, &n), FN_ERR_NOT_FOUND, "fn.layer3");

    /* A header far too long to list in full: the list is cut, not overflowed. */
    const char *p4 = "test_metrics_wide.csv";
    {
        size_t cols = 2000, len = 0;
        char *text = malloc(cols * 16 + 64);
        REQUIRE(text);
        for (size_t c = 0; c < cols; c++)
            len += (size_t)sprintf(text + len, "%scolumn_%zu", c ? "," : "", c);
        len += (size_t)sprintf(text + len, "\n");
        for (size_t c = 0; c < cols; c++)
            len += (size_t)sprintf(text + len, "%s%zu", c ? "," : "", c);
        sprintf(text + len, "\n");
        write_file(p4, text);
        free(text);
    }
    CHECK_FAILS(fn_csv_read_column(p4, "nope", &v, &n), FN_ERR_NOT_FOUND, "column_0, column_1");
    CHECK(strstr(fn_last_error(), "...") != NULL);
    REQUIRE_OK(fn_csv_read_column(p4, "column_1999", &v, &n));
    CHECK(n == 1 && v[0] == 1999.0f);
    free(v);

    /* A bad number: file, line and column named. */
    const char *p5 = "test_metrics_bad.csv";
    write_file(p5, "path,score\na.png,1\nb.png,2\nc.png,12abc\n");
    CHECK_FAILS(fn_csv_read_column(p5, "score", &v, &n), FN_ERR_FORMAT, "test_metrics_bad.csv:4:");
    CHECK(strstr(fn_last_error(), "\"score\"") && strstr(fn_last_error(), "12abc"));

    /* A row with too few fields. */
    const char *p6 = "test_metrics_short.csv";
    write_file(p6, "path,label,score\na.png,1,0.5\nb.png,2\n");
    CHECK_FAILS(fn_csv_read_column(p6, "score", &v, &n), FN_ERR_FORMAT, "test_metrics_short.csv:3:");
    CHECK(strstr(fn_last_error(), "\"score\"") != NULL);

    /* Header only: no rows, not an error. */
    const char *p7 = "test_metrics_header_only.csv";
    write_file(p7, "path,score\n");
    v = NULL;
    REQUIRE_OK(fn_csv_read_column(p7, "score", &v, &n));
    CHECK(n == 0);
    free(v);

    /* No header at all. */
    const char *p8 = "test_metrics_empty.csv";
    write_file(p8, "");
    CHECK_FAILS(fn_csv_read_column(p8, "score", &v, &n), FN_ERR_FORMAT, "header");

    /* An unterminated quote. */
    const char *p9 = "test_metrics_unterminated.csv";
    write_file(p9, "path,score\n\"a.png,1\n");
    CHECK_FAILS(fn_csv_read_column(p9, "score", &v, &n), FN_ERR_FORMAT, "test_metrics_unterminated.csv:2");

    /* A long path field (no fixed line limit). */
    const char *p10 = "test_metrics_long.csv";
    {
        size_t long_len = 100000;
        char *text = malloc(long_len + 64);
        REQUIRE(text);
        size_t len = (size_t)sprintf(text, "path,score\n\"");
        memset(text + len, 'p', long_len);
        len += long_len;
        sprintf(text + len, ",\",0.75\nb,1\n");
        write_file(p10, text);
        free(text);
    }
    REQUIRE_OK(fn_csv_read_column(p10, "score", &v, &n));
    CHECK(n == 2 && v[0] == 0.75f && v[1] == 1.0f);
    free(v);

    /* A file that is not there. */
    CHECK_FAILS(fn_csv_read_column("test_metrics_no_such_file.csv", "score", &v, &n), FN_ERR_IO,
                "test_metrics_no_such_file.csv");
    CHECK(strstr(fn_last_error(), "No such file") != NULL);
    CHECK_FAILS(fn_csv_read_column(NULL, "score", &v, &n), FN_ERR_INVALID_ARG, "NULL");

    const char *files[] = {p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        remove(files[i]);
}

int main(void)
{
    test_fixture_cases();
    test_brute_force_auroc();
    test_metric_errors();
    test_large();
    test_csv();
    return test_finish("test_metrics");
}
