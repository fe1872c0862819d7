/* hash.h: a 64-bit hash of bytes and of a file's contents (not cryptographic:
 * it tells runs and files apart, it does not defend against forgery). */
#ifndef FN_HASH_H
#define FN_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "featurenorm.h"

/* Continues hash h (0 to start) over len bytes of data. */
uint64_t hash_bytes(uint64_t h, const void *data, size_t len);
/* Hash of a file's contents; 0 and an error when it cannot be read. */
fn_status hash_file(const char *path, uint64_t *h);

#endif
