/* jigsaw.h: the permutation behind fn_jigsaw (public in featurenorm.h). */
#ifndef FN_JIGSAW_H
#define FN_JIGSAW_H

#include <stdint.h>

/* perm[t] = the grid position (row-major 0..8) that source tile t moves to. */
void jigsaw_permutation(uint64_t seed, uint64_t index, int perm[9]);

#endif
