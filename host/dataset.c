/* dataset.c: where images come from: a folder (recursive, sorted by path, class
 * sub-folders as labels), a list file, or CIFAR-10/100 binary batches. */
#include "dataset.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

#define CIFAR_PIXELS 3072 /* 32 x 32 x 3, stored as R, G, B planes */

void fn_dataset_options_init(fn_dataset_options *o) { memset(o, 0, sizeof *o); }

static int has_ext(const char *name, const char *const *exts)
{
    const char *dot = strrchr(name, '.');
    for (int i = 0; dot && exts[i]; i++)
        if (strcasecmp(dot + 1, exts[i]) == 0)
            return 1;
    return 0;
}

static const char *const image_exts[] = {"png", "jpg", "jpeg", "bmp", "gif", "tga",
                                         "ppm", "pgm", "pnm", NULL};

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    while (a > 1 && dir[a - 1] == '/')
        a--;
    char *p = fn_malloc(a + b + 2);
    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

static fn_status add_item(fn_dataset *d, char *name, int label, int file, long record)
{
    if (!name)
        return FN_ERR_NO_MEMORY;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 1024;
        ds_item *p = realloc(d->items, cap * sizeof *p);
        if (!p) {
            free(name);
            return fn_fail(FN_ERR_NO_MEMORY, "out of host memory listing images");
        }
        d->items = p;
        d->cap = cap;
    }
    d->items[d->n++] = (ds_item){name, label, file, record};
    return FN_OK;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(((const ds_item *)a)->name, ((const ds_item *)b)->name);
}

static int compare_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Folders already walked, by (device, inode): a link back to a folder on the
 * path (a -> .) would otherwise be walked again and again, exponentially
 * with two such links. */
typedef struct walk_seen {
    struct { dev_t dev; ino_t ino; } *ids;
    size_t n, cap;
} walk_seen;

/* 1 if new (and now remembered), 0 if seen before, -1 out of memory. */
static int remember_dir(walk_seen *seen, const struct stat *st)
{
    for (size_t i = 0; i < seen->n; i++)
        if (seen->ids[i].dev == st->st_dev && seen->ids[i].ino == st->st_ino)
            return 0;
    if (seen->n == seen->cap) {
        size_t cap = seen->cap ? seen->cap * 2 : 64;
        void *p = realloc(seen->ids, cap * sizeof *seen->ids);
        if (!p)
            return -1;
        seen->ids = p;
        seen->cap = cap;
    }
    seen->ids[seen->n].dev = st->st_dev;
    seen->ids[seen->n++].ino = st->st_ino;
    return 1;
}

/* Every image file under dir, recursively; hidden entries skipped; a folder
 * reached a second time (through a link) skipped with a warning. */
