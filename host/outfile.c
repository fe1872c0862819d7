/* outfile.c: atomic output files (temp + fsync + rename). */
#include "outfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

fn_status outfile_open(outfile *o, const char *path)
{
    memset(o, 0, sizeof *o);
    if (!path || !*path)
        return fn_fail(FN_ERR_INVALID_ARG, "no output path given");
    size_t n = strlen(path);
    o->path = fn_strdup(path);
    o->tmp = fn_malloc(n + 32);
    if (!o->path || !o->tmp) {
        outfile_abort(o);
        return FN_ERR_NO_MEMORY;
    }
    snprintf(o->tmp, n + 32, "%s.tmp.%ld", path, (long)getpid());
    if (!(o->f = fopen(o->tmp, "wb"))) {
        fn_status s = fn_fail(FN_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        outfile_abort(o);
        return s;
    }
    return FN_OK;
}

fn_status outfile_commit(outfile *o)
{
    int bad = fflush(o->f) != 0 || ferror(o->f) || fsync(fileno(o->f)) != 0;
    int err = errno;
    if (fclose(o->f) != 0 && !bad)
        bad = 1, err = errno;
    o->f = NULL;
    if (!bad && rename(o->tmp, o->path) != 0)
        bad = 1, err = errno;
    fn_status s = bad ? fn_fail(FN_ERR_IO, "%s: write failed: %s", o->path, strerror(err)) : FN_OK;
    if (bad)
        remove(o->tmp);
    free(o->path);
    free(o->tmp);
    o->path = o->tmp = NULL;
    return s;
}

void outfile_abort(outfile *o)
{
    if (o->f) {
        fclose(o->f);
        remove(o->tmp);
    }
    free(o->path);
    free(o->tmp);
    memset(o, 0, sizeof *o);
}
