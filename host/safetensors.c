/* safetensors.c: mmap a .safetensors file and validate everything in its header
 * before any tensor is read, so that later reads cannot go out of bounds.
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {...}}, then the data section. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "float16.h"
#include "json.h"

/* The format allows 100 MB of header, but parsing that much JSON costs
 * gigabytes and seconds; a real network's header is kilobytes (ResNet-50's
 * 30 KB, a large language model's about 1 MB). Checked before parsing. */
#define ST_MAX_HEADER (8u << 20)

struct st_file {
    char *path;
    unsigned char *map;
    size_t map_len;
    const unsigned char *data; /* start of the data section */
    size_t data_len;
    st_tensor *tensors;
    int n_tensors;
    unsigned char *read; /* per tensor: 1 once st_read_f32 copied it */
};

static const struct {
    const char *name;
    st_dtype dtype;
    size_t size;
} dtypes[] = {
    {"F64", ST_F64, 8}, {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2},
    {"I64", ST_I64, 8}, {"I32", ST_I32, 4}, {"I16", ST_I16, 2}, {"I8", ST_I8, 1},
    {"U8", ST_U8, 1},   {"BOOL", ST_BOOL, 1},
};

const char *st_dtype_name(st_dtype d) { return dtypes[d].name; }

static size_t dtype_size(st_dtype d) { return dtypes[d].size; }

