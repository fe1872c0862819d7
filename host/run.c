/* run.c: the options of the dataset passes (score, select), checked and
 * resolved once for both. */
#include <string.h>

#include "error.h"
#include "model.h"
#include "run.h"

void fn_run_options_init(fn_run_options *o)
{
    memset(o, 0, sizeof *o);
    o->preset = FN_PRESET_AUTO;
    o->block = -1;
    o->react_percentile = 90.0f;
}

fn_status run_setup(fn_model *m, const fn_dataset *d, const fn_run_options *o, int per_image,
                    run_settings *rs)
{
    if (!m || !d || !o)
        return fn_fail(FN_ERR_INVALID_ARG, "NULL model, dataset or options");
    if (!m->be)
        return fn_fail(FN_ERR_INVALID_ARG, "%s: the model was loaded without weights", m->net.arch);
    if (o->batch < 0 || o->decode_threads < 0 || (unsigned)o->preset > FN_PRESET_IMAGENET)
        return fn_fail(FN_ERR_INVALID_ARG, "an option is out of range");
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
    rs->batch = batch;
    rs->preset = o->preset == FN_PRESET_AUTO ? m->net.preset : o->preset;
    rs->threads = o->decode_threads > 0 ? o->decode_threads : m->threads;
    return FN_OK;
}
