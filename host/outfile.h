/* outfile.h: outputs are written whole or not at all: into a temporary file
 * beside the target, renamed over it only when every write succeeded. */
#ifndef FN_OUTFILE_H
#define FN_OUTFILE_H

#include <stdio.h>

#include "featurenorm.h"

typedef struct outfile {
    FILE *f;
    char *path, *tmp;
} outfile;

fn_status outfile_open(outfile *o, const char *path);
/* Flushes, checks for write errors and renames; on failure removes the temp. */
fn_status outfile_commit(outfile *o);
void outfile_abort(outfile *o);

#endif
