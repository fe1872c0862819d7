/* onnx_stub.c: the ONNX reader's entry points in a build without protobuf-c. */
#include "error.h"
#include "onnx_graph.h"

fn_status onnx_parse(const uint8_t *bytes, size_t size, const char *path, ox_graph **out)
{
    *out = NULL;
    return fn_fail(FN_ERR_UNAVAILABLE, "%s: this featurenorm was built without ONNX support "
                   "(configure with -DFEATURENORM_ONNX=ON; needs protobuf-c and onnx.proto)", path);
}

fn_status onnx_read(const char *path, ox_graph **out) { return onnx_parse(NULL, 0, path, out); }
