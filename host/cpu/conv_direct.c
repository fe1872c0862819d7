/* conv_direct.c: direct convolution for stride-1 k x k convolutions (the 3x3
 * layers that dominate ResNets and VGGs), without im2col.
 *
 * The input is first copied once into a zero-padded buffer whose rows are wide
 * enough for whole vectors, so every input vector the kernel needs is one
 * unaligned load at a fixed offset: no im2col matrix (k*k times the input) is
 * ever written, and no GEMM packing pass reads it back. The kernel keeps a
 * 6-channel x 16-column tile of outputs in registers (12 vectors of 8 floats),
 * streams the weights from a panel-packed copy made at load time, and applies
 * bias, residual and activation before its only store. */
#include "conv_direct.h"

#include <stdlib.h>
#include <string.h>

#define VEC 8     /* floats per vector */
#define ROWS 6    /* output channels per register tile */

typedef float vfloat __attribute__((vector_size(VEC * sizeof(float))));
typedef int vint __attribute__((vector_size(VEC * sizeof(int))));

static inline vfloat load(const float *p)
{
    vfloat v;
    memcpy(&v, p, sizeof v); /* unaligned load */
    return v;
}

static inline vfloat splat(float x) { return (vfloat){x, x, x, x, x, x, x, x}; }

int direct_conv_eligible(const net_op *op, const net_tensor *in)
{
    /* the vector epilogue knows the piecewise-linear activations only */
    return op->kind == OP_CONV && op->groups == 1 && op->stride == 1 && op->k > 1 && op->k <= 7 &&
           op->act <= ACT_HARDSIGMOID;
}

float *direct_pack_weights(const net_op *op, int cin, int cout)
{
    const int kk = op->k * op->k, panels = (cout + ROWS - 1) / ROWS;
    float *wp = calloc((size_t)panels * cin * kk * ROWS, sizeof(float));
    if (!wp)
        return NULL;
    for (int co = 0; co < cout; co++)
        for (int i = 0; i < cin * kk; i++)
            wp[((size_t)(co / ROWS) * cin * kk + i) * ROWS + co % ROWS] = op->w[(size_t)co * cin * kk + i];
    return wp;
}

void direct_padded_shape(const net_op *op, const net_tensor *in, const net_tensor *out, int *hp,
                         int *wp)
{
    *hp = in->h + 2 * op->pad;
    int segs = (out->w + VEC - 1) / VEC;
    *wp = segs * VEC + op->k - 1; /* whole vectors for the last, partial segment */
}

void direct_pad_input(const float *x, float *padded, const net_op *op, const net_tensor *in,
                      const net_tensor *out, int n, int plane0, int plane1)
{
    int Hp, Wp;
    direct_padded_shape(op, in, out, &Hp, &Wp);
    const int p = op->pad;
    for (int pl = plane0; pl < plane1; pl++) { /* plane = (channel, image) */
        float *dst = padded + (size_t)pl * Hp * Wp;
        const float *src = x + (size_t)pl * in->h * in->w;
        memset(dst, 0, sizeof(float) * (size_t)p * Wp);
        for (int h = 0; h < in->h; h++) {
            float *row = dst + (size_t)(h + p) * Wp;
            memset(row, 0, sizeof(float) * (size_t)p);
            memcpy(row + p, src + (size_t)h * in->w, sizeof(float) * (size_t)in->w);
            memset(row + p + in->w, 0, sizeof(float) * (size_t)(Wp - p - in->w));
        }
        memset(dst + (size_t)(in->h + p) * Wp, 0, sizeof(float) * (size_t)(Hp - in->h - p) * Wp);
    }
}

/* Lane-wise max and min through masks (C has no vector ?:); both compile to
 * single instructions. */
static inline vfloat vmax(vfloat a, vfloat b)
{
    vint m = a > b;
    return (vfloat)(((vint)a & m) | ((vint)b & ~m));
}

static inline vfloat vmin(vfloat a, vfloat b)
{
    vint m = a < b;
    return (vfloat)(((vint)a & m) | ((vint)b & ~m));
}

static inline vfloat activate_vec(vfloat v, net_act act)
{
    const vfloat zero = splat(0.0f), six = splat(6.0f), three = splat(3.0f);
    switch (act) {
    case ACT_NONE:
        return v;
    case ACT_RELU:
        return vmax(v, zero);
    case ACT_RELU6:
        return vmin(vmax(v, zero), six);
    case ACT_HARDSWISH:
        return v * vmin(vmax(v + three, zero), six) / six;
    case ACT_HARDSIGMOID:
        return vmin(vmax(v + three, zero), six) / six;
    default: /* not eligible: see direct_conv_eligible */
        return v;
    }
    return v;
}

