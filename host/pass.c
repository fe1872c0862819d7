/* pass.c: the batch loop of every dataset pass.
 *
 * With S backend slots, S - 1 batches are kept on the backend while the decode
 * threads fill the remaining slot: on a GPU the copy and compute of earlier
 * batches overlap decoding; on the CPU (S = 2, synchronous) decoding of the
 * next batch overlaps the forward of this one. */
#include "pass.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dataset.h"
#include "error.h"
#include "model.h"
#include "pipeline.h"
#include "progress.h"

void fn_run_options_init(fn_run_options *o)
{
    memset(o, 0, sizeof *o);
    o->preset = FN_PRESET_AUTO;
    o->block = -1;
    o->react_percentile = 90.0f;
}

fn_status pass_settings_resolve(fn_model *m, const fn_dataset *d, const fn_run_options *o,
                                int per_image, pass_settings *ps)
{
    if (!m || !d || !o)
        return fn_fail(FN_ERR_INVALID_ARG, "NULL model, dataset or options");
    if (!m->be)
        return fn_fail(FN_ERR_INVALID_ARG, "%s: the model was loaded without weights", m->net.arch);
    if (o->batch < 0 || o->decode_threads < 0 || (unsigned)o->preset > FN_PRESET_IMAGENET)
        return fn_fail(FN_ERR_INVALID_ARG, "an option is out of range");
    int batch = o->batch > 0 ? o->batch : m->max_batch / per_image;
    if (o->batch > 0 && (long)batch * per_image > m->max_batch)
        return fn_fail(FN_ERR_INVALID_ARG, "batch %d needs max_batch >= %d (the model has %d)", batch,
                       batch * per_image, m->max_batch);
    if (batch < 1)
        return fn_fail(FN_ERR_INVALID_ARG,
                       "max_batch %d is too small: this pass runs %d rows per image (batch >= %d)",
                       m->max_batch, per_image, per_image);
    ps->batch = batch;
    ps->preset = o->preset == FN_PRESET_AUTO ? m->net.preset : o->preset;
    ps->threads = o->decode_threads > 0 ? o->decode_threads : m->threads;
    return FN_OK;
}

/* Jigsaw copies of the n images after them, each permuted by its item alone. */
static void add_jigsaw(uint8_t *images, const size_t *index, int n, int size, uint64_t seed)
{
    const size_t bytes = (size_t)size * size * 3;
    for (int i = 0; i < n; i++)
        fn_jigsaw(images + bytes * (size_t)i, images + bytes * (size_t)(n + i), 1, size, 3, seed,
                  index[i]);
}

fn_status pass_run(fn_model *m, const fn_dataset *d, const fn_run_options *o,
                   const pass_settings *ps, const pass_spec *spec, pass_stats *stats)
{
    backend *be = m->be;
    memset(stats, 0, sizeof *stats);
    pipeline_config pc = {d, spec->first, spec->count, ps->preset, m->net.input_size, ps->batch,
                          ps->threads, o->strict, !o->verbose, {0}, be->slots};
    for (int i = 0; i < be->slots; i++)
        pc.buffers[i] = be->input(be, i);
    pipeline *p = NULL;
    FN_TRY(pipeline_create(&pc, &p));

    progress pr;
    progress_start(&pr, spec->label, spec->count, !o->verbose);
    double t_start = progress_now();
    pipeline_batch queue[BACKEND_MAX_SLOTS]; /* submitted, not yet collected, oldest first */
    int queued = 0, done = 0;
    fn_status st = FN_OK;
    while (st == FN_OK && (!done || queued > 0)) {
        if (!done) {
            pipeline_batch b;
            double t0 = progress_now();
            st = pipeline_next(p, &b);
            double t1 = progress_now();
            stats->wait_decode += t1 - t0;
            if (st != FN_OK)
                break;
            if (b.n == 0) {
                done = 1;
            } else {
                if (spec->per_image == 2)
                    add_jigsaw((uint8_t *)b.images, b.index, b.n, m->net.input_size, spec->seed);
                double t2 = progress_now();
                backend_request rq = {b.n * spec->per_image, NULL, spec->react_clip};
                st = be->submit(be, b.slot, &rq);
                stats->submit += progress_now() - t2;
                stats->host += t2 - t1;
                queue[queued++] = b;
            }
        }
        /* Collect when every slot but the one being decoded is on the backend. */
        if (st == FN_OK && queued > 0 && (done || queued >= be->slots - 1)) {
            pipeline_batch b = queue[0];
            pass_rows rows = {b.n, b.index, {0}};
            double t0 = progress_now();
            st = be->collect(be, b.slot, &rows.r);
            double t1 = progress_now();
            stats->wait_device += t1 - t0;
            if (st == FN_OK)
                st = spec->on_batch(spec->ctx, &rows);
            stats->host += progress_now() - t1;
            memmove(queue, queue + 1, sizeof *queue * (size_t)--queued);
            stats->images += (size_t)b.n;
            pipeline_release(p, b.slot);
            progress_update(&pr, stats->images + pipeline_skipped(p));
        }
    }
    for (int i = 0; i < queued; i++) { /* after an error: let the device finish */
        backend_result r;
        be->collect(be, queue[i].slot, &r);
    }
    stats->skipped = pipeline_skipped(p);
    stats->decode = pipeline_decode_seconds(p);
    stats->wall = progress_now() - t_start;
    pipeline_free(p);
    if (st == FN_OK && stats->images == 0)
        return fn_fail(FN_ERR_EMPTY, "%s: none of the %zu images could be read", d->source,
                       spec->count);
    if (st == FN_OK)
        progress_finish(&pr, stats->images, stats->skipped);
    if (st == FN_OK && o->profile)
        pass_print_profile(spec->label, stats, ps->threads);
    return st;
}

void pass_print_profile(const char *label, const pass_stats *s, int decode_threads)
{
    const double forward = s->submit + s->wait_device;
    /* The loop is serial: whichever of decode-wait, forward and host work
     * takes most of the wall time is what limits the run. */
    const char *limit = s->wait_decode > forward && s->wait_decode > s->host ? "decoding"
                        : forward > s->host                                 ? "the forward pass"
                                                                            : "host work";
    fprintf(stderr,
            "featurenorm: %s profile: %.2f s wall, %zu images (%.1f img/s); decode %.2f s over %d "
            "threads, waited for decode %.2f s; forward %.2f s (submit %.2f s, waited for device "
            "%.2f s); host %.2f s. Limited by %s.\n",
            label, s->wall, s->images, s->wall > 0 ? s->images / s->wall : 0.0, s->decode,
            decode_threads, s->wait_decode, forward, s->submit, s->wait_device, s->host, limit);
}
