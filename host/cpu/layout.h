/* layout.h: where element (n, c, h, w) lives in a oneDNN memory, for the few
 * loops of the CPU backend that are not oneDNN primitives (input, norms, the
 * option-A shortcut, uneven adaptive pooling).
 *
 * The layouts oneDNN picks for activations are all "one channel block":
 * nchw and nhwc (block 1) and nChw8c / nChw16c (block 8 / 16, channels padded
 * up to a whole block). A 2-D (n x c) memory reads as n x c x 1 x 1. */
#ifndef FN_CPU_LAYOUT_H
#define FN_CPU_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "float16.h"

typedef struct layout {
    int block;                 /* channels innermost per block: 1, 8, 16 */
    size_t sn, sc, sh, sw;     /* element strides of an image, a channel block, a row, a column */
    size_t offset0;
    int bf16;                  /* elements are bfloat16, else float */
} layout;

/* 1 when md is one of the layouts above, with its strides in *l. */
static inline int layout_of(const dnnl_memory_desc_t *md, layout *l)
{
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    if (md->format_kind != dnnl_blocked || (md->ndims != 4 && md->ndims != 2) ||
        (md->data_type != dnnl_f32 && md->data_type != dnnl_bf16))
        return 0;
    if (b->inner_nblks > 1 || (b->inner_nblks == 1 && b->inner_idxs[0] != 1))
        return 0;
    l->block = b->inner_nblks ? (int)b->inner_blks[0] : 1;
    l->sn = (size_t)b->strides[0];
    l->sc = (size_t)b->strides[1];
    l->sh = md->ndims == 4 ? (size_t)b->strides[2] : 0;
    l->sw = md->ndims == 4 ? (size_t)b->strides[3] : 0;
    l->offset0 = (size_t)md->offset0;
    l->bf16 = md->data_type == dnnl_bf16;
    return 1;
}

static inline size_t layout_at(const layout *l, int n, int c, int h, int w)
{
    return l->offset0 + (size_t)n * l->sn + (size_t)(c / l->block) * l->sc + (size_t)h * l->sh +
           (size_t)w * l->sw + (size_t)(c % l->block);
}

static inline float layout_get(const layout *l, const void *base, size_t i)
{
    return l->bf16 ? bf16_to_float(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

static inline void layout_set(const layout *l, void *base, size_t i, float v)
{
    if (l->bf16)
        ((uint16_t *)base)[i] = float_to_bf16(v);
    else
        ((float *)base)[i] = v;
}

#endif
