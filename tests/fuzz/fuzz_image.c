/* fuzz_image.c: image_decode (libjpeg-turbo, stb_image) on arbitrary bytes,
 * then both preprocessing presets on whatever decoded. */
#include <stdint.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    image_rgb im = {0};
    if (image_decode(data, size, "fuzz.img", &im) == FN_OK) {
        uint8_t out[32 * 32 * 3];
        image_preprocess(&im, FN_PRESET_CIFAR, 32, out);
        image_preprocess(&im, FN_PRESET_IMAGENET, 32, out);
        image_free(&im);
    }
    return 0;
}
