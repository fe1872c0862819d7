/* test_abi.c: the library's description of its public structs (host/abi.c)
 * against the compiler's sizeof and against include/featurenorm.h itself:
 * every struct the header defines is described, field by field in header
 * order, each field's size fits its type name, and the fields tile the struct
 * up to alignment padding. A field added to the header without its row in
 * abi.c fails here, so python/featurenorm can never build a stale layout.
 * The in-memory dataset (fn_dataset_from_images) is checked here too. */
#include <ctype.h>
#include <stdint.h>

#include "abi.h"
#include "featurenorm.h"
#include "test.h"

/* sizeof of a type name of the table; its alignment is its element's size */
static const struct {
    const char *type;
    size_t size, align;
} types[] = {
    {"int", sizeof(int), sizeof(int)},          {"enum", sizeof(fn_backend), sizeof(fn_backend)},
    {"float", sizeof(float), sizeof(float)},    {"double", sizeof(double), sizeof(double)},
    {"size_t", sizeof(size_t), sizeof(size_t)}, {"uint64_t", sizeof(uint64_t), sizeof(uint64_t)},
    {"float[3]", 3 * sizeof(float), sizeof(float)},
};

static size_t type_align(const char *type, size_t size)
{
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (strcmp(types[i].type, type) == 0) {
            CHECK_MSG(types[i].size == size, "%s: %zu bytes, not %zu", type, size, types[i].size);
            return types[i].align;
        }
    CHECK_MSG(strchr(type, '*') && size == sizeof(void *), "unknown type %s (%zu bytes)", type, size);
    return sizeof(void *);
}

/* The header's text with comments blanked. */
static char *read_header(void)
{
    FILE *f = fopen(FN_SOURCE_DIR "/include/featurenorm.h", "rb");
    REQUIRE(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    REQUIRE(n < sizeof text - 1);
    text[n] = 0;
    for (char *p = text; (p = strstr(p, "/*"));) {
        char *end = strstr(p + 2, "*/");
        REQUIRE(end);
        memset(p, ' ', (size_t)(end + 2 - p));
    }
    return text;
}

/* The declarators of one struct body, in order: "float mean[3], std[3];" gives mean, std. */
static int body_fields(const char *body, const char *end, char names[][64], int max)
{
    int n = 0;
    const char *word = NULL;
    size_t len = 0;
    for (const char *p = body; p < end; p++) {
        if (isalnum((unsigned char)*p) || *p == '_') {
            if (p == body || !(isalnum((unsigned char)p[-1]) || p[-1] == '_'))
                word = p, len = 0;
            len++;
        } else if (*p == '[') {
            while (p < end && *p != ']')
                p++;
        } else if ((*p == ',' || *p == ';') && word && n < max) {
            snprintf(names[n++], 64, "%.*s", (int)len, word);
            word = NULL;
        }
    }
    return n;
}

static void check_struct(const char *name, const char *body, const char *end)
{
    char want[64][64];
    int n = body_fields(body, end, want, 64);
    size_t size = fn_struct_size(name), at = 0, max_align = 1;
    CHECK_MSG(size > 0, "%s: not described by fn_struct_size", name);
    int i = 0;
    const char *field, *type;
    size_t offset, bytes;
    for (; fn_struct_field(name, i, &field, &type, &offset, &bytes); i++) {
        CHECK_MSG(i < n && strcmp(field, want[i]) == 0, "%s field %d: described %s, header says %s", name, i,
                  field, i < n ? want[i] : "(none)");
        size_t align = type_align(type, bytes);
        at = (at + align - 1) / align * align; /* the padding before it, no more */
        CHECK_MSG(offset == at, "%s.%s at %zu: expected %zu (a field missing before it?)", name, field,
                  offset, at);
        at = offset + bytes;
        max_align = align > max_align ? align : max_align;
    }
    CHECK_MSG(i == n, "%s: %d fields described, the header has %d", name, i, n);
    CHECK_MSG((at + max_align - 1) / max_align * max_align == size, "%s: fields end at %zu of %zu bytes",
              name, at, size);
}

static void test_header_structs(void)
{
    char *text = read_header();
    int found = 0;
    for (char *p = text; (p = strstr(p, "typedef struct "));) {
        char name[64];
        p += strlen("typedef struct ");
        char *brace = strchr(p, '{'), *semi = strchr(p, ';');
        if (sscanf(p, "%63[A-Za-z0-9_]", name) != 1 || !brace || semi < brace)
            continue; /* an opaque handle: typedef struct fn_model fn_model; */
        char *close = strchr(brace, '}');
        REQUIRE(close);
        check_struct(name, brace + 1, close);
        found++;
        p = close;
    }
    int described = 0;
    while (fn_struct_name(described))
        described++;
    CHECK_MSG(found == described, "the header defines %d structs, the library describes %d", found,
              described);
}

static void test_sizes(void)
{
    CHECK(fn_abi_version() == FN_ABI_VERSION);
#define SIZE(S) \
    CHECK_MSG(fn_struct_size(#S) == sizeof(S), #S ": %zu, sizeof %zu", fn_struct_size(#S), sizeof(S));
    FN_ABI_STRUCTS(SIZE)
    CHECK(fn_struct_size("fn_model") == 0);
    CHECK(fn_struct_size(NULL) == 0);
    const char *f, *t;
    size_t o, b;
    CHECK(!fn_struct_field("fn_nothing", 0, &f, &t, &o, &b));
    CHECK(!fn_struct_field("fn_metrics", 7, &f, &t, &o, &b));
}

static void test_memory_dataset(void)
{
    uint8_t px[2 * 4 * 5 * 3];
    int labels[2] = {3, 7};
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (uint8_t)i;
    fn_dataset *d = NULL;
    REQUIRE_OK(fn_dataset_from_images(px, 2, 4, 5, labels, &d));
    CHECK(fn_dataset_size(d) == 2);
    CHECK(strcmp(fn_dataset_item_name(d, 1), "array#1") == 0);
    CHECK(fn_dataset_label(d, 1) == 7);
    fn_dataset_free(d);
    CHECK_FAILS(fn_dataset_from_images(px, 0, 4, 5, NULL, &d), FN_ERR_INVALID_ARG, "no images");
    CHECK_FAILS(fn_dataset_from_images(px, 2, 0, 5, NULL, &d), FN_ERR_SHAPE, "0 x 5");
    CHECK(d == NULL);
}

int main(void)
{
    test_sizes();
    test_header_structs();
    test_memory_dataset();
    return test_finish("test_abi");
}
