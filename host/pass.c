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
#include "hash.h"
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
    if (o->ranks > 1 && (o->rank < 0 || o->rank >= o->ranks))
        return fn_fail(FN_ERR_INVALID_ARG, "rank %d of %d", o->rank, o->ranks);
    if (o->decode_threads > model_thread_limit())
        return fn_fail(FN_ERR_INVALID_ARG, "%d decode threads is over the limit of %d (4 per core, at "
                       "most 256)", o->decode_threads, model_thread_limit());
    int batch = o->batch > 0 ? o->batch : m->max_batch / per_image;
    if (o->batch > 0 && (long)batch * per_image > m->max_batch)
        return fn_fail(FN_ERR_INVALID_ARG, "batch %d needs max_batch >= %d (the model has %d)", batch,
                       batch * per_image, m->max_batch);
    if (batch < 1) /* select: each image goes with its Jigsaw copy */
        return fn_fail(FN_ERR_INVALID_ARG,
                       "this pass runs %d rows per image (the image and its Jigsaw copy), so it "
                       "needs a model max_batch (--batch) of at least %d; it is %d",
                       per_image, per_image, m->max_batch);
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

/* What a checkpoint of this run must match: the model file, the data listing
 * and every option that changes a result. */
static ckpt_key run_key(const fn_model *m, const fn_dataset *d, const fn_run_options *o, const char *kind,
                        int batch)
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
        int fit, gen_m;      /* the detectors: what select gathers, what score computes */
        float gen_gamma;
        uint64_t fit_path;
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
    opt.fit = o->fit, opt.gen_m = o->gen_m, opt.gen_gamma = o->gen_gamma;
    opt.fit_path = o->fit_path ? hash_bytes(0, o->fit_path, strlen(o->fit_path)) : 0;
    k.options = hash_bytes(0, &opt, sizeof opt);
    return k;
}

#define CHECKPOINT_IMAGES 5000
#define CHECKPOINT_SECONDS 60.0

typedef struct saver {
    const char *path;
    ckpt_key key;
    size_t next;      /* the first item not yet in the state */
    size_t since;     /* images since the last save */
    double last;      /* when it was saved */
} saver;

static fn_status save(saver *sv, const pass_spec *spec, size_t skipped)
{
    bytes b = {0};
    spec->save(spec->ctx, &b);
    fn_status s = ckpt_save(sv->path, spec->label, &sv->key, sv->next, skipped, &b);
    bytes_free(&b);
    sv->since = 0;
    sv->last = progress_now();
    return s;
}

/* Picks up a checkpoint: the pass then starts at its next item. */
static fn_status resume(saver *sv, const fn_run_options *o, const pass_spec *spec, size_t *first,
                        size_t *skipped)
{
    if (!ckpt_exists(sv->path))
        return FN_OK; /* nothing to resume: start from the beginning */
    if (!o->resume)
        return fn_fail(FN_ERR_INVALID_ARG,
                       "%s: a checkpoint of an interrupted run is there; resume it (--resume) or "
                       "remove it",
                       sv->path);
    bytes b;
    size_t next;
    FN_TRY(ckpt_load(sv->path, spec->label, &sv->key, &next, skipped, &b));
    fn_status s = next < spec->first || next > spec->first + spec->count
                      ? fn_fail(FN_ERR_FORMAT, "%s: resumes at item %zu, outside this run", sv->path,
                                next)
                      : spec->load(spec->ctx, &b);
    if (s == FN_OK && b.bad)
        s = fn_fail(FN_ERR_FORMAT, "%s: the checkpoint's state does not fit this run", sv->path);
    bytes_free(&b);
    if (s == FN_OK && o->verbose)
        fprintf(stderr, "featurenorm: resuming %s at image %zu of %zu (%s)\n", spec->label,
                next - spec->first, spec->count, sv->path);
    *first = next;
    return s;
}

fn_status pass_run(fn_model *m, const fn_dataset *d, const fn_run_options *o,
                   const pass_settings *ps, const pass_spec *spec, pass_stats *stats)
{
    backend *be = m->be;
    memset(stats, 0, sizeof *stats);
    saver sv = {o->checkpoint, {0}, spec->first, 0, progress_now()};
    size_t first = spec->first, skipped_before = 0;
    const size_t every = o->checkpoint_every > 0 ? (size_t)o->checkpoint_every : CHECKPOINT_IMAGES;
    if (sv.path) {
        sv.key = run_key(m, d, o, spec->label, ps->batch);
        FN_TRY(resume(&sv, o, spec, &first, &skipped_before));
        sv.next = first;
    }
    const size_t end = spec->first + spec->count;
    pipeline_config pc = {d, first, end - first, ps->preset, m->net.input_size, ps->batch,
                          ps->threads, o->strict, !o->verbose, {0}, be->slots};
    for (int i = 0; i < be->slots; i++)
        pc.buffers[i] = be->input(be, i);
    pipeline *p = NULL;
    FN_TRY(pipeline_create(&pc, &p));

    progress pr;
    progress_start(&pr, spec->label, end - first, !o->verbose || o->rank > 0); /* rank 0 speaks */
    double t_start = progress_now();
    pipeline_batch queue[BACKEND_MAX_SLOTS]; /* submitted, not yet collected, oldest first */
    int queued = 0, done = 0;
    fn_status st = FN_OK;
    while (st == FN_OK && (!done || queued > 0)) {
        if (!done && o->cancel && *o->cancel)
            done = 1; /* stop reading; what is in flight still lands */
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
                sv.next = b.end; /* trailing unreadable images count as read */
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
            memmove(queue, queue + 1, sizeof *queue * (size_t)--queued);
            stats->images += (size_t)b.n;
            sv.next = b.end, sv.since += (size_t)b.n;
            pipeline_release(p, b.slot);
            progress_update(&pr, stats->images + pipeline_skipped(p));
            if (st == FN_OK && sv.path && spec->save &&
                (sv.since >= every || progress_now() - sv.last >= CHECKPOINT_SECONDS))
                st = save(&sv, spec, skipped_before + pipeline_skipped(p));
            stats->host += progress_now() - t1;
        }
    }
    for (int i = 0; i < queued; i++) { /* after an error: let the device finish */
        backend_result r;
        be->collect(be, queue[i].slot, &r);
    }
    stats->skipped = skipped_before + pipeline_skipped(p);
    stats->decode = pipeline_decode_seconds(p);
    stats->wall = progress_now() - t_start;
    pipeline_free(p);
    if (st == FN_OK && o->cancel && *o->cancel) {
        if (sv.path && spec->save && (st = save(&sv, spec, stats->skipped)) != FN_OK)
            return st;
        return fn_fail(FN_ERR_CANCELLED, "%s stopped at image %zu of %zu%s%s", spec->label,
                       sv.next - spec->first, spec->count, sv.path ? "; progress kept in " : "",
                       sv.path ? sv.path : "");
    }
    if (st == FN_OK)
        progress_finish(&pr, stats->images, stats->skipped);
    if (st == FN_OK && o->profile && o->rank == 0)
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
