/* csv.c: the streaming CSV reader (csv.h) and fn_csv_read_column, which loads
 * one numeric column of a score CSV, e.g. for `featurenorm metrics`.
 */
#include "csv.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define IO_BUFFER 65536
#define LIST_LIMIT 600 /* bytes of column names quoted in a "no column" message */

/* ---- the reader ----------------------------------------------------------- */

static int refill(csv_reader *r)
{
    if (r->io_error || feof(r->f))
        return 0;
    r->io_pos = 0;
    r->io_len = fread(r->io, 1, IO_BUFFER, r->f);
    if (r->io_len == 0 && ferror(r->f))
        r->io_error = errno ? errno : EIO;
    return r->io_len > 0;
}

static inline int get(csv_reader *r)
{
    if (r->io_pos == r->io_len && !refill(r))
        return EOF;
    return r->io[r->io_pos++];
}

static inline int peek(csv_reader *r)
{
    if (r->io_pos == r->io_len && !refill(r))
        return EOF;
    return r->io[r->io_pos];
}

static fn_status put(csv_reader *r, char c)
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

static fn_status begin_field(csv_reader *r)
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

fn_status csv_open(csv_reader *r, const char *path)
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

void csv_close(csv_reader *r)
{
    if (r->f)
        fclose(r->f);
    free(r->io);
    free(r->text);
    free(r->start);
    memset(r, 0, sizeof *r);
}

fn_status csv_next(csv_reader *r, int *got)
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

/* ---- fn_csv_read_columns -------------------------------------------------- */

/* "a, b, c" from the header, cut at about LIST_LIMIT bytes with ", ...". */
static void column_list(const csv_reader *r, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r->nfields; i++) {
        const char *name = csv_field(r, i);
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

void fn_columns_free(fn_columns *c)
{
    if (!c)
        return;
    for (int j = 0; j < c->count; j++)
        free(c->names[j]), free(c->values[j]);
    free(c->names), free(c->values);
    free(c);
}

/* The header's columns that the patterns pick, in pattern order, each once.
 * A pattern "?name" may match nothing; any other must match a column. */
static fn_status pick_columns(const csv_reader *r, const char *const *patterns, int n,
                              size_t *cols, int *count)
{
    *count = 0;
    for (int p = 0; p < n; p++) {
        const char *pat = patterns[p];
        int optional = pat[0] == '?', matched = 0;
        pat += optional;
        for (size_t i = 0; i < r->nfields; i++) {
            if (fnmatch(pat, csv_field(r, i), 0) != 0)
                continue;
            matched = 1;
            int seen = 0;
            for (int k = 0; k < *count && !seen; k++)
                seen = cols[k] == i;
            if (!seen && *count < (int)r->nfields)
                cols[(*count)++] = i;
        }
        if (!matched && !optional) {
            char list[LIST_LIMIT + 8];
            column_list(r, list, sizeof list);
            return fn_fail(FN_ERR_NOT_FOUND, "%s: no column \"%s\" (columns: %s)", r->path, pat, list);
        }
    }
    return FN_OK;
}

/* Appends one row's values of the picked columns. */
static fn_status add_row(const csv_reader *r, fn_columns *c, const size_t *cols, size_t *cap)
{
    if (c->rows == *cap) {
        size_t new_cap = *cap ? 2 * *cap : 1024;
        for (int j = 0; j < c->count; j++) {
            float *p = new_cap <= SIZE_MAX / sizeof *p ? realloc(c->values[j], new_cap * sizeof *p) : NULL;
            if (!p)
                return fn_fail(FN_ERR_NO_MEMORY, "%s: out of memory at line %zu", r->path, r->line);
            c->values[j] = p;
        }
        *cap = new_cap;
    }
    for (int j = 0; j < c->count; j++) {
        size_t col = cols[j];
        if (r->nfields <= col)
            return fn_fail(FN_ERR_FORMAT, "%s:%zu: %zu field(s), too few for column \"%s\" (field %zu)",
                           r->path, r->line, r->nfields, c->names[j], col + 1);
        if (!parse_value(csv_field(r, col), csv_field_len(r, col), &c->values[j][c->rows]))
            return fn_fail(FN_ERR_FORMAT, "%s:%zu: column \"%s\" (field %zu): \"%.40s\" is not a number",
                           r->path, r->line, c->names[j], col + 1, csv_field(r, col));
    }
    c->rows++;
    return FN_OK;
}

fn_status fn_csv_read_columns(const char *path, const char *const *patterns, int n_patterns,
                              fn_columns **out)
{
    if (out)
        *out = NULL;
    if (!path || !patterns || n_patterns < 1 || !out)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_csv_read_columns: NULL argument or no columns");
    for (int p = 0; p < n_patterns; p++)
        if (!patterns[p])
            return fn_fail(FN_ERR_INVALID_ARG, "fn_csv_read_columns: NULL column name");
    csv_reader r;
    FN_TRY(csv_open(&r, path));
    int got;
    fn_status s = csv_next(&r, &got);
    if (s == FN_OK && !got)
        s = fn_fail(FN_ERR_FORMAT, "%s: empty file, no header row", path);
    fn_columns *c = NULL;
    size_t *cols = s == FN_OK ? fn_calloc(r.nfields + 1, sizeof *cols) : NULL;
    if (s == FN_OK && !cols)
        s = FN_ERR_NO_MEMORY;
    int count = 0;
    if (s == FN_OK)
        s = pick_columns(&r, patterns, n_patterns, cols, &count);
    if (s == FN_OK && !(c = fn_calloc(1, sizeof *c)))
        s = FN_ERR_NO_MEMORY;
    if (s == FN_OK) {
        c->names = fn_calloc((size_t)count + 1, sizeof *c->names);
        c->values = fn_calloc((size_t)count + 1, sizeof *c->values);
        for (int j = 0; c->names && c->values && j < count; j++, c->count++)
            if (!(c->names[j] = fn_strdup(csv_field(&r, cols[j]))) ||
                !(c->values[j] = fn_malloc(sizeof(float))))
                break;
        if (c->count < count || !c->names || !c->values)
            s = FN_ERR_NO_MEMORY;
    }
    size_t cap = 1;
    while (s == FN_OK && (s = csv_next(&r, &got)) == FN_OK && got)
        s = add_row(&r, c, cols, &cap);
    csv_close(&r);
    free(cols);
    if (s != FN_OK) {
        fn_columns_free(c);
        return s;
    }
    *out = c;
    return FN_OK;
}

fn_status fn_csv_read_column(const char *path, const char *column, float **values, size_t *n)
{
    if (values)
        *values = NULL;
    if (n)
        *n = 0;
    if (!path || !column || !values || !n)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_csv_read_column: NULL argument");
    fn_columns *c;
    const char *only[1] = {column};
    FN_TRY(fn_csv_read_columns(path, only, 1, &c));
    /* an exact name (no pattern): one column, handed over */
    *values = c->values[0];
    *n = c->rows;
    c->values[0] = NULL;
    fn_columns_free(c);
    return FN_OK;
}
