/* csv.c: the streaming CSV reader (csv.h) and fn_csv_read_column, which loads
 * one numeric column of a score CSV, e.g. for `featurenorm metrics`.
 */
#include "csv.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define IO_BUFFER 65536
#define LIST_LIMIT 600 /* bytes of column names quoted in a "no column" message */

/* ---- the reader ----------------------------------------------------------- */

static int refill(fn_csv_reader *r)
{
    if (r->io_error || feof(r->f))
        return 0;
    r->io_pos = 0;
    r->io_len = fread(r->io, 1, IO_BUFFER, r->f);
    if (r->io_len == 0 && ferror(r->f))
        r->io_error = errno ? errno : EIO;
    return r->io_len > 0;
}

static inline int get(fn_csv_reader *r)
{
    if (r->io_pos == r->io_len && !refill(r))
        return EOF;
    return r->io[r->io_pos++];
}

static inline int peek(fn_csv_reader *r)
{
    if (r->io_pos == r->io_len && !refill(r))
        return EOF;
    return r->io[r->io_pos];
}

static fn_status put(fn_csv_reader *r, char c)
{
    if (r->text_len == r->text_cap) {
        size_t cap = r->text_cap ? 2 * r->text_cap : 256;
        char *p = realloc(r->text, cap);
        if (!p)
            return fn_fail(FN_ERR_NO_MEMORY, "%s: out of memory reading line %zu", r->path,
                           r->line);
        r->text = p;
        r->text_cap = cap;
    }
    r->text[r->text_len++] = c;
    return FN_OK;
}

static fn_status begin_field(fn_csv_reader *r)
{
    if (r->nfields == r->fields_cap) {
        size_t cap = r->fields_cap ? 2 * r->fields_cap : 16;
        size_t *p = realloc(r->start, cap * sizeof *p);
        if (!p)
            return fn_fail(FN_ERR_NO_MEMORY, "%s: out of memory reading line %zu", r->path,
                           r->line);
        r->start = p;
        r->fields_cap = cap;
    }
    r->start[r->nfields++] = r->text_len;
    return FN_OK;
}

fn_status fn_csv_open(fn_csv_reader *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->line = r->next_line = 1;
    r->f = fopen(path, "rb");
    if (!r->f)
        return fn_fail(FN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    r->io = fn_malloc(IO_BUFFER);
    if (!r->io) {
        fclose(r->f);
        r->f = NULL;
        return FN_ERR_NO_MEMORY;
    }
    /* Spreadsheets often save with a UTF-8 byte-order mark; it is not part of
     * the first column's name. */
    if (refill(r) && r->io_len >= 3 && r->io[0] == 0xEF && r->io[1] == 0xBB && r->io[2] == 0xBF)
        r->io_pos = 3;
    return FN_OK;
}

void fn_csv_close(fn_csv_reader *r)
{
    if (r->f)
        fclose(r->f);
    free(r->io);
    free(r->text);
    free(r->start);
    memset(r, 0, sizeof *r);
}

fn_status fn_csv_next(fn_csv_reader *r, int *got)
{
    *got = 0;
    for (;;) {
        r->text_len = 0;
        r->nfields = 0;
        r->line = r->next_line;
        int c = get(r);
        if (c == EOF)
            break;
        if (c == '\n' || c == '\r') { /* a blank line: no record */
            if (c == '\r' && peek(r) == '\n')
                get(r);
            r->next_line++;
            continue;
        }
        for (;;) { /* one field per pass; c is its first character */
            FN_TRY(begin_field(r));
            if (c == '"') {
                for (;;) {
                    c = get(r);
                    if (c == EOF) {
                        if (r->io_error)
                            break;
                        return fn_fail(FN_ERR_FORMAT, "%s:%zu: quoted field not closed", r->path,
                                       r->line);
                    }
                    if (c == '"') {
                        c = get(r);
                        if (c != '"')
                            break; /* the closing quote; c follows it */
                    } else if (c == '\n') {
                        r->next_line++;
                    }
                    FN_TRY(put(r, (char)c));
                }
            }
            /* Unquoted text, or stray text after a closing quote, kept as is
             * (lenient, like Python's csv module). */
            while (c != ',' && c != '\n' && c != '\r' && c != EOF) {
                FN_TRY(put(r, (char)c));
                c = get(r);
            }
            FN_TRY(put(r, '\0'));
            if (c != ',')
                break;
            c = get(r); /* may be EOF or a line end: an empty last field */
        }
        if (c == '\r' && peek(r) == '\n')
            get(r);
        r->next_line++;
        if (r->io_error)
            break;
        *got = 1;
        return FN_OK;
    }
    if (r->io_error)
        return fn_fail(FN_ERR_IO, "%s: read error near line %zu: %s", r->path, r->line,
                       strerror(r->io_error));
    return FN_OK;
}

/* ---- fn_csv_read_column --------------------------------------------------- */

/* "a, b, c" from the header, cut at about LIST_LIMIT bytes with ", ...". */
static void column_list(const fn_csv_reader *r, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r->nfields; i++) {
        const char *name = fn_csv_field(r, i);
        size_t need = strlen(name) + (i ? 2 : 0);
        if (used + need + 5 >= size) {
            snprintf(buf + used, size - used, "%s...", i ? ", " : "");
            return;
        }
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", name);
    }
}

