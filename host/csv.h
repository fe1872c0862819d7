/* csv.h: a streaming CSV record reader, internal to the library.
 *
 * Reads the CSV featurenorm writes (and common variants): comma-separated,
 * fields optionally double-quoted with "" for a quote, quoted fields may hold
 * commas and newlines, LF or CRLF line ends, a final newline optional, a UTF-8
 * byte-order mark skipped, blank lines skipped. No limit on line length.
 *
 *   csv_reader r;
 *   FN_TRY(csv_open(&r, path));
 *   int got;
 *   while ((s = csv_next(&r, &got)) == FN_OK && got)
 *       use csv_field(&r, i) for i < r.nfields, r.line for messages;
 *   csv_close(&r);
 */
#ifndef FN_CSV_H
#define FN_CSV_H

#include <stddef.h>
#include <stdio.h>

#include "featurenorm.h"

typedef struct csv_reader {
    FILE *f;
    const char *path;        /* the caller's string, used in messages */
    unsigned char *io;       /* read buffer */
    size_t io_pos, io_len;
    int io_error;            /* errno of a failed read, 0 if none */
    char *text;              /* the current record's fields, each NUL-terminated */
    size_t text_len, text_cap;
    size_t *start;           /* offset of each field in text */
    size_t nfields, fields_cap;
    size_t line;             /* 1-based line on which the current record starts */
    size_t next_line;        /* line on which the next record starts */
} csv_reader;

fn_status csv_open(csv_reader *r, const char *path);
/* Reads the next non-blank record; *got = 0 (and FN_OK) at the end of the file. */
fn_status csv_next(csv_reader *r, int *got);
void csv_close(csv_reader *r);

static inline const char *csv_field(const csv_reader *r, size_t i)
{
    return r->text + r->start[i];
}

/* Length in bytes; differs from strlen() only if the field holds a NUL byte. */
static inline size_t csv_field_len(const csv_reader *r, size_t i)
{
    size_t end = i + 1 < r->nfields ? r->start[i + 1] : r->text_len;
    return end - r->start[i] - 1;
}

#endif
