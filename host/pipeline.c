/* pipeline.c: batch slots and a pool of decode threads.
 *
 * Batches go to slots in ring order and are handed out in the same order.
 * While the caller (and the device) work on some slots, the threads fill the
 * others. Each thread takes the next undecoded image of the oldest pending
 * slot, so a slow image never holds the others up. */
#include "pipeline.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "error.h"
#include "image.h"
#include "progress.h"

typedef struct slot {
    uint8_t *images;
    size_t *index;
    char **errors;  /* per image: NULL, or why it could not be read */
    size_t start;   /* first dataset item */
    size_t seq;     /* batch number: older batches are decoded first */
    int count;      /* items in this batch (0: nothing left) */
    int next;       /* next item to hand to a thread */
    int done;       /* items finished */
    int pending;    /* queued for decoding */
} slot;

struct pipeline {
    pipeline_config c;
    size_t image_bytes, end;
    pthread_t *threads;
    int n_threads;
    pthread_mutex_t lock;
    pthread_cond_t work, finished;
    slot slots[4];
    int order;         /* the slot holding the next batch to hand out */
    size_t next_start; /* first dataset item not yet given to a slot */
    size_t next_seq;
    size_t skipped;
    double decode_seconds;
    int stop;
};

static const char no_message[] = ""; /* out of memory for the message itself */

/* Under the lock: give the slot the next batch of items. */
static void assign(pipeline *p, slot *s)
{
    size_t left = p->end - p->next_start;
    s->start = p->next_start;
    s->seq = p->next_seq++;
    s->count = left < (size_t)p->c.batch ? (int)left : p->c.batch;
    s->next = s->done = 0;
    s->pending = s->count > 0;
    p->next_start += (size_t)s->count;
    if (s->pending)
        pthread_cond_broadcast(&p->work);
}

static slot *oldest_with_work(pipeline *p)
{
    slot *best = NULL;
    for (int i = 0; i < p->c.slots; i++) {
        slot *s = &p->slots[i];
        if (s->pending && s->next < s->count && (!best || s->seq < best->seq))
            best = s;
    }
    return best;
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

        double t0 = progress_now();
        image_rgb im = {0};
        char *error = NULL;
        fn_status st = dataset_read(p->c.d, s->start + (size_t)pos, &im);
        if (st == FN_OK)
            st = image_preprocess(&im, p->c.preset, p->c.size,
                                  s->images + (size_t)pos * p->image_bytes);
        image_free(&im);
        if (st != FN_OK && !(error = strdup(fn_last_error())))
            error = (char *)no_message; /* the image still counts as unreadable */
        double t1 = progress_now();

        pthread_mutex_lock(&p->lock);
        s->errors[pos] = error;
        p->decode_seconds += t1 - t0;
        if (++s->done == s->count)
            pthread_cond_broadcast(&p->finished);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

fn_status pipeline_create(const pipeline_config *c, pipeline **out)
{
    *out = NULL;
    if (c->slots < 1 || c->slots > 4 || c->batch < 1 || c->threads < 1)
        return fn_fail(FN_ERR_INVALID_ARG, "pipeline: %d slots, batch %d, %d threads", c->slots,
                       c->batch, c->threads);
    pipeline *p = fn_calloc(1, sizeof *p);
    if (!p)
        return FN_ERR_NO_MEMORY;
    p->c = *c;
    p->image_bytes = (size_t)c->size * c->size * 3;
    p->next_start = c->first;
    p->end = c->first + c->count;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->finished, NULL);
    for (int i = 0; i < c->slots; i++) {
        slot *s = &p->slots[i];
        s->images = c->buffers[i];
        s->index = malloc(sizeof *s->index * (size_t)c->batch);
        s->errors = calloc((size_t)c->batch, sizeof *s->errors);
        if (!s->index || !s->errors) {
            pipeline_free(p);
            return fn_fail(FN_ERR_NO_MEMORY, "out of host memory for decode buffers (batch %d)",
                           c->batch);
        }
    }
    p->threads = calloc((size_t)c->threads, sizeof *p->threads);
    for (int i = 0; p->threads && i < c->threads; i++, p->n_threads++)
        if (pthread_create(&p->threads[i], NULL, decode_thread, p) != 0)
            break;
    if (p->n_threads == 0) {
        pipeline_free(p);
        return fn_fail(FN_ERR_NO_MEMORY, "cannot start decode threads");
    }
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < c->slots; i++)
        assign(p, &p->slots[i]);
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
            if (st == FN_OK && p->c.strict)
                st = fn_fail(FN_ERR_FORMAT, "%s", *err ? err : "an image could not be read");
            else if (!p->c.strict && !p->c.quiet)
                fprintf(stderr, "featurenorm: skipping unreadable image: %s\n", err);
            p->skipped++;
            if (err != no_message)
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
        int id = p->order;
        slot *s = &p->slots[id];
        while (s->pending && s->done < s->count)
            pthread_cond_wait(&p->finished, &p->lock);
        s->pending = 0;
        p->order = (p->order + 1) % p->c.slots;
        pthread_mutex_unlock(&p->lock);

        int n = 0;
        if (s->count == 0) {
            *out = (pipeline_batch){id, NULL, NULL, 0, s->start};
            return FN_OK;
        }
        FN_TRY(compact(p, s, &n));
        if (n > 0) {
            *out = (pipeline_batch){id, s->images, s->index, n, s->start + (size_t)s->count};
            return FN_OK;
        }
        pipeline_release(p, id); /* every image of this batch was unreadable */
    }
}

void pipeline_release(pipeline *p, int id)
{
    pthread_mutex_lock(&p->lock);
    assign(p, &p->slots[id]);
    pthread_mutex_unlock(&p->lock);
}

size_t pipeline_skipped(const pipeline *p) { return p->skipped; }

double pipeline_decode_seconds(const pipeline *p)
{
    pthread_mutex_lock((pthread_mutex_t *)&p->lock);
    double s = p->decode_seconds;
    pthread_mutex_unlock((pthread_mutex_t *)&p->lock);
    return s;
}

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
    for (int i = 0; i < p->c.slots; i++) {
        slot *s = &p->slots[i];
        for (int k = 0; s->errors && k < p->c.batch; k++)
            if (s->errors[k] && s->errors[k] != no_message)
                free(s->errors[k]);
        free(s->index);
        free(s->errors);
    }
    free(p->threads);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->finished);
    free(p);
}
