/* whole_file.c: one checked reader of whole files (whole_file.h). */
#define _POSIX_C_SOURCE 200809L /* fstat, O_CLOEXEC */

#include "whole_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

static fn_status not_regular(const char *path, mode_t mode)
{
    return fn_fail(FN_ERR_IO, "%s: not a regular file (%s)", path,
                   S_ISDIR(mode) ? "is a directory" : S_ISFIFO(mode) ? "a FIFO"
                   : S_ISCHR(mode) ? "a character device" : S_ISSOCK(mode) ? "a socket"
                   : "a device");
}

/* Up to size bytes of fd into buf; *n: how many came (fewer when the file shrank). */
static fn_status read_all(int fd, const char *path, uint8_t *buf, size_t size, size_t *n)
{
    *n = 0;
    while (*n < size) {
        ssize_t got = read(fd, buf + *n, size - *n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return fn_fail(FN_ERR_IO, "%s: read error: %s", path, strerror(errno));
        if (got == 0)
            break;
        *n += (size_t)got;
    }
    return FN_OK;
}

fn_status whole_file_read(const char *path, long long max_bytes, const char *what, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    /* O_NONBLOCK: a FIFO would block in open() until a writer comes */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return fn_fail(FN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    fn_status s = FN_OK;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) != 0)
        s = fn_fail(FN_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        s = not_regular(path, st.st_mode);
    else if ((long long)st.st_size > max_bytes)
        s = fn_fail(FN_ERR_FORMAT, "%s: %lld bytes; %s are limited to %lld", path, (long long)st.st_size, what,
                    max_bytes);
    else if (!(buf = malloc(st.st_size ? (size_t)st.st_size : 1)))
        s = fn_fail(FN_ERR_NO_MEMORY, "%s: out of memory reading %zu bytes", path, (size_t)st.st_size);
    else
        s = read_all(fd, path, buf, (size_t)st.st_size, len);
    close(fd);
    if (s != FN_OK) {
        free(buf);
        *len = 0;
        return s;
    }
    *out = buf;
    return FN_OK;
}
