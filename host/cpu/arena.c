/* arena.c: where a plan's tensors live, and the memory they live in.
 *
 * As net_plan_memory does for the net, tensors whose lifetimes do not overlap
 * share bytes (first fit in definition order); here sizes are the bytes of the
 * layout oneDNN chose, which pads channels up to a block. A convolution's
 * output that sums a dying residual in place takes the residual's bytes. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"
#include "error.h"
#include "plan.h"

#define ALIGN 4096u
#define HUGE_PAGE (2u << 20)

typedef struct live { size_t offset, size; int last, tensor; } live;

static int by_offset(const void *a, const void *b)
{
    const live *x = a, *y = b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

void plan_memory(plan *p, int n_ops)
{
    const int T = p->n_t;
    live *alive = malloc(sizeof(live) * (size_t)(T + 1));
    int *order = malloc(sizeof(int) * (size_t)(T + 1));
    if (!alive || !order) { /* no sharing at all: correct, just larger */
        size_t top = 0;
        for (int t = 0; t < T; t++) {
            p->t[t].bytes = dnnl_memory_desc_get_size(&p->t[t].md);
            p->t[t].offset = top;
            top += (p->t[t].bytes + ALIGN - 1) / ALIGN * ALIGN;
        }
        p->arena_bytes = top;
        free(alive), free(order);
        return;
    }
    /* definition order: a stable sort of tensor ids by def (temporaries come last in id order) */
    int k = 0;
    for (int d = -1; d <= n_ops; d++)
        for (int t = 0; t < T; t++)
            if (p->t[t].def == d)
                order[k++] = t;
    int n_alive = 0;
    size_t top = 0;
    for (int o = 0; o < k; o++) {
        ptensor *x = &p->t[order[o]];
        x->bytes = x->md.ndims ? dnnl_memory_desc_get_size(&x->md) : 0;
        int j = 0;
        for (int a = 0; a < n_alive; a++)
            if (alive[a].last >= x->def)
                alive[j++] = alive[a];
        n_alive = j;
        int shared = 0;
        for (int a = 0; x->alias >= 0 && a < n_alive; a++)
            if (alive[a].tensor == x->alias) { /* the residual's bytes, alive as long as x */
                x->offset = alive[a].offset;
                if (alive[a].last < x->last)
                    alive[a].last = x->last;
                alive[a].tensor = order[o];
                shared = 1;
            }
        if (shared)
            continue;
        qsort(alive, (size_t)n_alive, sizeof *alive, by_offset);
        size_t size = (x->bytes + ALIGN - 1) / ALIGN * ALIGN, at = 0;
        for (int a = 0; a < n_alive; a++) {
            if (alive[a].offset >= at + size)
                break;
            if (alive[a].offset + alive[a].size > at)
                at = alive[a].offset + alive[a].size;
        }
        x->offset = at;
        alive[n_alive++] = (live){at, size, x->last, order[o]};
        if (at + size > top)
            top = at + size;
    }
    p->arena_bytes = top;
    free(alive), free(order);
}

fn_status plan_bind(cpu_ctx *ctx, plan *p)
{
    for (int t = 0; t < p->n_t; t++) {
        ptensor *x = &p->t[t];
        if (!x->md.ndims)
            continue;
        dnnl_status_t s = x->mem ? dnnl_memory_set_data_handle(x->mem, ctx->arena + x->offset)
                                 : dnnl_memory_create(&x->mem, &x->md, ctx->engine, ctx->arena + x->offset);
        if (s != dnnl_success)
            return cpu_dnnl_fail(s, "memory", "an activation");
    }
    for (int i = 0; i < p->n_scratch; i++) {
        dnnl_status_t s = dnnl_memory_set_data_handle(p->scratch_mems[i], ctx->scratch);
        if (s != dnnl_success)
            return cpu_dnnl_fail(s, "memory", "the scratchpad");
    }
    if (p->react_scratch_mem) {
        dnnl_status_t s = dnnl_memory_set_data_handle(p->react_scratch_mem, ctx->scratch);
        if (s != dnnl_success)
            return cpu_dnnl_fail(s, "memory", "the scratchpad");
    }
    return FN_OK;
}

/* 2 MiB-aligned and advised onto huge pages: a ResNet-50 arena spans hundreds
 * of 4 KiB pages per layer, and TLB misses were part of the run-to-run swing.
 * Touched once here by the threads that will use it, so that no timed batch
 * pays for page faults. */
int arena_reserve(unsigned char **buf, size_t *have, size_t bytes, int threads)
{
    if (bytes <= *have && *buf)
        return 1;
    size_t size = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    if (size == 0)
        size = HUGE_PAGE;
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE, size) != 0)
        return 0;
#ifdef MADV_HUGEPAGE
    madvise(p, size, MADV_HUGEPAGE);
#endif
    long pages = (long)(size / 4096);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < pages; i++)
        ((unsigned char *)p)[i * 4096] = 0;
    free(*buf);
    *buf = p;
    *have = size;
    return 1;
}

void arena_release(unsigned char *buf, size_t bytes)
{
    (void)bytes;
    free(buf);
}
