/* fuzz_safetensors.c: st_open on arbitrary bytes, then every tensor read as
 * float32 with its own shape (what a model builder does). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_file.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_file *f = NULL;
    if (st_open(fuzz_file("w.safetensors", data, size), &f) != FN_OK)
        return 0;
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        size_t n = 1;
        for (int d = 0; d < t->ndim; d++)
            n *= (size_t)t->shape[d];
        if (n > (1u << 22))
            continue;
        float *dst = malloc(n ? n * sizeof *dst : 1);
        if (dst)
            st_read_f32(f, t->name, t->ndim, t->shape, dst);
        free(dst);
        st_find(f, t->name);
    }
    st_close(f);
    return 0;
}
