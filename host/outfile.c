/* outfile.c: atomic output files (unnamed temp + fsync + link + rename). */
#define _GNU_SOURCE /* O_TMPFILE, linkat */
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

/* The folder of path ("." for a bare name), in a new string. */
static char *folder_of(const char *path)
{
    char *copy = fn_strdup(path);
    if (!copy)
        return NULL;
    char *dir = fn_strdup(dirname(copy));
    free(copy);
    return dir;
}

fn_status outfile_check(const char *path)
{
    if (!path || !*path)
        return fn_fail(FN_ERR_INVALID_ARG, "no output path given");
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return fn_fail(FN_ERR_IO, "%s: not a regular file; outputs replace files only", path);
    char *dir = folder_of(path);
    if (!dir)
        return FN_ERR_NO_MEMORY;
    fn_status s = FN_OK;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        s = fn_fail(FN_ERR_IO, "%s: the folder %s does not exist", path, dir);
    else if (access(dir, W_OK | X_OK) != 0)
        s = fn_fail(FN_ERR_IO, "%s: cannot write in %s: %s", path, dir, strerror(errno));
    free(dir);
    return s;
}

fn_status outfile_open(outfile *o, const char *path)
{
    memset(o, 0, sizeof *o);
    o->fd = -1;
    FN_TRY(outfile_check(path));
    struct stat st;
    o->mode = stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
    char *dir = folder_of(path);
    o->path = fn_strdup(path);
    if (!dir || !o->path) {
        free(dir);
        outfile_abort(o);
        return FN_ERR_NO_MEMORY;
    }
    o->fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    if (o->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        /* no O_TMPFILE on this filesystem: a named temp, created exclusively */
        size_t len = strlen(dir) + 32;
        if ((o->tmp = fn_malloc(len))) {
            snprintf(o->tmp, len, "%s/.featurenorm.XXXXXX", dir);
            o->fd = mkstemp(o->tmp);
        }
    }
    int err = errno;
    free(dir);
    if (o->fd < 0 || !(o->f = fdopen(o->fd, "wb"))) {
        fn_status s = fn_fail(FN_ERR_IO, "%s: cannot write: %s", path, strerror(err));
        outfile_abort(o);
        return s;
    }
    return FN_OK;
}

/* Flushed, synced and closed, with the target's mode; still unnamed (or at its temp name). */
static int finish(outfile *o, int *err)
{
    int bad = fflush(o->f) != 0 || ferror(o->f);
    if (!bad) {
        mode_t mask = umask(0);
        umask(mask);
        bad = fchmod(o->fd, o->mode >= 0 ? (mode_t)o->mode : 0666 & ~mask) != 0 ||
              fsync(o->fd) != 0;
    }
    *err = errno;
    return bad;
}

/* Gives an unnamed finished file a unique temp name beside the target. */
static int name_temp(outfile *o, int *err)
{
    if (!o->tmp) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", o->fd);
        size_t len = strlen(o->path) + 32;
        if (!(o->tmp = fn_malloc(len)))
            return *err = ENOMEM, 1;
        for (int tries = 0;; tries++) {
            snprintf(o->tmp, len, "%s.%ld.%d.tmp", o->path, (long)getpid(), tries);
            if (linkat(AT_FDCWD, proc, AT_FDCWD, o->tmp, AT_SYMLINK_FOLLOW) == 0)
                break;
            if (errno != EEXIST || tries == 100) {
                *err = errno;
                free(o->tmp), o->tmp = NULL;
                return 1;
            }
        }
    }
    return 0;
}

/* The rename replaces the target atomically. */
static int publish(outfile *o, int *err)
{
    if (rename(o->tmp, o->path) != 0)
        return *err = errno, 1;
    free(o->tmp), o->tmp = NULL;
    char *dir = folder_of(o->path); /* the rename itself is durable once its folder is synced */
    int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0)
        fsync(dfd), close(dfd);
    free(dir);
    return 0;
}

fn_status outfile_commit_all(outfile *o, int n)
{
    int err = 0, failed = -1;
    for (int i = 0; i < n && failed < 0; i++)
        if (finish(&o[i], &err))
            failed = i;
    for (int i = 0; i < n && failed < 0; i++) /* every file named before any target changes */
        if (name_temp(&o[i], &err))
            failed = i;
    for (int i = 0; i < n && failed < 0; i++)
        if (publish(&o[i], &err))
            failed = i;
    fn_status s = failed >= 0 ? fn_fail(FN_ERR_IO, "%s: write failed: %s", o[failed].path,
                                        strerror(err))
                              : FN_OK;
    for (int i = 0; i < n; i++)
        outfile_abort(&o[i]);
    return s;
}

fn_status outfile_commit(outfile *o) { return outfile_commit_all(o, 1); }

void outfile_abort(outfile *o)
{
    if (o->f)
        fclose(o->f);
    else if (o->fd >= 0)
        close(o->fd);
    if (o->tmp)
        remove(o->tmp);
    free(o->path);
    free(o->tmp);
    memset(o, 0, sizeof *o);
    o->fd = -1;
}