/* Where one vector of the tile reads and writes. */
typedef struct spot {
    const float *in;  /* padded input of channel 0 at (row, first column) */
    size_t out;       /* output offset of channel 0 */
    int lanes;        /* valid columns: VEC, or fewer at a row's end */
} spot;

/* One tile: ROWS channels from co0 x NV vectors (1 or 2) at the given spots.
 * NV and k are constants at each inlined call, so the loops unroll. */
static inline __attribute__((always_inline)) void tile(const spot *sp, int NV, int k,
                                                       const float *wpanel, int cin,
                                                       size_t in_plane, int Wp, int co0, int cout,
                                                       size_t out_plane, const net_op *op,
                                                       const float *res, float *y)
{
    vfloat acc[ROWS][2];
    for (int r = 0; r < ROWS; r++)
        acc[r][0] = acc[r][1] = splat(0.0f);
    const float *w = wpanel;
    for (int c = 0; c < cin; c++) {
        const float *i0 = sp[0].in + (size_t)c * in_plane, *i1 = sp[NV - 1].in + (size_t)c * in_plane;
        for (int kh = 0; kh < k; kh++, i0 += Wp, i1 += Wp)
            for (int kw = 0; kw < k; kw++, w += ROWS) {
                vfloat b0 = load(i0 + kw), b1 = NV == 2 ? load(i1 + kw) : b0;
                for (int r = 0; r < ROWS; r++) {
                    vfloat wr = splat(w[r]);
                    acc[r][0] += wr * b0;
                    if (NV == 2)
                        acc[r][1] += wr * b1;
                }
            }
    }
    for (int r = 0; r < ROWS && co0 + r < cout; r++) {
        const vfloat bias = splat(op->b[co0 + r]);
        for (int v = 0; v < NV; v++) {
            const size_t at = (size_t)(co0 + r) * out_plane + sp[v].out;
            vfloat out = acc[r][v] + bias;
            if (sp[v].lanes == VEC) { /* constant sizes: plain vector moves */
                if (res)
                    out += load(res + at);
                out = activate_vec(out, op->act);
                memcpy(y + at, &out, sizeof out);
                continue;
            }
            float tmp[VEC] = {0};
            for (int l = 0; res && l < sp[v].lanes; l++)
                tmp[l] = res[at + l];
            out = activate_vec(out + load(tmp), op->act);
            memcpy(tmp, &out, sizeof out);
            for (int l = 0; l < sp[v].lanes; l++)
                y[at + l] = tmp[l];
        }
    }
}

void direct_conv_rows(const float *padded, const float *wpacked, const net_op *op, int cin,
                      int cout, const net_tensor *in, const net_tensor *out, int n, const float *res,
                      float *y, int q0, int q1)
{
    int Hp, Wp;
    direct_padded_shape(op, in, out, &Hp, &Wp);
    const int k = op->k, OW = out->w, segs = (OW + VEC - 1) / VEC;
    const int panels = (cout + ROWS - 1) / ROWS;
    const size_t in_plane = (size_t)n * Hp * Wp, out_plane = (size_t)n * out->h * OW;
    /* The vectors of [q0, q1) in order; pairs of them make the tiles, so a
     * narrow layer (one vector per row) pairs neighbouring rows. */
    const int count = (q1 - q0) * segs;
    for (int v0 = 0; v0 < count; v0 += 2) {
        spot sp[2];
        const int nv = v0 + 1 < count ? 2 : 1;
        for (int v = 0; v < nv; v++) {
            int q = q0 + (v0 + v) / segs, col = (v0 + v) % segs * VEC;
            int img = q / out->h, oh = q % out->h;
            sp[v].in = padded + (size_t)img * Hp * Wp + (size_t)oh * Wp + col;
            sp[v].out = ((size_t)img * out->h + oh) * OW + col;
            sp[v].lanes = OW - col < VEC ? OW - col : VEC;
        }
        for (int pnl = 0; pnl < panels; pnl++) {
            const float *wp = wpacked + (size_t)pnl * cin * k * k * ROWS;
            if (nv == 2 && k == 3)
                tile(sp, 2, 3, wp, cin, in_plane, Wp, pnl * ROWS, cout, out_plane, op, res, y);
            else if (nv == 2)
                tile(sp, 2, k, wp, cin, in_plane, Wp, pnl * ROWS, cout, out_plane, op, res, y);
            else
                tile(sp, 1, k, wp, cin, in_plane, Wp, pnl * ROWS, cout, out_plane, op, res, y);
        }
    }
}