static fn_status walk(fn_dataset *d, const char *dir, int depth, walk_seen *seen)
{
    if (depth > 64)
        return fn_fail(FN_ERR_INVALID_ARG, "%s: folders nested too deeply (over 64 levels)", dir);
    DIR *dp = opendir(dir);
    if (!dp)
        return fn_fail(FN_ERR_IO, "%s: cannot list folder: %s", dir, strerror(errno));
    fn_status s = FN_OK;
    struct dirent *e;
    while (s == FN_OK && (e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        char *path = join(dir, e->d_name);
        struct stat st;
        if (!path) {
            s = FN_ERR_NO_MEMORY;
        } else if (stat(path, &st) != 0) {
            free(path); /* a dangling link: not an image we can read, not an error */
        } else if (S_ISDIR(st.st_mode)) {
            int fresh = remember_dir(seen, &st);
            if (fresh < 0)
                s = fn_fail(FN_ERR_NO_MEMORY, "out of host memory listing folders");
            else if (fresh)
                s = walk(d, path, depth + 1, seen);
            else
                fprintf(stderr, "featurenorm: %s: skipped, a folder already listed (a link loop?)\n",
                        path);
            free(path);
        } else if (S_ISREG(st.st_mode) && has_ext(e->d_name, image_exts)) {
            s = add_item(d, path, -1, -1, -1);
        } else {
            free(path);
        }
    }
    closedir(dp);
    return s;
}

/* ImageFolder labels: the index of the first-level sub-folder, in sorted order. */
static fn_status label_by_folder(fn_dataset *d, const char *root)
{
    size_t root_len = strlen(root), n_classes = 0;
    while (root_len > 1 && root[root_len - 1] == '/') /* as join() writes it */
        root_len--;
    char **classes = fn_calloc(d->n + 1, sizeof *classes);
    if (!classes)
        return FN_ERR_NO_MEMORY;
    for (size_t i = 0; i < d->n; i++) {
        const char *rel = d->items[i].name + root_len + 1, *slash = strchr(rel, '/');
        if (!slash)
            continue;
        size_t len = (size_t)(slash - rel);
        if (n_classes == 0 || strncmp(classes[n_classes - 1], rel, len) ||
            classes[n_classes - 1][len]) {
            /* items are sorted, so each class's files are contiguous */
            if (!(classes[n_classes] = fn_malloc(len + 1)))
                break;
            memcpy(classes[n_classes], rel, len);
            classes[n_classes++][len] = '\0';
        }
        d->items[i].label = (int)n_classes - 1;
    }
    for (size_t i = 0; i < n_classes; i++)
        free(classes[i]);
    free(classes);
    return FN_OK;
}

static fn_status open_folder(fn_dataset *d, const char *root, int labels)
{
    walk_seen seen = {0};
    struct stat st;
    if (stat(root, &st) == 0 && remember_dir(&seen, &st) < 0)
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory listing folders");
    fn_status s = walk(d, root, 0, &seen);
    free(seen.ids);
    FN_TRY(s);
    if (d->n > 1)
        qsort(d->items, d->n, sizeof *d->items, compare_names);
    return labels ? label_by_folder(d, root) : FN_OK;
}

static fn_status open_list(fn_dataset *d, const char *list)
{
    FILE *f = fopen(list, "r");
    if (!f)
        return fn_fail(FN_ERR_IO, "%s: cannot open list: %s", list, strerror(errno));
    const char *slash = strrchr(list, '/');
    char *dir = slash ? strndup(list, (size_t)(slash - list)) : strdup(".");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    fn_status s = dir ? FN_OK : fn_fail(FN_ERR_NO_MEMORY, "out of host memory");
    while (s == FN_OK && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && isspace((unsigned char)line[len - 1]))
            line[--len] = '\0';
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p || *p == '#')
            continue;
        int label = -1; /* an integer after the last blank is a label */
        char *last = p + strlen(p);
        while (last > p && !isspace((unsigned char)last[-1]))
            last--;
        if (last > p) {
            char *end;
            long v = strtol(last, &end, 10);
            if (*end == '\0' && v >= 0 && v < 1000000) {
                label = (int)v;
                while (last > p && isspace((unsigned char)last[-1]))
                    last--;
                *last = '\0';
            }
        }
        s = add_item(d, p[0] == '/' ? fn_strdup(p) : join(dir, p), label, -1, -1);
    }
    if (s == FN_OK && ferror(f))
        s = fn_fail(FN_ERR_IO, "%s: read error at line %ld", list, lineno + 1);
    free(line);
    free(dir);
    fclose(f);
    return s;
}

