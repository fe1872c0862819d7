/* checkpoint.c: checkpoint files: "FNCKPT1\n", the kind, the key, progress,
 * then the state bytes and their hash, written atomically (outfile.c). */
#include "checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset.h"
#include "error.h"
#include "model.h"
#include "outfile.h"

static const char magic[8] = "FNCKPT1\n";

void bytes_put(bytes *b, const void *v, size_t len)
{
    if (b->bad)
        return;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->bad = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->len, v, len);
    b->len += len;
}

void bytes_get(bytes *b, void *v, size_t len)
{
    if (b->bad || len > b->len - b->at) {
        b->bad = 1;
        memset(v, 0, len);
        return;
    }
    memcpy(v, b->p + b->at, len);
    b->at += len;
}

void bytes_free(bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* FNV-1a over 64-bit words, mixed: fast enough for a weights file (GB/s),
 * and any change of content, order or length changes it. */
uint64_t hash_bytes(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    if (!h)
        h = 0xcbf29ce484222325ull;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; len; p++, len--)
        h = (h ^ *p) * 0x100000001b3ull;
    return h ^ (h >> 32);
}

fn_status hash_file(const char *path, uint64_t *h)
{
    *h = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fn_fail(FN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    static const size_t chunk = 1 << 20;
    uint8_t *buf = malloc(chunk);
    uint64_t acc = 0;
    size_t got, total = 0;
    while (buf && (got = fread(buf, 1, chunk, f)) > 0)
        acc = hash_bytes(acc, buf, got), total += got;
    int bad = !buf || ferror(f);
    fclose(f);
    free(buf);
    if (bad)
        return fn_fail(FN_ERR_IO, "%s: cannot read", path);
    *h = hash_bytes(acc, &total, sizeof total);
    return FN_OK;
}

ckpt_key ckpt_key_make(const fn_model *m, const fn_dataset *d, const fn_run_options *o,
                       const char *kind, int batch)
{
    ckpt_key k = {m->source_hash, 0, 0};
    for (size_t i = 0; i < d->n; i++) {
        k.data = hash_bytes(k.data, d->items[i].name, strlen(d->items[i].name) + 1);
        k.data = hash_bytes(k.data, &d->items[i].label, sizeof d->items[i].label);
    }
    /* everything that changes a result, bit for bit */
    struct {
        char kind[16], arch[32], backend[8];
        int batch, preset, strict, block, precision, input_size;
        float react_clip, react_percentile, mean[3], std[3];
        uint64_t seed;
        int rank, ranks;
    } opt;
    memset(&opt, 0, sizeof opt);
    snprintf(opt.kind, sizeof opt.kind, "%s", kind);
    snprintf(opt.arch, sizeof opt.arch, "%s", m->net.arch);
    snprintf(opt.backend, sizeof opt.backend, "%s", m->be ? m->be->name : "");
    opt.batch = batch, opt.preset = o->preset, opt.strict = o->strict, opt.block = o->block;
    opt.precision = m->precision, opt.input_size = m->net.input_size;
    opt.react_clip = o->react_clip, opt.react_percentile = o->react_percentile;
    memcpy(opt.mean, m->net.mean, sizeof opt.mean);
    memcpy(opt.std, m->net.std, sizeof opt.std);
    opt.seed = o->seed;
    opt.rank = o->ranks > 1 ? o->rank : 0, opt.ranks = o->ranks > 1 ? o->ranks : 1;
    k.options = hash_bytes(0, &opt, sizeof opt);
    return k;
}

int ckpt_exists(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0;
}

typedef struct header {
    char magic[8], kind[16];
    ckpt_key key;
    uint64_t next, skipped, state_len, state_hash;
} header;

fn_status ckpt_save(const char *path, const char *kind, const ckpt_key *k, size_t next,
                    size_t skipped, const bytes *state)
{
    if (state->bad)
        return fn_fail(FN_ERR_NO_MEMORY, "%s: out of host memory for the checkpoint", path);
    header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, magic, sizeof magic);
    snprintf(h.kind, sizeof h.kind, "%s", kind);
    h.key = *k;
    h.next = next, h.skipped = skipped, h.state_len = state->len;
    h.state_hash = hash_bytes(0, state->p, state->len);
    outfile o;
    FN_TRY(outfile_open(&o, path));
    fwrite(&h, sizeof h, 1, o.f);
    fwrite(state->p, 1, state->len, o.f);
    return outfile_commit(&o);
}

fn_status ckpt_load(const char *path, const char *kind, const ckpt_key *k, size_t *next,
                    size_t *skipped, bytes *state)
{
    memset(state, 0, sizeof *state);
    FILE *f = fopen(path, "rb");
    if (!f)
        return fn_fail(FN_ERR_IO, "%s: cannot open the checkpoint: %s", path, strerror(errno));
    header h;
    fn_status s = FN_OK;
    if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, magic, sizeof magic) != 0 ||
        memchr(h.kind, 0, sizeof h.kind) == NULL)
        s = fn_fail(FN_ERR_FORMAT, "%s: not a featurenorm checkpoint", path);
    else if (strcmp(h.kind, kind) != 0)
        s = fn_fail(FN_ERR_INVALID_ARG, "%s: a checkpoint of `%s`, not of `%s`", path, h.kind, kind);
    else if (h.key.model != k->model)
        s = fn_fail(FN_ERR_INVALID_ARG, "%s: made with other model weights; not resuming", path);
    else if (h.key.data != k->data)
        s = fn_fail(FN_ERR_INVALID_ARG, "%s: made on other data (the listing changed); not resuming",
                    path);
    else if (h.key.options != k->options)
        s = fn_fail(FN_ERR_INVALID_ARG,
                    "%s: made with other options (batch, preset, seed, block, precision or "
                    "backend); not resuming",
                    path);
    else if (!(state->p = malloc(h.state_len ? h.state_len : 1)))
        s = fn_fail(FN_ERR_NO_MEMORY, "%s: out of host memory", path);
    else if (fread(state->p, 1, h.state_len, f) != h.state_len || fgetc(f) != EOF ||
             hash_bytes(0, state->p, h.state_len) != h.state_hash)
        s = fn_fail(FN_ERR_FORMAT, "%s: the checkpoint is truncated or damaged", path);
    fclose(f);
    if (s != FN_OK) {
        bytes_free(state);
        return s;
    }
    state->len = state->cap = h.state_len;
    *next = (size_t)h.next;
    *skipped = (size_t)h.skipped;
    return FN_OK;
}
