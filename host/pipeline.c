/* pipeline.c: two batch slots and a pool of decode threads.
 *
 * While the consumer works on the batch in one slot, the threads fill the
 * other. Each thread takes the next undecoded image of the oldest pending
 * slot, so a slow image never holds the others up. */
#include "pipeline.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "error.h"
#include "image.h"

typedef struct slot {
    uint8_t *images;
    size_t *index;
    char **errors;  /* per image: NULL, or why it could not be read */
    size_t start;   /* first dataset item */
    int count;      /* items in this batch (0: nothing left) */
    int next;       /* next item to hand to a thread */
    int done;       /* items finished */
    int pending;    /* queued for decoding */
} slot;

struct pipeline {
    const fn_dataset *d;
    fn_preset preset;
    int size, batch, strict, quiet;
    size_t image_bytes;
    pthread_t *threads;
    int n_threads;
    pthread_mutex_t lock;
    pthread_cond_t work, finished;
    slot slots[2];
    int order;         /* the slot holding the next batch to return */
    int handed_out;    /* the slot the consumer holds, or -1 */
    size_t next_start; /* first dataset item not yet given to a slot */
    size_t skipped;
    int stop;
};

/* Under the lock: give the slot the next batch of items. */
static void assign(pipeline *p, slot *s)
{
    size_t left = p->d->n - p->next_start;
    s->start = p->next_start;
    s->count = left < (size_t)p->batch ? (int)left : p->batch;
    s->next = s->done = 0;
    s->pending = s->count > 0;
    p->next_start += (size_t)s->count;
    if (s->pending)
        pthread_cond_broadcast(&p->work);
}

static slot *oldest_with_work(pipeline *p)
{
    slot *a = &p->slots[p->order], *b = &p->slots[1 - p->order];
    if (a->pending && a->next < a->count)
        return a;
    if (b->pending && b->next < b->count)
        return b;
    return NULL;
}

static void *decode_thread(void *arg)
{
    pipeline *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        slot *s;
        while (!p->stop && !(s = oldest_with_work(p)))
            pthread_cond_wait(&p->work, &p->lock);
        if (p->stop)
            break;
        int pos = s->next++;
        pthread_mutex_unlock(&p->lock);

        image_rgb im = {0};
        char *error = NULL;
        fn_status st = dataset_read(p->d, s->start + (size_t)pos, &im);
        if (st == FN_OK)
            st = image_preprocess(&im, p->preset, p->size, s->images + (size_t)pos * p->image_bytes);
        image_free(&im);
        if (st != FN_OK && !(error = strdup(fn_last_error())))
            error = NULL; /* the image still counts as unreadable below */

        pthread_mutex_lock(&p->lock);
        s->errors[pos] = error;
        if (st != FN_OK && !error)
            s->errors[pos] = (char *)""; /* out of memory for the message itself */
        if (++s->done == s->count)
            pthread_cond_broadcast(&p->finished);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

fn_status pipeline_create(const fn_dataset *d, fn_preset preset, int size, int batch, int threads,
                          int strict, int quiet, pipeline **out)
{
    *out = NULL;
    pipeline *p = fn_calloc(1, sizeof *p);
    if (!p)
        return FN_ERR_NO_MEMORY;
    p->d = d, p->preset = preset, p->size = size, p->batch = batch;
    p->strict = strict, p->quiet = quiet, p->handed_out = -1;
    p->image_bytes = (size_t)size * size * 3;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->finished, NULL);
    for (int i = 0; i < 2; i++) {
        slot *s = &p->slots[i];
        s->images = malloc(p->image_bytes * (size_t)batch);
        s->index = malloc(sizeof *s->index * (size_t)batch);
        s->errors = calloc((size_t)batch, sizeof *s->errors);
        if (!s->images || !s->index || !s->errors) {
            pipeline_free(p);
            return fn_fail(FN_ERR_NO_MEMORY, "out of host memory for decode buffers (batch %d)", batch);
        }
    }
    p->threads = calloc((size_t)threads, sizeof *p->threads);
    for (int i = 0; p->threads && i < threads; i++, p->n_threads++)
        if (pthread_create(&p->threads[i], NULL, decode_thread, p) != 0)
            break;
    if (p->n_threads == 0) {
        pipeline_free(p);
        return fn_fail(FN_ERR_NO_MEMORY, "cannot start decode threads");
    }
    pthread_mutex_lock(&p->lock);
    assign(p, &p->slots[0]);
    assign(p, &p->slots[1]);
    pthread_mutex_unlock(&p->lock);
    *out = p;
    return FN_OK;
}

/* Moves the readable images of a finished slot to its front. */
static fn_status compact(pipeline *p, slot *s, int *n)
{
    fn_status st = FN_OK;
    int k = 0;
    for (int i = 0; i < s->count; i++) {
        char *err = s->errors[i];
        s->errors[i] = NULL;
        if (err) {
            if (st == FN_OK && p->strict)
                st = fn_fail(FN_ERR_FORMAT, "%s", *err ? err : "an image could not be read");
            else if (!p->strict && !p->quiet)
                fprintf(stderr, "featurenorm: skipping unreadable image: %s\n", err);
            p->skipped++;
            if (*err)
                free(err);
            continue;
        }
        if (k != i)
            memcpy(s->images + (size_t)k * p->image_bytes, s->images + (size_t)i * p->image_bytes,
                   p->image_bytes);
        s->index[k++] = s->start + (size_t)i;
    }
    *n = k;
    return st;
}

fn_status pipeline_next(pipeline *p, pipeline_batch *out)
{
    for (;;) {
        pthread_mutex_lock(&p->lock);
        if (p->handed_out >= 0) /* the consumer is done with it: refill */
            assign(p, &p->slots[p->handed_out]);
        slot *s = &p->slots[p->order];
        while (s->pending && s->done < s->count)
            pthread_cond_wait(&p->finished, &p->lock);
        s->pending = 0;
        p->handed_out = p->order;
        p->order = 1 - p->order;
        pthread_mutex_unlock(&p->lock);

        int n = 0;
        if (s->count == 0) {
            *out = (pipeline_batch){NULL, NULL, 0};
            return FN_OK;
        }
        FN_TRY(compact(p, s, &n));
        if (n > 0) {
            *out = (pipeline_batch){s->images, s->index, n};
            return FN_OK;
        }
    }
}

size_t pipeline_skipped(const pipeline *p) { return p->skipped; }

void pipeline_free(pipeline *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    for (int i = 0; i < 2; i++) {
        slot *s = &p->slots[i];
        for (int k = 0; s->errors && k < p->batch; k++)
            if (s->errors[k] && *s->errors[k])
                free(s->errors[k]);
        free(s->images);
        free(s->index);
        free(s->errors);
    }
    free(p->threads);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->finished);
    free(p);
}
