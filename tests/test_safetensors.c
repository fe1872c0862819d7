/* test_safetensors.c: the weights reader on good files and on every kind of
 * bad one: each must fail with a status and a message naming the file and the
 * problem, and never crash (this test also runs under ASan/UBSan in CI). */
#include <stdint.h>

#include "featurenorm.h"
#include "safetensors.h"
#include "test.h"

/* Writes a safetensors file: header JSON as given, then `data` bytes. */
static void write_file(const char *path, const char *header, const void *data, size_t len,
                       long long claimed_header_len)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    uint64_t n = claimed_header_len >= 0 ? (uint64_t)claimed_header_len : strlen(header);
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(n >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (len)
        fwrite(data, 1, len, f);
    fclose(f);
}

static void expect_open_fails(const char *name, const char *header, size_t data_len,
                              long long claimed, fn_status want, const char *needle)
{
    static float data[64];
    write_file(name, header, data, data_len, claimed);
    st_file *f = NULL;
    fn_status s = st_open(name, &f);
    CHECK_MSG(s == want && strstr(fn_last_error(), needle) && strstr(fn_last_error(), name),
              "%s: want %s with \"%s\", got %s: \"%s\"", name, fn_status_name(want), needle,
              fn_status_name(s), fn_last_error());
    CHECK(f == NULL);
    st_close(f);
    remove(name);
}

static void good_file(void)
{
    float w[6] = {1, 2, 3, 4, 5, 6};
    unsigned char half[4] = {0x00, 0x3C, 0x00, 0xC0}; /* 1.0, -2.0 in F16 */
    unsigned char bf[4] = {0x80, 0x3F, 0x40, 0x40};   /* 1.0, 3.0 in BF16 */
    unsigned char data[24 + 4 + 4 + 8];
    memcpy(data, w, 24);
    memcpy(data + 24, half, 4);
    memcpy(data + 28, bf, 4);
    memset(data + 32, 0, 8);
    write_file("good.safetensors",
               "{\"__metadata__\":{\"format\":\"pt\"},"
               "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
               "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[24,28]},"
               "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[28,32]},"
               "\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[32,40]}}",
               data, sizeof data, -1);
    st_file *f;
    REQUIRE_OK(st_open("good.safetensors", &f));
    CHECK(st_count(f) == 4);
    float out[6];
    REQUIRE_OK(st_read_f32(f, "w", 2, (int64_t[]){2, 3}, out));
    CHECK(out[0] == 1 && out[5] == 6);
    REQUIRE_OK(st_read_f32(f, "h", 1, (int64_t[]){2}, out));
    CHECK(out[0] == 1.0f && out[1] == -2.0f);
    REQUIRE_OK(st_read_f32(f, "b", 1, (int64_t[]){2}, out));
    CHECK(out[0] == 1.0f && out[1] == 3.0f);
    CHECK_FAILS(st_read_f32(f, "w", 2, (int64_t[]){3, 2}, out), FN_ERR_SHAPE, "has shape [2, 3], expected [3, 2]");
    CHECK_FAILS(st_read_f32(f, "missing", 1, (int64_t[]){2}, out), FN_ERR_NOT_FOUND, "missing tensor 'missing'");
    CHECK_FAILS(st_read_f32(f, "n", 0, NULL, out), FN_ERR_FORMAT, "dtype I64");
    st_close(f);
    remove("good.safetensors");
}

