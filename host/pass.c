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

/* One pass in flight: batches submitted and not yet collected, oldest first. */
typedef struct pass_loop {
    fn_model *m;
    const fn_run_options *o;
    const pass_spec *spec;
    pass_stats *stats;
    saver sv;
    size_t skipped_before, every;
    pipeline *p;
    progress pr;
    pipeline_batch queue[BACKEND_MAX_SLOTS];
    int queued, done;
} pass_loop;

/* Resumes from the checkpoint if there is one, then starts decoding. */
static fn_status pass_open(pass_loop *l, const fn_dataset *d, const pass_settings *ps)
{
    const fn_run_options *o = l->o;
    const pass_spec *spec = l->spec;
    backend *be = l->m->be;
    size_t first = spec->first;
    l->sv = (saver){.path = o->checkpoint, .next = spec->first, .last = progress_now()};
    l->every = o->checkpoint_every > 0 ? (size_t)o->checkpoint_every : CHECKPOINT_IMAGES;
    if (l->sv.path) {
        l->sv.key = run_key(l->m, d, o, spec->label, ps->batch);
        FN_TRY(resume(&l->sv, o, spec, &first, &l->skipped_before));
        l->sv.next = first;
    }
    const size_t end = spec->first + spec->count;
    pipeline_config pc = {.d = d, .first = first, .count = end - first, .preset = ps->preset,
                          .size = l->m->net.input_size, .batch = ps->batch, .threads = ps->threads,
                          .strict = o->strict, .quiet = !o->verbose, .slots = be->slots};
    for (int i = 0; i < be->slots; i++)
        pc.buffers[i] = be->input(be, i);
    FN_TRY(pipeline_create(&pc, &l->p));
    progress_start(&l->pr, spec->label, end - first, !o->verbose || o->rank > 0); /* rank 0 speaks */
    return FN_OK;
}

/* The next decoded batch (with its Jigsaw copies) onto the backend. */
static fn_status submit_next(pass_loop *l)
{
    backend *be = l->m->be;
    const pass_spec *spec = l->spec;
    pipeline_batch b;
    double t0 = progress_now();
    fn_status st = pipeline_next(l->p, &b);
    double t1 = progress_now();
    l->stats->wait_decode += t1 - t0;
    if (st != FN_OK)
        return st;
    if (b.n == 0) {
        l->done = 1;
        l->sv.next = b.end; /* trailing unreadable images count as read */
        return FN_OK;
    }
    if (spec->per_image == 2)
        add_jigsaw((uint8_t *)b.images, b.index, b.n, l->m->net.input_size, spec->seed);
    double t2 = progress_now();
    backend_request rq = {.n = b.n * spec->per_image, .react_clip = spec->react_clip};
    st = be->submit(be, b.slot, &rq);
    l->stats->submit += progress_now() - t2;
    l->stats->host += t2 - t1;
    l->queue[l->queued++] = b; /* collected even after a failed submit */
    return st;
}

/* The oldest batch's rows to the callback; progress, and a checkpoint when due. */
static fn_status collect_oldest(pass_loop *l)
{
    backend *be = l->m->be;
    const pass_spec *spec = l->spec;
    pipeline_batch b = l->queue[0];
    pass_rows rows = {.n = b.n, .index = b.index};
    double t0 = progress_now();
    fn_status st = be->collect(be, b.slot, &rows.r);
    double t1 = progress_now();
    l->stats->wait_device += t1 - t0;
    if (st == FN_OK)
        st = spec->on_batch(spec->ctx, &rows);
    memmove(l->queue, l->queue + 1, sizeof *l->queue * (size_t)--l->queued);
    l->stats->images += (size_t)b.n;
    l->sv.next = b.end, l->sv.since += (size_t)b.n;
    pipeline_release(l->p, b.slot);
    progress_update(&l->pr, l->stats->images + pipeline_skipped(l->p));
    if (st == FN_OK && l->sv.path && spec->save &&
        (l->sv.since >= l->every || progress_now() - l->sv.last >= CHECKPOINT_SECONDS))
        st = save(&l->sv, spec, l->skipped_before + pipeline_skipped(l->p));
    l->stats->host += progress_now() - t1;
    return st;
}

/* After the loop: a cancelled pass keeps its progress and says where it stopped. */
static fn_status pass_close(pass_loop *l, fn_status st, const pass_settings *ps)
{
    const fn_run_options *o = l->o;
    const pass_spec *spec = l->spec;
    if (st == FN_OK && o->cancel && *o->cancel) {
        if (l->sv.path && spec->save && (st = save(&l->sv, spec, l->stats->skipped)) != FN_OK)
            return st;
        return fn_fail(FN_ERR_CANCELLED, "%s stopped at image %zu of %zu%s%s", spec->label,
                       l->sv.next - spec->first, spec->count, l->sv.path ? "; progress kept in " : "",
                       l->sv.path ? l->sv.path : "");
    }
    if (st == FN_OK)
        progress_finish(&l->pr, l->stats->images, l->stats->skipped);
    if (st == FN_OK && o->profile && o->rank == 0)
        pass_print_profile(spec->label, l->stats, ps->threads);
    return st;
}

fn_status pass_run(fn_model *m, const fn_dataset *d, const fn_run_options *o,
                   const pass_settings *ps, const pass_spec *spec, pass_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    pass_loop l = {.m = m, .o = o, .spec = spec, .stats = stats};
    FN_TRY(pass_open(&l, d, ps));
    const int slots = m->be->slots;
    double t_start = progress_now();
    fn_status st = FN_OK;
    while (st == FN_OK && (!l.done || l.queued > 0)) {
        if (!l.done && o->cancel && *o->cancel)
            l.done = 1; /* stop reading; what is in flight still lands */
        if (!l.done)
            st = submit_next(&l);
        /* Collect when every slot but the one being decoded is on the backend. */
        if (st == FN_OK && l.queued > 0 && (l.done || l.queued >= slots - 1))
            st = collect_oldest(&l);
    }
    for (int i = 0; i < l.queued; i++) { /* after an error: let the device finish */
        backend_result r;
        m->be->collect(m->be, l.queue[i].slot, &r);
    }
    stats->skipped = l.skipped_before + pipeline_skipped(l.p);
    stats->decode = pipeline_decode_seconds(l.p);
    stats->wall = progress_now() - t_start;
    pipeline_free(l.p);
    return pass_close(&l, st, ps);
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
