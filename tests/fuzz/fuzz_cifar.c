/* fuzz_cifar.c: a CIFAR binary batch on arbitrary bytes (CIFAR-10 records,
 * or CIFAR-100 by size), every record read. */
#include <stdint.h>

#include "dataset.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fn_dataset *d = NULL;
    /* The file name picks CIFAR-100's two label bytes (test.bin) or not. */
    const char *name = size % 2 ? "test.bin" : "test_batch.bin";
    if (fn_dataset_open(fuzz_file(name, data, size), NULL, &d) != FN_OK)
        return 0;
    for (size_t i = 0; i < fn_dataset_size(d); i++) {
        image_rgb im = {0};
        fn_dataset_label(d, i);
        if (dataset_read(d, i, &im) == FN_OK)
            image_free(&im);
    }
    fn_dataset_free(d);
    return 0;
}
