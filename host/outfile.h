/* outfile.h: every output is written whole or not at all.
 *
 * The data goes to an unnamed file in the target's folder (O_TMPFILE: a kill
 * at any moment leaves nothing behind), is flushed and fsynced, and only then
 * gets the target's name by a rename over it, keeping the old file's mode. A
 * target that exists but is not a regular file (a device, /dev/stdout, a FIFO)
 * is refused. Several outputs of one command are finished first and renamed
 * together, so a failure in any one leaves every target as it was. */
#ifndef FN_OUTFILE_H
#define FN_OUTFILE_H

#include <stdio.h>

#include "featurenorm.h"

typedef struct outfile {
    FILE *f;
    char *path;  /* the target */
    char *tmp;   /* the named temp file, once it has one (before the rename) */
    int fd;
    int mode;    /* the target's permissions to keep, or -1: umask default */
} outfile;

/* Refuses a target that cannot be written: folder missing or read-only, or
 * not a regular file. Used before a long run, so it fails at once. */
fn_status outfile_check(const char *path);
fn_status outfile_open(outfile *o, const char *path);
/* Flush, fsync, then the rename. On failure the temp is removed. */
fn_status outfile_commit(outfile *o);
/* Commits n outputs together: all are finished before any is renamed. */
fn_status outfile_commit_all(outfile *o, int n);
void outfile_abort(outfile *o);

#endif
