/* fuzz_selection.c: fn_selection_read_json on arbitrary bytes, against a
 * ResNet-20 built without weights (the reader only needs its block names). */
#include <stdint.h>
#include <stdlib.h>

#include "featurenorm.h"
#include "fuzz_file.h"

static fn_model *model;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!model) {
        fn_model_options o;
        fn_model_options_init(&o);
        o.arch = "resnet20_cifar";
        if (fn_model_load(&o, &model) != FN_OK)
            abort();
    }
    fn_selection *s = NULL;
    if (fn_selection_read_json(fuzz_file("selection.json", data, size), model, &s) == FN_OK)
        fn_selection_free(s);
    return 0;
}
