/* plain_ops.c: the few loops the CPU backend runs itself, on any layout of
 * layout.h: writing the normalised input, the option-A shortcut of the CIFAR
 * ResNets, and adaptive average pooling with uneven bins. Each is a small
 * share of a pass; what matters is that they read the layouts oneDNN chose
 * instead of forcing reorders around them. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "layout.h"
#include "plan.h"

void cpu_load_input(const ptensor *t, unsigned char *arena, int n, int size, const float *x,
                const uint8_t *x_u8, const float table[3][256], int threads)
{
    layout l;
    layout_of(&t->md, &l); /* dnnl_ops.c gives the input a layout.h layout */
    void *dst = arena + t->offset;
    const size_t hw = (size_t)size * size;
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
    for (int i = 0; i < n; i++)
        for (int y = 0; y < size; y++)
            for (int c = 0; c < 3; c++) {
                size_t at = layout_at(&l, i, c, y, 0);
                if (x) {
                    const float *s = x + ((size_t)i * 3 + c) * hw + (size_t)y * size;
                    for (int w = 0; w < size; w++)
                        layout_set(&l, dst, at + (size_t)w * l.sw, s[w]);
                } else {
                    const uint8_t *s = x_u8 + ((size_t)i * hw + (size_t)y * size) * 3 + c;
                    for (int w = 0; w < size; w++)
                        layout_set(&l, dst, at + (size_t)w * l.sw, table[c][s[3 * w]]);
                }
            }
}

/* out[c] = in[c - (out.c - in.c)/2, ::2, ::2], zero elsewhere. */
void cpu_shortcut_a(const ptensor *in, const ptensor *out, const net *nt, const net_op *op,
                unsigned char *arena, int n, int threads)
{
    const net_tensor *ti = &nt->tensors[op->in], *to = &nt->tensors[op->out];
    layout li, lo;
    layout_of(&in->md, &li);
    layout_of(&out->md, &lo);
    const void *x = arena + in->offset;
    void *y = arena + out->offset;
    const int pad = (to->c - ti->c) / 2;
    memset(y, 0, out->bytes); /* the zero channels, and any block padding */
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
    for (int i = 0; i < n; i++)
        for (int c = 0; c < ti->c; c++)
            for (int h = 0; h < to->h; h++)
                for (int w = 0; w < to->w; w++)
                    layout_set(&lo, y, layout_at(&lo, i, c + pad, h, w),
                               layout_get(&li, x, layout_at(&li, i, c, 2 * h, 2 * w)));
}

/* PyTorch's adaptive pooling bins: [floor(i*H/O), ceil((i+1)*H/O)). */
void cpu_adaptive_avgpool(const ptensor *in, const ptensor *out, const net *nt, const net_op *op,
                      unsigned char *arena, int n, int threads)
{
    const net_tensor *ti = &nt->tensors[op->in], *to = &nt->tensors[op->out];
    layout li, lo;
    layout_of(&in->md, &li);
    layout_of(&out->md, &lo);
    const void *x = arena + in->offset;
    void *y = arena + out->offset;
    memset(y, 0, out->bytes);
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
    for (int i = 0; i < n; i++)
        for (int c = 0; c < ti->c; c++)
            for (int oh = 0; oh < to->h; oh++) {
                int h0 = oh * ti->h / to->h, h1 = ((oh + 1) * ti->h + to->h - 1) / to->h;
                for (int ow = 0; ow < to->w; ow++) {
                    int w0 = ow * ti->w / to->w, w1 = ((ow + 1) * ti->w + to->w - 1) / to->w;
                    double sum = 0;
                    for (int ih = h0; ih < h1; ih++)
                        for (int iw = w0; iw < w1; iw++)
                            sum += layout_get(&li, x, layout_at(&li, i, c, ih, iw));
                    layout_set(&lo, y, layout_at(&lo, i, c, oh, ow),
                               (float)(sum / ((h1 - h0) * (w1 - w0))));
                }
            }
}
