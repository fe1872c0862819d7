/* jigsaw.c: Jigsaw pseudo-OOD images (SPEC: 3x3 grid of floor(S/3) tiles in a
 * random permutation, zero outside the grid), made from ID images at input
 * size before normalisation. Each image's permutation is a pure function of
 * (seed, its index in the dataset), so results do not depend on batch size,
 * thread count or backend. */
#include <string.h>

#include "featurenorm.h"
#include "jigsaw.h"

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void jigsaw_permutation(uint64_t seed, uint64_t index, int perm[9])
{
    uint64_t state = seed ^ (index * 0xD1B54A32D192ED03ull);
    splitmix64(&state); /* decorrelate neighbouring indices */
    for (int i = 0; i < 9; i++)
        perm[i] = i;
    for (int i = 8; i > 0; i--) { /* Fisher-Yates; 32x32-bit multiply maps to [0, i] */
        int j = (int)(((splitmix64(&state) >> 32) * (uint64_t)(i + 1)) >> 32);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

void fn_jigsaw(const uint8_t *src, uint8_t *dst, int n, int size, int channels, uint64_t seed,
               uint64_t first_index)
{
    const int tile = size / 3;
    const size_t row = (size_t)size * channels, image = row * size, span = (size_t)tile * channels;
    for (int i = 0; i < n; i++) {
        const uint8_t *s = src + (size_t)i * image;
        uint8_t *d = dst + (size_t)i * image;
        int perm[9];
        jigsaw_permutation(seed, first_index + (uint64_t)i, perm);
        memset(d, 0, image);
        for (int t = 0; t < 9; t++) { /* source tile t goes to position perm[t] */
            int sy = t / 3 * tile, sx = t % 3 * tile, dy = perm[t] / 3 * tile, dx = perm[t] % 3 * tile;
            for (int y = 0; y < tile; y++)
                memcpy(d + (size_t)(dy + y) * row + (size_t)dx * channels,
                       s + (size_t)(sy + y) * row + (size_t)sx * channels, span);
        }
    }
}
