/* fuzz_list.c: a list-file dataset (.txt) on arbitrary bytes: parsed, then
 * its first items read as images. Entries name files relative to the list's
 * private folder, where the fuzz input itself is the only file. */
#include <stdint.h>

#include "dataset.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fn_dataset *d = NULL;
    fn_dataset_options o;
    fn_dataset_options_init(&o);
    o.limit = size % 5 + 1;
    o.every = size % 3;
    if (fn_dataset_open(fuzz_file("images.txt", data, size), &o, &d) != FN_OK)
        return 0;
    for (size_t i = 0; i < fn_dataset_size(d) && i < 3; i++) {
        image_rgb im = {0};
        fn_dataset_item_name(d, i);
        fn_dataset_label(d, i);
        if (dataset_read(d, i, &im) == FN_OK)
            image_free(&im);
    }
    fn_dataset_free(d);
    return 0;
}