static int compare_begin(const void *a, const void *b)
{
    const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

static int compare_name(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static fn_status bad(const st_file *f, const char *tensor, const char *problem)
{
    if (tensor)
        return fn_fail(FN_ERR_FORMAT, "%s: tensor '%s': %s", f->path, tensor, problem);
    return fn_fail(FN_ERR_FORMAT, "%s: %s", f->path, problem);
}

static fn_status parse_entry(st_file *f, const json *e, st_tensor *t)
{
    const char *name = e->key;
    if (e->type != JSON_OBJECT)
        return bad(f, name, "entry is not an object");
    const json *dt = json_get(e, "dtype"), *shape = json_get(e, "shape"),
               *offs = json_get(e, "data_offsets");
    if (!dt || dt->type != JSON_STRING)
        return bad(f, name, "missing or non-string \"dtype\"");
    size_t k;
    for (k = 0; k < sizeof dtypes / sizeof dtypes[0]; k++)
        if (strcmp(dt->string, dtypes[k].name) == 0)
            break;
    if (k == sizeof dtypes / sizeof dtypes[0])
        return fn_fail(FN_ERR_FORMAT, "%s: tensor '%s': unsupported dtype \"%s\"", f->path, name,
                       dt->string);
    t->dtype = dtypes[k].dtype;
    if (!shape || shape->type != JSON_ARRAY)
        return bad(f, name, "missing or non-array \"shape\"");
    if (shape->count > ST_MAX_DIMS)
        return bad(f, name, "too many dimensions");
    t->ndim = (int)shape->count;
    double numel = 1;
    int i = 0;
    for (const json *d = shape->child; d; d = d->next, i++) {
        if (d->type != JSON_NUMBER || !d->integral || d->number < 0 || d->number > 9e15)
            return bad(f, name, "shape entries must be non-negative integers");
        t->shape[i] = (int64_t)d->number;
        numel *= d->number;
    }
    if (!offs || offs->type != JSON_ARRAY || offs->count != 2)
        return bad(f, name, "\"data_offsets\" must be [begin, end]");
    const json *b = offs->child, *en = b->next;
    if (b->type != JSON_NUMBER || en->type != JSON_NUMBER || !b->integral || !en->integral ||
        b->number < 0 || en->number < 0 || b->number > 9e15 || en->number > 9e15)
        return bad(f, name, "data_offsets must be non-negative integers");
    t->begin = (size_t)b->number;
    t->end = (size_t)en->number;
    if (t->end < t->begin)
        return bad(f, name, "data_offsets end before they begin");
    if (t->end > f->data_len)
        return fn_fail(FN_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%zu, %zu] run past the end of the data "
                       "(%zu bytes; is the file truncated?)",
                       f->path, name, t->begin, t->end, f->data_len);
    if (numel * (double)dtype_size(t->dtype) != (double)(t->end - t->begin))
        return fn_fail(FN_ERR_FORMAT,
                       "%s: tensor '%s': %zu bytes of data, but shape x %s needs %.0f", f->path,
                       name, t->end - t->begin, dtypes[k].name, numel * (double)dtype_size(t->dtype));
    t->name = fn_strdup(name);
    return t->name ? FN_OK : FN_ERR_NO_MEMORY;
}

static fn_status parse_header(st_file *f, const char *text, size_t len)
{
    json *root;
    FN_TRY(json_parse(text, len, f->path, &root));
    fn_status s = FN_OK;
    if (root->type != JSON_OBJECT) {
        s = bad(f, NULL, "the header is not a JSON object");
        goto done;
    }
    f->tensors = fn_calloc(root->count ? root->count : 1, sizeof *f->tensors);
    if (!f->tensors) {
        s = FN_ERR_NO_MEMORY;
        goto done;
    }
    for (const json *e = root->child; e; e = e->next) {
        if (strcmp(e->key, "__metadata__") == 0)
            continue;
        if ((s = parse_entry(f, e, &f->tensors[f->n_tensors])) != FN_OK)
            goto done;
        f->n_tensors++;
    }
    qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, compare_name);
    if (!(f->read = fn_calloc((size_t)f->n_tensors + 1, 1))) {
        s = FN_ERR_NO_MEMORY;
        goto done;
    }
    for (int i = 1; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) {
            s = bad(f, f->tensors[i].name, "named twice in the header");
            goto done;
        }
    /* No two tensors may share bytes: sort by offset and compare each with the
     * furthest-reaching tensor before it. Empty tensors hold no bytes and are
     * left out (one between two overlapping tensors hid the overlap). */
    st_tensor **order = fn_calloc((size_t)f->n_tensors + 1, sizeof *order);
    if (!order) {
        s = FN_ERR_NO_MEMORY;
        goto done;
    }
    int n_order = 0;
    for (int i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].end > f->tensors[i].begin)
            order[n_order++] = &f->tensors[i];
    qsort(order, (size_t)n_order, sizeof *order, compare_begin);
    const st_tensor *reach = NULL;
    for (int i = 0; i < n_order; i++) {
        if (reach && order[i]->begin < reach->end) {
            s = fn_fail(FN_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data section",
                        f->path, reach->name, order[i]->name);
            break;
        }
        if (!reach || order[i]->end > reach->end)
            reach = order[i];
    }
    free(order);
done:
    json_free(root);
    return s;
}

