/* checkpoint.c: checkpoint files: "FNCKPT1\n", the kind, the key, progress,
 * then the state bytes and their hash, written atomically (outfile.c). */
#include "checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "hash.h"
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
