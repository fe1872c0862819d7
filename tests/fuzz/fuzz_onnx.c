/* fuzz_onnx.c: libFuzzer target for the ONNX reader (protobuf -> validated graph)
 * and the converter (graph -> net) on arbitrary bytes.
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DFEATURENORM_FUZZ=ON -DFEATURENORM_SANITIZE=ON
 *   cmake --build build-fuzz --target fuzz_onnx
 *   build-fuzz/tests/fuzz_onnx -max_len=65536 tests/fuzz/corpus/onnx
 *
 * Every input must end in FN_OK or an error status: no crash, leak or
 * sanitizer report. External data is looked up beside "fuzz.onnx" in the
 * working directory, where there is none, so that path fails cleanly too. */
#include <stddef.h>
#include <stdint.h>

#include "net.h"
#include "onnx_graph.h"
#include "onnx_net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ox_graph *g;
    if (onnx_parse(data, size, "fuzz.onnx", &g) != FN_OK)
        return 0;
    net n;
    if (onnx_graph_to_net(g, NULL, 0, 0, &n) == FN_OK)
        net_free(&n);
    onnx_graph_free(g);
    return 0;
}
