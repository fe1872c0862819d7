/* test_cuda_norms.c: the CUDA backend's own kernels against their CPU twins.
 *
 *   FeatureNorm (cuda/norms.cu) on odd shapes (C = 3, 17, 64, 100, 2048;
 *     H*W = 1, 5x5, 7x7, 56x56; N = 1, 3, 64), NCHW and NHWC, float, half and
 *     bfloat16 inputs, into one column of a wider matrix, aligned or not;
 *   preprocessing (cuda/preprocess.cu): bit-exact against net_input_table;
 *   the small kernels (epilogue.cu, pool.cu, elementwise.cu, channels.cu)
 *     against plain loops, with every activation (net_activate itself);
 *   the activation on its own over [-12, 12] against net_activate;
 *   the uniform fill Find times on: range, spread, repeatability.
 * (tests/test_cuda_ops.c runs every op inside nets on both backends.)
 *
 * Inputs are chosen exactly representable in half and bfloat16, so every
 * dtype must match the double-precision CPU loop to float32 accuracy (1e-5
 * relative); outputs stored in half/bfloat16 may differ by their rounding.
 * Without CUDA in the build, or without a usable device, it prints
 * "SKIP: <why>" and exits 77. */
#include <stdint.h>

#include "backend.h"
#include "featurenorm.h"
#include "test.h"

#ifdef FN_WITH_CUDA
#include <cuda_runtime_api.h>

#include "../cuda/kernels.h"
#include "net.h"

#define CUDA_OK(call)                                                                 \
    do {                                                                              \
        cudaError_t e_ = (call);                                                      \
        if (e_ != cudaSuccess) {                                                      \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,             \
                    cudaGetErrorString(e_));                                          \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static const char *dt_name[] = {"f32", "f16", "bf16"};

static uint32_t rng = 12345u;
static uint32_t next_u32(void)
{
    rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
    return rng;
}
/* k/32 for k in [-127, 127]: exact in half and bfloat16 (7 significant bits). */
static float exact_value(void) { return (float)((int)(next_u32() % 255) - 127) / 32.0f; }
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_u32() >> 8) / 16777216.0f; }

static float half_to_float(uint16_t h)
{
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float v = exp == 0 ? ldexpf((float)man, -24)
              : exp == 31 ? (man ? NAN : INFINITY)
                          : ldexpf((float)(man | 0x400), exp - 25);
    return (h & 0x8000) ? -v : v;
}