fn_status st_open(const char *path, st_file **out)
{
    *out = NULL;
    st_file *f = fn_calloc(1, sizeof *f);
    if (!f || !(f->path = fn_strdup(path))) {
        free(f);
        return FN_ERR_NO_MEMORY;
    }
    fn_status s = FN_OK;
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0) {
        s = fn_fail(FN_ERR_IO, "%s: cannot open weights: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        s = fn_fail(FN_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if (st.st_size < 8) {
        s = fn_fail(FN_ERR_FORMAT, "%s: %lld bytes: too short for a safetensors file", path,
                    (long long)st.st_size);
        goto fail;
    }
    f->map_len = (size_t)st.st_size;
    f->map = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        s = fn_fail(FN_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | f->map[i];
    if (hlen > ST_MAX_HEADER) {
        s = fn_fail(FN_ERR_FORMAT,
                    "%s: header of %llu bytes is over featurenorm's limit of %u MiB (weights "
                    "files have headers of kilobytes; not a safetensors file?)",
                    path, (unsigned long long)hlen, ST_MAX_HEADER >> 20);
        goto fail;
    }
    if (hlen > f->map_len - 8) {
        s = fn_fail(FN_ERR_FORMAT,
                    "%s: header length %llu does not fit in the file (%zu bytes); not a "
                    "safetensors file, or truncated",
                    path, (unsigned long long)hlen, f->map_len);
        goto fail;
    }
    f->data = f->map + 8 + hlen;
    f->data_len = f->map_len - 8 - (size_t)hlen;
    if ((s = parse_header(f, (const char *)f->map + 8, (size_t)hlen)) != FN_OK)
        goto fail;
    close(fd);
    *out = f;
    return FN_OK;
fail:
    if (fd >= 0)
        close(fd);
    st_close(f);
    return s;
}

void st_close(st_file *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->map_len);
    for (int i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    free(f->read);
    free(f->path);
    free(f);
}

const char *st_path(const st_file *f) { return f->path; }
int st_count(const st_file *f) { return f->n_tensors; }
const st_tensor *st_at(const st_file *f, int i) { return &f->tensors[i]; }
int st_was_read(const st_file *f, int i) { return f->read[i]; }

const st_tensor *st_find(const st_file *f, const char *name)
{
    st_tensor key = {.name = (char *)name};
    return bsearch(&key, f->tensors, (size_t)f->n_tensors, sizeof key, compare_name);
}

static void format_shape(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

/* Tensor `name`, which must have exactly this shape; hint follows "missing". */
static fn_status find_shaped(const st_file *f, const char *name, int ndim, const int64_t *shape,
                             const char *hint, const st_tensor **out)
{
    const st_tensor *t = st_find(f, name);
    if (!t)
        return fn_fail(FN_ERR_NOT_FOUND, "%s: missing tensor '%s'%s", f->path, name, hint);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char want[128], got[128];
        format_shape(want, sizeof want, ndim, shape);
        format_shape(got, sizeof got, t->ndim, t->shape);
        return fn_fail(FN_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", f->path, name,
                       got, want);
    }
    *out = t;
    return FN_OK;
}

fn_status st_read_f32(const st_file *f, const char *name, int ndim, const int64_t *shape,
                      float *dst)
{
    const st_tensor *t;
    FN_TRY(find_shaped(f, name, ndim, shape, " (is this the right --arch?)", &t));
    const unsigned char *src = f->data + t->begin;
    size_t n = (t->end - t->begin) / dtype_size(t->dtype);
    /* Element-wise copies through memcpy: the data section has no alignment promise. */
    switch (t->dtype) {
    case ST_F32:
        memcpy(dst, src, n * 4);
        break;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, src + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    case ST_F16:
        for (size_t i = 0; i < n; i++)
            dst[i] = half_to_float((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        break;
    case ST_BF16:
        for (size_t i = 0; i < n; i++)
            dst[i] = bf16_to_float((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        break;
    default:
        return fn_fail(FN_ERR_FORMAT, "%s: tensor '%s' has dtype %s; expected F32, F16, BF16 or F64",
                       f->path, name, st_dtype_name(t->dtype));
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(dst[i]))
            return fn_fail(FN_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value at element %zu",
                           f->path, name, i);
    f->read[t - f->tensors] = 1;
    return FN_OK;
}

fn_status st_read_f64(const st_file *f, const char *name, int ndim, const int64_t *shape,
                      double *dst)
{
    const st_tensor *t;
    FN_TRY(find_shaped(f, name, ndim, shape, "", &t));
    if (t->dtype != ST_F64)
        return fn_fail(FN_ERR_FORMAT, "%s: tensor '%s' has dtype %s; expected F64", f->path, name,
                       st_dtype_name(t->dtype));
    size_t n = (t->end - t->begin) / 8;
    memcpy(dst, f->data + t->begin, n * 8);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(dst[i]))
            return fn_fail(FN_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value at element %zu",
                           f->path, name, i);
    f->read[t - f->tensors] = 1;
    return FN_OK;
}
