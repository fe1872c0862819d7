/* check.h: oneDNN status checks for the CPU backend, as cuda/check.h is for
 * CUDA: a failed call becomes an fn_status and a message naming what failed
 * and for which op; out of memory is FN_ERR_NO_MEMORY, a primitive this CPU
 * lacks FN_ERR_UNAVAILABLE, anything else FN_ERR_DEVICE. */
#ifndef FN_CPU_CHECK_H
#define FN_CPU_CHECK_H

#include <oneapi/dnnl/dnnl.h>

#include "error.h"

static inline fn_status cpu_dnnl_fail(dnnl_status_t s, const char *what, const char *op)
{
    if (s == dnnl_out_of_memory)
        return fn_fail(FN_ERR_NO_MEMORY, "oneDNN %s for %s: out of memory", what, op);
    if (s == dnnl_unimplemented)
        return fn_fail(FN_ERR_UNAVAILABLE, "oneDNN has no %s for %s on this CPU (ISA %d)", what, op,
                       (int)dnnl_get_effective_cpu_isa());
    return fn_fail(FN_ERR_DEVICE, "oneDNN %s for %s failed (status %d)", what, op, (int)s);
}

#endif