/* CIFAR-10 records are 1 label byte + 3072 pixels; CIFAR-100 2 + 3072. */
static fn_status add_cifar_file(fn_dataset *d, const char *path)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* a FIFO must not block us */
    struct stat st;
    if (fd < 0)
        return fn_fail(FN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fn_fail(FN_ERR_IO, "%s: not a regular file", path);
    }
    int cifar100 = strcmp(base, "train.bin") == 0 || strcmp(base, "test.bin") == 0;
    int label_bytes = cifar100 ? 2 : st.st_size % (1 + CIFAR_PIXELS) == 0 ? 1 : 2;
    long record = label_bytes + CIFAR_PIXELS;
    if (st.st_size == 0 || st.st_size % record) {
        close(fd);
        return fn_fail(FN_ERR_FORMAT,
                       "%s: %lld bytes is not a whole number of CIFAR records (%ld bytes each)",
                       path, (long long)st.st_size, record);
    }
    ds_file *files = realloc(d->files, sizeof *files * (size_t)(d->n_files + 1));
    if (!files) {
        close(fd);
        return fn_fail(FN_ERR_NO_MEMORY, "out of host memory");
    }
    d->files = files;
    int k = d->n_files++;
    files[k] = (ds_file){fn_strdup(path), fd, label_bytes};
    if (!files[k].path)
        return FN_ERR_NO_MEMORY;
    long count = (long)(st.st_size / record);
    fn_status s = FN_OK;
    for (long r = 0; r < count && s == FN_OK; r++) {
        unsigned char lb[2];
        if (pread(fd, lb, (size_t)label_bytes, (off_t)(r * record)) != label_bytes) {
            s = fn_fail(FN_ERR_IO, "%s: read error at record %ld", path, r);
            break;
        }
        char name[4096 + 32];
        snprintf(name, sizeof name, "%s#%ld", path, r);
        s = add_item(d, fn_strdup(name), lb[label_bytes - 1], k, r);
    }
    return s;
}

static int is_cifar_name(const char *name)
{
    return (strncmp(name, "data_batch_", 11) == 0 && has_ext(name, (const char *const[]){"bin", NULL})) ||
           strcmp(name, "test_batch.bin") == 0 || strcmp(name, "train.bin") == 0 ||
           strcmp(name, "test.bin") == 0;
}

/* A folder of CIFAR batches: every data_batch_*.bin (all of them, sorted), or
 * else the one test file there, test_batch.bin (CIFAR-10) or, for CIFAR-100,
 * train.bin (or test.bin alone). Training batches win when both are present,
 * as the datasets ship them side by side. */
static fn_status open_cifar_folder(fn_dataset *d, const char *root, int *found)
{
    *found = 0;
    DIR *dp = opendir(root);
    if (!dp)
        return fn_fail(FN_ERR_IO, "%s: cannot list folder: %s", root, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int test10 = 0, train100 = 0, test100 = 0;
    fn_status s = FN_OK;
    struct dirent *e;
    while (s == FN_OK && (e = readdir(dp))) {
        if (!is_cifar_name(e->d_name))
            continue;
        test10 |= strcmp(e->d_name, "test_batch.bin") == 0;
        train100 |= strcmp(e->d_name, "train.bin") == 0;
        test100 |= strcmp(e->d_name, "test.bin") == 0;
        if (strncmp(e->d_name, "data_batch_", 11) != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **p = realloc(names, cap * sizeof *names);
            if (!p) {
                s = fn_fail(FN_ERR_NO_MEMORY, "out of host memory");
                break;
            }
            names = p;
        }
        if (!(names[n] = fn_strdup(e->d_name)))
            s = FN_ERR_NO_MEMORY;
        else
            n++;
    }
    closedir(dp);
    const char *single = test10 ? "test_batch.bin" : train100 ? "train.bin" : test100 ? "test.bin" : NULL;
    if (s == FN_OK && n == 0 && single) {
        names = malloc(sizeof *names);
        if (!names || !(names[0] = fn_strdup(single)))
            s = fn_fail(FN_ERR_NO_MEMORY, "out of host memory");
        else
            n = 1;
    }
    *found = n > 0;
    if (n > 1)
        qsort(names, n, sizeof *names, compare_str);
    for (size_t i = 0; i < n; i++) {
        if (s == FN_OK) {
            char *path = join(root, names[i]);
            s = path ? add_cifar_file(d, path) : fn_fail(FN_ERR_NO_MEMORY, "out of host memory");
            free(path);
        }
        free(names[i]);
    }
    free(names);
    return s;
}

static void subset(fn_dataset *d, const fn_dataset_options *o)
{
    size_t every = o->every > 1 ? o->every : 1, k = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (i % every == 0 && (o->limit == 0 || k < o->limit))
            d->items[k++] = d->items[i];
        else
            free(d->items[i].name);
    }
    d->n = k;
}

