/* npy_read.h: read the .npy fixtures (format 1.0/2.0, C order, little-endian
 * f4/f8/u1/i8) into doubles or bytes, for the tests. */
#ifndef FN_NPY_READ_H
#define FN_NPY_READ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct npy {
    int ndim;
    long shape[8];
    size_t count;
    char kind;      /* 'f', 'u', 'i' */
    int size;       /* bytes per element */
    double *data;   /* every element as double */
    uint8_t *bytes; /* u1 data as it is */
} npy;

static inline void npy_free(npy *a)
{
    free(a->data);
    free(a->bytes);
    memset(a, 0, sizeof *a);
}

/* 0 on success; prints why not otherwise. */
static inline int npy_load(const char *path, npy *a)
{
    memset(a, 0, sizeof *a);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "npy: cannot open %s\n", path);
        return -1;
    }
    unsigned char magic[8];
    char header[4096];
    unsigned hlen = 0;
    int ok = fread(magic, 1, 8, f) == 8 && memcmp(magic, "\x93NUMPY", 6) == 0;
    if (ok && magic[6] == 1) {
        unsigned char b[2];
        ok = fread(b, 1, 2, f) == 2;
        hlen = b[0] | b[1] << 8;
    } else if (ok) {
        unsigned char b[4];
        ok = fread(b, 1, 4, f) == 4;
        hlen = b[0] | b[1] << 8 | (unsigned)b[2] << 16 | (unsigned)b[3] << 24;
    }
    ok = ok && hlen < sizeof header && fread(header, 1, hlen, f) == hlen;
    if (ok) {
        header[hlen] = '\0';
        const char *d = strstr(header, "'descr': '"), *s = strstr(header, "'shape': (");
        ok = d && s && !strstr(header, "'fortran_order': True");
        if (ok) {
            a->kind = d[11];
            a->size = atoi(d + 12);
            ok = (d[10] == '<' || d[10] == '|') && (a->kind == 'f' || a->kind == 'u' || a->kind == 'i');
            a->count = 1;
            for (const char *p = s + 10; ok && *p != ')';) {
                char *end;
                long v = strtol(p, &end, 10);
                if (end == p)
                    break;
                a->shape[a->ndim++] = v;
                a->count *= (size_t)v;
                p = end;
                while (*p == ',' || *p == ' ')
                    p++;
            }
        }
    }
    unsigned char *raw = ok ? malloc(a->count * (size_t)a->size + 1) : NULL;
    ok = raw && fread(raw, (size_t)a->size, a->count, f) == a->count;
    fclose(f);
    if (!ok) {
        fprintf(stderr, "npy: cannot read %s\n", path);
        free(raw);
        return -1;
    }
    a->data = malloc(sizeof(double) * (a->count + 1));
    for (size_t i = 0; i < a->count; i++) {
        const unsigned char *p = raw + i * (size_t)a->size;
        if (a->kind == 'f' && a->size == 4) {
            float v;
            memcpy(&v, p, 4);
            a->data[i] = v;
        } else if (a->kind == 'f' && a->size == 8) {
            memcpy(&a->data[i], p, 8);
        } else if (a->kind == 'i' && a->size == 8) {
            int64_t v;
            memcpy(&v, p, 8);
            a->data[i] = (double)v;
        } else {
            a->data[i] = p[0];
        }
    }
    if (a->kind == 'u' && a->size == 1)
        a->bytes = raw;
    else
        free(raw);
    return 0;
}

#endif