/* Empty (or blank) means a missing value: NaN, as for "nan". */
static int parse_value(const char *s, size_t len, float *v)
{
    const char *end = s + len;
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (s == end) {
        *v = NAN;
        return 1;
    }
    char *stop;
    *v = strtof(s, &stop); /* out-of-range values become +-inf or 0: accepted */
    return stop == end && stop != s;
}

fn_status fn_csv_read_column(const char *path, const char *column, float **values, size_t *n)
{
    if (values)
        *values = NULL;
    if (n)
        *n = 0;
    if (!path || !column || !values || !n)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_csv_read_column: NULL argument");

    fn_csv_reader r;
    FN_TRY(fn_csv_open(&r, path));
    int got;
    fn_status s = fn_csv_next(&r, &got);
    if (s == FN_OK && !got)
        s = fn_fail(FN_ERR_FORMAT, "%s: empty file, no header row", path);
    if (s != FN_OK) {
        fn_csv_close(&r);
        return s;
    }

    size_t col = 0;
    while (col < r.nfields && strcmp(fn_csv_field(&r, col), column) != 0)
        col++;
    if (col == r.nfields) {
        char list[LIST_LIMIT + 8];
        column_list(&r, list, sizeof list);
        s = fn_fail(FN_ERR_NOT_FOUND, "%s: no column \"%s\" (columns: %s)", path, column, list);
        fn_csv_close(&r);
        return s;
    }

    float *v = NULL;
    size_t count = 0, cap = 0;
    while ((s = fn_csv_next(&r, &got)) == FN_OK && got) {
        if (r.nfields <= col) {
            s = fn_fail(FN_ERR_FORMAT, "%s:%zu: %zu field(s), too few for column \"%s\" (field %zu)",
                        path, r.line, r.nfields, column, col + 1);
            break;
        }
        if (count == cap) {
            size_t new_cap = cap ? 2 * cap : 1024;
            float *p = new_cap <= SIZE_MAX / sizeof *p ? realloc(v, new_cap * sizeof *p) : NULL;
            if (!p) {
                s = fn_fail(FN_ERR_NO_MEMORY, "%s: out of memory at line %zu", path, r.line);
                break;
            }
            v = p;
            cap = new_cap;
        }
        if (!parse_value(fn_csv_field(&r, col), fn_csv_field_len(&r, col), &v[count])) {
            s = fn_fail(FN_ERR_FORMAT, "%s:%zu: column \"%s\": \"%.40s\" is not a number", path,
                        r.line, column, fn_csv_field(&r, col));
            break;
        }
        count++;
    }
    fn_csv_close(&r);
    if (s != FN_OK) {
        free(v);
        return s;
    }
    if (!v) { /* no data rows: still hand back something free() accepts, not NULL */
        v = fn_malloc(sizeof *v);
        if (!v)
            return FN_ERR_NO_MEMORY;
    }
    *values = v;
    *n = count;
    return FN_OK;
}
