/* whole_file.h: a file read whole into memory, regular files only: /dev/zero
 * never ends and a FIFO blocks until a writer comes, so both are refused
 * before anything is read. Images, ONNX models and selections read through it. */
#ifndef FN_WHOLE_FILE_H
#define FN_WHOLE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "featurenorm.h"

/* *out (malloc'd, free it) holds *len bytes: the whole file, or what was there
 * when a file shrank meanwhile. A file over max_bytes is FN_ERR_FORMAT, the
 * message naming it `what` ("image files are limited to ..."). */
fn_status whole_file_read(const char *path, long long max_bytes, const char *what, uint8_t **out, size_t *len);

#endif
