/* abi.c: the library describes its own public structs, so a host in another
 * language (python/featurenorm) builds them from this table instead of
 * writing the layouts a second time. Offsets and sizes come from offsetof and
 * sizeof; field types from _Generic on the field's address, so a field whose
 * type changes without its row changing does not compile, and tests/test_abi.c
 * checks that every field of every public struct in featurenorm.h has a row. */
#include <stddef.h>
#include <string.h>

#include "abi.h"
#include "featurenorm.h"

typedef struct abi_field {
    const char *strukt, *name, *type;
    size_t offset, size;
} abi_field;

typedef struct abi_struct {
    const char *name;
    size_t size;
} abi_struct;

/* The type of a field as the hosts name it: scalars, pointers to them, and
 * the one array type. Enums (all values non-negative) are unsigned int here. */
#define ABI_TYPE(p)                                                                          \
    _Generic((p), const char **: "char*", char **: "char*", char ***: "char**",             \
             int *: "int", unsigned *: "enum", float *: "float", double *: "double",         \
             size_t *: "size_t", float **: "float*", int **: "int*", size_t **: "size_t*",   \
             double **: "double*", float ***: "float**", fn_metrics **: "fn_metrics*",       \
             float(*)[3]: "float[3]", const volatile sig_atomic_t **: "void*", void **: "void*")
#define FIELD_AS(S, f, type) {#S, #f, type, offsetof(S, f), sizeof(((S *)0)->f)}
#define FIELD(S, f) FIELD_AS(S, f, ABI_TYPE(&((S *)0)->f))
/* uint64_t is size_t's type on LP64, so _Generic cannot tell them apart */
#define FIELD_U64(S, f) FIELD_AS(S, f, "uint64_t")

#define STRUCT(S) {#S, sizeof(S)},
static const abi_struct structs[] = {FN_ABI_STRUCTS(STRUCT)};