fn_status fn_dataset_open(const char *path, const fn_dataset_options *o, fn_dataset **out)
{
    if (!path || !out)
        return fn_fail(FN_ERR_INVALID_ARG, "fn_dataset_open: NULL argument");
    *out = NULL;
    fn_dataset_options defaults;
    if (!o) {
        fn_dataset_options_init(&defaults);
        o = &defaults;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return fn_fail(FN_ERR_IO, "%s: %s", path, strerror(errno));
    fn_dataset *d = fn_calloc(1, sizeof *d);
    if (!d || !(d->source = fn_strdup(path))) {
        free(d);
        return FN_ERR_NO_MEMORY;
    }
    fn_status s;
    if (S_ISDIR(st.st_mode)) {
        int cifar = 0;
        s = open_cifar_folder(d, path, &cifar);
        if (s == FN_OK && !cifar)
            s = open_folder(d, path, o->labels);
    } else if (has_ext(path, (const char *const[]){"bin", NULL})) {
        s = add_cifar_file(d, path);
    } else if (has_ext(path, (const char *const[]){"txt", "lst", NULL})) {
        s = open_list(d, path);
    } else if (has_ext(path, image_exts)) {
        s = add_item(d, fn_strdup(path), -1, -1, -1);
    } else {
        s = fn_fail(FN_ERR_INVALID_ARG,
                    "%s: not a folder, a list file (.txt/.lst), CIFAR binary (.bin) or an image", path);
    }
    if (s == FN_OK) {
        subset(d, o);
        if (d->n == 0)
            s = fn_fail(FN_ERR_EMPTY, "%s: no images found (looked for %s%s)", path,
                        "png, jpg, jpeg, bmp, gif, tga, ppm, pgm, pnm",
                        S_ISDIR(st.st_mode) ? " files, recursively" : "");
    }
    if (s != FN_OK) {
        fn_dataset_free(d);
        return s;
    }
    *out = d;
    return FN_OK;
}

void fn_dataset_free(fn_dataset *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->items[i].name);
    for (int i = 0; i < d->n_files; i++) {
        if (d->files[i].fd >= 0)
            close(d->files[i].fd);
        free(d->files[i].path);
    }
    free(d->files);
    free(d->items);
    free(d->source);
    free(d);
}

size_t fn_dataset_size(const fn_dataset *d) { return d ? d->n : 0; }

const char *fn_dataset_item_name(const fn_dataset *d, size_t i)
{
    return d && i < d->n ? d->items[i].name : NULL;
}

int fn_dataset_label(const fn_dataset *d, size_t i) { return d && i < d->n ? d->items[i].label : -1; }

fn_status dataset_read(const fn_dataset *d, size_t i, image_rgb *out)
{
    const ds_item *it = &d->items[i];
    if (d->pixels)
        return dataset_read_memory(d, i, out);
    if (it->file < 0)
        return image_load(it->name, out);
    const ds_file *f = &d->files[it->file];
    unsigned char planes[CIFAR_PIXELS];
    off_t at = (off_t)it->record * (f->label_bytes + CIFAR_PIXELS) + f->label_bytes;
    if (pread(f->fd, planes, sizeof planes, at) != (ssize_t)sizeof planes)
        return fn_fail(FN_ERR_IO, "%s: read error", it->name);
    if (!(out->px = fn_malloc(CIFAR_PIXELS)))
        return FN_ERR_NO_MEMORY;
    out->w = out->h = 32;
    for (int p = 0; p < 1024; p++) /* planes R, G, B -> interleaved RGB */
        for (int c = 0; c < 3; c++)
            out->px[3 * p + c] = planes[c * 1024 + p];
    return FN_OK;
}