static float bf16_to_float(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* One value of dtype at p[i] as float. */
static float value_at(const void *p, size_t i, cu_dtype t)
{
    if (t == CU_F32)
        return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    return t == CU_F16 ? half_to_float(h) : bf16_to_float(h);
}

/* Logical index (img, c, h, w) of an n x c x h x w tensor in its layout. */
static size_t at(cu_shape s, size_t i, size_t c, size_t h, size_t w)
{
    return s.layout == CU_NHWC ? ((i * s.h + h) * s.w + w) * s.c + c : ((i * s.c + c) * s.h + h) * s.w + w;
}

static size_t count_of(cu_shape s) { return (size_t)s.n * s.c * s.h * s.w; }

/* x: logical NCHW floats. Rounds them to the dtype in place (what the device
 * will hold) and returns a device copy in s's layout and dtype. */
static void *upload(float *x, cu_shape s)
{
    const size_t count = count_of(s), es = cu_dtype_size(s.dtype);
    char *host = malloc(count * es + 16);
    float *one = malloc(sizeof(float) * count);
    REQUIRE(host && one);
    for (size_t i = 0; i < (size_t)s.n; i++)
        for (size_t c = 0; c < (size_t)s.c; c++)
            for (size_t h = 0; h < (size_t)s.h; h++)
                for (size_t w = 0; w < (size_t)s.w; w++)
                    one[at(s, i, c, h, w)] = x[((i * s.c + c) * s.h + h) * s.w + w];
    if (s.dtype == CU_F32)
        memcpy(host, one, count * 4);
    else
        cu_round_to_half(one, host, count, s.dtype);
    for (size_t i = 0; i < (size_t)s.n; i++)
        for (size_t c = 0; c < (size_t)s.c; c++)
            for (size_t h = 0; h < (size_t)s.h; h++)
                for (size_t w = 0; w < (size_t)s.w; w++)
                    x[((i * s.c + c) * s.h + h) * s.w + w] = value_at(host, at(s, i, c, h, w), s.dtype);
    void *dev;
    CUDA_OK(cudaMalloc(&dev, count * es + 16));
    CUDA_OK(cudaMemcpy(dev, host, count * es, cudaMemcpyHostToDevice));
    free(host);
    free(one);
    return dev;
}

/* The device tensor back as logical NCHW floats. */
static float *download(const void *dev, cu_shape s)
{
    const size_t count = count_of(s);
    char *host = malloc(count * cu_dtype_size(s.dtype) + 1);
    float *x = malloc(sizeof(float) * count + 1);
    REQUIRE(host && x);
    CUDA_OK(cudaMemcpy(host, dev, count * cu_dtype_size(s.dtype), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < (size_t)s.n; i++)
        for (size_t c = 0; c < (size_t)s.c; c++)
            for (size_t h = 0; h < (size_t)s.h; h++)
                for (size_t w = 0; w < (size_t)s.w; w++)
                    x[((i * s.c + c) * s.h + h) * s.w + w] = value_at(host, at(s, i, c, h, w), s.dtype);
    free(host);
    return x;
}

/* Relative tolerance of a value stored in dtype after float math. */
static double stored_tol(cu_dtype t) { return t == CU_F32 ? 2e-6 : t == CU_F16 ? 1e-3 : 8e-3; }

/* ---- FeatureNorm ------------------------------------------------------------------ */

static double worst_norm_err;

static void check_norms(int n, int c, int hw_side_h, int hw_side_w, cu_dtype dt, cu_layout layout,
                        int misalign)
{
    cu_shape s = {n, c, hw_side_h, hw_side_w, dt, layout};
    const size_t count = count_of(s), hw = (size_t)s.h * s.w;
    float *x = malloc(sizeof(float) * count);
    REQUIRE(x);
    /* A per-channel offset, so that some channels are mostly negative. */
    for (size_t i = 0; i < count; i++)
        x[i] = exact_value();
    for (size_t i = 0; i < count; i++)
        if ((i / hw) % 3 == 0)
            x[i] = x[i] > 0 ? x[i] / 4 : x[i];
    /* upload() rounds x to the dtype in place; misalign shifts the pointer. */
    char *base = upload(x, s);
    void *dev_x = base;
    if (misalign) {
        const size_t es = cu_dtype_size(dt);
        char *moved;
        CUDA_OK(cudaMalloc((void **)&moved, count * es + 16));
        CUDA_OK(cudaMemcpy(moved + es, base, count * es, cudaMemcpyDeviceToDevice));
        CUDA_OK(cudaFree(base));
        base = moved;
        dev_x = moved + es;
    }
    const int ld = 5, col = 2;
    float *scratch, *norms;
    CUDA_OK(cudaMalloc((void **)&scratch, sizeof(float) * (cu_norms_scratch_floats(s) + 1)));
    CUDA_OK(cudaMalloc((void **)&norms, sizeof(float) * (size_t)n * ld));
    float *host = malloc(sizeof(float) * (size_t)n * ld);
    for (int i = 0; i < n * ld; i++)
        host[i] = NAN;
    CUDA_OK(cudaMemcpy(norms, host, sizeof(float) * (size_t)n * ld, cudaMemcpyHostToDevice));
    CUDA_OK(cu_feature_norms(dev_x, s, scratch, norms, ld, col, 0));
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaMemcpy(host, norms, sizeof(float) * (size_t)n * ld, cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) {
        double sum = 0;
        for (int ch = 0; ch < c; ch++) {
            double ss = 0;
            const float *p = x + ((size_t)i * c + ch) * hw;
            for (size_t k = 0; k < hw; k++)
                if (p[k] > 0)
                    ss += (double)p[k] * p[k];
            sum += sqrt(ss);
        }
        double want = sum / c, got = host[(size_t)i * ld + col];
        double err = fabs(got - want) / (fabs(want) + 1e-30);
        if (err > worst_norm_err)
            worst_norm_err = err;
        CHECK_MSG(test_close(got, want, 1e-5, 1e-7), "norms %s %s%s n=%d c=%d %dx%d image %d: %.9g, CPU %.9g",
                  layout == CU_NHWC ? "NHWC" : "NCHW", dt_name[dt], misalign ? " misaligned" : "", n, c,
                  s.h, s.w, i, got, want);
        for (int k = 0; k < ld; k++)
            if (k != col)
                CHECK_MSG(isnan(host[(size_t)i * ld + k]), "norms wrote column %d, not only %d", k, col);
    }
    free(x), free(host);
    CUDA_OK(cudaFree(base));
    CUDA_OK(cudaFree(scratch));
    CUDA_OK(cudaFree(norms));
}

static void test_norms(void)
{
    static const int cs[] = {3, 17, 64, 100, 2048};
    static const int sides[][2] = {{1, 1}, {7, 7}, {56, 56}, {5, 5}};
    static const int ns[] = {1, 3, 64};
    int runs = 0;
    for (int ci = 0; ci < 5; ci++)
        for (int si = 0; si < 4; si++)
            for (int ni = 0; ni < 3; ni++) {
                size_t count = (size_t)ns[ni] * cs[ci] * sides[si][0] * sides[si][1];
                if (count > ((size_t)1 << 24)) /* keeps the CPU loops quick */
                    continue;
                for (int dt = 0; dt < 3; dt++)
                    for (int lay = 0; lay < 2; lay++, runs++)
                        check_norms(ns[ni], cs[ci], sides[si][0], sides[si][1], (cu_dtype)dt, (cu_layout)lay, 0);
            }
    /* Unaligned pointers take the scalar path even when C or H*W would vectorise. */
    for (int dt = 0; dt < 3; dt++)
        for (int lay = 0; lay < 2; lay++, runs++)
            check_norms(3, 64, 56, 56, (cu_dtype)dt, (cu_layout)lay, 1);
    printf("  norms: %d shapes, max rel. error %.2e\n", runs, worst_norm_err);
}

/* ---- preprocessing ------------------------------------------------------------------ */

/* Whether channels [from, s.c) of the host copy are all zero bits. */
static int zero_beyond(const char *host, cu_shape s, int from, const char *what)
{
    const size_t es = cu_dtype_size(s.dtype), pixels = (size_t)s.n * s.h * s.w;
    static const char zeros[4];
    for (size_t q = 0; q < pixels; q++)
        for (int c = from; c < s.c; c++)
            if (memcmp(host + (q * s.c + c) * es, zeros, es) != 0) {
                fprintf(stderr, "%s %s, %d channels: pixel %zu channel %d is not zero\n", what, dt_name[s.dtype],
                        s.c, q, c);
                test_failures++;
                return 0;
            }
    return 1;
}

static void test_preprocess(void)
{
    net nt;
    memset(&nt, 0, sizeof nt);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(nt.mean, mean, sizeof mean);
    memcpy(nt.std, std, sizeof std);
    float table[3][256];
    net_input_table(&nt, table);
    const int n = 3, S = 33;
    const size_t pixels = (size_t)n * S * S;
    uint8_t *bytes = malloc(pixels * 3);
    for (size_t i = 0; i < pixels * 3; i++)
        bytes[i] = (uint8_t)(i < 256 ? i : next_u32()); /* every value at least once */
    uint8_t *dev_bytes;
    CUDA_OK(cudaMalloc((void **)&dev_bytes, pixels * 3));
    CUDA_OK(cudaMemcpy(dev_bytes, bytes, pixels * 3, cudaMemcpyHostToDevice));
    /* NHWC also padded to 8 channels (the stem's input): the extra ones zero */
    for (int dt = 0; dt < 3; dt++)
        for (int lay = 0; lay < 3; lay++) {
            const int C = lay == 2 ? 8 : 3;
            cu_shape s = {n, C, S, S, (cu_dtype)dt, lay ? CU_NHWC : CU_NCHW};
            const size_t es = cu_dtype_size(s.dtype);
            void *dev;
            CUDA_OK(cudaMalloc(&dev, pixels * C * es));
            CUDA_OK(cudaMemset(dev, 0xff, pixels * C * es)); /* NaN everywhere: zeros must be written */
            CUDA_OK(cu_preprocess_u8(dev_bytes, dev, s, (const float(*)[256])table, 0));
            char *got = malloc(pixels * C * es);
            CUDA_OK(cudaMemcpy(got, dev, pixels * C * es, cudaMemcpyDeviceToHost));
            int bad = !zero_beyond(got, s, 3, "preprocess");
            for (size_t q = 0; q < pixels && !bad; q++)
                for (int c = 0; c < 3; c++) {
                    size_t i = q / (S * S), p = q % (S * S), h = p / S, w = p % S;
                    float want = table[c][bytes[q * 3 + c]];
                    unsigned char want_bits[4];
                    if (dt == CU_F32)
                        memcpy(want_bits, &want, 4);
                    else
                        cu_round_to_half(&want, want_bits, 1, s.dtype);
                    if (memcmp(got + at(s, i, c, h, w) * es, want_bits, es) != 0) {
                        fprintf(stderr, "preprocess %s %s: pixel %zu channel %d: %.9g, table %.9g\n",
                                dt_name[dt], lay == 2 ? "NHWC/8" : lay ? "NHWC" : "NCHW", q, c, value_at(got, at(s, i, c, h, w), s.dtype),
                                want);
                        bad = 1;
                        test_failures++;
                        break;
                    }
                }
            /* The float API's conversion: NCHW float -> this layout and dtype. */
            float *x = malloc(sizeof(float) * pixels * 3);
            for (size_t k = 0; k < pixels * 3; k++)
                x[k] = uniform(-3, 3);
            float *dev_f;
            CUDA_OK(cudaMalloc((void **)&dev_f, sizeof(float) * pixels * 3));
            CUDA_OK(cudaMemcpy(dev_f, x, sizeof(float) * pixels * 3, cudaMemcpyHostToDevice));
            CUDA_OK(cudaMemset(dev, 0xff, pixels * C * es));
            CUDA_OK(cu_convert_nchw_f32(dev_f, 3, dev, s, 0));
            CUDA_OK(cudaMemcpy(got, dev, pixels * C * es, cudaMemcpyDeviceToHost));
            zero_beyond(got, s, 3, "convert");
            for (size_t k = 0; k < pixels * 3; k++) {
                size_t i = k / (3 * S * S), c = k / (S * S) % 3, h = k / S % S, w = k % S;
                unsigned char want_bits[4];
                if (dt == CU_F32)
                    memcpy(want_bits, &x[k], 4);
                else
                    cu_round_to_half(&x[k], want_bits, 1, s.dtype);
                if (memcmp(got + at(s, i, c, h, w) * es, want_bits, es) != 0) {
                    fprintf(stderr, "convert %s %s: element %zu differs\n", dt_name[dt],
                            lay == 2 ? "NHWC/8" : lay ? "NHWC" : "NCHW", k);
                    test_failures++;
                    break;
                }
            }
            free(x), free(got);
            CUDA_OK(cudaFree(dev_f));
            CUDA_OK(cudaFree(dev));
        }
    free(bytes);
    CUDA_OK(cudaFree(dev_bytes));
    printf("  preprocess: bit-exact in 9 dtype/layout pairs (NHWC also padded to 8 channels)\n");
}

/* ---- elementwise ops -------------------------------------------------------------------- */

/* The CPU's own activation (net.h), slope 0.2 for ACT_LEAKY. */
static float act_ref(float v, int act) { return net_activate(v, (net_act)act, 0.2f); }

static float *random_values(size_t count, float lo, float hi)
{
    float *x = malloc(sizeof(float) * count + 1);
    for (size_t i = 0; i < count; i++)
        x[i] = uniform(lo, hi);
    return x;
}

static void *to_device(const void *p, size_t bytes)
{
    void *d;
    CUDA_OK(cudaMalloc(&d, bytes ? bytes : 1));
    CUDA_OK(cudaMemcpy(d, p, bytes, cudaMemcpyHostToDevice));
    return d;
}

static void *device_zeros(size_t bytes)
{
    void *d;
    CUDA_OK(cudaMalloc(&d, bytes ? bytes : 1));
    CUDA_OK(cudaMemset(d, 0, bytes));
    return d;
}

/* got vs want, both logical NCHW, count values stored in dtype. */
static void compare(const char *what, cu_dtype dt, cu_layout lay, const float *got, const float *want, size_t count)
{
    const double tol = stored_tol(dt);
    for (size_t i = 0; i < count; i++)
        if (!test_close(got[i], want[i], tol, tol)) {
            fprintf(stderr, "%s %s %s: element %zu: %.9g, CPU %.9g\n", what, dt_name[dt], lay ? "NHWC" : "NCHW", i,
                    got[i], want[i]);
            test_failures++;
            return;
        }
}

static void test_elementwise_one(cu_dtype dt, cu_layout lay)
{
    const int N = 2, C = 5, H = 7, W = 6;
    cu_shape s = {N, C, H, W, dt, lay};
    const size_t count = count_of(s), hw = (size_t)H * W;
    float *bias = random_values(C, -1, 1), *shift = random_values(C, -1, 1), *scale = random_values(C, -2, 2);
    float *dbias = to_device(bias, sizeof(float) * C), *dshift = to_device(shift, sizeof(float) * C);
    float *dscale = to_device(scale, sizeof(float) * C);

    /* bias + residual + activation, in place; and affine */
    for (int act = 0; act <= CU_ACT_LEAKY; act++)
        for (int with_res = 0; with_res < 2; with_res++) {
            float *y = random_values(count, -6, 6), *r = random_values(count, -2, 2);
            void *dy = upload(y, s), *dr = upload(r, s);
            CUDA_OK(cu_bias_act(dy, with_res ? dr : NULL, dbias, s, act, 0.2f, 0));
            float *got = download(dy, s), *want = malloc(sizeof(float) * count);
            for (size_t i = 0; i < count; i++)
                want[i] = act_ref(y[i] + bias[i / hw % C] + (with_res ? r[i] : 0.0f), act);
            compare(with_res ? "bias_act+res" : "bias_act", dt, lay, got, want, count);
            CUDA_OK(cu_affine(dr, dy, dscale, dshift, s, act, 0.2f, 0));
            free(got);
            got = download(dy, s);
            for (size_t i = 0; i < count; i++)
                want[i] = act_ref(r[i] * scale[i / hw % C] + shift[i / hw % C], act);
            compare("affine", dt, lay, got, want, count);
            free(y), free(r), free(got), free(want);
            CUDA_OK(cudaFree(dy));
            CUDA_OK(cudaFree(dr));
        }

    float *x = random_values(count, -4, 4);
    void *dx = upload(x, s);
    /* max pool: 3x3 stride 2 pad 1 (ResNet's), 2x2 stride 2 */
    static const int pools[][3] = {{3, 2, 1}, {2, 2, 0}};
    for (int pi = 0; pi < 2; pi++) {
        const int k = pools[pi][0], st = pools[pi][1], pad = pools[pi][2];
        const int OH = (H + 2 * pad - k) / st + 1, OW = (W + 2 * pad - k) / st + 1;
        cu_shape o = {N, C, OH, OW, dt, lay};
        void *dy = device_zeros(count_of(o) * cu_dtype_size(dt));
        CUDA_OK(cu_maxpool(dx, dy, s, OH, OW, k, st, pad, 0));
        float *got = download(dy, o), *want = malloc(sizeof(float) * count_of(o));
        for (int pl = 0; pl < N * C; pl++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    float m = -INFINITY;
                    for (int kh = 0; kh < k; kh++)
                        for (int kw = 0; kw < k; kw++) {
                            int ih = oh * st - pad + kh, iw = ow * st - pad + kw;
                            if (ih >= 0 && ih < H && iw >= 0 && iw < W && x[(size_t)pl * hw + ih * W + iw] > m)
                                m = x[(size_t)pl * hw + ih * W + iw];
                        }
                    want[((size_t)pl * OH + oh) * OW + ow] = m;
                }
        compare("maxpool", dt, lay, got, want, count_of(o));
        free(got), free(want);
        CUDA_OK(cudaFree(dy));
    }
    /* adaptive average pool: overlapping bins, upsampling bins, global */
    static const int avg[][2] = {{3, 3}, {1, 1}, {4, 5}, {9, 8}};
    for (int ai = 0; ai < 4; ai++) {
        const int OH = avg[ai][0], OW = avg[ai][1];
        cu_shape o = {N, C, OH, OW, dt, lay};
        void *dy = device_zeros(count_of(o) * cu_dtype_size(dt));
        CUDA_OK(cu_avgpool(dx, dy, s, OH, OW, 0));
        float *got = download(dy, o), *want = malloc(sizeof(float) * count_of(o));
        for (int pl = 0; pl < N * C; pl++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    int h0 = oh * H / OH, h1 = ((oh + 1) * H + OH - 1) / OH;
                    int w0 = ow * W / OW, w1 = ((ow + 1) * W + OW - 1) / OW;
                    double sum = 0;
                    for (int ih = h0; ih < h1; ih++)
                        for (int iw = w0; iw < w1; iw++)
                            sum += x[(size_t)pl * hw + ih * W + iw];
                    want[((size_t)pl * OH + oh) * OW + ow] = (float)(sum / ((h1 - h0) * (w1 - w0)));
                }
        compare("avgpool", dt, lay, got, want, count_of(o));
        free(got), free(want);
        CUDA_OK(cudaFree(dy));
    }
    /* option-A shortcut, 5 -> 9 channels (2 zero channels each side), odd size */
    {
        const int CO = 9, OH = (H + 1) / 2, OW = (W + 1) / 2, pad = (CO - C) / 2;
        cu_shape o = {N, CO, OH, OW, dt, lay};
        void *dy = device_zeros(count_of(o) * cu_dtype_size(dt));
        CUDA_OK(cu_shortcut_a(dx, dy, s, CO, OH, OW, 0));
        float *got = download(dy, o), *want = malloc(sizeof(float) * count_of(o));
        for (int i = 0; i < N; i++)
            for (int c = 0; c < CO; c++)
                for (int h = 0; h < OH; h++)
                    for (int w = 0; w < OW; w++) {
                        int ci = c - pad;
                        want[(((size_t)i * CO + c) * OH + h) * OW + w] =
                            ci < 0 || ci >= C ? 0.0f : x[(((size_t)i * C + ci) * H + 2 * h) * W + 2 * w];
                    }
        compare("shortcut_a", dt, lay, got, want, count_of(o));
        free(got), free(want);
        CUDA_OK(cudaFree(dy));
    }
    /* channel scale by an n x C x 1 x 1 tensor */
    {
        cu_shape so = {N, C, 1, 1, dt, lay};
        float *sc = random_values(count_of(so), -2, 2);
        void *dsc = upload(sc, so), *dy = device_zeros(count * cu_dtype_size(dt));
        CUDA_OK(cu_scale(dx, dsc, dy, s, 1, 0));
        float *got = download(dy, s), *want = malloc(sizeof(float) * count);
        for (size_t i = 0; i < count; i++)
            want[i] = x[i] * sc[i / hw];
        compare("scale", dt, lay, got, want, count);
        free(sc), free(got), free(want);
        CUDA_OK(cudaFree(dsc));
        CUDA_OK(cudaFree(dy));
    }
    /* as float rows in PyTorch's flatten order; clip */
    {
        float *drows = device_zeros(sizeof(float) * count);
        CUDA_OK(cu_to_f32_rows(dx, s, drows, 0));
        float *rows = malloc(sizeof(float) * count);
        CUDA_OK(cudaMemcpy(rows, drows, sizeof(float) * count, cudaMemcpyDeviceToHost));
        compare("to_f32_rows", CU_F32, lay, rows, x, count); /* x is logical NCHW = rows */
        void *dy = device_zeros(count * cu_dtype_size(dt));
        CUDA_OK(cu_clip(dx, dy, count, dt, 1.25f, 0));
        float *got = download(dy, s), *want = malloc(sizeof(float) * count);
        for (size_t i = 0; i < count; i++)
            want[i] = x[i] < 1.25f ? x[i] : 1.25f;
        compare("clip", dt, lay, got, want, count);
        free(rows), free(got), free(want);
        CUDA_OK(cudaFree(drows));
        CUDA_OK(cudaFree(dy));
    }
    /* linear epilogue: typed output and its float copy */
    {
        const int n = 3, K = 7;
        float *acc = random_values((size_t)n * K, -5, 5), *b = random_values(K, -1, 1);
        float *dacc = to_device(acc, sizeof(float) * n * K), *db = to_device(b, sizeof(float) * K);
        void *dy = device_zeros((size_t)n * K * cu_dtype_size(dt));
        float *df = device_zeros(sizeof(float) * n * K);
        CUDA_OK(cu_linear_epilogue(dacc, db, n, K, CU_ACT_RELU, 0, dy, dt, df, 0));
        cu_shape o = {n, K, 1, 1, dt, lay};
        float *got = download(dy, o), *gotf = malloc(sizeof(float) * n * K), *want = malloc(sizeof(float) * n * K);
        CUDA_OK(cudaMemcpy(gotf, df, sizeof(float) * n * K, cudaMemcpyDeviceToHost));
        for (int i = 0; i < n * K; i++)
            want[i] = act_ref(acc[i] + b[i % K], CU_ACT_RELU);
        compare("linear_epilogue", dt, lay, got, want, (size_t)n * K);
        compare("linear_epilogue(f32)", CU_F32, lay, gotf, want, (size_t)n * K);
        free(acc), free(b), free(got), free(gotf), free(want);
        CUDA_OK(cudaFree(dacc));
        CUDA_OK(cudaFree(db));
        CUDA_OK(cudaFree(dy));
        CUDA_OK(cudaFree(df));
    }
    CUDA_OK(cudaDeviceSynchronize());
    free(x), free(bias), free(shift), free(scale);
    CUDA_OK(cudaFree(dx));
    CUDA_OK(cudaFree(dbias));
    CUDA_OK(cudaFree(dshift));
    CUDA_OK(cudaFree(dscale));
}

static void test_elementwise(void)
{
    for (int dt = 0; dt < 3; dt++)
        for (int lay = 0; lay < 2; lay++)
            test_elementwise_one((cu_dtype)dt, (cu_layout)lay);
    printf("  elementwise: bias_act, affine, maxpool, avgpool, shortcut_a, scale, to_f32_rows, clip, "
           "linear_epilogue\n");
}
/* ---- the activation itself -------------------------------------------------------------- */

/* common.cuh's activate() against net_activate on 4001 values in [-12, 12]
 * (every branch point -3, 0, 3, 6 among them), float storage: the same
 * formulas, so only expf's last bit may differ. */
static void test_activations(void)
{
    const int count = 4001;
    float *x = malloc(sizeof(float) * count), *got = malloc(sizeof(float) * count);
    for (int i = 0; i < count; i++)
        x[i] = -12.0f + 24.0f * (float)i / (float)(count - 1);
    cu_shape s = {1, count, 1, 1, CU_F32, CU_NCHW};
    void *dx = to_device(x, sizeof(float) * count), *dy = device_zeros(sizeof(float) * count);
    for (int act = 0; act <= CU_ACT_LEAKY; act++) {
        CUDA_OK(cu_add_act(dx, NULL, dy, s, act, 0.2f, 0));
        CUDA_OK(cudaMemcpy(got, dy, sizeof(float) * count, cudaMemcpyDeviceToHost));
        for (int i = 0; i < count; i++) {
            float want = net_activate(x[i], (net_act)act, 0.2f);
            if (!test_close(got[i], want, 4e-7, 1e-30)) {
                fprintf(stderr, "activation %d at %.9g: %.9g, net_activate %.9g\n", act, x[i], got[i], want);
                test_failures++;
                break;
            }
        }
    }
    free(x), free(got);
    CUDA_OK(cudaFree(dx));
    CUDA_OK(cudaFree(dy));
    printf("  activations: all %d against net_activate\n", CU_ACT_LEAKY + 1);
}

/* ---- the uniform fill Find times on -------------------------------------------------- */

/* cu_fill_uniform in each dtype over 2^20 + 7 values (not a multiple of the
 * block): inside [-1, 1], mean 0 and variance 1/3 within 6 standard errors
 * (sd of the mean 0.00056, of the variance 0.00029 at this count), the same
 * values for the same seed, others for another seed. */
static void test_fill(void)
{
    const size_t count = ((size_t)1 << 20) + 7;
    float *a = NULL, *b = NULL;
    for (int dt = 0; dt < 3; dt++) {
        cu_shape s = {1, (int)count, 1, 1, (cu_dtype)dt, CU_NCHW};
        void *d = device_zeros(count * cu_dtype_size((cu_dtype)dt));
        CUDA_OK(cu_fill_uniform(d, count, (cu_dtype)dt, 7, 0));
        a = download(d, s);
        CUDA_OK(cu_fill_uniform(d, count, (cu_dtype)dt, 7, 0));
        b = download(d, s);
        double sum = 0, sq = 0;
        size_t outside = 0, differ = 0;
        for (size_t i = 0; i < count; i++) {
            sum += a[i], sq += (double)a[i] * a[i];
            outside += !(a[i] >= -1.0f && a[i] <= 1.0f);
            differ += a[i] != b[i];
        }
        const double mean = sum / count, var = sq / count - mean * mean;
        if (outside || differ || fabs(mean) > 6 * 0.00056 || fabs(var - 1.0 / 3) > 6 * 0.00029) {
            fprintf(stderr, "fill %s: %zu outside [-1, 1], %zu differ on a repeat, mean %.5f, variance %.5f\n",
                    dt_name[dt], outside, differ, mean, var);
            test_failures++;
        }
        free(b);
        CUDA_OK(cu_fill_uniform(d, count, (cu_dtype)dt, 8, 0));
        b = download(d, s);
        differ = 0;
        for (size_t i = 0; i < count; i++)
            differ += a[i] != b[i];
        if (differ < count / 2) {
            fprintf(stderr, "fill %s: seeds 7 and 8 agree on %zu of %zu values\n", dt_name[dt], count - differ, count);
            test_failures++;
        }
        free(a), free(b);
        CUDA_OK(cudaFree(d));
    }
    printf("  fill: uniform in 3 dtypes, repeatable per seed\n");
}
#endif /* FN_WITH_CUDA */

int main(void)
{
    SKIP_WITHOUT_CUDA();
#ifdef FN_WITH_CUDA
    test_norms();
    test_preprocess();
    test_elementwise();
    test_activations();
    test_fill();
    CUDA_OK(cudaDeviceSynchronize());
    return test_finish("test_cuda_norms");
#endif
}