static const abi_field fields[] = {
    FIELD(fn_model_options, arch), FIELD(fn_model_options, weights), FIELD(fn_model_options, model),
    FIELD(fn_model_options, blocks), FIELD(fn_model_options, backend), FIELD(fn_model_options, precision),
    FIELD(fn_model_options, max_batch), FIELD(fn_model_options, threads),
    FIELD(fn_model_options, input_size), FIELD(fn_model_options, mean), FIELD(fn_model_options, std),
    FIELD(fn_model_options, stem_padding), FIELD(fn_model_options, verbose),
    FIELD(fn_model_options, device), FIELD(fn_model_options, allow_unused_weights),

    FIELD(fn_model_info, arch), FIELD(fn_model_info, backend), FIELD(fn_model_info, device),
    FIELD(fn_model_info, precision), FIELD(fn_model_info, has_weights), FIELD(fn_model_info, input_size),
    FIELD(fn_model_info, num_blocks), FIELD(fn_model_info, num_classes), FIELD(fn_model_info, feature_dim),
    FIELD(fn_model_info, max_batch), FIELD(fn_model_info, preset), FIELD(fn_model_info, mean),
    FIELD(fn_model_info, std),

    FIELD(fn_outputs, norms), FIELD(fn_outputs, logits), FIELD(fn_outputs, features),
    FIELD(fn_outputs, react_logits), FIELD(fn_outputs, pred), FIELD(fn_outputs, scores),
    FIELD(fn_outputs, block), FIELD(fn_outputs, react_clip), FIELD(fn_outputs, gen_gamma),
    FIELD(fn_outputs, gen_m),

    FIELD(fn_dataset_options, limit), FIELD(fn_dataset_options, every), FIELD(fn_dataset_options, labels),

    FIELD(fn_run_options, preset), FIELD(fn_run_options, batch), FIELD(fn_run_options, decode_threads),
    FIELD(fn_run_options, strict), FIELD(fn_run_options, verbose), FIELD(fn_run_options, profile),
    FIELD(fn_run_options, block), FIELD(fn_run_options, react_clip), FIELD_U64(fn_run_options, seed),
    FIELD(fn_run_options, react_percentile), FIELD(fn_run_options, checkpoint),
    FIELD(fn_run_options, resume), FIELD(fn_run_options, checkpoint_every), FIELD(fn_run_options, cancel),
    FIELD(fn_run_options, rank), FIELD(fn_run_options, ranks), FIELD(fn_run_options, gen_gamma),
    FIELD(fn_run_options, gen_m), FIELD(fn_run_options, ood_score), FIELD(fn_run_options, ood_threshold),
    FIELD(fn_run_options, fit), FIELD(fn_run_options, fit_path),

    FIELD(fn_scores, n), FIELD(fn_scores, num_blocks), FIELD(fn_scores, num_classes),
    FIELD(fn_scores, index), FIELD(fn_scores, label), FIELD(fn_scores, pred), FIELD(fn_scores, norms),
    FIELD(fn_scores, num_scores), FIELD(fn_scores, score_id), FIELD(fn_scores, scores),
    FIELD(fn_scores, selected_block), FIELD(fn_scores, skipped), FIELD(fn_scores, ood),

    FIELD(fn_selection, num_blocks), FIELD(fn_selection, block_names), FIELD(fn_selection, selected),
    FIELD(fn_selection, norm_ratio), FIELD(fn_selection, mean_norm_id),
    FIELD(fn_selection, mean_norm_jigsaw), FIELD(fn_selection, images), FIELD(fn_selection, skipped),
    FIELD_U64(fn_selection, seed), FIELD(fn_selection, react_percentile),
    FIELD(fn_selection, react_clip), FIELD(fn_selection, arch), FIELD(fn_selection, data),
    FIELD(fn_selection, ood_score), FIELD(fn_selection, ood_tpr), FIELD(fn_selection, ood_threshold),
    FIELD(fn_selection, ood_images), FIELD(fn_selection, fit),

    FIELD(fn_mpi_info, rank), FIELD(fn_mpi_info, ranks), FIELD(fn_mpi_info, local_rank),
    FIELD(fn_mpi_info, local_ranks),

    FIELD(fn_metrics, auroc), FIELD(fn_metrics, fpr95), FIELD(fn_metrics, aupr_in),
    FIELD(fn_metrics, aupr_out), FIELD(fn_metrics, threshold), FIELD(fn_metrics, n_id),
    FIELD(fn_metrics, n_ood),

    FIELD(fn_eval_result, num_scores), FIELD(fn_eval_result, num_sets), FIELD(fn_eval_result, scores),
    FIELD(fn_eval_result, titles), FIELD(fn_eval_result, sets), FIELD(fn_eval_result, metrics),
    FIELD(fn_eval_result, id_path), FIELD(fn_eval_result, n_id), FIELD(fn_eval_result, id_accuracy),
    FIELD(fn_eval_result, convention),

    FIELD(fn_columns, rows), FIELD(fn_columns, count), FIELD(fn_columns, names),
    FIELD(fn_columns, values),
};

int fn_abi_version(void) { return FN_ABI_VERSION; }

const char *fn_struct_name(int i)
{
    return i >= 0 && i < (int)(sizeof structs / sizeof *structs) ? structs[i].name : NULL;
}

size_t fn_struct_size(const char *name)
{
    for (size_t i = 0; name && i < sizeof structs / sizeof *structs; i++)
        if (strcmp(structs[i].name, name) == 0)
            return structs[i].size;
    return 0;
}

int fn_struct_field(const char *strukt, int i, const char **name, const char **type, size_t *offset,
                    size_t *size)
{
    for (size_t k = 0; strukt && k < sizeof fields / sizeof *fields; k++) {
        const abi_field *f = &fields[k];
        if (strcmp(f->strukt, strukt) != 0 || i-- > 0)
            continue;
        *name = f->name, *type = f->type, *offset = f->offset, *size = f->size;
        return 1;
    }
    return 0;
}
