/* cuda_stub.c: the CUDA backend's entry points in a build without CUDA. */
#include <stdio.h>

#include "backend.h"
#include "error.h"

fn_status cuda_backend_create(const net *net, const backend_config *cfg, backend **out)
{
    *out = NULL;
    return fn_fail(FN_ERR_UNAVAILABLE,
                   "the CUDA backend is not built in (configure with -DFEATURENORM_CUDA=ON "
                   "on a machine with nvcc and cuDNN)");
}

int cuda_backend_usable(char *why, size_t why_len)
{
    snprintf(why, why_len, "this build has no CUDA backend");
    return 0;
}

int fn_cuda_device_count(void) { return 0; }