static void bad_files(void)
{
    const char *w = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}";
    /* truncated: the data section is shorter than the header promises */
    expect_open_fails("truncated.safetensors", w, 12, -1, FN_ERR_FORMAT, "run past the end");
    /* a header length larger than the file */
    expect_open_fails("hlen.safetensors", w, 24, 1 << 20, FN_ERR_FORMAT, "header length");
    expect_open_fails("offsets.safetensors",
                      "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,8]}}", 24, -1,
                      FN_ERR_FORMAT, "end before they begin");
    /* An empty tensor between two overlapping ones hid the overlap (issue #13). */
    expect_open_fails("overlap_empty.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                      "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                      16, -1, FN_ERR_FORMAT, "overlap");
    /* A huge header is refused before it is parsed: instantly, naming the cap. */
    {
        size_t big = 100u << 20;
        char *header = malloc(big + 1);
        REQUIRE(header);
        memset(header, ' ', big);
        header[0] = '{', header[big - 1] = '}', header[big] = '\0';
        expect_open_fails("bighead.safetensors", header, 0, -1, FN_ERR_FORMAT, "limit of 8 MiB");
        free(header);
    }
    expect_open_fails("overlap.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                      24, -1, FN_ERR_FORMAT, "overlap");
    expect_open_fails("size.safetensors",
                      "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,24]}}", 24, -1,
                      FN_ERR_FORMAT, "shape x F32 needs 32");
    expect_open_fails("dtype.safetensors",
                      "{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, -1,
                      FN_ERR_FORMAT, "unsupported dtype \"Q4\"");
    expect_open_fails("json.safetensors", "{\"w\":{\"dtype\":\"F32\",", 0, -1, FN_ERR_FORMAT,
                      "invalid JSON");
    expect_open_fails("notobj.safetensors", "[1,2,3]", 0, -1, FN_ERR_FORMAT, "not a JSON object");
    expect_open_fails("dup.safetensors",
                      "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                      8, -1, FN_ERR_FORMAT, "named twice");
    expect_open_fails("negshape.safetensors",
                      "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, -1,
                      FN_ERR_FORMAT, "non-negative");
    expect_open_fails("deep.safetensors",
                      "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                      "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
                      0, -1, FN_ERR_FORMAT, "nested too deeply");
    /* shorter than the length prefix itself */
    FILE *f = fopen("tiny.safetensors", "wb");
    fputs("abc", f);
    fclose(f);
    st_file *st = NULL;
    CHECK_FAILS(st_open("tiny.safetensors", &st), FN_ERR_FORMAT, "too short");
    remove("tiny.safetensors");
    CHECK_FAILS(st_open("no-such-file.safetensors", &st), FN_ERR_IO, "no-such-file.safetensors");
    /* a NaN in the weights is refused when read */
    float nan_data[2] = {1.0f, NAN};
    write_file("nan.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
               nan_data, 8, -1);
    REQUIRE_OK(st_open("nan.safetensors", &st));
    float out[2];
    CHECK_FAILS(st_read_f32(st, "w", 1, (int64_t[]){2}, out), FN_ERR_FORMAT, "non-finite");
    st_close(st);
    remove("nan.safetensors");
}

/* A BatchNorm whose gamma and variance are finite but fold to inf (3e38 /
 * sqrt(0 + 1e-5)): refused at load, naming the layer, instead of NaN scores. */
static void bn_fold_overflow(void)
{
    const char *src = FN_FIXTURES "/models/resnet20_cifar/model.safetensors";
    FILE *f = fopen(src, "rb");
    REQUIRE(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len);
    REQUIRE(b && fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | b[i];
    st_file *st;
    REQUIRE_OK(st_open(src, &st));
    const st_tensor *g = st_find(st, "layer2.1.bn1.weight"), *v = st_find(st, "layer2.1.bn1.running_var");
    REQUIRE(g && v && g->dtype == ST_F32 && v->dtype == ST_F32);
    float big = 3e38f, zero = 0;
    memcpy(b + 8 + hlen + g->begin, &big, 4);
    memcpy(b + 8 + hlen + v->begin, &zero, 4);
    st_close(st);
    f = fopen("bnfold.safetensors", "wb");
    REQUIRE(f && fwrite(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    free(b);
    fn_model_options o;
    fn_model_options_init(&o);
    o.arch = "resnet20_cifar";
    o.weights = "bnfold.safetensors";
    o.backend = FN_BACKEND_CPU;
    fn_model *m = NULL;
    CHECK_FAILS(fn_model_load(&o, &m), FN_ERR_FORMAT, "layer 'layer2.1.conv1': folding its BatchNorm gives a non-finite");
    remove("bnfold.safetensors");
}

/* Model loading through the public API: wrong architecture, wrong shapes. */
static void model_errors(void)
{
    fn_model_options o;
    fn_model_options_init(&o);
    fn_model *m = NULL;
    o.arch = "resnet20_cifar";
    o.weights = FN_FIXTURES "/models/resnet32_cifar/model.safetensors"; /* more blocks than 20 */
    o.backend = FN_BACKEND_CPU;
    /* resnet32's weights hold resnet20's too, and 60 more: refused by name,
     * unless asked (ResNet-56 weights ran as ResNet-20 at 12% accuracy). */
    CHECK_FAILS(fn_model_load(&o, &m), FN_ERR_FORMAT,
                "60 tensors that resnet20_cifar does not use ('layer1.3.bn1.bias'");
    CHECK(strstr(fn_last_error(), "--allow-unused-weights"));
    o.allow_unused_weights = 1;
    REQUIRE_OK(fn_model_load(&o, &m));
    fn_model_free(m);
    o.allow_unused_weights = 0;
    o.arch = "resnet56_cifar"; /* ...but not the other way round */
    o.weights = FN_FIXTURES "/models/resnet20_cifar/model.safetensors";
    CHECK_FAILS(fn_model_load(&o, &m), FN_ERR_NOT_FOUND, "missing tensor 'layer1.3.conv1.weight'");
    o.arch = "resnet50"; /* same first names, other shapes */
    CHECK_FAILS(fn_model_load(&o, &m), FN_ERR_SHAPE, "'conv1.weight' has shape [16, 3, 3, 3], expected [16, 3, 7, 7]");
    o.arch = "resnet18_cifar";
    o.weights = FN_FIXTURES "/models/resnet18/model.safetensors";
    CHECK_FAILS(fn_model_load(&o, &m), FN_ERR_SHAPE, "expected [4, 3, 3, 3]");
    o.arch = "vgg16";
    CHECK_FAILS(fn_model_load(&o, &m), FN_ERR_NOT_FOUND, "missing tensor 'features.0.weight' (is this the right --arch?)");
    o.arch = "no_such_net";
    CHECK_FAILS(fn_model_load(&o, &m), FN_ERR_NOT_FOUND, "unknown architecture 'no_such_net'");
    o.arch = "resnet20_cifar";
    o.weights = "missing.safetensors";
    CHECK_FAILS(fn_model_load(&o, &m), FN_ERR_IO, "missing.safetensors");
    o.weights = FN_FIXTURES "/models/resnet20_cifar/model.safetensors";
    o.precision = FN_PRECISION_FP16;
    CHECK_FAILS(fn_model_load(&o, &m), FN_ERR_INVALID_ARG, "fp32 or bf16");
    o.precision = FN_PRECISION_FP32;
    o.input_size = 4; /* too small for three stride-2 stages */
    fn_status s = fn_model_load(&o, &m);
    CHECK_MSG(s == FN_OK || s == FN_ERR_SHAPE, "tiny input: %s", fn_last_error());
    if (s == FN_OK)
        fn_model_free(m);
    o.input_size = 0;
    o.backend = FN_BACKEND_CUDA;
    s = fn_model_load(&o, &m);
    if (s == FN_OK)
        fn_model_free(m); /* a machine with a GPU */
    else
        CHECK_MSG(s == FN_ERR_UNAVAILABLE && strlen(fn_last_error()) > 10,
                  "--backend cuda without a device: %s", fn_last_error());
    /* caps: threads and the activations of a batch, with the limit stated */
    o.backend = FN_BACKEND_CPU;
    o.threads = 4096;
    CHECK_FAILS(fn_model_load(&o, &m), FN_ERR_INVALID_ARG, "4096 threads is over the limit of");
    o.threads = 0;
    o.max_batch = 1 << 20;
    CHECK_FAILS(fn_model_load(&o, &m), FN_ERR_INVALID_ARG, "KB per image) on the CPU; the limit is");
    o.max_batch = 0;
    /* forward argument checks */
    o.backend = FN_BACKEND_CPU;
    REQUIRE_OK(fn_model_load(&o, &m));
    float norms[9], x[3 * 32 * 32] = {0};
    fn_outputs out = {.norms = norms};
    CHECK_FAILS(fn_model_forward(m, 0, x, &out), FN_ERR_SHAPE, "batch of 0");
    CHECK_FAILS(fn_model_forward(m, 100000, x, &out), FN_ERR_SHAPE, "max_batch");
    float react[10];
    fn_outputs bad = {.norms = norms, .react_logits = react, .react_clip = -1};
    CHECK_FAILS(fn_model_forward(m, 1, x, &bad), FN_ERR_INVALID_ARG, "react_clip");
    fn_model_free(m);
}

int main(void)
{
    good_file();
    bad_files();
    model_errors();
    bn_fold_overflow();
    return test_finish("test_safetensors");
}
